// attention.c - bidirectional attention over packed segments, scale 1/sqrt(dh).
// qkv [n, 3d] rows q|k|v, head-major; out [n, d]; lse [n, H] (natural log) for the backward.
// Query i of segment [s0, s0+len) sees key j of the same segment iff window == 0 or
// |i - j| <= window/2, so the visible keys are one contiguous range [lo, hi] and only that
// range is touched. Tokens in no segment are pads: out, lse and dqkv stay zero there.
//
// Blocked like FlashAttention, on BLAS: per (segment, head), queries go in blocks of
// attn_bq() rows; a block sees the union [lo, hi] of its rows' key ranges, and
//   forward:  S = scale Q K^T (GEMM), row softmax in `real` with max subtraction (keys a row
//             may not see get P = 0), lse = max + log(sum), O = P V (GEMM); exp is R_VEXP
//             (float: the vectorizable polynomial of common.inc, ~2 ulp)
//   backward: P = exp(scale Q K^T - lse) recomputed, dP = dO V^T, D = rowsum(dO o O),
//             dS = P o (dP - D), dV += P^T dO, dQ = scale dS K, dK += scale dS^T Q (GEMMs)
// The GEMMs read q, k, v of head h straight out of the strided qkv rows (leading dimension
// 3d at column offsets h dh, d + h dh, 2d + h dh) and write out / dqkv the same way.
// Parallel work: the forward splits over (segment, head, query block), every task owning
// its rows of out and lse; the backward splits over (segment, head) and walks the query
// blocks in order, so dK and dV accumulate in a fixed order. No atomics, the same bits for
// any thread count (BLAS runs single-threaded inside, common.inc).
// cpu-bf16 (the CUDA kernels' rounding points, backend.h): qkv, dout and out are read through
// float views; the forward rounds the unnormalized P = exp(s - max) to bf16 before P V and
// divides by the fp32 row sum afterwards; the backward rounds P and dS to bf16 before the
// dV, dQ, dK products; out and dqkv are accumulated in fp32 and rounded once.
// Written over `real`, `act` and FN(); included by the cpu_*.c instances, never compiled alone.

// Queries per block: 64 for global layers; 32 for windowed ones, whose blocks then see
// 32 + window keys instead of 64 + window (fewer masked scores), at about the same GEMM
// rate. Measured with bench/bench_cpu_attention.
static inline int attn_bq(int window) { return window > 0 ? 32 : 64; }

// the longest key range a query block can see
static int FN(attn_span)(const nv_attn_segs *segs, int window) {
    int m = 0;
    for (int s = 0; s < segs->n_segs; s++)
        if (segs->len[s] > m) m = segs->len[s];
    const int wspan = attn_bq(window) + 2 * (window / 2);
    if (window > 0 && wspan < m) m = wspan;
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
// deterministic (the grouping does not depend on alignment or threads).
static inline real FN(dot)(const real *restrict a, const real *restrict b, int n) {
    real acc[8] = {0};
    int c = 0;
    for (; c + 8 <= n; c += 8)
        for (int k = 0; k < 8; k++) acc[k] += a[c + k] * b[c + k];
    real s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; c < n; c++) s += a[c] * b[c];
    return s;
}

static inline real FN(sum8)(const real *restrict a, int n) {
    real acc[8] = {0};
    int c = 0;
    for (; c + 8 <= n; c += 8)
        for (int k = 0; k < 8; k++) acc[k] += a[c + k];
    real s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; c < n; c++) s += a[c];
    return s;
}

// max of a[0..n-1], n >= 1 (exact in any order)
static inline real FN(max8)(const real *restrict a, int n) {
    real m[8];
    for (int k = 0; k < 8; k++) m[k] = a[0];
    int c = 0;
    for (; c + 8 <= n; c += 8)
        for (int k = 0; k < 8; k++) m[k] = a[c + k] > m[k] ? a[c + k] : m[k];
    for (; c < n; c++) m[0] = a[c] > m[0] ? a[c] : m[0];
    for (int k = 1; k < 8; k++) m[0] = m[k] > m[0] ? m[k] : m[0];
    return m[0];
}

// p[j] = exp(p[j] - sub), in place
static inline void FN(exp_sub)(real *restrict p, real sub, int n) {
    for (int j = 0; j < n; j++) p[j] = R_VEXP(p[j] - sub);
}

// backward row: p = exp(s - lse), ds = p (dp - D), in place over s and dp
static inline void FN(attn_bwd_row)(real *restrict p, real *restrict ds, real li, real Di, int n) {
    for (int j = 0; j < n; j++) {
        const real pij = R_VEXP(p[j] - li);
        p[j] = pij;
        ds[j] = pij * (ds[j] - Di);
    }
}

static real *FN(attn_scratch)(size_t n) {
    real *p = aligned_alloc(64, ((n * sizeof(real)) + 63) & ~(size_t)63);
    if (!p) {
        fprintf(stderr, "nvwa: attention: out of memory\n");
        abort();
    }
    return p;
}

