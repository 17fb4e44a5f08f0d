// layernorm.cu - LayerNorm (weight, no bias, eps 1e-5), the residual add fused with the next
// norm, and the backward. Statistics in fp32 (state type); one warp per row. The weight
// gradient is a column sum over rows, done deterministically in two passes (per-chunk
// partials in a fixed order, then chunks added in order); nvc_colsum_add is the same for
// bias gradients.
#include "common.cuh"

#define LN_EPS 1e-5f
#define COL_CHUNK 64 // rows per partial column sum (fixed, so the bits do not depend on the GPU)

// one warp per row: mean and rstd by two passes over the (cached) row
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

// resid_out = a + b, rounded to bf16 first: the norm (and its backward, which reads
// resid_out) see exactly the stored residual stream
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

void nvc_layernorm_fwd(void *out, void *mean, void *rstd, const void *x, const void *w, int n,
                       int d) {
    if (n <= 0) return;
    layernorm_fwd_kernel<<<(n + 3) / 4, 128, 0, nvc()->stream>>>(
        (bf16 *)out, (float *)mean, (float *)rstd, (const bf16 *)x, (const bf16 *)w, n, d);
    LAUNCH_CHECK();
}

void nvc_residual_layernorm_fwd(void *resid_out, void *out, void *mean, void *rstd, const void *a,
                                const void *b, const void *w, int n, int d) {
    if (n <= 0) return;
    residual_layernorm_fwd_kernel<<<(n + 3) / 4, 128, 0, nvc()->stream>>>(
        (bf16 *)resid_out, (bf16 *)out, (float *)mean, (float *)rstd, (const bf16 *)a,
        (const bf16 *)b, (const bf16 *)w, n, d);
    LAUNCH_CHECK();
}

// dx += rstd * (g - mean(g) - xhat * mean(g * xhat)),  g = dout * w
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

__global__ void col_reduce_kernel(float *dst, const float *partial, int nchunks, int d) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= d) return;
    float s = 0.0f;
    for (int k = 0; k < nchunks; k++) s += partial[(size_t)k * d + c];
    dst[c] += s;
}

static void col_sum(float *dst, const bf16 *dout, const bf16 *x, const float *mean,
                    const float *rstd, int n, int d) {
    int nchunks = (n + COL_CHUNK - 1) / COL_CHUNK;
    float *partial = (float *)nvc_scratch((size_t)nchunks * d * sizeof(float));
    dim3 grid((d + 255) / 256, nchunks);
    col_partial_kernel<<<grid, 256, 0, nvc()->stream>>>(partial, dout, x, mean, rstd, n, d);
    LAUNCH_CHECK();
    col_reduce_kernel<<<(d + 255) / 256, 256, 0, nvc()->stream>>>(dst, partial, nchunks, d);
    LAUNCH_CHECK();
}

void nvc_colsum_add(float *dst, const bf16 *src, int n, int d) {
    if (n <= 0) return;
    col_sum(dst, src, NULL, NULL, NULL, n, d);
}

void nvc_layernorm_bwd(void *dx, void *dw, const void *dout, const void *x, const void *w,
                       const void *mean, const void *rstd, int n, int d) {
    if (n <= 0) return;
    layernorm_bwd_dx_kernel<<<(n + 3) / 4, 128, 0, nvc()->stream>>>(
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
