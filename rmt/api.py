"""One contract for every public analysis: the :func:`analysis` decorator.

scipy's ``_axis_nan_policy`` decorator is the model: the argument handling every public analysis
shares is written once, here, instead of at the top of each function.

``@analysis({...})`` on ``f(hs, schedule=None, ..., **options)``

- **declares the constraint table** of every parameter (:mod:`rmt.validation`), attached as
  ``f.parameter_constraints`` — ``tests/test_api_contract.py`` checks that every public function
  of ``rmt`` has one that names exactly its parameters;
- **validates** each argument against it before the body runs (the body receives the caller's
  values unchanged; it keeps only checks that relate several parameters);
- **normalises** ``(hs, schedule)`` / :class:`rmt.Dynamics`: the body is called with the
  :class:`~rmt.Dynamics` as ``hs`` and ``schedule=None`` (a Dynamics is validated once, when it
  is built); ``f(dyn, steps)`` puts ``steps`` after the empty schedule slot. With
  ``dynamics=False`` the body receives the pair as given and checks it itself (e.g. the Monte
  Carlo functions, whose ``(dyn, steps, ...)`` positional form is an error that says so);
- **caps the BLAS thread pool** at :func:`rmt.threads.blas_threads` — building the Dynamics
  included — and turns an overflow into a ValueError (:func:`rmt.threads.capped`), unless
  ``blas=False`` (the function then runs at the caller's thread count: the exact ρ(T) solvers
  are capped, the affine moments, forecasts, certificates, Monte Carlo and model fitting are
  not — a cap there would move their last digits, or an L-BFGS fit's minimum);
- ``time_budget`` (seconds, > 0, or None) and ``seed`` (:class:`~rmt.validation.RandomState`)
  have one shared constraint: :data:`TIME_BUDGET`, :data:`SEED`.
"""

from __future__ import annotations

import functools
import inspect
from numbers import Integral, Real
from collections.abc import Mapping, Sequence
from typing import Any, Callable, TypeVar, cast

from .dynamics import Dynamics, as_dynamics
from .hessians import HessianSet
from .schedule import Schedule
from .threads import capped
from .validation import Constraint, InstanceOf, Interval, Options, RandomState, validate_param

__all__ = ["analysis", "InstanceOf", "TIME_BUDGET", "SEED", "POSITIVE", "TOLERANCE", "at_least",
           "HS", "SCHEDULE", "DYNAMICS", "HESSIANS", "BOOL", "UNIT", "NON_NEGATIVE"]

F = TypeVar("F", bound=Callable[..., Any])


#: ``time_budget``: seconds > 0, or None for no budget
TIME_BUDGET = [None, Interval(Real, 0, None, closed="neither")]
#: ``seed``: an int ≥ 0, a SeedSequence, a Generator or None (fresh entropy)
SEED = [RandomState()]
#: a real number > 0
POSITIVE = [Interval(Real, 0, None, closed="neither")]
#: a tolerance in (0, 1)
TOLERANCE = [Interval(Real, 0, 1, closed="neither")]
#: the first argument of an analysis: a HessianSet (with a Schedule) or a Dynamics
HS = [InstanceOf(HessianSet, Dynamics)]
#: the second argument: a Schedule, or None when ``hs`` is a Dynamics
SCHEDULE = [None, InstanceOf(Schedule)]
#: a Dynamics only
DYNAMICS = [InstanceOf(Dynamics)]
#: a HessianSet only
HESSIANS = [InstanceOf(HessianSet)]
#: True or False
BOOL = [Options((False, True))]
#: a real number in [0, 1]
UNIT = [Interval(Real, 0, 1, closed="both")]
#: a real number >= 0
NON_NEGATIVE = [Interval(Real, 0, None, closed="left")]


#: the curvature/step arguments, checked by :func:`rmt.dynamics.as_dynamics` (or, with
#: ``dynamics=False``, by the body) with the messages of :class:`rmt.Dynamics`
PAIR = ("hs", "schedule", "dyn")


def at_least(k: int) -> list[Constraint | None]:
    """An integer ≥ k."""
    return [Interval(Integral, k, None, closed="left")]


def analysis(constraints: Mapping[str, Sequence[Constraint | None]], *, dynamics: bool = True,
             blas: bool = True) -> Callable[[F], F]:
    """Decorator: the shared argument contract of a public analysis (module docstring).

    ``constraints`` maps every parameter name to its allowed values; ``hs`` and ``schedule``
    default to :data:`HS` and :data:`SCHEDULE` when ``dynamics`` is true and the table leaves
    them out."""
    table = dict(constraints)

    def decorate(func: F) -> F:
        sig = inspect.signature(func)
        params = list(sig.parameters)
        if dynamics:
            if params[:2] != ["hs", "schedule"]:
                raise TypeError(f"{func.__qualname__}: an analysis takes (hs, schedule, ...)")
            table.setdefault("hs", HS)
            table.setdefault("schedule", SCHEDULE)
        mismatch = set(params) ^ set(table)
        if mismatch:
            raise TypeError(f"constraint table of {func.__qualname__} does not match its "
                            f"parameters: {sorted(mismatch)}")
        def call(*args: Any, **kwargs: Any) -> Any:
            if (dynamics and len(args) >= 2 and isinstance(args[0], Dynamics)
                    and not (args[1] is None or isinstance(args[1], Schedule))):
                args = (args[0], None, *args[1:])  # f(dyn, steps, ...): no schedule slot
            bound = sig.bind(*args, **kwargs)
            for name, value in bound.arguments.items():
                if name not in PAIR:  # the pair: as_dynamics below, or the body's own checks
                    validate_param(name, value, table[name])
            if dynamics:  # as_dynamics checks both, with the messages of rmt.Dynamics
                hs: Any = bound.arguments.get("hs")  # the caller's value, checked by as_dynamics
                bound.arguments["hs"] = as_dynamics(hs, bound.arguments.get("schedule"))
                bound.arguments["schedule"] = None
            return func(*bound.args, **bound.kwargs)

        # the pair is built inside the cap too: the span's SVD at another BLAS thread count
        # would change the last digits of ρ(T)
        call.__name__, call.__qualname__ = func.__name__, func.__qualname__
        wrapper = functools.wraps(func)(capped(call) if blas else call)

        # a function attribute, read by callers with getattr / the contract tests
        setattr(wrapper, "parameter_constraints", table)
        wrapper.__wrapped__ = func
        return cast(F, wrapper)  # functools.wraps keeps func's signature

    return decorate
