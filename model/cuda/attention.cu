// attention.cu - flash-style attention over packed variable-length segments (nv_attn_segs),
// bidirectional, global or local (key j visible to query i iff |i-j| <= window/2, both in
// the same segment). bf16 tensor cores through WMMA (sm_80 and sm_90a alike), fp32 scores
// and online softmax; nothing of size L x L ever goes to device memory.
//
// Forward: one block per (segment, 64-query tile, head). For each 64-key tile in the window:
//   S = Q K^T (fp32) -> running max m and sum l -> P (bf16) -> O = O * corr + P V.
//   Saves lse = m + log l (natural log, of the scaled scores) for the backward.
// Backward (deterministic, no float atomics): D = rowsum(dO * O) first; then
//   kernel dkdv: one block per key tile, looping over the query tiles that see it,
//                recomputes P = exp(S - lse), dV += P^T dO, dS = P (dP - D), dK += dS^T Q;
//   kernel dq:   one block per query tile, looping over key tiles, dQ += dS K.
// Each output element is written by exactly one block, summed in a fixed order.
//
// Layout: qkv [n, 3d] rows q|k|v, head-major (head h at columns h*dh .. h*dh+dh-1 of each
// third); out [n, d]; lse [n, H]. Tokens in no segment (pads) get zero out, lse and dqkv.
// Head dims: multiples of 8 up to 128, on tiles 32, 64 or 128 wide (zero-padded columns).
//
// nvc_attention_fwd / _bwd dispatch between these kernels and cuDNN's fused SDPA
// (attention_cudnn.cu) per [train] attention; see attn_run below.
#include <mma.h>

#include "common.cuh"
#include "cuda_api.h"
#include "model/cuda/attn_plan.h"

using namespace nvcuda;

#define ATT_BQ 64      // queries per tile
#define ATT_BK 64      // keys per tile (the softmax step assumes 64: two columns per lane)
#define ATT_THREADS 128 // 4 warps, each owning 16 rows of a 64-row tile
#define LDS_F (ATT_BK + 4) // fp32 score tile row stride (pad: bank spread, 16-byte rows)
#define LDP_B (ATT_BK + 8) // bf16 P / dS tile row stride

typedef wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> FragA;
typedef wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::col_major> FragAT; // A^T view
typedef wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major> FragB;
typedef wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major> FragBT; // B^T view
typedef wmma::fragment<wmma::accumulator, 16, 16, 16, float> FragC;

// shared-memory carve-up, every region a multiple of 128 bytes (WMMA wants 32-byte alignment)
__host__ __device__ constexpr size_t att_round(size_t b) { return (b + 127) / 128 * 128; }
template <int DH> struct AttSmem {
    static constexpr int LDB = DH + 8; // bf16 Q/K/V/dO tile row stride
    static constexpr size_t tile = att_round((size_t)64 * LDB * 2);
    static constexpr size_t sf = att_round((size_t)64 * LDS_F * 4);
    static constexpr size_t pb = att_round((size_t)64 * LDP_B * 2);
    static constexpr size_t of = att_round((size_t)64 * (DH + 4) * 4);
    static constexpr size_t vec = att_round(64 * 4);
    static constexpr size_t stage = 4 * 16 * 16 * 4; // per-warp 16x16 fp32 staging
    // forward: Q K V, S, P, O, m l corr
    static constexpr size_t fwd = 3 * tile + sf + pb + of + 3 * vec;
    // backward (dkdv and dq): Q dO K V, S, dP, P, dS, lse D, staging
    static constexpr size_t bwd = 4 * tile + 2 * sf + 2 * pb + 2 * vec + stage;
};

// 64 rows x DH columns from global (row stride `stride` elements) into shared memory,
// 16 bytes per access; rows at or past `valid` are zero so they stay finite (0 * V = 0), and
// so are the padding columns dh..DH-1 (a head dim below the tile width adds exact zeros)
template <int DH>
__device__ __forceinline__ void load_tile(bf16 *dst, const bf16 *src, size_t stride, int valid,
                                          int dh) {
    constexpr int VPR = DH / 8;
    constexpr int LDB = DH + 8;
    for (int i = threadIdx.x; i < 64 * VPR; i += ATT_THREADS) {
        int r = i / VPR, c = (i % VPR) * 8;
        uint4 v = make_uint4(0u, 0u, 0u, 0u);
        if (r < valid && c < dh) v = *(const uint4 *)(src + (size_t)r * stride + c);
        *(uint4 *)(dst + r * LDB + c) = v;
    }
}

