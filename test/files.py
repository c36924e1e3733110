"""Writers for llm.c's shard and tokenizer files, written here independently of the C code so the
tests can hand the programs well-formed and malformed input."""
import numpy as np

SHARD_MAGIC, TOKENIZER_MAGIC = 20240520, 20240328


def write_shard(path, tokens, magic=SHARD_MAGIC, version=1, count=None):
    header = np.zeros(256, dtype=np.int32)
    header[:3] = [magic, version, len(tokens) if count is None else count]
    with open(path, "wb") as f:
        f.write(header.tobytes())
        f.write(np.asarray(tokens, dtype=np.uint16).tobytes())


def write_byte_tokenizer(path):
    """256 byte tokens + <|endoftext|> = 257."""
    header = np.zeros(256, dtype=np.int32)
    header[:4] = [TOKENIZER_MAGIC, 2, 257, 256]
    with open(path, "wb") as f:
        f.write(header.tobytes())
        for b in range(256):
            f.write(bytes([1, b]))
        eot = b"<|endoftext|>"
        f.write(bytes([len(eot)]) + eot)


def byte_corpus(n, seed=0):
    """Byte tokens of a repetitive, learnable text, with EOT (256) between 'documents'."""
    rng = np.random.default_rng(seed)
    words = [b"the ", b"lord ", b"said ", b"unto ", b"moses ", b"and ", b"it ", b"was ", b"good. "]
    out = []
    while len(out) < n:
        doc = b"".join(words[i] for i in rng.integers(0, len(words), 40))
        out.extend(doc)
        out.append(256)
    return np.array(out[:n], dtype=np.uint16)
