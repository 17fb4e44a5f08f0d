// batch.c - allocation and counting of micro-batches (design section 7).
#include "data/batch.h"

#include <stdlib.h>
#include <string.h>

void nv_batch_alloc(nv_batch *b, int rows, int seq_len) {
    if (rows <= 0 || seq_len <= 0) nv_die("nv_batch_alloc: bad shape %d x %d", rows, seq_len);
    memset(b, 0, sizeof *b);
    size_t n = (size_t)rows * (size_t)seq_len;
    b->rows = rows;
    b->seq_len = seq_len;
    b->input = nv_calloc(n, sizeof(int32_t));
    b->target = nv_calloc(n, sizeof(int32_t));
    b->struct_in = nv_calloc(n, sizeof(int32_t));
    b->struct_target = nv_calloc(n, sizeof(int32_t));
    b->mlm_mask = nv_calloc(n, 1);
    b->struct_mask = nv_calloc(n, 1);
    b->segment = nv_calloc(n, sizeof(int32_t));
    b->position = nv_calloc(n, sizeof(int32_t));
    b->seq_index = nv_malloc(n * sizeof(int64_t));
    for (size_t i = 0; i < n; i++) {
        b->struct_target[i] = -1; // an all-pad batch until filled
        b->seq_index[i] = -1;
    }
}

void nv_batch_free(nv_batch *b) {
    if (!b) return;
    free(b->input);
    free(b->target);
    free(b->struct_in);
    free(b->struct_target);
    free(b->mlm_mask);
    free(b->struct_mask);
    free(b->segment);
    free(b->position);
    free(b->seq_index);
    memset(b, 0, sizeof *b);
}

void nv_batch_count(nv_batch *b) {
    size_t n = (size_t)b->rows * (size_t)b->seq_len;
    long m = 0, s = 0, r = 0;
    for (size_t i = 0; i < n; i++) {
        m += b->mlm_mask[i];
        s += b->struct_mask[i];
        r += b->segment[i] != 0;
    }
    b->n_mlm = m;
    b->n_struct = s;
    b->n_real = r;
}
