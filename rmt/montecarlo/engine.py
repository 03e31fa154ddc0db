"""Public Monte Carlo API: Lyapunov exponents, moment growth and trajectories (contract §2, §3).

The linearised dynamics w_{k+1} = J_k w_k with i.i.d. random J_k (contract §2, sampling §2.1):

    summed       J = I − η(1−α)Ĥ_R + ηαĤ_F
    alternating  J = (I + ηαĤ_F)(I − η(1−α)Ĥ_R)
    sam          J = I − ηĤ_R (I + (ρ/a)H̄_R)                   (α = 0)

with Ĥ_S = (1/B_S) Σ_i x_i H_i: ``bernoulli`` x_i ~ Bernoulli(B/n) i.i.d. (divided by the
nominal B; an empty batch gives Ĥ = 0), ``with_replacement`` B i.i.d. uniform indices (x_i =
counts), ``without_replacement`` B distinct indices. Retain and forget batches are independent;
a set whose weight is zero (α = 0: forget; α = 1: retain) is not sampled at all.

**One definition of the step.** The step is :class:`rmt.dynamics.Dynamics` (active sets, weights
s_S, batch sizes, sampling, combinator, SAM factor K, drift vectors); this module only chooses how
the kernels store the per-sample Hessians. Every public function takes ``(hs, schedule, ...)`` or
a ``Dynamics`` in place of the pair (``lyapunov(dyn, steps=..., replicas=..., seed=...)``), which
also saves rebuilding the span coordinates on repeated calls.

**Span.** Every J is the identity on the common null space N of the Hessians that enter it, so
w = u + v with v frozen. Exponents and moments are measured on u (the span U = N^⊥): that is the
meaningful quantity, exactly as ``mean_square_rate`` is ρ(T) on the span (contract §3, "Null
space"); the null-space part contributes exponent 0 and is excluded.

**Paths** (``path="auto"`` picks; every path gives the same law):

* ``"factor"``  full coordinates, H_i v = F_i(F_iᵀv): O(B·d·k) per step, never a d×d matrix.
  Chosen for rank-one/factor sets when Σ n_S k ≥ d (the span is generically all of R^d).
* ``"gram"``    span coordinates from ``hs.reduction`` (reduced factors Ψ_i = UᵀF_i, r ≤ Σ n_S k):
  O(B·r·k) per step. Chosen when Σ n_S k < d, for dense sets and for SAM.
* ``"dense"``   span coordinates with the reduced r×r Hessians: O(B·r²) (fallback for dense sets of
  high per-sample rank).
* ``"diagonal"`` commuting sets in their eigenbasis: O(B·d) per step.

**Start vectors** (explicit): by default each replica starts from an isotropic Gaussian vector on
the span (N(0, I_r) in span coordinates), or, on the factor path, from w_0 = Σ_i F_i z_i with
z ~ N(0, I) (a Gaussian combination of the factor columns, which lies in the span); both are then
normalised to ‖w_0‖ = 1 and almost surely overlap every Oseledets direction. They come from the
replica's own stream, so they are reproducible and thread-independent.

**Randomness.** ``seed`` (int, SeedSequence, Generator or None) → one SeedSequence; replica r
uses its r-th spawned child for both its start vector and its 64-bit kernel stream, so the result
for a given seed does not depend on the number of threads (``NUMBA_NUM_THREADS``).

**Renormalisation.** The vector is renormalised every step and log‖J_k ŵ_k‖ accumulated, so
strongly divergent or contracting runs neither overflow nor underflow. A step that maps the
vector exactly to 0 is *counted* (``singular_steps``) and reported with a warning, never turned
into a silent −inf/NaN.
"""

from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from scipy.special import logsumexp

from numbers import Real

from ..api import BOOL, HS, SCHEDULE, SEED, analysis, at_least
from ..dynamics import Dynamics, as_dynamics
from ..hessians import HessianSet
from ..schedule import Schedule
from ..validation import (
    Array,
    Interval,
    Options,
    check_choice,
    check_finite_array,
    check_int,
)
from ..verdict import ALMOST_SURE, Verdict, deprecated_alias
from . import _kernels as K_
from . import _reference as R_
from ._rng import Seed
from ._rng import replica_streams as _streams
from .plan import PATHS, _kernel_args, _plan, _start_vectors

