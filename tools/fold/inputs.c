// inputs.c - nvwa-fold's inputs and output directory: shards of one directory or sequence
// files (converted once into OUT/.nvwa-fold/input), the checks on OUT, the work directory,
// and the --dry-run estimate straight from sequence files.
#include "tools/fold/fold.h"

#include <dirent.h>
#include <errno.h>
#include <glob.h>
#include <hdf5.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/shard.h"
#include "data/h5util.h"


static int is_hdf5(const char *path) {
    size_t k = strlen(path);
    if (k > 3 && strcmp(path + k - 3, ".h5") == 0) return 1;
    nv_h5_quiet q = nv_h5_quiet_begin();
    int r = H5Fis_hdf5(path) > 0;
    nv_h5_quiet_end(q);
    return r;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void add_name(fold_input_set *in, const char *name) {
    in->names = nv_realloc(in->names, (in->n + 1) * sizeof(char *));
    in->names[in->n++] = nv_strdup(name);
}

void fold_free_names(fold_input_set *in) {
    for (uint32_t i = 0; i < in->n; i++) free(in->names[i]);
    free(in->names);
    in->names = NULL;
    in->n = 0;
}

// The *.h5 files of dir, sorted by name.
int fold_list_shards(const char *dir, fold_input_set *in, nv_error *err) {
    char pat[4200];
    snprintf(pat, sizeof pat, "%s/*.h5", dir);
    glob_t g;
    int rc = glob(pat, 0, NULL, &g);
    if (rc != 0 || g.gl_pathc == 0) {
        if (rc == 0) globfree(&g);
        return nv_seterr(err, "%s: directory holds no *.h5 shards\n---> HINT: make shards with nvwa-prep, or give "
                              "FASTA / dot-bracket files", dir);
    }
    qsort(g.gl_pathv, g.gl_pathc, sizeof(char *), cmp_str);
    for (size_t i = 0; i < g.gl_pathc; i++) add_name(in, strrchr(g.gl_pathv[i], '/') + 1);
    globfree(&g);
    return 0;
}

static int same_dir(const char *a, const char *b) {
    char ra[PATH_MAX], rb[PATH_MAX];
    return realpath(a, ra) && realpath(b, rb) && strcmp(ra, rb) == 0;
}

// Classify the inputs. Shards: indir and names. Sequence files: staged = 1.
int fold_resolve_inputs(const fold_opts *o, fold_input_set *in, nv_error *err) {
    struct stat st;
    if (o->n_inputs == 1 && stat(o->inputs[0], &st) == 0 && S_ISDIR(st.st_mode)) {
        snprintf(in->indir, sizeof in->indir, "%s", o->inputs[0]);
        return fold_list_shards(in->indir, in, err);
    }
    int n_h5 = 0;
    for (int i = 0; i < o->n_inputs; i++) {
        if (strcmp(o->inputs[i], "-") != 0 && stat(o->inputs[i], &st) != 0)
            return nv_seterr(err, "%s: cannot read input: %s", o->inputs[i], strerror(errno));
        if (strcmp(o->inputs[i], "-") != 0 && S_ISDIR(st.st_mode))
            return nv_seterr(err, "%s: a directory among several inputs: give one directory of shards, or files", o->inputs[i]);
        n_h5 += strcmp(o->inputs[i], "-") != 0 && is_hdf5(o->inputs[i]);
    }
    if (n_h5 > 0 && n_h5 < o->n_inputs)
        return nv_seterr(err, "inputs mix HDF5 shards and sequence files: fold them in two runs, or convert the "
                              "sequence files with nvwa-prep first");
    if (n_h5 == 0) {
        in->staged = 1;
        int w = 0;
        for (int i = 0; i < o->n_inputs && w < (int)sizeof in->inputs_desc; i++) {
            long long size = strcmp(o->inputs[i], "-") == 0 ? -1 : (stat(o->inputs[i], &st), (long long)st.st_size);
            w += snprintf(in->inputs_desc + w, sizeof in->inputs_desc - (size_t)w, "%s%s (%lld bytes)", i ? ", " : "",
                          o->inputs[i], size);
        }
        return 0;
    }
    for (int i = 0; i < o->n_inputs; i++) {
        char dir[4096];
        const char *slash = strrchr(o->inputs[i], '/');
        snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - o->inputs[i]) : 1, slash ? o->inputs[i] : ".");
        if (i == 0) snprintf(in->indir, sizeof in->indir, "%s", dir);
        else if (!same_dir(dir, in->indir))
            return nv_seterr(err, "%s: input shards must lie in one directory (the first is in %s)", o->inputs[i], in->indir);
        add_name(in, slash ? slash + 1 : o->inputs[i]);
    }
    qsort(in->names, in->n, sizeof(char *), cmp_str);
    for (uint32_t i = 1; i < in->n; i++)
        if (strcmp(in->names[i], in->names[i - 1]) == 0) return nv_seterr(err, "%s: given twice", in->names[i]);
    return 0;
}

