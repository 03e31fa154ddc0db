"""Summed schedules: ρ(T) as the top eigenvalue of a self-adjoint positive map on Sym_r
(docs/contract.md §10.1), with a certified enclosure, the sound sign test and the closed-form η*.

Small spans (r ≤ ``SYM_DENSE_MAX_SPAN``): the N×N symmetric matrix of T on packed coordinates
(N = r(r+1)/2) and LAPACK ``eigh`` — every eigenvalue at once, so a near-double top is never
mistaken for the second one; the Weyl bound gives the enclosure. Larger spans: a Krylov candidate
(Newton on the symmetrised splitting, or Lanczos on T) whose value is then *checked* by the regular
splitting at μ = ρ̂ + w (Collatz–Wielandt upper bound) and by its Rayleigh quotient (lower bound);
a candidate below the true top (a missed block of the spectrum) is detected there and re-solved.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .config import SYM_DENSE_MAX_SPAN
from .eigenbasis import packed_matrix
from .enclosure import EPS, allowance, cw_upper, rayleigh, splitting_test, term_size
from .krylov import IDENTITY_SHARE, _block_krylov_top, _secular_rate
from .splitting import _splitting_rate
from ._linalg import _normalise_psd

if TYPE_CHECKING:
    from .operator import MeanSquareOperator


@dataclass
class Solve:
    """ρ(T) estimate, certified enclosure [lo, hi], eigenmatrix (span coordinates), the relative
    tolerance the enclosure guarantees for ``rate`` and whether it is met."""

    rate: float
    lo: float
    hi: float
    eigenmatrix: np.ndarray | None
    tol: float
    converged: bool
    method: str


def _n_max(eig):
    return max((t.psi.shape[1] * t.psi.shape[2] for _, t in eig.terms), default=1)


def dense_sym(op: MeanSquareOperator, tol: float = 1e-12) -> Solve:
    """ρ(T) from ``eigh`` of the packed symmetric matrix of T (Weyl enclosure)."""
    eig = op.eigenbasis
    Tp, _ = packed_matrix(eig)
    lam, V = np.linalg.eigh(Tp)
    rate = float(lam[-1])
    size = term_size(eig)
    allow = allowance(eig.r, _n_max(eig), float(np.max(np.abs(lam))), size)
    X = _normalise_psd(eig.from_basis(eig.unpack(V[:, -1])))
    tol_eff = max(tol, allow / max(abs(rate), 1e-300))
    return Solve(rate, rate - allow, rate + allow, X, tol_eff, True, "dense")


def _candidate(op, method, tol):
    if method == "arpack":
        rate, X, _, _ = op._arpack(tol)
    elif method == "splitting":
        try:
            b = _splitting_rate(op, tol=tol)
            rate, X = 1.0 + b.estimate, b.eigenmatrix
        except (np.linalg.LinAlgError, OverflowError):  # checked below either way
            rate, X, _, _ = op._lanczos(tol)
    else:
        rate, X, _, _ = op._lanczos(tol)
    return float(rate), X


def enclose(op: MeanSquareOperator, rate: float, X: np.ndarray | None, tol: float,
            method: str) -> Solve:
    """Check a candidate (ρ̂, X) of a summed T and enclose ρ(T) (module docstring).

    lo: Rayleigh quotient of X; hi: μ = ρ̂ + w certified by the splitting. When the splitting
    proves ρ(T) > μ instead, the candidate missed the top: the Krylov solve is repeated from the
    splitting's eigenmatrix (which carries the missed block) and checked again."""
    eig = op.eigenbasis
    r = eig.r
    size = term_size(eig)
    n = _n_max(eig)
    Xb = None if X is None else eig.to_basis(X)
    lo = -math.inf
    if Xb is not None and np.any(Xb):
        lo = rayleigh(eig, Xb)
    hi = math.inf
    redo = 0
    w_mult = 1.0
    for _ in range(12):
        allow = allowance(r, n, rate, size)
        w = max(0.5 * tol * abs(rate), 2.0 * allow) * w_mult
        mu = max(rate, lo) + w
        sign, kappa, Y = splitting_test(eig, mu, Xb)
        if sign < 0:
            hi = mu + allow
            break
        if sign > 0:
            lo = max(lo, mu - allow)
            if Y is not None and np.all(np.isfinite(Y)):
                lo = max(lo, rayleigh(eig, Y))
            redo += 1
            new = None
            if Y is not None and np.all(np.isfinite(Y)):
                new = _secular_rate(eig, _psd(Y), tol)
                if new is None:
                    start = _psd(Y)
                    start = start / np.linalg.norm(start) + IDENTITY_SHARE * np.eye(r) / math.sqrt(r)
                    out = _block_krylov_top(lambda x: eig.pack(eig.apply(eig.unpack(x))),
                                            [eig.pack(start), eig.pack(np.eye(r) / math.sqrt(r))],
                                            tol)
                    if out is not None:
                        new = (out[0], eig.unpack(out[1]))
            if new is not None and new[0] > rate:
                rate, Xb = float(new[0]), new[1]
                lo = max(lo, rayleigh(eig, Xb))
            else:
                rate = max(rate, lo)
            w_mult = 1.0
            continue
        w_mult *= 16.0
    if not math.isfinite(hi) and Xb is not None:
        up = cw_upper(eig.apply, _psd(Xb))  # Collatz–Wielandt on T itself
        hi = up + allowance(r, n, up, size) if math.isfinite(up) else math.inf
    allow = allowance(r, n, rate, size)
    lo -= allow
    rate = min(max(rate, lo), hi)
    floor = max(tol, 4.0 * allow / max(abs(rate), 1e-300))
    tol_eff = max(floor, max(rate - lo, hi - rate) / max(abs(rate), 1e-300))
    converged = tol_eff <= floor
    Xs = None if Xb is None else _normalise_psd(eig.from_basis(Xb))
    return Solve(rate, lo, hi, Xs, tol_eff, bool(converged), method)


