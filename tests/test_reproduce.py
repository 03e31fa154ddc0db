"""``rmt reproduce``: the CNN experiments end to end at a tiny size, resumability, and the CLI.

Sign convention: "diverges" = the model forgets, "converges" = the model resists unlearning.
"""

import numpy as np
import pytest

from simulations import cli
from simulations import reproduce as rep
from simulations.cnn import reproduce as cnn_rep
from simulations.sweep import open_sweep, run_sweep, sweep_status

TINY = {
    "coherence": dict(n=12, d=40, m=4, snr=[0.05, 0.5, 3.0], replicates=2, closed_form_points=8),
    "heatmap": dict(n=16, d=30, m=4, n_forget=4, grid=3, steps=60, replicas=1,
                    snr_range=(0.1, 2.0), almost_sure=False,
                    snr_alpha=dict(eta_scale=0.5, batch=4, alpha_range=(0.0, 0.3)),
                    snr_batch=dict(eta_scale=1.0, alpha=0.05)),
}
NAMES = ["coherence_snr", "cnn_heatmaps"]
FIGURES = ["coherence_snr.png", "cnn_heatmap_snr_alpha.png", "cnn_heatmap_snr_batch.png"]
STORES = ["coherence_snr", "cnn_heatmap_snr_alpha", "cnn_heatmap_snr_batch"]


def _forbid(*args, **kwargs):
    raise AssertionError("a finished cell was recomputed")


def test_cnn_experiments_registered():
    assert set(NAMES) <= set(rep._optional_cnn_experiments())


def test_cnn_experiments_end_to_end_and_resume(tmp_path, monkeypatch):
    monkeypatch.setitem(cnn_rep.SIZES, "quick", TINY)
    out = tmp_path / "out"
    report = rep.reproduce(out, quick=True, executor="serial", progress=False, only=NAMES)
    for f in FIGURES:
        assert (out / f).stat().st_size > 1000, f
    text = report.read_text()
    assert "## 2. Coherence vs SNR (CNN)" in text and "## 3. CNN unlearning heatmaps" in text
    assert "![coherence_snr.png](coherence_snr.png)" in text
    assert "agreement_asymptotic" in text and "diverges = forgets" in text

    for name in STORES:
        st = sweep_status(out / "sweeps" / name)
        assert st.complete and st.done == st.total > 0, name

    # every cell is a sweep cell: the heatmap stores have one cell per (snr, second-axis) pair
    ds = open_sweep(out / "sweeps" / "cnn_heatmap_snr_alpha")
    assert dict(ds.sizes) == {"snr": 3, "alpha": 3}
    assert set(np.unique(ds["observed"].values)) <= {0.0, 1.0}
    assert np.all(ds["rate"].values > 0)
    # predicted = ρ(T) > F^(2/K), predicted_asymptotic = ρ(T) > 1
    rho_c = 10.0 ** (2.0 / TINY["heatmap"]["steps"])
    np.testing.assert_array_equal(ds["predicted"].values, (ds["rate"].values > rho_c).astype(float))
    np.testing.assert_array_equal(ds["predicted_asymptotic"].values,
                                  (ds["rate"].values > 1.0).astype(float))
    coh = open_sweep(out / "sweeps" / "coherence_snr")
    assert dict(coh.sizes) == {"state": 2, "snr": 3, "replicate": 2}

    # the returned dicts, called directly (stores complete: nothing may be recomputed)
    monkeypatch.setattr(cnn_rep.CoherenceCell, "__call__", _forbid)
    monkeypatch.setattr(cnn_rep.HeatmapCell, "__call__", _forbid)
    run_kw = dict(executor="serial", progress=False)
    r1 = cnn_rep.experiment_coherence_snr(out, True, run_kw)
    r2 = cnn_rep.experiment_cnn_heatmaps(out, True, run_kw)
    for r in (r1, r2):
        assert {"figures", "table", "text", "rows"} <= set(r)
        assert r["table"].startswith("| ") and r["text"]
    assert r1["figures"] == ["coherence_snr.png"]
    assert r2["figures"] == ["cnn_heatmap_snr_alpha.png", "cnn_heatmap_snr_batch.png"]
    assert len(r1["rows"]) == 2 * 3
    for row in r1["rows"]:
        assert np.isfinite(row["closed_form"]) and row["sampled"] > 0.9  # σ ≥ 1 up to round-off
        assert row["rel_error"] == pytest.approx(row["closed_form"] / row["sampled"] - 1)
    for row in r2["rows"]:
        assert row["cells"] == 9
        for k in ("agreement", "agreement_asymptotic", "all_cells", "all_cells_asymptotic"):
            assert row[k] != row[k] or 0.0 <= row[k] <= 1.0  # NaN only when nothing is counted
    # a second full command also recomputes nothing
    rep.reproduce(out, quick=True, executor="serial", progress=False, only=NAMES)


def test_cells_are_deterministic_and_pair_states():
    """Same SeedSequence → same outputs; init and trained cells of one draw share the data."""
    from simulations.sweep import cell_seed

    cell = cnn_rep.CoherenceCell(n=10, d=30, m=3)
    a = cell({"state": "init", "snr": 0.5, "replicate": 0}, cell_seed(3, (0, 1, 0)))
    b = cell({"state": "init", "snr": 0.5, "replicate": 0}, cell_seed(3, (0, 1, 0)))
    assert a == b
    # the trained cell at the same (snr, replicate) starts from the same draw and is trained
    t = cell({"state": "trained", "snr": 0.5, "replicate": 0}, cell_seed(3, (1, 1, 0)))
    assert t["train_converged"] == 1.0 and t["train_steps"] > 0
    hm = cnn_rep.HeatmapCell(axes="snr,batch", n=12, d=20, m=3, n_forget=3, steps=30, replicas=1)
    x = hm({"snr": 0.3, "batch": 2}, cell_seed(5, (0, 1)))
    cnn_rep._ROW_CACHE.clear()  # recomputed from scratch: identical
    y = hm({"snr": 0.3, "batch": 2}, cell_seed(5, (0, 1)))
    np.testing.assert_equal(x, y)  # NaN (no Lyapunov exponent) compares equal here


def test_heatmap_cells_identical_on_serial_and_processes(tmp_path):
    """The per-process row cache never changes data: serial == two worker processes."""
    cell = cnn_rep.HeatmapCell(axes="snr,alpha", n=12, d=20, m=3, n_forget=3, batch=3, steps=30,
                               replicas=1)
    grid = {"snr": [0.1, 1.0], "alpha": [0.0, 0.1, 0.2]}
    a = run_sweep(cell, grid, tmp_path / "serial", executor="serial", seed=4, progress=False)
    b = run_sweep(cell, grid, tmp_path / "procs", executor="processes", n_workers=2, seed=4,
                  progress=False)
    assert list(a.data_vars) == list(b.data_vars)
    for v in a.data_vars:
        np.testing.assert_array_equal(a[v].values, b[v].values, err_msg=v)


def test_reproduce_help(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["reproduce", "--help"])
    assert exc.value.code == 0
    help_text = capsys.readouterr().out
    assert "--quick" in help_text and "--out" in help_text and "--dask-local" in help_text
