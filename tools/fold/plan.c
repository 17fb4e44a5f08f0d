// plan.c - the cost model, the cut of shards into parts, their assignment to workers, and
// the plan's bytes (OUT/.nvwa-fold/plan.bin, and the MPI broadcast).
#include "tools/fold/fold.h"

#include <stdlib.h>
#include <string.h>

#include "data/vocab.h"

// ViennaRNA 2.7.2 MFE, CPU seconds of one core of the 2-core EPYC, fitted over 25..1000 nt
// (bench/results/fold-2026-12-04.md): the n^3 multiloop term leads from ~350 nt, the n^2
// interior loops (span <= 30) below; c is the per-sequence setup (fold compound,
// parameter copy), too small to fit, kept so that every sequence costs something.
#define COST_A 8.1e-10
#define COST_B 2.8e-7
#define COST_C 1.0e-5

double fold_cost(uint64_t n) {
    double x = (double)n;
    return COST_A * x * x * x + COST_B * x * x + COST_C;
}

int fold_decide(const fold_settings *s, const uint8_t *ss, uint64_t len) {
    if (len == 0) return FOLD_SKIP_EMPTY;
    int known = 0;
    for (uint64_t i = 0; i < len && !known; i++) known = ss[i] != NV_SS_UNKNOWN;
    if (known && !s->refold) return FOLD_KEEP;
    if ((long)len > s->max_len) return FOLD_TOO_LONG;
    return FOLD_DO;
}

static fold_part *new_part(fold_part **parts, uint64_t *n, uint64_t *cap) {
    if (*n == *cap) {
        *cap = *cap ? 2 * *cap : 256;
        *parts = nv_realloc(*parts, *cap * sizeof **parts);
    }
    fold_part *p = &(*parts)[(*n)++];
    memset(p, 0, sizeof *p);
    return p;
}

// A part closes once its cost reaches part_seconds; it never holds a sequence that is not
// folded at its ends (so parts are as small as their work), and the sequences between
// parts (kept, too long) are copied from the input at assembly.
void fold_plan_shard(const fold_settings *s, uint32_t shard_index, const uint64_t *off, uint64_t n_seqs,
                     const uint8_t *ss, fold_shard *sh, fold_part **parts, uint64_t *n_parts, uint64_t *cap) {
    memset(&sh->counts, 0, sizeof sh->counts);
    sh->n_seqs = n_seqs;
    sh->n_tokens = off[n_seqs];
    sh->first_part = *n_parts;
    sh->cost = 0;
    fold_counts *c = &sh->counts;
    c->seqs = n_seqs;
    c->tokens = off[n_seqs];
    fold_part *cur = NULL;
    for (uint64_t i = 0; i < n_seqs; i++) {
        uint64_t len = off[i + 1] - off[i];
        int d = fold_decide(s, ss + off[i], len);
        if (d == FOLD_SKIP_EMPTY) { c->empty++; continue; }
        if (d == FOLD_KEEP) { c->kept++; continue; }
        if (d == FOLD_TOO_LONG) { c->too_long++; continue; }
        c->folded++;
        c->folded_tokens += len;
        double cost = fold_cost(len);
        sh->cost += cost;
        if (!cur) {
            cur = new_part(parts, n_parts, cap);
            cur->shard = shard_index;
            cur->index = (uint32_t)(*n_parts - 1 - sh->first_part);
            cur->seq_a = i;
            cur->tok_a = off[i];
        }
        cur->seq_b = i + 1;
        cur->tok_b = off[i + 1];
        cur->n_fold++;
        cur->cost += cost;
        if (cur->cost >= s->part_seconds) cur = NULL;
    }
    sh->n_parts = *n_parts - sh->first_part;
}

void fold_plan_free(fold_plan *p) {
    free(p->shards);
    free(p->parts);
    memset(p, 0, sizeof *p);
}

// ---------------------------------------------------------------------------------------
// bytes: magic, header, shards, parts, CRC-32 of everything before it

