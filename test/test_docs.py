"""The docs against the code, so that they cannot drift unnoticed (no training, a few seconds):
- every flag table (header `| flag |`) of README.md and docs/*.md against the `-h` of the program its
  heading names (train_gpt2, infer, prepare): every flag a program has is in one of its tables, every
  flag in a table exists, and a one-word default agrees with the one `-h` prints;
- every descriptor-key table (header `| key |`) against `./train_gpt2 -e help`: every key is in a
  table, every key in a table exists, a choice key's values and default are the program's, and a
  "header slot" column names the slot of model/config.c's OPTIONS;
- docs/FORMATS.md: the model checkpoint's slot table against OPTIONS (slot and key, choice indices)
  and the attnlab marker and version, the training state's against model/checkpoint.c's slot enum,
  every header covering slots 0-255 exactly once, and the tensor table against model/tensors.c's
  PARAMS order and scripts/ref/ref_gpt2.py's shapes;
- every path (`dir/file`, a source file's name) and code identifier (`snake_case`, `CamelCase`,
  `name()`) in backticks, and every repository path in the text, exists in the tree;
- the README's layout names every top-level folder and its docs index every docs/*.md; the README's
  quickstart and test commands are what .ci/run runs."""
import glob
import math
import os
import re
import subprocess
import sys

import pytest

from timeouts import HANG_TIMEOUT

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts", "ref"))
import ref_gpt2  # noqa: E402

DOCS = ["README.md"] + sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "docs", "*.md")))
PROGRAMS = {"train_gpt2": os.environ.get("ATTNLAB_TRAIN", os.path.join(ROOT, "train_gpt2")),
            "infer": os.environ.get("ATTNLAB_INFER", os.path.join(ROOT, "infer")),
            "prepare": os.path.join(ROOT, "prepare")}


def read(rel):
    with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
        return f.read()


def program_output(*args):
    p = subprocess.run(list(args), capture_output=True, text=True, timeout=HANG_TIMEOUT)
    return p.stdout + p.stderr


# ----------------------------------------------------------------------------
# markdown: tables with their headings, prose without code blocks


def cells(line):
    return [c.strip() for c in line.strip().strip("|").split("|")]


def tables(rel):
    """(headings, header, rows, line number) of each table in a file; headings: those above it, nearest last."""
    lines, headings, found = read(rel).split("\n"), [], []
    i = 0
    while i < len(lines):
        if lines[i].startswith("#"):
            headings.append(lines[i].lstrip("#").strip())
        if lines[i].startswith("|") and i + 1 < len(lines) and re.match(r"^\|[\s:|-]+\|$", lines[i + 1].strip()):
            start, header, rows = i + 1, cells(lines[i]), []
            i += 2
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(cells(lines[i]))
                i += 1
            found.append((list(headings), header, rows, start))
            continue
        i += 1
    return found


def ticks(text):
    return re.findall(r"`([^`\n]+)`", text)


def prose(rel):
    """The file's lines outside code blocks (fenced, or indented by 4 after a blank line), numbered."""
    out, in_fence, in_indent, prev_blank = [], False, False, True
    for n, line in enumerate(read(rel).split("\n"), 1):
        if line.startswith("```"):
            in_fence = not in_fence
            continue
        indented = line.startswith("    ") or line.startswith("\t")
        in_indent = indented and (in_indent or prev_blank)
        prev_blank = not line.strip()
        if not in_fence and not in_indent:
            out.append((n, line))
    return out


# ----------------------------------------------------------------------------
# what the programs say


def program_flags(name):
    """{flag: default or None} from the program's -h."""
    flags = {}
    for line in program_output(PROGRAMS[name], "-h").split("\n"):
        m = re.match(r"^  (--?[A-Za-z][\w-]*)\b(.*)$", line)
        if m:
            d = re.search(r"\[default (.*)\]\s*$", m.group(2))
            flags[m.group(1)] = d.group(1) if d else None
    assert len(flags) > 5, f"{name} -h listed {len(flags)} flags: the parse of its usage broke"
    return flags


