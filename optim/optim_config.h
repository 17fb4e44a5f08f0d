// optim_config.h - the [optim] section (design section 10): AdamW and its schedule.
// train/config.c parses and validates it with the rest of the file; the optimizer reads
// only this part.
#pragma once

typedef struct nv_optim_config {
    double lr, min_lr;
    int warmup_steps;
    double weight_decay, beta1, beta2, eps, grad_clip; // grad-clip 0 = off
} nv_optim_config;
