// test_stream.c - the streamed corpus (data/dataset.c) against the same corpus in memory.
//
// A random corpus is written into a few shards with small, random chunk sizes (so that
// windows straddle chunks and shards), then opened streamed. Checked: the index (counts,
// every length), random windows byte for byte, the reference counts (from the attributes,
// and streamed for a shard without them), and the loader: every micro-batch, mask and
// cursor of several epochs equal to a loader on the in-memory copy, at dp 1 and 2, with and
// without prefetch, and after a resume from a cursor. Then a damaged chunk: the read names
// the shard, the dataset and the sequence; the loader stops there with the cursor of the
// last completed step, every batch before it identical to the in-memory stream.
#include <hdf5.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/dataset.h"
#include "data/shard.h"
#include "tests/loader/loader_testutil.h"
#include "train/config.h"

static char dir[256];

// Split c into n_shards shards under dir; returns the first sequence of each shard.
static void write_shards(const nv_corpus *c, int n_shards, int chunk_kb, uint64_t *first) {
    uint64_t per = (c->n_seqs + (uint64_t)n_shards - 1) / (uint64_t)n_shards;
    for (int k = 0; k < n_shards; k++) {
        nv_corpus part;
        nv_corpus_init(&part);
        uint64_t a = (uint64_t)k * per, b = a + per < c->n_seqs ? a + per : c->n_seqs;
        first[k] = a;
        for (uint64_t i = a; i < b; i++) {
            char id[32];
            snprintf(id, sizeof id, "seq%llu", (unsigned long long)i);
            nv_corpus_append(&part, id, c->tokens + c->offsets[i], c->structure + c->offsets[i], nv_corpus_len(c, i));
        }
        char path[300];
        snprintf(path, sizeof path, "%s/shard_%05d.h5", dir, k);
        nv_shard_opts o = {chunk_kb};
        nv_error err;
        REQUIRE(nv_shard_write_ex(path, &part, &o, &err) == 0, "write %s: %s", path, err.msg);
        nv_corpus_free(&part);
    }
}

// Open with a low open-file limit: at most 3 shards open at once, so the least recently used
// ones are closed and opened again as the reads go on.
static nv_dataset *open_limited(const char *spec) {
    struct rlimit rl0, rl;
    nv_error err;
    nv_dataset *ds = NULL;
    REQUIRE(getrlimit(RLIMIT_NOFILE, &rl0) == 0, "getrlimit");
    rl = rl0;
    rl.rlim_cur = 12;
    REQUIRE(setrlimit(RLIMIT_NOFILE, &rl) == 0, "setrlimit");
    REQUIRE(nv_dataset_open(&spec, 1, &ds, &err) == 0, "open: %s", err.msg);
    REQUIRE(setrlimit(RLIMIT_NOFILE, &rl0) == 0, "setrlimit");
    return ds;
}

