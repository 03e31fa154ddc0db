"""Monte Carlo paths of the affine unlearning recursion δ_{k+1} = J_k δ_k + b_k (contract §8).

At a minimum that does not interpolate, the per-sample gradients g_i = ∇ℓ_i(w*) are non-zero and
the linearised step is affine: J_k as in §2, b_k = Σ_S s_S ĝ_S,k drawn with the *same* batch
indicators (alternating: b = A_F s_R ĝ_R + s_F ĝ_F; SAM: the modified gradients g̃_i of
:class:`rmt.dynamics.Dynamics`). :func:`affine_paths` samples ‖δ_k‖ exactly as
``Dynamics.step`` defines the step — the law is that of the exact augmented moment recursion of
§8 (E[δ_k] and E‖δ_k‖² are tested against it).

**Coordinates.** The kernel works in the p = r + q affine coordinates [U, V] of the Dynamics (U:
span of the active Hessians, V: the directions outside U that the drift reaches; the Hessian
factors are zero along V, so J = I there and the drift accumulates as a walk). The part of the
start outside [U, V] never moves; it is carried as a constant and enters every norm. ``path``
chooses the storage of the Hessians in these coordinates ("gram", "dense", "diagonal"; "factor"
runs in full coordinates instead — same law, used for cross-checks); ``"auto"`` never picks
"factor", because the span coordinates are built by the Dynamics anyway and p ≤ d.

**No renormalisation**: an affine map is not scale-invariant, so the iterate is propagated as is.
A replica whose iterate becomes non-finite (float64 overflow) is marked in ``overflowed`` and its
``log_norm`` is +inf from that step on — never NaN, never an exception.

**Randomness** as in :mod:`rmt.montecarlo.engine`: one SeedSequence, one child per replica, one
SplitMix64 stream per replica, so results are bit-identical for any ``NUMBA_NUM_THREADS``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import numpy.typing as npt

from ..api import HS, SCHEDULE, SEED, analysis, at_least
from ..dynamics import Dynamics, as_dynamics
from ..validation import Array, Options
from ..hessians import HessianSet
from ..schedule import Schedule
from ..validation import check_finite_array, check_int
from . import _kernels as K_
from . import _reference as R_
from ..span import hstack_bases, lift, project
from ._rng import Seed
from .engine import _check_backend, _streams
from .plan import PATHS, _kernel_args, _plan

__all__ = ["affine_paths", "AffinePathsResult"]


@dataclass(frozen=True)
class AffinePathsResult:
    """‖δ_k‖, k = 0..steps, of ``replicas`` independent runs of δ_{k+1} = J_k δ_k + b_k (§8).

    Fields: ``log_norm`` (replicas, steps+1) = log‖δ_k‖ of the *full* deviation (span part, drift
    directions V and the frozen rest of the start; −inf while δ_k = 0, +inf from an overflow on);
    ``overflowed`` (replicas,) the first step k at which δ_k became non-finite, or −1;
    ``final`` (replicas,) = ‖δ_K‖ (inf when overflowed); ``final_state`` (replicas, d) = δ_K in
    full coordinates (rows of overflowed replicas are NaN); ``steps``, ``replicas``, ``dim`` (d),
    ``span_dim`` (r), ``drift_dim`` (q), ``path``.
    """

    log_norm: np.ndarray = field(repr=False)
    steps: int
    replicas: int
    overflowed: np.ndarray = field(repr=False)
    final: np.ndarray = field(repr=False)
    _final: tuple = field(repr=False)
    dim: int
    span_dim: int
    drift_dim: int
    path: str

    @cached_property
    def final_state(self) -> np.ndarray:
        """δ_K in full coordinates (replicas, d); formed on first access (a pass over d when
        the basis is implicit), NaN rows for overflowed replicas."""
        last, W, rest, scale = self._final
        state = last if W is None else lift(W, last)
        if rest is not None:
            state = state + (rest if scale is None else rest * scale[:, None])
        state[self.overflowed >= 0] = np.nan
        return state

    @property
    def norm(self) -> np.ndarray:
        """‖δ_k‖ (replicas, steps+1); inf after an overflow."""
        with np.errstate(over="ignore"):
            return np.exp(self.log_norm)

    @property
    def n_overflowed(self) -> int:
        return int(np.sum(self.overflowed >= 0))

    def exits(self, radius: float, within: int | None = None) -> np.ndarray:
        """Per replica: ‖δ_k‖ ≥ ``radius`` for some k ≤ ``within`` (default: all steps) — the
        finite-horizon question of contract §8 (leaving the ball = the model forgets)."""
        radius = float(radius)
        if not radius > 0 or not math.isfinite(radius):
            raise ValueError(f"radius must be a positive finite number, got {radius!r}")
        within = self.steps if within is None else check_int(within, "within", minimum=0,
                                                              maximum=self.steps)
        return np.any(self.log_norm[:, : within + 1] >= math.log(radius), axis=1)


def _row_norms(A):
    """Euclidean norms of the rows of A without overflow of the squares."""
    mx = np.max(np.abs(A), axis=-1, initial=0.0)
    safe = np.where(mx > 0, mx, 1.0)
    return mx * np.sqrt(np.sum((A / safe[..., None]) ** 2, axis=-1))


def _affine_plan(dyn, path, extra=0):
    """(plan, W, DR, DF, drift): kernel arguments in [U, V] coordinates (W = [U, V], d×p) or in
    full coordinates on the factor path (W = None); D_S are the terms' drift vectors there.
    ``extra`` null coordinates follow [U, V] (a start's part outside [U, V] under a shared λI)."""
    p = dyn.p
    plan = _plan(dyn, path, full_coordinates=False, width=p + extra)
    W = hstack_bases(dyn.basis, dyn.drift_basis)
    if plan.path == "factor":  # full coordinates: g̃_i = [U, V] (its [U, V] coordinates)
        basis, W = np.asarray(W), None

        def to_work(g):
            return g @ basis.T
    else:
        def to_work(g):
            return g if extra == 0 else np.hstack([g, np.zeros((g.shape[0], extra))])
    D = {}
    for w in ("retain", "forget"):
        t = dyn.term(w)
        g = None if t is None else t.gradients
        D[w] = np.zeros((1, plan.m)) if g is None else np.ascontiguousarray(to_work(g), float)
    return plan, W, D["retain"], D["forget"], bool(dyn.has_drift)


def _affine_start(start, plan, W, replicas, null_coord=False):
    """(X0 (replicas, m), frozen norms (replicas,), frozen part (replicas or 1, d) or None).

    ``null_coord``: the part outside [U, V] is not frozen but scaled by the null scalar of a
    shared λI; its norm then rides in the last working coordinate (frozen norms are 0)."""
    d = plan.dim
    if start is None:
        return np.zeros((replicas, plan.m)), np.zeros(replicas), None
    S = check_finite_array(start, "start", ndim=(1, 2))
    if S.shape not in ((d,), (replicas, d)):
        raise ValueError(f"start must have shape ({d},) or (replicas, {d}) = ({replicas}, {d}), "
                         f"got {S.shape}")
    S = np.atleast_2d(S)
    if W is None:
        X, rest = S, None
    else:
        X = project(W, S)
        rest = S - lift(W, X)
    frozen = np.zeros(len(S)) if rest is None else _row_norms(rest)
    if null_coord:
        X = np.hstack([X, frozen[:, None]])
        frozen = np.zeros(len(S))
    if len(S) == 1:
        X, frozen = np.repeat(X, replicas, axis=0), np.repeat(frozen, replicas)
    return np.ascontiguousarray(X), np.ascontiguousarray(frozen), rest


@analysis({"hs": HS, "schedule": SCHEDULE, "steps": at_least(1), "replicas": at_least(1),
           "seed": SEED, "start": [None, Array(ndim=(1, 2))],
           "path": [Options(PATHS)], "backend": [Options(("numba", "reference"))]}, blas=False)
def affine_paths(hs: HessianSet | Dynamics, schedule: Schedule | None = None, *, steps: int,
                 replicas: int = 256, seed: Seed = None, start: npt.ArrayLike | None = None,
                 path: str = "auto", backend: str = "numba") -> AffinePathsResult:
    """Sample ``replicas`` paths of δ_{k+1} = J_k δ_k + b_k for k < ``steps`` (contract §8).

    ``hs, schedule``: a HessianSet and a Schedule, or a :class:`~rmt.dynamics.Dynamics` in place
    of the pair. ``start``: None → δ_0 = 0 (unlearning starts at w*); a (d,) vector → the same
    start in every replica; a (replicas, d) array → one start per replica. Whatever part of the
    start lies outside the affine coordinates [U, V] is frozen and counted in every norm.
    Without per-sample gradients (``dyn.has_drift`` False) this is the homogeneous recursion (a
    zero start then stays exactly 0). ``seed``: int, SeedSequence, Generator or None;
    ``backend="reference"`` runs the numpy twin of the kernel on identical draws.
    See :class:`AffinePathsResult` for the fields and the module docstring for coordinates,
    overflow and reproducibility.
    """
    dyn = as_dynamics(hs, schedule)
    steps = check_int(steps, "steps", minimum=1)
    replicas = check_int(replicas, "replicas", minimum=1)
    _check_backend(backend)
    # with a shared λI the part of the start outside [U, V] is scaled by the null scalar j_k
    # (same batches as the rest of the step): it gets one extra null working coordinate
    null_coord = dyn.has_null_mode and start is not None and dyn.p < dyn.dim
    plan, W, DR, DF, drift = _affine_plan(dyn, path, extra=int(null_coord))
    X0, frozen, rest = _affine_start(start, plan, W, replicas, null_coord)
    _, seeds = _streams(seed, replicas)
    logn = np.empty((replicas, steps + 1))
    over = np.empty(replicas, dtype=np.int64)
    last = np.empty((replicas, plan.m))
    fn = K_.run_affine if backend == "numba" else R_.run_affine
    args = (*_kernel_args(plan), DR, DF, drift, X0, frozen, seeds, steps, logn, over, last)
    fn(*args)
    p = dyn.p
    scale = None
    if rest is not None and null_coord:
        norms = np.broadcast_to(_row_norms(rest), (replicas,))
        scale = np.divide(last[:, p], norms, out=np.zeros(replicas), where=norms > 0)
    coords = last if W is None else last[:, :p]
    with np.errstate(over="ignore"):
        final = np.exp(logn[:, -1])
    return AffinePathsResult(log_norm=logn, steps=steps, replicas=replicas, overflowed=over,
                             final=final, _final=(coords, W, rest, scale), dim=dyn.dim,
                             span_dim=dyn.r, drift_dim=dyn.q, path=plan.path)
