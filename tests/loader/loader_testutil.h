// loader_testutil.h - corpora and configs for the loader tests, built here so the tests do
// not depend on the synthetic-data generator: random RNA-like sequences with a mix of
// lengths and valid bracket structures (nested pairs, pseudoknot brackets, unknown parts).
#pragma once
#include <stdlib.h>
#include <string.h>

#include "data/batch.h"
#include "data/vocab.h"
#include "tests/testutil.h"
#include "train/config.h"

typedef struct tl_lengths {
    double frac_short, frac_long; // shares of [lo, 100) and [mid_hi, hi]; the rest [100, mid_hi)
    int lo, mid_hi, hi;
} tl_lengths;

static inline int tl_draw_len(const tl_lengths *m) {
    double u = tu_uniform(0, 1);
    if (u < m->frac_short) return tu_int(m->lo, 99);
    double a = u < m->frac_short + m->frac_long ? m->mid_hi : 100;
    double b = u < m->frac_short + m->frac_long ? m->hi : m->mid_hi;
    return (int)floor(a * exp(tu_uniform(0, 1) * log(b / a))); // log-uniform
}

// Structure of one sequence into ss: pairs from two stacks ('(' and '['), at least 3
// unpaired between partners; unmatched openings become unpaired.
static inline void tl_structure(uint8_t *ss, int len) {
    int *st1 = malloc(sizeof(int) * (size_t)len), *st2 = malloc(sizeof(int) * (size_t)len);
    int n1 = 0, n2 = 0;
    for (int i = 0; i < len; i++) {
        double u = tu_uniform(0, 1);
        ss[i] = NV_SS_UNPAIRED;
        if (u < 0.22) { ss[i] = NV_SS_OPEN; st1[n1++] = i; }
        else if (u < 0.50 && n1 > 0 && i - st1[n1 - 1] > 3) { ss[i] = NV_SS_CLOSE; n1--; }
        else if (u < 0.53) { ss[i] = 3; st2[n2++] = i; }
        else if (u < 0.56 && n2 > 0 && i - st2[n2 - 1] > 3) { ss[i] = 4; n2--; }
    }
    while (n1 > 0) ss[st1[--n1]] = NV_SS_UNPAIRED;
    while (n2 > 0) ss[st2[--n2]] = NV_SS_UNPAIRED;
    free(st1);
    free(st2);
}

// n sequences; frac_struct of them with a structure (a tenth of those with an unknown stretch).
static inline void tl_make_corpus(nv_corpus *c, uint64_t n, const tl_lengths *m, double frac_struct) {
    memset(c, 0, sizeof *c);
    int *lens = malloc(sizeof(int) * n);
    uint64_t total = 0;
    for (uint64_t i = 0; i < n; i++) { lens[i] = tl_draw_len(m); total += (uint64_t)lens[i]; }
    c->n_seqs = n;
    c->n_tokens = total;
    c->tokens = malloc(total ? total : 1);
    c->structure = malloc(total ? total : 1);
    c->offsets = malloc(sizeof(uint64_t) * (n + 1));
    uint64_t off = 0;
    for (uint64_t i = 0; i < n; i++) {
        c->offsets[i] = off;
        uint8_t *t = c->tokens + off, *s = c->structure + off;
        for (int k = 0; k < lens[i]; k++)
            t[k] = tu_uniform(0, 1) < 0.03 ? (uint8_t)tu_int(NV_TOK_N, NV_TOK_W) : (uint8_t)tu_int(NV_TOK_A, NV_TOK_U);
        if (tu_uniform(0, 1) < frac_struct) {
            tl_structure(s, lens[i]);
            if (tu_uniform(0, 1) < 0.1 && lens[i] > 4) {
                int a = tu_int(0, lens[i] - 1), b = tu_int(a, lens[i] - 1);
                memset(s + a, NV_SS_UNKNOWN, (size_t)(b - a + 1));
            }
            // counted as the shards count it: any known byte left (the unknown stretch can
            // cover the whole sequence)
            for (int k = 0; k < lens[i]; k++)
                if (s[k] != NV_SS_UNKNOWN) {
                    c->n_with_structure++;
                    break;
                }
        } else {
            memset(s, NV_SS_UNKNOWN, (size_t)lens[i]);
        }
        off += (uint64_t)lens[i];
    }
    c->offsets[n] = off;
    free(lens);
}

static inline void tl_free_corpus(nv_corpus *c) {
    free(c->tokens);
    free(c->structure);
    free(c->offsets);
    memset(c, 0, sizeof *c);
}

// The [data] keys the loader reads, with the design's masking defaults.
static inline void tl_config(nv_config *cfg, int seq_len, int micro, int global, uint64_t seed) {
    nv_config_defaults(cfg);
    cfg->data.seq_length = seq_len;
    cfg->data.micro_batch = micro;
    cfg->data.global_batch = global;
    cfg->data.seed = seed;
}

// Are two micro-batches bit-identical (all arrays and counts)?
static inline int tl_batch_equal(const nv_batch *a, const nv_batch *b) {
    if (a->rows != b->rows || a->seq_len != b->seq_len) return 0;
    size_t n = (size_t)a->rows * (size_t)a->seq_len;
    return !memcmp(a->input, b->input, n * 4) && !memcmp(a->target, b->target, n * 4) &&
           !memcmp(a->struct_in, b->struct_in, n * 4) && !memcmp(a->struct_target, b->struct_target, n * 4) &&
           !memcmp(a->mlm_mask, b->mlm_mask, n) && !memcmp(a->struct_mask, b->struct_mask, n) &&
           !memcmp(a->segment, b->segment, n * 4) && !memcmp(a->position, b->position, n * 4) &&
           !memcmp(a->seq_index, b->seq_index, n * 8) && a->n_mlm == b->n_mlm &&
           a->n_struct == b->n_struct && a->n_real == b->n_real && a->epoch == b->epoch &&
           a->step == b->step && a->slot == b->slot;
}

// A deep copy of a micro-batch (loader batches are only valid until the next call).
static inline void tl_batch_copy(nv_batch *dst, const nv_batch *src) {
    nv_batch_alloc(dst, src->rows, src->seq_len);
    nv_batch_copy(dst, src);
}
