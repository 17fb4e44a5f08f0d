// matmul.c - linear layers through BLAS: out[n,o] = inp[n,i] W[o,i]^T (+ bias[o]).
// BLAS runs single-threaded (common.inc); big GEMMs are cut into at most MM_PARTS blocks of
// whole output rows or columns, fixed by the shape alone, and the blocks spread over OpenMP.
// Every output element is one BLAS dot over the full inner dimension, whoever computes it:
// the same bits for any thread count.
// On cpu-bf16 the act operands are converted to float views (common.inc) and each act output
// is rounded once after the fp32 GEMM (and the bias), as cuBLASLt's epilogue does.
// Written over `real`, `act`, FN() and GEMM (cblas_sgemm or cblas_dgemm); included by the
// cpu_*.c instances, never compiled alone.

#define MM_PARTS 8                      // blocks per big GEMM (2-8 cores get even shares)
#define MM_PAR_FLOPS ((size_t)1 << 22) // below this many multiply-adds: one call

// block width for cutting `dim` into at most MM_PARTS pieces of >= min_blk (multiple of 16)
static int FN(mm_blk)(int dim, int min_blk) {
    int b = (dim + MM_PARTS - 1) / MM_PARTS;
    b = (b + 15) & ~15;
    return b < min_blk ? min_blk : b;
}

