"""scripts/plot_run.py: main.log and train.out parsed to the values written in them; the x axis and
the panels chosen from what the runs have; one PNG for one run or several; a real ./train_gpt2 run
end to end; one-line errors."""
import os
import subprocess
import sys

import matplotlib.image
import pytest

from clib import ROOT
from files import byte_corpus, write_byte_tokenizer, write_shard
from timeouts import HANG_TIMEOUT

sys.path.insert(0, os.path.join(ROOT, "scripts"))
import plot_run  # noqa: E402

PYTHON = sys.executable
PLOT = os.path.join(ROOT, "scripts", "plot_run.py")
TRAIN = os.path.join(ROOT, "train_gpt2")


def run(*args, ok=True, cwd=None):
    p = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=HANG_TIMEOUT, cwd=cwd,
                       env=dict(os.environ, OMP_NUM_THREADS="1"))
    if ok:
        assert p.returncode == 0, f"{args} failed:\n{p.stdout}\n{p.stderr}"
    return p


def one_line_error(p, text):
    assert p.returncode == 1 and p.stderr.startswith("error: ") and p.stderr.count("\n") == 1, p.stderr
    assert text in p.stderr, p.stderr


def write_run(folder, steps=6, val_every=2, tokens_per_step=None, sink=False, rate=1000.0):
    """A run folder with a main.log of known values (train loss 5 - step/10, lr step * 1e-4, norm
    1 + step/100, val loss 5.05 - step/10) and, with tokens_per_step, a train.out."""
    os.makedirs(folder)
    lines = []
    for s in range(steps + 1):
        if s % val_every == 0:
            lines.append(f"s:{s} tel:{5.05 - s / 10:.6f}")
            if sink:
                lines.append(f"s:{s} sink:{10.0 * s:.4f} fattn:0.1{s} slot:{50.0 + s:.4f}")
        if s > 0:
            lines.append(f"s:{s} trl:{5 - s / 10:.6f} lr:{s * 1e-4:.6e} norm:{1 + s / 100:.4f}")
    lines.append(f"s:{steps} checkpoint")
    with open(os.path.join(folder, "main.log"), "w") as f:
        f.writelines(line + "\n" for line in lines)
    if tokens_per_step:
        with open(os.path.join(folder, "train.out"), "w") as f:
            f.write(f"model: L=1,C=16,H=2,T=16,V=257, 8000 parameters\n"
                    f"batch: B=2 T=16, {tokens_per_step} tokens/step (1 micro-batches), {steps} steps, lr 0.001\n")
            f.writelines(f"step {s:4d}/{steps} | loss {5 - s / 10:.6f} | lr 1.00e-04 | norm 1.0000 | 1.5 ms | "
                         f"{rate + s:.0f} tok/s\n" for s in range(1, steps + 1))
    return str(folder)


def test_parse_log(tmp_path):
    """Every key at its step; a step logged twice (resume) keeps the later value; a last line cut
    off mid-write and other lines are ignored."""
    path = tmp_path / "main.log"
    path.write_text("s:0 tel:7.5\ns:1 trl:7.0 lr:1.000000e-04 norm:2.5\ns:2 trl:6.5 lr:2e-4 norm:2.0\n"
                    "s:2 checkpoint\ns:2 sink:12.5000 fattn:0.300000 slot:80.0000\n"
                    "garbage line\ns:2 trl:6.25 lr:2e-4 norm:1.75\ns:2 tel:6.4\ns:3 trl:6.1")
    c = plot_run.parse_log(str(path))
    assert c["trl"] == {1: 7.0, 2: 6.25} and c["tel"] == {0: 7.5, 2: 6.4}
    assert c["lr"] == {1: 1e-4, 2: 2e-4} and c["norm"] == {1: 2.5, 2: 1.75}
    assert c["sink"] == {2: 12.5} and c["fattn"] == {2: 0.3} and c["slot"] == {2: 80.0}


def test_parse_out(tmp_path):
    folder = write_run(tmp_path / "r", steps=4, tokens_per_step=4096)
    tps, rates = plot_run.parse_out(os.path.join(folder, "train.out"))
    assert tps == 4096 and rates == {1: 1001.0, 2: 1002.0, 3: 1003.0, 4: 1004.0}
    assert plot_run.parse_out(str(tmp_path / "none.out")) == (None, {})


