"""ρ(T), its result object and sign tests (docs/contract.md §3, §10)."""

from __future__ import annotations

import math
import time
import warnings

import numpy as np
from dataclasses import dataclass, field

from ..validation import check_choice, check_int
from ..dynamics import Dynamics, as_dynamics
from ..hessians import HessianSet
from ..schedule import Schedule
from ..api import POSITIVE, TIME_BUDGET, analysis, at_least
from ..validation import Options
from ..verdict import MEAN_SQUARE, deprecated_alias, verdict_text
from .config import DENSE_MAX_SPAN, METHODS, SPLITTING_MAX_SPAN
from .operator import MeanSquareOperator, _commuting_rate
from .enclosure import EPS, cw_upper
from .splitting import _cw_bracket, _perron, _Splitting, _splitting_rate
from .symmetric import summed_rate, summed_sign

# ---------------------------------------------------------------------- results
@dataclass(frozen=True)
class MeanSquareResult:
    """Result of :func:`mean_square`.

    ``rate`` = ρ(T) on the span (E‖w_k‖² grows like rate^k; > 1 means the iterates escape w*,
    i.e. the model **forgets**; ≤ 1 means it **resists**). ``eigenmatrix`` is the top eigenmatrix in
    span coordinates (PSD by Krein–Rutman, Frobenius-normalised; None for closed forms),
    ``span_dim``/``null_dim`` the dimensions of the span and of the common null space, ``method``
    the algorithm used and ``converged`` whether the requested precision was reached.

    ``bounds`` = (lo, hi) brackets ρ(T). For ``method="splitting"`` it is *certified*
    (Collatz–Wielandt bounds of the regular splitting, see :class:`_Splitting`); for the exact
    methods (``closed_form``, ``dense``) it is (rate, rate) up to round-off; for ``arpack`` it is
    (rate, rate) and not certified. ``horizon``/``neutral``: with a horizon of k steps, the
    result is *neutral within the horizon* when the bracket shows |ρ − 1|·k < ``horizon_tol``
    (E‖w_k‖² changes by less than that fraction over k steps): then ``verdict`` says so instead
    of forgets/resists, and ``rate`` is only known to that precision.

    **Shared curvature λI** (:meth:`HessianSet.from_factors` ``shared=``): the null
    space N of the per-sample factors is invariant and every J is a scalar j there, so T is
    block diagonal and ρ(T) = max(``span_rate``, ``null_rate``) exactly, with ``span_rate`` the
    spectral radius on the span and ``null_rate`` = E[j²] (None without a null mode; then
    ``rate`` = ``span_rate`` as before). When the null mode dominates, ``eigenmatrix`` is None
    (the eigenmatrix is the projector onto N, outside span coordinates) and ``bounds`` are
    (null_rate, null_rate).
    """

    rate: float
    eigenmatrix: np.ndarray | None = field(repr=False)
    span_dim: int
    null_dim: int
    method: str
    converged: bool
    notion: str = MEAN_SQUARE
    bounds: tuple[float, float] = (math.nan, math.nan)
    horizon: int | None = None
    neutral: bool = False
    elapsed: float = 0.0
    span_rate: float = math.nan
    null_rate: float | None = None
    #: the relative tolerance the enclosure guarantees for ``rate`` (≥ the requested ``tol``:
    #: never below the round-off allowance of the solve)
    tol: float = math.nan

    @property
    def decided(self) -> bool:
        """The enclosure ``bounds`` excludes 1: ρ(T) > 1 (forgets) or ρ(T) ≤ 1 (resists) is proven
        up to the stated round-off allowance. Otherwise ``verdict`` says "undecided"."""
        lo, hi = self.bounds
        return bool(lo > 1.0 or hi <= 1.0)

    @property
    def forgets(self) -> bool:
        """ρ(T) > 1: the model escapes w* in mean square (forgets). From the enclosure when it is
        decided; when it is not (see :attr:`decided`) the best estimate ``rate > 1``."""
        lo, hi = self.bounds
        if lo > 1.0:
            return True
        if hi <= 1.0:
            return False
        return self.rate > 1.0

    diverges = deprecated_alias("forgets")

    @property
    def verdict(self) -> str:
        if self.neutral:
            return (f"neutral within the horizon: |ρ(T) − 1|·{self.horizon} is below the "
                    "horizon tolerance, so E‖w_k‖² neither grows nor decays detectably")
        if not self.decided:
            lo, hi = self.bounds
            x = max(abs(lo - 1.0), abs(hi - 1.0))
            return f"undecided (ρ within ±{x:.2g} of 1)"
        return verdict_text(self.forgets)


@analysis({"method": [Options(METHODS)], "tol": POSITIVE, "time_budget": TIME_BUDGET,
           "horizon": [None, *at_least(1)], "horizon_tol": POSITIVE})
