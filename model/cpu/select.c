// select.c - the selected (scored) positions: gather rows, scatter-add rows back, and the
// fused softmax cross-entropy over them.
// Written over `real` and FN(); included by cpu_f32.c and cpu_f64.c, never compiled alone.

static void FN(gather_rows)(void *out_, const void *in_, const int32_t *idx, int m, int d) {
    real *out = out_;
    const real *in = in_;
#pragma omp parallel for if ((size_t)m * d > PAR_MIN)
    for (int i = 0; i < m; i++)
        memcpy(out + (size_t)i * d, in + (size_t)idx[i] * d, (size_t)d * sizeof(real));
}

// idx are distinct, so rows never collide: parallel over rows is deterministic
static void FN(scatter_add_rows)(void *dst_, const void *src_, const int32_t *idx, int m, int d) {
    real *dst = dst_;
    const real *src = src_;
#pragma omp parallel for if ((size_t)m * d > PAR_MIN)
    for (int i = 0; i < m; i++) {
        real *o = dst + (size_t)idx[i] * d;
        const real *s = src + (size_t)i * d;
        for (int c = 0; c < d; c++) o[c] += s[c];
    }
}

// loss[i] = logsumexp(logits[i]) - logits[i][t];  dlogits[i] = (softmax - onehot) * grad_scale
static void FN(softmax_ce)(void *loss_, void *dlogits_, const void *logits_,
                           const int32_t *target, int m, int V, double grad_scale) {
    real *loss = loss_, *dl = dlogits_;
    const real *logits = logits_;
    const real gs = (real)grad_scale;
#pragma omp parallel for if ((size_t)m * V > PAR_MIN)
    for (int i = 0; i < m; i++) {
        const real *l = logits + (size_t)i * V;
        real *g = dl + (size_t)i * V;
        const int t = target[i];
        real mx = l[0];
        for (int c = 1; c < V; c++)
            if (l[c] > mx) mx = l[c];
        real sum = 0;
        for (int c = 0; c < V; c++) {
            g[c] = R_EXP(l[c] - mx); // stash the exponentials in dlogits
            sum += g[c];
        }
        loss[i] = R_LOG(sum) + mx - l[t];
        const real inv = 1 / sum;
        for (int c = 0; c < V; c++) g[c] = (g[c] * inv - (c == t)) * gs;
    }
}
