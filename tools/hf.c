// hf.c - nvwa checkpoints <-> Hugging Face ModernBERT directories (design section 6).
//
// The map (nvwa name -> ModernBERT name):
//   embed.tok + embed.struct[0]  -> model.embeddings.tok_embeddings.weight  (hidden structure
//                                   row folded in: HF has no structure input)
//   embed.norm.weight            -> model.embeddings.norm.weight
//   layers.{l}.attn_norm.weight  -> model.layers.{l}.attn_norm.weight  (l > 0; none in layer 0)
//   layers.{l}.attn.wqkv / .wo   -> model.layers.{l}.attn.Wqkv.weight / .attn.Wo.weight
//   layers.{l}.mlp_norm.weight   -> model.layers.{l}.mlp_norm.weight
//   layers.{l}.mlp.w_in / .w_out -> model.layers.{l}.mlp.Wi.weight / .mlp.Wo.weight
//   final_norm.weight            -> model.final_norm.weight
//   head.mlm.dense / norm.weight -> head.dense.weight / head.norm.weight
//   embed.tok / head.mlm.bias    -> decoder.weight / decoder.bias  (untied: tie_word_embeddings false)
//   head.struct.*, embed.struct  -> struct_head.safetensors (nvwa names)
#include "tools/hf.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "data/vocab.h"
#include "model/flops.h"
#include "model/params.h"
#include "tools/safetensors.h"
#include "train/checkpoint.h"

static const char *const TOKENS[NV_VOCAB] = {"<pad>", "<cls>", "<eos>", "<mask>", "<unk>", "A", "C", "G",
                                              "U",     "N",     "R",     "Y",      "K",     "M", "S", "W"};
#define N_SPECIAL 5 // ids 0..4

// ---- small helpers ----------------------------------------------------------------------

static int join(char *out, size_t n, const char *dir, const char *name, nv_error *err) {
    if (snprintf(out, n, "%s/%s", dir, name) >= (int)n) return nv_seterr(err, "%s/%s: path too long", dir, name);
    return 0;
}

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int file_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

// Shortest %g that reads back to the same double; with a ".0" where it would look like an
// integer (JSON readers then keep a float).
static void fmt_real(char *buf, size_t n, double v) {
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) break;
    }
    if (!strpbrk(buf, ".eEn")) strncat(buf, ".0", n - strlen(buf) - 1);
}

// Write a memstream's text to dir/name.
static int write_text(const char *dir, const char *name, const char *text, size_t len, nv_error *err) {
    char path[NV_PATH_MAX + 64];
    if (join(path, sizeof path, dir, name, err)) return -1;
    FILE *f = fopen(path, "wb");
    if (!f) return nv_seterr(err, "%s: cannot create: %s", path, strerror(errno));
    size_t w = fwrite(text, 1, len, f);
    int bad = w != len || fflush(f) != 0 || fsync(fileno(f)) != 0;
    if (fclose(f) != 0) bad = 1;
    if (bad) return nv_seterr(err, "%s: write failed: %s\n---> HINT: is the disk full?", path, strerror(errno));
    return 0;
}

typedef struct mem {
    char *buf;
    size_t len;
    FILE *f;
} mem;

static FILE *mem_open(mem *m) {
    m->buf = NULL;
    m->len = 0;
    m->f = open_memstream(&m->buf, &m->len);
    if (!m->f) nv_die("open_memstream failed");
    return m->f;
}

static int mem_write(mem *m, const char *dir, const char *name, nv_error *err) {
    fclose(m->f);
    int rc = write_text(dir, name, m->buf, m->len, err);
    free(m->buf);
    return rc;
}

// ---- export: the files ----------------------------------------------------------------------

static const char *dtype_name(int bf16) { return bf16 ? "bfloat16" : "float32"; }

static void write_config_json(FILE *f, const nv_config *c, int bf16) {
    const nv_model_config *m = &c->model;
    char tg[64], tl[64];
    fmt_real(tg, sizeof tg, m->rope_theta_global);
    fmt_real(tl, sizeof tl, m->rope_theta_local);
    fprintf(f, "{\n");
    fprintf(f, "  \"architectures\": [\"ModernBertForMaskedLM\"],\n");
    fprintf(f, "  \"model_type\": \"modernbert\",\n");
    fprintf(f, "  \"vocab_size\": %d,\n", m->vocab_size);
    fprintf(f, "  \"hidden_size\": %d,\n", m->hidden_size);
    fprintf(f, "  \"intermediate_size\": %d,\n", m->ffn_hidden_size);
    fprintf(f, "  \"num_hidden_layers\": %d,\n", m->num_layers);
    fprintf(f, "  \"num_attention_heads\": %d,\n", m->num_attn_heads);
    fprintf(f, "  \"hidden_activation\": \"gelu_pytorch_tanh\",\n");
    fprintf(f, "  \"max_position_embeddings\": %d,\n", c->data.seq_length);
    fprintf(f, "  \"initializer_range\": 0.02,\n");
    fprintf(f, "  \"initializer_cutoff_factor\": 2.0,\n");
    fprintf(f, "  \"norm_eps\": 1e-05,\n");
    fprintf(f, "  \"norm_bias\": false,\n");
    fprintf(f, "  \"pad_token_id\": %d,\n  \"bos_token_id\": %d,\n  \"eos_token_id\": %d,\n", NV_TOK_PAD,
            NV_TOK_CLS, NV_TOK_EOS);
    fprintf(f, "  \"cls_token_id\": %d,\n  \"sep_token_id\": %d,\n", NV_TOK_CLS, NV_TOK_EOS);
    fprintf(f, "  \"attention_bias\": false,\n");
    fprintf(f, "  \"attention_dropout\": 0.0,\n");
    fprintf(f, "  \"global_attn_every_n_layers\": %d,\n", m->global_attn_every);
    fprintf(f, "  \"local_attention\": %d,\n", m->local_window);
    fprintf(f, "  \"global_rope_theta\": %s,\n", tg);
    fprintf(f, "  \"local_rope_theta\": %s,\n", tl);
    // transformers >= 5 reads these two; 4.x reads the three keys above
    fprintf(f, "  \"layer_types\": [");
    for (int l = 0; l < m->num_layers; l++)
        fprintf(f, "%s\"%s\"", l ? ", " : "", nv_config_is_global_layer(m, l) ? "full_attention" : "sliding_attention");
    fprintf(f, "],\n");
    fprintf(f, "  \"rope_parameters\": {\n"
               "    \"full_attention\": {\"rope_type\": \"default\", \"rope_theta\": %s},\n"
               "    \"sliding_attention\": {\"rope_type\": \"default\", \"rope_theta\": %s}\n  },\n", tg, tl);
    fprintf(f, "  \"embedding_dropout\": 0.0,\n");
    fprintf(f, "  \"mlp_bias\": false,\n");
    fprintf(f, "  \"mlp_dropout\": 0.0,\n");
    fprintf(f, "  \"decoder_bias\": true,\n");
    fprintf(f, "  \"classifier_pooling\": \"mean\",\n");
    fprintf(f, "  \"classifier_dropout\": 0.0,\n");
    fprintf(f, "  \"classifier_bias\": false,\n");
    fprintf(f, "  \"classifier_activation\": \"gelu_pytorch_tanh\",\n");
    fprintf(f, "  \"deterministic_flash_attn\": false,\n");
    fprintf(f, "  \"sparse_prediction\": false,\n");
    fprintf(f, "  \"sparse_pred_ignore_index\": -100,\n");
    fprintf(f, "  \"reference_compile\": false,\n");
    fprintf(f, "  \"tie_word_embeddings\": false,\n");
    fprintf(f, "  \"torch_dtype\": \"%s\"\n", dtype_name(bf16));
    fprintf(f, "}\n");
}

