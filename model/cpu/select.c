// select.c - the selected (scored) positions: gather rows, scatter-add rows back, the fused
// softmax cross-entropy over them, and the loss/accuracy sums that stay on the device.
// Written over `real`, `act` and FN(); included by the cpu_*.c instances, never compiled alone.

static void FN(gather_rows)(void *out_, const void *in_, const int32_t *idx, int m, int d) {
    act *out = out_;
    const act *in = in_;
    CK(out_, (size_t)m * d * sizeof(act), NV_T_ACT, "gather_rows", "out");
    CK(in_, (size_t)d * sizeof(act), NV_T_ACT, "gather_rows", "in");
    CK(idx, (size_t)m * 4, NV_T_I32, "gather_rows", "idx");
#pragma omp parallel for if ((size_t)m * d > PAR_MIN)
    for (int i = 0; i < m; i++)
        memcpy(out + (size_t)i * d, in + (size_t)idx[i] * d, (size_t)d * sizeof(act));
}

// idx are distinct, so rows never collide: parallel over rows is deterministic
static void FN(scatter_add_rows)(void *dst_, const void *src_, const int32_t *idx, int m, int d) {
    act *dst = dst_;
    const act *src = src_;
    CK(dst_, (size_t)d * sizeof(act), NV_T_ACT, "scatter_add_rows", "dst");
    CK(src_, (size_t)m * d * sizeof(act), NV_T_ACT, "scatter_add_rows", "src");
    CK(idx, (size_t)m * 4, NV_T_I32, "scatter_add_rows", "idx");
#pragma omp parallel for if ((size_t)m * d > PAR_MIN)
    for (int i = 0; i < m; i++) {
        act *o = dst + (size_t)idx[i] * d;
        const act *s = src + (size_t)i * d;
        for (int c = 0; c < d; c++) o[c] = STA(LDA(o[c]) + LDA(s[c]));
    }
}

// loss[i] = logsumexp(logits[i]) - logits[i][t];  dlogits[i] = (softmax - onehot) * grad_scale
static void FN(softmax_ce)(void *loss_, void *dlogits_, const void *logits_,
                           const int32_t *target, int m, int V, double grad_scale) {
    real *loss = loss_;
    act *dl = dlogits_;
    const act *logits = logits_;
    const real gs = (real)grad_scale;
    CK(loss_, (size_t)m * sizeof(real), NV_T_STATE, "softmax_ce", "loss");
    CK(dlogits_, (size_t)m * V * sizeof(act), NV_T_ACT, "softmax_ce", "dlogits");
    CK(logits_, (size_t)m * V * sizeof(act), NV_T_ACT, "softmax_ce", "logits");
    CK(target, (size_t)m * 4, NV_T_I32, "softmax_ce", "target");
#pragma omp parallel for if ((size_t)m * V > PAR_MIN)
    for (int i = 0; i < m; i++) {
        const act *l = logits + (size_t)i * V;
        act *g = dl + (size_t)i * V;
        const int t = target[i];
        real mx = LDA(l[0]);
        for (int c = 1; c < V; c++)
            if (LDA(l[c]) > mx) mx = LDA(l[c]);
        real sum = 0;
        for (int c = 0; c < V; c++) sum += R_EXP(LDA(l[c]) - mx);
        loss[i] = R_LOG(sum) + mx - LDA(l[t]);
        const real inv = 1 / sum;
        for (int c = 0; c < V; c++) g[c] = STA((R_EXP(LDA(l[c]) - mx) * inv - (c == t)) * gs);
    }
}

// acc[0] += the losses in row order, acc[1] += rows whose first argmax is the target
static void FN(ce_stats)(double *acc, const void *loss_, const void *logits_,
                         const int32_t *target, int m, int V) {
    const real *loss = loss_;
    const act *logits = logits_;
    CK(acc, 2 * sizeof(double), NV_T_F64, "ce_stats", "acc");
    CK(loss_, (size_t)m * sizeof(real), NV_T_STATE, "ce_stats", "loss");
    CK(logits_, (size_t)m * V * sizeof(act), NV_T_ACT, "ce_stats", "logits");
    double s = 0;
    long hits = 0;
    for (int i = 0; i < m; i++) {
        s += loss[i];
        const act *l = logits + (size_t)i * V;
        int best = 0;
        for (int v = 1; v < V; v++)
            if (LDA(l[v]) > LDA(l[best])) best = v;
        hits += best == target[i];
    }
    acc[0] += s;
    acc[1] += (double)hits;
}
