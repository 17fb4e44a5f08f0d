#!/usr/bin/env bash
# test_kill_resume.sh NP - bit-exact resume (design section 9): a run killed with SIGKILL
# at random moments (at least 3 kills, one of them while a checkpoint is being written)
# and resumed each time ends with exported weights byte-identical to an uninterrupted run.
# Then SIGTERM: the run saves a checkpoint of that step, exits 0, and resuming finishes
# identical too. NP = 1 runs one process; NP = 2 runs two data-parallel ranks under mpirun.
# PRECISION (default fp32) bf16 runs it on cpu-bf16, whose state is staged through host
# copies for the checkpoint, as on a GPU.
# DEVICE (default cpu) cuda runs it on the GPU, with [train] attention = auto: the resumed
# runs must reuse the interrupted run's timed choice (<checkpoint dir>/attention-choice).
#   usage: test_kill_resume.sh [NP [PRECISION [DEVICE]]]
set -uo pipefail
NP=${1:-1}
PREC=${2:-fp32}
DEV=${3:-cpu}
# the sanitizer pass (NVWA_TEST_LIGHT=1) runs the fp32 kill tests: the same trainer and
# checkpoint code; cpu-bf16's ops are under the sanitizers in train_bf16 and parallel_bf16
if [ "${NVWA_TEST_LIGHT:-0}" = 1 ] && [ "$PREC" != fp32 ]; then
  echo "skip: the $PREC kill test runs in the normal pass only (NVWA_TEST_LIGHT)"; exit 77
fi
B=${NVWA_BUILD_ROOT:?}; S=${NVWA_SOURCE_ROOT:?}
tmp=$(mktemp -d); trap 'kill -9 $(jobs -p) 2>/dev/null; rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$B/tools/nvwa-prep" --synthetic 600 --seed $RANDOM -o "$tmp/shards" -q || fail "nvwa-prep"
STEPS=60 # enough checkpoints (every 3) that 4 rounds of kills cannot reach the end
ARGS=("$S/configs/tiny.ini" data.train="$tmp/shards" train.steps=$STEPS data.seq-length=128
      data.micro-batch=2 data.global-batch=4 model.num-layers=2 checkpoint.every=3
      checkpoint.keep=2 log.every=1 train.precision=$PREC train.device=$DEV -q)
if [ "$NP" -gt 1 ]; then
  RUN=(mpirun --oversubscribe -np "$NP" --bind-to none "$B/nvwa-train")
else
  RUN=("$B/nvwa-train")
fi

# reference: uninterrupted
"${RUN[@]}" "${ARGS[@]}" checkpoint.dir="$tmp/ref" > "$tmp/ref.log" 2>&1 || { cat "$tmp/ref.log"; fail "reference run"; }
"$B/tools/nvwa-ckpt" export "$tmp/ref" -o "$tmp/ref.safetensors" > /dev/null || fail "export ref"

# on the GPU the killed runs follow the reference's attention kernels (auto's timed choice,
# kept beside the checkpoints), as a requeued job follows its first run's
if [ "$DEV" = cuda ] && [ -f "$tmp/ref/attention-choice" ]; then
  mkdir -p "$tmp/run" "$tmp/term"; cp "$tmp/ref/attention-choice" "$tmp/run/"; cp "$tmp/ref/attention-choice" "$tmp/term/"
fi

latest_step() { sed -n 's/^step_0*\([0-9][0-9]*\)$/\1/p' "$tmp/run/latest" 2>/dev/null || echo 0; }

# killed run: kill -9 while a save is paused (its .tmp dir exists), then at random moments
kills=0
for round in 1 2 3 4; do
  [ "$(latest_step)" = "$STEPS" ] && break
  if [ $round -eq 1 ]; then
    NVWA_TEST_CKPT_PAUSE_MS=3000 "${RUN[@]}" "${ARGS[@]}" checkpoint.dir="$tmp/run" > "$tmp/k$round.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 600); do compgen -G "$tmp/run/step_*.tmp" > /dev/null && break; sleep 0.05; done
    compgen -G "$tmp/run/step_*.tmp" > /dev/null || fail "no checkpoint was being written to kill"
  else
    # let it commit at least one new checkpoint, then kill at a random moment after
    before=$(latest_step)
    "${RUN[@]}" "${ARGS[@]}" checkpoint.dir="$tmp/run" > "$tmp/k$round.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 3000); do [ "$(latest_step)" != "$before" ] && break; kill -0 $pid 2>/dev/null || break; sleep 0.02; done
    # then a random moment within the next few steps (a tiny step takes ~10 ms on an idle core)
    sleep "0.0$((RANDOM % 5))$((RANDOM % 10))"
  fi
  pkill -9 -P $pid 2>/dev/null; kill -9 $pid 2>/dev/null; pkill -9 -f "nvwa-train.*$tmp/run" 2>/dev/null
  wait $pid 2>/dev/null
  kills=$((kills + 1))
  echo "kill $kills: latest checkpoint step $(latest_step)"
done
[ $kills -ge 3 ] || fail "only $kills kills happened (the run finished too fast)"
[ "$(latest_step)" -gt 0 ] || fail "no checkpoint survived the kills: nothing was resumed"
"${RUN[@]}" "${ARGS[@]}" checkpoint.dir="$tmp/run" > "$tmp/final.log" 2>&1 || { cat "$tmp/final.log"; fail "final resume"; }
grep -q "resumed from" "$tmp/final.log" || fail "the final run did not resume"
resumes=$(cat "$tmp"/k*.log | grep -c "resumed from")
echo "resumed $resumes time(s) before the final run"
"$B/tools/nvwa-ckpt" export "$tmp/run" -o "$tmp/run.safetensors" > /dev/null || fail "export run"
cmp "$tmp/ref.safetensors" "$tmp/run.safetensors" || fail "weights after $kills kills differ from the uninterrupted run"
echo "after $kills kills (one during a save): weights byte-identical"

# SIGTERM (SIGUSR1 through mpirun): checkpoint of that step, exit 0, resume identical
"${RUN[@]}" "${ARGS[@]}" checkpoint.dir="$tmp/term" > "$tmp/term.log" 2>&1 &
pid=$!
for _ in $(seq 1 400); do [ -f "$tmp/term/latest" ] && break; sleep 0.05; done
# mpirun forwards SIGUSR1 to its ranks (SLURM's --signal sends it to the tasks)
if [ "$NP" -gt 1 ]; then kill -USR1 $pid; else kill -TERM $pid; fi
wait $pid; rc=$?
[ $rc -eq 0 ] || { cat "$tmp/term.log"; fail "SIGTERM: exit $rc, want 0"; }
grep -q "stopping after step" "$tmp/term.log" || { cat "$tmp/term.log"; fail "SIGTERM: no stop message"; }
stopped=$(sed -n 's/.*stopping after step \([0-9]*\).*/\1/p' "$tmp/term.log")
[ "$(sed -n 's/^step_0*\([0-9]*\)$/\1/p' "$tmp/term/latest")" = "$stopped" ] || fail "SIGTERM: no checkpoint of step $stopped"
"${RUN[@]}" "${ARGS[@]}" checkpoint.dir="$tmp/term" > "$tmp/term2.log" 2>&1 || fail "resume after SIGTERM"
"$B/tools/nvwa-ckpt" export "$tmp/term" -o "$tmp/term.safetensors" > /dev/null || fail "export term"
cmp "$tmp/ref.safetensors" "$tmp/term.safetensors" || fail "weights after SIGTERM + resume differ"
echo "SIGTERM at step $stopped: exit 0, checkpoint, resume identical"
echo ok
