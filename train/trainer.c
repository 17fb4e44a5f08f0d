// trainer.c - one training step: draw the rank's micro-batches of the global step, count
// the loss positions of the whole global batch (so both losses are means over it), run
// forward+backward per micro-batch (gradients accumulate), clip by the global norm, skip
// non-finite steps, AdamW, log.
#include "train/trainer.h"

#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zlib.h>

#include "data/batch.h"
#include "data/synth.h"
#include "model/flops.h"
#include "model/model.h"
#include "optim/adamw.h"
#include "model/cuda/cuda_api.h" // nv_cuda_set_local_rank: GPU = nv_dist's local rank
#include "train/checkpoint.h"
#include "train/comm_nccl.h"     // GPU path: NCCL (compile-verified only)
#include "train/evaluate.h" // [log] eval-every (evaluation hook)
#include "train/grad_sync.h"
#include "train/log.h"

#define NV_SYNTH_DEFAULT_SEQS 20000

const nv_backend *nv_select_backend(const nv_config *cfg, nv_error *err) {
    const char *why = "";
    switch (cfg->train.device) {
    case NV_DEVICE_CPU: return nv_backend_cpu();
    case NV_DEVICE_CUDA: {
        if (cfg->train.precision != NV_PREC_BF16) {
            nv_seterr(err, "[train] precision = fp32 with device = cuda: the CUDA backend computes "
                           "in bf16 (fp32 masters)\n---> HINT: precision = bf16, or device = cpu for fp32");
            return NULL;
        }
        const nv_backend *be = nv_backend_cuda(&why);
        if (!be) nv_seterr(err, "[train] device = cuda: %s\n---> HINT: set [train] device = cpu or auto", why);
        return be;
    }
    default: { // auto: a GPU for bf16 runs when there is one, else the CPU (always fp32)
        const nv_backend *be = cfg->train.precision == NV_PREC_BF16 ? nv_backend_cuda(&why) : NULL;
        return be ? be : nv_backend_cpu();
    }
    }
}

int nv_open_train_data(const nv_config *cfg, nv_corpus *mem, nv_dataset **out, nv_error *err) {
    nv_corpus_init(mem);
    *out = NULL;
    if (cfg->data.train[0]) {
        const char *spec = cfg->data.train;
        return nv_dataset_open(&spec, 1, out, err);
    }
    nv_synth_params sp;
    nv_synth_defaults(&sp, NV_SYNTH_DEFAULT_SEQS, cfg->data.seed);
    nv_synth_corpus(mem, &sp);
    *out = nv_dataset_wrap(mem);
    return 0;
}