def mean_square(hs: HessianSet | Dynamics, schedule: Schedule | None = None, *,
                method: str = "auto", tol: float = 1e-12, time_budget: float | None = None,
                horizon: int | None = None, horizon_tol: float = 1e-2) -> MeanSquareResult:
    """Exact mean-square analysis on the span of the Hessians (contract §3).

    ρ(T) is the spectral radius of T(M) = E[J M Jᵀ] restricted to symmetric matrices on the span
    U of the Hessians that enter J. ``method``:

    - ``"closed_form"``: commuting sets, ρ = max_k E[j_k²];
    - ``"dense"``: eigenvalues of the r²×r² matrix (r ≤ 60);
    - ``"splitting"``: T = 𝒜 + 𝒩 with 𝒜(M) = E[J] M E[J]ᵀ inverted exactly (Stein equation in
      the eigenbasis of E[J]); ρ(T) is the root of ρ((μ − 𝒜)⁻¹𝒩) = 1, which no longer sees the
      cluster of eigenvalues just below 1 that tiny-curvature directions put into T. Returns a
      certified bracket (Collatz–Wielandt);
    - ``"lanczos"``: summed schedule (T self-adjoint), in the eigenbasis of E[J] where
      𝒜(M) = E[J] M E[J] is diagonal: Newton on μ for ρ((μ − 𝒜)^{-1/2} 𝒩 (μ − 𝒜)^{-1/2}) = 1,
      each step a Lanczos solve of that symmetric operator, which — unlike T — has no cluster of
      eigenvalues near its top (a handful of applications where Lanczos on T needs ~100);
      falls back to Lanczos on T. Other schedules (T not self-adjoint) use ARPACK;
    - ``"arpack"``: ARPACK (Lanczos/Arnoldi with implicit restarts) on T from the identity,
      stopped on the residual ‖Tx − θx‖ ≤ tol·θ;
    - ``"auto"``: closed form if commuting, dense for r ≤ ``DENSE_MAX_SPAN``, splitting for
      r ≤ ``SPLITTING_MAX_SPAN``, Lanczos above (or splitting whenever a ``time_budget`` or
      ``horizon`` is given).

    ``tol``: relative precision of ρ. ``time_budget`` (seconds, splitting only): when it runs out
    the certified bracket found so far is returned with ``converged=False`` and a
    RuntimeWarning. ``horizon`` (steps): ρ is only needed to the precision a k-step run can
    detect, |ρ − 1|·k ≥ ``horizon_tol``; the solver stops there and reports
    ``neutral=True`` when the bracket lies inside that band. BLAS threads are capped by
    :func:`blas_threads` (``RMT_BLAS_THREADS``).
    """
    t0 = time.perf_counter()
    if horizon is not None:
        horizon = check_int(horizon, "horizon", minimum=1)
    if time_budget is not None and not (time_budget > 0):
        raise ValueError(f"time_budget must be a positive number of seconds, got {time_budget!r}")
    dyn = as_dynamics(hs, schedule)
    check_choice(method, "method", METHODS)
    # a Dynamics is immutable: the plain (no budget, no horizon) result is kept on it, so that
    # analyses that each need ρ(T) of the same Dynamics (forecast, stationary, reports) solve once
    key = (method, float(tol)) if time_budget is None and horizon is None else None
    cache = dyn.results_cache
    if key is not None and key in cache:
        return cache[key]
    res = _mean_square(dyn, method, tol, time_budget, horizon, horizon_tol, t0)
    if key is not None:
        cache[key] = res
    return res


