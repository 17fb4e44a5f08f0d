// bench_cpu_attention.c - CPU attention forward and backward time for one packed segment
// (default 1024 tokens, H=8, dh=64), global and windowed: the median of a few repetitions.
//
//   bench_cpu_attention [LEN [H [DH [WINDOW ...]]]]   (no windows given: 0 and 128)
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "model/backend.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double cpu(void) { // CPU seconds of the whole process (all threads): robust to load
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    const int len = argc > 1 ? atoi(argv[1]) : 1024, H = argc > 2 ? atoi(argv[2]) : 8;
    const int dh = argc > 3 ? atoi(argv[3]) : 64, d = H * dh, n = len;
    int windows[8] = {0, 128}, nw = 2;
    if (argc > 4) {
        nw = 0;
        for (int i = 4; i < argc && nw < 8; i++) windows[nw++] = atoi(argv[i]);
    }
    const nv_backend *B = nv_backend_cpu();
    double *h = malloc((size_t)n * 3 * d * sizeof(double));
    srand(1);
    for (size_t i = 0; i < (size_t)n * 3 * d; i++) h[i] = (rand() / (double)RAND_MAX - 0.5) * 2;
    void *qkv = B->alloc((size_t)n * 3 * d * 4), *dqkv = B->alloc((size_t)n * 3 * d * 4);
    void *out = B->alloc((size_t)n * d * 4), *dout = B->alloc((size_t)n * d * 4);
    void *lse = B->alloc((size_t)n * H * 4);
    B->upload_act(qkv, h, (size_t)n * 3 * d);
    B->upload_act(dout, h, (size_t)n * d);
    int32_t st[1] = {0}, ln[1] = {len};
    nv_attn_segs segs = {st, ln, 1, len};
    printf("| segment | H | dh | window | fwd (ms) | bwd (ms) | fwd+bwd (ms) "
           "| fwd+bwd CPU (ms) |\n");
    printf("| --- | --- | --- | --- | --- | --- | --- | --- |\n");
    for (int w = 0; w < nw; w++) {
        enum { R = 5 };
        double tf[R], tb[R], tc[R];
        int reps = R;
        for (int r = 0; r < reps; r++) {
            double c0 = cpu(), t0 = now();
            B->attention_fwd(out, lse, qkv, &segs, n, H, dh, windows[w]);
            double t1 = now();
            B->attention_bwd(dqkv, dout, qkv, out, lse, &segs, n, H, dh, windows[w]);
            double t2 = now();
            tc[r] = (cpu() - c0) * 1e3;
            tf[r] = (t1 - t0) * 1e3, tb[r] = (t2 - t1) * 1e3;
            if (t2 - t0 > 5.0) { reps = r + 1; break; } // slow: one or two runs are enough
        }
        qsort(tf, reps, sizeof *tf, cmp), qsort(tb, reps, sizeof *tb, cmp);
        qsort(tc, reps, sizeof *tc, cmp);
        printf("| %d | %d | %d | %d | %.2f | %.2f | %.2f | %.2f |\n", len, H, dh, windows[w],
               tf[reps / 2], tb[reps / 2], tf[reps / 2] + tb[reps / 2], tc[reps / 2]);
    }
    B->free(qkv), B->free(dqkv), B->free(out), B->free(dout), B->free(lse), free(h);
    return 0;
}