// C[16 x 64] (fp32, row stride LDS_F) = A[16 x DH] B[64 x DH]^T, one warp; A and B bf16 tiles
template <int DH>
__device__ __forceinline__ void warp_abt(float *C, const bf16 *A, const bf16 *B) {
    constexpr int LDB = DH + 8;
    FragC acc[ATT_BK / 16];
#pragma unroll
    for (int j = 0; j < ATT_BK / 16; j++) wmma::fill_fragment(acc[j], 0.0f);
#pragma unroll
    for (int kk = 0; kk < DH / 16; kk++) {
        FragA a;
        wmma::load_matrix_sync(a, A + kk * 16, LDB);
#pragma unroll
        for (int j = 0; j < ATT_BK / 16; j++) {
            FragBT b;
            wmma::load_matrix_sync(b, B + j * 16 * LDB + kk * 16, LDB);
            wmma::mma_sync(acc[j], a, b, acc[j]);
        }
    }
#pragma unroll
    for (int j = 0; j < ATT_BK / 16; j++)
        wmma::store_matrix_sync(C + j * 16, acc[j], LDS_F, wmma::mem_row_major);
}

__device__ __forceinline__ bool att_visible(int i, int j, int len, int window) {
    if (i >= len || j >= len) return false;
    return window == 0 || abs(i - j) <= window / 2;
}

// ---------------------------------------------------------------------------------------
// forward

template <int DH>
__global__ void __launch_bounds__(ATT_THREADS)
    attn_fwd_kernel(bf16 *out, float *lse, const bf16 *qkv, const int32_t *seg_start,
                    const int32_t *seg_len, int H, int dh, int window, float scale) {
    typedef AttSmem<DH> SM;
    constexpr int LDB = SM::LDB, LDO = DH + 4;
    const int s = blockIdx.x, q0 = blockIdx.y * ATT_BQ, h = blockIdx.z;
    const int len = seg_len[s];
    if (q0 >= len) return;
    const int start = seg_start[s];
    const int d = H * dh;
    const size_t stride = 3 * (size_t)d;
    const bf16 *base = qkv + (size_t)start * stride + (size_t)h * dh;

    extern __shared__ __align__(128) unsigned char smem[];
    bf16 *Qs = (bf16 *)smem;
    bf16 *Ks = (bf16 *)(smem + SM::tile);
    bf16 *Vs = (bf16 *)(smem + 2 * SM::tile);
    float *Ss = (float *)(smem + 3 * SM::tile);
    bf16 *Ps = (bf16 *)(smem + 3 * SM::tile + SM::sf);
    float *Os = (float *)(smem + 3 * SM::tile + SM::sf + SM::pb);
    float *m_s = (float *)(smem + 3 * SM::tile + SM::sf + SM::pb + SM::of);
    float *l_s = m_s + SM::vec / 4;
    float *c_s = l_s + SM::vec / 4;

    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int r0 = warp * 16; // this warp's rows of every 64-row tile
    load_tile<DH>(Qs, base + (size_t)q0 * stride, stride, min(ATT_BQ, len - q0), dh);
    for (int i = lane; i < 16 * DH; i += 32) Os[(r0 + i / DH) * LDO + i % DH] = 0.0f;
    if (lane < 16) {
        m_s[r0 + lane] = -INFINITY;
        l_s[r0 + lane] = 0.0f;
    }
    // keys any query of this tile can see
    int kbeg = 0, kend = len;
    if (window > 0) {
        kbeg = max(0, q0 - window / 2);
        kend = min(len, q0 + ATT_BQ + window / 2);
    }
    for (int k0 = kbeg / ATT_BK * ATT_BK; k0 < kend; k0 += ATT_BK) {
        __syncthreads(); // everyone is done with the previous K, V
        const int kvalid = min(ATT_BK, len - k0);
        load_tile<DH>(Ks, base + d + (size_t)k0 * stride, stride, kvalid, dh);
        load_tile<DH>(Vs, base + 2 * (size_t)d + (size_t)k0 * stride, stride, kvalid, dh);
        __syncthreads();
        // from here to the end of the iteration a warp touches only its own 16 rows
        warp_abt<DH>(Ss + r0 * LDS_F, Qs + r0 * LDB, Ks);
        __syncwarp();
        for (int rr = 0; rr < 16; rr++) {
            const int row = r0 + rr, qi = q0 + row;
            const int j0 = k0 + lane, j1 = k0 + lane + 32;
            float s0 = att_visible(qi, j0, len, window) ? Ss[row * LDS_F + lane] * scale : -INFINITY;
            float s1 = att_visible(qi, j1, len, window) ? Ss[row * LDS_F + lane + 32] * scale : -INFINITY;
            const float m_old = m_s[row];
            const float m_new = fmaxf(m_old, warp_max(fmaxf(s0, s1)));
            // a row with nothing visible yet keeps m = -inf; its p and corr must be 0, not NaN
            const float p0 = m_new == -INFINITY ? 0.0f : __expf(s0 - m_new);
            const float p1 = m_new == -INFINITY ? 0.0f : __expf(s1 - m_new);
            const float corr = m_old == -INFINITY ? 0.0f : __expf(m_old - m_new);
            const float sum = warp_sum(p0 + p1);
            Ps[row * LDP_B + lane] = f2bf(p0);
            Ps[row * LDP_B + lane + 32] = f2bf(p1);
            __syncwarp(); // all lanes read m_s[row] before lane 0 writes it
            if (lane == 0) {
                m_s[row] = m_new;
                l_s[row] = l_s[row] * corr + sum;
                c_s[row] = corr;
            }
        }
        __syncwarp();
        for (int i = lane; i < 16 * DH; i += 32) Os[(r0 + i / DH) * LDO + i % DH] *= c_s[r0 + i / DH];
        __syncwarp();
        // O[16 x DH] += P[16 x 64] V[64 x DH]
#pragma unroll
        for (int j = 0; j < DH / 16; j++) {
            FragC acc;
            wmma::load_matrix_sync(acc, Os + r0 * LDO + j * 16, LDO, wmma::mem_row_major);
#pragma unroll
            for (int kk = 0; kk < ATT_BK / 16; kk++) {
                FragA a;
                FragB b;
                wmma::load_matrix_sync(a, Ps + r0 * LDP_B + kk * 16, LDP_B);
                wmma::load_matrix_sync(b, Vs + kk * 16 * LDB + j * 16, LDB);
                wmma::mma_sync(acc, a, b, acc);
            }
            wmma::store_matrix_sync(Os + r0 * LDO + j * 16, acc, LDO, wmma::mem_row_major);
        }
        __syncwarp();
    }
    // normalize and write this warp's rows (every query sees at least itself: l > 0)
    for (int i = lane; i < 16 * DH; i += 32) {
        const int row = r0 + i / DH, c = i % DH;
        if (q0 + row < len && c < dh)
            out[(size_t)(start + q0 + row) * d + (size_t)h * dh + c] = f2bf(Os[row * LDO + c] / l_s[row]);
    }
    if (lane < 16 && q0 + r0 + lane < len)
        lse[(size_t)(start + q0 + r0 + lane) * H + h] = m_s[r0 + lane] + logf(l_s[r0 + lane]);
}

