"""Finite-horizon forecasts of unlearning: does the model leave w* within ``steps`` steps?
(contract §8, "Finite horizon").

The asymptotic verdict ρ(T) > 1 answers a question nobody observes: a rate of 1 + 1e-4 is
divergent in the limit and invisible within thousands of steps, and at a non-interpolating
minimum the per-sample gradients move the model even when ρ(T) < 1. A forecast answers the
observable question instead, for the affine linearised recursion δ_{k+1} = J_kδ_k + b_k:

**Ball.** The model has *left* w* when ‖δ_k‖ = ‖w_k − w*‖ ≥ ``radius`` for some k ≤ ``steps``.

**Default start and radius: a physical scale, not the gradients' size.** With ``start=None``
(with or without per-sample gradients) unlearning starts from a random perturbation of w* on the
span U of the Hessians, δ_0 = ε·u (u a random unit vector on U, per replica; exact moments use
E[δ_0δ_0ᵀ] = ε²·UUᵀ/r), plus the drift of the gradients, and

    radius = escape_factor × ε,        ε = ``scale``, or the curvature scale
    ε_H = √(2·ℓ₀·r / tr H̄_R)           (ℓ₀ = :data:`START_LOSS` = 1e-4 loss units),

H̄_R the mean retain Hessian on U (its shared curvature included; all active sets' if the retain
mean vanishes on U): ε_H is the length along an average direction of U at which the quadratic
retain loss rises by ℓ₀, so the ball (F = 10) is a retain-loss rise of F²ℓ₀ = 0.01 along such a
direction. ε depends on the curvature only, never on the gradients: a drift at round-off level
(gradients 1e−14 at an interpolating minimum) moves the model by round-off and cannot change
the verdict, and with zero gradients the rule is the scale-free "random start, radius
F × ‖δ_0‖" protocol. Pass ``scale`` (e.g. 1e−3·‖w*‖) for a scale of your own or ``radius``
for the ball directly. Without a span (r = 0: only a drift on J = I directions) there is no
curvature scale: δ_0 = 0 and radius = F × √E‖b‖² (the RMS length of one step).

A given ``start`` vector: δ_0 = start, radius = escape_factor × ‖start‖ (or ``radius``).

**Notion.** ``notion="almost-sure"`` (default) asks whether a *typical run* leaves the ball: more
than half of the Monte Carlo replicas do. ``notion="mean-square"`` asks whether the exact
E‖δ_k‖² reaches radius² for some k ≤ steps; it is dominated by rare runs at small batches and is
always reported beside the verdict (``mean_square_leaves``).

**Verdict** (field ``outcome``), with ``reason``:

* ``"escapes"``: leaves the ball and keeps going — almost-sure growth (λ₁·steps ≥ ln
  escape_factor; mean square: ρ(T)^steps ≥ escape_factor²) or linear drift outside the span of
  the Hessians (steps·‖E[b]_V‖ ≥ radius/2; J = I there so nothing pulls it back);
* ``"displaced"``: leaves the ball and a stationary state exists (ρ(T) < 1, no drift outside the
  span): the model settles at a displaced fixed point m∞ (or in a stationary cloud around it) —
  unlearning moved it a finite distance. The stationary figures ‖m∞‖ and √tr M∞ are K → ∞
  values; the distance *reached at the horizon* (‖E[δ_K]‖, exact, and the median Monte Carlo
  ‖δ_K‖) is reported beside them (``horizon_displacement``, ``horizon_median_distance``);
* left the ball without growth past the escape factor and **no** stationary state (ρ(T) ≥ 1):
  ``"escapes"`` (the second moment grows without bound beyond the horizon; the reason says
  the growth is slow);
* ``"returns"``: stays inside the ball.

``forgets`` is True for "escapes" and "displaced" (the model left w*), with ``verdict`` and
``notion`` as in :mod:`rmt.verdict`.

**Cost** (:class:`ForgettingCost`, second order at K): valid while the RMS distance at K stays
within √(2·:data:`COST_LOSS`·r / tr H̄_R) (the length along an average span direction at which
the quadratic retain loss rises by one loss unit); outside, ``valid`` is False and the summary
says "INVALID".

**Cost of the call.** The exact second-moment recursion runs only when the verdict needs it
(``notion="mean-square"``) or when ``expected_sq_distance`` / ``mean_square_leaves`` /
``cost`` are first read (same values). Long calls show a tqdm bar (``progress=``, or
``RMT_PROGRESS=0/1``; :mod:`rmt.progress`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from .validation import check_choice, check_finite_array, check_int, check_positive
from .affine import AffineMoments, StationaryResult, affine_step, stationary
from .api import (BOOL, HS, NON_NEGATIVE, POSITIVE, UNIT, InstanceOf,
                  analysis, at_least)
from .validation import Array, Options
from .dynamics import Dynamics, as_dynamics
from .hessians import HessianSet
from .schedule import Schedule
from .verdict import ALMOST_SURE, MEAN_SQUARE, OutcomeVerdict

__all__ = ["ForecastResult", "forecast", "OUTCOMES", "ForgettingCost", "forgetting_cost", "curvature_scale",
           "START_LOSS", "COST_LOSS"]

#: The three forecast outcomes (module docstring).
OUTCOMES = ("escapes", "displaced", "returns")

#: ℓ₀ of the default start scale ε_H = √(2ℓ₀·r / tr H̄_R) (module docstring), in loss units.
START_LOSS = 1e-4
#: The second-order loss prediction (:class:`ForgettingCost`) is taken valid while the RMS
#: distance at the horizon stays within √(2·COST_LOSS·r / tr H̄_R): the length along an average
#: span direction at which the quadratic retain loss rises by one loss unit (a nat for
#: cross-entropy), beyond which a Taylor expansion about w* is not assured.
COST_LOSS = 1.0


@analysis({"dyn": [InstanceOf(Dynamics)], "loss": POSITIVE}, dynamics=False, blas=False)
def curvature_scale(dyn: Dynamics, loss: float = START_LOSS) -> float | None:
    """√(2·loss·n_U / tr_U H̄_R): the length along an average direction of the start subspace at
    which the quadratic retain loss rises by ``loss`` (module docstring); None without curvature.

    The start subspace is the Hessian span U (n_U = r) or, with a shared curvature λI (which acts
    off the span too), all of R^d (n_U = d; tr adds λ(d − r)). H̄_R is the mean retain Hessian
    (with its shared curvature); when it vanishes there (a forget-only span), the sum of the
    active sets' means is used. ``dyn``: a :class:`rmt.Dynamics` (the span depends on the active
    sets of the schedule)."""
    r = dyn.r
    full = bool(dyn.has_null_mode)
    dim = dyn.dim if full else r
    if dim == 0:
        return None
    off = dyn.shared_scalar * (dim - r) if full else 0.0
    tr = sum(float(np.trace(t.mean)) + off for t in dyn.terms if t.name == "retain")
    if not tr > 0:
        tr = sum(float(np.trace(t.mean)) + off for t in dyn.terms)
    if not (tr > 0 and math.isfinite(tr)):
        return None
    return math.sqrt(2.0 * float(loss) * dim / tr)


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

    **Validity.** ``rms_distance`` = √E‖δ_K‖² (the frozen part of a start included);
    ``valid_range`` = √(2·:data:`COST_LOSS`·r / tr H̄_R) (the distance along an average span
    direction at which the quadratic retain loss rises by one loss unit; inf without
    curvature); ``valid`` = the moments are finite and ``rms_distance`` ≤ ``valid_range``.
    Outside that range the numbers are still the second-order prediction but no longer a
    forecast of the loss (the summary says so).
    """

    forget_loss_rise: float
    retain_loss_rise: float
    escape_overlap_retain: float
    escape_overlap_forget: float
    nothing_to_forget: bool | None = None
    rms_distance: float = math.nan
    valid_range: float = math.inf
    valid: bool = True

    @property
    def selectivity(self) -> float:
        if self.retain_loss_rise == 0:
            return math.inf if self.forget_loss_rise > 0 else math.nan
        return self.forget_loss_rise / abs(self.retain_loss_rise)

    @property
    def validity(self) -> str:
        """The validity statement printed by :meth:`summary` ("" when valid)."""
        if self.valid:
            return ""
        return (f"INVALID: RMS distance at K {self.rms_distance:.4g} is outside the validity "
                f"range {self.valid_range:.4g} of the second-order prediction (the retain loss "
                f"would rise by {COST_LOSS:g} loss unit along an average span direction)")

    def summary(self) -> str:
        flag = " (nothing to forget: the model never fitted the forget samples)" \
            if self.nothing_to_forget else ""
        valid = f" [{self.validity}]" if not self.valid else ""
        return (f"forget loss +{self.forget_loss_rise:.4g}, retain loss "
                f"{self.retain_loss_rise:+.4g}; escape direction sees "
                f"{self.escape_overlap_retain:.2f} of the retain and "
                f"{self.escape_overlap_forget:.2f} of the forget top curvature{flag}{valid}")


