// test_cuda_ops.c - every op of the CUDA backend against cpu-bf16, its twin on the CPU (same
// bf16 act / fp32 state types, same rounding points: model/backend.h), on identical, fresh
// random inputs. Outputs are poisoned (all-ones bytes: NaN in bf16 and fp32) before every
// run; accumulated outputs start from the same random values. Per element,
//   |cuda - twin| <= a |twin| + b max|twin over the tensor|:
//   act outputs   a = 2^-7 (one bf16 ulp: both round the same value, computed in another
//                 fp32 order, once), b = 1e-6 elementwise, 2^-10 for reductions (GEMMs,
//                 norms, attention: cancellation near zero, and one internal P / dS rounding
//                 that lands on the other side of a boundary)
//   state outputs a = b = 1e-5 (fp32 sums in another order), lse b = 1e-4 (fast exp)
// Also at the 1.6B config's shapes: its GEMMs (M = 16384; K 2048 / 5440; N 6144, 10880,
// 2048; rows and columns sampled for the CPU side) and attention with 32 heads of 64 and 16
// of 128, segments longer than 2 window + 64, odd lengths, many per row; and that none of
// those GEMMs takes the plain fallback kernel.
// Determinism: every backward runs twice from the same state and must give the same bits.
// Exits 77 (meson: skipped) when nv_backend_cuda() returns NULL. NVWA_TEST_REHEARSE=1 runs it
// without a GPU with a second cpu-bf16 standing in (1.6B GEMMs at M = 512): the test's own
// code is then exercised on CPU, every comparison must come out exact.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/backend.h"
#include "model/cpu/bf16.h"
#include "model/cuda/cuda_api.h"
#include "tests/testutil.h"

// tolerances (a, b) of the header; the names say which outputs they are for
#define TOL_EW 0.0078125, 1e-6   // act, elementwise
#define TOL_BF16 0.0078125, 9.765625e-4 // act, reductions
#define TOL_F32 1e-5, 1e-5       // state
#define TOL_LSE 1e-5, 1e-4       // attention lse

static const nv_backend *C, *G; // cpu-bf16 (the twin), CUDA under test

// host bf16 rounding (nearest even), as the CUDA upload does
static double bf16_round(double x) { return nv_bf16_round((float)x); }

static double *rnd(size_t n, double mean, double sd, int act) {
    double *h = malloc((n ? n : 1) * sizeof *h);
    REQUIRE(h, "out of memory");
    for (size_t i = 0; i < n; i++) {
        h[i] = mean + sd * tu_normal();
        if (act) h[i] = bf16_round(h[i]);
    }
    return h;
}

static size_t esize(const nv_backend *b, int state) { return state ? b->state_bytes : b->act_bytes; }

static void poison(const nv_backend *b, void *p, size_t n, int state) {
    size_t bytes = n * esize(b, state);
    unsigned char *h = malloc(bytes ? bytes : 1);
    REQUIRE(h, "out of memory");
    memset(h, 0xff, bytes);
    b->to_device(p, h, bytes);
    free(h);
}

static void put(const nv_backend *b, void *p, const double *h, size_t n, int state) {
    if (state) b->upload_state(p, h, n);
    else b->upload_act(p, h, n);
}

// a tensor of n elements on backend b: uploaded from h, or poisoned when h is NULL
static void *mk(const nv_backend *b, size_t n, int state, const double *h) {
    void *p = b->alloc(n * esize(b, state));
    REQUIRE(p, "alloc failed");
    if (h) put(b, p, h, n, state);
    else poison(b, p, n, state);
    return p;
}

static int32_t *mki(const nv_backend *b, const int32_t *h, size_t n) {
    int32_t *p = b->alloc((n ? n : 1) * sizeof(int32_t));
    b->to_device(p, h, n * sizeof(int32_t));
    return p;
}

static double *get(const nv_backend *b, const void *p, size_t n, int state) {
    double *h = malloc((n ? n : 1) * sizeof *h);
    REQUIRE(h, "out of memory");
    if (state) b->download_state(h, p, n);
    else b->download_act(h, p, n);
    return h;
}

// compare a [rows, w] block at column c0 of row-major [rows, ld] tensors, per element
// |cuda - cpu| <= a |cpu| + b max|cpu| + cs scale[i] (scale: NULL, or an error scale per element
// of the full tensor, for ops whose rounding error is not relative to their result)
static void cmp_core(const char *name, const void *pc, const void *pg, size_t rows, size_t ld,
                     size_t c0, size_t w, int state, double a, double b, const double *scale,
                     double cs) {
    double *hc = get(C, pc, rows * ld, state), *hg = get(G, pg, rows * ld, state);
    double amax = 0, worst = 0;
    size_t bad = 0, nonfin = 0, at = 0;
    for (size_t r = 0; r < rows; r++)
        for (size_t c = c0; c < c0 + w; c++) amax = fmax(amax, fabs(hc[r * ld + c]));
    for (size_t r = 0; r < rows; r++)
        for (size_t c = c0; c < c0 + w; c++) {
            const size_t i = r * ld + c;
            if (!isfinite(hg[i]) || !isfinite(hc[i])) {
                if (!nonfin++) at = i;
                continue;
            }
            const double lim = a * fabs(hc[i]) + b * amax + (scale ? cs * scale[i] : 0),
                         e = fabs(hc[i] - hg[i]);
            if (e > lim && !bad++ && !nonfin) at = i;
            if (e / fmax(lim, 1e-300) > worst) worst = e / fmax(lim, 1e-300);
        }
    printf("  %-28s max|ref| %-10.3g worst err/tol %-8.3g (a %.1e b %.1e)%s\n", name, amax, worst,
           a, b, nonfin ? "  NON-FINITE" : bad ? "  FAIL" : "");
    CHECK(nonfin == 0, "%s: %zu non-finite values (first at %zu: cpu %g cuda %g)", name, nonfin, at,
          hc[at], hg[at]);
    CHECK(bad == 0, "%s: %zu elements beyond tolerance (first at %zu: cpu %.9g cuda %.9g)", name, bad,
          at, hc[at], hg[at]);
    free(hc);
    free(hg);
}

