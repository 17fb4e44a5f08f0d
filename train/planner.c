// planner.c - the whole-job view of a config: memory per rank, communication per step, the
// estimated step time and the --dry-run report (train/planner.h). The model's own sizes
// (parameters, FLOPs) are model/flops.c's.
#include "train/planner.h"

#include <math.h>
#include <string.h>

#define H100_PEAK_BF16 989e12 // dense bf16 FLOP/s, design section 11

// ----------------------------------------------------------------------------
// memory

// world = tensor x data (a world smaller than tensor counts as one data rank)
static void layout_of(const nv_config *c, int world, int *t, int *dp) {
    *t = c->parallel.tensor > 0 ? c->parallel.tensor : 1;
    *dp = world / *t > 0 ? world / *t : 1;
}

// bf16 compute copy + fp32 masters (auto is sized as cuda)
static int mixed_of(const nv_config *c) {
    return c->train.device != NV_DEVICE_CPU && c->train.precision == NV_PREC_BF16;
}

void nv_memory_per_rank(const nv_config *c, int world, nv_memory_estimate *e) {
    const nv_model_config *m = &c->model;
    memset(e, 0, sizeof *e);
    int t, dp;
    layout_of(c, world, &t, &dp);
    e->tensor = t;
    e->data = dp;
    e->mixed = mixed_of(c);
    int on_gpu = c->train.device != NV_DEVICE_CPU;
    double b = e->mixed ? 2 : 4; // bytes of an activation / compute-copy element
    double P = (double)nv_param_count_local(m, t);
    e->params_local = (int64_t)P;
    double shard = c->parallel.zero1 ? dp : 1;

    e->weights = b * P;
    e->masters = e->mixed ? 4 * P / shard : 0;
    e->grads = 4 * P;
    e->adam = 8 * P / shard;

    double d = m->hidden_size, f = m->ffn_hidden_size, H = m->num_attn_heads, V = m->vocab_size;
    double L = m->num_layers;
    double tokens = (double)c->data.micro_batch * c->data.seq_length;
    double sel = c->data.mask_rate;
    // Saved per token per layer: residual in, LN_attn out, qkv, attention out, residual mid,
    // LN_mlp out, gate|up, geglu out; fp32 LN statistics (2 norms x mean, rstd) and lse.
    double layer = (4 * d + (4 * d + 3 * f) / t) * b + 16 + 4 * H / t;
    // Outside the layers: embedding sum and LN, final LN; the MLM head on selected
    // positions (gathered h, dense, gelu, LN out, stats, fp32 logits and their gradient);
    // the structure head's fp32 logits and gradient on every token.
    double outside = 2 * d * b + 16 + sel * (4 * d * b + 8 + 2 * V * 4) + 2 * 3 * 4;
    e->act_stored = tokens * (L * layer + outside);
    e->act_recompute = tokens * (L * d * b + layer + outside);
    e->activations = c->train.recompute ? e->act_recompute : e->act_stored;

    // Backward scratch: residual-stream gradient (2 buffers) and the widest intermediate
    // gradient (gate|up plus geglu out, or qkv); token/label arrays (6 int32 per token).
    double scratch = tokens * ((2 * d + 3 * fmax(f, d) / t) * b + 24);
    double gemm_ws = on_gpu ? 32.0 * (1 << 20) : 0;            // cuBLASLt workspace
    double buckets = dp > 1 ? 2 * 32.0 * (1 << 20) : 0;        // data-parallel grad buckets
    double context = on_gpu ? 512.0 * (1 << 20) : 0;           // CUDA context, cuDNN, NCCL
    e->workspace = scratch + gemm_ws + buckets + context;
    e->total = e->weights + e->masters + e->grads + e->adam + e->activations + e->workspace;
}

// ----------------------------------------------------------------------------
// communication and estimated step time (flops.h states the formulas and assumptions)

void nv_hw_model_h100(nv_hw_model *h) {
    h->peak_flops = H100_PEAK_BF16;
    h->mfu = 0.40;
    h->intra_bw = 370e9; // NVLink 4: 450 GB/s per direction, ~370 GB/s reached by NCCL rings
    h->inter_bw = 50e9;  // 8 x 400 Gb/s InfiniBand per 8-GPU node: 50 GB/s per GPU
    h->gpus_per_node = 8;
    h->dp_overlap = 2.0 / 3.0;
}

