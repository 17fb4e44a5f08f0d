// fuzz_shard_struct.c - libFuzzer target: nv_shard_read on structurally valid HDF5 files
// whose shard attributes, dataset types/shapes and contents (offsets, tokens, structure,
// ids) are mutated by the fuzz input. Raw bytes (fuzz_shard.c) mostly stop at HDF5's own
// checks; this target reaches the shard checks behind them.
//
// The input is a list of operations on a valid 4-sequence shard; each is an opcode byte and
// its operands (missing bytes read as 0):
//   0 a k     attribute a (format, version, n_seqs, n_tokens, n_with_structure) written as
//             kind k: u64 scalar, i64 scalar, string, missing, u64[2]
//   1 a v8    attribute a's integer value = v (little-endian u64)
//   2 n s..   format string = n (< 32) bytes
//   3 i b     tokens[i] = b          4 i b   structure[i] = b
//   5 i v8    offsets[i] = v         6 i d   offsets[i] += (int8) d
//   7 j k     dataset j (tokens, structure, offsets, ids) written as kind k: as specified,
//             missing, int32 (signed), 2-D [n,1], contiguous without filters
//   8 j d     dataset j's length += (int8) d (new elements 0 / empty)
//   9 i n s.. ids[i] = n (< 40) bytes
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_shard_check.h"
#include "data/shard.h"
#include "fuzz_util.h"

#define MAXLEN 4096
enum { A_FORMAT, A_VERSION, A_NSEQS, A_NTOKENS, A_NSS, N_ATTR };
enum { D_TOKENS, D_STRUCT, D_OFFSETS, D_IDS, N_DS };
static const char *attr_names[N_ATTR] = {"format", "version", "n_seqs", "n_tokens", "n_with_structure"};
static const char *ds_names[N_DS] = {"tokens", "structure", "offsets", "ids"};

typedef struct desc {
    int attr_kind[N_ATTR];
    uint64_t attr_val[N_ATTR];
    char format[33];
    int ds_kind[N_DS];
    size_t len[N_DS];
    uint8_t tokens[MAXLEN], structure[MAXLEN];
    uint64_t offsets[MAXLEN];
    char ids[MAXLEN][41];
} desc;

static desc base;

static void base_init(void) {
    static const char *seqs[] = {"ACGUACGUAC", "GGGAAACCC", "UUUU", "ACGUNRYKMSWACGU"};
    static const char *ss[] = {"((....))..", "(((...)))", NULL, "[[..((..]]..))."};
    memset(&base, 0, sizeof base);
    static const char tokchars[] = "ACGUNRYKMSW"; // ids 5..15 in vocabulary order
    size_t n = 0, nss = 0;
    for (int i = 0; i < 4; i++) {
        base.offsets[i] = n;
        snprintf(base.ids[i], sizeof base.ids[i], "URS%010d_9606", i + 1);
        for (size_t k = 0; seqs[i][k]; k++, n++) {
            base.tokens[n] = (uint8_t)(5 + (strchr(tokchars, seqs[i][k]) - tokchars));
            uint8_t s = 255;
            if (ss[i]) {
                const char *m = strchr(".()[]{}<>", ss[i][k]);
                s = (uint8_t)(m - ".()[]{}<>");
            }
            base.structure[n] = s;
        }
        nss += ss[i] != NULL;
    }
    base.offsets[4] = n;
    base.len[D_TOKENS] = base.len[D_STRUCT] = n;
    base.len[D_OFFSETS] = 5;
    base.len[D_IDS] = 4;
    snprintf(base.format, sizeof base.format, "%s", NV_SHARD_FORMAT);
    base.attr_val[A_VERSION] = NV_SHARD_VERSION;
    base.attr_val[A_NSEQS] = 4;
    base.attr_val[A_NTOKENS] = n;
    base.attr_val[A_NSS] = nss;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
    fuzz_hdf5_quiet();
    base_init();
    return 0;
}

typedef struct rd {
    const uint8_t *p;
    size_t n;
} rd;
static uint8_t u8(rd *r) {
    if (!r->n) return 0;
    r->n--;
    return *r->p++;
}
static uint64_t u64(rd *r) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)u8(r) << (8 * i);
    return v;
}

static void write_attr(hid_t f, const desc *d, int a) {
    const int kind = d->attr_kind[a];
    if (kind == 3) return;
    if (kind == 2 || (a == A_FORMAT && kind == 0)) { // string
        char buf[33];
        if (a == A_FORMAT) snprintf(buf, sizeof buf, "%s", d->format);
        else snprintf(buf, sizeof buf, "%llu", (unsigned long long)d->attr_val[a]);
        hid_t t = H5Tcopy(H5T_C_S1);
        H5Tset_size(t, strlen(buf) ? strlen(buf) : 1);
        hid_t sp = H5Screate(H5S_SCALAR);
        hid_t at = H5Acreate2(f, attr_names[a], t, sp, H5P_DEFAULT, H5P_DEFAULT);
        if (at >= 0) H5Awrite(at, t, buf), H5Aclose(at);
        H5Sclose(sp);
        H5Tclose(t);
        return;
    }
    uint64_t v[2] = {d->attr_val[a], d->attr_val[a]};
    hsize_t two = 2;
    hid_t sp = kind == 4 ? H5Screate_simple(1, &two, NULL) : H5Screate(H5S_SCALAR);
    hid_t ft = kind == 1 ? H5T_STD_I64LE : H5T_STD_U64LE, mt = kind == 1 ? H5T_NATIVE_INT64 : H5T_NATIVE_UINT64;
    hid_t at = H5Acreate2(f, attr_names[a], ft, sp, H5P_DEFAULT, H5P_DEFAULT);
    if (at >= 0) H5Awrite(at, mt, v), H5Aclose(at);
    H5Sclose(sp);
}