def descriptor_keys():
    """{key: (choices or None, default, help)} from ./train_gpt2 -e help."""
    keys = {}
    for line in program_output(PROGRAMS["train_gpt2"], "-e", "help").split("\n"):
        m = re.match(r"^  (\w+)\s+(.+?)\s+default (\S+)\s+(.*)$", line)
        if m:
            values = m.group(2)
            choices = None if re.match(r"^-?\d+\.\.\d+$|^a number$", values) else values.split()
            keys[m.group(1)] = (choices, m.group(3), m.group(4))
    assert len(keys) > 10, f"-e help listed {len(keys)} keys: the parse of its output broke"
    return keys


def config_options():
    """[(key, slot)] of model/config.c's OPTIONS, in table order."""
    src = read("model/config.c")
    table = src[src.index("static const ConfigOption OPTIONS[]"):]
    table = table[:table.index("};")]
    rows = re.findall(r'\{"(\w+)", FIELD\(\w+\), OPT_\w+, \w+, [^,]+, [^,]+, [^,]+, (\d+),', table)
    assert len(rows) == table.count("FIELD("), "model/config.c: an OPTIONS row this test cannot parse"
    return [(k, int(s)) for k, s in rows]


def c_define(rel, name):
    m = re.search(rf"#define {name} (\S+)", read(rel))
    assert m, f"{rel}: no #define {name}"
    return int(m.group(1), 0)


def state_slot_enum():
    """{name: slot} of model/checkpoint.c's training-state slot enum (S_STEP = 2, ...)."""
    m = re.search(r"enum \{ (S_STEP = 2[^}]*)\}", read("model/checkpoint.c"))
    assert m, "model/checkpoint.c: no state slot enum starting S_STEP = 2"
    slots, nxt = {}, 0
    for item in (x.strip() for x in m.group(1).split(",") if x.strip()):
        name, _, value = item.partition("=")
        nxt = int(value) if value else nxt
        slots[name.strip()] = nxt
        nxt += 1
    return slots


def param_names():
    src = read("model/tensors.c")
    table = src[src.index("static const ParamSpec PARAMS[]"):]
    return re.findall(r'\{"(\w+)", P\(', table[:table.index("};")])


# ----------------------------------------------------------------------------
# flag tables


def table_program(headings):
    for h in reversed(headings):
        m = re.search(r"\b(train_gpt2|infer|prepare)\b", h)
        if m:
            return m.group(1)
    return None


def flag_tables():
    """{program: [(file, line, flag, default cell or None)]} of every flag table in the docs."""
    out = {name: [] for name in PROGRAMS}
    for rel in DOCS:
        for headings, header, rows, line in tables(rel):
            if header[0] != "flag":
                continue
            name = table_program(headings)
            assert name, f"{rel}:{line}: a flag table under no heading naming train_gpt2, infer or prepare"
            col = header.index("default") if "default" in header else None
            for row in rows:
                flags = [t.split()[0] for t in ticks(row[0]) if t.startswith("-")]
                assert flags, f"{rel}:{line}: flag row {row[0]!r} names no flag in backticks"
                defaults = row[col].split(" / ") if col is not None else []
                for i, flag in enumerate(flags):
                    d = defaults[i].strip() if len(defaults) == len(flags) else None
                    out[name].append((rel, line, flag, d))
    return out


def same_default(doc, prog):
    doc = doc.strip("`")
    try:
        return math.isclose(float(doc), float(prog), rel_tol=1e-6)
    except ValueError:
        return doc == prog


@pytest.mark.parametrize("name", PROGRAMS)
def test_flag_tables_match_the_program(name):
    flags, documented = program_flags(name), flag_tables()[name]
    assert documented, f"no flag table for {name} in README.md or docs/*.md"
    for rel, line, flag, default in documented:
        assert flag in flags, f"{rel}:{line}: {flag} is in a {name} flag table but `{name} -h` has no such flag"
        prog = flags[flag]
        if default and " " not in default and prog is not None:
            assert same_default(default, prog), \
                f"{rel}:{line}: {name} {flag} documented default {default}, -h says {prog}"
    missing = sorted(set(flags) - {f for _, _, f, _ in documented})
    assert not missing, f"{name} flags in no flag table of README.md or docs/*.md: {missing}"


