"""Sympy derivations behind :mod:`rmt.asymptotics` (contract §9).

Same conventions as :mod:`theory.derivations`: each public function is a *procedure* that starts
from the model, ends in the formula that :mod:`rmt.asymptotics` evaluates, states its assumptions
in the docstring and checks the identities it relies on with
:class:`theory.derivations.DerivationError` (never ``assert``). Each returns a
:class:`theory.derivations.Derivation` (expression, lambdified function, LaTeX, steps).

Reference ensemble: rank-one per-sample Hessians H_i = g_i g_iᵀ with g_i i.i.d. N(0, I_d/d);
retain n_r samples, forget n_f samples; "online" means a fresh batch of B such samples at every
step (the n → ∞ limit of sampling with replacement).
"""

from __future__ import annotations

from functools import lru_cache

import sympy as sp
import sympy.stats as st

from rmt.schedule import mixing_weights

from .derivations import Derivation, DerivationError, _make, _require

__all__ = [
    "online_reduction",
    "online_mean_square",
    "rank_one_frame_volume",
    "proportional_secular_equation",
    "critical_eta_limit",
    "mixed_hessian_edge_polynomial",
    "bbp_spike",
    "cnn_coherence_knee",
    "cnn_signed_gram_bbp",
    "all_asymptotic_derivations",
    "Derivation",
    "DerivationError",
]

d = sp.symbols("d", positive=True, integer=True)
B_R, B_F = sp.symbols("B_R B_F", positive=True, integer=True)
c_R, c_F = sp.symbols("c_R c_F", nonnegative=True)
s_R, s_F, t = sp.symbols("s_R s_F t", nonnegative=True)
eta, alpha = sp.symbols("eta alpha", positive=True)


def _gauss_moment(power, var):
    """E[g^power] for g ~ N(0, var) (Isserlis: (p−1)!! var^{p/2}, 0 for odd p)."""
    if power % 2:
        return sp.Integer(0)
    return sp.factorial2(power - 1) * var ** sp.Rational(power, 2)


# ---------------------------------------------------------------------- online, exact (§9)
@lru_cache(maxsize=None)
def online_reduction() -> Derivation:
    """‖J e₁‖² for the online step reduces to three independent chi-squares.

    Assumptions: J = I − c_R G_R G_Rᵀ + c_F G_F G_Fᵀ with G_R ∈ R^{d×B_R}, G_F ∈ R^{d×B_F}
    independent, entries i.i.d. N(0, 1/d). Write a_S = G_Sᵀe₁ (first rows) and G_S′ for the other
    d − 1 rows. Then J e₁ = (1 − c_R‖a_R‖² + c_F‖a_F‖²) e₁ ⊕ (−c_R G_R′a_R + c_F G_F′a_F), and given
    (a_R, a_F) the second block is N(0, (c_R²‖a_R‖² + c_F²‖a_F‖²)/d · I_{d−1}) because G_R′, G_F′
    are independent of the first rows. Hence ‖Je₁‖² = (1 − c_R s_R + c_F s_F)² +
    (c_R² s_R + c_F² s_F) t with s_S = ‖a_S‖² ~ χ²_{B_S}/d, t ~ χ²_{d−1}/d independent — for any
    batch size (the batch Hessian is not rank one, but its action on e₁ only involves ‖a_S‖²).

    Self-check: E of the reduced form (sympy.stats chi-square moments) equals E[(J²)₁₁] computed
    independently from Gaussian moments of the entries (Isserlis):
    E W = (B/d) I, E[(W²)₁₁] = Σ_j Σ_{b,b′} E[G_{1b}G_{jb}G_{1b′}G_{jb′}] = B(B + d + 1)/d².
    Expression: the reduced integrand X(s_R, s_F, t).
    """
    X = (1 - c_R * s_R + c_F * s_F) ** 2 + (c_R**2 * s_R + c_F**2 * s_F) * t
    xR = st.ChiSquared("x_R", B_R)
    xF = st.ChiSquared("x_F", B_F)
    xt = st.ChiSquared("x_t", d - 1)
    # independence: E of a monomial s_R^i s_F^j t^l is the product of the chi-square moments
    mom = {}
    for var, rv in ((s_R, xR), (s_F, xF), (t, xt)):
        for p in range(3):
            mom[var, p] = sp.simplify(sp.expand_func(st.E(rv**p))) / d**p
    EX = sp.Integer(0)
    for (i, j, k), coef in sp.Poly(sp.expand(X), s_R, s_F, t).terms():
        EX += coef * mom[s_R, i] * mom[s_F, j] * mom[t, k]
    EX = sp.expand(EX)
    # independent route: Wishart moments from Isserlis, one entry at a time
    v = 1 / d
    EW = lambda BB: BB * _gauss_moment(2, v)  # noqa: E731  (W₁₁ = Σ_b G_{1b}²)
    # (W²)₁₁: j = 1 gives Σ_{b,b'} E[G_{1b}² G_{1b'}²] = B·E g⁴ + B(B−1)(E g²)², j ≠ 1 gives
    # Σ_b E[G_{1b}²]E[G_{jb}²] (only b = b′ survives), d − 1 such rows
    EW2 = lambda BB: (BB * _gauss_moment(4, v) + BB * (BB - 1) * _gauss_moment(2, v) ** 2  # noqa: E731
                      + (d - 1) * BB * _gauss_moment(2, v) ** 2)
    wishart = sp.expand(1 - 2 * c_R * EW(B_R) + 2 * c_F * EW(B_F) + c_R**2 * EW2(B_R)
                        + c_F**2 * EW2(B_F) - 2 * c_R * c_F * EW(B_R) * EW(B_F))
    diff = sp.simplify(sp.gammasimp(EX - wishart))
    _require(diff == 0, "E of the reduced form must equal the Wishart moment E[(J^2)_11]", diff)
    _require(sp.simplify(EW2(B_R) - B_R * (B_R + d + 1) / d**2) == 0,
             "Isserlis gives E[(W^2)_11] = B(B+d+1)/d^2", EW2(B_R))
    steps = [
        ("J e_1 = (1 - c_R s_R + c_F s_F) e_1 ⊕ (−c_R G_R' a_R + c_F G_F' a_F)", X),
        ("E X from chi-square moments", EX),
        ("E[(J^2)_11] from Isserlis", wishart),
    ]
    return _make("online-reduction", X, (c_R, c_F, s_R, s_F, t), steps, "§9")


