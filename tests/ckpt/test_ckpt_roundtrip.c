// test_ckpt_roundtrip - one rank: (a) save/load is bit-exact for masters, moments, step,
// cursor, extra and config; (c) a damaged file in the newest checkpoint is detected, named,
// and the previous checkpoint loads; (d) a leftover .tmp dir (a crash mid-save) and a
// missing or dangling `latest` are ignored; keep=2 prunes the oldest.
#include <dirent.h>

#include "ckpt_testutil.h"

static char root_buf[512];

static void random_bits(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint32_t u = (uint32_t)tu_u64();
        if ((u & 0x7f800000u) == 0x7f800000u) u &= 0xff7fffffu; // no NaN/inf: keep it finite
        memcpy(&x[i], &u, 4);
    }
}

static char *config_text(const nv_config *c) {
    char *t = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&t, &n);
    nv_config_write(c, f);
    fclose(f);
    return t;
}

static int exists(const char *root, const char *name) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", root, name);
    struct stat st;
    return stat(p, &st) == 0;
}

static int count_entries(const char *root) {
    DIR *d = opendir(root);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    if (d) closedir(d);
    return n;
}

static void test_roundtrip(const nv_dist *d, uint64_t seed) {
    nv_config cfg;
    ct_config(&cfg);
    cfg.parallel.zero1 = tu_int(0, 1);
    cfg.optim.lr = tu_uniform(1e-5, 1e-3); // a non-default value must survive
    ct_rank a, b;
    ct_alloc(&a, &cfg, 0, 1, 0, 1, cfg.parallel.zero1);
    ct_alloc(&b, &cfg, 0, 1, 0, 1, cfg.parallel.zero1);
    ct_fill(&a, seed, 1234);
    random_bits(a.s.master, a.t.total);
    random_bits(a.s.adam_m, a.t.total);
    random_bits(a.s.adam_v, a.t.total);
    for (size_t i = 0; i < 64 && i < a.t.total; i++) { // the awkward values too
        const float sp[] = {-0.0f, 1e-45f, -1e-45f, 3.4028235e38f, 1.17549435e-38f};
        a.s.master[tu_int(0, (int)a.t.total - 1)] = sp[i % 5];
    }
    nv_error err;
    REQUIRE(nv_ckpt_save(root_buf, d, &cfg, &a.s, 0, &err) == 0, "save: %s", err.msg);
    nv_config back;
    REQUIRE(nv_ckpt_load(root_buf, d, &back, &b.s, &err) == 0, "load: %s", err.msg);
    for (int k = 0; k < a.t.n; k++) {
        const nv_param *p = &a.t.p[k];
        CHECK(!memcmp(a.s.master + p->offset, b.s.master + p->offset, 4 * p->numel), "master %s differs", p->name);
        CHECK(!memcmp(a.s.adam_m + p->offset, b.s.adam_m + p->offset, 4 * p->numel), "adam m %s differs", p->name);
        CHECK(!memcmp(a.s.adam_v + p->offset, b.s.adam_v + p->offset, 4 * p->numel), "adam v %s differs", p->name);
    }
    CHECK(b.s.step == 1234, "step %ld", b.s.step);
    CHECK(b.s.cursor.n_slots == a.s.cursor.n_slots && b.s.cursor.epoch == a.s.cursor.epoch &&
          b.s.cursor.step == a.s.cursor.step &&
          !memcmp(b.s.cursor.slot_pos, a.s.cursor.slot_pos, sizeof a.s.cursor.slot_pos) &&
          !memcmp(b.s.cursor.slot_done, a.s.cursor.slot_done, sizeof a.s.cursor.slot_done), "cursor differs");
    CHECK(!memcmp(a.s.extra, b.s.extra, sizeof a.s.extra), "extra differs");
    CHECK(b.s.warning.msg[0] == 0, "unexpected warning: %s", b.s.warning.msg);
    char *ta = config_text(&cfg), *tb = config_text(&back);
    CHECK(!strcmp(ta, tb), "config differs after the round trip:\n%s\n---\n%s", ta, tb);
    free(ta);
    free(tb);
    // a different model must be refused with a reason
    nv_config other = cfg;
    other.model.hidden_size += 8;
    ct_rank c;
    ct_alloc(&c, &other, 0, 1, 0, 1, 0);
    CHECK(nv_ckpt_load(root_buf, d, NULL, &c.s, &err) != 0, "loading into another model succeeded");
    CHECK(strstr(err.msg, "embed.tok") || strstr(err.msg, "tensor"), "reason: %s", err.msg);
    ct_free(&c);
    ct_free(&a);
    ct_free(&b);
    ct_rm_rf(root_buf);
}

