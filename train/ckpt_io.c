// ckpt_io.c - block-parallel pwrite/pread of checkpoint datasets with a crc32 per block.
#include "train/ckpt_io.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "data/nv_util.h"

#define MAX_THREADS 8
#define PIECE ((uint64_t)256 << 10) // bytes moved and checksummed together

int nv_ckio_threads(void) {
    cpu_set_t set;
    int n = 1;
    if (sched_getaffinity(0, sizeof set, &set) == 0) n = CPU_COUNT(&set);
    return n < 1 ? 1 : n > MAX_THREADS ? MAX_THREADS : n;
}

// zlib's crc32 takes an unsigned int length: feed it in pieces.
static uint32_t crc_bytes(uint32_t c, const uint8_t *p, uint64_t n) {
    while (n > 0) {
        uInt k = n > (1u << 30) ? (1u << 30) : (uInt)n;
        c = (uint32_t)crc32(c, p, k);
        p += k;
        n -= k;
    }
    return c;
}

uint32_t nv_ckio_crc_of_blocks(const uint32_t *crc, uint64_t n) {
    uint32_t c = (uint32_t)crc32(0L, Z_NULL, 0);
    const uint64_t nb = nv_ckio_nblocks(n);
    for (uint64_t b = 0; b < nb; b++) {
        uint64_t len = b + 1 < nb ? NV_CKIO_BLOCK : n - b * NV_CKIO_BLOCK;
        c = (uint32_t)crc32_combine(c, crc[b], (z_off_t)len);
    }
    return c;
}

static int pio(int fd, void *buf, uint64_t n, uint64_t off, int write) {
    uint8_t *p = buf;
    while (n > 0) {
        size_t k = n > ((uint64_t)1 << 30) ? ((size_t)1 << 30) : (size_t)n;
        ssize_t r = write ? pwrite(fd, p, k, (off_t)off) : pread(fd, p, k, (off_t)off);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return errno ? errno : EIO;
        if (r == 0) return EIO; // a short read: the file ends early
        p += r;
        off += (uint64_t)r;
        n -= (uint64_t)r;
    }
    return 0;
}

int nv_ckio_crc_range(int fd, uint64_t off, uint64_t n, uint32_t *crc) {
    uint8_t buf[1 << 16];
    uint32_t c = (uint32_t)crc32(0L, Z_NULL, 0);
    while (n > 0) {
        uint64_t k = n < sizeof buf ? n : sizeof buf;
        int e = pio(fd, buf, k, off, 0);
        if (e) return e;
        c = crc_bytes(c, buf, k);
        off += k;
        n -= k;
    }
    *crc = c;
    return 0;
}

// The task list: (job, block) pairs, taken in order by the threads.
typedef struct pool {
    nv_ckio_job *jobs;
    int n_jobs, write;
    uint64_t *first; // [n_jobs + 1]: index of each job's first task
    uint64_t next, total;
    pthread_mutex_t mu;
} pool;

