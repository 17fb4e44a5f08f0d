// batch.h - one micro-batch in the format of design section 7, and the loader that makes it.
//
// A micro-batch is `rows` rows of `seq_len` tokens; each row packs `<cls> seq <eos>`
// segments and ends in pads. All arrays are [rows * seq_len], row-major.
#pragma once
#include <stdint.h>
#include "data/corpus.h"
#include "data/nv_util.h"
#include "data/data_config.h"

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
    int64_t *seq_index;     // [rows*seq_len]: at row*seq_len + s-1 the global index of segment s, else -1
    long n_mlm, n_struct;   // counts of the two masks
    long n_real;            // non-pad tokens
    uint64_t epoch, step;   // set by the loader: the epoch and global step of this micro-batch
    int slot;               // and its micro-batch slot g in 0 .. G-1
} nv_batch;

void nv_batch_alloc(nv_batch *b, int rows, int seq_len);
void nv_batch_free(nv_batch *b);
void nv_batch_count(nv_batch *b); // recompute n_mlm, n_struct, n_real from the masks
// Deep copy into dst, allocated with the same shape (loader batches live until the next call).
void nv_batch_copy(nv_batch *dst, const nv_batch *src);
// The attention segments: maximal runs of one non-zero segment id within a row, as flat
// token offsets (start may be NULL) and lengths (len may be NULL); returns their number.
long nv_batch_segments(const nv_batch *b, int32_t *start, int32_t *len, int *max_len);

// Masking of one sequence (design section 7), a pure function of
// (seed, epoch, global sequence index): fills input/target/struct_in/struct_target/
// mlm_mask/struct_mask for `len` nucleotides from tok/ss (the cropped window).
typedef struct nv_mask_params {
    double mask_rate, span_fraction, span_p, pair_mask_rate, struct_hide_rate;
    int span_max;
    int structure_input;
    uint64_t seed;
} nv_mask_params;
// [data]'s masking keys; structure_input is [model]'s (whether the structure track is input)
void nv_mask_params_from_config(nv_mask_params *p, const nv_data_config *d, int structure_input);
// ss may be NULL (all unknown). Budget: B = round(mask_rate * len), at least 1 when
// len > 0 and mask_rate > 0, so every sequence is scored; exactly B positions are selected.
void nv_mask_sequence(const nv_mask_params *p, uint64_t epoch, uint64_t seq_index,
                      const uint8_t *tok, const uint8_t *ss, int len,
                      int32_t *input, int32_t *target, int32_t *struct_in, int32_t *struct_target,
                      uint8_t *mlm_mask, uint8_t *struct_mask);
// What the masker did, accumulated (+=) over calls: for tests and benchmarks.
typedef struct nv_mask_stats {
    long n_seqs, n_tokens, n_selected;
    long n_spans, span_len_drawn; // spans drawn and the sum of their drawn lengths
    long n_span_tok, n_single_tok, n_partner_tok; // selected positions by how they were chosen
    long n_pull_tries;            // selected paired nucleotides whose partner could be pulled
    long n_hidden_seqs;           // sequences whose structure input was hidden whole
} nv_mask_stats;
void nv_mask_sequence_stats(const nv_mask_params *p, uint64_t epoch, uint64_t seq_index,
                            const uint8_t *tok, const uint8_t *ss, int len,
                            int32_t *input, int32_t *target, int32_t *struct_in,
                            int32_t *struct_target, uint8_t *mlm_mask, uint8_t *struct_mask,
                            nv_mask_stats *st);

// The loader: a global permutation per epoch, dealt over the G = global-batch/micro-batch
// micro-batch slots of a step (each sequence to the slot with the fewest tokens so far);
// data rank r runs slots r*accum .. r*accum+accum-1. Rules in data/loader.c.
// Its cursor is a few integers per slot; restoring it gives the identical stream.
// Packing looks ahead NV_LOADER_LOOKAHEAD stripe positions for a sequence that fits the
// rest of a row, so a slot's state is its first unconsumed stripe position plus a bitmask
// of the positions after it already taken out of order.
#define NV_CURSOR_MAX 4096
#define NV_LOADER_LOOKAHEAD 64
typedef struct nv_loader_cursor {
    uint64_t epoch;
    uint64_t step;       // global steps drawn so far
    int n_slots;         // G
    uint64_t slot_pos[NV_CURSOR_MAX];  // per slot: first unconsumed stripe position (epoch)
    uint64_t slot_done[NV_CURSOR_MAX]; // bit k: stripe position slot_pos+1+k already consumed
} nv_loader_cursor;

typedef struct nv_loader nv_loader;
typedef struct nv_dataset nv_dataset;
// The sequences come from ds (data/dataset.h: in memory or streamed from shards), which
// must outlive the loader. dp_rank/dp_size: this rank's data-parallel coordinates. prefetch
// as in nv_loader_create_ex (NV_LOADER_PREFETCH is nv_loader_create's). The stream is the
// same bit for bit whatever the source.
#define NV_LOADER_PREFETCH 4
nv_loader *nv_loader_create_ds(nv_dataset *ds, const nv_data_config *d, int structure_input,
                               int dp_rank, int dp_size, int prefetch, nv_error *err);
// A corpus in memory; it must outlive the loader.
nv_loader *nv_loader_create(const nv_corpus *corpus, const nv_data_config *d, int structure_input,
                            int dp_rank, int dp_size, nv_error *err);
// As nv_loader_create with an explicit prefetch depth: 0 = generate synchronously inside
// nv_loader_next; k > 0 = a background thread keeps up to k micro-batches ready (the default
// of nv_loader_create is 4). The stream is the same either way.
nv_loader *nv_loader_create_ex(const nv_corpus *corpus, const nv_data_config *d,
                               int structure_input, int dp_rank, int dp_size, int prefetch,
                               nv_error *err);
void nv_loader_free(nv_loader *l);
int nv_loader_slots(const nv_loader *l); // G, micro-batch slots per global step
int nv_loader_accum(const nv_loader *l); // micro-batches per rank per step
// Next micro-batch of this rank (accum of them per global step, in slot order).
// The batch is owned by the loader and valid until the next call. NULL when a sequence of
// it could not be read (a damaged shard; never with a corpus in memory): nv_loader_error
// says which, and every later call returns NULL too.
const nv_batch *nv_loader_next(nv_loader *l);
const char *nv_loader_error(const nv_loader *l); // NULL while all is well
// When the step being drawn cannot run (a read error on this or another rank): stop
// prefetching and move the cursor back to the start of that step, i.e. the last completed
// one, whether this rank drew all of the step's micro-batches or failed on one. Afterwards
// only nv_loader_get_cursor and nv_loader_free may be called.
void nv_loader_step_back(nv_loader *l);
// Cursor at the current step boundary (only valid between global steps); after a read
// error, the cursor of the last completed step.
void nv_loader_get_cursor(const nv_loader *l, nv_loader_cursor *cur);
// Continue from a cursor (any data degree, same corpus and G). A cursor that does not fit
// is refused with -1 and the loader restarts from its own last step boundary.
int nv_loader_set_cursor(nv_loader *l, const nv_loader_cursor *cur, nv_error *err);
