"""The moment recursion's fast step (``_Eigenbasis.recursion_apply``, rmt/meansquare/eigenbasis.py).

In the eigenbasis of E[J] the largest set's mean curvature is diagonal plus the other sets'
low-rank factors; the fast step forms e·H̄⁰MH̄⁰ from that. Checked against the Kronecker matrix
of T (an independent dense oracle, :meth:`MeanSquareOperator.matrix`) and against the generic
affine step iterated without the eigenbasis.
"""

from __future__ import annotations

import numpy as np
import pytest

import rmt
from rmt.affine import _run_moments, affine_step, start_coordinates
from rmt.meansquare import MeanSquareOperator


def _case(seed, d=40, n_r=60, n_f=5, k=1, shared=None, grads=False):
    rng = np.random.default_rng(seed)
    R = rng.standard_normal((n_r, d, k)) / np.sqrt(d) if k > 1 else \
        rng.standard_normal((n_r, d)) / np.sqrt(d)
    F = 2.0 * (rng.standard_normal((n_f, d, k)) if k > 1 else rng.standard_normal((n_f, d)))
    F /= np.sqrt(d)
    kw = {}
    if grads:
        kw = dict(retain_gradients=1e-2 * rng.standard_normal((n_r, d)),
                  forget_gradients=1e-2 * rng.standard_normal((n_f, d)))
        g = kw["retain_gradients"]
        g -= g.mean(axis=0)  # w* stationary: the mean retain+forget gradient is zero
        kw["forget_gradients"] -= kw["forget_gradients"].mean(axis=0)
    return rmt.HessianSet.from_factors(R, F, shared=shared, **kw)


@pytest.mark.parametrize("sampling", ["without_replacement", "with_replacement"])
@pytest.mark.parametrize("shared", [None, 0.3])
@pytest.mark.parametrize("k", [1, 2])
def test_fast_step_equals_dense_operator(sampling, shared, k):
    hs = _case(1 + k, k=k, shared=shared)
    dyn = rmt.Dynamics(hs, rmt.Schedule(0.4, 6, alpha=0.3, sampling=sampling, forget_batch=3))
    op = MeanSquareOperator(dyn)
    eig = op.eigenbasis
    assert eig._dominant_plan() is not None  # the fast form is used here
    r = dyn.r
    T = op.matrix()  # Kronecker oracle, row-major vec
    rng = np.random.default_rng(7)
    for _ in range(3):
        A = rng.standard_normal((r, r))
        M = A @ A.T / r
        want = (T @ M.ravel()).reshape(r, r)
        got = eig.from_basis(eig.recursion_apply(eig.to_basis(M)))
        assert np.max(np.abs(got - want)) <= 1e-12 * np.max(np.abs(want))


def test_fast_step_not_used_where_it_does_not_apply():
    # Bernoulli sampling with shared curvature: the shared term enters the noise
    hs = _case(3, shared=0.3)
    eig = MeanSquareOperator(rmt.Dynamics(hs, rmt.Schedule(0.4, 6, alpha=0.3, forget_batch=3))).eigenbasis
    assert eig._dominant_plan() is None and eig.recursion_apply == eig.apply
    # comparable set sizes: low rank does not pay
    hs2 = _case(4, n_r=30, n_f=30)
    eig2 = MeanSquareOperator(rmt.Dynamics(hs2, rmt.Schedule(
        0.4, 6, alpha=0.3, sampling="without_replacement", forget_batch=3))).eigenbasis
    assert eig2._dominant_plan() is None
    # a shared term that is not a multiple of I
    rng = np.random.default_rng(5)
    Qs = rng.standard_normal((40, 2)) / 7
    hs3 = _case(5, shared=Qs)
    eig3 = MeanSquareOperator(rmt.Dynamics(hs3, rmt.Schedule(
        0.4, 6, alpha=0.3, sampling="without_replacement", forget_batch=3))).eigenbasis
    assert eig3._dominant_plan() is None


@pytest.mark.parametrize("alpha", [0.1, 0.6])
def test_recursion_with_drift_matches_generic_step(alpha):
    # r = 70 ≥ EIGENBASIS_MIN_SPAN: _run_moments takes the eigenbasis path with the fast step;
    # the oracle iterates the generic affine_step (dense, no eigenbasis) in span coordinates
    hs = _case(11, d=70, n_r=90, n_f=6, grads=True, shared=0.05)
    dyn = rmt.Dynamics(hs, rmt.Schedule(0.3, 8, alpha=alpha, sampling="without_replacement",
                                        forget_batch=4))
    assert dyn.p == dyn.r == 70 and dyn.has_drift
    assert MeanSquareOperator(dyn).eigenbasis._dominant_plan() is not None
    start = np.random.default_rng(2).standard_normal(70)
    M, m, frozen = start_coordinates(dyn, start)
    fast = _run_moments(dyn, 25, M, m, frozen)
    want = []
    for _ in range(26):
        want.append(np.trace(M))
        M, m = affine_step(dyn, M, m)
    np.testing.assert_allclose(fast.expected_sq_distance - frozen, want, rtol=1e-11)


def test_zero_gradients_take_the_drift_free_step():
    # gradients that are all exactly zero (what the bridges leave of round-off gradients) give
    # the same moments as a set without gradients, through the drift-free step
    from rmt.affine import _eigen_affine_step

    base = _case(12, d=70, n_r=90, n_f=6)
    R, F = base.factors("retain"), base.factors("forget")
    zero = rmt.HessianSet.from_factors(R, F, retain_gradients=np.zeros((90, 70)),
                                       forget_gradients=np.zeros((6, 70)))
    sch = rmt.Schedule(0.3, 8, alpha=0.2, sampling="without_replacement", forget_batch=4)
    dz, d0 = rmt.Dynamics(zero, sch), rmt.Dynamics(base, sch)
    assert dz.has_drift and not d0.has_drift
    step = _eigen_affine_step(dz, MeanSquareOperator(dz).eigenbasis)
    assert step.__name__ == "<lambda>"  # the drift-free form
    start = np.random.default_rng(3).standard_normal(70)
    a = _run_moments(dz, 30, *start_coordinates(dz, start)).expected_sq_distance
    b = _run_moments(d0, 30, *start_coordinates(d0, start)).expected_sq_distance
    np.testing.assert_allclose(a, b, rtol=1e-12)
