// attention.c - bidirectional attention over packed segments, scale 1/sqrt(dh).
// qkv [n, 3d] rows q|k|v, head-major; out [n, d]; lse [n, H] (natural log) for the backward.
// Query i of segment [s0, s0+len) sees key j of the same segment iff window == 0 or
// |i - j| <= window/2, so the visible keys are one contiguous range [lo, hi] and only that
// range is touched. Tokens in no segment are pads: out, lse and dqkv stay zero there.
// The softmax runs in `real` with max subtraction (fp32 on the float instance, as the design
// asks). Work is split over (segment, head) pairs: each pair owns disjoint rows of out, lse
// and dqkv, so the backward needs no atomics and is deterministic.
// Written over `real` and FN(); included by cpu_f32.c and cpu_f64.c, never compiled alone.

// the longest contiguous key range any query can see
static int FN(attn_span)(const nv_attn_segs *segs, int window) {
    int m = 0;
    for (int s = 0; s < segs->n_segs; s++)
        if (segs->len[s] > m) m = segs->len[s];
    if (window > 0 && 2 * (window / 2) + 1 < m) m = 2 * (window / 2) + 1;
    return m > 0 ? m : 1;
}

// (query, key) pairs times dh, an upper bound: below PAR_MIN one thread is faster
static size_t FN(attn_work)(const nv_attn_segs *segs, int H, int dh, int window) {
    size_t w = 0;
    for (int s = 0; s < segs->n_segs; s++) {
        const size_t l = (size_t)segs->len[s], span = (size_t)(2 * (window / 2) + 1);
        w += l * (window > 0 && span < l ? span : l);
    }
    return w * H * dh;
}

// Eight running sums in a fixed order: vectorizes without -ffast-math, and stays
// deterministic.
static inline real FN(dot)(const real *restrict a, const real *restrict b, int n) {
    real acc[8] = {0};
    int c = 0;
    for (; c + 8 <= n; c += 8)
        for (int k = 0; k < 8; k++) acc[k] += a[c + k] * b[c + k];
    real s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; c < n; c++) s += a[c] * b[c];
    return s;
}

// one (query i, key j) term of the backward; the six rows never overlap (distinct thirds of
// qkv rows, or distinct rows), hence restrict
static inline void FN(attn_bwd_pair)(real *restrict dq, real *restrict dk, real *restrict dv,
                                     const real *restrict q, const real *restrict k,
                                     const real *restrict go, real ds, real p, int dh) {
    for (int c = 0; c < dh; c++) {
        dq[c] += ds * k[c];
        dk[c] += ds * q[c];
        dv[c] += p * go[c];
    }
}

static void FN(attention_fwd)(void *out_, void *lse_, const void *qkv_, const nv_attn_segs *segs,
                              int n, int H, int dh, int window) {
    real *out = out_, *lse = lse_;
    const real *qkv = qkv_;
    const int d = H * dh, ld = 3 * d, r = window > 0 ? window / 2 : n;
    const int tasks = segs->n_segs * H, span = FN(attn_span)(segs, window);
    const real scale = (real)(1.0 / sqrt((double)dh));
    memset(out, 0, (size_t)n * d * sizeof(real)); // pads
    memset(lse, 0, (size_t)n * H * sizeof(real));
#pragma omp parallel if (FN(attn_work)(segs, H, dh, window) > PAR_MIN)
    {
        real *p = malloc((size_t)span * sizeof(real)); // this thread's score row
        if (!p) {
            fprintf(stderr, "nvwa: attention: out of memory\n");
            abort();
        }
#pragma omp for schedule(dynamic, 1)
        for (int t = 0; t < tasks; t++) {
            const int s = t / H, h = t % H, s0 = segs->start[s], s1 = s0 + segs->len[s];
            for (int i = s0; i < s1; i++) {
                const int lo = i - r > s0 ? i - r : s0, hi = i + r < s1 - 1 ? i + r : s1 - 1;
                const real *q = qkv + (size_t)i * ld + h * dh;
                real mx = -INFINITY;
                for (int j = lo; j <= hi; j++) {
                    const real sc = FN(dot)(q, qkv + (size_t)j * ld + d + h * dh, dh) * scale;
                    p[j - lo] = sc;
                    if (sc > mx) mx = sc;
                }
                real sum = 0;
                for (int j = lo; j <= hi; j++) {
                    p[j - lo] = R_EXP(p[j - lo] - mx);
                    sum += p[j - lo];
                }
                const real inv = 1 / sum;
                real *o = out + (size_t)i * d + h * dh;
                for (int j = lo; j <= hi; j++) {
                    const real *v = qkv + (size_t)j * ld + 2 * d + h * dh, w = p[j - lo] * inv;
                    for (int c = 0; c < dh; c++) o[c] += w * v[c];
                }
                lse[(size_t)i * H + h] = mx + R_LOG(sum);
            }
        }
        free(p);
    }
}

// With P = exp(S - lse), S = scale q k^T:
//   dv_j += P_ij dout_i;   dS_ij = P_ij (dout_i . v_j - dout_i . out_i)
//   dq_i += scale dS_ij k_j;   dk_j += scale dS_ij q_i
static void FN(attention_bwd)(void *dqkv_, const void *dout_, const void *qkv_, const void *out_,
                              const void *lse_, const nv_attn_segs *segs, int n, int H, int dh,
                              int window) {
    real *dqkv = dqkv_;
    const real *dout = dout_, *qkv = qkv_, *out = out_, *lse = lse_;
    const int d = H * dh, ld = 3 * d, r = window > 0 ? window / 2 : n;
    const int tasks = segs->n_segs * H;
    const real scale = (real)(1.0 / sqrt((double)dh));
    memset(dqkv, 0, (size_t)n * ld * sizeof(real)); // overwrite semantics; pads stay zero
    const int par = FN(attn_work)(segs, H, dh, window) > PAR_MIN;
#pragma omp parallel for schedule(dynamic, 1) if (par)
    for (int t = 0; t < tasks; t++) {
        const int s = t / H, h = t % H, s0 = segs->start[s], s1 = s0 + segs->len[s];
        for (int i = s0; i < s1; i++) {
            const int lo = i - r > s0 ? i - r : s0, hi = i + r < s1 - 1 ? i + r : s1 - 1;
            const real *q = qkv + (size_t)i * ld + h * dh, *go = dout + (size_t)i * d + h * dh;
            real *dq = dqkv + (size_t)i * ld + h * dh;
            const real Di = FN(dot)(go, out + (size_t)i * d + h * dh, dh);
            const real li = lse[(size_t)i * H + h];
            for (int j = lo; j <= hi; j++) {
                const real *k = qkv + (size_t)j * ld + d + h * dh;
                const real *v = qkv + (size_t)j * ld + 2 * d + h * dh;
                real *dk = dqkv + (size_t)j * ld + d + h * dh;
                real *dv = dqkv + (size_t)j * ld + 2 * d + h * dh;
                const real pij = R_EXP(FN(dot)(q, k, dh) * scale - li);
                const real ds = pij * (FN(dot)(go, v, dh) - Di) * scale;
                FN(attn_bwd_pair)(dq, dk, dv, q, k, go, ds, pij, dh);
            }
        }
    }
}
