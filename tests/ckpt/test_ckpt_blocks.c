// test_ckpt_blocks - checkpoints written at disk speed (train/ckpt_io.c): every dataset is
// contiguous and its crc32_blocks attribute holds zlib's crc32 of each 1 MiB block of its
// floats (computed here from the state, independently), the manifest's CRC is the plain
// crc32 of the file (computed here by reading it); tensors of several blocks load exactly
// into other zero1 shardings (blocks read in part); a byte flipped in a dataset's bytes or
// anywhere else in the file is caught ("checksum mismatch") and the previous checkpoint
// loads; and a checkpoint of the earlier layout (chunked, Fletcher32, no block CRCs, no
// block_crc in the manifest), made here from a new one, loads exactly and is checked too.
#include <fcntl.h>
#include <hdf5.h>
#include <zlib.h>

#include "ckpt_testutil.h"
#include "train/ckpt_io.h"

static char root[512];

static uint32_t file_crc(const char *path) { // byte by byte, no threads: the reference
    FILE *f = fopen(path, "rb");
    REQUIRE(f, "open %s", path);
    unsigned char buf[65536];
    uLong c = crc32(0L, Z_NULL, 0);
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) c = crc32(c, buf, (uInt)n);
    fclose(f);
    return (uint32_t)c;
}

// Write rank (0, dp) of a tensor 1 x data `dp_size` zero1 layout; returns the files.
static void save_zero1(const char *dir_root, const nv_config *cfg, uint64_t seed, long step, int dp_size) {
    nv_error err;
    char tmp[1024];
    REQUIRE(nv_ckpt_begin(dir_root, step, tmp, sizeof tmp, &err) == 0, "begin: %s", err.msg);
    nv_ckpt_file files[16];
    int n = 0;
    ct_rank r;
    for (int dp = 0; dp < dp_size; dp++) {
        ct_alloc(&r, cfg, 0, 1, dp, dp_size, 1);
        ct_fill(&r, seed, step);
        int k = 0;
        REQUIRE(nv_ckpt_write_files(tmp, &r.s, dp, dp_size, files + n, &k, &err) == 0, "write: %s", err.msg);
        n += k;
        if (dp + 1 < dp_size) ct_free(&r);
    }
    REQUIRE(nv_ckpt_commit(dir_root, tmp, cfg, &r.s, 1, dp_size, 1, files, n, 0, &err) == 0, "commit: %s", err.msg);
    ct_free(&r);
}

// Every dataset of a file: contiguous, block CRCs equal to crc32 of the expected floats.
static long check_blocks(const char *path, const nv_config *cfg, uint64_t seed, int dp, int dp_size) {
    ct_rank r;
    ct_alloc(&r, cfg, 0, 1, dp, dp_size, 1);
    ct_fill(&r, seed, 0);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    REQUIRE(f >= 0, "open %s", path);
    int optim = strstr(path, "optim_") != NULL;
    long bad = 0, blocks = 0;
    for (int g = 0; g < (optim ? 2 : 1); g++)
        for (int k = 0; k < r.t.n; k++) {
            const nv_param *p = &r.t.p[k];
            char name[160];
            snprintf(name, sizeof name, "%s%s", optim ? (g ? "v/" : "m/") : "", p->name);
            if (H5Lexists(f, name, H5P_DEFAULT) <= 0) continue;
            size_t lo = optim ? (r.s.shard_lo > p->offset ? r.s.shard_lo : p->offset) : p->offset;
            size_t hi = optim ? (r.s.shard_hi < p->offset + p->numel ? r.s.shard_hi : p->offset + p->numel)
                              : p->offset + p->numel;
            const float *x = optim ? (g ? r.s.adam_v : r.s.adam_m) + (lo - r.s.shard_lo) : r.s.master + lo;
            uint64_t bytes = (uint64_t)(hi - lo) * 4, nb = nv_ckio_nblocks(bytes);
            hid_t ds = H5Dopen2(f, name, H5P_DEFAULT), dcpl = H5Dget_create_plist(ds);
            CHECK(H5Pget_layout(dcpl) == H5D_CONTIGUOUS, "%s %s: not contiguous", path, name);
            H5Pclose(dcpl);
            uint32_t *crc = calloc(nb + 1, 4);
            hid_t a = H5Aopen(ds, "crc32_blocks", H5P_DEFAULT);
            REQUIRE(a >= 0 && H5Aread(a, H5T_NATIVE_UINT32, crc) >= 0, "%s: no crc32_blocks", name);
            H5Aclose(a);
            for (uint64_t b = 0; b < nb; b++) {
                uint64_t o = b * NV_CKIO_BLOCK, len = bytes - o < NV_CKIO_BLOCK ? bytes - o : NV_CKIO_BLOCK;
                uint32_t want = (uint32_t)crc32(0L, (const Bytef *)x + o, (uInt)len);
                if (want != crc[b] && bad++ == 0) fprintf(stderr, "%s %s block %llu: crc differs\n", path, name, (unsigned long long)b);
                blocks++;
            }
            free(crc);
            H5Dclose(ds);
        }
    H5Fclose(f);
    ct_free(&r);
    printf("  %s: %ld blocks checked\n", strrchr(path, '/') + 1, blocks);
    return bad;
}

