// dump.c - the first N global batches exactly as the trainer would see them, as HDF5.
//
// The loader runs as data rank 0 of 1, so its micro-batches come in global slot order and
// row k of the dump is row k of the concatenated global batches whatever the run's data
// degree. Written to a temporary name beside `path`, fsynced, then renamed.
#include "data/dump.h"
#include "data/h5util.h"

#include <fcntl.h>
#include <hdf5.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/batch.h"
#include "data/dataset.h"

enum { F_INPUT, F_TARGET, F_SIN, F_STGT, F_MLM, F_SMASK, F_SEG, F_POS, N_FIELDS };
static const char *const field_names[N_FIELDS] = {
    "input", "target", "struct_in", "struct_target", "mlm_mask", "struct_mask", "segment", "position",
};

static const void *field_ptr(const nv_batch *b, int f) {
    switch (f) {
    case F_INPUT: return b->input;
    case F_TARGET: return b->target;
    case F_SIN: return b->struct_in;
    case F_STGT: return b->struct_target;
    case F_MLM: return b->mlm_mask;
    case F_SMASK: return b->struct_mask;
    case F_SEG: return b->segment;
    default: return b->position;
    }
}
static int field_is_u8(int f) { return f == F_MLM || f == F_SMASK; }

static int put_attr(hid_t file, const char *name, long long v) {
    const int64_t x = v;
    return nv_h5_attr_i64(file, name, &x, 1);
}

static int dump_into(hid_t file, const nv_data_config *d, int structure_input, nv_dataset *corpus,
                     long n_steps, const char *path, nv_error *err) {
    hsize_t rows = (hsize_t)n_steps * (hsize_t)d->global_batch, cols = (hsize_t)d->seq_length;
    hid_t ds[N_FIELDS];
    for (int f = 0; f < N_FIELDS; f++) ds[f] = -1;
    int rc = -1;
    nv_loader *l = NULL;

    if (put_attr(file, "seq_length", d->seq_length) || put_attr(file, "micro_batch", d->micro_batch) ||
        put_attr(file, "global_batch", d->global_batch) || put_attr(file, "n_steps", n_steps) ||
        put_attr(file, "seed", (long long)d->seed)) {
        nv_seterr(err, "%s: cannot write the attributes", path);
        goto done;
    }
    hsize_t dims[2] = {rows, cols};
    hid_t space = H5Screate_simple(2, dims, NULL);
    if (space < 0) {
        nv_seterr(err, "%s: cannot create a dataspace of %llu x %llu", path,
                  (unsigned long long)rows, (unsigned long long)cols);
        goto done;
    }
    for (int f = 0; f < N_FIELDS; f++) {
        ds[f] = H5Dcreate2(file, field_names[f], field_is_u8(f) ? H5T_STD_U8LE : H5T_STD_I32LE, space,
                           H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        if (ds[f] < 0) {
            H5Sclose(space);
            nv_seterr(err, "%s: cannot create dataset %s", path, field_names[f]);
            goto done;
        }
    }
    l = nv_loader_create_ds(corpus, d, structure_input, 0, 1, 2, err);
    if (!l) goto close_space;
    hsize_t mdims[2] = {(hsize_t)d->micro_batch, cols};
    hid_t mspace = H5Screate_simple(2, mdims, NULL);
    if (mspace < 0) {
        nv_seterr(err, "%s: cannot create the memory dataspace", path);
        goto close_space;
    }
    long n_mb = n_steps * (long)nv_loader_slots(l);
    for (long i = 0; i < n_mb; i++) {
        const nv_batch *b = nv_loader_next(l);
        if (!b) {
            nv_seterr(err, "%s", nv_loader_error(l));
            H5Sclose(mspace);
            goto close_space;
        }
        hsize_t start[2] = {(hsize_t)i * (hsize_t)d->micro_batch, 0};
        if (H5Sselect_hyperslab(space, H5S_SELECT_SET, start, NULL, mdims, NULL) < 0) {
            nv_seterr(err, "%s: cannot select rows %llu..", path, (unsigned long long)start[0]);
            H5Sclose(mspace);
            goto close_space;
        }
        for (int f = 0; f < N_FIELDS; f++) {
            if (H5Dwrite(ds[f], field_is_u8(f) ? H5T_NATIVE_UINT8 : H5T_NATIVE_INT32, mspace, space,
                         H5P_DEFAULT, field_ptr(b, f)) < 0) {
                nv_seterr(err, "%s: cannot write dataset %s (disk full?)", path, field_names[f]);
                H5Sclose(mspace);
                goto close_space;
            }
        }
    }
    if (H5Sclose(mspace) < 0) {
        nv_seterr(err, "%s: cannot close a dataspace", path);
        goto close_space;
    }
    rc = 0;
close_space:
    if (H5Sclose(space) < 0 && rc == 0) rc = nv_seterr(err, "%s: cannot close a dataspace", path);
done:
    for (int f = 0; f < N_FIELDS; f++)
        if (ds[f] >= 0 && H5Dclose(ds[f]) < 0 && rc == 0)
            rc = nv_seterr(err, "%s: cannot close dataset %s", path, field_names[f]);
    nv_loader_free(l);
    return rc;
}

int nv_dump_batches(const nv_data_config *d, int structure_input, nv_dataset *corpus,
                    long n_steps, const char *path, nv_error *err) {
    if (n_steps < 1) return nv_seterr(err, "--dump-batches: need at least 1 batch, got %ld", n_steps);
    size_t plen = strlen(path);
    char *tmp = nv_malloc(plen + 32);
    snprintf(tmp, plen + 32, "%s.tmp%ld", path, (long)getpid());

    // HDF5 prints its own error stacks unless told not to; our messages say what failed.
    H5E_auto2_t old_fn;
    void *old_data;
    H5Eget_auto2(H5E_DEFAULT, &old_fn, &old_data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);

    int rc = -1;
    hid_t file = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (file < 0) {
        nv_seterr(err, "%s: cannot create the file (directory missing or not writable?)", tmp);
    } else {
        rc = dump_into(file, d, structure_input, corpus, n_steps, path, err);
        if (H5Fclose(file) < 0 && rc == 0) rc = nv_seterr(err, "%s: cannot close the file", tmp);
    }
    if (rc == 0) {
        int fd = open(tmp, O_RDONLY);
        if (fd < 0 || fsync(fd) != 0) rc = nv_seterr(err, "%s: cannot fsync", tmp);
        if (fd >= 0) close(fd);
    }
    if (rc == 0 && rename(tmp, path) != 0) rc = nv_seterr(err, "%s: cannot rename to %s", tmp, path);
    if (rc != 0) unlink(tmp);
    H5Eset_auto2(H5E_DEFAULT, old_fn, old_data);
    free(tmp);
    return rc;
}
