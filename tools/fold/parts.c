// parts.c - part files (a part's structure bytes and energies, checked and atomic) and the
// ranged reads of an input shard that a part needs (HDF5 hyperslabs: a rank reads only
// the chunks of its own parts, not whole shards).
#include "tools/fold/fold.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "data/h5util.h"

uint32_t fold_crc32(const void *data, uint64_t n) {
    uLong c = crc32(0L, Z_NULL, 0);
    const Bytef *p = data;
    while (n > 0) { // zlib takes uInt lengths
        uInt k = n > (1u << 30) ? (1u << 30) : (uInt)n;
        c = crc32(c, p, k);
        p += k;
        n -= k;
    }
    return (uint32_t)c;
}

int fold_mkdirs(const char *path, nv_error *err) {
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) return nv_seterr(err, "%s: path too long", path);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char save = *p;
            *p = '\0';
            if (mkdir(buf, 0755) != 0 && errno != EEXIST)
                return nv_seterr(err, "%s: cannot create directory: %s", buf, strerror(errno));
            *p = save;
            if (save == '\0') break;
        }
    }
    return 0;
}

static void shard_stem(const char *name, char *buf, size_t n) {
    snprintf(buf, n, "%s", name);
    size_t k = strlen(buf);
    if (k > 3 && strcmp(buf + k - 3, ".h5") == 0) buf[k - 3] = '\0';
}

void fold_part_path(const char *outdir, const fold_plan *p, uint64_t part, char *buf, size_t n) {
    const fold_part *pt = &p->parts[part];
    char stem[256];
    shard_stem(p->shards[pt->shard].name, stem, sizeof stem);
    snprintf(buf, n, "%s/" FOLD_WORKDIR "/parts/%s/part_%06u.bin", outdir, stem, pt->index);
}

// ---------------------------------------------------------------------------------------
// ranged reads

static int read_range(hid_t f, const char *name, hid_t mem_type, uint64_t a, uint64_t n, void *buf) {
    if (n == 0) return 0;
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    if (d < 0) return -1;
    hid_t fs = H5Dget_space(d);
    hsize_t start[1] = {a}, count[1] = {n};
    hid_t ms = H5Screate_simple(1, count, NULL);
    int rc = (fs >= 0 && ms >= 0 && H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL) >= 0 &&
              H5Dread(d, mem_type, ms, fs, H5P_DEFAULT, buf) >= 0) ? 0 : -1;
    if (ms >= 0) H5Sclose(ms);
    if (fs >= 0) H5Sclose(fs);
    H5Dclose(d);
    return rc;
}

int fold_read_input(const char *path, const fold_part *pt, fold_input *in, nv_error *err) {
    uint64_t nt = pt->tok_b - pt->tok_a, ns = pt->seq_b - pt->seq_a;
    in->tok = nv_malloc(nt ? nt : 1);
    in->ss = nv_malloc(nt ? nt : 1);
    in->off = nv_malloc((ns + 1) * sizeof(uint64_t));
    nv_h5_quiet q = nv_h5_quiet_begin();
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    const char *what = "open the file";
    int rc = f >= 0 ? 0 : -1;
    if (rc == 0) { what = "read /offsets"; rc = read_range(f, "offsets", H5T_NATIVE_UINT64, pt->seq_a, ns + 1, in->off); }
    if (rc == 0) { what = "read /tokens"; rc = read_range(f, "tokens", H5T_NATIVE_UINT8, pt->tok_a, nt, in->tok); }
    if (rc == 0) { what = "read /structure"; rc = read_range(f, "structure", H5T_NATIVE_UINT8, pt->tok_a, nt, in->ss); }
    if (f >= 0 && H5Fclose(f) < 0 && rc == 0) rc = -1;
    nv_h5_quiet_end(q);
    if (rc == 0 && (in->off[0] != pt->tok_a || in->off[ns] != pt->tok_b))
        return fold_input_free(in), nv_seterr(err, "%s: sequences %llu..%llu no longer start at token %llu as planned\n"
                                                   "---> HINT: the input changed since the plan; fold it into a new -o directory",
                                              path, (unsigned long long)pt->seq_a, (unsigned long long)pt->seq_b - 1,
                                              (unsigned long long)pt->tok_a);
    if (rc != 0) {
        fold_input_free(in);
        return nv_seterr(err, "%s: cannot %s for sequences %llu..%llu: checksum mismatch, truncated or damaged file",
                         path, what, (unsigned long long)pt->seq_a, (unsigned long long)pt->seq_b - 1);
    }
    for (uint64_t i = 0; i <= ns; i++) in->off[i] -= pt->tok_a;
    return 0;
}

