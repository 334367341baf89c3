#!/usr/bin/env python3
"""Source layout rules (STYLE.md): no file in src/, include/, tools/ over 800
lines, and no include cycle between files, a header and its .cc counted as
one unit (lut.h + lut.cc), e.g. a.cc including b.h while b.cc includes a.h.
Prints every violation; exits 1 if there is one."""
import os
import re
import sys

root = sys.argv[1]
units = {}  # unit (path without extension) -> set of units it includes
long_files = []
for top in ("src", "include", "tools"):
    for d, _, files in os.walk(os.path.join(root, top)):
        for f in files:
            if not f.endswith((".h", ".cc", ".inc")):
                continue
            path = os.path.join(d, f)
            rel = os.path.relpath(path, root)
            with open(path, encoding="utf-8") as fh:
                lines = fh.readlines()
            if len(lines) > 800:
                long_files.append(f"{rel} ({len(lines)} lines)")
            unit = os.path.splitext(rel)[0]
            deps = units.setdefault(unit, set())
            for line in lines:
                m = re.match(r'\s*#\s*include\s+"([^"]+)"', line)
                if not m:
                    continue
                inc = m.group(1)
                for base in ("src", "include", "."):
                    cand = os.path.normpath(os.path.join(base, inc))
                    if os.path.exists(os.path.join(root, cand)):
                        dep = os.path.splitext(cand)[0]
                        if dep != unit:
                            deps.add(dep)
                        break

# Cycles: strongly connected components of more than one unit (Tarjan).
index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]
def visit(v):
    index[v] = low[v] = counter[0]
    counter[0] += 1
    stack.append(v)
    on.add(v)
    for w in units.get(v, ()):
        if w not in units:
            continue
        if w not in index:
            visit(w)
            low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = stack.pop()
            on.discard(w)
            comp.append(w)
            if w == v:
                break
        if len(comp) > 1:
            sccs.append(sorted(comp))

sys.setrecursionlimit(10000)
for u in sorted(units):
    if u not in index:
        visit(u)
for f in long_files:
    print("over 800 lines:", f)
for c in sccs:
    print("include cycle:", " <-> ".join(c))
print(f"layout: {len(units)} units, {len(long_files)} files over 800 lines, {len(sccs)} include cycles")
sys.exit(1 if long_files or sccs else 0)
