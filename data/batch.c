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

void nv_batch_copy(nv_batch *dst, const nv_batch *src) {
    if (dst->rows != src->rows || dst->seq_len != src->seq_len)
        nv_die("nv_batch_copy: shapes differ (%d x %d vs %d x %d)", dst->rows, dst->seq_len,
               src->rows, src->seq_len);
    const size_t n = (size_t)src->rows * (size_t)src->seq_len;
    memcpy(dst->input, src->input, n * 4);
    memcpy(dst->target, src->target, n * 4);
    memcpy(dst->struct_in, src->struct_in, n * 4);
    memcpy(dst->struct_target, src->struct_target, n * 4);
    memcpy(dst->mlm_mask, src->mlm_mask, n);
    memcpy(dst->struct_mask, src->struct_mask, n);
    memcpy(dst->segment, src->segment, n * 4);
    memcpy(dst->position, src->position, n * 4);
    memcpy(dst->seq_index, src->seq_index, n * 8);
    dst->n_mlm = src->n_mlm;
    dst->n_struct = src->n_struct;
    dst->n_real = src->n_real;
    dst->epoch = src->epoch;
    dst->step = src->step;
    dst->slot = src->slot;
}

long nv_batch_segments(const nv_batch *b, int32_t *start, int32_t *len, int *max_len) {
    long k = 0;
    int mx = 0;
    for (int r = 0; r < b->rows; r++) {
        const int32_t *sg = b->segment + (size_t)r * b->seq_len;
        for (int i = 0; i < b->seq_len;) {
            if (sg[i] == 0) {
                i++;
                continue;
            }
            int j = i;
            while (j < b->seq_len && sg[j] == sg[i]) j++;
            if (start) start[k] = r * b->seq_len + i;
            if (len) len[k] = j - i;
            if (j - i > mx) mx = j - i;
            k++;
            i = j;
        }
    }
    if (max_len) *max_len = mx;
    return k;
}
