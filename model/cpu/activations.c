// activations.c - gelu (tanh approximation) and GeGLU, forward and backward.
//   gelu(x) = 0.5 x (1 + tanh(u)),  u = sqrt(2/pi) (x + 0.044715 x^3)
//   gelu'(x) = 0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 0.044715 x^2),  t = tanh(u)
// tanh is R_VTANH: on the float instance an inline exp-based tanh (common.inc), so these
// loops vectorize instead of calling libm per element; the backward computes tanh once for
// both gelu and gelu'.
// Written over `real` and FN(); included by cpu_f32.c and cpu_f64.c, never compiled alone.

#define GELU_K 0.7978845608028654 // sqrt(2/pi)
#define GELU_C 0.044715

static inline real FN(gelu_t)(real x) { // tanh(u)
    return R_VTANH((real)GELU_K * (x + (real)GELU_C * x * x * x));
}

static inline real FN(gelu_grad_t)(real x, real t) {
    const real du = (real)GELU_K * (1 + (real)(3 * GELU_C) * x * x);
    return (real)0.5 * (1 + t) + (real)0.5 * x * (1 - t * t) * du;
}

// element loops over restrict rows: what the vectorizer wants
static void FN(gelu_span)(real *restrict out, const real *restrict x, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = (real)0.5 * x[i] * (1 + FN(gelu_t)(x[i]));
}

static void FN(gelu_bwd_span)(real *restrict dx, const real *restrict dout,
                              const real *restrict x, size_t n) {
    for (size_t i = 0; i < n; i++) dx[i] = dout[i] * FN(gelu_grad_t)(x[i], FN(gelu_t)(x[i]));
}

static void FN(geglu_span)(real *restrict o, const real *restrict g, const real *restrict u,
                           int f) {
    for (int c = 0; c < f; c++) o[c] = (real)0.5 * g[c] * (1 + FN(gelu_t)(g[c])) * u[c];
}

static void FN(geglu_bwd_span)(real *restrict dg, real *restrict du, const real *restrict go,
                               const real *restrict g, const real *restrict u, int f) {
    for (int c = 0; c < f; c++) {
        const real t = FN(gelu_t)(g[c]);
        dg[c] = go[c] * u[c] * FN(gelu_grad_t)(g[c], t);
        du[c] = go[c] * ((real)0.5 * g[c] * (1 + t));
    }
}

#define ACT_CHUNK 4096 // elements per parallel chunk of the flat ops

static void FN(gelu_fwd)(void *out_, const void *x_, size_t n) {
    real *out = out_;
    const real *x = x_;
    const size_t nc = (n + ACT_CHUNK - 1) / ACT_CHUNK;
#pragma omp parallel for if (n > PAR_MIN)
    for (size_t b = 0; b < nc; b++) {
        const size_t i0 = b * ACT_CHUNK, m = i0 + ACT_CHUNK < n ? ACT_CHUNK : n - i0;
        FN(gelu_span)(out + i0, x + i0, m);
    }
}

static void FN(gelu_bwd)(void *dx_, const void *dout_, const void *x_, size_t n) {
    real *dx = dx_;
    const real *dout = dout_, *x = x_;
    const size_t nc = (n + ACT_CHUNK - 1) / ACT_CHUNK;
#pragma omp parallel for if (n > PAR_MIN)
    for (size_t b = 0; b < nc; b++) {
        const size_t i0 = b * ACT_CHUNK, m = i0 + ACT_CHUNK < n ? ACT_CHUNK : n - i0;
        FN(gelu_bwd_span)(dx + i0, dout + i0, x + i0, m);
    }
}

// gu [n, 2f] = gate | up per row; out [n, f] = gelu(gate) * up
static void FN(geglu_fwd)(void *out_, const void *gu_, int n, int f) {
    real *out = out_;
    const real *gu = gu_;
#pragma omp parallel for if ((size_t)n * f > PAR_MIN)
    for (int i = 0; i < n; i++) {
        const real *g = gu + (size_t)i * 2 * f;
        FN(geglu_span)(out + (size_t)i * f, g, g + f, f);
    }
}

static void FN(geglu_bwd)(void *dgu_, const void *dout_, const void *gu_, int n, int f) {
    real *dgu = dgu_;
    const real *dout = dout_, *gu = gu_;
#pragma omp parallel for if ((size_t)n * f > PAR_MIN)
    for (int i = 0; i < n; i++) {
        const real *g = gu + (size_t)i * 2 * f;
        real *dg = dgu + (size_t)i * 2 * f;
        FN(geglu_bwd_span)(dg, dg + f, dout + (size_t)i * f, g, g + f, f);
    }
}
