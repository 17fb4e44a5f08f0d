// test_ckpt_tool - nvwa-ckpt on a checkpoint saved at tensor 2 x data 2 with zero1:
// info and verify pass; verify exits 1 naming a file with a flipped byte, and a dataset whose
// Fletcher32 fails when the manifest's CRC was made to match; reshard 2 -> 1 gives the same
// full tensors and moments; export is read back by a safetensors reader written here (not
// the exporter's code): names, shapes, dtypes, metadata and values (fp32 exact, bf16 within
// rounding). Usage: test_ckpt_tool PATH/TO/nvwa-ckpt
#include <hdf5.h>
#include <sys/wait.h>

#include "ckpt_testutil.h"

static const char *tool;
static char work[512];

static int run(const char *args, char *out, size_t n) {
    char cmd[4096], of[700];
    snprintf(of, sizeof of, "%s/out.txt", work);
    snprintf(cmd, sizeof cmd, "'%s' %s > '%s' 2>&1", tool, args, of);
    int st = system(cmd);
    if (out) {
        out[0] = 0;
        FILE *f = fopen(of, "r");
        if (f) {
            size_t k = fread(out, 1, n - 1, f);
            out[k] = 0;
            fclose(f);
        }
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

// ---- a small JSON reader for the safetensors header (objects, strings, int arrays) ----
typedef struct js { const char *p; int bad; } js;
static void ws(js *j) { while (*j->p == ' ' || *j->p == '\n' || *j->p == '\t' || *j->p == '\r') j->p++; }
static int eat(js *j, char c) { ws(j); if (*j->p == c) { j->p++; return 1; } return 0; }
static void str(js *j, char *out, size_t n) {
    size_t k = 0;
    if (!eat(j, '"')) { j->bad = 1; return; }
    while (*j->p && *j->p != '"') {
        char c = *j->p++;
        if (c == '\\') c = *j->p++;
        if (k + 1 < n) out[k++] = c;
    }
    out[k] = 0;
    if (*j->p != '"') j->bad = 1; else j->p++;
}
static int ints(js *j, long long *v, int max) {
    int n = 0;
    if (!eat(j, '[')) { j->bad = 1; return 0; }
    if (eat(j, ']')) return 0;
    do {
        ws(j);
        char *end;
        long long x = strtoll(j->p, &end, 10);
        if (end == j->p) { j->bad = 1; return n; }
        j->p = end;
        if (n < max) v[n] = x;
        n++;
    } while (eat(j, ','));
    if (!eat(j, ']')) j->bad = 1;
    return n;
}

typedef struct st_tensor { char name[64], dtype[16]; long long shape[4]; int ndim; long long off[2]; } st_tensor;
typedef struct st_file {
    st_tensor t[512]; int n;
    char mk[64][64], mv[64][128]; int nm;
    unsigned char *data; size_t data_len;
} st_file;

static int st_read(const char *path, st_file *s) {
    memset(s, 0, sizeof *s);
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    unsigned char len8[8];
    if (fread(len8, 1, 8, f) != 8) { fclose(f); return -1; }
    uint64_t hl = 0;
    for (int i = 0; i < 8; i++) hl |= (uint64_t)len8[i] << (8 * i);
    fseek(f, 0, SEEK_END);
    long total = ftell(f);
    if (hl > (uint64_t)total - 8) { fclose(f); return -1; }
    char *h = calloc(hl + 1, 1);
    fseek(f, 8, SEEK_SET);
    if (fread(h, 1, hl, f) != hl) { fclose(f); free(h); return -1; }
    s->data_len = (size_t)total - 8 - hl;
    s->data = malloc(s->data_len + 1);
    if (fread(s->data, 1, s->data_len, f) != s->data_len) { fclose(f); free(h); return -1; }
    fclose(f);
    js j = {h, 0};
    if (!eat(&j, '{')) j.bad = 1;
    while (!j.bad && !eat(&j, '}')) {
        char key[128];
        str(&j, key, sizeof key);
        if (!eat(&j, ':') || !eat(&j, '{')) { j.bad = 1; break; }
        if (!strcmp(key, "__metadata__")) {
            while (!j.bad && !eat(&j, '}')) {
                str(&j, s->mk[s->nm], 64);
                if (!eat(&j, ':')) j.bad = 1;
                str(&j, s->mv[s->nm], 128);
                if (s->nm < 63) s->nm++;
                eat(&j, ',');
            }
        } else {
            st_tensor *t = &s->t[s->n < 511 ? s->n++ : 511];
            snprintf(t->name, sizeof t->name, "%s", key);
            while (!j.bad && !eat(&j, '}')) {
                char k2[32];
                str(&j, k2, sizeof k2);
                if (!eat(&j, ':')) j.bad = 1;
                if (!strcmp(k2, "dtype")) str(&j, t->dtype, sizeof t->dtype);
                else if (!strcmp(k2, "shape")) t->ndim = ints(&j, t->shape, 4);
                else if (!strcmp(k2, "data_offsets")) { if (ints(&j, t->off, 2) != 2) j.bad = 1; }
                else j.bad = 1;
                eat(&j, ',');
            }
        }
        eat(&j, ',');
    }
    ws(&j);
    int bad = j.bad || *j.p; // only padding spaces may follow the object
    free(h);
    return bad ? -1 : 0;
}

static const char *meta(const st_file *s, const char *k) {
    for (int i = 0; i < s->nm; i++)
        if (!strcmp(s->mk[i], k)) return s->mv[i];
    return NULL;
}

static void check_export(const char *path, const nv_config *cfg, uint64_t seed, int bf16) {
    st_file *s = malloc(sizeof *s);
    REQUIRE(st_read(path, s) == 0, "%s: not a parseable safetensors file", path);
    nv_param_table t;
    nv_param_ids ids;
    nv_params_build(&t, &ids, &cfg->model, 0, 1);
    CHECK(s->n == t.n, "%d tensors, want %d", s->n, t.n);
    CHECK(meta(s, "format") && !strcmp(meta(s, "format"), "nvwa"), "format metadata");
    char v[64];
    snprintf(v, sizeof v, "%d", cfg->model.num_layers);
    CHECK(meta(s, "num-layers") && !strcmp(meta(s, "num-layers"), v), "num-layers = %s", meta(s, "num-layers"));
    snprintf(v, sizeof v, "%d", cfg->model.hidden_size);
    CHECK(meta(s, "hidden-size") && !strcmp(meta(s, "hidden-size"), v), "hidden-size");
    const char *mk[] = {"ffn-hidden-size", "num-attn-heads", "vocab-size", "local-window", "global-attn-every",
                        "rope-theta-global", "rope-theta-local", "structure-input", "first-attn-norm",
                        "struct-loss-weight"};
    for (size_t i = 0; i < sizeof mk / sizeof *mk; i++) CHECK(meta(s, mk[i]) != NULL, "metadata %s missing", mk[i]);
    CHECK(s->nm == 13, "%d metadata keys (12 [model] keys + format)", s->nm);
    long long end = 0;
    for (int k = 0; k < t.n; k++) {
        const nv_param *p = &t.p[k];
        const st_tensor *x = NULL;
        for (int i = 0; i < s->n; i++)
            if (!strcmp(s->t[i].name, p->name)) x = &s->t[i];
        CHECK(x != NULL, "tensor %s missing", p->name);
        if (!x) continue;
        CHECK(!strcmp(x->dtype, bf16 ? "BF16" : "F32"), "%s dtype %s", p->name, x->dtype);
        CHECK(x->ndim == p->ndim && x->shape[0] == p->full[0] && (p->ndim == 1 || x->shape[1] == p->full[1]),
              "%s shape", p->name);
        size_t es = bf16 ? 2 : 4, n = (size_t)(p->full[0] * p->full[1]);
        CHECK(x->off[1] - x->off[0] == (long long)(n * es) && (size_t)x->off[1] <= s->data_len, "%s offsets", p->name);
        if (x->off[1] > end) end = x->off[1];
        if ((size_t)x->off[1] > s->data_len) continue;
        long bad = 0;
        for (size_t i = 0; i < n; i++) {
            const unsigned char *b = s->data + x->off[0] + i * es;
            float want = ct_val(seed, p->name, (int64_t)i, 0), got;
            if (bf16) {
                uint32_t u = ((uint32_t)b[0] | (uint32_t)b[1] << 8) << 16;
                memcpy(&got, &u, 4);
                // round to nearest: within half a bf16 ulp (8 mantissa bits)
                if (fabsf(got - want) > ldexpf(1.0f, ilogbf(want) - 8) && bad++ == 0)
                    fprintf(stderr, "FAIL bf16 %s[%zu]: %g vs %g\n", p->name, i, got, want);
            } else {
                uint32_t u = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
                memcpy(&got, &u, 4);
                if (memcmp(&got, &want, 4) && bad++ == 0)
                    fprintf(stderr, "FAIL f32 %s[%zu]: %g vs %g\n", p->name, i, got, want);
            }
        }
        CHECK(bad == 0, "%s: %ld values wrong", p->name, bad);
    }
    CHECK((size_t)end == s->data_len, "data ends at %lld of %zu", end, s->data_len);
    nv_params_free(&t, &ids);
    free(s->data);
    free(s);
}

// Flip a byte in the middle of the raw data of the first dataset found (its bytes, or its
// first chunk in the earlier layout), which only the dataset's own checksums guard once the
// manifest's CRC is made to match.
static void flip_in_dataset(const char *path, const nv_config *cfg) {
    nv_param_table t;
    nv_param_ids ids;
    nv_params_build(&t, &ids, &cfg->model, 0, 2);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    REQUIRE(f >= 0, "open %s", path);
    haddr_t addr = HADDR_UNDEF;
    hsize_t size = 0;
    for (int k = t.n - 1; k >= 0 && addr == HADDR_UNDEF; k--)
        for (int g = 0; g < 2 && addr == HADDR_UNDEF; g++) {
            char name[128];
            snprintf(name, sizeof name, "%s%s", g ? "m/" : "", t.p[k].name);
            if ((g && H5Lexists(f, "m", H5P_DEFAULT) <= 0) || H5Lexists(f, name, H5P_DEFAULT) <= 0) continue;
            hid_t ds = H5Dopen2(f, name, H5P_DEFAULT);
            hsize_t off[1];
            unsigned mask;
            hid_t sp = H5Dget_space(ds); // HDF5 1.10 wants a real dataspace here
            hid_t dcpl = H5Dget_create_plist(ds);
            if (H5Pget_layout(dcpl) == H5D_CONTIGUOUS) { // written at disk speed: raw bytes
                addr = H5Dget_offset(ds);
                size = H5Dget_storage_size(ds);
            } else if (H5Dget_chunk_info(ds, sp, 0, off, &mask, &addr, &size) < 0) {
                addr = HADDR_UNDEF;
            }
            H5Pclose(dcpl);
            H5Sclose(sp);
            H5Dclose(ds);
        }
    H5Fclose(f);
    nv_params_free(&t, &ids);
    REQUIRE(addr != HADDR_UNDEF && size > 8, "%s: no chunk found", path);
    FILE *fp = fopen(path, "r+b");
    REQUIRE(fp, "open %s", path);
    long at = (long)(addr + size / 2);
    fseek(fp, at, SEEK_SET);
    int c = fgetc(fp);
    fseek(fp, at, SEEK_SET);
    fputc(c ^ 0x20, fp);
    fclose(fp);
}

// Save at tensor 2 x data 2 with zero1 from one process, through the library's pieces.
static void save_2x2(const char *root, const nv_config *cfg, uint64_t seed, long step) {
    nv_error err;
    char tmp[1024];
    REQUIRE(nv_ckpt_begin(root, step, tmp, sizeof tmp, &err) == 0, "begin: %s", err.msg);
    nv_ckpt_file files[8];
    int n = 0;
    ct_rank r;
    for (int tp = 0; tp < 2; tp++)
        for (int dp = 0; dp < 2; dp++) {
            ct_alloc(&r, cfg, tp, 2, dp, 2, 1);
            ct_fill(&r, seed, step);
            int k = 0;
            REQUIRE(nv_ckpt_write_files(tmp, &r.s, dp, 2, files + n, &k, &err) == 0, "write: %s", err.msg);
            n += k;
            if (tp < 1 || dp < 1) ct_free(&r);
        }
    REQUIRE(n == 6, "%d files", n);
    REQUIRE(nv_ckpt_commit(root, tmp, cfg, &r.s, 2, 2, 1, files, n, 0, &err) == 0, "commit: %s", err.msg);
    ct_free(&r);
}

static long load_local_check(const char *path, const nv_config *cfg, uint64_t seed, long step, const char *what) {
    char dir[1024];
    nv_error err;
    nv_ckpt_manifest m;
    REQUIRE(nv_ckpt_resolve(path, dir, sizeof dir, &err) == 0 && nv_ckpt_manifest_read(dir, &m, &err) == 0,
            "%s: %s", what, err.msg);
    long bad = 0;
    for (int tp = 0; tp < 2; tp++) { // the layout of the resharded file, and tensor 2
        ct_rank r;
        ct_alloc(&r, cfg, tp, tp + 1 == 1 ? 1 : 2, 0, 1, 0);
        if (nv_ckpt_load_local(dir, &m, &r.s, &err)) {
            fprintf(stderr, "FAIL %s: %s\n", what, err.msg);
            bad++;
        } else {
            bad += ct_check(&r, seed, step, 1, what);
        }
        ct_free(&r);
    }
    nv_ckpt_manifest_free(&m);
    return bad;
}

int main(int argc, char **argv) {
    REQUIRE(argc == 2, "usage: test_ckpt_tool PATH/TO/nvwa-ckpt");
    tool = argv[1];
    uint64_t seed = tu_seed();
    snprintf(work, sizeof work, "%s/nvwa-ckpt-tool-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    REQUIRE(mkdtemp(work), "mkdtemp");
    nv_config cfg;
    ct_config(&cfg);
    cfg.parallel.tensor = 2;
    cfg.parallel.zero1 = 1;
    char root[700], out[700], st[700], args[3000], text[65536], p[1200];
    snprintf(root, sizeof root, "%s/ckpt", work);
    save_2x2(root, &cfg, seed, 500);

    CHECK(run("--help", text, sizeof text) == 0 && strstr(text, "reshard"), "--help");
    CHECK(run("frobnicate x", text, sizeof text) == 2, "unknown command exits 2");
    CHECK(run("info", text, sizeof text) == 2, "missing DIR exits 2");
    snprintf(args, sizeof args, "info '%s'", root);
    CHECK(run(args, text, sizeof text) == 0 && strstr(text, "step        500") && strstr(text, "tensor 2, data 2") &&
          strstr(text, "optim_tp1_dp1.h5") && strstr(text, "embed.tok"), "info:\n%s", text);
    snprintf(args, sizeof args, "verify '%s'", root);
    CHECK(run(args, text, sizeof text) == 0, "verify of a good checkpoint: %s", text);
    snprintf(args, sizeof args, "info '%s/nope'", work);
    CHECK(run(args, text, sizeof text) == 1 && strchr(text, '\n') == text + strlen(text) - 1,
          "missing dir: exit 1 with one line: %s", text);

    // reshard 2 -> 1: same full tensors and moments; its own verify passes
    snprintf(out, sizeof out, "%s/resharded", work);
    snprintf(args, sizeof args, "reshard '%s' --tensor 1 -o '%s'", root, out);
    CHECK(run(args, text, sizeof text) == 0, "reshard: %s", text);
    nv_config one = cfg;
    one.parallel.tensor = 1;
    CHECK(load_local_check(out, &one, seed, 500, "resharded") == 0, "resharded values");
    CHECK(load_local_check(root, &one, seed, 500, "original") == 0, "original values");
    nv_ckpt_manifest m;
    char dir[1024];
    nv_error err;
    REQUIRE(nv_ckpt_resolve(out, dir, sizeof dir, &err) == 0 && nv_ckpt_manifest_read(dir, &m, &err) == 0, "%s", err.msg);
    CHECK(m.tensor == 1 && m.data == 1 && !m.zero1 && m.n_files == 2 && m.cfg.parallel.tensor == 1 && m.step == 500,
          "resharded manifest: tensor %d data %d zero1 %d files %d", m.tensor, m.data, m.zero1, m.n_files);
    nv_ckpt_manifest_free(&m);
    snprintf(args, sizeof args, "verify '%s'", out);
    CHECK(run(args, text, sizeof text) == 0, "verify resharded: %s", text);
    snprintf(args, sizeof args, "reshard '%s' --tensor 3 -o '%s/bad'", root, work);
    CHECK(run(args, text, sizeof text) == 1 && strstr(text, "divisible"), "tensor 3 refused: %s", text);

    // export, fp32 and bf16, from the tensor-2 root and from the resharded step dir
    snprintf(st, sizeof st, "%s/model.safetensors", work);
    snprintf(args, sizeof args, "export '%s' -o '%s'", root, st);
    CHECK(run(args, text, sizeof text) == 0, "export: %s", text);
    check_export(st, &cfg, seed, 0);
    snprintf(args, sizeof args, "export '%s/step_00000500' -o '%s' --dtype bf16", out, st);
    CHECK(run(args, text, sizeof text) == 0, "export bf16: %s", text);
    check_export(st, &cfg, seed, 1);
    snprintf(args, sizeof args, "export '%s' -o '%s' --dtype fp16", root, st);
    CHECK(run(args, text, sizeof text) == 2, "bad dtype exits 2");

    // a flipped byte: verify exits 1 naming the file
    const char *victim = tu_int(0, 1) ? "model_tp1.h5" : "optim_tp0_dp1.h5";
    snprintf(p, sizeof p, "%s/step_00000500/%s", root, victim);
    flip_in_dataset(p, &cfg);
    snprintf(args, sizeof args, "verify '%s'", root);
    CHECK(run(args, text, sizeof text) == 1 && strstr(text, victim) && strstr(text, "checksum"),
          "verify names %s: %s", victim, text);
    // the same damage with the manifest's CRC made to match: the dataset's block CRCs catch it
    uint32_t crc;
    uint64_t size;
    REQUIRE(nv_ckpt_file_crc(p, &crc, &size, &err) == 0, "%s", err.msg);
    char mp[1200];
    snprintf(mp, sizeof mp, "%s/step_00000500/manifest.ini", root);
    FILE *f = fopen(mp, "r");
    REQUIRE(f, "open manifest");
    size_t len = fread(text, 1, sizeof text - 1, f);
    text[len] = 0;
    fclose(f);
    char *line = strstr(text, victim);
    REQUIRE(line, "manifest lists %s", victim);
    char fixed[80];
    int fl = snprintf(fixed, sizeof fixed, "%s = 0x%08x", victim, crc);
    memcpy(line, fixed, (size_t)fl); // same length: "name = 0x" + 8 hex digits
    f = fopen(mp, "w");
    fputs(text, f);
    fclose(f);
    CHECK(run(args, text, sizeof text) == 1 && strstr(text, victim) && strstr(text, "dataset"),
          "verify finds the dataset of %s: %s", victim, text);

    ct_rm_rf(work);
    return tu_finish("ckpt_tool");
}