# ----------------------------------------------------------------------------
# descriptor-key tables


def key_rows():
    """[(file, line, key, value or None, row, header)] of every key table."""
    out = []
    for rel in DOCS:
        for _, header, rows, line in tables(rel):
            if header[0] != "key":
                continue
            for row in rows:
                t = ticks(row[0])
                assert t, f"{rel}:{line}: key row {row[0]!r} names no key in backticks"
                key, _, value = t[0].partition("=")
                out.append((rel, line, key, value or None, row, header))
    return out


def test_key_tables_match_the_option_table():
    keys, rows = descriptor_keys(), key_rows()
    slots = dict(config_options())
    for rel, line, key, value, row, header in rows:
        where = f"{rel}:{line}: key `{key}`"
        assert key in keys, f"{where} is in a key table but `-e help` has no such key"
        choices, default, _ = keys[key]
        if value is not None and choices:
            assert value in choices, f"{where}: value {value!r} is not one of {choices}"
        if choices and "values" in header:
            given = [v.strip("`") for v in re.split(r",\s*", row[header.index("values")])]
            assert given == choices, f"{where}: values {given}, the program's are {choices}"
        if choices and "default" in header:
            d = ticks(row[header.index("default")])
            assert d and d[0] == default, f"{where}: default {d[:1]}, the program's is {default}"
        slot_cols = [i for i, h in enumerate(header) if h.startswith("header slot")]
        for i in slot_cols:
            m = re.match(r"(\d+)", row[i])
            assert m and int(m.group(1)) == slots[key], f"{where}: header slot {row[i]!r}, config.c's is {slots[key]}"
    missing = sorted(set(keys) - {r[2] for r in rows if r[3] is None})
    assert not missing, f"descriptor keys in no key table of README.md or docs/*.md: {missing}"


# ----------------------------------------------------------------------------
# docs/FORMATS.md


def formats_table(heading, first):
    for headings, header, rows, line in tables("docs/FORMATS.md"):
        if headings and heading in headings[-1] and header[0] == first:
            return header, rows, line
    raise AssertionError(f"docs/FORMATS.md: no table starting `| {first} |` under a heading with {heading!r}")


def slot_numbers(cell):
    """'3, 4, 5' or '8-13' or '14-15' -> the slots; raises on anything else."""
    out = []
    for part in re.split(r",\s*", cell.replace("–", "-")):
        lo, _, hi = part.partition("-")
        out += range(int(lo), int(hi or lo) + 1)
    return out


def check_covers_every_slot(rows, where):
    seen = [s for row in rows for s in slot_numbers(row[0])]
    doubled = sorted({s for s in seen if seen.count(s) > 1})
    assert not doubled, f"{where}: slots {doubled} in more than one row"
    assert sorted(seen) == list(range(256)), f"{where}: slots {sorted(set(range(256)) - set(seen))} in no row"


