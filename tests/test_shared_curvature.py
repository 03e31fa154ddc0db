"""Shared curvature (issue 11): every sample's Hessian is H_i + C with C = λI or QQᵀ.

Every exact quantity is compared with an independent dense oracle in which the shared term is
written out: per-sample dense Hessians H_i + λI (or + QQᵀ), batches enumerated outright
(tests/oracle.py), and — for the affine recursion — the augmented moments iterated over every
batch outcome in full d-dimensional coordinates. The shared-term code never densifies; the
oracle does nothing else.
"""

import itertools
import math

import numpy as np
import pytest

import oracle
import rmt
from rmt import HessianSet, Schedule
from rmt.affine import affine_moments, stationary
from rmt.dynamics import Dynamics
from rmt.meansquare import (critical_alpha, critical_batch, critical_eta, mean_square,
                            second_moment, stable_set)

SCHEDULES = [("summed", {}), ("alternating", {}), ("sam", {"sam_rho": 0.5, "sam_a": 1.0})]
SAMPLINGS = ["bernoulli", "with_replacement", "without_replacement"]


def _set(seed=0, d=5, nr=2, nf=2, scale=2.0):
    rng = np.random.default_rng(seed)
    HR, FR = oracle.random_psd_set(rng, nr, d, 1)
    HF, FF = oracle.random_psd_set(rng, nf, d, 1)
    return HR * scale**2, FR[:, :, 0] * scale, HF * scale**2, FF[:, :, 0] * scale


def _schedule(sched, samp, alpha, eta=0.5, batch=1, **kw):
    extra = dict(SCHEDULES)[sched]
    return Schedule(eta=eta, batch=batch, alpha=0.0 if sched == "sam" else alpha,
                    sampling=samp, schedule=sched, **extra, **kw)


def _oracle_kwargs(sch):
    return dict(sam_rho=sch.sam_rho, sam_a=sch.sam_a) if sch.schedule == "sam" else {}


# ---------------------------------------------------------------------- ρ(T)
@pytest.mark.parametrize("sched", [s for s, _ in SCHEDULES])
@pytest.mark.parametrize("samp", SAMPLINGS)
@pytest.mark.parametrize("lam, scale, alpha", [(0.3, 2.0, 0.2), (1.5, 2.0, 0.7),
                                               (1.0, 0.3, 0.2), (1.0, 0.3, 0.8)])
def test_rate_matches_dense_oracle_with_lambda_identity(sched, samp, lam, scale, alpha):
    HR, FR, HF, FF = _set(scale=scale)
    sch = _schedule(sched, samp, alpha)
    hs = HessianSet.from_factors(FR, FF, shared=lam)
    res = mean_square(hs, sch)
    I = np.eye(HR.shape[1])
    want, r = oracle.oracle_rate(HR + lam * I, HF + lam * I, sch.eta, 1, sch.alpha, samp, sched,
                                 **_oracle_kwargs(sch))
    assert r == HR.shape[1]  # the oracle's span is all of R^d: λI is full rank
    assert abs(res.rate - want) <= 1e-12 * want
    assert res.span_dim < r and res.null_dim == r - res.span_dim  # never densified
    assert res.null_rate is not None and res.rate == max(res.span_rate, res.null_rate)
    # the dense representation of the same per-sample Hessians (H_i given densely, λI shared)
    dense = mean_square(HessianSet.from_dense(HR, HF, shared=lam), sch)
    assert abs(dense.rate - want) <= 1e-12 * want


@pytest.mark.parametrize("samp", SAMPLINGS)
def test_null_mode_dominates_and_is_the_oracle_scalar(samp):
    # SGD with weight decay: the span contracts faster than the null space, E[j²] > ρ(span)
    HR, FR, HF, FF = _set(scale=1.0, nr=3)
    sch = _schedule("summed", samp, 0.0, eta=0.5, batch=2)
    res = mean_square(HessianSet.from_factors(FR, FF, shared=0.5), sch)
    assert res.null_rate > res.span_rate and res.rate == res.null_rate
    # the closed-form null mode: an enclosure of its round-off only
    assert res.eigenmatrix is None and res.bounds[0] <= res.rate <= res.bounds[1]
    assert res.bounds[1] - res.bounds[0] <= 1e-13 * res.rate and res.decided
    I = np.eye(5)
    want, _ = oracle.oracle_rate(HR + 0.5 * I, HF + 0.5 * I, 0.5, 2, 0.0, samp, "summed")
    assert abs(res.rate - want) <= 1e-13 * want
    # the null scalar alone from the oracle: every sample's Hessian is λ = 0.5 (1-d)
    one = np.full((3, 1, 1), 0.5)
    want, _ = oracle.oracle_rate(one, one, 0.5, 2, 0.0, samp, "summed")
    assert abs(res.null_rate - want) <= 1e-14 * want


