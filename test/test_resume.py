"""Crash-safe training runs (docs/RELIABILITY.md): resume picks the newest complete checkpoint, a
resumed run continues bit for bit (its main.log equals an uninterrupted run's), SIGTERM checkpoints
and exits 0, SIGKILL at any moment (also inside checkpoint writes) leaves a resumable directory,
settings that would change the run are refused, and files that are corrupt or hold NaN are refused."""
import os
import random
import re
import signal
import subprocess
import time

import numpy as np
import pytest

from files import byte_corpus, write_shard
from test_train_infer import INFER, TINY, data, one_line_error, run, train_args  # noqa: F401 (data: fixture)


def log_lines(out):
    """main.log without the checkpoint lines (a stopped run writes one where an uninterrupted run does not)."""
    return [l for l in (out / "main.log").read_text().splitlines() if not l.endswith(" checkpoint")]


def test_resumed_run_logs_what_an_uninterrupted_run_logs(data, tmp_path):
    straight, parts = tmp_path / "straight", tmp_path / "parts"
    run(*train_args(data, straight, 8, "-n", 2))
    run(*train_args(data, parts, 8, "-n", 2))
    for step in (6, 8):   # back to the checkpoint of step 4, with the log of steps 5..8 still there
        for kind in ("model", "state"):
            (parts / f"{kind}_{step:08d}.bin").unlink()
    p = run(*train_args(data, parts, 8, "-n", 2, "-y", 1))
    assert "resumed from" in p.stdout and "at step 4" in p.stdout
    assert (parts / "main.log").read_text() == (straight / "main.log").read_text(), "duplicated or missing lines"
    assert (parts / "model_00000008.bin").read_bytes() == (straight / "model_00000008.bin").read_bytes()


def test_bos_window_run_resumes_bit_for_bit(data, tmp_path):
    """bos=window, shuffled (-sh 1 is the default) over 2.6 epochs of a small train shard: the shift
    and order of the windows after the checkpoint are replayed, so the resumed run writes the same
    log and the same model and state bytes."""
    small = tmp_path / "small"
    small.mkdir()
    write_shard(small / "small_train_000.bin", byte_corpus(3000, seed=3))   # 95 windows: 23 steps an epoch
    straight, parts = tmp_path / "straight", tmp_path / "parts"
    extra = ("-e", TINY + ",bos=window", "-i", small / "*train*.bin", "-n", 20)
    run(*train_args(data, straight, 60, *extra))
    run(*train_args(data, parts, 60, *extra))
    for step in (40, 60):   # back to step 20, inside the first epoch
        for kind in ("model", "state"):
            (parts / f"{kind}_{step:08d}.bin").unlink()
    p = run(*train_args(data, parts, 60, *extra, "-y", 1))
    assert "at step 20" in p.stdout and "BOS windows (bos=window): an epoch is 92 sequences" in p.stdout
    assert (parts / "main.log").read_text() == (straight / "main.log").read_text(), "duplicated or missing lines"
    for kind in ("model", "state"):
        assert (parts / f"{kind}_00000060.bin").read_bytes() == (straight / f"{kind}_00000060.bin").read_bytes()


def test_resume_passes_over_incomplete_checkpoints(data, tmp_path):
    out = tmp_path / "run"
    run(*train_args(data, out, 4, "-n", 1))
    (out / "state_00000005.bin.tmp").write_bytes(b"partial")            # an interrupted write
    model4 = out / "model_00000004.bin"
    model4.write_bytes(model4.read_bytes()[:-100])                      # a torn model file
    state3 = out / "state_00000003.bin"
    raw = bytearray(state3.read_bytes())
    raw[-1] ^= 0xFF                                                     # a bit flip in a state file
    state3.write_bytes(bytes(raw))
    p = run(*train_args(data, out, 6, "-n", 1, "-y", 1))
    assert "at step 2" in p.stdout, p.stdout
    assert "skipping the checkpoint of step 4" in p.stderr and "skipping the checkpoint of step 3" in p.stderr
    assert not list(out.glob("*.tmp")), "the temporary was not removed"
    straight = tmp_path / "straight"
    run(*train_args(data, straight, 6, "-n", 1))
    assert log_lines(out) == log_lines(straight)


def test_resume_with_nothing_to_resume_starts_fresh(data, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "main.log").write_text("s:1 trl:9.0 lr:1 norm:1\n")
    p = run(*train_args(data, out, 2, "-y", 1))
    assert "no complete checkpoint" in p.stdout and "starting from scratch" in p.stdout
    assert (out / "main.log.old").read_text() == "s:1 trl:9.0 lr:1 norm:1\n", "the earlier log was lost"
    assert "s:2 trl:" in (out / "main.log").read_text()


def test_resume_refuses_a_changed_run(data, tmp_path):
    out = tmp_path / "run"
    run(*train_args(data, out, 4, "-n", 2))
    other = tmp_path / "other_data"
    other.mkdir()
    (other / "tiny_train_000.bin").write_bytes((data / "tiny_train_000.bin").read_bytes())
    for flags, message in [(("-b", 2), "-b 2 -t 32"), (("-t", 16), "-t 16"), (("-S", 5), "-S 5"),
                           (("-d", 256), "-d 256"), (("-e", TINY + ",gate=head"), "is the model L=2,C=32"),
                           (("-i", other / "*train*.bin"), "other train shards"), (("-x", 3), "at step 4 already")]:
        one_line_error(run(*train_args(data, out, 8, "-y", 1, *flags), ok=False), message)


