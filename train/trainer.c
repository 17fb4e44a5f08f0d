// trainer.c - one training step: draw the rank's micro-batches of the global step, count
// the loss positions of the whole global batch (so both losses are means over it), run
// forward+backward per micro-batch (gradients accumulate), clip by the global norm, skip
// non-finite steps, AdamW, log.
#include "train/trainer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/batch.h"
#include "data/synth.h"
#include "model/flops.h"
#include "model/model.h"
#include "optim/adamw.h"
#include "train/grad_sync.h"
#include "train/log.h"

#define NV_SYNTH_DEFAULT_SEQS 20000

const nv_backend *nv_select_backend(const nv_config *cfg, nv_error *err) {
    const char *why = "";
    switch (cfg->train.device) {
    case NV_DEVICE_CPU: return nv_backend_cpu();
    case NV_DEVICE_CUDA: {
        const nv_backend *be = nv_backend_cuda(&why);
        if (!be) nv_seterr(err, "[train] device = cuda: %s\n---> HINT: set [train] device = cpu or auto", why);
        return be;
    }
    default: {
        const nv_backend *be = nv_backend_cuda(&why);
        return be ? be : nv_backend_cpu();
    }
    }
}

int nv_load_train_corpus(const nv_config *cfg, nv_corpus *out, nv_error *err) {
    nv_corpus_init(out);
    if (cfg->data.train[0]) return nv_corpus_open(cfg->data.train, out, 0, err);
    nv_synth_params sp;
    nv_synth_defaults(&sp, NV_SYNTH_DEFAULT_SEQS, cfg->data.seed);
    nv_synth_corpus(out, &sp);
    return 0;
}

static void batch_copy(nv_batch *dst, const nv_batch *src) {
    const size_t n = (size_t)src->rows * src->seq_len;
    memcpy(dst->input, src->input, n * 4);
    memcpy(dst->target, src->target, n * 4);
    memcpy(dst->struct_in, src->struct_in, n * 4);
    memcpy(dst->struct_target, src->struct_target, n * 4);
    memcpy(dst->mlm_mask, src->mlm_mask, n);
    memcpy(dst->struct_mask, src->struct_mask, n);
    memcpy(dst->segment, src->segment, n * 4);
    memcpy(dst->position, src->position, n * 4);
    memcpy(dst->seq_index, src->seq_index, n * 8);
    dst->n_mlm = src->n_mlm;
    dst->n_struct = src->n_struct;
    dst->n_real = src->n_real;
}

// Segment lengths of a batch (for model FLOPs), appended to lens.
static long batch_seq_lens(const nv_batch *b, int32_t *lens) {
    long k = 0;
    for (int r = 0; r < b->rows; r++) {
        const int32_t *sg = b->segment + (size_t)r * b->seq_len;
        for (int i = 0; i < b->seq_len;) {
            if (!sg[i]) { i++; continue; }
            int j = i;
            while (j < b->seq_len && sg[j] == sg[i]) j++;
            lens[k++] = j - i;
            i = j;
        }
    }
    return k;
}

static double rss_gib(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, rss = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2) rss = 0;
        fclose(f);
    }
    return (double)rss * (double)sysconf(_SC_PAGESIZE) / (1024.0 * 1024.0 * 1024.0);
}

// Tensor-parallel all-reduce of activations (CPU: MPI over the tensor group).
static void tp_allreduce_cpu(void *ctx, void *buf, size_t n) {
    const nv_dist *d = ctx;
    nv_allreduce_sum_f32(d, d->comm_tp, buf, n);
}

// Squared norm of the gradient over the flat range [lo, hi) (g[i - lo] is element i),
// split into tensor-parallel-sharded tensors (partial per tensor rank) and replicated ones
// (identical on every tensor rank, counted once).
static void grad_sumsq(const nv_backend *be, const nv_param_table *t, const void *g, size_t lo,
                       size_t hi, double *split, double *rep) {
    *split = *rep = 0;
    for (int k = 0; k < t->n; k++) {
        const nv_param *p = &t->p[k];
        size_t a = p->offset > lo ? p->offset : lo;
        size_t b = p->offset + p->numel < hi ? p->offset + p->numel : hi;
        if (a >= b) continue;
        double s = be->sumsq((const char *)g + (a - lo) * be->state_bytes, b - a);
        if (p->split != NV_SPLIT_NONE) *split += s;
        else *rep += s;
    }
}

