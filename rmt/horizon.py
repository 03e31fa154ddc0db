"""Critical values at a finite horizon (contract §8): the smallest η or α, or the smallest batch,
at which the exact mean-square distance leaves the forecast's ball within K steps.

:func:`horizon_critical` uses :func:`rmt.forecast`'s default start and ball (module
:mod:`rmt.forecast`) and the exact moment recursion of :mod:`rmt.affine`; the asymptotic
(ρ(T) = 1) critical value of :mod:`rmt.meansquare` is reported beside it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .affine import affine_step
from .api import BOOL, HESSIANS, POSITIVE, TOLERANCE, analysis, at_least
from .dynamics import Dynamics, ZeroSpanError, as_dynamics
from .forecast import _default_radius, _default_start
from .hessians import HessianSet, check_hessian_set
from .schedule import Schedule
from .validation import Array, Options, check_choice, check_finite_array, check_int, check_positive

__all__ = ["HorizonCritical", "horizon_critical", "out_of_span_share"]


# ---------------------------------------------------------------------- horizon-aware critical values
@dataclass(frozen=True)
class HorizonCritical:
    """Critical value of one knob at a finite horizon (mean square, start-aware; contract §8).

    ``value``: for η and α the smallest value at which max_{k ≤ steps} E‖δ_k‖² reaches
    ``radius``² (the model leaves the ball), for B the smallest batch that stays inside (None
    when no value in range does); ``asymptotic``: the ρ(T) = 1 critical value of
    :mod:`rmt.meansquare` beside it; ``out_of_span_share`` (α only): the share
    tr(P⊥ H̄_F)/tr(H̄_F) of forget curvature outside the retain span, which makes the asymptotic
    α* exactly 0 whenever it is positive.
    """

    parameter: str
    value: float | int | None
    asymptotic: float | int | None
    steps: int
    radius: float
    out_of_span_share: float | None = None


@analysis({"hs": HESSIANS}, dynamics=False, blas=False)
def out_of_span_share(hs: HessianSet) -> float:
    """tr(P⊥ H̄_F)/tr(H̄_F): the share of forget curvature outside the span of the retain Hessians."""
    check_hessian_set(hs)
    if not hs.has_forget:
        raise ValueError("out_of_span_share needs a HessianSet with a forget set")
    U = hs.reduction(True, False).basis  # explicit, or implicit at large d (no d×r array)
    G = hs.factor_gram("forget")
    total = float(np.trace(G))
    inside = float(np.sum(hs.factor_coordinates("forget", U) ** 2))
    return max(total - inside, 0.0) / total if total > 0 else 0.0


@analysis({"parameter": [Options(("eta", "alpha", "batch"))], "steps": at_least(1),
           "start": [None, Array(ndim=1)], "radius": [None, *POSITIVE], "escape_factor": POSITIVE,
           "grid": at_least(2), "rtol": TOLERANCE, "scale": [None, *POSITIVE],
           "progress": [None, *BOOL]}, blas=False)
def horizon_critical(hs: HessianSet | Dynamics, schedule: Schedule | None, parameter: str,
                     steps: int, *, start: npt.ArrayLike | None = None,
                     radius: float | None = None, escape_factor: float = 10.0, grid: int = 48,
                     rtol: float = 1e-6, scale: float | None = None,
                     progress: bool | None = None) -> HorizonCritical:
    """Critical η, α or B at a horizon of ``steps`` steps (exact mean square, start-aware).

    The model *leaves* when max_{k ≤ steps} E‖w_k − w*‖² ≥ radius² (the mean-square notion of
    :func:`forecast`; start, ``scale`` and radius default as there — a random start of norm ε on
    the Hessian span, radius = ``escape_factor`` × ε — evaluated once at ``schedule``). η: the
    smallest η in (0, 4/λ_max(D)] that leaves; α: the smallest α in [0, 1]; B: the smallest
    batch that stays inside. Located by a scan of ``grid`` points — a window narrower than one
    grid cell can be missed (unlike the exact asymptotic values) — then refined to a bracket of
    relative width ``rtol`` whose upper end is returned (a value that leaves): cubic fits of the
    log excess through the scan's trajectories and the new points, with a closing step and a
    bisection fallback (:func:`_refine`). A scan evaluation stops at the first step that leaves
    the ball (continued from there if the refinement needs the whole trajectory). ``progress``:
    a tqdm bar on stderr (:mod:`rmt.progress`).
    """
    from .affine import _run_moments, start_coordinates
    from .meansquare import critical_alpha, critical_batch, critical_eta
    from .progress import bar

    dyn = as_dynamics(hs, schedule)
    check_choice(parameter, "parameter", ("eta", "alpha", "batch"))
    steps = check_int(steps, "steps", minimum=1)
    if scale is not None:
        scale = check_positive(scale, "scale")
    _, _, start_norm, eps = _default_start(dyn, start, 2, np.random.SeedSequence(0), scale)
    s0 = None if start is None else check_finite_array(start, "start", ndim=1)
    if radius is None:
        radius = _default_radius(dyn, start_norm, escape_factor, eps, start is not None,
                                 scale is not None)[0] or escape_factor
    radius = check_positive(radius, "radius")

    def start_of(d2):  # the same start on the (possibly changed) span of d2
        if s0 is not None or eps is None:
            return start_coordinates(d2, s0)
        return _default_start(d2, None, 2, np.random.SeedSequence(0), eps)[0]

    R2 = radius**2
    st0 = start_of(dyn)
    sq0 = float(np.trace(st0[0])) + float(st0[2])  # E‖δ_0‖²
    with bar(None, f"horizon_critical({parameter})", progress=progress, unit="eval") as b:

        built: dict = {}  # one Dynamics per knob value (the scan and the refinement share them)
        full: dict = {}  # knob value -> a trajectory run to the horizon (the scan's are reused
        # by the refinement, which needs the whole trajectory)
        stopped: dict = {}  # knob value -> a run stopped where it left (continued on demand)

        def dynamics_of(key2, change):
            if key2 not in built:
                d2 = dyn.replace(**change)
                built.clear()  # keep the newest only (each holds O(n·r + r²) arrays)
                built[key2] = (d2, start_of(d2))
            return built[key2]

        def moments(change: dict, stop: bool) -> np.ndarray | None:
            b.set_postfix_str(", ".join(f"{k}={v:.6g}" for k, v in change.items()))
            key2 = tuple(sorted(change.items()))
            if key2 in full:
                return full[key2]
            try:
                try:
                    d2, start2 = dynamics_of(key2, change)
                except ZeroSpanError:
                    # e.g. α = 1 with a forget set of zero curvature: no Hessian enters the step
                    sch2 = dyn.schedule.replace(**change)
                    names = [w for w, on in (("retain", sch2.uses_retain),
                                             ("forget", sch2.uses_forget)) if on]
                    if any(dyn.hs.gradients(w) is not None and np.any(dyn.hs.gradients(w))
                           for w in names):
                        raise ValueError(
                            f"horizon_critical: at {change} every Hessian that enters the step "
                            "is zero but gradients do: a pure random walk, which the exact "
                            "moment recursion does not cover; narrow the scan") from None
                    out = np.full(steps + 1, sq0)  # J = I, b = 0: δ_k = δ_0 for every k
                    full[key2] = out
                    return out
                if key2 in stopped:  # left early: continue from there to the horizon
                    out = _continue(d2, steps, start2, stopped.pop(key2))
                    full[key2] = out
                    return out
                if stop and _stays_certified(d2, start2, steps, R2):
                    return None  # provably inside for every k ≤ steps: no recursion needed
                run = _run_moments(d2, steps, *start2, stop_above=R2 if stop else None)
                out = run.expected_sq_distance
                if out.size == steps + 1 or not np.all(np.isfinite(out)):
                    full[key2] = _pad(out, steps)  # ran to the horizon (or overflowed: +inf on)
                else:
                    stopped[key2] = run
                return out
            except FloatingPointError:
                out = np.full(steps + 1, math.inf)
                out[0] = 0.0
                full[key2] = out
                return out
            finally:
                b.update()

        def excess(**change: Any) -> float:
            """max_k E‖δ_k‖² − radius² up to its sign (stops once it is ≥ 0)."""
            m = moments(change, True)
            if m is None:
                return -R2
            return float(np.max(m[1:]) - R2) if m.size > 1 else -R2

        share = None
        if parameter == "batch":
            sizes = [t.n for t in dyn.terms
                     if t.name == "retain" or dyn.schedule.forget_batch is None]
            value: float | None = None
            for B in range(1, min(sizes) + 1):
                if excess(batch=B) < 0:
                    value = B
                    break
            return HorizonCritical("batch", value, critical_batch(dyn), steps, float(radius))
        key = "alpha" if parameter == "alpha" else "eta"
        if parameter == "alpha":
            share = out_of_span_share(dyn.hs)
            pts = np.linspace(0.0, 1.0, grid + 1)
            asym = critical_alpha(dyn.hs, dyn.schedule)
        else:
            D = dyn.mixed_hessian()
            lam = float(np.max(np.abs(np.linalg.eigvals(D))))
            pts = np.geomspace(1e-3 / lam, 4.0 / lam, grid)
            asym = critical_eta(dyn)

        def f(x):
            return excess(**{key: float(x)})

        def log_excess(m):  # log(max_k E‖δ_k‖² / radius²): smooth in the knob
            top = float(np.max(m[1:]))
            return math.log(top / R2) if top > 0 else -math.inf

        def g(x):  # the log excess of a whole trajectory, for the refinement
            return log_excess(moments({key: float(x)}, False))

        def known():  # (x, g(x)) of every trajectory run to the horizon so far
            return [(dict(k2)[key], log_excess(m)) for k2, m in full.items()]

        prev, value = None, None
        for x in pts:
            if f(x) >= 0:
                value = (float(x) if prev is None
                         else _refine(g, float(prev), float(x), rtol, known()))
                break
            prev = x
    return HorizonCritical(parameter, value, asym, steps, float(radius), share)


def _refine(g, lo: float, hi: float, rtol: float, points=()) -> float:
    """Smallest leaving value in (lo, hi] to relative width ``rtol``: g(lo) < 0 ≤ g(hi).

    ``g`` is the log excess log(max_k E‖δ_k‖²/radius²), smooth in the knob; ``points``: (x, g(x))
    already known (the scan's trajectories). Each step fits a cubic through the (up to) four
    known points nearest the bracket and takes its root in the bracket; once two successive
    roots agree to within the tolerance, it evaluates just past the root on the side that
    closes the bracket (a root-finder's "tolerance step", as in Brent's method). Bisection
    whenever the fit fails or the bracket has not halved within three evaluations. Returns the
    upper end of the final bracket (a value that leaves)."""
    pts = {float(x): float(v) for x, v in points}
    pts.setdefault(lo, g(lo))
    pts.setdefault(hi, g(hi))
    last, stale, width = None, 0, hi - lo
    while hi - lo > rtol * hi:
        tol = rtol * hi
        x = _cubic_root(pts, lo, hi) if stale < 3 else None
        if x is None:
            x, last, stale = 0.5 * (lo + hi), None, 0
        else:
            eps = math.inf if last is None else abs(x - last)
            last = x
            close = 0.9 * tol
            if x + eps < lo + close:  # the root is within reach of lo: close from there
                x = lo + close
            elif x - eps > hi - close:
                x = hi - close
            x = min(max(x, lo + 0.05 * tol), hi - 0.05 * tol)
        gx = g(x)
        pts[x] = gx
        if gx >= 0:
            hi = x
        else:
            lo = x
        if hi - lo > 0.5 * width:
            stale += 1
        else:
            stale, width = 0, hi - lo
    return float(hi)


def _cubic_root(pts: dict, lo: float, hi: float) -> float | None:
    """The root in (lo, hi) of the cubic (or lower) through the ≤ 4 finite known points nearest
    the bracket; None when there is none or it is not unique."""
    good = sorted((x for x, v in pts.items() if math.isfinite(v)),
                  key=lambda x: 0.0 if lo <= x <= hi else min(abs(x - lo), abs(x - hi)))
    near = good[:4]
    if lo not in near or hi not in near or len(near) < 2:
        return None
    c, w = 0.5 * (lo + hi), 0.5 * (hi - lo)
    t = np.array([(x - c) / w for x in near])  # the bracket is [−1, 1]
    coef = np.polyfit(t, [pts[x] for x in near], len(near) - 1)
    roots = [float(z.real) for z in np.roots(coef)
             if abs(z.imag) <= 1e-9 * max(1.0, abs(z)) and -1.0 < z.real < 1.0]
    if len(roots) != 1:
        return None
    return c + w * roots[0]


def _pad(out: np.ndarray, steps: int) -> np.ndarray:
    """A trajectory cut short by overflow, continued with +inf to the horizon."""
    if out.size == steps + 1:
        return out
    full = np.full(steps + 1, math.inf)
    full[:out.size] = out
    return full


def _continue(dyn: Dynamics, steps: int, start, run) -> np.ndarray:
    """E‖δ_k‖² for k = 0..steps, from a run that stopped at step ``run.steps`` < steps: the
    recursion is Markov in (M_k, m_k), so it continues from the stopped state (the part
    outside [U, V] scaled by the null rate as in :func:`rmt.affine._run_moments`)."""
    from .affine import _run_moments

    k = run.steps
    frozen = start[2]
    if dyn.has_null_mode and frozen > 0.0:
        frozen = frozen * dyn.null_rate ** k
    rest = _run_moments(dyn, steps - k, run.M_final, run.mean[-1], frozen)
    return _pad(np.concatenate([run.expected_sq_distance[:-1], rest.expected_sq_distance]),
                steps)


def _stays_certified(dyn: Dynamics, start, steps: int, R2: float) -> bool:
    """A cheap proof that E‖δ_k‖² < R2 for every k ≤ steps (False: not proven).

    δ_k = Φ_kδ_0 + Σ_j Φ_{k,j+1}b_j with Φ_{k,j+1} independent of b_j, and for a positive T,
    tr T^j(X) ≤ τ^j tr X with τ = λ_max(T*(I)) = λ_max(E[JᵀJ]). Minkowski in L² gives
    √E‖δ_k‖² ≤ √(τ₊^k tr M0) + √E‖b‖²·Σ_{i<k} τ₊^{i/2}, τ₊ = max(τ, 1) (non-decreasing in k).
    Only without coordinates outside the span (p = r, no shared null mode)."""
    from .meansquare import MeanSquareOperator

    M0, _, frozen = start
    r = dyn.r
    if dyn.p != r or dyn.has_null_mode or r == 0:
        return False
    with np.errstate(over="ignore", invalid="ignore"):
        import scipy.linalg

        top = scipy.linalg.eigh(MeanSquareOperator(dyn).apply_adjoint(np.eye(r)),
                                eigvals_only=True, subset_by_index=[r - 1, r - 1])
        tau = max(float(top[-1]) * (1.0 + 1e-12), 1.0)  # slack for the eigensolver's round-off
        s2 = 0.0
        if dyn.has_drift:
            s2 = max(float(np.trace(affine_step(dyn, np.zeros((r, r)), np.zeros(r))[0])), 0.0)
        q = math.sqrt(tau)
        # in logarithms: q^steps overflows a float long before the bound stops being useful
        # (Python's float ** raises OverflowError instead of returning inf)
        try:
            grow = math.exp(steps * math.log(q))
            walk = float(steps) if q == 1.0 else (grow - 1.0) / (q - 1.0)
            bound = (grow * math.sqrt(max(float(np.trace(M0)), 0.0)) + math.sqrt(s2) * walk)**2
            bound += frozen
        except OverflowError:
            return False
    return bool(math.isfinite(bound) and bound < R2)