@pytest.mark.parametrize("sched", [s for s, _ in SCHEDULES])
@pytest.mark.parametrize("samp", ["bernoulli", "without_replacement"])
def test_rate_matches_dense_oracle_with_low_rank_shared_factor(sched, samp):
    HR, FR, HF, FF = _set(seed=3, d=6)
    Q = np.random.default_rng(7).standard_normal((6, 2)) * 0.7
    sch = _schedule(sched, samp, 0.3, eta=0.4)
    hs = HessianSet.from_factors(FR, FF, shared=Q)
    res = mean_square(hs, sch)
    C = Q @ Q.T
    want, r = oracle.oracle_rate(HR + C, HF + C, sch.eta, 1, sch.alpha, samp, sched,
                                 **_oracle_kwargs(sch))
    assert abs(res.rate - want) <= 1e-12 * want
    assert res.span_dim == r == 6 if sched != "sam" else res.span_dim == r
    assert res.null_rate is None  # QQᵀ enlarges the span; no null mode


def test_shared_factor_enlarges_the_span_and_keeps_a_frozen_null_space():
    HR, FR, HF, FF = _set(seed=4, d=7)
    Q = np.zeros((7, 1))
    Q[6, 0] = 0.5
    hs = HessianSet.from_factors(FR, FF, shared=Q)
    assert hs.span_dim == 5 and hs.null_dim == 2
    sch = _schedule("summed", "bernoulli", 0.3)
    want, r = oracle.oracle_rate(HR + Q @ Q.T, HF + Q @ Q.T, 0.5, 1, 0.3, "bernoulli", "summed")
    assert r == 5 and abs(mean_square(hs, sch).rate - want) <= 1e-12 * want


# ---------------------------------------------------------------------- one step
@pytest.mark.parametrize("sched", [s for s, _ in SCHEDULES])
def test_step_and_null_scalar_match_dense_jacobians(sched):
    HR, FR, HF, FF = _set(seed=1)
    lam = 0.7
    sch = _schedule(sched, "bernoulli", 0.4, batch=1)
    dyn = Dynamics(HessianSet.from_factors(FR, FF, shared=lam), sch)
    d, U = HR.shape[1], dyn.basis
    P = np.eye(d) - U @ U.T  # projector on the null space
    I = np.eye(d)
    K = I + (sch.sam_rho / sch.sam_a) * (HR.mean(0) + lam * I)
    for xr in itertools.product((0, 1), repeat=2):
        for xf in itertools.product((0, 1), repeat=2):
            xr_, xf_ = np.array(xr, float), np.array(xf, float)
            Hr = np.einsum("i,iab->ab", xr_, HR + lam * I) / sch.batch
            Hf = np.einsum("i,iab->ab", xf_, HF + lam * I) / sch.batch
            a, e = sch.eta * (1 - sch.alpha), sch.eta * sch.alpha
            if sched == "summed":
                J = I - a * Hr + e * Hf
            elif sched == "alternating":
                J = (I + e * Hf) @ (I - a * Hr)
            else:
                J = I - sch.eta * Hr @ K
            Jd, _ = dyn.step({"retain": xr_, "forget": xf_})
            np.testing.assert_allclose(Jd, U.T @ J @ U, atol=1e-13)
            j = dyn.null_step({"retain": xr_, "forget": xf_})
            np.testing.assert_allclose(J @ P, j * P, atol=1e-13)  # J is the scalar j on N
            np.testing.assert_allclose(U.T @ J @ P, 0.0, atol=1e-13)  # N is invariant


