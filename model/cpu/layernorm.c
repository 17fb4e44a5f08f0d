// layernorm.c - LayerNorm with a weight and no bias, eps 1e-5, biased variance.
// mean and rstd are saved per row for the backward. Row sums are accumulated in double:
// the reference should be the accurate side of every CUDA comparison.
// Written over `real` and FN(); included by cpu_f32.c and cpu_f64.c, never compiled alone.

#define LN_EPS 1e-5

// Double sums in LN_LANES running lanes, combined in a fixed order: the loops vectorize
// without -ffast-math and the bits do not depend on threads or alignment.
#define LN_LANES 8

static inline double FN(ln_lanes)(const double *a) {
    return ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]));
}

static void FN(ln_row)(real *o, real *mean, real *rstd, const real *x, const real *w, int d) {
    double a[LN_LANES] = {0};
    int c = 0;
    for (; c + LN_LANES <= d; c += LN_LANES)
        for (int k = 0; k < LN_LANES; k++) a[k] += x[c + k];
    double s = FN(ln_lanes)(a);
    for (; c < d; c++) s += x[c];
    const double m = s / d;
    double b[LN_LANES] = {0};
    for (c = 0; c + LN_LANES <= d; c += LN_LANES)
        for (int k = 0; k < LN_LANES; k++) b[k] += (x[c + k] - m) * (x[c + k] - m);
    double v = FN(ln_lanes)(b);
    for (; c < d; c++) v += (x[c] - m) * (x[c] - m);
    const real mr = (real)m, rs = (real)(1.0 / sqrt(v / d + LN_EPS));
    // normalize with the rounded statistics: exactly what the backward will assume
    for (c = 0; c < d; c++) o[c] = (x[c] - mr) * rs * w[c];
    *mean = mr;
    *rstd = rs;
}

static void FN(layernorm_fwd)(void *out_, void *mean_, void *rstd_, const void *x_,
                              const void *w_, int n, int d) {
    real *out = out_, *mean = mean_, *rstd = rstd_;
    const real *x = x_, *w = w_;
#pragma omp parallel for if ((size_t)n * d > PAR_MIN)
    for (int i = 0; i < n; i++)
        FN(ln_row)(out + (size_t)i * d, mean + i, rstd + i, x + (size_t)i * d, w, d);
}

static void FN(residual_layernorm_fwd)(void *resid_, void *out_, void *mean_, void *rstd_,
                                       const void *a_, const void *b_, const void *w_, int n,
                                       int d) {
    real *resid = resid_, *out = out_, *mean = mean_, *rstd = rstd_;
    const real *a = a_, *b = b_, *w = w_;
#pragma omp parallel for if ((size_t)n * d > PAR_MIN)
    for (int i = 0; i < n; i++) {
        real *r = resid + (size_t)i * d;
        for (int c = 0; c < d; c++) r[c] = a[(size_t)i * d + c] + b[(size_t)i * d + c];
        FN(ln_row)(out + (size_t)i * d, mean + i, rstd + i, r, w, d);
    }
}

// With xh = (x - mean) rstd and g = dout w:
//   dx += rstd (g - mean(g) - xh mean(g xh));   dw += sum_rows dout xh
static void FN(layernorm_bwd)(void *dx_, void *dw_, const void *dout_, const void *x_,
                              const void *w_, const void *mean_, const void *rstd_, int n,
                              int d) {
    real *dx = dx_, *dw = dw_;
    const real *dout = dout_, *x = x_, *w = w_, *mean = mean_, *rstd = rstd_;
    // dx: rows are independent
#pragma omp parallel for if ((size_t)n * d > PAR_MIN)
    for (int i = 0; i < n; i++) {
        const real *xi = x + (size_t)i * d, *gi = dout + (size_t)i * d;
        real *dxi = dx + (size_t)i * d;
        const real m = mean[i], rs = rstd[i];
        double ag[LN_LANES] = {0}, agx[LN_LANES] = {0};
        int c = 0;
        for (; c + LN_LANES <= d; c += LN_LANES)
            for (int k = 0; k < LN_LANES; k++) {
                const real xh = (xi[c + k] - m) * rs, g = gi[c + k] * w[c + k];
                ag[k] += g;
                agx[k] += g * xh;
            }
        double sg = FN(ln_lanes)(ag), sgx = FN(ln_lanes)(agx);
        for (; c < d; c++) {
            const real xh = (xi[c] - m) * rs, g = gi[c] * w[c];
            sg += g;
            sgx += g * xh;
        }
        const real mg = (real)(sg / d), mgx = (real)(sgx / d);
        for (int c = 0; c < d; c++) {
            const real xh = (xi[c] - m) * rs, g = gi[c] * w[c];
            dxi[c] += (g - mg - xh * mgx) * rs;
        }
    }
    // dw: a reduction over rows. Split by column blocks, rows in order: no float atomics,
    // the same bits for any thread count.
    const int nb = (d + COL_BLOCK - 1) / COL_BLOCK;
#pragma omp parallel for if ((size_t)n * d > PAR_MIN)
    for (int b = 0; b < nb; b++) {
        const int c0 = b * COL_BLOCK, c1 = c0 + COL_BLOCK < d ? c0 + COL_BLOCK : d;
        double acc[COL_BLOCK] = {0};
        for (int i = 0; i < n; i++) {
            const real *xi = x + (size_t)i * d, *gi = dout + (size_t)i * d;
            const real m = mean[i], rs = rstd[i];
            for (int c = c0; c < c1; c++) acc[c - c0] += gi[c] * ((xi[c] - m) * rs);
        }
        for (int c = c0; c < c1; c++) dw[c] += (real)acc[c - c0];
    }
}
