"""Crash-safe training runs (docs/RELIABILITY.md): resume picks the newest complete checkpoint, a
resumed run continues bit for bit (its main.log equals an uninterrupted run's), SIGTERM and SIGINT
checkpoint and exit 0, SIGKILL at any moment (also inside checkpoint writes) leaves a resumable
directory, one run at a time holds an output folder, settings that would change the run are refused,
and files that are corrupt, damaged in any header slot or hold NaN are refused."""
import fcntl
import os
import queue
import random
import re
import signal
import subprocess
import threading
import time

import numpy as np
import pytest

from files import STATE_CHECKSUM_SLOT, byte_corpus, edit_header, write_shard
from test_reliability import PREPARE
from test_train_infer import INFER, TINY, data, one_line_error, run, train_args  # noqa: F401 (data: fixture)
from timeouts import HANG_TIMEOUT

FOREVER = 1_000_000   # steps: a run that only a signal ends
CONSTANT_LR = ("-k", "constant", "-v", 0)   # a schedule that does not depend on -x, no validation


class Running:
    """A program running in the background whose stdout lines a thread collects, so that a test can
    wait for a line (a step done) instead of for a time."""

    def __init__(self, args):
        self.p = subprocess.Popen([str(a) for a in args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.stdout, self.lines = [], queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.p.stdout:
            self.stdout.append(line)
            self.lines.put(line)
        self.lines.put(None)

    def wait_for_step(self, step):
        """Returns once the line of `step` is out: the run has done that many steps."""
        pattern = re.compile(rf"step +{step}/")
        while True:
            line = self.lines.get(timeout=HANG_TIMEOUT)
            assert line is not None, \
                f"the run ended before step {step}:\n{''.join(self.stdout)[-800:]}{self.p.stderr.read()}"
            if pattern.match(line):
                return

    def finish(self):
        """(exit status, stdout, stderr) once the program has ended."""
        self.p.wait(timeout=HANG_TIMEOUT)
        self.reader.join(timeout=HANG_TIMEOUT)
        return self.p.returncode, "".join(self.stdout), self.p.stderr.read()


@pytest.fixture
def background():
    """Starts Running programs; the ones still running when the test ends (a failed test) are killed."""
    started = []

    def start(args):
        started.append(Running(args))
        return started[-1]
    yield start
    for r in started:
        if r.p.poll() is None:
            r.p.kill()
            r.p.wait()


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


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_checkpoints_and_exits_0(data, tmp_path, background, sig):
    """The signal comes once step 3 is done, to a run that nothing else would end: it finishes its step,
    writes a checkpoint and exits 0, at whatever step the machine's speed had it reach. Resumed to 20
    steps past that step, its log and model equal a straight run's (a constant learning rate: the
    schedule does not depend on -x)."""
    out, straight = tmp_path / "run", tmp_path / "straight"
    r = background(train_args(data, out, FOREVER, *CONSTANT_LR))
    r.wait_for_step(3)
    r.p.send_signal(sig)
    status, stdout, stderr = r.finish()
    assert status == 0, stderr
    stopped = re.findall(r"saved checkpoint .*state_(\d+).bin", stdout)
    assert stopped and f"stopped by signal {int(sig)}" in stdout, stdout[-500:]
    step = int(stopped[-1])
    assert step >= 3, f"stopped at step {step}, before the signal was sent"
    run(*train_args(data, out, step + 20, *CONSTANT_LR, "-y", 1))
    run(*train_args(data, straight, step + 20, *CONSTANT_LR))
    assert log_lines(out) == log_lines(straight)
    last = f"model_{step + 20:08d}.bin"
    assert (out / last).read_bytes() == (straight / last).read_bytes()


# ----------------------------------------------------------------------------
# one run per output folder


def test_a_second_run_in_the_same_folder_is_refused(data, tmp_path, background):
    out = tmp_path / "run"
    first = background(train_args(data, out, FOREVER, *CONSTANT_LR))
    first.wait_for_step(1)   # it took the folder's lock before its first step
    for extra in (), ("-y", 1):
        one_line_error(run(*train_args(data, out, 4, *extra), ok=False), f"-o {out}: in use by another run",
                       f"pid {first.p.pid}")
    first.p.send_signal(signal.SIGTERM)
    status, stdout, stderr = first.finish()
    assert status == 0, stderr
    step = int(re.findall(r"saved checkpoint .*state_(\d+).bin", stdout)[-1])
    p = run(*train_args(data, out, step + 2, *CONSTANT_LR, "-y", 1))   # the folder is free again, and whole
    assert f"at step {step}" in p.stdout


def test_a_dead_runs_lock_does_not_block(data, tmp_path, background):
    out = tmp_path / "run"
    first = background(train_args(data, out, FOREVER, *CONSTANT_LR))
    first.wait_for_step(1)
    first.p.kill()
    first.finish()
    assert (out / "train.lock").exists()
    p = run(*train_args(data, out, 3, *CONSTANT_LR, "-y", 1))
    assert "starting from scratch" in p.stdout


def test_the_lock_names_its_holder(data, tmp_path):
    """Another process holding the lock file of train_gpt2 (-o) or prepare (-o): refused with its pid."""
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "in.txt").write_text("the lord said unto moses\n" * 100)
    for name, args in (("train.lock", train_args(data, out, 2)),
                       ("prepare.lock", [PREPARE, "-o", out, "--bytes", tmp_path / "in.txt"])):
        with open(out / name, "w") as held:
            fcntl.lockf(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
            one_line_error(run(*args, ok=False), f"-o {out}: in use by another run", f"pid {os.getpid()}", name)
        run(*args)   # released


# ----------------------------------------------------------------------------


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
    header[14:] = 0   # llm.c's file: no checksum, no marker and settings; the values themselves are checked
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
    (("-init", "xavier"), "-init xavier: unknown init (known: gpt2 neox)"),
])
def test_bad_flag_values(data, tmp_path, flags, message):
    one_line_error(run(*train_args(data, tmp_path / "r", 2), *flags, ok=False), message)


