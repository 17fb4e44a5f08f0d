// flops.h - sizes of the design section 6 model: parameter count, model FLOPs per step
// (design section 11), memory per rank, and the trainer's --dry-run report.
//
// Pure arithmetic on the config: nothing is allocated on a device, so a 30B config can be
// sized on a laptop.
#pragma once
#include <stdint.h>
#include <stdio.h>
#include "train/config.h"

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

// Per-rank memory in bytes for [data] micro-batch x seq-length at the configured layout.
// Assumes: CUDA mixed precision (bf16 compute copy, fp32 masters, fp32 gradient buffer,
// fp32 Adam) unless device = cpu or precision = fp32 (everything fp32, weights are the
// masters); device auto is sized as cuda. Masters and Adam moments are divided by the data
// degree under zero1; gradients are not (ZeRO-1). Attention keeps only q,k,v, its output
// and the log-sum-exp (no n^2 probabilities). An estimate: allocator slack is not modelled.
typedef struct nv_memory_estimate {
    int tensor, data;        // layout
    int mixed;               // 1: bf16 compute copy + fp32 masters
    int64_t params_local;    // parameters per rank
    double weights;          // compute copy (fp32 run: the weights themselves)
    double masters;          // fp32 masters beyond the compute copy (0 in an fp32 run)
    double grads;            // fp32 gradient accumulation buffer
    double adam;             // fp32 first and second moments
    double act_stored;       // activations saved for backward, recompute off
    double act_recompute;    // the same with [train] recompute (layer inputs + one layer)
    double activations;      // the one of the two that the config selects
    double workspace;        // activation-gradient scratch, GEMM workspace, comm buckets, context
    double total;            // weights + masters + grads + adam + activations + workspace
} nv_memory_estimate;
void nv_memory_per_rank(const nv_config *c, int world, nv_memory_estimate *out);

// The --dry-run table: parameters, layout, memory per rank, model FLOPs per step.
void nv_dry_run_report(const nv_config *c, int world, FILE *f);
