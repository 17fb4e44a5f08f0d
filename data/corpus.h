// corpus.h - sequences in memory, and the HDF5 shards of design section 5 that hold them.
//
// A corpus is what nvwa-prep writes and what the loader reads: nucleotide ids (5..15),
// stored structure bytes (design section 4, 255 unknown), and offsets, concatenated.
#pragma once
#include <stdint.h>
#include "data/nv_util.h"

#define NV_SHARD_FORMAT "nvwa-shard"
#define NV_SHARD_VERSION 1

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

// Write one shard atomically (temporary name, then rename). Chunked, deflate, Fletcher32.
int nv_shard_write(const char *path, const nv_corpus *c, nv_error *err);
// Read and check one shard (format, version, attributes, checksums, offsets, token and
// structure ranges); on failure `err` names the file and the reason. ids loaded if want_ids.
int nv_shard_read(const char *path, nv_corpus *out, int want_ids, nv_error *err);
// All shards of a directory (*.h5, sorted by name) or a glob, concatenated in that order.
int nv_corpus_open(const char *dir_or_glob, nv_corpus *out, int want_ids, nv_error *err);
