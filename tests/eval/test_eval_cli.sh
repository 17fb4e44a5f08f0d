#!/usr/bin/env bash
# test_eval_cli.sh - nvwa-train with [data] valid and [log] eval-every, then nvwa-eval,
# nvwa-embed and nvwa-plot on what it wrote:
#   - a small model trained a few hundred steps on synthetic shards beats the unigram (MLM
#     loss and accuracy) and majority-class (structure accuracy) baselines on held-out data;
#   - nvwa-eval on the final checkpoint gives exactly the trainer's last eval record
#     (same weights, fixed masking seed); --max-seqs; bad shard: one line, non-zero;
#   - nvwa-embed --logits equals the model's own forward (check_embed_file), with a sequence
#     longer than a window; --pool cls; bad FASTA: one line, non-zero, no OUT.h5 left;
#   - nvwa-plot writes non-empty PNGs (signature checked).
# usage: test_eval_cli.sh CHECK_EMBED_FILE
set -euo pipefail
B=${NVWA_BUILD_ROOT:?}; S=${NVWA_SOURCE_ROOT:?}
CHECK=${1:?usage: test_eval_cli.sh CHECK_EMBED_FILE}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
# one error line (a "---> HINT:" line may follow it, as everywhere in nvwa)
one_line() { [ "$(grep -vc '^---> HINT' "$1")" -eq 1 ] && head -1 "$1" | grep -q ': error: '; }
# value of "key": in a one-line JSON record
jget() { awk -v k="\"$1\": " '{ i = index($0, k); if (i) { s = substr($0, i + length(k)); sub(/[,}].*/, "", s); print s; exit } }'; }
seed=$RANDOM
echo "seed $seed"

"$B/tools/nvwa-prep" --synthetic 1000 --seed $seed -o "$tmp/train" -q
"$B/tools/nvwa-prep" --synthetic 60 --seed $((seed + 1)) -o "$tmp/valid" -q
steps=300
# NVWA_TEST_LIGHT=1 (the sanitizer pass of tools/run-tests): 60 steps, the same code paths;
# whether the trained model beats the baselines is judged in the normal pass only
light=${NVWA_TEST_LIGHT:-0}
[ "$light" = 1 ] && steps=60
"$B/nvwa-train" "$S/configs/tiny.ini" data.train="$tmp/train" data.valid="$tmp/valid" \
    train.steps=$steps log.eval-every=$((steps / 2)) log.every=25 log.file="$tmp/log.jsonl" \
    checkpoint.dir="$tmp/ck" checkpoint.every=0 data.micro-batch=4 data.global-batch=4 \
    data.seq-length=128 model.hidden-size=64 model.ffn-hidden-size=128 model.num-layers=2 \
    model.num-attn-heads=4 model.local-window=32 optim.warmup-steps=20 -q > "$tmp/train.out" \
    || fail "nvwa-train exited $?: $(tail -3 "$tmp/train.out")"
[ "$(grep -c '"event": "eval"' "$tmp/log.jsonl")" -eq 2 ] || fail "expected 2 eval records in the log"
[ "$(grep -c '^eval ' "$tmp/train.out")" -eq 2 ] || fail "expected 2 eval lines on stdout"
[ -f "$tmp/ck/latest" ] || fail "no checkpoint written"

# nvwa-eval on the final checkpoint: the trainer's last eval record, exactly
"$B/tools/nvwa-eval" --checkpoint "$tmp/ck" -o "$tmp/eval.json" "$tmp/valid" > "$tmp/eval.out" \
    || fail "nvwa-eval exited $?"
cat "$tmp/eval.out"
last=$(grep '"event": "eval"' "$tmp/log.jsonl" | tail -1)
for k in mlm_loss mlm_acc struct_acc struct_macro_acc mlm_count struct_count n_seqs; do
    a=$(jget $k <<< "$last"); b=$(jget $k < "$tmp/eval.json")
    [ -n "$a" ] && [ "$a" = "$b" ] || fail "$k: trainer's eval $a, nvwa-eval $b"
