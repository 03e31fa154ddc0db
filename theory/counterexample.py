"""Counterexample search for stability statements with Hypothesis (contract §5).

:func:`search_counterexample` drives Hypothesis over generated (HessianSet, Schedule) instances —
retain/forget sets with varied coherence (:func:`rmt.testing.instances`), every sampling scheme,
summed and alternating schedules, batch sizes, α and η — looking for an instance where the
``hypothesis`` holds but the exact ρ(T) contradicts the ``conclusion``; Hypothesis then shrinks it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numbers
from dataclasses import dataclass, field

import math

from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st
from hypothesis import seed as hyp_seed

import rmt
from rmt import HessianSet, Schedule
from rmt import testing as rt

from .theorems import RATE_TOL, Instance, MeanSquareVerdict, Theorem

__all__ = ["Counterexample", "search_counterexample", "theorem_instances"]


@st.composite
def theorem_instances(draw: Callable, theorem: Theorem, *, max_dim: int = 4, max_retain: int = 6,
                      max_forget: int = 4) -> tuple[HessianSet, Schedule]:
    """Instances on which ``theorem`` applies, with η placed relative to its threshold.

    Draws a structurally admissible pair from :func:`rmt.testing.instances` (using
    ``theorem.requirements``), then sets η = η_thm·t with t ∈ {1} ∪ [1, 3] for a divergence
    statement (t = 1 is the boundary, where the statements still claim ρ(T) ≥ 1) and
    t ∈ [0.01, 1) for a convergence statement. Thresholds 0 (diverges for every η) keep the
    drawn η; infinite thresholds are rejected.
    """
    if not isinstance(theorem, Theorem):
        raise TypeError(f"theorem must be a theory Theorem, got {type(theorem).__name__}")
    hs, sch = draw(rt.instances(max_dim=max_dim, max_retain=max_retain, max_forget=max_forget,
                                **theorem.requirements))
    inst = Instance(hs, sch)
    assume(theorem.structural(inst))
    thr = theorem.threshold(inst)
    assume(math.isfinite(thr))
    if theorem.conclusion == "diverges":
        t = draw(st.one_of(st.just(1.0), st.floats(1.0, 3.0)))
        eta = thr * t if thr > 0 else sch.eta
    else:
        assume(thr > 0)
        eta = thr * draw(st.floats(0.01, 1.0, exclude_max=True))
    assume(eta > 0 and math.isfinite(eta))
    return hs, sch.replace(eta=float(eta))


@dataclass(frozen=True)
class Counterexample(MeanSquareVerdict):
    """A (shrunk) instance where the hypothesis held but the conclusion failed.

    ``rate`` is the exact ρ(T) (> 1 contradicts "converges", < 1 contradicts "diverges").
    Common verdict vocabulary (:mod:`rmt.verdict`): ``forgets`` (ρ(T) > 1), ``verdict``,
    ``notion`` (mean square).
    """

    hs: object = field(repr=False)
    schedule: object
    rate: float
    conclusion: str
    #: a :class:`rmt.Certificate` proving the failure in exact arithmetic (``rmt verify``), or
    #: None with ``certificate_note`` saying why none could be made
    certificate: object = field(default=None, repr=False)
    certificate_note: str = ""

    def __repr__(self) -> str:
        return (f"Counterexample(rate={self.rate:.6g}, conclusion={self.conclusion!r}, "
                f"hs={self.hs!r}, schedule={self.schedule!r})")


class _Found(Exception):
    pass


def search_counterexample(hypothesis: Callable[..., bool], conclusion: str, max_examples: int = 200,
                          seed: int = 0, *,
                          strategy: st.SearchStrategy | None = None) -> Counterexample | None:
    """Search for an instance with ``hypothesis(hs, schedule)`` true and ``conclusion`` false.

    ``conclusion``: "diverges" (claims ρ(T) ≥ 1) or "converges" (claims ρ(T) ≤ 1), in the sense
    of :data:`rmt.verdict.SIGN_CONVENTION`; verdicts use the tolerance :data:`theory.theorems.RATE_TOL`.
    ``strategy`` (optional) is a Hypothesis strategy of (hs, schedule) pairs; the default is
    :func:`rmt.testing.instances`. Runs at most ``max_examples`` examples with Hypothesis seeded
    by ``seed`` (no example database), and returns the shrunk :class:`Counterexample` or None.
    """
    if not callable(hypothesis):
        raise TypeError(f"hypothesis must be callable (hs, schedule) -> bool, got {hypothesis!r}")
    if conclusion not in ("diverges", "converges"):
        raise ValueError(f"conclusion must be 'diverges' or 'converges', got {conclusion!r}")
    if isinstance(max_examples, bool) or not isinstance(max_examples, numbers.Integral) \
            or max_examples < 1:
        raise ValueError(f"max_examples must be a positive integer, got {max_examples!r}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    strat = rt.instances() if strategy is None else strategy
    found = []

    def violated(rate):
        if conclusion == "diverges":
            return rate < 1.0 - RATE_TOL
        return rate > 1.0 + RATE_TOL

    @hyp_seed(int(seed))
    @settings(max_examples=int(max_examples), deadline=None, database=None, derandomize=False,
              phases=(Phase.generate, Phase.shrink), report_multiple_bugs=False,
              suppress_health_check=list(HealthCheck), print_blob=False)
    @given(strat)
    def _search(pair):
        hs, sch = pair
        if not hypothesis(hs, sch):
            return
        rate = rmt.mean_square_rate(hs, sch)
        if violated(rate):
            found.append(Counterexample(hs, sch, float(rate), conclusion))
            raise _Found()

    try:
        _search()
    except _Found:
        pass
    # Hypothesis replays the shrunk (minimal) failing example last
    if not found:
        return None
    ce = found[-1]
    try:
        cert = rmt.certify(ce.hs, ce.schedule)
    except rmt.CertificateError as exc:
        return dataclasses.replace(ce, certificate_note=str(exc))
    # the certificate must contradict the conclusion ("converges" needs ρ ≥ c > 1, and reverse)
    if cert.forgets == (conclusion == "converges"):
        return dataclasses.replace(ce, certificate=cert,
                                   certificate_note="verified: " + cert.verify()[1])
    return dataclasses.replace(ce, certificate_note="the certificate's claim does not contradict "
                               "the conclusion (ρ within the solver's resolution of 1)")
