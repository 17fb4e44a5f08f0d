// config.h - the one config struct (design section 10), parsed and validated once: the
// composite of each floor's own section ([model] model/model_config.h, [data]
// data/data_config.h, [optim] optim/optim_config.h) and the trainer's ([parallel] [train]
// [checkpoint] [log], here). Each floor is handed only its part.
//
// INI via libinih; sections [model] [data] [optim] [parallel] [train] [checkpoint] [log];
// keys with hyphens. `section.key=value` arguments override the file. Unknown sections and
// keys, bad types, out-of-range values and inconsistent sizes are errors naming file:line
// (or the override) before any work starts.
#pragma once
#include <stdint.h>
#include <stdio.h>
#include "data/data_config.h"
#include "data/nv_util.h"
#include "model/model_config.h"
#include "optim/optim_config.h"

typedef struct nv_parallel_config {
    int tensor;
    int zero1;
    int overlap; // reduce gradient buckets while backward runs (0: after it; same bits)
} nv_parallel_config;

typedef enum { NV_DEVICE_CPU = 0, NV_DEVICE_CUDA = 1, NV_DEVICE_AUTO = 2 } nv_device_kind;
typedef enum { NV_PREC_FP32 = 0, NV_PREC_BF16 = 1 } nv_precision;
// CUDA attention: the faster of the two measured at start-up, cuDNN's fused SDPA, or the
// hand-written kernel (model/cuda/attn_plan.h)
typedef enum { NV_ATTN_AUTO = 0, NV_ATTN_CUDNN = 1, NV_ATTN_NATIVE = 2 } nv_attn_kind;

typedef struct nv_train_config {
    long steps;
    nv_device_kind device;
    nv_precision precision; // bf16 (mixed, CUDA) or fp32; CPU always computes in fp32
    int recompute;
    nv_attn_kind attention;    // CUDA only; ignored on CPU
    double exit_after_minutes; // 0 = off
    uint64_t seed;             // weight init seed
    int max_skipped_steps;     // consecutive non-finite steps before the job stops
} nv_train_config;

typedef struct nv_checkpoint_config {
    char dir[NV_PATH_MAX];   // empty = no checkpoints
    long every;              // 0 = only at the end
    int keep;
    char resume[NV_PATH_MAX]; // "auto", "none", or a checkpoint directory
} nv_checkpoint_config;

typedef struct nv_log_config {
    int every;
    char file[NV_PATH_MAX];  // JSONL log; empty = none
    long eval_every;         // 0 = off
} nv_log_config;

typedef struct nv_config {
    nv_model_config model;
    nv_data_config data;
    nv_optim_config optim;
    nv_parallel_config parallel;
    nv_train_config train;
    nv_checkpoint_config checkpoint;
    nv_log_config log;
    char source[NV_PATH_MAX]; // the file it was read from
} nv_config;

// Defaults (the 1.6B recipe's optimizer/data settings, a tiny model).
void nv_config_defaults(nv_config *c);

// Reset c to the defaults, parse an INI file over them, then apply overrides
// "section.key=value".
// Returns 0, or -1 with one line in err ("FILE:LINE: [section] key: what is wrong").
int nv_config_load(nv_config *c, const char *path, int n_overrides, char *const *overrides,
                   nv_error *err);
// Parse INI text over the current contents of c (for tests and fuzzing); `name` is used in
// messages and stored in c->source.
int nv_config_parse_string(nv_config *c, const char *text, const char *name, nv_error *err);
// Apply one "section.key=value" override.
int nv_config_override(nv_config *c, const char *arg, nv_error *err);
// Cross-key checks (divisibility, ranges that depend on other keys); world_size = ranks.
int nv_config_validate(const nv_config *c, int world_size, nv_error *err);

// Write the resolved config as INI (every key, canonical formatting); parseable back.
void nv_config_write(const nv_config *c, FILE *f);

