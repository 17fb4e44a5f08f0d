// test_attn_plan.c - the host-side decisions of the CUDA attention (model/cuda/attn_plan.h),
// on any machine:
//  - cuDNN's diagonal band with the bounds nv_attn_band gives keeps exactly the pairs of the
//    design's |i - j| <= window/2 (brute force over positions, many windows);
//  - graph-cache keys: calls whose packed shapes round to the same capacities share a key,
//    anything that changes the graph (direction, capacity, heads, head dim, band, tokens)
//    does not; a band at least as wide as the longest segment is the global graph; the
//    capacities bound the shapes they serve;
//  - the cache finds what was put, and only that, across growth;
//  - the backward's chunk of segments when a batch's graph needs more workspace than was
//    reserved (a model of the workspace, brute force over random sizes);
//  - the choice: native / cudnn / auto against every (support, timing) case.
#include <string.h>

#include "model/cuda/attn_plan.h"
#include "tests/testutil.h"

static void test_band(void) {
    int checked = 0;
    for (int window = 2; window <= 300; window += tu_int(1, 7)) {
        int64_t left, right;
        CHECK(nv_attn_band(window, &left, &right), "window %d: no band", window);
        for (int i = 0; i < 400; i += 3)
            for (int j = 0; j < 400; j++) {
                const int want = abs(i - j) <= window / 2;
                const int got = nv_attn_band_keeps(i, j, left, right);
                if (want != got) {
                    CHECK(0, "window %d: pair (%d, %d): cuDNN band keeps %d, design %d", window, i, j, got, want);
                    return;
                }
                checked++;
            }
    }
    int64_t l = -1, r = -1;
    CHECK(!nv_attn_band(0, &l, &r) && l == -1 && r == -1, "a global layer got a band");
    printf("band: %d (window, i, j) cases agree with |i - j| <= window/2\n", checked);
}

static void test_keys(void) {
    const int n = 16384, H = 16, dh = 64;
    for (int t = 0; t < 2000; t++) {
        const int segs = tu_int(1, 8000), len = tu_int(2, 1024), w = tu_int(0, 1) ? 128 : 0;
        nv_attn_key k = nv_attn_key_make(t & 1, segs, len, n, H, dh, w);
        // capacities bound the shape, at most twice it (powers of two, floors 8 and 64)
        CHECK(k.b_cap >= segs && (k.b_cap == 8 || k.b_cap < 2 * segs), "b_cap %d for %d segments", k.b_cap, segs);
        CHECK(k.s_cap >= len && (k.s_cap == 64 || k.s_cap < 2 * len), "s_cap %d for length %d", k.s_cap, len);
        CHECK((k.b_cap & (k.b_cap - 1)) == 0 && (k.s_cap & (k.s_cap - 1)) == 0, "capacities not powers of two");
        // another shape inside the same capacities: the same graph
        const int segs2 = tu_int(k.b_cap / 2 + 1 > 1 ? k.b_cap / 2 + 1 : 1, k.b_cap);
        const int len2 = tu_int(k.s_cap / 2 + 1, k.s_cap);
        nv_attn_key k2 = nv_attn_key_make(t & 1, k.b_cap == 8 ? tu_int(1, 8) : segs2,
                                          k.s_cap == 64 ? tu_int(2, 64) : len2, n, H, dh, w);
        if (k.window == 0 || k2.s_cap == k.s_cap) CHECK(nv_attn_key_eq(&k, &k2), "same capacities, different keys");
        // anything that changes the graph changes the key
        nv_attn_key o = k;
        o.bwd ^= 1;
        CHECK(!nv_attn_key_eq(&k, &o), "direction ignored");
        o = nv_attn_key_make(t & 1, segs, len, n, H, dh + 8, w);
        CHECK(!nv_attn_key_eq(&k, &o), "head dim ignored");
        o = nv_attn_key_make(t & 1, segs, len, n, 2 * H, dh, w);
        CHECK(!nv_attn_key_eq(&k, &o), "heads ignored");
        o = nv_attn_key_make(t & 1, segs, len, n + 1, H, dh, w);
        CHECK(!nv_attn_key_eq(&k, &o), "tokens ignored");
        o = nv_attn_key_make(t & 1, 2 * k.b_cap, len, n, H, dh, w);
        CHECK(!nv_attn_key_eq(&k, &o), "segment capacity ignored");
    }
    // the band: a window reaching across the longest segment is global, a narrower one not
    nv_attn_key g = nv_attn_key_make(0, 10, 100, n, H, dh, 0);   // s_cap 128
    nv_attn_key w1 = nv_attn_key_make(0, 10, 100, n, H, dh, 254); // radius 127 = s_cap - 1
    nv_attn_key w2 = nv_attn_key_make(0, 10, 100, n, H, dh, 252); // radius 126
    CHECK(nv_attn_key_eq(&g, &w1), "a band covering every segment is not the global graph");
    CHECK(!nv_attn_key_eq(&g, &w2) && w2.window == 252, "a band narrower than a segment became global");
    nv_attn_key a = nv_attn_key_make(0, 10, 100, n, H, dh, 128), b = nv_attn_key_make(0, 10, 100, n, H, dh, 64);
    CHECK(!nv_attn_key_eq(&a, &b), "different windows share a key");
    char s[160];
    nv_attn_key_str(&a, s, sizeof s);
    CHECK(strstr(s, "window 128") && strstr(s, "B<=16") && strstr(s, "S<=128"), "key string: %s", s);
    printf("keys: %s\n", s);
}

