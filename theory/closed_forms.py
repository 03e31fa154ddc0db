"""Numeric evaluation of the sympy closed forms on commuting sets (contract §3).

An *independent* path to ρ(T), η*, B* and α* of a commuting HessianSet: the per-direction
formulas are the lambdified sympy results of :mod:`theory.derivations` (never rmt's own closed
forms), evaluated on the raw per-set data of a :class:`rmt.Dynamics` — each active set's
per-direction eigenvalue ``profile``, its size ``n`` and its batch ``B``. The tests compare these
values with :func:`rmt.mean_square_rate`, :func:`rmt.critical_eta`, :func:`rmt.critical_batch`
and :func:`rmt.critical_alpha` on factor-backed copies (the numeric operator path).

Every function accepts ``(hs, schedule)`` or a :class:`rmt.Dynamics`.
"""

from __future__ import annotations

import math

import numpy as np

from rmt.dynamics import as_dynamics
from rmt.schedule import Schedule, mixing_weights

from .derivations import (
    alternating_direction_polynomial,
    commuting_critical_alpha,
    commuting_critical_batch,
    commuting_critical_eta,
    commuting_direction_rate,
)
from .instance import Problem

__all__ = [
    "closed_form_rate",
    "closed_form_critical_eta",
    "closed_form_critical_batch",
    "closed_form_critical_alpha",
    "closed_form_stable_set",
]

#: Relative round-off of a per-direction polynomial coefficient (its sign is undecided below
#: this times the polynomial's scale).
_ROUNDOFF = 8 * np.finfo(float).eps


def _commuting_dynamics(hs, schedule=None):
    dyn = as_dynamics(hs, schedule)
    if dyn.hs.kind != "commuting":
        raise ValueError(f"hs must be a commuting HessianSet, got kind {dyn.hs.kind!r}")
    if dyn.combinator not in ("summed", "alternating"):
        raise ValueError(
            f"the commuting closed forms need schedule='summed' or 'alternating', got "
            f"{dyn.combinator!r}")
    return dyn


def _commuting_args(hs, schedule=None):
    """Per-direction (m_R, q_R, n_R, B_R, m_F, q_F, n_F, B_F) on the active directions.

    Read from the terms of the :class:`rmt.Dynamics`: m = mean of the term's eigenvalue profile,
    q = mean of its squares, n and B the term's size and batch. A set that does not enter the
    step (its weight is 0) gets m = q = 0 and (n, B) = (2, 1), which contributes nothing under
    every scheme. Without replacement with n = 1 the derived c is 0/0, but a single sample has
    no noise: q = m² makes N = c(q − m²) = 0 for any finite c (n = 2 is only a placeholder).
    """
    dyn = _commuting_dynamics(hs, schedule)
    k = dyn.terms[0].profile.shape[1]
    out = []
    for name in ("retain", "forget"):
        t = dyn.term(name)
        if t is None:
            out += [np.zeros(k), np.zeros(k), 2.0, 1.0]
            continue
        m, q, nS = t.profile.mean(axis=0), (t.profile**2).mean(axis=0), float(t.n)
        if dyn.sampling == "without_replacement" and t.n == 1:
            q, nS = m**2, 2.0
        out += [m, q, nS, float(t.batch)]
    return tuple(out)


def closed_form_rate(hs: Problem, schedule: Schedule | None = None) -> float:
    """ρ(T) of a commuting set from the sympy per-direction factor (summed or alternating)."""
    dyn = _commuting_dynamics(hs, schedule)
    s = dyn.schedule
    f = commuting_direction_rate(s.sampling, dyn.combinator).function
    return float(np.max(f(s.eta, s.alpha, *_commuting_args(dyn))))


