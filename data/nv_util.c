// nv_util.c - errors, checked allocation, timing, atomic file writes.
#include "data/nv_util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int nv_seterr(nv_error *err, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return -1;
}

void nv_die_code(int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("nvwa: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    fflush(stderr);
    exit(code);
}

void *nv_malloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) nv_die("out of memory allocating %zu bytes\n---> HINT: lower [data] micro-batch or seq-length", bytes);
    return p;
}

void *nv_calloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) nv_die("out of memory allocating %zu x %zu bytes", n, size);
    return p;
}

void *nv_realloc(void *q, size_t bytes) {
    void *p = realloc(q, bytes ? bytes : 1);
    if (!p) nv_die("out of memory reallocating to %zu bytes", bytes);
    return p;
}

char *nv_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = nv_malloc(n);
    memcpy(p, s, n);
    return p;
}

double nv_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void nv_json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fprintf(f, "\\%c", *s);
        else if ((unsigned char)*s < 0x20) fprintf(f, "\\u%04x", (unsigned char)*s);
        else fputc(*s, f);
    }
    fputc('"', f);
}

int nv_write_file_atomic(const char *path, const void *data, size_t size, nv_error *err) {
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return nv_seterr(err, "%s: path too long", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return nv_seterr(err, "%s: cannot create: %s", tmp, strerror(errno));
    const char *p = data;
    size_t left = size;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0) {
            if (errno == EINTR) continue;
            int e = errno;
            close(fd);
            unlink(tmp);
            return nv_seterr(err, "%s: write failed: %s", tmp, strerror(e));
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        int e = errno;
        unlink(tmp);
        return nv_seterr(err, "%s: fsync/close failed: %s", tmp, strerror(e));
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return nv_seterr(err, "%s: rename failed: %s", path, strerror(e));
    }
    return 0;
}
