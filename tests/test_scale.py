"""The chunked-Gram path for large d (issue 11), checked at small d against the thin-SVD path.

``GRAM_MIN_ENTRIES`` is lowered so that tiny sets take the large-d path (one chunked Gram pass,
implicit basis U = Zᵀ C, float32 kept); ``CHUNK_ENTRIES`` is lowered so that the pass really
runs over several column chunks. Every quantity must agree with the default (float64, SVD)
path, which the rest of the suite checks against dense oracles.
"""

import numpy as np
import pytest

import rmt
import rmt.hessians as H
from rmt import HessianSet, Schedule
from rmt.affine import affine_moments, stationary
from rmt.dynamics import Dynamics
from rmt.meansquare import mean_square


@pytest.fixture
def large(monkeypatch):
    def make(*args, **kw):
        monkeypatch.setattr(H, "GRAM_MIN_ENTRIES", 0)
        monkeypatch.setattr(H, "CHUNK_ENTRIES", 64)
        hs = HessianSet.from_factors(*args, **kw)
        monkeypatch.setattr(H, "GRAM_MIN_ENTRIES", 2**26)
        return hs
    return make


def _data(seed=0, d=40, nr=6, nf=3, k=None, dtype=np.float64):
    rng = np.random.default_rng(seed)
    shape = (lambda n: (n, d)) if k is None else (lambda n: (n, d, k))
    R = (rng.standard_normal(shape(nr)) / np.sqrt(d)).astype(dtype)
    F = (rng.standard_normal(shape(nf)) / np.sqrt(d)).astype(dtype)
    gR = (rng.standard_normal((nr, d)) * 0.1).astype(dtype)
    gF = (rng.standard_normal((nf, d)) * 0.1).astype(dtype)
    return R, F, gR, gF


SCHEDULES = [Schedule(0.7, 2, alpha=0.3, sampling="without_replacement"),
             Schedule(0.7, 2, alpha=0.3, sampling="bernoulli", schedule="alternating"),
             Schedule(0.7, 2, sampling="with_replacement", schedule="sam", sam_rho=0.4)]


@pytest.mark.parametrize("k", [None, 2])
@pytest.mark.parametrize("shared", [None, 0.3])
def test_gram_path_matches_svd_path(large, k, shared):
    R, F, gR, gF = _data(k=k)
    kw = dict(retain_gradients=gR, forget_gradients=gF, shared=shared)
    small = HessianSet.from_factors(R, F, **kw)
    big = large(R, F, **kw)
    assert big._large and not small._large
    assert isinstance(big.reduction().basis, H.ImplicitBasis)
    assert big.span_dim == small.span_dim and big.null_dim == small.null_dim
    a, b = rmt.coherence(small), rmt.coherence(big)
    np.testing.assert_allclose(b.S, a.S, rtol=1e-12)
    np.testing.assert_allclose(big.max_eigenvalues("forget"), small.max_eigenvalues("forget"),
                               rtol=1e-12)
    for sch in SCHEDULES:
        ds, db = Dynamics(small, sch), Dynamics(big, sch)
        assert db.q == ds.q
        ra, rb = mean_square(ds).rate, mean_square(db).rate
        assert abs(ra - rb) <= 1e-11 * ra
        ma, mb = affine_moments(ds, 6), affine_moments(db, 6)
        np.testing.assert_allclose(mb.expected_sq_distance, ma.expected_sq_distance, rtol=1e-10)
        np.testing.assert_allclose(mb.mean_norm, ma.mean_norm, rtol=1e-10, atol=1e-14)
        start = np.random.default_rng(1).standard_normal(R.shape[1])
        ma, mb = affine_moments(ds, 4, start=start), affine_moments(db, 4, start=start)
        np.testing.assert_allclose(mb.expected_sq_distance, ma.expected_sq_distance, rtol=1e-10)
        np.testing.assert_allclose(db.mean_drift() @ db.mean_drift(),
                                   ds.mean_drift() @ ds.mean_drift(), rtol=1e-10)


def test_implicit_basis_projects_and_lifts_like_its_matrix(large):
    R, F, gR, gF = _data(d=50)
    hs = large(R, F, retain_gradients=gR, forget_gradients=gF)
    dyn = Dynamics(hs, SCHEDULES[0])
    W = H.hstack_bases(dyn.basis, dyn.drift_basis)
    Wm = np.asarray(W)
    np.testing.assert_allclose(Wm.T @ Wm, np.eye(dyn.p), atol=1e-12)  # orthonormal
    x = np.random.default_rng(2).standard_normal((3, 50))
    np.testing.assert_allclose(H.project(W, x), x @ Wm, atol=1e-13)
    y = np.random.default_rng(3).standard_normal((3, dyn.p))
    np.testing.assert_allclose(H.lift(W, y), y @ Wm.T, atol=1e-13)
    U = dyn.basis
    np.testing.assert_allclose(U.T @ x[0], np.asarray(U).T @ x[0], atol=1e-13)
    # the gradients are reproduced by their [U, V] coordinates: nothing of them is lost
    G = np.concatenate([gR, gF])
    coords = np.concatenate([dyn.term("retain").gradients, dyn.term("forget").gradients])
    np.testing.assert_allclose(coords @ Wm.T, G, atol=1e-12)