def closed_form_critical_eta(hs: Problem, schedule: Schedule | None = None) -> float:
    """η* of a commuting set, with :func:`rmt.critical_eta`'s definition: the upper edge of the
    lowest component of the stable set (0.0 when it is empty).

    Summed: min over k of η*_k = 2D_k/(D_k² + V_k) (0.0 if some D_k ≤ 0: the stable set is
    empty). Alternating: from :func:`closed_form_stable_set` (roots of the per-direction cubics
    q_k(η), E[j_k²] − 1 = η q_k(η), §3); the lowest component need not start at η = 0.
    """
    dyn = _commuting_dynamics(hs, schedule)
    if dyn.combinator.products:
        return _alternating_critical_eta(dyn)
    mR, qR, nR, BR, mF, qF, nF, BF = _commuting_args(dyn)
    w_r, w_f = mixing_weights(dyn.schedule.alpha)
    Dk = w_r * mR - w_f * mF
    if np.any(Dk <= 0):
        return 0.0
    f = commuting_critical_eta(dyn.sampling).function
    return float(np.min(f(dyn.schedule.alpha, mR, qR, nR, BR, mF, qF, nF, BF)))


def _alternating_critical_eta(dyn):
    """Upper edge of the lowest component of the alternating stable set (0.0 if it is empty)."""
    sset = _alternating_stable_set(dyn)
    return sset[0][1] if sset else 0.0


def _direction_stable_set(coef):
    """{η > 0 : η·q(η) ≤ 0} for q(η) = Σ coef[j] η^j, as a list of closed intervals.

    Coefficients whose magnitude is below 8·eps times the scale of the polynomial E[j_k²]
    (max of 1 and |coefficients|) are round-off: a direction with none above it is frozen
    (E[j_k²] ≡ 1, stable for every η). Between consecutive positive real roots of q the sign
    of q is constant and is read at the midpoint; just above 0 it is the sign of the first
    coefficient above round-off (q(0) may vanish exactly).
    """
    coef = np.asarray(coef, float).copy()
    tol = _ROUNDOFF * max(1.0, float(np.max(np.abs(coef))))
    coef[np.abs(coef) <= tol] = 0.0
    if not np.any(coef):
        return [(0.0, math.inf)]
    q = np.polynomial.Polynomial(coef)
    roots = q.roots()
    real = roots[(np.abs(roots.imag) <= 1e-9 * np.abs(roots)) & (roots.real > 0)].real
    edges = [0.0, *np.unique(real), math.inf]
    first = coef[np.nonzero(coef)[0][0]]
    out = []
    for i, (a, b) in enumerate(zip(edges[:-1], edges[1:])):
        if i == 0:
            stable = first < 0
        else:
            x = 0.5 * (a + b) if math.isfinite(b) else 2.0 * a
            stable = q(x) < 0
        if stable:
            if out and out[-1][1] == a:
                out[-1] = (out[-1][0], b)
            else:
                out.append((a, b))
    return [(float(lo), float(hi)) for lo, hi in out]


def _intersect(a, b):
    out = []
    for lo1, hi1 in a:
        for lo2, hi2 in b:
            lo, hi = max(lo1, lo2), min(hi1, hi2)
            if lo < hi:
                out.append((lo, hi))
    return sorted(out)


def _alternating_stable_set(dyn):
    args = _commuting_args(dyn)
    coeffs = alternating_direction_polynomial(dyn.sampling).function(dyn.schedule.alpha, *args)
    k_dirs = args[0].size
    cs = np.stack([np.broadcast_to(np.asarray(x, float), (k_dirs,)) for x in coeffs], axis=1)
    sset = [(0.0, math.inf)]
    for coef in cs:  # E[j²] − 1 = η·q(η), q = coef[0] + coef[1]η + coef[2]η² + coef[3]η³
        sset = _intersect(sset, _direction_stable_set(coef))
        if not sset:
            break
    return tuple(sset)


