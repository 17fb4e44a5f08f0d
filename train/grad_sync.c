// grad_sync.c - bucketed, overlapped data-parallel gradient sums and ZeRO-1 reduce-scatter
// (CPU: MPI on a communication thread; GPU: NCCL on a side stream, train/comm_nccl.h).
#include "train/grad_sync.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "train/comm_nccl.h"

#define QMAX 4096
#define DEFAULT_BUCKET ((size_t)4 << 20) // elements

struct nv_grad_sync {
    const nv_dist *d;
    nv_nccl *nc; // GPU: buckets go to NCCL (no thread); NULL on CPU
    float *grad;
    size_t total, bucket;
    nv_grad_hook hook;
    int use_thread, overlap;
    // ZeRO-1: this rank's summed shard [zlo, zhi), every rank's range, the staging buffer
    // for the dp contributions of one chunk (CPU; the GPU's lives in the nv_nccl)
    float *shard;
    size_t zlo, zhi, chunk;
    size_t *rlo, *rhi;
    float *stage;
    int *cnt_s, *dsp_s, *cnt_r, *dsp_r;
    // pending range being grown (ranges arrive in descending, contiguous order)
    size_t plo, phi;
    size_t reduced_lo; // everything in [reduced_lo, total) has been queued
    // queue to the communication thread
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t qlo[QMAX], qhi[QMAX];
    int qhead, qtail, inflight, stop;
};

// ZeRO-1 on CPU: one chunk [lo, hi) (at most s->chunk elements). Each rank's part of the chunk
// goes to its owner (MPI_Alltoallv); the owner adds the dp parts in rank order in fp32.
static void rs_chunk(nv_grad_sync *s, size_t lo, size_t hi) {
    const int dp = s->d->dp_size;
    size_t a = s->zlo > lo ? s->zlo : lo, b = s->zhi < hi ? s->zhi : hi;
    const size_t m = b > a ? b - a : 0; // this rank's part
    for (int r = 0; r < dp; r++) {
        size_t x = s->rlo[r] > lo ? s->rlo[r] : lo, y = s->rhi[r] < hi ? s->rhi[r] : hi;
        s->cnt_s[r] = y > x ? (int)(y - x) : 0;
        s->dsp_s[r] = y > x ? (int)(x - lo) : 0;
        s->cnt_r[r] = (int)m;
        s->dsp_r[r] = (int)(r * m);
    }
    NV_MPI_CHECK(s->d, MPI_Alltoallv(s->grad + lo, s->cnt_s, s->dsp_s, MPI_FLOAT, s->stage, s->cnt_r,
                                     s->dsp_r, MPI_FLOAT, s->d->comm_dp));
    float *out = s->shard + (a - s->zlo);
    for (size_t i = 0; i < m; i++) {
        float acc = s->stage[i];
        for (int r = 1; r < dp; r++) acc += s->stage[(size_t)r * m + i];
        out[i] = acc;
    }
}

static void reduce_range(nv_grad_sync *s, size_t lo, size_t hi) {
    if (hi <= lo) return;
    if (!s->shard) {
        nv_allreduce_sum_f32(s->d, s->d->comm_dp, s->grad + lo, hi - lo);
        return;
    }
    for (size_t c = lo; c < hi; c += s->chunk) rs_chunk(s, c, hi - c < s->chunk ? hi : c + s->chunk);
}

