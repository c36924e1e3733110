"""Writers for llm.c's shard and tokenizer files, written here independently of the C code so the
tests can hand the programs well-formed and malformed input."""
import numpy as np

SHARD_MAGIC, TOKENIZER_MAGIC = 20240520, 20240328
MODEL_CHECKSUM_SLOT, STATE_CHECKSUM_SLOT = 14, 18   # docs/FORMATS.md


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


def fnv1a64_words(data, h=14695981039346656037):
    """The checksum of docs/FORMATS.md, written here from its definition: FNV-1a over 8-byte
    little-endian words, then the tail bytes; h: the value to continue from."""
    prime, mask = 1099511628211, (1 << 64) - 1
    data = np.frombuffer(bytes(data), dtype=np.uint8)
    for w in np.frombuffer(data[: len(data) // 8 * 8].tobytes(), dtype="<u8").tolist():
        h = ((h ^ w) * prime) & mask
    for b in data[len(data) // 8 * 8:].tolist():
        h = ((h ^ b) * prime) & mask
    return h


def edit_header(path, edits, checksum_slot=None):
    """Sets header slots of a file ({slot: int32 value}). With checksum_slot, the whole-file checksum
    in that slot pair is computed again (the file with the pair zero, docs/FORMATS.md), so the edited
    file is one its writer could have written."""
    raw = bytearray(open(path, "rb").read())
    header = np.frombuffer(bytes(raw[:1024]), dtype="<i4").copy()
    for slot, value in edits.items():
        header[slot] = value
    if checksum_slot is not None:
        header[checksum_slot:checksum_slot + 2] = 0
        h = fnv1a64_words(header.tobytes() + bytes(raw[1024:]))
        header[checksum_slot:checksum_slot + 2] = np.array([h], dtype="<u8").view("<i4")
    raw[:1024] = header.tobytes()
    open(path, "wb").write(bytes(raw))
