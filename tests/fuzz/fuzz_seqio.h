// fuzz_seqio.h - the body of the seqio fuzz targets: the input bytes are a sequence file
// (written to a scratch file, since readers take a path); every record must satisfy the
// reader's contract (token ids 5..15, structure bytes 0..8 or 255, a non-NULL id), and
// errors must be one line naming the file.
#pragma once
#include <assert.h>
#include "data/seqio.h"
#include "fuzz_util.h"

static inline int fuzz_seqio_run(nv_seqfmt fmt, int drop_gaps, const uint8_t *data, size_t size) {
    const char *path = fuzz_path("input.txt");
    fuzz_write(path, data, size);
    nv_error err = {{0}};
    nv_seqreader *r = nv_seqreader_open(path, fmt, drop_gaps, &err);
    if (!r) {
        assert(err.msg[0] != 0);
        return 0;
    }
    nv_seqrec rec;
    int rc;
    uint64_t n = 0;
    while ((rc = nv_seqreader_next(r, &rec, &err)) == 1) {
        assert(rec.id != NULL);
        assert(rec.number == ++n);
        for (uint64_t i = 0; i < rec.len; i++) {
            assert(rec.tok[i] >= 5 && rec.tok[i] <= 15);
            if (rec.ss) assert(rec.ss[i] <= 8 || rec.ss[i] == 255);
        }
        if (rec.ss) {
            uint64_t bad = 0;
            (void)nv_ss_balance(rec.ss, rec.len, &bad);
        }
    }
    if (rc < 0) assert(err.msg[0] != 0);
    (void)nv_seqreader_offset(r);
    nv_seqreader_close(r);
    return 0;
}
