"""infer -stream and -eval-stream end to end (docs/STREAMING.md): sampling 10 x maxT tokens with a
process whose memory stays the same once the cache is full, bad S,W refused with one line, and
-eval-stream's losses per position against the PyTorch reference (scripts/ref/ref_gpt2.py) computing the
streaming cache and the recomputed windows itself."""
import json
import math
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from clib import ROOT
from files import write_shard
from timeouts import HANG_TIMEOUT

sys.path.insert(0, os.path.join(ROOT, "scripts", "ref"))
import ref_gpt2  # noqa: E402

INFER = os.environ.get("ATTNLAB_INFER", os.path.join(ROOT, "infer"))
# infercu on the CUDA emulation (make test_cuda_emu PRECISION=FP32 builds it); its test skips when it is not built
INFERCU_EMU = os.path.join(ROOT, "build", "emu", "FP32", "infercu")
TINY = dict(maxT=24, V=67, Vp=128, L=2, H=4, C=32)


def run(*args, ok=True, env=None):
    p = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=HANG_TIMEOUT, env=env)
    if ok:
        assert p.returncode == 0, f"{args} failed:\n{p.stdout}\n{p.stderr}"
    return p


def one_line_error(p, *needles):
    assert p.returncode != 0, f"expected a failure:\n{p.stdout}\n{p.stderr}"
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), f"expected one error line, got:\n{p.stderr}"
    for n in needles:
        assert str(n) in lines[0], f"'{n}' not in: {lines[0]}"


def write_model(path, **settings):
    cfg = dict(TINY, **settings)
    ref_gpt2.write_checkpoint(str(path), cfg, ref_gpt2.random_params(cfg, seed=4, scale=0.3))
    return path


def memory_line(stderr):
    m = re.search(r"stream memory (\w+) from token (\d+) to (\d+)", stderr)
    assert m, f"no memory line in:\n{stderr}"
    return m.group(1), int(m.group(2)), int(m.group(3))


@pytest.mark.parametrize("program", ["infer", "infercu"])
def test_stream_samples_ten_times_max_t_with_constant_memory(tmp_path, program):
    exe = INFER if program == "infer" else INFERCU_EMU
    if not os.path.exists(exe):
        pytest.skip(f"{exe} not built (make test_cuda_emu PRECISION=FP32)")
    ckpt = write_model(tmp_path / "model.bin", rope=1, sink="k")
    n = 10000   # 417 x maxT
    p = run(exe, "-e", ckpt, "-pi", "1,2,3", "-stream", "4,20", "-n", n, "-temp", 1, "-seed", 5)
    tokens = [int(t) for t in re.findall(r"\d+", p.stdout)]   # without a tokenizer: the ids
    assert len(tokens) == 3 + n and all(0 <= t < TINY["V"] for t in tokens), p.stdout[:200]
    state, first, last = memory_line(p.stderr)
    assert state == "constant" and first == 4 + 20 + 1 and last == 3 + n - 1, p.stderr


def test_eval_stream_scores_far_past_max_t(tmp_path):
    ckpt = write_model(tmp_path / "model.bin", alibi=1)
    write_shard(tmp_path / "val.bin", np.random.default_rng(1).integers(0, TINY["V"], 3000))
    p = run(INFER, "-e", ckpt, "-eval-stream", tmp_path / "val.bin", "-stream", "2,10", "-n", 2500, "-es", "stream:2")
    assert "2 sinks + window (W=10)" in p.stdout, p.stdout


@pytest.mark.parametrize("text,needle", [
    ("4", "expected S,W"), ("4,", "non-negative whole numbers"), ("a,5", "non-negative whole numbers"),
    ("-1,5", "non-negative whole numbers"), ("0,0", "S + W at most the model's maxT"),
    ("20,5", "S + W at most the model's maxT"), ("4,20,1", "expected S,W"),
])
def test_bad_stream_sizes_are_refused_with_one_line(tmp_path, text, needle):
    ckpt = write_model(tmp_path / "model.bin", rope=1)
    one_line_error(run(INFER, "-e", ckpt, "-stream", text, "-n", 5, ok=False), "-stream", text, needle)