// ---------------------------------------------------------------------------------------
// backward

// D[t, h] = sum_c dO[t, h, c] * O[t, h, c]; one warp per (token, head)
__global__ void attn_bwd_dot_kernel(float *D, const bf16 *dout, const bf16 *out, int n, int H, int dh) {
    const size_t w = (blockIdx.x * (size_t)blockDim.x + threadIdx.x) / 32;
    const int lane = threadIdx.x % 32;
    if (w >= (size_t)n * H) return;
    const size_t o = w * dh; // [n, H, dh] is [n, d]
    float s = 0.0f;
    for (int c = lane; c < dh; c += 32) s += bf2f(dout[o + c]) * bf2f(out[o + c]);
    s = warp_sum(s);
    if (lane == 0) D[w] = s;
}

// P and dS of one 64x64 tile, this warp's 16 query rows; Ss holds Q K^T, dPs holds dO V^T
__device__ __forceinline__ void warp_p_ds(bf16 *Ps, bf16 *dSs, const float *Ss, const float *dPs,
                                          const float *lse_s, const float *D_s, int r0, int q0,
                                          int k0, int len, int window, float scale) {
    const int lane = threadIdx.x % 32;
    for (int i = lane; i < 16 * ATT_BK; i += 32) {
        const int row = r0 + i / ATT_BK, col = i % ATT_BK;
        float p = 0.0f, ds = 0.0f;
        if (att_visible(q0 + row, k0 + col, len, window)) {
            p = __expf(Ss[row * LDS_F + col] * scale - lse_s[row]);
            ds = p * (dPs[row * LDS_F + col] - D_s[row]);
        }
        if (Ps) Ps[row * LDP_B + col] = f2bf(p);
        dSs[row * LDP_B + col] = f2bf(ds);
    }
}

// lse and D of query rows q0.. (rows past the segment: lse = +inf makes P = 0)
__device__ __forceinline__ void load_rowstats(float *lse_s, float *D_s, const float *lse,
                                              const float *Dg, int start, int q0, int len, int H,
                                              int h) {
    for (int i = threadIdx.x; i < ATT_BQ; i += ATT_THREADS) {
        const bool ok = q0 + i < len;
        const size_t t = (size_t)(start + q0 + i) * H + h;
        lse_s[i] = ok ? lse[t] : INFINITY;
        D_s[i] = ok ? Dg[t] : 0.0f;
    }
}

