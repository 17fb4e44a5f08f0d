// safetensors.c - safetensors writer and checked reader (format in safetensors.h).
#include "tools/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static uint16_t bf16_rne(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); // quiet NaN
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

static int write_all(int fd, const void *p, size_t n, const char *path, nv_error *e) {
    const char *c = p;
    while (n) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0)
            return nv_seterr(e, "%s: write failed: %s\n---> HINT: is the disk full?", path, strerror(errno));
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

static size_t numel_of(const nv_st_tensor *t) {
    return (size_t)t->shape[0] * (size_t)(t->ndim == 2 ? t->shape[1] : 1);
}

int nv_st_write(const char *path, const nv_st_tensor *t, int n, const char *const *mk,
                const char *const *mv, int n_meta, int bf16, nv_error *err) {
    // header: __metadata__ first, then the tensors in the order given, data back to back
    char *hdr = NULL;
    size_t hlen = 0, es = bf16 ? 2 : 4, off = 0;
    FILE *h = open_memstream(&hdr, &hlen);
    if (!h) return nv_seterr(err, "%s: open_memstream failed", path);
    fputc('{', h);
    if (n_meta > 0) {
        fputs("\"__metadata__\":{", h);
        for (int i = 0; i < n_meta; i++) {
            if (i) fputc(',', h);
            nv_json_str(h, mk[i]);
            fputc(':', h);
            nv_json_str(h, mv[i]);
        }
        fputc('}', h);
    }
    for (int k = 0; k < n; k++) {
        if (k || n_meta > 0) fputc(',', h);
        nv_json_str(h, t[k].name);
        fprintf(h, ":{\"dtype\":\"%s\",\"shape\":[", bf16 ? "BF16" : "F32");
        if (t[k].ndim == 1) fprintf(h, "%" PRId64, t[k].shape[0]);
        else fprintf(h, "%" PRId64 ",%" PRId64, t[k].shape[0], t[k].shape[1]);
        fprintf(h, "],\"data_offsets\":[%zu,%zu]}", off, off + numel_of(&t[k]) * es);
        off += numel_of(&t[k]) * es;
    }
    fputc('}', h);
    while ((ftell(h) % 8) != 0) fputc(' ', h); // data starts 8-byte aligned
    fclose(h);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        free(hdr);
        return nv_seterr(err, "%s: cannot create: %s", path, strerror(errno));
    }
    uint8_t len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)hlen >> (8 * i)); // little endian
    int rc = write_all(fd, len8, 8, path, err) || write_all(fd, hdr, hlen, path, err) ? -1 : 0;
    free(hdr);
    uint16_t *b = NULL;
    for (int k = 0; k < n && !rc; k++) {
        const size_t m = numel_of(&t[k]);
        if (bf16) {
            b = nv_realloc(b, 2 * (m ? m : 1));
            for (size_t i = 0; i < m; i++) {
                uint16_t v = bf16_rne(t[k].data[i]);
                uint8_t le[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
                memcpy(&b[i], le, 2);
            }
            rc = write_all(fd, b, 2 * m, path, err);
        } else {
            rc = write_all(fd, t[k].data, 4 * m, path, err); // host is little endian (x86, arm)
        }
    }
    free(b);
    if (!rc && fsync(fd) != 0) rc = nv_seterr(err, "%s: fsync failed: %s", path, strerror(errno));
    if (close(fd) != 0 && !rc) rc = nv_seterr(err, "%s: close failed: %s", path, strerror(errno));
    return rc;
}

// ---- reading ------------------------------------------------------------------------------

