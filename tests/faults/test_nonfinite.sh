#!/usr/bin/env bash
# test_nonfinite.sh - numerical faults (docs/reliability.md). NVWA_TEST_FAULT injects a NaN
# or an Inf into one rank's gradient, or a NaN into one rank's loss, of a 2-rank
# data-parallel job (mpirun): the step is skipped on every rank (the state hashes entering
# the next step equal those entering the skipped one, on both ranks), logged as a JSONL
# event naming the rank and the tensor, and training goes on to the end. Then
# [train] max-skipped-steps consecutive faults stop the job: a clear message, exit 1, and a
# checkpoint whose weights equal those of the last good step (exported byte-identical to a
# checkpoint written at that step by a fault-free run).
set -uo pipefail
B=${NVWA_BUILD_ROOT:?}; S=${NVWA_SOURCE_ROOT:?}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$B/tools/nvwa-prep" --synthetic 300 --seed 7 -o "$tmp/shards" -q || fail "nvwa-prep"
STEPS=8
ARGS=("$S/configs/tiny.ini" data.train="$tmp/shards" train.steps=$STEPS data.seq-length=64
      data.micro-batch=2 data.global-batch=4 model.num-layers=2 log.every=1 -q)
RUN=(mpirun --oversubscribe -np 2 --bind-to none "$B/nvwa-train")

# state hash (master weights) entering step N on rank R
hash_at() { sed -n "s/^hash step $2 rank $3: master \([0-9a-f]*\) .*/\1/p" "$1"; }

# one injected fault, one skipped step; training finishes
one_fault() { # name, NVWA_TEST_FAULT, expected reason, rank, tensor
  local name=$1 fault=$2 reason=$3 rank=$4 tensor=$5 step=3
  NVWA_DEBUG_HASH=1 NVWA_TEST_FAULT="$fault" "${RUN[@]}" "${ARGS[@]}" log.file="$tmp/$name.jsonl" \
      > "$tmp/$name.out" 2> "$tmp/$name.err" || { cat "$tmp/$name.err"; fail "$name: exit $?"; }
  local ev; ev=$(grep '"event": "skipped_step"' "$tmp/$name.jsonl")
  [ "$(printf '%s\n' "$ev" | grep -c .)" -eq 1 ] || fail "$name: expected 1 skipped_step event, got: $ev"
  printf '%s\n' "$ev" | grep -q "\"step\": $step, \"reason\": \"$reason\", \"rank\": $rank, \"tensor\": \"$tensor\"" \
      || fail "$name: event does not name step $step, $reason, rank $rank, tensor $tensor: $ev"
  grep -q "\"step\": $step, .*\"skipped\": true" "$tmp/$name.jsonl" || fail "$name: step record not marked skipped"
  [ "$(grep -c '"step": [0-9]*, "total_steps"' "$tmp/$name.jsonl")" -eq $STEPS ] || fail "$name: training did not go on to step $STEPS"
  grep -q "warning: step $step skipped" "$tmp/$name.err" || fail "$name: no warning on stderr"
  for r in 0 1; do
    local before after next
    before=$(hash_at "$tmp/$name.out" $step $r); after=$(hash_at "$tmp/$name.out" $((step + 1)) $r)
    next=$(hash_at "$tmp/$name.out" $((step + 2)) $r)
    [ -n "$before" ] && [ "$before" = "$after" ] || fail "$name: rank $r changed its weights in the skipped step ($before -> $after)"
    [ "$after" != "$next" ] || fail "$name: rank $r did not train after the skipped step"
  done
  [ "$(hash_at "$tmp/$name.out" $((step + 2)) 0)" = "$(hash_at "$tmp/$name.out" $((step + 2)) 1)" ] \
      || fail "$name: the ranks' weights differ after the skipped step"
  echo "ok: $name: $ev"
}
one_fault grad_nan "grad-nan:rank=1:step=3" "non-finite gradient" 1 layers.0.attn.wqkv
one_fault grad_inf "grad-inf:rank=0:step=3:tensor=head.struct.bias" "non-finite gradient" 0 head.struct.bias
one_fault loss_nan "loss-nan:rank=1:step=3" "non-finite loss" 1 loss

# max-skipped-steps: faults at steps 4.. on rank 1 -> steps 4, 5, 6 skipped, stop at 6 with
# the weights of step 3
NVWA_TEST_FAULT="grad-nan:rank=1:step=4:count=100" "${RUN[@]}" "${ARGS[@]}" train.max-skipped-steps=3 \
    checkpoint.dir="$tmp/ck" checkpoint.every=100 log.file="$tmp/stop.jsonl" > "$tmp/stop.out" 2> "$tmp/stop.err"
rc=$?
[ $rc -ne 0 ] || fail "max-skipped-steps: exit 0"
grep -q "nvwa: error: 3 consecutive non-finite steps (\[train\] max-skipped-steps = 3); stopped at step 6 with the weights of step 3 saved under $tmp/ck" "$tmp/stop.err" \
    || { cat "$tmp/stop.err"; fail "max-skipped-steps: no clear message"; }
[ "$(grep -c 'nvwa: error' "$tmp/stop.err")" -eq 1 ] || { cat "$tmp/stop.err"; fail "max-skipped-steps: more than one error line"; }
[ "$(grep -c '"event": "skipped_step"' "$tmp/stop.jsonl")" -eq 3 ] || fail "max-skipped-steps: expected 3 skip events"
[ "$(cat "$tmp/ck/latest")" = "step_00000006" ] || fail "max-skipped-steps: latest is $(cat "$tmp/ck/latest" 2>/dev/null)"
"$B/tools/nvwa-ckpt" verify "$tmp/ck" > /dev/null || fail "max-skipped-steps: the checkpoint does not verify"
# reference: the same run without faults, checkpoint at step 3
"${RUN[@]}" "${ARGS[@]}" checkpoint.dir="$tmp/ref" checkpoint.every=3 checkpoint.keep=10 > "$tmp/ref.out" 2>&1 \
    || { cat "$tmp/ref.out"; fail "reference run"; }
"$B/tools/nvwa-ckpt" export "$tmp/ck" -o "$tmp/stop.safetensors" > /dev/null || fail "export"
"$B/tools/nvwa-ckpt" export "$tmp/ref/step_00000003" -o "$tmp/ref3.safetensors" > /dev/null || fail "export ref"
cmp -s "$tmp/stop.safetensors" "$tmp/ref3.safetensors" || fail "max-skipped-steps: the saved weights are not those of step 3"
echo "ok: max-skipped-steps stops with exit $rc and the weights of the last good step"
