// adamw.h - AdamW with decoupled weight decay, linear warmup then cosine decay to min-lr,
// and clipping by the global gradient norm. fp32 (state-type) moments.
//
// Decay groups come from the parameter table: matrices decay; norms, biases and
// embeddings do not.
#pragma once
#include <stddef.h>
#include "model/backend.h"
#include "model/params.h"
#include "optim/optim_config.h"

typedef struct nv_adamw {
    const nv_backend *be;
    const nv_param_table *t;
    nv_optim_config cfg;
    long total_steps;
    size_t lo, hi; // the flat range this rank updates (ZeRO-1 shard; else 0..total)
    void *m, *v;   // state buffers over [lo, hi)
    long t_step;   // updates applied so far (bias correction uses t_step + 1)
} nv_adamw;

// lo..hi: the flat range of the table this rank owns (0, t->total without ZeRO-1).
void nv_adamw_init(nv_adamw *o, const nv_backend *be, const nv_param_table *t,
                   const nv_optim_config *cfg, long total_steps, size_t lo, size_t hi);
void nv_adamw_free(nv_adamw *o);

// Learning rate of (0-based) step s: linear warmup from lr/warmup to lr over warmup-steps,
// then cosine from lr to min-lr at total_steps.
double nv_lr_at(const nv_optim_config *c, long s, long total_steps);

// Clip factor for a gradient of global norm `norm`: min(1, clip / norm) (1 when clip = 0).
double nv_clip_scale(const nv_optim_config *c, double norm);

// One update of the elements [lo, hi): w and w_act are flat buffers over the whole table
// (w_act NULL when it aliases w); g holds the gradient of element i at g[i - lo].
// gscale multiplies the gradient (the clipping factor).
void nv_adamw_step(nv_adamw *o, void *w, const void *g, void *w_act, double lr, double gscale);
