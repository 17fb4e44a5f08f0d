// bench_step.c - CPU training-step time for the tiny and rna-fm-100m shapes: tokens/s and
// model GFLOP/s (design section 11) of forward + backward + AdamW on packed synthetic
// batches, printed as one table and written as Markdown under bench/results/.
//
//   bench_step [--steps N] [--out FILE.md] [--config NAME=PATH ...]
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

static int bench_config(const char *name, const char *path, int steps, row *out) {
    nv_config cfg;
    nv_error err;
    if (nv_config_load(&cfg, path, 0, NULL, &err) != 0) {
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
        long k = nv_batch_segments(b, NULL, lens, NULL);
        double t0 = nv_now();
        nv_model_zero_grad(m);
        nv_model_step(m, b, 1.0 / (b->n_mlm + 1), 0.5 / (b->n_struct + 1), 1, NULL);
        double g = sqrt(be->sumsq(nv_model_grad(m), t->total));
        nv_adamw_step(&opt, nv_model_master(m), nv_model_grad(m), NULL, 1e-4,
                      nv_clip_scale(&cfg.optim, g));
        double dt = nv_now() - t0;
        if (s >= 0) {
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
    int steps = 3;
    const char *out = NULL, *src = getenv("NVWA_SOURCE_ROOT");
    static const struct option opts[] = {{"steps", required_argument, 0, 's'},
                                         {"out", required_argument, 0, 'o'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "s:o:h", opts, NULL)) != -1) {
        if (c == 's') steps = atoi(optarg);
        else if (c == 'o') out = optarg;
        else {
            printf("usage: bench_step [--steps N] [--out FILE.md]  (NVWA_SOURCE_ROOT locates configs/)\n");
            return c == 'h' ? 0 : 2;
        }
    }
    char p1[1024], p2[1024];
    snprintf(p1, sizeof p1, "%s/configs/tiny.ini", src ? src : ".");
    snprintf(p2, sizeof p2, "%s/configs/rna-fm-100m.ini", src ? src : ".");
    row rows[2];
    if (bench_config("tiny", p1, steps * 4, &rows[0]) != 0) return 1;
    if (bench_config("rna-fm-100m", p2, steps, &rows[1]) != 0) return 1;
    char date[32];
    time_t now = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%d", gmtime(&now));
    FILE *f = out ? fopen(out, "w") : NULL;
    FILE *outs[2] = {stdout, f};
    for (int k = 0; k < 2; k++) {
        FILE *o = outs[k];
        if (!o) continue;
        fprintf(o, "| shape | params | micro x seq | real tokens/step | step (s) | tokens/s | model GFLOP/s |\n");
        fprintf(o, "| --- | --- | --- | --- | --- | --- | --- |\n");
        for (int i = 0; i < 2; i++)
            fprintf(o, "| %s | %.3gM | %d x %d | %.0f | %.3f | %.0f | %.1f |\n", rows[i].name,
                    rows[i].params * 1e-6, rows[i].micro, rows[i].seq, rows[i].tokens_per_step,
                    rows[i].step_s, rows[i].tok_s, rows[i].gflops);
    }
    if (f) fclose(f);
    (void)date;
    return 0;
}