@lru_cache(maxsize=None)
def online_mean_square() -> Derivation:
    """Exact ρ(T) of online isotropic SGD/unlearning: E‖J e₁‖² in (η, α, B_R, B_F, d).

    Assumptions: those of :func:`online_reduction`; T(M) = E[JMJᵀ] commutes with M ↦ QMQᵀ, so by
    Schur's lemma it acts as a scalar on the traceless symmetric matrices and as E‖Je₁‖² on I;
    Krein–Rutman (T preserves the PSD cone) puts ρ(T) on a PSD eigenmatrix, which must be ∝ I.
    Substitutes c_R = η(1−α)/B_R, c_F = ηα/B_F. SGD check: α = 0 gives
    1 − 2η/d + η²(B + d + 1)/(B d²).
    """
    EX = online_reduction().steps[1][1]
    w_r, w_f = mixing_weights(alpha)
    rho = sp.simplify(EX.subs({c_R: eta * w_r / B_R, c_F: eta * w_f / B_F}))
    sgd = sp.simplify(rho.subs(alpha, 0))
    target = 1 - 2 * eta / d + eta**2 * (B_R + d + 1) / (B_R * d**2)
    _require(sp.simplify(sgd - target) == 0, "SGD limit of the mean-square rate", sgd)
    return _make("online-mean-square", rho, (eta, alpha, B_R, B_F, d),
                 [("E X with c_R, c_F substituted", rho), ("alpha = 0", sgd)], "§9")


@lru_cache(maxsize=None)
def rank_one_frame_volume(k: int = 3) -> Derivation:
    """Squared k-frame volume of a rank-one step J = I − c g gᵀ: det(E_kᵀJ²E_k) = (1−cs)² + c²st.

    Assumptions: g ∈ R^d, a = first k coordinates of g, s = ‖a‖², t = ‖g‖² − s (for
    g ~ N(0, I/d): s ~ χ²_k/d, t ~ χ²_{d−k}/d independent). J² = I + (c²‖g‖² − 2c) ggᵀ, so
    E_kᵀJ²E_k = I_k + (c²(s+t) − 2c) a aᵀ; the matrix determinant lemma gives
    1 + (c²(s + t) − 2c)s. Checked on an explicit k×k matrix with symbolic entries (k given).
    Then λ₁ + … + λ_k = ½E log of it (the uniform measure on the Grassmannian is stationary for a
    conjugation-invariant law).
    """
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    c = sp.symbols("c", real=True)
    a = sp.Matrix(sp.symbols(f"a1:{k + 1}", real=True))
    tt = sp.symbols("t", nonnegative=True)
    ss = sum(x**2 for x in a)
    M = sp.eye(k) + (c**2 * (ss + tt) - 2 * c) * a * a.T
    det = sp.expand(M.det())
    closed = sp.expand((1 - c * ss) ** 2 + c**2 * ss * tt)
    _require(sp.simplify(det - closed) == 0, "matrix determinant lemma for the frame volume",
             sp.simplify(det - closed))
    s_sym = sp.symbols("s", nonnegative=True)
    expr = (1 - c * s_sym) ** 2 + c**2 * s_sym * tt
    return _make(f"rank-one-frame-volume-k{k}", expr, (c, s_sym, tt),
                 [("det(I + (c^2 (s+t) - 2c) a a^T)", det)], "§9")


