// test_shard_checks - a written shard reads back exactly; every check of the reader refuses
// a damaged copy with its reason (flipped bytes under Fletcher32, truncation, attributes,
// offsets, token and structure ranges, unbalanced brackets, reference counts), and so does
// the verifier (nv_shard_verify: its own Fletcher32 and inflate on raw chunks, or HDF5 for
// other pipelines), at any chunk size; nv_corpus_open concatenates a directory or glob in
// name order and refuses an empty match.
#include "data/shard.h"
#include "data/seqio.h"
#include "data/synth.h"
#include "data/vocab.h"
#include "tests/testutil.h"

#include <hdf5.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[256], pristine[300], work[300];
static hid_t open_rw(void);

static void copy_file(const char *from, const char *to) {
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    REQUIRE(a && b, "copy %s -> %s", from, to);
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, a)) > 0) REQUIRE(fwrite(buf, 1, n, b) == n, "fwrite");
    fclose(a);
    REQUIRE(fclose(b) == 0, "fclose");
}

// Reading `work` must fail, and the message must name the file and contain `why`; so must
// verifying it (vwhy, when the verifier's wording differs).
static void expect_refused2(const char *what, const char *why, const char *vwhy) {
    nv_error verr = {{0}};
    int vrc = nv_shard_verify(work, NULL, &verr);
    CHECK(vrc != 0, "%s: the verifier accepted the damaged shard", what);
    CHECK(vrc == 0 || (strstr(verr.msg, work) && strstr(verr.msg, vwhy)), "%s: verifier: expected '%s' in: %s", what,
          vwhy, verr.msg);
    nv_corpus c;
    nv_error err = {{0}};
    int rc = nv_shard_read(work, &c, 1, &err);
    CHECK(rc != 0, "%s: damaged shard was accepted", what);
    if (rc == 0) {
        nv_corpus_free(&c);
        return;
    }
    CHECK(strstr(err.msg, work) != NULL, "%s: message does not name the file: %s", what, err.msg);
    CHECK(strstr(err.msg, why) != NULL, "%s: expected '%s' in: %s", what, why, err.msg);
    CHECK(c.n_seqs == 0 && c.n_tokens == 0, "%s: failed read left data behind", what);
    printf("  %-28s -> %s\n  %-28s    verify: %s\n", what, err.msg, "", verr.msg);
    nv_corpus_free(&c);
}
static void expect_refused(const char *what, const char *why) { expect_refused2(what, why, why); }

static void set_attr_u64v(const char *name, const uint64_t *v) {
    hid_t f = open_rw(), a = H5Aopen(f, name, H5P_DEFAULT);
    REQUIRE(a >= 0 && H5Awrite(a, H5T_NATIVE_UINT64, v) >= 0, "write attribute %s", name);
    H5Aclose(a);
    H5Fclose(f);
}

// Rewrite /tokens of work with another filter pipeline (Fletcher32 only, small chunks): the
// verifier reads it through HDF5 instead of its raw path.
static void other_pipeline(const nv_corpus *c) {
    hid_t f = open_rw();
    REQUIRE(H5Ldelete(f, "tokens", H5P_DEFAULT) >= 0, "delete /tokens");
    hsize_t n = c->n_tokens, ch = 1000;
    hid_t sp = H5Screate_simple(1, &n, NULL), p = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(p, 1, &ch);
    H5Pset_fletcher32(p);
    hid_t d = H5Dcreate2(f, "tokens", H5T_STD_U8LE, sp, H5P_DEFAULT, p, H5P_DEFAULT);
    REQUIRE(d >= 0 && H5Dwrite(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, c->tokens) >= 0, "rewrite /tokens");
    H5Dclose(d);
    H5Pclose(p);
    H5Sclose(sp);
    H5Fclose(f);
}

static hid_t open_rw(void) {
    hid_t f = H5Fopen(work, H5F_ACC_RDWR, H5P_DEFAULT);
    REQUIRE(f >= 0, "H5Fopen %s", work);
    return f;
}

static void set_attr_u64(const char *name, uint64_t v) {
    hid_t f = open_rw(), a = H5Aopen(f, name, H5P_DEFAULT);
    REQUIRE(a >= 0 && H5Awrite(a, H5T_NATIVE_UINT64, &v) >= 0, "write attribute %s", name);
    H5Aclose(a);
    H5Fclose(f);
}

