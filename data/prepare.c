// prepare: text files -> a tokenizer and token shards for the trainer.
//     ./prepare -o DIR [--bytes | --vocab N | --tokenizer FILE | --gpt2 DIR] [--val-frac F] FILE...
// (and --shard-tokens N, --eot-text, --doc-start REGEX: the flag table FLAGS, ./prepare -h).
// Writes DIR/tokenizer.bin and DIR/val_000000.bin, DIR/train_000000.bin, ... (llm.c's formats, see
// data/tokenizer.h and data/shards.h). Every input file is a document and starts with the EOT
// token; with --eot-text the text <|endoftext|> inside a file also ends a document (TinyStories,
// and scripts/download_fineweb.py, write documents that way); with --doc-start REGEX every line
// that matches starts one (a verse of the Bible, say). The first F of the input bytes (cut at a
// piece boundary) go to val, the rest to train.
// Files are read in blocks, so inputs of any size stream through in bounded memory; --vocab N first
// counts words in one pass, trains, then encodes in a second pass. The shards are written under
// staging names (".new") and replace the previous set, with the tokenizer, only once all are
// written: a run that fails leaves the folder as it was (docs/RELIABILITY.md).
#include <errno.h>
#include <glob.h>
#include <regex.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/args.h"
#include "common/check.h"
#include "data/pretokenize.h"
#include "data/shards.h"
#include "data/tokenizer.h"

#define MAX_VOCAB 65536                  // shards store ids as uint16
#define BLOCK_BYTES (8u << 20)           // the reader's buffer: it never grows
#define PATH_BYTES 4096
#define DEFAULT_SHARD_TOKENS 100000000   // llm.c's FineWeb shards
#define MIN_SHARD_TOKENS 1025            // one sequence of GPT-2's T = 1024 and its last target: the least batch
#define MAX_SHARDS 1000000               // a split's shards are numbered with six digits

enum { TOK_NONE, TOK_BYTES, TOK_TRAIN, TOK_FILE, TOK_GPT2 };

typedef struct {
    const char* out_dir;
    int bytes;                           // --bytes
    int vocab_size;                      // --vocab N; -1: not given
    const char* tok_file;                // --tokenizer FILE
    const char* gpt2_dir;                // --gpt2 DIR
    int tok_mode;                        // which of the four was given (exactly one)
    const char* tok_path;                // --tokenizer FILE or --gpt2 DIR
    int eot_text;                        // "<|endoftext|>" in the text separates documents
    const char* doc_start;               // --doc-start REGEX: lines that match start documents
    regex_t doc_start_re;                // compiled when doc_start is set
    double val_frac;
    int shard_tokens;
    const char** files;
    int num_files;
    size_t total_bytes;
} Options;

static const char* SYNOPSIS =
    "./prepare -o DIR [--bytes | --vocab N | --tokenizer FILE | --gpt2 DIR] [--val-frac F]\n"
    "                 [--shard-tokens N] [--eot-text] [--doc-start REGEX] FILE...\n"
    "Each FILE is one document (or more, with --eot-text or --doc-start); documents are separated by\n"
    "the end-of-text token (EOT).\n"
    "Without FILEs only DIR/tokenizer.bin is written (not with --vocab).";

