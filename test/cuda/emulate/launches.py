#!/usr/bin/env python3
"""launches.py SRC DST: copies a .cu file for the CPU emulation (test/cuda/emulate), turning every
kernel<<<grid, block[, smem[, stream]]>>>(args) into
emu_launch((const void*)kernel, grid, block, smem, [=] { kernel(args); }) (a call by name, so the
kernel's default arguments apply). The stream is dropped (the emulation runs everything in order). Static __shared__ arrays get a
call that fills them with NaN bytes at the start of each block. Lines stay where they were and
#line keeps the original file name, so compiler messages and __FILE__ name the real source."""
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
        out.append(f"emu_launch((const void*){kernel}, {config[0]}, {config[1]}, (size_t)({smem}), "
                   f"[=] {{ {kernel}({args}); }})")
        pos = end + 1
    out.append(text[pos:])
    return "".join(out)


def poison_static_shared(text):
    """After each `__shared__ T name[...];` declaration, on the same line, a call that fills the
    array with NaN bytes when the first thread of a block reaches it (static arrays otherwise keep
    the previous block's data, hiding a read before the first write)."""
    decl = re.compile(r"^(\s*__shared__\s+[\w:<>]+\s+(\w+)(?:\[[^\]\n]+\])+;)", re.M)
    return decl.sub(r"\1 emu_poison_shared(&\2, sizeof(\2));", text)


def main():
    src, dst = sys.argv[1], sys.argv[2]
    text = open(src).read()
    out = poison_static_shared(rewrite(text))
    if "<<<" in out:
        sys.exit(f"launches.py: {src}: a launch it could not rewrite")
    with open(dst, "w") as f:
        f.write(f'#line 1 "{src}"\n' + out)


if __name__ == "__main__":
    main()
