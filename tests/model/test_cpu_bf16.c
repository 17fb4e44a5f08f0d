// test_cpu_bf16.c - cpu-bf16, the CUDA backend's twin, rounds exactly where the contract of
// model/backend.h says (and nowhere else). Every op runs on fresh random bf16 inputs; an
// independent reference written here in double applies the contract's roundings at the same
// points (to nearest even, through float as the host converters do). Per act output:
//   - every element within one bf16 ulp of the reference, plus 1e-5 of the tensor's max
//     (fp32 versus double arithmetic may move a value across a rounding boundary), and
//   - at least MIN_EXACT (95%) of the elements bit-identical to the reference (measured:
//     97.5-100%; gelu is lowest, its fast tanh is good to ~1e-7 absolute).
// The second check is what makes the test able to fail: a missing or extra rounding point
// (e.g. the norm reading the unrounded residual, P not rounded before P V) flips about a
// quarter of the outputs; fp32 arithmetic alone flips well under 1%. For the fused ops the
// inputs are chosen so that the internal rounding matters (LayerNorm of a residual with a
// large mean, attention with few visible keys). State outputs (statistics, weight
// gradients, lse, losses) are fp32 and compared with a relative tolerance.
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/backend.h"
#include "model/cpu/bf16.h"
#include "tests/testutil.h"

#define MIN_EXACT 0.95
#define TOL_STATE 2e-5

static const nv_backend *B;

static double rb(double x) { return nv_bf16_round((float)x); } // the contract's rounding

// one bf16 ulp at |x| (the spacing of the binade x lies in)
static double ulp(double x) {
    int e;
    if (x == 0) return ldexp(1.0, -133);
    frexp(fabs(x), &e); // |x| = m 2^e, m in [0.5, 1)
    return ldexp(1.0, e - 8);
}

static double *rnd(size_t n, double mean, double sd) { // bf16-representable values
    double *h = malloc((n ? n : 1) * sizeof *h);
    REQUIRE(h, "out of memory");
    for (size_t i = 0; i < n; i++) h[i] = rb(mean + sd * tu_normal());
    return h;
}

static void *act_of(const double *h, size_t n) {
    void *p = B->alloc(n * B->act_bytes);
    B->upload_act(p, h, n);
    return p;
}
static void *state_of(const double *h, size_t n) {
    void *p = B->alloc(n * B->state_bytes);
    B->upload_state(p, h, n);
    return p;
}
static int32_t *ints(const int32_t *h, size_t n) {
    int32_t *p = B->alloc((n ? n : 1) * 4);
    memcpy(p, h, n * 4);
    return p;
}
static double *got_act(const void *p, size_t n) {
    double *h = malloc((n ? n : 1) * sizeof *h);
    B->download_act(h, p, n);
    return h;
}

// act output against the unrounded reference `pre` (rounded here), over a strided block;
// flip: absolute room for one internal rounding that fp32 put on the other side of a bf16
// boundary (attention: one P or dS element, which cancellation can make several output ulps)
static void check_act_flip(const char *name, const void *dev, const double *pre, size_t rows,
                           size_t ld, size_t c0, size_t w, double flip) {
    double *g = got_act(dev, rows * ld), amax = 0, worst = 0;
    size_t exact = 0, total = 0, bad = 0;
    for (size_t r = 0; r < rows; r++)
        for (size_t c = c0; c < c0 + w; c++) amax = fmax(amax, fabs(rb(pre[r * ld + c])));
    for (size_t r = 0; r < rows; r++)
        for (size_t c = c0; c < c0 + w; c++) {
            const size_t i = r * ld + c;
            const double ref = rb(pre[i]), e = fabs(g[i] - ref), lim = ulp(ref) + 1e-5 * amax + flip;
            exact += g[i] == ref;
            total++;
            if (!(e <= lim)) bad++;
            if (e / lim > worst) worst = e / lim;
        }
    const double frac = total ? (double)exact / total : 1;
    printf("  %-34s bit-exact %6.2f%%  worst err / (1 ulp + 1e-5 max) %.3f\n", name, 100 * frac, worst);
    CHECK(bad == 0, "%s: %zu of %zu elements beyond one bf16 ulp", name, bad, total);
    CHECK(frac >= MIN_EXACT, "%s: only %.2f%% bit-identical to the contract's roundings", name, 100 * frac);
    free(g);
}
static void check_act_block(const char *name, const void *dev, const double *pre, size_t rows,
                            size_t ld, size_t c0, size_t w) {
    check_act_flip(name, dev, pre, rows, ld, c0, w, 0);
}
static void check_act(const char *name, const void *dev, const double *pre, size_t n) {
    check_act_block(name, dev, pre, 1, n, 0, n);
}

