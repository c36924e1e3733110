// Checked wrappers (see check.h).
#include "check.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PATH_BYTES 4096
#define MAX_TEMPS 16   // temporaries open at once; the programs write one file at a time

// The temporaries of atomic_open not committed yet: write errors name them, fail() removes them.
static struct {
    FILE* f;
    char path[PATH_BYTES];
} temps[MAX_TEMPS];

static FailHandler fail_handler;

void fail_set_handler(FailHandler handler) { fail_handler = handler; }

// A failed run leaves no partial file behind (and a full disk gets its space back).
static void remove_temps(void) {
    for (int i = 0; i < MAX_TEMPS; i++) {
        if (!temps[i].f) continue;
        remove(temps[i].path);
        temps[i].f = NULL;
    }
}

void fail(const char* fmt, ...) {
    remove_temps();
    char message[16384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    if (fail_handler) fail_handler(message);   // does not return
    fflush(stdout);
    fprintf(stderr, "error: %s\n", message);
    exit(1);
}

static const char* file_kind(mode_t mode) {
    if (S_ISDIR(mode)) return "a directory";
    if (S_ISFIFO(mode)) return "a FIFO";
    if (S_ISCHR(mode) || S_ISBLK(mode)) return "a device";
    if (S_ISSOCK(mode)) return "a socket";
    return "not a plain file";
}

// Inputs are regular files only: reading a FIFO blocks until a writer comes (forever, in practice),
// a directory or device gives a confusing error later. O_NONBLOCK keeps open() itself from blocking
// on a FIFO; regular files ignore the flag.
static FILE* open_regular(const char* path, const char* mode, const char* src, int line) {
    int fd = open(path, O_RDONLY | O_NONBLOCK);
    if (fd < 0) fail("%s: cannot open for reading: %s (%s:%d)", path, strerror(errno), src, line);
    struct stat st;
    if (fstat(fd, &st) != 0) fail("%s: cannot stat: %s (%s:%d)", path, strerror(errno), src, line);
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        fail("%s: not a regular file (%s); give a file", path, file_kind(st.st_mode));
    }
    FILE* f = fdopen(fd, mode);
    if (!f) fail("%s: cannot open for reading: %s (%s:%d)", path, strerror(errno), src, line);
    return f;
}

FILE* fopen_at(const char* path, const char* mode, const char* src, int line) {
    if (mode[0] == 'r') return open_regular(path, mode, src, line);
    FILE* f = fopen(path, mode);
    if (!f) fail("%s: cannot open for writing: %s (%s:%d)", path, strerror(errno), src, line);
    return f;
}

void fread_at(void* ptr, size_t size, size_t count, FILE* f, const char* path, const char* src, int line) {
    if (size == 0 || count == 0) return;   // ptr may be NULL then, which fread must not get
    size_t got = fread(ptr, size, count, f);
    if (got != count)
        fail("%s: file is truncated or unreadable (wanted %zu items of %zu bytes, got %zu) (%s:%d)",
             path, count, size, got, src, line);
}

// The slot of a temporary of atomic_open, or -1.
static int temp_slot(const FILE* f) {
    for (int i = 0; i < MAX_TEMPS; i++)
        if (temps[i].f == f) return i;
    return -1;
}

void fwrite_at(const void* ptr, size_t size, size_t count, FILE* f, const char* path, const char* src, int line) {
    if (size == 0 || count == 0) return;   // ptr may be NULL then (no merges, say), which fwrite must not get
    if (fwrite(ptr, size, count, f) != count) {
        int slot = temp_slot(f);
        fail("%s: write failed: %s (%s:%d)", slot >= 0 ? temps[slot].path : path, strerror(errno), src, line);
    }
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

void* malloc_for_at(const char* path, size_t size, const char* src, int line) {
    void* p = malloc(size);
    if (!p && size) fail("%s: out of memory allocating %zu bytes for it (%s:%d)", path, size, src, line);
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
    int slot = 0;
    while (slot < MAX_TEMPS && temps[slot].f) slot++;
    if (slot == MAX_TEMPS) fail("%s: more than %d files open for writing at once", path, MAX_TEMPS);
    if (snprintf(temps[slot].path, PATH_BYTES, "%s.tmp", path) >= PATH_BYTES) fail("%s: path too long", path);
    temps[slot].f = fopen_check(temps[slot].path, "wb");
    return temps[slot].f;
}

// The directory that holds path ("." for a bare name).
static void parent_dir(const char* path, char* dir) {
    const char* slash = strrchr(path, '/');
    if (!slash) { strcpy(dir, "."); return; }
    size_t n = slash == path ? 1 : (size_t)(slash - path);
    if (n >= PATH_BYTES) fail("%s: path too long", path);
    memcpy(dir, path, n);
    dir[n] = 0;
}

void rename_durable(const char* from, const char* to) {
    if (rename(from, to) != 0) fail("%s: cannot rename to %s: %s", from, to, strerror(errno));
    char dir[PATH_BYTES];
    parent_dir(to, dir);
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) fail("%s: cannot open the directory to sync the rename of %s: %s", dir, to, strerror(errno));
    // EINVAL: a file system that cannot sync directories (some network ones); nothing more to do there
    if (fsync(fd) != 0 && errno != EINVAL) fail("%s: cannot sync the rename of %s: %s", dir, to, strerror(errno));
    close(fd);
}

void atomic_commit(FILE* f, const char* path) {
    int slot = temp_slot(f);
    if (slot < 0) fail("%s: atomic_commit of a file that atomic_open did not open", path);
    const char* tmp = temps[slot].path;
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) fail("%s: flush failed: %s", tmp, strerror(errno));
    fclose_check(f, tmp);
    rename_durable(tmp, path);
    temps[slot].f = NULL;   // committed: not fail()'s to remove
}

// The pid of the process whose lock keeps fd's file from being locked, or 0 if none does now.
static pid_t lock_holder(int fd) {
    struct flock l = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    if (fcntl(fd, F_GETLK, &l) != 0 || l.l_type == F_UNLCK) return 0;
    return l.l_pid;
}

void lock_dir(const char* dir, const char* name, const char* flag) {
    char path[PATH_BYTES];
    if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= PATH_BYTES) fail("%s: path too long", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) fail("%s: cannot open the lock file: %s", path, strerror(errno));
    // fcntl, not flock: only a record lock tells who holds it (F_GETLK)
    for (int tries = 0;; tries++) {
        struct flock l = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
        if (fcntl(fd, F_SETLK, &l) == 0) break;
        if (errno == ENOLCK || errno == EOPNOTSUPP) {   // a file system without locks (some network ones)
            fprintf(stderr, "note: %s: cannot lock (%s): a second run in %s would not be stopped\n", path,
                    strerror(errno), dir);
            return;
        }
        if (errno != EACCES && errno != EAGAIN) fail("%s: cannot lock: %s", path, strerror(errno));
        pid_t holder = lock_holder(fd);
        if (holder || tries == 100)   // no holder: it let go between the two calls; try again
            fail("%s %s: in use by another run (pid %d holds %s); wait for it to end, or give another %s", flag, dir,
                 (int)holder, path, flag);
    }
}

double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}
