"""The attention-sink emergence ablation: train model variants with ./train_gpt2 on the same data and
token budget, over one or more seeds, record the sink metric (Sink_k, first-token attention,
massive activations and, for sink-slot variants, Sink*; docs/MODEL.md section 13) and the val loss
as training goes, and say for each claim of the sink papers whether these runs reproduce it.

    /usr/bin/python3 scripts/sink_ablation.py [--suite core|full] [--seeds N] [--data DIR] [--out DIR]
        [--only NAMES] [--config FILE] [--parallel K] [--cores N] [training options]
    /usr/bin/python3 scripts/sink_ablation.py --report-only [--suite ...] [--seeds N] [--out DIR]
    /usr/bin/python3 scripts/sink_ablation.py --measure-parallel    # 1 x all cores vs 2 x half
    /usr/bin/python3 scripts/sink_ablation.py --list [--suite full] # the variants

The suite (docs/ABLATIONS.md): every variant is the base model (the sink paper's kind of block:
RMSNorm, no biases in the linear layers, untied LM head, exact GELU, RoPE, weight decay on every
parameter, GPT-NeoX's init as the paper's code (`-init neox`); BOS windows: every sequence is the end-of-text token followed by T-1 tokens from any
offset of the text) plus its descriptor keys and training flags. `--suite core` (the default) is
the seven contrasts of the papers; `--suite full` adds learning rate, weight decay, the amount of
text, llm.c's init, each component of GPT-2's block switched on one at a time under the
unnormalized sigmoid, GPT-2's whole block, and mLSTM. `--list` prints them.

Each (variant, seed) trains with `-v`, `-sa` and `-n` every `--every` steps into
`--out/<variant-slug>/seed<S>/` (main.log, checkpoints, train.out: its stdout, cmd.txt: the command
of each invocation). At the end, and with `--report-only`, `--out` gets results.md: the setup (data:
tokens, epochs, distinct tokens; block; seeds; the metric), the claims table (each claim of the
papers, what was compared, the measured values as mean [min, max] over seeds, and whether it
reproduces), the table of every variant, with more than one seed the table of each run (its value
per seed and when its sink held from), and plots per group of variants: Sink_k, first-token
attention, massive activation and val loss against tokens seen, the mean over seeds as a line and
their range as a band (sink_<group>.png, first_token_<group>.png, massive_<group>.png,
val_loss_<group>.png).

The data (--data DIR, default datasets/kjv_stream): DIR/train_*.bin, DIR/val_*.bin and
DIR/tokenizer.bin. scripts/sink_ablation_cpu.sh makes the default (the King James Bible,
byte-level, one long document) and the smaller texts of the full suite (datasets/kjv_stream_q4 and
datasets/kjv_stream_q16: the first quarter and sixteenth of the training text, the same val text).

Resume: a run whose final checkpoint (model_<steps>.bin) exists and whose main.log has the final
sink line is not trained again; one with checkpoints resumes with `-y 1` from the newest (main.log
is cut back to that checkpoint's line first). Either needs the same command as before (cmd.txt's
first line, the threads aside): a run directory left by other settings is reported and left alone.
A run that fails is reported with the end of its output; the others go on and the exit status is
1. Ctrl-C stops the runs; run the same command again to resume them.

Parallel: `--parallel K` trains K runs at a time with OMP_NUM_THREADS = cores // K each (cores:
--cores or os.cpu_count()); `--measure-parallel` times a short run of the first variant both ways.

Settings, lowest precedence first: the defaults below, the `--config` file, the command line. The
config file is a JSON object with any of the SETTINGS keys (`--help` lists them) and "variants":
an object of name -> descriptor keys (a string) or name -> {"keys": ..., "flags": ..., "data":
..., "tokens": ..., "group": ...}; "variants" replaces the built-in suite, and --only picks from
whichever list is in force, by name or slug.
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
from dataclasses import dataclass, field

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = os.environ.get("ATTNLAB_TRAIN", os.path.join(ROOT, "train_gpt2"))


@dataclass
class Variant:
    """A model variant: descriptor keys added to the base, train_gpt2 flags added to the settings'
    (later flags win), its data dir and token budget when not the settings', its group (plots)."""
    keys: str = ""
    flags: str = ""
    data: str = None
    tokens: float = None
    group: str = "core"
    suite: str = "core"