def labels(runs):
    return [ylabel for ylabel, _ in plot_run.panels(runs)]


def test_axis_and_panels(tmp_path):
    full = plot_run.load_run(write_run(tmp_path / "a", tokens_per_step=64, sink=True), None)
    bare = plot_run.load_run(write_run(tmp_path / "b"), None)
    other = plot_run.load_run(write_run(tmp_path / "c", tokens_per_step=128), None)
    assert full["tokens_per_step"] == 64 and bare["tokens_per_step"] is None
    assert plot_run.x_mode([full]) == "step+tokens" and plot_run.x_mode([full, bare]) == "step"
    assert plot_run.x_mode([full, other]) == "tokens"
    assert labels([full]) == ["loss", "learning rate", "gradient norm", "tokens/s", "Sink_k (% of heads)"]
    assert labels([bare]) == ["loss", "learning rate", "gradient norm"]
    assert labels([bare, other]) == ["loss", "learning rate", "gradient norm", "tokens/s"]
    forced = plot_run.load_run(str(tmp_path / "c" / "main.log"), 1000)   # the flag overrides train.out
    assert forced["tokens_per_step"] == 1000 and forced["name"] == "c"


def test_one_png(tmp_path):
    a = write_run(tmp_path / "runs" / "a", tokens_per_step=64, sink=True)
    p = run(PYTHON, PLOT, a)
    assert "a: 6 steps, train loss 4.4000, val loss 4.4500 at step 6" in p.stdout
    png = os.path.join(a, "run.png")
    assert p.stdout.strip().endswith(f"wrote {png}") and not os.path.exists(png + ".tmp.png")
    image = matplotlib.image.imread(png)
    assert image.shape[0] > 600 and image.shape[1] > 1000 and image[..., :3].std() > 0.05
    write_run(tmp_path / "runs" / "b", steps=10)
    p = run(PYTHON, PLOT, a, tmp_path / "runs" / "b", cwd=tmp_path)
    assert "(steps only: no tokens per step" in p.stdout and (tmp_path / "run.png").exists()
    p = run(PYTHON, PLOT, a, tmp_path / "runs" / "b", "--tokens-per-step", 64, "-o", tmp_path / "x.png")
    assert p.stdout.strip().endswith(f"wrote {tmp_path / 'x.png'}") and (tmp_path / "x.png").exists()


def test_real_run(tmp_path):
    """./train_gpt2 with -o and its stdout in train.out: every curve is read, the PNG written."""
    tokens = byte_corpus(6000)
    write_shard(tmp_path / "train_000000.bin", tokens[:5000])
    write_shard(tmp_path / "val_000000.bin", tokens[5000:])
    write_byte_tokenizer(tmp_path / "tokenizer.bin")
    out = tmp_path / "run"
    out.mkdir()
    p = run(TRAIN, "-e", "L=1,C=16,H=2,T=16,V=257", "-i", tmp_path / "train_*.bin", "-j", tmp_path / "val_*.bin",
            "-o", out, "-b", 2, "-t", 16, "-x", 6, "-v", 2, "-m", 2, "-s", 0, "-sa", 3, "-sn", 2, "-st", 8)
    (out / "train.out").write_text(p.stdout)
    r = plot_run.load_run(str(out), None)
    c = r["curves"]
    assert r["tokens_per_step"] == 32 and sorted(c["trl"]) == [1, 2, 3, 4, 5, 6] == sorted(c["toks"])
    assert sorted(c["tel"]) == [0, 2, 4, 6] and sorted(c["sink"]) == [0, 3, 6] and not c["slot"]
    assert all(v > 0 for v in c["toks"].values()) and all(0 < v < 10 for v in c["trl"].values())
    run(PYTHON, PLOT, out)
    assert (out / "run.png").exists()


@pytest.mark.parametrize("case", ["missing", "empty log", "foreign log"])
def test_errors(tmp_path, case):
    folder = tmp_path / "run"
    if case != "missing":
        folder.mkdir()
        (folder / "main.log").write_text("" if case == "empty log" else "hello\nworld\n")
    text = "no main.log" if case == "missing" else "no step lines"
    one_line_error(run(PYTHON, PLOT, folder, ok=False), text)
    assert not (folder / "run.png").exists()
