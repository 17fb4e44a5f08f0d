// trainer.h - the training loop of nvwa-train (single process for now).
#pragma once
#include "data/corpus.h"
#include "model/backend.h"
#include "train/config.h"
#include "train/dist.h"

// Pick the backend for [train] device (auto: CUDA when built and a GPU is present).
// Returns NULL with a reason in err.
const nv_backend *nv_select_backend(const nv_config *cfg, nv_error *err);

// The training corpus: shards from [data] train, or, when it is empty, an in-process
// synthetic corpus (nvwa-prep --synthetic's generator) of n_synthetic sequences.
int nv_load_train_corpus(const nv_config *cfg, nv_corpus *out, nv_error *err);

// Train per cfg as one rank of d. Returns the process exit code (0 on success).
int nv_train(const nv_config *cfg, const nv_dist *d);
