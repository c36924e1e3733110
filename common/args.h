// Command-line flags from a table (train.c, infer.c): one row per flag with its field, type, range
// and help line; parsing, range checks, the usage text and its defaults are derived from the rows.
// A bad value gets one line naming the flag, the value and the allowed range (docs/RELIABILITY.md).
#pragma once
#include <stddef.h>

typedef enum { ARG_INT, ARG_FLOAT, ARG_TEXT } ArgType;

typedef struct {
    const char* flag;    // "-b"
    ArgType type;        // the field: an int, a float or a const char*
    size_t field;        // offsetof(Args, ...)
    double min, max;     // ARG_INT, ARG_FLOAT: the allowed range, inclusive
    const char* help;    // one line
} ArgSpec;

// Parses argv's "-flag value" pairs into args (which holds the defaults on entry). `-h` or an unknown
// flag prints the usage and exits 1; a bad value fails with one line.
void args_parse(void* args, const ArgSpec* specs, int n, int argc, char** argv, const char* synopsis);