class _Exact:
    """What the exact moments of a forecast need, computed on first access (not pickled lazily:
    the moments are computed before pickling)."""

    def __init__(self, dyn, steps, start, forget_fitted, progress):
        self.dyn, self.steps, self.start = dyn, steps, start
        self.forget_fitted, self.progress = forget_fitted, progress
        self._moments = None

    @property
    def moments(self) -> AffineMoments:
        if self._moments is None:
            from .affine import _run_moments
            from .progress import bar

            M0, m0, frozen = self.start
            with bar(self.steps, "forecast: exact moments", progress=self.progress,
                     unit="step") as b:
                self._moments = _run_moments(self.dyn, self.steps, M0, m0, frozen,
                                             tick=b.update)
        return self._moments

    def __getstate__(self):
        self.moments  # noqa: B018 (computed before pickling)
        return self.__dict__


@dataclass(frozen=True)
class ForecastResult(OutcomeVerdict):
    """A finite-horizon forecast (module docstring for the criterion).

    ``outcome`` ∈ {"escapes", "displaced", "returns"}; ``reason``; ``notion`` (the deciding
    notion); ``almost_sure_leaves``; ``final_distance`` (replicas,) Monte Carlo ‖w_K − w*‖ (inf
    when a run overflowed); ``leave_probability`` = fraction of replicas with ‖δ_k‖ ≥ radius for
    some k ≤ K; ``rate`` ρ(T); ``lyapunov`` λ₁ (homogeneous part, almost-sure; None if not
    computed); ``lyapunov_stderr``; ``stationary`` (:class:`rmt.affine.StationaryResult`: K → ∞
    figures); ``null_drift`` ‖E[b]_V‖ per step; ``radius``, ``start_norm`` (‖δ_0‖ of the default
    start = ``scale``), ``steps``, ``replicas``, ``escape_factor``; ``scale`` (ε of the default
    start, None for a given start) and ``scale_rule`` (how ε and the radius were set, printed by
    :meth:`summary`); ``mean_path_norm`` (steps,) = ‖E[w_k] − w*‖ (exact mean recursion);
    ``horizon_displacement`` = ‖E[w_K] − w*‖ and ``horizon_median_distance`` = median of
    ``final_distance``: how far the model got *within* the horizon, beside the stationary ‖m∞‖.

    Computed on first access (the default almost-sure verdict does not need them; same values
    as an eager computation): ``expected_sq_distance`` (steps,) exact E‖w_k − w*‖² for
    k = 1..steps, ``mean_square_leaves`` (max_k E‖δ_k‖² ≥ radius²) and ``cost``
    (:class:`ForgettingCost`, with its validity flag).
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
    almost_sure_leaves: bool
    rate: float
    lyapunov: float | None
    lyapunov_stderr: float | None
    null_drift: float
    stationary: StationaryResult = field(repr=False)
    mean_path_norm: np.ndarray = field(repr=False)
    final_distance: np.ndarray = field(repr=False)
    scale: float | None = None
    scale_rule: str = ""
    horizon_displacement: float = math.nan
    horizon_median_distance: float = math.nan
    _exact: Any = field(default=None, repr=False, compare=False)

    @cached_property
    def expected_sq_distance(self) -> np.ndarray:
        """(steps,) exact E‖w_k − w*‖² for k = 1..steps (computed on first access)."""
        return self._exact.moments.expected_sq_distance[1:]

    @cached_property
    def mean_square_leaves(self) -> bool:
        """The exact max_{k ≤ K} E‖δ_k‖² reaches radius² (the mean-square notion's answer)."""
        return bool(np.max(self.expected_sq_distance) >= self.radius**2)

    @cached_property
    def cost(self) -> ForgettingCost | None:
        """:class:`ForgettingCost` at K with its validity flag (computed on first access)."""
        ex = self._exact
        return forgetting_cost(ex.dyn, ex.moments, forget_fitted=ex.forget_fitted)

    @property
    def notions_disagree(self) -> bool:
        """The mean-square and almost-sure answers differ (rare runs dominate E‖δ‖²)."""
        return self.mean_square_leaves != self.almost_sure_leaves

    def _cost_text(self) -> str:
        c = self.cost
        if c is None:
            return ""
        if self.outcome == "escapes":  # second order is meaningless after an escape
            return (f" Cost: the model escapes, beyond the range of the second-order loss "
                    f"prediction (at K: {c.summary()}).")
        return f" Cost at K: {c.summary()}."

    def summary(self) -> str:
        """One paragraph for reports and the CLI."""
        lyap = "n/a" if self.lyapunov is None else f"{self.lyapunov:.3g} ± {self.lyapunov_stderr:.2g}"
        disp = ("none" if not self.stationary.exists
                else f"‖m∞‖ = {self.stationary.displacement:.4g}, "
                     f"rms {self.stationary.rms_distance:.4g} (K → ∞)")
        return (
            f"{self.outcome} within {self.steps} steps ({self.notion}; {self.reason}). "
            f"Ball: {self.scale_rule}. "
            f"P(leave radius {self.radius:.4g}) = {self.leave_probability:.2f}; "
            f"mean square {'leaves' if self.mean_square_leaves else 'stays'} "
            f"(E‖δ_K‖² = {self.expected_sq_distance[-1]:.4g}); ρ(T) = {self.rate:.6g}; "
            f"λ₁ = {lyap}; stationary displacement: {disp}; reached at K: ‖E[δ_K]‖ = "
            f"{self.horizon_displacement:.4g}, median ‖δ_K‖ = "
            f"{self.horizon_median_distance:.4g}; null-space drift {self.null_drift:.3g}/step."
            + self._cost_text()
        )


def _default_start(dyn, start, replicas, seed, scale=None):
    """(exact start (M0, m0, frozen), per-replica starts for Monte Carlo, ‖δ_0‖, ε or None).

    A given ``start``: that vector (ε None). Else δ_0 = ε·u, u a random unit vector on the span
    (per replica; exact: E[δ_0δ_0ᵀ] = ε²UUᵀ/r), ε = ``scale`` or :func:`curvature_scale`; without
    a span δ_0 = 0 (‖δ_0‖ = 0, ε None)."""
    from .affine import start_coordinates

    if start is not None:
        s0 = check_finite_array(start, "start", ndim=1)
        if s0.shape != (dyn.dim,):
            raise ValueError(f"start must have shape ({dyn.dim},), got {s0.shape}")
        return start_coordinates(dyn, s0), s0, float(np.linalg.norm(s0)), None
    eps = float(scale) if scale is not None else curvature_scale(dyn)
    full = bool(dyn.has_null_mode)  # a shared λI: the curvature acts on all of R^d
    n = dyn.dim if full else dyn.r
    if n == 0 or eps is None:
        return start_coordinates(dyn, None), None, 0.0, None
    # isotropic perturbation of norm ε on the span (E[δ0δ0ᵀ] = ε² U Uᵀ / r, no d×d matrix), or
    # on R^d with a shared λI (ε²/d on [U, V], the rest frozen up to the null scalar)
    from .span import lift

    p = dyn.p
    M0 = np.zeros((p, p))
    z = np.random.default_rng(seed).standard_normal((replicas, n))
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    if full:
        M0[:] = (eps**2 / n) * np.eye(p)
        return (M0, np.zeros(p), eps**2 * (n - p) / n), eps * z, eps, eps
    M0[: dyn.r, : dyn.r] = (eps**2 / dyn.r) * np.eye(dyn.r)
    return (M0, np.zeros(p), 0.0), eps * lift(dyn.basis, z), eps, eps


def _default_radius(dyn, start_norm, escape_factor, scale, given_start, user_scale):
    """(radius, rule text): escape_factor × ‖δ_0‖, or × the RMS one-step drift without a span."""
    F = escape_factor
    if given_start:
        return F * start_norm, f"radius = {F:g} × ‖start‖ = {F * start_norm:.4g}"
    if scale is not None:
        how = ("ε = scale" if user_scale else
               f"ε = √(2ℓ₀·r/tr H̄_R), ℓ₀ = {START_LOSS:g}: the curvature scale")
        return F * scale, (f"random start of norm ε = {scale:.4g} on the Hessian span ({how}), "
                           f"radius = {F:g}ε = {F * scale:.4g}")
    if dyn.has_drift:
        M1, _ = affine_step(dyn, np.zeros((dyn.p, dyn.p)), np.zeros(dyn.p))
        rad = F * math.sqrt(max(np.trace(M1), 0.0))
        return rad, (f"no Hessian span (no curvature scale): start at w*, radius = {F:g} × RMS "
                     f"step = {rad:.4g}")
    return 0.0, "nothing moves"


def _mean_path(dyn: Dynamics, steps: int, m0: np.ndarray) -> np.ndarray:
    """‖E[δ_k]‖ for k = 0..steps from the exact mean recursion m' = E[J]m + E[b] (cheap: r² per
    step; [U, V] coordinates, the frozen part of a start left out as in the moments)."""
    r, p = dyn.r, dyn.p
    A = np.asarray(dyn.mean_map, float)
    a_v = dyn.null_mean if (dyn.has_null_mode and p > r) else 1.0
    bbar = dyn.mean_drift()
    m = np.array(m0, float)
    out = np.empty(steps + 1)
    with np.errstate(over="ignore", invalid="ignore"):
        for k in range(steps + 1):
            out[k] = np.linalg.norm(m)
            if not np.isfinite(out[k]):
                out[k:] = np.inf
                break
            if k < steps:
                m = np.concatenate([A @ m[:r], a_v * m[r:]]) + bbar
    return out


@analysis({"steps": at_least(1), "start": [None, Array(ndim=1)], "radius": [None, *POSITIVE],
           "replicas": at_least(2), "seed": [None, *at_least(0), InstanceOf(np.random.SeedSequence)],
           "notion": [Options((ALMOST_SURE, MEAN_SQUARE))], "escape_factor": POSITIVE,
           "lyapunov": BOOL, "forget_fitted": [None, *UNIT], "rate": [None, *NON_NEGATIVE],
           "scale": [None, *POSITIVE], "progress": [None, *BOOL]},
          blas=False)
def forecast(hs: HessianSet | Dynamics, schedule: Schedule | int | None = None,
             steps: int | None = None, *, start: npt.ArrayLike | None = None,
             radius: float | None = None, replicas: int = 256,
             seed: int | np.random.SeedSequence | None = None, notion: str = ALMOST_SURE,
             escape_factor: float = 10.0, lyapunov: bool = True,
             forget_fitted: float | None = None, rate: float | None = None,
             scale: float | None = None, progress: bool | None = None) -> ForecastResult:
    """Does the model leave w* within ``steps`` steps? Exact moments + Monte Carlo (contract §8).

    Accepts ``(hs, schedule, steps)`` or ``(dynamics, steps)``. See the module docstring for the
    criterion and the defaults: with ``start=None`` a random start of norm ε on the Hessian span
    and ``radius`` = ``escape_factor`` × ε, ε = ``scale`` or the curvature scale
    √(2ℓ₀·r/tr H̄_R) (ℓ₀ = :data:`START_LOSS`), never the gradients' size. ``replicas`` ≥ 2
    Monte Carlo runs of the affine linearised recursion (numba, drift included; reproducible
    from ``seed``, independent of thread count); ``lyapunov=False`` skips the almost-sure
    exponent used only to *name* the mechanism. ``forget_fitted`` (optional, in [0, 1]): the
    fraction of forget samples the model fits at w* (e.g. :func:`rmt.models.fitted_fraction`);
    below 1/2 the result's ``cost`` flags ``nothing_to_forget``. ``rate``: ρ(T) of these
    dynamics when the caller already has it (e.g. ``rmt analyze``), so it is not recomputed; it
    is not checked. ``progress``: a tqdm bar on stderr (None: ``RMT_PROGRESS``, else only on a
    terminal; :mod:`rmt.progress`). The exact second-moment recursion (``expected_sq_distance``,
    ``mean_square_leaves``, ``cost``) runs only when the verdict needs it (``notion=
    "mean-square"``) or on first access of those fields.
    """
    from .meansquare import mean_square_rate
    from .montecarlo import affine_paths
    from .montecarlo import lyapunov as _lyapunov
    from .progress import bar

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
    if scale is not None:
        scale = check_positive(scale, "scale")
    if forget_fitted is not None:
        forget_fitted = float(forget_fitted)
        if not 0.0 <= forget_fitted <= 1.0:
            raise ValueError(f"forget_fitted must be a fraction in [0, 1], got {forget_fitted!r}")
    if not isinstance(seed, np.random.SeedSequence):
        seed = np.random.SeedSequence(None if seed is None else check_int(seed, "seed", minimum=0))
    # fixed children (not spawn(), which would mutate a caller's SeedSequence)
    kids = [np.random.SeedSequence(seed.entropy, spawn_key=seed.spawn_key + (i,)) for i in range(3)]
    exact_start, mc_start, start_norm, eps = _default_start(dyn, start, replicas, kids[0], scale)
    default_radius, rule = _default_radius(dyn, start_norm, escape_factor, eps,
                                           start is not None, scale is not None)
    if radius is None:
        radius = default_radius
        if not radius > 0:
            raise ValueError("start is 0 and there is no drift: nothing moves; pass start "
                             "(a perturbation of w*) or radius")
    else:
        rule = f"radius = {radius:.4g} (given); start: " + (
            "given" if start is not None else
            f"random, norm {start_norm:.4g} on the Hessian span" if start_norm > 0 else "w*")

    with bar(4 if notion == ALMOST_SURE else 5, "forecast", progress=progress,
             unit="stage") as b:
        exact = _Exact(dyn, steps, exact_start, forget_fitted, progress)
        b.set_postfix_str("Monte Carlo")
        paths = affine_paths(dyn, steps=steps, replicas=replicas, seed=kids[1],
                             start=mc_start)
        b.update()
        log_r = math.log(radius)
        left = np.any(paths.log_norm[:, 1:] >= log_r, axis=1)
        p_leave = float(left.mean())
        as_leaves = bool(2 * int(left.sum()) > replicas)
        b.set_postfix_str("ρ(T)")
        if rate is None:
            rate = float(mean_square_rate(dyn))
        else:
            rate = float(rate)
            if not (math.isfinite(rate) and rate >= 0):
                raise ValueError(f"rate must be ρ(T) ≥ 0 (finite), got {rate!r}")
        b.update()
        b.set_postfix_str("stationary state")
        st = stationary(dyn, rate=rate)
        b.update()
        lyap = lyap_se = None
        if lyapunov:
            b.set_postfix_str("Lyapunov exponent")
            ly = _lyapunov(dyn, steps=max(min(steps, 2000), 20), replicas=min(replicas, 64),
                           seed=kids[2], progress=False)
            lyap, lyap_se = float(ly.exponent), float(ly.stderr)
        b.update()
        ms_leaves = None
        if notion == MEAN_SQUARE:
            b.set_postfix_str("exact moments")
            ms_leaves = bool(np.max(exact.moments.expected_sq_distance[1:]) >= radius**2)
            b.update()
    mean_path = _mean_path(dyn, steps, exact_start[1])
    final = np.exp(paths.log_norm[:, -1])
    reached = (f"reached at K: ‖E[δ_K]‖ = {mean_path[-1]:.4g}, median ‖δ_K‖ = "
               f"{float(np.median(final)):.4g}")
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
                  f"distance {st.rms_distance:.4g} (K → ∞); {reached}; radius {radius:.4g}")
    else:
        # left the ball, no growth past F within K, and no stationary state: not "displaced"
        outcome = "escapes"
        grow = ("" if lyap is None else f"λ₁·K = {lyap * steps:.3g} < ln F = {log_f:.3g}; ")
        reason = ("left the ball and there is no stationary state (" + st.reason + "): the "
                  f"distance keeps growing beyond the horizon, slowly within it ({grow}"
                  f"ρ(T) = {rate:.6g}; {reached})")
    res = ForecastResult(
        outcome=outcome, reason=reason, notion=notion, radius=float(radius), steps=steps,
        replicas=replicas, escape_factor=float(escape_factor), start_norm=start_norm,
        leave_probability=p_leave, almost_sure_leaves=as_leaves,
        rate=rate, lyapunov=lyap, lyapunov_stderr=lyap_se, null_drift=st.null_drift,
        stationary=st, mean_path_norm=mean_path[1:], final_distance=final,
        scale=eps, scale_rule=rule, horizon_displacement=float(mean_path[-1]),
        horizon_median_distance=float(np.median(final)), _exact=exact,
    )
    if ms_leaves is not None:
        res.__dict__["mean_square_leaves"] = ms_leaves  # cached_property: already computed
    return res


