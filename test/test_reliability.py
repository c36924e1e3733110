"""Input checks and file safety (docs/RELIABILITY.md): a data loader given B = 0 or a saved position
the shards do not have fails with one line; a token id outside the vocabulary anywhere in a shard,
and a tokenizer file damaged anywhere (bytes after its end, a cleared merge count or marker, a set
slot) are refused by every program before any work; values the data makes pointless (a step bigger
than an epoch, a warmup longer than the run, shards shorter than a sequence) are refused; prepare
splits and streams any bytes (non-Latin text, NUL bytes, a single 24 MB token); a FIFO given as
any input is refused at once instead of blocking; a write that fails names the temporary being
written and leaves the old files as they were; prepare replaces the old shards only once the new
ones are complete; every rename of a finished file is followed by an fsync of its directory."""
import ctypes  # noqa: F401 (used in the child processes' code)
import os
import resource
import signal
import subprocess
import sys

import numpy as np
import pytest

from files import STATE_CHECKSUM_SLOT, byte_corpus, edit_header, write_shard
from test_train_infer import INFER, TINY, TRAIN, data, one_line_error, run, train_args  # noqa: F401 (data: fixture)
from timeouts import HANG_TIMEOUT

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "data"))
from tokhelp import (EOT_TEXT, LIB_PATH, PREPARE, decode, load, read_shard, reference_encode,  # noqa: E402
                     tiktoken_for)


def run_limited(*args, max_file_bytes=None, env=None):
    """Runs a program; with max_file_bytes, writes past that size fail (EFBIG, as a full disk fails
    them with ENOSPC) instead of raising SIGXFSZ, which is ignored."""
    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_file_bytes, max_file_bytes))
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=HANG_TIMEOUT,
                          preexec_fn=limit if max_file_bytes else None, env=env)


def run_python(code):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=HANG_TIMEOUT)


def split_tokens(out_dir, split):
    shards = sorted(out_dir.glob(f"{split}_*.bin"))
    return [tok for s in shards for tok in read_shard(s)]


# ----------------------------------------------------------------------------
# the data loader's arguments and saved positions


def test_loader_with_batch_size_0_fails_with_one_line(data):
    # the library called directly, as infer -eval did with -b 0 before its flag table: a division by zero
    for B, T, layout in (0, 32, 0), (0, 32, 1), (0, 32, 2), (4, 0, 0):
        p = run_python(f"""
import ctypes
lib = ctypes.CDLL({LIB_PATH!r})
dl = ctypes.create_string_buffer(1 << 16)
lib.dataloader_init(dl, b"{data}/*val*.bin", {B}, {T}, 0, 1, 0, ctypes.c_uint64(1), 257, {layout}, 256)
""")
        one_line_error(p, f"B={B}", f"T={T}", "at least 1")
    one_line_error(run(INFER, "-e", "d2", "-eval", data / "*val*.bin", "-b", 0, ok=False), "-b", "0")


@pytest.mark.parametrize("slot, value", [(4, 7), (5, 100000)])
def test_a_loader_position_the_shards_do_not_have_is_refused(data, tmp_path, slot, value):
    # state header slots 4, 5: shard, batch (docs/FORMATS.md), with the file's checksum computed again,
    # so that the edited file is otherwise valid (negative ones: test_resume.py)
    out = tmp_path / "run"
    run(*train_args(data, out, 2, "-n", 2))
    edit_header(out / "state_00000002.bin", {slot: value}, checksum_slot=STATE_CHECKSUM_SLOT)
    p = run(*train_args(data, out, 4, "-n", 2, "-y", 1), ok=False)
    one_line_error(p, "*train*.bin", "loader position", "does not exist")


