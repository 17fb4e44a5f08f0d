// grad_sync.h - data-parallel gradient reduction (design section 8).
//
// Gradients are summed over the data group (the losses are already normalized by the
// global batch's counts, so a sum is the mean gradient). Without ZeRO-1 the sum runs in
// buckets launched as soon as the model's backward reports their gradients complete, on a
// communication thread, so it overlaps the rest of the backward pass; bucket boundaries
// depend only on the parameter table, so the reduction order is fixed. With ZeRO-1 the
// gradients are reduce-scattered to their owning shard after backward.
#pragma once
#include <stddef.h>

#include "model/model.h"
#include "train/dist.h"

typedef struct nv_grad_sync nv_grad_sync;

// grad: host float buffer of `total` elements (the CPU backend's gradient buffer).
nv_grad_sync *nv_grad_sync_create(const nv_dist *d, float *grad, size_t total,
                                  size_t bucket_elems);
// GPU (backend "cuda"): grad is the fp32 device gradient buffer; the same bucketing, but each
// bucket is handed to NCCL at once (nv_nccl_grad_bucket: side stream, ordered by events; no
// thread) and nv_grad_sync_finish makes the compute stream wait (the host does not block).
// Compile-verified only (train/comm_nccl.h).
struct nv_nccl;
nv_grad_sync *nv_grad_sync_create_nccl(const nv_dist *d, struct nv_nccl *nc, float *grad,
                                       size_t total, size_t bucket_elems);
void nv_grad_sync_free(nv_grad_sync *s);
// The hook to install on the model for the last micro-batch of a step (NULL when the data
// group has one rank or overlap is impossible).
const nv_grad_hook *nv_grad_sync_hook(nv_grad_sync *s);
// After the backward pass: reduce whatever was not reported and wait for all buckets.
void nv_grad_sync_finish(nv_grad_sync *s);

// ZeRO-1 shards: the flat range of data rank r out of dp over `total` elements; the last
// shards absorb the remainder (uneven sizes are fine).
void nv_zero1_range(size_t total, int dp, int r, size_t *lo, size_t *hi);
// Sum gradients over the data group and leave this rank's shard in shard_out[0..hi-lo).
void nv_zero1_reduce_scatter(const nv_dist *d, const float *grad, size_t total, float *shard_out);
// Share the updated shards of the flat weight buffer: every rank gets every shard.
void nv_zero1_allgather(const nv_dist *d, float *w, size_t total);
