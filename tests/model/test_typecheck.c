// test_typecheck.c - cpu-bf16 stops a model that hands an op a buffer of the wrong type
// (model/backend.h: [act] / [state] / [f64] / [i32]), the class of the review's C1.
//   1. This executable compiles model/model.c itself with NV_TEST_REINTRODUCE_C1: the
//      LayerNorm weights go to the ops as their fp32 masters, as before the fix. On cpu-bf16
//      the first step must stop (exit 70) with the op and argument named. On the fp32 CPU
//      backend the same model runs: act and state coincide there, which is why C1 went
//      unnoticed (the step is expected to succeed).
//   2. Direct misuse of single ops with the buffers of a correct model: a state buffer as an
//      act weight, an act buffer as a weight gradient, an extent past the end of a tensor.
// Each case runs in a child process; the parent checks the exit status and the message.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "data/batch.h"
#include "model/model.h"
#include "tests/model_testutil.h"
#include "tests/testutil.h"

typedef void (*child_fn)(void);

// run fn in a child with stderr captured; returns its exit status, message in buf
static int run_child(child_fn fn, char *buf, size_t cap) {
    int fd[2];
    REQUIRE(pipe(fd) == 0, "pipe");
    fflush(stdout);
    fflush(stderr);
    const pid_t pid = fork();
    REQUIRE(pid >= 0, "fork");
    if (pid == 0) {
        close(fd[0]);
        dup2(fd[1], 2);
        fn();
        _exit(0);
    }
    close(fd[1]);
    size_t got = 0;
    ssize_t k;
    while (got + 1 < cap && (k = read(fd[0], buf + got, cap - 1 - got)) > 0) got += (size_t)k;
    buf[got] = 0;
    close(fd[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static const nv_backend *g_be;
static nv_model *g_m;

static nv_model *tiny_model(const nv_backend *be, nv_batch *b) {
    nv_model_config c = tu_model_config(2, 32, 48, 2, 8, 0.5);
    const int rows = 2, L = 24;
    nv_model *m = nv_model_create(&c, be, 0, 1, NULL, rows * L);
    nv_model_init_weights(m, 7);
    nv_batch_alloc(b, rows, L);
    for (int r = 0; r < rows; r++) // two segments per row: <cls> seq <eos> <cls> seq <eos>
        for (int i = 0; i < L; i++) {
            const int k = r * L + i, seg = i < 12 ? 0 : 1, p = i % 12;
            b->input[k] = p == 0 ? 1 : p == 11 ? 2 : 5 + (k * 7) % 4;
            b->target[k] = 5 + (k * 3) % 4;
            b->segment[k] = r * 2 + seg;
            b->position[k] = p;
            b->struct_in[k] = 0;
            b->struct_target[k] = p % 3;
            b->mlm_mask[k] = p % 4 == 1;
            b->struct_mask[k] = p % 5 == 2;
        }
    return m;
}

static void step_child(void) {
    nv_batch b;
    nv_model *m = tiny_model(g_be, &b);
    nv_model_step(m, &b, 0.1, 0.1, 1, NULL);
    nv_model_free(m);
    nv_batch_free(&b);
}

// a weight's master slice where the op reads its act copy
static void misuse_state_as_weight(void) {
    const nv_param_ids *id = nv_model_param_ids(g_m);
    void *w = nv_model_tensor(g_m, nv_model_master(g_m), id->final_norm);
    void *x = nv_model_weights_act(g_m), *mean = nv_model_grad(g_m);
    g_be->layernorm_fwd(x, mean, mean, x, w, 1, 32);
}

// an act buffer where a weight gradient (state) is accumulated
static void misuse_act_as_grad(void) {
    void *wact = nv_model_weights_act(g_m);
    g_be->matmul_bwd(NULL, wact, NULL, wact, wact, wact, 1, 16, 16);
}

// the right type, but 100 more elements than the tensor holds
static void misuse_extent(void) {
    const nv_param_table *t = nv_model_params(g_m);
    g_be->scale(nv_model_grad(g_m), 2.0, t->total + 100);
}

static void expect_stop(const char *what, child_fn fn, const char *needle) {
    char msg[4096];
    const int rc = run_child(fn, msg, sizeof msg);
    printf("  %-44s exit %d: %.*s\n", what, rc, (int)strcspn(msg, "\n"), msg);
    CHECK(rc == 70, "%s: exit %d, want 70 (stopped by the type check)", what, rc);
    CHECK(strstr(msg, needle) != NULL, "%s: message lacks '%s': %s", what, needle, msg);
}

int main(void) {
    char msg[4096];
    printf("model.c with C1 reintroduced (LayerNorm weights passed as fp32 masters)\n");
    g_be = nv_backend_cpu_bf16();
    expect_stop("cpu-bf16 step", step_child, "layernorm_fwd(w): got a [state] (fp32) buffer");
    g_be = nv_backend_cpu();
    const int rc = run_child(step_child, msg, sizeof msg);
    printf("  %-44s exit %d (act = state: nothing to tell apart)\n", "cpu (fp32) step", rc);
    CHECK(rc == 0, "the fp32 CPU backend should run this model: exit %d: %s", rc, msg);

    printf("single ops given the wrong buffers (cpu-bf16)\n");
    nv_batch b;
    g_be = nv_backend_cpu_bf16();
    g_m = tiny_model(g_be, &b);
    expect_stop("master slice as a LayerNorm weight", misuse_state_as_weight, "layernorm_fwd(w)");
    expect_stop("act copy as a weight gradient", misuse_act_as_grad, "matmul_bwd(dW): got a [act]");
    expect_stop("extent past the gradient buffer", misuse_extent, "run past the end");
    nv_model_free(g_m);
    nv_batch_free(&b);
    return tu_finish("test_typecheck");
}
