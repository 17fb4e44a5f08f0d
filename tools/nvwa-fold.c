// nvwa-fold - MFE secondary structures (ViennaRNA) for every sequence of a corpus that has
// none: HDF5 shards in, the same shards out with /structure filled and the
// structure_source attribute set. One process or many (mpirun / srun ranks, or a SLURM
// array of independent tasks), threads within each; killed at any moment, the same command
// continues where it stopped, and the output is byte-identical to an uninterrupted run's.
//
// Flow: (1) rank 0 checks OUT and, for FASTA / dot-bracket / bpseq inputs, converts them
// into shards under OUT/.nvwa-fold/input once; (2) the plan: every input shard is read and
// checked (ranks share the shards) and cut into parts by the cost model, saved as
// OUT/.nvwa-fold/plan.bin and reused by later runs; (3) the parts not yet saved are dealt
// to the workers, longest processing time first; (4) each worker folds its parts with T
// threads, saving each part as it completes; (5) the shards are assembled, rank s % N
// taking shard s; (6) summary.json. tools/fold/fold.h has the details.
#include "tools/fold/fold.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <hdf5.h>
#include <omp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/shard.h"
#include "data/h5util.h"
#include "data/seqio.h"
#include "nv_build_config.h"
#include "train/dist.h"

// ---------------------------------------------------------------------------------------
// signals: the first SIGTERM / SIGUSR1 / SIGINT stops handing out work (saved parts stay,
// exit 75); a second one ends the process at once. A handler needs a global.

static volatile sig_atomic_t g_stop;

static void on_signal(int sig) {
    if (g_stop) {
        signal(sig, SIG_DFL);
        raise(sig);
    }
    g_stop = 1;
}

static void install_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
}

#define EXIT_STOPPED 75 // stopped by a signal before the end: rerun to continue

// ---------------------------------------------------------------------------------------
// errors across ranks: no MPI_Abort (one line, no launcher noise). Every rank passes its
// rc; if any failed, rank 0 prints the lowest failing rank's line and all exit 1.

