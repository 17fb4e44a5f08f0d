// embed.h - per-nucleotide hidden states of a trained model (nvwa-embed), without masking.
//
// Each sequence is fed as `<cls> seq <eos>` segments with the structure input hidden
// (struct_in 0) and no position masked; the states are h = LN_final(x) (design section 6)
// with the <cls>/<eos> rows stripped. Segments are packed into rows of seq_len tokens; the
// result of a sequence does not depend on its neighbours (attention never crosses segments).
//
// Windowing: a sequence longer than W = seq_len - 2 nucleotides is cut into overlapping
// windows of W nucleotides with stride S = max(1, W / 2): starts 0, S, 2S, ... while the
// window ends before the sequence does, and a last window ending exactly at the end
// (start len - W). Each window is its own segment (positions restart at 0). Each nucleotide
// takes its state (and logits) from the window whose centre (start + (W - 1) / 2) is nearest
// to it, the earlier window on a tie. Pooling: mean over the nucleotides' stitched states,
// or (NV_POOL_CLS) the mean of the <cls> states of its windows (the <cls> state when one).
#pragma once
#include <stdint.h>

#include "model/model.h"

typedef enum { NV_POOL_MEAN = 0, NV_POOL_CLS = 1 } nv_pool_kind;

typedef struct nv_embedder nv_embedder;

// rows * seq_len tokens per forward (the model must have been created with at least that
// many max_tokens). want_logits: also the MLM logits [V] and structure logits [3] of every
// nucleotide (the heads run on every nucleotide; slower).
nv_embedder *nv_embedder_create(nv_model *m, int seq_len, int rows, int want_logits);
void nv_embedder_free(nv_embedder *e);

// Window starts of a sequence of len nucleotides at window W (see above); returns the count
// and writes up to max starts.
int nv_embed_windows(uint64_t len, int W, uint64_t *starts, int max);
// Number of windows of a sequence of len nucleotides at window W.
uint64_t nv_embed_window_count(uint64_t len, int W);

// Embed n sequences (token ids 5..15). Outputs, host float, caller-allocated, row-major:
//   hidden [sum len, d], nucleotides of sequence 0 first;  pooled [n, d] (NULL: skip);
//   mlm [sum len, V] and st [sum len, 3] (only with want_logits; NULL: skip).
// A sequence of length 0 gets no rows and a zero pooled vector (mean) or its <cls> state.
void nv_embed(nv_embedder *e, int n, const uint8_t *const *tok, const uint64_t *len,
              nv_pool_kind pool, float *hidden, float *pooled, float *mlm, float *st);
