"""rmt.forecast: finite-horizon verdicts (THEORY §8) on constructed cases with known answers."""

import numpy as np
import pytest

import rmt
from rmt import HessianSet, Schedule
from rmt.forecast import forecast


def _drifting(seed=0, d=6, nr=12, nf=3, null=False, shift=0.0):
    rng = np.random.default_rng(seed)
    FR = rng.standard_normal((nr, d)) / np.sqrt(d)
    FF = rng.standard_normal((nf, d)) / np.sqrt(d)
    if null:
        FR[:, -1] = FF[:, -1] = 0.0
    gR = 0.05 * rng.standard_normal((nr, d))
    gR -= gR.mean(0)  # a minimum of the retain loss: the retain gradients cancel
    gF = 0.05 * rng.standard_normal((nf, d)) + shift
    return HessianSet.from_factors(FR, FF, retain_gradients=gR, forget_gradients=gF)


def test_zero_drift_matches_homogeneous_second_moment_and_is_reproducible():
    rng = np.random.default_rng(1)
    F = rng.standard_normal((10, 4)) / 2
    hs = HessianSet.from_factors(F)
    sch = Schedule(0.4, 2)
    w0 = np.array([0.3, 0.1, -0.2, 0.5])
    f = forecast(hs, sch, 30, start=w0, seed=3, lyapunov=False)
    np.testing.assert_allclose(f.expected_sq_distance,
                               rmt.second_moment(hs, sch, 30, m0=w0).total[1:], rtol=1e-12)
    g = forecast(rmt.Dynamics(hs, sch), 30, start=w0, seed=3, lyapunov=False)
    np.testing.assert_array_equal(f.final_distance, g.final_distance)
    assert f.radius == pytest.approx(10 * np.linalg.norm(w0))


def test_linear_drift_outside_the_span_escapes():
    hs = _drifting(null=True, shift=0.1)  # the forget gradients share a null-space component
    f = forecast(hs, Schedule(0.5, 3, alpha=0.05), 400, seed=0)
    assert f.null_drift > 0
    assert f.outcome == "escapes" and "linear drift" in f.reason and f.forgets


def test_displaced_fixed_point():
    # forget gradients with a common mean pull the model to m∞ ≠ 0 while ρ(T) < 1
    rng = np.random.default_rng(2)
    d = 4
    FR = rng.standard_normal((16, d))
    FF = FR[:4].copy()  # inside the retain span: D ≻ 0 for small α
    gR = 0.01 * rng.standard_normal((16, d))
    gR -= gR.mean(0)
    gF = np.tile(rng.standard_normal(d), (4, 1))
    hs = HessianSet.from_factors(FR, FF, retain_gradients=gR, forget_gradients=gF)
    sch = Schedule(0.05, 8, alpha=0.2, forget_batch=2)
    f = forecast(hs, sch, 3000, seed=1)
    assert f.rate < 1 and f.stationary.exists
    assert f.stationary.displacement > f.radius
    assert f.outcome == "displaced" and "fixed point" in f.reason


def test_returns_when_stable_and_centred():
    hs = _drifting(seed=4, nf=3)
    f = forecast(hs, Schedule(0.2, 6, alpha=0.0), 300, radius=5.0, seed=2)
    assert f.rate < 1 and f.outcome == "returns" and not f.forgets
    assert f.leave_probability == 0.0 and not f.mean_square_leaves


def test_almost_sure_growth_escapes_and_notions_are_reported():
    hs = _drifting(seed=5)
    f = forecast(hs, Schedule(0.5, 4, alpha=0.4, forget_batch=2), 300, seed=0)
    assert f.rate > 1 and f.lyapunov > 0
    assert f.outcome == "escapes" and "almost-sure growth" in f.reason
    assert f.notion == "almost-sure" and f.mean_square_leaves and f.almost_sure_leaves
    g = forecast(hs, Schedule(0.5, 4, alpha=0.4, forget_batch=2), 300, seed=0, notion="mean-square",
                 lyapunov=False)
    assert g.outcome == "escapes" and "mean-square growth" in g.reason


def test_bad_input_is_rejected_before_work():
    hs = _drifting()
    sch = Schedule(0.3, 2, alpha=0.1)
    with pytest.raises(ValueError, match="steps must be >= 1"):
        forecast(hs, sch, 0)
    with pytest.raises(ValueError, match="radius must be > 0"):
        forecast(hs, sch, 10, radius=-1.0)
    with pytest.raises(ValueError, match="notion must be one of"):
        forecast(hs, sch, 10, notion="typical")
    with pytest.raises(ValueError, match="escape_factor must be > 1"):
        forecast(hs, sch, 10, escape_factor=1.0)
    with pytest.raises(ValueError, match=r"start must have shape \(6,\)"):
        forecast(hs, sch, 10, start=np.ones(3))
    with pytest.raises(ValueError, match="replicas must be >= 2"):
        forecast(hs, sch, 10, replicas=1)
    hs0 = HessianSet.from_factors(np.eye(3))
    with pytest.raises(ValueError, match="nothing moves"):
        forecast(hs0, Schedule(0.3, 1), 10, start=np.zeros(3))


