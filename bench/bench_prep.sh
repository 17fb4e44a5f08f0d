#!/bin/bash
# bench_prep.sh - nvwa-prep input throughput (MB/s of input text read, parsed, sharded).
#
#   bench/bench_prep.sh [BUILD_DIR] [MB]     (defaults: build, 150)
#
# Cases: a generated FASTA of ~MB megabytes (60-column lines, RNAcentral-like lengths),
# the same gzip-compressed, a dot-bracket file of the same kind, and the shared RNAcentral
# sample when ../shared/data is present. Prints one table and writes it, with date,
# machine, commit and settings, to bench/results/prep-<date>.md.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$ROOT/build}
MB=${2:-150}
PREP=$BUILD/tools/nvwa-prep
[ -x "$PREP" ] || { echo "bench_prep: no $PREP (build first: ninja -C $BUILD)" >&2; exit 1; }
T=$(mktemp -d /tmp/nvwa_bench_prep.XXXXXX)
trap 'rm -rf "$T"' EXIT

# Inputs from the synthetic corpus, written as text by awk from a shard-free dump: the
# generator is nvwa-prep itself (--synthetic), read back with h5dump would be slow, so the
# text is produced directly here with a fixed seed.
gen() { # kind bytes
  awk -v kind="$1" -v target="$2" 'BEGIN {
    srand(12345); split("A C G U", b, " "); n = 0; total = 0
    while (total < target) {
      u = rand(); len = (u < 0.2) ? int(20 * exp(1.609 * u / 0.2)) : (u < 0.81) ? int(100 * exp(2.326 * ((u - 0.2) / 0.61) ^ 1.6)) : int(1024 * exp(-0.2 * log(1 - (u - 0.81) / 0.19 + 1e-9)))
      if (len > 2000) len = 2000
      s = ""; for (i = 0; i < len; i++) s = s b[int(rand() * 4) + 1]
      printf(">URS%010X_%d\n", n, 9606); total += 16
      if (kind == "fasta") { for (i = 1; i <= len; i += 60) { print substr(s, i, 60); total += 61 } }
      else { st = ""; h = int(len / 3); for (i = 0; i < len; i++) st = st ((i < h) ? "(" : (i >= len - h) ? ")" : "."); print s; print st; total += 2 * len + 2 }
      n++
    } }'
}
echo "bench_prep: generating ~${MB} MB inputs in $T" >&2
gen fasta $((MB * 1000000)) > "$T/big.fa"
gzip -1 -c "$T/big.fa" > "$T/big.fa.gz"
gen dbn $((MB * 1000000 / 2)) > "$T/big.dbn"

rows=()
run_case() { # name file...
  local name=$1; shift
  local bytes=0 f
  for f in "$@"; do bytes=$((bytes + $(stat -c %s "$f"))); done
  local best=""
  for rep in 1 2 3; do
    rm -rf "$T/out"
    local t0=$(date +%s.%N)
    "$PREP" -q -o "$T/out" "$@"
    local t1=$(date +%s.%N)
    local s=$(echo "$t1 - $t0" | bc -l)
    if [ -z "$best" ] || [ "$(echo "$s < $best" | bc -l)" = 1 ]; then best=$s; fi
  done
  local toks=$(grep '"tokens"' "$T/out/summary.json" | tr -dc 0-9)
  local rate=$(echo "$bytes / $best / 1000000" | bc -l)
  local mtok=$(echo "$toks / $best / 1000000" | bc -l)
  rows+=("$(printf '| %-28s | %9.1f | %8.3f | %8.1f | %10.1f |' "$name" "$(echo "$bytes / 1000000" | bc -l)" "$best" "$rate" "$mtok")")
}
run_case "FASTA (generated)" "$T/big.fa"
run_case "FASTA gzip -1 (generated)" "$T/big.fa.gz"
run_case "dot-bracket (generated)" "$T/big.dbn"
D=$ROOT/../shared/data
if [ -f "$D/rnacentral-sample-1400.fasta" ]; then
  run_case "rnacentral-sample-1400.fasta" "$D/rnacentral-sample-1400.fasta"
  run_case "archiveii.dbn" "$D/archiveii.dbn"
fi

date=$(date +%Y-%m-%d)
cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git -C "$ROOT" status --porcelain -- data tools 2>/dev/null | grep -q . && echo " (+ local changes)" || true)
out=$ROOT/bench/results/prep-$date.md
{
  echo "# nvwa-prep throughput, $date"
  echo
  echo "- machine: $cpu, $(nproc) cores (nvwa-prep is single-threaded)"
  echo "- commit: $commit$dirty"
  echo "- settings: defaults (shard size 256 MiB, deflate level 1 + Fletcher32); best of 3 runs; input MB = 10^6 bytes of the file as stored"
  echo "- generated inputs: ~$MB MB FASTA (60-column lines, RNAcentral-like lengths), the same gzip -1, ~$((MB / 2)) MB dot-bracket"
  echo
  echo "| input                        | input MB  | seconds  | MB/s in  | Mtokens/s  |"
  echo "| ---------------------------- | --------- | -------- | -------- | ---------- |"
  printf '%s\n' "${rows[@]}"
} > "$out"
cat "$out"
echo "bench_prep: wrote $out" >&2
