# The C tokenizer (data/tokenizer.c, bpe_encode.c, bpe_train.c, gpt2_import.c) against tiktoken
# built with the same ranks and GPT-2's pattern, and against a plain Python BPE trainer.
import collections
import json
import random
import struct

import pytest
import regex

from tokhelp import (ATTNLAB_MARK, EOT_TEXT, GPT2_PATTERN, TOKENIZER_MAGIC, byte_tokenizer, decode, encode,
                     gpt2_alphabet, gpt2_byte_order, import_gpt2, load, read_tokenizer_file, reference_encode,
                     tiktoken_for, train, write, write_tokenizer_file)

SAMPLES = {
    "english": b"In the beginning God created the heaven and the earth. And the earth was without form.",
    "code": b"def f(x, y=3):\n    return {'a': x**2 + y}  # comment\n\tif x != y: print(f\"{x}\")\r\n",
    "digits": b"12345678901234567890 3.14159 1,000,000 0x1F 2024-03-28 ++--42",
    "whitespace": b"a  b   c\n\n\nd \t e\r\n\r\n   \n  x   ",
    "only spaces": b"     ",
    "trailing newline": b"word\n",
    "contractions": b"I'm you're he's we've they'll I'd can't 'S ''s ' s 's 'tis x'''ll 'll' 're're",
    "accented": "Café naïve façade Ångström résumé Œuvre ñandú Dvořák Łódź".encode(),
    "cjk": "日本語のテキスト、中文文本。한국어 텍스트 第３章 ㊿ 〇".encode(),
    "emoji": "hi 👋🏽 family 👨‍👩‍👧 flags 🇯🇵🇫🇷 ❤️ ✨ done".encode(),
    "unicode space": "a\u00a0b\u3000c\u2003d\u0085e\u2028f \u00a0 g\u202f\u205fh\u1680".encode(),
    "numbers": "Ⅻ ½ ¾ ٣٤ १२३ ⁴ ₅ ①".encode(),
    "symbols": b"!!! ??? ... --- *** @#$%^&*() <|endoftext|> [] {} ~`|\\",
    "mixed scripts": "Привет мир Γειά σου שלום مرحبا नमस्ते ไทย".encode(),
    "invalid utf8": b"ok \xff\xfe bad \xc3( trunc \xe2\x82 end \xed\xa0\x80 sur \xf4\x90\x80\x80 big \x80\x80!",
    "invalid in words": b"abc\xffdef 12\xc334 \xe9t\xe9 caf\xe9 \xf0\x9f\x98",
    "long digit run": b"9" * 3000,
    "long symbol run": b"=" * 2000 + b" " + b"-+" * 700,
    "long letters": b"ab" * 1500 + b" " + b"a" * 999,
    "long space run": b" " * 1000 + b"x" + b"\n" * 500,
    "empty": b"",
}


def corpus():
    """A small training corpus (~60 kB): made-up words from Latin, accented and CJK syllables, and
    every short sample."""
    rng = random.Random(0)
    syllables = "ka ri to me su na lo ve é ça ñu ör 日 本 語 한 국 the and of ing 42 7 ".split()
    punct = [" ", " ", " ", " ", ", ", ". ", "\n", "'s ", "!", " (", ") ", "  "]
    parts = []
    for _ in range(9000):
        parts.append("".join(rng.choice(syllables) for _ in range(rng.randint(1, 4))) + rng.choice(punct))
    text = "".join(parts).encode()
    return text + b"\n" + b"\n".join(v for k, v in SAMPLES.items() if not k.startswith("long"))


@pytest.fixture(scope="module")
def trained():
    return train(corpus(), 1200)


def check_against_tiktoken(t, name, text):
    enc = tiktoken_for(t.tokens(), t.eot_token)
    got, want = encode(t, text), reference_encode(enc, text)
    assert got == want, f"{name}: ours {got[:20]}... != tiktoken {want[:20]}..."
    assert decode(t, got) == text, f"{name}: decode(encode(x)) != x"


@pytest.mark.parametrize("name", SAMPLES)
def test_trained_vocab_matches_tiktoken(trained, name):
    check_against_tiktoken(trained, name, SAMPLES[name])


@pytest.mark.parametrize("name", SAMPLES)
def test_byte_vocab_matches_tiktoken(name):
    t = byte_tokenizer()
    assert t.vocab_size == 257 and t.eot_token == 256 and t.num_merges == 0
    check_against_tiktoken(t, name, SAMPLES[name])
    assert encode(t, SAMPLES[name]) == list(SAMPLES[name])


def test_all_samples_at_once_and_in_parallel(trained):
    # more than 1 MB: the encoder cuts the text into chunks for its threads
    text = b"\n".join(SAMPLES.values()) * 60 + corpus() * 20
    assert len(text) > 1 << 20
    check_against_tiktoken(trained, "everything", text)


