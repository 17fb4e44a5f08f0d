// test_cuda_kernels.c - the issue-15 CUDA kernels against their CPU twins, per element, at
// the 1.6B shapes (hidden 2048, 16 local heads of 64 at tensor 2, ffn 2720 per rank, rows of
// 1024), plus the odd widths that take the other code paths:
//   LayerNorm (+residual) forward and backward (one pass over registers, fused dw partials),
//   RoPE from the fp32 tables (bit-exact: the GPU rotates by the CPU's float cos/sin with the
//   CPU's float arithmetic, so its bf16 output is the CPU's float output rounded), GeGLU in
//   2-D, gelu, the embedding (bit-exact), and attention: the hand-written kernel and cuDNN's
//   fused SDPA each against the CPU and against each other, global and window 128, many
//   RNAcentral-like segments and full 1024-token rows, head dims 64 and 128. qkv carries 64
//   NaN rows past the packed tokens (an implementation that reads past the last segment
//   shows it), pads must come out exactly zero, backwards run twice must give the same bits.
// Act inputs are bf16-rounded on the host and the CPU gets the same values. Per-element
// tolerance: |gpu - cpu| <= rtol |cpu| + atol max|cpu| (bf16 outputs: rtol 2^-7, fp32 sums
// 1e-4). Exits 77 without a usable GPU. NVWA_REQUIRE_CUDNN=1 (the device script on Hopper)
// makes "cuDNN cannot run" a failure instead of a skipped part.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/nv_util.h"
#include "model/backend.h"
#include "model/cpu/bf16.h"
#include "model/cuda/cuda_api.h"
#include "tests/testutil.h"

static const nv_backend *C, *G;

// host bf16 rounding (nearest even), as the CUDA upload does
static double bf16r(double x) { return nv_bf16_round((float)x); }
static double *rnd(size_t n, double sd, int act) {
    double *h = nv_malloc((n ? n : 1) * sizeof *h);
    for (size_t i = 0; i < n; i++) h[i] = act ? bf16r(sd * tu_normal()) : sd * tu_normal();
    return h;
}
static size_t es(const nv_backend *b, int st) { return st ? b->state_bytes : b->act_bytes; }
static void *mk(const nv_backend *b, size_t n, int st, const double *h) {
    void *p = b->alloc((n ? n : 1) * es(b, st));
    REQUIRE(p, "alloc of %zu elements failed", n);
    if (h) {
        if (st) b->upload_state(p, h, n);
        else b->upload_act(p, h, n);
    } else { // poison: all-ones bytes are NaN in bf16 and fp32
        unsigned char *x = nv_malloc(n * es(b, st) + 1);
        memset(x, 0xff, n * es(b, st));
        b->to_device(p, x, n * es(b, st));
        free(x);
    }
    return p;
}
static double *get(const nv_backend *b, const void *p, size_t n, int st) {
    double *h = nv_malloc((n ? n : 1) * sizeof *h);
    if (st) b->download_state(h, p, n);
    else b->download_act(h, p, n);
    return h;
}
typedef struct { void *c, *g; size_t n; int st; } pair;
static pair P(size_t n, int st, const double *h) { return (pair){mk(C, n, st, h), mk(G, n, st, h), n, st}; }
static void drop(pair p) { C->free(p.c); G->free(p.g); }
static int32_t *ints(const nv_backend *b, const int32_t *h, size_t n) {
    int32_t *p = b->alloc((n ? n : 1) * 4);
    b->to_device(p, h, n * 4);
    return p;
}