static void cmp_block(const char *name, const void *pc, const void *pg, size_t rows, size_t ld,
                      size_t c0, size_t w, int state, double a, double b) {
    cmp_core(name, pc, pg, rows, ld, c0, w, state, a, b, NULL, 0);
}

static void cmp(const char *name, const void *pc, const void *pg, size_t n, int state, double a,
                double b) {
    cmp_block(name, pc, pg, 1, n, 0, n, state, a, b);
}

// same bits twice: the raw bytes of two CUDA results
static void same_bits(const char *name, const void *a, const void *b, size_t n, int state) {
    size_t bytes = n * esize(G, state);
    unsigned char *ha = malloc(bytes ? bytes : 1), *hb = malloc(bytes ? bytes : 1);
    G->to_host(ha, a, bytes);
    G->to_host(hb, b, bytes);
    int same = memcmp(ha, hb, bytes) == 0;
    printf("  %-28s %s\n", name, same ? "deterministic" : "DIFFERS between runs");
    CHECK(same, "%s: two runs of the backward gave different bits", name);
    free(ha);
    free(hb);
}

// a pair of tensors (CPU, CUDA) holding the same values
typedef struct { void *c, *g; size_t n; int state; } pair;
static pair P(size_t n, int state, const double *h) {
    pair p = {mk(C, n, state, h), mk(G, n, state, h), n, state};
    return p;
}
static void repoison(pair p) {
    poison(C, p.c, p.n, p.state);
    poison(G, p.g, p.n, p.state);
}
static void reput(pair p, const double *h) {
    put(C, p.c, h, p.n, p.state);
    put(G, p.g, h, p.n, p.state);
}
static void drop(pair p) {
    C->free(p.c);
    G->free(p.g);
}
typedef struct { int32_t *c, *g; } ipair;
static ipair PI(const int32_t *h, size_t n) {
    ipair p = {mki(C, h, n), mki(G, h, n)};
    return p;
}
static void dropi(ipair p) {
    C->free(p.c);
    G->free(p.g);
}

// ---------------------------------------------------------------------------------------

static void test_memory(void) {
    printf("memory\n");
    size_t n = 1001;
    double *h = rnd(n, 0, 3, 0);
    void *a = mk(G, n, 0, h);
    double *back = get(G, a, n, 0);
    int ok = 1;
    for (size_t i = 0; i < n; i++) ok &= back[i] == bf16_round(h[i]);
    CHECK(ok, "upload_act/download_act is not bf16 rounding");
    void *s = mk(G, n, 1, h);
    double *bs = get(G, s, n, 1);
    ok = 1;
    for (size_t i = 0; i < n; i++) ok &= bs[i] == (double)(float)h[i];
    CHECK(ok, "upload_state/download_state is not fp32 rounding");
    void *z = G->alloc(n * 4); // alloc promises zeroed memory
    double *bz = get(G, z, n, 1);
    ok = 1;
    for (size_t i = 0; i < n; i++) ok &= bz[i] == 0.0;
    CHECK(ok, "alloc did not zero");
    // state_to_act
    pair st = P(n, 1, h), sa = P(n, 0, NULL);
    C->state_to_act(sa.c, st.c, n);
    G->state_to_act(sa.g, st.g, n);
    cmp("state_to_act", sa.c, sa.g, n, 0, TOL_EW);
    // add
    double *h2 = rnd(n, 0, 1, 1), *h3 = rnd(n, 0, 1, 1);
    pair x = P(n, 0, h2), y = P(n, 0, h3), o = P(n, 0, NULL);
    C->add(o.c, x.c, y.c, n);
    G->add(o.g, x.g, y.g, n);
    cmp("add", o.c, o.g, n, 0, TOL_EW);
    G->free(a); G->free(s); G->free(z);
    drop(st); drop(sa); drop(x); drop(y); drop(o);
    free(h); free(back); free(bs); free(bz); free(h2); free(h3);
}

