// bench_kernels.cu - achieved memory bandwidth of the CUDA backend's memory-bound kernels at
// the 1.6B shapes (n = 16 rows x 1024 tokens, hidden 2048, 16 local heads of 64 and ffn 2720
// at tensor 2): LayerNorm forward, residual + LayerNorm, LayerNorm backward (with its fused
// dw partials and their reduction), RoPE forward and backward, GeGLU forward and backward,
// gelu, the embedding. Bytes are the least each kernel must move (every input read once,
// every output written once; small tables that stay in cache not counted), so GB/s is a
// lower bound of the traffic; % of the HBM peak read off the device (memory clock x bus
// width x 2) or given with --peak. The aim is >= 80%. Median of --iters runs after warm-up,
// CUDA events on the backend's stream. Prints a table and appends it, with date, device,
// commit and shapes, to bench/results/kernels.txt. Exits 77 without a usable GPU.
//
//   bench_kernels [--rows 16] [--seq 1024] [--hidden 2048] [--heads 16] [--dh 64]
//                 [--ffn 2720] [--iters 50] [--peak GB/s] [--out FILE]
#include <getopt.h>
#include <time.h>

#include <functional>

#include "model/cuda/common.cuh"

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

static float median_ms(const std::function<void()> &f, int iters) {
    cudaEvent_t e0, e1;
    CUDA_CHECK(cudaEventCreate(&e0));
    CUDA_CHECK(cudaEventCreate(&e1));
    for (int w = 0; w < 3; w++) f();
    float *t = (float *)malloc(iters * sizeof(float));
    for (int i = 0; i < iters; i++) {
        CUDA_CHECK(cudaEventRecord(e0, nvc()->stream));
        f();
        CUDA_CHECK(cudaEventRecord(e1, nvc()->stream));
        CUDA_CHECK(cudaEventSynchronize(e1));
        CUDA_CHECK(cudaEventElapsedTime(&t[i], e0, e1));
    }
    qsort(t, iters, sizeof(float), cmp_float);
    const float m = t[iters / 2];
    free(t);
    CUDA_CHECK(cudaEventDestroy(e0));
    CUDA_CHECK(cudaEventDestroy(e1));
    return m;
}

static void *rnd_act(const nv_backend *G, size_t n) {
    double *h = (double *)malloc(n * sizeof *h);
    uint64_t s = 0x9E3779B97F4A7C15ull ^ n;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        h[i] = ((double)(s >> 11) / 9007199254740992.0 - 0.5) * 4.0;
    }
    void *p = G->alloc(n * 2);
    G->upload_act(p, h, n);
    free(h);
    return p;
}

