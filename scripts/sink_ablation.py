"""The attention-sink emergence ablation: train a list of model variants with ./train_gpt2 on the
same data, seed and token budget, record the sink metric (Sink_k, first-token attention and, for
sink-slot variants, Sink*; docs/MODEL.md section 13) and the val loss as training goes, and
compare them in a markdown table and plots.

    /usr/bin/python3 scripts/sink_ablation.py [--data DIR] [--out DIR] [--only NAMES]
        [--config FILE] [--parallel K] [--cores N] [training options]
    /usr/bin/python3 scripts/sink_ablation.py --report-only [--out DIR]    # table and plots only
    /usr/bin/python3 scripts/sink_ablation.py --measure-parallel           # 1 x all cores vs 2 x half
    /usr/bin/python3 scripts/sink_ablation.py --list                       # the variants

Every variant is the base descriptor plus its keys (`--list` prints them), trained with
`-v`, `-sa` and `-n` every `--every` steps into `--out/<variant-slug>/` (main.log, checkpoints,
train.out: its stdout, cmd.txt: the command of each invocation). At the end, and with
`--report-only`, `--out` gets results.md (a table: final val loss, Sink_k, Sink*, first-token
attention and training tokens/s of each variant), sink.png, val_loss.png and first_token.png
(each against tokens seen = step * tokens per step).

The data (--data DIR, default datasets/kjv_passages): DIR/train_*.bin, DIR/val_*.bin and
DIR/tokenizer.bin, documents separated by the end-of-text token (the base has bos=1). The King
James Bible, byte-level, a document at every chapter and every fifth verse (passages of about 620
bytes, so a sequence of 128 holds one document start: docs/ABLATIONS.md says why that matters);
scripts/sink_ablation_cpu.sh makes it and runs the suite:
    bible "Gen1:1-Rev22:21" > kjv.txt
    ./prepare -o datasets/kjv_passages --bytes --val-frac 0.05 --doc-start '^ +([0-9]*[05]|1) ' kjv.txt

Resume: a variant whose final checkpoint (model_<steps>.bin) exists and whose main.log has the
final sink line is not trained again; one with checkpoints resumes with `-y 1` from the newest
(main.log is cut back to that checkpoint's line first). Either needs the same command as before
(cmd.txt's first line, the threads aside): a run directory left by other settings is reported and
left alone. Checkpoints stay (plot_sinks.py can follow a run through them). A run that fails is
reported with the end of its output; the others go on and the exit status is 1. Ctrl-C stops the
runs; run the same command again to resume them.

Parallel: `--parallel K` trains K variants at a time with OMP_NUM_THREADS = cores // K each
(cores: --cores or os.cpu_count()); `--measure-parallel` times a short run of the first variant
both ways and says which gives more tokens/s in all.

Settings, lowest precedence first: the defaults below, the `--config` file, the command line.
The config file is a JSON object with any of these keys (and their command-line twins):
    {
      "base": "L=4,C=128,H=4,T=128,V=257,rope=1,bos=1",    --base
      "batch": 32, "seq": 128, "total_batch": 0,             -b, -t, -d (0: B*T)
      "tokens": 2800000,                                     steps = tokens // tokens per step
      "lr": 0.003, "schedule": "constant", "warmup": 50,     -l, -k, -u
      "final_frac": 1.0, "weight_decay": 0.1,                -q, -c
      "every": 100, "val_batches": 20,                       -v -sa -n every N steps, -m
      "sink_seqs": 100, "sink_T": 64, "sink_key": 1, "sink_eps": 0.3,   -sn -st -sk -se
      "seed": 1337,                                          -S
      "extra": "-gc 1.0",                                    more train_gpt2 flags
      "variants": {"softmax": "", "gate elem": "gate=elem"}  name -> descriptor keys
    }
(without the comments: JSON has none). "variants" replaces the built-in suite; --only picks
from whichever list is in force, by name or slug.
"""
import argparse
import datetime
import glob
import itertools
import json
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = os.environ.get("ATTNLAB_TRAIN", os.path.join(ROOT, "train_gpt2"))