@pytest.mark.parametrize("sched", [s for s, _ in SCHEDULES])
@pytest.mark.parametrize("samp", SAMPLINGS)
def test_null_mean_rate_and_exponent_by_enumeration(sched, samp):
    HR, FR, HF, FF = _set(seed=2, d=7, nr=3, nf=2)
    sch = _schedule(sched, samp, 0.6, batch=2 if samp != "bernoulli" else 1)
    dyn = Dynamics(HessianSet.from_factors(FR, FF, shared=0.9), sch)
    outs_r = oracle.batch_outcomes(3, sch.batch, samp)
    outs_f = oracle.batch_outcomes(2, sch.batch, samp) if sched != "sam" else [(1.0, None)]
    m1 = m2 = lg = 0.0
    for (pr, xr), (pf, xf) in itertools.product(outs_r, outs_f):
        ind = {"retain": xr} if xf is None else {"retain": xr, "forget": xf}
        j = dyn.null_step(ind)
        m1 += pr * pf * j
        m2 += pr * pf * j * j
        lg += pr * pf * math.log(abs(j))
    assert abs(dyn.null_mean - m1) <= 1e-14
    assert abs(dyn.null_rate - m2) <= 1e-14 * m2
    assert abs(dyn.null_exponent - lg) <= 1e-13


# ---------------------------------------------------------------------- second moments
@pytest.mark.parametrize("sched", [s for s, _ in SCHEDULES])
def test_second_moment_matrices_match_oracle(sched):
    HR, FR, HF, FF = _set(seed=5)
    lam = 0.6
    sch = _schedule(sched, "bernoulli", 0.3, eta=0.4)
    hs = HessianSet.from_factors(FR, FF, shared=lam)
    rng = np.random.default_rng(0)
    A = rng.standard_normal((5, 5))
    m0 = A @ A.T
    I = np.eye(5)
    want = oracle.oracle_second_moments(HR + lam * I, HF + lam * I, sch.eta, 1, sch.alpha,
                                        "bernoulli", sched, m0, 6, **_oracle_kwargs(sch))
    got = second_moment(hs, sch, 6, m0, return_matrices=True)
    np.testing.assert_allclose(got.matrices, want, rtol=1e-12, atol=1e-12 * np.abs(want).max())
    np.testing.assert_allclose(got.total, np.trace(want, axis1=1, axis2=2), rtol=1e-12)


# ---------------------------------------------------------------------- critical values
def _oracle_stable(HR, HF, lam, sch, **changes):
    s = sch.replace(**changes)
    I = np.eye(HR.shape[1])
    return oracle.oracle_rate(HR + lam * I, HF + lam * I, s.eta, s.batch, s.alpha, s.sampling,
                              s.schedule, **_oracle_kwargs(s))[0] <= 1.0


@pytest.mark.parametrize("sched", [s for s, _ in SCHEDULES])
@pytest.mark.parametrize("scale, lam", [(2.0, 0.3), (0.3, 1.0)])
def test_critical_eta_brackets_the_oracle_boundary(sched, scale, lam):
    HR, FR, HF, FF = _set(scale=scale)
    sch = _schedule(sched, "bernoulli", 0.2)
    hs = HessianSet.from_factors(FR, FF, shared=lam)
    eta = critical_eta(hs, sch)
    if scale < 1:  # small per-sample curvature: D ≻ 0 thanks to λ, a genuine η* > 0
        assert 0 < eta < math.inf
    if eta == 0.0:  # D is indefinite (forget curvature beats (1−2α)λ): unstable for every η
        assert not _oracle_stable(HR, HF, lam, sch, eta=1e-5)
        return
    assert _oracle_stable(HR, HF, lam, sch, eta=eta * (1 - 1e-7))
    assert not _oracle_stable(HR, HF, lam, sch, eta=eta * (1 + 1e-7))


def test_critical_eta_is_zero_when_the_null_mode_expands():
    HR, FR, HF, FF = _set(scale=0.3)
    sch = _schedule("summed", "with_replacement", 0.6)  # (1−2α)λ < 0: the null space expands
    hs = HessianSet.from_factors(FR, FF, shared=1.0)
    assert critical_eta(hs, sch) == 0.0
    assert not _oracle_stable(HR, HF, 1.0, sch, eta=1e-4)


def test_stable_set_and_critical_alpha_and_batch_account_for_the_null_mode():
    HR, FR, HF, FF = _set(scale=0.3, nr=3)
    lam = 1.0
    sch = _schedule("alternating", "bernoulli", 0.2, eta=0.5)
    hs = HessianSet.from_factors(FR, FF, shared=lam)
    for a, b in stable_set(hs, sch, parameter="alpha"):
        for x in np.linspace(a, b, 5)[1:-1]:
            assert _oracle_stable(HR, HF, lam, sch, alpha=float(x))
    alpha = critical_alpha(hs, sch)
    assert alpha is not None and 0 < alpha < 1
    assert _oracle_stable(HR, HF, lam, sch, alpha=alpha * (1 - 1e-6))
    assert not _oracle_stable(HR, HF, lam, sch, alpha=alpha * (1 + 1e-6))
    sch2 = _schedule("summed", "bernoulli", 0.3, eta=0.9)
    B = critical_batch(hs, sch2)
    assert B is not None and _oracle_stable(HR, HF, lam, sch2, batch=B)
    if B > 1:
        assert not _oracle_stable(HR, HF, lam, sch2, batch=B - 1)


