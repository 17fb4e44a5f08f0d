// assemble.c - an output shard from its input shard and its part files.
//
// The output is the input with /structure (and n_with_structure) replaced where parts
// folded, and the structure_source attribute set. It is written as OUT/.<name>.tmp,
// fsynced, and renamed to OUT/<name> last: the rename says "this shard is finished". The
// optional OUT/<stem>.dbn (RNAfold's text: id, sequence, structure and energy) and the
// shard's counts (for summary.json) are in place before that rename.
#include "tools/fold/fold.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "data/shard.h"
#include "data/shard_source.h"
#include "data/vocab.h"

static void stem_of(const char *name, char *buf, size_t n) {
    snprintf(buf, n, "%s", name);
    size_t k = strlen(buf);
    if (k > 3 && strcmp(buf + k - 3, ".h5") == 0) buf[k - 3] = '\0';
}

static int fsync_path(const char *path, nv_error *err) {
    int fd = open(path, O_RDONLY);
    if (fd < 0 || fsync(fd) != 0) {
        int e = errno;
        if (fd >= 0) close(fd);
        return nv_seterr(err, "%s: fsync failed: %s", path, strerror(e));
    }
    close(fd);
    return 0;
}

// Apply every part of the shard to c->structure; energies[seq] for the folded ones.
static int apply_parts(const fold_plan *p, uint32_t shard, const char *outdir, nv_corpus *c, int32_t *energy,
                       nv_error *err) {
    const fold_shard *sh = &p->shards[shard];
    for (uint64_t k = sh->first_part; k < sh->first_part + sh->n_parts; k++) {
        const fold_part *pt = &p->parts[k];
        char path[4096];
        uint32_t crc;
        fold_part_path(outdir, p, k, path, sizeof path);
        if (fold_part_read(path, p, k, c->structure + pt->tok_a, energy + pt->seq_a, &crc, err) != 0) {
            unlink(path); // a damaged part is folded again by the next run
            size_t l = strlen(err->msg);
            snprintf(err->msg + l, sizeof err->msg - l, "; removed it: rerun the same command to fold it again");
            return -1;
        }
        if (crc != fold_crc32(c->tokens + pt->tok_a, pt->tok_b - pt->tok_a))
            return nv_seterr(err, "%s: part %u was folded from other tokens than the input's sequences %llu..%llu\n"
                                  "---> HINT: the input changed since the plan; fold it into a new -o directory",
                             sh->name, pt->index, (unsigned long long)pt->seq_a, (unsigned long long)pt->seq_b - 1);
    }
    c->n_with_structure = 0;
    for (uint64_t i = 0; i < c->n_seqs; i++) {
        int known = 0;
        for (uint64_t t = c->offsets[i]; t < c->offsets[i + 1] && !known; t++) known = c->structure[t] != NV_SS_UNKNOWN;
        c->n_with_structure += (uint64_t)known;
    }
    return 0;
}

static void source_string(const fold_settings *s, const fold_shard *sh, const char *input_source, char *buf, size_t n) {
    char model[768];
    fold_model_string(s, model, sizeof model);
    const fold_counts *k = &sh->counts;
    int w = snprintf(buf, n, "%s; predicted for %llu of %llu sequences (%llu kept from the input, %llu longer than %ld nt "
                             "not folded)",
                     model, (unsigned long long)k->folded, (unsigned long long)k->seqs, (unsigned long long)k->kept,
                     (unsigned long long)k->too_long, s->max_len);
    if (input_source && (k->kept || k->too_long) && w > 0 && (size_t)w < n)
        snprintf(buf + w, n - (size_t)w, "; the others: %s", input_source);
}

// RNAfold's output format: ">id", the sequence, the structure and " (%6.2f)" for folded
// ones. Sequences without a structure are left out.
static int write_dbn(const char *path, const nv_corpus *c, const int32_t *energy, nv_error *err) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) return nv_seterr(err, "%s: cannot create: %s", tmp, strerror(errno));
    for (uint64_t i = 0; i < c->n_seqs; i++) {
        uint64_t a = c->offsets[i], b = c->offsets[i + 1];
        int known = 0;
        for (uint64_t t = a; t < b && !known; t++) known = c->structure[t] != NV_SS_UNKNOWN;
        if (!known) continue;
        fprintf(f, ">%s\n", c->ids[i]);
        for (uint64_t t = a; t < b; t++) fputc(nv_char_from_tok(c->tokens[t]), f);
        fputc('\n', f);
        for (uint64_t t = a; t < b; t++) fputc(nv_char_from_ss(c->structure[t]), f);
        if (energy[i] != FOLD_NO_ENERGY) fprintf(f, " (%6.2f)", energy[i] / 100.0);
        fputc('\n', f);
    }
    int ok = fflush(f) == 0 && fsync(fileno(f)) == 0;
    int e = errno;
    if (fclose(f) != 0 && ok) ok = 0, e = errno;
    if (!ok || rename(tmp, path) != 0) {
        if (ok) e = errno;
        unlink(tmp);
        return nv_seterr(err, "%s: cannot write: %s\n---> HINT: is the disk full?", path, strerror(e));
    }
    return 0;
}

