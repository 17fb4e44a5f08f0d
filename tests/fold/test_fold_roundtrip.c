// test_fold_roundtrip - nvwa-fold's shards through nvwa-prep and the loader:
//   FOLDED: the shards nvwa-fold wrote; PREPPED: nvwa-prep's shards of nvwa-fold's .dbn text.
// The two corpora must be the same (tokens, structures, offsets, ids): the structures
// survive dot-bracket text both ways. Then the masker sees them: pair masking pulls partners
// in (none with pair-mask-rate 0, none without structures), and the loader's structure
// labels are the 3-class labels of the folded structures.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/batch.h"
#include "data/shard.h"
#include "data/vocab.h"
#include "tests/testutil.h"
#include "train/config.h"

static nv_mask_stats mask_all(const nv_corpus *c, double pair_rate, int with_ss) {
    nv_mask_params p = {.mask_rate = 0.15, .span_fraction = 0.5, .span_p = 0.2, .pair_mask_rate = pair_rate,
                        .struct_hide_rate = 0.5, .span_max = 10, .structure_input = 1, .seed = tu_u64()};
    nv_mask_stats st;
    memset(&st, 0, sizeof st);
    uint64_t maxl = 0;
    for (uint64_t i = 0; i < c->n_seqs; i++)
        if (nv_corpus_len(c, i) > maxl) maxl = nv_corpus_len(c, i);
    int32_t *b4 = malloc(4 * 4 * (maxl + 1));
    uint8_t *b1 = malloc(2 * (maxl + 1));
    for (uint64_t i = 0; i < c->n_seqs; i++) {
        uint64_t a = c->offsets[i], n = nv_corpus_len(c, i);
        nv_mask_sequence_stats(&p, 0, i, c->tokens + a, with_ss ? c->structure + a : NULL, (int)n, b4, b4 + maxl + 1,
                               b4 + 2 * (maxl + 1), b4 + 3 * (maxl + 1), b1, b1 + maxl + 1, &st);
    }
    free(b4);
    free(b1);
    return st;
}

int main(int argc, char **argv) {
    REQUIRE(argc == 3, "usage: test_fold_roundtrip FOLDED_DIR PREPPED_DIR");
    tu_seed();
    nv_error err;
    nv_corpus f, q;
    REQUIRE(nv_corpus_open(argv[1], &f, 1, &err) == 0, "%s", err.msg);
    REQUIRE(nv_corpus_open(argv[2], &q, 1, &err) == 0, "%s", err.msg);
    CHECK(f.n_seqs == q.n_seqs && f.n_tokens == q.n_tokens, "sizes %llu/%llu vs %llu/%llu",
          (unsigned long long)f.n_seqs, (unsigned long long)f.n_tokens, (unsigned long long)q.n_seqs,
          (unsigned long long)q.n_tokens);
    REQUIRE(f.n_seqs == q.n_seqs && f.n_tokens == q.n_tokens, "cannot compare further");
    CHECK(!memcmp(f.tokens, q.tokens, f.n_tokens), "tokens differ");
    CHECK(!memcmp(f.structure, q.structure, f.n_tokens), "structures differ after the dot-bracket round trip");
    CHECK(!memcmp(f.offsets, q.offsets, 8 * (f.n_seqs + 1)), "offsets differ");
    for (uint64_t i = 0; i < f.n_seqs; i++) CHECK(!strcmp(f.ids[i], q.ids[i]), "id %llu: %s vs %s", (unsigned long long)i, f.ids[i], q.ids[i]);
    CHECK(f.n_with_structure == f.n_seqs, "%llu of %llu sequences have a structure", (unsigned long long)f.n_with_structure,
          (unsigned long long)f.n_seqs);
    uint64_t paired = 0;
    for (uint64_t t = 0; t < f.n_tokens; t++) paired += f.structure[t] == NV_SS_OPEN || f.structure[t] == NV_SS_CLOSE;
    CHECK(paired > f.n_tokens / 10, "only %llu of %llu nucleotides paired", (unsigned long long)paired,
          (unsigned long long)f.n_tokens);

    // the masker pulls partners of selected paired nucleotides (structure level of design 7)
    nv_mask_stats on = mask_all(&f, 1.0, 1), off = mask_all(&f, 0.0, 1), none = mask_all(&f, 1.0, 0);
    printf("pair masking: %ld partners pulled of %ld selected (%ld tries); with rate 0: %ld; without structures: %ld\n",
           on.n_partner_tok, on.n_selected, on.n_pull_tries, off.n_partner_tok, none.n_partner_tok);
    CHECK(on.n_partner_tok > 0 && on.n_pull_tries > 0, "no partner was pulled in");
    CHECK(off.n_partner_tok == 0 && none.n_partner_tok == 0, "partners pulled without pair masking");

    // the loader's structure labels are the folded structures' 3 classes
    uint64_t maxl = 0;
    for (uint64_t i = 0; i < f.n_seqs; i++)
        if (nv_corpus_len(&f, i) > maxl) maxl = nv_corpus_len(&f, i);
    int S = 64;
    while ((uint64_t)S < maxl + 2) S *= 2; // no crops: positions map straight to the corpus
    nv_config cfg;
    nv_config_defaults(&cfg);
    cfg.data.seq_length = S;
    cfg.data.micro_batch = 2;
    cfg.data.global_batch = 2;
    cfg.data.seed = tu_u64();
    nv_loader *l = nv_loader_create_ex(&f, &cfg.data, cfg.model.structure_input, 0, 1, 0, &err);
    REQUIRE(l, "%s", err.msg);
    long labels = 0, bad = 0;
    for (int step = 0; step < 4; step++) {
        const nv_batch *b = nv_loader_next(l);
        for (int r = 0; r < b->rows; r++)
            for (int t = 0; t < S; t++) {
                size_t k = (size_t)r * S + t;
                int seg = b->segment[k], pos = b->position[k];
                if (seg == 0 || pos == 0 || b->target[k] < NV_FIRST_NT) continue; // pad, <cls>, <eos>
                int64_t gi = b->seq_index[(size_t)r * S + seg - 1];
                uint8_t ss = f.structure[f.offsets[gi] + (uint64_t)pos - 1];
                labels += b->struct_target[k] >= 0;
                bad += b->struct_target[k] != nv_sclass(ss);
            }
    }
    printf("loader: %ld structure labels, %ld differ from the folded structures\n", labels, bad);
    CHECK(labels > 0 && bad == 0, "loader labels");
    nv_loader_free(l);
    nv_corpus_free(&f);
    nv_corpus_free(&q);
    return tu_finish("fold_roundtrip");
}
