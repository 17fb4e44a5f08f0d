// fuzz_fasta.c - libFuzzer target: data/seqio.c reading fasta input (NV_FMT_AUTO, drop_gaps 0).
#include "fuzz_seqio.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    return fuzz_seqio_run(NV_FMT_AUTO, 0, data, size);
}
