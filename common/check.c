// Checked wrappers (see check.h).
#include "check.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void fail(const char* fmt, ...) {
    fflush(stdout);
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "error: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

FILE* fopen_at(const char* path, const char* mode, const char* src, int line) {
    FILE* f = fopen(path, mode);
    if (!f) fail("%s: cannot open for %s: %s (%s:%d)", path, mode[0] == 'r' ? "reading" : "writing",
                 strerror(errno), src, line);
    return f;
}

void fread_at(void* ptr, size_t size, size_t count, FILE* f, const char* path, const char* src, int line) {
    size_t got = fread(ptr, size, count, f);
    if (got != count)
        fail("%s: file is truncated or unreadable (wanted %zu items of %zu bytes, got %zu) (%s:%d)",
             path, count, size, got, src, line);
}

void fwrite_at(const void* ptr, size_t size, size_t count, FILE* f, const char* path, const char* src, int line) {
    if (fwrite(ptr, size, count, f) != count)
        fail("%s: write failed: %s (%s:%d)", path, strerror(errno), src, line);
}

void fclose_at(FILE* f, const char* path, const char* src, int line) {
    if (fclose(f) != 0) fail("%s: close failed: %s (%s:%d)", path, strerror(errno), src, line);
}

void* malloc_at(size_t size, const char* src, int line) {
    void* p = malloc(size);
    if (!p && size) fail("out of memory allocating %zu bytes (%s:%d)", size, src, line);
    return p;
}

void* calloc_at(size_t count, size_t size, const char* src, int line) {
    void* p = calloc(count, size);
    if (!p && count && size) fail("out of memory allocating %zu x %zu bytes (%s:%d)", count, size, src, line);
    return p;
}

long file_size(FILE* f) {
    long pos = ftell(f);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, pos, SEEK_SET);
    return size;
}

FILE* atomic_open(const char* path) {
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    return fopen_check(tmp, "wb");
}

void atomic_commit(FILE* f, const char* path) {
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) fail("%s: flush failed: %s", tmp, strerror(errno));
    fclose_check(f, tmp);
    if (rename(tmp, path) != 0) fail("%s: cannot rename to %s: %s", tmp, path, strerror(errno));
}

double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}
