// activations.cu - GEGLU (gelu_tanh(gate) * up over gu = gate | up) and gelu_tanh, forward
// and backward, elementwise in fp32 with one bf16 rounding per output.
#include "common.cuh"

#define GRID_STRIDE(i, n)                                                                  \
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (n);               \
         i += (size_t)gridDim.x * blockDim.x)

__global__ void geglu_fwd_kernel(bf16 *out, const bf16 *gu, int n, int f) {
    GRID_STRIDE(idx, (size_t)n * f) {
        size_t r = idx / f, c = idx % f;
        float g = bf2f(gu[r * 2 * f + c]), u = bf2f(gu[r * 2 * f + f + c]);
        out[idx] = f2bf(gelu_tanh_f(g) * u);
    }
}

__global__ void geglu_bwd_kernel(bf16 *dgu, const bf16 *dout, const bf16 *gu, int n, int f) {
    GRID_STRIDE(idx, (size_t)n * f) {
        size_t r = idx / f, c = idx % f;
        float g = bf2f(gu[r * 2 * f + c]), u = bf2f(gu[r * 2 * f + f + c]);
        float dy = bf2f(dout[idx]);
        dgu[r * 2 * f + c] = f2bf(dy * u * gelu_tanh_grad_f(g));
        dgu[r * 2 * f + f + c] = f2bf(dy * gelu_tanh_f(g));
    }
}

__global__ void gelu_fwd_kernel(bf16 *out, const bf16 *x, size_t n) {
    GRID_STRIDE(i, n) out[i] = f2bf(gelu_tanh_f(bf2f(x[i])));
}

__global__ void gelu_bwd_kernel(bf16 *dx, const bf16 *dout, const bf16 *x, size_t n) {
    GRID_STRIDE(i, n) dx[i] = f2bf(bf2f(dout[i]) * gelu_tanh_grad_f(bf2f(x[i])));
}

void nvc_geglu_fwd(void *out, const void *gu, int n, int f) {
    size_t t = (size_t)n * f;
    if (!t) return;
    geglu_fwd_kernel<<<nvc_blocks(t, 256), 256, 0, nvc()->stream>>>((bf16 *)out, (const bf16 *)gu, n, f);
    LAUNCH_CHECK();
}

void nvc_geglu_bwd(void *dgu, const void *dout, const void *gu, int n, int f) {
    size_t t = (size_t)n * f;
    if (!t) return;
    geglu_bwd_kernel<<<nvc_blocks(t, 256), 256, 0, nvc()->stream>>>((bf16 *)dgu, (const bf16 *)dout,
                                                                   (const bf16 *)gu, n, f);
    LAUNCH_CHECK();
}

void nvc_gelu_fwd(void *out, const void *x, size_t n) {
    if (!n) return;
    gelu_fwd_kernel<<<nvc_blocks(n, 256), 256, 0, nvc()->stream>>>((bf16 *)out, (const bf16 *)x, n);
    LAUNCH_CHECK();
}

void nvc_gelu_bwd(void *dx, const void *dout, const void *x, size_t n) {
    if (!n) return;
    gelu_bwd_kernel<<<nvc_blocks(n, 256), 256, 0, nvc()->stream>>>((bf16 *)dx, (const bf16 *)dout,
                                                                  (const bf16 *)x, n);
    LAUNCH_CHECK();
}
