// test_cpu_attention_mask.c - who sees whom in packed attention, on both CPU instances.
// - against a brute-force reference that builds the full n x n visibility matrix from
//   per-token segment ids and the window rule, and does the softmax over all n keys in double
// - segment isolation: changing the tokens of one segment changes nothing (bitwise) in the
//   outputs, lse or gradients of the others
// - window: a key just outside |i-j| <= window/2 has no effect on query i, just inside it does
// - padding: pads output zero (out, lse, dqkv), and NaN written into pad rows of qkv and of the
//   upstream gradient never reaches a real token
#include <string.h>

#include "model/backend.h"
#include "tests/testutil.h"

typedef struct {
    int n, H, dh, window;
    int32_t start[64], len[64];
    int ns;
} layout;

typedef struct { // host copies of one run
    double *out, *lse, *dqkv;
} result;

// forward and backward on backend B, through its upload/download (the CUDA test can do the
// same); inputs and outputs are host doubles
static result run(const nv_backend *B, const layout *L, const double *qkv, const double *dout) {
    const int n = L->n, d = L->H * L->dh;
    int max_len = 0;
    for (int s = 0; s < L->ns; s++)
        if (L->len[s] > max_len) max_len = L->len[s];
    int32_t *st = B->alloc(64 * 4), *ln = B->alloc(64 * 4);
    B->to_device(st, L->start, L->ns * 4);
    B->to_device(ln, L->len, L->ns * 4);
    nv_attn_segs segs = {st, ln, L->ns, max_len};
    const size_t a = B->act_bytes, sb = B->state_bytes;
    void *q = B->alloc(n * 3 * d * a), *o = B->alloc(n * d * a), *l = B->alloc(n * L->H * sb);
    void *g = B->alloc(n * d * a), *dq = B->alloc(n * 3 * d * a);
    B->upload_act(q, qkv, n * 3 * d);
    B->upload_act(g, dout, n * d);
    // outputs start as garbage, so pads must be written, not left from a zeroed alloc
    double *junk = malloc(n * 3 * d * 8);
    for (int k = 0; k < n * 3 * d; k++) junk[k] = 1e3 + k;
    B->upload_act(o, junk, n * d), B->upload_state(l, junk, n * L->H);
    B->upload_act(dq, junk, n * 3 * d);
    free(junk);
    B->attention_fwd(o, l, q, &segs, n, L->H, L->dh, L->window);
    B->attention_bwd(dq, g, q, o, l, &segs, n, L->H, L->dh, L->window);
    result r = {malloc(n * d * 8), malloc(n * L->H * 8), malloc(n * 3 * d * 8)};
    B->download_act(r.out, o, n * d);
    B->download_state(r.lse, l, n * L->H);
    B->download_act(r.dqkv, dq, n * 3 * d);
    B->free(st), B->free(ln), B->free(q), B->free(o), B->free(l), B->free(g), B->free(dq);
    return r;
}
static void result_free(result r) { free(r.out), free(r.lse), free(r.dqkv); }

// segment id per token, -1 for pads, from the segment table
static void seg_ids(const layout *L, int *sid) {
    for (int i = 0; i < L->n; i++) sid[i] = -1;
    for (int s = 0; s < L->ns; s++)
        for (int k = 0; k < L->len[s]; k++) sid[L->start[s] + k] = s;
}

// The reference: the full visibility matrix, then softmax over all n keys in double.
static void brute(const layout *L, const double *qkv, double *out, double *lse) {
    const int n = L->n, H = L->H, dh = L->dh, d = H * dh;
    int *sid = malloc(n * sizeof(int));
    char *vis = malloc((size_t)n * n);
    seg_ids(L, sid);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            vis[i * n + j] = sid[i] >= 0 && sid[i] == sid[j] &&
                             (L->window == 0 || abs(i - j) <= L->window / 2);
    double *s = malloc(n * sizeof(double));
    for (int i = 0; i < n; i++)
        for (int h = 0; h < H; h++) {
            double *o = out + i * d + h * dh;
            memset(o, 0, dh * sizeof(double));
            lse[i * H + h] = 0;
            if (sid[i] < 0) continue;
            double mx = -INFINITY, z = 0;
            for (int j = 0; j < n; j++) {
                if (!vis[i * n + j]) continue;
                s[j] = 0;
                for (int c = 0; c < dh; c++)
                    s[j] += qkv[i * 3 * d + h * dh + c] * qkv[j * 3 * d + d + h * dh + c];
                s[j] /= sqrt((double)dh);
                mx = fmax(mx, s[j]);
            }
            for (int j = 0; j < n; j++)
                if (vis[i * n + j]) z += exp(s[j] - mx);
            for (int j = 0; j < n; j++)
                if (vis[i * n + j])
                    for (int c = 0; c < dh; c++)
                        o[c] += exp(s[j] - mx) / z * qkv[j * 3 * d + 2 * d + h * dh + c];
            lse[i * H + h] = mx + log(z);
        }
    free(sid), free(vis), free(s);
}

