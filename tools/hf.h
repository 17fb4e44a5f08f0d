// hf.h - Hugging Face ModernBERT directories (design section 6): nvwa-ckpt export --hf and
// nvwa-ckpt import --hf. The map, the files and the refusals are described in
// docs/huggingface.md.
#pragma once
#include "data/nv_util.h"

// Write the checkpoint at ckpt (a root or a step dir) as a directory transformers loads with
// AutoModelForMaskedLM / AutoTokenizer: config.json, model.safetensors, tokenizer.json,
// tokenizer_config.json, special_tokens_map.json, struct_head.safetensors, nvwa_config.ini
// and a README.md model card. bf16: tensors rounded to bfloat16. eval_json (may be NULL): an
// nvwa-eval -o file whose figures go into the card (else the run's [log] file, if readable).
// A new out_dir appears whole; in an existing one (a hub clone) the files are replaced only
// after all were written.
int nv_hf_export(const char *ckpt, const char *out_dir, int bf16, const char *eval_json,
                 nv_error *err);

// Read a ModernBERT directory (config.json, model.safetensors or its sharded index, and when
// present struct_head.safetensors, nvwa_config.ini, tokenizer.json) into a new checkpoint
// root out_root at step 0 with fresh optimizer state, and write out_root/config.ini to train
// it further. config_ini (may be NULL): the training config to store (its [model] must agree
// with config.json). A config nvwa cannot express is refused naming the key.
int nv_hf_import(const char *hf_dir, const char *out_root, const char *config_ini, nv_error *err);
