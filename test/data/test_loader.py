# The data loader (data/shards.c) through test/capi.c: llm.c's fixed windows, the document layout
# where every sequence starts at a document's EOT (bos=1), on shards written here with documents of
# known lengths, and BOS windows (bos=window), the BOS and T-1 tokens from anywhere in a stream of
# known random tokens; and the sink analysis's probe sets at document and line starts.
import ctypes
import os
import subprocess
import sys

import numpy as np
import pytest

from tokhelp import LIB, ROOT
from files import write_shard
from timeouts import HANG_TIMEOUT

V, EOT = 257, 256
WINDOWS, DOCUMENTS, BOS_WINDOWS = 0, 1, 2   # DataLayout, the values of the bos key
LIB.capi_loader.restype = ctypes.c_void_p
LIB.shard_document_starts.restype = ctypes.c_size_t
LIB.shard_line_starts.restype = ctypes.c_size_t


class Loader:
    def __init__(self, pattern, B, T, rank=0, ranks=1, shuffle=0, seed=1, layout=DOCUMENTS, bos=EOT):
        self.B, self.T = B, T
        self.dl = ctypes.c_void_p(LIB.capi_loader(str(pattern).encode(), B, T, rank, ranks, shuffle, seed, V, layout,
                                                  bos))

    def next(self):
        inputs = np.zeros((self.B, self.T), dtype=np.int32)
        targets = np.zeros((self.B, self.T), dtype=np.int32)
        LIB.capi_loader_next(self.dl, inputs.ctypes.data_as(ctypes.c_void_p), targets.ctypes.data_as(ctypes.c_void_p))
        return inputs, targets

    def info(self):
        out = np.zeros(9, dtype=np.int64)
        LIB.capi_loader_info(self.dl, out.ctypes.data_as(ctypes.c_void_p))
        keys = "epoch shard sample num_batches num_sequences num_tokens epoch_tokens distinct shift".split()
        return dict(zip(keys, map(int, out)))

    def seek(self, epoch, shard, sample):
        LIB.dataloader_seek(self.dl, epoch, shard, sample)

    def __del__(self):
        LIB.capi_loader_free(self.dl)


def documents(lengths, first_id):
    """Documents of the given lengths; document i's tokens start with its id (unique), then vary."""
    return [[(first_id + i) % 256] + [(7 * (first_id + i) + 3 * j) % 256 for j in range(1, n)]
            for i, n in enumerate(lengths)]


def shard_tokens(docs):
    return [t for d in docs for t in [EOT] + d]


def usable_starts(tokens, T):
    """EOT positions with T+1 tokens from them in the shard."""
    return [p for p, t in enumerate(tokens) if t == EOT and p + T + 1 <= len(tokens)]


T, B = 16, 2
# shorter than T, exactly T, longer than T (cut at T), and short ones at the end whose EOTs are
# within T of the shard's end (not usable)
LENGTHS = [[3, 16, 40, 15, 17, 1, 16, 25, 5, 9, 33, 2, 16, 8, 50, 4, 3, 2],
           [2, 3],                                    # 2 documents: no full batch, skipped
           [20, 7, 16, 11, 1, 30, 6, 12, 40, 9, 4, 2],
           [9, 16, 22, 3, 8, 12, 1, 26, 15]]          # the last EOT has T tokens left, not T+1


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    d = tmp_path_factory.mktemp("bos")
    streams, first = [], 0
    for i, lengths in enumerate(LENGTHS):
        streams.append(shard_tokens(documents(lengths, first)))
        first += len(lengths)
        write_shard(d / f"docs_{i:03d}.bin", streams[-1])
    return d / "docs_*.bin", streams


def check_rows(inputs, targets, streams):
    """Every row is T+1 consecutive tokens of a shard from a usable document start; returns the
    (shard, start) of each row."""
    where = []
    for x, y in zip(inputs, targets):
        assert x[0] == EOT and x[1] != EOT, "a sequence must start with the EOT, then the document"
        assert (x[1:] == y[:-1]).all(), "targets must be the inputs shifted by one"
        seq = list(x) + [y[-1]]
        hits = [(s, p) for s, tokens in enumerate(streams) for p in usable_starts(tokens, T)
                if tokens[p:p + T + 1] == seq]
        assert len(hits) == 1, f"row {seq} is not a sequence at a usable document start"
        where.append(hits[0])
    return where


