// run.c - fold one worker's parts with T OpenMP threads.
//
// The threads pull sequences one at a time from a shared dispenser that walks the parts in
// plan order (longest sequence first within a part), so no thread waits at a part's end:
// parts only mark what is saved. The thread that finishes a part's last fold writes its
// file. A part is loaded (a ranged read of its shard) by the thread that first needs it.
#include "tools/fold/fold.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct live_part {
    uint64_t part; // plan index
    fold_input in;
    uint8_t *ss;     // result: the input's bytes, overwritten where folded
    int32_t *energy; // [seqs]
    uint32_t *order; // local indices of the sequences to fold, longest first
    uint64_t n_order, next;
    uint64_t left;   // folds not yet finished (atomic)
    uint32_t tok_crc;
} live_part;

typedef struct run_ctx {
    const fold_settings *s;
    const fold_plan *p;
    const char *indir, *outdir;
    const uint64_t *mine;
    uint64_t n_mine, k; // next entry of mine to load
    live_part *cur;
    int cur_exhausted; // every fold of cur handed out (then its last finisher frees it)
    omp_lock_t lock;
    volatile sig_atomic_t *stop;
    int failed;
    nv_error err;
    const fold_progress *pr;
    double t0, last_print, cost_done;
    uint64_t seqs_done, parts_done, tokens_done;
    uint64_t *inflight; // [threads] length being folded, 0 = idle
    double *busy;       // [threads] CPU seconds spent in ViennaRNA
    int threads;
} run_ctx;

static void fail(run_ctx *c, const nv_error *e) {
    omp_set_lock(&c->lock);
    if (!c->failed) c->err = *e;
    c->failed = 1;
    omp_unset_lock(&c->lock);
}

static void live_free(live_part *L) {
    fold_input_free(&L->in);
    free(L->ss);
    free(L->energy);
    free(L->order);
    free(L);
}

typedef struct len_idx {
    uint64_t len;
    uint32_t i;
} len_idx;

