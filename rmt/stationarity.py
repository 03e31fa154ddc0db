"""Is w* a stationary point of the trained objective? The check at the entry of every bridge.

The linearised theory (contract §1, §8) expands the unlearning step around the *trained minimum*
w*. A model that stopped short of it (an optimiser capped by ``max_iter``, a loose tolerance) is
not at a minimum, and every number downstream then describes a point the model never sat at. The
check is on the gradient of the **trained objective** — data loss *and* penalty:

    L(w) = (1/n) Σ_i ℓ_i(w) + ½ wᵀ C w,        ∇L(w*) = ḡ + C w*,     ḡ = (1/n) Σ_i ∇ℓ_i(w*),

with C the penalty curvature (weight decay λ/2‖w‖²: C = λI; a penalty on the coefficients only:
C = diag(λ_j)). The *data* gradient ḡ alone is not zero at a regularised minimum (ḡ = −C w*):
on standardised breast-cancer data, scikit-learn's ``LogisticRegression(C=1)`` has ‖ḡ‖ = 6.8e-3
at its converged fit while ‖∇L(w*)‖ = 1.8e-4 (default ``tol``) or 2.6e-8 (``tol=1e-12``).

**The stationarity number** (:func:`stationarity`)

    s = ‖∇L(w*)‖ / (κ · ‖w*‖),        κ = λ_max(∇²L) = λ_max((1/n) Σ_i H_i + C),

with H_i the per-sample (Gauss–Newton) Hessians. In a quadratic model of L, the distance from w*
to the minimiser is at least ‖∇L‖/κ, so s is a *lower bound on the relative distance*
‖w* − w_min‖ / ‖w*‖: s = 1e-3 means w* is at least 0.1 % of its own length away from the
minimum. Scale-free: L → cL and w → cw leave s unchanged. ``κ · ‖w*‖ = 0`` gives s = 0 when the
gradient is exactly 0, inf otherwise.

**Without w*** (:meth:`rmt.HessianSet.from_factors` only receives factors and gradients): the
penalty term C w* cannot be formed. By the convention of ``from_factors`` the gradients of a set
with shared curvature are those of the *regularised* per-sample losses, so their mean ḡ is ∇L
itself; without w* there is no length to divide by, and the number becomes

    s₀ = ‖ḡ‖ / max(rms_i ‖g_i‖, rms_i ‖F_i‖_F),

the mean gradient against the per-sample gradient scale and the curvature scale (‖F_i‖_F² =
tr H_i, so rms‖F_i‖ = √(mean tr H_i): the gradient an O(1) output residual would produce). It
reads the same way — ~1e-8 at a converged fit, 1e-2…1 for one stopped after a few iterations —
and the report's ``reference`` says which denominator was used.

**Threshold.** :data:`STATIONARITY_THRESHOLD` = 1e-3: above it the bridge warns with
:class:`NotStationaryWarning` and the number. scikit-learn's default ``tol=1e-4`` lands below it
(s = 3.1e-4 on the breast-cancer fit above); ``max_iter=3`` lands far above (s = 0.12).

**Gradients below round-off are exactly zero.** Before building the set, every bridge
(:func:`rmt.models.hessian_set`, the JAX, PyTorch and sklearn adapters — not ``from_factors``, which takes
its input as given) sets a per-sample gradient to exactly 0 when

    ‖g_i‖ ≤ τ(d)·G,   G = max_j max(‖g_j‖, ‖F_j‖_F·max(1, ‖F_j‖_F·‖w*‖))   (retain ∪ forget),

with τ(d) = 10·√d·eps the package's round-off rule (:func:`rmt.span.span_tolerance`, the span
rule's threshold) and G the data-gradient scale: the largest gradient of the set, or the gradient
g = Jᵀr that an output residual r as large as the outputs would produce — ‖F_j‖_F = ‖J_jS_j‖
is the Jacobian scale (for squared loss ‖J_j‖ itself) and ‖F_j‖_F·‖w*‖ the output scale (a bound
on |f_j| = |J_j w*| for models linear in w). A residual computed as f − y carries round-off
~eps·(|f| + |y|), so a g_i under τ(d)·G is round-off (at an interpolating minimum every one is);
left in, it would add drift directions that are noise. The count is the report's ``zeroed`` and
its ``note`` says so.

**Where it runs.** :func:`rmt.models.hessian_set`, :func:`rmt.adapters.jax.hessian_set`,
:func:`rmt.adapters.torch.hessian_set`,
:func:`rmt.adapters.sklearn.hessian_set` (w* known: s) and :meth:`rmt.HessianSet.from_factors`
when per-sample gradients are given (w* unknown: s₀). The report is attached to the returned set
as ``hs.stationarity`` (a :class:`StationarityReport`); :func:`set_stationarity` recomputes it for
any set (with ``w`` when you know w*). :func:`rmt.models.hessian_set`, and the JAX and PyTorch
adapters with ``weight_decay=None``, do not know the training penalty: they allow an isotropic
weight decay fitted to the gradient (``infer_decay=True``, the report's ``weight_decay``) — a
decayed fit is stationary for ḡ + λ̂w*, not for ḡ. Given ``weight_decay=λ`` (JAX, PyTorch) or an
estimator's own penalty (sklearn), the check uses that penalty and infers nothing.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import os
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from numbers import Real
from types import FrameType
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from .span import span_tolerance
from .validation import Array, Constraint, Interval, Options, constrained

__all__ = ["STATIONARITY_THRESHOLD", "NotStationaryWarning", "StationarityReport", "stationarity",
           "check_stationarity", "curvature_scale", "set_stationarity"]

#: s above this is reported as "not stationary" and warned about (module docstring).
STATIONARITY_THRESHOLD = 1e-3


class NotStationaryWarning(UserWarning):
    """w* is not a stationary point of the trained objective: the gradient of data loss +
    penalty at w* exceeds :data:`STATIONARITY_THRESHOLD` in the units of :func:`stationarity`."""


@dataclass(frozen=True)
class StationarityReport:
    """How far w* is from a stationary point of the trained objective (module docstring).

    ``value``: the stationarity number s (or s₀ without w*); ``stationary``: value ≤
    ``threshold``; ``gradient_norm``: ‖∇L(w*)‖ (or ‖ḡ‖ without w*); ``scale``: the denominator
    (κ·‖w*‖, or the per-sample scale); ``reference``: which denominator, in words;
    ``curvature``: κ = λ_max(∇²L) (None without w*); ``w_norm``: ‖w*‖ (None without w*);
    ``weight_decay``: an isotropic decay λ̂ ≥ 0 the check allowed because the bridge does not know
    the training penalty (None when the penalty was known); ``source``: who checked; ``note``:
    caveats (e.g. gradients of one set only, gradients set to zero); ``zeroed``: how many
    per-sample gradients the bridge set to exactly 0 as below round-off (module docstring).
    """

    value: float
    threshold: float
    gradient_norm: float
    scale: float
    reference: str
    curvature: float | None = None
    w_norm: float | None = None
    weight_decay: float | None = None
    source: str = ""
    note: str = ""
    zeroed: int = 0

    @property
    def stationary(self) -> bool:
        """s ≤ threshold."""
        return bool(self.value <= self.threshold)

    def __str__(self) -> str:
        verdict = "stationary" if self.stationary else "NOT stationary"
        where = f"{self.source}: " if self.source else ""
        decay = ("" if self.weight_decay is None
                 else f"; allowing an inferred weight decay λ̂ = {self.weight_decay:.3g}")
        note = f" ({self.note})" if self.note else ""
        return (f"{where}w* is {verdict}: s = {self.value:.3g} (threshold {self.threshold:g}) "
                f"= ‖∇L‖ {self.gradient_norm:.3g} / {self.reference} {self.scale:.3g}"
                f"{decay}{note}")


def _ratio(num: float, den: float) -> float:
    if den > 0.0 and math.isfinite(den):
        return num / den
    return 0.0 if num == 0.0 else math.inf


_THRESHOLD: list[Constraint | None] = [Interval(Real, 0, None, closed="neither")]
_NONNEG: list[Constraint | None] = [Interval(Real, 0, None, closed="left")]


@constrained({"gradient": [Array(ndim=1)], "curvature": _NONNEG, "w_norm": _NONNEG,
              "threshold": _THRESHOLD})
def stationarity(gradient: npt.ArrayLike, curvature: float, w_norm: float, *,
                 threshold: float = STATIONARITY_THRESHOLD) -> StationarityReport:
    """The stationarity number s = ‖∇L(w*)‖ / (κ·‖w*‖) (module docstring).

    ``gradient``: ∇L(w*) of the trained objective, data loss **and** penalty, (d,);
    ``curvature``: κ = λ_max(∇²L(w*)) (:func:`curvature_scale`); ``w_norm``: ‖w*‖. Returns a
    :class:`StationarityReport` (no warning: :func:`check_stationarity` warns). κ·‖w*‖ = 0 gives
    s = 0 for a zero gradient and inf otherwise.
    """
    g = float(np.linalg.norm(np.asarray(gradient, dtype=np.float64)))
    kappa, wn = float(curvature), float(w_norm)
    return StationarityReport(value=_ratio(g, kappa * wn), threshold=float(threshold),
                              gradient_norm=g, scale=kappa * wn, reference="κ·‖w*‖",
                              curvature=kappa, w_norm=wn)


_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _outside_level() -> int:
    """The ``stacklevel`` (for a ``warnings.warn`` in the caller) of the first frame outside
    the rmt package, so the warning names the user's line however deep the bridge is."""
    f: FrameType | None = sys._getframe(2)  # the caller's caller
    level = 2
    while f is not None and f.f_code.co_filename.startswith(_PACKAGE):
        f = f.f_back
        level += 1
    return level


