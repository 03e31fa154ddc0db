"""``rmt reproduce``: the CNN experiments end to end at a tiny size, resumability, and the CLI.

Sign convention: :data:`rmt.verdict.SIGN_CONVENTION`.
"""

import numpy as np
import pytest

from pathlib import Path

from simulations import cli
from simulations.figures import LEGEND_DIVERGES
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
    assert "## 1. Coherence vs SNR (CNN)" in text and "## 2. CNN unlearning heatmaps" in text
    assert "![coherence_snr.png](coherence_snr.png)" in text
    assert "agreement_asymptotic" in text and LEGEND_DIVERGES in text

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


# ============================================================================ CLI errors
import json  # noqa: E402
import socket  # noqa: E402
import time  # noqa: E402

import xarray as xr  # noqa: E402

from rmt.verdict import SIGN_CONVENTION  # noqa: E402


def _cli_error(capsys, argv):
    """Run ``rmt reproduce ARGV``: must be exit 2 with exactly one line on stderr, nothing on stdout."""
    rc = cli.main(["reproduce", *argv])
    cap = capsys.readouterr()
    assert rc == 2, (rc, cap.err)
    lines = cap.err.strip("\n").split("\n")
    assert len(lines) == 1 and lines[0].startswith("rmt reproduce: error: "), cap.err
    assert "Traceback" not in cap.err and cap.out == ""
    return lines[0]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed on exit: nothing listens there


def test_cli_unknown_only_lists_valid_names_and_creates_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    msg = _cli_error(capsys, ["--quick", "--only", "hessian_grid", "nope"])
    assert "'nope'" in msg
    for name in rep.all_experiments():
        assert name in msg
    _cli_error(capsys, ["--skip", "nope2"])
    assert list(tmp_path.iterdir()) == []  # not even the default rmt-output/


def test_cli_out_is_a_file(tmp_path, capsys):
    f = tmp_path / "afile"
    f.write_text("x")
    assert "is an existing file" in _cli_error(capsys, ["--quick", "--out", str(f)])
    assert "is an existing file" in _cli_error(capsys, ["--quick", "--out", str(f / "sub")])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"] and f.read_text() == "x"


def test_cli_unreachable_scheduler(tmp_path, capsys):
    out = tmp_path / "out"
    t0 = time.perf_counter()
    msg = _cli_error(capsys, ["--quick", "--out", str(out), "--only", "lyapunov",
                              "--scheduler", f"tcp://127.0.0.1:{_free_port()}"])
    assert "cannot reach the Dask scheduler" in msg
    assert not out.exists() and time.perf_counter() - t0 < 20


@pytest.mark.parametrize("held,flag", [("full", ["--quick"]), ("quick", [])])
def test_cli_folder_of_the_other_mode(tmp_path, capsys, held, flag):
    out = tmp_path / "out"
    (out / "sweeps").mkdir(parents=True)
    (out / "summary.json").write_text(json.dumps({"mode": held}))
    before = sorted(p.name for p in out.rglob("*"))
    msg = _cli_error(capsys, [*flag, "--out", str(out), "--only", "lyapunov"])
    assert f"holds a {held}-mode reproduction" in msg
    assert sorted(p.name for p in out.rglob("*")) == before
    # a folder written before summary.json carried the mode: its report.md says it
    old = tmp_path / "old"
    (old / "sweeps").mkdir(parents=True)
    (old / "report.md").write_text(f"# rmt reproduction report\n\nMode: {held}; wall time 3 s.\n")
    assert f"holds a {held}-mode" in _cli_error(capsys, [*flag, "--out", str(old), "--only", "lyapunov"])


def test_cli_foreign_nonempty_folder(tmp_path, capsys):
    (tmp_path / "mine.txt").write_text("keep")
    assert "holds no rmt reproduce output" in _cli_error(capsys, ["--quick", "--out", str(tmp_path)])
    assert [p.name for p in tmp_path.iterdir()] == ["mine.txt"]


