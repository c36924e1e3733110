"""Data parallelism on the CPU (dist/comm_threads.c, train.c -ng/-z; docs/DISTRIBUTED.md): N ranks with
micro-batch B train as one rank with N*B and as one rank with gradient accumulation, ZeRO-1 as
without it, the same bits run to run, and a resumed N-rank run as an uninterrupted one."""
import re

import numpy as np
import pytest

from test_train_infer import data, one_line_error, run, train_args  # noqa: F401 (data: fixture)

STEPS = 12


def losses(stdout):
    return [float(x) for x in re.findall(r"\| loss ([\d.]+) \|", stdout)]


def params(path):
    return np.fromfile(path, dtype=np.float32, offset=1024)


def train(data, out, B, *extra):
    p = run(*train_args(data, out, STEPS, "-b", B, "-t", 16, "-v", 0, *extra))
    return losses(p.stdout), params(out / f"model_{STEPS:08d}.bin"), p.stdout


# Sums of the same per-token gradients in another order: fp32 rounding, amplified a little by AdamW
# over 12 steps (its first steps divide by sqrt(v), about |g|). Measured: about 1e-6 on the losses.
LOSS_BOUND, PARAM_BOUND = 2e-5, 2e-4


@pytest.mark.parametrize("ranks", [2, 4])
def test_ranks_equal_one_rank_with_the_whole_batch(data, tmp_path, ranks):
    one, one_params, _ = train(data, tmp_path / "one", 2 * ranks)
    many, many_params, _ = train(data, tmp_path / "many", 2, "-ng", ranks)
    # accumulation reads samples of B rows in order: the big batch's rows only without shuffling
    one_in_order, one_in_order_params, _ = train(data, tmp_path / "one_in_order", 2 * ranks, "-sh", 0)
    accum, accum_params, _ = train(data, tmp_path / "accum", 2, "-d", 2 * ranks * 16, "-sh", 0)
    assert len(one) == len(many) == len(accum) == STEPS
    for name, got, got_params, ref, ref_params in [(f"{ranks} ranks", many, many_params, one, one_params),
                                                   ("accumulation", accum, accum_params, one_in_order,
                                                    one_in_order_params)]:
        err = max(abs(a - b) / b for a, b in zip(got, ref))
        assert err < LOSS_BOUND, f"{name}: losses differ by {err:.2e} from 1 rank x {2 * ranks}"
        perr = np.abs(got_params - ref_params).max() / np.abs(ref_params).max()
        assert perr < PARAM_BOUND, f"{name}: parameters differ by {perr:.2e}"


def test_ranks_are_deterministic_and_zero1_equals_plain(data, tmp_path):
    plain, plain_params, _ = train(data, tmp_path / "plain", 2, "-ng", 4)
    again, again_params, _ = train(data, tmp_path / "again", 2, "-ng", 4)
    assert plain == again and np.array_equal(plain_params, again_params), "4 ranks are not deterministic"
    zero, zero_params, _ = train(data, tmp_path / "zero", 2, "-ng", 4, "-z", 1)
    err = max(abs(a - b) / b for a, b in zip(zero, plain))
    assert err < LOSS_BOUND, f"ZeRO-1 losses differ by {err:.2e}"
    assert np.abs(zero_params - plain_params).max() / np.abs(plain_params).max() < PARAM_BOUND


def test_zero1_keeps_a_quarter_of_the_optimizer_state_per_rank(data, tmp_path):
    """The memory plan of each rank: AdamW's moments, printed in MiB, are 1/4 with ZeRO-1 on 4 ranks."""
    outs = [run(*train_args(data, tmp_path / f"z{z}", 1, "-e", "L=2,C=256,H=4,T=32,V=257", "-ng", 4, "-z", z)).stdout
            for z in (0, 1)]
    adamw = [float(re.search(r"AdamW ([\d.]+)", out).group(1)) for out in outs]
    assert adamw[1] == pytest.approx(adamw[0] / 4, abs=0.05), f"AdamW MiB per rank without / with ZeRO-1: {adamw}"


@pytest.mark.parametrize("zero", [0, 1])
def test_resumed_ranks_continue_bit_for_bit(data, tmp_path, zero):
    straight, parts = tmp_path / "straight", tmp_path / "parts"
    flags = ("-b", 2, "-t", 16, "-v", 4, "-ng", 2, "-z", zero, "-n", 4)
    run(*train_args(data, straight, STEPS, *flags))
    run(*train_args(data, parts, STEPS, *flags))
    for step in (8, 12):
        for kind in ("model", "state"):
            (parts / f"{kind}_{step:08d}.bin").unlink()
    run(*train_args(data, parts, STEPS, *flags, "-y", 1))
    assert (parts / "main.log").read_text() == (straight / "main.log").read_text()
    assert np.array_equal(params(parts / f"model_{STEPS:08d}.bin"), params(straight / f"model_{STEPS:08d}.bin"))
    p = run(*train_args(data, parts, STEPS + 4, *flags[:-4], "-ng", 1, "-y", 1), ok=False)
    one_line_error(p, "-ng 1 -pn 1: the run", "was trained with 2 rank(s) in all")


def test_keep_the_newest_checkpoints(data, tmp_path):
    """-nk 2 leaves the two newest checkpoint pairs, and the run resumes from them bit for bit."""
    straight, kept = tmp_path / "straight", tmp_path / "kept"
    flags = ("-b", 2, "-t", 16, "-v", 0, "-n", 2)
    run(*train_args(data, straight, STEPS, *flags))
    run(*train_args(data, kept, STEPS - 2, *flags, "-nk", 2))
    names = sorted(p.name for p in kept.glob("*_*.bin"))
    assert names == [f"{k}_{s:08d}.bin" for k in ("model", "state") for s in (STEPS - 4, STEPS - 2)], names
    run(*train_args(data, kept, STEPS, *flags, "-nk", 2, "-y", 1))
    assert np.array_equal(params(kept / f"model_{STEPS:08d}.bin"), params(straight / f"model_{STEPS:08d}.bin"))
    assert sorted(p.name for p in kept.glob("model_*.bin")) == [f"model_{s:08d}.bin" for s in (STEPS - 2, STEPS)]


@pytest.mark.parametrize("flags,message", [(("-pn", 2, "-pr", 0), "needs the CUDA build (NCCL)"),
                                           (("-pn", 2, "-pr", 2), "-pr 2: process numbers run from 0 to")])
def test_several_nodes_are_refused_on_the_cpu(data, tmp_path, flags, message):
    one_line_error(run(*train_args(data, tmp_path / "out", 2, *flags), ok=False), message)
