"""Argument validation: one declarative layer in front of every public entry point.

Every public function checks its arguments once, here, with messages that name the argument and
what was expected. Nothing is clipped or coerced silently (an int may become the equal float, a
numpy scalar the equal Python scalar; nothing else changes).

Two ways to use it:

- ``check_*`` functions for one value at a time (``check_positive(eta, "eta")``);
- **constraint tables** in the spirit of scikit-learn's ``utils/_param_validation``: a mapping
  *parameter name → list of allowed constraints* (a value is valid if it satisfies any of them)::

      @constrained({
          "n": [Interval(Integral, 1, None, closed="left")],
          "lam": [Interval(Real, 0, None, closed="neither")],
          "forget": [None, Interval(Integral, 0, None, closed="left"), Array(ndim=1, kind="integer")],
          "seed": [RandomState()],
      })
      def my_ensemble(n, lam=1.0, *, forget=None, seed=None): ...

  The table is attached as ``my_ensemble.parameter_constraints`` (classes, e.g.
  :class:`rmt.Schedule`, carry it as a class attribute), so callers that accept the same values
  elsewhere — the sweep config, the command line — look the allowed ranges up instead of
  copying them. Constraints that relate several parameters (``sigma <= n``) stay in the body.
"""

from __future__ import annotations

import functools
import inspect
import math
import numbers
from collections.abc import Callable, Iterable, Mapping
from numbers import Integral, Real
from typing import Any, TypeVar, cast

import numpy as np

#: What a ``seed`` argument accepts: an int, a SeedSequence, a Generator (one integer is drawn
#: from it) or None (fresh OS entropy).
Seed = int | np.random.SeedSequence | np.random.Generator | None

F = TypeVar("F", bound=Callable[..., Any])

__all__ = [
    # constraints
    "Constraint",
    "Interval",
    "Options",
    "RandomState",
    "Array",
    "InstanceOf",
    # tables
    "validate_param",
    "validate_params",
    "constrained",
    # single-value checks
    "check_random_state",
    "check_real",
    "check_positive",
    "check_unit_interval",
    "check_int",
    "check_finite_array",
    "check_choice",
]


# ---------------------------------------------------------------------- constraint objects
class Constraint:
    """One allowed kind of value.

    ``accepts_type(value)``: is ``value`` of this constraint's kind (then a failure is a
    ValueError, otherwise a TypeError)? ``check(value, name)``: the normalised value, or raise
    TypeError/ValueError naming ``name``. ``str(constraint)`` describes it ("an integer >= 1").
    """

    def accepts_type(self, value: Any) -> bool:  # pragma: no cover - interface
        raise NotImplementedError

    def check(self, value: Any, name: str) -> Any:  # pragma: no cover - interface
        raise NotImplementedError


class _NoneConstraint(Constraint):
    """``None`` written in a constraint list: the parameter may be None."""

    def accepts_type(self, value: Any) -> bool:
        return value is None

    def check(self, value: Any, name: str) -> None:
        if value is not None:
            raise ValueError(f"{name} must be None, got {value!r}")
        return None

    def __str__(self) -> str:
        return "None"


def _fmt_bound(x: float) -> str:
    return format(x, "g") if isinstance(x, float) else str(x)


