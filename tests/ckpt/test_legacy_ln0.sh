#!/usr/bin/env bash
# test_legacy_ln0.sh - checkpoints saved before [model] first-attn-norm existed (their config
# has no such key, and layer 0 has its attention norm): they read as first-attn-norm = true,
# so every tool loads them with their stored config; nvwa-ckpt export names the key in its
# metadata; resuming under the new default (false) stops with one line naming the key.
set -euo pipefail
B=${NVWA_BUILD_ROOT:?}; S=${NVWA_SOURCE_ROOT:?}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
run=("$B/nvwa-train" "$S/configs/tiny.ini" train.device=cpu checkpoint.dir="$tmp/ck" checkpoint.every=0 -q)
"${run[@]}" model.first-attn-norm=true train.steps=2 > "$tmp/t.out" || fail "nvwa-train: $(tail -2 "$tmp/t.out")"
m=$(ls "$tmp"/ck/step_*/manifest.ini)
grep -q '^first-attn-norm = true$' "$m" || fail "the manifest does not store first-attn-norm"
sed -i '/^first-attn-norm/d' "$m" # as written before the key existed
grep -q 'layers.0.attn_norm.weight' "$m" || fail "no layers.0.attn_norm.weight in the tensor list"

"$B/tools/nvwa-ckpt" info "$tmp/ck" > "$tmp/info" || fail "nvwa-ckpt info"
grep -q '^first-attn-norm = true$' "$tmp/info" || fail "a config without the key does not read as true"
"$B/tools/nvwa-ckpt" verify "$tmp/ck" > /dev/null || fail "nvwa-ckpt verify"
printf '>a\nACGUACGUAAGGCUU\n>b\nGGGAAACCC\n' > "$tmp/s.fa"
"$B/tools/nvwa-embed" -c "$tmp/ck" "$tmp/s.fa" -o "$tmp/e.h5" -d cpu -q || fail "nvwa-embed"
"$B/tools/nvwa-ckpt" export "$tmp/ck" -o "$tmp/m.safetensors" > /dev/null || fail "nvwa-ckpt export"
head -c 4096 "$tmp/m.safetensors" | grep -aq '"first-attn-norm":"true"' || fail "export metadata lacks first-attn-norm true"

# resume under the new default: one line naming the key and the fix
if "${run[@]}" train.steps=3 > "$tmp/r.out" 2> "$tmp/r.err"; then fail "resumed a first-attn-norm = true checkpoint as false"; fi
grep -q 'first-attn-norm is true there, false in this run' "$tmp/r.err" || fail "message: $(cat "$tmp/r.err")"
grep -q 'HINT: set model.first-attn-norm=true' "$tmp/r.err" || fail "no hint: $(cat "$tmp/r.err")"
"${run[@]}" model.first-attn-norm=true train.steps=3 > "$tmp/r.out" 2>&1 || fail "resume with the key: $(tail -2 "$tmp/r.out")"
grep -q 'resumed from .* at step 2' "$tmp/r.out" || fail "did not resume: $(cat "$tmp/r.out")"
echo "ok: a checkpoint saved without the key loads as first-attn-norm = true"
