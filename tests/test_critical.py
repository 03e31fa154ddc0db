"""Commuting closed forms and critical values (THEORY §3 'Commuting ensembles', 'Frontier')."""

import numpy as np
import pytest
from oracle import stable_seed

import rmt
from rmt import HessianSet, Schedule
from rmt.ensembles import commuting, near_optimal

import oracle

SAMPLINGS = ("bernoulli", "with_replacement", "without_replacement")


def commuting_pair(seed, n_r=4, n_f=3, d=3, basis="random"):
    rng = np.random.default_rng(seed)
    lr = rng.gamma(1.0, 1.0, (n_r, d)) * (rng.random((n_r, d)) < 0.7)
    lf = rng.gamma(1.0, 0.5, (n_f, d)) * (rng.random((n_f, d)) < 0.7)
    lr[0] += 0.2  # every direction active in the retain set
    hs = commuting(lr, lf, basis=basis, seed=seed)
    dense = HessianSet.from_dense(hs.dense("retain"), hs.dense("forget"))
    return hs, dense


@pytest.mark.parametrize("schedule", ["summed", "alternating", "sam"])
@pytest.mark.parametrize("sampling", SAMPLINGS)
def test_commuting_closed_form_equals_operator(sampling, schedule):
    hs, dense = commuting_pair(stable_seed(sampling, schedule, modulus=1000))
    kw = dict(sam_rho=0.2, sam_a=0.7) if schedule == "sam" else dict(alpha=0.2)
    for eta in (0.1, 0.5, 1.3):
        sch = Schedule(eta, 2, sampling=sampling, schedule=schedule, **kw)
        closed = rmt.mean_square(hs, sch)
        assert closed.method == "closed_form"
        generic = rmt.mean_square_rate(dense, sch, method="dense")
        assert closed.rate == pytest.approx(generic, rel=1e-10)
        alpha = kw.get("alpha", 0.0)
        exact, _ = oracle.oracle_rate(hs.dense("retain"), hs.dense("forget"), eta, 2, alpha, sampling, schedule, **{k: v for k, v in kw.items() if k != "alpha"})
        assert closed.rate == pytest.approx(exact, rel=1e-10)


@pytest.mark.parametrize("schedule", ["summed", "alternating", "sam"])
@pytest.mark.parametrize("sampling", SAMPLINGS)
def test_commuting_critical_eta_closed_form_equals_numeric(sampling, schedule):
    # alpha small enough that D ≻ 0 in every direction
    hs, dense = commuting_pair(7 + len(sampling) + len(schedule), n_f=2)
    kw = dict(sam_rho=0.3, sam_a=1.0) if schedule == "sam" else dict(alpha=0.05)
    sch = Schedule(1.0, 2, sampling=sampling, schedule=schedule, **kw)
    closed = rmt.critical_eta(hs, sch)
    numeric = rmt.critical_eta(dense, sch)
    assert closed > 0
    assert closed == pytest.approx(numeric, rel=1e-7)
    below = rmt.mean_square_rate(dense, sch.replace(eta=closed * (1 - 1e-6)))
    above = rmt.mean_square_rate(dense, sch.replace(eta=closed * (1 + 1e-6)))
    assert below <= 1.0 < above


def test_summed_critical_eta_formula_per_direction():
    # single direction: η* = 2D/(D² + V) (THEORY §3), written out by hand for Bernoulli sampling
    lam = np.array([[1.0], [3.0], [0.0], [2.0]])
    lf = np.array([[0.5], [1.5]])
    hs = commuting(lam, lf)
    n, B, nf, alpha = 4, 2, 2, 0.3
    D = (1 - alpha) * lam.mean() - alpha * lf.mean()
    V = (1 - alpha) ** 2 * (n - B) / (B * n) * (lam**2).mean() + alpha**2 * (nf - B) / (B * nf) * (lf**2).mean()
    sch = Schedule(1.0, B, alpha=alpha)
    assert rmt.critical_eta(hs, sch) == pytest.approx(2 * D / (D**2 + V), rel=1e-12)


@pytest.mark.parametrize("sigma,B", [(1, 1), (3, 2), (10, 5), (20, 20)])
def test_near_optimal_construction_threshold(sigma, B):
    # Dexter et al. Thm 2 construction: stable iff λ < (2/η)[1 + (n/B − 1)/σ]^{-1} (Bernoulli)
    n, lam = 20, 1.7
    hs = near_optimal(n, sigma, lam, d=2)
    eta_star = (2 / lam) / (1 + (n / B - 1) / sigma)
    assert rmt.critical_eta(hs, Schedule(1.0, B)) == pytest.approx(eta_star, rel=1e-9)


