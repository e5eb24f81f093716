#!/usr/bin/env python3
"""The initial async frame (context) size of every async function of a binary whose name matches
a pattern, largest first. An open stream's task keeps the frames of the functions it is suspended
in, in task-allocator slabs of ~1 KiB, for the stream's whole life (BENCHMARKS.md, issue 12).

usage: bench/frames/asyncframes.py BINARY [REGEX (default: Fanout|MicroHTTP)]
needs: pip install pyelftools; swift-demangle (the Swift toolchain)

An async function pointer (mangled suffix `Tu`) is {int32 relative function, uint32 context size}.
"""
import re
import subprocess
import sys

from elftools.elf.elffile import ELFFile

path = sys.argv[1]
pattern = re.compile(sys.argv[2] if len(sys.argv) > 2 else "Fanout|MicroHTTP")
binary = open(path, "rb")
elf = ELFFile(binary)
sections = [s for s in elf.iter_sections() if s["sh_addr"] and s["sh_type"] != "SHT_NOBITS"]


def read(address, count):
    for section in sections:
        if section["sh_addr"] <= address < section["sh_addr"] + section["sh_size"]:
            binary.seek(section["sh_offset"] + address - section["sh_addr"])
            return binary.read(count)
    return None


symbols = [(s.name, s["st_value"]) for s in elf.get_section_by_name(".symtab").iter_symbols()
           if s.name.startswith("$s") and s.name.endswith("Tu") and pattern.search(s.name)]
names = subprocess.run(["swift-demangle", "--compact", "--simplified"], input="\n".join(n for n, _ in symbols),
                       capture_output=True, text=True, check=True).stdout.splitlines()
rows = []
for (_, address), name in zip(symbols, names):
    size = read(address + 4, 4)
    if size is not None:
        rows.append((int.from_bytes(size, "little"), name.removeprefix("async function pointer to ")))
for size, name in sorted(rows, reverse=True):
    print(f"{size:6d}  {name}")
