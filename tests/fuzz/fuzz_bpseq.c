// fuzz_bpseq.c - libFuzzer target: data/seqio.c reading bpseq input (NV_FMT_BPSEQ, drop_gaps (int)(size & 1)).
#include "fuzz_seqio.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    return fuzz_seqio_run(NV_FMT_BPSEQ, (int)(size & 1), data, size);
}
