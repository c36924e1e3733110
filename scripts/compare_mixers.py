"""Train every mixer on the default data (the King James Bible, byte-level) with the same model
size, seed, data order and budget; report the val loss and the CPU training throughput.

    /usr/bin/python3 scripts/compare_mixers.py [--steps 400] [--out runs/mixers]

Writes the table into docs/MIXERS.md (between its two markers; the rest of the page stays) and, when matplotlib is installed, the val-loss curves to
docs/mixers_val_loss.png. Prepares datasets/kjv_bytes (byte-level) first if it is missing (Debian's bible-kjv).
"""
import argparse
import os
import re
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = "L=4,C=128,H=4,T=128,V=257"
VARIANTS = [  # name, descriptor keys
    ("softmax", ""),
    ("sigmoid, b = -ln n", "mixer=sigmoid"),
    ("sigmoid, b = 0", "mixer=sigmoid,bias=0"),
    ("sigmoid normalized (b = 0)", "mixer=sigmoid,bias=0,norm=1"),
    ("softmax + gate (elementwise G1)", "gate=elem"),
    ("sigmoid (b = -ln n) + gate", "mixer=sigmoid,gate=elem"),
    ("mLSTMexp", "mixer=mlstm,igate=exp,chunk=64"),
    ("mLSTMsig", "mixer=mlstm,igate=sig,chunk=64"),
]


def prepare_data():
    data = os.path.join(ROOT, "datasets", "kjv_bytes")
    if os.path.exists(os.path.join(data, "tokenizer.bin")):
        return data
    os.makedirs(data, exist_ok=True)
    text = os.path.join(data, "kjv.txt")
    with open(text, "w") as f:
        subprocess.run(["bible", "Gen1:1-Rev22:21"], stdout=f, check=True)
    subprocess.run([os.path.join(ROOT, "prepare"), "-o", data, "--bytes", "--val-frac", "0.05", text], check=True)
    return data


def train(name, keys, data, out, steps):
    run_dir = os.path.join(out, re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_"))
    descriptor = MODEL + ("," + keys if keys else "")
    cmd = [os.path.join(ROOT, "train_gpt2"), "-e", descriptor, "-i", f"{data}/*train*.bin", "-j",
           f"{data}/*val*.bin", "-o", run_dir, "-b", "16", "-t", "128", "-x", str(steps), "-l", "2e-3",
           "-u", "30", "-k", "cosine", "-q", "0.1", "-c", "0.1", "-v", "50", "-m", "20", "-s", "0", "-S", "1337"]
    print("$", " ".join(f'"{c}"' if "," in c or "*" in c else c for c in cmd), flush=True)
    stdout = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rates = [float(x) for x in re.findall(r"\| (\d+) tok/s", stdout)]
    log = open(os.path.join(run_dir, "main.log")).read()
    val = [(int(s), float(v)) for s, v in re.findall(r"s:(\d+) tel:([\d.]+)", log)]
    return dict(name=name, keys=keys or "(default)", val=val, tok_s=statistics.median(rates[5:]))


def plot(results, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot")
        return
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in results:
        steps, losses = zip(*r["val"])
        ax.plot(steps, losses, label=r["name"], marker="o", markersize=2)
    ax.set_xlabel("step (2048 tokens each)")
    ax.set_ylabel("val loss (nats/byte)")
    ax.set_ylim(top=min(3.0, ax.get_ylim()[1]))
    ax.set_title(f"Mixers on the King James Bible, {MODEL}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print("wrote", path)


def write_results(path, table):
    """Replaces the text between MIXERS.md's two markers with table; the page's other text stays."""
    start, end = "<!-- compare_mixers.py: results -->\n", "<!-- compare_mixers.py: end -->"
    with open(path) as f:
        page = f.read()
    if start not in page or end not in page:
        sys.exit(f"error: {path}: the markers {start.strip()} and {end} are gone; put them back around the results")
    head, rest = page.split(start, 1)
    with open(path, "w") as f:
        f.write(head + start + table + "\n" + end + rest.split(end, 1)[1])

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--out", default=os.path.join(ROOT, "runs", "mixers"))
    args = ap.parse_args()
    data = prepare_data()
    results = [train(name, keys, data, args.out, args.steps) for name, keys in VARIANTS]
    lines = [f"Model `{MODEL}`, B=16, T=128, {args.steps} steps ({args.steps * 2048} tokens), AdamW lr 2e-3 "
             "cosine to 2e-4, warmup 30, weight decay 0.1, seed 1337, same data order; val loss over "
             "20 batches of the held-out 5%. Command: `/usr/bin/python3 scripts/compare_mixers.py`.", "",
             "| mixer | descriptor keys | val loss | CPU tok/s |", "|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['name']} | `{r['keys']}` | {r['val'][-1][1]:.4f} | {r['tok_s']:.0f} |")
    table = "\n".join(lines)
    print(table)
    write_results(os.path.join(ROOT, "docs", "MIXERS.md"), table)
    plot(results, os.path.join(ROOT, "docs", "mixers_val_loss.png"))


if __name__ == "__main__":
    main()
