# ./prepare end to end: text files -> tokenizer.bin + shards, decoded back to the text, token for
# token what tiktoken makes of each document; and every kind of bad input gives one clear error.
import glob
import os
import random
import re
import subprocess
import sys

import pytest

from tokhelp import (EOT_TEXT, LIB_PATH, ROOT, decode, load, read_shard, read_tokenizer_file, reference_encode,
                     run_prepare, tiktoken_for, write_tokenizer_file)
from timeouts import HANG_TIMEOUT

DOCS = [
    "In the beginning God created the heaven and the earth.\n\nAnd the earth was without form, and void.\n".encode() * 40,
    "Café, naïve façade — 日本語のテキスト 👋🏽 they'll say 1234567 times.\n".encode() * 30,
    b"def main(argv):\n    return 0  # \xff invalid \xc3 bytes\n" * 25,
]


def write_docs(tmp_path, docs=DOCS):
    paths = []
    for i, d in enumerate(docs):
        p = tmp_path / f"doc{i}.txt"
        p.write_bytes(d)
        paths.append(p)
    return paths


def split_tokens(out_dir, split):
    shards = sorted(glob.glob(os.path.join(out_dir, f"{split}_*.bin")))
    return shards, [tok for s in shards for tok in read_shard(s)]


def expected_stream(t, docs):
    """EOT before every document, each document encoded as tiktoken would."""
    enc = tiktoken_for(t.tokens(), t.eot_token)
    ids = []
    for d in docs:
        ids += [t.eot_token] + reference_encode(enc, d)
    return ids


def check_output(out_dir, docs, val_expected=True):
    t = load(out_dir / "tokenizer.bin")
    val_shards, val = split_tokens(out_dir, "val")
    train_shards, train = split_tokens(out_dir, "train")
    assert bool(val_shards) == val_expected and train_shards
    assert all("val" in os.path.basename(s) for s in val_shards)
    assert all("train" in os.path.basename(s) for s in train_shards)
    stream = val + train
    assert decode(t, stream) == b"".join(EOT_TEXT + d for d in docs), "text -> shards -> decode is not the text"
    assert stream == expected_stream(t, docs), "tokens differ from tiktoken's"
    return t, val, train


def test_trained_vocab_round_trip(tmp_path):
    paths = write_docs(tmp_path)
    r = run_prepare("-o", tmp_path / "out", "--vocab", 400, "--val-frac", 0.3, *paths)
    assert "encode:" in r.stdout and "MB/s" in r.stdout
    t, val, train = check_output(tmp_path / "out", DOCS)
    assert t.vocab_size == 400 and t.eot_token == 399 and t.num_merges == 400 - 257
    total = sum(map(len, DOCS))
    assert 0.2 * total < len(decode(t, val)) < 0.4 * total, "val should hold about 30% of the bytes"
    # the same tokenizer file gives the same shards
    run_prepare("-o", tmp_path / "again", "--tokenizer", tmp_path / "out" / "tokenizer.bin", "--val-frac", 0.3, *paths)
    assert split_tokens(tmp_path / "again", "train")[1] == train
    assert split_tokens(tmp_path / "again", "val")[1] == val


def test_bytes_and_no_val(tmp_path):
    paths = write_docs(tmp_path)
    run_prepare("-o", tmp_path / "out", "--bytes", "--val-frac", 0, *paths)
    t, val, train = check_output(tmp_path / "out", DOCS, val_expected=False)
    assert t.vocab_size == 257 and t.eot_token == 256 and not val
    header, tokens, merges = read_tokenizer_file(tmp_path / "out" / "tokenizer.bin")
    assert tokens[:256] == [bytes([b]) for b in range(256)] and tokens[256] == EOT_TEXT and merges == []


def test_many_shards(tmp_path):
    paths = write_docs(tmp_path)
    run_prepare("-o", tmp_path / "out", "--bytes", "--shard-tokens", 1025, *paths)   # the least
    train_shards = split_tokens(tmp_path / "out", "train")[0]
    assert len(train_shards) > 3 and all(len(read_shard(s)) == 1025 for s in train_shards[:-1])
    check_output(tmp_path / "out", DOCS)
    # a second run into the same folder replaces the first run's shards, never mixes with them
    run_prepare("-o", tmp_path / "out", "--bytes", *paths)
    assert len(split_tokens(tmp_path / "out", "train")[0]) == 1
    check_output(tmp_path / "out", DOCS)


