#!/usr/bin/env bash
# Downloads Tiny Shakespeare (1.1 MB, from Karpathy's char-rnn, as llm.c's dev/data/tinyshakespeare.py
# does) and prepares it with ./prepare. Needs a network connection; offline, use the default corpus
# (docs/TOKENIZER.md).
#
#   scripts/download_tinyshakespeare.sh [DIR [PREPARE FLAGS...]]
#
# DIR defaults to datasets/tinyshakespeare, the flags to --vocab 4096. Writes DIR/input.txt,
# DIR/tokenizer.bin, DIR/val_000000.bin and DIR/train_000000.bin.
set -euo pipefail
URL="${TINYSHAKESPEARE_URL:-https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DIR="${1:-datasets/tinyshakespeare}"
shift || true
FLAGS=("$@")
[ ${#FLAGS[@]} -eq 0 ] && FLAGS=(--vocab 4096)

mkdir -p "$DIR"
if [ ! -s "$DIR/input.txt" ]; then
    echo "downloading $URL"
    if ! curl -fsSL --connect-timeout 15 --retry 2 -o "$DIR/input.txt.part" "$URL" 2>/dev/null; then
        rm -f "$DIR/input.txt.part"
        echo "error: $URL: download failed (offline?); without a network use the default corpus, see docs/TOKENIZER.md" >&2
        exit 1
    fi
    mv "$DIR/input.txt.part" "$DIR/input.txt"
fi
[ -x "$ROOT/prepare" ] || make -C "$ROOT" prepare
"$ROOT/prepare" -o "$DIR" "${FLAGS[@]}" "$DIR/input.txt"
