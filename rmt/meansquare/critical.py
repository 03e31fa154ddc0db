"""Critical values η*, B*, α* (docs/contract.md §3, §10)."""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable

import numpy as np
import scipy.linalg
import scipy.optimize

from ..dynamics import Dynamics, as_dynamics
from ..hessians import HessianSet
from ..schedule import Schedule
from ..validation import Options, check_choice
from ..api import BOOL, HS, SCHEDULE, TIME_BUDGET, TOLERANCE, analysis, at_least
from ..progress import bar as _bar
from .analysis import (_is_stable, _span_margin, _stability, _stability_margin)
from .operator import MeanSquareOperator
from .config import _ROUNDOFF, PEP_MAX_SPAN, SYM_DENSE_MAX_SPAN
from .enclosure import allowance, term_size
from .symmetric import _n_max, summed_critical_x, summed_rate
from .stable_sets import (_alpha_dynamics, _at_alpha, _not_interval_warning, _stable_set,
                          bisect_alpha_edge)

# ---------------------------------------------------------------------- critical values
class CriticalValue(float):
    """A critical value (a float) that carries why it is what it is: ``reason`` (a sentence with
    the numbers), and for a zero caused by a curvature direction, ``direction`` (unit vector in
    the input's d coordinates) and ``curvature`` (the eigenvalue of the mixed Hessian D along it).
    ``method``: how it was obtained ("closed_form", "convex_root", "bisection", "stable_set",
    "scan"); ``bounds``: a certified bracket (lo, hi) or None."""

    def __new__(cls, value, reason="", direction=None, curvature=None, method="", bounds=None):
        obj = super().__new__(cls, value)
        obj.reason, obj.direction, obj.curvature, obj.method = reason, direction, curvature, method
        #: a certified bracket (lo, hi) of the critical value, or None when none was proven
        obj.bounds = bounds
        return obj

    def __reduce__(self):
        return (CriticalValue, (float(self), self.reason, self.direction, self.curvature,
                                self.method, self.bounds))


def _deadline(time_budget):
    if time_budget is None:
        return None
    if not (time_budget > 0):
        raise ValueError(f"time_budget must be a positive number of seconds, got {time_budget!r}")
    return time.perf_counter() + time_budget


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


