"""``rmt sweep`` (configs, fail-fast validation, resume) and ``rmt analyze``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

from rmt import Schedule, ensembles, mean_square_rate
from simulations.cli import main
from simulations.sweep import open_sweep, sweep_status

TOML = """
description = "Hessian test with a forget set"
seed = 3
quantities = ["rate", "critical_eta", "coherence"]

[ensemble]
name = "hessian_test"
n = 12
lam = 2.0
forget = 3

[schedule]
sampling = "without_replacement"
alpha = 0.1

[grid]
eta = [0.5, 0.8]
batch = [1, 3]
sigma = [1, 2, 4]
"""

YAML = """
description: same sweep, other format
seed: 3
quantities: [rate, critical_eta, coherence]
ensemble: {name: hessian_test, n: 12, lam: 2.0, forget: 3}
schedule: {sampling: without_replacement, alpha: 0.1}
grid:
  eta: [0.5, 0.8]
  batch: [1, 3]
  sigma: [1, 2, 4]
"""


def _write(tmp_path, text, name="sweep.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_sweep_cli_end_to_end_matches_direct_computation(tmp_path, capsys):
    cfg = _write(tmp_path, TOML)
    store = tmp_path / "out"
    assert main(["sweep", str(cfg), "--out", str(store), "--serial", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "12 cells (12 computed now, 0 reused)" in out
    ds = open_sweep(store).load()
    assert dict(ds.sizes) == {"eta": 2, "batch": 2, "sigma": 3}
    assert list(ds.data_vars) == [
        "rate", "diverges", "critical_eta",
        "coherence", "coherence_retain", "coherence_forget", "coherence_cross",
    ]
    # hessian_test has coherence exactly sigma
    np.testing.assert_allclose(ds.coherence.isel(eta=0, batch=0).values, [1, 2, 4], rtol=1e-12)
    # one cell recomputed by hand with the same ensemble stream
    from simulations.sweep import ConfigCell, cell_seed, load_config, validate_config

    conf = validate_config(load_config(cfg))
    ens_ss = np.random.SeedSequence(3, spawn_key=(1, 2))  # position of sigma=4 (ensemble axis)
    hs = ensembles.hessian_test(12, 4, lam=2.0, forget=3, seed=ens_ss)
    sch = Schedule(eta=0.8, batch=3, alpha=0.1, sampling="without_replacement")
    assert float(ds.rate.sel(eta=0.8, batch=3, sigma=4)) == pytest.approx(
        mean_square_rate(hs, sch), rel=1e-12)
    assert float(ds.diverges.sel(eta=0.8, batch=3, sigma=4)) == float(mean_square_rate(hs, sch) > 1)
    direct = ConfigCell(conf)({"eta": 0.8, "batch": 3, "sigma": 4}, cell_seed(3, (1, 1, 2)))
    assert direct["critical_eta"] == float(ds.critical_eta.sel(eta=0.8, batch=3, sigma=4))

    # rerun: nothing recomputed; the YAML spelling of the same sweep is the same sweep
    assert main(["sweep", str(cfg), "--out", str(store), "--serial", "--no-progress"]) == 0
    assert "(0 computed now, 12 reused)" in capsys.readouterr().out
    ycfg = _write(tmp_path, YAML, "sweep.yaml")
    assert main(["sweep", str(ycfg), "--out", str(store), "--no-progress"]) == 0
    assert "(0 computed now, 12 reused)" in capsys.readouterr().out
    xr.testing.assert_identical(open_sweep(store).load(), ds)


def test_sweep_cli_processes_executor_matches_serial(tmp_path, capsys):
    cfg = _write(tmp_path, TOML)
    assert main(["sweep", str(cfg), "--out", str(tmp_path / "a"), "--serial", "--no-progress"]) == 0
    assert main(["sweep", str(cfg), "--out", str(tmp_path / "b"), "--workers", "2",
                 "--no-progress"]) == 0
    a, b = open_sweep(tmp_path / "a").load(), open_sweep(tmp_path / "b").load()
    # bit for bit, ρ(T) included: spans r ≤ PERRON_DENSE_MAX_SPAN use LAPACK, not ARPACK (whose
    # work arrays, reallocated per call, changed the last digits across processes)
    xr.testing.assert_identical(a, b)


BAD = [
    ("unknown top-level key", "foo = 1\n" + TOML, "unknown key(s) ['foo']"),
    ("unknown ensemble", TOML.replace('"hessian_test"', '"gaussian_blob"'), "unknown ensemble 'gaussian_blob'"),
    ("unknown ensemble key", TOML.replace("lam = 2.0", "lamda = 2.0"), "unknown key(s) ['lamda']"),
    ("unknown schedule key", TOML.replace('alpha = 0.1', 'alpha = 0.1\nmomentum = 0.9'), "['momentum']"),
    ("unknown quantity", TOML.replace('"coherence"]', '"entropy"]'), "unknown quantity 'entropy'"),
    ("empty axis", TOML.replace("sigma = [1, 2, 4]", "sigma = []"), "grid axis 'sigma' is empty"),
    ("empty grid", TOML[: TOML.index("[grid]")] + "[grid]\n", "grid is empty"),
    ("negative eta", TOML.replace("eta = [0.5, 0.8]", "eta = [-0.5, 0.8]"),
     "config [grid] axis 'eta': eta must be > 0, got -0.5"),
    ("zero eta", TOML.replace("eta = [0.5, 0.8]", "eta = [0.0, 0.8]"), "eta must be > 0"),
    ("alpha > 1", TOML.replace("alpha = 0.1", "alpha = 1.5"), "alpha must lie in [0, 1]"),
    ("batch too large", TOML.replace("batch = [1, 3]", "batch = [1, 30]"), "batch must be <= the retain set size"),
    ("sigma > n", TOML.replace("sigma = [1, 2, 4]", "sigma = [1, 20]"), "sigma must lie in [1, 12], got 20"),
    ("unknown axis", TOML.replace("sigma = [1, 2, 4]", "snr = [1.0]"), "unknown axis 'snr'"),
    ("duplicate param", TOML.replace("sigma = [1, 2, 4]", "n = [10, 12]"), "'n' is given both"),
    ("missing eta", TOML.replace("eta = [0.5, 0.8]\n", ""), "'eta' is needed by ['rate']"),
    ("bad sampling", TOML.replace('"without_replacement"', '"stratified"'), "sampling must be one of"),
    ("seed", TOML.replace("seed = 3", "seed = -3"), "seed must be a non-negative integer"),
    ("lyapunov table", TOML + "\n[lyapunov]\nsteps = 10\n", "'lyapunov' is not among the quantities"),
    ("bad toml", "quantities = [", "could not be parsed"),
]


@pytest.mark.parametrize("label, text, message", BAD, ids=[b[0] for b in BAD])
def test_bad_configs_fail_fast_naming_the_problem(tmp_path, capsys, label, text, message):
    cfg = _write(tmp_path, text)
    store = tmp_path / "out"
    assert main(["sweep", str(cfg), "--out", str(store), "--serial", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "rmt sweep: error:" in err
    assert message in err, err
    assert not store.exists()  # nothing written, nothing computed


def test_bad_config_file_names(tmp_path, capsys):
    assert main(["sweep", str(tmp_path / "missing.toml"), "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err
    cfg = _write(tmp_path, TOML, "sweep.json")
    assert main(["sweep", str(cfg), "--out", str(tmp_path / "o")]) == 2
    assert "use a .toml, .yaml or .yml file" in capsys.readouterr().err


def test_output_folder_holding_a_different_sweep_fails_fast(tmp_path, capsys):
    cfg = _write(tmp_path, TOML)
    store = tmp_path / "out"
    assert main(["sweep", str(cfg), "--out", str(store), "--serial", "--no-progress"]) == 0
    capsys.readouterr()
    before = sorted(p.name for p in (store / "cells").iterdir())
    other = _write(tmp_path, TOML.replace("batch = [1, 3]", "batch = [1, 2]"), "other.toml")
    assert main(["sweep", str(other), "--out", str(store), "--serial", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "holds a different sweep" in err and "grid" in err
    quant = _write(tmp_path, TOML.replace('"critical_eta", ', ""), "q.toml")
    assert main(["sweep", str(quant), "--out", str(store), "--serial", "--no-progress"]) == 2
    assert "differs in: config" in capsys.readouterr().err
    assert sorted(p.name for p in (store / "cells").iterdir()) == before
    assert sweep_status(store).complete


# ---------------------------------------------------------------------- errors before the store
def test_missing_estimator_fails_the_sweep_before_the_store(tmp_path, capsys, monkeypatch):
    import simulations.sweep as sweep_mod

    def broken():
        raise ImportError("simulated: lyapunov not built")

    monkeypatch.setattr(sweep_mod, "resolve_lyapunov", broken)
    cfg = _write(tmp_path, TOML.replace('"coherence"]', '"lyapunov"]'))
    assert main(["sweep", str(cfg), "--out", str(tmp_path / "o"), "--serial"]) == 2
    assert "quantity 'lyapunov' is unavailable" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def _exit_code(argv):
    """main()'s status, also for argparse usage errors (which exit through SystemExit)."""
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


