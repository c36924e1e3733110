"""End to end through the programs: training lowers the loss, checkpoints are complete and
resumable bit for bit, infer samples the same tokens with and without the KV cache, and bad
input gets one line naming the file and the problem with a non-zero exit."""
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

sys.path.insert(0, os.path.join(ROOT, "scripts", "ref"))
import ref_gpt2  # noqa: E402

# ATTNLAB_TRAIN / ATTNLAB_INFER: other builds of the programs, e.g. the sanitizer build (scripts/check/sanitizer_run.sh)
TRAIN = os.environ.get("ATTNLAB_TRAIN", os.path.join(ROOT, "train_gpt2"))
INFER = os.environ.get("ATTNLAB_INFER", os.path.join(ROOT, "infer"))
TINY = "L=2,C=32,H=2,T=32,V=257"


def run(*args, ok=True):
    p = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=HANG_TIMEOUT)
    if ok:
        assert p.returncode == 0, f"{args} failed:\n{p.stdout}\n{p.stderr}"
    return p


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    write_shard(d / "tiny_train_000.bin", byte_corpus(40000, seed=1))
    write_shard(d / "tiny_val_000.bin", byte_corpus(5000, seed=2))
    write_byte_tokenizer(d / "tokenizer.bin")
    return d


def train_args(data, out, steps, *extra):
    return [TRAIN, "-e", TINY, "-i", data / "*train*.bin", "-j", data / "*val*.bin", "-o", out, "-b", 4, "-t", 32,
            "-x", steps, "-l", 3e-3, "-v", 10, "-m", 5, "-s", 0, *extra]


def test_training_lowers_val_loss_and_infer_samples(data, tmp_path):
    out = tmp_path / "runs" / "nested"   # -o creates missing parents
    p = run(*train_args(data, out, 40))
    log = (out / "main.log").read_text().splitlines()
    val = [float(l.split("tel:")[1]) for l in log if "tel:" in l]
    assert val[-1] < val[0] - 1.0, f"val loss did not fall: {val}"
    assert "tok/s" in p.stdout and (out / "model_00000040.bin").exists() and (out / "state_00000040.bin").exists()
    assert not list(out.glob("*.tmp")), "temporary files left behind"
    ckpt = out / "model_00000040.bin"
    cached = run(INFER, "-e", ckpt, "-tk", data / "tokenizer.bin", "-n", 24, "-temp", 0)
    nocache = run(INFER, "-e", ckpt, "-tk", data / "tokenizer.bin", "-n", 24, "-temp", 0, "-nocache", 1)
    assert cached.stdout == nocache.stdout and len(cached.stdout) > 10
    prompted = run(INFER, "-e", ckpt, "-tk", data / "tokenizer.bin", "-p", "the lord", "-n", 10, "-temp", 0)
    assert prompted.stdout.startswith("<|endoftext|>the lord") and len(prompted.stdout) > 30
    one_line_error(run(INFER, "-e", ckpt, "-p", "the", ok=False), "-p needs a tokenizer")
    sampled = run(INFER, "-e", ckpt, "-pi", "116,104,101", "-n", 20, "-topk", 5, "-topp", 0.9, "-seed", 3)
    assert sampled.stdout.startswith("116 104 101 ")
    ev = run(INFER, "-e", ckpt, "-eval", data / "*val*.bin", "-b", 2, "-t", 32)
    assert abs(float(ev.stdout.split()[2]) - val[-1]) < 0.3


# the sink paper's block (docs/MODEL.md 15), trained with weight decay on every parameter as the paper
PAPER_BLOCK = "ln=rms,linbias=0,tie=0,gelu=erf,rope=1"


@pytest.mark.parametrize("extra", [(), ("-e", TINY + "," + PAPER_BLOCK, "-c", 0.1, "-ca", 1),
                                   ("-e", TINY + ",ln=rms,linbias=0,tie=0,mlp=swiglu,rope=1", "-c", 0.1, "-ca", 1)],
                         ids=["gpt2", "paper block", "paper block swiglu"])
