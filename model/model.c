// model.c - forward and backward of the encoder (design section 6) over the kernel
// interface. The flow of one micro-batch:
//
//   embed -> LN_emb -> [ LN_attn -> W_qkv -> RoPE -> attention -> W_o -> +res
//                        LN_mlp  -> W_in  -> GeGLU -> W_out -> +res ] x L -> LN_final
//   MLM head on the selected positions only (gather -> dense -> gelu -> LN -> E_tok^T + b)
//   structure head on its positions (gather -> W_struct + b); fused softmax-CE on both.
//
// Each residual add is fused with the norm that follows it (residual_layernorm_fwd).
#include "model/model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "data/nv_util.h"
#include "data/vocab.h"

typedef struct layer_acts {
    void *x_in;        // residual stream entering the layer [n, d]
    void *a;           // LN_attn(x_in) [n, d]
    void *mean1, *rstd1;
    void *qkv;         // after RoPE [n, 3dl]
    void *o;           // attention output [n, dl]
    void *lse;         // [n, Hl]
    void *x_mid;       // x_in + attention branch [n, d]
    void *mm;          // LN_mlp(x_mid) [n, d]
    void *mean2, *rstd2;
    void *gu;          // [n, 2fl]
    void *h;           // geglu(gu) [n, fl]
} layer_acts;

struct nv_model {
    nv_model_config cfg;
    const nv_backend *be;
    int tp_rank, tp_size;
    nv_tp_comm tp;
    nv_grad_hook hook;
    nv_param_table t;
    nv_param_ids ids;
    int d, dl, H, Hl, dh, f, fl, V, L;
    int max_n;
    int recompute;        // layers > 0 share layer 0's buffers but for x_in
    // One planned allocation: lay_out() runs twice, first only adding up the sizes.
    char *arena;
    size_t arena_off, arena_size;
    int planning;

    void *master, *grad, *wact; // flat buffers; wact == master when types agree
    int wact_alias;
    // loss sums on the device (mlm loss, mlm hits, struct loss, struct hits): [0, 4) since
    // the last nv_model_take_losses, [4, 8) of one nv_model_step called with `out`; and the
    // host-side counts that go with the pending ones
    double *stats;
    long pend_mlm, pend_struct;

    // inputs (device)
    int32_t *tok, *sin, *pos, *seg_start, *seg_len;
    int32_t *mlm_idx, *mlm_tgt, *st_idx, *st_tgt;
    // host staging
    int32_t *h_start, *h_len, *h_idx, *h_tgt, *h_idx2, *h_tgt2;

    // activations
    void *emb;            // E_tok + E_struct, pre-norm [n, d]
    void *mean0, *rstd0;
    layer_acts *la;       // [L]
    void *x_out;          // final residual stream [n, d]
    void *hf, *meanf, *rstdf; // LN_final
    // heads on selected rows (m <= n)
    void *hs, *t1, *t2, *t3, *meant, *rstdt, *logits, *loss;
    void *hs2, *logits2, *loss2;
    // scratch for backward and branch outputs
    void *branch;         // [n, d]
    void *dres, *dtmp;    // [n, d]
    void *dbig;           // [n, max(3dl, 2fl)]
    void *dsmall;         // [n, max(dl, fl)]
    void *dhs, *dt1, *dt2, *dt3, *dlogits; // head scratch
    int last_n;
    int last_nm, last_nst; // selected rows of the last step (nv_model_get_logits)
};

// Carve `bytes` from the arena (256-byte aligned, as cuBLASLt and vector loads like it) and
// tell the backend the buffer's type (backend.h: cpu-bf16 checks every op argument by it).
static void *carve(nv_model *m, size_t bytes, int type) {
    const size_t off = m->arena_off;
    m->arena_off += (bytes + 255) & ~(size_t)255;
    if (m->planning) return NULL;
    if (m->be->declare) m->be->declare(m->arena + off, bytes, type);
    return m->arena + off;
}
static void *alloc_act(nv_model *m, size_t n) { return carve(m, n * m->be->act_bytes, NV_T_ACT); }
static void *alloc_state(nv_model *m, size_t n) {
    return carve(m, n * m->be->state_bytes, NV_T_STATE);
}
static int32_t *alloc_i32(nv_model *m, size_t n) { return carve(m, n * 4, NV_T_I32); }

