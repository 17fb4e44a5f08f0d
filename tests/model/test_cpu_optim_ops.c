// test_cpu_optim_ops.c - the optimizer kernels of both CPU instances: AdamW steps against a
// direct transcription of the formula in backend.h, sumsq against a long double sum and
// bitwise equal for any thread count, scale, and the NaN/Inf check.
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "model/backend.h"
#include "tests/testutil.h"

static void test_adamw(const nv_backend *B, double tol) {
    const size_t n = 1000 + tu_int(0, 500);
    double *w = malloc(n * 8), *m = malloc(n * 8), *v = malloc(n * 8), *g = malloc(n * 8);
    double *got = malloc(n * 8);
    const int f32 = B->act_bytes == 4;
    for (size_t i = 0; i < n; i++) {
        w[i] = tu_normal() * 0.1, m[i] = tu_normal() * 1e-2, v[i] = tu_uniform(1e-6, 1e-3);
        g[i] = tu_normal() * 0.05;
        if (f32) w[i] = (float)w[i], m[i] = (float)m[i], v[i] = (float)v[i], g[i] = (float)g[i];
    }
    const size_t sb = B->state_bytes;
    void *dw = B->alloc(n * sb), *dm = B->alloc(n * sb), *dv = B->alloc(n * sb);
    void *dg = B->alloc(n * sb), *da = B->alloc(n * B->act_bytes);
    B->upload_state(dw, w, n), B->upload_state(dm, m, n), B->upload_state(dv, v, n);
    B->upload_state(dg, g, n);
    const double b1 = tu_uniform(0.8, 0.95), b2 = tu_uniform(0.95, 0.999), eps = 1e-8;
    const double wd = tu_uniform(0, 0.1), gscale = tu_uniform(0.2, 1.0);
    for (int t = 1; t <= 3; t++) {
        const double lr = tu_uniform(1e-4, 1e-2), bc1 = 1 - pow(b1, t), bc2 = 1 - pow(b2, t);
        B->adamw(dw, dm, dv, dg, t == 2 ? NULL : da, n, lr, b1, b2, eps, wd, bc1, bc2, gscale);
        for (size_t i = 0; i < n; i++) { // backend.h, transcribed
            const double gp = g[i] * gscale;
            m[i] = b1 * m[i] + (1 - b1) * gp;
            v[i] = b2 * v[i] + (1 - b2) * gp * gp;
            w[i] = w[i] - lr * ((m[i] / bc1) / (sqrt(v[i] / bc2) + eps) + wd * w[i]);
        }
        B->download_state(got, dw, n);
        for (size_t i = 0; i < n; i++)
            if (tu_relerr(got[i], w[i]) > tol) {
                CHECK(0, "%s adamw step %d w[%zu]: %.10g vs %.10g", B->name, t, i, got[i], w[i]);
                break;
            }
        B->download_state(got, dm, n);
        for (size_t i = 0; i < n; i++)
            if (tu_relerr(got[i], m[i]) > tol) {
                CHECK(0, "%s adamw step %d m[%zu]", B->name, t, i);
                break;
            }
        B->download_state(got, dv, n);
        for (size_t i = 0; i < n; i++)
            if (tu_relerr(got[i], v[i]) > tol) {
                CHECK(0, "%s adamw step %d v[%zu]", B->name, t, i);
                break;
            }
        if (t != 2) { // the act copy equals the master
            double *act = malloc(n * 8);
            B->download_act(act, da, n);
            B->download_state(got, dw, n);
            CHECK(!memcmp(act, got, n * 8), "%s adamw w_act differs from w", B->name);
            free(act);
        }
        if (f32) // continue from what the backend holds, as training does
            for (size_t i = 0; i < n; i++)
                w[i] = (float)w[i], m[i] = (float)m[i], v[i] = (float)v[i];
    }
    free(w), free(m), free(v), free(g), free(got);
    B->free(dw), B->free(dm), B->free(dv), B->free(dg), B->free(da);
}

