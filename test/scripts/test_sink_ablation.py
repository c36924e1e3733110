"""scripts/sink_ablation.py and scripts/plot_sinks.py: the log parser and the report on main.log
files written here with known values; a tiny ablation end to end through ./train_gpt2 (trains,
skips what is finished, resumes an interrupted run bit for bit); plot_sinks.py on ./infer's JSON;
one-line errors."""
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from clib import ROOT
from files import byte_corpus, write_byte_tokenizer, write_shard
from timeouts import HANG_TIMEOUT

sys.path.insert(0, os.path.join(ROOT, "scripts"))
import plot_sinks  # noqa: E402
import sink_ablation as sa  # noqa: E402

PYTHON = sys.executable
ABLATION = os.path.join(ROOT, "scripts", "sink_ablation.py")
PLOT = os.path.join(ROOT, "scripts", "plot_sinks.py")
TINY = {"base": "L=1,C=16,H=2,T=16,V=257,bos=1", "batch": 2, "seq": 16, "tokens": 192, "warmup": 2,
        "val_batches": 2, "sink_seqs": 4, "sink_T": 8, "sink_probes": "auto", "every": 2,
        "variants": {"softmax": "", "softmax + KV bias": "sink=kv"}}   # 6 steps of 32 tokens


def run(*args, ok=True):
    p = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=HANG_TIMEOUT,
                       env=dict(os.environ, OMP_NUM_THREADS="1"))
    if ok:
        assert p.returncode == 0, f"{args} failed:\n{p.stdout}\n{p.stderr}"
    return p


def one_line_error(p, text):
    assert p.returncode != 0 and p.stderr.count("\n") == 1 and text in p.stderr, p.stderr


def config(tmp_path, out, **settings):
    """A --config file of the tiny settings (updated by `settings`) and the parsed Config."""
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(dict(TINY, **settings)))
    argv = ["--config", str(path), "--out", str(out), "--data", str(tmp_path)]
    return path, sa.make_config(sa.parse_args(argv))


# ---------------------------------------------------------------- parser and report

def write_run(run_dir, log_lines, final=True, rates=(), threads=2, steps=6):
    """A run directory: main.log, train.out with step lines at `rates` tok/s, cmd.txt, and an
    (empty) final checkpoint file when `final`."""
    os.makedirs(run_dir)
    with open(os.path.join(run_dir, "main.log"), "w") as f:
        f.writelines(line + "\n" for line in log_lines)
    with open(os.path.join(run_dir, "train.out"), "w") as f:
        f.write("train: 1000 tokens in 1 shards (x), BOS windows\n")
        f.writelines(f"step {i + 1:4d}/{steps} | loss 5.0 | lr 1e-3 | norm 1.0 | 1.0 ms | {r} tok/s\n"
                     for i, r in enumerate(rates))
    with open(os.path.join(run_dir, "cmd.txt"), "w") as f:
        f.write(f"OMP_NUM_THREADS={threads} ./train_gpt2 -e X\n")
    if final:
        open(os.path.join(run_dir, f"model_{steps:08d}.bin"), "w").close()


def sink_log(values, fattn=0.1, mass=2.0, slot=None):
    """main.log lines with a val loss and a sink line at steps 0, 2, 4, 6 of the given Sink values."""
    lines = []
    for i, v in enumerate(values):
        lines += [f"s:{2 * i} tel:{5 - i}", f"s:{2 * i} sink:{v:.4f} fattn:{fattn:.6f} mass:{mass:.3f}"
                  + (f" slot:{slot:.4f}" if slot is not None else "")]
    return lines + [f"s:{2 * (len(values) - 1)} checkpoint"]


