"""scripts/gpu_check.sh's verdicts: stages 0 and 1 of the dry run (--emulate) on stub programs that
print what test_cuda and train_gpt2cu print, so the verdicts' values are known: one line per verdict
in the stated format, on stdout and in verdicts.txt alike, at most 8 files in OUT_DIR, the test
counts and the training run's losses and tokens/s read right, a failing group a FAIL verdict with its
FAIL lines under it and exit status 1, a missing program a FAIL of stage 0. The real dry run (every
stage on the emulated programs) is make gpu_check_emu, which CI runs."""
import os
import re
import subprocess

from clib import ROOT
from timeouts import HANG_TIMEOUT

SCRIPT = os.path.join(ROOT, "scripts", "gpu_check.sh")
VERDICT = re.compile(r"^(\d|end) \| [^|]+ \| (ok|FAIL|TIMEOUT|SKIP|info) \| \d+ s \| .*$")
TEST_OUTPUT = "device: stub (sm_90), precision bf16\nok   a check\n{passed} passed, {failed} failed\n"
TRAIN_OUTPUT = ("step    1/2 | loss 5.500000 | lr 1.00e-03 | norm 1.0000 | 10.0 ms | 1000 tok/s\n"
                "step    2/2 | loss 5.400000 | lr 1.00e-03 | norm 1.0000 | 10.0 ms | 3000 tok/s\n")


def stub(path, text, status=0):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(f"#!/bin/sh\ncat <<'EOF'\n{text}EOF\nexit {status}\n")
    os.chmod(path, 0o755)


def stub_programs(emu, failing_group=None):
    """The programs gpu_check.sh --emulate looks for, under emu/BF16 and emu/FP32. The test binary
    fails for `failing_group` (its first argument) with one FAIL line."""
    for p in ("BF16", "FP32"):
        fail_text = TEST_OUTPUT.format(passed=2, failed=1).replace("ok   a check", "FAIL the planted check")
        script = (f'#!/bin/sh\nif [ "$1" = "{failing_group}" ]; then\ncat <<\'EOF\'\n{fail_text}EOF\nexit 1\nfi\n'
                  f"cat <<'EOF'\n{TEST_OUTPUT.format(passed=3, failed=0)}EOF\n")
        os.makedirs(os.path.join(emu, p), exist_ok=True)
        with open(os.path.join(emu, p, "test_cuda_emu"), "w") as f:
            f.write(script)
        os.chmod(os.path.join(emu, p, "test_cuda_emu"), 0o755)
        stub(os.path.join(emu, p, "train_gpt2cu"), TRAIN_OUTPUT)
        stub(os.path.join(emu, p, "infercu"), "")
    stub(os.path.join(emu, "BF16", "bench_attention_cuda"), "")


def gpu_check(tmp_path, emu, stages="1"):
    out = tmp_path / "out"
    p = subprocess.run(["bash", SCRIPT, "--emulate", "--stages", stages, str(out)], capture_output=True, text=True,
                       timeout=HANG_TIMEOUT, env=dict(os.environ, EMU_BIN=str(emu), PYTHON="/usr/bin/python3"))
    return p, out


def verdicts(stdout):
    """The verdict lines: every line but the header and the indented FAIL lines, each checked."""
    lines = [line for line in stdout.splitlines() if not line.startswith(("#", "    "))]
    for line in lines:
        assert VERDICT.match(line), f"not a verdict line: {line!r}"
    return {line.split(" | ")[1]: line.split(" | ") for line in lines}


def test_stage_1_verdicts_on_stub_programs(tmp_path):
    emu = tmp_path / "emu"
    stub_programs(str(emu))
    p, out = gpu_check(tmp_path, emu)
    assert p.returncode == 0, f"exit {p.returncode}:\n{p.stdout}\n{p.stderr}"
    v = verdicts(p.stdout)
    with open(out / "verdicts.txt") as f:
        assert f.read() == p.stdout, "verdicts.txt differs from what was printed"
    assert v["programs"][2] == "ok", v["programs"]
    for group in ("matmul", "layers", "model", "mixers"):
        assert v[f"test_cuda bf16 {group}"][2:5:2] == ["ok", "3 passed, 0 failed"], v[f"test_cuda bf16 {group}"]
    for group in ("attention", "mlstm"):   # minutes in the emulation: left to make test_emu
        assert v[f"test_cuda bf16 {group}"][2] == "SKIP", v[f"test_cuda bf16 {group}"]
    # the second half of 2 steps: the last step's tokens/s; the first and the last loss
    assert v["tiny model training, bf16"][4] == "2 steps, loss 5.500000 -> 5.400000, 3000 tok/s", \
        v["tiny model training, bf16"]
    for stage in ("2", "3", "4", "5"):
        assert any(f[0] == stage and f[2] == "SKIP" and f[4] == "not in --stages" for f in v.values()), \
            f"stage {stage} not skipped"
    assert v["files in OUT_DIR"][2] == "ok" and v["verdicts"][4].startswith("0 FAIL or TIMEOUT"), v
    files = sorted(os.listdir(out))
    assert files == ["bench.md", "logs.tar.gz", "verdicts.txt"], files


def test_a_failing_group_fails_the_check(tmp_path):
    emu = tmp_path / "emu"
    stub_programs(str(emu), failing_group="layers")
    p, _ = gpu_check(tmp_path, emu)
    assert p.returncode == 1, f"exit {p.returncode} with a failing group:\n{p.stdout}"
    v = verdicts(p.stdout)
    assert v["test_cuda bf16 layers"][2:5:2] == ["FAIL", "2 passed, 1 failed"], v["test_cuda bf16 layers"]
    assert "    FAIL the planted check" in p.stdout.splitlines(), p.stdout
    assert v["test_cuda bf16 mixers"][2] == "ok", "the groups after a failing one must still run"
    assert v["verdicts"][2] == "FAIL" and v["verdicts"][4].startswith("1 FAIL or TIMEOUT"), v["verdicts"]


def test_missing_programs_fail_stage_0(tmp_path):
    p, _ = gpu_check(tmp_path, tmp_path / "nothing", stages="")
    assert p.returncode == 1, f"exit {p.returncode} without programs:\n{p.stdout}"
    v = verdicts(p.stdout)
    assert v["programs"][2] == "FAIL" and "missing:" in v["programs"][4], v["programs"]