// write a warp's 16 x DH accumulators (times mul) as bf16 rows of dqkv, via 16x16 staging
template <int DH>
__device__ __forceinline__ void warp_store_rows(bf16 *dst, size_t stride, int valid_rows, int dh,
                                                FragC *acc, float *stage, float mul) {
    const int lane = threadIdx.x % 32;
#pragma unroll
    for (int j = 0; j < DH / 16; j++) {
        wmma::store_matrix_sync(stage, acc[j], 16, wmma::mem_row_major);
        __syncwarp();
        for (int i = lane; i < 256; i += 32) {
            const int r = i / 16, c = i % 16;
            if (r < valid_rows && j * 16 + c < dh) dst[(size_t)r * stride + j * 16 + c] = f2bf(stage[i] * mul);
        }
        __syncwarp();
    }
}

// carve-up shared by both backward kernels
#define ATT_BWD_SMEM                                                                        \
    typedef AttSmem<DH> SM;                                                                 \
    extern __shared__ __align__(128) unsigned char smem[];                                  \
    bf16 *Qs = (bf16 *)smem;                                                                \
    bf16 *dOs = (bf16 *)(smem + SM::tile);                                                  \
    bf16 *Ks = (bf16 *)(smem + 2 * SM::tile);                                               \
    bf16 *Vs = (bf16 *)(smem + 3 * SM::tile);                                               \
    float *Ss = (float *)(smem + 4 * SM::tile);                                             \
    float *dPs = (float *)(smem + 4 * SM::tile + SM::sf);                                   \
    bf16 *Ps = (bf16 *)(smem + 4 * SM::tile + 2 * SM::sf);                                  \
    bf16 *dSs = (bf16 *)(smem + 4 * SM::tile + 2 * SM::sf + SM::pb);                        \
    float *lse_s = (float *)(smem + 4 * SM::tile + 2 * SM::sf + 2 * SM::pb);                \
    float *D_s = lse_s + SM::vec / 4;                                                       \
    float *stage = (float *)(smem + 4 * SM::tile + 2 * SM::sf + 2 * SM::pb + 2 * SM::vec) + \
                   (threadIdx.x / 32) * 256;

// dK and dV of one key tile: loop over the query tiles that can see it
template <int DH>
__global__ void __launch_bounds__(ATT_THREADS)
    attn_bwd_dkdv_kernel(bf16 *dqkv, const bf16 *dout, const bf16 *qkv, const float *lse,
                         const float *Dg, const int32_t *seg_start, const int32_t *seg_len, int H,
                         int dh, int window, float scale) {
    constexpr int LDB = DH + 8;
    const int s = blockIdx.x, k0 = blockIdx.y * ATT_BK, h = blockIdx.z;
    const int len = seg_len[s];
    if (k0 >= len) return;
    const int start = seg_start[s];
    const int d = H * dh;
    const size_t stride = 3 * (size_t)d;
    const bf16 *base = qkv + (size_t)start * stride + (size_t)h * dh;
    const bf16 *dobase = dout + (size_t)start * d + (size_t)h * dh;
    ATT_BWD_SMEM
    const int warp = threadIdx.x / 32, r0 = warp * 16;
    const int kvalid = min(ATT_BK, len - k0);
    load_tile<DH>(Ks, base + d + (size_t)k0 * stride, stride, kvalid, dh);
    load_tile<DH>(Vs, base + 2 * (size_t)d + (size_t)k0 * stride, stride, kvalid, dh);
    FragC dK[DH / 16], dV[DH / 16]; // this warp's 16 key rows
#pragma unroll
    for (int j = 0; j < DH / 16; j++) {
        wmma::fill_fragment(dK[j], 0.0f);
        wmma::fill_fragment(dV[j], 0.0f);
    }
    int qbeg = 0, qend = len;
    if (window > 0) {
        qbeg = max(0, k0 - window / 2);
        qend = min(len, k0 + ATT_BK + window / 2);
    }
    for (int q0 = qbeg / ATT_BQ * ATT_BQ; q0 < qend; q0 += ATT_BQ) {
        __syncthreads(); // everyone is done with the previous Q, dO, P, dS
        const int qvalid = min(ATT_BQ, len - q0);
        load_tile<DH>(Qs, base + (size_t)q0 * stride, stride, qvalid, dh);
        load_tile<DH>(dOs, dobase + (size_t)q0 * d, d, qvalid, dh);
        load_rowstats(lse_s, D_s, lse, Dg, start, q0, len, H, h);
        __syncthreads();
        warp_abt<DH>(Ss + r0 * LDS_F, Qs + r0 * LDB, Ks);   // S  = Q K^T   (query rows)
        warp_abt<DH>(dPs + r0 * LDS_F, dOs + r0 * LDB, Vs); // dP = dO V^T
        __syncwarp();
        warp_p_ds(Ps, dSs, Ss, dPs, lse_s, D_s, r0, q0, k0, len, window, scale);
        __syncthreads(); // the transposed products below read every query row
        // dV[16 keys x DH] += P^T dO ;  dK += dS^T Q   (k loop over the 64 queries)
#pragma unroll
        for (int kk = 0; kk < ATT_BQ / 16; kk++) {
            FragAT pt, dst;
            wmma::load_matrix_sync(pt, Ps + kk * 16 * LDP_B + r0, LDP_B);
            wmma::load_matrix_sync(dst, dSs + kk * 16 * LDP_B + r0, LDP_B);
#pragma unroll
            for (int j = 0; j < DH / 16; j++) {
                FragB b;
                wmma::load_matrix_sync(b, dOs + kk * 16 * LDB + j * 16, LDB);
                wmma::mma_sync(dV[j], pt, b, dV[j]);
                wmma::load_matrix_sync(b, Qs + kk * 16 * LDB + j * 16, LDB);
                wmma::mma_sync(dK[j], dst, b, dK[j]);
            }
        }
    }
    const int valid_rows = min(16, kvalid - r0);
    bf16 *drow = dqkv + (size_t)(start + k0 + r0) * stride + (size_t)h * dh;
    warp_store_rows<DH>(drow + d, stride, valid_rows, dh, dK, stage, scale);
    warp_store_rows<DH>(drow + 2 * (size_t)d, stride, valid_rows, dh, dV, stage, 1.0f);
}

