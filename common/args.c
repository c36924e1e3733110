// Command-line flags from a table (see args.h).
#include "common/args.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/check.h"

static char* field_at(void* args, const ArgSpec* s) { return (char*)args + s->field; }

// " [default X]"; nothing for no default (a NULL text, or -1: "derived", which the help line says)
// nor for a switch (off unless given).
static void print_default(const void* args, const ArgSpec* s) {
    const char* at = (const char*)args + s->field;
    if (s->type == ARG_INT && *(const int*)at >= 0) fprintf(stderr, " [default %d]", *(const int*)at);
    else if (s->type == ARG_FLOAT) fprintf(stderr, " [default %g]", *(const float*)at);
    else if (s->type == ARG_DOUBLE) fprintf(stderr, " [default %g]", *(const double*)at);
    else if (s->type == ARG_TEXT && *(const char* const*)at) fprintf(stderr, " [default %s]", *(const char* const*)at);
}

// The usage: synopsis, then a line per flag with its help and default (from args), on stderr; exits 1.
// The flags take a column of 9 characters (train_gpt2's), or of the longest flag where one is longer
// (infer's -eval-stream, prepare's --shard-tokens), so that the help lines start in one column.
static void args_usage(const void* args, const ArgSpec* specs, int n, const char* synopsis) {
    int width = 9;
    for (int i = 0; i < n; i++)
        if ((int)strlen(specs[i].flag) > width) width = (int)strlen(specs[i].flag);
    fprintf(stderr, "usage: %s\n", synopsis);
    for (int i = 0; i < n; i++) {
        fprintf(stderr, "  %-*s %s", width, specs[i].flag, specs[i].help);
        print_default(args, &specs[i]);
        fprintf(stderr, "\n");
    }
    exit(1);
}

// One value into its field, or one line on what is wrong with it.
static void parse_value(void* args, const ArgSpec* s, const char* value) {
    if (s->type == ARG_TEXT) {
        *(const char**)field_at(args, s) = value;
        return;
    }
    // the whole text and nothing else: strtod and strtoll would skip leading spaces; quoted, as an
    // empty or space-led value is invisible otherwise
    char* end;
    errno = 0;
    double v = s->type == ARG_INT ? (double)strtoll(value, &end, 10) : strtod(value, &end);
    if (end == value || *end != '\0' || isspace((unsigned char)value[0]) || errno == ERANGE || !isfinite(v))
        fail("%s '%s': not %s", s->flag, value, s->type == ARG_INT ? "an integer" : "a finite number");
    // %.10g: every int bound whole (2147483647, not 2.14748365e+09)
    if (v < s->min || v > s->max) fail("%s %s: out of range [%.10g, %.10g]", s->flag, value, s->min, s->max);
    if (s->type == ARG_INT) *(int*)field_at(args, s) = (int)v;
    else if (s->type == ARG_DOUBLE) *(double*)field_at(args, s) = v;
    else *(float*)field_at(args, s) = (float)v;
}

int args_parse(void* args, const ArgSpec* specs, int n, int argc, char** argv, const char* synopsis,
               const char** positional) {
    int count = 0;
    for (int i = 1; i < argc; i++) {
        const char* a = argv[i];
        if (positional && (a[0] != '-' || a[1] == '\0')) {
            positional[count++] = a;
            continue;
        }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) args_usage(args, specs, n, synopsis);
        const ArgSpec* s = NULL;
        for (int j = 0; j < n && !s; j++)
            if (!strcmp(a, specs[j].flag)) s = &specs[j];
        if (!s) fail("%s: unknown flag (see %s -h)", a, argv[0]);
        if (s->type == ARG_SWITCH) {
            *(int*)field_at(args, s) = 1;
            continue;
        }
        if (i + 1 >= argc) fail("%s: a value is missing", a);
        parse_value(args, s, argv[++i]);
    }
    return count;
}
