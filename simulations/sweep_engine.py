"""Generic resumable grid engine: grid → labelled ``xarray.Dataset`` in a zarr store.

Knows nothing about rmt: it evaluates any picklable ``func(params, seed)`` (the rmt-specific
config-driven cells live in :mod:`simulations.sweep`, which re-exports everything here). Its one
use of rmt is in a pool worker, which takes the BLAS thread policy from :mod:`rmt.threads`.

The engine evaluates ``func(params, seed)`` on every cell of a Cartesian grid and assembles the
scalar outputs into an :class:`xarray.Dataset` whose dimensions are the grid axes (eta, batch,
alpha, sigma, snr, seed, …) and whose variables are the outputs. See ``docs/sweeps.md``.

Store layout (a directory)::

    STORE/
      sweep.json          identity of the sweep (fingerprint, grid, seed, config); written first
      cells/<i>.json      one record per finished cell (flat C-order index i), written atomically
      result.zarr/        the assembled Dataset (zarr v3), written once every cell is done
      COMPLETE            written after result.zarr; only then is the store trusted as finished
      .lock               ``filelock`` lock: one run per store at a time (a second run fails at once)

Resume semantics: every finished cell is written with write-to-temporary + ``os.replace``, so a
kill at any moment leaves either a whole record or none (unreadable records are ignored and
recomputed). A rerun of the same sweep skips every cell with a valid record and computes the rest;
the assembled data depend only on (func, grid, seed), never on how many runs it took or on the
executor. A store holding a different sweep (different fingerprint) is refused before any work.

Processes (``executor="processes"``): a forkserver pool. Ctrl-C stops the workers at once (cells
in flight are lost, finished ones are kept); every worker also exits as soon as the coordinating
process is gone (``kill -9`` included), after which the forkserver and multiprocessing's resource
tracker see their pipes close and exit too — no orphan survives the coordinator.

Randomness: the cell at grid position ``index`` (a tuple of ints) receives
``numpy.random.SeedSequence(seed, spawn_key=index)``; no other randomness enters, so serial,
process and Dask executors give bit-identical data.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import logging
import math
import numbers
import os
import shutil
import socket
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
from filelock import FileLock, Timeout

__all__ = [
    "EXECUTORS",
    "SweepError",
    "SweepMismatchError",
    "SweepStatus",
    "CellFunction",
    "run_sweep",
    "check_scheduler",
    "open_sweep",
    "sweep_status",
    "grid_cells",
    "cell_seed",
    "fingerprint",
]

#: Executor names accepted by :func:`run_sweep`.
EXECUTORS = ("serial", "processes", "dask")

FORMAT_VERSION = 1
_META = "sweep.json"
_CELLS = "cells"
_RESULT = "result.zarr"
_COMPLETE = "COMPLETE"
_LOCK = ".lock"


class SweepError(ValueError):
    """A sweep cannot run as requested (bad grid, bad store, bad executor options)."""


class SweepMismatchError(SweepError):
    """The output store already holds a *different* sweep."""


class CellFunction:
    """Base of a cell function that is an instance (e.g. a frozen dataclass of the fixed protocol
    parameters, picklable for the process and Dask executors): like a plain function it has a
    ``__name__``, its class name."""

    @property
    def __name__(self) -> str:
        return type(self).__name__


# ---------------------------------------------------------------------- grid and seeds
def _check_grid(grid) -> dict[str, list]:
    if not isinstance(grid, Mapping):
        raise SweepError(f"grid must be a mapping axis name -> list of values, got {type(grid).__name__}")
    if not grid:
        raise SweepError("grid is empty: give at least one axis with at least one value")
    out = {}
    for name, values in grid.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise SweepError(f"grid axis names must be identifiers, got {name!r}")
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence | np.ndarray):
            raise SweepError(f"grid axis {name!r} must be a list of values, got {values!r}")
        values = [_plain(v, f"grid axis {name!r}") for v in values]
        if not values:
            raise SweepError(f"grid axis {name!r} is empty: give at least one value")
        kinds = {type(v) for v in values}
        if str in kinds and len(kinds) > 1:
            raise SweepError(f"grid axis {name!r} mixes strings and numbers: {values!r}")
        if len(set(values)) != len(values):
            raise SweepError(f"grid axis {name!r} has repeated values: {values!r}")
        out[name] = values
    return out


def _plain(v, what):
    """Normalise a grid value to a JSON-exact Python scalar (int, float, str)."""
    if isinstance(v, (bool, np.bool_)):
        raise SweepError(f"{what}: booleans are not grid values, got {v!r}")
    if isinstance(v, numbers.Integral):
        return int(v)
    if isinstance(v, numbers.Real):
        v = float(v)
        if not math.isfinite(v):
            raise SweepError(f"{what}: values must be finite, got {v!r}")
        return v
    if isinstance(v, str):
        return v
    raise SweepError(f"{what}: values must be numbers or strings, got {type(v).__name__} {v!r}")


def grid_cells(grid: Mapping[str, Sequence]):
    """Iterate ``(flat_index, index_tuple, params_dict)`` over the grid in C order."""
    names = list(grid)
    shape = [len(grid[n]) for n in names]
    for flat, index in enumerate(itertools.product(*[range(s) for s in shape])):
        yield flat, index, {n: grid[n][i] for n, i in zip(names, index)}


def cell_seed(seed: int, index: Sequence[int]) -> np.random.SeedSequence:
    """The SeedSequence of the cell at grid position ``index``: ``SeedSequence(seed, spawn_key=index)``.

    Keyed by position only, so every executor (and every resumed run) hands a cell the same stream.
    """
    return np.random.SeedSequence(int(seed), spawn_key=tuple(int(i) for i in index))


def _grid_items(grid):
    return [[name, list(values)] for name, values in grid.items()]


def _grid_from_meta(meta) -> dict:
    return {name: values for name, values in meta["grid"]}


def _func_name(func) -> str:
    mod = getattr(func, "__module__", None) or type(func).__module__
    qual = getattr(func, "__qualname__", None) or type(func).__qualname__
    return f"{mod}.{qual}"


def fingerprint(func_name: str, grid: Mapping, seed: int, config=None) -> str:
    """SHA-256 of the canonical JSON of everything that determines the data of a sweep."""
    # the grid is an ordered list of (axis, values): axis order is the Dataset's dimension order
    ident = {"format": FORMAT_VERSION, "func": func_name, "grid": _grid_items(grid), "seed": seed,
             "config": config}
    blob = json.dumps(ident, sort_keys=True, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(blob.encode()).hexdigest()


# ---------------------------------------------------------------------- atomic files
def _atomic_write_text(path: Path, text: str, *, fsync=False):
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        if fsync:
            fh.flush()
            os.fsync(fh.fileno())
    os.replace(tmp, path)


def _read_json(path: Path):
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


# ---------------------------------------------------------------------- store state
@dataclass(frozen=True)
class SweepStatus:
    """State of a sweep store: how many of ``total`` cells are finished and whether it is complete."""

    store: Path
    fingerprint: str | None
    total: int
    done: int
    complete: bool

    @property
    def remaining(self) -> int:
        return self.total - self.done


def _cell_path(store: Path, flat: int) -> Path:
    return store / _CELLS / f"{flat}.json"


def _valid_record(rec, flat, params, outputs=None):
    if not isinstance(rec, dict) or rec.get("cell") != flat or rec.get("params") != params:
        return False
    res = rec.get("outputs")
    if not isinstance(res, dict) or not res:
        return False
    return outputs is None or sorted(res) == sorted(outputs)


def _finished_cells(store: Path, grid) -> dict[int, dict]:
    """Valid cell records on disk, keyed by flat index (invalid or partial files are ignored)."""
    cdir = store / _CELLS
    found = {}
    if not cdir.is_dir():
        return found
    names = {p.name for p in cdir.iterdir()}
    for flat, _, params in grid_cells(grid):
        name = f"{flat}.json"
        if name in names:
            rec = _read_json(cdir / name)
            if _valid_record(rec, flat, params):
                found[flat] = rec["outputs"]
    return found


def _prepare_store(store: Path, meta: dict) -> None:
    """Create the store or check that it holds this very sweep; fail fast otherwise."""
    if store.exists() and not store.is_dir():
        raise SweepError(f"output {str(store)!r} exists and is not a directory")
    meta_path = store / _META
    if store.is_dir() and not _is_fresh(store):
        old = _read_json(meta_path)
        if old is None:
            raise SweepMismatchError(
                f"output folder {str(store)!r} is not empty and holds no readable {_META}: "
                "it is not a sweep store (choose another --out or remove the folder)"
            )
        if old.get("fingerprint") != meta["fingerprint"]:
            diffs = [
                k for k in ("func", "grid", "seed", "config") if old.get(k) != meta.get(k)
            ] or ["format"]
            raise SweepMismatchError(
                f"output folder {str(store)!r} holds a different sweep (differs in: "
                f"{', '.join(diffs)}); choose another --out or remove the folder"
            )
        return
    store.mkdir(parents=True, exist_ok=True)
    _atomic_write_text(meta_path, json.dumps(meta, indent=2, sort_keys=True), fsync=True)
    (store / _CELLS).mkdir(exist_ok=True)


def _is_fresh(store: Path) -> bool:
    """True if ``store`` holds nothing but what a run killed before writing sweep.json leaves."""
    if (store / _META).exists():
        return False
    for p in store.iterdir():
        if p.name == _LOCK or (p.name.startswith(".") and p.name.endswith(".tmp")):
            continue
        if p.name == _CELLS and p.is_dir() and not any(p.iterdir()):
            continue
        return False
    return True


@contextlib.contextmanager
def _store_lock(store: Path):
    """Exclusive lock on the store for one run (``filelock``; an OS lock, released if we die).

    ``timeout=0``: a second run on a store in use fails at once with a SweepError instead of
    waiting for the first to finish.
    """
    lock = FileLock(store / _LOCK, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise SweepError(
            f"another process is running a sweep in {str(store)!r}; wait for it or choose another --out"
        ) from None
    try:
        yield
    finally:
        lock.release()


def sweep_status(store) -> SweepStatus:
    """Read the state of a store written by :func:`run_sweep` (no computation)."""
    store = Path(store)
    meta = _read_json(store / _META)
    if meta is None:
        raise SweepError(f"{str(store)!r} is not a sweep store (no readable {_META})")
    grid = _grid_from_meta(meta)
    total = math.prod(len(v) for v in grid.values())
    done = len(_finished_cells(store, grid))
    return SweepStatus(store, meta["fingerprint"], total, done, _is_complete(store, meta))


def _is_complete(store: Path, meta: dict) -> bool:
    mark = _read_json(store / _COMPLETE)
    return (
        isinstance(mark, dict)
        and mark.get("fingerprint") == meta["fingerprint"]
        and (store / _RESULT / "zarr.json").is_file()
    )


def open_sweep(store):
    """Open the assembled Dataset of a finished sweep store (lazily, via ``xarray.open_zarr``)."""
    import xarray as xr

    store = Path(store)
    meta = _read_json(store / _META)
    if meta is None or not _is_complete(store, meta):
        raise SweepError(f"{str(store)!r} does not hold a finished sweep; rerun it to complete")
    ds = xr.open_zarr(store / _RESULT, consolidated=False, chunks=None)
    order = json.loads(ds.attrs.get("sweep_outputs", "[]"))
    if sorted(order) == sorted(ds.data_vars):  # zarr lists arrays alphabetically: restore order
        ds = ds[order]
    return ds


# ---------------------------------------------------------------------- worker side
def _normalise_outputs(out, flat, params):
    if not isinstance(out, Mapping) or not out:
        raise SweepError(
            f"sweep function must return a non-empty mapping name -> scalar, got {type(out).__name__} "
            f"for cell {flat} {params}"
        )
    res = {}
    for k, v in out.items():
        if not isinstance(k, str) or not k.isidentifier():
            raise SweepError(f"output names must be identifiers, got {k!r}")
        if v is None:
            v = math.nan
        if isinstance(v, (bool, np.bool_)):
            v = float(v)
        if isinstance(v, np.ndarray) and v.ndim == 0:
            v = v.item()
        if not isinstance(v, numbers.Real):
            raise SweepError(
                f"output {k!r} of cell {flat} {params} must be a real scalar, got {type(v).__name__}"
            )
        res[k] = float(v)
    return res


def _run_cell(func, flat, index, params, seed):
    """Evaluate one cell (runs on the worker). Returns (flat, outputs, seconds)."""
    t0 = time.perf_counter()
    out = func(dict(params), cell_seed(seed, index))
    return flat, _normalise_outputs(out, flat, params), time.perf_counter() - t0


# ---------------------------------------------------------------------- executors
def _serial(func, todo, seed, **_):
    for flat, index, params in todo:
        yield _run_cell(func, flat, index, params, seed)


def _init_worker(single_thread, coordinator_pid=None):
    """Process-pool worker initializer.

    Ctrl-C is handled by the coordinating process. With several workers the processes are the
    parallelism, so BLAS is limited to one thread per worker: oversubscribing 2 cores with
    workers × BLAS threads made small matrix products up to ~40× slower here. (Results do not
    depend on it: every kernel is thread-count independent.)

    ``coordinator_pid``: the worker exits as soon as that process is gone (see
    :func:`_exit_with`), so a ``kill -9`` of the coordinator leaves no orphaned workers.
    """
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if coordinator_pid is not None:
        _exit_with(coordinator_pid)
    if single_thread:
        # imported here, in the worker: importing the engine loads nothing of rmt
        from rmt.threads import single_blas_thread

        single_blas_thread()  # outside a `with`: the limit holds for the worker's lifetime


def _exit_with(pid: int, poll: float = 0.2) -> None:
    """Terminate this process (``os._exit``) as soon as process ``pid`` has exited.

    Why a watchdog: a forkserver worker's parent is the forkserver, not the coordinator, and it
    holds the write ends of both the forkserver's "alive" pipe and the resource tracker's pipe.
    If the coordinator is SIGKILLed nothing would tell the worker, so the worker — and through
    those pipes the forkserver and the resource tracker — would outlive it. Once the workers are
    gone the forkserver and the resource tracker see EOF on their pipes and exit by themselves.

    On Linux a daemon thread blocks on a pidfd of the coordinator (readable the moment it exits,
    zombie or not); elsewhere it polls every ``poll`` seconds.
    """
    import select
    import threading

    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:  # already gone
        os._exit(1)
    except (AttributeError, OSError):  # no pidfd (not Linux ≥ 5.3): poll
        fd = None

    def watch():
        if fd is not None:
            select.select([fd], [], [])
        else:
            while _pid_alive(pid):
                time.sleep(poll)
        os._exit(1)

    threading.Thread(target=watch, name="rmt-coordinator-watchdog", daemon=True).start()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _processes(func, todo, seed, *, n_workers=None, **_):
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    n = max(1, min(n_workers or os.cpu_count() or 1, len(todo)))
    # forkserver: workers never inherit the parent's threads (tqdm, Dask) or locks.
    ctx = multiprocessing.get_context("forkserver")
    pool = ProcessPoolExecutor(max_workers=n, mp_context=ctx, initializer=_init_worker,
                               initargs=(n > 1, os.getpid()))
    it = iter(todo)
    pending = set()
    finished = False
    try:
        # bounded submission: a few tasks per worker in flight, so a huge grid needs no
        # huge queue and an interrupt loses at most the cells in flight
        for job in itertools.islice(it, 4 * n):
            pending.add(pool.submit(_run_cell, func, *job, seed))
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                yield fut.result()
                nxt = next(it, None)
                if nxt is not None:
                    pending.add(pool.submit(_run_cell, func, *nxt, seed))
        finished = True
    finally:
        for fut in pending:
            fut.cancel()
        if not finished:
            # interrupted or failed: results of running cells would not be recorded anyway, so
            # stop our workers now instead of waiting for them (Python < 3.14 has no public API)
            for proc in list((getattr(pool, "_processes", None) or {}).values()):
                proc.terminate()
        pool.shutdown(wait=True, cancel_futures=True)


def check_scheduler(address: str, timeout: float = 5.0) -> None:
    """Raise :class:`SweepError` unless a Dask scheduler answers at ``address``.

    ``address``: ``tcp://HOST:PORT``, ``tls://HOST:PORT`` or ``HOST:PORT`` (port 8786 when
    omitted); other transports (inproc, ucx) cannot be probed with a socket and are left to Dask.
    A command calls it before it writes anything: Dask itself fails only after its 20 s connect
    timeout, by when the output folder exists.
    """
    addr = address.strip()
    url = urlsplit(addr if "://" in addr else "tcp://" + addr)
    if url.scheme not in ("tcp", "tls"):
        return
    try:
        host, port = url.hostname, url.port or 8786
    except ValueError:  # a port that is not a number in range
        host = None
    if not host or any(c.isspace() for c in host):
        raise SweepError(f"--scheduler must look like tcp://HOST:PORT, got {address!r}")
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        raise SweepError(f"cannot reach the Dask scheduler: --scheduler {address!r} is not "
                         f"reachable ({exc.strerror or exc}); start it or check the address"
                         ) from None


def _dask(func, todo, seed, *, client=None, dask_local=None, scheduler=None, **_):
    from distributed import Client, LocalCluster, as_completed

    cluster = None
    own_client = client is None
    if client is None:
        if scheduler is not None:
            client = Client(scheduler, timeout="20s")
        else:
            cluster = LocalCluster(
                n_workers=int(dask_local or os.cpu_count() or 1),
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
                # our own loopback cluster: a failing cell reaches the user through its future
                # (fut.result() raises); worker logs would only add heartbeat tracebacks when
                # Ctrl-C closes the cluster under running cells
                silence_logs=logging.CRITICAL,
            )
            client = Client(cluster)
    futures = []
    try:
        futures = [
            client.submit(_run_cell, func, *job, seed, pure=False, key=f"rmt-cell-{job[0]}-{uuid.uuid4().hex}")
            for job in todo
        ]
        for fut in as_completed(futures):
            yield fut.result()
    finally:
        if futures:
            client.cancel(futures)
        if own_client:
            client.close()
        if cluster is not None:
            cluster.close()


_EXECUTOR_FUNCS = {"serial": _serial, "processes": _processes, "dask": _dask}


# ---------------------------------------------------------------------- assembly
def _assemble(store: Path, meta: dict, results: dict[int, dict]):
    import xarray as xr

    grid = _grid_from_meta(meta)
    names = list(grid)
    shape = tuple(len(grid[n]) for n in names)
    outputs = list(results[0])  # the first cell's output order
    data = {o: np.full(shape, np.nan) for o in outputs}
    for flat, index, params in grid_cells(grid):
        rec = results[flat]
        if sorted(rec) != sorted(outputs):
            raise SweepError(
                f"cell {flat} {params} returned outputs {sorted(rec)}, other cells {sorted(outputs)}"
            )
        for o in outputs:
            data[o][index] = rec[o]
    coords = {}
    for n in names:
        vals = grid[n]
        # object dtype → zarr v3 variable-length strings (fixed-width UTF-32 has no v3 spec)
        coords[n] = np.array(vals, dtype=object) if isinstance(vals[0], str) else np.asarray(vals)
    ds = xr.Dataset({o: (names, data[o]) for o in outputs}, coords=coords)
    ds.attrs.update(
        sweep_fingerprint=meta["fingerprint"],
        sweep_func=meta["func"],
        sweep_seed=meta["seed"],
        sweep_outputs=json.dumps(outputs),
        sweep_config=json.dumps(meta.get("config"), sort_keys=True),
    )
    # imported here, not at module level: importing the engine must not import rmt
    from rmt.verdict import SIGN_CONVENTION

    ds.attrs["convention"] = SIGN_CONVENTION
    final = store / _RESULT
    tmp = store / f".{_RESULT}.{uuid.uuid4().hex}.tmp"
    ds.to_zarr(tmp, mode="w", zarr_format=3, consolidated=False)
    if final.exists():  # a previous run died between rename and COMPLETE: the data are rebuilt
        shutil.rmtree(final)
    os.replace(tmp, final)
    _atomic_write_text(
        store / _COMPLETE,
        json.dumps({"fingerprint": meta["fingerprint"], "cells": len(results)}),
        fsync=True,
    )
    # leftovers of killed runs: temporary files that never became records
    for stale in store.glob(f".{_RESULT}.*.tmp"):
        shutil.rmtree(stale, ignore_errors=True)
    for stale in (store / _CELLS).glob(".*.tmp"):
        stale.unlink(missing_ok=True)
    return ds


# ---------------------------------------------------------------------- public entry point
def run_sweep(
    func: Callable[[dict, np.random.SeedSequence], Mapping[str, float]],
    grid: Mapping[str, Sequence],
    store,
    *,
    executor: str = "processes",
    seed: int = 0,
    progress: bool = True,
    config=None,
    n_workers: int | None = None,
    dask_local: int | None = None,
    scheduler: str | None = None,
    client=None,
    on_cell_done: Callable[[int, dict], None] | None = None,
):
    """Evaluate ``func`` on every cell of ``grid`` and return the labelled Dataset (resumable).

    Parameters
    ----------
    func : callable ``func(params: dict, seed: SeedSequence) -> {output_name: scalar}``
        Must be picklable (a module-level function or an instance of a module-level class) for
        the ``"processes"`` and ``"dask"`` executors. ``seed`` is
        ``SeedSequence(seed, spawn_key=index)`` for the cell's grid position ``index``; every
        cell must return the same output names. ``None`` outputs are stored as NaN.
    grid : mapping axis name -> list of values (numbers or strings)
        Axes become the Dataset dimensions in this order; coordinates are the values.
    store : path of the sweep directory (created if absent; see the module docstring).
    executor : "serial", "processes" (default; ``n_workers`` processes) or "dask"
        (``client=`` an existing ``distributed.Client``, ``scheduler=`` an address, or
        ``dask_local=N`` to start a loopback ``LocalCluster`` with N single-threaded workers).
    seed : int ≥ 0, the root of every cell's SeedSequence.
    progress : show a tqdm progress bar.
    config : JSON-serialisable description of what ``func`` computes (part of the fingerprint, so
        a store refuses a different config).

    Returns the Dataset (read back from ``STORE/result.zarr``). A rerun of a finished sweep only
    opens the store.
    """
    if executor not in EXECUTORS:
        raise SweepError(f"executor must be one of {list(EXECUTORS)}, got {executor!r}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise SweepError(f"seed must be a non-negative integer, got {seed!r}")
    seed = int(seed)
    if executor == "dask" and sum(x is not None for x in (client, dask_local, scheduler)) != 1:
        raise SweepError("executor='dask' needs exactly one of client=, dask_local=N, scheduler=ADDRESS")
    if dask_local is not None and (isinstance(dask_local, bool) or int(dask_local) < 1):
        raise SweepError(f"dask_local must be a positive number of workers, got {dask_local!r}")
    if n_workers is not None and int(n_workers) < 1:
        raise SweepError(f"n_workers must be >= 1, got {n_workers!r}")
    grid = _check_grid(grid)
    try:
        json.dumps(config, allow_nan=True)
    except TypeError as exc:
        raise SweepError(f"config must be JSON-serialisable: {exc}") from None
    store = Path(store)
    name = _func_name(func)
    meta = {
        "format": FORMAT_VERSION,
        "func": name,
        "grid": _grid_items(grid),
        "seed": seed,
        "config": config,
        "fingerprint": fingerprint(name, grid, seed, config),
    }
    _prepare_store(store, meta)
    with _store_lock(store):  # one run per store at a time
        return _run_locked(func, grid, store, meta, executor, seed, progress, on_cell_done,
                           dict(n_workers=n_workers, dask_local=dask_local,
                                scheduler=scheduler, client=client))


def _run_locked(func, grid, store, meta, executor, seed, progress, on_cell_done, options):
    if _is_complete(store, meta):
        return open_sweep(store)

    total = math.prod(len(v) for v in grid.values())
    results = _finished_cells(store, grid)
    todo = [job for job in grid_cells(grid) if job[0] not in results]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, initial=len(results), desc=f"sweep {store.name}", unit="cell")
    try:
        if todo:
            run = _EXECUTOR_FUNCS[executor](func, todo, seed, **options)
            # closing(): the executor's cleanup runs at once, even if we are interrupted
            # between two cells (not only when the generator is garbage collected)
            with contextlib.closing(run):
                for flat, outputs, _secs in run:
                    params = {n: grid[n][i] for n, i in zip(grid, _unflatten(flat, grid))}
                    rec = {"cell": flat, "params": params, "outputs": outputs}
                    # data first (atomic), so a record on disk is always a finished cell
                    _atomic_write_text(_cell_path(store, flat), json.dumps(rec, allow_nan=True))
                    results[flat] = outputs
                    if on_cell_done is not None:
                        on_cell_done(flat, outputs)
                    if bar is not None:
                        bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    _assemble(store, meta, results)
    return open_sweep(store)


def _unflatten(flat, grid):
    return np.unravel_index(flat, tuple(len(v) for v in grid.values()))
