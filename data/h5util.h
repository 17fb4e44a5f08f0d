// h5util.h - the HDF5 helpers every writer and reader of nvwa files shares (shards,
// checkpoints, batch dumps, embeddings).
#pragma once
#include <hdf5.h>
#include <stdint.h>

// HDF5 prints its error stack by default; nvwa reports one line of its own instead. begin()
// silences the stack and end() gives the caller's handler back.
typedef struct nv_h5_quiet {
    H5E_auto2_t func;
    void *data;
} nv_h5_quiet;
nv_h5_quiet nv_h5_quiet_begin(void);
void nv_h5_quiet_end(nv_h5_quiet q);

// Attributes on a file, group or dataset; 0 or -1. Strings are fixed-length, NUL-terminated.
int nv_h5_attr_str(hid_t loc, const char *name, const char *v);
int nv_h5_attr_u64(hid_t loc, const char *name, uint64_t v);
// n uint64 values (a 1-D array, also when n == 1).
int nv_h5_attr_u64v(hid_t loc, const char *name, const uint64_t *v, hsize_t n);
// Reads exactly n uint64 values of an integer attribute; -1 when missing or not n values.
int nv_h5_read_attr_u64(hid_t loc, const char *name, uint64_t *v, int n);
// n int64 values (a scalar when n == 1).
int nv_h5_attr_i64(hid_t loc, const char *name, const int64_t *v, hsize_t n);
// Reads exactly n int64 values of an attribute; -1 when missing or not n values.
int nv_h5_read_attr_i64(hid_t loc, const char *name, int64_t *v, int n);
