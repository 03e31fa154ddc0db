"""Same numbers before/after a refactor: README tour, digits experiment, ``rmt reproduce --quick``.

Quality bar of the refactor: "a before/after script over the README tour, the held-out-style
digits experiment and ``rmt reproduce --quick`` shows identical outputs". Usage::

    # baseline: a worktree of the commit before the refactor
    git worktree add /tmp/before ed54b65
    python benchmarks/same_numbers.py run --repo /tmp/before --out /tmp/before.json
    # after
    python benchmarks/same_numbers.py run --repo /work/main --out /tmp/after.json
    python benchmarks/same_numbers.py compare /tmp/before.json /tmp/after.json

``run`` executes everything against the code checked out in ``--repo``: every subprocess has
``cwd=REPO`` and ``PYTHONPATH=REPO`` (so the editable install of another checkout is shadowed),
and each part prints and checks that ``rmt.__file__`` lies inside REPO. The CLI is invoked as
``python -m simulations.cli`` (the module behind the ``rmt`` console script,
``[project.scripts] rmt = "simulations.cli:main"``). Parts:

1. ``readme``: every fenced ```python block of REPO/README.md, executed in order in ONE fresh
   interpreter (as a notebook would). Per block: its stdout, and — as a notebook shows the value of
   an expression statement — the value of every top-level expression statement (``rmt.critical_eta(
   hs, sch)`` etc.), recorded at full precision (numpy arrays as exact ``tolist()``, floats by
   ``repr``; the object's repr with numpy's shortest-round-trip float printing and no summarising).
2. ``realdata``: the real-data (digits 3 vs 8) forecast-vs-unlearning experiment in its quick
   variant, ``python -m simulations.realdata --quick --out TMP`` (README: "`python -m
   simulations.realdata --quick` holds the forecasts against it on digits"): its stdout (one progress
   line per cell, then the summary JSON) and its output files.
3. ``reproduce``: ``python -m simulations.cli reproduce --quick --out TMP --no-progress`` and a
   manifest of every file it wrote (see below). ``--skip-reproduce`` leaves it out.

Manifest of output files: JSON (and extension-less files holding JSON, e.g. ``COMPLETE``) are
parsed and flattened to one item per leaf (``file:key.path[index]``); MD/TXT (and other text) to one
item per line; CSV to one item per row; a zarr store (``*.zarr/``) is decoded with xarray and gives
one item per array element (plus dims, dtype and attributes); PNG/PDF and any other binary file:
the file name only (images carry metadata). Values are compared as exact strings (floats by
``repr``: no rounding).

Stripped as inherently run-dependent (the list is also stored in the manifest's ``meta.stripped``):

* JSON keys whose name has one of the words of ``_VOLATILE_WORDS`` (``seconds``, ``elapsed``,
  ``time``, ``created``, ``utc``, ``commit``, ``host`` ...), e.g. ``compute_seconds``,
  ``total_seconds``, ``runs[].seconds``, ``created_utc``, ``provenance.commit``, ``elapsed_s``,
  ``seconds_forecast``;
* in every text line and JSON string: git hashes after the word ``commit``, ISO timestamps,
  absolute paths of REPO and of the temporary output folder (→ ``<REPO>``, ``<OUT>``), memory
  addresses ``0x…`` in reprs, and durations (``86 s``, ``1.5 min``) on lines that speak of time
  (``Compute time``, ``wall``, ``elapsed``, ``took``, ``this run:``);
* ``.lock`` files (empty lock files of the sweep engine) are listed by name only.

Every subprocess runs with ``PYTHONHASHSEED=0`` (string-set iteration order is then fixed) and
``MPLBACKEND=Agg``; thread counts are left at their defaults and recorded in ``meta``.

``compare BEFORE.json AFTER.json`` prints every differing item (file, key/line, before vs after),
items present on one side only, and ``identical: N items, different: M``; exit status 0 if M == 0.
The ``meta`` block (runtimes, thread settings, commit) is shown but never compared.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLI_MODULE = "simulations.cli"  # [project.scripts] rmt = "simulations.cli:main" (read per repo)


def cli_module(repo: Path) -> str:
    """The module behind the ``rmt`` console script of ``repo`` (``[project.scripts]``)."""
    try:
        import tomllib

        spec = tomllib.loads((repo / "pyproject.toml").read_text())["project"]["scripts"]["rmt"]
        return spec.split(":")[0].strip()
    except (ImportError, OSError, KeyError, ValueError):
        return CLI_MODULE

# --------------------------------------------------------------------------- stripping rules
#: A JSON key is run-dependent when one of its words (split at '_', '-', ' ', '.') is one of these.
_VOLATILE_WORDS = {
    "seconds", "secs", "sec", "elapsed", "time", "times", "timing", "timings", "wall", "walltime",
    "duration", "durations", "timestamp", "created", "utc", "date", "datetime", "started",
    "finished_at", "host", "hostname", "node", "commit", "git", "sha", "pid", "cwd", "user",
    "runtime",
}

_RE_COMMIT = re.compile(r"(commit\s+)([0-9a-f]{7,40})(\+dirty)?")
_RE_ISO = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?([+-]\d{2}:?\d{2}|Z)?")
_RE_ADDR = re.compile(r"0x[0-9a-fA-F]{6,}")
_RE_TIME_LINE = re.compile(r"(?i)compute time|wall|elapsed|took|this run:|run ?time|duration")
_RE_DURATION = re.compile(r"\b\d+(\.\d+)?\s?(ms|s|sec|min|h)\b")
#: ``name=value`` in a repr (``MeanSquareResult(..., elapsed=0.0486, ...)``): stripped when ``name``
#: is a volatile key name.
_RE_KWNUM = re.compile(r"\b([A-Za-z_][A-Za-z0-9_]*)=(-?(?:\d[\d.]*(?:[eE][-+]?\d+)?|nan|inf)|None)")


def _volatile_key(key) -> bool:
    k = str(key).lower()
    return any(w in _VOLATILE_WORDS for w in re.split(r"[_\-\s.]+", k) if w)


class Masker:
    """Text normalisation of run-dependent substrings; counts what it replaced."""

    def __init__(self, paths: dict):
        # longest first so /tmp/x/out is replaced before /tmp/x
        self.paths = sorted(((str(p), tag) for p, tag in paths.items() if p), key=lambda t: -len(t[0]))
        self.hits: dict = {}

    def _count(self, what, n=1):
        if n:
            self.hits[what] = self.hits.get(what, 0) + n

    def line(self, s: str) -> str:
        for p, tag in self.paths:
            if p in s:
                self._count(f"absolute path {tag}", s.count(p))
                s = s.replace(p, tag)
        s, n = _RE_COMMIT.subn(lambda m: m.group(1) + "<COMMIT>", s)
        self._count("git commit hash", n)
        s, n = _RE_ISO.subn("<TIMESTAMP>", s)
        self._count("ISO timestamp", n)
        s, n = _RE_ADDR.subn("0x<ADDR>", s)
        self._count("memory address", n)
        def kw(m):
            if not _volatile_key(m.group(1)):
                return m.group(0)
            self._count(f"'{m.group(1)}=<number>' in a repr")
            return m.group(1) + "=<STRIPPED>"

        s = _RE_KWNUM.sub(kw, s)
        if _RE_TIME_LINE.search(s):
            s, n = _RE_DURATION.subn("<DURATION>", s)
            self._count("duration on a time line", n)
        return s

    def text(self, s: str) -> str:
        return "\n".join(self.line(x) for x in s.split("\n"))


# --------------------------------------------------------------------------- value encoding
def _scalar(v) -> str:
    """Exact string of a JSON leaf (floats by repr: no rounding)."""
    if isinstance(v, bool) or v is None:
        return json.dumps(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, int):
        return str(v)
    return json.dumps(v, ensure_ascii=False)


def _flatten(obj, prefix, items, masker, stripped):
    """JSON object → ``items[path] = exact string`` with volatile keys stripped."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            path = f"{prefix}{k}" if not prefix or prefix.endswith(":") else f"{prefix}.{k}"
            if _volatile_key(k):
                stripped.add(re.sub(r"\[\d+\]", "[]", re.sub(r"/\d+\.json:", "/<i>.json:", path)))
                continue
            _flatten(v, path, items, masker, stripped)
        if not obj:
            items[prefix] = "{}"
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            _flatten(v, f"{prefix}[{i}]", items, masker, stripped)
        if not obj:
            items[prefix] = "[]"
    elif isinstance(obj, str):
        items[prefix] = _scalar(masker.text(obj))
    else:
        items[prefix] = _scalar(obj)