static void test_embed(void) {
    printf("embed\n");
    const int n = 1777, d = 192, V = 16;
    int32_t *tok = malloc(n * 4), *sin = malloc(n * 4);
    for (int i = 0; i < n; i++) {
        tok[i] = tu_int(0, V - 1);
        sin[i] = tu_int(0, 3);
    }
    ipair t = PI(tok, n), s = PI(sin, n);
    double *het = rnd((size_t)V * d, 0, 1, 1), *hes = rnd(4 * (size_t)d, 0, 1, 1);
    pair Et = P((size_t)V * d, 0, het), Es = P(4 * (size_t)d, 0, hes), out = P((size_t)n * d, 0, NULL);
    for (int with_struct = 0; with_struct < 2; with_struct++) {
        repoison(out);
        C->embed_fwd(out.c, t.c, s.c, Et.c, with_struct ? Es.c : NULL, n, d);
        G->embed_fwd(out.g, t.g, s.g, Et.g, with_struct ? Es.g : NULL, n, d);
        cmp(with_struct ? "embed_fwd (tok+struct)" : "embed_fwd (tok)", out.c, out.g, (size_t)n * d, 0, TOL_EW);
    }
    double *hd = rnd((size_t)n * d, 0, 1, 1), *h0t = rnd((size_t)V * d, 0, 1, 0), *h0s = rnd(4 * (size_t)d, 0, 1, 0);
    pair dout = P((size_t)n * d, 0, hd), dEt = P((size_t)V * d, 1, h0t), dEs = P(4 * (size_t)d, 1, h0s);
    C->embed_bwd(dEt.c, dEs.c, dout.c, t.c, s.c, n, d, V);
    G->embed_bwd(dEt.g, dEs.g, dout.g, t.g, s.g, n, d, V);
    cmp("embed_bwd dE_tok", dEt.c, dEt.g, (size_t)V * d, 1, TOL_F32);
    cmp("embed_bwd dE_struct", dEs.c, dEs.g, 4 * (size_t)d, 1, TOL_F32);
    void *e2 = mk(G, (size_t)V * d, 1, h0t), *s2 = mk(G, 4 * (size_t)d, 1, h0s);
    G->embed_bwd(e2, s2, dout.g, t.g, s.g, n, d, V);
    same_bits("embed_bwd dE_tok", dEt.g, e2, (size_t)V * d, 1);
    same_bits("embed_bwd dE_struct", dEs.g, s2, 4 * (size_t)d, 1);
    G->free(e2); G->free(s2);
    dropi(t); dropi(s); drop(Et); drop(Es); drop(out); drop(dout); drop(dEt); drop(dEs);
    free(tok); free(sin); free(het); free(hes); free(hd); free(h0t); free(h0s);
}

static void test_layernorm(void) {
    printf("layernorm\n");
    const int n = 333, d = 320;
    const size_t nd = (size_t)n * d;
    double *hx = rnd(nd, 0.5, 1.5, 1), *hw = rnd(d, 1, 0.2, 1), *hb = rnd(nd, 0, 1, 1);
    pair x = P(nd, 0, hx), w = P(d, 0, hw), b = P(nd, 0, hb);
    pair out = P(nd, 0, NULL), mean = P(n, 1, NULL), rstd = P(n, 1, NULL), res = P(nd, 0, NULL);
    C->layernorm_fwd(out.c, mean.c, rstd.c, x.c, w.c, n, d);
    G->layernorm_fwd(out.g, mean.g, rstd.g, x.g, w.g, n, d);
    cmp("layernorm_fwd out", out.c, out.g, nd, 0, TOL_BF16);
    cmp("layernorm_fwd mean", mean.c, mean.g, n, 1, TOL_F32);
    cmp("layernorm_fwd rstd", rstd.c, rstd.g, n, 1, TOL_F32);
    repoison(out); repoison(mean); repoison(rstd);
    C->residual_layernorm_fwd(res.c, out.c, mean.c, rstd.c, x.c, b.c, w.c, n, d);
    G->residual_layernorm_fwd(res.g, out.g, mean.g, rstd.g, x.g, b.g, w.g, n, d);
    cmp("residual_ln resid", res.c, res.g, nd, 0, TOL_EW);
    cmp("residual_ln out", out.c, out.g, nd, 0, TOL_BF16);
    // both norms read the bf16-rounded residual they stored
    cmp("residual_ln mean", mean.c, mean.g, n, 1, TOL_F32);
    cmp("residual_ln rstd", rstd.c, rstd.g, n, 1, TOL_F32);
    // backward from identical statistics (the CPU's, given to both)
    C->layernorm_fwd(out.c, mean.c, rstd.c, x.c, w.c, n, d);
    double *hm = get(C, mean.c, n, 1), *hr = get(C, rstd.c, n, 1);
    reput(mean, hm);
    reput(rstd, hr);
    double *hdo = rnd(nd, 0, 1, 1), *hdx0 = rnd(nd, 0, 1, 1), *hdw0 = rnd(d, 0, 1, 0);
    pair dout = P(nd, 0, hdo), dx = P(nd, 0, hdx0), dw = P(d, 1, hdw0);
    C->layernorm_bwd(dx.c, dw.c, dout.c, x.c, w.c, mean.c, rstd.c, n, d);
    G->layernorm_bwd(dx.g, dw.g, dout.g, x.g, w.g, mean.g, rstd.g, n, d);
    cmp("layernorm_bwd dx (+=)", dx.c, dx.g, nd, 0, TOL_BF16);
    cmp("layernorm_bwd dw (+=)", dw.c, dw.g, d, 1, TOL_F32);
    void *dx2 = mk(G, nd, 0, hdx0), *dw2 = mk(G, d, 1, hdw0);
    G->layernorm_bwd(dx2, dw2, dout.g, x.g, w.g, mean.g, rstd.g, n, d);
    same_bits("layernorm_bwd dx", dx.g, dx2, nd, 0);
    same_bits("layernorm_bwd dw", dw.g, dw2, d, 1);
    G->free(dx2); G->free(dw2);
    drop(x); drop(w); drop(b); drop(out); drop(mean); drop(rstd); drop(res); drop(dout); drop(dx); drop(dw);
    free(hx); free(hw); free(hb); free(hm); free(hr); free(hdo); free(hdx0); free(hdw0);
}