# The contrasts of Gu et al. (arXiv 2410.10781) and the gated-attention paper: name -> keys.
VARIANTS = {
    "softmax": "",
    "gate elem": "gate=elem",
    "gate head": "gate=head",
    "sigmoid b=0": "mixer=sigmoid,bias=0",
    "sigmoid b=-ln n": "mixer=sigmoid",
    "sigmoid normalized": "mixer=sigmoid,bias=0,norm=1",
    "mLSTM": "mixer=mlstm,rope=0",        # RoPE is for attention: later keys override the base's
    "softmax + K bias": "sink=k",
    "softmax + KV bias": "sink=kv",
    "softmax + sink logit": "sink=logit",
    "softmax off-by-one": "sink=one",
}

# setting -> (default, type, train_gpt2 flag or None, help); sized for a 2-core CPU
SETTINGS = {
    "base": ("L=4,C=128,H=4,T=128,V=257,rope=1,bos=1", str, None, "model descriptor shared by the variants"),
    "batch": (32, int, "-b", "micro-batch size B"),
    "seq": (128, int, "-t", "sequence length T"),
    "total_batch": (0, int, "-d", "tokens per step (0: B*T)"),
    "tokens": (2.8e6, float, None, "token budget: steps = tokens // tokens per step"),
    "lr": (3e-3, float, "-l", "learning rate"),
    "schedule": ("constant", str, "-k", "lr schedule"),
    "warmup": (50, int, "-u", "warmup steps"),
    "final_frac": (1.0, float, "-q", "final lr fraction"),
    "weight_decay": (0.1, float, "-c", "weight decay"),
    "every": (100, int, None, "val loss, sink analysis and checkpoint every N steps"),
    "val_batches": (20, int, "-m", "val batches"),
    "sink_seqs": (100, int, "-sn", "sink analysis sequences"),
    "sink_T": (64, int, "-st", "sink analysis tokens per sequence"),
    "sink_key": (1, int, "-sk", "the key k of Sink_k"),
    "sink_eps": (0.3, float, "-se", "the threshold eps"),
    "seed": (1337, int, "-S", "seed"),
    "extra": ("", str, None, "more train_gpt2 flags, e.g. \"-gc 0\""),
}
POLL_S, PROGRESS_EVERY_S, MEASURE_STEPS = 0.2, 30.0, 30
STEP_LINE = re.compile(r"step +(\d+)/(\d+) \|.*\| ([\d.]+) tok/s")


def fail(message):
    """One line on stderr, exit status 1."""
    sys.exit(f"sink_ablation.py: {message}")


