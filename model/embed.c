// embed.c - windowed, unmasked forward passes that collect per-nucleotide states
// (rules in embed.h).
#include "model/embed.h"

#include <stdlib.h>
#include <string.h>

#include "data/vocab.h"

struct nv_embedder {
    nv_model *m;
    int seq_len, rows, want_logits, d, V;
    nv_batch b;
    double *h;         // [rows * seq_len, d] hidden of the last forward
    double *lg, *lg2;  // [rows * seq_len, V], [.., 3] selected-row logits
    int32_t *sel;      // [rows * seq_len] rank of flat index k among the selected rows
    // the windows packed in the current batch
    int n_items;
    struct item {
        int seq;          // sequence number in the nv_embed call
        uint64_t start;   // window start in the sequence
        uint64_t own_lo, own_hi; // nucleotides [own_lo, own_hi) take their state from here
        size_t k0;        // flat index of the window's <cls>
    } *items;
};

uint64_t nv_embed_window_count(uint64_t len, int W) {
    if (len <= (uint64_t)W) return 1;
    const uint64_t S = W / 2 > 0 ? (uint64_t)(W / 2) : 1;
    return (len - (uint64_t)W + S - 1) / S + 1;
}

int nv_embed_windows(uint64_t len, int W, uint64_t *starts, int max) {
    const uint64_t nw = nv_embed_window_count(len, W);
    const uint64_t S = W / 2 > 0 ? (uint64_t)(W / 2) : 1;
    for (uint64_t w = 0; w < nw && w < (uint64_t)max; w++)
        starts[w] = w + 1 == nw ? (len > (uint64_t)W ? len - (uint64_t)W : 0) : w * S;
    return (int)nw;
}

// Start of window w of a sequence with nw windows.
static uint64_t window_start(uint64_t len, int W, uint64_t nw, uint64_t w) {
    const uint64_t S = W / 2 > 0 ? (uint64_t)(W / 2) : 1;
    if (w + 1 == nw) return len > (uint64_t)W ? len - (uint64_t)W : 0;
    return w * S;
}

// First nucleotide owned by window w (w >= 1): centres C = 2 start + W - 1 (doubled units);
// p belongs to window w - 1 iff 2p <= (C_{w-1} + C_w) / 2, the earlier window on a tie.
static uint64_t owner_lo(uint64_t len, int W, uint64_t nw, uint64_t w) {
    if (w == 0) return 0;
    const uint64_t a = window_start(len, W, nw, w - 1), b = window_start(len, W, nw, w);
    const uint64_t m2 = a + b + (uint64_t)W - 1; // (C_{w-1} + C_w) / 2, doubled units
    return m2 / 2 + 1;
}

nv_embedder *nv_embedder_create(nv_model *m, int seq_len, int rows, int want_logits) {
    if (seq_len < 3 || rows < 1) nv_die("nv_embedder_create: bad shape %d x %d", rows, seq_len);
    nv_embedder *e = nv_calloc(1, sizeof *e);
    const nv_param_table *t = nv_model_params(m);
    const nv_param_ids *ids = nv_model_param_ids(m);
    e->m = m;
    e->seq_len = seq_len;
    e->rows = rows;
    e->want_logits = want_logits;
    e->d = (int)t->p[ids->embed_tok].full[1];
    e->V = (int)t->p[ids->embed_tok].full[0];
    const size_t n = (size_t)rows * seq_len;
    nv_batch_alloc(&e->b, rows, seq_len);
    e->h = nv_malloc(n * e->d * sizeof(double));
    if (want_logits) {
        e->lg = nv_malloc(n * e->V * sizeof(double));
        e->lg2 = nv_malloc(n * 3 * sizeof(double));
    }
    e->sel = nv_malloc(n * sizeof(int32_t));
    e->items = nv_malloc(n * sizeof *e->items); // at most seq_len / 2 segments per row
    return e;
}

void nv_embedder_free(nv_embedder *e) {
    if (!e) return;
    nv_batch_free(&e->b);
    free(e->h);
    free(e->lg);
    free(e->lg2);
    free(e->sel);
    free(e->items);
    free(e);
}

static inline void put(nv_batch *b, size_t k, int tok, int seg, int pos, int selected) {
    b->input[k] = tok;
    b->target[k] = tok;
    b->struct_in[k] = NV_SIN_HIDDEN;
    b->struct_target[k] = selected ? 0 : -1; // a dummy valid label: the head runs there
    b->mlm_mask[k] = (uint8_t)selected;
    b->struct_mask[k] = (uint8_t)selected;
    b->segment[k] = seg;
    b->position[k] = pos;
    b->seq_index[k] = -1;
}

static void clear(nv_embedder *e) {
    const size_t n = (size_t)e->rows * e->seq_len;
    for (size_t k = 0; k < n; k++) put(&e->b, k, NV_TOK_PAD, 0, 0, 0);
    e->n_items = 0;
}

typedef struct embed_out {
    const uint64_t *len;
    const uint64_t *first; // first output row of each sequence
    nv_pool_kind pool;
    float *hidden, *pooled, *mlm, *st;
    int *n_cls;            // <cls> states summed per sequence (pool cls)
} embed_out;

