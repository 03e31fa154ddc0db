"""Argument validation shared by every public entry point.

One validation layer in front (this module), small private kernels behind: every public function
checks its arguments once, here, with messages that name the argument and what was expected.
Nothing is clipped or coerced silently.
"""

from __future__ import annotations

import numbers

import numpy as np

__all__ = [
    "check_random_state",
    "check_positive",
    "check_unit_interval",
    "check_int",
    "check_finite_array",
    "check_choice",
    "check_hessian_set",
    "check_pair",
]


def check_random_state(seed):
    """Normalise ``seed`` into a :class:`numpy.random.Generator`.

    ``None`` gives fresh OS entropy, an int / SeedSequence seeds a new PCG64 generator and a
    Generator is returned as is. The global ``numpy.random`` state is never touched.
    """
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or isinstance(seed, (numbers.Integral, np.random.SeedSequence)):
        if isinstance(seed, numbers.Integral) and not isinstance(seed, bool) and seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed}")
        if isinstance(seed, bool):
            raise TypeError("seed must be an int, a numpy Generator, a SeedSequence or None, got bool")
        return np.random.default_rng(seed)
    raise TypeError(
        "seed must be an int, a numpy Generator, a SeedSequence or None, "
        f"got {type(seed).__name__}"
    )


def check_real(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def check_positive(value, name, *, allow_zero=False):
    value = check_real(value, name)
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {bound}, got {value}")
    return value


def check_unit_interval(value, name):
    value = check_real(value, name)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got {value}")
    return value


def check_int(value, name, *, minimum=None, maximum=None):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return value


def check_choice(value, name, choices):
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)}, got {value!r}")
    return value


def check_finite_array(a, name, *, ndim=None):
    """Convert to a float64 array and reject NaN/inf and wrong dimensionality."""
    try:
        arr = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a numeric array: {exc}") from None
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if arr.ndim not in allowed:
            raise ValueError(
                f"{name} must have {' or '.join(map(str, allowed))} dimensions, got shape {arr.shape}"
            )
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf")
    return arr


def check_hessian_set(hs, name="hs"):
    from .hessians import HessianSet  # local: hessians imports this module

    if not isinstance(hs, HessianSet):
        raise TypeError(f"{name} must be a HessianSet, got {type(hs).__name__}")
    return hs


def check_pair(hs, schedule):
    """Type-check a (HessianSet, Schedule) pair and that the schedule can run on the set."""
    from .schedule import Schedule

    check_hessian_set(hs)
    if not isinstance(schedule, Schedule):
        raise TypeError(f"schedule must be a Schedule, got {type(schedule).__name__}")
    schedule.validate_for(hs)