def test_resume_is_bit_identical(data, tmp_path, extra):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    run(*train_args(data, straight, 12, "-n", 6, *extra))
    run(*train_args(data, resumed, 12, "-n", 6, *extra))
    (resumed / "model_00000012.bin").unlink()
    (resumed / "state_00000012.bin").unlink()
    p = run(*train_args(data, resumed, 12, "-n", 6, "-y", 1, *extra))
    assert "resumed" in p.stdout
    assert (straight / "model_00000012.bin").read_bytes() == (resumed / "model_00000012.bin").read_bytes()
    assert (straight / "state_00000012.bin").read_bytes() == (resumed / "state_00000012.bin").read_bytes()


def test_gradient_accumulation_equals_big_batch(data, tmp_path):
    """-d 256 with B=4,T=32 (2 micro-batches) takes the same steps as B=8 in one: same loss curve."""
    small, big = tmp_path / "small", tmp_path / "big"
    run(*train_args(data, small, 3, "-d", 256, "-sh", 0, "-v", 100))
    args = train_args(data, big, 3, "-sh", 0, "-v", 100)
    args[args.index("-b") + 1] = 8
    run(*args)
    ls = [float(l.split("trl:")[1].split()[0]) for l in (small / "main.log").read_text().splitlines() if "trl:" in l]
    lb = [float(l.split("trl:")[1].split()[0]) for l in (big / "main.log").read_text().splitlines() if "trl:" in l]
    assert len(ls) == 3 and np.allclose(ls, lb, rtol=1e-5), f"{ls} vs {lb}"


def one_line_error(p, *needles):
    assert p.returncode != 0, "expected a failure"
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), f"expected one error line, got:\n{p.stderr}"
    for n in needles:
        assert str(n) in lines[0], f"'{n}' not in: {lines[0]}"


def test_truncated_shard(data, tmp_path):
    bad = tmp_path / "bad_train.bin"
    write_shard(bad, byte_corpus(3000), count=5000)
    one_line_error(run(TRAIN, "-e", TINY, "-i", bad, "-j", bad, ok=False), bad, "truncated")


def test_wrong_shard_magic(data, tmp_path):
    bad = tmp_path / "bad_train.bin"
    write_shard(bad, byte_corpus(3000), magic=12345)
    one_line_error(run(TRAIN, "-e", TINY, "-i", bad, "-j", bad, ok=False), bad, "magic")


def test_shard_header_slot_set(data, tmp_path):
    """Slots 3-255 of a shard's header are zero in the format (llm.c's writers too)."""
    bad = tmp_path / "bad_train.bin"
    write_shard(bad, byte_corpus(3000))
    raw = bytearray(bad.read_bytes())
    raw[4 * 200:4 * 201] = (7).to_bytes(4, "little")
    bad.write_bytes(bytes(raw))
    one_line_error(run(TRAIN, "-e", TINY, "-i", bad, "-j", bad, ok=False), bad, "slot 200 holds 7")


def test_token_id_outside_vocabulary(data, tmp_path):
    bad = tmp_path / "bad_train.bin"
    toks = byte_corpus(3000)
    toks[100] = 300
    write_shard(bad, toks)
    one_line_error(run(TRAIN, "-e", TINY, "-i", bad, "-j", bad, "-b", 4, "-t", 32, "-x", 2, "-sh", 0, ok=False),
                   bad, "300", "vocabulary")


def test_sequence_longer_than_model(data):
    one_line_error(run(TRAIN, "-e", TINY, "-i", data / "*train*.bin", "-t", 64, ok=False), "-t 64", "maximum 32")


def test_foreign_checkpoint_version(data, tmp_path):
    out = tmp_path / "run"
    run(*train_args(data, out, 1))
    ckpt = (out / "model_00000001.bin").read_bytes()
    bad = tmp_path / "v4.bin"
    bad.write_bytes(ckpt[:4] + (4).to_bytes(4, "little") + ckpt[8:])
    one_line_error(run(INFER, "-e", bad, ok=False), bad, "version 4")
    cut = tmp_path / "cut.bin"
    cut.write_bytes(ckpt[:-100])
    one_line_error(run(INFER, "-e", cut, ok=False), cut, "truncated")
    foreign = tmp_path / "foreign.bin"
    foreign.write_bytes(b"PK\x03\x04" + ckpt[4:])
    one_line_error(run(INFER, "-e", foreign, ok=False), foreign, "magic")