def test_report_from_logs(tmp_path):
    out = tmp_path / "out"
    variants = {"softmax": "", "kv": "sink=kv", "gate": {"keys": "gate=elem", "flags": "-l 0.01"}, "never": "x=1"}
    _, cfg = config(tmp_path, out, variants=variants)
    assert cfg.steps("softmax") == 6 and cfg.tokens_per_step == 32 and cfg.seeds == [1337]
    write_run(out / "softmax" / "seed1337", [
        "s:0 tel:5.5", "s:0 sink:0.0000 fattn:0.200000", "s:1 trl:5.4 lr:1e-3 norm:1.0",
        "s:2 tel:4.0", "s:2 sink:25.0000 fattn:0.300000 mass:3.000", "s:2 checkpoint",
        "s:2 tel:4.0", "s:2 sink:25.0000 fattn:0.300000 mass:3.000",     # repeated by a resume
        "s:4 tel:3.5", "s:4 sink:50.0000 fattn:0.400000 mass:4.000",
        "s:6 tel:3.25", "s:6 sink:75.0000 fattn:0.500000 mass:5.000", "s:6 checkpoint"], rates=(100, 300, 200))
    write_run(out / "kv" / "seed1337", ["s:0 tel:5.5", "s:0 sink:0.0000 fattn:0.2 slot:10.0000",
                                        "s:6 tel:3.0", "s:6 sink:0.0000 fattn:0.125 slot:87.5000"], threads=1)
    write_run(out / "gate" / "seed1337", ["s:0 tel:5.5", "s:0 sink:0.0000 fattn:0.2", "s:2 tel:4.5",
                                          "s:2 sink:12.5000 fattn:0.25", "s:2 checkpoint",
                                          "s:3 trl:4.4 lr:1e-3 norm:1.0"], final=False)
    with open(out / "gate" / "seed1337" / "main.log", "a") as f:
        f.write("s:4 tel:4.1")                                              # cut off mid-write: ignored

    results = sa.collect(cfg)
    (soft,), (kv,), (gate,), (never,) = (results[n] for n in ("softmax", "kv", "gate", "never"))
    assert soft.finished and kv.finished and not gate.finished and not never.finished
    assert soft.curves["sink"] == {0: 0.0, 2: 25.0, 4: 50.0, 6: 75.0} and soft.curves["mass"][6] == 5.0
    assert soft.final("sink") == 50.0 and soft.final("tel") == (4.0 + 3.5 + 3.25) / 3   # the last 3 analyses
    assert soft.onset() == 2 and kv.onset() is None and never.onset() is None
    assert gate.last_step == 2 and gate.curves["tel"] == {0: 5.5, 2: 4.5}
    assert soft.tok_s == 200 and soft.threads == "2" and kv.tok_s is None and kv.threads == "1"
    assert soft.train_line == "train: 1000 tokens in 1 shards (x), BOS windows"
    x, mean, lo, hi = sa.band(cfg, [soft], "sink")
    assert x == [0, 64, 128, 192] and mean == lo == hi == [0.0, 25.0, 50.0, 75.0]
    assert cfg.command("gate", 1337)[-10:-8] == ["-l", "0.01"]          # the variant's flags after the settings'

    sa.write_report(cfg, results, "python3 sink_ablation.py --test")
    text = (out / "results.md").read_text()
    rows = {row.split(" | ")[0].strip("| "): row for row in text.splitlines() if row.startswith("| ")}
    assert rows["softmax"] == ("| softmax | `(base)` | - | 1 of 1 | 3.5833 | 50.0 | - | 0.4000 | 4.0 | 200 |")
    assert rows["kv"] == "| kv | `sink=kv` | - | 1 of 1 | 4.2500 | 0.0 | 48.8 | 0.1625 | - | - |"
    assert rows["gate"] == ("| gate | `gate=elem` | -l 0.01 | 0 of 1 (at step 2 of 6) | 5.0000 | 6.2 | - | 0.2250 "
                            "| - | - |")
    assert rows["never"] == "| never | `x=1` | - | not run | - | - | - | - | - | - |"
    assert "## Seeds" not in text                                        # one seed: the variants table is it
    seeds = sa.seeds_table(cfg, results).splitlines()
    assert seeds[0] == "| variant | seed 1337 | Sink_1 sustained from (1337) |"
    assert seeds[3] == "| kv | 0.0 / 0.163 (Sink* 48.8) | never |"
    assert seeds[4] == "| gate | 6.2 / 0.225 (to step 2) | 0.0M |" and seeds[5] == "| never | - | - |"
    claim = rows["Softmax forms a first-token sink on enough distinct tokens (BOS windows), and when"]
    assert "Sink_1 50.0 %" in claim and "sustained from 0.0M" in claim and claim.endswith("| reproduced |")
    assert "python3 sink_ablation.py --test" in text and "BOS windows" in text
    for png in ("sink_core.png", "val_loss_core.png", "first_token_core.png", "massive_core.png"):
        assert (out / png).stat().st_size > 1000


