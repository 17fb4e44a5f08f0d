// nvwa-prep - FASTA / dot-bracket / bpseq (plain or gzip) -> HDF5 shards of design section 5.
//
// Shards are written under hidden pending names while the inputs are read and renamed to
// shard_NNNNN.h5 only when every input has been read without error: a failed run leaves
// nothing behind in OUTDIR, and a loader never sees half a corpus.
//
// --verify checks shard sets fully (data/verify.c): shards on threads, and under mpirun the
// shards split over the ranks (shard k on rank k % world); rank 0 prints one line per bad
// shard, in shard order.
#include "data/shard.h"
#include "data/rng.h"
#include "data/seqio.h"
#include "data/synth.h"
#include "data/vocab.h"
#include "nv_build_config.h"
#include "train/dist.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct prep_opts {
    const char *outdir;
    nv_seqfmt fmt;
    double shard_mb;
    int chunk_kb;
    long min_len, max_len; // max_len 0 = no limit
    int dedup, drop_gaps, quiet, force;
    long long synthetic; // < 0: read inputs
    unsigned long long seed;
    char **inputs;
    int n_inputs;
} prep_opts;

typedef struct prep_stats {
    uint64_t records, seqs, tokens, with_ss;
    uint64_t too_short, too_long, duplicate;
    uint64_t bytes_done, bytes_total; // bytes_total 0 = unknown (stdin)
    double t0, last_progress;
} prep_stats;

// ---------------------------------------------------------------------------------------
// exact-duplicate set: 128-bit hashes of token sequences, open addressing

typedef struct dedup_set {
    uint64_t *slots; // pairs (h1, h2); h1 == 0 marks an empty slot
    uint64_t cap, n;
} dedup_set;

static inline uint64_t rotl64(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

static void hash128(const uint8_t *p, uint64_t n, uint64_t *o1, uint64_t *o2) {
    uint64_t h1 = 0x9E3779B97F4A7C15ull ^ n, h2 = 0xC2B2AE3D27D4EB4Full + n;
    uint64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h1 = rotl64(h1 ^ (w * 0x87C37B91114253D5ull), 31) * 0x4CF5AD432745937Full;
        h2 = rotl64(h2 + (w * 0x52DCE729ull), 27) * 0x9E3779B97F4A7C15ull + h1;
    }
    uint64_t tail = 0;
    for (uint64_t k = 0; i + k < n; k++) tail |= (uint64_t)p[i + k] << (8 * k);
    h1 = nv_mix64(h1 ^ tail, 1);
    h2 = nv_mix64(h2 + tail, h1);
    *o1 = h1 ? h1 : 1;
    *o2 = h2;
}

// 1 if the sequence was seen before, else 0 (and it is remembered).
static int dedup_seen(dedup_set *d, const uint8_t *tok, uint64_t len) {
    if (2 * (d->n + 1) > d->cap) {
        uint64_t ncap = d->cap ? 2 * d->cap : 1 << 16;
        uint64_t *ns = nv_calloc(2 * ncap, sizeof(uint64_t));
        for (uint64_t i = 0; i < d->cap; i++) {
            if (!d->slots[2 * i]) continue;
            uint64_t j = d->slots[2 * i] & (ncap - 1);
            while (ns[2 * j]) j = (j + 1) & (ncap - 1);
            ns[2 * j] = d->slots[2 * i];
            ns[2 * j + 1] = d->slots[2 * i + 1];
        }
        free(d->slots);
        d->slots = ns;
        d->cap = ncap;
    }
    uint64_t h1, h2;
    hash128(tok, len, &h1, &h2);
    uint64_t j = h1 & (d->cap - 1);
    while (d->slots[2 * j]) {
        if (d->slots[2 * j] == h1 && d->slots[2 * j + 1] == h2) return 1;
        j = (j + 1) & (d->cap - 1);
    }
    d->slots[2 * j] = h1;
    d->slots[2 * j + 1] = h2;
    d->n++;
    return 0;
}

// ---------------------------------------------------------------------------------------
// output: pending shards, renamed into place at the end

