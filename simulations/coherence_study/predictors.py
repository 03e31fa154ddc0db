"""Predictors of forgettability for one (model, retain, forget) unit, and the rank statistics.

**Curvature predictors** (from the :class:`rmt.HessianSet` of :func:`rmt.models.hessian_set`):
σ_F, σ_cross, σ_R of :func:`rmt.coherence` (contract §4) and the curvature ratio
λ_max(H̄_F)/λ_max(H̄_R), read off the factor Grams (the non-zero eigenvalues of
H̄_S = (1/n_S)Σ F_iF_iᵀ are those of the Gram FᵀF/n_S; no d×d matrix).

**Memorisation measures.** ``fitted``: :func:`rmt.models.fitted_fraction` of the forget set at
w*. ``loo_margin``: the leave-one-out margin under the model's *tangent kernel* at w*,
K_ij = ∇_w f(x_i)·∇_w f(x_j) (n×n): kernel ridge regression on the training targets with
G = K + λI, λ = :data:`LOO_RIDGE`·tr K / n, has the closed-form leave-one-out residuals
e_i = (G⁻¹y)_i / (G⁻¹)_ii, so f̂₋ᵢ(x_i) = y_i − e_i without n refits. Margin y_i·f̂₋ᵢ(x_i) for
±1 targets (negative: the rest of the data predict the other label — a memorised sample), −|e_i|
for regression. This is an approximation of retraining without sample i (exact for kernel ridge
regression with the frozen kernel), stated as such wherever it is reported. ``loo_loss`` ½e_i²
ranks the samples for the "hard" forget set.

**Rank statistics.** :func:`spearman` (average ranks for ties, Pearson on ranks — the
definition of ``scipy.stats.spearmanr``), vectorised over bootstrap resamples;
:func:`bootstrap_spearman` resamples units with replacement (percentile interval, fixed seed);
:func:`pooled_spearman` pools (data set × model) groups by ranking *within* each group (the
predictors' scales differ between models) and resamples within groups (stratified bootstrap).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.stats import rankdata

__all__ = ["LOO_RIDGE", "BOOTSTRAP", "curvature_predictors", "tangent_loo", "spearman",
           "bootstrap_spearman", "pooled_spearman"]

#: ridge of the tangent-kernel leave-one-out, relative to the mean kernel diagonal
LOO_RIDGE = 1e-3
#: bootstrap resamples of every interval
BOOTSTRAP = 2000


def curvature_predictors(hs) -> dict:
    """σ_F, σ_cross, σ_R (:func:`rmt.coherence`), λ_max(H̄_F), λ_max(H̄_R) and their ratio."""
    import rmt

    coh = rmt.coherence(hs)

    def top(which):
        G = hs.factor_gram(which)
        return float(np.linalg.eigvalsh(G)[-1]) / hs.size(which) if G.size else 0.0

    lf, lr = top("forget"), top("retain")
    return dict(sigma_f=float(coh.sigma_forget), sigma_cross=float(coh.sigma_cross),
                sigma_r=float(coh.sigma_retain), lam_forget=lf, lam_retain=lr,
                lam_ratio=lf / lr if lr > 0 else math.inf)


def tangent_loo(J: np.ndarray, y: np.ndarray, task: str) -> tuple[np.ndarray, np.ndarray]:
    """(margin, loss) per sample: leave-one-out under the tangent kernel (module docstring).

    ``J`` (n, d): per-sample output gradients ∇_w f(x_i; w*); ``y`` (n,) training targets.
    """
    J = np.asarray(J, float)
    y = np.asarray(y, float)
    K = J @ J.T
    n = K.shape[0]
    lam = LOO_RIDGE * max(float(np.trace(K)) / n, np.finfo(float).tiny)
    Ginv = np.linalg.inv(K + lam * np.eye(n))
    e = (Ginv @ y) / np.diag(Ginv)
    margin = y * (y - e) if task == "binary" else -np.abs(e)
    return margin, 0.5 * e**2


def _ranks(a: np.ndarray) -> np.ndarray:
    return rankdata(a, axis=-1)  # average ranks for ties, row-wise


def _pearson_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    x = x - x.mean(axis=-1, keepdims=True)
    y = y - y.mean(axis=-1, keepdims=True)
    den = np.sqrt((x * x).sum(axis=-1) * (y * y).sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (x * y).sum(axis=-1) / den
    return np.where(den > 0, r, np.nan)


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's ρ of x and y (NaN when either is constant) — ``scipy.stats.spearmanr``."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x and y must be 1-D of one length, got {x.shape} and {y.shape}")
    return float(_pearson_rows(_ranks(x), _ranks(y)))


def _interval(boot: np.ndarray, level: float) -> tuple[float, float, int]:
    ok = boot[np.isfinite(boot)]
    if ok.size < 0.5 * boot.size:  # most resamples degenerate: no interval
        return math.nan, math.nan, int(ok.size)
    lo, hi = np.quantile(ok, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi), int(ok.size)


def bootstrap_spearman(x: Sequence[float], y: Sequence[float], *, resamples: int = BOOTSTRAP,
                       level: float = 0.95, seed: int = 0) -> dict:
    """ρ with a percentile bootstrap interval over units: {rho, lo, hi, n, valid}.

    ``valid``: resamples in which both variables varied (the others have no ρ); the interval is
    NaN when fewer than half did."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    n = x.size
    rho = spearman(x, y) if n >= 2 else math.nan
    if n < 3 or not math.isfinite(rho):
        return dict(rho=rho, lo=math.nan, hi=math.nan, n=int(n), valid=0)
    idx = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    boot = _pearson_rows(_ranks(x[idx]), _ranks(y[idx]))
    lo, hi, valid = _interval(boot, level)
    return dict(rho=rho, lo=lo, hi=hi, n=int(n), valid=valid)


