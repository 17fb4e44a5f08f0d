// shard.c - the HDF5 shard of design section 5: write atomically, read with every check.
//
// HDF5 prints its own error stack by default; a bad shard must give one line naming the
// file and the reason, so every entry point switches the automatic printing off for its
// duration and restores the caller's handler on the way out.
#include "data/shard.h"
#include "data/seqio.h"
#include "data/vocab.h"

#include "data/h5util.h"

#include <errno.h>
#include <glob.h>
#include <hdf5.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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
    return nv_shard_write_ex(path, c, NULL, err);
}

int nv_shard_write_ex(const char *path, const nv_corpus *c, const nv_shard_opts *o, nv_error *err) {
    const int chunk_kb = o && o->chunk_kb > 0 ? o->chunk_kb : NV_SHARD_CHUNK_KB;
    if (chunk_kb > (1 << 20)) return nv_seterr(err, "%s: chunk size %d KiB is above the 1 GiB limit", path, chunk_kb);
    const uint64_t chunk = (uint64_t)chunk_kb << 10;
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return nv_seterr(err, "%s: path too long", path);
    uint64_t nt[16], cls[3];
    nv_corpus_counts(c, nt, cls);
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
         nv_h5_attr_u64(f, "n_with_structure", c->n_with_structure) == 0 &&
         nv_h5_attr_u64v(f, "nt_counts", nt, 16) == 0 && nv_h5_attr_u64v(f, "class_counts", cls, 3) == 0;
    if (ok) what = "write /tokens";
    ok = ok && write_1d(f, "tokens", H5T_STD_U8LE, H5T_NATIVE_UINT8, c->n_tokens, chunk, c->tokens) == 0;
    if (ok) what = "write /structure";
    ok = ok && write_1d(f, "structure", H5T_STD_U8LE, H5T_NATIVE_UINT8, c->n_tokens, chunk, c->structure) == 0;
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

int nv_shard_check_offsets(const char *path, const uint64_t *off, uint64_t n_seqs, uint64_t n_tokens,
                           nv_error *err) {
    if (off[0] != 0)
        return nv_seterr(err, "%s: /offsets[0] is %llu, expected 0", path, (unsigned long long)off[0]);
    for (uint64_t i = 0; i < n_seqs; i++) {
        uint64_t a = off[i], b = off[i + 1];
        if (b < a)
            return nv_seterr(err, "%s: /offsets decrease at sequence %llu (%llu then %llu)", path,
                             (unsigned long long)i, (unsigned long long)a, (unsigned long long)b);
        if (b > n_tokens)
            return nv_seterr(err, "%s: /offsets[%llu] = %llu is past n_tokens = %llu", path,
                             (unsigned long long)(i + 1), (unsigned long long)b, (unsigned long long)n_tokens);
    }
    if (off[n_seqs] != n_tokens)
        return nv_seterr(err, "%s: last offset is %llu, expected n_tokens = %llu", path,
                         (unsigned long long)off[n_seqs], (unsigned long long)n_tokens);
    return 0;
}

int nv_shard_check_seq(const char *path, uint64_t i, const uint8_t *tok, const uint8_t *ss, uint64_t len,
                       int *known, nv_error *err) {
    int k = 0;
    for (uint64_t j = 0; j < len; j++) {
        uint8_t t = tok[j], s = ss[j];
        if (t < NV_FIRST_NT || t >= NV_VOCAB)
            return nv_seterr(err, "%s: sequence %llu, position %llu: token %u is not a nucleotide id (5..15)",
                             path, (unsigned long long)i, (unsigned long long)j, t);
        if (s > NV_SS_PK_LAST && s != NV_SS_UNKNOWN)
            return nv_seterr(err, "%s: sequence %llu, position %llu: structure byte %u is not in 0..8 or 255",
                             path, (unsigned long long)i, (unsigned long long)j, s);
        k |= s != NV_SS_UNKNOWN;
    }
    uint64_t pos;
    if (k && nv_ss_balance(ss, len, &pos) != 0)
        return nv_seterr(err, "%s: sequence %llu, position %llu: unbalanced bracket '%c'", path,
                         (unsigned long long)i, (unsigned long long)pos, pos < len ? nv_char_from_ss(ss[pos]) : '?');
    *known = k;
    return 0;
}

int nv_shard_check_counts(const char *path, const nv_shard_info *h, const uint64_t nt[16],
                          const uint64_t cls[3], uint64_t with_ss, nv_error *err) {
    if (with_ss != h->n_with_structure)
        return nv_seterr(err, "%s: attribute n_with_structure = %llu but %llu sequences have a structure",
                         path, (unsigned long long)h->n_with_structure, (unsigned long long)with_ss);
    if (!h->has_counts) return 0;
    for (int v = 0; v < 16; v++)
        if (nt[v] != h->nt_counts[v])
            return nv_seterr(err, "%s: attribute nt_counts[%d] = %llu but the shard holds %llu tokens of id %d",
                             path, v, (unsigned long long)h->nt_counts[v], (unsigned long long)nt[v], v);
    for (int k = 0; k < 3; k++)
        if (cls[k] != h->class_counts[k])
            return nv_seterr(err, "%s: attribute class_counts[%d] = %llu but the shard holds %llu such positions",
                             path, k, (unsigned long long)h->class_counts[k], (unsigned long long)cls[k]);
    return 0;
}

// Everything after the HDF5 reads: offsets, value ranges, bracket balance, the counts.
static int check_contents(shard_rd *r, const nv_shard_info *h, const nv_corpus *c) {
    if (nv_shard_check_offsets(r->path, c->offsets, c->n_seqs, c->n_tokens, r->err) != 0) return -1;
    uint64_t with_ss = 0, nt[16], cls[3];
    for (uint64_t i = 0; i < c->n_seqs; i++) {
        uint64_t a = c->offsets[i], b = c->offsets[i + 1];
        int known;
        if (nv_shard_check_seq(r->path, i, c->tokens + a, c->structure + a, b - a, &known, r->err) != 0) return -1;
        with_ss += (uint64_t)known;
    }
    nv_corpus_counts(c, nt, cls);
    return nv_shard_check_counts(r->path, h, nt, cls, with_ss, r->err);
}

// The root attributes: format, version, sizes, and the optional reference counts.
static int read_header(shard_rd *r, nv_shard_info *h) {
    uint64_t version = 0;
    memset(h, 0, sizeof *h);
    if (check_format_attr(r) != 0) return -1;
    if (read_attr_u64(r, "version", &version) != 0) return -1;
    if (version != NV_SHARD_VERSION)
        return nv_seterr(r->err, "%s: shard format version %llu, this program reads version %d\n"
                                 "---> HINT: rewrite the shards with this nvwa-prep",
                         r->path, (unsigned long long)version, NV_SHARD_VERSION);
    if (read_attr_u64(r, "n_seqs", &h->n_seqs) != 0 || read_attr_u64(r, "n_tokens", &h->n_tokens) != 0 ||
        read_attr_u64(r, "n_with_structure", &h->n_with_structure) != 0)
        return -1;
    if (h->n_with_structure > h->n_seqs)
        return nv_seterr(r->err, "%s: attribute n_with_structure = %llu exceeds n_seqs = %llu", r->path,
                         (unsigned long long)h->n_with_structure, (unsigned long long)h->n_seqs);
    int a = H5Aexists(r->f, "nt_counts") > 0, b = H5Aexists(r->f, "class_counts") > 0;
    if (a != b) return nv_seterr(r->err, "%s: attribute %s without %s", r->path, a ? "nt_counts" : "class_counts",
                                 a ? "class_counts" : "nt_counts");
    if (a && (nv_h5_read_attr_u64(r->f, "nt_counts", h->nt_counts, 16) != 0 ||
              nv_h5_read_attr_u64(r->f, "class_counts", h->class_counts, 3) != 0))
        return nv_seterr(r->err, "%s: attributes nt_counts / class_counts are not 16 / 3 integers", r->path);
    h->has_counts = a;
    return 0;
}

// The four datasets, opened and checked against the header (ids only when did != NULL).
static int open_all(shard_rd *r, const nv_shard_info *h, hid_t *dt, hid_t *ds, hid_t *dof, hid_t *did) {
    // Sizes are checked against the datasets before anything is allocated from them.
    *dt = *ds = *dof = -1;
    if (did) *did = -1;
    if ((*dt = open_1d(r, "tokens", H5T_INTEGER, 1, h->n_tokens)) < 0) return -1;
    if ((*ds = open_1d(r, "structure", H5T_INTEGER, 1, h->n_tokens)) < 0) return H5Dclose(*dt), -1;
    if ((*dof = open_1d(r, "offsets", H5T_INTEGER, 8, h->n_seqs + 1)) < 0) return H5Dclose(*dt), H5Dclose(*ds), -1;
    if (!did) return 0;
    if ((*did = open_1d(r, "ids", H5T_STRING, 0, h->n_seqs)) < 0)
        return H5Dclose(*dt), H5Dclose(*ds), H5Dclose(*dof), -1;
    return 0;
}

// /ids: nvwa-prep writes fixed-length strings; variable-length ones (other writers) are read
// too. Their check is the HDF5 read itself (checksums). ids == NULL: read and drop.
static int read_ids(shard_rd *r, hid_t did, uint64_t n_seqs, char ***ids) {
    hid_t ft = H5Dget_type(did);
    int vlen = H5Tis_variable_str(ft) > 0, rc = 0;
    size_t w = vlen ? 0 : H5Tget_size(ft);
    H5Tclose(ft);
    hid_t mt = H5Tcopy(H5T_C_S1);
    H5Tset_size(mt, vlen ? H5T_VARIABLE : w + 1);
    if (!vlen) H5Tset_strpad(mt, H5T_STR_NULLTERM);
    char *buf = vlen ? NULL : nv_calloc(n_seqs ? n_seqs : 1, w + 1);
    char **raw = vlen ? nv_calloc(n_seqs ? n_seqs : 1, sizeof(char *)) : NULL;
    if (n_seqs > 0 && H5Dread(did, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, vlen ? (void *)raw : (void *)buf) < 0) {
        rc = nv_seterr(r->err, "%s: cannot read dataset /ids: checksum mismatch or corrupt data", r->path);
        vlen = 0; // nothing to reclaim
    } else if (ids) {
        *ids = nv_malloc((n_seqs ? n_seqs : 1) * sizeof(char *));
        for (uint64_t i = 0; i < n_seqs; i++)
            (*ids)[i] = nv_strdup(vlen ? (raw[i] ? raw[i] : "") : buf + i * (w + 1));
    }
    if (vlen && n_seqs > 0) {
        hid_t sp = H5Dget_space(did);
        H5Dvlen_reclaim(mt, sp, H5P_DEFAULT, raw);
        H5Sclose(sp);
    }
    free(raw);
    free(buf);
    H5Tclose(mt);
    return rc;
}

static uint64_t chunk_len(hid_t d) {
    hid_t p = H5Dget_create_plist(d);
    hsize_t c[1] = {0};
    if (p >= 0 && H5Pget_layout(p) == H5D_CHUNKED && H5Pget_chunk(p, 1, c) != 1) c[0] = 0;
    if (p >= 0) H5Pclose(p);
    return (uint64_t)c[0];
}

static int shard_index_open(shard_rd *r, nv_shard_info *h, uint64_t **offsets) {
    hid_t dt, ds, dof, did;
    if (read_header(r, h) != 0 || open_all(r, h, &dt, &ds, &dof, &did) != 0) return -1;
    h->chunk_tokens = chunk_len(dt);
    H5Dclose(dt);
    H5Dclose(ds);
    H5Dclose(did);
    uint64_t *off = nv_malloc((h->n_seqs + 1) * sizeof(uint64_t));
    if (read_1d(r, "offsets", dof, H5T_NATIVE_UINT64, h->n_seqs + 1, off) != 0 ||
        nv_shard_check_offsets(r->path, off, h->n_seqs, h->n_tokens, r->err) != 0) {
        free(off);
        return -1;
    }
    if (offsets) *offsets = off;
    else free(off);
    return 0;
}

static int shard_read_open(shard_rd *r, nv_corpus *out, int want_ids) {
    nv_shard_info h;
    hid_t dt, ds, dof, did;
    if (read_header(r, &h) != 0 || open_all(r, &h, &dt, &ds, &dof, &did) != 0) return -1;
    const uint64_t n_seqs = h.n_seqs, n_tokens = h.n_tokens;
    out->n_seqs = n_seqs;
    out->n_tokens = n_tokens;
    out->n_with_structure = h.n_with_structure;
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
    if (check_contents(r, &h, out) != 0) return H5Dclose(did), -1;

    if (!want_ids) return H5Dclose(did), 0;
    rc = read_ids(r, did, n_seqs, &out->ids);
    H5Dclose(did);
    return rc;
}

// Open path read-only with HDF5's error printing off and run fn on it; one line on failure.
static int with_shard(const char *path, nv_error *err, int (*fn)(shard_rd *, void *, void *, int), void *a,
                      void *b, int flag) {
    if (access(path, R_OK) != 0) return nv_seterr(err, "%s: cannot read: %s", path, strerror(errno));
    nv_h5_quiet q = nv_h5_quiet_begin();
    shard_rd r = {path, -1, err};
    int rc;
    if (H5Fis_hdf5(path) <= 0) {
        rc = nv_seterr(err, "%s: not an HDF5 file (or truncated: its superblock is unreadable)", path);
    } else if ((r.f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT)) < 0) {
        rc = nv_seterr(err, "%s: cannot open as HDF5 (truncated or damaged file?)", path);
    } else {
        rc = fn(&r, a, b, flag);
        if (H5Fclose(r.f) < 0 && rc == 0) rc = nv_seterr(err, "%s: error closing the file", path);
    }
    nv_h5_quiet_end(q);
    return rc;
}