def test_formats_model_header_matches_config():
    header, rows, line = formats_table("Model checkpoint", "slot")
    where = f"docs/FORMATS.md:{line}"
    check_covers_every_slot(rows, where)
    keys, key_col = descriptor_keys(), header.index("key")
    documented = {}
    for row in rows:
        t = ticks(row[key_col])
        if t:
            documented[t[0]] = (slot_numbers(row[0]), row[-1])
    options = config_options()
    assert sorted(documented) == sorted(k for k, _ in options), \
        f"{where}: keys {sorted(documented)}, OPTIONS has {sorted(k for k, _ in options)}"
    for key, slot in options:
        slots, value = documented[key]
        assert slots == [slot], f"{where}: `{key}` in slot {slots}, model/config.c's OPTIONS puts it in {slot}"
        choices = keys[key][0]
        if choices:
            pairs = re.findall(r"(\d+) `([^`]+)`", value)
            assert pairs == [(str(i), c) for i, c in enumerate(choices)], \
                f"{where}: `{key}` stored as {pairs}, the program's choices in index order are {choices}"
    last = max(s for _, s in options)
    zero = [row for row in rows if slot_numbers(row[0])[0] == last + 1]
    assert zero and "zero" in zero[0][-1], f"{where}: the slots after {last}, the last setting's, must be a zero row"
    marker, version = c_define("model/config.c", "MARKER_SLOT"), c_define("model/config.c", "ATTNLAB_VERSION")
    row = {s: r for r in rows for s in slot_numbers(r[0])}
    assert hex(c_define("model/config.c", "ATTNLAB_MARKER")) in row[marker][-1].lower(), \
        f"{where}: slot {marker} should hold attnlab's marker {hex(c_define('model/config.c', 'ATTNLAB_MARKER'))}"
    assert re.search(rf"\b{version}\b", row[marker + 1][-1]), \
        f"{where}: slot {marker + 1} should name the settings version model/config.c writes, {version}"


def test_formats_state_header_matches_checkpoint_c():
    _, rows, line = formats_table("Training state", "slot")
    where = f"docs/FORMATS.md:{line}"
    check_covers_every_slot(rows, where)
    enum = state_slot_enum()
    used = sorted(s for row in rows if row[-1] != "zero" for s in slot_numbers(row[0]))
    assert used == list(range(enum["S_UNUSED"])), \
        f"{where}: slots {used} hold values, model/checkpoint.c writes slots 0-{enum['S_UNUSED'] - 1}"
    row = {s: r for r in rows for s in slot_numbers(r[0])}
    version = c_define("model/checkpoint.c", "STATE_VERSION")
    assert re.match(rf"version {version}\b", row[1][-1]), f"{where}: slot 1 should say version {version}"


def shape_size(shape, dims):
    """'(L,3C,C)' -> [L, 3C, C] evaluated with dims."""
    out = []
    for part in shape.strip("()").split(","):
        m = re.fullmatch(r"(\d*)·?(\w+)", part.strip())
        assert m and m.group(2) in dims, f"shape {shape}: cannot read {part!r}"
        out.append(int(m.group(1) or 1) * dims[m.group(2)])
    return tuple(out)


# configurations that between them use every tensor
SHAPE_CONFIGS = [dict(), dict(gate="head", qknorm=1, hybrid=1, layerscale=1, sink="kv", tie=0),
                 dict(mixer="mlstm", gate="elem"), dict(gate="elem", sink="logit", ln="rms", linbias=0, mlp="swiglu"),
                 dict(sink="k", rope=1, hidden=40)]


def test_formats_tensor_table_matches_registry():
    header, rows, line = formats_table("Model checkpoint", "tensor")
    where = f"docs/FORMATS.md:{line}"
    names = [ticks(r[0])[0] if ticks(r[0]) else r[0] for r in rows]
    assert names == param_names(), f"{where}: tensors {names}, model/tensors.c's PARAMS order is {param_names()}"
    shapes = dict(zip(names, (r[header.index("shape")] for r in rows)))
    used = set()
    for over in SHAPE_CONFIGS:
        cfg = ref_gpt2.full_config(dict(L=3, C=24, H=2, Vp=128, maxT=16, **over))
        G = {"none": 0, "head": cfg["H"], "elem": cfg["C"]}[cfg["gate"]]
        F = 2 * cfg["hidden"] if cfg["mlp"] == "swiglu" else cfg["hidden"]
        dims = dict(L=cfg["L"], C=cfg["C"], H=cfg["H"], NH=cfg["H"], hs=cfg["C"] // cfg["H"], Vp=cfg["Vp"],
                    maxT=cfg["maxT"], hidden=cfg["hidden"], F=F, G=G)
        for name, shape in ref_gpt2.tensor_shapes(cfg):
            if math.prod(shape):
                used.add(name)
                assert shape_size(shapes[name], dims) == tuple(shape), \
                    f"{where}: {name} {shapes[name]} is not scripts/ref/ref_gpt2.py's {tuple(shape)} for {over}"
    assert used == set(names), f"test: SHAPE_CONFIGS leave {set(names) - used} unchecked"