typedef struct prep_out {
    const char *dir;
    nv_shard_opts opts;
    char **pending; // written shards under their hidden names
    int n;
    long pid;
} prep_out;

static void shard_names(const prep_out *o, int i, char *pending, char *final, size_t n) {
    snprintf(pending, n, "%s/.shard_%05d.h5.pending.%ld", o->dir, i, o->pid);
    snprintf(final, n, "%s/shard_%05d.h5", o->dir, i);
}

static void out_abort(prep_out *o) {
    for (int i = 0; i < o->n; i++) {
        unlink(o->pending[i]);
        free(o->pending[i]);
    }
    free(o->pending);
    o->pending = NULL;
    o->n = 0;
}

static int out_flush(prep_out *o, nv_corpus *c, nv_error *err) {
    if (c->n_seqs == 0) return 0;
    char pending[4096], final[4096];
    shard_names(o, o->n, pending, final, sizeof pending);
    if (nv_shard_write_ex(pending, c, &o->opts, err) != 0) return -1;
    o->pending = nv_realloc(o->pending, (size_t)(o->n + 1) * sizeof(char *));
    o->pending[o->n++] = nv_strdup(pending);
    nv_corpus_free(c);
    nv_corpus_init(c);
    return 0;
}

static int is_shard_name(const char *s) {
    int k = 0;
    return sscanf(s, "shard_%*5d.h5%n", &k) == 0 && k > 0 && s[k] == '\0';
}

// Make OUTDIR (and parents), check that it is a writable directory and holds no shards.
static int out_prepare(const prep_opts *o, nv_error *err) {
    char path[4096];
    if (snprintf(path, sizeof path, "%s", o->outdir) >= (int)sizeof path) return nv_seterr(err, "%s: path too long", o->outdir);
    for (char *p = path + 1;; p++) { // mkdir -p
        if (*p == '/' || *p == '\0') {
            char save = *p;
            *p = '\0';
            if (mkdir(path, 0755) != 0 && errno != EEXIST)
                return nv_seterr(err, "%s: cannot create output directory %s: %s", o->outdir, path, strerror(errno));
            *p = save;
            if (save == '\0') break;
        }
    }
    struct stat st;
    if (stat(o->outdir, &st) != 0 || !S_ISDIR(st.st_mode))
        return nv_seterr(err, "%s: output is not a directory", o->outdir);
    snprintf(path, sizeof path, "%s/.nvwa-prep-probe.%ld", o->outdir, (long)getpid());
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd < 0) return nv_seterr(err, "%s: output directory is not writable: %s", o->outdir, strerror(errno));
    close(fd);
    unlink(path);
    DIR *d = opendir(o->outdir);
    if (!d) return nv_seterr(err, "%s: cannot list output directory: %s", o->outdir, strerror(errno));
    struct dirent *e;
    int found = 0;
    while ((e = readdir(d)) != NULL)
        if (is_shard_name(e->d_name)) found = 1;
    closedir(d);
    if (found && !o->force)
        return nv_seterr(err, "%s: output directory already holds shards (shard_NNNNN.h5); use --force to replace them", o->outdir);
    return 0;
}

// Every input read: rename pending shards into place, drop stale ones beyond them (--force).
static int out_commit(prep_out *o, nv_error *err) {
    char pending[4096], final[4096];
    for (int i = 0; i < o->n; i++) {
        shard_names(o, i, pending, final, sizeof pending);
        if (rename(pending, final) != 0) {
            int e = errno;
            for (int k = 0; k < i; k++) { // undo: the run must leave all or nothing
                shard_names(o, k, pending, final, sizeof pending);
                unlink(final);
            }
            out_abort(o);
            return nv_seterr(err, "%s: cannot rename into place: %s", final, strerror(e));
        }
    }
    DIR *d = opendir(o->dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            int idx;
            if (is_shard_name(e->d_name) && sscanf(e->d_name, "shard_%d", &idx) == 1 && idx >= o->n) {
                snprintf(final, sizeof final, "%s/%s", o->dir, e->d_name);
                unlink(final);
            }
        }
        closedir(d);
    }
    for (int i = 0; i < o->n; i++) free(o->pending[i]);
    free(o->pending);
    o->pending = NULL;
    return 0;
}

