// model_config.h - the [model] section (design section 10): the shape of the network.
// train/config.c parses and validates it with the rest of the file; the model floor reads
// only this part.
#pragma once

typedef struct nv_model_config {
    int num_layers;          // num-layers
    int hidden_size;         // hidden-size (d)
    int ffn_hidden_size;     // ffn-hidden-size (f)
    int num_attn_heads;      // num-attn-heads (H)
    int vocab_size;          // vocab-size: must be 16
    int local_window;        // local-window: local layers see |i-j| <= window/2
    int global_attn_every;   // global-attn-every: layer l global iff l % this == 0
    double rope_theta_global;
    double rope_theta_local;
    int structure_input;     // structure-input (bool)
    int first_attn_norm;     // first-attn-norm (bool): layer 0 keeps LN_attn (false: ModernBERT)
    double struct_loss_weight;
} nv_model_config;

// Layer l is global (full attention) iff l % global-attn-every == 0, else local (window).
static inline int nv_config_is_global_layer(const nv_model_config *m, int l) {
    return l % m->global_attn_every == 0;
}
