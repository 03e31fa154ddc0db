"""Exact moments of the affine recursion (THEORY §8) against an enumeration oracle and MC."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rmt import testing as rt

import rmt
from rmt import Dynamics, HessianSet, Schedule
from rmt.affine import affine_moments, stationary

import oracle
from oracle import batch_outcomes, stable_seed

SAMPLINGS = ["bernoulli", "with_replacement", "without_replacement"]
KINDS = [("summed", 0.3), ("alternating", 0.3), ("summed", 0.0), ("summed", 1.0), ("sam", 0.0)]


def _oracle_maps(HR, HF, gR, gF, sch):
    """[(p, J, b)] in full coordinates, built directly from THEORY §8 (no rmt code)."""
    d = HR.shape[1]
    I = np.eye(d)
    eta, a = sch.eta, sch.alpha
    sR, sF = -eta * (1 - a), eta * a
    if sch.schedule == "sam":
        sR = -eta
    def batches(H, g, B):
        return [(p, np.einsum("i,iab->ab", x, H) / B, x @ g / B)
                for p, x in batch_outcomes(len(H), B, sch.sampling)]
    R = batches(HR, gR, sch.batch) if (a < 1) else [(1.0, np.zeros((d, d)), np.zeros(d))]
    F = batches(HF, gF, sch.batch_forget) if (a > 0 and sch.schedule != "sam") \
        else [(1.0, np.zeros((d, d)), np.zeros(d))]
    out = []
    if sch.schedule == "sam":
        c = sch.sam_rho / sch.sam_a
        K = I + c * HR.mean(0)
        gbar = gR.mean(0)
        return [(p, I + sR * Hr @ K, sR * (g + c * Hr @ gbar)) for p, Hr, g in R]
    for (pr, Hr, gr), (pf, Hf, gf) in itertools.product(R, F):
        if sch.schedule == "summed":
            J, b = I + sR * Hr + sF * Hf, sR * gr + sF * gf
        else:
            AF = I + sF * Hf
            J, b = AF @ (I + sR * Hr), AF @ (sR * gr) + sF * gf
        out.append((pr * pf, J, b))
    return out


def _oracle_moments(maps, d0, steps):
    M, m = np.outer(d0, d0), d0.copy()
    sq, means = [np.trace(M)], [m]
    for _ in range(steps):
        M = sum(p * (J @ M @ J.T + J @ np.outer(m, b) + np.outer(b, m) @ J.T + np.outer(b, b))
                for p, J, b in maps)
        m = sum(p * (J @ m + b) for p, J, b in maps)
        sq.append(np.trace(M))
        means.append(m)
    return np.array(sq), np.array(means)


def _instance(seed, d=3, nr=3, nf=2, null=False):
    rng = np.random.default_rng(seed)
    FR = rng.standard_normal((nr, d)) / np.sqrt(d)
    FF = rng.standard_normal((nf, d)) / np.sqrt(d)
    if null:  # Hessians span only the first two coordinates; gradients reach the third
        FR[:, 2] = 0.0
        FF[:, 2] = 0.0
    gR = 0.3 * rng.standard_normal((nr, d))
    gF = 0.3 * rng.standard_normal((nf, d))
    HR = np.einsum("na,nb->nab", FR, FR)
    HF = np.einsum("na,nb->nab", FF, FF)
    return FR, FF, gR, gF, HR, HF


@pytest.mark.parametrize("null", [False, True])
@pytest.mark.parametrize("sampling", SAMPLINGS)
@pytest.mark.parametrize("kind,alpha", KINDS)
def test_exact_affine_moments_match_enumeration(kind, alpha, sampling, null):
    FR, FF, gR, gF, HR, HF = _instance(7, null=null)
    extra = {"sam_rho": 0.8} if kind == "sam" else {}
    sch = Schedule(0.9, 2, alpha=alpha, sampling=sampling, schedule=kind, **extra)
    hs = HessianSet.from_factors(FR, FF, retain_gradients=gR, forget_gradients=gF)
    d0 = np.array([0.2, -0.1, 0.4])
    res = affine_moments(hs, sch, 6, start=d0)
    sq, means = _oracle_moments(_oracle_maps(HR, HF, gR, gF, sch), d0, 6)
    np.testing.assert_allclose(res.expected_sq_distance, sq, rtol=1e-11, atol=1e-14)
    dyn = Dynamics(hs, sch)
    W = np.concatenate([dyn.basis, dyn.drift_basis], axis=1)
    np.testing.assert_allclose(res.mean @ W.T + (d0 - W @ (W.T @ d0)), means, atol=1e-12)
    if null:
        assert dyn.q == 1 and dyn.r == 2


@pytest.mark.parametrize("kind,alpha", KINDS)
def test_zero_gradients_reduce_to_homogeneous_second_moment(kind, alpha):
    FR, FF, _, _, _, _ = _instance(3, d=4, nr=3, nf=2)
    extra = {"sam_rho": 0.5} if kind == "sam" else {}
    sch = Schedule(0.7, 1, alpha=alpha, sampling="with_replacement", schedule=kind, **extra)
    hs0 = HessianSet.from_factors(FR, FF)
    hsz = HessianSet.from_factors(FR, FF, retain_gradients=np.zeros((3, 4)),
                                  forget_gradients=np.zeros((2, 4)))
    w0 = np.array([0.3, -0.2, 0.5, 0.1])
    ref = rmt.second_moment(hs0, sch, 8, m0=w0).total
    for hs in (hs0, hsz):
        np.testing.assert_allclose(affine_moments(hs, sch, 8, start=w0).expected_sq_distance,
                                   ref, rtol=1e-12)
    assert not np.any(affine_moments(hsz, sch, 8).expected_sq_distance)


@pytest.mark.parametrize("kind,alpha", [("summed", 0.2), ("alternating", 0.2), ("sam", 0.0)])
def test_stationary_state_is_the_limit_of_the_recursion(kind, alpha):
    FR, _, gR, gF, _, _ = _instance(11, d=3, nr=4, nf=3)
    FF = 0.5 * FR[:3]  # forget curvature inside the retain span: D ≻ 0, a stable fixed point
    extra = {"sam_rho": 0.3} if kind == "sam" else {}
    sch = Schedule(1.0, 2, alpha=alpha, schedule=kind, sampling="without_replacement", **extra)
    hs = HessianSet.from_factors(FR, FF, retain_gradients=gR, forget_gradients=gF)
    st = stationary(hs, sch)
    assert st.exists and st.rate < 1
    long = affine_moments(hs, sch, 12000)  # ρ(T) ≈ 0.994: 12000 steps reach round-off
    np.testing.assert_allclose(long.mean[-1], st.mean, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(long.expected_sq_distance[-1], st.rms_distance**2, rtol=1e-8)
    dyn = Dynamics(hs, sch)
    # m∞ solves (I − E[J]) m∞ = E[b]
    np.testing.assert_allclose((np.eye(dyn.r) - dyn.mean_map) @ st.mean, dyn.mean_drift(),
                               atol=1e-12)


def test_stationary_reports_null_drift_and_growth():
    FR, FF, gR, gF, _, _ = _instance(5, null=True)
    hs = HessianSet.from_factors(FR, FF, retain_gradients=gR, forget_gradients=gF)
    st = stationary(hs, Schedule(0.3, 2))
    assert not st.exists and st.null_drift > 0 and "outside the span" in st.reason
    # the mean moves linearly along V
    res = affine_moments(hs, Schedule(0.3, 2), 50)
    v = res.mean[:, -1]
    np.testing.assert_allclose(np.diff(v), np.diff(v)[0], rtol=1e-10)


def test_bad_gradients_rejected_up_front():
    FR, FF, gR, gF, _, _ = _instance(1)
    with pytest.raises(ValueError, match=r"retain_gradients must have shape \(n_retain, d\)"):
        HessianSet.from_factors(FR, FF, retain_gradients=gR[:, :2], forget_gradients=gF)
    bad = gR.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="retain_gradients contains NaN"):
        HessianSet.from_factors(FR, FF, retain_gradients=bad)
    with pytest.raises(ValueError, match="no forget set"):
        HessianSet.from_factors(FR, forget_gradients=gF)
    with pytest.raises(TypeError, match="complex"):
        HessianSet.from_factors(FR, FF, retain_gradients=gR + 1j)
    with pytest.raises(ValueError, match="start as a vector must have shape"):
        affine_moments(HessianSet.from_factors(FR, FF), Schedule(0.3, 1), 3, start=np.ones(2))


def test_stationary_refuses_a_zero_mean_random_drift_outside_the_span():
    """Finding (docs/affine.md §6.1): E[b]_V = 0 but Var(b_V) = 1/8, so E‖δ_k‖² = 0.25 + k/8 grows
    without bound; there is no stationary state and the forecast names the random walk."""
    hs = HessianSet.from_commuting(np.array([[1.0, 0.0], [1.0, 0.0]]),
                                   retain_gradients=np.array([[0.5, 1.0], [0.5, -1.0]]))
    sch = Schedule(0.5, 1, sampling="bernoulli")
    mom = rmt.affine_moments(hs, sch, 50)
    k = np.arange(51)
    np.testing.assert_allclose(mom.drift_sq, k / 8, rtol=1e-12, atol=1e-15)
    st = rmt.stationary(hs, sch)
    assert not st.exists and st.null_drift == 0.0
    assert st.null_spread == pytest.approx(np.sqrt(1 / 8), rel=1e-12)
    fc = rmt.forecast(hs, sch, 2000, replicas=16, seed=0, notion="mean-square", lyapunov=False)
    assert fc.outcome == "escapes" and "random-walk" in fc.reason


def test_drift_sq_is_exact_when_the_span_part_grows():
    """Finding (docs/affine.md §6.2): tr M_VV directly, not tr M − tr M_U (which kept ~1e-16 of
    the total at ρ(T) > 1). Null direction 2: E‖δ_k,V‖² = k²β² + k·Var(b_V) exactly."""
    hs = HessianSet.from_commuting(np.array([[3.0, 0.0], [0.1, 0.0]]),
                                   retain_gradients=np.array([[0.5, 1.0], [-0.5, 0.5]]))
    sch = Schedule(0.9, 1, sampling="bernoulli")
    mom = rmt.affine_moments(hs, sch, 200)
    assert mom.span_sq[-1] > 1e20  # ρ(T) > 1: the span part explodes
    # b_V = −(η/B) Σ x_i g_i2 with Bernoulli x_i ∈ {0, 1}, P(x_i = 1) = B/n: mean and variance by hand
    g2 = np.array([1.0, 0.5])
    eta, n, B = 0.9, 2, 1
    mean = -eta * g2.sum() / n
    var = (eta / B) ** 2 * np.sum(g2**2) * (B / n) * (1 - B / n)
    k = np.arange(201)
    np.testing.assert_allclose(mom.drift_sq, k**2 * mean**2 + k * var, rtol=1e-12)


@pytest.mark.parametrize("sampling", ["bernoulli", "without_replacement"])
def test_stationary_iterative_path_matches_the_limit_of_the_exact_moments(sampling):
    """r = 24 > 20: the preconditioned CG path of `stationary` (summed) against the exact
    moments iterated to convergence (an independent route to M∞ and m∞)."""
    rng = np.random.default_rng(11)
    G = rng.standard_normal((40, 24)) * np.geomspace(1, 0.3, 24)
    F = 0.5 * G[:6]
    hs = HessianSet.from_factors(G, F, retain_gradients=0.1 * rng.standard_normal((40, 24)),
                                 forget_gradients=0.1 * rng.standard_normal((6, 24)))
    sch = Schedule(0.5, 5, alpha=0.05, sampling=sampling, forget_batch=3)
    st = rmt.stationary(hs, sch)
    assert st.exists and st.rate < 0.99
    # the mean converges like ρ(E[J])^k ≤ ρ(T)^(k/2): iterate to ρ(T)^(k/2) < 1e-15
    steps = int(np.ceil(2 * np.log(1e-15) / np.log(st.rate)))
    mom = rmt.affine_moments(hs, sch, steps)
    assert st.rms_distance**2 == pytest.approx(mom.expected_sq_distance[-1], rel=1e-8)
    np.testing.assert_allclose(st.mean, mom.mean[-1], rtol=1e-7, atol=1e-12)


@pytest.mark.parametrize("sampling", ("bernoulli", "with_replacement", "without_replacement"))
def test_drift_free_moments_in_the_eigenbasis_match_the_enumeration_oracle(sampling, monkeypatch):
    # the drift-free summed recursion runs in the eigenbasis of E[J] from r ≥ EIGENBASIS_MIN_SPAN
    # (64); lowered to 1 here, it must give the oracle's E‖δ_k‖² and the generic step's moments
    import rmt.affine as aff

    rng = np.random.default_rng(stable_seed(sampling))
    d = 5
    FR = rng.standard_normal((4, d, 2)) / np.sqrt(d)
    FF = rng.standard_normal((3, d)) / np.sqrt(d)
    HR = np.einsum("nak,nbk->nab", FR, FR)
    HF = np.einsum("na,nb->nab", FF, FF)
    hs = rmt.HessianSet.from_factors(FR, FF)
    sch = rmt.Schedule(1.3, 2, alpha=0.3, sampling=sampling, forget_batch=2)
    w0 = rng.standard_normal(d)
    want = oracle.oracle_second_moments(HR, HF, 1.3, 2, 0.3, sampling, "summed",
                                        np.outer(w0, w0), 12, BF=2)
    monkeypatch.setattr(aff, "EIGENBASIS_MIN_SPAN", 10**9)
    generic = rmt.affine_moments(hs, sch, 12, start=w0)
    monkeypatch.setattr(aff, "EIGENBASIS_MIN_SPAN", 1)
    fast = rmt.affine_moments(hs, sch, 12, start=w0)
    traces = np.trace(want, axis1=1, axis2=2)
    np.testing.assert_allclose(fast.expected_sq_distance, traces, rtol=1e-12)
    np.testing.assert_allclose(fast.mean, generic.mean, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(fast.M_final, generic.M_final, rtol=1e-12, atol=1e-14)
    # a zero start without drift stays exactly zero (no steps are taken)
    zero = rmt.affine_moments(hs, sch, 12)
    assert not np.any(zero.expected_sq_distance) and not np.any(zero.mean)


@settings(max_examples=25, deadline=None, database=None, derandomize=True)
@given(rt.dynamics(gradients=True, max_dim=4, max_retain=5, max_forget=3,
                   schedule_kinds=("summed",), eta_range=(0.05, 2.5)),
       st.sampled_from([0, 1, 7, 40, 333]), st.sampled_from([None, "span"]))
def test_final_moments_closed_form_is_the_recursion(dyn, K, start):
    # rmt.affine.final_moments sums the recursion in T's eigenbasis (used by affine-bounded at
    # K ~ 1e4): the K-th moments must be the iterated recursion's
    from rmt.affine import _run_moments, final_moments, start_coordinates
    if dyn.r == 0:
        return
    M0, m0, frozen = start_coordinates(dyn, start)
    out = final_moments(dyn, K, M0, m0)
    if dyn.p != dyn.r or dyn.has_null_mode:
        assert out is None
        return
    assert out is not None
    mo = _run_moments(dyn, K, M0, m0, frozen)
    MK, mK = out
    scale = float(np.max(np.abs(mo.M_final))) if mo.M_final.size else 0.0
    if not np.isfinite(scale) or scale > 1e200:
        return  # the recursion overflowed: nothing finite to compare
    np.testing.assert_allclose(MK, mo.M_final, rtol=0, atol=1e-10 * max(scale, 1e-300))
    mscale = float(np.max(np.abs(mo.mean[-1])))
    np.testing.assert_allclose(mK, mo.mean[-1], rtol=0, atol=1e-10 * max(mscale, 1e-300))


def test_final_moments_declines_non_self_adjoint_schedules():
    from rmt.affine import final_moments
    hs = HessianSet.from_factors(np.eye(3)[:, :2].T.copy(), np.ones((1, 3)),
                                 retain_gradients=0.1 * np.ones((2, 3)),
                                 forget_gradients=0.2 * np.ones((1, 3)))
    for kind, alpha in (("alternating", 0.2), ("sam", 0.0)):
        dyn = rmt.Dynamics(hs, Schedule(0.1, 1, alpha=alpha, schedule=kind))
        assert final_moments(dyn, 10, np.eye(dyn.p), np.zeros(dyn.p)) is None


@settings(max_examples=25, deadline=None, database=None, derandomize=True)
@given(rt.dynamics(gradients=True, max_dim=5, max_retain=6, max_forget=3,
                   schedule_kinds=("summed",), eta_range=(0.05, 2.5)), st.integers(0, 2**31))
def test_eigenbasis_affine_step_is_the_affine_step(dyn, seed):
    # the drift recursion in the eigenbasis of E[J] (used from r = EIGENBASIS_MIN_SPAN on) must
    # be affine_step conjugated by Q, for random (M, m)
    from rmt.affine import _eigen_affine_step, affine_step
    from rmt.meansquare import MeanSquareOperator
    if dyn.r == 0 or dyn.p != dyn.r or dyn.has_null_mode or not dyn.has_drift:
        return
    eig = MeanSquareOperator(dyn).eigenbasis
    rng = np.random.default_rng(seed)
    Z = rng.standard_normal((dyn.r, dyn.r))
    M, m = Z @ Z.T, rng.standard_normal(dyn.r)
    M1, m1 = affine_step(dyn, M, m)
    M2, m2 = _eigen_affine_step(dyn, eig)(eig.to_basis(M), eig.Q.T @ m)
    scale = max(float(np.max(np.abs(M1))), 1e-300)
    np.testing.assert_allclose(eig.from_basis(M2), M1, rtol=0, atol=1e-11 * scale)
    np.testing.assert_allclose(eig.Q @ m2, m1, rtol=0,
                               atol=1e-11 * max(float(np.max(np.abs(m1))), 1e-300))


def test_drift_recursion_at_large_span_matches_the_generic_step():
    # r = 70 ≥ EIGENBASIS_MIN_SPAN with drift: _run_moments takes the eigenbasis path; the
    # generic affine_step iterated here is the reference
    from rmt.affine import EIGENBASIS_MIN_SPAN, _run_moments, affine_step, start_coordinates
    rng = np.random.default_rng(5)
    r, n = 70, 90
    G = rng.standard_normal((n, r)) / np.sqrt(r)
    hs = HessianSet.from_factors(G[:80], G[80:], retain_gradients=0.01 * rng.standard_normal((80, r)),
                                 forget_gradients=0.01 * rng.standard_normal((10, r)))
    dyn = Dynamics(hs, Schedule(0.3, 8, alpha=0.2, forget_batch=4,
                                sampling="without_replacement"))
    assert dyn.r == r >= EIGENBASIS_MIN_SPAN and dyn.has_drift and dyn.p == r
    M0, m0, frozen = start_coordinates(dyn, "span")
    mo = _run_moments(dyn, 30, M0, m0, frozen)
    M, m = M0, m0
    for _ in range(30):
        M, m = affine_step(dyn, M, m)
    np.testing.assert_allclose(mo.M_final, M, rtol=0, atol=1e-11 * np.max(np.abs(M)))
    np.testing.assert_allclose(mo.mean[-1], m, rtol=0, atol=1e-11 * np.max(np.abs(m)))
    assert mo.expected_sq_distance[-1] == pytest.approx(np.trace(M), rel=1e-12)
