"""Certified enclosures of ρ(T) and the decided verdict (docs/contract.md §3, §10).

A verdict is given only when an enclosure [lo, hi] ∋ ρ(T) excludes 1. Every bound here rests on a
theorem about positive maps, not on an eigen-solver having converged:

- **Rayleigh** (summed schedules, T self-adjoint on Sym_r, §10.1): λ_max(T) ≥ ⟨X, T X⟩/⟨X, X⟩ for
  any X, and ρ(T) = λ_max(T) because T is positive. A lower bound from any trial matrix.
- **Weyl** (summed, small spans): the symmetric N×N matrix of T on packed coordinates is
  diagonalised by LAPACK, whose eigenvalues are exact for a matrix within N·eps·‖T‖₂ of it;
  ‖T‖₂ = ρ(T) for a positive self-adjoint map.
- **Regular splitting + Collatz–Wielandt** (summed, any span): for μ > ρ(𝒜),
  ρ(T) < μ ⇔ λ_max(K̃(μ)) < 1 with the self-adjoint positive K̃(μ) = (μ−𝒜)^{-1/2}𝒩(μ−𝒜)^{-1/2}
  (elementwise in the eigenbasis of E[J]); K̃(P) ⪯ cP with P ≻ 0 proves λ_max(K̃) ≤ c.
- **Collatz–Wielandt on T** (every schedule, T positive, §10.6): T(X) ⪰ cX with X ⪰ 0 ≠ 0
  proves ρ ≥ c; T(P) ⪯ cP with P ≻ 0 proves ρ ≤ c.

Floating point: every bound is widened by a stated round-off allowance (:func:`allowance`), so
"certified" means "certified up to that allowance"; the exact-arithmetic certificates of §10.6
are the next step. ρ within the allowance of 1 is reported as *undecided*.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from .krylov import _block_krylov_top

if TYPE_CHECKING:
    from .eigenbasis import _Eigenbasis

EPS = float(np.finfo(float).eps)


def allowance(r: int, n: int, rho: float, size: float) -> float:
    """Round-off allowance (absolute) of ρ(T) computed from an r-dimensional span with sums over
    at most n samples: eigensolver backward error N·eps·ρ (N = r(r+1)/2), rounding of the
    eigenbasis and of the factors' products 8(r + n)·eps·(ρ + size), ``size`` an upper bound of
    the absolute size of T's terms (cancellation between them costs digits)."""
    N = r * (r + 1) // 2
    return EPS * (2.0 * (N + 2) * abs(rho) + 8.0 * (r + n + 2) * (abs(rho) + size))


def term_size(eig: _Eigenbasis) -> float:
    """An upper bound of ‖|𝒜| + Σ_S w_S²(c_S|(1/n)ΣH_i⊗H_i| + e_S|H̄⊗H̄|)‖ (Frobenius sums)."""
    size = 1.0 + float(np.max(np.abs(eig.one_minus_aa))) if eig.r else 1.0
    for w2, t in eig.terms:
        r, n, k = t.psi.shape
        sq = float(np.sum(t.psi**2)) / n
        size += w2 * (abs(t.c) * sq * sq + abs(t.e) * float(np.sum(t.base_mean**2)))
        if t.shared is not None:
            size += w2 * 4 * abs(t.c - t.e) * float(np.sum(t.mean**2))
    return size


def rayleigh(eig: _Eigenbasis, X: np.ndarray) -> float:
    """⟨X, T X⟩/⟨X, X⟩ in the eigenbasis (a lower bound of λ_max(T) = ρ(T), summed)."""
    X = 0.5 * (X + X.T)
    return float(np.vdot(X, eig.apply(X)) / np.vdot(X, X))


def _psd_part(X):
    lam, Q = np.linalg.eigh(0.5 * (X + X.T))
    lam = np.maximum(lam, 0.0)
    return (Q * lam) @ Q.T, lam