def test_critical_eta_generic_brackets_the_edge():
    rng = np.random.default_rng(0)
    for trial in range(5):
        G = rng.standard_normal((6, 4))
        hs = HessianSet.from_factors(G[:4], G[4:])
        for sampling in ("bernoulli", "without_replacement"):
            sch = Schedule(1.0, 2, alpha=0.0, sampling=sampling)
            eta = rmt.critical_eta(hs, sch)
            assert eta > 0
            assert rmt.mean_square_rate(hs, sch.replace(eta=eta)) == pytest.approx(1.0, abs=1e-8)
            assert rmt.mean_square_rate(hs, sch.replace(eta=eta * 0.999)) < 1.0
            assert rmt.mean_square_rate(hs, sch.replace(eta=eta * 1.001)) > 1.0
            # the stable set is an interval: scan below η*
            for e in np.linspace(0.05, 0.99, 8) * eta:
                assert rmt.mean_square_rate(hs, sch.replace(eta=e)) < 1.0


def test_critical_eta_is_zero_when_mean_dynamics_escape():
    # a forget direction outside the retain span: λ_min(D) < 0, no η > 0 is stable
    hs = rmt.ensembles.hessian_test(20, 4, forget=5, seed=1)
    sch = Schedule(0.5, 2, alpha=0.1, sampling="without_replacement")
    assert rmt.mixed_hessian_extremes(hs, 0.1)[0] < 0
    assert rmt.critical_eta(hs, sch) == 0.0
    for eta in (1e-4, 1e-2, 0.5):
        assert rmt.mean_square_rate(hs, sch.replace(eta=eta)) > 1.0


def test_critical_eta_alternating_generic():
    rng = np.random.default_rng(5)
    G = rng.standard_normal((5, 4))
    hs = HessianSet.from_factors(G, 0.5 * G[:2])  # forget curvature inside the retain span
    sch = Schedule(1.0, 2, alpha=0.1, schedule="alternating", sampling="with_replacement")
    assert rmt.mixed_hessian_extremes(hs, 0.1)[0] > 0
    eta = rmt.critical_eta(hs, sch)
    assert eta > 0
    assert rmt.mean_square_rate(hs, sch.replace(eta=eta * 0.999)) <= 1.0
    assert rmt.mean_square_rate(hs, sch.replace(eta=eta * 1.001)) > 1.0


@pytest.mark.parametrize("sampling", ["bernoulli", "with_replacement", "without_replacement"])
def test_critical_batch_is_the_smallest_stable_batch(sampling):
    hs = rmt.ensembles.hessian_test(30, 3)
    sch = Schedule(0.6, 1, sampling=sampling)
    B = rmt.critical_batch(hs, sch)
    rates = [rmt.mean_square_rate(hs, sch.replace(batch=b)) for b in range(1, 31)]
    assert all(a >= b - 1e-12 for a, b in zip(rates, rates[1:])), "ρ(T) must not increase with B"
    want = next((b for b, r in zip(range(1, 31), rates) if r <= 1.0), None)
    assert want is not None and B == want


def test_critical_batch_none_when_never_stable():
    hs = rmt.ensembles.hessian_test(10, 2)  # λ_max(H̄) = 2
    assert rmt.critical_batch(hs, Schedule(1.5, 1)) is None  # η λ > 2: even GD diverges


def test_critical_alpha_crossing():
    G = np.random.default_rng(8).standard_normal((8, 4))
    hs = HessianSet.from_factors(G, 0.8 * G[:3])  # forget curvature inside the retain span
    sch = Schedule(0.3, 2, sampling="without_replacement")
    a = rmt.critical_alpha(hs, sch)
    assert a is not None and 0 < a < 1
    assert rmt.mean_square_rate(hs, sch.replace(alpha=a * 0.99)) <= 1.0
    assert rmt.mean_square_rate(hs, sch.replace(alpha=min(a * 1.01, 1.0))) > 1.0


def test_critical_alpha_zero_for_forget_only_directions():
    hs = rmt.ensembles.hessian_test(12, 3, forget=4, seed=0)
    assert rmt.critical_alpha(hs, Schedule(0.2, 2)) == 0.0
    hs = rmt.ensembles.aligned(6, 4, 14, 0.6, 0.6, 0.9, seed=3)  # own noise directions per sample
    assert rmt.critical_alpha(hs, Schedule(0.3, 2)) == 0.0
    assert rmt.mean_square_rate(hs, Schedule(0.3, 2, alpha=1e-6)) > 1.0


@pytest.mark.parametrize("sampling", SAMPLINGS)
@pytest.mark.parametrize("schedule", ["summed", "alternating"])
def test_hessian_test_commuting_representation_matches_rank_one(sampling, schedule):
    a = rmt.ensembles.hessian_test(12, 4, forget=[0, 1, 2], seed=0)
    b = rmt.ensembles.hessian_test(12, 4, forget=[0, 1, 2], representation="commuting", seed=0)
    np.testing.assert_allclose(a.dense("forget"), b.dense("forget"))
    for alpha in (0.0, 0.1):
        sch = Schedule(0.6, 3, alpha=alpha, sampling=sampling, schedule=schedule)
        assert rmt.mean_square_rate(b, sch) == pytest.approx(rmt.mean_square_rate(a, sch), rel=1e-9)
        assert rmt.critical_eta(b, sch) == pytest.approx(rmt.critical_eta(a, sch), rel=1e-7, abs=1e-12)


