// rope.cu - rotary position embedding, rotate-half convention (pairs j and j + dh/2), in place
// on the q and k thirds of qkv [n, 3d]. cos and sin come from fp32 tables [len][dh/2], one per
// (theta, dh, len), built once on the host in double exactly as the CPU backend computes them
// (angle = (double)pos * pow(theta, -2.0*j/dh), cos / sin in double, rounded to float), so
// the GPU rotates by the same float values as its cpu twin. The rotation itself is fp32 with
// explicit rounding (no fused multiply-add), one bf16 rounding per output.
//
// Tables are made by nvc_rope_prepare (the backend's prepare, with the largest shapes) so
// that no step allocates; a (theta, dh) not prepared is built at its first use. A position
// past the table's length is computed on the fly in double (correct, slower).
#include <math.h>

#include "common.cuh"

#define ROPE_TABLES 8 // distinct (theta, dh) per process: global and local layers, tests

typedef struct rope_table {
    double theta;
    int dh, len;
    float *cs; // device [len][dh/2] cos, then [len][dh/2] sin
} rope_table;

// The RoPE part of the backend's one context (see backend_cuda.cu on why it is global).
static struct {
    rope_table t[ROPE_TABLES];
    int n;
} g_rope;

static const rope_table *rope_get(double theta, int dh, int len) {
    for (int i = 0; i < g_rope.n; i++) {
        const rope_table *t = &g_rope.t[i];
        if (t->theta == theta && t->dh == dh && t->len >= len) return t;
    }
    NVC_REQUIRE(g_rope.n < ROPE_TABLES, "too many distinct RoPE (theta, head dim) pairs");
    rope_table *t = &g_rope.t[g_rope.n++];
    const int half = dh / 2;
    t->theta = theta;
    t->dh = dh;
    t->len = len > 0 ? len : 8192; // not prepared: long enough for any seq-length in configs/
    const size_t m = (size_t)t->len * half;
    float *h = (float *)malloc(2 * m * sizeof(float));
    NVC_REQUIRE(h != NULL, "out of host memory for the RoPE table");
    for (int p = 0; p < t->len; p++)
        for (int j = 0; j < half; j++) {
            const double a = (double)p * pow(theta, -2.0 * j / dh); // as model/cpu/rope.c
            h[(size_t)p * half + j] = (float)cos(a);
            h[m + (size_t)p * half + j] = (float)sin(a);
        }
    CUDA_CHECK(cudaMalloc(&t->cs, 2 * m * sizeof(float)));
    CUDA_CHECK(cudaMemcpy(t->cs, h, 2 * m * sizeof(float), cudaMemcpyHostToDevice));
    free(h);
    return t;
}

void nvc_rope_prepare(int max_pos, int dh, double theta_global, double theta_local) {
    if (dh <= 0 || dh % 2) return;
    rope_get(theta_global, dh, max_pos);
    rope_get(theta_local, dh, max_pos);
}

// cos and sin of position p, pair j: from the table, or computed when p is past it
__device__ __forceinline__ void rope_cs(const float *cs, int len, int half, int p, int j, double theta,
                                        int dh, float *c, float *s) {
    if (p >= 0 && p < len) {
        *c = cs[(size_t)p * half + j];
        *s = cs[(size_t)len * half + (size_t)p * half + j];
        return;
    }
    double sd, cd;
    sincos((double)p * pow(theta, -2.0 * j / dh), &sd, &cd);
    *c = (float)cd;
    *s = (float)sd;
}

// x1' = x1 c - x2 s, x2' = x2 c + x1 s, each product and sum rounded (as the CPU's float code)
__device__ __forceinline__ void rot(float x1, float x2, float c, float s, float *y1, float *y2) {
    *y1 = __fsub_rn(__fmul_rn(x1, c), __fmul_rn(x2, s));
    *y2 = __fadd_rn(__fmul_rn(x2, c), __fmul_rn(x1, s));
}