_IMAGE_EXT = {".png", ".pdf", ".svg", ".jpg", ".jpeg", ".gif"}
_TEXT_EXT = {".md", ".txt", ".log", ".toml", ".yaml", ".yml"}


def _zarr_items(store: Path, key: str, items, masker, stripped):
    import numpy as np
    import xarray as xr

    ds = xr.open_zarr(store, consolidated=False, chunks=None)
    _flatten(dict(ds.attrs), f"{key}:attrs", items, masker, stripped)
    for name in sorted(ds.variables):
        var = ds.variables[name]
        base = f"{key}:{name}"
        items[f"{base}.dims"] = _scalar(list(var.dims))
        items[f"{base}.dtype"] = _scalar(str(var.dtype))
        _flatten(dict(var.attrs), f"{base}.attrs", items, masker, stripped)
        arr = np.asarray(var.values)
        for idx, v in np.ndenumerate(arr):
            ix = ",".join(map(str, idx))
            items[f"{base}[{ix}]"] = _leaf_repr(v)


def _leaf_repr(v) -> str:
    import numpy as np

    if isinstance(v, (np.floating, float)):
        return repr(float(v))
    if isinstance(v, (np.bool_, bool)):
        return json.dumps(bool(v))
    if isinstance(v, (np.integer, int)):
        return str(int(v))
    if isinstance(v, bytes):
        return repr(v)
    return _scalar(v if isinstance(v, str) else str(v))


