// dump.h - `nvwa-train CONFIG --dump-batches N --output FILE.h5`: the first N global
// batches exactly as the trainer would see them, without training.
#pragma once
#include "data/dataset.h"
#include "data/nv_util.h"
#include "data/data_config.h"

// Writes datasets input, target, struct_in, struct_target, mlm_mask, struct_mask, segment,
// position, each [rows, seq-length] (rows = N * global-batch), atomically.
int nv_dump_batches(const nv_data_config *d, int structure_input, nv_dataset *corpus,
                    long n_steps, const char *path, nv_error *err);
