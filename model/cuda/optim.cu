// optim.cu - optimizer kernels on fp32 state: fused AdamW (fp32 master, moments, and the bf16
// compute copy in one pass), sum of squares for gradient clipping and the non-finite check
// (double accumulation, a two-pass block reduction whose order depends only on n, so the
// bits are the same on every run and every GPU; a NaN or Inf makes the sum non-finite), and
// scale.
#include "common.cuh"

#define SUMSQ_THREADS 256
#define SUMSQ_MAX_BLOCKS 1024

__global__ void sumsq_partial_kernel(double *partial, const float *x, size_t n) {
    __shared__ double ws[SUMSQ_THREADS / 32];
    double s = 0.0;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        double v = x[i];
        s += v * v;
    }
    s = warp_sum_d(s);
    if (threadIdx.x % 32 == 0) ws[threadIdx.x / 32] = s;
    __syncthreads();
    if (threadIdx.x == 0) {
        double t = 0.0;
        for (int w = 0; w < SUMSQ_THREADS / 32; w++) t += ws[w];
        partial[blockIdx.x] = t;
    }
}

__global__ void sumsq_final_kernel(double *out, const double *partial, int nb) {
    __shared__ double ws[SUMSQ_MAX_BLOCKS / 32];
    double s = threadIdx.x < nb ? partial[threadIdx.x] : 0.0;
    s = warp_sum_d(s);
    if (threadIdx.x % 32 == 0) ws[threadIdx.x / 32] = s;
    __syncthreads();
    if (threadIdx.x == 0) {
        double t = 0.0;
        for (int w = 0; w < SUMSQ_MAX_BLOCKS / 32; w++) t += ws[w];
        *out = t;
    }
}

// into one device double, no host wait: the gradient check issues one per tensor and reads
// them all back at once
void nvc_sumsq_to(double *dst, const void *x, size_t n) {
    nvc_ctx *c = nvc();
    if (!n) {
        CUDA_CHECK(cudaMemsetAsync(dst, 0, sizeof(double), c->stream));
        return;
    }
    // the block count is a function of n only: the reduction order is fixed
    size_t nb = (n + SUMSQ_THREADS * 16 - 1) / (SUMSQ_THREADS * 16);
    if (nb > SUMSQ_MAX_BLOCKS) nb = SUMSQ_MAX_BLOCKS;
    double *partial = (double *)nvc_scratch(SUMSQ_MAX_BLOCKS * sizeof(double));
    sumsq_partial_kernel<<<(unsigned)nb, SUMSQ_THREADS, 0, c->stream>>>(partial, (const float *)x, n);
    LAUNCH_CHECK();
    sumsq_final_kernel<<<1, SUMSQ_MAX_BLOCKS, 0, c->stream>>>(dst, partial, (int)nb);
    LAUNCH_CHECK();
}

double nvc_sumsq(const void *x, size_t n) {
    nvc_ctx *c = nvc();
    nvc_sumsq_to((double *)c->red, x, n);
    double r;
    CUDA_CHECK(cudaMemcpyAsync(&r, c->red, sizeof r, cudaMemcpyDeviceToHost, c->stream));
    CUDA_CHECK(cudaStreamSynchronize(c->stream));
    return r;
}

size_t nvc_optim_scratch_bytes(const nv_backend_plan *p) {
    (void)p;
    return SUMSQ_MAX_BLOCKS * sizeof(double);
}

__global__ void scale_kernel(float *x, float s, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        x[i] *= s;
}

void nvc_scale(void *x, double s, size_t n) {
    if (!n) return;
    scale_kernel<<<nvc_blocks(n, 256), 256, 0, nvc()->stream>>>((float *)x, (float)s, n);
    LAUNCH_CHECK();
}

// IEEE-rounded division and square root (__fdiv_rn, __fsqrt_rn) even under --use_fast_math,
// so the fp32 update matches the CPU reference to rounding
__global__ void adamw_kernel(float *w, float *m, float *v, const float *g, bf16 *w_act, size_t n,
                             float lr, float b1, float b2, float eps, float wd, float bc1,
                             float bc2, float gscale) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        float gi = g[i] * gscale;
        float mi = b1 * m[i] + (1.0f - b1) * gi;
        float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
        float wi = w[i];
        float upd = __fdiv_rn(__fdiv_rn(mi, bc1), __fsqrt_rn(__fdiv_rn(vi, bc2)) + eps);
        wi = wi - lr * (upd + wd * wi);
        m[i] = mi;
        v[i] = vi;
        w[i] = wi;
        if (w_act) w_act[i] = f2bf(wi);
    }
}

void nvc_adamw(void *w, void *m, void *v, const void *g, void *w_act, size_t n, double lr,
               double beta1, double beta2, double eps, double wd, double bc1, double bc2,
               double gscale) {
    if (!n) return;
    adamw_kernel<<<nvc_blocks(n, 256), 256, 0, nvc()->stream>>>(
        (float *)w, (float *)m, (float *)v, (const float *)g, (bf16 *)w_act, n, (float)lr,
        (float)beta1, (float)beta2, (float)eps, (float)wd, (float)bc1, (float)bc2, (float)gscale);
    LAUNCH_CHECK();
}
