"""Downloads a sample of FineWeb (HuggingFaceFW/fineweb, config sample-10BT, as llm.c's
dev/data/fineweb.py does) and prepares it with ./prepare. Needs a network connection and the
`datasets` package (pip install datasets); offline it stops with one error line.

    /usr/bin/python3 scripts/download_fineweb.py [--out DIR] [--mb N] [--gpt2] [-- PREPARE FLAGS...]

Streams documents until N MB of text (default 500), writes them to DIR/fineweb_NNN.txt (at most
100 MB each, documents joined by <|endoftext|>), then runs
    ./prepare -o DIR --eot-text FLAGS DIR/fineweb_*.txt
FLAGS default to --vocab 32768. --gpt2 also downloads GPT-2's encoder.json and vocab.bpe (from
tiktoken's public mirror of OpenAI's files) into DIR/gpt2 and uses them (--gpt2 DIR/gpt2), so the
token ids are the ones llm.c's FineWeb shards have.
"""
import argparse
import glob
import os
import socket
import subprocess
import sys
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GPT2_FILES = "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/"
EOT = "<|endoftext|>"
FILE_BYTES = 100 << 20


def die(msg):
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(1)


def check_online(host):
    try:
        socket.create_connection((host, 443), timeout=10).close()
    except OSError as e:
        die(f"{host}: cannot connect ({e.strerror or e}); FineWeb needs a network connection. "
            "Offline, use the default corpus (docs/TOKENIZER.md)")


def download_gpt2(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    for name in ("encoder.json", "vocab.bpe"):
        path = os.path.join(out_dir, name)
        if not os.path.exists(path):
            try:
                urllib.request.urlretrieve(GPT2_FILES + name, path + ".part")
            except OSError as e:
                die(f"{GPT2_FILES + name}: download failed ({e})")
            os.replace(path + ".part", path)


def write_documents(out_dir, max_bytes):
    try:
        from datasets import load_dataset
    except ImportError:
        die("datasets: not installed; run `pip install datasets` (FineWeb streams through it)")
    docs = load_dataset("HuggingFaceFW/fineweb", name="sample-10BT", split="train", streaming=True)
    total, index, f, in_file = 0, 0, None, 0
    for n, doc in enumerate(docs):
        data = doc["text"].replace(EOT, "").encode("utf-8")
        if f is None or in_file + len(data) > FILE_BYTES:
            if f:
                f.close()
            f = open(os.path.join(out_dir, f"fineweb_{index:03d}.txt"), "wb")
            index, in_file = index + 1, 0
        elif in_file:
            f.write(EOT.encode())
        f.write(data)
        in_file += len(data)
        total += len(data)
        if n % 10000 == 0:
            print(f"fineweb: {n} documents, {total / 1e6:.0f} MB", flush=True)
        if total >= max_bytes:
            break
    f.close()
    print(f"fineweb: {total / 1e6:.0f} MB in {index} files", flush=True)


def main():
    argv = sys.argv[1:]
    flags = argv[argv.index("--") + 1:] if "--" in argv else []
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="datasets/fineweb")
    ap.add_argument("--mb", type=float, default=500)
    ap.add_argument("--gpt2", action="store_true")
    args = ap.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    check_online("huggingface.co")
    os.makedirs(args.out, exist_ok=True)
    if args.gpt2:
        download_gpt2(os.path.join(args.out, "gpt2"))
        flags = ["--gpt2", os.path.join(args.out, "gpt2")] + flags
    elif not flags:
        flags = ["--vocab", "32768"]
    for old in glob.glob(os.path.join(args.out, "fineweb_*.txt")):
        os.remove(old)
    write_documents(args.out, int(args.mb * 1e6))
    if not os.access(os.path.join(ROOT, "prepare"), os.X_OK):
        subprocess.run(["make", "-C", ROOT, "prepare"], check=True)
    files = sorted(glob.glob(os.path.join(args.out, "fineweb_*.txt")))
    sys.exit(subprocess.run([os.path.join(ROOT, "prepare"), "-o", args.out, "--eot-text", *flags, *files]).returncode)


if __name__ == "__main__":
    main()
