#!/usr/bin/env bash
# test_parallel.sh - data and tensor parallelism on CPU ranks (design section 8):
#  - DP=2 with micro-batch m equals DP=1 with 2 accumulation steps (weights <= 1e-6 rel.)
#  - TP=2 and TP=4 equal TP=1 (losses and weights after 10 steps <= 1e-5 rel.)
#  - TP=2 x DP=2 on 4 ranks, ZeRO-1 on and off give the same weights
#  - ZeRO-1 at DP=3 with and without overlap ([parallel] overlap) gives the same bits
#  - layouts that cannot work fail before any work with one line
set -uo pipefail
B=${NVWA_BUILD_ROOT:?}; S=${NVWA_SOURCE_ROOT:?}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
"$B/tools/nvwa-prep" --synthetic 500 --seed $RANDOM -o "$tmp/shards" -q || fail nvwa-prep
seed=$RANDOM
COMMON=("$S/configs/tiny.ini" data.train="$tmp/shards" train.steps=10 data.seq-length=128
        data.micro-batch=2 train.seed=$seed optim.warmup-steps=3 checkpoint.every=0 log.every=1 -q)

run() { # name np args...
  local name=$1 np=$2; shift 2
  local cmd=("$B/nvwa-train")
  [ "$np" -gt 1 ] && cmd=(mpirun --oversubscribe --bind-to none -np "$np" "$B/nvwa-train")
  OMP_NUM_THREADS=1 "${cmd[@]}" "${COMMON[@]}" checkpoint.dir="$tmp/$name" log.file="$tmp/$name.jsonl" "$@" \
      > "$tmp/$name.out" 2>&1 || { cat "$tmp/$name.out"; fail "$name: nvwa-train exited non-zero"; }
  "$B/tools/nvwa-ckpt" export "$tmp/$name" -o "$tmp/$name.st" > /dev/null || fail "$name: export"
}
close() { # a b tol
  "$B/tests/parallel/st_close" "$tmp/$1.st" "$tmp/$2.st" "$3" || fail "weights of $1 and $2 differ beyond $3"
}
losses_close() { # a b tol: every logged loss
  paste -d' ' <(grep -o '"loss": [0-9.e+-]*' "$tmp/$1.jsonl" | cut -d' ' -f2) \
              <(grep -o '"loss": [0-9.e+-]*' "$tmp/$2.jsonl" | cut -d' ' -f2) |
  awk -v tol="$3" -v a="$1" -v b="$2" '{ d = $1 - $2; if (d < 0) d = -d; r = d / $1; if (r > w) w = r; n++ }
     END { printf "losses %s vs %s: %d steps, worst relative difference %.3e\n", a, b, n, w;
           if (n != 10 || w > tol) exit 1 }' || fail "losses of $1 and $2 differ beyond $3"
}

# data parallel: 1 rank x 2 accumulation steps vs 2 ranks x 1
run dp1 1 data.global-batch=4
run dp2 2 data.global-batch=4
close dp1 dp2 1e-6
losses_close dp1 dp2 1e-6

# tensor parallel
run tp1 1 data.global-batch=2
run tp2 2 data.global-batch=2 parallel.tensor=2
run tp4 4 data.global-batch=2 parallel.tensor=4
for t in tp2 tp4; do close tp1 $t 1e-5; losses_close tp1 $t 1e-5; done

# tensor x data, ZeRO-1 on and off
run tpdp 4 data.global-batch=4 parallel.tensor=2
run tpdpz 4 data.global-batch=4 parallel.tensor=2 parallel.zero1=true
close tpdp tpdpz 1e-6
close dp1 tpdp 1e-5
close dp1 tpdpz 1e-5

# ZeRO-1 at 3 data ranks (float sums of 3 are order-sensitive): buckets reduce-scattered while
# backward runs and after it give the same bits
run z3 3 data.global-batch=6 parallel.zero1=true
run z3n 3 data.global-batch=6 parallel.zero1=true parallel.overlap=false
close z3 z3n 0
run z3d 3 data.global-batch=6
close z3 z3d 1e-6

# layouts that cannot work: one line from nvwa, non-zero exit, no training
bad() { # expect-text np args...
  local want=$1 np=$2; shift 2
  OMP_NUM_THREADS=1 mpirun --oversubscribe --bind-to none -np "$np" "$B/nvwa-train" "${COMMON[@]}" "$@" \
      > "$tmp/bad.out" 2> "$tmp/bad.err" && fail "layout ($*) at $np ranks was accepted"
  [ "$(grep -c 'nvwa-train: error' "$tmp/bad.err")" -eq 1 ] || { cat "$tmp/bad.err"; fail "expected one error line"; }
  grep -q "$want" "$tmp/bad.err" || { cat "$tmp/bad.err"; fail "error does not mention '$want'"; }
  grep -q '^step' "$tmp/bad.out" && fail "training started with a bad layout"
  echo "refused: $(grep 'nvwa-train: error' "$tmp/bad.err")"
}
bad "tensor" 3 data.global-batch=2 parallel.tensor=2
bad "num-attn-heads" 3 data.global-batch=2 parallel.tensor=3
bad "global-batch" 2 data.global-batch=2 data.micro-batch=2
echo ok