int nv_train(const nv_config *cfg, const nv_dist *d) {
    nv_error err;
    const int root = d->rank == 0;
    const nv_backend *be = nv_select_backend(cfg, &err);
    if (!be) nv_dist_abort(d, "%s", err.msg);
    if (strcmp(be->name, "cpu") != 0 && d->world > 1)
        nv_dist_abort(d, "multi-rank training on %s is not wired up yet\n---> HINT: [train] device = cpu", be->name);
    nv_corpus corpus;
    if (nv_load_train_corpus(cfg, &corpus, &err) != 0) nv_dist_abort(d, "%s", err.msg);
    if (root)
        printf("data: %s: %llu sequences, %llu tokens (%llu with structure)\n",
               cfg->data.train[0] ? cfg->data.train : "synthetic (in-process)",
               (unsigned long long)corpus.n_seqs, (unsigned long long)corpus.n_tokens,
               (unsigned long long)corpus.n_with_structure);
    nv_loader *loader = nv_loader_create(&corpus, cfg, d->dp_rank, d->dp_size, &err);
    if (!loader) nv_dist_abort(d, "%s", err.msg);
    const int accum = nv_loader_accum(loader);
    const int rows = cfg->data.micro_batch, L = cfg->data.seq_length;
    const int max_tokens = rows * L;

    nv_tp_comm tpc = {tp_allreduce_cpu, (void *)d};
    nv_model *model = nv_model_create(&cfg->model, be, d->tp_rank, d->tp_size,
                                      d->tp_size > 1 ? &tpc : NULL, max_tokens);
    nv_model_init_weights(model, cfg->train.seed);
    const nv_param_table *pt = nv_model_params(model);
    if (root)
        printf("model: %.4g parameters, backend %s, world %d = tensor %d x data %d%s, "
               "%d micro-batch(es) of %d x %d per rank per step\n",
               (double)nv_param_count(&cfg->model), be->name, d->world, d->tp_size, d->dp_size,
               cfg->parallel.zero1 ? " (ZeRO-1)" : "", accum, rows, L);

    // optimizer over this rank's range: its ZeRO-1 shard or everything
    const int zero1 = cfg->parallel.zero1 && d->dp_size > 1;
    size_t lo = 0, hi = pt->total;
    if (zero1) nv_zero1_range(pt->total, d->dp_size, d->dp_rank, &lo, &hi);
    nv_adamw opt;
    nv_adamw_init(&opt, be, pt, &cfg->optim, cfg->train.steps, lo, hi);
    float *shard = zero1 ? nv_calloc(hi - lo + 1, sizeof(float)) : NULL;
    nv_grad_sync *gs = nv_grad_sync_create(d, nv_model_grad(model), pt->total, 0);
    void *wact = nv_model_weights_act(model) == nv_model_master(model) ? NULL : nv_model_weights_act(model);

    nv_logger lg = {0};
    if (root && nv_logger_open(&lg, cfg->log.file, 0) != 0) nv_dist_abort(d, "cannot open the log");

    nv_batch *mb = nv_calloc((size_t)accum, sizeof(nv_batch));
    for (int a = 0; a < accum; a++) nv_batch_alloc(&mb[a], rows, L);
    int32_t *lens = nv_malloc((size_t)accum * max_tokens * sizeof(int32_t));

    const double t_start = nv_now();
    double t_window = t_start, tok_window = 0, flop_window = 0;
    int consecutive_skips = 0, rc = 0;
    for (long step = 0; step < cfg->train.steps; step++) {
        const double t0 = nv_now();
        // [0] mlm positions, [1] structure positions, [2] real tokens: over the global batch
        long cnt[3] = {0, 0, 0}, n_lens = 0;
        for (int a = 0; a < accum; a++) {
            batch_copy(&mb[a], nv_loader_next(loader));
            cnt[0] += mb[a].n_mlm;
            cnt[1] += mb[a].n_struct;
            cnt[2] += mb[a].n_real;
            n_lens += batch_seq_lens(&mb[a], lens + n_lens);
        }
        double local_flops = nv_flops_per_step(&cfg->model, lens, n_lens);
        nv_allreduce_sum_long(d, d->comm_dp, cnt, 3);
        const long n_mlm = cnt[0], n_st = cnt[1], n_real = cnt[2];
        const double mlm_scale = n_mlm ? 1.0 / (double)n_mlm : 0.0;
        const double st_scale = n_st ? cfg->model.struct_loss_weight / (double)n_st : 0.0;
        nv_model_zero_grad(model);
        // [0] mlm loss sum, [1] struct loss sum, [2] mlm hits, [3] struct hits
        double tot[4] = {0, 0, 0, 0};
        for (int a = 0; a < accum; a++) {
            nv_losses l;
            if (!zero1) nv_model_set_grad_hook(model, a + 1 == accum ? nv_grad_sync_hook(gs) : NULL);
            nv_model_step(model, &mb[a], mlm_scale, st_scale, 1, &l);
            tot[0] += l.mlm_sum;
            tot[1] += l.struct_sum;
            tot[2] += (double)l.mlm_correct;
            tot[3] += (double)l.struct_correct;
        }
        nv_model_set_grad_hook(model, NULL);
        nv_allreduce_sum_f64(d, d->comm_dp, tot, 4);
        // data-parallel sum of gradients, then the true global norm
        const void *g = nv_model_grad(model);
        if (zero1) {
            nv_zero1_reduce_scatter(d, nv_model_grad(model), pt->total, shard);
            g = shard;
        } else {
            nv_grad_sync_finish(gs);
        }
        double ss[2];
        grad_sumsq(be, pt, g, lo, hi, &ss[0], &ss[1]);
        if (d->tp_size > 1) nv_allreduce_sum_f64(d, d->comm_tp, ss, 1); // sharded part only
        if (zero1) nv_allreduce_sum_f64(d, d->comm_dp, ss, 2);
        const double gnorm = sqrt(ss[0] + ss[1]);
        const double lr = nv_lr_at(&cfg->optim, step, cfg->train.steps);
        int skip = !isfinite(gnorm);
        nv_allreduce_max_int(d, d->comm_world, &skip, 1); // one verdict for every rank
        if (skip) {
            consecutive_skips++;
            if (root) {
                char f[160];
                snprintf(f, sizeof f, "\"step\": %ld, \"reason\": \"non-finite gradient norm\"", step + 1);
                nv_log_event(&lg, "skipped_step", f);
                fprintf(stderr, "nvwa: warning: step %ld skipped: non-finite gradient norm\n", step + 1);
            }
            if (consecutive_skips >= cfg->train.max_skipped_steps) {
                if (root)
                    fprintf(stderr, "nvwa: error: %d consecutive steps with non-finite gradients; stopping\n"
                            "---> HINT: lower [optim] lr or check the data\n", consecutive_skips);
                rc = 1;
                break;
            }
        } else {
            consecutive_skips = 0;
            nv_adamw_step(&opt, nv_model_master(model), g, wact, lr, nv_clip_scale(&cfg->optim, gnorm));
            if (zero1) {
                nv_zero1_allgather(d, nv_model_master(model), pt->total);
                nv_model_refresh_act(model);
            }
        }
        be->sync();
        const double t1 = nv_now();
        tok_window += (double)n_real;
        flop_window += local_flops * d->dp_size; // every data rank's share, tensor ranks together
        if ((step + 1) % cfg->log.every == 0 || step + 1 == cfg->train.steps || skip) {
            nv_step_record r = {0};
            r.step = step + 1;
            r.total_steps = cfg->train.steps;
            r.mlm_loss = n_mlm ? tot[0] / (double)n_mlm : 0.0;
            r.struct_loss = n_st ? tot[1] / (double)n_st : 0.0;
            r.loss = r.mlm_loss + cfg->model.struct_loss_weight * r.struct_loss;
            r.mlm_acc = n_mlm ? tot[2] / (double)n_mlm : 0.0;
            r.struct_acc = n_st ? tot[3] / (double)n_st : 0.0;
            r.lr = lr;
            r.grad_norm = gnorm;
            const double dt = t1 - t_window;
            r.tokens_per_s = dt > 0 ? tok_window / dt : 0;
            r.flops_per_s = dt > 0 ? flop_window / dt : 0;
            r.step_time = t1 - t0;
            r.mfu = strcmp(be->name, "cuda") == 0 ? r.flops_per_s / (989e12 * d->world) : -1.0;
            r.mem_gib = rss_gib();
            r.eta_s = (t1 - t_start) / (double)(step + 1) * (double)(cfg->train.steps - step - 1);
            r.skipped = skip;
            if (root) nv_log_step(&lg, &r, 1);
            t_window = t1;
            tok_window = flop_window = 0;
        }
    }
    char took[32];
    nv_format_duration(nv_now() - t_start, took, sizeof took);
    if (rc == 0 && root) printf("done: %ld steps in %s\n", cfg->train.steps, took);

    for (int a = 0; a < accum; a++) nv_batch_free(&mb[a]);
    free(mb);
    free(lens);
    free(shard);
    nv_grad_sync_free(gs);
    if (root) nv_logger_close(&lg);
    nv_adamw_free(&opt);
    nv_model_free(model);
    nv_loader_free(loader);
    nv_corpus_free(&corpus);
    return rc;
}