// per element: |g - c| <= rtol |c| + atol max|c|; rows [r0, r1) of width w inside ld
static void cmp_rows(const char *name, const double *c, const double *g, size_t rows, size_t ld,
                     size_t w, double rtol, double atol) {
    double amax = 0;
    for (size_t r = 0; r < rows; r++)
        for (size_t k = 0; k < w; k++) amax = fmax(amax, fabs(c[r * ld + k]));
    size_t bad = 0, at = 0;
    double worst = 0;
    for (size_t r = 0; r < rows; r++)
        for (size_t k = 0; k < w; k++) {
            const size_t i = r * ld + k;
            const double tol = rtol * fabs(c[i]) + atol * amax, e = fabs(g[i] - c[i]);
            const double q = isfinite(g[i]) ? e / (tol > 0 ? tol : 1e-300) : INFINITY;
            if (q > worst) { worst = q; at = i; }
            bad += !(e <= tol);
        }
    printf("  %-34s max|cpu| %-9.3g worst %.2f of tolerance%s\n", name, amax, worst, bad ? "  FAIL" : "");
    CHECK(bad == 0, "%s: %zu elements out of tolerance (worst at %zu: cpu %.9g gpu %.9g)", name, bad, at, c[at], g[at]);
}
static void cmp(const char *name, pair p, size_t rows, size_t w, double rtol, double atol) {
    double *c = get(C, p.c, p.n, p.st), *g = get(G, p.g, p.n, p.st);
    cmp_rows(name, c, g, rows, w, w, rtol, atol);
    free(c);
    free(g);
}
static void same_bits(const char *name, const void *a, const void *b, size_t bytes) {
    unsigned char *x = nv_malloc(bytes + 1), *y = nv_malloc(bytes + 1);
    G->to_host(x, a, bytes);
    G->to_host(y, b, bytes);
    const int same = memcmp(x, y, bytes) == 0;
    printf("  %-34s %s\n", name, same ? "same bits twice" : "DIFFERS between runs");
    CHECK(same, "%s: two runs gave different bits", name);
    free(x);
    free(y);
}

#define RT_BF16 0x1p-7 // one bf16 rounding (half an ulp is 2^-9) plus fp32 reordering
#define AT_BF16 0x1p-9

// ---------------------------------------------------------------------------------------

static void test_layernorm(int n, int d) {
    printf("layernorm n=%d d=%d\n", n, d);
    double *hx = rnd((size_t)n * d, 1.5, 1), *hb = rnd((size_t)n * d, 0.7, 1), *hw = rnd(d, 0.5, 1);
    for (int c = 0; c < d; c++) hw[c] = bf16r(1.0 + hw[c]);
    const size_t N = (size_t)n * d;
    pair x = P(N, 0, hx), b = P(N, 0, hb), w = P(d, 0, hw), out = P(N, 0, NULL), res = P(N, 0, NULL);
    pair mu = P(n, 1, NULL), rs = P(n, 1, NULL);
    C->layernorm_fwd(out.c, mu.c, rs.c, x.c, w.c, n, d);
    G->layernorm_fwd(out.g, mu.g, rs.g, x.g, w.g, n, d);
    cmp("ln out", out, n, d, RT_BF16, AT_BF16);
    cmp("ln mean", mu, 1, n, 1e-5, 1e-6);
    cmp("ln rstd", rs, 1, n, 1e-5, 0);
    C->residual_layernorm_fwd(res.c, out.c, mu.c, rs.c, x.c, b.c, w.c, n, d);
    G->residual_layernorm_fwd(res.g, out.g, mu.g, rs.g, x.g, b.g, w.g, n, d);
    cmp("residual", res, n, d, RT_BF16, AT_BF16);
    // the GPU's norm reads its bf16 residual: give the CPU that same residual
    double *hres = get(G, res.g, N, 0);
    pair xr = P(N, 0, hres);
    C->layernorm_fwd(out.c, mu.c, rs.c, xr.c, w.c, n, d);
    cmp("residual ln out", out, n, d, RT_BF16, AT_BF16);
    cmp("residual ln rstd", rs, 1, n, 1e-5, 0);
    // backward on identical inputs (the GPU's residual and statistics on both sides); dx
    // accumulates onto random values
    double *hdo = rnd(N, 1.0, 1), *hdx = rnd(N, 0.3, 1), *hdw = rnd(d, 0.2, 0);
    double *hm = get(G, mu.g, n, 1), *hr = get(G, rs.g, n, 1);
    pair dout = P(N, 0, hdo), dx = P(N, 0, hdx), dw = P(d, 1, hdw), m2 = P(n, 1, hm), r2 = P(n, 1, hr);
    C->layernorm_bwd(dx.c, dw.c, dout.c, xr.c, w.c, m2.c, r2.c, n, d);
    void *dx2 = mk(G, N, 0, hdx), *dw2 = mk(G, d, 1, hdw);
    G->layernorm_bwd(dx.g, dw.g, dout.g, xr.g, w.g, m2.g, r2.g, n, d);
    G->layernorm_bwd(dx2, dw2, dout.g, xr.g, w.g, m2.g, r2.g, n, d);
    cmp("ln dx", dx, n, d, 2 * RT_BF16, 2 * AT_BF16);
    cmp("ln dw (fused partials)", dw, 1, d, 1e-4, 1e-5);
    same_bits("ln dx", dx.g, dx2, N * 2);
    same_bits("ln dw", dw.g, dw2, (size_t)d * 4);
    G->free(dx2); G->free(dw2);
    drop(x); drop(b); drop(w); drop(out); drop(res); drop(mu); drop(rs); drop(dout); drop(dx);
    drop(dw); drop(m2); drop(r2); drop(xr);
    free(hx); free(hb); free(hw); free(hdo); free(hdx); free(hdw); free(hm); free(hr); free(hres);
}

