"""The refinement of :func:`rmt.horizon_critical` (``rmt.horizon._refine``): its answer is the upper
end of a bracket of relative width ≤ rtol around a sign change, on smooth, kinked, stepped and
partly non-finite log excesses, and it needs few evaluations on smooth ones."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rmt.horizon import _refine


def _recording(g):
    seen = {}

    def h(x):
        seen[x] = g(x)
        return seen[x]

    return h, seen


def _check_bracket(seen, value, rtol):
    assert seen[value] >= 0  # the answer leaves
    below = [x for x, v in seen.items() if x < value and v < 0]
    assert below and value - max(below) <= rtol * value  # a stay within rtol below it


ROOT = 0.0142110113


@pytest.mark.parametrize("g", [
    lambda x: 1000 * math.log(1 + 0.7 * x) - 1000 * math.log(1 + 0.7 * ROOT),  # smooth
    lambda x: math.log(x / ROOT) ** 3 + 0.01 * math.log(x / ROOT),  # flat at the root
    lambda x: abs(x - 0.9 * ROOT) - 0.1 * ROOT,  # a kink inside the bracket
    lambda x: 1.0 if x >= ROOT else -1.0,  # a step: no interpolation helps
    lambda x: -math.inf if x < 0.9 * ROOT else (x - ROOT) / ROOT,  # -inf part of the bracket
    lambda x: math.inf if x > 1.1 * ROOT else (x - ROOT) / ROOT,  # +inf part of the bracket
])
@pytest.mark.parametrize("rtol", [1e-6, 1e-3])
def test_refine_returns_a_tight_bracket(g, rtol):
    h, seen = _recording(g)
    lo, hi = 0.8 * ROOT, 1.25 * ROOT
    value = _refine(h, lo, hi, rtol, [(0.7 * ROOT, g(0.7 * ROOT))])
    _check_bracket(seen, value, rtol)
    assert abs(value - ROOT) <= 2 * rtol * ROOT
    assert len(seen) <= 80


def test_refine_few_evaluations_on_a_smooth_excess():
    # the digits-MLP shape: log growth over a horizon, scan points 19% apart; the old
    # Illinois refinement needed 6 trajectories from this bracket, the cubic fits need ≤ 4
    def g(x):
        return 1000 * (math.log1p(0.71 * x) - math.log1p(0.71 * ROOT)) + 3 * (x - ROOT) / ROOT

    grid = ROOT * 1.19 ** np.arange(-4, 1)
    scan = [(float(x), g(float(x))) for x in grid[:-1]] + [(float(grid[-1]) * 1.19, 0.0)]
    scan[-1] = (scan[-1][0], g(scan[-1][0]))
    lo, hi = scan[-2][0], scan[-1][0]
    assert g(lo) < 0 <= g(hi)
    h, seen = _recording(g)
    value = _refine(h, lo, hi, 1e-6, scan)
    _check_bracket({**dict(scan), **seen}, value, 1e-6)
    assert len(seen) <= 4


def test_horizon_critical_alpha_with_a_flat_forget_set():
    # a forget set of zero curvature: at α = 1 no Hessian enters the step (J = I), which used
    # to raise; there δ_k = δ_0, the model stays, and so does every α here (descent only)
    import rmt

    rng = np.random.default_rng(0)
    hs = rmt.HessianSet.from_factors(rng.standard_normal((20, 6)), np.zeros((3, 6)))
    sch = rmt.Schedule(0.2, 4, alpha=0.1, forget_batch=2)
    res = rmt.horizon_critical(hs, sch, "alpha", 100, progress=False)
    assert res.value is None and res.out_of_span_share == 0.0
    # with forget gradients the step at α = 1 is a random walk: refused by name
    hs_g = rmt.HessianSet.from_factors(rng.standard_normal((20, 6)), np.zeros((3, 6)),
                                       retain_gradients=np.zeros((20, 6)),
                                       forget_gradients=1e-9 * rng.standard_normal((3, 6)))
    with pytest.raises(ValueError, match="random walk"):
        rmt.horizon_critical(hs_g, sch, "alpha", 100, progress=False)