// C[M,N] = op(A)[M,K] op(B)[K,N] + beta C with A not transposed (row-major, lda), B given
// as tb: CblasTrans means B is stored [N, K] (rows of B are columns of op(B)). Big products
// are cut into blocks of whole rows of C (each block packs all of B again) or whole columns
// (each packs all of A again), whichever repeats the smaller operand; blocks spread over
// OpenMP.
static void FN(gemm_par)(CBLAS_TRANSPOSE tb, int M, int N, int K, const real *A, int lda,
                         const real *B, int ldb, real beta, real *C, int ldc) {
    if ((size_t)M * N * K < MM_PAR_FLOPS) {
        GEMM(CblasRowMajor, CblasNoTrans, tb, M, N, K, 1, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    if (N <= M) { // B (K x N) is the smaller: cut rows
        const int bm = FN(mm_blk)(M, 256), nb = (M + bm - 1) / bm;
#pragma omp parallel for schedule(dynamic, 1)
        for (int b = 0; b < nb; b++) {
            const int m0 = b * bm, m = m0 + bm < M ? bm : M - m0;
            GEMM(CblasRowMajor, CblasNoTrans, tb, m, N, K, 1, A + (size_t)m0 * lda, lda, B, ldb,
                 beta, C + (size_t)m0 * ldc, ldc);
        }
    } else { // A (M x K) is the smaller: cut columns
        const int bn = FN(mm_blk)(N, 256), nb = (N + bn - 1) / bn;
#pragma omp parallel for schedule(dynamic, 1)
        for (int b = 0; b < nb; b++) {
            const int n0 = b * bn, w = n0 + bn < N ? bn : N - n0;
            const real *Bb = tb == CblasTrans ? B + (size_t)n0 * ldb : B + n0;
            GEMM(CblasRowMajor, CblasNoTrans, tb, M, w, K, 1, A, lda, Bb, ldb, beta, C + n0, ldc);
        }
    }
}

static void FN(matmul_fwd)(void *out_, const void *inp_, const void *W_, const void *bias_,
                           int n, int in_dim, int out_dim) {
    const size_t no = (size_t)n * out_dim;
    CK(out_, no * sizeof(act), NV_T_ACT, "matmul_fwd", "out");
    CK(inp_, (size_t)n * in_dim * sizeof(act), NV_T_ACT, "matmul_fwd", "inp");
    CK(W_, (size_t)out_dim * in_dim * sizeof(act), NV_T_ACT, "matmul_fwd", "W");
    CK(bias_, (size_t)out_dim * sizeof(act), NV_T_ACT, "matmul_fwd", "bias");
    real *ti, *tw, *tb, *to;
    const real *inp = FN(real_view)(inp_, (size_t)n * in_dim, &ti);
    const real *W = FN(real_view)(W_, (size_t)out_dim * in_dim, &tw);
    const real *bias = FN(real_view)(bias_, (size_t)out_dim, &tb);
    real *out = FN(out_view)(out_, no, 0, &to);
    nv_cpu_blas_serial();
    if (bias) { // start from the bias and let the GEMM add onto it (beta = 1)
#pragma omp parallel for if (no > PAR_MIN)
        for (int i = 0; i < n; i++)
            memcpy(out + (size_t)i * out_dim, bias, (size_t)out_dim * sizeof(real));
    }
    FN(gemm_par)(CblasTrans, n, out_dim, in_dim, inp, in_dim, W, in_dim, bias ? 1 : 0, out,
                 out_dim);
    FN(out_commit)(out_, to, no);
    free(ti), free(tw), free(tb);
}

// dinp = dout W (overwritten; skipped if NULL); dW += dout^T inp; dbias += column sums.
static void FN(matmul_bwd)(void *dinp_, void *dW_, void *dbias_, const void *dout_,
                           const void *inp_, const void *W_, int n, int in_dim, int out_dim) {
    real *dW = dW_;
    const size_t ni = (size_t)n * in_dim;
    CK(dinp_, ni * sizeof(act), NV_T_ACT, "matmul_bwd", "dinp");
    CK(dW_, (size_t)out_dim * in_dim * sizeof(real), NV_T_STATE, "matmul_bwd", "dW");
    CK(dbias_, (size_t)out_dim * sizeof(real), NV_T_STATE, "matmul_bwd", "dbias");
    CK(dout_, (size_t)n * out_dim * sizeof(act), NV_T_ACT, "matmul_bwd", "dout");
    CK(inp_, ni * sizeof(act), NV_T_ACT, "matmul_bwd", "inp");
    CK(W_, (size_t)out_dim * in_dim * sizeof(act), NV_T_ACT, "matmul_bwd", "W");
    real *tdo, *ti = NULL, *tw = NULL, *tdi = NULL;
    const real *dout = FN(real_view)(dout_, (size_t)n * out_dim, &tdo);
    const real *inp = dW ? FN(real_view)(inp_, ni, &ti) : NULL;
    nv_cpu_blas_serial();
    if (dinp_) {
        const real *W = FN(real_view)(W_, (size_t)out_dim * in_dim, &tw);
        real *dinp = FN(out_view)(dinp_, ni, 0, &tdi);
        FN(gemm_par)(CblasNoTrans, n, in_dim, out_dim, dout, out_dim, W, in_dim, 0, dinp,
                     in_dim);
        FN(out_commit)(dinp_, tdi, ni);
        free(tw);
    }
    // dW [out, in] += dout^T inp, a sum over the n rows: cut dW into blocks of whole rows
    // (columns of dout) or whole columns (columns of inp), the longer side
    if (!dW) {
        // no weight gradient asked for
    } else if ((size_t)n * in_dim * out_dim < MM_PAR_FLOPS) {
        GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, out_dim, in_dim, n, 1, dout, out_dim, inp,
             in_dim, 1, dW, in_dim);
    } else if (out_dim >= in_dim) {
        const int bo = FN(mm_blk)(out_dim, 16), nb = (out_dim + bo - 1) / bo;
#pragma omp parallel for schedule(dynamic, 1)
        for (int b = 0; b < nb; b++) {
            const int o0 = b * bo, o = o0 + bo < out_dim ? bo : out_dim - o0;
            GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, o, in_dim, n, 1, dout + o0, out_dim,
                 inp, in_dim, 1, dW + (size_t)o0 * in_dim, in_dim);
        }
    } else {
        const int bi = FN(mm_blk)(in_dim, 16), nb = (in_dim + bi - 1) / bi;
#pragma omp parallel for schedule(dynamic, 1)
        for (int b = 0; b < nb; b++) {
            const int i0 = b * bi, w = i0 + bi < in_dim ? bi : in_dim - i0;
            GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, out_dim, w, n, 1, dout, out_dim,
                 inp + i0, in_dim, 1, dW + i0, in_dim);
        }
    }
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
    free(tdo), free(ti);
}