#define A(f) offsetof(Options, f)
static const ArgSpec FLAGS[] = {
    {"-o", ARG_TEXT, A(out_dir), 0, 0, "DIR: output folder: DIR/tokenizer.bin, DIR/val_*.bin, DIR/train_*.bin"},
    {"--bytes", ARG_SWITCH, A(bytes), 0, 0, "byte tokenizer: 256 bytes + EOT = 257 tokens"},
    {"--vocab", ARG_INT, A(vocab_size), 257, MAX_VOCAB, "N: train a byte-level BPE of N tokens on the input "
                                                        "files (257 = 256 bytes + EOT, to 65536: shards store ids "
                                                        "as uint16)"},
    {"--tokenizer", ARG_TEXT, A(tok_file), 0, 0, "FILE: use a tokenizer file (ours or llm.c's)"},
    {"--gpt2", ARG_TEXT, A(gpt2_dir), 0, 0, "DIR: import GPT-2's DIR/encoder.json and DIR/vocab.bpe"},
    {"--val-frac", ARG_DOUBLE, A(val_frac), 0, 1, "F: fraction of the input (from its start) for validation, "
                                                  "0 <= F < 1"},
    {"--shard-tokens", ARG_INT, A(shard_tokens), MIN_SHARD_TOKENS, INT32_MAX,
     "N: tokens per shard file, at least 1025 (one sequence of T=1024 and its target: the least batch)"},
    {"--eot-text", ARG_SWITCH, A(eot_text), 0, 0, "the text <|endoftext|> in a file separates documents "
                                                 "(it becomes EOT)"},
    {"--doc-start", ARG_TEXT, A(doc_start), 0, 0, "REGEX: every line that matches REGEX (POSIX extended, without "
                                                  "its newline) starts a document: EOT goes before it; e.g. "
                                                  "'^ +[0-9]+ ' for the verses of bible-kjv"},
};
#undef A
#define NUM_FLAGS (int)(sizeof(FLAGS) / sizeof(FLAGS[0]))

static void compile_doc_start(Options* o) {
    int rc = regcomp(&o->doc_start_re, o->doc_start, REG_EXTENDED | REG_NOSUB);
    if (rc == 0) return;
    char why[256];
    regerror(rc, &o->doc_start_re, why, sizeof(why));
    fail("--doc-start %s: not a POSIX extended regular expression: %s", o->doc_start, why);
}

// The tokenizer: exactly one of --bytes, --vocab, --tokenizer, --gpt2 (the flags given are named).
static void pick_tokenizer(Options* o) {
    static const char* const flag[] = {[TOK_BYTES] = "--bytes", [TOK_TRAIN] = "--vocab",
                                       [TOK_FILE] = "--tokenizer", [TOK_GPT2] = "--gpt2"};
    const int given[] = {[TOK_BYTES] = o->bytes, [TOK_TRAIN] = o->vocab_size >= 0,
                         [TOK_FILE] = o->tok_file != NULL, [TOK_GPT2] = o->gpt2_dir != NULL};
    char named[64] = "";
    int count = 0;
    for (int m = TOK_BYTES; m <= TOK_GPT2; m++) {
        if (!given[m]) continue;
        size_t used = strlen(named);
        snprintf(named + used, sizeof(named) - used, "%s%s", count++ ? " and " : "", flag[m]);
        o->tok_mode = m;
    }
    if (count > 1) fail("%s: choose one of --bytes, --vocab, --tokenizer, --gpt2", named);
    o->tok_path = o->tok_mode == TOK_GPT2 ? o->gpt2_dir : o->tok_file;
}

static Options parse_args(int argc, char** argv) {
    Options o = {.vocab_size = -1, .val_frac = 0.1, .shard_tokens = DEFAULT_SHARD_TOKENS};
    o.files = malloc_check(sizeof(char*) * argc);
    o.num_files = args_parse(&o, FLAGS, NUM_FLAGS, argc, argv, SYNOPSIS, o.files);
    // the table's range is inclusive: F = 1 would leave nothing to train on
    if (o.val_frac >= 1) fail("--val-frac %g: expected a number F with 0 <= F < 1", o.val_frac);
    pick_tokenizer(&o);
    if (!o.out_dir) fail("-o DIR: missing; say where to write the tokenizer and shards (see ./prepare -h)");
    if (o.tok_mode == TOK_NONE) fail("%s: choose a tokenizer: --bytes, --vocab N, --tokenizer FILE or --gpt2 DIR", o.out_dir);
    if (o.tok_mode == TOK_TRAIN && o.num_files == 0) fail("--vocab %d: no input files to train on", o.vocab_size);
    return o;
}

