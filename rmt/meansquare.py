"""Exact mean-square stability: the operator T(M) = E[J M Jᵀ] (THEORY.md §3).

For the summed schedule

    T(M) = (I − ηD) M (I − ηD) + η²(1−α)² N_R(M) + η²α² N_F(M),      D = (1−α)H̄_R − αH̄_F,

with the per-set noise operator N_S(M) = c_S·(1/n)Σ_i H_i M H_i − e_S·H̄_S M H̄_S read off the
sampling table of THEORY §2.1:

=====================  ======================  ======================
scheme                 c_S                     e_S
=====================  ======================  ======================
bernoulli              (n−B)/(B n)             0
with_replacement       1/B                     1/B
without_replacement    (n−B)/(B(n−1))          (n−B)/(B(n−1))
=====================  ======================  ======================

Alternating: T = T_F ∘ T_R. SAM: T(M) = A M Aᵀ + η² N_R(K M K), K = I + (ρ/a)H̄, A = I − ηH̄K.

Everything is evaluated on the span U of the Hessians that enter the dynamics (reduced
coordinates from :meth:`HessianSet.reduction`): on the common null space every step is the
identity, which would pin the full spectral radius at 1 and hide the answer (THEORY §3, "Null
space"). Applying T costs O(r³ + r²·Σk) for span dimension r; no d×d matrix is formed.
"""

from __future__ import annotations

import math
import os
import time
import warnings
import weakref
from dataclasses import dataclass, field, replace

import numpy as np
import scipy.linalg
import scipy.optimize
import scipy.sparse.linalg as spla
from threadpoolctl import threadpool_limits

from ._validation import (
    check_choice,
    check_finite_array,
    check_hessian_set,
    check_int,
    check_unit_interval,
)
from .dynamics import Dynamics, as_dynamics, noise_coefficients
from .hessians import HessianSet
from .schedule import Schedule
from .verdict import MEAN_SQUARE, verdict_text

__all__ = [
    "noise_coefficients",
    "MeanSquareOperator",
    "MeanSquareResult",
    "SecondMomentResult",
    "mean_square",
    "mean_square_rate",
    "second_moment",
    "critical_eta",
    "critical_batch",
    "critical_alpha",
    "mixed_hessian",
    "mixed_hessian_extremes",
]

#: Relative round-off of the per-direction moments and of small symmetric eigensolvers: a mixed
#: curvature below ``_ROUNDOFF`` (× r for eigensolvers) times the scale is treated as exactly 0.
_ROUNDOFF = 8 * np.finfo(float).eps

#: Largest span dimension for which ``method="auto"`` builds and diagonalises the r²×r² operator
#: matrix; beyond it the regular-splitting solver is faster (and certified).
DENSE_MAX_SPAN = 8

#: Largest span dimension for which ``method="auto"`` uses the splitting solver: each of its
#: solves costs a few r×r products *per application* of K (≈ 3× an application of T), which
#: pays off against ARPACK's crowding near 1 at moderate r; above it ARPACK is used.
SPLITTING_MAX_SPAN = 400

#: Largest span dimension for which the splitting solver finds the Perron root of K(μ) from its
#: dense r(r+1)/2 matrix (LAPACK) instead of ARPACK: there ρ(T) is a deterministic function of
#: its input, bit for bit, in any process (ARPACK's results depend on the alignment of the work
#: arrays scipy allocates per call); above it, ARPACK (run-to-run noise ≲ the tolerance).
PERRON_DENSE_MAX_SPAN = 16

#: Largest span dimension for which :func:`stable_set` solves the polynomial eigenvalue problem
#: det(T(x) − I) = 0 on symmetric matrices (companion size deg·r(r+1)/2).
PEP_MAX_SPAN = 12

METHODS = ("auto", "closed_form", "dense", "lanczos", "arpack", "splitting")


