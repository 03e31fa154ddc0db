"""Affine (drift) unlearning: the sympy derivations (contract §8).

At a minimum that does not interpolate, the linearised step is affine,
δ_{k+1} = J_k δ_k + b_k, with J_k and b_k built from the *same* batch (contract §8,
docs/affine.md). For a **commuting** set (all H_i diagonal in one basis Q) every direction k of
Q evolves on its own: with j = (J)_kk and b = (Qᵀb)_k,

    δ' = j δ + b          ⇒      m' = a m + β,     M' = t M + 2γ m + v

for the per-direction mean m = E[δ] and second moment M = E[δ²], where

    a = E[j],  β = E[b],  t = E[j²],  γ = E[j b],  v = E[b²]

((j, b) is independent of δ; γ carries the batch correlation between the matrix and the drift).
This module derives (a, β, t, γ, v) from the batch-indicator moments of each sampling scheme for
the summed, the alternating and the SAM schedule, the k-step solution of the augmented recursion
(M, m, 1) ↦ A(M, m, 1), the stationary point (t < 1), the null direction (a = t = 1) and the
marginal direction (t = 1 ≠ a). Every derivation is a *procedure* in sympy (assumptions in its
docstring) that checks the identities it relies on and raises
:class:`theory.derivations.DerivationError` when one fails. Their numeric evaluation on a
HessianSet is :mod:`theory.affine_closed_forms`; the statements are :mod:`theory.affine`.

Per-set symbols (per direction, for set S ∈ {R, F}): m_S = mean λ_i, q_S = mean λ_i², ḡ_S = mean
γ_i (γ_i the gradient coordinate), p_S = mean λ_iγ_i, r_S = mean γ_i²; n_S, B_S size and batch.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import sympy as sp

from rmt.combinators import get_combinator
from rmt.schedule import mixing_weights

from .derivations import (
    SCHEMES,
    B,
    B_F,
    B_R,
    Derivation,
    _check_scheme,
    _make,
    _require,
    a_sam,
    alpha,
    collect_derivations,
    commuting_direction_rate,
    eta,
    m_F,
    m_R,
    n,
    n_F,
    n_R,
    q_F,
    q_R,
    rho_sam,
    sampling_coefficients,
)

__all__ = [
    "AFFINE_SYMBOLS",
    "COEFFICIENT_ARGS",
    "SAM_COEFFICIENT_ARGS",
    "SCHEDULES",
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
]

# ---------------------------------------------------------------------- symbols
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


def _check_schedule(schedule):
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {list(SCHEDULES)}, got {schedule!r}")


# ---------------------------------------------------------------------- sampling (contract §2.1)
@lru_cache(maxsize=None)
def indicator_moments(sampling: str) -> tuple[sp.Expr, sp.Expr]:
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
def batch_pair_moments(sampling: str) -> Derivation:
    """Covariance of two batch means drawn with the same indicators (contract §2.1, §8).

    For per-sample scalars u_i, v_i and û = (1/B)Σ x_i u_i, v̂ = (1/B)Σ x_i v_i:
    E[ûv̂] = (1/B²)[E[x_i²] Σ_i u_iv_i + E[x_ix_j](Σ_i u_i Σ_j v_j − Σ_i u_iv_i)]; with
    Σ u_iv_i = n·P, Σu = nū, Σv = nv̄ the covariance E[ûv̂] − ūv̄ = c·P − e·ūv̄ is read off as the
    coefficients of P and ūv̄. Check: (c, e) equals :func:`theory.derivations.sampling_coefficients`
    (the u = v case, the foundation of contract §2.1). Expression: (c, e) in (n, B).
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
def affine_direction_coefficients(sampling: str, schedule: str = "summed") -> Derivation:
    """Per-direction coefficients (a, β, t, γ, v) of the affine recursion (contract §8), derived.

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
    :func:`theory.derivations.commuting_direction_rate` (the interpolating case of contract §3);
    summed a = 1 − ηD with D = (1−α)m_R − αm_F; with zero curvature (m = q = p = 0) the direction
    is null: a = t = 1 and γ = β; alternating = the composition of the two one-set maps
    (a = a_Fa_R, β = a_Fβ_R + β_F, t = t_Ft_R, γ = t_Fγ_R + γ_Fa_R, v = t_Fv_R + 2γ_Fβ_R + v_F).
    Expression: (a, β, t, γ, v); args :data:`COEFFICIENT_ARGS`.
    """
    _check_scheme(sampling)
    _check_schedule(schedule)
    hR, gR_, hF, gF_ = sp.symbols("hhat_R ghat_R hhat_F ghat_F", real=True)
    comb = get_combinator(schedule)
    w_r, w_f = mixing_weights(alpha)
    sR, sF = -eta * w_r, eta * w_f
    if comb.preconditioned:
        # SAM (α = 0): J = I − ηĤ_R K, K = I + (ρ/a)H̄_R, so per direction j = 1 − ηκĥ_R with
        # κ = 1 + (ρ/a)m_R; the drift is −η times the gradient at the ascent point,
        # ĝ_R + (ρ/a)Ĥ_R ḡ_R, whose per-direction coordinate is ĝ_R + (ρ/a)ĥ_R ḡ_R
        kappa = 1 + rho_sam / a_sam * m_R
        j = 1 - eta * kappa * hR
        b = -eta * (gR_ + rho_sam / a_sam * hR * g_R)
    elif not comb.products:
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
    if comb.preconditioned:
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
    if comb.self_adjoint:
        D = w_r * m_R - w_f * m_F
        _require(_is_zero(a - (1 - eta * D)), "E[j] is not 1 - eta D", a)
    null = {m_R: 0, q_R: 0, p_R: 0, m_F: 0, q_F: 0, p_F: 0}
    _require(_is_zero(a.subs(null) - 1) and _is_zero(t.subs(null) - 1)
             and _is_zero((gamma - beta).subs(null)),
             "a null direction is not a = t = 1, gamma = beta", (a.subs(null), t.subs(null)))
    if comb.products:
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
    args = SAM_COEFFICIENT_ARGS if comb.preconditioned else COEFFICIENT_ARGS
    steps = [("j", j), ("b", b), ("a = E[j]", expr[0]), ("beta = E[b]", expr[1]),
             ("t = E[j^2]", expr[2]), ("gamma = E[j b]", expr[3]), ("v = E[b^2]", expr[4])]
    return _make(f"affine-coefficients-{sampling}-{schedule}", expr, args, steps, "§8")