# ---------------------------------------------------------------------- coherence and views
def test_coherence_and_views_match_dense_per_sample_hessians():
    HR, FR, HF, FF = _set(seed=6, d=6, nr=3, nf=2)
    Q = np.random.default_rng(1).standard_normal((6, 2)) * 0.5
    for shared, C in ((0.4, 0.4 * np.eye(6)), (Q, Q @ Q.T)):
        hs = HessianSet.from_factors(FR, FF, shared=shared)
        dense = HessianSet.from_dense(HR + C, HF + C)
        a, b = rmt.coherence(hs), rmt.coherence(dense)
        np.testing.assert_allclose(a.S, b.S, rtol=1e-12)
        assert abs(a.sigma - b.sigma) <= 1e-12 * b.sigma
        assert abs(a.sigma_cross - b.sigma_cross) <= 1e-12 * b.sigma_cross
        np.testing.assert_allclose(hs.max_eigenvalues("forget"),
                                   np.linalg.eigvalsh(HF + C)[:, -1], rtol=1e-12)
        np.testing.assert_allclose(hs.dense("retain"), HR + C, atol=1e-14)
        np.testing.assert_allclose(hs.mean("forget"), HF.mean(0) + C, atol=1e-14)
        np.testing.assert_allclose(hs.factors("retain")[:, :, 0], FR)  # per-sample part only


def test_commuting_shared_is_folded_into_the_profiles():
    lam = np.array([[1.0, 0.0, 0.5], [0.2, 0.0, 0.0]])
    hs = HessianSet.from_commuting(lam[:1], lam[1:], shared=0.3)
    np.testing.assert_allclose(hs.eigenvalues("retain"), lam[:1] + 0.3)
    sch = Schedule(0.5, 1, alpha=0.4)
    want, _ = oracle.oracle_rate(np.diag(lam[0] + 0.3)[None], np.diag(lam[1] + 0.3)[None], 0.5, 1,
                                 0.4, "bernoulli", "summed")
    assert abs(mean_square(hs, sch).rate - want) <= 1e-13 * want


@pytest.mark.parametrize("bad, exc, match", [
    (-0.1, ValueError, "shared must be >= 0"),
    (True, TypeError, "shared"),
    ("abc", TypeError, "shared"),
    (np.ones((4, 2)), ValueError, r"shared as a factor Q"),
    (np.ones(5), ValueError, "shared"),
    (np.full((5, 1), np.nan), ValueError, "shared contains NaN"),
    (1j, TypeError, "shared must be real"),
])
def test_bad_shared_is_rejected_by_name(bad, exc, match):
    _, FR, _, FF = _set()
    with pytest.raises(exc, match=match):
        HessianSet.from_factors(FR, FF, shared=bad)


def test_zero_shared_is_the_plain_set():
    _, FR, _, FF = _set()
    sch = _schedule("summed", "bernoulli", 0.3)
    a = mean_square(HessianSet.from_factors(FR, FF), sch)
    b = mean_square(HessianSet.from_factors(FR, FF, shared=0.0), sch)
    assert a.rate == b.rate and b.null_rate is None


