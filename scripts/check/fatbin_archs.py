#!/usr/bin/env python3
"""The GPU code inside a CUDA program, for when cuobjdump is not at hand (make gpu_bundle checks that
the bundle carries sm_90 SASS with it; scripts/gpu_check.sh uses cuobjdump where there is one).
Reads the ELF section .nv_fatbin: fat binaries (magic 0xBA55ED50, a 16-byte header: magic, version,
header size, size of the entries), each entry a header (kind: 1 PTX, 2 ELF i.e. SASS; its header
size at byte 4, its padded payload size at byte 8, its architecture at byte 28) and the payload.
Prints one line per kind and architecture with the number of entries, e.g. "sass sm_90 44".
    python3 scripts/check/fatbin_archs.py PROGRAM [--require sass:sm_90]"""
import collections
import struct
import sys

MAGIC = 0xBA55ED50


def section(path, name):
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF" or data[4] != 2:
        sys.exit(f"error: {path}: not a 64-bit ELF file")
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    headers = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    names = headers[shstrndx]
    for h in headers:
        start = names[4] + h[0]
        if data[start:data.index(b"\0", start)].decode() == name:
            return data[h[4]:h[4] + h[5]]
    return b""


def entries(blob):
    at = 0
    while at + 16 <= len(blob):
        magic, _, header_size, size = struct.unpack_from("<IHHQ", blob, at)
        if magic != MAGIC:
            at += 8   # fat binaries are 8-byte aligned in the section
            continue
        entry, end = at + header_size, at + header_size + size
        while entry + 32 <= end:
            kind, _, entry_header, payload = struct.unpack_from("<HHII", blob, entry)
            arch, = struct.unpack_from("<I", blob, entry + 28)
            yield {1: "ptx", 2: "sass"}.get(kind, f"kind{kind}"), arch
            entry += entry_header + payload
        at = end


def main():
    path = sys.argv[1]
    counts = collections.Counter(entries(section(path, ".nv_fatbin")))
    for (kind, arch), n in sorted(counts.items()):
        print(f"{kind} sm_{arch} {n}")
    for need in sys.argv[sys.argv.index("--require") + 1:] if "--require" in sys.argv else []:
        kind, arch = need.split(":")
        if counts[(kind, int(arch[3:]))] == 0:
            sys.exit(f"error: {path}: no {kind} for {arch} in its .nv_fatbin")


main()
