// fuzz_util.h - helpers shared by the fuzz targets (tests/fuzz/): a per-process scratch
// directory and writing the fuzz input to a file there (the parsers read files by path).
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <errno.h>
#include <sys/stat.h>

static char fuzz_dir_buf[256];
static inline void fuzz_cleanup(void) {
    static const char *names[] = {"input.txt", "manifest.ini", "shard.h5", "struct.h5"};
    char p[512];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", fuzz_dir_buf, names[i]);
        unlink(p);
    }
    rmdir(fuzz_dir_buf);
}

// A scratch directory of this process (in /dev/shm when it exists: no disk traffic).
static inline const char *fuzz_dir(void) {
    char *dir = fuzz_dir_buf;
    if (!dir[0]) {
        const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        snprintf(dir, sizeof fuzz_dir_buf, "%s/nvwa-fuzz-%ld", base, (long)getpid());
        if (mkdir(dir, 0700) != 0 && errno != EEXIST) abort();
        atexit(fuzz_cleanup);
    }
    return dir;
}

// Path of `name` in the scratch dir.
static inline const char *fuzz_path(const char *name) {
    static char p[512];
    snprintf(p, sizeof p, "%s/%s", fuzz_dir(), name);
    return p;
}

// Write data to path; aborts on failure (a harness problem, not a finding).
static inline void fuzz_write(const char *path, const uint8_t *data, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (size && fwrite(data, 1, size, f) != size) abort();
    if (fclose(f) != 0) abort();
}

// NUL-terminated copy of the input (caller frees).
static inline char *fuzz_strndup(const uint8_t *data, size_t size) {
    char *s = malloc(size + 1);
    if (!s) abort();
    memcpy(s, data, size);
    s[size] = 0;
    return s;
}
