// test_loader_pack.c - packing and epochs: rows are well-formed `<cls> seq <eos>` segments
// that attention cannot cross, nothing is selected on specials or pads, each segment's
// labels are the masker's for (seed, epoch, index) on the right window, every sequence
// appears exactly once per epoch across all data ranks, the streams at dp = 1, 2 and 4 are
// the same rows, long sequences are cropped to a fresh window each epoch.
#include "tests/loader/loader_testutil.h"
#include "train/config.h"

#define N_EPOCHS 3

typedef struct ctx {
    const nv_corpus *c;
    nv_mask_params mp;
    int S;
    int32_t *in, *tg, *sin, *stg;
    uint8_t *mm, *sm;
    uint8_t *seen[N_EPOCHS];     // per epoch: times each index appeared
    int64_t *crop[N_EPOCHS];     // per epoch: crop offset of each long sequence
    long real[N_EPOCHS], slots[N_EPOCHS];
    long bad;
} ctx;

#define BAD(...) do { if (x->bad++ < 10) { fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } } while (0)

static void check_special(ctx *x, const nv_batch *b, size_t k, int tok, int seg, int pos) {
    if (b->input[k] != tok || b->target[k] != tok || b->segment[k] != seg || b->position[k] != pos ||
        b->struct_in[k] != 0 || b->struct_target[k] != -1 || b->mlm_mask[k] || b->struct_mask[k])
        BAD("flat %zu: bad special (want tok %d seg %d pos %d; got in %d seg %d pos %d mlm %d)", k, tok, seg,
            pos, b->input[k], b->segment[k], b->position[k], b->mlm_mask[k]);
}

static void check_batch(ctx *x, const nv_batch *b, int count) {
    const nv_corpus *c = x->c;
    const int S = x->S;
    long n_real = 0, n_mlm = 0, n_struct = 0;
    uint64_t e = b->epoch;
    for (int r = 0; r < b->rows; r++) {
        size_t base = (size_t)r * S;
        int k = 0, seg = 1;
        while (k < S && b->segment[base + k] != 0) {
            int64_t idx = b->seq_index[base + seg - 1];
            if (idx < 0 || (uint64_t)idx >= c->n_seqs) { BAD("row %d seg %d: index %lld", r, seg, (long long)idx); return; }
            int full = (int)nv_corpus_len(c, (uint64_t)idx), L = full < S - 2 ? full : S - 2;
            if (k + L + 2 > S) { BAD("row %d: segment %d overflows the row", r, seg); return; }
            check_special(x, b, base + k, NV_TOK_CLS, seg, 0);
            for (int i = 1; i <= L; i++)
                if (b->segment[base + k + i] != seg || b->position[base + k + i] != i)
                    BAD("row %d seg %d: position %d has segment %d position %d", r, seg, i,
                        b->segment[base + k + i], b->position[base + k + i]);
            check_special(x, b, base + k + L + 1, NV_TOK_EOS, seg, L + 1);
            // which window of the sequence is it?
            const uint8_t *t = c->tokens + c->offsets[idx];
            int off = -1;
            for (int o = 0; o <= full - L && off < 0; o++) {
                int i = 0;
                while (i < L && b->target[base + k + 1 + i] == t[o + i]) i++;
                if (i == L) off = o;
            }
            if (off < 0) { BAD("row %d seg %d: targets are not a window of sequence %lld", r, seg, (long long)idx); return; }
            if (count && e < N_EPOCHS) {
                x->seen[e][idx]++;
                if (full > L) x->crop[e][idx] = off;
            }
            // labels = the masker's on that window, keyed on (seed, epoch, index)
            nv_mask_sequence(&x->mp, e, (uint64_t)idx, t + off, c->structure + c->offsets[idx] + off, L, x->in,
                             x->tg, x->sin, x->stg, x->mm, x->sm);
            size_t q = base + k + 1;
            if (memcmp(x->in, b->input + q, 4 * (size_t)L) || memcmp(x->tg, b->target + q, 4 * (size_t)L) ||
                memcmp(x->sin, b->struct_in + q, 4 * (size_t)L) || memcmp(x->stg, b->struct_target + q, 4 * (size_t)L) ||
                memcmp(x->mm, b->mlm_mask + q, (size_t)L) || memcmp(x->sm, b->struct_mask + q, (size_t)L))
                BAD("row %d seg %d: labels differ from the masker's for epoch %llu index %lld", r, seg,
                    (unsigned long long)e, (long long)idx);
            for (int i = 0; i < L; i++) { n_mlm += x->mm[i]; n_struct += x->sm[i]; }
            k += L + 2;
            seg++;
        }
        n_real += k;
        for (; k < S; k++)
            if (b->segment[base + k] != 0 || b->input[base + k] != NV_TOK_PAD || b->target[base + k] != NV_TOK_PAD ||
                b->position[base + k] != 0 || b->struct_in[base + k] != 0 || b->struct_target[base + k] != -1 ||
                b->mlm_mask[base + k] || b->struct_mask[base + k])
                BAD("row %d col %d: bad pad", r, k);
        for (int s = seg - 1; s < S; s++)
            if (b->seq_index[base + s] != -1) BAD("row %d: seq_index[%d] set past the last segment", r, s);
    }
    if (n_real != b->n_real || n_mlm != b->n_mlm || n_struct != b->n_struct)
        BAD("counts: real %ld/%ld mlm %ld/%ld struct %ld/%ld", b->n_real, n_real, b->n_mlm, n_mlm, b->n_struct, n_struct);
    if (count && e < N_EPOCHS) { x->real[e] += n_real; x->slots[e] += (long)b->rows * S; }
}