def slug(name):
    """The run directory name of a variant: lower case, runs of other characters as '_'."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


@dataclass
class Config:
    """Everything that defines the experiment: the settings, the variants, the data and out dirs."""
    variants: dict
    data: str
    out: str
    base: str
    batch: int
    seq: int
    total_batch: int
    tokens: float
    lr: float
    schedule: str
    warmup: int
    final_frac: float
    weight_decay: float
    every: int
    val_batches: int
    sink_seqs: int
    sink_T: int
    sink_key: int
    sink_eps: float
    seed: int
    extra: str

    @property
    def tokens_per_step(self):
        return self.total_batch or self.batch * self.seq

    @property
    def steps(self):
        return max(1, int(self.tokens // self.tokens_per_step))

    def run_dir(self, name):
        return os.path.join(self.out, slug(name))

    def model_flags(self, name, steps):
        """train_gpt2 flags shared by the ablation runs and the parallel measurement."""
        keys = self.variants[name]
        flags = ["-e", self.base + ("," + keys if keys else ""), "-i", os.path.join(self.data, "train_*.bin"),
                 "-j", os.path.join(self.data, "val_*.bin"), "-x", str(steps), "-s", "0"]
        for setting, (_, _, flag, _) in SETTINGS.items():
            if flag and not (setting == "total_batch" and not self.total_batch):
                flags += [flag, str(getattr(self, setting))]
        return [TRAIN] + flags

    def command(self, name):
        """The full training command of a variant (without -y)."""
        e = str(self.every)
        return (self.model_flags(name, self.steps) + ["-o", self.run_dir(name), "-v", e, "-n", e, "-sa", e]
                + shlex.split(self.extra))


# ---------------------------------------------------------------- settings and checks

def read_config_file(path):
    """The settings of a --config JSON file; fails with one line on unknown keys or bad variants."""
    try:
        with open(path) as f:
            settings = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        fail(f"--config {path}: {e}")
    if not isinstance(settings, dict):
        fail(f"--config {path}: expected a JSON object")
    unknown = sorted(set(settings) - set(SETTINGS) - {"variants"})
    if unknown:
        fail(f"--config {path}: unknown key(s) {', '.join(unknown)}; known: {', '.join(SETTINGS)}, variants")
    variants = settings.get("variants", {})
    if not isinstance(variants, dict) or not all(isinstance(v, str) for v in variants.values()):
        fail(f"--config {path}: \"variants\" must be an object of name -> descriptor keys")
    return settings


def select(variants, only):
    """The variants named (or slugged) in the comma-separated `only`, all without it."""
    if not only:
        return dict(variants)
    by_slug = {slug(n): n for n in variants}
    chosen = {}
    for name in (n.strip() for n in only.split(",")):
        real = name if name in variants else by_slug.get(slug(name))
        if real is None:
            fail(f"--only: unknown variant '{name}'; variants: {', '.join(variants)}")
        chosen[real] = variants[real]
    return chosen


def make_config(args):
    """Defaults, then the config file, then the command line."""
    settings = {k: default for k, (default, _, _, _) in SETTINGS.items()}
    settings["variants"] = VARIANTS
    if args.config:
        settings.update(read_config_file(args.config))
    settings.update({k: getattr(args, k) for k in SETTINGS if getattr(args, k) is not None})
    variants = select(settings.pop("variants"), args.only)
    slugs = [slug(n) for n in variants]
    if len(set(slugs)) != len(slugs) or "" in slugs:
        fail(f"variant names must give distinct, non-empty directory names: {', '.join(slugs)}")
    return Config(variants=variants, data=os.path.abspath(args.data), out=os.path.abspath(args.out), **settings)


def check_can_train(cfg):
    """One-line errors for a missing trainer or data before anything starts."""
    if not os.access(TRAIN, os.X_OK):
        fail(f"{TRAIN} not found: build it with `make train_gpt2`")
    if not os.path.isdir(cfg.data):
        fail(f"--data {cfg.data}: no such directory (scripts/sink_ablation_cpu.sh makes the default data, or: "
             f"bible \"Gen1:1-Rev22:21\" > kjv.txt && ./prepare -o {cfg.data} --bytes --val-frac 0.05 "
             f"--doc-start '^ +([0-9]*[05]|1) ' kjv.txt)")
    for kind in ("train", "val"):
        if not glob.glob(os.path.join(cfg.data, f"{kind}_*.bin")):
            fail(f"--data {cfg.data}: no {kind}_*.bin shards (./prepare -o {cfg.data} ... writes them)")


# ---------------------------------------------------------------- run directories

def parse_log(path):
    """main.log as curves: {"trl"|"tel"|"sink"|"fattn"|"slot": {step: value}}. A step logged twice
    (a resumed run repeats its first step's val and sink lines) keeps the later value; a last line
    cut off mid-write is ignored."""
    curves = {key: {} for key in ("trl", "tel", "sink", "fattn", "slot")}
    if not os.path.exists(path):
        return curves
    with open(path) as f:
        for line in f:
            fields = line.split()
            if not line.endswith("\n") or not fields or not fields[0].startswith("s:"):
                continue
            step = int(fields[0][2:])
            for item in fields[1:]:
                key, _, value = item.partition(":")
                if key in curves:
                    curves[key][step] = float(value)
    return curves


def checkpoint_path(run_dir, kind, step):
    return os.path.join(run_dir, f"{kind}_{step:08d}.bin")


def checkpoint_steps(run_dir):
    """Steps with a complete checkpoint (train_gpt2 writes the state file last), ascending."""
    steps = [int(m.group(1)) for f in glob.glob(os.path.join(run_dir, "state_*.bin"))
             if (m := re.search(r"state_(\d{8})\.bin$", f))]
    return sorted(s for s in steps if os.path.exists(checkpoint_path(run_dir, "model", s)))


def is_finished(run_dir, steps):
    """The final checkpoint exists and main.log has the final sink line."""
    return (os.path.exists(checkpoint_path(run_dir, "model", steps))
            and steps in parse_log(os.path.join(run_dir, "main.log"))["sink"])


def saved_command(run_dir):
    """cmd.txt's first line (the run's first invocation) as arguments, without OMP_NUM_THREADS=."""
    try:
        with open(os.path.join(run_dir, "cmd.txt")) as f:
            args = shlex.split(f.readline())
    except OSError:
        return None
    return [a for a in args if not a.startswith("OMP_NUM_THREADS=")]


def cut_log(run_dir, step):
    """Cuts main.log after the line of the checkpoint at `step`, dropping what an interrupted run
    logged after it (the resumed run logs it again)."""
    path = os.path.join(run_dir, "main.log")
    if not os.path.exists(path):
        return
    with open(path) as f:
        lines = f.readlines()
    mark = f"s:{step} checkpoint\n"
    if mark in lines:
        with open(path, "w") as f:
            f.writelines(lines[:lines.index(mark) + 1])


# ---------------------------------------------------------------- training

@dataclass
class Job:
    """One train_gpt2 process of a variant: its command, where it started and how far it got."""
    name: str
    cmd: list
    run_dir: str
    total: int
    start_step: int = 0
    step: int = 0
    tok_s: float = 0.0
    proc: subprocess.Popen = None
    started: float = 0.0
    out_offset: int = 0

    def __post_init__(self):
        self.step = self.start_step

    @property
    def out_path(self):
        return os.path.join(self.run_dir, "train.out")

    def start(self, threads):
        """Launches train_gpt2 with its stdout in train.out; records the command in cmd.txt and
        returns what to print about it."""
        os.makedirs(self.run_dir, exist_ok=True)
        line = f"OMP_NUM_THREADS={threads} {shlex.join(self.cmd)}"
        mode = "a" if self.start_step else "w"
        with open(os.path.join(self.run_dir, "cmd.txt"), mode) as f:
            f.write(line + "\n")
        with open(self.out_path, mode) as out:
            self.out_offset = out.tell()
            env = dict(os.environ, OMP_NUM_THREADS=str(threads))
            self.proc = subprocess.Popen(self.cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        self.started = time.time()
        return f"{self.name}: {f'resuming at step {self.start_step}' if self.start_step else 'training'}\n$ {line}"

    def output(self):
        """What this invocation has printed so far."""
        with open(self.out_path, errors="replace") as f:
            f.seek(self.out_offset)
            return f.read()

    def update(self):
        """The latest step and tokens/s from the process's output."""
        steps = STEP_LINE.findall(self.output())
        if steps:
            self.step, self.tok_s = int(steps[-1][0]), float(steps[-1][2])

    def rate(self, tokens_per_step):
        """Tokens per second of wall time since the start, evaluations included (for the ETA)."""
        elapsed = time.time() - self.started
        return (self.step - self.start_step) * tokens_per_step / elapsed if elapsed > 0 else 0.0


