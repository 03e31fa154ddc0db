"""The Hessian-test grid (THEORY §7): exact boundary against a hand-derived closed form."""

import numpy as np
import pytest

from simulations import hessian_grid as hg


def hand_rate(n, sigma, B, eta):
    # without replacement, SGD: c = e = (n−B)/(B(n−1)); N_k = c (Q_k − m_k²)
    c = (n - B) / (B * (n - 1))
    m0, Q0 = 2.0, 4.0 * n / sigma  # shared direction: σ samples with λ = 2n/σ
    rates = [(1 - eta * m0) ** 2 + eta**2 * c * (Q0 - m0**2)]
    if sigma < n:  # own directions: one sample with λ = 2n/σ
        m1, Q1 = 2.0 / sigma, 4.0 * n / sigma**2
        rates.append((1 - eta * m1) ** 2 + eta**2 * c * (Q1 - m1**2))
    return max(rates)


@pytest.mark.parametrize("sigma", [1, 2, 9, 30, 50])
@pytest.mark.parametrize("B", [1, 7, 25, 49])
@pytest.mark.parametrize("eta", [0.5, 0.8])
def test_exact_grid_matches_hand_closed_form(sigma, B, eta):
    out = hg.cell(dict(n=100, sigma=sigma, batch=B, eta=eta, runs=0), None)
    assert out["rate"] == pytest.approx(hand_rate(100, sigma, B, eta), rel=1e-12)
    assert out["exact_diverges"] == float(out["rate"] > 1)
    assert np.isnan(out["heuristic_diverges"])


def test_heuristic_agrees_far_from_the_frontier():
    # deep in the divergent region (σ = 1, B = 1) and deep in the stable region (σ = 50, B = 40)
    far_div = hg.cell(dict(n=100, sigma=1, batch=1, eta=0.8, runs=10, steps=200), 0)
    far_conv = hg.cell(dict(n=100, sigma=50, batch=40, eta=0.5, runs=10, steps=200), 0)
    assert far_div["exact_diverges"] == far_div["heuristic_diverges"] == 1.0
    assert far_conv["exact_diverges"] == far_conv["heuristic_diverges"] == 0.0


def test_unlearning_cell_uses_shared_forget_samples():
    hs = hg.grid_set(100, 20, 0.1, 10)
    assert hs.n_forget == 10 and hs.n_retain == 90
    # every forget sample lies on the shared direction e0
    F = hs.factors("forget")[:, :, 0]
    assert np.all(F[:, 1:] == 0) and np.all(F[:, 0] != 0)


def test_dexter_curves():
    B = np.array([1.0, 10.0, 50.0])
    np.testing.assert_allclose(hg.dexter_thm1_sigma(100, B, 0.5), 0.5 * 2 * np.sqrt(100 / B - 1))
    np.testing.assert_allclose(hg.dexter_thm2_sigma(100, B, 0.5), (100 / B - 1) / (2 / 1.0 - 1))
    assert np.all(np.isinf(hg.dexter_thm2_sigma(100, B, 1.0)))


def test_full_mode_uses_the_published_resolution():
    from simulations import reproduce

    sizes = reproduce._grid_sizes(quick=False)
    assert sizes["sigma"] == list(range(1, 51)) and sizes["batch"] == list(range(1, 50))
    cell = reproduce.HessianGridCell()
    assert (cell.n, cell.runs, cell.steps, cell.threshold) == (100, 10, 1000, 1000.0)


# ----------------------------------------------------------------------------- exact frontier
@pytest.mark.parametrize("eta", [0.5, 0.8])
@pytest.mark.parametrize("sigma", [1, 4, 17, 50])
def test_critical_batch_is_the_first_stable_batch(sigma, eta):
    import rmt

    # an exact tie ρ(T) = 1 (σ = 1, η = 0.5, B = 50) is decided by round-off: accept either side
    loose = next((B for B in range(1, 100) if hand_rate(100, sigma, B, eta) <= 1 + 1e-12), None)
    strict = next((B for B in range(1, 100) if hand_rate(100, sigma, B, eta) < 1 - 1e-12), None)
    got = hg.critical_batch(100, sigma, eta, 0.0, b_max=99)
    assert (got is None and loose is None) or loose <= got <= strict, (got, loose, strict)
    ref = rmt.critical_batch(hg.grid_set(100, sigma, 0.0, 10, "commuting"),
                             rmt.Schedule(eta, 1, sampling="without_replacement"))
    assert got == ref
    # restricted to the plotted batches: None exactly when B* lies beyond them
    small = hg.critical_batch(100, sigma, eta, 0.0, b_max=10)
    assert small == (got if got is not None and got <= 10 else None)


