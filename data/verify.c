// verify.c - full verification of one shard with bounded memory (nvwa-prep --verify).
//
// Checks everything nv_shard_read checks - the header, every checksum of /tokens,
// /structure, /offsets and /ids, the offsets, token ids, structure bytes, bracket balance
// per sequence, n_with_structure and the nt_counts/class_counts attributes - without holding
// the shard in memory: /tokens and /structure are decoded chunk by chunk as the sequences
// are checked. libhdf5 runs every call behind one lock, so that several threads verify
// shards at once, the chunks of nvwa-prep's pipeline (deflate, then Fletcher32) are read raw
// (their addresses from HDF5, the bytes with pread) and checked here, outside that lock:
// Fletcher32 exactly as HDF5 computes it, then inflate. A dataset with another pipeline
// (another writer) is read through HDF5 in blocks instead.
#include "data/shard.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "data/h5util.h"
#include "data/vocab.h"

#define BLOCK ((uint64_t)1 << 20) // bytes per HDF5 read on the fallback path

// HDF5's Fletcher32 (H5_checksum_fletcher32): 16-bit big-endian words, sums reduced every
// 360 words, a trailing odd byte as the high half of a word.
uint32_t nv_fletcher32(const uint8_t *data, size_t n) {
    uint32_t s1 = 0, s2 = 0;
    for (size_t words = n / 2; words > 0;) {
        size_t t = words > 360 ? 360 : words;
        words -= t;
        do {
            s1 += ((uint32_t)data[0] << 8) | data[1];
            data += 2;
            s2 += s1;
        } while (--t);
        s1 = (s1 & 0xffff) + (s1 >> 16);
        s2 = (s2 & 0xffff) + (s2 >> 16);
    }
    if (n % 2) {
        s1 += (uint32_t)data[0] << 8;
        s2 += s1;
        s1 = (s1 & 0xffff) + (s1 >> 16);
        s2 = (s2 & 0xffff) + (s2 >> 16);
    }
    s1 = (s1 & 0xffff) + (s1 >> 16);
    s2 = (s2 & 0xffff) + (s2 >> 16);
    return (s2 << 16) | s1;
}

typedef struct chunk_ref {
    haddr_t addr;
    hsize_t size;
    unsigned mask; // filters skipped for this chunk (bit 0: deflate)
} chunk_ref;

// One of /tokens and /structure, decoded in order: bytes [lo, hi) are in buf.
typedef struct dstream {
    const char *path, *name;
    uint64_t n, C;       // dataset length; chunk length (raw mode)
    int fd;              // raw mode: chunks read with pread, -1 otherwise
    chunk_ref *ch;
    uint64_t n_ch, next; // chunks, and the next one to decode
    hid_t f, ds, sp;     // fallback mode: hyperslab reads through HDF5
    uint8_t *raw, *buf;
    size_t raw_cap;
    uint64_t lo, hi, cap;
} dstream;

// Is the dataset chunked 1-D with exactly deflate then Fletcher32 (nvwa-prep's pipeline)?
static int plain_pipeline(hid_t ds, uint64_t *C) {
    hid_t p = H5Dget_create_plist(ds);
    hsize_t c[1] = {0};
    int ok = p >= 0 && H5Pget_layout(p) == H5D_CHUNKED && H5Pget_chunk(p, 1, c) == 1 && H5Pget_nfilters(p) == 2;
    for (unsigned k = 0; ok && k < 2; k++) {
        unsigned flags, cd[8];
        size_t ncd = 8;
        H5Z_filter_t id = H5Pget_filter2(p, k, &flags, &ncd, cd, 0, NULL, NULL);
        ok = id == (k == 0 ? H5Z_FILTER_DEFLATE : H5Z_FILTER_FLETCHER32);
    }
    if (p >= 0) H5Pclose(p);
    *C = (uint64_t)c[0];
    return ok && c[0] > 0;
}

