"""Helpers for the tokenizer tests: the C tokenizer through ctypes, tiktoken built from the same
ranks, tokenizer and shard files written and read in Python, GPT-2's byte alphabet.

ATTNLAB_LIB / ATTNLAB_PREPARE override the library and program under test (default: the build).
"""
import ctypes
import os
import struct
import subprocess

import numpy as np
import regex
import tiktoken
from timeouts import HANG_TIMEOUT

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LIB_PATH = os.environ.get("ATTNLAB_LIB", os.path.join(ROOT, "build", "libattnlab.so"))
PREPARE = os.environ.get("ATTNLAB_PREPARE", os.path.join(ROOT, "prepare"))
LIB = ctypes.CDLL(LIB_PATH)
LIB.tokenizer_encode.restype = ctypes.c_size_t
LIB.tokenizer_decode.restype = ctypes.c_size_t

GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
EOT_TEXT = b"<|endoftext|>"
TOKENIZER_MAGIC, SHARD_MAGIC, ATTNLAB_MARK = 20240328, 20240520, 0x424C5441


class Tokenizer(ctypes.Structure):
    """data/tokenizer.h's Tokenizer."""
    _fields_ = [("vocab_size", ctypes.c_int), ("eot_token", ctypes.c_int),
                ("token_bytes", ctypes.POINTER(ctypes.POINTER(ctypes.c_ubyte))),
                ("token_len", ctypes.POINTER(ctypes.c_int)), ("num_merges", ctypes.c_int),
                ("merges", ctypes.POINTER(ctypes.c_int)), ("index", ctypes.c_void_p)]

    def token(self, i):
        return bytes(self.token_bytes[i][:self.token_len[i]])

    def tokens(self):
        return [self.token(i) for i in range(self.vocab_size)]

    def merge_list(self):
        return [(self.merges[2 * i], self.merges[2 * i + 1]) for i in range(self.num_merges)]

    def __del__(self):
        if self.index:
            LIB.tokenizer_free(ctypes.byref(self))


def load(path):
    t = Tokenizer()
    LIB.tokenizer_load(ctypes.byref(t), str(path).encode())
    return t


def byte_tokenizer():
    t = Tokenizer()
    LIB.tokenizer_init_bytes(ctypes.byref(t))
    return t


def train(text: bytes, vocab_size):
    t = Tokenizer()
    LIB.tokenizer_train_text(ctypes.byref(t), text, ctypes.c_size_t(len(text)), vocab_size)
    return t


def import_gpt2(encoder_json, vocab_bpe):
    t = Tokenizer()
    LIB.tokenizer_import_gpt2(ctypes.byref(t), str(encoder_json).encode(), str(vocab_bpe).encode())
    return t


def write(t, path):
    LIB.tokenizer_write(ctypes.byref(t), str(path).encode())


def encode(t, text: bytes):
    out = np.zeros(max(len(text), 1), dtype=np.int32)
    n = LIB.tokenizer_encode(ctypes.byref(t), text, ctypes.c_size_t(len(text)),
                             out.ctypes.data_as(ctypes.c_void_p), ctypes.c_size_t(len(out)))
    return out[:n].tolist()


def decode(t, ids):
    ids = np.asarray(ids, dtype=np.int32)
    n = LIB.tokenizer_decode(ctypes.byref(t), ids.ctypes.data_as(ctypes.c_void_p), ctypes.c_size_t(len(ids)),
                             None, ctypes.c_size_t(0))
    out = ctypes.create_string_buffer(max(n, 1))
    LIB.tokenizer_decode(ctypes.byref(t), ids.ctypes.data_as(ctypes.c_void_p), ctypes.c_size_t(len(ids)),
                         out, ctypes.c_size_t(n))
    return out.raw[:n]


def tiktoken_for(tokens, eot):
    """tiktoken with GPT-2's pattern and rank = id for every token but EOT."""
    ranks = {b: i for i, b in enumerate(tokens) if i != eot}
    return tiktoken.Encoding(name=f"attnlab{len(tokens)}", pat_str=GPT2_PATTERN, mergeable_ranks=ranks,
                             special_tokens={"<|endoftext|>": eot})


def reference_encode(enc, text: bytes):
    """tiktoken's encoding of any bytes: valid UTF-8 as tiktoken encodes it; elsewhere each invalid
    byte is one 'other' character (a lone surrogate under surrogateescape), split with the same
    pattern by the regex module, each piece merged by tiktoken."""
    try:
        return enc.encode_ordinary(text.decode("utf-8"))
    except UnicodeDecodeError:
        pass
    ids = []
    for piece in regex.findall(GPT2_PATTERN, text.decode("utf-8", "surrogateescape")):
        ids += enc._encode_single_piece(piece.encode("utf-8", "surrogateescape"))
    return ids


def write_tokenizer_file(path, tokens, eot, merges=None, magic=TOKENIZER_MAGIC, version=2):
    """A tokenizer file as llm.c writes it (merges: attnlab's extension)."""
    header = [0] * 256
    header[:4] = [magic, version, len(tokens), eot]
    if merges is not None:
        header[4:6] = [ATTNLAB_MARK, len(merges)]
    with open(path, "wb") as f:
        f.write(struct.pack("<256i", *header))
        for b in tokens:
            f.write(bytes([len(b)]) + b)
        for a, b in merges or []:
            f.write(struct.pack("<2i", a, b))


def read_tokenizer_file(path):
    """(header, tokens, merges) as a reader that knows the extension sees them."""
    data = open(path, "rb").read()
    header = struct.unpack_from("<256i", data)
    pos, tokens = 1024, []
    for _ in range(header[2]):
        n = data[pos]
        tokens.append(data[pos + 1:pos + 1 + n])
        pos += 1 + n
    merges = []
    if header[4] == ATTNLAB_MARK:
        merges = [struct.unpack_from("<2i", data, pos + 8 * i) for i in range(header[5])]
        pos += 8 * header[5]
    assert pos == len(data), f"{path}: {len(data) - pos} bytes after the tokenizer"
    return header, tokens, merges


def read_shard(path):
    data = open(path, "rb").read()
    header = struct.unpack_from("<256i", data)
    assert header[0] == SHARD_MAGIC and header[1] == 1, f"{path}: header {header[:3]}"
    assert len(data) == 1024 + 2 * header[2], f"{path}: {len(data)} bytes for {header[2]} tokens"
    return np.frombuffer(data, dtype=np.uint16, offset=1024).astype(np.int64).tolist()


def gpt2_alphabet():
    """GPT-2's bytes_to_unicode: byte -> printable character."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def gpt2_byte_order():
    """The byte of each of GPT-2's ids 0..255 (the order of bytes_to_unicode)."""
    return list(gpt2_alphabet().keys())


def run_prepare(*args, check=True):
    r = subprocess.run([PREPARE, *map(str, args)], capture_output=True, text=True, timeout=HANG_TIMEOUT)
    if check:
        assert r.returncode == 0, f"prepare {args} failed:\n{r.stdout}\n{r.stderr}"
    return r
