// run_state.c - see run_state.h.
#include "train/run_state.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/nv_util.h"
#include "model/cuda/cuda_api.h" // the attention choices kept beside the checkpoints
#include "train/grad_sync.h"     // ZeRO-1: the masters gathered before a save

void nv_run_state_bind(nv_run_state *ts, nv_ckpt_state *s) {
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
void nv_agree_or_exit(const nv_dist *d, int failed, const char *msg, int quick) {
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

// [train] attention = auto on the GPU times cuDNN against the native kernels at their first
// call; the two round differently, so a resumed run must use what the interrupted one chose:
// rank 0 keeps the decisions in <checkpoint dir>/attention-choice (written once, atomically),
// and a resume from that directory reads them back.
static void attention_choice_save(const nv_config *cfg, const nv_dist *d) {
    int c[4];
    char path[NV_PATH_MAX + 32], line[64];
    if (d->rank != 0 || !nv_cuda_get_attention_choices(c)) return;
    snprintf(path, sizeof path, "%s/attention-choice", cfg->checkpoint.dir);
    if (access(path, F_OK) == 0) return;
    const int n = snprintf(line, sizeof line, "%d %d %d %d\n", c[0], c[1], c[2], c[3]);
    nv_error err;
    if (nv_write_file_atomic(path, line, (size_t)n, &err) != 0)
        fprintf(stderr, "nvwa: warning: %s (a resumed run may time the attention kernels again)\n", err.msg);
}

static void attention_choice_load(const char *root) {
    char path[NV_PATH_MAX + 32];
    int c[4];
    snprintf(path, sizeof path, "%s/attention-choice", root);
    FILE *f = fopen(path, "r");
    if (!f) return;
    if (fscanf(f, "%d %d %d %d", &c[0], &c[1], &c[2], &c[3]) == 4) nv_cuda_set_attention_choices(c);
    fclose(f);
}

void nv_run_save(const nv_config *cfg, const nv_dist *d, nv_run_state *ts, long step) {
    nv_ckpt_state s;
    nv_error err;
    attention_choice_save(cfg, d);
    if (ts->masters_stale) { // ZeRO-1: every rank's updated fp32 shard, for the full masters
        const size_t total = nv_model_params(ts->model)->total;
        if (ts->nccl) nv_nccl_zero1_allgather(ts->nccl, nv_model_master(ts->model), total, 4);
        else nv_zero1_allgather(d, nv_model_master(ts->model), total);
        ts->masters_stale = 0;
    }
    nv_run_state_bind(ts, &s);
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
        nv_agree_or_exit(d, 1, msg, 1);
    }
    if (d->rank == 0)
        printf("checkpoint: step %ld saved under %s in %.2f s\n", step, cfg->checkpoint.dir, nv_now() - t0);
}

// A shard that cannot be read in the middle of a run (Fletcher32 mismatch, I/O error) is
// never skipped: every rank agrees at once (before the step's compute), the state of the
// last completed step is saved with the cursor of that step (unless this run saved it at
// that step already), the lowest failing rank prints what failed (shard, dataset, sequence)
// and every rank exits 1. Returns when no rank failed.
void nv_run_stop_on_data_error(const nv_config *cfg, const nv_dist *d, nv_run_state *ts, long step,
                               long start_step, const char *why) {
    int bad = why != NULL;
    nv_allreduce_max_int(d, d->comm_world, &bad, 1);
    if (!bad) return;
    nv_loader_step_back(ts->loader);
    const int have = step > start_step && cfg->checkpoint.every > 0 && step % cfg->checkpoint.every == 0;
    if (cfg->checkpoint.dir[0] && step > 0 && !have) nv_run_save(cfg, d, ts, step);
    const char *w = why ? why : "", *nl = strchr(w, '\n');
    char msg[2600], where[NV_PATH_MAX + 64];
    if (!cfg->checkpoint.dir[0]) snprintf(where, sizeof where, " (no [checkpoint] dir: nothing saved)");
    else if (step == 0) snprintf(where, sizeof where, " (no step completed: nothing to save)");
    else snprintf(where, sizeof where, ", the state of step %ld is under %s", step, cfg->checkpoint.dir);
    snprintf(msg, sizeof msg, "%.*s; training stopped before step %ld%s%s", nl ? (int)(nl - w) : 1100, w, step + 1,
             where, nl ? nl : "");
    nv_agree_or_exit(d, why != NULL, msg, 0);
}

// Resume per [checkpoint] resume: "none"; "auto" = the newest complete checkpoint under
// [checkpoint] dir if there is one; else a checkpoint root or step directory. Returns the
// step to continue from (0 when starting fresh).
long nv_run_resume(const nv_config *cfg, const nv_dist *d, nv_run_state *ts) {
    const char *how = cfg->checkpoint.resume, *src = NULL;
    if (strcmp(how, "none") == 0) return 0;
    if (cfg->checkpoint.dir[0]) attention_choice_load(cfg->checkpoint.dir); // this run's own
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
    nv_run_state_bind(ts, &s);
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
    attention_choice_load(src); // a checkpoint root (auto, or given); a step dir has none
    ts->opt->t_step = (long)s.extra[0];
    *ts->consecutive_skips = (int)s.extra[1];
    if (nv_loader_set_cursor(ts->loader, &s.cursor, &err) != 0)
        nv_dist_abort(d, "resume from %s: data cursor: %s", s.loaded, err.msg);
    if (d->rank == 0)
        printf("resumed from %s at step %ld\n", s.loaded, s.step);
    return s.step;
}

