"""Type hints on the public API of ``rmt`` and ``theory``, checked by mypy.

Two checks:

* ``test_mypy_clean`` runs mypy (configuration: ``[tool.mypy]`` in ``pyproject.toml``, default
  non-strict checking) on ``rmt`` and ``theory`` and requires a clean report. It reuses the
  incremental cache in the repository's ``.mypy_cache/``, so only a first (cold) run is slow.
* ``test_public_functions_annotated`` parses every public module of the two packages and requires
  every public function and public method to annotate all its parameters (``self``/``cls``
  excepted) and its return type. mypy alone would not catch a missing annotation: in default mode
  it silently skips unannotated functions.

Public means: the name does not start with ``_``, the module (and every package on its path) does
not start with ``_`` (a package's ``__init__.py`` counts as the package itself), and for methods
the class is public too. Functions nested inside other functions (closures) are not public.
"""
from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest
from mypy import api as mypy_api

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("rmt", "theory")


def test_mypy_clean(monkeypatch: pytest.MonkeyPatch) -> None:
    # mypy resolves the configured ``files`` and its cache directory relative to the working
    # directory
    monkeypatch.chdir(ROOT)
    stdout, stderr, status = mypy_api.run(["--config-file", str(ROOT / "pyproject.toml")])
    assert status == 0, f"mypy reported problems (exit status {status}):\n{stdout}{stderr}"


def _public_modules(package: str) -> Iterator[Path]:
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if any(part.startswith("_") and part != "__init__" for part in parts):
            continue
        yield path


def _public_functions(
        body: list[ast.stmt], prefix: str = "",
) -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    """Public functions and methods defined directly in ``body``, also inside module-level or
    class-level ``if``/``try`` blocks and public nested classes; not inside functions."""
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if not node.name.startswith("_"):
                yield prefix + node.name, node
        elif isinstance(node, ast.ClassDef):
            if not node.name.startswith("_"):
                yield from _public_functions(node.body, f"{prefix}{node.name}.")
        elif isinstance(node, ast.If):
            yield from _public_functions(node.body, prefix)
            yield from _public_functions(node.orelse, prefix)
        elif isinstance(node, ast.Try):
            yield from _public_functions(node.body, prefix)
            for handler in node.handlers:
                yield from _public_functions(handler.body, prefix)
            yield from _public_functions(node.orelse, prefix)
            yield from _public_functions(node.finalbody, prefix)


def _missing_annotations(node: ast.FunctionDef | ast.AsyncFunctionDef,
                         is_method: bool) -> list[str]:
    args = node.args
    positional = args.posonlyargs + args.args
    params = positional + args.kwonlyargs
    if args.vararg is not None:
        params.append(args.vararg)
    if args.kwarg is not None:
        params.append(args.kwarg)
    static = any(isinstance(d, ast.Name) and d.id == "staticmethod" for d in node.decorator_list)
    missing = []
    for param in params:
        if param.annotation is not None:
            continue
        if (is_method and not static and positional and param is positional[0]
                and param.arg in ("self", "cls")):
            continue
        missing.append(param.arg)
    if node.returns is None:
        missing.append("return")
    return missing


def _unannotated() -> list[str]:
    problems = []
    for package in PACKAGES:
        for path in _public_modules(package):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for qualname, node in _public_functions(tree.body):
                missing = _missing_annotations(node, is_method="." in qualname)
                if missing:
                    where = path.relative_to(ROOT).as_posix()
                    problems.append(f"{where}:{node.lineno}: {qualname} lacks annotations "
                                    f"for {', '.join(missing)}")
    return problems


def test_public_functions_annotated() -> None:
    problems = _unannotated()
    assert not problems, "public functions without full type annotations:\n" + "\n".join(problems)


def test_annotation_scan_finds_public_functions() -> None:
    # guard against the scan silently finding nothing (for example after a layout change)
    found = {qualname for package in PACKAGES for path in _public_modules(package)
             for qualname, _ in _public_functions(ast.parse(path.read_text("utf-8")).body)}
    assert len(found) > 100
