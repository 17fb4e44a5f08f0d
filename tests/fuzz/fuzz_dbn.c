// fuzz_dbn.c - libFuzzer target: data/seqio.c reading dbn input (NV_FMT_DBN, drop_gaps 1).
#include "fuzz_seqio.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    return fuzz_seqio_run(NV_FMT_DBN, 1, data, size);
}
