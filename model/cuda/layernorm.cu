// layernorm.cu - LayerNorm (weight, no bias, eps 1e-5), the residual add fused with the next
// norm, and the backward. Statistics in fp32 (state type); w is the bf16 act copy.
//
// Fast path (d a multiple of 8, d <= 4096; the backward d <= 2048): one warp per row, the row held in registers
// (16-byte loads, 8 bf16 per load), read once: mean, variance and the normalized output
// from registers. The backward reads x, dout and dx once per row and also accumulates the
// weight gradient's partial column sums in registers: each block owns LN_ROWS consecutive
// rows (its warps take every LN_WARPS-th row, in order), the warps' partials are added in
// warp order into partial[block][d], and a second kernel adds the blocks in block order into
// dw. Every sum has one fixed order whatever the GPU: deterministic.
// Other widths take the plain kernels below the fast path (one warp per row, two passes,
// dw by a separate column-sum pass).
#include "common.cuh"

#define LN_EPS 1e-5f
#define COL_CHUNK 64 // rows per partial column sum (fixed, so the bits do not depend on the GPU)
#define LN_ROWS 64   // rows per block of the fused backward (one dw partial per block)
#define LN_WARPS 8   // warps per block of the fused backward
#define LN_MAXV 16   // fast path: at most 16 vectors of 8 per lane (d <= 4096)

// 8 bf16 <-> 8 floats through one 16-byte word
__device__ __forceinline__ void unpack8(const uint4 &u, float *f) {
    const __nv_bfloat162 *h = (const __nv_bfloat162 *)&u;
#pragma unroll
    for (int k = 0; k < 4; k++) {
        float2 t = __bfloat1622float2(h[k]);
        f[2 * k] = t.x;
        f[2 * k + 1] = t.y;
    }
}
__device__ __forceinline__ uint4 pack8(const float *f) {
    uint4 u;
    __nv_bfloat162 *h = (__nv_bfloat162 *)&u;
#pragma unroll
    for (int k = 0; k < 4; k++) h[k] = __floats2bfloat162_rn(f[2 * k], f[2 * k + 1]);
    return u;
}

// column of vector k of this lane (8 elements from there); d % 8 == 0
__device__ __forceinline__ int ln_col(int k, int lane) { return (k * 32 + lane) * 8; }

// ---------------------------------------------------------------------------------------
// forward, fast path: one warp per row, V vectors of 8 per lane

template <int V, bool RESID>
__global__ void __launch_bounds__(128) ln_fwd_vec_kernel(bf16 *resid, bf16 *out, float *mean, float *rstd,
                                                         const bf16 *a, const bf16 *b, const bf16 *w,
                                                         int n, int d) {
    const int row = blockIdx.x * 4 + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= n) return;
    const size_t o = (size_t)row * d;
    float x[V][8];
    float s = 0.0f;
#pragma unroll
    for (int k = 0; k < V; k++) {
        const int c = ln_col(k, lane);
        if (c < d) {
            unpack8(*(const uint4 *)(a + o + c), x[k]);
            if (RESID) { // the stored residual is bf16: the norm sees exactly that
                float y[8];
                unpack8(*(const uint4 *)(b + o + c), y);
#pragma unroll
                for (int e = 0; e < 8; e++) x[k][e] = __bfloat162float(f2bf(x[k][e] + y[e]));
                *(uint4 *)(resid + o + c) = pack8(x[k]);
            }
#pragma unroll
            for (int e = 0; e < 8; e++) s += x[k][e];
        }
    }
    const float mu = warp_sum(s) / d;
    float v = 0.0f;
#pragma unroll
    for (int k = 0; k < V; k++)
        if (ln_col(k, lane) < d)
#pragma unroll
            for (int e = 0; e < 8; e++) v += (x[k][e] - mu) * (x[k][e] - mu);
    const float rs = rsqrtf(warp_sum(v) / d + LN_EPS);
#pragma unroll
    for (int k = 0; k < V; k++) {
        const int c = ln_col(k, lane);
        if (c < d) {
            float wf[8], y[8];
            unpack8(*(const uint4 *)(w + c), wf);
#pragma unroll
            for (int e = 0; e < 8; e++) y[e] = (x[k][e] - mu) * rs * wf[e];
            *(uint4 *)(out + o + c) = pack8(y);
        }
    }
    if (lane == 0) {
        mean[row] = mu;
        rstd[row] = rs;
    }
}

// ---------------------------------------------------------------------------------------
// forward, plain path: one warp per row, mean and rstd by two passes over the (cached) row

