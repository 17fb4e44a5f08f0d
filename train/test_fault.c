// test_fault.c - NVWA_TEST_FAULT (train/test_fault.h): NaN or Inf gradients and NaN losses
// on chosen ranks and steps, for the tests of the non-finite-step handling.
#include "train/test_fault.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void nv_test_fault_parse(nv_test_fault *f, const nv_param_table *pt, const nv_dist *d) {
    memset(f, 0, sizeof *f);
    const char *s = getenv("NVWA_TEST_FAULT");
    if (!s || !*s) return;
    char buf[256], name[NV_PARAM_NAME_MAX] = "layers.0.attn.wqkv";
    snprintf(buf, sizeof buf, "%s", s);
    f->rank = -1;
    f->step = f->count = 1;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ":", &save); tok; tok = strtok_r(NULL, ":", &save)) {
        if (!strcmp(tok, "grad-nan")) f->kind = 1;
        else if (!strcmp(tok, "grad-inf")) f->kind = 2;
        else if (!strcmp(tok, "loss-nan")) f->kind = 3;
        else if (!strncmp(tok, "rank=", 5)) f->rank = atoi(tok + 5);
        else if (!strncmp(tok, "step=", 5)) f->step = atol(tok + 5);
        else if (!strncmp(tok, "count=", 6)) f->count = atol(tok + 6);
        else if (!strncmp(tok, "tensor=", 7)) snprintf(name, sizeof name, "%s", tok + 7);
        else nv_dist_abort(d, "NVWA_TEST_FAULT=%s: unknown part '%s'", s, tok);
    }
    f->tensor = -1;
    for (int k = 0; k < pt->n; k++)
        if (!strcmp(pt->p[k].name, name)) f->tensor = k;
    if (!f->kind || f->tensor < 0)
        nv_dist_abort(d, "NVWA_TEST_FAULT=%s: needs grad-nan, grad-inf or loss-nan and a known tensor", s);
    if (d->rank == 0) fprintf(stderr, "nvwa: warning: NVWA_TEST_FAULT=%s (fault injection for tests)\n", s);
}

static int fault_now(const nv_test_fault *f, const nv_dist *d, long step1, int kind) {
    return f->kind == kind && (f->rank < 0 || f->rank == d->rank) && step1 >= f->step &&
           step1 < f->step + f->count;
}

// Grad faults go in right after the gradients are zeroed: backward accumulates onto them.
void nv_test_fault_grad(const nv_test_fault *f, const nv_dist *d, long step1, nv_model *m) {
    for (int kind = 1; kind <= 2; kind++) {
        if (!fault_now(f, d, step1, kind)) continue;
        const nv_backend *be = nv_model_backend(m);
        const float v = kind == 1 ? NAN : INFINITY;
        be->to_device(nv_model_tensor(m, nv_model_grad(m), f->tensor), &v, sizeof v);
    }
}

int nv_test_fault_loss(const nv_test_fault *f, const nv_dist *d, long step1) {
    return fault_now(f, d, step1, 3);
}