// Checks that every input is a readable regular file and sums their sizes. stat first: opening a
// FIFO would block.
static void check_inputs(Options* o) {
    for (int i = 0; i < o->num_files; i++) {
        struct stat st;
        if (stat(o->files[i], &st) != 0) fail("%s: cannot read: %s", o->files[i], strerror(errno));
        if (!S_ISREG(st.st_mode)) fail("%s: not a regular file", o->files[i]);
        FILE* f = fopen(o->files[i], "rb");
        if (!f) fail("%s: cannot read: %s", o->files[i], strerror(errno));
        fclose(f);
        o->total_bytes += (size_t)st.st_size;
    }
    if (o->num_files && o->total_bytes == 0)
        fail("%s: empty corpus: the input file%s hold%s no text", o->files[0], o->num_files > 1 ? "s" : "",
             o->num_files > 1 ? "" : "s");
}

static void make_dir(const char* dir) {
    char path[4096];
    if (snprintf(path, sizeof(path), "%s", dir) >= (int)sizeof(path)) fail("%s: path too long", dir);
    for (char* p = path + 1;; p++) {
        if (*p != '/' && *p) continue;
        char c = *p;
        *p = 0;
        if (mkdir(path, 0755) != 0 && errno != EEXIST) fail("%s: cannot create directory: %s", path, strerror(errno));
        *p = c;
        if (!c) break;
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) fail("%s: not a directory", dir);
}

// A file read in blocks that each end at a safe cut (data/pretokenize.h), so blocks encode alone.
// With whole_lines, a block also ends before the buffer's last line end, so that every line that
// starts in the block lies whole in the buffer (--doc-start matches whole lines); a line longer
// than the buffer is matched against the part of it that the buffer holds.
typedef struct {
    FILE* f;
    const char* path;
    unsigned char* buf;          // cap + 1 bytes, a NUL after the data: regexec is given line ends
                                 // (REG_STARTEND), but sanitizers' regexec measures the string with strlen
    size_t len, cap;
    int eof, whole_lines;
} Reader;

static void reader_open(Reader* r, const char* path, int whole_lines) {
    r->f = fopen_check(path, "rb");
    r->path = path;
    r->whole_lines = whole_lines;
    r->cap = BLOCK_BYTES;
    r->buf = malloc_check(r->cap + 1);
    r->len = 0;
    r->buf[0] = 0;
    r->eof = 0;
}

static void reader_fill(Reader* r) {
    if (r->eof || r->len == r->cap) return;
    r->len += fread(r->buf + r->len, 1, r->cap - r->len, r->f);
    r->buf[r->len] = 0;   // see Reader
    if (ferror(r->f)) fail("%s: read failed: %s", r->path, strerror(errno));
    if (feof(r->f)) r->eof = 1;
}

// Bytes of the buffer a block may end in: all, or with whole_lines (before the end of the file)
// those up to and including the last line end.
static size_t reader_usable(const Reader* r) {
    if (!r->whole_lines || r->eof) return r->len;
    const unsigned char* nl = memrchr(r->buf, '\n', r->len);
    return nl ? (size_t)(nl - r->buf) + 1 : 0;
}

// A safe cut in text[0, n) near pos: the largest <= pos, else the smallest after it; 0 if none.
// The quick ASCII test first (it finds one within a few bytes in most text), then the scan of
// the pieces, which finds the cuts in any bytes.
static size_t find_cut(const unsigned char* text, size_t n, size_t pos, int complete) {
    size_t p = pretok_cut_before(text, n, pos);
    if (p == 0) p = pretok_cut_after(text, n, pos);
    if (p > 0 && p < n) return p;
    return pretok_cut_scan(text, n, pos, complete);
}