static void random_layout(layout *L, int n, int H, int dh, int window) {
    L->n = n, L->H = H, L->dh = dh, L->window = window, L->ns = 0;
    int t = tu_int(0, 2);
    while (t < n - 3 && L->ns < 64) {
        int l = tu_int(1, 16);
        if (t + l > n - 2) l = n - 2 - t; // pad tail
        L->start[L->ns] = t, L->len[L->ns] = l, L->ns++;
        t += l + (tu_int(0, 2) == 0 ? tu_int(1, 2) : 0); // pad gaps
    }
}

static double *randn(size_t n) {
    double *x = malloc(n * sizeof(double));
    for (size_t i = 0; i < n; i++) x[i] = tu_normal();
    return x;
}

static void test_vs_brute(const nv_backend *B, double tol, int window) {
    layout L;
    random_layout(&L, 60, 3, 8, window);
    const int n = L.n, d = L.H * L.dh;
    double *qkv = randn(n * 3 * d), *dout = randn(n * d);
    double *out = malloc(n * d * 8), *lse = malloc(n * L.H * 8);
    if (B->act_bytes == 4) // feed both sides the same (float-representable) inputs
        for (int k = 0; k < n * 3 * d; k++) qkv[k] = (float)qkv[k];
    brute(&L, qkv, out, lse);
    result r = run(B, &L, qkv, dout);
    double worst = 0;
    for (int k = 0; k < n * d; k++) {
        const double e = fabs(r.out[k] - out[k]) / (fabs(out[k]) + 1e-2);
        worst = fmax(worst, e);
        if (e > tol) {
            CHECK(0, "%s window %d out[%d]: %.9g vs brute %.9g", B->name, window, k, r.out[k],
                  out[k]);
            break;
        }
    }
    for (int k = 0; k < n * L.H; k++) {
        const double e = fabs(r.lse[k] - lse[k]) / (fabs(lse[k]) + 1e-2);
        worst = fmax(worst, e);
        if (e > tol) {
            CHECK(0, "%s window %d lse[%d]: %.9g vs brute %.9g", B->name, window, k, r.lse[k],
                  lse[k]);
            break;
        }
    }
    printf("  %-7s window %2d, %2d segments: vs brute force, worst %.2e (tol %.0e)\n", B->name,
           window, L.ns, worst, tol);
    result_free(r), free(qkv), free(dout), free(out), free(lse);
}

static int same(const double *a, const double *b, int n) { return !memcmp(a, b, n * 8); }

static void test_isolation(const nv_backend *B, int window) {
    layout L;
    do random_layout(&L, 60, 2, 8, window);
    while (L.ns < 3);
    const int n = L.n, d = L.H * L.dh;
    int *sid = malloc(n * sizeof(int));
    seg_ids(&L, sid);
    double *qkv = randn(n * 3 * d), *dout = randn(n * d);
    result r0 = run(B, &L, qkv, dout);
    // perturb every input (q, k, v) and the upstream gradient of one segment
    const int A = tu_int(0, L.ns - 1);
    for (int i = L.start[A]; i < L.start[A] + L.len[A]; i++) {
        for (int k = 0; k < 3 * d; k++) qkv[i * 3 * d + k] += tu_normal();
        for (int k = 0; k < d; k++) dout[i * d + k] += tu_normal();
    }
    result r1 = run(B, &L, qkv, dout);
    int changed_in_A = 0;
    for (int i = 0; i < n; i++) {
        if (sid[i] == A) {
            changed_in_A |= !same(r0.out + i * d, r1.out + i * d, d);
            continue;
        }
        CHECK(same(r0.out + i * d, r1.out + i * d, d), "%s: token %d (segment %d) out changed "
              "by segment %d", B->name, i, sid[i], A);
        CHECK(same(r0.lse + i * L.H, r1.lse + i * L.H, L.H), "%s: token %d lse changed", B->name,
              i);
        CHECK(same(r0.dqkv + i * 3 * d, r1.dqkv + i * 3 * d, 3 * d), "%s: token %d dqkv changed",
              B->name, i);
    }
    CHECK(changed_in_A, "%s: perturbing segment %d changed nothing in it", B->name, A);
    result_free(r0), result_free(r1), free(qkv), free(dout), free(sid);
}

