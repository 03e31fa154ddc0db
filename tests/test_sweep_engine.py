"""Sweep engine: grid layout, seeds, resumability after SIGKILL, executor equality."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from procutil import sigint_not_ignored
from simulations.sweep import (
    SweepError,
    SweepMismatchError,
    cell_seed,
    open_sweep,
    run_config,
    run_sweep,
    sweep_status,
)

TESTS_DIR = Path(__file__).resolve().parent


class Counting:
    """Cell function that leaves one marker file per call (to count recomputations).

    Output: a deterministic function of the parameters plus two draws from the cell's seed.
    ``sleep`` slows each cell down so a sweep can be killed mid-run.
    """

    def __init__(self, markers, tag="run", sleep=0.0):
        self.markers = str(markers)
        self.tag = tag
        self.sleep = sleep

    def __call__(self, params, seed):
        key = "_".join(map(str, seed.spawn_key))
        Path(self.markers, f"{self.tag}-{key}-{uuid.uuid4().hex}").touch()
        if self.sleep:
            time.sleep(self.sleep)
        rng = np.random.default_rng(seed)
        z = rng.standard_normal(2)
        base = params["eta"] * params["batch"] + (params.get("alpha") or 0.0)
        return {"value": base, "noise": float(z[0]), "noise2": float(z[1])}


def markers(directory, tag=None):
    """Grid keys ('i_j_k') of the calls recorded in ``directory`` (optionally of one run tag)."""
    out = []
    for p in Path(directory).iterdir():
        t, key, _ = p.name.split("-")
        if tag is None or t == tag:
            out.append(key)
    return out


GRID = {"eta": [0.1, 0.2, 0.5], "batch": [1, 2], "alpha": [0.0, 0.3]}


def test_grid_shape_coords_and_values(tmp_path):
    mk = tmp_path / "m"
    mk.mkdir()
    grid = {"eta": [0.1, 0.2, 0.5], "batch": [1, 2], "sampling": ["bernoulli", "with_replacement"]}
    ds = run_sweep(Counting(mk), grid, tmp_path / "store", executor="serial", seed=5, progress=False)
    assert tuple(ds.sizes) == ("eta", "batch", "sampling")
    assert dict(ds.sizes) == {"eta": 3, "batch": 2, "sampling": 2}
    assert ds.eta.values.tolist() == [0.1, 0.2, 0.5]
    assert ds.batch.values.tolist() == [1, 2]
    assert [str(s) for s in ds.sampling.values] == ["bernoulli", "with_replacement"]
    assert list(ds.data_vars) == ["value", "noise", "noise2"]
    assert ds.value.dims == ("eta", "batch", "sampling")
    # every cell holds exactly what the function returns for that cell's params and seed
    f = Counting(tmp_path / "m")
    for i, eta in enumerate(grid["eta"]):
        for j, b in enumerate(grid["batch"]):
            for k, s in enumerate(grid["sampling"]):
                want = f({"eta": eta, "batch": b, "sampling": s}, cell_seed(5, (i, j, k)))
                got = ds.isel(eta=i, batch=j, sampling=k)
                assert float(got.value) == want["value"]
                assert float(got.noise) == want["noise"]
    # cells draw distinct streams: no two cells share their noise
    assert np.unique(ds.noise.values).size == ds.noise.size
    status = sweep_status(tmp_path / "store")
    assert (status.total, status.done, status.complete) == (12, 12, True)


def test_seed_changes_data_and_same_seed_reproduces(tmp_path):
    mk = tmp_path / "m"
    mk.mkdir()
    a = run_sweep(Counting(mk), GRID, tmp_path / "a", executor="serial", seed=1, progress=False)
    b = run_sweep(Counting(mk), GRID, tmp_path / "b", executor="serial", seed=1, progress=False)
    c = run_sweep(Counting(mk), GRID, tmp_path / "c", executor="serial", seed=2, progress=False)
    xr.testing.assert_identical(a.load(), b.load())
    assert not np.array_equal(a.noise.values, c.noise.values)
    np.testing.assert_array_equal(a.value.values, c.value.values)


def test_rerun_of_finished_sweep_is_fast_and_recomputes_nothing(tmp_path):
    mk = tmp_path / "m"
    mk.mkdir()
    first = run_sweep(Counting(mk, "one"), GRID, tmp_path / "s", executor="serial", seed=3,
                      progress=False).load()
    assert len(markers(mk, "one")) == 12
    t0 = time.perf_counter()
    again = run_sweep(Counting(mk, "two"), GRID, tmp_path / "s", executor="serial", seed=3,
                      progress=False).load()
    elapsed = time.perf_counter() - t0
    assert markers(mk, "two") == []
    assert elapsed < 1.0, elapsed
    xr.testing.assert_identical(first, again)


def test_partial_store_resumes_without_recomputing(tmp_path):
    """Records of finished cells are reused; corrupt records and a missing COMPLETE are repaired."""
    mk = tmp_path / "m"
    mk.mkdir()
    ref = run_sweep(Counting(mk, "ref"), GRID, tmp_path / "ref", executor="serial", seed=9,
                    progress=False).load()
    store = tmp_path / "s"
    run_sweep(Counting(mk, "a"), GRID, store, executor="serial", seed=9, progress=False)
    # simulate kills at different moments: a truncated record (killed while writing, without
    # the atomic rename), a stray temporary file, removed records, and no COMPLETE marker
    (store / "COMPLETE").unlink()
    (store / "cells" / "3.json").write_text('{"cell": 3, "params": {"eta"')
    (store / "cells" / "7.json").unlink()
    (store / "cells" / "11.json").unlink()
    (store / "cells" / ".5.json.deadbeef.tmp").write_text("{")
    status = sweep_status(store)
    assert (status.done, status.complete) == (9, False)
    ds = run_sweep(Counting(mk, "b"), GRID, store, executor="serial", seed=9, progress=False).load()
    # cell flat indices 3, 7, 11 ↔ grid positions in C order over shape (3, 2, 2)
    assert sorted(markers(mk, "b")) == sorted(["0_1_1", "1_1_1", "2_1_1"])
    xr.testing.assert_identical(ref, ds)
    assert not list((store / "cells").glob(".*.tmp"))
    # the result was rebuilt although only COMPLETE was missing: nothing recomputed
    (store / "COMPLETE").unlink()
    ds2 = run_sweep(Counting(mk, "c"), GRID, store, executor="serial", seed=9, progress=False).load()
    assert markers(mk, "c") == []
    xr.testing.assert_identical(ref, ds2)


def test_store_holding_another_sweep_fails_fast(tmp_path):
    mk = tmp_path / "m"
    mk.mkdir()
    store = tmp_path / "s"
    run_sweep(Counting(mk, "a"), GRID, store, executor="serial", seed=0, progress=False)
    for kwargs in (
        {"grid": {**GRID, "eta": [0.1, 0.2]}, "seed": 0},
        {"grid": GRID, "seed": 1},
        {"grid": {"batch": GRID["batch"], "eta": GRID["eta"], "alpha": GRID["alpha"]}, "seed": 0},
    ):
        with pytest.raises(SweepMismatchError, match="holds a different sweep"):
            run_sweep(Counting(mk, "x"), kwargs["grid"], store, executor="serial",
                      seed=kwargs["seed"], progress=False)
    with pytest.raises(SweepMismatchError, match="differs in: config"):
        run_sweep(Counting(mk, "x"), GRID, store, executor="serial", seed=0, progress=False,
                  config={"other": 1})
    assert markers(mk, "x") == []
    other = tmp_path / "not_a_store"
    other.mkdir()
    (other / "notes.txt").write_text("hello")
    with pytest.raises(SweepMismatchError, match="not a sweep store"):
        run_sweep(Counting(mk, "x"), GRID, other, executor="serial", progress=False)
    assert markers(mk, "x") == []


@pytest.mark.parametrize(
    "grid, match",
    [
        ({}, "grid is empty"),
        ({"eta": []}, "'eta' is empty"),
        ({"eta": [0.1, 0.1]}, "repeated"),
        ({"eta": 0.1}, "must be a list"),
        ({"eta": [float("nan")]}, "finite"),
        ({"eta": [0.1, "a"]}, "mixes strings and numbers"),
    ],
)
def test_bad_grids_are_rejected(tmp_path, grid, match):
    with pytest.raises(SweepError, match=match):
        run_sweep(Counting(tmp_path), grid, tmp_path / "s", executor="serial", progress=False)
    assert not (tmp_path / "s").exists()


def test_bad_executor_options(tmp_path):
    with pytest.raises(SweepError, match="executor must be one of"):
        run_sweep(Counting(tmp_path), GRID, tmp_path / "s", executor="threads")
    with pytest.raises(SweepError, match="exactly one of"):
        run_sweep(Counting(tmp_path), GRID, tmp_path / "s", executor="dask")
    with pytest.raises(SweepError, match="seed must be a non-negative integer"):
        run_sweep(Counting(tmp_path), GRID, tmp_path / "s", executor="serial", seed=-1)
    assert not (tmp_path / "s").exists()


_KILL_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from test_sweep_engine import Counting, GRID_KILL
    from simulations.sweep import run_sweep
    run_sweep(Counting({markers!r}, {tag!r}, sleep={sleep}), GRID_KILL, {store!r},
              executor={executor!r}, seed=11, progress=False, n_workers=2)
    print("DONE")
    """
)

