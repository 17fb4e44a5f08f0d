// backend.h - the kernel interface. The CPU backend (model/cpu/) is the reference; the CUDA
// backend (model/cuda/) implements the same table and is tested against it op by op.
//
// Conventions (n = tokens of a micro-batch = rows * seq_len, d = hidden, V = vocab):
// - Pointers are device pointers of the backend.
// - "act" tensors (activations, their gradients, the compute copy of weights) have the
//   backend's activation type: float on CPU, bf16 on CUDA (act_bytes says which).
// - "state" tensors (master weights, weight gradients, LayerNorm statistics, attention
//   log-sum-exp, losses, Adam moments) have the backend's state type: float on CPU and
//   CUDA (state_bytes = 4). A third instance, cpu-f64 (act = state = double), exists for
//   the gradient tests: the same code path checked against finite differences in double.
//   Tensors are void* so that one model.c serves all three.
// - Weight gradients (dW, dw, dbias, dE) ACCUMULATE (+=): micro-batches add up.
//   Activation gradients are OVERWRITTEN, except layernorm_bwd's dx which ADDS
//   (it lands on the residual stream).
// - Integer inputs (token ids, positions, segment tables, gather indices) are int32
//   device arrays.
// - Linear layers are row-major [out, in] like torch.nn.Linear: y = x W^T (+ b).
#pragma once
#include <stddef.h>
#include <stdint.h>

typedef struct nv_attn_segs {
    // A packed micro-batch's attention segments over the flat token index space: segment s
    // covers tokens start[s] .. start[s]+len[s]-1 and attends only within itself. Tokens in
    // no segment are pads: never attended, their outputs and gradients are zero.
    const int32_t *start;  // [n_segs], increasing (device array)
    const int32_t *len;    // [n_segs] (device array)
    int n_segs;            // host value
    int max_len;           // max of len[] (host value, for launch bounds)
} nv_attn_segs;

