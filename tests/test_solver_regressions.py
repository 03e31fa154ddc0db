"""Regressions for the solver review (docs/contract.md §10): each case class the review found,
built from our own instances and held against independent oracles (tests/oracle.py)."""

from __future__ import annotations

import numpy as np
import pytest

import rmt
from oracle import TableOracle
from rmt import HessianSet, Schedule
from rmt import models as M
from rmt.meansquare.splitting import _splitting_rate


@pytest.fixture(scope="module")
def digits_logistic():
    # a real model: logistic regression on digits (3 vs 8), forget = the relabelled samples
    data = M.load_digits_binary((3, 8), n_components=40, max_train=300, flip=6, seed=0)
    model = M.LogisticRegression(data.X_train.shape[1])
    tr = M.train(model, data.X_train, data.y_train, "logistic")
    retain, forget = M.forget_set("relabelled", len(data.y_train), flipped=data.flipped)
    hs = M.hessian_set(model, tr.w, data.X_train[retain], data.y_train[retain],
                       data.X_train[forget], data.y_train[forget], "logistic")
    lam = rmt.mixed_hessian_extremes(hs, 0.0)[1]
    return hs, Schedule(eta=1 / lam, batch=32, alpha=0.2, forget_batch=6,
                        sampling="without_replacement")


def _kron_rate(hs, sch):
    op = rmt.MeanSquareOperator(hs, sch)
    return float(np.max(np.abs(np.linalg.eigvals(op.matrix()))))


def test_splitting_never_reports_rho_of_the_mean_map_as_converged(digits_logistic):
    # the old splitting returned ρ(E[J])² (its pole, 78.2219…) with converged=True while
    # ρ(T) = 78.3481…: a secant step next to the uncertified pole model counted as convergence
    hs, sch = digits_logistic
    exact = _kron_rate(hs, sch)
    op = rmt.MeanSquareOperator(hs, sch)
    pole = float(np.max(np.abs(np.linalg.eigvals(op.mean_map)))) ** 2
    assert exact - pole > 1e-3 * exact  # the two are far apart on this model
    b = _splitting_rate(op)
    assert not (b.converged and abs(1 + b.estimate - exact) > 1e-9 * exact)
    assert 1 + b.lo <= exact * (1 + 1e-12) and exact <= (1 + b.hi) * (1 + 1e-12)
    for method in ("auto", "dense", "splitting", "lanczos", "arpack"):
        res = rmt.mean_square(hs, sch, method=method)
        lo, hi = res.bounds
        assert lo <= exact * (1 + 1e-13) and exact <= hi * (1 + 1e-13), method
        assert res.decided and res.forgets, method
        if res.converged:
            assert abs(res.rate - exact) <= res.tol * exact + 1e-13 * exact, method


def _below(orc, eta):
    rho, allow = orc.rate(eta)
    return rho * (1 + allow) < 1.0


def _above(orc, eta):
    rho, allow = orc.rate(eta)
    return rho * (1 - allow) > 1.0


def _dense_set(seed, d, n_r, n_f):
    rng = np.random.default_rng(seed)
    GR = rng.standard_normal((n_r, d))
    GF = 0.7 * rng.standard_normal((n_f, d))
    HR = np.einsum("ni,nj->nij", GR, GR)
    HF = np.einsum("ni,nj->nij", GF, GF)
    return HR, HF


@pytest.mark.parametrize("seed", range(4))
def test_summed_critical_eta_brackets_the_oracle_crossing(seed):
    HR, HF = _dense_set(seed, 4, 6, 3)
    hs = HessianSet.from_dense(HR, HF)
    sch = Schedule(1.0, 2, alpha=0.05, sampling="without_replacement", forget_batch=1)
    eta = rmt.critical_eta(hs, sch)
    orc = TableOracle(HR, HF, 2, 0.05, "without_replacement", "summed", BF=1)
    if eta == 0.0:
        assert eta.reason and _above(orc, 1e-6 / np.max(np.abs(HR)))
        return
    lo, hi = eta.bounds
    assert lo <= eta <= hi and hi - lo <= 1e-9 * eta
    assert _below(orc, lo * (1 - 1e-9)) and _above(orc, hi * (1 + 1e-9))


@pytest.mark.parametrize("seed", range(4))
def test_summed_critical_alpha_is_certified_by_the_oracle(seed):
    HR, HF = _dense_set(10 + seed, 3, 8, 4)
    HF = HF[:, :, :] * 0.5 + 0.5 * HR[:4]  # forget curvature inside the retain span
    hs = HessianSet.from_dense(HR, HF)
    sch = Schedule(0.02, 3, alpha=0.0, sampling="bernoulli", forget_batch=2)
    a = rmt.critical_alpha(hs, sch)
    if a is None:
        orc = TableOracle(HR, HF, 3, 0.999, "bernoulli", "summed", BF=2)
        assert not _above(orc, 0.02)
        return
    assert a.method == "convex_root" and a > 0
    lo, hi = a.bounds
    assert _below(TableOracle(HR, HF, 3, lo * (1 - 1e-7), "bernoulli", "summed", BF=2), 0.02)
    assert _above(TableOracle(HR, HF, 3, hi * (1 + 1e-7), "bernoulli", "summed", BF=2), 0.02)


def test_summed_stable_set_at_a_large_span_is_the_critical_interval():
    # r = 30 > PEP_MAX_SPAN: the stable set is one interval (convexity, §10.2)
    rng = np.random.default_rng(5)
    d = 30
    R = rng.standard_normal((90, d)) / np.sqrt(d)
    hs = HessianSet.from_factors(R, 0.5 * R[:6])
    sch = Schedule(4.0, 4, alpha=0.05, sampling="without_replacement", forget_batch=2)
    sset = rmt.meansquare.stable_set(hs, sch)
    eta = rmt.critical_eta(hs, sch)
    assert sset == ((0.0, float(eta)),)
    aset = rmt.meansquare.stable_set(hs, sch, parameter="alpha")
    a = rmt.critical_alpha(hs, sch)
    assert aset == ((0.0, 1.0),) if a is None else aset == ((0.0, float(a)),)


def test_result_never_decides_inside_its_allowance():
    # T = I exactly (identical sets at α = ½, full batches): ρ = 1 for every η — undecided,
    # and the closed form says every η is stable (η* = ∞), not 0
    rng = np.random.default_rng(1)
    G = rng.standard_normal((3, 3))
    hs = HessianSet.from_factors(G, G.copy())
    sch = Schedule(0.1, 3, alpha=0.5, sampling="without_replacement")
    assert rmt.critical_eta(hs, sch) == np.inf
    for eta in (0.1, 1.0, 10.0):
        res = rmt.mean_square(hs, sch.replace(eta=eta))
        assert not res.decided and res.verdict.startswith("undecided (ρ within ±")
        assert res.bounds[0] <= 1.0 <= res.bounds[1]