__all__ = [
    "lyapunov",
    "lyapunov_spectrum",
    "moment_growth",
    "simulate",
    "LyapunovResult",
    "LyapunovSpectrumResult",
    "MomentGrowthResult",
    "SimulationResult",
]



# ====================================================================== results
@dataclass(frozen=True)
class _AlmostSureRuns(Verdict):
    """What every almost-sure estimate reports: the estimate and its replicas, the singular
    steps, the run lengths and the coordinates (fields as listed in :class:`LyapunovResult`).
    A subclass defines ``forgets``; ``verdict`` is its text and ``notion`` is almost-sure."""

    exponent: float | np.ndarray
    stderr: float | np.ndarray
    per_replica: np.ndarray = field(repr=False)
    singular_steps: np.ndarray = field(repr=False)
    n_singular: int
    measured_steps: np.ndarray = field(repr=False)
    steps: int
    burn_in: int
    replicas: int
    span_dim: int
    dim: int
    path: str

    notion = ALMOST_SURE

    @property
    def forgets(self) -> bool:
        raise NotImplementedError


@dataclass(frozen=True)
class LyapunovResult(_AlmostSureRuns):
    """Top Lyapunov exponent λ₁ per step, measured on the span of the Hessians (contract §3).

    λ₁ = lim_k (1/k) log‖J_k⋯J_1 w_0‖, estimated per replica by the renormalised sum
    (1/K') Σ_{k ≥ burn_in} log‖J_k ŵ_k‖ (ŵ_k = w_k/‖w_k‖, K' = measured steps), averaged over
    independent replicas. λ₁ > 0: a typical run escapes w* (the model **forgets**); λ₁ < 0: a
    typical run returns (the model **resists**). This is the *almost-sure* notion; mean square is
    ρ(T), and Jensen gives λ₁ ≤ ½ log ρ(T).

    Fields: ``exponent`` (mean of ``per_replica``), ``stderr`` (sample std / √replicas),
    ``per_replica``, ``singular_steps`` (per replica: steps that mapped the vector exactly to 0;
    such a step is not measured and the vector restarts from w_0 — if they have positive
    probability the unconditional exponent is −∞), ``n_singular`` (their total),
    ``measured_steps`` (per replica), ``steps``, ``burn_in``, ``replicas``, ``span_dim`` (r),
    ``dim`` (d), ``path``.

    Verdict (:mod:`rmt.verdict`): ``forgets`` = λ₁ > 0, ``verdict`` its text, ``notion`` =
    ``"almost-sure"``; ``escapes`` is a deprecated alias of ``forgets``.

    **Shared curvature λI**: the null space N of the factors is invariant and J is a
    scalar j there, so the cocycle is block diagonal and λ₁ = max(λ₁(span), E log|j|). The span
    exponent is sampled (``span_exponent``, with ``per_replica``/``stderr``); the null one is exact
    (``null_exponent``, a finite sum over the batch-size law); ``exponent`` is their maximum.
    Without a null mode ``null_exponent`` is None and ``exponent`` = ``span_exponent``.
    """

    exponent: float
    stderr: float
    span_exponent: float | None = None
    null_exponent: float | None = None

    @property
    def forgets(self) -> bool:
        """λ₁ > 0: almost every run escapes w* (the model forgets)."""
        return bool(self.exponent > 0.0)

    escapes = deprecated_alias("forgets")


