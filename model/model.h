// model.h - the encoder of design section 6 over the kernel interface (backend.h).
//
// One model.c serves every backend: it allocates through the backend, calls its ops in
// order and never touches device memory itself. Forward and backward of a micro-batch are
// one call (nv_model_step) so the activations it saves stay private.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "data/batch.h"
#include "model/backend.h"
#include "model/params.h"
#include "model/model_config.h"

// Collective hooks for tensor parallelism: sum an act buffer over the tensor group.
// NULL when tensor = 1.
typedef struct nv_tp_comm {
    void (*allreduce_act)(void *ctx, void *buf, size_t n);
    void *ctx;
} nv_tp_comm;

// Called during backward when the gradients of the flat element range [lo, hi) are
// complete (for bucketed data-parallel reduction that overlaps the backward pass). Ranges
// arrive in a fixed order that depends only on the table. NULL: no calls.
typedef struct nv_grad_hook {
    void (*ready)(void *ctx, size_t lo, size_t hi);
    void *ctx;
} nv_grad_hook;

typedef struct nv_losses {
    double mlm_sum, struct_sum;   // summed cross-entropies over selected positions
    long mlm_count, struct_count; // positions scored
    long mlm_correct, struct_correct;
} nv_losses;

typedef struct nv_model nv_model;

// max_tokens: the largest micro-batch (rows * seq_len) the activations are sized for.
nv_model *nv_model_create(const nv_model_config *cfg, const nv_backend *be, int tp_rank,
                          int tp_size, const nv_tp_comm *tp, int max_tokens);
// The same with activation recomputation ([train] recompute): only each layer's input is
// kept from the forward pass; the backward recomputes the layer's activations into one
// shared set of buffers. Same gradients (same bits on CPU), activation memory ~L times less.
// seq_len: the longest row (segments and positions are shorter), for the backend's plan.
nv_model *nv_model_create_ex(const nv_model_config *cfg, const nv_backend *be, int tp_rank,
                             int tp_size, const nv_tp_comm *tp, int max_tokens, int seq_len,
                             int recompute);
void nv_model_free(nv_model *m);

const nv_param_table *nv_model_params(const nv_model *m);
const nv_param_ids *nv_model_param_ids(const nv_model *m);
const nv_backend *nv_model_backend(const nv_model *m);
// Flat device buffers over the table (state type): master weights and their gradients.
void *nv_model_master(nv_model *m);
void *nv_model_grad(nv_model *m);
// The act-type compute copy of the weights (the master itself when types agree).
void *nv_model_weights_act(nv_model *m);
// Pointer to tensor k inside a flat state buffer.
void *nv_model_tensor(const nv_model *m, void *flat, int k);

// Initialize the weights (design section 6) and refresh the compute copy.
void nv_model_init_weights(nv_model *m, uint64_t seed);
// Load/read all weights as host doubles [table total] (refreshes the compute copy).
void nv_model_set_weights(nv_model *m, const double *host);
void nv_model_get_weights(const nv_model *m, double *host);
void nv_model_refresh_act(nv_model *m); // compute copy from the masters
void nv_model_zero_grad(nv_model *m);

// Forward (and backward when want_grad) over one micro-batch. Loss gradients are scaled
// by mlm_scale (1 / MLM positions of the global batch) and struct_scale
// (struct-loss-weight / structure positions of the global batch); gradients accumulate.
// The loss sums stay on the device: with out == NULL they accumulate until
// nv_model_take_losses (the trainer: one readback per step, however many micro-batches);
// with out, this call's sums are read back at once (pending ones stay pending).
void nv_model_step(nv_model *m, const nv_batch *b, double mlm_scale, double struct_scale,
                   int want_grad, nv_losses *out);
// The loss sums and counts of the steps since the last call, read back at once; resets them.
void nv_model_take_losses(nv_model *m, nv_losses *out);
// Install (or clear with NULL) the hook for the next nv_model_step calls.
void nv_model_set_grad_hook(nv_model *m, const nv_grad_hook *hook);

// Optional: after a forward, the final hidden states h (after LN_final) of this batch,
// as host doubles [rows*seq_len, d]; and the logits of the selected positions.
void nv_model_get_hidden(const nv_model *m, double *host);
// After a forward: the logits of the last step's selected rows, in flat-index order, as
// host doubles: mlm [n_mlm, V] (positions with mlm_mask) and st [n_struct, 3] (positions
// with struct_mask and a known label); either may be NULL. Counts as in nv_losses.
void nv_model_get_logits(const nv_model *m, double *mlm, double *st);

// Bytes of the model's one device allocation (weights, compute copy, gradients, activations,
// scratch), planned at creation.
size_t nv_model_device_bytes(const nv_model *m);

// Bytes nv_model_create_ex would allocate on the device (its one arena), without allocating.
size_t nv_model_plan_bytes(const nv_model_config *cfg, const nv_backend *be, int tp_size,
                           int max_tokens, int recompute);

// Bytes of activation memory nv_model_create allocates for max_tokens.
size_t nv_model_activation_bytes(const nv_model_config *cfg, const nv_backend *be,
                                 int tp_size, int max_tokens);
