// test_loader_resume.c - a loader stopped after k steps and restored from its cursor in a
// fresh loader (same or another data degree, with or without prefetch) continues with
// bit-identical micro-batches, across epoch boundaries; a loader rewound to an old cursor
// replays; cursors that do not fit the run are refused.
#include "tests/loader/loader_testutil.h"
#include "train/config.h"

int main(void) {
    tu_seed();
    const int S = 256, MB = 2, GB = 16, G = GB / MB;
    tl_lengths lm = {0.21, 0.19, 10, 200, 600};
    nv_corpus c;
    tl_make_corpus(&c, 800, &lm, 0.6);
    nv_config cfg;
    tl_config(&cfg, S, MB, GB, tu_u64());
    nv_error err;

    // Reference stream (dp = 1, synchronous) over about two and a half epochs.
    const int T = 110;
    nv_batch *ref = calloc((size_t)T * G, sizeof(nv_batch));
    nv_loader *l = nv_loader_create_ex(&c, &cfg.data, cfg.model.structure_input, 0, 1, 0, &err);
    REQUIRE(l, "%s", err.msg);
    for (int i = 0; i < T * G; i++) tl_batch_copy(&ref[i], nv_loader_next(l));
    nv_loader_free(l);
    printf("reference: %d steps, last epoch %llu\n", T, (unsigned long long)ref[T * G - 1].epoch);
    CHECK(ref[T * G - 1].epoch >= 2, "reference should cross two epoch boundaries");

    long masks_seen = 0;
    for (int trial = 0; trial < 6; trial++) {
        int k = tu_int(1, T - 12), m = 10;
        int dp = 1 << tu_int(0, 3), rank = tu_int(0, dp - 1), acc = G / dp;
        // the first loader runs k steps with prefetch, then gives its cursor
        nv_loader *a = nv_loader_create_ex(&c, &cfg.data, cfg.model.structure_input, 0, 1, tu_int(1, 6), &err);
        REQUIRE(a, "%s", err.msg);
        for (int i = 0; i < k * G; i++) nv_loader_next(a);
        nv_loader_cursor *cur = malloc(sizeof *cur);
        nv_loader_get_cursor(a, cur);
        CHECK(cur->step == (uint64_t)k && cur->n_slots == G, "cursor step %llu", (unsigned long long)cur->step);
        for (int g = 0; g < G; g++) masks_seen += cur->slot_done[g] != 0;
        // it goes on unchanged after giving its cursor
        int diff_a = 0;
        for (int i = k * G; i < (k + m) * G; i++) diff_a += !tl_batch_equal(nv_loader_next(a), &ref[i]);
        CHECK(diff_a == 0, "trial %d: %d batches differ after get_cursor", trial, diff_a);
        // a fresh loader at another data degree resumes from the cursor
        nv_loader *b = nv_loader_create_ex(&c, &cfg.data, cfg.model.structure_input, rank, dp, tu_int(0, 4), &err);
        REQUIRE(b, "%s", err.msg);
        REQUIRE(nv_loader_set_cursor(b, cur, &err) == 0, "%s", err.msg);
        int diff_b = 0;
        for (int s = k; s < k + m; s++)
            for (int j = 0; j < acc; j++)
                diff_b += !tl_batch_equal(nv_loader_next(b), &ref[s * G + rank * acc + j]);
        CHECK(diff_b == 0, "trial %d (k %d, dp %d rank %d): %d resumed batches differ", trial, k, dp, rank, diff_b);
        // the first loader, well ahead with its prefetch thread running, rewinds and replays
        REQUIRE(nv_loader_set_cursor(a, cur, &err) == 0, "%s", err.msg);
        int diff_r = 0;
        for (int i = k * G; i < (k + 3) * G; i++) diff_r += !tl_batch_equal(nv_loader_next(a), &ref[i]);
        CHECK(diff_r == 0, "trial %d: %d replayed batches differ", trial, diff_r);
        printf("trial %d: stop after %d steps (epoch %llu), resume at dp %d rank %d: ok\n", trial, k,
               (unsigned long long)cur->epoch, dp, rank);

        // cursors from another layout or corpus are refused
        nv_loader_cursor *bad = malloc(sizeof *bad);
        memcpy(bad, cur, sizeof *bad);
        bad->n_slots = G / 2;
        CHECK(nv_loader_set_cursor(b, bad, &err) != 0, "a cursor with %d slots accepted", bad->n_slots);
        memcpy(bad, cur, sizeof *bad);
        bad->slot_pos[tu_int(0, G - 1)] = c.n_seqs;
        CHECK(nv_loader_set_cursor(b, bad, &err) != 0, "a cursor past the stripe accepted");
        free(bad);
        free(cur);
        nv_loader_free(a);
        nv_loader_free(b);
    }
    printf("lookahead masks in the cursors: %ld non-zero\n", masks_seen);
    CHECK(masks_seen > 0, "the out-of-order part of the cursor was never exercised");

    for (int i = 0; i < T * G; i++) nv_batch_free(&ref[i]);
    free(ref);
    tl_free_corpus(&c);
    return tu_finish("loader_resume");
}
