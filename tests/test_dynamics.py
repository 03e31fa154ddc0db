"""rmt.Dynamics: the one definition of the step, checked against independent dense oracles."""

import itertools

import numpy as np
import pytest

import rmt
from rmt import Dynamics, HessianSet, Schedule
from rmt.meansquare import MeanSquareOperator

from oracle import batch_outcomes, jacobians, random_psd_set

SAMPLINGS = ["bernoulli", "with_replacement", "without_replacement"]
SCHEDULES = [("summed", 0.4), ("alternating", 0.4), ("summed", 0.0), ("summed", 1.0),
             ("sam", 0.0)]


def _set(seed, d=3, nr=3, nf=2, rank=1):
    rng = np.random.default_rng(seed)
    return random_psd_set(rng, nr, d, rank)[0], random_psd_set(rng, nf, d, rank)[0]


def _schedule(kind, alpha, sampling):
    extra = {"sam_rho": 0.7} if kind == "sam" else {}
    return Schedule(0.3, 2, alpha=alpha, sampling=sampling, schedule=kind, **extra)


@pytest.mark.parametrize("sampling", SAMPLINGS)
@pytest.mark.parametrize("kind,alpha", SCHEDULES)
def test_step_matches_dense_oracle_jacobians(sampling, kind, alpha):
    """Dynamics.step over every batch outcome reproduces the oracle's J (full coordinates)."""
    HR, HF = _set(1)
    hs = HessianSet.from_dense(HR, HF)
    sch = _schedule(kind, alpha, sampling)
    dyn = Dynamics(hs, sch)
    U = dyn.basis
    oracle = jacobians(HR, HF, sch.eta, sch.batch, alpha, sampling, kind, sam_rho=sch.sam_rho)
    R = batch_outcomes(3, 2, sampling) if "retain" in dyn.active else [(1.0, None)]
    F = batch_outcomes(2, 2, sampling) if "forget" in dyn.active else [(1.0, None)]
    mine = []
    for (pr, xr), (pf, xf) in itertools.product(R, F):
        J, b = dyn.step({"retain": xr, "forget": xf})
        assert np.all(b == 0)
        mine.append((pr * pf, U @ J @ U.T + (np.eye(3) - U @ U.T)))
    # compare the laws through E[J ⊗ J] (outcome order may differ between enumerations)
    EJJ = sum(p * np.kron(J, J) for p, J in mine)
    EJJ_oracle = sum(p * np.kron(J, J) for p, J in oracle)
    np.testing.assert_allclose(EJJ, EJJ_oracle, atol=1e-13)
    op = MeanSquareOperator(dyn)
    # T on the span equals the enumerated E[J ⊗ J] in span coordinates
    T_span = sum(p * np.kron(U.T @ J @ U, U.T @ J @ U) for p, J in oracle)
    np.testing.assert_allclose(op.matrix(), T_span, atol=1e-13)


@pytest.mark.parametrize("kind,alpha", SCHEDULES)
def test_linear_operator_matvec_adjoint_and_matrix(kind, alpha):
    HR, HF = _set(2, d=4, nr=4, nf=3, rank=2)
    hs = HessianSet.from_dense(HR, HF)
    op = MeanSquareOperator(hs, _schedule(kind, alpha, "with_replacement"))
    r = op.r
    rng = np.random.default_rng(0)
    X, M = rng.standard_normal((2, r, r))
    Tm = op.matrix()
    np.testing.assert_allclose(op.matvec(M.ravel()), Tm @ M.ravel(), atol=1e-12)
    np.testing.assert_allclose(op.rmatvec(X.ravel()), Tm.T @ X.ravel(), atol=1e-12)
    np.testing.assert_allclose(op.H.matvec(X.ravel()), Tm.T @ X.ravel(), atol=1e-12)
    np.testing.assert_allclose(op.matmat(np.column_stack([M.ravel(), X.ravel()])),
                               Tm @ np.column_stack([M.ravel(), X.ravel()]), atol=1e-12)
    assert op.shape == (r * r, r * r)
    if kind == "summed":
        np.testing.assert_allclose(Tm, Tm.T, atol=1e-12)


def test_public_functions_accept_a_dynamics():
    HR, HF = _set(3)
    hs = HessianSet.from_dense(HR, HF)
    sch = Schedule(0.4, 1, alpha=0.2, sampling="without_replacement")
    dyn = Dynamics(hs, sch)
    assert rmt.mean_square_rate(dyn) == rmt.mean_square_rate(hs, sch)
    assert rmt.critical_eta(dyn) == rmt.critical_eta(hs, sch)
    assert rmt.critical_batch(dyn) == rmt.critical_batch(hs, sch)
    np.testing.assert_array_equal(rmt.second_moment(dyn, 5).total,
                                  rmt.second_moment(hs, sch, 5).total)
    with pytest.raises(TypeError, match="not both"):
        rmt.mean_square_rate(dyn, sch)
    with pytest.raises(TypeError, match="schedule is required"):
        rmt.mean_square_rate(hs)


def test_terms_weights_batches_and_coefficients():
    HR, HF = _set(4, nr=5, nf=3)
    hs = HessianSet.from_dense(HR, HF)
    dyn = Dynamics(hs, Schedule(0.5, 2, alpha=0.3, sampling="without_replacement",
                                forget_batch=1))
    R, F = dyn.terms
    assert (R.name, R.n, R.batch, F.name, F.n, F.batch) == ("retain", 5, 2, "forget", 3, 1)
    assert R.weight == pytest.approx(-0.5 * 0.7) and F.weight == pytest.approx(0.5 * 0.3)
    assert (R.c, R.e) == pytest.approx(((5 - 2) / (2 * 4),) * 2)
    assert (F.c, F.e) == pytest.approx((1.0, 1.0))
    assert Dynamics(hs, Schedule(0.5, 2)).active == ("retain",)
    assert Dynamics(hs, Schedule(0.5, 2, alpha=1.0)).active == ("forget",)
    assert "r=3" in repr(dyn)


def test_gradients_for_one_set_only_is_rejected_when_both_enter():
    HR, HF = _set(5)
    g = np.ones((3, 3))
    hs = HessianSet.from_dense(HR, HF, retain_gradients=g)
    Dynamics(hs, Schedule(0.3, 1))  # α = 0: only the retain set enters, fine
    with pytest.raises(ValueError, match="forget_gradients"):
        Dynamics(hs, Schedule(0.3, 1, alpha=0.5))
