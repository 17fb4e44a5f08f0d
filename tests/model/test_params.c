// test_params.c - the parameter table: names and shapes of design section 6, decay groups,
// and initial weights that do not depend on the tensor-parallel layout.
#include <math.h>
#include <string.h>

#include "data/nv_util.h"
#include "model/flops.h"
#include "model/params.h"
#include "tests/testutil.h"

int main(void) {
    tu_seed();
    nv_model_config c = {0};
    c.num_layers = 3;
    c.num_attn_heads = 4;
    c.hidden_size = 4 * tu_int(2, 6) * 2; // divisible by 4 heads and by tp 4
    c.ffn_hidden_size = 8 * tu_int(2, 5);
    c.vocab_size = 16;
    c.structure_input = 1;
    const int64_t d = c.hidden_size, f = c.ffn_hidden_size;

    nv_param_table t;
    nv_param_ids ids;
    nv_params_build(&t, &ids, &c, 0, 1);
    // Shapes written out from the design, independently of params.c.
    struct { const char *name; int64_t r, cols; int decay; } want[] = {
        {"embed.tok", 16, d, 0}, {"embed.struct", 4, d, 0}, {"embed.norm.weight", d, 1, 0},
        {"layers.2.attn_norm.weight", d, 1, 0}, {"layers.2.attn.wqkv", 3 * d, d, 1},
        {"layers.2.attn.wo", d, d, 1}, {"layers.1.mlp_norm.weight", d, 1, 0},
        {"layers.1.mlp.w_in", 2 * f, d, 1}, {"layers.0.mlp.w_out", d, f, 1},
        {"final_norm.weight", d, 1, 0}, {"head.mlm.dense", d, d, 1},
        {"head.mlm.norm.weight", d, 1, 0}, {"head.mlm.bias", 16, 1, 0},
        {"head.struct.weight", 3, d, 1}, {"head.struct.bias", 3, 1, 0},
    };
    size_t count = 0;
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        int k = nv_params_find(&t, want[i].name);
        CHECK(k >= 0, "tensor %s missing", want[i].name);
        if (k < 0) continue;
        CHECK(t.p[k].full[0] == want[i].r && t.p[k].full[1] == want[i].cols,
              "%s: shape [%lld,%lld], want [%lld,%lld]", want[i].name, (long long)t.p[k].full[0],
              (long long)t.p[k].full[1], (long long)want[i].r, (long long)want[i].cols);
        CHECK(t.p[k].decay == want[i].decay, "%s: decay %d", want[i].name, t.p[k].decay);
    }
    for (int k = 0; k < t.n; k++) count += t.p[k].numel;
    // layer 0 has no attention norm unless first-attn-norm (ModernBERT)
    CHECK(t.n == 9 + 6 * c.num_layers - !c.first_attn_norm, "table has %d tensors", t.n);
    CHECK((nv_params_find(&t, "layers.0.attn_norm.weight") >= 0) == c.first_attn_norm,
          "layers.0.attn_norm.weight with first-attn-norm %d", c.first_attn_norm);
    CHECK((double)count == (double)nv_param_count(&c), "table holds %zu elements, nv_param_count says %.0f",
          count, (double)nv_param_count(&c));

    // Init: statistics and layout independence (tp 1 vs tp 2 and 4 by full index).
    uint64_t seed = tu_u64();
    double *full = nv_calloc(t.total, sizeof(double));
    nv_params_init_host(&t, seed, full);
    int k_qkv = nv_params_find(&t, "layers.1.attn.wqkv"), k_out = nv_params_find(&t, "layers.1.mlp.w_out");
    double s = 0, s2 = 0, mx = 0;
    const nv_param *pq = &t.p[k_qkv];
    for (size_t i = 0; i < pq->numel; i++) {
        double v = full[pq->offset + i];
        s += v; s2 += v * v; mx = fmax(mx, fabs(v));
    }
    double sd = sqrt(s2 / pq->numel);
    // truncated at 2 sigma: std = 0.02 * 0.8796
    CHECK(fabs(sd - 0.02 * 0.8796) < 0.02 * 0.15, "wqkv init std %.5f", sd);
    CHECK(mx <= 0.04 + 1e-9, "wqkv init exceeds 2 sigma: %.5f", mx);
    const nv_param *po = &t.p[k_out];
    double so = 0;
    for (size_t i = 0; i < po->numel; i++) so = fmax(so, fabs(full[po->offset + i]));
    CHECK(so <= 0.04 / sqrt(2.0 * c.num_layers) + 1e-9, "w_out not scaled by 1/sqrt(2L): max %.5f", so);
    CHECK(full[t.p[nv_params_find(&t, "final_norm.weight")].offset] == 1.0, "norm weight not 1");

    for (int tp = 2; tp <= 4; tp *= 2) {
        for (int r = 0; r < tp; r++) {
            nv_param_table ts;
            nv_param_ids is;
            nv_params_build(&ts, &is, &c, r, tp);
            double *loc = nv_calloc(ts.total, sizeof(double));
            nv_params_init_host(&ts, seed, loc);
            for (int k = 0; k < ts.n; k++) {
                const nv_param *p = &ts.p[k], *pf = &t.p[k];
                for (size_t i = 0; i < p->numel; i++) {
                    int64_t fi = nv_param_full_index(p, i, r, tp);
                    // independent check of the mapping for the split kinds
                    int64_t lr_ = (int64_t)i / p->local[1], lc = (int64_t)i % p->local[1], er, ec;
                    if (p->split == NV_SPLIT_ROWS) {
                        int64_t R = p->full[0] / p->blocks, Rl = R / tp;
                        er = (lr_ / Rl) * R + r * Rl + lr_ % Rl;
                        ec = lc;
                    } else if (p->split == NV_SPLIT_COLS) {
                        er = lr_;
                        ec = r * p->local[1] + lc;
                    } else {
                        er = lr_;
                        ec = lc;
                    }
                    CHECK(fi == er * p->full[1] + ec, "%s tp%d/%d: index %zu maps to %lld", p->name, r, tp, i, (long long)fi);
                    if (loc[p->offset + i] != full[pf->offset + fi]) {
                        CHECK(0, "%s tp%d/%d: init differs from the unsharded one at %zu", p->name, r, tp, i);
                        break;
                    }
                }
            }
            free(loc);
            nv_params_free(&ts, &is);
        }
    }
    free(full);
    nv_params_free(&t, &ids);
    return tu_finish("params");
}
