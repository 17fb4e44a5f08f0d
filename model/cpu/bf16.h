// bf16.h - bfloat16 <-> float on the host, bit-exact with CUDA's __float2bfloat16_rn and
// __bfloat162float: round to nearest even, NaN kept a (quiet) NaN. Used by the cpu-bf16
// backend instance and by tests that build bf16 data.
#pragma once
#include <stdint.h>
#include <string.h>

static inline float nv_bf16_to_f32(uint16_t h) {
    const uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline uint16_t nv_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); // quiet NaN
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

// f rounded to bf16 precision, kept as a float
static inline float nv_bf16_round(float f) { return nv_bf16_to_f32(nv_f32_to_bf16(f)); }
