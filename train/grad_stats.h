// grad_stats.h - the per-step gradient check: per-tensor sums of squares computed on the
// device (backend sumsq_to, no waiting) and read back ONCE per step. They give
//   - the global gradient norm for clipping, split into tensor-parallel-sharded tensors
//     (a partial per tensor rank) and replicated ones (counted once), and
//   - the non-finite check: a NaN or Inf makes a tensor's sum non-finite, so the first bad
//     tensor is known without a second pass.
// With more than one data rank, each tensor is also summed on the LOCAL gradients before
// the data-parallel sum (afterwards every rank would hold the bad value and the culprit
// rank would be lost): issued from the model's grad hook as buckets complete, ahead of
// each bucket's reduction, so the overlap stays.
#pragma once
#include <stddef.h>

#include "model/model.h"

typedef struct nv_grad_stats nv_grad_stats;

// grad: the model's local flat gradient buffer. presync: also check it before the
// data-parallel sum. inner: the data-parallel hook the stats hook wraps (may be NULL).
nv_grad_stats *nv_grad_stats_create(const nv_backend *be, const nv_param_table *pt,
                                    const void *grad, const nv_grad_hook *inner, int presync);
void nv_grad_stats_free(nv_grad_stats *s);
// Start a step.
void nv_grad_stats_begin(nv_grad_stats *s);
// The hook for the last micro-batch (checks local tensors as they complete, then calls
// inner); equals inner when presync is off.
const nv_grad_hook *nv_grad_stats_hook(nv_grad_stats *s);
// Before the data-parallel sum: check the local tensors the hook has not reported.
void nv_grad_stats_local(nv_grad_stats *s);
// After it: sums of squares of the summed gradient over the flat range [lo, hi), g[i - lo]
// holding element i (the whole buffer, or this rank's ZeRO-1 shard).
void nv_grad_stats_global(nv_grad_stats *s, const void *g, size_t lo, size_t hi);

typedef struct nv_grad_report {
    double split, rep; // squared norm: sharded tensors (this tensor rank's part), replicated
    int bad_local;     // first tensor (table order) non-finite before the sum, or -1
    int bad_global;    // first tensor non-finite after the sum (in [lo, hi)), or -1
} nv_grad_report;
// The one readback (waits for the device).
void nv_grad_stats_read(nv_grad_stats *s, nv_grad_report *r);
