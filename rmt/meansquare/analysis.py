"""ρ(T), its result object and sign tests (docs/contract.md §3, §10)."""

from __future__ import annotations

import math
import time
import warnings

import numpy as np
import scipy.linalg
import scipy.optimize
import scipy.sparse.linalg as spla
from dataclasses import dataclass, field

from .._validation import check_choice, check_int
from ..dynamics import as_dynamics
from ..threads import capped as _capped
from ..verdict import MEAN_SQUARE, verdict_text
from .config import DENSE_MAX_SPAN, METHODS, SPLITTING_MAX_SPAN
from .krylov import IDENTITY_SHARE, _block_krylov_top
from .operator import MeanSquareOperator
from .splitting import _perron, _Splitting, _splitting_rate

# ---------------------------------------------------------------------- commuting closed forms
def _commuting_rate(dyn):
    """ρ(T) = max_k E[j_k²] of a commuting set (THEORY §3) from the per-direction factors."""
    rates = dyn.direction_rates()
    if rates.size == 0:
        raise ValueError("every Hessian that enters the dynamics is zero")
    k = int(np.argmax(rates))
    return float(rates[k]), k


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

    **Shared curvature λI** (issue 11, :meth:`HessianSet.from_factors` ``shared=``): the null
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

    @property
    def forgets(self) -> bool:
        """ρ(T) > 1: the model escapes w* in mean square (forgets)."""
        return self.rate > 1.0

    @property
    def diverges(self) -> bool:
        """Alias of :attr:`forgets` (ρ(T) > 1)."""
        return self.forgets

    @property
    def verdict(self) -> str:
        if self.neutral:
            return (f"neutral within the horizon: |ρ(T) − 1|·{self.horizon} is below the "
                    "horizon tolerance, so E‖w_k‖² neither grows nor decays detectably")
        return verdict_text(self.forgets)


