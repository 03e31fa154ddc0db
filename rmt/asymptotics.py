"""Random-matrix limits of the toolkit's own quantities (THEORY.md §9; issue 13).

Reference ensemble (docs/asymptotics.md states it in the same words): rank-one per-sample
Hessians H_i = g_i g_iᵀ with g_i i.i.d. N(0, I_d/d); retain n_r samples, forget n_f samples;
"online" means a fresh batch of B such samples at every step (the n → ∞ limit of sampling with
replacement).

Three groups of results; each states whether it is exact at finite size or a limit law:

1. **Online isotropic SGD/unlearning — exact for every finite d.**
   J = I − c_R Σ_{b≤B_R} g_b g_bᵀ + c_F Σ_{b≤B_F} h_b h_bᵀ, c_R = η(1−α)/B_R, c_F = ηα/B_F.
   The law of J is invariant under J ↦ QJQᵀ, so (uniform measure on the sphere is stationary)
   λ₁ = E log‖J e₁‖. Conditioning on the first rows a_R = G_Rᵀe₁, a_F = G_Fᵀe₁ gives
   ‖J e₁‖² = (1 − c_R s_R + c_F s_F)² + (c_R² s_R + c_F² s_F) t,
   s_R ~ χ²_{B_R}/d, s_F ~ χ²_{B_F}/d, t ~ χ²_{d−1}/d independent (the batch sum is not rank one,
   but its action on e₁ only involves ‖a‖²; sympy: :func:`theory.asymptotics.online_reduction`).
   :func:`isotropic_lyapunov` = ½E log(·) by quadrature; :func:`isotropic_mean_square` =
   E‖Je₁‖² = ρ(T) exactly (closed form; T commutes with conjugation, its Perron eigenmatrix is
   ∝ I). Spectrum: λ₁+…+λ_k = E log vol_k(J E_k); for rank-one steps (one set with batch 1) this is
   ½E log[(1 − c s_k)² + c² s_k t_k], s_k ~ χ²_k/d, t_k ~ χ²_{d−k}/d
   (:func:`isotropic_lyapunov_spectrum`). :func:`online_lyapunov` is the numba Monte Carlo of the
   full d-dimensional product (independent check).
2. **Finite-sum ensemble in the proportional limit** n, d → ∞, n/d → γ (q = d/n = 1/γ). d·H̄ has
   the Marchenko–Pastur law with ratio q (:class:`MarchenkoPastur`). With η = η̃d and the
   sampling weight w of the scheme (THEORY §2.1; ω = d·w), T acts on functions f(dH̄) as
   (Tf)(ν) = a(ν)f(ν) + η̃²ω ν ∫ν′f(ν′)dμ(ν′), a(ν) = (1 − η̃ν)² − η̃²w′ν² (w′ = w for the two
   schemes whose noise is w·C(M), 0 for Bernoulli), so ρ(T) solves
   1 = η̃²ω ∫ν²/(ρ − a(ν)) dμ(ν) above the edge max a (:func:`sgd_rate_limit`) and the critical
   step is η̃* = 2Ω/((1−w′)(Ω+1)(Ω+q)) for Ω = ω/(1−w′) ≥ √q, else 2/((1−w′)λ₊)
   (:func:`sgd_critical_eta_limit`). The mixed Hessian D = (1−α)H̄_R − αH̄_F of independent blocks
   has the free difference law: edges from the critical points of the inverse Cauchy transform
   (:func:`mixed_hessian_edges`), density by the subordination fixed point
   (:func:`mixed_hessian_density`).
3. **Coherence** S_ij = |g_iᵀg_j| = mean spike + Wigner-like bulk (:func:`gaussian_coherence`),
   and the signal-plus-noise CNN at initialisation (:func:`cnn_coherence_limit`,
   :func:`memorisation_snr`).

Finite-size predictions are the limit laws evaluated at the finite ratios (q = d/n, ω = d·w):
the tests compare them with sampled matrices at growing d and check the error shrinks.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import scipy.integrate
import scipy.optimize
import scipy.special
import scipy.stats
from numba import prange as numba_prange

from .montecarlo._kernels import _CACHE, _uniform, make_jit
from .montecarlo.engine import _streams  # the per-replica stream layout of rmt.lyapunov
from .validation import check_choice, check_int, check_positive, check_unit_interval

__all__ = [
    "IsotropicExponent",
    "isotropic_lyapunov",
    "isotropic_mean_square",
    "isotropic_lyapunov_spectrum",
    "OnlineMonteCarlo",
    "online_lyapunov",
    "online_reduced_lyapunov",
    "MarchenkoPastur",
    "marchenko_pastur",
    "sampling_weight",
    "sgd_rate_limit",
    "sgd_critical_eta_limit",
    "mixed_hessian_edges",
    "mixed_hessian_density",
    "CoherenceLimit",
    "gaussian_coherence",
    "expected_max_chi2",
    "cnn_coherence_limit",
    "MemorisationSNR",
    "memorisation_snr",
    "REFERENCE_ENSEMBLE",
]

SAMPLING = ("bernoulli", "with_replacement", "without_replacement")

REFERENCE_ENSEMBLE = (
    "rank-one per-sample Hessians H_i = g_i g_iᵀ with g_i i.i.d. N(0, I_d/d); retain n_r samples, "
    "forget n_f samples; \"online\" means a fresh batch of B such samples at every step (the "
    "n → ∞ limit of sampling with replacement)."
)


# ====================================================================== 1. online isotropic
def _check_online(eta, batch, d, alpha, batch_forget):
    eta = check_positive(eta, "eta")
    batch = check_int(batch, "batch", minimum=1)
    d = check_int(d, "d", minimum=1)
    alpha = check_unit_interval(alpha, "alpha")
    batch_forget = batch if batch_forget is None else check_int(batch_forget, "batch_forget", minimum=1)
    return eta, batch, d, alpha, batch_forget


def _coefficients(eta, batch, alpha, batch_forget):
    return eta * (1.0 - alpha) / batch, eta * alpha / batch_forget


@dataclass(frozen=True)
class IsotropicExponent:
    """An exact (quadrature) exponent of the online isotropic ensemble.

    ``value``: the exponent (per step, natural log); ``error``: estimate of the absolute
    quadrature error (difference between the last two refinements); ``nodes``: grid size used.
    ``float(result)`` gives ``value``.
    """

    value: float
    error: float
    nodes: int
    eta: float
    batch: int
    d: int
    alpha: float
    batch_forget: int

    def __float__(self):
        return float(self.value)


def _log_gamma_grid(shape, scale, h_frac):
    """Trapezoid nodes/weights for E f(v), v = scale·Gamma(shape), in the variable u = log v.

    The density of u, exp(shape·u − e^u)/Γ(shape), is smooth with exponentially decaying tails
    for every shape > 0 (no endpoint singularity even for χ²₁), so the trapezoid rule converges
    geometrically. The grid spans the quantiles 1e-12 … 1 − 1e-18; the left-tail mass (where v is
    so small that f(v) ≈ f(v_lo)) is lumped into the first node, so its error is
    ≤ 1e-12·|f′|·v_lo.
    """
    a = float(shape)
    lo = math.log(scipy.stats.gamma.ppf(1e-12, a))
    hi = math.log(scipy.stats.gamma.isf(1e-18, a))
    sd = math.sqrt(float(scipy.special.polygamma(1, a)))
    h = h_frac * min(sd, 1.0)
    u = np.arange(lo, hi + h, h)
    w = np.exp(a * u - np.exp(u) - scipy.special.gammaln(a))
    w *= (1.0 - 1e-12) / w.sum()
    w[0] += 1e-12
    return scale * np.exp(u), w


def _expect_grid(f, dims, h_frac):
    """Σ f·weights over a product grid; dims = [(shape, scale) or None]; f gets broadcast arrays."""
    grids = [(np.zeros(1), np.ones(1)) if dm is None else _log_gamma_grid(dm[0], dm[1], h_frac)
             for dm in dims]
    shp = [len(g[0]) for g in grids]
    vals = []
    for k, (x, _) in enumerate(grids):
        s = [1] * len(grids)
        s[k] = -1
        vals.append(x.reshape(s))
    F = f(*vals)
    W = grids[0][1]
    for _, w in grids[1:]:
        W = np.multiply.outer(W, w)
    return float(np.sum(F * W)), int(np.prod(shp))


def _refine(f, dims, tol, what, *, warn=True, max_nodes=12_000_000):
    """Halve the step until two successive trapezoid sums agree to ``tol``.

    Returns (value, error, nodes, converged); gives up (converged False) when the next grid
    would exceed ``max_nodes``.
    """
    prev, nodes = _expect_grid(f, dims, 0.5)
    h = 0.25
    err = math.inf
    for _ in range(6):
        if nodes * 2 ** sum(dm is not None for dm in dims) > max_nodes:
            break
        val, nodes = _expect_grid(f, dims, h)
        err = abs(val - prev)
        if err <= tol:
            return val, err, nodes, True
        prev, h = val, h / 2
    if warn:
        warnings.warn(f"{what}: quadrature did not reach {tol:g} (last change {err:.3g})",
                      RuntimeWarning, stacklevel=3)
    return prev, err, nodes, False


def _inner_t(d):
    """Nodes/weights of t ~ χ²_{d−1}/d (log-variable trapezoid, fine step), or (0, 1) if d = 1."""
    if d == 1:
        return np.zeros(1), np.ones(1)
    return _log_gamma_grid((d - 1) / 2.0, 2.0 / d, 0.125)


def _nested(cR, cF, BR, BF, d, tol):
    """Adaptive fallback: ½E log X with scipy quad over s_R (and s_F), breakpoint where
    1 − c_R s_R + c_F s_F = 0 (the only place X can vanish), inner t by the trapezoid rule
    (log(A + B e^u) is analytic in |Im u| < π for A ≥ 0, so that rule is accurate there)."""
    tn, tw = _inner_t(d)

    def phi(sR, sF):
        y = 1.0 - cR * sR + cF * sF
        X = y * y + (cR * cR * sR + cF * cF * sF) * tn
        with np.errstate(divide="ignore"):
            v = 0.5 * np.log(X)
        return float(np.dot(np.where(np.isfinite(v), v, 0.0), tw))

    def over(c, k, other, base):
        dist = scipy.stats.chi2(k, scale=1.0 / d)
        hi = dist.isf(1e-18)
        pts = [base / c] if c > 0 and 0 < base / c < hi else None
        g = lambda s: other(s) * dist.pdf(s)  # noqa: E731
        v, e = scipy.integrate.quad(g, 0.0, hi, points=pts, limit=400, epsabs=tol / 10,
                                    epsrel=1e-12)
        return v, e

    if cF == 0.0:
        return over(cR, BR, lambda s: phi(s, 0.0), 1.0)
    if cR == 0.0:
        return over(-cF, BF, lambda s: phi(0.0, s), 1.0)
    errs = []

    def mid(sF):
        v, e = over(cR, BR, lambda s: phi(s, sF), 1.0 + cF * sF)
        errs.append(e)
        return v

    v, e = over(0.0, BF, mid, 1.0)
    return v, e + (max(errs) if errs else 0.0)


def _chi2_dim(k, d):
    """(shape, scale) of χ²_k/d as a Gamma variable, or None when k = 0 (the variable is 0)."""
    return None if k == 0 else (k / 2.0, 2.0 / d)


def _scalar_log_abs(c, k, d, tol):
    """½E log (1 − c s)², s ~ χ²_k/d: 1-d quadrature with the log singularity at s = 1/c."""
    dist = scipy.stats.chi2(k, scale=1.0 / d)
    f = lambda s: math.log(abs(1.0 - c * s)) * dist.pdf(s) if s != 1.0 / c else 0.0  # noqa: E731
    hi = dist.isf(1e-18)
    pts = [1.0 / c] if 0 < 1.0 / c < hi else None
    v, e = scipy.integrate.quad(f, 0.0, hi, points=pts, limit=500, epsabs=tol / 10, epsrel=1e-13)
    return v, e


def isotropic_lyapunov(eta, batch, d, alpha=0.0, batch_forget=None, *, tol=1e-10) -> IsotropicExponent:
    """Exact top Lyapunov exponent of online isotropic SGD/unlearning (THEORY §9).

    λ₁ = ½ E log[(1 − c_R s_R + c_F s_F)² + (c_R² s_R + c_F² s_F) t],
    s_R ~ χ²_{B_R}/d, s_F ~ χ²_{B_F}/d, t ~ χ²_{d−1}/d independent, c_R = η(1−α)/B,
    c_F = ηα/B_F (``batch_forget``, default ``batch``). Evaluated by a product trapezoid rule in
    the logarithms of the chi-square variables, refined until two successive step sizes agree to
    ``tol`` (default 1e-10, so the value is good to better than 1e-8). Negative = the iterates
    return to w* almost surely (the model resists); positive = they escape (the model forgets).
    """
    eta, batch, d, alpha, bf = _check_online(eta, batch, d, alpha, batch_forget)
    tol = check_positive(tol, "tol")
    cR, cF = _coefficients(eta, batch, alpha, bf)
    if d == 1 and (cF == 0.0 or cR == 0.0):
        c, k = (cR, batch) if cF == 0.0 else (-cF, bf)
        v, e = _scalar_log_abs(c, k, 1, tol)
        return IsotropicExponent(v, e, 0, eta, batch, d, alpha, bf)

    def f(sR, sF, t):
        X = (1.0 - cR * sR + cF * sF) ** 2 + (cR * cR * sR + cF * cF * sF) * t
        return 0.5 * np.log(X)

    dims = [_chi2_dim(batch, d) if cR > 0 else None, _chi2_dim(bf, d) if cF > 0 else None,
            _chi2_dim(d - 1, d)]
    val, err, nodes, ok = _refine(f, dims, tol, "isotropic_lyapunov", warn=False)
    if not ok:  # X comes close to 0 with visible probability (small d): adaptive quadrature
        val, err = _nested(cR, cF, batch, bf, d, tol)
        nodes = 0
    return IsotropicExponent(val, err, nodes, eta, batch, d, alpha, bf)


def isotropic_mean_square(eta, batch, d, alpha=0.0, batch_forget=None) -> float:
    """Exact mean-square growth rate ρ(T) = E‖J e₁‖² of online isotropic SGD/unlearning.

    T(M) = E[J M Jᵀ] commutes with M ↦ QMQᵀ, so its Perron eigenmatrix (Krein–Rutman: PSD) is
    ∝ I and ρ(T) = E‖Je₁‖² = 1 − 2c_R μ_R + 2c_F μ_F + c_R² m2_R + c_F² m2_F − 2c_R c_F μ_R μ_F
    + (c_R² μ_R + c_F² μ_F)(d−1)/d with μ = B/d, m2 = B(B+2)/d² (sympy:
    :func:`theory.asymptotics.online_mean_square`). The a.s.-vs-m.s. split is
    ½ log ρ(T) − λ₁ ≥ 0 (Jensen). ρ(T) > 1 = escapes in mean square (the model forgets).
    """
    eta, batch, d, alpha, bf = _check_online(eta, batch, d, alpha, batch_forget)
    cR, cF = _coefficients(eta, batch, alpha, bf)
    muR, muF = batch / d, bf / d
    m2R, m2F = batch * (batch + 2) / d**2, bf * (bf + 2) / d**2
    return (1.0 - 2 * cR * muR + 2 * cF * muF + cR**2 * m2R + cF**2 * m2F - 2 * cR * cF * muR * muF
            + (cR**2 * muR + cF**2 * muF) * (d - 1) / d)


def isotropic_lyapunov_spectrum(eta, batch, d, alpha=0.0, batch_forget=None, *, k=None,
                                tol=1e-10) -> np.ndarray:
    """The first ``k`` Lyapunov exponents λ₁ ≥ … ≥ λ_k of online isotropic SGD/unlearning.

    The invariance argument gives every partial sum: λ₁ + … + λ_j = E log vol_j(J E_j) (the
    uniform measure on the Grassmannian is stationary). For a rank-one step J = I − c g gᵀ
    (``alpha=0, batch=1``; or ``alpha=1, batch_forget=1`` with c = −η) the Gram determinant of
    J E_j is (1 − c s_j)² + c² s_j t_j with s_j ~ χ²_j/d, t_j ~ χ²_{d−j}/d independent, so every
    partial sum is a 2-d quadrature and λ_j is a difference of two of them. For batch > 1 the
    j-frame volume is a B×B determinant of two Wishart matrices and does not reduce to
    independent chi-squares; only λ₁ (:func:`isotropic_lyapunov`) is given then.
    """
    eta, batch, d, alpha, bf = _check_online(eta, batch, d, alpha, batch_forget)
    if alpha == 0.0 and batch == 1:
        c = eta
    elif alpha == 1.0 and bf == 1:
        c = -eta
    else:
        raise ValueError(
            "isotropic_lyapunov_spectrum needs a rank-one step: alpha=0 with batch=1, or alpha=1 "
            f"with batch_forget=1; got alpha={alpha}, batch={batch}, batch_forget={bf}")
    k = d if k is None else check_int(k, "k", minimum=1, maximum=d)
    tol = check_positive(tol, "tol")
    sums = [0.0]
    for j in range(1, k + 1):
        if j == d:
            v, _ = _scalar_log_abs(c, d, d, tol)
        else:
            f = lambda s, t: np.log((1.0 - c * s) ** 2 + c * c * s * t)  # noqa: E731
            v, _, _, ok = _refine(lambda s, _z, t: 0.5 * f(s, t),
                                  [_chi2_dim(j, d), None, _chi2_dim(d - j, d)], tol,
                                  "isotropic_lyapunov_spectrum", warn=False)
            if not ok:
                v = _nested_rank_one(c, j, d, tol)
        sums.append(v)
    return np.diff(np.array(sums))


def _nested_rank_one(c, j, d, tol):
    """½E log[(1 − cs)² + c²st], s ~ χ²_j/d, t ~ χ²_{d−j}/d by adaptive quad over s."""
    tn, tw = _log_gamma_grid((d - j) / 2.0, 2.0 / d, 0.125)
    dist = scipy.stats.chi2(j, scale=1.0 / d)
    hi = dist.isf(1e-18)

    def g(s):
        with np.errstate(divide="ignore"):
            v = 0.5 * np.log((1.0 - c * s) ** 2 + c * c * s * tn)
        return float(np.dot(np.where(np.isfinite(v), v, 0.0), tw)) * dist.pdf(s)

    pts = [1.0 / c] if 0 < 1.0 / c < hi else None
    return scipy.integrate.quad(g, 0.0, hi, points=pts, limit=400, epsabs=tol / 10, epsrel=1e-12)[0]


# ---------------------------------------------------------------------- online Monte Carlo
@dataclass(frozen=True)
class OnlineMonteCarlo:
    """Monte Carlo estimate of the top Lyapunov exponent of an online ensemble.

    ``value``: mean over replicas of (1/steps)Σ log‖J_k w_k‖/‖w_k‖ after ``burn_in``;
    ``stderr``: increment_sd/√(steps·replicas). For an online conjugation-invariant ensemble the
    increments are exactly i.i.d. (given the past, ‖J_k w_k‖/‖w_k‖ has the law of ‖J e₁‖ because
    J_k is fresh and invariant), so this is the exact standard error; ``stderr_replicas`` (s.d.
    of the replica means/√replicas) is the model-free cross-check. ``per_replica``: the replica
    means; ``increment_sd``: pooled sample s.d. of the one-step increments.
    """

    value: float
    stderr: float
    per_replica: np.ndarray = field(repr=False)
    increment_sd: float
    steps: int
    replicas: int
    method: str
    stderr_replicas: float = float("nan")


_jit = make_jit(_CACHE)
_pjit = make_jit(_CACHE, parallel=True)


@_jit
def _fill_normal(state, g, scale):
    """Normals N(0, scale²) from the replica's SplitMix64 stream (Marsaglia polar, in pairs)."""
    m = g.shape[0]
    i = 0
    while i < m:
        u = 2.0 * _uniform(state) - 1.0
        v = 2.0 * _uniform(state) - 1.0
        r2 = u * u + v * v
        if r2 >= 1.0 or r2 == 0.0:
            continue
        f = math.sqrt(-2.0 * math.log(r2) / r2) * scale
        g[i] = u * f
        if i + 1 < m:
            g[i + 1] = v * f
        i += 2


