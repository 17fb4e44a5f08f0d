// rope.cu - rotary position embedding, rotate-half convention (pairs j and j + dh/2), in place
// on the q and k thirds of qkv [n, 3d]. The angle pos * theta^(-2j/dh) and its sine and cosine
// are computed in double: positions reach thousands of radians, where fast-math sinf is off.
#include "common.cuh"

// one thread per (token, head, j < dh/2); dir = +1 forward rotation, -1 the inverse
// (the backward of a rotation is its transpose)
__global__ void rope_kernel(bf16 *qkv, const int32_t *pos, int n, int H, int dh, double theta,
                            int dir) {
    int half = dh / 2;
    size_t total = (size_t)n * H * half;
    int d = H * dh;
    for (size_t idx = blockIdx.x * (size_t)blockDim.x + threadIdx.x; idx < total;
         idx += (size_t)gridDim.x * blockDim.x) {
        int j = (int)(idx % half);
        int h = (int)((idx / half) % H);
        size_t t = idx / ((size_t)half * H);
        double ang = (double)pos[t] * pow(theta, -2.0 * j / dh);
        double sd, cd;
        sincos(ang, &sd, &cd);
        float s = (float)sd * dir, c = (float)cd;
        bf16 *row = qkv + t * 3 * (size_t)d + (size_t)h * dh;
        for (int part = 0; part < 2; part++) { // q then k
            bf16 *p = row + (size_t)part * d;
            float x1 = bf2f(p[j]), x2 = bf2f(p[j + half]);
            p[j] = f2bf(x1 * c - x2 * s);
            p[j + half] = f2bf(x2 * c + x1 * s);
        }
    }
}

static void rope(void *qkv, const int32_t *pos, int n, int H, int dh, double theta, int dir) {
    if (n <= 0) return;
    NVC_REQUIRE(dh % 2 == 0, "RoPE needs an even head dimension");
    size_t total = (size_t)n * H * (dh / 2);
    rope_kernel<<<nvc_blocks(total, 256), 256, 0, nvc()->stream>>>((bf16 *)qkv, pos, n, H, dh,
                                                                   theta, dir);
    LAUNCH_CHECK();
}

void nvc_rope_fwd(void *qkv, const int32_t *pos, int n, int H, int dh, double theta) {
    rope(qkv, pos, n, H, dh, theta, 1);
}

void nvc_rope_bwd(void *dqkv, const int32_t *pos, int n, int H, int dh, double theta) {
    rope(dqkv, pos, n, H, dh, theta, -1);
}
