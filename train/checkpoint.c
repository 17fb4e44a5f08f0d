// checkpoint.c - save, verify and load checkpoints of logical tensors (design section 9).
//
// Files hold slices of local tensors tagged with their layout; loading rebuilds the saved
// layout's parameter tables from the stored config and maps every element through its full
// index, so any (tensor, data, zero1) layout loads any other. Integrity is end to end: the
// manifest lists each file's size and CRC32 and is written last, so a step dir with a
// manifest is complete.
//
// At disk speed (train/ckpt_io.c): a dataset is contiguous, its space allocated when HDF5
// creates it, and its bytes written by a pool of threads with pwrite at the offset HDF5
// reports, each thread taking the crc32 of the 1 MiB blocks it writes. The block CRCs are
// stored with the dataset (attribute crc32_blocks) and combined, with the CRCs of the few
// metadata bytes between datasets, into the file's CRC for the manifest: no second pass
// over the data. A load reads the blocks it needs the same way and checks each against its
// CRC; the file's CRC is checked from the stored block CRCs and the metadata bytes, so
// every byte of a file is still covered. Checkpoints of the earlier layout (chunked,
// Fletcher32, no block CRCs; manifest without block_crc) load as before: whole-file CRCs
// first, then HDF5 reads.
#include "train/checkpoint.h"
#include "data/h5util.h"
#include "train/ckpt_io.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <ini.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define FORMAT_NAME "nvwa-checkpoint"
#define FORMAT_VERSION 1
#define CHUNK_ELEMS ((size_t)1 << 20) // the earlier layout's 4 MiB chunks (read only)
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "checkpoint datasets are written as raw little-endian floats"
#endif

// ---------------------------------------------------------------------------------------
// small helpers


static const char *base_name(const char *path) {
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/') n--; // "dir/" names dir
    const char *b = path + n;
    while (b > path && b[-1] != '/') b--;
    return b;
}

// "step_00001000" -> 1000; -1 for anything else (".tmp" dirs included).
static long step_of_name(const char *name) {
    if (strncmp(name, "step_", 5) != 0) return -1;
    const char *p = name + 5;
    size_t nd = strspn(p, "0123456789");
    if (nd == 0 || p[nd] != 0) return -1;
    return strtol(p, NULL, 10);
}

static int path_join(char *out, size_t n, const char *a, const char *b, nv_error *err) {
    if (snprintf(out, n, "%s/%s", a, b) >= (int)n)
        return nv_seterr(err, "%s/%s: path too long (max %zu)", a, b, n - 1);
    return 0;
}

static int is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}
static int is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}
static int has_manifest(const char *dir) {
    char p[NV_PATH_MAX + 400];
    snprintf(p, sizeof p, "%s/manifest.ini", dir);
    return is_file(p);
}

// A rename or create inside dir is durable only once dir itself is fsynced.
static int fsync_dir(const char *dir, nv_error *err) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return nv_seterr(err, "%s: cannot open directory to fsync: %s", dir, strerror(errno));
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    if (rc != 0 && e != EINVAL) // some file systems cannot fsync a directory: not an error
        return nv_seterr(err, "%s: fsync of directory failed: %s\n---> HINT: check the file system "
                              "holding [checkpoint] dir", dir, strerror(e));
    return 0;
}

static int mkdir_p(const char *path, nv_error *err) {
    char buf[NV_PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return nv_seterr(err, "%s: path too long", path);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == 0) {
            char c = *p;
            *p = 0;
            if (mkdir(buf, 0755) != 0 && errno != EEXIST)
                return nv_seterr(err, "%s: cannot create directory: %s\n---> HINT: check "
                                      "[checkpoint] dir and its permissions", buf, strerror(errno));
            *p = c;
            if (!c) break;
        }
    }
    if (!is_dir(path)) return nv_seterr(err, "%s: exists and is not a directory", path);
    return 0;
}

// Checkpoint dirs are flat: files only.
static int rm_dir_flat(const char *dir, nv_error *err) {
    DIR *dd = opendir(dir);
    if (!dd) return nv_seterr(err, "%s: cannot open directory to remove it: %s", dir, strerror(errno));
    struct dirent *e;
    char p[NV_PATH_MAX + 300];
    int rc = 0;
    while ((e = readdir(dd))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (unlink(p) != 0 && rc == 0)
            rc = nv_seterr(err, "%s: cannot remove: %s", p, strerror(errno));
    }
    closedir(dd);
    if (rc == 0 && rmdir(dir) != 0)
        rc = nv_seterr(err, "%s: cannot remove directory: %s", dir, strerror(errno));
    return rc;
}

int nv_ckpt_file_crc(const char *path, uint32_t *crc, uint64_t *size, nv_error *err) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return nv_seterr(err, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return nv_seterr(err, "%s: cannot stat: %s", path, strerror(e));
    }
    // blocks on threads, combined: the whole file at the disk's (or page cache's) speed
    uint64_t n = (uint64_t)st.st_size;
    nv_ckio_job job = {.fd = fd, .n = n, .lo = 0, .hi = n, .compute = 1};
    job.crc = nv_malloc(sizeof(uint32_t) * (nv_ckio_nblocks(n) + 1));
    int rc = 0;
    if (nv_ckio_read(&job, 1, nv_ckio_threads()) != 0)
        rc = nv_seterr(err, "%s: read failed: %s", path, strerror(job.sys_errno ? job.sys_errno : EIO));
    *crc = nv_ckio_crc_of_blocks(job.crc, n);
    *size = n;
    free(job.crc);
    close(fd);
    return rc;
}

// ---------------------------------------------------------------------------------------
// HDF5 slices




// One dataset being written: created (space allocated), then filled by the I/O pool.
typedef struct wslice {
    hid_t ds;
    const char *name;
    const float *x;
    uint64_t addr, bytes; // where HDF5 put its space, and its size
    uint32_t *crc;        // block CRCs, filled by the write
} wslice;

// A contiguous 1-D float32 dataset for elements [start, start+count) of tensor p's local part
// at (tp_rank, tp_size), with its tags; its space is allocated now and never filled by HDF5.
static int create_slice(hid_t loc, const char *file, const nv_param *p, int tp_rank, int tp_size,
                        size_t start, size_t count, const float *x, wslice *w, nv_error *err) {
    hsize_t dims[1] = {count};
    hid_t sp = H5Screate_simple(1, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    hid_t ds = -1;
    int rc = -1;
    if (sp >= 0 && dcpl >= 0 && H5Pset_layout(dcpl, H5D_CONTIGUOUS) >= 0 &&
        H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_EARLY) >= 0 && H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER) >= 0)
        ds = H5Dcreate2(loc, p->name, H5T_IEEE_F32LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (ds >= 0) {
        int64_t shape[2] = {p->full[0], p->full[1]}, local[2] = {p->local[0], p->local[1]};
        int64_t v[5] = {tp_size, tp_rank, (int64_t)start, (int64_t)count, (int64_t)NV_CKIO_BLOCK};
        rc = nv_h5_attr_i64(ds, "full_shape", shape, (hsize_t)p->ndim) | nv_h5_attr_i64(ds, "local_shape", local, (hsize_t)p->ndim) |
             nv_h5_attr_i64(ds, "tp_size", &v[0], 1) | nv_h5_attr_i64(ds, "tp_rank", &v[1], 1) |
             nv_h5_attr_i64(ds, "local_start", &v[2], 1) | nv_h5_attr_i64(ds, "count", &v[3], 1) |
             nv_h5_attr_i64(ds, "crc32_block", &v[4], 1);
        haddr_t a = count ? H5Dget_offset(ds) : 0;
        if (a == HADDR_UNDEF) rc = -1;
        w->ds = ds;
        w->name = p->name;
        w->x = x;
        w->addr = (uint64_t)a;
        w->bytes = (uint64_t)count * sizeof(float);
        w->crc = nv_calloc(nv_ckio_nblocks(w->bytes) + 1, sizeof(uint32_t));
    }
    if (dcpl >= 0) H5Pclose(dcpl);
    if (sp >= 0) H5Sclose(sp);
    if (rc) {
        if (ds >= 0 && !w->crc) H5Dclose(ds);
        return nv_seterr(err, "%s: cannot create dataset %s (%zu floats)\n---> HINT: is the disk full? check "
                              "[checkpoint] dir", file, p->name, count);
    }
    return 0;
}

static int cmp_region(const void *a, const void *b) {
    uint64_t x = (*(const wslice *const *)a)->addr, y = (*(const wslice *const *)b)->addr;
    return (x > y) - (x < y);
}

// CRC32 of the whole file: the stored block CRCs of the datasets and the bytes between
// them (metadata), read back (they are small), combined in file order.
static int file_crc_from_blocks(int fd, const char *path, wslice *w, int n, uint32_t *crc, uint64_t *size,
                                nv_error *err) {
    struct stat st;
    if (fstat(fd, &st) != 0) return nv_seterr(err, "%s: cannot stat: %s", path, strerror(errno));
    wslice **order = nv_malloc(sizeof *order * (size_t)(n ? n : 1));
    int m = 0;
    for (int i = 0; i < n; i++)
        if (w[i].bytes) order[m++] = &w[i];
    qsort(order, (size_t)m, sizeof *order, cmp_region);
    uint32_t c = (uint32_t)crc32(0L, Z_NULL, 0), g;
    uint64_t pos = 0, end = (uint64_t)st.st_size;
    int rc = 0;
    for (int i = 0; i <= m && rc == 0; i++) {
        uint64_t next = i < m ? order[i]->addr : end;
        if (next < pos || next > end) {
            rc = nv_seterr(err, "%s: dataset %s at %llu overlaps another or lies past the end (%llu bytes)", path,
                           i < m ? order[i]->name : "(end)", (unsigned long long)next, (unsigned long long)end);
            break;
        }
        int e = nv_ckio_crc_range(fd, pos, next - pos, &g);
        if (e) {
            rc = nv_seterr(err, "%s: cannot read back its metadata: %s", path, strerror(e));
            break;
        }
        c = (uint32_t)crc32_combine(c, g, (z_off_t)(next - pos));
        if (i < m) {
            c = (uint32_t)crc32_combine(c, nv_ckio_crc_of_blocks(order[i]->crc, order[i]->bytes), (z_off_t)order[i]->bytes);
            pos = order[i]->addr + order[i]->bytes;
        }
    }
    free(order);
    *crc = c;
    *size = end;
    return rc;
}

