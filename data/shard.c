// shard.c - the HDF5 shard of design section 5: write atomically, read with every check.
//
// HDF5 prints its own error stack by default; a bad shard must give one line naming the
// file and the reason, so every entry point switches the automatic printing off for its
// duration and restores the caller's handler on the way out.
#include "data/corpus.h"
#include "data/seqio.h"
#include "data/vocab.h"

#include "data/h5util.h"

#include <errno.h>
#include <hdf5.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


// ---------------------------------------------------------------------------------------
// writer



// One chunked, deflated, Fletcher32-checked 1-D dataset. `chunk_elems` is clamped to n
// (and to 1 for empty datasets, which are then made extendible so the chunk fits).
static int write_1d(hid_t f, const char *name, hid_t file_type, hid_t mem_type, uint64_t n,
                    uint64_t chunk_elems, const void *data) {
    hsize_t dims[1] = {n}, maxdims[1] = {n ? n : H5S_UNLIMITED};
    hsize_t chunk[1] = {chunk_elems < n ? chunk_elems : (n ? n : 1)};
    hid_t sp = H5Screate_simple(1, dims, maxdims);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    int rc = -1;
    if (sp >= 0 && dcpl >= 0 && H5Pset_chunk(dcpl, 1, chunk) >= 0 && H5Pset_deflate(dcpl, 1) >= 0 &&
        H5Pset_fletcher32(dcpl) >= 0 && // checksum last: verified before inflating
        H5Pset_obj_track_times(dcpl, 0) >= 0) { // no timestamps: same corpus, same bytes
        hid_t d = H5Dcreate2(f, name, file_type, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
        if (d >= 0) {
            rc = (n == 0 || H5Dwrite(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0) ? 0 : -1;
            if (H5Dclose(d) < 0) rc = -1;
        }
    }
    // NVWA_H5_DEBUG=1 shows HDF5's own error stack, which is silenced otherwise
    if (rc != 0 && getenv("NVWA_H5_DEBUG")) H5Eprint2(H5E_DEFAULT, stderr);
    if (dcpl >= 0) H5Pclose(dcpl);
    if (sp >= 0) H5Sclose(sp);
    return rc;
}

int nv_shard_write(const char *path, const nv_corpus *c, nv_error *err) {
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return nv_seterr(err, "%s: path too long", path);
    nv_h5_quiet q = nv_h5_quiet_begin();
    const char *what = "create";
    // 1.8 object headers carry checksums: damaged metadata fails on open instead of reaching
    // libhdf5's decoders (1.10.8 overreads on a damaged v1 header; tests/fuzz/fuzz_shard)
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl >= 0 && H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_LATEST) < 0) H5Pclose(fapl), fapl = -1;
    // no timestamps in the root group's header either: a shard's bytes depend on its
    // contents alone (nvwa-fold's resumed output is compared byte for byte)
    hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
    if (fcpl >= 0 && H5Pset_obj_track_times(fcpl, 0) < 0) H5Pclose(fcpl), fcpl = -1;
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, fcpl >= 0 ? fcpl : H5P_DEFAULT, fapl >= 0 ? fapl : H5P_DEFAULT);
    if (fapl >= 0) H5Pclose(fapl);
    if (fcpl >= 0) H5Pclose(fcpl);
    int ok = f >= 0;
    // ids: fixed-length NUL-padded strings as long as the longest id. HDF5 (1.10) refuses
    // deflate and Fletcher32 on variable-length strings, and the ids must be checksummed
    // like the rest. A corpus loaded without ids is written with empty ones.
    size_t idw = 1;
    for (uint64_t i = 0; c->ids && i < c->n_seqs; i++) {
        size_t n = strlen(c->ids[i]);
        if (n > idw) idw = n;
    }
    char *ids = nv_calloc(c->n_seqs ? c->n_seqs : 1, idw);
    for (uint64_t i = 0; c->ids && i < c->n_seqs; i++) memcpy(ids + i * idw, c->ids[i], strlen(c->ids[i]));
    hid_t st = H5Tcopy(H5T_C_S1);
    ok = ok && st >= 0 && H5Tset_size(st, idw) >= 0 && H5Tset_strpad(st, H5T_STR_NULLPAD) >= 0;
    if (ok) what = "write attributes";
    ok = ok && nv_h5_attr_str(f, "format", NV_SHARD_FORMAT) == 0 && nv_h5_attr_u64(f, "version", NV_SHARD_VERSION) == 0 &&
         nv_h5_attr_u64(f, "n_seqs", c->n_seqs) == 0 && nv_h5_attr_u64(f, "n_tokens", c->n_tokens) == 0 &&
         nv_h5_attr_u64(f, "n_with_structure", c->n_with_structure) == 0;
    if (ok) what = "write /tokens";
    ok = ok && write_1d(f, "tokens", H5T_STD_U8LE, H5T_NATIVE_UINT8, c->n_tokens, 1 << 20, c->tokens) == 0;
    if (ok) what = "write /structure";
    ok = ok && write_1d(f, "structure", H5T_STD_U8LE, H5T_NATIVE_UINT8, c->n_tokens, 1 << 20, c->structure) == 0;
    if (ok) what = "write /offsets";
    ok = ok && write_1d(f, "offsets", H5T_STD_U64LE, H5T_NATIVE_UINT64, c->n_seqs + 1, 1 << 16, c->offsets) == 0;
    if (ok) what = "write /ids";
    ok = ok && write_1d(f, "ids", st, st, c->n_seqs, 1 << 14, ids) == 0;
    if (st >= 0) H5Tclose(st);
    free(ids);
    if (f >= 0) {
        if (ok) what = "close (flush)";
        if (H5Fclose(f) < 0) ok = 0;
    }
    nv_h5_quiet_end(q);
    if (!ok) {
        int e = errno;
        unlink(tmp);
        return nv_seterr(err, "%s: cannot %s the shard (last system error: %s)\n"
                              "---> HINT: is the directory writable and the disk not full?",
                         tmp, what, strerror(e));
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return nv_seterr(err, "%s: cannot rename %s into place: %s", path, tmp, strerror(e));
    }
    return 0;
}

