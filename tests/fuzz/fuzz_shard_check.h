// fuzz_shard_check.h - read a shard and check what the reader promises; the verifier
// (its own Fletcher32 and inflate on raw chunks) must reach the same verdict, and the
// streamed corpus (header and offsets only at open) must give the same sequences when the
// shard is good and never crash when it is not.
#pragma once
#include <assert.h>
#include <hdf5.h>
#include <stdlib.h>
#include <string.h>

#include "data/shard.h"
#include "data/dataset.h"

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
    nv_error verr = {{0}};
    int vrc = nv_shard_verify(path, NULL, &verr);
    assert((vrc == 0) == (err.msg[0] == 0)); // the same verdict as the reader
    assert(vrc == 0 || verr.msg[0]);
    nv_dataset *ds = NULL;
    nv_error derr = {{0}};
    if (nv_dataset_open(&path, 1, &ds, &derr) == 0) {
        uint64_t n = nv_dataset_n_seqs(ds);
        assert(err.msg[0] || (n == c.n_seqs && nv_dataset_n_tokens(ds) == c.n_tokens));
        for (uint64_t i = 0; i < n; i++) {
            uint64_t len = nv_dataset_len(ds, i);
            uint8_t *t = malloc(len + 1), *s = malloc(len + 1);
            int r = nv_dataset_read(ds, i, 0, len, t, s, &derr);
            if (!err.msg[0]) // a good shard: every sequence streams back as read
                assert(r == 0 && len == c.offsets[i + 1] - c.offsets[i] &&
                       !memcmp(t, c.tokens + c.offsets[i], len) && !memcmp(s, c.structure + c.offsets[i], len));
            free(t);
            free(s);
        }
        nv_dataset_free(ds);
    } else {
        assert(derr.msg[0] && ds == NULL);
    }
    nv_corpus_free(&c);
}