const nv_param_table *nv_model_params(const nv_model *m) { return &m->t; }
const nv_param_ids *nv_model_param_ids(const nv_model *m) { return &m->ids; }
const nv_backend *nv_model_backend(const nv_model *m) { return m->be; }
void *nv_model_master(nv_model *m) { return m->master; }
void *nv_model_grad(nv_model *m) { return m->grad; }
void *nv_model_weights_act(nv_model *m) { return m->wact; }

void *nv_model_tensor(const nv_model *m, void *flat, int k) {
    return (char *)flat + m->t.p[k].offset * m->be->state_bytes;
}
static void *W(const nv_model *m, int k) { // compute copy of tensor k
    return (char *)m->wact + m->t.p[k].offset * m->be->act_bytes;
}
static void *G(const nv_model *m, int k) { return nv_model_tensor(m, m->grad, k); }
// The LayerNorm weights an op reads are the act compute copy too (backend.h). The review's
// C1 passed their fp32 masters instead; tests/model/test_typecheck.c builds this file with
// NV_TEST_REINTRODUCE_C1 to show that cpu-bf16 stops such a model at its first LayerNorm.
#ifdef NV_TEST_REINTRODUCE_C1
#define LNW(m, k) nv_model_tensor(m, (m)->master, k)
#else
#define LNW(m, k) W(m, k)
#endif

size_t nv_model_device_bytes(const nv_model *m) { return m->arena_size; }

size_t nv_model_activation_bytes(const nv_model_config *c, const nv_backend *be, int tp,
                                 int n) {
    size_t d = c->hidden_size, dl = d / tp, Hl = c->num_attn_heads / tp,
           fl = c->ffn_hidden_size / tp, A = be->act_bytes, S = be->state_bytes;
    size_t wide = 3 * dl > 2 * fl ? 3 * dl : 2 * fl, nar = dl > fl ? dl : fl;
    size_t per_layer = (size_t)n * (A * (4 * d + 3 * dl + dl + 2 * fl + fl) + S * (4 + Hl));
    size_t rest = (size_t)n * (A * (d + d + d + 3 * d + wide + nar) + S * 4) +
                  (size_t)n * (A * (8 * d + 2 * 16 + 3) + S * 4);
    return per_layer * c->num_layers + rest;
}

// Every device buffer of the model, carved from the arena in one fixed order.
static void lay_out(nv_model *m) {
    const size_t n = (size_t)m->max_n, d = m->d;
    const int recompute = m->recompute;
    m->arena_off = 0;
    m->master = alloc_state(m, m->t.total);
    m->grad = alloc_state(m, m->t.total);
    m->wact = m->wact_alias ? m->master : alloc_act(m, m->t.total);
    m->stats = carve(m, 8 * sizeof(double), NV_T_F64);

    m->tok = alloc_i32(m, n);
    m->sin = alloc_i32(m, n);
    m->pos = alloc_i32(m, n);
    m->seg_start = alloc_i32(m, n);
    m->seg_len = alloc_i32(m, n);
    m->mlm_idx = alloc_i32(m, n);
    m->mlm_tgt = alloc_i32(m, n);
    m->st_idx = alloc_i32(m, n);
    m->st_tgt = alloc_i32(m, n);

    m->emb = alloc_act(m, n * d);
    m->mean0 = alloc_state(m, n);
    m->rstd0 = alloc_state(m, n);
    for (int l = 0; l < m->L; l++) {
        layer_acts *a = &m->la[l];
        a->x_in = alloc_act(m, n * d);
        if (recompute && l > 0) { // everything but the input is recomputed: share layer 0's
            layer_acts keep = *a;
            *a = m->la[0];
            a->x_in = keep.x_in;
            continue;
        }
        // layer 0 without LN_attn: a is x_in itself (recompute keeps the buffer shared
        // by the layers above and re-aliases layer 0's after the loop)
        a->a = l == 0 && !m->cfg.first_attn_norm && !recompute ? a->x_in : alloc_act(m, n * d);
        a->mean1 = alloc_state(m, n);
        a->rstd1 = alloc_state(m, n);
        a->qkv = alloc_act(m, n * 3 * m->dl);
        a->o = alloc_act(m, n * m->dl);
        a->lse = alloc_state(m, n * m->Hl);
        a->x_mid = alloc_act(m, n * d);
        a->mm = alloc_act(m, n * d);
        a->mean2 = alloc_state(m, n);
        a->rstd2 = alloc_state(m, n);
        a->gu = alloc_act(m, n * 2 * m->fl);
        a->h = alloc_act(m, n * m->fl);
    }
    if (!m->cfg.first_attn_norm) m->la[0].a = m->la[0].x_in;
    m->x_out = alloc_act(m, n * d);
    m->hf = alloc_act(m, n * d);
    m->meanf = alloc_state(m, n);
    m->rstdf = alloc_state(m, n);
    m->hs = alloc_act(m, n * d);
    m->t1 = alloc_act(m, n * d);
    m->t2 = alloc_act(m, n * d);
    m->t3 = alloc_act(m, n * d);
    m->meant = alloc_state(m, n);
    m->rstdt = alloc_state(m, n);
    m->logits = alloc_act(m, n * m->V);
    m->loss = alloc_state(m, n);
    m->hs2 = alloc_act(m, n * d);
    m->logits2 = alloc_act(m, n * 3);
    m->loss2 = alloc_state(m, n);
    m->branch = alloc_act(m, n * d);
    m->dres = alloc_act(m, n * d);
    m->dtmp = alloc_act(m, n * d);
    size_t wide = 3 * (size_t)m->dl > 2 * (size_t)m->fl ? 3 * (size_t)m->dl : 2 * (size_t)m->fl;
    size_t nar = m->dl > m->fl ? (size_t)m->dl : (size_t)m->fl;
    m->dbig = alloc_act(m, n * wide);
    m->dsmall = alloc_act(m, n * nar);
    m->dhs = alloc_act(m, n * d);
    m->dt1 = alloc_act(m, n * d);
    m->dt2 = alloc_act(m, n * d);
    m->dt3 = alloc_act(m, n * d);
    m->dlogits = alloc_act(m, n * m->V);
}

