// comm_nccl.h - the GPU side of design section 8: NCCL communicators for the tensor and data
// groups, the tensor-parallel activation all-reduce, bucketed data-parallel gradient sums on
// a side stream ordered by events, and ZeRO-1's reduce-scatter / all-gather on device buffers.
//
// Implemented in train/comm_nccl.cu (built only when nvcc is found, so NCCL code is only
// compiled with CUDA); train/comm_nccl.c holds the stubs for builds without CUDA
// (nv_nccl_available() = 0; everything else stops with a hint).
//
// STATUS: builds against NCCL; not yet run on more than one GPU. The CPU path
// (train/grad_sync.c over MPI) is the tested one; tests/parallel/test_cuda_train.sh runs it
// where 2+ GPUs are present.
//
// Streams: the tensor-parallel all-reduce and the ZeRO-1 all-gather run on the CUDA
// backend's compute stream (they sit on the critical path); the gradient buckets (all-reduce
// or, with ZeRO-1, reduce-scatter) run on a
// side stream that waits, per bucket, for an event recorded on the compute stream at the
// moment the model's nv_grad_hook reports that bucket complete, and nv_nccl_grad_wait makes
// the compute stream wait for every bucket's done event.
#pragma once
#include <stddef.h>

#include "train/dist.h"

typedef struct nv_nccl nv_nccl;

// 1 when this build has NCCL (a CUDA build), else 0.
int nv_nccl_available(void);

// Communicators for d's tensor group (when tp_size > 1) and data group (when dp_size > 1):
// the group's rank 0 makes the ncclUniqueId and broadcasts it over comm_tp / comm_dp. Call
// after nv_backend_cuda() has picked the device (GPU = local rank, see
// model/cuda/cuda_api.h). Failures end the job through nv_dist_abort with a hint.
nv_nccl *nv_nccl_create(const nv_dist *d);
void nv_nccl_free(nv_nccl *c);

// nv_tp_comm.allreduce_act for the CUDA backend: in-place sum of n bf16 elements over the
// tensor group, on the compute stream (ctx = the nv_nccl).
void nv_nccl_tp_allreduce_act(void *ctx, void *buf, size_t n);

// Data-parallel sum of the fp32 device gradients grad[lo, hi), queued now: an event is
// recorded on the compute stream (the gradients are complete there), the side stream waits
// for it, all-reduces the range in place and records a done event. Returns at once.
void nv_nccl_grad_bucket(nv_nccl *c, float *grad, size_t lo, size_t hi);
// The compute stream waits for every bucket queued since the last call (host does not block).
void nv_nccl_grad_wait(nv_nccl *c);

// ZeRO-1 shards on GPU: contiguous ranges of S = total / dp elements, the last rank also
// takes the remainder [dp*S, total). This lets one ncclReduceScatter / ncclAllGather of
// count S cover [0, dp*S) in place, plus a tiny collective for the remainder; the CPU keeps
// nv_zero1_range (train/grad_sync.h). Checkpoints store explicit shard ranges, so a run can
// resume across the two.
static inline void nv_zero1_range_nccl(size_t total, int dp, int r, size_t *lo, size_t *hi) {
    size_t S = total / (size_t)dp;
    *lo = (size_t)r * S;
    *hi = r == dp - 1 ? total : *lo + S;
}
// ZeRO-1 buckets (train/grad_sync.c). Setup, once before the first step: the device staging
// buffer for one chunk's dp contributions (dp x chunk floats), so nothing is allocated
// during a step.
void nv_nccl_zero1_setup(nv_nccl *c, size_t chunk_elems, size_t total);
// Reduce-scatter of grad[lo, hi) (at most chunk_elems), queued like nv_nccl_grad_bucket on
// the side stream after an event on the compute stream: each rank's part of the chunk goes to
// the rank whose shard owns it (grouped ncclSend/ncclRecv), and the owner adds the dp parts
// in rank order in fp32 (the same sums as the MPI path) into shard (this rank's range
// [shard_lo, shard_hi) of nv_zero1_range_nccl). nv_nccl_grad_wait waits for these too.
// With one data rank it is a device copy.
void nv_nccl_zero1_bucket(nv_nccl *c, const float *grad, size_t lo, size_t hi, float *shard,
                          size_t shard_lo, size_t shard_hi);
// Every rank gets every updated shard of the device buffer w[0, total) of elem_bytes elements
// (in place, compute stream): the bf16 act copy after each step (2 bytes per weight on the
// wire instead of 4), or the fp32 masters (elem_bytes 4) before a checkpoint is written.
void nv_nccl_zero1_allgather(nv_nccl *c, void *w, size_t total, size_t elem_bytes);
