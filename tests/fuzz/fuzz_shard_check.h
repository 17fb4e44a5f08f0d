// fuzz_shard_check.h - read a shard and check what the reader promises.
#pragma once
#include <assert.h>
#include <hdf5.h>

#include "data/corpus.h"

static inline void fuzz_hdf5_quiet(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

static inline void fuzz_shard_read_check(const char *path) {
    nv_corpus c; // nv_shard_read initializes it (and leaves an empty corpus on failure)
    nv_error err = {{0}};
    if (nv_shard_read(path, &c, 1, &err) == 0) {
        assert(c.offsets[0] == 0 && c.offsets[c.n_seqs] == c.n_tokens);
        for (uint64_t i = 0; i < c.n_seqs; i++) {
            assert(c.offsets[i] <= c.offsets[i + 1]);
            assert(c.ids == NULL || c.ids[i] != NULL);
        }
        for (uint64_t i = 0; i < c.n_tokens; i++) {
            assert(c.tokens[i] >= 5 && c.tokens[i] <= 15);
            assert(c.structure[i] <= 8 || c.structure[i] == 255);
        }
    } else {
        assert(err.msg[0]);
    }
    nv_corpus_free(&c);
}