static int read_fn(shard_rd *r, void *out, void *unused, int want_ids) {
    (void)unused;
    return shard_read_open(r, out, want_ids);
}

static int index_fn(shard_rd *r, void *info, void *offsets, int unused) {
    (void)unused;
    return shard_index_open(r, info, offsets);
}

static int ids_fn(shard_rd *r, void *n_seqs, void *unused, int flag) {
    (void)unused, (void)flag;
    const uint64_t n = *(const uint64_t *)n_seqs;
    hid_t did = open_1d(r, "ids", H5T_STRING, 0, n);
    if (did < 0) return -1;
    int rc = read_ids(r, did, n, NULL);
    H5Dclose(did);
    return rc;
}

int nv_shard_check_ids(const char *path, uint64_t n_seqs, nv_error *err) {
    return with_shard(path, err, ids_fn, &n_seqs, NULL, 0);
}

int nv_shard_index(const char *path, nv_shard_info *info, uint64_t **offsets, nv_error *err) {
    if (offsets) *offsets = NULL;
    return with_shard(path, err, index_fn, info, offsets, 0);
}

int nv_shard_read(const char *path, nv_corpus *out, int want_ids, nv_error *err) {
    nv_corpus_init(out);
    int rc = with_shard(path, err, read_fn, out, NULL, want_ids);
    if (rc != 0) {
        nv_corpus_free(out);
        nv_corpus_init(out);
    }
    return rc;
}

