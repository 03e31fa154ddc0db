"""The nonlinear unlearning loop of every model (:func:`unlearn`), its sampler
(:func:`draw_indicators`) and its result type (:class:`UnlearnResult`) — contract §2.

This is the actual update that the linearised :class:`~rmt.dynamics.Dynamics` describes, so
forecasts can be checked against real runs. How the retain and forget steps combine (summed,
alternating, SAM) is the schedule's combinator's :meth:`~rmt.combinators.Combinator.nonlinear_step`,
the same strategy object that defines the linearised step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from numbers import Integral

import numpy as np
from numpy.typing import ArrayLike

from ..api import BOOL, NON_NEGATIVE, POSITIVE, InstanceOf, analysis, at_least
from ..schedule import SAMPLING_SCHEMES, Schedule
from ..validation import Array, Options
from ..validation import check_finite_array, check_int, check_positive
from .base import LOSS, MODEL, Model, _check_data, _check_model, _mean_loss_and_grad, _resolve_loss

__all__ = ["draw_indicators", "UnlearnResult", "unlearn"]


@analysis({"rng": [InstanceOf(np.random.Generator)], "sampling": [Options(SAMPLING_SCHEMES)],
           "n": at_least(1), "batch": at_least(1)}, dynamics=False, blas=False)
def draw_indicators(rng: np.random.Generator, sampling: str, n: int, batch: int) -> np.ndarray:
    """Batch indicators/counts x (n,) for one draw of a sampling scheme (contract §2.1).

    ``bernoulli``: x_i ~ Bernoulli(B/n) i.i.d. (the batch mean divides by the nominal B);
    ``with_replacement``: counts of B i.i.d. uniform indices; ``without_replacement``: B distinct
    indices.
    """
    if sampling == "bernoulli":
        return (rng.random(n) < batch / n).astype(float)
    if sampling == "with_replacement":
        return np.bincount(rng.integers(0, n, size=batch), minlength=n).astype(float)
    if sampling == "without_replacement":
        x = np.zeros(n)
        x[rng.choice(n, size=batch, replace=False)] = 1.0
        return x
    raise ValueError(f"unknown sampling scheme {sampling!r}")


@dataclass(frozen=True)
class UnlearnResult:
    """Per-seed trajectories of :func:`unlearn`.

    ``distances`` (n_seeds, steps): ‖w_k − w*‖ for k = 1..steps (inf from the step where a run
    overflowed on; never NaN; a run stopped at ``stop_radius`` keeps its exit distance after the
    stop); ``start_norm`` ‖w_0 − w*‖ (a random start: the largest over the seeds); ``final_w``
    (n_seeds, d) last finite iterate of each run; ``retain_loss`` / ``forget_loss`` (n_seeds,)
    mean data loss at the final iterate (inf after overflow); ``overflowed`` (n_seeds,) bool;
    ``seeds``; ``steps_run`` (n_seeds,) steps taken (the overflowing or stopping step included);
    ``indicators``: with ``record=True``, per seed a dict {"retain": (steps, n_r), "forget":
    (steps, n_f)} of the batch indicators/counts drawn (only active sets), else None; ``note``.
    """

    distances: np.ndarray = field(repr=False)
    start_norm: float
    final_w: np.ndarray = field(repr=False)
    retain_loss: np.ndarray
    forget_loss: np.ndarray
    overflowed: np.ndarray
    seeds: tuple
    steps: int
    schedule: Schedule
    indicators: list | None = field(default=None, repr=False)
    note: str = ""
    steps_run: np.ndarray | None = field(default=None, repr=False)

    def left(self, radius: float) -> np.ndarray:
        """Per seed: ‖w_k − w*‖ ≥ radius for some 1 ≤ k ≤ steps (the forecast's ball)."""
        radius = check_positive(radius, "radius")
        return np.any(self.distances >= radius, axis=1)

    def first_exit(self, radius: float) -> np.ndarray:
        """Per seed: the first step k with ‖w_k − w*‖ ≥ radius, or −1 when it never leaves."""
        radius = check_positive(radius, "radius")
        hit = self.distances >= radius
        return np.where(hit.any(axis=1), hit.argmax(axis=1) + 1, -1)

    def leave_fraction(self, radius: float) -> float:
        """Fraction of seeds that left the ball (compare ``ForecastResult.leave_probability``)."""
        return float(self.left(radius).mean())


def _seeds(seed):
    """One entry per run: ints (>= 0) or ``numpy.random.SeedSequence`` objects."""
    if isinstance(seed, (Integral, np.integer)) and not isinstance(seed, bool):
        return (check_int(int(seed), "seed", minimum=0),)
    if isinstance(seed, np.random.SeedSequence):
        return (seed,)
    try:
        seq = tuple(seed)
    except TypeError:
        raise TypeError(f"seed must be an int or a sequence of ints, got {type(seed).__name__}")
    if not seq:
        raise ValueError("seed must hold at least one seed")
    return tuple(s if isinstance(s, np.random.SeedSequence)
                 else check_int(int(s) if isinstance(s, np.integer) else s, "seed", minimum=0)
                 for s in seq)


@analysis({"model": MODEL, "w_star": [Array(ndim=1)], "X_retain": [Array(ndim=2)],
           "y_retain": [Array()], "X_forget": [None, Array(ndim=2)], "y_forget": [None, Array()],
           "loss": LOSS, "schedule": [InstanceOf(Schedule)], "steps": at_least(1),
           "seed": [*at_least(0), InstanceOf(np.random.SeedSequence, list, tuple, np.ndarray)],
           "start": [None, Array(ndim=1),
                     InstanceOf(Callable)],  # type: ignore[arg-type]  # an ABC at run time
           "weight_decay": NON_NEGATIVE, "record": BOOL, "stop_radius": [None, *POSITIVE]},
          dynamics=False, blas=False)
def unlearn(model: Model, w_star: ArrayLike, X_retain: ArrayLike, y_retain: ArrayLike,
            X_forget: ArrayLike | None = None, y_forget: ArrayLike | None = None,
            loss: str | None = None, *, schedule: Schedule, steps: int,
            seed: int | np.random.SeedSequence | Sequence = 0,
            start: ArrayLike | Callable[[np.random.Generator], ArrayLike] | None = None,
            weight_decay: float = 0.0, record: bool = False,
            stop_radius: float | None = None) -> UnlearnResult:
    """Run the actual nonlinear unlearning update from w* (the object the theory linearises).

    One step, with ĝ_S(w) = (1/B_S) Σ_{i∈S} x_i ∇ℓ_i(w) (batch-mean data-loss gradient, divided
    by the *nominal* batch size, x the indicators/counts of contract §2.1):

    * ``"summed"``:      w ← w − η(1−α) ĝ_R(w) + ηα ĝ_F(w)
    * ``"alternating"``: w' = w − η(1−α) ĝ_R(w);  w ← w' + ηα ĝ_F(w')   (retain, then forget)
    * ``"sam"`` (α = 0): w ← w − η ĝ_R(w + (ρ/a) ∇L_R(w))  with the full-batch retain gradient

    Batches are drawn each step with exactly the schedule's ``sampling`` and batch sizes
    (``batch`` for retain, ``batch_forget`` for forget), independently for the two sets, retain
    first; a set with zero weight (α = 0: forget; α = 1: retain) is not drawn — the same active
    sets as :class:`rmt.Dynamics`. Linearised about w*, this is δ ↦ J δ + b of
    ``rmt.Dynamics(hessian_set(...), schedule).step(x)`` with the same indicators x (exactly so
    to first order for models linear in w; for the MLP the curvature is Gauss–Newton only).

    ``start``: perturbation δ_0 (d,) so w_0 = w* + δ_0 (None: δ_0 = 0, the drift moves it), or a
    callable ``start(rng) -> δ_0`` called once per run with that run's generator before its first
    batch is drawn (a random start per seed); ``seed``: an int, a ``numpy.random.SeedSequence``
    or a sequence of them, one trajectory per seed (numpy ``default_rng``); ``weight_decay``:
    adds λw to the retain gradient — dynamics the HessianSet does not model
    (:mod:`rmt.models.curvature`, weight decay), flagged in ``note``; ``record=True`` keeps the
    indicators drawn; ``stop_radius``: a run stops at its first step with ‖w_k − w*‖ ≥
    ``stop_radius`` (its final iterate is that w_k, ``steps_run`` says when).

    **Escape protocol.** A run *leaves* the ball of radius R when ‖w_k − w*‖ ≥ R for some
    1 ≤ k ≤ ``steps`` (:meth:`UnlearnResult.left`); :func:`rmt.forecast` uses the same
    definition, so ``result.leave_fraction(R)`` is comparable with its ``leave_probability``.
    A run that overflows gets distance inf from that step on (it left every ball).
    """
    _check_model(model)
    loss = _resolve_loss(model, loss)
    if not isinstance(schedule, Schedule):
        raise TypeError(f"schedule must be a Schedule, got {type(schedule).__name__}")
    steps = check_int(steps, "steps", minimum=1)
    seeds = _seeds(seed)
    lam = check_positive(weight_decay, "weight_decay", allow_zero=True)
    w_star = check_finite_array(w_star, "w_star", ndim=1)
    d = model.n_params
    if w_star.shape != (d,):
        raise ValueError(f"w_star must have shape ({d},), got {w_star.shape}")
    XR, YR = _check_data(model, X_retain, y_retain, loss, "X_retain", "y_retain")
    if (X_forget is None) != (y_forget is None):
        raise ValueError("pass both X_forget and y_forget, or neither")
    XF = YF = None
    if X_forget is not None:
        XF, YF = _check_data(model, X_forget, y_forget, loss, "X_forget", "y_forget")
    sch = schedule
    use_r = sch.uses_retain
    comb = sch.combinator  # how the retain and forget steps combine (rmt.combinators)
    use_f = sch.uses_forget and comb.takes_forget
    nR = XR.shape[0]
    if use_r and sch.batch > nR:
        raise ValueError(f"schedule.batch must be <= the retain set size {nR}, got {sch.batch}")
    if use_f:
        if XF is None:
            raise ValueError(f"schedule.alpha={sch.alpha} > 0 needs X_forget and y_forget")
        if sch.batch_forget > XF.shape[0]:
            raise ValueError(f"the forget batch {sch.batch_forget} exceeds the forget set size "
                             f"{XF.shape[0]} (schedule.forget_batch)")
    if stop_radius is not None:
        stop_radius = check_positive(stop_radius, "stop_radius")

    def check_start(value):
        delta = check_finite_array(value, "start", ndim=1)
        if delta.shape != (d,):
            raise ValueError(f"start must have shape ({d},), got {delta.shape}")
        return delta

    draw_start = start if callable(start) else None
    if draw_start is None:
        delta0 = np.zeros(d) if start is None else check_start(start)
    weights = sch.step_weights  # s_S: −η(1−α) (retain, descent), +ηα (forget, ascent)
    rho_a = comb.ascent(sch)

    def retain_full(w):  # ∇(L_R + λ/2‖w‖²) on the whole retain set (SAM's ascent direction)
        return _mean_loss_and_grad(model, w, XR, YR, loss)[1] + lam * w

    def batch_grad(w, X, Y, x, B):
        idx = np.flatnonzero(x)
        if idx.size == 0:
            return np.zeros(d)
        return _mean_loss_and_grad(model, w, X[idx], Y[idx], loss, weights=x[idx] / B)[1]

    def full_loss(w, X, Y):
        if X is None:
            return float("nan")
        val = _mean_loss_and_grad(model, w, X, Y, loss)[0]
        return val if np.isfinite(val) else float("inf")

    D = np.full((len(seeds), steps), np.inf)
    final = np.empty((len(seeds), d))
    lossR = np.full(len(seeds), np.inf)
    lossF = np.full(len(seeds), np.inf if XF is not None else np.nan)
    over = np.zeros(len(seeds), dtype=bool)
    ran = np.full(len(seeds), steps)
    start_norms = []
    recs: list[dict[str, np.ndarray]] | None = [] if record else None
    nF = 0 if XF is None else XF.shape[0]  # forget-set size (used only when use_f)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        for s, sd in enumerate(seeds):
            rng = np.random.default_rng(sd)
            if draw_start is not None:
                delta0 = check_start(draw_start(rng))
            start_norms.append(float(np.linalg.norm(delta0)))
            w = w_star + delta0
            rec = {}
            if record:
                if use_r:
                    rec["retain"] = np.zeros((steps, nR))
                if use_f:
                    rec["forget"] = np.zeros((steps, nF))
            for k in range(steps):
                xR = draw_indicators(rng, sch.sampling, nR, sch.batch) if use_r else None
                xF = (draw_indicators(rng, sch.sampling, nF, sch.batch_forget)
                      if use_f else None)
                if record:
                    if use_r:
                        rec["retain"][k] = xR
                    if use_f:
                        rec["forget"][k] = xF
                parts = []
                if use_r:
                    parts.append((weights["retain"], lambda v, xR=xR: batch_grad(
                        v, XR, YR, xR, sch.batch) + lam * v))
                if use_f:
                    parts.append((weights["forget"], lambda v, xF=xF: batch_grad(
                        v, XF, YF, xF, sch.batch_forget)))
                w_new = comb.nonlinear_step(w, parts, retain_full, rho_a)
                dist = float(np.linalg.norm(w_new - w_star))
                if not np.all(np.isfinite(w_new)) or not np.isfinite(dist):
                    over[s] = True
                    ran[s] = k + 1
                    break  # D[s, k:] stays inf
                w = w_new
                D[s, k] = dist
                if stop_radius is not None and dist >= stop_radius:
                    D[s, k + 1:] = dist
                    ran[s] = k + 1
                    break
            final[s] = w
            if not over[s]:
                lossR[s] = full_loss(w, XR, YR)
                if XF is not None:
                    lossF[s] = full_loss(w, XF, YF)
            if recs is not None:  # record
                recs.append(rec)
    note = ""
    if lam > 0:
        note = ("weight_decay > 0 during unlearning adds a shared λI curvature that the "
                "HessianSet does not represent: the linear forecast does not model these runs")
    return UnlearnResult(distances=D, start_norm=max(start_norms), final_w=final,
                         retain_loss=lossR, forget_loss=lossF, overflowed=over, seeds=seeds,
                         steps=steps, schedule=sch, indicators=recs, note=note, steps_run=ran)