def test_help_lists_experiments_and_default_folders(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["reproduce", "--help"])
    assert exc.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for name in rep.all_experiments():
        assert name in text
    assert "--skip" in text and "rmt-output/reproduce/quick" in text
    assert rep.default_out(True).as_posix() == "rmt-output/reproduce/quick"
    assert rep.default_out(False).as_posix() == "rmt-output/reproduce/full"
    assert list(rep.all_experiments())[-1] == "realdata"


# ============================================================================ manifest, resume
def test_rerun_accumulates_compute_time_and_records_provenance(tmp_path, monkeypatch):
    from simulations.provenance import git_commit

    import rmt

    calls = []

    def fake(out, quick, run_kw):
        calls.append(quick)
        if len(calls) == 1:
            time.sleep(0.4)  # the first run computes, the resume finds everything done
        return {"rows": [], "figures": [], "text": "fake experiment"}

    monkeypatch.setitem(rep.EXPERIMENTS, "fake", fake)
    out = tmp_path / "out"
    rep.reproduce(out, quick=True, executor="serial", progress=False, only=["fake"])
    first = json.loads((out / "summary.json").read_text())
    assert first["mode"] == "quick" and first["compute_seconds"]["fake"] >= 0.4
    report = rep.reproduce(out, quick=True, executor="serial", progress=False, only=["fake"])
    second = json.loads((out / "summary.json").read_text())
    assert calls == [True, True]
    assert second["compute_seconds"]["fake"] >= first["compute_seconds"]["fake"] >= 0.4
    assert second["total_seconds"] >= first["total_seconds"]
    assert len(second["runs"]) == 2 and second["runs"][-1]["seconds"] < 0.4
    assert second["provenance"]["rmt_version"] == rmt.__version__
    assert second["provenance"]["commit"] == git_commit()
    text = report.read_text()
    assert f"rmt {rmt.__version__}" in text and str(git_commit()) in text
    assert "over 2 run(s)" in text and SIGN_CONVENTION in text
    total = second["total_seconds"]
    assert f"Compute time {total:.0f} s in total" in text


def test_interrupted_run_keeps_its_time(tmp_path, monkeypatch):
    def interrupted(out, quick, run_kw):
        time.sleep(0.3)
        raise KeyboardInterrupt

    monkeypatch.setitem(rep.EXPERIMENTS, "fake", interrupted)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        rep.reproduce(out, quick=True, executor="serial", progress=False, only=["fake"])
    state = json.loads((out / "summary.json").read_text())
    assert state["mode"] == "quick" and state["compute_seconds"]["fake"] >= 0.3
    assert state["runs"][0]["finished"] is False


def test_realdata_experiment_wired_and_reused(tmp_path, monkeypatch):
    """The report gets realdata's figure and tables; a rerun reuses the finished result."""
    from simulations import realdata

    calls = []

    def fake_run(out, quick=True, seed=0, progress=True):
        calls.append((Path(out).name, quick, progress))
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "realdata.json").write_text("{}")
        (Path(out) / "realdata.png").write_bytes(b"png")
        (Path(out) / "realdata.md").write_text(
            "# Real-data experiment\n\n| model | forget | agreement | observed forget | σ_F |"
            " out-of-span |\n|---|---|---|---|---|---|\n| mlp | hard | 0.83 | 0.50 | 1.70 | 0.000 |\n")
        return {"mlp": {"cells": 6, "forecast": 0.83}}

    monkeypatch.setattr(realdata, "run", fake_run)
    out = tmp_path / "out"
    report = rep.reproduce(out, quick=True, executor="serial", progress=False, only=["realdata"])
    text = report.read_text()
    assert calls == [("realdata", True, False)]
    assert "![realdata/realdata.png](realdata/realdata.png)" in text
    assert "### Real-data experiment" in text and "| mlp | hard | 0.83 | 0.50 | 1.70 |" in text
    rep.reproduce(out, quick=True, executor="serial", progress=False, only=["realdata"])
    assert len(calls) == 1  # reused
    assert "| mlp | hard | 0.83" in (out / "report.md").read_text()


