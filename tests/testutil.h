// testutil.h - small helpers shared by the C tests: checks that name what failed, fresh
// random inputs (seeded from the clock unless NVWA_TEST_SEED is set, and printed so a
// failure can be replayed), relative-error comparison.
#pragma once
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static int tu_failures = 0;

#define CHECK(cond, ...)                                                                    \
    do {                                                                                    \
        if (!(cond)) {                                                                      \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                 \
            fprintf(stderr, __VA_ARGS__);                                                   \
            fputc('\n', stderr);                                                            \
            tu_failures++;                                                                  \
        }                                                                                   \
    } while (0)

#define REQUIRE(cond, ...)                                                                  \
    do {                                                                                    \
        if (!(cond)) {                                                                      \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                 \
            fprintf(stderr, __VA_ARGS__);                                                   \
            fputc('\n', stderr);                                                            \
            exit(1);                                                                        \
        }                                                                                   \
    } while (0)

static inline int tu_finish(const char *name) {
    if (tu_failures) {
        fprintf(stderr, "%s: %d check(s) failed\n", name, tu_failures);
        return 1;
    }
    printf("%s: ok\n", name);
    return 0;
}

// xorshift64* seeded once per test run: fresh inputs every run, replayable by seed.
static uint64_t tu_state;
static inline uint64_t tu_seed(void) {
    const char *s = getenv("NVWA_TEST_SEED");
    uint64_t seed = s ? strtoull(s, NULL, 10) : ((uint64_t)time(NULL) ^ ((uint64_t)clock() << 20));
    if (seed == 0) seed = 1;
    tu_state = seed;
    printf("NVWA_TEST_SEED=%llu\n", (unsigned long long)seed);
    return seed;
}
static inline uint64_t tu_u64(void) {
    tu_state ^= tu_state >> 12;
    tu_state ^= tu_state << 25;
    tu_state ^= tu_state >> 27;
    return tu_state * 0x2545F4914F6CDD1Dull;
}
static inline double tu_uniform(double lo, double hi) {
    return lo + (hi - lo) * ((double)(tu_u64() >> 11) * (1.0 / 9007199254740992.0));
}
static inline int tu_int(int lo, int hi) { return lo + (int)(tu_u64() % (uint64_t)(hi - lo + 1)); }
static inline double tu_normal(void) {
    double u1 = tu_uniform(1e-300, 1.0), u2 = tu_uniform(0.0, 1.0);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}
static inline double tu_relerr(double a, double b) {
    return fabs(a - b) / fmax(fmax(fabs(a), fabs(b)), 1e-12);
}
