#!/usr/bin/env bash
# test_train_bf16.sh - the whole trainer on cpu-bf16 ([train] device = cpu, precision =
# bf16), the CUDA backend's twin, so that every path a GPU run takes runs in CI:
#   - it trains: the loss falls clearly, and every logged loss stays within 1% of the fp32
#     run's with the same seed and data (measured: <= 0.08% over 150 steps of tiny; bf16
#     rounds each act tensor to 8 significant bits, and the loss is a mean over ~300
#     positions per step, so the two curves stay close while the weights drift apart);
#   - held-out evaluation inside the trainer runs on it;
#   - a checkpoint written at bf16 resumes at fp32 and one written at fp32 resumes at bf16
#     (the checkpoint holds fp32 masters either way): the continued losses are within 1% of
#     an uninterrupted run at the resumed precision;
#   - nvwa-eval and nvwa-embed on cpu-bf16: eval's loss within 1% of the fp32 evaluation of
#     the same checkpoint, embed's file equal to the model's own forward on cpu-bf16.
# usage: test_train_bf16.sh CHECK_EMBED_FILE
set -euo pipefail
B=${NVWA_BUILD_ROOT:?}; S=${NVWA_SOURCE_ROOT:?}
CHECK=${1:?usage: test_train_bf16.sh CHECK_EMBED_FILE}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
jget() { awk -v k="\"$1\": " '{ i = index($0, k); if (i) { s = substr($0, i + length(k)); sub(/[,}].*/, "", s); print s; exit } }'; }
seed=${NVWA_TEST_SEED:-$RANDOM} # (a failure prints it: rerun with NVWA_TEST_SEED)
echo "seed $seed"
"$B/tools/nvwa-prep" --synthetic 2000 --seed $seed -o "$tmp/train" -q
"$B/tools/nvwa-prep" --synthetic 60 --seed $((seed + 1)) -o "$tmp/valid" -q
steps=100
light=${NVWA_TEST_LIGHT:-0} # the sanitizer pass: fewer steps, the same code paths
[ "$light" = 1 ] && steps=20
half=$((steps / 2))
COMMON=("$S/configs/tiny.ini" data.train="$tmp/train" data.valid="$tmp/valid" data.seq-length=128
        data.micro-batch=4 data.global-batch=4 log.every=10 log.eval-every=$half train.seed=$seed
        checkpoint.every=$half -q)
train() { # name precision [args...]
  local name=$1 prec=$2; shift 2
  OMP_NUM_THREADS=1 "$B/nvwa-train" "${COMMON[@]}" train.precision=$prec checkpoint.dir="$tmp/$name" \
      log.file="$tmp/$name.jsonl" "$@" > "$tmp/$name.out" 2>&1 || { cat "$tmp/$name.out"; fail "$name: exit $?"; }
}
losses() { grep '"step"' "$tmp/$1.jsonl" | grep -o '"loss": [0-9.e+-]*' | cut -d' ' -f2; }
close_losses() { # a b tol [from_step]: the logged losses of two runs, step by step
  paste -d' ' <(losses "$1") <(losses "$2") | awk -v tol="$3" -v a="$1" -v b="$2" '
    { d = $1 - $2; if (d < 0) d = -d; r = d / $1; if (r > w) w = r; n++ }
    END { printf "losses %s vs %s: %d steps, worst relative difference %.2e (tol %g)\n", a, b, n, w, tol;
          if (n == 0 || w > tol) exit 1 }' || fail "losses of $1 and $2 differ beyond $3"
}