// Fill the created datasets of file f (open as `path`) with the I/O pool, store their block
// CRCs, close the file, fsync it, and report its size and CRC32. Frees w's CRCs.
static int finish_file(hid_t f, const char *path, const char *name, wslice *w, int n, nv_ckpt_file *out,
                       nv_error *err) {
    int rc = 0, fd = open(path, O_RDWR);
    if (fd < 0) rc = nv_seterr(err, "%s: cannot open for writing: %s", path, strerror(errno));
    nv_ckio_job *jobs = nv_calloc((size_t)(n ? n : 1), sizeof *jobs);
    int nj = 0;
    for (int i = 0; i < n && rc == 0; i++)
        if (w[i].bytes) jobs[nj++] = (nv_ckio_job){.fd = fd, .file_off = w[i].addr, .n = w[i].bytes,
                                                    .buf = (void *)w[i].x, .crc = w[i].crc};
    if (rc == 0 && nv_ckio_write(jobs, nj, nv_ckio_threads()) != 0) {
        int e = 0;
        for (int j = 0; j < nj; j++) e = e ? e : jobs[j].sys_errno;
        rc = nv_seterr(err, "%s: write failed: %s\n---> HINT: is the disk full? check [checkpoint] dir", path,
                       strerror(e ? e : EIO));
    }
    free(jobs);
    for (int i = 0; i < n; i++) {
        if (rc == 0) {
            hsize_t nb = nv_ckio_nblocks(w[i].bytes);
            hid_t sp = nb ? H5Screate_simple(1, &nb, NULL) : H5Screate(H5S_NULL);
            hid_t a = sp >= 0 ? H5Acreate2(w[i].ds, "crc32_blocks", H5T_STD_U32LE, sp, H5P_DEFAULT, H5P_DEFAULT) : -1;
            if (a < 0 || (nb && H5Awrite(a, H5T_NATIVE_UINT32, w[i].crc) < 0))
                rc = nv_seterr(err, "%s: cannot write the block CRCs of %s", path, w[i].name);
            if (a >= 0) H5Aclose(a);
            if (sp >= 0) H5Sclose(sp);
        }
        H5Dclose(w[i].ds);
    }
    if (H5Fclose(f) < 0 && !rc) rc = nv_seterr(err, "%s: close failed (disk full?)", path);
    if (rc == 0 && fsync(fd) != 0) rc = nv_seterr(err, "%s: fsync failed: %s", path, strerror(errno));
    if (rc == 0) {
        snprintf(out->name, sizeof out->name, "%s", name);
        rc = file_crc_from_blocks(fd, path, w, n, &out->crc32, &out->size, err);
    }
    if (fd >= 0) close(fd);
    for (int i = 0; i < n; i++) free(w[i].crc);
    return rc;
}

typedef struct slice_info {
    int64_t tp_size, tp_rank, start, count;
} slice_info;

// Opens dataset name in loc and checks its tags against the source table's tensor.
static hid_t open_slice(hid_t loc, const char *file, const char *name, const nv_param *sp,
                        int tp_rank, int tp_size, slice_info *si, nv_error *err) {
    hid_t ds = H5Dopen2(loc, name, H5P_DEFAULT);
    if (ds < 0) {
        nv_seterr(err, "%s: cannot open dataset %s", file, name);
        return -1;
    }
    int64_t shape[2] = {0, 1};
    hid_t space = H5Dget_space(ds);
    hssize_t n = space >= 0 ? H5Sget_simple_extent_npoints(space) : -1;
    if (space >= 0) H5Sclose(space);
    if (nv_h5_read_attr_i64(ds, "full_shape", shape, sp->ndim) || nv_h5_read_attr_i64(ds, "tp_size", &si->tp_size, 1) ||
        nv_h5_read_attr_i64(ds, "tp_rank", &si->tp_rank, 1) || nv_h5_read_attr_i64(ds, "local_start", &si->start, 1) ||
        nv_h5_read_attr_i64(ds, "count", &si->count, 1)) {
        nv_seterr(err, "%s: dataset %s: missing or bad attributes (full_shape, tp_size, tp_rank, "
                       "local_start, count)", file, name);
    } else if (shape[0] != sp->full[0] || shape[1] != sp->full[1] || si->tp_size != tp_size ||
               si->tp_rank != tp_rank || si->start < 0 || si->count != n ||
               (size_t)(si->start + si->count) > sp->numel) {
        nv_seterr(err, "%s: dataset %s: tags (full shape %" PRId64 "x%" PRId64 ", tp %" PRId64 "/%" PRId64
                       ", slice %" PRId64 "+%" PRId64 " of %zu, %lld stored) disagree with the manifest",
                  file, name, shape[0], shape[1], si->tp_rank, si->tp_size, si->start, si->count,
                  sp->numel, (long long)n);
    } else {
        return ds;
    }
    H5Dclose(ds);
    return -1;
}


// ---------------------------------------------------------------------------------------
// writing

int nv_ckpt_begin(const char *root, long step, char *tmp_dir, size_t n, nv_error *err) {
    if (mkdir_p(root, err)) return -1;
    if (snprintf(tmp_dir, n, "%s/step_%08ld.tmp", root, step) >= (int)n)
        return nv_seterr(err, "%s: checkpoint path too long", root);
    // a crash in an earlier save of this step may have left it
    if (is_dir(tmp_dir) && rm_dir_flat(tmp_dir, err)) return -1;
    if (mkdir(tmp_dir, 0755) != 0)
        return nv_seterr(err, "%s: cannot create: %s\n---> HINT: check [checkpoint] dir and its "
                              "permissions", tmp_dir, strerror(errno));
    return 0;
}

static hid_t create_file(const char *path, const char *kind, long step, nv_error *err) {
    // 1.8 object headers carry checksums: damaged metadata fails on open, not silently
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    hid_t f = -1;
    if (fapl >= 0 && H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_LATEST) >= 0)
        f = H5Fcreate(path, H5F_ACC_EXCL, H5P_DEFAULT, fapl);
    if (fapl >= 0) H5Pclose(fapl);
    if (f < 0) {
        nv_seterr(err, "%s: cannot create HDF5 file\n---> HINT: check free space and permissions "
                       "of [checkpoint] dir", path);
        return -1;
    }
    int64_t st = step, ver = FORMAT_VERSION;
    if (nv_h5_attr_str(f, "format", FORMAT_NAME) || nv_h5_attr_str(f, "kind", kind) ||
        nv_h5_attr_i64(f, "version", &ver, 1) || nv_h5_attr_i64(f, "step", &st, 1)) {
        H5Fclose(f);
        nv_seterr(err, "%s: cannot write file attributes", path);
        return -1;
    }
    return f;
}

// Undo a file whose datasets were only partly created.
static void abandon(hid_t f, wslice *w, int n) {
    for (int i = 0; i < n; i++) {
        H5Dclose(w[i].ds);
        free(w[i].crc);
    }
    H5Fclose(f);
}

static int write_model_file(const char *dir, const nv_ckpt_state *s, nv_ckpt_file *out,
                            nv_error *err) {
    const nv_param_table *t = s->t;
    char name[64], path[NV_PATH_MAX + 80];
    snprintf(name, sizeof name, "model_tp%d.h5", t->tp_rank);
    if (path_join(path, sizeof path, dir, name, err)) return -1;
    hid_t f = create_file(path, "model", s->step, err);
    if (f < 0) return -1;
    wslice *w = nv_calloc((size_t)(t->n ? t->n : 1), sizeof *w);
    int n = 0, rc = 0;
    for (int k = 0; k < t->n && !rc; k++) {
        rc = create_slice(f, path, &t->p[k], t->tp_rank, t->tp_size, 0, t->p[k].numel, s->master + t->p[k].offset,
                          &w[n], err);
        if (!rc) n++;
    }
    if (rc) abandon(f, w, n);
    else rc = finish_file(f, path, name, w, n, out, err);
    free(w);
    return rc;
}

