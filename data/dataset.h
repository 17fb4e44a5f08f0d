// dataset.h - what the loader and the evaluation read sequences from: a corpus in memory
// (nv_corpus, e.g. the trainer's synthetic data and the tests), or shards streamed from disk.
//
// Streamed (design section 5): opening reads each shard's header and /offsets only and
// keeps an index of the sequence lengths (4 bytes per sequence, plus 8 bytes per 64
// sequences for token offsets: 4.125 bytes per sequence). Token and structure bytes are read
// on demand, only the window asked for, through HDF5 hyperslab selections. At most
// NV_DATASET_MAX_OPEN shards are open at a time (the least recently used is closed first),
// each dataset with a chunk cache of two chunks (at most 2 MiB), so a streamed corpus costs
// its index plus a bound that does not grow with the corpus.
//
// Reads take the dataset's lock, so the loader's prefetch thread and the main thread may use
// one dataset together; libhdf5 must be thread-safe for that (Debian's and conda's are;
// nv_dataset_threadsafe says whether this one is).
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "data/corpus.h"

#define NV_DATASET_MAX_OPEN 64

typedef struct nv_dataset nv_dataset;

// A view of a corpus in memory (c must outlive it).
nv_dataset *nv_dataset_wrap(const nv_corpus *c);
// The shards of specs[0..n) (each a shard file, a directory of *.h5 or a glob, in that
// order), concatenated. Every shard's header and offsets are checked; on failure err names
// the shard and the reason and *out is NULL.
int nv_dataset_open(const char *const *specs, int n_specs, nv_dataset **out, nv_error *err);
void nv_dataset_free(nv_dataset *d);

uint64_t nv_dataset_n_seqs(const nv_dataset *d);
uint64_t nv_dataset_n_tokens(const nv_dataset *d);
uint64_t nv_dataset_n_with_structure(const nv_dataset *d);
int nv_dataset_streamed(const nv_dataset *d);
int nv_dataset_n_shards(const nv_dataset *d);
size_t nv_dataset_index_bytes(const nv_dataset *d); // memory of the streamed index
uint64_t nv_dataset_max_chunk(const nv_dataset *d);  // largest /tokens chunk of the shards (bytes)
int nv_dataset_threadsafe(void);                     // may reads run beside other HDF5 use?

// Length of sequence i (no I/O).
uint64_t nv_dataset_len(const nv_dataset *d, uint64_t i);
// Nucleotides [off, off + len) of sequence i into tok and their structure bytes into ss.
// On a read failure (Fletcher32 mismatch, I/O error) err names the shard file, the dataset
// and the sequence (index in the shard and in the corpus) and -1 is returned.
int nv_dataset_read(nv_dataset *d, uint64_t i, uint64_t off, uint64_t len, uint8_t *tok, uint8_t *ss,
                    nv_error *err);
// Tokens per id and known structure positions per 3-class label over the whole corpus:
// summed from the shards' nt_counts/class_counts attributes, or counted once by streaming
// the shards that lack them (shards of older writers); cached.
int nv_dataset_counts(nv_dataset *d, uint64_t nt[16], uint64_t cls[3], nv_error *err);

// Counters for benchmarks: reads, bytes delivered, shard opens.
typedef struct nv_dataset_stats {
    uint64_t reads, bytes, opens;
} nv_dataset_stats;
void nv_dataset_get_stats(nv_dataset *d, nv_dataset_stats *s);