def test_random_bytes(trained):
    rng = random.Random(1)
    alphabet = list(b" \n\t'aeiostrn019.,!") + [0xC3, 0xA9, 0xE2, 0x82, 0xAC, 0xF0, 0x9F, 0x98, 0x80, 0xFF]
    for i in range(40):
        text = bytes(rng.choice(alphabet) for _ in range(rng.randint(1, 400)))
        check_against_tiktoken(trained, f"random bytes #{i}", text)


def test_random_unicode_text(trained):
    rng = random.Random(3)
    alphabet = list(" \n\t\r'aSsdtlmrve09.,!-_") + list("é\u0301\u00a0\u3000\u2003\u0085日本한👋\u200d٣½Ⅻ\u00ad\ufeff")
    for i in range(60):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 300))).encode()
        check_against_tiktoken(trained, f"random text #{i}", text)


def tokens_with_prefixes(strings):
    """A vocabulary (llm.c style, no merges) in which each string is reachable byte by byte."""
    tokens = [bytes([b]) for b in range(256)]
    seen = set(tokens)
    for s in strings:
        for k in range(2, len(s) + 1):
            if s[:k] not in seen:
                seen.add(s[:k])
                tokens.append(s[:k])
    return tokens + [EOT_TEXT]


def test_unicode_classes_against_tiktoken(tmp_path):
    # A vocabulary with tokens for "a"+c, "1"+c, "!"+c, " "+c and c+" " for a sample of code points
    # from every plane: a token appears only if tiktoken's pattern keeps the two in one piece.
    rng = random.Random(2)
    cps = set(rng.sample(range(0x110000), 2500)) | set(range(1, 0x80)) | set(range(0x80, 0x800, 3)) | {0x85, 0xA0, 0x1680, 0x2028, 0x3000}
    chars = [chr(c) for c in sorted(cps) if not 0xD800 <= c < 0xE000]
    pairs = [(p + c).encode() for c in chars for p in ("a", "1", "!", " ")] + [(c + " ").encode() for c in chars]
    tokens = tokens_with_prefixes(pairs)
    write_tokenizer_file(tmp_path / "probe.bin", tokens, len(tokens) - 1)
    t = load(tmp_path / "probe.bin")
    assert t.num_merges == 0
    enc = tiktoken_for(tokens, len(tokens) - 1)
    for k in range(0, len(pairs), 500):
        text = b"\n".join(pairs[k:k + 500])
        assert encode(t, text) == enc.encode_ordinary(text.decode()), f"code points near {pairs[k]!r}"


def ref_words(text: bytes):
    return collections.Counter(p.encode() for p in regex.findall(GPT2_PATTERN, text.decode()))


def ref_train(text: bytes, vocab_size):
    """Plain BPE: recount every pair each step; the most frequent wins, ties to the smallest
    (left id, right id); no token over 255 bytes; a pair whose bytes are already a token merges into
    it without a new token."""
    vocab = [bytes([b]) for b in range(256)]
    index = {b: i for i, b in enumerate(vocab)}
    words = [[list(w), f] for w, f in ref_words(text).items()]
    merges = []
    while len(merges) < vocab_size - 257:
        counts = collections.Counter()
        for syms, f in words:
            for pair in zip(syms, syms[1:]):
                counts[pair] += f
        cands = [(-c, p) for p, c in counts.items() if len(vocab[p[0]]) + len(vocab[p[1]]) <= 255]
        if not cands:
            break
        a, b = min(cands)[1]
        joined = vocab[a] + vocab[b]
        if joined in index:
            new = index[joined]
        else:
            new = index[joined] = len(vocab)
            vocab.append(joined)
            merges.append((a, b))
        for w in words:
            syms, out, k = w[0], [], 0
            while k < len(syms):
                if k + 1 < len(syms) and syms[k] == a and syms[k + 1] == b:
                    out.append(new)
                    k += 2
                else:
                    out.append(syms[k])
                    k += 1
            w[0] = out
    return vocab, merges


@pytest.mark.parametrize("case", ["mixed", "long runs"])
def test_training_matches_reference(case):
    if case == "mixed":
        text, vocab_size = corpus()[:25000], 700
    else:   # runs long enough to hit the 255-byte limit, and few enough pairs to stop early
        text, vocab_size = b"=" * 700 + b" " + b"ab" * 300 + b" 1234512345 aaa", 400
    t = train(text, vocab_size)
    vocab, merges = ref_train(text, vocab_size)
    assert t.merge_list() == merges, f"{case}: first difference at merge " \
        f"{next((i for i, (x, y) in enumerate(zip(t.merge_list(), merges)) if x != y), min(len(merges), t.num_merges))}"
    assert t.tokens()[:-1] == vocab and t.token(t.eot_token) == EOT_TEXT
    assert t.vocab_size == len(vocab) + 1 and t.eot_token == t.vocab_size - 1
    assert max(len(v) for v in vocab) <= 255
    if case == "long runs":
        assert t.vocab_size < vocab_size, "this corpus should run out of pairs"