GRID_KILL = {"eta": [0.1, 0.2, 0.3, 0.4, 0.5], "batch": [1, 2, 3, 4], "alpha": [0.0, 0.5]}


def _launch(store, mk, tag, sleep, executor="processes"):
    code = _KILL_SCRIPT.format(tests=str(TESTS_DIR), markers=str(mk), tag=tag, sleep=sleep,
                               store=str(store), executor=executor)
    # own session: SIGKILL reaches the sweep and its worker processes (its process group)
    with sigint_not_ignored():
        return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True, text=True)


def _records(store):
    d = Path(store) / "cells"
    return {int(p.stem) for p in d.glob("*.json")} if d.is_dir() else set()


def test_sigkill_mid_run_then_rerun_matches_uninterrupted(tmp_path):
    mk = tmp_path / "m"
    mk.mkdir()
    store = tmp_path / "s"
    total = 40
    proc = _launch(store, mk, "one", sleep=0.15)
    try:
        deadline = time.monotonic() + 60
        while len(_records(store)) < 10:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "sweep made no progress"
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.communicate()
    finished = _records(store)
    assert 10 <= len(finished) < total
    assert not (store / "COMPLETE").exists()
    status = sweep_status(store)
    assert status.done == len(finished) and not status.complete

    proc2 = _launch(store, mk, "two", sleep=0.0)
    out, err = proc2.communicate(timeout=120)
    assert proc2.returncode == 0, err
    assert "DONE" in out

    # the rerun computed exactly the cells without a record, each once
    shape = tuple(len(v) for v in GRID_KILL.values())
    flat_of = {"_".join(map(str, np.unravel_index(i, shape))): i for i in range(total)}
    rerun = [flat_of[k] for k in markers(mk, "two")]
    assert sorted(rerun) == sorted(set(range(total)) - finished)

    ref = run_sweep(Counting(tmp_path / "m", "ref"), GRID_KILL, tmp_path / "ref",
                    executor="serial", seed=11, progress=False).load()
    xr.testing.assert_identical(open_sweep(store).load(), ref)


