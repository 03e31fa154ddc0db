"""Synthetic Hessian ensembles (contract §5, §7).

Every generator takes ``seed`` (int, SeedSequence, numpy Generator or None) and never touches
global RNG state. Every generator declares its arguments' allowed values as
``<generator>.parameter_constraints`` (:mod:`rmt.validation`); the sweep config looks them up.

- :func:`hessian_test`   — the shared-direction construction of the published "Hessian test" grids
- :func:`near_optimal`   — the near-optimality construction of Dexter et al. Theorem 2
- :func:`aligned`        — rank-one sets with separately controlled within-retain, within-forget
                           and between-set alignment, with exact (or documented expected) coherence
- :func:`commuting`      — simultaneously diagonal sets from eigenvalue profiles
- :func:`wishart`        — rank-k Wishart-type per-sample Hessians H_i = F_i F_iᵀ
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import cast

import numpy as np
import numpy.typing as npt

from .hessians import HessianSet
from .montecarlo._rng import Seed
from .validation import Array, Interval, Options, RandomState, check_int, constrained

__all__ = [
    "hessian_test",
    "near_optimal",
    "aligned",
    "aligned_expected_coherence",
    "commuting",
    "wishart",
    "random_orthogonal",
    "split_forget",
]


# ---------------------------------------------------------------------- constraint building blocks
def _at_least(k):
    return [Interval(Integral, k, None, closed="left")]


_POSITIVE = [Interval(Real, 0, None, closed="neither")]
_UNIT = [Interval(Real, 0, 1, closed="both")]
_SEED = [RandomState()]
#: a count of forget samples (random subset drawn with ``seed``) or explicit indices
_FORGET = [None, Interval(Integral, 0, None, closed="left"), Array(ndim=1, kind="integer")]
_REPRESENTATION = [Options(("rank1", "commuting"))]


@constrained({"d": _at_least(1), "seed": _SEED})
def random_orthogonal(d: int, seed: Seed = None) -> np.ndarray:
    """Haar-distributed orthogonal (d, d) matrix (``scipy.stats.ortho_group``, drawn from ``seed``)."""
    from scipy.stats import ortho_group  # scipy.stats costs 0.5 s at import: on first use

    return ortho_group.rvs(d, random_state=seed)


@constrained({"n": _at_least(1), "forget": _FORGET, "seed": _SEED})
def split_forget(n: int, forget: int | npt.ArrayLike | None,
                 seed: Seed = None) -> tuple[np.ndarray, np.ndarray]:
    """Indices (retain, forget) of n samples; ``forget`` is a count (random subset) or indices."""
    if forget is None:
        return np.arange(n), np.array([], dtype=int)
    if isinstance(forget, int):
        nf = check_int(forget, "forget", minimum=0, maximum=n - 1)
        rng = cast(np.random.Generator, seed)  # @constrained hands the body a Generator
        f = np.sort(rng.choice(n, size=nf, replace=False)) if nf else np.array([], dtype=int)
    else:
        f = np.asarray(forget)
        if np.any((f < 0) | (f >= n)) or np.unique(f).size != f.size:
            raise ValueError(f"forget indices must be distinct and in [0, {n}), got {f}")
        if f.size >= n:
            raise ValueError("forget must leave at least one sample in the retain set")
        f = np.sort(f)
    mask = np.ones(n, dtype=bool)
    mask[f] = False
    return np.flatnonzero(mask), f


def _from_rows(G, forget, seed, representation="rank1"):
    """Rank-one rows g_i → HessianSet; "commuting" when every g_i lies on one coordinate axis."""
    r, f = split_forget(G.shape[0], forget, seed)
    if representation == "commuting":
        if np.any(np.count_nonzero(G, axis=1) > 1):
            raise ValueError("representation='commuting' needs axis-aligned rank-one rows")
        lam = G**2  # H_i = g_i g_iᵀ = diag(g_i²) for axis-aligned g_i
        return HessianSet.from_commuting(lam[r], lam[f] if f.size else None)
    return HessianSet.from_factors(G[r], G[f] if f.size else None)


@constrained({
    "n": _at_least(1), "sigma": _at_least(1), "lam": _POSITIVE, "forget": _FORGET,
    "representation": _REPRESENTATION, "seed": _SEED,
})
def hessian_test(n: int = 100, sigma: int = 1, *, lam: float = 2.0,
                 forget: int | npt.ArrayLike | None = None, representation: str = "rank1",
                 seed: Seed = None) -> HessianSet:
    """The shared-direction "Hessian test" ensemble (contract §7).

    d = n − σ + 1; H_i = (λn/σ) e₀e₀ᵀ for i < σ, else (λn/σ) e_{i−σ+1} e_{i−σ+1}ᵀ, so that
    λ_max(H̄) = λ (= 2 in the published grids) and the coherence is exactly σ. Rank-one factors.
    ``forget``: None (SGD), a count (random subset chosen with ``seed``) or explicit indices.
    ``representation``: "rank1" (factors g_i) or "commuting" (the same Hessians as diagonal
    eigenvalue profiles, which unlocks the closed forms of contract §3 — use it for grids).
    """
    sigma = check_int(sigma, "sigma", minimum=1, maximum=n)
    d = n - sigma + 1
    G = np.zeros((n, d))
    amp = math.sqrt(lam * n / sigma)
    G[:sigma, 0] = amp
    G[np.arange(sigma, n), np.arange(1, n - sigma + 1)] = amp
    return _from_rows(G, forget, seed, representation)


@constrained({
    "n": _at_least(1), "sigma": _at_least(1), "lam": _POSITIVE, "d": _at_least(1),
    "forget": _FORGET, "representation": _REPRESENTATION, "seed": _SEED,
})
def near_optimal(n: int, sigma: int, lam: float, *, d: int = 1,
                 forget: int | npt.ArrayLike | None = None, representation: str = "rank1",
                 seed: Seed = None) -> HessianSet:
    """Dexter et al. Theorem 2 construction (contract §5.2).

    H_i = (λ n/σ) e₁e₁ᵀ for the first σ samples and 0 for the rest; then ρ(T) < 1 iff
    λ < (2/η)[1 + (n/B − 1)/σ]^{−1} (Bernoulli sampling). ``representation`` as in
    :func:`hessian_test`.
    """
    sigma = check_int(sigma, "sigma", minimum=1, maximum=n)
    G = np.zeros((n, d))
    G[:sigma, 0] = math.sqrt(lam * n / sigma)
    return _from_rows(G, forget, seed, representation)


#: Parameters shared by :func:`aligned` and :func:`aligned_expected_coherence`.
_ALIGNED = {
    "n_retain": _at_least(1),
    "n_forget": _at_least(0),
    "d": _at_least(2),
    "within_retain": _UNIT,
    "within_forget": _UNIT,
    "between": [Interval(Real, -1, 1, closed="both")],
    "noise": [Options(("orthogonal", "gaussian"))],
}


@constrained({**_ALIGNED, "scale": _POSITIVE, "seed": _SEED})
def aligned(
    n_retain: int,
    n_forget: int,
    d: int,
    within_retain: float = 0.0,
    within_forget: float = 0.0,
    between: float = 0.0,
    *,
    noise: str = "orthogonal",
    scale: float = 1.0,
    seed: Seed = None,
) -> HessianSet:
    """Rank-one sets with separately controlled alignment (contract §4).

    g_i = √scale·(√a_R u_R + √(1−a_R) z_i) for retain samples and
    g_j = √scale·(√a_F u_F + √(1−a_F) z_j) for forget samples, with unit shared directions u_R,
    u_F at cosine ``between`` = ⟨u_R, u_F⟩, a_R = ``within_retain``, a_F = ``within_forget``.

    ``noise="orthogonal"``: the z are orthonormal and orthogonal to u_R, u_F (needs
    d ≥ n_r + n_f + 2) — inner products are then exact: ⟨g_i,g_i'⟩ = scale·a_R (retain pairs),
    scale·a_F (forget pairs), scale·√(a_R a_F)·between (cross pairs), ‖g‖² = scale, and the
    coherences are exactly σ_R = 1 + (n_r−1)a_R, σ_F = 1 + (n_f−1)a_F,
    σ_cross = √(a_R a_F)|between|√(n_r n_f) (see :func:`aligned_expected_coherence`).
    ``noise="gaussian"``: z ~ N(0, I/d) isotropic, so the formulas hold in expectation up to the
    folded-normal correction documented in :func:`aligned_expected_coherence`.
    The shared directions (and orthogonal noise directions) form a Haar-random orthonormal frame
    drawn from ``seed``.
    """
    nr, nf, aR, aF, c = n_retain, n_forget, within_retain, within_forget, between
    rng = cast(np.random.Generator, seed)  # @constrained hands the body a Generator
    n = nr + nf
    if noise == "orthogonal" and d < n + 2:
        raise ValueError(f"noise='orthogonal' needs d >= n_retain + n_forget + 2 = {n + 2}, got d={d}")
    # A Haar-random orthonormal frame of just the columns needed (QR of a d×m Gaussian matrix,
    # O(d m²)), instead of the first m columns of a full d×d ortho_group draw (O(d³)): d may be
    # large with gaussian noise.
    m = n + 2 if noise == "orthogonal" else 2
    Z0, R0 = np.linalg.qr(rng.standard_normal((d, m)))
    frame = Z0 * np.sign(np.diag(R0))
    uR = frame[:, 0]
    uF = c * frame[:, 0] + math.sqrt(max(1.0 - c * c, 0.0)) * frame[:, 1]
    if noise == "orthogonal":
        Z = frame[:, 2:].T
    else:
        Z = rng.standard_normal((n, d)) / math.sqrt(d)
    a = np.concatenate([np.full(nr, aR), np.full(nf, aF)])
    U = np.vstack([np.tile(uR, (nr, 1)), np.tile(uF, (nf, 1))])
    G = math.sqrt(scale) * (np.sqrt(a)[:, None] * U + np.sqrt(1.0 - a)[:, None] * Z)
    return HessianSet.from_factors(G[:nr], G[nr:] if nf else None)


def _folded_mean(mu, s):
    """E|X| for X ~ N(mu, s²): the folded normal |N(mu, s²)| is ``foldnorm(|mu|/s, scale=s)``."""
    if s == 0:
        return abs(mu)
    from scipy.stats import foldnorm

    return float(foldnorm.mean(abs(mu) / s, scale=s))


@constrained(_ALIGNED)
def aligned_expected_coherence(
    n_retain: int, n_forget: int, d: int, within_retain: float = 0.0, within_forget: float = 0.0,
    between: float = 0.0, *, noise: str = "orthogonal",
) -> dict[str, float]:
    """Coherence of :func:`aligned` — exact for ``noise="orthogonal"``, approximate for "gaussian".

    Orthogonal noise: S = blocks [[(1−a_R)I + a_R 11ᵀ, s_x 11ᵀ], [s_x 11ᵀ, (1−a_F)I + a_F 11ᵀ]]
    with s_x = √(a_R a_F)|between|, all λ_max(H_i) = 1, so σ_R = 1 + (n_r−1)a_R etc. and σ is the
    largest eigenvalue of that block matrix (computed on the 2×2 quotient plus the 1−a parts).

    Gaussian noise: an off-diagonal inner product within set S is a_S + ζ with ζ ≈ N(0, (1−a_S²)/d),
    so E S_ij ≈ E|a_S + ζ| (folded normal mean m_S) and σ_S ≈ 1 + (n_S − 1) m_S (mean-matrix
    approximation, accurate when d ≫ n; ignores the O(√(log n / d)) spread of ‖g_i‖²). Cross
    pairs: mean √(a_R a_F)·between, variance (1 − a_R a_F between²)/d, same folded mean.
    """
    nr, nf, aR, aF, c = n_retain, n_forget, within_retain, within_forget, between
    x = math.sqrt(aR * aF) * c
    if noise == "orthogonal":
        mR, mF, mX = aR, aF, abs(x)
    else:
        mR = _folded_mean(aR, math.sqrt((1 - aR * aR) / d))
        mF = _folded_mean(aF, math.sqrt((1 - aF * aF) / d))
        mX = _folded_mean(x, math.sqrt(max(1 - x * x, 0.0) / d))
    sig_r = 1 + (nr - 1) * mR
    sig_f = 1 + (nf - 1) * mF if nf else float("nan")
    sig_x = mX * math.sqrt(nr * nf) if nf else float("nan")
    if nf:
        # S = D + low rank: on the span of the block indicator vectors the action is the 2×2
        # quotient below; off it S acts as (1 − m) per block.
        Q = np.array([[sig_r, mX * math.sqrt(nr * nf)], [mX * math.sqrt(nr * nf), sig_f]])
        cands = [np.linalg.eigvalsh(Q)[-1]]
        if nr > 1:
            cands.append(1 - mR)
        if nf > 1:
            cands.append(1 - mF)
        sigma = float(max(cands))
    else:
        sigma = sig_r
    return {"sigma": sigma, "sigma_retain": sig_r, "sigma_forget": sig_f, "sigma_cross": sig_x}


@constrained({
    "retain_eigs": [Array(ndim=2)],
    "forget_eigs": [None, Array(ndim=2)],
    "basis": [Options(("identity", "random")), Array(ndim=2)],
    "seed": _SEED,
})
def commuting(retain_eigs: npt.ArrayLike, forget_eigs: npt.ArrayLike | None = None, *,
              basis: str | npt.ArrayLike = "identity", seed: Seed = None) -> HessianSet:
    """Simultaneously diagonal HessianSet from eigenvalue profiles (contract §3, commuting).

    ``retain_eigs``/``forget_eigs`` have shape (n, d) (non-negative). ``basis`` is "identity",
    "random" (Haar-random orthogonal from ``seed``) or an explicit orthogonal (d, d) matrix.
    """
    Q: npt.ArrayLike | None = basis
    if isinstance(basis, str):
        Q = None if basis == "identity" else random_orthogonal(np.shape(retain_eigs)[1], seed)
    return HessianSet.from_commuting(retain_eigs, forget_eigs, basis=Q)


@constrained({
    "n_retain": _at_least(1), "n_forget": _at_least(0), "d": _at_least(1), "k": _at_least(1),
    "shared": _UNIT, "scale": _POSITIVE, "seed": _SEED,
})
def wishart(n_retain: int, n_forget: int = 0, d: int = 10, k: int = 2, *, shared: float = 0.0,
            scale: float = 1.0, seed: Seed = None) -> HessianSet:
    """Rank-k Wishart-type per-sample Hessians H_i = F_i F_iᵀ with F_i ∈ R^{d×k}.

    F_i = √scale·(√shared · F₀ + √(1−shared) · Z_i) / √d with F₀, Z_i standard Gaussian (F₀ common
    to all samples), so E H_i = scale·k·I/d and ``shared`` ∈ [0, 1] tunes the alignment of the
    curvature between samples (0: independent, 1: identical). Returns a factor-backed set.
    """
    nr, nf = n_retain, n_forget
    rng = cast(np.random.Generator, seed)  # @constrained hands the body a Generator
    F0 = rng.standard_normal((d, k))
    Z = rng.standard_normal((nr + nf, d, k))
    F = math.sqrt(scale / d) * (math.sqrt(shared) * F0[None] + math.sqrt(1 - shared) * Z)
    return HessianSet.from_factors(F[:nr], F[nr:] if nf else None)
