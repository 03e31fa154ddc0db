"""HessianSet construction, views, validation; Schedule validation; ensembles' randomness."""

import numpy as np
import pytest

import rmt
from rmt import HessianSet, Schedule
from rmt.ensembles import aligned, commuting, hessian_test, near_optimal, wishart

import oracle


def test_views_agree_across_representations():
    rng = np.random.default_rng(0)
    H, F = oracle.random_psd_set(rng, 4, 5, 2)
    a, b = HessianSet.from_dense(H), HessianSet.from_factors(F)
    np.testing.assert_allclose(a.dense(), H)
    np.testing.assert_allclose(b.dense(), H, atol=1e-14)
    np.testing.assert_allclose(a.mean(), H.mean(0), atol=1e-14)
    np.testing.assert_allclose(b.mean(), H.mean(0), atol=1e-14)
    lam = np.linalg.eigvalsh(H)[:, -1]
    np.testing.assert_allclose(a.max_eigenvalues(), lam, rtol=1e-10)
    np.testing.assert_allclose(b.max_eigenvalues(), lam, rtol=1e-10)
    tr = np.einsum("iab,jba->ij", H, H)
    np.testing.assert_allclose(b.trace_products(), tr, rtol=1e-10)
    np.testing.assert_allclose(a.trace_products(), tr, rtol=1e-10)
    assert a.span_dim == b.span_dim == 5 and a.null_dim == 0
    assert b.kind == "factor" and b.rank == 2 and a.kind == "dense"


def test_factor_sets_never_form_dxd_matrices(monkeypatch):
    # d = 20000 would need 3.2 GB for per-sample d×d matrices; the span is 30-dimensional
    rng = np.random.default_rng(1)
    G = rng.standard_normal((30, 20000))
    hs = HessianSet.from_factors(G[:20], G[20:])
    assert hs.span_dim == 30 and hs.null_dim == 20000 - 30
    res = rmt.coherence(hs)
    assert 1 <= res.sigma <= 30
    rate = rmt.mean_square_rate(hs, Schedule(1e-5, 4, alpha=0.1))
    assert np.isfinite(rate)


def test_repr_is_readable():
    hs = hessian_test(10, 2, forget=3, seed=0)
    text = repr(hs)
    assert "rank1" in text and "n_retain=7" in text and "n_forget=3" in text and "dim=9" in text


def test_commuting_views():
    lam = np.array([[1.0, 0.0, 2.0], [0.5, 0.0, 1.0]])
    hs = commuting(lam, basis="random", seed=3)
    Q = hs.basis
    np.testing.assert_allclose(hs.dense()[0], Q @ np.diag(lam[0]) @ Q.T, atol=1e-14)
    assert hs.span_dim == 2 and hs.null_dim == 1  # direction 2 is never curved


def test_hessian_test_structure():
    hs = hessian_test(8, 3)
    G = hs.factors()[:, :, 0]
    amp2 = 2.0 * 8 / 3
    np.testing.assert_allclose((G**2).sum(1), amp2)
    assert np.all(G[:3, 0] ** 2 == pytest.approx(amp2)) and np.all(G[3:, 0] == 0)


def test_near_optimal_structure():
    hs = near_optimal(10, 4, 1.5, d=3)
    G = hs.factors()[:, :, 0]
    np.testing.assert_allclose(G[:4, 0] ** 2, 1.5 * 10 / 4)
    assert np.all(G[4:] == 0)


@pytest.mark.parametrize(
    "make",
    [
        lambda s: hessian_test(20, 3, forget=5, seed=s),
        lambda s: aligned(5, 4, 12, 0.2, 0.3, 0.1, seed=s),
        lambda s: aligned(5, 4, 12, 0.2, 0.3, 0.1, noise="gaussian", seed=s),
        lambda s: commuting(np.ones((3, 4)), basis="random", seed=s),
        lambda s: wishart(5, 2, d=6, k=2, seed=s),
    ],
)
def test_ensembles_are_reproducible_and_leave_global_state_alone(make):
    state = np.random.get_state()[1].copy()
    a, b = make(12), make(12)
    np.testing.assert_array_equal(a.dense(), b.dense())
    c = make(np.random.default_rng(12))
    np.testing.assert_array_equal(a.dense(), c.dense())
    assert np.array_equal(np.random.get_state()[1], state)