def manifest_of_dir(root: Path, section: str, masker: Masker, stripped: set, notes: list) -> dict:
    """Every file under ``root`` → items (see the module docstring)."""
    items = {}
    root = Path(root)
    zarrs = sorted(p for p in root.rglob("*.zarr") if p.is_dir())
    for z in zarrs:
        rel = z.relative_to(root).as_posix()
        _zarr_items(z, f"{section}/{rel}", items, masker, stripped)
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        rel = path.relative_to(root).as_posix()
        key = f"{section}/{rel}"
        if any(path.is_relative_to(z) for z in zarrs):
            continue  # decoded above
        ext = path.suffix.lower()
        if ext in _IMAGE_EXT or path.name == ".lock":
            items[f"{key}:<file>"] = '"present"'
            continue
        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            items[f"{key}:<file>"] = '"present (binary)"'
            notes.append(f"{key}: binary, name only")
            continue
        if ext == ".json" or (ext == "" and text.lstrip()[:1] in "{["):
            try:
                obj = json.loads(text)
            except ValueError:
                obj = None
            else:
                _flatten(obj, key + ":", items, masker, stripped)
                continue
        if ext == ".csv":
            for i, row in enumerate(csv.reader(io.StringIO(text))):
                items[f"{key}:row {i + 1}"] = _scalar([masker.line(c) for c in row])
            continue
        for i, line in enumerate(text.split("\n")):
            items[f"{key}:line {i + 1}"] = _scalar(masker.line(line))
    return items