def test_ids_follow_merge_order(trained):
    for i, (a, b) in enumerate(trained.merge_list()):
        assert a < 256 + i and b < 256 + i
        assert trained.token(256 + i) == trained.token(a) + trained.token(b)
    assert trained.vocab_size == 1200 and trained.num_merges == 1200 - 257 and trained.eot_token == 1199


def test_file_round_trip(trained, tmp_path):
    path = tmp_path / "tok.bin"
    write(trained, path)
    header, tokens, merges = read_tokenizer_file(path)
    assert header[:6] == (TOKENIZER_MAGIC, 2, 1200, 1199, ATTNLAB_MARK, 1200 - 257)
    assert tokens == trained.tokens() and merges == trained.merge_list()
    again = load(path)
    assert again.tokens() == trained.tokens() and again.merge_list() == trained.merge_list()
    assert encode(again, corpus()) == encode(trained, corpus())


def test_llmc_file_without_merges_encodes_the_same(trained, tmp_path):
    # llm.c's gpt2_tokenizer.bin has no merges: ranks come from the ids alone
    write_tokenizer_file(tmp_path / "llmc.bin", trained.tokens(), trained.eot_token)
    plain = load(tmp_path / "llmc.bin")
    assert plain.num_merges == 0
    assert encode(plain, corpus()) == encode(trained, corpus())


def write_gpt2_files(dirpath, t):
    """encoder.json + vocab.bpe in OpenAI's format for tokenizer t, with GPT-2's byte ids (ids 0..255
    in bytes_to_unicode order), so the import has to map bytes through a permutation."""
    alpha, order = gpt2_alphabet(), gpt2_byte_order()
    byte_id = {b: i for i, b in enumerate(order)}
    remap = lambda i: byte_id[i] if i < 256 else i  # noqa: E731 (our ids 0..255 are the bytes)
    spell = lambda b: "".join(alpha[x] for x in b)  # noqa: E731
    tokens = [bytes([b]) for b in order] + t.tokens()[256:]
    encoder = {spell(b) if i != t.eot_token else "<|endoftext|>": i for i, b in enumerate(tokens)}
    (dirpath / "encoder.json").write_text(json.dumps(encoder))
    lines = ["#version: 0.2"] + [f"{spell(t.token(a))} {spell(t.token(b))}" for a, b in t.merge_list()]
    (dirpath / "vocab.bpe").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return tokens, [(remap(a), remap(b)) for a, b in t.merge_list()]


def test_gpt2_import(trained, tmp_path):
    tokens, merges = write_gpt2_files(tmp_path, trained)
    t = import_gpt2(tmp_path / "encoder.json", tmp_path / "vocab.bpe")
    assert t.tokens() == tokens and t.merge_list() == merges and t.eot_token == 1199
    for name in ("english", "code", "cjk", "emoji", "invalid utf8", "long digit run"):
        check_against_tiktoken(t, f"gpt2 import: {name}", SAMPLES[name])
    write(t, tmp_path / "gpt2.bin")
    assert load(tmp_path / "gpt2.bin").tokens() == tokens


def test_decode_eot_and_unknown_ids(trained):
    assert decode(trained, [trained.eot_token]) == EOT_TEXT
    assert decode(trained, [72, -5, 99999]) == b"H<-5><99999>"
    assert encode(trained, EOT_TEXT) != [trained.eot_token], "text never encodes to EOT"


def test_encode_with_small_output_buffer(trained):
    import ctypes
    import numpy as np
    from tokhelp import LIB
    text = SAMPLES["english"]
    full = encode(trained, text)
    out = np.full(5, -1, dtype=np.int32)
    n = LIB.tokenizer_encode(ctypes.byref(trained), text, ctypes.c_size_t(len(text)),
                             out.ctypes.data_as(ctypes.c_void_p), ctypes.c_size_t(5))
    assert n == len(full) and out.tolist() == full[:5]


def test_llmc_reads_our_file(trained, tmp_path):
    # llm.c's reader: header, then vocab_size (length, bytes) records; it never looks further
    write(trained, tmp_path / "tok.bin")
    data = (tmp_path / "tok.bin").read_bytes()
    header = struct.unpack_from("<256i", data)
    pos = 1024
    for i in range(header[2]):
        n = data[pos]
        assert data[pos + 1:pos + 1 + n] == trained.token(i)
        pos += 1 + n
    assert header[3] == trained.eot_token and len(data) - pos == 8 * trained.num_merges
