"""The coherence study (``rmt reproduce --only coherence-study``): predictors against independent
computations, the rank statistics against scipy, resumability, the generated page, bad names.

Sign convention: :data:`rmt.verdict.SIGN_CONVENTION` ("diverges" = forgets).
"""

import json
import math
import warnings

import numpy as np
import pytest
import scipy.stats as ss

from simulations import reproduce as rep
from simulations.coherence_study import data as cdata
from simulations.coherence_study import experiment as cexp
from simulations.coherence_study import models as cmodels
from simulations.coherence_study import report as creport
from simulations.coherence_study.predictors import (bootstrap_spearman, curvature_predictors,
                                                    pooled_spearman, spearman, tangent_loo)
from simulations.sweep import sweep_status

TINY = dict(n_train=40, n_forget=4, seeds=[0], eta=[0.2], alpha=[0.1, 0.4], batch=[4], runs=1,
            steps=20, horizon_grid=4)
SERIAL = {"executor": "serial", "progress": False}


# ----------------------------------------------------------------------------- predictors
def _tiny_hessian_set():
    from rmt import models as M

    data = cdata.load_task("iris", 0, 40, 4)
    model, loss, X, _ = cmodels.build_model("mlp-s", data, 0)
    w = M.train(model, X, data.y, loss, seed=0, tol=1e-8, maxiter=5000, polish=0).w
    retain, forget = np.arange(6, 40), np.arange(6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hs = M.hessian_set(model, w, X[retain], data.y[retain], X[forget], data.y[forget], loss)
    J = model.jacobian(w, X)[:, 0, :]
    return hs, J[retain], J[forget], J, data


def test_curvature_predictors_match_a_dense_computation():
    hs, JR, JF, _, _ = _tiny_hessian_set()
    pred = curvature_predictors(hs)
    # squared loss: H_i = J_i J_iᵀ (dense d×d), S_ij = √tr(H_i H_j), σ = λ_max(S)/max λ_max(H_i)
    H = [np.outer(g, g) for g in np.concatenate([JR, JF])]
    n_r = len(JR)
    S = np.array([[math.sqrt(max(np.trace(a @ b), 0.0)) for b in H] for a in H])
    lam = np.array([np.linalg.eigvalsh(h)[-1] for h in H])

    def sigma(idx):
        return np.linalg.eigvalsh(S[np.ix_(idx, idx)])[-1] / lam[idx].max()

    R, F = np.arange(n_r), np.arange(n_r, len(H))
    assert pred["sigma_r"] == pytest.approx(sigma(R), rel=1e-8)
    assert pred["sigma_f"] == pytest.approx(sigma(F), rel=1e-8)
    cross = np.linalg.norm(S[np.ix_(R, F)], 2) / math.sqrt(lam[R].max() * lam[F].max())
    assert pred["sigma_cross"] == pytest.approx(cross, rel=1e-8)
    lr = np.linalg.eigvalsh(sum(H[i] for i in R) / len(R))[-1]
    lf = np.linalg.eigvalsh(sum(H[i] for i in F) / len(F))[-1]
    assert pred["lam_ratio"] == pytest.approx(lf / lr, rel=1e-8)


def test_tangent_loo_matches_refitting_without_each_sample():
    _, _, _, J, data = _tiny_hessian_set()
    margin, loss = tangent_loo(J, data.y, "binary")
    K = J @ J.T
    n = len(K)
    lam = 1e-3 * np.trace(K) / n
    for i in range(0, n, 7):
        keep = np.delete(np.arange(n), i)
        coef = np.linalg.solve(K[np.ix_(keep, keep)] + lam * np.eye(n - 1), data.y[keep])
        pred = K[i, keep] @ coef  # kernel ridge refitted without sample i
        assert margin[i] == pytest.approx(data.y[i] * pred, rel=1e-6, abs=1e-9)
        assert loss[i] == pytest.approx(0.5 * (data.y[i] - pred) ** 2, rel=1e-6, abs=1e-12)
    m_reg, _ = tangent_loo(J, data.y, "regression")
    assert np.all(m_reg <= 0)


# ----------------------------------------------------------------------------- statistics
def test_spearman_and_bootstrap_against_scipy():
    rng = np.random.default_rng(3)
    x = rng.integers(0, 5, 16).astype(float)  # ties
    y = x + rng.standard_normal(16)
    assert spearman(x, y) == pytest.approx(ss.spearmanr(x, y).statistic, abs=1e-12)
    assert math.isnan(spearman(np.ones(5), np.arange(5.0)))
    ci = bootstrap_spearman(x, y, resamples=300, seed=7)
    idx = np.random.default_rng(7).integers(0, 16, size=(300, 16))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant resamples: scipy warns and returns NaN
        boot = np.array([ss.spearmanr(x[i], y[i]).statistic for i in idx])
    boot = boot[np.isfinite(boot)]
    assert ci["n"] == 16 and ci["valid"] == boot.size
    assert ci["lo"] == pytest.approx(np.quantile(boot, 0.025), abs=1e-12)
    assert ci["hi"] == pytest.approx(np.quantile(boot, 0.975), abs=1e-12)
    assert ci["lo"] <= ci["rho"] <= ci["hi"]


def test_pooled_spearman_ranks_within_groups():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(12)
    y = x + 0.5 * rng.standard_normal(12)
    one = pooled_spearman([(x, y)], resamples=200)
    assert one["rho"] == pytest.approx(spearman(x, y), abs=1e-12) and one["groups"] == 1
    # a monotone rescaling of one group (another model's units) changes nothing
    two = pooled_spearman([(x, y), (x, y)], resamples=200)
    scaled = pooled_spearman([(x, y), (1e3 * x + 5, np.exp(y))], resamples=200)
    assert two["rho"] == pytest.approx(scaled["rho"], abs=1e-12) == pytest.approx(one["rho"])
    # a group with a constant outcome takes no part
    const = pooled_spearman([(x, y), (x, np.ones(12))], resamples=200)
    assert const["groups"] == 1 and const["n"] == 12
    assert const["rho"] == pytest.approx(one["rho"], abs=1e-12)
    assert math.isnan(pooled_spearman([(x, np.ones(12))])["rho"])


def test_verdicts():
    assert creport.verdict({"rho": -0.5, "lo": -0.8, "hi": -0.1}, -1) == "holds"
    assert creport.verdict({"rho": 0.5, "lo": 0.1, "hi": 0.8}, -1) == "reversed"
    assert creport.verdict({"rho": 0.1, "lo": -0.3, "hi": 0.5}, -1) == "inconclusive"
    assert creport.verdict({"rho": math.nan, "lo": math.nan, "hi": math.nan}, -1) == \
        "no variation"
    assert creport.verdict({"rho": 0.5, "lo": 0.1, "hi": 0.8}, +1) == "holds"


# ----------------------------------------------------------------------------- bad input
def test_unknown_names_raise_value_errors_naming_the_argument(tmp_path):
    for kw, name in ((dict(datasets=["nope"]), "datasets"), (dict(models=["nope"]), "models"),
                     (dict(kinds=["nope"]), "kinds"), (dict(sizes={"nope": 1}), "sizes")):
        with pytest.raises(ValueError, match=name):
            cexp.run_study(tmp_path / "o", run_kw=SERIAL, **kw)
    assert not (tmp_path / "o").exists()
    with pytest.raises(ValueError, match="dataset"):
        cdata.load_task("nope", 0, 10, 2)
    with pytest.raises(ValueError, match="model"):
        cmodels.build_model("nope", cdata.load_task("iris", 0, 20, 2), 0)
    with pytest.raises(ValueError, match="cnn"):
        cmodels.build_model("cnn", cdata.load_task("iris", 0, 20, 2), 0)
    with pytest.raises(ValueError, match="kind"):
        cexp.check_kind("nope")
    with pytest.raises(ValueError, match="built-in"):
        cdata.ArrayDataset("digits", np.zeros((4, 2)), np.array([0, 1, 0, 1]))


def test_forget_kinds():
    data = cdata.load_task("wine", 2, 60, 5)
    loo = np.arange(data.n, dtype=float)
    for kind in cexp.FORGET_KINDS:
        R, F = cexp.forget_indices(kind, data, 5, 2, loo)
        assert len(F) == 5 and np.array_equal(np.sort(np.concatenate([R, F])), np.arange(60))
    assert np.array_equal(cexp.forget_indices("relabelled", data, 5, 2, loo)[1], data.flipped)
    assert np.array_equal(cexp.forget_indices("hard", data, 5, 2, loo)[1], np.arange(55, 60))
    F = cexp.forget_indices("class", data, 5, 2, loo)[1]
    assert np.all(cdata.class_of(data)[F] == 1.0)  # even seed: class +1


# ----------------------------------------------------------------------------- resume and page
def test_study_resumes_and_page_regenerates_from_json(tmp_path, monkeypatch):
    out = tmp_path / "out"
    kw = dict(quick=True, run_kw=SERIAL, datasets=["iris"], models=["linear", "mlp-s"],
              kinds=["random", "relabelled"], sizes={**TINY, "seeds": [0, 1]})
    calls = []
    real_unit = cexp.run_unit

    def counting(*a, **k):
        calls.append(a[:4])
        return real_unit(*a, **k)

    monkeypatch.setattr(cexp, "run_unit", counting)
    res = cexp.run_study(out, **kw)
    assert len(calls) == 8 and len(res["rows"]) == 8
    store = out / "sweeps" / "coherence_study"
    assert sweep_status(store).complete
    models_dir = out / "coherence_study" / "models"
    assert len(list(models_dir.glob("*.npz"))) == 4  # one training per (model, seed)
    for r in res["rows"]:
        assert 0.0 <= r["escape"] <= 1.0 and r["sigma_f"] >= 1.0 - 1e-9 and r["runs"] == 2
    # a finished study recomputes nothing
    monkeypatch.setattr(cexp, "run_unit", lambda *a, **k: pytest.fail("recomputed a unit"))
    again = cexp.run_study(out, **kw)
    assert again["rows"] == res["rows"]
    # a killed run: two unit records lost → exactly those two are recomputed, from the cache
    (store / "COMPLETE").unlink()
    lost = sorted(store.glob("cells/*.json"))[:2]
    for p in lost:
        p.unlink()
    calls.clear()
    monkeypatch.setattr(cexp, "run_unit", counting)
    monkeypatch.setattr(cmodels, "_train", lambda *a, **k: pytest.fail("retrained a model"))
    resumed = cexp.run_study(out, **kw)
    assert len(calls) == 2
    assert [{k: v for k, v in r.items() if k not in ("seconds", "cached", "train_seconds")}
            for r in resumed["rows"]] == \
        [{k: v for k, v in r.items() if k not in ("seconds", "cached", "train_seconds")}
         for r in res["rows"]]

    # the page regenerates from the JSON alone, and its numbers are the JSON's
    stored = json.loads((out / "coherence_study" / "coherence_study.json").read_text())
    again = creport.analyse(stored["rows"])
    assert json.dumps(again, sort_keys=True) == json.dumps(stored["analysis"], sort_keys=True)
    page = creport.write_page(stored, tmp_path / "page.md",
                              figure_path=tmp_path / "img" / "fig.png").read_text()
    assert (tmp_path / "img" / "fig.png").stat().st_size > 5000
    assert "![coherence study](img/fig.png)" in page
    c = stored["analysis"]["pooled"]["escape"]["sigma_f"]
    assert creport._ci(c) in page
    for task, g in stored["analysis"]["groups"].items():
        ds, m = task.split("/")
        assert f"| {ds} | {m} | {g['d']} | {g['grad_norm_max']:.1e} |" in page
    assert stored["provenance"]["commit"] in page or stored["provenance"]["commit"] is None
    assert f"rmt {stored['provenance']['rmt_version']}" in page


def test_custom_array_dataset_runs(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((50, 3))
    y = (X[:, 0] + 0.3 * rng.standard_normal(50) > 0).astype(int)
    mine = cdata.ArrayDataset("mine", X, y, description="three Gaussian features")
    res = cexp.run_study(tmp_path / "o", run_kw=SERIAL, datasets=["mine"], models=["linear"],
                         kinds=["random", "relabelled"], custom=[mine], sizes=TINY)
    assert res["datasets"] == {"mine": "three Gaussian features"}
    assert {r["task"] for r in res["rows"]} == {"mine/linear"}


def test_registered_in_reproduce():
    names = list(rep.all_experiments())
    assert "coherence-study" in names and names.index("coherence-study") < names.index("realdata")
    lines = rep._SECTIONS["coherence-study"][1]({"figures": ["coherence_study/x.png"],
                                                 "answer": ["the answer"]})
    assert "![coherence_study/x.png](coherence_study/x.png)" in lines and "* the answer" in lines


@pytest.mark.slow
def test_quick_study_end_to_end(tmp_path):
    out = tmp_path / "out"
    report = rep.reproduce(out, quick=True, executor="processes", progress=False,
                           only=["coherence-study"])
    text = report.read_text()
    assert "Does coherence order forgettability?" in text and "ρ(σ_F, escape fraction)" in text
    res = json.loads((out / "coherence_study" / "coherence_study.json").read_text())
    assert len(res["analysis"]["groups"]) == 33
    assert {r["model"] for r in res["rows"]} == set(cmodels.MODELS)
    assert max(r["d"] for r in res["rows"]) >= 1e4