def _warn(report: StationarityReport) -> None:
    """Warn when not stationary; the warning points at the first line outside rmt."""
    if not report.stationary:
        warnings.warn(
            f"{report}. The linearised unlearning theory expands around a minimum: refit to "
            "convergence (more iterations / a tighter tolerance) or read every forecast as one "
            "about a point the model is not at (rmt.stationarity).",
            NotStationaryWarning, stacklevel=_outside_level())


class _Text(Constraint):
    """A string (a label such as ``source``)."""

    def accepts_type(self, value: Any) -> bool:
        return isinstance(value, str)

    def check(self, value: Any, name: str) -> str:
        if not isinstance(value, str):
            raise TypeError(f"{name} must be a string, got {type(value).__name__}")
        return value

    def __str__(self) -> str:
        return "a string"


@constrained({"gradient": [Array(ndim=1)], "curvature": _NONNEG, "w_norm": _NONNEG,
              "threshold": _THRESHOLD, "source": [_Text()]})
def check_stationarity(gradient: npt.ArrayLike, curvature: float, w_norm: float, *,
                       threshold: float = STATIONARITY_THRESHOLD,
                       source: str = "") -> StationarityReport:
    """:func:`stationarity`, and a :class:`NotStationaryWarning` naming s when s > ``threshold``.

    ``source`` labels the report and the warning (e.g. ``"rmt.adapters.sklearn"``).
    """
    rep = stationarity(gradient, curvature, w_norm, threshold=threshold)
    rep = _replace(rep, source=source)
    _warn(rep)
    return rep


