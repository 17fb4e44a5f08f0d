// memory.c - the CPU backend's "device" memory is host memory: 64-byte aligned (a cache
// line, and what AVX-512 loads like), zeroed at allocation. Copies are memcpy.
// Written over `real`, `act` and FN(); included by the cpu_*.c instances, never compiled alone.

static void *FN(cpu_alloc)(size_t bytes) {
    size_t sz = (bytes + 63) & ~(size_t)63; // aligned_alloc wants a multiple of the alignment
    if (sz == 0) sz = 64;                   // a distinct, freeable pointer even for 0 bytes
    void *p = aligned_alloc(64, sz);
    if (p) memset(p, 0, sz);
    return p;
}

static void FN(cpu_free)(void *p) { free(p); }

static void FN(cpu_copy)(void *dst, const void *src, size_t bytes) {
    if (bytes) memcpy(dst, src, bytes);
}

static void FN(cpu_zero)(void *p, size_t bytes) {
    if (bytes) memset(p, 0, bytes);
}

static void FN(cpu_sync)(void) {}

// host doubles -> act: through float first on cpu-bf16, as the CUDA host converters do
static void FN(cpu_upload_act)(void *dst_, const double *src, size_t n) {
    act *dst = dst_;
    CK(dst_, n * sizeof(act), NV_T_ACT, "upload_act", "dst");
    for (size_t i = 0; i < n; i++) dst[i] = STA((real)src[i]);
}

static void FN(cpu_download_act)(double *dst, const void *src_, size_t n) {
    const act *src = src_;
    CK(src_, n * sizeof(act), NV_T_ACT, "download_act", "src");
    for (size_t i = 0; i < n; i++) dst[i] = (double)LDA(src[i]);
}

static void FN(cpu_upload_state)(void *dst_, const double *src, size_t n) {
    real *dst = dst_;
    CK(dst_, n * sizeof(real), NV_T_STATE, "upload_state", "dst");
    for (size_t i = 0; i < n; i++) dst[i] = (real)src[i];
}

static void FN(cpu_download_state)(double *dst, const void *src_, size_t n) {
    const real *src = src_;
    CK(src_, n * sizeof(real), NV_T_STATE, "download_state", "src");
    for (size_t i = 0; i < n; i++) dst[i] = (double)src[i];
}

static void FN(cpu_state_to_act)(void *dst_, const void *src_, size_t n) {
    if (!n || dst_ == src_) return;
    act *dst = dst_;
    const real *src = src_;
    CK(dst_, n * sizeof(act), NV_T_ACT, "state_to_act", "dst");
    CK(src_, n * sizeof(real), NV_T_STATE, "state_to_act", "src");
#pragma omp parallel for if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) dst[i] = STA(src[i]);
}

static void FN(cpu_add)(void *out_, const void *a_, const void *b_, size_t n) {
    act *out = out_;
    const act *a = a_, *b = b_;
    CK(out_, n * sizeof(act), NV_T_ACT, "add", "out");
    CK(a_, n * sizeof(act), NV_T_ACT, "add", "a");
    CK(b_, n * sizeof(act), NV_T_ACT, "add", "b");
#pragma omp parallel for if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) out[i] = STA(LDA(a[i]) + LDA(b[i]));
}