@_jit
def _online_one(d, BR, BF, cR, cF, steps, burn_in, seed, w0, out_sum, out_sq, rep):
    state = np.empty(1, np.uint64)
    state[0] = seed
    w = w0.copy()
    y = np.empty(d)
    g = np.empty(d)
    scale = 1.0 / math.sqrt(d)
    acc = 0.0
    acc2 = 0.0
    for k in range(burn_in + steps):
        for i in range(d):
            y[i] = w[i]
        for b in range(BR):
            _fill_normal(state, g, scale)
            dot = 0.0
            for i in range(d):
                dot += g[i] * w[i]
            t = cR * dot
            for i in range(d):
                y[i] -= t * g[i]
        for b in range(BF):
            _fill_normal(state, g, scale)
            dot = 0.0
            for i in range(d):
                dot += g[i] * w[i]
            t = cF * dot
            for i in range(d):
                y[i] += t * g[i]
        nrm = 0.0
        for i in range(d):
            nrm += y[i] * y[i]
        nrm = math.sqrt(nrm)
        lg = math.log(nrm)
        for i in range(d):
            w[i] = y[i] / nrm
        if k >= burn_in:
            acc += lg
            acc2 += lg * lg
    out_sum[rep] = acc
    out_sq[rep] = acc2


@_pjit
def _online_kernel(d, BR, BF, cR, cF, steps, burn_in, seeds, W0, out_sum, out_sq):
    for rep in numba_prange(seeds.shape[0]):
        _online_one(d, BR, BF, cR, cF, steps, burn_in, seeds[rep], W0[rep], out_sum, out_sq, rep)


