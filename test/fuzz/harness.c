// The fuzz targets' harness (see harness.h).
#include "test/fuzz/harness.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/check.h"
#include "common/checksum.h"

// The real functions behind the --wrap'ed names.
void* __real_malloc(size_t size);
void* __real_calloc(size_t count, size_t size);
void* __real_realloc(void* p, size_t size);
void __real_free(void* p);
FILE* __real_fopen(const char* path, const char* mode);
FILE* __real_fdopen(int fd, const char* mode);
int __real_fclose(FILE* f);

// ----------------------------------------------------------------------------
// what the library holds while a body runs: a set of pointers (open addressing, tombstones)

#define SET_BITS 20                     // slots for far more live allocations than one small input makes
#define SET_SLOTS (1u << SET_BITS)
#define TOMBSTONE ((void*)1)

typedef struct {
    void** slots;
    uint32_t* filled;                   // the slots ever filled since the last drain, to clear just those
    size_t num_filled, live;
} PointerSet;

static PointerSet blocks, files;
static int tracking;                    // set while a body runs
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;   // OpenMP threads allocate too

static size_t slot_of(const void* p) { return ((uintptr_t)p >> 4) * 0x9E3779B97F4A7C15ull >> (64 - SET_BITS); }

static void set_add(PointerSet* s, void* p) {
    if (!s->slots) {
        s->slots = __real_calloc(SET_SLOTS, sizeof(void*));
        s->filled = __real_malloc(SET_SLOTS / 2 * sizeof(uint32_t));
    }
    if (s->num_filled == SET_SLOTS / 2) fuzz_finding("harness", "more allocations than the tracking set holds");
    size_t i = slot_of(p);
    while (s->slots[i] && s->slots[i] != TOMBSTONE) i = (i + 1) & (SET_SLOTS - 1);
    if (!s->slots[i]) s->filled[s->num_filled++] = (uint32_t)i;
    s->slots[i] = p;
    s->live++;
}

// Removes p; returns whether it was there.
static int set_remove(PointerSet* s, const void* p) {
    if (!s->slots) return 0;
    for (size_t i = slot_of(p); s->slots[i]; i = (i + 1) & (SET_SLOTS - 1)) {
        if (s->slots[i] != p) continue;
        s->slots[i] = TOMBSTONE;
        s->live--;
        return 1;
    }
    return 0;
}

// Calls release on every entry and empties the set.
static void set_drain(PointerSet* s, void (*release)(void*)) {
    for (size_t k = 0; k < s->num_filled; k++) {
        void** slot = &s->slots[s->filled[k]];
        if (*slot != TOMBSTONE) release(*slot);
        *slot = NULL;
    }
    s->num_filled = s->live = 0;
}

static void track(PointerSet* s, void* p) {
    if (!p || !tracking) return;
    pthread_mutex_lock(&lock);
    set_add(s, p);
    pthread_mutex_unlock(&lock);
}

static int untrack(PointerSet* s, const void* p) {
    if (!p || !tracking) return 0;
    pthread_mutex_lock(&lock);
    int found = set_remove(s, p);
    pthread_mutex_unlock(&lock);
    return found;
}

void* __wrap_malloc(size_t size) {
    void* p = __real_malloc(size);
    track(&blocks, p);
    return p;
}

void* __wrap_calloc(size_t count, size_t size) {
    void* p = __real_calloc(count, size);
    track(&blocks, p);
    return p;
}

void* __wrap_realloc(void* p, size_t size) {
    int was_tracked = untrack(&blocks, p);
    void* q = __real_realloc(p, size);
    if (!q && size && was_tracked) track(&blocks, p);   // failed: p is still the library's
    else track(&blocks, q);
    return q;
}

void __wrap_free(void* p) {
    untrack(&blocks, p);
    __real_free(p);
}

FILE* __wrap_fopen(const char* path, const char* mode) {
    FILE* f = __real_fopen(path, mode);
    track(&files, f);
    return f;
}

FILE* __wrap_fdopen(int fd, const char* mode) {
    FILE* f = __real_fdopen(fd, mode);
    track(&files, f);
    return f;
}

int __wrap_fclose(FILE* f) {
    untrack(&files, f);
    return __real_fclose(f);
}

static void release_block(void* p) { __real_free(p); }
static void release_file(void* f) { __real_fclose(f); }

// ----------------------------------------------------------------------------
// running one input

static jmp_buf back;
static char fail_message[16384];

static void jump_back(const char* message) {
    snprintf(fail_message, sizeof(fail_message), "%s", message);
    longjmp(back, 1);
}

const char* fuzz_run(void (*body)(void* ctx), void* ctx) {
    fail_set_handler(jump_back);
    tracking = 1;
    int failed = setjmp(back);
    if (!failed) body(ctx);
    tracking = 0;
    if (!failed && (blocks.live || files.live)) {
        char detail[128];
        snprintf(detail, sizeof(detail), "%zu allocations and %zu files left behind", blocks.live, files.live);
        fuzz_finding("leak after a successful load", detail);
    }
    set_drain(&files, release_file);
    set_drain(&blocks, release_block);
    return failed ? fail_message : NULL;
}

int fuzz_names(const char* message, const char* path) { return strstr(message, path) != NULL; }

void fuzz_finding(const char* what, const char* detail) {
    fprintf(stderr, "FUZZ FINDING: %s: %s\n", what, detail);
    abort();
}

// ----------------------------------------------------------------------------
// scratch files

static char scratch[8][256];
static int num_scratch;

static void remove_scratch(void) {
    for (int i = 0; i < num_scratch; i++) unlink(scratch[i]);
}

const char* fuzz_scratch_path(const char* suffix) {
    if (num_scratch == 8) fuzz_finding("harness", "more than 8 scratch paths");
    if (num_scratch == 0) atexit(remove_scratch);
    const char* tmp = getenv("TMPDIR");
    snprintf(scratch[num_scratch], sizeof(scratch[0]), "%s/attnlab_fuzz_%d_%s", tmp ? tmp : "/tmp", (int)getpid(),
             suffix);
    return scratch[num_scratch++];
}

const char* fuzz_resigned_file(const uint8_t* data, size_t size, int checksum_slot) {
    static const char* path;
    int header[256];
    if (size < sizeof(header)) return NULL;
    if (!path) path = fuzz_scratch_path("resigned.bin");
    memcpy(header, data, sizeof(header));
    header[checksum_slot] = header[checksum_slot + 1] = 0;
    uint64_t h = checksum_update(CHECKSUM_START, header, sizeof(header));
    checksum_to_slots(&header[checksum_slot], checksum_update(h, data + sizeof(header), size - sizeof(header)));
    FILE* f = __real_fopen(path, "wb");
    if (!f || fwrite(header, 1, sizeof(header), f) != sizeof(header) ||
        fwrite(data + sizeof(header), 1, size - sizeof(header), f) != size - sizeof(header) || __real_fclose(f) != 0)
        fuzz_finding("harness", "cannot write the re-signed input");
    return path;
}

const char* fuzz_input_file(const uint8_t* data, size_t size) {
    static const char* path;
    if (!path) path = fuzz_scratch_path("input.bin");
    FILE* f = __real_fopen(path, "wb");
    if (!f || fwrite(data, 1, size, f) != size || __real_fclose(f) != 0)
        fuzz_finding("harness", "cannot write the scratch input");
    return path;
}