@pytest.mark.parametrize("flags,message", [
    (("-temp", -1), "-temp -1: out of range"), (("-topk", -3), "-topk -3: out of range"),
    (("-topp", 2), "-topp 2: out of range"), (("-n", -1), "-n -1: out of range"), (("-b", 0), "-b 0: out of range"),
])
def test_bad_infer_flag_values(data, tmp_path, flags, message):
    one_line_error(run(INFER, "-e", data / "x.bin", *flags, ok=False), message)


def test_checkpoint_header_damage_is_refused(data, tmp_path):
    """A checksum zeroed to switch it off, a set slot of 8-13 (zero in the format), or any other header
    change: refused with one line. The same file as llm.c writes it (no checksum, no marker) loads and
    samples what the original does."""
    out = tmp_path / "run"
    run(*train_args(data, out, 2))
    good = out / "model_00000002.bin"
    sample = run(INFER, "-e", good, "-n", 8, "-temp", 0).stdout
    cases = [({14: 0, 15: 0}, ("slots 14-15", "zero", "requires one")), ({9: 1}, ("slot 9 holds 1", "8-13")),
             ({13: -7}, ("slot 13 holds -7",)), ({34: 1}, ("does not match its checksum",)),   # gelu=erf
             ({5: 1}, ("does not match its checksum",)),                                        # H=1
             ({6: -2147483640}, ("C=-2147483640 is out of range",))]   # 4C overflowed int (make asan's UBSan)
    for edits, needles in cases:
        bad = tmp_path / "bad.bin"
        bad.write_bytes(good.read_bytes())
        edit_header(bad, edits)
        one_line_error(run(INFER, "-e", bad, "-n", 2, ok=False), bad, *needles)
    llmc = tmp_path / "llmc.bin"
    llmc.write_bytes(good.read_bytes())
    edit_header(llmc, {slot: 0 for slot in range(14, 256)})
    assert run(INFER, "-e", llmc, "-n", 8, "-temp", 0).stdout == sample


@pytest.mark.parametrize("slot,value", [(3, 1), (5, 1), (6, 12345), (100, 7), (10, 0)],
                         ids=["epoch", "batch in shard", "rng", "unused slot", "B"])
def test_an_edited_state_header_is_not_resumed(data, tmp_path, slot, value):
    """The state file's checksum covers its header: an edited loader position, RNG, unused slot or
    batch size is a damaged checkpoint, passed over for the one before it (B = 0 is not blamed on
    the user's -b)."""
    out, straight = tmp_path / "run", tmp_path / "straight"
    run(*train_args(data, out, 4, "-n", 2))
    edit_header(out / "state_00000004.bin", {slot: value})
    p = run(*train_args(data, out, 6, "-n", 2, "-y", 1))
    assert "skipping the checkpoint of step 4" in p.stderr and "checksum mismatch" in p.stderr, p.stderr
    assert "at step 2" in p.stdout
    run(*train_args(data, straight, 6, "-n", 2))
    assert log_lines(out) == log_lines(straight)


@pytest.mark.parametrize("slot,value", [(10, 0), (11, 0), (12, 0), (13, -1), (20, 0), (3, -1), (4, -1), (5, -1),
                                        (40, 1)])
def test_a_state_file_with_impossible_values_blames_the_file(data, tmp_path, slot, value):
    """Values no run writes (B, T, total batch or ranks 0, a negative seed or position, an unused
    slot set), in a file whose checksum holds (a bug's, say): the resume passes it over naming what
    is wrong with the file, and never blames the user's flags."""
    out = tmp_path / "run"
    run(*train_args(data, out, 2, "-n", 2))
    edit_header(out / "state_00000002.bin", {slot: value}, checksum_slot=STATE_CHECKSUM_SLOT)
    p = run(*train_args(data, out, 4, "-n", 2, "-y", 1))
    assert "skipping the checkpoint of step 2" in p.stderr and "starting from scratch" in p.stdout, p.stderr
    assert re.search("below 1|negative|leaves zero", p.stderr) and "was trained with" not in p.stderr, p.stderr


def test_an_older_state_version_is_refused_not_skipped(data, tmp_path):
    """A state file of the version before the whole-file checksum (2): the resume stops with one line
    rather than pass over the run's checkpoints and start again from scratch."""
    out = tmp_path / "run"
    run(*train_args(data, out, 2, "-n", 2))
    edit_header(out / "state_00000002.bin", {1: 2})
    one_line_error(run(*train_args(data, out, 4, "-y", 1), ok=False), "state_00000002.bin", "version 2",
                   "older attnlab")
