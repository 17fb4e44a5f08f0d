// trainer.c - the training loop: open the run (data, model, optimizer, resume), then per
// step draw the rank's micro-batches of the global step, count the loss positions of the
// whole global batch (so both losses are means over it), run forward+backward per
// micro-batch (gradients accumulate), clip by the global norm, skip non-finite steps, AdamW,
// log, and at the step boundary checkpoint or stop. What a run needs around the loop
// (backend choice, the training data, stop signals) is train/run_setup.c's; saving,
// resuming and the agreed stops on errors are train/run_state.c's.
#include "train/trainer.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zlib.h>

#include "data/batch.h"
#include "model/flops.h"
#include "model/cpu/bf16.h"       // cpu-bf16 tensor-parallel sums
#include "model/model.h"
#include "optim/adamw.h"
#include "model/cuda/cuda_api.h" // nv_cuda_set_local_rank: GPU = nv_dist's local rank
#include "train/checkpoint.h"
#include "train/comm_nccl.h"     // GPU path: NCCL
#include "train/evaluate.h" // [log] eval-every (evaluation hook)
#include "train/grad_stats.h"
#include "train/grad_sync.h"
#include "train/log.h"
#include "train/run_state.h"
#include "train/test_fault.h"

static double rss_gib(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, rss = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2) rss = 0;
        fclose(f);
    }
    return (double)rss * (double)sysconf(_SC_PAGESIZE) / (1024.0 * 1024.0 * 1024.0);
}

// Tensor-parallel all-reduce of activations on the CPU backends: MPI over the tensor group.
// cpu-bf16's act tensors are bf16, which MPI cannot add: they go through a float buffer and
// are rounded once, as NCCL's bf16 sum of two ranks rounds a + b once.
typedef struct tp_cpu {
    const nv_dist *d;
    size_t act_bytes;
    float *buf; // [cap] for bf16
    size_t cap;
} tp_cpu;

static void tp_allreduce_cpu(void *ctx, void *buf, size_t n) {
    tp_cpu *t = ctx;
    if (t->act_bytes == 4) {
        nv_allreduce_sum_f32(t->d, t->d->comm_tp, buf, n);
        return;
    }
    if (n > t->cap) nv_dist_abort(t->d, "tensor-parallel all-reduce of %zu elements exceeds the planned %zu", n, t->cap);
    uint16_t *h = buf;
    for (size_t i = 0; i < n; i++) t->buf[i] = nv_bf16_to_f32(h[i]);
    nv_allreduce_sum_f32(t->d, t->d->comm_tp, t->buf, n);
    for (size_t i = 0; i < n; i++) h[i] = nv_f32_to_bf16(t->buf[i]);
}


// Everything one rank's training run holds, set up by trainer_open and released by
// trainer_close; the step loop in nv_train runs over it in short stages.
typedef struct trainer {
    const nv_config *cfg;
    const nv_dist *d;
    const nv_backend *be;
    nv_nccl *nccl;
    nv_corpus mem;       // the synthetic corpus when [data] train is empty
    nv_dataset *corpus;  // what the loader and evaluation read: streamed shards or mem
    nv_loader *loader;
    int accum, rows, L;
    tp_cpu tpx;
    nv_model *model;
    const nv_param_table *pt;
    int zero1;
    size_t lo, hi; // this rank's optimizer range (its ZeRO-1 shard or everything)
    nv_adamw opt;
    float *shard;  // ZeRO-1: the summed gradient of the shard
    void *wact;    // the act compute copy when it is not the master itself
    nv_grad_sync *gs;
    nv_grad_stats *gst;
    nv_logger lg;
    nv_eval_hook eval_hook;
    nv_batch *mb;
    int32_t *lens;
    int consecutive_skips;
    nv_test_fault fault; // NVWA_TEST_FAULT (train/test_fault.h)
    nv_run_state ts;
    int debug_hash;
    long start_step;
    double t_start, t_window, tok_window, flop_window;
} trainer;

