// common.cuh - shared by the CUDA backend's .cu files: error checks that name file:line and
// give a hint, bf16 helpers, the one backend context (stream, cuBLASLt handle, workspace,
// matmul algorithm cache, scratch), and the declarations of every op so backend_cuda.cu can
// fill the nv_backend table.
#pragma once
#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern "C" {
#include "model/backend.h"
}
#include "model/cpu/bf16.h"

typedef __nv_bfloat16 bf16;

// ---------------------------------------------------------------------------------------
// error checks: every CUDA / cuBLASLt call goes through one of these

static inline const char *nvc_cuda_hint(cudaError_t e) {
    switch (e) {
    case cudaErrorMemoryAllocation:
        return "out of device memory: lower [data] micro-batch or seq-length, or set [train] recompute";
    case cudaErrorNoKernelImageForDevice:
    case cudaErrorInvalidDeviceFunction:
        return "no kernel for this GPU: rebuild with -Dgpu_arch=<its SM, e.g. 90a or 80>";
    case cudaErrorIllegalAddress:
    case cudaErrorLaunchFailure:
        return "a kernel touched bad memory (maybe an earlier one): rerun under compute-sanitizer "
               "with CUDA_LAUNCH_BLOCKING=1";
    case cudaErrorInvalidConfiguration:
        return "bad launch shape (grid/block/shared memory): check the sizes passed to this op";
    case cudaErrorNoDevice:
    case cudaErrorInsufficientDriver:
        return "no usable GPU or the driver is older than the CUDA runtime: run with [train] device=cpu";
    default:
        return "rerun with CUDA_LAUNCH_BLOCKING=1 to find the failing launch";
    }
}

static inline void nvc_cuda_check(cudaError_t e, const char *what, const char *file, int line) {
    if (e == cudaSuccess) return;
    fprintf(stderr, "[CUDA ERROR] %s:%d: %s: %s (%s)\n---> HINT: %s\n", file, line, what,
            cudaGetErrorString(e), cudaGetErrorName(e), nvc_cuda_hint(e));
    exit(EXIT_FAILURE);
}

static inline void nvc_cublas_check(cublasStatus_t s, const char *what, const char *file, int line) {
    if (s == CUBLAS_STATUS_SUCCESS) return;
    const char *hint = "check the shapes, leading dimensions and pointer alignment of this matmul";
    if (s == CUBLAS_STATUS_NOT_SUPPORTED)
        hint = "no cuBLASLt kernel for this type/layout/alignment combination: keep dims multiples of 8";
    else if (s == CUBLAS_STATUS_ALLOC_FAILED)
        hint = "out of host or device memory while creating cuBLASLt objects";
    else if (s == CUBLAS_STATUS_EXECUTION_FAILED)
        hint = "the GEMM kernel failed: rerun with CUDA_LAUNCH_BLOCKING=1 under compute-sanitizer";
    fprintf(stderr, "[cuBLASLt ERROR] %s:%d: %s: %s\n---> HINT: %s\n", file, line, what,
            cublasLtGetStatusString(s), hint);
    exit(EXIT_FAILURE);
}

#define CUDA_CHECK(call) nvc_cuda_check((call), #call, __FILE__, __LINE__)
#define CUBLAS_CHECK(call) nvc_cublas_check((call), #call, __FILE__, __LINE__)
// after every launch: catches bad launch configurations at once (not asynchronous faults)
#define LAUNCH_CHECK() nvc_cuda_check(cudaGetLastError(), "kernel launch", __FILE__, __LINE__)