@_capped
def mean_square(hs, schedule=None, *, method="auto", tol=1e-12, time_budget=None,
                horizon=None, horizon_tol=1e-2) -> MeanSquareResult:
    """Exact mean-square analysis on the span of the Hessians (THEORY §3).

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
    cache = dyn.__dict__.setdefault("_mean_square_cache", {})
    if key is not None and key in cache:
        return cache[key]
    res = _mean_square(dyn, method, tol, time_budget, horizon, horizon_tol, t0)
    if key is not None:
        cache[key] = res
    return res


def _mean_square(dyn, method, tol, time_budget, horizon, horizon_tol, t0):
    op = MeanSquareOperator(dyn)
    band = horizon_tol / horizon if horizon is not None else 0.0
    if method == "auto" and (horizon is not None or time_budget is not None) \
            and op.hs.kind != "commuting":
        method = "splitting"
    used = method
    if method in ("splitting", "auto") and (method == "splitting" or (
            op.hs.kind != "commuting" and DENSE_MAX_SPAN < op.r <= SPLITTING_MAX_SPAN)):
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
            return _with_null(op, 1.0 + b.estimate, b.eigenmatrix, "splitting", b.converged,
                              (1.0 + b.lo, 1.0 + b.hi), horizon, band, t0)
        used = "lanczos"
    rate, V, used, conv = op.rate(method=used, tol=tol)
    return _with_null(op, rate, V, used, conv, (rate, rate), horizon, band, t0)


def _with_null(op, rate, V, method, converged, bounds, horizon, band, t0):
    """The result from the span rate and, with a shared λI, the null scalar mode E[j²]."""
    span_rate, null = rate, op.null_rate
    if null is not None and null > rate:
        rate, V, bounds = null, None, (null, null)
    elif null is not None:
        bounds = (max(bounds[0], null), max(bounds[1], null))
    if horizon is None:
        neutral = False
    elif method == "splitting":
        neutral = bounds[0] >= 1 - band and bounds[1] <= 1 + band
    else:
        neutral = abs(rate - 1.0) <= band
    return MeanSquareResult(rate, V, op.r, op.null_dim, method, converged, bounds=bounds,
                            horizon=horizon, neutral=neutral, elapsed=time.perf_counter() - t0,
                            span_rate=span_rate, null_rate=null)


def mean_square_rate(hs, schedule=None, *, method="auto", tol=1e-12, time_budget=None) -> float:
    """ρ(T): the mean-square growth rate per step on the span of the Hessians (THEORY §3).

    T(M) = E[J M Jᵀ]; for the summed schedule
    T(M) = (I−ηD)M(I−ηD) + η²(1−α)²N_R(M) + η²α²N_F(M). E‖w_k‖² ~ ρ(T)^k on the span;
    ρ(T) > 1 ⇔ the iterates escape w* (the model forgets). The null-space dimension is
    ``hs.null_dim`` (or :func:`mean_square` for a result object). See :func:`mean_square`.
    """
    return mean_square(hs, schedule, method=method, tol=tol, time_budget=time_budget).rate


@_capped
def mean_square_stable(hs, schedule=None, *, time_budget=None) -> bool:
    """Sign test ρ(T) ≤ 1 (the model resists) without computing ρ to full precision.

    Regular splitting (:func:`mean_square`, ``method="splitting"``): ρ(T) < 1 ⇔ ρ(𝒜) < 1 and
    ρ((I − 𝒜)⁻¹𝒩) < 1, and the second is certified by one Collatz–Wielandt bound at μ = 1 —
    a single well-conditioned eigen-solve, whatever the cluster of T's spectrum below 1.
    Only when ρ(T) is within the certificate's resolution of 1 is ρ refined further. For the
    summed schedule above ``SPLITTING_MAX_SPAN`` the same splitting is symmetrised in the
    eigenbasis of E[J] and solved by Lanczos (fast, not certified; see ``method="lanczos"``).
    """
    return _is_stable(as_dynamics(hs, schedule), time_budget=time_budget)


def _is_stable(dyn, time_budget=None):
    if dyn.has_null_mode and dyn.null_rate > 1.0:  # the null scalar mode of a shared λI
        return False
    if dyn.hs.kind == "commuting":
        return _commuting_rate(dyn)[0] <= 1.0
    op = MeanSquareOperator(dyn)
    if op.r <= 2:
        return op.rate("dense")[0] <= 1.0
    if op.self_adjoint and op.r > SPLITTING_MAX_SPAN:
        return _large_span_margin(op) >= 0.0
    try:
        b = _splitting_rate(op, tol=1e-12, time_budget=time_budget, verdict_only=True)
    except np.linalg.LinAlgError:
        return op.rate("lanczos")[0] <= 1.0
    if b.hi <= 0.0:
        return True
    if b.lo > 0.0:
        return False
    return b.estimate <= 0.0


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
    if op.r <= 2:
        return 1.0 - op.rate("dense")[0]
    if op.self_adjoint and op.r > SPLITTING_MAX_SPAN:
        return _large_span_margin(op)
    try:
        split = _Splitting(op)
    except np.linalg.LinAlgError:
        return 1.0 - op.rate("lanczos")[0]
    if split.delta_mean >= 0.0:
        return -1.0 if split.delta_mean > 0.0 else 1.0 - op.rate("splitting")[0]
    kappa = _perron(split, 0.0)[0]
    return 1.0 / kappa - 1.0 if kappa > 0 else math.inf


def _large_span_margin(op, tol=1e-12):
    """The splitting margin 1/κ − 1 of a summed T at r > ``SPLITTING_MAX_SPAN``, in the
    eigenbasis of E[J]: κ = λ_max(D^{-1/2}𝒩D^{-1/2}) with D = 1 − a_i a_j > 0 (ρ(𝒜) < 1), the
    symmetrised K(1) of the regular splitting (same sign as 1 − ρ(T), THEORY §3), by Lanczos
    from the pole guess plus an identity share — a few applications where ARPACK on the
    non-symmetric K(1) in span coordinates needs several times more, each dearer. −1 when
    ρ(𝒜) > 1 (then ρ(T) ≥ ρ(𝒜) > 1). Not certified (Krylov residual rule; the bracketed margin
    of :func:`_splitting_rate` is used up to ``SPLITTING_MAX_SPAN``)."""
    eig = op.eigenbasis
    D = eig.one_minus_aa
    low = float(np.min(D))
    if low < 0.0:
        return -1.0
    if low == 0.0:
        return 1.0 - op.rate("lanczos", tol=tol)[0]
    Dh = np.sqrt(D)
    K = eig.symmetrised_splitting(Dh)
    r = op.r
    start = Dh * eig.pole_guess()
    start = eig.pack(start / np.linalg.norm(start) + IDENTITY_SHARE * np.eye(r) / np.sqrt(r))
    # a root-finder needs the margin's sign far from the root and its value near it: a loose
    # solve first (κ to ~1e-6), refined from its own eigenvector only when |margin| < 1e-3
    for inner in (max(1e-6, 0.1 * tol), 0.1 * tol):
        out = _block_krylov_top(K, [start], inner)
        if out is None:
            return 1.0 - op.rate("lanczos", tol=tol)[0]
        kappa, start, _ = out
        if kappa <= 0:
            return math.inf
        if abs(1.0 / kappa - 1.0) > 1e-3:
            break
    return 1.0 / kappa - 1.0


