// Command-line flags from a table (train.c, infer.c, data/prepare.c): one row per flag with its field,
// type, range and help line; parsing, range checks, the usage text and its defaults are derived from
// the rows. A bad value or an unknown flag gets one line naming it (docs/RELIABILITY.md).
#pragma once
#include <stddef.h>

// ARG_SWITCH: a flag without a value (prepare's --bytes); it sets its int field to 1.
typedef enum { ARG_INT, ARG_FLOAT, ARG_DOUBLE, ARG_TEXT, ARG_SWITCH } ArgType;

typedef struct {
    const char* flag;    // "-b"
    ArgType type;        // the field: an int, a float, a double, a const char* or an int (switch)
    size_t field;        // offsetof(Args, ...)
    double min, max;     // ARG_INT, ARG_FLOAT, ARG_DOUBLE: the allowed range, inclusive
    const char* help;    // one line
} ArgSpec;

// Parses argv's flags ("-flag value", or "-flag" alone for a switch) into args (which holds the
// defaults on entry). `-h` prints the usage and exits 1; an unknown flag or a bad value fails with
// one line. An argument that does not start with '-' (or is "-" alone) is positional: with
// `positional` (room for argc entries) it is stored there in order and the count is returned; with
// NULL it is refused as an unknown flag, as for train_gpt2 and infer, which take none.
int args_parse(void* args, const ArgSpec* specs, int n, int argc, char** argv, const char* synopsis,
               const char** positional);