// fast path, dh/2 % 8 == 0: one thread per (token, q-or-k head, 8 pairs), 16-byte accesses
__global__ void rope_vec_kernel(bf16 *qkv, const int32_t *pos, const float *cs, int len, int n,
                                int H, int dh, double theta, float dir) {
    const int half = dh / 2, groups = half / 8;
    const size_t total = (size_t)n * 2 * H * groups;
    const int d = H * dh;
    for (size_t idx = blockIdx.x * (size_t)blockDim.x + threadIdx.x; idx < total;
         idx += (size_t)gridDim.x * blockDim.x) {
        const int g = (int)(idx % groups);
        const int hh = (int)((idx / groups) % (2 * H)); // q heads then k heads: contiguous
        const size_t t = idx / ((size_t)groups * 2 * H);
        const int p = pos[t], j0 = g * 8;
        bf16 *x = qkv + t * 3 * (size_t)d + (size_t)hh * dh;
        uint4 u1 = *(const uint4 *)(x + j0), u2 = *(const uint4 *)(x + j0 + half);
        __nv_bfloat162 *a = (__nv_bfloat162 *)&u1, *b = (__nv_bfloat162 *)&u2;
        float c[8], s[8];
        if (p >= 0 && p < len) {
            const float4 *cp = (const float4 *)(cs + (size_t)p * half + j0);
            const float4 *sp = (const float4 *)(cs + (size_t)len * half + (size_t)p * half + j0);
            const float4 c0 = cp[0], c1 = cp[1], s0 = sp[0], s1 = sp[1];
            c[0] = c0.x; c[1] = c0.y; c[2] = c0.z; c[3] = c0.w; c[4] = c1.x; c[5] = c1.y; c[6] = c1.z; c[7] = c1.w;
            s[0] = s0.x; s[1] = s0.y; s[2] = s0.z; s[3] = s0.w; s[4] = s1.x; s[5] = s1.y; s[6] = s1.z; s[7] = s1.w;
        } else {
            for (int e = 0; e < 8; e++) rope_cs(cs, len, half, p, j0 + e, theta, dh, &c[e], &s[e]);
        }
#pragma unroll
        for (int k = 0; k < 4; k++) {
            const float2 x1 = __bfloat1622float2(a[k]), x2 = __bfloat1622float2(b[k]);
            float y1a, y2a, y1b, y2b;
            rot(x1.x, x2.x, c[2 * k], dir * s[2 * k], &y1a, &y2a);
            rot(x1.y, x2.y, c[2 * k + 1], dir * s[2 * k + 1], &y1b, &y2b);
            a[k] = __floats2bfloat162_rn(y1a, y1b);
            b[k] = __floats2bfloat162_rn(y2a, y2b);
        }
        *(uint4 *)(x + j0) = u1;
        *(uint4 *)(x + j0 + half) = u2;
    }
}

// any even dh: one thread per (token, head, j < dh/2), q and k
__global__ void rope_kernel(bf16 *qkv, const int32_t *pos, const float *cs, int len, int n, int H,
                            int dh, double theta, float dir) {
    const int half = dh / 2;
    const size_t total = (size_t)n * H * half;
    const int d = H * dh;
    for (size_t idx = blockIdx.x * (size_t)blockDim.x + threadIdx.x; idx < total;
         idx += (size_t)gridDim.x * blockDim.x) {
        const int j = (int)(idx % half);
        const int h = (int)((idx / half) % H);
        const size_t t = idx / ((size_t)half * H);
        float c, s;
        rope_cs(cs, len, half, pos[t], j, theta, dh, &c, &s);
        s *= dir;
        bf16 *row = qkv + t * 3 * (size_t)d + (size_t)h * dh;
        for (int part = 0; part < 2; part++) { // q then k
            bf16 *p = row + (size_t)part * d;
            float y1, y2;
            rot(bf2f(p[j]), bf2f(p[j + half]), c, s, &y1, &y2);
            p[j] = f2bf(y1);
            p[j + half] = f2bf(y2);
        }
    }
}

static void rope(void *qkv, const int32_t *pos, int n, int H, int dh, double theta, float dir) {
    if (n <= 0) return;
    NVC_REQUIRE(dh % 2 == 0, "RoPE needs an even head dimension");
    const rope_table *t = rope_get(theta, dh, 0); // prepared (or built now, once)
    const int half = dh / 2;
    if (half % 8 == 0 && (uintptr_t)qkv % 16 == 0) {
        const size_t total = (size_t)n * 2 * H * (half / 8);
        rope_vec_kernel<<<nvc_blocks(total, 256), 256, 0, nvc()->stream>>>(
            (bf16 *)qkv, pos, t->cs, t->len, n, H, dh, theta, dir);
    } else {
        const size_t total = (size_t)n * H * half;
        rope_kernel<<<nvc_blocks(total, 256), 256, 0, nvc()->stream>>>((bf16 *)qkv, pos, t->cs,
                                                                      t->len, n, H, dh, theta, dir);
    }
    LAUNCH_CHECK();
}

void nvc_rope_fwd(void *qkv, const int32_t *pos, int n, int H, int dh, double theta) {
    rope(qkv, pos, n, H, dh, theta, 1.0f);
}

void nvc_rope_bwd(void *dqkv, const int32_t *pos, int n, int H, int dh, double theta) {
    rope(dqkv, pos, n, H, dh, theta, -1.0f);
}
