// activations.c - gelu (tanh approximation) and GeGLU, forward and backward.
//   gelu(x) = 0.5 x (1 + tanh(u)),  u = sqrt(2/pi) (x + 0.044715 x^3)
//   gelu'(x) = 0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 0.044715 x^2),  t = tanh(u)
// Written over `real` and FN(); included by cpu_f32.c and cpu_f64.c, never compiled alone.

#define GELU_K 0.7978845608028654 // sqrt(2/pi)
#define GELU_C 0.044715

static inline real FN(gelu)(real x) {
    const real u = (real)GELU_K * (x + (real)GELU_C * x * x * x);
    return (real)0.5 * x * (1 + R_TANH(u));
}

static inline real FN(gelu_grad)(real x) {
    const real u = (real)GELU_K * (x + (real)GELU_C * x * x * x), t = R_TANH(u);
    const real du = (real)GELU_K * (1 + (real)(3 * GELU_C) * x * x);
    return (real)0.5 * (1 + t) + (real)0.5 * x * (1 - t * t) * du;
}

static void FN(gelu_fwd)(void *out_, const void *x_, size_t n) {
    real *out = out_;
    const real *x = x_;
#pragma omp parallel for if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) out[i] = FN(gelu)(x[i]);
}

static void FN(gelu_bwd)(void *dx_, const void *dout_, const void *x_, size_t n) {
    real *dx = dx_;
    const real *dout = dout_, *x = x_;
#pragma omp parallel for if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) dx[i] = dout[i] * FN(gelu_grad)(x[i]);
}

// gu [n, 2f] = gate | up per row; out [n, f] = gelu(gate) * up
static void FN(geglu_fwd)(void *out_, const void *gu_, int n, int f) {
    real *out = out_;
    const real *gu = gu_;
#pragma omp parallel for if ((size_t)n * f > PAR_MIN)
    for (int i = 0; i < n; i++) {
        const real *g = gu + (size_t)i * 2 * f, *u = g + f;
        real *o = out + (size_t)i * f;
        for (int c = 0; c < f; c++) o[c] = FN(gelu)(g[c]) * u[c];
    }
}

static void FN(geglu_bwd)(void *dgu_, const void *dout_, const void *gu_, int n, int f) {
    real *dgu = dgu_;
    const real *dout = dout_, *gu = gu_;
#pragma omp parallel for if ((size_t)n * f > PAR_MIN)
    for (int i = 0; i < n; i++) {
        const real *g = gu + (size_t)i * 2 * f, *u = g + f, *go = dout + (size_t)i * f;
        real *dg = dgu + (size_t)i * 2 * f, *du = dg + f;
        for (int c = 0; c < f; c++) {
            dg[c] = go[c] * u[c] * FN(gelu_grad)(g[c]);
            du[c] = go[c] * FN(gelu)(g[c]);
        }
    }
}
