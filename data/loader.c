// loader.c - the data loader of design section 7: epoch permutations, slot stripes,
// packing, cropping, masking, and a prefetch thread.
//
// Rules (the contract of nv_loader_next):
// - Epoch e has its own permutation of all sequence indices: Fisher-Yates keyed on
//   (seed, "perm", e), the same on every rank.
// - A global step has G = global-batch / micro-batch slots. The permutation is dealt to the
//   slots in order, each sequence to the slot with the fewest tokens dealt so far (ties to
//   the lowest g): a stripe of about n/G sequences per slot, like round-robin, but with token
//   totals equal to within one sequence, so that all slots run out at the same step and
//   the epoch's tail wastes at most about one row per slot (round-robin striping left
//   ~2.5% pads at the end of each epoch of 200k sequences). Each step every slot packs its
//   micro-batch rows from its own stripe, so a step's rows do not depend on the number of
//   data ranks. Data rank r emits slots r*accum .. r*accum + accum - 1 (accum = G / dp_size)
//   in order. Every rank follows every slot's packing (lengths only: cheap) so that it knows
//   when the epoch ends and its cursor holds all slots, which is what lets a run resume at
//   another data degree.
// - Packing: a row is filled with `<cls> seq <eos>` segments (sequences longer than
//   seq-length - 2 cropped to a window drawn per (seed, "crop", epoch, index)). The next
//   segment is the first not yet consumed sequence, within the next NV_LOADER_LOOKAHEAD
//   stripe positions from the slot's first unconsumed one, that fits the rest of the row
//   (first fit over a bounded window: plain greedy packing left ~23% pads on RNAcentral-like
//   lengths). When none fits the row is closed with pads; when the micro-batch's rows are
//   full the slot's step ends and its unconsumed sequences wait for its next step. A new row
//   always takes the slot's first unconsumed sequence, so no sequence waits longer than a
//   row. Positions restart at 0 at each <cls>; segments are numbered 1.. per row.
// - Epoch boundary: a slot whose stripe is exhausted emits all-pad rows for the rest of the
//   epoch; when, at the end of a step, every slot is exhausted, the next step starts epoch
//   e + 1 with every slot at position 0. So each sequence appears exactly once per epoch
//   across all slots; only the last step or so of an epoch carries some all-pad rows.
// - Cursor: at a step boundary, (epoch, step, per slot: first unconsumed stripe position and
//   the bitmask of later positions consumed out of order). Restoring it reproduces the stream.
// Memory: the permutation (uint32, or uint64 past 2^32 sequences) and the packed lengths,
// O(n_seqs); about twice that while an epoch's permutation is being dealt. The sequences
// come from an nv_dataset: read from memory, or streamed from the shards window by window
// (only the cropped window of each sequence) on the prefetch thread.
// - A read error (a damaged shard) is not skipped: the micro-batch that needed it and every
//   later one come back NULL from nv_loader_next, nv_loader_error names the shard, the
//   dataset and the sequence, and the cursor stays at the last completed step.
#include "data/batch.h"
#include "data/dataset.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "data/rng.h"
#include "data/vocab.h"

#define DEFAULT_PREFETCH NV_LOADER_PREFETCH

typedef struct gen_state {
    uint64_t epoch, step;
    int mb_in_step;         // this rank's micro-batches of the current step already produced
    uint64_t *slot_pos;     // [G]
    uint64_t *slot_done;    // [G]
    uint64_t perm_epoch;    // epoch the permutation below is for (UINT64_MAX: none)
    uint32_t *perm32;       // permutation (n < 2^32) ...
    uint64_t *perm64;       // ... or this one
    uint32_t *plen;         // [n] packed length (cropped) of perm[i]
    uint64_t *slot_start;   // [G+1] slot g's stripe is perm[slot_start[g] .. slot_start[g+1])
} gen_state;

struct nv_loader {
    nv_dataset *ds;
    int own_ds;             // created by nv_loader_create from an nv_corpus
    nv_mask_params mp;
    int seq_len, mb, G, accum, dp_rank, dp_size, max_len;
    uint64_t n;
    uint64_t key_perm, key_crop;
    gen_state gs;
    uint64_t *scratch_idx;  // [seq_len] perm positions of one row's segments
    uint8_t *win_tok, *win_ss; // [seq_len] one sequence's window as read
    nv_error err;           // the read error that stopped the producer

