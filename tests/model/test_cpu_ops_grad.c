// test_cpu_ops_grad.c - every CPU op with a backward, on the double instance (cpu-f64):
// with fresh random inputs X and a random upstream gradient G, loss = sum(G * op(X)), and the
// analytic gradients of every input and weight are compared element by element with central
// finite differences, eps = 1e-6:
//   |analytic - fd| <= 1e-6 * max(|analytic|, |fd|) + 1e-8
// (the 1e-8 floor is the rounding noise of the loss difference divided by 2 eps).
// Also checked: the accumulate / overwrite contract of backend.h (weight gradients add up
// over calls, layernorm's dx adds to what is there, other activation gradients overwrite).
#include <string.h>

#include "model/backend.h"
#include "tests/testutil.h"

#define EPS 1e-6
#define RTOL 1e-6
#define ATOL 1e-8

static const nv_backend *B;

typedef double (*loss_fn)(void *ctx);

static double *dalloc(size_t n) { return B->alloc(n * sizeof(double)); }
static double *randn(size_t n, double s) {
    double *x = dalloc(n);
    for (size_t i = 0; i < n; i++) x[i] = s * tu_normal();
    return x;
}
static double dotv(const double *a, const double *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}
static double *copyv(const double *a, size_t n) {
    double *c = dalloc(n);
    memcpy(c, a, n * sizeof(double));
    return c;
}

// Central differences of f over every element of x, against ana.
static void check_fd(const char *what, double *x, size_t n, const double *ana, loss_fn f,
                     void *ctx) {
    double worst = 0;
    int bad = 0;
    for (size_t k = 0; k < n; k++) {
        const double save = x[k];
        x[k] = save + EPS;
        const double lp = f(ctx);
        x[k] = save - EPS;
        const double lm = f(ctx);
        x[k] = save;
        const double fd = (lp - lm) / (2 * EPS), err = fabs(fd - ana[k]);
        const double scale = fmax(fabs(fd), fabs(ana[k]));
        if (err > RTOL * scale + ATOL) {
            if (bad++ < 5)
                CHECK(0, "%s[%zu]: analytic %.12g vs finite difference %.12g", what, k, ana[k],
                      fd);
        }
        if (err / (RTOL * scale + ATOL) > worst) worst = err / (RTOL * scale + ATOL);
    }
    printf("  %-28s %4zu elements, worst err/tol %.3f%s\n", what, n, worst, bad ? "  FAILED" : "");
}

// |a - b| <= tol * max(|a|, |b|) + 1e-300, elementwise
static void check_close(const char *what, const double *a, const double *b, size_t n,
                        double tol) {
    for (size_t k = 0; k < n; k++)
        if (fabs(a[k] - b[k]) > tol * fmax(fabs(a[k]), fabs(b[k])) + 1e-300) {
            CHECK(0, "%s[%zu]: %.15g vs %.15g", what, k, a[k], b[k]);
            return;
        }
}