class Interval(Constraint):
    """A real or integer number in an interval.

    ``Interval(Real, 0, None, closed="neither")`` is η > 0; ``Interval(Integral, 1, 12,
    closed="both")`` is 1 ≤ n ≤ 12. ``left``/``right`` of None mean unbounded; ``closed`` is
    "both", "left", "right" or "neither". Reals must be finite (NaN and ±inf are rejected) and
    come back as ``float``; integers come back as ``int`` (a float such as 2.0 is *not* an
    integer, booleans are neither).
    """

    def __init__(self, type: type, left: float | None, right: float | None, *,
                 closed: str = "both") -> None:
        if type not in (Real, Integral):
            raise TypeError("Interval type must be numbers.Real or numbers.Integral")
        if closed not in ("both", "left", "right", "neither"):
            raise ValueError(f"closed must be 'both', 'left', 'right' or 'neither', got {closed!r}")
        if left is not None and right is not None and left > right:
            raise ValueError(f"Interval: left={left} > right={right}")
        self.type, self.left, self.right, self.closed = type, left, right, closed

    @property
    def _left_closed(self) -> bool:
        return self.closed in ("both", "left")

    @property
    def _right_closed(self) -> bool:
        return self.closed in ("both", "right")

    def accepts_type(self, value: Any) -> bool:
        return not isinstance(value, (bool, np.bool_)) and isinstance(value, self.type)

    def _range(self) -> str:
        lo, hi = self.left, self.right
        if lo is not None and hi is not None:
            lb = "[" if self._left_closed else "("
            rb = "]" if self._right_closed else ")"
            return f"in {lb}{_fmt_bound(lo)}, {_fmt_bound(hi)}{rb}"
        if lo is not None:
            return f"{'>=' if self._left_closed else '>'} {_fmt_bound(lo)}"
        if hi is not None:
            return f"{'<=' if self._right_closed else '<'} {_fmt_bound(hi)}"
        return ""

    def __str__(self) -> str:
        kind = "an integer" if self.type is Integral else "a real number"
        rng = self._range()
        return f"{kind} {rng}" if rng else kind

    def contains(self, x: float) -> bool:
        if self.left is not None and (x < self.left or (x == self.left and not self._left_closed)):
            return False
        if self.right is not None and (x > self.right or (x == self.right and not self._right_closed)):
            return False
        return True

    def check(self, value: Any, name: str) -> Any:
        """The value as ``int`` (integer intervals) or ``float`` (real intervals)."""
        if self.type is Integral:
            if not self.accepts_type(value):
                raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
            value = int(value)
        else:
            if not self.accepts_type(value):
                raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
            value = float(value)
            if not math.isfinite(value):
                raise ValueError(f"{name} must be finite, got {value}")
        if not self.contains(value):
            rng = self._range()
            verb = "lie" if rng.startswith("in ") else "be"
            raise ValueError(f"{name} must {verb} {rng}, got {value}")
        return value


class Options(Constraint):
    """One of a fixed set of values (usually strings), e.g. ``Options(("bernoulli", "summed"))``."""

    def __init__(self, options: Iterable[Any]) -> None:
        self.options = tuple(options)
        if not self.options:
            raise ValueError("Options needs at least one option")

    def accepts_type(self, value: Any) -> bool:
        if isinstance(value, (bool, np.bool_)):
            return any(isinstance(o, bool) for o in self.options)
        return any(isinstance(value, type(o)) for o in self.options)

    def _listed(self) -> list[Any]:
        try:
            return sorted(self.options)
        except TypeError:
            return list(self.options)

    def __str__(self) -> str:
        return f"one of {self._listed()}"

    def check(self, value: Any, name: str) -> Any:
        if not self.accepts_type(value) or value not in self.options:
            raise ValueError(f"{name} must be one of {self._listed()}, got {value!r}")
        return value


class RandomState(Constraint):
    """A seed: an int >= 0, a :class:`numpy.random.SeedSequence`, a Generator or None.

    ``check`` returns the :class:`numpy.random.Generator` (see :func:`check_random_state`).
    """

    def accepts_type(self, value: Any) -> bool:
        return value is None or isinstance(value, (np.random.Generator, np.random.SeedSequence)) or (
            isinstance(value, Integral) and not isinstance(value, (bool, np.bool_))
        )

    def __str__(self) -> str:
        return "an int >= 0, a numpy SeedSequence, a numpy Generator or None"

    def check(self, value: Any, name: str) -> np.random.Generator:
        return check_random_state(value, name)


