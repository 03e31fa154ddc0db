"""Online isotropic SGD/unlearning, exact at every finite d (contract §9).

J = I − c_R Σ_{b≤B_R} g_b g_bᵀ + c_F Σ_{b≤B_F} h_b h_bᵀ with g, h i.i.d. N(0, I_d/d),
c_R = η(1−α)/B_R, c_F = ηα/B_F. The law of J is invariant under J ↦ QJQᵀ, so (the uniform
measure on the sphere is stationary) λ₁ = E log‖J e₁‖, and conditioning on the first rows gives

    ‖J e₁‖² = (1 − c_R s_R + c_F s_F)² + (c_R² s_R + c_F² s_F) t,

s_R ~ χ²_{B_R}/d, s_F ~ χ²_{B_F}/d, t ~ χ²_{d−1}/d independent (sympy:
:func:`theory.asymptotics.online_reduction`). This module evaluates that expectation by
quadrature (:func:`isotropic_lyapunov`, :func:`isotropic_lyapunov_spectrum`) and gives ρ(T) in
closed form (:func:`isotropic_mean_square`). The Monte Carlo oracles of the same ensemble are in
:mod:`rmt.asymptotics.online_montecarlo`.
"""

from __future__ import annotations

from ..schedule import mixing_weights

import math
import warnings
from dataclasses import dataclass
import numpy as np
import scipy.integrate
import scipy.special
import scipy.stats

from ..validation import check_int, check_positive, check_unit_interval

__all__ = [
    "IsotropicExponent",
    "isotropic_lyapunov",
    "isotropic_mean_square",
    "isotropic_lyapunov_spectrum",
]


def _check_online(eta, batch, d, alpha, batch_forget):
    """Validated (η, B_R, d, α, B_F); B_F defaults to B_R."""
    eta = check_positive(eta, "eta")
    batch = check_int(batch, "batch", minimum=1)
    d = check_int(d, "d", minimum=1)
    alpha = check_unit_interval(alpha, "alpha")
    batch_forget = batch if batch_forget is None else check_int(batch_forget, "batch_forget", minimum=1)
    return eta, batch, d, alpha, batch_forget


def _coefficients(eta, batch, alpha, batch_forget):
    """(c_R, c_F) = (η(1−α)/B_R, ηα/B_F)."""
    retain, forget = mixing_weights(alpha)
    return eta * retain / batch, eta * forget / batch_forget


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

    def __float__(self) -> float:
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


def isotropic_lyapunov(eta: float, batch: int, d: int, alpha: float = 0.0,
                       batch_forget: int | None = None, *,
                       tol: float = 1e-10) -> IsotropicExponent:
    """Exact top Lyapunov exponent of online isotropic SGD/unlearning (contract §9).

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


def isotropic_mean_square(eta: float, batch: int, d: int, alpha: float = 0.0,
                          batch_forget: int | None = None) -> float:
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


def isotropic_lyapunov_spectrum(eta: float, batch: int, d: int, alpha: float = 0.0,
                                batch_forget: int | None = None, *, k: int | None = None,
                                tol: float = 1e-10) -> np.ndarray:
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

