"""Real nonlinear unlearning runs on the CNN and their linear prediction (THEORY §2, §3, §6).

From the trained solution w* the run does mixed descent/ascent with the same η, B, α, sampling
and schedule as the linear theory (THEORY §2):

    summed:       w ← w − η(1−α) ∇L̂_R(w) + ηα ∇L̂_F(w)
    alternating:  w ← w − η(1−α) ∇L̂_R(w);  w ← w + ηα ∇L̂_F(w)

with L̂_S = (1/B_S) Σ_{i∈S} x_i ℓ_i and batch indicators x_i from the sampling scheme (§2.1).
Linearised at w* (where ∇ℓ_i(w*) ≈ 0 for the squared loss) this is exactly w_{k+1} = J_k w_k
with J_k = I − η(1−α)Ĥ_R + ηαĤ_F, H_i = ℓ''_i g_i g_iᵀ (the curvature of
:func:`simulations.cnn.network.gauss_newton_hessians`).

The run starts from w* + ε‖w*‖u, u a random unit vector in the span of the per-sample gradients
(the null-space component of a perturbation is frozen, THEORY §3), and is **escaped** (= the
model forgets, "diverges") when ‖w_k − w*‖ ≥ ``escape_factor``·‖w_0 − w*‖ within ``steps``
steps, or when the iterate overflows (a non-finite value is reported as escaped, not raised).
Reported alongside: the parameter distance, the forget-loss increase and the retain-loss change.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

import rmt
from rmt import HessianSet, Schedule, mean_square_rate
from rmt.validation import check_int, check_positive, check_random_state
from rmt.verdict import MEAN_SQUARE, OBSERVED, verdict_text

from ._threads import single_blas_thread
from .data import SignalNoiseData
from .network import CNN, batch_loss_gradient, forward, loss_terms, per_sample_gradients

__all__ = ["UnlearningRun", "unlearn", "linear_prediction", "LinearPrediction", "horizon_rate"]


class _Verdict:
    """``verdict`` (:func:`rmt.verdict.verdict_text`) of a result's ``forgets``."""

    @property
    def verdict(self) -> str:
        return verdict_text(self.forgets)


@dataclass(frozen=True)
class UnlearningRun(_Verdict):
    """Outcome of :func:`unlearn` (majority over ``replicas`` runs).

    Verdict fields (:mod:`rmt.verdict`): ``forgets`` (= ``escaped``), ``verdict``, ``notion`` =
    ``"observed"``. ``escaped`` (True = diverges = forgets; kept for backward compatibility),
    ``escape_fraction`` (fraction of replicas that escaped), ``distance_ratio`` (final
    ‖w_k − w*‖/‖w_0 − w*‖ per replica, inf on overflow), ``forget_loss_increase``
    L_F(w_K) − L_F(w*) and ``retain_loss_change`` L_R(w_K) − L_R(w*) (per replica, inf on
    overflow), ``steps_run`` per replica, ``overflowed`` per replica.
    """

    escaped: bool
    escape_fraction: float
    distance_ratio: np.ndarray = field(repr=False)
    forget_loss_increase: np.ndarray = field(repr=False)
    retain_loss_change: np.ndarray = field(repr=False)
    steps_run: np.ndarray = field(repr=False)
    overflowed: np.ndarray = field(repr=False)

    notion = OBSERVED

    @property
    def forgets(self) -> bool:
        """True when the majority of runs escaped w* (the model forgets)."""
        return self.escaped


def _batch_weights(rng, n, B, sampling):
    """(indices, weights) with Ĥ = Σ weights_i H_{idx_i} matching THEORY §2.1 (weights x_i/B)."""
    if sampling == "bernoulli":
        idx = np.flatnonzero(rng.random(n) < B / n)
        return idx, np.full(idx.size, 1.0 / B)
    if sampling == "with_replacement":
        idx, cnt = np.unique(rng.integers(0, n, size=B), return_counts=True)
        return idx, cnt / B
    idx = rng.choice(n, size=B, replace=False)
    return idx, np.full(B, 1.0 / B)


def _loss(W, X, y, loss):
    return float(loss_terms(forward(W, X), y, loss)[0].mean())


def unlearn(cnn_star: CNN, data: SignalNoiseData, schedule: Schedule, *, steps=400,
            perturbation=1e-3, escape_factor=10.0, replicas=3, loss="squared",
            seed=None) -> UnlearningRun:
    """Run the nonlinear mixed descent/ascent from the trained ``cnn_star`` (module docstring).

    ``data`` must carry a forget split when ``schedule.alpha > 0``. Replica streams come from
    ``numpy.random.SeedSequence``. ``escaped`` is the majority vote over replicas.
    """
    if not isinstance(cnn_star, CNN):
        raise TypeError(f"cnn_star must be a CNN, got {type(cnn_star).__name__}")
    if not isinstance(data, SignalNoiseData):
        raise TypeError(f"data must be a SignalNoiseData, got {type(data).__name__}")
    if not isinstance(schedule, Schedule):
        raise TypeError(f"schedule must be a Schedule, got {type(schedule).__name__}")
    if schedule.schedule == "sam":
        raise ValueError("schedule='sam' is not an unlearning schedule; use 'summed' or 'alternating'")
    steps = check_int(steps, "steps", minimum=1)
    perturbation = check_positive(perturbation, "perturbation")
    escape_factor = check_positive(escape_factor, "escape_factor")
    if escape_factor <= 1:
        raise ValueError(f"escape_factor must be > 1, got {escape_factor}")
    replicas = check_int(replicas, "replicas", minimum=1)
    Xr, yr = data.X[data.retain], data.y[data.retain]
    Xf, yf = data.X[data.forget], data.y[data.forget]
    nr, nf = Xr.shape[0], Xf.shape[0]
    if schedule.uses_forget and nf == 0:
        raise ValueError(f"alpha={schedule.alpha} > 0 needs a forget set: split the data first")
    if schedule.uses_retain and schedule.batch > nr:
        raise ValueError(f"batch must be <= n_retain={nr}, got {schedule.batch}")
    if schedule.uses_forget and schedule.batch_forget > nf:
        raise ValueError(f"forget batch must be <= n_forget={nf}, got {schedule.batch_forget}")
    ss = np.random.SeedSequence(None if seed is None else _seed_entropy(seed))
    with single_blas_thread(), np.errstate(over="ignore", invalid="ignore"):
        out = [_one_run(cnn_star.W, data, Xr, yr, Xf, yf, schedule, steps, perturbation,
                        escape_factor, loss, np.random.default_rng(c)) for c in ss.spawn(replicas)]
    esc = np.array([o[0] for o in out])
    frac = float(esc.mean())
    return UnlearningRun(bool(frac > 0.5), frac, np.array([o[1] for o in out]),
                         np.array([o[2] for o in out]), np.array([o[3] for o in out]),
                         np.array([o[4] for o in out]), np.array([o[5] for o in out]))


