"""Monte Carlo of the affine unlearning recursion δ_{k+1} = J_k δ_k + b_k (THEORY §8).

Kernel vs numpy reference on identical draws; E[δ_k] against the exact mean recursion
m' = E[J]m + E[b] of the Dynamics; E‖δ_k‖² against the exact augmented moment recursion
enumerated here over every batch outcome (independently of rmt: J and b are formed from the raw
Hessians and gradients in full coordinates); overflow, coordinates and bad input.
Statistical checks: fixed seeds, |estimate − exact| ≤ Z·stderr.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from oracle import batch_outcomes

import rmt
from rmt.montecarlo import AffinePathsResult, affine_paths

Z = 5.0
SAMPLINGS = ("bernoulli", "with_replacement", "without_replacement")
SCHEDULES = ("summed", "alternating", "sam")


def _schedule(schedule, sampling, eta=0.3, batch=2, **kw):
    extra = dict(sam_rho=0.4, sam_a=1.5) if schedule == "sam" else {}
    alpha = 0.0 if schedule == "sam" else 0.3
    return rmt.Schedule(eta=eta, batch=batch, alpha=alpha, sampling=sampling,
                        schedule=schedule, **extra, **kw)


def _factor_set(seed=11, d=12, scale=0.5):
    """Rank-one sets whose gradients reach two directions outside the span of the factors, and
    leave d − r − 2 directions untouched (the frozen part of a start)."""
    rng = np.random.default_rng(seed)
    F_r, F_f = rng.standard_normal((5, d)) * scale, rng.standard_normal((3, d)) * scale
    F = np.vstack([F_r, F_f])
    extra = rng.standard_normal((2, d))
    g_r = 0.3 * rng.standard_normal((5, 8)) @ F + 0.2 * rng.standard_normal((5, 2)) @ extra
    g_f = 0.3 * rng.standard_normal((3, 8)) @ F + 0.2 * rng.standard_normal((3, 2)) @ extra
    return rmt.HessianSet.from_factors(F_r, F_f, retain_gradients=g_r, forget_gradients=g_f)


def _cases():
    rng = np.random.default_rng(3)
    lam_r, lam_f = rng.uniform(0, 1, (6, 4)), rng.uniform(0, 1, (4, 4))
    lam_r[:, 3] = lam_f[:, 3] = 0.0  # one direction without curvature: the drift walks there
    gc_r, gc_f = rng.standard_normal((6, 4)), rng.standard_normal((4, 4))
    Fd_r, Fd_f = rng.standard_normal((5, 6, 4)) * 0.4, rng.standard_normal((4, 6, 4)) * 0.4
    Fd_r[:, 5] = Fd_f[:, 5] = 0.0
    dense_r = np.einsum("nak,nbk->nab", Fd_r, Fd_r)
    dense_f = np.einsum("nak,nbk->nab", Fd_f, Fd_f)
    return {
        "factor": (_factor_set(), "gram"),
        "factor-dense": (_factor_set(), "dense"),
        "commuting": (rmt.HessianSet.from_commuting(lam_r, lam_f, retain_gradients=gc_r,
                                                    forget_gradients=gc_f), "diagonal"),
        "dense": (rmt.HessianSet.from_dense(dense_r, dense_f,
                                            retain_gradients=rng.standard_normal((5, 6)),
                                            forget_gradients=rng.standard_normal((4, 6))),
                  "auto"),
    }


CASES = _cases()


# ---------------------------------------------------------------------- kernel vs reference
@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("sampling", SAMPLINGS)
@pytest.mark.parametrize("schedule", SCHEDULES)
def test_kernel_matches_reference(case, sampling, schedule):
    hs, path = CASES[case]
    dyn = rmt.Dynamics(hs, _schedule(schedule, sampling))
    assert dyn.has_drift
    starts = np.random.default_rng(1).standard_normal((3, hs.dim))
    for start in (None, starts[0], starts):
        a = affine_paths(dyn, steps=25, replicas=3, seed=7, start=start, path=path)
        b = affine_paths(dyn, steps=25, replicas=3, seed=7, start=start, path=path,
                         backend="reference")
        assert a.path == b.path != "factor"
        np.testing.assert_allclose(a.log_norm, b.log_norm, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(a.final_state, b.final_state, rtol=1e-9, atol=1e-10)
        np.testing.assert_array_equal(a.overflowed, -1)
        np.testing.assert_array_equal(b.overflowed, -1)


def test_factor_path_agrees_with_span_coordinates():
    # full coordinates (factor path) and [U, V] coordinates see the same draws: same law, same
    # numbers up to rounding, frozen part included
    hs = _factor_set()
    start = np.random.default_rng(2).standard_normal(hs.dim)
    for schedule in ("summed", "alternating"):
        dyn = rmt.Dynamics(hs, _schedule(schedule, "bernoulli"))
        assert dyn.r + dyn.q < hs.dim  # a frozen part exists
        a = affine_paths(dyn, steps=30, replicas=4, seed=3, start=start, path="factor")
        b = affine_paths(dyn, steps=30, replicas=4, seed=3, start=start)
        assert (a.path, b.path) == ("factor", "gram")
        np.testing.assert_allclose(a.log_norm, b.log_norm, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(a.final_state, b.final_state, rtol=1e-8, atol=1e-9)


# ---------------------------------------------------------------------- exact mean
def _mean_path(dyn, m0, steps):
    """m_k in [U, V] coordinates: m' = E[J] m + E[b], E[J] = mean_map padded with I on V."""
    EJ = np.eye(dyn.p)
    EJ[: dyn.r, : dyn.r] = dyn.mean_map
    Eb = dyn.mean_drift()
    out = [m0]
    for _ in range(steps):
        out.append(EJ @ out[-1] + Eb)
    return np.array(out)


