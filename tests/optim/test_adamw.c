// test_adamw.c - nv_adamw_step over a parameter table against a direct transcription of
// AdamW (decoupled decay, bias correction, decay groups from the table) over several
// steps; the schedule (warmup, cosine, min-lr) and clipping against their formulas.
#include <math.h>
#include <string.h>

#include "model/params.h"
#include "optim/adamw.h"
#include "tests/model_testutil.h"
#include "tests/testutil.h"

int main(void) {
    tu_seed();
    nv_model_config c = tu_model_config(1, 8, 12, 2, 4, 0.5);
    nv_param_table t;
    nv_param_ids ids;
    nv_params_build(&t, &ids, &c, 0, 1);

    nv_optim_config oc = {0};
    oc.lr = tu_uniform(1e-3, 1e-2);
    oc.min_lr = oc.lr * 0.1;
    oc.warmup_steps = 3;
    oc.weight_decay = tu_uniform(0.01, 0.2);
    oc.beta1 = 0.9;
    oc.beta2 = 0.98;
    oc.eps = 1e-8;
    oc.grad_clip = 1.0;

    const int steps = 7;
    const long total = 10;
    for (int bi = 0; bi < 2; bi++) {
        const nv_backend *be = bi ? nv_backend_cpu() : nv_backend_cpu_f64();
        // Rounding bound per element: each step rounds w and its update once in the state
        // type (unit roundoff u), and the errors add up (AdamW neither amplifies them nor
        // feeds w into m, v): |out - ref| <= 8 u sum_s (|w_s+1| + lr |update_s|). Relative
        // to the final |w| instead, an element that crosses zero fails by chance.
        const double u = bi ? ldexp(1.0, -24) : ldexp(1.0, -53);
        size_t N = t.total;
        double *w = nv_calloc(N, 8), *ref = nv_calloc(N, 8), *m = nv_calloc(N, 8), *v = nv_calloc(N, 8),
               *g = nv_calloc(N, 8), *out = nv_calloc(N, 8), *acc = nv_calloc(N, 8);
        for (size_t i = 0; i < N; i++) w[i] = ref[i] = tu_normal();
        void *dw = be->alloc(N * be->state_bytes), *dg = be->alloc(N * be->state_bytes);
        be->upload_state(dw, w, N);
        if (bi) { be->download_state(ref, dw, N); } // compare from the float-rounded start
        nv_adamw o;
        nv_adamw_init(&o, be, &t, &oc, total, 0, t.total);
        for (int s = 0; s < steps; s++) {
            for (size_t i = 0; i < N; i++) g[i] = tu_normal() * 0.5;
            be->upload_state(dg, g, N);
            if (bi) be->download_state(g, dg, N); // the float-rounded gradient
            double norm = sqrt(be->sumsq(dg, N)), n2 = 0;
            for (size_t i = 0; i < N; i++) n2 += g[i] * g[i];
            CHECK(tu_relerr(norm, sqrt(n2)) < 1e-9, "sumsq %.12g vs %.12g", norm, sqrt(n2));
            double lr = nv_lr_at(&oc, s, total), gs = nv_clip_scale(&oc, norm);
            nv_adamw_step(&o, dw, dg, NULL, lr, gs);
            // direct transcription
            double b1t = pow(oc.beta1, s + 1), b2t = pow(oc.beta2, s + 1);
            for (int k = 0; k < t.n; k++) {
                const nv_param *p = &t.p[k];
                double wd = p->decay ? oc.weight_decay : 0.0;
                for (size_t i = p->offset; i < p->offset + p->numel; i++) {
                    double gi = g[i] * gs;
                    m[i] = oc.beta1 * m[i] + (1 - oc.beta1) * gi;
                    v[i] = oc.beta2 * v[i] + (1 - oc.beta2) * gi * gi;
                    double mh = m[i] / (1 - b1t), vh = v[i] / (1 - b2t);
                    const double upd = mh / (sqrt(vh) + oc.eps) + wd * ref[i];
                    ref[i] -= lr * upd;
                    acc[i] += fabs(ref[i]) + lr * fabs(upd);
                }
            }
        }
        be->download_state(out, dw, N);
        double worst = 0, dev = 0;
        for (size_t i = 0; i < N; i++) {
            worst = fmax(worst, fabs(out[i] - ref[i]) / (8 * u * acc[i]));
            dev = fmax(dev, fabs(out[i] - ref[i]));
        }
        CHECK(worst <= 1, "%s: AdamW after %d steps deviates by %.2f of its rounding bound", be->name,
              steps, worst);
        printf("%s backend: AdamW after %d steps: max deviation %.3e, %.3f of the rounding bound\n",
               be->name, steps, dev, worst);
        nv_adamw_free(&o);
        be->free(dw);
        be->free(dg);
        free(w); free(ref); free(m); free(v); free(g); free(out); free(acc);
    }

    // schedule
    CHECK(fabs(nv_lr_at(&oc, 0, total) - oc.lr / 3) < 1e-15, "warmup step 0");
    CHECK(fabs(nv_lr_at(&oc, 2, total) - oc.lr) < 1e-15, "end of warmup");
    CHECK(fabs(nv_lr_at(&oc, 3, total) - oc.lr) < 1e-15, "cosine start");
    double mid = nv_lr_at(&oc, 3 + 7 / 2, total);
    double want = oc.min_lr + 0.5 * (oc.lr - oc.min_lr) * (1 + cos(M_PI * (3.0 / 7.0)));
    CHECK(fabs(mid - want) < 1e-15, "cosine middle %.6g vs %.6g", mid, want);
    CHECK(fabs(nv_lr_at(&oc, total, total) - oc.min_lr) < 1e-15, "end at min-lr");
    for (long s = 1; s < total; s++) CHECK(nv_lr_at(&oc, s, total) <= nv_lr_at(&oc, s - 1, total) + 1e-15 || s < 3, "not decreasing at %ld", s);
    // clipping
    CHECK(nv_clip_scale(&oc, 0.5) == 1.0, "no clip below the threshold");
    CHECK(fabs(nv_clip_scale(&oc, 4.0) - 0.25) < 1e-15, "clip to norm 1");
    nv_params_free(&t, &ids);
    return tu_finish("adamw");
}