@pytest.mark.slow
def test_repeated_random_kills_converge_to_uninterrupted_data(tmp_path):
    """Kill at random moments (startup, mid-cell, assembly) until the sweep finishes."""
    mk = tmp_path / "m"
    mk.mkdir()
    store = tmp_path / "s"
    rng = np.random.default_rng(0)
    kills = 0
    for attempt in range(15):
        proc = _launch(store, mk, f"r{attempt}", sleep=0.1)
        # up to ten kills at random moments (a whole run needs > 2 s of cell work plus the
        # start-up), then let it finish
        timeout = float(rng.uniform(0.3, 3.0)) if attempt < 10 else 300.0
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            kills += 1
            continue
        assert proc.returncode == 0 and "DONE" in out, err
        break
    else:
        pytest.fail("sweep did not finish")
    assert kills >= 1
    calls = markers(mk)
    (tmp_path / "m_ref").mkdir()
    ref = run_sweep(Counting(tmp_path / "m_ref"), GRID_KILL, tmp_path / "ref", executor="serial",
                    seed=11, progress=False).load()
    xr.testing.assert_identical(open_sweep(store).load(), ref)
    # a kill loses at most the cells running at that moment (2 workers): finished cells are
    # never computed again, so the total number of calls is bounded
    runs = attempt + 1
    assert len(set(calls)) == 40
    assert len(calls) <= 40 + 2 * runs, (len(calls), runs)


