"""rmt.stationarity: the stationarity number of w* and the check at the entry of every bridge."""

from __future__ import annotations

import inspect
import warnings

import numpy as np
import pytest

import rmt
from rmt import models as M
from rmt import stationarity as st
from rmt.stationarity import NotStationaryWarning


def test_the_number_is_gradient_over_curvature_times_norm():
    rep = st.stationarity(np.array([3e-4, 4e-4]), 2.0, 5.0)
    assert rep.value == pytest.approx(5e-4 / 10.0)
    assert rep.gradient_norm == pytest.approx(5e-4) and rep.scale == 10.0
    assert rep.stationary and rep.threshold == st.STATIONARITY_THRESHOLD
    assert "s = 5e-05" in str(rep)
    assert st.stationarity(np.zeros(3), 0.0, 0.0).value == 0.0
    assert st.stationarity(np.ones(3), 0.0, 1.0).value == np.inf
    # scale-free: L → cL, w → aw
    a = st.stationarity(np.array([1e-3, 0.0]), 0.5, 2.0).value
    assert st.stationarity(np.array([7e-3, 0.0]), 3.5, 2.0).value == pytest.approx(a)
    with pytest.raises(ValueError, match="curvature"):
        st.stationarity(np.ones(2), -1.0, 1.0)
    with pytest.raises(ValueError, match="threshold"):
        st.stationarity(np.ones(2), 1.0, 1.0, threshold=0.0)


def test_check_warns_with_the_number_above_the_threshold():
    with pytest.warns(NotStationaryWarning, match=r"s = 0\.05 .*threshold 0\.001") as rec:
        rep = st.check_stationarity(np.array([0.1]), 1.0, 2.0, source="mine")
    assert rec[0].filename == __file__ and not rep.stationary and rep.source == "mine"
    assert issubclass(NotStationaryWarning, UserWarning)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert st.check_stationarity(np.array([1e-6]), 1.0, 2.0).stationary
        assert st.check_stationarity(np.array([0.1]), 1.0, 2.0, threshold=1.0).stationary


@pytest.mark.parametrize("d,n,k", [(6, 4, 1), (5, 9, 2), (2100, 3, 2)])
def test_curvature_scale_is_the_top_eigenvalue(d, n, k):
    rng = np.random.default_rng(d)
    F = rng.normal(size=(n, d, k)) if k > 1 else rng.normal(size=(n, d))
    Ff = F if k > 1 else F[:, :, None]
    M_ = np.einsum("nak,nbk->ab", Ff, Ff) / n
    c = np.abs(rng.normal(size=d))
    Q = rng.normal(size=(d, 2))
    for shared, C in [(None, 0.0), (0.3, 0.3 * np.eye(d)), (c, np.diag(c)), (Q, Q @ Q.T)]:
        want = np.linalg.eigvalsh(M_ + C)[-1]
        assert st.curvature_scale(F, shared) == pytest.approx(want, rel=1e-6)


def test_from_factors_checks_the_mean_gradient_without_w():
    rng = np.random.default_rng(1)
    F = rng.normal(size=(12, 5))
    g = rng.normal(size=(12, 5))
    with pytest.warns(NotStationaryWarning, match="HessianSet.from_factors") as rec:
        hs = rmt.HessianSet.from_factors(F[:9], F[9:], retain_gradients=g[:9],
                                         forget_gradients=g[9:])
    assert rec[0].filename == __file__
    rep = hs.stationarity
    gbar = g.mean(0)
    ref = max(np.sqrt((g ** 2).sum(1).mean()), np.sqrt((F ** 2).sum(1).mean()))
    assert rep.value == pytest.approx(np.linalg.norm(gbar) / ref)
    assert "w* unknown" in rep.reference and rep.w_norm is None
    # gradients that sum to zero over both sets: stationary, no warning
    g0 = g - gbar
    with warnings.catch_warnings():
        warnings.simplefilter("error", NotStationaryWarning)
        hs0 = rmt.HessianSet.from_factors(F[:9], F[9:], retain_gradients=g0[:9],
                                          forget_gradients=g0[9:], shared=0.1)
    assert hs0.stationarity.stationary and hs0.stationarity.value < 1e-14
    # without gradients: nothing to check
    assert rmt.HessianSet.from_factors(F).stationarity is None
    # a bridge defers the check
    with warnings.catch_warnings():
        warnings.simplefilter("error", NotStationaryWarning)
        with st._deferred():
            hs1 = rmt.HessianSet.from_factors(F, retain_gradients=g)
    assert not hs1.stationarity.stationary