def _mean_square(dyn, method, tol, time_budget, horizon, horizon_tol, t0):
    op = MeanSquareOperator(dyn)
    band = horizon_tol / horizon if horizon is not None else 0.0
    if op.hs.kind == "commuting" and method in ("auto", "closed_form"):
        rate, _ = _commuting_rate(dyn)
        allow = 64 * EPS * (max(t.n for t in dyn.terms) + 2) * abs(rate)
        return _with_null(op, rate, None, "closed_form", True, (rate - allow, rate + allow),
                          horizon, band, t0, tol=max(tol, allow / max(rate, 1e-300)))
    if method == "closed_form":
        raise ValueError("method='closed_form' needs a commuting HessianSet")
    if op.self_adjoint:  # summed: a symmetric eigenproblem on Sym_r with an enclosure (§10)
        if time_budget is not None and method in ("auto", "splitting"):
            try:
                b = _splitting_rate(op, tol=tol, time_budget=time_budget, stop_width=band)
            except np.linalg.LinAlgError:
                b = None
            if b is not None and b.timed_out:
                warnings.warn(
                    f"mean_square: time budget of {time_budget} s ran out after {b.evaluations} "
                    f"solves; returning the certified bracket ρ ∈ [{1 + b.lo:.15g}, {1 + b.hi:.15g}]",
                    RuntimeWarning, stacklevel=4)
                return _with_null(op, 1.0 + b.estimate, b.eigenmatrix, "splitting", False,
                                  (1.0 + b.lo, 1.0 + b.hi), horizon, band, t0, tol=tol)
        s = summed_rate(op, method, tol)
        return _with_null(op, s.rate, s.eigenmatrix, s.method, s.converged, (s.lo, s.hi),
                          horizon, band, t0, tol=s.tol)
    probe = op.apply(np.eye(op.r))
    if not np.all(np.isfinite(probe)):
        raise ValueError("T(I) is not finite: the curvature times η overflows the "
                         f"{dyn.combinator} operator (rescale the Hessians or η)")
    if method == "auto" and (horizon is not None or time_budget is not None):
        method = "splitting"
    used = method
    bracket = None
    if method in ("splitting", "auto") and (method == "splitting" or (
            DENSE_MAX_SPAN < op.r <= SPLITTING_MAX_SPAN)):
        try:
            b = _splitting_rate(op, tol=tol, time_budget=time_budget, stop_width=band)
        except np.linalg.LinAlgError:
            b = None
        if b is not None:
            if b.timed_out:
                warnings.warn(
                    f"mean_square: time budget of {time_budget} s ran out after {b.evaluations} "
                    f"solves; returning the certified bracket ρ ∈ [{1 + b.lo:.15g}, {1 + b.hi:.15g}]",
                    RuntimeWarning, stacklevel=4)
            rate, V, used = 1.0 + b.estimate, b.eigenmatrix, "splitting"
            bracket = (1.0 + b.lo, 1.0 + b.hi)
        else:
            used = "lanczos"
    if bracket is None:
        rate, V, used, _ = op.rate(method=used, tol=tol)
    if not np.isfinite(rate):
        raise ValueError(f"the {used} solver returned a non-finite ρ(T) = {rate} (overflow: "
                         "rescale the Hessians or η)")
    lo, hi = _positive_map_bounds(op, V, rate)
    if bracket is not None:  # both are certified; keep what both allow (the union if they clash)
        lo2, hi2 = max(lo, bracket[0]), min(hi, bracket[1])
        lo, hi = (lo2, hi2) if lo2 <= hi2 else (min(lo, bracket[0]), max(hi, bracket[1]))
    rate = min(max(rate, lo), hi)
    allow = 64 * EPS * (op.r + 2) * max(abs(rate), 1e-300)
    tol_eff = max(tol, allow / max(abs(rate), 1e-300))
    conv = max(rate - lo, hi - rate) <= tol_eff * max(abs(rate), 1e-300)
    return _with_null(op, rate, V, used, bool(conv), (lo, hi), horizon, band, t0, tol=tol_eff)


def _positive_map_bounds(op, V, rate):
    """Collatz–Wielandt bounds of ρ(T) from the eigenmatrix estimate V (T is positive for every
    schedule, §10.6), widened by a round-off allowance."""
    if V is None:
        return -math.inf, math.inf
    lo, hi = _cw_bracket(op.apply, V)
    if not math.isfinite(hi):
        up = cw_upper(op.apply, V)
        hi = up if math.isfinite(up) else math.inf
    allow = 64 * EPS * (op.r + 2) * max(abs(rate), abs(lo), 1e-300)
    return lo - allow, hi + allow


def _with_null(op, rate, V, method, converged, bounds, horizon, band, t0, tol=math.nan):
    """The result from the span rate and, with a shared λI, the null scalar mode E[j²]."""
    span_rate, null = rate, op.null_rate
    if null is not None:  # ρ = max(span, null mode); the null mode is a closed form (round-off)
        na = 64 * EPS * abs(null)
        if null > rate:
            rate, V = null, None
        bounds = (max(bounds[0], null - na), max(bounds[1], null + na))
    neutral = horizon is not None and bounds[0] >= 1 - band and bounds[1] <= 1 + band
    return MeanSquareResult(rate, V, op.r, op.null_dim, method, converged, bounds=bounds,
                            horizon=horizon, neutral=neutral, elapsed=time.perf_counter() - t0,
                            span_rate=span_rate, null_rate=null, tol=tol)


