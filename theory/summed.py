"""Summed-schedule statements §10.1–10.4, checked numerically on an instance (docs/contract.md §10).

For the summed schedule J = I − ηG with G = (1−α)Ĥ_R − αĤ_F symmetric, so the mean-square
operator T(X) = E[J X J] on Sym_r (span coordinates, ⟨X, Y⟩ = tr(XY)) is

    T(η) = I − η𝒜 + η²𝒬,      𝒜(X) = DX + XD (D = E[G]),      𝒬(X) = E[G X G]

(sympy: :func:`theory.derivations.summed_operator_expansion`). The statements, copied from
docs/contract.md §10:

- ``summed-self-adjoint`` (10.1): T is self-adjoint and positive; ρ(T) = λ_max(T);
- ``summed-convexity`` (10.2): ρ(T) is convex in α and in η;
- ``summed-closed-form-eta`` (10.3): η* = 1/λ_max(𝒜⁻¹𝒬) when D ≻ 0 on the span, 0 when D has a
  negative eigenvalue there;
- ``summed-monotone-batch`` (10.4): ρ(T) is non-increasing in B_R and in B_F.

Each :class:`SummedStatement` is a :class:`theory.statement.Statement`: ``applies(hs,
schedule)`` (True iff the schedule is ``"summed"``), ``why`` and ``check(hs, schedule, *,
critical=True, rng=None, seed=0)``, which returns a :class:`SummedCheck` (``applies``,
``held``, ``numbers``, ``reason``). The checks use only
rmt's public :class:`rmt.meansquare.MeanSquareOperator` (``apply`` and ``r``),
:func:`rmt.mean_square_rate` and, for 10.3, compare with :func:`rmt.critical_eta`; ``held`` is
None when the check could not be run (span too large for the dense Sym_r matrix, or a boundary case the statement leaves open).

The closed form of 10.3 is computed by :mod:`theory.summed_closed_form` (pencil route).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

import rmt
from rmt.dynamics import as_dynamics
from rmt.meansquare import MeanSquareOperator
from rmt.schedule import Schedule

from .instance import InstanceLike
from .statement import Statement, StatementCheck, as_dynamics_of, find_statement
from .summed_closed_form import EIG_RTOL, _sym_matrix, closed_form_eta, sym_basis

__all__ = [
    "HYPOTHESES",
    "SYM_MAX_SPAN",
    "SummedCheck",
    "SummedStatement",
    "closed_form_eta",
    "EIG_RTOL",
    "summed_statements",
    "get_summed_statement",
    "sym_basis",
]

#: Largest span r for which a check builds the dense r(r+1)/2-square matrix of T on Sym_r.
SYM_MAX_SPAN = 32
#: Tolerances (docs/contract.md §10 numbers; never loosened to make a check pass).
SELF_ADJOINT_RTOL = 1e-12
POSITIVITY_RTOL = 1e-12
CONVEXITY_RTOL = 1e-9
ETA_RTOL = 1e-9
MONOTONE_RTOL = 1e-9

HYPOTHESES = (
    "summed schedule: J = I − ηG, G = (1−α)Ĥ_R − αĤ_F symmetric (not alternating, not SAM)",
    "any sampling scheme (bernoulli, with_replacement, without_replacement), any B_R, B_F",
    "any curvature representation: rank-one, rank-k factors, dense, commuting, shared curvature",
)


@dataclass(frozen=True)
class SummedCheck(StatementCheck):
    """Outcome of one §10 statement on one instance (docs/contract.md §10).

    ``applies``: the schedule is summed; ``held``: the numerical verification passed (None when
    it does not apply or could not be run); ``numbers``: the measured quantities (errors, rates,
    η*); ``reason``: one sentence saying why.
    """

    numbers: dict = field(default_factory=dict, compare=False)


#: check(hs, schedule, rng) → (held, numbers, reason)
SummedVerification = Callable[..., "tuple[bool | None, dict, str]"]


@dataclass(frozen=True, eq=False)
class SummedStatement(Statement):
    """One statement of docs/contract.md §10 with its numerical check."""

    name: str
    section: str
    statement: str
    _check: SummedVerification = field(repr=False)
    status: str = "proven"
    hypotheses: ClassVar[tuple[str, ...]] = HYPOTHESES

    def applies(self, hs: InstanceLike, schedule: Schedule | None = None) -> bool:
        """True iff the schedule is ``"summed"`` (every scheme, batch and representation)."""
        return as_dynamics_of(hs, schedule).combinator.self_adjoint

    def why(self, hs: InstanceLike, schedule: Schedule | None = None) -> str:
        """Why the statement applies or not (one sentence)."""
        dyn = as_dynamics_of(hs, schedule)
        got = dyn.schedule.schedule
        if dyn.combinator.self_adjoint:
            return "hypotheses hold: summed schedule (J affine in η and α, G symmetric)"
        detail = {"alternating": "J = (I + ηαĤ_F)(I − η(1−α)Ĥ_R) is quadratic in η and α",
                  "sam": "J = I − ηĤ_R K with ĤK not symmetric"}.get(got, "J is not I − ηG")
        return (f"hypothesis not met: summed schedule (got schedule={got!r}: {detail}, so T need "
                "not be self-adjoint and ρ need not be convex)")

    def check(self, hs: InstanceLike, schedule: Schedule | None = None, *, critical: bool = True,
              rng: np.random.Generator | None = None, seed: int = 0) -> SummedCheck:
        """Verify the statement numerically on the instance (docs/contract.md §10). The random
        test matrices come from ``rng`` (default: a generator seeded with ``seed``);
        ``critical`` is accepted for the common interface (10.3 always compares with η*)."""
        dyn = as_dynamics_of(hs, schedule)
        if not self.applies(dyn):
            return SummedCheck(self.name, False, None, reason=self.why(dyn))
        rng = np.random.default_rng(seed) if rng is None else rng
        held, numbers, reason = self._check(dyn.hs, dyn.schedule, rng)
        return SummedCheck(self.name, True, held, numbers, reason=reason)


def _random_sym(rng: np.random.Generator, r: int) -> np.ndarray:
    A = rng.standard_normal((r, r))
    return A + A.T


def _too_large(r):
    return (None, {"span_dim": r},
            f"span r = {r} > SYM_MAX_SPAN = {SYM_MAX_SPAN}: the dense Sym_r matrix is not built")


def _rate(hs, sch):
    return float(rmt.mean_square_rate(hs, sch))


# ---------------------------------------------------------------------- 10.1
def _check_self_adjoint(hs, sch, rng):
    op = MeanSquareOperator(hs, sch)
    r = op.r
    adj = 0.0
    for _ in range(4):
        X, Y = _random_sym(rng, r), _random_sym(rng, r)
        TX, TY = op.apply(X), op.apply(Y)
        scale = np.linalg.norm(X) * np.linalg.norm(TY) + np.linalg.norm(TX) * np.linalg.norm(Y)
        adj = max(adj, abs(np.sum(X * TY) - np.sum(TX * Y)) / scale)
    pos = 0.0
    for k in sorted({1, 2, r}):
        Z = rng.standard_normal((r, k))
        TX = op.apply(Z @ Z.T)
        lam = np.linalg.eigvalsh(TX)
        pos = max(pos, -lam[0] / max(abs(lam[-1]), np.finfo(float).tiny))
    numbers = {"span_dim": r, "self_adjoint_error": adj, "positivity_violation": max(pos, 0.0)}
    held = adj <= SELF_ADJOINT_RTOL and pos <= POSITIVITY_RTOL
    if r <= SYM_MAX_SPAN:
        T = _sym_matrix(op)
        lam, V = np.linalg.eigh(0.5 * (T + T.T))
        top = max(lam[-1], op.null_rate or -math.inf)
        exact = _rate(hs, sch)
        numbers.update(
            matrix_asymmetry=float(np.linalg.norm(T - T.T) / np.linalg.norm(T)),
            lambda_max=float(lam[-1]), lambda_min=float(lam[0]), rate=exact,
            rate_error=abs(top - exact) / max(exact, np.finfo(float).tiny))
        held = (held and numbers["matrix_asymmetry"] <= SELF_ADJOINT_RTOL
                and lam[-1] >= -lam[0] - 1e-12 * abs(lam[0]) and numbers["rate_error"] <= 1e-9)
        if len(lam) == 1 or lam[-1] - lam[-2] > 1e-8 * abs(lam[-1]):  # simple: Perron X is PSD
            X = np.einsum("a,aij->ij", V[:, -1], sym_basis(r))
            x = np.linalg.eigvalsh(X)
            x = x if x[-1] >= -x[0] else -x[::-1]
            numbers["perron_negativity"] = float(max(-x[0], 0.0) / x[-1])
            held = held and numbers["perron_negativity"] <= 1e-9
    reason = ("⟨X, T(Y)⟩ = ⟨T(X), Y⟩ and T(X) ⪰ 0 for X ⪰ 0" + ("" if held else " FAILED")
              + f" (relative errors {adj:.1e}, {pos:.1e})")
    return bool(held), numbers, reason


# ---------------------------------------------------------------------- 10.2
def _worst_second_difference(values):
    f = np.asarray(values)
    d2 = f[:-2] - 2 * f[1:-1] + f[2:]
    scale = np.maximum(np.maximum(abs(f[:-2]), abs(f[1:-1])), abs(f[2:]))
    return float(np.min(d2 / scale))


def _check_convexity(hs, sch, rng):
    numbers = {}
    etas = sch.eta * np.arange(1, 9) / 4  # η/4 … 2η, uniform
    numbers["eta_grid"] = tuple(float(e) for e in etas)
    numbers["worst_eta"] = _worst_second_difference([_rate(hs, sch.replace(eta=e)) for e in etas])
    worst = numbers["worst_eta"]
    if hs.has_forget:
        # interior α only: at α = 0 or 1 a set leaves the step and the span changes
        alphas = np.linspace(0.05, 0.95, 7)
        numbers["alpha_grid"] = tuple(float(a) for a in alphas)
        numbers["worst_alpha"] = _worst_second_difference(
            [_rate(hs, sch.replace(alpha=a)) for a in alphas])
        worst = min(worst, numbers["worst_alpha"])
    held = worst >= -CONVEXITY_RTOL
    reason = (f"worst relative second difference of ρ on the η{' and α' if hs.has_forget else ''} "
              f"grids: {worst:.2e} (tolerance −{CONVEXITY_RTOL:g})")
    return bool(held), numbers, reason


# ---------------------------------------------------------------------- 10.3
def _check_closed_form_eta(hs, sch, rng):
    dyn = as_dynamics(hs, sch)
    if dyn.r > SYM_MAX_SPAN:
        return _too_large(dyn.r)
    closed, case = closed_form_eta(dyn)
    numbers = {"eta_closed_form": closed, "case": case}
    ref = float(rmt.critical_eta(hs, sch))
    numbers["eta_critical"] = ref
    if case == "neutral":
        return None, numbers, ("D is singular on the span and G vanishes on its kernel: the "
                               "neutral boundary case (rate exactly 1 there), not decided by "
                               f"10.3; rmt.critical_eta = {ref:.6g}")
    if closed in (0.0, math.inf) or ref in (0.0, math.inf):
        err = 0.0 if closed == ref else math.inf
    else:
        err = abs(closed - ref) / ref
        op = MeanSquareOperator(hs, sch.replace(eta=closed))
        T = _sym_matrix(op)
        numbers["lambda_max_at_eta_closed_form"] = float(np.linalg.eigvalsh(0.5 * (T + T.T))[-1])
    numbers["relative_error"] = err
    held = err <= ETA_RTOL
    return bool(held), numbers, (f"η* = 1/λ_max(𝒜⁻¹𝒬) = {closed:.12g} ({case}) vs "
                                 f"rmt.critical_eta = {ref:.12g}: relative error {err:.1e}")


# ---------------------------------------------------------------------- 10.4
def _batches(n):
    return sorted({int(b) for b in np.linspace(1, n, min(n, 8)).round()})


def _check_monotone_batch(hs, sch, rng):
    BF = sch.batch_forget
    numbers = {}
    worst = -math.inf
    sets = []
    if sch.alpha < 1:
        sets.append(("B_R", hs.n_retain, lambda b: sch.replace(batch=b, forget_batch=BF)))
    if sch.alpha > 0:
        sets.append(("B_F", hs.n_forget, lambda b: sch.replace(forget_batch=b)))
    for label, n, make in sets:
        bs = _batches(n)
        rates = np.array([_rate(hs, make(b)) for b in bs])
        rise = float(np.max(np.diff(rates) / rates[:-1], initial=-math.inf))
        numbers[label] = {"batches": tuple(bs), "rates": tuple(float(x) for x in rates),
                          "worst_relative_increase": rise}
        worst = max(worst, rise)
    held = worst <= MONOTONE_RTOL
    return bool(held), numbers, (f"largest relative increase of ρ between consecutive batch sizes "
                                 f"({', '.join(s[0] for s in sets)}): {worst:.2e}")


# ---------------------------------------------------------------------- registry
_STATEMENTS = (
    SummedStatement(
        "summed-self-adjoint", "§10.1",
        "T is self-adjoint on Sym_r and positive (X ⪰ 0 ⇒ T(X) ⪰ 0). Hence ρ(T) is its largest "
        "eigenvalue, its eigenvector is PSD, and ρ(T) = max over X ⪰ 0, ‖X‖_F = 1 of "
        "E‖X^{1/2} J X^{1/2}‖_F². (On antisymmetric matrices T has no larger radius: for a "
        "positive map ‖T^k‖ = ‖T^k(I)‖.)",
        _check_self_adjoint),
    SummedStatement(
        "summed-convexity", "§10.2",
        "For fixed X ⪰ 0 the expression above is a convex quadratic in any parameter on which J "
        "depends affinely. So ρ(T) is convex in α (η, B fixed) and convex in η (α, B fixed). "
        "Consequences: the stable α-set is one interval; the stable η-set is (0, η*) or empty "
        "(ρ = 1 at η = 0). No scan can miss a window. Not true for alternating or SAM (J not "
        "affine).",
        _check_convexity),
    SummedStatement(
        "summed-closed-form-eta", "§10.3",
        "Write T(η) = I − η𝒜 + η²𝒬, 𝒜(X) = DX + XD (D = E[G], the mixed Hessian), "
        "𝒬(X) = E[G X G]. Then ρ(T) < 1 ⇔ η²𝒬 − η𝒜 ≺ 0 on Sym_r. If D ≻ 0 on the span: "
        "η* = 1 / λ_max(𝒜⁻¹𝒬) (∞ if that is ≤ 0). If D has an eigenvalue < 0 on the span "
        "(eigenvector u): X = uuᵀ shows every η > 0 is unstable, η* = 0. If D ⪰ 0 is singular on "
        "the span: directions with d_i = 0 are unstable for every η unless uᵀGu = 0 almost "
        "surely (then neutral, rate exactly 1).",
        _check_closed_form_eta),
    SummedStatement(
        "summed-monotone-batch", "§10.4",
        "For each scheme T = T_mean + c(B)·𝒩 with c(B) ≥ 0 decreasing in B (bernoulli "
        "(n−B)/(Bn), with replacement 1/B, without (n−B)/(B(n−1))) and ⟨X, 𝒩X⟩ ≥ 0 for X ⪰ 0 "
        "(a variance). With 10.1, ρ(T) is non-increasing in B_R and in B_F (and convex in c): "
        "the stable batches are {B ≥ B*}.",
        _check_monotone_batch),
)


def summed_statements() -> list[SummedStatement]:
    """The statements §10.1–10.4 of docs/contract.md, in order."""
    return list(_STATEMENTS)


def get_summed_statement(name: str) -> SummedStatement:
    """The statement called ``name`` (e.g. ``"summed-convexity"``)."""
    return find_statement(_STATEMENTS, name)
