// select.cu - the selected-position ops of the heads: gather rows, scatter-add rows (indices
// distinct, so no two threads touch one element), and the fused softmax cross-entropy over the
// selected rows only (never the full [n, V] logits), one warp per row, softmax in fp32.
#include "common.cuh"

__global__ void gather_rows_kernel(bf16 *out, const bf16 *in, const int32_t *idx, int m, int d) {
    int i = blockIdx.x;
    const bf16 *src = in + (size_t)idx[i] * d;
    for (int c = threadIdx.x; c < d; c += blockDim.x) out[(size_t)i * d + c] = src[c];
}

__global__ void scatter_add_rows_kernel(bf16 *dst, const bf16 *src, const int32_t *idx, int m, int d) {
    int i = blockIdx.x;
    bf16 *o = dst + (size_t)idx[i] * d;
    for (int c = threadIdx.x; c < d; c += blockDim.x)
        o[c] = f2bf(bf2f(o[c]) + bf2f(src[(size_t)i * d + c]));
}

void nvc_gather_rows(void *out, const void *in, const int32_t *idx, int m, int d) {
    if (m <= 0) return;
    gather_rows_kernel<<<m, 128, 0, nvc()->stream>>>((bf16 *)out, (const bf16 *)in, idx, m, d);
    LAUNCH_CHECK();
}

void nvc_scatter_add_rows(void *dst, const void *src, const int32_t *idx, int m, int d) {
    if (m <= 0) return;
    scatter_add_rows_kernel<<<m, 128, 0, nvc()->stream>>>((bf16 *)dst, (const bf16 *)src, idx, m, d);
    LAUNCH_CHECK();
}

// loss[i] = logsumexp(z_i) - z_i[t_i]; dlogits = (softmax(z_i) - onehot(t_i)) * grad_scale.
// A target outside [0, V) marks an unscored row: loss 0 and zero gradient.
__global__ void softmax_ce_kernel(float *loss, bf16 *dlogits, const bf16 *logits,
                                  const int32_t *target, int m, int V, float grad_scale) {
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    if (row >= m) return;
    int lane = threadIdx.x % 32;
    const bf16 *z = logits + (size_t)row * V;
    bf16 *dz = dlogits + (size_t)row * V;
    int t = target[row];
    if (t < 0 || t >= V) {
        for (int c = lane; c < V; c += 32) dz[c] = f2bf(0.0f);
        if (lane == 0) loss[row] = 0.0f;
        return;
    }
    float mx = -INFINITY;
    for (int c = lane; c < V; c += 32) mx = fmaxf(mx, bf2f(z[c]));
    mx = warp_max(mx);
    float s = 0.0f;
    for (int c = lane; c < V; c += 32) s += expf(bf2f(z[c]) - mx);
    s = warp_sum(s);
    float inv = 1.0f / s;
    for (int c = lane; c < V; c += 32) {
        float p = expf(bf2f(z[c]) - mx) * inv;
        dz[c] = f2bf((p - (c == t ? 1.0f : 0.0f)) * grad_scale);
    }
    if (lane == 0) loss[row] = logf(s) + mx - bf2f(z[t]);
}

void nvc_softmax_ce(void *loss, void *dlogits, const void *logits, const int32_t *target, int m,
                    int V, double grad_scale) {
    if (m <= 0) return;
    softmax_ce_kernel<<<(m + 3) / 4, 128, 0, nvc()->stream>>>(
        (float *)loss, (bf16 *)dlogits, (const bf16 *)logits, target, m, V, (float)grad_scale);
    LAUNCH_CHECK();
}
