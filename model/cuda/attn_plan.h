// attn_plan.h - the host-side decisions of the CUDA attention, kept apart from cuDNN and CUDA
// so that they are tested on any machine (tests/model/test_attn_plan.c):
//  - graph-cache keys: cuDNN graphs are built once per shape and cached (like matmul.cu's
//    GEMM plans); a packed micro-batch's segment count and longest segment change every step,
//    so both are rounded up to powers of two (a handful of graphs per run, not one per step),
//    and a band as wide as the longest segment is the global case;
//  - the band: design section 6's |i - j| <= window/2 in cuDNN's diagonal-band terms;
//  - the choice between cuDNN and the hand-written kernel ([train] attention).
// Plain C, built in every configuration (also without CUDA).
#pragma once
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// [train] attention (values of nv_attn_kind in train/config.h)
enum { NV_ATTN_MODE_AUTO = 0, NV_ATTN_MODE_CUDNN = 1, NV_ATTN_MODE_NATIVE = 2 };

typedef struct nv_attn_key {
    int bwd;    // 0 forward graph, 1 backward graph
    int b_cap;  // segments, rounded up to a power of two (>= 8); unused entries have length 0
    int s_cap;  // longest segment, rounded up to a power of two (>= 64)
    int n_cap;  // tokens of the packed buffers (the micro-batch's rows * seq-length)
    int H, dh;  // local heads, head dim
    int window; // 0 = global; else the band |i - j| <= window/2 (0 when it covers s_cap)
} nv_attn_key;

// Smallest power of two >= x and >= lo.
int nv_attn_pow2(int x, int lo);
// The key of a call; every call with the same key runs one cached graph.
nv_attn_key nv_attn_key_make(int bwd, int n_segs, int max_len, int n_tokens, int H, int dh,
                             int window);
int nv_attn_key_eq(const nv_attn_key *a, const nv_attn_key *b);
// The segments per micro-batch cuDNN's workspace is first sized for at prepare: segments
// averaging seq_len / 32 tokens over the micro-batch's rows (cuDNN's ragged backward sizes
// its workspace by segments x longest segment, so the worst case, 2-token segments, would
// not fit), at most max_tokens / 2 + 1 (every segment has <cls> and <eos>), at least 1.
int nv_attn_plan_segments(int max_tokens, int seq_len);
// The segments per call of a backward (attention_cudnn.cu): the whole batch (n_segs) when its
// graph fits (fits(ctx, 0) == 1); else the largest power of two b, 8 <= b < nv_attn_pow2(n_segs,
// 8), whose graph fits (fits(ctx, b) == 1); 0 when none does, or at once when the whole batch's
// graph cannot be built at all (fits(ctx, 0) < 0: no smaller one can either). forced > 0
// (tests, benchmarks): chunks of at most `forced` segments whenever n_segs exceeds it.
int nv_attn_plan_chunk(int n_segs, int forced, int (*fits)(void *ctx, int b), void *ctx);
// One line for logs: "fwd B<=128 S<=1024 n=16384 H=16 dh=64 window 128".
void nv_attn_key_str(const nv_attn_key *k, char *buf, size_t size);

// cuDNN's diagonal band (top-left aligned, per segment): key j of query i is kept iff
// j - i <= right and i - j < left. For the design's |i - j| <= window/2:
// left = window/2 + 1, right = window/2. Returns 0 for a global key (no band).
int nv_attn_band(int window, int64_t *left, int64_t *right);
// cuDNN's rule above as a predicate (the tests check it against the design's).
int nv_attn_band_keeps(int64_t i, int64_t j, int64_t left, int64_t right);

// A small cache: key -> an opaque entry (a cuDNN graph and its workspace size).
typedef struct nv_attn_cache {
    nv_attn_key *keys;
    void **vals;
    int n, cap;
} nv_attn_cache;
void *nv_attn_cache_find(const nv_attn_cache *c, const nv_attn_key *k);
// Adds (k, v); k must not be there yet. Returns 0, or -1 when out of memory.
int nv_attn_cache_put(nv_attn_cache *c, const nv_attn_key *k, void *v);
// Frees the arrays (not the entries: the caller owns those, see nv_attn_cache_at).
void nv_attn_cache_free(nv_attn_cache *c);

// The implementation for one layer kind and direction. mode: [train] attention;
// cudnn_ok: cuDNN built a deterministic graph for the shape (why_not says why not);
// t_native / t_cudnn: measured milliseconds (auto only; < 0 = not measured).
// Returns NV_ATTN_MODE_CUDNN or NV_ATTN_MODE_NATIVE, or -1 when mode is cudnn and cuDNN
// cannot serve the shape (msg then holds the error and its hint). msg: one line saying what
// was chosen and why (printed once per layer kind and direction).
int nv_attn_choose(int mode, int cudnn_ok, const char *why_not, double t_native, double t_cudnn,
                   const char *what, char *msg, size_t size);

#ifdef __cplusplus
}
#endif