static int write_optim_file(const char *dir, const nv_ckpt_state *s, int dp_rank, int dp_size,
                            nv_ckpt_file *out, nv_error *err) {
    const nv_param_table *t = s->t;
    char name[64], path[NV_PATH_MAX + 80];
    snprintf(name, sizeof name, "optim_tp%d_dp%d.h5", t->tp_rank, dp_rank);
    if (path_join(path, sizeof path, dir, name, err)) return -1;
    hid_t f = create_file(path, "optim", s->step, err);
    if (f < 0) return -1;
    int64_t sh[4] = {(int64_t)s->shard_lo, (int64_t)s->shard_hi, dp_rank, dp_size};
    int rc = 0, n = 0;
    if (nv_h5_attr_i64(f, "shard", sh, 2) || nv_h5_attr_i64(f, "dp_rank", &sh[2], 1) || nv_h5_attr_i64(f, "dp_size", &sh[3], 1))
        rc = nv_seterr(err, "%s: cannot write file attributes", path);
    wslice *w = nv_calloc((size_t)(2 * t->n + 1), sizeof *w);
    for (int g = 0; g < 2 && !rc; g++) {
        const float *x = g ? s->adam_v : s->adam_m;
        hid_t grp = H5Gcreate2(f, g ? "v" : "m", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        if (grp < 0) {
            rc = nv_seterr(err, "%s: cannot create group /%s", path, g ? "v" : "m");
            break;
        }
        // each tensor's part inside [shard_lo, shard_hi); padding between tensors is not stored
        for (int k = 0; k < t->n && !rc; k++) {
            const nv_param *p = &t->p[k];
            size_t lo = s->shard_lo > p->offset ? s->shard_lo : p->offset;
            size_t hi = s->shard_hi < p->offset + p->numel ? s->shard_hi : p->offset + p->numel;
            if (lo >= hi) continue;
            rc = create_slice(grp, path, p, t->tp_rank, t->tp_size, lo - p->offset, hi - lo, x + (lo - s->shard_lo),
                              &w[n], err);
            if (!rc) n++;
        }
        H5Gclose(grp);
    }
    if (rc) abandon(f, w, n);
    else rc = finish_file(f, path, name, w, n, out, err);
    free(w);
    return rc;
}

int nv_ckpt_write_files(const char *tmp_dir, const nv_ckpt_state *s, int dp_rank, int dp_size,
                        nv_ckpt_file out[2], int *n_out, nv_error *err) {
    *n_out = 0;
    if (s->shard_lo > s->shard_hi || s->shard_hi > s->t->total)
        return nv_seterr(err, "checkpoint save: shard [%zu, %zu) outside the %zu parameters",
                         s->shard_lo, s->shard_hi, s->t->total);
    if (!s->zero1 && (s->shard_lo != 0 || s->shard_hi != s->t->total))
        return nv_seterr(err, "checkpoint save: without zero1 the moments must cover all %zu "
                              "parameters (have [%zu, %zu))", s->t->total, s->shard_lo, s->shard_hi);
    nv_h5_quiet q = nv_h5_quiet_begin();
    int rc = 0;
    if (dp_rank == 0) {
        rc = write_model_file(tmp_dir, s, &out[*n_out], err);
        if (!rc) (*n_out)++;
    }
    if (!rc && s->adam_m && s->adam_v && (s->zero1 || dp_rank == 0)) {
        rc = write_optim_file(tmp_dir, s, dp_rank, dp_size, &out[*n_out], err);
        if (!rc) (*n_out)++;
    }
    nv_h5_quiet_end(q);
    return rc;
}

static void write_list_u64(FILE *f, const char *key, const uint64_t *v, int n) {
    // libinih reads lines of at most 200 characters: 6 values a line, keyed by first index
    for (int i = 0; i < n; i += 6) {
        fprintf(f, "%s.%d = ", key, i);
        for (int j = i; j < n && j < i + 6; j++)
            fprintf(f, "%s%llu", j > i ? "," : "", (unsigned long long)v[j]);
        fputc('\n', f);
    }
}

static int cmp_file(const void *a, const void *b) {
    return strcmp(((const nv_ckpt_file *)a)->name, ((const nv_ckpt_file *)b)->name);
}

static int write_manifest(const char *dir, const nv_config *cfg, const nv_ckpt_state *s,
                          int tensor, int data, int zero1, nv_ckpt_file *files, int n_files,
                          nv_error *err) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) return nv_seterr(err, "open_memstream failed: %s", strerror(errno));
    int moments = 0;
    for (int i = 0; i < n_files; i++) moments |= !strncmp(files[i].name, "optim_", 6);
    fprintf(f, "; nvwa checkpoint manifest: written after every file below was complete\n");
    // block_crc: datasets are contiguous with a crc32 per block of that many bytes
    fprintf(f, "[manifest]\nformat = %s\nversion = %d\nstep = %ld\nblock_crc = %llu\n\n", FORMAT_NAME,
            FORMAT_VERSION, s->step, (unsigned long long)NV_CKIO_BLOCK);
    fprintf(f, "[layout]\ntensor = %d\ndata = %d\nzero1 = %s\nmoments = %s\n\n", tensor, data,
            zero1 ? "true" : "false", moments ? "true" : "false");
    const nv_loader_cursor *c = &s->cursor;
    int ns = c->n_slots < 0 ? 0 : c->n_slots > NV_CURSOR_MAX ? NV_CURSOR_MAX : c->n_slots;
    fprintf(f, "[cursor]\nepoch = %llu\nstep = %llu\nn_slots = %d\n",
            (unsigned long long)c->epoch, (unsigned long long)c->step, ns);
    write_list_u64(f, "slot_pos", c->slot_pos, ns);
    write_list_u64(f, "slot_done", c->slot_done, ns);
    fprintf(f, "\n[extra]\n");
    for (int i = 0; i < NV_CKPT_EXTRA; i++)
        fprintf(f, "e%d = %llu\n", i, (unsigned long long)s->extra[i]);
    qsort(files, (size_t)n_files, sizeof *files, cmp_file);
    fprintf(f, "\n[files]\n");
    for (int i = 0; i < n_files; i++)
        fprintf(f, "%s = 0x%08x %llu\n", files[i].name, files[i].crc32,
                (unsigned long long)files[i].size);
    fprintf(f, "\n[tensors]\n");
    for (int k = 0; k < s->t->n; k++) {
        const nv_param *p = &s->t->p[k];
        if (p->ndim == 1) fprintf(f, "%s = %" PRId64 "\n", p->name, p->full[0]);
        else fprintf(f, "%s = %" PRId64 ",%" PRId64 "\n", p->name, p->full[0], p->full[1]);
    }
    fprintf(f, "\n");
    nv_config_write(cfg, f);
    if (fclose(f) != 0) {
        free(text);
        return nv_seterr(err, "manifest: out of memory");
    }
    char path[NV_PATH_MAX + 80];
    int rc = path_join(path, sizeof path, dir, "manifest.ini", err);
    if (!rc) rc = nv_write_file_atomic(path, text, len, err);
    free(text);
    return rc;
}

typedef struct step_ent {
    long step;
    char name[256];
} step_ent;
static int cmp_step(const void *a, const void *b) {
    long x = ((const step_ent *)a)->step, y = ((const step_ent *)b)->step;
    return (x > y) - (x < y);
}

// Complete step dirs of root (with a manifest), oldest first.
static int list_steps(const char *root, step_ent **out, nv_error *err) {
    *out = NULL;
    DIR *dd = opendir(root);
    if (!dd) return nv_seterr(err, "%s: cannot open checkpoint directory: %s", root, strerror(errno));
    int n = 0, cap = 0;
    struct dirent *e;
    char p[NV_PATH_MAX + 300];
    while ((e = readdir(dd))) {
        long st = step_of_name(e->d_name);
        if (st < 0 || strlen(e->d_name) >= 256) continue;
        snprintf(p, sizeof p, "%s/%s", root, e->d_name);
        if (!has_manifest(p)) continue;
        if (n == cap) *out = nv_realloc(*out, sizeof **out * (size_t)(cap = cap ? 2 * cap : 16));
        (*out)[n].step = st;
        snprintf((*out)[n].name, sizeof (*out)[n].name, "%s", e->d_name);
        n++;
    }
    closedir(dd);
    if (n) qsort(*out, (size_t)n, sizeof **out, cmp_step);
    return n;
}

// Old checkpoints beyond keep and stale *.tmp dirs; failures here only warn: the new
// checkpoint is already in place.
static void prune(const char *root, const char *newest, int keep) {
    nv_error e;
    DIR *dd = opendir(root);
    if (dd) {
        struct dirent *de;
        char p[NV_PATH_MAX + 300];
        // collect first: removing while reading a directory is unspecified
        char (*stale)[256] = NULL;
        int ns = 0;
        while ((de = readdir(dd))) {
            size_t L = strlen(de->d_name);
            int tmp_dir = !strncmp(de->d_name, "step_", 5) && L > 4 && L < 256 &&
                          !strcmp(de->d_name + L - 4, ".tmp");
            int tmp_latest = !strncmp(de->d_name, "latest.tmp.", 11) && L < 256;
            if (!tmp_dir && !tmp_latest) continue;
            stale = nv_realloc(stale, sizeof *stale * (size_t)(ns + 1));
            snprintf(stale[ns++], 256, "%s", de->d_name);
        }
        closedir(dd);
        for (int i = 0; i < ns; i++) {
            snprintf(p, sizeof p, "%s/%s", root, stale[i]);
            int r = is_dir(p) ? rm_dir_flat(p, &e) : (unlink(p) == 0 ? 0 : nv_seterr(&e, "%s: %s", p, strerror(errno)));
            if (r) fprintf(stderr, "nvwa: warning: removing stale %s failed: %s\n", p, e.msg);
        }
        free(stale);
    }
    if (keep <= 0) return;
    step_ent *st = NULL;
    int n = list_steps(root, &st, &e);
    for (int i = 0; i + keep < n; i++) {
        if (!strcmp(st[i].name, newest)) continue;
        char p[NV_PATH_MAX + 300];
        snprintf(p, sizeof p, "%s/%s", root, st[i].name);
        if (rm_dir_flat(p, &e)) fprintf(stderr, "nvwa: warning: pruning %s failed: %s\n", p, e.msg);
    }
    free(st);
    fsync_dir(root, &e);
}

int nv_ckpt_commit(const char *root, const char *tmp_dir, const nv_config *cfg,
                   const nv_ckpt_state *s, int tensor, int data, int zero1,
                   const nv_ckpt_file *files, int n_files, int keep, nv_error *err) {
    nv_ckpt_file *fl = nv_malloc(sizeof *fl * (size_t)(n_files ? n_files : 1));
    memcpy(fl, files, sizeof *fl * (size_t)n_files);
    int rc = write_manifest(tmp_dir, cfg, s, tensor, data, zero1, fl, n_files, err);
    free(fl);
    if (rc || fsync_dir(tmp_dir, err)) return -1;
    char final[NV_PATH_MAX], name[64], old[NV_PATH_MAX + 32];
    snprintf(name, sizeof name, "step_%08ld", s->step);
    if (path_join(final, sizeof final, root, name, err)) return -1;
    // Saving a step again (resumed and saved at once): move the old one aside; it is
    // removed with the stale dirs below.
    if (is_dir(final)) {
        snprintf(old, sizeof old, "%s.replaced.tmp", final);
        if (is_dir(old) && rm_dir_flat(old, err)) return -1;
        if (rename(final, old) != 0)
            return nv_seterr(err, "%s: cannot move the old checkpoint aside: %s", final, strerror(errno));
    }
    if (rename(tmp_dir, final) != 0)
        return nv_seterr(err, "%s -> %s: rename failed: %s", tmp_dir, final, strerror(errno));
    if (fsync_dir(root, err)) return -1;
    char latest[NV_PATH_MAX + 16], text[80];
    if (path_join(latest, sizeof latest, root, "latest", err)) return -1;
    int n = snprintf(text, sizeof text, "%s\n", name);
    if (nv_write_file_atomic(latest, text, (size_t)n, err) || fsync_dir(root, err)) return -1;
    prune(root, name, keep);
    return 0;
}

