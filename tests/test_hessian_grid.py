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
