#!/usr/bin/env bash
# test_train_tiny.sh - nvwa-train on configs/tiny.ini learns: on synthetic shards the loss
# falls clearly within a few hundred steps (first logged loss vs the last ones), the
# JSONL log has one record per logged step, and a bad config is one line and exit 2.
set -euo pipefail
B=${NVWA_BUILD_ROOT:?}; S=${NVWA_SOURCE_ROOT:?}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$B/tools/nvwa-prep" --synthetic 2000 --seed $RANDOM -o "$tmp/shards" -q
steps=200
# NVWA_TEST_LIGHT=1 (the sanitizer pass of tools/run-tests): 40 steps, the same code paths;
# whether the loss falls is judged in the normal pass only
light=${NVWA_TEST_LIGHT:-0}
[ "$light" = 1 ] && steps=40
"$B/nvwa-train" "$S/configs/tiny.ini" data.train="$tmp/shards" train.steps=$steps \
    data.micro-batch=4 data.global-batch=4 log.every=10 log.file="$tmp/log.jsonl" -q > "$tmp/out" \
    || fail "nvwa-train exited $?"
n=$(grep -c '"step"' "$tmp/log.jsonl")
[ "$n" -eq $((steps / 10)) ] || fail "expected $((steps / 10)) log records, got $n"
# first record vs the mean of the last three
[ "$light" = 1 ] || awk -F'"loss": ' '/"step"/ { split($2, a, ","); l[NR] = a[1] }
  END { first = l[1]; last = (l[NR] + l[NR-1] + l[NR-2]) / 3;
        printf "loss: first %.4f, last three %.4f\n", first, last;
        if (!(last < first - 0.5)) { print "FAIL: the loss did not fall clearly" > "/dev/stderr"; exit 1 } }' "$tmp/log.jsonl"
[ "$light" = 1 ] || awk -F'"mlm_loss": ' '/"step"/ { split($2, a, ","); l[NR] = a[1] }
  END { last = (l[NR] + l[NR-1] + l[NR-2]) / 3; printf "mlm loss, last three %.4f (ln 4 = 1.386)\n", last;
        if (!(last < 1.386)) { print "FAIL: MLM loss not below the uniform-ACGU entropy" > "/dev/stderr"; exit 1 } }' "$tmp/log.jsonl"

# a bad config: one line, exit 2, before any work
set +e
"$B/nvwa-train" "$S/configs/tiny.ini" model.hidden-size=100 > "$tmp/o2" 2> "$tmp/e2"; rc=$?
set -e
[ $rc -eq 2 ] || fail "bad config exited $rc, not 2"
[ "$(wc -l < "$tmp/e2")" -eq 1 ] || fail "bad config printed $(wc -l < "$tmp/e2") lines: $(cat "$tmp/e2")"
echo "ok"
