// checkpoint.h - checkpoints of design section 9: logical tensors, any layout in, any out.
//
//     <root>/step_00001000/manifest.ini          written last: step, layout, cursor, extra,
//                                                file CRC32s and sizes, tensors, the config
//     <root>/step_00001000/model_tp{t}.h5        fp32 masters of tensor rank t (data rank 0)
//     <root>/step_00001000/optim_tp{t}_dp{d}.h5  Adam moments /m and /v of that flat shard
//     <root>/latest                              "step_00001000\n"
//
// Every dataset is a slice [local_start, local_start + count) of one tensor's local part at
// (tp_rank, tp_size), tagged with those and the full shape; nv_param_full_index maps it to
// the full tensor, so a checkpoint saved at one (tensor, data, zero1) loads at any other.
// A save goes to step_XXXXXXXX.tmp/, is fsynced, renamed, then `latest` is replaced: a crash
// at any instant leaves the previous checkpoint loadable.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "data/batch.h"
#include "data/nv_util.h"
#include "model/params.h"
#include "train/config.h"
#include "train/dist.h"

#define NV_CKPT_EXTRA 8
#define NV_CKPT_MAX_FILES 8192

typedef struct nv_ckpt_state {
    long step;
    nv_loader_cursor cursor;
    uint64_t extra[NV_CKPT_EXTRA]; // the trainer's counters (Adam's t, skipped steps, ...)
    const nv_param_table *t;       // this rank's table (tp_rank, tp_size inside)
    float *master;                 // [t->total] flat, table offsets; NULL = skip on load
    float *adam_m, *adam_v;        // [shard_hi - shard_lo]: element i of the flat layout at
                                   // [i - shard_lo]; NULL = no moments (save) / skip (load)
    size_t shard_lo, shard_hi;     // zero1: this data rank's flat range; else 0 .. t->total
    int zero1;
    // Set by nv_ckpt_load: the step dir loaded, and why a newer one was passed over (or "").
    char loaded[NV_PATH_MAX];
    nv_error warning;
} nv_ckpt_state;

// One file of a checkpoint as the manifest lists it.
typedef struct nv_ckpt_file {
    char name[64];
    uint32_t crc32; // zlib crc32 of the file bytes
    uint64_t size;
} nv_ckpt_file;

// manifest.ini, parsed. The config sections go through nv_config_parse_string.
typedef struct nv_ckpt_manifest {
    int version;
    long step;
    uint64_t block_crc;         // datasets contiguous with block CRCs of this size; 0: the
                                // earlier layout (chunked, Fletcher32)
    int tensor, data, zero1;
    nv_loader_cursor cursor;
    uint64_t extra[NV_CKPT_EXTRA];
    int n_files;
    nv_ckpt_file *files;        // [n_files]
    int n_tensors;
    char (*tensor_names)[NV_PARAM_NAME_MAX];
    int64_t (*tensor_shapes)[2]; // full shape; [1] = 1 for vectors
    int n_model_keys;           // the [model] section verbatim, for export metadata
    char model_keys[32][64];
    char model_vals[32][128];
    nv_config cfg;              // the resolved config of the run that saved it
} nv_ckpt_manifest;

// ---------------------------------------------------------------------------------------
// Collective (every rank of d->comm_world calls them; all return the same code).

// Save s at s->step under root; keep > 0 removes the oldest complete checkpoints beyond
// `keep` (and stale *.tmp dirs) after the new one is in place. cfg is stored as-is.
int nv_ckpt_save(const char *root, const nv_dist *d, const nv_config *cfg,
                 const nv_ckpt_state *s, int keep, nv_error *err);

// Load into this rank's layout (s->t, s->shard_lo/hi; master/adam_m/adam_v may be NULL) and
// set step, cursor, extra, loaded, warning. root_or_dir: a step dir (only that one), or a
// root: `latest`, and when that is missing or damaged (size, CRC32) the newest complete step
// dir that verifies, with the reason in s->warning and on stderr (rank 0).
// cfg_out (may be NULL) receives the saved config.
int nv_ckpt_load(const char *root_or_dir, const nv_dist *d, nv_config *cfg_out,
                 nv_ckpt_state *s, nv_error *err);

// ---------------------------------------------------------------------------------------
// Single-process pieces (nvwa-ckpt, tests, and the collective calls above).

// Step dir of path: a dir holding manifest.ini as is; else a root: `latest`, or when that is
// missing or points nowhere, the newest step_XXXXXXXX with a manifest. No CRC check.
int nv_ckpt_resolve(const char *path, char *step_dir, size_t n, nv_error *err);
// Step dirs of a root with a manifest, newest first (`latest`'s target first); the caller
// frees the list. Returns the count, or -1.
int nv_ckpt_candidates(const char *root, char (**dirs)[NV_PATH_MAX], nv_error *err);

int nv_ckpt_manifest_read(const char *step_dir, nv_ckpt_manifest *m, nv_error *err);
void nv_ckpt_manifest_free(nv_ckpt_manifest *m);

// Every listed file: present, size, CRC32; and that the layout's files are all listed.
// first/stride: check files first, first+stride, ... (ranks share the work).
int nv_ckpt_verify_files(const char *step_dir, const nv_ckpt_manifest *m, int first, int stride,
                         nv_error *err);
// Read every dataset of every file (HDF5 checks each chunk's Fletcher32 on the way).
int nv_ckpt_verify_datasets(const char *step_dir, const nv_ckpt_manifest *m, nv_error *err);

// Load this layout's part from a verified step dir (non-collective; see nv_ckpt_load).
int nv_ckpt_load_local(const char *step_dir, const nv_ckpt_manifest *m, nv_ckpt_state *s,
                       nv_error *err);
// The whole model's fp32 masters of a step dir, for the tools (export, Hugging Face): builds
// the parameter table at tensor 1 into t/ids and loads s->master (allocated here). Free with
// nv_ckpt_masters_free whatever the result.
int nv_ckpt_load_masters(const char *step_dir, const nv_ckpt_manifest *m, nv_param_table *t,
                         nv_param_ids *ids, nv_ckpt_state *s, nv_error *err);
void nv_ckpt_masters_free(nv_param_table *t, nv_param_ids *ids, nv_ckpt_state *s);

// Writing by pieces: begin makes <root>/step_XXXXXXXX.tmp; write_files writes the files of
// (s->t's tensor rank, dp_rank) into it (model file when dp_rank == 0, optim file when
// s->zero1 or dp_rank == 0, moments when adam_m != NULL), fsynced, and reports them;
// commit writes the manifest, renames, replaces `latest`, prunes beyond keep.
int nv_ckpt_begin(const char *root, long step, char *tmp_dir, size_t n, nv_error *err);
int nv_ckpt_write_files(const char *tmp_dir, const nv_ckpt_state *s, int dp_rank, int dp_size,
                        nv_ckpt_file out[2], int *n_out, nv_error *err);
int nv_ckpt_commit(const char *root, const char *tmp_dir, const nv_config *cfg,
                   const nv_ckpt_state *s, int tensor, int data, int zero1,
                   const nv_ckpt_file *files, int n_files, int keep, nv_error *err);

// zlib crc32 and size of a file.
int nv_ckpt_file_crc(const char *path, uint32_t *crc, uint64_t *size, nv_error *err);