def test_missing_files(data, tmp_path):
    one_line_error(run(INFER, "-e", tmp_path / "nope.bin", ok=False), "nope.bin")
    one_line_error(run(TRAIN, "-e", TINY, "-i", data / "*train*.bin", "-j", tmp_path / "none*.bin", ok=False),
                   "none*.bin", "-v 0")
    one_line_error(run(TRAIN, "-e", TINY, "-i", tmp_path / "nothing*.bin", ok=False), "nothing*.bin")


def test_bad_descriptor_and_tokenizer_mismatch(data, tmp_path):
    one_line_error(run(TRAIN, "-e", "L=2,C=30,H=4,T=32,V=257", ok=False), "divisible by the heads")
    one_line_error(run(TRAIN, "-e", "L=2,C=32,H=2,Q=3", ok=False), "unknown key 'Q'")
    out = tmp_path / "run"
    run(*train_args(data, out, 1))
    tok = tmp_path / "tok.bin"
    tok.write_bytes(b"\0" * 2000)
    one_line_error(run(INFER, "-e", out / "model_00000001.bin", "-tk", tok, ok=False), tok, "magic")


def test_nan_loss_stops_the_run(data, tmp_path):
    p = run(*train_args(data, tmp_path / "nan", 5, "-l", 1e30, "-gc", 0), ok=False)
    one_line_error(p, "diverged")


@pytest.mark.parametrize("settings", ["", "mixer=sigmoid,rope=1", "mixer=sigmoid,bias=0,norm=1,gate=head",
                                      "gate=elem,qknorm=1,hybrid=1,layerscale=1", "mixer=mlstm,chunk=8",
                                      "mixer=mlstm,igate=sig", "mixer=sigmoid,alibi=1", "sink=kv,rope=1",
                                      "sink=logit", "sink=one,alibi=1", PAPER_BLOCK,
                                      PAPER_BLOCK + ",mixer=sigmoid,gate=elem",
                                      "ln=rms,linbias=0,tie=0,mlp=swiglu,rope=1,sink=kv",
                                      "ln=rms,linbias=0,tie=0,gelu=erf,mixer=mlstm,chunk=8",
                                      "ln=rms,mlp=swiglu,hidden=40,qknorm=1,hybrid=1,layerscale=1,alibi=1"])
def test_every_mixer_trains_and_decodes_the_same_with_and_without_cache(data, tmp_path, settings):
    """The checkpoint carries the mixer: infer needs no flags, and the cached (KV or recurrent state)
    decode gives the same greedy tokens as the full forward."""
    out = tmp_path / "run"
    p = run(TRAIN, "-e", TINY + ("," + settings if settings else ""), "-i", data / "*train*.bin", "-j",
            data / "*val*.bin", "-o", out, "-b", 4, "-t", 32, "-x", 15, "-l", 3e-3, "-v", 15, "-m", 2, "-s", 0)
    losses = [float(l.split("trl:")[1].split()[0]) for l in (out / "main.log").read_text().splitlines() if "trl:" in l]
    assert losses[-1] < losses[0], f"{settings}: loss did not fall: {losses}"
    ckpt = out / "model_00000015.bin"
    cached = run(INFER, "-e", ckpt, "-n", 28, "-temp", 0, "-pi", "116,104")
    nocache = run(INFER, "-e", ckpt, "-n", 28, "-temp", 0, "-pi", "116,104", "-nocache", 1)
    assert cached.stdout == nocache.stdout, f"{settings}:\n{cached.stdout}\n{nocache.stdout}"