@dataclass(frozen=True)
class LyapunovSpectrumResult(_AlmostSureRuns):
    """Top k Lyapunov exponents λ₁ ≥ … ≥ λ_k per step on the span (Benettin/QR, contract §3).

    A k-frame Q is propagated, Y = J_k Q, re-orthonormalised every step (Y = Q'R, modified
    Gram–Schmidt) and λ_j ≈ (1/K') Σ_{k ≥ burn_in} log R_jj. Same fields as
    :class:`LyapunovResult` with arrays: ``exponent`` (k,), ``stderr`` (k,), ``per_replica``
    (replicas, k). ``exponent[0]`` is λ₁; Σ_j λ_j is the growth rate of k-volumes.
    A singular step (the frame loses rank exactly) is counted in ``singular_steps``, not
    measured, and the frame restarts. Verdict fields as :class:`LyapunovResult`, from λ₁.
    With a shared λI, ``exponent`` is the spectrum on the span and ``null_exponent`` = E log|j|
    is the exact exponent of the null space (multiplicity ``dim − span_dim``): the full spectrum
    is their union (the verdict uses the larger of λ₁ and ``null_exponent``).
    """

    exponent: np.ndarray
    stderr: np.ndarray
    k: int
    null_exponent: float | None = None

    @property
    def forgets(self) -> bool:
        """λ₁ = max(``exponent[0]``, ``null_exponent``) > 0 (the model forgets)."""
        top = self.exponent[0] if self.null_exponent is None else max(self.exponent[0],
                                                                      self.null_exponent)
        return bool(top > 0.0)


@dataclass(frozen=True)
class MomentGrowthResult:
    """Moment Lyapunov function g(p) = lim (1/k) log E‖w_k‖^p on the span (contract §3).

    g is convex with g(0) = 0, g′(0) = λ₁ and g(2) = log ρ(T). Estimated from ``replicas``
    independent runs started at ‖w_0‖ = 1: M_p(k) = log mean_r ‖w_k^{(r)}‖^p (log-sum-exp, no
    overflow), and g(p) = [M_p(K) − M_p(⌊K/2⌋)] / (K − ⌊K/2⌋) — the slope over the second half,
    which removes the O(1/K) bias of the constant prefactor in E‖w_k‖^p ≈ C ρ_p^k.

    Fields: ``p`` (m,), ``g`` (m,), ``stderr`` (m,; delete-a-group jackknife over 20 replica
    groups), ``log_moment`` (m, steps+1) = M_p(k), ``ess`` (m,) the effective sample size
    (Σw)²/Σw² of the weights w_r = ‖w_K^{(r)}‖^p, ``reliable`` (m,) = ess ≥ max(20, replicas/100),
    ``exponent`` (the Lyapunov estimate mean_r [log‖w_K‖ − log‖w_{⌊K/2⌋}‖]/(K − ⌊K/2⌋) from the
    same runs and window — the slope of g at 0; runs absorbed at 0 are left out),
    ``singular_steps``, ``steps``, ``replicas``, ``path``.

    **Heavy tails.** ‖w_k‖^p is log-normal-like with log-variance growing ∝ k, so for large p·√k
    the sample mean is dominated by a handful of replicas and *underestimates* E‖w_k‖^p: the
    estimate of g(p) is then biased low and its jackknife error is itself unreliable. A low
    ``ess`` flags exactly this; trust g(p) only where ``reliable`` is True.

    With a shared λI, ``g`` is measured on the span and ``null_g`` (m,) = log E|j|^p is the exact
    moment Lyapunov function of the null scalar mode; the full g(p) is max(g, null_g).
    """

    p: np.ndarray
    g: np.ndarray
    stderr: np.ndarray
    log_moment: np.ndarray = field(repr=False)
    ess: np.ndarray
    reliable: np.ndarray
    exponent: float
    singular_steps: np.ndarray = field(repr=False)
    steps: int
    replicas: int
    path: str
    null_g: np.ndarray | None = None


