// test_scaling.c - the communication model of train/planner.c (nv_comm_per_step) against
// values worked by hand, the GPU ZeRO-1 shard ranges (nv_zero1_range_nccl) against the
// collectives they feed, and the --dry-run report's new sections.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/flops.h"
#include "train/planner.h"
#include "train/comm_nccl.h"
#include "train/grad_sync.h"
#include "tests/testutil.h"

// L=2, d=64, f=172, 4 heads, V=16, every layer global, seq 128, micro-batch 2.
static void small_config(nv_config *c) {
    nv_config_defaults(c);
    nv_model_config *m = &c->model;
    m->num_layers = 2;
    m->hidden_size = 64;
    m->ffn_hidden_size = 172;
    m->num_attn_heads = 4;
    m->vocab_size = 16;
    m->local_window = 128;
    m->global_attn_every = 1;
    m->structure_input = 1;
    c->data.seq_length = 128;
    c->data.micro_batch = 2;
    c->data.mask_rate = 0.15;
    c->train.device = NV_DEVICE_CUDA;
    c->train.precision = NV_PREC_BF16;
    c->train.recompute = 0;
}

static nv_hw_model toy_hw(void) {
    nv_hw_model h = {1e12, 0.5, 1e9, 1e8, 8, 2.0 / 3.0};
    return h;
}

#define CLOSE(a, b) CHECK(tu_relerr((a), (b)) < 1e-12, "%s = %.12g, want %.12g", #a, (double)(a), (double)(b))

// Hand values (see the comments for the arithmetic).
//   replicated: V d + 4 d + d + (2L - 1) d + d + d^2 + d + V + 3d + 3 = 1024+256+64+192+64+4096+64+16+192+3
//     = 5971 (no attention norm in layer 0: first-attn-norm = false)
//   matmuls: L (4 d^2 + 3 d f) = 2 (16384 + 33024) = 98816; tensor 2: 49408 per rank
//   P_local = 55379, fp32 gradients G = 221516 bytes
//   one TP all-reduce buffer: 2 x 128 x 64 x 2 bytes (bf16) = 32768
//   FLOPs for T tokens: 6 N T + 12 d (2 layers x 128^2) (T/128) + 6 (0.15 T)(d^2 + d V) + 6 T 3d
//     T = 1024: 607125504 + 201326592 + 4718592 + 1179648 = 814350336
static void test_dp_allreduce_in_node(void) {
    nv_config c;
    small_config(&c);
    c.parallel.tensor = 2;
    c.parallel.zero1 = 0;
    c.data.global_batch = 8; // world 4 = tensor 2 x data 2, accum 8 / (2 x 2) = 2
    nv_hw_model hw = toy_hw();
    nv_comm_estimate e;
    nv_comm_per_step(&c, 4, &hw, &e);
    CHECK(e.tensor == 2 && e.data == 2 && e.accum == 2 && !e.zero1, "layout %d %d %d", e.tensor, e.data, e.accum);
    CLOSE(e.grad_bytes, 221516.0);
    CLOSE(e.dp_bytes, 221516.0);              // 2 (2-1)/2 G
    CLOSE(e.tp_msg_bytes, 32768.0);
    CLOSE(e.tp_calls, 16.0);                  // accum 2 x 2 layers x 4
    CLOSE(e.tp_bytes, 524288.0);              // 16 x 2 (1/2) x 32768
    CHECK(!e.dp_cross_node && !e.tp_cross_node, "4 ranks share a node");
    CLOSE(e.flops, 814350336.0);
    CLOSE(e.t_compute, 814350336.0 / (4 * 1e12 * 0.5)); // 4.07175168e-4
    CLOSE(e.t_tp, 524288.0 / 1e9);
    CLOSE(e.t_dp, 221516.0 / 1e9);
    // hidden behind 2/3 of the last micro-batch: 2/3 x 4.07175168e-4 / 2 = 1.35725056e-4
    CLOSE(e.t_dp_exposed, 221516e-9 - 1.35725056e-4);
    CLOSE(e.t_step, 4.07175168e-4 + 5.24288e-4 + 8.5790944e-5);
    CLOSE(e.tokens_per_s, 1024.0 / 1.017254112e-3);
    CLOSE(e.mfu_effective, 814350336.0 / (1.017254112e-3 * 4 * 1e12));
}

static void test_zero1_across_nodes(void) {
    nv_config c;
    small_config(&c);
    c.parallel.tensor = 2;
    c.parallel.zero1 = 1;
    c.data.global_batch = 32; // world 16 = tensor 2 x data 8 (two nodes), accum 2
    nv_hw_model hw = toy_hw();
    nv_comm_estimate e;
    nv_comm_per_step(&c, 16, &hw, &e);
    CHECK(e.data == 8 && e.accum == 2 && e.zero1, "layout");
    CHECK(e.dp_cross_node && !e.tp_cross_node, "data group spans the nodes, tensor group not");
    CLOSE(e.dp_bytes, 387653.0);              // reduce-scatter 7/8 G + all-gather 7/8 G = 1.75 x 221516
    CLOSE(e.tp_bytes, 524288.0);
    CLOSE(e.flops, 4 * 814350336.0);          // T = 4096
    CLOSE(e.t_compute, 4.07175168e-4);
    CLOSE(e.t_dp, 387653.0 / 1e8);
    CLOSE(e.t_dp_exposed, 387653.0 / 1e8);    // zero1: nothing hidden
    CLOSE(e.t_step, 4.07175168e-4 + 5.24288e-4 + 3.87653e-3);
}

