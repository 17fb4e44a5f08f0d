// test_zero1_sync.c - ZeRO-1's bucketed reduce-scatter (train/grad_sync.c) on MPI ranks
// (run with mpirun -np 3: with 2 ranks every float sum is commutative and nothing can differ).
//  - the shard equals an independent computation: every rank's gradient gathered
//    (MPI_Allgather) and summed here in rank order in fp32, bit for bit, and a double sum
//    within 1e-6 relative;
//  - the same bits with overlap (buckets reported by a simulated backward, out of order
//    ranges, chunks) and without (everything at finish) and through nv_zero1_reduce_scatter;
//  - the plain data-parallel all-reduce (no ZeRO-1) against the double sum;
//  - the all-gather of a 2-byte (bf16-like) and a 4-byte buffer gives every rank every shard.
// Fresh random gradients each run (NVWA_TEST_SEED replays; rank 0's seed is broadcast).
#include <string.h>

#include "tests/testutil.h"
#include "train/dist.h"
#include "train/grad_sync.h"

static float *make_grad(size_t total, uint64_t seed, int rank) {
    float *g = nv_malloc(total * sizeof *g);
    tu_state = seed * 0x9E3779B97F4A7C15ull + (uint64_t)rank + 1;
    for (size_t i = 0; i < total; i++) {
        // mixed magnitudes, so that the order of the sum changes the bits
        double v = tu_normal() * pow(10.0, tu_int(-3, 3));
        g[i] = (float)v;
    }
    return g;
}

// a backward's reports: descending contiguous ranges of uneven sizes, one out of order
static void simulate_backward(const nv_grad_hook *h, size_t total) {
    size_t hi = total;
    int k = 0;
    while (hi > 1000) {
        size_t len = (size_t)tu_int(1, 90000);
        if (len > hi - 1000) len = hi - 1000;
        if (++k == 3 && hi > 2 * len + 1000) { // a range reported ahead of its neighbour
            h->ready(h->ctx, hi - 2 * len, hi - len);
            h->ready(h->ctx, hi - len, hi);
            hi -= 2 * len;
            continue;
        }
        h->ready(h->ctx, hi - len, hi);
        hi -= len;
    }
    // [0, hi) never reported: finish must reduce it
}

static void run_zero1(const nv_dist *d, const float *g, size_t total, size_t bucket, int overlap,
                      float *shard, size_t lo, size_t hi, int tag) {
    float *work = nv_malloc(total * sizeof *work);
    memcpy(work, g, total * sizeof *work);
    nv_grad_sync *s = nv_grad_sync_create(d, work, total, bucket);
    nv_grad_sync_set_zero1(s, shard, lo, hi);
    nv_grad_sync_set_overlap(s, overlap);
    const nv_grad_hook *h = nv_grad_sync_hook(s);
    if (overlap && d->thread_multiple) CHECK(h != NULL, "run %d: no hook with overlap on", tag);
    if (!overlap) CHECK(h == NULL, "run %d: a hook with overlap off", tag);
    if (h) simulate_backward(h, total);
    nv_grad_sync_finish(s);
    nv_grad_sync_free(s);
    free(work);
}