static void test_matmul_shape(int n, int in, int o, int with_bias) {
    char name[96];
    const size_t ni = (size_t)n * in, no = (size_t)n * o, oi = (size_t)o * in;
    printf("matmul n=%d in=%d out=%d%s\n", n, in, o, with_bias ? " +bias" : "");
    double *hx = rnd(ni, 0, 1, 1), *hW = rnd(oi, 0, 0.05, 1), *hb = rnd(o, 0, 1, 1);
    pair x = P(ni, 0, hx), W = P(oi, 0, hW), b = P(o, 0, hb), out = P(no, 0, NULL);
    for (int rep = 0; rep < 2; rep++) { // the second call reuses the cached plan
        repoison(out);
        C->matmul_fwd(out.c, x.c, W.c, with_bias ? b.c : NULL, n, in, o);
        G->matmul_fwd(out.g, x.g, W.g, with_bias ? b.g : NULL, n, in, o);
        snprintf(name, sizeof name, "matmul_fwd out (call %d)", rep + 1);
        cmp(name, out.c, out.g, no, 0, TOL_BF16);
    }
    double *hdo = rnd(no, 0, 1, 1), *hdW0 = rnd(oi, 0, 1, 0), *hdb0 = rnd(o, 0, 1, 0);
    pair dout = P(no, 0, hdo), dx = P(ni, 0, NULL), dW = P(oi, 1, hdW0), db = P(o, 1, hdb0);
    C->matmul_bwd(dx.c, dW.c, with_bias ? db.c : NULL, dout.c, x.c, W.c, n, in, o);
    G->matmul_bwd(dx.g, dW.g, with_bias ? db.g : NULL, dout.g, x.g, W.g, n, in, o);
    cmp("matmul_bwd dinp", dx.c, dx.g, ni, 0, TOL_BF16);
    cmp("matmul_bwd dW (+=)", dW.c, dW.g, oi, 1, TOL_F32);
    if (with_bias) cmp("matmul_bwd dbias (+=)", db.c, db.g, o, 1, TOL_F32);
    void *dx2 = mk(G, ni, 0, NULL), *dW2 = mk(G, oi, 1, hdW0), *db2 = mk(G, o, 1, hdb0);
    G->matmul_bwd(dx2, dW2, with_bias ? db2 : NULL, dout.g, x.g, W.g, n, in, o);
    same_bits("matmul_bwd dinp", dx.g, dx2, ni, 0);
    same_bits("matmul_bwd dW", dW.g, dW2, oi, 1);
    if (with_bias) same_bits("matmul_bwd dbias", db.g, db2, o, 1);
    G->free(dx2); G->free(dW2); G->free(db2);
    drop(x); drop(W); drop(b); drop(out); drop(dout); drop(dx); drop(dW); drop(db);
    free(hx); free(hW); free(hb); free(hdo); free(hdW0); free(hdb0);
}

static void test_rope(void) {
    printf("rope\n");
    const int n = 300, H = 3, dh = 64, d = H * dh;
    const size_t sz = (size_t)n * 3 * d;
    int32_t *pos = malloc(n * 4);
    for (int i = 0, p = 0; i < n; i++, p++) { // positions restart per sequence
        if (tu_int(0, 60) == 0) p = 0;
        pos[i] = p + (i > n / 2 ? 5000 : 0); // and some long-context angles
    }
    ipair ps = PI(pos, n);
    double *h = rnd(sz, 0, 1, 1);
    pair x = P(sz, 0, h);
    C->rope_fwd(x.c, ps.c, n, H, dh, 160000.0);
    G->rope_fwd(x.g, ps.g, n, H, dh, 160000.0);
    cmp_block("rope_fwd q", x.c, x.g, n, 3 * d, 0, d, 0, TOL_EW);
    cmp_block("rope_fwd k", x.c, x.g, n, 3 * d, d, d, 0, TOL_EW);
    cmp_block("rope_fwd v (untouched)", x.c, x.g, n, 3 * d, 2 * d, d, 0, 0, 0);
    reput(x, h);
    C->rope_bwd(x.c, ps.c, n, H, dh, 10000.0);
    G->rope_bwd(x.g, ps.g, n, H, dh, 10000.0);
    cmp("rope_bwd", x.c, x.g, sz, 0, TOL_EW);
    dropi(ps); drop(x);
    free(pos); free(h);
}

// attention over the given packed segments (n tokens, pads where no segment is), forward
// then backward from the twin's own saved out and lse, both against the twin; dout is 0.5
// at pads (whatever the model leaves there); the GPU's backward runs twice: same bits
static void attention_compare(const int32_t *st, const int32_t *ln, int ns, int n, int H, int dh,
                              int window, double qsd) {
    int max_len = 0;
    for (int s = 0; s < ns; s++) max_len = ln[s] > max_len ? ln[s] : max_len;
    const int d = H * dh;
    const size_t sq = (size_t)n * 3 * d, so = (size_t)n * d, sl = (size_t)n * H;
    ipair S = PI(st, ns), L = PI(ln, ns);
    nv_attn_segs sc = {S.c, L.c, ns, max_len}, sg = {S.g, L.g, ns, max_len};
    double *hq = rnd(sq, 0, qsd, 1);
    pair qkv = P(sq, 0, hq), out = P(so, 0, NULL), lse = P(sl, 1, NULL);
    C->attention_fwd(out.c, lse.c, qkv.c, &sc, n, H, dh, window);
    G->attention_fwd(out.g, lse.g, qkv.g, &sg, n, H, dh, window);
    cmp("attention_fwd out", out.c, out.g, so, 0, TOL_BF16);
    cmp("attention_fwd lse", lse.c, lse.g, sl, 1, TOL_LSE);
    double *ho = get(C, out.c, so, 0), *hl = get(C, lse.c, sl, 1);
    reput(out, ho);
    reput(lse, hl);
    double *hdo = rnd(so, 0, 1, 1);
    for (int s = 0, i = 0; s <= ns; s++) { // the pads before segment s (s = ns: after the last)
        const int end = s < ns ? st[s] : n;
        for (; i < end; i++)
            for (int c = 0; c < d; c++) hdo[(size_t)i * d + c] = 0.5;
        if (s < ns) i = st[s] + ln[s];
    }
    pair dout = P(so, 0, hdo), dqkv = P(sq, 0, NULL);
    C->attention_bwd(dqkv.c, dout.c, qkv.c, out.c, lse.c, &sc, n, H, dh, window);
    G->attention_bwd(dqkv.g, dout.g, qkv.g, out.g, lse.g, &sg, n, H, dh, window);
    cmp_block("attention_bwd dq", dqkv.c, dqkv.g, n, 3 * d, 0, d, 0, TOL_BF16);
    cmp_block("attention_bwd dk", dqkv.c, dqkv.g, n, 3 * d, d, d, 0, TOL_BF16);
    cmp_block("attention_bwd dv", dqkv.c, dqkv.g, n, 3 * d, 2 * d, d, 0, TOL_BF16);
    void *d2 = mk(G, sq, 0, NULL);
    G->attention_bwd(d2, dout.g, qkv.g, out.g, lse.g, &sg, n, H, dh, window);
    same_bits("attention_bwd dqkv", dqkv.g, d2, sq, 0);
    G->free(d2);
    dropi(S); dropi(L); drop(qkv); drop(out); drop(lse); drop(dout); drop(dqkv);
    free(hq); free(ho); free(hl); free(hdo);
}

