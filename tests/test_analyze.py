"""``rmt analyze`` and the ``.npz`` layout (:mod:`rmt.io`, docs/npz.md).

The layout round trip and every bad input (API and CLI: one line on stderr, exit status 2, no
traceback); up-front validation (nothing computed or printed before every combination is valid);
one ρ(T) and one η* per combination shared with the theorem checks; the BLAS cap; partial results
kept when a combination fails; provenance in the JSON output.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import rmt
import rmt.io as rio
from rmt import HessianSet, Schedule
from simulations import sweep_cli
from simulations.cli import main


def _exit_code(argv):
    try:
        return main(argv)
    except SystemExit as exc:  # argparse usage errors
        return exc.code


def _npz(tmp_path, name="curv.npz", **arrays):
    p = tmp_path / name
    np.savez(p, **arrays)
    return p


def _set(seed=0, n=8, nf=3, d=5, gradients=True):
    rng = np.random.default_rng(seed)
    G, Gf = rng.standard_normal((n, d)), rng.standard_normal((nf, d))
    kw = {}
    if gradients:
        kw = dict(retain_gradients=0.1 * rng.standard_normal((n, d)),
                  forget_gradients=0.1 * rng.standard_normal((nf, d)))
    return HessianSet.from_factors(G, Gf, **kw)


# ====================================================================== the .npz layout
def test_round_trip_keeps_factors_gradients_and_loss(tmp_path):
    hs = _set()
    path = rio.save_npz(tmp_path / "a.npz", hs, loss="logistic")
    back, meta = rio.load_npz(path, with_metadata=True)
    assert back.kind == "rank1" and back.n_retain == 8 and back.n_forget == 3
    for w in ("retain", "forget"):
        np.testing.assert_array_equal(back.factors(w), hs.factors(w))
        np.testing.assert_array_equal(back.gradients(w), hs.gradients(w))
    assert meta.loss == "logistic" and meta.format_version == rio.FORMAT_VERSION == 1
    assert meta.layout == "v1" and meta.curvature == {"retain": "retain_factors",
                                                      "forget": "forget_factors"}
    with np.load(path) as raw:  # the documented keys, nothing else
        assert sorted(raw.files) == sorted(rio.KEYS)
        assert raw["loss"].shape == () and str(raw["loss"]) == "logistic"
    # a factor set (n, d, k), no forget set, no loss recorded
    F = np.random.default_rng(1).standard_normal((6, 4, 2))
    fs = HessianSet.from_factors(F)
    back, meta = rio.load_npz(rio.save_npz(tmp_path / "f.npz", fs), with_metadata=True)
    np.testing.assert_array_equal(back.factors("retain"), F)
    assert meta.loss is None and not back.has_forget and not back.has_gradients
    # dense Hessians are stored as factors of their eigendecomposition: same Hessians
    H = np.einsum("nak,nbk->nab", F, F)
    back = rio.load_npz(rio.save_npz(tmp_path / "d.npz", HessianSet.from_dense(H)))
    np.testing.assert_allclose(back.dense("retain"), H, rtol=0, atol=1e-12 * np.abs(H).max())
    # a mapping of layout arrays
    g = hs.gradients("retain")
    back = rio.load_npz(rio.save_npz(tmp_path / "m.npz", {"retain_factors": hs.factors("retain")[:, :, 0],
                                                          "retain_gradients": g}, loss="squared"))
    np.testing.assert_array_equal(back.gradients("retain"), g)


def test_models_hessian_set_saves_in_one_call(tmp_path):
    from rmt import models as M

    rng = np.random.default_rng(2)
    X, y = rng.standard_normal((10, 3)), np.where(rng.standard_normal(10) > 0, 1.0, -1.0)
    model = M.LogisticRegression(3)
    w = rng.standard_normal(model.n_params)
    hs = M.hessian_set(model, w, X[:7], y[:7], X[7:], y[7:])
    back, meta = rio.load_npz(rio.save_npz(tmp_path / "lr.npz", hs, loss=model.loss),
                              with_metadata=True)
    assert meta.loss == "logistic" and back.has_gradients
    for w_ in ("retain", "forget"):
        np.testing.assert_array_equal(back.gradients(w_), hs.gradients(w_))
        np.testing.assert_array_equal(back.factors(w_), hs.factors(w_))


def test_legacy_keys_are_read():
    rng = np.random.default_rng(3)
    G, Gf = rng.standard_normal((5, 3)), rng.standard_normal((2, 3))
    F = rng.standard_normal((5, 3, 2))
    H = np.einsum("nak,nbk->nab", F, F)
    cases = [({"retain_grads": G, "forget_grads": Gf}, np.einsum("na,nb->nab", G, G)),
             ({"retain_factors": F}, H), ({"retain_hessians": H}, H)]
    for arrays, dense in cases:
        hs, meta = rio._parse({k: np.asarray(v) for k, v in arrays.items()}, "test")[:2]
        np.testing.assert_allclose(hs.dense("retain"), dense, rtol=1e-10, atol=1e-12)
    assert rio._parse({"retain_grads": G}, "t")[3] == "legacy"


BAD_ARRAYS = [
    ("unknown key", {"retain_factors": np.eye(3), "extra": np.ones(2)}, "unknown key(s) ['extra']"),
    ("no retain set", {"forget_factors": np.eye(3)}, "has no retain set"),
    ("two curvature keys", {"retain_factors": np.eye(3), "retain_hessians": np.ones((3, 3, 3))},
     "one curvature key for the retain set"),
    ("legacy grads with gradients", {"retain_grads": np.eye(3), "retain_gradients": np.eye(3)},
     "cannot be combined"),
    ("gradients without factors", {"retain_factors": np.eye(3), "forget_gradients": np.eye(3)},
     "forget_gradients was given but there is no forget_factors"),
    ("wrong ndim", {"retain_factors": np.ones((3, 2, 2, 2))}, "retain_factors must have 2 or 3"),
    ("legacy grads ndim", {"retain_grads": np.ones((3, 2, 2))}, "retain_grads must have 2"),
    ("dimension mismatch", {"retain_factors": np.eye(3), "forget_factors": np.ones((2, 4))},
     "has dimension d=4 but retain_factors has d=3"),
    ("gradient shape", {"retain_factors": np.eye(3), "retain_gradients": np.ones((2, 3))},
     "retain_gradients must have shape (n_retain, d) = (3, 3)"),
    ("nan", {"retain_factors": np.array([[1.0, np.nan], [0.0, 1.0]])},
     "retain_factors contains NaN or inf (first at index (0, 1)"),
    ("inf gradient", {"retain_factors": np.eye(2), "retain_gradients": np.array([[np.inf, 0], [0, 0]])},
     "retain_gradients contains NaN or inf"),
    ("complex", {"retain_factors": np.eye(3) + 0j}, "retain_factors must be real"),
    ("boolean", {"retain_factors": np.eye(3, dtype=bool)}, "retain_factors must hold real numbers"),
    ("strings", {"retain_factors": np.array([["a", "b"]])}, "retain_factors must hold real numbers"),
    ("overflow scale", {"retain_factors": 1e200 * np.eye(3)}, "is too large to analyse in float64"),
    ("underflow scale", {"retain_factors": 1e-150 * np.eye(3)}, "is too small to analyse in float64"),
    ("overflow gradients", {"retain_factors": np.eye(3), "retain_gradients": 1e200 * np.eye(3)},
     "retain_gradients is too large"),
    ("all zero", {"retain_factors": np.zeros((3, 2))}, "is all zeros"),
    ("newer version", {"retain_factors": np.eye(3), "format_version": np.asarray(2)},
     "format_version 2 was written by a newer rmt"),
    ("float version", {"retain_factors": np.eye(3), "format_version": np.asarray(1.0)},
     "format_version must be an integer"),
    ("unknown loss", {"retain_factors": np.eye(3), "loss": np.asarray("hinge")},
     "loss must be one of ['squared', 'logistic', 'softmax'], got 'hinge'"),
    ("numeric loss", {"retain_factors": np.eye(3), "loss": np.asarray(3.0)}, "loss must be a 0-d string"),
    ("not symmetric", {"retain_hessians": np.array([[[1.0, 2.0], [0.0, 1.0]]])}, "is not symmetric"),
]


@pytest.mark.parametrize("label, arrays, message", BAD_ARRAYS, ids=[b[0] for b in BAD_ARRAYS])
def test_bad_files_raise_one_clear_error(tmp_path, capsys, label, arrays, message):
    path = _npz(tmp_path, **arrays)
    with pytest.raises(ValueError) as err:
        rio.load_npz(path)
    assert message in str(err.value)
    assert len(str(err.value).splitlines()) == 1
    # the same through the CLI: one line, status 2, nothing on stdout, no traceback
    assert _exit_code(["analyze", str(path), "--eta", "0.1"]) == 2
    cap = capsys.readouterr()
    lines = cap.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rmt analyze: error:") and message in lines[0]
    assert cap.out == "" and "Traceback" not in cap.err


def test_paths_that_are_not_npz_files(tmp_path, capsys):
    text = tmp_path / "notes.npz"
    text.write_text("not a zip archive")
    npy = tmp_path / "a.npy"
    np.save(npy, np.eye(3))
    obj = _npz(tmp_path, "obj.npz", retain_factors=np.array([None, 1.0], dtype=object))
    cases = [(text, "is not an .npz archive"), (npy, "is not an .npz archive"),
             (tmp_path, "is a directory, not an .npz file"),
             (tmp_path / "missing.npz", "does not exist"),
             (obj, "holds object (pickled) arrays")]
    for path, message in cases:
        with pytest.raises(ValueError) as err:
            rio.load_npz(path)
        assert message in str(err.value)
        assert _exit_code(["analyze", str(path)]) == 2
        cap = capsys.readouterr()
        assert cap.err.count("\n") == 1 and message in cap.err and cap.out == ""


def test_save_npz_refuses_bad_input_and_writes_nothing(tmp_path):
    hs = _set()
    with pytest.raises(ValueError, match="path must end in .npz"):
        rio.save_npz(tmp_path / "a.npy", hs)
    with pytest.raises(ValueError, match="does not exist"):
        rio.save_npz(tmp_path / "no" / "a.npz", hs)
    with pytest.raises(TypeError, match="hs_or_arrays must be a HessianSet or a dict"):
        rio.save_npz(tmp_path / "a.npz", np.eye(3))
    with pytest.raises(ValueError, match=r"hs_or_arrays has key\(s\) \['retain_grads'\]"):
        rio.save_npz(tmp_path / "a.npz", {"retain_grads": np.eye(3)})
    with pytest.raises(ValueError, match="retain_factors contains NaN"):
        rio.save_npz(tmp_path / "a.npz", {"retain_factors": np.full((2, 2), np.nan)})
    with pytest.raises(ValueError, match="loss must be one of"):
        rio.save_npz(tmp_path / "a.npz", hs, loss="hinge")
    with pytest.raises(TypeError, match="loss must be a string"):
        rio.save_npz(tmp_path / "a.npz", hs, loss=1)
    assert not (tmp_path / "a.npz").exists()
    with pytest.raises(ValueError, match="too large"):
        rio.check_curvature_scale(HessianSet.from_factors(1e100 * np.eye(3)))
    with pytest.raises(TypeError, match="hs must be a HessianSet"):
        rio.check_curvature_scale(np.eye(3))


# ====================================================================== up-front validation
def _count(monkeypatch, name):
    """Count calls of rmt.<name> wherever they come from (rmt, rmt.meansquare, theory)."""
    import rmt.meansquare as msq

    orig = getattr(msq, name)
    calls = []

    def spy(*args, **kwargs):
        calls.append(args)
        return orig(*args, **kwargs)

    monkeypatch.setattr(msq, name, spy)
    monkeypatch.setattr(rmt, name, spy)
    return calls


BAD_OPTIONS = [
    (["--eta", "-1"], "--eta must be > 0, got -1.0"),
    (["--eta", "0.1", "--alpha", "1.5"], "--alpha must lie in [0, 1], got 1.5"),
    (["--eta", "0.1", "--batch", "0"], "--batch must be >= 1, got 0"),
    (["--eta", "0.1", "--forget-batch", "0"], "--forget-batch must be >= 1, got 0"),
    (["--eta", "0.1", "--replicas", "1"], "--replicas must be >= 2, got 1"),
    (["--eta", "0.1", "--lyapunov-steps", "0"], "--lyapunov-steps must be >= 1, got 0"),
    (["--eta", "0.1", "--seed", "-1"], "--seed must be >= 0, got -1"),
    (["--eta", "0.1", "--steps", "0"], "--steps must be >= 1, got 0"),
    (["--eta", "0.1", "--forecast-replicas", "1"], "--forecast-replicas must be >= 2, got 1"),
    (["--eta", "0.1", "--time-budget", "0"], "--time-budget must be > 0, got 0.0"),
    (["--eta", "0.1", "--batch", "2", "50"], "combination eta=0.1 batch=50 alpha=0.1"),
    (["--eta", "0.1", "1.0", "--forget-batch", "9"], "forget_batch must be <= the forget set size"),
    (["--eta", "0.1", "--batch", "abc"], "invalid int value: 'abc'"),
    (["--eta", "0.1", "--json", "--jsonl"], "not allowed with argument"),
]


@pytest.mark.parametrize("args, message", BAD_OPTIONS, ids=[b[1][:30] for b in BAD_OPTIONS])
def test_every_option_and_combination_is_checked_before_any_work(tmp_path, capsys, monkeypatch,
                                                                  args, message):
    path = rio.save_npz(tmp_path / "c.npz", _set())
    calls = _count(monkeypatch, "mean_square")
    assert _exit_code(["analyze", str(path), *args]) == 2
    cap = capsys.readouterr()
    assert message in cap.err and cap.err.count("\n") == 1, cap.err
    assert cap.out == "" and "Traceback" not in cap.err
    assert calls == []  # nothing computed


def test_api_validates_before_computing(monkeypatch):
    hs = _set()
    calls = _count(monkeypatch, "mean_square")
    with pytest.raises(ValueError, match="combination eta=0.1 batch=99"):
        sweep_cli.analyze(hs, etas=[0.1, 0.2], batches=[2, 99], forecast=False, lyapunov=False)
    with pytest.raises(ValueError, match="alpha=0.5 > 0 needs a forget set"):
        sweep_cli.analyze(HessianSet.from_factors(np.eye(3)), etas=[0.1], alphas=[0.0, 0.5])
    with pytest.raises(ValueError, match="replicas must be >= 2"):
        sweep_cli.analyze(hs, etas=[0.1], replicas=1)
    with pytest.raises(TypeError, match="hs must be a HessianSet"):
        sweep_cli.analyze(np.eye(3))
    with pytest.raises(ValueError, match="eta needs at least one value"):
        sweep_cli.analyze(hs, etas=[])
    with pytest.raises(ValueError, match="too large to analyse"):
        sweep_cli.analyze(HessianSet.from_factors(1e100 * np.eye(3)), etas=[0.1])
    assert calls == []


# ====================================================================== shared computation
def test_one_rate_and_one_critical_eta_per_combination(monkeypatch):
    hs = _set()
    ms = _count(monkeypatch, "mean_square")
    ce = _count(monkeypatch, "critical_eta")
    rep = sweep_cli.analyze(hs, etas=[0.05, 0.4], batches=[2], alphas=[0.1],
                            samplings=["without_replacement"], forecast=False, lyapunov=False)
    assert len(rep["results"]) == 2 and rep["complete"]
    assert len(ms) == 2 and len(ce) == 2  # every theorem check shares them
    assert len(rep["results"][0]["theorems"]["checks"]) >= 16
    # the shared values are the library's
    for r in rep["results"][1:]:
        s = r["schedule"]
        sch = Schedule(eta=s["eta"], batch=s["batch"], alpha=0.1, sampling="without_replacement")
        assert r["rate"] == pytest.approx(rmt.mean_square_rate(hs, sch), rel=1e-10)
        assert r["critical"]["eta"] == pytest.approx(rmt.critical_eta(hs, sch), rel=1e-9,
                                                     abs=1e-300)
        assert r["critical"]["alpha"] == pytest.approx(rmt.critical_alpha(hs, sch), rel=1e-8,
                                                       abs=1e-300)
        assert r["critical"]["batch"] == rmt.critical_batch(hs, sch)
        rows = {row["name"]: row for row in r["theorems"]["checks"]}
        from theory import get_theorem

        for name in ("unlearning-retain-noise", "noise-operator-divergence", "dexter-thm1"):
            direct = get_theorem(name).check(hs, sch)
            assert rows[name]["applies"] == direct.applies
            assert rows[name]["reason"] == direct.reason
            assert rows[name]["status"] == get_theorem(name).status


def test_blas_threads_are_capped_while_computing(monkeypatch):
    from threadpoolctl import threadpool_info

    from rmt.meansquare import blas_threads

    seen = []
    orig = rmt.mean_square

    def spy(*a, **k):
        seen.append([lib["num_threads"] for lib in threadpool_info()
                     if lib["user_api"] == "blas"])
        return orig(*a, **k)

    monkeypatch.setattr(rmt, "mean_square", spy)
    sweep_cli.analyze(_set(), etas=[0.1], forecast=False, lyapunov=False, theorems=False)
    assert seen and all(n == blas_threads() for libs in seen for n in libs)


# ====================================================================== partial results, streaming
def _failing_second(monkeypatch):
    orig = rmt.mean_square
    state = {"n": 0}

    def flaky(*a, **k):
        state["n"] += 1
        if state["n"] == 2:
            raise RuntimeError("simulated solver failure")
        return orig(*a, **k)

    monkeypatch.setattr(rmt, "mean_square", flaky)


def test_a_failing_combination_keeps_the_finished_ones(tmp_path, capsys, monkeypatch):
    path = rio.save_npz(tmp_path / "c.npz", _set())
    base = ["analyze", str(path), "--eta", "0.05", "0.1", "0.2", "--batch", "2", "--no-forecast",
            "--no-lyapunov", "--no-theorems"]
    _failing_second(monkeypatch)
    assert main(base + ["--json"]) == sweep_cli.EXIT_PARTIAL
    cap = capsys.readouterr()
    rep = json.loads(cap.out)
    assert [("error" in r) for r in rep["results"]] == [False, True, False]
    assert "simulated solver failure" in rep["results"][1]["error"]
    assert rep["complete"] is False and rep["results"][0]["rate"] > 0
    assert cap.err.count("\n") == 1 and "1 of 3 combination(s) failed" in cap.err

    _failing_second(monkeypatch)
    assert main(base + ["--jsonl"]) == sweep_cli.EXIT_PARTIAL
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["type"] for x in lines] == ["header", "result", "result", "result", "summary"]
    assert lines[-1]["errors"] == 1 and lines[-1]["finished"] == 3
    assert lines[0]["provenance"]["rmt_version"] == rmt.__version__

    _failing_second(monkeypatch)
    assert main(base) == sweep_cli.EXIT_PARTIAL
    out = capsys.readouterr().out
    assert "[1/3]" in out and "ERROR: RuntimeError: simulated solver failure" in out
    assert out.index("[1/3]") < out.index("[2/3]") < out.index("[3/3]")


def test_interrupt_writes_the_finished_combinations(tmp_path, capsys, monkeypatch):
    path = rio.save_npz(tmp_path / "c.npz", _set())
    orig = rmt.critical_batch
    state = {"n": 0}

    def interrupt(*a, **k):
        state["n"] += 1
        if state["n"] == 2:
            raise KeyboardInterrupt
        return orig(*a, **k)

    monkeypatch.setattr(rmt, "critical_batch", interrupt)
    assert main(["analyze", str(path), "--eta", "0.05", "0.1", "--no-forecast", "--no-lyapunov",
                 "--no-theorems", "--json"]) == 130
    cap = capsys.readouterr()
    rep = json.loads(cap.out)
    assert len(rep["results"]) == 1 and rep["interrupted"] and not rep["complete"]
    assert "interrupted after 1 of 2" in cap.err


# ====================================================================== the report
def test_json_report_records_provenance_and_matches_the_library(tmp_path, capsys):
    from simulations.provenance import git_commit

    hs = _set(gradients=False)
    path = rio.save_npz(tmp_path / "c.npz", hs, loss="squared")
    assert main(["analyze", str(path), "--eta", "0.05", "--batch", "2", "--sampling",
                 "without_replacement", "--no-forecast", "--no-lyapunov", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["provenance"]["rmt_version"] == rmt.__version__
    assert rep["provenance"]["commit"] == git_commit()
    assert rep["input"] == {"format_version": 1, "loss": "squared", "layout": "v1",
                            "keys": ["forget_factors", "format_version", "loss", "retain_factors"]}
    assert rep["sign_convention"] == rmt.verdict.SIGN_CONVENTION
    c = rmt.coherence(hs)
    assert rep["coherence"]["sigma"] == pytest.approx(c.sigma, rel=1e-12)
    assert rep["hessians"]["span_dim"] == hs.span_dim
    (r,) = rep["results"]
    sch = Schedule(eta=0.05, batch=2, alpha=0.1, sampling="without_replacement")
    res = rmt.mean_square(hs, sch)
    assert r["rate"] == pytest.approx(res.rate, rel=1e-10)
    assert r["verdict"] == res.verdict and r["forgets"] == res.forgets
    assert r["notion"] == rmt.verdict.MEAN_SQUARE
    th = {row["name"]: row for row in r["theorems"]["checks"]}
    # a Bernoulli-only statement names the failed hypothesis and where the scheme is covered
    assert th["dexter-thm1"]["applies"] is False
    assert "Bernoulli sampling (got sampling='without_replacement')" in th["dexter-thm1"]["reason"]
    assert "unlearning-retain-noise" in th["dexter-thm1"]["reason"]
    assert {row["status"] for row in th.values()} <= {"proven", "conjecture"}


class _FakeForecast:
    """Stands in for rmt.forecast's result: the CLI must print what the library returns."""

    outcome, forgets, verdict, notion = "displaced", True, "diverges (forgets)", "almost-sure"
    reason, steps, radius, leave_probability = "simulated reason", 60, 1.5, 0.75
    mean_square_leaves, almost_sure_leaves, notions_disagree, null_drift = True, True, False, 0.0
    horizon_displacement, horizon_median_distance, start_norm = 0.1, 0.2, 0.15
    scale, scale_rule, cost = 0.15, "simulated ball", None

    class stationary:
        exists, displacement = True, 0.25

    def summary(self):
        return "simulated summary"


