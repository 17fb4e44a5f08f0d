// corpus.h - sequences in memory: nucleotide ids (5..15), stored structure bytes (design
// section 4, 255 unknown), and offsets, concatenated. What nvwa-prep writes into shards
// (data/shard.h) and what the loader reads.
#pragma once
#include <stdint.h>
#include "data/nv_util.h"

typedef struct nv_corpus {
    uint64_t n_seqs;
    uint64_t n_tokens;
    uint64_t n_with_structure; // sequences with at least one known structure byte
    uint8_t *tokens;           // [n_tokens]
    uint8_t *structure;        // [n_tokens]
    uint64_t *offsets;         // [n_seqs + 1]
    char **ids;                // [n_seqs] or NULL when not loaded
    uint64_t cap_tokens, cap_seqs; // growth bookkeeping for nv_corpus_append
} nv_corpus;

void nv_corpus_init(nv_corpus *c);
void nv_corpus_free(nv_corpus *c);
// Append one sequence (ids 5..15, structure bytes or NULL for all-unknown).
void nv_corpus_append(nv_corpus *c, const char *id, const uint8_t *tok, const uint8_t *ss, uint64_t len);
static inline uint64_t nv_corpus_len(const nv_corpus *c, uint64_t i) {
    return c->offsets[i + 1] - c->offsets[i];
}
// Tokens per id (nt) and known structure positions per 3-class label (cls).
void nv_corpus_counts(const nv_corpus *c, uint64_t nt[16], uint64_t cls[3]);
// Move all of src onto the end of dst (src is freed); ids moved when with_ids.
void nv_corpus_concat(nv_corpus *dst, nv_corpus *src, int with_ids);