static void test_damage_and_crash(const nv_dist *d, uint64_t seed) {
    nv_config cfg;
    ct_config(&cfg);
    nv_error err;
    ct_rank a, b;
    ct_alloc(&a, &cfg, 0, 1, 0, 1, 0);
    ct_alloc(&b, &cfg, 0, 1, 0, 1, 0);
    ct_fill(&a, seed + 1, 100);
    REQUIRE(nv_ckpt_save(root_buf, d, &cfg, &a.s, 0, &err) == 0, "save 100: %s", err.msg);
    ct_fill(&a, seed + 2, 200);
    REQUIRE(nv_ckpt_save(root_buf, d, &cfg, &a.s, 0, &err) == 0, "save 200: %s", err.msg);
    REQUIRE(nv_ckpt_load(root_buf, d, NULL, &b.s, &err) == 0, "load: %s", err.msg);
    CHECK(ct_check(&b, seed + 2, 200, 1, "latest") == 0, "latest (200) loads");

    // (c) a flipped byte in the newest optimizer file
    char p[1024];
    const char *victim = tu_int(0, 1) ? "optim_tp0_dp0.h5" : "model_tp0.h5";
    snprintf(p, sizeof p, "%s/step_00000200/%s", root_buf, victim);
    ct_flip_byte(p, tu_uniform(0.1, 0.9));
    REQUIRE(nv_ckpt_load(root_buf, d, NULL, &b.s, &err) == 0, "load with a damaged newest: %s", err.msg);
    CHECK(ct_check(&b, seed + 1, 100, 1, "fallback") == 0, "fell back to step 100");
    CHECK(strstr(b.s.warning.msg, "step_00000200") && strstr(b.s.warning.msg, victim) &&
          strstr(b.s.warning.msg, "checksum mismatch"), "warning names it: '%s'", b.s.warning.msg);
    CHECK(strstr(b.s.loaded, "step_00000100") != NULL, "loaded %s", b.s.loaded);
    // asked for explicitly, the damaged one is an error naming the file
    snprintf(p, sizeof p, "%s/step_00000200", root_buf);
    CHECK(nv_ckpt_load(p, d, NULL, &b.s, &err) != 0, "damaged step dir loaded");
    CHECK(strstr(err.msg, victim) != NULL, "error names the file: %s", err.msg);
    // a truncated file: size mismatch
    snprintf(p, sizeof p, "%s/step_00000200/%s", root_buf, victim);
    CHECK(truncate(p, 100) == 0, "truncate");
    CHECK(nv_ckpt_load(root_buf, d, NULL, &b.s, &err) == 0 && strstr(b.s.warning.msg, "size"),
          "truncated: %s", b.s.warning.msg);
    ct_rm_rf(root_buf);

    // (d) a crash mid-save leaves step_00000300.tmp with partial files: ignored
    ct_fill(&a, seed + 1, 100);
    REQUIRE(nv_ckpt_save(root_buf, d, &cfg, &a.s, 0, &err) == 0, "save 100: %s", err.msg);
    ct_fill(&a, seed + 2, 200);
    REQUIRE(nv_ckpt_save(root_buf, d, &cfg, &a.s, 0, &err) == 0, "save 200: %s", err.msg);
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s/step_00000300.tmp", root_buf);
    REQUIRE(mkdir(tmp, 0755) == 0, "mkdir %s", tmp);
    snprintf(p, sizeof p, "cp '%s/step_00000200/model_tp0.h5' '%s/'", root_buf, tmp);
    REQUIRE(system(p) == 0, "%s", p);
    snprintf(p, sizeof p, "%s/model_tp0.h5", tmp);
    CHECK(truncate(p, 1000) == 0, "truncate");
    REQUIRE(nv_ckpt_load(root_buf, d, NULL, &b.s, &err) == 0, "load beside a .tmp: %s", err.msg);
    CHECK(ct_check(&b, seed + 2, 200, 1, "beside tmp") == 0, "step 200 loads beside a .tmp dir");
    CHECK(b.s.warning.msg[0] == 0, "no warning expected: %s", b.s.warning.msg);
    // `latest` lost (crash between the rename and its replacement) or dangling
    snprintf(p, sizeof p, "%s/latest", root_buf);
    REQUIRE(unlink(p) == 0, "unlink latest");
    REQUIRE(nv_ckpt_load(root_buf, d, NULL, &b.s, &err) == 0, "load without latest: %s", err.msg);
    CHECK(b.s.step == 200, "without latest: step %ld", b.s.step);
    FILE *f = fopen(p, "w");
    fputs("step_00000999\n", f);
    fclose(f);
    REQUIRE(nv_ckpt_load(root_buf, d, NULL, &b.s, &err) == 0, "load with dangling latest: %s", err.msg);
    CHECK(b.s.step == 200, "dangling latest: step %ld", b.s.step);
    char sd[1024];
    CHECK(nv_ckpt_resolve(root_buf, sd, sizeof sd, &err) == 0 && strstr(sd, "step_00000200"), "resolve: %s", sd);

    // keep = 2: the third save removes step 100 and the stale .tmp dir
    ct_fill(&a, seed + 3, 300);
    REQUIRE(nv_ckpt_save(root_buf, d, &cfg, &a.s, 2, &err) == 0, "save 300: %s", err.msg);
    CHECK(!exists(root_buf, "step_00000100"), "step 100 pruned");
    CHECK(exists(root_buf, "step_00000200") && exists(root_buf, "step_00000300"), "200 and 300 kept");
    CHECK(!exists(root_buf, "step_00000300.tmp"), "stale tmp removed");
    CHECK(count_entries(root_buf) == 3, "root holds step_200, step_300, latest (%d entries)", count_entries(root_buf));
    // saving the same step again replaces it
    ct_fill(&a, seed + 4, 300);
    REQUIRE(nv_ckpt_save(root_buf, d, &cfg, &a.s, 2, &err) == 0, "save 300 again: %s", err.msg);
    REQUIRE(nv_ckpt_load(root_buf, d, NULL, &b.s, &err) == 0, "load: %s", err.msg);
    CHECK(ct_check(&b, seed + 4, 300, 1, "resaved") == 0, "re-saved step 300 loads");
    CHECK(count_entries(root_buf) == 3, "after re-save: %d entries", count_entries(root_buf));
    // nothing loadable: a clear error
    ct_rm_rf(root_buf);
    CHECK(nv_ckpt_load(root_buf, d, NULL, &b.s, &err) != 0, "load of a missing root succeeded");
    CHECK(err.msg[0] != 0, "missing root: empty message");
    ct_free(&a);
    ct_free(&b);
}

int main(int argc, char **argv) {
    uint64_t seed = tu_seed();
    nv_dist d;
    nv_error err;
    REQUIRE(nv_dist_init(&d, &argc, &argv, 1, &err) == 0, "dist: %s", err.msg);
    snprintf(root_buf, sizeof root_buf, "%s/nvwa-ckpt-rt-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    REQUIRE(mkdtemp(root_buf), "mkdtemp");
    strcat(root_buf, "/ckpt"); // the root itself is created by the save
    test_roundtrip(&d, seed);
    test_damage_and_crash(&d, seed);
    char parent[512];
    snprintf(parent, sizeof parent, "%s", root_buf);
    *strrchr(parent, '/') = 0;
    ct_rm_rf(parent);
    nv_dist_finalize(&d);
    return tu_finish("ckpt_roundtrip");
}