static void test_rope(int n, int H, int dh, int L, int far) {
    printf("rope n=%d H=%d dh=%d%s\n", n, H, dh, far ? " (positions past the table)" : "");
    const size_t N = (size_t)n * 3 * H * dh;
    double *h = rnd(N, 1.0, 1);
    int32_t *pos = nv_malloc((size_t)n * 4);
    for (int i = 0; i < n; i++) pos[i] = far ? 8192 + tu_int(0, 50000) : i % L;
    int32_t *pc = ints(C, pos, n), *pg = ints(G, pos, n);
    for (int t = 0; t < 2; t++) {
        const double theta = t ? 10000.0 : 160000.0;
        pair q = P(N, 0, h);
        C->rope_fwd(q.c, pc, n, H, dh, theta);
        G->rope_fwd(q.g, pg, n, H, dh, theta);
        double *c = get(C, q.c, N, 0), *g = get(G, q.g, N, 0);
        size_t diff = 0;
        for (size_t i = 0; i < N; i++) {
            if (far) continue;
            diff += g[i] != bf16r(c[i]);
        }
        if (!far) {
            printf("  rope fwd theta %-8g %zu of %zu elements differ from bf16(cpu)\n", theta, diff, N);
            CHECK(diff == 0, "rope fwd: %zu elements are not the CPU's result rounded to bf16", diff);
        } else {
            cmp_rows("rope fwd (computed angles)", c, g, n, 3 * H * dh, 3 * H * dh, RT_BF16, AT_BF16);
        }
        C->rope_bwd(q.c, pc, n, H, dh, theta);
        G->rope_bwd(q.g, pg, n, H, dh, theta);
        free(c); free(g);
        c = get(C, q.c, N, 0);
        g = get(G, q.g, N, 0);
        cmp_rows("rope bwd", c, g, n, 3 * H * dh, 3 * H * dh, 2 * RT_BF16, 2 * AT_BF16);
        cmp_rows("rope bwd(fwd(x)) = x", h, g, n, 3 * H * dh, 3 * H * dh, 4 * RT_BF16, 2 * AT_BF16);
        free(c); free(g);
        drop(q);
    }
    C->free(pc); G->free(pg);
    free(h); free(pos);
}

