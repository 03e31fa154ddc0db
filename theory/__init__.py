"""Symbolic layer: sympy derivations, theorem objects and closed forms (THEORY.md §3-§5).

- :mod:`theory.derivations` — sympy procedures from the second-moment recursion to thresholds;
- :mod:`theory.closed_forms` — those results evaluated on commuting sets (``closed_form_rate``,
  ``closed_form_critical_eta/_batch/_alpha``), an independent check of rmt's numeric path;
- :mod:`theory.theorems`    — :func:`theorems` (encoded statements with ``applies``,
  ``threshold``, ``check`` against the exact ρ(T));
- :mod:`theory.summed`       — :func:`summed_statements` (docs/contract.md §10: self-adjointness,
  convexity, closed-form η*, monotone batch of the summed schedule, each with a numerical
  ``check``);
- :mod:`theory.counterexample` — :func:`search_counterexample` (Hypothesis-driven);
- :mod:`theory.examples`    — canonical worked examples reused by the tests;
- ``python -m theory.report`` — the tightness report (docs/theory_report.md).

Every function that takes ``(hs, schedule)`` also takes an :class:`rmt.Dynamics`. Sign
convention: :data:`rmt.verdict.SIGN_CONVENTION`.
"""

from .closed_forms import (
    closed_form_critical_alpha,
    closed_form_critical_batch,
    closed_form_critical_eta,
    closed_form_rate,
)
from .derivations import (
    Derivation,
    all_derivations,
    alternating_direction_polynomial,
    commuting_critical_alpha,
    commuting_critical_batch,
    commuting_critical_eta,
    commuting_direction_rate,
    dexter_single_sample,
    dexter_thm1,
    dexter_thm2_condition,
    sam_threshold,
    sampling_coefficients,
    summed_critical_eta_scalar,
    summed_operator_expansion,
    unlearning_mean_escape,
    unlearning_noise_condition,
    wu_ma_e_nonuniformity,
    wu_ma_e_sharpness,
)
from .summed import SummedCheck, SummedStatement, get_summed_statement, summed_statements
from .theorems import RATE_TOL, Theorem, TheoremCheck, check_all, get_theorem, theorems


def __getattr__(name):
    # the counterexample search needs Hypothesis (a dev dependency): import it on first use so
    # that ``import theory`` works without it
    if name in ("search_counterexample", "Counterexample"):
        from . import counterexample

        return getattr(counterexample, name)
    raise AttributeError(f"module 'theory' has no attribute {name!r}")

__all__ = [
    "theorems",
    "get_theorem",
    "check_all",
    "Theorem",
    "TheoremCheck",
    "RATE_TOL",
    "search_counterexample",
    "Counterexample",
    "Derivation",
    "all_derivations",
    "closed_form_rate",
    "closed_form_critical_eta",
    "closed_form_critical_batch",
    "closed_form_critical_alpha",
    "sampling_coefficients",
    "commuting_direction_rate",
    "commuting_critical_eta",
    "commuting_critical_batch",
    "commuting_critical_alpha",
    "alternating_direction_polynomial",
    "dexter_thm1",
    "dexter_single_sample",
    "dexter_thm2_condition",
    "wu_ma_e_sharpness",
    "wu_ma_e_nonuniformity",
    "unlearning_noise_condition",
    "unlearning_mean_escape",
    "sam_threshold",
    "summed_operator_expansion",
    "summed_critical_eta_scalar",
    "summed_statements",
    "get_summed_statement",
    "SummedStatement",
    "SummedCheck",
]