// dQ of one query tile: loop over the key tiles it can see
template <int DH>
__global__ void __launch_bounds__(ATT_THREADS)
    attn_bwd_dq_kernel(bf16 *dqkv, const bf16 *dout, const bf16 *qkv, const float *lse,
                       const float *Dg, const int32_t *seg_start, const int32_t *seg_len, int H,
                       int dh, int window, float scale) {
    constexpr int LDB = DH + 8;
    const int s = blockIdx.x, q0 = blockIdx.y * ATT_BQ, h = blockIdx.z;
    const int len = seg_len[s];
    if (q0 >= len) return;
    const int start = seg_start[s];
    const int d = H * dh;
    const size_t stride = 3 * (size_t)d;
    const bf16 *base = qkv + (size_t)start * stride + (size_t)h * dh;
    ATT_BWD_SMEM
    (void)Ps;
    const int warp = threadIdx.x / 32, r0 = warp * 16;
    const int qvalid = min(ATT_BQ, len - q0);
    load_tile<DH>(Qs, base + (size_t)q0 * stride, stride, qvalid, dh);
    load_tile<DH>(dOs, dout + (size_t)(start + q0) * d + (size_t)h * dh, d, qvalid, dh);
    load_rowstats(lse_s, D_s, lse, Dg, start, q0, len, H, h);
    FragC dQ[DH / 16];
#pragma unroll
    for (int j = 0; j < DH / 16; j++) wmma::fill_fragment(dQ[j], 0.0f);
    int kbeg = 0, kend = len;
    if (window > 0) {
        kbeg = max(0, q0 - window / 2);
        kend = min(len, q0 + ATT_BQ + window / 2);
    }
    for (int k0 = kbeg / ATT_BK * ATT_BK; k0 < kend; k0 += ATT_BK) {
        __syncthreads(); // everyone is done with the previous K, V
        const int kvalid = min(ATT_BK, len - k0);
        load_tile<DH>(Ks, base + d + (size_t)k0 * stride, stride, kvalid, dh);
        load_tile<DH>(Vs, base + 2 * (size_t)d + (size_t)k0 * stride, stride, kvalid, dh);
        __syncthreads();
        // a warp touches only its own 16 query rows from here on
        warp_abt<DH>(Ss + r0 * LDS_F, Qs + r0 * LDB, Ks);
        warp_abt<DH>(dPs + r0 * LDS_F, dOs + r0 * LDB, Vs);
        __syncwarp();
        warp_p_ds(NULL, dSs, Ss, dPs, lse_s, D_s, r0, q0, k0, len, window, scale);
        __syncwarp();
        // dQ[16 x DH] += dS[16 x 64] K[64 x DH]
#pragma unroll
        for (int kk = 0; kk < ATT_BK / 16; kk++) {
            FragA a;
            wmma::load_matrix_sync(a, dSs + r0 * LDP_B + kk * 16, LDP_B);
#pragma unroll
            for (int j = 0; j < DH / 16; j++) {
                FragB b;
                wmma::load_matrix_sync(b, Ks + kk * 16 * LDB + j * 16, LDB);
                wmma::mma_sync(dQ[j], a, b, dQ[j]);
            }
        }
    }
    bf16 *drow = dqkv + (size_t)(start + q0 + r0) * stride + (size_t)h * dh;
    warp_store_rows<DH>(drow, stride, min(16, qvalid - r0), dh, dQ, stage, scale);
}