// ---------------------------------------------------------------------------------------
// staging: sequence files -> OUT/.nvwa-fold/input/shard_NNNNN.h5, once

static int stage_flush(const char *dir, int *k, nv_corpus *c, nv_error *err) {
    if (c->n_seqs == 0) return 0;
    char path[4400];
    snprintf(path, sizeof path, "%s/shard_%05d.h5", dir, (*k)++);
    int rc = nv_shard_write(path, c, err);
    nv_corpus_free(c);
    nv_corpus_init(c);
    return rc;
}

static int stage_read(const fold_opts *o, const char *dir, nv_error *err) {
    nv_corpus c;
    nv_corpus_init(&c);
    int k = 0, rc = 0;
    for (int f = 0; f < o->n_inputs && rc == 0; f++) {
        nv_seqreader *r = nv_seqreader_open(o->inputs[f], o->fmt, o->drop_gaps, err);
        if (!r) { rc = -1; break; }
        nv_seqrec rec;
        int got;
        while ((got = nv_seqreader_next(r, &rec, err)) > 0) {
            nv_corpus_append(&c, rec.id, rec.tok, rec.ss, rec.len);
            if ((double)c.n_tokens >= o->shard_mb * 1048576.0 && stage_flush(dir, &k, &c, err) != 0) { got = -1; break; }
        }
        if (got < 0) rc = -1;
        nv_seqreader_close(r);
    }
    if (rc == 0 && k == 0 && c.n_seqs == 0) rc = nv_seterr(err, "%s: no sequences in the input", o->inputs[0]);
    if (rc == 0) rc = stage_flush(dir, &k, &c, err);
    nv_corpus_free(&c);
    return rc;
}

static void rm_tree_flat(const char *dir) { // the staging directory holds files only
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char path[4400];
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2]))) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

int fold_stage_inputs(const fold_opts *o, fold_input_set *in, nv_error *err) {
    char dir[4000], tmp[4300], desc[4400];
    snprintf(dir, sizeof dir, "%s/" FOLD_WORKDIR "/input", o->outdir);
    snprintf(desc, sizeof desc, "%s/inputs.txt", dir);
    snprintf(in->indir, sizeof in->indir, "%s", dir);
    FILE *f = fopen(desc, "r");
    if (f) { // converted by an earlier run: the same inputs?
        char old[2048] = "";
        size_t n = fread(old, 1, sizeof old - 1, f);
        fclose(f);
        old[n] = '\0';
        if (n > 0 && old[n - 1] == '\n') old[n - 1] = '\0';
        if (strcmp(old, in->inputs_desc) != 0)
            return nv_seterr(err, "%s was started from other inputs (%s), not %s\n"
                                  "---> HINT: use a new -o directory for other inputs", o->outdir, old, in->inputs_desc);
        return fold_list_shards(dir, in, err);
    }
    snprintf(tmp, sizeof tmp, "%s.tmp", dir);
    rm_tree_flat(tmp);
    if (fold_mkdirs(tmp, err) != 0) return -1;
    if (!o->quiet) fprintf(stderr, "nvwa-fold: converting %d input file(s) into shards under %s\n", o->n_inputs, dir);
    char line[2100];
    int n = snprintf(line, sizeof line, "%s\n", in->inputs_desc);
    char tdesc[4400];
    snprintf(tdesc, sizeof tdesc, "%s/inputs.txt", tmp);
    if (stage_read(o, tmp, err) != 0 || nv_write_file_atomic(tdesc, line, (size_t)n, err) != 0) {
        rm_tree_flat(tmp);
        return -1;
    }
    if (rename(tmp, dir) != 0) {
        rm_tree_flat(tmp);
        return nv_seterr(err, "%s: cannot rename into place: %s", dir, strerror(errno));
    }
    return fold_list_shards(dir, in, err);
}

