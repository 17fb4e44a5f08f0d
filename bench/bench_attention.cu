// bench_attention.cu - the CUDA attention, forward and backward, in TFLOP/s: the hand-written
// kernel ("native") and cuDNN's fused SDPA ("cudnn", attention_cudnn.cu) on the same inputs.
// Packed rows of seq-length tokens, either one full segment per row or RNAcentral-like
// segments (<cls> seq <eos>, lengths drawn from a fixed mixture: 60% 20-150 nt, 30% 150-500,
// 10% 500 up to a full row, as tRNA / snRNA / miRNA, then lncRNA and rRNA fragments), global
// or windowed. Timed with CUDA events on the backend's stream after warm-up; median of the
// repeats. FLOPs follow the FlashAttention convention over the visible (query, key) pairs of
// every segment: forward 4 dh per pair and head (QK^T and PV), backward 2.5x forward.
// Prints a table and appends it, with date, device, commit and config, to
// bench/results/attention.txt. Exits 77 without a usable GPU.
//
//   bench_attention [--seq 1024] [--rows 16] [--heads 16] [--dh 64] [--window 0]
//                   [--segments full|rnacentral] [--impl both|native|cudnn] [--iters 20]
//                   [--chunk N]
// --chunk N adds a row "cudnn/N": cuDNN's backward in chunks of N segments, as a prepared
// run does when a batch's one graph needs more workspace than was reserved.
#include <getopt.h>
#include <time.h>

#include "model/cuda/common.cuh"
#include "model/cuda/cuda_api.h"

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

// visible (query, key) pairs of one segment of length L (design section 11)
static double pairs(int L, int window) {
    if (window <= 0) return (double)L * L;
    const double r = window / 2;
    if (L <= r) return (double)L * L;
    return (double)L * (2 * r + 1) - r * (r + 1);
}

static uint64_t rng_state = 88172645463325252ull;
static double urand(void) {
    rng_state ^= rng_state << 13; rng_state ^= rng_state >> 7; rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}

// segments of `rows` rows of L tokens; returns their count
static int pack(int rows, int L, int rnac, int32_t *st, int32_t *ln, int *maxlen) {
    int ns = 0;
    *maxlen = 0;
    for (int r = 0; r < rows; r++) {
        int at = r * L, left = L;
        for (;;) {
            int l = L;
            if (rnac) {
                const double u = urand();
                const int lo = u < 0.6 ? 20 : u < 0.9 ? 150 : 500, hi = u < 0.6 ? 150 : u < 0.9 ? 500 : L - 2;
                l = lo + (int)(urand() * (hi - lo)) + 2; // <cls> seq <eos>
                if (l > L) l = L;
            }
            if (l > left) break; // the rest of the row is pad
            st[ns] = at;
            ln[ns] = l;
            if (l > *maxlen) *maxlen = l;
            ns++;
            at += l;
            left -= l;
            if (!rnac) break;
        }
    }
    return ns;
}

static void usage(FILE *f) {
    fprintf(f, "usage: bench_attention [--seq N] [--rows N] [--heads N] [--dh 32|64|128] [--window W]\n"
               "                       [--segments full|rnacentral] [--impl both|native|cudnn]\n"
               "                       [--iters N] [--chunk N] [--out FILE]\n");
}

typedef struct { double ms_f, ms_b; int ok; } timing;