// ---------------------------------------------------------------------------------------
// collective save

// Every rank returns the same code; the message of the lowest failing rank goes to all.
static int agree(const nv_dist *d, int rc, nv_error *err) {
    int me = rc ? d->rank : d->world, first = d->world;
    NV_MPI_CHECK(d, MPI_Allreduce(&me, &first, 1, MPI_INT, MPI_MIN, d->comm_world));
    if (first == d->world) return 0;
    nv_error e;
    memset(&e, 0, sizeof e);
    if (d->rank == first && err) e = *err;
    NV_MPI_CHECK(d, MPI_Bcast(e.msg, (int)sizeof e.msg, MPI_CHAR, first, d->comm_world));
    if (err && d->rank != first) {
        if (d->world > 1) nv_seterr(err, "rank %d: %s", first, e.msg);
        else *err = e;
    }
    return -1;
}

typedef struct rank_files {
    int n;
    nv_ckpt_file f[2];
} rank_files;

int nv_ckpt_save(const char *root, const nv_dist *d, const nv_config *cfg,
                 const nv_ckpt_state *s, int keep, nv_error *err) {
    nv_error e;
    e.msg[0] = 0;
    int rc = 0;
    long step0 = s->step;
    NV_MPI_CHECK(d, MPI_Bcast(&step0, 1, MPI_LONG, 0, d->comm_world));
    if (s->t->tp_rank != d->tp_rank || s->t->tp_size != d->tp_size)
        rc = nv_seterr(&e, "checkpoint save: table is for tensor rank %d/%d, process is %d/%d",
                       s->t->tp_rank, s->t->tp_size, d->tp_rank, d->tp_size);
    else if (step0 != s->step)
        rc = nv_seterr(&e, "checkpoint save: ranks disagree on the step (%ld here, %ld on rank 0)",
                       s->step, step0);
    if (agree(d, rc, &e)) goto fail;
    char tmp[NV_PATH_MAX];
    if (d->rank == 0) rc = nv_ckpt_begin(root, s->step, tmp, sizeof tmp, &e);
    if (agree(d, rc, &e)) goto fail;
    snprintf(tmp, sizeof tmp, "%s/step_%08ld.tmp", root, s->step);
    rank_files mine;
    memset(&mine, 0, sizeof mine);
    rc = nv_ckpt_write_files(tmp, s, d->dp_rank, d->dp_size, mine.f, &mine.n, &e);
    if (agree(d, rc, &e)) goto fail;
    // Test hook: hold the save here, its files written but not yet committed, so that a
    // test can kill the job mid-save (tests/resume/test_kill_resume.sh).
    const char *pause = getenv("NVWA_TEST_CKPT_PAUSE_MS");
    if (pause && atoi(pause) > 0) {
        struct timespec ts = {atoi(pause) / 1000, (long)(atoi(pause) % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    // every rank's files are complete and fsynced: rank 0 lists them in the manifest
    rank_files *all = d->rank == 0 ? nv_malloc(sizeof *all * (size_t)d->world) : NULL;
    NV_MPI_CHECK(d, MPI_Gather(&mine, (int)sizeof mine, MPI_BYTE, all, (int)sizeof mine, MPI_BYTE,
                               0, d->comm_world));
    if (d->rank == 0) {
        nv_ckpt_file *files = nv_malloc(sizeof *files * 2 * (size_t)d->world);
        int n = 0;
        for (int r = 0; r < d->world; r++)
            for (int i = 0; i < all[r].n; i++) files[n++] = all[r].f[i];
        rc = nv_ckpt_commit(root, tmp, cfg, s, d->tp_size, d->dp_size, s->zero1, files, n, keep, &e);
        free(files);
        free(all);
    }
    if (agree(d, rc, &e)) goto fail;
    return 0;
fail:
    if (err) *err = e;
    return -1;
}

// ---------------------------------------------------------------------------------------
// manifest

typedef struct mparse {
    nv_ckpt_manifest *m;
    const char *path;
    int fmt_ok, have_step, have_layout;
    int cap_files, cap_tensors;
    nv_error *err;
    int failed;
} mparse;

static const char *config_sections[] = {"model", "data", "optim", "parallel", "train",
                                        "checkpoint", "log", NULL};
static int is_config_section(const char *s) {
    for (int i = 0; config_sections[i]; i++)
        if (!strcmp(s, config_sections[i])) return 1;
    return 0;
}

static int parse_u64(const char *v, uint64_t *out) {
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 0);
    if (errno || end == v || *end || *v == '-') return -1;
    *out = x;
    return 0;
}

static int parse_list(const char *name, const char *key, const char *v, uint64_t *arr) {
    size_t kl = strlen(key);
    if (strncmp(name, key, kl) || name[kl] != '.') return 0;
    char *end;
    long i0 = strtol(name + kl + 1, &end, 10);
    if (*end || i0 < 0) return -1;
    const char *p = v;
    for (long i = i0;; i++) {
        if (i >= NV_CURSOR_MAX) return -1;
        errno = 0;
        arr[i] = strtoull(p, &end, 10);
        if (errno || end == p) return -1;
        while (*end == ' ') end++;
        if (!*end) break;
        if (*end != ',') return -1;
        p = end + 1;
    }
    return 1;
}

static int mhandler(void *user, const char *section, const char *name, const char *value) {
    mparse *x = user;
    nv_ckpt_manifest *m = x->m;
    if (x->failed) return 1;
    uint64_t u = 0;
    int bad = 0;
    if (!strcmp(section, "manifest")) {
        if (!strcmp(name, "format")) x->fmt_ok = !strcmp(value, FORMAT_NAME);
        else if (!strcmp(name, "version")) { bad = parse_u64(value, &u); m->version = (int)u; }
        else if (!strcmp(name, "step")) { bad = parse_u64(value, &u); m->step = (long)u; x->have_step = 1; }
        else if (!strcmp(name, "block_crc")) bad = parse_u64(value, &m->block_crc) || m->block_crc != NV_CKIO_BLOCK;
    } else if (!strcmp(section, "layout")) {
        if (!strcmp(name, "tensor")) { bad = parse_u64(value, &u); m->tensor = (int)u; x->have_layout |= 1; }
        else if (!strcmp(name, "data")) { bad = parse_u64(value, &u); m->data = (int)u; x->have_layout |= 2; }
        else if (!strcmp(name, "zero1")) m->zero1 = !strcmp(value, "true");
    } else if (!strcmp(section, "cursor")) {
        nv_loader_cursor *c = &m->cursor;
        if (!strcmp(name, "epoch")) bad = parse_u64(value, &c->epoch);
        else if (!strcmp(name, "step")) bad = parse_u64(value, &c->step);
        else if (!strcmp(name, "n_slots")) { bad = parse_u64(value, &u) || u > NV_CURSOR_MAX; c->n_slots = (int)u; }
        else bad = parse_list(name, "slot_pos", value, c->slot_pos) < 0 ||
                   parse_list(name, "slot_done", value, c->slot_done) < 0;
    } else if (!strcmp(section, "extra")) {
        if (name[0] == 'e' && name[1] >= '0' && name[1] < '0' + NV_CKPT_EXTRA && !name[2])
            bad = parse_u64(value, &m->extra[name[1] - '0']);
    } else if (!strcmp(section, "files")) {
        if (m->n_files == x->cap_files)
            m->files = nv_realloc(m->files, sizeof *m->files * (size_t)(x->cap_files = x->cap_files ? 2 * x->cap_files : 16));
        nv_ckpt_file *f = &m->files[m->n_files];
        unsigned long crc = 0;
        unsigned long long size = 0;
        bad = strlen(name) >= sizeof f->name || strchr(name, '/') ||
              sscanf(value, "%lx %llu", &crc, &size) != 2 || m->n_files >= NV_CKPT_MAX_FILES;
        if (!bad) {
            snprintf(f->name, sizeof f->name, "%s", name);
            f->crc32 = (uint32_t)crc;
            f->size = size;
            m->n_files++;
        }
    } else if (!strcmp(section, "tensors")) {
        if (m->n_tensors == x->cap_tensors) {
            x->cap_tensors = x->cap_tensors ? 2 * x->cap_tensors : 64;
            m->tensor_names = nv_realloc(m->tensor_names, sizeof *m->tensor_names * (size_t)x->cap_tensors);
            m->tensor_shapes = nv_realloc(m->tensor_shapes, sizeof *m->tensor_shapes * (size_t)x->cap_tensors);
        }
        long long a = 0, b = 1;
        int k = sscanf(value, "%lld,%lld", &a, &b);
        bad = k < 1 || strlen(name) >= NV_PARAM_NAME_MAX;
        if (!bad) {
            snprintf(m->tensor_names[m->n_tensors], NV_PARAM_NAME_MAX, "%s", name);
            m->tensor_shapes[m->n_tensors][0] = a;
            m->tensor_shapes[m->n_tensors][1] = k == 2 ? b : 1;
            m->n_tensors++;
        }
    } else if (!strcmp(section, "model")) {
        if (m->n_model_keys < 32) {
            snprintf(m->model_keys[m->n_model_keys], 64, "%s", name);
            snprintf(m->model_vals[m->n_model_keys], 128, "%s", value);
            m->n_model_keys++;
        }
    } else if (!is_config_section(section)) {
        nv_seterr(x->err, "%s: [%s]: unknown section", x->path, section);
        x->failed = 1;
        return 0;
    }
    if (bad) {
        nv_seterr(x->err, "%s: [%s] %s = %s: bad value", x->path, section, name, value);
        x->failed = 1;
        return 0;
    }
    return 1;
}

// The config sections' lines, verbatim, for nv_config_parse_string.
static char *config_text(const char *text) {
    size_t n = strlen(text);
    char *out = nv_malloc(n + 1), *o = out;
    int in_cfg = 0;
    for (const char *p = text; *p;) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) + 1 : strlen(p);
        const char *h = p;
        while (*h == ' ' || *h == '\t') h++;
        if (*h == '[') {
            const char *close = memchr(h, ']', len - (size_t)(h - p));
            char sec[64] = "";
            if (close && (size_t)(close - h - 1) < sizeof sec) {
                memcpy(sec, h + 1, (size_t)(close - h - 1));
                sec[close - h - 1] = 0;
            }
            in_cfg = is_config_section(sec);
        }
        if (in_cfg) {
            memcpy(o, p, len);
            o += len;
        }
        p += len;
    }
    *o = 0;
    return out;
}

