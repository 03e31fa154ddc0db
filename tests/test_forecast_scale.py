"""rmt.forecast on a physical scale (issue 21): the default start and radius come from the
curvature, not from the size of the per-sample gradients; 'displaced' needs a stationary state;
the distance reached at the horizon; the validity of the second-order cost; lazy exact moments;
progress bars (rmt.progress)."""

import math
import warnings

import numpy as np
import pytest

import rmt
from rmt import HessianSet, Schedule
from rmt.forecast import COST_LOSS, START_LOSS, curvature_scale, forecast
from rmt.horizon import horizon_critical


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # stationarity warnings of the constructed sets
        yield


def _factors(seed=0, n=12, d=6):
    return np.random.default_rng(seed).standard_normal((n, d)) / np.sqrt(d)


def _reviewer_pair(grad=1e-14):
    """The reviewer's instance: a stable set (ρ(T) = 0.98) with zero vs round-off gradients.

    The forget gradients share a direction (a mean ḡ_F of 1e−14), so the old default (start at
    w*, radius 10 × RMS step ≈ 6e−14) read 'displaced' (‖m∞‖ = 4.9e−14 vs radius 6.3e−14) for
    the round-off set while the same set without gradients read 'returns'."""
    F = _factors()
    FF = F[:3].copy()
    g = grad * np.random.default_rng(1).standard_normal(F.shape)
    g -= g.mean(0)
    gf = np.tile(grad * np.random.default_rng(2).standard_normal(F.shape[1]), (3, 1))
    return (HessianSet.from_factors(F, FF),
            HessianSet.from_factors(F, FF, retain_gradients=g, forget_gradients=gf))


REVIEWER_SCHEDULE = Schedule(0.5, 2, alpha=0.1, forget_batch=1)


def test_round_off_gradients_do_not_change_the_default_verdict():
    sch = REVIEWER_SCHEDULE
    clean, noisy = _reviewer_pair()
    a = forecast(clean, sch, 300, seed=0, replicas=64)
    b = forecast(noisy, sch, 300, seed=0, replicas=64)
    assert a.rate == pytest.approx(0.98, abs=2e-3) and a.rate < 1
    assert b.stationary.exists and b.stationary.displacement < 1e-12  # m∞ at round-off level
    assert a.outcome == b.outcome == "returns" and not a.forgets and not b.forgets
    assert a.radius == b.radius == pytest.approx(10 * curvature_scale(rmt.Dynamics(clean, sch)))
    assert a.leave_probability == b.leave_probability == 0.0
    # the ball is stated, on the curvature scale
    for f in (a, b):
        assert "curvature scale" in f.summary() and f"radius = 10ε = {f.radius:.4g}" in f.summary()
    np.testing.assert_allclose(a.final_distance, b.final_distance, rtol=1e-6)


def test_curvature_scale_formula_and_overrides():
    F = _factors()
    hs = HessianSet.from_factors(F)
    dyn = rmt.Dynamics(hs, Schedule(0.5, 2))
    H = F.T @ F / F.shape[0]
    r = np.linalg.matrix_rank(H)
    eps = math.sqrt(2 * START_LOSS * r / np.trace(H))
    assert curvature_scale(dyn) == pytest.approx(eps, rel=1e-12)
    assert curvature_scale(dyn, COST_LOSS) == pytest.approx(eps * 100, rel=1e-12)
    f = forecast(dyn, 20, seed=0, replicas=8, lyapunov=False)
    assert f.scale == pytest.approx(eps) and f.start_norm == pytest.approx(eps)
    assert f.radius == pytest.approx(10 * eps)
    g = forecast(dyn, 20, seed=0, replicas=8, lyapunov=False, scale=0.3)
    assert g.scale == 0.3 and g.radius == pytest.approx(3.0) and "ε = scale" in g.scale_rule
    h = forecast(dyn, 20, seed=0, replicas=8, lyapunov=False, radius=2.0)
    assert h.radius == 2.0 and "given" in h.scale_rule
    with pytest.raises(ValueError, match="scale must be > 0"):
        forecast(dyn, 20, scale=-1.0)


def test_zero_gradient_verdicts_are_scale_free():
    """With b ≡ 0 the recursion is linear: the verdict of 'start ε·u, radius F·ε' does not
    depend on ε (the old unit-start protocol gives the same leave decisions)."""
    hs = HessianSet.from_factors(_factors(seed=3))
    for eta in (0.5, 2.6):
        sch = Schedule(eta, 2)
        a = forecast(hs, sch, 200, seed=4, replicas=32, lyapunov=False)
        b = forecast(hs, sch, 200, seed=4, replicas=32, lyapunov=False, scale=1.0)
        assert a.outcome == b.outcome and a.leave_probability == b.leave_probability
        np.testing.assert_allclose(a.final_distance / a.scale, b.final_distance, rtol=1e-9)
        np.testing.assert_allclose(a.expected_sq_distance / a.scale**2, b.expected_sq_distance,
                                   rtol=1e-9)


