#!/usr/bin/env python3
"""fold_ref.py - check nvwa-fold's RNAfold-style output against ViennaRNA's own Python
module (RNA.fold_compound(...).mfe()): same structure, same MFE, record by record.

    fold_ref.py [--temperature C] [--dangles D] [--noLP] [--expect N] FILE.dbn...

Records with an energy (the folded ones) are compared; exit 0 when all agree (and there are
N of them with --expect), 1 otherwise, 77 when the RNA module is missing."""
import argparse
import sys

try:
    import RNA
except ImportError:
    print("SKIP: the ViennaRNA Python module (RNA) is not installed (tools/install-viennarna)")
    sys.exit(77)


def records(path):
    with open(path) as f:
        lines = [l.rstrip("\n") for l in f]
    for i in range(0, len(lines) - 2, 3):
        assert lines[i].startswith(">"), f"{path}:{i + 1}: expected a header"
        yield lines[i][1:], lines[i + 1], lines[i + 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--temperature", type=float, default=37.0)
    ap.add_argument("--dangles", type=int, default=2)
    ap.add_argument("--noLP", action="store_true")
    ap.add_argument("--expect", type=int, default=-1)
    ap.add_argument("files", nargs="+")
    a = ap.parse_args()
    md = RNA.md()
    md.temperature = a.temperature
    md.dangles = a.dangles
    md.noLP = 1 if a.noLP else 0
    n = bad = 0
    for path in a.files:
        for rid, seq, line in records(path):
            if " (" not in line:
                continue  # a kept structure: no energy, nothing predicted
            st, e = line.split(" (", 1)
            e = float(e.rstrip(")"))
            # nvwa folds the ambiguity codes as N (pairs with nothing)
            ref_st, ref_e = RNA.fold_compound("".join(c if c in "ACGU" else "N" for c in seq), md).mfe()
            n += 1
            if st != ref_st or abs(e - ref_e) > 0.005:
                bad += 1
                if bad <= 5:
                    print(f"MISMATCH {path} {rid} (len {len(seq)}):\n  nvwa-fold {st} ({e:.2f})\n  RNA.fold  {ref_st} ({ref_e:.2f})")
    print(f"fold_ref: {n} folded records compared with RNA {RNA.__version__}: {n - bad} identical (structure and MFE), {bad} differ")
    if a.expect >= 0 and n != a.expect:
        print(f"fold_ref: expected {a.expect} folded records, found {n}")
        return 1
    return 1 if bad or n == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