int nv_ckpt_manifest_read(const char *step_dir, nv_ckpt_manifest *m, nv_error *err) {
    memset(m, 0, sizeof *m);
    char path[NV_PATH_MAX + 32];
    if (path_join(path, sizeof path, step_dir, "manifest.ini", err)) return -1;
    FILE *f = fopen(path, "rb");
    if (!f) return nv_seterr(err, "%s: cannot open: %s\n---> HINT: a step dir without a manifest "
                                  "is an unfinished save", path, strerror(errno));
    size_t cap = 1 << 16, len = 0, got;
    char *text = nv_malloc(cap);
    while ((got = fread(text + len, 1, cap - len - 1, f)) > 0)
        if ((len += got) == cap - 1) text = nv_realloc(text, cap *= 2);
    int rerr = ferror(f);
    fclose(f);
    text[len] = 0;
    if (rerr) {
        free(text);
        return nv_seterr(err, "%s: read error", path);
    }
    mparse x = {.m = m, .path = path, .err = err};
    int r = ini_parse_string(text, mhandler, &x);
    int rc = 0;
    if (x.failed) rc = -1;
    else if (r != 0) rc = nv_seterr(err, "%s:%d: syntax error", path, r);
    else if (!x.fmt_ok || m->version != FORMAT_VERSION)
        rc = nv_seterr(err, "%s: not an nvwa checkpoint manifest of version %d (format/version)",
                       path, FORMAT_VERSION);
    else if (!x.have_step || x.have_layout != 3 || m->tensor < 1 || m->data < 1)
        rc = nv_seterr(err, "%s: [manifest] step or [layout] tensor/data missing", path);
    else if (m->n_tensors == 0 || m->n_files == 0)
        rc = nv_seterr(err, "%s: no [tensors] or no [files]", path);
    if (!rc) {
        char *ct = config_text(text);
        nv_config_defaults(&m->cfg);
        m->cfg.model.first_attn_norm = 1; // a config saved before the key existed had LN_attn_0
        rc = nv_config_parse_string(&m->cfg, ct, path, err);
        free(ct);
    }
    free(text);
    if (rc) nv_ckpt_manifest_free(m);
    return rc;
}

void nv_ckpt_manifest_free(nv_ckpt_manifest *m) {
    free(m->files);
    free(m->tensor_names);
    free(m->tensor_shapes);
    m->files = NULL;
    m->tensor_names = NULL;
    m->tensor_shapes = NULL;
    m->n_files = m->n_tensors = 0;
}

static const nv_ckpt_file *find_file(const nv_ckpt_manifest *m, const char *name) {
    for (int i = 0; i < m->n_files; i++)
        if (!strcmp(m->files[i].name, name)) return &m->files[i];
    return NULL;
}

// ---------------------------------------------------------------------------------------
// resolve and verify

int nv_ckpt_candidates(const char *root, char (**dirs)[NV_PATH_MAX], nv_error *err) {
    *dirs = NULL;
    if (has_manifest(root)) { // a step dir: that one only
        *dirs = nv_malloc(sizeof **dirs);
        snprintf((*dirs)[0], NV_PATH_MAX, "%s", root);
        return 1;
    }
    if (!is_dir(root)) return nv_seterr(err, "%s: no such checkpoint directory", root);
    step_ent *st = NULL;
    int n = list_steps(root, &st, err);
    if (n < 0) return -1;
    *dirs = nv_malloc(sizeof **dirs * (size_t)(n + 1));
    int k = 0;
    // `latest` first when it names a complete step dir
    char lp[NV_PATH_MAX + 16], name[256] = "";
    snprintf(lp, sizeof lp, "%s/latest", root);
    FILE *f = fopen(lp, "r");
    if (f) {
        if (fgets(name, sizeof name, f)) name[strcspn(name, "\r\n")] = 0;
        fclose(f);
    }
    int li = -1;
    for (int i = 0; i < n; i++)
        if (!strcmp(st[i].name, name)) li = i;
    if (li >= 0) snprintf((*dirs)[k++], NV_PATH_MAX, "%s/%s", root, st[li].name);
    for (int i = n - 1; i >= 0; i--)
        if (i != li) snprintf((*dirs)[k++], NV_PATH_MAX, "%s/%s", root, st[i].name);
    free(st);
    if (k == 0) {
        free(*dirs);
        *dirs = NULL;
        return nv_seterr(err, "%s: no complete checkpoint (no step_XXXXXXXX/manifest.ini)", root);
    }
    return k;
}

int nv_ckpt_resolve(const char *path, char *step_dir, size_t n, nv_error *err) {
    char (*dirs)[NV_PATH_MAX];
    int k = nv_ckpt_candidates(path, &dirs, err);
    if (k < 0) return -1;
    int rc = 0;
    if (snprintf(step_dir, n, "%s", dirs[0]) >= (int)n) rc = nv_seterr(err, "%s: path too long", dirs[0]);
    free(dirs);
    return rc;
}

// The files a layout must have.
static int check_listing(const char *step_dir, const nv_ckpt_manifest *m, nv_error *err) {
    char name[64];
    const char *sd = base_name(step_dir);
    int moments = 0;
    for (int i = 0; i < m->n_files; i++) moments |= !strncmp(m->files[i].name, "optim_", 6);
    for (int t = 0; t < m->tensor; t++) {
        snprintf(name, sizeof name, "model_tp%d.h5", t);
        if (!find_file(m, name)) return nv_seterr(err, "checkpoint %s: %s: not in the manifest", sd, name);
        for (int d = 0; moments && d < (m->zero1 ? m->data : 1); d++) {
            snprintf(name, sizeof name, "optim_tp%d_dp%d.h5", t, d);
            if (!find_file(m, name)) return nv_seterr(err, "checkpoint %s: %s: not in the manifest", sd, name);
        }
    }
    return 0;
}

// Listed file f present at its listed size (not missing, not truncated); its path in path.
static int check_size(const char *step_dir, const nv_ckpt_file *f, char *path, size_t cap,
                      nv_error *err) {
    const char *sd = base_name(step_dir);
    if (path_join(path, cap, step_dir, f->name, err)) return -1;
    struct stat st;
    if (stat(path, &st) != 0)
        return nv_seterr(err, "checkpoint %s: %s: missing (%s)", sd, f->name, strerror(errno));
    if ((uint64_t)st.st_size != f->size)
        return nv_seterr(err, "checkpoint %s: %s: size %llu, manifest says %llu (truncated?)", sd, f->name,
                         (unsigned long long)st.st_size, (unsigned long long)f->size);
    return 0;
}

// Every listed file present at its listed size (a truncated or missing file), no CRC.
static int check_sizes(const char *step_dir, const nv_ckpt_manifest *m, nv_error *err) {
    if (check_listing(step_dir, m, err)) return -1;
    char path[NV_PATH_MAX + 80];
    for (int i = 0; i < m->n_files; i++)
        if (check_size(step_dir, &m->files[i], path, sizeof path, err)) return -1;
    return 0;
}

int nv_ckpt_verify_files(const char *step_dir, const nv_ckpt_manifest *m, int first, int stride,
                         nv_error *err) {
    if (check_listing(step_dir, m, err)) return -1;
    const char *sd = base_name(step_dir);
    char path[NV_PATH_MAX + 80];
    for (int i = first; i < m->n_files; i += stride) {
        const nv_ckpt_file *f = &m->files[i];
        if (check_size(step_dir, f, path, sizeof path, err)) return -1;
        uint32_t crc;
        uint64_t size;
        nv_error e;
        if (nv_ckpt_file_crc(path, &crc, &size, &e))
            return nv_seterr(err, "checkpoint %s: %s", sd, e.msg);
        if (crc != f->crc32)
            return nv_seterr(err, "checkpoint %s: %s: checksum mismatch (crc32 0x%08x, manifest "
                                  "0x%08x)", sd, f->name, crc, f->crc32);
    }
    return 0;
}

// Block CRCs of a dataset written at disk speed (contiguous, crc32_blocks): its file offset,
// bytes and CRCs (malloc'ed) and 1; 0 for a dataset of the earlier layout; -1 when broken.
static int block_layout(hid_t ds, uint64_t *addr, uint64_t *bytes, uint32_t **crc) {
    *crc = NULL;
    if (H5Aexists(ds, "crc32_blocks") <= 0) return 0;
    hid_t sp = H5Dget_space(ds);
    hssize_t n = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
    if (sp >= 0) H5Sclose(sp);
    if (n < 0) return -1;
    *bytes = (uint64_t)n * sizeof(float);
    haddr_t a = n ? H5Dget_offset(ds) : 0;
    if (a == HADDR_UNDEF) return -1;
    *addr = (uint64_t)a;
    uint64_t nb = nv_ckio_nblocks(*bytes);
    hid_t at = H5Aopen(ds, "crc32_blocks", H5P_DEFAULT), asp = at >= 0 ? H5Aget_space(at) : -1;
    hssize_t k = asp >= 0 ? H5Sget_simple_extent_npoints(asp) : -1;
    int64_t bsz = 0;
    *crc = nv_malloc(sizeof(uint32_t) * (nb + 1));
    int ok = k == (hssize_t)nb && (nb == 0 || H5Aread(at, H5T_NATIVE_UINT32, *crc) >= 0) &&
             nv_h5_read_attr_i64(ds, "crc32_block", &bsz, 1) == 0 && (uint64_t)bsz == NV_CKIO_BLOCK;
    if (asp >= 0) H5Sclose(asp);
    if (at >= 0) H5Aclose(at);
    if (!ok) {
        free(*crc);
        *crc = NULL;
        return -1;
    }
    return 1;
}