# ----------------------------------------------------------------------------- theorem curves
@pytest.mark.parametrize("sampling", ["bernoulli", "with_replacement", "without_replacement"])
@pytest.mark.parametrize("eta", [0.5, 0.8])
def test_scheme_curves_by_hand(sampling, eta):
    n, lam, B = 100, 2.0, np.array([1.0, 4.0, 20.0, 49.0])
    x = 2 / (eta * lam) - 1
    if sampling == "bernoulli":
        thm2 = (n / B - 1) / x
        thm1 = eta * lam * np.sqrt(n / B - 1)
    else:
        c = 1 / B if sampling == "with_replacement" else (n - B) / (B * (n - 1))
        thm2 = n * c / (c + x)  # c(n/σ − 1) = x
        thm1 = n / (1 + np.sqrt((n - 1) / c) / (eta * lam))  # η²cλ²(n/σ − 1)² = n − 1
    np.testing.assert_allclose(hg.thm2_sigma(n, B, eta, lam, sampling), thm2, rtol=1e-13)
    np.testing.assert_allclose(hg.thm1_sigma(n, B, eta, lam, sampling), thm1, rtol=1e-13)
    curves = hg.theorem_curves(n, B, eta, sampling)
    scheme = hg.SCHEME_NAMES[sampling]
    assert all(scheme in c["label"] for c in curves)
    if sampling != "bernoulli":
        assert not any("Bernoulli" in c["label"] or c["name"] == "dexter-thm1" for c in curves)


def test_thm2_curve_is_the_exact_frontier_of_the_shared_direction():
    # for σ ≥ 2 the shared direction is the first to go unstable: the without-replacement Thm 2
    # curve sits between the last diverging and the first stable batch of the exact frontier
    for eta in (0.5, 0.8):
        for sigma in (2, 5, 10, 20, 40):
            b = hg.critical_batch(100, sigma, eta, 0.0, b_max=99)
            thr = hg.thm2_sigma(100, np.array([b - 1.0, float(b)]), eta, 2.0, "without_replacement")
            assert thr[1] <= sigma and (b == 1 or thr[0] >= sigma), (eta, sigma, b, thr)


def test_grid_cells_carry_verified_certificates():
    # every valid cell's exact verdict is certified (diagonal Y, exact rational check), except
    # ρ(T) = 1 exactly: σ = 50, B = 1, η = 0.5 — each own direction has ηλ = 2, so J² ≡ 1 there
    certified, forgets, one, exact = [], [], [], []
    for eta in (0.5, 0.8):
        for alpha in (0.0, 0.3):
            for sigma in (1, 11, 26, 50):
                for B in (1, 9, 25, 49, 95):
                    p = dict(n=100, sigma=sigma, batch=B, eta=eta, alpha=alpha, runs=0)
                    out, cert = hg.cell(p, None), hg.certify_cell(p)
                    certified.append(cert["certified"])
                    forgets.append(cert["forgets"])
                    one.append(cert["exactly_one"])
                    exact.append(out["exact_diverges"])
                    if cert["certified"] == 1:
                        assert cert["forgets"] == out["exact_diverges"], p
                        assert (cert["bound"] > 1) == (cert["forgets"] == 1), p
                    elif np.isfinite(out["rate"]):
                        assert cert["exactly_one"] == 1 and out["rate"] == pytest.approx(1, abs=1e-12)
    counts = hg.certificate_counts(certified, forgets, one, exact)
    valid = int(np.sum(np.isfinite(exact)))
    assert counts == {"certified": valid - 1, "certificate_disagrees": 0, "not_certifiable": 1,
                      "exactly_one": 1}, counts
    assert hand_rate(100, 50, 1, 0.5) == pytest.approx(1.0, abs=1e-15)
