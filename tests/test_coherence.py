"""Coherence (THEORY §4) against dense matrix square roots, and the ensembles' documented values."""

import numpy as np
import pytest

import rmt
from rmt import HessianSet
from rmt.ensembles import aligned, aligned_expected_coherence, hessian_test, wishart

import oracle


def dense_coherence_matrix(H):
    roots = [oracle.sqrtm_psd(h) for h in H]
    return np.array([[np.linalg.norm(a @ b, "fro") for b in roots] for a in roots])


@pytest.mark.parametrize("rep", ["dense", "rank1", "factor"])
def test_coherence_matrix_matches_matrix_square_roots(rep):
    rng = np.random.default_rng(0)
    k = 1 if rep == "rank1" else 3
    HR, FR = oracle.random_psd_set(rng, 5, 4, k)
    HF, FF = oracle.random_psd_set(rng, 3, 4, k)
    hs = {
        "dense": lambda: HessianSet.from_dense(HR, HF),
        "rank1": lambda: HessianSet.from_factors(FR[:, :, 0], FF[:, :, 0]),
        "factor": lambda: HessianSet.from_factors(FR, FF),
    }[rep]()
    res = rmt.coherence(hs)
    H = np.concatenate([HR, HF])
    S = dense_coherence_matrix(H)
    np.testing.assert_allclose(res.S, S, rtol=1e-8, atol=1e-12)
    lam = np.array([np.linalg.eigvalsh(h)[-1] for h in H])
    assert res.sigma == pytest.approx(np.linalg.eigvalsh(S)[-1] / lam.max(), rel=1e-9)
    assert res.sigma_retain == pytest.approx(np.linalg.eigvalsh(S[:5, :5])[-1] / lam[:5].max(), rel=1e-9)
    assert res.sigma_forget == pytest.approx(np.linalg.eigvalsh(S[5:, 5:])[-1] / lam[5:].max(), rel=1e-9)
    x = np.linalg.svd(S[:5, 5:], compute_uv=False)[0] / np.sqrt(lam[:5].max() * lam[5:].max())
    assert res.sigma_cross == pytest.approx(x, rel=1e-9)
    # block bound of the docstring
    assert res.sigma * lam.max() <= max(np.linalg.eigvalsh(S[:5, :5])[-1], np.linalg.eigvalsh(S[5:, 5:])[-1]) + x * np.sqrt(lam[:5].max() * lam[5:].max()) + 1e-9


def test_rank_one_extremes():
    g = np.eye(6)[:5] * 2.0
    assert rmt.coherence(HessianSet.from_factors(g)).sigma == pytest.approx(1.0)
    same = np.tile(np.array([1.0, 2.0, 0.0]), (7, 1))
    assert rmt.coherence(HessianSet.from_factors(same)).sigma == pytest.approx(7.0)


@pytest.mark.parametrize("sigma", [1, 2, 7, 25, 50])
def test_hessian_test_grid_has_coherence_sigma(sigma):
    hs = hessian_test(100, sigma)
    assert hs.dim == 100 - sigma + 1
    assert rmt.coherence(hs).sigma == pytest.approx(sigma, rel=1e-12)
    assert np.linalg.eigvalsh(hs.mean())[-1] == pytest.approx(2.0, rel=1e-12)


def test_pair_gram_matches_direct_traces():
    rng = np.random.default_rng(1)
    HR, FR = oracle.random_psd_set(rng, 3, 4, 2)
    HF, FF = oracle.random_psd_set(rng, 2, 4, 2)
    res = rmt.coherence(HessianSet.from_factors(FR, FF))
    alpha = 0.3
    for sign in (-1.0, 1.0):
        a, b = 1 - alpha, sign * alpha
        A = [a * HR[r] + b * HF[f] for r in range(3) for f in range(2)]
        want = np.array([[np.trace(x @ y) for y in A] for x in A])
        np.testing.assert_allclose(res.pair_gram(alpha, sign), want, rtol=1e-10)
        assert res.pair_gram_lmax(alpha, sign) == pytest.approx(np.linalg.eigvalsh(want)[-1], rel=1e-9)


def test_pair_gram_lmax_matrix_free_path():
    hs = aligned(12, 8, 40, 0.3, 0.5, 0.7, seed=2)
    res = rmt.coherence(hs)
    dense = np.linalg.eigvalsh(res.pair_gram(0.2))[-1]
    assert res.pair_gram_lmax(0.2) == pytest.approx(dense, rel=1e-9)  # n_r n_f = 96 > 64: eigsh


@pytest.mark.parametrize("aR,aF,c", [(0.0, 0.0, 0.0), (0.5, 0.2, 0.8), (1.0, 0.3, -0.5), (0.9, 0.9, 1.0)])
def test_aligned_orthogonal_coherence_is_exact(aR, aF, c):
    nr, nf = 9, 5
    hs = aligned(nr, nf, 20, aR, aF, c, seed=4)
    res = rmt.coherence(hs)
    want = aligned_expected_coherence(nr, nf, 20, aR, aF, c)
    assert res.sigma_retain == pytest.approx(1 + (nr - 1) * aR, rel=1e-9)
    assert res.sigma_forget == pytest.approx(1 + (nf - 1) * aF, rel=1e-9)
    assert res.sigma_cross == pytest.approx(np.sqrt(aR * aF) * abs(c) * np.sqrt(nr * nf), abs=1e-9)
    assert res.sigma == pytest.approx(want["sigma"], rel=1e-9)


@pytest.mark.parametrize("aR,aF,c", [(0.0, 0.0, 0.0), (0.3, 0.6, 0.5)])
def test_aligned_gaussian_coherence_near_documented_expectation(aR, aF, c):
    nr, nf, d = 30, 20, 4000
    want = aligned_expected_coherence(nr, nf, d, aR, aF, c, noise="gaussian")
    got = [rmt.coherence(aligned(nr, nf, d, aR, aF, c, noise="gaussian", seed=s)) for s in range(3)]
    for key in ("sigma", "sigma_retain", "sigma_forget"):
        mean = np.mean([getattr(g, key) for g in got])
        assert mean == pytest.approx(want[key], rel=0.10), key


def test_wishart_shared_controls_alignment():
    lo = rmt.coherence(wishart(20, 0, d=50, k=2, shared=0.0, seed=0)).sigma
    hi = rmt.coherence(wishart(20, 0, d=50, k=2, shared=0.9, seed=0)).sigma
    assert 1 <= lo < hi <= 20 * 1.0001


def test_wishart_mean_hessian_expectation():
    hs = wishart(400, 0, d=6, k=3, scale=2.0, seed=1)
    # E H_i = scale·k·I/d
    np.testing.assert_allclose(hs.mean(), 2.0 * 3 / 6 * np.eye(6), atol=0.12)