// Elements [start, start + count) of a float dataset into x: the blocks they touch read by
// the I/O pool and checked against their CRCs, or (earlier layout) through HDF5, whose
// Fletcher32 checks its chunks. *damaged: the bytes did not match their checksum.
static int read_part(hid_t ds, int fd, const char *sd, const char *file, const char *name, uint64_t start,
                     uint64_t count, float *x, int *damaged, nv_error *err) {
    uint64_t addr = 0, bytes = 0;
    uint32_t *crc;
    int kind = block_layout(ds, &addr, &bytes, &crc);
    if (kind < 0) {
        *damaged = 1;
        return nv_seterr(err, "checkpoint %s: %s: dataset %s: broken block CRC attributes", sd, file, name);
    }
    if (kind == 0) {
        hsize_t off[1] = {start}, cnt[1] = {count};
        hid_t fs = H5Dget_space(ds), ms = H5Screate_simple(1, cnt, NULL);
        int rc = 0;
        if (fs < 0 || ms < 0 || H5Sselect_hyperslab(fs, H5S_SELECT_SET, off, NULL, cnt, NULL) < 0 ||
            H5Dread(ds, H5T_NATIVE_FLOAT, ms, fs, H5P_DEFAULT, x) < 0) {
            *damaged = 1;
            rc = nv_seterr(err, "%s: dataset %s: read failed (Fletcher32 checksum mismatch or I/O error)\n---> HINT: "
                                "the file is damaged; use an older checkpoint", file, name);
        }
        if (fs >= 0) H5Sclose(fs);
        if (ms >= 0) H5Sclose(ms);
        return rc;
    }
    nv_ckio_job job = {.fd = fd, .file_off = addr, .n = bytes, .buf = x, .lo = start * sizeof(float),
                       .hi = (start + count) * sizeof(float), .crc = crc};
    int rc = 0;
    if (job.hi > bytes) rc = nv_seterr(err, "checkpoint %s: %s: dataset %s: elements past its end", sd, file, name);
    else if (count > 0 && nv_ckio_read(&job, 1, nv_ckio_threads()) != 0) {
        *damaged = 1;
        if (job.sys_errno)
            rc = nv_seterr(err, "checkpoint %s: %s: dataset %s: read failed: %s", sd, file, name, strerror(job.sys_errno));
        else
            rc = nv_seterr(err, "checkpoint %s: %s: dataset %s: block %lld (bytes %llu..%llu of it): checksum "
                                "mismatch", sd, file, name,
                           (long long)job.bad_block, (unsigned long long)job.bad_block * NV_CKIO_BLOCK,
                           (unsigned long long)((job.bad_block + 1) * NV_CKIO_BLOCK < bytes
                                                    ? (job.bad_block + 1) * NV_CKIO_BLOCK - 1 : bytes - 1));
    }
    free(crc);
    return rc;
}

// The CRC32 of a file written at disk speed, from the stored block CRCs of its datasets
// (named by the manifest's tensors, at the root or under /m and /v) and its other bytes:
// with the block checks of read_part, every byte of the file is covered without reading the
// data twice. Returns 0, or -1 (err set) when the file cannot be parsed that way.
static int file_crc_by_blocks(hid_t f, int fd, const char *path, const nv_ckpt_manifest *m, uint32_t *crc,
                              uint64_t *size, nv_error *err) {
    wslice *w = nv_calloc((size_t)(3 * m->n_tensors + 1), sizeof *w);
    int n = 0, rc = 0;
    for (int g = 0; g < 3 && rc == 0; g++) {
        const char *grp = g == 0 ? "" : g == 1 ? "m" : "v";
        if (g && H5Lexists(f, grp, H5P_DEFAULT) <= 0) continue;
        for (int k = 0; k < m->n_tensors && rc == 0; k++) {
            char name[NV_PARAM_NAME_MAX + 8];
            snprintf(name, sizeof name, "%s%s%s", grp, g ? "/" : "", m->tensor_names[k]);
            if (H5Lexists(f, name, H5P_DEFAULT) <= 0) continue;
            hid_t ds = H5Dopen2(f, name, H5P_DEFAULT);
            if (ds < 0 || block_layout(ds, &w[n].addr, &w[n].bytes, &w[n].crc) != 1)
                rc = nv_seterr(err, "%s: dataset %s: no block CRCs", path, name);
            else
                w[n++].name = m->tensor_names[k];
            if (ds >= 0) H5Dclose(ds);
        }
    }
    if (rc == 0) rc = file_crc_from_blocks(fd, path, w, n, crc, size, err);
    for (int i = 0; i < n; i++) free(w[i].crc);
    free(w);
    return rc;
}

int nv_ckpt_verify_datasets(const char *step_dir, const nv_ckpt_manifest *m, nv_error *err) {
    const char *sd = base_name(step_dir);
    char path[NV_PATH_MAX + 80];
    nv_h5_quiet q = nv_h5_quiet_begin();
    int rc = 0;
    float *buf = NULL;
    size_t cap = 0;
    for (int i = 0; i < m->n_files && !rc; i++) {
        const char *fname = m->files[i].name;
        if (path_join(path, sizeof path, step_dir, fname, err)) { rc = -1; break; }
        hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
        if (f < 0) { rc = nv_seterr(err, "checkpoint %s: %s: not a readable HDF5 file", sd, fname); break; }
        int fd = open(path, O_RDONLY);
        if (fd < 0) { H5Fclose(f); rc = nv_seterr(err, "checkpoint %s: %s: cannot open: %s", sd, fname, strerror(errno)); break; }
        int optim = !strncmp(fname, "optim_", 6);
        for (int g = 0; g < (optim ? 2 : 1) && !rc; g++) {
            hid_t loc = optim ? H5Gopen2(f, g ? "v" : "m", H5P_DEFAULT) : f;
            if (loc < 0) { rc = nv_seterr(err, "checkpoint %s: %s: group /%s missing", sd, fname, g ? "v" : "m"); break; }
            for (int k = 0; k < m->n_tensors && !rc; k++) {
                const char *tn = m->tensor_names[k];
                if (H5Lexists(loc, tn, H5P_DEFAULT) <= 0) {
                    if (!optim) rc = nv_seterr(err, "checkpoint %s: %s: dataset %s missing", sd, fname, tn);
                    continue;
                }
                hid_t ds = H5Dopen2(loc, tn, H5P_DEFAULT);
                hid_t sp = ds >= 0 ? H5Dget_space(ds) : -1;
                hssize_t n = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
                if (sp >= 0) H5Sclose(sp);
                char dn[NV_PARAM_NAME_MAX + 8];
                snprintf(dn, sizeof dn, "%s%s", optim ? (g ? "v/" : "m/") : "", tn);
                if (n < 0) rc = nv_seterr(err, "checkpoint %s: %s: dataset %s unreadable", sd, fname, tn);
                // every element, in windows: block CRCs (or Fletcher32 for the earlier layout)
                const uint64_t win = (uint64_t)16 << 20;
                if ((uint64_t)n > win ? cap < win : (size_t)n > cap) buf = nv_realloc(buf, sizeof *buf * (cap = (uint64_t)n > win ? win : (size_t)n));
                for (uint64_t a = 0; rc == 0 && n > 0 && a < (uint64_t)n; a += win) {
                    int damaged = 0;
                    rc = read_part(ds, fd, sd, fname, dn, a, (uint64_t)n - a < win ? (uint64_t)n - a : win, buf, &damaged, err);
                }
                if (ds >= 0) H5Dclose(ds);
            }
            if (optim) H5Gclose(loc);
        }
        H5Fclose(f);
        close(fd);
    }
    free(buf);
    nv_h5_quiet_end(q);
    return rc;
}

// ---------------------------------------------------------------------------------------
// load

typedef struct src_file {
    char name[64];
    int tp, dp;
    hid_t h;
    int fd;
} src_file;

// What a load reads from: the step dir, its manifest, and whether a failure so far was a
// damaged file (then nv_ckpt_load tries an older checkpoint).
typedef struct load_ctx {
    const char *dir, *sd;
    const nv_ckpt_manifest *m;
    int damaged;
} load_ctx;

// Open a source file on first use. For a checkpoint written at disk speed, the file's CRC
// is checked here from its metadata bytes and stored block CRCs (the data blocks are checked
// as they are read); when that is impossible the whole file's CRC names the damage.
static hid_t src_open(load_ctx *L, src_file *f, nv_error *err) {
    if (f->h >= 0) return f->h;
    char path[NV_PATH_MAX + 80];
    if (path_join(path, sizeof path, L->dir, f->name, err)) return -1;
    f->h = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    f->fd = open(path, O_RDONLY);
    // a load reads (nearly) every byte of the files it opens: let the kernel read ahead the
    // whole file while the tensors are taken one by one
    if (f->fd >= 0) posix_fadvise(f->fd, 0, 0, POSIX_FADV_WILLNEED);
    const nv_ckpt_file *mf = find_file(L->m, f->name);
    uint32_t crc = 0;
    uint64_t size = 0;
    nv_error e2;
    int rc = 0;
    if (f->h < 0 || f->fd < 0 || (L->m->block_crc && file_crc_by_blocks(f->h, f->fd, path, L->m, &crc, &size, &e2))) {
        // unreadable as it should be: the whole file's CRC tells damage from anything else
        L->damaged = 1;
        if (mf && nv_ckpt_file_crc(path, &crc, &size, &e2) == 0 && crc != mf->crc32)
            rc = nv_seterr(err, "checkpoint %s: %s: checksum mismatch (crc32 0x%08x, manifest 0x%08x)", L->sd, f->name,
                           crc, mf->crc32);
        else
            rc = nv_seterr(err, "checkpoint %s: %s: cannot open as HDF5", L->sd, f->name);
    } else if (L->m->block_crc && mf && crc != mf->crc32) {
        L->damaged = 1;
        rc = nv_seterr(err, "checkpoint %s: %s: checksum mismatch (crc32 0x%08x, manifest 0x%08x)", L->sd, f->name, crc,
                       mf->crc32);
    }
    if (rc) {
        if (f->h >= 0) H5Fclose(f->h);
        if (f->fd >= 0) close(f->fd);
        f->h = -1;
        f->fd = -1;
        return -1;
    }
    return f->h;
}