@analysis({"dyn": HS, "moments": [InstanceOf(AffineMoments)], "forget_fitted": [None, *UNIT]},
          dynamics=False, blas=False)
def forgetting_cost(dyn: HessianSet | Dynamics, moments: AffineMoments, *,
                    forget_fitted: float | None = None) -> ForgettingCost | None:
    """:class:`ForgettingCost` at the last step of exact ``moments`` (:func:`rmt.affine_moments`).

    Works in the [U, V] coordinates of the moments: per-set factor and gradient coordinates come
    from :meth:`HessianSet.factor_coordinates` / ``gradient_coordinates`` (from the joint Gram at
    large d, no pass over d); no d×d matrix is formed. A shared curvature C = λI + QQᵀ enters
    H̄_S as λI_p + (WᵀQ)(WᵀQ)ᵀ; the part of the second moment outside [U, V] (a start's
    frozen component) counts through λI only (½λ·E‖δ_K outside‖²; a Q outside is not counted). Validity (``valid``, ``valid_range``, ``rms_distance``): see
    :class:`ForgettingCost`.
    """
    from .span import hstack_bases, project

    dyn = as_dynamics(dyn)
    hs = dyn.hs
    W = hstack_bases(dyn.basis, dyn.drift_basis)  # (d, p), orthonormal columns
    M = np.asarray(moments.M_final, float)
    m = np.asarray(moments.mean[-1], float)
    nothing = None if forget_fitted is None else bool(forget_fitted < 0.5)
    rms = math.sqrt(max(float(moments.expected_sq_distance[-1]), 0.0))
    rng = curvature_scale(dyn, COST_LOSS)
    rng = math.inf if rng is None else rng
    if not np.all(np.isfinite(M)) or not np.all(np.isfinite(m)):
        return ForgettingCost(math.inf, math.inf, math.nan, math.nan, nothing, math.inf, rng,
                              False)
    p = M.shape[0]
    # E‖δ_K‖² outside [U, V] (a start's frozen part): only a shared λI has curvature there
    lam = float(hs.shared_scalar) if hs.has_shared else 0.0
    rest = max(float(moments.expected_sq_distance[-1]) - float(np.trace(M)), 0.0) if lam else 0.0
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
        rises[which] = lin + 0.5 * float(np.sum(Hc * M)) + 0.5 * lam * rest
        G = hs.factor_gram(which)
        top = (float(np.linalg.eigvalsh(G / n)[-1]) if G.size else 0.0)
        if hs.has_shared:  # λ_max(H̄ + C) ≤ λ_max(H̄) + ‖C‖: exact for λI, an upper bound else
            top += hs.shared_scalar + (0.0 if hs.shared_factor is None else float(
                np.linalg.norm(hs.shared_factor, 2) ** 2))
        overlaps[which] = float(w_top @ Hc @ w_top / top) if top > 0 and p else 0.0
    return ForgettingCost(
        forget_loss_rise=rises["forget"], retain_loss_rise=rises["retain"],
        escape_overlap_retain=overlaps["retain"], escape_overlap_forget=overlaps["forget"],
        nothing_to_forget=nothing, rms_distance=rms, valid_range=rng,
        valid=bool(math.isfinite(rms) and rms <= rng))
