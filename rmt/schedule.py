"""The optimiser side of the pair: :class:`Schedule` (contract §2).

A Schedule fixes the step size η, the batch sizes, the mixing weight α, the batch sampling scheme
and how the retain and forget steps are combined:

``"summed"``       J = I − η(1−α)Ĥ_R + ηαĤ_F
``"alternating"``  J = (I + ηαĤ_F)(I − η(1−α)Ĥ_R)         (retain step, then forget step)
``"sam"``          J = I − ηĤ_R (I + (ρ/a) H̄_R)            (SAM, contract §2; needs α = 0)

Plain SGD is ``alpha=0`` (the forget set, if any, then does not enter the dynamics).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any, ClassVar

from .combinators import COMBINATORS, Combinator, get_combinator
from .validation import Interval, Options, validate_params

__all__ = ["Schedule", "SAMPLING_SCHEMES", "SCHEDULES", "mixing_weights"]

SAMPLING_SCHEMES = ("bernoulli", "with_replacement", "without_replacement")
SCHEDULES = tuple(COMBINATORS)


def mixing_weights(alpha: Any) -> tuple[Any, Any]:
    """(1 − α, α): the retain and forget weights of the mixed objective (contract §2).

    The one place the mixing is written; works for floats, arrays and sympy symbols."""
    return 1 - alpha, alpha


@dataclass(frozen=True)
class Schedule:
    """Step size, batch sizes, mixing weight and sampling of one unlearning run (contract §2).

    Parameters
    ----------
    eta : float > 0
        Learning rate η.
    batch : int ≥ 1
        Retain batch size B (expected size for ``"bernoulli"``).
    alpha : float in [0, 1]
        Mixing weight α: descent on the retain batch with weight 1−α, ascent on the forget batch
        with weight α. ``alpha=0`` is plain SGD on the retain set.
    sampling : {"bernoulli", "with_replacement", "without_replacement"}
        Batch sampling scheme (contract §2.1).
    schedule : {"summed", "alternating", "sam"}
        How the steps combine (module docstring).
    forget_batch : int ≥ 1 or None
        Forget batch size B_F; ``None`` means B_F = B.
    sam_rho, sam_a : float
        SAM radius ρ ≥ 0 and normalisation a > 0 (only for ``schedule="sam"``): the effective
        Hessian is H(I + (ρ/a)H̄).
    """

    eta: float
    batch: int
    alpha: float = 0.0
    sampling: str = "bernoulli"
    schedule: str = "summed"
    forget_batch: int | None = None
    sam_rho: float = 0.0
    sam_a: float = 1.0

    #: Allowed values of every field (:mod:`rmt.validation`); the sweep config and the command
    #: line look the ranges up here. Checks relating several fields live in ``__post_init__``.
    parameter_constraints: ClassVar[dict] = {
        "eta": [Interval(Real, 0, None, closed="neither")],
        "batch": [Interval(Integral, 1, None, closed="left")],
        "alpha": [Interval(Real, 0, 1, closed="both")],
        "sampling": [Options(SAMPLING_SCHEMES)],
        "schedule": [Options(SCHEDULES)],
        "forget_batch": [None, Interval(Integral, 1, None, closed="left")],
        "sam_rho": [Interval(Real, 0, None, closed="left")],
        "sam_a": [Interval(Real, 0, None, closed="neither")],
    }

    def __post_init__(self) -> None:
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for name, value in validate_params(self.parameter_constraints, fields).items():
            object.__setattr__(self, name, value)
        if not self.combinator.takes_forget and self.alpha != 0.0:
            raise ValueError(
                f"schedule='sam' is defined for SGD only: alpha must be 0, got {self.alpha}"
            )
        if not self.combinator.preconditioned and (self.sam_rho != 0.0 or self.sam_a != 1.0):
            raise ValueError("sam_rho and sam_a are only used with schedule='sam'")

    @property
    def batch_forget(self) -> int:
        """The forget batch size B_F actually used (``forget_batch`` or ``batch``)."""
        return self.batch if self.forget_batch is None else self.forget_batch

    @property
    def combinator(self) -> Combinator:
        """How the retain and forget maps combine (:mod:`rmt.combinators`)."""
        return get_combinator(self.schedule)

    @property
    def step_weights(self) -> dict[str, float]:
        """The weights s_S of the step, J ∋ s_S·Ĥ_S: retain −η(1−α) (descent), forget +ηα (ascent)."""
        retain, forget = mixing_weights(self.alpha)
        return {"retain": -self.eta * retain, "forget": self.eta * forget}

    @property
    def uses_retain(self) -> bool:
        return self.alpha < 1.0

    @property
    def uses_forget(self) -> bool:
        return self.alpha > 0.0

    def replace(self, **changes: Any) -> "Schedule":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def validate_for(self, hs: Any) -> None:
        """Check that this schedule can run on HessianSet ``hs`` (batch sizes, forget set)."""
        if self.uses_retain and self.batch > hs.n_retain:
            raise ValueError(
                f"batch must be <= the retain set size n_retain={hs.n_retain}, got {self.batch}"
            )
        if self.uses_forget:
            if not hs.has_forget:
                raise ValueError(
                    f"alpha={self.alpha} > 0 needs a forget set, but the HessianSet has none"
                )
            if self.batch_forget > hs.n_forget:
                name = "forget_batch" if self.forget_batch is not None else "batch (used as forget_batch)"
                raise ValueError(
                    f"{name} must be <= the forget set size n_forget={hs.n_forget}, "
                    f"got {self.batch_forget}; pass forget_batch explicitly to use a smaller "
                    "forget batch"
                )