def test_horizon_critical_eta_matches_scalar_closed_form():
    # one direction, n samples of curvature λ_i: E‖δ_K‖² = ρ(η)^K ‖δ_0‖² exactly, with
    # ρ(η) = (1 − η m)² + η² c(mean λ² ) (bernoulli, e = 0)
    import scipy.optimize
    lam = np.array([0.5, 1.0, 2.0, 4.0])
    hs = HessianSet.from_factors(np.sqrt(lam)[:, None])
    n, B, K, F = 4, 2, 50, 10.0
    m, q, c = lam.mean(), (lam**2).mean(), (n - B) / (B * n)

    def g(eta):
        return K * np.log((1 - eta * m) ** 2 + eta**2 * c * q) - 2 * np.log(F)

    lo = 2 * m / (m**2 + c * q)  # ρ = 1 here, so g < 0
    expected = scipy.optimize.brentq(g, lo, 10 * lo)
    from rmt.horizon import horizon_critical
    res = horizon_critical(hs, Schedule(0.1, B), "eta", K, start=np.array([1.0]))
    assert res.value == pytest.approx(expected, rel=1e-5)
    assert res.asymptotic == pytest.approx(lo, rel=1e-9)
    assert res.value > res.asymptotic


def test_out_of_span_share_and_asymptotic_alpha_zero():
    from rmt.horizon import horizon_critical, out_of_span_share
    hs = rmt.ensembles.hessian_test(12, 3, forget=4, seed=0)
    share = out_of_span_share(hs)
    assert 0 < share <= 1
    res = horizon_critical(hs, Schedule(0.2, 2, alpha=0.1), "alpha", 100,
                           start=np.ones(hs.dim) / np.sqrt(hs.dim))
    assert res.asymptotic == 0.0 and res.out_of_span_share == pytest.approx(share)
    assert res.value is None or res.value > 0


# ---------------------------------------------------------------------- what forgetting costs
def _linear_regression_case(alpha=0.3, eta_rel=0.4, batch=4):
    from rmt import models as M

    rng = np.random.default_rng(3)
    X = rng.standard_normal((24, 3))
    y = X @ np.array([1.0, -0.5, 0.25]) + 0.3 * rng.standard_normal(24)
    model = M.LinearRegression(3)
    w = M.train(model, X, y, seed=0, tol=1e-10).w
    retain, forget = np.arange(18), np.arange(18, 24)
    hs = M.hessian_set(model, w, X[retain], y[retain], X[forget], y[forget])
    lam = np.linalg.eigvalsh(hs.mean("retain"))[-1]
    sch = rmt.Schedule(eta_rel * 2 / lam, batch, alpha=alpha, sampling="without_replacement",
                       forget_batch=3)
    return M, model, w, X, y, retain, forget, hs, sch


def test_forgetting_cost_matches_exact_quadratic_loss_of_linear_regression():
    """Squared-loss linear regression: the loss is exactly quadratic in w and the unlearning
    update is exactly the affine recursion, so the second-order cost is the exact mean loss
    change; compare with the mean over independent nonlinear runs within 5 standard errors."""
    M, model, w, X, y, retain, forget, hs, sch = _linear_regression_case()
    K = 30
    fc = rmt.forecast(hs, sch, K, replicas=16, seed=0, lyapunov=False)
    run = M.unlearn(model, w, X[retain], y[retain], X[forget], y[forget], schedule=sch,
                    steps=K, seed=list(range(800)))
    f0 = M.per_sample_loss(model.outputs(w, X[forget]), y[forget], "squared").mean()
    r0 = M.per_sample_loss(model.outputs(w, X[retain]), y[retain], "squared").mean()
    for got, losses, base in ((fc.cost.forget_loss_rise, run.forget_loss, f0),
                              (fc.cost.retain_loss_rise, run.retain_loss, r0)):
        rise = losses - base
        se = rise.std(ddof=1) / np.sqrt(rise.size)
        assert abs(got - rise.mean()) <= 5 * se, (got, rise.mean(), se)
    assert fc.cost.forget_loss_rise > 0
    assert 0 <= fc.cost.escape_overlap_retain <= 1 + 1e-12
    assert 0 <= fc.cost.escape_overlap_forget <= 1 + 1e-12
    assert fc.cost.nothing_to_forget is None
    assert "forget loss" in fc.summary()


