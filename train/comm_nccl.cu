// comm_nccl.cu - NCCL for the CUDA backend (design section 8): communicators per process group,
// the tensor-parallel bf16 activation all-reduce, data-parallel gradient buckets on a side
// stream ordered by events, ZeRO-1 bucketed reduce-scatter (rank-ordered fp32 sums) and the
// all-gather of the updated weights (bf16 act copy; fp32 masters only for checkpoints). API: train/comm_nccl.h.
//
// STATUS: built and linked against NCCL 2.28; not yet run on more than one GPU (the first
// GPU run, on one H200, had no second GPU for it). The CPU path (train/grad_sync.c, MPI) is
// the tested one. To do with 2+ GPUs: tests/parallel/test_cuda_train.sh's comparisons (DP=2
// vs accumulation, TP=2 vs TP=1, ZeRO-1 on/off) at bf16 tolerances.
//
// Lives with the trainer, which owns the process groups (train/dist.h), and reaches down to
// the CUDA backend's compute stream (nvc()->stream, model/cuda/common.cuh): the kernels that
// produce gradients and activations run there, so NCCL work is ordered after them without a
// host synchronization.
// MPI's C interface only (Open MPI / MPICH C++ bindings are deprecated and warn under nvcc)
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>
#include <nccl.h>

#include "model/cuda/common.cuh"

extern "C" {
#include "train/comm_nccl.h"
}

struct nv_nccl {
    const nv_dist *d;
    ncclComm_t tp, dp;        // NULL when the group has one rank
    cudaStream_t side;        // data-parallel gradient buckets
    cudaEvent_t *ready, *done; // per bucket of the current step
    int n_ev, cap_ev;         // events used this step / created
    float *stage;             // ZeRO-1: dp x chunk contributions of one chunk (side stream)
    size_t chunk, total;      // chunk capacity; elements of the flat buffers (shard ranges)
};

static const char *nccl_hint(ncclResult_t r) {
    switch (r) {
    case ncclUnhandledCudaError:
        return "a CUDA call inside NCCL failed: check the GPU (nvidia-smi) and that every rank has its own GPU (GPU = local rank)";
    case ncclSystemError:
        return "a system call failed (sockets, shared memory): set NCCL_DEBUG=INFO; in containers give /dev/shm enough room (--shm-size)";
    case ncclInternalError:
        return "NCCL internal error: set NCCL_DEBUG=INFO and check that every rank runs the same NCCL version";
    case ncclInvalidArgument:
        return "bad argument (null buffer, count, or ranks calling different collectives): every rank must issue the same collectives in the same order";
    case ncclInvalidUsage:
        return "invalid usage: two ranks on one GPU? check NVWA_CUDA_DEVICE / the launcher's local rank, and that every rank joins each communicator";
    case ncclRemoteError:
        return "a peer failed or the network dropped: see the other ranks' errors and NCCL_DEBUG=INFO (NCCL_IB_HCA, NCCL_SOCKET_IFNAME)";
    default:
        return "set NCCL_DEBUG=INFO for details";
    }
}

#define NCCL_CHECK(c, comm, call)                                                               \
    do {                                                                                        \
        ncclResult_t nv_r_ = (call);                                                            \
        if (nv_r_ != ncclSuccess)                                                               \
            nv_dist_abort((c)->d, "%s:%d: %s failed: %s (%s)\n---> HINT: %s", __FILE__, __LINE__, \
                          #call, ncclGetErrorString(nv_r_),                                     \
                          (comm) ? ncclGetLastError(comm) : "", nccl_hint(nv_r_));              \
    } while (0)

