"""One verdict vocabulary for every result object (contract §2, "Success of unlearning").

Every result that decides "does the model leave w*?" exposes the same fields:

``forgets`` (bool)
    True when the iterates escape w* under the result's stability notion (the model **forgets**),
    False when they stay bounded or return (the model **resists** unlearning).
``verdict`` (str)
    :func:`verdict_text` of ``forgets``: ``"diverges (forgets)"`` or ``"converges (resists)"``.
``notion`` (str)
    Which notion decided it, one of :data:`NOTIONS`.

and every report, legend and docstring quotes :data:`SIGN_CONVENTION` instead of rephrasing it.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

__all__ = [
    "Verdict",
    "OutcomeVerdict",
    "deprecated_alias",
    "SIGN_CONVENTION",
    "SIGN_CONVENTION_SHORT",
    "NOTIONS",
    "MEAN_SQUARE",
    "ALMOST_SURE",
    "OBSERVED",
    "HORIZON",
    "FORGETS",
    "RESISTS",
    "verdict_text",
    "check_notion",
]

#: The sign convention, in full: quote this, never rephrase it.
SIGN_CONVENTION = (
    '"diverges" = the iterates escape w* = the model forgets; '
    '"converges" = the iterates stay near w* = the model resists unlearning'
)
#: The same in a few words, for legends and one-line reports.
SIGN_CONVENTION_SHORT = "diverges = forgets (escapes w*), converges = resists unlearning"

#: Mean-square notion: E‖w_k‖² grows (ρ(T) > 1).
MEAN_SQUARE = "mean-square"
#: Almost-sure notion: a typical run grows (top Lyapunov exponent λ₁ > 0).
ALMOST_SURE = "almost-sure"
#: Finite-horizon notion: the iterates leave a ball within a given number of steps.
HORIZON = "finite-horizon"
#: What a (nonlinear or linear) simulation actually did.
OBSERVED = "observed"
#: Every notion a result may name in its ``notion`` field.
NOTIONS = (MEAN_SQUARE, ALMOST_SURE, HORIZON, OBSERVED)

FORGETS = "diverges (forgets)"
RESISTS = "converges (resists)"


def verdict_text(forgets: bool) -> str:
    """``"diverges (forgets)"`` when ``forgets`` else ``"converges (resists)"``."""
    return FORGETS if forgets else RESISTS


class Verdict:
    """Mixin: ``verdict`` is :func:`verdict_text` of the result's ``forgets``; the result supplies
    ``forgets`` and ``notion``."""

    __slots__ = ()

    if TYPE_CHECKING:  # supplied by the result class (a field or a property)
        @property
        def forgets(self) -> bool: ...

    @property
    def verdict(self) -> str:
        return verdict_text(self.forgets)


class OutcomeVerdict(Verdict):
    """Mixin for results with an ``outcome`` in {"escapes", "displaced", "returns"}
    (:data:`rmt.forecast.OUTCOMES`): ``forgets`` is outcome ≠ "returns" (the model left w*),
    ``verdict`` its sentence. The result supplies ``outcome`` and ``notion``."""

    __slots__ = ()
    outcome: str  # supplied by the result class (an annotation only)

    @property
    def forgets(self) -> bool:
        """The model leaves w* (escapes or settles displaced): outcome ≠ "returns"."""
        return self.outcome != "returns"


class deprecated_alias:
    """A read-only attribute that is an old name of ``target``: reading it returns
    ``getattr(obj, target)`` with a :class:`DeprecationWarning` that names the new spelling."""

    def __init__(self, target: str):
        self.target = target

    def __set_name__(self, owner, name):
        self.name = name
        self.__doc__ = f"Deprecated alias of :attr:`{self.target}`."

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        warnings.warn(f"{type(obj).__name__}.{self.name} is deprecated; use "
                      f".{self.target} (same value)", DeprecationWarning, stacklevel=2)
        return getattr(obj, self.target)


def check_notion(notion: str) -> str:
    """Validate a stability-notion name (one of :data:`NOTIONS`)."""
    if notion not in NOTIONS:
        raise ValueError(f"notion must be one of {list(NOTIONS)}, got {notion!r}")
    return notion