// Open the stream: the chunk list (raw mode) or the dataset (fallback). Under HDF5's lock.
static int ds_open(dstream *s, hid_t f, nv_error *err) {
    hid_t ds = H5Dopen2(f, s->name, H5P_DEFAULT);
    if (ds < 0) return nv_seterr(err, "%s: cannot open dataset /%s", s->path, s->name);
    uint64_t C;
    if (!plain_pipeline(ds, &C)) { // fallback: keep the dataset open
        s->ds = ds;
        s->sp = H5Dget_space(ds);
        return s->sp < 0 ? nv_seterr(err, "%s: /%s: no dataspace", s->path, s->name) : 0;
    }
    s->C = C;
    s->n_ch = (s->n + C - 1) / C;
    s->ch = nv_calloc(s->n_ch ? s->n_ch : 1, sizeof *s->ch);
    int rc = 0;
    for (uint64_t k = 0; k < s->n_ch && rc == 0; k++) {
        hsize_t off[1] = {k * C};
        if (H5Dget_chunk_info_by_coord(ds, off, &s->ch[k].mask, &s->ch[k].addr, &s->ch[k].size) < 0 ||
            s->ch[k].addr == HADDR_UNDEF)
            rc = nv_seterr(err, "%s: dataset /%s: chunk %llu (nucleotides %llu..) is missing", s->path, s->name,
                           (unsigned long long)k, (unsigned long long)(k * C));
    }
    H5Dclose(ds);
    if (rc) return -1;
    s->fd = open(s->path, O_RDONLY);
    return s->fd < 0 ? nv_seterr(err, "%s: cannot open: %s", s->path, strerror(errno)) : 0;
}

static void ds_close(dstream *s) {
    if (s->fd >= 0) close(s->fd);
    if (s->sp >= 0) H5Sclose(s->sp);
    if (s->ds >= 0) H5Dclose(s->ds);
    free(s->ch);
    free(s->raw);
    free(s->buf);
}

// Decode raw chunk k into dst (C bytes): Fletcher32 over the stored bytes, then inflate.
static int decode_chunk(dstream *s, uint64_t k, uint8_t *dst, nv_error *err) {
    const chunk_ref *c = &s->ch[k];
    const uint64_t a = k * s->C, b = a + s->C < s->n ? a + s->C : s->n;
    if (c->size < 4 || c->size > ((hsize_t)1 << 31))
        return nv_seterr(err, "%s: dataset /%s: chunk %llu (nucleotides %llu..%llu) has %llu stored bytes", s->path,
                         s->name, (unsigned long long)k, (unsigned long long)a, (unsigned long long)(b - 1),
                         (unsigned long long)c->size);
    if (c->size > s->raw_cap) s->raw = nv_realloc(s->raw, s->raw_cap = c->size);
    for (size_t got = 0; got < c->size;) {
        ssize_t r = pread(s->fd, s->raw + got, c->size - got, (off_t)(c->addr + got));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0)
            return nv_seterr(err, "%s: dataset /%s: chunk %llu: %s", s->path, s->name, (unsigned long long)k,
                             r < 0 ? strerror(errno) : "the file ends inside it (truncated)");
        got += (size_t)r;
    }
    const size_t m = c->size - 4;
    const uint32_t stored = (uint32_t)s->raw[m] | (uint32_t)s->raw[m + 1] << 8 | (uint32_t)s->raw[m + 2] << 16 |
                            (uint32_t)s->raw[m + 3] << 24, sum = nv_fletcher32(s->raw, m);
    // HDF5 also accepts the byte-swapped sum of its releases before 1.6.3
    const uint32_t swapped = ((sum & 0x00ff00ffu) << 8) | ((sum & 0xff00ff00u) >> 8);
    if (stored != sum && stored != swapped)
        return nv_seterr(err, "%s: dataset /%s: chunk %llu (nucleotides %llu..%llu): Fletcher32 checksum mismatch\n"
                              "---> HINT: the file is damaged; rewrite it with nvwa-prep",
                         s->path, s->name, (unsigned long long)k, (unsigned long long)a, (unsigned long long)(b - 1));
    uLongf out = (uLongf)s->C;
    int zr = Z_OK;
    if (c->mask & 1) { // deflate was skipped for this chunk: stored as is
        if (m != s->C) zr = Z_DATA_ERROR;
        else memcpy(dst, s->raw, m);
    } else {
        zr = uncompress(dst, &out, s->raw, (uLong)m);
    }
    if (zr != Z_OK || out != s->C)
        return nv_seterr(err, "%s: dataset /%s: chunk %llu (nucleotides %llu..%llu) does not inflate to %llu bytes "
                              "(checksum intact: written damaged?)", s->path, s->name, (unsigned long long)k,
                         (unsigned long long)a, (unsigned long long)(b - 1), (unsigned long long)s->C);
    return 0;
}

