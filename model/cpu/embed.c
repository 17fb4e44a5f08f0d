// embed.c - token (+ structure) embedding lookup and its deterministic backward.
// Written over `real`, `act` and FN(); included by the cpu_*.c instances, never compiled alone.

static void FN(embed_fwd)(void *out_, const int32_t *tok, const int32_t *sin, const void *Et_,
                          const void *Es_, int n, int d) {
    act *out = out_;
    const act *Et = Et_, *Es = Es_;
    CK(out_, (size_t)n * d * sizeof(act), NV_T_ACT, "embed_fwd", "out");
    CK(Et_, (size_t)d * sizeof(act), NV_T_ACT, "embed_fwd", "E_tok");
    CK(Es_, (size_t)d * sizeof(act), NV_T_ACT, "embed_fwd", "E_struct");
    CK(tok, (size_t)n * 4, NV_T_I32, "embed_fwd", "tok");
#pragma omp parallel for if ((size_t)n * d > PAR_MIN)
    for (int i = 0; i < n; i++) {
        act *o = out + (size_t)i * d;
        const act *et = Et + (size_t)tok[i] * d;
        if (Es) {
            const act *es = Es + (size_t)sin[i] * d;
            for (int c = 0; c < d; c++) o[c] = STA(LDA(et[c]) + LDA(es[c]));
        } else {
            for (int c = 0; c < d; c++) o[c] = et[c];
        }
    }
}

// dE[ids[i]] += dout[i] for a table of `rows` rows. Sums go into a double scratch table
// (thousands of tokens land on 16 rows, so float running sums would lose digits), in token
// order within each column block; blocks are independent, so the result is the same for any
// thread count.
static void FN(embed_accum)(real *dE, const act *dout, const int32_t *ids, int rows, int n,
                            int d) {
    double *acc = calloc((size_t)rows * d, sizeof(double));
    if (!acc) {
        fprintf(stderr, "nvwa: embed_bwd: out of memory\n");
        abort();
    }
    const int nb = (d + COL_BLOCK - 1) / COL_BLOCK;
#pragma omp parallel for if ((size_t)n * d > PAR_MIN)
    for (int b = 0; b < nb; b++) {
        const int c0 = b * COL_BLOCK, c1 = c0 + COL_BLOCK < d ? c0 + COL_BLOCK : d;
        for (int i = 0; i < n; i++) {
            double *a = acc + (size_t)ids[i] * d;
            const act *g = dout + (size_t)i * d;
            for (int c = c0; c < c1; c++) a[c] += LDA(g[c]);
        }
    }
    for (size_t k = 0; k < (size_t)rows * d; k++) dE[k] += (real)acc[k];
    free(acc);
}

static void FN(embed_bwd)(void *dEt, void *dEs, const void *dout, const int32_t *tok,
                          const int32_t *sin, int n, int d, int V) {
    CK(dEt, (size_t)V * d * sizeof(real), NV_T_STATE, "embed_bwd", "dE_tok");
    CK(dEs, (size_t)d * sizeof(real), NV_T_STATE, "embed_bwd", "dE_struct");
    CK(dout, (size_t)n * d * sizeof(act), NV_T_ACT, "embed_bwd", "dout");
    FN(embed_accum)(dEt, dout, tok, V, n, d);
    if (dEs) {
        int rows = 0; // the structure table's height is not passed: take it from the ids
        for (int i = 0; i < n; i++)
            if (sin[i] + 1 > rows) rows = sin[i] + 1;
        FN(embed_accum)(dEs, dout, sin, rows, n, d);
    }
}