# ---------------------------------------------------------------------- proportional limit
q, Om, z, G, nu, rho, wp, et, om = sp.symbols("q Omega z G nu rho wprime etatilde omega",
                                              positive=True)


@lru_cache(maxsize=None)
def proportional_secular_equation() -> Derivation:
    """Secular equation of ρ(T) for SGD on the finite-sum Gaussian ensemble, n/d → γ = 1/q.

    Assumptions: H_i = g_i g_iᵀ, g_i ~ N(0, I/d); η = η̃d and scheme weight ω = d·w fixed
    (batch ∝ d); d·H̄ → Marchenko–Pastur(q); the top eigenmatrix of T is a function f(dH̄)
    (the quadratic forms g_iᵀf(dH̄)g_i concentrate on (1/d)tr(dH̄ f(dH̄)) = ∫νf(ν)dμ by
    exchangeability — averaging over i gives exactly tr(f(S)S)/d). Then
    (Tf)(ν) = a(ν)f(ν) + η̃²ω ν ∫ν′f(ν′)dμ, a(ν) = (1 − η̃ν)² − η̃²w′ν², a rank-one perturbation of
    a multiplication operator; the eigenfunction is f = η̃²ωνκ/(ρ − a(ν)) and consistency of κ
    gives 1 = η̃²ω ∫ ν²/(ρ − a(ν)) dμ(ν). At ρ = 1 the kernel simplifies to ν/(η̃(2 − η̃′ν)),
    η̃′ = (1 − w′)η̃. Expression: the integrand ν²/(ρ − a(ν)) times η̃²ω.
    """
    a = (1 - et * nu) ** 2 - et**2 * wp * nu**2
    kern = et**2 * om * nu**2 / (rho - a)
    at1 = sp.simplify(kern.subs(rho, 1))
    target = et * om * nu / (et * (2 - (1 - wp) * et * nu)) * et
    _require(sp.simplify(at1 - target) == 0, "kernel at rho = 1", at1)
    return _make("proportional-secular-kernel", kern, (nu, rho, et, om, wp),
                 [("a(nu)", a), ("kernel at rho = 1", at1)], "§9")


@lru_cache(maxsize=None)
def critical_eta_limit() -> Derivation:
    """Closed-form critical step η̃* = η*/d of the proportional limit.

    Assumptions: those of :func:`proportional_secular_equation`; MP Stieltjes transform
    G(z) = ∫dμ/(z − ν) solves q z G² − (z + q − 1)G + 1 = 0 (ratio q = d/n, atom at 0 included).
    At ρ = 1: 1 = (ω/(1−w′)) ∫ ν/(z − ν) dμ with z = 2/η̃′, and ∫ν/(z−ν)dμ = zG − 1, so
    zG − 1 = 1/Ω, Ω = ω/(1 − w′). Solving with the MP equation: G = 1/(Ω + q),
    z = (Ω + 1)(Ω + q)/Ω, η̃* = 2/((1 − w′)z). The root is on the physical branch iff z lies above
    the upper edge (1 + √q)², i.e. Ω ≥ √q (z(Ω) has its minimum (1 + √q)² at Ω = √q); otherwise
    the mean step leaves first and η̃* = 2/((1 − w′)(1 + √q)²).
    """
    mp = q * z * G**2 - (z + q - 1) * G + 1
    cond = z * G - 1 - 1 / Om
    sol = sp.solve([mp, cond], [G, z], dict=True)
    _require(len(sol) == 1, "one solution of the MP equation with zG - 1 = 1/Omega", sol)
    zs = sp.factor(sol[0][z])
    _require(sp.simplify(zs - (Om + 1) * (Om + q) / Om) == 0, "z(Omega)", zs)
    _require(sp.simplify(zs.subs(Om, sp.sqrt(q)) - (1 + sp.sqrt(q)) ** 2) == 0,
             "z(sqrt q) is the MP upper edge", zs.subs(Om, sp.sqrt(q)))
    dz = sp.solve(sp.diff(zs, Om), Om)
    _require(dz == [sp.sqrt(q)], "z(Omega) is stationary only at sqrt(q)", dz)
    eta_star = sp.simplify(2 / ((1 - wp) * zs))
    steps = [("MP equation", mp), ("z G - 1 = 1/Omega", cond), ("solution", sol[0]),
             ("z(Omega)", zs), ("eta-tilde*", eta_star)]
    return _make("critical-eta-limit", eta_star, (Om, q, wp), steps, "§9")


