// model_testutil.h - a small model config for the tests that build models by hand.
#pragma once
#include "train/config.h"

// L layers of width d (H heads, GeGLU width f), every other layer global (layer 0 first),
// local window w, the design's RoPE thetas, structure input on, structure weight sw.
static inline nv_model_config tu_model_config(int L, int d, int f, int H, int w, double sw) {
    nv_model_config c = {0};
    c.num_layers = L;
    c.hidden_size = d;
    c.ffn_hidden_size = f;
    c.num_attn_heads = H;
    c.vocab_size = 16;
    c.local_window = w;
    c.global_attn_every = 2;
    c.rope_theta_global = 160000;
    c.rope_theta_local = 10000;
    c.structure_input = 1;
    c.struct_loss_weight = sw;
    return c;
}