static void compare_loaders(nv_dataset *mem, nv_dataset *st, const nv_config *cfg, int dp, int prefetch,
                            int steps) {
    nv_error err;
    for (int r = 0; r < dp; r++) {
        nv_loader *a = nv_loader_create_ds(mem, &cfg->data, cfg->model.structure_input, r, dp, prefetch, &err);
        nv_loader *b = nv_loader_create_ds(st, &cfg->data, cfg->model.structure_input, r, dp, prefetch ? 0 : 3, &err);
        REQUIRE(a && b, "loaders: %s", err.msg);
        const int accum = nv_loader_accum(a);
        long diff = 0, cdiff = 0;
        nv_loader_cursor *ca = malloc(sizeof *ca), *cb = malloc(sizeof *cb);
        uint64_t epochs = 0;
        for (int s = 0; s < steps; s++) {
            for (int m = 0; m < accum; m++) {
                const nv_batch *x = nv_loader_next(a), *y = nv_loader_next(b);
                REQUIRE(x && y, "step %d: a loader returned no batch: %s", s, nv_loader_error(b));
                diff += !tl_batch_equal(x, y);
                epochs = x->epoch;
            }
            nv_loader_get_cursor(a, ca);
            nv_loader_get_cursor(b, cb);
            cdiff += ca->epoch != cb->epoch || ca->step != cb->step || ca->n_slots != cb->n_slots ||
                     memcmp(ca->slot_pos, cb->slot_pos, sizeof(uint64_t) * (size_t)ca->n_slots) ||
                     memcmp(ca->slot_done, cb->slot_done, sizeof(uint64_t) * (size_t)ca->n_slots);
        }
        CHECK(diff == 0, "dp %d rank %d prefetch %d: %ld micro-batches differ", dp, r, prefetch, diff);
        CHECK(cdiff == 0, "dp %d rank %d: %ld cursors differ", dp, r, cdiff);
        CHECK(epochs >= 1, "the test should cross an epoch boundary (last epoch %llu)", (unsigned long long)epochs);
        // resume the streamed loader from the in-memory one's cursor: same stream onward
        nv_loader *c2 = nv_loader_create_ds(st, &cfg->data, cfg->model.structure_input, r, dp, 2, &err);
        REQUIRE(c2 && nv_loader_set_cursor(c2, ca, &err) == 0, "resume: %s", err.msg);
        long rdiff = 0;
        for (int m = 0; m < 3 * accum; m++) rdiff += !tl_batch_equal(nv_loader_next(a), nv_loader_next(c2));
        CHECK(rdiff == 0, "dp %d rank %d: %ld micro-batches differ after a resume", dp, r, rdiff);
        nv_loader_free(c2);
        free(ca);
        free(cb);
        nv_loader_free(a);
        nv_loader_free(b);
    }
}

// Flip a few bytes in the middle of stored chunk `chunk` of /name in path.
static void damage_chunk(const char *path, const char *name, hsize_t chunk) {
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT), d = H5Dopen2(f, name, H5P_DEFAULT);
    hid_t fs = H5Dget_space(d);
    hsize_t off[1], size;
    unsigned mask;
    haddr_t addr;
    REQUIRE(H5Dget_chunk_info(d, fs, chunk, off, &mask, &addr, &size) >= 0, "chunk info");
    H5Sclose(fs);
    H5Dclose(d);
    H5Fclose(f);
    FILE *fp = fopen(path, "r+b");
    REQUIRE(fp, "open %s", path);
    for (int k = 0; k < 3; k++) {
        fseek(fp, (long)(addr + size / 2 + (hsize_t)k), SEEK_SET);
        int c = fgetc(fp);
        fseek(fp, (long)(addr + size / 2 + (hsize_t)k), SEEK_SET);
        fputc(c ^ 0x33, fp);
    }
    REQUIRE(fclose(fp) == 0, "fclose");
}

