// trainer.h - the training loop of nvwa-train (trainer.c) and what a run needs around it
// (run_setup.c).
#pragma once
#include "data/corpus.h"
#include "data/dataset.h"
#include "model/backend.h"
#include "train/config.h"
#include "train/dist.h"

// Pick the backend for [train] device (auto: CUDA when built and a GPU is present).
// Returns NULL with a reason in err.
const nv_backend *nv_select_backend(const nv_config *cfg, nv_error *err);
// A tool's --device (nvwa-eval, nvwa-embed): "cpu" the fp32 reference, "cpu-bf16" the CUDA
// backend's twin, "cuda" (bf16), "auto" (cuda when present, else cpu). Sets [train] device
// and precision; -1 for an unknown name.
int nv_tool_device(nv_config *cfg, const char *device);

// The training corpus: the shards of [data] train, streamed (data/dataset.h), or, when it
// is empty, an in-process synthetic corpus (nvwa-prep --synthetic's generator) built in
// *mem. *out reads from either; free it, then mem.
int nv_open_train_data(const nv_config *cfg, nv_corpus *mem, nv_dataset **out, nv_error *err);

// The data line of the start-up report (rank 0), and a hint for shards whose chunks make
// random reads slow.
void nv_report_train_data(const nv_config *cfg, nv_dataset *ds);

// SIGTERM and SIGUSR1 (SLURM's warning before the time limit) set a flag that nv_train
// reads at every step boundary: save a checkpoint and exit 0. Call it first thing in main,
// so that a signal during start-up is not fatal either. nv_stop_signal: the signal that
// asked to stop, 0 while none has.
void nv_install_stop_handlers(void);
int nv_stop_signal(void);

// Train per cfg as one rank of d. Returns the process exit code (0 on success).
int nv_train(const nv_config *cfg, const nv_dist *d);