# 1. trains, near the fp32 curve, with evaluation inside the trainer
train fp32 fp32 train.steps=$steps
train bf16 bf16 train.steps=$steps
grep -q "backend cpu-bf16" "$tmp/bf16.out" || fail "precision = bf16 with device = cpu did not select cpu-bf16"
[ "$(grep -c '"event": "eval"' "$tmp/bf16.jsonl")" -eq 2 ] || fail "expected 2 eval records from the bf16 run"
close_losses fp32 bf16 0.01
[ "$light" = 1 ] || losses bf16 | awk '{ l[NR] = $1 } END { first = l[1]; last = (l[NR] + l[NR-1] + l[NR-2]) / 3;
    printf "bf16 loss: first %.4f, last three %.4f\n", first, last; if (!(last < first - 0.4)) exit 1 }' \
  || fail "the loss did not fall clearly on cpu-bf16"

# 2. checkpoints across precisions: resume the step-$half checkpoints at the other precision
#    and compare with the uninterrupted run at that precision
for pair in "bf16 fp32" "fp32 bf16"; do
  set -- $pair; from=$1; to=$2
  mkdir -p "$tmp/x_$from"
  cp -r "$tmp/$from/step_$(printf %08d $half)" "$tmp/x_$from/"
  echo "step_$(printf %08d $half)" > "$tmp/x_$from/latest"
  train "x_$from" "$to" train.steps=$steps
  grep -q "resumed from .*step_$(printf %08d $half) at step $half" "$tmp/x_$from.out" \
    || { cat "$tmp/x_$from.out"; fail "the $from checkpoint did not resume at $to"; }
  grep -q "backend $([ $to = bf16 ] && echo cpu-bf16 || echo cpu)," "$tmp/x_$from.out" || fail "resumed on the wrong backend"
  # the resumed run logs steps half+10 .. steps; compare with the same steps of the $to run
  grep '"step"' "$tmp/$to.jsonl" | awk -v h=$half -F'"step": ' '{ split($2, a, ","); if (a[1] + 0 > h) print }' > "$tmp/${to}_tail.jsonl"
  cp "$tmp/x_$from.jsonl" "$tmp/x_${from}_all.jsonl"
  grep '"step"' "$tmp/x_${from}_all.jsonl" > "$tmp/x_${from}_tail.jsonl"
  close_losses "${to}_tail" "x_${from}_tail" 0.01
done

# 3. nvwa-eval and nvwa-embed on cpu-bf16
"$B/tools/nvwa-eval" -c "$tmp/bf16" -d cpu-bf16 -o "$tmp/ev16.json" -q "$tmp/valid" \
  || fail "nvwa-eval on cpu-bf16"
"$B/tools/nvwa-eval" -c "$tmp/bf16" -d cpu -o "$tmp/ev32.json" -q "$tmp/valid" \
  || fail "nvwa-eval on cpu"
grep -q '"backend": "cpu-bf16"' "$tmp/ev16.json" || fail "nvwa-eval did not run on cpu-bf16: $(cat "$tmp/ev16.json")"
l16=$(jget mlm_loss < "$tmp/ev16.json"); l32=$(jget mlm_loss < "$tmp/ev32.json")
awk -v a="$l16" -v b="$l32" 'BEGIN { r = (a - b) / b; if (r < 0) r = -r;
  printf "nvwa-eval mlm loss: cpu-bf16 %s, cpu %s (relative %.2e)\n", a, b, r; exit !(r < 0.01) }' \
  || fail "nvwa-eval on cpu-bf16 is not within 1% of fp32"
awk -v s=$seed 'BEGIN { srand(s); for (i = 0; i < 12; i++) { printf ">s%d\n", i; n = 20 + int(rand() * 80);
       for (j = 0; j < n; j++) printf "%s", substr("ACGU", 1 + int(rand() * 4), 1); print "" } }' > "$tmp/emb.fa"
"$B/tools/nvwa-embed" -c "$tmp/bf16" -d cpu-bf16 --logits -o "$tmp/emb.h5" "$tmp/emb.fa" -q \
  || fail "nvwa-embed on cpu-bf16"
"$CHECK" "$tmp/bf16" "$tmp/emb.fa" "$tmp/emb.h5" 1 cpu-bf16 || fail "nvwa-embed's file is not cpu-bf16's forward"
echo ok