static int write_counts(const char *path, const fold_counts *k, nv_error *err) {
    char buf[512];
    int n = snprintf(buf, sizeof buf, "%llu %llu %llu %llu %llu %llu %llu\n", (unsigned long long)k->seqs,
                     (unsigned long long)k->tokens, (unsigned long long)k->folded, (unsigned long long)k->kept,
                     (unsigned long long)k->too_long, (unsigned long long)k->empty, (unsigned long long)k->folded_tokens);
    return nv_write_file_atomic(path, buf, (size_t)n, err);
}

int fold_done_counts(const char *outdir, const char *name, fold_counts *k) {
    char stem[256], path[4096];
    stem_of(name, stem, sizeof stem);
    snprintf(path, sizeof path, "%s/" FOLD_WORKDIR "/done/%s.counts", outdir, stem);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    unsigned long long v[7];
    int n = fscanf(f, "%llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6]);
    fclose(f);
    if (n != 7) return -1;
    *k = (fold_counts){v[0], v[1], v[2], v[3], v[4], v[5], v[6]};
    return 0;
}

static void remove_parts(const fold_plan *p, uint32_t shard, const char *outdir) {
    const fold_shard *sh = &p->shards[shard];
    char path[4096];
    for (uint64_t k = sh->first_part; k < sh->first_part + sh->n_parts; k++) {
        fold_part_path(outdir, p, k, path, sizeof path);
        unlink(path);
    }
    if (sh->n_parts > 0) {
        *strrchr(path, '/') = '\0';
        rmdir(path);
    }
}

// Tests kill a run here (NVWA_TEST_FOLD_PAUSE_MS): the shard's temporary file exists.
static void test_pause(void) {
    const char *ms = getenv("NVWA_TEST_FOLD_PAUSE_MS");
    if (!ms) return;
    long v = atol(ms);
    struct timespec ts = {v / 1000, (v % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int fold_assemble(const fold_settings *s, const fold_plan *p, uint32_t shard, const char *indir, const char *outdir,
                  int dbn, nv_error *err) {
    const fold_shard *sh = &p->shards[shard];
    char in[4096], out[4096], tmp[4096], stem[256], path[4096], src[2048], insrc[1024];
    stem_of(sh->name, stem, sizeof stem);
    snprintf(in, sizeof in, "%s/%s", indir, sh->name);
    snprintf(out, sizeof out, "%s/%s", outdir, sh->name);
    snprintf(tmp, sizeof tmp, "%s/.%s.tmp", outdir, sh->name);
    nv_corpus c;
    if (nv_shard_read(in, &c, 1, err) != 0) return -1;
    if (c.n_seqs != sh->n_seqs || c.n_tokens != sh->n_tokens) {
        nv_corpus_free(&c);
        return nv_seterr(err, "%s: %llu sequences and %llu tokens, the plan says %llu and %llu\n"
                              "---> HINT: the input changed since the plan; fold it into a new -o directory",
                         in, (unsigned long long)c.n_seqs, (unsigned long long)c.n_tokens,
                         (unsigned long long)sh->n_seqs, (unsigned long long)sh->n_tokens);
    }
    int32_t *energy = nv_malloc((c.n_seqs ? c.n_seqs : 1) * sizeof(int32_t));
    for (uint64_t i = 0; i < c.n_seqs; i++) energy[i] = FOLD_NO_ENERGY;
    int has_in = nv_shard_get_source(in, insrc, sizeof insrc, err);
    int rc = has_in < 0 ? -1 : apply_parts(p, shard, outdir, &c, energy, err);
    if (rc == 0) {
        unlink(tmp);
        rc = nv_shard_write(tmp, &c, err);
    }
    if (rc == 0 && (sh->counts.folded > 0 || has_in > 0)) {
        if (sh->counts.folded > 0) source_string(s, sh, has_in > 0 ? insrc : NULL, src, sizeof src);
        else snprintf(src, sizeof src, "%s", insrc); // nothing predicted here: the input's stays
        rc = nv_shard_set_source(tmp, src, err);
    }
    if (rc == 0) rc = fsync_path(tmp, err);
    if (rc == 0 && dbn) {
        snprintf(path, sizeof path, "%s/%s.dbn", outdir, stem);
        rc = write_dbn(path, &c, energy, err);
    }
    if (rc == 0) {
        snprintf(path, sizeof path, "%s/" FOLD_WORKDIR "/done/%s.counts", outdir, stem);
        rc = write_counts(path, &sh->counts, err);
    }
    if (rc == 0) test_pause();
    if (rc == 0 && rename(tmp, out) != 0) rc = nv_seterr(err, "%s: cannot rename %s into place: %s", out, tmp, strerror(errno));
    if (rc == 0) rc = fsync_path(outdir, err);
    if (rc != 0) unlink(tmp);
    if (rc == 0) remove_parts(p, shard, outdir); // the shard holds their bytes now
    free(energy);
    nv_corpus_free(&c);
    return rc;
}