// ---- embedding ----------------------------------------------------------------------------
typedef struct {
    int n, d;
    int32_t *tok, *sin;
    double *Et, *Es, *G, *out;
} embed_ctx;
static double embed_loss(void *p) {
    embed_ctx *c = p;
    B->embed_fwd(c->out, c->tok, c->sin, c->Et, c->Es, c->n, c->d);
    return dotv(c->G, c->out, (size_t)c->n * c->d);
}
static void test_embed(void) {
    printf("embed\n");
    const int n = 13, d = 6, V = 16, S = 4;
    embed_ctx c = {n, d, B->alloc(n * 4), B->alloc(n * 4), randn(V * d, 1), randn(S * d, 1),
                   randn(n * d, 1), dalloc(n * d)};
    for (int i = 0; i < n; i++) c.tok[i] = tu_int(0, V - 1), c.sin[i] = tu_int(0, S - 1);
    c.tok[0] = c.tok[n - 1]; // at least one repeated id, so accumulation over tokens is hit
    double *dEt = dalloc(V * d), *dEs = dalloc(S * d);
    B->embed_bwd(dEt, dEs, c.G, c.tok, c.sin, n, d, V);
    check_fd("dE_tok", c.Et, V * d, dEt, embed_loss, &c);
    check_fd("dE_struct", c.Es, S * d, dEs, embed_loss, &c);
    // accumulate: a second call doubles
    double *t1 = copyv(dEt, V * d), *s1 = copyv(dEs, S * d);
    B->embed_bwd(dEt, dEs, c.G, c.tok, c.sin, n, d, V);
    for (int k = 0; k < V * d; k++) t1[k] *= 2;
    for (int k = 0; k < S * d; k++) s1[k] *= 2;
    check_close("dE_tok twice", dEt, t1, V * d, 1e-15);
    check_close("dE_struct twice", dEs, s1, S * d, 1e-15);
    // without the structure table
    double *Es = c.Es;
    c.Es = NULL;
    memset(dEt, 0, V * d * sizeof(double));
    B->embed_bwd(dEt, NULL, c.G, c.tok, c.sin, n, d, V);
    check_fd("dE_tok (no struct)", c.Et, V * d, dEt, embed_loss, &c);
    c.Es = Es;
    B->free(c.tok), B->free(c.sin), B->free(c.Et), B->free(c.Es), B->free(c.G), B->free(c.out);
    B->free(dEt), B->free(dEs), B->free(t1), B->free(s1);
}

// ---- LayerNorm ----------------------------------------------------------------------------
typedef struct {
    int n, d;
    double *x, *w, *G, *out, *mean, *rstd;
} ln_ctx;
static double ln_loss(void *p) {
    ln_ctx *c = p;
    B->layernorm_fwd(c->out, c->mean, c->rstd, c->x, c->w, c->n, c->d);
    return dotv(c->G, c->out, (size_t)c->n * c->d);
}
static void test_layernorm(void) {
    printf("layernorm\n");
    const int n = 6, d = 16;
    ln_ctx c = {n, d, randn(n * d, 1), dalloc(d), randn(n * d, 1), dalloc(n * d), dalloc(n),
                dalloc(n)};
    for (int i = 0; i < n * d; i++) c.x[i] += 0.5; // a non-zero mean to remove
    for (int k = 0; k < d; k++) c.w[k] = tu_uniform(0.5, 1.5);
    ln_loss(&c);
    // statistics against a direct computation: biased variance, eps 1e-5
    for (int i = 0; i < n; i++) {
        double m = 0, v = 0;
        for (int k = 0; k < d; k++) m += c.x[i * d + k] / d;
        for (int k = 0; k < d; k++) v += (c.x[i * d + k] - m) * (c.x[i * d + k] - m) / d;
        CHECK(fabs(c.mean[i] - m) < 1e-14 * (fabs(m) + 1), "mean[%d] %g vs %g", i, c.mean[i], m);
        CHECK(tu_relerr(c.rstd[i], 1 / sqrt(v + 1e-5)) < 1e-13, "rstd[%d]", i);
        for (int k = 0; k < d; k++) {
            const double want = (c.x[i * d + k] - m) / sqrt(v + 1e-5) * c.w[k];
            CHECK(fabs(c.out[i * d + k] - want) < 1e-13 * (fabs(want) + 1), "ln out[%d,%d]", i,
                  k);
        }
    }
    // dx ADDS onto prior contents, dw accumulates
    double *P = randn(n * d, 1), *Q = randn(d, 1);
    double *dx = copyv(P, n * d), *dw = copyv(Q, d);
    B->layernorm_bwd(dx, dw, c.G, c.x, c.w, c.mean, c.rstd, n, d);
    double *ax = dalloc(n * d), *aw = dalloc(d);
    for (int k = 0; k < n * d; k++) ax[k] = dx[k] - P[k];
    for (int k = 0; k < d; k++) aw[k] = dw[k] - Q[k];
    check_fd("layernorm dx", c.x, n * d, ax, ln_loss, &c);
    check_fd("layernorm dw", c.w, d, aw, ln_loss, &c);
    ln_loss(&c);
    B->layernorm_bwd(dx, dw, c.G, c.x, c.w, c.mean, c.rstd, n, d);
    for (int k = 0; k < n * d; k++) ax[k] = P[k] + 2 * ax[k];
    for (int k = 0; k < d; k++) aw[k] = Q[k] + 2 * aw[k];
    check_close("layernorm dx twice", dx, ax, n * d, 1e-12);
    check_close("layernorm dw twice", dw, aw, d, 1e-12);

    // residual_layernorm_fwd == add then layernorm
    double *a = randn(n * d, 1), *b = randn(n * d, 1);
    double *r1 = dalloc(n * d), *o1 = dalloc(n * d), *m1 = dalloc(n), *s1 = dalloc(n);
    double *r2 = dalloc(n * d), *o2 = dalloc(n * d), *m2 = dalloc(n), *s2 = dalloc(n);
    B->residual_layernorm_fwd(r1, o1, m1, s1, a, b, c.w, n, d);
    B->add(r2, a, b, n * d);
    for (int k = 0; k < n * d; k++) CHECK(r2[k] == a[k] + b[k], "add[%d]", k);
    B->layernorm_fwd(o2, m2, s2, r2, c.w, n, d);
    check_close("residual_ln resid", r1, r2, n * d, 0);
    check_close("residual_ln out", o1, o2, n * d, 1e-15);
    check_close("residual_ln mean", m1, m2, n, 1e-15);
    check_close("residual_ln rstd", s1, s2, n, 1e-15);
    double *bufs[] = {c.x, c.w, c.G, c.out, c.mean, c.rstd, P, Q, dx, dw, ax, aw,
                      a, b, r1, o1, m1, s1, r2, o2, m2, s2};
    for (size_t k = 0; k < sizeof bufs / sizeof *bufs; k++) B->free(bufs[k]);
}

