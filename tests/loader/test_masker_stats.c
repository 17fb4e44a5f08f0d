// test_masker_stats.c - the masker's statistics over > 1M nucleotides against the numbers
// of design section 7, computed here independently: selected fraction, span lengths
// (analytic mean of the truncated geometric), 80/10/10, partner pulls, structure hiding,
// label invariants, and purity in (seed, epoch, index).
#include "tests/loader/loader_testutil.h"
#include "train/config.h"

// Analytic mean of p(l) ∝ p (1-p)^(l-1) on [1, M].
static double trunc_geom_mean(double p, int M) {
    double z = 0, m = 0;
    for (int l = 1; l <= M; l++) {
        double w = p * pow(1 - p, l - 1);
        z += w;
        m += l * w;
    }
    return m / z;
}

// Partners by bracket matching, written independently of the masker (an explicit stack
// per bracket type).
static void partners(const uint8_t *ss, int len, int *pt) {
    int *stk = malloc(sizeof(int) * 4 * (size_t)(len + 1));
    int top[4] = {0, 0, 0, 0};
    for (int i = 0; i < len; i++) {
        pt[i] = -1;
        int s = ss[i];
        if (s >= 1 && s <= 8) {
            int t = (s - 1) / 2;
            if (s % 2 == 1) stk[t * (len + 1) + top[t]++] = i;
            else if (top[t] > 0) {
                int j = stk[t * (len + 1) + --top[t]];
                pt[i] = j;
                pt[j] = i;
            }
        }
    }
    free(stk);
}

typedef struct bufs {
    int32_t *in, *tg, *sin, *stg;
    uint8_t *mm, *sm;
    int *pt;
} bufs;

static void bufs_alloc(bufs *b, int n) {
    b->in = malloc(4 * (size_t)n); b->tg = malloc(4 * (size_t)n);
    b->sin = malloc(4 * (size_t)n); b->stg = malloc(4 * (size_t)n);
    b->mm = malloc((size_t)n); b->sm = malloc((size_t)n); b->pt = malloc(sizeof(int) * (size_t)n);
}

static void bufs_free(bufs *b) {
    free(b->in), free(b->tg), free(b->sin), free(b->stg), free(b->mm), free(b->sm), free(b->pt);
}

static void mask(const nv_mask_params *p, uint64_t ep, uint64_t idx, const nv_corpus *c, bufs *b,
                 nv_mask_stats *st) {
    uint64_t o = c->offsets[idx];
    nv_mask_sequence_stats(p, ep, idx, c->tokens + o, c->structure + o, (int)nv_corpus_len(c, idx),
                           b->in, b->tg, b->sin, b->stg, b->mm, b->sm, st);
}