__device__ __forceinline__ void ln_row(bf16 *out, float *mean, float *rstd, const bf16 *x,
                                       const bf16 *w, int row, int d, int lane) {
    float s = 0.0f;
    for (int c = lane; c < d; c += 32) s += bf2f(x[c]);
    float mu = warp_sum(s) / d;
    float v = 0.0f;
    for (int c = lane; c < d; c += 32) {
        float t = bf2f(x[c]) - mu;
        v += t * t;
    }
    float rs = rsqrtf(warp_sum(v) / d + LN_EPS);
    for (int c = lane; c < d; c += 32) out[c] = f2bf((bf2f(x[c]) - mu) * rs * bf2f(w[c]));
    if (lane == 0) {
        mean[row] = mu;
        rstd[row] = rs;
    }
}

__global__ void layernorm_fwd_kernel(bf16 *out, float *mean, float *rstd, const bf16 *x,
                                     const bf16 *w, int n, int d) {
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    if (row >= n) return;
    size_t o = (size_t)row * d;
    ln_row(out + o, mean, rstd, x + o, w, row, d, threadIdx.x % 32);
}

__global__ void residual_layernorm_fwd_kernel(bf16 *resid, bf16 *out, float *mean, float *rstd,
                                              const bf16 *a, const bf16 *b, const bf16 *w, int n,
                                              int d) {
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    if (row >= n) return;
    int lane = threadIdx.x % 32;
    size_t o = (size_t)row * d;
    for (int c = lane; c < d; c += 32) resid[o + c] = f2bf(bf2f(a[o + c]) + bf2f(b[o + c]));
    __syncwarp(); // each lane rereads only its own columns, but keep the order explicit
    ln_row(out + o, mean, rstd, resid + o, w, row, d, lane);
}

// vectors of 8 per lane for width d, or 0 when the fast path does not apply (al: the OR of
// every pointer, which must all be 16-byte aligned)
static int ln_vecs(int d, uintptr_t al) {
    if (d % 8 || d > 32 * 8 * LN_MAXV || al % 16) return 0;
    return (d + 255) / 256;
}
#define AL(p) ((uintptr_t)(p))

#define LN_DISPATCH(V, LAUNCH)                                                              \
    switch (V) {                                                                            \
    case 1: LAUNCH(1); break;                                                               \
    case 2: LAUNCH(2); break;                                                               \
    case 3: LAUNCH(3); break;                                                               \
    case 4: LAUNCH(4); break;                                                               \
    case 5: LAUNCH(5); break;                                                               \
    case 6: LAUNCH(6); break;                                                               \
    case 7: case 8: LAUNCH(8); break;                                                       \
    default: LAUNCH(16); break;                                                             \
    }

void nvc_layernorm_fwd(void *out, void *mean, void *rstd, const void *x, const void *w, int n,
                       int d) {
    if (n <= 0) return;
    const int V = ln_vecs(d, AL(out) | AL(x) | AL(w));
    cudaStream_t st = nvc()->stream;
    if (V) {
#define LN_FWD(VV)                                                                          \
    ln_fwd_vec_kernel<VV, false><<<(n + 3) / 4, 128, 0, st>>>(                              \
        NULL, (bf16 *)out, (float *)mean, (float *)rstd, (const bf16 *)x, NULL, (const bf16 *)w, n, d)
        LN_DISPATCH(V, LN_FWD)
#undef LN_FWD
    } else {
        layernorm_fwd_kernel<<<(n + 3) / 4, 128, 0, st>>>((bf16 *)out, (float *)mean, (float *)rstd,
                                                         (const bf16 *)x, (const bf16 *)w, n, d);
    }
    LAUNCH_CHECK();
}

void nvc_residual_layernorm_fwd(void *resid_out, void *out, void *mean, void *rstd, const void *a,
                                const void *b, const void *w, int n, int d) {
    if (n <= 0) return;
    const int V = ln_vecs(d, AL(resid_out) | AL(out) | AL(a) | AL(b) | AL(w));
    cudaStream_t st = nvc()->stream;
    if (V) {
#define LN_RFWD(VV)                                                                         \
    ln_fwd_vec_kernel<VV, true><<<(n + 3) / 4, 128, 0, st>>>(                               \
        (bf16 *)resid_out, (bf16 *)out, (float *)mean, (float *)rstd, (const bf16 *)a,      \
        (const bf16 *)b, (const bf16 *)w, n, d)
        LN_DISPATCH(V, LN_RFWD)
#undef LN_RFWD
    } else {
        residual_layernorm_fwd_kernel<<<(n + 3) / 4, 128, 0, st>>>(
            (bf16 *)resid_out, (bf16 *)out, (float *)mean, (float *)rstd, (const bf16 *)a,
            (const bf16 *)b, (const bf16 *)w, n, d);
    }
    LAUNCH_CHECK();
}