// Model FLOPs of one step of full rows (model/flops.h)
static void dry_flops(const nv_config *c, double *T, double *matmul, double *attn, double *heads) {
    const nv_data_config *d = &c->data;
    *T = (double)d->global_batch * d->seq_length;
    nv_flops_full_rows(&c->model, *T, d->seq_length, d->mask_rate * *T, matmul, attn, heads);
}

void nv_comm_per_step(const nv_config *c, int world, const nv_hw_model *hw, nv_comm_estimate *e) {
    const nv_model_config *m = &c->model;
    memset(e, 0, sizeof *e);
    int t, dp;
    layout_of(c, world, &t, &dp);
    e->tensor = t;
    e->data = dp;
    e->zero1 = c->parallel.zero1 && dp > 1;
    e->accum = c->data.micro_batch * dp > 0 ? c->data.global_batch / (c->data.micro_batch * dp) : 0;
    const int mixed = mixed_of(c);
    const double act_b = mixed ? 2 : 4;

    double matmul, attn, heads;
    dry_flops(c, &e->tokens, &matmul, &attn, &heads);
    e->flops = matmul + attn + heads;

    // data parallel: ring all-reduce, or reduce-scatter + all-gather (same bytes)
    e->grad_bytes = 4.0 * (double)nv_param_count_local(m, t);
    e->dp_bytes = dp > 1 ? 2.0 * (dp - 1) / dp * e->grad_bytes : 0;
    // tensor parallel: 4 all-reduces per layer per micro-batch (6 with recompute)
    e->tp_msg_bytes = (double)c->data.micro_batch * c->data.seq_length * m->hidden_size * act_b;
    e->tp_calls = t > 1 ? (double)e->accum * m->num_layers * (c->train.recompute ? 6 : 4) : 0;
    e->tp_bytes = t > 1 ? e->tp_calls * 2.0 * (t - 1) / t * e->tp_msg_bytes : 0;

    // tensor groups are consecutive ranks; a data group strides by t over the whole world
    e->tp_cross_node = t > hw->gpus_per_node;
    e->dp_cross_node = dp > 1 && world > hw->gpus_per_node;
    e->tp_bw = e->tp_cross_node ? hw->inter_bw : hw->intra_bw;
    e->dp_bw = e->dp_cross_node ? hw->inter_bw : hw->intra_bw;

    e->t_compute = e->flops / ((double)world * hw->peak_flops * hw->mfu) *
                   (c->train.recompute ? 4.0 / 3.0 : 1.0);
    e->t_tp = e->tp_bytes / e->tp_bw;
    e->t_dp = e->dp_bytes / e->dp_bw;
    if (e->zero1 || e->accum <= 0) {
        e->t_dp_exposed = e->t_dp;
    } else {
        double hide = hw->dp_overlap * e->t_compute / e->accum;
        e->t_dp_exposed = e->t_dp > hide ? e->t_dp - hide : 0;
    }
    e->t_step = e->t_compute + e->t_tp + e->t_dp_exposed;
    e->tokens_per_s = e->t_step > 0 ? e->tokens / e->t_step : 0;
    e->mfu_effective = e->t_step > 0 ? e->flops / (e->t_step * world * hw->peak_flops) : 0;
}

// ----------------------------------------------------------------------------
// report

// 1234567 -> "1,234,567"
static const char *commas(char *buf, size_t n, int64_t v) {
    char raw[32];
    snprintf(raw, sizeof raw, "%lld", (long long)(v < 0 ? -v : v));
    size_t len = strlen(raw), o = 0;
    if (v < 0 && o + 1 < n) buf[o++] = '-';
    for (size_t i = 0; i < len && o + 2 < n; i++) {
        if (i && (len - i) % 3 == 0) buf[o++] = ',';
        buf[o++] = raw[i];
    }
    buf[o] = 0;
    return buf;
}


