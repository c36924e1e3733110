"""A training run's progress as one picture: train and val loss, learning rate, gradient norm,
tokens/s and, when the log has it, the attention-sink metric, for one run or several side by side.

    /usr/bin/python3 scripts/plot_run.py DIR... [-o PNG] [--tokens-per-step N]

Each DIR is the -o folder of ./train_gpt2 (or its main.log). What is read:
- DIR/main.log (required): `s:STEP trl:LOSS lr:LR norm:NORM` per step, `s:STEP tel:VAL_LOSS`,
  `s:STEP sink:PCT fattn:F [slot:PCT]`. A step logged twice (a resumed run) keeps its later value.
- DIR/train.out (optional): the trainer's stdout saved beside main.log, e.g.
  `./train_gpt2 ... -o DIR | tee DIR/train.out` (scripts/sink_ablation.py writes it too). Its
  `batch: ... N tokens/step` line gives the tokens per step, its step lines
  (`step N/M | ... | X ms | Y tok/s`) the throughput; main.log has neither.
- `--tokens-per-step N` gives the tokens per step (-d, or B x T without -d) for runs without train.out.

The x axis is the step, with the tokens seen on a second axis on top when every run has the same
tokens per step; runs with different tokens per step are plotted against tokens; without any
tokens per step, against steps only. Panels: loss (train thin, val with markers), lr, gradient
norm, tok/s (only when a train.out has step lines), Sink_k % (only when a main.log has sink lines;
the slot's Sink* dashed). Writes PNG (default: DIR/run.png for one run, run.png for several).
"""
import argparse
import os
import re
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import EngFormatter  # noqa: E402

LOG_KEYS = ("trl", "tel", "lr", "norm", "sink", "fattn", "slot")
BATCH_LINE = re.compile(r"^batch: .*?(\d+) tokens/step")
STEP_LINE = re.compile(r"^step\s+(\d+)/\d+ \|.*\|\s*([\d.]+) ms \|\s*([\d.]+) tok/s")


def fail(message):
    """One line on stderr, exit status 1."""
    sys.exit(f"error: {message}")


def parse_log(path):
    """main.log as curves {key: {step: value}} for LOG_KEYS; a line cut off mid-write is ignored."""
    curves = {key: {} for key in LOG_KEYS}
    with open(path, errors="replace") as f:
        for line in f:
            fields = line.split()
            if not line.endswith("\n") or not fields or not re.fullmatch(r"s:\d+", fields[0]):
                continue
            step = int(fields[0][2:])
            for item in fields[1:]:
                key, _, value = item.partition(":")
                if key in curves:
                    try:
                        curves[key][step] = float(value)
                    except ValueError:
                        pass
    return curves


def parse_out(path):
    """The trainer's stdout: (tokens per step or None, {step: tok/s})."""
    tokens_per_step, rates = None, {}
    if not os.path.isfile(path):
        return tokens_per_step, rates
    with open(path, errors="replace") as f:
        for line in f:
            if m := BATCH_LINE.match(line):
                tokens_per_step = int(m.group(1))
            elif m := STEP_LINE.match(line):
                rates[int(m.group(1))] = float(m.group(3))
    return tokens_per_step, rates


def load_run(arg, tokens_per_step):
    """One run: {name, curves (with "toks"), tokens_per_step} from a run folder or its main.log."""
    log = arg if os.path.isfile(arg) else os.path.join(arg, "main.log")
    if not os.path.isfile(log):
        fail(f"{arg}: no main.log (give the -o folder of ./train_gpt2, or its main.log)")
    curves = parse_log(log)
    if not curves["trl"]:
        fail(f"{log}: no step lines (s:STEP trl:LOSS ...): not a train_gpt2 main.log, or no step finished yet")
    folder = os.path.dirname(os.path.abspath(log))
    out_tps, curves["toks"] = parse_out(os.path.join(folder, "train.out"))
    return dict(name=os.path.basename(folder), folder=folder, curves=curves,
                tokens_per_step=tokens_per_step or out_tps)


def unique_names(runs):
    """Run names: the folder's name, or its path where two runs share a name."""
    names = [r["name"] for r in runs]
    for r in runs:
        if names.count(r["name"]) > 1:
            r["name"] = os.path.relpath(r["folder"])


def x_mode(runs):
    """'step+tokens' (one tokens per step for all), 'tokens' (different ones), or 'step' (unknown)."""
    tps = {r["tokens_per_step"] for r in runs}
    if None in tps:
        return "step"
    return "step+tokens" if len(tps) == 1 else "tokens"


