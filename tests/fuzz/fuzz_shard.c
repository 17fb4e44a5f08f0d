// fuzz_shard.c - libFuzzer target: nv_shard_read (data/shard.c) on arbitrary bytes written
// to a scratch .h5 file. Whatever the bytes, the reader either refuses with a message or
// returns a corpus that satisfies the shard contract (design section 5).
#include <assert.h>

#include "data/shard.h"
#include "fuzz_util.h"
#include "fuzz_shard_check.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
    fuzz_hdf5_quiet();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_path("shard.h5");
    fuzz_write(path, data, size);
    fuzz_shard_read_check(path);
    return 0;
}