// What one step produced: counts of the global batch, summed losses and hits, the norm.
typedef struct step_out {
    long n_mlm, n_st, n_real;
    double tot[4]; // mlm loss sum, struct loss sum, mlm hits, struct hits (global)
    double local_flops, gnorm, lr, t0;
    int skip, loss_bad;
    nv_grad_report rep;
} step_out;

static void trainer_open_data(trainer *tr) {
    const nv_config *cfg = tr->cfg;
    const nv_dist *d = tr->d;
    nv_error err;
    // every rank opens the shards (index only); one line for the job when any of them cannot
    nv_agree_or_exit(d, nv_open_train_data(cfg, &tr->mem, &tr->corpus, &err) != 0, err.msg, 0);
    if (d->rank == 0) nv_report_train_data(cfg, tr->corpus);
    tr->loader = nv_loader_create_ds(tr->corpus, &cfg->data, cfg->model.structure_input,
                                     d->dp_rank, d->dp_size, NV_LOADER_PREFETCH, &err);
    if (!tr->loader) nv_dist_abort(d, "%s", err.msg);
    tr->accum = nv_loader_accum(tr->loader);
    tr->rows = cfg->data.micro_batch;
    tr->L = cfg->data.seq_length;
    tr->mb = nv_calloc((size_t)tr->accum, sizeof(nv_batch));
    for (int a = 0; a < tr->accum; a++) nv_batch_alloc(&tr->mb[a], tr->rows, tr->L);
    tr->lens = nv_malloc((size_t)tr->accum * tr->rows * tr->L * sizeof(int32_t));
}

static void trainer_open_model(trainer *tr) {
    const nv_config *cfg = tr->cfg;
    const nv_dist *d = tr->d;
    const int max_tokens = tr->rows * tr->L, root = d->rank == 0;
    nv_tp_comm tpc = {tp_allreduce_cpu, &tr->tpx};
    if (tr->nccl) tpc = (nv_tp_comm){nv_nccl_tp_allreduce_act, tr->nccl};
    tr->tpx = (tp_cpu){d, tr->be->act_bytes, NULL, 0};
    if (d->tp_size > 1 && !tr->nccl && tr->be->act_bytes != 4) {
        tr->tpx.cap = (size_t)max_tokens * cfg->model.hidden_size;
        tr->tpx.buf = nv_malloc(tr->tpx.cap * sizeof(float));
    }
    tr->model = nv_model_create_ex(&cfg->model, tr->be, d->tp_rank, d->tp_size,
                                   d->tp_size > 1 ? &tpc : NULL, max_tokens, tr->L, cfg->train.recompute);
    nv_model_init_weights(tr->model, cfg->train.seed);
    tr->pt = nv_model_params(tr->model);
    if (root)
        printf("memory: %.3f GiB planned for the model on %s (weights, gradients, activations%s)\n",
               (double)nv_model_device_bytes(tr->model) / (1 << 30), tr->be->name,
               cfg->train.recompute ? ", recompute on" : "");
    if (root)
        printf("model: %.4g parameters, backend %s, world %d = tensor %d x data %d%s, "
               "%d micro-batch(es) of %d x %d per rank per step\n",
               (double)nv_param_count(&cfg->model), tr->be->name, d->world, d->tp_size, d->dp_size,
               cfg->parallel.zero1 ? " (ZeRO-1)" : "", tr->accum, tr->rows, tr->L);
}