def _online_reference(d, BR, BF, cR, cF, steps, burn_in, seed, w0):
    """Pure-Python twin of :func:`_online_one` on the same SplitMix64 draws (tests compare them).

    Returns (Σ increments, Σ increments²) after ``burn_in``.
    """
    from .montecarlo._rng import SplitMix64

    rng = SplitMix64(int(seed))
    scale = 1.0 / math.sqrt(d)

    def normals():
        g = []
        while len(g) < d:
            u = 2.0 * rng.uniform() - 1.0
            v = 2.0 * rng.uniform() - 1.0
            r2 = u * u + v * v
            if r2 >= 1.0 or r2 == 0.0:
                continue
            f = math.sqrt(-2.0 * math.log(r2) / r2) * scale
            g.append(u * f)
            if len(g) < d:
                g.append(v * f)
        return np.array(g)

    w = np.array(w0, dtype=float)
    acc = acc2 = 0.0
    for k in range(burn_in + steps):
        y = w.copy()
        for _ in range(BR):
            g = normals()
            y -= cR * float(np.dot(g, w)) * g
        for _ in range(BF):
            g = normals()
            y += cF * float(np.dot(g, w)) * g
        nrm = math.sqrt(float(np.dot(y, y)))
        w = y / nrm
        if k >= burn_in:
            acc += math.log(nrm)
            acc2 += math.log(nrm) ** 2
    return acc, acc2


