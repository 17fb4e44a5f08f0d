// synth.c - synthetic RNA-like sequences with valid secondary structures.
//
// Sequence i is drawn from its own Philox stream keyed on (seed, i), so it is the same
// whatever n is and whichever piece of the corpus it is generated in.
#include "data/synth.h"
#include "data/rng.h"
#include "data/vocab.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void nv_synth_defaults(nv_synth_params *p, uint64_t n_seqs, uint64_t seed) {
    p->n_seqs = n_seqs;
    p->seed = seed;
    p->min_len = 20;
    p->max_len = 2000;
    p->mean_len = 445.0;
    p->frac_structure = 0.7;
    p->frac_pseudoknot = 0.15;
}

// Length quantile function, RNAcentral-like: 20% under 100 nt (log-uniform from 20), 61%
// from 100 to 1024 (log-scale, skewed to the short end), 19% over 1024 with an exponential
// tail in log-space. Its mean is ~445 before clipping to [20, 2000]; mean_len rescales it.
static double length_quantile(double u) {
    if (u < 0.2) return 20.0 * exp(log(5.0) * (u / 0.2));
    if (u < 0.81) return 100.0 * exp(log(10.24) * pow((u - 0.2) / 0.61, 1.6));
    double v = (u - 0.81) / 0.19;
    if (v > 0.999999) v = 0.999999;
    return 1024.0 * exp(-0.2 * log(1.0 - v));
}

typedef struct synth_scratch {
    uint8_t *tok, *ss;
    uint32_t *region; // work stack of [lo, hi) regions (pairs)
    uint32_t *runs;   // unpaired runs (start, len) for pseudoknots
    size_t cap;
} synth_scratch;

// One base pair: Watson-Crick mostly, some GU wobbles.
static void draw_pair(nv_rng_stream *s, uint8_t *a, uint8_t *b) {
    static const uint8_t pa[6] = {NV_TOK_G, NV_TOK_C, NV_TOK_A, NV_TOK_U, NV_TOK_G, NV_TOK_U};
    static const uint8_t pb[6] = {NV_TOK_C, NV_TOK_G, NV_TOK_U, NV_TOK_A, NV_TOK_U, NV_TOK_G};
    uint32_t x = nv_rng_below(s, 100), k = x < 30 ? 0 : x < 60 ? 1 : x < 74 ? 2 : x < 88 ? 3 : x < 94 ? 4 : 5;
    *a = pa[k];
    *b = pb[k];
}

static uint8_t draw_unpaired(nv_rng_stream *s) {
    uint32_t x = nv_rng_below(s, 4096);
    if (x == 0) return NV_TOK_N; // a rare ambiguous base, as in real data
    x %= 100;
    return x < 27 ? NV_TOK_A : x < 49 ? NV_TOK_C : x < 73 ? NV_TOK_G : NV_TOK_U;
}

// Nested structure: each region is scanned left to right; at each position a stem of
// 3..12 pairs may start, closing an inner region (hairpin loop when it stays empty,
// interior or multi-loop when it gets stems of its own) that is filled later.
static void nested(nv_rng_stream *s, synth_scratch *w, uint32_t len) {
    size_t top = 0;
    w->region[top++] = 0;
    w->region[top++] = len;
    while (top > 0) {
        uint32_t hi = w->region[--top], lo = w->region[--top];
        uint32_t p = lo;
        while (p < hi) {
            uint32_t left = hi - p;
            if (left >= 9 && nv_rng_below(s, 100) < 25) {
                uint32_t smax = (left - 3) / 2;
                if (smax > 12) smax = 12;
                uint32_t st = 3 + nv_rng_below(s, smax - 2);
                uint32_t m = 3 + nv_rng_below(s, left - 2 * st - 2); // inner length 3 .. left-2*st
                for (uint32_t t = 0; t < st; t++) {
                    uint32_t i = p + t, j = p + 2 * st + m - 1 - t;
                    w->ss[i] = NV_SS_OPEN;
                    w->ss[j] = NV_SS_CLOSE;
                    draw_pair(s, &w->tok[i], &w->tok[j]);
                }
                if (m >= 9) {
                    w->region[top++] = p + st;
                    w->region[top++] = p + st + m;
                }
                p += 2 * st + m;
            } else {
                p++;
            }
        }
    }
}