static void check_state(const char *name, const void *dev, const double *ref, size_t n) {
    double *g = malloc((n ? n : 1) * sizeof *g), amax = 0, emax = 0;
    B->download_state(g, dev, n);
    for (size_t i = 0; i < n; i++) amax = fmax(amax, fabs(ref[i]));
    for (size_t i = 0; i < n; i++) emax = fmax(emax, fabs(g[i] - ref[i]));
    printf("  %-34s rel err %.3g\n", name, emax / fmax(amax, 1e-30));
    CHECK(emax <= TOL_STATE * amax, "%s: rel err %g > %g", name, emax / fmax(amax, 1e-30), TOL_STATE);
    free(g);
}

static void test_elementwise(void) {
    printf("elementwise\n");
    const int n = 3001, f = 517;
    double *a = rnd(n, 0, 2), *b = rnd(n, 0, 2), *pre = malloc(n * sizeof *pre);
    void *da = act_of(a, n), *db = act_of(b, n), *out = B->alloc(n * 2);
    B->add(out, da, db, n);
    for (int i = 0; i < n; i++) pre[i] = a[i] + b[i];
    check_act("add", out, pre, n);
    double *s = malloc(n * sizeof *s);
    for (int i = 0; i < n; i++) s[i] = a[i] * 1.2345678; // not bf16-representable
    void *ds = state_of(s, n);
    B->state_to_act(out, ds, n);
    for (int i = 0; i < n; i++) pre[i] = (float)s[i];
    check_act("state_to_act", out, pre, n);
    // gelu and geglu, forward and backward
    const double k = 0.7978845608028654, c3 = 0.044715;
#define GELU(x) (0.5 * (x) * (1 + tanh(k * ((x) + c3 * (x) * (x) * (x)))))
#define GELU_G(x) (0.5 * (1 + tanh(k * ((x) + c3 * (x) * (x) * (x)))) + \
                   0.5 * (x) * (1 - pow(tanh(k * ((x) + c3 * (x) * (x) * (x))), 2)) * k * (1 + 3 * c3 * (x) * (x)))
    B->gelu_fwd(out, da, n);
    for (int i = 0; i < n; i++) pre[i] = GELU(a[i]);
    check_act("gelu_fwd", out, pre, n);
    B->gelu_bwd(out, db, da, n);
    for (int i = 0; i < n; i++) pre[i] = b[i] * GELU_G(a[i]);
    check_act("gelu_bwd", out, pre, n);
    const int rows = 7;
    double *gu = rnd((size_t)rows * 2 * f, 0, 1.5), *dy = rnd((size_t)rows * f, 0, 1);
    double *pg = malloc((size_t)rows * 2 * f * sizeof *pg);
    void *dgu = act_of(gu, (size_t)rows * 2 * f), *ddy = act_of(dy, (size_t)rows * f);
    void *o2 = B->alloc((size_t)rows * 2 * f * 2);
    B->geglu_fwd(o2, dgu, rows, f);
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < f; c++) {
            const double g = gu[(size_t)r * 2 * f + c], u = gu[(size_t)r * 2 * f + f + c];
            pg[(size_t)r * f + c] = GELU(g) * u;
        }
    check_act("geglu_fwd", o2, pg, (size_t)rows * f);
    B->geglu_bwd(o2, ddy, dgu, rows, f);
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < f; c++) {
            const double g = gu[(size_t)r * 2 * f + c], u = gu[(size_t)r * 2 * f + f + c];
            const double y = dy[(size_t)r * f + c];
            pg[(size_t)r * 2 * f + c] = y * u * GELU_G(g);
            pg[(size_t)r * 2 * f + f + c] = y * GELU(g);
        }
    check_act("geglu_bwd", o2, pg, (size_t)rows * 2 * f);
    free(a), free(b), free(pre), free(s), free(gu), free(dy), free(pg);
    B->free(da), B->free(db), B->free(out), B->free(ds), B->free(dgu), B->free(ddy), B->free(o2);
}

