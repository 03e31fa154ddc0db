"""The regular-splitting solver for ρ(T) on real-curvature-like sets (THEORY §3).

Near-1 cases: rank-one factors whose curvatures spread geometrically from 1 down to 1e-6, so T
has a cluster of eigenvalues just below 1 (the tiny-curvature directions). Compared against the
eigenvalues of the dense r²×r² matrix of T.
"""

import warnings

import numpy as np
import pytest

import rmt
from rmt import HessianSet, Schedule
from rmt.meansquare import blas_threads, mean_square_stable


def near_one(r, *, eta=0.2, batch=8, sampling="bernoulli", schedule="summed", alpha=0.0,
             lo=1e-6, seed=0):
    """Rank-one set with curvatures 1 … ``lo`` (geometric), mostly along orthogonal directions."""
    rng = np.random.default_rng(seed)
    U = np.linalg.qr(rng.standard_normal((r, r)))[0]
    scales = np.sqrt(np.geomspace(1.0, lo, r))
    G = np.empty((r, r))
    for i in range(r):
        v = U[:, i] + 0.1 * rng.standard_normal(r) / np.sqrt(r)
        G[i] = scales[i] * v / np.linalg.norm(v)
    G *= np.sqrt(r)
    F = G[rng.choice(r, r // 2, replace=False)] * 0.5 if alpha > 0 else None
    hs = HessianSet.from_factors(G, F)
    kw = dict(forget_batch=2) if alpha > 0 else {}
    return hs, Schedule(eta, batch, alpha=alpha, sampling=sampling, schedule=schedule, **kw)


def dense_rate(hs, sch):
    op = rmt.MeanSquareOperator(hs, sch)
    return float(np.max(np.abs(np.linalg.eigvals(op.matrix()))))


CASES = [
    (12, dict()),
    (12, dict(sampling="with_replacement", batch=2)),
    (20, dict(eta=0.5)),
    (20, dict(schedule="alternating", alpha=0.2, sampling="without_replacement")),
    (30, dict()),
    (20, dict(eta=1.0, batch=2)),  # strongly unstable: ρ ≫ 1, dominated by large curvature
]


@pytest.mark.parametrize("r,kw", CASES)
def test_splitting_matches_dense_eigenvalues(r, kw):
    hs, sch = near_one(r, **kw)
    exact = dense_rate(hs, sch)
    res = rmt.mean_square(hs, sch, method="splitting")
    assert res.method == "splitting" and res.converged
    assert res.rate == pytest.approx(exact, rel=1e-10)
    lo, hi = res.bounds
    # the certified bracket contains the dense value (up to its round-off) and is tight
    assert lo <= exact * (1 + 1e-13) and exact <= hi * (1 + 1e-13)
    assert hi - lo <= 1e-9 * exact
    # the eigenmatrix is the PSD Perron eigenmatrix: T(X) = ρX
    X = res.eigenmatrix
    op = rmt.MeanSquareOperator(hs, sch)
    np.testing.assert_allclose(op.apply(X), res.rate * X, atol=1e-8 * np.abs(X).max())
    assert np.linalg.eigvalsh(X)[0] >= -1e-8


def test_near_one_cluster_is_resolved():
    # the top gap is ~1e-7: ρ = 1 − 3.9e-7 with the next eigenvalues within 1e-7 of it
    hs, sch = near_one(20)
    op = rmt.MeanSquareOperator(hs, sch)
    vals = np.sort(np.abs(np.linalg.eigvals(op.matrix())))[::-1]
    assert 0 < 1 - vals[0] < 1e-6 and vals[0] - vals[1] < 1e-6
    res = rmt.mean_square(hs, sch)  # auto, summed, r ≤ SYM_DENSE_MAX_SPAN → eigh on Sym_r
    assert res.method == "dense" and res.converged and res.decided
    assert 1 - res.rate == pytest.approx(1 - vals[0], rel=1e-6)
    assert res.bounds[1] < 1.0  # certified: the model resists
    assert not res.forgets


def test_sign_test_agrees_with_dense():
    for kw, stable in [(dict(), True), (dict(eta=1.0, batch=2), False)]:
        hs, sch = near_one(12, **kw)
        assert (dense_rate(hs, sch) <= 1.0) is stable
        assert mean_square_stable(hs, sch) is stable


def test_time_budget_returns_the_certified_bracket():
    hs, sch = near_one(30)
    exact = dense_rate(hs, sch)
    with pytest.warns(RuntimeWarning, match="time budget"):
        res = rmt.mean_square(hs, sch, method="splitting", time_budget=1e-9)
    assert not res.converged
    lo, hi = res.bounds
    assert lo <= exact <= hi or (lo <= exact and not np.isfinite(hi))


def test_horizon_reports_neutral():
    hs, sch = near_one(20)  # ρ = 1 − 3.9e-7
    res = rmt.mean_square(hs, sch, horizon=1000)
    assert res.neutral and "neutral within the horizon" in res.verdict
    assert res.bounds[0] >= 1 - 1e-2 / 1000 and res.bounds[1] <= 1 + 1e-2 / 1000
    far = rmt.mean_square(hs, sch, horizon=10**9)
    assert not far.neutral and far.verdict == rmt.mean_square(hs, sch).verdict


def test_no_noise_rate_is_the_mean_rate():
    # B = n without replacement: T = E[J]⊗E[J] exactly, ρ(T) = ρ(E[J])²
    hs, sch = near_one(12, batch=12, sampling="without_replacement")
    res = rmt.mean_square(hs, sch, method="splitting")
    A = rmt.MeanSquareOperator(hs, sch).mean_map
    assert res.rate == pytest.approx(np.max(np.abs(np.linalg.eigvals(A))) ** 2, rel=1e-12)


def test_blas_threads_env_override(monkeypatch):
    monkeypatch.setenv("RMT_BLAS_THREADS", "1")
    assert blas_threads() == 1
    monkeypatch.delenv("RMT_BLAS_THREADS")
    import os
    assert 1 <= blas_threads() <= (os.cpu_count() or 1)
    monkeypatch.setenv("RMT_BLAS_THREADS", "many")
    with pytest.raises(ValueError, match="RMT_BLAS_THREADS"):
        blas_threads()
