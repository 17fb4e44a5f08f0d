#!/bin/bash
# bench_fold.sh - nvwa-fold throughput: sequences/s per core by length class (random
# sequences, one thread, time inside ViennaRNA and wall time of the whole run), the fit of
# the cost model a*n^3 + b*n^2 + c, the RNAcentral sample folded on all cores, and the
# projection for RNAcentral (~42M sequences) on N cores. Prints one table and writes it,
# with date, machine, commit and load, to bench/results/fold-<date>.md.
#
#   bench/bench_fold.sh [BUILD_DIR]          (default build; about 5 minutes on 2 cores)
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$ROOT/build}
FOLD=$BUILD/tools/nvwa-fold
[ -x "$FOLD" ] || { echo "bench_fold: no $FOLD (tools/install-deps, then ninja -C $BUILD)" >&2; exit 1; }
T=$(mktemp -d /tmp/nvwa_bench_fold.XXXXXX)
trap 'rm -rf "$T"' EXIT
load0=$(cut -d' ' -f1-3 /proc/loadavg)
json() { sed -n "s/.*\"$2\": \\([0-9.]*\\).*/\\1/p" "$1" | head -1; }

rows=""
fit=""
for L in 25 50 100 200 300 400 600 800 1000; do
  n=$(awk -v L=$L 'BEGIN { n = int(20 / (1.1e-6 * L * L + 1e-10 * L * L * L + 5e-5)); if (n > 2000) n = 2000; if (n < 8) n = 8; print n }')
  awk -v n=$n -v L=$L 'BEGIN { srand(L); for (i = 0; i < n; i++) { s = ""; for (k = 0; k < L; k++) s = s substr("ACGU", 1 + int(rand() * 4), 1); printf(">r%d\n%s\n", i, s) } }' > "$T/l$L.fa"
  t0=$(date +%s.%N)
  "$FOLD" -q -t 1 --max-len 100000 -o "$T/o$L" "$T/l$L.fa"
  t1=$(date +%s.%N)
  core=$(json "$T/o$L/summary.json" fold_core_seconds)
  rows+=$(awk -v L=$L -v n=$n -v c=$core -v w="$(echo "$t1 - $t0" | bc)" 'BEGIN { printf("| %5d | %5d | %9.5f | %9.2f | %9.2f |\n", L, n, c / n, n / c, n / w) }')$'\n'
  fit+="$L $(awk -v n=$n -v c=$core 'BEGIN { print c / n }')"$'\n'
done
# least squares of t = a n^3 + b n^2 + c, weighted by 1/t (relative errors)
coef=$(python3 - "$fit" << 'PY'
import sys
pts = [tuple(map(float, l.split())) for l in sys.argv[1].strip().splitlines()]
# normal equations for rows (n^3/t, n^2/t, 1/t) ~ 1
A = [[0.0] * 3 for _ in range(3)]; y = [0.0] * 3
for n, t in pts:
    r = [n ** 3 / t, n ** 2 / t, 1 / t]
    for i in range(3):
        y[i] += r[i]
        for j in range(3):
            A[i][j] += r[i] * r[j]
for i in range(3):  # Gauss-Jordan
    p = A[i][i]
    for j in range(3): A[i][j] /= p
    y[i] /= p
    for k in range(3):
        if k != i:
            f = A[k][i]
            for j in range(3): A[k][j] -= f * A[i][j]
            y[k] -= f * y[i]
def solve(rows):
    k = len(rows[0][0])
    A = [[sum(r[i] * r[j] for r, _ in rows) for j in range(k)] for i in range(k)]
    y = [sum(r[i] * w for r, w in rows) for i in range(k)]
    for i in range(k):
        p = A[i][i]
        A[i] = [v / p for v in A[i]]; y[i] /= p
        for m in range(k):
            if m != i:
                f = A[m][i]
                A[m] = [a - f * b for a, b in zip(A[m], A[i])]; y[m] -= f * y[i]
    return y
if y[2] < 0:  # no negative setup cost: fit a, b alone
    a, b = solve([((n ** 3 / t, n ** 2 / t), 1.0) for n, t in pts])
    y = [a, b, 0.0]
print("%.3e %.3e %.3e" % tuple(y))
PY
)

# the RNAcentral sample, all cores
real=""
for d in "$ROOT/../shared/data" "$ROOT/../../shared/data"; do [ -f "$d/rnacentral-sample-1400.fasta" ] && real=$d/rnacentral-sample-1400.fasta && break; done
cores=$(nproc)
if [ -n "$real" ]; then
  t0=$(date +%s.%N)
  "$FOLD" -q -t "$cores" -o "$T/real" "$real"
  t1=$(date +%s.%N)
  S=$T/real/summary.json
  nseq=$(json $S sequences); nf=$(json $S folded); nl=$(json $S too_long); core=$(json $S fold_core_seconds)
  wall=$(echo "$t1 - $t0" | bc)
  proj=$(awk -v nf=$nf -v ns=$nseq -v c=$core 'BEGIN { per = c / nf; frac = nf / ns; ch = 42e6 * frac * per / 3600;
    printf("- RNAcentral sample (%d sequences, %d folded, the others longer than 1000 nt): %.4f core-s per folded sequence, %.1f seq/s per core\n", ns, nf, per, 1 / per);
    printf("- projection for RNAcentral (42M sequences, this length mix, %.0f%% folded): **%.0f core-hours**; ", 100 * frac, ch);
    printf("wall time on 64 cores %.1f h, 256 cores %.1f h, 1024 cores %.1f h, 4096 cores %.1f h (ideal; parts of 300 core-s keep the tail short)\n", ch / 64, ch / 256, ch / 1024, ch / 4096) }')
  realrow="- wall: $wall s on $cores threads ($(awk -v n=$nf -v w=$wall 'BEGIN { printf("%.1f", n / w) }') seq/s, including conversion, planning and assembly)"
fi
load1=$(cut -d' ' -f1-3 /proc/loadavg)
out="$ROOT/bench/results/fold-$(date +%F).md"
{
  echo "# nvwa-fold throughput, $(date +%F)"
  echo
  echo "- machine: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $cores cores, shared with other jobs (load average before/after: $load0 / $load1)"
  echo "- commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown); ViennaRNA $("$FOLD" --help | sed -n 's/.*(ViennaRNA \([0-9.]*\),.*/\1/p') built by tools/install-viennarna (-O2); MFE, 37C, Turner 2004, dangles=2"
  echo "- random ACGU sequences per length class, one thread; core s/seq = CPU time inside ViennaRNA per sequence (summary.json fold_core_seconds, thread CPU clock: not inflated by other jobs on the cores), wall seq/s = the whole nvwa-fold run (conversion, plan, assembly included)"
  echo
  echo "| nt    | seqs  | core s/seq | seq/s per core | wall seq/s |"
  echo "| ----- | ----- | --------- | --------- | --------- |"
  printf '%s' "$rows"
  echo
  echo "- cost model fit (seconds = a n^3 + b n^2 + c): a b c = $coef (tools/fold/plan.c holds the constants used for balance and ETAs)"
  [ -n "$real" ] && { echo "$proj"; echo "$realrow"; }
} > "$out"
cat "$out"