// the workspace's planning key: seq_len / 32 tokens per segment on average, capped by the
// 2-token segments a micro-batch can hold at most
static void test_plan_segments(void) {
    CHECK(nv_attn_plan_segments(8 * 1024, 1024) == 256, "8 rows of 1024: 256 segments");
    CHECK(nv_attn_plan_segments(47 * 1024, 1024) == 47 * 32, "47 rows: %d", nv_attn_plan_segments(47 * 1024, 1024));
    CHECK(nv_attn_plan_segments(2 * 256, 256) == 64, "2 rows of 256");
    CHECK(nv_attn_plan_segments(40, 40) == 21, "one row of 40 holds at most 21 segments");
    CHECK(nv_attn_plan_segments(1000, 1024) == 32, "a partial row counts as one");
    CHECK(nv_attn_plan_segments(0, 1024) == 1 && nv_attn_plan_segments(5, 0) == 1, "degenerate sizes");
    for (int i = 0; i < 200; i++) { // a property over random sizes
        const int L = tu_int(3, 4096), rows = tu_int(1, 64), n = L * rows;
        const int s = nv_attn_plan_segments(n, L);
        CHECK(s >= 1 && s <= n / 2 + 1 && s <= rows * 32 && (s == rows * 32 || s == n / 2 + 1),
              "plan segments %d for %d rows of %d", s, rows, L);
    }
}

// a model of cuDNN's backward workspace: a graph of B segments (B the power of two of the key)
// needs B units; `reserved` units fit. Records what was asked.
typedef struct { int n, reserved, broken, asked[64], n_asked; } ws_model;
static int ws_fits(void *p, int b) {
    ws_model *m = p;
    if (m->n_asked < 64) m->asked[m->n_asked++] = b;
    if (m->broken) return -1;
    const int B = b ? b : nv_attn_pow2(m->n, 8);
    return B <= m->reserved;
}

static void test_plan_chunk(void) {
    // the 1.6B step on the H200: 45 rows, ~300 segments, 32 segments' workspace reserved
    ws_model m = {300, 32, 0, {0}, 0};
    CHECK(nv_attn_plan_chunk(300, 0, ws_fits, &m) == 32, "300 segments, 32 reserved");
    m = (ws_model){20, 32, 0, {0}, 0};
    CHECK(nv_attn_plan_chunk(20, 0, ws_fits, &m) == 20 && m.n_asked == 1, "a batch that fits runs whole");
    m = (ws_model){300, 4, 0, {0}, 0};
    CHECK(nv_attn_plan_chunk(300, 0, ws_fits, &m) == 0, "not even 8 segments fit: none");
    for (int i = 0; i < m.n_asked; i++) CHECK(m.asked[i] == 0 || m.asked[i] >= 8, "asked about %d segments", m.asked[i]);
    m = (ws_model){300, 1 << 20, 1, {0}, 0};
    CHECK(nv_attn_plan_chunk(300, 0, ws_fits, &m) == 0 && m.n_asked == 1, "a graph that cannot be built: no chunks tried");
    m = (ws_model){20, 1 << 20, 0, {0}, 0};
    CHECK(nv_attn_plan_chunk(20, 8, ws_fits, &m) == 8, "forced chunks of 8");
    for (int i = 0; i < m.n_asked; i++) CHECK(m.asked[i] != 0 && m.asked[i] <= 8, "forced: asked about %d", m.asked[i]);
    m = (ws_model){6, 1 << 20, 0, {0}, 0};
    CHECK(nv_attn_plan_chunk(6, 8, ws_fits, &m) == 6, "forced 8, 6 segments: whole");
    // random: the chunk is the brute-force largest power of two that fits, and covers the batch
    for (int it = 0; it < 2000; it++) {
        const int n = tu_int(1, 5000), reserved = 1 << tu_int(0, 14);
        m = (ws_model){n, reserved, 0, {0}, 0};
        const int c = nv_attn_plan_chunk(n, 0, ws_fits, &m);
        int want = 0;
        if (nv_attn_pow2(n, 8) <= reserved) want = n;
        else
            for (int b = 8; b < nv_attn_pow2(n, 8); b *= 2)
                if (b <= reserved) want = b;
        CHECK(c == want, "n %d reserved %d: chunk %d, want %d", n, reserved, c, want);
        CHECK(c == 0 || (c <= n && (long)((n + c - 1) / c) * c >= n), "chunks of %d cover %d segments", c, n);
    }
    printf("plan chunk: ok\n");
}

