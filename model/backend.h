// backend.h - the kernel interface. The CPU backend (model/cpu/) is the reference; the CUDA
// backend (model/cuda/) implements the same table and is tested against it op by op.
//
// Four instances implement it (act / state types):
//   cpu        float / float     the fp32 reference that trains on CPU
//   cpu-f64    double / double   the same op code in double, for finite-difference checks
//   cpu-bf16   bf16 / float      the CUDA backend's twin on CPU: same types, same roundings
//   cuda       bf16 / float      the GPU
//
// Conventions (n = tokens of a micro-batch = rows * seq_len, d = hidden, V = vocab):
// - Pointers are device pointers of the backend. Every pointer below is marked with its
//   type, and the two must never be mixed up (the review's C1: LayerNorm weights passed as
//   fp32 masters to kernels that read bf16). cpu-bf16 checks every op argument against the
//   type its buffer was declared with (`declare`) and stops with the op and argument named.
//     [act]    activations, their gradients, and the compute copy of EVERY weight an op
//              reads (matmul W and bias, LayerNorm w, embeddings): the backend's act type,
//              act_bytes wide (float, double or bf16).
//     [state]  master weights, weight gradients (dW, dw, dbias, dE), LayerNorm mean/rstd,
//              attention lse, per-row losses, Adam moments: state_bytes wide (float or
//              double). Weight gradients always accumulate in state precision.
//     [f64]    small device arrays of doubles (reductions read back once per step).
//     [i32]    integer inputs (token ids, positions, segment tables, gather indices).
// - Weight gradients (dW, dw, dbias, dE) ACCUMULATE (+=): micro-batches add up.
//   Activation gradients are OVERWRITTEN, except layernorm_bwd's dx which ADDS
//   (it lands on the residual stream).
// - Linear layers are row-major [out, in] like torch.nn.Linear: y = x W^T (+ b).
//
// Rounding (the precision contract of design section 3, in one place): every op computes
// in fp32 (double on cpu-f64) from its act inputs and rounds each act output ONCE, to
// nearest even, when it stores it; state outputs are stored in state precision. The
// exceptions and the rounding points inside fused ops, which cpu-bf16 reproduces:
//   residual_layernorm_fwd  resid_out is rounded first; the norm reads the rounded value
//   layernorm_bwd           dx = round(dx + ddx): one rounding of the sum
//   scatter_add_rows        dst = round(dst + src)
//   matmul_fwd              the bias is added in fp32 before the one rounding
//   attention_fwd           P = exp(s - running max) is rounded to act before P V; the row
//                           sum l is of the unrounded P; out = round((P V) / l)
//   attention_bwd           P and dS = P (dP - D) are rounded to act before the dV, dK, dQ
//                           products; dK, dV and dQ accumulate in fp32, rounded once
//   softmax_ce              logits are act; the loss is state; dlogits rounded once
//   rope                    cos/sin are fp32 values of a double-precision angle
//   adamw                   w_act = round(w) after the fp32 update
//   upload_act              double -> float -> act (two roundings, as the host converters)
#pragma once
#include <stddef.h>
#include <stdint.h>

// buffer types for `declare` (see above)
enum { NV_T_ACT = 1, NV_T_STATE = 2, NV_T_F64 = 3, NV_T_I32 = 4 };

