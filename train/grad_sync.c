// grad_sync.c - bucketed, overlapped data-parallel gradient sums (CPU: MPI on a thread).
#include "train/grad_sync.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "train/comm_nccl.h"

#define QMAX 4096

struct nv_grad_sync {
    const nv_dist *d;
    nv_nccl *nc; // GPU: buckets go to NCCL (no thread); NULL on CPU
    float *grad;
    size_t total, bucket;
    nv_grad_hook hook;
    int use_thread;
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

static void reduce_range(nv_grad_sync *s, size_t lo, size_t hi) {
    if (hi > lo) nv_allreduce_sum_f32(s->d, s->d->comm_dp, s->grad + lo, hi - lo);
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

static void enqueue(nv_grad_sync *s, size_t lo, size_t hi) {
    if (hi <= lo) return;
    s->reduced_lo = lo;
    if (s->nc) { // GPU: queued on NCCL's side stream now
        nv_nccl_grad_bucket(s->nc, s->grad, lo, hi);
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
    s->bucket = bucket ? bucket : ((size_t)4 << 20);
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
    free(s);
}

const nv_grad_hook *nv_grad_sync_hook(nv_grad_sync *s) {
    return s->d->dp_size > 1 && (s->use_thread || s->nc) ? &s->hook : NULL;
}

void nv_grad_sync_finish(nv_grad_sync *s) {
    if (s->d->dp_size <= 1) return;
    if (s->nc) { // GPU: the rest as buckets, then the compute stream waits for all of them
        if (s->phi > s->plo) enqueue(s, s->plo, s->phi);
        s->plo = s->phi = 0;
        if (s->reduced_lo > 0) enqueue(s, 0, s->reduced_lo);
        nv_nccl_grad_wait(s->nc);
    } else if (s->use_thread) {
        if (s->phi > s->plo) enqueue(s, s->plo, s->phi);
        s->plo = s->phi = 0;
        // anything never reported (e.g. padding at the front) goes as one last bucket
        if (s->reduced_lo > 0) enqueue(s, 0, s->reduced_lo);
        pthread_mutex_lock(&s->mu);
        while (s->inflight > 0) pthread_cond_wait(&s->cv, &s->mu);
        pthread_mutex_unlock(&s->mu);
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

static void zero1_counts(const nv_dist *d, size_t total, int **counts, int **displs) {
    *counts = nv_malloc(sizeof(int) * d->dp_size);
    *displs = nv_malloc(sizeof(int) * d->dp_size);
    for (int r = 0; r < d->dp_size; r++) {
        size_t lo, hi;
        nv_zero1_range(total, d->dp_size, r, &lo, &hi);
        if (hi - lo > (size_t)0x7fffffff || lo > (size_t)0x7fffffff)
            nv_dist_abort(d, "ZeRO-1 shard of %zu elements exceeds MPI's int counts", hi - lo);
        (*counts)[r] = (int)(hi - lo);
        (*displs)[r] = (int)lo;
    }
}

void nv_zero1_reduce_scatter(const nv_dist *d, const float *grad, size_t total, float *shard) {
    int *counts, *displs;
    zero1_counts(d, total, &counts, &displs);
    NV_MPI_CHECK(d, MPI_Reduce_scatter(grad, shard, counts, MPI_FLOAT, MPI_SUM, d->comm_dp));
    free(counts);
    free(displs);
}

void nv_zero1_allgather(const nv_dist *d, float *w, size_t total) {
    int *counts, *displs;
    zero1_counts(d, total, &counts, &displs);
    NV_MPI_CHECK(d, MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, w, counts, displs,
                                   MPI_FLOAT, d->comm_dp));
    free(counts);
    free(displs);
}
