// typecheck.c - the buffer-type registry behind model/cpu/typecheck.h.
//
// Process state, like the CUDA backend's context: the kernel interface carries no context
// argument, and a check must see every buffer any model declared. A sorted array of
// [start, end) regions under a mutex; ops look up a handful of pointers per call (binary
// search), which costs nothing next to the op itself.
#include "model/cpu/typecheck.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model/backend.h"

typedef struct region {
    uintptr_t lo, hi;
    int type;
} region;

static struct {
    pthread_mutex_t mu;
    region *r;
    size_t n, cap;
    int mode; // 0 unknown, 1 on, 2 off (NVWA_TYPECHECK=0)
} g_reg = {PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0, 0};

static const char *type_name(int t) {
    switch (t) {
    case NV_T_ACT: return "[act] (bf16)";
    case NV_T_STATE: return "[state] (fp32)";
    case NV_T_F64: return "[f64]";
    case NV_T_I32: return "[i32]";
    default: return "[?]";
    }
}

static int enabled(void) {
    if (!g_reg.mode) {
        const char *e = getenv("NVWA_TYPECHECK");
        g_reg.mode = e && !strcmp(e, "0") ? 2 : 1;
    }
    return g_reg.mode == 1;
}

// index of the first region with lo >= p
static size_t lower(uintptr_t p) {
    size_t a = 0, b = g_reg.n;
    while (a < b) {
        const size_t m = (a + b) / 2;
        if (g_reg.r[m].lo < p) a = m + 1;
        else b = m;
    }
    return a;
}

static void forget_locked(uintptr_t lo, uintptr_t hi) {
    size_t k = 0;
    for (size_t i = 0; i < g_reg.n; i++)
        if (g_reg.r[i].hi <= lo || g_reg.r[i].lo >= hi) g_reg.r[k++] = g_reg.r[i];
    g_reg.n = k;
}

void nv_typecheck_declare(const void *p, size_t bytes, int type) {
    if (!p || !bytes || !enabled()) return;
    const uintptr_t lo = (uintptr_t)p, hi = lo + bytes;
    pthread_mutex_lock(&g_reg.mu);
    forget_locked(lo, hi); // a buffer re-declared (reused memory) takes its new type
    if (g_reg.n == g_reg.cap) {
        const size_t cap = g_reg.cap ? 2 * g_reg.cap : 256;
        region *r = realloc(g_reg.r, cap * sizeof *r);
        if (!r) {
            fprintf(stderr, "nvwa: typecheck: out of memory\n");
            exit(70);
        }
        g_reg.r = r;
        g_reg.cap = cap;
    }
    const size_t at = lower(lo);
    memmove(g_reg.r + at + 1, g_reg.r + at, (g_reg.n - at) * sizeof *g_reg.r);
    g_reg.r[at] = (region){lo, hi, type};
    g_reg.n++;
    pthread_mutex_unlock(&g_reg.mu);
}

void nv_typecheck_forget(const void *p, size_t bytes) {
    if (!p || !enabled()) return;
    pthread_mutex_lock(&g_reg.mu);
    forget_locked((uintptr_t)p, (uintptr_t)p + (bytes ? bytes : 1));
    if (!g_reg.n) { // the last model is gone: give the memory back (leak checkers)
        free(g_reg.r);
        g_reg.r = NULL;
        g_reg.cap = 0;
    }
    pthread_mutex_unlock(&g_reg.mu);
}

void nv_typecheck(const void *p, size_t bytes, int type, const char *op, const char *arg) {
    if (!p || !enabled()) return;
    const uintptr_t lo = (uintptr_t)p, hi = lo + (bytes ? bytes : 1);
    pthread_mutex_lock(&g_reg.mu);
    const size_t at = lower(lo + 1); // regions with lo <= p end before index `at`
    const region *r = at > 0 && g_reg.r[at - 1].hi > lo ? &g_reg.r[at - 1] : NULL;
    const region got = r ? *r : (region){0, 0, 0};
    pthread_mutex_unlock(&g_reg.mu);
    if (!r) return; // not a declared buffer (tests' own): nothing to check
    if (got.type != type) {
        fprintf(stderr, "nvwa: cpu-bf16 type check: %s(%s): got a %s buffer where the op reads %s\n"
                "---> HINT: model/backend.h marks every pointer; the weights an op reads are the "
                "act compute copy, their gradients and statistics are state\n",
                op, arg, type_name(got.type), type_name(type));
        fflush(NULL);
        _exit(70); // at once: the program's state is not to be trusted (no exit handlers)
    }
    if (hi > got.hi) {
        fprintf(stderr, "nvwa: cpu-bf16 type check: %s(%s): %zu bytes from offset %zu run past "
                "the end of its %zu-byte buffer\n---> HINT: the size passed to the op is larger "
                "than the tensor it points into\n", op, arg, (size_t)(hi - lo),
                (size_t)(lo - got.lo), (size_t)(got.hi - got.lo));
        fflush(NULL);
        _exit(70);
    }
}
