// test_cpu_determinism.c - the CPU reductions that OpenMP splits (embedding and LayerNorm
// weight gradients, bias gradients, attention over (segment, head) pairs, sumsq) give the
// same bits with 1, 2 and 3 threads: no float atomics, no thread-count-dependent order.
// Sizes are above the single-thread cut-off, so the parallel paths really run.
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "model/backend.h"
#include "tests/testutil.h"

enum { N = 1024, D = 96, V = 16, H = 4, DH = 24 };

static void run(const nv_backend *B, const double *hx, const double *hg, const double *hq,
                const int32_t *tok, const int32_t *sin, double *res, size_t *nres) {
    const size_t a = B->act_bytes;
    void *x = B->alloc(N * D * a), *g = B->alloc(N * 3 * D * a), *q = B->alloc(N * 3 * D * a);
    B->upload_act(x, hx, N * D), B->upload_act(g, hg, N * 3 * D), B->upload_act(q, hq, N * 3 * D);
    void *w = B->alloc(D * a), *mean = B->alloc(N * a), *rstd = B->alloc(N * a);
    void *out = B->alloc(N * D * a), *dx = B->alloc(N * D * a), *dw = B->alloc(D * a);
    void *dE = B->alloc(V * D * a), *dEs = B->alloc(4 * D * a), *dW = B->alloc(3 * D * D * a);
    void *db = B->alloc(3 * D * a), *lse = B->alloc(N * H * a), *dq = B->alloc(N * 3 * D * a);
    B->upload_act(w, hx, D);
    B->layernorm_fwd(out, mean, rstd, x, w, N, D);
    B->layernorm_bwd(dx, dw, g, x, w, mean, rstd, N, D);
    B->embed_bwd(dE, dEs, g, tok, sin, N, D, V);
    B->matmul_bwd(NULL, dW, db, g, x, x, N, D, 3 * D);
    int32_t st[3] = {0, 300, 700}, ln[3] = {300, 390, 324};
    nv_attn_segs segs = {st, ln, 3, 390};
    B->attention_fwd(out, lse, q, &segs, N, H, DH, 64);
    B->attention_bwd(dq, x, q, out, lse, &segs, N, H, DH, 64);
    size_t k = 0;
    const void *keep[] = {dx, dw, dE, dEs, db, out, lse, dq};
    const size_t len[] = {N * D, D, V * D, 4 * D, 3 * D, N * D, N * H, N * 3 * D};
    for (int i = 0; i < 8; i++) B->download_act(res + k, keep[i], len[i]), k += len[i];
    res[k++] = B->sumsq(q, N * 3 * D);
    *nres = k;
    void *ptrs[] = {x, g, q, w, mean, rstd, out, dx, dw, dE, dEs, dW, db, lse, dq};
    for (size_t i = 0; i < sizeof ptrs / sizeof *ptrs; i++) B->free(ptrs[i]);
}

int main(void) {
    tu_seed();
#ifndef _OPENMP
    printf("built without OpenMP: nothing to compare\n");
    return 0;
#else
    double *x = malloc(N * D * 8), *g = malloc(N * 3 * D * 8), *q = malloc(N * 3 * D * 8);
    int32_t tok[N], sin[N];
    for (int i = 0; i < N * D; i++) x[i] = tu_normal();
    for (int i = 0; i < N * 3 * D; i++) g[i] = tu_normal(), q[i] = tu_normal();
    for (int i = 0; i < N; i++) tok[i] = tu_int(0, V - 1), sin[i] = tu_int(0, 3);
    const size_t cap = 16 * N * D;
    const nv_backend *bs[2] = {nv_backend_cpu(), nv_backend_cpu_f64()};
    const int nt0 = omp_get_max_threads();
    for (int b = 0; b < 2; b++) {
        double *r[3];
        size_t nr = 0;
        for (int t = 0; t < 3; t++) {
            omp_set_num_threads(t + 1);
            r[t] = malloc(cap * 8);
            run(bs[b], x, g, q, tok, sin, r[t], &nr);
        }
        for (int t = 1; t < 3; t++)
            CHECK(!memcmp(r[0], r[t], nr * 8), "%s: %d threads differ from 1", bs[b]->name,
                  t + 1);
        for (int t = 0; t < 3; t++) free(r[t]);
    }
    omp_set_num_threads(nt0);
    free(x), free(g), free(q);
    return tu_finish("test_cpu_determinism");
#endif
}