// ---- matmul -------------------------------------------------------------------------------
typedef struct {
    int n, in, out;
    double *x, *W, *b, *G, *y;
} mm_ctx;
static double mm_loss(void *p) {
    mm_ctx *c = p;
    B->matmul_fwd(c->y, c->x, c->W, c->b, c->n, c->in, c->out);
    return dotv(c->G, c->y, (size_t)c->n * c->out);
}
static void test_matmul(int with_bias) {
    printf("matmul%s\n", with_bias ? " + bias" : "");
    const int n = 7, in = 5, out = 6;
    mm_ctx c = {n, in, out, randn(n * in, 1), randn(out * in, 1),
                with_bias ? randn(out, 1) : NULL, randn(n * out, 1), dalloc(n * out)};
    mm_loss(&c);
    for (int i = 0; i < n; i++) // forward against a plain triple loop
        for (int o = 0; o < out; o++) {
            double s = with_bias ? c.b[o] : 0, mag = fabs(s); // mag: no cancellation
            for (int k = 0; k < in; k++) {
                s += c.x[i * in + k] * c.W[o * in + k];
                mag += fabs(c.x[i * in + k] * c.W[o * in + k]);
            }
            CHECK(fabs(c.y[i * out + o] - s) <= 1e-14 * mag, "matmul y[%d,%d]", i, o);
        }
    double *dx = randn(n * in, 1); // garbage: must be overwritten
    double *Q = randn(out * in, 1), *R = randn(out, 1);
    double *dW = copyv(Q, out * in), *db = copyv(R, out);
    B->matmul_bwd(dx, dW, with_bias ? db : NULL, c.G, c.x, c.W, n, in, out);
    double *aw = dalloc(out * in), *ab = dalloc(out);
    for (int k = 0; k < out * in; k++) aw[k] = dW[k] - Q[k];
    for (int k = 0; k < out; k++) ab[k] = db[k] - R[k];
    check_fd("matmul dinp", c.x, n * in, dx, mm_loss, &c);
    check_fd("matmul dW", c.W, out * in, aw, mm_loss, &c);
    if (with_bias) check_fd("matmul dbias", c.b, out, ab, mm_loss, &c);
    // dinp overwritten: the same result from a different prior content
    double *dx2 = randn(n * in, 1);
    B->matmul_bwd(dx2, dW, with_bias ? db : NULL, c.G, c.x, c.W, n, in, out);
    check_close("matmul dinp overwrite", dx2, dx, n * in, 1e-14);
    // and skipped when NULL, while dW, dbias still accumulate (third call: Q + 3 aw)
    B->matmul_bwd(NULL, dW, with_bias ? db : NULL, c.G, c.x, c.W, n, in, out);
    for (int k = 0; k < out * in; k++) aw[k] = Q[k] + 3 * aw[k];
    for (int k = 0; k < out; k++) ab[k] = R[k] + 3 * ab[k];
    check_close("matmul dW x3", dW, aw, out * in, 1e-12);
    check_close("matmul dbias x3", db, ab, out, 1e-12);
    double *bufs[] = {c.x, c.W, c.b, c.G, c.y, dx, Q, R, dW, db, aw, ab, dx2};
    for (size_t k = 0; k < sizeof bufs / sizeof *bufs; k++)
        if (bufs[k]) B->free(bufs[k]);
}