@dataclass(frozen=True)
class SimulationResult:
    """Trajectories ‖w_k‖², k = 0..steps, of ``replicas`` independent runs (contract §2).

    ``log_norm_sq`` (replicas, steps+1) holds log‖w_k‖² of the *full* vector w = u + v (span part
    u evolves, null-space part v is frozen, ‖w‖² = ‖u‖² + ‖v‖²); kept in log form because
    divergent runs overflow float64. ``null_norm_sq`` = ‖v‖² (frozen). With a shared λI, v is
    scaled by the null scalar j_k each step and evolves inside ``log_norm_sq``
    (``null_norm_sq`` is then 0). ``norm_sq`` exponentiates (may be
    inf). A run absorbed at u = 0 by an exactly singular step is counted in ``singular_steps``
    (its span part is exactly 0 from then on). E‖w_k‖² is exactly ``rmt.second_moment``.

    Use :meth:`escaped` for published heuristics such as "diverged when ‖w‖² ≥ 1000‖w_0‖² within
    1000 steps, majority of 10 runs" — escaped = diverged = the model **forgets**.
    """

    log_norm_sq: np.ndarray = field(repr=False)
    null_norm_sq: float
    singular_steps: np.ndarray = field(repr=False)
    steps: int
    replicas: int
    path: str

    @property
    def norm_sq(self) -> np.ndarray:
        """‖w_k‖² (overflows to inf for strongly divergent runs; use ``log_norm_sq``)."""
        with np.errstate(over="ignore"):
            return np.exp(self.log_norm_sq)

    def escaped(self, threshold: float = 1000.0, within: int | None = None) -> np.ndarray:
        """Per replica: ‖w_k‖² ≥ threshold·‖w_0‖² for some k ≤ ``within`` (default: all steps)."""
        bad = isinstance(threshold, bool) or not isinstance(threshold, numbers.Real)
        if bad or not threshold > 0:
            raise ValueError(f"threshold must be a positive number, got {threshold!r}")
        within = self.steps if within is None else check_int(within, "within", minimum=0,
                                                              maximum=self.steps)
        rel = self.log_norm_sq[:, : within + 1] - self.log_norm_sq[:, :1]
        return np.any(rel >= math.log(threshold), axis=1)

    def majority_escaped(self, threshold: float = 1000.0, within: int | None = None) -> bool:
        """The heuristic verdict: more than half of the replicas escaped."""
        return bool(2 * int(self.escaped(threshold, within).sum()) > self.replicas)


# ====================================================================== preparation
def _dynamics(hs, schedule, fname):
    """``as_dynamics`` with a clearer message for ``fname(dyn, steps, ...)`` called positionally."""
    if isinstance(hs, Dynamics) and schedule is not None:
        raise TypeError(
            f"{fname}: with a Dynamics in place of (hs, schedule) pass the other arguments by "
            f"keyword, e.g. {fname}(dyn, steps=..., replicas=..., seed=...)"
        )
    return as_dynamics(hs, schedule)


def _required(fname, **values):
    for name, value in values.items():
        if value is None:
            raise TypeError(f"{fname}() missing required argument {name!r}")


def _check_steps(steps, burn_in):
    steps = check_int(steps, "steps", minimum=1)
    if burn_in is None:
        burn_in = steps // 10
    burn_in = check_int(burn_in, "burn_in", minimum=0)
    if burn_in >= steps:
        raise ValueError(f"burn_in must be < steps={steps}, got {burn_in}")
    return steps, burn_in


def _run_vector(plan, W0, seeds, steps, burn_in, restart, record, backend="numba"):
    R = W0.shape[0]
    logsum = np.zeros(R)
    nmeas = np.zeros(R, dtype=np.int64)
    nsing = np.zeros(R, dtype=np.int64)
    traj = np.zeros((R, steps + 1) if record else (1, 1))
    fn = K_.run_vector if backend == "numba" else R_.run_vector
    fn(*_kernel_args(plan), np.ascontiguousarray(W0), seeds, steps, burn_in, restart, record,
       logsum, nmeas, nsing, traj)
    return logsum, nmeas, nsing, (traj if record else None)


def _run_spectrum(plan, Q0, seeds, steps, burn_in, backend="numba"):
    R, p, _ = Q0.shape
    logsum = np.zeros((R, p))
    nmeas = np.zeros(R, dtype=np.int64)
    nsing = np.zeros(R, dtype=np.int64)
    fn = K_.run_spectrum if backend == "numba" else R_.run_spectrum
    fn(*_kernel_args(plan), np.ascontiguousarray(Q0), seeds, steps, burn_in,
       logsum, nmeas, nsing)
    return logsum, nmeas, nsing


def _warn_singular(n_sing, what):
    if n_sing:
        warnings.warn(
            f"{n_sing} step(s) mapped the vector exactly to 0 (J_k singular on it); {what}",
            RuntimeWarning,
            stacklevel=3,
        )