// a contract broken by the caller (unsupported head dim, misaligned pointer): say so and stop
#define NVC_REQUIRE(cond, hint)                                                             \
    do {                                                                                    \
        if (!(cond)) {                                                                      \
            fprintf(stderr, "[CUDA BACKEND ERROR] %s:%d: %s\n---> HINT: %s\n", __FILE__,     \
                    __LINE__, #cond, hint);                                                 \
            exit(EXIT_FAILURE);                                                             \
        }                                                                                   \
    } while (0)

// ---------------------------------------------------------------------------------------
// the backend context: one per process, created by nv_backend_cuda() (the kernel interface
// carries no context argument, so this is the one unavoidable global, in backend_cuda.cu)

typedef struct nvc_mm_entry nvc_mm_entry; // cached cuBLASLt plan, see matmul.cu

typedef struct nvc_ctx {
    int device;
    int num_sms;
    int major, minor;
    size_t max_smem_optin; // bytes of shared memory one block may opt into
    cudaStream_t stream;   // every kernel and copy goes on this stream, in order
    cublasLtHandle_t lt;
    void *lt_ws; // cuBLASLt workspace
    size_t lt_ws_bytes;
    nvc_mm_entry *mm; // matmul plans, one per shape/layout/alignment (matmul.cu)
    int mm_n, mm_cap;
    void *scratch; // device scratch for two-pass deterministic reductions
    size_t scratch_bytes;
    int scratch_fixed; // sized by prepare(): growing it now would allocate inside a step
    void *red;     // small device buffer for reduction results (sumsq)
    long gemm_fallbacks; // plain-kernel GEMMs with every dimension >= 8 (tests)
} nvc_ctx;

nvc_ctx *nvc(void);
// device scratch of at least `bytes` (stream-ordered: valid until the next nvc_scratch call).
// Before any model has prepared the backend it grows as asked (op tests); after prepare()
// it is fixed, and a larger request stops the program (a scratch formula below is short).
void *nvc_scratch(size_t bytes);
// scratch each op file needs at the plan's largest shapes (prepare takes the max)
size_t nvc_layernorm_scratch_bytes(const nv_backend_plan *p);
size_t nvc_embed_scratch_bytes(const nv_backend_plan *p);
size_t nvc_attention_scratch_bytes(const nv_backend_plan *p);
size_t nvc_optim_scratch_bytes(const nv_backend_plan *p);
void nvc_matmul_destroy(nvc_ctx *c);

static inline unsigned nvc_blocks(size_t n, unsigned threads) {
    size_t b = (n + threads - 1) / threads;
    if (b > 65535u * 32u) b = 65535u * 32u; // kernels use grid-stride loops past this
    return (unsigned)(b ? b : 1);
}

// ---------------------------------------------------------------------------------------
// bf16 helpers: all arithmetic in float, one rounding (to nearest even) on store

__device__ __forceinline__ float bf2f(bf16 x) { return __bfloat162float(x); }
__device__ __forceinline__ bf16 f2bf(float x) { return __float2bfloat16_rn(x); }

// host conversions (upload / download), round to nearest even, NaN kept as NaN: the same
// functions as cpu-bf16's (model/cpu/bf16.h), so host and twin agree bit for bit
static inline uint16_t nvc_host_f2bf(float f) { return nv_f32_to_bf16(f); }
static inline float nvc_host_bf2f(uint16_t h) { return nv_bf16_to_f32(h); }

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
__device__ __forceinline__ double warp_sum_d(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// gelu, tanh approximation (as torch gelu(approximate="tanh")) and its derivative
// tanh to about 3e-7 absolute. Under --use_fast_math tanhf becomes tanh.approx.f32 (relative
// error 2^-11), and gelu's derivative cancels 0.5 (1 + t) against 0.5 x (1 - t^2) ... near
// x = -0.75, so that error would show as percent-level gradient errors there; ex2 and a
// division, both good to a few ulp, do not.
__device__ __forceinline__ float tanh_acc(float x) {
    const float e = exp2f(-2.8853900817779268f * fabsf(x)); // e^(-2|x|)
    return copysignf(__fdividef(1.0f - e, 1.0f + e), x);
}
__device__ __forceinline__ float gelu_tanh_f(float x) {
    const float k = 0.7978845608028654f; // sqrt(2/pi)
    float u = k * (x + 0.044715f * x * x * x);
    return 0.5f * x * (1.0f + tanh_acc(u));
}
__device__ __forceinline__ float gelu_tanh_grad_f(float x) {
    const float k = 0.7978845608028654f;
    float x2 = x * x;
    float u = k * (x + 0.044715f * x2 * x);
    float t = tanh_acc(u);
    return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * k * (1.0f + 3.0f * 0.044715f * x2);
}

// ---------------------------------------------------------------------------------------
// ops (each defined in the .cu named after its concern)

// memory.cu
void *nvc_alloc(size_t bytes);
void nvc_free(void *p);
void nvc_to_device(void *dst, const void *src, size_t bytes);
void nvc_to_host(void *dst, const void *src, size_t bytes);
void nvc_zero(void *p, size_t bytes);
void nvc_sync(void);
void nvc_upload_act(void *dst, const double *src, size_t n);
void nvc_download_act(double *dst, const void *src, size_t n);
void nvc_upload_state(void *dst, const double *src, size_t n);
void nvc_download_state(double *dst, const void *src, size_t n);
void nvc_state_to_act(void *dst, const void *src, size_t n);
void nvc_add(void *out, const void *a, const void *b, size_t n);
// embed.cu
void nvc_embed_fwd(void *out, const int32_t *tok, const int32_t *sin, const void *E_tok,
                   const void *E_struct, int n, int d);
void nvc_embed_bwd(void *dE_tok, void *dE_struct, const void *dout, const int32_t *tok,
                   const int32_t *sin, int n, int d, int V);
// layernorm.cu
void nvc_layernorm_fwd(void *out, void *mean, void *rstd, const void *x, const void *w, int n, int d);
void nvc_residual_layernorm_fwd(void *resid_out, void *out, void *mean, void *rstd, const void *a,
                                const void *b, const void *w, int n, int d);
void nvc_layernorm_bwd(void *dx, void *dw, const void *dout, const void *x, const void *w,
                       const void *mean, const void *rstd, int n, int d);
// column sums of a bf16 [n, d] matrix added to a float [d] vector, deterministic (layernorm.cu)
void nvc_colsum_add(float *dst, const bf16 *src, int n, int d);
// matmul.cu
void nvc_matmul_fwd(void *out, const void *inp, const void *W, const void *bias, int n, int in_dim,
                    int out_dim);
void nvc_matmul_bwd(void *dinp, void *dW, void *dbias, const void *dout, const void *inp,
                    const void *W, int n, int in_dim, int out_dim);
// rope.cu
void nvc_rope_fwd(void *qkv, const int32_t *pos, int n, int H, int dh, double theta);
void nvc_rope_bwd(void *dqkv, const int32_t *pos, int n, int H, int dh, double theta);
// attention.cu
void nvc_attention_fwd(void *out, void *lse, const void *qkv, const nv_attn_segs *segs, int n,
                       int H, int dh, int window);
void nvc_attention_bwd(void *dqkv, const void *dout, const void *qkv, const void *out,
                       const void *lse, const nv_attn_segs *segs, int n, int H, int dh, int window);
// activations.cu
void nvc_geglu_fwd(void *out, const void *gu, int n, int f);
void nvc_geglu_bwd(void *dgu, const void *dout, const void *gu, int n, int f);
void nvc_gelu_fwd(void *out, const void *x, size_t n);
void nvc_gelu_bwd(void *dx, const void *dout, const void *x, size_t n);
// select.cu
void nvc_gather_rows(void *out, const void *in, const int32_t *idx, int m, int d);
void nvc_scatter_add_rows(void *dst, const void *src, const int32_t *idx, int m, int d);
void nvc_softmax_ce(void *loss, void *dlogits, const void *logits, const int32_t *target, int m,
                    int V, double grad_scale);
void nvc_ce_stats(double *acc, const void *loss, const void *logits, const int32_t *target, int m,
                  int V);
// optim.cu
double nvc_sumsq(const void *x, size_t n);
void nvc_sumsq_to(double *dst, const void *x, size_t n);
void nvc_scale(void *x, double s, size_t n);
void nvc_adamw(void *w, void *m, void *v, const void *g, void *w_act, size_t n, double lr,
               double beta1, double beta2, double eps, double wd, double bc1, double bc2,
               double gscale);

// ---------------------------------------------------------------------------------------
// issue 15 (added at the end, see the lead's contracts): preparation with the largest
// shapes, so that no step allocates, and the cuDNN attention path. Until backend.h's
// prepare entry lands, each op prepares itself at its first use when nobody called these.

// rope.cu: the fp32 cos/sin tables of both thetas for positions < max_pos
void nvc_rope_prepare(int max_pos, int dh, double theta_global, double theta_local);
// attention.cu: cuDNN handle, ragged-offset buffers and workspace (graphs of the largest
// shapes built now); nothing when [train] attention = native
void nvc_attention_prepare(int max_tokens, int seq_len, int H, int dh, int local_window);
// attention_cudnn.cu: cuDNN's fused attention over the packed segments (ragged layout, the
// +-window band, lse in our [n, H] natural-log layout, deterministic backward). Return 0
// when cuDNN ran, -1 when it cannot serve this shape (nvc_cudnn_attn_why says why). Pads are
// the caller's (attention.cu zeroes them).
int nvc_cudnn_attn_fwd(void *out, void *lse, const void *qkv, const nv_attn_segs *segs, int n,
                       int H, int dh, int window);
int nvc_cudnn_attn_bwd(void *dqkv, const void *dout, const void *qkv, const void *out,
                       const void *lse, const nv_attn_segs *segs, int n, int H, int dh, int window);
const char *nvc_cudnn_attn_why(void);
void nvc_cudnn_attn_prepare(int max_tokens, int seq_len, int H, int dh, int local_window);
