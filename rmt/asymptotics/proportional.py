"""The finite-sum Gaussian ensemble in the proportional limit n, d → ∞, n/d → γ (contract §9).

d·H̄ has the Marchenko–Pastur law with ratio q = d/n (:class:`MarchenkoPastur`). With η = η̃d and
the sampling weight w of the scheme (contract §2.1; ω = d·w), T acts on functions f(dH̄) as
(Tf)(ν) = a(ν)f(ν) + η̃²ω ν ∫ν′f(ν′)dμ(ν′), a(ν) = (1 − η̃ν)² − η̃²w′ν², so ρ(T) solves
1 = η̃²ω ∫ν²/(ρ − a(ν)) dμ(ν) above the edge max a (:func:`sgd_rate_limit`), with the critical
step in closed form (:func:`sgd_critical_eta_limit`). The mixed Hessian D = (1−α)H̄_R − αH̄_F of
independent blocks has the free difference law: edges from the critical points of the inverse
Cauchy transform (:func:`mixed_hessian_edges`), density by subordination
(:func:`mixed_hessian_density`).
"""

from __future__ import annotations

from ..schedule import mixing_weights

import math
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
import numpy.typing as npt
import scipy.integrate
import scipy.optimize

from ..validation import check_choice, check_int, check_positive, check_unit_interval

__all__ = [
    "MarchenkoPastur",
    "marchenko_pastur",
    "sampling_weight",
    "sgd_rate_limit",
    "sgd_critical_eta_limit",
    "mixed_hessian_edges",
    "mixed_hessian_density",
]

SAMPLING = ("bernoulli", "with_replacement", "without_replacement")


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
    def lower(self) -> float:
        return (1.0 - math.sqrt(self.q)) ** 2 * self.scale

    @property
    def upper(self) -> float:
        return (1.0 + math.sqrt(self.q)) ** 2 * self.scale

    @property
    def atom(self) -> float:
        return max(0.0, 1.0 - 1.0 / self.q)

    def pdf(self, x: npt.ArrayLike) -> np.ndarray:
        """Density of the continuous part (integrates to 1 − atom)."""
        x = np.asarray(x, dtype=float) / self.scale
        lm, lp = (1 - math.sqrt(self.q)) ** 2, (1 + math.sqrt(self.q)) ** 2
        with np.errstate(invalid="ignore", divide="ignore"):
            p = np.sqrt(np.maximum((lp - x) * (x - lm), 0.0)) / (2 * math.pi * self.q * x)
        return np.where((x > lm) & (x < lp), p, 0.0) / self.scale

    def stieltjes(self, z: npt.ArrayLike) -> np.ndarray:
        """G(z) = ∫ dμ(λ)/(z − λ) (atom included), the physical branch (G ~ 1/z at ∞)."""
        z = np.asarray(z, dtype=complex) / self.scale
        q = self.q
        lm, lp = (1 - math.sqrt(q)) ** 2, (1 + math.sqrt(q)) ** 2
        root = np.sqrt(z - lm) * np.sqrt(z - lp)
        return (z + q - 1 - root) / (2 * q * z) / self.scale

    def moment(self, k: int) -> float:
        """E λ^k (Narayana polynomials): Σ_{j=0}^{k−1} q^j/(j+1) C(k,j) C(k−1,j), times scale^k."""
        k = check_int(k, "k", minimum=0)
        if k == 0:
            return 1.0
        s = sum(self.q**j / (j + 1) * math.comb(k, j) * math.comb(k - 1, j) for j in range(k))
        return s * self.scale**k

    def expect(self, f: Callable[[float], float]) -> float:
        """∫ f dμ over the continuous part (Chebyshev substitution, smooth integrand)."""
        lm, lp = (1 - math.sqrt(self.q)) ** 2, (1 + math.sqrt(self.q)) ** 2
        half = (lp - lm) / 2

        def g(th):
            x = lm + half * (1 - math.cos(th))
            return f(x * self.scale) * half**2 * math.sin(th) ** 2 / (2 * math.pi * self.q * x)

        with warnings.catch_warnings():  # round-off plateau below 1e-13 is not an error here
            warnings.simplefilter("ignore", scipy.integrate.IntegrationWarning)
            return scipy.integrate.quad(g, 0.0, math.pi, limit=400, epsabs=1e-14, epsrel=1e-12)[0]


def marchenko_pastur(n: int, d: int) -> MarchenkoPastur:
    """The MP law of H̄ for n samples in dimension d (q = d/n, eigenvalue scale 1/d)."""
    n = check_int(n, "n", minimum=1)
    d = check_int(d, "d", minimum=1)
    return MarchenkoPastur(d / n, 1.0 / d)


def sampling_weight(sampling: str, n: int, batch: int) -> tuple[float, float]:
    """(w, w′): noise weight of a scheme (contract §2.1) and the weight of its −H̄MH̄ part.

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


def sgd_rate_limit(eta: float, batch: int, n: int, d: int,
                   sampling: str = "with_replacement") -> float:
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


def sgd_critical_eta_limit(batch: int, n: int, d: int, sampling: str = "with_replacement") -> float:
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
    A, beta = mixing_weights(alpha)
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


def mixed_hessian_edges(alpha: float, n_retain: int, n_forget: int, d: int) -> tuple[float, float]:
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


def mixed_hessian_density(x: npt.ArrayLike, alpha: float, n_retain: int, n_forget: int, d: int,
                          *, eps: float = 1e-7, maxiter: int = 200_000,
                          tol: float = 1e-12) -> np.ndarray:
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

