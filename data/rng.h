// rng.h - the one place that owns random numbers: counter-based Philox4x32-10.
//
// Every random draw in nvwa is a pure function of (key, counter): the key is a 64-bit seed
// (mixed with a hash of what is being drawn for), the counter names the element or sample.
// There is no hidden RNG state, so any sample or weight can be reproduced alone, on any
// rank, on CPU or GPU, after any number of resumes. Header-only and usable from CUDA.
#pragma once
#include <stdint.h>
#include <math.h>

#if defined(__CUDACC__)
#define NV_HD __host__ __device__ __forceinline__
#else
#define NV_HD static inline
#endif

typedef struct nv_u32x4 {
    uint32_t v[4];
} nv_u32x4;

NV_HD uint32_t nv_mulhilo32(uint32_t a, uint32_t b, uint32_t *hi) {
    uint64_t p = (uint64_t)a * (uint64_t)b;
    *hi = (uint32_t)(p >> 32);
    return (uint32_t)p;
}

// Philox4x32-10 (Salmon et al., SC'11): 10 rounds, the published constants.
NV_HD nv_u32x4 nv_philox(uint64_t key, uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3) {
    uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
    uint32_t x0 = c0, x1 = c1, x2 = c2, x3 = c3;
    for (int r = 0; r < 10; r++) {
        uint32_t hi0, hi1;
        uint32_t lo0 = nv_mulhilo32(0xD2511F53u, x0, &hi0);
        uint32_t lo1 = nv_mulhilo32(0xCD9E8D57u, x2, &hi1);
        uint32_t y0 = hi1 ^ x1 ^ k0, y1 = lo1, y2 = hi0 ^ x3 ^ k1, y3 = lo0;
        x0 = y0; x1 = y1; x2 = y2; x3 = y3;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    nv_u32x4 out = {{x0, x1, x2, x3}};
    return out;
}

// 64-bit FNV-1a of a string: mixes a name (a tensor's, a purpose's) into a key.
NV_HD uint64_t nv_hash_str(const char *s) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) {
        h ^= (uint8_t)*s;
        h *= 0x100000001b3ull;
    }
    return h;
}

// splitmix64 finalizer: combine a seed with a domain hash into a well-mixed key.
NV_HD uint64_t nv_mix64(uint64_t a, uint64_t b) {
    uint64_t z = a + 0x9E3779B97F4A7C15ull * (b + 1);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// Uniform in [0,1) with 24 bits (float) or 53 bits (double).
NV_HD float nv_u01f(uint32_t x) { return (float)(x >> 8) * (1.0f / 16777216.0f); }
NV_HD double nv_u01d(uint32_t hi, uint32_t lo) {
    return (double)(((uint64_t)hi << 21) ^ (uint64_t)(lo >> 11)) * (1.0 / 9007199254740992.0);
}

// A sequential stream for one sample: key + three counter words that name the sample,
// the fourth word counts blocks. Its state lives only while that sample is processed.
typedef struct nv_rng_stream {
    uint64_t key;
    uint32_t c0, c1, c2;
    uint32_t block;
    uint32_t buf[4];
    int avail;
} nv_rng_stream;

NV_HD nv_rng_stream nv_rng_stream_init(uint64_t key, uint32_t c0, uint32_t c1, uint32_t c2) {
    nv_rng_stream s;
    s.key = key; s.c0 = c0; s.c1 = c1; s.c2 = c2;
    s.block = 0; s.avail = 0;
    s.buf[0] = s.buf[1] = s.buf[2] = s.buf[3] = 0;
    return s;
}

NV_HD uint32_t nv_rng_u32(nv_rng_stream *s) {
    if (s->avail == 0) {
        nv_u32x4 r = nv_philox(s->key, s->c0, s->c1, s->c2, s->block++);
        s->buf[0] = r.v[0]; s->buf[1] = r.v[1]; s->buf[2] = r.v[2]; s->buf[3] = r.v[3];
        s->avail = 4;
    }
    return s->buf[4 - s->avail--];
}

NV_HD double nv_rng_double(nv_rng_stream *s) {
    uint32_t hi = nv_rng_u32(s);
    uint32_t lo = nv_rng_u32(s);
    return nv_u01d(hi, lo);
}

// Uniform integer in [0, n) without modulo bias (Lemire's method with rejection).
NV_HD uint32_t nv_rng_below(nv_rng_stream *s, uint32_t n) {
    uint64_t m = (uint64_t)nv_rng_u32(s) * n;
    uint32_t l = (uint32_t)m;
    if (l < n) {
        uint32_t t = (uint32_t)(-n) % n;
        while (l < t) {
            m = (uint64_t)nv_rng_u32(s) * n;
            l = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}

// Truncated normal(0, std) cut at +-2 std for element `idx` of a tensor keyed by `key`:
// Box-Muller on the element's own counter, redrawn with the next counter word until inside.
NV_HD float nv_trunc_normal(uint64_t key, uint64_t idx, float std) {
    for (uint32_t attempt = 0;; attempt++) {
        nv_u32x4 r = nv_philox(key, (uint32_t)idx, (uint32_t)(idx >> 32), attempt, 0x1A17u);
        double u1 = nv_u01d(r.v[0], r.v[1]);
        double u2 = nv_u01d(r.v[2], r.v[3]);
        if (u1 <= 0.0) continue;
        double z = sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
        if (z >= -2.0 && z <= 2.0) return (float)(z * std);
    }
}