// A full buffer without a safe cut holds one piece (or whitespace only) longer than it: cut it
// anyway, at `want` or near the buffer's end, so that memory stays bounded. The piece's parts
// encode separately, as the encoder would merge them in parts anyway (TOKENIZER_MAX_PIECE_BYTES).
// The cut lands on a character start, and not right after a newline (so that the next block does
// not start a line that --doc-start would not test).
static size_t forced_cut(const Reader* r, size_t want) {
    size_t p = want < r->len - 1 ? want : r->len - 1;
    for (int k = 0; k < 3 && p > 1 && (r->buf[p] & 0xC0) == 0x80; k++) p--;   // UTF-8 continuation bytes
    if (p > 1 && r->buf[p - 1] == '\n') p--;
    return p;
}

// Length of the next block: at most `want` bytes when a cut allows (else the nearest cut after),
// else as much as the buffer holds; 0 at the end of the file. The block starts at r->buf.
static size_t reader_next(Reader* r, size_t want) {
    reader_fill(r);
    if (r->len == 0) return 0;
    size_t usable = reader_usable(r);
    if (want < usable) {
        size_t p = find_cut(r->buf, usable, want, r->eof);
        if (p) return p;
        // the rest is one piece that the encoder cuts into parts anyway: one more cut, at want
        if (r->eof && r->len > TOKENIZER_MAX_PIECE_BYTES) return forced_cut(r, want);
    }
    if (r->eof) return r->len;
    size_t p = find_cut(r->buf, usable, usable, 0);                           // the buffer is full here
    if (p == 0 && usable < r->len) p = find_cut(r->buf, r->len, r->len, 0);   // a line longer than the buffer
    return p ? p : forced_cut(r, want);
}

static void reader_consume(Reader* r, size_t n) {
    memmove(r->buf, r->buf + n, r->len - n);
    r->len -= n;
    r->buf[r->len] = 0;   // see Reader
}

static void reader_close(Reader* r) {
    fclose(r->f);
    free(r->buf);
}

typedef struct {
    double start, last_print;
    size_t done, total;
    const char* what;
} Progress;

static void progress_update(Progress* p, size_t bytes) {
    p->done += bytes;
    double now = now_seconds();
    if (now - p->last_print < 2.0) return;
    p->last_print = now;
    printf("%s: %.1f / %.1f MB (%.0f%%), %.1f MB/s\n", p->what, p->done / 1e6, p->total / 1e6,
           100.0 * p->done / (p->total ? p->total : 1), p->done / 1e6 / (now - p->start));
    fflush(stdout);
}

typedef void (*PartFn)(void* ctx, const unsigned char* s, size_t n);
typedef void (*EotFn)(void* ctx);

// Whether the line at `line` (up to its newline, which the reader keeps before `end`) matches --doc-start.
static int starts_document(const regex_t* re, const unsigned char* line, const unsigned char* end) {
    const unsigned char* nl = memchr(line, '\n', end - line);
    regmatch_t range = {.rm_so = 0, .rm_eo = (nl ? nl : end) - line};
    return regexec(re, (const char*)line, 1, &range, REG_STARTEND) == 0;
}

// Calls fn on each stretch of text[0, n) between lines that match --doc-start (on all of it
// without the flag) and on_eot before each such line. A line starting in the stretch may run on
// past it, up to text_end. text[0] is never checked: a file's start or a marker's end starts a
// document already, and a block never starts right after a newline (no safe cut is there).
static void split_at_doc_starts(const Options* o, const unsigned char* text, size_t n,
                                const unsigned char* text_end, void* ctx, PartFn fn, EotFn on_eot) {
    const unsigned char *p = text, *end = text + n, *line = text;
    while (o->doc_start && (line = memchr(line, '\n', end - line)) != NULL) {
        if (++line < end && starts_document(&o->doc_start_re, line, text_end)) {
            fn(ctx, p, line - p);
            on_eot(ctx);
            p = line;
        }
    }
    fn(ctx, p, end - p);
}