@pytest.mark.parametrize("bos", ["0", "1", "window"])
def test_a_token_outside_the_vocabulary_is_refused_before_training(data, tmp_path, bos):
    """An id equal to V near the end of the shard, in a batch the two steps never read: refused at
    start, by the trainer and by -eval alike, whatever the layout."""
    shard = tmp_path / "bad_train_000.bin"
    tokens = byte_corpus(40000, seed=1)
    tokens[-3] = 257
    write_shard(shard, tokens)
    args = [TRAIN, "-e", f"{TINY},bos={bos}", "-i", shard, "-j", data / "*val*.bin", "-o", tmp_path / "run", "-b", 4,
            "-t", 32, "-x", 2, "-sh", 0, "-v", 0, "-s", 0]
    one_line_error(run(*args, ok=False), shard, "token id 257 at token 39997", "vocabulary (V=257)")
    run(*train_args(data, tmp_path / "good", 2, "-e", f"{TINY},bos={bos}"))
    one_line_error(run(INFER, "-e", tmp_path / "good" / "model_00000002.bin", "-eval", shard, "-b", 1, "-m", 1,
                       ok=False), shard, "token id 257")


@pytest.fixture(scope="module")
def bpe(data, tmp_path_factory):
    """A 300-token BPE tokenizer with merges, and a model with its vocabulary."""
    d = tmp_path_factory.mktemp("bpe")
    words = [b"the", b"lord", b"said", b"unto", b"moses", b"and", b"it", b"was", b"good", b"children", b"israel",
             b"heaven", b"earth", b"beginning", b"created", b"darkness", b"waters", b"firmament"]
    rng = np.random.default_rng(5)
    (d / "in.txt").write_bytes(b" ".join(words[i] for i in rng.integers(0, len(words), 3000)))
    run(PREPARE, "-o", d / "tok", "--vocab", 300, d / "in.txt")
    run(*train_args(data, d / "run", 1, "-e", "L=1,C=32,H=2,T=32,V=300"))
    return d / "tok" / "tokenizer.bin", d / "run" / "model_00000001.bin"


@pytest.mark.parametrize("damage,message", [
    ("trailing", "5 bytes after the token table and merges"),
    ("merge count 0", "bytes after the token table and merges"),
    ("marker and count cleared", "bytes after the token table,"),
    ("marker cleared", "slot 5 holds 43"),
    ("slot 9", "slot 9 holds 1"),
])
def test_a_damaged_tokenizer_file_is_refused_by_every_program(bpe, data, tmp_path, damage, message):
    """A tokenizer file is checked to its last byte: bytes after its structure (a cleared merge count
    or marker leaves the merges unread), or a set slot the format leaves zero."""
    good, model = bpe
    raw = bytearray(good.read_bytes())
    header = np.frombuffer(bytes(raw[:1024]), dtype="<i4").copy()
    assert header[2] == 300 and header[5] == 43, header[:6]
    edits = {"merge count 0": {5: 0}, "marker and count cleared": {4: 0, 5: 0}, "marker cleared": {4: 0},
             "slot 9": {9: 1}}.get(damage, {})
    for slot, value in edits.items():
        header[slot] = value
    bad = tmp_path / "tokenizer.bin"
    bad.write_bytes(header.tobytes() + bytes(raw[1024:]) + (b"\0" * 5 if damage == "trailing" else b""))
    (tmp_path / "in.txt").write_text("the lord\n" * 50)

    def programs(tokenizer):
        return ([PREPARE, "-o", tmp_path / "out", "--tokenizer", tokenizer, tmp_path / "in.txt"],
                [INFER, "-e", model, "-tk", tokenizer, "-n", 4],
                [TRAIN, "-e", "L=1,C=32,H=2,T=32,V=300", "-i", data / "*train*.bin", "-j", data / "*val*.bin",
                 "-tk", tokenizer, "-b", 4, "-t", 32, "-x", 1, "-s", 1, "-g", 4, "-v", 0])
    for args in programs(good):
        run(*args)
    for args in programs(bad):
        one_line_error(run(*args, ok=False), bad, message)