def closed_form_stable_set(hs: Problem, schedule: Schedule | None = None) -> tuple[tuple[float, float], ...]:
    """The mean-square stable set {η > 0 : ρ(T(η)) ≤ 1} of a commuting set, as intervals.

    Independent of :func:`rmt.stable_set`: intersection over directions of the per-direction
    sets {η : E[j_k²](η) ≤ 1} from the sympy polynomials — summed: E[j_k²] − 1 =
    η(−2D_k + η(D_k² + V_k)), so (0, 2D_k/(D_k² + V_k)] when D_k > 0 and empty otherwise;
    alternating: the cubic q_k of :func:`theory.derivations.alternating_direction_polynomial`.
    """
    dyn = _commuting_dynamics(hs, schedule)
    if dyn.combinator.products:
        return _alternating_stable_set(dyn)
    eta_star = closed_form_critical_eta(dyn)
    return ((0.0, eta_star),) if eta_star > 0 else ()


def closed_form_critical_batch(hs: Problem, schedule: Schedule | None = None) -> int | None:
    """Smallest integer B with ρ(T) ≤ 1 from the sympy B*_k (summed, B_F = B); None if none.

    Each direction is stable iff B ≥ B*_k (ρ_k decreases in B); a direction whose mean factor
    already has (1 − ηD_k)² > 1 is stable for no B. B ranges up to the smallest active set.
    """
    dyn = _commuting_dynamics(hs, schedule)
    s = dyn.schedule
    if not dyn.combinator.self_adjoint or s.forget_batch is not None:
        raise ValueError("closed_form_critical_batch needs schedule='summed' and forget_batch=None")
    mR, qR, nR, _, mF, qF, nF, _ = _commuting_args(dyn)
    nmax = min(t.n for t in dyn.terms)
    rate = commuting_direction_rate(s.sampling, "summed").function
    Bstar = commuting_critical_batch(s.sampling).function
    Dk = (1 - s.alpha) * mR - s.alpha * mF
    if np.any((1 - s.eta * Dk) ** 2 > 1):
        return None
    with np.errstate(divide="ignore", invalid="ignore"):
        bs = np.atleast_1d(Bstar(s.eta, s.alpha, mR, qR, nR, mF, qF, nF))
    need = 1
    for k, b in enumerate(bs):
        r1 = rate(s.eta, s.alpha, mR[k], qR[k], nR, 1.0, mF[k], qF[k], nF, 1.0)
        if r1 <= 1:  # stable already at B = 1
            continue
        if not np.isfinite(b) or b <= 0:
            return None
        need = max(need, int(np.ceil(b * (1 - 1e-12))))
    return need if need <= nmax else None


def closed_form_critical_alpha(hs: Problem, schedule: Schedule | None = None) -> float | None:
    """α* = inf{α ∈ [0, 1]: ρ(T) > 1} from the quadratic f_k(α) = ρ_k(α) − 1 (summed, §3).

    Per direction: 0 if f_k(0) > 0, else the first root in [0, 1] after which f_k > 0; the
    minimum over directions; None when every f_k ≤ 0 on [0, 1].
    """
    dyn = _commuting_dynamics(hs, schedule)
    if not dyn.combinator.self_adjoint:
        raise ValueError("closed_form_critical_alpha needs schedule='summed'")
    mR, qR, nR, BR, mF, qF, nF, BF = _commuting_args(dyn.replace(alpha=0.5))  # both sets enter
    coef = commuting_critical_alpha(dyn.sampling).function
    best = None
    A, Bc, C = (np.broadcast_to(np.asarray(x, float), mR.shape)
                for x in coef(dyn.eta, mR, qR, nR, BR, mF, qF, nF, BF))
    for a2, a1, a0 in zip(A, Bc, C):
        f = np.polynomial.Polynomial([a0, a1, a2])
        scale = max(abs(a0), abs(a1), abs(a2), 1e-300)
        if a0 > 1e-13 * scale:
            cand = 0.0
        else:
            quadratic = abs(a2) > 1e-14 * scale or abs(a1) > 1e-14 * scale
            roots = f.roots() if quadratic else np.array([])
            cand = None
            for r in sorted(float(np.real(x)) for x in roots if abs(np.imag(x)) <= 1e-12):
                if -1e-12 <= r <= 1.0 and f(min(r + 1e-7, 1.0)) > 0 and r < 1.0:
                    cand = max(float(r), 0.0)
                    break
        if cand is not None and (best is None or cand < best):
            best = cand
    return best