class Conflict(Exception):
    """A run directory holds a run made with other settings."""


def plan(cfg, name):
    """The Job that brings a variant to its final step, or None when there is nothing to do.
    Raises Conflict when its run directory holds a run with other settings."""
    run_dir, cmd = cfg.run_dir(name), cfg.command(name)
    done, steps = is_finished(run_dir, cfg.steps), checkpoint_steps(run_dir)
    if (done or steps) and saved_command(run_dir) != cmd:
        raise Conflict(f"{name}: {run_dir} holds a run with other settings than now (its cmd.txt); "
                       "delete it or use another --out")
    if done:
        print(f"{name}: finished ({checkpoint_path(run_dir, 'model', cfg.steps)}), skipping")
        return None
    if steps:
        cut_log(run_dir, steps[-1])
        return Job(name, cmd + ["-y", "1"], run_dir, cfg.steps, start_step=steps[-1])
    return Job(name, cmd, run_dir, cfg.steps)


class Progress:
    """The progress line: each running variant's step and tokens/s, and the overall ETA; rewritten
    in place on a terminal, else printed every PROGRESS_EVERY_S seconds."""

    def __init__(self, tokens_per_step, stream=sys.stdout):
        self.tokens_per_step, self.stream = tokens_per_step, stream
        self.tty, self.shown, self.last = stream.isatty(), False, time.time()

    def clear(self):
        """Erases the progress line from the terminal."""
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.shown = False

    def message(self, text):
        """A line of its own, above the progress line."""
        self.clear()
        print(text, file=self.stream, flush=True)

    def show(self, running, pending):
        parts = [f"{j.name} {j.step}/{j.total} {j.tok_s:.0f} tok/s" for j in running]
        if pending:
            parts.append(f"{len(pending)} queued")
        rate = sum(j.rate(self.tokens_per_step) for j in running)
        left = sum(j.total - j.step for j in running + pending) * self.tokens_per_step
        parts.append(f"ETA {left / rate / 60:.1f} min" if rate > 0 else "ETA ?")
        line = " | ".join(parts)
        if self.tty:
            self.stream.write("\r\x1b[K" + line[:shutil.get_terminal_size().columns - 1])
            self.stream.flush()
            self.shown = True
        elif time.time() - self.last >= PROGRESS_EVERY_S:
            print(line, file=self.stream, flush=True)
            self.last = time.time()