def _seed_entropy(seed):
    if isinstance(seed, np.random.Generator):
        return int(seed.integers(0, 2**63))
    check_random_state(seed)  # validates type and sign
    return seed


def _one_run(Wstar, data, Xr, yr, Xf, yf, sch, steps, eps, factor, loss, rng):
    G = per_sample_gradients(Wstar, data.X)
    u = rng.standard_normal(G.shape[0]) @ G
    u /= np.linalg.norm(u)
    r0 = eps * max(np.linalg.norm(Wstar), 1e-12)
    W = Wstar + r0 * u.reshape(Wstar.shape)
    LF0 = _loss(Wstar, Xf, yf, loss) if Xf.shape[0] else 0.0
    LR0 = _loss(Wstar, Xr, yr, loss)
    eta, a = sch.eta, sch.alpha
    nr, nf = Xr.shape[0], Xf.shape[0]
    escaped, overflow, k = False, False, 0
    ratio = 1.0
    for k in range(1, steps + 1):
        W_start = W
        if sch.uses_retain:
            idx, wts = _batch_weights(rng, nr, sch.batch, sch.sampling)
            if idx.size:
                Xb = Xr[idx]
                _, d1, _ = loss_terms(forward(W, Xb), yr[idx], loss)
                W = W - eta * (1 - a) * batch_loss_gradient(W, Xb, d1 * wts)
        if sch.uses_forget:
            idx, wts = _batch_weights(rng, nf, sch.batch_forget, sch.sampling)
            if idx.size:
                # summed schedule: the forget gradient is taken at the same point as the retain one
                Wg = W if sch.schedule == "alternating" else W_start
                Xb = Xf[idx]
                _, d1, _ = loss_terms(forward(Wg, Xb), yf[idx], loss)
                W = W + eta * a * batch_loss_gradient(Wg, Xb, d1 * wts)
        dist = np.linalg.norm(W - Wstar)
        if not np.isfinite(dist):
            overflow, escaped = True, True
            break
        ratio = dist / r0
        if ratio >= factor:
            escaped = True
            break
    if overflow:
        return True, math.inf, math.inf, math.inf, k, True
    LF = _loss(W, Xf, yf, loss) if nf else 0.0
    LR = _loss(W, Xr, yr, loss)
    if not (np.isfinite(LF) and np.isfinite(LR)):
        return True, ratio, math.inf, math.inf, k, True
    return escaped, ratio, LF - LF0, LR - LR0, k, False


@dataclass(frozen=True)
class LinearPrediction(_Verdict):
    """Linear-theory prediction at w* (THEORY §3).

    ``rate`` = ρ(T) on the span (mean square); ``lyapunov`` = top Lyapunov exponent λ₁ when
    ``rmt.lyapunov`` is available (almost sure), else None; ``diverges`` = rate > threshold
    (the mean-square verdict; True = forgets); ``notion`` names the notion used
    (:data:`rmt.verdict.MEAN_SQUARE`). ``forgets`` / ``verdict``: the :mod:`rmt.verdict` fields.
    """

    rate: float
    lyapunov: float | None
    threshold: float
    diverges: bool
    notion: str

    @property
    def forgets(self) -> bool:
        return self.diverges


def horizon_rate(steps, escape_factor) -> float:
    """ρ_c = F^{2/K}: the mean-square rate at which E‖w_K‖² = F²‖w_0‖² after K steps."""
    steps = check_int(steps, "steps", minimum=1)
    escape_factor = check_positive(escape_factor, "escape_factor")
    return float(escape_factor ** (2.0 / steps))


def linear_prediction(hs: HessianSet, schedule: Schedule, *, threshold=1.0, lyapunov_steps=2000,
                      seed=0) -> LinearPrediction:
    """ρ(T) (exact, :func:`rmt.mean_square_rate`) and, if available, λ₁ (``rmt.lyapunov``).

    ``threshold`` = 1 gives the asymptotic verdict; :func:`horizon_rate` gives the finite-run one.
    """
    threshold = check_positive(threshold, "threshold")
    with single_blas_thread():
        rate = float(mean_square_rate(hs, schedule))
    lyap = None
    if hasattr(rmt, "lyapunov"):
        res = rmt.lyapunov(hs, schedule, steps=lyapunov_steps, replicas=4, seed=seed)
        lyap = float(res.exponent)
    return LinearPrediction(rate, lyap, threshold, bool(rate > threshold), MEAN_SQUARE)
