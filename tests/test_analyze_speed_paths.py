"""Fast paths behind `rmt analyze` (issue 21's d = 65 bar) against the slow paths they replace.

* Monte Carlo kernels: a shared curvature C (λI or QQᵀ) stored once and applied as nb·Cw per
  batch (``plan._shared_storage``, ``_kernels._apply_shared``) against the per-sample dense
  storage H_i + C of ``path="dense"`` — same seeds, so the same batches: the paths must agree
  to round-off, for every schedule and sampling scheme, for the vector, spectrum and affine
  kernels, and with working coordinates beyond the span (drift directions, the null coordinate
  of a start).
* ``packed_matrix``: the rank-one fast path, now also taken for a shared curvature when c = e,
  against the matrix of T built column by column from ``_Eigenbasis.apply`` / ``noise``.
"""

import numpy as np
import pytest

import rmt
from rmt import HessianSet, Schedule
from rmt.dynamics import Dynamics
from rmt.montecarlo import _kernels as K_
from rmt.montecarlo.plan import _plan

SCHEDULES = [("summed", {}), ("alternating", {}), ("sam", {"sam_rho": 0.5, "sam_a": 1.0})]
SAMPLINGS = ["bernoulli", "with_replacement", "without_replacement"]


def _factors(seed, d, nr, nf):
    rng = np.random.default_rng(seed)
    FR = rng.standard_normal((nr, d)) / np.sqrt(d)
    FF = rng.standard_normal((nf, d)) / np.sqrt(d)
    gR = 0.3 * rng.standard_normal((nr, d))
    gF = 0.3 * rng.standard_normal((nf, d))
    return FR, FF, gR, gF


def _shared(kind, d, seed=3):
    rng = np.random.default_rng(seed)
    if kind == "lambda":
        return 0.4
    if kind == "weight-decay":  # λ on every coordinate but the last (an intercept): λI − λuuᵀ
        return np.sqrt(0.4) * np.eye(d)[:, :-1]
    k = 2 if kind == "low-rank" else d - 1  # factor storage / dense storage of C
    return 0.5 * rng.standard_normal((d, k)) / np.sqrt(d)


def _schedule(sched, samp, batch=2, eta=0.6, alpha=0.3):
    extra = dict(SCHEDULES)[sched]
    return Schedule(eta=eta, batch=batch, alpha=0.0 if sched == "sam" else alpha,
                    sampling=samp, schedule=sched, forget_batch=2, **extra)


_MODE = {"lambda": K_.DIAG, "low-rank": K_.FACTOR, "wide": K_.DENSE, "weight-decay": K_.SHIFTED}


