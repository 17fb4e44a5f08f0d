// test_embed.c - model/embed.c in process, on a small randomly initialized model:
//   - a sequence embedded alone equals its embedding inside a batch of others (<= 1e-6);
//   - the logits nv_embed returns equal the model's selected-row logits of a batch built by
//     hand (<cls> seq <eos>, every nucleotide selected), and its hidden states equal
//     nv_model_get_hidden's rows; pooled mean is the mean of the rows, pooled cls the <cls> row;
//   - windows: starts cover the sequence, the last ends at its end, stride W/2; every
//     nucleotide of a long sequence has exactly the state of the window substring embedded
//     alone (so the stitching picks the right window and row), and that window is the one
//     whose centre is nearest.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../testutil.h"
#include "data/vocab.h"
#include "model/embed.h"
#include "model/model.h"
#include "train/config.h"

static nv_model_config small_model(void) {
    nv_config c;
    nv_config_defaults(&c);
    nv_model_config m = c.model;
    m.num_layers = 2;
    m.hidden_size = 32;
    m.ffn_hidden_size = 64;
    m.num_attn_heads = 4;
    m.local_window = 8; // local layers see +-4: windows matter
    m.global_attn_every = 2;
    m.structure_input = 1;
    return m;
}

static uint8_t *rand_seq(uint64_t len) {
    uint8_t *s = malloc(len + 1);
    for (uint64_t i = 0; i < len; i++) s[i] = (uint8_t)(tu_int(0, 9) == 0 ? tu_int(NV_TOK_N, NV_TOK_W) : tu_int(NV_TOK_A, NV_TOK_U));
    return s;
}

static double maxdiff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - (double)b[i]));
    return m;
}

static void test_windows(void) {
    for (int trial = 0; trial < 200; trial++) {
        int W = tu_int(1, 40);
        uint64_t len = (uint64_t)tu_int(0, 300);
        uint64_t st[512];
        int nw = nv_embed_windows(len, W, st, 512);
        CHECK(nw == (int)nv_embed_window_count(len, W), "count");
        if (len <= (uint64_t)W) {
            CHECK(nw == 1 && st[0] == 0, "short sequence: one window at 0 (len %llu W %d)", (unsigned long long)len, W);
            continue;
        }
        uint64_t S = W / 2 > 0 ? (uint64_t)W / 2 : 1;
        CHECK(st[0] == 0, "first window at 0");
        CHECK(st[nw - 1] + (uint64_t)W == len, "last window ends at the end");
        for (int w = 1; w < nw; w++) {
            CHECK(st[w] > st[w - 1] && st[w] - st[w - 1] <= S, "stride (W %d len %llu w %d: %llu -> %llu)", W,
                  (unsigned long long)len, w, (unsigned long long)st[w - 1], (unsigned long long)st[w]);
            if (w + 1 < nw) CHECK(st[w] + (uint64_t)W < len, "only the last window reaches the end");
        }
    }
}