// The optimizer over this rank's range (its ZeRO-1 shard or everything), the data-parallel
// sum and the gradient check.
static void trainer_open_optim(trainer *tr) {
    const nv_dist *d = tr->d;
    const nv_backend *be = tr->be;
    const nv_param_table *pt = tr->pt;
    void *grad = nv_model_grad(tr->model);
    tr->zero1 = tr->cfg->parallel.zero1 && d->dp_size > 1;
    tr->lo = 0;
    tr->hi = pt->total;
    if (tr->zero1 && tr->nccl) nv_zero1_range_nccl(pt->total, d->dp_size, d->dp_rank, &tr->lo, &tr->hi);
    else if (tr->zero1) nv_zero1_range(pt->total, d->dp_size, d->dp_rank, &tr->lo, &tr->hi);
    nv_adamw_init(&tr->opt, be, pt, &tr->cfg->optim, tr->cfg->train.steps, tr->lo, tr->hi);
    if (tr->zero1) {
        const size_t bytes = (tr->hi - tr->lo + 1) * sizeof(float);
        tr->shard = tr->nccl ? be->alloc(bytes) : nv_calloc(tr->hi - tr->lo + 1, sizeof(float));
        if (!tr->shard) nv_dist_abort(d, "out of %s memory for the ZeRO-1 shard", be->name);
        if (be->declare) be->declare(tr->shard, bytes, NV_T_STATE);
    }
    tr->gs = tr->nccl ? nv_grad_sync_create_nccl(d, tr->nccl, grad, pt->total, 0)
                      : nv_grad_sync_create(d, grad, pt->total, 0);
    nv_grad_sync_set_overlap(tr->gs, tr->cfg->parallel.overlap);
    if (tr->zero1) nv_grad_sync_set_zero1(tr->gs, tr->shard, tr->lo, tr->hi); // buckets reduce-scatter into shard
    tr->wact = nv_model_weights_act(tr->model) == nv_model_master(tr->model) ? NULL
                                                                            : nv_model_weights_act(tr->model);
    // with more than one data rank, the local gradients are checked before the sum
    tr->gst = nv_grad_stats_create(be, pt, grad, nv_grad_sync_hook(tr->gs), d->dp_size > 1);
}

static long trainer_open(trainer *tr, const nv_config *cfg, const nv_dist *d) {
    nv_error err;
    memset(tr, 0, sizeof *tr);
    tr->cfg = cfg;
    tr->d = d;
    if (cfg->train.device != NV_DEVICE_CPU) nv_cuda_set_local_rank(d->local_rank);
    tr->be = nv_select_backend(cfg, &err);
    if (!tr->be) nv_dist_abort(d, "%s", err.msg);
    // multi-rank on the cuda backend: collectives through NCCL (train/comm_nccl.h); on every
    // CPU backend (cpu, cpu-bf16) through MPI
    const int on_gpu = strcmp(tr->be->name, "cuda") == 0;
    if (on_gpu) nv_cuda_set_attention((int)cfg->train.attention); // [train] attention
    tr->nccl = on_gpu && d->world > 1 ? nv_nccl_create(d) : NULL;
    trainer_open_data(tr);
    trainer_open_model(tr);
    trainer_open_optim(tr);
    nv_eval_hook_init(&tr->eval_hook, cfg, d); // [log] eval-every on [data] valid
    nv_test_fault_parse(&tr->fault, tr->pt, d);
    tr->ts = (nv_run_state){tr->model, &tr->opt, tr->loader, &tr->consecutive_skips, tr->lo, tr->hi,
                           tr->zero1, 0, NULL, NULL, NULL, 0, tr->nccl};
    const long start_step = tr->start_step = nv_run_resume(cfg, d, &tr->ts);
    // a resumed run (a requeued job) continues the JSONL log; a fresh one starts it
    if (d->rank == 0 && nv_logger_open(&tr->lg, cfg->log.file, start_step > 0) != 0)
        nv_dist_abort(d, "cannot open the log");
    tr->debug_hash = getenv("NVWA_DEBUG_HASH") != NULL;
    tr->t_start = tr->t_window = nv_now();
    return start_step;
}

static void trainer_close(trainer *tr) {
    free(tr->ts.h_master);
    free(tr->ts.h_m);
    free(tr->ts.h_v);
    for (int a = 0; a < tr->accum; a++) nv_batch_free(&tr->mb[a]);
    free(tr->mb);
    free(tr->lens);
    if (tr->shard && tr->be->forget) tr->be->forget(tr->shard, (tr->hi - tr->lo + 1) * sizeof(float));
    if (tr->nccl && tr->shard) tr->be->free(tr->shard);
    else free(tr->shard);
    nv_grad_stats_free(tr->gst);
    nv_grad_sync_free(tr->gs);
    if (tr->d->rank == 0) nv_logger_close(&tr->lg);
    nv_adamw_free(&tr->opt);
    nv_model_free(tr->model);
    free(tr->tpx.buf);
    nv_loader_free(tr->loader);
    nv_eval_hook_free(&tr->eval_hook);
    nv_dataset_free(tr->corpus);
    nv_corpus_free(&tr->mem);
    nv_nccl_free(tr->nccl);
}