int main(int argc, char **argv) {
    nv_dist d;
    nv_error err;
    REQUIRE(nv_dist_init(&d, &argc, &argv, 1, &err) == 0, "dist: %s", err.msg);
    uint64_t seed = d.rank == 0 ? tu_seed() : 0;
    nv_bcast(&d, d.comm_world, &seed, sizeof seed, 0);
    tu_state = seed;
    const size_t total = 300007 + (size_t)tu_int(0, 5000); // odd: uneven shards
    const int dp = d.dp_size, r = d.dp_rank;
    float *g = make_grad(total, seed, r);
    size_t lo, hi;
    nv_zero1_range(total, dp, r, &lo, &hi);
    const size_t m = hi - lo;

    // independent reference: all gradients here, summed in rank order (fp32) and in double
    float *all = nv_malloc(total * dp * sizeof *all);
    NV_MPI_CHECK(&d, MPI_Allgather(g, (int)total, MPI_FLOAT, all, (int)total, MPI_FLOAT, d.comm_dp));
    float *ref = nv_malloc(m * sizeof *ref);
    double *ref64 = nv_malloc(m * sizeof *ref64), *abs64 = nv_malloc(m * sizeof *abs64);
    for (size_t i = 0; i < m; i++) {
        float acc = all[lo + i];
        double a64 = all[lo + i], s64 = fabs(all[lo + i]);
        for (int q = 1; q < dp; q++) {
            acc += all[(size_t)q * total + lo + i];
            a64 += all[(size_t)q * total + lo + i];
            s64 += fabs(all[(size_t)q * total + lo + i]);
        }
        ref[i] = acc;
        ref64[i] = a64;
        abs64[i] = s64; // fp32 summation error bound: (dp - 1) * 2^-24 * sum |g|
    }

    float *s_ov = nv_malloc(m * sizeof(float)), *s_no = nv_malloc(m * sizeof(float));
    float *s_one = nv_malloc(m * sizeof(float));
    tu_state = seed + 17; // the same simulated backward on every rank
    run_zero1(&d, g, total, 100000, 1, s_ov, lo, hi, 1);
    run_zero1(&d, g, total, 100000, 0, s_no, lo, hi, 2);
    nv_zero1_reduce_scatter(&d, g, total, s_one);
    size_t bad_ov = 0, bad_no = 0, bad_one = 0;
    double worst = 0;
    for (size_t i = 0; i < m; i++) {
        bad_ov += memcmp(&s_ov[i], &ref[i], 4) != 0;
        bad_no += memcmp(&s_no[i], &ref[i], 4) != 0;
        bad_one += memcmp(&s_one[i], &ref[i], 4) != 0;
        double e = fabs(s_ov[i] - ref64[i]) / (dp * 0x1p-24 * abs64[i] + 1e-30);
        if (e > worst) worst = e;
    }
    printf("rank %d: shard [%zu, %zu): overlap %zu, no overlap %zu, one call %zu elements differ "
           "from the rank-ordered reference; worst error vs double %.2f of the fp32 bound\n", r, lo, hi, bad_ov,
           bad_no, bad_one, worst);
    CHECK(bad_ov == 0, "overlapped ZeRO-1 buckets differ from the rank-ordered sums in %zu elements", bad_ov);
    CHECK(bad_no == 0, "ZeRO-1 without overlap differs in %zu elements", bad_no);
    CHECK(bad_one == 0, "nv_zero1_reduce_scatter differs in %zu elements", bad_one);
    CHECK(worst <= 1.0, "ZeRO-1 sums are off the double reference by %.2f x the fp32 bound", worst);

    // plain data parallel (all-reduce) through the same bucketing, against the double sum
    float *work = nv_malloc(total * sizeof *work);
    memcpy(work, g, total * sizeof *work);
    nv_grad_sync *s = nv_grad_sync_create(&d, work, total, 100000);
    tu_state = seed + 17;
    if (nv_grad_sync_hook(s)) simulate_backward(nv_grad_sync_hook(s), total);
    nv_grad_sync_finish(s);
    nv_grad_sync_free(s);
    double worst_ar = 0;
    for (size_t i = 0; i < m; i++)
        worst_ar = fmax(worst_ar, fabs(work[lo + i] - ref64[i]) / (dp * 0x1p-24 * abs64[i] + 1e-30));
    CHECK(worst_ar <= 1.0, "all-reduce buckets are off the double reference by %.2f x the fp32 bound", worst_ar);

    // all-gather: each rank fills only its shard (rank-tagged values), then gathers
    uint16_t *h16 = nv_calloc(total, 2);
    float *h32 = nv_calloc(total, 4);
    for (size_t i = lo; i < hi; i++) {
        h16[i] = (uint16_t)(i * 7 + 3);
        h32[i] = (float)i + 0.25f;
    }
    nv_zero1_allgather_bytes(&d, h16, total, 2);
    nv_zero1_allgather(&d, h32, total);
    size_t bad16 = 0, bad32 = 0;
    for (size_t i = 0; i < total; i++) {
        bad16 += h16[i] != (uint16_t)(i * 7 + 3);
        bad32 += h32[i] != (float)i + 0.25f;
    }
    CHECK(bad16 == 0 && bad32 == 0, "all-gather: %zu 2-byte and %zu 4-byte elements wrong", bad16, bad32);

    free(g); free(all); free(ref); free(ref64); free(abs64); free(s_ov); free(s_no); free(s_one);
    free(work); free(h16); free(h32);
    int fails = tu_failures;
    nv_allreduce_max_int(&d, d.comm_world, &fails, 1);
    nv_dist_finalize(&d);
    if (fails) tu_failures = tu_failures ? tu_failures : 1;
    return tu_finish(d.rank == 0 ? "zero1_sync" : "zero1_sync (rank)");
}