def finish(job, cfg, progress):
    """Reports a process that ended; returns True when the variant finished."""
    rc = job.proc.returncode
    ok = rc == 0 and is_finished(job.run_dir, cfg.steps)
    if ok:
        progress.message(f"{job.name}: finished in {(time.time() - job.started) / 60:.1f} min")
    else:
        why = f"exit status {rc}" if rc else "no final checkpoint and sink line"
        tail = "\n".join("    " + l for l in job.output().splitlines()[-15:])
        progress.message(f"{job.name}: FAILED ({why}); the end of {job.out_path}:\n{tail}")
    return ok


def run_jobs(jobs, cfg, parallel, threads):
    """Runs the jobs, `parallel` at a time, each with `threads` threads; returns the names of the
    variants that failed. Stops the running processes if interrupted."""
    pending, running, failed = list(jobs), [], []
    progress = Progress(cfg.tokens_per_step)
    try:
        while pending or running:
            while pending and len(running) < parallel:
                running.append(pending.pop(0))
                progress.message(running[-1].start(threads))
            time.sleep(POLL_S)
            for job in list(running):
                job.update()
                if job.proc.poll() is not None:
                    running.remove(job)
                    if not finish(job, cfg, progress):
                        failed.append(job.name)
            progress.show(running, pending)
    finally:
        for job in running:
            job.proc.terminate()
            job.proc.wait()
    progress.clear()
    return failed