// determinism debugging (NVWA_DEBUG_HASH=1): CRC32 of the state entering each step and of
// every micro-batch
static void debug_hash_state(trainer *tr, long step) {
    nv_ckpt_state hs;
    nv_run_state_bind(&tr->ts, &hs);
    if (tr->ts.staged) { // other backends: stage the state as a checkpoint would
        const nv_backend *be = tr->be;
        be->to_host(hs.master, nv_model_master(tr->model), tr->pt->total * 4);
        be->to_host(hs.adam_m, tr->opt.m, (tr->hi - tr->lo) * 4);
        be->to_host(hs.adam_v, tr->opt.v, (tr->hi - tr->lo) * 4);
    }
    printf("hash step %ld rank %d: master %08lx m %08lx v %08lx\n", step + 1, tr->d->rank,
           crc32(0, (const Bytef *)hs.master, (uInt)(tr->pt->total * 4)),
           crc32(0, (const Bytef *)hs.adam_m, (uInt)((tr->hi - tr->lo) * 4)),
           crc32(0, (const Bytef *)hs.adam_v, (uInt)((tr->hi - tr->lo) * 4)));
}

static void debug_hash_batches(const trainer *tr, long step) {
    const size_t n = (size_t)tr->rows * tr->L;
    for (int a = 0; a < tr->accum; a++) {
        const nv_batch *b = &tr->mb[a];
        uLong c = crc32(0, (const Bytef *)b->input, (uInt)(n * 4));
        c = crc32(c, (const Bytef *)b->target, (uInt)(n * 4));
        c = crc32(c, (const Bytef *)b->struct_in, (uInt)(n * 4));
        c = crc32(c, (const Bytef *)b->struct_target, (uInt)(n * 4));
        c = crc32(c, (const Bytef *)b->mlm_mask, (uInt)n);
        c = crc32(c, (const Bytef *)b->struct_mask, (uInt)n);
        c = crc32(c, (const Bytef *)b->segment, (uInt)(n * 4));
        c = crc32(c, (const Bytef *)b->position, (uInt)(n * 4));
        printf("hash step %ld rank %d: micro-batch %d %08lx\n", step + 1, tr->d->rank, a, c);
    }
}

// The rank's micro-batches of the step, and the counts of the whole global batch (both
// losses are means over it).
static void draw_batches(trainer *tr, long step, step_out *o) {
    long cnt[3] = {0, 0, 0}, n_lens = 0; // mlm positions, structure positions, real tokens
    for (int a = 0; a < tr->accum; a++) {
        const nv_batch *got = nv_loader_next(tr->loader);
        if (!got) break; // a shard could not be read: the ranks agree just below
        nv_batch_copy(&tr->mb[a], got);
        cnt[0] += tr->mb[a].n_mlm;
        cnt[1] += tr->mb[a].n_struct;
        cnt[2] += tr->mb[a].n_real;
        n_lens += nv_batch_segments(&tr->mb[a], NULL, tr->lens + n_lens, NULL);
    }
    if (nv_dataset_streamed(tr->corpus))
        nv_run_stop_on_data_error(tr->cfg, tr->d, &tr->ts, step, tr->start_step, nv_loader_error(tr->loader));
    if (tr->debug_hash) debug_hash_batches(tr, step);
    o->local_flops = nv_flops_per_step(&tr->cfg->model, tr->lens, n_lens);
    nv_allreduce_sum_long(tr->d, tr->d->comm_dp, cnt, 3);
    o->n_mlm = cnt[0];
    o->n_st = cnt[1];
    o->n_real = cnt[2];
}

