// test_stream_rss.c - the trainer's memory does not grow with the corpus beyond the streamed
// index and the loader's permutation (design section 5). nvwa-train runs a few steps on a
// corpus of 20k sequences and on one of 400k (shards written here, lengths 20..180 nt), and
// the difference of their peak RSS (wait4's ru_maxrss) must stay below what the extra
// sequences may cost: the index (4 bytes + 8 per 64 sequences), the permutation and packed
// lengths (8 bytes) and their copies while an epoch is dealt (10 bytes), plus a fixed slack
// for the extra open shards - far below the 2 bytes per extra nucleotide (~76 MB) that
// holding the shards in memory would cost. Skipped under AddressSanitizer, whose shadow
// memory and quarantine make RSS meaningless.
// Each corpus is trained on RUNS times, interleaved, and the medians compared: a third of the
// peak (~100 of 265 MiB) is shared-library pages, and how many of those a run maps depends on
// the page cache: the first run after a cold cache maps fewer of them. One CI run (2026-12-04,
// the first nvwa-train of a fresh clone) measured the small corpus at 247.7 MiB, 17 MiB below
// its usual 264.5, and failed; after `echo 1 > /proc/sys/vm/drop_caches` the first run reads
// 248.0 and the other nine within 1 MiB of the usual.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "data/shard.h"
#include "data/vocab.h"
#include "tests/testutil.h"

#if defined(__SANITIZE_ADDRESS__)
#define NV_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define NV_UNDER_ASAN 1
#endif
#endif

// n sequences in shards of at most 100k under dir; returns the nucleotides written.
static uint64_t write_corpus(const char *dir, uint64_t n) {
    REQUIRE(mkdir(dir, 0755) == 0, "mkdir %s", dir);
    uint8_t tok[256];
    uint64_t total = 0;
    for (uint64_t first = 0, k = 0; first < n; first += 100000, k++) {
        nv_corpus c;
        nv_corpus_init(&c);
        for (uint64_t i = first; i < n && i < first + 100000; i++) {
            int len = tu_int(20, 180);
            for (int j = 0; j < len; j++) tok[j] = (uint8_t)tu_int(NV_TOK_A, NV_TOK_U);
            nv_corpus_append(&c, "", tok, NULL, (uint64_t)len);
        }
        total += c.n_tokens;
        char path[512];
        snprintf(path, sizeof path, "%s/shard_%05llu.h5", dir, (unsigned long long)k);
        nv_error err;
        REQUIRE(nv_shard_write(path, &c, &err) == 0, "write %s: %s", path, err.msg);
        nv_corpus_free(&c);
    }
    return total;
}

// Peak RSS in bytes of nvwa-train on data dir (a few tiny steps).
static long long train_peak_rss(const char *build, const char *src, const char *dir) {
    char exe[512], cfg[512], train[600];
    snprintf(exe, sizeof exe, "%s/nvwa-train", build);
    snprintf(cfg, sizeof cfg, "%s/configs/tiny.ini", src);
    snprintf(train, sizeof train, "data.train=%s", dir);
    fflush(stdout); // or the child's freopen writes our buffered lines a second time
    pid_t pid = fork();
    REQUIRE(pid >= 0, "fork");
    if (pid == 0) {
        if (!freopen("/dev/null", "w", stdout)) _exit(127);
        execl(exe, exe, cfg, train, "train.steps=3", "data.seq-length=128", "data.micro-batch=2", "data.global-batch=4",
              "model.num-layers=2", "-q", (char *)NULL);
        _exit(127);
    }
    int status;
    struct rusage ru;
    REQUIRE(wait4(pid, &status, 0, &ru) == pid, "wait4");
    REQUIRE(WIFEXITED(status) && WEXITSTATUS(status) == 0, "nvwa-train on %s failed (status %d)", dir, status);
    return (long long)ru.ru_maxrss * 1024;
}

enum { RUNS = 5 };

static int cmp_ll(const void *a, const void *b) {
    const long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

// Median of RUNS peaks, printed with all of them.
static long long median_peak(long long *r, const char *what) {
    printf("peak RSS, %s corpus, %d runs (MiB):", what, RUNS);
    for (int i = 0; i < RUNS; i++) printf(" %.1f", r[i] / 1048576.0);
    printf("\n");
    qsort(r, RUNS, sizeof *r, cmp_ll);
    return r[RUNS / 2];
}

int main(void) {
#ifdef NV_UNDER_ASAN
    printf("SKIP: peak RSS is not meaningful under AddressSanitizer\n");
    return 77;
#endif
    tu_seed();
    const char *build = getenv("NVWA_BUILD_ROOT"), *src = getenv("NVWA_SOURCE_ROOT");
    REQUIRE(build && src, "NVWA_BUILD_ROOT and NVWA_SOURCE_ROOT must be set (meson test does)");
    char dir[256], small[300], big[300];
    snprintf(dir, sizeof dir, "/tmp/nvwa_rss_%d", (int)getpid());
    REQUIRE(mkdir(dir, 0755) == 0, "mkdir %s", dir);
    snprintf(small, sizeof small, "%s/small", dir);
    snprintf(big, sizeof big, "%s/big", dir);
    const uint64_t n_small = 20000, n_big = 400000;
    uint64_t t_small = write_corpus(small, n_small), t_big = write_corpus(big, n_big);
    long long rs[RUNS], rb[RUNS];
    for (int i = 0; i < RUNS; i++) rs[i] = train_peak_rss(build, src, small), rb[i] = train_peak_rss(build, src, big);
    const long long r_small = median_peak(rs, "small"), r_big = median_peak(rb, "big");
    const double dn = (double)(n_big - n_small);
    const double allowed = dn * (4.0 + 8.0 / 64 + 8 + 10) + 12.0 * 1048576; // index, permutation, deal, slack
    const double in_memory = 2.0 * (double)(t_big - t_small);
    const long long grew = r_big - r_small;
    printf("median peak RSS: %.1f MiB with %llu sequences (%.1f Mnt), %.1f MiB with %llu (%.1f Mnt): +%.1f MiB; "
           "allowed +%.1f MiB (index + permutation + 12 MiB); holding the shards in memory would add %.1f MiB\n",
           r_small / 1048576.0, (unsigned long long)n_small, t_small / 1e6, r_big / 1048576.0,
           (unsigned long long)n_big, t_big / 1e6, grew / 1048576.0, allowed / 1048576.0, in_memory / 1048576.0);
    CHECK((double)grew <= allowed, "peak RSS grew by %.1f MiB for %.0f more sequences (allowed %.1f MiB)",
          grew / 1048576.0, dn, allowed / 1048576.0);
    CHECK(allowed < in_memory / 2, "the test cannot tell streaming from loading (allowed %.1f MiB)", allowed / 1048576.0);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return tu_finish("stream_rss");
}
