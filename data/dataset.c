// dataset.c - sequences in memory or streamed from shards (rules in dataset.h).
#include "data/dataset.h"

#include <hdf5.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "data/h5util.h"
#include "data/vocab.h"
#include "data/shard.h"

#define CACHE_MAX_BYTES ((size_t)2 << 20) // chunk cache per open dataset, at most
#define COUNT_BLOCK ((uint64_t)4 << 20)   // bytes per read while counting a shard

typedef struct ds_shard {
    char *path;
    uint64_t first_seq, n_seqs, first_tok, n_tokens;
    uint64_t chunk;                 // /tokens chunk length (0: contiguous)
    int has_counts;
    uint64_t nt[16], cls[3];
    hid_t f, tok, ss, tok_sp, ss_sp; // -1 while closed
    uint64_t last_use;
} ds_shard;

struct nv_dataset {
    const nv_corpus *mem; // in memory, or streamed (everything below)
    uint64_t n_seqs, n_tokens, n_with_structure;
    uint32_t *lens;       // [n_seqs]
    uint64_t *base;       // [n_seqs / 64 + 1]: corpus token offset of sequence 64 k
    ds_shard *sh;
    int n_shards, n_open, max_open;
    uint64_t tick;
    pthread_mutex_t mu;
    int have_counts;
    uint64_t nt[16], cls[3];
    nv_dataset_stats st;
};

nv_dataset *nv_dataset_wrap(const nv_corpus *c) {
    nv_dataset *d = nv_calloc(1, sizeof *d);
    d->mem = c;
    d->n_seqs = c->n_seqs;
    d->n_tokens = c->n_tokens;
    d->n_with_structure = c->n_with_structure;
    pthread_mutex_init(&d->mu, NULL);
    return d;
}

static void shard_close(nv_dataset *d, ds_shard *s) {
    if (s->f < 0) return;
    if (s->tok_sp >= 0) H5Sclose(s->tok_sp);
    if (s->ss_sp >= 0) H5Sclose(s->ss_sp);
    if (s->tok >= 0) H5Dclose(s->tok);
    if (s->ss >= 0) H5Dclose(s->ss);
    H5Fclose(s->f);
    s->f = s->tok = s->ss = s->tok_sp = s->ss_sp = -1;
    d->n_open--;
}

void nv_dataset_free(nv_dataset *d) {
    if (!d) return;
    if (d->sh) {
        nv_h5_quiet q = nv_h5_quiet_begin();
        for (int k = 0; k < d->n_shards; k++) {
            shard_close(d, &d->sh[k]);
            free(d->sh[k].path);
        }
        nv_h5_quiet_end(q);
    }
    free(d->sh);
    free(d->lens);
    free(d->base);
    pthread_mutex_destroy(&d->mu);
    free(d);
}

// Append one shard's index. Lengths are kept in 32 bits: a longer sequence is refused.
static int index_shard(nv_dataset *d, const char *path, uint64_t *cap, nv_error *err) {
    nv_shard_info h;
    uint64_t *off;
    if (nv_shard_index(path, &h, &off, err) != 0) return -1;
    uint64_t need = d->n_seqs + h.n_seqs;
    if (need > *cap) {
        uint64_t c = *cap ? *cap : 1024;
        while (c < need) c *= 2;
        d->lens = nv_realloc(d->lens, c * sizeof(uint32_t));
        d->base = nv_realloc(d->base, (c / 64 + 1) * sizeof(uint64_t));
        *cap = c;
    }
    for (uint64_t j = 0; j < h.n_seqs; j++) {
        uint64_t len = off[j + 1] - off[j], g = d->n_seqs + j;
        if (len > UINT32_MAX) {
            free(off);
            return nv_seterr(err, "%s: sequence %llu has %llu nucleotides, above the 4 Gnt limit of a sequence",
                             path, (unsigned long long)j, (unsigned long long)len);
        }
        if (g % 64 == 0) d->base[g / 64] = d->n_tokens + off[j];
        d->lens[g] = (uint32_t)len;
    }
    free(off);
    d->sh = nv_realloc(d->sh, sizeof *d->sh * (size_t)(d->n_shards + 1));
    ds_shard *s = &d->sh[d->n_shards++];
    memset(s, 0, sizeof *s);
    s->path = nv_strdup(path);
    s->first_seq = d->n_seqs;
    s->n_seqs = h.n_seqs;
    s->first_tok = d->n_tokens;
    s->n_tokens = h.n_tokens;
    s->chunk = h.chunk_tokens;
    s->has_counts = h.has_counts;
    memcpy(s->nt, h.nt_counts, sizeof s->nt);
    memcpy(s->cls, h.class_counts, sizeof s->cls);
    s->f = s->tok = s->ss = s->tok_sp = s->ss_sp = -1;
    d->n_seqs += h.n_seqs;
    d->n_tokens += h.n_tokens;
    d->n_with_structure += h.n_with_structure;
    return 0;
}

