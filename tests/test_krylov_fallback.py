"""The summed Lanczos solve's fallback when its Krylov basis runs out (rmt/meansquare/operator.py):
``eigh`` of the packed matrix for N = r(r+1)/2 ≤ KRYLOV_DENSE_FALLBACK_PACKED, instead of
ARPACK's implicit restarts (which took minutes on a cluster at ρ(T) ≈ 1 in the coherence study)."""

from __future__ import annotations

import numpy as np
import pytest

import rmt
from rmt.meansquare import MeanSquareOperator, krylov
from rmt.meansquare.symmetric import dense_sym


@pytest.mark.parametrize("seed", [0, 1])
def test_fallback_is_the_dense_answer(monkeypatch, seed):
    rng = np.random.default_rng(seed)
    hs = rmt.HessianSet.from_factors(rng.standard_normal((30, 12)) / 4,
                                     rng.standard_normal((4, 12)) / 4)
    dyn = rmt.Dynamics(hs, rmt.Schedule(0.5, 4, alpha=0.2, forget_batch=2))
    op = MeanSquareOperator(dyn)
    monkeypatch.setattr(krylov, "LANCZOS_MAX_STEPS", 3)  # the basis runs out at once
    monkeypatch.setattr("rmt.meansquare.operator._secular_rate", lambda *a, **k: None)

    def no_arpack(*a, **k):
        raise AssertionError("ARPACK called although the packed matrix fits")

    monkeypatch.setattr(op, "_arpack", no_arpack)
    rate, X, method, converged = op._lanczos(1e-12)
    ref = dense_sym(op)
    assert method == "dense" and converged
    assert rate == pytest.approx(ref.rate, rel=1e-13)
    # the eigenmatrix is T's: T(X) = ρ X
    np.testing.assert_allclose(op.apply(X), rate * X, atol=1e-10 * np.max(np.abs(X)))
