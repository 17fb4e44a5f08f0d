// test_ckpt_layouts - under mpirun -np 4: save at tensor 2 x data 2 with zero1, every element
// a known function of (tensor name, full index); load at the same layout, at a world of one,
// at tensor 4 x data 1 without zero1 and at tensor 1 x data 4 with zero1, and check every
// element (masters and both moments) against the function.
#include "ckpt_testutil.h"

static long load_check(const char *root, const nv_dist *d, const nv_config *cfg, int zero1,
                       uint64_t seed, long step, const char *what) {
    ct_rank r;
    ct_alloc(&r, cfg, d->tp_rank, d->tp_size, d->dp_rank, d->dp_size, zero1);
    // poison, so that anything not loaded shows
    memset(r.s.master, 0x7f, sizeof(float) * r.t.total);
    nv_error err;
    long bad = 0;
    if (nv_ckpt_load(root, d, NULL, &r.s, &err)) {
        fprintf(stderr, "FAIL %s: rank %d: load: %s\n", what, d->rank, err.msg);
        bad = 1;
    } else {
        bad = ct_check(&r, seed, step, 1, what);
    }
    ct_free(&r);
    return bad;
}

int main(int argc, char **argv) {
    nv_dist d;
    nv_error err;
    REQUIRE(nv_dist_init(&d, &argc, &argv, 2, &err) == 0, "dist: %s", err.msg);
    REQUIRE(d.world == 4, "run me under mpirun -np 4 (world is %d)", d.world);
    uint64_t seed = 0;
    if (d.rank == 0) seed = tu_seed();
    MPI_Bcast(&seed, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD);
    tu_state = seed; // the same model on every rank
    nv_config cfg;
    ct_config(&cfg);
    cfg.parallel.tensor = 2;
    cfg.parallel.zero1 = 1;
    char root[512] = "";
    if (d.rank == 0) {
        snprintf(root, sizeof root, "%s/nvwa-ckpt-lay-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
        REQUIRE(mkdtemp(root), "mkdtemp");
    }
    MPI_Bcast(root, sizeof root, MPI_CHAR, 0, MPI_COMM_WORLD);
    char ckpt[600];
    snprintf(ckpt, sizeof ckpt, "%s/ckpt", root);

    ct_rank a;
    ct_alloc(&a, &cfg, d.tp_rank, d.tp_size, d.dp_rank, d.dp_size, 1);
    ct_fill(&a, seed, 77);
    REQUIRE(nv_ckpt_save(ckpt, &d, &cfg, &a.s, 0, &err) == 0, "rank %d: save: %s", d.rank, err.msg);
    ct_free(&a);
    long bad = 0;
    bad += load_check(ckpt, &d, &cfg, 1, seed, 77, "same layout 2x2 zero1");

    // a world of one on rank 0 alone
    if (d.rank == 0) {
        nv_dist one = d;
        one.rank = 0, one.world = 1, one.tp_rank = 0, one.tp_size = 1, one.dp_rank = 0, one.dp_size = 1;
        one.comm_world = one.comm_tp = one.comm_dp = MPI_COMM_SELF;
        bad += load_check(ckpt, &one, &cfg, 0, seed, 77, "world of one");
        bad += load_check(ckpt, &one, &cfg, 1, seed, 77, "world of one, zero1");
    }
    MPI_Barrier(MPI_COMM_WORLD);
    nv_dist d4;
    REQUIRE(nv_dist_init(&d4, &argc, &argv, 4, &err) == 0, "dist tensor 4: %s", err.msg);
    bad += load_check(ckpt, &d4, &cfg, 0, seed, 77, "tensor 4 x data 1");
    nv_dist d1;
    REQUIRE(nv_dist_init(&d1, &argc, &argv, 1, &err) == 0, "dist tensor 1: %s", err.msg);
    bad += load_check(ckpt, &d1, &cfg, 1, seed, 77, "tensor 1 x data 4 zero1");
    bad += load_check(ckpt, &d1, &cfg, 0, seed, 77, "tensor 1 x data 4");

    // and back: save at tensor 4 without zero1, load at 2 x 2 zero1
    ct_rank b;
    ct_alloc(&b, &cfg, d4.tp_rank, d4.tp_size, d4.dp_rank, d4.dp_size, 0);
    ct_fill(&b, seed + 1, 78);
    REQUIRE(nv_ckpt_save(ckpt, &d4, &cfg, &b.s, 0, &err) == 0, "rank %d: save t4: %s", d.rank, err.msg);
    ct_free(&b);
    bad += load_check(ckpt, &d, &cfg, 1, seed + 1, 78, "t4 -> 2x2 zero1");

    long total = bad;
    MPI_Allreduce(&bad, &total, 1, MPI_LONG, MPI_SUM, MPI_COMM_WORLD);
    if (d.rank == 0) {
        char cmd[700];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
        if (system(cmd) != 0) fprintf(stderr, "warning: %s failed\n", cmd);
    }
    if (total) tu_failures++;
    MPI_Comm_free(&d4.comm_tp);
    MPI_Comm_free(&d4.comm_dp);
    MPI_Comm_free(&d1.comm_tp);
    MPI_Comm_free(&d1.comm_dp);
    nv_dist_finalize(&d);
    return d.rank == 0 ? tu_finish("ckpt_layouts") : (total != 0);
}