// Forward over the used rows and scatter each window's owned nucleotides.
static void flush(nv_embedder *e, int used_rows, embed_out *o) {
    if (e->n_items == 0) return;
    nv_batch *b = &e->b;
    const int d = e->d, V = e->V;
    const int full_rows = b->rows;
    b->rows = used_rows;
    nv_batch_count(b);
    nv_model_step(e->m, b, 1.0, 1.0, 0, NULL);
    nv_model_get_hidden(e->m, e->h);
    if (e->want_logits) {
        nv_model_get_logits(e->m, e->lg, e->lg2);
        const size_t n = (size_t)used_rows * e->seq_len;
        int32_t r = 0;
        for (size_t k = 0; k < n; k++) e->sel[k] = b->mlm_mask[k] ? r++ : -1;
    }
    b->rows = full_rows;
    for (int it = 0; it < e->n_items; it++) {
        const struct item *w = &e->items[it];
        for (uint64_t p = w->own_lo; p < w->own_hi; p++) {
            const size_t k = w->k0 + 1 + (size_t)(p - w->start);
            const uint64_t row = o->first[w->seq] + p;
            const double *hk = e->h + k * d;
            float *dst = o->hidden + row * d;
            for (int j = 0; j < d; j++) dst[j] = (float)hk[j];
            if (e->want_logits) {
                const int32_t s = e->sel[k];
                if (o->mlm)
                    for (int v = 0; v < V; v++) o->mlm[row * V + v] = (float)e->lg[(size_t)s * V + v];
                if (o->st)
                    for (int v = 0; v < 3; v++) o->st[row * 3 + v] = (float)e->lg2[(size_t)s * 3 + v];
            }
        }
        if (o->pooled && o->pool == NV_POOL_CLS) {
            const double *hc = e->h + w->k0 * d;
            float *dst = o->pooled + (size_t)w->seq * d;
            for (int j = 0; j < d; j++) dst[j] += (float)hc[j];
            o->n_cls[w->seq]++;
        }
    }
    clear(e);
}

void nv_embed(nv_embedder *e, int n, const uint8_t *const *tok, const uint64_t *len,
              nv_pool_kind pool, float *hidden, float *pooled, float *mlm, float *st) {
    const int L = e->seq_len, W = L - 2, d = e->d;
    uint64_t *first = nv_malloc((size_t)(n + 1) * sizeof(uint64_t));
    first[0] = 0;
    for (int i = 0; i < n; i++) first[i + 1] = first[i] + len[i];
    int *n_cls = nv_calloc((size_t)n + 1, sizeof(int));
    if (pooled) memset(pooled, 0, (size_t)n * d * sizeof(float));
    embed_out o = {len, first, pool, hidden, pooled, e->want_logits ? mlm : NULL,
                   e->want_logits ? st : NULL, n_cls};
    clear(e);
    int r = 0, f = 0, seg = 0;
    for (int i = 0; i < n; i++) {
        const uint64_t nw = nv_embed_window_count(len[i], W);
        for (uint64_t w = 0; w < nw; w++) {
            const uint64_t start = window_start(len[i], W, nw, w);
            const int wl = (int)(len[i] - start < (uint64_t)W ? len[i] - start : (uint64_t)W);
            if (f + wl + 2 > L) {
                r++;
                f = seg = 0;
                if (r == e->rows) {
                    flush(e, r, &o);
                    r = 0;
                }
            }
            const size_t k0 = (size_t)r * L + (size_t)f;
            seg++;
            put(&e->b, k0, NV_TOK_CLS, seg, 0, 0);
            for (int t = 0; t < wl; t++) put(&e->b, k0 + 1 + t, tok[i][start + t], seg, t + 1, e->want_logits);
            put(&e->b, k0 + wl + 1, NV_TOK_EOS, seg, wl + 1, 0);
            struct item *it = &e->items[e->n_items++];
            it->seq = i;
            it->start = start;
            it->own_lo = owner_lo(len[i], W, nw, w);
            it->own_hi = w + 1 == nw ? len[i] : owner_lo(len[i], W, nw, w + 1);
            it->k0 = k0;
            f += wl + 2;
        }
    }
    flush(e, f > 0 ? r + 1 : r, &o);
    if (pooled) {
        for (int i = 0; i < n; i++) {
            float *dst = pooled + (size_t)i * d;
            if (pool == NV_POOL_CLS) {
                if (n_cls[i] > 1)
                    for (int j = 0; j < d; j++) dst[j] /= (float)n_cls[i];
            } else if (len[i] > 0) {
                double *acc = nv_calloc((size_t)d, sizeof(double));
                for (uint64_t p = first[i]; p < first[i + 1]; p++)
                    for (int j = 0; j < d; j++) acc[j] += hidden[p * d + j];
                for (int j = 0; j < d; j++) dst[j] = (float)(acc[j] / (double)len[i]);
                free(acc);
            }
        }
    }
    free(first);
    free(n_cls);
}
