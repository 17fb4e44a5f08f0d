// batch.h - one micro-batch in the format of design section 7, and the loader that makes it.
//
// A micro-batch is `rows` rows of `seq_len` tokens; each row packs `<cls> seq <eos>`
// segments and ends in pads. All arrays are [rows * seq_len], row-major.
#pragma once
#include <stdint.h>
#include "data/corpus.h"
#include "data/nv_util.h"
#include "train/config.h"

typedef struct nv_batch {
    int rows, seq_len;
    int32_t *input;         // token ids after masking (<mask>, random, unchanged)
    int32_t *target;        // original token ids (pads 0)
    int32_t *struct_in;     // 0 hidden, else 1 + 3-class label (design section 6)
    int32_t *struct_target; // 3-class label, -1 where unknown, on specials and pads
    uint8_t *mlm_mask;      // 1 where the token is selected for the MLM loss
    uint8_t *struct_mask;   // 1 where structure input is hidden and the label is known
    int32_t *segment;       // 0 on pads, else 1.. numbering the segments of the row
    int32_t *position;      // position within the segment (<cls> at 0), 0 on pads
    int64_t *seq_index;     // per segment slot: global sequence index, -1 unused ([rows*seq_len])
    long n_mlm, n_struct;   // counts of the two masks
    long n_real;            // non-pad tokens
} nv_batch;

void nv_batch_alloc(nv_batch *b, int rows, int seq_len);
void nv_batch_free(nv_batch *b);
void nv_batch_count(nv_batch *b); // recompute n_mlm, n_struct, n_real from the masks

// Masking of one sequence (design section 7), a pure function of
// (seed, epoch, global sequence index): fills input/target/struct_in/struct_target/
// mlm_mask/struct_mask for `len` nucleotides from tok/ss (the cropped window).
typedef struct nv_mask_params {
    double mask_rate, span_fraction, span_p, pair_mask_rate, struct_hide_rate;
    int span_max;
    int structure_input;
    uint64_t seed;
} nv_mask_params;
void nv_mask_params_from_config(nv_mask_params *p, const nv_config *c);
void nv_mask_sequence(const nv_mask_params *p, uint64_t epoch, uint64_t seq_index,
                      const uint8_t *tok, const uint8_t *ss, int len,
                      int32_t *input, int32_t *target, int32_t *struct_in, int32_t *struct_target,
                      uint8_t *mlm_mask, uint8_t *struct_mask);

// The loader: a global permutation per epoch, striped over the G = global-batch/micro-batch
// micro-batch slots of a step; data rank r runs slots r*accum .. r*accum+accum-1.
// Its cursor is a few integers; restoring it gives the identical stream.
#define NV_CURSOR_MAX 64
typedef struct nv_loader_cursor {
    uint64_t epoch;
    uint64_t step;       // global steps drawn so far
    int n_slots;         // G
    uint64_t slot_pos[NV_CURSOR_MAX]; // per slot: next stripe position in this epoch
} nv_loader_cursor;

typedef struct nv_loader nv_loader;
// corpus must outlive the loader. dp_rank/dp_size: this rank's data-parallel coordinates.
nv_loader *nv_loader_create(const nv_corpus *corpus, const nv_config *cfg, int dp_rank,
                            int dp_size, nv_error *err);
void nv_loader_free(nv_loader *l);
int nv_loader_accum(const nv_loader *l); // micro-batches per rank per step
// Next micro-batch of this rank (accum of them per global step, in slot order).
// The batch is owned by the loader and valid until the next call.
const nv_batch *nv_loader_next(nv_loader *l);
// Cursor at the current step boundary (only valid between global steps).
void nv_loader_get_cursor(const nv_loader *l, nv_loader_cursor *cur);
int nv_loader_set_cursor(nv_loader *l, const nv_loader_cursor *cur, nv_error *err);