// packed segments with pads between and after them; lengths cover partial, exact and
// multiple 64-tiles and a single-token segment
static void test_attention_case(int H, int dh, int window) {
    printf("attention H=%d dh=%d window=%d\n", H, dh, window);
    const int lens[] = {150, 64, 1, 130, 7, 65};
    const int gaps[] = {0, 2, 3, 1, 0, 4};
    const int ns = 6;
    int32_t st[6], ln[6];
    int n = 0;
    for (int s = 0; s < ns; s++) {
        n += gaps[s];
        st[s] = n;
        ln[s] = lens[s];
        n += lens[s];
    }
    attention_compare(st, ln, ns, n + 5, H, dh, window, 1.5); // and 5 trailing pads
}

static void test_activations(void) {
    printf("activations\n");
    const int n = 257, f = 384;
    const size_t nf = (size_t)n * f;
    double *hgu = rnd(2 * nf, 0, 2, 1), *hdo = rnd(nf, 0, 1, 1);
    pair gu = P(2 * nf, 0, hgu), out = P(nf, 0, NULL), dout = P(nf, 0, hdo), dgu = P(2 * nf, 0, NULL);
    C->geglu_fwd(out.c, gu.c, n, f);
    G->geglu_fwd(out.g, gu.g, n, f);
    cmp("geglu_fwd", out.c, out.g, nf, 0, TOL_EW);
    C->geglu_bwd(dgu.c, dout.c, gu.c, n, f);
    G->geglu_bwd(dgu.g, dout.g, gu.g, n, f);
    // gelu' = 0.5 (1 + t) + 0.5 x (1 - t^2) k (...) cancels near x = -0.75, and gelu(x) =
    // 0.5 x (1 + t) near large negative x: there the twins differ by their fp32 tanh (a few
    // 1e-7), times the factors outside it, not relative to the result. EW_FN bounds that
    // error: 16x the accurate tanh's, 16x below what tanh.approx.f32 gives (2.5e-4).
    const double EW_FN = 1.0 / 65536;
    double *sgu = malloc(2 * nf * sizeof *sgu), *sg = malloc(nf * sizeof *sg);
    REQUIRE(sgu && sg, "out of memory");
    for (int r = 0; r < n; r++)
        for (int c = 0; c < f; c++) {
            const double go = fabs(hdo[(size_t)r * f + c]), g = hgu[(size_t)r * 2 * f + c],
                         u = hgu[(size_t)r * 2 * f + f + c];
            sgu[(size_t)r * 2 * f + c] = go * fabs(u) * (1 + fabs(g));    // dgate
            sgu[(size_t)r * 2 * f + f + c] = go * (1 + fabs(g));          // dup
        }
    for (size_t i = 0; i < nf; i++) sg[i] = fabs(hdo[i]) * (1 + fabs(hgu[i]));
    cmp_core("geglu_bwd dgate", dgu.c, dgu.g, n, 2 * f, 0, f, 0, TOL_EW, sgu, EW_FN);
    cmp_core("geglu_bwd dup", dgu.c, dgu.g, n, 2 * f, f, f, 0, TOL_EW, sgu, EW_FN);
    repoison(out);
    C->gelu_fwd(out.c, gu.c, nf);
    G->gelu_fwd(out.g, gu.g, nf);
    cmp("gelu_fwd", out.c, out.g, nf, 0, TOL_EW);
    repoison(dgu);
    C->gelu_bwd(dgu.c, dout.c, gu.c, nf);
    G->gelu_bwd(dgu.g, dout.g, gu.g, nf);
    cmp_core("gelu_bwd", dgu.c, dgu.g, 1, nf, 0, nf, 0, TOL_EW, sg, EW_FN);
    drop(gu); drop(out); drop(dout); drop(dgu);
    free(hgu); free(hdo); free(sgu); free(sg);
}