// Forward and backward over the micro-batches: gradients accumulate; the last micro-batch
// reports finished buckets to the data-parallel sum (through the gradient check's hook).
// The losses stay on the device until the step's end.
static void forward_backward(trainer *tr, long step, const step_out *o) {
    const double mlm_scale = o->n_mlm ? 1.0 / (double)o->n_mlm : 0.0;
    const double st_scale = o->n_st ? tr->cfg->model.struct_loss_weight / (double)o->n_st : 0.0;
    nv_model_zero_grad(tr->model);
    nv_test_fault_grad(&tr->fault, tr->d, step + 1, tr->model);
    nv_grad_stats_begin(tr->gst);
    for (int a = 0; a < tr->accum; a++) {
        // buckets are summed (or, with ZeRO-1, reduce-scattered) as the last backward makes them
        nv_model_set_grad_hook(tr->model, a + 1 != tr->accum ? NULL : nv_grad_stats_hook(tr->gst));
        nv_model_step(tr->model, &tr->mb[a], mlm_scale, st_scale, 1, NULL);
    }
    nv_model_set_grad_hook(tr->model, NULL);
}

// The data-parallel sum, the gradient check and norm, and the one readback of the step
// (losses and per-tensor sums together); then the collectives on host values and one
// verdict for every rank on whether the step is skipped.
static void reduce_and_check(trainer *tr, long step, step_out *o) {
    const nv_dist *d = tr->d;
    nv_grad_stats_local(tr->gst); // before the data-parallel sum
    nv_grad_sync_finish(tr->gs); // ZeRO-1: this rank's summed shard is in `shard` now
    const void *g = tr->zero1 ? (const void *)tr->shard : nv_model_grad(tr->model);
    nv_grad_stats_global(tr->gst, g, tr->lo, tr->hi);
    nv_losses l;
    nv_model_take_losses(tr->model, &l); // waits for the device: the step's one sync point
    nv_grad_stats_read(tr->gst, &o->rep);
    o->tot[0] = l.mlm_sum;
    o->tot[1] = l.struct_sum;
    o->tot[2] = (double)l.mlm_correct;
    o->tot[3] = (double)l.struct_correct;
    if (nv_test_fault_loss(&tr->fault, d, step + 1)) o->tot[0] = NAN;
    o->loss_bad = !isfinite(o->tot[0]) || !isfinite(o->tot[1]); // this rank's own loss
    // the loss sums only now: until nv_grad_sync_finish returns, the communication thread
    // runs collectives on comm_dp, and two threads' collectives on one communicator get
    // matched across ranks in any order (a bucket's data landed in this 32-byte buffer)
    nv_allreduce_sum_f64(d, d->comm_dp, o->tot, 4);
    double ss[2] = {o->rep.split, o->rep.rep};
    if (d->tp_size > 1) nv_allreduce_sum_f64(d, d->comm_tp, ss, 1); // sharded part only
    if (tr->zero1) nv_allreduce_sum_f64(d, d->comm_dp, ss, 2);
    o->gnorm = sqrt(ss[0] + ss[1]);
    o->lr = nv_lr_at(&tr->cfg->optim, step, tr->cfg->train.steps);
    o->skip = !isfinite(o->gnorm) || !isfinite(o->tot[0] + o->tot[1]);
    nv_allreduce_max_int(d, d->comm_world, &o->skip, 1); // one verdict for every rank
}