# ----------------------------------------------------------------------------- bad input
def test_dense_validation_names_the_problem():
    H = np.eye(3)[None].repeat(2, 0)
    bad = H.copy()
    bad[1, 0, 1] = 0.5
    with pytest.raises(ValueError, match=r"retain\[1\] is not symmetric"):
        HessianSet.from_dense(bad)
    neg = H.copy()
    neg[0, 2, 2] = -0.1
    with pytest.raises(ValueError, match=r"forget\[0\] is not positive semi-definite"):
        HessianSet.from_dense(H, neg)
    tiny = H.copy()
    tiny[0, 2, 2] = -1e-12  # round-off relative to the scale is accepted
    assert HessianSet.from_dense(tiny).dense().shape == (2, 3, 3)
    with pytest.raises(ValueError, match="NaN or inf"):
        HessianSet.from_dense(np.full((1, 2, 2), np.nan))
    with pytest.raises(ValueError, match="shape"):
        HessianSet.from_dense(np.ones((2, 3, 4)))
    with pytest.raises(ValueError, match="dimensions differ"):
        HessianSet.from_dense(H, np.eye(2)[None])
    with pytest.raises(ValueError, match="at least one sample"):
        HessianSet.from_factors(np.ones((0, 3)))
    with pytest.raises(ValueError, match="inf"):
        HessianSet.from_factors(np.array([[1.0, np.inf]]))
    with pytest.raises(ValueError, match="non-negative"):
        HessianSet.from_commuting(np.array([[1.0, -1.0]]))
    with pytest.raises(ValueError, match="orthogonal"):
        HessianSet.from_commuting(np.ones((1, 2)), basis=np.ones((2, 2)))
    with pytest.raises(TypeError):
        HessianSet("rank1", np.ones((2, 2)))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(eta=0.0, batch=1), "eta must be > 0"),
        (dict(eta=-1.0, batch=1), "eta must be > 0"),
        (dict(eta=float("nan"), batch=1), "eta must be finite"),
        (dict(eta=0.1, batch=0), "batch must be >= 1"),
        (dict(eta=0.1, batch=1, alpha=1.5), r"alpha must lie in \[0, 1\]"),
        (dict(eta=0.1, batch=1, alpha=-0.1), r"alpha must lie in \[0, 1\]"),
        (dict(eta=0.1, batch=1, sampling="poisson"), "sampling must be one of"),
        (dict(eta=0.1, batch=1, schedule="interleaved"), "schedule must be one of"),
        (dict(eta=0.1, batch=1, forget_batch=0), "forget_batch must be >= 1"),
        (dict(eta=0.1, batch=1, alpha=0.2, schedule="sam", sam_rho=0.1), "alpha must be 0"),
        (dict(eta=0.1, batch=1, sam_rho=0.1), "only used with schedule='sam'"),
    ],
)
def test_schedule_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Schedule(**kwargs)


def test_schedule_type_errors():
    with pytest.raises(TypeError, match="batch must be an integer"):
        Schedule(0.1, 2.5)
    with pytest.raises(TypeError, match="eta must be a real number"):
        Schedule("0.1", 2)


def test_pair_validation():
    hs = hessian_test(10, 2, forget=3, seed=0)
    sgd_only = hessian_test(10, 2)
    with pytest.raises(ValueError, match="batch must be <= the retain set size n_retain=7"):
        rmt.mean_square_rate(hs, Schedule(0.1, 8))
    with pytest.raises(ValueError, match="forget set size n_forget=3"):
        rmt.mean_square_rate(hs, Schedule(0.1, 5, alpha=0.2))
    assert np.isfinite(rmt.mean_square_rate(hs, Schedule(0.1, 5, alpha=0.2, forget_batch=2)))
    with pytest.raises(ValueError, match="needs a forget set"):
        rmt.mean_square_rate(sgd_only, Schedule(0.1, 2, alpha=0.2))
    with pytest.raises(TypeError, match="hs must be a HessianSet"):
        rmt.mean_square_rate(np.eye(2), Schedule(0.1, 1))
    with pytest.raises(ValueError, match="steps must be >= 0"):
        rmt.second_moment(hs, Schedule(0.1, 2), -1)
    with pytest.raises(ValueError, match="m0"):
        rmt.second_moment(hs, Schedule(0.1, 2), 3, np.ones(3))
    with pytest.raises(ValueError, match="method must be one of"):
        rmt.mean_square_rate(hs, Schedule(0.1, 2), method="magic")
    with pytest.raises(ValueError, match="alpha must lie"):
        rmt.mixed_hessian(hs, 2.0)
    with pytest.raises(ValueError, match="every Hessian"):
        rmt.mean_square_rate(HessianSet.from_factors(np.zeros((3, 2))), Schedule(0.1, 1))


def test_seed_validation():
    with pytest.raises(ValueError, match="seed must be a non-negative"):
        hessian_test(10, 2, forget=3, seed=-1)
    with pytest.raises(TypeError, match="seed must be"):
        aligned(3, 2, 10, seed="abc")


def test_mixed_hessian_dense_and_matrix_free_agree():
    hs = wishart(6, 3, d=5, k=2, seed=4)
    D = rmt.mixed_hessian(hs, 0.3)
    np.testing.assert_allclose(D, 0.7 * hs.dense("retain").mean(0) - 0.3 * hs.dense("forget").mean(0), atol=1e-14)
    op = rmt.mixed_hessian(hs, 0.3, matrix_free=True)
    v = np.arange(5.0)
    np.testing.assert_allclose(op @ v, D @ v, atol=1e-13)
    lo, hi = rmt.mixed_hessian_extremes(hs, 0.3)
    ev = np.linalg.eigvalsh(D)
    assert lo == pytest.approx(ev[0], abs=1e-12) and hi == pytest.approx(ev[-1], rel=1e-12)


def test_mixed_hessian_extremes_ignore_the_null_space():
    # D on the null space is round-off; only span eigenvalues count
    G = np.random.default_rng(2).standard_normal((3, 8))
    hs = HessianSet.from_factors(G, 0.5 * G[:1])
    lo, hi = rmt.mixed_hessian_extremes(hs, 0.2)
    assert lo > 0
    assert np.linalg.eigvalsh(rmt.mixed_hessian(hs, 0.2))[0] == pytest.approx(0.0, abs=1e-12)


def test_small_genuine_curvature_is_kept_in_dense_sets():
    # regression: a 1e-9 eigenvalue is curvature, not round-off; dense and factor paths must agree
    H = np.array([np.diag([1.0, 1e-9])])
    F = np.array([np.diag([1.0, np.sqrt(1e-9)])])
    a, b = HessianSet.from_dense(H), HessianSet.from_factors(F)
    assert a.span_dim == b.span_dim == 2
    sch = Schedule(0.6, 1)
    assert rmt.mean_square_rate(a, sch) == pytest.approx(rmt.mean_square_rate(b, sch), rel=1e-12)
    assert rmt.mean_square_rate(a, sch) == pytest.approx((1 - 0.6e-9) ** 2, rel=1e-12)