def _pooled(xs, ys):
    """Pearson of within-group centred ranks, rows = resamples; xs, ys lists of (R, n_g)."""
    cx, cy = [], []
    for x, y in zip(xs, ys):
        rx, ry = _ranks(x), _ranks(y)
        cx.append((rx - rx.mean(axis=-1, keepdims=True)) / x.shape[-1])
        cy.append((ry - ry.mean(axis=-1, keepdims=True)) / y.shape[-1])
    X, Y = np.concatenate(cx, axis=-1), np.concatenate(cy, axis=-1)
    num = (X * Y).sum(axis=-1)
    den = np.sqrt((X * X).sum(axis=-1) * (Y * Y).sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


def pooled_spearman(groups: Sequence[tuple[Sequence[float], Sequence[float]]], *,
                    resamples: int = BOOTSTRAP, level: float = 0.95, seed: int = 0) -> dict:
    """Within-group rank correlation pooled over groups, with a stratified bootstrap interval.

    ``groups``: (x, y) per (data set × model). Each group's ranks are centred and divided by its
    size, then one Pearson correlation is taken over all units. Only groups in which both x and
    y vary take part (a constant one has no ranks to pool); ``groups`` and ``n`` count those.
    One group reduces to :func:`spearman`. {rho, lo, hi, n, groups, valid}."""
    gs = [(np.asarray(x, float), np.asarray(y, float)) for x, y in groups]
    gs = [(x, y) for x, y in gs if x.size >= 2 and np.ptp(x) > 0 and np.ptp(y) > 0]
    n = sum(x.size for x, _ in gs)
    if not gs:
        return dict(rho=math.nan, lo=math.nan, hi=math.nan, n=0, groups=0, valid=0)
    rho = float(_pooled([x[None] for x, _ in gs], [y[None] for _, y in gs])[0])
    rng = np.random.default_rng(seed)
    bx, by = [], []
    for x, y in gs:
        idx = rng.integers(0, x.size, size=(resamples, x.size))
        bx.append(x[idx])
        by.append(y[idx])
    lo, hi, valid = _interval(_pooled(bx, by), level) if math.isfinite(rho) else (
        math.nan, math.nan, 0)
    return dict(rho=rho, lo=lo, hi=hi, n=int(n), groups=len(gs), valid=valid)