@pytest.mark.parametrize("sampling", SAMPLINGS)
@pytest.mark.parametrize("schedule", SCHEDULES)
def test_sample_mean_matches_exact_mean_recursion(sampling, schedule):
    hs = _factor_set()
    dyn = rmt.Dynamics(hs, _schedule(schedule, sampling))
    W = np.hstack([dyn.basis, dyn.drift_basis])
    start = np.random.default_rng(5).standard_normal(hs.dim)
    frozen = start - W @ (W.T @ start)
    exact = _mean_path(dyn, W.T @ start, 12)
    for k in (1, 4, 12):
        # a shorter run with the same seed is exactly the prefix of a longer one
        res = affine_paths(dyn, steps=k, replicas=4000, seed=2024, start=start)
        X = res.final_state
        np.testing.assert_allclose(X - X @ W @ W.T, np.broadcast_to(frozen, X.shape), atol=1e-12)
        mean, se = X.mean(axis=0), X.std(axis=0, ddof=1) / math.sqrt(len(X))
        want = W @ exact[k] + frozen
        assert np.all(np.abs(mean - want) <= Z * se + 1e-12), (k, (mean - want) / se)


def test_prefix_property_and_dynamics_argument():
    hs = _factor_set()
    sch = _schedule("summed", "without_replacement")
    long = affine_paths(hs, sch, steps=20, replicas=5, seed=9)
    short = affine_paths(rmt.Dynamics(hs, sch), steps=8, replicas=5, seed=9)
    np.testing.assert_array_equal(long.log_norm[:, :9], short.log_norm)
    assert isinstance(long, AffinePathsResult)
    assert np.all(np.isneginf(long.log_norm[:, 0]))  # δ_0 = 0: unlearning starts at w*
    assert np.all(np.isfinite(long.log_norm[:, 1:]))
    np.testing.assert_allclose(long.final, np.linalg.norm(long.final_state, axis=1), rtol=1e-12)
    # per-replica starts with equal rows = the shared start (up to the rounding of the BLAS
    # product that maps the starts to [U, V] coordinates)
    s = np.random.default_rng(0).standard_normal(hs.dim)
    a = affine_paths(hs, sch, steps=10, replicas=3, seed=4, start=s)
    b = affine_paths(hs, sch, steps=10, replicas=3, seed=4, start=np.tile(s, (3, 1)))
    np.testing.assert_allclose(a.log_norm, b.log_norm, rtol=1e-13, atol=1e-13)
    c = affine_paths(hs, sch, steps=10, replicas=3, seed=5, start=s)
    assert not np.array_equal(a.log_norm, c.log_norm)


# ---------------------------------------------------------------------- exact second moment
def _tiny_problem(seed=0):
    """d = 4: rank-one Hessians in the (e1, e2) plane, gradients reaching e3, e4 untouched."""
    rng = np.random.default_rng(seed)
    F_r = np.zeros((3, 4))
    F_f = np.zeros((2, 4))
    F_r[:, :2] = rng.standard_normal((3, 2))
    F_f[:, :2] = 0.8 * rng.standard_normal((2, 2))
    g_r, g_f = np.zeros((3, 4)), np.zeros((2, 4))
    g_r[:, :3] = 0.5 * rng.standard_normal((3, 3))
    g_f[:, :3] = 0.5 * rng.standard_normal((2, 3))
    # gradients aligned with their own factors make J_k and b_k strongly correlated, so drawing
    # them with independent batches would be off by up to 15 standard errors at k = 10
    g_r[:, :2] += F_r[:, :2]
    g_f[:, :2] += F_f[:, :2]
    return F_r, F_f, g_r, g_f


