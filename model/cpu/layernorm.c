// layernorm.c - LayerNorm with a weight and no bias, eps 1e-5, biased variance.
// mean and rstd are saved per row for the backward. Row sums are accumulated in double:
// the reference should be the accurate side of every CUDA comparison.
// Written over `real`, `act` and FN(); included by the cpu_*.c instances, never compiled alone.
// cpu-bf16: x, w, out, dx, dout are bf16 [act]; statistics and dw fp32 [state] (backend.h).

#define LN_EPS 1e-5

// Double sums in LN_LANES running lanes, combined in a fixed order: the loops vectorize
// without -ffast-math and the bits do not depend on threads or alignment.
#define LN_LANES 8

static inline double FN(ln_lanes)(const double *a) {
    return ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]));
}

static void FN(ln_row)(act *o, real *mean, real *rstd, const act *x, const act *w, int d) {
    double a[LN_LANES] = {0};
    int c = 0;
    for (; c + LN_LANES <= d; c += LN_LANES)
        for (int k = 0; k < LN_LANES; k++) a[k] += LDA(x[c + k]);
    double s = FN(ln_lanes)(a);
    for (; c < d; c++) s += LDA(x[c]);
    const double m = s / d;
    double b[LN_LANES] = {0};
    for (c = 0; c + LN_LANES <= d; c += LN_LANES)
        for (int k = 0; k < LN_LANES; k++) b[k] += (LDA(x[c + k]) - m) * (LDA(x[c + k]) - m);
    double v = FN(ln_lanes)(b);
    for (; c < d; c++) v += (LDA(x[c]) - m) * (LDA(x[c]) - m);
    const real mr = (real)m, rs = (real)(1.0 / sqrt(v / d + LN_EPS));
    // normalize with the rounded statistics: exactly what the backward will assume
    for (c = 0; c < d; c++) o[c] = STA((LDA(x[c]) - mr) * rs * LDA(w[c]));
    *mean = mr;
    *rstd = rs;
}

static void FN(layernorm_fwd)(void *out_, void *mean_, void *rstd_, const void *x_,
                              const void *w_, int n, int d) {
    act *out = out_;
    real *mean = mean_, *rstd = rstd_;
    const act *x = x_, *w = w_;
    CK(out_, (size_t)n * d * sizeof(act), NV_T_ACT, "layernorm_fwd", "out");
    CK(mean_, (size_t)n * sizeof(real), NV_T_STATE, "layernorm_fwd", "mean");
    CK(rstd_, (size_t)n * sizeof(real), NV_T_STATE, "layernorm_fwd", "rstd");
    CK(x_, (size_t)n * d * sizeof(act), NV_T_ACT, "layernorm_fwd", "x");
    CK(w_, (size_t)d * sizeof(act), NV_T_ACT, "layernorm_fwd", "w");
#pragma omp parallel for if ((size_t)n * d > PAR_MIN)
    for (int i = 0; i < n; i++)
        FN(ln_row)(out + (size_t)i * d, mean + i, rstd + i, x + (size_t)i * d, w, d);
}

static void FN(residual_layernorm_fwd)(void *resid_, void *out_, void *mean_, void *rstd_,
                                       const void *a_, const void *b_, const void *w_, int n,
                                       int d) {
    act *resid = resid_, *out = out_;
    real *mean = mean_, *rstd = rstd_;
    const act *a = a_, *b = b_, *w = w_;
    const size_t nd = (size_t)n * d * sizeof(act);
    CK(resid_, nd, NV_T_ACT, "residual_layernorm_fwd", "resid_out");
    CK(out_, nd, NV_T_ACT, "residual_layernorm_fwd", "out");
    CK(mean_, (size_t)n * sizeof(real), NV_T_STATE, "residual_layernorm_fwd", "mean");
    CK(rstd_, (size_t)n * sizeof(real), NV_T_STATE, "residual_layernorm_fwd", "rstd");
    CK(a_, nd, NV_T_ACT, "residual_layernorm_fwd", "a");
    CK(b_, nd, NV_T_ACT, "residual_layernorm_fwd", "b");
    CK(w_, (size_t)d * sizeof(act), NV_T_ACT, "residual_layernorm_fwd", "w");
#pragma omp parallel for if ((size_t)n * d > PAR_MIN)
    for (int i = 0; i < n; i++) {
        act *r = resid + (size_t)i * d; // rounded first: the norm reads the stored stream
        for (int c = 0; c < d; c++)
            r[c] = STA(LDA(a[(size_t)i * d + c]) + LDA(b[(size_t)i * d + c]));
        FN(ln_row)(out + (size_t)i * d, mean + i, rstd + i, r, w, d);
    }
}