def test_resuming_a_finished_run_does_nothing(data, tmp_path):
    out = tmp_path / "run"
    run(*train_args(data, out, 3))
    before = (out / "main.log").read_text()
    p = run(*train_args(data, out, 3, "-y", 1))
    assert "complete at step 3; nothing to do" in p.stdout
    assert (out / "main.log").read_text() == before


def wait_for(path, timeout=60):
    t0 = time.time()
    while not path.exists():
        assert time.time() - t0 < timeout, f"{path} did not appear"
        time.sleep(0.01)


def test_sigterm_checkpoints_and_exits_0(data, tmp_path):
    out, straight = tmp_path / "run", tmp_path / "straight"
    args = train_args(data, out, 4000, "-n", 1000, "-v", 500)
    p = subprocess.Popen([str(a) for a in args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(out / "main.log")
    time.sleep(0.3)
    p.send_signal(signal.SIGTERM)
    stdout, stderr = p.communicate(timeout=60)
    assert p.returncode == 0, stderr
    stopped = re.findall(r"saved checkpoint .*state_(\d+).bin", stdout)
    assert stopped and "stopped by signal 15" in stdout, stdout[-500:]
    step = int(stopped[-1])
    assert 0 < step < 4000, "the signal came too late to test anything"
    run(*train_args(data, out, 4000, "-n", 1000, "-v", 500, "-y", 1))
    run(*train_args(data, straight, 4000, "-n", 1000, "-v", 500))
    assert log_lines(out) == log_lines(straight)


def test_sigkill_at_random_moments_leaves_a_resumable_run(data, tmp_path):
    """20 trials: a run with a checkpoint every step (the writes, fsynced, take much of its time) is
    killed at a random moment, then resumed to the end: its log equals an uninterrupted run's."""
    steps = 12
    extra = ("-e", "L=1,C=256,H=4,T=32,V=257", "-n", 1, "-b", 1, "-t", 16, "-v", 4)
    straight = tmp_path / "straight"
    t0 = time.time()
    run(*train_args(data, straight, steps, *extra))
    duration = time.time() - t0
    rng = random.Random(1234)
    for trial in range(20):
        out = tmp_path / f"trial{trial}"
        args = [str(a) for a in train_args(data, out, steps, *extra)]
        p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.05, 0.9) * duration)
        p.kill()
        p.wait()
        run(*train_args(data, out, steps, *extra, "-y", 1))
        assert log_lines(out) == log_lines(straight), f"trial {trial}: the resumed run differs"
        assert not list(out.glob("*.tmp")), f"trial {trial}: temporaries left"


def test_corrupt_and_nan_checkpoints_are_refused(data, tmp_path):
    out = tmp_path / "run"
    run(*train_args(data, out, 2))
    good = out / "model_00000002.bin"
    raw = bytearray(good.read_bytes())
    flipped = tmp_path / "flipped.bin"
    raw[2000] ^= 0x10
    flipped.write_bytes(bytes(raw))
    one_line_error(run(INFER, "-e", flipped, "-n", 2, ok=False), "checksum", str(flipped))
    nan = tmp_path / "nan.bin"
    header = np.frombuffer(good.read_bytes()[:1024], dtype=np.int32).copy()
    payload = np.frombuffer(good.read_bytes()[1024:], dtype=np.float32).copy()
    payload[5] = np.nan
    header[14:16] = 0   # no checksum, as llm.c writes: the values themselves are checked
    nan.write_bytes(header.tobytes() + payload.tobytes())
    one_line_error(run(INFER, "-e", nan, "-n", 2, ok=False), "wte holds NaN")
    sig = tmp_path / "nan_bias.bin"   # a sigmoid model whose bias slot holds NaN
    run(*train_args(data, tmp_path / "sig", 1, "-e", TINY + ",mixer=sigmoid"))
    raw = np.frombuffer((tmp_path / "sig" / "model_00000001.bin").read_bytes(), dtype=np.int32).copy()
    raw[19] = np.array([np.nan], dtype=np.float32).view(np.int32)[0]
    sig.write_bytes(raw.tobytes())
    one_line_error(run(INFER, "-e", sig, "-n", 2, ok=False), "bias=nan is out of range")


@pytest.mark.parametrize("flags,message", [
    (("-b", 0), "-b 0: out of range"), (("-b", 4294967298), "out of range"), (("-t", 0), "-t 0: out of range"),
    (("-d", 0), "-d 0: out of range"), (("-x", 0), "-x 0: out of range"), (("-n", -1), "-n -1: out of range"),
    (("-l", -0.1), "-l -0.1: out of range"), (("-c", -1), "out of range"), (("-gc", -1), "out of range"),
    (("-q", 2), "-q 2: out of range"), (("-y", 2), "out of range"), (("-b", "four"), "not an integer"),
    (("-l", "nan"), "not a finite number"), (("-e", ""), "empty model descriptor"),
])
def test_bad_flag_values(data, tmp_path, flags, message):
    one_line_error(run(*train_args(data, tmp_path / "r", 2), *flags, ok=False), message)


@pytest.mark.parametrize("flags,message", [
    (("-temp", -1), "-temp -1: out of range"), (("-topk", -3), "-topk -3: out of range"),
    (("-topp", 2), "-topp 2: out of range"), (("-n", -1), "-n -1: out of range"), (("-b", 0), "-b 0: out of range"),
])
def test_bad_infer_flag_values(data, tmp_path, flags, message):
    one_line_error(run(INFER, "-e", data / "x.bin", *flags, ok=False), message)