// A CUDA failure here ends the whole job (not just this rank), so the peers do not hang in a
// collective waiting for it.
#define CUDA_CHECK_D(c, call)                                                                   \
    do {                                                                                        \
        cudaError_t nv_e_ = (call);                                                             \
        if (nv_e_ != cudaSuccess)                                                               \
            nv_dist_abort((c)->d, "%s:%d: %s failed: %s\n---> HINT: %s", __FILE__, __LINE__,     \
                          #call, cudaGetErrorString(nv_e_), nvc_cuda_hint(nv_e_));              \
    } while (0)

extern "C" int nv_nccl_available(void) { return 1; }

// rank 0 of the group makes the id; MPI broadcasts it over the group's communicator.
static ncclComm_t make_comm(nv_nccl *c, MPI_Comm group, int rank, int size, const char *what) {
    if (size <= 1) return NULL;
    ncclUniqueId id;
    memset(&id, 0, sizeof id);
    if (rank == 0) NCCL_CHECK(c, (ncclComm_t)NULL, ncclGetUniqueId(&id));
    NV_MPI_CHECK(c->d, MPI_Bcast(&id, (int)sizeof id, MPI_BYTE, 0, group));
    ncclComm_t comm = NULL;
    ncclResult_t r = ncclCommInitRank(&comm, size, id, rank);
    if (r != ncclSuccess)
        nv_dist_abort(c->d, "ncclCommInitRank for the %s group (rank %d of %d, GPU %d) failed: %s\n"
                      "---> HINT: %s; NCCL_DEBUG=INFO shows the transport it tried", what, rank,
                      size, nvc()->device, ncclGetErrorString(r), nccl_hint(r));
    return comm;
}

extern "C" nv_nccl *nv_nccl_create(const nv_dist *d) {
    nv_nccl *c = (nv_nccl *)calloc(1, sizeof *c);
    if (!c) nv_dist_abort(d, "out of host memory for the NCCL context");
    c->d = d;
    if (!nvc()->stream)
        nv_dist_abort(d, "nv_nccl_create before the CUDA backend was set up\n"
                      "---> HINT: call nv_backend_cuda() first (it picks the GPU and the stream)");
    CUDA_CHECK_D(c, cudaSetDevice(nvc()->device));
    // same order on every rank: tensor group, then data group
    c->tp = make_comm(c, d->comm_tp, d->tp_rank, d->tp_size, "tensor");
    c->dp = make_comm(c, d->comm_dp, d->dp_rank, d->dp_size, "data");
    // buckets go ahead of the compute stream's kernels when both are ready
    int lo = 0, hi = 0;
    CUDA_CHECK_D(c, cudaDeviceGetStreamPriorityRange(&lo, &hi));
    CUDA_CHECK_D(c, cudaStreamCreateWithPriority(&c->side, cudaStreamNonBlocking, hi));
    return c;
}

extern "C" void nv_nccl_free(nv_nccl *c) {
    if (!c) return;
    if (c->side) CUDA_CHECK_D(c, cudaStreamSynchronize(c->side));
    CUDA_CHECK_D(c, cudaStreamSynchronize(nvc()->stream));
    for (int i = 0; i < c->cap_ev; i++) {
        CUDA_CHECK_D(c, cudaEventDestroy(c->ready[i]));
        CUDA_CHECK_D(c, cudaEventDestroy(c->done[i]));
    }
    free(c->ready);
    free(c->done);
    if (c->stage) CUDA_CHECK_D(c, cudaFree(c->stage));
    if (c->side) CUDA_CHECK_D(c, cudaStreamDestroy(c->side));
    if (c->tp) NCCL_CHECK(c, c->tp, ncclCommDestroy(c->tp));
    if (c->dp) NCCL_CHECK(c, c->dp, ncclCommDestroy(c->dp));
    free(c);
}

extern "C" void nv_nccl_tp_allreduce_act(void *ctx, void *buf, size_t n) {
    nv_nccl *c = (nv_nccl *)ctx;
    if (!c->tp || n == 0) return;
    NCCL_CHECK(c, c->tp, ncclAllReduce(buf, buf, n, ncclBfloat16, ncclSum, c->tp, nvc()->stream));
}

static void grow_events(nv_nccl *c) {
    if (c->n_ev < c->cap_ev) return;
    int cap = c->cap_ev ? 2 * c->cap_ev : 64;
    c->ready = (cudaEvent_t *)realloc(c->ready, sizeof(cudaEvent_t) * cap);
    c->done = (cudaEvent_t *)realloc(c->done, sizeof(cudaEvent_t) * cap);
    if (!c->ready || !c->done) nv_dist_abort(c->d, "out of host memory for CUDA events");
    for (int i = c->cap_ev; i < cap; i++) {
        CUDA_CHECK_D(c, cudaEventCreateWithFlags(&c->ready[i], cudaEventDisableTiming));
        CUDA_CHECK_D(c, cudaEventCreateWithFlags(&c->done[i], cudaEventDisableTiming));
    }
    c->cap_ev = cap;
}

extern "C" void nv_nccl_grad_bucket(nv_nccl *c, float *grad, size_t lo, size_t hi) {
    if (!c->dp || hi <= lo) return;
    grow_events(c);
    const int i = c->n_ev++;
    // the gradients of [lo, hi) are complete once the compute stream reaches this point
    CUDA_CHECK_D(c, cudaEventRecord(c->ready[i], nvc()->stream));
    CUDA_CHECK_D(c, cudaStreamWaitEvent(c->side, c->ready[i], 0));
    NCCL_CHECK(c, c->dp, ncclAllReduce(grad + lo, grad + lo, hi - lo, ncclFloat32, ncclSum, c->dp, c->side));
    CUDA_CHECK_D(c, cudaEventRecord(c->done[i], c->side));
}

extern "C" void nv_nccl_grad_wait(nv_nccl *c) {
    for (int i = 0; i < c->n_ev; i++) CUDA_CHECK_D(c, cudaStreamWaitEvent(nvc()->stream, c->done[i], 0));
    c->n_ev = 0;
    if (c->dp) { // surface a failure of an earlier step's collective (non-blocking query)
        ncclResult_t a = ncclSuccess;
        NCCL_CHECK(c, c->dp, ncclCommGetAsyncError(c->dp, &a));
        if (a != ncclSuccess)
            nv_dist_abort(c->d, "an earlier data-parallel NCCL collective failed asynchronously: %s (%s)\n"
                          "---> HINT: %s", ncclGetErrorString(a), ncclGetLastError(c->dp), nccl_hint(a));
    }
}

extern "C" void nv_nccl_zero1_setup(nv_nccl *c, size_t chunk, size_t total) {
    c->total = total;
    if (!c->dp || c->stage) return;
    c->chunk = chunk;
    CUDA_CHECK_D(c, cudaMalloc(&c->stage, sizeof(float) * chunk * (size_t)c->d->dp_size));
}

// out[i] = sum over r in order 0..dp-1 of stage[r * m + i]: fp32, the MPI path's order
__global__ void zero1_sum_kernel(float *out, const float *stage, size_t m, int dp) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < m; i += (size_t)gridDim.x * blockDim.x) {
        float acc = stage[i];
        for (int r = 1; r < dp; r++) acc += stage[(size_t)r * m + i];
        out[i] = acc;
    }
}