@pytest.mark.filterwarnings("ignore::rmt.stationarity.NotStationaryWarning")  # random gradients
@pytest.mark.parametrize("kind", ["lambda", "low-rank", "wide", "weight-decay"])
@pytest.mark.parametrize("sched", [s for s, _ in SCHEDULES])
@pytest.mark.parametrize("samp", SAMPLINGS)
def test_shared_curvature_applied_once_per_batch_is_the_per_sample_storage(kind, sched, samp):
    # d = 7 > r = 6 (five rank-one factors + the shared part): drift directions and, with λI, a
    # null mode; the gram path keeps C apart, the dense path writes H_i + C out per sample
    d = 7
    FR, FF, gR, gF = _factors(11, d, 4, 3)
    FR, FF = FR[:3], FF[:2]
    gR, gF = gR[:3], gF[:2]
    shared = _shared(kind, d)
    hs = HessianSet.from_factors(FR, FF, retain_gradients=gR, forget_gradients=gF, shared=shared)
    plain = HessianSet.from_factors(FR, FF, shared=shared)
    sch = _schedule(sched, samp)
    dyn = Dynamics(hs, sch)
    gram = _plan(dyn, "auto", full_coordinates=False, width=dyn.p)
    assert gram.path == "gram" and gram.shared[1] == _MODE[kind]  # the fast storage is used
    assert _plan(dyn, "dense", full_coordinates=False, width=dyn.p).shared[1] == K_.NO_SHARED

    def close(a, b):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-12)

    # vector kernel (simulate: log‖w_k‖ of every replica and step)
    dp = Dynamics(plain, sch)
    a = rmt.simulate(dp, steps=30, replicas=5, seed=2, path="gram")
    b = rmt.simulate(dp, steps=30, replicas=5, seed=2, path="dense")
    close(a.log_norm_sq, b.log_norm_sq)
    # with a start's null part (one extra null working coordinate under λI)
    w0 = np.random.default_rng(5).standard_normal(d)
    a = rmt.simulate(dp, steps=20, replicas=4, seed=9, w0=w0, path="gram")
    b = rmt.simulate(dp, steps=20, replicas=4, seed=9, w0=w0, path="dense")
    close(a.log_norm_sq, b.log_norm_sq)
    # spectrum kernel
    a = rmt.lyapunov_spectrum(dp, steps=25, replicas=3, seed=4, k=2, burn_in=2, path="gram")
    b = rmt.lyapunov_spectrum(dp, steps=25, replicas=3, seed=4, k=2, burn_in=2, path="dense")
    close(a.per_replica, b.per_replica)
    # affine kernel, with drift and a start
    start = np.random.default_rng(6).standard_normal(d)
    a = rmt.affine_paths(dyn, steps=40, replicas=6, seed=3, start=start, path="gram")
    b = rmt.affine_paths(dyn, steps=40, replicas=6, seed=3, start=start, path="dense")
    close(a.log_norm, b.log_norm)
    close(a.final_state, b.final_state)
    # and the numpy reference of the kernels on the same (gram) storage
    c = rmt.affine_paths(dyn, steps=40, replicas=2, seed=3, start=start, path="gram",
                         backend="reference")
    close(a.log_norm[:2], c.log_norm)


# ---------------------------------------------------------------------- packed_matrix
def _columns(eig, mean):
    """The packed matrix of T (mean) or of its noise part, one column per packed basis vector."""
    from rmt.meansquare.eigenbasis import packed_columns

    return packed_columns(eig, mean)


@pytest.mark.parametrize("shared", [None, "lambda", "low-rank", "wide", "weight-decay"])
@pytest.mark.parametrize("samp", SAMPLINGS)
@pytest.mark.parametrize("seed", [0, 1])
def test_packed_matrix_fast_path_is_the_column_by_column_matrix(shared, samp, seed):
    from rmt.meansquare import MeanSquareOperator
    from rmt.meansquare.eigenbasis import packed_matrix

    d = 5
    FR, FF, _, _ = _factors(seed, d, 6, 4)
    sh = None if shared is None else _shared(shared, d, seed=seed + 7)
    hs = HessianSet.from_factors(FR, FF, shared=sh)
    dyn = Dynamics(hs, Schedule(eta=0.7, batch=3, alpha=0.35, sampling=samp, forget_batch=2))
    eig = MeanSquareOperator(dyn).eigenbasis
    fast_taken = all(t.psi.shape[2] == 1 and (t.shared is None or t.c == t.e)
                     for _, t in eig.terms)
    assert fast_taken == (shared is None or samp != "bernoulli")
    for mean in (True, False):
        want = _columns(eig, mean)
        got, size = packed_matrix(eig, mean=mean)
        scale = float(np.max(np.abs(want)))
        np.testing.assert_allclose(got, 0.5 * (want + want.T), rtol=0, atol=1e-13 * scale)
        if shared is not None:  # the size the column-by-column path reports, to round-off
            assert size == pytest.approx(float(np.linalg.norm(want)), rel=1e-12)


@pytest.mark.parametrize("r", [1, 2, 5, 9])
def test_sym_kron_is_the_packed_matrix_of_the_congruence(r):
    # entry (a, b) = w_a·f_b·(A_ik A_jl + A_il A_jk): column b is pack(A·unpack(e_b)·A)
    import math

    from rmt.meansquare.eigenbasis import sym_kron

    rng = np.random.default_rng(r)
    A = rng.standard_normal((r, r))
    A = A + A.T
    iu = np.triu_indices(r)
    w = np.where(iu[0] == iu[1], 1.0, math.sqrt(2.0))
    N = len(w)
    want = np.empty((N, N))
    for b in range(N):
        M = np.zeros((r, r))
        M[iu[0][b], iu[1][b]] = 1.0 / w[b]
        M = M + np.triu(M, 1).T
        want[:, b] = (A @ M @ A)[iu] * w
    np.testing.assert_allclose(sym_kron(A, iu, w), want, rtol=0, atol=1e-13 * np.max(A**2))