// --- a directory or glob of shards

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void nv_paths_free(char **paths, size_t n) {
    for (size_t i = 0; i < n; i++) free(paths[i]);
    free(paths);
}

int nv_shard_paths(const char *dir_or_glob, char ***paths, size_t *n, nv_error *err) {
    *paths = NULL;
    *n = 0;
    struct stat st;
    char pattern[4096];
    int is_dir = stat(dir_or_glob, &st) == 0 && S_ISDIR(st.st_mode);
    if (is_dir) {
        if (snprintf(pattern, sizeof pattern, "%s/*.h5", dir_or_glob) >= (int)sizeof pattern)
            return nv_seterr(err, "%s: path too long", dir_or_glob);
    } else {
        if (snprintf(pattern, sizeof pattern, "%s", dir_or_glob) >= (int)sizeof pattern)
            return nv_seterr(err, "%s: path too long", dir_or_glob);
    }
    glob_t g;
    int rc = glob(pattern, 0, NULL, &g);
    if (rc == GLOB_NOMATCH || (rc == 0 && g.gl_pathc == 0)) {
        if (rc == 0) globfree(&g);
        if (is_dir)
            return nv_seterr(err, "%s: directory holds no *.h5 shards\n---> HINT: write shards with nvwa-prep -o %s INPUT...",
                             dir_or_glob, dir_or_glob);
        return nv_seterr(err, "%s: no file matches (neither a directory nor a glob with matches)\n"
                              "---> HINT: [data] train/valid take a shard directory or a glob such as 'shards/*.h5'",
                         dir_or_glob);
    }
    if (rc != 0) return nv_seterr(err, "%s: glob failed (%s)", pattern, rc == GLOB_NOSPACE ? "out of memory" : "read error");
    *paths = nv_malloc(g.gl_pathc * sizeof(char *));
    for (size_t i = 0; i < g.gl_pathc; i++) (*paths)[i] = nv_strdup(g.gl_pathv[i]);
    *n = g.gl_pathc;
    globfree(&g);
    qsort(*paths, *n, sizeof(char *), cmp_str); // byte order, whatever the locale
    return 0;
}

int nv_corpus_open(const char *dir_or_glob, nv_corpus *out, int want_ids, nv_error *err) {
    nv_corpus_init(out);
    char **paths;
    size_t n;
    if (nv_shard_paths(dir_or_glob, &paths, &n, err) != 0) return -1;
    for (size_t i = 0; i < n; i++) {
        nv_corpus one;
        if (nv_shard_read(paths[i], &one, want_ids, err) != 0) {
            nv_corpus_free(&one);
            nv_paths_free(paths, n);
            nv_corpus_free(out);
            nv_corpus_init(out);
            return -1;
        }
        nv_corpus_concat(out, &one, want_ids);
    }
    nv_paths_free(paths, n);
    return 0;
}