def test_seeds_spread_and_claims(tmp_path):
    """Three seeds per variant: the spread, and the verdicts of claims whose ranges do or do not overlap."""
    out = tmp_path / "out"
    names = ["softmax", "softmax no BOS", "sigmoid b=0", "sigmoid normalized", "softmax wd 0.5"]
    _, cfg = config(tmp_path, out, variants={n: "" for n in names})
    cfg = sa.Config(**{**cfg.__dict__, "seeds": [1, 2, 3]})
    sinks = {"softmax": [[0, 2, 4, 6], [0, 0, 3, 5], [0, 4, 4, 4]],          # finals 4, 2.67, 4
             "softmax no BOS": [[0, 0, 0, 0], [0, 0, 0, 1.5], [0, 0, 0, 0]],
             "sigmoid b=0": [[0, 0, 0.5, 0]] * 3,
             "sigmoid normalized": [[0, 10, 20, 30], [0, 10, 20, 30], [0, 0.5, 0.5, 0.5]],
             "softmax wd 0.5": [[0, 3, 4, 5]] * 3}
    for name, per_seed in sinks.items():
        for seed, values in zip(cfg.seeds, per_seed):
            write_run(out / sa.slug(name) / f"seed{seed}", sink_log(values))
    results = sa.collect(cfg)
    assert sa.spread(sa.finals(results["softmax"], "sink"), ".2f") == "3.56 [2.67, 4.00]"
    assert [r.onset() for r in results["softmax"]] == [2, 4, 2]
    table = {c.text: c.judge(results) for c in sa.claims(cfg.tokens_per_step)}
    assert table["Softmax forms a first-token sink on enough distinct tokens (BOS windows), and when"][1] == "reproduced"
    assert table["Without a constant first token the sink forms later or not at all"][1] == \
        "softmax no BOS: lower on Sink_1, reproduced"
    assert table["Sigmoid attention without normalization forms no sink"][1] == "reproduced"
    assert table["Sigmoid attention with row normalization forms one"][1] == "sink: in 2 of 3 seeds; against sigmoid b=0: higher"
    assert table["More weight decay strengthens the sink"][1] == "softmax wd 0.5: overlapping on Sink_1, not distinguishable"
    assert sa.compare([5, 6], [1, 2]) == "higher" and sa.compare([0, 0], [0, 0]) == "equal"
    assert sa.present([0.5, 2.0]) == "in 1 of 2 seeds" and sa.present([]) is None
    sa.write_report(cfg, results, "x")
    text = (out / "results.md").read_text()
    assert "| softmax | `(base)` | - | 3 of 3 | " in text and "3.6 [2.7, 4.0]" in text and "seeds 1, 2, 3" in text
    assert "## Seeds" in text
    # the per-seed table: each run's final Sink_1 / first-token attention, then the onsets in M tokens
    onset = [f"{s * cfg.tokens_per_step / 1e6:.1f}M" for s in (2, 4, 2)]
    assert "| variant | seed 1 | seed 2 | seed 3 | Sink_1 sustained from (1, 2, 3) |" in text
    assert f"| softmax | 4.0 / 0.100 | 2.7 / 0.100 | 4.0 / 0.100 | {', '.join(onset)} |" in text
    assert "| sigmoid b=0 | 0.2 / 0.100 | 0.2 / 0.100 | 0.2 / 0.100 | never, never, never |" in text


def test_without_any_sink_the_first_token_attention_decides(tmp_path):
    out = tmp_path / "out"
    _, cfg = config(tmp_path, out, variants={"softmax": "", "softmax 1/4 text": "", "softmax lr 6e-3": ""})
    cfg = sa.Config(**{**cfg.__dict__, "seeds": [1, 2]})
    fattn = {"softmax": (0.08, 0.09), "softmax 1/4 text": (0.05, 0.06), "softmax lr 6e-3": (0.085, 0.2)}
    for name, values in fattn.items():
        for seed, f in zip(cfg.seeds, values):
            write_run(out / sa.slug(name) / f"seed{seed}", sink_log([0, 0, 0.5, 0], fattn=f))
    results = sa.collect(cfg)
    table = {c.text: c.judge(results) for c in sa.claims(cfg.tokens_per_step)}
    assert table["Fewer distinct tokens weaken the sink"][1] == \
        "softmax 1/4 text: lower on first-token attention, reproduced"
    assert table["A larger learning rate strengthens the sink"][1] == \
        "softmax lr 6e-3: overlapping on first-token attention, not distinguishable"
    assert table["Softmax forms a first-token sink on enough distinct tokens (BOS windows), and when"][1] == \
        "not reproduced"