@pytest.mark.slow
def test_realdata_experiment_for_real(tmp_path):
    out = tmp_path / "out"
    report = rep.reproduce(out, quick=True, executor="serial", progress=False, only=["realdata"])
    text = report.read_text()
    assert (out / "realdata" / "realdata.png").stat().st_size > 1000
    assert "| model | forget | agreement |" in text and "σ_F" in text
    summary = json.loads((out / "summary.json").read_text())["results"]["realdata"]["summary"]
    assert {"logistic", "mlp"} <= set(summary)


# ============================================================================ Hessian-grid figure
N = 100


def _hand_rate(n, sigma, B, eta):
    """ρ(T) of the SGD Hessian-test cell, without replacement (THEORY §2.1, §3; by hand)."""
    c = (n - B) / (B * (n - 1))
    rates = [(1 - 2 * eta) ** 2 + eta**2 * c * (4.0 * n / sigma - 4.0)]
    if sigma < n:
        rates.append((1 - 2 * eta / sigma) ** 2 + eta**2 * c * (4.0 * n / sigma**2 - 4.0 / sigma**2))
    return max(rates)


def _hand_bstar(n, sigma, eta, b_max):
    for B in range(1, b_max + 1):
        if _hand_rate(n, sigma, B, eta) <= 1.0 + 1e-12:
            return B
    return None


def _fake_sub(sigmas, batches, eta, flips):
    """A sweep slice with the hand-computed exact verdict and a heuristic that differs on ``flips``."""
    exact = np.array([[float(_hand_rate(N, s, b, eta) > 1.0) for b in batches] for s in sigmas])
    heur = exact.copy()
    for i, j in flips:
        heur[i, j] = 1.0 - heur[i, j]
    return xr.Dataset({"exact_diverges": (("sigma", "batch"), exact),
                       "heuristic_diverges": (("sigma", "batch"), heur)},
                      coords={"sigma": sigmas, "batch": batches}), exact


@pytest.mark.parametrize("eta,sigmas", [(0.5, [1, 3, 6, 9, 12]), (0.8, [34, 40, 46, 50])])
def test_sgd_panel_frontier_is_exact_and_curves_are_the_schemes(eta, sigmas):
    from simulations import figures

    batches = [1, 5, 13, 29, 49]
    flips = [(2, 1), (3, 3), (0, 0)]
    sub, exact = _fake_sub(sigmas, batches, eta, flips)
    fig, ax = figures.plt.subplots()
    handles, row = rep.hessian_grid_panel(ax, sub, n=N, n_forget=10, eta=eta, alpha=0.0,
                                          sigma_values=sigmas, batch_values=batches)
    # the exact frontier: in every σ row, between the hand-computed B* − 1 and B*
    (front,) = [ln for ln in ax.get_lines() if ln.get_label().startswith("exact frontier")]
    x, y = front.get_data()
    rows_x = x[::2]
    rows = range(sigmas[0], sigmas[-1] + 1)
    assert np.all(x[::2] == x[1::2]) and len(rows_x) == len(rows)  # one vertical step per σ
    for k, (s, xb) in enumerate(zip(rows, rows_x)):
        b = _hand_bstar(N, s, eta, 49)
        assert xb == (49.5 if b is None else b - 0.5), (s, xb, b)
        assert (y[2 * k], y[2 * k + 1]) == (s - 0.5, s + 0.5)
    # the theorem curves are the without-replacement ones, labelled so, never Bernoulli
    from theory import derivations as dv

    curves = [ln for ln in ax.get_lines() if ln is not front]
    labels = [ln.get_label() for ln in curves]
    assert len(curves) == 2 and all("without replacement" in lab for lab in labels)
    assert not any("Bernoulli" in lab for lab in labels)
    B_, S_ = (np.asarray(v, float) for v in curves[1].get_data())
    assert "Thm 2" in labels[1]
    lam_star = dv.dexter_thm2_condition("without_replacement").function(eta, S_, N, B_)
    np.testing.assert_allclose(lam_star, 2.0, rtol=1e-12)  # on the curve λ = λ*(σ, B)
    B1, S1 = (np.asarray(v, float) for v in curves[0].get_data())
    keep = B1 < N
    eta_thr = dv.unlearning_noise_condition("without_replacement", "retain").function(
        2.0, S1[keep], N, B1[keep], 0.0)
    np.testing.assert_allclose(eta_thr, eta, rtol=1e-12)
    # the title counts agreement over every simulated cell
    agree = exact.size - len(flips)
    assert f"agrees on {agree}/{exact.size} simulated cells" in ax.get_title()
    assert row["agree"] == agree and row["agreement"] == pytest.approx(agree / exact.size)
    assert row["exact_matches_lattice"] is True
    figures.plt.close(fig)