def test_values_the_data_makes_pointless_are_refused(data, tmp_path):
    short = tmp_path / "short_train_000.bin"
    write_shard(short, byte_corpus(3816, seed=4))   # 119 sequences of T=32
    one_line_error(run(TRAIN, "-e", TINY, "-i", short, "-j", data / "*val*.bin", "-b", 1, "-t", 32, "-d", 8192, "-x", 2,
                       "-v", 0, ok=False), "-d 8192", "more than an epoch", "3808 tokens")
    one_line_error(run(*train_args(data, tmp_path / "u", 5, "-u", 6), ok=False), "-u 6",
                   "longer than the run's 5 steps")
    run(*train_args(data, tmp_path / "u5", 5, "-u", 5))   # a warmup as long as the run is a choice
    one_line_error(run(INFER, ok=False), "no checkpoint", "-e")
    (tmp_path / "in.txt").write_bytes(b"the lord said unto moses\n" * 800)
    for flags, message in [(("--shard-tokens", 1), "--shard-tokens 1: out of range [1025, 2147483647]"),
                           (("--shard-tokens", 1024), "--shard-tokens 1024"), (("--val-frac", ""), "--val-frac ''"),
                           (("--val-frac", " 0.1"), "--val-frac ' 0.1'"), (("--val-frac", "0.1x"), "not a finite number"),
                           (("--shard-tokens", " 5000"), "--shard-tokens ' 5000': not an integer")]:
        one_line_error(run(PREPARE, "-o", tmp_path / "p", "--bytes", *flags, tmp_path / "in.txt", ok=False), message)
    run(PREPARE, "-o", tmp_path / "p", "--bytes", "--shard-tokens", 1025, tmp_path / "in.txt")


# ----------------------------------------------------------------------------
# prepare on text the quick cut test finds no cut in


def check_split(out, text, val_frac, vocab_checked=True):
    """val about val_frac of the bytes, train the rest, together the text (and tiktoken's tokens)."""
    t = load(out / "tokenizer.bin")
    val, train = split_tokens(out, "val"), split_tokens(out, "train")
    assert val and train, f"{len(val)} val and {len(train)} train tokens"
    assert decode(t, val + train) == EOT_TEXT + text, "text -> shards -> decode is not the text"
    assert 0.5 * val_frac < len(decode(t, val)) / len(text) < 2 * val_frac, "val is not about val_frac of the bytes"
    if vocab_checked:
        assert val + train == [t.eot_token] + reference_encode(tiktoken_for(t.tokens(), t.eot_token), text), "tokens differ from tiktoken's"


@pytest.mark.parametrize("kind", ["japanese", "nul", "cyrillic_no_newlines"])
def test_prepare_splits_text_without_ascii_cuts(tmp_path, kind):
    rng = np.random.default_rng(0)
    if kind == "japanese":   # no spaces, lines of kana and kanji ending in "。\n"
        chars = list("日本語のテキストですかなカタ漢字とひらがな")
        text = "".join("".join(rng.choice(chars, 40)) + "。\n" for _ in range(4000)).encode()
    elif kind == "nul":      # words separated by NUL bytes, no space or newline
        words = [b"alpha", b"beta", b"42", b"x!"]
        text = b"\x00".join(words[i] for i in rng.integers(0, 4, 40000))
    else:                    # one line, words separated by spaces after non-ASCII letters
        words = ["слово", "и", "бог", "земля"]
        text = " ".join(words[i] for i in rng.integers(0, 4, 30000)).encode()
    (tmp_path / "in.txt").write_bytes(text)
    p = run_limited(PREPARE, "-o", tmp_path / "out", "--vocab", 300, "--val-frac", 0.1, tmp_path / "in.txt")
    assert p.returncode == 0, p.stderr
    check_split(tmp_path / "out", text, 0.1)


