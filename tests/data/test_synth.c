// test_synth - the synthetic corpus: every structure balanced per bracket kind (checked here
// by the test's own matching), pairs Watson-Crick or GU, hairpins >= 3, pseudoknots present,
// length statistics as specified, and sequence i a function of (seed, i) alone.
#include "data/corpus.h"
#include "data/synth.h"
#include "tests/testutil.h"

#include <string.h>

static int canonical(int a, int b) { // ids: A 5, C 6, G 7, U 8
    int x = a < b ? a : b, y = a < b ? b : a;
    return (x == 5 && y == 8) || (x == 6 && y == 7) || (x == 7 && y == 8);
}

int main(void) {
    uint64_t seed = tu_seed();
    nv_synth_params p;
    uint64_t n = 4000;
    nv_synth_defaults(&p, n, seed);
    nv_corpus c;
    nv_corpus_init(&c);
    nv_synth_corpus(&c, &p);
    REQUIRE(c.n_seqs == n, "n_seqs %llu", (unsigned long long)c.n_seqs);

    uint64_t short_n = 0, long_n = 0, structured = 0, knotted = 0, pairs = 0, paired_nt = 0, nt_structured = 0;
    double sum = 0;
    int *stk = malloc(sizeof(int) * 4096);
    for (uint64_t i = 0; i < n && tu_failures < 20; i++) {
        uint64_t a = c.offsets[i], len = nv_corpus_len(&c, i);
        const uint8_t *t = c.tokens + a, *s = c.structure + a;
        sum += (double)len;
        short_n += len < 100;
        long_n += len > 1024;
        CHECK(len >= 20 && len <= 2000, "seq %llu: length %llu outside [20, 2000]", (unsigned long long)i, (unsigned long long)len);
        char want[32];
        snprintf(want, sizeof want, "synth_%llu", (unsigned long long)i);
        CHECK(strcmp(c.ids[i], want) == 0, "id %s", c.ids[i]);
        for (uint64_t k = 0; k < len; k++) CHECK(t[k] >= 5 && t[k] <= 15, "token %u", t[k]);
        if (s[0] == 255) {
            for (uint64_t k = 0; k < len; k++) CHECK(s[k] == 255, "seq %llu: mixed unknown and known structure", (unsigned long long)i);
            continue;
        }
        structured++;
        nt_structured += len;
        int has_pk = 0;
        for (int kind = 0; kind < 4; kind++) {
            int top = 0;
            for (uint64_t k = 0; k < len; k++) {
                CHECK(s[k] <= 8, "structure byte %u", s[k]);
                if (s[k] == 2 * kind + 1) stk[top++] = (int)k;
                else if (s[k] == 2 * kind + 2) {
                    CHECK(top > 0, "seq %llu pos %llu: unmatched closing bracket", (unsigned long long)i, (unsigned long long)k);
                    if (top == 0) break;
                    int o = stk[--top];
                    CHECK(canonical(t[o], t[k]), "seq %llu: pair %d-%llu is %c-%c", (unsigned long long)i, o,
                          (unsigned long long)k, "?????ACGUNRYKMSW"[t[o]], "?????ACGUNRYKMSW"[t[k]]);
                    CHECK((int)k - o - 1 >= 3, "seq %llu: hairpin of %d nt", (unsigned long long)i, (int)k - o - 1);
                    pairs++;
                    paired_nt += 2;
                    has_pk |= kind > 0;
                }
            }
            CHECK(top == 0, "seq %llu: %d unclosed brackets of kind %d", (unsigned long long)i, top, kind);
        }
        knotted += (uint64_t)has_pk;
    }
    free(stk);
    double mean = sum / (double)n, fs = (double)short_n / (double)n, fl = (double)long_n / (double)n;
    double fstruct = (double)structured / (double)n, fpk = (double)knotted / (double)(structured ? structured : 1);
    double fpaired = (double)paired_nt / (double)(nt_structured ? nt_structured : 1);
    printf("mean %.1f, <100 %.3f, >1024 %.3f, structured %.3f, pseudoknotted %.3f, paired nt %.3f\n", mean, fs, fl,
           fstruct, fpk, fpaired);
    CHECK(mean > 400 && mean < 490, "mean length %.1f (want ~445)", mean);
    CHECK(fs > 0.17 && fs < 0.23, "fraction under 100: %.3f (want ~0.20)", fs);
    CHECK(fl > 0.16 && fl < 0.22, "fraction over 1024: %.3f (want ~0.19)", fl);
    CHECK(fabs(fstruct - 0.7) < 0.04, "fraction structured %.3f (want 0.7)", fstruct);
    CHECK(fpk > 0.08 && fpk < 0.2, "fraction pseudoknotted %.3f (want ~0.15)", fpk);
    CHECK(fpaired > 0.3 && fpaired < 0.8, "paired fraction %.3f", fpaired);
    CHECK(c.n_with_structure == structured, "n_with_structure %llu vs %llu", (unsigned long long)c.n_with_structure,
          (unsigned long long)structured);

    // sequence i depends on (seed, i) only: another n, or a range, gives the same sequences
    uint64_t m = (uint64_t)tu_int(10, 300), first = (uint64_t)tu_int(0, (int)n - 20), cnt = 17;
    nv_synth_params q;
    nv_synth_defaults(&q, m, seed);
    nv_corpus d;
    nv_corpus_init(&d);
    nv_synth_corpus(&d, &q);
    CHECK(d.n_tokens == c.offsets[m], "n=%llu: prefix differs in length", (unsigned long long)m);
    CHECK(memcmp(d.tokens, c.tokens, d.n_tokens) == 0 && memcmp(d.structure, c.structure, d.n_tokens) == 0,
          "n=%llu: prefix differs", (unsigned long long)m);
    nv_corpus_free(&d);
    nv_corpus_init(&d);
    nv_synth_range(&d, &p, first, cnt);
    uint64_t a = c.offsets[first], len = c.offsets[first + cnt] - a;
    CHECK(d.n_tokens == len && memcmp(d.tokens, c.tokens + a, len) == 0 && memcmp(d.structure, c.structure + a, len) == 0,
          "range [%llu, +%llu) differs", (unsigned long long)first, (unsigned long long)cnt);
    CHECK(strcmp(d.ids[0], c.ids[first]) == 0, "range ids");
    nv_corpus_free(&d);
    // another seed gives another corpus
    nv_synth_defaults(&q, 20, seed + 1);
    nv_corpus_init(&d);
    nv_synth_corpus(&d, &q);
    CHECK(d.n_tokens != c.offsets[20] || memcmp(d.tokens, c.tokens, d.n_tokens) != 0, "seed+1 gives the same corpus");
    nv_corpus_free(&d);
    nv_corpus_free(&c);
    return tu_finish("test_synth");
}