static void test_select(void) {
    printf("select\n");
    const int n = 500, d = 96, m = 77;
    int32_t *idx = malloc(m * 4);
    int *used = calloc(n, sizeof(int));
    for (int i = 0; i < m; i++) { // distinct indices
        int k;
        do k = tu_int(0, n - 1); while (used[k]);
        used[k] = 1;
        idx[i] = k;
    }
    ipair I = PI(idx, m);
    double *hin = rnd((size_t)n * d, 0, 1, 1), *hs = rnd((size_t)m * d, 0, 1, 1);
    pair in = P((size_t)n * d, 0, hin), out = P((size_t)m * d, 0, NULL), src = P((size_t)m * d, 0, hs);
    C->gather_rows(out.c, in.c, I.c, m, d);
    G->gather_rows(out.g, in.g, I.g, m, d);
    cmp("gather_rows", out.c, out.g, (size_t)m * d, 0, 0, 0); // a copy: exact
    C->scatter_add_rows(in.c, src.c, I.c, m, d);
    G->scatter_add_rows(in.g, src.g, I.g, m, d);
    cmp("scatter_add_rows (+=)", in.c, in.g, (size_t)n * d, 0, TOL_EW);
    for (int V = 3; V <= 16; V += 13) {
        const int mm = 333;
        int32_t *tg = malloc(mm * 4);
        for (int i = 0; i < mm; i++) tg[i] = tu_int(0, V - 1);
        ipair T = PI(tg, mm);
        double *hz = rnd((size_t)mm * V, 0, 3, 1);
        pair z = P((size_t)mm * V, 0, hz), loss = P(mm, 1, NULL), dz = P((size_t)mm * V, 0, NULL);
        C->softmax_ce(loss.c, dz.c, z.c, T.c, mm, V, 1.0 / 1000);
        G->softmax_ce(loss.g, dz.g, z.g, T.g, mm, V, 1.0 / 1000);
        cmp(V == 3 ? "softmax_ce loss (V=3)" : "softmax_ce loss (V=16)", loss.c, loss.g, mm, 1, TOL_F32);
        cmp(V == 3 ? "softmax_ce dlogits (V=3)" : "softmax_ce dlogits (V=16)", dz.c, dz.g, (size_t)mm * V, 0, TOL_BF16);
        dropi(T); drop(z); drop(loss); drop(dz);
        free(tg); free(hz);
    }
    dropi(I); drop(in); drop(out); drop(src);
    free(idx); free(used); free(hin); free(hs);
}

static void test_optim(void) {
    printf("optim\n");
    const size_t n = 300007;
    double *hx = rnd(n, 0, 1, 0);
    pair x = P(n, 1, hx);
    double sc = C->sumsq(x.c, n), sg = G->sumsq(x.g, n), sg2 = G->sumsq(x.g, n);
    printf("  %-28s cpu %.17g cuda %.17g rel %.3g\n", "sumsq", sc, sg, tu_relerr(sc, sg));
    CHECK(tu_relerr(sc, sg) <= 1e-12, "sumsq: cpu %.17g cuda %.17g", sc, sg);
    CHECK(sg == sg2, "sumsq not deterministic: %.17g vs %.17g", sg, sg2);
    CHECK(G->sumsq(x.g, 1) == (double)(float)hx[0] * (float)hx[0], "sumsq of one element");
    C->scale(x.c, 0.37, n);
    G->scale(x.g, 0.37, n);
    cmp("scale", x.c, x.g, n, 1, TOL_F32);
    CHECK(isfinite(G->sumsq(x.g, n)), "non-finite sum of squares on finite data");
    double *bad = malloc(n * sizeof *bad);
    memcpy(bad, hx, n * sizeof *bad);
    size_t at = (size_t)tu_int(0, (int)n - 1);
    bad[at] = NAN;
    reput(x, bad);
    CHECK(!isfinite(G->sumsq(x.g, n)) && !isfinite(C->sumsq(x.c, n)), "NaN at %zu not found", at);
    bad[at] = -INFINITY;
    reput(x, bad);
    CHECK(!isfinite(G->sumsq(x.g, n)), "-Inf at %zu not found", at);
    // AdamW, step 3
    const size_t k = 100003;
    double *hw = rnd(k, 0, 0.05, 0), *hm = rnd(k, 0, 0.01, 0), *hv = rnd(k, 0, 1e-4, 0), *hg = rnd(k, 0, 0.02, 0);
    for (size_t i = 0; i < k; i++) hv[i] = fabs(hv[i]);
    pair w = P(k, 1, hw), m = P(k, 1, hm), v = P(k, 1, hv), g = P(k, 1, hg), wa = P(k, 0, NULL);
    const double b1 = 0.9, b2 = 0.95, bc1 = 1 - b1 * b1 * b1, bc2 = 1 - b2 * b2 * b2;
    C->adamw(w.c, m.c, v.c, g.c, wa.c, k, 3e-4, b1, b2, 1e-8, 0.1, bc1, bc2, 0.5);
    G->adamw(w.g, m.g, v.g, g.g, wa.g, k, 3e-4, b1, b2, 1e-8, 0.1, bc1, bc2, 0.5);
    cmp("adamw w", w.c, w.g, k, 1, TOL_F32);
    cmp("adamw m", m.c, m.g, k, 1, TOL_F32);
    cmp("adamw v", v.c, v.g, k, 1, TOL_F32);
    cmp("adamw w_act (bf16)", wa.c, wa.g, k, 0, TOL_EW);
    drop(x); drop(w); drop(m); drop(v); drop(g); drop(wa);
    free(hx); free(bad); free(hw); free(hm); free(hv); free(hg);
}

// ---------------------------------------------------------------------------------------
// the 1.6B config's shapes (configs/1.6b.ini: d 2048, f 5440, 32 heads; micro-batch 16 x 1024)

// random bf16 rows picked from [0, n): the CPU side computes only these
static int *pick(int n, int k) {
    int *r = malloc(k * sizeof *r);
    for (int i = 0; i < k; i++) r[i] = tu_int(0, n - 1);
    return r;
}