static void test_embed_select(void) {
    printf("embed, gather/scatter, softmax-CE\n");
    const int n = 901, d = 72, V = 16;
    int32_t *tok = malloc(n * 4), *sin = malloc(n * 4);
    for (int i = 0; i < n; i++) tok[i] = tu_int(0, V - 1), sin[i] = tu_int(0, 3);
    double *Et = rnd((size_t)V * d, 0, 1), *Es = rnd(4 * (size_t)d, 0, 1);
    double *pre = malloc((size_t)n * d * sizeof *pre);
    int32_t *dt = ints(tok, n), *dsn = ints(sin, n);
    void *dEt = act_of(Et, (size_t)V * d), *dEs = act_of(Es, 4 * (size_t)d);
    void *out = B->alloc((size_t)n * d * 2);
    B->embed_fwd(out, dt, dsn, dEt, dEs, n, d);
    for (int i = 0; i < n; i++)
        for (int c = 0; c < d; c++) pre[(size_t)i * d + c] = Et[tok[i] * d + c] + Es[sin[i] * d + c];
    check_act("embed_fwd", out, pre, (size_t)n * d);
    // embed_bwd: fp32 state sums of bf16 gradients
    double *g = rnd((size_t)n * d, 0, 1), *ref = calloc((size_t)V * d, sizeof *ref);
    void *dg = act_of(g, (size_t)n * d), *dE = state_of(ref, (size_t)V * d);
    B->embed_bwd(dE, NULL, dg, dt, dsn, n, d, V);
    for (int i = 0; i < n; i++)
        for (int c = 0; c < d; c++) ref[tok[i] * d + c] += g[(size_t)i * d + c];
    check_state("embed_bwd dE_tok", dE, ref, (size_t)V * d);
    // scatter_add: dst = round(dst + src) at distinct rows
    const int m = 100;
    int32_t *idx = malloc(m * 4);
    for (int i = 0; i < m; i++) idx[i] = i * 9;
    double *src = rnd((size_t)m * d, 0, 1);
    void *didx = ints(idx, m), *dsrc = act_of(src, (size_t)m * d);
    for (size_t i = 0; i < (size_t)n * d; i++) pre[i] = g[i];
    for (int i = 0; i < m; i++)
        for (int c = 0; c < d; c++) pre[(size_t)idx[i] * d + c] += src[(size_t)i * d + c];
    B->scatter_add_rows(dg, dsrc, didx, m, d);
    check_act("scatter_add_rows", dg, pre, (size_t)n * d);
    // softmax-CE over bf16 logits: loss (state) and dlogits (act, rounded once)
    double *z = rnd((size_t)m * V, 0, 3), *loss = malloc(m * sizeof *loss);
    int32_t *t = malloc(m * 4);
    for (int i = 0; i < m; i++) t[i] = tu_int(0, V - 1);
    void *dz = act_of(z, (size_t)m * V), *dl = B->alloc((size_t)m * V * 2), *dloss = state_of(z, m);
    int32_t *dtg = ints(t, m);
    const double gs = 1.0 / 77;
    B->softmax_ce(dloss, dl, dz, dtg, m, V, gs);
    double *pz = malloc((size_t)m * V * sizeof *pz);
    for (int i = 0; i < m; i++) {
        double mx = z[i * V], s = 0;
        for (int c = 1; c < V; c++) mx = fmax(mx, z[i * V + c]);
        for (int c = 0; c < V; c++) s += exp(z[i * V + c] - mx);
        loss[i] = log(s) + mx - z[i * V + t[i]];
        for (int c = 0; c < V; c++) pz[i * V + c] = (exp(z[i * V + c] - mx) / s - (c == t[i])) * gs;
    }
    check_state("softmax_ce loss", dloss, loss, m);
    check_act("softmax_ce dlogits", dl, pz, (size_t)m * V);
    // ce_stats: the loss sum and argmax hits, into a device double pair
    double *acc = B->alloc(2 * sizeof(double)), h[2], want = 0;
    long hits = 0;
    for (int i = 0; i < m; i++) {
        double lf = 0; // the loss as stored (fp32)
        B->download_state(&lf, (char *)dloss + (size_t)i * B->state_bytes, 1);
        want += lf;
        int best = 0;
        for (int c = 1; c < V; c++)
            if (z[i * V + c] > z[i * V + best]) best = c;
        hits += best == t[i];
    }
    B->ce_stats(acc, dloss, dz, dtg, m, V);
    B->to_host(h, acc, sizeof h);
    printf("  %-34s loss sum %.9g (want %.9g), hits %g (want %ld)\n", "ce_stats", h[0], want, h[1], hits);
    CHECK(fabs(h[0] - want) <= 1e-12 * fabs(want) && h[1] == (double)hits, "ce_stats");
    free(tok), free(sin), free(Et), free(Es), free(pre), free(g), free(ref), free(idx), free(src);
    free(z), free(loss), free(t), free(pz);
    B->free(dt), B->free(dsn), B->free(dEt), B->free(dEs), B->free(out), B->free(dg), B->free(dE);
    B->free(didx), B->free(dsrc), B->free(dz), B->free(dl), B->free(dloss), B->free(dtg), B->free(acc);
}

