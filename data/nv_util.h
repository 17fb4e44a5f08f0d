// nv_util.h - the base layer every folder uses: errors, checked allocation, timing.
//
// Library code that reads outside input returns -1 and fills an nv_error with one line
// (file, record, position, what is wrong); programs print that line and exit non-zero.
// Internal invariants and out-of-memory end the process at once with nv_die().
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define NV_PATH_MAX 1024 // paths in configs and checkpoints

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nv_error {
    char msg[1024];
} nv_error;

// Fill err (may be NULL) with a printf-style message; always returns -1 so that
// `return nv_seterr(err, ...)` reads naturally.
int nv_seterr(nv_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

// Print "nvwa: error: <msg>" on stderr and exit(code).
void nv_die_code(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
#define nv_die(...) nv_die_code(1, __VA_ARGS__)

void *nv_malloc(size_t bytes);          // dies with the size on failure
void *nv_calloc(size_t n, size_t size); // dies with the size on failure
void *nv_realloc(void *p, size_t bytes);
char *nv_strdup(const char *s);

double nv_now(void); // monotonic seconds

// Write s as a JSON string literal (quotes, backslashes and control characters escaped).
void nv_json_str(FILE *f, const char *s);

// Write `size` bytes to `path` atomically: a temporary file beside it, fsync, rename.
int nv_write_file_atomic(const char *path, const void *data, size_t size, nv_error *err);

#ifdef __cplusplus
}
#endif
