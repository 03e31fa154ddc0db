"""Exact mean-square analysis against independent dense oracles (THEORY §3)."""


import numpy as np
import pytest
from oracle import stable_seed

import rmt
from rmt import HessianSet, Schedule

import oracle

SAMPLINGS = ("bernoulli", "with_replacement", "without_replacement")
SCHEDULES = ("summed", "alternating")
REPRS = ("dense", "rank1", "factor")


def make_set(rep, seed, n_r=4, n_f=3, d=4):
    rng = np.random.default_rng(seed)
    k = 1 if rep == "rank1" else 2
    HR, FR = oracle.random_psd_set(rng, n_r, d, k)
    HF, FF = oracle.random_psd_set(rng, n_f, d, k)
    # scale so that η ~ 1 is near the stability edge
    s = 1.0 / np.linalg.eigvalsh(HR.mean(0))[-1]
    HR, HF, FR, FF = HR * s, HF * s, FR * np.sqrt(s), FF * np.sqrt(s)
    if rep == "dense":
        hs = HessianSet.from_dense(HR, HF)
    elif rep == "rank1":
        hs = HessianSet.from_factors(FR[:, :, 0], FF[:, :, 0])
    else:
        hs = HessianSet.from_factors(FR, FF)
    return hs, HR, HF


@pytest.mark.parametrize("rep", REPRS)
@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("sampling", SAMPLINGS)
def test_rate_matches_kronecker_oracle(rep, schedule, sampling):
    hs, HR, HF = make_set(rep, seed=stable_seed(rep, schedule, sampling))
    for eta, B, alpha in [(0.7, 2, 0.3), (1.6, 1, 0.1), (0.4, 3, 0.0), (0.9, 2, 1.0)]:
        sch = Schedule(eta, B, alpha=alpha, sampling=sampling, schedule=schedule)
        exact, r = oracle.oracle_rate(HR, HF, eta, B, alpha, sampling, schedule)
        for method in ("dense", "arpack"):
            res = rmt.mean_square(hs, sch, method=method)
            assert res.span_dim == r
            assert res.rate == pytest.approx(exact, rel=1e-9), (method, eta, B, alpha)


@pytest.mark.parametrize("sampling", SAMPLINGS)
def test_forget_batch_differs_from_retain_batch(sampling):
    hs, HR, HF = make_set("factor", seed=5, n_r=5, n_f=3)
    sch = Schedule(0.8, 3, alpha=0.4, sampling=sampling, forget_batch=1)
    exact, _ = oracle.oracle_rate(HR, HF, 0.8, 3, 0.4, sampling, "summed", BF=1)
    assert rmt.mean_square_rate(hs, sch) == pytest.approx(exact, rel=1e-9)


@pytest.mark.parametrize("sampling", SAMPLINGS)
def test_sam_matches_oracle(sampling):
    hs, HR, HF = make_set("rank1", seed=11)
    sch = Schedule(0.6, 2, sampling=sampling, schedule="sam", sam_rho=0.3, sam_a=0.5)
    exact, _ = oracle.oracle_rate(HR, HF, 0.6, 2, 0.0, sampling, "sam", sam_rho=0.3, sam_a=0.5)
    for method in ("dense", "arpack"):
        assert rmt.mean_square_rate(hs, sch, method=method) == pytest.approx(exact, rel=1e-9)


def test_null_space_is_excluded_from_the_rate():
    # n < d rank-one gradients never span R^d: the full operator has eigenvalue 1 on the null
    # space, the restricted rate must be the contraction rate on the span.
    rng = np.random.default_rng(3)
    G = rng.standard_normal((3, 6))
    hs = HessianSet.from_factors(G)
    assert hs.span_dim == 3 and hs.null_dim == 3
    H = np.einsum("na,nb->nab", G, G)
    lam = np.linalg.eigvalsh(H.mean(0))[-1]
    sch = Schedule(0.5 / lam, 2, sampling="without_replacement")
    rate = rmt.mean_square_rate(hs, sch)
    assert rate < 1.0
    exact, r = oracle.oracle_rate(H, None, 0.5 / lam, 2, 0.0, "without_replacement", "summed")
    assert r == 3 and rate == pytest.approx(exact, rel=1e-9)
    full = sum(p * np.kron(J, J) for p, J in oracle.jacobians(H, None, 0.5 / lam, 2, 0.0, "without_replacement", "summed"))
    assert np.max(np.abs(np.linalg.eigvals(full))) == pytest.approx(1.0, abs=1e-12)
    res = rmt.mean_square(hs, sch)
    assert (res.span_dim, res.null_dim) == (3, 3)