def test_settings_and_their_errors(tmp_path):
    full = sa.select(sa.VARIANTS, None, "full")
    core = sa.select(sa.VARIANTS, None, "core")
    assert len(core) == 7 and set(core) < set(full) and all(v.suite == "core" for v in core.values())
    assert list(sa.select(sa.VARIANTS, "softmax_k_bias, gate elem")) == ["softmax + K bias", "gate elem"]
    with pytest.raises(SystemExit, match="unknown variant 'nope'"):
        sa.select(sa.VARIANTS, "softmax,nope")
    bad = tmp_path / "bad.json"
    bad.write_text('{"lr": 1e-3, "steps": 5}')
    with pytest.raises(SystemExit, match="unknown key.*steps"):
        sa.make_config(sa.parse_args(["--config", str(bad)]))
    bad.write_text('{"variants": {"a": {"keys": "", "color": 1}}}')
    with pytest.raises(SystemExit, match="variant 'a' must be"):
        sa.make_config(sa.parse_args(["--config", str(bad)]))
    path, cfg = config(tmp_path, tmp_path / "o", lr=1e-3)
    assert cfg.lr == 1e-3 and sa.make_config(sa.parse_args(["--config", str(path), "--lr", "2e-3"])).lr == 2e-3
    assert sa.make_config(sa.parse_args(["--config", str(path), "--seeds", "3"])).seeds == [1337, 1338, 1339]
    with pytest.raises(SystemExit, match="nothing to report"):
        sa.main(["--report-only", "--out", str(tmp_path / "none")])
    with pytest.raises(SystemExit, match="at least 1"):
        sa.parse_args(["--seeds", "0"])


# ---------------------------------------------------------------- end to end