def _check_finite(x, what):
    if not np.all(np.isfinite(x)):
        raise FloatingPointError(
            f"{what} is not finite: a single step overflowed float64 (Hessian scale too large)"
        )


def _check_backend(backend):
    return check_choice(backend, "backend", ("numba", "reference"))


def _setup_runs(fname, hs, schedule, path, steps, replicas, burn_in, backend, **required):
    """(dyn, plan, steps, burn_in, replicas) for the almost-sure estimators, checked in the
    order: pair/Dynamics, required arguments (``required`` beside steps and replicas), path,
    run lengths, backend."""
    dyn = _dynamics(hs, schedule, fname)
    _required(fname, steps=steps, replicas=replicas, **required)
    plan = _plan(dyn, path)
    steps, burn_in = _check_steps(steps, burn_in)
    replicas = check_int(replicas, "replicas", minimum=2)
    _check_backend(backend)
    return dyn, plan, steps, burn_in, replicas


def _run_fields(plan, per, nsing, nmeas, steps, burn_in, replicas):
    """The :class:`_AlmostSureRuns` fields other than the estimate and its error."""
    return dict(per_replica=per, singular_steps=nsing, n_singular=int(nsing.sum()),
                measured_steps=nmeas, steps=steps, burn_in=burn_in, replicas=replicas,
                span_dim=plan.span_dim, dim=plan.dim, path=plan.path)


# ====================================================================== public functions
_MC = dict(dynamics=False, blas=False)  # the pair is checked by _dynamics (positional form); numba, not BLAS
_PATH, _BACKEND = [Options(PATHS)], [Options(("numba", "reference"))]


@analysis({"hs": HS, "schedule": SCHEDULE, "steps": at_least(1),
           "replicas": at_least(2), "seed": SEED, "burn_in": [None, *at_least(0)],
           "path": _PATH, "backend": _BACKEND, "progress": [None, *BOOL]}, **_MC)
