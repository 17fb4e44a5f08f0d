#!/usr/bin/env bash
# gpu_check.sh - the device script: everything the CUDA backend needs a GPU for, in one call,
# in priority order (correctness first, then speed), within a time budget; it stops starting
# steps when the next would not fit and says so. Prepared here by tools/device-prepare;
# on the device, from the repository root:
#     source .device/unpack && model/cuda/gpu_check.sh
# $OUT (default ./gpu_check_out) gets results.md (the table, printed last too), logs.txt
# (every step's log, the last 3000 lines of each), step.md and torch_ref.md: four files, as
# the device tool brings back at most 8. GPU_CHECK_BUDGET (seconds, default 500) bounds the script, so that a 600 s
# call returns with its table and leaves device time for a rerun of what failed.
#   GPU_CHECK_ONLY="name ..." runs only those steps (a rerun); GPU_CHECK_REHEARSE=1 runs it
#   on a machine without a GPU: the GPU steps report "skipped" (exit 77), the rest runs.
# Steps (est. seconds on one H100/H200; model/cuda/README.md has the timeline):
#   env          nvidia-smi, driver and CUDA versions, whether the carried programs load
#   rebuild      only when they do not (missing libraries): build here with the sysroot
#   ops          test_cuda_ops: every op against cpu-bf16, 1.6B GEMM and attention shapes
#   kernels      test_cuda_kernels: the fast kernels and cuDNN attention (cuDNN required)
#   model        test_cuda_model: nv_model_step on cuda vs cpu-bf16, tiny and 1.6B heads
#   train        test_cuda_train.sh: 50-step loss curve vs cpu-bf16, kill -9 / resume, NCCL
#   memcheck     compute-sanitizer memcheck over the op tests (quick shapes)
#   racecheck    compute-sanitizer racecheck (quick shapes)
#   step         bench_step 1.6b at seq 1024, largest micro-batch: tokens/s, MFU, GEMM rate,
#                peak memory, per-op table
#   attention    bench_attention native vs cuDNN: dh 64/128, global / window 128, full rows
#                and RNAcentral-like segments; the 1.6B step's 45 rows with cuDNN's backward
#                in chunks of 32 segments
#   bandwidth    bench_kernels: achieved bandwidth of the memory-bound kernels
#   synccheck, initcheck  the other two sanitizers, if time is left
#   torch        bench/torch_ref.py --bench: PyTorch on the same GPU, same config and batch
#                (last: measured on 2026-12-04, 93 s of it torch.compile)
set -u
cd "$(dirname "$0")/../.."
S=$PWD
O=${OUT:-$S/gpu_check_out}
mkdir -p "$O"
LG=$(mktemp -d) # per-step logs, gathered into $O/logs.txt at the end
BUDGET=${GPU_CHECK_BUDGET:-500}
T0=$(date +%s)
B=$S/.device/build
[ -x "$B/nvwa-train" ] || B=$S/build-gpu
export NVWA_BUILD_ROOT=$B NVWA_SOURCE_ROOT=$S OMP_NUM_THREADS=${OMP_NUM_THREADS:-8}
# cuDNN graphs built, the workspace reserved, GEMMs on the plain kernel: in the logs
export NVWA_CUDA_VERBOSE=${NVWA_CUDA_VERBOSE:-1}
# a rehearsal runs the GPU tests' own code with cpu-bf16 standing in for the GPU
[ "${GPU_CHECK_REHEARSE:-0}" = 1 ] && export NVWA_TEST_REHEARSE=1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
R=$O/results.md
{ echo "# gpu_check $(date -u +%F) ($(cat "$B/COMMIT" 2>/dev/null | head -1))"; echo;
  echo "| step | result | seconds | key figure |"; echo "| --- | --- | --- | --- |"; } > "$R"
rows=()

elapsed() { echo $(( $(date +%s) - T0 )); }
wanted() { [ -z "${GPU_CHECK_ONLY:-}" ] || [[ " $GPU_CHECK_ONLY " == *" $1 "* ]]; }
# step NAME EST KEY_REGEX CMD...: run when its estimate still fits the budget, with a
# timeout of its share; the log's last line matching KEY_REGEX goes into the table
step() {
  local name=$1 est=$2 key=$3; shift 3
  wanted "$name" || return 0
  local left=$((BUDGET - $(elapsed)))
  if [ "$est" -gt "$left" ]; then
    rows+=("| $name | not run: ${left}s left, needs ~${est}s | | |"); return 0
  fi
  local lim=$((est * 2 < left ? est * 2 : left)) t=$(date +%s)
  echo "== $name (est ${est}s, limit ${lim}s, $(elapsed)s elapsed)"
  # (through bash -c so that the script's exported functions can be steps too)
  timeout --kill-after=10 "$lim" bash -c '"$@"' _ "$@" > "$LG/$name.log" 2>&1
  local rc=$? dt=$(( $(date +%s) - t )) res
  case $rc in 0) res=ok ;; 77) res=skipped ;; 124|137) res="TIMEOUT (${lim}s)" ;; *) res="FAIL (exit $rc)" ;; esac
  local fig; fig=$(grep -E "$key" "$LG/$name.log" 2>/dev/null | tail -1 | tr '|' '/' | cut -c1-160)
  rows+=("| $name | $res | $dt | $fig |")
  echo "   $res in ${dt}s: $fig"
  [ "$rc" = 0 ] || [ "$rc" = 77 ] || tail -n 15 "$LG/$name.log"
}