@lru_cache(maxsize=None)
def mixed_hessian_edge_polynomial() -> Derivation:
    """Edges of the free difference (1−α)MP(q_R) ⊟ αMP(q_F) (units of d·D).

    Assumptions: H̄_R, H̄_F independent Gaussian Wisharts (asymptotically free); R-transform of
    MP(q) (mean 1) is 1/(1 − qw), scaling R_{cX}(w) = cR_X(cw). So R(w) = A/(1 − aw) − β/(1 + bw)
    with A = 1−α, β = α, a = q_R A, b = q_F β, and the inverse Cauchy transform is
    z(w) = R(w) + 1/w. At an edge the subordination fixed point has a real double point:
    z′(w) = 0. Expression: the numerator polynomial of z′(w) (a quartic in w). Also derived: the
    cubic z = R(G) + 1/G whose non-real roots give the density. Check: α = 0 gives the MP edges
    (1 ± √q_R)².
    """
    A_, beta, qR, qF, w = sp.symbols("A beta q_R q_F w", real=True)
    a, b = qR * A_, qF * beta
    zw = A_ / (1 - a * w) - beta / (1 + b * w) + 1 / w
    num = sp.factor(sp.together(sp.diff(zw, w)))
    poly = sp.expand(sp.numer(num))
    cubic = sp.expand(sp.numer(sp.together(zw.subs(w, G) - z)))
    # α = 0 check: critical points of A/(1 − qAw) + 1/w with A = 1
    qq = sp.symbols("qq", positive=True)
    z0 = (1 / (1 - qq * w) + 1 / w)
    crit = sp.solve(sp.diff(z0, w), w)
    edges = sorted([sp.simplify(z0.subs(w, c)) for c in crit], key=lambda e: float(e.subs(qq, 0.25)))
    _require(len(edges) == 2
             and sp.simplify(edges[0] - (1 - sp.sqrt(qq)) ** 2) == 0
             and sp.simplify(edges[1] - (1 + sp.sqrt(qq)) ** 2) == 0,
             "alpha = 0 gives the Marchenko-Pastur edges", edges)
    steps = [("R(w) + 1/w", zw), ("z'(w) (factored)", num), ("cubic for G", cubic),
             ("alpha=0 edges", edges)]
    return _make("mixed-hessian-edge-polynomial", poly, (w, A_, beta, qR, qF), steps, "§9")


@lru_cache(maxsize=None)
def bbp_spike() -> Derivation:
    """Top eigenvalue of θ uuᵀ + W, W Wigner with semicircle variance v: λ = θ + v/θ for θ > √v.

    Assumptions: W has a semicircle law of variance v (radius 2√v) and is delocalised w.r.t. u
    (Benaych-Georges & Nadakuditi): an outlier λ outside the bulk solves G_sc(λ) = 1/θ with
    G_sc(z) = (z − √(z² − 4v))/(2v). Used for S = |g_iᵀg_j| (spike n·m over the level 1 − m, bulk
    variance n·Var|g_iᵀg_j|, Cheng & Singer's semicircle for an even kernel).
    """
    th, v, lam = sp.symbols("theta v lambda", positive=True)
    eq = sp.Eq(1 / th, (lam - sp.sqrt(lam**2 - 4 * v)) / (2 * v))
    sol = sp.solve(eq, lam)
    _require(len(sol) == 1, "one outlier", sol)
    out = sp.simplify(sol[0])
    _require(sp.simplify(out - (th + v / th)) == 0, "lambda = theta + v/theta", out)
    _require(sp.simplify(out.subs(th, sp.sqrt(v)) - 2 * sp.sqrt(v)) == 0,
             "threshold theta = sqrt(v) meets the edge", out)
    return _make("bbp-spike", out, (th, v), [("G_sc(lambda) = 1/theta", eq)], "§4, §9")