// Calls fn on each stretch of the block text[0, n) between documents, and on_eot between them:
// after each "<|endoftext|>" marker (--eot-text) and before each line matching --doc-start. The
// reader's buffer holds `avail` >= n bytes from text, so that lines starting in the block are whole.
static void for_each_document_part(const Options* o, const unsigned char* text, size_t n, size_t avail,
                                   void* ctx, PartFn fn, EotFn on_eot) {
    size_t m = strlen(TOKENIZER_EOT_TEXT);
    const unsigned char *p = text, *end = text + n, *q;
    while (o->eot_text && (q = memmem(p, end - p, TOKENIZER_EOT_TEXT, m)) != NULL) {
        split_at_doc_starts(o, p, q - p, text + avail, ctx, fn, on_eot);
        on_eot(ctx);
        p = q + m;
    }
    split_at_doc_starts(o, p, end - p, text + avail, ctx, fn, on_eot);
}

static void count_part(void* counts, const unsigned char* s, size_t n) { bpe_counts_add(counts, s, n); }
static void skip_eot(void* counts) { (void)counts; }

static void train_tokenizer(Tokenizer* t, const Options* o) {
    Progress pr = {now_seconds(), now_seconds(), 0, o->total_bytes, "train: counting words"};
    BpeCounts* counts = bpe_counts_new();
    for (int i = 0; i < o->num_files; i++) {
        Reader r;
        reader_open(&r, o->files[i], o->doc_start != NULL);
        for (size_t n; (n = reader_next(&r, SIZE_MAX)) > 0; reader_consume(&r, n)) {
            for_each_document_part(o, r.buf, n, r.len, counts, count_part, skip_eot);
            progress_update(&pr, n);
        }
        reader_close(&r);
    }
    double counted = now_seconds();
    printf("train: %zu distinct words in %.1f MB (%.2f s)\n", bpe_counts_num_words(counts), o->total_bytes / 1e6,
           counted - pr.start);
    tokenizer_train(t, counts, o->vocab_size);
    bpe_counts_free(counts);
    printf("train: %d merges in %.2f s\n", t->num_merges, now_seconds() - counted);
    if (t->vocab_size < o->vocab_size)
        printf("note: the corpus has pairs for only %d merges, so the vocabulary has %d tokens, not %d\n",
               t->num_merges, t->vocab_size, o->vocab_size);
}

static void build_tokenizer(Tokenizer* t, const Options* o) {
    char enc[4096], bpe[4096];
    switch (o->tok_mode) {
        case TOK_BYTES: tokenizer_init_bytes(t); break;
        case TOK_TRAIN: train_tokenizer(t, o); break;
        case TOK_FILE: tokenizer_load(t, o->tok_path); break;
        case TOK_GPT2:
            snprintf(enc, sizeof(enc), "%s/encoder.json", o->tok_path);
            snprintf(bpe, sizeof(bpe), "%s/vocab.bpe", o->tok_path);
            tokenizer_import_gpt2(t, enc, bpe);
            break;
    }
    if (t->vocab_size > MAX_VOCAB)
        fail("%s: vocabulary of %d tokens does not fit uint16 shards (at most %d tokens)",
             o->tok_mode == TOK_GPT2 ? enc : o->tok_path, t->vocab_size, MAX_VOCAB);
}

// Tokens of one split, written as shards of at most shard_tokens tokens.
typedef struct {
    const char* dir;
    const char* split;
    uint16_t* buf;
    size_t len, cap, shard_tokens, total;   // buf grows up to shard_tokens
    int shards;
} ShardSink;

// Shard i of a split: DIR/<split>_NNNNNN.bin, plus suffix (".new" while it is staged).
static void shard_path(char* path, const char* dir, const char* split, int i, const char* suffix) {
    if (snprintf(path, PATH_BYTES, "%s/%s_%06d.bin%s", dir, split, i, suffix) >= PATH_BYTES)
        fail("%s: path too long", dir);
}

// The shards DIR/<split>_NNNNNN.bin<suffix> there are (globfree the result).
static glob_t find_shards(const char* dir, const char* split, const char* suffix) {
    char pattern[PATH_BYTES];
    snprintf(pattern, sizeof(pattern), "%s/%s_[0-9][0-9][0-9][0-9][0-9][0-9].bin%s", dir, split, suffix);
    glob_t g = {0};
    glob(pattern, 0, NULL, &g);
    return g;
}