// Load the step dir at (0, dp) of dp_size (zero1) or without zero1; check every element.
static long load_check(const char *dir, const nv_config *cfg, uint64_t seed, long step, int dp, int dp_size,
                       int zero1, const char *what) {
    nv_error err;
    nv_ckpt_manifest m;
    REQUIRE(nv_ckpt_manifest_read(dir, &m, &err) == 0, "%s: %s", what, err.msg);
    ct_rank r;
    ct_alloc(&r, cfg, 0, 1, dp, dp_size, zero1);
    long bad = 0;
    if (nv_ckpt_load_local(dir, &m, &r.s, &err)) {
        fprintf(stderr, "FAIL %s: %s\n", what, err.msg);
        bad = 1;
    } else {
        bad = ct_check(&r, seed, step, 1, what);
    }
    ct_free(&r);
    nv_ckpt_manifest_free(&m);
    return bad;
}

static herr_t copy_attr(hid_t loc, const char *name, const H5A_info_t *info, void *dst) {
    (void)info;
    if (!strncmp(name, "crc32_", 6)) return 0; // the earlier layout had no block CRCs
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT), t = H5Aget_type(a), sp = H5Aget_space(a);
    size_t n = (size_t)H5Sget_simple_extent_npoints(sp) * H5Tget_size(t);
    void *buf = calloc(n + 1, 1);
    hid_t b = -1;
    int ok = H5Aread(a, t, buf) >= 0 && (b = H5Acreate2(*(hid_t *)dst, name, t, sp, H5P_DEFAULT, H5P_DEFAULT)) >= 0 &&
             H5Awrite(b, t, buf) >= 0;
    REQUIRE(ok, "copy attribute %s", name);
    H5Aclose(b);
    free(buf);
    H5Sclose(sp);
    H5Tclose(t);
    H5Aclose(a);
    return 0;
}

static void copy_attrs(hid_t from, hid_t to) {
    hsize_t idx = 0;
    REQUIRE(H5Aiterate2(from, H5_INDEX_NAME, H5_ITER_INC, &idx, copy_attr, &to) >= 0, "attributes");
}