int nv_dataset_open(const char *const *specs, int n_specs, nv_dataset **out, nv_error *err) {
    *out = NULL;
    if (n_specs < 1) return nv_seterr(err, "no shards given");
    nv_dataset *d = nv_calloc(1, sizeof *d);
    pthread_mutex_init(&d->mu, NULL);
    // one file descriptor per open shard: stay well inside the process's limit
    struct rlimit rl;
    d->max_open = NV_DATASET_MAX_OPEN;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && (rlim_t)d->max_open > rl.rlim_cur / 4)
        d->max_open = rl.rlim_cur / 4 > 1 ? (int)(rl.rlim_cur / 4) : 1;
    uint64_t cap = 0;
    for (int a = 0; a < n_specs; a++) {
        char **paths;
        size_t n;
        if (nv_shard_paths(specs[a], &paths, &n, err) != 0) {
            nv_dataset_free(d);
            return -1;
        }
        for (size_t i = 0; i < n; i++)
            if (index_shard(d, paths[i], &cap, err) != 0) {
                nv_paths_free(paths, n);
                nv_dataset_free(d);
                return -1;
            }
        nv_paths_free(paths, n);
    }
    // give back the growth slack
    d->lens = nv_realloc(d->lens, (d->n_seqs ? d->n_seqs : 1) * sizeof(uint32_t));
    d->base = nv_realloc(d->base, (d->n_seqs / 64 + 1) * sizeof(uint64_t));
    *out = d;
    return 0;
}

uint64_t nv_dataset_n_seqs(const nv_dataset *d) { return d->n_seqs; }
uint64_t nv_dataset_n_tokens(const nv_dataset *d) { return d->n_tokens; }
uint64_t nv_dataset_n_with_structure(const nv_dataset *d) { return d->n_with_structure; }
int nv_dataset_streamed(const nv_dataset *d) { return d->mem == NULL; }
int nv_dataset_n_shards(const nv_dataset *d) { return d->n_shards; }

size_t nv_dataset_index_bytes(const nv_dataset *d) {
    if (d->mem) return 0;
    size_t b = d->n_seqs * sizeof(uint32_t) + (d->n_seqs / 64 + 1) * sizeof(uint64_t);
    for (int k = 0; k < d->n_shards; k++) b += sizeof(ds_shard) + strlen(d->sh[k].path) + 1;
    return b;
}

uint64_t nv_dataset_max_chunk(const nv_dataset *d) {
    uint64_t m = 0;
    for (int k = 0; k < d->n_shards; k++)
        if (d->sh[k].chunk > m) m = d->sh[k].chunk;
    return m;
}

int nv_dataset_threadsafe(void) {
    hbool_t ts = 0;
    return H5is_library_threadsafe(&ts) >= 0 && ts;
}

uint64_t nv_dataset_len(const nv_dataset *d, uint64_t i) {
    return d->mem ? nv_corpus_len(d->mem, i) : d->lens[i];
}

// Corpus token offset of sequence i: the block base plus the lengths before i in its block.
static uint64_t seq_offset(const nv_dataset *d, uint64_t i) {
    uint64_t o = d->base[i / 64];
    for (uint64_t j = i & ~(uint64_t)63; j < i; j++) o += d->lens[j];
    return o;
}

static int shard_of(const nv_dataset *d, uint64_t i) {
    int lo = 0, hi = d->n_shards - 1; // the last shard whose first_seq <= i
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (d->sh[mid].first_seq <= i) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}

