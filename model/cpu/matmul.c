// matmul.c - linear layers through BLAS: out[n,o] = inp[n,i] W[o,i]^T (+ bias[o]).
// Written over `real`, FN() and GEMM (cblas_sgemm or cblas_dgemm); included by cpu_f32.c
// and cpu_f64.c, never compiled alone.

static void FN(matmul_fwd)(void *out_, const void *inp, const void *W, const void *bias_, int n,
                           int in_dim, int out_dim) {
    real *out = out_;
    const real *bias = bias_;
    if (bias) { // start from the bias and let the GEMM add onto it (beta = 1)
#pragma omp parallel for if ((size_t)n * out_dim > PAR_MIN)
        for (int i = 0; i < n; i++)
            memcpy(out + (size_t)i * out_dim, bias, (size_t)out_dim * sizeof(real));
    }
    GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, n, out_dim, in_dim, 1, inp, in_dim, W, in_dim,
         bias ? 1 : 0, out, out_dim);
}

// dinp = dout W (overwritten; skipped if NULL); dW += dout^T inp; dbias += column sums.
static void FN(matmul_bwd)(void *dinp, void *dW, void *dbias_, const void *dout_,
                           const void *inp, const void *W, int n, int in_dim, int out_dim) {
    const real *dout = dout_;
    if (dinp)
        GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, in_dim, out_dim, 1, dout, out_dim, W,
             in_dim, 0, dinp, in_dim);
    GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, out_dim, in_dim, n, 1, dout, out_dim, inp,
         in_dim, 1, dW, in_dim);
    if (dbias_) {
        real *dbias = dbias_;
        const int nb = (out_dim + COL_BLOCK - 1) / COL_BLOCK;
        // column blocks in parallel, rows in order: deterministic for any thread count
#pragma omp parallel for if ((size_t)n * out_dim > PAR_MIN)
        for (int b = 0; b < nb; b++) {
            const int c0 = b * COL_BLOCK, c1 = c0 + COL_BLOCK < out_dim ? c0 + COL_BLOCK : out_dim;
            double acc[COL_BLOCK] = {0};
            for (int i = 0; i < n; i++)
                for (int c = c0; c < c1; c++) acc[c - c0] += dout[(size_t)i * out_dim + c];
            for (int c = c0; c < c1; c++) dbias[c] += (real)acc[c - c0];
        }
    }
}