def test_forecast_is_the_headline_and_notions_are_compared(tmp_path, capsys, monkeypatch):
    import simulations.sweep as sweep_mod

    hs = _set(seed=4)
    path = rio.save_npz(tmp_path / "c.npz", hs)
    seen = {}

    def fake_forecast(dyn, steps, **kw):
        seen.update(steps=steps, **kw)
        return _FakeForecast()

    class _Lyap:  # λ₁ < 0 by many standard errors while ρ(T) > 1: the notions disagree
        exponent, stderr = -0.5, 0.001

    monkeypatch.setattr(rmt, "forecast", fake_forecast)
    monkeypatch.setattr(sweep_mod, "resolve_lyapunov", lambda: (lambda *a, **k: _Lyap()))
    assert main(["analyze", str(path), "--eta", "0.9", "--batch", "1", "--steps", "60",
                 "--forecast-replicas", "16", "--seed", "3", "--no-theorems"]) == 0
    out = capsys.readouterr().out
    assert seen["steps"] == 60 and seen["replicas"] == 16 and seen["seed"] == 3
    sch = Schedule(eta=0.9, batch=1, alpha=0.1)
    assert rmt.mean_square_rate(hs, sch) > 1  # the premise of the disagreement
    head = [ln for ln in out.splitlines() if "FORECAST" in ln]
    assert head == ["    FORECAST (60 steps): DISPLACED -> diverges (forgets) "
                    "[almost-sure; simulated reason]"]
    assert out.index("FORECAST") < out.index("rho(T) =") < out.index("critical eta* =")
    assert "Lyapunov exponent (almost-sure) = -0.5" in out
    assert "! the notions disagree: mean square diverges" in out