    // prefetch ring
    int depth;
    nv_batch *ring;
    nv_loader_cursor **ring_cur; // cursor after the step, for a step's last micro-batch
    uint8_t *ring_final;
    uint8_t *ring_failed;   // the generator failed on this entry (err holds why)
    pthread_t thread;
    int running, stop, holding;
    uint64_t produced, released;
    pthread_mutex_t mu;
    pthread_cond_t cv_space, cv_ready;

    // consumer side
    nv_batch sync_batch;
    nv_loader_cursor *sync_cur;
    uint64_t consumed;
    nv_loader_cursor *last; // cursor after the last completed step
    nv_loader_cursor *prev; // and the one before it (nv_loader_step_back)
    int failed;             // a micro-batch could not be read: next returns NULL from then on
};

static inline uint64_t perm_at(const nv_loader *l, uint64_t i) {
    return l->gs.perm32 ? l->gs.perm32[i] : l->gs.perm64[i];
}

static inline uint64_t stripe_len(const nv_loader *l, int g) {
    return l->gs.slot_start[g + 1] - l->gs.slot_start[g];
}

// Uniform in [0, bound) for bounds beyond 32 bits too.
static uint64_t below64(nv_rng_stream *s, uint64_t bound) {
    if (bound <= 0xFFFFFFFFull) return nv_rng_below(s, (uint32_t)bound);
    uint64_t lim = UINT64_MAX - UINT64_MAX % bound;
    for (;;) {
        uint64_t x = ((uint64_t)nv_rng_u32(s) << 32) | nv_rng_u32(s);
        if (x < lim) return x % bound;
    }
}

// Deal the permutation to the slots, each sequence to the least loaded slot (tokens dealt
// so far, ties to the lowest g), and regroup perm/plen so that each slot's stripe is
// contiguous and in permutation order.
static void deal(nv_loader *l) {
    gen_state *gs = &l->gs;
    const int G = l->G;
    const uint64_t n = l->n;
    uint16_t *own = nv_malloc(n * sizeof(uint16_t)); // G <= NV_CURSOR_MAX < 65536
    uint64_t *load = nv_calloc((size_t)G, sizeof(uint64_t));
    int *heap = nv_malloc(sizeof(int) * (size_t)G);
    for (int g = 0; g < G; g++) heap[g] = g; // all loads 0: already a heap in g order
#define LESS(a, b) (load[a] < load[b] || (load[a] == load[b] && (a) < (b)))
    memset(gs->slot_start, 0, sizeof(uint64_t) * (size_t)(G + 1));
    for (uint64_t i = 0; i < n; i++) {
        int g = heap[0];
        own[i] = (uint16_t)g;
        gs->slot_start[g + 1]++;
        load[g] += gs->plen[i] + 2;
        int k = 0; // sift down
        for (;;) {
            int c = 2 * k + 1;
            if (c >= G) break;
            if (c + 1 < G && LESS(heap[c + 1], heap[c])) c++;
            if (!LESS(heap[c], heap[k])) break;
            int t = heap[c]; heap[c] = heap[k]; heap[k] = t;
            k = c;
        }
    }
#undef LESS
    for (int g = 0; g < G; g++) gs->slot_start[g + 1] += gs->slot_start[g];
    uint64_t *fill = load; // reuse: next free position per slot
    for (int g = 0; g < G; g++) fill[g] = gs->slot_start[g];
    uint32_t *plen2 = nv_malloc(n * sizeof(uint32_t));
    if (gs->perm32) {
        uint32_t *p2 = nv_malloc(n * sizeof(uint32_t));
        for (uint64_t i = 0; i < n; i++) { uint64_t k = fill[own[i]]++; p2[k] = gs->perm32[i]; plen2[k] = gs->plen[i]; }
        free(gs->perm32);
        gs->perm32 = p2;
    } else {
        uint64_t *p2 = nv_malloc(n * sizeof(uint64_t));
        for (uint64_t i = 0; i < n; i++) { uint64_t k = fill[own[i]]++; p2[k] = gs->perm64[i]; plen2[k] = gs->plen[i]; }
        free(gs->perm64);
        gs->perm64 = p2;
    }
    free(gs->plen);
    gs->plen = plen2;
    free(own);
    free(load);
    free(heap);
}

