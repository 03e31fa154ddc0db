"""Affine (drift) unlearning: sympy derivations, closed forms and theorems (THEORY.md §8).

At a minimum that does not interpolate, the linearised step is affine,
δ_{k+1} = J_k δ_k + b_k, with J_k and b_k built from the *same* batch (THEORY §8, docs/affine.md).
For a **commuting** set (all H_i diagonal in one basis Q) every direction k of Q evolves on its
own: with j = (J)_kk and b = (Qᵀb)_k,

    δ' = j δ + b          ⇒      m' = a m + β,     M' = t M + 2γ m + v

for the per-direction mean m = E[δ] and second moment M = E[δ²], where

    a = E[j],  β = E[b],  t = E[j²],  γ = E[j b],  v = E[b²]

((j, b) is independent of δ; γ carries the batch correlation between the matrix and the drift).
This module derives (a, β, t, γ, v) from the batch-indicator moments of each sampling scheme for
the summed, the alternating and the SAM schedule, the k-step solution of the augmented recursion
(M, m, 1) ↦ A(M, m, 1), the stationary point (t < 1), the null direction (a = t = 1) and the
marginal direction (t = 1 ≠ a). Every derivation is a *procedure* in sympy (assumptions in its
docstring) that checks the identities it relies on and raises
:class:`theory.derivations.DerivationError` when one fails.

Numeric closed forms (:func:`direction_coefficients`, :func:`closed_form_affine_moments`,
:func:`closed_form_stationary`, :func:`summed_stationary_mean`) evaluate these results on a
HessianSet from its raw data (eigenvalue profiles, basis, per-sample gradients, schedule) — an
independent path to :func:`rmt.affine.affine_moments` and :func:`rmt.affine.stationary`.

Theorems (:data:`AFFINE_THEOREMS`): encoded statements about the affine recursion with a
``check(hs, schedule)`` that compares them with the exact moments (module section at the end).

Per-set symbols (per direction, for set S ∈ {R, F}): m_S = mean λ_i, q_S = mean λ_i², ḡ_S = mean
γ_i (γ_i the gradient coordinate), p_S = mean λ_iγ_i, r_S = mean γ_i²; n_S, B_S size and batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property, lru_cache

import numpy as np
import sympy as sp

from rmt.dynamics import as_dynamics
from rmt.verdict import MEAN_SQUARE, OutcomeVerdict

from .derivations import (
    SCHEMES,
    a_sam,
    rho_sam,
    B_F,
    B_R,
    DerivationError,
    _make,
    _require,
    alpha,
    commuting_direction_rate,
    eta,
    m_F,
    m_R,
    n_F,
    n_R,
    q_F,
    q_R,
    sampling_coefficients,
)

__all__ = [
    "AFFINE_SYMBOLS",
    "indicator_moments",
    "batch_pair_moments",
    "affine_direction_coefficients",
    "affine_kstep_solution",
    "affine_null_solution",
    "affine_marginal_solution",
    "affine_stationary_solution",
    "summed_stationary_mean_formula",
    "null_dominance_horizon",
    "all_affine_derivations",
    "DirectionCoefficients",
    "direction_coefficients",
    "ClosedFormMoments",
    "closed_form_affine_moments",
    "ClosedFormStationary",
    "closed_form_stationary",
    "summed_stationary_mean",
    "AffineOutcome",
    "asymptotic_outcome",
    "AffineTheorem",
    "AffineCheck",
    "AFFINE_THEOREMS",
    "get_affine_theorem",
]

# ---------------------------------------------------------------------- symbols
n, B = sp.symbols("n B", positive=True)
g_R, p_R, r_R = sp.symbols("gbar_R p_R r_R", real=True)
g_F, p_F, r_F = sp.symbols("gbar_F p_F r_F", real=True)
a_s, beta_s, gamma_s = sp.symbols("a beta gamma", real=True)
t_s, v_s = sp.symbols("t v", nonnegative=True)
M0_s, m0_s = sp.symbols("M_0 m_0", real=True)
k_s = sp.symbols("k", integer=True, nonnegative=True)
#: powers t^k, a^k as symbols (for limits k → ∞ under |a|, |t| < 1)
tk_s, ak_s = sp.symbols("T_k A_k", real=True)

#: Arguments (in order) of every per-direction coefficient function.
COEFFICIENT_ARGS = (eta, alpha, m_R, q_R, g_R, p_R, r_R, n_R, B_R,
                    m_F, q_F, g_F, p_F, r_F, n_F, B_F)

#: name → symbol of the symbols introduced here (the shared ones are in derivations.SYMBOLS).
AFFINE_SYMBOLS = {str(s): s for s in (g_R, p_R, r_R, g_F, p_F, r_F, a_s, beta_s, gamma_s, t_s,
                                      v_s, M0_s, m0_s, k_s)}

SCHEDULES = ("summed", "alternating", "sam")
#: Arguments of the SAM coefficient function (the SAM radius ρ and normalisation a appended).
SAM_COEFFICIENT_ARGS = COEFFICIENT_ARGS + (rho_sam, a_sam)


def _check_scheme(sampling):
    if sampling not in SCHEMES:
        raise ValueError(f"sampling must be one of {list(SCHEMES)}, got {sampling!r}")


def _check_schedule(schedule):
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {list(SCHEDULES)}, got {schedule!r}")


# ---------------------------------------------------------------------- sampling (THEORY §2.1)
@lru_cache(maxsize=None)
def indicator_moments(sampling: str):
    """(E[x_i²], E[x_i x_j]) (i ≠ j) of the batch indicators/counts of one scheme, derived.

    Assumptions: a set of n samples, batch B (Bernoulli: expected size, 0 < B ≤ n).
    Bernoulli: x_i iid Bernoulli(p = B/n), so x_i² = x_i and E[x_ix_j] = p².
    With replacement: x_i = Σ_{s=1}^B 1[I_s = i] with iid uniform draws I_s, so
    E[x_i²] = Σ_{s,u} P(I_s = i, I_u = i) = B/n + B(B−1)/n² and E[x_ix_j] = B(B−1)/n².
    Without replacement: a uniform B-subset, x_i ∈ {0, 1}: E[x_i²] = C(n−1, B−1)/C(n, B),
    E[x_ix_j] = C(n−2, B−2)/C(n, B). Check: Σ_i x_i = B in expectation (all schemes) and
    Var(Σ_i x_i) = 0 for the schemes with a fixed batch size.
    """
    _check_scheme(sampling)
    if sampling == "bernoulli":
        p = B / n
        ex2, exy = p, p**2
    elif sampling == "with_replacement":
        ex2 = B * (1 / n) + B * (B - 1) * (1 / n) ** 2
        exy = B * (B - 1) * (1 / n) ** 2
    else:
        ex2 = sp.simplify(sp.combsimp(sp.binomial(n - 1, B - 1) / sp.binomial(n, B)))
        exy = sp.simplify(sp.combsimp(sp.binomial(n - 2, B - 2) / sp.binomial(n, B)))
    ex = ex2 if sampling != "with_replacement" else B / n  # E[x_i]
    _require(sp.simplify(n * ex - B) == 0, "E[Σ x_i] is not B", n * ex)
    if sampling != "bernoulli":
        var_sum = sp.simplify(n * ex2 + n * (n - 1) * exy - B**2)
        _require(var_sum == 0, "a fixed-size batch has Var(Σ x_i) ≠ 0", var_sum)
    return sp.simplify(ex2), sp.simplify(exy)


@lru_cache(maxsize=None)
def batch_pair_moments(sampling: str):
    """Covariance of two batch means drawn with the same indicators (THEORY §2.1, §8).

    For per-sample scalars u_i, v_i and û = (1/B)Σ x_i u_i, v̂ = (1/B)Σ x_i v_i:
    E[ûv̂] = (1/B²)[E[x_i²] Σ_i u_iv_i + E[x_ix_j](Σ_i u_i Σ_j v_j − Σ_i u_iv_i)]; with
    Σ u_iv_i = n·P, Σu = nū, Σv = nv̄ the covariance E[ûv̂] − ūv̄ = c·P − e·ūv̄ is read off as the
    coefficients of P and ūv̄. Check: (c, e) equals :func:`theory.derivations.sampling_coefficients`
    (the u = v case, the foundation of THEORY §2.1). Expression: (c, e) in (n, B).
    """
    _check_scheme(sampling)
    ex2, exy = indicator_moments(sampling)
    P, ub, vb = sp.symbols("P ubar vbar", real=True)
    second = (ex2 * n * P + exy * (n**2 * ub * vb - n * P)) / B**2
    cov = sp.expand(second - ub * vb)
    c_expr = sp.factor(sp.simplify(cov.coeff(P)))
    e_expr = sp.factor(sp.simplify(-cov.coeff(ub).coeff(vb)))
    rest = sp.simplify(cov - c_expr * P + e_expr * ub * vb)
    _require(rest == 0, "the covariance is not c·P − e·ūv̄", rest)
    ref = sampling_coefficients(sampling).expression
    _require(sp.simplify(c_expr - ref[0]) == 0 and sp.simplify(e_expr - ref[1]) == 0,
             "the bilinear (c, e) disagree with derivations.sampling_coefficients",
             (c_expr, e_expr))
    steps = [("E[x_i^2], E[x_i x_j]", (ex2, exy)), ("Cov(u^, v^)", cov)]
    return _make(f"affine-pair-moments-{sampling}", (c_expr, e_expr), (n, B), steps, "§2.1, §8")


def _set_moments(sampling, mm, qq, gg, pp, rr, nn, BB):
    """E[ĥ^i ĝ^j] for i + j ≤ 2 of one set (batch Hessian ĥ and gradient ĝ, same indicators)."""
    c_expr, e_expr = batch_pair_moments(sampling).expression
    cc, ee = c_expr.subs({n: nn, B: BB}), e_expr.subs({n: nn, B: BB})
    return {
        (0, 0): sp.Integer(1),
        (1, 0): mm,
        (0, 1): gg,
        (2, 0): mm**2 + cc * qq - ee * mm**2,
        (1, 1): mm * gg + cc * pp - ee * mm * gg,
        (0, 2): gg**2 + cc * rr - ee * gg**2,
    }


def _expect(expr, gens, moments):
    """E[expr] for a polynomial in the random symbols ``gens`` = (h_R, g_R, h_F, g_F).

    The two sets are sampled independently, so a monomial's expectation factorises into one
    moment per set; every moment of total degree ≤ 2 per set is known (:func:`_set_moments`),
    anything higher raises DerivationError.
    """
    poly = sp.Poly(sp.expand(expr), *gens)
    out = sp.Integer(0)
    for monom, coeff in poly.terms():
        val = coeff
        for s, mom in enumerate(moments):
            key = (monom[2 * s], monom[2 * s + 1])
            _require(key in mom, "a per-set moment of degree > 2 appeared", key)
            val = val * mom[key]
        out += val
    return sp.expand(out)


@lru_cache(maxsize=None)
def affine_direction_coefficients(sampling: str, schedule: str = "summed"):
    """Per-direction coefficients (a, β, t, γ, v) of the affine recursion (THEORY §8), derived.

    Assumptions: a commuting set; in one shared eigendirection the batch curvatures ĥ_S and
    the batch gradient coordinates ĝ_S of a set use the same indicators; retain and forget
    batches are independent; s_R = −η(1−α), s_F = ηα.
    Summed: j = 1 + s_Rĥ_R + s_Fĥ_F, b = s_Rĝ_R + s_Fĝ_F.
    Alternating (retain, then forget): j = (1 + s_Fĥ_F)(1 + s_Rĥ_R),
    b = (1 + s_Fĥ_F)s_Rĝ_R + s_Fĝ_F.
    SAM (α = 0): j = 1 − ηκĥ_R, κ = 1 + (ρ/a)m_R, b = −η(ĝ_R + (ρ/a)ĥ_Rḡ_R) (args
    :data:`SAM_COEFFICIENT_ARGS`; checks: ρ = 0 gives the summed SGD coefficients, t is the
    interpolating factor of the curvatures κλ_i).
    Then a = E[j], β = E[b], t = E[j²], γ = E[jb], v = E[b²] by the per-set moments of
    :func:`batch_pair_moments`. Checks: t equals
    :func:`theory.derivations.commuting_direction_rate` (the interpolating case of THEORY §3);
    summed a = 1 − ηD with D = (1−α)m_R − αm_F; with zero curvature (m = q = p = 0) the direction
    is null: a = t = 1 and γ = β; alternating = the composition of the two one-set maps
    (a = a_Fa_R, β = a_Fβ_R + β_F, t = t_Ft_R, γ = t_Fγ_R + γ_Fa_R, v = t_Fv_R + 2γ_Fβ_R + v_F).
    Expression: (a, β, t, γ, v); args :data:`COEFFICIENT_ARGS`.
    """
    _check_scheme(sampling)
    _check_schedule(schedule)
    hR, gR_, hF, gF_ = sp.symbols("hhat_R ghat_R hhat_F ghat_F", real=True)
    sR, sF = -eta * (1 - alpha), eta * alpha
    if schedule == "sam":
        # SAM (α = 0): J = I − ηĤ_R K, K = I + (ρ/a)H̄_R, so per direction j = 1 − ηκĥ_R with
        # κ = 1 + (ρ/a)m_R; the drift is −η times the gradient at the ascent point,
        # ĝ_R + (ρ/a)Ĥ_R ḡ_R, whose per-direction coordinate is ĝ_R + (ρ/a)ĥ_R ḡ_R
        kappa = 1 + rho_sam / a_sam * m_R
        j = 1 - eta * kappa * hR
        b = -eta * (gR_ + rho_sam / a_sam * hR * g_R)
    elif schedule == "summed":
        j = 1 + sR * hR + sF * hF
        b = sR * gR_ + sF * gF_
    else:
        AF = 1 + sF * hF
        j = AF * (1 + sR * hR)
        b = AF * sR * gR_ + sF * gF_
    moments = (_set_moments(sampling, m_R, q_R, g_R, p_R, r_R, n_R, B_R),
               _set_moments(sampling, m_F, q_F, g_F, p_F, r_F, n_F, B_F))
    gens = (hR, gR_, hF, gF_)
    a = _expect(j, gens, moments)
    beta = _expect(b, gens, moments)
    t = _expect(j**2, gens, moments)
    gamma = _expect(j * b, gens, moments)
    v = _expect(b**2, gens, moments)
    if schedule == "sam":
        # with ρ = 0 SAM is SGD: the summed coefficients at α = 0
        sgd = affine_direction_coefficients(sampling, "summed").expression
        _require(all(_is_zero(x.subs(rho_sam, 0) - y.subs(alpha, 0))
                     for x, y in zip((a, beta, t, gamma, v), sgd)),
                 "SAM at rho = 0 is not SGD")
        ref = commuting_direction_rate(sampling, "summed").expression.subs(alpha, 0).subs(
            {m_R: kappa * m_R, q_R: kappa**2 * q_R})  # the rate of the curvature κλ_i
    else:
        ref = commuting_direction_rate(sampling, schedule).expression
    _require(_is_zero(t - ref), "E[j^2] disagrees with commuting_direction_rate", t)
    if schedule == "summed":
        D = (1 - alpha) * m_R - alpha * m_F
        _require(_is_zero(a - (1 - eta * D)), "E[j] is not 1 - eta D", a)
    null = {m_R: 0, q_R: 0, p_R: 0, m_F: 0, q_F: 0, p_F: 0}
    _require(_is_zero(a.subs(null) - 1) and _is_zero(t.subs(null) - 1)
             and _is_zero((gamma - beta).subs(null)),
             "a null direction is not a = t = 1, gamma = beta", (a.subs(null), t.subs(null)))
    if schedule == "alternating":
        # composition of two independent scalar affine maps (retain, then forget):
        # a = a_F a_R, β = a_F β_R + β_F, t = t_F t_R, γ = t_F γ_R + γ_F a_R,
        # v = t_F v_R + 2γ_F β_R + v_F, with each factor the summed result of one set alone
        one = affine_direction_coefficients(sampling, "summed").expression
        zR = {m_R: 0, q_R: 0, g_R: 0, p_R: 0, r_R: 0}
        zF = {m_F: 0, q_F: 0, g_F: 0, p_F: 0, r_F: 0}
        aR, bR, tR, cR, vR = (x.subs(zF) for x in one)
        aF, bF, tF, cF, vF = (x.subs(zR) for x in one)
        comp = (aF * aR, aF * bR + bF, tF * tR, tF * cR + cF * aR, tF * vR + 2 * cF * bR + vF)
        _require(all(_is_zero(x - y) for x, y in zip((a, beta, t, gamma, v), comp)),
                 "the alternating coefficients are not the composition of the two set maps")
    expr = (a, beta, t, gamma, v)
    args = SAM_COEFFICIENT_ARGS if schedule == "sam" else COEFFICIENT_ARGS
    steps = [("j", j), ("b", b), ("a = E[j]", expr[0]), ("beta = E[b]", expr[1]),
             ("t = E[j^2]", expr[2]), ("gamma = E[j b]", expr[3]), ("v = E[b^2]", expr[4])]
    return _make(f"affine-coefficients-{sampling}-{schedule}", expr, args, steps, "§8")


# ---------------------------------------------------------------------- the scalar recursion
def _is_zero(expr):
    """Exact zero test for rational expressions (cheaper than ``simplify`` on large ones)."""
    return sp.cancel(sp.expand(expr)) == 0


def _augmented(a, beta, t, gamma, v):
    """The augmented one-step matrix on (M, m, 1) (THEORY §8)."""
    return sp.Matrix([[t, 2 * gamma, v], [0, a, beta], [0, 0, 1]])


def _check_recursion(Mk, mk, a, beta, t, gamma, v, what):
    """(M_k, m_k) satisfies the recursion and the initial condition (DerivationError if not)."""
    rM = sp.simplify(sp.expand_power_exp(Mk.subs(k_s, k_s + 1) - (t * Mk + 2 * gamma * mk + v)))
    rm = sp.simplify(sp.expand_power_exp(mk.subs(k_s, k_s + 1) - (a * mk + beta)))
    _require(rM == 0 and rm == 0, f"{what}: the k-step solution does not satisfy the recursion",
             (rM, rm))
    _require(sp.simplify(Mk.subs(k_s, 0) - M0_s) == 0 and sp.simplify(mk.subs(k_s, 0) - m0_s) == 0,
             f"{what}: wrong initial condition", (Mk.subs(k_s, 0), mk.subs(k_s, 0)))


@lru_cache(maxsize=None)
def affine_kstep_solution():
    """k-step solution (M_k, m_k) of m' = a m + β, M' = t M + 2γ m + v from (M_0, m_0) (THEORY §8).

    Assumptions: generic direction, the eigenvalues t, a, 1 of the augmented matrix
    A = [[t, 2γ, v], [0, a, β], [0, 0, 1]] are distinct. Procedure: diagonalise A, raise the
    eigenvalues to the k-th power, apply to (M_0, m_0, 1). Checks: the result satisfies the
    recursion for symbolic k and the initial condition, and equals the shifted form
    m_k − m∞ = a^k(m_0 − m∞), M_k − M∞ = t^k(M_0 − M∞) + 2γ(m_0 − m∞)(t^k − a^k)/(t − a)
    (m∞, M∞ of :func:`affine_stationary_solution`; an identity for t, a ≠ 1 whatever their
    size). Expression: (M_k, m_k) in the shifted form (its terms are also what the numeric
    evaluation uses to estimate its own cancellation); args (a, β, t, γ, v, M_0, m_0, k).
    """
    A = _augmented(a_s, beta_s, t_s, gamma_s, v_s)
    P, Dg = A.diagonalize()
    eig = [Dg[i, i] for i in range(3)]
    _require(len(set(eig)) == 3 and set(eig) == {t_s, a_s, sp.Integer(1)},
             "the augmented matrix does not have eigenvalues t, a, 1", eig)
    Ak = P * sp.diag(*[x**k_s for x in eig]) * P.inv()
    z = Ak * sp.Matrix([M0_s, m0_s, 1])
    Mk, mk = sp.simplify(z[0]), sp.simplify(z[1])
    _check_recursion(Mk, mk, a_s, beta_s, t_s, gamma_s, v_s, "generic")
    # the same solution read relative to the fixed point (docs/affine.md): with
    # m∞ = β/(1−a), M∞ = (2γm∞ + v)/(1−t), e_0 = m_0 − m∞:
    # m_k − m∞ = a^k e_0,  M_k − M∞ = t^k (M_0 − M∞) + 2γ e_0 (t^k − a^k)/(t − a)
    m_inf = beta_s / (1 - a_s)
    M_inf = (2 * gamma_s * m_inf + v_s) / (1 - t_s)
    e0 = m0_s - m_inf
    shifted_M = (M_inf + t_s**k_s * (M0_s - M_inf)
                 + 2 * gamma_s * e0 * (t_s**k_s - a_s**k_s) / (t_s - a_s))
    shifted_m = m_inf + a_s**k_s * e0
    _require(_is_zero(sp.expand_power_exp(Mk - shifted_M)) and _is_zero(mk - shifted_m),
             "the k-step solution is not the shifted form around the fixed point", Mk)
    args = (a_s, beta_s, t_s, gamma_s, v_s, M0_s, m0_s, k_s)
    steps = [("augmented matrix", A), ("eigenvalues", eig), ("A^k", sp.simplify(Ak)),
             ("(M_k, m_k) from A^k", (Mk, mk))]
    return _make("affine-kstep", (shifted_M, shifted_m), args, steps, "§8")


@lru_cache(maxsize=None)
def affine_null_solution():
    """Null direction (every active Hessian vanishes there): a = t = 1, γ = β (THEORY §8).

    Assumptions: j ≡ 1, so a = E[j] = 1, t = E[j²] = 1, γ = E[jb] = β (derived in
    :func:`affine_direction_coefficients`). The augmented matrix is I + N with N nilpotent
    (checked: N³ = 0), so A^k = I + kN + k(k−1)/2·N². From δ_0 = 0 the mean is kβ and the second
    moment k²β² + k(v − β²) = k²β² + k·Var(b): linear drift plus a random walk. Checks: recursion
    and initial condition. Expression: (M_k, m_k); args (β, v, M_0, m_0, k).
    """
    A = _augmented(1, beta_s, 1, beta_s, v_s)
    N = A - sp.eye(3)
    _require(N**3 == sp.zeros(3, 3), "N is not nilpotent of order 3", N**3)
    Ak = sp.eye(3) + k_s * N + k_s * (k_s - 1) / 2 * N**2
    z = Ak * sp.Matrix([M0_s, m0_s, 1])
    Mk, mk = sp.expand(z[0]), sp.expand(z[1])
    _check_recursion(Mk, mk, 1, beta_s, 1, beta_s, v_s, "null")
    from_zero = sp.expand(Mk.subs({M0_s: 0, m0_s: 0}))
    _require(sp.expand(from_zero - (k_s**2 * beta_s**2 + k_s * (v_s - beta_s**2))) == 0,
             "from 0 the null second moment is not k^2 beta^2 + k Var(b)", from_zero)
    steps = [("N = A - I", N), ("A^k", Ak), ("from delta_0 = 0", from_zero)]
    return _make("affine-null", (Mk, mk), (beta_s, v_s, M0_s, m0_s, k_s), steps, "§8")


@lru_cache(maxsize=None)
def affine_marginal_solution():
    """Marginal direction t = 1 ≠ a (ρ(T) = 1 attained in a direction with noise) (THEORY §8).

    Assumptions: t = 1, a ≠ 1 (then |a| < 1 when Var(j) > 0, since a² ≤ t). m_k as in the generic
    case; M_k = M_0 + Σ_{i<k}(2γ m_i + v) summed in closed form. The slope of the linear growth is
    2γm∞ + v with m∞ = β/(1−a); the procedure checks the identity
    2γm∞ + v − (1−t)m∞² = E[(jm∞ + b)²] − (E[jm∞ + b])² (with E[jm∞ + b] = m∞), so at t = 1 the
    slope is Var(j m∞ + b) ≥ 0: the second moment grows linearly unless j m∞ + b is
    deterministic — ρ(T) = 1 is bounded or unbounded depending on the drift. Expression:
    (M_k, m_k, slope); args (a, β, γ, v, M_0, m_0, k).
    """
    mk = a_s**k_s * m0_s + beta_s * (1 - a_s**k_s) / (1 - a_s)
    # Σ_{i<k} m_i with the geometric sum Σ_{i<k} a^i = (1 − a^k)/(1 − a) (a ≠ 1)
    geo = (1 - a_s**k_s) / (1 - a_s)
    sum_m = m0_s * geo + beta_s / (1 - a_s) * (k_s - geo)
    Mk = sp.simplify(M0_s + 2 * gamma_s * sum_m + k_s * v_s)
    _check_recursion(Mk, mk, a_s, beta_s, 1, gamma_s, v_s, "marginal")
    m_inf = beta_s / (1 - a_s)
    slope = sp.simplify(2 * gamma_s * m_inf + v_s)
    # E[(j m + b)^2] − (E[j m + b])^2 with E[j^2] = t, E[jb] = γ, E[b^2] = v, E[j m + b] = a m + β
    var = t_s * m_inf**2 + 2 * gamma_s * m_inf + v_s - (a_s * m_inf + beta_s) ** 2
    _require(sp.simplify(a_s * m_inf + beta_s - m_inf) == 0, "m_inf is not a fixed point", m_inf)
    _require(sp.simplify(var - (2 * gamma_s * m_inf + v_s - (1 - t_s) * m_inf**2)) == 0,
             "slope identity failed", var)
    steps = [("m_k", mk), ("M_k", Mk), ("slope = Var(j m_inf + b) at t = 1", slope)]
    return _make("affine-marginal", (Mk, mk, slope),
                 (a_s, beta_s, gamma_s, v_s, M0_s, m0_s, k_s), steps, "§8")


@lru_cache(maxsize=None)
def affine_stationary_solution():
    """Stationary point of the scalar recursion when t < 1 (THEORY §8).

    Assumptions: t < 1 (hence |a| < 1 since a² ≤ E[j²] = t). Procedure: solve the fixed-point
    equations m = a m + β, M = t M + 2γ m + v. Checks: the k-step solution of
    :func:`affine_kstep_solution` with t^k, a^k → 0 tends to the same point, and
    M∞ − m∞² = [Var(j m∞ + b)]/(1 − t) (the stationary variance is the one-step variance of the
    map at m∞, amplified by 1/(1 − t)). Expression: (M∞, m∞, M∞ − m∞²); args (a, β, t, γ, v).
    """
    Msym, msym = sp.symbols("M m", real=True)
    sol = sp.solve([sp.Eq(msym, a_s * msym + beta_s),
                    sp.Eq(Msym, t_s * Msym + 2 * gamma_s * msym + v_s)], [Msym, msym], dict=True)
    _require(len(sol) == 1, "expected one fixed point", sol)
    M_inf, m_inf = sp.simplify(sol[0][Msym]), sp.simplify(sol[0][msym])
    Mk, mk = affine_kstep_solution().expression
    lim = [sp.simplify(x.subs({t_s**k_s: tk_s, a_s**k_s: ak_s}).subs({tk_s: 0, ak_s: 0}))
           for x in (Mk, mk)]
    _require(sp.simplify(lim[0] - M_inf) == 0 and sp.simplify(lim[1] - m_inf) == 0,
             "the k-step solution does not tend to the fixed point", lim)
    var = sp.simplify(M_inf - m_inf**2)
    onestep = t_s * m_inf**2 + 2 * gamma_s * m_inf + v_s - m_inf**2  # Var(j m∞ + b)
    _require(sp.simplify(var - onestep / (1 - t_s)) == 0, "stationary variance identity failed",
             var)
    steps = [("fixed point", sol[0]), ("limit of the k-step solution", lim)]
    return _make("affine-stationary", (M_inf, m_inf, var), (a_s, beta_s, t_s, gamma_s, v_s),
                 steps, "§8")


@lru_cache(maxsize=None)
def summed_stationary_mean_formula():
    """Summed schedule: m∞ = β/(1 − a) = (αḡ_F − (1−α)ḡ_R)/D per direction (THEORY §8).

    Assumptions: summed schedule, D = (1−α)m_R − αm_F ≠ 0 and |1 − ηD| < 1. Substitutes the
    derived a and β of :func:`affine_direction_coefficients` into the stationary mean of
    :func:`affine_stationary_solution`. Checks: the result does not depend on η, on the batch
    sizes or on the sampling scheme (the same for all three). Expression: m∞;
    args (alpha, m_R, gbar_R, m_F, gbar_F).
    """
    out = None
    for sampling in SCHEMES:
        a, beta = affine_direction_coefficients(sampling, "summed").expression[:2]
        m_inf = sp.simplify(affine_stationary_solution().expression[1].subs(
            {a_s: a, beta_s: beta}))
        free = m_inf.free_symbols & {eta, n_R, B_R, n_F, B_F}
        _require(not free, "the stationary mean depends on eta or the batches", free)
        if out is None:
            out = m_inf
        _require(sp.simplify(m_inf - out) == 0, "the stationary mean depends on the scheme", m_inf)
    D = (1 - alpha) * m_R - alpha * m_F
    target = (alpha * g_F - (1 - alpha) * g_R) / D
    _require(sp.simplify(out - target) == 0, "m_inf is not D^-1 (alpha gF - (1-alpha) gR)", out)
    return _make("affine-summed-stationary-mean", target, (alpha, m_R, g_R, m_F, g_F),
                 [("beta / (1 - a)", out)], "§8")


@lru_cache(maxsize=None)
def null_dominance_horizon():
    """Horizon K₀ after which the null-space drift carries at least half of E‖δ_K‖² (THEORY §8).

    Assumptions: from δ_0 = 0 the null part is exactly K²‖β_V‖² + K·c_V (c_V = tr Cov(b_V),
    :func:`affine_null_solution`) and the span part is bounded by S for all K (theorem
    ``affine-null-drift-dominates``). K₀ is the positive root of K²β² + K c = S, i.e. the null
    part ≥ S for K ≥ K₀. Checks: the root is positive and solves the equation. Expression: K₀;
    args (β_V norm, c_V, S).
    """
    bn, cv, S = sp.symbols("b_V c_V S", positive=True)
    Ks = sp.symbols("K", positive=True)
    roots = sp.solve(sp.Eq(Ks**2 * bn**2 + Ks * cv, S), Ks)
    _require(len(roots) == 1, "expected one positive root", roots)
    K0 = sp.simplify(roots[0])
    _require(sp.simplify((K0**2 * bn**2 + K0 * cv - S)) == 0, "K0 does not solve the equation", K0)
    return _make("affine-null-dominance-horizon", K0, (bn, cv, S), [("K^2 b^2 + K c = S", roots)],
                 "§8")


def all_affine_derivations():
    """Every derivation of this module (name → Derivation), for the docs."""
    out = {}
    for s in SCHEMES:
        out[f"affine-pair-moments-{s}"] = batch_pair_moments(s)
        for sch in SCHEDULES:
            out[f"affine-coefficients-{s}-{sch}"] = affine_direction_coefficients(s, sch)
    out["affine-kstep"] = affine_kstep_solution()
    out["affine-null"] = affine_null_solution()
    out["affine-marginal"] = affine_marginal_solution()
    out["affine-stationary"] = affine_stationary_solution()
    out["affine-summed-stationary-mean"] = summed_stationary_mean_formula()
    out["affine-null-dominance-horizon"] = null_dominance_horizon()
    return out


# ---------------------------------------------------------------------- numeric closed forms
def _commuting_pair(hs, schedule):
    """(HessianSet, Schedule) of a commuting set with the summed or alternating schedule."""
    dyn = as_dynamics(hs, schedule)  # validates the pair
    hs, sch = dyn.hs, dyn.schedule
    if hs.kind != "commuting":
        raise ValueError(f"the affine closed forms need a commuting HessianSet, got {hs.kind!r}")
    if sch.schedule not in SCHEDULES:
        raise ValueError(f"the affine closed forms need schedule in {list(SCHEDULES)}, "
                         f"got {sch.schedule!r}")
    return hs, sch


def _set_statistics(hs, sch, which):
    """Per-direction (m, q, ḡ, p, r, n, B) of one set in the basis Q of a commuting set.

    Read from the raw data: eigenvalue profile λ (n, d), gradient coordinates γ = G Q (n, d)
    (zeros without gradients). A set that does not enter the step gets zeros and (n, B) = (2, 1)
    (its weight is 0). Without replacement and n = 1 the derived c is 0/0 but a single sample
    has no sampling noise: q = m², p = mḡ, r = ḡ² make every covariance c·(·) − e·(·) vanish for
    any finite c, so n = 2 is only a placeholder (as in theory.closed_forms).
    """
    d = hs.dim
    uses = sch.uses_retain if which == "retain" else sch.uses_forget
    if not uses:
        z = np.zeros(d)
        return z, z, z, z, z, 2.0, 1.0
    lam = hs.eigenvalues(which)
    G = hs.gradients(which)
    gam = np.zeros_like(lam) if G is None else G @ hs.basis
    m, q, gb = lam.mean(0), (lam**2).mean(0), gam.mean(0)
    p, r = (lam * gam).mean(0), (gam**2).mean(0)
    nS = float(lam.shape[0])
    BS = float(sch.batch if which == "retain" else sch.batch_forget)
    if sch.sampling == "without_replacement" and lam.shape[0] == 1:
        q, p, r, nS = m**2, m * gb, gb**2, 2.0
    return m, q, gb, p, r, nS, BS


@dataclass(frozen=True)
class DirectionCoefficients:
    """Per-direction coefficients of the affine recursion of a commuting set (THEORY §8).

    Arrays of shape (d,) over the columns of the shared basis ``basis`` Q: ``a`` = E[j],
    ``beta`` = E[b], ``t`` = E[j²], ``gamma`` = E[jb], ``v`` = E[b²]; ``null`` marks the
    directions where every Hessian that enters the step vanishes (there a = t = 1, γ = β).
    """

    a: np.ndarray
    beta: np.ndarray
    t: np.ndarray
    gamma: np.ndarray
    v: np.ndarray
    null: np.ndarray
    basis: np.ndarray = field(repr=False)

    @property
    def rate(self) -> float:
        """max_k t_k over the non-null directions: ρ(T) of the commuting set (THEORY §3)."""
        return float(np.max(self.t[~self.null])) if np.any(~self.null) else 0.0

    @property
    def drift_variance(self) -> np.ndarray:
        """Var(b) per direction, v − β² (clipped at 0 against round-off)."""
        return np.maximum(self.v - self.beta**2, 0.0)


def direction_coefficients(hs, schedule=None) -> DirectionCoefficients:
    """(a, β, t, γ, v) per direction of a commuting set, from the sympy derivation (THEORY §8).

    Evaluates :func:`affine_direction_coefficients` on the per-direction set statistics read from
    the raw HessianSet (profiles, basis, gradients) and the Schedule — not from rmt's operators.
    Accepts ``(hs, schedule)`` or a :class:`rmt.Dynamics`; summed, alternating or SAM schedule.
    """
    hs, sch = _commuting_pair(hs, schedule)
    f = affine_direction_coefficients(sch.sampling, sch.schedule).function
    stats = _set_statistics(hs, sch, "retain") + _set_statistics(hs, sch, "forget")
    d = hs.dim
    extra = (sch.sam_rho, sch.sam_a) if sch.schedule == "sam" else ()
    vals = [np.broadcast_to(np.asarray(x, float), (d,)).copy()
            for x in f(sch.eta, sch.alpha, *stats, *extra)]
    active = np.zeros(d, dtype=bool)
    for which, uses in (("retain", sch.uses_retain), ("forget", sch.uses_forget)):
        if uses:
            active |= np.any(hs.eigenvalues(which) > 0, axis=0)
    null = ~active
    # exact values where the derivation says so (they are 1, 1, β up to round-off already)
    vals[0][null], vals[2][null], vals[3][null] = 1.0, 1.0, vals[1][null]
    return DirectionCoefficients(*vals, null, hs.basis)


@dataclass(frozen=True)
class ClosedFormMoments:
    """E‖δ_k‖², E[δ_k] and their parts for k = 0..steps from the closed forms (THEORY §8).

    ``expected_sq_distance`` (steps+1,); ``mean`` (steps+1, d) in the original coordinates;
    ``second`` (steps+1, d) the per-direction second moments E[(Qᵀδ_k)_i²]; ``span_sq`` and
    ``null_sq`` the sums over the active and the null directions (``null_sq`` = rmt's
    ``drift_sq + frozen_sq``); ``method`` (d,) which solution each direction used: "kstep",
    "null", or "power" (the augmented 3×3 matrix power, for directions where two of t, a, 1
    nearly coincide and the shifted form would cancel: its terms exceed the result by more than
    ``_MAX_CANCELLATION``).
    """

    expected_sq_distance: np.ndarray
    mean: np.ndarray = field(repr=False)
    second: np.ndarray = field(repr=False)
    span_sq: np.ndarray = field(repr=False)
    null_sq: np.ndarray = field(repr=False)
    method: np.ndarray = field(repr=False)


def _start_moments(start, Q):
    d = Q.shape[0]
    if start is None:
        return np.zeros(d), np.zeros(d)
    s0 = np.asarray(start, float)
    if s0.ndim == 1:
        c = Q.T @ s0
        return c**2, c
    return np.diag(Q.T @ s0 @ Q).copy(), np.zeros(d)


def closed_form_affine_moments(hs, schedule=None, steps=None, *, start=None) -> ClosedFormMoments:
    """Exact moments of a commuting set from the per-direction closed forms (THEORY §8).

    Accepts ``(hs, schedule, steps)`` or ``(dynamics, steps)``. ``start``: None (δ_0 = 0), a
    vector (deterministic δ_0) or a PSD matrix E[δ_0δ_0ᵀ] with mean zero (as
    :func:`rmt.affine.affine_moments`). Per direction: :func:`affine_kstep_solution` (generic),
    :func:`affine_null_solution` (null directions); the augmented matrix power where two of
    t, a, 1 nearly coincide.
    """
    from rmt.dynamics import Dynamics

    if isinstance(hs, Dynamics) and schedule is not None and steps is None:
        schedule, steps = None, schedule
    if steps is None:
        raise TypeError("closed_form_affine_moments needs steps")
    co = direction_coefficients(hs, schedule)
    Q = co.basis
    d = Q.shape[0]
    M0, m0 = _start_moments(start, Q)
    ks = np.arange(steps + 1, dtype=float)[:, None]
    gen = affine_kstep_solution().function
    nul = affine_null_solution().function
    sep = np.minimum(np.minimum(np.abs(co.t - co.a), np.abs(1 - co.a)), np.abs(1 - co.t))
    method = np.where(co.null, "null", np.where(sep > 1e-6, "kstep", "power")).astype(object)
    M = np.empty((steps + 1, d))
    m = np.empty((steps + 1, d))
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for i in range(d):
            if method[i] == "null":
                Mi, mi = nul(co.beta[i], co.v[i], M0[i], m0[i], ks[:, 0])
            elif method[i] == "kstep":
                Mi, mi = gen(co.a[i], co.beta[i], co.t[i], co.gamma[i], co.v[i], M0[i], m0[i],
                             ks[:, 0])
                if _cancellation(co, i, M0[i], m0[i], ks[:, 0], Mi, mi) > _MAX_CANCELLATION:
                    method[i] = "power"
            if method[i] == "power":
                A = np.array([[co.t[i], 2 * co.gamma[i], co.v[i]], [0, co.a[i], co.beta[i]],
                              [0, 0, 1.0]])
                z = np.array([M0[i], m0[i], 1.0])
                out = [z]
                for _ in range(steps):
                    z = A @ z
                    out.append(z)
                out = np.array(out)
                Mi, mi = out[:, 0], out[:, 1]
            M[:, i] = np.broadcast_to(Mi, (steps + 1,))
            m[:, i] = np.broadcast_to(mi, (steps + 1,))
    null = co.null
    return ClosedFormMoments(M.sum(axis=1), m @ Q.T, M, M[:, ~null].sum(axis=1),
                             M[:, null].sum(axis=1), method)


#: The shifted k-step form is evaluated only when its terms exceed the result by at most this
#: factor (about 3 digits lost of 16); otherwise the augmented 3×3 power is used.
_MAX_CANCELLATION = 1e3


def _cancellation(co, i, M0, m0, ks, Mk, mk):
    """max_k (sum of |terms| of the shifted k-step form) / |result|, for M_k and m_k.

    Near t ≈ a ≈ 1 the terms M∞, 2γe_0/(t − a), m∞ are huge and cancel (the solution is a
    second divided difference of x^k at t, a, 1); this ratio times ε bounds the round-off.
    """
    a, t, g = co.a[i], co.t[i], co.gamma[i]
    m_inf = co.beta[i] / (1 - a)
    M_inf = (2 * g * m_inf + co.v[i]) / (1 - t)
    e0 = m0 - m_inf
    ta, aa = np.abs(t) ** ks, np.abs(a) ** ks
    termsM = abs(M_inf) + ta * abs(M0 - M_inf) + abs(2 * g * e0) * (ta + aa) / abs(t - a)
    termsm = abs(m_inf) + aa * abs(e0)
    sM = np.max(np.abs(Mk)) + 1e-300
    sm = np.max(np.abs(mk)) + 1e-300
    return float(max(np.max(termsM) / sM, np.max(termsm) / sm))


@dataclass(frozen=True)
class ClosedFormStationary:
    """Stationary answers of a commuting set from the closed forms (THEORY §8).

    ``exists``: every active direction has t < 1 and every null direction has b ≡ 0 (β = 0 and
    Var(b) = 0 — a mean-zero random drift in the null space is a random walk, unbounded).
    ``mean`` m∞ (d,) in the original coordinates, ``second`` M∞ per direction (d,),
    ``displacement`` ‖m∞‖, ``rms_distance`` √Σ M∞, ``variance`` per direction M∞ − m∞².
    """

    exists: bool
    rate: float
    mean: np.ndarray | None = field(repr=False)
    second: np.ndarray | None = field(repr=False)
    variance: np.ndarray | None = field(repr=False)
    displacement: float | None
    rms_distance: float | None
    reason: str


def closed_form_stationary(hs, schedule=None, *, drift_rtol=1e-12) -> ClosedFormStationary:
    """m∞ and M∞ of a commuting set from :func:`affine_stationary_solution` (THEORY §8).

    ``drift_rtol``: a null direction's β² and Var(b) count as zero below this times the largest
    E[b²] over all directions (round-off of the basis change).
    """
    co = direction_coefficients(hs, schedule)
    rate = co.rate
    act = ~co.null
    scale = max(float(np.max(co.v)), 1e-300)
    null_b = float(np.max(co.v[co.null])) if np.any(co.null) else 0.0
    if rate >= 1.0:
        return ClosedFormStationary(False, rate, None, None, None, None, None,
                                    f"max_k t_k = {rate:.6g} ≥ 1")
    if null_b > drift_rtol * scale:
        return ClosedFormStationary(False, rate, None, None, None, None, None,
                                    "the drift has a (random or mean) component in a null "
                                    "direction: linear growth of the second moment")
    f = affine_stationary_solution().function
    d = co.a.shape[0]
    Minf, minf, var = (np.zeros(d) for _ in range(3))
    Ma, ma, va = f(co.a[act], co.beta[act], co.t[act], co.gamma[act], co.v[act])
    Minf[act], minf[act], var[act] = Ma, ma, va
    return ClosedFormStationary(True, rate, co.basis @ minf, Minf, var,
                                float(np.linalg.norm(minf)), float(math.sqrt(max(Minf.sum(), 0.0))),
                                "max_k t_k < 1 and b ≡ 0 in the null directions")


def _span_basis(mats, rtol=1e-10):
    """Orthonormal basis of the span of PSD matrices (eigenvectors of their sum)."""
    S = sum(mats)
    lam, V = np.linalg.eigh(0.5 * (S + S.T))
    return V[:, lam > rtol * max(float(lam.max()), 1e-300)]


def summed_stationary_mean(hs, schedule=None):
    """Summed schedule, any HessianSet: m∞ = U(UᵀDU)⁻¹Uᵀ(αḡ_F − (1−α)ḡ_R) (THEORY §8).

    Built from the raw data only (dense mean Hessians ``hs.mean``, per-sample gradients, α);
    U is an orthonormal basis of the span of the Hessians that enter the step. The stationary
    mean of the span part whenever ρ(I − ηD) < 1 on the span; independent of η, the batch sizes
    and the sampling scheme (:func:`summed_stationary_mean_formula`). Returns (m∞ (d,), U).
    """
    dyn = as_dynamics(hs, schedule)
    hs, sch = dyn.hs, dyn.schedule
    if sch.schedule != "summed":
        raise ValueError(f"summed_stationary_mean needs schedule='summed', got {sch.schedule!r}")
    if not hs.has_gradients:
        raise ValueError("summed_stationary_mean needs per-sample gradients")
    a = sch.alpha
    mats, D, g = [], np.zeros((hs.dim, hs.dim)), np.zeros(hs.dim)
    if sch.uses_retain:
        HR = hs.mean("retain")
        mats.append(HR)
        D += (1 - a) * HR
        g -= (1 - a) * hs.gradients("retain").mean(axis=0)
    if sch.uses_forget:
        HF = hs.mean("forget")
        mats.append(HF)
        D -= a * HF
        g += a * hs.gradients("forget").mean(axis=0)
    U = _span_basis(mats)
    m_inf = U @ np.linalg.solve(U.T @ D @ U, U.T @ g)
    return m_inf, U


# ---------------------------------------------------------------------- exact outcome (THEORY §8)
#: Tolerance on ρ(T) − 1 (the same as theory.theorems.RATE_TOL).
RATE_TOL = 1e-9
#: A null-space drift (mean² + variance) below this times E‖b‖² is round-off, not a drift.
DRIFT_RTOL = 1e-12


class _AffineInstance:
    """A Dynamics with the cached exact quantities the affine theorems share."""

    def __init__(self, dyn, rate=None):
        self.dyn = dyn
        self._rate = rate

    @cached_property
    def rate(self) -> float:
        if self._rate is not None:
            return float(self._rate)
        from rmt.meansquare import mean_square_rate

        return float(mean_square_rate(self.dyn))

    @cached_property
    def drift(self):
        """(β (p,), Cov(b) (p, p), E‖b‖²) of one step, from the set terms (THEORY §8).

        Cov(b) = Σ_S s_S² Cov(ĝ_S) on the null coordinates V for every combinator (there every
        map is the identity, so b_V = Σ_S s_S ĝ_S,V); on the span the exact one-step second
        moment E[bbᵀ] from δ = 0 is used (alternating: the forget map acts on the retain drift).
        """
        dyn = self.dyn
        p = dyn.p
        beta = dyn.mean_drift()
        cov = np.zeros((p, p))
        if dyn.has_drift:
            from rmt.affine import affine_step

            M1, _ = affine_step(dyn, np.zeros((p, p)), np.zeros(p))
            cov = M1 - np.outer(beta, beta)
        return beta, 0.5 * (cov + cov.T), float(beta @ beta + np.trace(cov))

    @cached_property
    def null_drift(self):
        """(‖β_V‖, tr Cov(b_V), b_V ≡ 0 a.s.?) with the scale-relative tolerance DRIFT_RTOL."""
        beta, cov, total = self.drift
        r = self.dyn.r
        bv = float(np.linalg.norm(beta[r:]))
        cv = float(max(np.trace(cov[r:, r:]), 0.0))
        zero = bv**2 + cv <= DRIFT_RTOL * max(total, 1e-300)
        return bv, cv, bool(zero)

    @cached_property
    def span_stationary(self):
        """(m∞_U (r,), M∞_U (r, r)) of the span part when ρ(T) < 1 (whatever the null drift).

        The span part of the affine recursion is autonomous (J is the identity on V and does
        not mix V into U), so it has a stationary state even when the null part walks away.
        """
        from rmt.affine import affine_step
        from rmt.meansquare import MeanSquareOperator

        dyn = self.dyn
        r, p = dyn.r, dyn.p
        beta = self.drift[0]
        m = np.zeros(p)
        m[:r] = np.linalg.solve(np.eye(r) - dyn.mean_map, beta[:r])
        C = affine_step(dyn, np.zeros((p, p)), m)[0][:r, :r]
        op = MeanSquareOperator(dyn)
        if r <= 30:
            Mu = np.linalg.solve(np.eye(r * r) - op.matrix(), C.ravel()).reshape(r, r)
        else:
            import scipy.sparse.linalg as spla

            I_T = spla.LinearOperator(op.shape, matvec=lambda x: x - op.matvec(x), dtype=float)
            x, info = spla.gmres(I_T, C.ravel(), rtol=1e-13, maxiter=50 * r * r)
            if info != 0:
                raise RuntimeError(f"the span stationary equation did not converge ({info})")
            Mu = x.reshape(r, r)
        return m[:r], 0.5 * (Mu + Mu.T)

    @cached_property
    def outcome(self):
        return _classify(self)


@dataclass(frozen=True)
class AffineOutcome(OutcomeVerdict):
    """Exact asymptotic outcome of the affine recursion in mean square (THEORY §8, docs/affine.md).

    ``outcome`` ∈ rmt.forecast.OUTCOMES: "escapes" (sup_k E‖δ_k‖² = ∞ for a generic start:
    ρ(T) > 1, or a drift b_V ≢ 0 outside the span), "displaced" (the moments converge to a
    non-zero stationary state (M∞, m∞) from every start), "returns" (b ≡ 0 a.s. and ρ(T) < 1:
    E‖δ_k‖² → 0). ``marginal``: |ρ(T) − 1| ≤ RATE_TOL without null drift — the outcome is then
    decided by the sign of ρ(T) − 1 only and the theorems below do not apply (at ρ(T) = 1 both
    bounded and unbounded second moments occur, docs/affine.md). ``forgets`` is
    outcome ≠ "returns" (as :class:`rmt.ForecastResult`), ``notion`` mean-square.
    """

    outcome: str
    marginal: bool
    rate: float
    null_drift: float
    null_variance: float
    reason: str

    @property
    def notion(self) -> str:
        return MEAN_SQUARE


def _classify(inst) -> AffineOutcome:
    rate = inst.rate
    bv, cv, zero = inst.null_drift
    total = inst.drift[2]
    if getattr(inst.dyn, "has_null_mode", False):
        # shared isotropic curvature (issue 11): off the span J is a scalar j_N, not the
        # identity; ρ(T) (rmt) already includes E[j_N²], so the drift there is contracted when
        # ρ(T) < 1 and the null-drift rule below does not apply
        zero = True
    marginal = zero and abs(rate - 1.0) <= RATE_TOL
    if not zero:
        return AffineOutcome("escapes", False, rate, bv, cv,
                             f"drift outside the span: ‖E[b]_V‖ = {bv:.4g}, tr Cov(b_V) = "
                             f"{cv:.4g} (E‖P_Vδ_k‖² = k²‖E[b]_V‖² + k·tr Cov(b_V))")
    if rate > 1.0:
        return AffineOutcome("escapes", marginal, rate, bv, cv,
                             f"ρ(T) = {rate:.8g} > 1: E‖δ_k‖² ≥ ρ(T)^k from an isotropic start")
    if total <= 0.0:
        return AffineOutcome("returns", marginal, rate, bv, cv,
                             f"no drift (b ≡ 0) and ρ(T) = {rate:.8g} ≤ 1")
    return AffineOutcome("displaced", marginal, rate, bv, cv,
                         f"ρ(T) = {rate:.8g} < 1 and b ≡ 0 outside the span: stationary state")


_INSTANCES = {}


def _instance(hs, schedule=None):
    """An _AffineInstance from (hs, schedule), a Dynamics or a theory.theorems.Instance."""
    if hasattr(hs, "dyn") and schedule is None and not isinstance(hs, _AffineInstance):
        rate = hs.__dict__.get("rate")  # a theorems.Instance that already knows ρ(T)
        dyn = hs.dyn
    elif isinstance(hs, _AffineInstance):
        return hs
    else:
        dyn, rate = as_dynamics(hs, schedule), None
    key = id(dyn)
    hit = _INSTANCES.get(key)
    if hit is not None and hit.dyn is dyn:
        return hit
    if len(_INSTANCES) > 64:
        _INSTANCES.clear()
    inst = _INSTANCES[key] = _AffineInstance(dyn, rate)
    return inst


def asymptotic_outcome(hs, schedule=None) -> AffineOutcome:
    """The exact asymptotic mean-square outcome of the affine recursion (see AffineOutcome)."""
    return _instance(hs, schedule).outcome


# ---------------------------------------------------------------------- theorems
@dataclass(frozen=True)
class AffineCheck(OutcomeVerdict):
    """Verdict of one affine theorem on one instance against the exact moments (THEORY §8).

    Duck-types :class:`theory.theorems.TheoremCheck` (``name``, ``status``, ``applies``,
    ``conclusion``, ``held``, ``rate``, ``threshold``/``exact_critical`` — nan: these statements
    have no step-size threshold —, ``tightness``, ``eta``, ``violated``) and speaks
    :mod:`rmt.verdict`: ``forgets``/``verdict``/``notion`` are the *exact* outcome
    (:func:`asymptotic_outcome`), ``outcome`` its name. ``details``: the numbers that decided
    ``held`` (errors, bounds, horizons); ``reason``: why the theorem applies or not.
    """

    name: str
    status: str
    applies: bool
    conclusion: str
    held: bool | None
    rate: float
    outcome: str
    marginal: bool
    reason: str
    details: dict = field(default_factory=dict, repr=False)
    tightness: float = float("nan")
    eta: float = float("nan")
    threshold: float = float("nan")
    exact_critical: float = float("nan")

    @property
    def violated(self) -> bool:
        return self.held is False

    @property
    def notion(self) -> str:
        return MEAN_SQUARE


@dataclass(frozen=True, eq=False)
class AffineTheorem:
    """One encoded statement about the affine recursion (THEORY §8; proofs in docs/affine.md).

    Same reading as :class:`theory.theorems.Theorem`: ``hypothesis`` (text), ``conclusion``
    ("converges": bounded / convergent moments — the model resists escaping; "diverges":
    E‖δ_k‖² → ∞ — the model escapes w*), ``status`` ("proven": the proof is in docs/affine.md),
    ``derivation`` (the sympy Derivation the statement rests on). ``applies(hs, schedule)``
    evaluates the hypothesis; ``check(hs, schedule)`` compares the conclusion with the exact
    moments of :func:`rmt.affine.affine_moments` and returns an :class:`AffineCheck`.
    """

    name: str
    source: str
    hypothesis: str
    conclusion: str
    status: str
    section: str
    _derivation: object = field(repr=False)
    _pre: object = field(repr=False)
    _held: object = field(repr=False)
    notes: str = ""

    @property
    def derivation(self):
        """The sympy Derivation the statement rests on (built on first use: sympy is slow)."""
        return self._derivation()

    @property
    def expression(self):
        return self.derivation.expression

    @property
    def latex(self) -> str:
        return self.derivation.latex

    def structural(self, hs, schedule=None) -> bool:
        return bool(self._hypothesis(_instance(hs, schedule))[0])

    def applies(self, hs, schedule=None) -> bool:
        return self.structural(hs, schedule)

    def threshold(self, hs, schedule=None) -> float:
        """These statements have no step-size threshold: nan (TheoremCheck compatibility)."""
        return float("nan")

    def _hypothesis(self, inst):
        if getattr(inst.dyn, "has_null_mode", False):
            return False, ("shared isotropic curvature (issue 11): J is not the identity off the "
                           "span, the null-space statements of THEORY §8 do not apply")
        return self._pre(inst)

    def check(self, hs, schedule=None, **_ignored) -> AffineCheck:
        """Hypothesis, then the conclusion against the exact moments (``held`` None if it does
        not apply)."""
        inst = _instance(hs, schedule)
        ok, why = self._hypothesis(inst)
        held, details, tight = None, {}, float("nan")
        if ok:
            held, details, tight = self._held(inst)
        out = inst.outcome
        return AffineCheck(self.name, self.status, bool(ok), self.conclusion, held, inst.rate,
                           out.outcome, out.marginal, why, details, tight,
                           float(inst.dyn.schedule.eta))


def _moments(inst, steps, start=None):
    from rmt.affine import affine_moments

    return affine_moments(inst.dyn, steps, start=start)


def _horizon(rho, target=1e-13, lo=50, hi=20000):
    """Steps K with rho^K ≤ target (clipped to [lo, hi])."""
    if rho <= 0.0:
        return lo
    return int(min(max(math.ceil(math.log(target) / math.log(rho)), lo), hi))


def _mean_rate(dyn):
    """ρ(E[J]) on the span."""
    return float(np.max(np.abs(np.linalg.eigvals(dyn.mean_map))))


def _isotropic_start(dyn):
    U = dyn.basis
    return U @ U.T


# (a) bounded: sufficient direction --------------------------------------------------------
def _bounded_pre(inst):
    bv, cv, zero = inst.null_drift
    if not zero:
        return False, "the drift has a component outside the span (b_V ≢ 0)"
    if inst.rate >= 1.0 - RATE_TOL:
        return False, f"ρ(T) = {inst.rate:.8g} is not < 1"
    return True, "ρ(T) < 1 and b_V ≡ 0"


def _bounded_held(inst):
    from rmt.affine import stationary

    dyn = inst.dyn
    st = stationary(dyn, rate=inst.rate)
    if not st.exists:
        return False, {"stationary": st.reason}, float("nan")
    # the moments approach the fixed point like ρ(T)^k and, through the mean, like ρ(E[J])^k
    # (ρ(E[J])² ≤ ρ(T), so the mean can be the slower one)
    rho = max(inst.rate, _mean_rate(dyn))
    K = _horizon(rho)
    trM = st.rms_distance**2
    scale = trM + inst.drift[2] + 1e-300
    # tolerance: round-off plus the transient left after K steps (ρ^K times the initial error,
    # with a generous constant for non-normal transients)
    tol = 1e-8 * scale + 1e3 * rho**K * (scale + dyn.r)
    out = {"K": K, "tr_M_inf": trM, "tol": tol}
    held = True
    for label, start in (("zero", None), ("isotropic", _isotropic_start(dyn))):
        mo = _moments(inst, K, start)
        err = abs(float(mo.expected_sq_distance[-1]) - trM)
        merr = float(np.linalg.norm(mo.mean[-1] - st.mean))
        out[f"err_sq_{label}"], out[f"err_mean_{label}"] = err, merr
        held &= bool(err <= tol and merr <= math.sqrt(tol))
    return held, out, float("nan")


# (b) null drift: exact law ------------------------------------------------------------------
def _null_pre(inst):
    bv, cv, zero = inst.null_drift
    if zero:
        return False, "no drift outside the span (b_V ≡ 0)"
    return True, f"b_V ≢ 0 (‖E[b]_V‖ = {bv:.4g}, tr Cov(b_V) = {cv:.4g})"


def _null_held(inst):
    dyn = inst.dyn
    K = 200
    mo = _moments(inst, K)
    beta, cov, _ = inst.drift
    r = dyn.r
    nul = affine_null_solution().function
    ks = np.arange(K + 1, dtype=float)
    law = sum(nul(beta[i], cov[i, i] + beta[i] ** 2, 0.0, 0.0, ks)[0] for i in range(r, dyn.p))
    law = np.broadcast_to(np.asarray(law, float), ks.shape)
    fin = np.isfinite(mo.drift_sq)
    err = np.abs(mo.drift_sq[fin] - law[fin])
    # rmt's drift_sq is tr M − tr M_U: when the span part grows (ρ(T) > 1) the subtraction
    # keeps only ~1e-16 of the total, so the error is measured against law + 1e-3·total
    # scaled by 1e-9 (relative precision of the identity, and of the subtraction)
    denom = np.maximum(law[fin] + 1e-3 * mo.expected_sq_distance[fin], 1e-300)
    rel = float(np.max(err / denom)) if np.any(fin[1:]) else 0.0
    lower = bool(np.all(mo.expected_sq_distance[fin] >= law[fin] * (1 - 1e-10)))
    held = bool(rel <= 1e-9 and lower and bool(np.all(fin[1:] | ~np.isfinite(
        mo.expected_sq_distance[1:]))))
    return held, {"K": K, "max_rel_err": rel, "lower_bound_holds": lower,
                  "finite_steps": int(fin.sum())}, float("nan")


# (b') null drift dominates after K0 (summed) ---------------------------------------------
def _dominates_pre(inst):
    ok, why = _null_pre(inst)
    if not ok:
        return ok, why
    if inst.dyn.combinator != "summed":
        return False, "T is self-adjoint only for the summed schedule (the bound uses ‖T^k‖ = ρ^k)"
    if inst.rate >= 1.0 - RATE_TOL:
        return False, f"ρ(T) = {inst.rate:.8g} is not < 1"
    return True, why + ", summed, ρ(T) < 1"


def dominance_horizon(hs, schedule=None):
    """(K₀, S) of theorem ``affine-null-drift-dominates``: the span part of E‖δ_k‖² (from δ_0 = 0)
    is ≤ S = (√tr M∞_U + (√r‖M∞_U‖_F)^{1/2})² for every k, and the null part exceeds S for
    k ≥ K₀ (summed schedule, ρ(T) < 1, b_V ≢ 0; docs/affine.md)."""
    inst = _instance(hs, schedule)
    ok, why = _dominates_pre(inst)
    if not ok:
        raise ValueError(f"the dominance horizon needs its hypothesis: {why}")
    _, Mu = inst.span_stationary
    r = inst.dyn.r
    S = (math.sqrt(max(np.trace(Mu), 0.0))
         + math.sqrt(math.sqrt(r) * float(np.linalg.norm(Mu)))) ** 2
    bv, cv, _ = inst.null_drift
    if bv > 0:
        K0 = float(null_dominance_horizon().function(bv, cv, S))
    else:
        K0 = S / cv
    return int(math.ceil(K0)), S


def _dominates_held(inst):
    K0, S = dominance_horizon(inst)
    K_end = min(max(2 * K0, K0 + 200), 20000)
    mo = _moments(inst, K_end)
    span, null = mo.span_sq, mo.drift_sq + mo.frozen_sq
    bound_ok = bool(np.all(span <= S * (1 + 1e-9)))
    # K₀ beyond the step cap: only the bound S on the span part can be checked
    dom_ok = K0 > K_end or bool(np.all(null[K0:] >= span[K0:] * (1 - 1e-12)))
    ok = null >= span
    # observed onset: first k after which the null part stays ahead up to K_end
    bad = np.flatnonzero(~ok)
    k_obs = int(bad[-1] + 1) if bad.size else 0
    tight = float(K0 / k_obs) if k_obs > 0 else float("inf")
    return bound_ok and dom_ok, {"K0": K0, "S": S, "K_end": K_end, "sup_span": float(span.max()),
                                 "observed_onset": k_obs, "dominance_checked": K0 <= K_end}, tight


# (a') isotropic growth: necessity of ρ(T) ≤ 1 ---------------------------------------------
def _growth_pre(inst):
    if inst.rate <= 1.0 + RATE_TOL:
        return False, f"ρ(T) = {inst.rate:.8g} is not > 1"
    return True, "ρ(T) > 1"


def _growth_held(inst):
    dyn = inst.dyn
    rho = inst.rate
    K = int(min(max(math.ceil(math.log(1e8) / math.log(rho)), 5), 500))
    iso = _moments(inst, K, _isotropic_start(dyn)).expected_sq_distance
    zero = _moments(inst, K).expected_sq_distance
    ks = np.arange(K + 1)
    with np.errstate(over="ignore", invalid="ignore"):
        diff = iso - zero
        bound = rho ** ks.astype(float)
        fin = np.isfinite(diff) & np.isfinite(bound)
        ratio = diff[fin] / bound[fin]
    held = bool(np.all(ratio >= 1 - 1e-9))
    return held, {"K": K, "min_ratio": float(ratio.min())}, float(ratio.min())


# (c) stationary mean ------------------------------------------------------------------------
def _mean_pre(inst):
    rho_mean = float(np.max(np.abs(np.linalg.eigvals(inst.dyn.mean_map))))
    if rho_mean >= 1.0 - RATE_TOL:
        return False, f"ρ(E[J]) = {rho_mean:.8g} on the span is not < 1"
    return True, f"ρ(E[J]) = {rho_mean:.6g} < 1 on the span"


def _mean_held(inst):
    dyn = inst.dyn
    r = dyn.r
    rho_mean = float(np.max(np.abs(np.linalg.eigvals(dyn.mean_map))))
    U = dyn.basis
    if dyn.combinator == "summed" and dyn.has_drift:
        m_inf, _ = summed_stationary_mean(dyn)  # raw data: D and ḡ, independent of dyn's maps
    else:
        beta = inst.drift[0]
        m_inf = U @ np.linalg.solve(np.eye(r) - dyn.mean_map, beta[:r])
    K = _horizon(rho_mean)
    mo = _moments(inst, K)
    W = np.concatenate([dyn.basis, dyn.drift_basis], axis=1)
    means = mo.mean
    fin = np.all(np.isfinite(means), axis=1)
    if not np.all(fin):
        # E‖δ_k‖² overflowed (ρ(T) > 1 can go with ρ(E[J]) < 1) and affine_moments stops the
        # mean there; the mean recursion m' = E[J]m + E[b] is exact on its own: continue it
        # from the last finite step
        A = np.eye(dyn.p)
        A[:r, :r] = dyn.mean_map
        beta = inst.drift[0]
        last = int(np.flatnonzero(fin)[-1])
        means = means.copy()
        for k in range(last + 1, K + 1):
            means[k] = A @ means[k - 1] + beta
    mean_U = (means @ W.T) @ U @ U.T  # the span part of E[δ_k] in original coordinates
    err = np.linalg.norm(mean_U - m_inf[None, :], axis=1)
    scale = float(np.linalg.norm(m_inf)) + 1e-300
    out = {"K": K, "displacement": float(np.linalg.norm(m_inf)), "final_err": float(err[-1])}
    if dyn.combinator == "summed":
        # E[δ_k]_U − m∞ = −(I − ηD)^k m∞ with I − ηD symmetric: ‖·‖ ≤ ρ(I − ηD)^k ‖m∞‖
        ks = np.arange(K + 1, dtype=float)
        excess = err - rho_mean**ks * scale
        out["max_excess_over_bound"] = float(np.max(excess))
        held = bool(np.all(excess <= 1e-9 * scale))
    else:
        held = bool(err[-1] <= 1e-7 * scale + 1e3 * rho_mean**K * scale)
    return held, out, float("nan")


def _build_affine():
    T = []
    T.append(AffineTheorem(
        "affine-bounded", "derived (THEORY §8; docs/affine.md, Theorem A1)",
        "ρ(T) < 1 and the drift outside the span vanishes almost surely (E[b]_V = 0 and "
        "Cov(b_V) = 0)", "converges", "proven", "§8", affine_stationary_solution,
        _bounded_pre, _bounded_held,
        notes="From every start with finite second moment, (E[δδᵀ], E[δ]) → (M∞, m∞) "
              "geometrically: sup_k E‖δ_k‖² < ∞. The converse directions are affine-null-drift "
              "(b_V ≢ 0 ⇒ unbounded) and affine-isotropic-growth (ρ(T) > 1 ⇒ unbounded from an "
              "isotropic start); at ρ(T) = 1 both outcomes occur (docs/affine.md).",
    ))
    T.append(AffineTheorem(
        "affine-null-drift", "derived (THEORY §8; docs/affine.md, Theorem A2)",
        "the drift outside the span is not a.s. zero (E[b]_V ≠ 0 or Cov(b_V) ≠ 0); any ρ(T), "
        "any schedule", "diverges", "proven", "§8", affine_null_solution,
        _null_pre, _null_held,
        notes="From δ_0 = 0: E‖P_Vδ_k‖² = k²‖E[b]_V‖² + k·tr Cov(b_V) exactly, so "
              "E‖δ_k‖² ≥ k²‖E[b]_V‖² + k·tr Cov(b_V) → ∞ — a mean-zero random null drift is a "
              "random walk and escapes too.",
    ))
    T.append(AffineTheorem(
        "affine-null-drift-dominates", "derived (THEORY §8; docs/affine.md, Theorem A3)",
        "summed schedule, ρ(T) < 1, b_V ≢ 0", "diverges", "proven", "§8",
        null_dominance_horizon, _dominates_pre, _dominates_held,
        notes="The span part stays ≤ S = (√tr M∞_U + (√r‖M∞_U‖_F)^{1/2})² for every k (T "
              "self-adjoint, so ‖T^k‖ = ρ(T)^k); the null part exceeds S for k ≥ K₀, the "
              "positive root of K²‖E[b]_V‖² + K·tr Cov(b_V) = S. tightness = K₀ / observed onset "
              "(≥ 1 when the statement holds).",
    ))
    T.append(AffineTheorem(
        "affine-isotropic-growth", "derived (THEORY §8; docs/affine.md, Theorem A4)",
        "ρ(T) > 1 (any drift, any schedule)", "diverges", "proven", "§8 (§3)",
        affine_kstep_solution, _growth_pre, _growth_held,
        notes="With E[δ_0δ_0ᵀ] = P_U, E[δ_0] = 0: E‖δ_k‖² − E‖δ_k‖²|_{δ_0=0} = tr T^k(I_U) ≥ "
              "‖T^k(I_U)‖ = ‖T^k‖ ≥ ρ(T)^k (Russo–Dye for the positive map T^k). "
              "tightness = min_k ratio (≥ 1 when the statement holds).",
    ))
    T.append(AffineTheorem(
        "affine-stationary-mean", "derived (THEORY §8; docs/affine.md, Theorem A5)",
        "ρ(E[J]) < 1 on the span (summed: 0 < ηλ(D) < 2 on the span; implied by ρ(T) < 1); "
        "any drift", "converges", "proven", "§8", summed_stationary_mean_formula,
        _mean_pre, _mean_held,
        notes="E[P_Uδ_k] → m∞ = (I − E[J])⁻¹E[b]_U; summed: m∞ = D⁻¹(αḡ_F − (1−α)ḡ_R) on the "
              "span, independent of η, the batch sizes and the scheme, and from δ_0 = 0 "
              "‖E[P_Uδ_k] − m∞‖ ≤ ρ(I − ηD)^k‖m∞‖.",
    ))
    return tuple(T)


#: The encoded affine statements (picked up by theory.theorems.check_all).
AFFINE_THEOREMS = _build_affine()


def get_affine_theorem(name):
    """The affine theorem called ``name``."""
    for t in AFFINE_THEOREMS:
        if t.name == name:
            return t
    raise ValueError(f"name must be one of {[t.name for t in AFFINE_THEOREMS]}, got {name!r}")
