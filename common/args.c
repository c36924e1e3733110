// Command-line flags from a table (see args.h).
#include "common/args.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/check.h"

static char* field_at(void* args, const ArgSpec* s) { return (char*)args + s->field; }

// " [default X]"; nothing for no default (a NULL text, or -1: "derived", which the help line says).
static void print_default(const void* args, const ArgSpec* s) {
    const char* at = (const char*)args + s->field;
    if (s->type == ARG_INT && *(const int*)at >= 0) fprintf(stderr, " [default %d]", *(const int*)at);
    else if (s->type == ARG_FLOAT) fprintf(stderr, " [default %g]", *(const float*)at);
    else if (s->type == ARG_TEXT && *(const char* const*)at) fprintf(stderr, " [default %s]", *(const char* const*)at);
}

// The usage: synopsis, then a line per flag with its help and default (from args), on stderr; exits 1.
static void args_usage(const void* args, const ArgSpec* specs, int n, const char* synopsis) {
    fprintf(stderr, "usage: %s\n", synopsis);
    for (int i = 0; i < n; i++) {
        fprintf(stderr, "  %-9s %s", specs[i].flag, specs[i].help);
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
    char* end;
    errno = 0;
    double v = s->type == ARG_INT ? (double)strtoll(value, &end, 10) : strtod(value, &end);
    if (end == value || *end != '\0' || errno == ERANGE || !isfinite(v))
        fail("%s %s: not %s", s->flag, value, s->type == ARG_INT ? "an integer" : "a finite number");
    if (v < s->min || v > s->max) fail("%s %s: out of range [%.9g, %.9g]", s->flag, value, s->min, s->max);
    if (s->type == ARG_INT) *(int*)field_at(args, s) = (int)v;
    else *(float*)field_at(args, s) = (float)v;
}

void args_parse(void* args, const ArgSpec* specs, int n, int argc, char** argv, const char* synopsis) {
    for (int i = 1; i < argc; i += 2) {
        const ArgSpec* s = NULL;
        for (int j = 0; j < n && !s; j++)
            if (!strcmp(argv[i], specs[j].flag)) s = &specs[j];
        if (!s) {
            if (strcmp(argv[i], "-h") && strcmp(argv[i], "--help")) fprintf(stderr, "error: unknown flag %s\n", argv[i]);
            args_usage(args, specs, n, synopsis);
        }
        if (i + 1 >= argc) fail("%s: a value is missing", argv[i]);
        parse_value(args, s, argv[i + 1]);
    }
}