def test_learned_positions_refused_and_eval_stream_needs_sizes(tmp_path):
    wpe = write_model(tmp_path / "wpe.bin")
    one_line_error(run(INFER, "-e", wpe, "-stream", "2,8", ok=False), "learned absolute positions", "rope=1 or alibi=1")
    rope = write_model(tmp_path / "rope.bin", rope=1)
    one_line_error(run(INFER, "-e", rope, "-eval-stream", tmp_path / "x.bin", ok=False), "-eval-stream needs -stream")
    write_shard(tmp_path / "short.bin", np.arange(50) % TINY["V"])
    one_line_error(run(INFER, "-e", rope, "-eval-stream", tmp_path / "short.bin", "-stream", "2,8", "-n", 100, ok=False),
                   "short.bin", "fewer than")
    one_line_error(run(INFER, "-e", rope, "-eval-stream", tmp_path / "short.bin", "-stream", "2,8", "-es", "stream:10",
                       ok=False), "-es", "no window")


def test_mlstm_streams_past_max_t_and_says_so(tmp_path):
    ckpt = write_model(tmp_path / "mlstm.bin", mixer="mlstm", gate="elem")
    p = run(INFER, "-e", ckpt, "-pi", "1", "-stream", "0,24", "-n", 100, "-temp", 0)
    assert "recurrent state" in p.stderr and len(re.findall(r"\d+", p.stdout)) == 101, p.stderr


def reference_losses(ref, stream, N, sinks, K, recompute):
    """Per-position loss of the stream's next token: the streaming cache of sinks + (K - sinks) rows,
    or a fresh forward over the first `sinks` tokens and the last K - sinks up to each position."""
    tokens = torch.as_tensor(stream).long()
    targets = tokens[1:N + 1]
    if not recompute:
        logits = ref_gpt2.stream_logits(ref, stream[:N], sinks, K - sinks)[:, :ref.cfg["V"]]
        return torch.nn.functional.cross_entropy(logits, targets, reduction="none")
    losses = []
    for t in range(N):
        window = tokens[:t + 1] if t < K else torch.cat([tokens[:sinks], tokens[t + 1 - (K - sinks):t + 1]])
        logits = ref(window[None])[0][0, -1, :ref.cfg["V"]]
        losses.append(torch.nn.functional.cross_entropy(logits[None], targets[t:t + 1]))
    return torch.stack(losses)


@pytest.mark.parametrize("settings", [dict(rope=1, bos=2), dict(alibi=1, mixer="sigmoid", bias=-1.0),
                                      dict(rope=1, sink="kv", qknorm=1, ln="rms", linbias=0, tie=0, gelu="erf")])
def test_eval_stream_matches_the_reference(tmp_path, settings):
    ckpt = write_model(tmp_path / "model.bin", **settings)
    data = np.random.default_rng(2).integers(0, TINY["V"], 200)
    write_shard(tmp_path / "val_000.bin", data[:70])   # two shards read as one stream
    write_shard(tmp_path / "val_001.bin", data[70:])
    N, S, W = 90, 3, 9
    out = tmp_path / "stream.json"
    p = run(INFER, "-e", ckpt, "-eval-stream", tmp_path / "val_*.bin", "-stream", f"{S},{W}", "-n", N, "-eb", 1,
            "-es", f"stream:0,stream:{S},recompute:0,recompute:{S}", "-b", 7, "-json", out)
    result = json.loads(out.read_text())
    bos = settings.get("bos", 0) > 0
    stream = np.concatenate([[TINY["V"] - 1], data]) if bos else data   # a model trained with a BOS reads one first
    assert result["tokens"] == N and result["cache"] == S + W and result["bos_token"] == (TINY["V"] - 1 if bos else None)
    rcfg, params, _ = ref_gpt2.read_checkpoint(str(ckpt))
    ref = ref_gpt2.GPT2(rcfg, params)
    names = {"window": (0, 0), f"sinks_{S}": (S, 0), "recompute": (0, 1), f"recompute_sinks_{S}": (S, 1)}
    assert sorted(s["name"] for s in result["settings"]) == sorted(names), result["settings"]
    for s in result["settings"]:
        sinks, recompute = names[s["name"]]
        with torch.no_grad():
            want = reference_losses(ref, stream, N, sinks, S + W, recompute).numpy()
        got = np.array(s["bucket_loss"])
        err = np.abs(got - want).max()
        assert err < 1e-4, f"{settings} {s['name']}: per-position loss vs the reference, max abs diff {err:.2e}"
        assert math.isclose(s["mean_loss"], want.mean(), abs_tol=1e-5), f"{settings} {s['name']} mean loss"
        assert s["tokens_per_s"] > 0 and "bucket_loss" in s
    assert "window only (W=12)" in p.stdout and f"{S} sinks + window (W={W})" in p.stdout, p.stdout