// ---------------------------------------------------------------------------------------
// host side

static void att_check(const void *p, const char *what) {
    if ((uintptr_t)p % 16) {
        fprintf(stderr, "[CUDA BACKEND ERROR] attention: %s is not 16-byte aligned\n", what);
        NVC_REQUIRE((uintptr_t)p % 16 == 0, "attention tensors must be 16-byte aligned");
    }
}

// raise the kernel's dynamic shared-memory limit (once per kernel) and check the device has it
template <typename K> static void att_smem(K kernel, size_t bytes, int *done) {
    NVC_REQUIRE(bytes <= nvc()->max_smem_optin,
                "this GPU has too little shared memory per block for the attention tile");
    if (!*done) {
        CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
        *done = 1;
    }
}

template <int DH>
static void attn_fwd_launch(bf16 *out, float *lse, const bf16 *qkv, const nv_attn_segs *segs,
                            int H, int dh, int window) {
    static int done = 0;
    const size_t bytes = AttSmem<DH>::fwd;
    att_smem(attn_fwd_kernel<DH>, bytes, &done);
    dim3 grid(segs->n_segs, (segs->max_len + ATT_BQ - 1) / ATT_BQ, H);
    attn_fwd_kernel<DH><<<grid, ATT_THREADS, bytes, nvc()->stream>>>(
        out, lse, qkv, segs->start, segs->len, H, dh, window, (float)(1.0 / sqrt((double)dh)));
    LAUNCH_CHECK();
}

template <int DH>
static void attn_bwd_launch(bf16 *dqkv, const bf16 *dout, const bf16 *qkv, const float *lse,
                            const float *D, const nv_attn_segs *segs, int H, int dh, int window) {
    static int done_kv = 0, done_q = 0;
    const size_t bytes = AttSmem<DH>::bwd;
    att_smem(attn_bwd_dkdv_kernel<DH>, bytes, &done_kv);
    att_smem(attn_bwd_dq_kernel<DH>, bytes, &done_q);
    dim3 grid(segs->n_segs, (segs->max_len + ATT_BQ - 1) / ATT_BQ, H);
    const float scale = (float)(1.0 / sqrt((double)dh));
    attn_bwd_dkdv_kernel<DH><<<grid, ATT_THREADS, bytes, nvc()->stream>>>(
        dqkv, dout, qkv, lse, D, segs->start, segs->len, H, dh, window, scale);
    LAUNCH_CHECK();
    attn_bwd_dq_kernel<DH><<<grid, ATT_THREADS, bytes, nvc()->stream>>>(
        dqkv, dout, qkv, lse, D, segs->start, segs->len, H, dh, window, scale);
    LAUNCH_CHECK();
}

// head dims up to 128 in steps of 8 (16-byte loads); the tile width is the next of 32, 64, 128
#define ATT_DH_HINT "the CUDA attention needs a head dim (hidden-size / num-attn-heads) that is a multiple of 8 and at most 128"
#define ATT_DH_OK(dh) ((dh) > 0 && (dh) % 8 == 0 && (dh) <= 128)

static void native_fwd(void *out, void *lse, const void *qkv, const nv_attn_segs *segs, int H,
                       int dh, int window) {
    NVC_REQUIRE((segs->max_len + ATT_BQ - 1) / ATT_BQ <= 65535, "segment too long");
    NVC_REQUIRE(ATT_DH_OK(dh), ATT_DH_HINT);
    bf16 *o = (bf16 *)out;
    float *l = (float *)lse;
    const bf16 *x = (const bf16 *)qkv;
    if (dh <= 32) attn_fwd_launch<32>(o, l, x, segs, H, dh, window);
    else if (dh <= 64) attn_fwd_launch<64>(o, l, x, segs, H, dh, window);
    else attn_fwd_launch<128>(o, l, x, segs, H, dh, window);
}

