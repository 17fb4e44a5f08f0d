// bench_attention.cu - the CUDA backend's attention, forward and backward, in TFLOP/s.
// Rows of seq-length tokens, one segment per row (the packed batch's best case), global and
// local windows, timed with CUDA events on the backend's stream after warmup; median of the
// repeats. FLOPs follow the FlashAttention convention: forward 4 * L^2 * dh per head and
// sequence (QK^T and PV), backward 2.5x forward (its five products; our backward recomputes
// two more, which are not counted). A local window counts only the visible pairs.
// Prints a table and appends it, with date, device, commit and config, to
// bench/results/attention.txt. Exits 77 without a usable GPU.
//
//   bench_attention [--seq 1024] [--rows 16] [--heads 16] [--dh 64] [--window 0] [--iters 20]
#include <getopt.h>
#include <time.h>

#include "model/cuda/common.cuh"

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

// visible (query, key) pairs of one segment of length L
static double pairs(int L, int window) {
    if (window <= 0) return (double)L * L;
    const double r = window / 2;
    if (L <= 2 * r) return (double)L * L; // as design section 11: n^2 when n <= 2r
    return (double)L * (2 * r + 1) - r * (r + 1);
}

static void usage(FILE *f) {
    fprintf(f, "usage: bench_attention [--seq N] [--rows N] [--heads N] [--dh 32|64|128] "
               "[--window W] [--iters N] [--out FILE]\n");
}

int main(int argc, char **argv) {
    int L = 1024, rows = 16, H = 16, dh = 64, window = 0, iters = 20;
    const char *outpath = "bench/results/attention.txt";
    static struct option opts[] = {{"seq", 1, 0, 's'},   {"rows", 1, 0, 'r'},  {"heads", 1, 0, 'H'},
                                   {"dh", 1, 0, 'd'},    {"window", 1, 0, 'w'}, {"iters", 1, 0, 'i'},
                                   {"out", 1, 0, 'o'},   {"help", 0, 0, 'h'},  {0, 0, 0, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "s:r:H:d:w:i:o:h", opts, NULL)) != -1) {
        switch (ch) {
        case 's': L = atoi(optarg); break;
        case 'r': rows = atoi(optarg); break;
        case 'H': H = atoi(optarg); break;
        case 'd': dh = atoi(optarg); break;
        case 'w': window = atoi(optarg); break;
        case 'i': iters = atoi(optarg); break;
        case 'o': outpath = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (L <= 0 || rows <= 0 || H <= 0 || iters <= 0 || !(dh == 32 || dh == 64 || dh == 128)) {
        usage(stderr);
        return 2;
    }
    const char *why = NULL;
    const nv_backend *G = nv_backend_cuda(&why);
    if (!G) {
        printf("bench_attention: skipped: %s\n", why ? why : "no CUDA backend");
        return 77;
    }
    const int n = L * rows, d = H * dh;
    const size_t sq = (size_t)n * 3 * d, so = (size_t)n * d;
    // inputs: random bf16 (never zeros: they hide bad indexing and can run faster)
    double *h = (double *)malloc(sq * sizeof *h);
    uint64_t s = 88172645463325252ull;
    for (size_t i = 0; i < sq; i++) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        h[i] = ((double)(s >> 11) / 9007199254740992.0 - 0.5) * 3.0;
    }
    void *qkv = G->alloc(sq * 2), *out = G->alloc(so * 2), *lse = G->alloc((size_t)n * H * 4);
    void *dout = G->alloc(so * 2), *dqkv = G->alloc(sq * 2);
    G->upload_act(qkv, h, sq);
    G->upload_act(dout, h, so);
    int32_t *st = (int32_t *)malloc(rows * 4), *ln = (int32_t *)malloc(rows * 4);
    for (int r = 0; r < rows; r++) {
        st[r] = r * L;
        ln[r] = L;
    }
    int32_t *dst = (int32_t *)G->alloc(rows * 4), *dln = (int32_t *)G->alloc(rows * 4);
    G->to_device(dst, st, rows * 4);
    G->to_device(dln, ln, rows * 4);
    nv_attn_segs segs = {dst, dln, rows, L};

    cudaStream_t stream = nvc()->stream;
    cudaEvent_t e0, e1, e2;
    CUDA_CHECK(cudaEventCreate(&e0));
    CUDA_CHECK(cudaEventCreate(&e1));
    CUDA_CHECK(cudaEventCreate(&e2));
    for (int w = 0; w < 3; w++) { // warmup: module load, smem attributes, clocks
        G->attention_fwd(out, lse, qkv, &segs, n, H, dh, window);
        G->attention_bwd(dqkv, dout, qkv, out, lse, &segs, n, H, dh, window);
    }
    G->sync();
    float *tf = (float *)malloc(iters * sizeof(float)), *tb = (float *)malloc(iters * sizeof(float));
    for (int it = 0; it < iters; it++) {
        CUDA_CHECK(cudaEventRecord(e0, stream));
        G->attention_fwd(out, lse, qkv, &segs, n, H, dh, window);
        CUDA_CHECK(cudaEventRecord(e1, stream));
        G->attention_bwd(dqkv, dout, qkv, out, lse, &segs, n, H, dh, window);
        CUDA_CHECK(cudaEventRecord(e2, stream));
        CUDA_CHECK(cudaEventSynchronize(e2));
        CUDA_CHECK(cudaEventElapsedTime(&tf[it], e0, e1));
        CUDA_CHECK(cudaEventElapsedTime(&tb[it], e1, e2));
    }
    qsort(tf, iters, sizeof(float), cmp_float);
    qsort(tb, iters, sizeof(float), cmp_float);
    const double ms_f = tf[iters / 2], ms_b = tb[iters / 2];
    const double fwd_flops = 4.0 * dh * H * rows * pairs(L, window);
    const double bwd_flops = 2.5 * fwd_flops;
    cudaDeviceProp prop;
    CUDA_CHECK(cudaGetDeviceProperties(&prop, nvc()->device));
    char commit[64] = "unknown";
    FILE *p = popen("git rev-parse --short HEAD 2>/dev/null", "r");
    if (p) {
        if (fgets(commit, sizeof commit, p)) commit[strcspn(commit, "\n")] = 0;
        pclose(p);
    }
    char date[32];
    time_t now = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%d %H:%M", localtime(&now));
    char table[1024];
    snprintf(table, sizeof table,
             "# %s  device %s  commit %s\n"
             "# seq %d rows %d heads %d dh %d window %d iters %d (median)\n"
             "%-10s %10s %10s\n"
             "%-10s %10.3f %10.1f\n%-10s %10.3f %10.1f\n%-10s %10.3f %10.1f\n",
             date, prop.name, commit, L, rows, H, dh, window, iters, "pass", "ms", "TFLOP/s",
             "forward", ms_f, fwd_flops / ms_f * 1e-9, "backward", ms_b, bwd_flops / ms_b * 1e-9,
             "fwd+bwd", ms_f + ms_b, (fwd_flops + bwd_flops) / (ms_f + ms_b) * 1e-9);
    fputs(table, stdout);
    FILE *f = fopen(outpath, "a");
    if (f) {
        fputs(table, f);
        fputc('\n', f);
        fclose(f);
    } else {
        fprintf(stderr, "bench_attention: cannot append to %s (run from the source root)\n", outpath);
    }
    G->free(qkv); G->free(out); G->free(lse); G->free(dout); G->free(dqkv);
    G->free(dst); G->free(dln);
    free(h); free(st); free(ln); free(tf); free(tb);
    return 0;
}