@pytest.mark.parametrize("settings,message", [
    ("mixer=flash", "unknown mixer 'flash'"),
    ("mixer=sigmoid,bias=abc", "bias=abc is not a number"),
    ("mixer=mlstm,chunk=0", "chunk=0 is out of range [1, 1048576]"),
    ("mixer=mlstm,chunk=-3", "chunk=-3 is out of range"),
    ("gate=wide", "unknown gate 'wide' (known: none head elem)"),
    ("H=3", "C must be divisible by the heads H"),
    ("rope=2", "rope=2 is out of range [0, 1]"),
    ("norm=1", "norm=1 applies to mixer=sigmoid only"),
    ("mixer=mlstm,rope=1", "rope applies to the attention mixers, not mlstm"),
    ("mixer=mlstm,gate=head", "gate must be elem"),
    ("bias=-2", "bias applies to mixer=sigmoid only"),
    ("igate=sig", "igate applies to mixer=mlstm only"),
    ("chunk=32", "chunk applies to mixer=mlstm only"),
    ("V=70000", "V=70000 is out of range [1, 65536]"),
    ("rope=1,alibi=1", "alibi and rope are two position encodings"),
    ("mixer=mlstm,alibi=1", "alibi applies to the attention mixers, not mlstm"),
    ("mixer=sigmoid,sink=k", "sink applies to mixer=softmax only"),
    ("sink=q", "unknown sink 'q' (known: none k kv logit one)"),
    ("ln=batch", "unknown ln 'batch' (known: layer rms)"),
    ("linbias=no", "unknown linbias 'no' (known: 1 0)"),
    ("tie=2", "unknown tie '2' (known: 1 0)"),
    ("gelu=exact", "unknown gelu 'exact' (known: tanh erf)"),
    ("mlp=geglu", "unknown mlp 'geglu' (known: gelu swiglu)"),
    ("hidden=0", "hidden=0 is out of range [1, 1048576]"),
    ("mlp=swiglu,gelu=erf", "gelu applies to mlp=gelu only"),
    ("bos=2", "unknown bos '2' (known: 0 1 window)"),
    ("T=1,bos=window", "bos=window needs T >= 2"),
])
def test_bad_mixer_settings(settings, message):
    one_line_error(run(TRAIN, "-e", TINY + "," + settings, ok=False), message)


def test_descriptor_help_lists_every_key():
    out = run(TRAIN, "-e", "help").stdout
    for key in ["L", "C", "H", "T", "V", "Vp", "mixer", "bias", "norm", "gate", "rope", "qknorm", "hybrid",
                "layerscale", "igate", "alibi", "chunk", "sink", "bos", "ln", "linbias", "tie", "gelu", "mlp",
                "hidden"]:
        assert re.search(rf"^  {key} ", out, re.M), f"-e help does not list '{key}':\n{out}"


@pytest.mark.parametrize("settings", ["", "mixer=sigmoid,gate=head", "mixer=sigmoid,bias=0,norm=1",
                                      "mixer=mlstm,igate=sig,chunk=8", "rope=1,qknorm=1,hybrid=1,layerscale=1,Vp=512",
                                      "alibi=1,sink=kv,bos=1", PAPER_BLOCK, "mlp=swiglu,linbias=0",
                                      "mlp=swiglu,hidden=64", "gelu=erf,hidden=100,tie=0",
                                      "rope=1,bos=window"])
def test_model_line_is_a_descriptor_of_the_same_model(data, tmp_path, settings):
    """The model line printed at start, fed back to -e, builds the same model (same checkpoint header)."""
    first = run(*train_args(data, tmp_path / "a", 1, "-e", TINY + ("," + settings if settings else "")))
    keys = re.search(r"^model: (\S+), \d+ parameters", first.stdout, re.M).group(1)
    run(*train_args(data, tmp_path / "b", 1, "-e", keys))
    header = [np.fromfile(tmp_path / d / "model_00000001.bin", dtype=np.int32, count=256) for d in "ab"]
    assert (header[0] == header[1]).all(), f"{settings}: '{keys}' describes another model"


