#!/usr/bin/env bash
# test_cuda_train.sh - the trainer on the GPU (suite cuda; exit 77 without one):
#   1. tiny for 50 steps on cuda and on cpu-bf16 (its twin) with the same seed and data: every
#      logged loss within 2% (cpu-bf16 against fp32 is within 0.1% here, test_train_bf16;
#      the GPU differs from the twin only in fp32 summation orders);
#   2. kill -9 and resume on the GPU: byte-identical weights (test_kill_resume.sh, attention
#      = auto: the resumed runs reuse the first run's timed kernel choice);
#   3. with 2+ GPUs: DP, TP and ZeRO-1 (overlap on and off) over NCCL against one rank
#      (test_parallel.sh bf16 cuda, layouts up to the GPU count); with one GPU this part
#      says it is skipped.
# usage: test_cuda_train.sh   (NVWA_BUILD_ROOT, NVWA_SOURCE_ROOT set as by meson)
set -uo pipefail
B=${NVWA_BUILD_ROOT:?}; S=${NVWA_SOURCE_ROOT:?}
here=$(cd "$(dirname "$0")" && pwd)
ngpu=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
if [ "${ngpu:-0}" -lt 1 ]; then echo "skip: no GPU (nvidia-smi -L lists none)"; exit 77; fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
"$B/tools/nvwa-prep" --synthetic 2000 --seed 7 -o "$tmp/shards" -q || fail nvwa-prep
ARGS=("$S/configs/tiny.ini" data.train="$tmp/shards" train.steps=50 data.seq-length=256
      data.micro-batch=8 data.global-batch=8 log.every=5 train.precision=bf16 checkpoint.every=0 -q)
"$B/nvwa-train" "${ARGS[@]}" train.device=cuda log.file="$tmp/gpu.jsonl" > "$tmp/gpu.out" 2>&1 \
  || { cat "$tmp/gpu.out"; fail "training on cuda"; }
grep -q "backend cuda" "$tmp/gpu.out" || fail "did not run on the cuda backend"
"$B/nvwa-train" "${ARGS[@]}" train.device=cpu log.file="$tmp/twin.jsonl" > "$tmp/twin.out" 2>&1 \
  || fail "training on cpu-bf16"
paste -d' ' <(grep '"step"' "$tmp/gpu.jsonl" | grep -o '"loss": [0-9.e+-]*' | cut -d' ' -f2) \
            <(grep '"step"' "$tmp/twin.jsonl" | grep -o '"loss": [0-9.e+-]*' | cut -d' ' -f2) |
  awk '{ d = $1 - $2; if (d < 0) d = -d; r = d / $2; if (r > w) w = r; n++; printf "loss gpu %s twin %s\n", $1, $2 }
       END { printf "GPU vs cpu-bf16: %d logged steps, worst relative difference %.2e (tol 2e-2)\n", n, w;
             exit !(n == 10 && w <= 0.02) }' || fail "the GPU's loss curve left the twin's"
grep -h "tok/s" "$tmp/gpu.out" | tail -1
bash "$S/tests/resume/test_kill_resume.sh" 1 bf16 cuda || fail "kill/resume on the GPU"
if [ "$ngpu" -ge 2 ]; then
  NVWA_TEST_MAX_RANKS=$ngpu bash "$S/tests/parallel/test_parallel.sh" bf16 cuda || fail "parallel over NCCL"
else
  echo "skipped: DP/TP/ZeRO-1 over NCCL need 2 or more GPUs (this machine has $ngpu)"
fi
echo ok