static void test_geglu(int n, int f) {
    printf("geglu n=%d f=%d, gelu\n", n, f);
    const size_t N = (size_t)n * f;
    double *hgu = rnd(2 * N, 1.5, 1), *hdo = rnd(N, 1.0, 1);
    pair gu = P(2 * N, 0, hgu), out = P(N, 0, NULL), dout = P(N, 0, hdo), dgu = P(2 * N, 0, NULL);
    C->geglu_fwd(out.c, gu.c, n, f);
    G->geglu_fwd(out.g, gu.g, n, f);
    cmp("geglu out", out, n, f, RT_BF16, AT_BF16);
    C->geglu_bwd(dgu.c, dout.c, gu.c, n, f);
    G->geglu_bwd(dgu.g, dout.g, gu.g, n, f);
    cmp("geglu dgu", dgu, n, 2 * f, RT_BF16, AT_BF16);
    pair go = P(2 * N, 0, NULL), gd = P(2 * N, 0, NULL);
    C->gelu_fwd(go.c, gu.c, 2 * N);
    G->gelu_fwd(go.g, gu.g, 2 * N);
    cmp("gelu out", go, 1, 2 * N, RT_BF16, AT_BF16);
    C->gelu_bwd(gd.c, gu.c, gu.c, 2 * N);
    G->gelu_bwd(gd.g, gu.g, gu.g, 2 * N);
    cmp("gelu dx", gd, 1, 2 * N, RT_BF16, AT_BF16);
    drop(gu); drop(out); drop(dout); drop(dgu); drop(go); drop(gd);
    free(hgu); free(hdo);
}

static void test_embed(int n, int d) {
    printf("embed n=%d d=%d\n", n, d);
    const int V = 16;
    double *et = rnd((size_t)V * d, 1.0, 1), *esr = rnd(4 * (size_t)d, 1.0, 1);
    int32_t *tok = nv_malloc((size_t)n * 4), *sin = nv_malloc((size_t)n * 4);
    for (int i = 0; i < n; i++) {
        tok[i] = tu_int(0, V - 1);
        sin[i] = tu_int(0, 3);
    }
    pair E = P((size_t)V * d, 0, et), S = P(4 * (size_t)d, 0, esr), out = P((size_t)n * d, 0, NULL);
    int32_t *tc = ints(C, tok, n), *tg = ints(G, tok, n), *sc = ints(C, sin, n), *sg = ints(G, sin, n);
    C->embed_fwd(out.c, tc, sc, E.c, S.c, n, d);
    G->embed_fwd(out.g, tg, sg, E.g, S.g, n, d);
    double *c = get(C, out.c, (size_t)n * d, 0), *g = get(G, out.g, (size_t)n * d, 0);
    size_t diff = 0;
    for (size_t i = 0; i < (size_t)n * d; i++) diff += g[i] != bf16r(c[i]);
    printf("  embed fwd: %zu elements differ from bf16(cpu)\n", diff);
    CHECK(diff == 0, "embed fwd: %zu elements are not the CPU's sum rounded to bf16", diff);
    free(c); free(g);
    drop(E); drop(S); drop(out);
    C->free(tc); G->free(tg); C->free(sc); G->free(sg);
    free(et); free(esr); free(tok); free(sin);
}

// ---------------------------------------------------------------------------------------
// attention

// rows of L tokens packed with <cls> seq <eos> segments; lengths RNAcentral-like (most
// 50-400, a tail to full rows) or full rows; pads at row tails
static int pack(int rows, int L, int full, int32_t *start, int32_t *len, int *maxlen) {
    int ns = 0;
    *maxlen = 0;
    for (int r = 0; r < rows; r++) {
        int at = r * L, left = L;
        while (left >= 3) {
            int l = full ? L : (tu_int(0, 9) == 0 ? tu_int(400, L) : tu_int(12, 400));
            if (l > left) {
                if (left < 40 || tu_int(0, 2) == 0) break; // leave a pad tail
                l = left - tu_int(0, 5);
            }
            start[ns] = at;
            len[ns] = l;
            if (l > *maxlen) *maxlen = l;
            ns++;
            at += l;
            left -= l;
        }
    }
    return ns;
}