// ---------------------------------------------------------------------------------------
// progress and summary

static void progress(const prep_opts *o, prep_stats *s, uint64_t cur_bytes, int final) {
    if (o->quiet) return;
    double now = nv_now();
    if (!final && now - s->last_progress < 1.0) return;
    s->last_progress = now;
    double dt = now - s->t0, mb = (double)(s->bytes_done + cur_bytes) / 1e6;
    double rate = dt > 0 ? mb / dt : 0;
    char eta[64] = "";
    if (s->bytes_total && rate > 0 && !final) {
        double left = ((double)s->bytes_total / 1e6 - mb) / rate;
        snprintf(eta, sizeof eta, ", ETA %.0f s", left > 0 ? left : 0);
    }
    fprintf(stderr, "nvwa-prep: %llu records, %.1f MB in, %.1f MB/s%s%s", (unsigned long long)s->records, mb, rate, eta,
            isatty(2) && !final ? "   \r" : "\n");
}


static int write_summary(const prep_opts *o, const prep_stats *s, int n_shards, nv_error *err) {
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    if (!f) return nv_seterr(err, "cannot build summary.json: %s", strerror(errno));
    double dt = nv_now() - s->t0;
    fprintf(f, "{\n  \"program\": \"nvwa-prep\",\n  \"version\": \"%s\",\n  \"inputs\": [", NV_VERSION);
    for (int i = 0; i < o->n_inputs; i++) {
        if (i) fputs(", ", f);
        nv_json_str(f, o->inputs[i]);
    }
    fprintf(f, "],\n");
    if (o->synthetic >= 0) fprintf(f, "  \"synthetic\": %lld,\n  \"seed\": %llu,\n", o->synthetic, o->seed);
    fprintf(f, "  \"format\": \"%s\",\n  \"shards\": %d,\n  \"records\": %llu,\n  \"sequences\": %llu,\n"
               "  \"tokens\": %llu,\n  \"with_structure\": %llu,\n"
               "  \"dropped\": {\"too_short\": %llu, \"too_long\": %llu, \"duplicate\": %llu},\n"
               "  \"min_len\": %ld,\n  \"max_len\": %ld,\n  \"chunk_kb\": %d,\n  \"dedup\": %s,\n  \"drop_gaps\": %s,\n"
               "  \"input_bytes\": %llu,\n  \"seconds\": %.3f\n}\n",
            nv_seqfmt_name(o->fmt), n_shards, (unsigned long long)s->records, (unsigned long long)s->seqs,
            (unsigned long long)s->tokens, (unsigned long long)s->with_ss, (unsigned long long)s->too_short,
            (unsigned long long)s->too_long, (unsigned long long)s->duplicate, o->min_len, o->max_len, o->chunk_kb,
            o->dedup ? "true" : "false", o->drop_gaps ? "true" : "false", (unsigned long long)s->bytes_done, dt);
    fclose(f);
    char path[4096];
    snprintf(path, sizeof path, "%s/summary.json", o->outdir);
    int rc = nv_write_file_atomic(path, buf, size, err);
    free(buf);
    return rc;
}

// ---------------------------------------------------------------------------------------
// main work

// Filter one record and add it to the shard being built; flush the shard when full.
static int take(const prep_opts *o, prep_stats *s, dedup_set *d, prep_out *out, nv_corpus *cur, const char *id,
                const uint8_t *tok, const uint8_t *ss, uint64_t len, nv_error *err) {
    s->records++;
    if ((long)len < o->min_len) { s->too_short++; return 0; }
    if (o->max_len > 0 && (long)len > o->max_len) { s->too_long++; return 0; }
    if (o->dedup && dedup_seen(d, tok, len)) { s->duplicate++; return 0; }
    uint64_t before = cur->n_with_structure;
    nv_corpus_append(cur, id, tok, ss, len);
    s->seqs++;
    s->tokens += len;
    s->with_ss += cur->n_with_structure - before;
    if ((double)cur->n_tokens >= o->shard_mb * 1048576.0) return out_flush(out, cur, err);
    return 0;
}