class Array(Constraint):
    """A numeric array (not a string, not a scalar) with ``ndim`` dimensions (int or tuple).

    ``kind="real"``: converted to float64, NaN/inf rejected (:func:`check_finite_array`);
    ``kind="integer"``: must already have an integer dtype (indices are never rounded).
    """

    def __init__(self, ndim: int | Iterable[int] | None = None, *, kind: str = "real") -> None:
        if kind not in ("real", "integer"):
            raise ValueError(f"kind must be 'real' or 'integer', got {kind!r}")
        self.ndim, self.kind = ndim, kind

    def accepts_type(self, value: Any) -> bool:
        return not isinstance(value, (str, bytes)) and (
            isinstance(value, np.ndarray) or np.ndim(value) >= 1
        )

    def _dims(self) -> str:
        if self.ndim is None:
            return ""
        dims = (self.ndim,) if isinstance(self.ndim, int) else tuple(self.ndim)
        return " or ".join(f"{d}-d" for d in dims) + " "

    def __str__(self) -> str:
        return f"a {self._dims()}{'integer' if self.kind == 'integer' else 'real'} array"

    def check(self, value: Any, name: str) -> np.ndarray:
        if self.kind == "real":
            return check_finite_array(value, name, ndim=self.ndim)
        arr = np.asarray(value)
        if not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"{name} must be {self}, got dtype {arr.dtype}")
        if self.ndim is not None:
            _check_ndim(arr, name, self.ndim)
        return arr


class InstanceOf(Constraint):
    """An instance of one of ``types`` (e.g. a :class:`rmt.HessianSet`)."""

    def __init__(self, *types: type):
        self.types = types

    def accepts_type(self, value: Any) -> bool:
        return isinstance(value, self.types)

    def __str__(self) -> str:
        return " or ".join(f"a {t.__name__}" for t in self.types)

    def check(self, value: Any, name: str) -> Any:
        if not isinstance(value, self.types):
            raise TypeError(f"{name} must be {self}, got {type(value).__name__}")
        return value


_NONE = _NoneConstraint()


def _as_constraint(c: Constraint | None) -> Constraint:
    if c is None:
        return _NONE
    if isinstance(c, Constraint):
        return c
    raise TypeError(f"not a constraint: {c!r} (use None, Interval, Options, RandomState or Array)")


# ---------------------------------------------------------------------- tables
def validate_param(name: str, value: Any, constraints: Iterable[Constraint | None], *,
                   caller: str | None = None) -> Any:
    """Check one value against a list of constraints (valid if any accepts it); return it normalised.

    With a single constraint its own message is raised; with several, a message listing them.
    A value of none of the allowed kinds is a TypeError, a value of the right kind out of range a
    ValueError. ``caller`` (e.g. "Schedule") prefixes the message.
    """
    cons = [_as_constraint(c) for c in constraints]
    prefix = f"{caller}: " if caller else ""
    try:
        if len(cons) == 1:
            return cons[0].check(value, name)
        candidates = [c for c in cons if c.accepts_type(value)]
        errors: list[TypeError | ValueError] = []
        for c in candidates:
            try:
                return c.check(value, name)
            except (TypeError, ValueError) as exc:
                errors.append(exc)
        if len(errors) == 1:
            raise errors[0]
        allowed = " or ".join(map(str, cons))
        exc_type = ValueError if candidates else TypeError
        raise exc_type(f"{name} must be {allowed}, got {type(value).__name__} {value!r}")
    except (TypeError, ValueError) as exc:
        if not prefix:
            raise
        raise type(exc)(prefix + str(exc)) from None


def validate_params(constraints: Mapping[str, Iterable[Constraint | None]],
                    params: Mapping[str, Any], *, caller: str | None = None) -> dict[str, Any]:
    """Check ``params`` (a mapping name → value) against a constraint table; return them normalised.

    Every name in ``params`` must have an entry in ``constraints`` (an unknown name is a
    TypeError, as for a function call); names of the table missing from ``params`` are skipped.
    """
    unknown = sorted(set(params) - set(constraints))
    if unknown:
        where = f"{caller}: " if caller else ""
        raise TypeError(f"{where}unexpected parameter(s) {unknown}; allowed: {list(constraints)}")
    return {k: validate_param(k, v, constraints[k], caller=caller) for k, v in params.items()}


