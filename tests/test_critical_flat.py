"""critical_alpha where ρ(T) is flat in α (tiny curvature along the direction that decides α*):
float64 places α* only to ≈ 2·eps/(dρ/dα), so the summed Newton stops refining there and says
so, instead of bisecting round-off to rtol (a coherence-study instance ran ~60 dense solves,
470 s, for digits that were noise)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import rmt
import rmt.meansquare.critical as C

sys.path.insert(0, str(Path(__file__).parent))
from test_span_rule import _issue_instance  # noqa: E402


@pytest.mark.parametrize("seed", [0, 2])
def test_flat_alpha_stops_at_the_float_resolution(monkeypatch, seed):
    hs = _issue_instance(6, seed)["factor"]
    eta = 0.5
    lam = _issue_instance(6, seed)["commuting"].eigenvalues
    m_r, m_f = lam("retain")[:, 1].mean(), lam("forget")[:, 1].mean()
    exact = m_r / (m_r + m_f)
    resolution = 2 * np.finfo(float).eps / (eta * (m_r + m_f))  # test_span_rule's bound
    calls = []
    orig = C.summed_rate
    monkeypatch.setattr(C, "summed_rate", lambda *a, **k: calls.append(1) or orig(*a, **k))
    v = rmt.critical_alpha(hs, rmt.Schedule(eta, 2, alpha=1e-6))
    assert float(v) == pytest.approx(exact, abs=resolution)
    assert "float64 resolves α* to" in v.reason
    stated = float(v.reason.split("resolves α* to ≈ ")[1].split(" ")[0])
    assert 0.02 * resolution < stated <= resolution  # the stated width is the float bound's order
    assert len(calls) <= 30  # was 45–47 solves bisecting round-off to rtol = 1e-10


def test_well_conditioned_alpha_keeps_rtol():
    # an ordinary instance: no resolution note, the answer to rtol (against the dense oracle)
    rng = np.random.default_rng(4)
    hs = rmt.HessianSet.from_factors(rng.standard_normal((20, 5)) / 2,
                                     rng.standard_normal((4, 5)) / 2)
    sch = rmt.Schedule(0.4, 4, alpha=0.3, forget_batch=2)
    v = rmt.critical_alpha(hs, sch)
    assert v is not None and 0 < float(v) < 1
    assert "float64 resolves" not in v.reason and v.bounds is not None
    lo, hi = v.bounds
    assert lo <= float(v) <= hi and hi - lo <= 1e-9 * hi  # certified, to rtol (1e-10) order
    below = rmt.mean_square_rate(hs, sch.replace(alpha=float(v) * (1 - 1e-8)))
    above = rmt.mean_square_rate(hs, sch.replace(alpha=float(v) * (1 + 1e-8)))
    assert below < 1.0 < above
