"""Monte Carlo engine (issue 3): kernels vs reference, exact enumeration, commuting closed forms,
Jensen ordering, moments, reproducibility and bad input.

Statistical checks use fixed seeds and explicit margins: |estimate − exact| ≤ Z·stderr + margin,
with exact values computed here independently of the engine (enumeration over all batches or the
exact mean-square operator of rmt.meansquare).
"""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest

import rmt

Z = 4.0  # standard errors allowed in two-sided statistical checks (fixed seeds: deterministic)

SAMPLINGS = ("bernoulli", "with_replacement", "without_replacement")


# ---------------------------------------------------------------------- exact enumeration helpers
def batch_distribution(h, sampling, B):
    """All batch Hessians Ĥ = (1/B) Σ x_i h_i of a set with per-sample values h (n, ...) and their
    probabilities, by brute-force enumeration (THEORY §2.1). Returns (probs (N,), Hhat (N, ...))."""
    h = np.asarray(h, dtype=float)
    n = h.shape[0]
    probs, vals = [], []
    if sampling == "bernoulli":
        p = B / n
        for mask in itertools.product((0, 1), repeat=n):
            k = sum(mask)
            probs.append(p**k * (1 - p) ** (n - k))
            vals.append(np.tensordot(np.array(mask, float), h, axes=1) / B)
    elif sampling == "with_replacement":
        for tup in itertools.product(range(n), repeat=B):
            probs.append(n**-B)
            vals.append(h[list(tup)].sum(axis=0) / B)
    else:
        combos = list(itertools.combinations(range(n), B))
        for c in combos:
            probs.append(1 / len(combos))
            vals.append(h[list(c)].sum(axis=0) / B)
    return np.array(probs), np.array(vals)


def exact_jacobians(hR, hF, sampling, B, BF, eta, alpha, schedule, sam_rho=0.0, sam_a=1.0):
    """Distribution of the diagonal step j = J (commuting / scalar case): (probs, values (N, d))."""
    pR, HR = batch_distribution(hR, sampling, B)
    HR = HR.reshape(len(pR), -1)
    if schedule == "sam":
        kappa = 1 + (sam_rho / sam_a) * np.asarray(hR, float).reshape(len(hR), -1).mean(axis=0)
        return pR, 1 - eta * HR * kappa
    if alpha == 0 or hF is None:
        return pR, 1 - eta * (1 - alpha) * HR
    pF, HF = batch_distribution(hF, sampling, BF)
    HF = HF.reshape(len(pF), -1)
    P = (pR[:, None] * pF[None, :]).ravel()
    R_ = 1 - eta * (1 - alpha) * HR[:, None, :]
    if schedule == "summed":
        J = R_ + eta * alpha * HF[None, :, :]
    else:
        J = (1 + eta * alpha * HF[None, :, :]) * R_
    return P, J.reshape(len(P), -1)


def check_close(est, se, exact, margin=0.0, z=Z):
    assert abs(est - exact) <= z * se + margin, (est, se, exact)


H_R = np.array([0.3, 1.1, 2.0, 0.7, 1.6])
H_F = np.array([0.5, 1.3, 0.2, 0.9])


# ---------------------------------------------------------------------- kernel vs reference
def _pair_cases():
    rng = np.random.default_rng(11)
    g_r, g_f = rng.standard_normal((7, 4)), rng.standard_normal((5, 4))
    F_r, F_f = rng.standard_normal((6, 9, 2)), rng.standard_normal((4, 9, 2))
    lam_r, lam_f = rng.uniform(0, 1, (6, 3)), rng.uniform(0, 1, (4, 3))
    dense_r = np.einsum("nak,nbk->nab", F_r[:, :5], F_r[:, :5])
    dense_f = np.einsum("nak,nbk->nab", F_f[:, :5], F_f[:, :5])
    return {
        "rank1-factor": (rmt.HessianSet.from_factors(g_r, g_f), "factor"),
        "rankk-gram": (rmt.HessianSet.from_factors(F_r, F_f), "gram"),
        "rankk-factor": (rmt.HessianSet.from_factors(F_r, F_f), "factor"),
        "dense-dense": (rmt.HessianSet.from_dense(dense_r, dense_f), "dense"),
        "commuting-diag": (rmt.HessianSet.from_commuting(lam_r, lam_f), "diagonal"),
    }


