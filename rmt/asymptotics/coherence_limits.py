"""Coherence limits (contract §4, §9): S_ij = |g_iᵀg_j| as a mean spike plus a Wigner-like bulk
(:func:`gaussian_coherence`), and the signal-plus-noise CNN at initialisation
(:func:`cnn_coherence_limit`, :func:`memorisation_snr`; contract §6).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import scipy.integrate
import scipy.special
import scipy.stats

from ..validation import check_int, check_positive

__all__ = [
    "CoherenceLimit",
    "gaussian_coherence",
    "expected_max_chi2",
    "cnn_coherence_limit",
    "MemorisationSNR",
    "memorisation_snr",
]


@dataclass(frozen=True)
class CoherenceLimit:
    """Spike-plus-bulk (BBP-type) prediction of λ₁(S) and σ.

    ``sigma`` = ``lambda_max`` / ``max_diag`` with ``max_diag`` = E max_i λ_max(H_i);
    ``spike`` θ = top eigenvalue of the mean part minus its bulk level; ``bulk_edge`` = upper
    edge of the Wigner-like bulk (semicircle of variance ``bulk_var``·n around ``bulk_center``);
    ``above`` = θ exceeds the BBP threshold √(n·bulk_var) (then λ₁ = level + θ + n·v/θ).
    """

    sigma: float
    lambda_max: float
    max_diag: float
    spike: float
    bulk_center: float
    bulk_edge: float
    bulk_var: float
    above: bool


def expected_max_chi2(n: int, k: int, scale: float = 1.0) -> float:
    """E max of n i.i.d. scale·χ²_k = ∫₀^∞ (1 − F(x)ⁿ) dx (quadrature)."""
    n = check_int(n, "n", minimum=1)
    k = check_int(k, "k", minimum=1)
    dist = scipy.stats.chi2(k)
    hi = dist.isf(1e-17 / n)
    f = lambda x: -math.expm1(n * dist.logcdf(x)) if x > 0 else 1.0  # noqa: E731
    med = dist.ppf(0.5)
    v = scipy.integrate.quad(f, 0, med, limit=200, epsabs=1e-12)[0] + \
        scipy.integrate.quad(f, med, hi, limit=400, epsabs=1e-12)[0]
    return v * scale


def _expected_chi(k):
    """E[χ_k] = √2·Γ((k+1)/2)/Γ(k/2)."""
    return math.sqrt(2.0) * math.exp(scipy.special.gammaln((k + 1) / 2) - scipy.special.gammaln(k / 2))


def _expected_max_normal(n):
    """E max of n i.i.d. standard normals (quadrature of n z φ(z) Φ(z)^{n−1})."""
    def f(z):
        return z * n * math.exp(scipy.stats.norm.logpdf(z) + (n - 1) * scipy.stats.norm.logcdf(z))

    return scipy.integrate.quad(f, -12, 12, limit=200)[0]


def _bbp(level, theta, n_var):
    """Top eigenvalue of level·I + θ uuᵀ + Wigner(variance n_var): BBP (θ + n_var/θ above √n_var)."""
    thr = math.sqrt(n_var)
    if theta > thr:
        return level + theta + n_var / theta, True
    return level + 2 * thr, False


def gaussian_coherence(n: int, d: int) -> CoherenceLimit:
    """Limit of λ₁(S) and σ for S_ij = |g_iᵀg_j|, g_i i.i.d. N(0, I_d/d) (contract §4, §9).

    Exact finite-d entry moments: E‖g‖ = √(2/d)Γ((d+1)/2)/Γ(d/2), m = E|g_iᵀg_j| =
    √(2/π)E‖g‖/√d (given g_i, g_iᵀg_j ~ N(0, ‖g_i‖²/d)), v = Var|g_iᵀg_j| = 1/d − m². Mean part:
    (1 − m)I + m 11ᵀ, a spike θ = n·m along 1/√n over the level 1 − m; fluctuations: a
    Wigner-like bulk (f(x) = |x| is even, so the linear Hermite coefficient vanishes and the
    kernel-matrix bulk is a semicircle of variance n·v, Cheng & Singer 2013). BBP:
    λ₁ = 1 − m + θ + n v/θ when θ > √(nv) (always, for n ≥ 3). The denominator
    max_i λ_max(H_i) = max_i ‖g_i‖² is replaced by E max of n χ²_d/d (:func:`expected_max_chi2`).
    """
    n = check_int(n, "n", minimum=2)
    d = check_int(d, "d", minimum=2)
    e_norm = math.sqrt(2.0 / d) * math.exp(scipy.special.gammaln((d + 1) / 2) - scipy.special.gammaln(d / 2))
    m = math.sqrt(2 / math.pi) * e_norm / math.sqrt(d)
    v = 1.0 / d - m * m
    level = 1.0 - m
    theta = n * m
    lam, above = _bbp(level, theta, n * v)
    mx = expected_max_chi2(n, d, 1.0 / d)
    return CoherenceLimit(lam / mx, lam, mx, theta, level, level + 2 * math.sqrt(n * v), v, above)


def cnn_coherence_limit(n: int, d: int, snr: float, *, sigma_p: float = 1.0,
                        m: int | None = None) -> CoherenceLimit:
    """Limit σ of the signal-plus-noise CNN at initialisation (contract §6; docs/cnn.md §2.1).

    Entries of m·|⟨g_i, g_k⟩| (wide network, m → ∞; two classes of n/2): diagonal a = s + σ_p²D
    (s = ‖μ‖² = SNR²σ_p²d, D = d − 1), between classes c = ½E|⟨ξ_i,ξ_k⟩| =
    ½σ_p²√(2/π)E[χ_D], within a class b = E|s + η| with η ≈ N(0, σ_p⁴D/4) (co-activation ½ of the
    filters for near-orthogonal noise, d → ∞). Mean part: level a − b, spikes k(b + c) (all-ones)
    and k(b − c) (class contrast), k = n/2; bulk variance ≈ n·Var of the entries; σ = λ₁/a
    with max_i a_i = s + σ_p²·E max of n χ²_D (:func:`expected_max_chi2`; → a as d → ∞, slowly:
    the relative excess is ≈ √(2/d)·√(2 log n)). The crossover of σ from the noise plateau
    1 + 2kc/a to the signal asymptote 1 + k(s + c)/a is :func:`memorisation_snr`.
    With a finite width ``m`` the diagonal noise factor A_i/m (A_i ~ Bin(2m, ½)) adds variance
    1/(2m): the denominator becomes s + σ_p²D(1 + √(1/(2m) + 2/D)·e_n) (Gaussian extreme value,
    e_n = E max of n standard normals) and Var η gains σ_p⁴D·3/(8m).
    """
    n = check_int(n, "n", minimum=2)
    d = check_int(d, "d", minimum=2)
    snr = check_positive(snr, "snr", allow_zero=True)
    sigma_p = check_positive(sigma_p, "sigma_p")
    D = d - 1
    s = snr**2 * sigma_p**2 * d
    a = s + sigma_p**2 * D
    e_chi = _expected_chi(D)
    c = 0.5 * sigma_p**2 * math.sqrt(2 / math.pi) * e_chi
    if m is not None:
        m = check_int(m, "m", minimum=1)
    v_eta = sigma_p**4 * D * (0.25 + (0.375 / m if m else 0.0))
    sd = math.sqrt(v_eta)
    b = float(scipy.stats.foldnorm(c=s / sd, scale=sd).mean())
    k = n / 2.0
    var_b = s * s + v_eta - b * b
    var_c = v_eta - c * c
    n_var = 0.5 * n * (var_b + var_c)
    lam, above = _bbp(a - b, k * (b + c), n_var)
    if m is None:
        mx = s + sigma_p**2 * expected_max_chi2(n, D)
    else:
        mx = s + sigma_p**2 * D * (1 + math.sqrt(0.5 / m + 2.0 / D) * _expected_max_normal(n))
    return CoherenceLimit(lam / mx, lam, mx, k * (b + c), a - b, a - b + 2 * math.sqrt(n_var),
                          n_var / n, above)


@dataclass(frozen=True)
class MemorisationSNR:
    """Closed-form SNR locations of the CNN (initialisation, squared loss, m → ∞).

    ``coherence``: where σ crosses over from noise- to signal-dominated: s = c, i.e.
    ‖μ‖² = ½E|⟨ξ_i, ξ_k⟩| ⇔ SNR_× = [√(2/π)E[χ_{d−1}]/(2d)]^{1/2} ≈ (2π)^{−1/4} d^{−1/4}
    (the intersection of the noise asymptote 1 + 2kc/a and the signal asymptote 1 + k(s + c)/a);
    independent of n. ``signed_gram``: BBP threshold of the signed gradient Gram. Its signal part
    is s·1[y_i = y_k] = (s/2)(11ᵀ + yyᵀ) (a filter is active on exactly one of ±μ, so different
    classes share no signal), its noise part ≈ ½⟨ξ_i, ξ_k⟩ off the diagonal (mean co-activation ½
    of near-orthogonal patches; the diagonal only shifts): the class contrast is a spiked
    covariance σ_p²/2·I + (s/2)eeᵀ, ℓ = s/σ_p² = ‖μ‖²/σ_p², which separates iff ℓ > √(d/n) ⇔
    n‖μ‖⁴/(σ_p⁴d) = 1 — Kou et al.'s benign/harmful boundary with constant 1, SNR = (nd)^{−1/4}.
    Measured on sampled CNN gradients (n = 200–600) the label overlap of the top eigenvector
    switches on between 1.4× and 2× this SNR: the random gating (replaced here by its mean)
    raises the constant.
    """

    coherence: float
    signed_gram: float
    n: int
    d: int


def memorisation_snr(n: int, d: int) -> MemorisationSNR:
    """Both closed-form transition SNRs (see :class:`MemorisationSNR`)."""
    n = check_int(n, "n", minimum=2)
    d = check_int(d, "d", minimum=2)
    D = d - 1
    e_chi = _expected_chi(D)
    snr_x = math.sqrt(math.sqrt(2 / math.pi) * e_chi / (2 * d))
    snr_bbp = (float(n) * d) ** -0.25
    return MemorisationSNR(snr_x, snr_bbp, n, d)

