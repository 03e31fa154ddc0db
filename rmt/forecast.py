"""Finite-horizon forecasts of unlearning: does the model leave w* within ``steps`` steps?
(contract §8, "Finite horizon").

The asymptotic verdict ρ(T) > 1 answers a question nobody observes: a rate of 1 + 1e-4 is
divergent in the limit and invisible within thousands of steps, and at a non-interpolating
minimum the per-sample gradients move the model even when ρ(T) < 1. A forecast answers the
observable question instead, for the affine linearised recursion δ_{k+1} = J_kδ_k + b_k:

**Ball.** The model has *left* w* when ‖δ_k‖ = ‖w_k − w*‖ ≥ ``radius`` for some k ≤ ``steps``.

**Defaults** (what a practitioner means by "the model forgets within ``steps`` steps"):

* ``start=None`` with per-sample gradients: δ_0 = 0 (unlearning starts at w*, the drift moves it);
  ``radius`` = ``escape_factor`` × the root-mean-square length of one step from w*,
  √E‖b‖² — leaving the ball means travelling ten typical steps away and staying there or beyond.
* ``start=None`` without gradients (an interpolating minimum, nothing moves from δ_0 = 0): a
  random unit perturbation on the span of the Hessians (per replica; exact moments use its
  second moment I_r/r), ``radius`` = ``escape_factor`` × ‖δ_0‖ — the protocol of the published
  "diverged when ‖w‖ grows by a factor" heuristics.
* a given ``start`` vector: ``radius`` = ``escape_factor`` × ‖start‖ (or ‖start‖-free ``radius``).

**Notion.** ``notion="almost-sure"`` (default) asks whether a *typical run* leaves the ball: more
than half of the Monte Carlo replicas do. ``notion="mean-square"`` asks whether the exact
E‖δ_k‖² reaches radius² for some k ≤ steps; it is dominated by rare runs at small batches and is
always reported beside the verdict (``mean_square_leaves``).

**Verdict** (field ``outcome``), with ``reason``:

* ``"escapes"``: leaves the ball and keeps going — almost-sure growth (λ₁·steps ≥ ln
  escape_factor; mean square: ρ(T)^steps ≥ escape_factor²) or linear drift outside the span of
  the Hessians (steps·‖E[b]_V‖ ≥ radius/2; J = I there so nothing pulls it back);
* ``"displaced"``: leaves the ball but settles at a displaced fixed point m∞ (or in a stationary
  cloud around it) — unlearning moved the model a finite distance;
* ``"returns"``: stays inside the ball.

``forgets`` is True for "escapes" and "displaced" (the model left w*), with ``verdict`` and
``notion`` as in :mod:`rmt.verdict`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from .validation import check_choice, check_finite_array, check_int, check_positive
from .affine import AffineMoments, StationaryResult, affine_moments, affine_step, stationary
from .api import (BOOL, HESSIANS, HS, NON_NEGATIVE, POSITIVE, TOLERANCE, UNIT, InstanceOf,
                  analysis, at_least)
from .validation import Array, Options
from .dynamics import Dynamics, as_dynamics
from .hessians import HessianSet, check_hessian_set
from .schedule import Schedule
from .verdict import ALMOST_SURE, MEAN_SQUARE, OutcomeVerdict

__all__ = ["ForecastResult", "forecast", "OUTCOMES", "HorizonCritical", "horizon_critical",
           "out_of_span_share", "ForgettingCost", "forgetting_cost"]

#: The three forecast outcomes (module docstring).
OUTCOMES = ("escapes", "displaced", "returns")


@dataclass(frozen=True)
class ForgettingCost:
    """What leaving w* costs, to second order, at the horizon K (contract §8 moments).

    For each set S the predicted mean loss change E[L_S(w* + δ_K)] − L_S(w*) ≈ ḡ_Sᵀ E[δ_K] +
    ½ tr(H̄_S E[δ_Kδ_Kᵀ]) (ḡ_S the mean per-sample gradient at w*, zero when no gradients were
    given; H̄_S the mean Gauss–Newton Hessian): ``forget_loss_rise`` (what unlearning is for)
    and ``retain_loss_rise`` (the damage). ``selectivity`` = forget rise / |retain rise| (inf
    when the retain loss does not move). The *escape direction* v is the top eigenvector of
    E[δ_Kδ_Kᵀ]; ``escape_overlap_retain`` / ``_forget`` = vᵀH̄_Sv / λ_max(H̄_S) ∈ [0, 1]: how much
    of each set's sharpest curvature the escape direction sees (near 1 for the retain set means
    the model escapes along what it needs to keep). ``nothing_to_forget``: the model never
    fitted the forget samples (``forget_fitted`` < 1/2 passed to :func:`forecast`; None when
    unknown) — a large forget-loss rise then means nothing.
    """

    forget_loss_rise: float
    retain_loss_rise: float
    escape_overlap_retain: float
    escape_overlap_forget: float
    nothing_to_forget: bool | None = None

    @property
    def selectivity(self) -> float:
        if self.retain_loss_rise == 0:
            return math.inf if self.forget_loss_rise > 0 else math.nan
        return self.forget_loss_rise / abs(self.retain_loss_rise)

    def summary(self) -> str:
        flag = " (nothing to forget: the model never fitted the forget samples)" \
            if self.nothing_to_forget else ""
        return (f"forget loss +{self.forget_loss_rise:.4g}, retain loss "
                f"{self.retain_loss_rise:+.4g}; escape direction sees "
                f"{self.escape_overlap_retain:.2f} of the retain and "
                f"{self.escape_overlap_forget:.2f} of the forget top curvature{flag}")


@dataclass(frozen=True)
class ForecastResult(OutcomeVerdict):
    """A finite-horizon forecast (module docstring for the criterion).

    ``expected_sq_distance`` (steps,) exact E‖w_k − w*‖² for k = 1..steps; ``mean_path_norm``
    (steps,) = ‖E[w_k] − w*‖; ``final_distance`` (replicas,) Monte Carlo ‖w_K − w*‖ (inf when a
    run overflowed); ``leave_probability`` = fraction of replicas with ‖δ_k‖ ≥ radius for some
    k ≤ K; ``outcome`` ∈ {"escapes", "displaced", "returns"}; ``reason``; ``notion`` (the
    deciding notion); ``mean_square_leaves`` / ``almost_sure_leaves`` (each notion's answer);
    ``rate`` ρ(T); ``lyapunov`` λ₁ (homogeneous part, almost-sure; None if not computed);
    ``lyapunov_stderr``; ``stationary`` (:class:`rmt.affine.StationaryResult`);
    ``null_drift`` ‖E[b]_V‖ per step; ``radius``, ``start_norm``, ``steps``, ``replicas``,
    ``escape_factor``; ``cost`` (:class:`ForgettingCost`: forget-loss rise vs retain damage,
    escape-direction overlaps, the nothing-to-forget flag; None for sets without factors).
    """

    outcome: str
    reason: str
    notion: str
    radius: float
    steps: int
    replicas: int
    escape_factor: float
    start_norm: float
    leave_probability: float
    mean_square_leaves: bool
    almost_sure_leaves: bool
    rate: float
    lyapunov: float | None
    lyapunov_stderr: float | None
    null_drift: float
    stationary: StationaryResult = field(repr=False)
    expected_sq_distance: np.ndarray = field(repr=False)
    mean_path_norm: np.ndarray = field(repr=False)
    final_distance: np.ndarray = field(repr=False)
    cost: ForgettingCost | None = None

    @property
    def notions_disagree(self) -> bool:
        """The mean-square and almost-sure answers differ (rare runs dominate E‖δ‖²)."""
        return self.mean_square_leaves != self.almost_sure_leaves

    def _cost_text(self) -> str:
        c = self.cost
        if c is None:
            return ""
        if self.outcome == "escapes":  # second order is meaningless after an exponential escape
            return (f" Cost: the model escapes, beyond the range of the second-order loss "
                    f"prediction; the escape direction sees {c.escape_overlap_retain:.2f} of the "
                    f"retain and {c.escape_overlap_forget:.2f} of the forget top curvature"
                    + (" (nothing to forget: the model never fitted the forget samples)."
                       if c.nothing_to_forget else "."))
        return f" Cost at K: {c.summary()}."

    def summary(self) -> str:
        """One paragraph for reports and the CLI."""
        lyap = "n/a" if self.lyapunov is None else f"{self.lyapunov:.3g} ± {self.lyapunov_stderr:.2g}"
        disp = ("none" if not self.stationary.exists
                else f"‖m∞‖ = {self.stationary.displacement:.4g}, "
                     f"rms {self.stationary.rms_distance:.4g}")
        return (
            f"{self.outcome} within {self.steps} steps ({self.notion}; {self.reason}). "
            f"P(leave radius {self.radius:.4g}) = {self.leave_probability:.2f}; "
            f"mean square {'leaves' if self.mean_square_leaves else 'stays'} "
            f"(E‖δ_K‖² = {self.expected_sq_distance[-1]:.4g}); ρ(T) = {self.rate:.6g}; "
            f"λ₁ = {lyap}; stationary displacement: {disp}; null-space drift "
            f"{self.null_drift:.3g}/step."
            + self._cost_text()
        )


def _default_start(dyn, start, replicas, seed):
    """(start for the exact moments, per-replica starts for Monte Carlo, ‖δ_0‖)."""
    if start is not None:
        s0 = check_finite_array(start, "start", ndim=1)
        if s0.shape != (dyn.dim,):
            raise ValueError(f"start must have shape ({dyn.dim},), got {s0.shape}")
        return s0, s0, float(np.linalg.norm(s0))
    if dyn.has_drift:
        return None, None, 0.0
    # isotropic unit perturbation on the span: E[δ0δ0ᵀ] = U Uᵀ / r (no d×d matrix formed)
    from .span import lift

    z = np.random.default_rng(seed).standard_normal((replicas, dyn.r))
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    return "span", lift(dyn.basis, z), 1.0


def _default_radius(dyn, start_norm, escape_factor):
    """escape_factor × ‖δ_0‖, or × the RMS one-step drift √E‖b‖² from w*; 0.0 if neither."""
    if start_norm > 0:
        return escape_factor * start_norm
    if dyn.has_drift:
        M1, _ = affine_step(dyn, np.zeros((dyn.p, dyn.p)), np.zeros(dyn.p))
        return escape_factor * math.sqrt(max(np.trace(M1), 0.0))
    return 0.0


@analysis({"steps": at_least(1), "start": [None, Array(ndim=1)], "radius": [None, *POSITIVE],
           "replicas": at_least(2), "seed": [None, *at_least(0), InstanceOf(np.random.SeedSequence)],
           "notion": [Options((ALMOST_SURE, MEAN_SQUARE))], "escape_factor": POSITIVE,
           "lyapunov": BOOL, "forget_fitted": [None, *UNIT], "rate": [None, *NON_NEGATIVE]},
          blas=False)
def forecast(hs: HessianSet | Dynamics, schedule: Schedule | int | None = None,
             steps: int | None = None, *, start: npt.ArrayLike | None = None,
             radius: float | None = None, replicas: int = 256,
             seed: int | np.random.SeedSequence | None = None, notion: str = ALMOST_SURE,
             escape_factor: float = 10.0, lyapunov: bool = True,
             forget_fitted: float | None = None, rate: float | None = None) -> ForecastResult:
    """Does the model leave w* within ``steps`` steps? Exact moments + Monte Carlo (contract §8).

    Accepts ``(hs, schedule, steps)`` or ``(dynamics, steps)``. See the module docstring for the
    criterion and the defaults. ``replicas`` ≥ 2 Monte Carlo runs of the affine linearised
    recursion (numba, drift included; reproducible from ``seed``, independent of thread count);
    ``lyapunov=False`` skips the almost-sure exponent used only to *name* the mechanism.
    ``forget_fitted`` (optional, in [0, 1]): the fraction of forget samples the model fits at w*
    (e.g. :func:`rmt.models.fitted_fraction`); below 1/2 the result's ``cost`` flags
    ``nothing_to_forget``. ``rate``: ρ(T) of these dynamics when the caller already has it
    (e.g. ``rmt analyze``), so it is not recomputed; it is not checked.
    """
    from .meansquare import mean_square_rate
    from .montecarlo import affine_paths
    from .montecarlo import lyapunov as _lyapunov

    dyn = as_dynamics(hs, cast("Schedule | None", schedule))  # rmt.api.analysis: a Dynamics
    if steps is None:
        raise TypeError("forecast needs steps (the horizon)")
    steps = check_int(steps, "steps", minimum=1)
    replicas = check_int(replicas, "replicas", minimum=2)
    check_choice(notion, "notion", (ALMOST_SURE, MEAN_SQUARE))
    escape_factor = check_positive(escape_factor, "escape_factor")
    if escape_factor <= 1.0:
        raise ValueError(f"escape_factor must be > 1, got {escape_factor}")
    if radius is not None:
        radius = check_positive(radius, "radius")
    if forget_fitted is not None:
        forget_fitted = float(forget_fitted)
        if not 0.0 <= forget_fitted <= 1.0:
            raise ValueError(f"forget_fitted must be a fraction in [0, 1], got {forget_fitted!r}")
    if not isinstance(seed, np.random.SeedSequence):
        seed = np.random.SeedSequence(None if seed is None else check_int(seed, "seed", minimum=0))
    # fixed children (not spawn(), which would mutate a caller's SeedSequence)
    kids = [np.random.SeedSequence(seed.entropy, spawn_key=seed.spawn_key + (i,)) for i in range(3)]
    exact_start, mc_start, start_norm = _default_start(dyn, start, replicas, kids[0])
    if radius is None:
        radius = _default_radius(dyn, start_norm, escape_factor)
        if not radius > 0:
            raise ValueError("start is 0 and there is no drift: nothing moves; pass start "
                             "(a perturbation of w*) or radius")

    mom = affine_moments(dyn, steps, start=exact_start)
    esq = mom.expected_sq_distance[1:]
    ms_leaves = bool(np.max(esq) >= radius**2)
    paths = affine_paths(dyn, steps=steps, replicas=replicas, seed=kids[1],
                         start=mc_start)
    log_r = math.log(radius)
    left = np.any(paths.log_norm[:, 1:] >= log_r, axis=1)
    p_leave = float(left.mean())
    as_leaves = bool(2 * int(left.sum()) > replicas)
    if rate is None:
        rate = float(mean_square_rate(dyn))
    else:
        rate = float(rate)
        if not (math.isfinite(rate) and rate >= 0):
            raise ValueError(f"rate must be ρ(T) ≥ 0 (finite), got {rate!r}")
    st = stationary(dyn, rate=rate)
    lyap = lyap_se = None
    if lyapunov:
        ly = _lyapunov(dyn, steps=max(min(steps, 2000), 20), replicas=min(replicas, 64),
                       seed=kids[2])
        lyap, lyap_se = float(ly.exponent), float(ly.stderr)
    leaves = as_leaves if notion == ALMOST_SURE else ms_leaves
    log_f = math.log(escape_factor)
    if not leaves:
        outcome = "returns"
        reason = f"stays within radius {radius:.4g} ({notion})"
    elif notion == ALMOST_SURE and lyap is not None and lyap * steps >= log_f:
        outcome, reason = "escapes", f"almost-sure growth: λ₁·K = {lyap * steps:.3g} ≥ ln F"
    elif notion == MEAN_SQUARE and rate > 1 and steps * math.log(rate) >= 2 * log_f:
        outcome, reason = "escapes", f"mean-square growth: ρ(T)^K = e^{steps * math.log(rate):.3g} ≥ F²"
    elif not st.exists and steps * st.null_drift >= 0.5 * radius:
        outcome = "escapes"
        reason = (f"linear drift outside the span of the Hessians: K·‖E[b]_V‖ = "
                  f"{steps * st.null_drift:.4g} ≥ radius/2")
    elif not st.exists and math.sqrt(steps) * st.null_spread >= 0.5 * radius:
        outcome = "escapes"
        reason = (f"random-walk drift outside the span of the Hessians (zero mean, spread "
                  f"{st.null_spread:.3g} per step): √K·spread = "
                  f"{math.sqrt(steps) * st.null_spread:.4g} ≥ radius/2, unbounded")
    elif st.exists:
        outcome = "displaced"
        reason = (f"displaced fixed point: ‖m∞‖ = {st.displacement:.4g}, stationary rms "
                  f"distance {st.rms_distance:.4g} vs radius {radius:.4g}")
    else:
        outcome = "displaced"
        grow = ("" if lyap is None else f"λ₁·K = {lyap * steps:.3g} < ln F = {log_f:.3g}; ")
        reason = ("left the ball without growth past the escape factor within the horizon "
                  f"({grow}ρ(T) = {rate:.6g}, no stationary state)")
    return ForecastResult(
        outcome=outcome, reason=reason, notion=notion, radius=float(radius), steps=steps,
        replicas=replicas, escape_factor=float(escape_factor), start_norm=start_norm,
        leave_probability=p_leave, mean_square_leaves=ms_leaves, almost_sure_leaves=as_leaves,
        rate=rate, lyapunov=lyap, lyapunov_stderr=lyap_se, null_drift=st.null_drift,
        stationary=st, expected_sq_distance=esq, mean_path_norm=mom.mean_norm[1:],
        final_distance=np.exp(paths.log_norm[:, -1]),
        cost=forgetting_cost(dyn, mom, forget_fitted=forget_fitted),
    )


@analysis({"dyn": HS, "moments": [InstanceOf(AffineMoments)], "forget_fitted": [None, *UNIT]},
          dynamics=False, blas=False)
def forgetting_cost(dyn: HessianSet | Dynamics, moments: AffineMoments, *,
                    forget_fitted: float | None = None) -> ForgettingCost | None:
    """:class:`ForgettingCost` at the last step of exact ``moments`` (:func:`rmt.affine_moments`).

    Works in the [U, V] coordinates of the moments: per-set factor and gradient coordinates come
    from :meth:`HessianSet.factor_coordinates` / ``gradient_coordinates`` (from the joint Gram at
    large d, no pass over d); no d×d matrix is formed. A shared curvature C = λI + QQᵀ enters
    H̄_S as λI_p + (WᵀQ)(WᵀQ)ᵀ; the part of the start outside [U, V] (a random start's null
    component) is not counted.
    """
    from .span import hstack_bases, project

    dyn = as_dynamics(dyn)
    hs = dyn.hs
    W = hstack_bases(dyn.basis, dyn.drift_basis)  # (d, p), orthonormal columns
    M = np.asarray(moments.M_final, float)
    m = np.asarray(moments.mean[-1], float)
    nothing = None if forget_fitted is None else bool(forget_fitted < 0.5)
    if not np.all(np.isfinite(M)) or not np.all(np.isfinite(m)):
        return ForgettingCost(math.inf, math.inf, math.nan, math.nan, nothing)
    p = M.shape[0]
    C = np.zeros((p, p))
    if hs.has_shared:
        C += hs.shared_scalar * np.eye(p)
        if hs.shared_factor is not None:
            Qc = project(W, hs.shared_factor.T).T  # (p, k)
            C += Qc @ Qc.T
    w_top = np.linalg.eigh(M)[1][:, -1] if p else np.zeros(0)
    rises, overlaps = {}, {}
    for which in ("retain", "forget"):
        if which == "forget" and not hs.has_forget:
            rises[which], overlaps[which] = 0.0, math.nan
            continue
        Fc = hs.factor_coordinates(which, W)  # (n, k, p)
        n = Fc.shape[0]
        Fc = Fc.reshape(-1, p)
        Hc = Fc.T @ Fc / n + C
        g = hs.gradient_coordinates(which, W)
        lin = float(g.mean(axis=0) @ m) if g is not None else 0.0
        rises[which] = lin + 0.5 * float(np.sum(Hc * M))
        G = hs.factor_gram(which)
        top = (float(np.linalg.eigvalsh(G / n)[-1]) if G.size else 0.0)
        if hs.has_shared:  # λ_max(H̄ + C) ≤ λ_max(H̄) + ‖C‖: exact for λI, an upper bound else
            top += hs.shared_scalar + (0.0 if hs.shared_factor is None else float(
                np.linalg.norm(hs.shared_factor, 2) ** 2))
        overlaps[which] = float(w_top @ Hc @ w_top / top) if top > 0 and p else 0.0
    return ForgettingCost(
        forget_loss_rise=rises["forget"], retain_loss_rise=rises["retain"],
        escape_overlap_retain=overlaps["retain"], escape_overlap_forget=overlaps["forget"],
        nothing_to_forget=nothing)


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
           "grid": at_least(2), "rtol": TOLERANCE}, blas=False)
def horizon_critical(hs: HessianSet | Dynamics, schedule: Schedule | None, parameter: str,
                     steps: int, *, start: npt.ArrayLike | None = None,
                     radius: float | None = None, escape_factor: float = 10.0, grid: int = 48,
                     rtol: float = 1e-6) -> HorizonCritical:
    """Critical η, α or B at a horizon of ``steps`` steps (exact mean square, start-aware).

    The model *leaves* when max_{k ≤ steps} E‖w_k − w*‖² ≥ radius² (the mean-square notion of
    :func:`forecast`; radius and start default as there, evaluated once at ``schedule``). η: the
    smallest η in (0, 4/λ_max(D)] that leaves; α: the smallest α in [0, 1]; B: the smallest batch
    that stays inside. Located by a scan of ``grid`` points refined by bisection — a window
    narrower than one grid cell can be missed (unlike the exact asymptotic values).
    """
    from .meansquare import critical_alpha, critical_batch, critical_eta

    dyn = as_dynamics(hs, schedule)
    check_choice(parameter, "parameter", ("eta", "alpha", "batch"))
    steps = check_int(steps, "steps", minimum=1)
    exact_start, _, start_norm = _default_start(dyn, start, 2, np.random.SeedSequence(0))
    if radius is None:
        radius = _default_radius(dyn, start_norm, escape_factor) or escape_factor
    radius = check_positive(radius, "radius")

    def excess(**change: Any) -> float:
        try:
            d2 = dyn.replace(**change)
            m = affine_moments(d2, steps, start=exact_start).expected_sq_distance
        except FloatingPointError:
            return math.inf
        return float(np.max(m[1:]) - radius**2)

    share = None
    if parameter == "batch":
        sizes = [t.n for t in dyn.terms if t.name == "retain" or dyn.schedule.forget_batch is None]
        value: float | None = None
        for B in range(1, min(sizes) + 1):
            if excess(batch=B) < 0:
                value = B
                break
        return HorizonCritical("batch", value, critical_batch(dyn), steps, float(radius))
    if parameter == "alpha":
        share = out_of_span_share(dyn.hs)
        pts = np.linspace(0.0, 1.0, grid + 1)
        asym = critical_alpha(dyn.hs, dyn.schedule)
        f = lambda a: excess(alpha=float(a))  # noqa: E731
    else:
        D = dyn.mixed_hessian()
        lam = float(np.max(np.abs(np.linalg.eigvals(D))))
        pts = np.geomspace(1e-3 / lam, 4.0 / lam, grid)
        asym = critical_eta(dyn)
        f = lambda e: excess(eta=float(e))  # noqa: E731
    prev, value = None, None
    for x in pts:
        if f(x) >= 0:
            if prev is None:
                value = float(x)
            else:
                lo, hi = prev, x
                while hi - lo > rtol * hi:
                    mid = 0.5 * (lo + hi)
                    lo, hi = (lo, mid) if f(mid) >= 0 else (mid, hi)
                value = float(hi)
            break
        prev = x
    return HorizonCritical(parameter, value, asym, steps, float(radius), share)
