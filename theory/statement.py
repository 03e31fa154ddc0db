"""One interface for every encoded statement of :mod:`theory` (contract §5, §8, §10).

A :class:`Statement` has a ``name``, a ``status`` ("proven" or "conjecture"), its
``hypotheses`` and three methods with one signature::

    applies(hs, schedule=None) -> bool
    why(hs, schedule=None) -> str
    check(hs, schedule=None, *, critical=True) -> StatementCheck

``hs`` is a :class:`theory.instance.Instance`, a :class:`rmt.Dynamics` or a HessianSet (then
``schedule`` is its :class:`rmt.Schedule`). Three families derive from it: the catalogue of
stability theorems (:class:`theory.theorems.Theorem`, contract §5), the affine statements
(:class:`theory.affine.AffineTheorem`, contract §8) and the summed-schedule statements
(:class:`theory.summed.SummedStatement`, contract §10). :func:`theory.theorems.check_all` calls
``check`` on each of them the same way.

Every check returns a :class:`StatementCheck`: ``name``, ``status``, ``applies``,
``conclusion``, ``held`` (None when the statement does not apply or its check could not be run),
``reason`` (one sentence: why) and ``violated`` (``held is False``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from rmt.dynamics import Dynamics, as_dynamics
from rmt.schedule import Schedule

from .instance import Instance, InstanceLike

if TYPE_CHECKING:
    from .derivations import Derivation
    from .thresholds import lazy_derivation

__all__ = [
    "RATE_TOL",
    "Statement",
    "EncodedStatement",
    "StatementCheck",
    "Hypothesis",
    "Hypotheses",
    "UnknownStatement",
    "find_statement",
    "as_instance",
    "as_dynamics_of",
]

#: Tolerance on ρ(T) − 1 for the verdicts: "diverges" holds when ρ(T) ≥ 1 − RATE_TOL and
#: "converges" when ρ(T) ≤ 1 + RATE_TOL (ρ is dimensionless; the tolerance only absorbs the
#: eigensolver's round-off at the boundary where the statements are stated with "≥").
RATE_TOL = 1e-9


def as_instance(hs: InstanceLike, schedule: Schedule | None = None) -> Instance:
    """An :class:`Instance` from an Instance, a :class:`rmt.Dynamics` or (hs, schedule)."""
    if isinstance(hs, Instance):
        if schedule is not None:
            raise TypeError("pass either an Instance or (hs, schedule), not both")
        return hs
    return Instance(hs, schedule)


def as_dynamics_of(hs: InstanceLike, schedule: Schedule | None = None) -> Dynamics:
    """The :class:`rmt.Dynamics` of an Instance, a Dynamics or (hs, schedule)."""
    if isinstance(hs, Instance):
        if schedule is not None:
            raise TypeError("pass either an Instance or (hs, schedule), not both")
        return hs.dyn
    return as_dynamics(hs, schedule)


@dataclass(frozen=True)
class StatementCheck:
    """What every check returns (see the module docstring); subclasses add their numbers."""

    name: str
    applies: bool
    held: bool | None
    #: why the statement applies or not (one sentence)
    reason: str = field(default="", compare=False, kw_only=True)
    #: "proven" or "conjecture"
    status: str = field(default="proven", kw_only=True)
    #: "diverges" or "converges" (:data:`rmt.verdict.SIGN_CONVENTION`); "" for a statement that
    #: is not a stability verdict (contract §10)
    conclusion: str = field(default="", kw_only=True)

    @property
    def violated(self) -> bool:
        """The statement applied and its conclusion failed on the instance."""
        return self.held is False


class Statement(ABC):
    """One encoded statement with the uniform interface of the module docstring."""

    name: str
    status: str

    @property
    @abstractmethod
    def hypotheses(self) -> tuple:
        """The hypotheses, in order (:class:`Hypothesis` atoms or sentences)."""

    @abstractmethod
    def applies(self, hs: InstanceLike, schedule: Schedule | None = None) -> bool:
        """The hypotheses hold on the instance."""

    @abstractmethod
    def why(self, hs: InstanceLike, schedule: Schedule | None = None) -> str:
        """Why the statement applies or not on the instance (one sentence)."""

    @abstractmethod
    def check(self, hs: InstanceLike, schedule: Schedule | None = None, *, critical: bool = True) -> StatementCheck:
        """The statement against the exact quantities of the instance. ``critical=False``
        skips the exact critical step size where a check would compute it."""


@dataclass(frozen=True, eq=False)
class EncodedStatement(Statement):
    """The descriptive fields shared by the catalogue theorems and the affine statements.

    ``name`` (contains the source), ``source``, ``hypothesis`` (text), ``conclusion``
    ("diverges" or "converges", :data:`rmt.verdict.SIGN_CONVENTION`), ``status`` ("proven" or
    "conjecture") and ``section`` of docs/contract.md.
    """

    name: str
    source: str
    hypothesis: str
    conclusion: str
    status: str
    section: str

    if TYPE_CHECKING:  # supplied by each statement class (a field or a property)
        @property
        def derivation(self) -> Derivation | lazy_derivation: ...

    @property
    def expression(self) -> object:
        """The sympy expression the statement rests on (see ``derivation``)."""
        return self.derivation.expression

    @property
    def latex(self) -> str:
        """LaTeX of :attr:`expression`."""
        return self.derivation.latex


# ---------------------------------------------------------------------- named hypotheses
@dataclass(frozen=True)
class Hypothesis:
    """One structural hypothesis: ``text`` (what it requires), ``test(inst) -> bool`` and
    ``got(inst) -> str`` (the instance's value, quoted when the hypothesis fails)."""

    text: str
    test: Callable[[Instance], bool] = field(repr=False)
    got: Callable[[Instance], str] | None = field(repr=False, default=None)
    #: a hypothesis on the scheme/schedule (not on the Hessians): when it fails the statement's
    #: ``analogue`` is where the instance is covered
    routable: bool = False
    #: keyword arguments of :func:`rmt.testing.instances` whose instances satisfy it ({} when
    #: generated instances are filtered instead)
    requires: dict = field(default_factory=dict, repr=False)

    def failure(self, inst: Instance) -> str | None:
        """None when the hypothesis holds (or cannot be evaluated because an earlier one
        failed, e.g. a batch condition on a set that does not enter), else "text (got …)"."""
        try:
            if self.test(inst):
                return None
        except (AttributeError, TypeError):
            return None
        return self.text + (f" (got {self.got(inst)})" if self.got is not None else "")


class Hypotheses:
    """A conjunction of :class:`Hypothesis` atoms, callable as the structural test."""

    def __init__(self, *atoms: Hypothesis):
        self.atoms = tuple(atoms)

    def __call__(self, inst: Instance) -> bool:
        return all(a.test(inst) for a in self.atoms)

    @property
    def requires(self) -> dict:
        """The merged :attr:`Hypothesis.requires` of the atoms."""
        out: dict = {}
        for atom in self.atoms:
            out.update(atom.requires)
        return out

    def failures(self, inst: Instance) -> list[tuple[str, bool]]:
        """[(text, routable)] of the failed hypotheses."""
        out = [(a.failure(inst), a.routable) for a in self.atoms]
        return [(f, r) for f, r in out if f is not None]


# ---------------------------------------------------------------------- registries
class UnknownStatement(ValueError, KeyError):
    """No statement of that name (a ValueError and a KeyError: the registries raised either)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


S = TypeVar("S", bound=Statement)


def find_statement(statements: Iterable[S], name: str) -> S:
    """The statement of ``statements`` called ``name`` (:class:`UnknownStatement` if none)."""
    statements = list(statements)
    for s in statements:
        if s.name == name:
            return s
    raise UnknownStatement(f"name must be one of {[s.name for s in statements]}, got {name!r}")
