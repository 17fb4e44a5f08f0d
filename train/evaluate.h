// evaluate.h - held-out evaluation of a model over a corpus (nvwa-eval and the trainer's
// [log] eval-every).
//
// Every sequence of the corpus is scored exactly once, in corpus order, packed greedily into
// rows of `seq-length` tokens as `<cls> seq <eos>` segments (micro-batch rows per forward).
// A sequence longer than seq-length - 2 is cut into consecutive non-overlapping chunks of
// seq-length - 2 nucleotides (the last one shorter), each its own segment, so every
// nucleotide counts. Masking is the training masker (design section 7) with a FIXED key:
// seed = mix(data seed, hash("eval")), epoch = chunk number (0 for a whole sequence),
// sequence index = the index in the corpus. The same corpus, config and weights therefore
// give the same numbers, and two checkpoints are compared on identical masked positions.
//
// Baselines beside the model: the unigram predictor for MLM (the nucleotide distribution of
// a reference corpus: its cross-entropy on the scored targets and the accuracy of its most
// frequent nucleotide) and the majority class for the structure head.
#pragma once
#include <stdint.h>
#include <stdio.h>

#include "data/dataset.h"
#include "model/model.h"
#include "train/config.h"

typedef struct nv_eval_result {
    uint64_t n_seqs, n_tokens;  // sequences and nucleotides evaluated
    uint64_t n_chunks;          // segments (more than n_seqs when sequences were chunked)
    // masked LM
    long mlm_count, mlm_correct;
    double mlm_loss;            // mean cross-entropy (nats) over the selected positions
    double mlm_acc;
    double perplexity;          // exp(mlm_loss)
    // structure head: positions whose structure input was hidden and label known
    long st_count, st_correct;
    double st_loss, st_acc;
    long st_class_count[3], st_class_correct[3]; // per true class: unpaired, open, close
    double st_class_acc[3];     // recall per class; NaN when the class is absent
    double st_macro_acc;        // mean over the classes present
    double loss;                // mlm_loss + struct-loss-weight * st_loss
    // baselines
    double uni_p[16];           // the unigram distribution used (over ids; 0 on specials)
    double uni_loss;            // its cross-entropy on the scored MLM targets
    double uni_acc;             // accuracy of always predicting the most frequent nucleotide
    int uni_top;                // that nucleotide's id
    int maj_class;              // the majority structure class of the reference
    double maj_acc;             // its accuracy on the scored structure positions
    double maj_macro_acc;       // its macro accuracy (1 / classes present)
    double seconds;
} nv_eval_result;

// Evaluate m (created with max_tokens >= micro-batch * seq-length of cfg) on corpus c (in
// memory or streamed, data/dataset.h). ref: the corpus whose nucleotide and structure-class
// frequencies define the baselines (the training corpus in the trainer); NULL = c itself.
// max_seqs > 0 evaluates only the first max_seqs sequences. Forward only: gradients are not
// touched. Returns 0, or -1 with err set (an empty corpus, a sequence with nothing to score,
// a shard that cannot be read).
int nv_evaluate(nv_model *m, nv_dataset *c, nv_dataset *ref, const nv_config *cfg,
                uint64_t max_seqs, nv_eval_result *out, nv_error *err);

// The result as JSON fields without braces ("\"mlm_loss\": 1.2, ..."), for the JSONL log's
// {"event": "eval", ...} record; NaN/Inf written as null. Returns the length written
// (truncated to n - 1 like snprintf).
int nv_eval_json_fields(const nv_eval_result *r, char *buf, size_t n);
// One JSON object {...}\n to f.
void nv_eval_write_json(const nv_eval_result *r, FILE *f);
// A readable table to f.
void nv_eval_print_table(const nv_eval_result *r, FILE *f);

// ---- loading a trained model (nvwa-eval, nvwa-embed) -------------------------------------
#include "train/dist.h"

// The resolved config saved in a checkpoint (a root, via `latest`, or one step dir), and
// its step (may be NULL). Non-collective; no CRC check (nv_model_load_ckpt does that).
int nv_ckpt_read_config(const char *path, nv_config *cfg, long *step, nv_error *err);
// Load the checkpoint's master weights into m (m's tensor layout) with nv_ckpt_load
// (collective over d->comm_world; a world of 1 in the tools), then refresh the compute copy.
// *loaded (may be NULL, NV_PATH_MAX) receives the step dir loaded.
int nv_model_load_ckpt(nv_model *m, const char *path, const nv_dist *d, char *loaded,
                       nv_error *err);

// ---- the trainer's [log] eval-every hook ---------------------------------------------------
#include "train/log.h"

typedef struct nv_eval_hook {
    int active;        // [data] valid set, [log] eval-every > 0, and this rank evaluates
    nv_dataset *valid; // opened (streamed) once at start
} nv_eval_hook;

// Load [data] valid once (on the ranks that evaluate) when it is set and eval-every > 0.
// First version: evaluation runs with tensor = 1 only (on rank 0, alone; other data ranks go
// on to the next step's collectives and wait there); otherwise rank 0 warns once and the
// hook stays off. A bad valid corpus ends the job with one line.
void nv_eval_hook_init(nv_eval_hook *h, const nv_config *cfg, const nv_dist *d);
// After global step `done` (1-based): when done % eval-every == 0 or done is the last step,
// evaluate on the valid corpus (baselines from `train`), print a line and append
// {"event": "eval", "step": done, ...} to the JSONL log (rank 0). Returns the seconds it
// took (0 when it did nothing), for the trainer to leave out of its tokens/s window.
double nv_eval_hook_step(nv_eval_hook *h, nv_model *m, nv_dataset *train,
                       const nv_config *cfg, const nv_dist *d, nv_logger *lg, long done);
void nv_eval_hook_free(nv_eval_hook *h);