def test_full_span_rate_equals_unrestricted_rate():
    hs, HR, HF = make_set("dense", seed=2)
    sch = Schedule(0.9, 2, alpha=0.2, sampling="bernoulli")
    full = sum(p * np.kron(J, J) for p, J in oracle.jacobians(HR, HF, 0.9, 2, 0.2, "bernoulli", "summed"))
    assert hs.null_dim == 0
    assert rmt.mean_square_rate(hs, sch) == pytest.approx(np.max(np.abs(np.linalg.eigvals(full))), rel=1e-9)


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("sampling", SAMPLINGS)
def test_second_moment_matches_oracle_recursion(sampling, schedule):
    hs, HR, HF = make_set("rank1", seed=7, n_r=3, n_f=2, d=5)  # span 5? rank1: 3+2 = 5
    sch = Schedule(0.8, 2, alpha=0.3, sampling=sampling, schedule=schedule)
    rng = np.random.default_rng(1)
    A = rng.standard_normal((5, 5))
    M0 = A @ A.T
    want = oracle.oracle_second_moments(HR, HF, 0.8, 2, 0.3, sampling, schedule, M0, 6)
    got = rmt.second_moment(hs, sch, 6, M0, return_matrices=True)
    np.testing.assert_allclose(got.total, np.trace(want, axis1=1, axis2=2), rtol=1e-10)
    np.testing.assert_allclose(got.matrices, want, rtol=1e-9, atol=1e-12 * np.abs(want).max())


def test_second_moment_with_null_space_and_vector_start():
    rng = np.random.default_rng(4)
    G = rng.standard_normal((3, 5))
    H = np.einsum("na,nb->nab", G, G)
    hs = HessianSet.from_factors(G)
    sch = Schedule(0.3, 1, sampling="with_replacement")
    w0 = rng.standard_normal(5)
    want = oracle.oracle_second_moments(H, None, 0.3, 1, 0.0, "with_replacement", "summed", np.outer(w0, w0), 5)
    got = rmt.second_moment(hs, sch, 5, w0, return_matrices=True)
    np.testing.assert_allclose(got.total, np.trace(want, axis1=1, axis2=2), rtol=1e-10)
    np.testing.assert_allclose(got.matrices, want, atol=1e-10 * np.abs(want).max())
    # the null-space part is frozen
    assert got.null > 0
    np.testing.assert_allclose(got.span + got.null, got.total)
    default = rmt.second_moment(hs, sch, 3)
    wantI = oracle.oracle_second_moments(H, None, 0.3, 1, 0.0, "with_replacement", "summed", np.eye(5), 3)
    np.testing.assert_allclose(default.total, np.trace(wantI, axis1=1, axis2=2), rtol=1e-10)


@pytest.mark.parametrize("rep", REPRS)
@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("sampling", SAMPLINGS)
def test_second_moment_matches_brute_force_monte_carlo(sampling, schedule, rep):
    hs, HR, HF = make_set(rep, seed=13, n_r=4, n_f=3, d=3)
    eta, B, alpha = 1.1, 2, 0.25
    sch = Schedule(eta, B, alpha=alpha, sampling=sampling, schedule=schedule)
    w0 = np.array([1.0, -0.5, 0.25])
    steps, R = 8, 40000
    exact = rmt.second_moment(hs, sch, steps, w0).total
    norms = oracle.brute_force_norms(np.random.default_rng(2024), HR, HF, eta, B, alpha, sampling, schedule, w0, steps, R)
    mean = norms.mean(0)
    se = norms.std(0, ddof=1) / np.sqrt(R)
    z = np.abs(mean[1:] - exact[1:]) / se[1:]
    # 5 standard errors: a false alarm has probability < 1e-5 across the 8 steps (fixed seed)
    assert z.max() < 5.0, (z, mean, exact)


@pytest.mark.parametrize("rank", [1, 2])
@pytest.mark.parametrize("sampling", ["with_replacement", "without_replacement"])
@pytest.mark.parametrize("schedule", SCHEDULES)
def test_low_rank_noise_path_matches_oracle(rank, sampling, schedule):
    # few samples in a larger span (Σk < r) take the low-rank Φ Y Φᵀ form of the noise operator
    rng = np.random.default_rng(21 + rank)
    HR, FR = oracle.random_psd_set(rng, 2, 6, rank)
    HF, FF = oracle.random_psd_set(rng, 2, 6, rank)
    hs = HessianSet.from_factors(FR, FF)
    sch = Schedule(1.3, 1, alpha=0.4, sampling=sampling, schedule=schedule)
    op = rmt.MeanSquareOperator(hs, sch)
    assert all(t.psi.shape[1] * t.psi.shape[2] < op.r for t in op.terms.values())
    exact, _ = oracle.oracle_rate(HR, HF, 1.3, 1, 0.4, sampling, schedule)
    for method in ("dense", "arpack"):
        assert rmt.mean_square_rate(hs, sch, method=method) == pytest.approx(exact, rel=1e-9)