// The staged shards' folder, for remove_staged at exit.
static const char* staging_dir;

// At exit, after a failure (fail() exits) or an interrupted earlier run: the staged shards go, so
// the folder holds the previous set as it was. Errors are ignored: this runs inside exit().
static void remove_staged(void) {
    const char* splits[] = {"val", "train"};
    for (int s = 0; s < 2; s++) {
        glob_t g = find_shards(staging_dir, splits[s], ".new");
        for (size_t i = 0; i < g.gl_pathc; i++) remove(g.gl_pathv[i]);
        globfree(&g);
    }
}

// After the new set is in place: removes the shards of an earlier run past it (NNNNNN >= keep), so
// a glob never mixes two runs.
static void remove_old_shards(const char* dir, const char* split, int keep) {
    glob_t g = find_shards(dir, split, "");
    size_t removed = 0;
    for (size_t i = 0; i < g.gl_pathc; i++) {
        const char* path = g.gl_pathv[i];
        if (atoi(path + strlen(path) - strlen("NNNNNN.bin")) < keep) continue;
        if (remove(path) != 0) fail("%s: cannot remove an old shard: %s", path, strerror(errno));
        removed++;
    }
    if (removed) printf("removed %zu old %s shard%s from %s\n", removed, split, removed == 1 ? "" : "s", dir);
    globfree(&g);
}

// Renames a split's staged shards over the old ones, then removes the old ones past the new set.
static void commit_split(const ShardSink* s) {
    char staged[PATH_BYTES], path[PATH_BYTES];
    for (int i = 0; i < s->shards; i++) {
        shard_path(staged, s->dir, s->split, i, ".new");
        shard_path(path, s->dir, s->split, i, "");
        rename_durable(staged, path);
    }
    remove_old_shards(s->dir, s->split, s->shards);
}

static void sink_flush(ShardSink* s) {
    if (s->len == 0) return;
    if (s->shards == MAX_SHARDS)
        fail("%s: more than %d %s shards of %zu tokens; give a larger --shard-tokens", s->dir, MAX_SHARDS, s->split,
             s->shard_tokens);
    char path[PATH_BYTES];
    shard_path(path, s->dir, s->split, s->shards++, ".new");
    shard_write(path, s->buf, s->len);
    s->len = 0;
}

static void sink_push(ShardSink* s, const int* ids, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (s->len == s->shard_tokens) sink_flush(s);
        if (s->len == s->cap) {
            s->cap = s->cap * 2 < s->shard_tokens ? s->cap * 2 : s->shard_tokens;
            s->buf = realloc(s->buf, sizeof(uint16_t) * s->cap);
            if (!s->buf) fail("%s: out of memory buffering a %zu-token shard", s->dir, s->cap);
        }
        s->buf[s->len++] = (uint16_t)ids[i];
    }
    s->total += n;
}

typedef struct {
    const Tokenizer* tok;
    ShardSink val, train;
    ShardSink* cur;
    size_t val_target, consumed;
    int* ids;
    size_t ids_cap;
} Encoder;

static void encode_part(void* ctx, const unsigned char* text, size_t n) {
    Encoder* e = ctx;
    if (n > e->ids_cap) {
        free(e->ids);
        e->ids_cap = n;
        e->ids = malloc_check(sizeof(int) * n);
    }
    size_t k = tokenizer_encode(e->tok, text, n, e->ids, e->ids_cap);
    sink_push(e->cur, e->ids, k);
}

static void push_eot(void* ctx) {
    Encoder* e = ctx;
    sink_push(e->cur, &e->tok->eot_token, 1);
}

