// rope.c - rotary position embedding, rotate-half convention, in place on the q and k
// thirds of qkv [n, 3d] (rows q[H*dh] | k[H*dh] | v[H*dh], head-major). For head h the pair
// (i, i + dh/2) turns by angle pos * theta^(-2i/dh):
//   x1' = x1 cos - x2 sin,  x2' = x2 cos + x1 sin.
// The backward is the inverse rotation (a rotation's Jacobian is itself; its transpose is
// the turn by -angle). Angles are computed in double: pos * freq reaches 1e4 radians at long
// contexts, where a float angle would be off by ~1e-3.
// cos and sin are rounded to `real` (fp32 on cpu-bf16, as the CUDA table), each output once.
// Written over `real`, `act` and FN(); included by the cpu_*.c instances, never compiled alone.

static void FN(rope_apply)(act *qkv, const int32_t *pos, int n, int H, int dh, double theta,
                           double sign) {
    const int d = H * dh, half = dh / 2;
    double *inv_freq = malloc((size_t)(half > 0 ? half : 1) * sizeof(double));
    if (!inv_freq) {
        fprintf(stderr, "nvwa: rope: out of memory\n");
        abort();
    }
    for (int j = 0; j < half; j++) inv_freq[j] = pow(theta, -2.0 * j / dh);
#pragma omp parallel for if ((size_t)n * d > PAR_MIN)
    for (int i = 0; i < n; i++) {
        act *row = qkv + (size_t)i * 3 * d;
        for (int j = 0; j < half; j++) {
            const double a = (double)pos[i] * inv_freq[j];
            const real c = (real)cos(a), s = (real)(sign * sin(a));
            for (int t = 0; t < 2 * H; t++) { // q heads then k heads: contiguous
                act *x = row + (size_t)t * dh;
                const real x1 = LDA(x[j]), x2 = LDA(x[j + half]);
                x[j] = STA(x1 * c - x2 * s);
                x[j + half] = STA(x2 * c + x1 * s);
            }
        }
    }
    free(inv_freq);
}

static void FN(rope_fwd)(void *qkv, const int32_t *pos, int n, int H, int dh, double theta) {
    CK(qkv, (size_t)n * 3 * H * dh * sizeof(act), NV_T_ACT, "rope_fwd", "qkv");
    CK(pos, (size_t)n * 4, NV_T_I32, "rope_fwd", "pos");
    FN(rope_apply)(qkv, pos, n, H, dh, theta, 1.0);
}

static void FN(rope_bwd)(void *dqkv, const int32_t *pos, int n, int H, int dh, double theta) {
    CK(dqkv, (size_t)n * 3 * H * dh * sizeof(act), NV_T_ACT, "rope_bwd", "dqkv");
    CK(pos, (size_t)n * 4, NV_T_I32, "rope_bwd", "pos");
    FN(rope_apply)(dqkv, pos, n, H, dh, theta, -1.0);
}