nv_model *nv_model_create(const nv_model_config *cfg, const nv_backend *be, int tp_rank,
                          int tp_size, const nv_tp_comm *tp, int max_tokens) {
    return nv_model_create_ex(cfg, be, tp_rank, tp_size, tp, max_tokens, max_tokens, 0);
}

// Sizes, the parameter table, host staging and the planned arena size (nothing on the device).
static nv_model *model_plan(const nv_model_config *cfg, const nv_backend *be, int tp_rank,
                            int tp_size, const nv_tp_comm *tp, int max_tokens, int recompute) {
    nv_model *m = nv_calloc(1, sizeof *m);
    m->recompute = recompute;
    m->cfg = *cfg;
    m->be = be;
    m->tp_rank = tp_rank;
    m->tp_size = tp_size;
    if (tp) m->tp = *tp;
    nv_params_build(&m->t, &m->ids, cfg, tp_rank, tp_size);
    m->d = cfg->hidden_size;
    m->H = cfg->num_attn_heads;
    m->dh = m->d / m->H;
    m->Hl = m->H / tp_size;
    m->dl = m->Hl * m->dh;
    m->f = cfg->ffn_hidden_size;
    m->fl = m->f / tp_size;
    m->V = cfg->vocab_size;
    m->L = cfg->num_layers;
    m->max_n = max_tokens;
    const size_t n = (size_t)max_tokens; // host staging for one micro-batch

    m->wact_alias = be->act_bytes == be->state_bytes;
    m->h_start = nv_malloc(n * 4);
    m->h_len = nv_malloc(n * 4);
    m->h_idx = nv_malloc(n * 4);
    m->h_tgt = nv_malloc(n * 4);
    m->h_idx2 = nv_malloc(n * 4);
    m->h_tgt2 = nv_malloc(n * 4);
    m->la = nv_calloc((size_t)m->L, sizeof(layer_acts));
    m->planning = 1;
    lay_out(m);
    m->arena_size = m->arena_off;
    m->planning = 0;
    return m;
}

size_t nv_model_plan_bytes(const nv_model_config *cfg, const nv_backend *be, int tp_size,
                           int max_tokens, int recompute) {
    nv_model *m = model_plan(cfg, be, 0, tp_size, NULL, max_tokens, recompute);
    const size_t bytes = m->arena_size;
    nv_model_free(m); // no arena: free() of NULL
    return bytes;
}