def test_unlearning_panel_frontier_and_no_curves():
    import rmt

    from simulations import figures
    from simulations import hessian_grid as hg

    sigmas, batches = [15, 20, 25], [1, 3, 20, 49]
    sub = xr.Dataset({"exact_diverges": (("sigma", "batch"), np.full((3, 4), np.nan)),
                      "heuristic_diverges": (("sigma", "batch"), np.full((3, 4), np.nan))},
                     coords={"sigma": sigmas, "batch": batches})
    fig, ax = figures.plt.subplots()
    _, row = rep.hessian_grid_panel(ax, sub, n=N, n_forget=10, eta=0.5, alpha=0.1,
                                    sigma_values=sigmas, batch_values=batches)
    lines = ax.get_lines()
    assert len(lines) == 1 and lines[0].get_label().startswith("exact frontier")
    x = lines[0].get_data()[0][::2]
    assert len(x) == 11 and 49.5 in x and x.min() < 49  # crosses from "no B" to a finite B*
    for s, xb in zip(range(15, 26), x):  # ρ(T) ≤ 1 at B*, > 1 at B* − 1 (direct exact rates)
        hs = hg.grid_set(N, s, 0.1, 10, "commuting")

        def rate(B):
            return rmt.mean_square_rate(hs, rmt.Schedule(0.5, B, alpha=0.1, sampling="without_replacement",
                                                         forget_batch=min(B, hs.n_forget)))

        if xb == 49.5:
            assert rate(49) > 1
        else:
            b = int(xb + 0.5)
            assert rate(b) <= 1 and (b == 1 or rate(b - 1) > 1), (s, b)
    figures.plt.close(fig)