// ---------------------------------------------------------------------------------------
// reader

typedef struct shard_rd {
    const char *path;
    hid_t f;
    nv_error *err;
} shard_rd;

static int read_attr_u64(shard_rd *r, const char *name, uint64_t *v) {
    if (H5Aexists(r->f, name) <= 0) return nv_seterr(r->err, "%s: not an nvwa shard: root attribute '%s' is missing", r->path, name);
    hid_t a = H5Aopen(r->f, name, H5P_DEFAULT);
    if (a < 0) return nv_seterr(r->err, "%s: cannot open attribute '%s'", r->path, name);
    hid_t t = H5Aget_type(a), sp = H5Aget_space(a);
    int rc = 0;
    if (t < 0 || H5Tget_class(t) != H5T_INTEGER || sp < 0 || H5Sget_simple_extent_npoints(sp) != 1)
        rc = nv_seterr(r->err, "%s: attribute '%s' is not a single integer", r->path, name);
    else if (H5Aread(a, H5T_NATIVE_UINT64, v) < 0)
        rc = nv_seterr(r->err, "%s: cannot read attribute '%s' (negative or corrupt?)", r->path, name);
    if (t >= 0) H5Tclose(t);
    if (sp >= 0) H5Sclose(sp);
    H5Aclose(a);
    return rc;
}