# --------------------------------------------------------------------------- subprocess helpers
def _env(repo: Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(repo)
    env["PYTHONHASHSEED"] = "0"
    env["MPLBACKEND"] = "Agg"
    env.pop("RMT_DEBUG", None)
    return env


def _check_origin(repo: Path) -> str:
    """``rmt.__file__`` as imported by a subprocess like the ones below; must lie in ``repo``."""
    code = (f"import rmt, simulations, theory, {cli_module(repo)} as c; "
            "print(rmt.__file__); print(simulations.__file__); print(theory.__file__); "
            "print(c.__file__)")
    out = subprocess.run([sys.executable, "-c", code], cwd=repo, env=_env(repo),
                         capture_output=True, text=True, check=True).stdout.split()
    for f in out:
        if not Path(f).resolve().is_relative_to(repo.resolve()):
            raise SystemExit(f"imported {f}, which is not inside --repo {repo}: refusing to run")
    print(f"[same_numbers] rmt.__file__ = {out[0]} (inside {repo}: ok)", flush=True)
    return out[0]


def _run(cmd, repo: Path, log: Path, timeout=3600) -> tuple:
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        proc = subprocess.run(cmd, cwd=repo, env=_env(repo), stdout=subprocess.PIPE, stderr=fh,
                              text=True, timeout=timeout)
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = log.read_text()[-3000:]
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(map(str, cmd))}\n{tail}")
    return proc.stdout, dt


# --------------------------------------------------------------------------- part 1: README tour
_TOUR_DRIVER = r'''
import ast, contextlib, io, json, sys, traceback, types
import numpy as np

blocks = json.load(open(sys.argv[1]))
out_path = sys.argv[2]

import rmt
print("[tour] rmt.__file__ =", rmt.__file__, file=sys.stderr, flush=True)

def exact(v):
    """Full-precision text of an expression's value."""
    if isinstance(v, np.ndarray):
        return "ndarray%s %s %s" % (v.shape, v.dtype, json.dumps(v.tolist()))
    if isinstance(v, float):
        return repr(v)
    with np.printoptions(precision=17, floatmode="unique", threshold=sys.maxsize):
        return repr(v)

ns = {"__name__": "__main__"}
result = []
for bi, src in enumerate(blocks):
    tree = ast.parse(src)
    rec = {"stdout": "", "values": [], "error": None}
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf):
            for node in tree.body:
                line = ast.get_source_segment(src, node).split("\n")[0]
                if isinstance(node, ast.Expr):
                    val = eval(compile(ast.Expression(node.value), "<readme block %d>" % (bi + 1),
                                       "eval"), ns)
                    if val is not None:
                        rec["values"].append({"line": node.lineno, "source": line,
                                              "value": exact(val)})
                else:
                    exec(compile(ast.Module([node], []), "<readme block %d>" % (bi + 1), "exec"), ns)
    except Exception as exc:
        rec["error"] = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        traceback.print_exc()
    rec["stdout"] = buf.getvalue()
    # the variables this block bound at top level (assignments, for-loop targets), at full
    # precision: a notebook keeps them, and the tour states their numbers in comments
    names = []
    for node in tree.body:
        targets = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign, ast.For)):
            targets = [node.target]
        for t in targets:
            for sub in ast.walk(t):
                if isinstance(sub, ast.Name) and sub.id not in names:
                    names.append(sub.id)
    rec["variables"] = {}
    for name in names:
        if name in ns and not isinstance(ns[name], types.ModuleType):
            rec["variables"][name] = exact(ns[name])
    result.append(rec)
    print("[tour] block %d done" % (bi + 1), file=sys.stderr, flush=True)

meta = {"rmt_file": rmt.__file__}
try:
    import threadpoolctl
    meta["threadpools"] = [{k: i.get(k) for k in ("user_api", "internal_api", "num_threads")}
                           for i in threadpoolctl.threadpool_info()]
except Exception as exc:  # pragma: no cover
    meta["threadpools"] = repr(exc)
try:
    import numba
    meta["numba_threads"] = numba.config.NUMBA_NUM_THREADS
except Exception as exc:  # pragma: no cover
    meta["numba_threads"] = repr(exc)
json.dump({"blocks": result, "meta": meta}, open(out_path, "w"))
'''


