// bench_step.c - CPU training-step time (forward +
// backward + AdamW, one micro-batch per step, synthetic packed rows) of one config, with
// "section.key=value" overrides, e.g. rna-fm-100m at a micro-batch that fits in memory
// (its own micro-batch of 32 x 1024 tokens needs ~26 GB of activations). Also prints the
// process CPU seconds per step, which a loaded machine disturbs less than wall time.
//
//   bench_step CONFIG.ini STEPS [section.key=value ...]
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "data/batch.h"
#include "data/synth.h"
#include "model/flops.h"
#include "model/model.h"
#include "optim/adamw.h"
#include "train/config.h"

typedef struct row {
    char name[64];
    double params, tokens_per_step, step_s, tok_s, gflops;
    int micro, seq;
} row;

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double cpu_sum;

static int bench_config(const char *name, const char *path, int steps, row *out, int nov,
                        char *const *ov) {
    nv_config cfg;
    nv_error err;
    if (nv_config_load(&cfg, path, nov, ov, &err) != 0) {
        fprintf(stderr, "bench_step: %s\n", err.msg);
        return -1;
    }
    // one rank, one micro-batch per step: the CPU rate of the shape
    cfg.data.global_batch = cfg.data.micro_batch;
    cfg.parallel.tensor = 1;
    cfg.train.device = NV_DEVICE_CPU;
    const nv_backend *be = nv_backend_cpu();
    nv_corpus corpus;
    nv_corpus_init(&corpus);
    nv_synth_params sp;
    nv_synth_defaults(&sp, 2000, cfg.data.seed);
    nv_synth_corpus(&corpus, &sp);
    nv_loader *ld = nv_loader_create(&corpus, &cfg, 0, 1, &err);
    if (!ld) {
        fprintf(stderr, "bench_step: %s\n", err.msg);
        return -1;
    }
    const int n = cfg.data.micro_batch * cfg.data.seq_length;
    nv_model *m = nv_model_create(&cfg.model, be, 0, 1, NULL, n);
    nv_model_init_weights(m, cfg.train.seed);
    const nv_param_table *t = nv_model_params(m);
    nv_adamw opt;
    nv_adamw_init(&opt, be, t, &cfg.optim, steps + 1, 0, t->total);
    int32_t *lens = nv_malloc((size_t)n * sizeof(int32_t));
    double tsum = 0, tok = 0, flops = 0;
    for (int s = -1; s < steps; s++) { // s = -1: warm-up, not timed
        const nv_batch *b = nv_loader_next(ld);
        long k = 0;
        for (int r = 0; r < b->rows; r++)
            for (int i = 0; i < b->seq_len;) {
                const int32_t *sg = b->segment + (size_t)r * b->seq_len;
                if (!sg[i]) { i++; continue; }
                int j = i;
                while (j < b->seq_len && sg[j] == sg[i]) j++;
                lens[k++] = j - i;
                i = j;
            }
        double t0 = nv_now(), c0 = cpu_now();
        nv_model_zero_grad(m);
        nv_model_step(m, b, 1.0 / (b->n_mlm + 1), 0.5 / (b->n_struct + 1), 1, NULL);
        double g = sqrt(be->sumsq(nv_model_grad(m), t->total));
        nv_adamw_step(&opt, nv_model_master(m), nv_model_grad(m), NULL, 1e-4,
                      nv_clip_scale(&cfg.optim, g));
        double dt = nv_now() - t0;
        if (s >= 0) {
            cpu_sum += cpu_now() - c0;
            tsum += dt;
            tok += (double)b->n_real;
            flops += nv_flops_per_step_sel(&cfg.model, lens, k, b->n_mlm);
        }
    }
    snprintf(out->name, sizeof out->name, "%s", name);
    out->params = (double)nv_param_count(&cfg.model);
    out->micro = cfg.data.micro_batch;
    out->seq = cfg.data.seq_length;
    out->tokens_per_step = tok / steps;
    out->step_s = tsum / steps;
    out->tok_s = tok / tsum;
    out->gflops = flops / tsum * 1e-9;
    free(lens);
    nv_adamw_free(&opt);
    nv_model_free(m);
    nv_loader_free(ld);
    nv_corpus_free(&corpus);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        printf("usage: bench_step CONFIG.ini STEPS [section.key=value ...]\n");
        return 2;
    }
    row r;
    const int steps = atoi(argv[2]);
    if (bench_config(argv[1], argv[1], steps, &r, argc - 3, argv + 3) != 0) return 1;
    printf("| config | params | micro x seq | real tokens/step | step (s) | CPU s/step | tokens/s "
           "| model GFLOP/s |\n");
    printf("| --- | --- | --- | --- | --- | --- | --- | --- |\n");
    printf("| %s | %.3gM | %d x %d | %.0f | %.3f | %.3f | %.0f | %.1f |\n", r.name, r.params * 1e-6,
           r.micro, r.seq, r.tokens_per_step, r.step_s, cpu_sum / steps, r.tok_s, r.gflops);
    return 0;
}