# ----------------------------------------------------------------------------
# paths and identifiers



def tree_files():
    """The repository's files: git's list, or without git (an unpacked copy) the tree less what builds and runs write."""
    git = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    if git.returncode == 0 and git.stdout:
        return git.stdout.split()
    skip = {".git", ".pytest_cache", "build", "runs", "datasets", "__pycache__"}
    return [os.path.relpath(os.path.join(d, f), ROOT) for d, dirs, files in os.walk(ROOT)
            if not dirs.__setitem__(slice(None), [x for x in dirs if x not in skip]) for f in files]


TRACKED = tree_files()
TOP = {p.split("/")[0] for p in TRACKED if "/" in p}
BASENAMES = {os.path.basename(p) for p in TRACKED}
SOURCE_EXT = (".c", ".h", ".cu", ".cuh", ".cpp", ".py", ".sh", ".sbatch")

# Not in the tree, legitimately (short on purpose: anything else a doc names must exist):
GENERATED_ROOTS = {"build",      # build outputs (objects, libraries, reports)
                   "runs",       # run folders the programs and scripts write
                   "datasets",   # shared data, a symlink made by ./prepare and the quickstart
                   "OUT_DIR", "logs",   # the GPU check's output folder (docs/GPU.md)
                   "hf", "gpt2", "llama", "DIR", "path",   # example folders of commands; DIR, path/to: placeholders
                   "site-packages", "nvidia"}   # pip's layout of NVIDIA's wheels (docs/GPU.md)
EXTERNAL = {"train_gpt2.cu", "train_gpt2.py",   # llm.c's files, cited as the model for flags and weights
            "gpt2_tokenizer.bin",               # llm.c's tokenizer file
            "results.md", "bench.md",           # written by the ablation runner and the GPU check
            "rotate_half", "save_pretrained",   # transformers' functions
            "CUDA_VISIBLE_DEVICES", "NCCL_SOCKET_IFNAME",   # CUDA's and NCCL's environment
            "dlm_head", "W_o", "S_ij", "C_t", "dx_0",   # docs/MODEL.md's notation, not code
            }


def sources_text():
    parts = []
    for p in TRACKED:
        if p.endswith(SOURCE_EXT) or os.path.basename(p) in ("Makefile", "run"):
            with open(os.path.join(ROOT, p), encoding="utf-8", errors="replace") as f:
                parts.append(f.read())
    return "\n".join(parts)


def path_problem(token):
    """Why a path-like token does not name something in the tree, or None."""
    token = token.rstrip(".,:;)")
    if token.startswith("./"):
        token = token[2:]
    root = token.split("/")[0]
    if root in GENERATED_ROOTS or token in EXTERNAL:
        return None
    if "/" not in token:
        return None if token in BASENAMES or os.path.exists(os.path.join(ROOT, token)) else "no such file"
    if root not in TOP and root not in BASENAMES:
        return None if root in ("http:", "https:") else f"no top-level {root}/"
    if any(c in token for c in "*?["):
        return None if glob.glob(os.path.join(ROOT, token)) else "the glob matches nothing"
    return None if os.path.exists(os.path.join(ROOT, token.split("{")[0])) else "no such file or folder"


def is_path(token):
    token = token.rstrip(".,:;)")
    return bool(re.fullmatch(r"(\./)?[\w.*-]*[A-Za-z*][\w.*-]*(/[\w.*-]*)+", token, re.A) or
                (re.fullmatch(r"[\w-]+\.[a-z]+", token, re.A) and token.endswith(SOURCE_EXT + (".md",))))


