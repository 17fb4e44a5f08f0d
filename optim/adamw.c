// adamw.c - the optimizer step over the parameter table (the math is the backend's
// fused adamw op; this file owns the schedule, decay groups and bias correction).
#include "optim/adamw.h"

#include <math.h>

#include "data/nv_util.h"

void nv_adamw_init(nv_adamw *o, const nv_backend *be, const nv_param_table *t,
                   const nv_optim_config *cfg, long total_steps, size_t lo, size_t hi) {
    o->be = be;
    o->t = t;
    o->cfg = *cfg;
    o->total_steps = total_steps;
    o->lo = lo;
    o->hi = hi > lo ? hi : lo;
    const size_t bytes = (o->hi - o->lo) * be->state_bytes;
    o->m = be->alloc(bytes);
    o->v = be->alloc(bytes);
    if (!o->m || !o->v)
        nv_die("cannot allocate %.2f GiB for the Adam moments on %s\n---> HINT: set [parallel] "
               "zero1 = true to shard them over the data ranks, or raise [parallel] tensor",
               2.0 * bytes / (1 << 30), be->name);
    if (be->declare) { // moments are state (backend.h)
        be->declare(o->m, bytes, NV_T_STATE);
        be->declare(o->v, bytes, NV_T_STATE);
    }
    o->t_step = 0;
}

void nv_adamw_free(nv_adamw *o) {
    const size_t bytes = (o->hi - o->lo) * o->be->state_bytes;
    if (o->be->forget && o->m) o->be->forget(o->m, bytes), o->be->forget(o->v, bytes);
    o->be->free(o->m);
    o->be->free(o->v);
    o->m = o->v = NULL;
}

double nv_lr_at(const nv_optim_config *c, long s, long total) {
    if (s < c->warmup_steps) return c->lr * (double)(s + 1) / (double)c->warmup_steps;
    long span = total - c->warmup_steps;
    if (span <= 0) return c->min_lr;
    double prog = (double)(s - c->warmup_steps) / (double)span;
    if (prog > 1.0) prog = 1.0;
    return c->min_lr + 0.5 * (c->lr - c->min_lr) * (1.0 + cos(M_PI * prog));
}

double nv_clip_scale(const nv_optim_config *c, double norm) {
    if (c->grad_clip <= 0 || norm <= c->grad_clip) return 1.0;
    return c->grad_clip / norm;
}

void nv_adamw_step(nv_adamw *o, void *w, const void *g, void *w_act, double lr, double gscale) {
    const nv_backend *be = o->be;
    const size_t S = be->state_bytes, A = be->act_bytes;
    o->t_step++;
    const double bc1 = 1.0 - pow(o->cfg.beta1, (double)o->t_step);
    const double bc2 = 1.0 - pow(o->cfg.beta2, (double)o->t_step);
    for (int k = 0; k < o->t->n; k++) {
        const nv_param *p = &o->t->p[k];
        // the part of this tensor inside [lo, hi)
        size_t a = p->offset > o->lo ? p->offset : o->lo;
        size_t b = p->offset + p->numel < o->hi ? p->offset + p->numel : o->hi;
        if (a >= b) continue;
        const size_t r = a - o->lo;
        be->adamw((char *)w + a * S, (char *)o->m + r * S, (char *)o->v + r * S,
                  (const char *)g + r * S, w_act ? (char *)w_act + a * A : NULL, b - a, lr,
                  o->cfg.beta1, o->cfg.beta2, o->cfg.eps, p->decay ? o->cfg.weight_decay : 0.0,
                  bc1, bc2, gscale);
    }
}
