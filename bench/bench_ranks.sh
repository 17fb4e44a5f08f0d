#!/usr/bin/env bash
# bench_ranks.sh - step time and tokens/s of configs/tiny.ini on 1 and 2 CPU ranks with the
# same global batch (16 rows x 256 tokens, micro-batch 8): one rank accumulating 2
# micro-batches (1 and 2 OpenMP threads), data-parallel 2 (1 micro-batch each), tensor 2
# (2 micro-batches each). Next to each: the all-reduce bytes per step per rank that the
# communication model (train/planner.c, nvwa-train --dry-run) gives for that layout.
# Writes bench/results/ranks-<date>.md with the date, machine, load, commit and config.
#
#   bench/bench_ranks.sh [BUILD_DIR] [REPS] [STEPS]      (defaults: build, 3, 15)
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$src/build}
reps=${2:-3}
steps=${3:-15}
skip=3 # first steps: warm-up (allocation, page faults, MPI connection set-up)
exe=$build/nvwa-train
[[ -x $exe ]] || { echo "bench_ranks.sh: $exe not built (ninja -C $build nvwa-train)" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/nvwa-bench-ranks-XXXXXX")
trap 'rm -rf "$work"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
COMMON=("$src/configs/tiny.ini" data.global-batch=16 data.micro-batch=8 data.seq-length=256
        train.steps=$steps log.every=1 checkpoint.dir= -q)
mpi=(mpirun --oversubscribe --bind-to none)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

# name ranks threads overrides...
layouts=(
  "1 rank, accum 2|1|1|parallel.tensor=1"
  "1 rank, accum 2|1|2|parallel.tensor=1"
  "data 2, accum 1|2|1|parallel.tensor=1"
  "tensor 2, accum 2|2|1|parallel.tensor=2"
)

median() { sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

rows=()
for spec in "${layouts[@]}"; do
  IFS='|' read -r name np threads ov <<< "$spec"
  st_all=(); tps_all=()
  for r in $(seq "$reps"); do
    log="$work/run.jsonl"; rm -f "$log"
    cmd=("$exe"); [ "$np" -gt 1 ] && cmd=("${mpi[@]}" -np "$np" "$exe")
    OMP_NUM_THREADS=$threads "${cmd[@]}" "${COMMON[@]}" $ov log.file="$log" > "$work/out" 2>&1 ||
      { cat "$work/out"; echo "bench_ranks.sh: $name failed" >&2; exit 1; }
    # median over the steps after the warm-up of this repetition
    st=$(grep -o '"step_time": [0-9.e+-]*' "$log" | tail -n +$((skip + 1)) | cut -d' ' -f2 | median)
    tps=$(grep -o '"tokens_per_s": [0-9.e+-]*' "$log" | tail -n +$((skip + 1)) | cut -d' ' -f2 | median)
    st_all+=("$st"); tps_all+=("$tps")
  done
  st_med=$(printf '%s\n' "${st_all[@]}" | median)
  st_min=$(printf '%s\n' "${st_all[@]}" | sort -g | head -1)
  st_max=$(printf '%s\n' "${st_all[@]}" | sort -g | tail -1)
  tps_med=$(printf '%s\n' "${tps_all[@]}" | median)
  # the communication model for this layout (cpu: fp32 gradients and activations)
  sum=$("$exe" "${COMMON[@]}" $ov --dry-run --world "$np" | grep '^summary:')
  dpb=$(sed -n 's/.* dp_bytes=\([^ ]*\).*/\1/p' <<< "$sum"); tpb=$(sed -n 's/.* tp_bytes=\([^ ]*\).*/\1/p' <<< "$sum")
  accum=$(sed -n 's/.* accum=\([^ ]*\).*/\1/p' <<< "$sum")
  rows+=("$(printf '| %s | %d | %d | %d | %.3f | %.3f – %.3f | %.0f | %.2f | %.2f |' "$name" "$np" "$threads" \
            "$accum" "$st_med" "$st_min" "$st_max" "$tps_med" "$(awk -v b="$dpb" 'BEGIN { print b / 1048576 }')" "$(awk -v b="$tpb" 'BEGIN { print b / 1048576 }')")")
  echo "${rows[-1]}"
done

date_s=$(date -u +%Y-%m-%d)
out="$src/bench/results/ranks-$date_s.md"
cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
{
  echo "# ranks: tiny.ini step time on 1 and 2 CPU ranks ($date_s)"
  echo
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "- machine: $cpu, $(nproc) cores; load average before $load_before, after $(cut -d' ' -f1-3 /proc/loadavg) (shared machine)"
  echo "- commit: $(git -C "$src" rev-parse --short HEAD)$(git -C "$src" diff --quiet HEAD -- train model 2>/dev/null || echo ' (+ uncommitted changes)')"
  echo "- config: configs/tiny.ini (3 layers, d 96, ffn 256, ~0.35M parameters), synthetic data, global batch 16 rows x 256 tokens, micro-batch 8, fp32, device cpu"
  echo "- method: $reps runs x $steps steps per layout; per run the median of steps $((skip + 1))..$steps (jsonl step_time, tokens_per_s of real tokens), then the median (and range) over runs; 2 ranks: \`mpirun --oversubscribe --bind-to none -np 2\`, OMP_NUM_THREADS per rank as listed"
  echo "- model bytes: what one rank sends per step (= receives) by the formulas of train/planner.c (\`nvwa-train --dry-run\`): ring all-reduce 2(n-1)/n x fp32 gradients; tensor all-reduces 4 per layer per micro-batch of 8 x 256 x 96 fp32"
  echo "- command: \`bench/bench_ranks.sh $build $reps $steps\`"
  echo
  echo "| layout | ranks | threads/rank | accum | step time (s), median | range over runs | tokens/s | model DP all-reduce MiB/step/rank | model TP all-reduce MiB/step/rank |"
  echo "|---|---:|---:|---:|---:|---|---:|---:|---:|"
  printf '%s\n' "${rows[@]}"
} > "$out"
echo "wrote $out"