int main(void) {
    uint64_t seed = tu_seed();
    tl_lengths lm = {0.21, 0.19, 20, 700, 1500};
    nv_corpus c;
    tl_make_corpus(&c, 3000, &lm, 0.7);
    printf("corpus: %llu sequences, %llu nucleotides\n", (unsigned long long)c.n_seqs,
           (unsigned long long)c.n_tokens);
    REQUIRE(c.n_tokens >= 1000000, "need >= 1M tokens, got %llu", (unsigned long long)c.n_tokens);

    nv_config cfg;
    tl_config(&cfg, 1024, 1, 1, tu_u64());
    nv_mask_params p;
    nv_mask_params_from_config(&p, &cfg.data, cfg.model.structure_input);
    uint64_t epoch = tu_u64() % 1000;
    int maxlen = 0;
    for (uint64_t i = 0; i < c.n_seqs; i++)
        if ((int)nv_corpus_len(&c, i) > maxlen) maxlen = (int)nv_corpus_len(&c, i);
    bufs b, b2;
    bufs_alloc(&b, maxlen);
    bufs_alloc(&b2, maxlen);

    nv_mask_stats st;
    memset(&st, 0, sizeof st);
    long sel = 0, tok = 0, n_mask = 0, n_same = 0, n_rand_other = 0, rand_expect_same = 0;
    long budget_bad = 0, invariant_bad = 0;
    long sel_paired = 0, sel_paired_both = 0;
    long known_seqs = 0, hidden_seqs = 0;
    for (uint64_t i = 0; i < c.n_seqs; i++) {
        int len = (int)nv_corpus_len(&c, i);
        const uint8_t *t = c.tokens + c.offsets[i], *ss = c.structure + c.offsets[i];
        mask(&p, epoch, i, &c, &b, &st);
        int expect = (int)floor(0.15 * len + 0.5);
        if (expect < 1) expect = 1;
        int ns = 0;
        int any_known_visible = 0, any_shown = 0;
        partners(ss, len, b.pt);
        for (int k = 0; k < len; k++) {
            int cls = ss[k] == 255 ? -1 : ss[k] == 0 ? 0 : (ss[k] % 2 ? 1 : 2);
            if (b.tg[k] != t[k] || b.stg[k] != cls) invariant_bad++;
            if (b.mm[k]) {
                ns++;
                if (b.in[k] == NV_TOK_MASK) n_mask++;
                else if (b.in[k] == t[k]) n_same++;
                else if (b.in[k] >= NV_TOK_A && b.in[k] <= NV_TOK_U) n_rand_other++;
                else invariant_bad++; // a replacement outside A/C/G/U
                rand_expect_same += (t[k] >= NV_TOK_A && t[k] <= NV_TOK_U);
                if (b.sin[k] != 0) invariant_bad++; // structure input hidden where selected
                if (b.pt[k] >= 0) {
                    sel_paired++;
                    sel_paired_both += b.mm[b.pt[k]];
                }
            } else {
                if (b.in[k] != t[k]) invariant_bad++;
                if (cls >= 0) {
                    any_known_visible = 1;
                    if (b.sin[k] == 1 + cls) any_shown = 1;
                    else if (b.sin[k] != 0) invariant_bad++;
                } else if (b.sin[k] != 0) invariant_bad++;
            }
            if (b.sm[k] != (b.sin[k] == 0 && cls >= 0)) invariant_bad++;
        }
        if (ns != expect) budget_bad++;
        if (any_known_visible) {
            known_seqs++;
            hidden_seqs += !any_shown;
        }
        sel += ns;
        tok += len;
    }
    CHECK(budget_bad == 0, "%ld sequences without exactly round(0.15 len) selected", budget_bad);
    CHECK(invariant_bad == 0, "%ld label/input invariants broken", invariant_bad);
    CHECK(st.n_selected == sel && st.n_tokens == tok, "stats disagree with the output");
    CHECK(st.n_span_tok + st.n_single_tok + st.n_partner_tok == sel, "selection sources do not add up");

    double frac = (double)sel / tok;
    printf("selected fraction %.5f (want 0.15 +- 0.005)\n", frac);
    CHECK(fabs(frac - 0.15) <= 0.005, "selected fraction %.5f", frac);

    double mean_span = (double)st.span_len_drawn / st.n_spans, want_span = trunc_geom_mean(0.2, 10);
    printf("span length mean %.4f over %ld spans (analytic %.4f)\n", mean_span, st.n_spans, want_span);
    CHECK(tu_relerr(mean_span, want_span) <= 0.03, "span mean %.4f vs %.4f", mean_span, want_span);
    double span_share = (double)st.n_span_tok / sel;
    printf("span share of the budget %.4f (want 0.5)\n", span_share);
    CHECK(fabs(span_share - 0.5) < 0.02, "span share %.4f", span_share);

    // 80/10/10: an unchanged token is the 10% kept plus a random draw equal to the original.
    double f_mask = (double)n_mask / sel, f_same = (double)n_same / sel, f_other = (double)n_rand_other / sel;
    double p_eq = 0.25 * (double)rand_expect_same / sel; // P(random == original)
    printf("replacement: mask %.4f same %.4f other %.4f (want 0.8, %.4f, %.4f)\n", f_mask, f_same, f_other,
           0.1 + 0.1 * p_eq, 0.1 * (1 - p_eq));
    CHECK(fabs(f_mask - 0.8) <= 0.01, "mask share %.4f", f_mask);
    CHECK(fabs(f_same - (0.1 + 0.1 * p_eq)) <= 0.01, "unchanged share %.4f", f_same);
    CHECK(fabs(f_other - 0.1 * (1 - p_eq)) <= 0.01, "random share %.4f", f_other);

    double pull = (double)st.n_partner_tok / st.n_pull_tries;
    double both = (double)sel_paired_both / sel_paired;
    printf("partner pulls %.4f of %ld tries (want 0.5); selected paired with partner selected %.4f\n", pull,
           st.n_pull_tries, both);
    CHECK(st.n_pull_tries > 10000, "too few pull tries %ld", st.n_pull_tries);
    CHECK(fabs(pull - 0.5) < 0.02, "pull rate %.4f", pull);
    // Seen in the output: a selected paired base's partner is selected at least by the pull,
    // plus by chance; without pulls this would be ~0.15-0.3.
    CHECK(both > 0.5 && both < 0.8, "partners selected together %.4f", both);

    double hid = (double)hidden_seqs / known_seqs;
    printf("structure hidden for %.4f of %ld sequences (want 0.5)\n", hid, known_seqs);
    CHECK(fabs(hid - 0.5) < 0.05, "hidden share %.4f", hid);
    CHECK(st.n_hidden_seqs >= hidden_seqs, "hidden count");

    // Purity: same (seed, epoch, index) -> same output; another epoch -> another selection.
    int differ = 0, tried = 0;
    for (int r = 0; r < 200; r++) {
        uint64_t i = tu_u64() % c.n_seqs;
        int len = (int)nv_corpus_len(&c, i);
        mask(&p, epoch, i, &c, &b, NULL);
        mask(&p, epoch, i, &c, &b2, NULL);
        CHECK(!memcmp(b.in, b2.in, 4 * (size_t)len) && !memcmp(b.mm, b2.mm, (size_t)len) &&
              !memcmp(b.sin, b2.sin, 4 * (size_t)len), "not a pure function at index %llu", (unsigned long long)i);
        if (len >= 100) {
            mask(&p, epoch + 1, i, &c, &b2, NULL);
            tried++;
            differ += memcmp(b.mm, b2.mm, (size_t)len) != 0;
        }
    }
    CHECK(differ == tried, "%d of %d selections identical across epochs", tried - differ, tried);

    // Span lengths seen in the output: span-only masking at a low rate on long sequences, so
    // runs of selected positions are mostly single spans (merges and the cut last span bias
    // the mean by a few percent at most).
    {
        nv_mask_params q = p;
        q.span_fraction = 1.0;
        q.pair_mask_rate = 0.0;
        q.mask_rate = 0.02;
        long runs = 0, run_tok = 0;
        int L = 5000;
        uint8_t *t = malloc((size_t)L);
        bufs bb;
        bufs_alloc(&bb, L);
        for (int s = 0; s < 200; s++) {
            for (int k = 0; k < L; k++) t[k] = (uint8_t)tu_int(NV_TOK_A, NV_TOK_U);
            nv_mask_sequence(&q, epoch, 1000000 + s, t, NULL, L, bb.in, bb.tg, bb.sin, bb.stg, bb.mm, bb.sm);
            for (int k = 0; k < L; k++) {
                if (bb.mm[k]) { run_tok++; if (k == 0 || !bb.mm[k - 1]) runs++; }
                CHECK(bb.sin[k] == 0 && bb.sm[k] == 0, "no structure: nothing to score");
            }
        }
        double m = (double)run_tok / runs;
        printf("output run length %.4f (analytic span mean %.4f)\n", m, want_span);
        CHECK(tu_relerr(m, want_span) < 0.08, "run length %.4f", m);
        free(t);
        bufs_free(&bb);
    }

    // Rates at their ends: no pulls at 0, every try pulled at 1; structure-input off hides all.
    {
        nv_mask_params q = p;
        nv_mask_stats s0, s1;
        memset(&s0, 0, sizeof s0);
        memset(&s1, 0, sizeof s1);
        q.pair_mask_rate = 0;
        for (uint64_t i = 0; i < 300; i++) mask(&q, epoch, i, &c, &b, &s0);
        q.pair_mask_rate = 1;
        q.structure_input = 0;
        long shown = 0;
        for (uint64_t i = 0; i < 300; i++) {
            mask(&q, epoch, i, &c, &b, &s1);
            for (uint64_t k = 0; k < nv_corpus_len(&c, i); k++) shown += b.sin[k] != 0;
        }
        CHECK(s0.n_partner_tok == 0 && s0.n_pull_tries > 0, "pair rate 0 pulled %ld", s0.n_partner_tok);
        CHECK(s1.n_partner_tok == s1.n_pull_tries && s1.n_pull_tries > 0, "pair rate 1: %ld of %ld",
              s1.n_partner_tok, s1.n_pull_tries);
        CHECK(shown == 0, "structure-input off but %ld positions shown", shown);
    }
    tl_free_corpus(&c);
    bufs_free(&b);
    bufs_free(&b2);
    (void)seed;
    return tu_finish("masker_stats");
}
