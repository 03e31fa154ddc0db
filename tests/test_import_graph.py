"""The import contract (docs/design.md, "Where the core is heading"): layers rmt ← theory ←
simulations ← benchmarks, and no import circle among rmt's modules — counting imports inside
functions too, since a lazy import upward is still an upward dependency."""

from __future__ import annotations

import ast
import collections
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("rmt", "theory", "simulations", "benchmarks")  # each may import only those before it


def _modules(package):
    out = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(name, path, known):
    """Every module (of ``known``, else the top-level name) that ``name`` imports, anywhere."""
    is_pkg = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = name.split(".") if is_pkg else name.split(".")[:-1]
                pkg = pkg[: len(pkg) - node.level + 1]
                base = ".".join(pkg + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base
                       for a in node.names]
        for t in targets:
            while t not in known and "." in t:
                t = t.rsplit(".", 1)[0]
            found.add(t)
    found.discard(name)
    return found


def _graph(packages):
    known = {}
    for p in packages:
        known.update(_modules(p))
    return {m: _imports(m, p, known) for m, p in known.items()}


def test_no_upward_import_between_layers():
    graph = _graph(LAYERS[:-1])  # benchmarks are scripts: nothing imports them
    bad = []
    for mod, deps in graph.items():
        layer = LAYERS.index(mod.split(".")[0])
        for dep in deps:
            top = dep.split(".")[0]
            if top in LAYERS and LAYERS.index(top) > layer:
                bad.append(f"{mod} imports {dep}")
    assert not bad, "upward imports:\n" + "\n".join(sorted(bad))


def _cycles(graph):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
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
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_rmt_has_no_import_circle():
    graph = _graph(("rmt",))
    # a package's __init__ re-exports its modules: edges *into* a package from its own
    # submodules are the circle to avoid, edges from the __init__ down are its job
    assert _cycles(graph) == []


def test_the_checker_sees_a_circle():
    graph = collections.defaultdict(set, {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}})
    assert _cycles(dict(graph)) == [["a", "b", "c"]]