def test_bos_sequences_start_at_documents(shards):
    pattern, streams = shards
    dl = Loader(pattern, B, T)
    info = dl.info()
    starts = [usable_starts(s, T) for s in streams]
    assert [len(s) for s in starts][1] < B, "the middle shard must be too small for a batch"
    assert info["num_batches"] == sum(len(s) // B for s in starts)
    assert info["num_sequences"] == info["num_batches"] * B
    assert info["num_tokens"] == sum(map(len, streams)) and info["epoch_tokens"] == info["num_sequences"] * T
    # the positions the inputs read: the union of [p, p+T) over the usable starts of shards with a batch
    covered = {(s, q) for s, st in enumerate(starts) if len(st) >= B for p in st for q in range(p, p + T)}
    assert info["distinct"] == len(covered) < info["num_sequences"] * T, "documents shorter than T overlap"
    read = []
    for _ in range(info["num_batches"]):
        read += check_rows(*dl.next(), streams)
    # unshuffled: the shards in order, each one's starts in order, the remainder of a batch dropped
    assert read == [(s, p) for s, st in enumerate(starts) for p in st[:len(st) // B * B]]
    assert dl.info()["epoch"] == 0
    dl.next()
    assert dl.info()["epoch"] == 1 and dl.info()["shard"] == 0
    # ends of the shards: EOTs with fewer than T+1 tokens after them are never a start
    for s, tokens in enumerate(streams):
        late = [p for p, t in enumerate(tokens) if t == EOT and p + T + 1 > len(tokens)]
        assert late and not any((s, p) in read for p in late)


def test_bos_long_document_gives_its_first_T_tokens(shards):
    pattern, streams = shards
    dl = Loader(pattern, B, T)
    long_doc = documents(LENGTHS[0], 0)[2]       # 40 tokens
    assert len(long_doc) > T
    rows = [r for _ in range(dl.info()["num_batches"]) for r in zip(*dl.next())]
    x, y = next((x, y) for x, y in rows if x[1] == long_doc[0])
    assert list(y) == long_doc[:T] and list(x) == [EOT] + long_doc[:T - 1]
    exact = documents(LENGTHS[0], 0)[1]          # exactly T tokens: the next EOT is not in the row
    x, y = next((x, y) for x, y in rows if x[1] == exact[0])
    assert list(y) == exact and EOT not in y
    short = documents(LENGTHS[0], 0)[0]          # 3 tokens: runs into the next document
    x, y = next((x, y) for x, y in rows if x[1] == short[0])
    assert list(y[:4]) == short + [EOT] and y[4] == exact[0]


def test_bos_two_ranks_read_what_one_rank_with_2B_reads(shards):
    pattern, streams = shards
    for shuffle in (0, 1):
        one = Loader(pattern, 2 * B, T, shuffle=shuffle, seed=5)
        ranks = [Loader(pattern, B, T, rank=r, ranks=2, shuffle=shuffle, seed=5) for r in range(2)]
        assert ranks[0].info()["num_batches"] == one.info()["num_batches"]
        assert ranks[0].info()["num_sequences"] == one.info()["num_sequences"]
        for step in range(3 * one.info()["num_batches"] + 1):    # across shards and epochs
            x1, y1 = one.next()
            (x0, y0), (xr, yr) = ranks[0].next(), ranks[1].next()
            assert (np.concatenate([x0, xr]) == x1).all() and (np.concatenate([y0, yr]) == y1).all(), step
            check_rows(x1, y1, streams)


def epoch_batches(dl, steps):
    return [np.concatenate(dl.next()) for _ in range(steps)]


def test_bos_shuffle_is_seeded(shards):
    pattern, streams = shards
    steps = Loader(pattern, B, T).info()["num_batches"]
    a = epoch_batches(Loader(pattern, B, T, shuffle=1, seed=1), 2 * steps)
    b = epoch_batches(Loader(pattern, B, T, shuffle=1, seed=1), 2 * steps)
    c = epoch_batches(Loader(pattern, B, T, shuffle=1, seed=2), 2 * steps)
    plain = epoch_batches(Loader(pattern, B, T), steps)
    assert all((x == y).all() for x, y in zip(a, b))
    assert any((x != y).any() for x, y in zip(a, c))
    assert any((x != y).any() for x, y in zip(a, plain))
    assert any((x != y).any() for x, y in zip(a[:steps], a[steps:])), "each epoch has its own order"
    # a shuffled epoch reads distinct usable starts, as many as an unshuffled one
    where = [w for batch in a[:steps] for w in check_rows(batch[:B], batch[B:], streams)]
    assert len(set(where)) == len(where) == steps * B


@pytest.mark.parametrize("layout", [DOCUMENTS, WINDOWS, BOS_WINDOWS])
def test_seek_resumes_the_same_batches(shards, layout):
    pattern, _ = shards
    t = T if layout == DOCUMENTS else 8
    if layout != DOCUMENTS:    # the windows refuse a shard shorter than a batch: leave out the small one
        pattern = pattern.parent / "docs_00[023].bin"
    dl = Loader(pattern, B, t, shuffle=1, seed=3, layout=layout)
    steps = 2 * dl.info()["num_batches"] + 3
    positions, batches = [], []
    for _ in range(steps):
        positions.append(dl.info())
        batches.append(np.concatenate(dl.next()))
    for k in range(steps):
        resumed = Loader(pattern, B, t, shuffle=1, seed=3, layout=layout)
        p = positions[k]
        resumed.seek(p["epoch"], p["shard"], p["sample"])
        for j in range(k, min(k + 4, steps)):
            assert (np.concatenate(resumed.next()) == batches[j]).all(), (k, j)


def test_fixed_windows_unchanged(tmp_path):
    tokens = np.arange(1000) % 256
    write_shard(tmp_path / "w_000.bin", tokens)
    for rank in range(2):
        dl = Loader(tmp_path / "w_*.bin", 3, 8, rank=rank, ranks=2, layout=WINDOWS, bos=-1)
        info = dl.info()
        assert info["num_batches"] == (1000 - 1) // 48 and info["epoch_tokens"] == info["num_tokens"] == 1000
        assert info["distinct"] == info["num_batches"] * 48
        for s in range(info["num_batches"]):
            x, y = dl.next()
            start = s * 48 + rank * 24
            assert (x.ravel() == tokens[start:start + 24]).all() and (y.ravel() == tokens[start + 1:start + 25]).all()


def document_starts(pattern, t, n):
    out = np.full((max(n, 1), t), -1, dtype=np.int32)
    skipped = ctypes.c_size_t(0)
    found = LIB.shard_document_starts(str(pattern).encode(), EOT, V, t, n, out.ctypes.data_as(ctypes.c_void_p),
                                      ctypes.byref(skipped))
    return found, out[:found], skipped.value


def test_shard_document_starts(shards):
    pattern, streams = shards
    # every start with T tokens in its shard (T, not T+1: evaluation needs no targets) and no other EOT
    # among them, in glob order; the starts with another EOT are passed over
    spans = [s[p:p + T] for s in streams for p, t in enumerate(s) if t == EOT and p + T <= len(s)]
    expected = [x for x in spans if EOT not in x[1:]]
    passed_over = [i for i, x in enumerate(spans) if EOT in x[1:]]
    assert len(passed_over) > 5 and expected[-1] == streams[-1][-T:]
    found, rows, skipped = document_starts(pattern, T, 7)
    assert found == 7 and rows.tolist() == expected[:7]
    assert skipped == sum(1 for i in passed_over if i < spans.index(expected[6])), "skipped before the 7th"
    found, rows, skipped = document_starts(pattern, T, len(expected))
    assert found == len(expected) and rows.tolist() == expected and skipped == len(passed_over)
    # too few: returns how many there are; the caller decides it is an error
    found, rows, _ = document_starts(pattern, T, len(expected) + 10)
    assert found == len(expected) and rows.tolist() == expected


def line_starts(pattern, line_end, t, n):
    out = np.full((max(n, 1), t), -1, dtype=np.int32)
    flags = np.ascontiguousarray(line_end, dtype=np.uint8)
    found = LIB.shard_line_starts(str(pattern).encode(), flags.ctypes.data_as(ctypes.c_void_p), V, t, n,
                                  out.ctypes.data_as(ctypes.c_void_p))
    return found, out[:found]


def reference_line_starts(streams, line_end, t):
    """Spans of t tokens right after a line-ending token, in order, each starting at or after the end
    of the one before in its shard."""
    spans = []
    for s in streams:
        free = 0
        for q in range(len(s) - 1):
            if line_end[s[q]] and q + 1 >= free and q + 1 + t <= len(s):
                spans.append(s[q + 1:q + 1 + t])
                free = q + 1 + t
    return spans


def test_shard_line_starts(tmp_path):
    # lines of known lengths (byte 10 ends each) in two shards, EOTs between some of them; and a
    # second line-ending token (a "merge" 200 whose text ends with a newline)
    gen = np.random.default_rng(4)
    streams = []
    for i, lengths in enumerate([[5, 30, 12, 3, 40, 8, 25, 1, 19, 60, 7], [14, 2, 33, 21, 9, 16]]):
        s = []
        for j, n in enumerate(lengths):
            s += [int(x) for x in gen.integers(11, 200, n)] + [10 if j % 3 else 200]
            if j % 4 == 1:
                s.append(EOT)
        streams.append(s)
        write_shard(tmp_path / f"lines_{i:03d}.bin", s)
    pattern = tmp_path / "lines_*.bin"
    line_end = np.zeros(V, dtype=np.uint8)
    line_end[[10, 200]] = 1
    t = 16
    expected = reference_line_starts(streams, line_end, t)
    assert 6 < len(expected) and any(EOT in x for x in expected), "the case needs an EOT inside a window"
    found, rows = line_starts(pattern, line_end, t, len(expected) + 5)
    assert found == len(expected) and rows.tolist() == expected
    found, rows = line_starts(pattern, line_end, t, 4)
    assert found == 4 and rows.tolist() == expected[:4]
    # overlapping starts are passed over: with t = 1 every line start is a window
    found, rows = line_starts(pattern, line_end, 1, 1000)
    assert found == sum(1 for s in streams for q in range(len(s) - 1) if line_end[s[q]])
    only_newline = np.zeros(V, dtype=np.uint8)
    only_newline[10] = 1
    found, rows = line_starts(pattern, only_newline, t, 1000)
    assert rows.tolist() == reference_line_starts(streams, only_newline, t)


# ----------------------------------------------------------------------------
# BOS windows (bos=window)

TW = 16                          # sequence length: windows of TW-1 shard tokens
STREAM_LENGTHS = [700, 333, 1000]


@pytest.fixture(scope="module")
def streams(tmp_path_factory):
    """Shards of random tokens with EOTs among them (5%): any TW consecutive tokens occur once."""
    d = tmp_path_factory.mktemp("windows")
    gen = np.random.default_rng(11)
    out = []
    for i, n in enumerate(STREAM_LENGTHS):
        s = gen.integers(0, 256, n)
        s[gen.random(n) < 0.05] = EOT
        out.append(s.tolist())
        write_shard(d / f"stream_{i:03d}.bin", s)
    return d / "stream_*.bin", out


def window_count(n, t=TW):
    return (n - (t - 1)) // (t - 1)


def locate(inputs, targets, streams, t=TW):
    """Each row is the BOS, then t-1 tokens of a shard, with the targets those tokens and the next;
    returns the (shard, start) of each row."""
    where = []
    for x, y in zip(inputs, targets):
        assert x[0] == EOT, "a BOS window must start with the BOS"
        assert (x[1:] == y[:-1]).all(), "targets must be the inputs after the BOS, shifted by one"
        hits = [(s, o) for s, tokens in enumerate(streams) for o in range(len(tokens) - t + 1)
                if tokens[o:o + t] == list(y)]
        assert len(hits) == 1, f"row {list(y)} is not {t} consecutive tokens of one shard"
        where.append(hits[0])
    return where


def read_epochs(dl, epochs, streams, t=TW):
    """[(epoch, shard, start)] of every row of the next `epochs` epochs."""
    rows = []
    for _ in range(epochs * dl.info()["num_batches"]):
        x, y = dl.next()
        epoch = dl.info()["epoch"]
        rows += [(epoch, s, o) for s, o in locate(x, y, streams, t)]
    return rows


def test_bos_windows_layout_and_coverage(streams):
    pattern, tokens = streams
    dl = Loader(pattern, B, TW, layout=BOS_WINDOWS)
    info = dl.info()
    counts = [window_count(n) for n in STREAM_LENGTHS]
    assert info["num_batches"] == sum(c // B for c in counts)
    assert info["num_sequences"] == info["num_batches"] * B and info["epoch_tokens"] == info["num_sequences"] * TW
    assert info["distinct"] == info["num_sequences"] * (TW - 1) and info["num_tokens"] == sum(STREAM_LENGTHS)
    shift = info["shift"]
    assert 0 <= shift < TW - 1
    rows = read_epochs(dl, 1, tokens)
    # unshuffled: the shards in order, each one's windows in order from the epoch's shift, the inputs
    # tiling the shard from the shift on (the last, partial batch of each shard left out)
    assert [(s, o) for _, s, o in rows] == [(s, shift + w * (TW - 1)) for s, c in enumerate(counts)
                                            for w in range(c // B * B)]
    for s, c in enumerate(counts):
        inputs = sorted(q for _, r, o in rows if r == s for q in range(o, o + TW - 1))
        assert inputs == list(range(shift, shift + c // B * B * (TW - 1))), f"shard {s}: windows overlap or gap"
        assert len(tokens[s]) - inputs[-1] - 1 < (B + 2) * (TW - 1), f"shard {s}: too much left out at its end"
    # the stream's own EOTs stay inside windows
    dl = Loader(pattern, B, TW, layout=BOS_WINDOWS)
    assert any(EOT in dl.next()[0][:, 1:] for _ in range(info["num_batches"]))


def test_bos_windows_epochs_shift_the_cut(streams):
    pattern, tokens = streams
    dl = Loader(pattern, B, TW, layout=BOS_WINDOWS, seed=7)
    rows = read_epochs(dl, 8, tokens)
    shifts = {}
    for epoch, s, o in rows:
        shifts.setdefault(epoch, set()).add(o % (TW - 1))
    assert sorted(shifts) == list(range(8)) and all(len(v) == 1 for v in shifts.values()), "one shift per epoch"
    assert len({v.pop() for v in shifts.values()}) >= 4, "the epochs' shifts should differ"
    starts = {o for _, s, o in rows if s == 0}
    assert len({o % (TW - 1) for o in starts}) >= 4, "over epochs windows start at other offsets"


def test_bos_windows_shuffle_is_seeded(streams):
    pattern, tokens = streams
    steps = Loader(pattern, B, TW, layout=BOS_WINDOWS).info()["num_batches"]
    a = epoch_batches(Loader(pattern, B, TW, shuffle=1, seed=1, layout=BOS_WINDOWS), 2 * steps)
    b = epoch_batches(Loader(pattern, B, TW, shuffle=1, seed=1, layout=BOS_WINDOWS), 2 * steps)
    c = epoch_batches(Loader(pattern, B, TW, shuffle=1, seed=2, layout=BOS_WINDOWS), 2 * steps)
    plain = epoch_batches(Loader(pattern, B, TW, seed=1, layout=BOS_WINDOWS), steps)
    assert all((x == y).all() for x, y in zip(a, b)), "same seed, same batches"
    assert any((x != y).any() for x, y in zip(a, c)), "another seed, another order"
    assert any((x != y).any() for x, y in zip(a, plain)), "shuffled and unshuffled read alike"
    assert any((x != y).any() for x, y in zip(a[:steps], a[steps:])), "each epoch has its own order"
    # a shuffled epoch reads distinct windows of one shift, as many as an unshuffled one
    where = [w for batch in a[:steps] for w in locate(batch[:B], batch[B:], tokens)]
    assert len(set(where)) == len(where) == steps * B
    assert len({o % (TW - 1) for _, o in where}) == 1


def test_bos_windows_ranks_are_disjoint_and_read_what_one_rank_with_2B_reads(streams):
    pattern, tokens = streams
    for shuffle in (0, 1):
        one = Loader(pattern, 2 * B, TW, shuffle=shuffle, seed=5, layout=BOS_WINDOWS)
        ranks = [Loader(pattern, B, TW, rank=r, ranks=2, shuffle=shuffle, seed=5, layout=BOS_WINDOWS)
                 for r in range(2)]
        steps = one.info()["num_batches"]
        assert ranks[0].info()["num_batches"] == ranks[1].info()["num_batches"] == steps
        assert ranks[0].info()["num_sequences"] == one.info()["num_sequences"]
        read = [set(), set()]
        for step in range(2 * steps + 1):    # across shards and epochs
            x1, y1 = one.next()
            (x0, y0), (xr, yr) = ranks[0].next(), ranks[1].next()
            assert (np.concatenate([x0, xr]) == x1).all() and (np.concatenate([y0, yr]) == y1).all(), step
            if step < steps:
                read[0] |= set(locate(x0, y0, tokens))
                read[1] |= set(locate(xr, yr, tokens))
        assert len(read[0]) == len(read[1]) == steps * B and not read[0] & read[1], "ranks must not share windows"


def test_bos_windows_errors(streams, tmp_path):
    pattern, _ = streams
    # a batch of 2 ranks x B=2 windows of 15 tokens, + 15 for the shift, needs 75 tokens
    write_shard(tmp_path / "short_000.bin", np.arange(74) % 256)
    short = tmp_path / "short_*.bin"
    r = run_child(f"from test_loader import Loader; Loader({str(short)!r}, 2, {TW}, ranks=2, layout=2)")
    assert_one_error(r, tmp_path / "short_000.bin", "74 tokens", "fewer than one batch of BOS windows", "= 75")
    write_shard(tmp_path / "exact_000.bin", np.arange(75) % 256)
    r = run_child(f"from test_loader import Loader; "
                  f"print(Loader({str(tmp_path / 'exact_*.bin')!r}, 2, {TW}, ranks=2, layout=2).info()['num_batches'])")
    assert r.returncode == 0 and r.stdout.strip() == "1", r.stderr
    r = run_child(f"from test_loader import Loader; Loader({str(pattern)!r}, 2, 1, layout=2)")
    assert_one_error(r, pattern, "bos=window needs T >= 2", "T=1")
    r = run_child(f"from test_loader import Loader; Loader({str(pattern)!r}, 2, {TW}, layout=2, bos=257)")
    assert_one_error(r, pattern, "BOS token 257")
    r = run_child(f"from test_loader import Loader; Loader({str(pattern)!r}, 2, {TW}, layout=3)")
    assert_one_error(r, pattern, "unknown data layout 3")


def run_child(code):
    """code in a child process (the loader's errors exit it), importing from this folder and test/."""
    path = os.pathsep.join([os.path.dirname(os.path.abspath(__file__)), os.path.join(ROOT, "test")])
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=HANG_TIMEOUT,
                          env=dict(os.environ, PYTHONPATH=path))


def assert_one_error(r, *needles):
    lines = r.stderr.strip().splitlines()
    assert r.returncode != 0 and len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    for n in needles:
        assert str(n) in lines[0], f"{n!r} not in {lines[0]!r}"


def test_bos_errors(shards, tmp_path):
    pattern, streams = shards
    small = tmp_path / "few_*.bin"
    write_shard(tmp_path / "few_000.bin", shard_tokens(documents([20, 20, 3], 0)))
    write_shard(tmp_path / "few_001.bin", shard_tokens(documents([30], 9)))
    # 2 + 1 usable starts, but a batch of 2 ranks x B=2 needs 4 in one shard
    r = run_child(f"from test_loader import Loader; Loader({str(small)!r}, 2, {T}, ranks=2)")
    assert_one_error(r, small, "no shard has a full batch of document starts", "3 found in 2 shards",
                     "at most 2 in one", "needs 4")
    r = run_child(f"from test_loader import Loader; Loader({str(pattern)!r}, 2, {T}, bos=300)")
    assert_one_error(r, pattern, "BOS token 300")