// the key range [lo, hi] of query block [i0, i1) in segment [s0, s1), radius r
static inline void FN(attn_range)(int i0, int i1, int s0, int s1, int r, int *lo, int *hi) {
    *lo = i0 - r > s0 ? i0 - r : s0;
    *hi = i1 - 1 + r < s1 - 1 ? i1 - 1 + r : s1 - 1;
}

// One query block of the forward: rows i0..i1-1 of head h.
static void FN(attn_fwd_block)(real *out, real *lse, const real *qkv, real *S, int i0, int i1,
                               int s0, int s1, int r, int h, int H, int dh, real scale) {
    const int d = H * dh, ld = 3 * d, bq = i1 - i0;
    int lo, hi;
    FN(attn_range)(i0, i1, s0, s1, r, &lo, &hi);
    const int nk = hi - lo + 1;
    const real *Q = qkv + (size_t)i0 * ld + h * dh, *K = qkv + (size_t)lo * ld + d + h * dh;
    const real *V = qkv + (size_t)lo * ld + 2 * d + h * dh;
    GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, bq, nk, dh, scale, Q, ld, K, ld, 0, S, nk);
    real sum_row[64]; // cpu-bf16: the row sums, divided out after P V (bq <= 64)
    for (int i = i0; i < i1; i++) {
        real *p = S + (size_t)(i - i0) * nk;
        const int a = (i - r > lo ? i - r : lo) - lo, b = (i + r < hi ? i + r : hi) - lo;
        const real mx = FN(max8)(p + a, b - a + 1);
        FN(exp_sub)(p + a, mx, b - a + 1);
        const real sum = FN(sum8)(p + a, b - a + 1), inv = 1 / sum;
        for (int j = 0; j < a; j++) p[j] = 0;
        if (ACT_IS_REAL)
            for (int j = a; j <= b; j++) p[j] *= inv;
        else // the GPU's P: unnormalized, rounded to bf16
            for (int j = a; j <= b; j++) p[j] = RB(p[j]);
        sum_row[i - i0] = sum;
        for (int j = b + 1; j < nk; j++) p[j] = 0;
        lse[(size_t)i * H + h] = mx + R_LOG(sum);
    }
    real *O = out + (size_t)i0 * d + h * dh;
    GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, bq, dh, nk, 1, S, nk, V, ld, 0, O, d);
    if (!ACT_IS_REAL)
        for (int i = 0; i < bq; i++)
            for (int c = 0; c < dh; c++) O[(size_t)i * d + c] /= sum_row[i];
}

static void FN(attention_fwd)(void *out_, void *lse_, const void *qkv_, const nv_attn_segs *segs,
                              int n, int H, int dh, int window) {
    const size_t nd = (size_t)n * H * dh;
    CK(out_, nd * sizeof(act), NV_T_ACT, "attention_fwd", "out");
    CK(lse_, (size_t)n * H * sizeof(real), NV_T_STATE, "attention_fwd", "lse");
    CK(qkv_, 3 * nd * sizeof(act), NV_T_ACT, "attention_fwd", "qkv");
    real *to, *tq, *lse = lse_;
    real *out = FN(out_view)(out_, nd, 0, &to);
    const real *qkv = FN(real_view)(qkv_, 3 * nd, &tq);
    const int r = window > 0 ? window / 2 : n, span = FN(attn_span)(segs, window);
    const int BQ = attn_bq(window);
    const real scale = (real)(1.0 / sqrt((double)dh));
    nv_cpu_blas_serial();
    memset(out, 0, nd * sizeof(real)); // pads
    memset(lse, 0, (size_t)n * H * sizeof(real));
    // tasks: (segment, query block, head), blocks of a segment numbered from its start
    int nblk = 0;
    for (int s = 0; s < segs->n_segs; s++) nblk += (segs->len[s] + BQ - 1) / BQ;
    int *bseg = malloc((size_t)(nblk > 0 ? nblk : 1) * 2 * sizeof(int));
    if (!bseg) {
        fprintf(stderr, "nvwa: attention: out of memory\n");
        abort();
    }
    for (int s = 0, k = 0; s < segs->n_segs; s++)
        for (int i0 = 0; i0 < segs->len[s]; i0 += BQ, k++)
            bseg[2 * k] = s, bseg[2 * k + 1] = i0;
    const int tasks = nblk * H;
#pragma omp parallel if (FN(attn_work)(segs, H, dh, window) > PAR_MIN)
    {
        real *S = FN(attn_scratch)((size_t)BQ * span); // this thread's score block
#pragma omp for schedule(dynamic, 1)
        for (int t = 0; t < tasks; t++) {
            const int k = t / H, h = t % H, s = bseg[2 * k];
            const int s0 = segs->start[s], s1 = s0 + segs->len[s], i0 = s0 + bseg[2 * k + 1];
            const int i1 = i0 + BQ < s1 ? i0 + BQ : s1;
            FN(attn_fwd_block)(out, lse, qkv, S, i0, i1, s0, s1, r, h, H, dh, scale);
        }
        free(S);
    }
    free(bseg);
    FN(out_commit)(out_, to, nd);
    free(tq);
}