nv_model *nv_model_create_ex(const nv_model_config *cfg, const nv_backend *be, int tp_rank,
                             int tp_size, const nv_tp_comm *tp, int max_tokens, int seq_len,
                             int recompute) {
    nv_model *m = model_plan(cfg, be, tp_rank, tp_size, tp, max_tokens, recompute);
    m->arena = be->alloc(m->arena_size);
    if (!m->arena)
        nv_die("cannot allocate %.2f GiB for the model on %s\n---> HINT: lower [data] micro-batch "
               "or seq-length, set [train] recompute = true, or raise [parallel] tensor",
               (double)m->arena_size / (1 << 30), be->name);
    lay_out(m);
    if (be->prepare) { // scratch and tables sized once: nothing is allocated inside a step
        nv_backend_plan plan = {max_tokens, seq_len < max_tokens ? seq_len : max_tokens, m->d,
                                m->Hl, m->dh, m->fl, m->V,
                                {cfg->rope_theta_global, cfg->rope_theta_local},
                                cfg->local_window, max_tokens};
        be->prepare(&plan);
    }
    return m;
}

void nv_model_free(nv_model *m) {
    if (!m) return;
    if (m->arena) {
        if (m->be->forget) m->be->forget(m->arena, m->arena_size);
        m->be->free(m->arena); // every device buffer lives in it
    }
    free(m->la);
    free(m->h_start); free(m->h_len); free(m->h_idx); free(m->h_tgt);
    free(m->h_idx2); free(m->h_tgt2);
    nv_params_free(&m->t, &m->ids);
    free(m);
}

void nv_model_refresh_act(nv_model *m) {
    if (!m->wact_alias) m->be->state_to_act(m->wact, m->master, m->t.total);
}

void nv_model_set_weights(nv_model *m, const double *host) {
    m->be->upload_state(m->master, host, m->t.total);
    nv_model_refresh_act(m);
}

void nv_model_get_weights(const nv_model *m, double *host) {
    m->be->download_state(host, m->master, m->t.total);
}

void nv_model_init_weights(nv_model *m, uint64_t seed) {
    double *host = nv_calloc(m->t.total, sizeof(double)); // padding between tensors stays 0
    nv_params_init_host(&m->t, seed, host);
    nv_model_set_weights(m, host);
    free(host);
}

void nv_model_zero_grad(nv_model *m) { m->be->zero(m->grad, m->t.total * m->be->state_bytes); }

void nv_model_set_grad_hook(nv_model *m, const nv_grad_hook *hook) {
    if (hook) m->hook = *hook;
    else memset(&m->hook, 0, sizeof m->hook);
}

// Gradients of tensors first..last (table order, contiguous) are complete.
static void grads_ready(nv_model *m, int first, int last) {
    if (!m->hook.ready) return;
    size_t hi = last + 1 < m->t.n ? m->t.p[last + 1].offset : m->t.total;
    m->hook.ready(m->hook.ctx, m->t.p[first].offset, hi);
}

static void tp_allreduce(nv_model *m, void *buf, size_t n) {
    if (m->tp_size > 1 && m->tp.allreduce_act) m->tp.allreduce_act(m->tp.ctx, buf, n);
}

// Host-side preparation: device copies of ids, positions, segments and selections.
static void upload_batch(nv_model *m, const nv_batch *b, nv_attn_segs *segs, int *n_mlm,
                         int *n_st) {
    const nv_backend *be = m->be;
    const int n = b->rows * b->seq_len;
    if (n > m->max_n) nv_die("micro-batch of %d tokens exceeds the planned %d", n, m->max_n);
    int maxlen = 0;
    const int ns = (int)nv_batch_segments(b, m->h_start, m->h_len, &maxlen);
    be->to_device(m->seg_start, m->h_start, (size_t)ns * 4);
    be->to_device(m->seg_len, m->h_len, (size_t)ns * 4);
    segs->start = m->seg_start;
    segs->len = m->seg_len;
    segs->n_segs = ns;
    segs->max_len = maxlen;

    be->to_device(m->tok, b->input, (size_t)n * 4);
    be->to_device(m->pos, b->position, (size_t)n * 4);
    // structure input: models without it feed no E_struct, but keep the ids valid
    if (m->cfg.structure_input) {
        be->to_device(m->sin, b->struct_in, (size_t)n * 4);
    }
    int a = 0, c = 0;
    for (int i = 0; i < n; i++) {
        if (b->mlm_mask[i]) {
            m->h_idx[a] = i;
            m->h_tgt[a++] = b->target[i];
        }
        if (b->struct_mask[i] && b->struct_target[i] >= 0) {
            m->h_idx2[c] = i;
            m->h_tgt2[c++] = b->struct_target[i];
        }
    }
    be->to_device(m->mlm_idx, m->h_idx, (size_t)a * 4);
    be->to_device(m->mlm_tgt, m->h_tgt, (size_t)a * 4);
    be->to_device(m->st_idx, m->h_idx2, (size_t)c * 4);
    be->to_device(m->st_tgt, m->h_tgt2, (size_t)c * 4);
    *n_mlm = a;
    *n_st = c;
}

