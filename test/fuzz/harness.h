// What the libFuzzer targets in test/fuzz share (docs/RELIABILITY.md, "Fuzzing"). The loaders
// report bad input through fail(), which exits; here fail() longjmps back instead (fail_set_handler),
// and everything the input allocated or opened before it failed is released, so one process tries
// many inputs. For that the targets are linked with --wrap for malloc, calloc, realloc, free,
// fopen, fdopen and fclose (see the Makefile): the wrappers below track what the library takes.
// A finding is a sanitizer report or an abort() from here: an error message that does not name the
// input file, or memory or files left behind by a load that succeeded.
#pragma once
#include <stddef.h>
#include <stdint.h>

// Writes the input to this process's scratch file and returns its path (the same for every input).
const char* fuzz_input_file(const uint8_t* data, size_t size);
// The input with the whole-file checksum in header slots checksum_slot, +1 computed again (docs/FORMATS.md),
// written to a second scratch file; NULL for an input shorter than the header. Mutations of a
// checkpoint's or state's header then reach the checks behind the checksum, which they seldom would.
const char* fuzz_resigned_file(const uint8_t* data, size_t size, int checksum_slot);
// A path for a second scratch file (suffix tells them apart), removed at exit.
const char* fuzz_scratch_path(const char* suffix);
// Runs body(ctx). Returns NULL when it returned; otherwise the message of the fail() that stopped it,
// after freeing every allocation and closing every file it made. After a body that returned, every
// allocation and file must have been released: else this aborts.
const char* fuzz_run(void (*body)(void* ctx), void* ctx);
// Whether message names path (a message about an input must say which file is bad).
int fuzz_names(const char* message, const char* path);
// abort() with a line on stderr: a finding.
void fuzz_finding(const char* what, const char* detail) __attribute__((noreturn));
