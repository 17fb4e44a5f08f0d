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

// acc[0] += sum of loss[0..m) and acc[1] += rows whose first argmax is the target. One block:
// each thread takes rows tid, tid + 256, ... in order, then a fixed-order reduction, so the
// sums are deterministic. Stays on the device (the model reads it back once per step).
#define CE_STATS_THREADS 256
__global__ void ce_stats_kernel(double *acc, const float *loss, const bf16 *logits,
                                const int32_t *target, int m, int V) {
    __shared__ double s_loss[CE_STATS_THREADS], s_hit[CE_STATS_THREADS];
    double sl = 0.0, sh = 0.0;
    for (int i = threadIdx.x; i < m; i += CE_STATS_THREADS) {
        const bf16 *z = logits + (size_t)i * V;
        int best = 0;
        float zb = bf2f(z[0]);
        for (int v = 1; v < V; v++) {
            const float zv = bf2f(z[v]);
            if (zv > zb) best = v, zb = zv;
        }
        sl += loss[i];
        sh += best == target[i] ? 1.0 : 0.0;
    }
    s_loss[threadIdx.x] = sl;
    s_hit[threadIdx.x] = sh;
    __syncthreads();
    for (int w = CE_STATS_THREADS / 2; w > 0; w >>= 1) {
        if (threadIdx.x < w) {
            s_loss[threadIdx.x] += s_loss[threadIdx.x + w];
            s_hit[threadIdx.x] += s_hit[threadIdx.x + w];
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        acc[0] += s_loss[0];
        acc[1] += s_hit[0];
    }
}

void nvc_ce_stats(double *acc, const void *loss, const void *logits, const int32_t *target, int m,
                  int V) {
    if (m <= 0) return;
    ce_stats_kernel<<<1, CE_STATS_THREADS, 0, nvc()->stream>>>(acc, (const float *)loss,
                                                             (const bf16 *)logits, target, m, V);
    LAUNCH_CHECK();
}