@lru_cache(maxsize=None)
def cnn_coherence_knee() -> Derivation:
    """SNR where σ of the CNN at initialisation turns from noise- to signal-dominated.

    Assumptions: wide network (m → ∞), two classes of k = n/2, entries of m|⟨g_i,g_k⟩|: diagonal a,
    between classes c = ½E|⟨ξ_i,ξ_k⟩| = ½σ_p²√(2/π)E[χ_{d−1}], within b(s) = E|s + η|.
    Noise plateau (s → 0, b → c): λ₁ = a + (n − 1)c ≈ a + 2kc. Signal asymptote (s ≫ sd η, b → s):
    λ₁ ≈ a + k(s + c). They cross at s = c, i.e. SNR_×² σ_p² d = c:
    SNR_× = [√(2/π)E χ_{d−1}/(2d)]^{1/2} → (2π)^{−1/4} d^{−1/4}, independent of n.
    """
    s, cc, k, sp_, dd, echi = sp.symbols("s c k sigma_p d E_chi", positive=True)
    sol = sp.solve(sp.Eq(2 * k * cc, k * (s + cc)), s)
    _require(sol == [cc], "asymptotes cross at s = c", sol)
    c_expr = sp.Rational(1, 2) * sp_**2 * sp.sqrt(2 / sp.pi) * echi
    snr = sp.sqrt(c_expr / (sp_**2 * dd))
    large_d = sp.simplify(snr.subs(echi, sp.sqrt(dd)) * dd ** sp.Rational(1, 4))
    _require(sp.simplify(large_d - (2 * sp.pi) ** sp.Rational(-1, 4)) == 0,
             "large-d constant (2 pi)^(-1/4)", large_d)
    return _make("cnn-coherence-knee", sp.simplify(snr), (echi, dd, sp_),
                 [("asymptotes cross", sol), ("SNR_x", snr), ("d^(1/4) SNR_x as d→∞", large_d)],
                 "§6, §9")


@lru_cache(maxsize=None)
def cnn_signed_gram_bbp() -> Derivation:
    """BBP threshold of the signed per-sample gradient Gram of the CNN at initialisation.

    Assumptions: a filter is active on exactly one of ±μ, so the signal part of m⟨g_i, g_k⟩ is
    s·1[y_i = y_k] = (s/2)(11ᵀ + yyᵀ): the class contrast carries (s/2)yyᵀ. Off the diagonal a pair
    of noise patches co-activates half of the filters on average (E[C/m] = 1 − θ/π → ½), so the
    noise part is ½⟨ξ_i, ξ_k⟩ up to a diagonal shift that does not move the threshold (the random
    gating is replaced by its mean — an approximation). The contrast is then a spiked sample
    covariance of y_i√(s/2)e + ξ_i/√2: population σ_p²/2·I + (s/2)eeᵀ, spike ℓ = s/σ_p²; BBP (real
    case): separates iff ℓ > √(d/n). Solving gives n‖μ‖⁴/(σ_p⁴d) = 1 — Kou et al.'s
    benign/harmful boundary n‖μ‖⁴/(σ_p⁴d) ≍ 1 with constant 1 — i.e. SNR = (nd)^{−1/4}.
    """
    mu2, sp_, nn, dd, snr = sp.symbols("mu2 sigma_p n d SNR", positive=True)
    ell = (mu2 / 2) / (sp_**2 / 2)
    sol = sp.solve(sp.Eq(ell, sp.sqrt(dd / nn)), mu2)
    _require(len(sol) == 1, "one threshold", sol)
    kou = sp.simplify(nn * sol[0] ** 2 / (sp_**4 * dd))
    _require(kou == 1, "Kou constant 1", kou)
    snr_sol = sp.solve(sp.Eq(snr**2 * sp_**2 * dd, sol[0]), snr)
    _require(len(snr_sol) == 1, "one SNR", snr_sol)
    out = sp.simplify(snr_sol[0])
    _require(sp.simplify(out - (nn * dd) ** sp.Rational(-1, 4)) == 0, "(nd)^(-1/4)", out)
    return _make("cnn-signed-gram-bbp", out, (nn, dd),
                 [("threshold ||mu||^2", sol[0]), ("n||mu||^4/(sigma_p^4 d)", kou)], "§6, §9")


def all_asymptotic_derivations() -> dict[str, Derivation]:
    """Every derivation of this module (name → Derivation)."""
    derivations = (f() for f in (
        online_reduction, online_mean_square, rank_one_frame_volume, proportional_secular_equation,
        critical_eta_limit, mixed_hessian_edge_polynomial, bbp_spike, cnn_coherence_knee,
        cnn_signed_gram_bbp))
    return {d.name: d for d in derivations}