def online_lyapunov(eta, batch, d, alpha=0.0, batch_forget=None, *, steps=10_000, replicas=8,
                    burn_in=0, seed=None) -> OnlineMonteCarlo:
    """Monte Carlo of the full d-dimensional online product (fresh Gaussian batch every step).

    Each replica starts from a uniform unit vector, draws at every step B_R retain and B_F forget
    vectors g ~ N(0, I_d/d) from its own SplitMix64 stream (Box–Muller; streams derived from one
    ``numpy.random.SeedSequence``, so results do not depend on the number of threads), applies
    J = I − c_R Σ g gᵀ + c_F Σ h hᵀ in O(B·d) without forming J, and averages
    log‖J w‖/‖w‖. This is the independent oracle for :func:`isotropic_lyapunov` (it does not use
    the rotation-invariance reduction).
    """
    eta, batch, d, alpha, bf = _check_online(eta, batch, d, alpha, batch_forget)
    steps = check_int(steps, "steps", minimum=1)
    replicas = check_int(replicas, "replicas", minimum=2)
    burn_in = check_int(burn_in, "burn_in", minimum=0)
    cR, cF = _coefficients(eta, batch, alpha, bf)
    gens, words = _streams(seed, replicas)
    W0 = np.empty((replicas, d))
    for r, gen in enumerate(gens):
        v = gen.standard_normal(d)
        W0[r] = v / np.linalg.norm(v)
    s = np.zeros(replicas)
    s2 = np.zeros(replicas)
    _online_kernel(d, batch if cR > 0 else 0, bf if cF > 0 else 0, cR, cF, steps, burn_in,
                   words, W0, s, s2)
    means = s / steps
    N = steps * replicas
    var = (s2.sum() - s.sum() ** 2 / N) / (N - 1)
    sd = math.sqrt(max(var, 0.0))
    return OnlineMonteCarlo(float(means.mean()), sd / math.sqrt(N), means, sd, steps, replicas,
                            "full", float(means.std(ddof=1) / math.sqrt(replicas)))