// An added special token: tokenizer.json names its id, tokenizer_config.json keys by it.
static void json_token(FILE *f, int id, int with_id) {
    fprintf(f, "{");
    if (with_id) fprintf(f, "\"id\": %d, ", id);
    fprintf(f, "\"content\": ");
    nv_json_str(f, TOKENS[id]);
    fprintf(f, ", \"single_word\": false, \"lstrip\": false, \"rstrip\": false, \"normalized\": false, "
               "\"special\": true}");
}

// tokenizer.json (the `tokenizers` library): one token per character. The normalizer maps
// every character design section 4 accepts to its letter (derived from data/vocab.c, so the
// two cannot drift); a BPE model without merges splits words into characters and maps the
// rest to <unk>; white space separates nothing; `<cls> seq <eos>` is the template.
static void write_tokenizer_json(FILE *f) {
    fprintf(f, "{\n  \"version\": \"1.0\",\n  \"truncation\": null,\n  \"padding\": null,\n");
    fprintf(f, "  \"added_tokens\": [\n");
    for (int i = 0; i < N_SPECIAL; i++) {
        fprintf(f, "    ");
        json_token(f, i, 1);
        fprintf(f, "%s\n", i + 1 < N_SPECIAL ? "," : "");
    }
    fprintf(f, "  ],\n  \"normalizer\": {\"type\": \"Sequence\", \"normalizers\": [\n");
    int first = 1;
    for (int c = 33; c < 127; c++) {
        int t = nv_tok_from_char(c);
        if (t < 0 || nv_char_from_tok(t) == c) continue;
        char from[2] = {(char)c, 0}, to[2] = {nv_char_from_tok(t), 0};
        fprintf(f, "%s    {\"type\": \"Replace\", \"pattern\": {\"String\": ", first ? "" : ",\n");
        nv_json_str(f, from);
        fprintf(f, "}, \"content\": ");
        nv_json_str(f, to);
        fprintf(f, "}");
        first = 0;
    }
    fprintf(f, "\n  ]},\n");
    fprintf(f, "  \"pre_tokenizer\": {\"type\": \"WhitespaceSplit\"},\n");
    fprintf(f, "  \"post_processor\": {\n    \"type\": \"TemplateProcessing\",\n");
    fprintf(f, "    \"single\": [{\"SpecialToken\": {\"id\": \"<cls>\", \"type_id\": 0}}, "
               "{\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}, {\"SpecialToken\": {\"id\": \"<eos>\", \"type_id\": 0}}],\n");
    fprintf(f, "    \"pair\": [{\"SpecialToken\": {\"id\": \"<cls>\", \"type_id\": 0}}, "
               "{\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}, {\"SpecialToken\": {\"id\": \"<eos>\", \"type_id\": 0}}, "
               "{\"Sequence\": {\"id\": \"B\", \"type_id\": 1}}, {\"SpecialToken\": {\"id\": \"<eos>\", \"type_id\": 1}}],\n");
    fprintf(f, "    \"special_tokens\": {\n"
               "      \"<cls>\": {\"id\": \"<cls>\", \"ids\": [%d], \"tokens\": [\"<cls>\"]},\n"
               "      \"<eos>\": {\"id\": \"<eos>\", \"ids\": [%d], \"tokens\": [\"<eos>\"]}\n    }\n  },\n",
            NV_TOK_CLS, NV_TOK_EOS);
    fprintf(f, "  \"decoder\": {\"type\": \"Fuse\"},\n");
    fprintf(f, "  \"model\": {\n    \"type\": \"BPE\",\n    \"dropout\": null,\n    \"unk_token\": \"<unk>\",\n"
               "    \"continuing_subword_prefix\": null,\n    \"end_of_word_suffix\": null,\n"
               "    \"fuse_unk\": false,\n    \"byte_fallback\": false,\n    \"ignore_merges\": false,\n"
               "    \"vocab\": {");
    for (int i = 0; i < NV_VOCAB; i++) {
        fprintf(f, "%s", i ? ", " : "");
        nv_json_str(f, TOKENS[i]);
        fprintf(f, ": %d", i);
    }
    fprintf(f, "},\n    \"merges\": []\n  }\n}\n");
}

static void write_special_tokens(FILE *f, const char *indent) {
    fprintf(f, "%s\"bos_token\": \"<cls>\",\n%s\"cls_token\": \"<cls>\",\n%s\"eos_token\": \"<eos>\",\n"
               "%s\"sep_token\": \"<eos>\",\n%s\"pad_token\": \"<pad>\",\n%s\"mask_token\": \"<mask>\",\n"
               "%s\"unk_token\": \"<unk>\"", indent, indent, indent, indent, indent, indent, indent);
}

static void write_tokenizer_config(FILE *f, int seq_len) {
    fprintf(f, "{\n  \"tokenizer_class\": \"PreTrainedTokenizerFast\",\n");
    fprintf(f, "  \"model_max_length\": %d,\n", seq_len);
    fprintf(f, "  \"padding_side\": \"right\",\n  \"truncation_side\": \"right\",\n");
    fprintf(f, "  \"model_input_names\": [\"input_ids\", \"attention_mask\"],\n");
    fprintf(f, "  \"clean_up_tokenization_spaces\": false,\n");
    fprintf(f, "  \"added_tokens_decoder\": {\n");
    for (int i = 0; i < N_SPECIAL; i++) {
        fprintf(f, "    \"%d\": ", i);
        json_token(f, i, 0);
        fprintf(f, "%s\n", i + 1 < N_SPECIAL ? "," : "");
    }
    fprintf(f, "  },\n");
    write_special_tokens(f, "  ");
    fprintf(f, "\n}\n");
}

// The config as published: the machine-local settings (checkpoint and log paths, resume)
// are left out, so the file says how the model was trained and nothing about where.
static void public_config(nv_config *c) {
    nv_config d;
    nv_config_defaults(&d);
    c->checkpoint = d.checkpoint;
    c->log.file[0] = 0;
    c->source[0] = 0;
}

// Eval figures for the card: an nvwa-eval -o file, else the newest eval record at or before
// `step` in the run's JSONL log. NULL when none is known.
static json_t *find_eval(const char *eval_json, const nv_config *c, long step, char *src, size_t n,
                         nv_error *err, int *bad) {
    *bad = 0;
    if (eval_json) {
        json_error_t je;
        json_t *j = json_load_file(eval_json, 0, &je);
        if (!j || !json_is_object(j)) {
            *bad = 1;
            nv_seterr(err, "%s: not an nvwa-eval JSON file: %s (line %d)", eval_json, j ? "not an object" : je.text,
                      je.line);
            json_decref(j);
            return NULL;
        }
        snprintf(src, n, "nvwa-eval, %s", eval_json);
        return j;
    }
    if (!c->log.file[0]) return NULL;
    FILE *f = fopen(c->log.file, "r");
    if (!f) return NULL;
    json_t *best = NULL;
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        json_t *j = json_loads(line, 0, NULL);
        json_t *ev = j ? json_object_get(j, "event") : NULL, *st = j ? json_object_get(j, "step") : NULL;
        if (json_is_string(ev) && !strcmp(json_string_value(ev), "eval") && json_is_integer(st) &&
            json_integer_value(st) <= step) {
            json_decref(best);
            best = j;
        } else {
            json_decref(j);
        }
    }
    free(line);
    fclose(f);
    if (best) snprintf(src, n, "held-out evaluation during training, step %lld", (long long)json_integer_value(json_object_get(best, "step")));
    return best;
}

