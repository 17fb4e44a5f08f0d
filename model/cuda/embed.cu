// embed.cu - token (+ structure) embedding lookup (16-byte accesses) and its backward. The backward is a
// histogram-like sum over tokens; it is made deterministic without float atomics by a
// two-pass reduction: per chunk of tokens, per-row partial sums (fixed order) go to scratch,
// then one pass adds the chunks in chunk order into dE.
#include "common.cuh"

#define EMB_CHUNK 256 // tokens per partial sum (fixed: the bits must not depend on the GPU)
#define EMB_COLS 128  // columns per block = threads per block
#define EMB_VB 32     // embedding rows per block in the partial pass (shared accumulators)
#define N_STRUCT_ROWS 4

// one block per token; VEC = 8 columns per thread (16-byte accesses) when d allows, else 1
template <int VEC>
__global__ void embed_fwd_kernel(bf16 *out, const int32_t *tok, const int32_t *sin,
                                 const bf16 *E_tok, const bf16 *E_struct, int d) {
    const int i = blockIdx.x;
    const bf16 *et = E_tok + (size_t)tok[i] * d;
    const bf16 *es = E_struct ? E_struct + (size_t)sin[i] * d : NULL;
    bf16 *o = out + (size_t)i * d;
    for (int c = threadIdx.x * VEC; c < d; c += blockDim.x * VEC) {
        if (VEC == 8) {
            uint4 u = *(const uint4 *)(et + c);
            if (es) {
                const uint4 v = *(const uint4 *)(es + c);
                __nv_bfloat162 *a = (__nv_bfloat162 *)&u;
                const __nv_bfloat162 *b = (const __nv_bfloat162 *)&v;
#pragma unroll
                for (int k = 0; k < 4; k++) {
                    const float2 x = __bfloat1622float2(a[k]), y = __bfloat1622float2(b[k]);
                    a[k] = __floats2bfloat162_rn(x.x + y.x, x.y + y.y);
                }
            }
            *(uint4 *)(o + c) = u;
        } else {
            float v = bf2f(et[c]);
            if (es) v += bf2f(es[c]);
            o[c] = f2bf(v);
        }
    }
}

void nvc_embed_fwd(void *out, const int32_t *tok, const int32_t *sin, const void *E_tok,
                   const void *E_struct, int n, int d) {
    if (n <= 0) return;
    const uintptr_t al = (uintptr_t)out | (uintptr_t)E_tok | (uintptr_t)E_struct;
    const bf16 *es = E_struct ? (const bf16 *)E_struct : NULL;
    if (d % 8 == 0 && al % 16 == 0)
        embed_fwd_kernel<8><<<n, 128, 0, nvc()->stream>>>((bf16 *)out, tok, sin, (const bf16 *)E_tok, es, d);
    else
        embed_fwd_kernel<1><<<n, 256, 0, nvc()->stream>>>((bf16 *)out, tok, sin, (const bf16 *)E_tok, es, d);
    LAUNCH_CHECK();
}

// grid (column blocks, token chunks, row groups of EMB_VB): partial[chunk][v][c]
__global__ void embed_bwd_partial_kernel(float *partial, const bf16 *dout, const int32_t *ids,
                                         int n, int d, int V) {
    __shared__ float acc[EMB_VB][EMB_COLS];
    int c = blockIdx.x * EMB_COLS + threadIdx.x;
    int chunk = blockIdx.y;
    int v0 = blockIdx.z * EMB_VB;
    for (int v = 0; v < EMB_VB; v++) acc[v][threadIdx.x] = 0.0f;
    int i0 = chunk * EMB_CHUNK, i1 = min(n, i0 + EMB_CHUNK);
    if (c < d) {
        for (int i = i0; i < i1; i++) {
            int v = ids[i] - v0;
            if (v >= 0 && v < EMB_VB && v0 + v < V) acc[v][threadIdx.x] += bf2f(dout[(size_t)i * d + c]);
        }
        for (int v = 0; v < EMB_VB && v0 + v < V; v++)
            partial[((size_t)chunk * V + v0 + v) * d + c] = acc[v][threadIdx.x];
    }
}

__global__ void embed_bwd_reduce_kernel(float *dE, const float *partial, int nchunks, int V, int d) {
    size_t vd = (size_t)V * d;
    for (size_t j = blockIdx.x * (size_t)blockDim.x + threadIdx.x; j < vd;
         j += (size_t)gridDim.x * blockDim.x) {
        float s = 0.0f;
        for (int k = 0; k < nchunks; k++) s += partial[(size_t)k * vd + j];
        dE[j] += s;
    }
}

static void embed_bwd_one(float *dE, const bf16 *dout, const int32_t *ids, int n, int d, int V) {
    int nchunks = (n + EMB_CHUNK - 1) / EMB_CHUNK;
    float *partial = (float *)nvc_scratch((size_t)nchunks * V * d * sizeof(float));
    dim3 grid((d + EMB_COLS - 1) / EMB_COLS, nchunks, (V + EMB_VB - 1) / EMB_VB);
    embed_bwd_partial_kernel<<<grid, EMB_COLS, 0, nvc()->stream>>>(partial, dout, ids, n, d, V);
    LAUNCH_CHECK();
    embed_bwd_reduce_kernel<<<nvc_blocks((size_t)V * d, 256), 256, 0, nvc()->stream>>>(
        dE, partial, nchunks, V, d);
    LAUNCH_CHECK();
}

void nvc_embed_bwd(void *dE_tok, void *dE_struct, const void *dout, const int32_t *tok,
                   const int32_t *sin, int n, int d, int V) {
    if (n <= 0) return;
    embed_bwd_one((float *)dE_tok, (const bf16 *)dout, tok, n, d, V);
    if (dE_struct) embed_bwd_one((float *)dE_struct, (const bf16 *)dout, sin, n, d, N_STRUCT_ROWS);
}

// the per-chunk partial tables of the larger embedding (V or the structure rows)
size_t nvc_embed_scratch_bytes(const nv_backend_plan *p) {
    const size_t rows = p->V > N_STRUCT_ROWS ? p->V : N_STRUCT_ROWS;
    return (size_t)((p->max_tokens + EMB_CHUNK - 1) / EMB_CHUNK) * rows * p->d * sizeof(float);
}