def online_reduced_lyapunov(eta, batch, d, alpha=0.0, batch_forget=None, *, samples=1_000_000,
                            replicas=8, seed=None) -> OnlineMonteCarlo:
    """Monte Carlo of the reduced form ½E log[(1 − c_R s_R + c_F s_F)² + (c_R²s_R + c_F²s_F)t].

    Draws the three chi-square variables with numpy Generators (one per replica, spawned from
    one SeedSequence). Checks the quadrature, not the reduction (:func:`online_lyapunov` does).
    """
    eta, batch, d, alpha, bf = _check_online(eta, batch, d, alpha, batch_forget)
    samples = check_int(samples, "samples", minimum=1)
    replicas = check_int(replicas, "replicas", minimum=2)
    cR, cF = _coefficients(eta, batch, alpha, bf)
    gens, _ = _streams(seed, replicas)
    means, sds = [], []
    for gen in gens:
        sR = gen.chisquare(batch, samples) / d
        sF = gen.chisquare(bf, samples) / d
        t = gen.chisquare(d - 1, samples) / d if d > 1 else np.zeros(samples)
        x = 0.5 * np.log((1 - cR * sR + cF * sF) ** 2 + (cR**2 * sR + cF**2 * sF) * t)
        means.append(x.mean())
        sds.append(x.std())
    means = np.array(means)
    sd = float(np.sqrt(np.mean(np.square(sds))))
    return OnlineMonteCarlo(float(means.mean()), sd / math.sqrt(samples * replicas), means, sd,
                            samples, replicas, "reduced",
                            float(means.std(ddof=1) / math.sqrt(replicas)))


