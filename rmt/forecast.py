"""Finite-horizon forecasts of unlearning: does the model leave w* within ``steps`` steps?
(THEORY.md §8, "Finite horizon").

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

import numpy as np

from ._validation import check_choice, check_finite_array, check_int, check_positive
from .affine import StationaryResult, affine_moments, affine_step, stationary
from .dynamics import Dynamics, as_dynamics
from .verdict import ALMOST_SURE, MEAN_SQUARE, verdict_text

__all__ = ["ForecastResult", "forecast", "OUTCOMES"]

#: The three forecast outcomes (module docstring).
OUTCOMES = ("escapes", "displaced", "returns")


@dataclass(frozen=True)
class ForecastResult:
    """A finite-horizon forecast (module docstring for the criterion).

    ``expected_sq_distance`` (steps,) exact E‖w_k − w*‖² for k = 1..steps; ``mean_path_norm``
    (steps,) = ‖E[w_k] − w*‖; ``final_distance`` (replicas,) Monte Carlo ‖w_K − w*‖ (inf when a
    run overflowed); ``leave_probability`` = fraction of replicas with ‖δ_k‖ ≥ radius for some
    k ≤ K; ``outcome`` ∈ {"escapes", "displaced", "returns"}; ``reason``; ``notion`` (the
    deciding notion); ``mean_square_leaves`` / ``almost_sure_leaves`` (each notion's answer);
    ``rate`` ρ(T); ``lyapunov`` λ₁ (homogeneous part, almost-sure; None if not computed);
    ``lyapunov_stderr``; ``stationary`` (:class:`rmt.affine.StationaryResult`);
    ``null_drift`` ‖E[b]_V‖ per step; ``radius``, ``start_norm``, ``steps``, ``replicas``,
    ``escape_factor``.
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

    @property
    def forgets(self) -> bool:
        """The model leaves the ball of ``radius`` within the horizon (escapes or displaced)."""
        return self.outcome != "returns"

    @property
    def verdict(self) -> str:
        return verdict_text(self.forgets)

    @property
    def notions_disagree(self) -> bool:
        """The mean-square and almost-sure answers differ (rare runs dominate E‖δ‖²)."""
        return self.mean_square_leaves != self.almost_sure_leaves

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
    # isotropic unit perturbation on the span: E[δ0δ0ᵀ] = U Uᵀ / r
    z = np.random.default_rng(seed).standard_normal((replicas, dyn.r))
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    U = dyn.basis
    return (U @ U.T) / dyn.r, z @ U.T, 1.0


def forecast(hs, schedule=None, steps=None, *, start=None, radius=None, replicas=256, seed=None,
             notion=ALMOST_SURE, escape_factor=10.0, lyapunov=True) -> ForecastResult:
    """Does the model leave w* within ``steps`` steps? Exact moments + Monte Carlo (THEORY §8).

    Accepts ``(hs, schedule, steps)`` or ``(dynamics, steps)``. See the module docstring for the
    criterion and the defaults. ``replicas`` ≥ 2 Monte Carlo runs of the affine linearised
    recursion (numba, drift included; reproducible from ``seed``, independent of thread count);
    ``lyapunov=False`` skips the almost-sure exponent used only to *name* the mechanism.
    """
    from .meansquare import mean_square_rate
    from .montecarlo import affine_paths
    from .montecarlo import lyapunov as _lyapunov

    if isinstance(hs, Dynamics) and schedule is not None and steps is None:
        schedule, steps = None, schedule
    dyn = as_dynamics(hs, schedule)
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
    if not isinstance(seed, np.random.SeedSequence):
        seed = np.random.SeedSequence(None if seed is None else check_int(seed, "seed", minimum=0))
    # fixed children (not spawn(), which would mutate a caller's SeedSequence)
    kids = [np.random.SeedSequence(seed.entropy, spawn_key=seed.spawn_key + (i,)) for i in range(3)]
    exact_start, mc_start, start_norm = _default_start(dyn, start, replicas, kids[0])
    if radius is None:
        if start_norm > 0:
            radius = escape_factor * start_norm
        elif dyn.has_drift:
            M1, _ = affine_step(dyn, np.zeros((dyn.p, dyn.p)), np.zeros(dyn.p))
            radius = escape_factor * math.sqrt(max(np.trace(M1), 0.0))
        if not radius or not radius > 0:
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
    rate = float(mean_square_rate(dyn))
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
    elif steps * st.null_drift >= 0.5 * radius:
        outcome = "escapes"
        reason = (f"linear drift outside the span of the Hessians: K·‖E[b]_V‖ = "
                  f"{steps * st.null_drift:.4g} ≥ radius/2")
    elif st.exists:
        outcome = "displaced"
        reason = (f"displaced fixed point: ‖m∞‖ = {st.displacement:.4g}, stationary rms "
                  f"distance {st.rms_distance:.4g} vs radius {radius:.4g}")
    else:
        outcome = "displaced"
        reason = ("left the ball without growth that is visible within the horizon "
                  f"(ρ(T) = {rate:.6g} is neutral within {steps} steps)")
    return ForecastResult(
        outcome=outcome, reason=reason, notion=notion, radius=float(radius), steps=steps,
        replicas=replicas, escape_factor=float(escape_factor), start_norm=start_norm,
        leave_probability=p_leave, mean_square_leaves=ms_leaves, almost_sure_leaves=as_leaves,
        rate=rate, lyapunov=lyap, lyapunov_stderr=lyap_se, null_drift=st.null_drift,
        stationary=st, expected_sq_distance=esq, mean_path_norm=mom.mean_norm[1:],
        final_distance=np.exp(paths.log_norm[:, -1]),
    )