def lyapunov(hs: HessianSet | Dynamics, schedule: Schedule | None = None,
             steps: int | None = None, replicas: int | None = None, seed: Seed = None,
             burn_in: int | None = None, *, path: str = "auto",
             backend: str = "numba", progress: bool | None = None) -> LyapunovResult:
    """Top Lyapunov exponent λ₁ of w_{k+1} = J_k w_k on the span of the Hessians (contract §2, §3).

    λ₁ = lim (1/k) log‖J_k⋯J_1 w_0‖ (almost surely, for a.e. start on the span). Estimated by
    renormalising every step and averaging log‖J_k ŵ_k‖ over steps k ≥ ``burn_in`` (default
    steps // 10) in each of ``replicas`` ≥ 2 independent runs; ``stderr`` is the standard error
    across replicas. The null-space part of w is frozen (exponent 0 there) and excluded; start
    vectors and paths are described in the module docstring. λ₁ ≤ ½ log ρ(T) (Jensen).

    ``path``: "auto", "factor", "gram", "dense", "diagonal"; ``backend="reference"`` runs the
    plain-numpy twin of the kernel on identical draws (slow, for testing).
    ``hs, schedule``: a HessianSet and a Schedule, or a :class:`~rmt.dynamics.Dynamics` in place
    of the pair (then pass the remaining arguments by keyword).
    ``progress``: a tqdm bar on stderr over the replicas (None: ``RMT_PROGRESS``, else only on
    a terminal; :mod:`rmt.progress`); with a bar the replicas run in chunks (same numbers).
    """
    from ..progress import bar, enabled

    dyn, plan, steps, burn_in, replicas = _setup_runs("lyapunov", hs, schedule, path, steps,
                                                      replicas, burn_in, backend)
    gens, seeds = _streams(seed, replicas)
    W0 = _start_vectors(plan, gens)[:, 0, :]
    if enabled(progress):  # replicas are independent streams: chunks give the same numbers
        parts, chunk = [], max(1, replicas // 16)
        with bar(replicas, "lyapunov", progress=True, unit="replica") as b:
            for i in range(0, replicas, chunk):
                parts.append(_run_vector(plan, W0[i:i + chunk], seeds[i:i + chunk], steps,
                                         burn_in, True, False, backend)[:3])
                b.update(min(chunk, replicas - i))
        logsum, nmeas, nsing = (np.concatenate(x) for x in zip(*parts))
    else:
        logsum, nmeas, nsing, _ = _run_vector(plan, W0, seeds, steps, burn_in, True, False,
                                              backend)
    with np.errstate(invalid="ignore", divide="ignore"):
        per = np.where(nmeas > 0, logsum / np.maximum(nmeas, 1), np.nan)
    _warn_singular(int(nsing.sum()), "those steps were not measured and the vector restarted "
                   "from w_0; the exponent is conditional on non-singular steps")
    if np.any(nmeas == 0):
        raise FloatingPointError(
            "every measured step of some replica was singular: the exponent is -inf "
            "(J maps the span to 0 with high probability)"
        )
    _check_finite(per, "the Lyapunov estimate")
    span_exp, null_exp = float(per.mean()), dyn.null_exponent
    return LyapunovResult(
        exponent=span_exp if null_exp is None else max(span_exp, null_exp),
        span_exponent=span_exp,
        null_exponent=null_exp,
        stderr=float(per.std(ddof=1) / math.sqrt(replicas)),
        **_run_fields(plan, per, nsing, nmeas, steps, burn_in, replicas),
    )


#: Constraint table of the estimator settings of :func:`lyapunov` (a view of its
#: ``parameter_constraints``): the one place the sweep config and ``rmt analyze`` look them up.
LYAPUNOV_CONSTRAINTS = {
    k: lyapunov.parameter_constraints[k]  # type: ignore[attr-defined]  # set by @analysis
    for k in ("steps", "replicas", "seed", "burn_in")}


@analysis({"hs": HS, "schedule": SCHEDULE, "steps": at_least(1),
           "replicas": at_least(2), "seed": SEED, "k": [None, *at_least(1)],
           "burn_in": [None, *at_least(0)], "path": _PATH, "backend": _BACKEND}, **_MC)
def lyapunov_spectrum(hs: HessianSet | Dynamics, schedule: Schedule | None = None,
                      steps: int | None = None, replicas: int | None = None, seed: Seed = None,
                      k: int | None = None, burn_in: int | None = None, *, path: str = "auto",
                      backend: str = "numba") -> LyapunovSpectrumResult:
    """Top ``k`` Lyapunov exponents λ₁ ≥ … ≥ λ_k on the span (Benettin/QR; contract §3).

    A random orthonormal k-frame on the span (QR of k start vectors, module docstring) is
    propagated by the same J_k as a vector would be and re-orthonormalised every step;
    λ_j ≈ mean over steps ≥ ``burn_in`` of log R_jj. ``k`` must not exceed the span dimension r
    (the span basis is therefore always computed). Cost: k times that of :func:`lyapunov` plus
    O(k²·m) for the re-orthonormalisation.
    ``hs, schedule``: a HessianSet and a Schedule, or a :class:`~rmt.dynamics.Dynamics` in place
    of the pair (then pass the remaining arguments by keyword).
    """
    dyn, plan, steps, burn_in, replicas = _setup_runs("lyapunov_spectrum", hs, schedule, path,
                                                      steps, replicas, burn_in, backend, k=k)
    r = plan.span_dim
    k = check_int(k, "k", minimum=1, maximum=r)
    gens, seeds = _streams(seed, replicas)
    raw = _start_vectors(plan, gens, count=k)
    Q0 = np.empty_like(raw)
    for i in range(replicas):
        q, _ = np.linalg.qr(raw[i].T)
        Q0[i] = q.T
    logsum, nmeas, nsing = _run_spectrum(plan, Q0, seeds, steps, burn_in, backend)
    _warn_singular(int(nsing.sum()), "those steps were not measured and the frame restarted")
    if np.any(nmeas == 0):
        raise FloatingPointError("every measured step of some replica was singular")
    per = logsum / nmeas[:, None]
    _check_finite(per, "the Lyapunov spectrum estimate")
    return LyapunovSpectrumResult(
        exponent=per.mean(axis=0),
        stderr=per.std(axis=0, ddof=1) / math.sqrt(replicas),
        **_run_fields(plan, per, nsing, nmeas, steps, burn_in, replicas),
        k=k,
        null_exponent=dyn.null_exponent,
    )


def _logmeanexp(x, axis=0):
    """log mean exp(x) along ``axis`` = logsumexp − log n; −inf where every entry is −inf."""
    return logsumexp(x, axis=axis) - math.log(x.shape[axis])


@analysis({"hs": HS, "schedule": SCHEDULE,
           "p": [None, Interval(Real, None, None), Array(ndim=(0, 1))],
           "steps": at_least(1), "replicas": at_least(2), "seed": SEED,
           "path": _PATH, "backend": _BACKEND}, **_MC)
def moment_growth(hs: HessianSet | Dynamics, schedule: Schedule | None = None,
                  p: npt.ArrayLike | None = None, steps: int | None = None,
                  replicas: int | None = None, seed: Seed = None, *, path: str = "auto",
                  backend: str = "numba") -> MomentGrowthResult:
    """Moment Lyapunov function g(p) = lim (1/k) log E‖w_k‖^p on the span (contract §3).

    ``p``: a real number or 1-d array. Runs ``replicas`` ≥ 2 trajectories from unit start
    vectors on the span, records log‖w_k‖, and estimates g(p) as the second-half slope of
    log mean_r ‖w_k‖^p (see :class:`MomentGrowthResult`, including where heavy tails make the
    estimate unreliable). g(2) = log ρ(T) and g′(0) = λ₁ in exact arithmetic.
    ``hs, schedule``: a HessianSet and a Schedule, or a :class:`~rmt.dynamics.Dynamics` in place
    of the pair (then pass the remaining arguments by keyword).
    """
    dyn = _dynamics(hs, schedule, "moment_growth")
    _required("moment_growth", p=p, steps=steps, replicas=replicas)
    plan = _plan(dyn, path)
    p_arr = check_finite_array(p, "p", ndim=(0, 1)).reshape(-1)
    if p_arr.size == 0:
        raise ValueError("p must hold at least one exponent")
    steps = check_int(steps, "steps", minimum=2)
    replicas = check_int(replicas, "replicas", minimum=2)
    _check_backend(backend)
    gens, seeds = _streams(seed, replicas)
    W0 = _start_vectors(plan, gens)[:, 0, :]
    _, _, nsing, traj = _run_vector(plan, W0, seeds, steps, 0, False, True, backend)
    _warn_singular(int(nsing.sum()), "those runs are absorbed at 0 (‖w‖^p = 0 for p > 0)")
    traj = traj - traj[:, :1]  # log‖w_k‖ relative to ‖w_0‖ = 1 (exactly 0 up to rounding)
    _check_finite(traj[np.isfinite(traj) | ~np.isneginf(traj)], "a trajectory")
    half = steps // 2
    span = steps - half
    pl = p_arr[:, None, None] * traj[None, :, :]  # (m, R, steps+1)
    with np.errstate(invalid="ignore"):
        pl = np.where(np.isnan(pl), -np.inf, pl)  # 0 · (−inf) for p = 0 on absorbed runs
    log_moment = _logmeanexp(pl, axis=1)
    g = (log_moment[:, steps] - log_moment[:, half]) / span
    # delete-a-group jackknife over replica groups
    G = min(20, replicas)
    groups = np.arange(replicas) % G
    ends = pl[:, :, [half, steps]]
    jack = np.empty((p_arr.size, G))
    for j in range(G):
        lm = _logmeanexp(ends[:, groups != j, :], axis=1)
        jack[:, j] = (lm[:, 1] - lm[:, 0]) / span
    with np.errstate(invalid="ignore"):
        stderr = np.sqrt((G - 1) / G * np.sum((jack - jack.mean(axis=1, keepdims=True)) ** 2,
                                              axis=1))
    wlog = pl[:, :, steps]  # ess = (Σw)²/Σw² of w = exp(wlog), in logs (no overflow)
    with np.errstate(invalid="ignore"):
        ess = np.exp(2.0 * logsumexp(wlog, axis=1) - logsumexp(2.0 * wlog, axis=1))
    reliable = ess >= max(20.0, replicas / 100.0)
    # same second-half window as g, so g(p)/p and the exponent see the same transient
    with np.errstate(invalid="ignore"):
        inc = (traj[:, steps] - traj[:, half]) / span
    inc = inc[np.isfinite(inc)]
    exponent = float(inc.mean()) if inc.size else -math.inf
    return MomentGrowthResult(
        p=p_arr, g=g, stderr=stderr, log_moment=log_moment, ess=ess, reliable=reliable,
        exponent=exponent, singular_steps=nsing, steps=steps, replicas=replicas, path=plan.path,
        null_g=dyn.null_log_moment(p_arr) if dyn.has_null_mode else None,
    )


@analysis({"hs": HS, "schedule": SCHEDULE, "steps": at_least(1),
           "replicas": at_least(1), "seed": SEED, "w0": [None, Array(ndim=1)],
           "path": _PATH, "backend": _BACKEND}, **_MC)
def simulate(hs: HessianSet | Dynamics, schedule: Schedule | None = None,
             steps: int | None = None, replicas: int | None = None, seed: Seed = None, *,
             w0: npt.ArrayLike | None = None, path: str = "auto",
             backend: str = "numba") -> SimulationResult:
    """‖w_k‖² trajectories (k = 0..steps) of ``replicas`` independent runs (contract §2).

    ``w0``: a fixed start vector of shape (d,) used by every replica (its null-space part is
    frozen and included in ‖w_k‖²), or None for a random unit start on the span per replica
    (module docstring). E‖w_k‖² equals ``rmt.second_moment(hs, schedule, steps, m0=w0).total``
    exactly. ``replicas`` ≥ 1.
    ``hs, schedule``: a HessianSet and a Schedule, or a :class:`~rmt.dynamics.Dynamics` in place
    of the pair (then pass the remaining arguments by keyword).
    """
    dyn = _dynamics(hs, schedule, "simulate")
    _required("simulate", steps=steps, replicas=replicas)
    plan = _plan(dyn, path)
    steps = check_int(steps, "steps", minimum=1)
    replicas = check_int(replicas, "replicas", minimum=1)
    _check_backend(backend)
    gens, seeds = _streams(seed, replicas)
    null = 0.0
    if w0 is None:
        W0 = _start_vectors(plan, gens)[:, 0, :]
        W0 /= np.linalg.norm(W0, axis=1, keepdims=True)
    else:
        w = check_finite_array(w0, "w0", ndim=1)
        if w.shape != (plan.dim,):
            raise ValueError(f"w0 must have shape ({plan.dim},), got {w.shape}")
        if plan.basis is None:
            u = w
        else:
            u = plan.basis.T @ w
            null = float(max(w @ w - u @ u, 0.0))
        if null > 0.0 and dyn.has_null_mode:
            # the null part is scaled by the null scalar j_k of a shared λI (same batches as the
            # span): it rides as one extra null working coordinate and is not frozen
            plan = _plan(dyn, path, width=dyn.r + 1)
            u = np.append(u, math.sqrt(null))
            null = 0.0
        W0 = np.repeat(u[None, :], replicas, axis=0)
    _, _, nsing, traj = _run_vector(plan, W0, seeds, steps, 0, False, True, backend)
    _warn_singular(int(nsing.sum()), "those runs are absorbed at u = 0 (span part exactly 0)")
    with np.errstate(divide="ignore"):
        log_null = math.log(null) if null > 0 else -math.inf
    log_norm_sq = np.logaddexp(2.0 * traj, log_null)
    if np.any(np.isnan(log_norm_sq)) or np.any(np.isposinf(log_norm_sq)):
        raise FloatingPointError("a trajectory is not finite: a step overflowed float64")
    return SimulationResult(log_norm_sq=log_norm_sq, null_norm_sq=null, singular_steps=nsing,
                            steps=steps, replicas=replicas, path=plan.path)
