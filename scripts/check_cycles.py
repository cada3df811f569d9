#!/usr/bin/env python3
"""Fails when a crate's modules import each other in a cycle, at the level
of files (`a.rs` uses `b`, `b.rs` uses `a`) or of top-level folders
(`app/` uses `ws/` uses `app/`). A module uses another when its code (not
its comments or its `#[cfg(test)] mod tests`) names a `crate::`, `super::`
or `self::` path into it; a parent and its own children do not count.

    python3 scripts/check_cycles.py [SRC_DIR...]   (default: every crate)
"""
import os
import re
import sys
from collections import defaultdict

CRATES = ["core/src", "core/net/src", "core/sequencer/src", "server/src", "bindings/src",
          "bindings/wasm/src", "examples/src", "tests/src"]


def modules(src):
    found = {}
    for root, _, files in os.walk(src):
        for name in files:
            if not name.endswith(".rs"):
                continue
            path = os.path.join(root, name)
            parts = os.path.relpath(path, src)[:-3].split(os.sep)
            if parts[-1] in ("mod", "lib", "main"):
                parts = parts[:-1]
            if parts and parts[-1] == "tests":
                continue
            found[tuple(parts)] = path
    return found


def code_of(path):
    text = open(path, encoding="utf-8").read()
    cut = text.find("#[cfg(test)]\nmod tests {")
    if cut >= 0:
        text = text[:cut]
    return re.sub(r"//.*", "", text)


def resolve(path, mods):
    for n in range(len(path), 0, -1):
        if tuple(path[:n]) in mods:
            return tuple(path[:n])
    return None


def related(a, b):
    shorter, longer = (a, b) if len(a) <= len(b) else (b, a)
    return longer[: len(shorter)] == shorter


def edges_of(src):
    mods = modules(src)
    edges = defaultdict(set)
    for module, path in mods.items():
        parent = list(module[:-1])
        for match in re.finditer(r"\b(crate|super|self)((?:::\w+)+)(::\{([^;]*?)\})?", code_of(path)):
            base, rest, _, group = match.groups()
            segments = [s for s in rest.split("::") if s]
            start = [] if base == "crate" else parent[:] if base == "super" else list(module)
            while segments and segments[0] == "super":
                start, segments = start[:-1], segments[1:]
            targets = [start + segments]
            for item in (group or "").split(","):
                item = item.strip().split(" as ")[0].strip("{} ")
                if item and item != "self":
                    targets.append(start + segments + [s for s in item.split("::") if s])
            for target in targets:
                found = resolve(target, mods)
                if found and not related(found, module):
                    edges[module].add(found)
    return mods, edges


def cycles(nodes, edges):
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(component)

    for v in nodes:
        if v not in index:
            visit(v)
    return out


def main():
    failed = False
    for src in sys.argv[1:] or CRATES:
        if not os.path.isdir(src):
            continue
        mods, edges = edges_of(src)
        top = defaultdict(set)
        for a, targets in edges.items():
            for b in targets:
                if a[:1] != b[:1]:
                    top[a[:1]].add(b[:1])
        for kind, nodes, graph in (("modules", list(mods), edges), ("folders", list(top), top)):
            for component in cycles(nodes, graph):
                failed = True
                names = sorted("::".join(m) or "crate" for m in component)
                print(f"{src}: import cycle between {kind}: {' <-> '.join(names)}")
                for a in component:
                    for b in sorted(graph.get(a, ())):
                        if b in component:
                            print(f"    {'::'.join(a) or 'crate'} uses {'::'.join(b) or 'crate'}")
    if failed:
        sys.exit(1)
    print("no import cycles")


if __name__ == "__main__":
    main()
