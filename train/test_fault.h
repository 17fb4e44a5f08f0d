// test_fault.h - fault injection for tests, kept out of the step: the trainer calls these
// three hooks and nothing else of them.
#pragma once
#include "model/model.h"
#include "model/params.h"
#include "train/dist.h"

// NVWA_TEST_FAULT="KIND[:rank=R][:step=S][:count=N][:tensor=NAME]", for tests only. KIND:
// grad-nan or grad-inf (element 0 of tensor NAME's local gradient, default
// layers.0.attn.wqkv, before the data-parallel sum) or loss-nan (the rank's local loss);
// on rank R (default every rank) at the 1-based steps S .. S+N-1 (default 1, N 1).
typedef struct nv_test_fault {
    int kind; // 0 none, 1 grad-nan, 2 grad-inf, 3 loss-nan
    int rank;
    long step, count;
    int tensor;
} nv_test_fault;

// Reads NVWA_TEST_FAULT (nothing set: no fault); a malformed value stops every rank.
void nv_test_fault_parse(nv_test_fault *f, const nv_param_table *pt, const nv_dist *d);
// Grad faults, right after the gradients are zeroed (backward accumulates onto them).
void nv_test_fault_grad(const nv_test_fault *f, const nv_dist *d, long step1, nv_model *m);
// 1 when this rank's local loss is to be NaN at 1-based step step1.
int nv_test_fault_loss(const nv_test_fault *f, const nv_dist *d, long step1);