static void write_ds(hid_t f, const desc *d, int j) {
    const int kind = d->ds_kind[j];
    if (kind == 1) return;
    const size_t n = d->len[j];
    hsize_t dims[2] = {n, 1}, maxd[2] = {n ? n : H5S_UNLIMITED, 1}, chunk[2] = {n ? (n < 64 ? n : 64) : 1, 1};
    const int rank = kind == 3 ? 2 : 1;
    hid_t sp = H5Screate_simple(rank, dims, maxd);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (kind != 4 || n == 0) {
        H5Pset_chunk(dcpl, rank, chunk);
        H5Pset_deflate(dcpl, 1);
        H5Pset_fletcher32(dcpl);
    }
    hid_t ft, mt;
    void *buf = NULL;
    int32_t *i32 = NULL;
    char *ids = NULL;
    if (kind == 2) {
        ft = H5T_STD_I32LE;
        mt = H5T_NATIVE_INT32;
        i32 = calloc(n ? n : 1, sizeof *i32);
        for (size_t i = 0; i < n; i++)
            i32[i] = j == D_TOKENS ? d->tokens[i] : j == D_STRUCT ? d->structure[i] : j == D_OFFSETS ? (int32_t)d->offsets[i] : 0;
        buf = i32;
    } else if (j == D_IDS) {
        ft = H5Tcopy(H5T_C_S1);
        H5Tset_size(ft, 40);
        H5Tset_strpad(ft, H5T_STR_NULLPAD);
        mt = ft;
        ids = calloc(n ? n : 1, 40);
        for (size_t i = 0; i < n; i++) memcpy(ids + 40 * i, d->ids[i], strnlen(d->ids[i], 40));
        buf = ids;
    } else if (j == D_OFFSETS) {
        ft = H5T_STD_U64LE;
        mt = H5T_NATIVE_UINT64;
        buf = (void *)d->offsets;
    } else {
        ft = H5T_STD_U8LE;
        mt = H5T_NATIVE_UINT8;
        buf = (void *)(j == D_TOKENS ? d->tokens : d->structure);
    }
    hid_t ds = H5Dcreate2(f, ds_names[j], ft, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (ds >= 0) {
        if (n) H5Dwrite(ds, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
        H5Dclose(ds);
    }
    if (j == D_IDS && kind != 2) H5Tclose(ft);
    free(i32);
    free(ids);
    H5Pclose(dcpl);
    H5Sclose(sp);
}

static desc work;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    desc *d = &work;
    *d = base;
    rd r = {data, size};
    for (int ops = 0; r.n && ops < 64; ops++) {
        const uint8_t op = u8(&r) % 10;
        switch (op) {
        case 0: { int a = u8(&r) % N_ATTR; d->attr_kind[a] = u8(&r) % 5; break; }
        case 1: { int a = u8(&r) % N_ATTR; d->attr_val[a] = u64(&r); break; }
        case 2: {
            size_t n = u8(&r) % 33;
            for (size_t i = 0; i < n; i++) d->format[i] = (char)u8(&r);
            d->format[n < 32 ? n : 32] = 0;
            break;
        }
        case 3: { size_t i = u8(&r); uint8_t b = u8(&r); if (d->len[D_TOKENS]) d->tokens[i % d->len[D_TOKENS]] = b; break; }
        case 4: { size_t i = u8(&r); uint8_t b = u8(&r); if (d->len[D_STRUCT]) d->structure[i % d->len[D_STRUCT]] = b; break; }
        case 5: { size_t i = u8(&r); uint64_t v = u64(&r); if (d->len[D_OFFSETS]) d->offsets[i % d->len[D_OFFSETS]] = v; break; }
        case 6: { size_t i = u8(&r); int8_t v = (int8_t)u8(&r); if (d->len[D_OFFSETS]) d->offsets[i % d->len[D_OFFSETS]] += (uint64_t)(int64_t)v; break; }
        case 7: { int j = u8(&r) % N_DS; d->ds_kind[j] = u8(&r) % 5; break; }
        case 8: {
            int j = u8(&r) % N_DS;
            long n = (long)d->len[j] + (int8_t)u8(&r);
            if (n < 0) n = 0;
            if (n > MAXLEN) n = MAXLEN;
            for (size_t i = d->len[j]; i < (size_t)n; i++) { // new elements: zero / empty
                if (j == D_TOKENS) d->tokens[i] = 0;
                if (j == D_STRUCT) d->structure[i] = 0;
                if (j == D_OFFSETS) d->offsets[i] = 0;
                if (j == D_IDS) d->ids[i][0] = 0;
            }
            d->len[j] = (size_t)n;
            break;
        }
        case 9: {
            size_t i = u8(&r), n = u8(&r) % 41;
            if (!d->len[D_IDS]) break;
            char *s = d->ids[i % d->len[D_IDS]];
            for (size_t k = 0; k < n; k++) s[k] = (char)u8(&r);
            s[n < 40 ? n : 40] = 0;
            break;
        }
        }
    }
    const char *path = fuzz_path("struct.h5");
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) abort();
    for (int a = 0; a < N_ATTR; a++) write_attr(f, d, a);
    for (int j = 0; j < N_DS; j++) write_ds(f, d, j);
    if (H5Fclose(f) < 0) abort();
    fuzz_shard_read_check(path);
    return 0;
}