void fold_input_free(fold_input *in) {
    free(in->tok);
    free(in->ss);
    free(in->off);
    memset(in, 0, sizeof *in);
}

// ---------------------------------------------------------------------------------------
// part files: header, structure bytes, energies

typedef struct part_head {
    char magic[8];
    uint32_t shard, index, tok_crc, payload_crc, settings_crc, pad;
    uint64_t seq_a, seq_b, tok_a, tok_b;
    char name[256];
} part_head;

static const char part_magic[8] = {'N', 'V', 'F', 'P', 'A', 'R', 'T', '1'};

static void part_head_fill(part_head *h, const fold_plan *p, uint64_t part) {
    const fold_part *pt = &p->parts[part];
    memset(h, 0, sizeof *h);
    memcpy(h->magic, part_magic, 8);
    h->shard = pt->shard;
    h->index = pt->index;
    h->settings_crc = fold_crc32(p->settings, strlen(p->settings));
    h->seq_a = pt->seq_a;
    h->seq_b = pt->seq_b;
    h->tok_a = pt->tok_a;
    h->tok_b = pt->tok_b;
    snprintf(h->name, sizeof h->name, "%s", p->shards[pt->shard].name);
}

static int write_all(int fd, const void *buf, size_t n) {
    const char *b = buf;
    while (n > 0) {
        ssize_t w = write(fd, b, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

int fold_part_write(const char *path, const fold_plan *p, uint64_t part, uint32_t tok_crc, const uint8_t *ss,
                    const int32_t *energy, nv_error *err) {
    const fold_part *pt = &p->parts[part];
    uint64_t nt = pt->tok_b - pt->tok_a, ns = pt->seq_b - pt->seq_a;
    part_head h;
    part_head_fill(&h, p, part);
    h.tok_crc = tok_crc;
    uint32_t c = fold_crc32(ss, nt);
    h.payload_crc = (uint32_t)crc32((uLong)c, (const Bytef *)energy, (uInt)(ns * sizeof(int32_t)));
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return nv_seterr(err, "%s: cannot create: %s", tmp, strerror(errno));
    int ok = write_all(fd, &h, sizeof h) == 0 && write_all(fd, ss, nt) == 0 &&
             write_all(fd, energy, ns * sizeof(int32_t)) == 0 && fsync(fd) == 0;
    int e = errno;
    if (close(fd) != 0 && ok) ok = 0, e = errno;
    if (!ok || rename(tmp, path) != 0) {
        if (ok) e = errno;
        unlink(tmp);
        return nv_seterr(err, "%s: cannot write a part of %s: %s\n---> HINT: is the disk full? Rerun the same "
                              "command when there is room: finished parts are kept",
                         tmp, p->shards[pt->shard].name, strerror(e));
    }
    return 0;
}

int fold_part_read(const char *path, const fold_plan *p, uint64_t part, uint8_t *ss, int32_t *energy,
                   uint32_t *tok_crc, nv_error *err) {
    const fold_part *pt = &p->parts[part];
    uint64_t nt = pt->tok_b - pt->tok_a, ns = pt->seq_b - pt->seq_a;
    FILE *f = fopen(path, "rb");
    if (!f) return nv_seterr(err, "%s: cannot open: %s", path, strerror(errno));
    part_head h, want;
    part_head_fill(&want, p, part);
    int ok = fread(&h, sizeof h, 1, f) == 1 && (nt == 0 || fread(ss, nt, 1, f) == 1) &&
             (ns == 0 || fread(energy, ns * sizeof(int32_t), 1, f) == 1) && fgetc(f) == EOF;
    fclose(f);
    if (!ok) return nv_seterr(err, "%s: part file has the wrong size (damaged?)", path);
    want.tok_crc = h.tok_crc;
    uint32_t c = fold_crc32(ss, nt);
    want.payload_crc = (uint32_t)crc32((uLong)c, (const Bytef *)energy, (uInt)(ns * sizeof(int32_t)));
    if (memcmp(&h, &want, sizeof h) != 0)
        return nv_seterr(err, "%s: part file does not match the plan or its checksum (damaged, or from other settings)", path);
    *tok_crc = h.tok_crc;
    return 0;
}