def _drift_case(eta, shift=3.0, seed=2, d=4):
    rng = np.random.default_rng(seed)
    FR = rng.standard_normal((16, d))
    FF = FR[:4].copy()  # inside the retain span
    gR = 0.01 * rng.standard_normal((16, d))
    gR -= gR.mean(0)
    gF = np.tile(shift * rng.standard_normal(d), (4, 1))
    hs = HessianSet.from_factors(FR, FF, retain_gradients=gR, forget_gradients=gF)
    return hs, Schedule(eta, 8, alpha=0.2, forget_batch=2)


def test_displaced_needs_a_stationary_state():
    hs, sch = _drift_case(0.05)
    f = forecast(hs, sch, 3000, seed=1, replicas=64)
    assert f.rate < 1 and f.stationary.exists and f.outcome == "displaced"
    assert "reached at K" in f.reason and "(K → ∞)" in f.summary()
    # ρ(T) > 1 but growth invisible within the horizon (λ₁K < ln F): the drift still carries the
    # model out of the ball, there is no stationary state, so the outcome is not "displaced"
    dyn = rmt.Dynamics(hs, sch)
    eta_star = float(rmt.critical_eta(dyn))
    g = forecast(dyn.replace(eta=eta_star * 1.002), 60, seed=1, replicas=64)
    assert g.rate > 1 and not g.stationary.exists
    assert g.lyapunov * 60 < math.log(10) and g.leave_probability > 0.5
    assert g.outcome == "escapes" and "no stationary state" in g.reason


def test_horizon_displacement_is_the_exact_mean_at_K():
    """The cheap mean recursion against the exact moments (summed, alternating, shared λI)."""
    rng = np.random.default_rng(7)
    FR, FF = rng.standard_normal((10, 5)) * [1, 1, 1, 0, 0], rng.standard_normal((4, 5))
    gR, gF = 0.1 * rng.standard_normal((10, 5)), 0.1 * rng.standard_normal((4, 5))
    gR -= gR.mean(0)
    for shared in (None, 0.2):
        hs = HessianSet.from_factors(FR, FF, retain_gradients=gR, forget_gradients=gF,
                                     shared=shared)
        for schedule in ("summed", "alternating"):
            sch = Schedule(0.1, 3, alpha=0.2, forget_batch=2, schedule=schedule)
            start = 0.05 * rng.standard_normal(5)
            f = forecast(hs, sch, 40, start=start, seed=0, replicas=8, lyapunov=False)
            mom = rmt.affine_moments(hs, sch, 40, start=start)
            np.testing.assert_allclose(f.mean_path_norm, mom.mean_norm[1:], rtol=1e-9,
                                       atol=1e-14)
            assert f.horizon_displacement == pytest.approx(mom.mean_norm[-1], rel=1e-9)
            assert f.horizon_median_distance == pytest.approx(np.median(f.final_distance))


def test_stationary_displacement_and_reached_distance_both_reported():
    hs, sch = _drift_case(0.01)
    f = forecast(hs, sch, 100, seed=1, replicas=32)
    assert f.stationary.exists
    # the K → ∞ figure can be far beyond what the horizon reaches
    assert f.horizon_displacement < f.stationary.displacement
    s = f.summary()
    assert f"‖E[δ_K]‖ = {f.horizon_displacement:.4g}" in s
    assert f"‖m∞‖ = {f.stationary.displacement:.4g}" in s


def test_cost_validity_flag():
    hs, sch = _drift_case(0.05)
    dyn = rmt.Dynamics(hs, sch)
    near = forecast(dyn, 3, seed=0, replicas=8, lyapunov=False)
    assert near.cost.valid and near.cost.valid_range == pytest.approx(curvature_scale(dyn, COST_LOSS))
    assert near.cost.rms_distance == pytest.approx(math.sqrt(near.expected_sq_distance[-1]))
    assert "INVALID" not in near.summary()
    far = forecast(dyn, 3000, seed=0, replicas=8, lyapunov=False)  # ‖m∞‖ ≫ the range
    assert far.cost.rms_distance > far.cost.valid_range and not far.cost.valid
    assert "INVALID" in far.summary() and "validity range" in far.cost.summary()


