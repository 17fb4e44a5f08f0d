// test_cpu_f32_f64.c - the float instance (cpu, the one that trains) against the double
// instance (cpu-f64, the one the gradient tests check against finite differences): every op,
// fed the same float-representable random inputs, gives the same outputs to 1e-5 relative:
//   |f32 - f64| <= 1e-5 * max(|f64|, rms(f64 over that output))
// (the rms floor keeps elements that are small by cancellation from reading as large
// relative errors).
#include <string.h>

#include "model/backend.h"
#include "tests/testutil.h"

#define TOL 1e-5
enum { N = 40, D = 32, H = 4, DH = 8, F = 48, V = 16, M = 12, MAXOUT = 64 };

typedef struct {
    int k;
    const char *name[MAXOUT];
    double *v[MAXOUT];
    size_t n[MAXOUT];
} outs;

typedef struct { // host inputs, shared by both runs
    int32_t tok[N], sin[N], pos[N], idx[M], tgt[M], start[8], len[8];
    int ns, max_len;
    double *x, *x2, *w, *W, *bias, *dout_d, *dout_o, *dout_3d, *qkv, *gu, *dout_f, *E, *Es,
        *logits, *prior, *rows, *m, *v, *g;
} inputs;

static double *rnd(size_t n, double s) {
    double *x = malloc(n * 8);
    for (size_t i = 0; i < n; i++) x[i] = (float)(s * tu_normal());
    return x;
}

static const nv_backend *B;
static void *up(const double *h, size_t n) {
    void *p = B->alloc(n * B->act_bytes);
    B->upload_act(p, h, n);
    return p;
}
static void *ints(const int32_t *h, size_t n) {
    void *p = B->alloc(n * 4);
    B->to_device(p, h, n * 4);
    return p;
}
static void keep(outs *o, const char *name, const void *dev, size_t n) {
    o->name[o->k] = name, o->n[o->k] = n, o->v[o->k] = malloc(n * 8);
    B->download_act(o->v[o->k], dev, n); // act == state on the CPU
    o->k++;
}