def _outcomes(F_r, F_f, g_r, g_f, sch):
    """[(p, J, b)] in full coordinates for every (retain, forget) batch outcome — formed here
    from the raw arrays and THEORY §2/§8, not from rmt."""
    d = F_r.shape[1]
    I = np.eye(d)
    eta, a = sch.eta, sch.alpha
    Hr, Hf = np.einsum("na,nb->nab", F_r, F_r), np.einsum("na,nb->nab", F_f, F_f)
    R = batch_outcomes(len(F_r), sch.batch, sch.sampling)
    F = (batch_outcomes(len(F_f), sch.batch_forget, sch.sampling)
         if sch.schedule != "sam" else [(1.0, None)])
    out = []
    for (pr, xr), (pf, xf) in itertools.product(R, F):
        Hb_r, gb_r = np.tensordot(xr, Hr, 1) / sch.batch, xr @ g_r / sch.batch
        if sch.schedule == "sam":
            c = sch.sam_rho / sch.sam_a
            K = I + c * Hr.mean(axis=0)
            J = I - eta * Hb_r @ K
            b = -eta * (gb_r + c * Hb_r @ g_r.mean(axis=0))
        else:
            Hb_f, gb_f = np.tensordot(xf, Hf, 1) / sch.batch_forget, xf @ g_f / sch.batch_forget
            A_r, A_f = I - eta * (1 - a) * Hb_r, I + eta * a * Hb_f
            if sch.schedule == "summed":
                J = A_r + A_f - I
                b = -eta * (1 - a) * gb_r + eta * a * gb_f
            else:
                J = A_f @ A_r
                b = A_f @ (-eta * (1 - a) * gb_r) + eta * a * gb_f
        out.append((pr * pf, J, b))
    return out


@pytest.mark.parametrize("sampling", SAMPLINGS)
@pytest.mark.parametrize("schedule", SCHEDULES)
def test_second_moment_matches_enumerated_augmented_recursion(sampling, schedule):
    F_r, F_f, g_r, g_f = _tiny_problem()
    hs = rmt.HessianSet.from_factors(F_r, F_f, retain_gradients=g_r, forget_gradients=g_f)
    sch = _schedule(schedule, sampling, eta=0.35, forget_batch=1)
    dyn = rmt.Dynamics(hs, sch)
    outs = _outcomes(F_r, F_f, g_r, g_f, sch)
    # the step enumerated here is Dynamics.step in [U, V] coordinates (frozen e4 excluded)
    W = np.hstack([dyn.basis, dyn.drift_basis])
    assert W.shape[1] == 3
    start = np.array([1.4, -0.8, 0.3, 0.5])
    steps = 10
    M, m = np.outer(start, start), start.copy()
    exact = [float(np.trace(M))]
    for _ in range(steps):
        M, m = (sum(p * (J @ M @ J.T + np.outer(J @ m, b) + np.outer(b, J @ m) + np.outer(b, b))
                    for p, J, b in outs),
                sum(p * (J @ m + b) for p, J, b in outs))
        exact.append(float(np.trace(M)))
    res = affine_paths(dyn, steps=steps, replicas=20000, seed=31, start=start)
    x = np.exp(2 * res.log_norm)
    np.testing.assert_allclose(x[:, 0], start @ start, rtol=1e-12)
    assert np.all(x >= 0.5**2 * (1 - 1e-12))  # the frozen e4 component is always there
    for k in (1, 3, steps):
        mean, se = x[:, k].mean(), x[:, k].std(ddof=1) / math.sqrt(len(x))
        assert abs(mean - exact[k]) <= Z * se, (k, mean, se, exact[k])
    # and the mean vector against the same enumeration
    X = res.final_state
    se = X.std(axis=0, ddof=1) / math.sqrt(len(X))
    assert np.all(np.abs(X.mean(axis=0) - m) <= Z * se + 1e-12)