def test_large_input_streams(tmp_path):
    # bigger than one 8 MB block, and a 9 MB stretch with no safe cut (the reader must grow)
    rng = random.Random(0)
    words = "the of and to in a is that for it as was with be by on not he I this are or his from".split()
    english = " ".join(rng.choice(words) + ("\n" if rng.random() < 0.1 else "") for _ in range(2_600_000)).encode()
    no_cut = b"ab1" * 3_000_000
    docs = [english, no_cut, DOCS[1]]
    paths = write_docs(tmp_path, docs)
    r = run_prepare("-o", tmp_path / "out", "--vocab", 300, *paths)
    assert len(english) > 8 << 20 and len(no_cut) > 8 << 20, r.stdout
    check_output(tmp_path / "out", docs)


def test_shards_load_in_the_trainer(tmp_path):
    paths = write_docs(tmp_path)
    run_prepare("-o", tmp_path / "out", "--vocab", 300, *paths)
    # the trainer's loader, in a child process (its errors exit)
    code = f"""
import ctypes
lib = ctypes.CDLL({LIB_PATH!r})
lib.shard_check.restype = ctypes.c_size_t
n = lib.shard_check(b"{tmp_path}/out/train_000000.bin")
dl = ctypes.create_string_buffer(1 << 16)
lib.dataloader_init(dl, b"{tmp_path}/out/train_*.bin", 4, 32, 0, 1, 0, ctypes.c_uint64(1), 300, 0, -1)
for _ in range(3): lib.dataloader_next_batch(dl)
lib.dataloader_free(dl)
print(n)
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=HANG_TIMEOUT)
    assert r.returncode == 0, r.stderr
    assert int(r.stdout) == len(split_tokens(tmp_path / "out", "train")[1])


def test_eot_text_separates_documents(tmp_path):
    # TinyStories style: one file, documents joined by the text <|endoftext|>
    docs = [d[:300] for d in DOCS] * 50
    (tmp_path / "stories.txt").write_bytes(EOT_TEXT.join(docs))
    run_prepare("-o", tmp_path / "out", "--vocab", 300, "--eot-text", tmp_path / "stories.txt")
    t = load(tmp_path / "out" / "tokenizer.bin")
    stream = split_tokens(tmp_path / "out", "val")[1] + split_tokens(tmp_path / "out", "train")[1]
    assert stream == expected_stream(t, docs)
    assert stream.count(t.eot_token) == len(docs)
    assert not any(b"endoftext" in t.token(i) for i in range(t.vocab_size - 1)), "markers must not train"


def test_download_tinyshakespeare_script(tmp_path):
    # served from this machine (loopback), then an unreachable address for the offline error
    import functools
    import http.server
    import threading
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "input.txt").write_bytes(DOCS[0])
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "www"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    script = os.path.join(ROOT, "scripts", "download_tinyshakespeare.sh")
    env = dict(os.environ, TINYSHAKESPEARE_URL=f"http://127.0.0.1:{server.server_address[1]}/input.txt")
    r = subprocess.run([script, tmp_path / "ts", "--vocab", "300"], env=env, capture_output=True, text=True,
                       timeout=HANG_TIMEOUT)
    server.shutdown()
    assert r.returncode == 0, r.stderr
    check_output(tmp_path / "ts", [DOCS[0]])
    env["TINYSHAKESPEARE_URL"] = "http://127.0.0.1:9/input.txt"
    assert_one_error(subprocess.run([script, tmp_path / "offline"], env=env, capture_output=True, text=True,
                                    timeout=HANG_TIMEOUT),
                     "download failed")


def test_tokenizer_only(tmp_path):
    run_prepare("-o", tmp_path / "out", "--bytes")
    assert sorted(os.listdir(tmp_path / "out")) == ["prepare.lock", "tokenizer.bin"]


def assert_one_error(r, *needles):
    lines = r.stderr.strip().splitlines()
    assert r.returncode != 0, f"should fail: {r.stdout}"
    assert len(lines) == 1 and lines[0].startswith("error: "), f"want one 'error:' line, got: {r.stderr!r}"
    for n in needles:
        assert str(n) in lines[0], f"{n!r} not in {lines[0]!r}"


def test_bad_inputs(tmp_path):
    good = write_docs(tmp_path)[0]
    out = tmp_path / "out"
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    missing = tmp_path / "missing.txt"
    assert_one_error(run_prepare("-o", out, "--bytes", missing, check=False), missing, "cannot read")
    assert_one_error(run_prepare("-o", out, "--bytes", tmp_path, check=False), tmp_path, "not a regular file")
    assert_one_error(run_prepare("-o", out, "--vocab", 300, empty, check=False), empty, "empty corpus")
    assert_one_error(run_prepare("-o", out, "--vocab", 70000, good, check=False), "--vocab 70000", "[257, 65536]")
    assert_one_error(run_prepare("-o", out, "--vocab", 65537, good, check=False), "65537")
    assert_one_error(run_prepare("-o", out, "--vocab", 100, good, check=False), "257")
    assert_one_error(run_prepare("-o", out, "--vocab", "lots", good, check=False), "--vocab 'lots'")
    assert_one_error(run_prepare("-o", out, good, check=False), "choose a tokenizer")
    assert_one_error(run_prepare("--bytes", good, check=False), "-o DIR")
    assert_one_error(run_prepare("-o", out, "--bytes", "--vocab", 300, good, check=False), "choose one")
    assert_one_error(run_prepare("-o", out, "--bytes", "--frobnicate", 1, good, check=False), "--frobnicate")
    assert_one_error(run_prepare("-o", out, "--bytes", "--val-frac", 1, good, check=False), "--val-frac")
    short = tmp_path / "short.txt"
    short.write_bytes(b"hello")
    assert_one_error(run_prepare("-o", out, "--bytes", "--val-frac", 0.5, short, check=False), "train split is empty")
    assert_one_error(run_prepare("-o", good / "x", "--bytes", good, check=False), "cannot create directory")


def test_bad_tokenizer_files(tmp_path):
    good = write_docs(tmp_path)[0]
    out = tmp_path / "out"
    run_prepare("-o", out, "--vocab", 300, good)
    tok = out / "tokenizer.bin"
    header, tokens, merges = read_tokenizer_file(tok)

    def bad(name, **kw):
        path = tmp_path / name
        args = dict(tokens=tokens, eot=299, merges=merges)
        args.update(kw)
        write_tokenizer_file(path, **args)
        return path

    p = bad("magic.bin", magic=1234)
    assert_one_error(run_prepare("-o", out, "--tokenizer", p, good, check=False), p, "not a tokenizer file")
    p = bad("version.bin", version=7)
    assert_one_error(run_prepare("-o", out, "--tokenizer", p, good, check=False), p, "version 7")
    p = bad("merge.bin", merges=merges[:5] + [(merges[5][1], merges[5][0])] + merges[6:])
    assert_one_error(run_prepare("-o", out, "--tokenizer", p, good, check=False), p, "merge 5")
    p = tmp_path / "truncated.bin"
    p.write_bytes(tok.read_bytes()[:1500])
    assert_one_error(run_prepare("-o", out, "--tokenizer", p, good, check=False), p, "truncated")
    p = bad("huge.bin", tokens=[i.to_bytes(3, "little") for i in range(70000)], eot=69999, merges=None)
    assert_one_error(run_prepare("-o", out, "--tokenizer", p, good, check=False), p, "uint16")
    missing = tmp_path / "nope"
    assert_one_error(run_prepare("-o", out, "--tokenizer", missing, good, check=False), missing)
    assert_one_error(run_prepare("-o", out, "--gpt2", tmp_path, good, check=False), "encoder.json")
    (tmp_path / "encoder.json").write_text('{"!": 0, "<|endoftext|>": 1')
    assert_one_error(run_prepare("-o", out, "--gpt2", tmp_path, good, check=False), "encoder.json")


VERSE = rb"^ +[0-9]+ "


def bible_text(verses, seed=0):
    """Like bible-kjv's output: chapter headings, verses '  N text' wrapped onto indented
    continuation lines, and now and then a line that starts with a number but is no verse."""
    rng = random.Random(seed)
    words = "And God said unto Moses the LORD of Israel children shall be in land which light".split()
    lines = []
    for v in range(1, verses + 1):
        if v % 25 == 1:
            lines.append(f"Chapter {v // 25 + 1}")
        line = f"  {v}"
        for w in [rng.choice(words) for _ in range(rng.randint(3, 30))]:
            if len(line) + len(w) > 70:
                lines.append(line)
                line = "     "
            line += " " + w
        lines.append(line + ".")
        if v % 40 == 0:
            lines.append("3 and 4 at the start of a line, no verse")
    return ("\n".join(lines) + "\n").encode()


def split_documents(text, pattern):
    """A file's documents under --doc-start: a new one at every line (not the first) that matches."""
    docs = [[]]
    for i, line in enumerate(re.split(rb"(?<=\n)", text)):
        if i > 0 and line and re.search(pattern, line[:-1] if line.endswith(b"\n") else line):
            docs.append([])
        docs[-1].append(line)
    return [b"".join(d) for d in docs]