# ---------------------------------------------------------------------- affine recursion (§8)
def _affine_oracle(HR, HF, gR, gF, lam, sch, start, steps):
    """(E‖δ_k‖², E[δ_k]) by iterating the augmented moments over every batch outcome, in full
    d-dimensional coordinates, with dense per-sample Hessians H_i + λI (independent of rmt)."""
    d = HR.shape[1]
    I = np.eye(d)
    HRl, HFl = HR + lam * I, HF + lam * I
    a, e = sch.eta * (1 - sch.alpha), sch.eta * sch.alpha
    K = I + (sch.sam_rho / sch.sam_a) * HRl.mean(0)
    outs = []
    R = oracle.batch_outcomes(len(HR), sch.batch, sch.sampling) if sch.alpha < 1 else [(1.0, None)]
    F = oracle.batch_outcomes(len(HF), sch.batch, sch.sampling) \
        if sch.alpha > 0 and sch.schedule != "sam" else [(1.0, None)]
    for (pr, xr), (pf, xf) in itertools.product(R, F):
        Hr = np.einsum("i,iab->ab", xr, HRl) / sch.batch if xr is not None else 0 * I
        gr = xr @ gR / sch.batch if xr is not None else np.zeros(d)
        Hf = np.einsum("i,iab->ab", xf, HFl) / sch.batch if xf is not None else 0 * I
        gf = xf @ gF / sch.batch if xf is not None else np.zeros(d)
        if sch.schedule == "summed":
            J, b = I - a * Hr + e * Hf, -a * gr + e * gf
        elif sch.schedule == "alternating":
            AF = I + e * Hf
            J, b = AF @ (I - a * Hr), AF @ (-a * gr) + e * gf
        else:
            gbar = gR.mean(0)
            J = I - sch.eta * Hr @ K
            b = -sch.eta * (gr + (sch.sam_rho / sch.sam_a) * Hr @ gbar)
        outs.append((pr * pf, J, b))
    m = np.array(start, float)
    M = np.outer(m, m)
    sq, means = [np.trace(M)], [m]
    for _ in range(steps):
        M = sum(p * (J @ M @ J.T + np.outer(J @ m, b) + np.outer(b, J @ m) + np.outer(b, b))
                for p, J, b in outs)
        m = sum(p * (J @ m + b) for p, J, b in outs)
        sq.append(np.trace(M))
        means.append(m)
    return np.array(sq), np.array(means)


def _affine_set(seed=8, d=6, nr=3, nf=2, scale=1.0):
    HR, FR, HF, FF = _set(seed=seed, d=d, nr=nr, nf=nf, scale=scale)
    rng = np.random.default_rng(seed + 100)
    gR = rng.standard_normal((nr, d)) * 0.3
    gF = rng.standard_normal((nf, d)) * 0.3
    return HR, FR, HF, FF, gR, gF


@pytest.mark.parametrize("sched", [s for s, _ in SCHEDULES])
@pytest.mark.parametrize("samp", ["bernoulli", "without_replacement"])
def test_affine_moments_match_oracle_with_drift_in_the_null_space(sched, samp):
    # d = 8, five rank-one factors: the gradients reach the null space (V) and a start has a part
    # outside [U, V]; with λI both are scaled by the null scalar, correlated with the batch
    HR, FR, HF, FF, gR, gF = _affine_set(d=8, nr=2, nf=1)
    gR, gF = gR[:, :8], gF[:, :8]
    lam = 0.4
    sch = _schedule(sched, samp, 0.3, eta=0.6, batch=1)
    hs = HessianSet.from_factors(FR, FF, retain_gradients=gR, forget_gradients=gF, shared=lam)
    dyn = Dynamics(hs, sch)
    assert dyn.q > 0 and dyn.p < 8 and dyn.has_null_mode
    start = np.random.default_rng(3).standard_normal(8)
    got = affine_moments(dyn, 7, start=start)
    want_sq, want_m = _affine_oracle(HR, HF, gR, gF, lam, sch, start, 7)
    np.testing.assert_allclose(got.expected_sq_distance, want_sq, rtol=1e-11)
    W = np.hstack([dyn.basis, dyn.drift_basis])
    P = W @ W.T
    np.testing.assert_allclose(got.mean @ W.T, want_m @ P, atol=1e-11 * np.abs(want_m).max())


def test_stationary_displacement_with_a_contracting_null_mode():
    # weight decay pulls the out-of-span drift back: m∞ exists on all of [U, V]
    HR, FR, HF, FF, gR, gF = _affine_set(d=7, nr=2, nf=1, scale=0.8)
    lam = 0.5
    sch = _schedule("summed", "bernoulli", 0.2, eta=0.5, batch=1)
    hs = HessianSet.from_factors(FR, FF, retain_gradients=gR, forget_gradients=gF, shared=lam)
    dyn = Dynamics(hs, sch)
    st = stationary(dyn)
    assert st.exists and dyn.q > 0
    sq, means = _affine_oracle(HR, HF, gR, gF, lam, sch, np.zeros(7), 400)
    np.testing.assert_allclose(st.mean_full, means[-1], atol=1e-10)
    assert abs(st.rms_distance - math.sqrt(sq[-1])) <= 1e-9 * math.sqrt(sq[-1])