def constrained(constraints: Mapping[str, Iterable[Constraint | None]]) -> Callable[[F], F]:
    """Decorator: declare a function's parameter constraints and check every call against them.

    The table must name exactly the function's parameters (checked when decorating). It is
    attached as ``func.parameter_constraints``; the function body receives the normalised values
    (defaults included) and keeps only the checks that relate several parameters.
    """
    constraints = dict(constraints)

    def decorate(func: F) -> F:
        sig = inspect.signature(func)
        missing = set(sig.parameters) ^ set(constraints)
        if missing:
            raise TypeError(
                f"constraint table of {func.__qualname__} does not match its parameters: {sorted(missing)}"
            )
        for name, cons in constraints.items():
            for c in cons:
                _as_constraint(c)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            bound = sig.bind(*args, **kwargs)
            bound.apply_defaults()
            for name, value in bound.arguments.items():
                bound.arguments[name] = validate_param(name, value, constraints[name])
            return func(*bound.args, **bound.kwargs)

        # a function attribute, read by callers with getattr / the contract tests
        setattr(wrapper, "parameter_constraints", constraints)
        return cast(F, wrapper)  # functools.wraps keeps func's signature

    return decorate


# ---------------------------------------------------------------------- single-value checks
_POSITIVE = Interval(Real, 0, None, closed="neither")
_NON_NEGATIVE = Interval(Real, 0, None, closed="left")
_UNIT = Interval(Real, 0, 1, closed="both")


def check_random_state(seed: Seed, name: str = "seed") -> np.random.Generator:
    """Normalise ``seed`` into a :class:`numpy.random.Generator`.

    ``None`` gives fresh OS entropy, an int / SeedSequence seeds a new PCG64 generator and a
    Generator is returned as is. The global ``numpy.random`` state is never touched.
    """
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, (bool, np.bool_)):
        raise TypeError(f"{name} must be an int, a numpy Generator, a SeedSequence or None, got bool")
    if seed is None or isinstance(seed, (numbers.Integral, np.random.SeedSequence)):
        if isinstance(seed, numbers.Integral) and seed < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {seed}")
        return np.random.default_rng(seed)
    raise TypeError(
        f"{name} must be an int, a numpy Generator, a SeedSequence or None, "
        f"got {type(seed).__name__}"
    )


def check_real(value: Any, name: str) -> float:
    """A finite real number (as float); booleans and strings are refused."""
    return Interval(Real, None, None).check(value, name)


def check_positive(value: Any, name: str, *, allow_zero: bool = False) -> float:
    """A finite real > 0 (``>= 0`` with ``allow_zero``), as float."""
    return (_NON_NEGATIVE if allow_zero else _POSITIVE).check(value, name)


def check_unit_interval(value: Any, name: str) -> float:
    """A finite real in [0, 1], as float."""
    return _UNIT.check(value, name)


def check_int(value: Any, name: str, *, minimum: int | None = None,
              maximum: int | None = None) -> int:
    """An integer in [minimum, maximum] (either bound optional), as int."""
    return Interval(Integral, minimum, maximum, closed="both").check(value, name)


def check_choice(value: Any, name: str, choices: Iterable[Any]) -> Any:
    """One of ``choices``."""
    return Options(choices).check(value, name)


def _check_ndim(arr: np.ndarray, name: str, ndim: int | Iterable[int]) -> None:
    allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
    if arr.ndim not in allowed:
        raise ValueError(
            f"{name} must have {' or '.join(map(str, allowed))} dimensions, got shape {arr.shape}"
        )


def check_finite_array(a: Any, name: str, *, ndim: int | Iterable[int] | None = None
                       ) -> np.ndarray:
    """Convert to a float64 array and reject NaN/inf and wrong dimensionality."""
    try:
        arr = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a numeric array: {exc}") from None
    if ndim is not None:
        _check_ndim(arr, name, ndim)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf")
    return arr
