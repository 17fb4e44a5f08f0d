#!/usr/bin/env bash
# test_hf.sh - nvwa models in the real Hugging Face library (docs/huggingface.md):
#   for tiny (d 96, window 64) and a variant (d 64, 4 layers, window 128, seq-length 512),
#   trained a few steps on CPU:
#   - nvwa-ckpt export --hf loads with AutoModelForMaskedLM / AutoTokenizer / fill-mask and
#     gives nvwa-embed's hidden states, MLM and structure logits to 1e-5 relative, alone and
#     padded, on generated sequences and real RNA (/work/shared/data when present);
#   - export -> import -> export is byte-identical (README.md: but for its name and step);
#   - the imported checkpoint embeds to the same bits and trains on (resume at step 0);
#   - a directory transformers wrote itself (save_pretrained) imports to the same model;
#   - refusals: a first-attn-norm = true model, and configs nvwa cannot express (naming the key).
# Skipped (77) where tools/install-hf-env could not make its venv (no PyPI).
set -euo pipefail
B=${NVWA_BUILD_ROOT:?}; S=${NVWA_SOURCE_ROOT:?}
. "$S/tests/hf/python.sh"
need_python torch transformers safetensors h5py numpy
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
CK="$B/tools/nvwa-ckpt" EMBED="$B/tools/nvwa-embed" TRAIN="$B/nvwa-train" CHECK="$S/tests/hf/check_hf.py"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
steps=4
[ "${NVWA_TEST_LIGHT:-0}" = 1 ] && steps=2

real=()
for d in "${NVWA_DATA:-}" "$S/../shared/data" "$S/shared/data" /work/shared/data; do
    if [ -n "$d" ] && [ -f "$d/rnacentral-sample-1400.fasta" ]; then
        real=("$d/rnacentral-sample-1400.fasta" "$d/RF00005.fasta")
        echo "real sequences from $d"
        break
    fi
