"""Tests of rmt.asymptotics (issue 13): exact online exponents against independent oracles,
proportional limits against sampled matrices at growing d (errors shrinking), bad input.

Oracles: scipy.dblquad directly in (s, t) (not in log variables); independent Wishart moments
for the mean square; the full d-dimensional online product (numba) and a plain-numpy QR
(Benettin) product for the spectrum; dense eigenvalues of sampled H̄, D and S; exact ρ(T) and
critical η from rmt.meansquare. Seeds are fixed; statistical margins are stated in standard
errors. Slow checks (d = 2000) carry ``@pytest.mark.slow``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.integrate
import scipy.stats

import rmt
import rmt.asymptotics as A


# ====================================================================== online isotropic
def _dblquad_lyapunov(eta, B, d):
    """½E log[(1 − cs)² + c²st] by scipy.dblquad on the chi-square densities (no log variables)."""
    c = eta / B
    ds = scipy.stats.chi2(B, scale=1 / d)
    dt = scipy.stats.chi2(d - 1, scale=1 / d)
    f = lambda t, s: 0.5 * math.log((1 - c * s) ** 2 + c * c * s * t) * ds.pdf(s) * dt.pdf(t)  # noqa: E731
    v, _ = scipy.integrate.dblquad(f, 0, ds.isf(1e-14), dt.ppf(1e-14), dt.isf(1e-14),
                                   epsabs=1e-11, epsrel=1e-10)
    return v


@pytest.mark.parametrize("eta,B,d", [(50.0, 4, 1000), (6.0, 3, 60)])
def test_isotropic_lyapunov_matches_direct_double_integral(eta, B, d):
    r = A.isotropic_lyapunov(eta, B, d)
    assert r.error < 1e-9
    assert abs(r.value - _dblquad_lyapunov(eta, B, d)) < 1e-9


def test_isotropic_lyapunov_small_d_adaptive_fallback_matches_reduced_mc():
    # d = 3: X can come close to 0 (the log singularity is inside the bulk); nested quad path
    r = A.isotropic_lyapunov(0.7, 3, 3)
    mc = A.online_reduced_lyapunov(0.7, 3, 3, samples=400_000, replicas=4, seed=11)
    assert abs(r.value - mc.value) < 3 * mc.stderr


def _wishart_mean_square(eta, BR, d, alpha, BF):
    """E[(J²)₁₁] from Wishart moments E W = (B/d)I, E W² = B(B+d+1)/d² I (independent oracle)."""
    cR, cF = eta * (1 - alpha) / BR, eta * alpha / BF
    EW = lambda B: B / d  # noqa: E731
    EW2 = lambda B: B * (B + d + 1) / d**2  # noqa: E731
    return (1 - 2 * cR * EW(BR) + 2 * cF * EW(BF) + cR**2 * EW2(BR) + cF**2 * EW2(BF)
            - 2 * cR * cF * EW(BR) * EW(BF))


@pytest.mark.parametrize("eta,B,d,alpha,BF", [(1.0, 1, 1000, 0.0, None), (7.0, 5, 40, 0.3, 2),
                                              (3.0, 2, 10, 1.0, 1)])
def test_isotropic_mean_square_matches_wishart_moments_and_jensen(eta, B, d, alpha, BF):
    rho = A.isotropic_mean_square(eta, B, d, alpha, BF)
    assert rho == pytest.approx(_wishart_mean_square(eta, B, d, alpha, B if BF is None else BF),
                                rel=1e-13)
    lam = A.isotropic_lyapunov(eta, B, d, alpha, BF).value
    assert lam <= 0.5 * math.log(rho)  # a.s. ≤ m.s. (Jensen), strict for a non-degenerate law
    assert 0.5 * math.log(rho) - lam > 1e-12


def test_mean_square_is_the_rate_of_the_full_product():
    # E‖J e₁‖² against a direct average over sampled d-dimensional J (d = 30, B = 3, α = 0.2)
    eta, B, d, alpha = 4.0, 3, 30, 0.2
    rng = np.random.default_rng(3)
    N = 20000
    GR = rng.standard_normal((N, d, B)) / math.sqrt(d)
    GF = rng.standard_normal((N, d, B)) / math.sqrt(d)
    cR, cF = eta * (1 - alpha) / B, eta * alpha / B
    Je1 = np.zeros((N, d))
    Je1[:, 0] = 1.0
    Je1 += -cR * np.einsum("nib,nb->ni", GR, GR[:, 0, :]) + cF * np.einsum("nib,nb->ni", GF, GF[:, 0, :])
    x = np.sum(Je1**2, axis=1)
    se = x.std() / math.sqrt(N)
    assert abs(x.mean() - A.isotropic_mean_square(eta, B, d, alpha)) < 3 * se
    lx = 0.5 * np.log(x)
    assert abs(lx.mean() - A.isotropic_lyapunov(eta, B, d, alpha).value) < 3 * lx.std() / math.sqrt(N)


def test_unlearning_exponent_matches_reduced_monte_carlo():
    eta, B, d, alpha, BF = 3.0, 8, 500, 0.2, 4
    r = A.isotropic_lyapunov(eta, B, d, alpha, BF)
    mc = A.online_reduced_lyapunov(eta, B, d, alpha, BF, samples=250_000, replicas=4, seed=5)
    assert abs(r.value - mc.value) < 3 * mc.stderr


def test_quality_bar_full_online_mc_d1000_within_3_se():
    """Quality bar: exact λ₁ vs the numba Monte Carlo of the full d = 1000 product (SGD, B = 1)."""
    r = A.isotropic_lyapunov(1.0, 1, 1000)
    mc = A.online_lyapunov(1.0, 1, 1000, steps=20_000, replicas=4, seed=2026)
    assert abs(mc.value - r.value) < 3 * mc.stderr
    assert mc.stderr < 0.01 * abs(r.value)  # the test resolves λ₁ to 1 %
    # the model-free replica spread agrees with the i.i.d.-increment standard error
    assert 0.2 * mc.stderr < mc.stderr_replicas < 5 * mc.stderr


def test_full_online_mc_unlearning_batch_within_3_se():
    eta, B, d, alpha, BF = 30.0, 4, 200, 0.15, 2
    r = A.isotropic_lyapunov(eta, B, d, alpha, BF)
    mc = A.online_lyapunov(eta, B, d, alpha, BF, steps=5_000, replicas=4, seed=7)
    assert abs(mc.value - r.value) < 3 * mc.stderr
    assert mc.stderr < 0.05 * abs(r.value)


def test_online_mc_is_reproducible_for_a_seed():
    a = A.online_lyapunov(2.0, 2, 50, steps=300, replicas=3, seed=9)
    b = A.online_lyapunov(2.0, 2, 50, steps=300, replicas=3, seed=9)
    np.testing.assert_array_equal(a.per_replica, b.per_replica)


@pytest.mark.slow
@pytest.mark.parametrize("eta,B,alpha,BF", [(1.0, 1, 0.0, None), (4.0, 4, 0.0, None),
                                            (6.0, 2, 0.25, 2)])
def test_quality_bar_full_online_mc_d1000_long(eta, B, alpha, BF):
    r = A.isotropic_lyapunov(eta, B, 1000, alpha, BF)
    mc = A.online_lyapunov(eta, B, 1000, alpha, BF, steps=100_000, replicas=4, seed=13)
    assert abs(mc.value - r.value) < 3 * mc.stderr
    assert mc.stderr < 0.005 * abs(r.value)


def _qr_spectrum(eta, d, steps, seed):
    """Benettin/QR spectrum of the online rank-one product J = I − η g gᵀ (plain numpy)."""
    rng = np.random.default_rng(seed)
    Q = np.linalg.qr(rng.standard_normal((d, d)))[0]
    acc = np.zeros((steps, d))
    for k in range(steps):
        g = rng.standard_normal(d) / math.sqrt(d)
        Y = Q - eta * np.outer(g, g @ Q)
        Q, R = np.linalg.qr(Y)
        acc[k] = np.log(np.abs(np.diag(R)))
    return acc


def test_rank_one_spectrum_matches_qr_product():
    eta, d = 1.5, 4
    spec = A.isotropic_lyapunov_spectrum(eta, 1, d)
    assert spec[0] == pytest.approx(A.isotropic_lyapunov(eta, 1, d).value, abs=1e-9)
    assert np.all(np.diff(spec) <= 0)
    acc = _qr_spectrum(eta, d, 40_000, seed=4)
    blocks = acc.reshape(40, -1, d).mean(axis=1)  # batch means (QR increments are correlated)
    est, se = blocks.mean(axis=0), blocks.std(axis=0, ddof=1) / math.sqrt(40)
    assert np.all(np.abs(est - spec) < 3.5 * se), (est, spec, se)
    # sum of all exponents = E log|det J| = E log|1 − η‖g‖²|
    g2 = np.random.default_rng(1).chisquare(d, 400_000) / d
    x = np.log(np.abs(1 - eta * g2))
    assert abs(spec.sum() - x.mean()) < 3 * x.std() / math.sqrt(x.size)


# ====================================================================== proportional limit
def _sample_H(n, d, seed):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)) / math.sqrt(d)


def test_mp_law_internal_consistency_against_quadrature():
    mp = A.marchenko_pastur(400, 1000)  # q = 2.5: atom at 0
    assert mp.atom == pytest.approx(1 - 1 / 2.5)
    # oracle: the density's square-root edges handled by quad's algebraic weight
    a, b, q = mp.lower * 1000, mp.upper * 1000, 2.5

    def alg(k):
        return scipy.integrate.quad(lambda x: x ** (k - 1) / (2 * math.pi * q), a, b,
                                    weight="alg", wvar=(0.5, 0.5))[0] / 1000**k

    assert alg(0) == pytest.approx(1 - mp.atom, rel=1e-10)
    assert scipy.integrate.quad(mp.pdf, mp.lower, mp.upper, limit=200)[0] == pytest.approx(
        1 - mp.atom, abs=1e-6)
    for k in (1, 2, 3):
        assert mp.moment(k) == pytest.approx(alg(k), rel=1e-10)
        assert mp.expect(lambda x: x**k) == pytest.approx(alg(k), rel=1e-10)
    z = 0.007 + 0.001j
    part = lambda h: scipy.integrate.quad(lambda x: h(mp.pdf(x) / (z - x)), mp.lower, mp.upper,  # noqa: E731
                                          limit=400)[0]
    direct = part(np.real) + 1j * part(np.imag) + mp.atom / z
    assert abs(mp.stieltjes(z) - direct) < 1e-6 * abs(direct)


def _mp_errors(ds, gamma, seeds):
    out = []
    for d in ds:
        n = int(gamma * d)
        mp = A.marchenko_pastur(n, d)
        e = []
        for s in seeds:
            G = _sample_H(n, d, s)
            ev = np.linalg.eigvalsh(G.T @ G / n)
            e.append(abs(ev[-1] / mp.upper - 1))
            e.append(abs(np.mean(ev**2) / mp.moment(2) - 1))
        out.append(np.mean(e))
    return out


def test_mp_edges_against_sampled_hbar_error_shrinks():
    e = _mp_errors([125, 500], 2.0, seeds=(0, 1))
    assert e[1] < 0.02 and e[1] < e[0]


def _rho_errors(ds, seeds, eta_t=0.25, scheme="with_replacement"):
    out = []
    for d in ds:
        n, = (d // 2,)
        B = n // 4
        lim = A.sgd_rate_limit(eta_t * d, B, n, d, scheme)
        rates = [rmt.mean_square_rate(rmt.HessianSet.from_factors(_sample_H(n, d, s)),
                                      rmt.Schedule(eta=eta_t * d, batch=B, sampling=scheme))
                 for s in seeds]
        out.append(abs(np.mean(rates) / lim - 1))
    return out


@pytest.mark.parametrize("scheme", A.SAMPLING)
def test_sgd_rate_limit_against_exact_rho_error_shrinks(scheme):
    e = _rho_errors([100, 200], seeds=(0, 1), scheme=scheme)
    assert e[1] < 0.08 and e[1] < e[0], e


@pytest.mark.parametrize("scheme", A.SAMPLING)
def test_critical_eta_closed_form_solves_the_secular_equation(scheme):
    for B in (5, 50):  # noise-driven and curvature-driven branches
        eta = A.sgd_critical_eta_limit(B, 200, 400, scheme)
        assert A.sgd_rate_limit(eta, B, 200, 400, scheme) == pytest.approx(1.0, abs=1e-9)
        assert A.sgd_rate_limit(0.98 * eta, B, 200, 400, scheme) < 1.0
        assert A.sgd_rate_limit(1.02 * eta, B, 200, 400, scheme) > 1.0


def test_critical_eta_limit_against_exact_critical_eta():
    d, n, B = 200, 100, 25
    lim = A.sgd_critical_eta_limit(B, n, d)
    ex = [rmt.critical_eta(rmt.HessianSet.from_factors(_sample_H(n, d, s)),
                           rmt.Schedule(eta=1.0, batch=B, sampling="with_replacement"))
          for s in (0, 1)]
    assert abs(np.mean(ex) / lim - 1) < 0.05


def _mixed_errors(ds, alpha, gr, gf, seeds):
    """Mean sampled extreme eigenvalues of D vs the limit edges, error in units of the support
    width (upper − lower): an edge near 0 has no scale of its own, so a plain relative error
    would measure nothing but the closeness of the edge to 0."""
    out = []
    for d in ds:
        nr, nf = int(gr * d), int(gf * d)
        lo, hi = A.mixed_hessian_edges(alpha, nr, nf, d)
        los, his = [], []
        for s in seeds:
            rng = np.random.default_rng(s)
            GR = rng.standard_normal((nr, d)) / math.sqrt(d)
            GF = rng.standard_normal((nf, d)) / math.sqrt(d)
            ev = np.linalg.eigvalsh((1 - alpha) * GR.T @ GR / nr - alpha * GF.T @ GF / nf)
            los.append(ev[0])
            his.append(ev[-1])
        out.append(max(abs(np.mean(los) - lo), abs(np.mean(his) - hi)) / (hi - lo))
    return out


def test_mixed_hessian_edges_against_dense_sampling_error_shrinks():
    e = _mixed_errors([100, 400], 0.2, 2.0, 0.4, seeds=range(4))
    assert e[1] < 0.02 and e[1] < e[0], e


def test_mixed_hessian_density_subordination_matches_cubic_and_histogram():
    alpha, nr, nf, d = 0.3, 600, 600, 500
    lo, hi = A.mixed_hessian_edges(alpha, nr, nf, d)
    x = np.linspace(lo, hi, 9)[1:-1]
    sub = A.mixed_hessian_density(x, alpha, nr, nf, d)
    cub = np.array([A._cubic_density(v * d, 1 - alpha, alpha, d / nr, d / nf) * d for v in x])
    np.testing.assert_allclose(sub, cub, rtol=1e-4)
    # outside the edges the density vanishes; it integrates to 1 (no atom: n_r + n_f > d)
    assert A.mixed_hessian_density([1.05 * hi], alpha, nr, nf, d)[0] < 1e-3 * sub.max()
    grid = np.linspace(lo, hi, 801)
    mass = np.trapezoid(A.mixed_hessian_density(grid, alpha, nr, nf, d), grid)
    assert mass == pytest.approx(1.0, abs=0.01)


def test_mixed_hessian_alpha_zero_is_marchenko_pastur():
    lo, hi = A.mixed_hessian_edges(0.0, 1000, 10, 500)
    mp = A.marchenko_pastur(1000, 500)
    assert lo == pytest.approx(mp.lower, rel=1e-9) and hi == pytest.approx(mp.upper, rel=1e-9)


def test_mean_escape_sign_of_lower_edge():
    # retain spans (n_r > d): a weak forget weight keeps D positive, a strong one makes it escape
    lo_weak, _ = A.mixed_hessian_edges(0.01, 4000, 200, 1000)
    lo_strong, _ = A.mixed_hessian_edges(0.3, 4000, 200, 1000)
    assert lo_weak > 0 > lo_strong


# ====================================================================== coherence
def _coherence_errors(ds, gamma, seeds):
    out = []
    for d in ds:
        n = int(gamma * d)
        pred = A.gaussian_coherence(n, d)
        e = []
        for s in seeds:
            G = _sample_H(n, d, s)
            S = np.abs(G @ G.T)
            lam = np.linalg.eigvalsh(S)[-1]
            e.append(abs(lam / np.max(np.sum(G * G, axis=1)) / pred.sigma - 1))
        out.append(np.mean(e))
    return out


def test_gaussian_coherence_against_sampled_sigma():
    e = _coherence_errors([125, 500], 1.0, seeds=(0, 1, 2))
    assert e[1] < 0.02


def test_expected_max_chi2_against_sampling():
    rng = np.random.default_rng(0)
    x = rng.chisquare(50, size=(20000, 30)).max(axis=1) / 50
    assert abs(A.expected_max_chi2(30, 50, 1 / 50) - x.mean()) < 3 * x.std() / math.sqrt(x.size)


def test_cnn_limit_plateau_asymptote_and_knee():
    n, d = 200, 2000
    lim = lambda snr: A.cnn_coherence_limit(n, d, snr)  # noqa: E731
    loc = A.memorisation_snr(n, d)
    # independent pieces: c = ½E|⟨ξ,ξ'⟩| by sampling (given ξ, ⟨ξ,ξ'⟩ = ‖ξ‖·z), a = σ_p²(d−1) + s
    rng = np.random.default_rng(0)
    c = 0.5 * np.mean(np.sqrt(rng.chisquare(d - 1, 400_000)) * np.abs(rng.standard_normal(400_000)))
    k = n / 2
    lam0 = lim(1e-6).lambda_max
    assert lam0 == pytest.approx((d - 1) + (n - 1) * c, rel=0.01)  # noise plateau
    s = 9 * c  # SNR = 3·SNR_×: within 5 % of the signal asymptote a + k(s + c)
    snr = math.sqrt(s / d)
    assert lim(snr).lambda_max == pytest.approx((d - 1 + s) + k * (s + c), rel=0.05)
    assert lim(loc.coherence / 3).lambda_max == pytest.approx(lam0, rel=0.01)
    # the knee: the two asymptotes cross at s = c
    assert loc.coherence**2 * d == pytest.approx(c, rel=0.01)
    assert lim(30.0).sigma == pytest.approx(n / 2, rel=0.02)
    assert loc.signed_gram == pytest.approx((n * d) ** -0.25)
    assert n * (loc.signed_gram**2 * d) ** 2 / d == pytest.approx(1.0)  # Kou's n‖μ‖⁴/(σ_p⁴d) = 1


@pytest.mark.parametrize("factor", [0.3, 1.0, 3.0])
def test_cnn_limit_against_sampled_networks(factor):
    from simulations.cnn.closed_form import sampled_coherence

    n, d, m = 60, 400, 200
    snr = factor * A.memorisation_snr(n, d).coherence
    sampled = sampled_coherence(n, d, snr, m=m, seeds=3, seed=0).sigma
    assert A.cnn_coherence_limit(n, d, snr, m=m).sigma == pytest.approx(sampled, rel=0.03)


# ====================================================================== slow quality bars
D_GRID = (250, 500, 1000, 2000)


@pytest.mark.slow
def test_quality_bar_mp_and_coherence_d2000():
    e = _mp_errors(D_GRID, 2.0, seeds=(0,))
    assert e[-1] < 0.02 and e[-1] < e[0], e
    e = _coherence_errors(D_GRID, 1.0, seeds=(0,))
    assert e[-1] < 0.02 and e[-1] < e[0], e


@pytest.mark.slow
def test_quality_bar_mixed_edges_d2000():
    e = _mixed_errors(D_GRID, 0.2, 2.0, 0.4, seeds=(0, 1))
    assert e[-1] < 0.02 and e[-1] < e[0], e


@pytest.mark.slow
def test_quality_bar_rho_limit_d2000():
    e = _rho_errors((250, 2000), seeds=(0,))
    assert e[-1] < 0.02 and e[-1] < e[0], e


# ====================================================================== bad input
@pytest.mark.parametrize("call,match", [
    (lambda: A.isotropic_lyapunov(-1.0, 1, 10), "eta"),
    (lambda: A.isotropic_lyapunov(1.0, 0, 10), "batch"),
    (lambda: A.isotropic_lyapunov(1.0, 1, 0), "d"),
    (lambda: A.isotropic_lyapunov(1.0, 1, 10, alpha=1.5), "alpha"),
    (lambda: A.isotropic_mean_square(1.0, 1, 10, batch_forget=0), "batch_forget"),
    (lambda: A.isotropic_lyapunov_spectrum(1.0, 2, 10), "rank-one"),
    (lambda: A.online_lyapunov(1.0, 1, 10, steps=0), "steps"),
    (lambda: A.online_lyapunov(1.0, 1, 10, seed=-1), "seed"),
    (lambda: A.sgd_rate_limit(1.0, 5, 10, 20, "sometimes"), "sampling"),
    (lambda: A.sgd_rate_limit(1.0, 50, 10, 20), "batch"),
    (lambda: A.mixed_hessian_edges(0.2, 0, 10, 20), "n_retain"),
    (lambda: A.gaussian_coherence(1, 10), "n"),
    (lambda: A.cnn_coherence_limit(10, 100, -1.0), "snr"),
])
def test_bad_input_names_the_argument(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


def test_bad_input_types():
    with pytest.raises(TypeError, match="batch"):
        A.isotropic_lyapunov(1.0, 1.5, 10)
    with pytest.raises(TypeError, match="eta"):
        A.isotropic_mean_square("1", 1, 10)


# ====================================================================== sympy derivations
def test_sympy_derivations_self_check_and_match_the_numerics():
    import theory.asymptotics as T

    allder = T.all_asymptotic_derivations()
    assert len(allder) == 9
    ms = T.online_mean_square()
    for args in [(1.0, 0.0, 1, 1, 1000), (7.0, 0.3, 5, 2, 40)]:
        eta, alpha, BR, BF, d = args
        assert ms(*args) == pytest.approx(A.isotropic_mean_square(eta, BR, d, alpha, BF), rel=1e-13)
    red = T.online_reduction()
    assert red(0.5, 0.2, 0.1, 0.3, 0.9) == pytest.approx((1 - 0.05 + 0.06) ** 2 + (0.025 + 0.012) * 0.9)
    # critical η̃ = 2Ω/((1−w′)(Ω+1)(Ω+q)) on the noise branch, with the module's parameters
    n, d, B = 200, 400, 5
    w, wp = A.sampling_weight("with_replacement", n, B)
    Om = d * w / (1 - wp)
    assert Om >= math.sqrt(d / n)
    assert d * T.critical_eta_limit()(Om, d / n, wp) == pytest.approx(
        A.sgd_critical_eta_limit(B, n, d), rel=1e-12)
    # the quartic's critical values contain the module's edges
    poly = T.mixed_hessian_edge_polynomial()
    alpha, nr, nf, d = 0.3, 600, 600, 500
    lo, hi = A.mixed_hessian_edges(alpha, nr, nf, d)
    Aa, bb, qR, qF = 1 - alpha, alpha, d / nr, d / nf
    wsym = poly.args[0]
    import sympy as sp
    roots = [complex(r) for r in sp.Poly(poly.expression.subs(
        {poly.args[1]: Aa, poly.args[2]: bb, poly.args[3]: qR, poly.args[4]: qF}), wsym).nroots()]
    zs = sorted(Aa / (1 - qR * Aa * r.real) - bb / (1 + qF * bb * r.real) + 1 / r.real
                for r in roots if abs(r.imag) < 1e-10)
    assert min(abs(z - lo * d) for z in zs) < 1e-8 and min(abs(z - hi * d) for z in zs) < 1e-8
    assert T.bbp_spike()(3.0, 2.0) == pytest.approx(3 + 2 / 3)
    D = 1999
    echi = math.sqrt(2) * math.exp(math.lgamma((D + 1) / 2) - math.lgamma(D / 2))
    assert T.cnn_coherence_knee()(echi, 2000, 1.0) == pytest.approx(
        A.memorisation_snr(10, 2000).coherence, rel=1e-12)
    assert T.cnn_signed_gram_bbp()(10, 2000) == pytest.approx(A.memorisation_snr(10, 2000).signed_gram)
    with pytest.raises(ValueError, match="k"):
        T.rank_one_frame_volume(0)


def test_online_kernel_matches_python_reference_on_the_same_draws():
    eta, B, d, alpha, BF = 3.0, 2, 7, 0.3, 3
    mc = A.online_lyapunov(eta, B, d, alpha, BF, steps=40, replicas=2, burn_in=3, seed=21)
    gens, words = A._streams(21, 2)
    cR, cF = eta * (1 - alpha) / B, eta * alpha / BF
    for r, gen in enumerate(gens):
        v = gen.standard_normal(d)
        acc, _ = A._online_reference(d, B, BF, cR, cF, 40, 3, words[r], v / np.linalg.norm(v))
        assert mc.per_replica[r] == pytest.approx(acc / 40, rel=1e-12, abs=1e-15)


def test_online_mc_does_not_depend_on_thread_count():
    import numba

    old = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        a = A.online_lyapunov(2.0, 2, 30, alpha=0.1, steps=200, replicas=4, seed=3)
        numba.set_num_threads(max(2, old) if numba.config.NUMBA_NUM_THREADS >= 2 else 1)
        b = A.online_lyapunov(2.0, 2, 30, alpha=0.1, steps=200, replicas=4, seed=3)
    finally:
        numba.set_num_threads(old)
    np.testing.assert_array_equal(a.per_replica, b.per_replica)


def test_signed_gram_bbp_location_on_sampled_cnn_gradients():
    """The label overlap of the signed Gram's top eigenvector switches on within 2.5× of the
    closed-form threshold, far below the coherence knee."""
    from simulations.cnn.data import make_data
    from simulations.cnn.network import init_cnn, per_sample_gradients

    n, d, m = 200, 400, 30
    loc = A.memorisation_snr(n, d)
    assert loc.coherence / loc.signed_gram == pytest.approx((n / (2 * math.pi)) ** 0.25, rel=0.01)

    def overlap(snr):
        out = []
        for seed in range(2):
            data = make_data(n, d, snr, seed=seed)
            net = init_cnn(d, m, seed=100 + seed)
            G = per_sample_gradients(net.W, data.X).reshape(n, -1)
            P = np.eye(n) - 1.0 / n
            v = np.linalg.eigh(P @ (G @ G.T) @ P)[1][:, -1]
            out.append((v @ data.y) ** 2 / n)
        return np.mean(out)

    assert overlap(0.7 * loc.signed_gram) < 0.05
    assert overlap(2.5 * loc.signed_gram) > 0.5