static void do_block(pool *p, int j, uint64_t b, uint8_t *scratch) {
    nv_ckio_job *job = &p->jobs[j];
    const uint64_t a = b * NV_CKIO_BLOCK, e = a + NV_CKIO_BLOCK < job->n ? a + NV_CKIO_BLOCK : job->n;
    if (p->write) {
        // in pieces that stay in the core's cache between the checksum and the copy
        const uint8_t *src = (const uint8_t *)job->buf + a;
        uint32_t c = (uint32_t)crc32(0L, Z_NULL, 0);
        int err = 0;
        for (uint64_t o = 0; o < e - a && !err; o += PIECE) {
            uint64_t k = e - a - o < PIECE ? e - a - o : PIECE;
            c = crc_bytes(c, src + o, k);
            err = pio(job->fd, (void *)(src + o), k, job->file_off + a + o, 1);
        }
        job->crc[b] = c;
        // start the block's writeback now: the disk works while the next blocks are copied and
        // checksummed, and the fsync at the end has little left to wait for
        if (!err) sync_file_range(job->fd, (off64_t)(job->file_off + a), (off64_t)(e - a), SYNC_FILE_RANGE_WRITE);
        if (err) __atomic_store_n(&job->sys_errno, err, __ATOMIC_RELAXED);
        return;
    }
    if (e <= job->lo || a >= job->hi) return; // a block of the region not wanted
    const int whole = job->buf && a >= job->lo && e <= job->hi;
    uint8_t *dst = whole ? (uint8_t *)job->buf + (a - job->lo) : scratch;
    uint32_t c = (uint32_t)crc32(0L, Z_NULL, 0);
    for (uint64_t o = 0; o < e - a; o += PIECE) { // each piece checksummed while in cache
        uint64_t k = e - a - o < PIECE ? e - a - o : PIECE;
        int err = pio(job->fd, dst + o, k, job->file_off + a + o, 0);
        if (err) {
            __atomic_store_n(&job->sys_errno, err, __ATOMIC_RELAXED);
            return;
        }
        c = crc_bytes(c, dst + o, k);
    }
    if (job->compute) job->crc[b] = c;
    else if (c != job->crc[b]) {
        int64_t cur = __atomic_load_n(&job->bad_block, __ATOMIC_RELAXED);
        while ((cur < 0 || (int64_t)b < cur) &&
               !__atomic_compare_exchange_n(&job->bad_block, &cur, (int64_t)b, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
        }
    }
    if (!whole && job->buf) { // the edges of [lo, hi): copy the part wanted
        uint64_t x = a > job->lo ? a : job->lo, y = e < job->hi ? e : job->hi;
        memcpy((uint8_t *)job->buf + (x - job->lo), scratch + (x - a), y - x);
    }
}

static void *worker(void *arg) {
    pool *p = arg;
    uint8_t *scratch = p->write ? NULL : nv_malloc(NV_CKIO_BLOCK);
    for (;;) {
        pthread_mutex_lock(&p->mu);
        uint64_t t = p->next++;
        pthread_mutex_unlock(&p->mu);
        if (t >= p->total) break;
        int lo = 0, hi = p->n_jobs - 1; // the job of task t: the last with first <= t
        while (lo < hi) {
            int mid = (lo + hi + 1) / 2;
            if (p->first[mid] <= t) lo = mid;
            else hi = mid - 1;
        }
        int j = lo;
        do_block(p, j, t - p->first[j], scratch);
    }
    free(scratch);
    return NULL;
}

static int run(nv_ckio_job *jobs, int n_jobs, int threads, int write) {
    pool p = {jobs, n_jobs, write, nv_malloc(sizeof(uint64_t) * (size_t)(n_jobs + 1)), 0, 0,
              PTHREAD_MUTEX_INITIALIZER};
    for (int j = 0; j < n_jobs; j++) {
        jobs[j].bad_block = -1;
        jobs[j].sys_errno = 0;
        p.first[j] = p.total;
        p.total += nv_ckio_nblocks(jobs[j].n);
    }
    p.first[n_jobs] = p.total;
    // reads: ask the kernel to fetch the wanted bytes ahead while the threads checksum
    for (int j = 0; j < n_jobs && !write; j++)
        if (jobs[j].hi > jobs[j].lo)
            posix_fadvise(jobs[j].fd, (off_t)(jobs[j].file_off + jobs[j].lo), (off_t)(jobs[j].hi - jobs[j].lo),
                          POSIX_FADV_WILLNEED);
    if (threads < 1) threads = 1;
    if ((uint64_t)threads > p.total) threads = p.total ? (int)p.total : 1;
    pthread_t th[MAX_THREADS];
    int started = 0;
    for (int t = 1; t < threads && t < MAX_THREADS; t++)
        if (pthread_create(&th[started], NULL, worker, &p) == 0) started++;
    worker(&p); // the calling thread works too
    for (int t = 0; t < started; t++) pthread_join(th[t], NULL);
    free(p.first);
    pthread_mutex_destroy(&p.mu);
    int rc = 0;
    for (int j = 0; j < n_jobs; j++)
        if (jobs[j].sys_errno || jobs[j].bad_block >= 0) rc = -1;
    return rc;
}

int nv_ckio_write(nv_ckio_job *jobs, int n_jobs, int threads) { return run(jobs, n_jobs, threads, 1); }
int nv_ckio_read(nv_ckio_job *jobs, int n_jobs, int threads) { return run(jobs, n_jobs, threads, 0); }
