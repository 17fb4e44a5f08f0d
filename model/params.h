// params.h - the named parameter table (design section 6). The optimizer (decay groups),
// checkpoints (names, logical slices) and export all draw from it; nothing else lists
// tensors.
//
// Tensor parallelism (design section 8) is described here once: a column-parallel tensor
// is split by output rows within each of its `blocks` row blocks (W_qkv: q|k|v, W_in:
// gate|up), a row-parallel one by input columns; everything else is replicated.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include "model/model_config.h"

typedef enum { NV_INIT_NORMAL = 0, NV_INIT_NORMAL_OUT, NV_INIT_ONES, NV_INIT_ZEROS } nv_init_kind;
typedef enum { NV_SPLIT_NONE = 0, NV_SPLIT_ROWS, NV_SPLIT_COLS } nv_split_kind;

#define NV_PARAM_NAME_MAX 64

typedef struct nv_param {
    char name[NV_PARAM_NAME_MAX];
    int ndim;              // 1 or 2
    int64_t full[2];       // full (unsharded) shape; full[1] = 1 for vectors
    int64_t local[2];      // this tensor rank's shape
    nv_split_kind split;
    int blocks;            // row blocks split separately (3 for wqkv, 2 for w_in, else 1)
    int decay;             // 1: weight decay applies (matrices); 0: norms, biases, embeddings
    nv_init_kind init;
    double init_std;       // for the normal inits (0.02, or 0.02/sqrt(2L))
    size_t numel;          // local element count
    size_t offset;         // element offset of this tensor in the flat buffers
} nv_param;

typedef struct nv_param_table {
    nv_param *p;
    int n;
    size_t total;          // local elements over all tensors
    int tp_rank, tp_size;
} nv_param_table;

// Indices into the table for the tensors of one layer and the rest.
typedef struct nv_layer_ids {
    int attn_norm; // -1 for layer 0 without first-attn-norm
    int wqkv, wo, mlp_norm, w_in, w_out;
} nv_layer_ids;

typedef struct nv_param_ids {
    int embed_tok, embed_struct, embed_norm; // embed_struct = -1 without structure input
    int final_norm, head_dense, head_norm, head_bias, struct_w, struct_b;
    nv_layer_ids *layers;                    // [num_layers]
} nv_param_ids;

void nv_params_build(nv_param_table *t, nv_param_ids *ids, const nv_model_config *m,
                     int tp_rank, int tp_size);
void nv_params_free(nv_param_table *t, nv_param_ids *ids);
int nv_params_find(const nv_param_table *t, const char *name); // index or -1

// Full-tensor row-major element index of local element `i` of p on this tensor rank.
int64_t nv_param_full_index(const nv_param *p, size_t i, int tp_rank, int tp_size);

// Initial values of the local slices (design section 6): truncated normal keyed on
// (seed, tensor name, full element index), so they do not depend on the layout.
void nv_params_init_host(const nv_param_table *t, uint64_t seed, double *out /*[total]*/);