int main(void) {
    tu_seed();
    snprintf(dir, sizeof dir, "/tmp/nvwa_stream_%d", (int)getpid());
    REQUIRE(mkdir(dir, 0755) == 0, "mkdir %s", dir);
    const int S = 128, MB = 2, GB = 8;
    tl_lengths lm = {0.3, 0.2, 5, 300, 900}; // a fifth longer than S - 2: cropped windows
    nv_corpus c;
    tl_make_corpus(&c, (uint64_t)tu_int(300, 500), &lm, 0.7);
    const int n_shards = tu_int(4, 6), chunk_kb = tu_int(1, 3);
    uint64_t first[8];
    write_shards(&c, n_shards, chunk_kb, first);
    printf("%llu sequences, %llu tokens in %d shards, %d KiB chunks\n", (unsigned long long)c.n_seqs,
           (unsigned long long)c.n_tokens, n_shards, chunk_kb);

    nv_error err;
    nv_dataset *st = NULL, *mem = nv_dataset_wrap(&c);
    const char *spec = dir;
    st = open_limited(spec);
    CHECK(nv_dataset_streamed(st) && !nv_dataset_streamed(mem), "streamed flags");
    CHECK(nv_dataset_n_seqs(st) == c.n_seqs && nv_dataset_n_tokens(st) == c.n_tokens &&
          nv_dataset_n_with_structure(st) == c.n_with_structure && nv_dataset_n_shards(st) == n_shards,
          "header sums differ: seqs %llu/%llu tokens %llu/%llu structure %llu/%llu shards %d/%d",
          (unsigned long long)nv_dataset_n_seqs(st), (unsigned long long)c.n_seqs,
          (unsigned long long)nv_dataset_n_tokens(st), (unsigned long long)c.n_tokens,
          (unsigned long long)nv_dataset_n_with_structure(st), (unsigned long long)c.n_with_structure,
          nv_dataset_n_shards(st), n_shards);
    long bad_len = 0;
    for (uint64_t i = 0; i < c.n_seqs; i++) bad_len += nv_dataset_len(st, i) != nv_corpus_len(&c, i);
    CHECK(bad_len == 0, "%ld lengths differ", bad_len);
    const size_t want_index = c.n_seqs * 4 + (c.n_seqs / 64 + 1) * 8;
    CHECK(nv_dataset_index_bytes(st) >= want_index && nv_dataset_index_bytes(st) < want_index + 2048,
          "index %zu bytes, expected about %zu", nv_dataset_index_bytes(st), want_index);

    // random windows, byte for byte
    uint8_t tok[1024], ss[1024]; // sequences are at most 900 long
    long bad_win = 0;
    for (int t = 0; t < 2000; t++) {
        uint64_t i = (uint64_t)tu_int(0, (int)c.n_seqs - 1), len = nv_corpus_len(&c, i);
        uint64_t off = (uint64_t)tu_int(0, (int)len), n = (uint64_t)tu_int(0, (int)(len - off));
        REQUIRE(nv_dataset_read(st, i, off, n, tok, ss, &err) == 0, "read: %s", err.msg);
        bad_win += memcmp(tok, c.tokens + c.offsets[i] + off, n) || memcmp(ss, c.structure + c.offsets[i] + off, n);
    }
    CHECK(bad_win == 0, "%ld windows differ", bad_win);
    nv_dataset_stats dst;
    nv_dataset_get_stats(st, &dst);
    CHECK(dst.opens > (uint64_t)n_shards, "%llu shard opens for %d shards: the limit of 3 open was not in force",
          (unsigned long long)dst.opens, n_shards);
    printf("%llu reads, %llu shard opens (at most 3 open)\n", (unsigned long long)dst.reads, (unsigned long long)dst.opens);
    CHECK(nv_dataset_read(st, 0, 0, nv_corpus_len(&c, 0) + 1, tok, ss, &err) != 0, "a window past the end was read");

    // reference counts: from the attributes, and by streaming a shard without them
    uint64_t nt0[16], cl0[3], nt1[16], cl1[3];
    nv_corpus_counts(&c, nt0, cl0);
    REQUIRE(nv_dataset_counts(st, nt1, cl1, &err) == 0, "counts: %s", err.msg);
    CHECK(!memcmp(nt0, nt1, sizeof nt0) && !memcmp(cl0, cl1, sizeof cl0), "counts from the attributes differ");
    {
        char p0[300];
        snprintf(p0, sizeof p0, "%s/shard_00000.h5", dir);
        nv_dataset_free(st); // HDF5 opens a file read-write only when nothing has it open
        hid_t f = H5Fopen(p0, H5F_ACC_RDWR, H5P_DEFAULT);
        REQUIRE(f >= 0 && H5Adelete(f, "nt_counts") >= 0 && H5Adelete(f, "class_counts") >= 0, "drop attributes");
        H5Fclose(f);
        nv_dataset *old = open_limited(spec);
        memset(nt1, 0, sizeof nt1);
        REQUIRE(nv_dataset_counts(old, nt1, cl1, &err) == 0, "counts: %s", err.msg);
        CHECK(!memcmp(nt0, nt1, sizeof nt0) && !memcmp(cl0, cl1, sizeof cl0), "streamed counts differ");
        st = old;
    }

    // the loader, bit for bit, over more than an epoch
    nv_config cfg;
    tl_config(&cfg, S, MB, GB, tu_u64());
    uint64_t tok_per_step = (uint64_t)GB * S;
    int steps = (int)(c.n_tokens / tok_per_step) + 6;
    compare_loaders(mem, st, &cfg, 1, 0, steps);
    compare_loaders(mem, st, &cfg, 2, 3, steps);
    nv_dataset_get_stats(st, &dst);
    printf("loaders: %llu reads, %llu shard opens\n", (unsigned long long)dst.reads, (unsigned long long)dst.opens);

    // a damaged chunk in the middle of the last shard (closed first: HDF5 shares the chunk
    // cache of a dataset opened twice in one process)
    nv_dataset_free(st);
    char last[300];
    snprintf(last, sizeof last, "%s/shard_%05d.h5", dir, n_shards - 1);
    const char *which = tu_int(0, 1) ? "tokens" : "structure";
    damage_chunk(last, which, 1);
    nv_dataset *dmg = NULL;
    REQUIRE(nv_dataset_open(&spec, 1, &dmg, &err) == 0, "open with a damaged chunk (offsets intact): %s", err.msg);
    const uint64_t chunk = (uint64_t)chunk_kb << 10;
    uint64_t victim = UINT64_MAX; // a sequence of the last shard inside chunk 1
    for (uint64_t i = first[n_shards - 1], pos = 0; i < c.n_seqs; pos += nv_corpus_len(&c, i), i++)
        if (pos >= chunk && pos < 2 * chunk && nv_corpus_len(&c, i) > 0) {
            victim = i;
            break;
        }
    CHECK(victim != UINT64_MAX, "no sequence starts in chunk 1 of %s", last);
    if (victim != UINT64_MAX) {
        int rc = nv_dataset_read(dmg, victim, 0, nv_corpus_len(&c, victim), tok, ss, &err);
        char want[80];
        snprintf(want, sizeof want, "sequence %llu of the corpus", (unsigned long long)victim);
        CHECK(rc != 0, "a damaged chunk was read");
        CHECK(rc != 0 && strstr(err.msg, last) && strstr(err.msg, which) && strstr(err.msg, want) &&
                  strstr(err.msg, "Fletcher32"), "message: %s", err.msg);
        printf("damaged read -> %s\n", err.msg);
    }
    nv_loader *a = nv_loader_create_ds(mem, &cfg.data, cfg.model.structure_input, 0, 1, 0, &err), *b = nv_loader_create_ds(dmg, &cfg.data, cfg.model.structure_input, 0, 1, 2, &err);
    REQUIRE(a && b, "loaders: %s", err.msg);
    const int accum = nv_loader_accum(a);
    nv_loader_cursor *ca = malloc(sizeof *ca), *cb = malloc(sizeof *cb);
    nv_loader_get_cursor(a, ca);
    long diff = 0;
    int stopped = -1;
    for (int s = 0; s < 2 * steps && stopped < 0; s++) {
        for (int m = 0; m < accum; m++) {
            const nv_batch *x = nv_loader_next(a), *y = nv_loader_next(b);
            if (!y) {
                stopped = s;
                break;
            }
            diff += !tl_batch_equal(x, y);
        }
        if (stopped < 0) nv_loader_get_cursor(a, ca);
    }
    CHECK(stopped >= 0, "the loader read every sequence of a damaged chunk");
    CHECK(diff == 0, "%ld micro-batches before the damage differ", diff);
    const char *why = nv_loader_error(b);
    CHECK(why && strstr(why, last) && strstr(why, which), "loader error: %s", why ? why : "(none)");
    CHECK(nv_loader_next(b) == NULL, "the loader went on after a read error");
    nv_loader_step_back(b);
    nv_loader_get_cursor(b, cb);
    CHECK(ca->step == cb->step && ca->epoch == cb->epoch &&
              !memcmp(ca->slot_pos, cb->slot_pos, sizeof(uint64_t) * (size_t)ca->n_slots),
          "cursor after the error: step %llu, the last completed step is %llu", (unsigned long long)cb->step,
          (unsigned long long)ca->step);
    printf("loader stopped at step %d: %s\n", stopped + 1, why ? why : "");
    free(ca);
    free(cb);
    nv_loader_free(a);
    nv_loader_free(b);
    nv_dataset_free(dmg);

    // a missing shard at open names it
    char gone[300];
    snprintf(gone, sizeof gone, "%s/shard_00000.h5", dir);
    unlink(gone);
    const char *specs2[2] = {gone, dir};
    nv_dataset *none = NULL;
    CHECK(nv_dataset_open(specs2, 2, &none, &err) != 0 && strstr(err.msg, gone) && !none, "missing shard: %s", err.msg);

    nv_dataset_free(mem);
    tl_free_corpus(&c);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return tu_finish("stream");
}