typedef struct nv_backend {
    const char *name;  // "cpu" or "cuda"
    size_t act_bytes;   // 4 (float), 2 (bf16) or 8 (double)
    size_t state_bytes; // 4 (float) or 8 (double)

    // --- memory -----------------------------------------------------------------
    void *(*alloc)(size_t bytes); // zeroed
    void (*free)(void *p);
    void (*to_device)(void *dst, const void *src, size_t bytes);
    void (*to_host)(void *dst, const void *src, size_t bytes);
    void (*zero)(void *p, size_t bytes);
    void (*sync)(void);
    // host double <-> device act / state tensors (conversion on the way)
    void (*upload_act)(void *dst, const double *src, size_t n);
    void (*download_act)(double *dst, const void *src, size_t n);
    void (*upload_state)(void *dst, const double *src, size_t n);
    void (*download_state)(double *dst, const void *src, size_t n);
    // state -> act copy of weights (CPU f32/f64: plain copy)
    void (*state_to_act)(void *dst, const void *src, size_t n);

    // --- embedding: out[i] = E_tok[tok[i]] + (E_struct ? E_struct[sin[i]] : 0) -------
    void (*embed_fwd)(void *out, const int32_t *tok, const int32_t *sin, const void *E_tok,
                      const void *E_struct, int n, int d);
    // dE_tok[tok[i]] += dout[i]; dE_struct[sin[i]] += dout[i] (if dE_struct). Deterministic.
    void (*embed_bwd)(void *dE_tok, void *dE_struct, const void *dout, const int32_t *tok,
                      const int32_t *sin, int n, int d, int V);

    // --- LayerNorm, weight and no bias, eps 1e-5 ------------------------------------
    void (*layernorm_fwd)(void *out, void *mean, void *rstd, const void *x, const void *w,
                          int n, int d);
    // residual add fused with the next norm: resid_out = a + b; out = LN(resid_out)
    void (*residual_layernorm_fwd)(void *resid_out, void *out, void *mean, void *rstd,
                                   const void *a, const void *b, const void *w, int n, int d);
    // dx += dLN/dx(dout); dw += sum over rows.
    void (*layernorm_bwd)(void *dx, void *dw, const void *dout, const void *x, const void *w,
                          const void *mean, const void *rstd, int n, int d);
    void (*add)(void *out, const void *a, const void *b, size_t n);

    // --- linear: out[n,o] = inp[n,i] W[o,i]^T (+ bias[o]) -----------------------------
    void (*matmul_fwd)(void *out, const void *inp, const void *W, const void *bias, int n,
                       int in_dim, int out_dim);
    // dinp = dout W (overwrite; skipped if NULL); dW += dout^T inp; dbias += sum(dout).
    void (*matmul_bwd)(void *dinp, void *dW, void *dbias, const void *dout, const void *inp,
                       const void *W, int n, int in_dim, int out_dim);

    // --- RoPE, rotate-half, in place on the q and k thirds of qkv [n, 3d] ----------
    void (*rope_fwd)(void *qkv, const int32_t *pos, int n, int H, int dh, double theta);
    void (*rope_bwd)(void *dqkv, const int32_t *pos, int n, int H, int dh, double theta);

    // --- attention over packed segments -------------------------------------------
    // qkv [n, 3d] rows q|k|v, head-major; out [n, d]; lse [n, H] (natural log).
    // window 0 = global; else key j visible to query i iff |i-j| <= window/2.
    void (*attention_fwd)(void *out, void *lse, const void *qkv, const nv_attn_segs *segs,
                          int n, int H, int dh, int window);
    void (*attention_bwd)(void *dqkv, const void *dout, const void *qkv, const void *out,
                          const void *lse, const nv_attn_segs *segs, int n, int H, int dh,
                          int window);

    // --- activations -----------------------------------------------------------------
    // gu [n, 2f] = gate | up; out[n, f] = gelu_tanh(gate) * up
    void (*geglu_fwd)(void *out, const void *gu, int n, int f);
    void (*geglu_bwd)(void *dgu, const void *dout, const void *gu, int n, int f);
    void (*gelu_fwd)(void *out, const void *x, size_t n);
    void (*gelu_bwd)(void *dx, const void *dout, const void *x, size_t n);

    // --- selected positions -------------------------------------------------------
    // out[i] = in[idx[i]] for i < m (rows of width d)
    void (*gather_rows)(void *out, const void *in, const int32_t *idx, int m, int d);
    // dst[idx[i]] += src[i]; idx distinct
    void (*scatter_add_rows)(void *dst, const void *src, const int32_t *idx, int m, int d);
    // Fused softmax cross-entropy: loss[i] = -log softmax(logits[i])[target[i]] (state type);
    // dlogits[i] = (softmax - onehot) * grad_scale. Softmax in float.
    void (*softmax_ce)(void *loss, void *dlogits, const void *logits, const int32_t *target,
                       int m, int V, double grad_scale);

    // --- optimizer ------------------------------------------------------------------
    // Sum of squares of a state buffer, in a fixed reduction order (double accumulation).
    double (*sumsq)(const void *x, size_t n);
    void (*scale)(void *x, double s, size_t n);
    // Non-zero when x holds a NaN or an Inf.
    int (*nonfinite)(const void *x, size_t n);
    // AdamW on one tensor; writes the act copy w_act when non-NULL. With g' = g*gscale:
    //   m = b1 m + (1-b1) g';  v = b2 v + (1-b2) g'^2
    //   w = w - lr * ( (m/bc1) / (sqrt(v/bc2) + eps) + wd * w )     (bc_i = 1 - b_i^t)
    void (*adamw)(void *w, void *m, void *v, const void *g, void *w_act, size_t n, double lr,
                  double beta1, double beta2, double eps, double wd, double bc1, double bc2,
                  double gscale);
} nv_backend;

const nv_backend *nv_backend_cpu(void);
const nv_backend *nv_backend_cpu_f64(void); // tests: everything in double
// NULL when nvwa was built without CUDA or no GPU is usable; *why says which.
const nv_backend *nv_backend_cuda(const char **why);