def run_init(data, out, descriptor):
    """The checkpoint of the init: one step with learning rate 0 and no weight decay."""
    run(TRAIN, "-e", descriptor, "-i", data / "*train*.bin", "-j", data / "*val*.bin", "-o", out, "-b", 2, "-t", 32,
        "-x", 1, "-l", 0, "-k", "constant", "-v", 0, "-s", 0, "-sh", 0)
    return out / "model_00000001.bin"


def test_weight_decay_on_every_parameter(data, tmp_path):
    """-ca 1: -c decays every parameter. After one AdamW step from the same init and batch, the 2-D
    tensors are bit for bit those of -ca 0, and every other tensor (norm weights, biases) is lower
    by lr * wd * its initial value (AdamW's decoupled decay: p -= lr (update + wd p))."""
    lr, wd = 1e-3, 0.5
    def step(name, decay_all):
        out = tmp_path / name
        run(TRAIN, "-e", TINY + ",tie=0", "-i", data / "*train*.bin", "-j", data / "*val*.bin", "-o", out, "-b", 2,
            "-t", 32, "-x", 1, "-l", lr, "-k", "constant", "-c", wd, "-ca", decay_all, "-v", 0, "-s", 0, "-sh", 0)
        return ref_gpt2.read_checkpoint(out / "model_00000001.bin")[1]
    cfg = dict(L=2, C=32, H=2, maxT=32, V=257, Vp=384, tie=0)
    init = ref_gpt2.read_checkpoint(run_init(data, tmp_path / "init", TINY + ",tie=0"))[1]
    two_d, every = step("two_d", 0), step("every", 1)
    for name, _ in ref_gpt2.tensor_shapes(cfg):
        if name in ref_gpt2.DECAYED:
            assert np.array_equal(two_d[name], every[name]), f"{name}: a 2-D tensor changed with -ca 1"
        else:
            expected = two_d[name] - lr * wd * init[name]
            err = float((every[name] - expected).abs().max())
            assert err < 1e-7, f"{name}: -ca 1 did not decay it by lr * wd * p ({err:.2e})"
    assert float((every["ln1w"] - two_d["ln1w"]).abs().min()) > 1e-4, "-ca 1 left the norm weights (init 1) alone"


def test_gradient_dump_and_run_comparison(data, tmp_path):
    """-dg writes the first step's loss and every gradient; scripts/check/compare_runs.py (the GPU check's
    CPU-vs-CUDA comparison) finds 1 and 2 threads equal, and a different seed different."""
    def train(name, threads, seed=7):
        out = tmp_path / name
        args = [TRAIN, "-e", TINY, "-i", data / "*train*.bin", "-b", 2, "-t", 32, "-x", 3, "-sh", 0, "-v", 0,
                "-s", 0, "-S", seed, "-o", out, "-dg", out / "grads.bin"]
        p = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=HANG_TIMEOUT,
                           env=dict(os.environ, OMP_NUM_THREADS=str(threads)))
        assert p.returncode == 0, p.stderr
        return out
    one, two, other = train("one", 1), train("two", 2), train("other", 2, seed=8)
    cfg = '{"L": 2, "C": 32, "H": 2, "maxT": 32, "V": 257, "Vp": 384}'
    n_params = sum(int(np.prod(shape)) for _, shape in ref_gpt2.tensor_shapes(json.loads(cfg)))
    assert os.path.getsize(one / "grads.bin") == 4 * (1 + n_params)
    script = os.path.join(ROOT, "scripts", "check", "compare_runs.py")
    same = subprocess.run(["/usr/bin/python3", script, str(one), str(two), cfg, "1e-5"], capture_output=True, text=True,
                          timeout=HANG_TIMEOUT)
    assert same.returncode == 0 and "0 failed" in same.stdout, same.stdout
    diff = subprocess.run(["/usr/bin/python3", script, str(one), str(other), cfg, "1e-5"], capture_output=True, text=True,
                          timeout=HANG_TIMEOUT)
    assert diff.returncode == 1 and "FAIL" in diff.stdout


