// test_dump.c - nv_dump_batches writes the loader's global batches: read the file back
// with plain HDF5 calls and compare every dataset, row by row, with a dp = 1 loader.
#include <hdf5.h>
#include <unistd.h>

#include "data/dump.h"
#include "tests/loader/loader_testutil.h"
#include "train/config.h"

static void *read_ds(hid_t f, const char *name, int u8, hsize_t rows, hsize_t cols, int *ok) {
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    if (d < 0) { *ok = 0; return NULL; }
    hid_t sp = H5Dget_space(d), ty = H5Dget_type(d);
    hsize_t dims[2] = {0, 0};
    int nd = H5Sget_simple_extent_dims(sp, dims, NULL);
    if (nd != 2 || dims[0] != rows || dims[1] != cols || H5Tget_size(ty) != (u8 ? 1u : 4u) ||
        H5Tget_class(ty) != H5T_INTEGER || H5Tget_sign(ty) != (u8 ? H5T_SGN_NONE : H5T_SGN_2)) {
        fprintf(stderr, "%s: shape %llu x %llu or type wrong\n", name, (unsigned long long)dims[0],
                (unsigned long long)dims[1]);
        *ok = 0;
    }
    void *buf = malloc(rows * cols * (u8 ? 1 : 4));
    if (H5Dread(d, u8 ? H5T_NATIVE_UINT8 : H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) *ok = 0;
    H5Tclose(ty);
    H5Sclose(sp);
    H5Dclose(d);
    return buf;
}

int main(void) {
    tu_seed();
    const int S = 128, MB = 2, GB = 8, N = 3 + tu_int(0, 3);
    tl_lengths lm = {0.3, 0.1, 5, 100, 400};
    nv_corpus c;
    tl_make_corpus(&c, 300, &lm, 0.7);
    nv_config cfg;
    tl_config(&cfg, S, MB, GB, tu_u64());

    char dir[] = "/tmp/nvwa_dump_XXXXXX";
    REQUIRE(mkdtemp(dir), "mkdtemp");
    char path[256];
    snprintf(path, sizeof path, "%s/batches.h5", dir);
    nv_error err;
    nv_dataset *src = nv_dataset_wrap(&c);
    REQUIRE(nv_dump_batches(&cfg.data, cfg.model.structure_input, src, N, path, &err) == 0, "%s", err.msg);

    hsize_t rows = (hsize_t)N * GB, cols = S;
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    REQUIRE(f >= 0, "cannot open %s", path);
    const char *names[8] = {"input", "target", "struct_in", "struct_target", "mlm_mask", "struct_mask", "segment", "position"};
    void *ds[8];
    int ok = 1;
    for (int i = 0; i < 8; i++) ds[i] = read_ds(f, names[i], i == 4 || i == 5, rows, cols, &ok);
    H5Fclose(f);
    CHECK(ok, "datasets missing or with the wrong shape/type");

    nv_loader *l = nv_loader_create_ex(&c, &cfg.data, cfg.model.structure_input, 0, 1, 0, &err);
    REQUIRE(l, "%s", err.msg);
    long bad = 0, real = 0;
    for (int m = 0; m < N * GB / MB && ok; m++) {
        const nv_batch *b = nv_loader_next(l);
        size_t o = (size_t)m * MB * S, n = (size_t)MB * S;
        const void *mine[8] = {b->input, b->target, b->struct_in, b->struct_target, b->mlm_mask, b->struct_mask,
                               b->segment, b->position};
        for (int i = 0; i < 8; i++) {
            size_t w = (i == 4 || i == 5) ? 1 : 4;
            if (memcmp((const char *)ds[i] + o * w, mine[i], n * w)) {
                if (bad++ < 5) fprintf(stderr, "micro-batch %d: %s differs\n", m, names[i]);
            }
        }
        real += b->n_real;
    }
    CHECK(bad == 0, "%ld dataset slices differ from the loader", bad);
    CHECK(real > 0, "the dump holds no tokens");
    printf("dump of %d steps (%llu rows of %d) matches the loader\n", N, (unsigned long long)rows, S);

    // No temporary left behind; a path in a missing directory is an error with a message.
    char cmd[300];
    snprintf(cmd, sizeof cmd, "ls %s | grep -c tmp > /dev/null", dir);
    CHECK(system(cmd) != 0, "a temporary file was left in %s", dir);
    char badpath[300];
    snprintf(badpath, sizeof badpath, "%s/missing/x.h5", dir);
    CHECK(nv_dump_batches(&cfg.data, cfg.model.structure_input, src, 1, badpath, &err) != 0 && strlen(err.msg) > 0, "dump into a missing directory");

    nv_loader_free(l);
    for (int i = 0; i < 8; i++) free(ds[i]);
    unlink(path);
    rmdir(dir);
    nv_dataset_free(src);
    tl_free_corpus(&c);
    return tu_finish("dump");
}
