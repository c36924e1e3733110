"""The fuzz targets' seed corpus (test/fuzz; docs/RELIABILITY.md): small valid inputs of every
format, written by the programs of this build (so the seeds follow the formats as they change) and
by test/files.py, into OUT/<target>/ for each target.

    /usr/bin/python3 test/fuzz/seeds.py OUT
"""
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "test"))
from files import SHARD_MAGIC, byte_corpus, write_byte_tokenizer  # noqa: E402

# fuzz_state.c's model, shard and loader settings: its seeds must be states of that run
STATE_MODEL, STATE_SHARD_TOKENS, STATE_B, STATE_T = "L=1,C=8,H=2,T=8,V=257", 4096, 2, 8

TEXTS = {
    "english.txt": b"In the beginning God created the heaven and the earth.\n\nAnd the earth was without form.\n",
    "contractions.txt": b"they'll say it's 1234567 times; we're sure I'd've known   \t\n",
    "cjk.txt": "日本語のテキストです。漢字とひらがな、カタカナ。".encode(),
    "mixed.txt": "Café, naïve façade — 👋🏽 x = f(y) + 42;\r\n".encode(),
    "invalid.txt": b"\xff invalid \xc3 bytes \xe6\x97 and \x00 NUL \x80\x80",
    "spaces.txt": b"a" * 40 + b"\n\n\n   \t\t  b" + b" " * 30,
}


def write_shard(path, tokens, settings=()):
    """A shard; settings go to header slots 3.. (fuzz_shard.c reads B, T, shuffle, seek from them)."""
    header = np.zeros(256, dtype=np.int32)
    header[:3] = [SHARD_MAGIC, 1, len(tokens)]
    header[3:3 + len(settings)] = settings
    with open(path, "wb") as f:
        f.write(header.tobytes() + np.asarray(tokens, dtype=np.uint16).tobytes())


def run(*args):
    subprocess.run([str(a) for a in args], check=True, capture_output=True)


def shard_seeds(out):
    docs = byte_corpus(600, seed=1)
    write_shard(out / "documents.bin", docs, (1, 15, 1, 0, 0, 1))
    write_shard(out / "windows.bin", np.arange(300) % 256, (3, 7, 0, 1, 0, 0))
    write_shard(out / "tiny.bin", [256, 1, 2, 256, 3], (0, 1))
    # seeks to positions the shard does not have: a negative batch, one past the end, a second shard
    for name, position in ("negative", (0, 0, -1)), ("past_end", (0, 0, 100)), ("shard", (0, 1, 0)):
        write_shard(out / f"seek_{name}.bin", np.arange(300) % 256, (3, 7, 0, *position))


def tokenizer_seeds(out, work):
    write_byte_tokenizer(out / "llmc_bytes.bin")
    for name, text in TEXTS.items():
        (work / name).write_bytes(text * 20)
    run(os.path.join(ROOT, "prepare"), "-o", work / "bpe", "--vocab", 300, *sorted(work.glob("*.txt")))
    shutil.copy(work / "bpe" / "tokenizer.bin", out / "trained.bin")
    run(os.path.join(ROOT, "prepare"), "-o", work / "bytes", "--bytes")
    shutil.copy(work / "bytes" / "tokenizer.bin", out / "bytes.bin")


def model_seeds(checkpoint_out, state_out, work):
    """A checkpoint and a state of fuzz_state.c's model, trained two steps on its shard."""
    write_shard(work / "train_000000.bin", np.arange(STATE_SHARD_TOKENS) % 257)
    run(os.path.join(ROOT, "train_gpt2"), "-e", STATE_MODEL, "-i", work / "train_000000.bin", "-j",
        work / "train_000000.bin", "-o", work / "run", "-b", STATE_B, "-t", STATE_T, "-x", 2, "-n", 2, "-v", 0,
        "-s", 0, "-sh", 1)
    shutil.copy(work / "run" / "model_00000002.bin", checkpoint_out / "model.bin")
    shutil.copy(work / "run" / "state_00000002.bin", state_out / "state.bin")


def main(out):
    out = os.path.abspath(out)
    dirs = {t: pathlib.Path(out, t) for t in ("shard", "tokenizer", "bpe", "checkpoint", "state")}
    for d in dirs.values():
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
    for name, text in TEXTS.items():
        (dirs["bpe"] / name).write_bytes(text)
    shard_seeds(dirs["shard"])
    with tempfile.TemporaryDirectory() as work:
        work = pathlib.Path(work)
        tokenizer_seeds(dirs["tokenizer"], work)
        model_seeds(dirs["checkpoint"], dirs["state"], work)
    print(f"fuzz seeds in {out}: " + ", ".join(f"{t} {len(os.listdir(d))}" for t, d in dirs.items()))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