static void test_sumsq_scale_nonfinite(const nv_backend *B) {
    const size_t n = 100000 + tu_int(0, 9999); // several reduction blocks, a ragged tail
    double *x = malloc(n * 8);
    long double want = 0;
    for (size_t i = 0; i < n; i++) {
        x[i] = tu_normal();
        if (B->act_bytes == 4) x[i] = (float)x[i];
        want += (long double)x[i] * x[i];
    }
    void *d = B->alloc(n * B->state_bytes);
    B->upload_state(d, x, n);
    double s[3];
#ifdef _OPENMP
    const int nt0 = omp_get_max_threads();
    for (int k = 0; k < 3; k++) {
        omp_set_num_threads(k + 1);
        s[k] = B->sumsq(d, n);
    }
    omp_set_num_threads(nt0);
#else
    for (int k = 0; k < 3; k++) s[k] = B->sumsq(d, n);
#endif
    CHECK(s[0] == s[1] && s[1] == s[2], "%s sumsq depends on the thread count: %.17g %.17g %.17g",
          B->name, s[0], s[1], s[2]);
    CHECK(tu_relerr(s[0], (double)want) < 1e-13, "%s sumsq %.17g vs %.17g", B->name, s[0],
          (double)want);
    CHECK(tu_relerr(B->sumsq(d, 7), x[0] * x[0] + x[1] * x[1] + x[2] * x[2] + x[3] * x[3] +
                                         x[4] * x[4] + x[5] * x[5] + x[6] * x[6]) < 1e-15,
          "%s sumsq small", B->name);

    const double sc = tu_uniform(0.1, 2);
    B->scale(d, sc, n);
    double *y = malloc(n * 8);
    B->download_state(y, d, n);
    const double tol = B->state_bytes == 4 ? 3e-7 : 1e-15; // float: s and the product round
    for (size_t i = 0; i < n; i++)
        if (tu_relerr(y[i], x[i] * sc) > tol) {
            CHECK(0, "%s scale[%zu]: %g vs %g", B->name, i, y[i], x[i] * sc);
            break;
        }

    // the gradient check's non-finite test is a non-finite sum of squares (sumsq_to, into a
    // device double): one NaN or Inf anywhere must show, nothing past n may
    double *dd = B->alloc(sizeof(double)), got;
    B->upload_state(d, x, n);
    B->sumsq_to(dd, d, n);
    B->to_host(&got, dd, sizeof got);
    CHECK(isfinite(got) && got == B->sumsq(d, n), "%s sumsq_to %.17g vs sumsq", B->name, got);
    const double bads[3] = {NAN, INFINITY, -INFINITY};
    for (int k = 0; k < 3; k++) {
        const size_t at = (size_t)tu_int(0, (int)n - 1);
        B->upload_state(d, x, n);
        B->upload_state((char *)d + at * B->state_bytes, &bads[k], 1);
        B->sumsq_to(dd, d, n);
        B->to_host(&got, dd, sizeof got);
        CHECK(!isfinite(got), "%s non-finite sum missed %g at %zu", B->name, bads[k], at);
        B->sumsq_to(dd, d, at);
        B->to_host(&got, dd, sizeof got);
        CHECK(isfinite(got), "%s sumsq_to looked past n", B->name);
    }
    B->free(dd);
    free(x), free(y);
    B->free(d);
}

int main(void) {
    tu_seed();
    const nv_backend *bs[2] = {nv_backend_cpu_f64(), nv_backend_cpu()};
    // f64: the same double arithmetic; f32: the kernel computes in double and rounds once,
    // so each step is within a float rounding of the transcription
    const double tols[2] = {1e-13, 3e-7};
    for (int k = 0; k < 2; k++) {
        test_adamw(bs[k], tols[k]);
        test_sumsq_scale_nonfinite(bs[k]);
    }
    return tu_finish("test_cpu_optim_ops");
}
