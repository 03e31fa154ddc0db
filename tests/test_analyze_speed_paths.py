"""Fast paths behind `rmt analyze` (issue 21's d = 65 bar) against the slow paths they replace.

* Monte Carlo kernels: a shared curvature C (λI or QQᵀ) stored once and applied as nb·Cw per
  batch (``engine._shared_storage``, ``_kernels._apply_shared``) against the per-sample dense
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
from rmt.montecarlo.engine import _plan

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
    k = 2 if kind == "low-rank" else d - 1  # factor storage / dense storage of C
    return 0.5 * rng.standard_normal((d, k)) / np.sqrt(d)


def _schedule(sched, samp, batch=2, eta=0.6, alpha=0.3):
    extra = dict(SCHEDULES)[sched]
    return Schedule(eta=eta, batch=batch, alpha=0.0 if sched == "sam" else alpha,
                    sampling=samp, schedule=sched, forget_batch=2, **extra)


_MODE = {"lambda": K_.DIAG, "low-rank": K_.FACTOR, "wide": K_.DENSE}


@pytest.mark.filterwarnings("ignore::rmt.stationarity.NotStationaryWarning")  # random gradients
@pytest.mark.parametrize("kind", ["lambda", "low-rank", "wide"])
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
    N = eig.r * (eig.r + 1) // 2
    cols = np.empty((N, N))
    for j in range(N):
        x = np.zeros(N)
        x[j] = 1.0
        M = eig.unpack(x)
        Y = eig.apply(M) if mean else eig.noise(M)
        cols[:, j] = eig.pack(0.5 * (Y + Y.T))
    return cols


@pytest.mark.parametrize("shared", [None, "lambda", "low-rank", "wide"])
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