// read back (and zero) 4 sums at acc
static void read_losses(nv_model *m, double *acc, long n_mlm, long n_struct, nv_losses *out) {
    double h[4];
    m->be->to_host(h, acc, sizeof h); // the one readback of a step
    m->be->zero(acc, sizeof h);
    memset(out, 0, sizeof *out);
    out->mlm_sum = h[0];
    out->mlm_correct = (long)h[1];
    out->struct_sum = h[2];
    out->struct_correct = (long)h[3];
    out->mlm_count = n_mlm;
    out->struct_count = n_struct;
}

void nv_model_take_losses(nv_model *m, nv_losses *out) {
    read_losses(m, m->stats, m->pend_mlm, m->pend_struct, out);
    m->pend_mlm = m->pend_struct = 0;
}

// Layer l's forward from its `a` = LN_attn(x_in) up to h = GeGLU(...): the attention branch
// (qkv, o, lse, x_mid), the MLP's input and gate/up (mm, gu, h). The caller applies W_out
// and adds the MLP branch; the recompute in backward needs no more than this.
static void layer_forward(nv_model *m, int l, const nv_attn_segs *segs, int n) {
    const nv_backend *be = m->be;
    layer_acts *a = &m->la[l];
    const nv_layer_ids *li = &m->ids.layers[l];
    const int d = m->d, dl = m->dl, Hl = m->Hl, dh = m->dh, fl = m->fl;
    const int global = nv_config_is_global_layer(&m->cfg, l);
    const double theta = global ? m->cfg.rope_theta_global : m->cfg.rope_theta_local;
    const int window = global ? 0 : m->cfg.local_window;
    be->matmul_fwd(a->qkv, a->a, W(m, li->wqkv), NULL, n, d, 3 * dl);
    be->rope_fwd(a->qkv, m->pos, n, Hl, dh, theta);
    be->attention_fwd(a->o, a->lse, a->qkv, segs, n, Hl, dh, window);
    be->matmul_fwd(m->branch, a->o, W(m, li->wo), NULL, n, dl, d);
    tp_allreduce(m, m->branch, (size_t)n * d); // row-parallel W_o
    be->residual_layernorm_fwd(a->x_mid, a->mm, a->mean2, a->rstd2, a->x_in, m->branch,
                               LNW(m, li->mlp_norm), n, d);
    be->matmul_fwd(a->gu, a->mm, W(m, li->w_in), NULL, n, d, 2 * fl);
    be->geglu_fwd(a->h, a->gu, n, fl);
}