// ---- RoPE ---------------------------------------------------------------------------------
typedef struct {
    int n, H, dh;
    double theta;
    int32_t *pos;
    double *qkv, *G, *tmp;
} rope_ctx;
static double rope_loss(void *p) {
    rope_ctx *c = p;
    const size_t m = (size_t)c->n * 3 * c->H * c->dh;
    memcpy(c->tmp, c->qkv, m * sizeof(double));
    B->rope_fwd(c->tmp, c->pos, c->n, c->H, c->dh, c->theta);
    return dotv(c->G, c->tmp, m);
}
static void test_rope(double theta) {
    printf("rope theta %g\n", theta);
    const int n = 6, H = 2, dh = 6, m = n * 3 * H * dh;
    rope_ctx c = {n, H, dh, theta, B->alloc(n * 4), randn(m, 1), randn(m, 1), dalloc(m)};
    for (int i = 0; i < n; i++) c.pos[i] = tu_int(0, 300);
    double *dq = copyv(c.G, m);
    B->rope_bwd(dq, c.pos, n, H, dh, theta);
    check_fd("rope dqkv", c.qkv, m, dq, rope_loss, &c);
    B->free(c.pos), B->free(c.qkv), B->free(c.G), B->free(c.tmp), B->free(dq);
}

// ---- attention ----------------------------------------------------------------------------
// A random packed layout over n tokens: segments of 1..maxlen tokens, pad gaps between some
// of them and a pad tail.
static int random_segments(int32_t *start, int32_t *len, int n, int maxlen, int *max_len) {
    int t = tu_int(0, 1), ns = 0;
    *max_len = 0;
    while (t < n - 2) {
        int l = tu_int(1, maxlen);
        if (t + l > n - 1) l = n - 1 - t; // keep the last token a pad
        start[ns] = t, len[ns] = l, ns++;
        if (l > *max_len) *max_len = l;
        t += l + (tu_int(0, 2) == 0); // sometimes a pad between segments
    }
    return ns;
}
typedef struct {
    int n, H, dh, window;
    nv_attn_segs segs;
    double *qkv, *G, *out, *lse;
} attn_ctx;
static double attn_loss(void *p) {
    attn_ctx *c = p;
    B->attention_fwd(c->out, c->lse, c->qkv, &c->segs, c->n, c->H, c->dh, c->window);
    return dotv(c->G, c->out, (size_t)c->n * c->H * c->dh);
}
static void test_attention(int window) {
    const int n = 26, H = 2, dh = 4, d = H * dh;
    int32_t *start = B->alloc(n * 4), *len = B->alloc(n * 4);
    int max_len, ns = random_segments(start, len, n, 9, &max_len);
    printf("attention window %d, %d segments:", window, ns);
    for (int s = 0; s < ns; s++) printf(" [%d,%d)", start[s], start[s] + len[s]);
    printf("\n");
    attn_ctx c = {n, H, dh, window, {start, len, ns, max_len}, randn(n * 3 * d, 1),
                  randn(n * d, 1), dalloc(n * d), dalloc(n * H)};
    attn_loss(&c);
    double *dqkv = randn(n * 3 * d, 1); // garbage: must be overwritten
    B->attention_bwd(dqkv, c.G, c.qkv, c.out, c.lse, &c.segs, n, H, dh, window);
    check_fd("attention dqkv", c.qkv, n * 3 * d, dqkv, attn_loss, &c);
    B->free(start), B->free(len), B->free(c.qkv), B->free(c.G), B->free(c.out), B->free(c.lse);
    B->free(dqkv);
}

