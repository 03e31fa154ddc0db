"""Synthetic Hessian ensembles (THEORY.md §5, §7).

Every generator takes ``seed`` (int, SeedSequence, numpy Generator or None) and never touches
global RNG state.

- :func:`hessian_test`   — the shared-direction construction of the published "Hessian test" grids
- :func:`near_optimal`   — the near-optimality construction of Dexter et al. Theorem 2
- :func:`aligned`        — rank-one sets with separately controlled within-retain, within-forget
                           and between-set alignment, with exact (or documented expected) coherence
- :func:`commuting`      — simultaneously diagonal sets from eigenvalue profiles
- :func:`wishart`        — rank-k Wishart-type per-sample Hessians H_i = F_i F_iᵀ
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import norm as _normal

from ._validation import (
    check_finite_array,
    check_int,
    check_positive,
    check_random_state,
    check_real,
    check_unit_interval,
)
from .hessians import HessianSet

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


def random_orthogonal(d, seed=None):
    """Haar-distributed orthogonal (d, d) matrix (QR of a Gaussian matrix with sign fix)."""
    d = check_int(d, "d", minimum=1)
    rng = check_random_state(seed)
    Z = rng.standard_normal((d, d))
    Q, R = np.linalg.qr(Z)
    return Q * np.sign(np.diag(R))


def split_forget(n, forget, seed=None):
    """Indices (retain, forget) of n samples; ``forget`` is a count (random subset) or indices."""
    n = check_int(n, "n", minimum=1)
    if forget is None:
        return np.arange(n), np.array([], dtype=int)
    if isinstance(forget, (int, np.integer)) and not isinstance(forget, bool):
        nf = check_int(forget, "forget", minimum=0, maximum=n - 1)
        rng = check_random_state(seed)
        f = np.sort(rng.choice(n, size=nf, replace=False)) if nf else np.array([], dtype=int)
    else:
        f = np.asarray(forget)
        if f.ndim != 1 or not np.issubdtype(f.dtype, np.integer):
            raise TypeError("forget must be a count or a 1-d array of integer indices")
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
    if representation not in ("rank1", "commuting"):
        raise ValueError(f"representation must be 'rank1' or 'commuting', got {representation!r}")
    r, f = split_forget(G.shape[0], forget, seed)
    if representation == "commuting":
        if np.any(np.count_nonzero(G, axis=1) > 1):
            raise ValueError("representation='commuting' needs axis-aligned rank-one rows")
        lam = G**2  # H_i = g_i g_iᵀ = diag(g_i²) for axis-aligned g_i
        return HessianSet.from_commuting(lam[r], lam[f] if f.size else None)
    return HessianSet.from_factors(G[r], G[f] if f.size else None)


def hessian_test(n=100, sigma=1, *, lam=2.0, forget=None, representation="rank1", seed=None):
    """The shared-direction "Hessian test" ensemble (THEORY §7).

    d = n − σ + 1; H_i = (λn/σ) e₀e₀ᵀ for i < σ, else (λn/σ) e_{i−σ+1} e_{i−σ+1}ᵀ, so that
    λ_max(H̄) = λ (= 2 in the published grids) and the coherence is exactly σ. Rank-one factors.
    ``forget``: None (SGD), a count (random subset chosen with ``seed``) or explicit indices.
    ``representation``: "rank1" (factors g_i) or "commuting" (the same Hessians as diagonal
    eigenvalue profiles, which unlocks the closed forms of THEORY §3 — use it for grids).
    """
    n = check_int(n, "n", minimum=1)
    sigma = check_int(sigma, "sigma", minimum=1, maximum=n)
    lam = check_positive(lam, "lam")
    d = n - sigma + 1
    G = np.zeros((n, d))
    amp = math.sqrt(lam * n / sigma)
    G[:sigma, 0] = amp
    G[np.arange(sigma, n), np.arange(1, n - sigma + 1)] = amp
    return _from_rows(G, forget, seed, representation)


def near_optimal(n, sigma, lam, *, d=1, forget=None, representation="rank1", seed=None):
    """Dexter et al. Theorem 2 construction (THEORY §5.2).

    H_i = (λ n/σ) e₁e₁ᵀ for the first σ samples and 0 for the rest; then ρ(T) < 1 iff
    λ < (2/η)[1 + (n/B − 1)/σ]^{−1} (Bernoulli sampling). ``representation`` as in
    :func:`hessian_test`.
    """
    n = check_int(n, "n", minimum=1)
    sigma = check_int(sigma, "sigma", minimum=1, maximum=n)
    lam = check_positive(lam, "lam")
    d = check_int(d, "d", minimum=1)
    G = np.zeros((n, d))
    G[:sigma, 0] = math.sqrt(lam * n / sigma)
    return _from_rows(G, forget, seed, representation)


def aligned(
    n_retain,
    n_forget,
    d,
    within_retain=0.0,
    within_forget=0.0,
    between=0.0,
    *,
    noise="orthogonal",
    scale=1.0,
    seed=None,
):
    """Rank-one sets with separately controlled alignment (THEORY §4).

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
    nr = check_int(n_retain, "n_retain", minimum=1)
    nf = check_int(n_forget, "n_forget", minimum=0)
    d = check_int(d, "d", minimum=2)
    aR = check_unit_interval(within_retain, "within_retain")
    aF = check_unit_interval(within_forget, "within_forget")
    c = check_real(between, "between")
    if not -1.0 <= c <= 1.0:
        raise ValueError(f"between must lie in [-1, 1], got {c}")
    scale = check_positive(scale, "scale")
    if noise not in ("orthogonal", "gaussian"):
        raise ValueError(f"noise must be 'orthogonal' or 'gaussian', got {noise!r}")
    rng = check_random_state(seed)
    n = nr + nf
    if noise == "orthogonal" and d < n + 2:
        raise ValueError(f"noise='orthogonal' needs d >= n_retain + n_forget + 2 = {n + 2}, got d={d}")
    # A Haar-random orthonormal frame of just the columns needed (QR of a d×m Gaussian matrix),
    # instead of rotating by a full d×d orthogonal matrix.
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
    if s == 0:
        return abs(mu)
    return s * math.sqrt(2 / math.pi) * math.exp(-mu * mu / (2 * s * s)) + mu * (
        1 - 2 * _normal.cdf(-mu / s)
    )