static int run(const prep_opts *o, prep_stats *s, prep_out *out, nv_error *err) {
    dedup_set d = {0};
    nv_corpus cur;
    nv_corpus_init(&cur);
    int rc = 0;
    if (o->synthetic >= 0) {
        nv_synth_params p;
        nv_synth_defaults(&p, (uint64_t)o->synthetic, o->seed);
        if (o->min_len > 1) p.min_len = (int)o->min_len;
        if (o->max_len > 0) p.max_len = (int)o->max_len;
        nv_corpus one;
        for (uint64_t i = 0; i < (uint64_t)o->synthetic && rc == 0; i++) {
            nv_corpus_init(&one);
            nv_synth_range(&one, &p, i, 1);
            rc = take(o, s, &d, out, &cur, one.ids[0], one.tokens, one.n_with_structure ? one.structure : NULL,
                      one.n_tokens, err);
            nv_corpus_free(&one);
            if ((i & 1023) == 0) progress(o, s, 0, 0);
        }
    } else {
        for (int f = 0; f < o->n_inputs && rc == 0; f++) {
            nv_seqreader *r = nv_seqreader_open(o->inputs[f], o->fmt, o->drop_gaps, err);
            if (!r) { rc = -1; break; }
            nv_seqrec rec;
            int k;
            while ((k = nv_seqreader_next(r, &rec, err)) > 0) {
                if (take(o, s, &d, out, &cur, rec.id, rec.tok, rec.ss, rec.len, err) != 0) { k = -1; break; }
                if ((s->records & 1023) == 0) progress(o, s, nv_seqreader_offset(r), 0);
            }
            if (k < 0) rc = -1;
            else s->bytes_done += nv_seqreader_offset(r);
            nv_seqreader_close(r);
        }
    }
    if (rc == 0 && s->seqs == 0)
        rc = nv_seterr(err, "%s: no sequence left to write (%llu records: %llu too short, %llu too long, %llu duplicates)",
                       o->synthetic >= 0 ? "--synthetic" : o->inputs[0], (unsigned long long)s->records,
                       (unsigned long long)s->too_short, (unsigned long long)s->too_long, (unsigned long long)s->duplicate);
    if (rc == 0) rc = out_flush(out, &cur, err);
    nv_corpus_free(&cur);
    free(d.slots);
    return rc;
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: nvwa-prep [options] -o OUTDIR INPUT...\n"
            "       nvwa-prep [options] -o OUTDIR --synthetic N [--seed S]\n"
            "       nvwa-prep --verify [--threads N] SHARDS...     (also under mpirun)\n"
            "\n"
            "Convert FASTA, dot-bracket (three-line, RNAfold output, bpRNA .dbn) or bpseq files,\n"
            "plain or gzip-compressed ('-' = stdin), into HDF5 shards OUTDIR/shard_00000.h5 ...\n"
            "(design section 5) and OUTDIR/summary.json. On any input error nothing is left in OUTDIR.\n"
            "\n"
            "  -o, --output DIR       output directory (created if missing)\n"
            "  -f, --format FMT       auto (default), fasta, dbn or bpseq\n"
            "  -s, --shard-size MB    tokens per shard in MiB (default 256); a sequence never spans shards\n"
            "      --chunk-kb N       HDF5 chunk of /tokens and /structure in KiB (default %d): a random\n"
            "                         read inflates whole chunks; docs/data.md has the measurements\n"
            "      --min-len N        drop sequences shorter than N (default 1)\n"
            "      --max-len N        drop sequences longer than N (default: no limit)\n"
            "      --dedup            drop exact sequence duplicates (128-bit hash of the tokens)\n"
            "      --drop-gaps        remove '.' and '-' instead of reading them as N\n"
            "      --synthetic N      write N synthetic RNA-like sequences instead of reading inputs\n"
            "      --seed S           seed of --synthetic (default 1)\n"
            "      --force            replace shards already in OUTDIR\n"
            "  -q, --quiet            no progress or summary on stderr\n"
            "  -h, --help             this help\n"
            "\n"
            "verification (nothing is written):\n"
            "      --verify           check every shard of SHARDS (shard files, directories of *.h5,\n"
            "                         globs) fully: all checksums, offsets, token ids, structure bytes\n"
            "                         and brackets, counts. One line per bad shard on stdout; exit 1\n"
            "                         if any. Under mpirun the shards are split over the ranks.\n"
            "      --threads N        shards verified at once per rank (default: cores / ranks per node)\n",
            NV_SHARD_CHUNK_KB);
}