// LayerNorm over x with a large mean: rounding the residual before the norm then matters
static void test_layernorm(void) {
    printf("layernorm (residual with mean ~20: the residual's rounding is visible)\n");
    const int n = 211, d = 160;
    const size_t nd = (size_t)n * d;
    double *a = rnd(nd, 20, 1), *b = rnd(nd, 0, 0.7), *w = rnd(d, 1, 0.3);
    double *pre = malloc(nd * sizeof *pre), *mean = malloc(n * 8), *rstd = malloc(n * 8);
    void *da = act_of(a, nd), *db = act_of(b, nd), *dw = act_of(w, d);
    void *res = B->alloc(nd * 2), *out = B->alloc(nd * 2), *dm = state_of(a, n), *dr = state_of(a, n);
    B->residual_layernorm_fwd(res, out, dm, dr, da, db, dw, n, d);
    double *r = malloc(nd * sizeof *r);
    for (size_t i = 0; i < nd; i++) pre[i] = a[i] + b[i], r[i] = rb(pre[i]);
    check_act("residual_layernorm resid", res, pre, nd);
    for (int i = 0; i < n; i++) {
        double s = 0, v = 0;
        for (int c = 0; c < d; c++) s += r[(size_t)i * d + c];
        mean[i] = s / d;
        for (int c = 0; c < d; c++) v += pow(r[(size_t)i * d + c] - mean[i], 2);
        rstd[i] = 1 / sqrt(v / d + 1e-5);
        for (int c = 0; c < d; c++) pre[(size_t)i * d + c] = (r[(size_t)i * d + c] - mean[i]) * rstd[i] * w[c];
    }
    check_act("residual_layernorm out", out, pre, nd);
    check_state("residual_layernorm mean", dm, mean, n);
    check_state("residual_layernorm rstd", dr, rstd, n);
    // backward: dx = round(dx + ddx), dw += sum dout xhat (state)
    double *dout = rnd(nd, 0, 1), *dx0 = rnd(nd, 0, 1), *dwref = rnd(d, 0, 1);
    double *ms = malloc(n * 8), *rs = malloc(n * 8);
    B->download_state(ms, dm, n);
    B->download_state(rs, dr, n);
    void *ddo = act_of(dout, nd), *ddx = act_of(dx0, nd), *ddw = state_of(dwref, d);
    B->layernorm_bwd(ddx, ddw, ddo, res, dw, dm, dr, n, d);
    for (int i = 0; i < n; i++) {
        double sg = 0, sgx = 0;
        for (int c = 0; c < d; c++) {
            const double xh = (r[(size_t)i * d + c] - ms[i]) * rs[i], g = dout[(size_t)i * d + c] * w[c];
            sg += g, sgx += g * xh;
        }
        for (int c = 0; c < d; c++) {
            const size_t j = (size_t)i * d + c;
            const double xh = (r[j] - ms[i]) * rs[i], g = dout[j] * w[c];
            pre[j] = dx0[j] + (g - sg / d - xh * sgx / d) * rs[i];
            dwref[c] += dout[j] * xh;
        }
    }
    check_act("layernorm_bwd dx (one rounding of the sum)", ddx, pre, nd);
    check_state("layernorm_bwd dw", ddw, dwref, d);
    free(a), free(b), free(w), free(pre), free(mean), free(rstd), free(r), free(dout), free(dx0);
    free(dwref), free(ms), free(rs);
    B->free(da), B->free(db), B->free(dw), B->free(res), B->free(out), B->free(dm), B->free(dr);
    B->free(ddo), B->free(ddx), B->free(ddw);
}

