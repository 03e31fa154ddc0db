"""Exact second moments E‖w_k‖² and the mixed Hessian D (docs/contract.md §2, §3)."""

from __future__ import annotations


from typing import cast

import numpy as np
import numpy.typing as npt
import scipy.sparse.linalg as spla
from dataclasses import dataclass, field

from ..hessians import check_hessian_set
from ..validation import check_finite_array, check_int, check_unit_interval
from ..dynamics import Dynamics, as_dynamics
from ..hessians import HessianSet
from ..schedule import Schedule, mixing_weights
from ..api import BOOL, HESSIANS, UNIT, analysis, at_least
from ..validation import Array
from .operator import MeanSquareOperator

# ---------------------------------------------------------------------- second moment
@dataclass(frozen=True)
class SecondMomentResult:
    """Exact E‖w_k‖² for k = 0..steps (contract §3: E[w_k w_kᵀ] = T^k(E[w_0 w_0ᵀ])).

    ``total`` = E‖w_k‖² (shape steps+1), ``span`` = the part on the span of the Hessians,
    ``null`` = the part on the common null space — a constant float, or with the null mode of a
    shared λI the array E‖v_k‖² = E[j²]^k ‖v_0‖² (steps+1,) — and ``matrices`` = E[w_k w_kᵀ] as
    (steps+1, d, d) when requested.
    """

    total: np.ndarray
    span: np.ndarray
    null: float | np.ndarray
    matrices: np.ndarray | None = field(default=None, repr=False)


@analysis({"steps": at_least(0), "m0": [None, Array(ndim=(1, 2))], "return_matrices": BOOL},
          blas=False)
def second_moment(hs: HessianSet | Dynamics, schedule: Schedule | int | None = None,
                  steps: int | None = None, m0: npt.ArrayLike | None = None, *,
                  return_matrices: bool = False) -> SecondMomentResult:
    """Exact second moments E‖w_k‖², k = 0..steps, by iterating T (contract §3).

    ``m0`` is E[w_0 w_0ᵀ] as a (d, d) PSD matrix, or a vector w_0 of shape (d,) (deterministic
    start, m0 = w_0 w_0ᵀ), or None for m0 = I. With w = u + v (u on the span U, v on the null
    space), v is frozen and ‖w‖² = ‖u‖² + ‖v‖², so E‖w_k‖² = tr T^k(Uᵀm0U) + tr(P_N m0).
    """
    # second_moment(dyn, steps, m0) puts steps and m0 in their places (rmt.api.analysis)
    op = MeanSquareOperator(as_dynamics(hs, cast("Schedule | None", schedule)))
    hs = op.hs
    if steps is None:
        raise TypeError("second_moment needs steps")
    steps = check_int(steps, "steps", minimum=0)
    d, U = hs.dim, op.reduction.basis
    if m0 is None:
        vec = None
        Muu = np.eye(op.r)
        null = float(d - op.r)
    else:
        m0 = check_finite_array(m0, "m0", ndim=(1, 2))
        if m0.ndim == 1:
            if m0.shape != (d,):
                raise ValueError(f"m0 as a vector must have shape ({d},), got {m0.shape}")
            vec = m0
            u = U.T @ m0
            Muu = np.outer(u, u)
            null = 0.0 if op.null_dim == 0 else float(max(m0 @ m0 - u @ u, 0.0))
        else:
            if m0.shape != (d, d):
                raise ValueError(f"m0 must have shape ({d}, {d}), got {m0.shape}")
            if np.max(np.abs(m0 - m0.T)) > 1e-10 * max(np.max(np.abs(m0)), 1e-300):
                raise ValueError("m0 must be symmetric (a second-moment matrix E[w0 w0ᵀ])")
            if np.linalg.eigvalsh(m0)[0] < -1e-10 * max(np.max(np.abs(m0)), 1e-300):
                raise ValueError("m0 must be positive semi-definite (a second-moment matrix)")
            vec = None
            Muu = U.T @ m0 @ U
            # tr(P_N m0 P_N) ≥ 0; exactly 0 without a null space (no round-off residue)
            null = 0.0 if op.null_dim == 0 else float(max(np.trace(m0) - np.trace(Muu), 0.0))
    span = np.empty(steps + 1)
    mats = None
    if return_matrices:
        if m0 is None:
            full0 = np.eye(d)
        elif vec is not None:
            full0 = np.outer(vec, vec)
        else:
            full0 = m0
        PN = np.eye(d) - U @ U.T
        C = U.T @ full0 @ PN  # cross moment E[u vᵀ] in span coordinates: evolves by E[J]
        NN = PN @ full0 @ PN
        mats = np.empty((steps + 1, d, d))
    M = Muu
    dyn = op.dynamics
    # the null part: frozen, or scaled by the null scalar j of a shared λI (E[j²] per step)
    null_growth, cross_map = 1.0, op.mean_map
    if dyn.has_null_mode:
        null_growth, cross_map = dyn.null_rate, dyn.null_cross_map()
        null = null * null_growth ** np.arange(steps + 1)
    for k in range(steps + 1):
        span[k] = np.trace(M)
        if mats is not None:
            UC = U @ C
            mats[k] = U @ M @ U.T + UC + UC.T + NN
            C = cross_map @ C
            NN = null_growth * NN
        if k < steps:
            M = op.apply(M)
    return SecondMomentResult(span + null, span, null, mats)