static void agree_or_exit(const nv_dist *d, int rc, const nv_error *err) {
    int first = rc != 0 ? d->rank : d->world;
    NV_MPI_CHECK(d, MPI_Allreduce(MPI_IN_PLACE, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD));
    if (first == d->world) return;
    char msg[sizeof err->msg];
    snprintf(msg, sizeof msg, "%s", rc != 0 ? err->msg : "");
    if (first != 0 && d->rank == first) NV_MPI_CHECK(d, MPI_Send(msg, (int)sizeof msg, MPI_CHAR, 0, 16, MPI_COMM_WORLD));
    if (first != 0 && d->rank == 0)
        NV_MPI_CHECK(d, MPI_Recv(msg, (int)sizeof msg, MPI_CHAR, first, 16, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
    if (d->rank == 0) {
        if (d->world > 1 && first != 0) fprintf(stderr, "nvwa: error: rank %d: %s\n", first, msg);
        else fprintf(stderr, "nvwa: error: %s\n", msg);
        fflush(stderr);
    }
    nv_dist_finalize((nv_dist *)d);
    exit(1);
}

static void bcast_str(const nv_dist *d, char *buf, size_t n) { nv_bcast(d, MPI_COMM_WORLD, buf, n, 0); }

// Rank 0: inputs, OUT, staging. Then every rank learns indir and lists the names itself.
static void setup(const fold_opts *o, const nv_dist *d, fold_input_set *in) {
    nv_error err = {{0}};
    int rc = 0;
    if (d->rank == 0) {
        rc = fold_resolve_inputs(o, in, &err);
        if (rc == 0) rc = fold_check_outdir(o, in, &err);
        if (rc == 0 && !o->dry_run) rc = fold_make_workdir(o, &err);
        if (rc == 0 && in->staged && !o->dry_run) {
            fold_free_names(in);
            rc = fold_stage_inputs(o, in, &err);
        }
    }
    agree_or_exit(d, rc, &err);
    int staged = in->staged;
    NV_MPI_CHECK(d, MPI_Bcast(&staged, 1, MPI_INT, 0, MPI_COMM_WORLD));
    bcast_str(d, in->indir, sizeof in->indir);
    in->staged = staged;
    if (d->rank != 0 && !(staged && o->dry_run)) {
        if (staged) rc = fold_list_shards(in->indir, in, &err);
        else rc = fold_resolve_inputs(o, in, &err);
    }
    agree_or_exit(d, rc, &err);
}

// ---------------------------------------------------------------------------------------
// the plan: read every input shard (ranks share them), cut into parts, gather on rank 0

static void plan_local(const fold_opts *o, const fold_input_set *in, const nv_dist *d, fold_shard **shs,
                       uint64_t *n_shs, fold_part **parts, uint64_t *n_parts, int *rc, nv_error *err) {
    uint64_t cap = 0;
    *shs = nv_calloc(in->n / (uint32_t)d->world + 1, sizeof **shs);
    for (uint32_t i = (uint32_t)d->rank; i < in->n && *rc == 0; i += (uint32_t)d->world) {
        char path[4400];
        snprintf(path, sizeof path, "%s/%s", in->indir, in->names[i]);
        nv_corpus c;
        if (nv_shard_read(path, &c, 0, err) != 0) { *rc = -1; break; }
        fold_shard *sh = &(*shs)[(*n_shs)++];
        memset(sh, 0, sizeof *sh);
        snprintf(sh->name, sizeof sh->name, "%s", in->names[i]);
        struct stat st;
        sh->file_bytes = stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
        fold_plan_shard(&o->s, i, c.offsets, c.n_seqs, c.structure, sh, parts, n_parts, &cap);
        nv_corpus_free(&c);
    }
}

// Gather the ranks' shards and parts on rank 0 in shard order (shard i came from rank i % N).
static void plan_gather(const nv_dist *d, uint32_t n_total, fold_shard *shs, uint64_t n_shs, fold_part *parts,
                        uint64_t n_parts, fold_plan *p) {
    int W = d->world;
    long mine[2] = {(long)n_shs, (long)n_parts}, *all = nv_calloc((size_t)W * 2, sizeof(long));
    NV_MPI_CHECK(d, MPI_Gather(mine, 2, MPI_LONG, all, 2, MPI_LONG, 0, MPI_COMM_WORLD));
    int *cs = nv_calloc((size_t)W, sizeof(int)), *ds = nv_calloc((size_t)W, sizeof(int));
    int *cp = nv_calloc((size_t)W, sizeof(int)), *dp = nv_calloc((size_t)W, sizeof(int));
    long ts = 0, tp = 0;
    for (int r = 0; r < W; r++) {
        cs[r] = (int)(all[2 * r] * (long)sizeof(fold_shard));
        cp[r] = (int)(all[2 * r + 1] * (long)sizeof(fold_part));
        ds[r] = (int)(ts * (long)sizeof(fold_shard));
        dp[r] = (int)(tp * (long)sizeof(fold_part));
        ts += all[2 * r];
        tp += all[2 * r + 1];
    }
    fold_shard *gs = d->rank == 0 ? nv_malloc((size_t)(ts ? ts : 1) * sizeof *gs) : NULL;
    fold_part *gp = d->rank == 0 ? nv_malloc((size_t)(tp ? tp : 1) * sizeof *gp) : NULL;
    NV_MPI_CHECK(d, MPI_Gatherv(shs, (int)(n_shs * sizeof *shs), MPI_BYTE, gs, cs, ds, MPI_BYTE, 0, MPI_COMM_WORLD));
    NV_MPI_CHECK(d, MPI_Gatherv(parts, (int)(n_parts * sizeof *parts), MPI_BYTE, gp, cp, dp, MPI_BYTE, 0, MPI_COMM_WORLD));
    if (d->rank == 0) {
        p->n_shards = n_total;
        p->shards = nv_malloc((n_total ? n_total : 1) * sizeof *p->shards);
        p->parts = nv_malloc((size_t)(tp ? tp : 1) * sizeof *p->parts);
        long *next = nv_calloc((size_t)W, sizeof(long)); // next part of rank r
        for (uint32_t i = 0; i < n_total; i++) {
            int r = (int)(i % (uint32_t)W);
            fold_shard sh = gs[ds[r] / (int)sizeof(fold_shard) + i / (uint32_t)W];
            const fold_part *src = gp + dp[r] / (int)sizeof(fold_part) + next[r];
            next[r] += (long)sh.n_parts;
            sh.first_part = p->n_parts;
            memcpy(p->parts + p->n_parts, src, sh.n_parts * sizeof *src);
            p->n_parts += sh.n_parts;
            p->shards[i] = sh;
        }
        free(next);
    }
    free(gs);
    free(gp);
    free(all);
    free(cs);
    free(ds);
    free(cp);
    free(dp);
}

// A saved plan fits when the settings and the input shards (names, sizes) are the same.
static int plan_fits(const fold_plan *p, const fold_input_set *in, const char *settings, const char *path, nv_error *err) {
    if (strcmp(p->settings, settings) != 0)
        return nv_seterr(err, "%s was planned with other settings:\n  then: %s\n  now:  %s\n"
                              "---> HINT: rerun with the same options to continue, or fold into a new -o directory",
                         path, p->settings, settings);
    if (p->n_shards != in->n)
        return nv_seterr(err, "%s: planned for %u input shards, %u given\n"
                              "---> HINT: give the same inputs to continue, or fold into a new -o directory",
                         path, p->n_shards, in->n);
    for (uint32_t i = 0; i < in->n; i++) {
        char f[4400];
        struct stat st;
        snprintf(f, sizeof f, "%s/%s", in->indir, in->names[i]);
        if (strcmp(p->shards[i].name, in->names[i]) != 0 || stat(f, &st) != 0 ||
            (uint64_t)st.st_size != p->shards[i].file_bytes)
            return nv_seterr(err, "%s: input shard %s is not the one planned (%s, %llu bytes)\n"
                                  "---> HINT: give the same inputs to continue, or fold into a new -o directory",
                             path, f, p->shards[i].name, (unsigned long long)p->shards[i].file_bytes);
    }
    return 0;
}

static int plan_load(const char *path, fold_plan *p, nv_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return 1; // none yet
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = nv_malloc(n > 0 ? (size_t)n : 1);
    size_t got = fread(b, 1, (size_t)(n > 0 ? n : 0), f);
    fclose(f);
    int rc = fold_plan_unpack(b, got, p, path, err);
    free(b);
    return rc;
}

static void bcast_plan(const nv_dist *d, fold_plan *p) {
    size_t size = 0;
    void *b = d->rank == 0 ? fold_plan_pack(p, &size) : NULL;
    uint64_t sz = size;
    NV_MPI_CHECK(d, MPI_Bcast(&sz, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD));
    if (d->rank != 0) b = nv_malloc(sz);
    nv_bcast(d, MPI_COMM_WORLD, b, sz, 0);
    if (d->rank != 0) {
        nv_error e;
        if (fold_plan_unpack(b, sz, p, "plan broadcast", &e) != 0) nv_dist_abort(d, "%s", e.msg);
    }
    free(b);
}

static void make_plan(const fold_opts *o, const fold_input_set *in, const nv_dist *d, fold_plan *p) {
    char settings[1024], path[4300];
    fold_settings_string(&o->s, settings, sizeof settings);
    snprintf(path, sizeof path, "%s/" FOLD_WORKDIR "/plan.bin", o->outdir);
    nv_error err = {{0}};
    int rc = 0, have = 0;
    memset(p, 0, sizeof *p);
    if (d->rank == 0 && !o->dry_run) {
        int l = plan_load(path, p, &err);
        if (l < 0) rc = -1;
        else if (l == 0 && (rc = plan_fits(p, in, settings, path, &err)) == 0) have = 1;
        if (l == 0 && !have) fold_plan_free(p);
        if (rc == 0 && !have && o->array_count > 0)
            rc = nv_seterr(&err, "%s: no plan yet: an array task does not plan (its tasks could not agree)\n"
                                 "---> HINT: run 'nvwa-fold --plan-only ... -o %s' first (launch/nvwa-fold.sbatch does)",
                           path, o->outdir);
    }
    agree_or_exit(d, rc, &err);
    NV_MPI_CHECK(d, MPI_Bcast(&have, 1, MPI_INT, 0, MPI_COMM_WORLD));
    if (!have) {
        fold_shard *shs = NULL;
        fold_part *parts = NULL;
        uint64_t n_shs = 0, n_parts = 0;
        double t0 = nv_now();
        if (d->rank == 0 && !o->quiet)
            fprintf(stderr, "nvwa-fold: planning: reading and checking %u shard(s) on %d rank(s)\n", in->n, d->world);
        plan_local(o, in, d, &shs, &n_shs, &parts, &n_parts, &rc, &err);
        agree_or_exit(d, rc, &err);
        plan_gather(d, in->n, shs, n_shs, parts, n_parts, p);
        free(shs);
        free(parts);
        snprintf(p->settings, sizeof p->settings, "%s", settings);
        if (d->rank == 0 && !o->dry_run) {
            size_t size;
            void *b = fold_plan_pack(p, &size);
            rc = nv_write_file_atomic(path, b, size, &err);
            free(b);
        }
        agree_or_exit(d, rc, &err);
        if (d->rank == 0 && !o->quiet)
            fprintf(stderr, "nvwa-fold: planned %llu part(s) in %.1f s\n", (unsigned long long)p->n_parts, nv_now() - t0);
    }
    bcast_plan(d, p);
}

// ---------------------------------------------------------------------------------------
// what is done: finished shards (OUT/<name> exists) and saved parts

static int part_file_index(const char *name, unsigned *idx) {
    int k = 0;
    return sscanf(name, "part_%6u.bin%n", idx, &k) == 1 && k > 0 && name[k] == '\0';
}

// Temporary files of a killed run in dir: names holding `mark` (the writers' temporary
// suffixes). Only when no other process may be writing them (not an array task).
static void remove_stale(const char *dir, const char *mark) {
    DIR *dd = opendir(dir);
    if (!dd) return;
    struct dirent *e;
    char path[4400];
    while ((e = readdir(dd)) != NULL) {
        if (!strstr(e->d_name, mark)) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(dd);
}

static void scan_done(const fold_opts *o, const nv_dist *d, const fold_plan *p, uint8_t *shard_done, uint8_t *part_done) {
    memset(shard_done, 0, p->n_shards);
    memset(part_done, 0, p->n_parts ? p->n_parts : 1);
    if (d->rank == 0 && !o->dry_run && o->array_count == 0) { // a killed assembly's files
        char dir[4300];
        remove_stale(o->outdir, ".h5.tmp");  // .<shard>.tmp and the shard writer's .tmp.<pid>
        remove_stale(o->outdir, ".dbn.tmp."); // the .dbn writer's
        snprintf(dir, sizeof dir, "%s/" FOLD_WORKDIR "/done", o->outdir);
        remove_stale(dir, ".tmp.");
        snprintf(dir, sizeof dir, "%s/" FOLD_WORKDIR, o->outdir);
        remove_stale(dir, "plan.bin.tmp.");
    }
    if (d->rank == 0 && !o->dry_run) {
        for (uint32_t i = 0; i < p->n_shards; i++) {
            const fold_shard *sh = &p->shards[i];
            char path[4400], dir[4400], tmp[4800];
            snprintf(path, sizeof path, "%s/%s", o->outdir, sh->name);
            shard_done[i] = access(path, F_OK) == 0;
            if (shard_done[i] || sh->n_parts == 0) continue;
            fold_part_path(o->outdir, p, sh->first_part, path, sizeof path);
            snprintf(dir, sizeof dir, "%.*s", (int)(strrchr(path, '/') - path), path);
            DIR *dd = opendir(dir);
            if (!dd) { // first run: the shard's part directory
                nv_error e;
                if (fold_mkdirs(dir, &e) != 0) nv_dist_abort(d, "%s", e.msg);
                continue;
            }
            struct dirent *e;
            while ((e = readdir(dd)) != NULL) {
                unsigned idx;
                if (part_file_index(e->d_name, &idx) && idx < sh->n_parts) part_done[sh->first_part + idx] = 1;
                else if (strstr(e->d_name, ".tmp.") && o->array_count == 0) { // a killed run's partial write
                    snprintf(tmp, sizeof tmp, "%s/%s", dir, e->d_name);
                    unlink(tmp);
                }
            }
            closedir(dd);
        }
    }
    nv_bcast(d, MPI_COMM_WORLD, shard_done, p->n_shards, 0);
    nv_bcast(d, MPI_COMM_WORLD, part_done, p->n_parts ? p->n_parts : 1, 0);
}

// The parts of unfinished shards that are to be dealt (all of them for an array task, so
// that independent tasks agree; only the unsaved ones otherwise) and this worker's share.
static uint64_t my_parts(const fold_opts *o, const nv_dist *d, const fold_plan *p, const uint8_t *shard_done,
                         const uint8_t *part_done, uint64_t **mine, double *my_cost, double *max_load, uint64_t *my_seqs) {
    int W = d->world * (o->array_count ? o->array_count : 1);
    int me = o->array_index * d->world + d->rank;
    uint64_t n = 0, k = 0;
    uint64_t *idx = nv_malloc((p->n_parts ? p->n_parts : 1) * sizeof *idx);
    for (uint64_t i = 0; i < p->n_parts; i++)
        if (!shard_done[p->parts[i].shard] && (o->array_count || !part_done[i])) idx[n++] = i;
    int *owner = nv_malloc((n ? n : 1) * sizeof *owner);
    double *load = nv_calloc((size_t)W, sizeof *load);
    fold_assign(p->parts, idx, n, W, owner, load);
    *mine = nv_malloc((n ? n : 1) * sizeof **mine);
    *my_cost = 0;
    *my_seqs = 0;
    *max_load = 0;
    for (int w = 0; w < W; w++)
        if (load[w] > *max_load) *max_load = load[w];
    for (uint64_t j = 0; j < n; j++) {
        if (owner[j] != me || part_done[idx[j]]) continue;
        (*mine)[k++] = idx[j];
        *my_cost += p->parts[idx[j]].cost;
        *my_seqs += p->parts[idx[j]].n_fold;
    }
    free(idx);
    free(owner);
    free(load);
    return k;
}

// ---------------------------------------------------------------------------------------
// options

static void usage(FILE *f) {
    fprintf(f,
            "usage: nvwa-fold [options] -o OUTDIR INPUT...\n"
            "       mpirun -np N nvwa-fold [options] -o OUTDIR INPUT...\n"
            "\n"
            "Predict the minimum free energy secondary structure (ViennaRNA %s, RNAfold's model) of\n"
            "every sequence that has none, and write the shards again with /structure filled in\n"
            "(design section 4 codes) and the structure_source attribute set; everything else is\n"
            "copied. INPUT: a directory of shards, shard files (*.h5) of one directory, or FASTA /\n"
            "dot-bracket / bpseq files (plain or gzip; converted into shards under OUTDIR first).\n"
            "Output: OUTDIR/<shard name> per input shard, OUTDIR/summary.json.\n"
            "\n"
            "Under mpirun or srun the ranks share the work (sequences dealt by a cost model, a*n^3 +\n"
            "b*n^2 + c seconds for n nt), each with --threads threads. Killed or preempted, the same\n"
            "command continues where it stopped (parts of shards are saved as they finish; exit\n"
            "status 75 after SIGTERM/SIGUSR1/SIGINT), and the result is byte-identical to an\n"
            "uninterrupted run's. Work state lives in OUTDIR/.nvwa-fold.\n"
            "\n"
            "  -o, --output DIR       output directory (created if missing; not the input directory)\n"
            "      --max-len N        leave longer sequences unknown (255) (default 1000)\n"
            "      --refold           predict also where the input has a structure (default: keep it)\n"
            "  -T, --temperature C    folding temperature in Celsius (default 37)\n"
            "  -d, --dangles D        dangling-end model 0, 1, 2 or 3 as RNAfold -d (default 2)\n"
            "      --noLP             no lonely pairs (RNAfold --noLP)\n"
            "  -P, --params P         energy parameters: turner2004 (default), turner1999,\n"
            "                         andronescu2007, langdon2018, or a ViennaRNA .par file\n"
            "  -t, --threads N        threads per rank (default: OMP_NUM_THREADS, else all cores)\n"
            "      --part-seconds S   cost of one saved part in seconds of one core (default 300)\n"
            "      --array I/M        task I (0-based) of M independent tasks (a SLURM array): fold\n"
            "                         only this task's share; needs a plan (--plan-only) and a\n"
            "                         final run without --array to assemble the shards\n"
            "      --plan-only        read and plan the inputs, print the estimate, fold nothing\n"
            "      --dry-run          print the estimate (sequences, core-hours, time on N cores);\n"
            "                         writes nothing\n"
            "      --dbn              also write OUTDIR/<shard>.dbn (RNAfold's text: id, sequence,\n"
            "                         structure and MFE in kcal/mol) for every sequence with a structure\n"
            "  -f, --format FMT       sequence inputs: auto (default), fasta, dbn or bpseq\n"
            "  -s, --shard-size MB    sequence inputs: tokens per shard in MiB (default 256)\n"
            "      --drop-gaps        sequence inputs: remove '.' and '-' instead of reading them as N\n"
            "      --progress SEC     seconds between progress lines (default 10)\n"
            "  -q, --quiet            no progress or summary on stderr\n"
            "  -h, --help             this help\n"
            "\n"
            "ViennaRNA (https://www.tbi.univie.ac.at/RNA) is free for research, educational and\n"
            "commercial use and modification, not for redistribution for a fee, with credit to its\n"
            "authors (its COPYING). Cite: Lorenz et al., Algorithms Mol. Biol. 6:26 (2011).\n",
            fold_vienna_version());
}

// Parse into o; on a bad option return -1 with err set (rank 0 prints it), 1 for --help.
static double parse_num(const char *s, const char *opt, double lo, double hi, nv_error *err, int *bad) {
    char *e;
    errno = 0;
    double v = strtod(s, &e);
    if (errno || *e || e == s || !(v >= lo && v <= hi)) {
        nv_seterr(err, "%s: expected a number in [%g, %g], got '%s'", opt, lo, hi, s);
        *bad = 1;
    }
    return v;
}

static int parse_args(int argc, char **argv, fold_opts *o, nv_error *err) {
    memset(o, 0, sizeof *o);
    o->s = (fold_settings){.temperature = 37, .dangles = 2, .max_len = 1000, .part_seconds = 300};
    snprintf(o->s.params, sizeof o->s.params, "turner2004");
    o->fmt = NV_FMT_AUTO;
    o->shard_mb = 256;
    o->progress_every = 10;
    o->threads = omp_get_max_threads();
    enum { O_MAXLEN = 256, O_REFOLD, O_NOLP, O_PARTS, O_ARRAY, O_PLAN, O_DRY, O_DBN, O_GAPS, O_PROG };
    static const struct option longs[] = {
        {"output", required_argument, 0, 'o'},      {"max-len", required_argument, 0, O_MAXLEN},
        {"refold", no_argument, 0, O_REFOLD},         {"temperature", required_argument, 0, 'T'},
        {"dangles", required_argument, 0, 'd'},       {"noLP", no_argument, 0, O_NOLP},
        {"params", required_argument, 0, 'P'},        {"threads", required_argument, 0, 't'},
        {"part-seconds", required_argument, 0, O_PARTS}, {"array", required_argument, 0, O_ARRAY},
        {"plan-only", no_argument, 0, O_PLAN},        {"dry-run", no_argument, 0, O_DRY},
        {"dbn", no_argument, 0, O_DBN},               {"format", required_argument, 0, 'f'},
        {"shard-size", required_argument, 0, 's'},    {"drop-gaps", no_argument, 0, O_GAPS},
        {"progress", required_argument, 0, O_PROG},   {"quiet", no_argument, 0, 'q'},
        {"help", no_argument, 0, 'h'},                {0, 0, 0, 0}};
    int c, bad = 0;
    opterr = 0;
    while (!bad && (c = getopt_long(argc, argv, "o:T:d:P:t:f:s:qh", longs, NULL)) != -1) {
        switch (c) {
        case 'o': o->outdir = optarg; break;
        case O_MAXLEN: o->s.max_len = (long)parse_num(optarg, "--max-len", 1, 1e7, err, &bad); break;
        case O_REFOLD: o->s.refold = 1; break;
        case 'T': o->s.temperature = parse_num(optarg, "--temperature", -273.15, 150, err, &bad); break;
        case 'd': o->s.dangles = (int)parse_num(optarg, "--dangles", 0, 3, err, &bad); break;
        case O_NOLP: o->s.no_lp = 1; break;
        case 'P': snprintf(o->s.params, sizeof o->s.params, "%s", optarg); break;
        case 't': o->threads = (int)parse_num(optarg, "--threads", 1, 4096, err, &bad); break;
        case O_PARTS: o->s.part_seconds = parse_num(optarg, "--part-seconds", 1e-6, 1e7, err, &bad); break;
        case O_ARRAY:
            if (sscanf(optarg, "%d/%d", &o->array_index, &o->array_count) != 2 || o->array_count < 1 ||
                o->array_index < 0 || o->array_index >= o->array_count)
                bad = 1, nv_seterr(err, "--array: expected I/M with 0 <= I < M (e.g. 3/100), got '%s'", optarg);
            break;
        case O_PLAN: o->plan_only = 1; break;
        case O_DRY: o->dry_run = 1; break;
        case O_DBN: o->dbn = 1; break;
        case 'f': {
            int f = nv_seqfmt_parse(optarg);
            if (f < 0) bad = 1, nv_seterr(err, "--format: unknown format '%s' (auto, fasta, dbn, bpseq)", optarg);
            o->fmt = (nv_seqfmt)(f < 0 ? 0 : f);
            break;
        }
        case 's': o->shard_mb = parse_num(optarg, "--shard-size", 1e-6, 1e6, err, &bad); break;
        case O_GAPS: o->drop_gaps = 1; break;
        case O_PROG: o->progress_every = parse_num(optarg, "--progress", 0, 1e6, err, &bad); break;
        case 'q': o->quiet = 1; break;
        case 'h': return 1;
        default:
            bad = 1;
            nv_seterr(err, "unknown option or missing value: %s (try --help)", argv[optind - 1]);
        }
    }
    if (bad) return -1;
    o->inputs = argv + optind;
    o->n_inputs = argc - optind;
    if (!o->outdir) return nv_seterr(err, "missing -o OUTDIR (try --help)");
    if (o->n_inputs == 0) return nv_seterr(err, "no INPUT given: a shard directory, shard files or sequence files (try --help)");
    if ((o->dry_run || o->plan_only) && o->array_count) return nv_seterr(err, "--dry-run / --plan-only and --array do not go together");
    // a parameter file is part of the settings by its bytes, not only its name
    if (strchr(o->s.params, '/') || strchr(o->s.params, '.')) {
        FILE *f = fopen(o->s.params, "rb");
        if (!f) return nv_seterr(err, "--params %s: cannot read: %s", o->s.params, strerror(errno));
        char buf[65536];
        size_t n;
        uint32_t crc = 0;
        while ((n = fread(buf, 1, sizeof buf, f)) > 0) crc = crc ^ fold_crc32(buf, n) ^ (uint32_t)n;
        fclose(f);
        o->s.params_crc = crc ? crc : 1;
    }
    return 0;
}

// ---------------------------------------------------------------------------------------
// main

static void counts_of_plan(const fold_plan *p, fold_counts *k, double *cost) {
    memset(k, 0, sizeof *k);
    *cost = 0;
    for (uint32_t i = 0; i < p->n_shards; i++) fold_add_counts(k, &p->shards[i].counts), *cost += p->shards[i].cost;
}

static int dry_run_streamed(const fold_opts *o, const nv_dist *d) {
    nv_error err = {{0}};
    fold_counts k;
    double cost = 0;
    int rc = d->rank == 0 ? fold_estimate_stream(o, &k, &cost, &err) : 0;
    agree_or_exit(d, rc, &err);
    if (d->rank == 0) fold_print_estimate(o, &k, 0, cost, cost, (uint64_t)(cost / o->s.part_seconds) + 1, 0, 0, 0, 0);
    return 0;
}

// Assemble this rank's unfinished shards (s % N == rank) once all their parts are saved.
static int assemble_mine(const fold_opts *o, const nv_dist *d, const fold_input_set *in, const fold_plan *p,
                         const uint8_t *shard_done, nv_error *err) {
    for (uint32_t i = (uint32_t)d->rank; i < p->n_shards; i += (uint32_t)d->world) {
        if (shard_done[i]) continue;
        const fold_shard *sh = &p->shards[i];
        for (uint64_t k = sh->first_part; k < sh->first_part + sh->n_parts; k++) {
            char path[4400];
            fold_part_path(o->outdir, p, k, path, sizeof path);
            if (access(path, F_OK) != 0)
                return nv_seterr(err, "%s: part %llu of %s is missing after folding", path,
                                 (unsigned long long)(k - sh->first_part), sh->name);
        }
        if (fold_assemble(&o->s, p, i, in->indir, o->outdir, o->dbn, err) != 0) return -1;
    }
    return 0;
}

// Everything finished: every shard's counts, summary.json and the last line (rank 0).
static int finish(const fold_opts *o, const nv_dist *d, const fold_plan *p, const fold_run_stats *st, double t0,
                  nv_error *err) {
    fold_counts all = {0}, k;
    for (uint32_t i = 0; i < p->n_shards; i++) {
        if (fold_done_counts(o->outdir, p->shards[i].name, &k) != 0)
            return nv_seterr(err, "%s/" FOLD_WORKDIR "/done: no counts for finished shard %s", o->outdir, p->shards[i].name);
        fold_add_counts(&all, &k);
    }
    double dt = nv_now() - t0;
    if (fold_write_summary(o, d->world, p, &all, st, dt, err) != 0) return -1;
    if (!o->quiet)
        fprintf(stderr,
                "nvwa-fold: wrote %u shard(s) to %s: %llu sequences, %llu folded, %llu kept, %llu longer than %ld nt "
                "left unknown, %llu empty; this run folded %llu in %.1f s (%.1f seq/s, %d rank(s) x %d thread(s))\n",
                p->n_shards, o->outdir, (unsigned long long)all.seqs, (unsigned long long)all.folded,
                (unsigned long long)all.kept, (unsigned long long)all.too_long, o->s.max_len,
                (unsigned long long)all.empty, (unsigned long long)st->seqs_folded, dt,
                dt > 0 ? (double)st->seqs_folded / dt : 0, d->world, o->threads);
    return 0;
}

static void reduce_stats(const nv_dist *d, fold_run_stats *st) {
    long v[4] = {(long)st->parts_done, (long)st->seqs_folded, (long)st->tokens_folded, st->stopped};
    double s = st->fold_seconds;
    nv_allreduce_sum_long(d, MPI_COMM_WORLD, v, 4);
    nv_allreduce_sum_f64(d, MPI_COMM_WORLD, &s, 1);
    *st = (fold_run_stats){(uint64_t)v[0], (uint64_t)v[1], (uint64_t)v[2], s, v[3] > 0};
}

// Fold this worker's parts, then (not an array task) assemble; the exit status.
static int fold_phase(const fold_opts *o, const nv_dist *d, const fold_input_set *in, const fold_plan *p,
                      const uint8_t *shard_done, const uint64_t *mine, uint64_t n_mine, const fold_progress *prog,
                      double t0) {
    nv_error err = {{0}};
    fold_run_stats st;
    int rc = fold_run(&o->s, p, in->indir, o->outdir, mine, n_mine, o->threads, prog, &g_stop, &st, &err);
    agree_or_exit(d, rc, &err);
    reduce_stats(d, &st);
    if (st.stopped) {
        if (d->rank == 0)
            fprintf(stderr, "nvwa-fold: stopped by a signal; %llu part(s) saved in this run. Run the same command "
                            "to continue.\n", (unsigned long long)st.parts_done);
        return EXIT_STOPPED;
    }
    if (o->array_count) {
        if (d->rank == 0 && !o->quiet)
            fprintf(stderr, "nvwa-fold: array task %d/%d done (%llu part(s) folded). Once every task is done, run "
                            "nvwa-fold without --array to assemble the shards.\n",
                    o->array_index, o->array_count, (unsigned long long)st.parts_done);
        return 0;
    }
    agree_or_exit(d, assemble_mine(o, d, in, p, shard_done, &err), &err);
    agree_or_exit(d, d->rank == 0 ? finish(o, d, p, &st, t0, &err) : 0, &err);
    return 0;
}

// After the plan: what is done, this worker's share, the estimate, then the folding.
static int work(const fold_opts *o, const nv_dist *d, const fold_input_set *in, const fold_plan *p, double t0) {
    uint8_t *shard_done = nv_malloc(p->n_shards ? p->n_shards : 1), *part_done = nv_malloc(p->n_parts ? p->n_parts : 1);
    scan_done(o, d, p, shard_done, part_done);
    uint64_t *mine, my_seqs, parts_done = 0;
    uint32_t shards_done = 0;
    double my_cost, max_load, cost_all, left = 0;
    uint64_t n_mine = my_parts(o, d, p, shard_done, part_done, &mine, &my_cost, &max_load, &my_seqs);
    fold_counts k;
    counts_of_plan(p, &k, &cost_all);
    for (uint64_t i = 0; i < p->n_parts; i++) {
        int done = part_done[i] || shard_done[p->parts[i].shard];
        parts_done += (uint64_t)done;
        if (!done) left += p->parts[i].cost;
    }
    for (uint32_t i = 0; i < p->n_shards; i++) shards_done += shard_done[i];
    int workers = d->world * (o->array_count ? o->array_count : 1);
    if (d->rank == 0 && (o->dry_run || o->plan_only || !o->quiet))
        fold_print_estimate(o, &k, p->n_shards, cost_all, left, p->n_parts, parts_done, shards_done, workers, max_load);
    fold_progress prog = {.enabled = d->rank == 0 && !o->quiet, .rank = d->rank, .world = d->world,
                          .every = o->progress_every, .cost_total = my_cost, .seqs_total = my_seqs};
    int status = o->dry_run || o->plan_only ? 0 : fold_phase(o, d, in, p, shard_done, mine, n_mine, &prog, t0);
    free(mine);
    free(shard_done);
    free(part_done);
    return status;
}

int main(int argc, char **argv) {
    double t0 = nv_now();
    // no HDF5 teardown at exit: after a damaged input it prints "infinite loop closing
    // library" under our one error line (the files are closed by then or read-only)
    H5dont_atexit();
    nv_dist d;
    nv_error err = {{0}};
    if (nv_dist_init(&d, &argc, &argv, 1, &err) != 0) nv_die("%s", err.msg);
    fold_opts o;
    int status = parse_args(argc, argv, &o, &err);
    if (status != 0) {
        if (d.rank == 0 && status > 0) usage(stdout);
        if (d.rank == 0 && status < 0) fprintf(stderr, "nvwa: error: %s\n", err.msg);
        nv_dist_finalize(&d);
        return status > 0 ? 0 : 2;
    }
    install_signals();
    agree_or_exit(&d, fold_vienna_init(&o.s, &err), &err);
    fold_input_set in;
    memset(&in, 0, sizeof in);
    setup(&o, &d, &in);
    if (in.staged && o.dry_run) {
        status = dry_run_streamed(&o, &d);
    } else {
        fold_plan p;
        make_plan(&o, &in, &d, &p);
        status = work(&o, &d, &in, &p, t0);
        fold_plan_free(&p);
    }
    fold_free_names(&in);
    nv_dist_finalize(&d);
    return status;
}