static void test_matmul(void) {
    printf("matmul (bias added in fp32 before the one rounding)\n");
    const int n = 150, in = 200, o = 24;
    double *x = rnd((size_t)n * in, 0, 1), *W = rnd((size_t)o * in, 0, 0.1), *bias = rnd(o, 0, 1);
    double *pre = malloc((size_t)n * in * sizeof *pre);
    void *dx = act_of(x, (size_t)n * in), *dW = act_of(W, (size_t)o * in), *db = act_of(bias, o);
    void *out = B->alloc((size_t)n * in * 2);
    B->matmul_fwd(out, dx, dW, db, n, in, o);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < o; j++) {
            double s = bias[j];
            for (int k = 0; k < in; k++) s += x[(size_t)i * in + k] * W[(size_t)j * in + k];
            pre[(size_t)i * o + j] = s;
        }
    check_act("matmul_fwd", out, pre, (size_t)n * o);
    double *dy = rnd((size_t)n * o, 0, 1), *gW = rnd((size_t)o * in, 0, 1), *gb = rnd(o, 0, 1);
    void *ddy = act_of(dy, (size_t)n * o), *dgW = state_of(gW, (size_t)o * in), *dgb = state_of(gb, o);
    B->matmul_bwd(out, dgW, dgb, ddy, dx, dW, n, in, o);
    for (int i = 0; i < n; i++)
        for (int k = 0; k < in; k++) {
            double s = 0;
            for (int j = 0; j < o; j++) s += dy[(size_t)i * o + j] * W[(size_t)j * in + k];
            pre[(size_t)i * in + k] = s;
        }
    check_act("matmul_bwd dinp", out, pre, (size_t)n * in);
    for (int j = 0; j < o; j++)
        for (int i = 0; i < n; i++) {
            gb[j] += dy[(size_t)i * o + j];
            for (int k = 0; k < in; k++) gW[(size_t)j * in + k] += dy[(size_t)i * o + j] * x[(size_t)i * in + k];
        }
    check_state("matmul_bwd dW", dgW, gW, (size_t)o * in);
    check_state("matmul_bwd dbias", dgb, gb, o);
    free(x), free(W), free(bias), free(pre), free(dy), free(gW), free(gb);
    B->free(dx), B->free(dW), B->free(db), B->free(out), B->free(ddy), B->free(dgW), B->free(dgb);
}

static void test_rope(void) {
    printf("rope (fp32 cos/sin of a double angle)\n");
    const int n = 97, H = 2, dh = 32, d = H * dh, half = dh / 2;
    int32_t *pos = malloc(n * 4);
    for (int i = 0; i < n; i++) pos[i] = tu_int(0, 3000);
    double *q = rnd((size_t)n * 3 * d, 0, 1), *pre = malloc((size_t)n * 3 * d * sizeof *pre);
    int32_t *dp = ints(pos, n);
    void *dq = act_of(q, (size_t)n * 3 * d);
    const double theta = 10000;
    B->rope_fwd(dq, dp, n, H, dh, theta);
    memcpy(pre, q, (size_t)n * 3 * d * sizeof *pre);
    for (int i = 0; i < n; i++)
        for (int t = 0; t < 2 * H; t++)
            for (int j = 0; j < half; j++) {
                const double ang = pos[i] * pow(theta, -2.0 * j / dh);
                const double c = (float)cos(ang), s = (float)sin(ang);
                double *x = pre + (size_t)i * 3 * d + (size_t)t * dh;
                const double x1 = x[j], x2 = x[j + half];
                x[j] = x1 * c - x2 * s;
                x[j + half] = x2 * c + x1 * s;
            }
    check_act("rope_fwd", dq, pre, (size_t)n * 3 * d);
    free(pos), free(q), free(pre);
    B->free(dp), B->free(dq);
}

