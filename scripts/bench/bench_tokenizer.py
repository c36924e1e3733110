"""Encoding throughput: attnlab's tokenizer against tiktoken, same text, same vocabulary, same run.

    /usr/bin/python3 scripts/bench/bench_tokenizer.py [--text FILE] [--vocab N] [--repeat K]

Without --text it uses the King James Bible (Debian's bible-kjv: `bible "Gen1:1-Rev22:21"`),
repeated K times (default 4, about 17 MB). It trains a BPE of N tokens with ./prepare (default
4096), then times, best of 3:
  - ./prepare --tokenizer: the whole program (read, encode, write shards), all cores;
  - tokenizer_encode through build/libattnlab.so, on 1 thread and on all cores;
  - tiktoken (PyPI) built from the same ranks and GPT-2's pattern: encode_ordinary (1 thread) and
    encode_ordinary_batch over line-aligned chunks (all cores).
and checks that both produce the same tokens. Needs `make prepare lib` and `pip install tiktoken`.
"""
import argparse
import ctypes
import os
import re
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np
import tiktoken

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def read_tokens(path):
    data = open(path, "rb").read()
    header = struct.unpack_from("<256i", data)
    pos, tokens = 1024, []
    for _ in range(header[2]):
        tokens.append(data[pos + 1:pos + 1 + data[pos]])
        pos += 1 + data[pos]
    return tokens, header[3]


def best_of(fn, runs=5):
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return min(times), result


def prepare(*args):
    r = subprocess.run([os.path.join(ROOT, "prepare"), *map(str, args)], capture_output=True, text=True)
    if r.returncode:
        sys.exit(r.stderr.strip())
    return r.stdout


def bench_prepare(tmp, text_path, tok_path):
    rates = []
    for _ in range(3):
        out = prepare("-o", os.path.join(tmp, "bench"), "--tokenizer", tok_path, "--val-frac", 0, text_path)
        rates.append(float(re.search(r"= ([\d.]+) MB/s", out).group(1)))
    return max(rates)


class Tokenizer(ctypes.Structure):
    _fields_ = [("vocab_size", ctypes.c_int), ("eot_token", ctypes.c_int), ("token_bytes", ctypes.c_void_p),
                ("token_len", ctypes.c_void_p), ("num_merges", ctypes.c_int), ("merges", ctypes.c_void_p),
                ("index", ctypes.c_void_p)]


def bench_library(text, tok_path, threads):
    lib = ctypes.CDLL(os.path.join(ROOT, "build", "libattnlab.so"))
    lib.tokenizer_encode.restype = ctypes.c_size_t
    gomp = ctypes.CDLL("libgomp.so.1")
    t = Tokenizer()
    lib.tokenizer_load(ctypes.byref(t), tok_path.encode())
    out = np.zeros(len(text), dtype=np.int32)
    gomp.omp_set_num_threads(threads)
    secs, n = best_of(lambda: lib.tokenizer_encode(ctypes.byref(t), text, ctypes.c_size_t(len(text)),
                                                   out.ctypes.data_as(ctypes.c_void_p), ctypes.c_size_t(len(text))))
    return secs, out[:n].tolist()


def line_chunks(s, count):
    size, chunks, start = len(s) // count + 1, [], 0
    while start < len(s):
        end = s.find("\n", start + size)
        end = len(s) if end < 0 else end + 1
        chunks.append(s[start:end])
        start = end
    return chunks


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--text", help="UTF-8 text file (default: the KJV Bible from `bible`)")
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--repeat", type=int, default=4)
    args = ap.parse_args()
    raw = open(args.text, "rb").read() if args.text else subprocess.run(
        ["bible", "Gen1:1-Rev22:21"], capture_output=True, check=True).stdout
    text = raw * args.repeat
    cores = os.cpu_count()
    with tempfile.TemporaryDirectory() as tmp:
        text_path = os.path.join(tmp, "text.txt")
        open(text_path, "wb").write(text)
        prepare("-o", os.path.join(tmp, "tok"), "--vocab", args.vocab, "--val-frac", 0, text_path)
        tok_path = os.path.join(tmp, "tok", "tokenizer.bin")
        prepare_rate = bench_prepare(tmp, text_path, tok_path)
        ours1, ids = bench_library(text, tok_path, 1)
        oursn, ids_n = bench_library(text, tok_path, cores)
        tokens, eot = read_tokens(tok_path)
    enc = tiktoken.Encoding(name="bench", pat_str=GPT2_PATTERN, mergeable_ranks={b: i for i, b in enumerate(tokens) if i != eot},
                            special_tokens={"<|endoftext|>": eot})
    s = text.decode("utf-8")
    tik1, ref = best_of(lambda: enc.encode_ordinary(s))
    chunks = line_chunks(s, 4 * cores)
    tikn, _ = best_of(lambda: enc.encode_ordinary_batch(chunks, num_threads=cores))
    assert ids == ref and ids_n == ref, "attnlab and tiktoken disagree on this text"
    mb = len(text) / 1e6
    print(f"text: {mb:.1f} MB, vocabulary {len(tokens)} tokens, {len(ref)} tokens, identical: yes, {cores} cores")
    print("| encoder | threads | MB/s |\n| --- | --- | --- |")
    print(f"| attnlab tokenizer_encode | 1 | {mb / ours1:.1f} |")
    print(f"| attnlab tokenizer_encode | {cores} | {mb / oursn:.1f} |")
    print(f"| attnlab ./prepare (read + encode + write shards) | {cores} | {prepare_rate:.1f} |")
    print(f"| tiktoken {tiktoken.__version__} encode_ordinary | 1 | {mb / tik1:.1f} |")
    print(f"| tiktoken {tiktoken.__version__} encode_ordinary_batch | {cores} | {mb / tikn:.1f} |")


if __name__ == "__main__":
    main()