# ====================================================================== 2. proportional limit
@dataclass(frozen=True)
class MarchenkoPastur:
    """Marchenko–Pastur law of H̄ = (1/n)Σ g_i g_iᵀ, g_i ~ N(0, I_d/d), as n, d → ∞, d/n → q.

    In the units of H̄ (the eigenvalues of d·H̄ have the standard law with ratio q, scaled by
    ``scale`` = 1/d). ``lower``/``upper``: edges of the continuous part (1 ∓ √q)²·scale;
    ``atom``: mass at 0 = max(0, 1 − 1/q) (the null space when n < d).
    """

    q: float
    scale: float

    @property
    def lower(self):
        return (1.0 - math.sqrt(self.q)) ** 2 * self.scale

    @property
    def upper(self):
        return (1.0 + math.sqrt(self.q)) ** 2 * self.scale

    @property
    def atom(self):
        return max(0.0, 1.0 - 1.0 / self.q)

    def pdf(self, x):
        """Density of the continuous part (integrates to 1 − atom)."""
        x = np.asarray(x, dtype=float) / self.scale
        lm, lp = (1 - math.sqrt(self.q)) ** 2, (1 + math.sqrt(self.q)) ** 2
        with np.errstate(invalid="ignore", divide="ignore"):
            p = np.sqrt(np.maximum((lp - x) * (x - lm), 0.0)) / (2 * math.pi * self.q * x)
        return np.where((x > lm) & (x < lp), p, 0.0) / self.scale

    def stieltjes(self, z):
        """G(z) = ∫ dμ(λ)/(z − λ) (atom included), the physical branch (G ~ 1/z at ∞)."""
        z = np.asarray(z, dtype=complex) / self.scale
        q = self.q
        lm, lp = (1 - math.sqrt(q)) ** 2, (1 + math.sqrt(q)) ** 2
        root = np.sqrt(z - lm) * np.sqrt(z - lp)
        return (z + q - 1 - root) / (2 * q * z) / self.scale

    def moment(self, k):
        """E λ^k (Narayana polynomials): Σ_{j=0}^{k−1} q^j/(j+1) C(k,j) C(k−1,j), times scale^k."""
        k = check_int(k, "k", minimum=0)
        if k == 0:
            return 1.0
        s = sum(self.q**j / (j + 1) * math.comb(k, j) * math.comb(k - 1, j) for j in range(k))
        return s * self.scale**k

    def expect(self, f):
        """∫ f dμ over the continuous part (Chebyshev substitution, smooth integrand)."""
        lm, lp = (1 - math.sqrt(self.q)) ** 2, (1 + math.sqrt(self.q)) ** 2
        half = (lp - lm) / 2

        def g(th):
            x = lm + half * (1 - math.cos(th))
            return f(x * self.scale) * half**2 * math.sin(th) ** 2 / (2 * math.pi * self.q * x)

        with warnings.catch_warnings():  # round-off plateau below 1e-13 is not an error here
            warnings.simplefilter("ignore", scipy.integrate.IntegrationWarning)
            return scipy.integrate.quad(g, 0.0, math.pi, limit=400, epsabs=1e-14, epsrel=1e-12)[0]


def marchenko_pastur(n, d) -> MarchenkoPastur:
    """The MP law of H̄ for n samples in dimension d (q = d/n, eigenvalue scale 1/d)."""
    n = check_int(n, "n", minimum=1)
    d = check_int(d, "d", minimum=1)
    return MarchenkoPastur(d / n, 1.0 / d)


def sampling_weight(sampling, n, batch):
    """(w, w′): noise weight of a scheme (THEORY §2.1) and the weight of its −H̄MH̄ part.

    bernoulli: N(M) = ((n−B)/(Bn))·(1/n)Σ H_iMH_i → (w, 0); with_replacement: (1/B)·C(M) →
    (1/B, 1/B); without_replacement: ((n−B)/(B(n−1)))·C(M) → (w, w).
    """
    check_choice(sampling, "sampling", SAMPLING)
    n = check_int(n, "n", minimum=2)
    batch = check_int(batch, "batch", minimum=1, maximum=n)
    if sampling == "bernoulli":
        w = (n - batch) / (batch * n)
        return w, 0.0
    w = 1.0 / batch if sampling == "with_replacement" else (n - batch) / (batch * (n - 1))
    return w, w


def _sgd_limit_params(eta, batch, n, d, sampling):
    n = check_int(n, "n", minimum=2)
    d = check_int(d, "d", minimum=1)
    w, wp = sampling_weight(sampling, n, batch)
    return d / n, d * w, w, wp, (None if eta is None else check_positive(eta, "eta") / d)