// Overwrite element `idx` of a dataset through HDF5 (so its checksum stays valid).
static void poke(const char *name, hid_t mem_type, uint64_t idx, const void *val) {
    hid_t f = open_rw(), d = H5Dopen2(f, name, H5P_DEFAULT), sp = H5Dget_space(d);
    hsize_t start[1] = {idx}, count[1] = {1};
    H5Sselect_hyperslab(sp, H5S_SELECT_SET, start, NULL, count, NULL);
    hid_t ms = H5Screate_simple(1, count, NULL);
    REQUIRE(H5Dwrite(d, mem_type, ms, sp, H5P_DEFAULT, val) >= 0, "poke %s[%llu]", name, (unsigned long long)idx);
    H5Sclose(ms);
    H5Sclose(sp);
    H5Dclose(d);
    H5Fclose(f);
}

// Flip bytes in the middle of the stored (compressed) first chunk of a dataset.
static void flip_chunk_bytes(const char *name) {
    hid_t f = H5Fopen(work, H5F_ACC_RDONLY, H5P_DEFAULT), d = H5Dopen2(f, name, H5P_DEFAULT);
    hsize_t off[1];
    unsigned mask;
    haddr_t addr;
    hsize_t size;
    hid_t fs = H5Dget_space(d);
    REQUIRE(H5Dget_chunk_info(d, fs, 0, off, &mask, &addr, &size) >= 0, "chunk info of %s", name);
    H5Sclose(fs);
    H5Dclose(d);
    H5Fclose(f);
    FILE *fp = fopen(work, "r+b");
    REQUIRE(fp, "open %s", work);
    for (int k = 0; k < 4; k++) {
        long at = (long)(addr + size / 2 + (hsize_t)k);
        fseek(fp, at, SEEK_SET);
        int c = fgetc(fp);
        fseek(fp, at, SEEK_SET);
        fputc(c ^ 0x5A, fp);
    }
    REQUIRE(fclose(fp) == 0, "fclose");
}

static void fresh(void) { copy_file(pristine, work); }