static int cmp_longest(const void *a, const void *b) {
    const len_idx *x = a, *y = b;
    if (x->len != y->len) return x->len > y->len ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

// Read a part's input and list its folds; called with the lock held.
static live_part *load_part(run_ctx *c, uint64_t part, nv_error *err) {
    const fold_part *pt = &c->p->parts[part];
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", c->indir, c->p->shards[pt->shard].name);
    live_part *L = nv_calloc(1, sizeof *L);
    L->part = part;
    if (fold_read_input(path, pt, &L->in, err) != 0) return free(L), NULL;
    uint64_t nt = pt->tok_b - pt->tok_a, ns = pt->seq_b - pt->seq_a;
    L->ss = nv_malloc(nt ? nt : 1);
    memcpy(L->ss, L->in.ss, nt);
    L->energy = nv_malloc(ns * sizeof(int32_t));
    len_idx *li = nv_malloc(ns * sizeof *li);
    for (uint64_t i = 0; i < ns; i++) {
        L->energy[i] = FOLD_NO_ENERGY;
        uint64_t len = L->in.off[i + 1] - L->in.off[i];
        if (fold_decide(c->s, L->in.ss + L->in.off[i], len) == FOLD_DO) li[L->n_order++] = (len_idx){len, (uint32_t)i};
    }
    qsort(li, L->n_order, sizeof *li, cmp_longest);
    L->order = nv_malloc((L->n_order ? L->n_order : 1) * sizeof(uint32_t));
    for (uint64_t k = 0; k < L->n_order; k++) L->order[k] = li[k].i;
    free(li);
    L->left = L->n_order;
    L->tok_crc = fold_crc32(L->in.tok, nt);
    if (L->n_order != pt->n_fold) {
        nv_seterr(err, "%s: sequences %llu..%llu hold %llu sequences to fold, the plan says %u\n"
                       "---> HINT: the input changed since the plan; fold it into a new -o directory",
                  path, (unsigned long long)pt->seq_a, (unsigned long long)pt->seq_b - 1, (unsigned long long)L->n_order,
                  pt->n_fold);
        live_free(L);
        return NULL;
    }
    return L;
}

// Next (part, sequence) to fold, or NULL when there is none (end, stop or failure).
static live_part *dispense(run_ctx *c, uint32_t *seq) {
    live_part *got = NULL;
    omp_set_lock(&c->lock);
    while (!got && !c->failed && !*c->stop) {
        // an exhausted cur may be freed already by its last finisher: never look inside
        if (c->cur && !c->cur_exhausted) {
            got = c->cur;
            *seq = got->order[got->next++];
            c->cur_exhausted = got->next == got->n_order;
            break;
        }
        if (c->k == c->n_mine) break;
        nv_error e;
        live_part *L = load_part(c, c->mine[c->k++], &e);
        if (!L) {
            c->err = e;
            c->failed = 1;
            break;
        }
        c->cur = L; // the previous part lives on until its last fold finishes
        c->cur_exhausted = 0;
    }
    omp_unset_lock(&c->lock);
    return got;
}

static void finish_part(run_ctx *c, live_part *L) {
    char path[4096];
    nv_error e;
    fold_part_path(c->outdir, c->p, L->part, path, sizeof path);
    if (fold_part_write(path, c->p, L->part, L->tok_crc, L->ss, L->energy, &e) != 0) fail(c, &e);
    else {
#pragma omp atomic
        c->parts_done++;
    }
    live_free(L);
}

static void fmt_time(double s, char *buf, size_t n) {
    if (s < 0 || s > 1e9) snprintf(buf, n, "?");
    else if (s < 90) snprintf(buf, n, "%.0fs", s);
    else if (s < 5400) snprintf(buf, n, "%.0fm%02.0fs", s / 60 - 0.5, s - 60 * (double)(long)(s / 60));
    else snprintf(buf, n, "%.0fh%02ldm", (double)(long)(s / 3600), (long)(s / 60) % 60);
}

static void progress(run_ctx *c, int final) {
    const fold_progress *pr = c->pr;
    double now = nv_now();
    if (!pr->enabled || (!final && now - c->last_print < pr->every)) return;
    c->last_print = now;
    double dt = now - c->t0, done, f;
    uint64_t seqs, parts, longest = 0;
#pragma omp atomic read
    parts = c->parts_done;
#pragma omp atomic read
    done = c->cost_done;
#pragma omp atomic read
    seqs = c->seqs_done;
    for (int t = 0; t < c->threads; t++) {
        uint64_t l;
#pragma omp atomic read
        l = c->inflight[t];
        if (l > longest) longest = l;
    }
    f = pr->cost_total > 0 ? done / pr->cost_total : 1;
    char eta[32] = "-";
    if (done > 0 && !final) fmt_time(dt * (pr->cost_total - done) / done, eta, sizeof eta);
    double rate = dt > 0 ? (double)seqs / dt : 0;
    fprintf(stderr,
            "nvwa-fold: %5.1f%% | rank %d: %llu/%llu seqs, %.1f seq/s (all %d ranks ~%.0f seq/s) | ETA %s | "
            "longest in flight %llu nt | %llu parts saved\n",
            100 * f, pr->rank, (unsigned long long)seqs, (unsigned long long)pr->seqs_total, rate, pr->world,
            rate * pr->world, eta, (unsigned long long)longest, (unsigned long long)parts);
}

// CPU time of the calling thread: what folding costs, whatever else shares the cores
static double thread_cpu_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void worker(run_ctx *c) {
    int t = omp_get_thread_num();
    char *scratch = NULL;
    uint8_t *ss = NULL;
    size_t cap = 0;
    uint32_t i;
    live_part *L;
    while ((L = dispense(c, &i)) != NULL) {
        uint64_t a = L->in.off[i], len = L->in.off[i + 1] - a;
        if (len + 1 > cap) {
            cap = 2 * (len + 1);
            scratch = nv_realloc(scratch, 2 * cap);
            ss = nv_realloc(ss, cap);
        }
#pragma omp atomic write
        c->inflight[t] = len;
        if (t == 0) progress(c, 0); // with this thread's own sequence in flight
        double t0 = thread_cpu_seconds();
        nv_error e;
        int32_t energy;
        int rc = fold_one(c->s, L->in.tok + a, len, ss, &energy, scratch, &e);
        c->busy[t] += thread_cpu_seconds() - t0;
#pragma omp atomic write
        c->inflight[t] = 0;
        if (rc != 0) {
            nv_error e2;
            nv_seterr(&e2, "%s, sequence %llu: %s", c->p->shards[c->p->parts[L->part].shard].name,
                      (unsigned long long)(c->p->parts[L->part].seq_a + i), e.msg);
            fail(c, &e2);
        } else {
            memcpy(L->ss + a, ss, len);
            L->energy[i] = energy;
        }
        double cost = fold_cost(len);
#pragma omp atomic
        c->cost_done += cost;
#pragma omp atomic
        c->seqs_done++;
#pragma omp atomic
        c->tokens_done += len;
        uint64_t left;
#pragma omp atomic capture
        left = --L->left;
        // a failed part is not written: its file would hold an unfolded sequence
        if (left == 0 && !c->failed) finish_part(c, L);
        else if (left == 0) live_free(L);
    }
    free(scratch);
    free(ss);
}

int fold_run(const fold_settings *s, const fold_plan *p, const char *indir, const char *outdir,
             const uint64_t *mine, uint64_t n_mine, int threads, const fold_progress *pr, volatile sig_atomic_t *stop,
             fold_run_stats *st, nv_error *err) {
    run_ctx c;
    memset(&c, 0, sizeof c);
    c.s = s;
    c.p = p;
    c.indir = indir;
    c.outdir = outdir;
    c.mine = mine;
    c.n_mine = n_mine;
    c.stop = stop;
    c.pr = pr;
    c.threads = threads;
    c.inflight = nv_calloc((size_t)threads, sizeof *c.inflight);
    c.busy = nv_calloc((size_t)threads, sizeof *c.busy);
    c.t0 = c.last_print = nv_now();
    omp_init_lock(&c.lock);
#pragma omp parallel num_threads(threads)
    worker(&c);
    omp_destroy_lock(&c.lock);
    // a part whose folds were cut short by a stop or a failure is dropped unsaved
    int unfinished = c.k < c.n_mine || (c.cur && !c.cur_exhausted);
    if (c.cur && !c.cur_exhausted) live_free(c.cur);
    progress(&c, 1);
    memset(st, 0, sizeof *st);
    st->parts_done = c.parts_done;
    st->seqs_folded = c.seqs_done;
    st->tokens_folded = c.tokens_done;
    for (int t = 0; t < threads; t++) st->fold_seconds += c.busy[t];
    st->stopped = !c.failed && unfinished && *stop;
    free(c.inflight);
    free(c.busy);
    if (c.failed) {
        *err = c.err;
        return -1;
    }
    return 0;
}
