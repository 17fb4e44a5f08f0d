// activations.cu - GEGLU (gelu_tanh(gate) * up over gu = gate | up) and gelu_tanh, forward
// and backward, elementwise in fp32 with one bf16 rounding per output. GEGLU is indexed in
// 2-D (blockIdx.y = row, no 64-bit division per element) and, when f and the pointers allow,
// moves 8 bf16 per 16-byte access; gelu_tanh likewise over flat vectors.
#include "common.cuh"

#define GRID_STRIDE(i, n)                                                                  \
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (n);               \
         i += (size_t)gridDim.x * blockDim.x)

__device__ __forceinline__ void ld8(const bf16 *p, float *f) {
    const uint4 u = *(const uint4 *)p;
    const __nv_bfloat162 *h = (const __nv_bfloat162 *)&u;
#pragma unroll
    for (int k = 0; k < 4; k++) {
        const float2 t = __bfloat1622float2(h[k]);
        f[2 * k] = t.x;
        f[2 * k + 1] = t.y;
    }
}
__device__ __forceinline__ void st8(bf16 *p, const float *f) {
    uint4 u;
    __nv_bfloat162 *h = (__nv_bfloat162 *)&u;
#pragma unroll
    for (int k = 0; k < 4; k++) h[k] = __floats2bfloat162_rn(f[2 * k], f[2 * k + 1]);
    *(uint4 *)p = u;
}

// grid (column blocks, rows): VEC = 8 columns per thread (f % 8 == 0) or 1
template <int VEC>
__global__ void geglu_fwd_kernel(bf16 *out, const bf16 *gu, int n, int f) {
    const int c = (blockIdx.x * blockDim.x + threadIdx.x) * VEC;
    if (c >= f) return;
    for (int r = blockIdx.y; r < n; r += gridDim.y) {
        const bf16 *g = gu + (size_t)r * 2 * f + c, *u = g + f;
        bf16 *o = out + (size_t)r * f + c;
        if (VEC == 8) {
            float gf[8], uf[8], y[8];
            ld8(g, gf);
            ld8(u, uf);
#pragma unroll
            for (int e = 0; e < 8; e++) y[e] = gelu_tanh_f(gf[e]) * uf[e];
            st8(o, y);
        } else {
            o[0] = f2bf(gelu_tanh_f(bf2f(g[0])) * bf2f(u[0]));
        }
    }
}

template <int VEC>
__global__ void geglu_bwd_kernel(bf16 *dgu, const bf16 *dout, const bf16 *gu, int n, int f) {
    const int c = (blockIdx.x * blockDim.x + threadIdx.x) * VEC;
    if (c >= f) return;
    for (int r = blockIdx.y; r < n; r += gridDim.y) {
        const bf16 *g = gu + (size_t)r * 2 * f + c, *u = g + f, *dy = dout + (size_t)r * f + c;
        bf16 *dg = dgu + (size_t)r * 2 * f + c, *du = dg + f;
        if (VEC == 8) {
            float gf[8], uf[8], df[8], a[8], b[8];
            ld8(g, gf);
            ld8(u, uf);
            ld8(dy, df);
#pragma unroll
            for (int e = 0; e < 8; e++) {
                a[e] = df[e] * uf[e] * gelu_tanh_grad_f(gf[e]);
                b[e] = df[e] * gelu_tanh_f(gf[e]);
            }
            st8(dg, a);
            st8(du, b);
        } else {
            const float gf = bf2f(g[0]), uf = bf2f(u[0]), df = bf2f(dy[0]);
            dg[0] = f2bf(df * uf * gelu_tanh_grad_f(gf));
            du[0] = f2bf(df * gelu_tanh_f(gf));
        }
    }
}