// Forward over the uploaded batch: the encoder, both heads, their losses (and the logits'
// gradients, fused), and the loss sums accumulated on the device.
static void model_forward(nv_model *m, const nv_attn_segs *segs, int n, int nm, int nst,
                          double mlm_scale, double struct_scale, double *acc) {
    const nv_backend *be = m->be;
    const nv_param_ids *id = &m->ids;
    const int d = m->d, fl = m->fl, V = m->V;
    be->embed_fwd(m->emb, m->tok, m->sin, W(m, id->embed_tok),
                  id->embed_struct >= 0 ? W(m, id->embed_struct) : NULL, n, d);
    be->layernorm_fwd(m->la[0].x_in, m->mean0, m->rstd0, m->emb, LNW(m, id->embed_norm), n, d);
    if (id->layers[0].attn_norm >= 0) // else a aliases x_in
        be->layernorm_fwd(m->la[0].a, m->la[0].mean1, m->la[0].rstd1, m->la[0].x_in,
                          LNW(m, id->layers[0].attn_norm), n, d);
    for (int l = 0; l < m->L; l++) {
        layer_acts *a = &m->la[l];
        layer_forward(m, l, segs, n);
        be->matmul_fwd(m->branch, a->h, W(m, id->layers[l].w_out), NULL, n, fl, d);
        tp_allreduce(m, m->branch, (size_t)n * d); // row-parallel W_out
        if (l + 1 < m->L) {
            layer_acts *nx = &m->la[l + 1];
            be->residual_layernorm_fwd(nx->x_in, nx->a, nx->mean1, nx->rstd1, a->x_mid,
                                       m->branch, LNW(m, id->layers[l + 1].attn_norm), n, d);
        } else {
            be->residual_layernorm_fwd(m->x_out, m->hf, m->meanf, m->rstdf, a->x_mid,
                                       m->branch, LNW(m, id->final_norm), n, d);
        }
    }
    // heads, on their selected positions only
    if (nm > 0) {
        be->gather_rows(m->hs, m->hf, m->mlm_idx, nm, d);
        be->matmul_fwd(m->t1, m->hs, W(m, id->head_dense), NULL, nm, d, d);
        be->gelu_fwd(m->t2, m->t1, (size_t)nm * d);
        be->layernorm_fwd(m->t3, m->meant, m->rstdt, m->t2, LNW(m, id->head_norm), nm, d);
        be->matmul_fwd(m->logits, m->t3, W(m, id->embed_tok), W(m, id->head_bias), nm, d, V);
        be->softmax_ce(m->loss, m->dlogits, m->logits, m->mlm_tgt, nm, V, mlm_scale);
    }
    if (nst > 0) {
        be->gather_rows(m->hs2, m->hf, m->st_idx, nst, d);
        be->matmul_fwd(m->logits2, m->hs2, W(m, id->struct_w), W(m, id->struct_b), nst, d, 3);
    }
    if (nm > 0) be->ce_stats(acc, m->loss, m->logits, m->mlm_tgt, nm, V);
    if (nst > 0) {
        // dlogits2 lives in dt3's space (m <= n rows of 3)
        be->softmax_ce(m->loss2, m->dt3, m->logits2, m->st_tgt, nst, 3, struct_scale);
        be->ce_stats(acc + 2, m->loss2, m->logits2, m->st_tgt, nst, 3);
    }
}

static void model_backward(nv_model *m, const nv_attn_segs *segs, int n, int nm, int nst);

void nv_model_step(nv_model *m, const nv_batch *b, double mlm_scale, double struct_scale,
                   int want_grad, nv_losses *out) {
    nv_attn_segs segs;
    int nm, nst;
    const int n = b->rows * b->seq_len;
    upload_batch(m, b, &segs, &nm, &nst);
    m->last_n = n;
    m->last_nm = nm;
    m->last_nst = nst;
    model_forward(m, &segs, n, nm, nst, mlm_scale, struct_scale, out ? m->stats + 4 : m->stats);
    if (want_grad) model_backward(m, &segs, n, nm, nst);
    if (out) {
        read_losses(m, m->stats + 4, nm, nst, out);
    } else {
        m->pend_mlm += nm;
        m->pend_struct += nst;
    }
}