@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Byte shards of documents separated by EOT (256), as bos=1 needs."""
    d = tmp_path_factory.mktemp("docs")
    write_shard(d / "train_000000.bin", byte_corpus(20000, seed=1))
    write_shard(d / "val_000000.bin", byte_corpus(4000, seed=2))
    write_byte_tokenizer(d / "tokenizer.bin")
    return d


@pytest.fixture(scope="module")
def trained(data):
    """The tiny ablation, trained once; returns (the runner's arguments, out dir, its stdout)."""
    (data / "tiny.json").write_text(json.dumps(TINY))
    out = data / "out"
    args = [PYTHON, ABLATION, "--config", data / "tiny.json", "--data", data, "--out", out, "--cores", 1]
    return args, out, run(*args).stdout


def test_trains_reports_skips_and_resumes(trained):
    args, out, stdout = trained
    assert stdout.count("$ OMP_NUM_THREADS=1 ") == 2 and "-sa 2" in stdout
    for slug in ("softmax", "softmax_kv_bias"):
        log = (out / slug / "seed1337" / "main.log").read_text()
        assert re.findall(r"s:(\d+) sink:", log) == ["0", "2", "4", "6"], log
        assert " mass:" in log
        assert (out / slug / "seed1337" / "model_00000006.bin").exists() and (out / slug / "seed1337" / "cmd.txt").exists()
    assert " slot:" in (out / "softmax_kv_bias" / "seed1337" / "main.log").read_text()
    text = (out / "results.md").read_text()
    assert "| softmax | `(base)` | - | 1 of 1 |" in text and "| softmax + KV bias | `sink=kv` | - | 1 of 1 |" in text
    assert all((out / png).exists() for png in ("sink_core.png", "val_loss_core.png", "first_token_core.png"))

    again = run(*args).stdout                          # everything is finished: nothing retrained
    assert again.count("skipping") == 2 and "$ " not in again

    run_dir = out / "softmax" / "seed1337"             # interrupt after step 5: back to the step-4 checkpoint
    final = (run_dir / "model_00000006.bin").read_bytes()
    (run_dir / "model_00000006.bin").unlink()
    (run_dir / "state_00000006.bin").unlink()
    log = (run_dir / "main.log").read_text()
    (run_dir / "main.log").write_text(log[:log.index("s:5 ")] + "s:5 trl:9.0 lr:1e-3 norm:1.0\n")
    resumed = run(*args).stdout
    assert "softmax: resuming at step 4" in resumed and "-y 1" in resumed and resumed.count("$ ") == 1
    assert (run_dir / "model_00000006.bin").read_bytes() == final
    assert "s:5 trl:9.0" not in (run_dir / "main.log").read_text()
    assert sa.parse_log(run_dir / "main.log")["sink"].keys() == {0, 2, 4, 6}
    assert "| softmax | `(base)` | - | 1 of 1 |" in (out / "results.md").read_text()


def test_other_settings_in_a_run_dir_are_refused(trained):
    args, out, _ = trained
    p = run(*args, "--lr", "1e-3", "--only", "softmax", ok=False)
    assert p.returncode == 1 and "holds a run with other settings" in p.stderr and "$ " not in p.stdout


def test_a_failing_variant_does_not_stop_the_others(data, tmp_path):
    """Two at a time on 1 thread each: the broken one ends first, the other finishes."""
    path, _ = config(tmp_path, tmp_path / "o", variants={"broken": "mixer=nope", "softmax": ""})
    p = run(PYTHON, ABLATION, "--config", path, "--data", data, "--out", tmp_path / "o", "--parallel", 2,
            "--cores", 2, ok=False)
    assert p.returncode == 1 and "failed: broken" in p.stderr and "2 at a time with 1 threads each" in p.stdout
    assert "broken: FAILED (exit status 1)" in p.stdout and "mixer" in p.stdout.split("FAILED")[1]
    assert "softmax: finished" in p.stdout and (tmp_path / "o" / "softmax" / "seed1337" / "model_00000006.bin").exists()
    assert "| broken | `mixer=nope` | - | not run |" in (tmp_path / "o" / "results.md").read_text()


def test_runner_errors(data, tmp_path):
    path, _ = config(tmp_path, tmp_path / "o")
    base = [PYTHON, ABLATION, "--config", path, "--out", tmp_path / "o"]
    one_line_error(run(*base, "--data", tmp_path / "none", ok=False), "no such directory")
    one_line_error(run(*base, "--data", data, "--only", "nope", ok=False), "unknown variant 'nope'")
    p = subprocess.run([str(a) for a in base + ["--data", data]], capture_output=True, text=True, timeout=HANG_TIMEOUT,
                       env=dict(os.environ, ATTNLAB_TRAIN=str(tmp_path / "train_gpt2")))
    one_line_error(p, "make train_gpt2")


# ---------------------------------------------------------------- plot_sinks.py

def test_plot_sinks_on_infer_json(trained, tmp_path):
    _, out, _ = trained
    path = tmp_path / "kv.json"
    run(os.path.join(ROOT, "infer"), "-e", out / "softmax_kv_bias" / "seed1337" / "model_00000006.bin",
        "-sa", out.parent / "val_*.bin", "-sn", 4, "-st", 8, "-json", path)
    p = run(PYTHON, PLOT, path)
    for png in ("kv_alpha1.png", "kv_alpha.png"):
        assert (tmp_path / png).stat().st_size > 1000 and png in p.stdout
    run(PYTHON, PLOT, path, "-o", tmp_path / "sub" / "x")
    assert (tmp_path / "sub" / "x_alpha.png").exists()

    broken = json.loads(path.read_text())
    del broken["alpha"]
    (tmp_path / "broken.json").write_text(json.dumps(broken))
    one_line_error(run(PYTHON, PLOT, tmp_path / "broken.json", ok=False), "missing field(s) alpha")
    one_line_error(run(PYTHON, PLOT, tmp_path / "none.json", ok=False), "no such file")


def test_uniform_reference():
    """alpha_k of A_tk = 1/t, against the sum written out; alpha_1 at T = 64 is about 0.074."""
    T = 10
    want = [sum(1 / t for t in range(k, T + 1)) / (T - k + 1) for k in range(1, T + 1)]
    assert np.allclose(plot_sinks.uniform_alpha(T), want)
    assert abs(plot_sinks.uniform_alpha(64)[0] - 0.0744) < 1e-3 and plot_sinks.uniform_alpha(64)[-1] == 1 / 64