static void *comm_main(void *arg) {
    nv_grad_sync *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (s->qhead == s->qtail && !s->stop) pthread_cond_wait(&s->cv, &s->mu);
        if (s->qhead == s->qtail && s->stop) break;
        size_t lo = s->qlo[s->qhead % QMAX], hi = s->qhi[s->qhead % QMAX];
        pthread_mutex_unlock(&s->mu);
        reduce_range(s, lo, hi);
        pthread_mutex_lock(&s->mu);
        s->qhead++;
        s->inflight--;
        pthread_cond_broadcast(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

// GPU: a bucket is queued on NCCL's side stream now (ZeRO-1: in chunks, so the device
// staging buffer stays at dp x chunk)
static void enqueue_nccl(nv_grad_sync *s, size_t lo, size_t hi) {
    if (!s->shard) {
        nv_nccl_grad_bucket(s->nc, s->grad, lo, hi);
        return;
    }
    for (size_t c = lo; c < hi; c += s->chunk)
        nv_nccl_zero1_bucket(s->nc, s->grad, c, hi - c < s->chunk ? hi : c + s->chunk, s->shard,
                             s->zlo, s->zhi);
}

static void enqueue(nv_grad_sync *s, size_t lo, size_t hi) {
    if (hi <= lo) return;
    s->reduced_lo = lo;
    if (s->nc) {
        enqueue_nccl(s, lo, hi);
        return;
    }
    if (!s->use_thread) return; // reduced at finish
    pthread_mutex_lock(&s->mu);
    while (s->qtail - s->qhead >= QMAX) pthread_cond_wait(&s->cv, &s->mu);
    s->qlo[s->qtail % QMAX] = lo;
    s->qhi[s->qtail % QMAX] = hi;
    s->qtail++;
    s->inflight++;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static void on_ready(void *ctx, size_t lo, size_t hi) {
    nv_grad_sync *s = ctx;
    if (s->phi == s->plo) { // nothing pending
        s->plo = lo;
        s->phi = hi;
    } else if (hi == s->plo) {
        s->plo = lo;
    } else { // out of order: flush what we have, start anew
        enqueue(s, s->plo, s->phi);
        s->plo = lo;
        s->phi = hi;
    }
    if (s->phi - s->plo >= s->bucket) {
        enqueue(s, s->plo, s->phi);
        s->plo = s->phi = 0;
    }
}

// The parts both transports share: bucketing state and the hook.
static nv_grad_sync *sync_new(const nv_dist *d, nv_nccl *nc, float *grad, size_t total,
                              size_t bucket) {
    nv_grad_sync *s = nv_calloc(1, sizeof *s);
    s->d = d;
    s->nc = nc;
    s->grad = grad;
    s->total = total;
    s->bucket = bucket ? bucket : DEFAULT_BUCKET;
    s->overlap = 1;
    s->reduced_lo = total;
    s->hook.ready = on_ready;
    s->hook.ctx = s;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    return s;
}

nv_grad_sync *nv_grad_sync_create(const nv_dist *d, float *grad, size_t total, size_t bucket) {
    nv_grad_sync *s = sync_new(d, NULL, grad, total, bucket);
    s->use_thread = d->dp_size > 1 && d->thread_multiple;
    if (s->use_thread && pthread_create(&s->th, NULL, comm_main, s) != 0) s->use_thread = 0;
    return s;
}

nv_grad_sync *nv_grad_sync_create_nccl(const nv_dist *d, nv_nccl *nc, float *grad, size_t total,
                                       size_t bucket) {
    return sync_new(d, nc, grad, total, bucket);
}

void nv_grad_sync_set_zero1(nv_grad_sync *s, float *shard, size_t lo, size_t hi) {
    const int dp = s->d->dp_size;
    s->shard = shard;
    s->zlo = lo;
    s->zhi = hi;
    s->rlo = nv_malloc(sizeof(size_t) * dp);
    s->rhi = nv_malloc(sizeof(size_t) * dp);
    for (int r = 0; r < dp; r++) {
        if (s->nc) nv_zero1_range_nccl(s->total, dp, r, &s->rlo[r], &s->rhi[r]);
        else nv_zero1_range(s->total, dp, r, &s->rlo[r], &s->rhi[r]);
    }
    if (s->rlo[s->d->dp_rank] != lo || s->rhi[s->d->dp_rank] != hi)
        nv_dist_abort(s->d, "ZeRO-1: shard [%zu, %zu) is not data rank %d's range [%zu, %zu)", lo,
                      hi, s->d->dp_rank, s->rlo[s->d->dp_rank], s->rhi[s->d->dp_rank]);
    // a chunk's dp contributions are staged: dp x chunk ~ one bucket of memory whatever dp
    s->chunk = s->bucket / (size_t)dp;
    if (s->chunk < 65536) s->chunk = 65536;
    if (s->chunk > 0x7fffffff / (size_t)dp) s->chunk = 0x7fffffff / (size_t)dp; // MPI int counts
    if (s->nc) {
        nv_nccl_zero1_setup(s->nc, s->chunk, s->total);
        return;
    }
    s->stage = nv_malloc(sizeof(float) * s->chunk * (size_t)dp);
    s->cnt_s = nv_malloc(sizeof(int) * 4 * (size_t)dp);
    s->dsp_s = s->cnt_s + dp;
    s->cnt_r = s->cnt_s + 2 * dp;
    s->dsp_r = s->cnt_s + 3 * dp;
}

void nv_grad_sync_set_overlap(nv_grad_sync *s, int overlap) { s->overlap = overlap; }

void nv_grad_sync_free(nv_grad_sync *s) {
    if (!s) return;
    if (s->use_thread) {
        pthread_mutex_lock(&s->mu);
        s->stop = 1;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->th, NULL);
    }
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s->rlo);
    free(s->rhi);
    free(s->stage);
    free(s->cnt_s);
    free(s);
}

const nv_grad_hook *nv_grad_sync_hook(nv_grad_sync *s) {
    return s->d->dp_size > 1 && s->overlap && (s->use_thread || s->nc) ? &s->hook : NULL;
}

void nv_grad_sync_finish(nv_grad_sync *s) {
    if (s->d->dp_size <= 1) {
        if (s->shard && s->nc) nv_nccl_zero1_bucket(s->nc, s->grad, 0, s->total, s->shard, 0, s->total);
        else if (s->shard) memcpy(s->shard, s->grad, sizeof(float) * s->total);
        return;
    }
    if (s->nc || s->use_thread) {
        if (s->phi > s->plo) enqueue(s, s->plo, s->phi);
        s->plo = s->phi = 0;
        // anything never reported (e.g. padding at the front, or everything with overlap
        // off) goes as the last buckets, in bucket-sized pieces
        size_t hi = s->reduced_lo;
        while (hi > 0) {
            size_t lo = hi > s->bucket ? hi - s->bucket : 0;
            enqueue(s, lo, hi);
            hi = lo;
        }
        if (s->nc) {
            nv_nccl_grad_wait(s->nc);
        } else {
            pthread_mutex_lock(&s->mu);
            while (s->inflight > 0) pthread_cond_wait(&s->cv, &s->mu);
            pthread_mutex_unlock(&s->mu);
        }
    } else {
        reduce_range(s, 0, s->total);
    }
    s->reduced_lo = s->total;
}

void nv_zero1_range(size_t total, int dp, int r, size_t *lo, size_t *hi) {
    size_t base = total / (size_t)dp, rem = total % (size_t)dp;
    // the first dp-rem shards get `base`, the rest base+1
    size_t first_big = (size_t)dp - rem;
    size_t rr = (size_t)r;
    *lo = rr * base + (rr > first_big ? rr - first_big : 0);
    *hi = *lo + base + (rr >= first_big ? 1 : 0);
}

void nv_zero1_reduce_scatter(const nv_dist *d, const float *grad, size_t total, float *shard) {
    size_t lo, hi;
    nv_zero1_range(total, d->dp_size, d->dp_rank, &lo, &hi);
    nv_grad_sync *s = sync_new(d, NULL, (float *)grad, total, 0);
    nv_grad_sync_set_zero1(s, shard, lo, hi);
    reduce_range(s, 0, total);
    nv_grad_sync_free(s);
}

void nv_zero1_allgather_bytes(const nv_dist *d, void *w, size_t total, size_t elem_bytes) {
    int *counts = nv_malloc(sizeof(int) * d->dp_size), *displs = nv_malloc(sizeof(int) * d->dp_size);
    for (int r = 0; r < d->dp_size; r++) {
        size_t lo, hi;
        nv_zero1_range(total, d->dp_size, r, &lo, &hi);
        if (hi - lo > (size_t)0x7fffffff || lo > (size_t)0x7fffffff)
            nv_dist_abort(d, "ZeRO-1 shard of %zu elements exceeds MPI's int counts", hi - lo);
        counts[r] = (int)(hi - lo);
        displs[r] = (int)lo;
    }
    MPI_Datatype t; // one element of elem_bytes (fp32 masters, bf16 or fp32 act copy)
    NV_MPI_CHECK(d, MPI_Type_contiguous((int)elem_bytes, MPI_BYTE, &t));
    NV_MPI_CHECK(d, MPI_Type_commit(&t));
    NV_MPI_CHECK(d, MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, w, counts, displs, t, d->comm_dp));
    NV_MPI_CHECK(d, MPI_Type_free(&t));
    free(counts);
    free(displs);
}

void nv_zero1_allgather(const nv_dist *d, float *w, size_t total) {
    nv_zero1_allgather_bytes(d, w, total, sizeof(float));
}
