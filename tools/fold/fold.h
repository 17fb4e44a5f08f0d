// fold.h - nvwa-fold's parts: settings, the ViennaRNA call, the plan (cost model, parts,
// their assignment to workers), part files, the fold loop and shard assembly.
//
// The work of a corpus is cut into *parts*: contiguous runs of sequences of one input
// shard whose folding costs about --part-seconds of one core by the cost model. The cut
// depends only on the input and the settings, never on the number of ranks, so a run
// resumed at another size reuses every finished part. Each part's result (structure bytes
// and MFE energies) is a file under OUT/.nvwa-fold/parts/, written under a temporary
// name and renamed when complete; an output shard is assembled from the input shard and
// its parts, written under a temporary name and renamed when complete.
#pragma once
#include <signal.h>
#include <stdint.h>
#include <stdio.h>

#include "data/nv_util.h"
#include "data/seqio.h"

#define FOLD_WORKDIR ".nvwa-fold"
#define FOLD_NO_ENERGY INT32_MIN // energy of a sequence that was not folded

// What decides the result bytes and the cut into parts. Two runs into one OUT must agree.
typedef struct fold_settings {
    double temperature; // Celsius
    int dangles;        // 0..3 (RNAfold -d)
    int no_lp;          // RNAfold --noLP
    char params[512];   // turner2004 (default), turner1999, andronescu2007, langdon2018 or a file
    uint32_t params_crc; // of the parameter file's bytes (0 for the built-in sets)
    long max_len;       // longer sequences stay unknown (255)
    int refold;         // predict also where the input has a structure
    double part_seconds; // target cost of one part
} fold_settings;

// ---------------------------------------------------------------------------------------
// vienna.c: the ViennaRNA calls (the only file that includes its headers)

// Load the energy parameters (once per process, before any thread folds).
int fold_vienna_init(const fold_settings *s, nv_error *err);
const char *fold_vienna_version(void);
// "ViennaRNA 2.7.2 MFE, 37C, Turner 2004, dangles=2" (+ ", noLP"): the model, for
// structure_source and the summary.
void fold_model_string(const fold_settings *s, char *buf, size_t n);
// One line of every setting that changes result bytes or parts (stored in the plan).
void fold_settings_string(const fold_settings *s, char *buf, size_t n);
// MFE structure of tok[0..n) (ids 5..15; N and the ambiguity codes fold as N, which does
// not pair) into ss[0..n) as design section 4 codes; *energy in dcal/mol. `scratch` holds
// 2n+2 bytes. 0, or -1 with err set.
int fold_one(const fold_settings *s, const uint8_t *tok, uint64_t n, uint8_t *ss, int32_t *energy,
             char *scratch, nv_error *err);

// ---------------------------------------------------------------------------------------
// plan.c: cost model, parts, assignment, the plan file

// CPU seconds of one core to fold n nucleotides (fit of bench/bench_fold.sh on a 2-core EPYC):
// a*n^3 + b*n^2 + c. Only ratios matter for balance; the absolute value gives ETAs.
double fold_cost(uint64_t n);

enum { FOLD_SKIP_EMPTY = 0, FOLD_DO, FOLD_KEEP, FOLD_TOO_LONG };
// What happens to one sequence: FOLD_DO, FOLD_KEEP (known structure, no --refold),
// FOLD_TOO_LONG (would be folded but is longer than max_len: left as it is) or
// FOLD_SKIP_EMPTY (length 0).
int fold_decide(const fold_settings *s, const uint8_t *ss, uint64_t len);

typedef struct fold_counts {
    uint64_t seqs, tokens, folded, kept, too_long, empty, folded_tokens;
} fold_counts;

typedef struct fold_shard {
    char name[256];     // basename, same in IN and OUT
    uint64_t n_seqs, n_tokens, file_bytes;
    fold_counts counts;
    double cost;        // seconds of one core
    uint64_t first_part, n_parts;
} fold_shard;

typedef struct fold_part {
    uint32_t shard, index; // index within the shard
    uint32_t n_fold, pad;
    uint64_t seq_a, seq_b; // sequences [seq_a, seq_b)
    uint64_t tok_a, tok_b; // their tokens
    double cost;
} fold_part;

typedef struct fold_plan {
    char settings[1024];
    uint32_t n_shards;
    uint64_t n_parts;
    fold_shard *shards;
    fold_part *parts;
} fold_plan;

// Cut one shard (lengths from offsets, structure bytes for the decisions) into parts and
// count it. Parts are appended to *parts (growing *n_parts / *cap).
void fold_plan_shard(const fold_settings *s, uint32_t shard_index, const uint64_t *offsets, uint64_t n_seqs,
                     const uint8_t *structure, fold_shard *sh, fold_part **parts, uint64_t *n_parts, uint64_t *cap);
void fold_plan_free(fold_plan *p);
// The plan as bytes (for the file and MPI) and back; load checks magic, sizes and CRC.
void *fold_plan_pack(const fold_plan *p, size_t *size);
int fold_plan_unpack(const void *buf, size_t size, fold_plan *p, const char *what, nv_error *err);

// Longest processing time first: parts by falling cost (ties: plan order) each to the
// worker with the least cost so far (ties: lowest worker). owner[k] for the k-th of the
// `n` parts listed in idx. Deterministic; max load <= mean + the largest part.
void fold_assign(const fold_part *parts, const uint64_t *idx, uint64_t n, int workers, int *owner,
                 double *load);

