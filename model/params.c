// params.c - the parameter table: names, shapes, decay groups, inits, tensor-parallel split.
#include "model/params.h"

#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "data/nv_util.h"
#include "data/rng.h"

static int add(nv_param_table *t, const char *name, int64_t rows, int64_t cols, int ndim,
               nv_split_kind split, int blocks, int decay, nv_init_kind init, double std) {
    nv_param *p = &t->p[t->n];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->ndim = ndim;
    p->full[0] = rows;
    p->full[1] = cols;
    p->local[0] = rows;
    p->local[1] = cols;
    p->split = split;
    p->blocks = blocks;
    if (split == NV_SPLIT_ROWS) p->local[0] = rows / t->tp_size;
    if (split == NV_SPLIT_COLS) p->local[1] = cols / t->tp_size;
    p->decay = decay;
    p->init = init;
    p->init_std = std;
    p->numel = (size_t)(p->local[0] * p->local[1]);
    p->offset = t->total;
    // Keep every tensor 16-element aligned so vectorized kernels may assume it.
    t->total += (p->numel + 15) & ~(size_t)15;
    return t->n++;
}

void nv_params_build(nv_param_table *t, nv_param_ids *ids, const nv_model_config *m,
                     int tp_rank, int tp_size) {
    const int64_t d = m->hidden_size, f = m->ffn_hidden_size, V = m->vocab_size;
    const int L = m->num_layers;
    memset(t, 0, sizeof *t);
    t->tp_rank = tp_rank;
    t->tp_size = tp_size;
    t->p = nv_calloc((size_t)(9 + 6 * L), sizeof(nv_param));
    ids->layers = nv_calloc((size_t)L, sizeof(nv_layer_ids));
    const double std = 0.02, std_out = 0.02 / sqrt(2.0 * L);
    char name[NV_PARAM_NAME_MAX];

    ids->embed_tok = add(t, "embed.tok", V, d, 2, NV_SPLIT_NONE, 1, 0, NV_INIT_NORMAL, std);
    ids->embed_struct = m->structure_input
        ? add(t, "embed.struct", 4, d, 2, NV_SPLIT_NONE, 1, 0, NV_INIT_NORMAL, std) : -1;
    ids->embed_norm = add(t, "embed.norm.weight", d, 1, 1, NV_SPLIT_NONE, 1, 0, NV_INIT_ONES, 0);
    for (int l = 0; l < L; l++) {
        nv_layer_ids *li = &ids->layers[l];
#define LNAME(s) (snprintf(name, sizeof name, "layers.%d.%s", l, s), name)
        // layer 0 has no LN_attn unless first-attn-norm (ModernBERT: LN_emb just ran)
        li->attn_norm = l > 0 || m->first_attn_norm
            ? add(t, LNAME("attn_norm.weight"), d, 1, 1, NV_SPLIT_NONE, 1, 0, NV_INIT_ONES, 0) : -1;
        li->wqkv = add(t, LNAME("attn.wqkv"), 3 * d, d, 2, NV_SPLIT_ROWS, 3, 1, NV_INIT_NORMAL, std);
        li->wo = add(t, LNAME("attn.wo"), d, d, 2, NV_SPLIT_COLS, 1, 1, NV_INIT_NORMAL_OUT, std_out);
        li->mlp_norm = add(t, LNAME("mlp_norm.weight"), d, 1, 1, NV_SPLIT_NONE, 1, 0, NV_INIT_ONES, 0);
        li->w_in = add(t, LNAME("mlp.w_in"), 2 * f, d, 2, NV_SPLIT_ROWS, 2, 1, NV_INIT_NORMAL, std);
        li->w_out = add(t, LNAME("mlp.w_out"), d, f, 2, NV_SPLIT_COLS, 1, 1, NV_INIT_NORMAL_OUT, std_out);
#undef LNAME
    }
    ids->final_norm = add(t, "final_norm.weight", d, 1, 1, NV_SPLIT_NONE, 1, 0, NV_INIT_ONES, 0);
    ids->head_dense = add(t, "head.mlm.dense", d, d, 2, NV_SPLIT_NONE, 1, 1, NV_INIT_NORMAL, std);
    ids->head_norm = add(t, "head.mlm.norm.weight", d, 1, 1, NV_SPLIT_NONE, 1, 0, NV_INIT_ONES, 0);
    ids->head_bias = add(t, "head.mlm.bias", V, 1, 1, NV_SPLIT_NONE, 1, 0, NV_INIT_ZEROS, 0);
    ids->struct_w = add(t, "head.struct.weight", 3, d, 2, NV_SPLIT_NONE, 1, 1, NV_INIT_NORMAL, std);
    ids->struct_b = add(t, "head.struct.bias", 3, 1, 1, NV_SPLIT_NONE, 1, 0, NV_INIT_ZEROS, 0);
}

void nv_params_free(nv_param_table *t, nv_param_ids *ids) {
    free(t->p);
    free(ids->layers);
    memset(t, 0, sizeof *t);
    ids->layers = NULL;
}

int nv_params_find(const nv_param_table *t, const char *name) {
    for (int i = 0; i < t->n; i++)
        if (strcmp(t->p[i].name, name) == 0) return i;
    return -1;
}

int64_t nv_param_full_index(const nv_param *p, size_t i, int tp_rank, int tp_size) {
    int64_t r = (int64_t)i / p->local[1], c = (int64_t)i % p->local[1];
    if (p->split == NV_SPLIT_ROWS) {
        // Local rows are `blocks` consecutive groups; group b holds rows
        // [b*R + rank*R/tp, b*R + (rank+1)*R/tp) of the full tensor, R = rows per block.
        int64_t R = p->full[0] / p->blocks, Rl = R / tp_size;
        int64_t b = r / Rl, k = r % Rl;
        r = b * R + (int64_t)tp_rank * Rl + k;
    } else if (p->split == NV_SPLIT_COLS) {
        c += (int64_t)tp_rank * p->local[1];
    }
    return r * p->full[1] + c;
}

void nv_params_init_host(const nv_param_table *t, uint64_t seed, double *out) {
    for (int k = 0; k < t->n; k++) {
        const nv_param *p = &t->p[k];
        double *o = out + p->offset;
        uint64_t key = nv_mix64(seed, nv_hash_str(p->name));
        for (size_t i = 0; i < p->numel; i++) {
            switch (p->init) {
            case NV_INIT_ONES: o[i] = 1.0; break;
            case NV_INIT_ZEROS: o[i] = 0.0; break;
            default: {
                // The draw is unit-std and scaled here, so it is shared by all std values.
                int64_t fi = nv_param_full_index(p, i, t->tp_rank, t->tp_size);
                o[i] = (double)nv_trunc_normal(key, (uint64_t)fi, 1.0f) * p->init_std;
            }
            }
        }
    }
}
