// bench_step.c - training-step speed of one config on the backend its [train] device and
// precision select (cpu, cpu-bf16 or cuda): forward + backward + AdamW of one micro-batch
// per step on synthetic packed rows (RNAcentral-like lengths), after one untimed warm-up.
//
//   bench_step [options] CONFIG.ini STEPS [section.key=value ...]
//     --fit-micro-batch     cuda: the largest micro-batch whose model, Adam moments and
//                           workspace fit in the GPU's free memory (planned, not tried)
//     --profile-steps N     cuda: N more steps with every op timed by CUDA events (a per-op
//                           table with each op's share of the step)
//     --gemm-rate           cuda: the bf16 GEMM rate of the config's largest projection
//                           (M = the micro-batch's tokens, K = d, N = 2f), measured in the
//                           same process, and MFU's ratio to it
//     -o, --output FILE     also write the tables (markdown) to FILE
// Prints one table: tokens/s, model TFLOP/s (design section 11), MFU against 989 TFLOP/s
// (H100/H200 dense bf16), peak device memory, process CPU seconds per step on CPU backends.
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "data/batch.h"
#include "data/synth.h"
#include "model/cuda/cuda_api.h"
#include "model/flops.h"
#include "model/model.h"
#include "optim/adamw.h"
#include "train/config.h"
#include "train/trainer.h"

#define PEAK_FLOPS 989e12 // design section 11: H100 dense bf16 (the H200's is the same)

typedef struct opts {
    int fit, profile_steps, gemm, steps;
    const char *output, *config;
    int nov;
    char **ov;
} opts;

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static FILE *g_out; // --output