static void card_eval(FILE *f, json_t *ev, const char *src) {
    static const struct { const char *key, *what; int pct; } rows[] = {
        {"mlm_loss", "masked-LM loss (nats)", 0},      {"perplexity", "perplexity", 0},
        {"mlm_acc", "masked-LM accuracy", 1},          {"unigram_perplexity", "unigram baseline perplexity", 0},
        {"struct_acc", "structure accuracy (3 classes)", 1}, {"struct_macro_acc", "structure macro accuracy", 1},
        {"majority_struct_acc", "majority-class baseline accuracy", 1},
    };
    fprintf(f, "## Evaluation\n\nFrom %s", src);
    json_t *ns = json_object_get(ev, "n_seqs"), *nt = json_object_get(ev, "n_tokens");
    if (json_is_integer(ns) && json_is_integer(nt))
        fprintf(f, " (%lld sequences, %lld nucleotides)", (long long)json_integer_value(ns),
                (long long)json_integer_value(nt));
    fprintf(f, ":\n\n| metric | value |\n| --- | --- |\n");
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        json_t *v = json_object_get(ev, rows[i].key);
        if (!json_is_number(v)) continue;
        double x = json_number_value(v);
        if (rows[i].pct) fprintf(f, "| %s | %.2f%% |\n", rows[i].what, 100 * x);
        else fprintf(f, "| %s | %.4f |\n", rows[i].what, x);
    }
    fprintf(f, "\n");
}

static void write_card(FILE *f, const char *name, const nv_config *c, long step, int bf16, json_t *ev,
                       const char *ev_src) {
    const nv_model_config *m = &c->model;
    const nv_data_config *d = &c->data;
    const long long params = (long long)nv_param_count(m);
    const double slots = (double)step * d->global_batch * d->seq_length;
    fprintf(f, "---\nlibrary_name: transformers\npipeline_tag: fill-mask\ntags:\n- rna\n- biology\n"
               "- modernbert\n- masked-language-modeling\n- nvwa\n---\n\n");
    fprintf(f, "# %s\n\n", name);
    fprintf(f, "An encoder-only RNA language model (%.1fM parameters) pretrained with "
               "nvwa on masked nucleotides and secondary-structure labels. "
               "It loads in Hugging Face `transformers` (>= 4.48) as a **ModernBERT** masked language "
               "model, with no custom code: the numbers equal nvwa's own forward pass.\n\n", params / 1e6);
    fprintf(f, "## Use\n\n```python\nfrom transformers import AutoTokenizer, AutoModelForMaskedLM, pipeline\n"
               "tok = AutoTokenizer.from_pretrained(\"PATH\")\n"
               "model = AutoModelForMaskedLM.from_pretrained(\"PATH\").eval()\n"
               "x = tok([\"GGGAAACUCCC\", \"ACGUACGU\"], padding=True, return_tensors=\"pt\")\n"
               "h = model.model(**x).last_hidden_state      # [batch, 1 + len + 1, %d]: <cls> seq <eos>\n"
               "fill = pipeline(\"fill-mask\", model=model, tokenizer=tok)\n"
               "fill(\"GGGAAA<mask>UCCC\")\n```\n\n", m->hidden_size);
    fprintf(f, "Input is one character per nucleotide, case-insensitive: `A C G U` (`T` reads as `U`), "
               "`N` and the IUPAC codes `R Y K M S W` (`B D H V` and the gap characters `.` `-` read "
               "as `N`); anything else is `<unk>`. The tokenizer wraps a sequence as "
               "`<cls> seq <eos>`. Sequences up to %d nucleotides were seen in training (positions "
               "beyond that are extrapolation).\n\n", d->seq_length - 2);
    fprintf(f, "The secondary-structure head (unpaired / opening / closing, pseudoknot brackets "
               "folded in) is in `struct_head.safetensors`: `logits = last_hidden_state @ "
               "head.struct.weight.T + head.struct.bias`. `embed.struct` there holds the structure-input "
               "embedding (rows: hidden, `.`, `(`, `)`); its hidden row is already folded into the "
               "token embedding, so plain input ids mean \"structure unknown\".\n\n");
    fprintf(f, "## Architecture\n\n| | |\n| --- | --- |\n");
    fprintf(f, "| layers | %d |\n| hidden size | %d |\n| attention heads | %d (head size %d) |\n", m->num_layers,
            m->hidden_size, m->num_attn_heads, m->hidden_size / m->num_attn_heads);
    fprintf(f, "| feed-forward | GeGLU (tanh GELU), %d |\n", m->ffn_hidden_size);
    fprintf(f, "| attention | global every %d layers (RoPE theta %g), else local window %d (RoPE theta %g) |\n",
            m->global_attn_every, m->rope_theta_global, m->local_window, m->rope_theta_local);
    fprintf(f, "| norms | pre-LayerNorm without bias, eps 1e-5; no biases but the MLM decoder's |\n");
    fprintf(f, "| vocabulary | 16 tokens: `<pad> <cls> <eos> <mask> <unk> A C G U N R Y K M S W` |\n");
    fprintf(f, "| parameters | %lld |\n| weights | %s |\n\n", params, dtype_name(bf16));
    fprintf(f, "## Training\n\n| | |\n| --- | --- |\n");
    fprintf(f, "| data | %s |\n", d->train[0] ? d->train : "synthetic RNA-like sequences (nvwa's built-in generator)");
    fprintf(f, "| steps | %ld |\n", step);
    fprintf(f, "| tokens seen | %.3g token slots (steps x global batch %d x sequence length %d; "
               "pads and special tokens included) |\n", slots, d->global_batch, d->seq_length);
    fprintf(f, "| objective | masked LM (%.0f%% of nucleotides, %.0f%% of that budget in spans; 80/10/10) "
               "+ %g x structure cross-entropy; structure input hidden at masked positions and, with "
               "probability %g, for the whole sequence |\n", 100 * d->mask_rate, 100 * d->span_fraction,
            m->struct_loss_weight, d->struct_hide_rate);
    fprintf(f, "| optimizer | AdamW, lr %g -> %g (warmup %d, cosine), weight decay %g, betas (%g, %g) |\n\n",
            c->optim.lr, c->optim.min_lr, c->optim.warmup_steps, c->optim.weight_decay, c->optim.beta1,
            c->optim.beta2);
    if (ev) card_eval(f, ev, ev_src);
    fprintf(f, "## Files\n\n- `config.json`, `model.safetensors`: the ModernBERT masked LM\n"
               "- `tokenizer.json`, `tokenizer_config.json`, `special_tokens_map.json`: the character tokenizer\n"
               "- `struct_head.safetensors`: the secondary-structure head and the structure-input embedding\n"
               "- `nvwa_config.ini`: the full nvwa training config (`nvwa-ckpt import --hf` reads it back "
               "to continue pretraining)\n");
}

// ---- export -----------------------------------------------------------------------------

static int stage_dir(const char *out, char *stage, size_t n, int *existed, nv_error *err) {
    *existed = is_dir(out);
    int w = *existed ? snprintf(stage, n, "%s/.nvwa-export.tmp.%ld", out, (long)getpid())
                     : snprintf(stage, n, "%s.tmp.%ld", out, (long)getpid());
    if (w >= (int)n) return nv_seterr(err, "%s: path too long", out);
    if (mkdir(stage, 0755) != 0)
        return nv_seterr(err, "%s: cannot create: %s%s", stage, strerror(errno),
                         errno == ENOENT ? "\n---> HINT: does the parent directory exist?" : "");
    return 0;
}