static void native_bwd(void *dqkv, const void *dout, const void *qkv, const void *out,
                       const void *lse, const nv_attn_segs *segs, int n, int H, int dh, int window) {
    NVC_REQUIRE(ATT_DH_OK(dh), ATT_DH_HINT);
    float *D = (float *)nvc_scratch((size_t)n * H * sizeof(float));
    const size_t threads = (size_t)n * H * 32;
    attn_bwd_dot_kernel<<<(unsigned)((threads + 255) / 256), 256, 0, nvc()->stream>>>(
        D, (const bf16 *)dout, (const bf16 *)out, n, H, dh);
    LAUNCH_CHECK();
    bf16 *g = (bf16 *)dqkv;
    const bf16 *go = (const bf16 *)dout, *x = (const bf16 *)qkv;
    const float *l = (const float *)lse;
    if (dh <= 32) attn_bwd_launch<32>(g, go, x, l, D, segs, H, dh, window);
    else if (dh <= 64) attn_bwd_launch<64>(g, go, x, l, D, segs, H, dh, window);
    else attn_bwd_launch<128>(g, go, x, l, D, segs, H, dh, window);
}

// ---------------------------------------------------------------------------------------
// pads: rows of [0, n) in no segment get zeros (out, lse, dqkv), written by a kernel that
// visits only those rows (the gaps before each segment and after the last), not a memset of
// the whole tensor. Segments are sorted by start (backend.h).

__global__ void attn_zero_pads_kernel(bf16 *x, int width, float *y, int ywidth, const int32_t *start,
                                      const int32_t *len, int n_segs, int n) {
    const int s = blockIdx.x; // the gap before segment s (s = n_segs: after the last)
    const int lo = s == 0 ? 0 : start[s - 1] + len[s - 1];
    const int hi = s == n_segs ? n : start[s];
    const bool vec = width % 8 == 0 && (uintptr_t)x % 16 == 0;
    for (int r = lo + blockIdx.y; r < hi; r += gridDim.y) {
        bf16 *row = x + (size_t)r * width;
        if (vec)
            for (int c = threadIdx.x * 8; c < width; c += blockDim.x * 8)
                *(uint4 *)(row + c) = make_uint4(0u, 0u, 0u, 0u);
        else
            for (int c = threadIdx.x; c < width; c += blockDim.x) row[c] = f2bf(0.0f);
        if (y)
            for (int c = threadIdx.x; c < ywidth; c += blockDim.x) y[(size_t)r * ywidth + c] = 0.0f;
    }
}

static void zero_pads(void *x, int width, void *y, int ywidth, const nv_attn_segs *segs, int n) {
    const int ns = segs->n_segs > 0 ? segs->n_segs : 0;
    dim3 grid(ns + 1, 8);
    attn_zero_pads_kernel<<<grid, 128, 0, nvc()->stream>>>((bf16 *)x, width, (float *)y, ywidth,
                                                           segs->start, segs->len, ns, n);
    LAUNCH_CHECK();
}

// ---------------------------------------------------------------------------------------
// which implementation ([train] attention, model/cuda/attn_plan.h): decided once per
// direction and layer kind (global / local), at its first call, on that call's real shapes;
// in auto mode by timing both (CUDA events, after one untimed run each). The choice is printed
// once, by the first rank only. A later shape cuDNN cannot serve falls back to native (auto)
// or stops (cudnn).

static struct {
    int mode;         // NV_ATTN_MODE_*
    int choice[2][2]; // [bwd][local]: 0 undecided, else NV_ATTN_MODE_CUDNN / _NATIVE
    int warned[2][2]; // a fallback to native was reported
} g_attsel;

extern "C" void nv_cuda_set_attention(int mode) {
    g_attsel.mode = mode;
    memset(g_attsel.choice, 0, sizeof g_attsel.choice);
}

extern "C" int nv_cuda_get_attention_choices(int c[4]) {
    int any = 0;
    for (int i = 0; i < 4; i++) any |= (c[i] = g_attsel.choice[i / 2][i % 2]) != 0;
    return any;
}

extern "C" void nv_cuda_set_attention_choices(const int c[4]) {
    if (g_attsel.mode != NV_ATTN_MODE_AUTO) return; // an explicit mode wins
    for (int i = 0; i < 4; i++)
        if (c[i] == NV_ATTN_MODE_CUDNN || c[i] == NV_ATTN_MODE_NATIVE) g_attsel.choice[i / 2][i % 2] = c[i];
}

static int first_rank(void) {
    const char *vars[] = {"OMPI_COMM_WORLD_RANK", "PMI_RANK", "SLURM_PROCID", "PMIX_RANK"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        if (v && *v) return atoi(v) == 0;
    }
    return 1;
}

