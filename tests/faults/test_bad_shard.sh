#!/usr/bin/env bash
# test_bad_shard.sh - a missing or unreadable shard at start (docs/reliability.md): one
# clear error line naming the shard, exit 1, before any work (no model line, no step), at
# 1 rank and at 2 ranks under mpirun (one line for the job, not one per rank, no MPI_ABORT;
# a "---> HINT:" line may follow it).
set -uo pipefail
B=${NVWA_BUILD_ROOT:?}; S=${NVWA_SOURCE_ROOT:?}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$B/tools/nvwa-prep" --synthetic 50 --seed 5 -o "$tmp/good" -q || fail "nvwa-prep"
mk() { rm -rf "$tmp/d"; mkdir -p "$tmp/d"; cp "$tmp/good/shard_00000.h5" "$tmp/d/shard_00000.h5"; }

check() { # name, expected message (grep -E), data.train
  local name=$1 want=$2 train=$3
  for np in 1 2; do
    if [ $np -gt 1 ]; then RUN=(mpirun -q --oversubscribe -np 2 --bind-to none "$B/nvwa-train")
    else RUN=("$B/nvwa-train"); fi
    "${RUN[@]}" "$S/configs/tiny.ini" data.train="$train" train.steps=2 data.seq-length=64 data.micro-batch=2 data.global-batch=4 \
        > "$tmp/out" 2> "$tmp/err"; rc=$?
    [ $rc -ne 0 ] || fail "$name (np $np): exit 0"
    # one error line (and its "---> HINT:" line, if any), whatever the number of ranks
    [ "$(grep -c '^nvwa: error' "$tmp/err")" -eq 1 ] && [ "$(grep -vc '^nvwa: error\|^---> HINT' "$tmp/err")" -eq 0 ] \
        || { cat "$tmp/err"; fail "$name (np $np): expected one error line on stderr"; }
    grep -Eq "^nvwa: error: $want" "$tmp/err" || { cat "$tmp/err"; fail "$name (np $np): message"; }
    grep -q "^model:\|^step " "$tmp/out" && fail "$name (np $np): work started before the error"
    echo "ok: $name (np $np): $(head -1 "$tmp/err")"
  done
}
mk; ln -s "$tmp/nowhere.h5" "$tmp/d/shard_00001.h5"
check "missing shard" "$tmp/d/shard_00001.h5: cannot read: No such file or directory" "$tmp/d"
check "missing shard (glob)" "$tmp/none/\\*.h5: no file matches" "$tmp/none/*.h5"
mk; head -c 4000 "$tmp/d/shard_00000.h5" > "$tmp/d/shard_00001.h5"
check "truncated shard" "$tmp/d/shard_00001.h5: .*(truncated|damaged|corrupt)" "$tmp/d"
mk; printf 'this is not HDF5\n' > "$tmp/d/shard_00001.h5"
check "garbage shard" "$tmp/d/shard_00001.h5: not an HDF5 file" "$tmp/d"
mk; mkdir "$tmp/d/shard_00001.h5"
check "directory as shard" "$tmp/d/shard_00001.h5: " "$tmp/d"