// Local elements [i, i+len) of p lie in one local row, so they are the full elements
// [*fi, *fi+len): one index computation per row instead of per element.
static size_t run_at(const nv_param *p, size_t i, size_t end, int tp, int tps, int64_t *fi) {
    size_t row_end = (i / (size_t)p->local[1] + 1) * (size_t)p->local[1];
    *fi = nv_param_full_index(p, i, tp, tps);
    return (row_end < end ? row_end : end) - i;
}

// Copies the needed elements (flag 1 -> 2) of one source slice into full.
static int take_slice(load_ctx *L, src_file *sf, const char *group, const nv_param *sp,
                      int src_tp, int src_size, uint8_t *flag, float *full[2], int nbuf,
                      float **tmp, size_t *tcap, nv_error *err) {
    hid_t f = src_open(L, sf, err);
    if (f < 0) return -1;
    char dname[NV_PARAM_NAME_MAX + 8];
    snprintf(dname, sizeof dname, "%s%s%s", group, group[0] ? "/" : "", sp->name);
    if (group[0] && H5Lexists(f, group, H5P_DEFAULT) <= 0)
        return nv_seterr(err, "%s: group /%s missing", sf->name, group);
    if (H5Lexists(f, dname, H5P_DEFAULT) <= 0) {
        if (group[0]) return 0; // this shard holds no part of the tensor
        return nv_seterr(err, "%s: dataset %s missing", sf->name, dname);
    }
    slice_info si;
    hid_t ds = open_slice(f, sf->name, dname, sp, src_tp, src_size, &si, err);
    if (ds < 0) return -1;
    int any = 0;
    size_t s0 = (size_t)si.start, s1 = (size_t)(si.start + si.count);
    for (size_t i = s0, len; i < s1 && !any; i += len) {
        int64_t fi;
        len = run_at(sp, i, s1, src_tp, src_size, &fi);
        for (size_t k = 0; k < len && !any; k++) any = flag[fi + (int64_t)k] == 1;
    }
    H5Dclose(ds);
    if (!any) return 0;
    if ((size_t)si.count > *tcap) *tmp = nv_realloc(*tmp, sizeof **tmp * 2 * (*tcap = (size_t)si.count));
    for (int b = 0; b < nbuf; b++) {
        // moments: /m then /v, same tags
        char gname[NV_PARAM_NAME_MAX + 8];
        snprintf(gname, sizeof gname, "%s%s%s", b ? "v" : group, group[0] ? "/" : "", sp->name);
        slice_info sj;
        hid_t d2 = open_slice(f, sf->name, gname, sp, src_tp, src_size, &sj, err);
        if (d2 < 0) return -1;
        int r = (sj.start != si.start || sj.count != si.count)
                    ? nv_seterr(err, "%s: %s and %s cover different elements", sf->name, dname, gname)
                    : read_part(d2, sf->fd, L->sd, sf->name, gname, 0, (uint64_t)si.count, *tmp + b * *tcap,
                                &L->damaged, err);
        H5Dclose(d2);
        if (r) return -1;
    }
    for (size_t i = s0, len; i < s1; i += len) {
        int64_t f0;
        len = run_at(sp, i, s1, src_tp, src_size, &f0);
        for (size_t k = 0; k < len; k++) {
            int64_t fi = f0 + (int64_t)k;
            if (flag[fi] != 1) continue;
            flag[fi] = 2;
            for (int b = 0; b < nbuf; b++) full[b][fi] = (*tmp)[b * *tcap + (i - s0) + k];
        }
    }
    return 0;
}

// Flags the full elements of local [lo, hi) as needed (1), all others 0.
static void mark(const nv_param *p, const nv_param_table *T, size_t lo, size_t hi, uint8_t *flag,
                 size_t N) {
    memset(flag, 0, N);
    for (size_t i = lo, len; i < hi; i += len) {
        int64_t fi;
        len = run_at(p, i, hi, T->tp_rank, T->tp_size, &fi);
        memset(flag + fi, 1, len);
    }
}

// Local [lo, hi) from the full buffers into dst (and dst_v), every element found (flag 2).
static int gather(const nv_param *p, const nv_param_table *T, size_t lo, size_t hi,
                  const uint8_t *flag, float *const full[2], float *dst, float *dst_v,
                  const char *sd, const char *kind, nv_error *err) {
    for (size_t i = lo, len; i < hi; i += len) {
        int64_t fi;
        len = run_at(p, i, hi, T->tp_rank, T->tp_size, &fi);
        for (size_t k = 0; k < len; k++)
            if (flag[fi + (int64_t)k] != 2)
                return nv_seterr(err, "checkpoint %s: tensor %s: element %" PRId64 " in no %s file",
                                 sd, p->name, fi + (int64_t)k, kind);
        memcpy(dst + (i - lo), full[0] + fi, sizeof(float) * len);
        if (dst_v) memcpy(dst_v + (i - lo), full[1] + fi, sizeof(float) * len);
    }
    return 0;
}

// Same-layout read: elements [want_lo, want_hi) of the local tensor, from whatever part of
// them this file's slice holds, straight into dst (dst[0] = element want_lo); for moments
// (group "m") also the matching /v slice into dst_v. Adds the elements read to *got.
static int read_range(load_ctx *L, src_file *sf, const char *group, const nv_param *sp,
                      int src_tp, int src_size, size_t want_lo, size_t want_hi, float *dst,
                      float *dst_v, size_t *got, nv_error *err) {
    hid_t f = src_open(L, sf, err);
    if (f < 0) return -1;
    if (group[0] && H5Lexists(f, group, H5P_DEFAULT) <= 0)
        return nv_seterr(err, "%s: group /%s missing", sf->name, group);
    for (int b = 0; b < (dst_v ? 2 : 1); b++) {
        char dname[NV_PARAM_NAME_MAX + 8];
        snprintf(dname, sizeof dname, "%s%s%s", b ? "v" : group, group[0] ? "/" : "", sp->name);
        if (H5Lexists(f, dname, H5P_DEFAULT) <= 0) {
            if (group[0]) return 0; // this shard holds no part of the tensor
            return nv_seterr(err, "%s: dataset %s missing", sf->name, dname);
        }
        slice_info si;
        hid_t ds = open_slice(f, sf->name, dname, sp, src_tp, src_size, &si, err);
        if (ds < 0) return -1;
        size_t a = (size_t)si.start > want_lo ? (size_t)si.start : want_lo;
        size_t e = (size_t)(si.start + si.count) < want_hi ? (size_t)(si.start + si.count) : want_hi;
        int rc = 0;
        if (a < e) {
            rc = read_part(ds, sf->fd, L->sd, sf->name, dname, a - (size_t)si.start, e - a,
                           (b ? dst_v : dst) + (a - want_lo), &L->damaged, err);
            if (!rc && b == 0) *got += e - a;
        }
        H5Dclose(ds);
        if (rc) return -1;
    }
    return 0;
}