int main(void) {
    uint64_t seed = tu_seed();
    snprintf(dir, sizeof dir, "/tmp/nvwa_shard_%d", (int)getpid());
    REQUIRE(mkdir(dir, 0755) == 0, "mkdir %s", dir);
    snprintf(pristine, sizeof pristine, "%s/b.h5", dir);
    snprintf(work, sizeof work, "%s/damaged.bin", dir);

    nv_synth_params p;
    nv_synth_defaults(&p, (uint64_t)tu_int(300, 600), seed);
    nv_corpus c;
    nv_corpus_init(&c);
    nv_synth_corpus(&c, &p);
    nv_error err;
    REQUIRE(nv_shard_write(pristine, &c, &err) == 0, "write: %s", err.msg);

    // exact read back
    nv_corpus b;
    REQUIRE(nv_shard_read(pristine, &b, 1, &err) == 0, "read: %s", err.msg);
    CHECK(b.n_seqs == c.n_seqs && b.n_tokens == c.n_tokens && b.n_with_structure == c.n_with_structure, "counts differ");
    CHECK(memcmp(b.tokens, c.tokens, c.n_tokens) == 0, "tokens differ");
    CHECK(memcmp(b.structure, c.structure, c.n_tokens) == 0, "structure differs");
    CHECK(memcmp(b.offsets, c.offsets, (c.n_seqs + 1) * 8) == 0, "offsets differ");
    for (uint64_t i = 0; i < c.n_seqs; i++) CHECK(strcmp(b.ids[i], c.ids[i]) == 0, "id %llu", (unsigned long long)i);
    nv_corpus_free(&b);
    REQUIRE(nv_shard_read(pristine, &b, 0, &err) == 0 && b.ids == NULL, "read without ids: %s", err.msg);
    nv_corpus_free(&b);

    // a structured sequence and one of its paired positions, for the bracket damage
    uint64_t si = 0, sp = 0;
    for (si = 0; si < c.n_seqs; si++) {
        uint64_t a = c.offsets[si], e = c.offsets[si + 1];
        for (sp = a; sp < e && c.structure[sp] != NV_SS_OPEN; sp++) {}
        if (sp < e) break;
    }
    REQUIRE(si < c.n_seqs, "no structured sequence");
    uint64_t tpos = (uint64_t)tu_int(0, (int)c.n_tokens - 1);

    // the verifier accepts good shards of any chunk size, and other pipelines (through HDF5)
    const int kbs[] = {1, 3, 16, 1024};
    for (int k = 0; k < 4; k++) {
        nv_shard_opts o = {kbs[k]};
        REQUIRE(nv_shard_write_ex(work, &c, &o, &err) == 0, "write: %s", err.msg);
        nv_shard_info info;
        CHECK(nv_shard_verify(work, &info, &err) == 0, "verify %d KiB chunks: %s", kbs[k], err.msg);
        CHECK(info.chunk_tokens == (uint64_t)kbs[k] * 1024 || (info.chunk_tokens == c.n_tokens && c.n_tokens < (uint64_t)kbs[k] * 1024),
              "chunk %llu, want %d KiB", (unsigned long long)info.chunk_tokens, kbs[k]);
        CHECK(info.has_counts && info.n_seqs == c.n_seqs, "header");
    }
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); // the damaging helpers probe HDF5 quietly too
    fresh(); other_pipeline(&c);
    CHECK(nv_shard_verify(work, NULL, &err) == 0, "verify, /tokens with Fletcher32 only: %s", err.msg);
    {
        uint8_t bad = 2;
        poke("tokens", H5T_NATIVE_UINT8, (uint64_t)tu_int(0, (int)c.n_tokens - 1), &bad);
        expect_refused("other pipeline, bad token", "not a nucleotide id");
        fresh(); other_pipeline(&c); flip_chunk_bytes("tokens");
        expect_refused("other pipeline, flipped bytes", "checksum");
    }
    fresh(); flip_chunk_bytes("tokens");    expect_refused2("flipped /tokens bytes", "checksum", "chunk 0");
    fresh(); flip_chunk_bytes("structure"); expect_refused2("flipped /structure bytes", "checksum", "chunk 0");
    fresh(); flip_chunk_bytes("offsets");   expect_refused("flipped /offsets bytes", "checksum");
    fresh(); flip_chunk_bytes("ids");       expect_refused("flipped /ids bytes", "checksum");
    fresh(); REQUIRE(truncate(work, 2000) == 0, "truncate"); expect_refused("truncated to 2000 bytes", "HDF5");
    {
        struct stat st;
        stat(pristine, &st);
        fresh(); REQUIRE(truncate(work, st.st_size * 2 / 3) == 0, "truncate"); expect_refused("truncated to 2/3", "");
    }
    fresh(); { FILE *f = fopen(work, "w"); fputs(">not a shard\nACGU\n", f); fclose(f); }
    expect_refused("text file", "not an HDF5 file");
    fresh(); set_attr_u64("version", 2);  expect_refused("version 2", "version 2");
    fresh(); { hid_t f = open_rw(); H5Adelete(f, "format"); H5Fclose(f); } expect_refused("no format", "'format' is missing");
    fresh(); {
        hid_t f = open_rw();
        H5Adelete(f, "format");
        hid_t t = H5Tcopy(H5T_C_S1), s = H5Screate(H5S_SCALAR);
        H5Tset_size(t, 5);
        hid_t a = H5Acreate2(f, "format", t, s, H5P_DEFAULT, H5P_DEFAULT);
        H5Awrite(a, t, "other");
        H5Aclose(a); H5Sclose(s); H5Tclose(t); H5Fclose(f);
    }
    expect_refused("format 'other'", "expected 'nvwa-shard'");
    fresh(); { hid_t f = open_rw(); H5Adelete(f, "n_tokens"); H5Fclose(f); } expect_refused("no n_tokens", "'n_tokens' is missing");
    fresh(); set_attr_u64("n_tokens", c.n_tokens + 1); expect_refused("n_tokens + 1", "elements but the attributes say");
    fresh(); set_attr_u64("n_seqs", c.n_seqs - 1);     expect_refused("n_seqs - 1", "elements but the attributes say");
    fresh(); set_attr_u64("n_with_structure", c.n_with_structure - 1); expect_refused("n_with_structure - 1", "n_with_structure");
    {
        uint64_t nt[16], cls[3];
        nv_corpus_counts(&c, nt, cls);
        nt[NV_TOK_G]++;
        fresh(); set_attr_u64v("nt_counts", nt); expect_refused("nt_counts off by one", "nt_counts[7]");
        nt[NV_TOK_G]--;
        cls[1] += 2;
        fresh(); set_attr_u64v("class_counts", cls); expect_refused("class_counts off by two", "class_counts[1]");
        fresh(); { hid_t f = open_rw(); H5Adelete(f, "class_counts"); H5Fclose(f); }
        expect_refused("nt_counts without class_counts", "without class_counts");
    }
    fresh(); { hid_t f = open_rw(); H5Ldelete(f, "structure", H5P_DEFAULT); H5Fclose(f); } expect_refused("no /structure", "/structure is missing");
    {
        uint64_t i = (uint64_t)tu_int(1, (int)c.n_seqs - 2), v = c.offsets[i + 1] + 1;
        fresh(); poke("offsets", H5T_NATIVE_UINT64, i, &v); expect_refused("offsets out of order", "decrease");
        uint64_t z = 1;
        fresh(); poke("offsets", H5T_NATIVE_UINT64, 0, &z); expect_refused("offsets[0] = 1", "expected 0");
        uint64_t last = c.n_tokens - 1;
        fresh(); poke("offsets", H5T_NATIVE_UINT64, c.n_seqs, &last); expect_refused("last offset short", "last offset");
    }
    uint8_t bad_tok[] = {0, 3, 4, 16, 200};
    for (int k = 0; k < 5; k++) {
        fresh(); poke("tokens", H5T_NATIVE_UINT8, tpos, &bad_tok[k]); expect_refused("token out of range", "not a nucleotide id");
    }
    uint8_t bad_ss[] = {9, 100, 254};
    for (int k = 0; k < 3; k++) {
        fresh(); poke("structure", H5T_NATIVE_UINT8, tpos, &bad_ss[k]); expect_refused("structure byte out of range", "structure byte");
    }
    uint8_t dot = NV_SS_UNPAIRED, pk = NV_SS_PK_FIRST;
    fresh(); poke("structure", H5T_NATIVE_UINT8, sp, &dot); expect_refused("'(' made '.'", "unbalanced bracket");
    fresh(); poke("structure", H5T_NATIVE_UINT8, sp, &pk);  expect_refused("'(' made '['", "unbalanced bracket");

    // untouched copy still reads; directory and glob open
    fresh();
    REQUIRE(nv_shard_read(work, &b, 0, &err) == 0, "fresh copy: %s", err.msg);
    nv_corpus_free(&b);
    unlink(work);
    nv_corpus c2;
    nv_corpus_init(&c2);
    nv_synth_params p2;
    nv_synth_defaults(&p2, 50, seed + 1);
    nv_synth_corpus(&c2, &p2);
    char a_path[300];
    snprintf(a_path, sizeof a_path, "%s/a.h5", dir);
    REQUIRE(nv_shard_write(a_path, &c2, &err) == 0, "write a: %s", err.msg);
    nv_corpus all;
    REQUIRE(nv_corpus_open(dir, &all, 1, &err) == 0, "open dir: %s", err.msg);
    CHECK(all.n_seqs == c.n_seqs + c2.n_seqs && all.n_tokens == c.n_tokens + c2.n_tokens, "concatenated counts");
    CHECK(memcmp(all.tokens, c2.tokens, c2.n_tokens) == 0 && memcmp(all.tokens + c2.n_tokens, c.tokens, c.n_tokens) == 0,
          "a.h5 must come before b.h5");
    CHECK(strcmp(all.ids[c2.n_seqs], c.ids[0]) == 0, "ids concatenated");
    CHECK(all.offsets[all.n_seqs] == all.n_tokens && all.offsets[c2.n_seqs] == c2.n_tokens, "offsets rebased");
    CHECK(all.n_with_structure == c.n_with_structure + c2.n_with_structure, "n_with_structure summed");
    nv_corpus_free(&all);
    char g[300];
    snprintf(g, sizeof g, "%s/b*.h5", dir);
    REQUIRE(nv_corpus_open(g, &all, 0, &err) == 0, "open glob: %s", err.msg);
    CHECK(all.n_seqs == c.n_seqs && all.ids == NULL, "glob picks b.h5 only");
    nv_corpus_free(&all);
    snprintf(g, sizeof g, "%s/nothing*.h5", dir);
    CHECK(nv_corpus_open(g, &all, 0, &err) != 0 && strstr(err.msg, "no file matches"), "empty glob: %s", err.msg);
    nv_corpus_free(&all);

    unlink(a_path);
    unlink(pristine);
    CHECK(nv_corpus_open(dir, &all, 0, &err) != 0 && strstr(err.msg, "no *.h5"), "empty dir: %s", err.msg);
    nv_corpus_free(&all);
    rmdir(dir);
    nv_corpus_free(&c);
    nv_corpus_free(&c2);
    return tu_finish("test_shard_checks");
}