# ---------------------------------------------------------------------- Monte Carlo
def test_monte_carlo_exponent_is_max_of_span_and_exact_null_exponent():
    HR, FR, HF, FF = _set(scale=1.0, nr=3)
    sch = _schedule("summed", "bernoulli", 0.0, eta=0.5, batch=2)
    dyn = Dynamics(HessianSet.from_factors(FR, FF, shared=0.5), sch)
    res = rmt.lyapunov(dyn, steps=400, replicas=8, seed=1)
    assert res.null_exponent == dyn.null_exponent
    assert res.exponent == max(res.span_exponent, res.null_exponent)
    # Jensen on each block: λ ≤ ½ log E[j²] (the null exponent exactly, the span one sampled)
    assert res.null_exponent <= 0.5 * math.log(dyn.null_rate)
    ms = mean_square(dyn)
    assert res.span_exponent <= 0.5 * math.log(ms.span_rate) + 4 * res.stderr
    mg = rmt.moment_growth(dyn, p=[2.0], steps=40, replicas=64, seed=2)
    assert abs(mg.null_g[0] - math.log(dyn.null_rate)) <= 1e-12


@pytest.mark.parametrize("sched", [s for s, _ in SCHEDULES])
def test_affine_paths_mean_matches_exact_recursion(sched):
    HR, FR, HF, FF, gR, gF = _affine_set(d=8, nr=2, nf=1)
    lam = 0.4
    sch = _schedule(sched, "bernoulli", 0.3, eta=0.5, batch=1)
    hs = HessianSet.from_factors(FR, FF, retain_gradients=gR[:, :8], forget_gradients=gF[:, :8],
                                 shared=lam)
    dyn = Dynamics(hs, sch)
    start = np.random.default_rng(4).standard_normal(8)
    steps, reps = 6, 4000
    mc = rmt.affine_paths(dyn, steps=steps, replicas=reps, seed=5, start=start)
    ref = rmt.affine_paths(dyn, steps=steps, replicas=4, seed=5, start=start, backend="reference")
    np.testing.assert_allclose(mc.log_norm[:4], ref.log_norm, rtol=1e-12)
    exact = affine_moments(dyn, steps, start=start)
    sq = mc.norm**2
    # E‖δ_K‖²: a one-sample t-test with a fixed seed and a 5-sigma margin
    for k in (1, steps):
        se = sq[:, k].std(ddof=1) / math.sqrt(reps)
        assert abs(sq[:, k].mean() - exact.expected_sq_distance[k]) <= 5 * se
    # the final state's mean, in full coordinates, against the exact E[δ_K] plus the null part
    _, want_m = _affine_oracle(HR, HF, gR[:, :8], gF[:, :8], lam, sch, start, steps)
    err = mc.final_state.mean(axis=0) - want_m[-1]
    se = mc.final_state.std(axis=0, ddof=1) / math.sqrt(reps)
    assert np.all(np.abs(err) <= 5 * se + 1e-12)


def test_simulate_carries_the_null_part_of_the_start():
    HR, FR, HF, FF = _set(scale=1.0, nr=3)
    lam = 0.5
    sch = _schedule("summed", "bernoulli", 0.2, eta=0.5, batch=1)
    hs = HessianSet.from_factors(FR, FF, shared=lam)
    w0 = np.random.default_rng(6).standard_normal(5)
    sim = rmt.simulate(hs, sch, steps=5, replicas=6000, seed=7, w0=w0)
    I = np.eye(5)
    want = oracle.oracle_second_moments(HR + lam * I, HF + lam * I, 0.5, 1, 0.2, "bernoulli",
                                        "summed", np.outer(w0, w0), 5)
    want = np.trace(want, axis1=1, axis2=2)
    exact = second_moment(hs, sch, 5, w0).total
    np.testing.assert_allclose(exact, want, rtol=1e-12)
    got = sim.norm_sq
    se = got.std(axis=0, ddof=1) / math.sqrt(6000)
    assert np.all(np.abs(got.mean(axis=0) - want) <= 5 * se + 1e-12)


def test_factor_path_is_rejected_with_shared_curvature():
    _, FR, _, FF = _set()
    with pytest.raises(ValueError, match="shared curvature"):
        rmt.lyapunov(HessianSet.from_factors(FR, FF, shared=0.1), _schedule("summed", "bernoulli", 0.2),
                     steps=10, replicas=2, seed=0, path="factor")