def test_set_stationarity_with_w_and_an_inferred_decay():
    rng = np.random.default_rng(2)
    F = rng.normal(size=(20, 4))
    w = rng.normal(size=4)
    lam = 0.3
    g = rng.normal(size=(20, 4))
    g = g - g.mean(0) - lam * w  # data gradients of a fit with weight decay λ: ḡ = −λw
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotStationaryWarning)
        hs = rmt.HessianSet.from_factors(F, retain_gradients=g)
    plain = st.set_stationarity(hs, w)
    assert not plain.stationary  # the data gradient alone is not zero
    kappa = np.linalg.eigvalsh(F.T @ F / 20)[-1]
    assert plain.value == pytest.approx(lam * np.linalg.norm(w) / (kappa * np.linalg.norm(w)))
    inferred = st.set_stationarity(hs, w, infer_decay=True)
    assert inferred.stationary and inferred.weight_decay == pytest.approx(lam)
    assert inferred.curvature == pytest.approx(kappa + lam)
    with pytest.raises(ValueError, match="needs per-sample gradients"):
        st.set_stationarity(rmt.HessianSet.from_factors(F), w)
    with pytest.raises(TypeError, match="must be a HessianSet"):
        st.set_stationarity(F, w)


def test_models_bridge_accepts_a_decayed_fit_and_flags_a_stopped_one():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(60, 4))
    y = np.where(X @ [1.0, -1.0, 0.5, 0.0] + 0.5 * rng.normal(size=60) > 0, 1.0, -1.0)
    model = M.LogisticRegression(4)
    tr = M.train(model, X, y, "logistic", weight_decay=0.05, tol=1e-10)
    with warnings.catch_warnings():
        warnings.simplefilter("error", NotStationaryWarning)
        hs = M.hessian_set(model, tr.w, X[:50], y[:50], X[50:], y[50:], "logistic")
    rep = hs.stationarity
    assert rep.stationary and rep.weight_decay == pytest.approx(0.05, rel=1e-4)
    assert rep.source == "rmt.models.hessian_set"
    w_bad = tr.w + 0.5
    with pytest.warns(NotStationaryWarning, match="rmt.models.hessian_set") as rec:
        bad = M.hessian_set(model, w_bad, X[:50], y[:50], X[50:], y[50:], "logistic")
    assert rec[0].filename == __file__ and bad.stationarity.value > 1e-2


def test_public_functions_declare_their_constraints():
    for name in st.__all__:
        fn = getattr(st, name)
        if inspect.isfunction(fn):
            table = getattr(fn, "parameter_constraints", None)
            assert table is not None, name
            assert set(table) == set(inspect.signature(fn).parameters), name


def test_gradients_below_roundoff_are_exact_zeros_in_the_bridges():
    """Rule: g_i := 0 iff ‖g_i‖ ≤ τ(d)·G, G = max_j max(‖g_j‖, ‖F_j‖·max(1, ‖F_j‖‖w*‖)),
    τ(d) = 10·√d·eps."""
    from rmt.span import span_tolerance

    F = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    tau = span_tolerance(2)
    g = np.array([[0.5, 0.0], [0.0, 0.9 * tau * 2.0], [1.1 * tau * 2.0, 0.0]])
    (out,), k, note = st._zero_roundoff([g], [F], np.zeros(2))  # G = max(‖F_j‖) = 2
    assert k == 1 and np.all(out[1] == 0) and out[2, 0] == g[2, 0] and "set to exactly 0" in note
    assert out is not g and g[1, 1] != 0  # the input is not modified
    (same,), k0, _ = st._zero_roundoff([np.zeros((3, 2))], [F], np.zeros(2))
    (big,), k2, _ = st._zero_roundoff([g], [F], np.array([10.0, 0.0]))  # G = 2·max(1, 20) = 40
    assert k2 == 2 and not np.any(big[1:])
    assert k0 == 3 and not np.any(same)
    # an interpolating least-squares fit: every residual is round-off, every gradient exactly 0
    rng = np.random.default_rng(4)
    X = rng.normal(size=(30, 3))
    model = M.LinearRegression(3)
    y = X @ [1.0, -2.0, 0.5] + 3.0
    w = M.train(model, X, y, "squared", tol=1e-12).w
    hs = M.hessian_set(model, w, X[:25], y[:25], X[25:], y[25:], "squared")
    raw = M.loss_gradients(model, w, X, y, "squared")
    assert np.any(raw != 0)  # round-off residuals, not zeros, before the rule
    assert not np.any(hs.gradients("retain")) and not np.any(hs.gradients("forget"))
    assert hs.stationarity.zeroed == 30 and "below round-off" in hs.stationarity.note
    sch = rmt.Schedule(eta=0.1, batch=5, alpha=0.1, forget_batch=2)
    assert rmt.Dynamics(hs, sch).q == 0  # no noise drift directions outside the span
    # a genuine (non-interpolating) fit keeps every gradient
    y2 = y + rng.normal(size=30)
    tr = M.train(model, X, y2, "squared", tol=1e-12)
    hs2 = M.hessian_set(model, tr.w, X[:25], y2[:25], X[25:], y2[25:], "squared")
    assert hs2.stationarity.zeroed == 0