static int pread_all(int fd, void *buf, size_t n, uint64_t off, const char *path, nv_error *err) {
    char *p = buf;
    while (n) {
        ssize_t r = pread(fd, p, n, (off_t)off);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return nv_seterr(err, "%s: read failed at byte %" PRIu64 ": %s", path, off,
                                     r < 0 ? strerror(errno) : "unexpected end of file");
        p += r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

static size_t dtype_size(const char *d) {
    if (!strcmp(d, "F32")) return 4;
    if (!strcmp(d, "BF16") || !strcmp(d, "F16")) return 2;
    if (!strcmp(d, "F64")) return 8;
    return 0;
}

int64_t nv_st_numel(const nv_st_entry *e) {
    int64_t n = 1;
    for (int i = 0; i < e->ndim; i++) n *= e->shape[i];
    return n;
}

static int cmp_begin(const void *a, const void *b) {
    const nv_st_entry *x = *(nv_st_entry *const *)a, *y = *(nv_st_entry *const *)b;
    return x->begin < y->begin ? -1 : x->begin > y->begin;
}

static int parse_entry(nv_st_file *f, const char *name, json_t *v, uint64_t data_len,
                       nv_error *err) {
    nv_st_entry *e = &f->e[f->n];
    memset(e, 0, sizeof *e);
    json_t *dt = json_object_get(v, "dtype"), *sh = json_object_get(v, "shape"),
           *of = json_object_get(v, "data_offsets");
    if (strlen(name) >= sizeof e->name)
        return nv_seterr(err, "%s: tensor name too long (%zu characters)", f->path, strlen(name));
    snprintf(e->name, sizeof e->name, "%s", name);
    if (!json_is_string(dt) || !json_is_array(sh) || !json_is_array(of) || json_array_size(of) != 2 ||
        json_array_size(sh) > 4)
        return nv_seterr(err, "%s: tensor %s: expected dtype, shape (at most 4 dims) and data_offsets",
                         f->path, name);
    snprintf(e->dtype, sizeof e->dtype, "%s", json_string_value(dt));
    size_t es = dtype_size(e->dtype);
    if (!es)
        return nv_seterr(err, "%s: tensor %s: dtype %s (expected F32, BF16, F16 or F64)", f->path,
                         name, json_string_value(dt));
    e->ndim = (int)json_array_size(sh);
    for (int i = 0; i < e->ndim; i++) {
        json_t *x = json_array_get(sh, (size_t)i);
        if (!json_is_integer(x) || json_integer_value(x) < 0)
            return nv_seterr(err, "%s: tensor %s: bad shape", f->path, name);
        e->shape[i] = json_integer_value(x);
    }
    json_t *b = json_array_get(of, 0), *en = json_array_get(of, 1);
    if (!json_is_integer(b) || !json_is_integer(en) || json_integer_value(b) < 0 ||
        json_integer_value(en) < json_integer_value(b))
        return nv_seterr(err, "%s: tensor %s: bad data_offsets", f->path, name);
    e->begin = (uint64_t)json_integer_value(b);
    e->end = (uint64_t)json_integer_value(en);
    if (e->end > data_len)
        return nv_seterr(err, "%s: tensor %s: data_offsets end %" PRIu64 " beyond the file's %" PRIu64
                              " data bytes (truncated file?)", f->path, name, e->end, data_len);
    if (e->end - e->begin != (uint64_t)nv_st_numel(e) * es)
        return nv_seterr(err, "%s: tensor %s: %" PRIu64 " bytes for %" PRId64 " elements of %s",
                         f->path, name, e->end - e->begin, nv_st_numel(e), e->dtype);
    f->n++;
    return 0;
}

static int parse_header(nv_st_file *f, const char *text, size_t len, uint64_t data_len,
                        nv_error *err) {
    json_error_t je;
    json_t *root = json_loadb(text, len, 0, &je);
    if (!root) return nv_seterr(err, "%s: header is not JSON: %s (column %d)", f->path, je.text, je.column);
    int rc = 0;
    if (!json_is_object(root)) rc = nv_seterr(err, "%s: header is not a JSON object", f->path);
    f->e = nv_calloc(json_object_size(root) + 1, sizeof *f->e);
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        if (rc) break;
        if (!strcmp(key, "__metadata__")) {
            if (!json_is_object(v)) {
                rc = nv_seterr(err, "%s: __metadata__ is not an object", f->path);
                break;
            }
            size_t nm = json_object_size(v);
            f->meta_keys = nv_calloc(nm + 1, sizeof *f->meta_keys);
            f->meta_vals = nv_calloc(nm + 1, sizeof *f->meta_vals);
            const char *mk;
            json_t *mv;
            json_object_foreach(v, mk, mv) {
                if (!json_is_string(mv)) continue; // the format says strings; ignore others
                snprintf(f->meta_keys[f->n_meta], sizeof f->meta_keys[0], "%s", mk);
                snprintf(f->meta_vals[f->n_meta], sizeof f->meta_vals[0], "%s", json_string_value(mv));
                f->n_meta++;
            }
            continue;
        }
        if (!json_is_object(v)) rc = nv_seterr(err, "%s: tensor %s: not an object", f->path, key);
        else rc = parse_entry(f, key, v, data_len, err);
    }
    json_decref(root);
    if (rc) return rc;
    // the tensors' byte ranges may not overlap
    nv_st_entry **by = nv_malloc(((size_t)f->n + 1) * sizeof *by);
    for (int i = 0; i < f->n; i++) by[i] = &f->e[i];
    qsort(by, (size_t)f->n, sizeof *by, cmp_begin);
    for (int i = 1; i < f->n && !rc; i++)
        if (by[i]->begin < by[i - 1]->end && by[i]->end > by[i]->begin)
            rc = nv_seterr(err, "%s: tensors %s and %s overlap", f->path, by[i - 1]->name, by[i]->name);
    free(by);
    return rc;
}

int nv_st_open(const char *path, nv_st_file *f, nv_error *err) {
    memset(f, 0, sizeof *f);
    snprintf(f->path, sizeof f->path, "%s", path);
    f->fd = open(path, O_RDONLY);
    if (f->fd < 0) return nv_seterr(err, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    uint8_t len8[8];
    int rc = fstat(f->fd, &st) != 0 ? nv_seterr(err, "%s: stat failed: %s", path, strerror(errno)) : 0;
    if (!rc && st.st_size < 8) rc = nv_seterr(err, "%s: %lld bytes: not a safetensors file", path, (long long)st.st_size);
    if (!rc) rc = pread_all(f->fd, len8, 8, 0, path, err);
    uint64_t hl = 0;
    for (int i = 0; i < 8 && !rc; i++) hl |= (uint64_t)len8[i] << (8 * i);
    if (!rc && (hl < 2 || hl > (1u << 30) || 8 + hl > (uint64_t)st.st_size))
        rc = nv_seterr(err, "%s: header length %" PRIu64 " does not fit the file's %lld bytes (not a "
                            "safetensors file?)", path, hl, (long long)st.st_size);
    char *text = rc ? NULL : nv_malloc(hl + 1);
    if (!rc) rc = pread_all(f->fd, text, hl, 8, path, err);
    if (!rc) {
        text[hl] = 0;
        f->data_start = 8 + hl;
        rc = parse_header(f, text, hl, (uint64_t)st.st_size - f->data_start, err);
    }
    free(text);
    if (rc) nv_st_close(f);
    return rc;
}

void nv_st_close(nv_st_file *f) {
    if (f->fd >= 0) close(f->fd);
    free(f->e);
    free(f->meta_keys);
    free(f->meta_vals);
    f->fd = -1;
    f->e = NULL;
    f->meta_keys = NULL;
    f->meta_vals = NULL;
    f->n = f->n_meta = 0;
}

int nv_st_find(const nv_st_file *f, const char *name) {
    for (int i = 0; i < f->n; i++)
        if (!strcmp(f->e[i].name, name)) return i;
    return -1;
}

const char *nv_st_meta(const nv_st_file *f, const char *key) {
    for (int i = 0; i < f->n_meta; i++)
        if (!strcmp(f->meta_keys[i], key)) return f->meta_vals[i];
    return NULL;
}

static float half_to_float(uint16_t h) {
    uint32_t s = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 31, m = h & 1023, u;
    if (e == 31) u = s | 0x7f800000u | (m << 13);                 // inf, nan
    else if (e) u = s | ((e + 112) << 23) | (m << 13);             // normal
    else if (!m) u = s;                                            // zero
    else {                                                         // subnormal: renormalize
        e = 113;
        while (!(m & 1024)) { m <<= 1; e--; }
        u = s | (e << 23) | ((m & 1023) << 13);
    }
    float x;
    memcpy(&x, &u, 4);
    return x;
}

int nv_st_read(const nv_st_file *f, int i, float *out, nv_error *err) {
    const nv_st_entry *e = &f->e[i];
    const size_t n = (size_t)nv_st_numel(e), es = dtype_size(e->dtype);
    uint8_t *raw = nv_malloc(n * es + 1);
    int rc = pread_all(f->fd, raw, n * es, f->data_start + e->begin, f->path, err);
    for (size_t k = 0; k < n && !rc; k++) {
        const uint8_t *p = raw + k * es; // little endian
        if (es == 4) {
            uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
            memcpy(&out[k], &u, 4);
        } else if (es == 8) {
            uint64_t u = 0;
            for (int b = 0; b < 8; b++) u |= (uint64_t)p[b] << (8 * b);
            double d;
            memcpy(&d, &u, 8);
            out[k] = (float)d;
        } else {
            uint16_t h = (uint16_t)(p[0] | p[1] << 8);
            if (!strcmp(e->dtype, "BF16")) {
                uint32_t u = (uint32_t)h << 16;
                memcpy(&out[k], &u, 4);
            } else {
                out[k] = half_to_float(h);
            }
        }
    }
    free(raw);
    return rc;
}
