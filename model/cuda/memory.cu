// memory.cu - allocation, copies, host double <-> bf16/fp32 conversion, the fp32 -> bf16
// weight copy and elementwise add. Everything is ordered on the context's one stream; only
// the calls that hand data to the host (to_host, download_*) wait for it.
#include "common.cuh"

void *nvc_alloc(size_t bytes) {
    void *p = NULL;
    if (bytes == 0) bytes = 1; // a valid, distinct pointer even for empty tensors
    const cudaError_t e = cudaMalloc(&p, bytes);
    if (e == cudaErrorMemoryAllocation) { // the caller says what did not fit, and why
        (void)cudaGetLastError();
        return NULL;
    }
    CUDA_CHECK(e);
    CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, nvc()->stream)); // the interface promises zeroed
    return p;
}

void nvc_free(void *p) {
    if (!p) return;
    // queued kernels may still use p; cudaFree would not wait for a non-blocking stream
    CUDA_CHECK(cudaStreamSynchronize(nvc()->stream));
    CUDA_CHECK(cudaFree(p));
}

void nvc_to_device(void *dst, const void *src, size_t bytes) {
    if (!bytes) return;
    // from pageable memory this returns once src is staged, so the caller may reuse src
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, nvc()->stream));
}

void nvc_to_host(void *dst, const void *src, size_t bytes) {
    if (!bytes) return;
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, nvc()->stream));
    CUDA_CHECK(cudaStreamSynchronize(nvc()->stream));
}

void nvc_zero(void *p, size_t bytes) {
    if (!bytes) return;
    CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, nvc()->stream));
}

void nvc_sync(void) { CUDA_CHECK(cudaStreamSynchronize(nvc()->stream)); }

// host conversions go through a temporary host buffer; the copy must finish before it is freed
void nvc_upload_act(void *dst, const double *src, size_t n) {
    if (!n) return;
    uint16_t *h = (uint16_t *)malloc(n * sizeof *h);
    NVC_REQUIRE(h, "host out of memory");
    for (size_t i = 0; i < n; i++) h[i] = nvc_host_f2bf((float)src[i]);
    CUDA_CHECK(cudaMemcpyAsync(dst, h, n * sizeof *h, cudaMemcpyHostToDevice, nvc()->stream));
    CUDA_CHECK(cudaStreamSynchronize(nvc()->stream));
    free(h);
}

void nvc_download_act(double *dst, const void *src, size_t n) {
    if (!n) return;
    uint16_t *h = (uint16_t *)malloc(n * sizeof *h);
    NVC_REQUIRE(h, "host out of memory");
    nvc_to_host(h, src, n * sizeof *h);
    for (size_t i = 0; i < n; i++) dst[i] = (double)nvc_host_bf2f(h[i]);
    free(h);
}

void nvc_upload_state(void *dst, const double *src, size_t n) {
    if (!n) return;
    float *h = (float *)malloc(n * sizeof *h);
    NVC_REQUIRE(h, "host out of memory");
    for (size_t i = 0; i < n; i++) h[i] = (float)src[i];
    CUDA_CHECK(cudaMemcpyAsync(dst, h, n * sizeof *h, cudaMemcpyHostToDevice, nvc()->stream));
    CUDA_CHECK(cudaStreamSynchronize(nvc()->stream));
    free(h);
}

void nvc_download_state(double *dst, const void *src, size_t n) {
    if (!n) return;
    float *h = (float *)malloc(n * sizeof *h);
    NVC_REQUIRE(h, "host out of memory");
    nvc_to_host(h, src, n * sizeof *h);
    for (size_t i = 0; i < n; i++) dst[i] = (double)h[i];
    free(h);
}

__global__ void state_to_act_kernel(bf16 *dst, const float *src, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        dst[i] = f2bf(src[i]);
}

void nvc_state_to_act(void *dst, const void *src, size_t n) {
    if (!n) return;
    state_to_act_kernel<<<nvc_blocks(n, 256), 256, 0, nvc()->stream>>>((bf16 *)dst,
                                                                       (const float *)src, n);
    LAUNCH_CHECK();
}

// out = a + b in float, one rounding; out may alias a or b
__global__ void add_kernel(bf16 *out, const bf16 *a, const bf16 *b, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        out[i] = f2bf(bf2f(a[i]) + bf2f(b[i]));
}

void nvc_add(void *out, const void *a, const void *b, size_t n) {
    if (!n) return;
    add_kernel<<<nvc_blocks(n, 256), 256, 0, nvc()->stream>>>((bf16 *)out, (const bf16 *)a,
                                                             (const bf16 *)b, n);
    LAUNCH_CHECK();
}
