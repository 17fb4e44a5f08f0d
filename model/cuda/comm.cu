// comm.cu - NCCL for the CUDA backend (design section 8): communicators per process group,
// the tensor-parallel bf16 activation all-reduce, data-parallel gradient buckets on a side
// stream ordered by events, ZeRO-1 reduce-scatter / all-gather. API: train/comm_nccl.h.
//
// STATUS: COMPILE-VERIFIED ONLY. Built and linked against NCCL 2.28 here (no GPU on the build
// machine); not yet run on a GPU. The CPU path (train/grad_sync.c, MPI) is the tested one.
// First GPU run to do: tests/parallel/test_parallel.sh's comparisons with [train] device=cuda
// (DP=2 vs accumulation, TP=2 vs TP=1, ZeRO-1 on/off) at bf16 tolerances.
//
// Lives in model/cuda/ because it needs the backend's compute stream (nvc()->stream): the
// kernels that produce gradients and activations run there, so NCCL work is ordered after
// them without a host synchronization.
// MPI's C interface only (Open MPI / MPICH C++ bindings are deprecated and warn under nvcc)
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>
#include <nccl.h>

#include "common.cuh"

extern "C" {
#include "train/comm_nccl.h"
}

struct nv_nccl {
    const nv_dist *d;
    ncclComm_t tp, dp;        // NULL when the group has one rank
    cudaStream_t side;        // data-parallel gradient buckets
    cudaEvent_t *ready, *done; // per bucket of the current step
    int n_ev, cap_ev;         // events used this step / created
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

// [0, dp*S) by one reduce-scatter of count S into shard; the remainder [dp*S, total) (fewer
// than dp elements) summed in place and copied to the last rank's shard tail.
extern "C" void nv_nccl_zero1_reduce_scatter(nv_nccl *c, float *grad, size_t total, float *shard) {
    const int dp = c->d->dp_size, r = c->d->dp_rank;
    cudaStream_t s = nvc()->stream;
    if (!c->dp) {
        CUDA_CHECK_D(c, cudaMemcpyAsync(shard, grad, total * 4, cudaMemcpyDeviceToDevice, s));
        return;
    }
    const size_t S = total / (size_t)dp, rem = total - S * (size_t)dp;
    NCCL_CHECK(c, c->dp, ncclGroupStart());
    if (S) NCCL_CHECK(c, c->dp, ncclReduceScatter(grad, shard, S, ncclFloat32, ncclSum, c->dp, s));
    if (rem) NCCL_CHECK(c, c->dp, ncclAllReduce(grad + S * dp, grad + S * dp, rem, ncclFloat32, ncclSum, c->dp, s));
    NCCL_CHECK(c, c->dp, ncclGroupEnd());
    if (rem && r == dp - 1)
        CUDA_CHECK_D(c, cudaMemcpyAsync(shard + S, grad + S * dp, rem * 4, cudaMemcpyDeviceToDevice, s));
}

// In place: rank r's shard already sits at w + r*S (ncclAllGather's in-place form); the
// remainder is broadcast from the last rank.
extern "C" void nv_nccl_zero1_allgather(nv_nccl *c, float *w, size_t total) {
    if (!c->dp) return;
    const int dp = c->d->dp_size, r = c->d->dp_rank;
    cudaStream_t s = nvc()->stream;
    const size_t S = total / (size_t)dp, rem = total - S * (size_t)dp;
    NCCL_CHECK(c, c->dp, ncclGroupStart());
    if (S) NCCL_CHECK(c, c->dp, ncclAllGather(w + (size_t)r * S, w, S, ncclFloat32, c->dp, s));
    if (rem) NCCL_CHECK(c, c->dp, ncclBroadcast(w + S * dp, w + S * dp, rem, ncclFloat32, dp - 1, c->dp, s));
    NCCL_CHECK(c, c->dp, ncclGroupEnd());
}