def _psd(X):
    lam, Q = np.linalg.eigh(0.5 * (X + X.T))
    if lam[-1] < -lam[0]:
        lam = -lam
    return (Q * np.maximum(lam, 0.0)) @ Q.T


def summed_rate(op: MeanSquareOperator, method: str = "auto", tol: float = 1e-12) -> Solve:
    """ρ(T) of a summed schedule with its enclosure: ``dense`` (and ``auto`` for
    r ≤ ``SYM_DENSE_MAX_SPAN``) by ``eigh``; other methods give a candidate that is checked."""
    if op.r <= 2 or (method in ("auto", "dense") and op.r <= SYM_DENSE_MAX_SPAN) or \
            (method == "dense" and op.r <= 2 * SYM_DENSE_MAX_SPAN):
        return dense_sym(op, tol)
    used = "lanczos" if method in ("auto", "dense") else method
    rate, X = _candidate(op, used, tol)
    if not np.isfinite(rate):
        raise ValueError(f"the {used} solver returned a non-finite ρ(T) = {rate}")
    if op.r <= SYM_DENSE_MAX_SPAN:  # the candidate of a selected method, held against eigh
        ref = dense_sym(op, tol)
        lo, hi = ref.lo, ref.hi
        off = abs(rate - ref.rate) / max(abs(rate), 1e-300)
        ok = off <= ref.tol
        if not ok:  # outside what eigh allows: the enclosure's nearest point, never converged
            rate = min(max(rate, lo), hi)
        return Solve(rate, lo, hi, X, max(ref.tol, off), ok, used)
    return enclose(op, rate, X, tol, used)


def summed_sign(op: MeanSquareOperator) -> tuple[float, bool]:
    """(margin, decided) with margin of the sign of 1 − ρ(T) (a continuous function for root
    finders) and decided = the sign is certified (enclosure excludes 1, or ρ ≤ 1 certified)."""
    eig = op.eigenbasis
    r = eig.r
    if r <= SYM_DENSE_MAX_SPAN:
        s = dense_sym(op)
        return 1.0 - s.rate, (s.lo > 1.0 or s.hi <= 1.0)
    size = term_size(eig)
    allow = allowance(r, _n_max(eig), 1.0, size)
    low = float(np.min(eig.one_minus_aa))
    if low < -allow:  # ρ(𝒜) > 1: ρ(T) ≥ ρ(𝒜) > 1
        return low, True
    if low <= allow:
        s = summed_rate(op)
        return 1.0 - s.rate, (s.lo > 1.0 or s.hi <= 1.0)
    sign, kappa, _ = splitting_test(eig, 1.0, eig.pole_guess(), inner=1e-6)
    if np.isfinite(kappa) and kappa > 0 and abs(1.0 / kappa - 1.0) < 1e-3:
        sign, kappa, _ = splitting_test(eig, 1.0, eig.pole_guess(), inner=1e-12)
    if not (np.isfinite(kappa) and kappa > 0):
        s = summed_rate(op)
        return 1.0 - s.rate, (s.lo > 1.0 or s.hi <= 1.0)
    return 1.0 / kappa - 1.0, sign != 0