// With xh = (x - mean) rstd and g = dout w:
//   dx += rstd (g - mean(g) - xh mean(g xh));   dw += sum_rows dout xh
static void FN(layernorm_bwd)(void *dx_, void *dw_, const void *dout_, const void *x_,
                              const void *w_, const void *mean_, const void *rstd_, int n,
                              int d) {
    act *dx = dx_;
    real *dw = dw_;
    const act *dout = dout_, *x = x_, *w = w_;
    const real *mean = mean_, *rstd = rstd_;
    const size_t nd = (size_t)n * d * sizeof(act);
    CK(dx_, nd, NV_T_ACT, "layernorm_bwd", "dx");
    CK(dw_, (size_t)d * sizeof(real), NV_T_STATE, "layernorm_bwd", "dw");
    CK(dout_, nd, NV_T_ACT, "layernorm_bwd", "dout");
    CK(x_, nd, NV_T_ACT, "layernorm_bwd", "x");
    CK(w_, (size_t)d * sizeof(act), NV_T_ACT, "layernorm_bwd", "w");
    CK(mean_, (size_t)n * sizeof(real), NV_T_STATE, "layernorm_bwd", "mean");
    CK(rstd_, (size_t)n * sizeof(real), NV_T_STATE, "layernorm_bwd", "rstd");
    // dx: rows are independent
#pragma omp parallel for if ((size_t)n * d > PAR_MIN)
    for (int i = 0; i < n; i++) {
        const act *xi = x + (size_t)i * d, *gi = dout + (size_t)i * d;
        act *dxi = dx + (size_t)i * d;
        const real m = mean[i], rs = rstd[i];
        double ag[LN_LANES] = {0}, agx[LN_LANES] = {0};
        int c = 0;
        for (; c + LN_LANES <= d; c += LN_LANES)
            for (int k = 0; k < LN_LANES; k++) {
                const real xh = (LDA(xi[c + k]) - m) * rs, g = LDA(gi[c + k]) * LDA(w[c + k]);
                ag[k] += g;
                agx[k] += g * xh;
            }
        double sg = FN(ln_lanes)(ag), sgx = FN(ln_lanes)(agx);
        for (; c < d; c++) {
            const real xh = (LDA(xi[c]) - m) * rs, g = LDA(gi[c]) * LDA(w[c]);
            sg += g;
            sgx += g * xh;
        }
        const real mg = (real)(sg / d), mgx = (real)(sgx / d);
        for (c = 0; c < d; c++) {
            const real xh = (LDA(xi[c]) - m) * rs, g = LDA(gi[c]) * LDA(w[c]);
            dxi[c] = STA(LDA(dxi[c]) + (g - mg - xh * mgx) * rs); // one rounding of the sum
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
            const act *xi = x + (size_t)i * d, *gi = dout + (size_t)i * d;
            const real m = mean[i], rs = rstd[i];
            for (int c = c0; c < c1; c++) acc[c - c0] += LDA(gi[c]) * ((LDA(xi[c]) - m) * rs);
        }
        for (int c = c0; c < c1; c++) dw[c] += (real)acc[c - c0];
    }
}