def check_documents(out_dir, docs, pattern):
    """The shards hold EOT exactly before each document: the file's start and each matching line."""
    t, val, train = check_output(out_dir, docs, val_expected=bool(split_tokens(out_dir, "val")[0]))
    stream = val + train
    eots = [k for k, x in enumerate(stream) if x == t.eot_token] + [len(stream)]
    assert eots[0] == 0
    decoded = [decode(t, stream[i + 1:j]) for i, j in zip(eots, eots[1:])]
    assert decoded == docs and len(docs) > 2
    assert all(re.search(pattern, d.split(b"\n")[0]) for d in docs[1:]), "each document but the first starts with a match"
    return t, val, train


def test_doc_start_splits_verses(tmp_path):
    text = bible_text(300)
    (tmp_path / "kjv.txt").write_bytes(text)
    docs = split_documents(text, VERSE)
    assert len(docs) == 300 + 1 and docs[0] == b"Chapter 1\n"
    # the val/train split in the middle of verse 150's first line, after its number
    split = text.index(b"\n  150 ") + 10
    r = run_prepare("-o", tmp_path / "out", "--vocab", 300, "--val-frac", split / len(text), "--doc-start",
                    VERSE.decode(), tmp_path / "kjv.txt")
    assert "encode:" in r.stdout
    t, val, train = check_documents(tmp_path / "out", docs, VERSE)
    assert train[0] != t.eot_token, "the split cuts a document only where it did before"
    assert decode(t, val).rsplit(b"\n", 1)[1].startswith(EOT_TEXT + b"  150 "), "val ends inside verse 150's line"
    # the same as each document in a file of its own, from training the BPE to the shards
    (tmp_path / "docs").mkdir()
    files = write_docs(tmp_path / "docs", docs)
    run_prepare("-o", tmp_path / "one", "--vocab", 300, "--val-frac", 0, "--doc-start", VERSE.decode(),
                tmp_path / "kjv.txt")
    run_prepare("-o", tmp_path / "many", "--vocab", 300, "--val-frac", 0, *files)
    for name in "tokenizer.bin", "train_000000.bin":
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "many" / name).read_bytes(), name
    # a regex that needs the whole line: the split (a block's end) falls inside a matching line
    ends = rb"light\.$"
    line = re.search(rb"\n(  [0-9]+ [^\n]{20,}light\.)\n", text)
    run_prepare("-o", tmp_path / "ends", "--tokenizer", tmp_path / "out" / "tokenizer.bin", "--val-frac",
                (line.start(1) + 12) / len(text), "--doc-start", ends.decode(), tmp_path / "kjv.txt")
    _, val, train = check_documents(tmp_path / "ends", split_documents(text, ends), ends)
    tail = decode(t, val).rsplit(b"\n", 1)[1]
    inside = tail[len(EOT_TEXT):]
    assert tail.startswith(EOT_TEXT) and line.group(1).startswith(inside) and 12 <= len(inside) < len(line.group(1)), \
        "val ends inside the matching line, after its EOT"
    # blank lines start paragraphs; the file's last newline starts no empty document
    text = b"para one\nline\n\npara two\n\n\npara three\n"
    (tmp_path / "paras.txt").write_bytes(text)
    run_prepare("-o", tmp_path / "paras", "--bytes", "--val-frac", 0, "--doc-start", "^$", tmp_path / "paras.txt")
    docs = [b"para one\nline\n", b"\npara two\n", b"\n", b"\npara three\n"]
    assert split_documents(text, rb"^$") == docs
    check_documents(tmp_path / "paras", docs, rb"^$")