def _replace(rep: StationarityReport, **changes: Any) -> StationarityReport:
    from dataclasses import replace

    return replace(rep, **changes)


# ---------------------------------------------------------------------- curvature scale κ
def _columns(F: np.ndarray) -> np.ndarray:
    """Stacked factor columns (d, n·k) of an (n, d) or (n, d, k) factor array."""
    F = np.asarray(F)
    if F.ndim == 2:
        return F.T
    n, d, k = F.shape
    return F.transpose(1, 0, 2).reshape(d, n * k)


def _lambda_max(Phi: np.ndarray, diag: np.ndarray | None, lam: float) -> float:
    """λ_max(ΦΦᵀ + diag + λI) for Φ (d, m) (float64), dense on the smaller side or by Lanczos."""
    d, m = Phi.shape
    if diag is None and m <= d and m <= 4000:  # the m×m Gram has the non-zero spectrum of ΦΦᵀ
        top = float(np.linalg.eigvalsh(Phi.T @ Phi)[-1]) if m else 0.0
        return max(top, 0.0) + lam
    if d <= 2000:
        M = Phi @ Phi.T
        if diag is not None:
            M[np.diag_indices(d)] += diag
        return max(float(np.linalg.eigvalsh(M)[-1]), 0.0) + lam
    from scipy.sparse.linalg import LinearOperator, eigsh

    dg = np.zeros(d) if diag is None else diag

    def mv(v: np.ndarray) -> np.ndarray:
        v = np.ravel(v)
        return Phi @ (Phi.T @ v) + dg * v

    op = LinearOperator((d, d), matvec=mv, dtype=np.float64)
    top = float(eigsh(op, k=1, which="LA", tol=1e-6, return_eigenvectors=False)[0])
    return max(top, 0.0) + lam


