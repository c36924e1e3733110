"""Plots of one checkpoint's attention-sink analysis, the JSON that `./infer -sa GLOB -json FILE`
writes (docs/SINKS.md; the metric: docs/MODEL.md section 13).

    /usr/bin/python3 scripts/plot_sinks.py FILE.json [-o PREFIX]

Writes two images (PREFIX defaults to FILE without .json):
- PREFIX_alpha1.png: alpha_k of every (layer, head) as an annotated heatmap, k the JSON's key
  (Sink_k counts the cells above eps), titled with Sink_k and what the weights are;
- PREFIX_alpha.png: alpha_k over k = 1..T on a log axis, one line per layer (the mean over its
  heads) and a thin line per head, against uniform causal attention (dashed) and eps.
"""
import argparse
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

FIELDS = ("layers", "heads", "T", "k", "eps", "weights", "sink_percent", "alpha")


def fail(message):
    """One line on stderr, exit status 1."""
    sys.exit(f"plot_sinks.py: {message}")


def load(path):
    """The analysis as a dict, with alpha as a (layers, heads, T) array; fails with one line if
    the file is missing, is not JSON, or lacks a field the plots need."""
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        fail(f"{path}: no such file")
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        fail(f"{path}: not JSON ({e})")
    missing = [f for f in FIELDS if not isinstance(data, dict) or f not in data]
    if missing:
        fail(f"{path}: missing field(s) {', '.join(missing)}; expected the JSON of ./infer -sa GLOB -json FILE")
    alpha = np.asarray(data["alpha"], dtype=float)
    if alpha.shape != (data["layers"], data["heads"], data["T"]) or not 1 <= data["k"] <= data["T"]:
        fail(f"{path}: alpha has shape {alpha.shape}, expected (layers, heads, T) = "
             f"({data['layers']}, {data['heads']}, {data['T']}) with 1 <= k <= T")
    data["alpha"] = alpha
    return data


def uniform_alpha(T):
    """alpha_k of uniform causal attention (A_tk = 1/t): 1/(T-k+1) * sum_{t=k..T} 1/t, k = 1..T."""
    t = np.arange(1, T + 1)
    suffix = np.cumsum((1.0 / t)[::-1])[::-1]
    return suffix / (T - t + 1)


def plot_heatmap(data, path):
    """alpha_k per layer (rows) and head (columns), each cell annotated with its value."""
    k, a = data["k"], data["alpha"][:, :, data["k"] - 1]
    L, H = a.shape
    fig, ax = plt.subplots(figsize=(1.2 + 0.8 * H, 1.6 + 0.6 * L))
    im = ax.imshow(a, cmap="viridis", vmin=0.0, vmax=max(1.0, a.max()), aspect="auto")
    for l in range(L):
        for h in range(H):
            ax.text(h, l, f"{a[l, h]:.2f}", ha="center", va="center", fontsize=8,
                    color="black" if a[l, h] > 0.6 else "white")
    ax.set_xticks(range(H))
    ax.set_yticks(range(L))
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    fig.colorbar(im, ax=ax, label=f"alpha_{k}")
    ax.set_title(f"{data.get('model', '')}\nalpha_{k}: Sink_{k} = {data['sink_percent']:.1f}% (eps {data['eps']})\n"
                 f"{data['weights']}", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_curves(data, path):
    """alpha_k over k: per layer the mean over heads (thick) and each head (thin), with the
    uniform-attention reference and the threshold eps."""
    alpha, T = data["alpha"], data["T"]
    k = np.arange(1, T + 1)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for l, color in zip(range(alpha.shape[0]), plt.cm.viridis(np.linspace(0, 0.9, alpha.shape[0]))):
        for head in alpha[l]:
            ax.plot(k, head, color=color, linewidth=0.5, alpha=0.4)
        ax.plot(k, alpha[l].mean(axis=0), color=color, linewidth=2, label=f"layer {l} (mean over heads)")
    ax.plot(k, uniform_alpha(T), "k--", linewidth=1.2, label="uniform causal attention")
    ax.axhline(data["eps"], color="red", linestyle=":", linewidth=1.2, label=f"eps = {data['eps']}")
    ax.set_yscale("log")
    ax.set_xlabel("key position k")
    ax.set_ylabel("alpha_k (mean weight received)")
    ax.set_title(f"{data.get('model', '')}: {data['weights']}", fontsize=8)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Plot the attention-sink analysis of ./infer -sa ... -json FILE.")
    ap.add_argument("json", help="the JSON written by ./infer -sa GLOB -json FILE")
    ap.add_argument("-o", dest="prefix", help="output prefix (default: FILE without .json)")
    args = ap.parse_args(argv)
    data = load(args.json)
    prefix = args.prefix or (args.json[:-5] if args.json.endswith(".json") else args.json)
    if os.path.dirname(prefix):
        os.makedirs(os.path.dirname(prefix), exist_ok=True)
    for suffix, plot in (("_alpha1.png", plot_heatmap), ("_alpha.png", plot_curves)):
        plot(data, prefix + suffix)
        print("wrote", prefix + suffix)


if __name__ == "__main__":
    main()