extern "C" void nv_nccl_zero1_bucket(nv_nccl *c, const float *grad, size_t lo, size_t hi, float *shard,
                                     size_t shard_lo, size_t shard_hi) {
    if (hi <= lo) return;
    const int dp = c->d->dp_size;
    if (!c->dp) { // one data rank: the shard is the whole buffer
        CUDA_CHECK_D(c, cudaMemcpyAsync(shard + (lo - shard_lo), grad + lo, (hi - lo) * 4,
                                        cudaMemcpyDeviceToDevice, nvc()->stream));
        return;
    }
    if (!c->stage || hi - lo > c->chunk)
        nv_dist_abort(c->d, "nv_nccl_zero1_bucket: a chunk of %zu elements but a staging buffer for %zu\n"
                      "---> HINT: nv_grad_sync_set_zero1 sets it up; call it before the first step",
                      hi - lo, c->chunk);
    grow_events(c);
    const int i = c->n_ev++;
    // the gradients of [lo, hi) are complete once the compute stream reaches this point
    CUDA_CHECK_D(c, cudaEventRecord(c->ready[i], nvc()->stream));
    CUDA_CHECK_D(c, cudaStreamWaitEvent(c->side, c->ready[i], 0));
    const size_t a = shard_lo > lo ? shard_lo : lo, b = shard_hi < hi ? shard_hi : hi;
    const size_t m = b > a ? b - a : 0; // this rank's part of the chunk
    // every rank's part to its owner; the dp parts of ours into stage[r * m ...]
    NCCL_CHECK(c, c->dp, ncclGroupStart());
    for (int r = 0; r < dp; r++) {
        size_t rlo, rhi;
        nv_zero1_range_nccl(c->total, dp, r, &rlo, &rhi);
        const size_t x = rlo > lo ? rlo : lo, y = rhi < hi ? rhi : hi;
        if (y > x) NCCL_CHECK(c, c->dp, ncclSend(grad + x, y - x, ncclFloat32, r, c->dp, c->side));
        if (m) NCCL_CHECK(c, c->dp, ncclRecv(c->stage + (size_t)r * m, m, ncclFloat32, r, c->dp, c->side));
    }
    NCCL_CHECK(c, c->dp, ncclGroupEnd());
    if (m) {
        zero1_sum_kernel<<<nvc_blocks(m, 256), 256, 0, c->side>>>(shard + (a - shard_lo), c->stage, m, dp);
        CUDA_CHECK_D(c, cudaGetLastError());
    }
    CUDA_CHECK_D(c, cudaEventRecord(c->done[i], c->side));
}

// In place: rank r's shard already sits at w + r*S (ncclAllGather's in-place form); the
// remainder is broadcast from the last rank. Elements of 2 bytes go as bf16, 4 as fp32
// (NCCL only moves the bytes here, nothing is added).
extern "C" void nv_nccl_zero1_allgather(nv_nccl *c, void *w, size_t total, size_t elem_bytes) {
    if (!c->dp) return;
    const int dp = c->d->dp_size, r = c->d->dp_rank;
    if (elem_bytes != 2 && elem_bytes != 4)
        nv_dist_abort(c->d, "nv_nccl_zero1_allgather: elements of %zu bytes (2 or 4 expected)", elem_bytes);
    const ncclDataType_t t = elem_bytes == 2 ? ncclBfloat16 : ncclFloat32;
    char *p = (char *)w;
    cudaStream_t s = nvc()->stream;
    const size_t S = total / (size_t)dp, rem = total - S * (size_t)dp;
    NCCL_CHECK(c, c->dp, ncclGroupStart());
    if (S) NCCL_CHECK(c, c->dp, ncclAllGather(p + (size_t)r * S * elem_bytes, p, S, t, c->dp, s));
    if (rem)
        NCCL_CHECK(c, c->dp, ncclBroadcast(p + S * dp * elem_bytes, p + S * dp * elem_bytes, rem, t,
                                           dp - 1, c->dp, s));
    NCCL_CHECK(c, c->dp, ncclGroupEnd());
}
