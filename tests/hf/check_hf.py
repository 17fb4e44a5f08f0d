#!/usr/bin/env python3
"""check_hf.py - an `nvwa-ckpt export --hf` directory in the real Hugging Face library
against nvwa's own forward pass (tests/hf/test_hf.sh drives it).

  check_hf.py seqs HF_DIR SEQ_LEN OUT.fasta [REAL.fasta ...]
      write the test sequences (generated here, plus records of the real FASTA files that
      fit) as FASTA for nvwa-embed
  check_hf.py compare HF_DIR EMBED.h5 SEQS.fasta [--bf16 HF_BF16_DIR]
      load HF_DIR with AutoModelForMaskedLM / AutoTokenizer / pipeline("fill-mask") and check:
      - token ids = design section 4's table applied here (independently of nvwa's C code);
      - last_hidden_state and MLM logits = nvwa-embed's /hidden and /mlm_logits, one sequence
        at a time and as one right-padded batch: max |diff| / max |nvwa| <= 1e-5;
      - struct_head.safetensors on last_hidden_state = nvwa-embed's /struct_logits (same bound);
      - fill-mask: the pipeline's scores = softmax of the model's logits at the mask;
      - a bf16 export gives the fp32 numbers within bf16 rounding (relative 5e-2).
"""
import json
import math
import os
import random
import sys

TOKENS = ["<pad>", "<cls>", "<eos>", "<mask>", "<unk>", "A", "C", "G", "U", "N", "R", "Y", "K", "M", "S", "W"]
TOL = 1e-5


def nvwa_ids(seq):
    """Design section 4, written out here: case-insensitive, T -> U, B D H V . - -> N."""
    ids = [1]
    for ch in seq.upper():
        ch = "U" if ch == "T" else ("N" if ch in "BDHV.-" else ch)
        ids.append(TOKENS.index(ch))
    return ids + [2]


def read_fasta(path):
    recs, name, buf = [], None, []
    with open(path) as fh:
        for line in fh:
            line = line.strip()
            if line.startswith(">"):
                if name is not None:
                    recs.append((name, "".join(buf)))
                name, buf = line[1:].split()[0] if len(line) > 1 else "seq", []
            elif line:
                buf.append(line)
    if name is not None:
        recs.append((name, "".join(buf)))
    return recs