static void run_all(const inputs *in, outs *o) {
    const size_t a = B->act_bytes;
    int32_t *tok = ints(in->tok, N), *sin = ints(in->sin, N), *pos = ints(in->pos, N);
    int32_t *idx = ints(in->idx, M), *tgt = ints(in->tgt, M);
    int32_t *st = ints(in->start, in->ns), *ln = ints(in->len, in->ns);
    void *x = up(in->x, N * D), *x2 = up(in->x2, N * D), *w = up(in->w, D);
    void *out = B->alloc(N * 3 * D * a), *mean = B->alloc(N * a), *rstd = B->alloc(N * a);
    void *dout = up(in->dout_d, N * D);

    void *E = up(in->E, V * D), *Es = up(in->Es, 4 * D), *dE = B->alloc(V * D * a);
    void *dEs = B->alloc(4 * D * a);
    B->embed_fwd(out, tok, sin, E, Es, N, D), keep(o, "embed_fwd", out, N * D);
    B->embed_bwd(dE, dEs, dout, tok, sin, N, D, V);
    keep(o, "embed_bwd dE_tok", dE, V * D), keep(o, "embed_bwd dE_struct", dEs, 4 * D);

    B->layernorm_fwd(out, mean, rstd, x, w, N, D);
    keep(o, "layernorm out", out, N * D), keep(o, "layernorm mean", mean, N);
    keep(o, "layernorm rstd", rstd, N);
    void *dx = up(in->prior, N * D), *dw = up(in->w, D);
    B->layernorm_bwd(dx, dw, dout, x, w, mean, rstd, N, D);
    keep(o, "layernorm_bwd dx", dx, N * D), keep(o, "layernorm_bwd dw", dw, D);
    void *res = B->alloc(N * D * a);
    B->residual_layernorm_fwd(res, out, mean, rstd, x, x2, w, N, D);
    keep(o, "residual_ln resid", res, N * D), keep(o, "residual_ln out", out, N * D);
    keep(o, "residual_ln rstd", rstd, N);
    B->add(res, x, x2, N * D), keep(o, "add", res, N * D);

    void *W = up(in->W, 3 * D * D), *bias = up(in->bias, 3 * D), *dW = B->alloc(3 * D * D * a);
    void *db = B->alloc(3 * D * a), *dinp = B->alloc(N * D * a), *g3 = up(in->dout_3d, N * 3 * D);
    B->matmul_fwd(out, x, W, bias, N, D, 3 * D), keep(o, "matmul_fwd", out, N * 3 * D);
    B->matmul_bwd(dinp, dW, db, g3, x, W, N, D, 3 * D);
    keep(o, "matmul_bwd dinp", dinp, N * D), keep(o, "matmul_bwd dW", dW, 3 * D * D);
    keep(o, "matmul_bwd dbias", db, 3 * D);

    void *qkv = up(in->qkv, N * 3 * D);
    B->rope_fwd(qkv, pos, N, H, DH, 10000), keep(o, "rope_fwd", qkv, N * 3 * D);
    B->rope_bwd(g3, pos, N, H, DH, 160000), keep(o, "rope_bwd", g3, N * 3 * D);

    nv_attn_segs segs = {st, ln, in->ns, in->max_len};
    void *lse = B->alloc(N * H * a), *dqkv = B->alloc(N * 3 * D * a);
    static const char *names[2][3] = {
        {"attention_fwd global out", "attention_fwd global lse", "attention_bwd global dqkv"},
        {"attention_fwd local out", "attention_fwd local lse", "attention_bwd local dqkv"}};
    for (int k = 0; k < 2; k++) {
        const int window = k ? 8 : 0;
        B->attention_fwd(out, lse, qkv, &segs, N, H, DH, window);
        keep(o, names[k][0], out, N * D), keep(o, names[k][1], lse, N * H);
        B->attention_bwd(dqkv, dout, qkv, out, lse, &segs, N, H, DH, window);
        keep(o, names[k][2], dqkv, N * 3 * D);
    }

    void *gu = up(in->gu, N * 2 * F), *df = up(in->dout_f, N * F), *dgu = B->alloc(N * 2 * F * a);
    B->geglu_fwd(out, gu, N, F), keep(o, "geglu_fwd", out, N * F);
    B->geglu_bwd(dgu, df, gu, N, F), keep(o, "geglu_bwd", dgu, N * 2 * F);
    B->gelu_fwd(out, gu, N * F), keep(o, "gelu_fwd", out, N * F);
    B->gelu_bwd(dgu, df, gu, N * F), keep(o, "gelu_bwd", dgu, N * F);

    B->gather_rows(out, x, idx, M, D), keep(o, "gather_rows", out, M * D);
    void *rows = up(in->rows, M * D), *dst = up(in->prior, N * D);
    B->scatter_add_rows(dst, rows, idx, M, D), keep(o, "scatter_add_rows", dst, N * D);
    void *lg = up(in->logits, M * V), *loss = B->alloc(M * a), *dl = B->alloc(M * V * a);
    B->softmax_ce(loss, dl, lg, tgt, M, V, 0.37);
    keep(o, "softmax_ce loss", loss, M), keep(o, "softmax_ce dlogits", dl, M * V);

    const double ss = B->sumsq(W, 3 * D * D); // a host double: kept as a 1-element output
    o->name[o->k] = "sumsq", o->n[o->k] = 1, o->v[o->k] = malloc(8), o->v[o->k][0] = ss, o->k++;
    B->scale(W, 0.3, 3 * D * D), keep(o, "scale", W, 3 * D * D);
    void *m = up(in->m, D), *v = up(in->v, D), *g = up(in->g, D), *wa = B->alloc(D * a);
    B->adamw(w, m, v, g, wa, D, 1e-3, 0.9, 0.95, 1e-8, 0.1, 1 - 0.9, 1 - 0.95, 0.5);
    keep(o, "adamw w", w, D), keep(o, "adamw m", m, D), keep(o, "adamw v", v, D);

    void *ptrs[] = {tok, sin, pos, idx, tgt, st, ln, x, x2, w, out, mean, rstd, dout, E, Es,
                    dE, dEs, dx, dw, res, W, bias, dW, db, dinp, g3, qkv, lse, dqkv, gu, df,
                    dgu, rows, dst, lg, loss, dl, m, v, g, wa};
    for (size_t k = 0; k < sizeof ptrs / sizeof *ptrs; k++) B->free(ptrs[k]);
}