static void test_tensor_across_nodes_recompute_fp32(void) {
    nv_config c;
    small_config(&c);
    c.parallel.tensor = 16; // a tensor group wider than a node
    c.data.global_batch = 4; // data 1, accum 2
    c.train.recompute = 1;
    c.train.device = NV_DEVICE_CPU; // fp32 activations: 4 bytes
    nv_hw_model hw = toy_hw();
    nv_comm_estimate e;
    nv_comm_per_step(&c, 16, &hw, &e);
    CHECK(e.data == 1 && e.accum == 2 && e.tp_cross_node, "layout");
    CLOSE(e.dp_bytes + 1.0, 1.0);             // nothing to reduce over one data rank
    CLOSE(e.tp_msg_bytes, 65536.0);           // 2 x 128 x 64 x 4
    CLOSE(e.tp_calls, 24.0);                  // accum 2 x 2 layers x 6 (forward again)
    CLOSE(e.tp_bytes, 24 * 2.0 * 15 / 16 * 65536.0);
    CLOSE(e.t_tp, 24 * 2.0 * 15 / 16 * 65536.0 / 1e8);
    // T = 512: 6NT + attention + heads = 303562752 + 100663296 + 2359296 + 589824
    CLOSE(e.flops, 407175168.0);
    CLOSE(e.t_compute, 407175168.0 / (16 * 1e12 * 0.5) * 4.0 / 3.0);
}

// The H100 numbers the docs quote.
static void test_h100(void) {
    nv_hw_model h;
    nv_hw_model_h100(&h);
    CHECK(h.peak_flops == 989e12 && h.mfu == 0.40 && h.intra_bw == 370e9 && h.inter_bw == 50e9 &&
          h.gpus_per_node == 8, "H100 model");
}

// GPU shards: contiguous, cover [0, total), S = total/dp each with the remainder on the last
// rank, so [0, dp*S) is one reduce-scatter of count S (rank r at r*S, in-place all-gather).
// The CPU keeps nv_zero1_range (first shards smaller), unchanged.
static void test_zero1_ranges(void) {
    for (int rep = 0; rep < 2000; rep++) {
        size_t total = (size_t)tu_int(1, 100000);
        int dp = tu_int(1, 64);
        if ((size_t)dp > total) continue;
        size_t S = total / (size_t)dp, prev = 0;
        for (int r = 0; r < dp; r++) {
            size_t lo, hi;
            nv_zero1_range_nccl(total, dp, r, &lo, &hi);
            CHECK(lo == prev && hi > lo && lo == (size_t)r * S, "nccl shard %d/%d of %zu", r, dp, total);
            CHECK(r == dp - 1 ? hi == total : hi - lo == S, "nccl shard size");
            prev = hi;
        }
        CHECK(prev == total, "nccl shards cover");
    }
    size_t lo, hi; // CPU sharding: 10 over 4 -> 2, 2, 3, 3
    nv_zero1_range(10, 4, 0, &lo, &hi);
    CHECK(lo == 0 && hi == 2, "cpu shard 0");
    nv_zero1_range(10, 4, 3, &lo, &hi);
    CHECK(lo == 7 && hi == 10, "cpu shard 3");
    nv_zero1_range_nccl(10, 4, 3, &lo, &hi);
    CHECK(lo == 6 && hi == 10, "nccl shard 3");
}

static void test_report(void) {
    nv_config c;
    small_config(&c);
    c.parallel.tensor = 2;
    c.parallel.zero1 = 1;
    c.data.global_batch = 32;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    nv_dry_run_report(&c, 16, f);
    fclose(f);
    const char *want[] = {"memory per rank", "model FLOPs per step", "step time (s) at 40% MFU",
                          "communication per step per rank", "reduce-scatter grads + all-gather masters",
                          "tensor 2 ranks, inside a node: 16 all-reduces of 0.0 MiB",
                          "estimated step time", "tokens/s", "summary: world=16 tensor=2 data=8 zero1=1 "
                          "micro_batch=2 accum=2 "};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        CHECK(strstr(buf, want[i]) != NULL, "report lacks \"%s\":\n%s", want[i], buf);
    // the summary's figures are the H100 model's
    nv_hw_model hw;
    nv_hw_model_h100(&hw);
    nv_comm_estimate e;
    nv_comm_per_step(&c, 16, &hw, &e);
    const char *s = strstr(buf, "summary:");
    REQUIRE(s, "summary line");
    double dpb = atof(strstr(s, "dp_bytes=") + 9), ts = atof(strstr(s, "t_step=") + 7);
    CHECK(tu_relerr(dpb, e.dp_bytes) < 1e-5 && tu_relerr(ts, e.t_step) < 1e-5, "summary %g %g", dpb, ts);
    free(buf);
}

int main(void) {
    tu_seed();
    test_dp_allreduce_in_node();
    test_zero1_across_nodes();
    test_tensor_across_nodes_recompute_fp32();
    test_h100();
    test_zero1_ranges();
    test_report();
    return tu_finish("test_scaling");
}
