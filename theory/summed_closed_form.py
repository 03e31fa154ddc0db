"""η* of a summed schedule in closed form: the pencil (𝒜, 𝒬) on Sym_r (contract §10.3).

For the summed schedule J = I − ηG with G = (1−α)Ĥ_R − αĤ_F symmetric, the mean-square
operator on Sym_r (span coordinates, ⟨X, Y⟩ = tr(XY)) is T(η) = I − η𝒜 + η²𝒬 with
𝒜(X) = DX + XD (D = E[G]) and 𝒬(X) = E[G X G] (sympy:
:func:`theory.derivations.summed_operator_expansion`).

**Route** (independent of rmt's critical-η code): T(η) is a quadratic polynomial in η, so from
the dense matrices T₁, T₂ of T on Sym_r (orthonormal basis :func:`sym_basis`) at two step sizes
η₁ ≠ η₂,

    𝒬 = [(T₁ − I)/η₁ − (T₂ − I)/η₂] / (η₁ − η₂),      𝒜 = η₁𝒬 − (T₁ − I)/η₁,

with η₁ = 1/s, η₂ = 2/s on the curvature scale s = max|eig D| (no cancellation). ρ(T) < 1 ⇔
η𝒬 − 𝒜 ≺ 0 on Sym_r (T is self-adjoint and ρ(T) = λ_max(T) by 10.1), i.e. η < 1/λ_max of the
symmetric-definite pencil (𝒬, 𝒜) when 𝒜 ≻ 0 (its eigenvalues are d_i + d_j). A negative
eigenvalue of 𝒜 (its eigenvector is uuᵀ ⪰ 0, u the escape direction of D) gives η* = 0; a
kernel X of 𝒜 with ⟨X, 𝒬X⟩ > 0 gives η* = 0 too (⟨X, (T − I)X⟩ = η²⟨X, 𝒬X⟩ > 0); the remaining
neutral boundary case is reported as not decided. The null mode of a shared λI (a 1×1 block,
E[j²] = ``op.null_rate``) is fitted the same way.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.linalg as sla

import rmt
from rmt.dynamics import as_dynamics
from rmt.meansquare import MeanSquareOperator
from rmt.meansquare._linalg import _sym_embedding
from rmt.schedule import Schedule

from .instance import Problem

__all__ = ["EIG_RTOL", "closed_form_eta", "sym_basis"]

#: relative size below which an eigenvalue of 𝒜 counts as 0
EIG_RTOL = 1e-10


def sym_basis(r: int) -> np.ndarray:
    """Orthonormal basis of Sym_r in the Frobenius inner product, shape (r(r+1)/2, r, r)."""
    return _sym_embedding(r).T.reshape(-1, r, r)


def _sym_matrix(op: MeanSquareOperator) -> np.ndarray:
    """The matrix of T on Sym_r in the basis :func:`sym_basis`, T[a, b] = ⟨E_a, T(E_b)⟩."""
    E = sym_basis(op.r)
    TE = np.array([op.apply(Eb) for Eb in E])
    return np.einsum("aij,bij->ab", E, TE)


def _pencil(hs, sch) -> tuple[np.ndarray, np.ndarray, float]:
    """(𝒜, 𝒬) on Sym_r (plus the null-mode 1×1 block) from T at two step sizes (module docstring)."""
    s = _curvature_scale(hs, sch)
    e1, e2 = 1.0 / s, 2.0 / s
    ops = [MeanSquareOperator(hs, sch.replace(eta=e)) for e in (e1, e2)]
    Ts = [_sym_matrix(op) for op in ops]
    nulls = [op.null_rate for op in ops]
    if nulls[0] is not None:
        Ts = [sla.block_diag(T, [[m]]) for T, m in zip(Ts, nulls)]
    Ts = [0.5 * (T + T.T) for T in Ts]  # symmetric up to round-off (10.1)
    I = np.eye(len(Ts[0]))
    P1, P2 = (Ts[0] - I) / e1, (Ts[1] - I) / e2
    Q = (P1 - P2) / (e1 - e2)
    A = e1 * Q - P1
    return 0.5 * (A + A.T), 0.5 * (Q + Q.T), s


def _curvature_scale(hs, sch) -> float:
    """max_S λ_max(H̄_S) over the sets in the step (≥ every |eig D|; > 0 on a non-empty span)."""
    s = 0.0
    if sch.alpha < 1:
        s = max(s, abs(rmt.mixed_hessian_extremes(hs, 0.0)[1]))
    if sch.alpha > 0:
        s = max(s, abs(rmt.mixed_hessian_extremes(hs, 1.0)[0]))
    return s if s > 0 else 1.0


def closed_form_eta(hs: Problem, schedule: Schedule | None = None) -> tuple[float, str]:
    """η* of docs/contract.md §10.3 from the pencil (𝒜, 𝒬) → (η*, case); case ∈ {"definite",
    "escape", "singular-unstable", "neutral"} (η* = nan for "neutral", not decided by 10.3)."""
    dyn = as_dynamics(hs, schedule)
    A, Q, s = _pencil(dyn.hs, dyn.schedule)
    a, V = np.linalg.eigh(A)
    tol = EIG_RTOL * s  # eigenvalues of 𝒜 are d_i + d_j, |d_i| ≤ s
    if a[0] < -tol:
        return 0.0, "escape"
    if a[0] <= tol:
        K = V[:, a <= tol]
        if np.linalg.eigvalsh(K.T @ Q @ K)[-1] > EIG_RTOL * s**2:
            return 0.0, "singular-unstable"
        return math.nan, "neutral"
    mu = sla.eigh(Q, A, eigvals_only=True)[-1]
    return (math.inf if mu <= 0 else float(1.0 / mu)), "definite"