// ---------------------------------------------------------------------------------------
// backward, fast path: dx += rstd (g - mean(g) - xh mean(g xh)), g = dout w, xh = (x - mean)
// rstd; dw partial sums of dout xh per block (rows in a fixed order), added in order later

template <int V>
__global__ void __launch_bounds__(LN_WARPS * 32) ln_bwd_vec_kernel(
    bf16 *dx, float *partial, const bf16 *dout, const bf16 *x, const bf16 *w, const float *mean,
    const float *rstd, int n, int d) {
    __shared__ float red[LN_WARPS][32 * 8 + 4]; // one warp's partial chunk at a time
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int r0 = blockIdx.x * LN_ROWS, r1 = min(n, r0 + LN_ROWS);
    float acc[V][8]; // this lane's columns of the block's dw partial
#pragma unroll
    for (int k = 0; k < V; k++)
#pragma unroll
        for (int e = 0; e < 8; e++) acc[k][e] = 0.0f;
    for (int row = r0 + warp; row < r1; row += LN_WARPS) {
        const size_t o = (size_t)row * d;
        const float mu = mean[row], rs = rstd[row];
        uint4 xv[V], gv[V];
        float s1 = 0.0f, s2 = 0.0f;
#pragma unroll
        for (int k = 0; k < V; k++) {
            const int c = ln_col(k, lane);
            if (c < d) {
                xv[k] = *(const uint4 *)(x + o + c);
                gv[k] = *(const uint4 *)(dout + o + c);
                float xf[8], gf[8], wf[8];
                unpack8(xv[k], xf);
                unpack8(gv[k], gf);
                unpack8(*(const uint4 *)(w + c), wf);
#pragma unroll
                for (int e = 0; e < 8; e++) {
                    const float xh = (xf[e] - mu) * rs, g = gf[e] * wf[e];
                    s1 += g;
                    s2 += g * xh;
                    acc[k][e] += gf[e] * xh;
                }
            }
        }
        const float m1 = warp_sum(s1) / d, m2 = warp_sum(s2) / d;
#pragma unroll
        for (int k = 0; k < V; k++) {
            const int c = ln_col(k, lane);
            if (c < d) {
                float xf[8], gf[8], wf[8], df[8];
                unpack8(xv[k], xf);
                unpack8(gv[k], gf);
                unpack8(*(const uint4 *)(w + c), wf);
                unpack8(*(const uint4 *)(dx + o + c), df);
#pragma unroll
                for (int e = 0; e < 8; e++) {
                    const float xh = (xf[e] - mu) * rs, g = gf[e] * wf[e];
                    df[e] += rs * (g - m1 - xh * m2);
                }
                *(uint4 *)(dx + o + c) = pack8(df);
            }
        }
    }
    // the block's partial: warps added in warp order, one 256-column slice at a time
#pragma unroll
    for (int k = 0; k < V; k++) {
#pragma unroll
        for (int e = 0; e < 8; e++) red[warp][lane * 8 + e] = acc[k][e];
        __syncthreads();
        for (int i = threadIdx.x; i < 256; i += LN_WARPS * 32) {
            const int c = k * 256 + i;
            float t = red[0][i];
            for (int q = 1; q < LN_WARPS; q++) t += red[q][i];
            if (c < d) partial[(size_t)blockIdx.x * d + c] = t;
        }
        __syncthreads();
    }
}

// plain path: dx += ... one warp per row
__global__ void layernorm_bwd_dx_kernel(bf16 *dx, const bf16 *dout, const bf16 *x, const bf16 *w,
                                        const float *mean, const float *rstd, int n, int d) {
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    if (row >= n) return;
    int lane = threadIdx.x % 32;
    size_t o = (size_t)row * d;
    float mu = mean[row], rs = rstd[row];
    float s1 = 0.0f, s2 = 0.0f;
    for (int c = lane; c < d; c += 32) {
        float g = bf2f(dout[o + c]) * bf2f(w[c]);
        float xh = (bf2f(x[o + c]) - mu) * rs;
        s1 += g;
        s2 += g * xh;
    }
    float m1 = warp_sum(s1) / d, m2 = warp_sum(s2) / d;
    for (int c = lane; c < d; c += 32) {
        float g = bf2f(dout[o + c]) * bf2f(w[c]);
        float xh = (bf2f(x[o + c]) - mu) * rs;
        dx[o + c] = f2bf(bf2f(dx[o + c]) + rs * (g - m1 - xh * m2));
    }
}

