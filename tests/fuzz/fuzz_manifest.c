// fuzz_manifest.c - libFuzzer target: the checkpoint manifest reader
// (nv_ckpt_manifest_read in train/checkpoint.c). The input is <step dir>/manifest.ini.
#include <assert.h>

#include "fuzz_util.h"
#include "train/checkpoint.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_write(fuzz_path("manifest.ini"), data, size);
    nv_ckpt_manifest *m = malloc(sizeof *m);
    if (!m) abort();
    nv_error err = {{0}};
    if (nv_ckpt_manifest_read(fuzz_dir(), m, &err) == 0) {
        assert(m->n_files > 0 && m->n_tensors > 0 && m->tensor >= 1 && m->data >= 1);
        for (int i = 0; i < m->n_files; i++) assert(memchr(m->files[i].name, 0, sizeof m->files[i].name));
        for (int i = 0; i < m->n_tensors; i++)
            assert(memchr(m->tensor_names[i], 0, sizeof m->tensor_names[i]));
        nv_ckpt_manifest_free(m);
    } else {
        assert(err.msg[0]);
    }
    free(m);
    return 0;
}
