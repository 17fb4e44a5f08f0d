// attn_plan.c - graph-cache keys, the diagonal band and the cuDNN / native choice of the CUDA
// attention (see attn_plan.h). Host code only, built everywhere.
#include "model/cuda/attn_plan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int nv_attn_pow2(int x, int lo) {
    int p = lo > 1 ? lo : 1;
    while (p < x && p < (1 << 30)) p <<= 1;
    return p;
}

int nv_attn_plan_segments(int max_tokens, int seq_len) {
    if (max_tokens <= 0 || seq_len <= 0) return 1;
    const long rows = ((long)max_tokens + seq_len - 1) / seq_len, most = max_tokens / 2 + 1;
    const long segs = rows * 32 < most ? rows * 32 : most;
    return segs > 0 ? (int)segs : 1;
}

int nv_attn_plan_chunk(int n_segs, int forced, int (*fits)(void *ctx, int b), void *ctx) {
    const int chunked = forced > 0 && n_segs > forced;
    if (!chunked) {
        const int whole = fits(ctx, 0);
        if (whole != 0) return whole > 0 ? n_segs : 0;
    }
    for (int b = nv_attn_pow2(n_segs, 8) / 2; b >= 8; b /= 2)
        if ((!chunked || b <= forced) && fits(ctx, b) > 0) return b;
    return 0;
}

nv_attn_key nv_attn_key_make(int bwd, int n_segs, int max_len, int n_tokens, int H, int dh,
                             int window) {
    nv_attn_key k;
    memset(&k, 0, sizeof k); // keys are compared field by field, but keep padding defined
    k.bwd = bwd ? 1 : 0;
    k.b_cap = nv_attn_pow2(n_segs, 8);
    k.s_cap = nv_attn_pow2(max_len, 64);
    k.n_cap = n_tokens;
    k.H = H;
    k.dh = dh;
    // a band that reaches across the longest possible segment masks nothing: global
    k.window = window > 0 && window / 2 < k.s_cap - 1 ? window : 0;
    return k;
}

int nv_attn_key_eq(const nv_attn_key *a, const nv_attn_key *b) {
    return a->bwd == b->bwd && a->b_cap == b->b_cap && a->s_cap == b->s_cap &&
           a->n_cap == b->n_cap && a->H == b->H && a->dh == b->dh && a->window == b->window;
}

void nv_attn_key_str(const nv_attn_key *k, char *buf, size_t size) {
    char w[32] = "global";
    if (k->window) snprintf(w, sizeof w, "window %d", k->window);
    snprintf(buf, size, "%s B<=%d S<=%d n=%d H=%d dh=%d %s", k->bwd ? "bwd" : "fwd", k->b_cap,
             k->s_cap, k->n_cap, k->H, k->dh, w);
}

int nv_attn_band(int window, int64_t *left, int64_t *right) {
    if (window <= 0) return 0;
    *right = window / 2;     // keep j - i <= window/2
    *left = window / 2 + 1;  // keep i - j <  window/2 + 1
    return 1;
}

int nv_attn_band_keeps(int64_t i, int64_t j, int64_t left, int64_t right) {
    // cudnn-frontend's sliding_window_mask, top-left aligned: the right bound keeps
    // row + right >= col, the left bound keeps col + left > row
    return i + right >= j && j + left > i;
}

void *nv_attn_cache_find(const nv_attn_cache *c, const nv_attn_key *k) {
    for (int i = 0; i < c->n; i++)
        if (nv_attn_key_eq(&c->keys[i], k)) return c->vals[i];
    return NULL;
}

int nv_attn_cache_put(nv_attn_cache *c, const nv_attn_key *k, void *v) {
    if (c->n == c->cap) {
        int cap = c->cap ? 2 * c->cap : 16;
        nv_attn_key *nk = realloc(c->keys, sizeof *nk * (size_t)cap);
        if (!nk) return -1;
        c->keys = nk;
        void **nv = realloc(c->vals, sizeof *nv * (size_t)cap);
        if (!nv) return -1;
        c->vals = nv;
        c->cap = cap;
    }
    c->keys[c->n] = *k;
    c->vals[c->n] = v;
    c->n++;
    return 0;
}

void nv_attn_cache_free(nv_attn_cache *c) {
    free(c->keys);
    free(c->vals);
    memset(c, 0, sizeof *c);
}

int nv_attn_choose(int mode, int cudnn_ok, const char *why_not, double t_native, double t_cudnn,
                   const char *what, char *msg, size_t size) {
    const char *why = why_not && *why_not ? why_not : "not supported";
    switch (mode) {
    case NV_ATTN_MODE_NATIVE:
        snprintf(msg, size, "attention %s: native ([train] attention = native)", what);
        return NV_ATTN_MODE_NATIVE;
    case NV_ATTN_MODE_CUDNN:
        if (!cudnn_ok) {
            snprintf(msg, size, "[train] attention = cudnn, but cuDNN cannot run attention %s: %s\n"
                     "---> HINT: set [train] attention = native (or auto)", what, why);
            return -1;
        }
        snprintf(msg, size, "attention %s: cudnn ([train] attention = cudnn)", what);
        return NV_ATTN_MODE_CUDNN;
    default:
        if (!cudnn_ok) {
            snprintf(msg, size, "attention %s: native (auto; cuDNN: %s)", what, why);
            return NV_ATTN_MODE_NATIVE;
        }
        if (t_native < 0 || t_cudnn < 0) { // nothing measured: the deterministic cuDNN graph
            snprintf(msg, size, "attention %s: cudnn (auto, not timed)", what);
            return NV_ATTN_MODE_CUDNN;
        }
        const int c = t_cudnn < t_native;
        snprintf(msg, size, "attention %s: %s (auto: cudnn %.3f ms, native %.3f ms)", what,
                 c ? "cudnn" : "native", t_cudnn, t_native);
        return c ? NV_ATTN_MODE_CUDNN : NV_ATTN_MODE_NATIVE;
    }
}
