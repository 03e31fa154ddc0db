"""Sympy derivations of the stability thresholds (contract §2.1, §3, §5).

Every public function here is a *procedure*: it starts from the second-moment recursion
E[w_{k+1} w_{k+1}ᵀ] = T(E[w_k w_kᵀ]) written in sympy symbols and ends in a threshold by
substitution, ``solve`` and ``simplify``. Each returns a :class:`Derivation` holding

- ``expression``: the final sympy object (a threshold, a condition or a list of roots),
- ``function``: a ``lambdify``'d numpy function of ``args`` (in that order),
- ``latex``: LaTeX of the final result,
- ``steps``: the intermediate (description, sympy object) pairs, so a reader can follow the
  derivation and modify it (they are printed in docs/theory.md).

Symbols (all positive unless stated): η (eta), α (alpha, in [0, 1]), per set S ∈ {R, F}: size n_S,
batch B_S, per-direction mean eigenvalue m_S = (1/n)Σλ_i and mean square q_S = (1/n)Σλ_i²;
λ̄ = λ_max(H̄), σ the coherence, L = max_i λ_max(H_i).

The identities a derivation relies on are checked explicitly and raise :class:`DerivationError`
(never ``assert``, which ``python -O`` strips). Numeric evaluation of these results on a
HessianSet lives in :mod:`theory.closed_forms`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import sympy as sp

from rmt.combinators import get_combinator
from rmt.schedule import mixing_weights

__all__ = [
    "Derivation",
    "DerivationError",
    "SYMBOLS",
    "sampling_coefficients",
    "commuting_direction_rate",
    "commuting_critical_eta",
    "commuting_critical_batch",
    "commuting_critical_alpha",
    "alternating_direction_polynomial",
    "dexter_thm1",
    "dexter_single_sample",
    "dexter_thm2_condition",
    "wu_ma_e_sharpness",
    "wu_ma_e_nonuniformity",
    "unlearning_noise_condition",
    "unlearning_mean_escape",
    "sam_threshold",
    "all_derivations",
    "collect_derivations",
    "noise_operator_threshold",
    "weyl_convergence",
    "scheme_analogue_threshold",
    "coherence_sum_threshold",
    "coherence_resistance_threshold",
    "summed_operator_expansion",
    "summed_critical_eta_scalar",
]

SCHEMES = ("bernoulli", "with_replacement", "without_replacement")

eta, alpha = sp.symbols("eta alpha", positive=True)
n, B = sp.symbols("n B", positive=True)
n_R, B_R, m_R, q_R = sp.symbols("n_R B_R m_R q_R", positive=True)
n_F, B_F, m_F, q_F = sp.symbols("n_F B_F m_F q_F", positive=True)
lam_bar, sigma, L, c, e = sp.symbols("lambdabar sigma L c e", positive=True)
D, V = sp.symbols("D V", real=True)
rho_sam, a_sam = sp.symbols("rho a", positive=True)
lam_min = sp.symbols("lambda_min", nonnegative=True)
s_nu = sp.symbols("s", positive=True)

#: name → sympy symbol, for readers who want to build on these derivations.
SYMBOLS = {
    str(s): s
    for s in (eta, alpha, n, B, n_R, B_R, m_R, q_R, n_F, B_F, m_F, q_F, lam_bar, sigma, L, c, e,
              D, V, rho_sam, a_sam, lam_min, s_nu)
}


@dataclass(frozen=True)
class Derivation:
    """Result of one symbolic derivation: expression, numpy function, LaTeX and the steps."""

    name: str
    #: a sympy expression, or a tuple/list of them
    expression: Any
    args: tuple
    #: the lambdified numpy function of ``args``
    function: Callable[..., Any] = field(repr=False)
    latex: str
    #: (description, sympy object) pairs, in order
    steps: tuple = field(default=(), repr=False)
    section: str = ""

    def __call__(self, *values: Any) -> Any:
        return self.function(*values)


def _make(name, expr, args, steps, section):
    f = sp.lambdify(args, expr, modules="numpy")
    if isinstance(expr, (list, tuple)):
        tex = r",\quad ".join(sp.latex(x) for x in expr)
    else:
        tex = sp.latex(expr)
    return Derivation(name, expr, tuple(args), f, tex, tuple(steps), section)


class DerivationError(RuntimeError):
    """A symbolic step did not produce the identity or the root count the derivation relies on."""


def _require(ok, what, obj=None):
    """Explicit self-check of a derivation step (an ``assert`` would vanish under ``python -O``)."""
    if not ok:
        raise DerivationError(f"{what}: got {obj!r}" if obj is not None else what)


def _check_scheme(sampling):
    if sampling not in SCHEMES:
        raise ValueError(f"sampling must be one of {list(SCHEMES)}, got {sampling!r}")


# ---------------------------------------------------------------------- sampling (contract §2.1)
@lru_cache(maxsize=None)
def sampling_coefficients(sampling: str) -> Derivation:
    """Noise coefficients (c, e) of a sampling scheme, derived from the indicator moments.

    Batch Hessian Ĥ = (1/B)Σ_i x_i H_i. In one direction (eigenvalues λ_i) the second moment is
    E[Ĥ²] = (1/B²)[Σ_i E[x_i²] λ_i² + Σ_{i≠j} E[x_i x_j] λ_i λ_j]; with Σλ_i² = n q and
    Σ_{i≠j}λ_iλ_j = n²m² − n q this is m² + c·q − e·m², which is read off as the coefficients of
    q and m² (contract §2.1 table). Moments: Bernoulli E[x_i²] = p, E[x_ix_j] = p² (p = B/n);
    with replacement (multinomial counts) E[x_i²] = B/n − B/n² + B²/n², E[x_ix_j] = B(B−1)/n²;
    without replacement E[x_i²] = B/n, E[x_ix_j] = B(B−1)/(n(n−1)).
    Expression: the tuple (c, e) in the symbols n, B.
    """
    _check_scheme(sampling)
    m, q = sp.symbols("m q", positive=True)
    if sampling == "bernoulli":
        p = B / n
        ex2, exy = p, p**2
    elif sampling == "with_replacement":
        ex2 = B / n - B / n**2 + B**2 / n**2
        exy = B * (B - 1) / n**2
    else:
        ex2 = B / n
        exy = B * (B - 1) / (n * (n - 1))
    second = (ex2 * n * q + exy * (n**2 * m**2 - n * q)) / B**2
    noise = sp.expand(second - m**2)
    c_expr = sp.factor(sp.simplify(noise.coeff(q)))
    e_expr = sp.factor(sp.simplify(-noise.coeff(m, 2)))
    steps = [
        ("E[x_i^2], E[x_i x_j]", (ex2, exy)),
        ("E[\\hat H^2] in one direction", sp.simplify(second)),
        ("noise E[\\hat H^2] - m^2", sp.simplify(noise)),
    ]
    return _make(f"sampling-{sampling}", (c_expr, e_expr), (n, B), steps, "§2.1")


def _noise(sampling, nn, BB, mm, qq):
    """Per-direction noise N = c q − e m² of one set, with the derived (c, e)."""
    ce = sampling_coefficients(sampling).expression
    cc = ce[0].subs({n: nn, B: BB})
    ee = ce[1].subs({n: nn, B: BB})
    return cc * qq - ee * mm**2


# ---------------------------------------------------------------------- commuting sets (§3)
@lru_cache(maxsize=None)
def commuting_direction_rate(sampling: str, schedule: str = "summed") -> Derivation:
    """Per-direction mean-square factor E[j_k²] of a commuting set (contract §3).

    In the shared eigenbasis every step is diagonal, j_k = 1 − η(1−α)ĥ_R,k + ηαĥ_F,k, so
    T maps diag matrices to diag matrices and ρ(T) = max_k E[j_k²]. Summed:
    E[j²] = (1 − ηD)² + η²V with D = (1−α)m_R − αm_F and V = (1−α)²N_R + α²N_F (independent
    batches); alternating: the product of the retain factor (1−η(1−α)m_R)² + η²(1−α)²N_R and the
    forget factor (1+ηαm_F)² + η²α²N_F. Args: (eta, alpha, m_R, q_R, n_R, B_R, m_F, q_F, n_F, B_F).
    """
    _check_scheme(sampling)
    if schedule not in ("summed", "alternating"):
        raise ValueError(f"schedule must be 'summed' or 'alternating', got {schedule!r}")
    hR, hF = sp.symbols("hhat_R hhat_F", real=True)
    N_R = _noise(sampling, n_R, B_R, m_R, q_R)
    N_F = _noise(sampling, n_F, B_F, m_F, q_F)
    a, b = mixing_weights(alpha)
    if not get_combinator(schedule).products:
        j = 1 - eta * a * hR + eta * b * hF
        j2 = sp.expand(j**2)
        # E[ĥ] = m, E[ĥ²] = m² + N; the two sets are sampled independently
        moments = {hR**2: m_R**2 + N_R, hF**2: m_F**2 + N_F}
        ej2 = j2.subs(moments).subs({hR: m_R, hF: m_F})
        target = (1 - eta * (a * m_R - b * m_F)) ** 2 + eta**2 * (a**2 * N_R + b**2 * N_F)
        _require(sp.simplify(ej2 - target) == 0, "E[j_k^2] is not (1 - eta D)^2 + eta^2 V", ej2)
        steps = [("j_k", j), ("E[j_k^2]", ej2)]
        expr = target
    else:
        fR = (1 - eta * a * m_R) ** 2 + eta**2 * a**2 * N_R
        fF = (1 + eta * b * m_F) ** 2 + eta**2 * b**2 * N_F
        steps = [("retain factor", fR), ("forget factor", fF)]
        expr = fR * fF
    args = (eta, alpha, m_R, q_R, n_R, B_R, m_F, q_F, n_F, B_F)
    return _make(f"commuting-rate-{sampling}-{schedule}", expr, args, steps, "§3")


@lru_cache(maxsize=None)
def commuting_critical_eta(sampling: str) -> Derivation:
    """Per-direction critical step size of the summed schedule, η*_k = 2D_k/(D_k² + V_k) (§3).

    Solves (1 − ηD)² + η²V = 1 for η: the roots are η = 0 and η = 2D/(D² + V); the direction is
    stable on (0, η*_k) when D > 0 and for no η > 0 when D ≤ 0. Then D and V are replaced by the
    set moments of the scheme. Args: (alpha, m_R, q_R, n_R, B_R, m_F, q_F, n_F, B_F).
    """
    _check_scheme(sampling)
    generic = (1 - eta * D) ** 2 + eta**2 * V
    roots = sp.solve(sp.Eq(generic, 1), eta)
    nonzero = [r for r in roots if sp.simplify(r) != 0]
    _require(len(nonzero) == 1, "expected one non-zero root in eta", roots)
    root = sp.simplify(nonzero[0])
    _require(sp.simplify(root - 2 * D / (D**2 + V)) == 0, "eta^* is not 2D/(D^2 + V)", root)
    a, b = mixing_weights(alpha)
    Dk = a * m_R - b * m_F
    Vk = a**2 * _noise(sampling, n_R, B_R, m_R, q_R) + b**2 * _noise(sampling, n_F, B_F, m_F, q_F)
    expr = root.subs({D: Dk, V: Vk})
    steps = [("condition", sp.Lt(generic, 1)), ("roots in eta", roots), ("eta^*", root)]
    args = (alpha, m_R, q_R, n_R, B_R, m_F, q_F, n_F, B_F)
    return _make(f"commuting-critical-eta-{sampling}", expr, args, steps, "§3")


@lru_cache(maxsize=None)
def commuting_critical_batch(sampling: str) -> Derivation:
    """Per-direction critical batch B*_k of the summed schedule with B_F = B (§3).

    Every scheme has c, e affine in x = 1/B, so (1 − ηD)² + η²V(1/B) = 1 is linear in x and
    ``solve`` returns the unique root; B*_k = 1/x is the smallest (real) batch at which the
    direction is marginally stable (ρ is non-increasing in B). Args as
    :func:`commuting_critical_eta` plus eta, minus B_R/B_F: (eta, alpha, m_R, q_R, n_R, m_F, q_F, n_F).
    """
    _check_scheme(sampling)
    x = sp.symbols("x", positive=True)
    rate = commuting_direction_rate(sampling, "summed").expression.subs({B_R: 1 / x, B_F: 1 / x})
    rate = sp.simplify(rate)
    sol = sp.solve(sp.Eq(rate, 1), x)
    _require(len(sol) == 1, "expected one root in x = 1/B", sol)
    Bstar = sp.simplify(1 / sol[0])
    steps = [("rate with B = 1/x", rate), ("x^* = 1/B^*", sol[0])]
    args = (eta, alpha, m_R, q_R, n_R, m_F, q_F, n_F)
    return _make(f"commuting-critical-batch-{sampling}", Bstar, args, steps, "§3")


@lru_cache(maxsize=None)
def commuting_critical_alpha(sampling: str) -> Derivation:
    """The two roots in α of (1 − ηD(α))² + η²V(α) = 1, a quadratic in α (§3).

    α*_k is the first root in [0, 1] at which the direction's factor crosses 1 from below (see
    :func:`theory.closed_forms.closed_form_critical_alpha`). Expression: list of the two roots.
    Args: (eta, m_R, q_R, n_R, B_R, m_F, q_F, n_F, B_F).
    """
    _check_scheme(sampling)
    rate = commuting_direction_rate(sampling, "summed").expression
    poly = sp.Poly(sp.expand(rate - 1), alpha)
    _require(poly.degree() <= 2, "the rate is not quadratic in alpha", poly)
    roots = list(sp.roots(poly, multiple=True))  # the quadratic formula (sp.solve is slow here)
    steps = [("polynomial in alpha", poly.as_expr())]
    args = (eta, m_R, q_R, n_R, B_R, m_F, q_F, n_F, B_F)
    # coefficients are returned too (a numerically stable root choice needs them)
    coeffs = [sp.cancel(poly.coeff_monomial(alpha**k)) for k in (2, 1, 0)]
    d = _make(f"commuting-critical-alpha-{sampling}", coeffs, args, steps + [("roots", roots)], "§3")
    return d


@lru_cache(maxsize=None)
def alternating_direction_polynomial(sampling: str) -> Derivation:
    """Coefficients (η¹..η⁴) of E[j_k²] − 1 for the alternating schedule (a quartic in η, §3).

    E[j²] − 1 = η·q(η) with q cubic; η*_k is the smallest positive root at which q turns positive.
    Expression: list [c1, c2, c3, c4] of the coefficients of η, η², η³, η⁴.
    Args: (alpha, m_R, q_R, n_R, B_R, m_F, q_F, n_F, B_F).
    """
    rate = commuting_direction_rate(sampling, "alternating").expression
    poly = sp.Poly(sp.expand(rate - 1), eta)
    _require(poly.coeff_monomial(1) == 0, "E[j^2] - 1 has a constant term", poly)
    coeffs = [sp.factor(poly.coeff_monomial(eta**k)) for k in (1, 2, 3, 4)]
    args = (alpha, m_R, q_R, n_R, B_R, m_F, q_F, n_F, B_F)
    return _make(f"alternating-polynomial-{sampling}", coeffs, args,
                 [("E[j^2] - 1", poly.as_expr())], "§3")


# ---------------------------------------------------------------------- Dexter et al. (§5.1-5.2)
#: A generic admissible point (n > B, σ < n, L > λ̄, …) used to pick the positive root of a
#: quadratic when sympy cannot decide signs such as that of n − B on its own.
_PROBE = {n: 7, B: 2, L: 3, lam_bar: 1, sigma: 2, alpha: sp.Rational(3, 10), rho_sam: sp.Rational(1, 10),
          a_sam: 1, lam_min: sp.Rational(1, 2), s_nu: 1, D: 1}


def _solve_eta(lower_bound):
    """The positive root η of lower_bound(η) = 1 (lower_bound = κ·η² with κ > 0 on n > B)."""
    sol = sp.solve(sp.Eq(lower_bound, 1), eta)
    def at_probe(r):
        r = r.subs(_PROBE)
        return complex(r.subs({x: 1 for x in r.free_symbols}).evalf())  # remaining: positive

    pos = [r for r in sol if at_probe(r).real > 0]
    _require(len(pos) == 1, "expected one positive root in eta", sol)
    return sp.simplify(pos[0])


@lru_cache(maxsize=None)
def dexter_single_sample() -> Derivation:
    """Single-sample divergence condition, Bernoulli SGD (contract §5.1, middle step) [der].

    T = (I−ηH̄)⊗(I−ηH̄) + η²N with both parts cone-preserving, so ρ(T) ≥ η²ρ(N); N is
    self-adjoint with N(M) = c·(1/n)Σ_i H_i M H_i (Bernoulli: c = (n−B)/(Bn)), so taking
    M = uuᵀ with u the top eigenvector of H_i gives ρ(N) ≥ (c/n)·λ_max(H_i)². Hence
    ρ(T) ≥ η²(c/n)L² with L = max_i λ_max(H_i), and the iterates do not converge once
    η ≥ n / (L √(n/B − 1)). Args: (L, n, B).
    """
    cc = sampling_coefficients("bernoulli").expression[0]
    lower = eta**2 * cc / n * L**2
    thr = _solve_eta(lower)
    steps = [("rho(T) >= eta^2 rho(N) >= eta^2 (c/n) L^2", lower), ("eta threshold", thr)]
    return _make("dexter-single-sample", thr, (L, n, B), steps, "§5.1")


@lru_cache(maxsize=None)
def dexter_thm1() -> Derivation:
    """Dexter et al. Theorem 1, Bernoulli SGD diverges if λ_max(H̄) ≥ (σ/η)(n/B − 1)^{−1/2} (§5.1).

    From :func:`dexter_single_sample` and the block-norm bound λ_max(Σ_i H_i) ≤ λ₁(S) = σL, i.e.
    L ≥ nλ̄/σ: substitute L → nλ̄/σ in the lower bound and solve for η:
    η_thm = σ / (λ̄ √(n/B − 1)). Args: (lambdabar, sigma, n, B).
    """
    single = dexter_single_sample()
    lower = single.steps[0][1].subs(L, n * lam_bar / sigma)
    thr = _solve_eta(lower)
    steps = [("substitute L >= n lambdabar / sigma", lower), ("eta threshold", thr)]
    return _make("dexter-thm1", thr, (lam_bar, sigma, n, B), steps, "§5.1")


@lru_cache(maxsize=None)
def dexter_thm2_condition(sampling: str = "bernoulli") -> Derivation:
    """Exact stability condition of the Dexter Theorem 2 construction (contract §5.2).

    H_i = (λn/σ)e₁e₁ᵀ for i ≤ σ, 0 otherwise: a commuting set with one active direction,
    m = λ, q = (1/n)·σ·(λn/σ)² = λ²n/σ. Substituting into η* = 2D/(D² + V) (α = 0) gives
    ρ(T) < 1 iff η < η*, and solving for λ gives λ < (2/η)[1 + (n/B − 1)/σ]^{−1} for Bernoulli.
    Expression: the critical λ as a function of (eta, sigma, n, B).
    """
    _check_scheme(sampling)
    lam = sp.symbols("lambda", positive=True)
    crit = commuting_critical_eta(sampling).expression
    subs = {alpha: 0, m_R: lam, q_R: lam**2 * n / sigma, n_R: n, B_R: B}
    eta_star = sp.simplify(crit.subs(subs))
    sol = sp.solve(sp.Eq(eta, eta_star), lam)
    _require(len(sol) == 1, "expected one critical lambda", sol)
    lam_star = sp.simplify(sol[0])
    steps = [("eta^* of the construction", eta_star), ("critical lambda", lam_star)]
    return _make(f"dexter-thm2-{sampling}", lam_star, (eta, sigma, n, B), steps, "§5.2")


# ---------------------------------------------------------------------- Wu–Ma–E (§5.3)
@lru_cache(maxsize=None)
def wu_ma_e_sharpness() -> Derivation:
    """Sharpness condition: stability needs λ_max(H̄) ≤ 2/η (contract §5.3).

    T ⪰ E[J]⊗E[J] on the PSD cone (the noise part is a covariance), so
    ρ(T) ≥ ρ(I − ηH̄)² and ρ(I − ηH̄) > 1 once 1 − ηλ̄ < −1. Expression: η threshold 2/λ̄.
    """
    cond = (1 - eta * lam_bar) ** 2
    sol = [s for s in sp.solve(sp.Eq(cond, 1), eta) if s != 0]
    thr = sp.simplify(sol[0])
    return _make("wu-ma-e-sharpness", thr, (lam_bar,), [("(1 - eta lambdabar)^2 = 1", sol)], "§5.3")


@lru_cache(maxsize=None)
def wu_ma_e_nonuniformity(sampling: str = "without_replacement") -> Derivation:
    """Non-uniformity condition s ≤ (1/η)√(B(n−1)/(n−B)) (Wu–Ma–E, without replacement, §5.3).

    Their one-dimensional argument: E[j²] = (1 − ηλ̄)² + η²c·s² ≤ 1 needs η²c s² ≤ 1 with the
    scheme coefficient c (without replacement c = (n−B)/(B(n−1))). Solving η²c s² = 1 gives
    η_thm = 1/(s√c). In d = 1 this is exact; for d > 1 with s² = λ_max((1/n)ΣH_i² − H̄²) it is
    **not** implied by the exact operator (see docs/theory.md, findings). Args: (s, n, B).
    """
    cc = sampling_coefficients(sampling).expression[0]
    lower = eta**2 * cc * s_nu**2
    thr = _solve_eta(lower)
    return _make(f"wu-ma-e-nonuniformity-{sampling}", thr, (s_nu, n, B),
                 [("eta^2 c s^2 = 1", lower), ("eta threshold", thr)], "§5.3")


# ---------------------------------------------------------------------- unlearning (§5.4)
@lru_cache(maxsize=None)
def unlearning_noise_condition(sampling: str, which: str = "retain",
                               form: str = "coherence") -> Derivation:
    """Divergence condition (a) (which="retain") or (b) (which="forget") of contract §5.4.

    Summed schedule, weight w = 1−α (retain) or α (forget). T − η²w²N_S is cone-preserving for
    every scheme (it is E[J]⊗E[J] plus the other set's covariance), so ρ(T) ≥ η²w²ρ(N_S).

    Bernoulli: N_S = c·(1/n)ΣH_i·H_i, ρ(N_S) ≥ (c/n)L² ≥ (c/n)(nλ̄/σ)² (as Dexter Thm 1), giving
    η w λ̄ √(n/B − 1) ≥ σ.

    With / without replacement: N_S = c·C with C(M) = (1/n)ΣH_iMH_i − H̄MH̄ = E[(H_I−H̄)M(H_I−H̄)]
    completely positive but *not* ⪰ (1/n)H_iMH_i, so the single-sample step changes:
    ⟨uuᵀ, C(uuᵀ)⟩ = Var_I(uᵀH_Iu) ≥ (x_i − x̄)²/(n−1) (the other n−1 deviations sum to −(x_i−x̄)),
    with x_i = λ_max(H_i) = L for the top eigenvector u of the sharpest sample and
    x̄ = uᵀH̄u ≤ λ̄. Hence ρ(N_S) ≥ c(L − λ̄)²/(n−1) when L ≥ λ̄, and with L ≥ nλ̄/σ:
    ρ(N_S) ≥ c λ̄²(n/σ − 1)²/(n−1) — proven. (At σ = n the covariance can vanish: identical
    Hessians have no sampling noise under these schemes, and the bound correctly gives nothing.)

    ``form="single"`` stops before the coherence step (uses L); ``form="coherence"`` uses σ.
    Expression: the η threshold. Args: single (L, lambdabar, n, B, alpha); coherence
    (lambdabar, sigma, n, B, alpha).
    """
    _check_scheme(sampling)
    if which not in ("retain", "forget"):
        raise ValueError(f"which must be 'retain' or 'forget', got {which!r}")
    if form not in ("single", "coherence"):
        raise ValueError(f"form must be 'single' or 'coherence', got {form!r}")
    w = mixing_weights(alpha)[0 if which == "retain" else 1]
    cc = sampling_coefficients(sampling).expression[0]
    if sampling == "bernoulli":
        rhoN = cc / n * L**2
    else:
        rhoN = cc * (L - lam_bar) ** 2 / (n - 1)
    lower = eta**2 * w**2 * rhoN
    steps = [("rho(T) >= eta^2 w^2 rho(N_S) >=", lower)]
    if form == "coherence":
        lower = lower.subs(L, n * lam_bar / sigma)
        steps.append(("L >= n lambdabar / sigma", lower))
        args = (lam_bar, sigma, n, B, alpha)
    else:
        args = (L, lam_bar, n, B, alpha)
    thr = _solve_eta(lower)
    steps.append(("eta threshold", thr))
    return _make(f"unlearning-{which}-noise-{sampling}-{form}", thr, args, steps, "§5.4")


@lru_cache(maxsize=None)
def unlearning_mean_escape() -> Derivation:
    """Condition (c) of contract §5.4: ρ(I − ηD) > 1 ⇒ divergence, for every scheme.

    E[JMJᵀ] ⪰ E[J]ME[J]ᵀ for PSD M (the difference is a covariance), so ρ(T) ≥ ρ(I − ηD)².
    ρ(I − ηD) > 1 iff λ_min(D) < 0 (any η > 0) or 1 − ηλ_max(D) < −1, i.e. η > 2/λ_max(D).
    Expression: the η threshold 2/λ_max(D) (0 when λ_min(D) < 0). Args: (D,) = λ_max(D).
    """
    cond = (1 - eta * D) ** 2
    sol = [s for s in sp.solve(sp.Eq(cond, 1), eta) if s != 0]
    thr = sp.simplify(sol[0])
    return _make("unlearning-mean-escape", thr, (D,),
                 [("(1 - eta D)^2 = 1", sol), ("eta threshold", thr)], "§5.4")


# ---------------------------------------------------------------------- SAM (§5.6)
@lru_cache(maxsize=None)
def sam_threshold() -> Derivation:
    """SAM divergence threshold (contract §5.6), Bernoulli sampling.

    SAM: T(M) = AMAᵀ + η²N(KMK), K = I + (ρ/a)H̄, A = I − ηH̄K. Both parts are cone-preserving,
    so ρ(T) ≥ η²ρ(M ↦ N(KMK)); the similarity M ↦ K^{1/2}MK^{1/2} turns this map into
    Y ↦ (c/n)Σ_i G_i Y G_i with G_i = K^{1/2}H_iK^{1/2}, whose spectral radius is
    ≥ (c/n)max_i λ_max(G_i)² ≥ (c/n)κ²L², κ = 1 + (ρ/a)λ_min(H̄) on the span (the columns of the
    factors of H_i lie in the span, where K ⪰ κI). With L ≥ nλ̄/σ: SAM diverges once
    η ≥ σ/(κ λ̄ √(n/B − 1)) — the SGD threshold of Dexter Thm 1 times κ^{−1}.
    Args: (lambdabar, sigma, n, B, rho, a, lambda_min).
    """
    kappa = 1 + (rho_sam / a_sam) * lam_min
    cc = sampling_coefficients("bernoulli").expression[0]
    lower = eta**2 * cc / n * kappa**2 * (n * lam_bar / sigma) ** 2
    thr = _solve_eta(lower)
    sgd = dexter_thm1().expression
    _require(sp.simplify(thr - sgd / kappa) == 0, "the SAM threshold is not the SGD one over kappa",
             thr)
    return _make("sam-divergence", thr, (lam_bar, sigma, n, B, rho_sam, a_sam, lam_min),
                 [("rho(T) >= eta^2 (c/n) kappa^2 L^2", lower), ("eta threshold", thr)], "§5.6")


# ---------------------------------------------------------------------- operator form and candidates
rho_N = sp.symbols("rho_N", positive=True)
sig_R, sig_F, lam_R, lam_F, D_max = sp.symbols(
    "sigma_R sigma_F lambdabar_R lambdabar_F D_max", positive=True)


@lru_cache(maxsize=None)
def noise_operator_threshold() -> Derivation:
    """Operator form of the noise condition (contract §5.4; corrects Wu–Ma–E §5.3), every scheme.

    T − η²𝒩 = E[J]⊗E[J] with 𝒩 = (1−α)²N_R + α²N_F; both parts are cone-preserving, so
    ρ(T) ≥ η²ρ(𝒩) =: η²ρ_N, and η²ρ_N = 1 gives η_thm = 1/√ρ_N. Args: (rho_N,).
    """
    lower = eta**2 * rho_N
    thr = _solve_eta(lower)
    return _make("noise-operator-divergence", thr, (rho_N,),
                 [("rho(T) >= eta^2 rho_N", lower), ("eta threshold", thr)], "§5.4")


@lru_cache(maxsize=None)
def weyl_convergence() -> Derivation:
    """Sufficient convergence condition of the summed schedule, every scheme (contract §3, §5.4) [der].

    T = 𝒜 + 𝒩 with 𝒜(M) = E[J]ME[J] (E[J] = I − ηD symmetric) and 𝒩 = η²Σ_S(s_S/η)²N_S, both
    self-adjoint in the Frobenius inner product and positive, so ρ(T) = λ_max(T) (Krein–Rutman)
    and, by Weyl's inequality, λ_max(T) ≤ λ_max(𝒜) + λ_max(𝒩) = max_k (1 − ηd_k)² + η²ρ_N
    (d_k the eigenvalues of D on the span, ρ_N the noise radius of :func:`theory.instance.noise_operator_radius`).
    Each term (1 − ηd)² + η²ρ_N ≤ 1 ⇔ η ≤ 2d/(d² + ρ_N) (d > 0); the maximum over d sits at
    λ_min(D) or λ_max(D), so ρ(T) ≤ 1 once η ≤ min over those two of 2d/(d² + ρ_N). Exact for a
    single direction (it is then η*_k = 2D_k/(D_k² + V_k) of contract §3). Args: (d, rho_N).
    """
    eta_, d_, rho_ = sp.symbols("eta d rho_N", positive=True)
    bound = (1 - eta_ * d_) ** 2 + eta_**2 * rho_
    roots = [r for r in sp.solve(sp.Eq(bound, 1), eta_) if r != 0]
    if len(roots) != 1:
        raise DerivationError(f"expected one non-zero root in eta, got {roots}")
    thr = sp.simplify(roots[0])
    if sp.simplify(thr - 2 * d_ / (d_**2 + rho_)) != 0:
        raise DerivationError(f"unexpected Weyl threshold {thr}")
    fn = sp.lambdify((d_, rho_), thr, modules="numpy")
    return Derivation("weyl-convergence", thr, (d_, rho_), fn, sp.latex(thr),
                         (("rho(T) <= max_k (1 - eta d_k)^2 + eta^2 rho_N", bound),
                          ("eta threshold", thr)), "§5.4")


@lru_cache(maxsize=None)
def scheme_analogue_threshold() -> Derivation:
    """*Conjecture* (refuted): (a) with n/B − 1 replaced by n·c for with/without replacement.

    Bernoulli has (c/n)·(nλ̄/σ)² = c·n·λ̄²/σ²; copying that expression to the other schemes with
    their own c gives η²(1−α)²·c·n·λ̄²/σ² ≥ 1. Args: (lambdabar, sigma, n, c, alpha).
    """
    lower = eta**2 * mixing_weights(alpha)[0] ** 2 * c * n * lam_bar**2 / sigma**2
    thr = _solve_eta(lower)
    return _make("unlearning-retain-noise-scheme-analogue", thr, (lam_bar, sigma, n, c, alpha),
                 [("claimed lower bound of rho(T)", lower), ("eta threshold", thr)], "§5.4")


@lru_cache(maxsize=None)
def coherence_sum_threshold() -> Derivation:
    """*Conjecture* (§5.5 candidate A, refuted): the retain and forget Dexter-type noise terms add.

    η²[(1−α)²(n_R/B_R − 1)λ̄_R²/σ_R² + α²(n_F/B_F − 1)λ̄_F²/σ_F²] ≥ 1 ⇒ divergence (Bernoulli).
    Args: (lambdabar_R, sigma_R, n_R, B_R, lambdabar_F, sigma_F, n_F, B_F, alpha).
    """
    w_r, w_f = mixing_weights(alpha)
    lower = eta**2 * (w_r**2 * (n_R / B_R - 1) * lam_R**2 / sig_R**2
                      + w_f**2 * (n_F / B_F - 1) * lam_F**2 / sig_F**2)
    sol = sp.solve(sp.Eq(lower, 1), eta)
    probe = {lam_R: 1, lam_F: 1, sig_R: 2, sig_F: 2, n_R: 7, n_F: 7, B_R: 2, B_F: 2,
             alpha: sp.Rational(3, 10)}
    thr = sp.simplify([r for r in sol if complex(r.subs(probe).evalf()).real > 0][0])
    return _make("paper-coherence-sum", thr,
                 (lam_R, sig_R, n_R, B_R, lam_F, sig_F, n_F, B_F, alpha),
                 [("claimed lower bound of rho(T)", lower), ("eta threshold", thr)], "§5.5")


@lru_cache(maxsize=None)
def coherence_resistance_threshold() -> Derivation:
    """*Conjecture* (§5.5 candidate B, refuted): Dexter Thm 2's exact construction condition
    η < (2/λ)[1 + (n/B − 1)/σ]⁻¹ promoted to a sufficient convergence condition for unlearning:
    D ≻ 0 and η < (2/λ_max(D))/[1 + (1−α)²(n_R/B_R − 1)/σ_R + α²(n_F/B_F − 1)/σ_F].
    Built from :func:`dexter_thm2_condition` by replacing (n/B − 1)/σ with the mixed sum.
    Args: (D_max, sigma_R, n_R, B_R, sigma_F, n_F, B_F, alpha).
    """
    lam_star = dexter_thm2_condition("bernoulli").expression  # critical λ at step η
    lam = sp.symbols("lambda", positive=True)
    eta_thm = sp.solve(sp.Eq(lam_star, lam), eta)[0]  # η* of the construction at curvature λ
    w_r, w_f = mixing_weights(alpha)
    mixed = w_r**2 * (n_R / B_R - 1) / sig_R + w_f**2 * (n_F / B_F - 1) / sig_F
    gen = sp.simplify(eta_thm.subs(lam, D_max) * (1 + (n / B - 1) / sigma))
    expr = gen / (1 + mixed)
    _require(sp.simplify(gen - 2 / D_max) == 0, "the construction does not reduce to 2/D_max", gen)
    return _make("paper-coherence-resistance", expr,
                 (D_max, sig_R, n_R, B_R, sig_F, n_F, B_F, alpha),
                 [("construction eta*(lambda)", eta_thm), ("candidate", expr)], "§5.5")


def collect_derivations(entries: Iterable[tuple[str, Callable[..., Derivation], tuple[Any, ...]]]
                        ) -> dict[str, Derivation]:
    """name → ``factory(*args)`` for (name, factory, args) entries, built in order."""
    return {name: factory(*args) for name, factory, args in entries}


#: (name pattern, factory, extra args after the scheme) of the per-scheme derivations
_PER_SCHEME = (
    ("sampling-{}", sampling_coefficients, ()),
    ("commuting-rate-{}-summed", commuting_direction_rate, ("summed",)),
    ("commuting-critical-eta-{}", commuting_critical_eta, ()),
    ("commuting-critical-batch-{}", commuting_critical_batch, ()),
    ("commuting-critical-alpha-{}", commuting_critical_alpha, ()),
    ("alternating-polynomial-{}", alternating_direction_polynomial, ()),
    ("dexter-thm2-{}", dexter_thm2_condition, ()),
    ("unlearning-retain-noise-{}", unlearning_noise_condition, ("retain",)),
    ("unlearning-forget-noise-{}", unlearning_noise_condition, ("forget",)),
)


def all_derivations() -> dict[str, Derivation]:
    """Every derivation, for the docs (name → Derivation)."""
    entries = [(pattern.format(s), factory, (s, *extra))
               for s in SCHEMES for pattern, factory, extra in _PER_SCHEME]
    entries += [(name, factory, ()) for name, factory in (
        ("dexter-single-sample", dexter_single_sample), ("dexter-thm1", dexter_thm1),
        ("wu-ma-e-sharpness", wu_ma_e_sharpness), ("wu-ma-e-nonuniformity", wu_ma_e_nonuniformity),
        ("unlearning-mean-escape", unlearning_mean_escape), ("sam-divergence", sam_threshold),
        ("noise-operator-divergence", noise_operator_threshold),
        ("unlearning-retain-noise-scheme-analogue", scheme_analogue_threshold),
        ("paper-coherence-sum", coherence_sum_threshold),
        ("paper-coherence-resistance", coherence_resistance_threshold),
        ("summed-operator-expansion", summed_operator_expansion),
        ("summed-critical-eta-scalar", summed_critical_eta_scalar))]
    return collect_derivations(entries)


# ---------------------------------------------------------------------- summed schedules (§10)
def _sym2(name):
    """A symbolic symmetric 2×2 matrix with entries name_11, name_12, name_22."""
    a, b, c_ = sp.symbols(f"{name}_11 {name}_12 {name}_22", real=True)
    return sp.Matrix([[a, b], [b, c_]])


@lru_cache(maxsize=None)
def summed_operator_expansion() -> Derivation:
    """T(η) = I − η𝒜 + η²𝒬 for the summed schedule, on 2×2 symbols (docs/contract.md §10.3).

    J = I − ηG with G symmetric, here a two-outcome G (G₁ with probability p, G₂ with 1 − p;
    every batch distribution is a finite mixture of such outcomes, and the identity is linear in
    the outcome probabilities). Expanding E[J X J] = p J₁XJ₁ + (1−p) J₂XJ₂ and comparing with
    X − η(DX + XD) + η²E[GXG], D = E[G], ``simplify`` must give the zero matrix. The same
    symbols also show 10.1: tr(Y T(X)) − tr(T(Y) X) simplifies to 0 for symmetric X, Y.
    Expression: the pair (𝒜(X), 𝒬(X)). Args: (p, G1_11, G1_12, G1_22, G2_11, G2_12, G2_22,
    X_11, X_12, X_22).
    """
    p = sp.symbols("p", positive=True)
    G1, G2, X, Y = _sym2("G1"), _sym2("G2"), _sym2("X"), _sym2("Y")
    I2 = sp.eye(2)
    probs = ((p, G1), (1 - p, G2))

    def T(M):
        return sum(((q * (I2 - eta * G) * M * (I2 - eta * G)) for q, G in probs), sp.zeros(2, 2))

    Dm = p * G1 + (1 - p) * G2
    A_X = Dm * X + X * Dm
    Q_X = sum((q * G * X * G for q, G in probs), sp.zeros(2, 2))
    residual = sp.simplify(sp.expand(T(X) - (X - eta * A_X + eta**2 * Q_X)))
    _require(residual == sp.zeros(2, 2), "E[J X J] is not X - eta A(X) + eta^2 Q(X)", residual)
    adjoint = sp.simplify(sp.expand((Y * T(X)).trace() - (T(Y) * X).trace()))
    _require(adjoint == 0, "the summed T is not self-adjoint in tr(XY)", adjoint)
    steps = [
        ("E[J X J], J = I - eta G", sp.expand(T(X))),
        ("A(X) = D X + X D, D = E[G]", A_X),
        ("Q(X) = E[G X G]", Q_X),
        ("E[J X J] - (X - eta A(X) + eta^2 Q(X))", residual),
        ("tr(Y T(X)) - tr(T(Y) X)", adjoint),
    ]
    args = (p, G1[0, 0], G1[0, 1], G1[1, 1], G2[0, 0], G2[0, 1], G2[1, 1],
            X[0, 0], X[0, 1], X[1, 1])
    return _make("summed-operator-expansion", (A_X, Q_X), args, steps, "§10")


@lru_cache(maxsize=None)
def summed_critical_eta_scalar() -> Derivation:
    """The scalar (r = 1, commuting) case of η* = 1/λ_max(𝒜⁻¹𝒬) (docs/contract.md §10.3).

    In one direction 𝒜(x) = 2Dx and 𝒬(x) = E[g²]x = (D² + V)x (V = Var g), so the pencil gives
    η* = 1/λ_max(𝒜⁻¹𝒬) = 2D/(D² + V); ``solve`` of (1 − ηD)² + η²V = 1 must give the same
    non-zero root (the per-direction η*_k of §3). Expression: 2D/(D² + V). Args: (D, V).
    """
    generic = (1 - eta * D) ** 2 + eta**2 * V
    A1, Q1 = 2 * D, D**2 + V
    _require(sp.expand(generic - (1 - eta * A1 + eta**2 * Q1)) == 0,
             "(1 - eta D)^2 + eta^2 V is not 1 - eta A + eta^2 Q", generic)
    pencil = sp.simplify(1 / (Q1 / A1))
    roots = sp.solve(sp.Eq(generic, 1), eta)
    nonzero = [r for r in roots if sp.simplify(r) != 0]
    _require(len(nonzero) == 1, "expected one non-zero root in eta", roots)
    _require(sp.simplify(nonzero[0] - pencil) == 0, "the root is not 1/lambda_max(A^-1 Q)",
             nonzero[0])
    steps = [("A = 2D, Q = D^2 + V", (A1, Q1)), ("1/lambda_max(A^{-1} Q)", pencil),
             ("roots of (1 - eta D)^2 + eta^2 V = 1", roots)]
    return _make("summed-critical-eta-scalar", pencil, (D, V), steps, "§10")
