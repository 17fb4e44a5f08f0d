// masker.c - multi-level masking of one sequence (design section 7).
//
// A pure function of (seed, epoch, global sequence index): every draw comes from Philox
// streams keyed on nv_mix64(nv_mix64(seed, hash("mask")), epoch) with the sequence index in
// the counter, one stream per purpose (selection, replacement, structure hiding), so a
// sample is reproducible alone on any rank after any resume.
//
// Selection, with budget B = round(mask_rate * len) (at least 1 when len > 0 and the rate
// is positive, so every sequence is scored) and span budget S = round(span_fraction * B):
//   1. spans: draw a length from the truncated geometric on [1, span_max] and a start
//      uniform over the positions where it fits; newly selected positions count towards S
//      (already selected ones are merged, not counted); the last span is cut when S is met.
//   2. singles: uniform without replacement among the still unselected positions until B.
// Whenever a position is selected (by a span or as a single) and its structure byte is a
// bracket whose partner (per-type bracket matching within the window) is unselected and
// the budget B is not yet met, the partner is pulled in with probability pair_mask_rate.
// Pulled partners count against B, not S: spans keep their share of the budget and the
// pulls come out of the singles' share. The selection is exactly B positions.
#include "data/batch.h"

#include <math.h>
#include <string.h>

#include "data/rng.h"
#include "data/vocab.h"

enum { STREAM_SELECT = 0, STREAM_REPLACE = 1, STREAM_HIDE = 2 };

void nv_mask_params_from_config(nv_mask_params *p, const nv_data_config *d, int structure_input) {
    memset(p, 0, sizeof *p);
    p->mask_rate = d->mask_rate;
    p->span_fraction = d->span_fraction;
    p->span_p = d->span_p;
    p->span_max = d->span_max;
    p->pair_mask_rate = d->pair_mask_rate;
    p->struct_hide_rate = d->struct_hide_rate;
    p->structure_input = structure_input;
    p->seed = d->seed;
}

static inline nv_rng_stream stream_for(uint64_t key, uint64_t seq_index, uint32_t purpose) {
    return nv_rng_stream_init(key, (uint32_t)seq_index, (uint32_t)(seq_index >> 32), purpose);
}

// Bracket partners within the window: partner[i] = j, or -1 (unpaired, unknown, or a
// bracket whose partner lies outside the window). `link` is scratch of len ints: a
// per-type stack threaded through the open positions. Returns the number of pairs.
static int match_pairs(const uint8_t *ss, int len, int32_t *partner, int32_t *link) {
    int32_t top[4] = {-1, -1, -1, -1};
    int pairs = 0;
    for (int i = 0; i < len; i++) {
        partner[i] = -1;
        uint8_t s = ss[i];
        if (s < NV_SS_OPEN || s > NV_SS_PK_LAST) continue;
        int t = (s - 1) >> 1;
        if (s & 1) { // opening bracket: push
            link[i] = top[t];
            top[t] = i;
        } else if (top[t] >= 0) { // closing: pop its own type
            int j = top[t];
            top[t] = link[j];
            partner[i] = j;
            partner[j] = i;
            pairs++;
        }
    }
    return pairs;
}

typedef struct sel_state {
    uint8_t *sel;          // selection flags (the mlm_mask output)
    const int32_t *partner;// NULL when the window has no pairs
    int n_sel, budget;
    double pair_rate;
    nv_rng_stream *rng;
    nv_mask_stats *st;
} sel_state;

// Select position i (unselected) and maybe pull its partner.
static inline void select_pos(sel_state *s, int i) {
    s->sel[i] = 1;
    s->n_sel++;
    if (!s->partner) return;
    int j = s->partner[i];
    if (j < 0 || s->sel[j] || s->n_sel >= s->budget) return;
    if (s->st) s->st->n_pull_tries++;
    if (nv_rng_double(s->rng) < s->pair_rate) {
        s->sel[j] = 1;
        s->n_sel++;
        if (s->st) s->st->n_partner_tok++;
    }
}

