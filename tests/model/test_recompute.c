// test_recompute.c - [train] recompute: the backward recomputes each layer's activations
// from its input; losses and every gradient must equal those without recomputation to the
// bit (CPU, float and double), over a few steps with weight changes in between.
#include <math.h>
#include <string.h>

#include "data/vocab.h"
#include "model/model.h"
#include "tests/model_testutil.h"
#include "tests/testutil.h"

static void make_batch(nv_batch *b, int rows, int L) {
    nv_batch_alloc(b, rows, L);
    for (int r = 0; r < rows; r++) {
        int p = 0, s = 1;
        while (p < L - 4) {
            int len = tu_int(4, L - p > 40 ? 40 : L - p);
            for (int i = 0; i < len; i++, p++) {
                size_t t = (size_t)r * L + p;
                int special = i == 0 || i == len - 1;
                int tok = i == 0 ? NV_TOK_CLS : i == len - 1 ? NV_TOK_EOS : tu_int(NV_TOK_A, NV_TOK_U);
                int sel = !special && tu_uniform(0, 1) < 0.2;
                b->target[t] = tok;
                b->input[t] = sel ? NV_TOK_MASK : tok;
                b->mlm_mask[t] = (uint8_t)sel;
                b->segment[t] = s;
                b->position[t] = i;
                int cls = special ? -1 : tu_int(0, 2);
                b->struct_target[t] = cls;
                int hid = sel || cls < 0 || tu_uniform(0, 1) < 0.4;
                b->struct_in[t] = hid ? 0 : 1 + cls;
                b->struct_mask[t] = (uint8_t)(hid && cls >= 0);
            }
            s++;
        }
    }
    nv_batch_count(b);
}

int main(void) {
    tu_seed();
    nv_model_config c = tu_model_config(4, 32, 40, 4, 8, 0.5);
    const nv_backend *bes[2] = {nv_backend_cpu(), nv_backend_cpu_f64()};
    for (int k = 0; k < 4; k++) { // both backends, without and with layer 0's LN_attn
        const nv_backend *be = bes[k % 2];
        c.first_attn_norm = k / 2;
        const int rows = 2, L = 64;
        nv_model *m0 = nv_model_create_ex(&c, be, 0, 1, NULL, rows * L, L, 0);
        nv_model *m1 = nv_model_create_ex(&c, be, 0, 1, NULL, rows * L, L, 1);
        const nv_param_table *t = nv_model_params(m0);
        double *w = nv_malloc(t->total * sizeof(double)), *g0 = nv_malloc(t->total * sizeof(double)),
               *g1 = nv_malloc(t->total * sizeof(double));
        for (int step = 0; step < 3; step++) {
            for (size_t i = 0; i < t->total; i++) w[i] = 0.3 * tu_normal();
            nv_model_set_weights(m0, w);
            nv_model_set_weights(m1, w);
            nv_batch b;
            make_batch(&b, rows, L);
            nv_losses l0, l1;
            nv_model_zero_grad(m0);
            nv_model_zero_grad(m1);
            nv_model_step(m0, &b, 1.0 / (b.n_mlm + 1), 0.5 / (b.n_struct + 1), 1, &l0);
            nv_model_step(m1, &b, 1.0 / (b.n_mlm + 1), 0.5 / (b.n_struct + 1), 1, &l1);
            CHECK(l0.mlm_sum == l1.mlm_sum && l0.struct_sum == l1.struct_sum,
                  "%s step %d: losses differ %.17g/%.17g vs %.17g/%.17g", be->name, step,
                  l0.mlm_sum, l0.struct_sum, l1.mlm_sum, l1.struct_sum);
            be->download_state(g0, nv_model_grad(m0), t->total);
            be->download_state(g1, nv_model_grad(m1), t->total);
            size_t diff = 0;
            double gmax = 0;
            for (size_t i = 0; i < t->total; i++) {
                diff += g0[i] != g1[i];
                gmax = fmax(gmax, fabs(g0[i]));
            }
            CHECK(gmax > 0, "no gradient");
            CHECK(diff == 0, "%s step %d: %zu gradient entries differ with recompute", be->name, step, diff);
            nv_batch_free(&b);
        }
        printf("%s, first-attn-norm %d: recompute gives identical losses and gradients\n", be->name,
               c.first_attn_norm);
        free(w); free(g0); free(g1);
        nv_model_free(m0);
        nv_model_free(m1);
    }
    return tu_finish("recompute");
}
