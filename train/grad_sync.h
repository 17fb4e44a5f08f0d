// grad_sync.h - data-parallel gradient reduction (design section 8).
//
// Gradients are summed over the data group (the losses are already normalized by the
// global batch's counts, so a sum is the mean gradient). The sum runs in buckets launched as
// soon as the model's backward reports their gradients complete, on a communication thread
// (CPU, MPI) or a side stream (GPU, NCCL), so it overlaps the rest of the backward pass;
// bucket boundaries depend only on the parameter table, so the reduction order is fixed.
//
// ZeRO-1 (nv_grad_sync_set_zero1): each bucket is reduce-scattered instead of all-reduced:
// every rank sends the part of the bucket that another rank's shard owns to that rank, and
// the owner adds the dp contributions in rank order 0, 1, ..., dp-1 in fp32. The sum of
// every element therefore has one fixed order whatever the bucketing, the timing or the
// transport: ZeRO-1 with and without overlap ([parallel] overlap) gives the same bits, and
// the NCCL path computes exactly what the MPI path does.
#pragma once
#include <stddef.h>

#include "model/model.h"
#include "train/dist.h"

typedef struct nv_grad_sync nv_grad_sync;

// grad: host float buffer of `total` elements (the CPU backend's gradient buffer).
nv_grad_sync *nv_grad_sync_create(const nv_dist *d, float *grad, size_t total,
                                  size_t bucket_elems);
// GPU (backend "cuda"): grad is the fp32 device gradient buffer; the same bucketing, but each
// bucket is handed to NCCL at once (side stream, ordered by events; no thread) and
// nv_grad_sync_finish makes the compute stream wait (the host does not block).
struct nv_nccl;
nv_grad_sync *nv_grad_sync_create_nccl(const nv_dist *d, struct nv_nccl *nc, float *grad,
                                       size_t total, size_t bucket_elems);
// ZeRO-1: reduce-scatter into shard[0, hi - lo) (this rank's range; host memory on CPU,
// device memory on GPU) instead of all-reducing grad. [lo, hi) must be this rank's range of
// nv_zero1_range (CPU) or nv_zero1_range_nccl (GPU). Call once, before the first step.
void nv_grad_sync_set_zero1(nv_grad_sync *s, float *shard, size_t lo, size_t hi);
// overlap = 0: the hook is off and every bucket is reduced in nv_grad_sync_finish (same
// arithmetic; for checking and debugging). Default 1.
void nv_grad_sync_set_overlap(nv_grad_sync *s, int overlap);
void nv_grad_sync_free(nv_grad_sync *s);
// The hook to install on the model for the last micro-batch of a step (NULL when the data
// group has one rank, overlap is off or impossible).
const nv_grad_hook *nv_grad_sync_hook(nv_grad_sync *s);
// After the backward pass: reduce whatever was not reported and wait for all buckets
// (ZeRO-1: the summed shard is complete afterwards).
void nv_grad_sync_finish(nv_grad_sync *s);

// ZeRO-1 shards: the flat range of data rank r out of dp over `total` elements; the last
// shards absorb the remainder (uneven sizes are fine).
void nv_zero1_range(size_t total, int dp, int r, size_t *lo, size_t *hi);
// Sum gradients over the data group and leave this rank's shard in shard_out[0..hi-lo), in
// one call (no overlap): the same per-element rank-ordered sums as the buckets above.
void nv_zero1_reduce_scatter(const nv_dist *d, const float *grad, size_t total, float *shard_out);
// Share the updated shards of a flat buffer of `total` elements of elem_bytes each (the fp32
// masters, or the act-type compute copy): every rank gets every shard of nv_zero1_range.
void nv_zero1_allgather_bytes(const nv_dist *d, void *w, size_t total, size_t elem_bytes);
// The fp32 form of the above.
void nv_zero1_allgather(const nv_dist *d, float *w, size_t total);