static timing run_impl(const nv_backend *G, int impl, void *out, void *lse, void *qkv, void *dout,
                       void *dqkv, const nv_attn_segs *segs, int n, int H, int dh, int window, int iters,
                       int chunk) {
    timing t = {0, 0, 1};
    if (impl >= 1) {
        const char *why = NULL;
        if (!nv_cuda_cudnn_attention_ok(0, segs, n, H, dh, window, &why) ||
            !nv_cuda_cudnn_attention_ok(1, segs, n, H, dh, window, &why)) {
            printf("cudnn: not run: %s\n", why ? why : "?");
            t.ok = 0;
            return t;
        }
    }
    nv_cuda_set_attention(impl >= 1 ? 1 : 2);
    nv_cuda_cudnn_test_chunk(impl == 2 ? chunk : 0);
    cudaStream_t stream = nvc()->stream;
    cudaEvent_t e0, e1, e2;
    CUDA_CHECK(cudaEventCreate(&e0));
    CUDA_CHECK(cudaEventCreate(&e1));
    CUDA_CHECK(cudaEventCreate(&e2));
    for (int w = 0; w < 3; w++) { // warmup: module load, graphs, shared-memory attributes, clocks
        G->attention_fwd(out, lse, qkv, segs, n, H, dh, window);
        G->attention_bwd(dqkv, dout, qkv, out, lse, segs, n, H, dh, window);
    }
    G->sync();
    float *tf = (float *)malloc(iters * sizeof(float)), *tb = (float *)malloc(iters * sizeof(float));
    for (int it = 0; it < iters; it++) {
        CUDA_CHECK(cudaEventRecord(e0, stream));
        G->attention_fwd(out, lse, qkv, segs, n, H, dh, window);
        CUDA_CHECK(cudaEventRecord(e1, stream));
        G->attention_bwd(dqkv, dout, qkv, out, lse, segs, n, H, dh, window);
        CUDA_CHECK(cudaEventRecord(e2, stream));
        CUDA_CHECK(cudaEventSynchronize(e2));
        CUDA_CHECK(cudaEventElapsedTime(&tf[it], e0, e1));
        CUDA_CHECK(cudaEventElapsedTime(&tb[it], e1, e2));
    }
    qsort(tf, iters, sizeof(float), cmp_float);
    qsort(tb, iters, sizeof(float), cmp_float);
    t.ms_f = tf[iters / 2];
    t.ms_b = tb[iters / 2];
    free(tf);
    free(tb);
    CUDA_CHECK(cudaEventDestroy(e0));
    CUDA_CHECK(cudaEventDestroy(e1));
    CUDA_CHECK(cudaEventDestroy(e2));
    nv_cuda_cudnn_test_chunk(0);
    return t;
}