static void encode_file(Encoder* e, const Options* o, const char* path, Progress* pr) {
    Reader r;
    reader_open(&r, path, o->doc_start != NULL);
    if (e->cur == &e->val && e->consumed >= e->val_target) e->cur = &e->train;
    push_eot(e);
    for (;;) {
        if (e->cur == &e->val && e->consumed >= e->val_target) e->cur = &e->train;
        size_t want = e->cur == &e->val ? e->val_target - e->consumed : SIZE_MAX;
        size_t n = reader_next(&r, want);
        if (n == 0) break;
        for_each_document_part(o, r.buf, n, r.len, e, encode_part, push_eot);
        e->consumed += n;
        reader_consume(&r, n);
        progress_update(pr, n);
    }
    reader_close(&r);
}

static void sink_init(ShardSink* s, const char* dir, const char* split, long shard_tokens) {
    *s = (ShardSink){.dir = dir, .split = split, .shard_tokens = (size_t)shard_tokens};
    s->cap = s->shard_tokens < (1u << 20) ? s->shard_tokens : (1u << 20);
    s->buf = malloc_check(sizeof(uint16_t) * s->cap);
}

static void write_tokenizer(const Tokenizer* t, const Options* o) {
    char path[PATH_BYTES];
    if (snprintf(path, sizeof(path), "%s/tokenizer.bin", o->out_dir) >= PATH_BYTES) fail("%s: path too long", o->out_dir);
    tokenizer_write(t, path);
    printf("wrote %s: %d tokens (%d merges), EOT id %d\n", path, t->vocab_size, t->num_merges, t->eot_token);
}

// Encodes the inputs into staged shards; once all are written, the tokenizer and the shards
// replace the old ones.
static void write_shards(const Tokenizer* t, const Options* o) {
    staging_dir = o->out_dir;
    remove_staged();               // left by an interrupted run
    atexit(remove_staged);
    Encoder e = {.tok = t};
    sink_init(&e.val, o->out_dir, "val", o->shard_tokens);
    sink_init(&e.train, o->out_dir, "train", o->shard_tokens);
    e.val_target = (size_t)(o->val_frac * (double)o->total_bytes);
    e.cur = o->val_frac > 0 ? &e.val : &e.train;
    Progress pr = {now_seconds(), now_seconds(), 0, o->total_bytes, "encode"};
    for (int i = 0; i < o->num_files; i++) encode_file(&e, o, o->files[i], &pr);
    if (e.train.total == 0)
        fail("%s: the train split is empty; use a smaller --val-frac (now %g) or more text", o->files[0], o->val_frac);
    sink_flush(&e.val);
    sink_flush(&e.train);
    double secs = now_seconds() - pr.start;
    size_t tokens = e.val.total + e.train.total;
    printf("encode: %.2f MB in %.3f s = %.1f MB/s, %zu tokens (%.2f bytes/token)\n", o->total_bytes / 1e6, secs,
           o->total_bytes / 1e6 / secs, tokens, (double)o->total_bytes / tokens);
    write_tokenizer(t, o);
    commit_split(&e.val);
    commit_split(&e.train);
    printf("wrote %s/val_*.bin: %zu tokens in %d shard%s; %s/train_*.bin: %zu tokens in %d shard%s\n", o->out_dir,
           e.val.total, e.val.shards, e.val.shards == 1 ? "" : "s", o->out_dir, e.train.total, e.train.shards,
           e.train.shards == 1 ? "" : "s");
    free(e.val.buf);
    free(e.train.buf);
    free(e.ids);
}

int main(int argc, char** argv) {
    Options o = parse_args(argc, argv);
    if (o.doc_start) compile_doc_start(&o);
    check_inputs(&o);
    make_dir(o.out_dir);
    lock_dir(o.out_dir, "prepare.lock", "-o");   // two prepares into one folder would mix their shards
    Tokenizer t;
    build_tokenizer(&t, &o);
    if (o.num_files) write_shards(&t, &o);
    else write_tokenizer(&t, &o);
    tokenizer_free(&t);
    if (o.doc_start) regfree(&o.doc_start_re);
    free(o.files);
    return 0;
}