def _one_line_error(capsys):
    cap = capsys.readouterr()
    lines = cap.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rmt sweep: error:"), cap.err
    assert "Traceback" not in cap.err and cap.out == ""
    return lines[0]


def test_sweep_cli_errors_are_one_line_before_any_folder(tmp_path, capsys):
    cfg = _write(tmp_path, TOML)
    store = tmp_path / "out"
    # --out is an existing file
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert main(["sweep", str(cfg), "--out", str(afile), "--serial"]) == 2
    assert "is not a directory" in _one_line_error(capsys)
    # --out below a file
    assert main(["sweep", str(cfg), "--out", str(afile / "sub"), "--serial"]) == 2
    assert "is not a directory" in _one_line_error(capsys)
    assert not (afile / "sub").exists()
    # the config is a directory / unreadable bytes
    assert main(["sweep", str(tmp_path), "--out", str(store), "--serial"]) == 2
    assert "is a directory" in _one_line_error(capsys)
    bad = tmp_path / "bin.toml"
    bad.write_bytes(b"\xff\xfe\x00 not toml")
    assert main(["sweep", str(bad), "--out", str(store), "--serial"]) == 2
    assert "could not be parsed" in _one_line_error(capsys)
    # bad values and combinations
    for argv, msg in (
        (["--workers", "0"], "--workers must be >= 1, got 0"),
        (["--dask-local", "0"], "--dask-local must be >= 1, got 0"),
        (["--serial", "--workers", "2"], "--workers only applies"),
        (["--scheduler", "not an address"], "--scheduler must look like tcp://HOST:PORT"),
        (["--workers", "two"], "invalid int value"),
    ):
        assert _exit_code(["sweep", str(cfg), "--out", str(store), *argv]) == 2
        assert msg in _one_line_error(capsys)
    assert not store.exists()