template <class F> static double time_ms(F run) {
    cudaEvent_t e0, e1;
    CUDA_CHECK(cudaEventCreate(&e0));
    CUDA_CHECK(cudaEventCreate(&e1));
    CUDA_CHECK(cudaEventRecord(e0, nvc()->stream));
    run();
    CUDA_CHECK(cudaEventRecord(e1, nvc()->stream));
    CUDA_CHECK(cudaEventSynchronize(e1));
    float ms = 0;
    CUDA_CHECK(cudaEventElapsedTime(&ms, e0, e1));
    CUDA_CHECK(cudaEventDestroy(e0));
    CUDA_CHECK(cudaEventDestroy(e1));
    return ms;
}

// Runs the chosen implementation (deciding first when needed). run_cudnn returns 0 when cuDNN
// ran, -1 when it cannot serve the shape.
template <class N, class C> static void attn_run(int bwd, int window, N run_native, C run_cudnn) {
    const int local = window > 0;
    int *ch = &g_attsel.choice[bwd][local];
    const char *what = bwd ? (local ? "backward, local layers" : "backward, global layers")
                           : (local ? "forward, local layers" : "forward, global layers");
    if (!*ch) {
        const int mode = g_attsel.mode;
        int ok = 0;
        double tn = -1, tc = -1;
        if (mode != NV_ATTN_MODE_NATIVE) ok = run_cudnn() == 0; // builds the graph, warms up
        if (ok && mode == NV_ATTN_MODE_AUTO) {
            run_native(); // warm-up (module load, shared-memory attributes)
            tn = time_ms(run_native);
            tc = time_ms([&] { run_cudnn(); });
        }
        char msg[512];
        const int c = nv_attn_choose(mode, ok, nvc_cudnn_attn_why(), tn, tc, what, msg, sizeof msg);
        if (c < 0) {
            fprintf(stderr, "[CUDA BACKEND ERROR] %s\n", msg);
            exit(EXIT_FAILURE);
        }
        if (first_rank()) printf("%s\n", msg);
        *ch = c;
        // the outputs must be the chosen implementation's: cuDNN ran last when it was chosen
        if (c == NV_ATTN_MODE_NATIVE) run_native();
        return;
    }
    if (*ch == NV_ATTN_MODE_CUDNN) {
        if (run_cudnn() == 0) return;
        if (g_attsel.mode == NV_ATTN_MODE_CUDNN) {
            fprintf(stderr, "[CUDA BACKEND ERROR] [train] attention = cudnn, but cuDNN cannot run "
                    "attention %s for this batch: %s\n---> HINT: set [train] attention = auto or native\n",
                    what, nvc_cudnn_attn_why());
            exit(EXIT_FAILURE);
        }
        if (!g_attsel.warned[bwd][local] && first_rank())
            printf("attention %s: native for a batch cuDNN cannot serve (%s)\n", what, nvc_cudnn_attn_why());
        g_attsel.warned[bwd][local] = 1;
    }
    run_native();
}

void nvc_attention_prepare(int max_tokens, int seq_len, int H, int dh, int local_window) {
    if (g_attsel.mode != NV_ATTN_MODE_NATIVE)
        nvc_cudnn_attn_prepare(max_tokens, seq_len, H, dh, local_window);
}

void nvc_attention_fwd(void *out, void *lse, const void *qkv, const nv_attn_segs *segs, int n,
                       int H, int dh, int window) {
    if (n <= 0) return;
    att_check(qkv, "qkv");
    att_check(out, "out");
    zero_pads(out, H * dh, lse, H, segs, n); // pads (tokens in no segment) read as zero
    if (segs->n_segs <= 0 || segs->max_len <= 0) return;
    attn_run(0, window, [&] { native_fwd(out, lse, qkv, segs, H, dh, window); },
             [&] { return nvc_cudnn_attn_fwd(out, lse, qkv, segs, n, H, dh, window); });
}

void nvc_attention_bwd(void *dqkv, const void *dout, const void *qkv, const void *out,
                       const void *lse, const nv_attn_segs *segs, int n, int H, int dh, int window) {
    if (n <= 0) return;
    att_check(qkv, "qkv");
    att_check(dqkv, "dqkv");
    att_check(dout, "dout");
    zero_pads(dqkv, 3 * H * dh, NULL, 0, segs, n);
    if (segs->n_segs <= 0 || segs->max_len <= 0) return;
    attn_run(1, window, [&] { native_bwd(dqkv, dout, qkv, out, lse, segs, n, H, dh, window); },
             [&] { return nvc_cudnn_attn_bwd(dqkv, dout, qkv, out, lse, segs, n, H, dh, window); });
}

// D = rowsum(dO o O) per (token, head) of the backward
size_t nvc_attention_scratch_bytes(const nv_backend_plan *p) {
    return (size_t)p->max_tokens * p->H * sizeof(float);
}