void nv_dry_run_report(const nv_config *c, int world, FILE *f) {
    const nv_model_config *m = &c->model;
    const nv_data_config *d = &c->data;
    nv_memory_estimate e;
    nv_memory_per_rank(c, world, &e);
    char b1[32], b2[32], b3[32];
    int ng, nl;
    nv_count_layers(m, &ng, &nl);
    static const char *const dev[] = {"cpu", "cuda", "auto"};
    int accum = d->micro_batch * e.data > 0 ? d->global_batch / (d->micro_batch * e.data) : 0;

    fprintf(f, "nvwa dry run: %s\n\n", c->source[0] ? c->source : "(config)");
    fprintf(f, "model       %d layers (%d global, %d local, window %d), hidden %d, ffn %d, "
               "heads %d (dim %d), vocab %d\n", m->num_layers, ng, nl, m->local_window,
            m->hidden_size, m->ffn_hidden_size, m->num_attn_heads,
            m->num_attn_heads ? m->hidden_size / m->num_attn_heads : 0, m->vocab_size);
    fprintf(f, "parameters  %s total (%.3g), %s in layer matmuls (N), %s per rank\n",
            commas(b1, sizeof b1, nv_param_count(m)), (double)nv_param_count(m),
            commas(b2, sizeof b2, nv_param_count_matmul(m)),
            commas(b3, sizeof b3, e.params_local));
    fprintf(f, "layout      world %d = tensor %d x data %d, zero1 %s; global-batch %d rows = "
               "data %d x accum %d x micro-batch %d; seq-length %d\n", world, e.tensor, e.data,
            c->parallel.zero1 ? "on" : "off", d->global_batch, e.data, accum, d->micro_batch,
            d->seq_length);
    fprintf(f, "compute     device %s%s, %s, recompute %s\n\n", dev[c->train.device],
            c->train.device == NV_DEVICE_AUTO ? " (sized as cuda)" : "",
            e.mixed ? "bf16 compute copy + fp32 masters" : "fp32",
            c->train.recompute ? "on" : "off");

    char zs[32] = "";
    if (c->parallel.zero1) snprintf(zs, sizeof zs, ", /%d zero1", e.data);
    char lbl[80];
    // GiB for real runs, MiB for the small ones, so no line reads 0.00
    double unit = e.total >= 1024.0 * 1024 * 1024 ? 1024.0 * 1024 * 1024 : 1024.0 * 1024;
    const char *uname = unit > 1024.0 * 1024 ? "GiB" : "MiB";
#define MEM_ROW(label, bytes) fprintf(f, "  %-50s %9.2f\n", label, (bytes) / unit)
    fprintf(f, "memory per rank %47s\n", uname);
    snprintf(lbl, sizeof lbl, "weights (%s)", e.mixed ? "bf16 compute copy" : "fp32");
    MEM_ROW(lbl, e.weights);
    if (e.mixed) snprintf(lbl, sizeof lbl, "master weights (fp32%s)", zs);
    else snprintf(lbl, sizeof lbl, "master weights (none: the weights are fp32)");
    MEM_ROW(lbl, e.masters);
    MEM_ROW("gradients (fp32)", e.grads);
    snprintf(lbl, sizeof lbl, "Adam moments (fp32 m, v%s)", zs);
    MEM_ROW(lbl, e.adam);
    snprintf(lbl, sizeof lbl, "activations (%d x %d tokens, recompute %s)", d->micro_batch,
             d->seq_length, c->train.recompute ? "on" : "off");
    MEM_ROW(lbl, e.activations);
    snprintf(lbl, sizeof lbl, "  (not counted: with recompute %s)", c->train.recompute ? "off" : "on");
    MEM_ROW(lbl, c->train.recompute ? e.act_stored : e.act_recompute);
    MEM_ROW("workspace (grad scratch, GEMM, buckets, context)", e.workspace);
    MEM_ROW("total", e.total);
    fputc('\n', f);
#undef MEM_ROW

    // No data at hand: full rows of one seq-length sequence each (the attention-heaviest case).
    double T, matmul, attn, heads;
    dry_flops(c, &T, &matmul, &attn, &heads);
    double total = matmul + attn + heads;
    fprintf(f, "model FLOPs per step (rows full, one %d-token sequence each, mask-rate %g)\n",
            d->seq_length, d->mask_rate);
    fprintf(f, "  %-50s %9s\n", "tokens per step", commas(b1, sizeof b1, (int64_t)T));
    fprintf(f, "  %-50s %9.3e\n", "layer matmuls 6 N T", matmul);
    fprintf(f, "  %-50s %9.3e\n", "attention 12 d sum K", attn);
    fprintf(f, "  %-50s %9.3e\n", "heads (MLM on selected, structure on all)", heads);
    fprintf(f, "  %-50s %9.3e\n", "total", total);
    fprintf(f, "  %-50s %9.3e\n", "per token", total / T);
    if (c->train.device != NV_DEVICE_CPU) {
        double ideal = total / (world * H100_PEAK_BF16);
        fprintf(f, "  %-50s %9.3f\n", "step time (s) at 100% of H100 bf16 peak", ideal);
        fprintf(f, "  %-50s %9.3f\n", "step time (s) at 40% MFU", ideal / 0.4);
    }

    // communication per step and the estimated step time (formulas: flops.h)
    nv_hw_model hw;
    nv_hw_model_h100(&hw);
    nv_comm_estimate ce;
    nv_comm_per_step(c, world, &hw, &ce);
    double cu = ce.dp_bytes + ce.tp_bytes >= 1024.0 * 1024 * 1024 ? 1024.0 * 1024 * 1024 : 1024.0 * 1024;
    const char *cun = cu > 1024.0 * 1024 ? "GiB" : "MiB";
    const char *where[] = {"inside a node", "across nodes"};
    fprintf(f, "\ncommunication per step per rank (ring algorithms; sent = received) %15s\n", cun);
    if (ce.data > 1)
        snprintf(lbl, sizeof lbl, "data %d ranks, %s: %s", ce.data, where[ce.dp_cross_node],
                 ce.zero1 ? "reduce-scatter grads + all-gather masters"
                          : "all-reduce of fp32 grads");
    else
        snprintf(lbl, sizeof lbl, "data: one rank, nothing to reduce");
    fprintf(f, "  %-66s %9.3f\n", lbl, ce.dp_bytes / cu);
    if (ce.tensor > 1)
        snprintf(lbl, sizeof lbl, "tensor %d ranks, %s: %.0f all-reduces of %.1f MiB",
                 ce.tensor, where[ce.tp_cross_node], ce.tp_calls, ce.tp_msg_bytes / (1024.0 * 1024));
    else
        snprintf(lbl, sizeof lbl, "tensor: one rank, no activation all-reduces");
    fprintf(f, "  %-66s %9.3f\n", lbl, ce.tp_bytes / cu);
    fprintf(f, "  %-66s %9.3f\n", "total", (ce.dp_bytes + ce.tp_bytes) / cu);
    if (c->train.device != NV_DEVICE_CPU) {
        fprintf(f, "estimated step time (H100: %.0f%% of %.0f TFLOP/s; NVLink %.0f GB/s, "
                   "IB %.0f GB/s per GPU; %d GPUs/node)\n", 100 * hw.mfu, hw.peak_flops / 1e12,
                hw.intra_bw / 1e9, hw.inter_bw / 1e9, hw.gpus_per_node);
        fprintf(f, "  %-50s %9.3f\n", "compute (s)", ce.t_compute);
        fprintf(f, "  %-50s %9.3f\n", "tensor-parallel all-reduces (s, not hidden)", ce.t_tp);
        snprintf(lbl, sizeof lbl, "data-parallel (s; %s)", ce.zero1 ? "zero1: not hidden" : "overlapped with backward");
        fprintf(f, "  %-50s %9.3f\n", lbl, ce.t_dp);
        fprintf(f, "  %-50s %9.3f\n", "  of which exposed", ce.t_dp_exposed);
        fprintf(f, "  %-50s %9.3f\n", "step (s)", ce.t_step);
        fprintf(f, "  %-50s %9.4g\n", "tokens/s", ce.tokens_per_s);
        fprintf(f, "  %-50s %9.3f\n", "MFU including communication", ce.mfu_effective);
    }
    fprintf(f, "\nsummary: world=%d tensor=%d data=%d zero1=%d micro_batch=%d accum=%d "
               "mem_gib=%.3f dp_bytes=%.6g tp_bytes=%.6g t_compute=%.6g t_tp=%.6g t_dp=%.6g "
               "t_dp_exposed=%.6g t_step=%.6g tokens_per_s=%.6g mfu=%.4f\n", world, ce.tensor,
            ce.data, ce.zero1, d->micro_batch, accum, e.total / (1024.0 * 1024 * 1024), ce.dp_bytes,
            ce.tp_bytes, ce.t_compute, ce.t_tp, ce.t_dp, ce.t_dp_exposed, ce.t_step,
            ce.tokens_per_s, ce.mfu_effective);
}