def test_enumerated_step_is_dynamics_step():
    # the hand-built (J, b) of the enumeration are exactly Dynamics.step mapped to [U, V]
    F_r, F_f, g_r, g_f = _tiny_problem()
    hs = rmt.HessianSet.from_factors(F_r, F_f, retain_gradients=g_r, forget_gradients=g_f)
    for schedule in SCHEDULES:
        sch = _schedule(schedule, "with_replacement", eta=0.35, forget_batch=1)
        dyn = rmt.Dynamics(hs, sch)
        W = np.hstack([dyn.basis, dyn.drift_basis])
        R = batch_outcomes(3, sch.batch, sch.sampling)
        F = batch_outcomes(2, 1, sch.sampling) if schedule != "sam" else [(1.0, None)]
        for (pJ, J, b), ((_, xr), (_, xf)) in zip(_outcomes(F_r, F_f, g_r, g_f, sch),
                                                   itertools.product(R, F)):
            Jd, bd = dyn.step({"retain": xr, "forget": xf})
            np.testing.assert_allclose(W.T @ J @ W, Jd, atol=1e-12)
            np.testing.assert_allclose(W.T @ b, bd, atol=1e-12)
            np.testing.assert_allclose(W @ (W.T @ b), b, atol=1e-12)


# ---------------------------------------------------------------------- homogeneous, overflow
def test_without_gradients_is_the_homogeneous_recursion():
    rng = np.random.default_rng(5)
    hs = rmt.HessianSet.from_factors(rng.standard_normal((6, 12)), rng.standard_normal((3, 12)))
    sch = rmt.Schedule(eta=0.05, batch=2, alpha=0.4, sampling="bernoulli")
    zero = affine_paths(hs, sch, steps=10, replicas=4, seed=1)
    assert np.all(np.isneginf(zero.log_norm)) and np.all(zero.final == 0)
    w0 = rng.standard_normal(12)
    # same per-replica streams as simulate: the same draws, hence the same trajectories
    a = affine_paths(hs, sch, steps=40, replicas=3, seed=2, start=w0)
    s = rmt.simulate(hs, sch, 40, 3, 2, w0=w0)
    np.testing.assert_allclose(2 * a.log_norm, s.log_norm_sq, rtol=1e-9, atol=1e-9)


def test_overflow_is_marked_never_nan():
    hs = _factor_set(scale=3.0)
    sch = rmt.Schedule(eta=5.0, batch=2, alpha=0.5, sampling="with_replacement")
    for backend in ("numba", "reference"):
        res = affine_paths(hs, sch, steps=400, replicas=4, seed=1, backend=backend)
        assert not np.any(np.isnan(res.log_norm))
        assert np.all(res.overflowed > 0)
        for r, k in enumerate(res.overflowed):
            assert np.all(np.isfinite(res.log_norm[r, 1:k]))
            assert np.all(np.isposinf(res.log_norm[r, k:]))
        assert np.all(np.isposinf(res.final)) and np.all(np.isnan(res.final_state))
        assert res.n_overflowed == 4 and res.exits(1e300).all()
        # before overflowing, the norm went past the float64 range of ‖δ‖² (scaled norm)
        assert np.all(np.nanmax(np.where(np.isfinite(res.log_norm), res.log_norm, np.nan),
                                axis=1) > 355)
    a = affine_paths(hs, sch, steps=400, replicas=4, seed=1)
    b = affine_paths(hs, sch, steps=400, replicas=4, seed=1, backend="reference")
    np.testing.assert_array_equal(a.overflowed, b.overflowed)


# ---------------------------------------------------------------------- bad input
def test_bad_input():
    hs = _factor_set()
    sch = _schedule("summed", "bernoulli")
    d = hs.dim
    for bad in (np.ones(d + 1), np.ones((3, d)), np.ones((2, 2, d)), np.ones((4, d - 1))):
        with pytest.raises(ValueError, match="start"):
            affine_paths(hs, sch, steps=5, replicas=2, seed=0, start=bad)
    for value in (np.nan, np.inf):
        s = np.ones(d)
        s[3] = value
        with pytest.raises(ValueError, match="start"):
            affine_paths(hs, sch, steps=5, replicas=2, seed=0, start=s)
    with pytest.raises(ValueError, match="steps"):
        affine_paths(hs, sch, steps=0, replicas=2)
    with pytest.raises(ValueError, match="replicas"):
        affine_paths(hs, sch, steps=3, replicas=0)
    with pytest.raises(ValueError, match="backend"):
        affine_paths(hs, sch, steps=3, backend="cuda")
    with pytest.raises(ValueError, match="path"):
        affine_paths(hs, sch, steps=3, path="fast")
    with pytest.raises(TypeError):
        affine_paths(hs, steps=3)  # no schedule
    with pytest.raises(TypeError):
        affine_paths(hs, sch, 3)  # steps is keyword-only
    res = affine_paths(hs, sch, steps=3, replicas=2, seed=0)
    with pytest.raises(ValueError, match="radius"):
        res.exits(-1.0)
