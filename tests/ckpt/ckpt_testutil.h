// ckpt_testutil.h - helpers of the checkpoint tests: a small random model config, states
// whose every element is a known function of (run seed, tensor name, full index, kind), and
// checks against that function, so any layout can be checked element by element.
#pragma once
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/rng.h"
#include "model/params.h"
#include "testutil.h"
#include "train/checkpoint.h"

// kind 0: master, 1: Adam m, 2: Adam v. Exact in float (24 random bits).
static inline float ct_val(uint64_t seed, const char *name, int64_t fi, int kind) {
    uint64_t h = nv_mix64(nv_mix64(seed, nv_hash_str(name)), (uint64_t)fi * 3u + (uint64_t)kind);
    return (float)((double)(h >> 40) / 16777216.0 * 2.0 - 1.0) * (kind == 2 ? 0.01f : 1.0f);
}

// A model small enough for seconds on 2 cores; heads and ffn divisible by 1, 2 and 4.
static inline void ct_config(nv_config *c) {
    nv_config_defaults(c);
    c->model.num_layers = tu_int(1, 3);
    c->model.num_attn_heads = 4;
    c->model.hidden_size = 4 * 2 * tu_int(2, 8);
    c->model.ffn_hidden_size = 4 * tu_int(3, 40);
    c->model.structure_input = tu_int(0, 1);
}

typedef struct ct_rank {
    nv_param_table t;
    nv_param_ids ids;
    nv_ckpt_state s;
} ct_rank;

// Table at (tp_rank, tp_size), shard dp_rank of dp_size when zero1 (uneven, inside tensors).
static inline void ct_alloc(ct_rank *r, const nv_config *c, int tp_rank, int tp_size, int dp_rank,
                            int dp_size, int zero1) {
    memset(r, 0, sizeof *r);
    nv_params_build(&r->t, &r->ids, &c->model, tp_rank, tp_size);
    r->s.t = &r->t;
    r->s.zero1 = zero1;
    r->s.shard_lo = zero1 ? r->t.total * (size_t)dp_rank / (size_t)dp_size : 0;
    r->s.shard_hi = zero1 ? r->t.total * (size_t)(dp_rank + 1) / (size_t)dp_size : r->t.total;
    size_t n = r->s.shard_hi - r->s.shard_lo;
    r->s.master = calloc(r->t.total, sizeof(float));
    r->s.adam_m = calloc(n ? n : 1, sizeof(float));
    r->s.adam_v = calloc(n ? n : 1, sizeof(float));
}

static inline void ct_free(ct_rank *r) {
    free(r->s.master);
    free(r->s.adam_m);
    free(r->s.adam_v);
    nv_params_free(&r->t, &r->ids);
}

static inline void ct_fill(ct_rank *r, uint64_t seed, long step) {
    const nv_param_table *t = &r->t;
    nv_ckpt_state *s = &r->s;
    for (int k = 0; k < t->n; k++) {
        const nv_param *p = &t->p[k];
        for (size_t i = 0; i < p->numel; i++) {
            int64_t fi = nv_param_full_index(p, i, t->tp_rank, t->tp_size);
            size_t j = p->offset + i;
            s->master[j] = ct_val(seed, p->name, fi, 0);
            if (j >= s->shard_lo && j < s->shard_hi) {
                s->adam_m[j - s->shard_lo] = ct_val(seed, p->name, fi, 1);
                s->adam_v[j - s->shard_lo] = ct_val(seed, p->name, fi, 2);
            }
        }
    }
    s->step = step;
    memset(&s->cursor, 0, sizeof s->cursor);
    s->cursor.epoch = seed % 7;
    s->cursor.step = (uint64_t)step;
    s->cursor.n_slots = (int)(seed % 23) + 1;
    for (int i = 0; i < s->cursor.n_slots; i++) {
        s->cursor.slot_pos[i] = nv_mix64(seed, (uint64_t)i) % 100000;
        s->cursor.slot_done[i] = nv_mix64(seed, 1000u + (uint64_t)i); // full 64-bit masks
    }
    for (int i = 0; i < NV_CKPT_EXTRA; i++) s->extra[i] = nv_mix64(seed ^ 77u, (uint64_t)i);
}

// Element-by-element check against the function; returns mismatches (reports the first).
static inline long ct_check(const ct_rank *r, uint64_t seed, long step, int moments, const char *what) {
    const nv_param_table *t = &r->t;
    const nv_ckpt_state *s = &r->s;
    long bad = 0;
    for (int k = 0; k < t->n; k++) {
        const nv_param *p = &t->p[k];
        for (size_t i = 0; i < p->numel; i++) {
            int64_t fi = nv_param_full_index(p, i, t->tp_rank, t->tp_size);
            size_t j = p->offset + i;
            for (int kind = 0; kind < (moments ? 3 : 1); kind++) {
                if (kind && (j < s->shard_lo || j >= s->shard_hi)) continue;
                float want = ct_val(seed, p->name, fi, kind);
                float got = kind == 0 ? s->master[j] : kind == 1 ? s->adam_m[j - s->shard_lo] : s->adam_v[j - s->shard_lo];
                if (memcmp(&want, &got, 4) && bad++ == 0)
                    fprintf(stderr, "FAIL %s: tp %d/%d %s local %zu (full %lld) kind %d: got %.9g want %.9g\n",
                            what, t->tp_rank, t->tp_size, p->name, i, (long long)fi, kind, got, want);
            }
        }
    }
    if (s->step != step && bad++ == 0) fprintf(stderr, "FAIL %s: step %ld want %ld\n", what, s->step, step);
    // cursor and extra as ct_fill makes them
    nv_loader_cursor c;
    memset(&c, 0, sizeof c);
    c.epoch = seed % 7;
    c.step = (uint64_t)step;
    c.n_slots = (int)(seed % 23) + 1;
    for (int i = 0; i < c.n_slots; i++) {
        c.slot_pos[i] = nv_mix64(seed, (uint64_t)i) % 100000;
        c.slot_done[i] = nv_mix64(seed, 1000u + (uint64_t)i);
    }
    int cur_ok = c.epoch == s->cursor.epoch && c.step == s->cursor.step && c.n_slots == s->cursor.n_slots &&
                 !memcmp(c.slot_pos, s->cursor.slot_pos, sizeof c.slot_pos) &&
                 !memcmp(c.slot_done, s->cursor.slot_done, sizeof c.slot_done);
    if (!cur_ok && bad++ == 0) fprintf(stderr, "FAIL %s: cursor differs\n", what);
    for (int i = 0; i < NV_CKPT_EXTRA; i++)
        if (s->extra[i] != nv_mix64(seed ^ 77u, (uint64_t)i) && bad++ == 0)
            fprintf(stderr, "FAIL %s: extra[%d] differs\n", what, i);
    return bad;
}

static inline void ct_rm_rf(const char *dir) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "warning: %s failed\n", cmd);
}

static inline void ct_flip_byte(const char *path, double where) {
    FILE *f = fopen(path, "r+b");
    REQUIRE(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    long at = (long)(where * (double)n);
    fseek(f, at, SEEK_SET);
    int c = fgetc(f);
    fseek(f, at, SEEK_SET);
    fputc(c ^ 0x5a, f);
    fclose(f);
}