// The largest shapes a model will run, given once at creation (prepare): a backend sizes
// its scratch and tables here, so nothing is allocated or freed inside a step.
typedef struct nv_backend_plan {
    int max_tokens;          // rows * seq_len of the largest micro-batch
    int seq_len;             // the longest row: segments and positions (< seq_len) fit in it
    int d, H, dh, f, V;      // local (tensor-parallel) sizes: d full, H heads, f ffn
    double theta[2];         // RoPE thetas (global, local)
    int local_window;        // the local layers' window
    int max_segs;            // most segments in a micro-batch (<= max_tokens)
} nv_backend_plan;

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
    const char *name;  // "cpu", "cpu-f64", "cpu-bf16" or "cuda"
    size_t act_bytes;   // 4 (float), 2 (bf16) or 8 (double)
    size_t state_bytes; // 4 (float) or 8 (double)

    // --- memory -----------------------------------------------------------------
    void *(*alloc)(size_t bytes); // zeroed
    void (*free)(void *p);
    void (*to_device)(void *dst, const void *src, size_t bytes);
    void (*to_host)(void *dst, const void *src, size_t bytes); // waits for the device
    void (*zero)(void *p, size_t bytes);
    void (*sync)(void);
    // host double <-> device [act] / [state] tensors (conversion on the way)
    void (*upload_act)(void *dst, const double *src, size_t n);
    void (*download_act)(double *dst, const void *src, size_t n);
    void (*upload_state)(void *dst, const double *src, size_t n);
    void (*download_state)(double *dst, const void *src, size_t n);
    // [act] dst = round([state] src): the compute copy of the weights
    void (*state_to_act)(void *dst, const void *src, size_t n);
    // Optional (NULL = nothing to do): size scratch and tables for the largest shapes, once.
    void (*prepare)(const nv_backend_plan *p);
    // Optional (NULL = no checks): the type of the buffer [p, p + bytes), NV_T_*; ops check
    // their arguments against it. forget drops every declaration inside [p, p + bytes).
    void (*declare)(const void *p, size_t bytes, int type);
    void (*forget)(const void *p, size_t bytes);

    // --- embedding: out[i] = E_tok[tok[i]] + (E_struct ? E_struct[sin[i]] : 0) -------
    // out [act], E_tok E_struct [act], tok sin [i32]
    void (*embed_fwd)(void *out, const int32_t *tok, const int32_t *sin, const void *E_tok,
                      const void *E_struct, int n, int d);
    // dE_tok[tok[i]] += dout[i]; dE_struct[sin[i]] += dout[i] (if dE_struct). Deterministic.
    // dE_tok dE_struct [state], dout [act]
    void (*embed_bwd)(void *dE_tok, void *dE_struct, const void *dout, const int32_t *tok,
                      const int32_t *sin, int n, int d, int V);

    // --- LayerNorm, weight and no bias, eps 1e-5 ------------------------------------
    // out x w [act], mean rstd [state]
    void (*layernorm_fwd)(void *out, void *mean, void *rstd, const void *x, const void *w,
                          int n, int d);
    // residual add fused with the next norm: resid_out = a + b; out = LN(resid_out)
    // resid_out out a b w [act], mean rstd [state]
    void (*residual_layernorm_fwd)(void *resid_out, void *out, void *mean, void *rstd,
                                   const void *a, const void *b, const void *w, int n, int d);
    // dx += dLN/dx(dout); dw += sum over rows.  dx dout x w [act], dw mean rstd [state]
    void (*layernorm_bwd)(void *dx, void *dw, const void *dout, const void *x, const void *w,
                          const void *mean, const void *rstd, int n, int d);
    void (*add)(void *out, const void *a, const void *b, size_t n); // all [act]

    // --- linear: out[n,o] = inp[n,i] W[o,i]^T (+ bias[o]) -----------------------------
    // out inp W bias [act]
    void (*matmul_fwd)(void *out, const void *inp, const void *W, const void *bias, int n,
                       int in_dim, int out_dim);
    // dinp = dout W (overwrite; skipped if NULL); dW += dout^T inp; dbias += sum(dout).
    // dinp dout inp W [act], dW dbias [state]
    void (*matmul_bwd)(void *dinp, void *dW, void *dbias, const void *dout, const void *inp,
                       const void *W, int n, int in_dim, int out_dim);

    // --- RoPE, rotate-half, in place on the q and k thirds of qkv [n, 3d] [act] --------
    void (*rope_fwd)(void *qkv, const int32_t *pos, int n, int H, int dh, double theta);
    void (*rope_bwd)(void *dqkv, const int32_t *pos, int n, int H, int dh, double theta);

    // --- attention over packed segments -------------------------------------------
    // qkv [n, 3d] rows q|k|v, head-major [act]; out [n, d] [act]; lse [n, H] (natural log)
    // [state]. window 0 = global; else key j visible to query i iff |i-j| <= window/2.
    void (*attention_fwd)(void *out, void *lse, const void *qkv, const nv_attn_segs *segs,
                          int n, int H, int dh, int window);
    // dqkv dout qkv out [act], lse [state]
    void (*attention_bwd)(void *dqkv, const void *dout, const void *qkv, const void *out,
                          const void *lse, const nv_attn_segs *segs, int n, int H, int dh,
                          int window);

    // --- activations (all [act]) -------------------------------------------------------
    // gu [n, 2f] = gate | up; out[n, f] = gelu_tanh(gate) * up
    void (*geglu_fwd)(void *out, const void *gu, int n, int f);
    void (*geglu_bwd)(void *dgu, const void *dout, const void *gu, int n, int f);
    void (*gelu_fwd)(void *out, const void *x, size_t n);
    void (*gelu_bwd)(void *dx, const void *dout, const void *x, size_t n);

    // --- selected positions -------------------------------------------------------
    // out[i] = in[idx[i]] for i < m (rows of width d); out in [act]
    void (*gather_rows)(void *out, const void *in, const int32_t *idx, int m, int d);
    // dst[idx[i]] += src[i]; idx distinct; dst src [act]
    void (*scatter_add_rows)(void *dst, const void *src, const int32_t *idx, int m, int d);
    // Fused softmax cross-entropy: loss[i] = -log softmax(logits[i])[target[i]];
    // dlogits[i] = (softmax - onehot) * grad_scale. Softmax in float.
    // loss [state], dlogits logits [act]
    void (*softmax_ce)(void *loss, void *dlogits, const void *logits, const int32_t *target,
                       int m, int V, double grad_scale);
    // acc[0] += sum_i loss[i] (in row order), acc[1] += #rows whose first argmax of logits is
    // target[i]. Stays on the device: the model reads it back once per step.
    // acc [f64, 2], loss [state], logits [act]
    void (*ce_stats)(double *acc, const void *loss, const void *logits, const int32_t *target,
                     int m, int V);

    // --- optimizer (all [state] but w_act [act] and dst [f64]) -----------------------
    // Sum of squares of a state buffer, in a fixed reduction order (double accumulation),
    // returned to the host (waits). A NaN or Inf anywhere makes it non-finite.
    double (*sumsq)(const void *x, size_t n);
    // The same into one device double, without waiting: the gradient check issues one per
    // tensor and reads all of them back at once.
    void (*sumsq_to)(double *dst, const void *x, size_t n);
    void (*scale)(void *x, double s, size_t n);
    // AdamW on one tensor; writes the act copy w_act when non-NULL. With g' = g*gscale:
    //   m = b1 m + (1-b1) g';  v = b2 v + (1-b2) g'^2
    //   w = w - lr * ( (m/bc1) / (sqrt(v/bc2) + eps) + wd * w )     (bc_i = 1 - b_i^t)
    void (*adamw)(void *w, void *m, void *v, const void *g, void *w_act, size_t n, double lr,
                  double beta1, double beta2, double eps, double wd, double bc1, double bc2,
                  double gscale);
} nv_backend;

const nv_backend *nv_backend_cpu(void);
const nv_backend *nv_backend_cpu_f64(void);  // tests: everything in double
const nv_backend *nv_backend_cpu_bf16(void); // the CUDA backend's twin (bf16 act, fp32 state)
// NULL when nvwa was built without CUDA or no GPU is usable; *why says which.
const nv_backend *nv_backend_cuda(const char **why);