def panels(runs):
    """The panels to draw: (y label, [(curve key, legend text)])."""
    out = [("loss", [("trl", "train"), ("tel", "val")]), ("learning rate", [("lr", "")]),
           ("gradient norm", [("norm", "")])]
    if any(r["curves"]["toks"] for r in runs):
        out.append(("tokens/s", [("toks", "")]))
    if any(r["curves"]["sink"] for r in runs):
        out.append(("Sink_k (% of heads)", [("sink", "sink"), ("slot", "slot")]))
    return out


STYLES = {"trl": dict(lw=0.8, alpha=0.55), "tel": dict(lw=1.6, marker="o", ms=3.5), "slot": dict(lw=1.2, ls="--"),
          "sink": dict(lw=1.4, marker="o", ms=3)}


def draw_panel(ax, runs, ylabel, series, mode):
    """One metric of every run against the x axis of `mode`."""
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, run in enumerate(runs):
        scale = run["tokens_per_step"] if mode == "tokens" else 1
        for key, what in series:
            curve = run["curves"][key]
            if not curve:
                continue
            steps = sorted(curve)
            label = " ".join(s for s in (run["name"] if len(runs) > 1 else "", what) if s)
            ax.plot([s * scale for s in steps], [curve[s] for s in steps], color=colors[i % len(colors)],
                    label=label or None, **STYLES.get(key, dict(lw=1.2)))
    ax.set_ylabel(ylabel)
    if series[0][0] in ("lr", "toks", "sink"):   # rates and percentages: from zero
        ax.set_ylim(bottom=0, top=max(ax.get_ylim()[1], 1.0 if series[0][0] == "sink" else 0))
    ax.set_xlabel("tokens" if mode == "tokens" else "step")
    ax.grid(alpha=0.3)
    if mode == "tokens":
        ax.xaxis.set_major_formatter(EngFormatter())
    if mode == "step+tokens":
        tps = runs[0]["tokens_per_step"]
        top = ax.secondary_xaxis("top", functions=(lambda s: s * tps, lambda t: t / tps))
        top.xaxis.set_major_formatter(EngFormatter())
        top.set_xlabel("tokens", fontsize=8)
        top.tick_params(labelsize=8)
    if ax.get_legend_handles_labels()[1]:
        ax.legend(fontsize=8)


def summary(run):
    """One line per run: its last step, train loss and val loss."""
    c = run["curves"]
    last = max(c["trl"])
    val = f", val loss {c['tel'][max(c['tel'])]:.4f} at step {max(c['tel'])}" if c["tel"] else ""
    return f"{run['name']}: {last} steps, train loss {c['trl'][last]:.4f}{val}"


def plot(runs, path):
    """The figure: loss over the full width on top, the other panels two to a row below."""
    mode = x_mode(runs)
    rows = panels(runs)
    nrows = 1 + len(rows) // 2
    fig = plt.figure(figsize=(11, 3.4 * nrows + 0.6))
    grid = fig.add_gridspec(nrows, 2)
    for k, (ylabel, series) in enumerate(rows):
        ax = fig.add_subplot(grid[0, :] if k == 0 else grid[1 + (k - 1) // 2, (k - 1) % 2])
        draw_panel(ax, runs, ylabel, series, mode)
    if mode == "tokens":
        title = ", ".join(f"{r['name']} ({r['tokens_per_step']:,} tokens/step)" for r in runs)
    else:
        tps = f", {runs[0]['tokens_per_step']:,} tokens/step" if mode == "step+tokens" else ""
        title = ", ".join(r["name"] for r in runs) + tps
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)
    return mode


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", metavar="DIR", help="run folder (./train_gpt2 -o) or its main.log")
    p.add_argument("-o", "--out", help="PNG to write (default: DIR/run.png for one run, run.png for several)")
    p.add_argument("--tokens-per-step", type=int, metavar="N",
                   help="tokens per optimizer step, for runs without train.out (overrides it)")
    args = p.parse_args(argv)
    if args.tokens_per_step is not None and args.tokens_per_step <= 0:
        p.error("--tokens-per-step must be positive")
    return args


def main(argv=None):
    args = parse_args(argv)
    runs = [load_run(arg, args.tokens_per_step) for arg in args.runs]
    unique_names(runs)
    out = args.out or (os.path.join(runs[0]["folder"], "run.png") if len(runs) == 1 else "run.png")
    mode = plot(runs, out)
    for run in runs:
        print(summary(run))
    note = {"step": " (steps only: no tokens per step; see --tokens-per-step)", "tokens": " (against tokens)"}
    print(f"wrote {out}{note.get(mode, '')}")


if __name__ == "__main__":
    main()