static void model_backward(nv_model *m, const nv_attn_segs *segs, int n, int nm, int nst) {
    const nv_backend *be = m->be;
    const nv_param_ids *id = &m->ids;
    const int d = m->d, dl = m->dl, Hl = m->Hl, dh = m->dh, fl = m->fl, V = m->V;

    // ---- backward ----
    be->zero(m->dres, (size_t)n * d * be->act_bytes); // d hf
    if (nst > 0) {
        be->matmul_bwd(m->dhs, G(m, id->struct_w), G(m, id->struct_b), m->dt3, m->hs2,
                       W(m, id->struct_w), nst, d, 3);
        be->scatter_add_rows(m->dres, m->dhs, m->st_idx, nst, d);
    }
    if (nm > 0) {
        // decoder tied to E_tok: its gradient lands in embed.tok's
        be->matmul_bwd(m->dt3, G(m, id->embed_tok), G(m, id->head_bias), m->dlogits, m->t3,
                       W(m, id->embed_tok), nm, d, V);
        be->zero(m->dt2, (size_t)nm * d * be->act_bytes);
        be->layernorm_bwd(m->dt2, G(m, id->head_norm), m->dt3, m->t2, LNW(m, id->head_norm),
                          m->meant, m->rstdt, nm, d);
        be->gelu_bwd(m->dt1, m->dt2, m->t1, (size_t)nm * d);
        be->matmul_bwd(m->dhs, G(m, id->head_dense), NULL, m->dt1, m->hs, W(m, id->head_dense),
                       nm, d, d);
        be->scatter_add_rows(m->dres, m->dhs, m->mlm_idx, nm, d);
    }
    // LN_final: dres holds d hf; d x_out goes to dtmp, then swap roles
    void *dstream = m->dtmp, *dh_in = m->dres;
    be->zero(dstream, (size_t)n * d * be->act_bytes);
    be->layernorm_bwd(dstream, G(m, id->final_norm), dh_in, m->x_out, LNW(m, id->final_norm),
                      m->meanf, m->rstdf, n, d);
    grads_ready(m, id->final_norm, m->t.n - 1); // final norm and both heads (not E_tok)
    void *dnorm = m->dres; // scratch for the gradient entering a norm's output
    for (int l = m->L - 1; l >= 0; l--) {
        layer_acts *a = &m->la[l];
        const nv_layer_ids *li = &id->layers[l];
        if (m->recompute) { // the same ops as the forward, so the same values
            if (li->attn_norm >= 0)
                be->layernorm_fwd(a->a, a->mean1, a->rstd1, a->x_in, LNW(m, li->attn_norm), n, d);
            layer_forward(m, l, segs, n);
        }
        const int global = nv_config_is_global_layer(&m->cfg, l);
        const double theta = global ? m->cfg.rope_theta_global : m->cfg.rope_theta_local;
        const int window = global ? 0 : m->cfg.local_window;
        // MLP branch: x_out_l = x_mid + geglu(LN(x_mid) W_in^T) W_out^T
        be->matmul_bwd(m->dsmall, G(m, li->w_out), NULL, dstream, a->h, W(m, li->w_out), n, fl, d);
        be->geglu_bwd(m->dbig, m->dsmall, a->gu, n, fl);
        be->matmul_bwd(dnorm, G(m, li->w_in), NULL, m->dbig, a->mm, W(m, li->w_in), n, d, 2 * fl);
        tp_allreduce(m, dnorm, (size_t)n * d); // conjugate of the column-parallel split
        be->layernorm_bwd(dstream, G(m, li->mlp_norm), dnorm, a->x_mid, LNW(m, li->mlp_norm),
                          a->mean2, a->rstd2, n, d);
        // attention branch: x_mid = x_in + attn(rope(LN(x_in) W_qkv^T)) W_o^T
        be->matmul_bwd(m->dsmall, G(m, li->wo), NULL, dstream, a->o, W(m, li->wo), n, dl, d);
        be->attention_bwd(m->dbig, m->dsmall, a->qkv, a->o, a->lse, segs, n, Hl, dh, window);
        be->rope_bwd(m->dbig, m->pos, n, Hl, dh, theta);
        be->matmul_bwd(dnorm, G(m, li->wqkv), NULL, m->dbig, a->a, W(m, li->wqkv), n, d, 3 * dl);
        tp_allreduce(m, dnorm, (size_t)n * d);
        if (li->attn_norm >= 0)
            be->layernorm_bwd(dstream, G(m, li->attn_norm), dnorm, a->x_in, LNW(m, li->attn_norm),
                              a->mean1, a->rstd1, n, d);
        else // a = x_in: the gradient lands on the stream as it is
            be->add(dstream, dstream, dnorm, (size_t)n * d);
        grads_ready(m, li->attn_norm >= 0 ? li->attn_norm : li->wqkv, li->w_out);
    }
    // LN_emb and the embeddings
    be->zero(dnorm, (size_t)n * d * be->act_bytes);
    be->layernorm_bwd(dnorm, G(m, id->embed_norm), dstream, m->emb, LNW(m, id->embed_norm),
                      m->mean0, m->rstd0, n, d);
    be->embed_bwd(G(m, id->embed_tok), id->embed_struct >= 0 ? G(m, id->embed_struct) : NULL,
                  dnorm, m->tok, m->sin, n, d, V);
    grads_ready(m, 0, id->embed_norm); // embeddings last: E_tok also feeds the MLM decoder
}

void nv_model_get_hidden(const nv_model *m, double *host) {
    m->be->download_act(host, m->hf, (size_t)m->last_n * m->d);
}

void nv_model_get_logits(const nv_model *m, double *mlm, double *st) {
    if (mlm && m->last_nm > 0) m->be->download_act(mlm, m->logits, (size_t)m->last_nm * m->V);
    if (st && m->last_nst > 0) m->be->download_act(st, m->logits2, (size_t)m->last_nst * 3);
}