def cmd_seqs(seq_len, out, real):
    rng = random.Random(int(os.environ.get("NVWA_TEST_SEED", "0") or 0) ^ 0x5EED)
    W = seq_len - 2
    recs = []
    # several lengths: 1, short, around the local window, the full window
    for i, n in enumerate([1, 7, 40, 65, 130, W // 2, W]):
        if n > W:
            continue
        s = "".join(rng.choice("ACGU") for _ in range(n))
        if i == 2:  # the input rules: lower case, T, N, IUPAC codes and gaps
            s = "acgtTn" + "RYKMSWbdhv.-" + s[18:] if n >= 18 else s.lower()
        recs.append((f"gen{i}_len{n}", s))
    for path in real:  # real RNA when the shared data is there
        taken = 0
        for name, s in read_fasta(path):
            if 0 < len(s) <= W and taken < 4:
                recs.append((name, s))
                taken += 1
    with open(out, "w") as fh:
        for name, s in recs:
            fh.write(f">{name}\n{s}\n")
    print(f"{len(recs)} sequences, lengths {sorted(len(s) for _, s in recs)}")


def rel(a, b):
    """max |a - b| / max |b| (b: nvwa's numbers)."""
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


def cmd_compare(hf_dir, emb, fasta, bf16_dir):
    import h5py
    import numpy as np
    import torch
    import transformers
    from safetensors.torch import load_file
    from transformers import AutoModelForMaskedLM, AutoTokenizer, pipeline

    torch.manual_seed(0)
    print(f"transformers {transformers.__version__}, torch {torch.__version__}")
    recs = read_fasta(fasta)
    with h5py.File(emb, "r") as f:
        hidden = torch.from_numpy(f["/hidden"][:]).double()
        mlm = torch.from_numpy(f["/mlm_logits"][:]).double()
        st = torch.from_numpy(f["/struct_logits"][:]).double()
        offs = f["/offsets"][:]
    assert len(offs) == len(recs) + 1, (len(offs), len(recs))

    tok = AutoTokenizer.from_pretrained(hf_dir)
    model = AutoModelForMaskedLM.from_pretrained(hf_dir, attn_implementation="sdpa").eval()
    assert type(model).__name__ == "ModernBertForMaskedLM", type(model).__name__
    sh = load_file(os.path.join(hf_dir, "struct_head.safetensors"))
    Ws, bs = sh["head.struct.weight"].double(), sh["head.struct.bias"].double()
    ok, worst = True, {"hidden": 0.0, "mlm": 0.0, "struct": 0.0}

    def check(name, got, want):
        nonlocal ok
        r = rel(got.double(), want)
        worst[name] = max(worst[name], r)
        if not r <= TOL:
            ok = False
            print(f"FAIL {name}: relative difference {r:.2e} > {TOL}")

    # one sequence at a time
    with torch.no_grad():
        for i, (name, s) in enumerate(recs):
            enc = tok(s, return_tensors="pt")
            ids = enc["input_ids"][0].tolist()
            if ids != nvwa_ids(s):
                ok = False
                print(f"FAIL {name}: tokenizer ids {ids[:12]}... expected {nvwa_ids(s)[:12]}...")
                continue
            h = model.model(**enc).last_hidden_state[0, 1:-1]   # <cls>/<eos> stripped
            lg = model(**enc).logits[0, 1:-1]
            a, b = offs[i], offs[i + 1]
            check("hidden", h, hidden[a:b])
            check("mlm", lg, mlm[a:b])
            check("struct", h.double() @ Ws.T + bs, st[a:b])
        # one right-padded batch: pads must change nothing
        seqs = [s for _, s in recs]
        enc = tok(seqs, padding=True, return_tensors="pt")
        base = model.model(**enc).last_hidden_state
        logits = model(**enc).logits
        for i, s in enumerate(seqs):
            n = len(s)
            a, b = offs[i], offs[i + 1]
            check("hidden", base[i, 1:1 + n], hidden[a:b])
            check("mlm", logits[i, 1:1 + n], mlm[a:b])
        print(f"{len(recs)} sequences alone and as one padded batch of {tuple(enc['input_ids'].shape)}: "
              f"max relative difference hidden {worst['hidden']:.2e}, MLM logits {worst['mlm']:.2e}, "
              f"structure logits {worst['struct']:.2e} (bound {TOL})")

        # fill-mask: the pipeline on a masked real sequence
        s = max(seqs, key=len)
        k = len(s) // 2
        masked = s[:k] + "<mask>" + s[k + 1:]
        fill = pipeline("fill-mask", model=model, tokenizer=tok, top_k=16)
        res = fill(masked)
        enc = tok(masked, return_tensors="pt")
        pos = enc["input_ids"][0].tolist().index(3)
        assert pos == k + 1, (pos, k)
        p = torch.softmax(model(**enc).logits[0, pos].double(), -1)
        for r in res:
            if abs(r["score"] - float(p[r["token"]])) > 1e-6 or r["token_str"].strip() != TOKENS[r["token"]]:
                ok = False
                print(f"FAIL fill-mask: {r} vs p={float(p[r['token']]):.6f}")
        print(f"fill-mask: top {res[0]['token_str']!r} ({res[0]['score']:.3f}) at position {k} "
              f"(true {s[k]!r}), {len(res)} scores = softmax of the logits")

        if bf16_dir:
            mb = AutoModelForMaskedLM.from_pretrained(bf16_dir, attn_implementation="sdpa").eval()
            enc = tok(seqs, padding=True, return_tensors="pt")
            hb = mb.model(**enc).last_hidden_state.float()
            r = max(rel(hb[i, 1:1 + len(s)].double(), hidden[offs[i]:offs[i + 1]]) for i, s in enumerate(seqs))
            print(f"bf16 export: max relative difference of last_hidden_state {r:.2e} (bound 5e-2)")
            if not r <= 5e-2:
                ok = False
                print("FAIL bf16 export")
    return ok


def main():
    if len(sys.argv) >= 5 and sys.argv[1] == "seqs":
        cmd_seqs(int(sys.argv[3]), sys.argv[4], sys.argv[5:])
        return 0
    if len(sys.argv) >= 5 and sys.argv[1] == "compare":
        bf16 = sys.argv[6] if len(sys.argv) >= 7 and sys.argv[5] == "--bf16" else None
        return 0 if cmd_compare(sys.argv[2], sys.argv[3], sys.argv[4], bf16) else 1
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