int main(void) {
    tu_seed();
    const int S = 512, MB = 4, GB = 32, G = GB / MB;
    tl_lengths lm = {0.21, 0.19, 20, 300, 1500};
    nv_corpus c;
    tl_make_corpus(&c, 1500, &lm, 0.7);
    nv_config cfg;
    tl_config(&cfg, S, MB, GB, tu_u64());

    ctx x;
    memset(&x, 0, sizeof x);
    x.c = &c;
    x.S = S;
    nv_mask_params_from_config(&x.mp, &cfg.data, cfg.model.structure_input);
    x.in = malloc(4 * S); x.tg = malloc(4 * S); x.sin = malloc(4 * S); x.stg = malloc(4 * S);
    x.mm = malloc(S); x.sm = malloc(S);
    for (int e = 0; e < N_EPOCHS; e++) {
        x.seen[e] = calloc(c.n_seqs, 1);
        x.crop[e] = malloc(sizeof(int64_t) * c.n_seqs);
        for (uint64_t i = 0; i < c.n_seqs; i++) x.crop[e][i] = -1;
    }

    nv_error err;
    nv_loader *l1 = nv_loader_create_ex(&c, &cfg.data, cfg.model.structure_input, 0, 1, 0, &err); // synchronous
    REQUIRE(l1, "%s", err.msg);
    nv_loader *l2[2], *l4[4];
    for (int r = 0; r < 2; r++) REQUIRE((l2[r] = nv_loader_create(&c, &cfg.data, cfg.model.structure_input, r, 2, &err)), "%s", err.msg);
    for (int r = 0; r < 4; r++) REQUIRE((l4[r] = nv_loader_create_ex(&c, &cfg.data, cfg.model.structure_input, r, 4, 1 + r, &err)), "%s", err.msg);
    CHECK(nv_loader_accum(l1) == 8 && nv_loader_accum(l2[0]) == 4 && nv_loader_accum(l4[3]) == 2, "accum");

    long steps = 0, mismatch = 0;
    uint64_t last_epoch = 0;
    for (;; steps++) {
        int done = 0;
        for (int g = 0; g < G; g++) {
            const nv_batch *a = nv_loader_next(l1);
            if (g == 0 && a->epoch >= N_EPOCHS) done = 1;
            if (a->slot != g || a->step != (uint64_t)steps || a->epoch < last_epoch) mismatch++;
            last_epoch = a->epoch;
            check_batch(&x, a, 1);
            const nv_batch *b2 = nv_loader_next(l2[g / 4]);
            const nv_batch *b4 = nv_loader_next(l4[g / 2]);
            if (!tl_batch_equal(a, b2) || !tl_batch_equal(a, b4)) mismatch++;
        }
        if (done || steps > 1000) break;
    }
    printf("%ld steps for %d epochs\n", steps, N_EPOCHS);
    CHECK(x.bad == 0, "%ld malformed rows or labels", x.bad);
    CHECK(mismatch == 0, "%ld micro-batches differ between dp = 1, 2, 4 (or bad step/slot/epoch)", mismatch);
    for (int e = 0; e < N_EPOCHS; e++) {
        long miss = 0, dup = 0;
        for (uint64_t i = 0; i < c.n_seqs; i++) { miss += x.seen[e][i] == 0; dup += x.seen[e][i] > 1; }
        CHECK(miss == 0 && dup == 0, "epoch %d: %ld sequences missing, %ld repeated", e, miss, dup);
        printf("epoch %d: real-token fraction %.4f (seq-length %d, micro-batch %d, %d slots)\n", e,
               (double)x.real[e] / x.slots[e], S, MB, G);
    }

    // Crop: a window of seq-length - 2, fresh each epoch.
    long n_long = 0, differ = 0;
    double expect = 0;
    for (uint64_t i = 0; i < c.n_seqs; i++) {
        int full = (int)nv_corpus_len(&c, i);
        if (full <= S - 2) continue;
        n_long++;
        int64_t o0 = x.crop[0][i], o1 = x.crop[1][i], o2 = x.crop[2][i];
        CHECK(o0 >= 0 && o1 >= 0 && o2 >= 0, "long sequence %llu not seen cropped", (unsigned long long)i);
        differ += (o0 != o1) + (o1 != o2);
        expect += 2.0 * (1.0 - 1.0 / (full - (S - 2) + 1));
    }
    printf("crop: %ld long sequences, windows changed %ld times between epochs (expected %.1f)\n", n_long, differ, expect);
    CHECK(n_long >= 100, "too few long sequences: %ld", n_long);
    CHECK(differ >= expect - 4 * sqrt(expect) - 5, "crop windows do not change across epochs");

    nv_loader_free(l1);
    for (int r = 0; r < 2; r++) nv_loader_free(l2[r]);
    for (int r = 0; r < 4; r++) nv_loader_free(l4[r]);

    // A corpus smaller than one step: every step is a whole epoch, every sequence once.
    {
        nv_corpus t;
        tl_lengths sm = {0.5, 0.0, 20, 200, 200};
        tl_make_corpus(&t, 5, &sm, 1.0);
        nv_loader *l = nv_loader_create_ex(&t, &cfg.data, cfg.model.structure_input, 0, 1, 2, &err);
        REQUIRE(l, "%s", err.msg);
        ctx y = x;
        y.c = &t;
        y.bad = 0;
        for (int s = 0; s < 3; s++) {
            int cnt[5] = {0};
            for (int g = 0; g < G; g++) {
                const nv_batch *b = nv_loader_next(l);
                CHECK(b->epoch == (uint64_t)s, "step %d in epoch %llu", s, (unsigned long long)b->epoch);
                check_batch(&y, b, 0);
                for (int r = 0; r < b->rows; r++)
                    for (int k = 0; k < S && b->seq_index[(size_t)r * S + k] >= 0; k++) cnt[b->seq_index[(size_t)r * S + k]]++;
            }
            for (int i = 0; i < 5; i++) CHECK(cnt[i] == 1, "tiny corpus step %d: sequence %d seen %d times", s, i, cnt[i]);
        }
        CHECK(y.bad == 0, "tiny corpus: malformed rows");
        nv_loader_free(l);
        tl_free_corpus(&t);
    }

    // Bad layouts are errors, not crashes.
    CHECK(!nv_loader_create(&c, &cfg.data, cfg.model.structure_input, 0, 3, &err), "8 slots over 3 ranks accepted");
    nv_config bad = cfg;
    bad.data.global_batch = 30;
    CHECK(!nv_loader_create(&c, &bad.data, bad.model.structure_input, 0, 1, &err), "global-batch 30 with micro-batch 4 accepted");

    for (int e = 0; e < N_EPOCHS; e++) { free(x.seen[e]); free(x.crop[e]); }
    free(x.in); free(x.tg); free(x.sin); free(x.stg); free(x.mm); free(x.sm);
    tl_free_corpus(&c);
    return tu_finish("loader_pack");
}