def test_unreachable_scheduler_fails_before_the_store(tmp_path, capsys):
    import socket

    with socket.socket() as s:  # a port nobody listens on: bind, then close
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = _write(tmp_path, TOML)
    store = tmp_path / "out"
    assert main(["sweep", str(cfg), "--out", str(store),
                 "--scheduler", f"tcp://127.0.0.1:{port}"]) == 2
    assert "is not reachable" in _one_line_error(capsys)
    assert not store.exists()


@pytest.mark.slow
def test_lyapunov_sweep_is_executor_independent(tmp_path, capsys):
    text = TOML.replace('"coherence"]', '"lyapunov"]') + "\n[lyapunov]\nsteps = 400\nreplicas = 4\n"
    cfg = _write(tmp_path, text)
    assert main(["sweep", str(cfg), "--out", str(tmp_path / "a"), "--serial", "--no-progress"]) == 0
    assert main(["sweep", str(cfg), "--out", str(tmp_path / "b"), "--workers", "2",
                 "--no-progress"]) == 0
    a, b = open_sweep(tmp_path / "a").load(), open_sweep(tmp_path / "b").load()
    xr.testing.assert_identical(a, b)
    assert np.all(np.isfinite(a.lyapunov.values))
    # almost-sure growth never exceeds the mean-square rate (Jensen), up to the MC error
    # (margin for the finite-horizon bias of a 400-step estimate)
    assert np.all(a.lyapunov <= 0.5 * np.log(a.rate) + 5 * a.lyapunov_stderr + 0.05)


def test_documented_example_config_is_valid(tmp_path):
    # the TOML example in docs/sweeps.md must stay a valid config (it once was not)
    from pathlib import Path

    from simulations.sweep import load_config, validate_config

    text = (Path(__file__).parents[1] / "docs" / "sweeps.md").read_text()
    block = text.split("```toml", 1)[1].split("```", 1)[0]
    path = tmp_path / "example.toml"
    path.write_text(block)
    cfg = validate_config(load_config(path))
    assert cfg is not None


ALIGNED = """
seed = 1
quantities = ["coherence", "rate"]

[ensemble]
name = "aligned"
n_retain = 4
n_forget = 2
d = 10
within_retain = 0.5
within_forget = 0.3

[schedule]
eta = 0.5
batch = 2
alpha = 0.1
forget_batch = 1

[grid]
between = [-0.5, 0, 0.5]
"""


def test_aligned_negative_between_grid_validates_and_runs(tmp_path, capsys):
    # regression: a generic "no negative grid values" rule once refused this valid grid; values
    # are now checked against aligned.parameter_constraints (between in [-1, 1])
    cfg = _write(tmp_path, ALIGNED)
    store = tmp_path / "out"
    assert main(["sweep", str(cfg), "--out", str(store), "--serial", "--no-progress"]) == 0
    ds = open_sweep(store).load()
    assert list(ds.between.values) == [-0.5, 0.0, 0.5]
    for c in (-0.5, 0.0, 0.5):
        want = ensembles.aligned_expected_coherence(4, 2, 10, 0.5, 0.3, c)  # exact (orthogonal noise)
        assert float(ds.coherence.sel(between=c)) == pytest.approx(want["sigma"], rel=1e-9)
        assert float(ds.coherence_cross.sel(between=c)) == pytest.approx(want["sigma_cross"], abs=1e-9)
    # |between| enters the coherence only: ±0.5 give the same σ
    assert float(ds.coherence.sel(between=-0.5)) == pytest.approx(float(ds.coherence.sel(between=0.5)))
    # out of the declared range: refused before anything is written, naming argument and range
    bad = _write(tmp_path, ALIGNED.replace("[-0.5, 0, 0.5]", "[-1.5, 0]"), "bad.toml")
    assert main(["sweep", str(bad), "--out", str(tmp_path / "o"), "--serial"]) == 2
    assert "config [grid] axis 'between': between must lie in [-1, 1], got -1.5" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