static void rm_stage(const char *stage) {
    DIR *d = opendir(stage);
    if (!d) return;
    struct dirent *e;
    char p[NV_PATH_MAX + 300];
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        snprintf(p, sizeof p, "%s/%s", stage, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(stage);
}

static const char *const EXPORT_FILES[] = {"config.json", "model.safetensors", "struct_head.safetensors",
                                           "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                                           "nvwa_config.ini", "README.md", NULL};

static int commit_stage(const char *stage, const char *out, int existed, nv_error *err) {
    if (!existed) {
        if (rename(stage, out) != 0) return nv_seterr(err, "%s: rename failed: %s", out, strerror(errno));
        return 0;
    }
    char a[NV_PATH_MAX + 64], b[NV_PATH_MAX + 64];
    for (int i = 0; EXPORT_FILES[i]; i++) {
        if (join(a, sizeof a, stage, EXPORT_FILES[i], err) || join(b, sizeof b, out, EXPORT_FILES[i], err)) return -1;
        if (rename(a, b) != 0) return nv_seterr(err, "%s: rename failed: %s", b, strerror(errno));
    }
    rmdir(stage);
    return 0;
}

static int export_weights(const char *stage, const nv_param_table *t, const nv_param_ids *ids, const float *w,
                          const nv_config *c, int bf16, nv_error *err) {
    const nv_model_config *m = &c->model;
    const int L = m->num_layers, d = m->hidden_size, V = m->vocab_size;
    const nv_param *ptok = &t->p[ids->embed_tok];
    float *tok = nv_malloc(sizeof(float) * (size_t)V * d);
    const float *E = w + ptok->offset;
    const float *S0 = ids->embed_struct >= 0 ? w + t->p[ids->embed_struct].offset : NULL; // row 0
    for (int v = 0; v < V; v++)
        for (int j = 0; j < d; j++) tok[(size_t)v * d + j] = E[(size_t)v * d + j] + (S0 ? S0[j] : 0.0f);
    nv_st_tensor *ts = nv_calloc((size_t)(8 + 6 * L), sizeof *ts);
    char (*names)[96] = nv_calloc((size_t)(8 + 6 * L), sizeof *names);
    int n = 0;
#define PUT(hfname, k, ptr)                                                                        \
    do {                                                                                           \
        const nv_param *p_ = &t->p[k];                                                             \
        snprintf(names[n], sizeof names[n], "%s", hfname);                                         \
        ts[n] = (nv_st_tensor){names[n], p_->ndim, {p_->full[0], p_->full[1]}, (ptr)};             \
        n++;                                                                                       \
    } while (0)
#define W(k) (w + t->p[k].offset)
    PUT("model.embeddings.tok_embeddings.weight", ids->embed_tok, tok);
    PUT("model.embeddings.norm.weight", ids->embed_norm, W(ids->embed_norm));
    char nm[96];
    for (int l = 0; l < L; l++) {
        const nv_layer_ids *li = &ids->layers[l];
#define LN(s) (snprintf(nm, sizeof nm, "model.layers.%d.%s", l, s), nm)
        if (li->attn_norm >= 0) PUT(LN("attn_norm.weight"), li->attn_norm, W(li->attn_norm));
        PUT(LN("attn.Wqkv.weight"), li->wqkv, W(li->wqkv));
        PUT(LN("attn.Wo.weight"), li->wo, W(li->wo));
        PUT(LN("mlp_norm.weight"), li->mlp_norm, W(li->mlp_norm));
        PUT(LN("mlp.Wi.weight"), li->w_in, W(li->w_in));
        PUT(LN("mlp.Wo.weight"), li->w_out, W(li->w_out));
#undef LN
    }
    PUT("model.final_norm.weight", ids->final_norm, W(ids->final_norm));
    PUT("head.dense.weight", ids->head_dense, W(ids->head_dense));
    PUT("head.norm.weight", ids->head_norm, W(ids->head_norm));
    PUT("decoder.weight", ids->embed_tok, E);
    PUT("decoder.bias", ids->head_bias, W(ids->head_bias));
    static const char *const mk[] = {"format"}, *const mv[] = {"pt"};
    char path[NV_PATH_MAX + 64];
    int rc = join(path, sizeof path, stage, "model.safetensors", err) ||
             nv_st_write(path, ts, n, mk, mv, 1, bf16, err);
    // the structure head (and the structure-input embedding) beside it, nvwa's names
    n = 0;
    PUT("head.struct.weight", ids->struct_w, W(ids->struct_w));
    PUT("head.struct.bias", ids->struct_b, W(ids->struct_b));
    if (ids->embed_struct >= 0) PUT("embed.struct", ids->embed_struct, W(ids->embed_struct));
    static const char *const sk[] = {"format", "nvwa"},
                             *const sv[] = {"pt", "structure head: logits = last_hidden_state @ head.struct.weight.T "
                                                  "+ head.struct.bias (unpaired, opening, closing); embed.struct: "
                                                  "structure-input rows (hidden, ., (, )), row 0 folded into "
                                                  "model.embeddings.tok_embeddings.weight"};
    if (!rc) rc = join(path, sizeof path, stage, "struct_head.safetensors", err) ||
                  nv_st_write(path, ts, n, sk, sv, 2, bf16, err);
#undef PUT
#undef W
    free(ts);
    free(names);
    free(tok);
    return rc ? -1 : 0;
}

int nv_hf_export(const char *ckpt, const char *out_dir, int bf16, const char *eval_json, nv_error *err) {
    char dir[NV_PATH_MAX];
    nv_ckpt_manifest m;
    if (nv_ckpt_resolve(ckpt, dir, sizeof dir, err) || nv_ckpt_manifest_read(dir, &m, err)) return -1;
    if (m.cfg.model.first_attn_norm) {
        nv_ckpt_manifest_free(&m);
        return nv_seterr(err, "%s: trained with [model] first-attn-norm = true: its layer 0 has an attention "
                              "LayerNorm (layers.0.attn_norm.weight) that ModernBERT does not have, so no "
                              "transformers ModernBERT computes this model\n---> HINT: export it with "
                              "-o FILE.safetensors (nvwa's names); new runs default to first-attn-norm = false",
                         dir);
    }
    nv_param_table t;
    nv_param_ids ids;
    nv_ckpt_state s;
    char stage[NV_PATH_MAX + 64], ev_src[NV_PATH_MAX + 320] = "";
    int existed = 0, staged = 0, bad_eval = 0;
    json_t *ev = NULL;
    int rc = nv_ckpt_load_masters(dir, &m, &t, &ids, &s, err);
    if (!rc) {
        ev = find_eval(eval_json, &m.cfg, m.step, ev_src, sizeof ev_src, err, &bad_eval);
        if (bad_eval) rc = -1;
    }
    if (!rc) rc = stage_dir(out_dir, stage, sizeof stage, &existed, err);
    staged = !rc;
    if (!rc) rc = export_weights(stage, &t, &ids, s.master, &m.cfg, bf16, err);
    nv_config pub = m.cfg;
    public_config(&pub);
    mem x;
    if (!rc) {
        write_config_json(mem_open(&x), &m.cfg, bf16);
        rc = mem_write(&x, stage, "config.json", err);
    }
    if (!rc) {
        write_tokenizer_json(mem_open(&x));
        rc = mem_write(&x, stage, "tokenizer.json", err);
    }
    if (!rc) {
        write_tokenizer_config(mem_open(&x), m.cfg.data.seq_length);
        rc = mem_write(&x, stage, "tokenizer_config.json", err);
    }
    if (!rc) {
        FILE *f = mem_open(&x);
        fprintf(f, "{\n");
        write_special_tokens(f, "  ");
        fprintf(f, "\n}\n");
        rc = mem_write(&x, stage, "special_tokens_map.json", err);
    }
    if (!rc) {
        FILE *f = mem_open(&x);
        fprintf(f, "; nvwa_config.ini - the config this model was trained with (nvwa design section 10)\n");
        nv_config_write(&pub, f);
        rc = mem_write(&x, stage, "nvwa_config.ini", err);
    }
    if (!rc) {
        const char *base = strrchr(out_dir, '/');
        char name[256];
        snprintf(name, sizeof name, "%s", base && base[1] ? base + 1 : out_dir);
        write_card(mem_open(&x), name, &pub, m.step, bf16, ev, ev_src);
        rc = mem_write(&x, stage, "README.md", err);
    }
    if (!rc) rc = commit_stage(stage, out_dir, existed, err);
    if (rc && staged) rm_stage(stage);
    json_decref(ev);
    nv_ckpt_masters_free(&t, &ids, &s);
    nv_ckpt_manifest_free(&m);
    return rc;
}

// ---- import -----------------------------------------------------------------------------

typedef struct hf_cfg {
    const char *path;
    json_t *j;
} hf_cfg;

static json_t *get(const hf_cfg *h, const char *key) { return json_object_get(h->j, key); }

static int want_int(const hf_cfg *h, const char *key, long lo, long hi, long *out, nv_error *err) {
    json_t *v = get(h, key);
    if (!v) return nv_seterr(err, "%s: %s: missing (nvwa needs it)", h->path, key);
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return nv_seterr(err, "%s: %s: expected an integer in [%ld, %ld]", h->path, key, lo, hi);
    *out = (long)json_integer_value(v);
    return 0;
}

// A boolean key that must have one value for nvwa (absent: the ModernBERT default `dflt`).
static int want_bool(const hf_cfg *h, const char *key, int dflt, int need, const char *why, nv_error *err) {
    json_t *v = get(h, key);
    int b = v ? json_is_true(v) : dflt;
    if (v && !json_is_boolean(v)) return nv_seterr(err, "%s: %s: expected true or false", h->path, key);
    if (b != need)
        return nv_seterr(err, "%s: %s: %s, which nvwa cannot express (%s)", h->path, key, b ? "true" : "false", why);
    return 0;
}

static int want_gelu_tanh(const hf_cfg *h, const char *key, nv_error *err) {
    json_t *v = get(h, key);
    const char *s = json_is_string(v) ? json_string_value(v) : v ? "?" : "gelu"; // ModernBERT's default
    if (strcmp(s, "gelu_pytorch_tanh") && strcmp(s, "gelu_new") && strcmp(s, "gelu_fast"))
        return nv_seterr(err, "%s: %s: \"%s\", which nvwa cannot express (nvwa computes the tanh "
                              "approximation of GELU: gelu_pytorch_tanh)", h->path, key, s);
    return 0;
}

static double num_or(const hf_cfg *h, const char *key, double dflt) {
    json_t *v = get(h, key);
    return json_is_number(v) ? json_number_value(v) : dflt;
}

// The ModernBERT config as nvwa [model] keys; every key nvwa cannot express is an error.
static int read_hf_config(const hf_cfg *h, nv_model_config *m, long *max_pos, nv_error *err) {
    json_t *mt = get(h, "model_type");
    if (!json_is_string(mt) || strcmp(json_string_value(mt), "modernbert"))
        return nv_seterr(err, "%s: model_type: %s (expected \"modernbert\")", h->path,
                         json_is_string(mt) ? json_string_value(mt) : "missing");
    long L, d, f, H, V, w = 128, every = 3;
    if (want_int(h, "vocab_size", 1, 1 << 30, &V, err) || want_int(h, "hidden_size", 1, 65536, &d, err) ||
        want_int(h, "intermediate_size", 1, 262144, &f, err) ||
        want_int(h, "num_hidden_layers", 1, 1024, &L, err) ||
        want_int(h, "num_attention_heads", 1, 1024, &H, err))
        return -1;
    if (V != NV_VOCAB)
        return nv_seterr(err, "%s: vocab_size: %ld, which nvwa cannot express (its vocabulary is the 16 "
                              "tokens of design section 4)", h->path, V);
    if (get(h, "local_attention") && want_int(h, "local_attention", 2, 1 << 20, &w, err)) return -1;
    if (w % 2) return nv_seterr(err, "%s: local_attention: %ld is odd (nvwa's local-window is even)", h->path, w);
    *max_pos = 8192;
    if (get(h, "max_position_embeddings") && want_int(h, "max_position_embeddings", 8, 1 << 20, max_pos, err))
        return -1;
    double tg = num_or(h, "global_rope_theta", 160000.0), tl = num_or(h, "local_rope_theta", NAN);
    json_t *lt = get(h, "layer_types"), *rp = get(h, "rope_parameters");
    if (json_is_object(rp)) { // transformers >= 5
        json_t *g = json_object_get(json_object_get(rp, "full_attention"), "rope_theta"),
               *s = json_object_get(json_object_get(rp, "sliding_attention"), "rope_theta");
        if (json_is_number(g)) tg = json_number_value(g);
        if (json_is_number(s)) tl = json_number_value(s);
        for (int i = 0; i < 2; i++) {
            json_t *rt = json_object_get(json_object_get(rp, i ? "sliding_attention" : "full_attention"), "rope_type");
            if (json_is_string(rt) && strcmp(json_string_value(rt), "default"))
                return nv_seterr(err, "%s: rope_parameters: rope_type \"%s\", which nvwa cannot express (plain "
                                      "RoPE only)", h->path, json_string_value(rt));
        }
    }
    if (isnan(tl)) tl = tg; // ModernBERT: local layers use the global theta when none is given
    if (get(h, "global_attn_every_n_layers") && want_int(h, "global_attn_every_n_layers", 1, 1024, &every, err))
        return -1;
    if (json_is_array(lt)) { // transformers >= 5: the layer pattern must be nvwa's l % every == 0
        if ((long)json_array_size(lt) != L)
            return nv_seterr(err, "%s: layer_types: %zu entries for %ld layers", h->path, json_array_size(lt), L);
        if (!get(h, "global_attn_every_n_layers")) { // the distance to the second global layer
            long second = 1;
            while (second < L && !(json_is_string(json_array_get(lt, (size_t)second)) &&
                                   !strcmp(json_string_value(json_array_get(lt, (size_t)second)), "full_attention")))
                second++;
            every = second; // L when layer 0 is the only global one: any value >= L is the same
        }
        for (long l = 0; l < L; l++) {
            const char *s = json_string_value(json_array_get(lt, (size_t)l));
            const char *want = l % every == 0 ? "full_attention" : "sliding_attention";
            if (!s || strcmp(s, want))
                return nv_seterr(err, "%s: layer_types: layer %ld is %s, which nvwa cannot express (nvwa's "
                                      "layer l is global iff l %% global-attn-every == 0)", h->path, l, s ? s : "?");
        }
    }
    double eps = num_or(h, "norm_eps", 1e-5);
    if (fabs(eps - 1e-5) > 1e-12)
        return nv_seterr(err, "%s: norm_eps: %g, which nvwa cannot express (its LayerNorm eps is 1e-5)", h->path, eps);
    if (want_bool(h, "norm_bias", 0, 0, "nvwa's LayerNorms have no bias", err) ||
        want_bool(h, "attention_bias", 0, 0, "nvwa's linear layers have no bias", err) ||
        want_bool(h, "mlp_bias", 0, 0, "nvwa's linear layers have no bias", err) ||
        want_bool(h, "classifier_bias", 0, 0, "nvwa's MLM head dense has no bias", err) ||
        want_gelu_tanh(h, "hidden_activation", err) || want_gelu_tanh(h, "classifier_activation", err))
        return -1;
    static const struct { const char *key; int id; } tok_ids[] = {
        {"pad_token_id", NV_TOK_PAD}, {"cls_token_id", NV_TOK_CLS}, {"sep_token_id", NV_TOK_EOS}};
    for (size_t i = 0; i < sizeof tok_ids / sizeof tok_ids[0]; i++) {
        json_t *v = get(h, tok_ids[i].key);
        if (v && !json_is_null(v) && (!json_is_integer(v) || json_integer_value(v) != tok_ids[i].id))
            return nv_seterr(err, "%s: %s: expected %d (%s in nvwa's vocabulary, design section 4)", h->path,
                             tok_ids[i].key, tok_ids[i].id, TOKENS[tok_ids[i].id]);
    }
    static const char *const drops[] = {"embedding_dropout", "attention_dropout", "mlp_dropout", NULL};
    for (int i = 0; drops[i]; i++)
        if (num_or(h, drops[i], 0) != 0)
            fprintf(stderr, "nvwa-ckpt: note: %s: %g ignored (nvwa trains without dropout)\n", drops[i],
                    num_or(h, drops[i], 0));
    m->num_layers = (int)L;
    m->hidden_size = (int)d;
    m->ffn_hidden_size = (int)f;
    m->num_attn_heads = (int)H;
    m->vocab_size = NV_VOCAB;
    m->local_window = (int)w;
    m->global_attn_every = (int)every;
    m->rope_theta_global = tg;
    m->rope_theta_local = tl;
    m->first_attn_norm = 0;
    if (d % H || (d / H) % 2)
        return nv_seterr(err, "%s: hidden_size %ld / num_attention_heads %ld: nvwa needs an even head size", h->path, d, H);
    return 0;
}

// tokenizer.json, when present, must give the 16 tokens nvwa's ids.
static int check_tokenizer(const char *dir, nv_error *err) {
    char path[NV_PATH_MAX + 64];
    if (join(path, sizeof path, dir, "tokenizer.json", err)) return -1;
    if (!file_exists(path)) return 0;
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    if (!j) return nv_seterr(err, "%s: not JSON: %s (line %d)", path, je.text, je.line);
    json_t *vocab = json_object_get(json_object_get(j, "model"), "vocab");
    int rc = 0;
    if (!json_is_object(vocab))
        fprintf(stderr, "nvwa-ckpt: note: %s: model.vocab is no token->id map; token ids not checked\n", path);
    for (int i = 0; i < NV_VOCAB && !rc && json_is_object(vocab); i++) {
        json_t *v = json_object_get(vocab, TOKENS[i]);
        if (!json_is_integer(v) || json_integer_value(v) != i)
            rc = nv_seterr(err, "%s: model.vocab: token \"%s\" is %s, nvwa's id is %d (design section 4)", path,
                           TOKENS[i], json_is_integer(v) ? "another id" : "missing", i);
    }
    json_decref(j);
    return rc;
}

// The weights: model.safetensors, or the shards a model.safetensors.index.json names.
typedef struct hf_weights {
    int n;
    nv_st_file *f;
} hf_weights;

static int open_weights(const char *dir, hf_weights *w, nv_error *err) {
    memset(w, 0, sizeof *w);
    char path[NV_PATH_MAX + 64];
    if (join(path, sizeof path, dir, "model.safetensors", err)) return -1;
    if (file_exists(path)) {
        w->f = nv_calloc(1, sizeof *w->f);
        w->n = 1;
        return nv_st_open(path, &w->f[0], err);
    }
    if (join(path, sizeof path, dir, "model.safetensors.index.json", err)) return -1;
    json_error_t je;
    json_t *j = file_exists(path) ? json_load_file(path, 0, &je) : NULL;
    if (!j) {
        char bin[NV_PATH_MAX + 64];
        join(bin, sizeof bin, dir, "pytorch_model.bin", err);
        return nv_seterr(err, "%s: no model.safetensors%s", dir,
                         file_exists(bin) ? " (only pytorch_model.bin)\n---> HINT: save it with "
                                            "save_pretrained(..., safe_serialization=True)" : " or model.safetensors.index.json");
    }
    json_t *map = json_object_get(j, "weight_map");
    const char *k;
    json_t *v;
    int rc = json_is_object(map) ? 0 : nv_seterr(err, "%s: no weight_map", path);
    char (*files)[256] = nv_calloc(json_object_size(map) + 1, sizeof *files);
    json_object_foreach(map, k, v) {
        if (rc) break;
        const char *fn = json_string_value(v);
        if (!fn || strchr(fn, '/') || strlen(fn) >= 256) {
            rc = nv_seterr(err, "%s: weight_map[%s]: bad file name", path, k);
            break;
        }
        int seen = 0;
        for (int i = 0; i < w->n; i++) seen |= !strcmp(files[i], fn);
        if (!seen) snprintf(files[w->n++], 256, "%s", fn);
    }
    w->f = nv_calloc((size_t)w->n + 1, sizeof *w->f);
    int opened = 0;
    for (int i = 0; i < w->n && !rc; i++, opened++) {
        char p[NV_PATH_MAX + 300];
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        rc = nv_st_open(p, &w->f[i], err);
    }
    for (int i = opened; i < w->n; i++) w->f[i].fd = -1;
    free(files);
    json_decref(j);
    return rc;
}

static void close_weights(hf_weights *w) {
    for (int i = 0; i < w->n; i++) nv_st_close(&w->f[i]);
    free(w->f);
}

// Read tensor `name` of the expected shape into out; absent: 1 (when optional) or an error.
static int read_tensor(const hf_weights *w, const char *name, int64_t rows, int64_t cols, float *out,
                       int optional, nv_error *err) {
    for (int i = 0; i < w->n; i++) {
        int k = nv_st_find(&w->f[i], name);
        if (k < 0) continue;
        const nv_st_entry *e = &w->f[i].e[k];
        int64_t r = e->ndim >= 1 ? e->shape[0] : 1, c = e->ndim == 2 ? e->shape[1] : 1;
        if (e->ndim < 1 || e->ndim > 2 || r != rows || c != cols)
            return nv_seterr(err, "%s: %s: shape [%lld%s%lld] (expected [%lld, %lld] from config.json)", w->f[i].path,
                             name, (long long)r, e->ndim == 2 ? ", " : " x ", (long long)c, (long long)rows,
                             (long long)cols);
        return nv_st_read(&w->f[i], k, out, err);
    }
    if (optional) return 1;
    return nv_seterr(err, "%s: no tensor %s", w->f[0].path, name);
}

// Tolerance of values stored at the weights' dtype (for the embedding checks below).
static double dtype_tol(const hf_weights *w, double scale) {
    int k = nv_st_find(&w->f[0], "model.embeddings.tok_embeddings.weight");
    const char *dt = k >= 0 ? w->f[0].e[k].dtype : "F32";
    double ulp = !strcmp(dt, "BF16") ? 0x1p-8 : !strcmp(dt, "F16") ? 0x1p-11 : 0x1p-23;
    return 2 * ulp * scale;
}

// Token embedding T and decoder D -> nvwa's tied E_tok = D and structure row S0 = T - D,
// which must be the same vector for every token (nvwa's decoder is tied to E_tok).
static int untie(const hf_weights *w, const float *T, const float *D, const float *S_given, int d, float *E, float *S0,
                 nv_error *err) {
    double tmax = 0;
    for (int i = 0; i < NV_VOCAB * d; i++) tmax = fmax(tmax, fabs(T[i]));
    for (int j = 0; j < d; j++) {
        if (S_given) {
            S0[j] = S_given[j];
        } else {
            double s = 0;
            for (int v = 0; v < NV_VOCAB; v++) s += (double)T[v * d + j] - D[v * d + j];
            S0[j] = (float)(s / NV_VOCAB);
        }
    }
    const double tol = dtype_tol(w, tmax);
    for (int v = 0; v < NV_VOCAB; v++)
        for (int j = 0; j < d; j++) {
            E[v * d + j] = D[v * d + j];
            double dev = fabs((double)T[v * d + j] - ((double)D[v * d + j] + S0[j]));
            if (dev > tol)
                return nv_seterr(err, "%s: model.embeddings.tok_embeddings.weight - decoder.weight differs between "
                                      "tokens (token %d, dim %d: off by %.3g), which nvwa cannot express (its MLM "
                                      "decoder is tied to the token embedding; tie_word_embeddings false is only "
                                      "possible through the one hidden-structure row)", w->f[0].path, v, j, dev);
        }
    return 0;
}

// The checkpoint's config: --config INI, else the exported nvwa_config.ini, else defaults;
// [model] from config.json (an INI that disagrees is refused naming the key).
static int import_config(const char *dir, const char *config_ini, const nv_model_config *hm, long max_pos,
                         const char *out_root, nv_config *c, int *from_nvwa, nv_error *err) {
    char path[NV_PATH_MAX + 64];
    *from_nvwa = 0;
    const char *src = config_ini;
    if (!src && !join(path, sizeof path, dir, "nvwa_config.ini", err) && file_exists(path)) {
        src = path;
        *from_nvwa = 1;
    }
    if (src) {
        if (nv_config_load(c, src, 0, NULL, err)) return -1;
        const nv_model_config *a = &c->model;
        static const char *fmt = "%s: [model] %s: %s there, %s in config.json (%s)";
        char x[64], y[64];
#define SAME(field, key, f)                                                                        \
        if (a->field != hm->field) {                                                               \
            snprintf(x, sizeof x, f, a->field);                                                    \
            snprintf(y, sizeof y, f, hm->field);                                                   \
            return nv_seterr(err, fmt, src, key, x, y, "the model's shape comes from config.json"); \
        }
        SAME(num_layers, "num-layers", "%d") SAME(hidden_size, "hidden-size", "%d")
        SAME(ffn_hidden_size, "ffn-hidden-size", "%d") SAME(num_attn_heads, "num-attn-heads", "%d")
        SAME(local_window, "local-window", "%d") SAME(global_attn_every, "global-attn-every", "%d")
        SAME(rope_theta_global, "rope-theta-global", "%g") SAME(rope_theta_local, "rope-theta-local", "%g")
        SAME(first_attn_norm, "first-attn-norm", "%d")
#undef SAME
    } else {
        nv_config_defaults(c);
        int sl = max_pos > 4096 ? 4096 : (int)max_pos; // a 8192-token default is no training length
        c->data.seq_length = sl;
        if (c->data.span_max > sl - 2) c->data.span_max = sl - 2 > 1 ? sl - 2 : 1;
        const nv_model_config keep = c->model; // structure-input, struct-loss-weight: nvwa's defaults
        c->model = *hm;
        c->model.structure_input = keep.structure_input;
        c->model.struct_loss_weight = keep.struct_loss_weight;
    }
    char cwd[NV_PATH_MAX];
    if (out_root[0] != '/' && getcwd(cwd, sizeof cwd)) // config.ini works from any directory
        snprintf(c->checkpoint.dir, sizeof c->checkpoint.dir, "%.*s/%s", (int)(sizeof cwd / 2), cwd, out_root);
    else
        snprintf(c->checkpoint.dir, sizeof c->checkpoint.dir, "%s", out_root);
    snprintf(c->checkpoint.resume, sizeof c->checkpoint.resume, "auto");
    if (nv_config_validate(c, c->parallel.tensor, err)) return -1;
    return 0;
}

static int fill_weights(const char *dir, const hf_weights *w, const nv_param_table *t, const nv_param_ids *ids,
                        const nv_config *c, float *master, int *struct_from_file, nv_error *err) {
    const nv_model_config *m = &c->model;
    const int d = m->hidden_size, L = m->num_layers;
    char nm[128];
    int rc = 0;
#define R(name, k, opt) read_tensor(w, name, t->p[k].full[0], t->p[k].full[1], master + t->p[k].offset, opt, err)
    // the structure head and embedding: struct_head.safetensors when there is one
    nv_st_file sh;
    char path[NV_PATH_MAX + 64];
    int have_sh = !join(path, sizeof path, dir, "struct_head.safetensors", err) && file_exists(path);
    float *S = NULL;
    *struct_from_file = 0;
    if (have_sh) {
        if (nv_st_open(path, &sh, err)) return -1;
        hf_weights one = {1, &sh};
        rc = read_tensor(&one, "head.struct.weight", 3, d, master + t->p[ids->struct_w].offset, 0, err);
        if (!rc) rc = read_tensor(&one, "head.struct.bias", 3, 1, master + t->p[ids->struct_b].offset, 0, err);
        if (!rc && ids->embed_struct >= 0) {
            S = master + t->p[ids->embed_struct].offset;
            rc = read_tensor(&one, "embed.struct", 4, d, S, 1, err);
            if (rc == 1)
                rc = nv_seterr(err, "%s: no embed.struct, but [model] structure-input is true\n---> HINT: "
                                    "import with --config INI setting structure-input = false", path);
        }
        nv_st_close(&sh);
        *struct_from_file = !rc;
        if (rc) return -1;
    } else if (ids->embed_struct >= 0) {
        S = master + t->p[ids->embed_struct].offset;
        memset(S, 0, sizeof(float) * (size_t)d); // row 0 from untie(); rows 1..3 keep the init
    }
    float *T = nv_malloc(sizeof(float) * NV_VOCAB * d), *D = nv_malloc(sizeof(float) * NV_VOCAB * d),
          *S0 = nv_malloc(sizeof(float) * d);
    rc = read_tensor(w, "model.embeddings.tok_embeddings.weight", NV_VOCAB, d, T, 0, err);
    int r = rc ? -1 : read_tensor(w, "decoder.weight", NV_VOCAB, d, D, 1, err);
    if (r == 1) memcpy(D, T, sizeof(float) * NV_VOCAB * d); // tied: saved once
    rc = r < 0 ? -1 : 0;
    if (!rc && !S) { // no structure input: no row to hold a shift, T must equal D
        memset(S0, 0, sizeof(float) * d);
        rc = untie(w, T, D, S0, d, master + t->p[ids->embed_tok].offset, S0, err);
    } else if (!rc) {
        rc = untie(w, T, D, *struct_from_file ? S : NULL, d, master + t->p[ids->embed_tok].offset, S0, err);
        if (!rc && S) memcpy(S, S0, sizeof(float) * d);
    }
    free(T);
    free(D);
    free(S0);
    if (!rc) rc = R("model.embeddings.norm.weight", ids->embed_norm, 0);
    for (int l = 0; l < L && !rc; l++) {
        const nv_layer_ids *li = &ids->layers[l];
#define LN(s) (snprintf(nm, sizeof nm, "model.layers.%d.%s", l, s), nm)
        if (li->attn_norm >= 0) rc = R(LN("attn_norm.weight"), li->attn_norm, 0);
        if (!rc) rc = R(LN("attn.Wqkv.weight"), li->wqkv, 0);
        if (!rc) rc = R(LN("attn.Wo.weight"), li->wo, 0);
        if (!rc) rc = R(LN("mlp_norm.weight"), li->mlp_norm, 0);
        if (!rc) rc = R(LN("mlp.Wi.weight"), li->w_in, 0);
        if (!rc) rc = R(LN("mlp.Wo.weight"), li->w_out, 0);
#undef LN
    }
    if (!rc) rc = R("model.final_norm.weight", ids->final_norm, 0);
    if (!rc) rc = R("head.dense.weight", ids->head_dense, 0);
    if (!rc) rc = R("head.norm.weight", ids->head_norm, 0);
    if (!rc) {
        int b = R("decoder.bias", ids->head_bias, 1); // decoder_bias false: zero
        if (b == 1) memset(master + t->p[ids->head_bias].offset, 0, sizeof(float) * NV_VOCAB);
        rc = b < 0 ? -1 : 0;
    }
#undef R
    // no stray tensors: a name nvwa does not know means a model it does not compute
    for (int i = 0; i < w->n && !rc; i++)
        for (int k = 0; k < w->f[i].n && !rc; k++) {
            const char *n = w->f[i].e[k].name;
            int known = !strcmp(n, "model.embeddings.tok_embeddings.weight") || !strcmp(n, "decoder.weight") ||
                        !strcmp(n, "decoder.bias") || !strcmp(n, "model.embeddings.norm.weight") ||
                        !strcmp(n, "model.final_norm.weight") || !strcmp(n, "head.dense.weight") ||
                        !strcmp(n, "head.norm.weight");
            int l = -1, end = 0;
            char rest[64];
            if (!known && sscanf(n, "model.layers.%d.%63s%n", &l, rest, &end) == 2 && !n[end] && l >= 0 && l < L)
                known = (l > 0 && !strcmp(rest, "attn_norm.weight")) || !strcmp(rest, "attn.Wqkv.weight") ||
                        !strcmp(rest, "attn.Wo.weight") || !strcmp(rest, "mlp_norm.weight") ||
                        !strcmp(rest, "mlp.Wi.weight") || !strcmp(rest, "mlp.Wo.weight");
            if (!known)
                rc = nv_seterr(err, "%s: tensor %s is not part of the model nvwa computes (a bias, or "
                                    "layer 0's attention norm?)", w->f[i].path, n);
        }
    return rc;
}

static int write_checkpoint(const char *out_root, const nv_config *c, const nv_param_table *t, float *master,
                            nv_error *err) {
    char tmp[NV_PATH_MAX + 32];
    nv_ckpt_state s;
    memset(&s, 0, sizeof s);
    s.t = t;
    s.master = master;
    s.adam_m = nv_calloc(t->total + 1, sizeof(float)); // fresh optimizer state
    s.adam_v = nv_calloc(t->total + 1, sizeof(float));
    s.shard_lo = 0;
    s.shard_hi = t->total;
    s.step = 0;
    s.cursor.n_slots = c->data.global_batch / c->data.micro_batch; // the data stream's start
    nv_ckpt_file files[2];
    int nf = 0;
    int rc = nv_ckpt_begin(out_root, 0, tmp, sizeof tmp, err) || nv_ckpt_write_files(tmp, &s, 0, 1, files, &nf, err) ||
             nv_ckpt_commit(out_root, tmp, c, &s, 1, 1, 0, files, nf, 0, err) ? -1 : 0;
    free(s.adam_m);
    free(s.adam_v);
    return rc;
}

int nv_hf_import(const char *hf_dir, const char *out_root, const char *config_ini, nv_error *err) {
    char path[NV_PATH_MAX + 64];
    if (!is_dir(hf_dir)) return nv_seterr(err, "%s: not a directory", hf_dir);
    char (*dirs)[NV_PATH_MAX] = NULL;
    nv_error e2;
    int have = is_dir(out_root) ? nv_ckpt_candidates(out_root, &dirs, &e2) : 0;
    free(dirs);
    if (have > 0)
        return nv_seterr(err, "%s: already holds checkpoints; import into a new directory", out_root);
    if (join(path, sizeof path, hf_dir, "config.json", err)) return -1;
    json_error_t je;
    hf_cfg h = {path, json_load_file(path, 0, &je)};
    if (!h.j) return nv_seterr(err, "%s: %s (line %d)", path, je.text, je.line);
    nv_model_config hm;
    memset(&hm, 0, sizeof hm);
    long max_pos = 0;
    int rc = json_is_object(h.j) ? read_hf_config(&h, &hm, &max_pos, err) : nv_seterr(err, "%s: not a JSON object", path);
    json_decref(h.j);
    if (!rc) rc = check_tokenizer(hf_dir, err);
    nv_config c;
    int from_nvwa = 0, struct_file = 0;
    if (!rc) rc = import_config(hf_dir, config_ini, &hm, max_pos, out_root, &c, &from_nvwa, err);
    if (rc) return -1;
    hf_weights w;
    if (open_weights(hf_dir, &w, err)) {
        close_weights(&w);
        return -1;
    }
    nv_param_table t;
    nv_param_ids ids;
    nv_params_build(&t, &ids, &c.model, 0, 1);
    double *init = nv_calloc(t.total + 1, sizeof(double));
    nv_params_init_host(&t, c.train.seed, init); // what the files do not hold starts from the init
    float *master = nv_calloc(t.total + 1, sizeof(float));
    for (size_t i = 0; i < t.total; i++) master[i] = (float)init[i];
    free(init);
    rc = fill_weights(hf_dir, &w, &t, &ids, &c, master, &struct_file, err);
    close_weights(&w);
    if (!rc) rc = write_checkpoint(out_root, &c, &t, master, err);
    if (!rc) { // the config to continue with, beside the checkpoints
        if (join(path, sizeof path, out_root, "config.ini", err)) rc = -1;
        FILE *f = rc ? NULL : fopen(path, "w");
        if (!rc && !f) rc = nv_seterr(err, "%s: cannot create: %s", path, strerror(errno));
        if (f) {
            fprintf(f, "; config.ini - written by nvwa-ckpt import --hf %s\n"
                       "; continue pretraining: nvwa-train %s data.train=SHARDS\n", hf_dir, path);
            nv_config_write(&c, f);
            if (fclose(f) != 0) rc = nv_seterr(err, "%s: write failed", path);
        }
    }
    if (!rc) {
        printf("%s: step 0 from %s (%d layers, hidden %d, %d heads, %lld parameters), fresh optimizer state\n",
               out_root, hf_dir, c.model.num_layers, c.model.hidden_size, c.model.num_attn_heads,
               (long long)nv_param_count(&c.model));
        printf("  config: %s%s\n", config_ini ? config_ini : from_nvwa ? "nvwa_config.ini of the export" : "defaults",
               config_ini || from_nvwa ? "" : " (seq-length from max_position_embeddings)");
        if (!struct_file)
            printf("  no struct_head.safetensors: the structure head%s start from the init (seed %llu)\n",
                   ids.embed_struct >= 0 ? " and structure-input rows 1-3" : "",
                   (unsigned long long)c.train.seed);
        printf("  continue: nvwa-train %s/config.ini data.train=SHARDS\n", out_root);
    }
    free(master);
    nv_params_free(&t, &ids);
    return rc;
}