// segments: [0, 5) with window 2 (few keys: P's rounding shows), [7, 7+len1)
static void test_attention(int window) {
    printf("attention (window %d): unnormalized P rounded before P V; P, dS rounded in backward\n", window);
    const int H = 2, dh = 16, d = H * dh;
    const int st[2] = {0, 7}, ln[2] = {5, 90}, n = 7 + 90 + 3;
    const double scale = 1 / sqrt((double)dh);
    double *qkv = rnd((size_t)n * 3 * d, 0, 1.2), *pre = calloc((size_t)n * 3 * d, sizeof *pre);
    double *lse = calloc((size_t)n * H, sizeof *lse);
    int32_t *dst = ints(st, 2), *dln = ints(ln, 2);
    nv_attn_segs segs = {dst, dln, 2, 90};
    void *dqkv = act_of(qkv, (size_t)n * 3 * d), *out = B->alloc((size_t)n * d * 2);
    void *dlse = state_of(lse, (size_t)n * H);
    B->attention_fwd(out, dlse, dqkv, &segs, n, H, dh, window);
    const int r = window ? window / 2 : n;
#define Q(i, h, c) qkv[(size_t)(i) * 3 * d + (h) * dh + (c)]
#define K(i, h, c) qkv[(size_t)(i) * 3 * d + d + (h) * dh + (c)]
#define V_(i, h, c) qkv[(size_t)(i) * 3 * d + 2 * d + (h) * dh + (c)]
    double *s = malloc(n * sizeof *s);
    for (int sg = 0; sg < 2; sg++)
        for (int h = 0; h < H; h++)
            for (int i = st[sg]; i < st[sg] + ln[sg]; i++) {
                const int lo = i - r > st[sg] ? i - r : st[sg], hi = i + r < st[sg] + ln[sg] - 1 ? i + r : st[sg] + ln[sg] - 1;
                double mx = -INFINITY, l = 0;
                for (int j = lo; j <= hi; j++) {
                    s[j] = 0;
                    for (int c = 0; c < dh; c++) s[j] += Q(i, h, c) * K(j, h, c);
                    s[j] *= scale;
                    mx = fmax(mx, s[j]);
                }
                for (int j = lo; j <= hi; j++) l += exp(s[j] - mx);
                for (int c = 0; c < dh; c++) {
                    double o = 0;
                    for (int j = lo; j <= hi; j++) o += rb(exp(s[j] - mx)) * V_(j, h, c);
                    pre[(size_t)i * d + h * dh + c] = o / l;
                }
                lse[(size_t)i * H + h] = mx + log(l);
            }
    double vmax = 0; // one P element's flip moves an output by at most 2^-8 p |v| / l <= 2^-8 max|v|
    for (size_t i = 0; i < (size_t)n * 3 * d; i++) vmax = fmax(vmax, fabs(qkv[i]));
    check_act_flip("attention_fwd out", out, pre, 1, (size_t)n * d, 0, (size_t)n * d, ldexp(vmax, -8));
    check_state("attention_fwd lse", dlse, lse, (size_t)n * H);
    // backward from the twin's own out and lse
    double *o = got_act(out, (size_t)n * d), *l32 = malloc((size_t)n * H * 8);
    B->download_state(l32, dlse, (size_t)n * H);
    double *dout = rnd((size_t)n * d, 0, 1);
    void *ddo = act_of(dout, (size_t)n * d), *dg = B->alloc((size_t)n * 3 * d * 2);
    B->attention_bwd(dg, ddo, dqkv, out, dlse, &segs, n, H, dh, window);
    memset(pre, 0, (size_t)n * 3 * d * sizeof *pre);
    for (int sg = 0; sg < 2; sg++)
        for (int h = 0; h < H; h++)
            for (int i = st[sg]; i < st[sg] + ln[sg]; i++) {
                const int lo = i - r > st[sg] ? i - r : st[sg], hi = i + r < st[sg] + ln[sg] - 1 ? i + r : st[sg] + ln[sg] - 1;
                double D = 0;
                for (int c = 0; c < dh; c++) D += dout[(size_t)i * d + h * dh + c] * o[(size_t)i * d + h * dh + c];
                for (int j = lo; j <= hi; j++) {
                    double sc = 0, dp = 0;
                    for (int c = 0; c < dh; c++) {
                        sc += Q(i, h, c) * K(j, h, c);
                        dp += dout[(size_t)i * d + h * dh + c] * V_(j, h, c);
                    }
                    const double p = exp(sc * scale - l32[(size_t)i * H + h]);
                    const double pr = rb(p), dsr = rb(p * (dp - D));
                    for (int c = 0; c < dh; c++) {
                        pre[(size_t)i * 3 * d + h * dh + c] += scale * dsr * K(j, h, c);          // dq
                        pre[(size_t)j * 3 * d + d + h * dh + c] += scale * dsr * Q(i, h, c);      // dk
                        pre[(size_t)j * 3 * d + 2 * d + h * dh + c] += pr * dout[(size_t)i * d + h * dh + c]; // dv
                    }
                }
            }
    // one flipped P or dS element: at most 2^-8 of its size times the largest q, k or dO
    double gmax = vmax, dsmax = 0;
    for (size_t i = 0; i < (size_t)n * d; i++) gmax = fmax(gmax, fabs(dout[i]));
    dsmax = 2 * gmax * gmax * dh; // |dS| <= p (|dP| + |D|), dP and D dot products over dh
    const double fl = ldexp(gmax * fmax(1.0, scale * dsmax), -8);
    check_act_flip("attention_bwd dq", dg, pre, n, 3 * d, 0, d, fl);
    check_act_flip("attention_bwd dk", dg, pre, n, 3 * d, d, d, fl);
    check_act_flip("attention_bwd dv", dg, pre, n, 3 * d, 2 * d, d, fl);
    free(qkv), free(pre), free(lse), free(s), free(o), free(l32), free(dout);
    B->free(dst), B->free(dln), B->free(dqkv), B->free(out), B->free(dlse), B->free(ddo), B->free(dg);
}