int main(int argc, char **argv) {
    int rows = 16, L = 1024, d = 2048, H = 16, dh = 64, f = 2720, iters = 50;
    double peak = 0;
    const char *outpath = "bench/results/kernels.txt";
    static struct option opts[] = {{"rows", 1, 0, 'r'}, {"seq", 1, 0, 's'},   {"hidden", 1, 0, 'd'},
                                   {"heads", 1, 0, 'H'}, {"dh", 1, 0, 'e'},   {"ffn", 1, 0, 'f'},
                                   {"iters", 1, 0, 'i'}, {"peak", 1, 0, 'p'}, {"out", 1, 0, 'o'},
                                   {"help", 0, 0, 'h'},  {0, 0, 0, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "r:s:d:H:e:f:i:p:o:h", opts, NULL)) != -1) {
        switch (ch) {
        case 'r': rows = atoi(optarg); break;
        case 's': L = atoi(optarg); break;
        case 'd': d = atoi(optarg); break;
        case 'H': H = atoi(optarg); break;
        case 'e': dh = atoi(optarg); break;
        case 'f': f = atoi(optarg); break;
        case 'i': iters = atoi(optarg); break;
        case 'p': peak = atof(optarg); break;
        case 'o': outpath = optarg; break;
        case 'h':
            printf("usage: bench_kernels [--rows N] [--seq N] [--hidden D] [--heads H] [--dh DH] [--ffn F] "
                   "[--iters N] [--peak GB/s] [--out FILE]\n");
            return 0;
        default: fprintf(stderr, "bench_kernels: see --help\n"); return 2;
        }
    }
    if (rows <= 0 || L <= 0 || d <= 0 || H <= 0 || dh <= 0 || dh % 2 || f <= 0 || iters <= 0) {
        fprintf(stderr, "bench_kernels: sizes must be positive (dh even)\n");
        return 2;
    }
    const char *why = NULL;
    const nv_backend *G = nv_backend_cuda(&why);
    if (!G) {
        printf("bench_kernels: skipped: %s\n", why ? why : "no CUDA backend");
        return 77;
    }
    if (peak <= 0) {
        int clk = 0, bus = 0; // kHz, bits
        cudaDeviceGetAttribute(&clk, cudaDevAttrMemoryClockRate, nvc()->device);
        cudaDeviceGetAttribute(&bus, cudaDevAttrGlobalMemoryBusWidth, nvc()->device);
        peak = 2.0 * clk * 1e3 * (bus / 8) / 1e9;
    }
    const int n = rows * L, dl = H * dh, V = 16;
    const size_t N = (size_t)n * d;
    void *x = rnd_act(G, N), *b = rnd_act(G, N), *w = rnd_act(G, d), *out = G->alloc(N * 2);
    void *res = G->alloc(N * 2), *dx = rnd_act(G, N), *dout = rnd_act(G, N);
    void *mean = G->alloc((size_t)n * 4), *rstd = G->alloc((size_t)n * 4), *dw = G->alloc((size_t)d * 4);
    void *qkv = rnd_act(G, (size_t)n * 3 * dl);
    void *gu = rnd_act(G, (size_t)n * 2 * f), *h = G->alloc((size_t)n * f * 2), *dh_ = rnd_act(G, (size_t)n * f);
    void *dgu = G->alloc((size_t)n * 2 * f * 2), *E = rnd_act(G, (size_t)V * d), *Es = rnd_act(G, 4 * (size_t)d);
    int32_t *hp = (int32_t *)malloc((size_t)n * 4), *ht = (int32_t *)malloc((size_t)n * 4);
    int32_t *hs = (int32_t *)malloc((size_t)n * 4);
    for (int i = 0; i < n; i++) {
        hp[i] = i % L;       // positions restart every row
        ht[i] = 5 + i % 11;  // nucleotide ids
        hs[i] = i % 4;       // structure inputs
    }
    int32_t *pos = (int32_t *)G->alloc((size_t)n * 4), *tok = (int32_t *)G->alloc((size_t)n * 4);
    int32_t *sid = (int32_t *)G->alloc((size_t)n * 4);
    G->to_device(pos, hp, (size_t)n * 4);
    G->to_device(tok, ht, (size_t)n * 4);
    G->to_device(sid, hs, (size_t)n * 4);
    nvc_rope_prepare(L, dh, 160000.0, 10000.0);
    G->layernorm_fwd(out, mean, rstd, x, w, n, d); // statistics for the backward

    struct row { const char *name; double bytes; float ms; };
    const int nblk = (n + 63) / 64;
    row r[] = {
        {"layernorm fwd", 4.0 * N, 0},
        {"residual+layernorm fwd", 8.0 * N, 0},
        {"layernorm bwd (dx, dw)", 8.0 * N + 8.0 * nblk * d, 0},
        {"rope fwd", 8.0 * n * dl, 0},
        {"rope bwd", 8.0 * n * dl, 0},
        {"geglu fwd", 6.0 * n * f, 0},
        {"geglu bwd", 10.0 * n * f, 0},
        {"gelu fwd", 4.0 * N, 0},
        {"embed fwd", 2.0 * N, 0},
    };
    r[0].ms = median_ms([&] { G->layernorm_fwd(out, mean, rstd, x, w, n, d); }, iters);
    r[1].ms = median_ms([&] { G->residual_layernorm_fwd(res, out, mean, rstd, x, b, w, n, d); }, iters);
    r[2].ms = median_ms([&] { G->layernorm_bwd(dx, dw, dout, x, w, mean, rstd, n, d); }, iters);
    r[3].ms = median_ms([&] { G->rope_fwd(qkv, pos, n, H, dh, 160000.0); }, iters);
    r[4].ms = median_ms([&] { G->rope_bwd(qkv, pos, n, H, dh, 160000.0); }, iters);
    r[5].ms = median_ms([&] { G->geglu_fwd(h, gu, n, f); }, iters);
    r[6].ms = median_ms([&] { G->geglu_bwd(dgu, dh_, gu, n, f); }, iters);
    r[7].ms = median_ms([&] { G->gelu_fwd(out, x, N); }, iters);
    r[8].ms = median_ms([&] { G->embed_fwd(out, tok, sid, E, Es, n, d); }, iters);
    cudaDeviceProp prop;
    CUDA_CHECK(cudaGetDeviceProperties(&prop, nvc()->device));
    char commit[64] = "unknown", date[32];
    // the device build records its commit (tools/device-prepare): the copied tree's git may not
    FILE *p = popen("{ head -c 7 \"$NVWA_BUILD_ROOT/COMMIT\" && echo; } 2>/dev/null || "
                    "git rev-parse --short HEAD 2>/dev/null", "r");
    if (p) {
        if (fgets(commit, sizeof commit, p)) commit[strcspn(commit, "\n")] = 0;
        pclose(p);
    }
    time_t now = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%d %H:%M", localtime(&now));
    char table[4096];
    int k = snprintf(table, sizeof table,
                     "# %s  device %s  commit %s  HBM peak %.0f GB/s\n"
                     "# n %d (rows %d x seq %d) hidden %d heads %d dh %d ffn %d iters %d (median)\n"
                     "%-24s %10s %10s %8s\n", date, prop.name, commit, peak, n, rows, L, d, H, dh, f,
                     iters, "kernel", "ms", "GB/s", "% peak");
    for (size_t i = 0; i < sizeof r / sizeof r[0]; i++) {
        const double gbs = r[i].bytes / (r[i].ms * 1e-3) / 1e9;
        k += snprintf(table + k, sizeof table - k, "%-24s %10.4f %10.0f %7.1f%%\n", r[i].name, r[i].ms,
                      gbs, 100.0 * gbs / peak);
    }
    fputs(table, stdout);
    FILE *fo = fopen(outpath, "a");
    if (fo) {
        fputs(table, fo);
        fputc('\n', fo);
        fclose(fo);
    } else {
        fprintf(stderr, "bench_kernels: cannot append to %s (run from the source root)\n", outpath);
    }
    return 0;
}