// A skipped step: logged with the lowest rank holding a non-finite local gradient (its first
// tensor), else the lowest rank with a non-finite local loss. Returns 1 when the run stops
// (max-skipped-steps), having saved the last good weights.
static int handle_skip(trainer *tr, long step, const step_out *o) {
    const nv_config *cfg = tr->cfg;
    const nv_dist *d = tr->d;
    const nv_param_table *pt = tr->pt;
    tr->consecutive_skips++;
    // before the data-parallel sum when there is one, else the (local = global) gradient
    const int bad = d->dp_size > 1 ? o->rep.bad_local : o->rep.bad_global;
    const int nk = pt->n + 1;
    int where[2] = {-(bad >= 0 ? d->rank * nk + bad : INT_MAX), -(o->loss_bad ? d->rank : INT_MAX)};
    nv_allreduce_max_int(d, d->comm_world, where, 2); // keys minimized as max of -key
    if (d->rank == 0) {
        char f[512], msg[300];
        const int gk = -where[0], lk = -where[1];
        if (gk != INT_MAX)
            snprintf(msg, sizeof msg, "\"reason\": \"non-finite gradient\", \"rank\": %d, \"tensor\": \"%s\"",
                     gk / nk, pt->p[gk % nk].name);
        else if (lk != INT_MAX)
            snprintf(msg, sizeof msg, "\"reason\": \"non-finite loss\", \"rank\": %d, \"tensor\": \"loss\"", lk);
        else
            snprintf(msg, sizeof msg, "\"reason\": \"non-finite gradient norm\", \"rank\": -1, \"tensor\": \"unknown\"");
        snprintf(f, sizeof f, "\"step\": %ld, %s, \"consecutive\": %d", step + 1, msg, tr->consecutive_skips);
        nv_log_event(&tr->lg, "skipped_step", f);
        fprintf(stderr, "nvwa: warning: step %ld skipped (%d in a row): %s\n", step + 1, tr->consecutive_skips,
                gk != INT_MAX ? "non-finite gradient" : lk != INT_MAX ? "non-finite loss" : "non-finite gradient norm");
        if (gk != INT_MAX) fprintf(stderr, "    first non-finite value: rank %d, tensor %s\n", gk / nk, pt->p[gk % nk].name);
        else if (lk != INT_MAX) fprintf(stderr, "    first non-finite value: rank %d, the loss\n", lk);
    }
    if (cfg->train.max_skipped_steps <= 0 || tr->consecutive_skips < cfg->train.max_skipped_steps) return 0;
    // the weights are still those after the last good step: save them
    if (cfg->checkpoint.dir[0]) nv_run_save(cfg, d, &tr->ts, step + 1);
    if (d->rank == 0)
        fprintf(stderr, "nvwa: error: %d consecutive non-finite steps ([train] max-skipped-steps = %d); "
                "stopped at step %ld with the weights of step %ld%s%s\n"
                "---> HINT: lower [optim] lr or check the data\n", tr->consecutive_skips,
                cfg->train.max_skipped_steps, step + 1, step + 1 - tr->consecutive_skips,
                cfg->checkpoint.dir[0] ? " saved under " : " (no [checkpoint] dir: not saved)",
                cfg->checkpoint.dir);
    return 1;
}

static void apply_update(trainer *tr, const step_out *o) {
    const void *g = tr->zero1 ? (const void *)tr->shard : nv_model_grad(tr->model);
    tr->consecutive_skips = 0;
    nv_adamw_step(&tr->opt, nv_model_master(tr->model), g, tr->wact, o->lr,
                  nv_clip_scale(&tr->cfg->optim, o->gnorm));
    if (tr->zero1 && tr->wact) { // AdamW wrote this shard's act copy: share that (bf16 on GPU)
        if (tr->nccl) nv_nccl_zero1_allgather(tr->nccl, tr->wact, tr->pt->total, tr->be->act_bytes);
        else nv_zero1_allgather_bytes(tr->d, tr->wact, tr->pt->total, tr->be->act_bytes);
        tr->ts.masters_stale = 1; // gathered before a save (nv_run_save)
    } else if (tr->zero1) { // act copy = masters (CPU fp32)
        if (tr->nccl) nv_nccl_zero1_allgather(tr->nccl, nv_model_master(tr->model), tr->pt->total, 4);
        else nv_zero1_allgather(tr->d, nv_model_master(tr->model), tr->pt->total);
    }
}

