// data_config.h - the [data] section (design section 10): shards, batch shape, masking.
// train/config.c parses and validates it with the rest of the file; the data floor reads
// only this part.
#pragma once
#include <stdint.h>
#include "data/nv_util.h" // NV_PATH_MAX

typedef struct nv_data_config {
    char train[NV_PATH_MAX]; // shard directory or glob; empty = in-process synthetic data
    char valid[NV_PATH_MAX];
    int seq_length;
    int micro_batch;
    int global_batch;
    double mask_rate, span_fraction, span_p;
    int span_max;
    double pair_mask_rate, struct_hide_rate;
    uint64_t seed;
} nv_data_config;