// flat: VEC elements per thread per iteration
template <int VEC>
__global__ void gelu_fwd_kernel(bf16 *out, const bf16 *x, size_t n) {
    GRID_STRIDE(i, n / VEC) {
        if (VEC == 8) {
            float v[8];
            ld8(x + 8 * i, v);
#pragma unroll
            for (int e = 0; e < 8; e++) v[e] = gelu_tanh_f(v[e]);
            st8(out + 8 * i, v);
        } else {
            out[i] = f2bf(gelu_tanh_f(bf2f(x[i])));
        }
    }
}

template <int VEC>
__global__ void gelu_bwd_kernel(bf16 *dx, const bf16 *dout, const bf16 *x, size_t n) {
    GRID_STRIDE(i, n / VEC) {
        if (VEC == 8) {
            float v[8], g[8];
            ld8(x + 8 * i, v);
            ld8(dout + 8 * i, g);
#pragma unroll
            for (int e = 0; e < 8; e++) v[e] = g[e] * gelu_tanh_grad_f(v[e]);
            st8(dx + 8 * i, v);
        } else {
            dx[i] = f2bf(bf2f(dout[i]) * gelu_tanh_grad_f(bf2f(x[i])));
        }
    }
}

static int aligned16(const void *a, const void *b, const void *c) {
    return ((uintptr_t)a | (uintptr_t)b | (uintptr_t)c) % 16 == 0;
}

static dim3 geglu_grid(int n, int f, int vec) {
    const int cols = (f / vec + 127) / 128;
    return dim3(cols, n < 65535 ? n : 65535);
}

void nvc_geglu_fwd(void *out, const void *gu, int n, int f) {
    if (n <= 0 || f <= 0) return;
    cudaStream_t st = nvc()->stream;
    if (f % 8 == 0 && aligned16(out, gu, gu))
        geglu_fwd_kernel<8><<<geglu_grid(n, f, 8), 128, 0, st>>>((bf16 *)out, (const bf16 *)gu, n, f);
    else
        geglu_fwd_kernel<1><<<geglu_grid(n, f, 1), 128, 0, st>>>((bf16 *)out, (const bf16 *)gu, n, f);
    LAUNCH_CHECK();
}

void nvc_geglu_bwd(void *dgu, const void *dout, const void *gu, int n, int f) {
    if (n <= 0 || f <= 0) return;
    cudaStream_t st = nvc()->stream;
    if (f % 8 == 0 && aligned16(dgu, dout, gu))
        geglu_bwd_kernel<8><<<geglu_grid(n, f, 8), 128, 0, st>>>((bf16 *)dgu, (const bf16 *)dout,
                                                                 (const bf16 *)gu, n, f);
    else
        geglu_bwd_kernel<1><<<geglu_grid(n, f, 1), 128, 0, st>>>((bf16 *)dgu, (const bf16 *)dout,
                                                                 (const bf16 *)gu, n, f);
    LAUNCH_CHECK();
}

void nvc_gelu_fwd(void *out, const void *x, size_t n) {
    if (!n) return;
    cudaStream_t st = nvc()->stream;
    if (n % 8 == 0 && aligned16(out, x, x))
        gelu_fwd_kernel<8><<<nvc_blocks(n / 8, 256), 256, 0, st>>>((bf16 *)out, (const bf16 *)x, n);
    else
        gelu_fwd_kernel<1><<<nvc_blocks(n, 256), 256, 0, st>>>((bf16 *)out, (const bf16 *)x, n);
    LAUNCH_CHECK();
}

void nvc_gelu_bwd(void *dx, const void *dout, const void *x, size_t n) {
    if (!n) return;
    cudaStream_t st = nvc()->stream;
    if (n % 8 == 0 && aligned16(dx, dout, x))
        gelu_bwd_kernel<8><<<nvc_blocks(n / 8, 256), 256, 0, st>>>((bf16 *)dx, (const bf16 *)dout,
                                                                   (const bf16 *)x, n);
    else
        gelu_bwd_kernel<1><<<nvc_blocks(n, 256), 256, 0, st>>>((bf16 *)dx, (const bf16 *)dout,
                                                               (const bf16 *)x, n);
    LAUNCH_CHECK();
}