def cw_upper(apply: Callable[[np.ndarray], np.ndarray], Y: np.ndarray, steps: int = 4) -> float:
    """min over a few P ≻ 0 of λ_max(P^{-1/2} K(P) P^{-1/2}) ≥ ρ(K) for a positive map K.

    P = PSD part of Y plus τ·λ_max·I (τ from 1e-12 up), smoothed by power steps P ← K(P) + τ'I
    (the bound is non-increasing under P ← K(P) for a positive map: K(P) ⪯ cP ⇒ K²(P) ⪯ cK(P))."""
    r = Y.shape[0]
    Y, lam = _psd_part(Y)
    top = float(lam[-1]) if lam.size else 0.0
    if not (top > 0.0) or not np.isfinite(top):
        Y, top = np.eye(r), 1.0
    best = math.inf
    for tau in (1e-12, 1e-9, 1e-6, 1e-3, 1e-1):
        P = Y + tau * top * np.eye(r)
        for _ in range(steps + 1):
            lp, Qp = np.linalg.eigh(P)
            if not (lp[0] > 0.0):
                break
            S = Qp / np.sqrt(lp)
            KP = apply(P)
            G = S.T @ KP @ S
            H = S.T @ P @ S  # ≈ I; K(P) ⪯ cP ⇔ G ⪯ cH, implied by λ_max(G) ≤ c·λ_min(H)
            g = float(np.linalg.eigvalsh(0.5 * (G + G.T))[-1])
            h = float(np.linalg.eigvalsh(0.5 * (H + H.T))[0])
            if not (h > 0.0):
                break
            c_up = max(g, 0.0) / h * (1.0 + 32 * r * EPS)
            best = min(best, c_up)
            if best < 1.0 - 1e-3:
                return best
            KP, lk = _psd_part(KP)
            if not (lk[-1] > 0.0):
                break
            P = KP / lk[-1] + tau * np.eye(r)
        if best < 1.0:
            return best
    return best


def splitting_test(eig: _Eigenbasis, mu: float, X: np.ndarray | None = None,
                   inner: float = 1e-10) -> tuple[int, float, np.ndarray | None]:
    """Compare ρ(T) with μ through the symmetrised regular splitting at μ (summed schedule).

    Returns (sign, kappa, Y): sign = −1 when ρ(T) < μ is certified (Collatz–Wielandt upper bound
    of K̃(μ) below 1), +1 when ρ(T) > μ is certified (a Rayleigh quotient of K̃(μ) above 1), 0 when
    neither could be shown; kappa the estimate of λ_max(K̃(μ)) and Y its eigenmatrix turned into
    an eigenmatrix estimate of T (X = D^{-1/2} ∘ y). Block Krylov with two starts (the trial X and
    the identity) so that a second block of the spectrum is in reach.
    """
    r = eig.r
    D = (mu - 1.0) + eig.one_minus_aa
    if not (float(np.min(D)) > 0.0):
        if float(np.min(D)) < -16 * r * EPS * (1 + abs(mu)):
            return 1, math.inf, None  # μ < ρ(𝒜) ≤ ρ(T)
        return 0, math.nan, None
    Dh = np.sqrt(D)
    K = eig.symmetrised_splitting(Dh)
    eye = np.eye(r) / math.sqrt(r)
    starts = [eig.pack(eye)]
    if X is not None:
        Z = Dh * X
        nz = float(np.linalg.norm(Z))
        if nz > 0 and np.isfinite(nz):
            starts = [eig.pack(Z / nz + 0.1 * eye), eig.pack(eye)]
    out = _block_krylov_top(K, starts, inner)
    if out is None:
        return 0, math.nan, None
    kappa, yv, _ = out
    gap = abs(1.0 - kappa)
    if gap < 100 * inner:  # near 1: a Perron vector accurate relative to |1 − κ| (CW needs it)
        fine = max(0.01 * gap, 1e-15)
        out = _block_krylov_top(K, [yv, eig.pack(eye)], fine)
        if out is not None:
            kappa, yv, _ = out
    y = eig.unpack(yv)
    if np.trace(y) < 0:
        y = -y
    q = float(np.vdot(yv, K(yv)) / np.vdot(yv, yv))  # Rayleigh quotient: ≤ λ_max(K̃)
    guard = 64 * r * EPS
    if q > 1.0 + guard:
        return 1, kappa, y / Dh

    def Kmat(M):
        out = eig.noise(M / Dh)
        return 0.5 * (out + out.T) / Dh

    up = cw_upper(Kmat, y)
    if up < 1.0 - guard:
        return -1, kappa, y / Dh
    return 0, kappa, y / Dh