// ---------------------------------------------------------------------------------------
// --verify

typedef struct vres {
    char msg[sizeof(nv_error)]; // empty when the shard is good
    uint64_t seqs, tokens;
} vres;

typedef struct vpool {
    char **paths;
    size_t n;
    int rank, world;
    vres *res;
    size_t next;         // next of this rank's shards to take
    pthread_mutex_t mu;
} vpool;

static void *verify_worker(void *arg) {
    vpool *p = arg;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        size_t k = p->next;
        p->next += (size_t)p->world;
        pthread_mutex_unlock(&p->mu);
        if (k >= p->n) return NULL;
        nv_shard_info h;
        nv_error err;
        if (nv_shard_verify(p->paths[k], &h, &err) != 0) {
            char *nl = strchr(err.msg, '\n'); // one line per shard: the hint goes
            if (nl) *nl = 0;
            snprintf(p->res[k].msg, sizeof p->res[k].msg, "%s", err.msg[0] ? err.msg : "unknown error");
        } else {
            p->res[k].seqs = h.n_seqs;
            p->res[k].tokens = h.n_tokens;
        }
    }
}

static int cores_available(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static int env_world(void) {
    const char *keys[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "PMI_SIZE", "SLURM_NTASKS"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const char *v = getenv(keys[i]);
        if (v && atoi(v) > 0) return atoi(v);
    }
    return 1;
}

static int run_verify(int argc, char **argv, int threads, int quiet) {
    nv_dist d;
    nv_error err;
    const int mpi = env_world() > 1; // MPI only under a launcher: plain runs need no MPI
    memset(&d, 0, sizeof d);
    d.world = d.local_size = 1;
    if (mpi && nv_dist_init(&d, &argc, &argv, 1, &err) != 0) nv_die("%s", err.msg);
    if (optind >= argc) nv_die_code(2, "--verify: no SHARDS given (shard files, directories or globs)");
    char **paths = NULL;
    size_t n = 0;
    for (int a = optind; a < argc; a++) { // every rank lists the same shards in the same order
        char **pa;
        size_t na;
        if (nv_shard_paths(argv[a], &pa, &na, &err) != 0) {
            if (d.rank == 0) fprintf(stderr, "nvwa: error: %s\n", err.msg);
            if (mpi) nv_dist_finalize(&d);
            nv_paths_free(paths, n);
            return 1;
        }
        paths = nv_realloc(paths, (n + na) * sizeof(char *));
        memcpy(paths + n, pa, na * sizeof(char *));
        n += na;
        free(pa);
    }
    if (threads <= 0) threads = cores_available() / (d.local_size > 0 ? d.local_size : 1);
    if (threads < 1) threads = 1;
    const double t0 = nv_now();
    vpool p = {paths, n, d.rank, d.world, nv_calloc(n ? n : 1, sizeof(vres)), (size_t)d.rank,
               PTHREAD_MUTEX_INITIALIZER};
    pthread_t *th = nv_malloc(sizeof(pthread_t) * (size_t)threads);
    for (int t = 0; t < threads; t++)
        if (pthread_create(&th[t], NULL, verify_worker, &p) != 0) nv_die("--verify: cannot start thread %d", t);
    for (int t = 0; t < threads; t++) pthread_join(th[t], NULL);
    free(th);
    // rank 0 gathers: each entry is non-zero on its owner only, so MAX (bytes) / SUM give it
    vres *all = p.res;
    if (mpi) {
        all = d.rank == 0 ? nv_calloc(n ? n : 1, sizeof(vres)) : NULL;
        for (size_t k = 0; k < n; k++) {
            NV_MPI_CHECK(&d, MPI_Reduce(p.res[k].msg, d.rank == 0 ? all[k].msg : NULL, (int)sizeof p.res[k].msg,
                                        MPI_UNSIGNED_CHAR, MPI_MAX, 0, d.comm_world));
            NV_MPI_CHECK(&d, MPI_Reduce(&p.res[k].seqs, d.rank == 0 ? &all[k].seqs : NULL, 2, MPI_UINT64_T, MPI_SUM,
                                        0, d.comm_world));
        }
    }
    int bad = 0;
    if (d.rank == 0) {
        uint64_t seqs = 0, toks = 0;
        for (size_t k = 0; k < n; k++) {
            if (all[k].msg[0]) {
                printf("%s\n", all[k].msg);
                bad++;
            }
            seqs += all[k].seqs;
            toks += all[k].tokens;
        }
        fflush(stdout);
        if (!quiet)
            fprintf(stderr, "nvwa-prep: verified %zu shard(s), %llu sequences, %llu tokens in %.2f s (%d rank(s) x %d "
                            "thread(s)): %s%d bad\n", n, (unsigned long long)seqs, (unsigned long long)toks,
                    nv_now() - t0, d.world, threads, bad ? "" : "all good, ", bad);
    }
    if (mpi) {
        NV_MPI_CHECK(&d, MPI_Bcast(&bad, 1, MPI_INT, 0, d.comm_world));
        if (all != p.res) free(all);
        nv_dist_finalize(&d);
    }
    free(p.res);
    nv_paths_free(paths, n);
    return bad ? 1 : 0;
}

static long parse_long(const char *s, const char *opt, long lo) {
    char *e;
    errno = 0;
    long v = strtol(s, &e, 10);
    if (errno || *e || e == s || v < lo) nv_die_code(2, "%s: expected an integer >= %ld, got '%s'", opt, lo, s);
    return v;
}

int main(int argc, char **argv) {
    prep_opts o = {.fmt = NV_FMT_AUTO, .shard_mb = 256, .chunk_kb = NV_SHARD_CHUNK_KB, .min_len = 1,
                   .synthetic = -1, .seed = 1};
    enum { OPT_MIN = 256, OPT_MAX, OPT_DEDUP, OPT_GAPS, OPT_SYN, OPT_SEED, OPT_FORCE, OPT_CHUNK, OPT_VERIFY,
           OPT_THREADS };
    int verify = 0, threads = 0;
    static const struct option longs[] = {
        {"output", required_argument, 0, 'o'},   {"format", required_argument, 0, 'f'},
        {"shard-size", required_argument, 0, 's'}, {"min-len", required_argument, 0, OPT_MIN},
        {"max-len", required_argument, 0, OPT_MAX}, {"dedup", no_argument, 0, OPT_DEDUP},
        {"drop-gaps", no_argument, 0, OPT_GAPS},  {"synthetic", required_argument, 0, OPT_SYN},
        {"seed", required_argument, 0, OPT_SEED}, {"force", no_argument, 0, OPT_FORCE},
        {"quiet", no_argument, 0, 'q'},           {"help", no_argument, 0, 'h'},
        {"chunk-kb", required_argument, 0, OPT_CHUNK}, {"verify", no_argument, 0, OPT_VERIFY},
        {"threads", required_argument, 0, OPT_THREADS}, {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "o:f:s:qh", longs, NULL)) != -1) {
        switch (c) {
        case 'o': o.outdir = optarg; break;
        case 'f': {
            int f = nv_seqfmt_parse(optarg);
            if (f < 0) nv_die_code(2, "--format: unknown format '%s' (auto, fasta, dbn, bpseq)", optarg);
            o.fmt = (nv_seqfmt)f;
            break;
        }
        case 's': {
            char *e;
            o.shard_mb = strtod(optarg, &e);
            if (*e || e == optarg || !(o.shard_mb > 0)) nv_die_code(2, "--shard-size: expected a positive size in MB, got '%s'", optarg);
            break;
        }
        case OPT_MIN: o.min_len = parse_long(optarg, "--min-len", 0); break;
        case OPT_MAX: o.max_len = parse_long(optarg, "--max-len", 1); break;
        case OPT_DEDUP: o.dedup = 1; break;
        case OPT_GAPS: o.drop_gaps = 1; break;
        case OPT_SYN: o.synthetic = parse_long(optarg, "--synthetic", 1); break;
        case OPT_SEED: o.seed = (unsigned long long)parse_long(optarg, "--seed", 0); break;
        case OPT_FORCE: o.force = 1; break;
        case OPT_CHUNK: o.chunk_kb = (int)parse_long(optarg, "--chunk-kb", 1); break;
        case OPT_VERIFY: verify = 1; break;
        case OPT_THREADS: threads = (int)parse_long(optarg, "--threads", 1); break;
        case 'q': o.quiet = 1; break;
        case 'h': usage(stdout); return 0;
        default: fprintf(stderr, "nvwa-prep: try --help\n"); return 2;
        }
    }
    if (o.chunk_kb > 65536) nv_die_code(2, "--chunk-kb %d: at most 65536 (64 MiB)", o.chunk_kb);
    if (verify) {
        if (o.outdir || o.synthetic >= 0) nv_die_code(2, "--verify checks shards: give no -o or --synthetic");
        return run_verify(argc, argv, threads, o.quiet);
    }
    o.inputs = argv + optind;
    o.n_inputs = argc - optind;
    if (!o.outdir) nv_die_code(2, "missing -o OUTDIR (try --help)");
    if (o.synthetic < 0 && o.n_inputs == 0) nv_die_code(2, "no INPUT files (or --synthetic N) given (try --help)");
    if (o.synthetic >= 0 && o.n_inputs > 0) nv_die_code(2, "--synthetic writes generated data: give no INPUT files");
    if (o.max_len > 0 && o.max_len < o.min_len) nv_die_code(2, "--max-len %ld is below --min-len %ld", o.max_len, o.min_len);

    nv_error err;
    if (out_prepare(&o, &err) != 0) nv_die("%s", err.msg);
    prep_stats s = {0};
    for (int i = 0; i < o.n_inputs; i++) {
        struct stat st;
        if (strcmp(o.inputs[i], "-") == 0 || stat(o.inputs[i], &st) != 0 || !S_ISREG(st.st_mode)) {
            s.bytes_total = 0;
            break;
        }
        s.bytes_total += (uint64_t)st.st_size;
    }
    s.t0 = s.last_progress = nv_now();
    prep_out out = {.dir = o.outdir, .opts = {o.chunk_kb}, .pid = (long)getpid()};
    if (run(&o, &s, &out, &err) != 0) {
        out_abort(&out);
        if (!o.quiet && isatty(2)) fputc('\n', stderr);
        nv_die("%s", err.msg);
    }
    int n_shards = out.n;
    if (out_commit(&out, &err) != 0 || write_summary(&o, &s, n_shards, &err) != 0) nv_die("%s", err.msg);
    progress(&o, &s, 0, 1);
    if (!o.quiet)
        fprintf(stderr,
                "nvwa-prep: wrote %d shard(s) to %s: %llu sequences, %llu tokens, %llu with structure; "
                "dropped %llu too short, %llu too long, %llu duplicates (of %llu records) in %.1f s\n",
                n_shards, o.outdir, (unsigned long long)s.seqs, (unsigned long long)s.tokens,
                (unsigned long long)s.with_ss, (unsigned long long)s.too_short, (unsigned long long)s.too_long,
                (unsigned long long)s.duplicate, (unsigned long long)s.records, nv_now() - s.t0);
    return 0;
}