// The data line, and a hint for shards whose chunks make random reads slow.
static void report_data(const nv_config *cfg, nv_dataset *ds) {
    printf("data: %s: %llu sequences, %llu tokens (%llu with structure)", cfg->data.train[0] ? cfg->data.train
           : "synthetic (in-process)", (unsigned long long)nv_dataset_n_seqs(ds),
           (unsigned long long)nv_dataset_n_tokens(ds), (unsigned long long)nv_dataset_n_with_structure(ds));
    if (nv_dataset_streamed(ds))
        printf("; streamed from %d shard(s), index %.1f MiB per rank", nv_dataset_n_shards(ds),
               (double)nv_dataset_index_bytes(ds) / 1048576.0);
    printf("\n");
    const uint64_t chunk = nv_dataset_max_chunk(ds);
    if (chunk > ((uint64_t)NV_SHARD_CHUNK_KB << 12)) // 4x the default: old shards
        fprintf(stderr, "nvwa: warning: [data] train has shards with %llu KiB chunks: every random read inflates "
                        "a whole chunk\n---> HINT: rewrite them with this nvwa-prep (--chunk-kb %d) for faster "
                        "streaming\n", (unsigned long long)(chunk >> 10), NV_SHARD_CHUNK_KB);
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

// SIGTERM / SIGUSR1 (SLURM's warning before the time limit) only set this flag; the ranks
// agree on it at the next step boundary, save and exit 0. A signal handler can reach
// nothing else, hence the one file-scope variable.
static volatile sig_atomic_t stop_signal = 0;
static void on_stop_signal(int sig) { stop_signal = sig; }

void nv_install_stop_handlers(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    // a file-size limit (RLIMIT_FSIZE) is a write error (EFBIG) that the checkpoint and log
    // writers report, not a silent kill by SIGXFSZ
    signal(SIGXFSZ, SIG_IGN);
}

// What a checkpoint holds of this rank, gathered from (or scattered to) the training state.
// The CPU backend's state buffers are host floats and are used in place; other backends are
// staged through host copies.
typedef struct train_state {
    nv_model *model;
    nv_adamw *opt;
    nv_loader *loader;
    int *consecutive_skips;
    size_t lo, hi;
    int zero1, staged;
    float *h_master, *h_m, *h_v;
} train_state;

static void state_bind(train_state *ts, nv_ckpt_state *s) {
    const nv_backend *be = nv_model_backend(ts->model);
    const nv_param_table *t = nv_model_params(ts->model);
    memset(s, 0, sizeof *s);
    s->t = t;
    s->shard_lo = ts->lo;
    s->shard_hi = ts->hi;
    s->zero1 = ts->zero1;
    ts->staged = strcmp(be->name, "cpu") != 0;
    if (!ts->staged) {
        s->master = nv_model_master(ts->model);
        s->adam_m = ts->opt->m;
        s->adam_v = ts->opt->v;
    } else {
        if (!ts->h_master) {
            ts->h_master = nv_malloc(t->total * sizeof(float));
            ts->h_m = nv_malloc((ts->hi - ts->lo + 1) * sizeof(float));
            ts->h_v = nv_malloc((ts->hi - ts->lo + 1) * sizeof(float));
        }
        s->master = ts->h_master;
        s->adam_m = ts->h_m;
        s->adam_v = ts->h_v;
    }
}

// An error every rank checks for at the same point (start-up input, a failed checkpoint
// save): the lowest failing rank prints its line (one line per job, not per rank), then every
// rank leaves MPI cleanly and exits 1. Returns when no rank failed. quick: _exit, skipping the
// exit handlers (after a failed H5Fclose on a full disk, libhdf5's own exit handler closes the
// broken file again and crashes).
static void agree_or_exit(const nv_dist *d, int failed, const char *msg, int quick) {
    int key = failed ? -d->rank : -INT_MAX; // max of -rank: the lowest failing rank
    nv_allreduce_max_int(d, d->comm_world, &key, 1);
    if (key == -INT_MAX) return;
    if (-key == d->rank) {
        fprintf(stderr, "nvwa: error: %s\n", msg);
        fflush(stderr);
    }
    fflush(stdout);
    nv_dist_finalize((nv_dist *)d);
    if (quick) _exit(1);
    exit(1);
}

static void save_checkpoint(const nv_config *cfg, const nv_dist *d, train_state *ts, long step) {
    nv_ckpt_state s;
    nv_error err;
    state_bind(ts, &s);
    if (ts->staged) {
        const nv_backend *be = nv_model_backend(ts->model);
        be->to_host(s.master, nv_model_master(ts->model), nv_model_params(ts->model)->total * 4);
        be->to_host(s.adam_m, ts->opt->m, (ts->hi - ts->lo) * 4);
        be->to_host(s.adam_v, ts->opt->v, (ts->hi - ts->lo) * 4);
    }
    s.step = step;
    nv_loader_get_cursor(ts->loader, &s.cursor);
    s.extra[0] = (uint64_t)ts->opt->t_step;
    s.extra[1] = (uint64_t)*ts->consecutive_skips;
    const double t0 = nv_now();
    if (nv_ckpt_save(cfg->checkpoint.dir, d, cfg, &s, cfg->checkpoint.keep, &err) != 0) {
        // every rank gets the same verdict; name what is still there (`latest` is replaced last)
        char prev[NV_PATH_MAX] = "", msg[sizeof err.msg + 2 * NV_PATH_MAX + 128], *nl = strchr(err.msg, '\n');
        nv_error e2;
        if (nl) *nl = 0; // the reason's first line; its hint follows the verdict
        if (nv_ckpt_resolve(cfg->checkpoint.dir, prev, sizeof prev, &e2) != 0) prev[0] = 0;
        snprintf(msg, sizeof msg, "checkpoint at step %ld not saved: %s; %s%s%s%s", step, err.msg,
                 prev[0] ? "the previous checkpoint " : "there is no previous checkpoint",
                 prev, prev[0] ? " is intact" : "", nl ? "\n" : "");
        if (nl) snprintf(msg + strlen(msg), sizeof msg - strlen(msg), "%s", nl + 1);
        agree_or_exit(d, 1, msg, 1);
    }
    if (d->rank == 0)
        printf("checkpoint: step %ld saved under %s in %.2f s\n", step, cfg->checkpoint.dir, nv_now() - t0);
}

// A shard that cannot be read in the middle of a run (Fletcher32 mismatch, I/O error) is
// never skipped: every rank agrees at once (before the step's compute), the state of the
// last completed step is saved with the cursor of that step (unless this run saved it at
// that step already), the lowest failing rank prints what failed (shard, dataset, sequence)
// and every rank exits 1. Returns when no rank failed.
static void stop_on_data_error(const nv_config *cfg, const nv_dist *d, train_state *ts, long step,
                               long start_step, const char *why) {
    int bad = why != NULL;
    nv_allreduce_max_int(d, d->comm_world, &bad, 1);
    if (!bad) return;
    nv_loader_step_back(ts->loader);
    const int have = step > start_step && cfg->checkpoint.every > 0 && step % cfg->checkpoint.every == 0;
    if (cfg->checkpoint.dir[0] && step > 0 && !have) save_checkpoint(cfg, d, ts, step);
    const char *w = why ? why : "", *nl = strchr(w, '\n');
    char msg[2600], where[NV_PATH_MAX + 64];
    if (!cfg->checkpoint.dir[0]) snprintf(where, sizeof where, " (no [checkpoint] dir: nothing saved)");
    else if (step == 0) snprintf(where, sizeof where, " (no step completed: nothing to save)");
    else snprintf(where, sizeof where, ", the state of step %ld is under %s", step, cfg->checkpoint.dir);
    snprintf(msg, sizeof msg, "%.*s; training stopped before step %ld%s%s", nl ? (int)(nl - w) : 1100, w, step + 1,
             where, nl ? nl : "");
    agree_or_exit(d, why != NULL, msg, 0);
}

// Resume per [checkpoint] resume: "none"; "auto" = the newest complete checkpoint under
// [checkpoint] dir if there is one; else a checkpoint root or step directory. Returns the
// step to continue from (0 when starting fresh).
static long maybe_resume(const nv_config *cfg, const nv_dist *d, train_state *ts) {
    const char *how = cfg->checkpoint.resume, *src = NULL;
    if (strcmp(how, "none") == 0) return 0;
    if (strcmp(how, "auto") == 0) {
        if (!cfg->checkpoint.dir[0]) return 0;
        char (*dirs)[NV_PATH_MAX] = NULL;
        nv_error e;
        int n = nv_ckpt_candidates(cfg->checkpoint.dir, &dirs, &e);
        free(dirs);
        if (n <= 0) return 0;
        src = cfg->checkpoint.dir;
    } else {
        src = how;
    }
    nv_ckpt_state s;
    nv_config saved;
    nv_error err;
    state_bind(ts, &s);
    if (nv_ckpt_load(src, d, &saved, &s, &err) != 0)
        nv_dist_abort(d, "resume from %s: %s\n---> HINT: [checkpoint] resume = none starts afresh", src, err.msg);
    if (memcmp(&saved.model, &cfg->model, sizeof saved.model) != 0)
        nv_dist_abort(d, "resume from %s: its [model] section differs from this run's\n"
                      "---> HINT: a checkpoint continues only the model it was saved from", s.loaded);
    if (ts->staged) {
        const nv_backend *be = nv_model_backend(ts->model);
        be->to_device(nv_model_master(ts->model), s.master, nv_model_params(ts->model)->total * 4);
        be->to_device(ts->opt->m, s.adam_m, (ts->hi - ts->lo) * 4);
        be->to_device(ts->opt->v, s.adam_v, (ts->hi - ts->lo) * 4);
    }
    nv_model_refresh_act(ts->model);
    ts->opt->t_step = (long)s.extra[0];
    *ts->consecutive_skips = (int)s.extra[1];
    if (nv_loader_set_cursor(ts->loader, &s.cursor, &err) != 0)
        nv_dist_abort(d, "resume from %s: data cursor: %s", s.loaded, err.msg);
    if (d->rank == 0)
        printf("resumed from %s at step %ld\n", s.loaded, s.step);
    return s.step;
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

// --- non-finite steps: where the first bad value is, and fault injection for tests ---
// A skipped step is logged with the rank and the tensor holding the first non-finite
// gradient value (lowest rank, then table order) or the rank whose loss was not finite.
// With more than one data rank the gradients are checked before the data-parallel sum
// (afterwards every rank holds the bad value): one nonfinite() pass per tensor per step,
// made in the grad hook as buckets complete, so the overlap stays. With one data rank the
// check runs only on a skipped step.
typedef struct nf_watch {
    const nv_backend *be;
    const nv_param_table *pt;
    const char *grad;           // the local flat gradient (element i at grad[i * state_bytes])
    const nv_grad_hook *inner;  // the data-parallel hook it wraps (may be NULL)
    nv_grad_hook hook;
    unsigned char *checked;     // [pt->n]
    int bad;                    // first non-finite tensor seen (table order), or -1
} nf_watch;

static void nf_check(nf_watch *w, int k) {
    const nv_param *p = &w->pt->p[k];
    if (w->checked[k]) return;
    w->checked[k] = 1;
    if ((w->bad < 0 || k < w->bad) && p->numel &&
        w->be->nonfinite(w->grad + p->offset * w->be->state_bytes, p->numel))
        w->bad = k;
}

static void nf_ready(void *ctx, size_t lo, size_t hi) {
    nf_watch *w = ctx;
    for (int k = 0; k < w->pt->n; k++)
        if (w->pt->p[k].offset >= lo && w->pt->p[k].offset < hi) nf_check(w, k);
    if (w->inner && w->inner->ready) w->inner->ready(w->inner->ctx, lo, hi);
}

static void nf_begin(nf_watch *w) {
    memset(w->checked, 0, (size_t)w->pt->n);
    w->bad = -1;
}

// The tensors not reported through the hook (call before the data-parallel sum).
static void nf_finish(nf_watch *w) {
    for (int k = 0; k < w->pt->n; k++) nf_check(w, k);
}

// NVWA_TEST_FAULT="KIND[:rank=R][:step=S][:count=N][:tensor=NAME]", for tests only. KIND:
// grad-nan or grad-inf (element 0 of tensor NAME's local gradient, default
// layers.0.attn.wqkv, before the data-parallel sum) or loss-nan (the rank's local loss);
// on rank R (default every rank) at the 1-based steps S .. S+N-1 (default 1, N 1).
typedef struct test_fault {
    int kind; // 0 none, 1 grad-nan, 2 grad-inf, 3 loss-nan
    int rank;
    long step, count;
    int tensor;
} test_fault;

static void test_fault_parse(test_fault *f, const nv_param_table *pt, const nv_dist *d) {
    memset(f, 0, sizeof *f);
    const char *s = getenv("NVWA_TEST_FAULT");
    if (!s || !*s) return;
    char buf[256], name[NV_PARAM_NAME_MAX] = "layers.0.attn.wqkv";
    snprintf(buf, sizeof buf, "%s", s);
    f->rank = -1;
    f->step = f->count = 1;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ":", &save); tok; tok = strtok_r(NULL, ":", &save)) {
        if (!strcmp(tok, "grad-nan")) f->kind = 1;
        else if (!strcmp(tok, "grad-inf")) f->kind = 2;
        else if (!strcmp(tok, "loss-nan")) f->kind = 3;
        else if (!strncmp(tok, "rank=", 5)) f->rank = atoi(tok + 5);
        else if (!strncmp(tok, "step=", 5)) f->step = atol(tok + 5);
        else if (!strncmp(tok, "count=", 6)) f->count = atol(tok + 6);
        else if (!strncmp(tok, "tensor=", 7)) snprintf(name, sizeof name, "%s", tok + 7);
        else nv_dist_abort(d, "NVWA_TEST_FAULT=%s: unknown part '%s'", s, tok);
    }
    f->tensor = -1;
    for (int k = 0; k < pt->n; k++)
        if (!strcmp(pt->p[k].name, name)) f->tensor = k;
    if (!f->kind || f->tensor < 0)
        nv_dist_abort(d, "NVWA_TEST_FAULT=%s: needs grad-nan, grad-inf or loss-nan and a known tensor", s);
    if (d->rank == 0) fprintf(stderr, "nvwa: warning: NVWA_TEST_FAULT=%s (fault injection for tests)\n", s);
}

