#!/usr/bin/env bash
# test_disk_full.sh NP - a full disk during a checkpoint write (docs/reliability.md). A run
# saves a checkpoint at step 2; a resumed run's save at step 4 hits a full disk (a small
# tmpfs filled up where mounting works, else RLIMIT_FSIZE with SIGXFSZ ignored, so writes
# fail with EFBIG; NVWA_TEST_NO_TMPFS=1 forces that): it stops with exit 1 and one error line saying that the checkpoint was
# not saved and the previous one is intact; that one verifies, `latest` still names it, and
# a run without the limit resumes from it and finishes. NP = 2: two ranks under mpirun.
set -uo pipefail
NP=${1:-1}
B=${NVWA_BUILD_ROOT:?}; S=${NVWA_SOURCE_ROOT:?}
tmp=$(mktemp -d); mnt=""
cleanup() { [ -n "$mnt" ] && umount "$mnt" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$B/tools/nvwa-prep" --synthetic 200 --seed 3 -o "$tmp/shards" -q || fail "nvwa-prep"
ARGS=("$S/configs/tiny.ini" data.train="$tmp/shards" data.seq-length=64 data.micro-batch=2
      data.global-batch=4 model.num-layers=2 checkpoint.every=2 checkpoint.keep=3 -q)
if [ "$NP" -gt 1 ]; then RUN=(mpirun --oversubscribe -np "$NP" --bind-to none "$B/nvwa-train")
else RUN=("$B/nvwa-train"); fi

mkdir -p "$tmp/disk"
how=ulimit
if [ -z "${NVWA_TEST_NO_TMPFS:-}" ] && [ "$(id -u)" -eq 0 ] && mount -t tmpfs -o size=16m nvwa-test "$tmp/disk" 2>/dev/null; then
  mnt="$tmp/disk"; how=tmpfs
else # RLIMIT_FSIZE: MPI's own session files need a few MiB, so the files of this checkpoint
     # are made larger than the limit (a ~5.5M-parameter model: 22 MB of weights)
  ARGS+=(model.hidden-size=512 model.ffn-hidden-size=1024 model.num-attn-heads=8)
fi
CK="$tmp/disk/ck"
"${RUN[@]}" "${ARGS[@]}" train.steps=2 checkpoint.dir="$CK" > "$tmp/a.out" 2>&1 || { cat "$tmp/a.out"; fail "first run"; }
[ "$(cat "$CK/latest")" = step_00000002 ] || fail "no checkpoint at step 2"
if [ $how = tmpfs ]; then # leave 64 KiB: the next checkpoint's files do not fit
  avail=$(df -k --output=avail "$mnt" | tail -1)
  fallocate -l $(( (avail - 64) * 1024 )) "$mnt/filler" 2>/dev/null ||
    dd if=/dev/zero of="$mnt/filler" bs=1k count=$((avail - 64)) 2>/dev/null
  "${RUN[@]}" "${ARGS[@]}" train.steps=4 checkpoint.dir="$CK" > "$tmp/b.out" 2> "$tmp/b.err"; rc=$?
else
  ( trap '' XFSZ; ulimit -f 16384; exec "${RUN[@]}" "${ARGS[@]}" train.steps=4 checkpoint.dir="$CK" ) \
      > "$tmp/b.out" 2> "$tmp/b.err"; rc=$?
fi
echo "disk full via $how: exit $rc; stderr:"; cat "$tmp/b.err"
[ $rc -eq 1 ] || fail "the run with a full disk exited $rc, not 1"
[ "$(grep -c 'nvwa: error' "$tmp/b.err")" -eq 1 ] || fail "expected exactly one error line"
grep -q "nvwa: error: checkpoint at step 4 not saved: .*; the previous checkpoint $CK/step_00000002 is intact" "$tmp/b.err" \
    || fail "the error line does not say that the previous checkpoint is intact"
grep -qi "MPI_ABORT\|Sanitizer\|core dumped" "$tmp/b.err" && fail "abort noise on stderr"
[ "$(cat "$CK/latest")" = step_00000002 ] || fail "latest changed to $(cat "$CK/latest")"
[ -f "$CK/step_00000004/manifest.ini" ] && fail "a partial step_00000004 was committed"
rm -f "${mnt:-/nonexistent}/filler"
"$B/tools/nvwa-ckpt" verify "$CK" > /dev/null || fail "the previous checkpoint does not verify"
"${RUN[@]}" "${ARGS[@]}" train.steps=4 checkpoint.dir="$CK" > "$tmp/c.out" 2>&1 || { cat "$tmp/c.out"; fail "resume after the failure"; }
grep -q "resumed from .*step_00000002 at step 2" "$tmp/c.out" || fail "did not resume from step 2"
[ "$(cat "$CK/latest")" = step_00000004 ] || fail "resumed run did not save step 4"
echo "ok"