@analysis({"rtol": TOLERANCE, "time_budget": TIME_BUDGET, "progress": [None, *BOOL]})
def critical_eta(hs: HessianSet | Dynamics, schedule: Schedule | None = None, *,
                 rtol: float = 1e-10, time_budget: float | None = None,
                 progress: bool | None = None) -> float:
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
    of the current bracket is returned with a RuntimeWarning. ``progress``: a tqdm bar on
    stderr around the scan (None: ``RMT_PROGRESS``, else only on a terminal; :mod:`rmt.progress`).
    """
    dyn = as_dynamics(hs, schedule)
    _deadline(time_budget)  # validates the argument (every path here is a closed form or exact)
    summed = dyn.combinator.self_adjoint  # the §10 structure (closed-form η*)
    if dyn.hs.kind == "commuting" or (not summed and dyn.r <= PEP_MAX_SPAN):
        if summed and dyn.hs.kind == "commuting":
            return _commuting_critical_eta(dyn)
        sset = _stable_set(dyn, "eta", rtol)
        if len(sset) > 1:
            _not_interval_warning("η", sset)
        if sset:
            return CriticalValue(sset[0][1], "upper edge of the lowest component of the exact "
                                 "stable set (real roots of det(T(η) − I))", method="stable_set")
        return _zero_eta(dyn, sset)
    if summed:
        return _summed_critical_eta(dyn)
    D = dyn.mixed_hessian()
    lam = np.linalg.eigvals(D).real if dyn.combinator.preconditioned else np.linalg.eigvalsh(D)
    scale = float(np.max(np.abs(lam)))
    lmin, lmax = float(np.min(lam)), float(np.max(lam))
    warnings.warn(
        f"critical_eta: span r = {dyn.r} > PEP_MAX_SPAN = {PEP_MAX_SPAN} for the {dyn.combinator} "
        "schedule: η* comes from a geometric scan and an unstable window narrower than the "
        "scan's grid could be missed", RuntimeWarning, stacklevel=2)
    if lmin <= _ROUNDOFF * dyn.r * scale:
        lmin = lmax
    with _bar(None, "critical_eta (scan)", progress=progress, unit="eval") as b:
        def g(eta):
            b.update()
            return -_stability_margin(dyn.replace(eta=float(eta)))

        return _first_crossing(g, 1e-6 / lmax, 2.0 / lmin, rtol)


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
    if not dyn.combinator.products:
        a1 = sum(f[2] for f in factors)
        # summed: Σ_S of (2 s m) terms; the quadratic coefficient is (Σ s m)² + Σ s² N
        moms = dyn.direction_moments()
        u = {t.name: t.weight / dyn.eta for t, _, _ in moms}
        kappa = dyn.combinator.kappa(dyn.schedule, moms[0][1]) \
            if dyn.combinator.preconditioned else 1.0
        a2 = (sum(u[t.name] * m for t, m, _ in moms) * kappa) ** 2 + \
            sum(u[t.name] ** 2 * N for t, _, N in moms) * kappa**2
        # scale first: a1 ∝ curvature, a2 ∝ curvature², so compare them in units of the
        # curvature scale s (a threshold shared by both would drop a1 at s ≫ 1 or a2 at s ≪ 1)
        s = max(float(np.max(np.abs(m))) for _, m, _ in moms) if moms else 0.0
        s = s if s > 0 and np.isfinite(s) else 1.0
        a1n, a2n = a1 / s, a2 / s**2
        if not (np.all(np.isfinite(a1n)) and np.all(np.isfinite(a2n))):
            raise ValueError("the per-direction moments overflow: the curvature scale "
                             f"{s:.3g} is out of the representable range")
        frozen = (np.abs(a1n) <= _ROUNDOFF) & (np.abs(a2n) <= _ROUNDOFF)
        bad = (a1n >= -_ROUNDOFF) & ~frozen
        if np.any(bad):
            k = int(np.argmax(bad))
            return CriticalValue(0.0, f"direction {k} of the commuting basis has mean curvature "
                                 f"{-a1[k] / 2:.6g} ≤ round-off (its moment E[j²] − 1 = "
                                 f"η({a1[k]:.3g} + η·{a2[k]:.3g}) > 0 for small η)",
                                 curvature=float(-a1[k] / 2), method="closed_form")
        etas = np.where(frozen, np.inf, -a1n / np.where(frozen, 1.0, a2n)) / s
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
            return CriticalValue(0.0, f"direction {k} of the commuting basis: E[j²] − 1 > 0 for "
                                 f"every small η (leading coefficient {lead[0]:.3g})",
                                 method="closed_form")
        roots = q.roots()
        pos = np.sort(roots[(np.abs(roots.imag) <= 1e-9 * np.abs(roots)) & (roots.real > 0)].real)
        crit = math.inf
        for rt in pos:
            if q(rt * (1 + 1e-9)) > 0:
                crit = float(rt)
                break
        best = min(best, crit)
    return best


@analysis({"time_budget": TIME_BUDGET, "progress": [None, *BOOL]})
def critical_batch(hs: HessianSet | Dynamics, schedule: Schedule | None = None, *,
                   time_budget: float | None = None, progress: bool | None = None) -> int | None:
    """Smallest batch size B* with ρ(T) ≤ 1 (the schedule's own ``batch`` is ignored).

    The forget batch follows B when ``forget_batch`` is None. ρ(T) is non-increasing in B for
    every scheme: each noise operator is c(B)·(a completely positive map) with c(B) decreasing,
    and T is monotone in its noise part on the PSD cone — so a bisection over integers with the
    sign test of :func:`mean_square_stable` is exact. Returns None when even the largest
    admissible batch is unstable. ``time_budget``: when it runs out, the smallest batch known
    to be stable is returned with a RuntimeWarning. ``progress``: a tqdm bar on stderr over the
    sign tests (:mod:`rmt.progress`).
    """
    dyn = as_dynamics(hs, schedule)
    schedule = dyn.schedule
    deadline = _deadline(time_budget)
    sizes = [t.n for t in dyn.terms if t.name == "retain" or schedule.forget_batch is None]
    hi = min(sizes) if sizes else schedule.batch
    with _bar(None, "critical_batch", progress=progress, unit="test") as b:

        def stable(B: int) -> bool:
            b.set_postfix_str(f"B={B}")
            b.update()
            return _is_stable(dyn.replace(batch=B))

        if not stable(hi):
            return None
        lo = 1
        if stable(lo):
            return 1
        lo, hi, done = smallest_stable_integer(stable, lo, hi, deadline)
    if not done:
        warnings.warn(f"critical_batch: time budget ran out; B* lies in ({lo}, {hi}] "
                      f"(returning {hi}, known to be stable)", RuntimeWarning, stacklevel=2)
    return hi


def smallest_stable_integer(stable: Callable[[int], bool], lo: int, hi: int,
                            deadline: float | None = None) -> tuple[int, int, bool]:
    """Bisection over integers of a monotone sign test (unstable at ``lo`` or lo = 0, stable at
    ``hi``) → (lo, hi, done): hi the smallest stable integer when ``done``, else the smallest
    known stable one with B* in (lo, hi] when ``deadline`` (a perf_counter time) passed first."""
    while hi - lo > 1:
        if deadline is not None and time.perf_counter() > deadline:
            return lo, hi, False
        mid = (lo + hi) // 2
        if stable(mid):
            hi = mid
        else:
            lo = mid
    return lo, hi, True


@analysis({"hs": HS, "schedule": SCHEDULE, "grid": at_least(2), "rtol": TOLERANCE,
           "time_budget": TIME_BUDGET, "progress": [None, *BOOL]},
          dynamics=False)  # the schedule's α is ignored: no Dynamics
def critical_alpha(hs: HessianSet | Dynamics, schedule: Schedule | None = None, *, grid: int = 64,
                   rtol: float = 1e-10, time_budget: float | None = None,
                   progress: bool | None = None) -> float | None:
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
    ``progress``: a tqdm bar on stderr around the iterative search (:mod:`rmt.progress`).
    """
    if isinstance(hs, Dynamics):
        schedule = hs.schedule
        hs = hs.hs
    if schedule is not None and schedule.combinator.takes_forget:
        Dynamics(hs, schedule.replace(alpha=0.0))  # validates the pair
    else:
        as_dynamics(hs, schedule)
    assert schedule is not None  # as_dynamics raised otherwise
    if not hs.has_forget:
        raise ValueError("critical_alpha needs a HessianSet with a forget set")
    if not schedule.combinator.takes_forget:
        raise ValueError("critical_alpha is not defined for schedule='sam' (alpha must be 0)")
    deadline = _deadline(time_budget)

    # A forget direction outside the retain span is an escape direction of D for every α > 0
    # (vᵀDv = −α vᵀH̄_F v < 0), so the infimum is exactly 0 — decided here, not by a root-finder.
    # (not with a shared λI: λ also curves that direction, vᵀDv = (1−2α)λ − α vᵀH̄⁰_F v)
    if hs.reduction(False, True).r == 0 and hs.shared_scalar == 0.0:
        # no forget curvature: α only shrinks the retain step η(1−α)
        if _is_stable(Dynamics(hs, schedule.replace(alpha=0.0))):
            return None
        return CriticalValue(0.0, "the forget set has no curvature and α = 0 is already unstable",
                             method="closed_form")
    if hs.shared_scalar == 0.0 and hs.reduction(True, True).r > hs.reduction(True, False).r:
        return _out_of_span_zero(hs)
    dyn = Dynamics(hs, schedule.replace(alpha=0.5))
    if not _is_stable(_at_alpha(dyn, 0.0)):
        return CriticalValue(0.0, "unstable at α = 0 (retain descent alone already escapes)",
                             method="sign_test")
    if dyn.combinator.self_adjoint and dyn.hs.kind != "commuting":
        with _bar(None, "critical_alpha", progress=progress, unit="eval") as b:
            return _summed_critical_alpha(dyn, rtol, deadline, tick=b.update)
    if dyn.hs.kind == "commuting" or dyn.r <= PEP_MAX_SPAN:
        sset = _stable_set(dyn, "alpha", rtol)
        if len(sset) > 1:
            _not_interval_warning("α", sset)
        if not sset or sset[0][0] > 0.0:
            return CriticalValue(0.0, "the exact stable α-set does not contain α = 0⁺: "
                                 f"{' ∪ '.join(f'[{a:.6g}, {b:.6g}]' for a, b in sset) or 'empty'}",
                                 method="stable_set")
        a = sset[0][1]
        return None if a >= 1.0 else a
    warnings.warn(
        f"critical_alpha: span r = {dyn.r} > PEP_MAX_SPAN = {PEP_MAX_SPAN}: α* comes from a "
        f"{grid}-point scan and an unstable window narrower than its spacing could be missed",
        RuntimeWarning, stacklevel=2)

    b = _bar(None, "critical_alpha (scan)", progress=progress, unit="eval")

    def f(alpha):
        b.update()
        d = _at_alpha(dyn, alpha) if alpha in (0.0, 1.0) else dyn.replace(alpha=float(alpha))
        return _stability_margin(d)

    with b:
        return _alpha_scan(f, grid, deadline, rtol)


def _alpha_scan(f, grid, deadline, rtol):
    """The uniform α scan of :func:`critical_alpha` (sign tests, then a root-finder)."""
    prev, fprev = None, None
    for p in np.linspace(0.0, 1.0, grid + 1):
        if deadline is not None and time.perf_counter() > deadline:
            warnings.warn("critical_alpha: time budget ran out during the scan; α* > "
                          f"{prev:.6g} (returning nan)", RuntimeWarning, stacklevel=3)
            return math.nan
        val = f(p)
        if val < 0:
            if prev is None:
                return CriticalValue(0.0, "unstable at α = 0", method="scan")
            return _root(f, prev, p, fprev, val, rtol, deadline, "critical_alpha")
        prev, fprev = p, val
    return None


def _summed_critical_eta(dyn):
    """η* of a summed schedule in closed form (docs/contract.md §10.3): η* = 1/λ_max(𝒜⁻¹𝒬).

    Dense spans: the Weyl bracket of the same eigenproblem certifies η* (``.bounds``); Krylov
    values (large spans) are checked by the certified sign test at η*(1 ∓ 1e-9), and a bracketing
    root on the sound margin takes over if that check fails. Min with the null mode of a shared
    λI."""
    null_eta = _null_critical_eta(dyn) if dyn.has_null_mode else math.inf
    op = MeanSquareOperator(dyn)
    eig = op.eigenbasis
    x, why, xb = summed_critical_x(op)
    if why is not None:
        i, di = why
        u = eig.Q[:, i]
        direction = op.reduction.basis @ u if op.reduction.basis.shape[1] == u.size else None
        curv = di * eig.scale
        thr = 8 * (eig.r + 1) * 2.2e-16 * eig.scale * float(np.max(np.abs(eig.d)))
        return CriticalValue(0.0, f"the mixed Hessian D = (1−α)H̄_R − αH̄_F has eigenvalue "
                             f"{curv:.6g} (≤ round-off {thr:.2g}) on the span: the mean dynamics "
                             f"escape along that direction for every η > 0", direction=direction,
                             curvature=curv, method="closed_form", bounds=(0.0, 0.0))
    if null_eta == 0.0:
        return CriticalValue(0.0, "the null scalar mode of the shared curvature is unstable for "
                             "every η > 0", method="closed_form", bounds=(0.0, 0.0))
    s = eig.scale
    if math.isinf(x):
        return CriticalValue(null_eta, "𝒬 vanishes on the span (λ_max(𝒜⁻¹𝒬) ≤ 0, or T = I: "
                             "D ≈ 0 and no sampling noise, ρ = 1 for every η): stable for every η",
                             method="closed_form", bounds=(min(xb[0] / s, null_eta), null_eta)
                             if xb else None)
    eta = x / s
    if xb is not None and xb[1] - xb[0] <= 1e-9 * x:  # certified: Weyl, or Rayleigh/Collatz–Wielandt
        lo, hi = xb[0] / s, xb[1] / s
        if null_eta < lo:
            return CriticalValue(null_eta, "closed form of the null scalar mode of the shared "
                                 "curvature (below the span's η*)", method="closed_form",
                                 bounds=(null_eta, null_eta))
        return CriticalValue(min(eta, null_eta), "closed form 1/λ_max(𝒜⁻¹𝒬), certified on the "
                             "same eigenproblem (Weyl for dense spans, Rayleigh/Collatz–Wielandt "
                             "above)", method="closed_form", bounds=(lo, min(hi, null_eta)))
    lo_ok = _stability(dyn.replace(eta=eta * (1 - 1e-9)))
    hi_ok = _stability(dyn.replace(eta=eta * (1 + 1e-9)))
    if lo_ok[0] and not hi_ok[0]:
        bounds = (eta * (1 - 1e-9), eta * (1 + 1e-9)) if lo_ok[1] and hi_ok[1] else None
        return CriticalValue(min(eta, null_eta), "closed form 1/λ_max(𝒜⁻¹𝒬) (Krylov), sign "
                             "checked at η*(1 ∓ 1e-9)", method="closed_form", bounds=bounds)
    lo, hi = eta * 0.5, eta * 2.0
    while _is_stable(dyn.replace(eta=hi)) and hi < 1e300:
        hi *= 2.0
    while not _is_stable(dyn.replace(eta=lo)) and lo > 1e-300:
        lo *= 0.5
    margin = lambda e: _span_margin(dyn.replace(eta=float(e)))  # noqa: E731
    eta = _root(margin, lo, hi, margin(lo), margin(hi), 1e-12, None, "critical_eta")
    return CriticalValue(min(eta, null_eta), "root of the certified margin (the Krylov closed "
                         "form failed its sign check)", method="convex_root")


def _summed_critical_alpha(dyn, rtol, deadline, tick=None):
    """α* of a summed schedule (docs/contract.md §10.2, §10.5). f(α) = ρ(T(α)) − 1 is convex, so
    the stable α-set is one interval. Newton with the Hellmann–Feynman slope
    f′(α) = ⟨X, T′(α) X⟩/⟨X, X⟩ (X the Perron eigenmatrix; T(α) is quadratic in α, so the central
    difference of ⟨X, T(α ± h) X⟩ is exact): from α = 0 (f ≤ 0) the tangent overshoots to f ≥ 0
    and Newton then descends monotonically to the root; a bracket [lo, hi] updated only by
    decided signs safeguards every step (bisection when Newton leaves it). No scan."""
    def solve(alpha):
        if tick is not None:
            tick()
        d = dyn.replace(alpha=float(alpha))
        op = MeanSquareOperator(d)
        if op.r <= SYM_DENSE_MAX_SPAN:  # eigh: exact and cheap, its enclosure decides the sign
            sol = summed_rate(op)
            rate, X = sol.rate, sol.eigenmatrix
            stable = sol.hi <= 1.0 or (sol.lo <= 1.0 and sol.rate <= 1.0)
            allow = max(sol.hi - sol.rate, sol.rate - sol.lo)
        else:  # a Krylov candidate; the bracket's two ends are certified at the end
            rate, X, _, _ = op._lanczos(1e-12)
            stable = rate <= 1.0
            eig = op.eigenbasis
            allow = allowance(op.r, _n_max(eig), rate, term_size(eig))
        slope = math.nan
        if X is not None:
            h = 1e-3 * min(max(alpha, 1e-3), 1.0 - alpha, 1e-1) if 0 < alpha < 1 else 1e-4
            a1, a2 = (alpha - h, alpha + h) if alpha - h > 0 else (alpha, alpha + h)
            q = [float(np.vdot(X, MeanSquareOperator(dyn.replace(alpha=a)).apply(X)))
                 for a in (a1, a2)]
            slope = (q[1] - q[0]) / (a2 - a1) / float(np.vdot(X, X))
        return rate - 1.0, slope, stable, allow

    lo, hi = 0.0, None
    # res: the width in α that float64 resolves around a root where ρ(T) is flat in α. ρ is
    # computed to about one ulp of 1 at best (eps), so a point with |f| within the allowance
    # and slope g places the root no better than 2·eps/g: the bracket is refined to
    # max(rtol·α*, res), not below — further solves read only round-off (on a flat instance
    # of the coherence study, g = 4e-10, they ran ~60 dense solves at 8–11 s each)
    res = reach = 0.0  # reach: allowance/slope, the distance at which a sign can be certified
    a = 1e-12  # α = 0⁺ on the union span (same span as α = 0 here: no out-of-span direction)
    f, g, stable, allow = solve(a)
    if not stable:
        return CriticalValue(0.0, "unstable at α = 0⁺", method="convex_root")
    lo = a
    steps = 0
    while steps < 60:
        steps += 1
        if deadline is not None and time.perf_counter() > deadline:
            warnings.warn(f"critical_alpha: time budget ran out; α* ∈ [{lo:.12g}, "
                          f"{hi if hi is not None else 1.0:.12g}] (returning the stable end)",
                          RuntimeWarning, stacklevel=3)
            break
        if math.isfinite(g) and g > 0:
            nxt = a - f / g
        else:
            nxt = math.nan
        top = hi if hi is not None else 1.0
        if not (lo < nxt < top):
            if hi is None:  # no unstable point yet: is α = 1 (retain set gone) stable?
                if _is_stable(_at_alpha(dyn, 1.0)) and solve(1.0 - 1e-12)[2]:
                    return None
                nxt = 0.5 * (lo + 1.0) if not (nxt >= 1.0) else 1.0 - 1e-12
            else:
                nxt = 0.5 * (lo + hi)
        if abs(nxt - a) <= rtol * max(abs(a), 1e-300) and hi is not None and stable:
            break
        a = nxt
        f, g, stable, allow = solve(a)
        if math.isfinite(g) and g > 0 and abs(f) <= allow:
            res = max(res, 2.0 * np.finfo(float).eps * max(1.0, abs(f + 1.0)) / g)
            reach = max(reach, allow / g)
        if stable:
            lo = max(lo, a)
        else:
            hi = a if hi is None else min(hi, a)
        if hi is not None and hi - lo <= max(rtol * hi, res):
            break
    if hi is None:
        return None
    estimate = lo  # the last stable Newton point: within rtol of the root
    s_lo, s_hi = _stability(dyn.replace(alpha=lo)), _stability(dyn.replace(alpha=hi))
    # Newton lands within round-off of the root: widen each end (×1, ×16) until its sign is
    # decided; where even that cannot be certified the value comes without bounds
    # (a flat ρ(α): start where the allowance can be beaten, not at round-off widths)
    width = max(hi - lo, rtol * hi, res, 1.25 * reach)
    for j in (0, 2):
        if s_lo[0] and not s_lo[1] and lo - 4**j * width > 0:
            lo_try = lo - 4**j * width
            t = _stability(dyn.replace(alpha=lo_try))
            if t[0]:
                lo, s_lo = lo_try, t
        if not s_hi[0] and not s_hi[1] and hi + 4**j * width < 1:
            hi_try = hi + 4**j * width
            t = _stability(dyn.replace(alpha=hi_try))
            if not t[0]:
                hi, s_hi = hi_try, t
        if s_lo[1] and s_hi[1]:
            break
    certified = s_lo[0] and s_lo[1] and not s_hi[0] and s_hi[1]
    if not (s_lo[0] and not s_hi[0]):  # a candidate sign was wrong: bisect on certified signs
        lo_, hi_ = (lo, hi) if s_lo[0] else (0.0, lo)
        if s_hi[0]:
            lo_, hi_ = hi, 1.0
        lo, hi = bisect_alpha_edge(dyn, lo_, hi_, rtol)
        certified, estimate = False, lo
    blur = ""
    if res > rtol * hi:
        blur = (f"; ρ(T) is so flat in α here that float64 resolves α* to ≈ {res:.3g} "
                "(2·eps/slope), not to rtol")
    return CriticalValue(estimate, "upper end of the stable α-interval (ρ convex in α): Newton with the "
                         "Hellmann–Feynman slope" + (", both bracket ends certified"
                                                     if certified else "") + blur,
                         method="convex_root", bounds=(lo, hi) if certified else None)


def _out_of_span_zero(hs):
    """α* = 0 because a forget curvature direction lies outside the retain span: the direction
    and the forget curvature along it (λ_max of H̄_F projected off the retain span)."""
    red = hs.reduction(True, True)
    U = red.basis
    UR = hs.reduction(True, False).basis
    B = U.T @ UR
    P = np.eye(U.shape[1]) - B @ B.T
    F = P @ red.mean("forget") @ P
    lam, V = np.linalg.eigh(0.5 * (F + F.T))
    v = U @ V[:, -1]
    return CriticalValue(0.0, f"a forget curvature direction lies outside the retain span "
                         f"(forget curvature {lam[-1]:.6g} there, span {red.r} vs retain span "
                         f"{UR.shape[1]}): ascent escapes along it for every α > 0",
                         direction=v, curvature=float(lam[-1]), method="closed_form")


def _zero_eta(dyn, sset):
    """η* = 0 (no η > 0 is stable from the start): the reason with the smallest eigenvalue of the
    mixed Hessian on the span and its direction."""
    D = dyn.mixed_hessian()
    lam, V = np.linalg.eigh(0.5 * (D + D.T)) if not dyn.combinator.preconditioned else (
        np.linalg.eigvals(D).real, None)
    k = int(np.argmin(lam))
    direction = None if V is None else dyn.basis @ V[:, k]
    comps = " ∪ ".join(f"[{a:.6g}, {b:.6g}]" for a, b in sset) or "empty"
    return CriticalValue(0.0, f"no η > 0 near 0 is stable (exact stable set {comps}); the mixed "
                         f"Hessian's smallest eigenvalue on the span is {lam[k]:.6g}",
                         direction=direction, curvature=float(lam[k]), method="stable_set")


# ---------------------------------------------------------------------- stable sets
@analysis({"parameter": [Options(("eta", "alpha"))], "rtol": TOLERANCE})
def stable_set(hs: HessianSet | Dynamics, schedule: Schedule | None = None, *,
               parameter: str = "eta", rtol: float = 1e-10) -> tuple[tuple[float, float], ...]:
    """The mean-square stable set {x : ρ(T(x)) ≤ 1} as a tuple of closed intervals (lo, hi).

    ``parameter="eta"`` (x ∈ (0, ∞), the schedule's η ignored; hi may be inf) or ``"alpha"``
    (x ∈ [0, 1], the schedule's α ignored). The entries of T(x) are polynomials in η and in α
    (degree 2 summed/SAM, 4 alternating), so ρ(T(x)) can cross 1 only at a real root of
    det(T(x) − I) — the polynomial eigenvalue problem Σ_k x^k (T_k − δ_k0 I) on symmetric
    matrices, solved by companion linearisation (per-direction polynomial roots for commuting
    sets). Between consecutive roots the verdict is constant and is decided once, so no window
    can be stepped over, however narrow. Needs a commuting set or span r ≤ ``PEP_MAX_SPAN``,
    except for the summed schedule: there ρ(T) is convex in η and in α (docs/contract.md §10.2),
    the stable set is one interval at any span, and its ends come from :func:`critical_eta` /
    :func:`critical_alpha` (and, when α = 0 is unstable, a golden-section minimum of the convex
    ρ(α) and a bisection on each side).
    """
    check_choice(parameter, "parameter", ("eta", "alpha"))
    dyn = as_dynamics(hs, schedule)
    if parameter == "alpha":
        dyn = _alpha_dynamics(dyn)
    if dyn.combinator.self_adjoint and dyn.hs.kind != "commuting" and dyn.r > PEP_MAX_SPAN:
        return _summed_stable_set(dyn, parameter, rtol)
    if dyn.hs.kind != "commuting" and dyn.r > PEP_MAX_SPAN:
        raise ValueError(
            f"stable_set solves det(T(x) − I) = 0 exactly for spans r ≤ {PEP_MAX_SPAN} (or "
            f"commuting sets); this one has r = {dyn.r}")
    return _stable_set(dyn, parameter, rtol)


def _summed_stable_set(dyn, parameter, rtol):
    """The one stable interval of a summed schedule (convexity, docs/contract.md §10.2)."""
    if parameter == "eta":
        eta = float(critical_eta(dyn))
        return ((0.0, eta),) if eta > 0 else ()
    crit = critical_alpha(dyn)
    if crit is None:
        return ((0.0, 1.0),)
    if float(crit) > 0.0:
        return ((0.0, float(crit)),)
    # unstable at α = 0: the convex margin's maximum (golden section), then both crossings
    f = lambda a: _stability_margin(dyn.replace(alpha=float(a)))  # noqa: E731
    g = (math.sqrt(5.0) - 1.0) / 2.0
    a, b = 0.0, 1.0
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = f(c), f(d)
    for _ in range(60):
        if fc >= 0.0 or fd >= 0.0 or b - a <= rtol:
            break
        if fc > fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = f(d)
    m = c if fc >= fd else d
    if max(fc, fd) < 0.0:
        return ()

    left = bisect_alpha_edge(dyn, m, 0.0, rtol)[0]
    right = bisect_alpha_edge(dyn, m, 1.0, rtol)[0] if not _is_stable(_at_alpha(dyn, 1.0)) else 1.0
    return ((float(left), float(right)),)