@pytest.mark.slow
def test_real_forecast_and_lyapunov_end_to_end(tmp_path, capsys):
    hs = _set(seed=4)
    path = rio.save_npz(tmp_path / "c.npz", hs)
    assert main(["analyze", str(path), "--eta", "0.3", "--batch", "2", "--steps", "60",
                 "--forecast-replicas", "16", "--lyapunov-steps", "200", "--replicas", "4",
                 "--json"]) == 0
    (r,) = json.loads(capsys.readouterr().out)["results"]
    sch = Schedule(eta=0.3, batch=2, alpha=0.1)
    fc = rmt.forecast(hs, sch, 60, replicas=16, seed=0)
    assert r["forecast"]["outcome"] == fc.outcome and r["forecast"]["reason"] == fc.reason
    ly = rmt.lyapunov(hs, sch, steps=200, replicas=4, seed=0)
    assert r["lyapunov"]["exponent"] == pytest.approx(ly.exponent, rel=1e-12)
    assert r["notions"]["mean_square_forgets"] == (r["rate"] > 1)


def test_notion_disagreement_is_flagged():
    # ρ(T) > 1 while a typical run returns (λ₁ < 0 by many standard errors): flagged
    out = sweep_cli._notions(1.2, (-0.05, 0.001))
    assert out["disagree"] and out["mean_square_forgets"] and out["almost_sure_forgets"] is False
    assert "rare large runs" in out["note"]
    assert not sweep_cli._notions(1.2, (0.05, 0.001))["disagree"]
    undecided = sweep_cli._notions(1.2, (-0.001, 0.001))
    assert undecided["almost_sure_forgets"] is None and not undecided["disagree"]
    assert sweep_cli._notions(0.9, None)["almost_sure_forgets"] is None


