// run_state.h - what a checkpoint holds of this rank and the trainer's uses of it: bind the
// training state to a checkpoint's buffers, save, resume, and stop cleanly on an error every
// rank agrees on (a failed save, an unreadable shard). The checkpoint format and its files
// are train/checkpoint.c's; the loop that calls these is train/trainer.c.
#pragma once
#include <stddef.h>

#include "data/batch.h"
#include "model/model.h"
#include "optim/adamw.h"
#include "train/checkpoint.h"
#include "train/comm_nccl.h"
#include "train/config.h"
#include "train/dist.h"

// What a checkpoint holds of this rank, gathered from (or scattered to) the training state.
// The CPU backend's state buffers are host floats and are used in place; other backends are
// staged through host copies.
typedef struct nv_run_state {
    nv_model *model;
    nv_adamw *opt;
    nv_loader *loader;
    int *consecutive_skips;
    size_t lo, hi;
    int zero1, staged;
    float *h_master, *h_m, *h_v;
    // ZeRO-1 with a separate act copy: only the act copy is all-gathered after a step, so the
    // fp32 masters outside this rank's shard are stale until gathered (before a save)
    int masters_stale;
    nv_nccl *nccl;
} nv_run_state;

// The checkpoint's view of ts (the CPU backend's buffers in place, others through host copies).
void nv_run_state_bind(nv_run_state *ts, nv_ckpt_state *s);
// An error every rank checks for at the same point: when any rank failed, the lowest failing
// rank prints msg, every rank leaves MPI and exits 1 (quick: _exit). Returns when none failed.
void nv_agree_or_exit(const nv_dist *d, int failed, const char *msg, int quick);
// Saves the state after `step` steps under [checkpoint] dir; a failed save stops every rank.
void nv_run_save(const nv_config *cfg, const nv_dist *d, nv_run_state *ts, long step);
// why: this rank's data error (NULL: none). When any rank has one, the last completed step is
// saved and every rank exits 1 with the first failing rank's line. Returns when none has.
void nv_run_stop_on_data_error(const nv_config *cfg, const nv_dist *d, nv_run_state *ts, long step,
                               long start_step, const char *why);
// Resumes per [checkpoint] resume; returns the step to continue from (0: a fresh start).
long nv_run_resume(const nv_config *cfg, const nv_dist *d, nv_run_state *ts);