// Make [lo, b) available: drop what is before `a`, decode or read on until hi >= b.
static int ds_need(dstream *s, uint64_t a, uint64_t b, nv_error *err) {
    if (a > s->lo) {
        memmove(s->buf, s->buf + (a - s->lo), s->hi - a);
        s->lo = a;
    }
    while (s->hi < b) {
        uint64_t step = s->fd >= 0 ? s->C : (s->n - s->hi < BLOCK ? s->n - s->hi : BLOCK);
        if (s->hi - s->lo + step > s->cap) {
            s->cap = 2 * (s->hi - s->lo + step);
            s->buf = nv_realloc(s->buf, s->cap);
        }
        uint8_t *dst = s->buf + (s->hi - s->lo);
        if (s->fd >= 0) {
            if (decode_chunk(s, s->next, dst, err) != 0) return -1;
            s->next++;
            s->hi = s->hi + s->C < s->n ? s->hi + s->C : s->n;
        } else {
            hsize_t start = s->hi, count = step;
            hid_t ms = H5Screate_simple(1, &count, NULL);
            int ok = ms >= 0 && H5Sselect_hyperslab(s->sp, H5S_SELECT_SET, &start, NULL, &count, NULL) >= 0 &&
                     H5Dread(s->ds, H5T_NATIVE_UINT8, ms, s->sp, H5P_DEFAULT, dst) >= 0;
            if (ms >= 0) H5Sclose(ms);
            if (!ok)
                return nv_seterr(err, "%s: cannot read dataset /%s, nucleotides %llu..%llu: checksum mismatch or "
                                      "corrupt data", s->path, s->name, (unsigned long long)start,
                                 (unsigned long long)(start + count - 1));
            s->hi += step;
        }
    }
    return 0;
}

static int verify_open(const char *path, dstream *st, nv_error *err) {
    nv_h5_quiet q = nv_h5_quiet_begin();
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    int rc = f < 0 ? nv_seterr(err, "%s: cannot open as HDF5 (truncated or damaged file?)", path) : 0;
    for (int k = 0; k < 2 && rc == 0; k++) rc = ds_open(&st[k], f, err);
    // raw mode needs nothing more from HDF5; the fallback keeps its datasets (and so the file) open
    if (f >= 0) H5Fclose(f);
    nv_h5_quiet_end(q);
    return rc;
}

int nv_shard_verify(const char *path, nv_shard_info *info, nv_error *err) {
    nv_shard_info h;
    uint64_t *off = NULL;
    if (nv_shard_index(path, &h, &off, err) != 0) return -1; // header, /offsets and their checks
    if (info) *info = h;
    if (nv_shard_check_ids(path, h.n_seqs, err) != 0) {
        free(off);
        return -1;
    }
    dstream st[2];
    for (int k = 0; k < 2; k++) {
        memset(&st[k], 0, sizeof st[k]);
        st[k].path = path;
        st[k].name = k ? "structure" : "tokens";
        st[k].n = h.n_tokens;
        st[k].fd = -1;
        st[k].ds = st[k].sp = -1;
    }
    int rc = verify_open(path, st, err);
    uint64_t with_ss = 0, nt[16] = {0}, cls[3] = {0};
    for (uint64_t i = 0; i < h.n_seqs && rc == 0; i++) {
        const uint64_t a = off[i], b = off[i + 1];
        nv_h5_quiet q = nv_h5_quiet_begin(); // the fallback reads through HDF5
        rc = ds_need(&st[0], a, b, err) || ds_need(&st[1], a, b, err) ? -1 : 0;
        nv_h5_quiet_end(q);
        if (rc) break;
        const uint8_t *t = st[0].buf + (a - st[0].lo), *s = st[1].buf + (a - st[1].lo);
        int known;
        if ((rc = nv_shard_check_seq(path, i, t, s, b - a, &known, err)) != 0) break;
        with_ss += (uint64_t)known;
        for (uint64_t j = 0; j < b - a; j++) {
            nt[t[j] & 15]++;
            int c = nv_sclass(s[j]);
            if (c >= 0) cls[c]++;
        }
    }
    if (rc == 0) rc = nv_shard_check_counts(path, &h, nt, cls, with_ss, err);
    nv_h5_quiet q = nv_h5_quiet_begin();
    for (int k = 0; k < 2; k++) ds_close(&st[k]);
    nv_h5_quiet_end(q);
    free(off);
    return rc;
}