// A pseudoknot: a '[' ']' stem between two unpaired runs, crossing what lies between.
static void pseudoknot(nv_rng_stream *s, synth_scratch *w, uint32_t len) {
    uint32_t nr = 0;
    for (uint32_t i = 0; i < len;) {
        if (w->ss[i] != NV_SS_UNPAIRED) { i++; continue; }
        uint32_t j = i;
        while (j < len && w->ss[j] == NV_SS_UNPAIRED) j++;
        if (j - i >= 5) {
            w->runs[2 * nr] = i;
            w->runs[2 * nr + 1] = j - i;
            nr++;
        }
        i = j;
    }
    if (nr < 2) return;
    uint32_t r1 = nv_rng_below(s, nr - 1);
    uint32_t r2 = r1 + 1 + nv_rng_below(s, nr - r1 - 1);
    uint32_t a = w->runs[2 * r1], la = w->runs[2 * r1 + 1], b = w->runs[2 * r2], lb = w->runs[2 * r2 + 1];
    uint32_t kmax = (la < lb ? la : lb) - 2; // keep a base of loop on each side
    if (kmax > 6) kmax = 6;
    uint32_t k = 3 + nv_rng_below(s, kmax - 2);
    for (uint32_t t = 0; t < k; t++) {
        uint32_t i = a + 1 + t, j = b + k - t; // b+1 .. b+k, reversed
        w->ss[i] = NV_SS_PK_FIRST;
        w->ss[j] = NV_SS_PK_FIRST + 1;
        draw_pair(s, &w->tok[i], &w->tok[j]);
    }
}

void nv_synth_range(nv_corpus *c, const nv_synth_params *p, uint64_t first, uint64_t count) {
    int lo = p->min_len > 1 ? p->min_len : 1, hi = p->max_len >= lo ? p->max_len : lo;
    double scale = p->mean_len > 0 ? p->mean_len / 445.0 : 1.0;
    uint64_t key = nv_mix64(p->seed, nv_hash_str("nvwa.synth"));
    synth_scratch w;
    w.cap = (size_t)hi + 1;
    w.tok = nv_malloc(w.cap);
    w.ss = nv_malloc(w.cap);
    w.region = nv_malloc(2 * w.cap * sizeof(uint32_t));
    w.runs = nv_malloc(2 * w.cap * sizeof(uint32_t));
    char id[64];
    for (uint64_t i = first; i < first + count; i++) {
        nv_rng_stream s = nv_rng_stream_init(key, (uint32_t)i, (uint32_t)(i >> 32), 0);
        double L = floor(length_quantile(nv_rng_double(&s)) * scale + 0.5);
        uint32_t len = (uint32_t)(L < lo ? lo : L > hi ? hi : L);
        int structured = nv_rng_double(&s) < p->frac_structure;
        int knotted = nv_rng_double(&s) < p->frac_pseudoknot;
        memset(w.ss, NV_SS_UNPAIRED, len);
        if (structured) {
            nested(&s, &w, len);
            if (knotted) pseudoknot(&s, &w, len);
        }
        for (uint32_t k = 0; k < len; k++)
            if (w.ss[k] == NV_SS_UNPAIRED) w.tok[k] = draw_unpaired(&s);
        snprintf(id, sizeof id, "synth_%llu", (unsigned long long)i);
        nv_corpus_append(c, id, w.tok, structured ? w.ss : NULL, len);
    }
    free(w.tok);
    free(w.ss);
    free(w.region);
    free(w.runs);
}

void nv_synth_corpus(nv_corpus *c, const nv_synth_params *p) { nv_synth_range(c, p, 0, p->n_seqs); }