static void emit(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void emit(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    if (g_out) {
        va_start(ap, fmt);
        vfprintf(g_out, fmt, ap);
        va_end(ap);
    }
}

// The largest micro-batch (rows of seq-length) whose device memory fits in 92% of the free
// memory: the model's planned arena, Adam's two moments, cuDNN attention's workspace cap, and
// 2 GiB for cuBLASLt's workspace, scratch and the allocator.
static int fit_micro_batch(const nv_config *cfg, const nv_backend *be) {
    size_t free_b, total_b;
    nv_cuda_mem_info(&free_b, &total_b);
    const size_t moments = 2 * nv_param_count(&cfg->model) * be->state_bytes;
    const size_t budget = (size_t)(0.92 * (double)free_b), fixed = moments + ((size_t)2 << 30) +
                       (cfg->train.attention != NV_ATTN_NATIVE ? nv_cuda_cudnn_workspace_cap() : 0);
    int best = 0;
    for (int mb = 1; mb <= 512; mb++) {
        const size_t b = nv_model_plan_bytes(&cfg->model, be, 1, mb * cfg->data.seq_length,
                                             cfg->train.recompute);
        if (b + fixed > budget) break;
        best = mb;
    }
    printf("fit: %.1f GiB free of %.1f; micro-batch %d fits (model %.1f GiB + moments %.1f GiB)\n",
           free_b / 1073741824.0, total_b / 1073741824.0, best,
           nv_model_plan_bytes(&cfg->model, be, 1, (best ? best : 1) * cfg->data.seq_length,
                               cfg->train.recompute) / 1073741824.0,
           moments / 1073741824.0);
    return best;
}

// segment lengths of a batch, for the FLOP count
static long batch_lens(const nv_batch *b, int32_t *lens) {
    long k = 0;
    for (int r = 0; r < b->rows; r++) {
        const int32_t *sg = b->segment + (size_t)r * b->seq_len;
        for (int i = 0; i < b->seq_len;) {
            if (!sg[i]) {
                i++;
                continue;
            }
            int j = i;
            while (j < b->seq_len && sg[j] == sg[i]) j++;
            lens[k++] = j - i;
            i = j;
        }
    }
    return k;
}

typedef struct run {
    double step_s, tok_s, flops, cpu_s, tok;
} run;

static void one_step(nv_model *m, nv_adamw *opt, const nv_optim_config *oc, const nv_batch *b) {
    const nv_backend *be = nv_model_backend(m);
    const nv_param_table *t = nv_model_params(m);
    void *wact = nv_model_weights_act(m) == nv_model_master(m) ? NULL : nv_model_weights_act(m);
    nv_model_zero_grad(m);
    nv_model_step(m, b, 1.0 / (b->n_mlm + 1), 0.5 / (b->n_struct + 1), 1, NULL);
    nv_losses l;
    nv_model_take_losses(m, &l);
    const double g = sqrt(be->sumsq(nv_model_grad(m), t->total));
    nv_adamw_step(opt, nv_model_master(m), nv_model_grad(m), wact, 1e-4, nv_clip_scale(oc, g));
    be->sync();
}

static void timed_steps(nv_model *m, nv_adamw *opt, const nv_config *cfg, nv_loader *ld, int steps,
                        run *r) {
    int32_t *lens = nv_malloc((size_t)cfg->data.micro_batch * cfg->data.seq_length * sizeof *lens);
    memset(r, 0, sizeof *r);
    double t = 0;
    for (int s = 0; s < steps; s++) {
        const nv_batch *b = nv_loader_next(ld);
        const long k = batch_lens(b, lens);
        const double t0 = nv_now(), c0 = cpu_now();
        one_step(m, opt, &cfg->optim, b);
        t += nv_now() - t0;
        r->cpu_s += cpu_now() - c0;
        r->tok += (double)b->n_real;
        r->flops += nv_flops_per_step_sel(&cfg->model, lens, k, b->n_mlm);
    }
    r->step_s = t / steps;
    r->tok_s = r->tok / t;
    r->flops /= t;
    r->cpu_s /= steps;
    free(lens);
}

// bf16 GEMM rate through the backend: out[M, N] = x[M, K] W[N, K]^T, 20 timed repeats
static double gemm_rate(const nv_backend *be, int M, int K, int N) {
    void *x = be->alloc((size_t)M * K * 2), *W = be->alloc((size_t)N * K * 2), *o = be->alloc((size_t)M * N * 2);
    if (!x || !W || !o) return 0;
    double *h = nv_malloc((size_t)(M > N ? M : N) * K * sizeof *h);
    for (size_t i = 0; i < (size_t)(M > N ? M : N) * K; i++) h[i] = sin(0.37 * i) * 0.5; // not zeros
    be->upload_act(x, h, (size_t)M * K);
    be->upload_act(W, h, (size_t)N * K);
    for (int i = 0; i < 3; i++) be->matmul_fwd(o, x, W, NULL, M, K, N);
    be->sync();
    const double t0 = nv_now();
    for (int i = 0; i < 20; i++) be->matmul_fwd(o, x, W, NULL, M, K, N);
    be->sync();
    const double dt = (nv_now() - t0) / 20;
    be->free(x), be->free(W), be->free(o), free(h);
    return 2.0 * M * K * N / dt;
}

static void profile_table(void) {
    const char *names[32];
    double ms[32];
    long calls[32];
    const int n = nv_cuda_profile_read(names, ms, calls, 32);
    double tot = 0;
    for (int i = 0; i < n; i++) tot += ms[i];
    emit("\n| op | calls | time (ms) | share |\n| --- | --- | --- | --- |\n");
    for (int pass = 0; pass < n; pass++) { // largest first
        int best = -1;
        for (int i = 0; i < n; i++)
            if (ms[i] >= 0 && (best < 0 || ms[i] > ms[best])) best = i;
        emit("| %s | %ld | %.3f | %.1f%% |\n", names[best], calls[best], ms[best], 100 * ms[best] / tot);
        ms[best] = -1;
    }
    emit("| all ops (kernels, summed) | | %.3f | |\n", tot);
}

static int bench(const opts *o) {
    nv_config cfg;
    nv_error err;
    if (nv_config_load(&cfg, o->config, o->nov, o->ov, &err) != 0) {
        fprintf(stderr, "bench_step: %s\n", err.msg);
        return 2;
    }
    cfg.parallel.tensor = 1;
    const nv_backend *be = nv_select_backend(&cfg, &err);
    if (!be) {
        fprintf(stderr, "bench_step: %s\n", err.msg);
        return 77;
    }
    const int cuda = !strcmp(be->name, "cuda");
    if (cuda) nv_cuda_set_attention((int)cfg.train.attention);
    if (o->fit && cuda) {
        cfg.data.micro_batch = fit_micro_batch(&cfg, be);
        if (cfg.data.micro_batch < 1) {
            fprintf(stderr, "bench_step: not even one row of %d tokens fits on the GPU\n", cfg.data.seq_length);
            return 1;
        }
    }
    cfg.data.global_batch = cfg.data.micro_batch; // one rank, one micro-batch per step
    nv_corpus corpus;
    nv_corpus_init(&corpus);
    nv_synth_params sp;
    nv_synth_defaults(&sp, 4000, cfg.data.seed);
    nv_synth_corpus(&corpus, &sp);
    nv_loader *ld = nv_loader_create(&corpus, &cfg.data, cfg.model.structure_input, 0, 1, &err);
    if (!ld) {
        fprintf(stderr, "bench_step: %s\n", err.msg);
        return 1;
    }
    const int n = cfg.data.micro_batch * cfg.data.seq_length;
    nv_model *m = nv_model_create_ex(&cfg.model, be, 0, 1, NULL, n, cfg.data.seq_length, cfg.train.recompute);
    nv_model_init_weights(m, cfg.train.seed);
    const nv_param_table *t = nv_model_params(m);
    nv_adamw opt;
    nv_adamw_init(&opt, be, t, &cfg.optim, o->steps + o->profile_steps + 2, 0, t->total);
    one_step(m, &opt, &cfg.optim, nv_loader_next(ld)); // warm-up: plans, graphs, the kernel choice
    run r;
    timed_steps(m, &opt, &cfg, ld, o->steps, &r);
    size_t free_b = 0, total_b = 0;
    nv_cuda_mem_info(&free_b, &total_b);
    const double mfu = r.flops / PEAK_FLOPS;
    emit("| config | backend | params | micro x seq | tokens/step | step (s) | tokens/s | model TFLOP/s | MFU | device memory (GiB) | CPU s/step |\n");
    emit("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
    char mfus[32] = "-", mems[64] = "-";
    if (cuda) {
        snprintf(mfus, sizeof mfus, "%.1f%%", 100 * mfu);
        snprintf(mems, sizeof mems, "%.1f of %.1f (arena %.1f)", (total_b - free_b) / 1073741824.0,
                 total_b / 1073741824.0, nv_model_device_bytes(m) / 1073741824.0);
    }
    emit("| %s | %s | %.4gB | %d x %d | %.0f | %.4f | %.0f | %.2f | %s | %s | %.3f |\n", o->config,
         be->name, nv_param_count(&cfg.model) * 1e-9, cfg.data.micro_batch, cfg.data.seq_length,
         r.tok / o->steps, r.step_s, r.tok_s, r.flops * 1e-12, mfus, mems, r.cpu_s);
    if (o->gemm && cuda) {
        const int K = cfg.model.hidden_size, N = 2 * cfg.model.ffn_hidden_size;
        const double g = gemm_rate(be, n, K, N);
        emit("GEMM rate (bf16, M %d K %d N %d): %.1f TFLOP/s; model FLOP rate / GEMM rate = %.2f\n", n,
             K, N, g * 1e-12, g > 0 ? r.flops / g : 0);
    }
    if (o->profile_steps > 0 && cuda) {
        nv_cuda_profile(1);
        nv_cuda_profile_reset();
        run rp;
        timed_steps(m, &opt, &cfg, ld, o->profile_steps, &rp);
        nv_cuda_profile(0);
        emit("\nper-op time over %d profiled steps (%.4f s/step with events):\n", o->profile_steps, rp.step_s);
        profile_table();
    }
    nv_adamw_free(&opt);
    nv_model_free(m);
    nv_loader_free(ld);
    nv_corpus_free(&corpus);
    return 0;
}

int main(int argc, char **argv) {
    opts o = {0};
    static const struct option lo[] = {{"fit-micro-batch", no_argument, 0, 'f'},
                                       {"profile-steps", required_argument, 0, 'p'},
                                       {"gemm-rate", no_argument, 0, 'g'},
                                       {"output", required_argument, 0, 'o'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "+fp:go:h", lo, NULL)) != -1) {
        switch (c) {
        case 'f': o.fit = 1; break;
        case 'p': o.profile_steps = atoi(optarg); break;
        case 'g': o.gemm = 1; break;
        case 'o': o.output = optarg; break;
        default:
            printf("usage: bench_step [--fit-micro-batch] [--profile-steps N] [--gemm-rate] "
                   "[-o FILE] CONFIG.ini STEPS [section.key=value ...]\n");
            return c == 'h' ? 0 : 2;
        }
    }
    if (argc - optind < 2) {
        fprintf(stderr, "bench_step: CONFIG and STEPS are required (--help)\n");
        return 2;
    }
    o.config = argv[optind];
    o.steps = atoi(argv[optind + 1]);
    o.nov = argc - optind - 2;
    o.ov = argv + optind + 2;
    if (o.steps < 1) {
        fprintf(stderr, "bench_step: STEPS must be at least 1\n");
        return 2;
    }
    if (o.output && !(g_out = fopen(o.output, "w"))) {
        fprintf(stderr, "bench_step: cannot write %s\n", o.output);
        return 1;
    }
    const int rc = bench(&o);
    if (g_out) fclose(g_out);
    return rc;
}