def test_forgetting_cost_nothing_to_forget_flag_and_fitted_fraction():
    M, model, w, X, y, retain, forget, hs, sch = _linear_regression_case()
    frac = M.fitted_fraction(model, w, X[forget], y[forget])
    f = model.outputs(w, X[forget])[:, 0]
    assert frac == np.mean(np.abs(f - y[forget]) < 0.5 * np.abs(y[forget]))
    fc = rmt.forecast(hs, sch, 5, replicas=4, seed=0, lyapunov=False, forget_fitted=0.2)
    assert fc.cost.nothing_to_forget is True
    fc = rmt.forecast(hs, sch, 5, replicas=4, seed=0, lyapunov=False, forget_fitted=0.9)
    assert fc.cost.nothing_to_forget is False
    with pytest.raises(ValueError, match="forget_fitted"):
        rmt.forecast(hs, sch, 5, replicas=4, seed=0, forget_fitted=1.5)


def test_fitted_fraction_classification():
    from rmt import models as M

    model = M.LogisticRegression(2)
    w = np.array([1.0, 0.0, 0.0])
    X = np.array([[1.0, 0.0], [-1.0, 0.0], [2.0, 1.0], [-3.0, 1.0]])
    assert M.fitted_fraction(model, w, X, np.array([1, -1, -1, 1])) == 0.5
    sm = M.SoftmaxRegression(2, 3)
    W = np.zeros(9)
    W[0] = 1.0  # logit 0 = x_0
    assert M.fitted_fraction(sm, W, X[:2], np.array([0, 2])) == 0.5  # ties: argmax 1


def test_forgetting_cost_with_shared_curvature_equals_dense_representation():
    """λI shared by every sample, carried implicitly vs written into dense per-sample Hessians
    H_i + λI: the same dynamics, so the same predicted loss rises (span 2 of d = 4)."""
    rng = np.random.default_rng(5)
    Fr, Ff = rng.standard_normal((5, 4)) * [1, 1, 0, 0], rng.standard_normal((3, 4)) * [1, 1, 0, 0]
    gr, gf = rng.standard_normal((5, 4)) * 0.1, rng.standard_normal((3, 4)) * 0.1
    lam = 0.3
    shared = HessianSet.from_factors(Fr, Ff, retain_gradients=gr, forget_gradients=gf, shared=lam)
    dense = HessianSet.from_dense(np.einsum("na,nb->nab", Fr, Fr) + lam * np.eye(4),
                                  np.einsum("na,nb->nab", Ff, Ff) + lam * np.eye(4),
                                  retain_gradients=gr, forget_gradients=gf)
    sch = Schedule(0.2, 2, alpha=0.2, sampling="with_replacement", forget_batch=1)
    a = rmt.forecast(shared, sch, 20, replicas=4, seed=0, lyapunov=False).cost
    b = rmt.forecast(dense, sch, 20, replicas=4, seed=0, lyapunov=False).cost
    assert a.forget_loss_rise == pytest.approx(b.forget_loss_rise, rel=1e-9)
    assert a.retain_loss_rise == pytest.approx(b.retain_loss_rise, rel=1e-9)
    assert a.escape_overlap_forget == pytest.approx(b.escape_overlap_forget, rel=1e-8, abs=1e-12)


def test_forecast_reuses_a_given_rate():
    hs = HessianSet.from_factors(np.array([[1.0, 0.0], [0.5, 0.5]]),
                                 retain_gradients=np.array([[0.1, 0.0], [-0.1, 0.0]]))
    sch = Schedule(0.5, 1)
    exact = rmt.forecast(hs, sch, 10, replicas=4, seed=0, lyapunov=False)
    given = rmt.forecast(hs, sch, 10, replicas=4, seed=0, lyapunov=False, rate=exact.rate)
    assert given.rate == exact.rate and given.outcome == exact.outcome
    with pytest.raises(ValueError, match="rate"):
        rmt.forecast(hs, sch, 10, replicas=4, seed=0, rate=float("nan"))


def test_stays_certificate_does_not_overflow_at_fast_growth():
    # regression (found by the coherence study): τ^{K/2} beyond 1e154 made the bound's square
    # raise OverflowError inside horizon_critical; a bound that large proves nothing: False
    import importlib
    F = importlib.import_module("rmt.horizon")
    hs = HessianSet.from_factors(np.ones((2, 1)), retain_gradients=np.array([[0.1], [0.3]]))
    dyn = rmt.Dynamics(hs, Schedule(2.5, 2, sampling="without_replacement"))  # J = 1 − 2.5 = −1.5
    start = (np.eye(1) * 1e-4, np.zeros(1), 0.0)
    assert F._stays_certified(dyn, start, 1000, 1.0) is False  # 1.5^1000 ≈ 1e176
    assert F._stays_certified(dyn, start, 10**6, 1.0) is False
    hc = rmt.horizon_critical(dyn, None, "eta", 1000)  # completes (no OverflowError)
    assert hc.value is not None and hc.value <= 2.5
