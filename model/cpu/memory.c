// memory.c - the CPU backend's "device" memory is host memory: 64-byte aligned (a cache
// line, and what AVX-512 loads like), zeroed at allocation. Copies are memcpy.
// Written over `real` and FN(); included by cpu_f32.c and cpu_f64.c, never compiled alone.

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

// act and state are both `real` on the CPU, so one pair of converters serves both.
static void FN(cpu_upload)(void *dst_, const double *src, size_t n) {
    real *dst = dst_;
    for (size_t i = 0; i < n; i++) dst[i] = (real)src[i];
}

static void FN(cpu_download)(double *dst, const void *src_, size_t n) {
    const real *src = src_;
    for (size_t i = 0; i < n; i++) dst[i] = (double)src[i];
}

static void FN(cpu_state_to_act)(void *dst, const void *src, size_t n) {
    if (n && dst != src) memcpy(dst, src, n * sizeof(real));
}

static void FN(cpu_add)(void *out_, const void *a_, const void *b_, size_t n) {
    real *out = out_;
    const real *a = a_, *b = b_;
#pragma omp parallel for if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}