// Rewrite one file in the earlier layout: datasets chunked in equal chunks of at most 4 MiB
// with Fletcher32, the same tags, no block CRCs.
static void to_earlier_layout(const char *path, const nv_config *cfg) {
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.old", path);
    nv_param_table t;
    nv_param_ids ids;
    nv_params_build(&t, &ids, &cfg->model, 0, 1);
    hid_t in = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT), fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_LATEST);
    hid_t out = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    REQUIRE(in >= 0 && out >= 0, "open %s", path);
    H5Pclose(fapl);
    copy_attrs(in, out);
    for (int g = 0; g < 3; g++) {
        const char *grp = g == 0 ? "" : g == 1 ? "m" : "v";
        if (g && H5Lexists(in, grp, H5P_DEFAULT) <= 0) continue;
        if (g) H5Gclose(H5Gcreate2(out, grp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
        for (int k = 0; k < t.n; k++) {
            char name[160];
            snprintf(name, sizeof name, "%s%s%s", grp, g ? "/" : "", t.p[k].name);
            if (H5Lexists(in, name, H5P_DEFAULT) <= 0) continue;
            hid_t d = H5Dopen2(in, name, H5P_DEFAULT), sp = H5Dget_space(d);
            hsize_t n = (hsize_t)H5Sget_simple_extent_npoints(sp), per = (hsize_t)1 << 20;
            hsize_t nch = (n + per - 1) / per, chunk = nch ? (n + nch - 1) / nch : 1;
            float *x = malloc(sizeof(float) * (n ? n : 1));
            REQUIRE(H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, x) >= 0, "read %s", name);
            hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
            H5Pset_chunk(dcpl, 1, &chunk);
            H5Pset_fletcher32(dcpl);
            hid_t o = H5Dcreate2(out, name, H5T_IEEE_F32LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
            REQUIRE(o >= 0 && H5Dwrite(o, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, x) >= 0, "write %s", name);
            copy_attrs(d, o);
            H5Dclose(o);
            H5Pclose(dcpl);
            free(x);
            H5Sclose(sp);
            H5Dclose(d);
        }
    }
    H5Fclose(out);
    H5Fclose(in);
    nv_params_free(&t, &ids);
    REQUIRE(rename(tmp, path) == 0, "rename %s", tmp);
}

// The manifest of dir in the earlier layout: no block_crc, each file's CRC and size as is.
static void earlier_manifest(const char *dir) {
    char mp[1100], text[1 << 16], out[1 << 16];
    snprintf(mp, sizeof mp, "%s/manifest.ini", dir);
    FILE *f = fopen(mp, "r");
    REQUIRE(f, "open %s", mp);
    size_t len = fread(text, 1, sizeof text - 1, f);
    text[len] = 0;
    fclose(f);
    char *o = out, *line = text, *in_files = NULL;
    while (*line) {
        char *eol = strchr(line, '\n');
        size_t l = eol ? (size_t)(eol - line) + 1 : strlen(line);
        if (!strncmp(line, "[files]", 7)) in_files = line;
        else if (line[0] == '[') in_files = NULL;
        if (!strncmp(line, "block_crc", 9)) {
            // dropped
        } else if (in_files && line != in_files && strstr(line, " = 0x")) {
            char name[128], p[1300];
            REQUIRE(sscanf(line, "%127s", name) == 1, "files line");
            snprintf(p, sizeof p, "%s/%s", dir, name);
            struct stat st;
            stat(p, &st);
            o += sprintf(o, "%s = 0x%08x %llu\n", name, file_crc(p), (unsigned long long)st.st_size);
        } else {
            memcpy(o, line, l);
            o += l;
        }
        line += l;
    }
    *o = 0;
    f = fopen(mp, "w");
    fputs(out, f);
    fclose(f);
}

// Flip one byte of path at `at`.
static void flip_at(const char *path, long at) {
    FILE *fp = fopen(path, "r+b");
    REQUIRE(fp, "open %s", path);
    fseek(fp, at, SEEK_SET);
    int c = fgetc(fp);
    fseek(fp, at, SEEK_SET);
    fputc(c ^ 0x41, fp);
    fclose(fp);
}

// A byte of path inside a dataset's raw bytes (data = 1) or outside every one (data = 0).
static long pick_byte(const char *path, const nv_config *cfg, int data) {
    nv_param_table t;
    nv_param_ids ids;
    nv_params_build(&t, &ids, &cfg->model, 0, 1);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    uint64_t lo[512], hi[512];
    int n = 0;
    for (int g = 0; g < 3; g++)
        for (int k = 0; k < t.n && n < 512; k++) {
            char name[160];
            snprintf(name, sizeof name, "%s%s", g == 0 ? "" : g == 1 ? "m/" : "v/", t.p[k].name);
            if ((g && H5Lexists(f, g == 1 ? "m" : "v", H5P_DEFAULT) <= 0) || H5Lexists(f, name, H5P_DEFAULT) <= 0) continue;
            hid_t d = H5Dopen2(f, name, H5P_DEFAULT), sp = H5Dget_space(d);
            hsize_t nch = 0;
            if (H5Dget_num_chunks(d, sp, &nch) < 0) nch = 0; // contiguous: its bytes are one range
            if (nch == 0) {
                lo[n] = H5Dget_offset(d);
                hi[n] = lo[n] + H5Dget_storage_size(d);
                n++;
            }
            for (hsize_t c = 0; c < nch && n < 512; c++, n++) {
                hsize_t off[1], size;
                unsigned mask;
                haddr_t addr;
                REQUIRE(H5Dget_chunk_info(d, sp, c, off, &mask, &addr, &size) >= 0, "chunk info");
                lo[n] = addr;
                hi[n] = addr + size;
            }
            H5Sclose(sp);
            H5Dclose(d);
        }
    H5Fclose(f);
    nv_params_free(&t, &ids);
    struct stat st;
    stat(path, &st);
    for (int tries = 0; tries < 100000; tries++) {
        long at = (long)tu_int(0, (int)st.st_size - 1);
        int inside = 0;
        for (int i = 0; i < n; i++) inside |= (uint64_t)at >= lo[i] && (uint64_t)at < hi[i];
        if (inside == data) return at;
    }
    REQUIRE(0, "no byte found");
    return -1;
}

int main(int argc, char **argv) {
    uint64_t seed = tu_seed();
    nv_dist d;
    nv_error err;
    REQUIRE(nv_dist_init(&d, &argc, &argv, 1, &err) == 0, "dist: %s", err.msg);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    snprintf(root, sizeof root, "%s/nvwa-ckpt-blocks-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    REQUIRE(mkdtemp(root), "mkdtemp");
    char ck[600];
    snprintf(ck, sizeof ck, "%s/ck", root);
    // tensors of several 1 MiB blocks (w_in: 2f x d floats), a light load under the sanitizers
    nv_config cfg;
    nv_config_defaults(&cfg);
    cfg.model.num_layers = 1;
    cfg.model.num_attn_heads = 4;
    cfg.model.hidden_size = 4 * tu_int(40, 64);
    cfg.model.ffn_hidden_size = 4 * tu_int(200, 400);
    const int dp_size = 3;
    save_zero1(ck, &cfg, seed, 100, dp_size);
    save_zero1(ck, &cfg, seed + 1, 200, dp_size);
    char dir[700], p[900];
    snprintf(dir, sizeof dir, "%s/step_00000200", ck);

    // the layout: block CRCs and the manifest's file CRCs, computed independently here
    nv_ckpt_manifest m;
    REQUIRE(nv_ckpt_manifest_read(dir, &m, &err) == 0, "%s", err.msg);
    CHECK(m.block_crc == NV_CKIO_BLOCK, "manifest block_crc %llu", (unsigned long long)m.block_crc);
    for (int i = 0; i < m.n_files; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, m.files[i].name);
        CHECK(file_crc(p) == m.files[i].crc32, "%s: manifest crc 0x%08x, file 0x%08x", m.files[i].name,
              m.files[i].crc32, file_crc(p));
        int dp = 0;
        if (sscanf(m.files[i].name, "optim_tp0_dp%d.h5", &dp) != 1) dp = 0;
        CHECK(check_blocks(p, &cfg, seed + 1, dp, dp_size) == 0, "%s: block CRCs", m.files[i].name);
    }
    nv_ckpt_manifest_free(&m);

    // other shardings: blocks read in part, checked whole
    for (int dp = 0; dp < 2; dp++) CHECK(load_check(dir, &cfg, seed + 1, 200, dp, 2, 1, "zero1 dp 2") == 0, "dp 2 rank %d", dp);
    CHECK(load_check(dir, &cfg, seed + 1, 200, 0, 1, 0, "no zero1") == 0, "dp 1");

    // damage: in a dataset's bytes, and outside every dataset; the previous checkpoint loads
    for (int where = 0; where < 2; where++) {
        const char *victim = tu_int(0, 1) ? "model_tp0.h5" : "optim_tp0_dp1.h5";
        snprintf(p, sizeof p, "%s/%s", dir, victim);
        char keep[1000];
        snprintf(keep, sizeof keep, "cp '%s' '%s.keep'", p, p);
        REQUIRE(system(keep) == 0, "%s", keep);
        long at = pick_byte(p, &cfg, where == 0);
        flip_at(p, at);
        ct_rank r;
        ct_alloc(&r, &cfg, 0, 1, 0, 1, 0);
        REQUIRE(nv_ckpt_load(ck, &d, NULL, &r.s, &err) == 0, "load: %s", err.msg);
        CHECK(ct_check(&r, seed, 100, 1, "fallback") == 0, "fell back to step 100");
        CHECK(strstr(r.s.warning.msg, victim) && strstr(r.s.warning.msg, "checksum mismatch") &&
                  (where || strstr(r.s.warning.msg, "block")), "warning: %s", r.s.warning.msg);
        printf("  byte %ld of %s (%s) flipped -> %s\n", at, victim, where ? "metadata" : "data", r.s.warning.msg);
        ct_free(&r);
        snprintf(keep, sizeof keep, "mv '%s.keep' '%s'", p, p);
        REQUIRE(system(keep) == 0, "%s", keep);
    }

    // the earlier layout loads, at another sharding too, and is still checked
    m.n_files = 0;
    REQUIRE(nv_ckpt_manifest_read(dir, &m, &err) == 0, "%s", err.msg);
    for (int i = 0; i < m.n_files; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, m.files[i].name);
        to_earlier_layout(p, &cfg);
    }
    nv_ckpt_manifest_free(&m);
    earlier_manifest(dir);
    REQUIRE(nv_ckpt_manifest_read(dir, &m, &err) == 0 && m.block_crc == 0, "earlier manifest: %s", err.msg);
    nv_ckpt_manifest_free(&m);
    {
        ct_rank r;
        ct_alloc(&r, &cfg, 0, 1, 0, 1, 0);
        REQUIRE(nv_ckpt_load(ck, &d, NULL, &r.s, &err) == 0, "load earlier layout: %s", err.msg);
        CHECK(ct_check(&r, seed + 1, 200, 1, "earlier layout") == 0 && r.s.warning.msg[0] == 0, "earlier: %s",
              r.s.warning.msg);
        ct_free(&r);
    }
    CHECK(load_check(dir, &cfg, seed + 1, 200, 1, 2, 1, "earlier layout, dp 2") == 0, "earlier dp 2");
    snprintf(p, sizeof p, "%s/model_tp0.h5", dir);
    flip_at(p, pick_byte(p, &cfg, 1));
    {
        ct_rank r;
        ct_alloc(&r, &cfg, 0, 1, 0, 1, 0);
        REQUIRE(nv_ckpt_load(ck, &d, NULL, &r.s, &err) == 0, "load: %s", err.msg);
        CHECK(ct_check(&r, seed, 100, 1, "earlier fallback") == 0 && strstr(r.s.warning.msg, "checksum mismatch"),
              "earlier layout damaged: %s", r.s.warning.msg);
        ct_free(&r);
    }
    ct_rm_rf(root);
    nv_dist_finalize(&d);
    return tu_finish("ckpt_blocks");
}
