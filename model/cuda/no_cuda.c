// no_cuda.c - nv_backend_cuda() for builds without nvcc (-Dcuda=disabled or nvcc not found):
// always NULL, with the reason, so the caller falls back to the CPU backend.
#include <stddef.h>

#include "model/backend.h"
#include "model/cuda/cuda_api.h"

const nv_backend *nv_backend_cuda(const char **why) {
    if (why) *why = "nvwa was built without CUDA (meson setup -Dcuda=enabled needs nvcc)";
    return NULL;
}

void nv_cuda_set_local_rank(int local_rank) { (void)local_rank; }
void nv_cuda_set_attention(int mode) { (void)mode; }
int nv_cuda_get_attention_choices(int c[4]) {
    for (int i = 0; i < 4; i++) c[i] = 0;
    return 0;
}
void nv_cuda_set_attention_choices(const int c[4]) { (void)c; }
int nv_cuda_cudnn_attention_ok(int bwd, const struct nv_attn_segs *segs, int n, int H, int dh,
                               int window, const char **why) {
    (void)bwd; (void)segs; (void)n; (void)H; (void)dh; (void)window;
    if (why) *why = "nvwa was built without CUDA";
    return 0;
}

long nv_cuda_gemm_fallbacks(void) { return 0; }
size_t nv_cuda_cudnn_workspace_cap(void) { return 0; }
void nv_cuda_profile(int on) { (void)on; }
int nv_cuda_profile_read(const char **names, double *ms, long *calls, int cap) {
    (void)names, (void)ms, (void)calls, (void)cap;
    return 0;
}
void nv_cuda_profile_reset(void) {}
void nv_cuda_mem_info(size_t *free_bytes, size_t *total_bytes) { *free_bytes = *total_bytes = 0; }