// The permutation of epoch e and the packed lengths in its order.
static void ensure_perm(nv_loader *l) {
    gen_state *g = &l->gs;
    if (g->perm_epoch == g->epoch) return;
    nv_rng_stream s = nv_rng_stream_init(nv_mix64(l->key_perm, g->epoch), 0, 0, 0);
    uint64_t n = l->n;
    if (g->perm32) {
        for (uint64_t i = 0; i < n; i++) g->perm32[i] = (uint32_t)i;
        for (uint64_t i = n - 1; i > 0; i--) {
            uint64_t j = below64(&s, i + 1);
            uint32_t t = g->perm32[i]; g->perm32[i] = g->perm32[j]; g->perm32[j] = t;
        }
    } else {
        for (uint64_t i = 0; i < n; i++) g->perm64[i] = i;
        for (uint64_t i = n - 1; i > 0; i--) {
            uint64_t j = below64(&s, i + 1);
            uint64_t t = g->perm64[i]; g->perm64[i] = g->perm64[j]; g->perm64[j] = t;
        }
    }
    for (uint64_t i = 0; i < n; i++) {
        uint64_t len = nv_dataset_len(l->ds, perm_at(l, i));
        g->plen[i] = (uint32_t)(len < (uint64_t)l->max_len ? len : (uint64_t)l->max_len);
    }
    deal(l);
    g->perm_epoch = g->epoch;
}

// Pack one row of slot g: advances the slot's state and writes the permutation positions
// of the row's segments to out. Returns their count.
static int pack_row(nv_loader *l, int g, uint64_t *out) {
    uint64_t ng = stripe_len(l, g);
    uint64_t pos = l->gs.slot_pos[g], done = l->gs.slot_done[g];
    int room = l->seq_len, nseg = 0;
    uint64_t q = pos;
    while (q < ng && q - pos < NV_LOADER_LOOKAHEAD && room >= 2) {
        if (q > pos && ((done >> (q - pos - 1)) & 1)) { q++; continue; }
        uint64_t pi = l->gs.slot_start[g] + q;
        int need = (int)l->gs.plen[pi] + 2;
        if (need > room) { q++; continue; }
        out[nseg++] = pi;
        room -= need;
        if (q == pos) { // the first unconsumed one: move past it and past consumed followers
            pos++;
            while (done & 1) { done >>= 1; pos++; }
            done >>= 1;
            q = pos;
        } else {
            done |= 1ull << (q - pos - 1);
            q++;
        }
    }
    l->gs.slot_pos[g] = pos;
    l->gs.slot_done[g] = done;
    return nseg;
}

static void simulate_slot(nv_loader *l, int g) {
    for (int r = 0; r < l->mb; r++) pack_row(l, g, l->scratch_idx);
}

// Write one special token at flat index k.
static inline void put_special(nv_batch *b, size_t k, int tok, int seg, int pos) {
    b->input[k] = tok; b->target[k] = tok;
    b->struct_in[k] = NV_SIN_HIDDEN; b->struct_target[k] = -1;
    b->mlm_mask[k] = 0; b->struct_mask[k] = 0;
    b->segment[k] = seg; b->position[k] = pos;
}

