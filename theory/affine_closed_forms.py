"""Affine (drift) unlearning: numeric closed forms on commuting sets (contract §8).

:func:`direction_coefficients`, :func:`closed_form_affine_moments`,
:func:`closed_form_stationary` and :func:`summed_stationary_mean` evaluate the sympy results of
:mod:`theory.affine_derivations` on a HessianSet from its raw data (eigenvalue profiles, basis,
per-sample gradients, schedule) — an independent path to :func:`rmt.affine.affine_moments` and
:func:`rmt.affine.stationary`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import cast

import numpy as np

from rmt.dynamics import Dynamics, as_dynamics
from rmt.hessians import HessianSet
from rmt.schedule import Schedule, mixing_weights

from .affine_derivations import (
    SCHEDULES,
    affine_direction_coefficients,
    affine_kstep_solution,
    affine_null_solution,
    affine_stationary_solution,
)
from .instance import Problem

__all__ = [
    "DirectionCoefficients",
    "direction_coefficients",
    "ClosedFormMoments",
    "closed_form_affine_moments",
    "ClosedFormStationary",
    "closed_form_stationary",
    "summed_stationary_mean",
]


def _commuting_pair(hs: Problem, schedule: Schedule | None) -> tuple[HessianSet, Schedule]:
    """(HessianSet, Schedule) of a commuting set with the summed or alternating schedule."""
    dyn = as_dynamics(hs, schedule)  # validates the pair
    hs, sch = dyn.hs, dyn.schedule
    if hs.kind != "commuting":
        raise ValueError(f"the affine closed forms need a commuting HessianSet, got {hs.kind!r}")
    if sch.schedule not in SCHEDULES:
        raise ValueError(f"the affine closed forms need schedule in {list(SCHEDULES)}, "
                         f"got {sch.schedule!r}")
    return hs, sch


def _set_statistics(hs, sch, which):
    """Per-direction (m, q, ḡ, p, r, n, B) of one set in the basis Q of a commuting set.

    Read from the raw data: eigenvalue profile λ (n, d), gradient coordinates γ = G Q (n, d)
    (zeros without gradients). A set that does not enter the step gets zeros and (n, B) = (2, 1)
    (its weight is 0). Without replacement and n = 1 the derived c is 0/0 but a single sample
    has no sampling noise: q = m², p = mḡ, r = ḡ² make every covariance c·(·) − e·(·) vanish for
    any finite c, so n = 2 is only a placeholder (as in theory.closed_forms).
    """
    d = hs.dim
    uses = sch.uses_retain if which == "retain" else sch.uses_forget
    if not uses:
        z = np.zeros(d)
        return z, z, z, z, z, 2.0, 1.0
    lam = hs.eigenvalues(which)
    G = hs.gradients(which)
    gam = np.zeros_like(lam) if G is None else G @ hs.basis
    m, q, gb = lam.mean(0), (lam**2).mean(0), gam.mean(0)
    p, r = (lam * gam).mean(0), (gam**2).mean(0)
    nS = float(lam.shape[0])
    BS = float(sch.batch if which == "retain" else sch.batch_forget)
    if sch.sampling == "without_replacement" and lam.shape[0] == 1:
        q, p, r, nS = m**2, m * gb, gb**2, 2.0
    return m, q, gb, p, r, nS, BS


@dataclass(frozen=True)
class DirectionCoefficients:
    """Per-direction coefficients of the affine recursion of a commuting set (contract §8).

    Arrays of shape (d,) over the columns of the shared basis ``basis`` Q: ``a`` = E[j],
    ``beta`` = E[b], ``t`` = E[j²], ``gamma`` = E[jb], ``v`` = E[b²]; ``null`` marks the
    directions where every Hessian that enters the step vanishes (there a = t = 1, γ = β).
    """

    a: np.ndarray
    beta: np.ndarray
    t: np.ndarray
    gamma: np.ndarray
    v: np.ndarray
    null: np.ndarray
    basis: np.ndarray = field(repr=False)

    @property
    def rate(self) -> float:
        """max_k t_k over the non-null directions: ρ(T) of the commuting set (contract §3)."""
        return float(np.max(self.t[~self.null])) if np.any(~self.null) else 0.0

    @property
    def drift_variance(self) -> np.ndarray:
        """Var(b) per direction, v − β² (clipped at 0 against round-off)."""
        return np.maximum(self.v - self.beta**2, 0.0)


def direction_coefficients(hs: Problem, schedule: Schedule | None = None) -> DirectionCoefficients:
    """(a, β, t, γ, v) per direction of a commuting set, from the sympy derivation (contract §8).

    Evaluates :func:`affine_direction_coefficients` on the per-direction set statistics read from
    the raw HessianSet (profiles, basis, gradients) and the Schedule — not from rmt's operators.
    Accepts ``(hs, schedule)`` or a :class:`rmt.Dynamics`; summed, alternating or SAM schedule.
    """
    sets, sch = _commuting_pair(hs, schedule)
    f = affine_direction_coefficients(sch.sampling, sch.schedule).function
    stats = _set_statistics(sets, sch, "retain") + _set_statistics(sets, sch, "forget")
    d = sets.dim
    extra = (sch.sam_rho, sch.sam_a) if sch.combinator.preconditioned else ()
    vals = [np.broadcast_to(np.asarray(x, float), (d,)).copy()
            for x in f(sch.eta, sch.alpha, *stats, *extra)]
    active = np.zeros(d, dtype=bool)
    for which, uses in (("retain", sch.uses_retain), ("forget", sch.uses_forget)):
        if uses:
            active |= np.any(sets.eigenvalues(which) > 0, axis=0)
    null = ~active
    # exact values where the derivation says so (they are 1, 1, β up to round-off already)
    vals[0][null], vals[2][null], vals[3][null] = 1.0, 1.0, vals[1][null]
    a, beta, t, gamma, v = vals
    return DirectionCoefficients(a, beta, t, gamma, v, null, sets.basis)


@dataclass(frozen=True)
class ClosedFormMoments:
    """E‖δ_k‖², E[δ_k] and their parts for k = 0..steps from the closed forms (contract §8).

    ``expected_sq_distance`` (steps+1,); ``mean`` (steps+1, d) in the original coordinates;
    ``second`` (steps+1, d) the per-direction second moments E[(Qᵀδ_k)_i²]; ``span_sq`` and
    ``null_sq`` the sums over the active and the null directions (``null_sq`` = rmt's
    ``drift_sq + frozen_sq``); ``method`` (d,) which solution each direction used: "kstep",
    "null", or "power" (the augmented 3×3 matrix power, for directions where two of t, a, 1
    nearly coincide and the shifted form would cancel: its terms exceed the result by more than
    ``_MAX_CANCELLATION``).
    """

    expected_sq_distance: np.ndarray
    mean: np.ndarray = field(repr=False)
    second: np.ndarray = field(repr=False)
    span_sq: np.ndarray = field(repr=False)
    null_sq: np.ndarray = field(repr=False)
    method: np.ndarray = field(repr=False)


def _start_moments(start, Q):
    d = Q.shape[0]
    if start is None:
        return np.zeros(d), np.zeros(d)
    s0 = np.asarray(start, float)
    if s0.ndim == 1:
        c = Q.T @ s0
        return c**2, c
    return np.diag(Q.T @ s0 @ Q).copy(), np.zeros(d)


def closed_form_affine_moments(hs: Problem, schedule: Schedule | int | None = None,
                               steps: int | None = None, *,
                               start: np.ndarray | None = None) -> ClosedFormMoments:
    """Exact moments of a commuting set from the per-direction closed forms (contract §8).

    Accepts ``(hs, schedule, steps)`` or ``(dynamics, steps)``. ``start``: None (δ_0 = 0), a
    vector (deterministic δ_0) or a PSD matrix E[δ_0δ_0ᵀ] with mean zero (as
    :func:`rmt.affine.affine_moments`). Per direction: :func:`affine_kstep_solution` (generic),
    :func:`affine_null_solution` (null directions); the augmented matrix power where two of
    t, a, 1 nearly coincide.
    """
    if isinstance(hs, Dynamics) and schedule is not None and steps is None:
        schedule, steps = None, schedule
    if steps is None:
        raise TypeError("closed_form_affine_moments needs steps")
    co = direction_coefficients(hs, cast("Schedule | None", schedule))
    Q = co.basis
    d = Q.shape[0]
    M0, m0 = _start_moments(start, Q)
    ks = np.arange(steps + 1, dtype=float)[:, None]
    gen = affine_kstep_solution().function
    nul = affine_null_solution().function
    sep = np.minimum(np.minimum(np.abs(co.t - co.a), np.abs(1 - co.a)), np.abs(1 - co.t))
    method = np.where(co.null, "null", np.where(sep > 1e-6, "kstep", "power")).astype(object)
    M = np.empty((steps + 1, d))
    m = np.empty((steps + 1, d))
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for i in range(d):
            if method[i] == "null":
                Mi, mi = nul(co.beta[i], co.v[i], M0[i], m0[i], ks[:, 0])
            elif method[i] == "kstep":
                Mi, mi = gen(co.a[i], co.beta[i], co.t[i], co.gamma[i], co.v[i], M0[i], m0[i],
                             ks[:, 0])
                if _cancellation(co, i, M0[i], m0[i], ks[:, 0], Mi, mi) > _MAX_CANCELLATION:
                    method[i] = "power"
            if method[i] == "power":
                A = np.array([[co.t[i], 2 * co.gamma[i], co.v[i]], [0, co.a[i], co.beta[i]],
                              [0, 0, 1.0]])
                z = np.array([M0[i], m0[i], 1.0])
                path = [z]
                for _ in range(steps):
                    z = A @ z
                    path.append(z)
                arr = np.array(path)
                Mi, mi = arr[:, 0], arr[:, 1]
            M[:, i] = np.broadcast_to(Mi, (steps + 1,))
            m[:, i] = np.broadcast_to(mi, (steps + 1,))
    null = co.null
    return ClosedFormMoments(M.sum(axis=1), m @ Q.T, M, M[:, ~null].sum(axis=1),
                             M[:, null].sum(axis=1), method)


#: The shifted k-step form is evaluated only when its terms exceed the result by at most this
#: factor (about 3 digits lost of 16); otherwise the augmented 3×3 power is used.
_MAX_CANCELLATION = 1e3


def _cancellation(co, i, M0, m0, ks, Mk, mk):
    """max_k (sum of |terms| of the shifted k-step form) / |result|, for M_k and m_k.

    Near t ≈ a ≈ 1 the terms M∞, 2γe_0/(t − a), m∞ are huge and cancel (the solution is a
    second divided difference of x^k at t, a, 1); this ratio times ε bounds the round-off.
    """
    a, t, g = co.a[i], co.t[i], co.gamma[i]
    m_inf = co.beta[i] / (1 - a)
    M_inf = (2 * g * m_inf + co.v[i]) / (1 - t)
    e0 = m0 - m_inf
    ta, aa = np.abs(t) ** ks, np.abs(a) ** ks
    termsM = abs(M_inf) + ta * abs(M0 - M_inf) + abs(2 * g * e0) * (ta + aa) / abs(t - a)
    termsm = abs(m_inf) + aa * abs(e0)
    sM = np.max(np.abs(Mk)) + 1e-300
    sm = np.max(np.abs(mk)) + 1e-300
    return float(max(np.max(termsM) / sM, np.max(termsm) / sm))


@dataclass(frozen=True)
class ClosedFormStationary:
    """Stationary answers of a commuting set from the closed forms (contract §8).

    ``exists``: every active direction has t < 1 and every null direction has b ≡ 0 (β = 0 and
    Var(b) = 0 — a mean-zero random drift in the null space is a random walk, unbounded).
    ``mean`` m∞ (d,) in the original coordinates, ``second`` M∞ per direction (d,),
    ``displacement`` ‖m∞‖, ``rms_distance`` √Σ M∞, ``variance`` per direction M∞ − m∞².
    """

    exists: bool
    rate: float
    reason: str
    #: the stationary state (None when it does not exist)
    displacement: float | None = None
    rms_distance: float | None = None
    mean: np.ndarray | None = field(default=None, repr=False)
    second: np.ndarray | None = field(default=None, repr=False)
    variance: np.ndarray | None = field(default=None, repr=False)


def closed_form_stationary(hs: Problem, schedule: Schedule | None = None, *,
                           drift_rtol: float = 1e-12) -> ClosedFormStationary:
    """m∞ and M∞ of a commuting set from :func:`affine_stationary_solution` (contract §8).

    ``drift_rtol``: a null direction's β² and Var(b) count as zero below this times the largest
    E[b²] over all directions (round-off of the basis change).
    """
    co = direction_coefficients(hs, schedule)
    rate = co.rate
    act = ~co.null
    scale = max(float(np.max(co.v)), 1e-300)
    null_b = float(np.max(co.v[co.null])) if np.any(co.null) else 0.0
    if rate >= 1.0:
        return ClosedFormStationary(False, rate, f"max_k t_k = {rate:.6g} ≥ 1")
    if null_b > drift_rtol * scale:
        return ClosedFormStationary(False, rate, "the drift has a (random or mean) component in "
                                    "a null direction: linear growth of the second moment")
    f = affine_stationary_solution().function
    d = co.a.shape[0]
    Minf, minf, var = (np.zeros(d) for _ in range(3))
    Ma, ma, va = f(co.a[act], co.beta[act], co.t[act], co.gamma[act], co.v[act])
    Minf[act], minf[act], var[act] = Ma, ma, va
    return ClosedFormStationary(True, rate, "max_k t_k < 1 and b ≡ 0 in the null directions",
                                displacement=float(np.linalg.norm(minf)),
                                rms_distance=float(math.sqrt(max(Minf.sum(), 0.0))),
                                mean=co.basis @ minf, second=Minf, variance=var)


def _span_basis(mats, rtol=1e-10):
    """Orthonormal basis of the span of PSD matrices (eigenvectors of their sum)."""
    S = sum(mats)
    lam, V = np.linalg.eigh(0.5 * (S + S.T))
    return V[:, lam > rtol * max(float(lam.max()), 1e-300)]


def _mean_gradient(sets: HessianSet, which: str) -> np.ndarray:
    """ḡ_S, the mean per-sample gradient of one set (the set must carry gradients)."""
    G = sets.gradients(which)
    if G is None:
        raise ValueError("summed_stationary_mean needs per-sample gradients")
    return G.mean(axis=0)


def summed_stationary_mean(hs: Problem, schedule: Schedule | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Summed schedule, any HessianSet: m∞ = U(UᵀDU)⁻¹Uᵀ(αḡ_F − (1−α)ḡ_R) (contract §8).

    Built from the raw data only (dense mean Hessians ``hs.mean``, per-sample gradients, α);
    U is an orthonormal basis of the span of the Hessians that enter the step. The stationary
    mean of the span part whenever ρ(I − ηD) < 1 on the span; independent of η, the batch sizes
    and the sampling scheme (:func:`summed_stationary_mean_formula`). Returns (m∞ (d,), U).
    """
    dyn = as_dynamics(hs, schedule)
    sets, sch = dyn.hs, dyn.schedule
    if not sch.combinator.self_adjoint:
        raise ValueError(f"summed_stationary_mean needs schedule='summed', got {sch.schedule!r}")
    if not sets.has_gradients:
        raise ValueError("summed_stationary_mean needs per-sample gradients")
    w_r, w_f = mixing_weights(sch.alpha)
    mats, D, g = [], np.zeros((sets.dim, sets.dim)), np.zeros(sets.dim)
    if sch.uses_retain:
        HR = sets.mean("retain")
        mats.append(HR)
        D += w_r * HR
        g -= w_r * _mean_gradient(sets, "retain")
    if sch.uses_forget:
        HF = sets.mean("forget")
        mats.append(HF)
        D -= w_f * HF
        g += w_f * _mean_gradient(sets, "forget")
    U = _span_basis(mats)
    m_inf = U @ np.linalg.solve(U.T @ D @ U, U.T @ g)
    return m_inf, U
