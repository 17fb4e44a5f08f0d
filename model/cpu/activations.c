// activations.c - gelu (tanh approximation) and GeGLU, forward and backward.
//   gelu(x) = 0.5 x (1 + tanh(u)),  u = sqrt(2/pi) (x + 0.044715 x^3)
//   gelu'(x) = 0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 0.044715 x^2),  t = tanh(u)
// tanh is R_VTANH: on the float instance an inline exp-based tanh (common.inc), so these
// loops vectorize instead of calling libm per element; the backward computes tanh once for
// both gelu and gelu'.
// Inputs are loaded from act, each output rounded once (cpu-bf16).
// Written over `real`, `act` and FN(); included by the cpu_*.c instances, never compiled alone.

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
static void FN(gelu_span)(act *restrict out, const act *restrict x_, size_t n) {
    for (size_t i = 0; i < n; i++) {
        const real x = LDA(x_[i]);
        out[i] = STA((real)0.5 * x * (1 + FN(gelu_t)(x)));
    }
}

static void FN(gelu_bwd_span)(act *restrict dx, const act *restrict dout,
                              const act *restrict x_, size_t n) {
    for (size_t i = 0; i < n; i++) {
        const real x = LDA(x_[i]);
        dx[i] = STA(LDA(dout[i]) * FN(gelu_grad_t)(x, FN(gelu_t)(x)));
    }
}

static void FN(geglu_span)(act *restrict o, const act *restrict g_, const act *restrict u,
                           int f) {
    for (int c = 0; c < f; c++) {
        const real g = LDA(g_[c]);
        o[c] = STA((real)0.5 * g * (1 + FN(gelu_t)(g)) * LDA(u[c]));
    }
}

static void FN(geglu_bwd_span)(act *restrict dg, act *restrict du, const act *restrict go_,
                               const act *restrict g_, const act *restrict u, int f) {
    for (int c = 0; c < f; c++) {
        const real g = LDA(g_[c]), go = LDA(go_[c]), t = FN(gelu_t)(g);
        dg[c] = STA(go * LDA(u[c]) * FN(gelu_grad_t)(g, t));
        du[c] = STA(go * ((real)0.5 * g * (1 + t)));
    }
}

#define ACT_CHUNK 4096 // elements per parallel chunk of the flat ops

static void FN(gelu_fwd)(void *out_, const void *x_, size_t n) {
    act *out = out_;
    const act *x = x_;
    CK(out_, n * sizeof(act), NV_T_ACT, "gelu_fwd", "out");
    CK(x_, n * sizeof(act), NV_T_ACT, "gelu_fwd", "x");
    const size_t nc = (n + ACT_CHUNK - 1) / ACT_CHUNK;
#pragma omp parallel for if (n > PAR_MIN)
    for (size_t b = 0; b < nc; b++) {
        const size_t i0 = b * ACT_CHUNK, m = i0 + ACT_CHUNK < n ? ACT_CHUNK : n - i0;
        FN(gelu_span)(out + i0, x + i0, m);
    }
}

static void FN(gelu_bwd)(void *dx_, const void *dout_, const void *x_, size_t n) {
    act *dx = dx_;
    const act *dout = dout_, *x = x_;
    CK(dx_, n * sizeof(act), NV_T_ACT, "gelu_bwd", "dx");
    CK(dout_, n * sizeof(act), NV_T_ACT, "gelu_bwd", "dout");
    CK(x_, n * sizeof(act), NV_T_ACT, "gelu_bwd", "x");
    const size_t nc = (n + ACT_CHUNK - 1) / ACT_CHUNK;
#pragma omp parallel for if (n > PAR_MIN)
    for (size_t b = 0; b < nc; b++) {
        const size_t i0 = b * ACT_CHUNK, m = i0 + ACT_CHUNK < n ? ACT_CHUNK : n - i0;
        FN(gelu_bwd_span)(dx + i0, dout + i0, x + i0, m);
    }
}

// gu [n, 2f] = gate | up per row; out [n, f] = gelu(gate) * up
static void FN(geglu_fwd)(void *out_, const void *gu_, int n, int f) {
    act *out = out_;
    const act *gu = gu_;
    CK(out_, (size_t)n * f * sizeof(act), NV_T_ACT, "geglu_fwd", "out");
    CK(gu_, (size_t)n * 2 * f * sizeof(act), NV_T_ACT, "geglu_fwd", "gu");
#pragma omp parallel for if ((size_t)n * f > PAR_MIN)
    for (int i = 0; i < n; i++) {
        const act *g = gu + (size_t)i * 2 * f;
        FN(geglu_span)(out + (size_t)i * f, g, g + f, f);
    }
}

static void FN(geglu_bwd)(void *dgu_, const void *dout_, const void *gu_, int n, int f) {
    act *dgu = dgu_;
    const act *dout = dout_, *gu = gu_;
    CK(dgu_, (size_t)n * 2 * f * sizeof(act), NV_T_ACT, "geglu_bwd", "dgu");
    CK(dout_, (size_t)n * f * sizeof(act), NV_T_ACT, "geglu_bwd", "dout");
    CK(gu_, (size_t)n * 2 * f * sizeof(act), NV_T_ACT, "geglu_bwd", "gu");
#pragma omp parallel for if ((size_t)n * f > PAR_MIN)
    for (int i = 0; i < n; i++) {
        const act *g = gu + (size_t)i * 2 * f;
        act *dg = dgu + (size_t)i * 2 * f;
        FN(geglu_bwd_span)(dg, dg + f, dout + (size_t)i * f, g, g + f, f);
    }
}
