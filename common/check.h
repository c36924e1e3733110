// Checked wrappers and the one-line fatal error used everywhere (docs/RELIABILITY.md).
// Every failure prints "error: <what>" on one line and exits with status 1; wrappers that
// fail on a programming or system error also name the source file and line of the caller.
#pragma once
#include <stddef.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

// Print "error: ..." and exit(1). For problems with the user's input: name the file and the problem.
// Before exiting it removes the temporaries of atomic_open that are not committed yet.
void fail(const char* fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
// What fail() does instead of printing and exiting, for the fuzz targets (test/fuzz): the handler
// gets the message (without "error: ") and must not return (it longjmps back into the harness).
// NULL, the default, restores printing and exiting. The programs never set one.
typedef void (*FailHandler)(const char* message);
void fail_set_handler(FailHandler handler);

// Opens a file; for reading, only a regular file (a FIFO, device or directory would block or
// fail later with a confusing message, so it is refused here with one line naming the file).
FILE* fopen_at(const char* path, const char* mode, const char* src, int line);
void fread_at(void* ptr, size_t size, size_t count, FILE* f, const char* path, const char* src, int line);
// A write error names the temporary when f came from atomic_open (that is the file being written).
void fwrite_at(const void* ptr, size_t size, size_t count, FILE* f, const char* path, const char* src, int line);
void fclose_at(FILE* f, const char* path, const char* src, int line);
void* malloc_at(size_t size, const char* src, int line);
void* calloc_at(size_t count, size_t size, const char* src, int line);
// For memory whose size comes from an input file: an allocation failure names that file.
void* malloc_for_at(const char* path, size_t size, const char* src, int line);

#define fopen_check(path, mode) fopen_at(path, mode, __FILE__, __LINE__)
#define fread_check(ptr, size, count, f, path) fread_at(ptr, size, count, f, path, __FILE__, __LINE__)
#define fwrite_check(ptr, size, count, f, path) fwrite_at(ptr, size, count, f, path, __FILE__, __LINE__)
#define fclose_check(f, path) fclose_at(f, path, __FILE__, __LINE__)
#define malloc_check(size) malloc_at(size, __FILE__, __LINE__)
#define calloc_check(count, size) calloc_at(count, size, __FILE__, __LINE__)
#define malloc_for(path, size) malloc_for_at(path, size, __FILE__, __LINE__)

// Size of an open file in bytes.
long file_size(FILE* f);
// Crash-safe output: open "<path>.tmp" for writing; commit fsyncs, closes and renames it over path,
// then fsyncs the directory, so after a crash path holds either the old or the new file, whole.
FILE* atomic_open(const char* path);
void atomic_commit(FILE* f, const char* path);
// rename(from, to), then fsync of to's directory so that the rename itself survives a crash.
void rename_durable(const char* from, const char* to);
// An exclusive lock on dir for the life of the process: an fcntl record lock on dir/name (created if
// missing), which the kernel drops when the process ends, however it ends, so a dead run's lock never
// blocks. When another process holds it, fails with one line naming its pid and `flag` (the flag that
// gave dir). The file stays open and must not be opened elsewhere in the process: closing any
// descriptor of it would drop the process's lock.
void lock_dir(const char* dir, const char* name, const char* flag);
// Wall clock in seconds.
double now_seconds(void);

#ifdef __cplusplus
}
#endif