def sgd_rate_limit(eta, batch, n, d, sampling="with_replacement") -> float:
    """Limit of ρ(T) (on the span) for SGD on the finite-sum Gaussian ensemble.

    Solves 1 = η̃²ω ∫ ν²/(ρ − a(ν)) dμ_MP(ν) for ρ > max_{supp} a (η̃ = η/d, ω = d·w,
    a(ν) = (1 − η̃ν)² − η̃²w′ν²); if no root exists above the edge, ρ is the edge itself
    max a(ν) over the continuous support. Assumptions: the top eigenmatrix of T is a function of
    H̄ (the per-sample quadratic forms g_iᵀf(H̄)g_i concentrate, leave-one-out), which is exact in
    the limit; the finite-size value uses the finite q = d/n, ω, w′.
    """
    q, omega, w, wp, et = _sgd_limit_params(eta, batch, n, d, sampling)
    mp = MarchenkoPastur(q, 1.0)
    lm, lp = (1 - math.sqrt(q)) ** 2, (1 + math.sqrt(q)) ** 2
    a = lambda x: (1 - et * x) ** 2 - et * et * wp * x * x  # noqa: E731
    cands = [lm, lp]
    if et * et * (1 - wp) != 0:
        v = 1.0 / (et * (1 - wp))
        if lm < v < lp:
            cands.append(v)
    edge = max(a(x) for x in cands)

    def F(r):
        return et * et * omega * mp.expect(lambda x: x * x / (r - a(x))) - 1.0

    r0 = edge + 1e-12 * max(1.0, abs(edge))
    if F(r0) <= 0:
        return float(edge)
    hi = max(2 * abs(edge), 1.0) + 1.0
    while F(hi) > 0:
        hi *= 2
    return float(scipy.optimize.brentq(F, r0, hi, xtol=1e-15, rtol=1e-13))


def sgd_critical_eta_limit(batch, n, d, sampling="with_replacement") -> float:
    """Limit of the critical step η* (ρ(T) = 1) for SGD on the finite-sum Gaussian ensemble.

    η* = d·η̃*, η̃* = 2Ω/((1−w′)(Ω+1)(Ω+q)) with Ω = ω/(1−w′) when Ω ≥ √q (noise-driven), else
    η̃* = 2/((1−w′)(1+√q)²) (curvature-driven: the mean step leaves through the top edge).
    sympy: :func:`theory.asymptotics.critical_eta_limit`. Needs w′ < 1 (else solved numerically).
    """
    q, omega, w, wp, _ = _sgd_limit_params(None, batch, n, d, sampling)
    if wp < 1.0:
        Om = omega / (1.0 - wp)
        if Om >= math.sqrt(q):
            et = 2 * Om / ((1 - wp) * (Om + 1) * (Om + q))
        else:
            et = 2 / ((1 - wp) * (1 + math.sqrt(q)) ** 2)
        return float(et * d)
    mp = MarchenkoPastur(q, 1.0)
    g = lambda et: et * omega * mp.expect(lambda x: x / (2 + (wp - 1) * et * x)) - 1.0  # noqa: E731
    hi = 1.0
    while g(hi) < 0:
        hi *= 2
    return float(scipy.optimize.brentq(g, 1e-12, hi, xtol=1e-15) * d)


# ---------------------------------------------------------------------- mixed Hessian
def _mixed_params(alpha, n_retain, n_forget, d):
    alpha = check_unit_interval(alpha, "alpha")
    n_retain = check_int(n_retain, "n_retain", minimum=1)
    n_forget = check_int(n_forget, "n_forget", minimum=1)
    d = check_int(d, "d", minimum=1)
    A, beta = 1.0 - alpha, alpha
    return A, beta, d / n_retain, d / n_forget, d


def _cubic_coeffs(x, A, beta, qR, qF):
    """Coefficients (highest first) of the cubic in G: z = R(G) + 1/G for D·d, at z = x."""
    a, b = qR * A, qF * beta
    P = np.polynomial.polynomial
    one_m_a = np.array([1.0, -a])
    one_p_b = np.array([1.0, b])
    Gp = np.array([0.0, 1.0])
    lhs = x * P.polymul(P.polymul(Gp, one_m_a), one_p_b)
    rhs = P.polyadd(P.polyadd(A * P.polymul(Gp, one_p_b), -beta * P.polymul(Gp, one_m_a)),
                    P.polymul(one_m_a, one_p_b))
    c = P.polysub(lhs, rhs)
    return np.trim_zeros(c[::-1], "f")


def _cubic_density(x, A, beta, qR, qF):
    c = _cubic_coeffs(x, A, beta, qR, qF)
    r = np.roots(c)
    return float(np.max(np.abs(r.imag))) / math.pi if r.size else 0.0