# ---------------------------------------------------------------------- executor equality
def _config(tmp_path):
    return {
        "seed": 4,
        "quantities": ["rate", "coherence"],
        "ensemble": {"name": "wishart", "n_retain": 6, "n_forget": 3, "d": 5, "k": 2},
        "schedule": {"sampling": "without_replacement"},
        "grid": {"eta": [0.2, 0.6], "batch": [1, 3], "alpha": [0.0, 0.2], "shared": [0.0, 0.5],
                 "seed": [0, 1]},
    }


def test_executors_give_identical_data(tmp_path):
    from distributed import Client, LocalCluster

    cfg = _config(tmp_path)
    serial = run_config(cfg, tmp_path / "serial", executor="serial", progress=False).load()
    procs = run_config(cfg, tmp_path / "procs", executor="processes", n_workers=2,
                       progress=False).load()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        assert len(client.scheduler_info()["workers"]) == 2
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        dask = run_config(cfg, tmp_path / "dask", executor="dask",
                          scheduler=cluster.scheduler_address, progress=False).load()
        dask2 = run_config(cfg, tmp_path / "dask2", executor="dask", client=client,
                           progress=False).load()
        assert client.status == "running"  # a client we passed in is not closed for us
    xr.testing.assert_identical(serial, procs)
    xr.testing.assert_identical(serial, dask)
    xr.testing.assert_identical(serial, dask2)
    assert dict(serial.sizes) == {"eta": 2, "batch": 2, "alpha": 2, "shared": 2, "seed": 2}
    # the random ensemble really depends on the seed axis (the equality above is not vacuous)
    assert not np.allclose(serial.rate.isel(seed=0), serial.rate.isel(seed=1))
    # ...and the ensemble is shared along the schedule axes: coherence ignores eta/batch/alpha
    coh = serial.coherence
    assert float(abs(coh - coh.isel(eta=0, batch=0, alpha=0)).max()) == 0.0


def test_dask_local_option_starts_and_closes_a_cluster(tmp_path):
    mk = tmp_path / "m"
    mk.mkdir()
    grid = {"eta": [0.1, 0.2], "batch": [1, 2]}
    ref = run_sweep(Counting(mk, "s"), grid, tmp_path / "a", executor="serial", seed=2,
                    progress=False).load()
    got = run_sweep(Counting(mk, "d"), grid, tmp_path / "b", executor="dask", dask_local=1,
                    seed=2, progress=False).load()
    xr.testing.assert_identical(ref, got)
    assert len(markers(mk, "d")) == 4


def test_worker_error_names_the_cell_and_keeps_finished_cells(tmp_path):
    store = tmp_path / "s"
    with pytest.raises(SweepError, match="must be a real scalar"):
        run_sweep(_bad_cell, {"x": [1, 2, 3]}, store, executor="serial", progress=False)
    assert _records(store) == {0}
    assert json.loads((store / "cells" / "0.json").read_text())["outputs"] == {"y": 1.0}


def _bad_cell(params, seed):
    return {"y": 1.0 if params["x"] == 1 else "oops"}


def test_store_lock_and_leftovers_of_a_run_killed_at_startup(tmp_path):
    from simulations.sweep_engine import _store_lock

    mk = tmp_path / "m"
    mk.mkdir()
    # killed before sweep.json existed: only an empty cells/ and a temporary file remain
    store = tmp_path / "s"
    (store / "cells").mkdir(parents=True)
    (store / ".sweep.json.0123.tmp").write_text('{"fing')
    ds = run_sweep(Counting(mk, "a"), GRID, store, executor="serial", seed=0, progress=False)
    assert ds.sizes["eta"] == 3
    # a second run on a store that is in use fails fast instead of racing
    with _store_lock(store):
        with pytest.raises(SweepError, match="another process is running a sweep"):
            run_sweep(Counting(mk, "b"), GRID, store, executor="serial", seed=0, progress=False)
    assert markers(mk, "b") == []