static int check_format_attr(shard_rd *r) {
    if (H5Aexists(r->f, "format") <= 0)
        return nv_seterr(r->err, "%s: not an nvwa shard: root attribute 'format' is missing", r->path);
    hid_t a = H5Aopen(r->f, "format", H5P_DEFAULT);
    if (a < 0) return nv_seterr(r->err, "%s: cannot open attribute 'format'", r->path);
    hid_t t = H5Aget_type(a);
    char buf[64] = {0};
    int rc = 0;
    if (t < 0 || H5Tget_class(t) != H5T_STRING) {
        rc = nv_seterr(r->err, "%s: not an nvwa shard: attribute 'format' is not a string", r->path);
    } else if (H5Tis_variable_str(t) > 0) {
        char *s = NULL;
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, H5T_VARIABLE);
        if (H5Aread(a, mt, &s) < 0 || !s) rc = nv_seterr(r->err, "%s: cannot read attribute 'format'", r->path);
        else snprintf(buf, sizeof buf, "%s", s);
        if (s) H5free_memory(s);
        H5Tclose(mt);
    } else {
        size_t n = H5Tget_size(t);
        if (n == 0 || n >= sizeof buf) {
            rc = nv_seterr(r->err, "%s: not an nvwa shard: attribute 'format' has %zu bytes", r->path, n);
        } else {
            hid_t mt = H5Tcopy(H5T_C_S1);
            H5Tset_size(mt, n + 1);
            if (H5Aread(a, mt, buf) < 0) rc = nv_seterr(r->err, "%s: cannot read attribute 'format'", r->path);
            H5Tclose(mt);
        }
    }
    if (rc == 0 && strcmp(buf, NV_SHARD_FORMAT) != 0)
        rc = nv_seterr(r->err, "%s: not an nvwa shard: format is '%.60s', expected '%s'", r->path, buf, NV_SHARD_FORMAT);
    if (t >= 0) H5Tclose(t);
    H5Aclose(a);
    return rc;
}

// Open a 1-D dataset and check its element class, size and length.
static hid_t open_1d(shard_rd *r, const char *name, H5T_class_t cls, size_t elem, uint64_t want_n) {
    if (H5Lexists(r->f, name, H5P_DEFAULT) <= 0) {
        nv_seterr(r->err, "%s: dataset /%s is missing", r->path, name);
        return -1;
    }
    hid_t d = H5Dopen2(r->f, name, H5P_DEFAULT);
    if (d < 0) {
        nv_seterr(r->err, "%s: cannot open dataset /%s", r->path, name);
        return -1;
    }
    hid_t t = H5Dget_type(d), sp = H5Dget_space(d);
    int ok = t >= 0 && sp >= 0;
    if (ok && (H5Tget_class(t) != cls || (elem && H5Tget_size(t) != elem) ||
               (cls == H5T_INTEGER && H5Tget_sign(t) != H5T_SGN_NONE) ||
               (cls == H5T_STRING && H5Tis_variable_str(t) < 0))) {
        nv_seterr(r->err, "%s: dataset /%s has the wrong type (expected %s)", r->path, name,
                  cls == H5T_STRING ? "strings" : elem == 1 ? "uint8" : "uint64");
        ok = 0;
    } else if (ok) {
        hsize_t dims[1] = {0};
        if (H5Sget_simple_extent_ndims(sp) != 1 || H5Sget_simple_extent_dims(sp, dims, NULL) != 1) {
            nv_seterr(r->err, "%s: dataset /%s is not one-dimensional", r->path, name);
            ok = 0;
        } else if ((uint64_t)dims[0] != want_n) {
            nv_seterr(r->err, "%s: dataset /%s has %llu elements but the attributes say %llu", r->path, name,
                      (unsigned long long)dims[0], (unsigned long long)want_n);
            ok = 0;
        }
    } else {
        nv_seterr(r->err, "%s: cannot inspect dataset /%s", r->path, name);
    }
    if (t >= 0) H5Tclose(t);
    if (sp >= 0) H5Sclose(sp);
    if (!ok) {
        H5Dclose(d);
        return -1;
    }
    return d;
}

