#!/usr/bin/env bash
# The streaming evaluation (docs/STREAMING.md) of every model of an ablation output folder:
#
#   bash scripts/stream_suite.sh RUNS_DIR DATA_DIR OUT_DIR
#
# RUNS_DIR is scripts/sink_ablation.py's --out (RUNS_DIR/<variant-slug>/seed<S>/model_<steps>.bin);
# each run's newest checkpoint is read with ./infer -eval-stream "DATA_DIR/val_*.bin" -stream S,W
# (S = 4, W = maxT - 4) over N positions of the val text as one stream (the BOS first for models
# trained with one), in the settings ES, into OUT_DIR/<variant-slug>_seed<S>.json and a log next to
# it; then scripts/plot_stream.py draws OUT_DIR/stream.png and writes OUT_DIR/stream_table.md.
# A run whose JSON exists is not evaluated again (delete it to redo it).
# Environment: N (positions, default 20000), ES (-es settings, default
# stream:0,stream:1,stream:4,recompute:0), BUCKET (-eb, default 500), MERGE (plot_stream.py
# --merge, default 1), B (-b: windows per recomputation forward, default 16), INFER (default
# ./infer), PYTHON (default /usr/bin/python3), OMP_NUM_THREADS as for any run.
set -euo pipefail

if [ $# -ne 3 ]; then
    echo "usage: bash scripts/stream_suite.sh RUNS_DIR DATA_DIR OUT_DIR" >&2
    exit 2
fi
RUNS_DIR=$1 DATA_DIR=$2 OUT_DIR=$3
N=${N:-20000}
ES=${ES:-stream:0,stream:1,stream:4,recompute:0}
B=${B:-16}
INFER=${INFER:-./infer}
PYTHON=${PYTHON:-/usr/bin/python3}
HERE=$(cd "$(dirname "$0")" && pwd)

fail() { echo "error: stream_suite.sh: $*" >&2; exit 1; }
[ -d "$RUNS_DIR" ] || fail "$RUNS_DIR: no such folder"
[ -x "$INFER" ] || fail "$INFER: not built (make infer)"
ls "$DATA_DIR"/val_*.bin > /dev/null 2>&1 || fail "$DATA_DIR: no val_*.bin shards"
mkdir -p "$OUT_DIR"
TOKENIZER=()
[ -f "$DATA_DIR/tokenizer.bin" ] && TOKENIZER=(-tk "$DATA_DIR/tokenizer.bin")

jsons=()
failed=0
for run in "$RUNS_DIR"/*/seed*/; do
    run=${run%/}
    model=$(ls "$run"/model_*.bin 2> /dev/null | sort | tail -n 1) || true
    [ -n "$model" ] || { echo "skip $run: no checkpoint"; continue; }
    name="$(basename "$(dirname "$run")")_$(basename "$run")"
    json="$OUT_DIR/$name.json"
    if [ ! -f "$json" ]; then
        # maxT from the checkpoint header (int32 slot 2): S = 4 sinks, W = maxT - 4
        maxT=$(od -An -t d4 -j 8 -N 4 "$model" | tr -d ' ')
        echo "$name: $model (maxT $maxT), $N positions, $ES"
        if ! "$INFER" -e "$model" "${TOKENIZER[@]}" -eval-stream "$DATA_DIR/val_*.bin" -stream "4,$((maxT - 4))" \
                -n "$N" -es "$ES" -b "$B" -eb "${BUCKET:-500}" -json "$json" > "$OUT_DIR/$name.log" 2>&1; then
            echo "FAILED $name: $(tail -n 1 "$OUT_DIR/$name.log")"
            failed=1
            continue
        fi
    fi
    jsons+=("$json")
done
[ ${#jsons[@]} -gt 0 ] || fail "$RUNS_DIR: no run evaluated (expected RUNS_DIR/<variant>/seed<S>/model_<steps>.bin)"
"$PYTHON" "$HERE/plot_stream.py" "${jsons[@]}" --merge "${MERGE:-1}" -o "$OUT_DIR/stream.png" --table "$OUT_DIR/stream_table.md"
cat "$OUT_DIR/stream_table.md"
exit $failed