# GPT-2's block, each component the way the base switches it (docs/MODEL.md section 2)
GPT2_BLOCK = "ln=layer,linbias=1,tie=1,gelu=tanh"
SIG = "mixer=sigmoid,bias=0"
# The contrasts of Gu et al. (arXiv 2410.10781) and the gated-attention paper (arXiv 2505.06708).
VARIANTS = {
    "softmax": Variant(),
    "softmax no BOS": Variant("bos=0"),
    "sigmoid b=0": Variant(SIG),
    "sigmoid normalized": Variant(SIG + ",norm=1"),
    "gate head": Variant("gate=head"),
    "gate elem": Variant("gate=elem"),
    "softmax + K bias": Variant("sink=k"),
    # --suite full: the knobs the sink paper turns on softmax
    "softmax lr 1e-3": Variant(flags="-l 0.001", group="softmax knobs", suite="full"),
    "softmax lr 6e-3": Variant(flags="-l 0.006", group="softmax knobs", suite="full"),
    "softmax wd 0.5": Variant(flags="-c 0.5", group="softmax knobs", suite="full"),
    "softmax 1/4 text": Variant(data="kjv_stream_q4", group="softmax knobs", suite="full"),
    "softmax 1/16 text": Variant(data="kjv_stream_q16", group="softmax knobs", suite="full"),
    "softmax GPT-2 block": Variant(GPT2_BLOCK, flags="-ca 0", group="softmax knobs", suite="full"),
    "softmax GPT-2 init": Variant(flags="-init gpt2", group="softmax knobs", suite="full"),
    # ... and GPT-2's block under the unnormalized sigmoid, one component at a time
    "sigmoid b=0 LayerNorm": Variant(SIG + ",ln=layer", group="sigmoid block", suite="full"),
    "sigmoid b=0 biases": Variant(SIG + ",linbias=1", group="sigmoid block", suite="full"),
    "sigmoid b=0 tied": Variant(SIG + ",tie=1", group="sigmoid block", suite="full"),
    "sigmoid b=0 tanh GELU": Variant(SIG + ",gelu=tanh", group="sigmoid block", suite="full"),
    "sigmoid b=0 wd 2-D only": Variant(SIG, flags="-ca 0", group="sigmoid block", suite="full"),
    "sigmoid b=0 GPT-2 block": Variant(SIG + "," + GPT2_BLOCK, flags="-ca 0", group="sigmoid block", suite="full"),
    "mLSTM": Variant("mixer=mlstm,rope=0", group="other mixers", suite="full"),
}

# setting -> (default, type, train_gpt2 flag or None, help); sized for a 2-core CPU
SETTINGS = {
    "base": ("L=4,C=128,H=4,T=128,V=257,rope=1,bos=window,ln=rms,linbias=0,tie=0,gelu=erf", str, None,
             "model descriptor shared by the variants"),
    "batch": (32, int, "-b", "micro-batch size B"),
    "seq": (128, int, "-t", "sequence length T"),
    "total_batch": (0, int, "-d", "tokens per step (0: B*T)"),
    "tokens": (4e6, float, None, "token budget: steps = tokens // tokens per step"),
    "lr": (3e-3, float, "-l", "learning rate"),
    "schedule": ("constant", str, "-k", "lr schedule"),
    "warmup": (100, int, "-u", "warmup steps"),
    "final_frac": (1.0, float, "-q", "final lr fraction"),
    "weight_decay": (0.1, float, "-c", "weight decay"),
    "decay_all": (1, int, "-ca", "1: weight decay on every parameter, 0: on 2-D tensors only"),
    "init": ("neox", str, "-init", "weights' init: gpt2 (llm.c's N(0, 0.02)) or neox (the sink paper's code)"),
    "every": (125, int, None, "val loss, sink analysis and checkpoint every N steps"),
    "val_batches": (20, int, "-m", "val batches"),
    "sink_seqs": (100, int, "-sn", "sink analysis sequences"),
    "sink_T": (64, int, "-st", "sink analysis tokens per sequence"),
    "sink_key": (1, int, "-sk", "the key k of Sink_k"),
    "sink_eps": (0.3, float, "-se", "the threshold eps"),
    "sink_probes": ("line", str, "-sp", "the probe set: line starts (BOS first for models trained with one), doc, auto"),
    "seed": (1337, int, "-S", "the first seed (--seeds N runs seed .. seed+N-1)"),
    "extra": ("", str, None, "more train_gpt2 flags for every variant, e.g. \"-gc 0\""),
}
POLL_S, PROGRESS_EVERY_S, MEASURE_STEPS = 0.2, 30.0, 30
STEP_LINE = re.compile(r"step +(\d+)/(\d+) \|.*\| ([\d.]+) tok/s")
LOG_KEYS = ("trl", "tel", "sink", "fattn", "slot", "mass")
FINAL_POINTS = 3     # a run's final value: the mean of its last 3 logged analyses
SINK_PRESENT = 1.0   # Sink_k % at or above which a run "has a sink" (the sink paper's no-sink rows are below 1 %)


def fail(message):
    """One line on stderr, exit status 1."""
    sys.exit(f"sink_ablation.py: {message}")


