// safetensors.h - the safetensors file format (8-byte little-endian header length, a JSON
// header of {name: {dtype, shape, data_offsets}} plus an optional __metadata__ object of
// strings, then the tensor bytes), written and read by nvwa-ckpt's exports and import.
//
// Writing keeps the tensors in the order given, so the same tensors give the same bytes.
// Reading checks the header (JSON, dtypes, shapes, offsets inside the file, no overlaps) and
// converts F32, F16, BF16 and F64 tensors to float.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "data/nv_util.h"

typedef struct nv_st_tensor {
    const char *name;
    int ndim;          // 1 or 2
    int64_t shape[2];
    const float *data; // row-major, shape[0] * shape[1] (ndim 1: shape[0]) floats
} nv_st_tensor;

// Write the tensors to `path` (created or truncated; no rename: callers stage) in float32
// or, with bf16, rounded to bfloat16 (nearest even). meta: n_meta key/value pairs.
int nv_st_write(const char *path, const nv_st_tensor *t, int n, const char *const *meta_keys,
                const char *const *meta_vals, int n_meta, int bf16, nv_error *err);

typedef struct nv_st_entry {
    char name[256];
    char dtype[8];     // "F32", "BF16", "F16", "F64"
    int ndim;
    int64_t shape[4];
    uint64_t begin, end; // byte offsets in the data section
} nv_st_entry;

typedef struct nv_st_file {
    char path[1024];
    int fd;
    uint64_t data_start;  // 8 + header length
    int n;
    nv_st_entry *e;
    int n_meta;
    char (*meta_keys)[128];
    char (*meta_vals)[256];
} nv_st_file;

int nv_st_open(const char *path, nv_st_file *f, nv_error *err);
void nv_st_close(nv_st_file *f);
int nv_st_find(const nv_st_file *f, const char *name); // index or -1
const char *nv_st_meta(const nv_st_file *f, const char *key); // NULL if absent
// Elements of entry i (product of its shape).
int64_t nv_st_numel(const nv_st_entry *e);
// Read entry i converted to float into out [numel].
int nv_st_read(const nv_st_file *f, int i, float *out, nv_error *err);
