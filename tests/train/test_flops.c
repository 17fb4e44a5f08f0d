// test_flops.c - model/flops.c and train/planner.c against independent counts: the
// parameter count against the tensor shapes of design section 6 listed here, K_l against
// brute-force counting of visible pairs, FLOPs of small cases worked by hand, and
// memory-estimate invariants.
#include <string.h>

#include "model/flops.h"
#include "train/planner.h"
#include "tests/testutil.h"

// Sum of the tensor shapes of design section 6, written out tensor by tensor.
static int64_t count_by_shapes(const nv_model_config *m) {
    int64_t d = m->hidden_size, f = m->ffn_hidden_size, V = m->vocab_size;
    struct { const char *name; int64_t rows, cols; } t[] = {
        {"embed.tok", V, d},
        {"embed.struct", m->structure_input ? 4 : 0, d},
        {"embed.norm.weight", d, 1},
        {"final_norm.weight", d, 1},
        {"head.mlm.dense", d, d},
        {"head.mlm.norm.weight", d, 1},
        {"head.mlm.bias", V, 1},
        {"head.struct.weight", 3, d},
        {"head.struct.bias", 3, 1},
    };
    int64_t n = 0;
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) n += t[i].rows * t[i].cols;
    for (int l = 0; l < m->num_layers; l++) {
        struct { const char *name; int64_t rows, cols; } L[] = {
            {"attn_norm.weight", l > 0 || m->first_attn_norm ? d : 0, 1}, // ModernBERT: none in layer 0
            {"attn.wqkv", 3 * d, d}, {"attn.wo", d, d},
            {"mlp_norm.weight", d, 1},  {"mlp.w_in", 2 * f, d},  {"mlp.w_out", d, f},
        };
        for (size_t i = 0; i < sizeof L / sizeof L[0]; i++) n += L[i].rows * L[i].cols;
    }
    return n;
}

static nv_model_config shape(int L, int d, int f, int H, int window, int every, int si) {
    nv_model_config m = {0};
    m.num_layers = L;
    m.hidden_size = d;
    m.ffn_hidden_size = f;
    m.num_attn_heads = H;
    m.vocab_size = 16;
    m.local_window = window;
    m.global_attn_every = every;
    m.rope_theta_global = 160000;
    m.rope_theta_local = 10000;
    m.structure_input = si;
    m.struct_loss_weight = 0.5;
    return m;
}

static void test_params(void) {
    nv_model_config shapes[] = {
        shape(2, 64, 172, 4, 128, 3, 1),   shape(3, 96, 256, 4, 64, 3, 0),
        shape(12, 640, 3456, 20, 128, 3, 1), shape(32, 1280, 3584, 20, 128, 3, 1),
        shape(64, 6144, 16384, 48, 128, 3, 1), shape(1, 2, 1, 1, 2, 1, 0),
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const nv_model_config *m = &shapes[i];
        CHECK(nv_param_count(m) == count_by_shapes(m), "shape %zu: %lld vs %lld", i,
              (long long)nv_param_count(m), (long long)count_by_shapes(m));
        int64_t d = m->hidden_size, f = m->ffn_hidden_size;
        CHECK(nv_param_count_matmul(m) == m->num_layers * (4 * d * d + 3 * d * f), "N");
        // tensor shards: the matmul part splits, the rest is replicated
        for (int t = 1; t <= 4; t *= 2) {
            int64_t rep = nv_param_count(m) - nv_param_count_matmul(m);
            CHECK(nv_param_count_local(m, t) == rep + nv_param_count_matmul(m) / t, "local t=%d", t);
        }
    }
    // random shapes
    for (int rep = 0; rep < 100; rep++) {
        nv_model_config m = shape(tu_int(1, 40), 2 * tu_int(1, 2000), tu_int(1, 9000), 1, 2, 3,
                                  tu_int(0, 1));
        m.first_attn_norm = tu_int(0, 1);
        CHECK(nv_param_count(&m) == count_by_shapes(&m), "random shape %d", rep);
    }
    // the 1.6B model card: about 1.61e9
    nv_model_config big = shape(32, 2048, 5440, 32, 128, 3, 1);
    double p = (double)nv_param_count(&big);
    CHECK(fabs(p - 1.61e9) / 1.61e9 < 0.005, "1.6b: %.6g parameters", p);
    printf("1.6b: %lld parameters\n", (long long)nv_param_count(&big));
}

static int64_t brute_pairs(int64_t n, int window) {
    int64_t r = window / 2, k = 0;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++)
            if (window == 0 || llabs(i - j) <= r) k++;
    return k;
}

static void test_pairs(void) {
    // every n around the window edges, then random ones
    for (int window = 2; window <= 20; window += 2)
        for (int64_t n = 0; n <= 3 * window; n++) {
            CHECK(nv_attn_pairs(n, window) == brute_pairs(n, window), "n %lld window %d: %lld vs %lld",
                  (long long)n, window, (long long)nv_attn_pairs(n, window),
                  (long long)brute_pairs(n, window));
            CHECK(nv_attn_pairs(n, 0) == n * n, "global n %lld", (long long)n);
        }
    for (int rep = 0; rep < 200; rep++) {
        int window = 2 * tu_int(1, 200);
        int64_t n = tu_int(1, 1200);
        CHECK(nv_attn_pairs(n, window) == brute_pairs(n, window), "n %lld window %d",
              (long long)n, window);
    }
    // design section 11's closed form where it applies (n > 2r)
    CHECK(nv_attn_pairs(1024, 128) == 1024 * 129 - 64 * 65, "1024/128");
}