# ---------------------------------------------------------------------- regressions (issue "Hardening")
def test_ill_conditioned_but_stable_set_has_critical_eta_two():
    # H = diag(1, 1e-13): the tiny curvature is genuine, not round-off; ρ(T(1.9)) < 1
    H = np.array([np.diag([1.0, 1e-13])])
    sch = Schedule(1.0, 1)
    for hs in (HessianSet.from_dense(H), HessianSet.from_commuting(np.array([[1.0, 1e-13]]))):
        assert rmt.critical_eta(hs, sch) == pytest.approx(2.0, rel=1e-12)
        assert rmt.mean_square_rate(hs, sch.replace(eta=1.9)) < 1.0


def test_alternating_stable_only_for_larger_eta():
    # D = 0.4 − 0.6 < 0, yet the alternating product is stable on (0.833, 3.333)
    hs = HessianSet.from_factors(np.array([[1.0]]), np.array([[1.0]]))
    sch = Schedule(2.0, 1, alpha=0.6, schedule="alternating")
    assert rmt.mean_square_rate(hs, sch) == pytest.approx(0.1936, rel=1e-12)
    sset = rmt.meansquare.stable_set(hs, sch)
    assert len(sset) == 1
    np.testing.assert_allclose(sset[0], (5 / 6, 10 / 3), rtol=1e-10)
    assert rmt.critical_eta(hs, sch) == pytest.approx(10 / 3, rel=1e-10)


def test_alternating_narrow_unstable_eta_window_is_found():
    hs = HessianSet.from_factors(np.array([[1.0]]), np.array([[np.sqrt(3.9211)], [0], [0], [0]]))
    sch = Schedule(1.0, 1, alpha=0.5, sampling="with_replacement", schedule="alternating",
                   forget_batch=1)
    assert rmt.mean_square_rate(hs, sch.replace(eta=0.1768)) > 1.0  # inside the window
    sset = rmt.meansquare.stable_set(hs, sch)
    assert len(sset) == 2
    (a0, a1), (b0, b1) = sset
    assert a0 == 0.0
    np.testing.assert_allclose([a1, b0, b1], [0.17335, 0.18035, 2.62617], rtol=1e-4)
    with pytest.warns(RuntimeWarning, match="not an interval"):
        eta = rmt.critical_eta(hs, sch)
    assert eta == pytest.approx(a1, rel=1e-12)
    assert rmt.mean_square_rate(hs, sch.replace(eta=eta * (1 - 1e-7))) <= 1.0
    assert rmt.mean_square_rate(hs, sch.replace(eta=eta * (1 + 1e-7))) > 1.0


def test_alternating_narrow_unstable_alpha_window_is_found():
    hs = HessianSet.from_factors(np.array([[1.0]]), np.array([[np.sqrt(5.25)]]))
    sch = Schedule(1.6825, 1, schedule="alternating")
    assert rmt.mean_square_rate(hs, sch.replace(alpha=0.146)) > 1.0
    with pytest.warns(RuntimeWarning, match="not an interval"):
        a = rmt.critical_alpha(hs, sch)
    assert a == pytest.approx(0.1422, abs=1e-4)
    assert rmt.mean_square_rate(hs, sch.replace(alpha=a * (1 - 1e-7))) <= 1.0
    assert rmt.mean_square_rate(hs, sch.replace(alpha=a * (1 + 1e-7))) > 1.0
    sset = rmt.meansquare.stable_set(hs, sch, parameter="alpha")
    assert len(sset) == 2 and sset[0] == (0.0, a)
    assert sset[1][1] == pytest.approx(0.5131, abs=1e-4)


@pytest.mark.parametrize("schedule", ["summed", "alternating"])
def test_stable_set_agrees_with_a_dense_scan(schedule):
    # small non-commuting sets: the verdict at every scan point agrees with the stable set
    rng = np.random.default_rng(3)
    G = rng.standard_normal((4, 3))
    hs = HessianSet.from_factors(G, 0.7 * G[:2])
    sch = Schedule(1.0, 2, alpha=0.3, schedule=schedule, sampling="with_replacement")
    sset = rmt.meansquare.stable_set(hs, sch)
    lam = np.linalg.eigvalsh(hs.mean("retain"))[-1]
    for eta in np.geomspace(1e-3, 4.0, 300) / lam:
        inside = any(a <= eta <= b for a, b in sset)
        near = any(min(abs(eta - a), abs(eta - b)) <= 1e-9 * eta for a, b in sset)
        if not near:
            assert (rmt.mean_square_rate(hs, sch.replace(eta=eta), method="dense") <= 1.0) == inside
    if sset:
        assert rmt.critical_eta(hs, sch) == pytest.approx(sset[0][1], rel=1e-9)


def test_critical_values_take_a_time_budget():
    hs, _ = commuting_pair(2)
    sch = Schedule(1.0, 2, alpha=0.05)
    dense = HessianSet.from_dense(hs.dense("retain"), hs.dense("forget"))
    # generous budgets change nothing
    assert rmt.critical_eta(dense, sch, time_budget=600) == pytest.approx(
        rmt.critical_eta(hs, sch), rel=1e-7)
    assert rmt.critical_batch(dense, sch.replace(eta=0.6), time_budget=600) == \
        rmt.critical_batch(dense, sch.replace(eta=0.6))
