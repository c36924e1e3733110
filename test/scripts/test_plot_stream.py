"""scripts/plot_stream.py: the JSON of ./infer -eval-stream drawn (one panel per file) and tabled
with the values written in it; one-line errors."""
import json
import os
import subprocess
import sys

import matplotlib.image

from clib import ROOT
from timeouts import HANG_TIMEOUT

PLOT = os.path.join(ROOT, "scripts", "plot_stream.py")


def run(*args, ok=True):
    p = subprocess.run([sys.executable, PLOT, *[str(a) for a in args]], capture_output=True, text=True,
                       timeout=HANG_TIMEOUT)
    if ok:
        assert p.returncode == 0, f"{args} failed:\n{p.stdout}\n{p.stderr}"
    return p


def setting(name, kind, within, past, buckets):
    return dict(name=name, label=name.replace("_", " "), kind=kind, sinks=0, window=8, mean_loss=past,
                mean_loss_within_cache=within, mean_loss_past_cache=past, seconds=1.0, tokens_per_s=10.0,
                bucket_loss=buckets)


def write_eval(path, window_past):
    data = dict(checkpoint="m.bin", model="L=1", data="val.bin", tokens=32, bos_token=None, max_seq_len=8, cache=8,
                bucket=8, bucket_start=[0, 8, 16, 24],
                settings=[setting("window", "stream", 2.0, window_past, [2.0, 5.0, None, 5.0]),
                          setting("sinks_4", "stream", 2.0, 1.75, [2.0, 1.5, 2.0, 1.75]),
                          setting("recompute", "recompute", 2.0, 1.5, [2.0, 1.5, 1.5, 1.5])])
    path.write_text(json.dumps(data))
    return path


def test_plot_and_table(tmp_path):
    a = write_eval(tmp_path / "softmax.json", 5.0)
    b = write_eval(tmp_path / "sink_k.json", 1.25)
    run(a, b, "-o", tmp_path / "all.png", "--table", tmp_path / "t.md", "--ppl", "--merge", 2)
    image = matplotlib.image.imread(tmp_path / "all.png")
    assert image.shape[1] > image.shape[0] > 100, image.shape   # two panels side by side
    rows = (tmp_path / "t.md").read_text().splitlines()
    assert "| softmax | window | 2.0000 | 5.0000 | +3.5000 |" in rows, rows
    assert "| sink_k | window | 2.0000 | 1.2500 | -0.2500 |" in rows, rows
    assert "| softmax | recompute | 2.0000 | 1.5000 | +0.0000 |" in rows, rows
    run(a)
    assert (tmp_path / "softmax.png").exists()


def test_merge_averages_buckets_by_their_positions():
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    import plot_stream
    data = dict(tokens=20, bucket=8, bucket_start=[0, 8, 16],
                settings=[dict(bucket_loss=[1.0, 2.0, 4.0]), dict(bucket_loss=[None, 3.0, None])])
    plot_stream.merge(data, 2)
    assert data["bucket_start"] == [0, 16] and data["bucket"] == 16, data
    assert abs(data["settings"][0]["bucket_loss"][0] - 1.5) < 1e-12 and data["settings"][0]["bucket_loss"][1] == 4.0
    assert data["settings"][1]["bucket_loss"] == [3.0, None], data


def test_one_line_errors(tmp_path):
    (tmp_path / "bad.json").write_text("{")
    (tmp_path / "sinks.json").write_text(json.dumps({"layers": 1}))
    for path, text in [(tmp_path / "none.json", "no such file"), (tmp_path / "bad.json", "not JSON"),
                       (tmp_path / "sinks.json", "missing field")]:
        p = run(path, ok=False)
        assert p.returncode == 1 and p.stderr.startswith("error: ") and p.stderr.count("\n") == 1, p.stderr
        assert text in p.stderr, p.stderr