static void log_step(trainer *tr, long step, long start_step, const step_out *o) {
    const nv_config *cfg = tr->cfg;
    const double t1 = nv_now();
    tr->tok_window += (double)o->n_real;
    tr->flop_window += o->local_flops * tr->d->dp_size; // every data rank's share, tensor ranks together
    if ((step + 1) % cfg->log.every != 0 && step + 1 != cfg->train.steps && !o->skip) return;
    nv_step_record r = {0};
    r.step = step + 1;
    r.total_steps = cfg->train.steps;
    r.mlm_loss = o->n_mlm ? o->tot[0] / (double)o->n_mlm : 0.0;
    r.struct_loss = o->n_st ? o->tot[1] / (double)o->n_st : 0.0;
    r.loss = r.mlm_loss + cfg->model.struct_loss_weight * r.struct_loss;
    r.mlm_acc = o->n_mlm ? o->tot[2] / (double)o->n_mlm : 0.0;
    r.struct_acc = o->n_st ? o->tot[3] / (double)o->n_st : 0.0;
    r.lr = o->lr;
    r.grad_norm = o->gnorm;
    const double dt = t1 - tr->t_window;
    r.tokens_per_s = dt > 0 ? tr->tok_window / dt : 0;
    r.flops_per_s = dt > 0 ? tr->flop_window / dt : 0;
    r.step_time = t1 - o->t0;
    r.mfu = strcmp(tr->be->name, "cuda") == 0 ? r.flops_per_s / (989e12 * tr->d->world) : -1.0;
    r.mem_gib = rss_gib();
    r.eta_s = (t1 - tr->t_start) / (double)(step + 1 - start_step) * (double)(cfg->train.steps - step - 1);
    r.skipped = o->skip;
    if (tr->d->rank == 0) nv_log_step(&tr->lg, &r, 1);
    tr->t_window = t1;
    tr->tok_window = tr->flop_window = 0;
}

// The step boundary: evaluation, then every rank agrees whether to stop (signal or time
// limit), and checkpoints are written. Returns 1 to stop.
static int step_boundary(trainer *tr, long step) {
    const nv_config *cfg = tr->cfg;
    const nv_dist *d = tr->d;
    tr->t_window += nv_eval_hook_step(&tr->eval_hook, tr->model, tr->corpus, cfg, d, &tr->lg, step + 1);
    const long done = step + 1;
    int stop = nv_stop_signal() != 0 ||
               (cfg->train.exit_after_minutes > 0 && nv_now() - tr->t_start >= 60.0 * cfg->train.exit_after_minutes);
    nv_allreduce_max_int(d, d->comm_world, &stop, 1);
    const int periodic = cfg->checkpoint.every > 0 && done % cfg->checkpoint.every == 0;
    if (cfg->checkpoint.dir[0] && (periodic || done == cfg->train.steps || stop))
        nv_run_save(cfg, d, &tr->ts, done);
    if (stop && d->rank == 0)
        printf("stopping after step %ld (%s)%s\n", done,
               nv_stop_signal() ? "signal" : "[train] exit-after-minutes",
               cfg->checkpoint.dir[0] ? "; resume with the same command" : "; no [checkpoint] dir, nothing saved");
    return stop;
}

int nv_train(const nv_config *cfg, const nv_dist *d) {
    trainer tr;
    const long start_step = trainer_open(&tr, cfg, d);
    long step = start_step;
    int rc = 0;
    for (; step < cfg->train.steps; step++) {
        step_out o;
        memset(&o, 0, sizeof o);
        o.t0 = nv_now();
        if (tr.debug_hash) debug_hash_state(&tr, step);
        draw_batches(&tr, step, &o);
        forward_backward(&tr, step, &o);
        reduce_and_check(&tr, step, &o);
        if (o.skip && handle_skip(&tr, step, &o)) {
            rc = 1;
            break;
        }
        if (!o.skip) apply_update(&tr, &o);
        tr.be->sync();
        log_step(&tr, step, start_step, &o);
        if (step_boundary(&tr, step)) {
            step++;
            break;
        }
    }
    char took[32];
    nv_format_duration(nv_now() - tr.t_start, took, sizeof took);
    if (rc == 0 && d->rank == 0 && step >= cfg->train.steps)
        printf("done: %ld steps in %s\n", cfg->train.steps - start_step, took);
    trainer_close(&tr);
    return rc;
}