def max_rss_mb(args):
    """Runs a program to the end; its peak resident memory in MB. Through a small Python process: a
    child forked from this one would count this one's memory (pytest's, torch's) as its own."""
    code = ("import resource, subprocess, sys; p = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL); "
            "print(p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    p = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                       timeout=HANG_TIMEOUT)
    status, kb = map(int, p.stdout.split())
    assert status == 0, p.stderr
    return kb / 1024


def test_prepare_streams_a_huge_single_token(tmp_path):
    # 24 MB without a space or a change of character class: one pre-token
    text = b"ab" * (12 << 20)
    (tmp_path / "small.txt").write_bytes(b"a b ab aab abab bb ba" * 100)
    run_limited(PREPARE, "-o", tmp_path / "tok", "--vocab", 300, tmp_path / "small.txt")
    (tmp_path / "huge.txt").write_bytes(text)
    tokenizer = tmp_path / "tok" / "tokenizer.bin"
    for name, how in ("bytes", ["--bytes"]), ("merges", ["--tokenizer", tokenizer]), ("trained", ["--vocab", 280]):
        out = tmp_path / name
        mb = max_rss_mb([PREPARE, "-o", out, *how, "--val-frac", 0.1, tmp_path / "huge.txt"])
        assert mb < 300, f"prepare {how} held {mb:.0f} MB for a 24 MB input: it does not stream"
        check_split(out, text, 0.1, vocab_checked=False)


# ----------------------------------------------------------------------------
# FIFOs


def test_a_fifo_as_any_input_is_refused_at_once(data, tmp_path):
    fifo = tmp_path / "fifo_train_000.bin"
    os.mkfifo(fifo)
    out = tmp_path / "run"
    run(*train_args(data, out, 2, "-n", 2))
    ckpt = out / "model_00000002.bin"
    checks = [
        [TRAIN, "-e", TINY, "-i", fifo, "-j", data / "*val*.bin", "-o", tmp_path / "a"],
        [TRAIN, "-e", TINY, "-i", data / "*train*.bin", "-j", fifo, "-o", tmp_path / "b"],
        [TRAIN, "-e", fifo, "-i", data / "*train*.bin", "-o", tmp_path / "c"],
        [TRAIN, "-e", TINY, "-i", data / "*train*.bin", "-tk", fifo, "-o", tmp_path / "d", "-m", 1, "-s", 1],
        [INFER, "-e", fifo],
        [INFER, "-e", ckpt, "-tk", fifo],
        [INFER, "-e", ckpt, "-eval", fifo, "-b", 1],
        [INFER, "-e", ckpt, "-sa", fifo, "-st", 16, "-sn", 2],
        [PREPARE, "-o", tmp_path / "p", "--bytes", fifo],
        [PREPARE, "-o", tmp_path / "q", "--tokenizer", fifo],
    ]
    for args in checks:
        one_line_error(run_limited(*args), fifo, "not a regular file")
    # a FIFO among a run's checkpoints is passed over on resume, like any incomplete checkpoint
    os.mkfifo(out / "model_00000009.bin")
    os.mkfifo(out / "state_00000009.bin")
    p = run_limited(*train_args(data, out, 4, "-n", 2, "-y", 1))
    assert p.returncode == 0 and "at step 2" in p.stdout, p.stderr
    assert "skipping the checkpoint of step 9" in p.stderr


# ----------------------------------------------------------------------------
# failed writes


def test_a_failed_write_names_the_temporary_and_leaves_no_file(data, tmp_path):
    out = tmp_path / "run"
    p = run_limited(*train_args(data, out, 2, "-n", 2), max_file_bytes=64 << 10)   # the model file is 140 KB
    one_line_error(p, out / "model_00000002.bin.tmp", "write failed")
    assert not list(out.glob("*.tmp")) and not list(out.glob("model_*.bin")), os.listdir(out)


def test_prepare_keeps_the_old_shards_until_the_new_ones_are_complete(tmp_path):
    rng = np.random.default_rng(0)
    words = [b"the ", b"lord ", b"said ", b"unto ", b"moses\n"]
    old_text = b"".join(words[i] for i in rng.integers(0, 5, 20000))
    new_text = b"".join(words[i] for i in rng.integers(0, 5, 60000))
    (tmp_path / "old.txt").write_bytes(old_text)
    (tmp_path / "new.txt").write_bytes(new_text)
    out = tmp_path / "out"
    run_limited(PREPARE, "-o", out, "--bytes", "--shard-tokens", 30000, tmp_path / "old.txt")
    before = {f.name: f.read_bytes() for f in out.iterdir()}
    assert len(before) > 3, sorted(before)   # tokenizer, val and several train shards
    # a new tokenizer and a small val shard, then the first train shard of 30000 tokens (61 KB) fails
    p = run_limited(PREPARE, "-o", out, "--vocab", 300, "--shard-tokens", 30000, tmp_path / "new.txt",
                    max_file_bytes=40 << 10)
    one_line_error(p, out / "train_000000.bin.new.tmp", "write failed")
    after = {f.name: f.read_bytes() for f in out.iterdir()}
    assert after == before, "a failed prepare changed the folder"
    # a complete run replaces the set, with fewer shards than before: the extra old shard goes
    run_limited(PREPARE, "-o", out, "--bytes", "--shard-tokens", 100000, tmp_path / "old.txt")
    assert sorted(f.name for f in out.iterdir()) == ["prepare.lock", "tokenizer.bin", "train_000000.bin",
                                                     "val_000000.bin"]
    t = load(out / "tokenizer.bin")
    assert decode(t, split_tokens(out, "val") + split_tokens(out, "train")) == EOT_TEXT + old_text


# ----------------------------------------------------------------------------
# durable renames

SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
// Logs "rename TO" and "dirsync" (an fsync of a directory) to $SYNC_LOG, in order.
static void log_line(const char* what, const char* arg) {
    char line[4200];
    int n = snprintf(line, sizeof(line), "%s %s\n", what, arg);
    int fd = open(getenv("SYNC_LOG"), O_WRONLY | O_APPEND | O_CREAT, 0644);
    if (fd >= 0) { if (write(fd, line, n) < 0) {} close(fd); }
}
int rename(const char* from, const char* to) {
    int (*real)(const char*, const char*) = (int (*)(const char*, const char*))dlsym(RTLD_NEXT, "rename");
    int r = real(from, to);
    if (r == 0) log_line("rename", to);
    return r;
}
int fsync(int fd) {
    int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) log_line("dirsync", "");
    return real(fd);
}
"""


def test_every_rename_is_followed_by_a_directory_fsync(data, tmp_path):
    (tmp_path / "shim.c").write_text(SHIM)
    shim = tmp_path / "shim.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-O1", tmp_path / "shim.c", "-o", shim, "-ldl"], check=True,
                   timeout=HANG_TIMEOUT)
    log = tmp_path / "sync.log"
    preload = " ".join(p for p in (os.environ.get("LD_PRELOAD"), str(shim)) if p)
    env = dict(os.environ, LD_PRELOAD=preload, SYNC_LOG=str(log))
    (tmp_path / "in.txt").write_bytes(b"the lord said unto moses\n" * 4000)
    for args in ([PREPARE, "-o", tmp_path / "data", "--vocab", 300, "--shard-tokens", 20000, tmp_path / "in.txt"],
                 train_args(data, tmp_path / "run", 2, "-n", 1)):
        log.unlink(missing_ok=True)
        p = run_limited(*args, env=env)
        assert p.returncode == 0, p.stderr
        lines = log.read_text().splitlines()
        renames = [i for i, l in enumerate(lines) if l.startswith("rename ")]
        assert len(renames) >= 3, lines
        for i in renames:
            assert i + 1 < len(lines) and lines[i + 1] == "dirsync ", f"no directory fsync after '{lines[i]}'"