static int test_fault_now(const test_fault *f, const nv_dist *d, long step1, int kind) {
    return f->kind == kind && (f->rank < 0 || f->rank == d->rank) && step1 >= f->step &&
           step1 < f->step + f->count;
}

// Grad faults go in right after the gradients are zeroed: backward accumulates onto them.
static void test_fault_grad(const test_fault *f, const nv_dist *d, long step1, nv_model *m) {
    for (int kind = 1; kind <= 2; kind++) {
        if (!test_fault_now(f, d, step1, kind)) continue;
        const nv_backend *be = nv_model_backend(m);
        const float v = kind == 1 ? NAN : INFINITY;
        be->to_device(nv_model_tensor(m, nv_model_grad(m), f->tensor), &v, sizeof v);
    }
}
// --- end non-finite steps ---

int nv_train(const nv_config *cfg, const nv_dist *d) {
    nv_error err;
    const int root = d->rank == 0;
    if (cfg->train.device != NV_DEVICE_CPU) nv_cuda_set_local_rank(d->local_rank);
    const nv_backend *be = nv_select_backend(cfg, &err);
    if (!be) nv_dist_abort(d, "%s", err.msg);
    // Multi-rank on the cuda backend: collectives through NCCL (train/comm_nccl.h).
    // COMPILE-VERIFIED ONLY: this path has not run on a GPU yet.
    const int on_gpu = strcmp(be->name, "cuda") == 0;
    if (strcmp(be->name, "cpu") != 0 && !on_gpu && d->world > 1)
        nv_dist_abort(d, "multi-rank training on %s is not wired up\n---> HINT: [train] device = cpu", be->name);
    nv_nccl *nccl = on_gpu && d->world > 1 ? nv_nccl_create(d) : NULL;
    nv_corpus mem;
    nv_dataset *corpus = NULL;
    // every rank opens the shards (index only); one line for the job when any of them cannot
    agree_or_exit(d, nv_open_train_data(cfg, &mem, &corpus, &err) != 0, err.msg, 0);
    if (root) report_data(cfg, corpus);
    nv_loader *loader = nv_loader_create_ds(corpus, cfg, d->dp_rank, d->dp_size, NV_LOADER_PREFETCH, &err);
    if (!loader) nv_dist_abort(d, "%s", err.msg);
    const int accum = nv_loader_accum(loader);
    const int rows = cfg->data.micro_batch, L = cfg->data.seq_length;
    const int max_tokens = rows * L;

    nv_tp_comm tpc = {tp_allreduce_cpu, (void *)d};
    if (nccl) tpc = (nv_tp_comm){nv_nccl_tp_allreduce_act, nccl};
    nv_model *model = nv_model_create_ex(&cfg->model, be, d->tp_rank, d->tp_size,
                                         d->tp_size > 1 ? &tpc : NULL, max_tokens,
                                         cfg->train.recompute);
    nv_model_init_weights(model, cfg->train.seed);
    const nv_param_table *pt = nv_model_params(model);
    if (root)
        printf("memory: %.3f GiB planned for the model on %s (weights, gradients, activations%s)\n",
               (double)nv_model_device_bytes(model) / (1 << 30), be->name,
               cfg->train.recompute ? ", recompute on" : "");
    if (root)
        printf("model: %.4g parameters, backend %s, world %d = tensor %d x data %d%s, "
               "%d micro-batch(es) of %d x %d per rank per step\n",
               (double)nv_param_count(&cfg->model), be->name, d->world, d->tp_size, d->dp_size,
               cfg->parallel.zero1 ? " (ZeRO-1)" : "", accum, rows, L);

    // optimizer over this rank's range: its ZeRO-1 shard or everything
    const int zero1 = cfg->parallel.zero1 && d->dp_size > 1;
    size_t lo = 0, hi = pt->total;
    if (zero1 && nccl) nv_zero1_range_nccl(pt->total, d->dp_size, d->dp_rank, &lo, &hi);
    else if (zero1) nv_zero1_range(pt->total, d->dp_size, d->dp_rank, &lo, &hi);
    nv_adamw opt;
    nv_adamw_init(&opt, be, pt, &cfg->optim, cfg->train.steps, lo, hi);
    float *shard = !zero1 ? NULL : nccl ? be->alloc((hi - lo + 1) * sizeof(float))
                                        : nv_calloc(hi - lo + 1, sizeof(float));
    nv_grad_sync *gs = nccl ? nv_grad_sync_create_nccl(d, nccl, nv_model_grad(model), pt->total, 0)
                            : nv_grad_sync_create(d, nv_model_grad(model), pt->total, 0);
    void *wact = nv_model_weights_act(model) == nv_model_master(model) ? NULL : nv_model_weights_act(model);

    nv_logger lg = {0};
    // --- evaluation hook ([log] eval-every on [data] valid; train/evaluate.h) ---
    nv_eval_hook eval_hook;
    nv_eval_hook_init(&eval_hook, cfg, d);
    // --- end evaluation hook ---

    nv_batch *mb = nv_calloc((size_t)accum, sizeof(nv_batch));
    for (int a = 0; a < accum; a++) nv_batch_alloc(&mb[a], rows, L);
    int32_t *lens = nv_malloc((size_t)accum * max_tokens * sizeof(int32_t));

    int consecutive_skips = 0, rc = 0;
    test_fault fault;
    test_fault_parse(&fault, pt, d);
    const int nf_presync = d->dp_size > 1; // check the local gradients before the DP sum
    nf_watch nfw = {be, pt, nv_model_grad(model), nv_grad_sync_hook(gs), {nf_ready, NULL},
                    nv_calloc((size_t)pt->n, 1), -1};
    nfw.hook.ctx = &nfw;
    train_state ts = {model, &opt, loader, &consecutive_skips, lo, hi, zero1, 0, NULL, NULL, NULL};
    const long start_step = maybe_resume(cfg, d, &ts);
    // a resumed run (a requeued job) continues the JSONL log; a fresh one starts it
    if (root && nv_logger_open(&lg, cfg->log.file, start_step > 0) != 0) nv_dist_abort(d, "cannot open the log");

    const double t_start = nv_now();
    double t_window = t_start, tok_window = 0, flop_window = 0;
    long step = start_step;
    const int debug_hash = getenv("NVWA_DEBUG_HASH") != NULL;
    for (; step < cfg->train.steps; step++) {
        const double t0 = nv_now();
        if (debug_hash) { // determinism debugging: CRC32 of the state entering each step
            nv_ckpt_state hs;
            state_bind(&ts, &hs);
            printf("hash step %ld rank %d: master %08lx m %08lx v %08lx\n", step + 1, d->rank,
                   crc32(0, (const Bytef *)hs.master, (uInt)(pt->total * 4)),
                   crc32(0, (const Bytef *)hs.adam_m, (uInt)((hi - lo) * 4)),
                   crc32(0, (const Bytef *)hs.adam_v, (uInt)((hi - lo) * 4)));
        }
        // [0] mlm positions, [1] structure positions, [2] real tokens: over the global batch
        long cnt[3] = {0, 0, 0}, n_lens = 0;
        for (int a = 0; a < accum; a++) {
            const nv_batch *got = nv_loader_next(loader);
            if (!got) break; // a shard could not be read: the ranks agree just below
            nv_batch_copy(&mb[a], got);
            cnt[0] += mb[a].n_mlm;
            cnt[1] += mb[a].n_struct;
            cnt[2] += mb[a].n_real;
            n_lens += nv_batch_segments(&mb[a], NULL, lens + n_lens, NULL);
        }
        if (nv_dataset_streamed(corpus)) stop_on_data_error(cfg, d, &ts, step, start_step, nv_loader_error(loader));
        if (debug_hash)
            for (int a = 0; a < accum; a++) {
                const size_t n = (size_t)rows * L;
                uLong c = crc32(0, (const Bytef *)mb[a].input, (uInt)(n * 4));
                c = crc32(c, (const Bytef *)mb[a].target, (uInt)(n * 4));
                c = crc32(c, (const Bytef *)mb[a].struct_in, (uInt)(n * 4));
                c = crc32(c, (const Bytef *)mb[a].struct_target, (uInt)(n * 4));
                c = crc32(c, (const Bytef *)mb[a].mlm_mask, (uInt)n);
                c = crc32(c, (const Bytef *)mb[a].struct_mask, (uInt)n);
                c = crc32(c, (const Bytef *)mb[a].segment, (uInt)(n * 4));
                c = crc32(c, (const Bytef *)mb[a].position, (uInt)(n * 4));
                printf("hash step %ld rank %d: micro-batch %d %08lx\n", step + 1, d->rank, a, c);
            }
        double local_flops = nv_flops_per_step(&cfg->model, lens, n_lens);
        nv_allreduce_sum_long(d, d->comm_dp, cnt, 3);
        const long n_mlm = cnt[0], n_st = cnt[1], n_real = cnt[2];
        const double mlm_scale = n_mlm ? 1.0 / (double)n_mlm : 0.0;
        const double st_scale = n_st ? cfg->model.struct_loss_weight / (double)n_st : 0.0;
        nv_model_zero_grad(model);
        test_fault_grad(&fault, d, step + 1, model);
        if (nf_presync) nf_begin(&nfw);
        // [0] mlm loss sum, [1] struct loss sum, [2] mlm hits, [3] struct hits
        double tot[4] = {0, 0, 0, 0};
        for (int a = 0; a < accum; a++) {
            nv_losses l;
            if (!zero1)
                nv_model_set_grad_hook(model, a + 1 != accum ? NULL : nf_presync ? &nfw.hook : nv_grad_sync_hook(gs));
            nv_model_step(model, &mb[a], mlm_scale, st_scale, 1, &l);
            tot[0] += l.mlm_sum;
            tot[1] += l.struct_sum;
            tot[2] += (double)l.mlm_correct;
            tot[3] += (double)l.struct_correct;
        }
        nv_model_set_grad_hook(model, NULL);
        if (nf_presync) nf_finish(&nfw); // before the data-parallel sum
        if (test_fault_now(&fault, d, step + 1, 3)) tot[0] = NAN;
        const int loss_bad = !isfinite(tot[0]) || !isfinite(tot[1]); // this rank's own loss
        // data-parallel sum of gradients, then the true global norm
        const void *g = nv_model_grad(model);
        if (zero1) {
            if (nccl) nv_nccl_zero1_reduce_scatter(nccl, nv_model_grad(model), pt->total, shard);
            else nv_zero1_reduce_scatter(d, nv_model_grad(model), pt->total, shard);
            g = shard;
        } else {
            nv_grad_sync_finish(gs);
        }
        // the loss sums only now: until nv_grad_sync_finish returns, the communication thread
        // runs collectives on comm_dp, and two threads' collectives on one communicator get
        // matched across ranks in any order (a bucket's data landed in this 32-byte buffer)
        nv_allreduce_sum_f64(d, d->comm_dp, tot, 4);
        double ss[2];
        grad_sumsq(be, pt, g, lo, hi, &ss[0], &ss[1]);
        if (d->tp_size > 1) nv_allreduce_sum_f64(d, d->comm_tp, ss, 1); // sharded part only
        if (zero1) nv_allreduce_sum_f64(d, d->comm_dp, ss, 2);
        const double gnorm = sqrt(ss[0] + ss[1]);
        const double lr = nv_lr_at(&cfg->optim, step, cfg->train.steps);
        int skip = !isfinite(gnorm) || !isfinite(tot[0] + tot[1]);
        nv_allreduce_max_int(d, d->comm_world, &skip, 1); // one verdict for every rank
        if (skip) {
            consecutive_skips++;
            // where: the lowest rank with a non-finite local gradient (its first tensor), else
            // the lowest rank with a non-finite local loss; keys minimized as max of -key
            if (!nf_presync) {
                nf_begin(&nfw);
                nfw.grad = g;
                nf_finish(&nfw);
                nfw.grad = nv_model_grad(model);
            }
            const int nk = pt->n + 1;
            int where[2] = {-(nfw.bad >= 0 ? d->rank * nk + nfw.bad : INT_MAX),
                            -(loss_bad ? d->rank : INT_MAX)};
            nv_allreduce_max_int(d, d->comm_world, where, 2);
            if (root) {
                char f[512], msg[300];
                const int gk = -where[0], lk = -where[1];
                if (gk != INT_MAX)
                    snprintf(msg, sizeof msg, "\"reason\": \"non-finite gradient\", \"rank\": %d, \"tensor\": \"%s\"",
                             gk / nk, pt->p[gk % nk].name);
                else if (lk != INT_MAX)
                    snprintf(msg, sizeof msg, "\"reason\": \"non-finite loss\", \"rank\": %d, \"tensor\": \"loss\"", lk);
                else
                    snprintf(msg, sizeof msg, "\"reason\": \"non-finite gradient norm\", \"rank\": -1, \"tensor\": \"unknown\"");
                snprintf(f, sizeof f, "\"step\": %ld, %s, \"consecutive\": %d", step + 1, msg, consecutive_skips);
                nv_log_event(&lg, "skipped_step", f);
                fprintf(stderr, "nvwa: warning: step %ld skipped (%d in a row): %s\n", step + 1, consecutive_skips,
                        gk != INT_MAX ? "non-finite gradient" : lk != INT_MAX ? "non-finite loss" : "non-finite gradient norm");
                if (gk != INT_MAX) fprintf(stderr, "    first non-finite value: rank %d, tensor %s\n", gk / nk, pt->p[gk % nk].name);
                else if (lk != INT_MAX) fprintf(stderr, "    first non-finite value: rank %d, the loss\n", lk);
            }
            if (cfg->train.max_skipped_steps > 0 && consecutive_skips >= cfg->train.max_skipped_steps) {
                rc = 1;
                // the weights are still those after the last good step: save them
                if (cfg->checkpoint.dir[0]) save_checkpoint(cfg, d, &ts, step + 1);
                if (root)
                    fprintf(stderr, "nvwa: error: %d consecutive non-finite steps ([train] max-skipped-steps = %d); "
                            "stopped at step %ld with the weights of step %ld%s%s\n"
                            "---> HINT: lower [optim] lr or check the data\n", consecutive_skips,
                            cfg->train.max_skipped_steps, step + 1, step + 1 - consecutive_skips,
                            cfg->checkpoint.dir[0] ? " saved under " : " (no [checkpoint] dir: not saved)",
                            cfg->checkpoint.dir);
                break;
            }
        } else {
            consecutive_skips = 0;
            nv_adamw_step(&opt, nv_model_master(model), g, wact, lr, nv_clip_scale(&cfg->optim, gnorm));
            if (zero1) {
                if (nccl) nv_nccl_zero1_allgather(nccl, nv_model_master(model), pt->total);
                else nv_zero1_allgather(d, nv_model_master(model), pt->total);
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
            r.eta_s = (t1 - t_start) / (double)(step + 1 - start_step) * (double)(cfg->train.steps - step - 1);
            r.skipped = skip;
            if (root) nv_log_step(&lg, &r, 1);
            t_window = t1;
            tok_window = flop_window = 0;
        }
        // --- evaluation hook ---
        t_window += nv_eval_hook_step(&eval_hook, model, corpus, cfg, d, &lg, step + 1);
        // --- end evaluation hook ---
        // step boundary: every rank agrees whether to stop (signal or time limit)
        const long done = step + 1;
        int stop = stop_signal != 0 ||
                   (cfg->train.exit_after_minutes > 0 && nv_now() - t_start >= 60.0 * cfg->train.exit_after_minutes);
        nv_allreduce_max_int(d, d->comm_world, &stop, 1);
        const int periodic = cfg->checkpoint.every > 0 && done % cfg->checkpoint.every == 0;
        if (cfg->checkpoint.dir[0] && (periodic || done == cfg->train.steps || stop))
            save_checkpoint(cfg, d, &ts, done);
        if (stop) {
            if (root)
                printf("stopping after step %ld (%s)%s\n", done,
                       stop_signal ? "signal" : "[train] exit-after-minutes",
                       cfg->checkpoint.dir[0] ? "; resume with the same command" : "; no [checkpoint] dir, nothing saved");
            step = done;
            break;
        }
    }
    char took[32];
    nv_format_duration(nv_now() - t_start, took, sizeof took);
    if (rc == 0 && root && step >= cfg->train.steps)
        printf("done: %ld steps in %s\n", cfg->train.steps - start_step, took);
    free(nfw.checked);
    free(ts.h_master);
    free(ts.h_m);
    free(ts.h_v);

    for (int a = 0; a < accum; a++) nv_batch_free(&mb[a]);
    free(mb);
    free(lens);
    if (nccl && shard) be->free(shard);
    else free(shard);
    nv_grad_sync_free(gs);
    if (root) nv_logger_close(&lg);
    nv_adamw_free(&opt);
    nv_model_free(model);
    nv_loader_free(loader);
    nv_eval_hook_free(&eval_hook); // evaluation hook
    nv_dataset_free(corpus);
    nv_corpus_free(&mem);
    nv_nccl_free(nccl);
    return rc;
}
