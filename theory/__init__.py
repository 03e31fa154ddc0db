"""Symbolic layer: sympy derivations, encoded statements and closed forms (contract §3-§5, §8, §10).

Sympy derivations (procedures that check the identities they use):

- :mod:`theory.derivations` — from the second-moment recursion to the thresholds (§2.1, §3, §5,
  §10);
- :mod:`theory.affine_derivations` — the affine (drift) recursion (§8);
- :mod:`theory.asymptotics` — the isotropic reference ensemble (§9).

Numeric closed forms (the derivations evaluated on a HessianSet, an independent check of rmt's
numeric path):

- :mod:`theory.closed_forms` — commuting sets (``closed_form_rate``,
  ``closed_form_critical_eta/_batch/_alpha``);
- :mod:`theory.affine_closed_forms` — affine moments and stationary state of commuting sets;
- :mod:`theory.summed_closed_form` — η* of a summed schedule from the pencil (𝒜, 𝒬) (§10.3);
- :mod:`theory.thresholds` — η_thm of every catalogue theorem on an instance.

Statements, all :class:`theory.statement.Statement` objects with ``applies``/``why``/``check``:

- :mod:`theory.theorems` — :func:`theorems`, the catalogue of §5, and :func:`check_all` (every
  statement on one :class:`theory.instance.Instance`, sharing ρ(T) and η*);
- :mod:`theory.affine` — ``AFFINE_THEOREMS`` (§8);
- :mod:`theory.summed` — :func:`summed_statements` (§10.1–10.4).

Tools: :mod:`theory.counterexample` (:func:`search_counterexample`, Hypothesis-driven),
:mod:`theory.examples` (canonical worked examples reused by the tests) and
``python -m theory.report`` (the tightness report, docs/theory_report.md).

Every function that takes ``(hs, schedule)`` also takes an :class:`rmt.Dynamics`. Sign
convention: :data:`rmt.verdict.SIGN_CONVENTION`.
"""

from . import derivations as _derivations
from .closed_forms import (
    closed_form_critical_alpha,
    closed_form_critical_batch,
    closed_form_critical_eta,
    closed_form_rate,
)
from .derivations import *  # noqa: F401,F403 — the names of derivations.__all__
from .statement import Statement, StatementCheck
from .summed import SummedCheck, SummedStatement, get_summed_statement, summed_statements
from .theorems import RATE_TOL, Theorem, TheoremCheck, check_all, get_theorem, theorems


def __getattr__(name: str) -> object:
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
    "Statement",
    "StatementCheck",
    "Theorem",
    "TheoremCheck",
    "RATE_TOL",
    "search_counterexample",
    "Counterexample",
    "closed_form_rate",
    "closed_form_critical_eta",
    "closed_form_critical_batch",
    "closed_form_critical_alpha",
    "summed_statements",
    "get_summed_statement",
    "SummedStatement",
    "SummedCheck",
    *_derivations.__all__,
]