static void test_cache(void) {
    nv_attn_cache c = {0};
    nv_attn_key keys[100];
    int vals[100];
    for (int i = 0; i < 100; i++) {
        keys[i] = nv_attn_key_make(i & 1, 1 << (i % 10), 64 << (i % 5), 1000 + i, 8, 64, (i % 3) * 64);
        vals[i] = i;
        if (!nv_attn_cache_find(&c, &keys[i])) CHECK(nv_attn_cache_put(&c, &keys[i], &vals[i]) == 0, "put");
    }
    for (int i = 0; i < 100; i++) {
        int *v = nv_attn_cache_find(&c, &keys[i]);
        CHECK(v && nv_attn_key_eq(&keys[*v], &keys[i]), "key %d: found the wrong entry", i);
    }
    nv_attn_key missing = nv_attn_key_make(0, 3, 64, 999999, 8, 64, 0);
    CHECK(nv_attn_cache_find(&c, &missing) == NULL, "found a key never put");
    printf("cache: %d entries\n", c.n);
    CHECK(c.n == 100, "cache holds %d entries, expected 100 distinct keys", c.n);
    nv_attn_cache_free(&c);
}

static void test_choose(void) {
    char m[512];
    CHECK(nv_attn_choose(NV_ATTN_MODE_NATIVE, 1, NULL, 1, 0.5, "fwd", m, sizeof m) == NV_ATTN_MODE_NATIVE, "native");
    CHECK(nv_attn_choose(NV_ATTN_MODE_CUDNN, 1, NULL, 0.5, 1, "fwd", m, sizeof m) == NV_ATTN_MODE_CUDNN, "cudnn");
    CHECK(nv_attn_choose(NV_ATTN_MODE_CUDNN, 0, "no THD", 1, 1, "fwd", m, sizeof m) == -1, "cudnn unsupported");
    CHECK(strstr(m, "no THD") && strstr(m, "HINT"), "the error names the reason and a hint: %s", m);
    CHECK(nv_attn_choose(NV_ATTN_MODE_AUTO, 0, "no THD", 2, -1, "fwd", m, sizeof m) == NV_ATTN_MODE_NATIVE, "auto unsupported");
    CHECK(strstr(m, "no THD") != NULL, "auto names why cuDNN was not taken: %s", m);
    CHECK(nv_attn_choose(NV_ATTN_MODE_AUTO, 1, NULL, 2.0, 1.0, "fwd", m, sizeof m) == NV_ATTN_MODE_CUDNN, "auto faster cudnn");
    CHECK(strstr(m, "1.000") && strstr(m, "2.000"), "auto prints both times: %s", m);
    CHECK(nv_attn_choose(NV_ATTN_MODE_AUTO, 1, NULL, 1.0, 2.0, "fwd", m, sizeof m) == NV_ATTN_MODE_NATIVE, "auto faster native");
    CHECK(nv_attn_choose(NV_ATTN_MODE_AUTO, 1, NULL, 1.0, 1.0, "fwd", m, sizeof m) == NV_ATTN_MODE_NATIVE, "auto tie: native");
    CHECK(nv_attn_choose(NV_ATTN_MODE_AUTO, 1, NULL, -1, -1, "fwd", m, sizeof m) == NV_ATTN_MODE_CUDNN, "auto untimed");
    for (int i = 0; i < 1000; i++) { // random timings: auto takes the strictly faster one
        double tn = tu_uniform(0.01, 10), tc = tu_uniform(0.01, 10);
        int c = nv_attn_choose(NV_ATTN_MODE_AUTO, 1, NULL, tn, tc, "bwd", m, sizeof m);
        CHECK(c == (tc < tn ? NV_ATTN_MODE_CUDNN : NV_ATTN_MODE_NATIVE), "auto chose the slower (%g vs %g)", tc, tn);
    }
    CHECK(nv_attn_pow2(1, 8) == 8 && nv_attn_pow2(9, 8) == 16 && nv_attn_pow2(64, 64) == 64 &&
              nv_attn_pow2(65, 64) == 128, "pow2");
}

int main(void) {
    tu_seed();
    test_band();
    test_keys();
    test_plan_segments();
    test_plan_chunk();
    test_cache();
    test_choose();
    return tu_finish("attn_plan");
}