def readme_blocks(readme: Path) -> list:
    """The fenced ```python blocks of a README, in order."""
    blocks, cur = [], None
    for line in readme.read_text().splitlines():
        s = line.strip()
        if cur is None and re.fullmatch(r"```\s*python3?\s*", s):
            cur = []
        elif cur is not None and s.startswith("```"):
            blocks.append("\n".join(cur) + "\n")
            cur = None
        elif cur is not None:
            cur.append(line)
    return blocks


def part_readme(repo: Path, work: Path, masker: Masker, stripped: set, meta: dict) -> dict:
    blocks = readme_blocks(repo / "README.md")
    print(f"[same_numbers] README: {len(blocks)} python block(s)", flush=True)
    (work / "blocks.json").write_text(json.dumps(blocks))
    (work / "tour_driver.py").write_text(_TOUR_DRIVER)
    _, dt = _run([sys.executable, str(work / "tour_driver.py"), str(work / "blocks.json"),
                  str(work / "tour_out.json")], repo, work / "tour.stderr")
    res = json.loads((work / "tour_out.json").read_text())
    if not Path(res["meta"]["rmt_file"]).resolve().is_relative_to(repo.resolve()):
        raise SystemExit(f"README tour imported {res['meta']['rmt_file']}, not from {repo}")
    meta["readme"] = {"seconds": dt, "blocks": len(blocks), **res["meta"]}
    items = {}
    for i, (src, rec) in enumerate(zip(blocks, res["blocks"]), 1):
        key = f"readme/block {i}"
        items[f"{key}:source sha"] = _scalar(_sha(src))
        items[f"{key}:error"] = _scalar(rec["error"])
        for j, line in enumerate(rec["stdout"].split("\n")):
            items[f"{key}:stdout line {j + 1}"] = _scalar(masker.line(line))
        for v in rec["values"]:
            items[f"{key}:value of line {v['line']} `{v['source'].strip()}`"] = \
                _scalar(masker.text(v["value"]))
        for name, val in rec["variables"].items():
            items[f"{key}:variable {name}"] = _scalar(masker.text(val))
        if rec["error"]:
            print(f"[same_numbers] README block {i} raised: {rec['error']}", flush=True)
    print(f"[same_numbers] README tour: {dt:.1f} s", flush=True)
    return items


def _sha(s: str) -> str:
    import hashlib

    return hashlib.sha256(s.encode()).hexdigest()[:16]


# --------------------------------------------------------------------------- part 2: realdata
def part_realdata(repo: Path, work: Path, masker: Masker, stripped: set, meta: dict,
                  notes: list) -> dict:
    out = work / "realdata"
    stdout, dt = _run([sys.executable, "-m", "simulations.realdata", "--quick", "--out", str(out)],
                      repo, work / "realdata.stderr")
    meta["realdata"] = {"seconds": dt, "command": "python -m simulations.realdata --quick --out TMP"}
    items = {}
    lines = stdout.split("\n")
    start = next((i for i, s in enumerate(lines) if s.strip() == "{"), len(lines))
    for i, line in enumerate(lines[:start]):
        items[f"realdata/stdout:line {i + 1}"] = _scalar(masker.line(line))
    tail = "\n".join(lines[start:]).strip()
    if tail:
        _flatten(json.loads(tail), "realdata/stdout summary:", items, masker, stripped)
    items.update(manifest_of_dir(out, "realdata/files", masker, stripped, notes))
    print(f"[same_numbers] realdata --quick: {dt:.1f} s", flush=True)
    return items