def test_exact_moments_are_lazy_and_unchanged():
    hs, sch = _drift_case(0.05)
    f = forecast(hs, sch, 50, seed=0, replicas=8, lyapunov=False)
    assert f._exact._moments is None  # the almost-sure verdict did not need them
    dyn = rmt.Dynamics(hs, sch)
    U = dyn.basis
    second = f.scale**2 * (U @ U.T) / dyn.r  # the default start's E[δ0δ0ᵀ]
    exact = rmt.affine_moments(dyn, 50, start=second)
    np.testing.assert_allclose(f.expected_sq_distance, exact.expected_sq_distance[1:],
                               rtol=1e-10)
    assert f.mean_square_leaves == bool(np.max(exact.expected_sq_distance[1:]) >= f.radius**2)
    m = forecast(hs, sch, 50, seed=0, replicas=8, lyapunov=False, notion="mean-square")
    assert m._exact._moments is not None and m.mean_square_leaves == f.mean_square_leaves


def test_shared_curvature_start_is_isotropic_on_the_whole_space():
    """λI curves every direction: the default start is isotropic on R^d, so an implicit λI and
    dense H_i + λI (span = R^d) give the same scale, radius, moments and cost."""
    rng = np.random.default_rng(5)
    Fr = rng.standard_normal((5, 4)) * [1, 1, 0, 0]
    gr = rng.standard_normal((5, 4)) * 0.1
    lam = 0.3
    shared = HessianSet.from_factors(Fr, retain_gradients=gr, shared=lam)
    dense = HessianSet.from_dense(np.einsum("na,nb->nab", Fr, Fr) + lam * np.eye(4),
                                  retain_gradients=gr)
    sch = Schedule(0.2, 2, sampling="with_replacement")
    a = forecast(shared, sch, 30, replicas=4, seed=0, lyapunov=False)
    b = forecast(dense, sch, 30, replicas=4, seed=0, lyapunov=False)
    assert a.scale == pytest.approx(b.scale, rel=1e-12) and a.radius == pytest.approx(b.radius)
    np.testing.assert_allclose(a.expected_sq_distance, b.expected_sq_distance, rtol=1e-9)
    assert a.cost.retain_loss_rise == pytest.approx(b.cost.retain_loss_rise, rel=1e-9)


def test_horizon_critical_default_ball_and_early_stop():
    hs, noisy = _reviewer_pair()
    sch = REVIEWER_SCHEDULE
    dyn = rmt.Dynamics(hs, sch)
    res = horizon_critical(dyn, None, "eta", 100)
    f = forecast(dyn, 100, seed=0, replicas=8, lyapunov=False)
    assert res.radius == pytest.approx(f.radius)
    # brute force on the exact moments (no early stop) around the returned value
    U = dyn.basis
    second = f.scale**2 * (U @ U.T) / dyn.r

    def leaves(eta):
        m = rmt.affine_moments(dyn.replace(eta=eta), 100, start=second).expected_sq_distance
        return bool(np.max(m[1:]) >= res.radius**2)

    assert leaves(res.value) and not leaves(res.value * (1 - 1e-5))
    # the round-off drift does not move it either
    res2 = horizon_critical(noisy, sch, "eta", 100)
    assert res2.value == pytest.approx(res.value, rel=1e-5) and res2.radius == res.radius


def test_progress_switches(monkeypatch, capsys):
    from rmt import progress

    monkeypatch.setenv("RMT_PROGRESS", "1")
    assert progress.enabled() and not progress.enabled(False)
    monkeypatch.setenv("RMT_PROGRESS", "0")
    assert not progress.enabled() and progress.enabled(True)
    monkeypatch.delenv("RMT_PROGRESS")
    assert progress.enabled() is False  # pytest's stderr is not a terminal
    hs, sch = _drift_case(0.05)
    quiet = forecast(hs, sch, 40, seed=0, replicas=8, progress=False)
    assert capsys.readouterr().err == ""
    loud = forecast(hs, sch, 40, seed=0, replicas=8, progress=True)
    loud.expected_sq_distance  # noqa: B018 (the lazy moments with their own bar)
    err = capsys.readouterr().err
    assert "forecast" in err
    assert loud.outcome == quiet.outcome and loud.reason == quiet.reason
    np.testing.assert_array_equal(loud.final_distance, quiet.final_distance)
    monkeypatch.setenv("RMT_PROGRESS", "1")
    rmt.lyapunov(hs, sch, steps=50, replicas=4, seed=0)
    rmt.critical_batch(hs, sch)
    horizon_critical(hs, sch, "eta", 20, grid=4)
    err = capsys.readouterr().err
    assert "lyapunov" in err and "critical_batch" in err and "horizon_critical" in err