// out[M,N] = x[M,K] W[N,K]^T, dinp = dout W, dW += dout^T x on the GPU in full; the twin
// computes sampled rows of out and dinp and sampled rows of dW
static void test_matmul_big(int M, int K, int N) {
    printf("matmul at 1.6B shape M=%d K=%d N=%d (sampled rows on the CPU)\n", M, K, N);
    const int S = 48;
    const size_t MK = (size_t)M * K, nk = (size_t)N * K, mn = (size_t)M * N;
    double *hx = rnd(MK, 0, 1, 1), *hW = rnd(nk, 0, 0.02, 1), *hdo = rnd(mn, 0, 1, 1);
    void *x = mk(G, MK, 0, hx), *W = mk(G, nk, 0, hW), *dout = mk(G, mn, 0, hdo);
    void *out = mk(G, mn, 0, NULL), *dx = mk(G, MK, 0, NULL), *dW = G->alloc(nk * 4);
    const long fb0 = nv_cuda_gemm_fallbacks();
    G->matmul_fwd(out, x, W, NULL, M, K, N);
    G->matmul_bwd(dx, dW, NULL, dout, x, W, M, K, N);
    CHECK(nv_cuda_gemm_fallbacks() == fb0, "a 1.6B-shape GEMM took the plain fallback kernel");
    int *rows = pick(M, S), *cols = pick(N, S);
    double *sx = malloc((size_t)S * K * 8), *sd = malloc((size_t)S * N * 8);
    double *dsub = malloc((size_t)M * S * 8), *wsub = malloc((size_t)S * K * 8);
    for (int i = 0; i < S; i++) {
        memcpy(sx + (size_t)i * K, hx + (size_t)rows[i] * K, K * 8);
        memcpy(sd + (size_t)i * N, hdo + (size_t)rows[i] * N, N * 8);
        memcpy(wsub + (size_t)i * K, hW + (size_t)cols[i] * K, K * 8);
    }
    for (int r = 0; r < M; r++)
        for (int i = 0; i < S; i++) dsub[(size_t)r * S + i] = hdo[(size_t)r * N + cols[i]];
    void *cx = mk(C, (size_t)S * K, 0, sx), *cW = mk(C, nk, 0, hW), *cd = mk(C, (size_t)S * N, 0, sd);
    void *cout = mk(C, (size_t)S * N, 0, NULL), *cdx = mk(C, (size_t)S * K, 0, NULL);
    void *cfull = mk(C, MK, 0, hx), *cds = mk(C, (size_t)M * S, 0, dsub), *cdW = C->alloc((size_t)S * K * 4);
    C->matmul_fwd(cout, cx, cW, NULL, S, K, N);
    C->matmul_bwd(cdx, NULL, NULL, cd, cx, cW, S, K, N);
    C->matmul_bwd(NULL, cdW, NULL, cds, cfull, cW, M, K, S);
    double *sabs; // sum over rows of |dout x| for the sampled dW rows
    {
        double *ax = malloc(MK * 8), *ad = malloc((size_t)M * S * 8);
        REQUIRE(ax && ad, "out of memory");
        for (size_t i = 0; i < MK; i++) ax[i] = fabs(hx[i]);
        for (size_t i = 0; i < (size_t)M * S; i++) ad[i] = fabs(dsub[i]);
        void *cax = mk(C, MK, 0, ax), *cad = mk(C, (size_t)M * S, 0, ad);
        void *cs = C->alloc((size_t)S * K * 4); // zeroed, as cdW: dW accumulates into it
        C->matmul_bwd(NULL, cs, NULL, cad, cax, cW, M, K, S);
        sabs = get(C, cs, (size_t)S * K, 1);
        C->free(cax), C->free(cad), C->free(cs);
        free(ax), free(ad);
    }
    // the GPU's sampled rows, gathered on the host into the twin's layout
    double *gout = get(G, out, mn, 0), *gdx = get(G, dx, MK, 0), *gdW = get(G, dW, nk, 1);
    double *t1 = malloc((size_t)S * N * 8), *t2 = malloc((size_t)S * K * 8), *t3 = malloc((size_t)S * K * 8);
    for (int i = 0; i < S; i++) {
        memcpy(t1 + (size_t)i * N, gout + (size_t)rows[i] * N, N * 8);
        memcpy(t2 + (size_t)i * K, gdx + (size_t)rows[i] * K, K * 8);
        memcpy(t3 + (size_t)i * K, gdW + (size_t)cols[i] * K, K * 8);
    }
    void *g1 = mk(C, (size_t)S * N, 0, t1), *g2 = mk(C, (size_t)S * K, 0, t2), *g3 = mk(C, (size_t)S * K, 1, t3);
    const nv_backend *keep = G;
    G = C; // both sides now live on the CPU (the GPU's values were copied over exactly)
    cmp("matmul_fwd out (rows)", cout, g1, (size_t)S * N, 0, TOL_BF16);
    cmp("matmul_bwd dinp (rows)", cdx, g2, (size_t)S * K, 0, TOL_BF16);
    // dW sums M products in fp32 in another order than the twin: bound the difference by
    // u sqrt(M) / 2 sum |dout x| per element (4x the worst that 1.6B shapes showed on an H200;
    // the sum of |terms| by the twin over |dout|, |x|)
    cmp_core("matmul_bwd dW (rows)", cdW, g3, 1, (size_t)S * K, 0, (size_t)S * K, 1, 1e-5, 0,
             sabs, ldexp(1.0, -25) * sqrt((double)M));
    G = keep;
    C->free(cx), C->free(cW), C->free(cd), C->free(cout), C->free(cdx), C->free(cfull), C->free(cds);
    C->free(cdW), C->free(g1), C->free(g2), C->free(g3);
    G->free(x), G->free(W), G->free(dout), G->free(out), G->free(dx), G->free(dW);
    free(hx), free(hW), free(hdo), free(rows), free(cols), free(sx), free(sd), free(dsub), free(wsub);
    free(gout), free(gdx), free(gdW), free(t1), free(t2), free(t3), free(sabs);
}

