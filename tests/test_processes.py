"""Process hygiene and the CLI core (issue 12).

* ``kill -9`` of ``rmt sweep`` leaves no orphaned worker, forkserver or resource tracker;
* Ctrl-C (SIGINT to the process group, as a terminal sends it) exits with status 130 and one
  line naming the store and how to resume, keeps finished cells and leaves no process behind;
* :func:`simulations.cli.main` turns ValueError/TypeError/OSError into one line with status 2
  (traceback with ``RMT_DEBUG=1``) and prints ``--version``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from procutil import sigint_not_ignored

from simulations.cli import main as rmt_main
from simulations.provenance import version_string
from simulations.sweep import sweep_status

ROOT = Path(__file__).resolve().parents[1]

# many cheap cells (exact rho(T) of a 12-sample ensemble): the run lasts far longer than the
# tests wait, and cells finish from the first seconds on
CONFIG = """
quantities = ["rate"]
[ensemble]
name = "hessian_test"
n = 12
lam = 2.0
forget = 3
[grid]
eta = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
batch = [1, 2, 3, 4, 5, 6, 7, 8]
sigma = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
seed = [0, 1, 2]
"""
TOTAL = 10 * 8 * 10 * 3


def _start_sweep(tmp_path):
    cfg = tmp_path / "sweep.toml"
    cfg.write_text(CONFIG)
    store = tmp_path / "store"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("RMT_DEBUG", None)
    # own session: the SIGINT of the Ctrl-C test reaches the whole group, as from a terminal
    with sigint_not_ignored():
        proc = subprocess.Popen(
            [sys.executable, "-m", "simulations.cli", "sweep", str(cfg), "--out", str(store),
             "--workers", "2", "--no-progress"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            start_new_session=True,
        )
    return proc, store


def _records(store):
    d = Path(store) / "cells"
    return len(list(d.glob("*.json"))) if d.is_dir() else 0


def _wait_for_workers(proc, store, min_records, timeout=90):
    """Descendants of ``proc`` once two pool workers exist and ``min_records`` cells are done."""
    parent = psutil.Process(proc.pid)
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the sweep started no workers / finished no cell"
        try:
            desc = parent.children(recursive=True)
        except psutil.NoSuchProcess:
            desc = []
        # the forkserver's children are the pool workers
        workers = [p for p in desc if _ppid(p) not in (None, proc.pid)]
        if len(workers) >= 2 and _records(store) >= min_records:
            return desc
        time.sleep(0.05)


def _ppid(p: psutil.Process):
    try:
        return p.ppid()
    except psutil.Error:
        return None


def _alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _survivors(procs, within):
    """The processes among ``procs`` still alive after ``within`` seconds."""
    deadline = time.monotonic() + within
    alive = [p for p in procs if _alive(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [p for p in alive if _alive(p)]
    return alive


def _describe(procs):
    out = []
    for p in procs:
        try:
            out.append(f"{p.pid} {' '.join(p.cmdline())[:120]}")
        except psutil.Error:
            out.append(str(p.pid))
    return out


def _kill_all(procs):
    for p in procs:
        try:
            p.kill()
        except psutil.Error:
            pass


def test_sigkill_of_rmt_sweep_leaves_no_process_behind(tmp_path):
    proc, store = _start_sweep(tmp_path)
    desc = []
    try:
        desc = _wait_for_workers(proc, store, min_records=1)
        # main + forkserver + resource tracker + 2 workers (each ~100-300 MB)
        assert len(desc) >= 4, _describe(desc)
        os.kill(proc.pid, signal.SIGKILL)  # the coordinator only, as `kill -9 PID` does
        proc.wait(timeout=10)
        left = _survivors(desc, within=5.0)
        assert not left, f"survived kill -9 of the coordinator: {_describe(left)}"
    finally:
        if proc.poll() is None:
            proc.kill()
        _kill_all(desc)  # first: survivors would hold the output pipes open
        proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert 1 <= _records(store) < TOTAL


def test_ctrl_c_of_rmt_sweep_exits_130_with_one_line_and_keeps_cells(tmp_path):
    proc, store = _start_sweep(tmp_path)
    desc = []
    try:
        desc = _wait_for_workers(proc, store, min_records=3)
        before = _records(store)
        t0 = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        elapsed = time.monotonic() - t0
        left = _survivors(desc, within=5.0)
    finally:
        _kill_all(desc)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert not left, f"survived Ctrl-C: {_describe(left)}"
    assert elapsed < 10.0, elapsed
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("rmt sweep: interrupted; finished cells are")
    assert str(store) in lines[0] and "rerun the same command to resume" in lines[0]
    assert "Traceback" not in err and out == ""
    status = sweep_status(store)
    assert before <= status.done < TOTAL and not status.complete


# ---------------------------------------------------------------------- CLI core (in process)
def test_version_prints_version_string(capsys):
    with pytest.raises(SystemExit) as exc:
        rmt_main(["--version"])
    assert exc.value.code == 0
    out = capsys.readouterr().out.strip()
    assert out == version_string() and out.startswith("rmt ")


def test_usage_error_is_one_line_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        rmt_main(["sweep", "--workers", "x"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("rmt sweep: error: ")


def test_value_error_of_a_subcommand_is_one_line_exit_2(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("RMT_DEBUG", raising=False)
    rc = rmt_main(["reproduce", "--only", "no_such_experiment", "--out", str(tmp_path / "o"),
                   "--no-progress"])
    assert rc == 2
    cap = capsys.readouterr()
    assert cap.out == ""
    assert cap.err.count("\n") == 1
    assert cap.err.startswith("rmt reproduce: error: unknown experiment")
    assert "no_such_experiment" in cap.err


def _raiser(exc):
    def func(args):
        raise exc
    return func


@pytest.mark.parametrize("exc", [ValueError("bad\nvalue"), TypeError("bad type"),
                                 FileNotFoundError(2, "No such file or directory", "x.npz")])
def test_validation_errors_become_one_line_and_rmt_debug_shows_traceback(exc, capsys, monkeypatch):
    import simulations.reproduce as reproduce

    monkeypatch.setattr(reproduce, "_main", _raiser(exc))
    monkeypatch.delenv("RMT_DEBUG", raising=False)
    assert rmt_main(["reproduce"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("rmt reproduce: error: ")
    assert "bad value" in err or "bad type" in err or "x.npz" in err
    monkeypatch.setenv("RMT_DEBUG", "1")
    with pytest.raises(type(exc)):
        rmt_main(["reproduce"])


def test_genuine_bugs_keep_their_traceback(monkeypatch):
    import simulations.reproduce as reproduce

    monkeypatch.setattr(reproduce, "_main", _raiser(ZeroDivisionError("bug")))
    with pytest.raises(ZeroDivisionError):
        rmt_main(["reproduce"])


def test_system_exit_message_becomes_one_line_exit_2(capsys, monkeypatch):
    import simulations.reproduce as reproduce

    monkeypatch.setattr(reproduce, "_main",
                        _raiser(SystemExit("rmt reproduce: --dask-local must be >= 1")))
    assert rmt_main(["reproduce"]) == 2
    assert capsys.readouterr().err == "rmt reproduce: error: --dask-local must be >= 1\n"


def test_keyboard_interrupt_in_process(tmp_path, capsys, monkeypatch):
    import simulations.cnn.cli as cnn_cli
    import simulations.reproduce as reproduce

    monkeypatch.setattr(reproduce, "_main", _raiser(KeyboardInterrupt()))
    assert rmt_main(["reproduce", "--out", str(tmp_path)]) == 130
    assert capsys.readouterr().err == (
        f"rmt reproduce: interrupted; finished cells are kept in {tmp_path} — rerun the same "
        "command to resume\n")
    # a command without a resumable store says only that it was interrupted
    monkeypatch.setattr(cnn_cli, "_coherence", _raiser(KeyboardInterrupt()))
    assert rmt_main(["cnn", "coherence", "--n", "4", "--d", "4", "--snr", "1"]) == 130
    assert capsys.readouterr().err == "rmt cnn coherence: interrupted\n"


# ---------------------------------------------------------------------- numba compilation cache
_CACHE_SCRIPT = """
import numpy as np
from rmt.montecarlo import _kernels
state = np.zeros(1, dtype=np.uint64)
print(_kernels._CACHE, _kernels._uniform(state))
"""


def test_numba_cache_is_on_by_default_and_keyed_on_the_shared_helpers(tmp_path):
    from rmt.montecarlo import _kernels

    assert _kernels.cache_setting({}) == "auto"
    assert _kernels.cache_setting({"RMT_NUMBA_CACHE": "1"}) is True
    for off in ("0", "false", "no", "off", " OFF "):
        assert _kernels.cache_setting({"RMT_NUMBA_CACHE": off}) is False
    # a fresh process with the default environment writes the on-disk cache
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    env.pop("RMT_NUMBA_CACHE", None)
    out = subprocess.run([sys.executable, "-c", _CACHE_SCRIPT], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[0] == "auto"
    assert any(p.suffix == ".nbi" for p in tmp_path.rglob("*")), "default run wrote no cache"
    # a kernel's cache key includes the digest of _kernels.py (helpers called across files)
    _kernels._uniform(np.zeros(1, dtype=np.uint64))
    sig = _kernels._uniform.signatures[0]
    key = _kernels._uniform._cache._index_key(sig, _kernels._uniform.targetctx.codegen())
    assert key[-1] == _kernels._HELPERS_DIGEST and len(key[-1]) == 64


def test_numba_cache_default_falls_back_silently_on_a_read_only_install():
    import warnings

    from rmt.montecarlo import _kernels

    calls = []

    def read_only_njit(cache=False, **kw):
        calls.append(cache)
        if cache:
            raise RuntimeError("cannot cache function 'f': no locator available for file")
        return lambda f: f

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the default ("auto") must not warn
        f = _kernels.make_jit("auto", njit=read_only_njit)(lambda x: x + 1)
    assert f(1) == 2 and calls == [True, False]
    with pytest.warns(RuntimeWarning, match="compiling in memory"):  # explicitly requested
        _kernels.make_jit(True, njit=read_only_njit)(lambda x: x)