# --- env: the GPU, the driver, and whether the carried programs load here
env_check() {
  nvidia-smi || true
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv || true
  command -v nvcc > /dev/null && nvcc --version | tail -2
  echo "build: $(cat "$B/COMMIT" "$B/BUILT" 2>/dev/null | tr '\n' ' ')"
  local miss=0
  for p in nvwa-train tools/nvwa-ckpt tests/model/test_cuda_ops bench/bench_step; do
    ldd "$B/$p" | grep "=> not found" && miss=1
  done
  [ $miss = 0 ] || echo "MISSING-LIBS: the carried programs do not load here"
  nvidia-smi -L 2>&1 || echo "no GPU (rehearsal: ${GPU_CHECK_REHEARSE:-0})"
  [ $miss = 0 ] || return 1
}
export B S O
export -f env_check
step env 20 "build:|MISSING" env_check
if grep -q "MISSING-LIBS" "$LG/env.log"; then # carried programs miss a library here: build here
  rebuild() {
    meson setup build-dev -Dcuda=enabled -Dgpu_arch=90a \
      -Dcudnn_frontend="$S/.device/cudnn-frontend/include" && \
    ninja -C build-dev -j16 nvwa-train tools/nvwa-prep tools/nvwa-ckpt tests/parallel/st_close \
      tests/model/test_cuda_ops tests/model/test_cuda_model tests/model/test_cuda_kernels \
      bench/bench_step bench/bench_attention bench/bench_kernels
  }
  export -f rebuild
  step rebuild 240 "ninja: |error" rebuild && [ -x build-dev/nvwa-train ] && B=$S/build-dev && export NVWA_BUILD_ROOT=$B
fi

# --- correctness
step ops 120 "test_cuda_ops|FAIL" "$B/tests/model/test_cuda_ops"
step kernels 90 "test_cuda_kernels|FAIL" env NVWA_REQUIRE_CUDNN=1 "$B/tests/model/test_cuda_kernels"
step model 120 "test_cuda_model|FAIL" "$B/tests/model/test_cuda_model"
step train 150 "GPU vs cpu-bf16|FAIL|skipped:" bash "$S/tests/parallel/test_cuda_train.sh"
SAN=compute-sanitizer
command -v $SAN > /dev/null || SAN=/usr/local/cuda/bin/compute-sanitizer
san() { # tool: over the quick op tests
  [ -x "$(command -v $SAN)" ] || { echo "no compute-sanitizer"; return 77; }
  NVWA_TEST_QUICK=1 NVWA_TEST_SEED=7 $SAN --tool "$1" --error-exitcode 9 "$B/tests/model/test_cuda_ops"
}
export SAN
export -f san
step memcheck 90 "ERROR SUMMARY|test_cuda_ops" san memcheck
step racecheck 90 "RACECHECK SUMMARY|ERROR SUMMARY|test_cuda_ops" san racecheck

# --- speed
step step 180 "MFU|GEMM rate|tokens/s" "$B/bench/bench_step" --fit-micro-batch --gemm-rate \
  --profile-steps 3 -o "$O/step.md" "$S/configs/1.6b.ini" 10 data.seq-length=1024
attn() {
  for dh in 64 128; do for w in 0 128; do for sg in full rnacentral; do
    "$B/bench/bench_attention" --seq 1024 --rows 16 --heads $((2048 / dh)) --dh $dh --window $w --segments $sg || return $?
  done; done; done
  # the 1.6B step's case: 45 RNAcentral-like rows, the backward in chunks of 32 segments
  for w in 0 128; do
    "$B/bench/bench_attention" --seq 1024 --rows 45 --heads 32 --dh 64 --window $w --segments rnacentral --chunk 32 --iters 10 || return $?
  done
}
export -f attn
step attention 90 "TFLOP/s" attn
step bandwidth 45 "GB/s|%" "$B/bench/bench_kernels"
step synccheck 60 "ERROR SUMMARY|test_cuda_ops" san synccheck
step initcheck 90 "ERROR SUMMARY|test_cuda_ops" san initcheck
# last: its figure exists (bench/results/gpu-h200-2026-12-04.md); rerun when time is left
torch_bench() { # the same micro-batch as bench_step's fit
  python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2> /dev/null ||
    { echo "skip: python3 has no torch that sees a GPU"; return 77; }
  local mb; mb=$(sed -n 's/.*| \([0-9]*\) x 1024 |.*/\1/p' "$O/step.md" 2>/dev/null | head -1)
  python3 "$S/bench/torch_ref.py" --bench "$S/configs/1.6b.ini" --seq 1024 --micro-batch "${mb:-8}" \
    --steps 10 --warmup 3 --out "$O/torch_ref.md"
}
export -f torch_bench
step torch 180 "tokens/s|MFU" torch_bench

printf '%s\n' "${rows[@]}" >> "$R"
for f in "$LG"/*.log; do echo "======== $(basename "$f" .log)"; tail -n 3000 "$f"; done > "$O/logs.txt"
rm -rf "$LG"
for f in step.md torch_ref.md; do [ -f "$O/$f" ] && { echo; echo "## $f"; cat "$O/$f"; } >> "$R"; done
echo; echo "== results ($(elapsed)s of ${BUDGET}s; logs in $O)"; cat "$R"
