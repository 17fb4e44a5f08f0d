// shard.h - the HDF5 shards of design section 5 that hold a corpus (data/corpus.h): writing,
// reading, indexing and verifying one shard, and the shards of a directory or glob.
#pragma once
#include <stdint.h>
#include "data/corpus.h"
#include "data/nv_util.h"

#define NV_SHARD_FORMAT "nvwa-shard"
#define NV_SHARD_VERSION 1

// Write one shard atomically (temporary name, then rename). Chunked, deflate, Fletcher32;
// root attributes of design section 5 plus nt_counts [16] (tokens per id) and class_counts
// [3] (known structure positions per 3-class label), the reference statistics of nvwa-eval's
// baselines, so that a streamed corpus needs no pass over its bytes for them.
int nv_shard_write(const char *path, const nv_corpus *c, nv_error *err);
// Writer options. chunk_kb: chunk length of /tokens and /structure in KiB. A random read
// inflates every chunk it touches, so small chunks read fast and compress a little worse
// (docs/data.md has the measurements behind the default); 0 = NV_SHARD_CHUNK_KB.
#define NV_SHARD_CHUNK_KB 4
typedef struct nv_shard_opts {
    int chunk_kb;
} nv_shard_opts;
int nv_shard_write_ex(const char *path, const nv_corpus *c, const nv_shard_opts *o, nv_error *err);
// Read and check one shard (format, version, attributes, checksums, offsets, token and
// structure ranges); on failure `err` names the file and the reason. ids loaded if want_ids.
int nv_shard_read(const char *path, nv_corpus *out, int want_ids, nv_error *err);
// All shards of a directory (*.h5, sorted by name) or a glob, concatenated in that order.
// The whole corpus in memory: for tools and tests; training and evaluation stream it
// (data/dataset.h).
int nv_corpus_open(const char *dir_or_glob, nv_corpus *out, int want_ids, nv_error *err);
// The shard files of a directory (*.h5) or glob, sorted by name (byte order); an empty
// directory or a glob without matches is an error naming it. Free with nv_paths_free.
int nv_shard_paths(const char *dir_or_glob, char ***paths, size_t *n, nv_error *err);
void nv_paths_free(char **paths, size_t n);

// What opening a shard for streaming reads: the header (format, version, attributes, the
// four datasets' types and lengths) and /offsets, checked (0 first, non-decreasing, last =
// n_tokens), never the token or structure bytes.
typedef struct nv_shard_info {
    uint64_t n_seqs, n_tokens, n_with_structure;
    uint64_t chunk_tokens;      // chunk length of /tokens (0: not chunked)
    int has_counts;             // nt_counts and class_counts present (shards of this writer)
    uint64_t nt_counts[16], class_counts[3];
} nv_shard_info;
// offsets (may be NULL) receives a malloc'ed [n_seqs + 1] array.
int nv_shard_index(const char *path, nv_shard_info *info, uint64_t **offsets, nv_error *err);

// Full verification of one shard (data/verify.c): everything nv_shard_read checks - every
// checksum of the four datasets, the offsets, token ids, structure bytes and brackets,
// n_with_structure, nt_counts/class_counts - with memory bounded by /offsets, /ids and a
// few chunks, never the whole shard. Thread-safe: several shards can be verified at once
// (the chunks of nvwa-prep's pipeline are decoded outside libhdf5's lock). info may be NULL.
int nv_shard_verify(const char *path, nv_shard_info *info, nv_error *err);

// The pieces of the checks, shared by the reader and the verifier.
int nv_shard_check_offsets(const char *path, const uint64_t *off, uint64_t n_seqs, uint64_t n_tokens,
                           nv_error *err);
// Sequence i (len bytes of tokens and structure): ids 5..15, bytes 0..8 or 255, balanced
// brackets; *known = whether any structure byte is known.
int nv_shard_check_seq(const char *path, uint64_t i, const uint8_t *tok, const uint8_t *ss, uint64_t len,
                       int *known, nv_error *err);
int nv_shard_check_counts(const char *path, const nv_shard_info *h, const uint64_t nt[16],
                          const uint64_t cls[3], uint64_t with_ss, nv_error *err);
int nv_shard_check_ids(const char *path, uint64_t n_seqs, nv_error *err); // /ids read and dropped
uint32_t nv_fletcher32(const uint8_t *data, size_t n); // HDF5's Fletcher32 checksum