// ---- activations --------------------------------------------------------------------------
typedef struct {
    int n, f;
    double *x, *G, *out;
} act_ctx;
static double geglu_loss(void *p) {
    act_ctx *c = p;
    B->geglu_fwd(c->out, c->x, c->n, c->f);
    return dotv(c->G, c->out, (size_t)c->n * c->f);
}
static double gelu_loss(void *p) {
    act_ctx *c = p;
    B->gelu_fwd(c->out, c->x, (size_t)c->n);
    return dotv(c->G, c->out, (size_t)c->n);
}
static void test_activations(void) {
    printf("gelu, geglu\n");
    const int n = 5, f = 7;
    act_ctx g = {n * f, 0, randn(n * f, 1.5), randn(n * f, 1), dalloc(n * f)};
    gelu_loss(&g);
    for (int i = 0; i < n * f; i++) { // the tanh formula, written out
        const double x = g.x[i];
        const double want = 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
        // 1 + tanh cancels for negative x: absolute slack for the rounding of sqrt(2/pi)
        CHECK(fabs(g.out[i] - want) < 1e-14 * (fabs(want) + 1), "gelu(%g) %g vs %g", x,
              g.out[i], want);
    }
    double *dx = randn(n * f, 1);
    B->gelu_bwd(dx, g.G, g.x, n * f);
    check_fd("gelu dx", g.x, n * f, dx, gelu_loss, &g);

    act_ctx c = {n, f, randn(n * 2 * f, 1.5), randn(n * f, 1), dalloc(n * f)};
    geglu_loss(&c);
    for (int i = 0; i < n; i++)
        for (int k = 0; k < f; k++) {
            const double x = c.x[i * 2 * f + k], u = c.x[i * 2 * f + f + k];
            const double want = 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
            CHECK(fabs(c.out[i * f + k] - want * u) < 1e-14 * (fabs(want * u) + fabs(u)),
                  "geglu[%d,%d]", i, k);
        }
    double *dgu = randn(n * 2 * f, 1);
    B->geglu_bwd(dgu, c.G, c.x, n, f);
    check_fd("geglu dgu", c.x, n * 2 * f, dgu, geglu_loss, &c);
    double *bufs[] = {g.x, g.G, g.out, dx, c.x, c.G, c.out, dgu};
    for (size_t k = 0; k < sizeof bufs / sizeof *bufs; k++) B->free(bufs[k]);
}