# ---------------------------------------------------------------------- final_moments
@pytest.mark.parametrize("N", [2, 3, 10, 120])
def test_packed_eigh_is_numpys_decomposition(N):
    # λ and the action of V (V = Q·Z applied by reflectors, never formed) against numpy's eigh:
    # f(T)X = V f(λ) VᵀX is sign-independent; Vᵀ is orthogonal; the input is left unchanged
    from rmt.affine import _packed_eigh

    rng = np.random.default_rng(N)
    A = rng.standard_normal((N, N))
    A = A + A.T
    lam, to_eig, from_eig = _packed_eigh(A)
    want_lam, V = np.linalg.eigh(A)
    np.testing.assert_allclose(lam, want_lam, rtol=0, atol=1e-13 * np.max(np.abs(want_lam)))
    X = rng.standard_normal((N, 3))
    x = X[:, 0].copy()
    keep = (X.copy(), x.copy())
    f = np.exp(-np.arange(N) / N)
    np.testing.assert_allclose(from_eig(f[:, None] * to_eig(X)), V @ (f[:, None] * (V.T @ X)),
                               rtol=0, atol=1e-12)
    np.testing.assert_allclose(from_eig(to_eig(x)), x, rtol=0, atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(to_eig(X), axis=0), np.linalg.norm(X, axis=0),
                               rtol=1e-13)
    np.testing.assert_allclose(np.abs(to_eig(X)), np.abs(V.T @ X), rtol=0, atol=1e-12)
    assert np.array_equal(X, keep[0]) and np.array_equal(x, keep[1])
    # overwrite=True (the transpose of a C-ordered symmetric matrix as its Fortran copy): same
    lam2, to_eig2, _ = _packed_eigh(A.copy(), overwrite=True)
    assert np.array_equal(lam2, lam) and np.array_equal(to_eig2(X), to_eig(X))


@pytest.mark.filterwarnings("ignore::rmt.stationarity.NotStationaryWarning")  # random gradients
@pytest.mark.parametrize("shared", [None, "lambda", "low-rank", "wide", "weight-decay"])
@pytest.mark.parametrize("samp", SAMPLINGS)
def test_final_moments_closed_form_is_the_recursion_with_shared_curvature(shared, samp):
    # d = 9 with 14 rank-one factors: every coordinate on the span (p = r, no null mode), so the
    # closed form applies (N = 45, the tridiagonal route of _packed_eigh) and affine-bounded uses
    # it; the packed matrix takes the rank-one path when c = e
    from rmt.affine import _run_moments, final_moments, start_coordinates

    d = 9
    FR, FF, gR, gF = _factors(21, d, 10, 4)
    hs = HessianSet.from_factors(FR, FF, retain_gradients=gR, forget_gradients=gF,
                                 shared=None if shared is None else _shared(shared, d))
    dyn = Dynamics(hs, Schedule(eta=0.5, batch=3, alpha=0.3, sampling=samp, forget_batch=2))
    assert dyn.p == dyn.r == d and not dyn.has_null_mode
    for start in (None, "span"):
        M0, m0, frozen = start_coordinates(dyn, start)
        for K in (0, 1, 7, 300):
            MK, mK = final_moments(dyn, K, M0, m0)
            mo = _run_moments(dyn, K, M0, m0, frozen)
            scale = float(np.max(np.abs(mo.M_final)))
            np.testing.assert_allclose(MK, mo.M_final, rtol=0, atol=1e-10 * max(scale, 1e-300))
            mscale = float(np.max(np.abs(mo.mean[-1])))
            np.testing.assert_allclose(mK, mo.mean[-1], rtol=0, atol=1e-10 * max(mscale, 1e-300))