static void attn_case(int rows, int L, int H, int dh, int window, int full) {
    const int n = rows * L, d = H * dh, tail = 64;
    int32_t *st = nv_malloc((size_t)n * 4), *ln = nv_malloc((size_t)n * 4);
    int maxlen;
    const int ns = pack(rows, L, full, st, ln, &maxlen);
    printf("attention %d rows x %d, %d segments (longest %d), H=%d dh=%d, %s\n", rows, L, ns, maxlen,
           H, dh, window ? "window 128" : "global");
    const size_t NQ = (size_t)n * 3 * d;
    double *hq = rnd(NQ + (size_t)tail * 3 * d, 1.0, 1), *hdo = rnd((size_t)n * d, 1.0, 1);
    for (size_t i = NQ; i < NQ + (size_t)tail * 3 * d; i++) hq[i] = NAN; // past the packed tokens
    int32_t *sc = ints(C, st, ns), *lc = ints(C, ln, ns), *sg = ints(G, st, ns), *lg = ints(G, ln, ns);
    nv_attn_segs segc = {sc, lc, ns, maxlen}, segg = {sg, lg, ns, maxlen};
    // the CPU reference
    pair qkv = P(NQ + (size_t)tail * 3 * d, 0, hq), dout = P((size_t)n * d, 0, hdo);
    void *oc = mk(C, (size_t)n * d, 0, NULL), *lsc = mk(C, (size_t)n * H, 1, NULL), *dqc = mk(C, NQ, 0, NULL);
    C->attention_fwd(oc, lsc, qkv.c, &segc, n, H, dh, window);
    C->attention_bwd(dqc, dout.c, qkv.c, oc, lsc, &segc, n, H, dh, window);
    double *ro = get(C, oc, (size_t)n * d, 0), *rl = get(C, lsc, (size_t)n * H, 1), *rg = get(C, dqc, NQ, 0);
    // each implementation; keep the native results to compare cuDNN with
    double *no = NULL, *nl = NULL, *ng = NULL;
    for (int impl = 0; impl < 2; impl++) { // 0 native, 1 cudnn
        const char *nm = impl ? "cudnn" : "native";
        if (impl) {
            const char *why = NULL;
            const int ok = nv_cuda_cudnn_attention_ok(0, &segg, n, H, dh, window, &why) &&
                           nv_cuda_cudnn_attention_ok(1, &segg, n, H, dh, window, &why);
            if (!ok) {
                printf("  cudnn: not run here: %s\n", why ? why : "?");
                CHECK(!getenv("NVWA_REQUIRE_CUDNN"), "NVWA_REQUIRE_CUDNN is set but cuDNN cannot run: %s", why ? why : "?");
                break;
            }
        }
        nv_cuda_set_attention(impl ? 1 : 2);
        void *og = mk(G, (size_t)n * d, 0, NULL), *lsg = mk(G, (size_t)n * H, 1, NULL);
        void *dqg = mk(G, NQ, 0, NULL), *dqg2 = mk(G, NQ, 0, NULL);
        G->attention_fwd(og, lsg, qkv.g, &segg, n, H, dh, window);
        G->attention_bwd(dqg, dout.g, qkv.g, og, lsg, &segg, n, H, dh, window);
        G->attention_bwd(dqg2, dout.g, qkv.g, og, lsg, &segg, n, H, dh, window);
        double *go = get(G, og, (size_t)n * d, 0), *gl = get(G, lsg, (size_t)n * H, 1), *gg = get(G, dqg, NQ, 0);
        char name[64];
        snprintf(name, sizeof name, "%s out vs cpu", nm);
        cmp_rows(name, ro, go, n, d, d, 2 * RT_BF16, 2 * AT_BF16);
        snprintf(name, sizeof name, "%s lse vs cpu", nm);
        cmp_rows(name, rl, gl, n, H, H, 1e-4, 1e-4);
        snprintf(name, sizeof name, "%s dqkv vs cpu", nm);
        cmp_rows(name, rg, gg, n, 3 * d, 3 * d, 4 * RT_BF16, 4 * AT_BF16);
        snprintf(name, sizeof name, "%s dqkv", nm);
        same_bits(name, dqg, dqg2, NQ * 2);
        if (impl && ns > 8) { // the backward in chunks of 8 segments (a batch whose one
            // graph would need more workspace than was reserved): every row written, same values
            nv_cuda_cudnn_test_chunk(8);
            void *dqg3 = mk(G, NQ, 0, NULL);
            G->attention_bwd(dqg3, dout.g, qkv.g, og, lsg, &segg, n, H, dh, window);
            nv_cuda_cudnn_test_chunk(0);
            double *g3 = get(G, dqg3, NQ, 0);
            cmp_rows("cudnn dqkv, chunks of 8 vs cpu", rg, g3, n, 3 * d, 3 * d, 4 * RT_BF16, 4 * AT_BF16);
            size_t nan3 = 0, diff3 = 0;
            for (size_t i = 0; i < NQ; i++) {
                nan3 += g3[i] != g3[i];
                diff3 += g3[i] != gg[i];
            }
            CHECK(nan3 == 0, "cudnn chunks: %zu elements never written", nan3);
            printf("  cudnn dqkv, chunks of 8          %zu of %zu elements differ from one graph\n", diff3, NQ);
            free(g3);
            G->free(dqg3);
        }
        if (impl) {
            cmp_rows("cudnn out vs native", no, go, n, d, d, 2 * RT_BF16, 2 * AT_BF16);
            cmp_rows("cudnn lse vs native", nl, gl, n, H, H, 1e-4, 1e-4);
            cmp_rows("cudnn dqkv vs native", ng, gg, n, 3 * d, 3 * d, 4 * RT_BF16, 4 * AT_BF16);
        }
        // pads are exactly zero (every output was NaN-poisoned)
        size_t padbad = 0;
        for (int s = 0, prev = 0; s <= ns; s++) {
            const int lo = prev, hi = s < ns ? st[s] : n;
            for (int r = lo; r < hi; r++) {
                for (int c = 0; c < d; c++) padbad += go[(size_t)r * d + c] != 0.0;
                for (int h = 0; h < H; h++) padbad += gl[(size_t)r * H + h] != 0.0;
                for (int c = 0; c < 3 * d; c++) padbad += gg[(size_t)r * 3 * d + c] != 0.0;
            }
            if (s < ns) prev = st[s] + ln[s];
        }
        CHECK(padbad == 0, "%s: %zu pad elements are not zero", nm, padbad);
        if (!impl) {
            no = go; nl = gl; ng = gg;
        } else {
            free(go); free(gl); free(gg);
        }
        G->free(og); G->free(lsg); G->free(dqg); G->free(dqg2);
    }
    nv_cuda_set_attention(0);
    free(no); free(nl); free(ng); free(ro); free(rl); free(rg);
    C->free(oc); C->free(lsc); C->free(dqc);
    drop(qkv); drop(dout);
    C->free(sc); C->free(lc); G->free(sg); G->free(lg);
    free(hq); free(hdo); free(st); free(ln);
}