int main(int argc, char **argv) {
    int L = 1024, rows = 16, H = 16, dh = 64, window = 0, iters = 20, rnac = 0, which = 0, chunk = 0;
    const char *outpath = "bench/results/attention.txt";
    static struct option opts[] = {{"seq", 1, 0, 's'},   {"rows", 1, 0, 'r'},     {"heads", 1, 0, 'H'},
                                   {"dh", 1, 0, 'd'},    {"window", 1, 0, 'w'},   {"iters", 1, 0, 'i'},
                                   {"out", 1, 0, 'o'},   {"segments", 1, 0, 'S'}, {"impl", 1, 0, 'I'},
                                   {"chunk", 1, 0, 'c'}, {"help", 0, 0, 'h'},  {0, 0, 0, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "s:r:H:d:w:i:o:S:I:c:h", opts, NULL)) != -1) {
        switch (ch) {
        case 's': L = atoi(optarg); break;
        case 'r': rows = atoi(optarg); break;
        case 'H': H = atoi(optarg); break;
        case 'd': dh = atoi(optarg); break;
        case 'w': window = atoi(optarg); break;
        case 'i': iters = atoi(optarg); break;
        case 'c': chunk = atoi(optarg); break;
        case 'o': outpath = optarg; break;
        case 'S':
            if (!strcmp(optarg, "rnacentral")) rnac = 1;
            else if (strcmp(optarg, "full")) { usage(stderr); return 2; }
            break;
        case 'I':
            which = !strcmp(optarg, "native") ? 1 : !strcmp(optarg, "cudnn") ? 2 : !strcmp(optarg, "both") ? 0 : -1;
            if (which < 0) { usage(stderr); return 2; }
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (L <= 8 || rows <= 0 || H <= 0 || iters <= 0 || window < 0 || chunk < 0 || !(dh == 32 || dh == 64 || dh == 128)) {
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
    double *h = (double *)malloc(sq * sizeof *h); // random bf16, never zeros
    for (size_t i = 0; i < sq; i++) h[i] = (urand() - 0.5) * 3.0;
    void *qkv = G->alloc(sq * 2), *out = G->alloc(so * 2), *lse = G->alloc((size_t)n * H * 4);
    void *dout = G->alloc(so * 2), *dqkv = G->alloc(sq * 2);
    G->upload_act(qkv, h, sq);
    G->upload_act(dout, h, so);
    int32_t *st = (int32_t *)malloc((size_t)n * 4), *ln = (int32_t *)malloc((size_t)n * 4);
    int maxlen = 0;
    const int ns = pack(rows, L, rnac, st, ln, &maxlen);
    double vis = 0, real = 0;
    for (int s = 0; s < ns; s++) {
        vis += pairs(ln[s], window);
        real += ln[s];
    }
    int32_t *dst = (int32_t *)G->alloc((size_t)ns * 4), *dln = (int32_t *)G->alloc((size_t)ns * 4);
    G->to_device(dst, st, (size_t)ns * 4);
    G->to_device(dln, ln, (size_t)ns * 4);
    nv_attn_segs segs = {dst, dln, ns, maxlen};
    const double fwd_flops = 4.0 * dh * H * vis, bwd_flops = 2.5 * fwd_flops;

    timing t[3] = {{0, 0, 0}, {0, 0, 0}, {0, 0, 0}};
    for (int impl = 0; impl < 3; impl++)
        if ((impl < 2 && (which == 0 || which == impl + 1)) || (impl == 2 && chunk > 0 && which != 1))
            t[impl] = run_impl(G, impl, out, lse, qkv, dout, dqkv, &segs, n, H, dh, window, iters, chunk);

    cudaDeviceProp prop;
    CUDA_CHECK(cudaGetDeviceProperties(&prop, nvc()->device));
    char commit[64] = "unknown";
    // the device build records its commit (tools/device-prepare): the copied tree's git may not
    FILE *p = popen("{ head -c 7 \"$NVWA_BUILD_ROOT/COMMIT\" && echo; } 2>/dev/null || "
                    "git rev-parse --short HEAD 2>/dev/null", "r");
    if (p) {
        if (fgets(commit, sizeof commit, p)) commit[strcspn(commit, "\n")] = 0;
        pclose(p);
    }
    char date[32];
    time_t now = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%d %H:%M", localtime(&now));
    char table[2048];
    int k = snprintf(table, sizeof table,
                     "# %s  device %s  commit %s\n"
                     "# seq %d rows %d heads %d dh %d window %d segments %s (%d, mean %.0f tokens, "
                     "%.0f%% of the rows) iters %d (median)\n"
                     "%-8s %10s %10s %10s %10s %12s\n",
                     date, prop.name, commit, L, rows, H, dh, window, rnac ? "rnacentral" : "full",
                     ns, real / ns, 100.0 * real / n, iters, "impl", "fwd ms", "bwd ms", "fwd TF/s",
                     "bwd TF/s", "fwd+bwd TF/s");
    char chunked[32];
    snprintf(chunked, sizeof chunked, "cudnn/%d", chunk);
    const char *names[3] = {"native", "cudnn", chunked};
    for (int i = 0; i < 3; i++) {
        if (!t[i].ok) continue;
        k += snprintf(table + k, sizeof table - k, "%-8s %10.3f %10.3f %10.1f %10.1f %12.1f\n", names[i],
                      t[i].ms_f, t[i].ms_b, fwd_flops / t[i].ms_f * 1e-9, bwd_flops / t[i].ms_b * 1e-9,
                      (fwd_flops + bwd_flops) / (t[i].ms_f + t[i].ms_b) * 1e-9);
    }
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
    free(h); free(st); free(ln);
    return 0;
}