def mixed_hessian_edges(alpha, n_retain, n_forget, d) -> tuple[float, float]:
    """Edges (lower, upper) of the limit spectrum of D = (1−α)H̄_R − αH̄_F (continuous part).

    H̄_R, H̄_F independent Gaussian Wisharts are asymptotically free, so d·D has the law
    (1−α)MP(q_R) ⊞ (−α)MP(q_F), q_S = d/n_S, R-transform R(w) = A/(1 − q_R A w) − β/(1 + q_F β w)
    (A = 1−α, β = α). At an edge the subordination fixed point degenerates: the inverse Cauchy
    transform z(w) = R(w) + 1/w has a real critical point, z′(w) = 0, a quartic in w
    (sympy: :func:`theory.asymptotics.mixed_hessian_edge_polynomial`). The edges are those
    critical values that bound an interval where the cubic z = R(G) + 1/G has complex roots
    (positive density). Returned in the units of D (divided by d). lower < 0 is the limit form
    of the mean-escape condition λ_min(D) < 0 on the span.
    """
    A, beta, qR, qF, d = _mixed_params(alpha, n_retain, n_forget, d)
    a, b = qR * A, qF * beta
    P = np.polynomial.polynomial
    w2 = np.array([0.0, 0.0, 1.0])
    sq = lambda p: P.polymul(p, p)  # noqa: E731
    one_m_a = np.array([1.0, -a])
    one_p_b = np.array([1.0, b])
    poly = P.polysub(P.polyadd(A * a * P.polymul(w2, sq(one_p_b)), beta * b * P.polymul(w2, sq(one_m_a))),
                     P.polymul(sq(one_m_a), sq(one_p_b)))
    roots = np.roots(np.trim_zeros(poly[::-1], "f"))
    ws = [r.real for r in roots if abs(r.imag) < 1e-9 * max(1.0, abs(r))]
    zs = []
    for w in ws:
        if abs(w) < 1e-14 or (a and abs(1 - a * w) < 1e-14) or (b and abs(1 + b * w) < 1e-14):
            continue
        zs.append(A / (1 - a * w) - beta / (1 + b * w) + 1.0 / w)
    zs = np.unique(np.round(np.array(sorted(zs)), 14))
    if zs.size < 2:
        raise RuntimeError(f"mixed_hessian_edges: found critical values {zs} (expected ≥ 2)")
    inside = [_cubic_density(0.5 * (zs[i] + zs[i + 1]), A, beta, qR, qF) > 1e-12
              for i in range(zs.size - 1)]
    idx = [i for i, ok in enumerate(inside) if ok]
    if not idx:
        raise RuntimeError("mixed_hessian_edges: no support interval between critical values")
    return float(zs[idx[0]] / d), float(zs[idx[-1] + 1] / d)


def mixed_hessian_density(x, alpha, n_retain, n_forget, d, *, eps=1e-7, maxiter=200_000,
                          tol=1e-12) -> np.ndarray:
    """Limit density of D = (1−α)H̄_R − αH̄_F at points ``x`` (units of D) by subordination.

    Belinschi–Bercovici: for μ = μ₁ ⊞ μ₂ and F_j = 1/G_j, h_j = F_j − id, the subordination
    function ω₁(z) is the attracting fixed point of ω ↦ z + h₂(z + h₁(ω)) in the upper
    half-plane and G_μ(z) = G₁(ω₁(z)). Iterated at z = d·x + i·eps (vectorised); density
    −Im G/π, converted to the units of D. Near the edges the iteration slows down (critical
    slowing); ``maxiter`` bounds it.
    """
    A, beta, qR, qF, d = _mixed_params(alpha, n_retain, n_forget, d)
    x = np.atleast_1d(np.asarray(x, dtype=float))
    z = x * d + 1j * eps
    mpR, mpF = MarchenkoPastur(qR, 1.0), MarchenkoPastur(qF, 1.0)

    def G1(w):
        return mpR.stieltjes(w / A) / A if A > 0 else 1.0 / w

    def G2(w):
        return -mpF.stieltjes(-w / beta) / beta if beta > 0 else 1.0 / w

    h1 = lambda w: 1.0 / G1(w) - w  # noqa: E731
    h2 = lambda w: 1.0 / G2(w) - w  # noqa: E731
    om = z.copy()
    for _ in range(maxiter):
        new = z + h2(z + h1(om))
        if np.max(np.abs(new - om)) < tol * (1 + np.max(np.abs(om))):
            om = new
            break
        om = new
    return -np.imag(G1(om)) / math.pi * d


# ====================================================================== 3. coherence
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


def expected_max_chi2(n, k, scale=1.0) -> float:
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


def gaussian_coherence(n, d) -> CoherenceLimit:
    """Limit of λ₁(S) and σ for S_ij = |g_iᵀg_j|, g_i i.i.d. N(0, I_d/d) (THEORY §4, §9).

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


def cnn_coherence_limit(n, d, snr, *, sigma_p=1.0, m=None) -> CoherenceLimit:
    """Limit σ of the signal-plus-noise CNN at initialisation (THEORY §6; docs/cnn.md §2.1).

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
    e_chi = math.sqrt(2.0) * math.exp(scipy.special.gammaln((D + 1) / 2) - scipy.special.gammaln(D / 2))
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


def memorisation_snr(n, d) -> MemorisationSNR:
    """Both closed-form transition SNRs (see :class:`MemorisationSNR`)."""
    n = check_int(n, "n", minimum=2)
    d = check_int(d, "d", minimum=2)
    D = d - 1
    e_chi = math.sqrt(2.0) * math.exp(scipy.special.gammaln((D + 1) / 2) - scipy.special.gammaln(D / 2))
    snr_x = math.sqrt(math.sqrt(2 / math.pi) * e_chi / (2 * d))
    snr_bbp = (float(n) * d) ** -0.25
    return MemorisationSNR(snr_x, snr_bbp, n, d)