// ---------------------------------------------------------------------------------------
// output directory

// OUT must not be the input directory, nor hold shards of something else.
int fold_check_outdir(const fold_opts *o, const fold_input_set *in, nv_error *err) {
    struct stat st;
    char wd[4200];
    snprintf(wd, sizeof wd, "%s/" FOLD_WORKDIR, o->outdir);
    if (stat(o->outdir, &st) != 0) return 0; // created later
    if (!S_ISDIR(st.st_mode)) return nv_seterr(err, "%s: output is not a directory", o->outdir);
    if (!in->staged && same_dir(o->outdir, in->indir))
        return nv_seterr(err, "%s: the output directory is the input directory; give another -o", o->outdir);
    if (stat(wd, &st) == 0) return 0; // ours: a run to continue
    fold_input_set probe = {0};
    nv_error e;
    if (fold_list_shards(o->outdir, &probe, &e) == 0) {
        fold_free_names(&probe);
        return nv_seterr(err, "%s: already holds *.h5 files not written by nvwa-fold; give an empty or new -o directory", o->outdir);
    }
    return 0;
}

int fold_make_workdir(const fold_opts *o, nv_error *err) {
    char p[4300];
    const char *sub[] = {"", "/parts", "/done"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/" FOLD_WORKDIR "%s", o->outdir, sub[i]);
        if (fold_mkdirs(p, err) != 0) return -1;
    }
    snprintf(p, sizeof p, "%s/.nvwa-fold-probe.%ld", o->outdir, (long)getpid());
    FILE *f = fopen(p, "w");
    if (!f) return nv_seterr(err, "%s: output directory is not writable: %s", o->outdir, strerror(errno));
    fclose(f);
    unlink(p);
    return 0;
}

// Sequence files under --dry-run: counts and cost straight from the records (no shards).
int fold_estimate_stream(const fold_opts *o, fold_counts *k, double *cost, nv_error *err) {
    memset(k, 0, sizeof *k);
    *cost = 0;
    for (int f = 0; f < o->n_inputs; f++) {
        nv_seqreader *r = nv_seqreader_open(o->inputs[f], o->fmt, o->drop_gaps, err);
        if (!r) return -1;
        nv_seqrec rec;
        int got;
        uint8_t *unk = NULL;
        size_t cap = 0;
        while ((got = nv_seqreader_next(r, &rec, err)) > 0) {
            if (!rec.ss && rec.len > cap) {
                cap = rec.len;
                unk = nv_realloc(unk, cap);
                memset(unk, 255, cap);
            }
            int dd = fold_decide(&o->s, rec.ss ? rec.ss : unk, rec.len);
            k->seqs++;
            k->tokens += rec.len;
            if (dd == FOLD_DO) k->folded++, k->folded_tokens += rec.len, *cost += fold_cost(rec.len);
            else if (dd == FOLD_KEEP) k->kept++;
            else if (dd == FOLD_TOO_LONG) k->too_long++;
            else k->empty++;
        }
        free(unk);
        nv_seqreader_close(r);
        if (got < 0) return -1;
    }
    return 0;
}

