// test_fold_plan - nvwa-fold's plan without ViennaRNA: the cut into parts covers every
// sequence to fold exactly once and only those, parts reach the budget, the LPT assignment
// is deterministic and balanced (max load <= mean + largest part, checked against an
// exhaustive count), the plan's bytes round-trip and a damaged byte is refused.
#include <stdlib.h>
#include <string.h>

#include "data/vocab.h"
#include "tests/testutil.h"
#include "tools/fold/fold.h"

int main(void) {
    tu_seed();
    fold_settings s = {.temperature = 37, .dangles = 2, .max_len = 300, .part_seconds = tu_uniform(0.05, 0.5)};
    snprintf(s.params, sizeof s.params, "turner2004");
    uint64_t n = (uint64_t)tu_int(200, 2000);
    uint64_t *off = malloc((n + 1) * sizeof *off);
    off[0] = 0;
    for (uint64_t i = 0; i < n; i++) off[i + 1] = off[i] + (uint64_t)(tu_int(0, 9) == 0 ? tu_int(0, 600) : tu_int(10, 350));
    uint8_t *ss = malloc(off[n] + 1);
    memset(ss, NV_SS_UNKNOWN, off[n] + 1);
    for (uint64_t i = 0; i < n; i++)
        if (tu_int(0, 4) == 0 && off[i + 1] > off[i]) ss[off[i] + (uint64_t)tu_int(0, (int)(off[i + 1] - off[i] - 1))] = 0;

    CHECK(fold_cost(10) < fold_cost(100) && fold_cost(100) < fold_cost(1000), "cost not increasing");
    fold_part *parts = NULL;
    uint64_t np = 0, cap = 0;
    fold_shard sh;
    memset(&sh, 0, sizeof sh);
    fold_plan_shard(&s, 0, off, n, ss, &sh, &parts, &np, &cap);
    // each sequence: where it goes, independently of the plan's own loop
    uint8_t *covered = calloc(n, 1);
    fold_counts want = {0};
    for (uint64_t i = 0; i < n; i++) {
        uint64_t len = off[i + 1] - off[i];
        int known = 0;
        for (uint64_t t = off[i]; t < off[i + 1]; t++) known |= ss[t] != NV_SS_UNKNOWN;
        if (len == 0) want.empty++;
        else if (known) want.kept++;
        else if (len > 300) want.too_long++;
        else want.folded++;
    }
    CHECK(sh.counts.folded == want.folded && sh.counts.kept == want.kept && sh.counts.too_long == want.too_long &&
              sh.counts.empty == want.empty,
          "counts %llu/%llu/%llu/%llu", (unsigned long long)sh.counts.folded, (unsigned long long)sh.counts.kept,
          (unsigned long long)sh.counts.too_long, (unsigned long long)sh.counts.empty);
    uint64_t nfold = 0;
    double maxp = 0;
    for (uint64_t k = 0; k < np; k++) {
        const fold_part *p = &parts[k];
        CHECK(p->index == k && p->tok_a == off[p->seq_a] && p->tok_b == off[p->seq_b], "part %llu bounds", (unsigned long long)k);
        CHECK(k == 0 || p->seq_a >= parts[k - 1].seq_b, "parts overlap");
        CHECK(k + 1 == np || p->cost >= s.part_seconds, "part %llu below budget before the last", (unsigned long long)k);
        uint32_t cnt = 0;
        for (uint64_t i = p->seq_a; i < p->seq_b; i++)
            if (fold_decide(&s, ss + off[i], off[i + 1] - off[i]) == FOLD_DO) cnt++, covered[i]++;
        CHECK(cnt == p->n_fold, "part %llu n_fold", (unsigned long long)k);
        nfold += p->n_fold;
        if (p->cost > maxp) maxp = p->cost;
    }
    CHECK(nfold == want.folded, "parts fold %llu, want %llu", (unsigned long long)nfold, (unsigned long long)want.folded);
    for (uint64_t i = 0; i < n; i++)
        CHECK(covered[i] <= 1, "sequence %llu in two parts", (unsigned long long)i);

    // LPT: deterministic, every part owned, balanced within the largest part
    uint64_t *idx = malloc(np * sizeof *idx);
    for (uint64_t k = 0; k < np; k++) idx[k] = k;
    int W = tu_int(1, 9), *own = malloc(np * sizeof *own), *own2 = malloc(np * sizeof *own2);
    double *load = calloc((size_t)W, sizeof *load), *load2 = calloc((size_t)W, sizeof *load2), tot = 0, mx = 0;
    fold_assign(parts, idx, np, W, own, load);
    fold_assign(parts, idx, np, W, own2, load2);
    CHECK(!memcmp(own, own2, np * sizeof *own), "assignment not deterministic");
    double *sum = calloc((size_t)W, sizeof *sum);
    for (uint64_t k = 0; k < np; k++) {
        CHECK(own[k] >= 0 && own[k] < W, "owner");
        sum[own[k]] += parts[k].cost;
        tot += parts[k].cost;
    }
    for (int w = 0; w < W; w++) {
        CHECK(sum[w] > load[w] - 1e-9 && sum[w] < load[w] + 1e-9, "load %d", w);
        if (sum[w] > mx) mx = sum[w];
    }
    CHECK(mx <= tot / W + maxp + 1e-9, "max load %g > mean %g + largest part %g", mx, tot / W, maxp);
    printf("%llu sequences, %llu parts, %d workers: max load %.3f, mean %.3f, largest part %.3f\n", (unsigned long long)n,
           (unsigned long long)np, W, mx, tot / W, maxp);

    // bytes
    fold_plan p = {.n_shards = 1, .n_parts = np, .shards = &sh, .parts = parts}, back;
    snprintf(p.settings, sizeof p.settings, "test settings");
    size_t size;
    char *b = fold_plan_pack(&p, &size);
    nv_error err;
    CHECK(fold_plan_unpack(b, size, &back, "mem", &err) == 0, "%s", err.msg);
    CHECK(back.n_parts == np && !memcmp(back.parts, parts, np * sizeof *parts) && !strcmp(back.settings, "test settings"),
          "round trip");
    fold_plan_free(&back);
    b[tu_int(0, (int)size - 1)] ^= (char)(1 << tu_int(0, 7));
    CHECK(fold_plan_unpack(b, size, &back, "mem", &err) != 0, "a flipped bit was accepted");
    free(b);
    free(parts); free(idx); free(own); free(own2); free(load); free(load2); free(sum); free(off); free(ss); free(covered);
    return tu_finish("fold_plan");
}