@analysis({"method": [Options(METHODS)], "tol": POSITIVE, "time_budget": TIME_BUDGET})
def mean_square_rate(hs: HessianSet | Dynamics, schedule: Schedule | None = None, *,
                     method: str = "auto", tol: float = 1e-12,
                     time_budget: float | None = None) -> float:
    """ρ(T): the mean-square growth rate per step on the span of the Hessians (contract §3).

    T(M) = E[J M Jᵀ]; for the summed schedule
    T(M) = (I−ηD)M(I−ηD) + η²(1−α)²N_R(M) + η²α²N_F(M). E‖w_k‖² ~ ρ(T)^k on the span;
    ρ(T) > 1 ⇔ the iterates escape w* (the model forgets). The null-space dimension is
    ``hs.null_dim`` (or :func:`mean_square` for a result object). See :func:`mean_square`.
    """
    return mean_square(hs, schedule, method=method, tol=tol, time_budget=time_budget).rate


@analysis({"time_budget": TIME_BUDGET})
def mean_square_stable(hs: HessianSet | Dynamics, schedule: Schedule | None = None, *,
                       time_budget: float | None = None) -> bool:
    """Sign test ρ(T) ≤ 1 (the model resists) without computing ρ to full precision.

    Regular splitting (:func:`mean_square`, ``method="splitting"``): ρ(T) < 1 ⇔ ρ(𝒜) < 1 and
    ρ((I − 𝒜)⁻¹𝒩) < 1, and the second is certified by one Collatz–Wielandt bound at μ = 1 —
    a single well-conditioned eigen-solve, whatever the cluster of T's spectrum below 1.
    Only when ρ(T) is within the certificate's resolution of 1 is ρ refined further. For the
    summed schedule above ``SPLITTING_MAX_SPAN`` the same splitting is symmetrised in the
    eigenbasis of E[J] and solved by Lanczos (fast, not certified; see ``method="lanczos"``).
    """
    stable, decided = _stability(as_dynamics(hs, schedule), time_budget=time_budget)
    if not decided:
        warnings.warn("mean_square_stable: ρ(T) lies within the round-off allowance of 1; the "
                      "sign is undecided and the best estimate is returned (see mean_square(...)"
                      ".bounds)", RuntimeWarning, stacklevel=2)
    return stable


def _is_stable(dyn, time_budget=None):
    return _stability(dyn, time_budget)[0]


def _stability(dyn, time_budget=None):
    """(ρ(T) ≤ 1, decided): the sign test and whether its enclosure proves it."""
    if dyn.has_null_mode and dyn.null_rate > 1.0 + 64 * EPS:  # the null scalar mode of a shared λI
        return False, True
    if dyn.hs.kind == "commuting":
        rate = _commuting_rate(dyn)[0]
        allow = 64 * EPS * (max(t.n for t in dyn.terms) + 2) * rate
        return rate <= 1.0, (rate - allow > 1.0 or rate + allow <= 1.0)
    op = MeanSquareOperator(dyn)
    if op.self_adjoint:
        margin, decided = summed_sign(op)
        return margin >= 0.0, decided
    if op.r <= 2:
        res = _mean_square(dyn, "dense", 1e-12, None, None, 1e-2, time.perf_counter())
        return res.rate <= 1.0, res.decided
    try:
        b = _splitting_rate(op, tol=1e-12, time_budget=time_budget, verdict_only=True)
    except np.linalg.LinAlgError:
        res = _mean_square(dyn, "lanczos", 1e-12, None, None, 1e-2, time.perf_counter())
        return res.rate <= 1.0, res.decided
    if b.hi <= 0.0:
        return True, True
    if b.lo > 0.0:
        return False, True
    return b.estimate <= 0.0, False


def _stability_margin(dyn):
    """A continuous function with the sign of 1 − ρ(T): 1/ρ(K(1)) − 1 (−1 when ρ(𝒜) ≥ 1).

    Same sign as 1 − ρ(T) by the regular-splitting theorem, and well conditioned near ρ = 1
    (no near-1 cluster): what root-finders on η, B, α should evaluate. With the null mode of a
    shared λI: the minimum of that and 1 − E[j²] (ρ(T) ≤ 1 iff both are ≥ 0).
    """
    span = _span_margin(dyn)
    return span if not dyn.has_null_mode else min(span, 1.0 - dyn.null_rate)


def _span_margin(dyn):
    if dyn.hs.kind == "commuting":
        return 1.0 - _commuting_rate(dyn)[0]
    op = MeanSquareOperator(dyn)
    if op.self_adjoint:
        return summed_sign(op)[0]
    if op.r <= 2:
        return 1.0 - op.rate("dense")[0]
    try:
        split = _Splitting(op)
    except np.linalg.LinAlgError:
        return 1.0 - op.rate("lanczos")[0]
    if split.delta_mean >= 0.0:
        return -1.0 if split.delta_mean > 0.0 else 1.0 - op.rate("splitting")[0]
    kappa = _perron(split, 0.0)[0]
    return 1.0 / kappa - 1.0 if kappa > 0 else math.inf