def _ctrl_c_when_busy(proc, mk, *, start_within, exit_within):
    """Wait until both workers are inside a cell (two markers), send SIGINT to the process group
    (Ctrl-C) and return (stdout, stderr, seconds until the sweep exited)."""
    try:
        deadline = time.monotonic() + start_within
        while len(markers(mk)) < 2:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.02)
        t0 = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=exit_within)
        return out, err, time.monotonic() - t0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_ctrl_c_stops_workers_promptly(tmp_path):
    """SIGINT to the process group (Ctrl-C) stops the sweep without waiting for running cells."""
    mk = tmp_path / "m"
    mk.mkdir()
    proc = _launch(tmp_path / "s", mk, "one", sleep=6.0)
    out, err, elapsed = _ctrl_c_when_busy(proc, mk, start_within=60, exit_within=30)
    assert "KeyboardInterrupt" in err and "DONE" not in out
    assert elapsed < 3.0, elapsed
    assert len(markers(mk)) == 2  # no further cell was started after the interrupt
    assert _records(tmp_path / "s") == set()


def test_ctrl_c_stops_a_dask_local_sweep_promptly_and_quietly(tmp_path):
    """Ctrl-C under ``dask_local``: the loopback cluster is closed under running cells within
    seconds (a finding of an earlier session said it was not prompt). The workers' heartbeat
    tracebacks that `rmt reproduce --dask-local` printed at such a close are silenced
    (silence_logs); they appear only with some timings, so their absence here is a check, not a
    reproduction."""
    mk = tmp_path / "m"
    mk.mkdir()
    code = _KILL_SCRIPT.format(tests=str(TESTS_DIR), markers=str(mk), tag="dk", sleep=60.0,
                               store=str(tmp_path / "s"), executor="dask").replace(
        "n_workers=2", "dask_local=2")
    with sigint_not_ignored():
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True, text=True)
    out, err, elapsed = _ctrl_c_when_busy(proc, mk, start_within=90, exit_within=45)
    assert "KeyboardInterrupt" in err and "DONE" not in out
    assert elapsed < 20.0, elapsed  # the nanny kills a busy worker after ~4 s; cells run 60 s
    assert "CommClosedError" not in err and "heartbeat" not in err, err[-2000:]
    assert _records(tmp_path / "s") == set()


def test_engine_is_generic_and_sweep_reexports_it():
    """The engine imports nothing of rmt; simulations.sweep re-exports its public names."""
    import simulations.sweep as sweep
    import simulations.sweep_engine as engine

    code = ("import sys, simulations.sweep_engine; "
            "print([m for m in sys.modules if m == 'rmt' or m.startswith('rmt.')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=TESTS_DIR.parent)
    assert out.stdout.strip() == "[]"
    for name in engine.__all__:
        assert getattr(sweep, name) is getattr(engine, name)


def test_second_process_on_a_store_in_use_fails_fast(tmp_path):
    """The filelock store lock is an OS lock: another process gets a clear error at once."""
    from simulations.sweep_engine import _store_lock

    store = tmp_path / "s"
    store.mkdir()
    code = textwrap.dedent(f"""
        import sys
        from simulations.sweep_engine import SweepError, _store_lock
        try:
            with _store_lock(__import__("pathlib").Path({str(store)!r})):
                print("ACQUIRED")
        except SweepError as exc:
            print("REFUSED", exc)
    """)
    with _store_lock(store):
        t0 = time.monotonic()
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             cwd=TESTS_DIR.parent, timeout=60)
        assert time.monotonic() - t0 < 30
    assert out.stdout.startswith("REFUSED") and "another process is running a sweep" in out.stdout
    # released when the holder is done
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=TESTS_DIR.parent, timeout=60)
    assert out.stdout.strip() == "ACQUIRED", out.stderr