def test_sink_analysis_in_train_and_infer(data, tmp_path):
    """train -sa logs the metric every N steps; infer -sa on the final checkpoint gives the same number
    (same code, same val shards), writes JSON, and leaves the checkpoint's bytes alone; bad input
    gets one line."""
    out = tmp_path / "run"
    run(*train_args(data, out, 6, "-e", TINY + ",bos=1,sink=k", "-sa", 3, "-sn", 8, "-st", 16))
    log = (out / "main.log").read_text()
    sinks = re.findall(r"s:(\d+) sink:([\d.]+) fattn:([\d.]+) mass:[\d.]+ slot:([\d.]+)", log)
    assert [int(s[0]) for s in sinks] == [0, 3, 6], sinks
    ckpt = out / "model_00000006.bin"
    before = ckpt.read_bytes()
    js = tmp_path / "sinks.json"
    p = run(INFER, "-e", ckpt, "-sa", data / "*val*.bin", "-sn", 8, "-st", 16, "-json", js)
    assert ckpt.read_bytes() == before, "the analysis changed the checkpoint"
    d = json.loads(js.read_text())
    assert (d["sequences"], d["T"], d["k"], d["eps"]) == (8, 16, 1, 0.3)
    assert np.array(d["alpha"]).shape == (2, 2, 16) and np.array(d["alpha_slot"]).shape == (2, 2)
    assert d["sink_percent"] == pytest.approx(float(sinks[-1][1]), abs=1e-3)
    assert d["slot_percent"] == pytest.approx(float(sinks[-1][3]), abs=1e-3)
    assert "Sink_1^0.3" in p.stdout and "Sink* (slot)" in p.stdout
    val = data / "*val*.bin"
    one_line_error(run(INFER, "-e", ckpt, "-sa", val, "-st", 33, ok=False), "T=33 must be in 2..32")
    one_line_error(run(INFER, "-e", ckpt, "-sa", val, "-sn", 100000, "-st", 16, ok=False), "document starts")
    one_line_error(run(INFER, "-e", data / "tokenizer.bin", "-sa", val, ok=False), "not a model checkpoint")
    one_line_error(run(INFER, "-e", ckpt, "-json", js, ok=False), "-json writes the sink analysis")


@pytest.fixture(scope="module")
def lines(tmp_path_factory):
    """Byte shards of text in lines (byte 10 ends each) and documents (EOT between), with the byte
    tokenizer; and the same shards in a folder without a tokenizer."""
    d = tmp_path_factory.mktemp("lines")
    gen = np.random.default_rng(5)
    words = [b"the ", b"lord ", b"said ", b"unto ", b"moses ", b"and ", b"it ", b"was ", b"good"]
    for name, n in (("train", 30000), ("val", 6000)):
        out = []
        while len(out) < n:
            out.extend(b"".join(words[i] for i in gen.integers(0, len(words), gen.integers(2, 12))) + b"\n")
            if gen.random() < 0.1:
                out.append(256)
        write_shard(d / f"lines_{name}_000.bin", out[:n])
    write_byte_tokenizer(d / "tokenizer.bin")
    bare = d / "bare"
    bare.mkdir()
    for f in d.glob("*.bin"):
        if f.name != "tokenizer.bin":
            (bare / f.name).write_bytes(f.read_bytes())
    return d