# ---------------------------------------------------------------------- the scalar recursion
def _is_zero(expr):
    """Exact zero test for rational expressions (cheaper than ``simplify`` on large ones)."""
    return sp.cancel(sp.expand(expr)) == 0


def _augmented(a, beta, t, gamma, v):
    """The augmented one-step matrix on (M, m, 1) (contract §8)."""
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
def affine_kstep_solution() -> Derivation:
    """k-step solution (M_k, m_k) of m' = a m + β, M' = t M + 2γ m + v from (M_0, m_0) (contract §8).

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
def affine_null_solution() -> Derivation:
    """Null direction (every active Hessian vanishes there): a = t = 1, γ = β (contract §8).

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
def affine_marginal_solution() -> Derivation:
    """Marginal direction t = 1 ≠ a (ρ(T) = 1 attained in a direction with noise) (contract §8).

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
def affine_stationary_solution() -> Derivation:
    """Stationary point of the scalar recursion when t < 1 (contract §8).

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
def summed_stationary_mean_formula() -> Derivation:
    """Summed schedule: m∞ = β/(1 − a) = (αḡ_F − (1−α)ḡ_R)/D per direction (contract §8).

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
    w_r, w_f = mixing_weights(alpha)
    D = w_r * m_R - w_f * m_F
    target = (w_f * g_F - w_r * g_R) / D
    _require(sp.simplify(out - target) == 0, "m_inf is not D^-1 (alpha gF - (1-alpha) gR)", out)
    return _make("affine-summed-stationary-mean", target, (alpha, m_R, g_R, m_F, g_F),
                 [("beta / (1 - a)", out)], "§8")


@lru_cache(maxsize=None)
def null_dominance_horizon() -> Derivation:
    """Horizon K₀ after which the null-space drift carries at least half of E‖δ_K‖² (contract §8).

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


def all_affine_derivations() -> dict[str, Derivation]:
    """Every derivation of this module (name → Derivation), for the docs."""
    entries: list[tuple[str, Callable[..., Derivation], tuple[str, ...]]] = []
    for s in SCHEMES:
        entries.append((f"affine-pair-moments-{s}", batch_pair_moments, (s,)))
        entries += [(f"affine-coefficients-{s}-{sch}", affine_direction_coefficients, (s, sch))
                    for sch in SCHEDULES]
    entries += [(f"affine-{key}", factory, ()) for key, factory in (
        ("kstep", affine_kstep_solution), ("null", affine_null_solution),
        ("marginal", affine_marginal_solution), ("stationary", affine_stationary_solution),
        ("summed-stationary-mean", summed_stationary_mean_formula),
        ("null-dominance-horizon", null_dominance_horizon))]
    return collect_derivations(entries)