// Pack and mask slot g's micro-batch. -1 when a sequence cannot be read (l->err says why).
static int fill_slot(nv_loader *l, int g, nv_batch *b) {
    const int S = l->seq_len;
    long n_mlm = 0, n_struct = 0, n_real = 0;
    uint64_t epoch = l->gs.epoch;
    uint64_t crop_key = nv_mix64(l->key_crop, epoch);
    for (int r = 0; r < l->mb; r++) {
        int nseg = pack_row(l, g, l->scratch_idx);
        size_t base = (size_t)r * S;
        int f = 0;
        for (int k = 0; k < S; k++) b->seq_index[base + k] = -1;
        for (int si = 0; si < nseg; si++) {
            uint64_t pi = l->scratch_idx[si];
            uint64_t idx = perm_at(l, pi);
            uint64_t full = nv_dataset_len(l->ds, idx);
            int len = (int)l->gs.plen[pi];
            uint64_t off = 0;
            if (full > (uint64_t)len) { // fresh crop window per epoch
                nv_rng_stream cs = nv_rng_stream_init(crop_key, (uint32_t)idx, (uint32_t)(idx >> 32), 0);
                off = below64(&cs, full - (uint64_t)len + 1);
            }
            if (nv_dataset_read(l->ds, idx, off, (uint64_t)len, l->win_tok, l->win_ss, &l->err) != 0) return -1;
            int seg = si + 1;
            size_t k0 = base + (size_t)f;
            put_special(b, k0, NV_TOK_CLS, seg, 0);
            nv_mask_sequence(&l->mp, epoch, idx, l->win_tok, l->win_ss, len, b->input + k0 + 1,
                             b->target + k0 + 1, b->struct_in + k0 + 1, b->struct_target + k0 + 1,
                             b->mlm_mask + k0 + 1, b->struct_mask + k0 + 1);
            for (int i = 1; i <= len; i++) {
                b->segment[k0 + i] = seg;
                b->position[k0 + i] = i;
                n_mlm += b->mlm_mask[k0 + i];
                n_struct += b->struct_mask[k0 + i];
            }
            put_special(b, k0 + len + 1, NV_TOK_EOS, seg, len + 1);
            b->seq_index[base + si] = (int64_t)idx;
            f += len + 2;
        }
        n_real += f;
        for (int k = f; k < S; k++) put_special(b, base + k, NV_TOK_PAD, 0, 0);
    }
    b->n_mlm = n_mlm;
    b->n_struct = n_struct;
    b->n_real = n_real;
    b->epoch = epoch;
    b->step = l->gs.step;
    b->slot = g;
    return 0;
}

static void fill_cursor(const nv_loader *l, nv_loader_cursor *cur) {
    cur->epoch = l->gs.epoch;
    cur->step = l->gs.step;
    cur->n_slots = l->G;
    memcpy(cur->slot_pos, l->gs.slot_pos, sizeof(uint64_t) * (size_t)l->G);
    memcpy(cur->slot_done, l->gs.slot_done, sizeof(uint64_t) * (size_t)l->G);
}

static void copy_cursor(nv_loader_cursor *dst, const nv_loader_cursor *src) {
    dst->epoch = src->epoch;
    dst->step = src->step;
    dst->n_slots = src->n_slots;
    memcpy(dst->slot_pos, src->slot_pos, sizeof(uint64_t) * (size_t)src->n_slots);
    memcpy(dst->slot_done, src->slot_done, sizeof(uint64_t) * (size_t)src->n_slots);
}

// Start epoch e + 1 if every slot is exhausted (called at step boundaries).
static void maybe_next_epoch(nv_loader *l) {
    for (int g = 0; g < l->G; g++)
        if (l->gs.slot_pos[g] < stripe_len(l, g)) return;
    l->gs.epoch++;
    memset(l->gs.slot_pos, 0, sizeof(uint64_t) * (size_t)l->G);
    memset(l->gs.slot_done, 0, sizeof(uint64_t) * (size_t)l->G);
}

// The generator: this rank's next micro-batch. *final says whether it ends a global step,
// and then `cur` holds the cursor after that step. -1 on a read error (the state is then
// mid-micro-batch: nothing more is generated).
static int gen_next(nv_loader *l, nv_batch *b, nv_loader_cursor *cur, uint8_t *final) {
    ensure_perm(l);
    int first = l->dp_rank * l->accum;
    if (l->gs.mb_in_step == 0)
        for (int g = 0; g < first; g++) simulate_slot(l, g);
    *final = 0;
    if (fill_slot(l, first + l->gs.mb_in_step, b) != 0) return -1;
    if (++l->gs.mb_in_step == l->accum) {
        for (int g = first + l->accum; g < l->G; g++) simulate_slot(l, g);
        l->gs.mb_in_step = 0;
        l->gs.step++;
        maybe_next_epoch(l);
        fill_cursor(l, cur);
        *final = 1;
    }
    return 0;
}

