#!/usr/bin/env bash
# test_verify_cli.sh - nvwa-prep --chunk-kb and --verify end to end: shards written with a
# chosen chunk size verify clean (one thread, several, and split over 2 ranks under
# mpirun); a copy damaged in the middle of a shard (bytes overwritten on disk) is reported
# as exactly one line naming that shard, the others not at all, exit 1; bad arguments give
# one line and a non-zero exit.
set -uo pipefail
B=${NVWA_BUILD_ROOT:?}
PREP="$B/tools/nvwa-prep"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
SEED=${NVWA_TEST_SEED:-$(( (RANDOM << 15) | RANDOM ))}; echo "NVWA_TEST_SEED=$SEED"; RANDOM=$SEED
MPI=(mpirun -q --oversubscribe -np 2 --bind-to none)

kb=$((RANDOM % 8 + 1))
"$PREP" -q --synthetic 2500 --seed $SEED --shard-size 0.15 --chunk-kb $kb -o "$tmp/s" || fail "nvwa-prep --chunk-kb $kb"
grep -q "\"chunk_kb\": $kb," "$tmp/s/summary.json" || fail "summary.json has no chunk_kb $kb"
n=$(ls "$tmp/s" | grep -c '^shard_.*\.h5$'); [ "$n" -ge 4 ] || fail "want >= 4 shards, got $n"
for t in 1 3; do
  "$PREP" --verify --threads $t "$tmp/s" > "$tmp/out" 2> "$tmp/err" || { cat "$tmp/out" "$tmp/err"; fail "clean shards, $t thread(s)"; }
  [ ! -s "$tmp/out" ] || fail "clean shards printed: $(cat "$tmp/out")"
  grep -q "verified $n shard(s), 2500 sequences" "$tmp/err" || fail "summary: $(cat "$tmp/err")"
done
"${MPI[@]}" "$PREP" --verify "$tmp/s" > "$tmp/out" 2> "$tmp/err" || { cat "$tmp/err"; fail "clean shards under mpirun"; }
grep -q "verified $n shard(s), 2500 sequences.*(2 rank(s)" "$tmp/err" || fail "mpirun summary: $(cat "$tmp/err")"
echo "ok: $n clean shards of $kb KiB chunks verify (1 and 3 threads, 2 ranks)"

# damage one shard on disk, away from both ends, at 5 places: about 5% of a shard's middle
# is bytes no reader looks at (free space and unused slots of HDF5's chunk index), where
# damage is harmless and rightly goes unreported; 5 places all landing there: ~1e-6
victim=$(printf '%s/s/shard_%05d.h5' "$tmp" $((RANDOM % n)))
size=$(stat -c %s "$victim")
for k in 1 2 3 4 5; do
  printf '\xde\xad\xbe\xef\x00\x11' | dd of="$victim" bs=1 seek=$((size * (20 + RANDOM % 40) / 100)) conv=notrunc status=none
done
for run in plain mpi; do
  if [ $run = mpi ]; then R=("${MPI[@]}"); else R=(); fi
  "${R[@]}" "$PREP" --verify "$tmp/s" > "$tmp/out" 2> "$tmp/err"; rc=$?
  [ $rc -ne 0 ] || fail "$run: a damaged shard passed: $(cat "$tmp/err")"
  [ "$(wc -l < "$tmp/out")" -eq 1 ] || { cat "$tmp/out"; fail "$run: want one line for one bad shard"; }
  grep -q "^$victim: " "$tmp/out" || fail "$run: the line does not name $victim: $(cat "$tmp/out")"
  grep -q ": 1 bad" "$tmp/err" || fail "$run: summary: $(cat "$tmp/err")"
  echo "ok ($run): $(cat "$tmp/out")"
done

# bad arguments: one line, non-zero
mkdir "$tmp/empty"
"$PREP" --verify "$tmp/empty" > /dev/null 2> "$tmp/err" && fail "empty directory accepted"
[ "$(wc -l < "$tmp/err")" -le 2 ] && grep -q "holds no \*.h5 shards" "$tmp/err" || fail "empty dir: $(cat "$tmp/err")"
"$PREP" --verify > /dev/null 2> "$tmp/err" && fail "--verify without shards accepted"
"$PREP" --chunk-kb 0 --synthetic 5 -o "$tmp/z" 2> "$tmp/err" && fail "--chunk-kb 0 accepted"
grep -q "chunk-kb" "$tmp/err" || fail "--chunk-kb 0: $(cat "$tmp/err")"
"$PREP" --verify -o "$tmp/z" "$tmp/s" 2> /dev/null && fail "--verify with -o accepted"
echo ok
