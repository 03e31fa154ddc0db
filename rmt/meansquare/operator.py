"""The mean-square operator T(M) = E[J M Jᵀ] on span coordinates (docs/contract.md §3)."""

from __future__ import annotations

import functools
import warnings

import numpy as np
import scipy.sparse.linalg as spla

from ..validation import check_choice
from ..dynamics import as_dynamics
from .config import DENSE_MAX_SPAN, KRYLOV_DENSE_FALLBACK_PACKED, METHODS, SPLITTING_MAX_SPAN

from ._linalg import _normalise_psd, _own
from .eigenbasis import _Eigenbasis
from .krylov import IDENTITY_SHARE, _block_krylov_top, _secular_rate
from .splitting import _splitting_rate

class MeanSquareOperator(spla.LinearOperator):
    """The mean-square operator T(M) = E[J M Jᵀ] on r×r matrices of the span (contract §3).

    Built from a :class:`~rmt.dynamics.Dynamics` (or an ``(hs, schedule)`` pair): the set terms,
    their weights and sampling coefficients and the combinator all come from there, so

        summed       T(M) = E[J] M E[J]ᵀ + Σ_S s_S² N_S(M)
        alternating  T = T_F ∘ T_R,   T_S(M) = A_S M A_S + s_S² N_S(M),   A_S = I + s_S H̄_S
        sam          T(M) = E[J] M E[J]ᵀ + η² N_R(K M K)

    A :class:`scipy.sparse.linalg.LinearOperator` on vec(M) (row-major, all r×r matrices, not
    only symmetric ones) with ``matvec``/``matmat``/``adjoint``; :meth:`apply` works on matrices
    and :meth:`matrix` gives the dense r²×r² Kronecker form for small spans.

    Attributes: ``dynamics``, ``r`` (span dimension), ``null_dim``, ``reduction`` (the span
    coordinates), ``mean_map`` (E[J] on the span), ``terms`` (name → SetTerm),
    ``self_adjoint`` (True for the summed schedule, whose T is self-adjoint in the Frobenius
    inner product).
    """

    def __init__(self, hs, schedule=None):
        dyn = as_dynamics(hs, schedule)
        self.dynamics = dyn
        self.hs, self.schedule = dyn.hs, dyn.schedule
        self.reduction = dyn.reduction
        self.r = dyn.r
        self.null_dim = dyn.null_dim
        self.terms = {t.name: t for t in dyn.terms}
        self.mean_map = dyn.mean_map
        self.self_adjoint = dyn.combinator.self_adjoint
        #: E[j²] of the null scalar mode of a shared λI (None without one): the full ρ(T) is
        #: max(ρ(T on the span), null_rate) — T is block diagonal in (span, cross, null) blocks
        #: and its Perron eigenmatrix lives in the span block or the null block
        self.null_rate = dyn.null_rate
        super().__init__(dtype=np.dtype(float), shape=(self.r**2, self.r**2))

    # ------------------------------------------------------------------ application
    def _apply(self, M, adjoint=False):
        return self.dynamics.combinator.apply_T(self.dynamics, M, adjoint)

    def apply(self, M: np.ndarray) -> np.ndarray:
        """T(M) for a symmetric (r, r) matrix M in span coordinates (symmetrised output)."""
        out = self._apply(M)
        return 0.5 * (out + out.T)

    def apply_adjoint(self, M: np.ndarray) -> np.ndarray:
        """T*(M) = E[Jᵀ M J] (the Frobenius adjoint), symmetrised."""
        out = self._apply(M, adjoint=True)
        return 0.5 * (out + out.T)

    def _matvec(self, x):
        r = self.r
        return self._apply(_own(x).reshape(r, r)).ravel()

    def _rmatvec(self, x):
        r = self.r
        return self._apply(_own(x).reshape(r, r), adjoint=True).ravel()

    def _matmat(self, X):
        return np.column_stack([self._matvec(X[:, j]) for j in range(X.shape[1])])

    def _adjoint(self):
        return _AdjointOperator(self)

    def matrix(self) -> np.ndarray:
        """The r²×r² matrix of T in row-major vec coordinates (small r only)."""
        if self.r > 60:
            raise ValueError(f"matrix() is for small spans (r <= 60); this one has r={self.r}")
        return self.dynamics.combinator.matrix_T(self.dynamics)

    def as_linear_operator(self) -> spla.LinearOperator:
        """T restricted to symmetric matrices (input symmetrised) as a LinearOperator on vec(M)."""
        r = self.r

        def matvec(x):
            M = _own(x).reshape(r, r)
            return self.apply(0.5 * (M + M.T)).ravel()

        return spla.LinearOperator((r * r, r * r), matvec=matvec, dtype=float)

    # ------------------------------------------------------------------ spectrum
    def rate(self, method: str = "auto", tol: float = 1e-12
             ) -> tuple[float, np.ndarray | None, str, bool]:
        """Spectral radius ρ(T) on the span and its PSD eigenmatrix → (rate, eigenmatrix, method, converged)."""
        check_choice(method, "method", METHODS)
        if method == "auto":
            if self.hs.kind == "commuting":
                method = "closed_form"
            elif self.r <= DENSE_MAX_SPAN:
                method = "dense"
            elif self.r <= SPLITTING_MAX_SPAN:
                method = "splitting"
            else:
                method = "lanczos"
        if method == "splitting":
            try:
                b = _splitting_rate(self, tol=tol)
            except np.linalg.LinAlgError:
                return self._lanczos(tol)
            return 1.0 + b.estimate, b.eigenmatrix, method, b.converged
        if method == "closed_form":
            if self.hs.kind != "commuting":
                raise ValueError("method='closed_form' needs a commuting HessianSet")
            rate, k = _commuting_rate(self.dynamics)
            return rate, None, method, True
        if method == "dense":
            vals, vecs = np.linalg.eig(self.matrix())
            i = int(np.argmax(np.abs(vals)))
            V = np.real(vecs[:, i]).reshape(self.r, self.r)
            return float(np.abs(vals[i])), _normalise_psd(V), method, True
        if method == "lanczos":
            return self._lanczos(tol)
        return self._arpack(tol)

    @functools.cached_property
    def eigenbasis(self) -> "_Eigenbasis":
        """T of the summed schedule in the eigenbasis of E[J] (computed once; summed only)."""
        if not self.self_adjoint:
            raise ValueError("the eigenbasis form exists for the summed schedule only")
        return _Eigenbasis(self)

    def _start(self, v0):
        r = self.r
        eye = np.eye(r) / np.sqrt(r)
        if v0 is None:
            return eye
        v0 = np.asarray(v0, float).reshape(r, r)
        return v0 / np.linalg.norm(v0) + 0.1 * eye

    def _arpack(self, tol, v0=None):
        r = self.r
        if r < 3:
            return self.rate("dense")
        start = self._start(v0)
        if self.self_adjoint:  # same spectrum, cheaper application: the eigenbasis of E[J]
            eig = self.eigenbasis
            op, start, back = eig.as_linear_operator(), eig.to_basis(start), eig.from_basis
        else:
            op, back = self.as_linear_operator(), (lambda V: V)
        converged = True
        try:
            if self.self_adjoint:
                vals, vecs = spla.eigsh(op, k=1, which="LA", v0=start.ravel(), tol=tol,
                                        maxiter=20 * r * r)
            else:
                vals, vecs = spla.eigs(op, k=1, which="LM", v0=start.ravel(), tol=tol,
                                       maxiter=20 * r * r)
        except spla.ArpackNoConvergence as exc:  # report, never hide
            converged = False
            if len(exc.eigenvalues) == 0:
                raise RuntimeError("ARPACK did not converge for the mean-square operator") from exc
            vals, vecs = exc.eigenvalues, exc.eigenvectors
            warnings.warn("ARPACK did not fully converge; rate may be inaccurate", RuntimeWarning)
        i = int(np.argmax(np.abs(vals)))
        V = back(np.real(vecs[:, i]).reshape(r, r))
        return float(np.abs(vals[i])), _normalise_psd(V), "arpack", converged

    def _lanczos(self, tol, v0=None):
        """ρ(T) of the self-adjoint (summed) T: Lanczos on the splitting, else on T itself.

        First :func:`_secular_rate` (Lanczos on the symmetrised splitting operator, Newton on
        μ), which does not see the cluster of T's eigenvalues near 1; when that does not apply
        or fails, Lanczos on T (:func:`_block_krylov_top`) in the eigenbasis of E[J] from the
        identity mixed with the pole guess (or ``v0``, an eigenmatrix estimate in span
        coordinates). Non-self-adjoint schedules, and runs that need more vectors than fit in
        ``LANCZOS_MEMORY``, go to ARPACK.
        """
        r = self.r
        if r < 3:
            return self.rate("dense")
        if not self.self_adjoint:
            return self._arpack(tol, v0)
        eig = self.eigenbasis
        guess = eig.pole_guess() if v0 is None else eig.to_basis(np.asarray(v0, float).reshape(r, r))
        out = _secular_rate(eig, guess, tol)
        if out is not None:
            rate, X = out
            return rate, _normalise_psd(eig.from_basis(X)), "lanczos", True
        start = np.eye(r) / np.sqrt(r)
        if np.any(guess):
            start = guess / np.linalg.norm(guess) + IDENTITY_SHARE * start
        out = _block_krylov_top(lambda x: eig.pack(eig.apply(eig.unpack(x))), [eig.pack(start)],
                                tol)
        if out is None:  # ran out of Krylov vectors (a cluster at the top, e.g. ρ(T) ≈ 1 from
            # a direction of round-off curvature): eigh of the packed matrix where it fits —
            # seconds, every eigenvalue, deterministic — instead of ARPACK's implicit restarts,
            # which took minutes on such clusters (20·r² restarts allowed)
            if r * (r + 1) // 2 <= KRYLOV_DENSE_FALLBACK_PACKED:
                from .eigenbasis import packed_matrix

                lam, V = np.linalg.eigh(packed_matrix(eig)[0])
                X = _normalise_psd(eig.from_basis(eig.unpack(V[:, -1])))
                return float(lam[-1]), X, "dense", True
            return self._arpack(tol, v0=eig.from_basis(guess))
        theta, x, _ = out
        return float(theta), _normalise_psd(eig.from_basis(eig.unpack(x))), "lanczos", True


class _AdjointOperator(spla.LinearOperator):
    def __init__(self, op):
        self.op = op
        super().__init__(dtype=op.dtype, shape=op.shape)

    def _matvec(self, x):
        return self.op._rmatvec(x)

    def _rmatvec(self, x):
        return self.op._matvec(x)

    def _adjoint(self):
        return self.op


def _commuting_rate(dyn):
    """ρ(T) = max_k E[j_k²] of a commuting set (contract §3) from the per-direction factors."""
    rates = dyn.direction_rates()
    if rates.size == 0:
        raise ValueError("every Hessian that enters the dynamics is zero")
    if not np.all(np.isfinite(rates)):
        raise ValueError("the per-direction moments E[j_k²] are not finite: the curvature times "
                         "η overflows (rescale the Hessians or η)")
    k = int(np.argmax(rates))
    return float(rates[k]), k
