#!/usr/bin/env bash
# bench_stream.sh - the streamed corpus at scale; writes bench/results/stream-<date>.md.
#
#   bench/bench_stream.sh [BUILD_DIR] [SCRATCH_DIR]       (NVWA_DATA: the shared data dir)
#
# 1. Chunk size (nvwa-prep --chunk-kb): bytes on disk per nucleotide and the cost of a random
#    loader-like read (cropped window of <= 1022 nt, tokens + structure) for chunk sizes from
#    1 KiB to 1 MiB: 100k synthetic RNAcentral-like sequences (70% with structure), and the
#    real samples under ../shared/data when present (compression only: they are smaller than
#    two chunks of the larger sizes, which the chunk cache then holds whole).
# 2. Synthetic corpora of 0.1M, 2M and 20M RNAcentral-like sequences (nvwa-prep --synthetic,
#    default chunk; generated under SCRATCH_DIR unless present, removed at the end unless
#    KEEP=1): nvwa-train's peak RSS (/usr/bin/time -v) and start-up time (wall time of a
#    one-step run minus the step), the index and open time, and the loader's throughput on
#    one thread with random access, warm and with the shards dropped from the page cache.
# 3. 1, 2, 4 and 8 loaders at once on the 20M corpus (8 ranks of a node sharing its page
#    cache): their summed throughput.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
B=${1:-$src/build}
scratch=${2:-${TMPDIR:-/tmp}}/nvwa-bench-stream
mkdir -p "$scratch"
exe=$B/bench/bench_stream
[[ -x $exe ]] || { echo "bench_stream.sh: $exe not built" >&2; exit 1; }
load0=$(cut -d' ' -f1-3 /proc/loadavg)
kv() { sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" <<<"$2"; }

# 1. chunk sizes
chunks=""
chunk_case() { # label, bench_stream chunks args
  local label=$1; shift
  mkdir -p "$scratch/chunks"
  while read -r line; do
    [[ $line == kb=* ]] || continue
    chunks+="| $label | $(kv kb "$line") | $(kv bytes_per_nt "$line") | $(kv ratio "$line") | $(kv warm_us "$line") | $(kv warm_mnt_s "$line") | $(kv cold_us "$line") | $(kv cold_mnt_s "$line") | $(kv write_mb_s "$line") |
"
  done < <("$exe" chunks --dir "$scratch/chunks" "$@")
}
chunk_case "synthetic 100k (mean 439 nt, 70% structure)" --synthetic 100000 --reads 20000
data=${NVWA_DATA:-$src/../shared/data}
[[ -d $data ]] || data=$src/../../shared/data # a worktree under /work/wt
for f in "$data/rnacentral-sample-1400.fasta" "$data/archiveii.dbn"; do
  [[ -f $f ]] && chunk_case "$(basename "$f") (compression only)" --input "$f" --reads 2000
done

# 2. corpora
gen() { # n, dir
  local n=$1 d=$2
  [[ -d $d ]] && return
  if (( n > 4000000 )); then # two generators at once, shards renamed into one directory
    "$B/tools/nvwa-prep" -q --synthetic $((n / 2)) --seed 21 -o "$d.p1" &
    "$B/tools/nvwa-prep" -q --synthetic $((n / 2)) --seed 22 -o "$d.p2"
    wait
    mkdir -p "$d"
    for f in "$d.p1"/shard_*.h5; do mv "$f" "$d/a_$(basename "$f")"; done
    for f in "$d.p2"/shard_*.h5; do mv "$f" "$d/b_$(basename "$f")"; done
    rm -rf "$d.p1" "$d.p2"
  else
    "$B/tools/nvwa-prep" -q --synthetic "$n" --seed 12 -o "$d"
  fi
}
scale=""
for n in 100000 2000000 20000000; do
  d=$scratch/c$n
  gen $n "$d"
  gb=$(du -sb "$d" | cut -f1)
  # trainer: tiny model, one step, seq-length 1024
  /usr/bin/time -v "$B/nvwa-train" "$src/configs/tiny.ini" data.train="$d" train.steps=1 data.seq-length=1024 \
      data.micro-batch=8 data.global-batch=64 log.file="$scratch/log.jsonl" -q > "$scratch/train.out" 2> "$scratch/time.txt"
  rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$scratch/time.txt")
  wall=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$scratch/time.txt" | awk -F: '{ s = 0; for (i = 1; i <= NF; i++) s = s * 60 + $i; print s }')
  step=$(sed -n 's/.*"step_time": \([0-9.e+-]*\).*/\1/p' "$scratch/log.jsonl" | tail -1)
  cat "$d"/*.h5 > /dev/null # warm: the whole corpus in the page cache first; best of 3
  warm=
  for _ in 1 2 3; do
    w=$("$exe" loader --data "$d" --seconds 10)
    if [[ -z $warm ]] || (( $(echo "$(kv real_tok_cpu_s "$w") > $(kv real_tok_cpu_s "$warm")" | bc -l) )); then warm=$w; fi
  done
  cold=$("$exe" loader --data "$d" --seconds 10 --cold)
  seqs=$(kv seqs "$warm")
  scale+="| $(printf "%'d" "$seqs") | $(kv shards "$warm") | $(printf '%.2f' "$(echo "$gb / 1000000000" | bc -l)") | $(printf '%.1f' "$(echo "$rss / 1024" | bc -l)") | $(kv index_mib "$warm") | $(printf '%.1f' "$(echo "$seqs * 8 / 1048576" | bc -l)") | $(printf '%.2f' "$(echo "$wall - $step" | bc -l)") | $(kv open_s "$warm") | $(kv perm_s "$warm") | $(printf '%.2f' "$(echo "$(kv real_tok_cpu_s "$warm") / 1000000" | bc -l)") | $(printf '%.2f' "$(echo "$(kv real_tok_wall_s "$cold") / 1000000" | bc -l)") |
"
  echo "corpus $n: rss ${rss} KiB, wall $wall s, step $step s; warm: $warm; cold: $cold" >&2
done

# 3. several loaders at once on the largest corpus (processes, as ranks are)
d=$scratch/c20000000
cat "$d"/*.h5 > /dev/null # in the page cache, as after a node's first epoch
ranks=""
for k in 1 2 4 8; do # all k measure the same 15 s window, after they have opened and dealt
  t0=$(( $(date +%s) + 10 + 5 * k ))
  for i in $(seq $k); do "$exe" loader --data "$d" --seconds 15 --start-at $t0 > "$scratch/r$i.txt" & done
  wait
  tot=0 cpu=0 late=0
  for i in $(seq $k); do
    r=$(cat "$scratch/r$i.txt")
    tot=$(echo "$tot + $(kv real_tok_wall_s "$r")" | bc -l)
    cpu=$(echo "$cpu + $(kv real_tok_cpu_s "$r")" | bc -l)
    late=$((late + $(kv late "$r")))
  done
  ranks+="| $k | $(printf '%.2f' "$(echo "$tot / 1000000" | bc -l)") | $(printf '%.2f' "$(echo "$tot / $k / 1000000" | bc -l)") | $(printf '%.2f' "$(echo "$cpu / $k / 1000000" | bc -l)") | $late |
"
done
[[ ${KEEP:-0} = 1 ]] || rm -rf "$scratch"

date_s=$(date +%Y-%m-%d)
cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
commit=$(git -C "$src" rev-parse --short HEAD 2>/dev/null || echo unknown)
out=$src/bench/results/stream-$date_s.md
cat > "$out" <<EOT
# Streamed corpus, $date_s

- machine: $(hostname), $cpu, $(nproc) cores, shared (load average $load0 at the start,
  $(cut -d' ' -f1-3 /proc/loadavg) at the end); scratch: $(df -T "${2:-${TMPDIR:-/tmp}}" | awk 'NR==2 {print $2 " on " $1}')
- commit: $commit; command: bench/bench_stream.sh $B ${2:-}
- loader: seq-length 1024, micro-batch 8, global-batch 256, design masking defaults, one
  thread reading through nv_dataset (no prefetch); tokens/s count real (non-pad) tokens

## Chunk size: bytes on disk and random reads

Random read = one loader-like read (a window of at most 1022 nt at a random offset of a random
sequence, tokens and structure) on one thread; warm = shard in the page cache, cold = dropped
from it first. Bytes per nt = file bytes / nucleotides (tokens + structure + offsets + ids);
ratio = 2 bytes per nt / that.

| corpus | chunk KiB | bytes/nt | ratio | warm us/read | warm M nt/s | cold us/read | cold M nt/s | write MB/s |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
$chunks
## Scale: memory, start-up, throughput

RSS = nvwa-train's peak (tiny model, one step at seq-length 1024, micro-batch 8,
global-batch 64); index = the streamed index (4 B/seq + 8 B per 64 seqs); permutation = the
loader's permutation + packed lengths (8 B/seq; about twice that while an epoch is dealt).
Start-up = the run's wall time minus its one step. Loader columns: one thread, M real
tokens per CPU-second (warm: best of three 10 s runs) and per wall second (cold page cache).

| sequences | shards | GB on disk | peak RSS MiB | index MiB | permutation MiB | start-up s | open s | first epoch deal s | loader warm M tok/s | loader cold M tok/s |
| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
$scale
## Loaders at once (one node's ranks sharing the page cache), 20M corpus

Each loader is a process with one thread, as a rank's prefetch thread is; they share the
page cache and, here, the machine's $(nproc) cores. Late = loaders that started their window late.

| loaders | total M tok/s (wall) | per loader (wall) | per loader per CPU-second | late |
| ---: | ---: | ---: | ---: | ---: |
$ranks
EOT
echo "wrote $out"
cat "$out"