int main(void) {
    tu_seed();
    inputs in = {0};
    for (int i = 0; i < N; i++) in.tok[i] = tu_int(0, V - 1), in.sin[i] = tu_int(0, 3);
    for (int i = 0; i < N; i++) in.pos[i] = tu_int(0, 1000);
    for (int i = 0; i < M; i++) in.idx[i] = i * 3 + tu_int(0, 2), in.tgt[i] = tu_int(0, V - 1);
    // segments [1,14) [14,30) [31,38), pads 0, 30, 38, 39
    in.ns = 3, in.max_len = 16;
    in.start[0] = 1, in.len[0] = 13, in.start[1] = 14, in.len[1] = 16, in.start[2] = 31,
    in.len[2] = 7;
    in.x = rnd(N * D, 1), in.x2 = rnd(N * D, 1), in.w = rnd(D, 0.3), in.W = rnd(3 * D * D, 0.2);
    for (int k = 0; k < D; k++) in.w[k] = (float)(in.w[k] + 1);
    in.bias = rnd(3 * D, 1), in.dout_d = rnd(N * D, 1), in.dout_3d = rnd(N * 3 * D, 1);
    in.qkv = rnd(N * 3 * D, 1), in.gu = rnd(N * 2 * F, 1.5), in.dout_f = rnd(N * F, 1);
    in.E = rnd(V * D, 1), in.Es = rnd(4 * D, 1), in.logits = rnd(M * V, 2);
    in.prior = rnd(N * D, 1), in.rows = rnd(M * D, 1), in.m = rnd(D, 0.01), in.g = rnd(D, 0.1);
    in.v = rnd(D, 0.001);
    for (int k = 0; k < D; k++) in.v[k] = in.v[k] * in.v[k];

    outs o32 = {0}, o64 = {0};
    B = nv_backend_cpu(), run_all(&in, &o32);
    B = nv_backend_cpu_f64(), run_all(&in, &o64);
    REQUIRE(o32.k == o64.k, "output count");
    for (int k = 0; k < o64.k; k++) {
        const double *a = o32.v[k], *b = o64.v[k];
        double rms = 0, worst = 0;
        for (size_t i = 0; i < o64.n[k]; i++) rms += b[i] * b[i] / o64.n[k];
        rms = sqrt(rms);
        size_t at = 0;
        for (size_t i = 0; i < o64.n[k]; i++) {
            const double e = fabs(a[i] - b[i]) / fmax(fmax(fabs(b[i]), rms), 1e-300);
            if (e > worst) worst = e, at = i;
        }
        printf("  %-28s %5zu values, worst rel %.2e\n", o64.name[k], o64.n[k], worst);
        CHECK(worst <= TOL, "%s[%zu]: f32 %.9g vs f64 %.9g", o64.name[k], at, a[at], b[at]);
        free(o32.v[k]), free(o64.v[k]);
    }
    double *ins[] = {in.x, in.x2, in.w, in.W, in.bias, in.dout_d, in.dout_3d, in.qkv, in.gu,
                     in.dout_f, in.E, in.Es, in.logits, in.prior, in.rows, in.m, in.g, in.v};
    for (size_t k = 0; k < sizeof ins / sizeof *ins; k++) free(ins[k]);
    return tu_finish("test_cpu_f32_f64");
}