@pytest.mark.slow  # ~40 s: JIT compilation of the simulation kernel and the exact lattice
def test_hessian_grid_experiment_titles_match_counts(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    cell = rep.HessianGridCell(runs=3, steps=80)
    r = rep.experiment_hessian_grid(out, True, dict(executor="serial", progress=False), cell=cell,
                                    sizes={"sigma": [1, 10, 40], "batch": [1, 8, 30]},
                                    etas=(0.8,), alphas=(0.0, 0.3))
    assert (out / "hessian_grid_eta0.8.png").stat().st_size > 1000
    ds = __import__("simulations.sweep", fromlist=["open_sweep"]).open_sweep(out / "sweeps" / "hessian_grid")
    for row in r["rows"]:
        sub = ds.sel(eta=row["eta"], alpha=row["alpha"])
        e, h = sub["exact_diverges"].values, sub["heuristic_diverges"].values
        agree = int(np.sum(e == h))
        assert row["agree"] == agree and row["cells"] == e.size
        assert f"agrees on {agree}/{e.size} simulated cells" in r["titles"][f"{row['eta']}/{row['alpha']}"]
        assert row["exact_matches_lattice"] is True
        # every simulated cell carries a verified certificate of its exact verdict (none here
        # has ρ(T) = 1 exactly)
        assert row["certified"] == row["cells"] and row["certificate_disagrees"] == 0
    cert = r["certificates"]
    assert cert["certified"] == cert["cells"] == sum(row["cells"] for row in r["rows"])
    assert cert["not_certifiable"] == 0 and cert["verification"] == "exact-commuting"
    section = "\n".join(rep._section_hessian_grid(r))
    assert f"**Certificates.** {cert['cells']} of {cert['cells']} simulated cells" in section


# ============================================================================ Lyapunov figure
def _brute_singular(n, sigma, B, eta, lam=2.0):
    """Every direction annihilated by some batch (enumerate all batches; tiny n)."""
    from itertools import combinations

    d = n - sigma + 1
    P = np.zeros((n, d))
    P[:sigma, 0] = lam * n / sigma
    for i in range(sigma, n):
        P[i, i - sigma + 1] = lam * n / sigma
    hit = np.zeros(d, bool)
    for batch in combinations(range(n), B):
        hit |= np.abs(1 - eta * P[list(batch)].sum(axis=0) / B) < 1e-9
    return bool(hit.all())


@pytest.mark.parametrize("n,sigma,B", [(6, 2, 2), (7, 3, 3), (6, 6, 2), (8, 2, 3)])
def test_singular_step_detection_matches_enumeration(n, sigma, B):
    a_eta = sigma * B / (2.0 * n)  # a = 1
    for eta in [a_eta, a_eta / 2, a_eta / 3, 0.37, a_eta * 1.01]:
        assert rep.hessian_test_singular(n, sigma, B, eta) == _brute_singular(n, sigma, B, eta), eta


def test_lyapunov_figure_clips_only_the_outlier(tmp_path):
    etas = np.array([0.3, 0.4, 0.5, 0.6, 0.7])
    half = np.array([-0.12, -0.14, -0.14, -0.03, 0.17])
    lyap = np.array([-0.22, -0.39, -8.57, -0.38, -0.22])
    se = np.array([0.001, 0.004, 0.07, 0.002, 0.002])
    singular = np.array([False, False, True, False, False])
    part, clipped, shown = rep.lyapunov_figure(tmp_path / "f.png", etas, half, lyap, se, singular,
                                               0.6129, "t")
    assert clipped.tolist() == [False, False, True, False, False]
    assert part.tolist() == [False, False, False, False, True]
    assert (tmp_path / "f.png").stat().st_size > 1000
    # only singular steps are clipped: a merely large value widens the range instead
    _, clipped2, shown2 = rep.lyapunov_figure(tmp_path / "g.png", etas, half, lyap, se,
                                              np.zeros(5, bool), 0.6129, "t")
    assert not clipped2.any() and shown2.all()


@pytest.mark.slow  # ~20 s: JIT compilation of the Lyapunov kernel
def test_lyapunov_figure_clips_singular_outlier(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    cell = rep.LyapunovCell(steps=300, replicas=2)
    r = rep.experiment_lyapunov(out, True, dict(executor="serial", progress=False), cell=cell,
                                etas=[0.4, 0.5, 0.7, 1.0])
    assert (out / "lyapunov_vs_meansquare.png").stat().st_size > 1000
    assert r["singular_etas"] == [0.5] and 0.5 in r["clipped_etas"]
    assert all(not row["clipped"] for row in r["rows"] if row["eta"] != 0.5)
    lines = rep._section_lyapunov(r)
    text = "\n".join(lines)
    assert f"{len(r['clipped_etas'])} point(s) clipped" in text and "λ₁ = −∞" in text
    assert r["max_two_stderr"] > 0 and "±2 standard errors" in text
    import rmt

    hs = rmt.ensembles.hessian_test(cell.n, cell.sigma)
    sch = rmt.Schedule(r["critical_eta"], cell.batch, sampling="without_replacement")
    assert rmt.mean_square_rate(hs, sch) == pytest.approx(1.0, abs=1e-8)


# ============================================================================ CNN heatmap figure
def _neighbours_agree(pred):
    """Counted cells computed here, independently: prediction equal to all 4-neighbours."""
    G1, G2 = pred.shape
    ok = np.ones_like(pred, bool)
    for i in range(G1):
        for j in range(G2):
            for di, dj in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                a, b = i + di, j + dj
                if 0 <= a < G1 and 0 <= b < G2 and pred[a, b] != pred[i, j]:
                    ok[i, j] = False
    return ok


def test_heatmap_title_counts_every_cell():
    from simulations.cnn.heatmap import HeatmapCell, plot_heatmap, summarise
    from simulations.figures import plt

    snr, alpha = [0.1, 0.3, 1.0, 3.0], [0.0, 0.1, 0.2, 0.3]
    rate = np.array([[1.2, 1.2, 1.2, 1.2], [1.2, 1.2, 1.2, 1.2], [0.9, 0.9, 1.2, 1.2],
                     [0.9, 0.9, 0.9, 1.2]])
    cell = HeatmapCell(axes="snr,alpha", n=12, d=20, m=3, n_forget=3, batch=3, steps=400)
    rho_c = 10.0 ** (2 / 400)
    pred = rate > rho_c
    obs = pred.copy()
    obs[2, 2] = False  # frontier-adjacent disagreement (not counted)
    obs[0, 0] = False  # counted disagreement
    shape = rate.shape
    cells = xr.Dataset({
        "rate": (("snr", "alpha"), rate), "predicted": (("snr", "alpha"), pred.astype(float)),
        "predicted_asymptotic": (("snr", "alpha"), (rate > 1).astype(float)),
        "observed": (("snr", "alpha"), obs.astype(float)),
        "escape_fraction": (("snr", "alpha"), obs.astype(float)),
        "forget_loss_increase": (("snr", "alpha"), np.zeros(shape)),
        "retain_loss_change": (("snr", "alpha"), np.zeros(shape)),
        "eta": (("snr", "alpha"), np.ones(shape)), "sigma_retain": (("snr", "alpha"), np.ones(shape)),
        "train_converged": (("snr", "alpha"), np.ones(shape)),
        "lyapunov": (("snr", "alpha"), np.full(shape, np.nan))},
        coords={"snr": snr, "alpha": alpha})
    ds = summarise(cells, cell, seed=0)
    fig = plot_heatmap(ds)
    title = fig.axes[0].get_title()
    cnt = _neighbours_agree(pred)
    same = obs == pred
    assert (int(same[cnt].sum()), int(cnt.sum())) == (int(cnt.sum()) - 1, int(cnt.sum()))
    assert f"agrees on {int(same[cnt].sum())}/{int(cnt.sum())} counted cells" in title
    assert f"{int(same.sum())}/{same.size} of all cells" in title
    # one × for the counted disagreement, one □ for the frontier-adjacent one
    marks = [ln.get_marker() for ln in fig.axes[0].get_lines()
             if ln.get_markeredgecolor() == "#D55E00"]
    assert sorted(marks) == ["s", "x"]
    plt.close(fig)


def test_asymptotics_hook_wires_the_module_when_present(tmp_path, monkeypatch):
    import sys
    import types

    if "simulations.asymptotics_figure" not in sys.modules:
        try:
            import simulations.asymptotics_figure  # noqa: F401
        except ImportError:
            pass
    seen = []

    def experiment_asymptotics(out, quick):
        seen.append((Path(out), quick))
        return {"figures": ["asym.png"], "markdown": "Asymptotic table here.", "value": 1.5}

    fake = types.ModuleType("simulations.asymptotics_figure")
    fake.experiment_asymptotics = experiment_asymptotics
    monkeypatch.setitem(sys.modules, "simulations.asymptotics_figure", fake)
    import simulations

    monkeypatch.setattr(simulations, "asymptotics_figure", fake, raising=False)
    names = list(rep.all_experiments())
    assert "asymptotics" in names and names[-1] == "realdata"
    out = tmp_path / "out"
    text = rep.reproduce(out, quick=True, executor="serial", progress=False,
                         only=["asymptotics"]).read_text()
    assert seen == [(out, True)]
    assert "Random-matrix asymptotics" in text and "Asymptotic table here." in text
    assert "![asym.png](asym.png)" in text


def test_only_and_skip_accept_hyphens_and_underscores():
    exps = {"hessian_grid": None, "coherence-study": None, "realdata": None}
    assert rep._select(["coherence_study"], None, exps) == ["coherence-study"]
    assert rep._select(["hessian-grid", "coherence-study"], None, exps) == ["hessian_grid",
                                                                          "coherence-study"]
    assert rep._select(None, ["coherence_study", "realdata"], exps) == ["hessian_grid"]
    with pytest.raises(ValueError, match="unknown experiment"):
        rep._select(["coherence study"], None, exps)