@constrained({"factors": [Array(ndim=(2, 3))], "shared": [None, Interval(Real, 0, None,
                                                                          closed="left"),
                                                           Array(ndim=(1, 2))]})
def curvature_scale(factors: npt.ArrayLike, shared: float | npt.ArrayLike | None = None) -> float:
    """κ = λ_max((1/n) Σ_i F_i F_iᵀ + C): the largest curvature of the trained objective.

    ``factors``: per-sample Gauss–Newton factors of *all* training samples, (n, d) or (n, d, k);
    ``shared``: the penalty curvature C — a scalar λ (C = λI), a vector c (d,) (C = diag(c), a
    per-coordinate penalty such as weight decay on coefficients only) or a factor Q (d, k)
    (C = QQᵀ). Dense on the smaller of d and n·k (≤ 4000), else Lanczos (relative accuracy 1e-6,
    ample for a scale).
    """
    F = np.asarray(factors, dtype=np.float64)
    n = F.shape[0]
    Phi = _columns(F) / math.sqrt(max(n, 1))
    lam, diag = 0.0, None
    if shared is not None:
        C = np.asarray(shared, dtype=np.float64)
        if C.ndim == 0:
            lam = float(C)
        elif C.ndim == 1:
            if C.shape != (Phi.shape[0],) or np.any(C < 0):
                raise ValueError(f"shared as a vector must be non-negative of shape "
                                 f"({Phi.shape[0]},), got shape {C.shape}")
            diag = C
        else:
            if C.shape[0] != Phi.shape[0]:
                raise ValueError(f"shared as a factor Q must have {Phi.shape[0]} rows, got "
                                 f"shape {C.shape}")
            Phi = np.concatenate([Phi, C], axis=1)
    return _lambda_max(Phi, diag, lam)


# ---------------------------------------------------------------------- HessianSets
class _SetLike(Protocol):
    """What :func:`set_stationarity` reads of a :class:`rmt.HessianSet` (no import: the
    HessianSet module calls this one)."""

    @property
    def has_forget(self) -> bool: ...

    @property
    def shared_scalar(self) -> float: ...

    @property
    def shared_factor(self) -> np.ndarray | None: ...

    def gradients(self, which: str = ...) -> np.ndarray | None: ...

    def factors(self, which: str = ...) -> np.ndarray: ...


class _HessianSetConstraint(Constraint):
    """A HessianSet (duck-typed: per-sample factors, gradients and shared curvature)."""

    _needs = ("gradients", "factors", "shared_scalar", "shared_factor", "has_forget")

    def accepts_type(self, value: Any) -> bool:
        return all(hasattr(value, a) for a in self._needs)

    def check(self, value: Any, name: str) -> Any:
        if not self.accepts_type(value):
            raise TypeError(f"{name} must be a HessianSet, got {type(value).__name__}")
        return value

    def __str__(self) -> str:
        return "a HessianSet"


def _present(hs: _SetLike) -> tuple[str, ...]:
    return ("retain", "forget") if hs.has_forget else ("retain",)


