// ckpt_io.h - the bytes of checkpoint datasets at disk speed (design section 9).
//
// A region of a file (one contiguous dataset) is cut into blocks of NV_CKIO_BLOCK bytes;
// a pool of threads writes (pwrite) or reads (pread) the blocks, and the thread that moves
// a block also takes its zlib crc32 while the block is in its cache: one pass over the
// data, checksums in parallel. crc32_combine joins block CRCs into the CRC of the region
// and, with the CRCs of the bytes between regions, of the whole file.
#pragma once
#include <stddef.h>
#include <stdint.h>

#define NV_CKIO_BLOCK ((uint64_t)1 << 20)

static inline uint64_t nv_ckio_nblocks(uint64_t n) { return (n + NV_CKIO_BLOCK - 1) / NV_CKIO_BLOCK; }

typedef struct nv_ckio_job {
    int fd;
    uint64_t file_off;  // where the region starts in the file
    uint64_t n;         // bytes in the region
    void *buf;          // write: the n bytes; read: receives bytes [lo, hi) of the region
    uint64_t lo, hi;    // read: the part wanted (the blocks it touches are read whole and checked)
    uint32_t *crc;      // [nv_ckio_nblocks(n)]: filled by a write, expected by a read
    int compute;        // read: fill crc[] instead of checking it (buf may then be NULL)
    // results
    int64_t bad_block;  // read: the first block whose CRC did not match, or -1
    int sys_errno;      // a failed or short pread/pwrite: its errno (EIO for a short read), or 0
} nv_ckio_job;

// Threads for checkpoint I/O: the cores this process may run on, at most 8.
int nv_ckio_threads(void);
// Run all jobs on up to `threads` threads. Returns 0 when every job succeeded, else -1
// (see each job's sys_errno and bad_block).
int nv_ckio_write(nv_ckio_job *jobs, int n_jobs, int threads);
int nv_ckio_read(nv_ckio_job *jobs, int n_jobs, int threads);
// CRC of n bytes from the CRCs of their blocks.
uint32_t nv_ckio_crc_of_blocks(const uint32_t *crc, uint64_t n);
// crc32 of bytes [off, off + n) of fd read with pread (the small parts between datasets).
int nv_ckio_crc_range(int fd, uint64_t off, uint64_t n, uint32_t *crc);
