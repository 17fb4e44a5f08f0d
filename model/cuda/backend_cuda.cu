// backend_cuda.cu - the CUDA backend's table and its one context. nv_backend_cuda() picks a
// device, creates the stream, the cuBLASLt handle and workspace, and returns the table; it
// returns NULL with a reason when no GPU is usable, so callers fall back to the CPU.
#include <errno.h>

#include "common.cuh"
#include "cuda_api.h"

// The one global: the kernel interface has no context argument (it is shared with the CPU
// backend), so the stream, handles and caches live here, reached through nvc().
static nvc_ctx g_ctx;
static int g_ctx_ready = 0;

nvc_ctx *nvc(void) { return &g_ctx; }

static void scratch_alloc(nvc_ctx *c, size_t bytes) {
    // the old buffer may still be read by queued kernels, so finish them first
    CUDA_CHECK(cudaStreamSynchronize(c->stream));
    if (c->scratch) CUDA_CHECK(cudaFree(c->scratch));
    CUDA_CHECK(cudaMalloc(&c->scratch, bytes));
    c->scratch_bytes = bytes;
}

void *nvc_scratch(size_t bytes) {
    nvc_ctx *c = &g_ctx;
    if (bytes <= c->scratch_bytes) return c->scratch;
    // a cudaMalloc/cudaFree inside a step synchronizes the device, and with NCCL running on a
    // second stream that can deadlock: once a model has prepared the backend, never
    NVC_REQUIRE(!c->scratch_fixed,
                "an op asked for more scratch than prepare() planned: its nvc_*_scratch_bytes "
                "formula is short (a bug; please report it with the config)");
    // op tests without a model: grow by at least 2x so repeated growth stays rare
    scratch_alloc(c, bytes > 2 * c->scratch_bytes ? bytes : 2 * c->scratch_bytes);
    return c->scratch;
}

// Called once per model with its largest shapes: the scratch every op can need, allocated
// now, so that no step allocates or frees device memory. A second model may only grow it
// (while no step runs).
static void nvc_prepare(const nv_backend_plan *p) {
    nvc_ctx *c = &g_ctx;
    size_t need = nvc_layernorm_scratch_bytes(p);
    const size_t more[3] = {nvc_embed_scratch_bytes(p), nvc_attention_scratch_bytes(p),
                            nvc_optim_scratch_bytes(p)};
    for (int i = 0; i < 3; i++) need = more[i] > need ? more[i] : need;
    if (need > c->scratch_bytes) scratch_alloc(c, need);
    c->scratch_fixed = 1;
    // tables and cuDNN graphs/workspace for these shapes, now rather than inside a step
    nvc_rope_prepare(p->seq_len, p->dh, p->theta[0], p->theta[1]);
    nvc_attention_prepare(p->max_tokens, p->seq_len, p->H, p->dh, p->local_window);
}

// The table, filled by name (the order of backend.h's fields does not matter here).
static nv_backend g_table;

static void fill_table(nv_backend *t) {
    memset(t, 0, sizeof *t);
    t->name = "cuda";
    t->act_bytes = 2;
    t->state_bytes = 4;
    t->alloc = nvc_alloc;
    t->free = nvc_free;
    t->to_device = nvc_to_device;
    t->to_host = nvc_to_host;
    t->zero = nvc_zero;
    t->sync = nvc_sync;
    t->upload_act = nvc_upload_act;
    t->download_act = nvc_download_act;
    t->upload_state = nvc_upload_state;
    t->download_state = nvc_download_state;
    t->state_to_act = nvc_state_to_act;
    t->prepare = nvc_prepare;
    t->declare = NULL; // the types are checked on cpu-bf16, the CUDA backend's twin
    t->forget = NULL;
    t->embed_fwd = nvc_embed_fwd;
    t->embed_bwd = nvc_embed_bwd;
    t->layernorm_fwd = nvc_layernorm_fwd;
    t->residual_layernorm_fwd = nvc_residual_layernorm_fwd;
    t->layernorm_bwd = nvc_layernorm_bwd;
    t->add = nvc_add;
    t->matmul_fwd = nvc_matmul_fwd;
    t->matmul_bwd = nvc_matmul_bwd;
    t->rope_fwd = nvc_rope_fwd;
    t->rope_bwd = nvc_rope_bwd;
    t->attention_fwd = nvc_attention_fwd;
    t->attention_bwd = nvc_attention_bwd;
    t->geglu_fwd = nvc_geglu_fwd;
    t->geglu_bwd = nvc_geglu_bwd;
    t->gelu_fwd = nvc_gelu_fwd;
    t->gelu_bwd = nvc_gelu_bwd;
    t->gather_rows = nvc_gather_rows;
    t->scatter_add_rows = nvc_scatter_add_rows;
    t->softmax_ce = nvc_softmax_ce;
    t->ce_stats = nvc_ce_stats;
    t->sumsq = nvc_sumsq;
    t->sumsq_to = nvc_sumsq_to;
    t->scale = nvc_scale;
    t->adamw = nvc_adamw;
}