static void test_window(const nv_backend *B, int window) {
    const int r = window / 2, H = 2, dh = 4, d = H * dh;
    layout L = {.n = 50, .H = H, .dh = dh, .window = window, .ns = 2};
    L.start[0] = 1, L.len[0] = 40, L.start[1] = 42, L.len[1] = 6; // pads 0, 41, 48, 49
    double *qkv = randn(L.n * 3 * d), *dout = randn(L.n * d);
    const int i = tu_int(1 + r + 1, 40 - r - 1); // a query whose window lies inside segment 0
    result r0 = run(B, &L, qkv, dout);
    const int js[4] = {i + r + 1, i - r - 1, i + r, i - r}; // outside, outside, inside, inside
    for (int t = 0; t < 4; t++) {
        double *p = malloc(L.n * 3 * d * 8);
        memcpy(p, qkv, L.n * 3 * d * 8);
        for (int k = d; k < 3 * d; k++) p[js[t] * 3 * d + k] += 1 + tu_normal() * 0.1; // k, v
        result r1 = run(B, &L, p, dout);
        const int unchanged = same(r0.out + i * d, r1.out + i * d, d);
        if (t < 2)
            CHECK(unchanged, "%s window %d: key %d outside query %d's window changed it",
                  B->name, window, js[t], i);
        else
            CHECK(!unchanged, "%s window %d: key %d inside query %d's window had no effect",
                  B->name, window, js[t], i);
        result_free(r1), free(p);
    }
    result_free(r0), free(qkv), free(dout);
}

static void test_padding(const nv_backend *B, int window) {
    layout L;
    random_layout(&L, 60, 2, 8, window);
    const int n = L.n, d = L.H * L.dh;
    int *sid = malloc(n * sizeof(int)), npad = 0;
    seg_ids(&L, sid);
    double *qkv = randn(n * 3 * d), *dout = randn(n * d);
    result r0 = run(B, &L, qkv, dout);
    for (int i = 0; i < n; i++) // poison the pads
        if (sid[i] < 0) {
            npad++;
            for (int k = 0; k < 3 * d; k++) qkv[i * 3 * d + k] = NAN;
            for (int k = 0; k < d; k++) dout[i * d + k] = NAN;
        }
    result r1 = run(B, &L, qkv, dout);
    for (int i = 0; i < n; i++) {
        if (sid[i] < 0) {
            for (int k = 0; k < d; k++)
                CHECK(r1.out[i * d + k] == 0, "%s: pad %d out[%d] = %g", B->name, i, k,
                      r1.out[i * d + k]);
            for (int h = 0; h < L.H; h++) CHECK(r1.lse[i * L.H + h] == 0, "pad %d lse", i);
            for (int k = 0; k < 3 * d; k++)
                CHECK(r1.dqkv[i * 3 * d + k] == 0, "%s: pad %d dqkv[%d] = %g", B->name, i, k,
                      r1.dqkv[i * 3 * d + k]);
        } else {
            CHECK(same(r0.out + i * d, r1.out + i * d, d), "%s: pads reached token %d out",
                  B->name, i);
            CHECK(same(r0.dqkv + i * 3 * d, r1.dqkv + i * 3 * d, 3 * d),
                  "%s: pads reached token %d dqkv", B->name, i);
        }
    }
    CHECK(npad > 0, "layout without pads");
    result_free(r0), result_free(r1), free(qkv), free(dout), free(sid);
}

int main(void) {
    tu_seed();
    const nv_backend *bs[2] = {nv_backend_cpu_f64(), nv_backend_cpu()};
    // f64 against the double reference: rounding only; f32: float softmax and sums
    const double tol[2] = {1e-12, 2e-5};
    const int windows[] = {0, 2, 5, 8, 16};
    for (int b = 0; b < 2; b++) {
        REQUIRE(bs[b], "backend");
        for (size_t w = 0; w < sizeof windows / sizeof *windows; w++) {
            test_vs_brute(bs[b], tol[b], windows[w]);
            test_isolation(bs[b], windows[w]);
            test_padding(bs[b], windows[w]);
            if (windows[w]) test_window(bs[b], windows[w]);
        }
    }
    return tu_finish("test_cpu_attention_mask");
}
