// backend_cuda.cu - the CUDA backend's table and its one context. nv_backend_cuda() picks a
// device, creates the stream, the cuBLASLt handle and workspace, and returns the table; it
// returns NULL with a reason when no GPU is usable, so callers fall back to the CPU.
#include "common.cuh"
#include "cuda_api.h"

// The one global: the kernel interface has no context argument (it is shared with the CPU
// backend), so the stream, handles and caches live here, reached through nvc().
static nvc_ctx g_ctx;
static int g_ctx_ready = 0;

nvc_ctx *nvc(void) { return &g_ctx; }

void *nvc_scratch(size_t bytes) {
    nvc_ctx *c = &g_ctx;
    if (bytes <= c->scratch_bytes) return c->scratch;
    // grow by at least 2x so repeated small growth does not reallocate each call; the old
    // buffer may still be read by queued kernels, so finish them first
    size_t want = bytes > 2 * c->scratch_bytes ? bytes : 2 * c->scratch_bytes;
    CUDA_CHECK(cudaStreamSynchronize(c->stream));
    if (c->scratch) CUDA_CHECK(cudaFree(c->scratch));
    CUDA_CHECK(cudaMalloc(&c->scratch, want));
    c->scratch_bytes = want;
    return c->scratch;
}

static const nv_backend g_table = {
    "cuda", 2, 4,
    nvc_alloc, nvc_free, nvc_to_device, nvc_to_host, nvc_zero, nvc_sync,
    nvc_upload_act, nvc_download_act, nvc_upload_state, nvc_download_state, nvc_state_to_act,
    nvc_embed_fwd, nvc_embed_bwd,
    nvc_layernorm_fwd, nvc_residual_layernorm_fwd, nvc_layernorm_bwd, nvc_add,
    nvc_matmul_fwd, nvc_matmul_bwd,
    nvc_rope_fwd, nvc_rope_bwd,
    nvc_attention_fwd, nvc_attention_bwd,
    nvc_geglu_fwd, nvc_geglu_bwd, nvc_gelu_fwd, nvc_gelu_bwd,
    nvc_gather_rows, nvc_scatter_add_rows, nvc_softmax_ce,
    nvc_sumsq, nvc_scale, nvc_nonfinite, nvc_adamw,
};

// nv_dist's local rank, set by the trainer through nv_cuda_set_local_rank (cuda_api.h).
static int g_local_rank = -1;
extern "C" void nv_cuda_set_local_rank(int local_rank) { g_local_rank = local_rank; }

// The GPU of this process: NVWA_CUDA_DEVICE if set, else nv_dist's local rank when the
// trainer gave it (the same number nv_dist and NCCL use), else the node-local rank that
// mpirun or srun exports (design: GPU = local rank), else 0; modulo the number of devices.
static int pick_device(int count) {
    const char *ov = getenv("NVWA_CUDA_DEVICE");
    if (ov && *ov) return atoi(ov) % count;
    if (g_local_rank >= 0) return g_local_rank % count;
    const char *vars[] = {"OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID",
                          "MPI_LOCALRANKID", "MV2_COMM_WORLD_LOCAL_RANK", "PMI_LOCAL_RANK"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *s = getenv(vars[i]);
        if (s && *s) return atoi(s) % count;
    }
    return 0;
}

extern "C" const nv_backend *nv_backend_cuda(const char **why) {
    static char reason[256];
    if (g_ctx_ready) return &g_table;
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
        snprintf(reason, sizeof reason, "no usable CUDA device: cudaGetDeviceCount: %s",
                 cudaGetErrorString(e));
        (void)cudaGetLastError(); // clear it, so a later CUDA call does not report it again
        if (why) *why = reason;
        return NULL;
    }
    if (count == 0) {
        if (why) *why = "no CUDA device present (cudaGetDeviceCount = 0)";
        return NULL;
    }
    nvc_ctx *c = &g_ctx;
    memset(c, 0, sizeof *c);
    c->device = pick_device(count);
    cudaDeviceProp prop;
    CUDA_CHECK(cudaGetDeviceProperties(&prop, c->device));
    if (prop.major < 8) {
        snprintf(reason, sizeof reason,
                 "CUDA device %d (%.64s) is sm_%d%d; the CUDA backend needs sm_80 or newer (bf16)",
                 c->device, prop.name, prop.major, prop.minor);
        if (why) *why = reason;
        return NULL;
    }
    CUDA_CHECK(cudaSetDevice(c->device));
    c->num_sms = prop.multiProcessorCount;
    c->major = prop.major;
    c->minor = prop.minor;
    c->max_smem_optin = prop.sharedMemPerBlockOptin;
    CUDA_CHECK(cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking));
    CUBLAS_CHECK(cublasLtCreate(&c->lt));
    c->lt_ws_bytes = 32u << 20; // 32 MiB: what Hopper's cuBLASLt kernels like to have
    CUDA_CHECK(cudaMalloc(&c->lt_ws, c->lt_ws_bytes));
    CUDA_CHECK(cudaMalloc(&c->red, 4096));
    g_ctx_ready = 1;
    if (why) *why = NULL;
    return &g_table;
}