// nv_dist's local rank, set by the trainer through nv_cuda_set_local_rank (cuda_api.h).
static int g_local_rank = -1;
extern "C" void nv_cuda_set_local_rank(int local_rank) { g_local_rank = local_rank; }

// NVWA_CUDA_DEVICE as a device number of this node, or stop with one line: a typo there
// must not silently put two ranks on one GPU (or fall back to the CPU)
static int device_override(const char *ov, int count) {
    char *end = NULL;
    errno = 0;
    const long v = strtol(ov, &end, 10);
    if (errno || end == ov || *end || v < 0 || v >= count) {
        fprintf(stderr, "nvwa: error: NVWA_CUDA_DEVICE=%s is not a CUDA device of this node "
                "(0..%d)\n---> HINT: unset it (the GPU is then the node-local rank) or give a "
                "number below %d\n", ov, count - 1, count);
        exit(2);
    }
    return (int)v;
}

// The GPU of this process: NVWA_CUDA_DEVICE if set (checked), else nv_dist's local rank when
// the trainer gave it (the same number nv_dist and NCCL use), else the node-local rank that
// mpirun or srun exports (design: GPU = local rank), else 0; ranks modulo the device count.
static int pick_device(int count) {
    const char *ov = getenv("NVWA_CUDA_DEVICE");
    if (ov && *ov) return device_override(ov, count);
    if (g_local_rank >= 0) return g_local_rank % count;
    const char *vars[] = {"OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID",
                          "MPI_LOCALRANKID", "MV2_COMM_WORLD_LOCAL_RANK", "PMI_LOCAL_RANK"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *s = getenv(vars[i]);
        const int r = s && *s ? atoi(s) : -1;
        if (r >= 0) return r % count;
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
    fill_table(&g_table);
    g_ctx_ready = 1;
    if (why) *why = NULL;
    return &g_table;
}

// ---------------------------------------------------------------------------------------
// tests and benchmarks (cuda_api.h): the GEMM fallback count and a per-op profile

extern "C" long nv_cuda_gemm_fallbacks(void) { return g_ctx.gemm_fallbacks; }

// The profile brackets every op with two events from a pool; pairs are resolved (elapsed
// time added to their op's total) when the pool fills and when read, after a synchronize.
#define PROF_OPS 32
#define PROF_POOL 4096
static struct {
    int on;
    const char *name[PROF_OPS];
    double ms[PROF_OPS];
    long calls[PROF_OPS];
    int n_ops;
    cudaEvent_t ev[PROF_POOL][2];
    int op_of[PROF_POOL];
    int used, created;
    nv_backend plain; // the table as it was before profiling
} g_prof;

static void prof_resolve(void) {
    if (!g_prof.used) return;
    CUDA_CHECK(cudaStreamSynchronize(g_ctx.stream));
    for (int i = 0; i < g_prof.used; i++) {
        float ms = 0;
        CUDA_CHECK(cudaEventElapsedTime(&ms, g_prof.ev[i][0], g_prof.ev[i][1]));
        g_prof.ms[g_prof.op_of[i]] += ms;
    }
    g_prof.used = 0;
}

static int prof_begin(const char *name) {
    int k = 0;
    while (k < g_prof.n_ops && strcmp(g_prof.name[k], name)) k++;
    if (k == g_prof.n_ops) {
        NVC_REQUIRE(k < PROF_OPS, "more profiled ops than PROF_OPS");
        g_prof.name[g_prof.n_ops++] = name;
    }
    if (g_prof.used == PROF_POOL) prof_resolve();
    const int i = g_prof.used++;
    if (i >= g_prof.created) {
        CUDA_CHECK(cudaEventCreate(&g_prof.ev[i][0]));
        CUDA_CHECK(cudaEventCreate(&g_prof.ev[i][1]));
        g_prof.created = i + 1;
    }
    g_prof.op_of[i] = k;
    g_prof.calls[k]++;
    CUDA_CHECK(cudaEventRecord(g_prof.ev[i][0], g_ctx.stream));
    return i;
}

static void prof_end(int i) { CUDA_CHECK(cudaEventRecord(g_prof.ev[i][1], g_ctx.stream)); }

// one wrapper per op: the plain function between two events
#define PROF_OP(op, params, args)                                                            \
    static void prof_##op params {                                                           \
        const int i_ = prof_begin(#op);                                                      \
        g_prof.plain.op args;                                                                \
        prof_end(i_);                                                                        \
    }
PROF_OP(embed_fwd, (void *o, const int32_t *t, const int32_t *s, const void *a, const void *b, int n, int d), (o, t, s, a, b, n, d))
PROF_OP(embed_bwd, (void *a, void *b, const void *g, const int32_t *t, const int32_t *s, int n, int d, int V), (a, b, g, t, s, n, d, V))
PROF_OP(layernorm_fwd, (void *o, void *m, void *r, const void *x, const void *w, int n, int d), (o, m, r, x, w, n, d))
PROF_OP(residual_layernorm_fwd, (void *ro, void *o, void *m, void *r, const void *a, const void *b, const void *w, int n, int d), (ro, o, m, r, a, b, w, n, d))
PROF_OP(layernorm_bwd, (void *dx, void *dw, const void *g, const void *x, const void *w, const void *m, const void *r, int n, int d), (dx, dw, g, x, w, m, r, n, d))
PROF_OP(matmul_fwd, (void *o, const void *x, const void *W, const void *b, int n, int i, int j), (o, x, W, b, n, i, j))
PROF_OP(matmul_bwd, (void *dx, void *dW, void *db, const void *g, const void *x, const void *W, int n, int i, int j), (dx, dW, db, g, x, W, n, i, j))
PROF_OP(rope_fwd, (void *q, const int32_t *p, int n, int H, int dh, double t), (q, p, n, H, dh, t))
PROF_OP(rope_bwd, (void *q, const int32_t *p, int n, int H, int dh, double t), (q, p, n, H, dh, t))
PROF_OP(attention_fwd, (void *o, void *l, const void *q, const nv_attn_segs *s, int n, int H, int dh, int w), (o, l, q, s, n, H, dh, w))
PROF_OP(attention_bwd, (void *dq, const void *g, const void *q, const void *o, const void *l, const nv_attn_segs *s, int n, int H, int dh, int w), (dq, g, q, o, l, s, n, H, dh, w))
PROF_OP(geglu_fwd, (void *o, const void *x, int n, int f), (o, x, n, f))
PROF_OP(geglu_bwd, (void *d, const void *g, const void *x, int n, int f), (d, g, x, n, f))
PROF_OP(gelu_fwd, (void *o, const void *x, size_t n), (o, x, n))
PROF_OP(gelu_bwd, (void *d, const void *g, const void *x, size_t n), (d, g, x, n))
PROF_OP(gather_rows, (void *o, const void *x, const int32_t *i, int m, int d), (o, x, i, m, d))
PROF_OP(scatter_add_rows, (void *o, const void *x, const int32_t *i, int m, int d), (o, x, i, m, d))
PROF_OP(softmax_ce, (void *l, void *d, const void *z, const int32_t *t, int m, int V, double s), (l, d, z, t, m, V, s))
PROF_OP(ce_stats, (double *a, const void *l, const void *z, const int32_t *t, int m, int V), (a, l, z, t, m, V))
PROF_OP(sumsq_to, (double *o, const void *x, size_t n), (o, x, n))
PROF_OP(adamw, (void *w, void *m, void *v, const void *g, void *wa, size_t n, double lr, double b1, double b2, double e, double wd, double c1, double c2, double gs), (w, m, v, g, wa, n, lr, b1, b2, e, wd, c1, c2, gs))
PROF_OP(state_to_act, (void *d, const void *s, size_t n), (d, s, n))
PROF_OP(add, (void *o, const void *a, const void *b, size_t n), (o, a, b, n))

extern "C" void nv_cuda_profile(int on) {
    if (!g_ctx_ready || on == g_prof.on) return;
    if (on) {
        g_prof.plain = g_table;
#define P(op) g_table.op = prof_##op
        P(embed_fwd); P(embed_bwd); P(layernorm_fwd); P(residual_layernorm_fwd); P(layernorm_bwd);
        P(matmul_fwd); P(matmul_bwd); P(rope_fwd); P(rope_bwd); P(attention_fwd); P(attention_bwd);
        P(geglu_fwd); P(geglu_bwd); P(gelu_fwd); P(gelu_bwd); P(gather_rows); P(scatter_add_rows);
        P(softmax_ce); P(ce_stats); P(sumsq_to); P(adamw); P(state_to_act); P(add);
#undef P
    } else {
        prof_resolve();
        g_table = g_prof.plain;
    }
    g_prof.on = on;
}

extern "C" int nv_cuda_profile_read(const char **names, double *ms, long *calls, int cap) {
    prof_resolve();
    int k = 0;
    for (; k < g_prof.n_ops && k < cap; k++) names[k] = g_prof.name[k], ms[k] = g_prof.ms[k], calls[k] = g_prof.calls[k];
    return k;
}

extern "C" void nv_cuda_profile_reset(void) {
    prof_resolve();
    memset(g_prof.ms, 0, sizeof g_prof.ms);
    memset(g_prof.calls, 0, sizeof g_prof.calls);
}

extern "C" void nv_cuda_mem_info(size_t *free_bytes, size_t *total_bytes) {
    *free_bytes = *total_bytes = 0;
    if (g_ctx_ready) CUDA_CHECK(cudaMemGetInfo(free_bytes, total_bytes));
}