static const char plan_magic[8] = {'N', 'V', 'F', 'P', 'L', 'A', 'N', '1'};

typedef struct plan_head {
    char magic[8];
    uint32_t n_shards, sizeof_shard, sizeof_part, pad;
    uint64_t n_parts;
    char settings[1024];
} plan_head;

void *fold_plan_pack(const fold_plan *p, size_t *size) {
    plan_head h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, plan_magic, 8);
    h.n_shards = p->n_shards;
    h.sizeof_shard = sizeof(fold_shard);
    h.sizeof_part = sizeof(fold_part);
    h.n_parts = p->n_parts;
    memcpy(h.settings, p->settings, sizeof h.settings);
    size_t ns = (size_t)p->n_shards * sizeof(fold_shard), np = (size_t)p->n_parts * sizeof(fold_part);
    *size = sizeof h + ns + np + 4;
    char *b = nv_malloc(*size);
    memcpy(b, &h, sizeof h);
    if (ns) memcpy(b + sizeof h, p->shards, ns);
    if (np) memcpy(b + sizeof h + ns, p->parts, np);
    uint32_t crc = fold_crc32(b, *size - 4);
    memcpy(b + *size - 4, &crc, 4);
    return b;
}

int fold_plan_unpack(const void *buf, size_t size, fold_plan *p, const char *what, nv_error *err) {
    memset(p, 0, sizeof *p);
    plan_head h;
    const char *b = buf;
    if (size < sizeof h + 4) return nv_seterr(err, "%s: truncated plan (%zu bytes)", what, size);
    memcpy(&h, b, sizeof h);
    if (memcmp(h.magic, plan_magic, 8) != 0 || h.sizeof_shard != sizeof(fold_shard) ||
        h.sizeof_part != sizeof(fold_part))
        return nv_seterr(err, "%s: not a plan of this nvwa-fold", what);
    size_t ns = (size_t)h.n_shards * sizeof(fold_shard), np = (size_t)h.n_parts * sizeof(fold_part);
    uint32_t crc;
    if (size != sizeof h + ns + np + 4) return nv_seterr(err, "%s: plan has %zu bytes, expected %zu", what, size, sizeof h + ns + np + 4);
    memcpy(&crc, b + size - 4, 4);
    if (crc != fold_crc32(b, size - 4)) return nv_seterr(err, "%s: plan checksum mismatch (damaged file)", what);
    p->n_shards = h.n_shards;
    p->n_parts = h.n_parts;
    memcpy(p->settings, h.settings, sizeof p->settings);
    p->settings[sizeof p->settings - 1] = '\0';
    p->shards = nv_malloc(ns ? ns : 1);
    p->parts = nv_malloc(np ? np : 1);
    if (ns) memcpy(p->shards, b + sizeof h, ns);
    if (np) memcpy(p->parts, b + sizeof h + ns, np);
    return 0;
}

// ---------------------------------------------------------------------------------------
// assignment

typedef struct cost_pos {
    double cost;
    uint64_t pos; // position in idx (= plan order, idx ascending)
} cost_pos;

static int cmp_cost_desc(const void *a, const void *b) {
    const cost_pos *x = a, *y = b;
    if (x->cost != y->cost) return x->cost > y->cost ? -1 : 1;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

void fold_assign(const fold_part *parts, const uint64_t *idx, uint64_t n, int workers, int *owner, double *load) {
    cost_pos *ord = nv_malloc((n ? n : 1) * sizeof *ord);
    for (uint64_t k = 0; k < n; k++) ord[k] = (cost_pos){parts[idx[k]].cost, k};
    qsort(ord, n, sizeof *ord, cmp_cost_desc);
    for (int w = 0; w < workers; w++) load[w] = 0;
    for (uint64_t k = 0; k < n; k++) {
        int best = 0; // a linear scan: workers are at most thousands, parts tens of thousands
        for (int w = 1; w < workers; w++)
            if (load[w] < load[best]) best = w;
        owner[ord[k].pos] = best;
        load[best] += ord[k].cost;
    }
    free(ord);
}