int main(void) {
    tu_seed();
    test_windows();
    const nv_model_config mc = small_model();
    const int L = tu_int(20, 40), W = L - 2, rows = tu_int(2, 4), d = mc.hidden_size;
    nv_model *m = nv_model_create(&mc, nv_backend_cpu(), 0, 1, NULL, rows * L);
    nv_model_init_weights(m, tu_u64());

    // ---- alone vs in a batch of others ------------------------------------------------------
    {
        const int n = tu_int(5, 12), pick = tu_int(0, n - 1);
        uint8_t **s = calloc((size_t)n, sizeof *s);
        uint64_t *len = calloc((size_t)n, sizeof *len), tot = 0, first = 0;
        for (int i = 0; i < n; i++) {
            len[i] = (uint64_t)tu_int(1, i == pick ? 3 * L : L); // some windowed, some packed
            s[i] = rand_seq(len[i]);
            if (i < pick) first += len[i];
            tot += len[i];
        }
        nv_embedder *e = nv_embedder_create(m, L, rows, 1);
        float *h = malloc(tot * d * 4), *p = malloc((size_t)n * d * 4), *lg = malloc(tot * 16 * 4), *st = malloc(tot * 12);
        nv_embed(e, n, (const uint8_t *const *)s, len, NV_POOL_MEAN, h, p, lg, st);
        const uint64_t k = len[pick];
        float *h1 = malloc(k * d * 4), *p1 = malloc(d * 4), *lg1 = malloc(k * 16 * 4), *st1 = malloc(k * 12);
        nv_embed(e, 1, (const uint8_t *const *)&s[pick], &len[pick], NV_POOL_MEAN, h1, p1, lg1, st1);
        double dh = maxdiff(h + first * d, h1, k * d), dp = maxdiff(p + (size_t)pick * d, p1, d),
               dl = maxdiff(lg + first * 16, lg1, k * 16), ds = maxdiff(st + first * 3, st1, k * 3);
        printf("alone vs batch (len %llu, %d seqs, L %d): hidden %.2e pooled %.2e mlm %.2e struct %.2e\n",
               (unsigned long long)k, n, L, dh, dp, dl, ds);
        CHECK(dh <= 1e-6 && dp <= 1e-6 && dl <= 1e-5 && ds <= 1e-5, "alone differs from batched");
        // pooled mean is the mean of the rows
        for (int i = 0; i < n; i++) {
            uint64_t off = 0;
            for (int j = 0; j < i; j++) off += len[j];
            for (int c = 0; c < d; c += 7) {
                double acc = 0;
                for (uint64_t t = 0; t < len[i]; t++) acc += h[(off + t) * d + c];
                CHECK(fabs(acc / (double)len[i] - p[(size_t)i * d + c]) < 1e-5, "pooled mean");
            }
        }
        nv_embedder_free(e);
        for (int i = 0; i < n; i++) free(s[i]);
        free(s); free(len); free(h); free(p); free(lg); free(st); free(h1); free(p1); free(lg1); free(st1);
    }

    // ---- nv_embed's rows equal the model's forward on a hand-built batch -------------------
    {
        const int n = tu_int(1, W);
        uint8_t *s = rand_seq((uint64_t)n);
        uint64_t len = (uint64_t)n;
        nv_batch b;
        nv_batch_alloc(&b, 1, L);
        for (int k = 0; k < L; k++) {
            b.input[k] = b.target[k] = NV_TOK_PAD;
            b.struct_in[k] = 0;
            b.struct_target[k] = -1;
            b.mlm_mask[k] = b.struct_mask[k] = 0;
            b.segment[k] = b.position[k] = 0;
        }
        for (int k = 0; k < n + 2; k++) {
            int tok = k == 0 ? NV_TOK_CLS : k == n + 1 ? NV_TOK_EOS : s[k - 1];
            b.input[k] = b.target[k] = tok;
            b.segment[k] = 1;
            b.position[k] = k;
            if (k >= 1 && k <= n) {
                b.mlm_mask[k] = 1;
                b.struct_mask[k] = 1;
                b.struct_target[k] = tu_int(0, 2); // any valid label: logits do not depend on it
            }
        }
        nv_batch_count(&b);
        nv_losses l;
        nv_model_step(m, &b, 1.0, 1.0, 0, &l);
        REQUIRE(l.mlm_count == n && l.struct_count == n, "selected rows %ld %ld", l.mlm_count, l.struct_count);
        double *H = malloc((size_t)L * d * 8), *LG = malloc((size_t)n * 16 * 8), *ST = malloc((size_t)n * 24);
        nv_model_get_hidden(m, H);
        nv_model_get_logits(m, LG, ST);
        // the model's own score agrees with its logits (the accessor returns the scored rows)
        long hits = 0;
        for (int i = 0; i < n; i++) {
            int best = 0;
            for (int v = 1; v < 16; v++)
                if (LG[i * 16 + v] > LG[i * 16 + best]) best = v;
            hits += best == s[i];
        }
        CHECK(hits == l.mlm_correct, "accessor logits vs the model's accuracy: %ld vs %ld", hits, l.mlm_correct);

        nv_embedder *e = nv_embedder_create(m, L, rows, 1);
        float *h = malloc((size_t)n * d * 4), *lg = malloc((size_t)n * 64), *st = malloc((size_t)n * 12), *pc = malloc(d * 4);
        nv_embed(e, 1, (const uint8_t *const *)&s, &len, NV_POOL_CLS, h, pc, lg, st);
        double dh = 0, dl = 0, ds = 0, dc = 0;
        for (int i = 0; i < n; i++) {
            for (int c = 0; c < d; c++) dh = fmax(dh, fabs(h[i * d + c] - H[(size_t)(i + 1) * d + c]));
            for (int v = 0; v < 16; v++) dl = fmax(dl, fabs(lg[i * 16 + v] - LG[i * 16 + v]));
            for (int v = 0; v < 3; v++) ds = fmax(ds, fabs(st[i * 3 + v] - ST[i * 3 + v]));
        }
        for (int c = 0; c < d; c++) dc = fmax(dc, fabs(pc[c] - H[c]));
        printf("nv_embed vs hand-built forward (len %d): hidden %.2e mlm %.2e struct %.2e cls %.2e\n", n, dh, dl, ds, dc);
        CHECK(dh <= 1e-6 && dl <= 1e-5 && ds <= 1e-5 && dc <= 1e-6, "nv_embed differs from the forward");
        nv_embedder_free(e);
        nv_batch_free(&b);
        free(s); free(H); free(LG); free(ST); free(h); free(lg); free(st); free(pc);
    }

    // ---- windowing of a long sequence ------------------------------------------------------
    {
        const uint64_t len = (uint64_t)tu_int(2 * L, 6 * L);
        uint8_t *s = rand_seq(len);
        nv_embedder *e = nv_embedder_create(m, L, rows, 0);
        float *h = malloc(len * d * 4);
        nv_embed(e, 1, (const uint8_t *const *)&s, &len, NV_POOL_MEAN, h, NULL, NULL, NULL);
        uint64_t st[1024];
        int nw = nv_embed_windows(len, W, st, 1024);
        float *hw = malloc((size_t)nw * W * d * 4);
        const uint8_t **ws = malloc((size_t)nw * sizeof *ws);
        uint64_t *wl = malloc((size_t)nw * sizeof *wl);
        for (int w = 0; w < nw; w++) {
            ws[w] = s + st[w];
            wl[w] = (uint64_t)W;
        }
        nv_embed(e, nw, ws, wl, NV_POOL_MEAN, hw, NULL, NULL, NULL); // each window fits alone
        double worst = 0;
        int bad_owner = 0;
        for (uint64_t p = 0; p < len; p++) {
            // the window with the nearest centre (earlier on ties) and its state
            int best = -1;
            double bd = 1e300;
            for (int w = 0; w < nw; w++) {
                if (p < st[w] || p >= st[w] + (uint64_t)W) continue;
                double dist = fabs((double)p - ((double)st[w] + (W - 1) / 2.0));
                if (dist < bd) bd = dist, best = w;
            }
            if (best < 0) { bad_owner++; continue; }
            const float *ref = hw + ((size_t)best * W + (p - st[best])) * d;
            worst = fmax(worst, maxdiff(h + p * d, ref, d));
        }
        // and the middle of every window is its own: for even W the nucleotide just right of
        // the centre (the one left of it ties with a window starting one earlier, and ties go
        // to the earlier window)
        for (int w = 0; w < nw; w++) {
            uint64_t c = st[w] + (uint64_t)W / 2;
            CHECK(maxdiff(h + c * d, hw + ((size_t)w * W + (c - st[w])) * d, d) <= 1e-6,
                  "window %d centre", w);
        }
        printf("windows (len %llu, W %d, %d windows): max diff to the owning window alone %.2e\n",
               (unsigned long long)len, W, nw, worst);
        CHECK(bad_owner == 0, "%d nucleotides in no window", bad_owner);
        CHECK(worst <= 1e-6, "windowed states differ from their window alone: %.3e", worst);
        nv_embedder_free(e);
        free(s); free(h); free(hw); free(ws); free(wl);
    }
    nv_model_free(m);
    return tu_finish("test_embed");
}