def slug(name):
    """The directory name of a variant: lower case, runs of other characters as '_'."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def uniform_first_token(T):
    """alpha_1 of uniform causal attention, A[t][1] = 1/t: (1/T) sum_{t=1..T} 1/t (0.074 at T = 64)."""
    return sum(1.0 / t for t in range(1, T + 1)) / T


@dataclass
class Config:
    """Everything that defines the experiment: the settings, the variants, seeds, data and out dirs."""
    variants: dict
    seeds: list
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
    decay_all: int
    init: str
    every: int
    val_batches: int
    sink_seqs: int
    sink_T: int
    sink_key: int
    sink_eps: float
    sink_probes: str
    seed: int
    extra: str

    @property
    def tokens_per_step(self):
        return self.total_batch or self.batch * self.seq

    def steps(self, name):
        tokens = self.variants[name].tokens or self.tokens
        return max(1, int(tokens // self.tokens_per_step))

    def data_dir(self, name):
        """The variant's data: its own dir (relative to --data's parent) or --data."""
        data = self.variants[name].data
        return os.path.join(os.path.dirname(self.data), data) if data else self.data

    def run_dir(self, name, seed):
        return os.path.join(self.out, slug(name), f"seed{seed}")

    def model_flags(self, name, steps, seed):
        """train_gpt2 flags shared by the ablation runs and the parallel measurement."""
        v = self.variants[name]
        data = self.data_dir(name)
        flags = ["-e", self.base + ("," + v.keys if v.keys else ""), "-i", os.path.join(data, "train_*.bin"),
                 "-j", os.path.join(data, "val_*.bin"), "-x", str(steps), "-s", "0"]
        for setting, (_, _, flag, _) in SETTINGS.items():
            if flag and not (setting == "total_batch" and not self.total_batch):
                flags += [flag, str(seed if setting == "seed" else getattr(self, setting))]
        return [TRAIN] + flags + shlex.split(self.extra) + shlex.split(v.flags)

    def command(self, name, seed):
        """The full training command of a run (without -y)."""
        e = str(self.every)
        return self.model_flags(name, self.steps(name), seed) + ["-o", self.run_dir(name, seed), "-v", e, "-n", e,
                                                                 "-sa", e]


# ---------------------------------------------------------------- settings and checks

def as_variant(name, spec, where):
    """A Variant from a config file's entry: descriptor keys, or an object of Variant's fields."""
    if isinstance(spec, str):
        return Variant(spec)
    if isinstance(spec, dict) and set(spec) <= set(Variant.__dataclass_fields__):
        return Variant(**spec)
    fail(f"{where}: variant '{name}' must be descriptor keys or an object with "
         f"{', '.join(Variant.__dataclass_fields__)}")


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
    if not isinstance(variants, dict):
        fail(f"--config {path}: \"variants\" must be an object of name -> descriptor keys or settings")
    if "variants" in settings:
        settings["variants"] = {n: as_variant(n, s, f"--config {path}") for n, s in variants.items()}
    return settings


def select(variants, only, suite="full"):
    """The variants of `suite` (core: only those; full: all), or those named (or slugged) in the
    comma-separated `only`, from every suite."""
    if not only:
        return {n: v for n, v in variants.items() if suite == "full" or v.suite == "core"}
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
    variants = select(settings.pop("variants"), args.only, args.suite)
    slugs = [slug(n) for n in variants]
    if len(set(slugs)) != len(slugs) or "" in slugs:
        fail(f"variant names must give distinct, non-empty directory names: {', '.join(slugs)}")
    seeds = [settings["seed"] + i for i in range(args.seeds)]
    return Config(variants=variants, seeds=seeds, data=os.path.abspath(args.data), out=os.path.abspath(args.out),
                  **settings)


def check_can_train(cfg):
    """One-line errors for a missing trainer or data before anything starts."""
    if not os.access(TRAIN, os.X_OK):
        fail(f"{TRAIN} not found: build it with `make train_gpt2`")
    for name in cfg.variants:
        data = cfg.data_dir(name)
        if not os.path.isdir(data):
            fail(f"--data {data}: no such directory (scripts/sink_ablation_cpu.sh makes the default data, or: "
                 f"bible \"Gen1:1-Rev22:21\" > kjv.txt && ./prepare -o {data} --bytes --val-frac 0.05 kjv.txt)")
        for kind in ("train", "val"):
            if not glob.glob(os.path.join(data, f"{kind}_*.bin")):
                fail(f"--data {data}: no {kind}_*.bin shards (./prepare -o {data} ... writes them)")


# ---------------------------------------------------------------- run directories

def parse_log(path):
    """main.log as curves: {key: {step: value}} for LOG_KEYS. A step logged twice (a resumed run
    repeats its first step's val and sink lines) keeps the later value; a last line cut off
    mid-write is ignored."""
    curves = {key: {} for key in LOG_KEYS}
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
    """One train_gpt2 process of a run: its command, where it started and how far it got."""
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

    def rate(self):
        """Steps per second of wall time since the start, evaluations included (for the ETA)."""
        elapsed = time.time() - self.started
        return (self.step - self.start_step) / elapsed if elapsed > 0 else 0.0


class Conflict(Exception):
    """A run directory holds a run with other settings."""


def run_name(name, seed, cfg):
    return f"{name} (seed {seed})" if len(cfg.seeds) > 1 else name


def plan(cfg, name, seed):
    """The Job that brings a run to its final step, or None when there is nothing to do. Raises
    Conflict when its run directory holds a run with other settings."""
    run_dir, cmd, steps_total = cfg.run_dir(name, seed), cfg.command(name, seed), cfg.steps(name)
    label = run_name(name, seed, cfg)
    done, steps = is_finished(run_dir, steps_total), checkpoint_steps(run_dir)
    if (done or steps) and saved_command(run_dir) != cmd:
        raise Conflict(f"{label}: {run_dir} holds a run with other settings than now (its cmd.txt); "
                       "delete it or use another --out")
    if done:
        print(f"{label}: finished ({checkpoint_path(run_dir, 'model', steps_total)}), skipping")
        return None
    if steps:
        cut_log(run_dir, steps[-1])
        return Job(label, cmd + ["-y", "1"], run_dir, steps_total, start_step=steps[-1])
    return Job(label, cmd, run_dir, steps_total)


class Progress:
    """The progress line: each running job's step and tokens/s, and the overall ETA; rewritten in
    place on a terminal, else printed every PROGRESS_EVERY_S seconds."""

    def __init__(self, stream=sys.stdout):
        self.stream = stream
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

    def show(self, running, pending, parallel):
        parts = [f"{j.name} {j.step}/{j.total} {j.tok_s:.0f} tok/s" for j in running]
        if pending:
            parts.append(f"{len(pending)} queued")
        rates = [j.rate() for j in running if j.rate() > 0]
        left = sum(j.total - j.step for j in running + pending)
        # the steps left, run `parallel` at a time at the running jobs' mean rate
        parts.append(f"ETA {left / (statistics.mean(rates) * parallel) / 60:.1f} min" if rates else "ETA ?")
        line = " | ".join(parts)
        if self.tty:
            self.stream.write("\r\x1b[K" + line[:shutil.get_terminal_size().columns - 1])
            self.stream.flush()
            self.shown = True
        elif time.time() - self.last >= PROGRESS_EVERY_S:
            print(line, file=self.stream, flush=True)
            self.last = time.time()


def finish(job, progress):
    """Reports a process that ended; returns True when the run finished."""
    rc = job.proc.returncode
    ok = rc == 0 and is_finished(job.run_dir, job.total)
    if ok:
        progress.message(f"{job.name}: finished in {(time.time() - job.started) / 60:.1f} min")
    else:
        why = f"exit status {rc}" if rc else "no final checkpoint and sink line"
        tail = "\n".join("    " + l for l in job.output().splitlines()[-15:])
        progress.message(f"{job.name}: FAILED ({why}); the end of {job.out_path}:\n{tail}")
    return ok


def run_jobs(jobs, parallel, threads):
    """Runs the jobs, `parallel` at a time, each with `threads` threads; returns the names of the
    runs that failed. Stops the running processes if interrupted."""
    pending, running, failed = list(jobs), [], []
    progress = Progress()
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
                    if not finish(job, progress):
                        failed.append(job.name)
            progress.show(running, pending, parallel)
    finally:
        for job in running:
            job.proc.terminate()
            job.proc.wait()
    progress.clear()
    return failed


def train(cfg, parallel, cores):
    """Plans and runs every (variant, seed), seed by seed (the first seed of every variant first);
    returns the names that failed or conflict."""
    check_can_train(cfg)
    threads = max(1, cores // parallel)
    print(f"{len(cfg.variants)} variants x {len(cfg.seeds)} seed(s) ({', '.join(map(str, cfg.seeds))}), "
          f"{cfg.tokens_per_step} tokens/step, {parallel} at a time with {threads} threads each; runs in {cfg.out}",
          flush=True)
    jobs, problems = [], []
    for seed in cfg.seeds:
        for name in cfg.variants:
            try:
                job = plan(cfg, name, seed)
            except Conflict as e:
                print(e, file=sys.stderr)
                problems.append(run_name(name, seed, cfg))
                continue
            if job:
                jobs.append(job)
    return problems + run_jobs(jobs, parallel, threads)


def measure_parallel(cfg, cores):
    """Times MEASURE_STEPS steps of the first variant as 1 run x all cores and as 2 runs side by
    side x half the cores; prints the tokens/s of each (summed over the runs) and the faster."""
    check_can_train(cfg)
    if cores < 2:
        fail(f"--measure-parallel needs at least 2 cores (have {cores})")
    name = next(iter(cfg.variants))
    cmd = cfg.model_flags(name, MEASURE_STEPS, cfg.seeds[0]) + ["-v", "0"]
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


# ---------------------------------------------------------------- results

@dataclass
class Result:
    """One run's curves and summary, read from its run directory."""
    name: str
    seed: int
    curves: dict
    finished: bool
    steps: int
    tok_s: float = None
    threads: str = None
    train_line: str = None

    @property
    def last_step(self):
        """The last step with a sink line, or None."""
        return max(self.curves["sink"], default=None)

    def final(self, key):
        """The mean of the last FINAL_POINTS logged values (None when none)."""
        values = [v for _, v in sorted(self.curves[key].items())][-FINAL_POINTS:]
        return statistics.mean(values) if values else None

    def onset(self, key="sink", level=SINK_PRESENT):
        """The first step from which `key` stays at or above `level` at every later analysis (None: never)."""
        points = sorted(self.curves[key].items())
        for i, (step, _) in enumerate(points):
            if all(v >= level for _, v in points[i:]):
                return step
        return None


def collect(cfg):
    """{variant: [Result of each seed that has a run directory or should have one]}."""
    results = {}
    for name in cfg.variants:
        results[name] = []
        for seed in cfg.seeds:
            run_dir = cfg.run_dir(name, seed)
            steps = cfg.steps(name)
            r = Result(name, seed, parse_log(os.path.join(run_dir, "main.log")), is_finished(run_dir, steps), steps)
            out = os.path.join(run_dir, "train.out")
            if os.path.exists(out):
                with open(out, errors="replace") as f:
                    text = f.read()
                rates = [float(x) for *_, x in STEP_LINE.findall(text)]
                r.tok_s = statistics.median(rates) if rates else None
                train_lines = re.findall(r"^train: .*$", text, re.M)
                r.train_line = train_lines[-1] if train_lines else None
            cmd = os.path.join(run_dir, "cmd.txt")
            if os.path.exists(cmd):
                with open(cmd) as f:
                    threads = re.findall(r"OMP_NUM_THREADS=(\d+)", f.read())
                r.threads = threads[-1] if threads else None
            results[name].append(r)
    return results


def finals(runs, key):
    """The final value of `key` of each run that has one."""
    return [v for v in (r.final(key) for r in runs) if v is not None]


def spread(values, spec=".1f"):
    """'mean [min, max]' of values (the value alone for one; '-' for none)."""
    if not values:
        return "-"
    if len(values) == 1:
        return format(values[0], spec)
    return f"{format(statistics.mean(values), spec)} [{format(min(values), spec)}, {format(max(values), spec)}]"


def fmt(value, spec):
    return "-" if value is None else format(value, spec)


# ---------------------------------------------------------------- the claims

def present(values, level=SINK_PRESENT):
    """'yes' when every seed is at or above level, 'no' when none is, else 'in some seeds'."""
    if not values:
        return None
    hits = sum(v >= level for v in values)
    return "yes" if hits == len(values) else "no" if hits == 0 else f"in {hits} of {len(values)} seeds"


def compare(a, b):
    """How a's values stand against b's over the seeds: 'higher' / 'lower' when their ranges do not
    overlap, 'equal' when both are all 0, else 'overlapping'."""
    if not a or not b:
        return None
    if min(a) > max(b):
        return "higher"
    if max(a) < min(b):
        return "lower"
    return "equal" if max(a) == max(b) == min(a) == min(b) else "overlapping"


@dataclass
class Claim:
    """A claim of the papers: what to compare and how the comparison reads as a verdict."""
    text: str
    paper: str
    variants: list          # the variants it compares (the first is the one the claim is about)
    judge: object           # judge(results) -> (measured text, verdict)


def metric_text(results, name, key, spec=".1f", label=None):
    return f"{label or name}: {spread(finals(results.get(name, []), key), spec)}"


def onset_text(results, name, tokens_per_step):
    """The onset tokens of each seed's Sink_k (M tokens), or 'never'."""
    runs = results.get(name, [])
    onsets = [r.onset() for r in runs if r.last_step is not None]
    if not onsets:
        return "-"
    parts = ["never" if o is None else f"{o * tokens_per_step / 1e6:.1f}M" for o in onsets]
    return ", ".join(parts)


def sink_strength(results, a, b):
    """How variant a's sink stands against b's: on Sink_k when either has a sink in some seed, else on
    the first-token attention (the continuous measure below the threshold). Returns (measure, how)."""
    sa, sb = finals(results.get(a, []), "sink"), finals(results.get(b, []), "sink")
    if any(v >= SINK_PRESENT for v in sa + sb):
        return "Sink_1", compare(sa, sb)
    return "first-token attention", compare(finals(results.get(a, []), "fattn"), finals(results.get(b, []), "fattn"))


def both_text(results, name):
    """'name: Sink_1 x %, first-token attention y'."""
    runs = results.get(name, [])
    return f"{name}: Sink_1 {spread(finals(runs, 'sink'))} %, first-token attention {spread(finals(runs, 'fattn'), '.3f')}"


def judge_forms(name, tps):
    def judge(results):
        sink = finals(results.get(name, []), "sink")
        verdict = {"yes": "reproduced", "no": "not reproduced"}.get(present(sink), present(sink))
        return f"{both_text(results, name)}; sustained from {onset_text(results, name, tps)}", verdict
    return judge


def judge_direction(expected, base, tps):
    """expected: [(variant, 'higher' or 'lower')], the direction the papers predict against base."""
    def judge(results):
        parts, verdicts = [both_text(results, base)], []
        for name, want in expected:
            parts.append(both_text(results, name))
            measure, how = sink_strength(results, name, base)
            if how is None:
                continue
            verdict = ("reproduced" if how == want else "not distinguishable" if how in ("overlapping", "equal")
                       else "not reproduced")
            verdicts.append(f"{name}: {how} on {measure}, {verdict}")
        onsets = "; ".join(f"{n} {onset_text(results, n, tps)}" for n in [base] + [n for n, _ in expected])
        return "; ".join(parts) + f"; sustained from: {onsets}", "; ".join(verdicts) or None
    return judge


def judge_none(name):
    def judge(results):
        sink = finals(results.get(name, []), "sink")
        p = present(sink)
        verdict = {"no": "reproduced", "yes": "not reproduced"}.get(p, p)
        return f"Sink_1 {spread(sink)} %, first-token attention {spread(finals(results.get(name, []), 'fattn'), '.3f')}", verdict
    return judge


def judge_normalized(name, unnormalized):
    def judge(results):
        a, b = finals(results.get(name, []), "sink"), finals(results.get(unnormalized, []), "sink")
        p, how = present(a), compare(a, b)
        verdict = "reproduced" if p == "yes" and how == "higher" else f"sink: {p}; against {unnormalized}: {how}"
        return f"{metric_text(results, name, 'sink')}, {metric_text(results, unnormalized, 'sink')}", verdict
    return judge


def judge_components(names):
    def judge(results):
        parts, sinks = [], []
        for name in names:
            values = finals(results.get(name, []), "sink")
            parts.append(metric_text(results, name, "sink"))
            if present(values) not in (None, "no"):
                sinks.append(f"{name} ({present(values)})")
        ran = any(results.get(n) and finals(results[n], "sink") for n in names)
        return "; ".join(parts), (f"sinks with: {', '.join(sinks)}" if sinks else "no component sinks alone") if ran else None
    return judge


def judge_gate(gates, base):
    def judge(results):
        f0, m0 = finals(results.get(base, []), "fattn"), finals(results.get(base, []), "mass")
        parts = [f"{base}: first-token attention {spread(f0, '.3f')}, massive {spread(m0, '.1f')}"]
        verdicts = []
        for name in gates:
            f, m = finals(results.get(name, []), "fattn"), finals(results.get(name, []), "mass")
            parts.append(f"{name}: {spread(f, '.3f')}, {spread(m, '.1f')}")
            verdicts.append(f"{name}: attention {compare(f, f0) or '-'}, massive {compare(m, m0) or '-'}")
        return "; ".join(parts), "; ".join(verdicts)
    return judge


def judge_slot(name, base):
    def judge(results):
        slot, sink = finals(results.get(name, []), "slot"), finals(results.get(name, []), "sink")
        base_sink = finals(results.get(base, []), "sink")
        takes = compare(slot, base_sink)
        verdict = ("reproduced" if present(slot) == "yes" and compare(sink, base_sink) in ("lower", "equal")
                   else f"slot sink: {present(slot)}; slot vs {base}'s Sink_1: {takes}")
        return (f"{name}: Sink* {spread(slot)} %, Sink_1 {spread(sink)} %; {metric_text(results, base, 'sink')}",
                verdict)
    return judge


def claims(tps):
    """The claims of the sink paper (Gu et al., arXiv 2410.10781) and the gated-attention paper
    (Qiu et al., arXiv 2505.06708), each with the variants that test it."""
    sig_switches = ["sigmoid b=0 LayerNorm", "sigmoid b=0 biases", "sigmoid b=0 tied", "sigmoid b=0 tanh GELU",
                    "sigmoid b=0 wd 2-D only", "sigmoid b=0 GPT-2 block"]
    return [
        Claim("Softmax forms a first-token sink on enough distinct tokens (BOS windows), and when",
              "Sink_1 18 % (60M, 20B tokens); emerges after 1-2B tokens", ["softmax"], judge_forms("softmax", tps)),
        Claim("Without a constant first token the sink forms later or not at all",
              "random first token: the sink moves or weakens", ["softmax no BOS", "softmax"],
              judge_direction([("softmax no BOS", "lower")], "softmax", tps)),
        Claim("Sigmoid attention without normalization forms no sink",
              "Sink_1 0.44 % (60M), 2.46 % (1B)", ["sigmoid b=0"], judge_none("sigmoid b=0")),
        Claim("Sigmoid attention with row normalization forms one",
              "Sink_1 30.24 % (60M)", ["sigmoid normalized", "sigmoid b=0"],
              judge_normalized("sigmoid normalized", "sigmoid b=0")),
        Claim("Which part of GPT-2's block makes the unnormalized sigmoid sink (one component at a time)",
              "(not in the papers: this engine's question)", sig_switches, judge_components(sig_switches)),
        Claim("The post-SDPA sigmoid gate lowers first-token attention and massive activations",
              "first-token attention 46.7 % -> 4.8 % (15B MoE)", ["gate head", "gate elem", "softmax"],
              judge_gate(["gate head", "gate elem"], "softmax")),
        Claim("A learnable key slot takes over what the first token would sink",
              "K bias: Sink* 73.34 %, Sink_1 0.00 % (60M)", ["softmax + K bias", "softmax"],
              judge_slot("softmax + K bias", "softmax")),
        Claim("A larger learning rate strengthens the sink",
              "lr 8e-4: 32.23 %, 4e-4: 18.18 %, 2e-4: 11.21 %, 1e-4: 2.90 %",
              ["softmax lr 6e-3", "softmax lr 1e-3", "softmax"],
              judge_direction([("softmax lr 6e-3", "higher"), ("softmax lr 1e-3", "lower")], "softmax", tps)),
        Claim("More weight decay strengthens the sink", "wd 0.5: 41.08 % against 0.1: 18.18 %",
              ["softmax wd 0.5", "softmax"], judge_direction([("softmax wd 0.5", "higher")], "softmax", tps)),
        Claim("Fewer distinct tokens weaken the sink", "under 1 % with 50M-100M tokens of data (60M model)",
              ["softmax 1/4 text", "softmax 1/16 text", "softmax"],
              judge_direction([("softmax 1/4 text", "lower"), ("softmax 1/16 text", "lower")], "softmax", tps)),
        Claim("GPT-2's block forms a softmax sink later or not at all (this engine's question)",
              "(not in the papers)", ["softmax GPT-2 block", "softmax"],
              judge_direction([("softmax GPT-2 block", "lower")], "softmax", tps)),
        Claim("llm.c's init N(0, 0.02) forms a softmax sink later or not at all (this engine's question)",
              "(not in the papers)", ["softmax GPT-2 init", "softmax"],
              judge_direction([("softmax GPT-2 init", "lower")], "softmax", tps)),
    ]


def claims_table(cfg, results):
    """The markdown claims table: only claims whose first variant is in this configuration."""
    rows = ["| claim | the papers | measured (mean [min, max] over seeds) | reproduced here? |", "|---|---|---|---|"]
    for c in claims(cfg.tokens_per_step):
        if c.variants[0] not in results:
            continue
        measured, verdict = c.judge(results)
        if not any(r.last_step is not None for r in results[c.variants[0]]):
            verdict = "not run yet"
        rows.append(f"| {c.text} | {c.paper} | {measured} | {verdict or '-'} |")
    return "\n".join(rows)


def variants_table(cfg, results):
    """The markdown table of every variant, its values over the seeds."""
    k = cfg.sink_key
    rows = [f"| variant | descriptor keys | flags | seeds done | val loss | Sink_{k} % | Sink* % | first-token "
            "attention | massive activation | tok/s |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, runs in results.items():
        v = cfg.variants[name]
        done = sum(r.finished for r in runs)
        flags = " ".join(filter(None, [v.flags, f"data {v.data}" if v.data else ""]))
        started = [r for r in runs if r.last_step is not None]
        state = f"{done} of {len(runs)}" if started else "not run"
        if started and done < len(runs):
            state += f" (at step {min(r.last_step for r in started)} of {runs[0].steps})"
        rates = [r.tok_s for r in runs if r.tok_s]
        rows.append(f"| {name} | `{v.keys or '(base)'}` | {flags or '-'} | {state} | "
                    f"{spread(finals(runs, 'tel'), '.4f')} | {spread(finals(runs, 'sink'))} | "
                    f"{spread(finals(runs, 'slot'))} | {spread(finals(runs, 'fattn'), '.4f')} | "
                    f"{spread(finals(runs, 'mass'), '.1f')} | {fmt(statistics.median(rates) if rates else None, '.0f')} |")
    return "\n".join(rows)


def seeds_table(cfg, results):
    """The markdown table of each run on its own: Sink_k % / first-token attention per seed (Sink* too
    for sink-slot variants), and the analysis from which Sink_k stayed at or above SINK_PRESENT."""
    k = cfg.sink_key
    rows = ["| variant | " + " | ".join(f"seed {s}" for s in cfg.seeds) +
            f" | Sink_{k} sustained from ({', '.join(map(str, cfg.seeds))}) |", "|---" * (len(cfg.seeds) + 2) + "|"]
    for name, runs in results.items():
        cells = []
        for r in runs:
            if r.last_step is None:
                cells.append("-")
                continue
            slot = f" (Sink* {r.final('slot'):.1f})" if r.curves["slot"] else ""
            cut = "" if r.finished else f" (to step {r.last_step})"
            cells.append(f"{r.final('sink'):.1f} / {fmt(r.final('fattn'), '.3f')}{slot}{cut}")
        rows.append(f"| {name} | " + " | ".join(cells) + f" | {onset_text({name: runs}, name, cfg.tokens_per_step)} |")
    return "\n".join(rows)


def seeds_section(cfg, results):
    """The per-seed table under its heading, or nothing for one seed (the variants table is it)."""
    if len(cfg.seeds) < 2:
        return ""
    return f"""## Seeds

Each run's value, Sink_{cfg.sink_key} % / first-token attention (and Sink* for sink-slot variants):

{seeds_table(cfg, results)}

"""


# ---------------------------------------------------------------- plots

def band(cfg, runs, key):
    """(tokens seen, mean, min, max) over the seeds at the steps every run has logged so far."""
    curves = [r.curves[key] for r in runs if r.curves[key]]
    if not curves:
        return None
    steps = sorted(set.intersection(*(set(c) for c in curves)))
    values = [[c[s] for c in curves] for s in steps]
    return ([s * cfg.tokens_per_step for s in steps], [statistics.mean(v) for v in values],
            [min(v) for v in values], [max(v) for v in values])


def plot(cfg, results, key, ylabel, path, reference=None, slot=False):
    """One line per variant of `key` (the mean over seeds) against tokens seen, the seeds' range as a
    band; with `slot`, Sink* dashed in the same color; `reference` a horizontal line (value, label)."""
    fig, ax = plt.subplots(figsize=(8, 5))
    colors = plt.cm.tab20.colors[::2] + plt.cm.tab20.colors[1::2]
    drawn = False
    for (name, runs), color in zip(results.items(), itertools.cycle(colors)):
        for k, style, label in ((key, "-", name), ("slot", "--", f"{name} (Sink*)")):
            if k == "slot" and not slot:
                continue
            b = band(cfg, runs, k)
            if not b:
                continue
            x, mean, lo, hi = b
            ax.plot(x, mean, style, color=color, marker="o", markersize=2, label=label)
            if len(runs) > 1:
                ax.fill_between(x, lo, hi, color=color, alpha=0.15, linewidth=0)
            drawn = True
    if reference:
        ax.axhline(reference[0], color="gray", linestyle=":", linewidth=1, label=reference[1])
    ax.set_xlabel("tokens seen")
    ax.set_ylabel(ylabel)
    seeds = f"mean of {len(cfg.seeds)} seeds, band: their range" if len(cfg.seeds) > 1 else f"seed {cfg.seeds[0]}"
    ax.set_title(f"{cfg.base}\n{cfg.tokens_per_step} tokens/step; {seeds}", fontsize=8)
    ax.grid(alpha=0.3)
    if drawn:
        ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def groups(cfg, results):
    """{group: {variant: runs}} in the order the variants come; the core contrasts also appear with
    the softmax baseline in every other group."""
    out = {}
    for name, runs in results.items():
        out.setdefault(cfg.variants[name].group, {})[name] = runs
    for group, members in out.items():
        if group != "core" and "softmax" in results and "softmax" not in members:
            out[group] = {"softmax": results["softmax"], **members}
    if "sigmoid block" in out and "sigmoid b=0" in results:
        out["sigmoid block"] = {"sigmoid b=0": results["sigmoid b=0"], **out["sigmoid block"]}
    return out


def plot_files(cfg, results):
    """The plots of every group; returns {group: [file names]}."""
    files = {}
    k = cfg.sink_key
    for group, members in groups(cfg, results).items():
        g = slug(group)
        spec = [("sink", f"Sink_{k} (eps {cfg.sink_eps}) %", f"sink_{g}.png", None, True),
                ("fattn", "first-token attention", f"first_token_{g}.png",
                 (uniform_first_token(cfg.sink_T), f"uniform causal attention (T={cfg.sink_T})"), False),
                ("mass", "massive activation (largest layer's ||h_1|| / mean ||h_t||)", f"massive_{g}.png", None,
                 False),
                ("tel", "val loss", f"val_loss_{g}.png", None, False)]
        files[group] = []
        for key, ylabel, name, reference, slot in spec:
            plot(cfg, members, key, ylabel, os.path.join(cfg.out, name), reference, slot)
            files[group].append(name)
    return files


# ---------------------------------------------------------------- report

def data_text(cfg, results):
    """What the data gives each variant: the trainer's 'train:' line (tokens one epoch trains on,
    distinct tokens), the variants that share a line together."""
    by_line = {}
    for name, runs in results.items():
        line = next((r.train_line for r in runs if r.train_line), None)
        if line:
            by_line.setdefault(line, []).append(name)
    if not by_line:
        return "  - (no run has started yet)"
    return "\n".join(f"  - {', '.join(names)}: `{line}`" for line, names in by_line.items())


def write_report(cfg, results, command):
    """results.md (settings, command, date, claims, table) and the plots in cfg.out."""
    os.makedirs(cfg.out, exist_ok=True)
    files = plot_files(cfg, results)
    extra = f", extra flags `{cfg.extra}`" if cfg.extra else ""
    k = cfg.sink_key
    budgets = sorted({cfg.steps(n) * cfg.tokens_per_step for n in cfg.variants})
    plots = "\n".join(f"\n### {group}\n\n" + "\n".join(f"![{f}]({f})" for f in names) for group, names in files.items())
    text = f"""# Attention-sink ablation

- Model: `{cfg.base}` plus each variant's keys.
- Training: B={cfg.batch}, T={cfg.seq}, {cfg.tokens_per_step} tokens/step, \
{' / '.join(f'{b / 1e6:g}M' for b in budgets)} tokens per run; lr {cfg.lr:g} {cfg.schedule}, warmup {cfg.warmup}, \
final fraction {cfg.final_frac:g}; weight decay {cfg.weight_decay:g} on \
{'every parameter' if cfg.decay_all else '2-D tensors'}; AdamW betas (0.9, 0.95); gradient clipping at \
1.0 (train_gpt2's defaults); weights' init `{cfg.init}` (docs/MODEL.md section 3){extra}; \
seeds {', '.join(map(str, cfg.seeds))}.
- Data: `{cfg.data}` (variants with their own data say so). Per variant, what one epoch trains on \
(the trainer's `train:` line):
{data_text(cfg, results)}
- Every {cfg.every} steps and at the end: val loss over {cfg.val_batches} batches; Sink_{k} (eps {cfg.sink_eps}), \
first-token attention, the massive-activation ratio of the layer where it is largest and, for sink-slot \
variants, Sink*, over {cfg.sink_seqs} held-out sequences of {cfg.sink_T} tokens (docs/MODEL.md section 13 \
defines them and the probe set).
- A run's value is the mean of its last {FINAL_POINTS} analyses; over seeds: mean [min, max]. A run "has a \
sink" when that value of Sink_{k} is at least {SINK_PRESENT:g} %; "sustained from" is the first analysis from which \
every later one is at least {SINK_PRESENT:g} %. Two variants differ ("higher", "lower") when their ranges \
over the seeds do not overlap. Uniform causal attention gives first-token attention \
{uniform_first_token(cfg.sink_T):.3f} at T={cfg.sink_T}.

## Claims

{claims_table(cfg, results)}

## Variants

{variants_table(cfg, results)}

tok/s: the median training step's throughput (runs trained side by side share the machine).

{seeds_section(cfg, results)}- Command (in `{os.getcwd()}`): `{command}`
- Date: {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}

## Plots
{plots}
"""
    path = os.path.join(cfg.out, "results.md")
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)
    print(f"wrote {path} and {sum(len(f) for f in files.values())} plots")


# ---------------------------------------------------------------- main

def parse_args(argv):
    ap = argparse.ArgumentParser(description="Train sink-ablation variants over seeds and compare their attention "
                                 "sinks (the module docstring has the details and the config-file format).")
    ap.add_argument("--data", metavar="DIR", default=os.path.join(ROOT, "datasets", "kjv_stream"),
                    help="DIR with train_*.bin, val_*.bin, tokenizer.bin (default: datasets/kjv_stream)")
    ap.add_argument("--out", metavar="DIR", default=os.path.join(ROOT, "runs", "sink_ablation"),
                    help="runs and report go here (default: runs/sink_ablation)")
    ap.add_argument("--config", metavar="FILE", help="JSON file with settings and variants")
    ap.add_argument("--suite", choices=("core", "full"), default="core",
                    help="core: the seven contrasts (default); full: every variant")
    ap.add_argument("--seeds", metavar="N", type=int, default=1, help="seeds per variant: seed .. seed+N-1 (1)")
    ap.add_argument("--only", metavar="NAMES", help="comma-separated variant names (or slugs) to run")
    ap.add_argument("--parallel", metavar="K", type=int, default=1, help="runs trained at a time (1)")
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
    if args.parallel < 1 or args.cores < 1 or args.seeds < 1:
        fail("--parallel, --cores and --seeds must be at least 1")
    return args


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    cfg = make_config(args)
    if args.list:
        for name, v in cfg.variants.items():
            extra = " ".join(filter(None, [v.flags, f"--data {v.data}" if v.data else ""]))
            print(f"{name:26s} {v.suite:5s} {cfg.base}{',' + v.keys if v.keys else ''} {extra}".rstrip())
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