// One query block of the backward (see the top of the file).
static void FN(attn_bwd_block)(real *dqkv, const real *dout, const real *qkv, const real *out,
                               const real *lse, real *P, real *dS, int i0, int i1, int s0,
                               int s1, int r, int h, int H, int dh, real scale) {
    const int d = H * dh, ld = 3 * d, bq = i1 - i0;
    int lo, hi;
    FN(attn_range)(i0, i1, s0, s1, r, &lo, &hi);
    const int nk = hi - lo + 1;
    const size_t qo = (size_t)i0 * ld + h * dh, ko = (size_t)lo * ld + d + h * dh;
    const size_t vo = (size_t)lo * ld + 2 * d + h * dh;
    const real *dO = dout + (size_t)i0 * d + h * dh;
    GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, bq, nk, dh, scale, qkv + qo, ld, qkv + ko, ld,
         0, P, nk);
    GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, bq, nk, dh, 1, dO, d, qkv + vo, ld, 0, dS, nk);
    for (int i = i0; i < i1; i++) {
        real *p = P + (size_t)(i - i0) * nk, *ds = dS + (size_t)(i - i0) * nk;
        const int a = (i - r > lo ? i - r : lo) - lo, b = (i + r < hi ? i + r : hi) - lo;
        const real li = lse[(size_t)i * H + h];
        const real Di = FN(dot)(dout + (size_t)i * d + h * dh, out + (size_t)i * d + h * dh, dh);
        for (int j = 0; j < a; j++) p[j] = 0, ds[j] = 0;
        FN(attn_bwd_row)(p + a, ds + a, li, Di, b - a + 1);
        for (int j = b + 1; j < nk; j++) p[j] = 0, ds[j] = 0;
        if (!ACT_IS_REAL) // the GPU's bf16 operands of the dV, dQ, dK products
            for (int j = a; j <= b; j++) p[j] = RB(p[j]), ds[j] = RB(ds[j]);
    }
    GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, nk, dh, bq, 1, P, nk, dO, d, 1, dqkv + vo, ld);
    GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, bq, dh, nk, scale, dS, nk, qkv + ko, ld, 0,
         dqkv + qo, ld);
    GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, nk, dh, bq, scale, dS, nk, qkv + qo, ld, 1,
         dqkv + ko, ld);
}

static void FN(attention_bwd)(void *dqkv_, const void *dout_, const void *qkv_, const void *out_,
                              const void *lse_, const nv_attn_segs *segs, int n, int H, int dh,
                              int window) {
    const size_t nd = (size_t)n * H * dh;
    CK(dqkv_, 3 * nd * sizeof(act), NV_T_ACT, "attention_bwd", "dqkv");
    CK(dout_, nd * sizeof(act), NV_T_ACT, "attention_bwd", "dout");
    CK(qkv_, 3 * nd * sizeof(act), NV_T_ACT, "attention_bwd", "qkv");
    CK(out_, nd * sizeof(act), NV_T_ACT, "attention_bwd", "out");
    CK(lse_, (size_t)n * H * sizeof(real), NV_T_STATE, "attention_bwd", "lse");
    real *tg, *tdo, *tq, *to;
    real *dqkv = FN(out_view)(dqkv_, 3 * nd, 0, &tg);
    const real *dout = FN(real_view)(dout_, nd, &tdo), *qkv = FN(real_view)(qkv_, 3 * nd, &tq);
    const real *out = FN(real_view)(out_, nd, &to), *lse = lse_;
    const int r = window > 0 ? window / 2 : n, span = FN(attn_span)(segs, window);
    const int tasks = segs->n_segs * H, BQ = attn_bq(window);
    const real scale = (real)(1.0 / sqrt((double)dh));
    nv_cpu_blas_serial();
    memset(dqkv, 0, 3 * nd * sizeof(real)); // overwrite semantics; pads zero
#pragma omp parallel if (FN(attn_work)(segs, H, dh, window) > PAR_MIN)
    {
        real *P = FN(attn_scratch)((size_t)BQ * span);  // this thread's P block
        real *dS = FN(attn_scratch)((size_t)BQ * span); // and its dP / dS block
#pragma omp for schedule(dynamic, 1)
        for (int t = 0; t < tasks; t++) {
            const int s = t / H, h = t % H, s0 = segs->start[s], s1 = s0 + segs->len[s];
            for (int i0 = s0; i0 < s1; i0 += BQ) {
                const int i1 = i0 + BQ < s1 ? i0 + BQ : s1;
                FN(attn_bwd_block)(dqkv, dout, qkv, out, lse, P, dS, i0, i1, s0, s1, r, h, H, dh,
                                   scale);
            }
        }
        free(P);
        free(dS);
    }
    FN(out_commit)(dqkv_, tg, 3 * nd);
    free(tdo), free(tq), free(to);
}
