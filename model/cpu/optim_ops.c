// optim_ops.c - the optimizer's elementwise kernels over state buffers: sum of squares (for
// the gradient norm), scale, the NaN/Inf check and AdamW.
// All state (`real`) but the act copy AdamW writes.
// Written over `real`, `act` and FN(); included by the cpu_*.c instances, never compiled alone.

// Fixed-size blocks, each summed in order in double, then the block sums in order: the same
// bits for any thread count.
#define SUMSQ_BLOCK 8192

// one block: eight double lanes combined in a fixed order (vectorizes, deterministic)
static double FN(sumsq_block)(const real *restrict x, size_t n) {
    double a[8] = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) a[k] += (double)x[i + k] * x[i + k];
    double s = ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]));
    for (; i < n; i++) s += (double)x[i] * x[i];
    return s;
}

static double FN(sumsq)(const void *x_, size_t n) {
    const real *x = x_;
    CK(x_, n * sizeof(real), NV_T_STATE, "sumsq", "x");
    const size_t nb = (n + SUMSQ_BLOCK - 1) / SUMSQ_BLOCK;
    if (nb <= 1) return FN(sumsq_block)(x, n);
    double *part = malloc(nb * sizeof(double));
    if (!part) {
        fprintf(stderr, "nvwa: sumsq: out of memory\n");
        abort();
    }
#pragma omp parallel for if (n > PAR_MIN)
    for (size_t b = 0; b < nb; b++) {
        const size_t i0 = b * SUMSQ_BLOCK, i1 = i0 + SUMSQ_BLOCK < n ? i0 + SUMSQ_BLOCK : n;
        part[b] = FN(sumsq_block)(x + i0, i1 - i0);
    }
    double s = 0;
    for (size_t b = 0; b < nb; b++) s += part[b];
    free(part);
    return s;
}

// the same, stored into *dst (a "device" double: host memory here)
static void FN(sumsq_to)(double *dst, const void *x, size_t n) {
    CK(dst, sizeof(double), NV_T_F64, "sumsq_to", "dst");
    *dst = FN(sumsq)(x, n);
}

static void FN(scale)(void *x_, double s, size_t n) {
    real *x = x_;
    CK(x_, n * sizeof(real), NV_T_STATE, "scale", "x");
    const real sr = (real)s;
#pragma omp parallel for if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) x[i] *= sr;
}

// One AdamW step, in double per element, stored back in `real`. With g' = g gscale:
//   m = b1 m + (1-b1) g';  v = b2 v + (1-b2) g'^2
//   w = w - lr ((m/bc1) / (sqrt(v/bc2) + eps) + wd w)     (decoupled decay on the old w)
// The element loop runs over restrict chunks without branches, so it vectorizes; the act
// copy is taken per chunk while it is in cache.
static void FN(adamw_span)(real *restrict w, real *restrict m, real *restrict v,
                           const real *restrict g, size_t n, double lr, double beta1,
                           double beta2, double eps, double wd, double bc1, double bc2,
                           double gscale) {
    for (size_t i = 0; i < n; i++) {
        const double gi = (double)g[i] * gscale;
        const double mi = beta1 * m[i] + (1 - beta1) * gi;
        const double vi = beta2 * v[i] + (1 - beta2) * gi * gi;
        const double wi = w[i] - lr * ((mi / bc1) / (sqrt(vi / bc2) + eps) + wd * w[i]);
        m[i] = (real)mi;
        v[i] = (real)vi;
        w[i] = (real)wi;
    }
}

#define ADAMW_CHUNK 4096

static void FN(adamw)(void *w_, void *m_, void *v_, const void *g_, void *w_act_, size_t n,
                      double lr, double beta1, double beta2, double eps, double wd, double bc1,
                      double bc2, double gscale) {
    real *w = w_, *m = m_, *v = v_;
    act *w_act = w_act_;
    const real *g = g_;
    CK(w_, n * sizeof(real), NV_T_STATE, "adamw", "w");
    CK(m_, n * sizeof(real), NV_T_STATE, "adamw", "m");
    CK(v_, n * sizeof(real), NV_T_STATE, "adamw", "v");
    CK(g_, n * sizeof(real), NV_T_STATE, "adamw", "g");
    CK(w_act_, n * sizeof(act), NV_T_ACT, "adamw", "w_act");
    const size_t nc = (n + ADAMW_CHUNK - 1) / ADAMW_CHUNK;
#pragma omp parallel for if (n > PAR_MIN)
    for (size_t b = 0; b < nc; b++) {
        const size_t i0 = b * ADAMW_CHUNK, k = i0 + ADAMW_CHUNK < n ? ADAMW_CHUNK : n - i0;
        FN(adamw_span)(w + i0, m + i0, v + i0, g + i0, k, lr, beta1, beta2, eps, wd, bc1, bc2,
                       gscale);
        if (w_act && (void *)w_act != (void *)w)
            for (size_t i = i0; i < i0 + k; i++) w_act[i] = STA(w[i]); // round once
    }
}
