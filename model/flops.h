// flops.h - sizes of the design section 6 model: parameter counts and model FLOPs per step
// (design section 11). The whole-job planning (memory per rank, communication, the dry run)
// is train/planner.h's.
//
// Pure arithmetic on [model]: nothing is allocated on a device, so a 30B config can be
// sized on a laptop.
#pragma once
#include <stdint.h>
#include <stdio.h>
#include "model/model_config.h"

// Exact parameter count of the full (unsharded) model, design section 6.
int64_t nv_param_count(const nv_model_config *m);
// N of design section 11: L(4d^2 + 3df), the weights of the layer matmuls.
int64_t nv_param_count_matmul(const nv_model_config *m);
// Parameters one rank holds at tensor-parallel degree `tensor` (layer matmuls split,
// norms, embeddings and heads replicated).
int64_t nv_param_count_local(const nv_model_config *m, int tensor);

// K(n): visible (query, key) pairs of one n-token sequence; window 0 = global (n^2), else
// key j visible to query i iff |i-j| <= window/2 = r. Exact: n^2 when n <= r + 1, else
// n(2r+1) - r(r+1). (Design section 11 switches at n > 2r; for r < n <= 2r that
// overcounts, the clipped windows at both ends already differ from n^2 there.)
int64_t nv_attn_pairs(int64_t n, int window);

// Model FLOPs of one training step (forward + backward = 3 x forward, matmuls only):
//   6 N T  +  12 d sum_layers sum_seqs K_l(n_i)  +  heads
//   heads = 6 T_sel (d^2 + d V)   MLM head: dense + tied decoder, on the selected positions
//         + 6 T (3d)              structure head, on every real token
// seq_lens: the attention segments of the whole global step (<cls> seq <eos>, so T counts
// the specials; pads never count); n_selected: MLM positions of the step (T_sel).
// Recomputation does not change model FLOPs (MFU convention).
double nv_flops_per_step_sel(const nv_model_config *m, const int32_t *seq_lens, long n_seqs,
                             long n_selected);
// The same with T_sel = NV_FLOPS_MASK_RATE x T (the design's mask-rate) when the selected
// count is not at hand; the head term is ~0.1% of the total at 1.6B, ~1% at tiny sizes.
#define NV_FLOPS_MASK_RATE 0.15
double nv_flops_per_step(const nv_model_config *m, const int32_t *seq_lens, long n_seqs);
// The same from totals when no batch is at hand: tokens_per_step real tokens in sequences
// of mean_len tokens each (fractional counts allowed), mask_rate of them selected.
double nv_flops_estimate(const nv_model_config *m, double tokens_per_step, double mean_len,
                         double mask_rate);

// Layers of each kind: global (full attention) and local (window).
void nv_count_layers(const nv_model_config *m, int *n_global, int *n_local);
// Model FLOPs of T tokens in full rows of seq_len tokens each (one sequence per row), T_sel
// of them selected for the MLM head: the layer matmuls, attention and heads separately.
void nv_flops_full_rows(const nv_model_config *m, double T, int seq_len, double T_sel,
                        double *matmul, double *attn, double *heads);
