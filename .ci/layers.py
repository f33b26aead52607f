#!/usr/bin/env python3
"""The import graph of strata's library (src/, tests inside files left out): which file uses which
through `crate::` and `super::` paths. Fails when the graph has a circle, or when a file imports a
file of a higher layer (LAYERS below, bottom first). `--graph` prints every arrow.

Run from the repository root: python3 .ci/layers.py
"""
import re
import sys
from pathlib import Path

SRC = Path("src")

# Layers, bottom first: a file may import files of its own layer or lower ones only. Each entry
# is a glob of files under src/. A file in no layer is an error (say where a new file goes).
LAYERS = [
    ("plain types and sinks", [
        "allocator.rs", "threads.rs", "date.rs", "privacy.rs", "codes.rs", "digest.rs",
        "sink.rs", "report.rs", "cohort.rs",
    ]),
    ("reading and definitions", [
        "input/*.rs", "provenance.rs", "datafile.rs", "definitions.rs", "palliative.rs",
    ]),
    ("stages", [
        "features.rs", "carried.rs", "synth.rs", "population.rs", "scores.rs", "results.rs", "tables.rs",
        "tables/*.rs", "predictors.rs", "indicators.rs", "disclosure.rs", "disclosure/*.rs",
        "risk.rs", "lists.rs", "programmes.rs", "changes.rs", "config.rs", "output/*.rs",
        "publish.rs", "history.rs",
    ]),
    ("the run", ["settings.rs", "partition.rs", "finish.rs", "run.rs", "evaluation.rs"]),
    ("the library's face", ["lib.rs"]),
    ("front ends", ["main.rs", "cmd/*.rs"]),
]


def module_of(path: Path) -> list:
    """The module path of a source file: src/input/spells.rs -> [input, spells]."""
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "mod":
        parts = parts[:-1]
    if parts in (["lib"], ["main"]):
        return []
    return parts


def file_of(module: list):
    """The file of the longest prefix of `module` that is one: [input, spells, X] -> src/input/spells.rs."""
    for n in range(len(module), 0, -1):
        for cand in (SRC.joinpath(*module[:n]).with_suffix(".rs"), SRC.joinpath(*module[:n], "mod.rs")):
            if cand.is_file():
                return cand
    return None


def paths_in(text: str):
    """Every `crate::a::b` and `super::a` path of the code, with `use` groups expanded."""
    out = []
    # use groups: `use crate::a::{b, c::d};` -> crate::a::b, crate::a::c::d
    for m in re.finditer(r"\buse\s+((?:crate|super|self)(?:::\w+)*)::\{([^;]*)\};", text, re.S):
        base = m.group(1)
        for item in re.split(r",", re.sub(r"\{[^}]*\}", "", m.group(2))):
            item = item.strip().split(" as ")[0].strip()
            if item and item != "self":
                out.append(f"{base}::{item}")
            elif item == "self":
                out.append(base)
        # nested groups one level down: `a::{b, c}` inside the outer group
        for n in re.finditer(r"(\w+)::\{([^}]*)\}", m.group(2)):
            for item in n.group(2).split(","):
                item = item.strip().split(" as ")[0].strip()
                if item:
                    out.append(f"{base}::{n.group(1)}::{item}")
    for m in re.finditer(r"\b((?:crate|super)(?:::(?:super|\w+))+)", text):
        out.append(m.group(1))
    return out


def strip_tests(text: str) -> str:
    """The file's code: without its `#[cfg(test)]` module (at the end of the file, by
    convention), comments and string literals."""
    i = text.find("#[cfg(test)]\nmod ")
    text = text if i < 0 else text[:i]
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', text)
    return re.sub(r"//[^\n]*", "", text)


def resolve(src: Path, path: str):
    segs = path.split("::")
    here = module_of(src)
    # super:: is relative to the module that holds this file's module.
    if segs[0] == "crate":
        mod, rest = [], segs[1:]
    else:
        mod = here[:]
        rest = segs
        while rest and rest[0] in ("super", "self"):
            if rest[0] == "super":
                mod = mod[:-1]
            rest = rest[1:]
    return file_of(mod + rest)


def graph():
    edges = {}
    for f in sorted(SRC.rglob("*.rs")):
        text = strip_tests(f.read_text())
        for p in paths_in(text):
            t = resolve(f, p)
            if t is not None and t != f:
                edges.setdefault(f, set()).add(t)
    return edges


def layer_of(f: Path):
    rel = f.relative_to(SRC)
    for k, (_, globs) in enumerate(LAYERS):
        if any(rel.match(g) and len(rel.parts) == len(Path(g).parts) for g in globs):
            return k
    return None


def cycles(edges):
    """Strongly connected components of more than one file (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
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
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def main():
    edges = graph()
    if "--graph" in sys.argv:
        for a in sorted(edges):
            for b in sorted(edges[a]):
                print(f"{a} -> {b}")
    problems = []
    files = sorted(SRC.rglob("*.rs"))
    for f in files:
        if layer_of(f) is None:
            problems.append(f"{f}: in no layer of .ci/layers.py (say which layer it belongs to)")
    for a in sorted(edges):
        for b in sorted(edges[a]):
            la, lb = layer_of(a), layer_of(b)
            if la is not None and lb is not None and lb > la:
                problems.append(
                    f"{a} ({LAYERS[la][0]}) imports {b} ({LAYERS[lb][0]}), a higher layer"
                )
    for comp in cycles(edges):
        ties = [f"{a} -> {b}" for a in comp for b in sorted(edges.get(a, ())) if b in comp]
        problems.append("circle: " + ", ".join(map(str, comp)) + "\n    " + "\n    ".join(ties))
    for p in problems:
        print(p)
    n = sum(len(v) for v in edges.values())
    print(f"{len(files)} files, {n} imports, {len(problems)} problems")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