done
[ "$(jget step < "$tmp/eval.json")" = $steps ] || fail "eval.json step"
[ "$light" = 1 ] || awk -v m="$(jget mlm_loss < "$tmp/eval.json")" -v u="$(jget unigram_mlm_loss < "$tmp/eval.json")" \
    -v ma="$(jget mlm_acc < "$tmp/eval.json")" -v ua="$(jget unigram_mlm_acc < "$tmp/eval.json")" \
    -v sa="$(jget struct_acc < "$tmp/eval.json")" -v ja="$(jget majority_struct_acc < "$tmp/eval.json")" \
    -v sm="$(jget struct_macro_acc < "$tmp/eval.json")" -v jm="$(jget majority_struct_macro_acc < "$tmp/eval.json")" \
    'BEGIN { printf "model vs baseline: mlm loss %.4f vs %.4f, mlm acc %.4f vs %.4f, struct acc %.4f vs %.4f, macro %.4f vs %.4f\n", m, u, ma, ua, sa, ja, sm, jm;
             if (!(m < u && ma > ua && sa > ja && sm > jm)) { print "FAIL: the trained model does not beat the baselines" > "/dev/stderr"; exit 1 } }'
"$B/tools/nvwa-eval" --checkpoint "$tmp/ck" --max-seqs 7 -q -o "$tmp/e7.json" "$tmp/valid" || fail "--max-seqs"
[ "$(jget n_seqs < "$tmp/e7.json")" = 7 ] || fail "--max-seqs 7 evaluated $(jget n_seqs < "$tmp/e7.json")"
set +e
"$B/tools/nvwa-eval" --checkpoint "$tmp/ck" "$tmp/nothing.h5" > /dev/null 2> "$tmp/err"; rc=$?
set -e
[ $rc -ne 0 ] && one_line "$tmp/err" || fail "bad shard: rc $rc, stderr: $(cat "$tmp/err")"

# nvwa-embed: sequences that fit a window, one longer than a window, lowercase and T
awk -v seed=$seed 'BEGIN { srand(seed); split("A C G U a c g t N", nt, " ");
    for (i = 1; i <= 12; i++) { len = (i == 5) ? 300 + int(rand() * 100) : 1 + int(rand() * 120);
      printf ">seq%d some description\n", i; s = "";
      for (j = 0; j < len; j++) { s = s nt[1 + int(rand() * 9)]; if (length(s) == 60) { print s; s = "" } }
      if (s != "") print s } }' > "$tmp/in.fa"
"$B/tools/nvwa-embed" --checkpoint "$tmp/ck" "$tmp/in.fa" -o "$tmp/emb.h5" --logits --batch-tokens 300 \
    || fail "nvwa-embed exited $?"
"$CHECK" "$tmp/ck" "$tmp/in.fa" "$tmp/emb.h5" 1 || fail "nvwa-embed --logits output vs the forward"
"$B/tools/nvwa-embed" --checkpoint "$tmp/ck" "$tmp/in.fa" -o "$tmp/cls.h5" --pool cls -q || fail "--pool cls"
[ -s "$tmp/cls.h5" ] || fail "--pool cls wrote nothing"
if command -v h5dump > /dev/null; then
    h5dump -A "$tmp/cls.h5" | grep -q '"cls"' || fail "pool attribute"
fi
set +e
printf ">ok\nACGU\n>bad\nACXGU\n" > "$tmp/bad.fa"
"$B/tools/nvwa-embed" --checkpoint "$tmp/ck" "$tmp/bad.fa" -o "$tmp/bad.h5" > /dev/null 2> "$tmp/err"; rc=$?
set -e
[ $rc -ne 0 ] || fail "bad FASTA accepted"
one_line "$tmp/err" || fail "bad FASTA: $(cat "$tmp/err")"
ls "$tmp" | grep -q '^bad.h5' && fail "a partial bad.h5 was left: $(ls "$tmp")" || true
echo "bad FASTA: $(cat "$tmp/err")"

# nvwa-plot
"$B/tools/nvwa-plot" "$tmp/log.jsonl" -o "$tmp/curves" > /dev/null || fail "nvwa-plot exited $?"
for f in loss lr throughput; do
    p="$tmp/curves-$f.png"
    [ -s "$p" ] || fail "$p empty or missing"
    [ "$(head -c 8 "$p" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] || fail "$p is not a PNG"
done
set +e
"$B/tools/nvwa-plot" "$tmp/in.fa" -o "$tmp/x" 2> "$tmp/err"; rc=$?
set -e
[ $rc -ne 0 ] && one_line "$tmp/err" || fail "nvwa-plot on a non-log: rc $rc: $(cat "$tmp/err")"
echo ok
