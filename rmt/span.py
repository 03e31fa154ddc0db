"""Span coordinates of a set of Hessians: the reduction onto their span U, the bases (explicit or
implicit through a Gram pass), lifts and projections, and the one span rule in curvature units
(docs/contract.md §3 "Null space"). :mod:`rmt.hessians` builds these; every analysis reads them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import numpy.typing as npt

__all__ = ["Reduction", "ImplicitBasis", "lift", "project", "hstack_bases", "span_tolerance",
           "SPAN_RTOL"]

#: The span rule (contract §3 "Null space"), in curvature units for every representation: a
#: direction belongs to the span iff its curvature exceeds τ(d) = SPAN_RTOL·√d·eps times the
#: largest curvature of the whole set (see :func:`span_tolerance` and :meth:`HessianSet.reduction`).
SPAN_RTOL = 10.0


@dataclass(frozen=True)
class Reduction:
    """Coordinates of the active Hessians on their span U (dimension ``r``).

    ``psi_retain`` has shape (r, n_retain, k): the reduced factors Ψ_i = Uᵀ F_i, so that the
    reduced Hessian is Ψ_i Ψ_iᵀ (r×r). ``basis`` is U (d, r), an orthonormal basis of the span.
    ``null_dim`` = d − r is the dimension of the common null space on which every step is the
    identity.
    """

    basis: np.ndarray
    psi_retain: np.ndarray | None
    psi_forget: np.ndarray | None
    dim: int
    #: shared curvature C = λI + QQᵀ added to every per-sample Hessian (contract §1):
    #: ``shared_scalar`` = λ and ``shared_psi`` = UᵀQ (r, k_s) or None
    shared_scalar: float = 0.0
    shared_psi: np.ndarray | None = None

    @property
    def r(self) -> int:
        return self.basis.shape[1]

    @property
    def has_shared(self) -> bool:
        return self.shared_scalar > 0.0 or self.shared_psi is not None

    def shared_matrix(self) -> np.ndarray | None:
        """The shared term C = λI + QQᵀ in span coordinates (r, r), or None without one."""
        if not self.has_shared:
            return None
        C = self.shared_scalar * np.eye(self.r)
        if self.shared_psi is not None:
            C = C + self.shared_psi @ self.shared_psi.T
        return C

    @property
    def has_null_mode(self) -> bool:
        """λ > 0 and a non-trivial null space: there J is a scalar that is not 1."""
        return self.shared_scalar > 0.0 and self.null_dim > 0

    @property
    def null_dim(self) -> int:
        return self.dim - self.r

    def psi(self, which: str) -> np.ndarray | None:
        return self.psi_retain if which == "retain" else self.psi_forget

    def mean(self, which: str, shared: bool = True) -> np.ndarray:
        """Reduced mean Hessian H̄_S = (1/n) Σ Ψ_i Ψ_iᵀ + C (r×r); ``shared=False`` omits C."""
        psi = self.psi(which)
        assert psi is not None, f"the {which} set is not part of this reduction"
        r, n, k = psi.shape
        flat = psi.reshape(r, n * k)
        out = (flat @ flat.T) / n
        C = self.shared_matrix() if shared else None
        return out if C is None else out + C

    def hessians(self, which: str) -> np.ndarray:
        """Reduced per-sample Hessians Ψ_iΨ_iᵀ + C (n, r, r) — for tests and small problems only."""
        psi = self.psi(which)
        assert psi is not None, f"the {which} set is not part of this reduction"
        out = np.einsum("rna,sna->nrs", psi, psi)
        C = self.shared_matrix()
        return out if C is None else out + C[None]


class ImplicitBasis:
    """An orthonormal basis U (d, r) kept implicit as U = Zᵀ C over rows of a HessianSet's own
    arrays (factor columns, shared factor, gradients), so that nothing of size d × r is formed.

    Made by the chunked-Gram path of :meth:`HessianSet.reduction` (large d). It
    supports what the analyses need: ``project(X)`` = X U (X (..., d)), ``lift(Y)`` = Y Uᵀ
    (Y (..., r)), both one chunked pass over d; ``U @ y``, ``X @ U``, ``U.T @ x`` and
    ``y @ U.T`` dispatch to them. ``np.asarray(U)`` materialises the (d, r) matrix (small d only).
    """

    def __init__(self, hs: Any, rows: npt.ArrayLike, coef: npt.ArrayLike) -> None:
        # hs: the HessianSet whose stacked rows Z this basis combines (rmt.hessians imports
        # this module, so the type is not named here)
        self._hs = hs
        self.rows = np.asarray(rows, dtype=np.int64)
        self.coef = np.asarray(coef, dtype=np.float64)
        self.shape = (hs.dim, self.coef.shape[1])
        self.ndim = 2
        self.dtype = np.dtype(np.float64)

    @property
    def T(self) -> _TransposedBasis:
        return _TransposedBasis(self)

    def project(self, X: npt.ArrayLike) -> np.ndarray:
        """X U for X of shape (d,) or (m, d), chunked over d."""
        X = np.asarray(X)
        vec = X.ndim == 1
        X2 = X[None, :] if vec else X
        acc = np.zeros((X2.shape[0], self.rows.size))
        for sl, Zc in self._hs._row_chunks(self.rows):
            acc += np.asarray(X2[:, sl], dtype=np.float64) @ Zc.T
        out = acc @ self.coef
        return out[0] if vec else out

    def lift(self, Y: npt.ArrayLike) -> np.ndarray:
        """Y Uᵀ for Y of shape (r,) or (m, r), chunked over d."""
        Y = np.asarray(Y, dtype=np.float64)
        vec = Y.ndim == 1
        A = (Y[None, :] if vec else Y) @ self.coef.T
        out = np.empty((A.shape[0], self.shape[0]))
        for sl, Zc in self._hs._row_chunks(self.rows):
            out[:, sl] = A @ Zc
        return out[0] if vec else out

    def matrix(self) -> np.ndarray:
        return self.lift(np.eye(self.shape[1])).T

    def __array__(self, dtype: npt.DTypeLike | None = None, copy: bool | None = None) -> np.ndarray:
        out = self.matrix()
        return out if dtype is None else out.astype(dtype)

    def __matmul__(self, Y: npt.ArrayLike) -> np.ndarray:  # U @ Y = (Yᵀ Uᵀ)ᵀ
        Y = np.asarray(Y)
        if Y.ndim == 1:
            return self.lift(Y)
        return self.lift(Y.T).T

    def __rmatmul__(self, X: npt.ArrayLike) -> np.ndarray:  # X @ U
        return self.project(X)

    def hstack(self, other: np.ndarray | ImplicitBasis) -> ImplicitBasis:
        """[U, V] as one implicit basis (V implicit over the same HessianSet, or (d, 0))."""
        if isinstance(other, np.ndarray) and other.shape[1] == 0:
            return self
        other = cast(ImplicitBasis, other)  # implicit over the same HessianSet
        rows = np.union1d(self.rows, other.rows)
        coef = np.zeros((rows.size, self.shape[1] + other.shape[1]))
        coef[np.searchsorted(rows, self.rows), : self.shape[1]] = self.coef
        coef[np.searchsorted(rows, other.rows), self.shape[1]:] = other.coef
        return ImplicitBasis(self._hs, rows, coef)


class _TransposedBasis:
    def __init__(self, basis):
        self._b = basis
        self.shape = basis.shape[::-1]

    @property
    def T(self):
        return self._b

    def __matmul__(self, X):  # Uᵀ X, X (d,) or (d, m)
        X = np.asarray(X)
        if X.ndim == 1:
            return self._b.project(X)
        return self._b.project(X.T).T

    def __rmatmul__(self, Y):  # Y Uᵀ
        return self._b.lift(Y)


def lift(basis: np.ndarray | ImplicitBasis, Y: npt.ArrayLike) -> np.ndarray:
    """Y Bᵀ for an explicit (d, m) basis or an :class:`ImplicitBasis` (Y (..., m) → (..., d))."""
    return basis.lift(Y) if isinstance(basis, ImplicitBasis) else np.asarray(Y) @ basis.T


def project(basis: np.ndarray | ImplicitBasis, X: npt.ArrayLike) -> np.ndarray:
    """X B for an explicit (d, m) basis or an :class:`ImplicitBasis` (X (..., d) → (..., m))."""
    return basis.project(X) if isinstance(basis, ImplicitBasis) else np.asarray(X) @ basis


def hstack_bases(A: np.ndarray | ImplicitBasis,
                 B: np.ndarray | ImplicitBasis) -> np.ndarray | ImplicitBasis:
    """[A, B] for explicit or implicit bases (implicit stays implicit)."""
    if isinstance(A, ImplicitBasis):
        return A.hstack(B)
    return np.hstack([A, np.asarray(B)])


def span_tolerance(d: int) -> float:
    """τ(d) = SPAN_RTOL·√d·eps: the relative curvature below which a direction is round-off.

    The span rule (contract §3 "Null space", :meth:`HessianSet.reduction`): a direction u belongs
    to the span of the selected sets iff its curvature, an eigenvalue of S = Σ_i H_i (+ QQᵀ of a
    shared factor), exceeds τ(d)·λ_ref with λ_ref = λ_max of S over *all* samples of the set.
    τ(d) sits above the round-off of a dense d×d symmetric eigendecomposition (measured: ≤ 4·eps
    of the norm up to d = 1024, growing like √d at worst in practice) and above the error of
    d-long inner products (~√d·eps), and far above the eps² curvature resolution of a factor
    SVD, so the same Hessians give the same span whether they come as factors, dense matrices
    or eigenvalue profiles. Only ratios to λ_ref enter: the rule is invariant under H → cH.
    """
    return SPAN_RTOL * math.sqrt(max(int(d), 1)) * np.finfo(float).eps


def _gram_tolerance(w0, N, d):
    """Eigenvalues of a Gram matrix below this are round-off: eigh's N·eps·‖G‖ plus the
    accumulated rounding of d-long inner products (~√d·eps relative)."""
    return w0 * 10.0 * (N + math.sqrt(d)) * np.finfo(float).eps


def _clean_profiles(R, F):
    """The span rule on commuting eigenvalue profiles (see :meth:`HessianSet.reduction`): in a
    direction k where a set's summed curvature Σ_{i∈S} λ_{i,k} is at or below τ(d)·λ_ref
    (λ_ref = max_k Σ_{all i} λ_{i,k}), that set's entries are round-off and become exact zeros.
    Returns new arrays (the caller's input is not modified)."""
    d = R.shape[1]
    total = R.sum(axis=0) + (0.0 if F is None else F.sum(axis=0))
    ref = float(np.max(total))
    if not ref > 0.0:
        return R, F
    tau = span_tolerance(d)

    def clean(P):
        # ratios to λ_ref: scale-free, and no sum of squares is ever formed
        keep = P.sum(axis=0) / ref > tau
        return P if keep.all() else np.where(keep[None, :], P, 0.0)

    return clean(R), None if F is None else clean(F)