// attention at the 1.6B head shapes: 2 rows of 1024, segments of a full row (1022), longer
// than 2 window + 64, odd lengths, single tokens and many short ones
static void test_attention_big(int H, int dh, int window) {
    printf("attention at 1.6B shape H=%d dh=%d window=%d\n", H, dh, window);
    const int lens[] = {1022, 397, 1, 33, 129, 255, 17, 64, 63, 2, 5, 11};
    const int ns = 12, L = 1024;
    int32_t st[12], ln[12];
    int row = 0, used = 0;
    for (int s = 0; s < ns; s++) { // pack into rows of L: <cls>/<eos> gaps of 1, pads at the end
        if (used + lens[s] + 2 > L) row++, used = 0;
        st[s] = row * L + used + 1;
        ln[s] = lens[s];
        used += lens[s] + 2;
    }
    attention_compare(st, ln, ns, (row + 1) * L, H, dh, window, 1.0);
}

// the loss sums that stay on the device, and the per-tensor sums of squares
static void test_stats(void) {
    printf("ce_stats, sumsq_to\n");
    const int m = 5000, V = 16;
    int32_t *t = malloc(m * 4);
    for (int i = 0; i < m; i++) t[i] = tu_int(0, V - 1);
    double *hz = rnd((size_t)m * V, 0, 2, 1), *hl = rnd(m, 2, 0.5, 0);
    ipair T = PI(t, m);
    pair z = P((size_t)m * V, 0, hz), l = P(m, 1, hl);
    double *ac = C->alloc(16), *ag = G->alloc(16), hc[2], hg[2];
    C->ce_stats(ac, l.c, z.c, T.c, m, V);
    G->ce_stats(ag, l.g, z.g, T.g, m, V);
    C->to_host(hc, ac, 16);
    G->to_host(hg, ag, 16);
    printf("  %-28s loss sum %.12g / %.12g, hits %g / %g\n", "ce_stats", hc[0], hg[0], hc[1], hg[1]);
    CHECK(tu_relerr(hc[0], hg[0]) < 1e-12 && hc[1] == hg[1], "ce_stats differ");
    double *dc = C->alloc(8), *dg = G->alloc(8);
    C->sumsq_to(dc, l.c, m);
    G->sumsq_to(dg, l.g, m);
    C->to_host(hc, dc, 8);
    G->to_host(hg, dg, 8);
    CHECK(tu_relerr(hc[0], hg[0]) < 1e-12, "sumsq_to: cpu %.17g cuda %.17g", hc[0], hg[0]);
    dropi(T); drop(z); drop(l);
    C->free(ac), G->free(ag), C->free(dc), G->free(dg);
    free(t), free(hz), free(hl);
}

int main(void) {
    const char *why = NULL;
    G = nv_backend_cuda(&why);
    const char *reh = getenv("NVWA_TEST_REHEARSE");
    const int rehearse = !G && reh && !strcmp(reh, "1");
    if (rehearse) {
        G = nv_backend_cpu_bf16();
        printf("test_cuda_ops: rehearsal, cpu-bf16 stands in for the GPU (%s)\n", why);
    }
    if (!G) {
        printf("test_cuda_ops: skipped: %s\n", why ? why : "no CUDA backend");
        return 77;
    }
    // the hand-written attention kernels (test_cuda_kernels compares cuDNN's): so that the
    // sanitizer steps check our kernels, not cuDNN's (racecheck does not follow its barriers)
    if (!rehearse) nv_cuda_set_attention(2);
    C = nv_backend_cpu_bf16();
    REQUIRE(C && G->act_bytes == 2 && G->state_bytes == 4 && C->act_bytes == 2, "unexpected backend types");
    const int M = rehearse ? 512 : 16384;
    tu_seed();
    test_memory();
    test_embed();
    test_layernorm();
    test_matmul_shape(200, 256, 384, 0);
    test_matmul_shape(200, 256, 384, 1);
    test_matmul_shape(333, 192, 16, 1); // tied vocab decoder + b_vocab
    test_matmul_shape(333, 192, 3, 1);  // structure head: odd leading dimension
    test_matmul_shape(1, 64, 72, 0);
    test_rope();
    test_attention_case(2, 64, 0);
    test_attention_case(2, 64, 40);
    test_attention_case(2, 64, 128);
    test_attention_case(2, 128, 0);
    test_attention_case(1, 128, 24);
    test_attention_case(3, 32, 0);
    test_attention_case(4, 24, 0);  // configs/tiny.ini: padded to a 32-wide tile
    test_attention_case(2, 96, 40); // padded to 128
    test_activations();
    test_select();
    test_optim();
    test_stats();
    // the 1.6B config: d 2048, f 5440 (W_in 10880 = 2f), 32 heads of 64; M = 16 x 1024 tokens
    // (NVWA_TEST_QUICK=1 leaves them out: under compute-sanitizer they would take too long)
    const char *quick = getenv("NVWA_TEST_QUICK");
    if (quick && !strcmp(quick, "1")) {
        G->sync();
        return tu_finish("test_cuda_ops (quick: without the 1.6B shapes)");
    }
    const long fb0 = nv_cuda_gemm_fallbacks();
    test_matmul_big(M, 2048, 6144);  // W_qkv
    test_matmul_big(M, 2048, 10880); // W_in
    test_matmul_big(M, 5440, 2048);  // W_out
    test_matmul_big(M, 2048, 2048);  // W_o, head dense
    test_attention_big(32, 64, 0);
    test_attention_big(32, 64, 128);
    test_attention_big(16, 128, 0);
    test_attention_big(16, 128, 128);
    CHECK(nv_cuda_gemm_fallbacks() == fb0, "model-shape GEMMs took the plain fallback kernel");
    G->sync();
    return tu_finish("test_cuda_ops");
}
