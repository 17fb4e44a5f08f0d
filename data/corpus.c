// corpus.c - sequences in memory: growth, and opening a directory or glob of shards.
#include "data/corpus.h"

#include "data/vocab.h"

#include <errno.h>
#include <stdlib.h>
#include <glob.h>
#include <string.h>
#include <sys/stat.h>

void nv_corpus_init(nv_corpus *c) {
    memset(c, 0, sizeof *c);
    // offsets always holds n_seqs + 1 entries, so nv_corpus_len works on an empty corpus.
    c->offsets = nv_calloc(1, sizeof(uint64_t));
}

void nv_corpus_free(nv_corpus *c) {
    if (c->ids) {
        for (uint64_t i = 0; i < c->n_seqs; i++) free(c->ids[i]);
        free(c->ids);
    }
    free(c->tokens);
    free(c->structure);
    free(c->offsets);
    memset(c, 0, sizeof *c);
}

// Room for `add_tok` more tokens and `add_seq` more sequences; capacities double so that
// appending n sequences costs O(n) copies in total.
static void corpus_reserve(nv_corpus *c, uint64_t add_tok, uint64_t add_seq, int with_ids) {
    uint64_t need_tok = c->n_tokens + add_tok;
    if (need_tok > c->cap_tokens) {
        uint64_t cap = c->cap_tokens ? c->cap_tokens : 4096;
        while (cap < need_tok) cap *= 2;
        c->tokens = nv_realloc(c->tokens, cap);
        c->structure = nv_realloc(c->structure, cap);
        c->cap_tokens = cap;
    }
    uint64_t need_seq = c->n_seqs + add_seq;
    if (need_seq > c->cap_seqs || (with_ids && !c->ids)) {
        uint64_t cap = c->cap_seqs ? c->cap_seqs : 64;
        while (cap < need_seq) cap *= 2;
        c->offsets = nv_realloc(c->offsets, (cap + 1) * sizeof(uint64_t));
        if (with_ids) c->ids = nv_realloc(c->ids, cap * sizeof(char *));
        c->cap_seqs = cap;
    }
}

static int has_structure(const uint8_t *ss, uint64_t len) {
    if (!ss) return 0;
    for (uint64_t i = 0; i < len; i++)
        if (ss[i] != NV_SS_UNKNOWN) return 1;
    return 0;
}

void nv_corpus_append(nv_corpus *c, const char *id, const uint8_t *tok, const uint8_t *ss, uint64_t len) {
    // ids are kept when the corpus has them, or when it is still empty (a fresh corpus).
    int with_ids = c->ids != NULL || c->n_seqs == 0;
    corpus_reserve(c, len, 1, with_ids);
    memcpy(c->tokens + c->n_tokens, tok, len);
    if (ss) memcpy(c->structure + c->n_tokens, ss, len);
    else memset(c->structure + c->n_tokens, NV_SS_UNKNOWN, len);
    if (with_ids) c->ids[c->n_seqs] = nv_strdup(id ? id : "");
    c->n_with_structure += (uint64_t)has_structure(ss, len);
    c->n_tokens += len;
    c->n_seqs++;
    c->offsets[c->n_seqs] = c->n_tokens;
}

// Move all of `src` onto the end of `dst` (src is freed).
static void corpus_concat(nv_corpus *dst, nv_corpus *src, int with_ids) {
    corpus_reserve(dst, src->n_tokens, src->n_seqs, with_ids);
    memcpy(dst->tokens + dst->n_tokens, src->tokens, src->n_tokens);
    memcpy(dst->structure + dst->n_tokens, src->structure, src->n_tokens);
    for (uint64_t i = 0; i < src->n_seqs; i++) {
        dst->offsets[dst->n_seqs + i + 1] = dst->n_tokens + src->offsets[i + 1];
        if (with_ids) {
            dst->ids[dst->n_seqs + i] = src->ids[i];
            src->ids[i] = NULL;
        }
    }
    dst->n_seqs += src->n_seqs;
    dst->n_tokens += src->n_tokens;
    dst->n_with_structure += src->n_with_structure;
    nv_corpus_free(src);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void nv_paths_free(char **paths, size_t n) {
    for (size_t i = 0; i < n; i++) free(paths[i]);
    free(paths);
}

int nv_shard_paths(const char *dir_or_glob, char ***paths, size_t *n, nv_error *err) {
    *paths = NULL;
    *n = 0;
    struct stat st;
    char pattern[4096];
    int is_dir = stat(dir_or_glob, &st) == 0 && S_ISDIR(st.st_mode);
    if (is_dir) {
        if (snprintf(pattern, sizeof pattern, "%s/*.h5", dir_or_glob) >= (int)sizeof pattern)
            return nv_seterr(err, "%s: path too long", dir_or_glob);
    } else {
        if (snprintf(pattern, sizeof pattern, "%s", dir_or_glob) >= (int)sizeof pattern)
            return nv_seterr(err, "%s: path too long", dir_or_glob);
    }
    glob_t g;
    int rc = glob(pattern, 0, NULL, &g);
    if (rc == GLOB_NOMATCH || (rc == 0 && g.gl_pathc == 0)) {
        if (rc == 0) globfree(&g);
        if (is_dir)
            return nv_seterr(err, "%s: directory holds no *.h5 shards\n---> HINT: write shards with nvwa-prep -o %s INPUT...",
                             dir_or_glob, dir_or_glob);
        return nv_seterr(err, "%s: no file matches (neither a directory nor a glob with matches)\n"
                              "---> HINT: [data] train/valid take a shard directory or a glob such as 'shards/*.h5'",
                         dir_or_glob);
    }
    if (rc != 0) return nv_seterr(err, "%s: glob failed (%s)", pattern, rc == GLOB_NOSPACE ? "out of memory" : "read error");
    *paths = nv_malloc(g.gl_pathc * sizeof(char *));
    for (size_t i = 0; i < g.gl_pathc; i++) (*paths)[i] = nv_strdup(g.gl_pathv[i]);
    *n = g.gl_pathc;
    globfree(&g);
    qsort(*paths, *n, sizeof(char *), cmp_str); // byte order, whatever the locale
    return 0;
}

int nv_corpus_open(const char *dir_or_glob, nv_corpus *out, int want_ids, nv_error *err) {
    nv_corpus_init(out);
    char **paths;
    size_t n;
    if (nv_shard_paths(dir_or_glob, &paths, &n, err) != 0) return -1;
    for (size_t i = 0; i < n; i++) {
        nv_corpus one;
        if (nv_shard_read(paths[i], &one, want_ids, err) != 0) {
            nv_corpus_free(&one);
            nv_paths_free(paths, n);
            nv_corpus_free(out);
            nv_corpus_init(out);
            return -1;
        }
        corpus_concat(out, &one, want_ids);
    }
    nv_paths_free(paths, n);
    return 0;
}
