#!/usr/bin/env bash
# test_stream_error.sh NP - a shard damaged on disk in the middle of its data (a chunk of
# /tokens or /structure fails Fletcher32; the header and offsets are intact, so training
# starts): the run stops when the loader first needs that chunk, with one error line naming
# the shard, the dataset and the sequence, a checkpoint of the last completed step, exit 1
# (every rank agrees; NP = 2 runs two data ranks under mpirun). Once the shard is replaced,
# the same command resumes and ends with weights byte-identical to an undisturbed run:
# nothing was skipped and the checkpoint was the last good step.
set -uo pipefail
NP=${1:-1}
B=${NVWA_BUILD_ROOT:?}; S=${NVWA_SOURCE_ROOT:?}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# NVWA_TEST_LIGHT (the sanitizer pass): half the corpus and the steps
if [ "${NVWA_TEST_LIGHT:-0}" = 1 ]; then NSEQ=50 STEPS=100; else NSEQ=100 STEPS=200; fi
"$B/tools/nvwa-prep" --synthetic $NSEQ --seed $RANDOM --chunk-kb 1 -o "$tmp/good" -q || fail "nvwa-prep"
cp -r "$tmp/good" "$tmp/data"
ds=$([ $((RANDOM % 2)) = 0 ] && echo tokens || echo structure)
# a chunk in the middle; STEPS is two epochs of the corpus: the chunk is needed well before
"$B/tests/faults/damage_chunk" "$tmp/data/shard_00000.h5" $ds $((NSEQ / 20 + RANDOM % (NSEQ / 4))) || fail "damage_chunk"
ARGS=("$S/configs/tiny.ini" train.steps=$STEPS data.seq-length=128 data.micro-batch=2
      data.global-batch=4 model.num-layers=2 checkpoint.every=7 checkpoint.keep=2 log.every=50 -q)
if [ "$NP" -gt 1 ]; then RUN=(mpirun -q --oversubscribe -np "$NP" --bind-to none "$B/nvwa-train")
else RUN=("$B/nvwa-train"); fi

"${RUN[@]}" "${ARGS[@]}" data.train="$tmp/data" checkpoint.dir="$tmp/run" > "$tmp/out" 2> "$tmp/err"; rc=$?
[ $rc -ne 0 ] || { cat "$tmp/out"; fail "exit 0 with a damaged shard"; }
[ "$(grep -c '^nvwa: error' "$tmp/err")" -eq 1 ] && [ "$(grep -vc '^nvwa: error\|^---> HINT' "$tmp/err")" -eq 0 ] \
  || { cat "$tmp/err"; fail "expected one error line (and a hint) on stderr"; }
grep -Eq "^nvwa: error: $tmp/data/shard_00000.h5: dataset /$ds: cannot read sequence [0-9]+ of the shard" "$tmp/err" \
  || { cat "$tmp/err"; fail "the line must name the shard, /$ds and the sequence"; }
stop=$(sed -n 's/.*training stopped before step \([0-9]*\), the state of step \([0-9]*\) is under.*/\1 \2/p' "$tmp/err")
if grep -q "training stopped before step 1 (no step completed: nothing to save)" "$tmp/err"; then
  stop="1 0" # the very first step needed the damaged chunk
  [ ! -e "$tmp/run/latest" ] || fail "a checkpoint was saved before any step"
fi
[ -n "$stop" ] || { cat "$tmp/err"; fail "no 'stopped before step N, the state of step N-1' in the line"; }
read -r next last <<< "$stop"
[ "$last" -eq $((next - 1)) ] || fail "stopped before $next but saved $last"
[ "$last" -lt $STEPS ] || fail "the damaged chunk was never read"
[ "$last" -eq 0 ] || [ "$(sed -n 's/^step_0*\([0-9][0-9]*\)$/\1/p' "$tmp/run/latest")" = "$last" ] \
  || { cat "$tmp/err"; fail "latest is not step $last: $(cat "$tmp/run/latest")"; }
echo "ok: stopped before step $next, checkpoint of step $last: $(head -1 "$tmp/err" | cut -c1-160)"

cp "$tmp/good/shard_00000.h5" "$tmp/data/shard_00000.h5" # the shard rewritten
"${RUN[@]}" "${ARGS[@]}" data.train="$tmp/data" checkpoint.dir="$tmp/run" > "$tmp/out2" 2>&1 || { cat "$tmp/out2"; fail "resume"; }
"${RUN[@]}" "${ARGS[@]}" data.train="$tmp/good" checkpoint.dir="$tmp/ref" > "$tmp/ref.log" 2>&1 || { cat "$tmp/ref.log"; fail "reference"; }
"$B/tools/nvwa-ckpt" export "$tmp/run" -o "$tmp/run.safetensors" > /dev/null || fail "export run"
"$B/tools/nvwa-ckpt" export "$tmp/ref" -o "$tmp/ref.safetensors" > /dev/null || fail "export ref"
cmp "$tmp/ref.safetensors" "$tmp/run.safetensors" || fail "weights after stop + resume differ from the undisturbed run"
echo "ok: resumed at step $last after the fix; weights byte-identical to the undisturbed run"
