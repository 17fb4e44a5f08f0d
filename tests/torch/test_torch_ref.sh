#!/usr/bin/env bash
# test_torch_ref.sh - nvwa against the independent PyTorch model (bench/torch_ref.py):
#   - torch_ref.py --self-test: its SDPA and flex masks equal an explicit loop mask, RoPE;
#   - a small model trained a few steps on CPU (synthetic shards), checkpointed, exported to
#     safetensors (fp32); the first global batches dumped with --dump-batches;
#   - per global batch, nvwa's loss (nvwa_loss: nv_model_step without gradients, scales
#     1/N_mlm and w/N_struct of the batch) against torch_ref.py --check in fp64:
#       nvwa fp32 CPU backend  vs torch fp64: relative difference <= 1e-5
#       nvwa cpu-f64 backend   vs torch fp64: relative difference <= 1e-10
#     (torch with SDPA and a dense mask; and with flex attention, forward only, where present)
#   - the gradients of one global batch, nvwa cpu-f64 vs torch fp64: per tensor
#     max |diff| / max |g| <= 1e-8.
# Python: the venv of tools/install-hf-env (tests/hf/python.sh); skipped (77) where it
# could not be made.
# usage: test_torch_ref.sh NVWA_LOSS
set -euo pipefail
B=${NVWA_BUILD_ROOT:?}; S=${NVWA_SOURCE_ROOT:?}
LOSS=${1:?usage: test_torch_ref.sh NVWA_LOSS}
. "$S/tests/hf/python.sh"
need_python torch safetensors h5py numpy
python3() { "$PY" "$@"; }
REF="$S/bench/torch_ref.py"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

python3 "$REF" --self-test || fail "torch_ref.py --self-test"

# 4 layers: global, local, local, global; sequences of 20..45 nucleotides (longer than the
# window radius 8), 2-3 segments per 128-token row and a pad tail
model=(model.hidden-size=64 model.ffn-hidden-size=96 model.num-layers=4 model.num-attn-heads=4
       model.local-window=16 model.global-attn-every=3 model.struct-loss-weight=0.5)
data=(data.train="$tmp/train" data.seq-length=128 data.micro-batch=2 data.global-batch=4)
"$B/tools/nvwa-prep" --synthetic 600 --seed 11 --max-len 45 -o "$tmp/train" -q || fail "nvwa-prep"
"$B/nvwa-train" "$S/configs/tiny.ini" "${model[@]}" "${data[@]}" train.steps=8 \
    optim.warmup-steps=2 checkpoint.dir="$tmp/ck" checkpoint.every=0 log.every=4 -q \
    > "$tmp/train.out" || fail "nvwa-train exited $?: $(tail -3 "$tmp/train.out")"
[ -f "$tmp/ck/latest" ] || fail "no checkpoint written"
"$B/tools/nvwa-ckpt" export "$tmp/ck" -o "$tmp/model.safetensors" > /dev/null || fail "nvwa-ckpt export"
"$B/nvwa-train" "$S/configs/tiny.ini" "${model[@]}" "${data[@]}" --dump-batches 3 \
    --output "$tmp/dump.h5" > /dev/null || fail "nvwa-train --dump-batches"

"$LOSS" "$tmp/ck" "$tmp/dump.h5" > "$tmp/nv32.jsonl" || fail "nvwa_loss (fp32)"
"$LOSS" "$tmp/ck" "$tmp/dump.h5" --f64 --grads "$tmp/g_nv.safetensors" --grad-batch 1 \
    > "$tmp/nv64.jsonl" || fail "nvwa_loss (f64)"
python3 "$REF" --check "$tmp/model.safetensors" --batches "$tmp/dump.h5" --dtype fp64 \
    --grads "$tmp/g_torch.safetensors" --grad-batch 1 > "$tmp/torch.jsonl" \
    || fail "torch_ref.py --check"

# the flex-attention path too (block mask from segment ids and positions), forward only on
# CPU, where the installed torch has it
: > "$tmp/flex.jsonl"
if python3 -c "import torch.nn.attention.flex_attention" > /dev/null 2>&1; then
    python3 "$REF" --check "$tmp/model.safetensors" --batches "$tmp/dump.h5" --dtype fp64 \
        --attn flex > "$tmp/flex.jsonl" || fail "torch_ref.py --check --attn flex"
fi

python3 - "$tmp/nv32.jsonl" "$tmp/nv64.jsonl" "$tmp/torch.jsonl" "$tmp/flex.jsonl" <<'EOF' || fail "losses differ"
import json, sys
load = lambda p: [json.loads(l) for l in open(p) if l.strip()]
nv32, nv64, tr, fl = (load(p) for p in sys.argv[1:5])
assert len(nv32) == len(nv64) == len(tr) == 3, (len(nv32), len(nv64), len(tr))
ok = True
cases = [("nvwa fp32", nv32, tr, "sdpa", 1e-5), ("nvwa f64 ", nv64, tr, "sdpa", 1e-10)]
if fl:
    cases.append(("nvwa f64 ", nv64, fl, "flex", 1e-10))
else:
    print("no flex_attention in this torch: flex path not checked")
for name, nv, ref, impl, tol in cases:
    for a, b in zip(nv, ref):
        assert a["n_mlm"] == b["n_mlm"] and a["n_struct"] == b["n_struct"], (a, b)
        rel = {k: abs(a[k] - b[k]) / abs(b[k]) for k in ("loss", "mlm_loss", "struct_loss")}
        good = max(rel.values()) <= tol
        ok &= good
        print(f"{name} vs torch fp64 {impl}, batch {a['batch']}: loss {a['loss']:.10f} vs {b['loss']:.10f}"
              f"  rel diff loss {rel['loss']:.2e} mlm {rel['mlm_loss']:.2e} struct {rel['struct_loss']:.2e}"
              f"  (n_mlm {a['n_mlm']}, n_struct {a['n_struct']}) {'ok' if good else 'FAIL > %g' % tol}")
sys.exit(0 if ok else 1)
EOF
python3 "$REF" --compare-grads "$tmp/g_nv.safetensors" "$tmp/g_torch.safetensors" --rtol 1e-8 \
    || fail "gradients differ (nvwa cpu-f64 vs torch fp64)"
echo "ok: nvwa matches torch_ref.py"