def test_time_budget_reaches_every_exact_computation(tmp_path, capsys, monkeypatch):
    path = rio.save_npz(tmp_path / "c.npz", _set())
    seen = {}
    for name in ("mean_square", "critical_eta", "critical_alpha", "critical_batch"):
        orig = getattr(rmt, name)

        def spy(*a, _orig=orig, _name=name, **k):
            seen[_name] = k.get("time_budget")
            return _orig(*a, **k)

        monkeypatch.setattr(rmt, name, spy)
    assert main(["analyze", str(path), "--eta", "0.1", "--time-budget", "7.5", "--no-forecast",
                 "--no-lyapunov", "--no-theorems", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert seen == {"mean_square": 7.5, "critical_eta": 7.5, "critical_alpha": 7.5,
                    "critical_batch": 7.5}
    assert rep["settings"]["time_budget"] == 7.5


def test_json_forecast_carries_ball_horizon_and_cost_validity(tmp_path, capsys):
    # the report's JSON says how the ball was set, how far the model got within the horizon and
    # whether the second-order cost is inside its validity range — the same numbers as the API
    hs = _set(seed=4)
    path = rio.save_npz(tmp_path / "c.npz", hs)
    assert main(["analyze", str(path), "--eta", "0.3", "--batch", "2", "--steps", "40",
                 "--forecast-replicas", "8", "--no-lyapunov", "--no-theorems", "--json"]) == 0
    (r,) = json.loads(capsys.readouterr().out)["results"]
    fc = rmt.forecast(hs, Schedule(eta=0.3, batch=2, alpha=0.1), 40, replicas=8, seed=0)
    f = r["forecast"]
    assert f["scale_rule"] == fc.scale_rule and "radius" in f["scale_rule"]
    assert f["scale"] == pytest.approx(fc.scale, rel=1e-12)
    assert f["horizon_displacement"] == pytest.approx(fc.horizon_displacement, rel=1e-12)
    assert f["horizon_median_distance"] == pytest.approx(fc.horizon_median_distance, rel=1e-12)
    assert f["cost"]["valid"] is bool(fc.cost.valid)
    assert f["cost"]["rms_distance"] == pytest.approx(fc.cost.rms_distance, rel=1e-12)
    assert ("INVALID" in f["cost"]["note"]) is (not fc.cost.valid)