// ---- gather / scatter ---------------------------------------------------------------------
typedef struct {
    int rows, m, d;
    int32_t *idx;
    double *in, *src, *G, *out, *P;
} sel_ctx;
static double gather_loss(void *p) {
    sel_ctx *c = p;
    B->gather_rows(c->out, c->in, c->idx, c->m, c->d);
    return dotv(c->G, c->out, (size_t)c->m * c->d);
}
static double scatter_loss(void *p) { // loss = sum(G_full * (P + scatter(src)))
    sel_ctx *c = p;
    double *dst = copyv(c->P, (size_t)c->rows * c->d);
    B->scatter_add_rows(dst, c->src, c->idx, c->m, c->d);
    const double l = dotv(c->in, dst, (size_t)c->rows * c->d); // `in` doubles as G_full
    B->free(dst);
    return l;
}
static void test_select(void) {
    printf("gather_rows, scatter_add_rows\n");
    const int rows = 11, m = 5, d = 4;
    sel_ctx c = {rows, m, d, B->alloc(m * 4), randn(rows * d, 1), randn(m * d, 1),
                 randn(m * d, 1), dalloc(m * d), randn(rows * d, 1)};
    int perm[11];
    for (int i = 0; i < rows; i++) perm[i] = i;
    for (int i = rows - 1; i > 0; i--) {
        int j = tu_int(0, i), t = perm[i];
        perm[i] = perm[j], perm[j] = t;
    }
    for (int i = 0; i < m; i++) c.idx[i] = perm[i];
    // gather's gradient is scatter_add of G into zeros
    double *din = dalloc(rows * d);
    B->scatter_add_rows(din, c.G, c.idx, m, d);
    check_fd("gather din", c.in, rows * d, din, gather_loss, &c);
    // scatter's gradient w.r.t. src is the gather of the upstream gradient
    double *dsrc = dalloc(m * d);
    B->gather_rows(dsrc, c.in, c.idx, m, d);
    check_fd("scatter dsrc", c.src, m * d, dsrc, scatter_loss, &c);
    // and scatter adds onto prior contents, touching only the indexed rows
    double *dst = copyv(c.P, rows * d);
    B->scatter_add_rows(dst, c.src, c.idx, m, d);
    for (int r = 0; r < rows; r++)
        for (int k = 0; k < d; k++) {
            double want = c.P[r * d + k];
            for (int i = 0; i < m; i++)
                if (c.idx[i] == r) want += c.src[i * d + k];
            CHECK(dst[r * d + k] == want, "scatter row %d col %d", r, k);
        }
    double *bufs[] = {c.in, c.src, c.G, c.out, c.P, din, dsrc, dst};
    for (size_t k = 0; k < sizeof bufs / sizeof *bufs; k++) B->free(bufs[k]);
    B->free(c.idx);
}

// ---- softmax cross-entropy ----------------------------------------------------------------
typedef struct {
    int m, V;
    double gs;
    int32_t *t;
    double *logits, *loss, *dl;
} ce_ctx;
static double ce_loss(void *p) {
    ce_ctx *c = p;
    B->softmax_ce(c->loss, c->dl, c->logits, c->t, c->m, c->V, c->gs);
    double s = 0;
    for (int i = 0; i < c->m; i++) s += c->loss[i];
    return s * c->gs;
}
static void test_softmax_ce(void) {
    printf("softmax_ce\n");
    const int m = 6, V = 16;
    ce_ctx c = {m, V, tu_uniform(0.1, 1.0), B->alloc(m * 4), randn(m * V, 2), dalloc(m),
                dalloc(m * V)};
    for (int i = 0; i < m; i++) c.t[i] = tu_int(0, V - 1);
    ce_loss(&c);
    for (int i = 0; i < m; i++) { // -log softmax, written out
        double z = 0;
        for (int k = 0; k < V; k++) z += exp(c.logits[i * V + k]);
        const double want = -log(exp(c.logits[i * V + c.t[i]]) / z);
        CHECK(fabs(c.loss[i] - want) < 1e-13 * (fabs(want) + 1), "ce loss[%d] %g vs %g", i,
              c.loss[i], want);
    }
    double *dl = copyv(c.dl, m * V);
    check_fd("softmax_ce dlogits", c.logits, m * V, dl, ce_loss, &c);
    B->free(c.t), B->free(c.logits), B->free(c.loss), B->free(c.dl), B->free(dl);
}

int main(void) {
    tu_seed();
    B = nv_backend_cpu_f64();
    REQUIRE(B && B->act_bytes == 8 && B->state_bytes == 8, "cpu-f64 backend");
    printf("finite differences: eps %g, |a - fd| <= %g max(|a|,|fd|) + %g\n", EPS, RTOL, ATOL);
    test_embed();
    test_layernorm();
    test_matmul(0);
    test_matmul(1);
    test_rope(10000);
    test_rope(160000);
    test_attention(0);
    test_attention(4);
    test_attention(5); // odd window: radius 2
    test_attention(2); // radius 1
    test_activations();
    test_select();
    test_softmax_ce();
    return tu_finish("test_cpu_ops_grad");
}
