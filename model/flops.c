// flops.c - parameter count, model FLOPs (design section 11), memory per rank, dry-run report.
#include "model/flops.h"

#include <math.h>
#include <string.h>


int64_t nv_param_count_matmul(const nv_model_config *m) {
    int64_t d = m->hidden_size, f = m->ffn_hidden_size;
    return (int64_t)m->num_layers * (4 * d * d + 3 * d * f);
}

// Everything outside the layer matmuls: replicated over the tensor group.
static int64_t replicated_params(const nv_model_config *m) {
    int64_t d = m->hidden_size, V = m->vocab_size;
    int64_t n = V * d + (m->structure_input ? 4 * d : 0) + d; // embed.tok, embed.struct, embed.norm
    n += (int64_t)(2 * m->num_layers - !m->first_attn_norm) * d; // attn_norm, mlp_norm
    n += d;                                                    // final_norm
    n += d * d + d + V;                                        // head.mlm.dense, .norm, .bias
    n += 3 * d + 3;                                            // head.struct.weight, .bias
    return n;
}

int64_t nv_param_count(const nv_model_config *m) {
    return replicated_params(m) + nv_param_count_matmul(m);
}

int64_t nv_param_count_local(const nv_model_config *m, int tensor) {
    return replicated_params(m) + nv_param_count_matmul(m) / (tensor > 0 ? tensor : 1);
}

int64_t nv_attn_pairs(int64_t n, int window) {
    if (n <= 0) return 0;
    int64_t r = window / 2;
    // query i sees min(i,r) keys before it, min(n-1-i,r) after, and itself
    if (window <= 0 || n <= r + 1) return n * n;
    return n * (2 * r + 1) - r * (r + 1);
}

// 12 d sum_layers K_l(n) for one sequence: global layers count n^2, local ones the window.
static double attn_flops_seq(const nv_model_config *m, int64_t n, int n_global, int n_local) {
    double d = m->hidden_size;
    return 12.0 * d * ((double)n_global * (double)nv_attn_pairs(n, 0) +
                       (double)n_local * (double)nv_attn_pairs(n, m->local_window));
}

void nv_count_layers(const nv_model_config *m, int *n_global, int *n_local) {
    *n_global = 0;
    for (int l = 0; l < m->num_layers; l++) *n_global += nv_config_is_global_layer(m, l);
    *n_local = m->num_layers - *n_global;
}

static double head_flops(const nv_model_config *m, double T, double T_sel) {
    double d = m->hidden_size, V = m->vocab_size;
    return 6.0 * T_sel * (d * d + d * V) + 6.0 * T * 3.0 * d;
}

static double flops_step(const nv_model_config *m, const int32_t *seq_lens, long n_seqs,
                         long n_selected) {
    int ng, nl;
    nv_count_layers(m, &ng, &nl);
    double T = 0, attn = 0;
    for (long i = 0; i < n_seqs; i++) {
        T += seq_lens[i];
        attn += attn_flops_seq(m, seq_lens[i], ng, nl);
    }
    double T_sel = n_selected >= 0 ? (double)n_selected : NV_FLOPS_MASK_RATE * T;
    return 6.0 * (double)nv_param_count_matmul(m) * T + attn + head_flops(m, T, T_sel);
}

double nv_flops_per_step_sel(const nv_model_config *m, const int32_t *seq_lens, long n_seqs,
                             long n_selected) {
    return flops_step(m, seq_lens, n_seqs, n_selected < 0 ? 0 : n_selected);
}

double nv_flops_per_step(const nv_model_config *m, const int32_t *seq_lens, long n_seqs) {
    return flops_step(m, seq_lens, n_seqs, -1);
}

double nv_flops_estimate(const nv_model_config *m, double tokens_per_step, double mean_len,
                         double mask_rate) {
    int ng, nl;
    nv_count_layers(m, &ng, &nl);
    double n_seqs = mean_len > 0 ? tokens_per_step / mean_len : 0;
    // K is not linear in n: interpolate between the neighbouring integer lengths
    int64_t n0 = (int64_t)floor(mean_len);
    double w = mean_len - (double)n0;
    double attn = (1 - w) * attn_flops_seq(m, n0, ng, nl) + w * attn_flops_seq(m, n0 + 1, ng, nl);
    return 6.0 * (double)nv_param_count_matmul(m) * tokens_per_step + n_seqs * attn +
           head_flops(m, tokens_per_step, mask_rate * tokens_per_step);
}

// Model FLOPs of T tokens in full rows of seq_len tokens each (one sequence per row: the
// dry run's no-data case, the attention-heaviest one), T_sel of them selected.
void nv_flops_full_rows(const nv_model_config *m, double T, int seq_len, double T_sel,
                        double *matmul, double *attn, double *heads) {
    int ng, nl;
    nv_count_layers(m, &ng, &nl);
    *matmul = 6.0 * (double)nv_param_count_matmul(m) * T;
    *attn = (T / seq_len) * attn_flops_seq(m, (int64_t)seq_len, ng, nl);
    *heads = head_flops(m, T, T_sel);
}