static void test_flops_by_hand(void) {
    // one global layer, d 4, f 6, one 3-token sequence, 1 selected position:
    // N = 4*16 + 3*4*6 = 136; 6 N T = 2448; attention 12*4*9 = 432;
    // heads 6*1*(16 + 4*16) = 480 plus 6*3*(3*4) = 216. Total 3576.
    nv_model_config m = shape(1, 4, 6, 2, 2, 1, 1);
    int32_t lens1[] = {3};
    double fl = nv_flops_per_step_sel(&m, lens1, 1, 1);
    CHECK(fl == 3576, "%.17g", fl);
    // two layers, global every 2: layer 0 global, layer 1 local with r = 1.
    // Sequences 5 and 2: K_global = 25 + 4 = 29; K_local = (5*3 - 2) + 4 = 17.
    // N = 2 * 136 = 272; T = 7; 6 N T = 11424; attention 12*4*(29+17) = 2208;
    // heads with 3 selected: 6*3*80 = 1440, plus 6*7*12 = 504. Total 15576.
    nv_model_config m2 = shape(2, 4, 6, 2, 2, 2, 1);
    int32_t lens2[] = {5, 2};
    fl = nv_flops_per_step_sel(&m2, lens2, 2, 3);
    CHECK(fl == 15576, "%.17g", fl);
    // the estimate agrees when all sequences have the mean length
    nv_model_config m3 = shape(6, 128, 344, 4, 64, 3, 1);
    int32_t lens3[40];
    for (int i = 0; i < 40; i++) lens3[i] = 250;
    double exact = nv_flops_per_step_sel(&m3, lens3, 40, 1500); // 15% of 10000
    double est = nv_flops_estimate(&m3, 40 * 250, 250, 0.15);
    CHECK(tu_relerr(exact, est) < 1e-12, "%.17g vs %.17g", exact, est);
    // without the selected count: the design's mask-rate
    double dflt = nv_flops_per_step(&m3, lens3, 40);
    CHECK(tu_relerr(exact, dflt) < 1e-12, "%.17g vs %.17g", exact, dflt);
    // the head term: one more selected position adds 6 (d^2 + d V)
    double one = nv_flops_per_step_sel(&m3, lens3, 40, 1501) - exact;
    CHECK(one == 6.0 * (128 * 128 + 128 * 16), "%.17g", one);
    // 1.6b: matmuls dominate, ~6 N per token plus attention
    nv_model_config big = shape(32, 2048, 5440, 32, 128, 3, 1);
    double per_tok = nv_flops_estimate(&big, 1024, 1024, 0.15) / 1024;
    double six_n = 6.0 * (double)nv_param_count_matmul(&big);
    CHECK(per_tok > six_n && per_tok < 1.2 * six_n, "1.6b per token %.4g vs 6N %.4g", per_tok, six_n);
}

static void test_memory(void) {
    nv_config c;
    nv_config_defaults(&c);
    c.model = shape(32, 2048, 5440, 32, 128, 3, 1);
    c.data.seq_length = 1024;
    c.data.micro_batch = 8;
    c.data.global_batch = 512;
    c.train.device = NV_DEVICE_CUDA;
    c.train.precision = NV_PREC_BF16;
    c.parallel.tensor = 2;
    nv_memory_estimate a, b;
    nv_memory_per_rank(&c, 16, &a);
    double P = (double)nv_param_count_local(&c.model, 2);
    CHECK(a.tensor == 2 && a.data == 8 && a.mixed, "layout");
    CHECK(a.weights == 2 * P && a.masters == 4 * P && a.grads == 4 * P && a.adam == 8 * P, "no zero1");
    CHECK(a.total == a.weights + a.masters + a.grads + a.adam + a.activations + a.workspace, "sum");
    CHECK(a.act_recompute < a.act_stored / 5, "recompute %.3g vs %.3g", a.act_recompute, a.act_stored);
    CHECK(a.activations == a.act_stored, "recompute off");
    c.parallel.zero1 = 1;
    c.train.recompute = 1;
    nv_memory_per_rank(&c, 16, &b);
    CHECK(b.masters == 4 * P / 8 && b.adam == 8 * P / 8 && b.grads == a.grads, "zero1 shards");
    CHECK(b.activations == b.act_recompute, "recompute on");
    // activations scale with the micro-batch; tensor parallelism shrinks them
    c.data.micro_batch = 16;
    nv_memory_per_rank(&c, 16, &b);
    CHECK(tu_relerr(b.act_stored, 2 * a.act_stored) < 1e-12, "linear in micro-batch");
    c.parallel.tensor = 4;
    nv_memory_estimate t4;
    nv_memory_per_rank(&c, 16, &t4);
    CHECK(t4.act_stored < b.act_stored && t4.params_local < b.params_local, "tensor 4");
    // fp32 on CPU: the weights are the masters
    c.train.device = NV_DEVICE_CPU;
    nv_memory_per_rank(&c, 16, &b);
    CHECK(!b.mixed && b.masters == 0 && b.weights == 4 * (double)b.params_local, "cpu fp32");

    // the report names the numbers
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    nv_config_defaults(&c);
    c.model = shape(32, 2048, 5440, 32, 128, 3, 1);
    nv_dry_run_report(&c, 1, f);
    fclose(f);
    char want[64];
    int64_t n = nv_param_count(&c.model);
    snprintf(want, sizeof want, "%lld,%03lld,%03lld,%03lld", (long long)(n / 1000000000),
             (long long)(n / 1000000 % 1000), (long long)(n / 1000 % 1000), (long long)(n % 1000));
    CHECK(strstr(buf, want) != NULL, "report lacks %s:\n%s", want, buf);
    CHECK(strstr(buf, "memory per rank") && strstr(buf, "total"), "%s", buf);
    free(buf);
}

int main(void) {
    tu_seed();
    test_params();
    test_pairs();
    test_flops_by_hand();
    test_memory();
    return tu_finish("test_flops");
}
