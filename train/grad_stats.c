// grad_stats.c - per-tensor gradient sums of squares on the device, one readback per step
// (grad_stats.h).
#include "train/grad_stats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "data/nv_util.h"

struct nv_grad_stats {
    const nv_backend *be;
    const nv_param_table *pt;
    const nv_grad_hook *inner;
    int presync;
    nv_grad_hook hook;
    const char *grad;       // the local gradient buffer the hook reads
    double *dev;            // device [2 * n]: local sums, then global sums
    double *host;           // its host copy
    unsigned char *issued;  // local sum issued this step [n]
    unsigned char *global;  // global sum issued this step [n]
};

static void local_one(nv_grad_stats *s, int k) {
    const nv_param *p = &s->pt->p[k];
    if (s->issued[k]) return;
    s->issued[k] = 1;
    s->be->sumsq_to(s->dev + k, s->grad + p->offset * s->be->state_bytes, p->numel);
}

static void on_ready(void *ctx, size_t lo, size_t hi) {
    nv_grad_stats *s = ctx;
    for (int k = 0; k < s->pt->n; k++)
        if (s->pt->p[k].offset >= lo && s->pt->p[k].offset < hi) local_one(s, k);
    if (s->inner && s->inner->ready) s->inner->ready(s->inner->ctx, lo, hi); // after the sums
}

nv_grad_stats *nv_grad_stats_create(const nv_backend *be, const nv_param_table *pt,
                                    const void *grad, const nv_grad_hook *inner, int presync) {
    nv_grad_stats *s = nv_calloc(1, sizeof *s);
    const size_t bytes = 2 * (size_t)pt->n * sizeof(double);
    s->be = be;
    s->pt = pt;
    s->grad = grad;
    s->inner = inner;
    s->presync = presync;
    s->hook = (nv_grad_hook){on_ready, s};
    s->dev = be->alloc(bytes);
    if (!s->dev) nv_die("out of %s memory for the gradient statistics", be->name);
    if (be->declare) be->declare(s->dev, bytes, NV_T_F64);
    s->host = nv_calloc(2 * (size_t)pt->n, sizeof(double));
    s->issued = nv_calloc((size_t)pt->n, 1);
    s->global = nv_calloc((size_t)pt->n, 1);
    return s;
}

void nv_grad_stats_free(nv_grad_stats *s) {
    if (!s) return;
    if (s->be->forget) s->be->forget(s->dev, 2 * (size_t)s->pt->n * sizeof(double));
    s->be->free(s->dev);
    free(s->host);
    free(s->issued);
    free(s->global);
    free(s);
}

void nv_grad_stats_begin(nv_grad_stats *s) {
    memset(s->issued, 0, (size_t)s->pt->n);
    memset(s->global, 0, (size_t)s->pt->n);
}

const nv_grad_hook *nv_grad_stats_hook(nv_grad_stats *s) {
    return s->presync ? &s->hook : s->inner;
}

void nv_grad_stats_local(nv_grad_stats *s) {
    if (!s->presync) return;
    for (int k = 0; k < s->pt->n; k++) local_one(s, k);
}

void nv_grad_stats_global(nv_grad_stats *s, const void *g, size_t lo, size_t hi) {
    double *out = s->dev + s->pt->n;
    for (int k = 0; k < s->pt->n; k++) {
        const nv_param *p = &s->pt->p[k];
        const size_t a = p->offset > lo ? p->offset : lo;
        const size_t b = p->offset + p->numel < hi ? p->offset + p->numel : hi;
        if (a >= b) continue;
        s->global[k] = 1;
        s->be->sumsq_to(out + k, (const char *)g + (a - lo) * s->be->state_bytes, b - a);
    }
}

void nv_grad_stats_read(nv_grad_stats *s, nv_grad_report *r) {
    const int n = s->pt->n;
    s->be->to_host(s->host, s->dev, 2 * (size_t)n * sizeof(double));
    memset(r, 0, sizeof *r);
    r->bad_local = r->bad_global = -1;
    for (int k = 0; k < n; k++) {
        if (s->presync && s->issued[k] && r->bad_local < 0 && !isfinite(s->host[k]))
            r->bad_local = k;
        if (!s->global[k]) continue;
        const double v = s->host[n + k];
        if (r->bad_global < 0 && !isfinite(v)) r->bad_global = k;
        if (s->pt->p[k].split != NV_SPLIT_NONE) r->split += v;
        else r->rep += v;
    }
}