int main(void) {
    const char *why = NULL;
    G = nv_backend_cuda(&why);
    if (!G) {
        printf("test_cuda_kernels: skipped: %s\n", why ? why : "no CUDA backend");
        return 77;
    }
    C = nv_backend_cpu();
    tu_seed();
    const int light = getenv("NVWA_TEST_LIGHT") != NULL;
    const int n = light ? 2048 : 16384; // 16 rows of 1024
    test_layernorm(n, 2048); // 1.6B: d = 2048 (vector path, 8 vectors per lane)
    test_layernorm(1000, 640); // a partial last vector
    test_layernorm(333, 72);   // the plain path
    test_rope(n, 16, 64, 1024, 0);
    test_rope(4096, 8, 128, 1024, 0);
    test_rope(999, 3, 24, 512, 0); // the scalar path
    test_rope(512, 4, 64, 1024, 1); // positions past the table
    test_geglu(light ? 1024 : 8192, 2720); // 1.6B at tensor 2
    test_geglu(300, 100);                  // the scalar path
    test_embed(n, 2048);
    test_embed(500, 100);
    const int rows = light ? 2 : 4;
    for (int dh = 64; dh <= 128; dh *= 2)
        for (int w = 0; w <= 128; w += 128) {
            attn_case(rows, 1024, dh == 64 ? 16 : 8, dh, w, 0);
            if (!light) attn_case(2, 1024, dh == 64 ? 16 : 8, dh, w, 1);
        }
    return tu_finish("cuda_kernels");
}