def is_identifier(token):
    name = token[:-2] if token.endswith("()") else token
    if not re.fullmatch(r"(__)?[A-Za-z]\w*", name, re.A):   # not _suffix, not notation such as lm_headᵀ
        return False
    return token.endswith("()") or "_" in name.strip("_") or bool(re.fullmatch(r"[A-Z][a-z]+[A-Z]\w*", name))


def test_doc_paths_and_identifiers_exist():
    words = set(re.findall(r"\w+", sources_text())) | {os.path.splitext(b)[0] for b in BASENAMES}
    problems = []
    for rel in DOCS:
        for n, line in prose(rel):
            for span in ticks(line):
                for token in span.split():
                    if is_path(token):
                        why = path_problem(token)
                        if why:
                            problems.append(f"{rel}:{n}: `{token}`: {why}")
                    elif is_identifier(token) and token not in EXTERNAL:
                        name = token[:-2] if token.endswith("()") else token
                        if name not in words:
                            problems.append(f"{rel}:{n}: `{token}`: no such identifier in the sources")
            # repository paths written without backticks: docs/X.md, scripts/x.py, ...
            for token in re.findall(r"(?<![\w/`.-])((?:%s)/[\w./*-]*\w)" % "|".join(sorted(TOP)), line):
                why = path_problem(token)
                if why:
                    problems.append(f"{rel}:{n}: {token}: {why}")
    assert not problems, "stale paths or identifiers in the docs:\n" + "\n".join(sorted(set(problems)))


# ----------------------------------------------------------------------------
# the README: layout, docs index, the commands CI runs


def readme_section(title):
    text = read("README.md")
    m = re.search(rf"^## {title}\b[^\n]*\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert m, f"README.md: no section `## {title}`"
    return m.group(1)


def test_readme_layout_and_docs_index_are_complete():
    layout = readme_section("Layout")
    missing = sorted(d for d in TOP if not d.startswith(".") and not re.search(rf"^\s*{d}/", layout, re.M))
    assert not missing, f"README.md, Layout: top-level folders not listed: {missing}"
    problems, folder = [], ""
    for line in layout.split("\n"):   # the names in the layout, each in the tree (beside its folder's line)
        m = re.match(r"^    ([\w.-]+)/", line)
        folder = m.group(1) if m else folder if line.startswith("     ") else ""
        for token in re.findall(r"[\w./-]*\w\.(?:c|h|cu|cuh|py|sh|md)\b|[\w.-]+(?:/[\w.-]+)*/", line):
            if not any(os.path.exists(os.path.join(ROOT, d, token)) for d in ("", folder)) and token not in BASENAMES:
                problems.append(f"{token} (under {folder or 'the root'}/)")
    assert not problems, f"README.md, Layout: names not in the tree: {problems}"
    index = readme_section("Documentation")
    docs = sorted(os.path.basename(p) for p in DOCS[1:])
    unlisted = [d for d in docs if f"docs/{d}" not in index]
    assert not unlisted, f"README.md, Documentation: docs not in the index: {unlisted}"


def test_readme_commands_are_what_ci_runs():
    ci = read(".ci/run")
    quick = re.findall(r"^    (bash scripts/quickstart\.sh)$", readme_section("Quickstart"), re.M)
    assert quick, "README.md, Quickstart: the command `bash scripts/quickstart.sh` is gone; .ci/run runs it"
    assert "bash scripts/quickstart.sh" in ci, ".ci/run no longer runs the README's quickstart"
    tests = re.findall(r"^    (.+)$", readme_section("Tests"), re.M)
    assert tests, "README.md, Tests: no test command (an indented line)"
    targets = re.search(r"^test: (.*)$", read("Makefile"), re.M).group(1).split()
    for step in tests[0].split("&&"):
        step = step.strip()
        if step == "make test":
            ran = [t for t in targets if re.search(rf"\bmake (-j2 )?{t}\b", ci)]
            assert ran == targets, f".ci/run runs {ran} of `make test`'s parts {targets}"
        else:
            assert step in ci, f"README.md's test command step `{step}` is not in .ci/run"