def aligned_expected_coherence(
    n_retain, n_forget, d, within_retain=0.0, within_forget=0.0, between=0.0, *, noise="orthogonal"
):
    """Coherence of :func:`aligned` — exact for ``noise="orthogonal"``, approximate for "gaussian".

    Orthogonal noise: S = blocks [[(1−a_R)I + a_R 11ᵀ, s_x 11ᵀ], [s_x 11ᵀ, (1−a_F)I + a_F 11ᵀ]]
    with s_x = √(a_R a_F)|between|, all λ_max(H_i) = 1, so σ_R = 1 + (n_r−1)a_R etc. and σ is the
    largest eigenvalue of that block matrix (computed on the 2×2 quotient plus the 1−a parts).

    Gaussian noise: an off-diagonal inner product within set S is a_S + ζ with ζ ≈ N(0, (1−a_S²)/d),
    so E S_ij ≈ E|a_S + ζ| (folded normal mean m_S) and σ_S ≈ 1 + (n_S − 1) m_S (mean-matrix
    approximation, accurate when d ≫ n; ignores the O(√(log n / d)) spread of ‖g_i‖²). Cross
    pairs: mean √(a_R a_F)·between, variance (1 − a_R a_F between²)/d, same folded mean.
    """
    nr, nf = int(n_retain), int(n_forget)
    aR, aF, c = float(within_retain), float(within_forget), float(between)
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


def commuting(retain_eigs, forget_eigs=None, *, basis="identity", seed=None):
    """Simultaneously diagonal HessianSet from eigenvalue profiles (THEORY §3, commuting).

    ``retain_eigs``/``forget_eigs`` have shape (n, d) (non-negative). ``basis`` is "identity",
    "random" (Haar-random orthogonal from ``seed``) or an explicit orthogonal (d, d) matrix.
    """
    R = check_finite_array(retain_eigs, "retain_eigs", ndim=2)
    d = R.shape[1]
    if isinstance(basis, str):
        if basis == "identity":
            Q = None
        elif basis == "random":
            Q = random_orthogonal(d, seed)
        else:
            raise ValueError(f"basis must be 'identity', 'random' or an array, got {basis!r}")
    else:
        Q = basis
    return HessianSet.from_commuting(R, forget_eigs, basis=Q)


def wishart(n_retain, n_forget=0, d=10, k=2, *, shared=0.0, scale=1.0, seed=None):
    """Rank-k Wishart-type per-sample Hessians H_i = F_i F_iᵀ with F_i ∈ R^{d×k}.

    F_i = √scale·(√shared · F₀ + √(1−shared) · Z_i) / √d with F₀, Z_i standard Gaussian (F₀ common
    to all samples), so E H_i = scale·k·I/d and ``shared`` ∈ [0, 1] tunes the alignment of the
    curvature between samples (0: independent, 1: identical). Returns a factor-backed set.
    """
    nr = check_int(n_retain, "n_retain", minimum=1)
    nf = check_int(n_forget, "n_forget", minimum=0)
    d = check_int(d, "d", minimum=1)
    k = check_int(k, "k", minimum=1)
    shared = check_unit_interval(shared, "shared")
    scale = check_positive(scale, "scale")
    rng = check_random_state(seed)
    F0 = rng.standard_normal((d, k))
    Z = rng.standard_normal((nr + nf, d, k))
    F = math.sqrt(scale / d) * (math.sqrt(shared) * F0[None] + math.sqrt(1 - shared) * Z)
    return HessianSet.from_factors(F[:nr], F[nr:] if nf else None)