class MeanSquareOperator(spla.LinearOperator):
    """The mean-square operator T(M) = E[J M Jᵀ] on r×r matrices of the span (THEORY §3).

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
        self.self_adjoint = dyn.combinator == "summed"
        #: E[j²] of the null scalar mode of a shared λI (None without one): the full ρ(T) is
        #: max(ρ(T on the span), null_rate) — T is block diagonal in (span, cross, null) blocks
        #: and its Perron eigenmatrix lives in the span block or the null block
        self.null_rate = dyn.null_rate
        super().__init__(dtype=np.dtype(float), shape=(self.r**2, self.r**2))

    # ------------------------------------------------------------------ application
    def _set_step(self, t, M, adjoint=False):
        A = self.dynamics.step_maps[t.name]
        return A @ M @ A + t.weight**2 * t.noise(M)

    def _apply(self, M, adjoint=False):
        dyn = self.dynamics
        if dyn.combinator == "summed":
            A = self.mean_map
            out = A @ M @ A
            for t in dyn.terms:
                out += t.weight**2 * t.noise(M)
        elif dyn.combinator == "alternating":
            # T = T_F ∘ T_R with self-adjoint T_S, so T* = T_R ∘ T_F
            out = M
            for t in (reversed(dyn.terms) if adjoint else dyn.terms):
                out = self._set_step(t, out)
        else:  # SAM, A = I − ηH̄K symmetric (H̄ and K commute); T*(M) = AMA + η² K N(M) K
            A, K = self.mean_map, dyn.K
            t = dyn.terms[0]
            if adjoint:
                out = A @ M @ A.T + t.weight**2 * (K @ t.noise(M) @ K)
            else:
                out = A @ M @ A.T + t.weight**2 * t.noise(K @ M @ K)
        return out

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
        dyn = self.dynamics
        if self.r > 60:
            raise ValueError(f"matrix() is for small spans (r <= 60); this one has r={self.r}")
        if dyn.combinator == "summed":
            A = self.mean_map
            out = np.kron(A, A)
            for t in dyn.terms:
                out += t.weight**2 * t.kron_noise()
            return out
        if dyn.combinator == "alternating":
            out = np.eye(self.r**2)
            for t in dyn.terms:
                A = dyn.step_maps[t.name]
                out = (np.kron(A, A) + t.weight**2 * t.kron_noise()) @ out
            return out
        A, K = self.mean_map, dyn.K
        t = dyn.terms[0]
        return np.kron(A, A) + t.weight**2 * t.kron_noise() @ np.kron(K, K)

    def as_linear_operator(self) -> spla.LinearOperator:
        """T restricted to symmetric matrices (input symmetrised) as a LinearOperator on vec(M)."""
        r = self.r

        def matvec(x):
            M = _own(x).reshape(r, r)
            return self.apply(0.5 * (M + M.T)).ravel()

        return spla.LinearOperator((r * r, r * r), matvec=matvec, dtype=float)

    # ------------------------------------------------------------------ spectrum
    def rate(self, method="auto", tol=1e-12):
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

    @property
    def eigenbasis(self) -> "_Eigenbasis":
        """T of the summed schedule in the eigenbasis of E[J] (computed once; summed only)."""
        cached = self.__dict__.get("_eigenbasis")
        if cached is None:
            if not self.self_adjoint:
                raise ValueError("the eigenbasis form exists for the summed schedule only")
            cached = self.__dict__["_eigenbasis"] = _Eigenbasis(self)
        return cached

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
        if out is None:  # ran out of Krylov vectors: ARPACK (implicit restarts) from here
            return self._arpack(tol, v0=eig.from_basis(guess))
        theta, x, _ = out
        return float(theta), _normalise_psd(eig.from_basis(eig.unpack(x))), "lanczos", True


def _secular_rate(eig, guess, tol, max_newton=40):
    """ρ(T) = ρ(𝒜) + δ* from the splitting T = 𝒜 + 𝒩 of the summed T (self-adjoint).

    In the eigenbasis of E[J], 𝒜 is the diagonal (a_i a_j) and D(δ) = ρ(𝒜) + δ − a_i a_j ≥ δ.
    For δ > 0, T X = (ρ(𝒜) + δ) X  ⇔  K̃(δ) y = y with the *symmetric* positive map
    K̃(δ) = D^{-1/2} 𝒩 D^{-1/2} and y = D^{1/2} ∘ X, and ρ(T) > ρ(𝒜) + δ ⇔ κ(δ) = λ_max K̃(δ) > 1
    (regular splitting, THEORY §3). K̃ no longer carries 𝒜's cluster of eigenvalues near 1 (the
    reason Lanczos on T needs many steps when ρ(T) sits just above ρ(𝒜)); its top eigenvalue
    is found by Lanczos in a few steps (:func:`_block_krylov_top`, identity share in the start).

    1/κ(δ) = min_x xᵀD(δ)x / xᵀ𝒩x is a minimum of affine functions of δ: concave and
    increasing, with derivative ‖D^{-1/2}y‖²/κ (envelope theorem). Newton on 1/κ − 1 from a
    point left of the root therefore climbs monotonically and quadratically to δ*; it starts
    at the Rayleigh quotient θ of the pole guess (θ ≤ ρ(T), so δ₀ = θ − ρ(𝒜) ≤ δ*) and keeps a
    bracket [lo, hi] of δ* from the signs of κ − 1. The first κ solve starts from the pole guess
    plus an identity share; later ones continue from the previous Perron vector, each only as
    accurate as its Newton step needs (≤ 1e-2·|1/κ − 1|), and the last at 0.1·``tol``.

    Returns (ρ, X in the eigenbasis) or None when it does not apply (θ ≤ ρ(𝒜): no certified
    start right of the pole) or a step fails; the caller then runs Lanczos on T.
    """
    aa = eig.aa
    den = eig.one_minus_aa
    mu_A = 1.0 - float(np.min(den))
    # ρ(𝒜) − a_i a_j ≥ 0 (a_i a_j ≤ max(a_i², a_j²)), formed once from 1 − a_i a_j: δ keeps its digits
    gap0 = den - float(np.min(den))
    N0 = eig.noise(guess)
    TX = aa * guess + 0.5 * (N0 + N0.T)
    theta = float(np.vdot(guess, TX) / np.vdot(guess, guess))  # Rayleigh quotient: ≤ ρ(T)
    lo, hi = theta - mu_A, math.inf
    if not lo > 0.0:
        return None
    delta, y = lo, None
    r = aa.shape[0]
    eye = np.eye(r) / np.sqrt(r)
    X = guess
    full = 0.1 * tol
    inner = max(full, 1e-6)
    prev_g, creep = None, 0
    for _ in range(max_newton):
        Dh = np.sqrt(gap0 + delta)
        K = eig.symmetrised_splitting(Dh)
        if y is None:  # first solve: the identity share keeps every PSD eigenmatrix in reach
            start = Dh * X
            start = start / np.linalg.norm(start) + IDENTITY_SHARE * eye
        else:  # continuation in δ: the previous Perron vector
            start = y
        out = _block_krylov_top(K, [eig.pack(start)], inner)
        if out is None:
            return None
        kappa, yv, _ = out
        if not (kappa > 0.0) or not np.isfinite(kappa):
            return None
        y = eig.unpack(yv)
        if y.trace() < 0:
            y = -y
        X = y / Dh
        slope = float(np.vdot(X, X)) / kappa  # d(1/κ)/dδ
        g = 1.0 / kappa - 1.0
        if kappa > 1.0:  # a Ritz value is ≤ λ_max: κ > 1 is certain
            lo = max(lo, delta)
        elif kappa * (1.0 + inner) < 1.0:
            hi = min(hi, delta)
        nxt = delta - g / slope
        if nxt < lo:  # a step left of a certified κ > 1 (from the right, or round-off at the root)
            nxt = lo
        elif nxt > hi:
            nxt = math.sqrt(max(lo, delta) * hi)
        if g < 0 and prev_g is not None and prev_g < 0 and g / prev_g > 0.25 and nxt > delta:
            # Newton creeping up from the left (linear, not quadratic, convergence): a weakly
            # coupled pole dominates κ far left of a root driven by the rest (κ − 1 ~ a/δ halves
            # as δ doubles). Grow the step geometrically until κ < 1 brackets the root, then
            # halve the bracket in log δ while Newton still creeps.
            creep += 1
            if math.isfinite(hi):
                nxt = max(nxt, math.sqrt(delta * hi))
            else:
                nxt = delta * (nxt / delta) ** (2 ** creep)
        else:
            creep = 0
        prev_g = g
        small = abs(nxt - delta) <= 0.1 * tol * (mu_A + delta) or hi - lo <= 0.1 * tol * (mu_A + lo)
        if small and inner <= full:
            return mu_A + nxt, X
        # inexact Newton: each solve only as accurate as the current step needs
        inner = full if small else max(full, min(1e-4, 1e-2 * abs(g)))
        delta = nxt
    return None


#: eigenbasis of E[J] and rotated factors per HessianSet (weakly held: not pickled with the
#: set, gone with it) and per (α, active sets), at most ``_EIGENBASIS_CACHE_SIZE`` each
_EIGENBASIS_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_EIGENBASIS_CACHE_SIZE = 2


class _Eigenbasis:
    """The summed T in the eigenbasis of E[J] = Q diag(a) Qᵀ: M' = QᵀMQ and

        T'(M') = (a aᵀ) ∘ M' + Σ_S s_S² N'_S(M'),

    with every set's factors, means and shared curvature rotated by Qᵀ (N_S is a congruence
    sum, so N'_S(QᵀMQ) = Qᵀ N_S(M) Q). Same spectrum as T; the mean part costs r² instead of
    2r³ per application. ``pack``/``unpack``: the isometry between symmetric r×r matrices
    (Frobenius) and R^{r(r+1)/2} (upper triangle, off-diagonal entries × √2).
    """

    def __init__(self, op):
        r = op.r
        dyn = op.dynamics
        # E = I − E[J] = −Σ s_S H̄_S = η·[(1−α)H̄_R − αH̄_F], diagonalised directly so that
        # 1 − a_i a_j = b_i + b_j − b_i b_j (b = 1 − a) keeps its digits for tiny-curvature
        # directions (b ~ 1e-8). Its eigenvectors and the rotated factors do not depend on η or
        # the batch sizes: they are kept per HessianSet and (α, active sets), so that the
        # many evaluations of critical_eta/critical_batch pay for one eigh and one rotation
        # (module-level weak cache, see _EIGENBASIS_CACHE).
        eta = float(dyn.schedule.eta)
        key = (float(dyn.schedule.alpha), tuple(t.name for t in dyn.terms))
        cache = _EIGENBASIS_CACHE.setdefault(dyn.hs, {})
        hit = cache.get(key)
        if hit is None:
            while len(cache) >= _EIGENBASIS_CACHE_SIZE:  # α scans: keep the newest few only
                cache.pop(next(iter(cache)))
            E = -sum(t.weight * t.mean for t in dyn.terms) / eta
            d, Q = np.linalg.eigh(0.5 * (E + E.T))
            rot = lambda X: None if X is None else Q.T @ X @ Q  # noqa: E731
            rotated = {t.name: dict(psi=(Q.T @ t.psi.reshape(r, -1)).reshape(t.psi.shape),
                                    mean=rot(t.mean), base_mean=rot(t.base_mean),
                                    shared=rot(t.shared))
                       for t in dyn.terms}
            hit = cache[key] = (d, Q, rotated)
        d, Q, rotated = hit
        b = eta * d
        self.r, self.Q, self.b = r, Q, b
        #: 1 − a_i a_j (r, r), formed without cancellation, and a_i a_j
        self.one_minus_aa = b[:, None] + b[None, :] - np.outer(b, b)
        self.aa = 1.0 - self.one_minus_aa
        self.terms = [(t.weight**2, replace(t, gradients=None, profile=None, **rotated[t.name]))
                      for t in dyn.terms]
        self._iu = np.triu_indices(r)
        self._w = np.where(self._iu[0] == self._iu[1], 1.0, math.sqrt(2.0))

    def to_basis(self, M):
        return self.Q.T @ M @ self.Q

    def from_basis(self, M):
        return self.Q @ M @ self.Q.T

    def noise(self, M):
        out = np.zeros_like(M)
        for w2, t in self.terms:
            out += w2 * t.noise(M)
        return out

    def apply(self, M):
        out = self.aa * M + self.noise(M)
        return 0.5 * (out + out.T)

    def symmetrised_splitting(self, Dh):
        """x ↦ pack(D^{-1/2} 𝒩(D^{-1/2} M) D^{-1/2}), M = unpack(x), for D^{1/2} = ``Dh`` (r, r)
        elementwise: the symmetrised regular-splitting operator on packed coordinates."""

        def K(x):
            out = self.noise(self.unpack(x) / Dh)
            return self.pack(0.5 * (out + out.T) / Dh)

        return K

    def pole_guess(self):
        """e eᵀ + (μ − 𝒜)⁻¹𝒩(e eᵀ) with e the top eigenvector of 𝒜 and μ = ρ(𝒜); the (e, e)
        entry and any entry with μ − a_i a_j ≤ round-off are left out of the correction."""
        om = self.one_minus_aa
        k = int(np.argmin(np.diag(om)))
        E = np.zeros_like(om)
        E[k, k] = 1.0
        den = om - om[k, k]  # μ − a_i a_j at μ = ρ(𝒜) = a_k²
        ok = den > 64 * np.finfo(float).eps * max(abs(1.0 - om[k, k]), 1.0)
        ok[k, k] = False
        C = np.zeros_like(om)
        C[ok] = self.noise(E)[ok] / den[ok]
        X = E + 0.5 * (C + C.T)
        return X if np.all(np.isfinite(X)) else E

    def pack(self, M):
        return M[self._iu] * self._w

    def unpack(self, x):
        M = np.zeros((self.r, self.r))
        M[self._iu] = x / self._w
        return M + np.triu(M, 1).T

    def as_linear_operator(self):
        r = self.r

        def matvec(x):
            M = _own(x).reshape(r, r)
            return self.apply(0.5 * (M + M.T)).ravel()

        return spla.LinearOperator((r * r, r * r), matvec=matvec, dtype=float)


#: Memory for the Krylov basis of :meth:`MeanSquareOperator._lanczos` (bytes, basis and its
#: image together) and the cap on its length.
LANCZOS_MEMORY = 2 * 1024**3
LANCZOS_MAX_STEPS = 400
#: Share of the identity added to a warm start (e.g. the pole guess) of the Krylov solvers: the
#: identity overlaps every PSD eigenmatrix (⟨I, X⟩ = tr X > 0), so a start that happens to be
#: an exact non-Perron eigenmatrix still leads to the Perron value.
IDENTITY_SHARE = 0.1


def _block_krylov_top(apply, starts, tol, max_vectors=None):
    """Largest eigenvalue of a symmetric operator: Rayleigh–Ritz on a block Krylov space.

    The space is K_j(T, [x₁ … x_b]) = span{x_i, T x_i, …, T^{j−1} x_i}, built one block at a
    time with full reorthogonalisation (classical Gram–Schmidt, twice) and the images T v kept,
    so that the projected matrix Vᵀ T V and the residual ‖T u − θu‖ of the top Ritz pair are
    exact (no three-term recurrence to lose orthogonality). With one start this is Lanczos.

    A block contains the Krylov space of each of its starts (θ₁ is at least what single-vector
    Lanczos from any one start gives after as many steps). The solvers here use one start, a
    warm guess mixed with ``IDENTITY_SHARE`` of the identity: a block [guess, I] stops as soon
    as the guess's own residual is small, which an exact non-Perron eigenmatrix satisfies.

    Stops when the top Ritz pair (θ₁, u) has residual ε = ‖T u − θ₁u‖ ≤ tol·|θ₁| (ARPACK's
    rule; θ₁ ≤ λ₁ always, and an eigenvalue lies within ε of θ₁). An eigenvalue rule (Kato–Temple
    with the Ritz gap θ₁ − θ₂ standing in for λ₁ − λ₂) needs a fraction of the steps but is
    wrong when λ₂ is close to λ₁ and not yet resolved — 1e-10 errors at tol = 1e-12 on spans
    with a near-double top eigenvalue of E[J] — so it is not used. Returns (θ₁, u, basis size),
    or None when the basis would exceed ``LANCZOS_MEMORY``/``LANCZOS_MAX_STEPS``/``max_vectors``
    before convergence.
    """
    n = starts[0].size
    cap = min(n, LANCZOS_MAX_STEPS, max(2, LANCZOS_MEMORY // (16 * n)))
    if max_vectors is not None:
        cap = min(cap, max_vectors)
    V = np.empty((cap, n))
    W = np.empty((cap, n))
    H = np.zeros((cap, cap))
    m = 0  # basis size
    eps = np.finfo(float).eps
    block = [np.array(x, dtype=float) for x in starts]
    scale = 0.0
    while True:
        new = []
        for x in block:
            if m + len(new) >= cap:
                return None
            nx = float(np.linalg.norm(x))
            B = V[: m + len(new)]
            for _ in range(2):  # classical Gram–Schmidt, twice: orthogonal to working precision
                x = x - B.T @ (B @ x)
            nrm = float(np.linalg.norm(x))
            if nrm <= 64 * eps * max(nx, scale):  # already in the space: deflate this start
                continue
            V[m + len(new)] = x / nrm
            new.append(m + len(new))
        if not new:  # the space is invariant: its Ritz values are eigenvalues
            return (float(theta[-1]), V[:m].T @ S[:, -1], m) if m else None
        for i in new:
            W[i] = apply(V[i].copy())
        k = m + len(new)
        H[:k, m:k] = V[:k] @ W[m:k].T
        H[m:k, :m] = H[:m, m:k].T
        m = k
        Hs = 0.5 * (H[:m, :m] + H[:m, :m].T)
        theta, S = np.linalg.eigh(Hs)
        s1 = S[:, -1]
        u, Tu = V[:m].T @ s1, W[:m].T @ s1
        t1 = float(theta[-1])
        res = float(np.linalg.norm(Tu - t1 * u))
        scale = max(abs(t1), float(np.max(np.abs(theta))), np.finfo(float).tiny)
        if res <= tol * scale:
            return t1, u, m
        block = [W[i] for i in new]


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


def _own(x):
    """A fresh float64 copy of an eigensolver's work vector.

    ARPACK hands the operator views into its work array at arbitrary 8-byte offsets; BLAS and
    numpy's SIMD loops take alignment-dependent code paths (different summation order), so the
    same vector at another offset gave results differing in the last bits, and ρ(T) varied
    from run to run (and between serial and process-pool sweeps) by ~1e-15–1e-13. A fresh
    allocation is always 16-byte aligned: the operator is then a deterministic function."""
    return np.array(x, dtype=np.float64, copy=True)


def _normalise_psd(V):
    V = 0.5 * (V + V.T)
    tr = np.trace(V)
    if tr < 0:
        V = -V
    norm = np.linalg.norm(V)
    return V / norm if norm > 0 else V


# ---------------------------------------------------------------------- BLAS threads
def blas_threads() -> int:
    """BLAS threads for the exact operator: ``RMT_BLAS_THREADS`` if set, else 1.

    One thread by default: the operator's matrices are small (r ≤ a few hundred), extra threads
    oversubscribe a busy machine, and — the reason it is not chosen from the load — a thread
    count that varies between runs changes the last digits of ρ(T), so serial and process-pool
    sweeps would no longer give identical data.
    """
    env = os.environ.get("RMT_BLAS_THREADS")
    if env:
        try:
            value = int(env)
        except ValueError:
            value = 0
        if value < 1:
            raise ValueError(f"RMT_BLAS_THREADS must be a positive integer, got {env!r}")
        return value
    return 1


def _capped(fn):
    """Run ``fn`` with the BLAS thread pool capped at :func:`blas_threads`."""

    def wrapper(*args, **kwargs):
        with threadpool_limits(limits=blas_threads(), user_api="blas"):
            return fn(*args, **kwargs)

    wrapper.__name__, wrapper.__qualname__, wrapper.__doc__ = fn.__name__, fn.__qualname__, fn.__doc__
    wrapper.__wrapped__ = fn
    return wrapper


# ---------------------------------------------------------------------- regular splitting
class _Splitting:
    """T = 𝒜 + 𝒩 with 𝒜(M) = A M Aᵀ (A = E[J]) and the positive remainder 𝒩 = T − 𝒜.

    Why: the eigenvalues of T clustered just below 1 come from tiny-curvature directions, where
    T ≈ 𝒜. The Stein map (μ − 𝒜)⁻¹ is inverted exactly in the eigenbasis of A, so
    K(μ) = (μ − 𝒜)⁻¹𝒩 no longer has the cluster. Both 𝒜 and 𝒩 are positive maps (𝒩 is a sum of
    compositions of the noise maps N_S, E[(Ĥ−H̄)M(Ĥ−H̄)] ⪰ 0, with congruences), so for
    μ > ρ(𝒜) this is a regular splitting of μ − T (THEORY §3) and

        ρ(T) < μ  ⇔  ρ(K(μ)) < 1,        ρ(T) = μ  ⇔  ρ(K(μ)) = 1,        ρ(T) ≥ ρ(𝒜).

    Everything is parametrised by δ = μ − 1, and μ − a_i a_j = δ + b_i + b_j − b_i b_j with b_i
    the eigenvalues of I − A formed without cancellation, so δ ~ 1e-7 keeps its digits.
    """

    def __init__(self, op):
        self.op = op
        dyn = op.dynamics
        r = op.r
        eye = np.eye(r)
        if dyn.combinator == "alternating":
            E = np.zeros((r, r))
            for t in dyn.terms:  # I − A_t A = (I − A_t) + A_t (I − A)
                E = -t.weight * t.mean + dyn.step_maps[t.name] @ E
        else:
            E = -sum(t.weight * t.mean for t in dyn.terms) @ dyn.K
        self.A = eye - E
        if dyn.combinator == "alternating":
            b, V = np.linalg.eig(E)
            if np.max(np.abs(b.imag)) <= _ROUNDOFF * r * max(np.max(np.abs(b)), 1e-300):
                b, V = b.real, V.real
            W = np.linalg.inv(V)
            if np.linalg.norm(V, 2) * np.linalg.norm(W, 2) > 1e8:
                raise np.linalg.LinAlgError("E[J] is too far from normal for the Stein splitting")
        else:
            b, V = np.linalg.eigh(0.5 * (E + E.T))
            W = V.T
        self.b, self.V, self.W = b, V, W
        a2 = -2 * np.real(b) + np.abs(b) ** 2  # |a|² − 1 = −2 Re b + |b|²
        self.delta_mean = float(np.max(a2))  # ρ(𝒜) − 1
        self._den_base = b[:, None] + b[None, :] - b[:, None] * b[None, :]

    def noise(self, M):
        """𝒩(M) = T(M) − A M Aᵀ, formed directly (no subtraction)."""
        dyn = self.op.dynamics
        if dyn.combinator == "summed":
            out = np.zeros_like(M)
            for t in dyn.terms:
                out += t.weight**2 * t.noise(M)
            return out
        if dyn.combinator == "sam":
            t = dyn.terms[0]
            return t.weight**2 * t.noise(dyn.K @ M @ dyn.K)
        mean_part, Z = M, np.zeros_like(M)
        for t in dyn.terms:  # T_t(P M Pᵀ + Z) = A_t P M Pᵀ A_t + [A_t Z A_t + s² N_t(P M Pᵀ + Z)]
            A = dyn.step_maps[t.name]
            Z = A @ Z @ A + t.weight**2 * t.noise(mean_part + Z)
            mean_part = A @ mean_part @ A
        return Z

    def stein_solve(self, delta, C):
        """X with (1 + δ)X − A X Aᵀ = C, for δ > ρ(𝒜) − 1."""
        V, W = self.V, self.W
        Y = (W @ C @ W.T) / (delta + self._den_base)
        X = V @ Y @ V.T
        return np.real(X) if np.iscomplexobj(X) else X

    def K(self, delta, M):
        out = self.stein_solve(delta, self.noise(M))
        return 0.5 * (out + out.T)


def _sym_basis_size(r):
    return r * (r + 1) // 2


def _perron(split, delta, v0=None, tol=1e-14):
    """ρ(K(1+δ)) and its PSD eigenmatrix, with a Collatz–Wielandt bracket (lo, hi) of ρ(K).

    For a positive map K and X ≻ 0: λ_min(X^{-1/2}K(X)X^{-1/2}) ≤ ρ(K) ≤ λ_max(…) (THEORY §3,
    Krein–Rutman). A warm start keeps a share of the identity, which overlaps every PSD
    eigenmatrix (a warm start with an exactly zero component would hide a decoupled direction
    from the Krylov space); a wide bracket means ARPACK returned a non-Perron eigenvector, and
    the solve is repeated from the identity with a larger subspace.
    """
    r = split.op.r
    Kfun = lambda M: split.K(delta, M)  # noqa: E731
    if r <= PERRON_DENSE_MAX_SPAN:
        # K on the symmetric matrices as a dense r(r+1)/2 matrix, LAPACK eig: deterministic.
        # (ARPACK is not: scipy allocates its work arrays per call, and the BLAS level-1/2
        # kernels it calls sum in an order that depends on their alignment, so the same
        # operator gave Perron values differing in the last bits from call to call.)
        S = _sym_embedding(r)
        cols = [split.K(delta, S[:, j].reshape(r, r)).ravel() for j in range(S.shape[1])]
        Km = S.T @ np.array(cols).T
        vals, vecs = np.linalg.eig(Km)
        i = int(np.argmax(np.abs(vals)))
        X = _normalise_psd((S @ np.real(vecs[:, i])).reshape(r, r))
        return float(np.abs(vals[i])), X, _cw_bracket(Kfun, X)
    eye = (np.eye(r) / np.sqrt(r)).ravel()
    if not np.any(split.K(delta, np.eye(r))):
        # K(I) = 0 and I dominates every PSD matrix: K = 0 on the cone (no sampling noise)
        return 0.0, np.eye(r) / np.sqrt(r), (0.0, 0.0)

    def mv(x):
        M = _own(x).reshape(r, r)
        return split.K(delta, 0.5 * (M + M.T)).ravel()

    Kop = spla.LinearOperator((r * r, r * r), matvec=mv, dtype=float)
    best = None
    starts = ([] if v0 is None else [v0 / np.linalg.norm(v0) + 0.1 * eye]) + [eye]
    for attempt, start in enumerate(starts):
        ncv = min(r * r - 1, 20 if attempt == 0 else 40)
        try:
            vals, vecs = spla.eigs(Kop, k=1, which="LM", v0=start, tol=tol, ncv=ncv,
                                   maxiter=max(1000, 10 * r * r))
        except spla.ArpackNoConvergence as exc:
            if len(exc.eigenvalues) == 0:
                continue
            vals, vecs = exc.eigenvalues, exc.eigenvectors
        except spla.ArpackError:
            continue
        i = int(np.argmax(np.abs(vals)))
        kappa = float(np.abs(vals[i]))
        X = _normalise_psd(np.real(vecs[:, i]).reshape(r, r))
        br = _cw_bracket(Kfun, X)
        if best is None or kappa > best[0] * (1 + 1e-12):
            best = (kappa, X, br)
        if br[1] - br[0] <= 1e-6 * max(kappa, 1e-300):
            break
    if best is None:
        raise np.linalg.LinAlgError("ARPACK failed on the splitting operator")
    return best


def _cw_bracket(apply, X):
    """Certified bracket (lo, hi) of the spectral radius of a positive map from X ⪰ 0.

    hi: for P ≻ 0, ρ ≤ λ_max(P^{-1/2} K(P) P^{-1/2}); P = X, or X + τI when X is singular (still
    a valid bound; the smallest over a few τ is kept). lo: K(X) ⪰ cX with X ⪰ 0 gives ρ ≥ c,
    and c = 1/λ_max(K(X)^{-1/2} X K(X)^{-1/2}) when K(X) ≻ 0 (Collatz–Wielandt, Krein–Rutman).
    """
    r = X.shape[0]
    tiny = 1e3 * r * np.finfo(float).eps
    lam, Q = np.linalg.eigh(0.5 * (X + X.T))
    if not np.all(np.isfinite(lam)) or lam[-1] <= 0:
        return 0.0, math.inf
    lam = np.maximum(lam, 0.0)  # the PSD part of X: the bounds need X ⪰ 0
    X = (Q * lam) @ Q.T
    KX = apply(X)
    if not np.all(np.isfinite(KX)):
        return 0.0, math.inf
    lamK, QK = np.linalg.eigh(KX)
    lo = 0.0
    keep = lamK > tiny * max(lamK[-1], 0.0)
    if np.any(keep):
        # on the range of K(X) (X must live there too, up to round-off: else no bound)
        Qr = QK[:, keep]
        Xr = Qr.T @ X @ Qr
        if np.linalg.norm(X - Qr @ Xr @ Qr.T) <= tiny * np.linalg.norm(X):
            S = Qr / np.sqrt(lamK[keep])
            G = S.T @ X @ S
            top = np.linalg.eigvalsh(0.5 * (G + G.T))[-1]
            lo = float(1.0 / top) if top > 0 else 0.0
    hi = math.inf
    top = lam[-1]
    for tau in ((0.0,) if lam[0] > tiny * top else (1e-10, 1e-7, 1e-4)):
        P, KP = X, KX
        if tau:
            P = X + tau * top * np.eye(r)
            KP = KX + tau * top * apply(np.eye(r))
        lp, Qp = (lam, Q) if not tau else np.linalg.eigh(P)
        S = Qp / np.sqrt(lp)
        G = S.T @ KP @ S
        hi = min(hi, float(np.linalg.eigvalsh(0.5 * (G + G.T))[-1]))
    return lo, hi


@dataclass
class _Bracket:
    """Certified bracket of δ = ρ(T) − 1, best estimate, eigenmatrix and work done."""

    lo: float
    hi: float
    estimate: float
    eigenmatrix: np.ndarray | None = None
    evaluations: int = 0
    converged: bool = False
    timed_out: bool = False


#: Certified distance of ρ(T) above 1 beyond which the splitting hands over to ARPACK on T.
_SEPARATED = 1e-3


def _splitting_rate(op, *, tol=1e-12, time_budget=None, stop_width=0.0, verdict_only=False):
    """ρ(T) − 1 from the splitting: the root δ* of κ(δ) = ρ(K(1+δ)) = 1 (:class:`_Splitting`).

    h(δ) = 1/κ(δ) − 1 increases from −1 at the pole δ_𝒜 = ρ(𝒜) − 1 to +∞ and is searched in
    t = log(δ − δ_𝒜) by Illinois-safeguarded secant steps: near a strongly coupled pole
    κ ~ c/(δ − δ_𝒜) (h is smooth), near a weakly coupled one (the tiny-curvature directions
    barely feel the noise) the root sits within a few ulps of δ_𝒜 and the log scale reaches it
    in a few steps. The certified bracket (lo, hi) moves only with Collatz–Wielandt-certified
    signs of κ − 1, so it always contains δ*. ``verdict_only`` stops as soon as the sign of δ*
    is certified: one solve at δ = 0 unless ρ(T) is within the certificate's resolution of 1.
    """
    t0 = time.perf_counter()
    split = _Splitting(op)
    dA = split.delta_mean
    out = _Bracket(lo=dA, hi=math.inf, estimate=dA)
    floor = 64 * np.finfo(float).eps * (1.0 + abs(dA))
    ta, fa = math.log(floor), -1.0  # pole model: h → −1 at δ_𝒜 (assumed, never certified)
    tb = fb = None
    side = None
    v0 = None
    t = math.log(-dA) if dA < -floor else math.log(max(abs(dA), 1e-3))
    for _ in range(200):
        if time_budget is not None and time.perf_counter() - t0 > time_budget:
            out.timed_out = True
            break
        x = dA + math.exp(t)
        kappa, X, (klo, khi) = _perron(split, x, v0)
        out.evaluations += 1
        v0 = X.ravel()
        out.eigenmatrix, out.estimate = X, x
        if kappa == 0.0:  # 𝒩 ≡ 0 (no sampling noise): T = 𝒜 and ρ(T) = ρ(𝒜) exactly
            out.lo = out.hi = out.estimate = dA
            out.converged = True
            return out
        if klo > 1.0:      # certified ρ(T) > 1 + x
            out.lo = max(out.lo, x)
        elif khi < 1.0:    # certified ρ(T) < 1 + x
            out.hi = min(out.hi, x)
        if verdict_only and (out.lo > 0.0 or out.hi <= 0.0):
            out.converged = True
            break
        if out.evaluations == 1 and x >= 0.0 and kappa > 1.0 and not verdict_only \
                and op.r > PERRON_DENSE_MAX_SPAN:
            # ρ(T) > 1: if it is clear of the cluster below 1 that the splitting exists for
            # (ρ ≥ 1 + _SEPARATED), Lanczos/Arnoldi on T from the Perron estimate converges fast;
            # its value is then certified by the splitting (≤ 2 more solves).
            rate, V, _, conv = op._lanczos(tol, v0=X)
            if conv and rate - 1.0 >= max(out.lo, _SEPARATED):
                out.estimate, out.eigenmatrix, out.converged = rate - 1.0, V, True
                _certify(split, out, tol, v0)
                return out
        if out.hi - out.lo <= max(tol * (1.0 + abs(x)), stop_width):
            out.converged = True
            break
        h = 1.0 / kappa - 1.0 if kappa > 0 else math.inf
        if abs(h) <= 0.1 * tol and khi - klo <= 1e-6 * kappa:
            out.converged = True
            break
        if h < 0:
            if side == "a" and fb is not None:
                fb *= 0.5
            ta, fa, side = t, h, "a"
        else:
            if side == "b":
                fa *= 0.5
            tb, fb, side = t, h, "b"
        if tb is None:  # nothing with κ < 1 yet: jump to a Collatz–Wielandt upper bound of T
            _, up = _cw_bracket(op.apply, X)
            if math.isfinite(up) and up - 1.0 > x:
                out.hi = min(out.hi, up - 1.0)
                t = math.log(up - 1.0 - dA)
            else:
                t += max(math.log(2.0 * kappa), math.log(2.0))
            continue
        tn = tb - fb * (tb - ta) / (fb - fa)
        if not (ta < tn < tb):
            tn = 0.5 * (ta + tb)
        if abs(math.exp(tn) - math.exp(t)) <= 0.1 * tol * (1.0 + abs(x)) or \
                math.exp(tb) - math.exp(ta) <= max(0.1 * tol * (1.0 + abs(x)), stop_width):
            out.estimate, out.converged = dA + math.exp(tn), True
            break
        t = tn
    if out.converged and not out.timed_out and not verdict_only:
        _certify(split, out, tol, v0)
        if out.estimate > dA:  # the eigenmatrix at the root: K X = X  ⇔  T X = ρ X
            kappa, X, _ = _perron(split, out.estimate, v0)
            out.evaluations += 1
            if abs(kappa - 1.0) > 1e-6 and not np.iscomplexobj(split.b):
                X = _pole_eigenmatrix(split, out.estimate)
            out.eigenmatrix = X
    if not out.converged:
        out.estimate = min(max(out.estimate, out.lo), out.hi)
    return out


def _pole_eigenmatrix(split, delta, steps=3):
    """Eigenmatrix of T when ρ(T) sits within round-off of ρ(𝒜) (weakly coupled pole).

    There κ(δ) = 1 is reached only at a distance from the pole below what δ resolves, so the
    Perron vector of K is taken by its fixed point X = P + K_⊥(X), with P = vvᵀ the top
    eigenmatrix of 𝒜 and K_⊥ the splitting map with the pole component removed.
    """
    k = int(np.argmax(-2 * split.b + split.b**2))
    v = split.V[:, k]
    P = np.outer(v, v)
    X = P
    for _ in range(steps):
        C = split.noise(X)
        Y = (split.W @ C @ split.W.T) / (delta + split._den_base)
        Y[k, k] = 0.0
        X = P + split.V @ Y @ split.V.T
        X = 0.5 * (X + X.T)
    return _normalise_psd(X)


def _certify(split, out, tol, v0):
    """Move the certified bracket to within a few ``tol`` of the estimate (≤ 2 more solves)."""
    est = out.estimate
    for k in (1.0, 16.0):
        w = k * tol * (1.0 + abs(est))
        if out.hi - out.lo <= 4 * w + 4 * tol * (1.0 + abs(est)):
            return
        for x, side in ((est - w, "lo"), (est + w, "hi")):
            if x <= split.delta_mean or (side == "lo" and x <= out.lo) or (side == "hi" and x >= out.hi):
                continue
            _, X, (klo, khi) = _perron(split, x, v0)
            out.evaluations += 1
            if side == "lo" and klo > 1.0:
                out.lo = x
            if side == "hi" and khi < 1.0:
                out.hi = x


# ---------------------------------------------------------------------- commuting closed forms
def _commuting_rate(dyn):
    """ρ(T) = max_k E[j_k²] of a commuting set (THEORY §3) from the per-direction factors."""
    rates = dyn.direction_rates()
    if rates.size == 0:
        raise ValueError("every Hessian that enters the dynamics is zero")
    k = int(np.argmax(rates))
    return float(rates[k]), k


# ---------------------------------------------------------------------- results
@dataclass(frozen=True)
class MeanSquareResult:
    """Result of :func:`mean_square`.

    ``rate`` = ρ(T) on the span (E‖w_k‖² grows like rate^k; > 1 means the iterates escape w*,
    i.e. the model **forgets**; ≤ 1 means it **resists**). ``eigenmatrix`` is the top eigenmatrix in
    span coordinates (PSD by Krein–Rutman, Frobenius-normalised; None for closed forms),
    ``span_dim``/``null_dim`` the dimensions of the span and of the common null space, ``method``
    the algorithm used and ``converged`` whether the requested precision was reached.

    ``bounds`` = (lo, hi) brackets ρ(T). For ``method="splitting"`` it is *certified*
    (Collatz–Wielandt bounds of the regular splitting, see :class:`_Splitting`); for the exact
    methods (``closed_form``, ``dense``) it is (rate, rate) up to round-off; for ``arpack`` it is
    (rate, rate) and not certified. ``horizon``/``neutral``: with a horizon of k steps, the
    result is *neutral within the horizon* when the bracket shows |ρ − 1|·k < ``horizon_tol``
    (E‖w_k‖² changes by less than that fraction over k steps): then ``verdict`` says so instead
    of forgets/resists, and ``rate`` is only known to that precision.

    **Shared curvature λI** (issue 11, :meth:`HessianSet.from_factors` ``shared=``): the null
    space N of the per-sample factors is invariant and every J is a scalar j there, so T is
    block diagonal and ρ(T) = max(``span_rate``, ``null_rate``) exactly, with ``span_rate`` the
    spectral radius on the span and ``null_rate`` = E[j²] (None without a null mode; then
    ``rate`` = ``span_rate`` as before). When the null mode dominates, ``eigenmatrix`` is None
    (the eigenmatrix is the projector onto N, outside span coordinates) and ``bounds`` are
    (null_rate, null_rate).
    """

    rate: float
    eigenmatrix: np.ndarray | None = field(repr=False)
    span_dim: int
    null_dim: int
    method: str
    converged: bool
    notion: str = MEAN_SQUARE
    bounds: tuple[float, float] = (math.nan, math.nan)
    horizon: int | None = None
    neutral: bool = False
    elapsed: float = 0.0
    span_rate: float = math.nan
    null_rate: float | None = None

    @property
    def forgets(self) -> bool:
        """ρ(T) > 1: the model escapes w* in mean square (forgets)."""
        return self.rate > 1.0

    @property
    def diverges(self) -> bool:
        """Alias of :attr:`forgets` (ρ(T) > 1)."""
        return self.forgets

    @property
    def verdict(self) -> str:
        if self.neutral:
            return (f"neutral within the horizon: |ρ(T) − 1|·{self.horizon} is below the "
                    "horizon tolerance, so E‖w_k‖² neither grows nor decays detectably")
        return verdict_text(self.forgets)


@_capped
def mean_square(hs, schedule=None, *, method="auto", tol=1e-12, time_budget=None,
                horizon=None, horizon_tol=1e-2) -> MeanSquareResult:
    """Exact mean-square analysis on the span of the Hessians (THEORY §3).

    ρ(T) is the spectral radius of T(M) = E[J M Jᵀ] restricted to symmetric matrices on the span
    U of the Hessians that enter J. ``method``:

    - ``"closed_form"``: commuting sets, ρ = max_k E[j_k²];
    - ``"dense"``: eigenvalues of the r²×r² matrix (r ≤ 60);
    - ``"splitting"``: T = 𝒜 + 𝒩 with 𝒜(M) = E[J] M E[J]ᵀ inverted exactly (Stein equation in
      the eigenbasis of E[J]); ρ(T) is the root of ρ((μ − 𝒜)⁻¹𝒩) = 1, which no longer sees the
      cluster of eigenvalues just below 1 that tiny-curvature directions put into T. Returns a
      certified bracket (Collatz–Wielandt);
    - ``"lanczos"``: summed schedule (T self-adjoint), in the eigenbasis of E[J] where
      𝒜(M) = E[J] M E[J] is diagonal: Newton on μ for ρ((μ − 𝒜)^{-1/2} 𝒩 (μ − 𝒜)^{-1/2}) = 1,
      each step a Lanczos solve of that symmetric operator, which — unlike T — has no cluster of
      eigenvalues near its top (a handful of applications where Lanczos on T needs ~100);
      falls back to Lanczos on T. Other schedules (T not self-adjoint) use ARPACK;
    - ``"arpack"``: ARPACK (Lanczos/Arnoldi with implicit restarts) on T from the identity,
      stopped on the residual ‖Tx − θx‖ ≤ tol·θ;
    - ``"auto"``: closed form if commuting, dense for r ≤ ``DENSE_MAX_SPAN``, splitting for
      r ≤ ``SPLITTING_MAX_SPAN``, Lanczos above (or splitting whenever a ``time_budget`` or
      ``horizon`` is given).

    ``tol``: relative precision of ρ. ``time_budget`` (seconds, splitting only): when it runs out
    the certified bracket found so far is returned with ``converged=False`` and a
    RuntimeWarning. ``horizon`` (steps): ρ is only needed to the precision a k-step run can
    detect, |ρ − 1|·k ≥ ``horizon_tol``; the solver stops there and reports
    ``neutral=True`` when the bracket lies inside that band. BLAS threads are capped by
    :func:`blas_threads` (``RMT_BLAS_THREADS``).
    """
    t0 = time.perf_counter()
    if horizon is not None:
        horizon = check_int(horizon, "horizon", minimum=1)
    if time_budget is not None and not (time_budget > 0):
        raise ValueError(f"time_budget must be a positive number of seconds, got {time_budget!r}")
    dyn = as_dynamics(hs, schedule)
    check_choice(method, "method", METHODS)
    # a Dynamics is immutable: the plain (no budget, no horizon) result is kept on it, so that
    # analyses that each need ρ(T) of the same Dynamics (forecast, stationary, reports) solve once
    key = (method, float(tol)) if time_budget is None and horizon is None else None
    cache = dyn.__dict__.setdefault("_mean_square_cache", {})
    if key is not None and key in cache:
        return cache[key]
    res = _mean_square(dyn, method, tol, time_budget, horizon, horizon_tol, t0)
    if key is not None:
        cache[key] = res
    return res


def _mean_square(dyn, method, tol, time_budget, horizon, horizon_tol, t0):
    op = MeanSquareOperator(dyn)
    band = horizon_tol / horizon if horizon is not None else 0.0
    if method == "auto" and (horizon is not None or time_budget is not None) \
            and op.hs.kind != "commuting":
        method = "splitting"
    used = method
    if method in ("splitting", "auto") and (method == "splitting" or (
            op.hs.kind != "commuting" and DENSE_MAX_SPAN < op.r <= SPLITTING_MAX_SPAN)):
        try:
            b = _splitting_rate(op, tol=tol, time_budget=time_budget, stop_width=band)
        except np.linalg.LinAlgError:
            b = None
        if b is not None:
            if b.timed_out:
                warnings.warn(
                    f"mean_square: time budget of {time_budget} s ran out after {b.evaluations} "
                    f"solves; returning the certified bracket ρ ∈ [{1 + b.lo:.15g}, {1 + b.hi:.15g}]",
                    RuntimeWarning, stacklevel=4)
            return _with_null(op, 1.0 + b.estimate, b.eigenmatrix, "splitting", b.converged,
                              (1.0 + b.lo, 1.0 + b.hi), horizon, band, t0)
        used = "lanczos"
    rate, V, used, conv = op.rate(method=used, tol=tol)
    return _with_null(op, rate, V, used, conv, (rate, rate), horizon, band, t0)


def _with_null(op, rate, V, method, converged, bounds, horizon, band, t0):
    """The result from the span rate and, with a shared λI, the null scalar mode E[j²]."""
    span_rate, null = rate, op.null_rate
    if null is not None and null > rate:
        rate, V, bounds = null, None, (null, null)
    elif null is not None:
        bounds = (max(bounds[0], null), max(bounds[1], null))
    if horizon is None:
        neutral = False
    elif method == "splitting":
        neutral = bounds[0] >= 1 - band and bounds[1] <= 1 + band
    else:
        neutral = abs(rate - 1.0) <= band
    return MeanSquareResult(rate, V, op.r, op.null_dim, method, converged, bounds=bounds,
                            horizon=horizon, neutral=neutral, elapsed=time.perf_counter() - t0,
                            span_rate=span_rate, null_rate=null)


def mean_square_rate(hs, schedule=None, *, method="auto", tol=1e-12, time_budget=None) -> float:
    """ρ(T): the mean-square growth rate per step on the span of the Hessians (THEORY §3).

    T(M) = E[J M Jᵀ]; for the summed schedule
    T(M) = (I−ηD)M(I−ηD) + η²(1−α)²N_R(M) + η²α²N_F(M). E‖w_k‖² ~ ρ(T)^k on the span;
    ρ(T) > 1 ⇔ the iterates escape w* (the model forgets). The null-space dimension is
    ``hs.null_dim`` (or :func:`mean_square` for a result object). See :func:`mean_square`.
    """
    return mean_square(hs, schedule, method=method, tol=tol, time_budget=time_budget).rate


@_capped
def mean_square_stable(hs, schedule=None, *, time_budget=None) -> bool:
    """Sign test ρ(T) ≤ 1 (the model resists) without computing ρ to full precision.

    Regular splitting (:func:`mean_square`, ``method="splitting"``): ρ(T) < 1 ⇔ ρ(𝒜) < 1 and
    ρ((I − 𝒜)⁻¹𝒩) < 1, and the second is certified by one Collatz–Wielandt bound at μ = 1 —
    a single well-conditioned eigen-solve, whatever the cluster of T's spectrum below 1.
    Only when ρ(T) is within the certificate's resolution of 1 is ρ refined further. For the
    summed schedule above ``SPLITTING_MAX_SPAN`` the same splitting is symmetrised in the
    eigenbasis of E[J] and solved by Lanczos (fast, not certified; see ``method="lanczos"``).
    """
    return _is_stable(as_dynamics(hs, schedule), time_budget=time_budget)


def _is_stable(dyn, time_budget=None):
    if dyn.has_null_mode and dyn.null_rate > 1.0:  # the null scalar mode of a shared λI
        return False
    if dyn.hs.kind == "commuting":
        return _commuting_rate(dyn)[0] <= 1.0
    op = MeanSquareOperator(dyn)
    if op.r <= 2:
        return op.rate("dense")[0] <= 1.0
    if op.self_adjoint and op.r > SPLITTING_MAX_SPAN:
        return _large_span_margin(op) >= 0.0
    try:
        b = _splitting_rate(op, tol=1e-12, time_budget=time_budget, verdict_only=True)
    except np.linalg.LinAlgError:
        return op.rate("lanczos")[0] <= 1.0
    if b.hi <= 0.0:
        return True
    if b.lo > 0.0:
        return False
    return b.estimate <= 0.0


def _stability_margin(dyn):
    """A continuous function with the sign of 1 − ρ(T): 1/ρ(K(1)) − 1 (−1 when ρ(𝒜) ≥ 1).

    Same sign as 1 − ρ(T) by the regular-splitting theorem, and well conditioned near ρ = 1
    (no near-1 cluster): what root-finders on η, B, α should evaluate. With the null mode of a
    shared λI: the minimum of that and 1 − E[j²] (ρ(T) ≤ 1 iff both are ≥ 0).
    """
    span = _span_margin(dyn)
    return span if not dyn.has_null_mode else min(span, 1.0 - dyn.null_rate)


def _span_margin(dyn):
    if dyn.hs.kind == "commuting":
        return 1.0 - _commuting_rate(dyn)[0]
    op = MeanSquareOperator(dyn)
    if op.r <= 2:
        return 1.0 - op.rate("dense")[0]
    if op.self_adjoint and op.r > SPLITTING_MAX_SPAN:
        return _large_span_margin(op)
    try:
        split = _Splitting(op)
    except np.linalg.LinAlgError:
        return 1.0 - op.rate("lanczos")[0]
    if split.delta_mean >= 0.0:
        return -1.0 if split.delta_mean > 0.0 else 1.0 - op.rate("splitting")[0]
    kappa = _perron(split, 0.0)[0]
    return 1.0 / kappa - 1.0 if kappa > 0 else math.inf


def _large_span_margin(op, tol=1e-12):
    """The splitting margin 1/κ − 1 of a summed T at r > ``SPLITTING_MAX_SPAN``, in the
    eigenbasis of E[J]: κ = λ_max(D^{-1/2}𝒩D^{-1/2}) with D = 1 − a_i a_j > 0 (ρ(𝒜) < 1), the
    symmetrised K(1) of the regular splitting (same sign as 1 − ρ(T), THEORY §3), by Lanczos
    from the pole guess plus an identity share — a few applications where ARPACK on the
    non-symmetric K(1) in span coordinates needs several times more, each dearer. −1 when
    ρ(𝒜) > 1 (then ρ(T) ≥ ρ(𝒜) > 1). Not certified (Krylov residual rule; the bracketed margin
    of :func:`_splitting_rate` is used up to ``SPLITTING_MAX_SPAN``)."""
    eig = op.eigenbasis
    D = eig.one_minus_aa
    low = float(np.min(D))
    if low < 0.0:
        return -1.0
    if low == 0.0:
        return 1.0 - op.rate("lanczos", tol=tol)[0]
    Dh = np.sqrt(D)
    K = eig.symmetrised_splitting(Dh)
    r = op.r
    start = Dh * eig.pole_guess()
    start = eig.pack(start / np.linalg.norm(start) + IDENTITY_SHARE * np.eye(r) / np.sqrt(r))
    # a root-finder needs the margin's sign far from the root and its value near it: a loose
    # solve first (κ to ~1e-6), refined from its own eigenvector only when |margin| < 1e-3
    for inner in (max(1e-6, 0.1 * tol), 0.1 * tol):
        out = _block_krylov_top(K, [start], inner)
        if out is None:
            return 1.0 - op.rate("lanczos", tol=tol)[0]
        kappa, start, _ = out
        if kappa <= 0:
            return math.inf
        if abs(1.0 / kappa - 1.0) > 1e-3:
            break
    return 1.0 / kappa - 1.0


# ---------------------------------------------------------------------- second moment
@dataclass(frozen=True)
class SecondMomentResult:
    """Exact E‖w_k‖² for k = 0..steps (THEORY §3: E[w_k w_kᵀ] = T^k(E[w_0 w_0ᵀ])).

    ``total`` = E‖w_k‖² (shape steps+1), ``span`` = the part on the span of the Hessians,
    ``null`` = the part on the common null space — a constant float, or with the null mode of a
    shared λI the array E‖v_k‖² = E[j²]^k ‖v_0‖² (steps+1,) — and ``matrices`` = E[w_k w_kᵀ] as
    (steps+1, d, d) when requested.
    """

    total: np.ndarray
    span: np.ndarray
    null: float | np.ndarray
    matrices: np.ndarray | None = field(default=None, repr=False)


def second_moment(hs, schedule=None, steps=None, m0=None, *,
                  return_matrices=False) -> SecondMomentResult:
    """Exact second moments E‖w_k‖², k = 0..steps, by iterating T (THEORY §3).

    ``m0`` is E[w_0 w_0ᵀ] as a (d, d) PSD matrix, or a vector w_0 of shape (d,) (deterministic
    start, m0 = w_0 w_0ᵀ), or None for m0 = I. With w = u + v (u on the span U, v on the null
    space), v is frozen and ‖w‖² = ‖u‖² + ‖v‖², so E‖w_k‖² = tr T^k(Uᵀm0U) + tr(P_N m0).
    """
    if isinstance(hs, Dynamics) and not isinstance(schedule, Schedule) and schedule is not None:
        # second_moment(dynamics, steps, m0) positional form
        schedule, steps, m0 = None, schedule, steps if m0 is None else m0
    op = MeanSquareOperator(as_dynamics(hs, schedule))
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
def mixed_hessian(hs: HessianSet, alpha: float, *, matrix_free=False):
    """Mixed Hessian D = (1−α)H̄_R − αH̄_F (THEORY §2), so that E[J] = I − ηD.

    Returns a dense (d, d) array, or with ``matrix_free=True`` a
    :class:`scipy.sparse.linalg.LinearOperator` that applies D through the factors (O(n d k) per
    product, no d×d matrix).
    """
    check_hessian_set(hs)
    alpha = check_unit_interval(alpha, "alpha")
    if alpha > 0 and not hs.has_forget:
        raise ValueError(f"alpha={alpha} > 0 needs a forget set, but the HessianSet has none")
    parts = [("retain", 1.0 - alpha)] + ([("forget", -alpha)] if alpha > 0 else [])
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


def mixed_hessian_extremes(hs: HessianSet, alpha: float) -> tuple[float, float]:
    """(λ_min, λ_max) of D = (1−α)H̄_R − αH̄_F restricted to the span of the active Hessians.

    Restricting to the span means a round-off "eigenvalue" of D on the common null space is never
    reported as an escape direction (THEORY §5.4). λ_min < 0 means the mean dynamics already
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
    if alpha < 1:
        D += (1 - alpha) * red.mean("retain")
    if alpha > 0:
        D -= alpha * red.mean("forget")
    return D


# ---------------------------------------------------------------------- stable sets
def _pmul(P, Q, mul):
    """Product of two polynomials with (matrix) coefficients, ``mul`` the coefficient product."""
    out = [None] * (len(P) + len(Q) - 1)
    for i, a in enumerate(P):
        for j, b in enumerate(Q):
            c = mul(a, b)
            out[i + j] = c if out[i + j] is None else out[i + j] + c
    return out


def _padd(P, Q):
    n = max(len(P), len(Q))
    zero = (P[0] if P else Q[0]) * 0
    return [(P[k] if k < len(P) else zero) + (Q[k] if k < len(Q) else zero) for k in range(n)]


def _weight_polys(dyn, parameter):
    """s_S(x) = s0 + s1·x for x = η (s = u·η) or x = α (s_R = −η(1−α), s_F = ηα)."""
    if parameter == "eta":
        return {t.name: (0.0, t.weight / dyn.eta) for t in dyn.terms}
    eta = dyn.eta
    return {"retain": (-eta, eta), "forget": (0.0, eta)}


def _operator_polynomial(dyn, parameter, commuting, null=False):
    """Coefficients T_k of T(x) = Σ_k x^k T_k: entries of T are polynomials in η and α
    (degree 2 summed/SAM, 4 alternating). ``commuting``: per-direction scalars (n_dir,) of the
    diagonal action E[j_k²]; otherwise r²×r² Kronecker matrices (row-major vec). ``null``: the
    scalar null mode of a shared λI (a commuting direction of eigenvalue λ for every sample)."""
    w = _weight_polys(dyn, parameter)
    if commuting or null:
        commuting = True
        moms = {t.name: (m, N) for t, m, N in
                (dyn.null_moments() if null else dyn.direction_moments())}
        one = np.ones_like(next(iter(moms.values()))[0])
        kron = np.multiply
        mean = {k: m for k, (m, _) in moms.items()}
        noise = {k: N for k, (_, N) in moms.items()}
        kappa = one
        if dyn.combinator == "sam":
            kappa = one + (dyn.schedule.sam_rho / dyn.schedule.sam_a) * mean["retain"]
        mean = {k: v * kappa for k, v in mean.items()}
        noise = {k: v * kappa**2 for k, v in noise.items()}
    else:
        r = dyn.r
        one = np.eye(r)
        kron = np.kron
        mean = {t.name: t.mean @ dyn.K for t in dyn.terms}
        noise = {t.name: t.kron_noise() @ (np.kron(dyn.K, dyn.K) if dyn.combinator == "sam"
                                           else np.eye(r * r)) for t in dyn.terms}
    ones = kron(one, one)

    def step(names):
        A = [one.copy(), one * 0]
        for n in names:
            s0, s1 = w[n]
            A = _padd(A, [s0 * mean[n], s1 * mean[n]])
        T = _pmul(A, A, kron)
        for n in names:
            s0, s1 = w[n]
            T = _padd(T, [s0**2 * noise[n], 2 * s0 * s1 * noise[n], s1**2 * noise[n]])
        return T

    names = [t.name for t in dyn.terms]
    if dyn.combinator != "alternating":
        return step(names)
    T = [ones]
    for n in names:  # T = T_F ∘ T_R: later terms multiply from the left
        T = _pmul(step([n]), T, lambda a, b: a @ b if not commuting else a * b)
    return T


def _sym_embedding(r):
    """Orthonormal S (r², r(r+1)/2): vec of the symmetric basis matrices (row-major)."""
    cols = []
    for i in range(r):
        for j in range(i, r):
            E = np.zeros((r, r))
            if i == j:
                E[i, i] = 1.0
            else:
                E[i, j] = E[j, i] = 1.0 / math.sqrt(2.0)
            cols.append(E.ravel())
    return np.array(cols).T


def _real_roots(coeffs, lo, hi):
    """Real roots in (lo, hi) of det(Σ_k x^k C_k) (matrices) or of Σ_k x^k c_k (scalars)."""
    coeffs = [np.atleast_2d(c) for c in coeffs]
    scale = max(float(np.max(np.abs(c))) for c in coeffs) or 1.0
    while len(coeffs) > 1 and np.max(np.abs(coeffs[-1])) <= 1e-14 * scale:
        coeffs = coeffs[:-1]  # degree drops (e.g. no noise): the lower-degree problem
    m = len(coeffs) - 1
    if m == 0:
        return np.zeros(0)
    n = coeffs[0].shape[0]
    if n == 1:
        roots = np.roots([float(c[0, 0]) for c in reversed(coeffs)])
    else:
        A = np.zeros((m * n, m * n))
        B = np.eye(m * n)
        A[: (m - 1) * n, n:] = np.eye((m - 1) * n)
        for k in range(m):
            A[(m - 1) * n:, k * n:(k + 1) * n] = -coeffs[k]
        B[(m - 1) * n:, (m - 1) * n:] = coeffs[m]
        ab = scipy.linalg.eigvals(A, B, homogeneous_eigvals=True)
        fin = np.abs(ab[1]) > 1e-13 * np.abs(ab[0])
        roots = ab[0][fin] / ab[1][fin]
    roots = np.asarray(roots, complex)
    # generous on the imaginary part: a spurious breakpoint only splits an interval in two
    # (both halves are tested and merged), a missed one could hide a window
    real = roots[np.abs(roots.imag) <= 1e-6 * np.maximum(1.0, np.abs(roots))].real
    return np.sort(real[(real > lo) & (real < hi)])


def _breakpoints(dyn, parameter, lo, hi):
    """Every x in (lo, hi) where an eigenvalue of T(x) (on symmetric matrices) crosses 1."""
    pts = _scalar_breakpoints(dyn, parameter, lo, hi, False) \
        if dyn.hs.kind == "commuting" else _matrix_breakpoints(dyn, parameter, lo, hi)
    if dyn.has_null_mode:  # the null scalar mode of a shared λI crosses 1 on its own
        pts = np.union1d(pts, _scalar_breakpoints(dyn, parameter, lo, hi, True))
    return pts


def _scalar_breakpoints(dyn, parameter, lo, hi, null):
    T = _operator_polynomial(dyn, parameter, True, null=null)
    pts = []
    for k in range(T[0].size):
        c = [float(np.asarray(Tk).ravel()[k]) for Tk in T]
        c[0] -= 1.0
        if parameter == "eta":
            c = c[1:]  # T(0) = I: divide out the root at η = 0
        if max(abs(v) for v in c) <= _ROUNDOFF * max(abs(float(np.asarray(Tk).ravel()[k]))
                                                       for Tk in T):
            continue  # frozen direction (identity for every x)
        pts.extend(_real_roots(c, lo, hi))
    return np.unique(np.asarray(pts, float))


def _matrix_breakpoints(dyn, parameter, lo, hi):
    T = _operator_polynomial(dyn, parameter, False)
    S = _sym_embedding(dyn.r)
    C = [S.T @ Tk @ S for Tk in T]
    C[0] = C[0] - np.eye(S.shape[1])
    if parameter == "eta":
        C = C[1:]
    return _real_roots(C, lo, hi)


def _merge(points, stable, lo, hi):
    """Union of closed intervals from breakpoints and the status of each open piece."""
    edges = [lo] + list(points) + [hi]
    out = []
    for a, b, ok in zip(edges[:-1], edges[1:], stable):
        if not ok:
            continue
        if out and out[-1][1] == a:
            out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return tuple((float(a), float(b)) for a, b in out)


def _polish(dyn, parameter, x, rtol):
    """Refine a transition point with the well-conditioned stability margin (sign change)."""
    f = lambda v: _stability_margin(dyn.replace(**{parameter: float(v)}))  # noqa: E731
    for w in (1e-9, 1e-6):
        a, b = x * (1 - w), x * (1 + w)
        if parameter == "alpha":
            a, b = max(a, 0.0), min(b, 1.0)
        if a <= 0.0 or a >= b:
            continue
        fa, fb = f(a), f(b)
        if fa * fb < 0:
            return float(scipy.optimize.brentq(f, a, b, rtol=rtol, xtol=1e-300))
    return float(x)


@_capped
def stable_set(hs, schedule=None, *, parameter="eta", rtol=1e-10):
    """The mean-square stable set {x : ρ(T(x)) ≤ 1} as a tuple of closed intervals (lo, hi).

    ``parameter="eta"`` (x ∈ (0, ∞), the schedule's η ignored; hi may be inf) or ``"alpha"``
    (x ∈ [0, 1], the schedule's α ignored). The entries of T(x) are polynomials in η and in α
    (degree 2 summed/SAM, 4 alternating), so ρ(T(x)) can cross 1 only at a real root of
    det(T(x) − I) — the polynomial eigenvalue problem Σ_k x^k (T_k − δ_k0 I) on symmetric
    matrices, solved by companion linearisation (per-direction polynomial roots for commuting
    sets). Between consecutive roots the verdict is constant and is decided once, so no window
    can be stepped over, however narrow. Needs a commuting set or span r ≤ ``PEP_MAX_SPAN``.
    """
    check_choice(parameter, "parameter", ("eta", "alpha"))
    dyn = as_dynamics(hs, schedule)
    if parameter == "alpha":
        dyn = _alpha_dynamics(dyn)
    if dyn.hs.kind != "commuting" and dyn.r > PEP_MAX_SPAN:
        raise ValueError(
            f"stable_set solves det(T(x) − I) = 0 exactly for spans r ≤ {PEP_MAX_SPAN} (or "
            f"commuting sets); this one has r = {dyn.r}")
    return _stable_set(dyn, parameter, rtol)


def _alpha_dynamics(dyn):
    """The dynamics at an interior α (both sets active; span = retain ∪ forget span)."""
    if dyn.schedule.schedule == "sam":
        raise ValueError("the stable set in alpha is not defined for schedule='sam' (alpha must be 0)")
    if not dyn.hs.has_forget:
        raise ValueError("a stable set in alpha needs a HessianSet with a forget set")
    return dyn.replace(alpha=0.5)


def _stable_set(dyn, parameter, rtol):
    lo, hi = (0.0, math.inf) if parameter == "eta" else (0.0, 1.0)
    pts = _breakpoints(dyn, parameter, lo, hi)
    pts = np.array([_polish(dyn, parameter, p, rtol) for p in pts])
    pts = np.unique(pts)

    def stable_at(x):
        return _is_stable(dyn.replace(**{parameter: float(x)}))

    edges = [lo] + list(pts) + [hi]
    status = []
    for a, b in zip(edges[:-1], edges[1:]):
        if math.isinf(b):
            mid = 2.0 * a if a > 0 else 1.0
        elif parameter == "eta" and a > 0:
            mid = math.sqrt(a * b)
        else:
            mid = 0.5 * (a + b)
        status.append(stable_at(mid))
    out = _merge(pts, status, lo, hi)
    if parameter == "alpha" and out:
        # the end points are different dynamics (a set drops out): decide them directly
        first, last = out[0], out[-1]
        if first[0] == 0.0 and not _is_stable(_at_alpha(dyn, 0.0)):
            out = ((_next_up(0.0), first[1]),) + out[1:]
        if last[1] == 1.0 and not _is_stable(_at_alpha(dyn, 1.0)):
            out = out[:-1] + ((out[-1][0], float(np.nextafter(1.0, 0.0))),)
        out = tuple((a, b) for a, b in out if a <= b)
    return out


def _at_alpha(dyn, alpha):
    """The dynamics at α (the α = 0 and α = 1 end points drop a set and so change the span)."""
    return Dynamics(dyn.hs, dyn.schedule.replace(alpha=float(alpha)))


def _next_up(x):
    return float(np.nextafter(x, 1.0))


def _not_interval_warning(what, intervals):
    warnings.warn(
        f"the mean-square stable set in {what} is not an interval: "
        + " ∪ ".join(f"[{a:.6g}, {b:.6g}]" for a, b in intervals)
        + f"; the critical value is the upper edge of its lowest component (see rmt.stable_set)",
        RuntimeWarning, stacklevel=4)


# ---------------------------------------------------------------------- critical values
def _rate_at(dyn, **changes):
    return mean_square_rate(dyn.replace(**changes))


class _OutOfTime(Exception):
    pass


def _deadline(time_budget):
    if time_budget is None:
        return None
    if not (time_budget > 0):
        raise ValueError(f"time_budget must be a positive number of seconds, got {time_budget!r}")
    return time.perf_counter() + time_budget


def _check_time(deadline):
    if deadline is not None and time.perf_counter() > deadline:
        raise _OutOfTime


def _root(f, a, b, fa, fb, rtol, deadline, what):
    """Illinois root of f on [a, b] (f(a) ≥ 0 > f(b) or reverse) that keeps its bracket when the
    time budget runs out: then the midpoint is returned with a RuntimeWarning."""
    side = 0
    for _ in range(200):
        if abs(b - a) <= rtol * max(abs(a), abs(b)):
            break
        if deadline is not None and time.perf_counter() > deadline:
            warnings.warn(f"{what}: time budget ran out; the critical value lies in "
                          f"[{min(a, b):.12g}, {max(a, b):.12g}] (midpoint returned)",
                          RuntimeWarning, stacklevel=3)
            return 0.5 * (a + b)
        x = b - fb * (b - a) / (fb - fa) if fb != fa and math.isfinite(fa) and math.isfinite(fb) \
            else 0.5 * (a + b)
        if not (min(a, b) < x < max(a, b)):
            x = 0.5 * (a + b)
        fx = f(x)
        if fx == 0:
            return float(x)
        if (fx > 0) == (fa > 0):
            a, fa = x, fx
            if side == -1:
                fb *= 0.5
            side = -1
        else:
            b, fb = x, fx
            if side == 1:
                fa *= 0.5
            side = 1
    # the stable side (margin ≥ 0) is the answer: η* is the last stable point
    return float(a if fa >= 0 else b)


@_capped
def critical_eta(hs, schedule=None, *, rtol=1e-10, time_budget=None) -> float:
    """Critical learning rate η*: the upper edge of the lowest component of the stable set.

    The schedule's own ``eta`` is ignored. When the stable set {η > 0 : ρ(T(η)) ≤ 1} is an
    interval (0, η*] this is the usual critical step size. When it is not (alternating and SAM
    schedules can have unstable windows, or be unstable for small η and stable later), η* is
    the upper edge of its lowest component — the largest step size reached from the smallest
    stable ones without crossing instability — a RuntimeWarning says so, and
    :func:`stable_set` gives the whole union. Returns 0.0 when no η > 0 is stable.

    Summed schedule: T(η) = I − ηL + η²Q is self-adjoint, so (ρ(T(η)) − 1)/η =
    max_M ⟨M, (−L + ηQ)M⟩/‖M‖² is a maximum of affine functions of η, hence convex; its
    sublevel set {≤ 0} is an interval (0, η*], empty when λ_min(D) ≤ 0 on the span. η* is found
    by a bracketing root-finder on the well-conditioned stability margin 1/ρ(K(1)) − 1 of the
    regular splitting (same sign as 1 − ρ(T)). Commuting sets and spans r ≤ ``PEP_MAX_SPAN``
    (alternating, SAM) use the exact stable set (real roots of det(T(η) − I)); larger
    alternating/SAM spans fall back to a geometric scan that can miss windows narrower than its
    grid (a RuntimeWarning says so). ``time_budget`` (seconds): when it runs out the midpoint
    of the current bracket is returned with a RuntimeWarning.
    """
    dyn = as_dynamics(hs, schedule)
    deadline = _deadline(time_budget)
    if dyn.hs.kind == "commuting" or (dyn.combinator != "summed" and dyn.r <= PEP_MAX_SPAN):
        if dyn.combinator == "summed" and dyn.hs.kind == "commuting":
            return _commuting_critical_eta(dyn)
        sset = _stable_set(dyn, "eta", rtol)
        if len(sset) > 1:
            _not_interval_warning("η", sset)
        return sset[0][1] if sset else 0.0
    D = dyn.mixed_hessian()
    lam = np.linalg.eigvals(D).real if dyn.combinator == "sam" else np.linalg.eigvalsh(D)
    scale = float(np.max(np.abs(lam)))
    lmin, lmax = float(np.min(lam)), float(np.max(lam))
    if dyn.combinator == "summed":
        # the null scalar mode of a shared λI has its own closed-form η* (an interval (0, η*]
        # too): the stable set is the intersection, so η* = min(span η*, null η*)
        null_eta = _null_critical_eta(dyn) if dyn.has_null_mode else math.inf
        # λ_min(D) ≤ 0 (up to the round-off of an r×r eigensolver): the mean dynamics escape
        # for every small η. A genuine small curvature (1e-13 of the scale) is above this.
        if lmin <= _ROUNDOFF * dyn.r * scale or null_eta == 0.0:
            return 0.0

        def margin(eta):
            return _span_margin(dyn.replace(eta=float(eta)))

        hi = 2.0 / lmax  # ρ(T) ≥ ρ(E[J])² > 1 beyond this
        try:
            fhi = margin(hi)
            if fhi >= 0:
                return min(hi, null_eta)
            lo = hi
            for _ in range(200):
                _check_time(deadline)
                lo *= 0.5
                flo = margin(lo)
                if flo > 0:
                    break
            else:
                return 0.0
        except _OutOfTime:
            warnings.warn("critical_eta: time budget ran out before η* was bracketed; "
                          "returning nan", RuntimeWarning, stacklevel=2)
            return math.nan
        return min(_root(margin, lo, hi, flo, fhi, rtol, deadline, "critical_eta"), null_eta)
    warnings.warn(
        f"critical_eta: span r = {dyn.r} > PEP_MAX_SPAN = {PEP_MAX_SPAN} for the {dyn.combinator} "
        "schedule: η* comes from a geometric scan and an unstable window narrower than the "
        "scan's grid could be missed", RuntimeWarning, stacklevel=2)
    if lmin <= _ROUNDOFF * dyn.r * scale:
        lmin = lmax
    return _first_crossing(lambda eta: -_stability_margin(dyn.replace(eta=float(eta))),
                           1e-6 / lmax, 2.0 / lmin, rtol)


def _null_critical_eta(dyn):
    """η* of the null scalar mode (summed): E[j²] − 1 = η(a1 + η a2) with
    a1 = 2λΣ_S u_S, a2 = λ²[(Σ_S u_S)² + Σ_S u_S²(c_S − e_S)], u_S = s_S/η; stable iff η ≤ −a1/a2."""
    lam = dyn.shared_scalar
    u = [(t.weight / dyn.eta, t.size_variance) for t in dyn.terms]
    a1 = 2 * lam * sum(x for x, _ in u)
    a2 = lam**2 * (sum(x for x, _ in u) ** 2 + sum(x * x * v for x, v in u))
    if a2 <= 0.0 and a1 == 0.0:
        return math.inf
    return -a1 / a2 if a1 < 0 else 0.0


def _first_crossing(g, lo, hi_hint, rtol, grid=64):
    """First sign change of g from ≤ 0 to > 0 on a geometric grid starting at lo."""
    if g(lo) > 0:
        return 0.0
    hi = hi_hint
    for _ in range(60):
        pts = np.geomspace(lo, hi, grid)
        vals = [g(p) for p in pts]
        for a, b, ga, gb in zip(pts[:-1], pts[1:], vals[:-1], vals[1:]):
            if ga <= 0 < gb:
                return float(scipy.optimize.brentq(g, a, b, rtol=rtol, xtol=1e-300))
        lo, hi = hi, hi * 4
    return math.inf


def _commuting_critical_eta(dyn):
    """η* of a commuting set from the per-direction factors of :meth:`Dynamics.direction_factors`.

    Summed/SAM: E[j_k²] − 1 = η(a1 + η a2) with one root η*_k = −a1/a2 (= 2D_k/(D_k² + V_k)).
    Alternating: the product of the two per-set quadratics minus 1 is η·q_k(η), q_k a cubic;
    η*_k is the first positive root after which q_k turns positive.
    """
    factors = dyn.direction_factors()
    if dyn.combinator != "alternating":
        a1 = sum(f[2] for f in factors)
        # summed: Σ_S of (2 s m) terms; the quadratic coefficient is (Σ s m)² + Σ s² N
        moms = dyn.direction_moments()
        u = {t.name: t.weight / dyn.eta for t, _, _ in moms}
        kappa = 1.0
        if dyn.combinator == "sam":
            kappa = 1.0 + (dyn.schedule.sam_rho / dyn.schedule.sam_a) * moms[0][1]
        a2 = (sum(u[t.name] * m for t, m, _ in moms) * kappa) ** 2 + \
            sum(u[t.name] ** 2 * N for t, _, N in moms) * kappa**2
        scale = max(float(np.max(np.abs(a1))), float(np.max(a2)), 1e-300)
        frozen = (np.abs(a1) <= _ROUNDOFF * scale) & (a2 <= _ROUNDOFF * scale)
        if np.any((a1 >= -_ROUNDOFF * scale) & ~frozen):
            return 0.0
        etas = np.where(frozen, np.inf, -a1 / np.where(frozen, 1.0, a2))
        return float(np.min(etas))
    best = math.inf
    P = np.polynomial.Polynomial
    k_dirs = factors[0][1].size
    for k in range(k_dirs):
        poly = P([1.0])
        for _, a0, a1, a2 in factors:
            poly = poly * P([a0[k], a1[k], a2[k]])
        p = (poly - 1.0).trim(tol=0.0)
        coeffs = p.coef
        if coeffs.size <= 1 or np.all(np.abs(coeffs) <= 1e-15 * np.max(np.abs(poly.coef))):
            continue  # direction is frozen (identity)
        q = P(coeffs[1:])  # p(η) = η q(η)
        # the sign of q just above 0 is that of its first coefficient above round-off
        lead = q.coef[np.abs(q.coef) > _ROUNDOFF * np.max(np.abs(poly.coef))]
        if lead.size and lead[0] > 0:
            return 0.0
        roots = q.roots()
        pos = np.sort(roots[(np.abs(roots.imag) <= 1e-9 * np.abs(roots)) & (roots.real > 0)].real)
        crit = math.inf
        for rt in pos:
            if q(rt * (1 + 1e-9)) > 0:
                crit = float(rt)
                break
        best = min(best, crit)
    return best


@_capped
def critical_batch(hs, schedule=None, *, time_budget=None):
    """Smallest batch size B* with ρ(T) ≤ 1 (the schedule's own ``batch`` is ignored).

    The forget batch follows B when ``forget_batch`` is None. ρ(T) is non-increasing in B for
    every scheme: each noise operator is c(B)·(a completely positive map) with c(B) decreasing,
    and T is monotone in its noise part on the PSD cone — so a bisection over integers with the
    sign test of :func:`mean_square_stable` is exact. Returns None when even the largest
    admissible batch is unstable. ``time_budget``: when it runs out, the smallest batch known
    to be stable is returned with a RuntimeWarning.
    """
    dyn = as_dynamics(hs, schedule)
    schedule = dyn.schedule
    deadline = _deadline(time_budget)
    sizes = [t.n for t in dyn.terms if t.name == "retain" or schedule.forget_batch is None]
    hi = min(sizes) if sizes else schedule.batch

    def stable(B):
        return _is_stable(dyn.replace(batch=B))

    if not stable(hi):
        return None
    lo = 1
    if stable(lo):
        return 1
    while hi - lo > 1:
        if deadline is not None and time.perf_counter() > deadline:
            warnings.warn(f"critical_batch: time budget ran out; B* lies in ({lo}, {hi}] "
                          f"(returning {hi}, known to be stable)", RuntimeWarning, stacklevel=2)
            return hi
        mid = (lo + hi) // 2
        if stable(mid):
            hi = mid
        else:
            lo = mid
    return hi


@_capped
def critical_alpha(hs, schedule=None, *, grid=64, rtol=1e-10, time_budget=None):
    """Critical mixing weight α* = inf{α ∈ [0, 1] : ρ(T) > 1} (the schedule's ``alpha`` is ignored).

    Returns 0.0 if already unstable at α = 0 or α = 0⁺ — in particular, exactly, whenever the
    forget set has a curvature direction outside the retain span, which ascent escapes along for
    every α > 0 — and None if stable for every α ∈ [0, 1]. α* is the upper edge of the
    component of the stable set that contains α = 0; when the stable set is not an interval a
    RuntimeWarning says so (:func:`stable_set` with ``parameter="alpha"`` gives the union).

    Exact for commuting sets and spans r ≤ ``PEP_MAX_SPAN``: the entries of T(α) are polynomials
    in α, so every crossing of ρ through 1 is a real root of det(T(α) − I). Larger spans use a
    uniform scan of ``grid`` points (sign tests) refined by a root-finder, which can miss an
    unstable window narrower than the grid (a RuntimeWarning says so). ``time_budget``: when
    it runs out, the midpoint of the current bracket is returned with a RuntimeWarning.
    """
    if isinstance(hs, Dynamics):
        hs, schedule = hs.hs, hs.schedule
    if schedule is not None and schedule.schedule != "sam":
        Dynamics(hs, schedule.replace(alpha=0.0))  # validates the pair
    else:
        as_dynamics(hs, schedule)
    if not hs.has_forget:
        raise ValueError("critical_alpha needs a HessianSet with a forget set")
    if schedule.schedule == "sam":
        raise ValueError("critical_alpha is not defined for schedule='sam' (alpha must be 0)")
    deadline = _deadline(time_budget)

    # A forget direction outside the retain span is an escape direction of D for every α > 0
    # (vᵀDv = −α vᵀH̄_F v < 0), so the infimum is exactly 0 — decided here, not by a root-finder.
    # (not with a shared λI: λ also curves that direction, vᵀDv = (1−2α)λ − α vᵀH̄⁰_F v)
    if hs.shared_scalar == 0.0 and hs.reduction(True, True).r > hs.reduction(True, False).r:
        return 0.0
    dyn = Dynamics(hs, schedule.replace(alpha=0.5))
    if not _is_stable(_at_alpha(dyn, 0.0)):
        return 0.0
    if dyn.hs.kind == "commuting" or dyn.r <= PEP_MAX_SPAN:
        sset = _stable_set(dyn, "alpha", rtol)
        if len(sset) > 1:
            _not_interval_warning("α", sset)
        if not sset or sset[0][0] > 0.0:
            return 0.0
        a = sset[0][1]
        return None if a >= 1.0 else a
    warnings.warn(
        f"critical_alpha: span r = {dyn.r} > PEP_MAX_SPAN = {PEP_MAX_SPAN}: α* comes from a "
        f"{grid}-point scan and an unstable window narrower than its spacing could be missed",
        RuntimeWarning, stacklevel=2)

    def f(alpha):
        d = _at_alpha(dyn, alpha) if alpha in (0.0, 1.0) else dyn.replace(alpha=float(alpha))
        return _stability_margin(d)

    prev, fprev = None, None
    for p in np.linspace(0.0, 1.0, grid + 1):
        if deadline is not None and time.perf_counter() > deadline:
            warnings.warn("critical_alpha: time budget ran out during the scan; α* > "
                          f"{prev:.6g} (returning nan)", RuntimeWarning, stacklevel=2)
            return math.nan
        val = f(p)
        if val < 0:
            if prev is None:
                return 0.0
            return _root(f, prev, p, fprev, val, rtol, deadline, "critical_alpha")
        prev, fprev = p, val
    return None
