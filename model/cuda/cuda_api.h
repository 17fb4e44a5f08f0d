// cuda_api.h - the little the rest of nvwa may ask of the CUDA backend beyond the kernel
// table of backend.h. C linkage; defined in backend_cuda.cu (CUDA builds) and no_cuda.c
// (a no-op without CUDA), so callers need no #if.
#pragma once
#ifdef __cplusplus
extern "C" {
#endif

// The GPU of this process (design section 8: GPU = local rank). Call before the first
// nv_backend_cuda() with nv_dist's local_rank (the launcher's word, else the ranks sharing
// the node); the device is then NVWA_CUDA_DEVICE if set (an explicit override), else this
// local rank, else the launcher's environment, else 0 — modulo the device count. A negative
// value clears it.
void nv_cuda_set_local_rank(int local_rank);

// [train] attention (nv_attn_kind of train/config.h: 0 auto, 1 cudnn, 2 native). Call before
// the first attention op; model/cuda/attention.cu decides per direction and layer kind at
// its first call and prints the choice. Default auto.
void nv_cuda_set_attention(int mode);
// auto's decisions, so that a resumed run uses the kernels the interrupted one chose (the two
// round differently; a new timing could choose otherwise and break bit-exact resume):
// c[bwd * 2 + local] is 0 (undecided), 1 (cuDNN) or 2 (native). get returns 1 when any is decided.
int nv_cuda_get_attention_choices(int c[4]);
void nv_cuda_set_attention_choices(const int c[4]);

// Tests and benchmarks: 1 when cuDNN's fused attention can run this shape (its graph is built
// now, deterministic backward included), else 0 and *why says why (built without the
// cudnn-frontend headers, a GPU older than Hopper, ...).
struct nv_attn_segs;
int nv_cuda_cudnn_attention_ok(int bwd, const struct nv_attn_segs *segs, int n, int H, int dh,
                               int window, const char **why);

// Tests: cuDNN's attention backward runs in chunks of at most max_segs consecutive segments
// (as it does when a batch's one graph needs more workspace than was reserved); 0: only then.
void nv_cuda_cudnn_test_chunk(int max_segs);

// The most device memory cuDNN's attention may reserve for its workspace, in bytes
// (NVWA_CUDNN_WORKSPACE_MB, default 4096; 0 without cuDNN): memory planning counts it.
#include <stddef.h>
size_t nv_cuda_cudnn_workspace_cap(void);

// Tests: how many GEMM calls took the plain fallback kernel (no cuBLASLt algorithm) since
// the start with every dimension >= 8. Model shapes must never take it (only the 3-class
// structure head, whose leading dimension 3 cuBLASLt refuses, may).
long nv_cuda_gemm_fallbacks(void);

// Device memory of this process's GPU: free and total bytes (cudaMemGetInfo); 0 without CUDA.
void nv_cuda_mem_info(size_t *free_bytes, size_t *total_bytes);

// Profiling (bench_step): when on, every op of the CUDA backend is bracketed by CUDA events
// and its time added to a per-op total; nv_cuda_profile_read fills up to cap (name, ms, calls)
// rows for the ops that ran and returns their count (it synchronizes). Off by default: the
// events cost a little per launch.
void nv_cuda_profile(int on);
int nv_cuda_profile_read(const char **names, double *ms, long *calls, int cap);
void nv_cuda_profile_reset(void);

#ifdef __cplusplus
}
#endif