// nv_ckpt_load_local; *damaged tells a damaged file (checksum, unreadable) from anything else.
static int load_local(const char *step_dir, const nv_ckpt_manifest *m, nv_ckpt_state *s, int *damaged,
                      nv_error *err) {
    const nv_param_table *T = s->t;
    const char *sd = base_name(step_dir);
    load_ctx L = {step_dir, sd, m, 0};
    if (s->adam_m && (s->shard_lo > s->shard_hi || s->shard_hi > T->total))
        return nv_seterr(err, "checkpoint load: shard [%zu, %zu) outside the %zu parameters",
                         s->shard_lo, s->shard_hi, T->total);
    int moments = 0;
    for (int i = 0; i < m->n_files; i++) moments |= !strncmp(m->files[i].name, "optim_", 6);
    if (s->adam_m && !moments)
        return nv_seterr(err, "checkpoint %s: holds no optimizer state (saved without moments)", sd);
    // the saved layout's tables, from the saved model config
    nv_param_table *src = nv_calloc((size_t)m->tensor, sizeof *src);
    for (int t = 0; t < m->tensor; t++) {
        nv_param_ids ids;
        nv_params_build(&src[t], &ids, &m->cfg.model, t, m->tensor);
        free(ids.layers);
    }
    int rc = 0;
    const int ln0_there = nv_params_find(&src[0], "layers.0.attn_norm.weight") >= 0,
              ln0_here = nv_params_find(T, "layers.0.attn_norm.weight") >= 0;
    if (ln0_there != ln0_here)
        rc = nv_seterr(err, "checkpoint %s: [model] first-attn-norm is %s there, %s in this run\n"
                            "---> HINT: set model.first-attn-norm=%s (checkpoints saved before the "
                            "key existed have layer 0's attention norm)", sd,
                       ln0_there ? "true" : "false", ln0_here ? "true" : "false",
                       ln0_there ? "true" : "false");
    else if (src[0].n != T->n || src[0].n != m->n_tensors)
        rc = nv_seterr(err, "checkpoint %s: %d tensors, the model has %d\n---> HINT: the [model] "
                            "config of the checkpoint and of this run must agree", sd, src[0].n, T->n);
    for (int k = 0; k < T->n && !rc; k++) {
        int j = nv_params_find(&src[0], T->p[k].name);
        if (j < 0) rc = nv_seterr(err, "checkpoint %s: tensor %s not in the checkpoint", sd, T->p[k].name);
        else if (src[0].p[j].full[0] != T->p[k].full[0] || src[0].p[j].full[1] != T->p[k].full[1])
            rc = nv_seterr(err, "checkpoint %s: tensor %s is %" PRId64 "x%" PRId64 " there, %" PRId64
                                "x%" PRId64 " in the model", sd, T->p[k].name, src[0].p[j].full[0],
                           src[0].p[j].full[1], T->p[k].full[0], T->p[k].full[1]);
        else if (strcmp(m->tensor_names[j], T->p[k].name) || m->tensor_shapes[j][0] != T->p[k].full[0] ||
                 m->tensor_shapes[j][1] != T->p[k].full[1])
            rc = nv_seterr(err, "checkpoint %s: [tensors] disagrees with its [model] config at %s", sd,
                           m->tensor_names[j]);
    }
    src_file *model = nv_calloc((size_t)m->tensor, sizeof *model);
    for (int t = 0; t < m->tensor; t++) {
        snprintf(model[t].name, sizeof model[t].name, "model_tp%d.h5", t);
        model[t].tp = t;
        model[t].h = -1;
        model[t].fd = -1;
    }
    src_file *opt = nv_calloc((size_t)m->n_files, sizeof *opt);
    int n_opt = 0;
    for (int i = 0; i < m->n_files; i++) {
        int tp, dp, end = 0;
        if (sscanf(m->files[i].name, "optim_tp%d_dp%d.h5%n", &tp, &dp, &end) == 2 &&
            !m->files[i].name[end] && tp >= 0 && tp < m->tensor) {
            snprintf(opt[n_opt].name, sizeof opt[n_opt].name, "%s", m->files[i].name);
            opt[n_opt].tp = tp;
            opt[n_opt].dp = dp;
            opt[n_opt].fd = -1;
            opt[n_opt++].h = -1;
        }
    }
    nv_h5_quiet q = nv_h5_quiet_begin();
    if (s->master && !rc) memset(s->master, 0, sizeof *s->master * T->total); // padding included
    if (s->adam_m && !rc) {
        memset(s->adam_m, 0, sizeof(float) * (s->shard_hi - s->shard_lo));
        memset(s->adam_v, 0, sizeof(float) * (s->shard_hi - s->shard_lo));
    }
    float *tmp = NULL, *full[2] = {NULL, NULL};
    uint8_t *flag = NULL;
    size_t tcap = 0, fcap = 0;
    for (int k = 0; k < T->n && !rc; k++) {
        const nv_param *p = &T->p[k];
        int j = nv_params_find(&src[0], p->name);
        size_t lo = s->shard_lo > p->offset ? s->shard_lo - p->offset : 0;
        size_t hi = s->shard_hi < p->offset + p->numel ? s->shard_hi - p->offset : p->numel;
        int want_m = s->adam_m && s->shard_hi > p->offset && lo < hi;
        // Same local layout (replicated, or the same tensor degree): source tensor rank st
        // holds exactly our local tensor, so slices are read straight into place.
        if (p->split == NV_SPLIT_NONE || m->tensor == T->tp_size) {
            int st = p->split == NV_SPLIT_NONE ? T->tp_rank % m->tensor : T->tp_rank;
            size_t got = 0;
            if (s->master) {
                rc = read_range(&L, &model[st], "", &src[st].p[j], st, m->tensor, 0, p->numel,
                                s->master + p->offset, NULL, &got, err);
                if (!rc && got != p->numel)
                    rc = nv_seterr(err, "checkpoint %s: tensor %s: %s holds %zu of its %zu elements", sd,
                                   p->name, model[st].name, got, p->numel);
            }
            got = 0;
            for (int o = 0; o < n_opt && want_m && !rc; o++)
                if (opt[o].tp == st)
                    rc = read_range(&L, &opt[o], "m", &src[st].p[j], st, m->tensor, lo, hi,
                                    s->adam_m + p->offset + lo - s->shard_lo,
                                    s->adam_v + p->offset + lo - s->shard_lo, &got, err);
            if (want_m && !rc && got != hi - lo)
                rc = nv_seterr(err, "checkpoint %s: tensor %s: optim files hold %zu of the %zu moments "
                                    "needed", sd, p->name, got, hi - lo);
            continue;
        }
        // Another layout: gather what this rank needs into full-tensor buffers via full indices.
        size_t N = (size_t)(p->full[0] * p->full[1]);
        if (N > fcap) {
            fcap = N;
            flag = nv_realloc(flag, N);
            full[0] = nv_realloc(full[0], sizeof(float) * N);
            full[1] = nv_realloc(full[1], sizeof(float) * N);
        }
        if (s->master) {
            mark(p, T, 0, p->numel, flag, N);
            for (int t = 0; t < m->tensor && !rc; t++)
                rc = take_slice(&L, &model[t], "", &src[t].p[j], t, m->tensor, flag, full, 1,
                                &tmp, &tcap, err);
            if (!rc) rc = gather(p, T, 0, p->numel, flag, full, s->master + p->offset, NULL, sd, "model", err);
        }
        if (want_m && !rc) {
            mark(p, T, lo, hi, flag, N);
            for (int o = 0; o < n_opt && !rc; o++)
                rc = take_slice(&L, &opt[o], "m", &src[opt[o].tp].p[j], opt[o].tp, m->tensor,
                                flag, full, 2, &tmp, &tcap, err);
            if (!rc)
                rc = gather(p, T, lo, hi, flag, full, s->adam_m + p->offset + lo - s->shard_lo,
                            s->adam_v + p->offset + lo - s->shard_lo, sd, "optim", err);
        }
    }
    free(flag);
    free(full[0]);
    free(full[1]);
    free(tmp);
    for (int t = 0; t < m->tensor; t++)
        if (model[t].h >= 0) H5Fclose(model[t].h), close(model[t].fd);
    for (int o = 0; o < n_opt; o++)
        if (opt[o].h >= 0) H5Fclose(opt[o].h), close(opt[o].fd);
    nv_h5_quiet_end(q);
    free(model);
    free(opt);
    for (int t = 0; t < m->tensor; t++) free(src[t].p);
    free(src);
    *damaged = L.damaged;
    if (rc) return -1;
    s->step = m->step;
    s->cursor = m->cursor;
    memcpy(s->extra, m->extra, sizeof s->extra);
    snprintf(s->loaded, sizeof s->loaded, "%s", step_dir);
    return 0;
}

int nv_ckpt_load_masters(const char *step_dir, const nv_ckpt_manifest *m, nv_param_table *t,
                         nv_param_ids *ids, nv_ckpt_state *s, nv_error *err) {
    nv_params_build(t, ids, &m->cfg.model, 0, 1);
    memset(s, 0, sizeof *s);
    s->t = t;
    s->master = nv_malloc(sizeof(float) * (t->total + 1));
    return nv_ckpt_load_local(step_dir, m, s, err);
}

void nv_ckpt_masters_free(nv_param_table *t, nv_param_ids *ids, nv_ckpt_state *s) {
    free(s->master);
    s->master = NULL;
    nv_params_free(t, ids);
}

int nv_ckpt_load_local(const char *step_dir, const nv_ckpt_manifest *m, nv_ckpt_state *s,
                       nv_error *err) {
    int damaged = 0;
    return load_local(step_dir, m, s, &damaged, err);
}

int nv_ckpt_load(const char *root_or_dir, const nv_dist *d, nv_config *cfg_out,
                 nv_ckpt_state *s, nv_error *err) {
    nv_error e;
    e.msg[0] = 0;
    s->warning.msg[0] = 0;
    s->loaded[0] = 0;
    // rank 0 lists the candidates so that every rank tries the same ones
    char (*dirs)[NV_PATH_MAX] = NULL;
    int n = 0;
    if (d->rank == 0) n = nv_ckpt_candidates(root_or_dir, &dirs, &e);
    if (agree(d, n < 0, &e)) goto fail;
    NV_MPI_CHECK(d, MPI_Bcast(&n, 1, MPI_INT, 0, d->comm_world));
    if (d->rank != 0) dirs = nv_malloc(sizeof *dirs * (size_t)n);
    NV_MPI_CHECK(d, MPI_Bcast(dirs, (int)(sizeof *dirs * (size_t)n), MPI_CHAR, 0, d->comm_world));
    for (int c = 0; c < n; c++) {
        nv_ckpt_manifest m;
        int mrc = nv_ckpt_manifest_read(dirs[c], &m, &e), rc = mrc;
        // written at disk speed: listing and sizes now, every byte's checksum as it is read;
        // the earlier layout: whole-file CRCs first, file i on rank i % world
        if (!rc) rc = m.block_crc ? check_sizes(dirs[c], &m, &e) : nv_ckpt_verify_files(dirs[c], &m, d->rank, d->world, &e);
        int damaged = 1, loaded = 0; // a failed verification: try the next one
        if (!agree(d, rc, &e)) {
            damaged = 0;
            rc = load_local(dirs[c], &m, s, &damaged, &e);
            if (!rc && cfg_out) *cfg_out = m.cfg;
            NV_MPI_CHECK(d, MPI_Allreduce(MPI_IN_PLACE, &damaged, 1, MPI_INT, MPI_MAX, d->comm_world));
            loaded = !agree(d, rc, &e);
            if (!loaded && !damaged) { // not damage (e.g. another model): no older one helps
                nv_ckpt_manifest_free(&m);
                goto fail;
            }
        }
        if (!mrc) nv_ckpt_manifest_free(&m);
        if (!loaded) { // damaged: try the next older one
            if (!s->warning.msg[0]) s->warning = e;
            if (c + 1 < n && d->rank == 0)
                fprintf(stderr, "nvwa: warning: %s; trying %s\n", e.msg, base_name(dirs[c + 1]));
            continue;
        }
        if (s->warning.msg[0] && d->rank == 0)
            fprintf(stderr, "nvwa: warning: loaded %s instead\n", base_name(dirs[c]));
        free(dirs);
        return 0;
    }
    if (n > 1) nv_seterr(&e, "%s: no loadable checkpoint (newest: %s)", root_or_dir, s->warning.msg);
fail:
    free(dirs);
    if (err) *err = e;
    return -1;
}