static void *producer_main(void *arg) {
    nv_loader *l = arg;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (!l->stop && l->produced - l->released >= (uint64_t)l->depth)
            pthread_cond_wait(&l->cv_space, &l->mu);
        if (l->stop) break;
        int i = (int)(l->produced % (uint64_t)l->depth);
        pthread_mutex_unlock(&l->mu);
        int rc = gen_next(l, &l->ring[i], l->ring_cur[i], &l->ring_final[i]);
        pthread_mutex_lock(&l->mu);
        l->ring_failed[i] = rc != 0;
        l->produced++;
        pthread_cond_signal(&l->cv_ready);
        if (rc != 0) break; // the consumer gets this entry as NULL; nothing after it
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

static void start_producer(nv_loader *l) {
    if (l->depth == 0) return;
    l->produced = l->released = 0;
    l->holding = 0;
    l->stop = 0;
    if (pthread_create(&l->thread, NULL, producer_main, l) != 0)
        nv_die("loader: cannot start the prefetch thread");
    l->running = 1;
}

static void stop_producer(nv_loader *l) {
    if (!l->running) return;
    pthread_mutex_lock(&l->mu);
    l->stop = 1;
    pthread_cond_broadcast(&l->cv_space);
    pthread_mutex_unlock(&l->mu);
    pthread_join(l->thread, NULL);
    l->running = 0;
}

static nv_loader_cursor *cursor_new(void) { return nv_calloc(1, sizeof(nv_loader_cursor)); }

nv_loader *nv_loader_create_ds(nv_dataset *ds, const nv_data_config *d, int structure_input,
                               int dp_rank, int dp_size, int prefetch, nv_error *err) {
    if (!ds || nv_dataset_n_seqs(ds) == 0) {
        nv_seterr(err, "loader: the training corpus is empty");
        return NULL;
    }
    if (d->seq_length < 3 || d->micro_batch < 1 || d->global_batch < 1) {
        nv_seterr(err, "loader: seq-length %d, micro-batch %d, global-batch %d: need seq-length >= 3 "
                  "and batches >= 1", d->seq_length, d->micro_batch, d->global_batch);
        return NULL;
    }
    if (d->global_batch % d->micro_batch) {
        nv_seterr(err, "loader: global-batch %d is not a multiple of micro-batch %d",
                  d->global_batch, d->micro_batch);
        return NULL;
    }
    int G = d->global_batch / d->micro_batch;
    if (dp_size < 1 || dp_rank < 0 || dp_rank >= dp_size || G % dp_size) {
        nv_seterr(err, "loader: global-batch / micro-batch = %d slots cannot be split over %d data ranks",
                  G, dp_size);
        return NULL;
    }
    if (G > NV_CURSOR_MAX) {
        nv_seterr(err, "loader: %d micro-batch slots per step exceed the limit %d (raise micro-batch)",
                  G, NV_CURSOR_MAX);
        return NULL;
    }
    if (!(d->mask_rate >= 0 && d->mask_rate <= 1) || !(d->span_fraction >= 0 && d->span_fraction <= 1) ||
        !(d->span_p > 0 && d->span_p <= 1) || d->span_max < 1 ||
        !(d->pair_mask_rate >= 0 && d->pair_mask_rate <= 1) ||
        !(d->struct_hide_rate >= 0 && d->struct_hide_rate <= 1)) {
        nv_seterr(err, "loader: masking rates out of range (rates in [0,1], span-p in (0,1], span-max >= 1)");
        return NULL;
    }
    if (prefetch < 0) prefetch = 0;
    if (prefetch > 0 && nv_dataset_streamed(ds) && !nv_dataset_threadsafe()) {
        // the prefetch thread's HDF5 reads would race the trainer's checkpoint writes
        fprintf(stderr, "nvwa: warning: libhdf5 is not built thread-safe: the loader reads the shards "
                        "in the training thread (no prefetch)\n");
        prefetch = 0;
    }

    nv_loader *l = nv_calloc(1, sizeof *l);
    l->ds = ds;
    nv_mask_params_from_config(&l->mp, d, structure_input);
    l->seq_len = d->seq_length;
    l->max_len = d->seq_length - 2;
    l->mb = d->micro_batch;
    l->G = G;
    l->dp_rank = dp_rank;
    l->dp_size = dp_size;
    l->accum = G / dp_size;
    l->n = nv_dataset_n_seqs(ds);
    l->key_perm = nv_mix64(d->seed, nv_hash_str("perm"));
    l->key_crop = nv_mix64(d->seed, nv_hash_str("crop"));
    l->gs.slot_pos = nv_calloc((size_t)G, sizeof(uint64_t));
    l->gs.slot_done = nv_calloc((size_t)G, sizeof(uint64_t));
    l->gs.perm_epoch = UINT64_MAX;
    if (l->n <= 0xFFFFFFFFull) l->gs.perm32 = nv_malloc(l->n * sizeof(uint32_t));
    else l->gs.perm64 = nv_malloc(l->n * sizeof(uint64_t));
    l->gs.plen = nv_malloc(l->n * sizeof(uint32_t));
    l->gs.slot_start = nv_calloc((size_t)G + 1, sizeof(uint64_t));
    l->scratch_idx = nv_malloc((size_t)l->seq_len * sizeof(uint64_t));
    l->win_tok = nv_malloc((size_t)l->seq_len);
    l->win_ss = nv_malloc((size_t)l->seq_len);
    l->last = cursor_new();
    l->prev = cursor_new();
    fill_cursor(l, l->last);
    fill_cursor(l, l->prev);

    l->depth = prefetch;
    if (prefetch == 0) {
        nv_batch_alloc(&l->sync_batch, l->mb, l->seq_len);
        l->sync_cur = cursor_new();
    } else {
        l->ring = nv_calloc((size_t)prefetch, sizeof(nv_batch));
        l->ring_cur = nv_calloc((size_t)prefetch, sizeof(nv_loader_cursor *));
        l->ring_final = nv_calloc((size_t)prefetch, 1);
        l->ring_failed = nv_calloc((size_t)prefetch, 1);
        for (int i = 0; i < prefetch; i++) {
            nv_batch_alloc(&l->ring[i], l->mb, l->seq_len);
            l->ring_cur[i] = cursor_new();
        }
        pthread_mutex_init(&l->mu, NULL);
        pthread_cond_init(&l->cv_space, NULL);
        pthread_cond_init(&l->cv_ready, NULL);
        start_producer(l);
    }
    return l;
}

nv_loader *nv_loader_create_ex(const nv_corpus *corpus, const nv_data_config *d,
                               int structure_input, int dp_rank, int dp_size, int prefetch,
                               nv_error *err) {
    if (!corpus || corpus->n_seqs == 0) {
        nv_seterr(err, "loader: the training corpus is empty");
        return NULL;
    }
    nv_dataset *ds = nv_dataset_wrap(corpus);
    nv_loader *l = nv_loader_create_ds(ds, d, structure_input, dp_rank, dp_size, prefetch, err);
    if (!l) nv_dataset_free(ds);
    else l->own_ds = 1;
    return l;
}

nv_loader *nv_loader_create(const nv_corpus *corpus, const nv_data_config *d, int structure_input,
                            int dp_rank, int dp_size, nv_error *err) {
    return nv_loader_create_ex(corpus, d, structure_input, dp_rank, dp_size, DEFAULT_PREFETCH, err);
}

void nv_loader_free(nv_loader *l) {
    if (!l) return;
    stop_producer(l);
    if (l->depth > 0) {
        for (int i = 0; i < l->depth; i++) {
            nv_batch_free(&l->ring[i]);
            free(l->ring_cur[i]);
        }
        free(l->ring);
        free(l->ring_cur);
        free(l->ring_final);
        free(l->ring_failed);
        pthread_mutex_destroy(&l->mu);
        pthread_cond_destroy(&l->cv_space);
        pthread_cond_destroy(&l->cv_ready);
    } else {
        nv_batch_free(&l->sync_batch);
        free(l->sync_cur);
    }
    free(l->gs.slot_pos);
    free(l->gs.slot_done);
    free(l->gs.perm32);
    free(l->gs.perm64);
    free(l->gs.plen);
    free(l->gs.slot_start);
    free(l->scratch_idx);
    free(l->win_tok);
    free(l->win_ss);
    free(l->last);
    free(l->prev);
    if (l->own_ds) nv_dataset_free(l->ds);
    free(l);
}

int nv_loader_accum(const nv_loader *l) { return l->accum; }
int nv_loader_slots(const nv_loader *l) { return l->G; }

const nv_batch *nv_loader_next(nv_loader *l) {
    if (l->failed) return NULL;
    if (l->depth == 0) {
        uint8_t final;
        if (gen_next(l, &l->sync_batch, l->sync_cur, &final) != 0) {
            l->failed = 1;
            return NULL;
        }
        if (final) {
            copy_cursor(l->prev, l->last);
            copy_cursor(l->last, l->sync_cur);
        }
        l->consumed++;
        return &l->sync_batch;
    }
    pthread_mutex_lock(&l->mu);
    if (l->holding) { // the previous batch is given back now
        l->released++;
        l->holding = 0;
        pthread_cond_signal(&l->cv_space);
    }
    while (l->produced == l->released) pthread_cond_wait(&l->cv_ready, &l->mu);
    int i = (int)(l->released % (uint64_t)l->depth);
    l->holding = 1;
    const int bad = l->ring_failed[i];
    pthread_mutex_unlock(&l->mu);
    if (bad) {
        l->failed = 1;
        return NULL;
    }
    if (l->ring_final[i]) {
        copy_cursor(l->prev, l->last);
        copy_cursor(l->last, l->ring_cur[i]);
    }
    l->consumed++;
    return &l->ring[i];
}

const char *nv_loader_error(const nv_loader *l) { return l->failed ? l->err.msg : NULL; }

void nv_loader_step_back(nv_loader *l) {
    stop_producer(l);
    if (!l->failed) { // a complete step was drawn: its start is the cursor before the last
        if (l->consumed % (uint64_t)l->accum)
            nv_die("loader: step_back in the middle of a global step");
        if (l->consumed > 0) copy_cursor(l->last, l->prev);
        nv_seterr(&l->err, "loader: stepped back to the start of the step (no more batches)");
        l->failed = 1;
    }
    l->consumed = 0;
}

void nv_loader_get_cursor(const nv_loader *l, nv_loader_cursor *cur) {
    // after a read error: the last completed step, where a checkpoint resumes from
    if (!l->failed && l->consumed % (uint64_t)l->accum)
        nv_die("loader: cursor asked for in the middle of a global step (%llu of %d micro-batches)",
               (unsigned long long)(l->consumed % (uint64_t)l->accum), l->accum);
    copy_cursor(cur, l->last);
}

int nv_loader_set_cursor(nv_loader *l, const nv_loader_cursor *cur, nv_error *err) {
    if (cur->n_slots != l->G)
        return nv_seterr(err, "loader cursor: %d slots, but this run has %d (global-batch / micro-batch "
                         "changed)", cur->n_slots, l->G);
    stop_producer(l);
    l->gs.epoch = cur->epoch;
    ensure_perm(l); // the stripes of the cursor's epoch, to check the positions against
    const nv_loader_cursor *use = cur;
    int rc = 0;
    for (int g = 0; g < l->G && rc == 0; g++) {
        uint64_t ng = stripe_len(l, g), p = cur->slot_pos[g], m = cur->slot_done[g];
        // done bits may only name stripe positions p+1 .. ng-1, and bit 63 is never used
        uint64_t avail = p < ng ? ng - p - 1 : 0;
        if (p > ng || (avail < 63 && (m >> avail)) || (m >> 63)) {
            rc = nv_seterr(err, "loader cursor: slot %d at position %llu (done mask %llx) is outside its "
                           "stripe of %llu sequences (another corpus?)", g, (unsigned long long)p,
                           (unsigned long long)m, (unsigned long long)ng);
            use = l->last; // refused: restart from the last step boundary instead
        }
    }
    l->gs.epoch = use->epoch;
    l->gs.step = use->step;
    l->gs.mb_in_step = 0;
    memcpy(l->gs.slot_pos, use->slot_pos, sizeof(uint64_t) * (size_t)l->G);
    memcpy(l->gs.slot_done, use->slot_done, sizeof(uint64_t) * (size_t)l->G);
    l->failed = 0;
    ensure_perm(l);
    maybe_next_epoch(l);
    fill_cursor(l, l->last);
    fill_cursor(l, l->prev);
    l->consumed = 0;
    start_producer(l);
    return rc;
}
