// planner.h - the whole-job view of a config (design sections 8 and 11): memory per rank at
// the configured layout, communication per step, an estimated step time, and the trainer's
// --dry-run report. Pure arithmetic on the whole nv_config: nothing is allocated on a
// device, so a 30B config can be sized on a laptop. Parameter counts and model FLOPs are
// the model's (model/flops.h).
#pragma once
#include <stdint.h>
#include <stdio.h>
#include "model/flops.h"
#include "train/config.h"

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

// ----------------------------------------------------------------------------------------
// Communication per step and an estimated step time (docs/scaling.md).
//
// Bytes are what ONE rank sends (and, symmetrically, receives) per optimizer step, with ring
// algorithms over a group of n ranks:
//   data-parallel gradient sum, fp32 gradients of G = 4 P_local bytes:
//     all-reduce (zero1 off)             2 (n-1)/n G
//     zero1: reduce-scatter of the fp32 gradients (n-1)/n G + all-gather of the fp32
//            masters (n-1)/n G           = the same 2 (n-1)/n G, in two phases
//   tensor-parallel activation all-reduces, per micro-batch: 2 per layer forward (after W_o
//   and W_out) + 2 backward (the conjugates of the column-parallel splits), + 2 more per
//   layer with [train] recompute (the forward runs again); each of micro-batch x seq x d
//   elements of the activation type (bf16: 2 bytes; 4 on cpu or fp32), ring 2 (t-1)/t.
// Bandwidths are per GPU, one direction. Assumptions of the step time:
//   compute   = model FLOPs / (world x peak x mfu)  (x 4/3 with recompute)
//   tensor    = TP bytes / bw(tensor group); on the compute stream, never hidden
//   data      = DP bytes / bw(data group); zero1 off: bucketed and overlapped with the
//               backward of the last micro-batch (2/3 of its compute), only the excess is
//               exposed; zero1 on: reduce-scatter after backward and all-gather after the
//               optimizer, fully exposed (as implemented)
//   bw(group) = intra_bw (NVLink) when the group's ranks share a node, else inter_bw (each
//               GPU's own NIC; a ring crossing nodes is limited by its slowest link)
//   step      = compute + tensor + exposed data; latency terms are ignored (large messages)
typedef struct nv_hw_model {
    double peak_flops;    // dense bf16 FLOP/s per GPU
    double mfu;           // fraction of peak the compute reaches
    double intra_bw;      // bytes/s per GPU inside a node (NVLink, effective)
    double inter_bw;      // bytes/s per GPU across nodes (InfiniBand)
    int gpus_per_node;
    double dp_overlap;    // fraction of the last micro-batch's compute the buckets can hide
                          // behind (zero1 off): its backward, 2/3
} nv_hw_model;
// H100 SXM: 989e12 FLOP/s bf16 dense at 40% MFU; NVLink 4 450 GB/s per direction, ~370
// effective; 8 x 400 Gb/s NICs per 8-GPU node = 50 GB/s per GPU; 8 GPUs per node.
void nv_hw_model_h100(nv_hw_model *h);

typedef struct nv_comm_estimate {
    int tensor, data, accum, zero1;
    double tokens;          // tokens per step (global-batch x seq-length, rows full)
    double flops;           // model FLOPs per step (as the dry run counts them)
    double grad_bytes;      // fp32 gradient buffer per rank, 4 P_local
    double dp_bytes;        // data-parallel bytes per rank per step
    double tp_bytes;        // tensor-parallel bytes per rank per step
    double tp_calls;        // tensor-parallel all-reduces per step
    double tp_msg_bytes;    // bytes of one tensor-parallel all-reduce buffer
    double dp_bw, tp_bw;    // bandwidths used (bytes/s)
    int dp_cross_node, tp_cross_node;
    double t_compute, t_tp, t_dp, t_dp_exposed, t_step; // seconds
    double tokens_per_s, mfu_effective;
} nv_comm_estimate;
void nv_comm_per_step(const nv_config *c, int world, const nv_hw_model *hw, nv_comm_estimate *out);

// The --dry-run table: parameters, layout, memory per rank, model FLOPs per step, then the
// communication per step and the estimated step time (nv_hw_model_h100) for cuda/auto.
// The last line is "summary: key=value ..." for scripts (tools/scaling_table.sh).
void nv_dry_run_report(const nv_config *c, int world, FILE *f);
