"""Closed-form per-sample gradient Gram and coherence of the signal-plus-noise CNN (contract §6, §4).

Derivation (docs/cnn.md gives it in full). Per-sample gradients g_i = ∇_W f(x_i) split into a
signal part (∝ μ) and a noise part (∝ ξ_i); μ ⊥ ξ, so in units of 1/m

    m·⟨g_i, g_k⟩ = s·κ_{ik} + (C_ik/m)·⟨ξ_i, ξ_k⟩,      s = ‖μ‖² = SNR² σ_p² d,

where κ_ik = (#filters active on both y_iμ and y_kμ)/m (0 across classes: a filter is active on
exactly one of ±μ) and C_ik = #filters active on both ξ_i and ξ_k. At initialisation
w ~ N(0, σ₀²I) and the co-activation probability of one filter on two patches at angle θ is the
degree-0 arc-cosine kernel P(both active) = (π − θ)/(2π), so over the 2m filters
E[C_ik/m | θ] = 1 − θ/π (= 1 on the diagonal) and E[κ] = 1 within a class. With t = cos θ,
D = d − 1 (the noise lives in μ^⊥) and ⟨ξ_i, ξ_k⟩ = ‖ξ_i‖‖ξ_k‖ t, t ⟂ norms:

    diagonal       a  = s + σ_p² D                                   (exact mean)
    between class  c  = E|(C/m)⟨ξ_i,ξ_k⟩| = ½ E|⟨ξ_i,ξ_k⟩|
                      = ½ σ_p² E[χ_D] √(2/π)                          (exact: E[|t| arcsin t] = 0)
    within class   b  = E|s + η|,  η = (C/m)⟨ξ_i,ξ_k⟩, Var η = σ_p⁴ D² E[t² E(C/m)²|t]
                      ≈ folded-normal mean √(2v/π) e^{−s²/2v} + s(1 − 2Φ(−s/√v))

(σ₀ drops out at initialisation: activation patterns are scale-invariant.) The expected
coherence matrix E|S| is block-constant over the groups (class × retain/forget), so
λ_max(E|S|) = (a − b) + λ_max(diag(√n_g) V diag(√n_g)) with V the group-level off-diagonal
values (the "quotient" matrix). Finite-size corrections: (i) the denominator max_i λ_max(H_i)
is the expected maximum of n diagonals a_i = sκ_{y_i} + (A_i/m)‖ξ_i‖² (Gaussian extreme-value
mean e_n = E max of n standard normals, computed by quadrature; class factors κ± = 1 ± E|κ − 1|);
(ii) the entry fluctuations around E|S| raise λ_max by second-order perturbation,
δλ ≈ (n − 2)·τ̄² / (λ₀ − (a − b)) with τ̄² the entry variance averaged along the top vector.

Trained state (squared loss, approximation on w = w⁰ + jγμ/‖μ‖² + Σ_i ρ_i ξ_i/‖ξ_i‖²): gradients
depend on W only through activation patterns, and GD moves each filter's μ-coordinate towards jμ
(so every j = y filter ends active on yμ: κ = 1 exactly) and moves the pre-activation ⟨w_{j,r}, ξ_i⟩
by ±Δ towards y_i·j. Δ is set by the noise-channel share of the fit, φ = 1/(1 + n s/(2σ_p²D))
(ratio of the own-noise diagonal σ_p²D/n to it plus the signal NTK row sum s/2). Filters j = y_i
that were active on ξ_i stay active and cross-sample memorisation switches some of the others
on (fraction p_s); filters j = −y_i survive only if ⟨w⁰, ξ_i⟩ > φ (fraction p_o), see
:func:`trained_activation_fractions`. The noise factors become: diagonal p_s + p_o, within-class
(1 − θ/π)·2(p_s² + p_o²), between-class (1 − θ/π)·4 p_s p_o (the initialisation values at
p_s = p_o = ½). Curvature weights ℓ'' = 1 (squared loss). The approximation ignores cross-sample
flips of activation and the logistic-loss weights; docs/cnn.md reports where it departs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import scipy.integrate
import scipy.special
import scipy.stats

from rmt.validation import check_choice, check_int, check_positive, check_random_state

__all__ = [
    "ClosedFormCoherence",
    "closed_form_coherence",
    "sampled_coherence",
    "SampledCoherence",
    "expected_abs_noise_inner",
    "expected_max_normal",
    "symbolic_gram",
    "trained_activation_fractions",
]

STATES = ("init", "trained")


# ---------------------------------------------------------------------- 1-d building blocks
def expected_abs_noise_inner(d, sigma_p=1.0) -> float:
    """E|⟨ξ_i, ξ_k⟩| = σ_p² E[χ_{d−1}] √(2/π) exactly (ξ ~ N(0, σ_p² P_{μ⊥}), independent).

    Given ξ_i, ⟨ξ_i, ξ_k⟩ ~ N(0, σ_p²‖ξ_i‖²), so E|·| = σ_p √(2/π) E‖ξ_i‖ with
    E‖ξ_i‖ = σ_p √2 Γ(d/2)/Γ((d−1)/2).
    """
    D = d - 1
    e_chi = math.sqrt(2.0) * math.exp(scipy.special.gammaln((D + 1) / 2) - scipy.special.gammaln(D / 2))
    return sigma_p**2 * e_chi * math.sqrt(2.0 / math.pi)


@lru_cache(maxsize=256)
def _t_expect(D, which):
    """E[h(t)] for t = cos θ of two independent isotropic vectors in R^D (density ∝ (1−t²)^{(D−3)/2})."""
    logc = scipy.special.gammaln(D / 2) - scipy.special.gammaln(0.5) - scipy.special.gammaln((D - 1) / 2)
    if which == "t2k2":  # E[t² (1 − θ/π)²],  1 − θ/π = ½ + arcsin(t)/π
        h = lambda t: t * t * (0.5 + math.asin(t) / math.pi) ** 2  # noqa: E731
    elif which == "t2k":  # E[t² (1 − θ/π)]
        h = lambda t: t * t * (0.5 + math.asin(t) / math.pi)  # noqa: E731
    else:
        raise ValueError(which)
    dens = lambda t: math.exp(logc + 0.5 * (D - 3) * math.log1p(-t * t)) if abs(t) < 1 else 0.0  # noqa: E731
    width = min(1.0, 12.0 / math.sqrt(D))
    val, _ = scipy.integrate.quad(lambda t: h(t) * dens(t), -width, width, limit=200)
    return val


@lru_cache(maxsize=1024)
def expected_max_normal(n) -> float:
    """e_n = E[max of n iid standard normals] (quadrature of n z φ(z) Φ(z)^{n−1})."""
    if n <= 1:
        return 0.0
    f = lambda z: z * n * scipy.stats.norm.pdf(z) * scipy.stats.norm.cdf(z) ** (n - 1)  # noqa: E731
    return float(scipy.integrate.quad(f, -10, 10, limit=200)[0])


def trained_activation_fractions(n, d, snr, sigma_p=1.0, sigma0=0.01):
    """(p_s, p_o): fractions of filters j = y_i and j = −y_i active on ξ_i after training.

    φ = 1/(1 + n s/(2σ_p²D)) is the share of the fit carried by noise memorisation; a memorising
    filter's pre-activation on its own ξ_k grows by Δ ≈ φ/½ = 2φ, and through ⟨ξ_k, ξ_i⟩ ~ N(0,
    σ_p⁴D) this moves its pre-activation on every other same-class ξ_i by a random amount of
    standard deviation τ_x = Δ √(n/(4D)) (≈ n/4 memorising samples per filter). With the init
    pre-activation u ~ N(0, σ_u²), σ_u = σ₀σ_p√D:
    p_s = ½ + P(u < 0, u + X > 0) = ½ + atan(τ_x/σ_u)/(2π)  (filters j = y_i that were off get
    switched on by cross-sample memorisation); p_o = P(u > φ) = Φ̄(φ/σ_u) (filters j = −y_i are
    pushed down by the residual of sample i until they die, unless they started above φ).
    At p_s = p_o = ½ everything reduces to the initialisation closed form.
    """
    D = d - 1
    s = snr**2 * sigma_p**2 * d
    phi = 1.0 / (1.0 + n * s / (2.0 * sigma_p**2 * D))
    sigma_u = sigma0 * sigma_p * math.sqrt(D)
    tau_x = 2.0 * phi * math.sqrt(n / (4.0 * D))
    p_s = 0.5 + math.atan(tau_x / sigma_u) / (2 * math.pi)
    p_o = float(scipy.stats.norm.sf(phi / sigma_u))
    return p_s, p_o


def _folded_mean(mean, var):
    """E|X| for X ~ N(mean, var): the folded-normal mean √(2v/π)e^{−μ²/2v} + μ(1 − 2Φ(−μ/√v))."""
    if var <= 0:
        return abs(mean)
    sd = math.sqrt(var)
    return float(scipy.stats.foldnorm(c=abs(mean) / sd, scale=sd).mean())


# ---------------------------------------------------------------------- the model
@dataclass(frozen=True)
class _EntryModel:
    """Means/variances (in units of 1/m) of diagonal, within- and between-class |S| entries."""

    a_mean: float
    a_var: float  # variance of the per-sample noise part of the diagonal
    b: float
    b_var: float
    c: float
    c_var: float
    kappa_dev: float  # E|κ − 1| (class-level signal activation deviation)
    s: float


def _entry_model(d, snr, sigma_p, m, sigma0, state, n):
    D = d - 1
    s = snr**2 * sigma_p**2 * d
    N = sigma_p**2 * D
    if state == "init":
        diag_f, within_f, between_f = 1.0, 1.0, 1.0
        act_var = 1.0 / (2 * m)  # A_i ~ Bin(2m, ½)
        kappa_dev = math.sqrt(1.0 / (2 * m)) * math.sqrt(2 / math.pi)
    else:
        p_s, p_o = trained_activation_fractions(n, d, snr, sigma_p, sigma0)
        diag_f = p_s + p_o
        within_f = 2.0 * (p_s**2 + p_o**2)
        between_f = 4.0 * p_s * p_o
        act_var = (p_s * (1 - p_s) + p_o * (1 - p_o)) / m
        kappa_dev = 0.0
    # E‖ξ‖⁴ = σ_p⁴ D(D+2)
    a_var = (diag_f**2 + act_var) * sigma_p**4 * D * (D + 2) - (diag_f * N) ** 2
    # |C/m · ⟨ξ,ξ⟩| moments: E[(C/m)²|t] ≈ (f k)² + f k (1 − f k/2)/m with k = 1 − θ/π
    Ek2t2 = _t_expect(D, "t2k2")
    Ekt2 = _t_expect(D, "t2k")
    norm2 = (sigma_p**2 * D) ** 2  # E‖ξ_i‖² E‖ξ_k‖²

    def eta_var(f):
        return norm2 * (f * f * Ek2t2 * (1 - 1 / (2 * m)) + f * Ekt2 / m)

    half_abs = 0.5 * expected_abs_noise_inner(d, sigma_p)
    c = between_f * half_abs
    c_var = eta_var(between_f) - c * c
    v_w = eta_var(within_f)
    b = _folded_mean(s, v_w)
    b_var = s * s + v_w - b * b
    return _EntryModel(s + diag_f * N, max(a_var, 0.0), b, max(b_var, 0.0), c, max(c_var, 0.0),
                       kappa_dev, s)


def _group_lmax(sizes, classes, em, fluct=True):
    """λ_max of the expected |S| over groups, plus (``fluct``) the finite-size corrections.

    ``sizes``: group sizes; ``classes``: ±1 per group. With ``fluct`` the class signal factors are
    κ± = 1 ± E|κ − 1| and the entry fluctuations add δλ = ((n−2)τ̄² + Var(a)(n−1)/n)/gap.
    Returns (λ_max, top vector per sample of each group).
    """
    sizes = np.asarray(sizes, dtype=float)
    classes = np.asarray(classes)
    same = classes[:, None] == classes[None, :]
    if fluct:
        kap = np.where(classes > 0, 1.0 + em.kappa_dev, 1.0 - em.kappa_dev)
        bk = np.array([_folded_mean(em.s * k, _wvar(em)) for k in kap])
        diag_k = em.a_mean + em.s * (kap - 1.0)
    else:
        bk = np.full(len(sizes), em.b)
        diag_k = np.full(len(sizes), em.a_mean)
    V = np.where(same, bk[:, None], em.c)
    root = np.sqrt(sizes)
    Q = root[:, None] * V * root[None, :] + np.diag(diag_k - bk)
    vals, vecs = np.linalg.eigh(Q)
    lam0 = float(vals[-1])
    u = vecs[:, -1] / np.where(root > 0, root, 1.0)
    if not fluct:
        return lam0, u
    Tau = np.where(same, em.b_var, em.c_var)
    u2 = u * u
    ntot = sizes.sum()
    # τ̄² = Σ_i (1/n) Σ_j u_j² τ_ij² / Σ_j u_j²  (entry variance seen along the top vector)
    tau_bar = float(np.sum(sizes * ((Tau * (sizes * u2)[None, :]).sum(axis=1))) / max(ntot, 1))
    tau_bar /= max(float(np.sum(sizes * u2)), 1e-300)
    gap = lam0 - float(np.max(diag_k - bk))
    corr = 0.0
    if gap > 0 and ntot > 2:
        corr = ((ntot - 2) * tau_bar + em.a_var * (ntot - 1) / ntot) / gap
        corr = min(corr, gap)  # second-order perturbation only; never more than the gap itself
    return lam0 + corr, u


def _wvar(em):
    # variance of η within class, recovered from b, b_var: Var|s+η| = s² + v − b²
    return em.b_var + em.b**2 - em.s**2


def _expected_max_diag(sizes, classes, em):
    """E max_i a_i over the given groups: per class sκ_± + N·f + sd·e_{n_class}."""
    sd = math.sqrt(em.a_var)
    best = -math.inf
    for cls in (1, -1):
        k = int(round(sum(sz for sz, c in zip(sizes, classes) if c == cls)))
        if k == 0:
            continue
        kap = 1.0 + cls * em.kappa_dev
        best = max(best, em.a_mean + em.s * (kap - 1.0) + sd * expected_max_normal(k))
    return best


@dataclass(frozen=True)
class ClosedFormCoherence:
    """Closed-form coherence of the CNN's per-sample Gauss–Newton Hessians (contract §6, §4).

    ``sigma`` (union), ``sigma_retain``, ``sigma_forget``, ``sigma_cross`` (‖S_RF‖₂ normalised by
    √(max λ_R · max λ_F), as in :func:`rmt.coherence`), ``sigma_expected_matrix`` (λ_max(E|S|)/E a,
    the zeroth-order value without finite-size corrections) and the entry means ``a``, ``b``, ``c``
    (units of 1/m). NaN for forget quantities when there is no forget set.
    """

    sigma: float
    sigma_retain: float
    sigma_forget: float
    sigma_cross: float
    sigma_expected_matrix: float
    a: float
    b: float
    c: float
    state: str
    params: dict = field(repr=False)


def _check_common(n, d, snr, sigma_p, m, sigma0, state):
    n = check_int(n, "n", minimum=2)
    d = check_int(d, "d", minimum=2)
    snr = check_positive(snr, "snr")
    sigma_p = check_positive(sigma_p, "sigma_p")
    m = check_int(m, "m", minimum=1)
    sigma0 = check_positive(sigma0, "sigma0")
    check_choice(state, "state", STATES)
    return n, d, snr, sigma_p, m, sigma0


def closed_form_coherence(n, d, snr, *, sigma_p=1.0, m=20, sigma0=0.01, state="init",
                          n_forget=0, forget="random") -> ClosedFormCoherence:
    """Closed-form σ, σ_retain, σ_forget, σ_cross of the per-sample Hessians (module docstring).

    Two balanced classes of n/2; the forget set has ``n_forget`` samples drawn at random
    (``forget="random"``: half of each class in expectation) or is one whole class
    (``forget="class"``, n_forget ignored). ``state="init"`` is the arc-cosine closed form at
    initialisation (σ₀-free), ``state="trained"`` the signal/noise-decomposition approximation at
    the squared-loss interpolating solution.
    """
    n, d, snr, sigma_p, m, sigma0 = _check_common(n, d, snr, sigma_p, m, sigma0, state)
    check_choice(forget, "forget", ("random", "class"))
    if forget == "class":
        n_forget = n - n // 2  # the −1 class, as split_forget(how="class", cls=-1) on balanced data
    n_forget = check_int(n_forget, "n_forget", minimum=0)
    if n_forget >= n:
        raise ValueError(f"n_forget must be < n={n} (keep at least one retain sample), got {n_forget}")
    em = _entry_model(d, snr, sigma_p, m, sigma0, state, n)
    npos = n // 2
    nneg = n - npos
    if forget == "class":
        groups = {"retain": ([npos], [1]), "forget": ([nneg], [-1])}
    else:
        fr = n_forget / n
        groups = {"retain": ([npos * (1 - fr), nneg * (1 - fr)], [1, -1]),
                  "forget": ([npos * fr, nneg * fr], [1, -1])}
    all_sizes = groups["retain"][0] + groups["forget"][0]
    all_cls = groups["retain"][1] + groups["forget"][1]

    def sig(sizes, cls):
        lam, _ = _group_lmax(sizes, cls, em)
        return lam / _expected_max_diag(sizes, cls, em)

    sigma = sig(all_sizes, all_cls)
    sigma_r = sig(*groups["retain"])
    lam_plain = _group_lmax([npos, nneg], [1, -1], em, fluct=False)[0]
    sigma_plain = lam_plain / em.a_mean
    if n_forget > 0:
        sigma_f = sig(*groups["forget"])
        rs, rc = groups["retain"]
        fs, fc = groups["forget"]
        V = np.array([[em.b if a == b_ else em.c for b_ in fc] for a in rc])
        M = np.sqrt(np.array(rs, float))[:, None] * V * np.sqrt(np.array(fs, float))[None, :]
        s_rf = float(np.linalg.norm(M, 2))
        sigma_x = s_rf / math.sqrt(_expected_max_diag(rs, rc, em) * _expected_max_diag(fs, fc, em))
    else:
        sigma_f = sigma_x = math.nan
    params = dict(n=n, d=d, snr=snr, sigma_p=sigma_p, m=m, sigma0=sigma0, n_forget=n_forget,
                  forget=forget)
    return ClosedFormCoherence(float(sigma), float(sigma_r), float(sigma_f), float(sigma_x),
                               float(sigma_plain), em.a_mean, em.b, em.c, state, params)


# ---------------------------------------------------------------------- sampled counterpart
@dataclass(frozen=True)
class SampledCoherence:
    """Coherence of sampled networks: per-seed values and their means (``sigma`` etc.)."""

    sigma: float
    sigma_retain: float
    sigma_forget: float
    sigma_cross: float
    sigmas: np.ndarray = field(repr=False)
    state: str
    train_converged: bool


def sampled_coherence(n, d, snr, *, sigma_p=1.0, m=20, sigma0=0.01, state="init", n_forget=0,
                      forget="random", seeds=3, seed=0, loss="squared") -> SampledCoherence:
    """Mean coherence of ``seeds`` independently drawn data sets and networks (contract §4, §6).

    Each replicate draws balanced data, a network at N(0, σ₀²I), optionally trains it
    (``state="trained"``, full-batch GD to the default tolerance of :func:`train`), builds the
    per-sample Gauss–Newton HessianSet and calls :func:`rmt.coherence`. Replica streams come from
    ``numpy.random.SeedSequence(seed)``.
    """
    from rmt import coherence

    from .data import make_data, split_forget
    from .network import gauss_newton_hessians, init_cnn, train

    n, d, snr, sigma_p, m, sigma0 = _check_common(n, d, snr, sigma_p, m, sigma0, state)
    seeds = check_int(seeds, "seeds", minimum=1)
    n_forget = check_int(n_forget, "n_forget", minimum=0)
    check_choice(forget, "forget", ("random", "class"))
    ss = np.random.SeedSequence(check_int(seed, "seed", minimum=0))
    vals, conv = [], True
    for child in ss.spawn(seeds):
        rng = check_random_state(np.random.default_rng(child))
        data = make_data(n, d, snr, sigma_p=sigma_p, seed=rng)
        if forget == "class":
            data = split_forget(data, "class", cls=-1)
        elif n_forget > 0:
            data = split_forget(data, "random", size=n_forget, seed=rng)
        net = init_cnn(d, m, sigma0=sigma0, seed=rng)
        if state == "trained":
            res = train(net, data, loss=loss)
            conv = conv and res.converged
            net = res.cnn
        hs = gauss_newton_hessians(net, data, loss=loss, weights=state == "trained")
        co = coherence(hs)
        vals.append((co.sigma, co.sigma_retain, co.sigma_forget, co.sigma_cross))
    arr = np.array(vals, dtype=float)
    mean = arr.mean(axis=0)
    return SampledCoherence(float(mean[0]), float(mean[1]), float(mean[2]), float(mean[3]),
                            arr, state, conv)


# ---------------------------------------------------------------------- symbolic derivation
def symbolic_gram():
    """The sympy derivation of the block-constant closed form (docs/cnn.md).

    Returns a dict of sympy expressions in the symbols a (diagonal), b (within class),
    c (between classes), k (class size), theta, t:

    ``P_both``      (π − θ)/(2π): P(⟨w,u⟩ > 0, ⟨w,v⟩ > 0) for w ~ N(0, I), ∠(u, v) = θ
    ``coact``       E[C/m | θ] = 2m·P_both/m = 1 − θ/π over the 2m filters
    ``coact_t``     the same in t = cos θ: ½ + asin(t)/π (odd part asin(t)/π integrates to 0
                    against |t|, so E[(1 − θ/π)|t|] = ½ E|t|)
    ``quotient``    the 2×2 quotient of E|S| = (a − b)I + block(b, c) for two classes of size k
    ``eigenvalues`` its eigenvalues a + (k − 1)b ± k c
    ``lam_max``     a + (k − 1)b + k c (c ≥ 0)
    ``sigma``       lam_max / a, which → 1 + (2k − 1)·c/a as s → 0 (b → c) and → k = n/2 as
                    s → ∞ (b → a)
    """
    import sympy as sp

    theta, t = sp.symbols("theta t", real=True)
    a, b, c, k = sp.symbols("a b c k", positive=True)
    P_both = (sp.pi - theta) / (2 * sp.pi)
    coact = sp.simplify(2 * P_both)
    coact_t = sp.simplify(coact.subs(theta, sp.acos(t)).rewrite(sp.asin))
    Q = sp.Matrix([[a + (k - 1) * b, k * c], [k * c, a + (k - 1) * b]])
    eigs = sorted(Q.eigenvals().keys(), key=lambda e: sp.count_ops(e))
    lam_max = a + (k - 1) * b + k * c
    return {
        "P_both": P_both,
        "coact": coact,
        "coact_t": coact_t,
        "quotient": Q,
        "eigenvalues": eigs,
        "lam_max": lam_max,
        "sigma": lam_max / a,
    }
