#!/usr/bin/env python3
"""launches.py SRC DST: copies a .cu file for the CPU emulation (test/cuda/emulate), turning every
kernel<<<grid, block[, smem[, stream]]>>>(args) into
emu_launch((const void*)kernel, "kernel", __FILE__, __LINE__, grid, block, smem, [=] { kernel(args); })
(a call by name, so the kernel's default arguments apply; the name and the launch site for the
emulation's reports). The stream is dropped (the emulation runs everything in order). Every static
`__shared__ T name[...]...;` becomes a reference to the block's own copy of the array
(emu_static_shared: one per block, filled with NaN bytes when the block first reaches it, between
poisoned red zones, so that blocks running at once on several host threads do not share it); any
other __shared__ declaration is refused. Lines stay where they were and #line keeps the original
file name, so compiler messages and __FILE__ name the real source."""
import re
import sys


def split_top_level(config):
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(config):
        depth += ch in "(["
        depth -= ch in ")]"
        if ch == "," and depth == 0:
            parts.append(config[start:i].strip())
            start = i + 1
    parts.append(config[start:].strip())
    return parts


def closing_paren(text, start):
    """The index of the ')' that closes the '(' just before text[start]."""
    depth = 1
    for i in range(start, len(text)):
        depth += text[i] == "("
        depth -= text[i] == ")"
        if depth == 0:
            return i
    sys.exit("launches.py: unbalanced parentheses after a launch")


def rewrite(text):
    # kernel name, optional template arguments (no nested <>), then the launch configuration on one line
    launch = re.compile(r"([A-Za-z_][\w:]*(?:<[^<>;\n]*>)?)<<<(.*?)>>>\(")
    out, pos = [], 0
    for m in launch.finditer(text):
        if m.start() < pos:
            continue
        kernel, config = m.group(1), split_top_level(m.group(2))
        if not 2 <= len(config) <= 4:
            sys.exit(f"launches.py: cannot parse launch configuration <<<{m.group(2)}>>>")
        smem = config[2] if len(config) > 2 else "0"
        end = closing_paren(text, m.end())
        args = text[m.end():end]
        out.append(text[pos:m.start()])
        name = " ".join(kernel.split())
        out.append(f'emu_launch((const void*){kernel}, "{name}", __FILE__, __LINE__, {config[0]}, {config[1]}, '
                   f"(size_t)({smem}), [=] {{ {kernel}({args}); }})")
        pos = end + 1
    out.append(text[pos:])
    return "".join(out)


SHARED_DECL = re.compile(r"^([ \t]*)([\w:<>,() \t*&]*?\b__shared__\b[^;{}=\n]*);", re.M)
QUALIFIED = re.compile(r"\s*((?:(?:volatile|const|unsigned|signed|long|short)\s+)*[A-Za-z_][\w:]*(?:<[^;]*>)?"
                       r"(?:\s+(?:int|long|short|char|double))*)(\s*\*+\s*|\s+)(\w+)\s*((?:\[[^\]]*\])*)\s*")


def shared_declaration(indent, stmt):
    """The emulation's form of one __shared__ declaration (without its ';'), or None if it is not
    one declarator of a named type."""
    align = re.search(r"\b(?:__align__|alignas)\s*\(([^()]*)\)", stmt)
    rest = stmt[:align.start()] + stmt[align.end():] if align else stmt
    words = rest.split()
    extern = "extern" in words
    rest = " ".join(w for w in words if w not in ("static", "extern", "__shared__"))
    m = QUALIFIED.fullmatch(" " + rest)
    if not m:
        return None
    base, stars, name, dims = m.group(1), m.group(2).strip(), m.group(3), m.group(4).replace(" ", "")
    type_ = base + stars
    if extern:   # the dynamic shared memory: a pointer to its start (file scope: the name stands for it)
        if dims != "[]":
            return None
        access = f"emu_dynamic_shared<{type_}>()"
        return f"#define {name} ({access})" if indent == "" else f"{indent}{type_}* {name} = {access}"
    if "[]" in dims:
        return None
    alignment = f"(size_t)({align.group(1)})" if align else f"alignof({type_}{dims})"
    ref = f"({'&' + name}){dims}" if dims else f"&{name}"
    return (f'{indent}static const char emu_tag_{name} = 0; {type_} {ref} = '
            f'*emu_static_shared<{type_}{dims}>(&emu_tag_{name}, "{name}", {alignment})')


def per_block_shared(text, src):
    """Each static `__shared__ T name[...];` (on one line; a scalar too; with __align__ or alignas)
    becomes, on that line,
    `static const char emu_tag_name = 0; T (&name)[...] = *emu_static_shared<T[...]>(&emu_tag_name, "name", align);`:
    the tag stands for the declaration, and the emulation hands each block its own array for it. An
    `extern __shared__ T name[];` (the dynamic shared memory) becomes a pointer to the block's dynamic
    shared memory (at file scope: a macro of that name)."""
    def replace(m):
        out = shared_declaration(m.group(1), m.group(2))
        if out is None:
            return m.group(0)
        return out if out.startswith("#define") else out + ";"
    text = SHARED_DECL.sub(replace, text)
    code = re.sub(r'//[^\n]*|/\*.*?\*/|"(?:\\.|[^"\\\n])*"', "", text, flags=re.S)   # no comments, no strings
    left = re.search(r"\b__shared__\b[^\n]*", code)
    if left:
        sys.exit(f"launches.py: {src}: a __shared__ declaration it cannot give each block a copy of "
                 f"(it takes one variable or array of a named type per declaration, on one line): "
                 f"{left.group(0).strip()}")
    return text


def main():
    src, dst = sys.argv[1], sys.argv[2]
    text = open(src).read()
    out = per_block_shared(rewrite(text), src)
    if "<<<" in out:
        sys.exit(f"launches.py: {src}: a launch it could not rewrite")
    with open(dst, "w") as f:
        f.write(f'#line 1 "{src}"\n' + out)


if __name__ == "__main__":
    main()