def train(cfg, parallel, cores):
    """Plans and runs every variant; returns the names that failed or conflict."""
    check_can_train(cfg)
    threads = max(1, cores // parallel)
    print(f"{len(cfg.variants)} variants, {cfg.steps} steps of {cfg.tokens_per_step} tokens, "
          f"{parallel} at a time with {threads} threads each; runs in {cfg.out}", flush=True)
    jobs, problems = [], []
    for name in cfg.variants:
        try:
            job = plan(cfg, name)
        except Conflict as e:
            print(e, file=sys.stderr)
            problems.append(name)
            continue
        if job:
            jobs.append(job)
    return problems + run_jobs(jobs, cfg, parallel, threads)


def measure_parallel(cfg, cores):
    """Times MEASURE_STEPS steps of the first variant as 1 run x all cores and as 2 runs side by
    side x half the cores; prints the tokens/s of each (summed over the runs) and the faster."""
    check_can_train(cfg)
    if cores < 2:
        fail(f"--measure-parallel needs at least 2 cores (have {cores})")
    name = next(iter(cfg.variants))
    cmd = cfg.model_flags(name, MEASURE_STEPS) + ["-v", "0"] + shlex.split(cfg.extra)
    print(f"measuring {MEASURE_STEPS} steps of '{name}' on {cores} cores", flush=True)
    if os.getloadavg()[0] > 0.5:
        print(f"note: load average {os.getloadavg()[0]:.1f}: other processes are running and skew the result")
    totals = {}
    for runs in (1, 2):
        env = dict(os.environ, OMP_NUM_THREADS=str(cores // runs))
        procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
                 for _ in range(runs)]
        rates = []
        for p in procs:
            out = p.communicate()[0]
            if p.returncode != 0:
                fail(f"measurement run failed (exit status {p.returncode}): {(out.strip().splitlines() or [''])[-1]}")
            rates.append(statistics.median(float(r) for *_, r in STEP_LINE.findall(out)[2:]))
        totals[runs] = sum(rates)
        print(f"  {runs} run(s) x {cores // runs} threads: "
              f"{' + '.join(f'{r:.0f}' for r in rates)} = {totals[runs]:.0f} tok/s", flush=True)
    best = max(totals, key=totals.get)
    print(f"faster: --parallel {best} ({totals[best] / totals[3 - best]:.2f}x the other)")


# ---------------------------------------------------------------- report

@dataclass
class Result:
    """A variant's curves and summary, read from its run directory."""
    name: str
    keys: str
    curves: dict
    finished: bool
    tok_s: float = None
    threads: str = None

    @property
    def last_step(self):
        """The last step with a sink line, or None."""
        return max(self.curves["sink"], default=None)

    def final(self, key):
        """The value at the last logged step, or None."""
        values = self.curves[key]
        return values[max(values)] if values else None


def collect(cfg):
    """The Result of every variant of cfg, from main.log, train.out and cmd.txt."""
    results = []
    for name, keys in cfg.variants.items():
        run_dir = cfg.run_dir(name)
        result = Result(name, keys, parse_log(os.path.join(run_dir, "main.log")), is_finished(run_dir, cfg.steps))
        out = os.path.join(run_dir, "train.out")
        if os.path.exists(out):
            with open(out, errors="replace") as f:
                rates = [float(r) for *_, r in STEP_LINE.findall(f.read())]
            result.tok_s = statistics.median(rates) if rates else None
        cmd = os.path.join(run_dir, "cmd.txt")
        if os.path.exists(cmd):
            with open(cmd) as f:
                threads = re.findall(r"OMP_NUM_THREADS=(\d+)", f.read())
            result.threads = threads[-1] if threads else None
        results.append(result)
    return results


def fmt(value, spec):
    return "-" if value is None else format(value, spec)


def table(cfg, results):
    """The markdown table of the results, one row per variant."""
    k = cfg.sink_key
    rows = [f"| variant | descriptor keys | steps | val loss | Sink_{k} % | Sink* % | first-token attention "
            "| tok/s | threads |", "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        if r.finished:
            steps = str(r.last_step)
        elif r.last_step is None:
            steps = "not run"
        else:
            steps = f"{r.last_step} of {cfg.steps}, unfinished"
        rows.append(f"| {r.name} | `{r.keys or '(base)'}` | {steps} | {fmt(r.final('tel'), '.4f')} | "
                    f"{fmt(r.final('sink'), '.1f')} | {fmt(r.final('slot'), '.1f')} | "
                    f"{fmt(r.final('fattn'), '.4f')} | {fmt(r.tok_s, '.0f')} | {r.threads or '-'} |")
    return "\n".join(rows)


def series(cfg, result, key):
    """One curve of a variant as (tokens seen, values), in step order."""
    points = sorted(result.curves[key].items())
    return [s * cfg.tokens_per_step for s, _ in points], [v for _, v in points]


def plot(cfg, results, key, ylabel, path, slot=False):
    """One line per variant of `key` against tokens seen; with `slot`, Sink* dashed in the same color."""
    fig, ax = plt.subplots(figsize=(8, 5))
    colors = plt.cm.tab20.colors[::2] + plt.cm.tab20.colors[1::2]  # the 10 dark ones, then the light ones
    for r, color in zip(results, itertools.cycle(colors)):
        if r.curves[key]:
            ax.plot(*series(cfg, r, key), "-", color=color, marker="o", markersize=2, label=r.name)
        if slot and r.curves["slot"]:
            ax.plot(*series(cfg, r, "slot"), "--", color=color, marker="o", markersize=2, label=f"{r.name} (Sink*)")
    ax.set_xlabel("tokens seen")
    ax.set_ylabel(ylabel)
    ax.set_title(f"{cfg.base}, {cfg.tokens_per_step} tokens/step", fontsize=9)
    ax.grid(alpha=0.3)
    if any(r.curves[key] for r in results):
        ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(cfg, results, command):
    """results.md (settings, command, date, table) and the three plots in cfg.out."""
    os.makedirs(cfg.out, exist_ok=True)
    k = cfg.sink_key
    plot(cfg, results, "sink", f"Sink_{k} (eps {cfg.sink_eps}) %", os.path.join(cfg.out, "sink.png"), slot=True)
    plot(cfg, results, "tel", "val loss", os.path.join(cfg.out, "val_loss.png"))
    plot(cfg, results, "fattn", "first-token attention", os.path.join(cfg.out, "first_token.png"))
    extra = f", extra flags `{cfg.extra}`" if cfg.extra else ""
    text = f"""# Attention-sink ablation

- Model: `{cfg.base}` plus each variant's keys.
- Training: B={cfg.batch}, T={cfg.seq}, {cfg.tokens_per_step} tokens/step, {cfg.steps} steps \
({cfg.steps * cfg.tokens_per_step} tokens); lr {cfg.lr:g} {cfg.schedule}, warmup {cfg.warmup}, final fraction \
{cfg.final_frac:g}; weight decay {cfg.weight_decay:g}; seed {cfg.seed}{extra}.
- Data: `{cfg.data}`.
- Every {cfg.every} steps and at the end: val loss over {cfg.val_batches} batches; Sink_{k} (eps {cfg.sink_eps}), \
first-token attention and, for sink-slot variants, Sink*, over {cfg.sink_seqs} sequences of {cfg.sink_T} tokens at \
document starts of the val shards.
- The table has the values at the last logged step; tok/s is the median training step's throughput \
with OMP_NUM_THREADS = threads (variants trained side by side share the machine).

{table(cfg, results)}

- Command (in `{os.getcwd()}`): `{command}`
- Date: {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}

![Sink_{k}](sink.png)
![val loss](val_loss.png)
![first-token attention](first_token.png)
"""
    with open(os.path.join(cfg.out, "results.md"), "w") as f:
        f.write(text)
    print(f"wrote {cfg.out}/results.md, sink.png, val_loss.png, first_token.png")


# ---------------------------------------------------------------- main

def parse_args(argv):
    ap = argparse.ArgumentParser(description="Train sink-ablation variants and compare their attention sinks "
                                 "(the module docstring has the details and the config-file format).")
    ap.add_argument("--data", metavar="DIR", default=os.path.join(ROOT, "datasets", "kjv_passages"),
                    help="DIR with train_*.bin, val_*.bin, tokenizer.bin (default: datasets/kjv_passages)")
    ap.add_argument("--out", metavar="DIR", default=os.path.join(ROOT, "runs", "sink_ablation"),
                    help="runs and report go here (default: runs/sink_ablation)")
    ap.add_argument("--config", metavar="FILE", help="JSON file with settings and variants")
    ap.add_argument("--only", metavar="NAMES", help="comma-separated variant names (or slugs) to run")
    ap.add_argument("--parallel", metavar="K", type=int, default=1, help="variants trained at a time (1)")
    ap.add_argument("--cores", metavar="N", type=int, default=os.cpu_count() or 1,
                    help="cores to share (os.cpu_count())")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--report-only", action="store_true", help="only write results.md and the plots")
    mode.add_argument("--measure-parallel", action="store_true",
                      help=f"time {MEASURE_STEPS} steps as 1 x all cores and 2 x half, and exit")
    mode.add_argument("--list", action="store_true", help="print the variants and exit")
    for name, (default, kind, flag, help_text) in SETTINGS.items():
        ap.add_argument("--" + name.replace("_", "-"), dest=name, type=kind, metavar=name.upper(),
                        help=f"{help_text}{' (' + flag + ')' if flag else ''}; default {default!r}")
    args = ap.parse_args(argv)
    if args.parallel < 1 or args.cores < 1:
        fail("--parallel and --cores must be at least 1")
    return args


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    cfg = make_config(args)
    if args.list:
        for name, keys in cfg.variants.items():
            print(f"{name:24s} {slug(name):24s} {cfg.base}{',' + keys if keys else ''}")
        return 0
    if args.measure_parallel:
        measure_parallel(cfg, args.cores)
        return 0
    if args.report_only and not os.path.isdir(cfg.out):
        fail(f"--out {cfg.out}: no such directory, nothing to report")
    try:
        failed = [] if args.report_only else train(cfg, args.parallel, args.cores)
    except KeyboardInterrupt:
        fail("interrupted; run the same command again to resume")
    write_report(cfg, collect(cfg), shlex.join([sys.executable, os.path.abspath(__file__)] + argv))
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
