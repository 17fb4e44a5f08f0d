#!/usr/bin/env bash
# bench_ckpt.sh - checkpoint save and load against dd on the same disk, in the same run:
# an rna-fm-100m-sized state (fp32 masters + Adam m and v, ~1.2 GB) and the slice of a
# 1.6b state that one rank of tensor = 8 writes (~2.4 GB; the whole 19 GB state does not fit
# this machine's memory twice). dd writes the same number of bytes with conv=fsync (the
# save fsyncs) and reads them back from a dropped page cache (the cold load reads the disk
# too). Best of REPS. Writes bench/results/ckpt-<date>.md.
#
#   bench/bench_ckpt.sh [BUILD_DIR] [SCRATCH_DIR] [BEFORE_BUILD_DIR]
# BEFORE_BUILD_DIR: a build of an earlier commit whose bench_ckpt to run beside (optional).
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$src/build}
scratch=${2:-${TMPDIR:-/tmp}}
before=${3:-}
exe=$build/bench/bench_ckpt
[[ -x $exe ]] || { echo "bench_ckpt.sh: $exe not built (ninja -C $build bench/bench_ckpt)" >&2; exit 1; }
work=$(mktemp -d "$scratch/nvwa-bench-ckpt-XXXXXX")
trap 'rm -rf "$work"' EXIT
reps=${REPS:-3}
load0=$(cut -d' ' -f1-3 /proc/loadavg)

get() { sed -n "s/.* $1 \([0-9.]*\).*/\1/p" <<<" $2"; }
best() { # command...: best wall seconds of $reps runs
  local b=
  for _ in $(seq "$reps"); do
    local t0 t1 dt
    t0=$(date +%s.%N); "$@"; t1=$(date +%s.%N)
    dt=$(echo "$t1 - $t0" | bc -l)
    if [[ -z $b ]] || (( $(echo "$dt < $b" | bc -l) )); then b=$dt; fi
  done
  printf '%.3f' "$b"
}
gbs() { printf '%.2f' "$(echo "$1 / $2 / 1000000000" | bc -l)"; }
pct() { printf '%.0f%%' "$(echo "100 * $1 / $2" | bc -l)"; } # dd seconds, our seconds: our speed as % of dd's

rows=""
run_case() { # name, bench_ckpt args...
  local name=$1; shift
  local line bytes save cold warm mb ddw ddr
  line=$("$exe" --dir "$work/ck" --reps "$reps" "$@")
  bytes=$(get file_bytes "$line"); save=$(get save_s "$line"); cold=$(get load_cold_s "$line"); warm=$(get load_warm_s "$line")
  rm -rf "$work/ck"
  mb=$(( (bytes + 1048575) / 1048576 ))
  head -c $((mb * 1048576)) /dev/urandom > "$work/src"
  dd if="$work/src" of=/dev/null bs=1M iflag=nocache count=0 status=none 2>/dev/null || true
  ddw=$(best dd if="$work/src" of="$work/dd.out" bs=1M count=$mb conv=fsync status=none)
  ddr=$(best bash -c "dd if='$work/dd.out' iflag=nocache count=0 status=none; dd if='$work/dd.out' of=/dev/null bs=1M status=none")
  rm -f "$work/src" "$work/dd.out"
  rows+="| $name | $(printf '%.2f' "$(echo "$bytes / 1000000000" | bc -l)") GB | dd write $ddw s ($(gbs "$bytes" "$ddw") GB/s) | save $save s ($(gbs "$bytes" "$save") GB/s, $(pct "$ddw" "$save") of dd) | dd read $ddr s ($(gbs "$bytes" "$ddr") GB/s) | load cold $cold s ($(gbs "$bytes" "$cold") GB/s, $(pct "$ddr" "$cold") of dd) | load warm $warm s |
"
  echo "$name: $line; dd write $ddw s, dd read $ddr s" >&2
}

run_case "rna-fm-100m, whole state" --layers 12 --hidden 640 --ffn 3456 --heads 20
run_case "1.6b, one rank of tensor 8" --layers 32 --hidden 2048 --ffn 5440 --heads 32 --tensor 8
before_rows=""
if [[ -n $before && -x $before/bench/bench_ckpt ]]; then
  line=$("$before/bench/bench_ckpt" --dir "$work/old" --layers 12 --hidden 640 --ffn 3456 --reps "$reps")
  before_rows="- before this change ($before, same disk, same run): rna-fm-100m save $(get save_s "$line") s, load (page cache warm, CRC pre-pass + HDF5 reads) $(get load_s "$line") s for $(get file_bytes "$line") bytes"
  rm -rf "$work/old"
fi

date_s=$(date +%Y-%m-%d)
cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
fs=$(df -T "$scratch" | awk 'NR==2 {print $2 " on " $1}')
commit=$(git -C "$src" rev-parse --short HEAD 2>/dev/null || echo unknown)
table="| state | bytes | dd write (conv=fsync) | save | dd read (cache dropped) | load (cache dropped) | load (warm) |
| --- | --- | --- | --- | --- | --- | --- |
$rows"
echo "$table"
out=$src/bench/results/ckpt-$date_s.md
cat > "$out" <<EOT
# Checkpoint save/load at disk speed, $date_s

- machine: $(hostname), $cpu, $(nproc) cores (shared: load average $load0 at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end); scratch file system: $fs
- commit: $commit; I/O threads per rank: the cores available, at most 8
- states: fp32 masters + Adam m + v, random mantissas; rna-fm-100m = 12 layers, hidden 640,
  ffn 3456, 20 heads; 1.6b = 32 layers, hidden 2048, ffn 5440, 32 heads, the files of tensor
  rank 0 of 8 (model_tp0 + optim_tp0_dp0)
- save = write_files (contiguous datasets, pwrite by the I/O threads with a crc32 per 1 MiB
  block in the same pass, fsync, file CRC from the block CRCs and metadata bytes) + manifest +
  rename + \`latest\`; load = manifest + file CRC check + every block read and checked; cold =
  the step dir dropped from the page cache first (posix_fadvise), as dd's read (iflag=nocache)
- best of $reps; command: bench/bench_ckpt.sh $build $scratch ${before}
$before_rows

$table
EOT
echo "wrote $out"