def _row_norms_sq(a: np.ndarray) -> np.ndarray:
    """Σ over all but the first axis of a², accumulated in float64 over blocks of rows (large
    float32 input is never upcast as a whole)."""
    flat = a.reshape(a.shape[0], -1)
    step = max(1, 2**22 // max(1, flat.shape[1]))
    out = np.empty(flat.shape[0])
    for s in range(0, flat.shape[0], step):
        blk = np.asarray(flat[s:s + step], dtype=np.float64)
        out[s:s + step] = np.einsum("ij,ij->i", blk, blk)
    return out


def _set_report(hs: _SetLike, w: np.ndarray | None, infer_decay: bool, threshold: float,
                source: str) -> StationarityReport:
    present = _present(hs)
    with_g = [s for s in present if hs.gradients(s) is not None]
    if not with_g:
        raise ValueError("the stationarity check needs per-sample gradients; this HessianSet "
                         "has none (an interpolating minimum: nothing to check)")
    note = ("" if len(with_g) == len(present) else
            f"gradients of the {with_g[0]} set only: ḡ is its mean, not the training gradient")
    n = 0
    gsum: np.ndarray | None = None
    g_sq = f_sq = 0.0
    for s in with_g:
        g = np.asarray(hs.gradients(s))
        part = g.sum(axis=0, dtype=np.float64)
        gsum = part if gsum is None else gsum + part
        n += g.shape[0]
        g_sq += float(_row_norms_sq(g).sum())
        f_sq += float(_row_norms_sq(np.asarray(hs.factors(s))).sum())
    assert gsum is not None
    gbar = gsum / n
    if w is None or not np.any(w):
        per_sample = max(math.sqrt(g_sq / n), math.sqrt(f_sq / n))
        gn = float(np.linalg.norm(gbar))
        why = "w* unknown" if w is None else "w* = 0"
        return StationarityReport(value=_ratio(gn, per_sample), threshold=threshold,
                                  gradient_norm=gn, scale=per_sample,
                                  reference=f"max(rms‖g_i‖, rms‖F_i‖) ({why})",
                                  source=source, note=note)
    grad = gbar
    lam_hat: float | None = None
    if infer_decay:  # the isotropic decay λ ≥ 0 that best cancels ḡ along w*
        lam_hat = max(0.0, -float(gbar @ w) / float(w @ w))
        grad = gbar + lam_hat * w
    factors = np.concatenate([_columns(np.asarray(hs.factors(s), dtype=np.float64))
                              for s in present], axis=1)
    n_all = sum(np.asarray(hs.factors(s)).shape[0] for s in present)
    Phi = factors / math.sqrt(n_all)
    Q = hs.shared_factor
    if Q is not None:
        Phi = np.concatenate([Phi, np.asarray(Q, dtype=np.float64)], axis=1)
    kappa = _lambda_max(Phi, None, float(hs.shared_scalar) + (lam_hat or 0.0))
    rep = stationarity(grad, kappa, float(np.linalg.norm(w)), threshold=threshold)
    return _replace(rep, weight_decay=lam_hat, source=source, note=note)


@constrained({"hs": [_HessianSetConstraint()], "w": [None, Array(ndim=1)],
              "infer_decay": [Options((False, True))], "threshold": _THRESHOLD,
              "source": [_Text()]})
def set_stationarity(hs: _SetLike, w: npt.ArrayLike | None = None, *, infer_decay: bool = False,
                     threshold: float = STATIONARITY_THRESHOLD,
                     source: str = "HessianSet") -> StationarityReport:
    """The stationarity report of a HessianSet with per-sample gradients (module docstring).

    ∇L is the mean of the stored gradients over *all* samples (retain and forget: the set is
    taken to be the training set), which by the convention of
    :meth:`rmt.HessianSet.from_factors` already includes the penalty when the set carries shared
    curvature. With ``w`` (w*, in the coordinates of the factors): s = ‖∇L‖ / (κ·‖w*‖),
    κ = λ_max of the mean Hessian (shared term included). Without ``w``: s₀ = ‖ḡ‖ /
    max(rms‖g_i‖, rms‖F_i‖). ``infer_decay``: also allow an isotropic weight decay λ̂ ≥ 0 that the
    set does not carry (∇L = ḡ + λ̂w*, κ += λ̂; λ̂ = max(0, −ḡ·w*/‖w*‖²) minimises ‖ḡ + λw*‖) —
    for bridges that do not know the training penalty. No warning (the bridges warn).
    """
    wa = None if w is None else np.asarray(w, dtype=np.float64)
    return _set_report(hs, wa, bool(infer_decay), float(threshold), source)


# ---------------------------------------------------------------------- hooks of the bridges
_DEFERRED: contextvars.ContextVar[bool] = contextvars.ContextVar("rmt_stationarity_deferred",
                                                                 default=False)


@contextlib.contextmanager
def _deferred() -> Iterator[None]:
    """Inside: :func:`_from_factors_hook` attaches its report but does not warn (a bridge that
    knows w* checks afterwards, once)."""
    token = _DEFERRED.set(True)
    try:
        yield
    finally:
        _DEFERRED.reset(token)


def _from_factors_hook(hs: Any) -> StationarityReport:
    """The check :meth:`rmt.HessianSet.from_factors` runs when gradients are given (w* unknown:
    s₀); warns unless a bridge deferred it."""
    rep = _set_report(hs, None, False, STATIONARITY_THRESHOLD, "HessianSet.from_factors")
    if not _DEFERRED.get():
        _warn(rep)
    return rep


def _zero_roundoff(gradients: list[np.ndarray | None], factors: list[np.ndarray | None],
                   w: npt.ArrayLike) -> tuple[list[np.ndarray | None], int, str]:
    """Per-sample gradients below round-off set to exactly 0 (module docstring):
    g_i := 0 iff ‖g_i‖ ≤ τ(d)·G, G = max_j max(‖g_j‖, ‖F_j‖_F·max(1, ‖F_j‖_F·‖w*‖)) over all
    the arrays given. Returns the arrays (copies only where something changed), the count and a
    note."""
    norms = [None if g is None else np.sqrt(_row_norms_sq(np.asarray(g))) for g in gradients]
    scale = 0.0
    for g_n in norms:
        if g_n is not None and g_n.size:
            scale = max(scale, float(g_n.max()))
    d = 0
    w_norm = float(np.linalg.norm(np.asarray(w, dtype=np.float64)))
    for F in factors:
        if F is not None:
            Fa = np.asarray(F)
            d = Fa.shape[1]
            if Fa.shape[0]:
                f_n = np.sqrt(_row_norms_sq(Fa))
                scale = max(scale, float(np.max(f_n * np.maximum(1.0, f_n * w_norm))))
    if scale == 0.0 or d == 0:
        return gradients, 0, ""
    cut = span_tolerance(d) * scale
    out: list[np.ndarray | None] = []
    count = 0
    for g, g_n in zip(gradients, norms):
        if g is None or g_n is None:
            out.append(g)
            continue
        small = g_n <= cut
        k = int(small.sum())
        if k and np.any(np.asarray(g)[small] != 0):
            g = np.array(g, copy=True)
            g[small] = 0
        count += k
        out.append(g)
    note = ("" if count == 0 else
            f"{count} per-sample gradient(s) below round-off (‖g_i‖ ≤ τ(d)·G = {cut:.3g}) set to "
            "exactly 0")
    return out, count, note


def _bridge_check(hs: Any, w: npt.ArrayLike, source: str, *,
                  infer_decay: bool = True, zeroed: int = 0,
                  zero_note: str = "") -> StationarityReport:
    """The check of a bridge that knows w* but not the training penalty: attach and warn."""
    rep = _set_report(hs, np.asarray(w, dtype=np.float64), infer_decay, STATIONARITY_THRESHOLD,
                      source)
    if zeroed:
        rep = _replace(rep, zeroed=zeroed, note="; ".join(x for x in (rep.note, zero_note) if x))
    hs.stationarity = rep
    _warn(rep)
    return rep