# ---------------------------------------------------------------------- closed-form η*
def summed_critical_x(op: MeanSquareOperator
                      ) -> tuple[float, tuple[int, float] | None, tuple[float, float] | None]:
    """x* = η*·s in the normalised eigenbasis: 1/λ_max(𝒜̃^{-1/2}𝒬̃𝒜̃^{-1/2}) (docs/contract.md
    §10.3), with 𝒜̃ = (d_i + d_j) elementwise and 𝒬̃(X) = (ddᵀ)∘X + Σ_S u_S² Ñ_S(X).

    Returns (x*, why, bounds): why = (i, d_i) when the normalised mixed Hessian has an eigenvalue
    d_i ≤ round-off (x* = 0: the mean dynamics escape along eigenvector i), else None; bounds =
    a certified bracket of x* (Weyl on the dense matrix, r ≤ ``SYM_DENSE_MAX_SPAN``: T(η) − I =
    η(η𝒬 − 𝒜) ≺ 0 ⇔ η·λ_max(𝒜^{-1/2}𝒬𝒜^{-1/2}) < 1), or None for a Krylov value."""
    eig = op.eigenbasis
    d = eig.d
    r = eig.r
    top = float(np.max(np.abs(d))) if r else 0.0
    i = int(np.argmin(d))
    x = eig.eta_scale
    if not (d[i] > 8 * (r + 1) * EPS * top):
        # D ≈ 0 on the whole span and no sampling noise: T = I exactly (neutral, ρ = 1 for
        # every η), e.g. identical retain and forget sets at α = ½ with full batches
        n = _n_max(eig)
        if top <= 8 * (r + 1) * EPS and \
                float(np.max(np.abs(eig.noise(np.eye(r))))) <= 64 * (r + n) * EPS * x**2:
            return math.inf, None, (math.inf, math.inf)
        return 0.0, (i, float(d[i])), (0.0, 0.0)
    dd = d[:, None] + d[None, :]
    ah = 1.0 / np.sqrt(dd)
    if r <= SYM_DENSE_MAX_SPAN:
        Np, size = packed_matrix(eig, mean=False)
        Qp = Np / x**2 + np.diag(np.outer(d, d)[eig._iu])
        a = ah[eig._iu]  # elementwise scaling: diagonal on packed coordinates
        M = a[:, None] * Qp * a[None, :]
        mu = np.linalg.eigvalsh(0.5 * (M + M.T))
        lam = float(mu[-1])
        # Weyl: λ_max(M) within δ of the computed one (eigh backward error, construction)
        size_M = size / x**2 * float(np.max(a)) ** 2 + float(np.max(np.outer(d, d) / dd))
        delta = allowance(r, _n_max(eig), float(np.max(np.abs(mu))), size_M)
        if not (lam > delta):
            return (math.inf, None, (1.0 / (lam + delta) if lam + delta > 0 else math.inf, math.inf)) \
                if lam <= 0 else (1.0 / lam, None, (1.0 / (lam + delta), math.inf))
        return 1.0 / lam, None, (1.0 / (lam + delta), 1.0 / (lam - delta))
    else:
        dd_out = np.outer(d, d)

        def apply(v):
            Y = eig.unpack(v) * ah
            out = dd_out * Y + eig.noise(Y) / x**2
            return eig.pack(0.5 * (out + out.T) * ah)

        eye = np.eye(r) / math.sqrt(r)
        k = int(np.argmin(d))
        E = np.zeros((r, r))
        E[k, k] = 1.0
        out = _block_krylov_top(apply, [eig.pack(E + IDENTITY_SHARE * eye), eig.pack(eye)], 1e-12)
        if out is None:
            return math.nan, None, None
        lam = float(out[0])
        if lam > 0.0:
            # M = 𝒜^{-1/2}𝒬𝒜^{-1/2} is self-adjoint and positive ([1/√(d_i + d_j)] is PSD for
            # d > 0, 𝒬 is a congruence average): λ_max(M) ∈ [Rayleigh(y), Collatz–Wielandt(y)]
            y = eig.unpack(out[1])
            y = y if np.trace(y) >= 0 else -y

            def Mmat(Y):
                Z = Y * ah
                o = dd_out * Z + eig.noise(Z) / x**2
                return 0.5 * (o + o.T) * ah

            rq = float(np.vdot(y, Mmat(y)) / np.vdot(y, y))
            up = cw_upper(Mmat, y)
            allow = allowance(r, _n_max(eig), lam, lam)
            lo_l, hi_l = rq - allow, up + allow
            if lo_l > 0 and math.isfinite(hi_l) and lo_l <= lam <= hi_l:
                return 1.0 / lam, None, (1.0 / hi_l, 1.0 / lo_l)
    return 1.0 / lam, None, None  # a Krylov value: checked by the caller's sign tests