static int read_1d(shard_rd *r, const char *name, hid_t d, hid_t mem_type, uint64_t n, void *buf) {
    int rc = 0;
    if (n > 0 && H5Dread(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0)
        rc = nv_seterr(r->err, "%s: cannot read dataset /%s: checksum mismatch or corrupt data\n"
                               "---> HINT: the file is damaged; rewrite it with nvwa-prep",
                       r->path, name);
    H5Dclose(d);
    return rc;
}

// Everything after the HDF5 reads: offsets, value ranges, bracket balance, the count.
static int check_contents(shard_rd *r, const nv_corpus *c) {
    if (c->offsets[0] != 0)
        return nv_seterr(r->err, "%s: /offsets[0] is %llu, expected 0", r->path, (unsigned long long)c->offsets[0]);
    for (uint64_t i = 0; i < c->n_seqs; i++) { // the offsets first: the contents rely on them
        uint64_t a = c->offsets[i], b = c->offsets[i + 1];
        if (b < a)
            return nv_seterr(r->err, "%s: /offsets decrease at sequence %llu (%llu then %llu)", r->path,
                             (unsigned long long)i, (unsigned long long)a, (unsigned long long)b);
        if (b > c->n_tokens)
            return nv_seterr(r->err, "%s: /offsets[%llu] = %llu is past n_tokens = %llu", r->path,
                             (unsigned long long)(i + 1), (unsigned long long)b, (unsigned long long)c->n_tokens);
    }
    if (c->offsets[c->n_seqs] != c->n_tokens)
        return nv_seterr(r->err, "%s: last offset is %llu, expected n_tokens = %llu", r->path,
                         (unsigned long long)c->offsets[c->n_seqs], (unsigned long long)c->n_tokens);
    uint64_t with_ss = 0;
    for (uint64_t i = 0; i < c->n_seqs; i++) {
        uint64_t a = c->offsets[i], b = c->offsets[i + 1];
        int known = 0;
        for (uint64_t k = a; k < b; k++) {
            uint8_t t = c->tokens[k], s = c->structure[k];
            if (t < NV_FIRST_NT || t >= NV_VOCAB)
                return nv_seterr(r->err, "%s: sequence %llu, position %llu: token %u is not a nucleotide id (5..15)",
                                 r->path, (unsigned long long)i, (unsigned long long)(k - a), t);
            if (s > NV_SS_PK_LAST && s != NV_SS_UNKNOWN)
                return nv_seterr(r->err, "%s: sequence %llu, position %llu: structure byte %u is not in 0..8 or 255",
                                 r->path, (unsigned long long)i, (unsigned long long)(k - a), s);
            known |= s != NV_SS_UNKNOWN;
        }
        uint64_t pos;
        if (known && nv_ss_balance(c->structure + a, b - a, &pos) != 0)
            return nv_seterr(r->err, "%s: sequence %llu, position %llu: unbalanced bracket '%c'", r->path,
                             (unsigned long long)i, (unsigned long long)pos,
                             pos < b - a ? nv_char_from_ss(c->structure[a + pos]) : '?');
        with_ss += (uint64_t)known;
    }
    if (with_ss != c->n_with_structure)
        return nv_seterr(r->err, "%s: attribute n_with_structure = %llu but %llu sequences have a structure",
                         r->path, (unsigned long long)c->n_with_structure, (unsigned long long)with_ss);
    return 0;
}

static int shard_read_open(shard_rd *r, nv_corpus *out, int want_ids) {
    uint64_t version = 0, n_seqs = 0, n_tokens = 0, n_ss = 0;
    if (check_format_attr(r) != 0) return -1;
    if (read_attr_u64(r, "version", &version) != 0) return -1;
    if (version != NV_SHARD_VERSION)
        return nv_seterr(r->err, "%s: shard format version %llu, this program reads version %d\n"
                                 "---> HINT: rewrite the shards with this nvwa-prep",
                         r->path, (unsigned long long)version, NV_SHARD_VERSION);
    if (read_attr_u64(r, "n_seqs", &n_seqs) != 0 || read_attr_u64(r, "n_tokens", &n_tokens) != 0 ||
        read_attr_u64(r, "n_with_structure", &n_ss) != 0)
        return -1;
    if (n_ss > n_seqs)
        return nv_seterr(r->err, "%s: attribute n_with_structure = %llu exceeds n_seqs = %llu", r->path,
                         (unsigned long long)n_ss, (unsigned long long)n_seqs);
    // Sizes are checked against the datasets before anything is allocated from them.
    hid_t dt = open_1d(r, "tokens", H5T_INTEGER, 1, n_tokens);
    if (dt < 0) return -1;
    hid_t ds = open_1d(r, "structure", H5T_INTEGER, 1, n_tokens);
    if (ds < 0) return H5Dclose(dt), -1;
    hid_t dof = open_1d(r, "offsets", H5T_INTEGER, 8, n_seqs + 1);
    if (dof < 0) return H5Dclose(dt), H5Dclose(ds), -1;
    hid_t did = open_1d(r, "ids", H5T_STRING, 0, n_seqs);
    if (did < 0) return H5Dclose(dt), H5Dclose(ds), H5Dclose(dof), -1;

    out->n_seqs = n_seqs;
    out->n_tokens = n_tokens;
    out->n_with_structure = n_ss;
    out->tokens = nv_malloc(n_tokens);
    out->structure = nv_malloc(n_tokens);
    free(out->offsets);
    out->offsets = nv_malloc((n_seqs + 1) * sizeof(uint64_t));
    out->cap_tokens = n_tokens;
    out->cap_seqs = n_seqs;
    int rc = read_1d(r, "tokens", dt, H5T_NATIVE_UINT8, n_tokens, out->tokens);
    rc = rc ? (H5Dclose(ds), -1) : read_1d(r, "structure", ds, H5T_NATIVE_UINT8, n_tokens, out->structure);
    rc = rc ? (H5Dclose(dof), -1) : read_1d(r, "offsets", dof, H5T_NATIVE_UINT64, n_seqs + 1, out->offsets);
    if (rc) return H5Dclose(did), -1;
    if (check_contents(r, out) != 0) return H5Dclose(did), -1;

    if (!want_ids) return H5Dclose(did), 0;
    // ids last: they are only wanted by tools, and their check is the HDF5 read itself.
    // nvwa-prep writes fixed-length strings; variable-length ones (other writers) are read too.
    hid_t ft = H5Dget_type(did);
    int vlen = H5Tis_variable_str(ft) > 0;
    size_t w = vlen ? 0 : H5Tget_size(ft);
    H5Tclose(ft);
    if (!vlen) {
        char *buf = nv_calloc(n_seqs ? n_seqs : 1, w + 1);
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, w + 1);
        H5Tset_strpad(mt, H5T_STR_NULLTERM);
        rc = 0;
        if (n_seqs > 0 && H5Dread(did, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
            rc = nv_seterr(r->err, "%s: cannot read dataset /ids: checksum mismatch or corrupt data", r->path);
        } else {
            out->ids = nv_malloc((n_seqs ? n_seqs : 1) * sizeof(char *));
            for (uint64_t i = 0; i < n_seqs; i++) out->ids[i] = nv_strdup(buf + i * (w + 1));
        }
        free(buf);
        H5Tclose(mt);
        H5Dclose(did);
        return rc;
    }
    char **raw = nv_calloc(n_seqs ? n_seqs : 1, sizeof(char *));
    hid_t mt = H5Tcopy(H5T_C_S1);
    H5Tset_size(mt, H5T_VARIABLE);
    rc = 0;
    if (n_seqs > 0 && H5Dread(did, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw) < 0) {
        rc = nv_seterr(r->err, "%s: cannot read dataset /ids: checksum mismatch or corrupt data", r->path);
    } else {
        out->ids = nv_malloc((n_seqs ? n_seqs : 1) * sizeof(char *));
        for (uint64_t i = 0; i < n_seqs; i++) out->ids[i] = nv_strdup(raw[i] ? raw[i] : "");
        if (n_seqs > 0) {
            hid_t sp = H5Dget_space(did);
            H5Dvlen_reclaim(mt, sp, H5P_DEFAULT, raw);
            H5Sclose(sp);
        }
    }
    free(raw);
    H5Tclose(mt);
    H5Dclose(did);
    return rc;
}

int nv_shard_read(const char *path, nv_corpus *out, int want_ids, nv_error *err) {
    nv_corpus_init(out);
    if (access(path, R_OK) != 0) return nv_seterr(err, "%s: cannot read: %s", path, strerror(errno));
    nv_h5_quiet q = nv_h5_quiet_begin();
    shard_rd r = {path, -1, err};
    int rc;
    if (H5Fis_hdf5(path) <= 0) {
        rc = nv_seterr(err, "%s: not an HDF5 file (or truncated: its superblock is unreadable)", path);
    } else if ((r.f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT)) < 0) {
        rc = nv_seterr(err, "%s: cannot open as HDF5 (truncated or damaged file?)", path);
    } else {
        rc = shard_read_open(&r, out, want_ids);
        if (H5Fclose(r.f) < 0 && rc == 0) rc = nv_seterr(err, "%s: error closing the file", path);
    }
    nv_h5_quiet_end(q);
    if (rc != 0) {
        nv_corpus_free(out);
        nv_corpus_init(out);
    }
    return rc;
}