// ---------------------------------------------------------------------------------------
// parts.c: part files and reading token ranges of a shard

void fold_part_path(const char *outdir, const fold_plan *p, uint64_t part, char *buf, size_t n);
// The input of a part: its tokens, stored structure bytes and offsets (rebased to 0).
typedef struct fold_input {
    uint8_t *tok, *ss;
    uint64_t *off; // [seq_b - seq_a + 1]
} fold_input;
int fold_read_input(const char *shard_path, const fold_part *pt, fold_input *in, nv_error *err);
void fold_input_free(fold_input *in);
// Write a part's result (structure bytes of its tokens, energies of its sequences) under a
// temporary name, fsync, rename. tok_crc: CRC-32 of the part's input tokens.
int fold_part_write(const char *path, const fold_plan *p, uint64_t part, uint32_t tok_crc, const uint8_t *ss,
                    const int32_t *energy, nv_error *err);
// Read and check a part file against the plan; ss gets tok_b - tok_a bytes, energy
// seq_b - seq_a values; *tok_crc the recorded CRC of the input tokens.
int fold_part_read(const char *path, const fold_plan *p, uint64_t part, uint8_t *ss, int32_t *energy,
                   uint32_t *tok_crc, nv_error *err);
uint32_t fold_crc32(const void *data, uint64_t n);
int fold_mkdirs(const char *path, nv_error *err);

// ---------------------------------------------------------------------------------------
// run.c: fold this worker's parts with T threads

typedef struct fold_progress {
    int enabled, rank, world;
    double every;            // seconds between lines
    double cost_total;       // this worker's planned cost (seconds of one core)
    uint64_t seqs_total;
} fold_progress;

typedef struct fold_run_stats {
    uint64_t parts_done, seqs_folded, tokens_folded;
    double fold_seconds;     // summed over threads
    int stopped;             // a signal asked to stop before the end
} fold_run_stats;

// Fold the listed parts (plan order) reading inputs from indir, writing part files under
// outdir. Stops early when *stop becomes non-zero.
int fold_run(const fold_settings *s, const fold_plan *p, const char *indir, const char *outdir,
             const uint64_t *mine, uint64_t n_mine, int threads, const fold_progress *pr,
             volatile sig_atomic_t *stop, fold_run_stats *st, nv_error *err);

// ---------------------------------------------------------------------------------------
// assemble.c: output shards

// Input shard + its parts -> OUT/<name> (temporary name, then rename), and OUT/<stem>.dbn
// with dbn != 0. The shard's counts go to OUT/.nvwa-fold/done/<stem>.counts before the rename.
int fold_assemble(const fold_settings *s, const fold_plan *p, uint32_t shard, const char *indir,
                  const char *outdir, int dbn, nv_error *err);
// Counts of a finished shard (from its .counts file); -1 if missing.
int fold_done_counts(const char *outdir, const char *name, fold_counts *c);

// ---------------------------------------------------------------------------------------
// options and inputs (nvwa-fold.c parses, inputs.c resolves)

typedef struct fold_opts {
    fold_settings s;
    const char *outdir;
    char **inputs;
    int n_inputs;
    nv_seqfmt fmt;
    double shard_mb;
    int drop_gaps, dbn, dry_run, plan_only, quiet, threads;
    int array_index, array_count; // --array I/M; count 0 = not an array task
    double progress_every;
} fold_opts;

// What every rank needs after setup: where the input shards are, and their names.
typedef struct fold_input_set {
    char indir[4096];
    char inputs_desc[2048]; // sequence inputs: "path (bytes) ..." for the staging check
    int staged;             // inputs were sequence files, converted under the work dir
    char **names;
    uint32_t n;
} fold_input_set;


// inputs.c: classify INPUT... (a shard directory, shard files of one directory, or
// sequence files: staged = 1), list a directory's *.h5 (sorted), convert sequence files
// into OUT/.nvwa-fold/input once (checked against the inputs on later runs), check OUT
// (not the input directory, no foreign shards), make the work directory.
int fold_resolve_inputs(const fold_opts *o, fold_input_set *in, nv_error *err);
int fold_list_shards(const char *dir, fold_input_set *in, nv_error *err);
void fold_free_names(fold_input_set *in);
int fold_stage_inputs(const fold_opts *o, fold_input_set *in, nv_error *err);
int fold_check_outdir(const fold_opts *o, const fold_input_set *in, nv_error *err);
int fold_make_workdir(const fold_opts *o, nv_error *err);
// --dry-run on sequence files: counts and cost straight from the records.
int fold_estimate_stream(const fold_opts *o, fold_counts *k, double *cost, nv_error *err);

// ---------------------------------------------------------------------------------------
// report.c

void fold_add_counts(fold_counts *a, const fold_counts *b);
// Counts, core-hours by the cost model, this launch's time (workers > 0) and ideal times
// on 64..4096 cores, on stderr. n_shards 0: sequence files.
void fold_print_estimate(const fold_opts *o, const fold_counts *k, uint32_t n_shards, double cost, double left,
                         uint64_t n_parts, uint64_t parts_done, uint32_t shards_done, int workers, double max_load);
// OUT/summary.json of a finished corpus (k: every shard's counts) and this run's figures.
int fold_write_summary(const fold_opts *o, int ranks, const fold_plan *p, const fold_counts *k,
                       const fold_run_stats *st, double seconds, nv_error *err);