void nv_mask_sequence_stats(const nv_mask_params *p, uint64_t epoch, uint64_t seq_index,
                            const uint8_t *tok, const uint8_t *ss, int len,
                            int32_t *input, int32_t *target, int32_t *struct_in,
                            int32_t *struct_target, uint8_t *mlm_mask, uint8_t *struct_mask,
                            nv_mask_stats *st) {
    if (len <= 0) return;
    uint64_t key = nv_mix64(nv_mix64(p->seed, nv_hash_str("mask")), epoch);
    memset(mlm_mask, 0, (size_t)len);

    // Partners: struct_in holds them and struct_target the stack links until the end.
    int has_pairs = ss ? match_pairs(ss, len, struct_in, struct_target) > 0 : 0;

    int budget = 0;
    if (p->mask_rate > 0) {
        budget = (int)floor(p->mask_rate * len + 0.5);
        if (budget < 1) budget = 1;
        if (budget > len) budget = len;
    }
    int span_budget = (int)floor(p->span_fraction * budget + 0.5);
    if (span_budget > budget) span_budget = budget;

    nv_rng_stream rng = stream_for(key, seq_index, STREAM_SELECT);
    sel_state s = {mlm_mask, has_pairs ? struct_in : NULL, 0, budget, p->pair_mask_rate, &rng, st};

    // 1. Spans. Inverse CDF of the truncated geometric: P(l <= k) = (1-q^k) / (1-q^M).
    if (span_budget > 0) {
        int smax = p->span_max < 1 ? 1 : p->span_max;
        double q = 1.0 - p->span_p;
        double lq = q > 0 ? log(q) : 0, cq = 1.0 - pow(q, smax);
        int span_sel = 0;
        while (span_sel < span_budget && s.n_sel < budget) {
            int l = 1;
            if (q > 0 && smax > 1) {
                double x = log(1.0 - nv_rng_double(&rng) * cq) / lq;
                l = 1 + (int)x;
                if (l > smax) l = smax;
                if (l < 1) l = 1;
            }
            if (st) { st->n_spans++; st->span_len_drawn += l; }
            if (l > len) l = len;
            int start = (int)nv_rng_below(&rng, (uint32_t)(len - l + 1));
            for (int i = start; i < start + l; i++) {
                if (mlm_mask[i]) continue; // overlaps merge
                select_pos(&s, i);
                span_sel++;
                if (span_sel >= span_budget || s.n_sel >= budget) break; // cut the last span
            }
        }
        if (st) st->n_span_tok += span_sel;
    }

    // 2. Singles: partial Fisher-Yates over the unselected positions (listed in `input`).
    if (s.n_sel < budget) {
        int m = 0;
        for (int i = 0; i < len; i++)
            if (!mlm_mask[i]) input[m++] = i;
        for (int k = 0; k < m && s.n_sel < budget; k++) {
            int j = k + (int)nv_rng_below(&rng, (uint32_t)(m - k));
            int32_t pos = input[j];
            input[j] = input[k];
            input[k] = pos;
            if (mlm_mask[pos]) continue; // pulled in as a partner meanwhile
            select_pos(&s, pos);
            if (st) st->n_single_tok++;
        }
    }

    // Structure input hidden for the whole sequence with probability struct_hide_rate.
    int show = 0;
    if (p->structure_input && ss) {
        nv_rng_stream h = stream_for(key, seq_index, STREAM_HIDE);
        show = !(nv_rng_double(&h) < p->struct_hide_rate);
        if (st && !show) st->n_hidden_seqs++;
    }

    // Final pass: 80% <mask>, 10% a random nucleotide (A/C/G/U), 10% unchanged, drawn in
    // position order; structure labels; overwrites the scratch in input/struct_*.
    nv_rng_stream rr = stream_for(key, seq_index, STREAM_REPLACE);
    for (int i = 0; i < len; i++) {
        int t = tok[i];
        target[i] = t;
        int in = t;
        if (mlm_mask[i]) {
            uint32_t r = nv_rng_u32(&rr);
            uint32_t d = (uint32_t)(((uint64_t)(r >> 2) * 10u) >> 30); // 0..9 from the high bits
            if (d < 8) in = NV_TOK_MASK;
            else if (d == 8) in = NV_TOK_A + (int)(r & 3); // A C G U from the low bits
        }
        input[i] = in;
        int cls = ss ? nv_sclass(ss[i]) : -1;
        struct_target[i] = cls;
        int sin = (show && cls >= 0 && !mlm_mask[i]) ? 1 + cls : NV_SIN_HIDDEN;
        struct_in[i] = sin;
        struct_mask[i] = (uint8_t)(sin == NV_SIN_HIDDEN && cls >= 0);
    }
    if (st) {
        st->n_seqs++;
        st->n_tokens += len;
        st->n_selected += s.n_sel;
    }
}

void nv_mask_sequence(const nv_mask_params *p, uint64_t epoch, uint64_t seq_index,
                      const uint8_t *tok, const uint8_t *ss, int len,
                      int32_t *input, int32_t *target, int32_t *struct_in, int32_t *struct_target,
                      uint8_t *mlm_mask, uint8_t *struct_mask) {
    nv_mask_sequence_stats(p, epoch, seq_index, tok, ss, len, input, target, struct_in,
                           struct_target, mlm_mask, struct_mask, NULL);
}
