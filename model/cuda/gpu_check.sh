#!/bin/bash
# gpu_check.sh - everything the CUDA backend needs a GPU for, in one call (for a lent GPU
# session): build, op tests against the CPU, sanitizers, attention benchmark. Logs go to
# $OUT (or ./gpu_check_out); a summary table is printed last.
#   model/cuda/gpu_check.sh [build-dir]        (run from the source root)
set -u
B=${1:-build-gpu}
O=${OUT:-gpu_check_out}
mkdir -p "$O"
nvidia-smi > "$O/nvidia-smi.txt" 2>&1
summary=()
step() { # name, command...
    local name=$1; shift
    local t0=$(date +%s)
    "$@" > "$O/$name.log" 2>&1
    local rc=$?
    summary+=("$(printf '%-22s rc=%-3d %4ds' "$name" "$rc" $(( $(date +%s) - t0 )))")
    tail -n 40 "$O/$name.log"
    return $rc
}
[ -f "$B/build.ninja" ] || step setup meson setup "$B" -Dcuda=enabled
step build ninja -C "$B" -j16
step test_cuda meson test -C "$B" --suite cuda -v --num-processes 1
for seed in 1 2 3; do
    NVWA_TEST_SEED=$seed step test_seed$seed "$B/tests/model/test_cuda_ops"
done
if command -v compute-sanitizer > /dev/null; then
    for tool in memcheck racecheck synccheck initcheck; do
        NVWA_TEST_SEED=7 step sanitize_$tool compute-sanitizer --tool $tool --error-exitcode 9 \
            "$B/tests/model/test_cuda_ops"
    done
fi
BA="$B/bench/bench_attention"
if [ ! -x "$BA" ]; then # not registered in bench/meson.build yet: build it by hand
    BA="$O/bench_attention"
    step bench_build bash -c "nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a \
        -gencode=arch=compute_80,code=sm_80 -I. -I$B -c bench/bench_attention.cu -o $O/ba.o && \
        cc -o $BA $O/ba.o $B/libnvwa.a -L/usr/local/cuda/lib64 -lcudart -lcublasLt -lcublas \
        -lstdc++ -fopenmp -lopenblas -lm"
fi
res="$O/attention.txt"
step bench_dh64 "$BA" --seq 1024 --rows 16 --heads 16 --dh 64 --out "$res"
step bench_dh64_w128 "$BA" --seq 1024 --rows 16 --heads 16 --dh 64 --window 128 --out "$res"
step bench_dh128 "$BA" --seq 1024 --rows 16 --heads 8 --dh 128 --out "$res"
echo; echo "== summary =="; printf '%s\n' "${summary[@]}"
echo; cat "$res" 2>/dev/null
