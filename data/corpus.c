// corpus.c - sequences in memory: growth, concatenation, statistics.
#include "data/corpus.h"

#include "data/vocab.h"

#include <stdlib.h>
#include <string.h>

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
void nv_corpus_concat(nv_corpus *dst, nv_corpus *src, int with_ids) {
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

// Tokens per id and known structure positions per 3-class label (the reference statistics).
void nv_corpus_counts(const nv_corpus *c, uint64_t nt[16], uint64_t cls[3]) {
    memset(nt, 0, 16 * sizeof *nt);
    memset(cls, 0, 3 * sizeof *cls);
    for (uint64_t i = 0; i < c->n_tokens; i++) {
        nt[c->tokens[i] & 15]++;
        int k = c->structure ? nv_sclass(c->structure[i]) : -1;
        if (k >= 0) cls[k]++;
    }
}