static hid_t open_ds(hid_t f, const char *name, uint64_t chunk) {
    hid_t dapl = H5Pcreate(H5P_DATASET_ACCESS);
    if (dapl < 0) return -1;
    // two chunks: a window that straddles a chunk boundary, and sequential scans (evaluation),
    // decompress each chunk once; random windows gain nothing from a larger cache
    size_t bytes = chunk ? 2 * chunk : 0;
    if (bytes > CACHE_MAX_BYTES) bytes = CACHE_MAX_BYTES;
    hid_t ds = -1;
    if (H5Pset_chunk_cache(dapl, 13, bytes, 1.0) >= 0) ds = H5Dopen2(f, name, dapl);
    H5Pclose(dapl);
    return ds;
}

// Open a shard for reading, closing the least recently used one when at the limit.
static int shard_open(nv_dataset *d, ds_shard *s, nv_error *err) {
    s->last_use = ++d->tick;
    if (s->f >= 0) return 0;
    if (d->n_open >= d->max_open) {
        ds_shard *lru = NULL;
        for (int k = 0; k < d->n_shards; k++)
            if (d->sh[k].f >= 0 && (!lru || d->sh[k].last_use < lru->last_use)) lru = &d->sh[k];
        if (lru) shard_close(d, lru);
    }
    s->f = H5Fopen(s->path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (s->f < 0) return nv_seterr(err, "%s: cannot open the shard again (removed, or replaced by a damaged file?)", s->path);
    d->n_open++;
    d->st.opens++;
    s->tok = open_ds(s->f, "tokens", s->chunk);
    s->ss = open_ds(s->f, "structure", s->chunk);
    s->tok_sp = s->tok >= 0 ? H5Dget_space(s->tok) : -1;
    s->ss_sp = s->ss >= 0 ? H5Dget_space(s->ss) : -1;
    hsize_t a = 0, b = 0;
    if (s->tok_sp < 0 || s->ss_sp < 0 || H5Sget_simple_extent_dims(s->tok_sp, &a, NULL) != 1 ||
        H5Sget_simple_extent_dims(s->ss_sp, &b, NULL) != 1 || a != s->n_tokens || b != s->n_tokens) {
        shard_close(d, s);
        return nv_seterr(err, "%s: /tokens or /structure changed since the corpus was opened\n"
                              "---> HINT: do not rewrite shards under a running job", s->path);
    }
    return 0;
}

static int read_window(hid_t ds, hid_t sp, uint64_t pos, uint64_t len, uint8_t *buf) {
    hsize_t start = pos, count = len;
    hid_t ms = H5Screate_simple(1, &count, NULL);
    int rc = ms >= 0 && H5Sselect_hyperslab(sp, H5S_SELECT_SET, &start, NULL, &count, NULL) >= 0 &&
                     H5Dread(ds, H5T_NATIVE_UINT8, ms, sp, H5P_DEFAULT, buf) >= 0
                 ? 0
                 : -1;
    if (ms >= 0) H5Sclose(ms);
    return rc;
}

int nv_dataset_read(nv_dataset *d, uint64_t i, uint64_t off, uint64_t len, uint8_t *tok, uint8_t *ss,
                    nv_error *err) {
    if (i >= d->n_seqs || off > nv_dataset_len(d, i) || len > nv_dataset_len(d, i) - off)
        return nv_seterr(err, "dataset read: sequence %llu, window %llu+%llu is outside the corpus",
                         (unsigned long long)i, (unsigned long long)off, (unsigned long long)len);
    if (d->mem) {
        const uint64_t o = d->mem->offsets[i] + off;
        memcpy(tok, d->mem->tokens + o, len);
        if (d->mem->structure) memcpy(ss, d->mem->structure + o, len);
        else memset(ss, NV_SS_UNKNOWN, len);
        return 0;
    }
    if (len == 0) return 0;
    pthread_mutex_lock(&d->mu);
    nv_h5_quiet q = nv_h5_quiet_begin();
    ds_shard *s = &d->sh[shard_of(d, i)];
    const uint64_t pos = seq_offset(d, i) - s->first_tok + off;
    int rc = shard_open(d, s, err);
    const char *what = "tokens";
    if (rc == 0 && read_window(s->tok, s->tok_sp, pos, len, tok) != 0) rc = -1;
    else if (rc == 0 && (what = "structure", read_window(s->ss, s->ss_sp, pos, len, ss) != 0)) rc = -1;
    if (rc == 0) {
        d->st.reads++;
        d->st.bytes += len;
    } else if (s->f >= 0) {
        nv_seterr(err, "%s: dataset /%s: cannot read sequence %llu of the shard (sequence %llu of the corpus, "
                       "nucleotides %llu..%llu of the shard): Fletcher32 checksum mismatch or I/O error\n"
                       "---> HINT: nvwa-prep --verify lists every damaged shard; rewrite this one from its inputs",
                  s->path, what, (unsigned long long)(i - s->first_seq), (unsigned long long)i,
                  (unsigned long long)pos, (unsigned long long)(pos + len - 1));
        shard_close(d, s); // reopened on the next read: nothing cached from a failed one
    }
    nv_h5_quiet_end(q);
    pthread_mutex_unlock(&d->mu);
    return rc;
}

// Count one shard that has no count attributes by streaming it in blocks.
static int count_shard(nv_dataset *d, ds_shard *s, uint64_t nt[16], uint64_t cls[3], uint8_t *bt, uint8_t *bs,
                       nv_error *err) {
    if (shard_open(d, s, err) != 0) return -1;
    for (uint64_t p = 0; p < s->n_tokens; p += COUNT_BLOCK) {
        uint64_t n = s->n_tokens - p < COUNT_BLOCK ? s->n_tokens - p : COUNT_BLOCK;
        if (read_window(s->tok, s->tok_sp, p, n, bt) != 0 || read_window(s->ss, s->ss_sp, p, n, bs) != 0) {
            nv_seterr(err, "%s: cannot read nucleotides %llu..%llu while counting them: Fletcher32 checksum "
                           "mismatch or I/O error\n---> HINT: nvwa-prep --verify lists every damaged shard",
                      s->path, (unsigned long long)p, (unsigned long long)(p + n - 1));
            shard_close(d, s);
            return -1;
        }
        for (uint64_t k = 0; k < n; k++) {
            nt[bt[k] & 15]++;
            int c = nv_sclass(bs[k]);
            if (c >= 0) cls[c]++;
        }
    }
    return 0;
}

int nv_dataset_counts(nv_dataset *d, uint64_t nt[16], uint64_t cls[3], nv_error *err) {
    pthread_mutex_lock(&d->mu);
    int rc = 0;
    if (!d->have_counts && d->mem) {
        nv_corpus_counts(d->mem, d->nt, d->cls);
        d->have_counts = 1;
    } else if (!d->have_counts) {
        uint64_t a[16] = {0}, b[3] = {0};
        uint8_t *bt = NULL, *bs = NULL;
        nv_h5_quiet q = nv_h5_quiet_begin();
        for (int k = 0; k < d->n_shards && rc == 0; k++) {
            ds_shard *s = &d->sh[k];
            if (s->has_counts) {
                for (int v = 0; v < 16; v++) a[v] += s->nt[v];
                for (int c = 0; c < 3; c++) b[c] += s->cls[c];
                continue;
            }
            if (!bt) {
                bt = nv_malloc(COUNT_BLOCK);
                bs = nv_malloc(COUNT_BLOCK);
            }
            rc = count_shard(d, s, a, b, bt, bs, err);
        }
        nv_h5_quiet_end(q);
        free(bt);
        free(bs);
        if (rc == 0) {
            memcpy(d->nt, a, sizeof a);
            memcpy(d->cls, b, sizeof b);
            d->have_counts = 1;
        }
    }
    if (rc == 0) {
        memcpy(nt, d->nt, sizeof d->nt);
        memcpy(cls, d->cls, sizeof d->cls);
    }
    pthread_mutex_unlock(&d->mu);
    return rc;
}

void nv_dataset_get_stats(nv_dataset *d, nv_dataset_stats *s) {
    pthread_mutex_lock(&d->mu);
    *s = d->st;
    pthread_mutex_unlock(&d->mu);
}