def test_bos_window_trains_evaluates_and_analyses_at_line_starts(lines, tmp_path):
    """bos=window end to end: the train line and main.log say what an epoch reads; train -sa and
    infer -sa (with the tokenizer's line ends, and without a tokenizer: byte 10) agree on the line
    starts; infer -eval reads BOS windows; bad input gets one line."""
    out = tmp_path / "run"
    args = [TRAIN, "-e", TINY + ",bos=window", "-i", lines / "*train*.bin", "-j", lines / "*val*.bin", "-o", out,
            "-b", 4, "-t", 32, "-x", 6, "-l", 3e-3, "-v", 3, "-m", 2, "-s", 0, "-sa", 6, "-sn", 8, "-st", 16]
    p = run(*args)
    windows = (30000 - 31) // 31 // 4 * 4    # (n - T + 1) / (T - 1) windows, whole batches
    assert f"BOS windows (bos=window): an epoch is {windows} sequences of T=32" in p.stdout, p.stdout
    log = (out / "main.log").read_text()
    assert log.startswith(f"data bos:window epoch_sequences:{windows} epoch_tokens:{windows * 32} "
                          f"distinct:{windows * 31} shard_tokens:30000\n"), log[:200]
    sink = float(re.findall(r"s:6 sink:([\d.]+) fattn:([\d.]+)", log)[0][1])
    ckpt = out / "model_00000006.bin"
    for tk in (["-tk", lines / "tokenizer.bin"], []):
        js = tmp_path / f"sinks{len(tk)}.json"
        q = run(INFER, "-e", ckpt, *tk, "-sa", lines / "*val*.bin", "-sn", 8, "-st", 16, "-json", js)
        d = json.loads(js.read_text())
        assert d["probes"].startswith("line starts") and d["probes_skipped"] == 0
        assert "probe set: line starts" in q.stdout
        assert d["first_token_attention"] == pytest.approx(sink, abs=1e-6), "train -sa and infer -sa differ"
    ev = run(INFER, "-e", ckpt, "-eval", lines / "*val*.bin", "-b", 2, "-t", 32)
    assert "BOS windows (bos=window)" in ev.stdout
    val = [float(l.split("tel:")[1]) for l in log.splitlines() if l.startswith("s:6 tel:")][0]
    ev2 = run(INFER, "-e", ckpt, "-eval", lines / "*val*.bin", "-b", 4, "-t", 32, "-m", 2)
    assert float(ev2.stdout.split()[2]) == pytest.approx(val, abs=1e-4), "-eval must read what validation read"
    one_line_error(run(INFER, "-e", ckpt, "-sa", lines / "*val*.bin", "-sn", 100000, "-st", 16, ok=False),
                   "line starts with 15 tokens after them", "100000 asked")
    one_line_error(run(TRAIN, "-e", TINY + ",bos=window", "-i", lines / "*train*.bin", "-t", 1, "-x", 1, ok=False),
                   "bos=window needs T >= 2", "T=1")
    # a vocabulary that is not byte-level: line ends need the tokenizer
    wide = tmp_path / "wide"
    run(TRAIN, "-e", "L=1,C=32,H=2,T=32,V=300,bos=window", "-i", lines / "bare" / "*train*.bin", "-j",
        lines / "bare" / "*val*.bin", "-o", wide, "-b", 4, "-t", 32, "-x", 1, "-v", 0, "-s", 0)
    one_line_error(run(INFER, "-e", wide / "model_00000001.bin", "-sa", lines / "*val*.bin", "-st", 16, ok=False),
                   "V=300 needs its tokenizer", "-tk")


def test_train_line_says_what_an_epoch_reads(data, tmp_path):
    """Document starts read only the first T tokens of each document: the train line counts them."""
    p = run(*train_args(data, tmp_path / "a", 1, "-e", TINY + ",bos=1", "-v", 0))
    m = re.search(r"document starts \(bos=1\): an epoch is (\d+) sequences of T=32 = ([\d.]+)M tokens, reading "
                  r"([\d.]+)M distinct of the ([\d.]+)M \(([\d.]+)%\)", p.stdout)
    assert m, p.stdout
    tokens = byte_corpus(40000, seed=1).tolist()
    starts = [i for i, t in enumerate(tokens) if t == 256 and i + 33 <= len(tokens)]
    covered = {q for i in starts for q in range(i, i + 32)}
    assert int(m.group(1)) == len(starts) // 4 * 4
    assert m.group(3) == f"{len(covered) / 1e6:.2f}" and m.group(5) == f"{100 * len(covered) / 40000:.1f}"
    p = run(*train_args(data, tmp_path / "b", 1, "-v", 0))
    assert "fixed windows (bos=0): an epoch is 1248 sequences of T=32" in p.stdout, p.stdout