static void test_adamw(void) {
    printf("adamw (fp32 update, act copy rounded once)\n");
    const size_t n = 5000;
    double *w = rnd(n, 0, 0.05), *m = rnd(n, 0, 0.01), *v = rnd(n, 0, 1e-3), *g = rnd(n, 0, 0.02);
    for (size_t i = 0; i < n; i++) v[i] = fabs(v[i]);
    void *dw = state_of(w, n), *dm = state_of(m, n), *dv = state_of(v, n), *dg = state_of(g, n);
    void *wa = B->alloc(n * 2);
    const double b1 = 0.9, b2 = 0.95, bc1 = 1 - b1 * b1, bc2 = 1 - b2 * b2, lr = 1e-3, wd = 0.1;
    B->adamw(dw, dm, dv, dg, wa, n, lr, b1, b2, 1e-8, wd, bc1, bc2, 0.7);
    double *pre = malloc(n * sizeof *pre);
    for (size_t i = 0; i < n; i++) {
        const double gi = (float)g[i] * 0.7, mi = b1 * (float)m[i] + (1 - b1) * gi;
        const double vi = b2 * (float)v[i] + (1 - b2) * gi * gi;
        pre[i] = (float)((float)w[i] - lr * ((mi / bc1) / (sqrt(vi / bc2) + 1e-8) + wd * (float)w[i]));
    }
    check_state("adamw w", dw, pre, n);
    check_act("adamw w_act", wa, pre, n);
    free(w), free(m), free(v), free(g), free(pre);
    B->free(dw), B->free(dm), B->free(dv), B->free(dg), B->free(wa);
}

int main(void) {
    B = nv_backend_cpu_bf16();
    REQUIRE(B && B->act_bytes == 2 && B->state_bytes == 4 && !strcmp(B->name, "cpu-bf16"),
            "cpu-bf16: bf16 act, fp32 state");
    tu_seed();
    test_elementwise();
    test_embed_select();
    test_layernorm();
    test_matmul();
    test_rope();
    test_attention(0);
    test_attention(2);
    test_attention(20);
    test_adamw();
    return tu_finish("test_cpu_bf16");
}