// partial[chunk][c] = sum over rows of the chunk, in row order, of dout * xhat (ln) or dout
__global__ void col_partial_kernel(float *partial, const bf16 *dout, const bf16 *x,
                                   const float *mean, const float *rstd, int n, int d) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= d) return;
    int r0 = blockIdx.y * COL_CHUNK, r1 = min(n, r0 + COL_CHUNK);
    float s = 0.0f;
    for (int r = r0; r < r1; r++) {
        float g = bf2f(dout[(size_t)r * d + c]);
        if (x) g *= (bf2f(x[(size_t)r * d + c]) - mean[r]) * rstd[r];
        s += g;
    }
    partial[(size_t)blockIdx.y * d + c] = s;
}

// dst[c] += sum over chunks in order; four columns per thread (16-byte loads) when vec4
__global__ void col_reduce_kernel(float *dst, const float *partial, int nchunks, int d, int vec4) {
    const int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (vec4) {
        const int c = 4 * t;
        if (c >= d) return;
        float4 s = make_float4(0.f, 0.f, 0.f, 0.f);
        for (int k = 0; k < nchunks; k++) {
            const float4 p = *(const float4 *)(partial + (size_t)k * d + c);
            s.x += p.x; s.y += p.y; s.z += p.z; s.w += p.w;
        }
        float4 o = *(float4 *)(dst + c);
        o.x += s.x; o.y += s.y; o.z += s.z; o.w += s.w;
        *(float4 *)(dst + c) = o;
        return;
    }
    if (t >= d) return;
    float s = 0.0f;
    for (int k = 0; k < nchunks; k++) s += partial[(size_t)k * d + t];
    dst[t] += s;
}

static void col_reduce(float *dst, const float *partial, int nchunks, int d) {
    const int vec4 = d % 4 == 0 && ((uintptr_t)dst | (uintptr_t)partial) % 16 == 0;
    const int threads = vec4 ? d / 4 : d;
    col_reduce_kernel<<<(threads + 255) / 256, 256, 0, nvc()->stream>>>(dst, partial, nchunks, d, vec4);
    LAUNCH_CHECK();
}

static void col_sum(float *dst, const bf16 *dout, const bf16 *x, const float *mean,
                    const float *rstd, int n, int d) {
    int nchunks = (n + COL_CHUNK - 1) / COL_CHUNK;
    float *partial = (float *)nvc_scratch((size_t)nchunks * d * sizeof(float));
    dim3 grid((d + 255) / 256, nchunks);
    col_partial_kernel<<<grid, 256, 0, nvc()->stream>>>(partial, dout, x, mean, rstd, n, d);
    LAUNCH_CHECK();
    col_reduce(dst, partial, nchunks, d);
}

void nvc_colsum_add(float *dst, const bf16 *src, int n, int d) {
    if (n <= 0) return;
    col_sum(dst, src, NULL, NULL, NULL, n, d);
}

void nvc_layernorm_bwd(void *dx, void *dw, const void *dout, const void *x, const void *w,
                       const void *mean, const void *rstd, int n, int d) {
    if (n <= 0) return;
    cudaStream_t st = nvc()->stream;
    // up to d = 2048 (8 vectors per lane) the backward's registers hold without spilling
    // (ptxas, sm_90a: 16 vectors spill ~360 bytes), so wider rows take the plain kernels
    const int V = d <= 2048 ? ln_vecs(d, AL(dx) | AL(dout) | AL(x) | AL(w)) : 0;
    if (V) {
        const int nblk = (n + LN_ROWS - 1) / LN_ROWS;
        float *partial = (float *)nvc_scratch((size_t)nblk * d * sizeof(float));
#define LN_BWD(VV)                                                                          \
    ln_bwd_vec_kernel<VV><<<nblk, LN_WARPS * 32, 0, st>>>(                                  \
        (bf16 *)dx, partial, (const bf16 *)dout, (const bf16 *)x, (const bf16 *)w,          \
        (const float *)mean, (const float *)rstd, n, d)
        LN_DISPATCH(V, LN_BWD)
#undef LN_BWD
        LAUNCH_CHECK();
        col_reduce((float *)dw, partial, nblk, d);
        return;
    }
    layernorm_bwd_dx_kernel<<<(n + 3) / 4, 128, 0, st>>>(
        (bf16 *)dx, (const bf16 *)dout, (const bf16 *)x, (const bf16 *)w, (const float *)mean,
        (const float *)rstd, n, d);
    LAUNCH_CHECK();
    col_sum((float *)dw, (const bf16 *)dout, (const bf16 *)x, (const float *)mean,
            (const float *)rstd, n, d);
}

// col_sum's partials: LayerNorm weight gradients (d columns) and bias gradients (V or 3
// columns) over at most max_tokens rows
size_t nvc_layernorm_scratch_bytes(const nv_backend_plan *p) {
    const size_t w = (size_t)(p->d > p->V ? p->d : p->V), chunks = (p->max_tokens + COL_CHUNK - 1) / COL_CHUNK;
    return chunks * w * sizeof(float);
}