CASES = _pair_cases()


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("sampling", SAMPLINGS)
@pytest.mark.parametrize("schedule", ("summed", "alternating"))
def test_kernel_matches_reference(case, sampling, schedule):
    hs, path = CASES[case]
    sch = rmt.Schedule(eta=0.4, batch=3, alpha=0.3, sampling=sampling, schedule=schedule)
    a = rmt.lyapunov(hs, sch, 25, 3, 7, burn_in=5, path=path)
    b = rmt.lyapunov(hs, sch, 25, 3, 7, burn_in=5, path=path, backend="reference")
    assert a.path == b.path
    np.testing.assert_allclose(a.per_replica, b.per_replica, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(a.measured_steps, b.measured_steps)
    s1 = rmt.simulate(hs, sch, 20, 2, 3, path=path)
    s2 = rmt.simulate(hs, sch, 20, 2, 3, path=path, backend="reference")
    np.testing.assert_allclose(s1.log_norm_sq, s2.log_norm_sq, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("case", ["rank1-factor", "rankk-gram", "commuting-diag", "dense-dense"])
def test_spectrum_kernel_matches_reference(case):
    hs, path = CASES[case]
    sch = rmt.Schedule(eta=0.4, batch=2, alpha=0.3, sampling="without_replacement")
    a = rmt.lyapunov_spectrum(hs, sch, 20, 2, 5, k=3, burn_in=2, path=path)
    b = rmt.lyapunov_spectrum(hs, sch, 20, 2, 5, k=3, burn_in=2, path=path, backend="reference")
    np.testing.assert_allclose(a.per_replica, b.per_replica, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("sampling", SAMPLINGS)
def test_sam_kernel_matches_reference(sampling):
    hs, _ = CASES["rankk-gram"]
    sch = rmt.Schedule(eta=0.3, batch=2, sampling=sampling, schedule="sam", sam_rho=0.2, sam_a=1.5)
    a = rmt.lyapunov(hs, sch, 25, 2, 1)
    b = rmt.lyapunov(hs, sch, 25, 2, 1, backend="reference")
    np.testing.assert_allclose(a.per_replica, b.per_replica, rtol=1e-10, atol=1e-12)


def test_paths_agree_on_identical_draws():
    # the factor path (full coordinates) and the Gram path (span coordinates) see the same
    # batches for the same seed, so fixed-start trajectories agree up to rounding
    rng = np.random.default_rng(5)
    hs = rmt.HessianSet.from_factors(rng.standard_normal((6, 12)), rng.standard_normal((3, 12)))
    assert hs.null_dim == 12 - 9
    w0 = rng.standard_normal(12)
    for schedule in ("summed", "alternating"):
        sch = rmt.Schedule(eta=0.05, batch=2, alpha=0.4, sampling="bernoulli", schedule=schedule)
        a = rmt.simulate(hs, sch, 40, 3, 2, w0=w0, path="factor")
        b = rmt.simulate(hs, sch, 40, 3, 2, w0=w0, path="gram")
        c = rmt.simulate(hs, sch, 40, 3, 2, w0=w0, path="dense")
        np.testing.assert_allclose(a.log_norm_sq, b.log_norm_sq, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(b.log_norm_sq, c.log_norm_sq, rtol=1e-9, atol=1e-9)
        assert b.null_norm_sq > 0


# ---------------------------------------------------------------------- d = 1 enumeration
@pytest.mark.parametrize("sampling", SAMPLINGS)
@pytest.mark.parametrize("schedule", ("summed", "alternating", "sam"))
def test_d1_exponent_matches_enumeration(sampling, schedule):
    eta, alpha = 0.35, (0.0 if schedule == "sam" else 0.3)
    extra = dict(sam_rho=0.3, sam_a=2.0) if schedule == "sam" else {}
    sch = rmt.Schedule(eta=eta, batch=2, alpha=alpha, sampling=sampling, schedule=schedule,
                       **extra)
    P, J = exact_jacobians(H_R, H_F, sampling, 2, 2, eta, alpha, schedule, **extra)
    assert np.min(np.abs(J)) > 1e-2  # log|J| has a small variance, no singular steps
    exact = float(P @ np.log(np.abs(J[:, 0])))
    hs = rmt.HessianSet.from_factors(np.sqrt(H_R)[:, None], np.sqrt(H_F)[:, None])
    res = rmt.lyapunov(hs, sch, 20000, 8, 2024, burn_in=0)
    assert res.n_singular == 0
    check_close(res.exponent, res.stderr, exact)
    # and the same law through the commuting representation (diagonal path)
    hc = rmt.HessianSet.from_commuting(H_R[:, None], H_F[:, None])
    rc = rmt.lyapunov(hc, sch, 20000, 8, 2025, burn_in=0)
    assert rc.path == "diagonal"
    check_close(rc.exponent, rc.stderr, exact)


def test_d1_forget_only_and_retain_only():
    # alpha = 1: only the forget set enters (ascent only); alpha = 0: forget set ignored
    hs = rmt.HessianSet.from_factors(np.sqrt(H_R)[:, None], np.sqrt(H_F)[:, None])
    for alpha in (0.0, 1.0):
        sch = rmt.Schedule(eta=0.5, batch=2, alpha=alpha, sampling="without_replacement")
        P, J = exact_jacobians(H_R, H_F, "without_replacement", 2, 2, 0.5, alpha, "summed")
        if alpha == 1.0:
            pF, HF = batch_distribution(H_F, "without_replacement", 2)
            P, J = pF, (1 + 0.5 * HF)[:, None]
        exact = float(P @ np.log(np.abs(J[:, 0])))
        res = rmt.lyapunov(hs, sch, 20000, 8, 9, burn_in=0)
        check_close(res.exponent, res.stderr, exact)


# ---------------------------------------------------------------------- commuting sets
@pytest.mark.parametrize("sampling", ("bernoulli", "without_replacement"))
def test_commuting_spectrum_matches_per_direction_exponents(sampling):
    rng = np.random.default_rng(3)
    lam_r = rng.uniform(0.2, 2.0, (5, 3))
    lam_f = rng.uniform(0.0, 1.0, (4, 3))
    eta, alpha = 0.5, 0.25
    sch = rmt.Schedule(eta=eta, batch=2, alpha=alpha, sampling=sampling)
    P, J = exact_jacobians(lam_r, lam_f, sampling, 2, 2, eta, alpha, "summed")
    assert np.min(np.abs(J)) > 1e-3
    exact = np.sort(P @ np.log(np.abs(J)))[::-1]  # per-direction exponents E log|j_k|
    Q = rmt.ensembles.random_orthogonal(3, seed=4)
    hs = rmt.HessianSet.from_commuting(lam_r, lam_f, basis=Q)
    top = rmt.lyapunov(hs, sch, 20000, 8, 1)
    check_close(top.exponent, top.stderr, exact[0])
    # the generic Gram path (rotated basis, rank-k reduced factors) must give the same numbers
    spec = rmt.lyapunov_spectrum(hs, sch, 20000, 8, 2, k=3, path="gram")
    assert spec.exponent.shape == (3,) and spec.span_dim == 3
    for j in range(3):
        check_close(spec.exponent[j], spec.stderr[j], exact[j], margin=2e-3)
    # and a dense representation of the same set
    hd = rmt.HessianSet.from_dense(hs.dense("retain"), hs.dense("forget"))
    rd = rmt.lyapunov(hd, sch, 20000, 8, 3)
    check_close(rd.exponent, rd.stderr, exact[0])


# ---------------------------------------------------------------------- Jensen, a.s. vs m.s.
@pytest.mark.parametrize("seed,eta,alpha,schedule", [
    (1, 0.05, 0.2, "summed"),
    (2, 0.12, 0.1, "alternating"),
    (3, 0.2, 0.0, "summed"),
])
def test_jensen_ordering(seed, eta, alpha, schedule):
    hs = rmt.ensembles.wishart(30, 10, d=8, k=2, seed=seed)
    sch = rmt.Schedule(eta=eta, batch=3, alpha=alpha, sampling="with_replacement",
                       schedule=schedule)
    half_log_rho = 0.5 * math.log(rmt.mean_square_rate(hs, sch))
    res = rmt.lyapunov(hs, sch, 3000, 8, seed)
    # one-sided: λ₁ ≤ ½ log ρ(T); allow Z standard errors of Monte Carlo noise
    assert res.exponent - Z * res.stderr <= half_log_rho, (res.exponent, half_log_rho)


def test_mean_square_unstable_but_almost_surely_stable():
    # d = 1, one large Hessian among ten, batch 1: J = 1 − h_i with h = (0.5 ×9, 4)
    # E J² = 0.9·0.25 + 0.1·9 = 1.125 > 1 (mean-square divergent) but
    # E log|J| = 0.9 log 0.5 + 0.1 log 3 ≈ −0.514 < 0 (almost every run converges)
    h = np.array([0.5] * 9 + [4.0])
    hs = rmt.HessianSet.from_factors(np.sqrt(h)[:, None])
    sch = rmt.Schedule(eta=1.0, batch=1, sampling="with_replacement")
    rho = rmt.mean_square_rate(hs, sch)
    assert rho == pytest.approx(1.125, rel=1e-12)
    exact = 0.9 * math.log(0.5) + 0.1 * math.log(3.0)
    res = rmt.lyapunov(hs, sch, 5000, 8, 77)
    assert res.exponent + Z * res.stderr < 0.0 < math.log(rho)
    check_close(res.exponent, res.stderr, exact)
    # typical trajectories shrink while the exact second moment grows
    sim = rmt.simulate(hs, sch, 200, 101, 78)
    assert np.median(sim.log_norm_sq[:, -1]) < -100
    assert not sim.majority_escaped(threshold=1000.0)
    exact_ms = rmt.second_moment(hs, sch, 200, m0=np.ones(1)).total[-1]
    assert exact_ms > 1e10


# ---------------------------------------------------------------------- moments
def test_moment_growth_d1_matches_exact_moments():
    # d = 1: ‖w_k‖^p = Π|J_i|^p exactly, so g(p) = log E|J|^p
    h = np.array([0.6, 0.8, 1.0, 1.2, 1.4, 0.9])
    hs = rmt.HessianSet.from_factors(np.sqrt(h)[:, None])
    sch = rmt.Schedule(eta=0.5, batch=2, sampling="without_replacement")
    P, J = exact_jacobians(h, None, "without_replacement", 2, 2, 0.5, 0.0, "summed")
    p = np.array([-1.0, 0.5, 1.0, 2.0, 4.0])
    exact = np.log(np.array([P @ np.abs(J[:, 0]) ** q for q in p]))
    res = rmt.moment_growth(hs, sch, p, 40, 4000, 12)
    # p = 4 is already under-sampled after 40 steps (effective sample size < 20): flagged
    np.testing.assert_array_equal(res.reliable, [True, True, True, True, False])
    for j in range(4):
        check_close(res.g[j], res.stderr[j], exact[j], margin=1e-3)
    # g(2) = log ρ(T) (exact mean-square operator) and g'(0) = λ₁
    assert math.log(rmt.mean_square_rate(hs, sch)) == pytest.approx(exact[3], rel=1e-10)
    lam = float(P @ np.log(np.abs(J[:, 0])))
    assert abs(res.exponent - lam) < 0.01


def test_moment_growth_g2_tracks_log_rho():
    hs = rmt.ensembles.wishart(20, 6, d=5, k=1, seed=8)
    # η ≈ η*/2: a well-separated top eigenvalue of T, so the transient is short
    sch = rmt.Schedule(eta=2.1, batch=4, alpha=0.2, sampling="without_replacement")
    steps = 60
    res = rmt.moment_growth(hs, sch, [0.5, 1.0, 2.0], steps, 4000, 21)
    # exact E‖w_k‖² for the isotropic unit start on the span: E[w0 w0ᵀ] = U Uᵀ / r
    U = hs.reduction(True, True).basis
    m = rmt.second_moment(hs, sch, steps, m0=U @ U.T / U.shape[1]).span
    half = steps // 2
    exact_slope = (math.log(m[steps]) - math.log(m[half])) / (steps - half)
    log_rho = math.log(rmt.mean_square_rate(hs, sch))
    assert abs(exact_slope - log_rho) < 1e-4  # second-half slope ≈ log ρ(T)
    assert res.reliable.all()
    check_close(res.g[2], res.stderr[2], exact_slope, margin=1e-3)
    # convexity with g(0) = 0: λ₁ = g'(0) ≤ g(p)/p, increasing in p
    lam = rmt.lyapunov(hs, sch, 4000, 8, 3)
    check_close(res.exponent, lam.stderr, lam.exponent, margin=2e-3)
    slopes = res.g / res.p
    assert lam.exponent - Z * lam.stderr <= slopes[0] < slopes[1] < slopes[2]


def test_high_moments_flagged_unreliable():
    # long runs with noisy steps: ‖w_k‖^p for large p is dominated by very few replicas
    h = np.array([0.2, 1.8, 0.4, 1.6, 1.0])
    hs = rmt.HessianSet.from_factors(np.sqrt(h)[:, None])
    sch = rmt.Schedule(eta=0.9, batch=1, sampling="with_replacement")
    P, J = exact_jacobians(h, None, "with_replacement", 1, 1, 0.9, 0.0, "summed")
    res = rmt.moment_growth(hs, sch, [0.25, 12.0], 100, 2000, 5)
    exact = [math.log(P @ np.abs(J[:, 0]) ** q) for q in (0.25, 12.0)]
    assert res.reliable[0] and not res.reliable[1]
    assert res.ess[1] < 20
    check_close(res.g[0], res.stderr[0], exact[0], margin=1e-3)
    assert res.g[1] < exact[1] - 1.0  # the heavy tail is under-sampled: biased low


@pytest.mark.parametrize("sampling", SAMPLINGS)
@pytest.mark.parametrize("schedule", ("summed", "alternating"))
def test_simulated_second_moment_matches_exact_operator(sampling, schedule):
    # E‖w_k‖² = tr T^k(w0 w0ᵀ) exactly (rmt.second_moment); checks the sampling semantics of the
    # kernels against THEORY §2.1 in d > 1, null space included
    rng = np.random.default_rng(17)
    hs = rmt.HessianSet.from_factors(rng.standard_normal((8, 10)) * 0.6,
                                     rng.standard_normal((5, 10)) * 0.6)
    sch = rmt.Schedule(eta=0.3, batch=2, alpha=0.3, sampling=sampling, schedule=schedule)
    w0 = rng.standard_normal(10)
    steps = 15
    sim = rmt.simulate(hs, sch, steps, 6000, 99, w0=w0)
    exact = rmt.second_moment(hs, sch, steps, m0=w0).total
    x = sim.norm_sq
    for k in (1, 5, steps):
        mean, se = x[:, k].mean(), x[:, k].std(ddof=1) / math.sqrt(x.shape[0])
        check_close(mean, se, exact[k], margin=1e-9 * exact[k])
    np.testing.assert_allclose(x[:, 0], w0 @ w0, rtol=1e-12)


# ---------------------------------------------------------------------- singular steps, scale
def test_singular_steps_are_counted_never_silent():
    # J ∈ {0, 0.75}: η h = 1 for the first sample maps w exactly to 0 (exact in binary)
    hs = rmt.HessianSet.from_factors(np.array([[2.0], [1.0]]))
    sch = rmt.Schedule(eta=0.25, batch=1, sampling="with_replacement")
    with pytest.warns(RuntimeWarning, match="exactly to 0"):
        res = rmt.lyapunov(hs, sch, 200, 4, 3, burn_in=0)
    assert res.n_singular == int(res.singular_steps.sum()) > 0
    np.testing.assert_allclose(res.per_replica, math.log(0.75), rtol=1e-12)
    np.testing.assert_array_equal(res.measured_steps + res.singular_steps, 200)
    with pytest.warns(RuntimeWarning, match="exactly to 0"):
        sim = rmt.simulate(hs, sch, 50, 4, 3)
    assert not np.any(np.isnan(sim.log_norm_sq))
    assert np.all(sim.singular_steps == 1)  # absorbed at 0 exactly once, then stays 0
    assert np.all(np.isneginf(sim.log_norm_sq[:, -1]))


def test_renormalisation_survives_extreme_growth_and_decay():
    h = np.array([30.0, 50.0, 40.0])
    hs = rmt.HessianSet.from_factors(np.sqrt(h)[:, None])
    for eta in (1.0, 1e-9):
        sch = rmt.Schedule(eta=eta, batch=1, sampling="with_replacement")
        exact = float(np.mean(np.log(np.abs(1 - eta * h))))
        res = rmt.lyapunov(hs, sch, 2000, 4, 1)
        check_close(res.exponent, res.stderr, exact, margin=1e-12)
    sch = rmt.Schedule(eta=1.0, batch=1, sampling="with_replacement")
    sim = rmt.simulate(hs, sch, 2000, 3, 1)
    assert np.all(np.isfinite(sim.log_norm_sq)) and sim.log_norm_sq[:, -1].min() > 5000
    assert sim.escaped().all() and sim.majority_escaped()


# ---------------------------------------------------------------------- reproducibility
def test_same_seed_same_result_and_seed_types():
    hs, _ = CASES["rank1-factor"]
    sch = rmt.Schedule(eta=0.3, batch=2, alpha=0.2)
    a = rmt.lyapunov(hs, sch, 100, 4, 42)
    b = rmt.lyapunov(hs, sch, 100, 4, np.random.SeedSequence(42))
    c = rmt.lyapunov(hs, sch, 100, 4, 43)
    np.testing.assert_array_equal(a.per_replica, b.per_replica)
    assert not np.array_equal(a.per_replica, c.per_replica)
    g = rmt.lyapunov(hs, sch, 100, 4, np.random.default_rng(1))
    assert np.isfinite(g.exponent)


def test_dynamics_in_place_of_the_pair_and_verdict_fields():
    hs, _ = CASES["rankk-gram"]
    sch = rmt.Schedule(eta=0.3, batch=2, alpha=0.2)
    dyn = rmt.Dynamics(hs, sch)
    a = rmt.lyapunov(hs, sch, 60, 3, 8)
    b = rmt.lyapunov(dyn, steps=60, replicas=3, seed=8)
    np.testing.assert_array_equal(a.per_replica, b.per_replica)
    assert a.forgets == a.escapes == (a.exponent > 0)
    assert a.verdict == rmt.verdict.verdict_text(a.forgets)
    assert a.notion == rmt.verdict.ALMOST_SURE and a.span_dim == dyn.r
    s = rmt.lyapunov_spectrum(dyn, steps=40, replicas=2, seed=1, k=2)
    assert s.forgets == (s.exponent[0] > 0) and s.notion == rmt.verdict.ALMOST_SURE
    np.testing.assert_array_equal(
        rmt.simulate(dyn, steps=10, replicas=2, seed=3).log_norm_sq,
        rmt.simulate(hs, sch, 10, 2, 3).log_norm_sq)
    np.testing.assert_array_equal(
        rmt.moment_growth(dyn, p=[1.0, 2.0], steps=10, replicas=4, seed=3).g,
        rmt.moment_growth(hs, sch, [1.0, 2.0], 10, 4, 3).g)
    with pytest.raises(TypeError, match="keyword"):
        rmt.lyapunov(dyn, 60, 3, 8)
    with pytest.raises(TypeError, match="steps"):
        rmt.lyapunov(dyn, replicas=3)


def test_logmeanexp_keeps_minus_infinity():
    from rmt.montecarlo.engine import _logmeanexp

    x = np.array([[-np.inf, -np.inf], [0.0, -np.inf], [1000.0, 1000.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = _logmeanexp(x, axis=1)
    np.testing.assert_allclose(out, [-np.inf, -math.log(2), 1000.0])


# ---------------------------------------------------------------------- bad input
def _bad(fn, match, *args, exc=ValueError, **kw):
    with pytest.raises(exc, match=match):
        fn(*args, **kw)


def test_bad_input_names_the_argument():
    hs, _ = CASES["rankk-gram"]
    sch = rmt.Schedule(eta=0.3, batch=2, alpha=0.2)
    _bad(rmt.lyapunov, "steps", hs, sch, 0, 4, 1)
    _bad(rmt.lyapunov, "steps", hs, sch, -5, 4, 1)
    _bad(rmt.lyapunov, "steps", hs, sch, 2.5, 4, 1, exc=TypeError)
    _bad(rmt.lyapunov, "replicas", hs, sch, 10, 1, 1)
    _bad(rmt.lyapunov, "burn_in", hs, sch, 10, 4, 1, burn_in=10)
    _bad(rmt.lyapunov, "burn_in", hs, sch, 10, 4, 1, burn_in=-1)
    _bad(rmt.lyapunov, "seed", hs, sch, 10, 4, -3)
    _bad(rmt.lyapunov, "seed", hs, sch, 10, 4, "abc", exc=TypeError)
    _bad(rmt.lyapunov, "path", hs, sch, 10, 4, 1, path="fast")
    _bad(rmt.lyapunov, "backend", hs, sch, 10, 4, 1, backend="cuda")
    _bad(rmt.lyapunov, "hs", np.eye(3), sch, 10, 4, 1, exc=TypeError)
    _bad(rmt.lyapunov, "schedule", hs, {"eta": 1}, 10, 4, 1, exc=TypeError)
    _bad(rmt.lyapunov, "batch", hs, sch.replace(batch=50), 10, 4, 1)
    _bad(rmt.lyapunov, "diagonal", hs, sch, 10, 4, 1, path="diagonal")
    sam = rmt.Schedule(eta=0.3, batch=2, schedule="sam", sam_rho=0.1)
    _bad(rmt.lyapunov, "sam", hs, sam, 10, 4, 1, path="factor")
    _bad(rmt.lyapunov_spectrum, "k", hs, sch, 10, 4, 1, k=0)
    _bad(rmt.lyapunov_spectrum, "k", hs, sch, 10, 4, 1, k=hs.span_dim + 1)
    _bad(rmt.lyapunov_spectrum, "replicas", hs, sch, 10, 1, 1, k=1)
    _bad(rmt.moment_growth, "replicas", hs, sch, 2.0, 10, 1, 1)
    _bad(rmt.moment_growth, "steps", hs, sch, 2.0, 1, 4, 1)
    _bad(rmt.moment_growth, "p", hs, sch, [], 10, 4, 1)
    _bad(rmt.moment_growth, "p", hs, sch, [np.nan], 10, 4, 1)
    _bad(rmt.simulate, "steps", hs, sch, 0, 4, 1)
    _bad(rmt.simulate, "replicas", hs, sch, 5, 0, 1)
    _bad(rmt.simulate, "w0", hs, sch, 5, 2, 1, w0=np.ones(3))
    sim = rmt.simulate(hs, sch, 5, 2, 1)
    _bad(sim.escaped, "threshold", threshold=-1.0)
    _bad(sim.escaped, "within", within=6)
    for shape in ((3, 4), (5, 4)):  # Gram path (n < d) and factor path (n ≥ d)
        zero = rmt.HessianSet.from_factors(np.zeros(shape))
        _bad(rmt.lyapunov, "zero", zero, rmt.Schedule(eta=0.1, batch=1), 10, 2, 1)


# ---------------------------------------------------------------------- caching switch
def test_cache_switch_and_read_only_fallback():
    from rmt.montecarlo import _kernels

    assert not _kernels.cache_requested({})
    assert _kernels.cache_requested({"RMT_NUMBA_CACHE": "1"})
    assert not _kernels.cache_requested({"RMT_NUMBA_CACHE": "0"})
    calls = []

    def fake_njit(cache=False, **kw):  # mimics numba on a read-only install
        calls.append(cache)
        if cache:
            raise RuntimeError("cannot cache function 'f': no locator available for file")
        return lambda f: f

    deco = _kernels.make_jit(True, njit=fake_njit)
    with pytest.warns(RuntimeWarning, match="compiling in memory"):
        f = deco(lambda x: x + 1)
    assert f(1) == 2 and calls == [True, False]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _kernels.make_jit(False, njit=fake_njit)(lambda x: 2 * x)(3) == 6