done
[ ${#real[@]} = 0 ] && echo "no shared data: generated sequences only"

# same-embed A.h5 B.h5: the datasets of two nvwa-embed files are identical
same_embed() {
    "$PY" - "$1" "$2" <<'EOF'
import sys, h5py, numpy as np
a, b = (h5py.File(p, "r") for p in sys.argv[1:3])
for k in ("hidden", "mlm_logits", "struct_logits", "offsets"):
    assert np.array_equal(a[k][:], b[k][:]), k
EOF
}

run_case() { # name seq-length overrides...
    local name=$1 L=$2
    shift 2
    local w="$tmp/$name"
    mkdir -p "$w"
    echo "== $name: $*"
    "$TRAIN" "$S/configs/tiny.ini" "$@" data.seq-length="$L" train.steps=$steps train.device=cpu \
        train.precision=fp32 optim.warmup-steps=1 checkpoint.dir="$w/ck" checkpoint.every=0 -q \
        > "$w/train.out" || fail "$name: nvwa-train: $(tail -3 "$w/train.out")"
    "$CK" export "$w/ck" --hf "$w/hf" > /dev/null || fail "$name: export --hf"
    "$CK" export "$w/ck" --hf "$w/hf_bf16" --dtype bf16 > /dev/null || fail "$name: export --hf --dtype bf16"
    "$PY" "$CHECK" seqs "$w/hf" "$L" "$w/seqs.fa" "${real[@]}" || fail "$name: sequences"
    "$EMBED" -c "$w/ck" "$w/seqs.fa" -o "$w/emb.h5" --logits -d cpu -q || fail "$name: nvwa-embed"
    "$PY" "$CHECK" compare "$w/hf" "$w/emb.h5" "$w/seqs.fa" --bf16 "$w/hf_bf16" ||
        fail "$name: transformers differs from nvwa"

    # export -> import -> export
    "$CK" import --hf "$w/hf" -o "$w/imp" > "$w/import.out" || fail "$name: import --hf: $(cat "$w/import.out")"
    "$CK" export "$w/imp" --hf "$w/hf2" > /dev/null || fail "$name: export of the imported checkpoint"
    for f in "$w"/hf/*; do
        b=$(basename "$f")
        [ "$b" = README.md ] && continue
        cmp -s "$f" "$w/hf2/$b" || fail "$name: $b differs after export -> import -> export"
    done
    # the card differs only in its title (the directory's name) and the step it describes
    strip() { grep -v -e '^# ' -e '^| steps |' -e '^| tokens seen |' "$1"; }
    diff <(strip "$w/hf/README.md") <(strip "$w/hf2/README.md") > /dev/null ||
        fail "$name: README.md differs beyond title and step"
    echo "export -> import -> export: $(ls "$w/hf" | wc -l) files byte-identical (README.md but for name and step)"
    "$EMBED" -c "$w/imp" "$w/seqs.fa" -o "$w/emb2.h5" --logits -d cpu -q || fail "$name: nvwa-embed (imported)"
    same_embed "$w/emb.h5" "$w/emb2.h5" || fail "$name: the imported checkpoint embeds differently"
    "$TRAIN" "$w/imp/config.ini" train.steps=1 -q > "$w/cont.out" 2>&1 ||
        fail "$name: continued pretraining: $(tail -3 "$w/cont.out")"
    grep -q "resumed from .*step_00000000 at step 0" "$w/cont.out" || fail "$name: did not resume from the import"
    [ -d "$w/imp/step_00000001" ] || fail "$name: no checkpoint after continued pretraining"
    echo "imported checkpoint: same embeddings to the bit, trains on from step 0"
}

run_case tiny 256
run_case window128 512 model.hidden-size=64 model.num-attn-heads=2 model.ffn-hidden-size=172 \
    model.num-layers=4 model.local-window=128 data.micro-batch=2 data.global-batch=2

# a model saved by transformers itself (save_pretrained: its own config.json layout, no
# struct_head.safetensors) imports as a third-party ModernBERT: same MLM model to 1e-5
w="$tmp/tiny"
"$PY" - "$w/hf" "$tmp/saved" <<'EOF2' || fail "save_pretrained"
import sys
from transformers import AutoModelForMaskedLM, AutoTokenizer
AutoModelForMaskedLM.from_pretrained(sys.argv[1]).save_pretrained(sys.argv[2])
AutoTokenizer.from_pretrained(sys.argv[1]).save_pretrained(sys.argv[2])
EOF2
"$CK" import --hf "$tmp/saved" -o "$tmp/saved_ck" > "$tmp/saved.out" || fail "import of a save_pretrained directory"
grep -q "no struct_head.safetensors" "$tmp/saved.out" || fail "import did not say the structure head starts from the init"
"$EMBED" -c "$tmp/saved_ck" "$w/seqs.fa" -o "$tmp/saved.h5" --logits -d cpu -q || fail "nvwa-embed (save_pretrained import)"
"$PY" - "$w/emb.h5" "$tmp/saved.h5" <<'EOF2' || fail "the save_pretrained import computes another model"
import sys, h5py, numpy as np
a, b = (h5py.File(p, "r") for p in sys.argv[1:3])
for k in ("hidden", "mlm_logits"):
    x, y = a[k][:].astype(np.float64), b[k][:].astype(np.float64)
    r = np.abs(x - y).max() / np.abs(x).max()
    print(f"save_pretrained -> import: {k} max relative difference {r:.2e}")
    assert r <= 1e-5, k
EOF2

# the model card takes evaluation figures from an nvwa-eval -o file
printf '{"checkpoint": "x", "step": 4, "n_seqs": 12, "n_tokens": 3456, "mlm_loss": 1.25, "perplexity": 3.4903, "mlm_acc": 0.4567, "struct_acc": 0.789}\n' > "$tmp/eval.json"
"$CK" export "$w/ck" --hf "$tmp/carded" --eval "$tmp/eval.json" > /dev/null || fail "export --hf --eval"
grep -q '^| perplexity | 3.4903 |$' "$tmp/carded/README.md" && grep -q '^| masked-LM accuracy | 45.67% |$' "$tmp/carded/README.md" ||
    fail "README.md lacks the evaluation figures"
echo "model card: evaluation figures from --eval"

# --- refusals -----------------------------------------------------------------------------
refuse() { # what expected-substring command...
    local what=$1 want=$2
    shift 2
    if "$@" > "$tmp/r.out" 2> "$tmp/r.err"; then fail "$what: accepted"; fi
    grep -q -- "$want" "$tmp/r.err" || fail "$what: message lacks '$want': $(cat "$tmp/r.err")"
    [ "$(wc -l < "$tmp/r.err")" -le 2 ] || fail "$what: more than one error line: $(cat "$tmp/r.err")"
    echo "refused ($what): $(head -1 "$tmp/r.err")"
}
"$TRAIN" "$S/configs/tiny.ini" model.first-attn-norm=true train.steps=1 train.device=cpu \
    checkpoint.dir="$tmp/ln0" -q > /dev/null || fail "nvwa-train first-attn-norm=true"
refuse "first-attn-norm = true" "first-attn-norm = true" "$CK" export "$tmp/ln0" --hf "$tmp/ln0_hf"
[ ! -e "$tmp/ln0_hf" ] || fail "a refused export left $tmp/ln0_hf"
"$CK" export "$tmp/ln0" -o "$tmp/ln0.safetensors" > /dev/null || fail "plain export of first-attn-norm = true"
edit() { # key json-value -> $tmp/bad (a copy of the tiny export with config.json[key] = value)
    rm -rf "$tmp/bad"
    cp -r "$w/hf" "$tmp/bad"
    python3 - "$tmp/bad/config.json" "$1" "$2" <<'EOF'
import json, sys
p, k, v = sys.argv[1:4]
c = json.load(open(p))
c[k] = json.loads(v)
json.dump(c, open(p, "w"))
EOF
}
edit hidden_activation '"gelu"'
refuse "exact GELU" "hidden_activation" "$CK" import --hf "$tmp/bad" -o "$tmp/bad_ck"
edit vocab_size 50368
refuse "vocabulary" "vocab_size" "$CK" import --hf "$tmp/bad" -o "$tmp/bad_ck"
edit attention_bias true
refuse "biases" "attention_bias" "$CK" import --hf "$tmp/bad" -o "$tmp/bad_ck"
edit norm_eps 1e-6
refuse "norm eps" "norm_eps" "$CK" import --hf "$tmp/bad" -o "$tmp/bad_ck"
edit layer_types '["full_attention", "full_attention", "sliding_attention"]'
refuse "layer pattern" "layer_types" "$CK" import --hf "$tmp/bad" -o "$tmp/bad_ck"
[ ! -e "$tmp/bad_ck/latest" ] || fail "a refused import left a checkpoint"
refuse "existing checkpoints" "already holds checkpoints" "$CK" import --hf "$w/hf" -o "$w/imp"
echo "ok: nvwa exports load in transformers as ModernBERT, exactly, and import back"