def test_float32_factors_are_not_upcast_and_match_float64_of_the_same_values(large):
    R, F, gR, gF = _data(d=3000, dtype=np.float32)
    big = large(R, F, retain_gradients=gR, forget_gradients=gF)
    assert big._retain is R and R.dtype == np.float32  # neither copied nor upcast
    R64, F64, gR64, gF64 = (a.astype(float) for a in (R, F, gR, gF))
    ref = HessianSet.from_factors(R64, F64, retain_gradients=gR64, forget_gradients=gF64)
    # the Gram of the float32 values: float32 chunk sums, float64 across chunks — within a few
    # float32 roundings of the norms (the precision of the input itself)
    Z = np.concatenate([R64, F64, gR64, gF64])
    exact = Z @ Z.T
    norms = np.sqrt(np.diag(exact))
    err = np.abs(big._joint_gram() - exact) / np.outer(norms, norms)
    assert err.max() <= 8 * np.finfo(np.float32).eps
    sch = SCHEDULES[0]
    a, b = mean_square(ref, sch).rate, mean_square(big, sch).rate
    assert abs(a - b) <= 1e-6 * a
    np.testing.assert_allclose(rmt.coherence(big).S, rmt.coherence(ref).S, rtol=1e-5, atol=1e-7)


def test_stationary_and_forecast_on_the_gram_path(large):
    R, F, gR, gF = _data(seed=4, d=30, nr=8, nf=2)
    gR, gF = gR * 0.01, gF * 0.01
    sch = Schedule(0.5, 2, alpha=0.1, sampling="without_replacement")
    kw = dict(retain_gradients=gR, forget_gradients=gF, shared=0.2)
    small, big = HessianSet.from_factors(R, F, **kw), large(R, F, **kw)
    sa, sb = stationary(Dynamics(small, sch)), stationary(Dynamics(big, sch))
    assert sa.exists and sb.exists
    np.testing.assert_allclose(sb.mean_full, sa.mean_full, rtol=1e-9, atol=1e-13)
    assert abs(sa.rms_distance - sb.rms_distance) <= 1e-9 * sa.rms_distance
    # Monte Carlo in [U, V] coordinates (numpy twin of the kernel: no JIT in this test): the
    # same draws give the same paths, and the lazily lifted final states agree
    kw = dict(steps=5, replicas=3, seed=1, start=np.ones(30), backend="reference")
    paths = rmt.affine_paths(Dynamics(big, sch), **kw)
    ref = rmt.affine_paths(Dynamics(small, sch), **kw)
    np.testing.assert_allclose(paths.log_norm, ref.log_norm, rtol=1e-9)
    np.testing.assert_allclose(paths.final_state, ref.final_state, rtol=1e-8, atol=1e-12)


def test_chunked_validation_names_the_argument(monkeypatch):
    monkeypatch.setattr(H, "CHUNK_ENTRIES", 8)
    R, F, gR, gF = _data()
    bad = R.copy()
    bad[5, 3] = np.nan
    with pytest.raises(ValueError, match="retain contains NaN or inf"):
        HessianSet.from_factors(bad, F)
    bad = gF.copy()
    bad[2, 0] = np.inf
    with pytest.raises(ValueError, match="forget_gradients contains NaN or inf"):
        HessianSet.from_factors(R, F, retain_gradients=gR, forget_gradients=bad)
    with pytest.raises(TypeError, match="retain must be real"):
        HessianSet.from_factors(R.astype(complex), F)


def test_factor_and_gradient_coordinates_in_an_implicit_basis(large):
    R, F, gR, gF = _data(d=50, k=2)
    big = large(R, F, retain_gradients=gR, forget_gradients=gF)
    dyn = Dynamics(big, Schedule(0.7, 2, alpha=0.0))  # retain span only: forget sticks out
    W = H.hstack_bases(dyn.basis, dyn.drift_basis)
    Wm = np.asarray(W)
    np.testing.assert_allclose(big.factor_coordinates("forget", W),
                               np.einsum("ndk,dm->nkm", F, Wm), atol=1e-13)
    np.testing.assert_allclose(big.gradient_coordinates("forget", W), gF @ Wm, atol=1e-13)
    flat = F.transpose(0, 2, 1).reshape(-1, 50)
    np.testing.assert_allclose(big.factor_gram("forget"), flat @ flat.T, atol=1e-14)
