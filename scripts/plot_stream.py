"""Loss against position of streaming evaluations, the JSON that
`./infer -eval-stream GLOB -stream S,W -json FILE` writes (docs/STREAMING.md), and their table.

    /usr/bin/python3 scripts/plot_stream.py FILE.json [FILE.json ...] [-o PNG] [--ppl] [--merge K] [--table MD]

One panel per file (titled with the file's name without .json: the suite names them after the
model), one line per setting of -es (window only, sinks + window, recompute, mLSTM's recurrent
state): the mean loss (or, --ppl, the perplexity) of each bucket of positions against the
bucket's first position (--merge K: K buckets of the JSON averaged into one, by their sizes, for
a smoother line), a dotted line at the cache size. -o defaults to FILE without .json plus
.png for one file, stream.png for several. --table writes a markdown table: per file and setting
the mean loss within the cache's first positions, past them, and past them relative to the best
recompute setting of the same file (the quality ceiling).
"""
import argparse
import json
import math
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

FIELDS = ("tokens", "cache", "bucket", "bucket_start", "settings")
SETTING_FIELDS = ("name", "label", "kind", "mean_loss_within_cache", "mean_loss_past_cache", "bucket_loss")


def fail(message):
    """One line on stderr, exit status 1."""
    sys.exit(f"error: plot_stream.py: {message}")


def load(path):
    """The evaluation as a dict; fails with one line if the file is missing, is not JSON or lacks a
    field the plot needs."""
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        fail(f"{path}: no such file")
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        fail(f"{path}: not JSON ({e})")
    missing = [k for k in FIELDS if not isinstance(data, dict) or k not in data]
    if not missing:
        missing = [f"settings[].{k}" for s in data["settings"] for k in SETTING_FIELDS if k not in s][:1]
    if missing:
        fail(f"{path}: missing field(s) {', '.join(missing)}; expected the JSON of ./infer -eval-stream GLOB -json FILE")
    for s in data["settings"]:
        if len(s["bucket_loss"]) != len(data["bucket_start"]):
            fail(f"{path}: setting {s['name']} has {len(s['bucket_loss'])} buckets, bucket_start {len(data['bucket_start'])}")
    data["title"] = os.path.splitext(os.path.basename(path))[0]
    return data


def merge(data, k):
    """Every k consecutive buckets of data as one: bucket_start and each setting's bucket_loss (the
    mean over the positions of the buckets merged; the last bucket may be short)."""
    starts, n = data["bucket_start"], data["tokens"]
    sizes = [min(s + data["bucket"], n) - s for s in starts]
    for s in data["settings"]:
        merged = []
        for i in range(0, len(starts), k):
            pairs = [(v, w) for v, w in zip(s["bucket_loss"][i:i + k], sizes[i:i + k]) if v is not None]
            merged.append(sum(v * w for v, w in pairs) / sum(w for _, w in pairs) if pairs else None)
        s["bucket_loss"] = merged
    data["bucket_start"], data["bucket"] = starts[::k], data["bucket"] * k


def value(loss, ppl):
    return None if loss is None else (math.exp(loss) if ppl else loss)


def plot(runs, path, ppl):
    n = len(runs)
    cols = min(n, 3)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5.5 * cols, 3.8 * rows), squeeze=False, sharey=True)
    for ax, data in zip(axes.flat, runs):
        for s in data["settings"]:
            ys = [value(v, ppl) for v in s["bucket_loss"]]
            ax.plot(data["bucket_start"], [math.nan if y is None else y for y in ys], label=s["label"],
                    linestyle="--" if s["kind"] == "recompute" else "-", linewidth=1.2)
        ax.axvline(data["cache"], color="gray", linestyle=":", linewidth=1)
        ax.set_title(data["title"], fontsize=10)
        ax.set_xlabel(f"position in the stream (buckets of {data['bucket']})")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in axes[:, 0]:
        ax.set_ylabel("perplexity" if ppl else "loss (nats/token)")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def fmt(x, digits=4):
    return "—" if x is None else f"{x:.{digits}f}"


def table(runs):
    """Markdown: file, setting, loss within the cache, past it, and past it minus the best recompute's."""
    lines = ["| model | setting | loss t < cache | loss t >= cache | vs recompute |", "|---|---|---|---|---|"]
    for data in runs:
        ceiling = [s["mean_loss_past_cache"] for s in data["settings"]
                   if s["kind"] == "recompute" and s["mean_loss_past_cache"] is not None]
        best = min(ceiling) if ceiling else None
        for s in data["settings"]:
            past = s["mean_loss_past_cache"]
            delta = None if best is None or past is None else past - best
            lines.append(f"| {data['title']} | {s['label']} | {fmt(s['mean_loss_within_cache'])} | {fmt(past)} | "
                         f"{'—' if delta is None else f'{delta:+.4f}'} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description="Plot ./infer -eval-stream ... -json FILE: loss against position.")
    ap.add_argument("json", nargs="+", help="JSON written by ./infer -eval-stream GLOB -stream S,W -json FILE")
    ap.add_argument("-o", dest="out", help="the PNG (default: FILE.png for one file, stream.png for several)")
    ap.add_argument("--ppl", action="store_true", help="perplexity instead of loss")
    ap.add_argument("--merge", type=int, default=1, help="average every K buckets of the JSON into one (default 1)")
    ap.add_argument("--table", help="also write a markdown table to this file")
    a = ap.parse_args(argv)
    if a.merge < 1:
        fail(f"--merge {a.merge}: expected a positive number of buckets")
    runs = [load(p) for p in a.json]
    for data in runs:
        merge(data, a.merge)
    out = a.out or (os.path.splitext(a.json[0])[0] + ".png" if len(runs) == 1 else "stream.png")
    plot(runs, out, a.ppl)
    print(f"wrote {out}")
    if a.table:
        with open(a.table + ".tmp", "w") as f:
            f.write(table(runs))
        os.replace(a.table + ".tmp", a.table)
        print(f"wrote {a.table}")


if __name__ == "__main__":
    main()