# ---------------------------------------------------------------------- mixed Hessian
@analysis({"hs": HESSIANS, "alpha": UNIT, "matrix_free": BOOL}, dynamics=False, blas=False)
def mixed_hessian(hs: HessianSet, alpha: float, *, matrix_free: bool = False
                  ) -> np.ndarray | spla.LinearOperator:
    """Mixed Hessian D = (1−α)H̄_R − αH̄_F (contract §2), so that E[J] = I − ηD.

    Returns a dense (d, d) array, or with ``matrix_free=True`` a
    :class:`scipy.sparse.linalg.LinearOperator` that applies D through the factors (O(n d k) per
    product, no d×d matrix).
    """
    check_hessian_set(hs)
    alpha = check_unit_interval(alpha, "alpha")
    if alpha > 0 and not hs.has_forget:
        raise ValueError(f"alpha={alpha} > 0 needs a forget set, but the HessianSet has none")
    retain, forget = mixing_weights(alpha)
    parts = [("retain", retain)] + ([("forget", -forget)] if alpha > 0 else [])
    if not matrix_free:
        return sum(w * hs.mean(s) for s, w in parts if w != 0.0) + np.zeros((hs.dim, hs.dim))
    flats = []
    for s, w in parts:
        F = hs.factors(s)
        n, d, k = F.shape
        flats.append((F.transpose(1, 0, 2).reshape(d, n * k), w / n))

    def matvec(v):
        v = np.asarray(v, dtype=float).reshape(hs.dim, -1)
        return sum(w * (P @ (P.T @ v)) for P, w in flats)

    return spla.LinearOperator((hs.dim, hs.dim), matvec=matvec, matmat=matvec, dtype=float)


@analysis({"hs": HESSIANS, "alpha": UNIT}, dynamics=False, blas=False)
def mixed_hessian_extremes(hs: HessianSet, alpha: float) -> tuple[float, float]:
    """(λ_min, λ_max) of D = (1−α)H̄_R − αH̄_F restricted to the span of the active Hessians.

    Restricting to the span means a round-off "eigenvalue" of D on the common null space is never
    reported as an escape direction (contract §5.4). λ_min < 0 means the mean dynamics already
    escape along that direction.
    """
    D = _reduced_mixed(hs, alpha)
    vals = np.linalg.eigvalsh(D)
    return float(vals[0]), float(vals[-1])


def _reduced_mixed(hs, alpha):
    check_hessian_set(hs)
    alpha = check_unit_interval(alpha, "alpha")
    if alpha > 0 and not hs.has_forget:
        raise ValueError(f"alpha={alpha} > 0 needs a forget set, but the HessianSet has none")
    red = hs.reduction(alpha < 1.0, alpha > 0.0)
    if red.r == 0:
        raise ValueError("every Hessian that enters D is zero")
    D = np.zeros((red.r, red.r))
    retain, forget = mixing_weights(alpha)
    if alpha < 1:
        D += retain * red.mean("retain")
    if alpha > 0:
        D -= forget * red.mean("forget")
    return D