# --------------------------------------------------------------------------- part 3: reproduce
def part_reproduce(repo: Path, work: Path, masker: Masker, stripped: set, meta: dict,
                   notes: list) -> dict:
    out = work / "reproduce"
    mod = cli_module(repo)
    stdout, dt = _run([sys.executable, "-m", mod, "reproduce", "--quick", "--out", str(out),
                       "--no-progress"], repo, work / "reproduce.stderr")
    meta["reproduce"] = {"seconds": dt, "command": f"python -m {mod} reproduce --quick "
                                                   "--out TMP --no-progress"}
    items = {}
    for i, line in enumerate(stdout.split("\n")):
        items[f"reproduce/stdout:line {i + 1}"] = _scalar(masker.line(line))
    items.update(manifest_of_dir(out, "reproduce/files", masker, stripped, notes))
    print(f"[same_numbers] rmt reproduce --quick: {dt:.1f} s", flush=True)
    return items


# --------------------------------------------------------------------------- commands
def cmd_run(args) -> int:
    repo = Path(args.repo).resolve()
    if not (repo / "README.md").is_file() or not (repo / "rmt").is_dir():
        raise SystemExit(f"--repo {repo}: not an rmt checkout")
    rmt_file = _check_origin(repo)
    work = Path(tempfile.mkdtemp(prefix="same_numbers_"))
    masker = Masker({str(work): "<OUT>", str(repo): "<REPO>",
                     str(Path(tempfile.gettempdir()).resolve()): "<TMP>"})
    stripped, notes = set(), []
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True,
                            text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                           capture_output=True, text=True).stdout.strip()
    meta = {"repo": str(repo), "commit": commit + ("+dirty" if dirty else ""),
            "rmt_file": rmt_file, "python": sys.executable, "nproc": os.cpu_count(),
            "load_before": os.getloadavg(),
            "thread_env": {k: v for k, v in os.environ.items()
                           if k.endswith("_NUM_THREADS") or k.startswith("NUMBA_")},
            "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    items = {}
    t0 = time.perf_counter()
    try:
        items.update(part_readme(repo, work, masker, stripped, meta))
        if not args.skip_realdata:
            items.update(part_realdata(repo, work, masker, stripped, meta, notes))
        if not args.skip_reproduce:
            items.update(part_reproduce(repo, work, masker, stripped, meta, notes))
    finally:
        meta["total_seconds"] = time.perf_counter() - t0
        meta["load_after"] = os.getloadavg()
        if args.keep:
            print(f"[same_numbers] outputs kept in {work}", flush=True)
        else:
            shutil.rmtree(work, ignore_errors=True)
    meta["parts"] = ["readme"] + ([] if args.skip_realdata else ["realdata"]) + \
        ([] if args.skip_reproduce else ["reproduce"])
    meta["stripped"] = {"json_keys": sorted(stripped), "text_replacements": masker.hits,
                        "notes": notes}
    doc = {"meta": meta, "items": items}
    Path(args.out).write_text(json.dumps(doc, indent=0, ensure_ascii=False))
    print(f"[same_numbers] {len(items)} items → {args.out} ({meta['total_seconds']:.1f} s); "
          f"stripped keys: {', '.join(sorted(stripped)) or 'none'}; text replacements: "
          f"{masker.hits}", flush=True)
    return 0


def _short(s: str, n=200) -> str:
    return s if len(s) <= n else s[:n] + f"… ({len(s)} chars)"


def cmd_compare(args) -> int:
    a = json.loads(Path(args.before).read_text())
    b = json.loads(Path(args.after).read_text())
    ma, mb = a["meta"], b["meta"]
    print(f"before: {ma.get('repo')} @ {ma.get('commit')}  parts {ma.get('parts')}  "
          f"{ma.get('total_seconds', float('nan')):.0f} s")
    print(f"after:  {mb.get('repo')} @ {mb.get('commit')}  parts {mb.get('parts')}  "
          f"{mb.get('total_seconds', float('nan')):.0f} s")
    if ma.get("parts") != mb.get("parts"):
        print(f"WARNING: different parts were run ({ma.get('parts')} vs {mb.get('parts')})")
    for what, fa, fb in (
            ("thread environment variables", ma.get("thread_env"), mb.get("thread_env")),
            ("CPU count", ma.get("nproc"), mb.get("nproc")),
            ("BLAS/OpenMP thread pools (README interpreter)",
             (ma.get("readme") or {}).get("threadpools"), (mb.get("readme") or {}).get("threadpools")),
            ("numba threads", (ma.get("readme") or {}).get("numba_threads"),
             (mb.get("readme") or {}).get("numba_threads"))):
        if fa != fb:
            print(f"WARNING: {what} differ ({fa} vs {fb}): the digits MLP results depend on the BLAS "
                  "thread count, so differences there may come from the environment, not the code")
    ia, ib = a["items"], b["items"]
    if args.ignore:
        pats = [re.compile(x) for x in args.ignore]
        drop = {k for k in set(ia) | set(ib) if any(p.search(k) for p in pats)}
        ia = {k: v for k, v in ia.items() if k not in drop}
        ib = {k: v for k, v in ib.items() if k not in drop}
        print(f"ignored: {len(drop)} item(s) matching {args.ignore}")
    same = diff = 0
    keys = list(ia) + [k for k in ib if k not in ia]
    for k in keys:
        if k not in ib:
            diff += 1
            print(f"ONLY BEFORE  {k}: {_short(ia[k])}")
        elif k not in ia:
            diff += 1
            print(f"ONLY AFTER   {k}: {_short(ib[k])}")
        elif ia[k] != ib[k]:
            diff += 1
            x, y = ia[k], ib[k]
            if max(len(x), len(y)) > 400:  # show the neighbourhood of the first difference
                i = next((j for j, (p, q) in enumerate(zip(x, y)) if p != q), min(len(x), len(y)))
                lo = max(i - 150, 0)
                x, y = f"[chars {lo}..] " + x[lo:lo + 400], f"[chars {lo}..] " + y[lo:lo + 400]
            print(f"DIFFERENT    {k}:\n    before: {x}\n    after:  {y}")
            if "\n" in ia[k] or "\\n" in ia[k]:
                import difflib

                for d in difflib.unified_diff(json.loads(ia[k]).split("\n") if ia[k].startswith('"') else [ia[k]],
                                              json.loads(ib[k]).split("\n") if ib[k].startswith('"') else [ib[k]],
                                              "before", "after", lineterm="", n=0):
                    print("      " + d)
        else:
            same += 1
    progress = [k for k in keys if k.startswith("realdata/stdout:line ")
                and ia.get(k) != ib.get(k)]
    if progress:
        print(f"note: {len(progress)} of the differences are the per-cell progress lines of "
              "`python -m simulations.realdata` on stdout (after 1d52cd4 they are a tqdm bar on "
              "stderr); every number in them is also in realdata.json rows[] (outcome, observed, "
              "observed_fraction, rate) — rerun compare with --ignore '^realdata/stdout:line ' to "
              "check the rest")
    ident = [k for k in keys if k in ia and k in ib and ia[k] != ib[k]
             and re.search(r"(fingerprint|func)$", k)]
    if ident:
        print(f"note: {len(ident)} of the differences are sweep identities (func/fingerprint): a "
              "cell function that moved module changes them (old stores no longer resume) "
              "without changing any number")
    print(f"identical: {same} items, different: {diff}")
    return 0 if diff == 0 else 1


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run the three parts against --repo and write a manifest")
    r.add_argument("--repo", required=True, help="checkout whose code is run")
    r.add_argument("--out", required=True, help="manifest JSON to write")
    r.add_argument("--skip-reproduce", action="store_true", help="leave out rmt reproduce --quick")
    r.add_argument("--skip-realdata", action="store_true", help="leave out the digits experiment")
    r.add_argument("--keep", action="store_true", help="keep the temporary output folder")
    r.set_defaults(func=cmd_run)
    c = sub.add_parser("compare", help="compare two manifests")
    c.add_argument("before")
    c.add_argument("after")
    c.add_argument("--ignore", action="append", metavar="REGEX",
                   help="leave out items whose key matches REGEX (repeatable); says how many")
    c.set_defaults(func=cmd_compare)
    args = p.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