def test_doc_start_line_across_the_8mb_block(tmp_path):
    # a matching line that starts 20 bytes before the end of the first 8 MB block and ends after it
    block = 8 << 20
    text = bible_text(110_000, seed=1)
    head = text[:text.rindex(b"\n", 0, block - 200) + 1]
    head += b"      " + b"x" * (block - 20 - len(head) - 7) + b"\n"
    line = b"  778 And God said, Let there be light.\n"
    text = head + line + text[len(head):]
    assert text.index(line) == block - 20 and len(text) > block + 100_000
    (tmp_path / "big.txt").write_bytes(text)
    (tmp_path / "small.txt").write_bytes(bible_text(300))
    run_prepare("-o", tmp_path / "tok", "--vocab", 300, tmp_path / "small.txt")
    for name, pattern in ("verses", VERSE), ("ends", rb"light\.$"):
        run_prepare("-o", tmp_path / name, "--tokenizer", tmp_path / "tok" / "tokenizer.bin", "--val-frac", 0,
                    "--doc-start", pattern.decode(), tmp_path / "big.txt")
        docs = split_documents(text, pattern)
        assert any(d.startswith(line) for d in docs)
        check_documents(tmp_path / name, docs, pattern)


def test_doc_start_bad_regex(tmp_path):
    good = write_docs(tmp_path)[0]
    assert_one_error(run_prepare("-o", tmp_path / "out", "--bytes", "--doc-start", "([0-9]", good, check=False),
                     "--doc-start ([0-9]", "not a POSIX extended regular expression")
