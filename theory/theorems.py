"""The catalogue: encoded stability theorems checked against the exact operator (contract §5).

Every statement has the form "for this kind of instance, η on one side of η_thm implies a
conclusion": a **divergence** statement says ρ(T) ≥ 1 (the iterates do not return to w*, the
model *forgets*) once η ≥ η_thm; a **convergence** statement says ρ(T) ≤ 1 (the model *resists*)
once η < η_thm. Each :class:`Theorem` is a :class:`theory.statement.Statement`:

- ``applies(hs, schedule)``: the structural hypothesis (sampling scheme, schedule, α range, …)
  holds *and* the schedule's η is on the theorem's side of η_thm;
- ``threshold(hs, schedule)``: η_thm (``nan`` when the structural hypothesis fails), evaluated
  by :mod:`theory.thresholds` from the sympy derivations of :mod:`theory.derivations`;
- ``check(hs, schedule)``: a :class:`TheoremCheck` comparing with the exact ρ(T) of
  :func:`rmt.mean_square_rate` and the exact critical step size :func:`rmt.critical_eta`;
  tightness = η_thm / η*_exact (≥ 1 for a correct divergence bound, ≤ 1 for a correct
  convergence bound, = 1 when the statement is exact).

Each method takes ``(hs, schedule)``, a :class:`rmt.Dynamics` or an :class:`Instance` (the
Dynamics plus cached spectral quantities, :mod:`theory.instance`); per-set quantities of the step
come from the Dynamics' terms. Sign convention: :data:`rmt.verdict.SIGN_CONVENTION`. Numerical
verdicts use :data:`RATE_TOL` (:mod:`theory.statement`).

**Why a statement does not apply.** The structural hypothesis is a list of named
:class:`Hypothesis` atoms (sampling scheme, schedule, α, …); :meth:`Theorem.why` and
``TheoremCheck.reason`` name the ones that fail with the instance's value, or say that η lies on
the other side of η_thm (then the statement concludes nothing). A statement written for one
sampling scheme never applies to another: its ``analogue`` names the encoded statement that
covers the other schemes (e.g. Dexter's Bernoulli bound → ``unlearning-retain-noise``, proven for
every scheme with the coefficients of contract §2.1).

**Shared work.** :func:`check_all` checks every statement of :func:`theorems` and of
:func:`extra_theorems` (the affine statements, contract §8) on one :class:`Instance`, so ρ(T),
η*, the coherence and the spectra are computed once; callers that already have them pass them
in (``rate=``, ``exact_critical=``, ``coherence=``).

**Statements for every sampling scheme** (real unlearning samples without replacement):
``noise-operator-divergence``, ``unlearning-{retain,forget}-noise`` and their
``-single-sample`` forms (§5.4 with the covariance bound for with/without replacement),
``unlearning-mean-escape`` (divergence) and ``weyl-convergence`` (a proven *convergence*
certificate: ρ(T) ≤ max_k(1 − ηd_k)² + η²ρ_N by Weyl's inequality).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import partial
from typing import Callable

import numpy as np

import rmt
from rmt.verdict import MEAN_SQUARE, verdict_text
from rmt.schedule import Schedule

from . import derivations as dv
from . import thresholds as th
from .derivations import weyl_convergence
from .instance import KRON_MAX_SPAN, Instance, InstanceLike, noise_operator_radius
from .statement import (
    RATE_TOL,
    EncodedStatement,
    Hypotheses,
    Hypothesis,
    Statement,
    StatementCheck,
    as_instance,
    find_statement,
)
from .thresholds import EIG_RTOL, lazy_derivation

__all__ = [
    "RATE_TOL",
    "EIG_RTOL",
    "Theorem",
    "TheoremCheck",
    "MeanSquareVerdict",
    "theorems",
    "get_theorem",
    "check_all",
    "Instance",
    "Hypothesis",
    "KRON_MAX_SPAN",
    "extra_theorems",
    "noise_operator_radius",
    "weyl_convergence",
]


class MeanSquareVerdict:
    """The :mod:`rmt.verdict` vocabulary of a result that carries the exact rate ``rate`` = ρ(T)."""

    rate: float

    @property
    def forgets(self) -> bool:
        """The exact verdict: ρ(T) > 1, the model escapes w* in mean square (forgets)."""
        return bool(self.rate > 1.0)

    @property
    def verdict(self) -> str:
        """:func:`rmt.verdict.verdict_text` of :attr:`forgets`."""
        return verdict_text(self.forgets)

    @property
    def notion(self) -> str:
        """The stability notion of :attr:`forgets`: :data:`rmt.verdict.MEAN_SQUARE`."""
        return MEAN_SQUARE


@dataclass(frozen=True)
class TheoremCheck(StatementCheck, MeanSquareVerdict):
    """Verdict of one theorem on one instance against the exact operator (contract §5).

    ``applies``: the hypothesis holds; ``held``: the conclusion matched the exact ρ(T) (None when
    the theorem does not apply); ``threshold``: the theorem's η_thm; ``exact_critical``: exact η*
    (:func:`rmt.critical_eta`; nan if not computed); ``rate``: exact ρ(T);
    ``tightness`` = threshold / exact_critical; ``reason``: the failed hypotheses with the
    instance's values, or the side of η_thm that η lies on. Common verdict vocabulary
    (:mod:`rmt.verdict`): ``forgets`` is the exact verdict ρ(T) > 1, ``verdict`` its text and
    ``notion`` the mean-square notion that decided it.
    """

    threshold: float
    exact_critical: float
    rate: float
    tightness: float
    eta: float = field(default=float("nan"))
    #: the encoded statement that covers the schemes/schedules this one is not written for
    analogue: str = field(default="", compare=False)


def _tightness(thr: float, exact: float) -> float:
    if not (np.isfinite(exact) or exact == math.inf) or np.isnan(thr) or np.isnan(exact):
        return float("nan")
    if exact == 0.0:
        return 1.0 if thr == 0.0 else math.inf
    if exact == math.inf:
        return 1.0 if thr == math.inf else 0.0
    return float(thr / exact)


@dataclass(frozen=True, eq=False)
class Theorem(EncodedStatement):
    """One encoded stability statement (see the module docstring for the common form).

    Fields of :class:`theory.statement.EncodedStatement` plus ``derivation`` (the sympy
    :class:`~theory.derivations.Derivation` of η_thm, built on first use), the structural test
    (:class:`~theory.statement.Hypotheses`), the η_thm function of :mod:`theory.thresholds`,
    ``notes`` and ``analogue``.
    """

    derivation: dv.Derivation | lazy_derivation = field(repr=False)
    _pre: Hypotheses = field(repr=False)
    _eta: Callable[[Instance], float] = field(repr=False)
    notes: str = ""
    #: where instances outside this statement's hypotheses are covered ("" if nowhere)
    analogue: str = ""

    @property
    def requirements(self) -> dict:
        """Keyword arguments of :func:`rmt.testing.instances` that generate structurally
        admissible instances (used by :func:`theory.counterexample.theorem_instances`): the
        merged ``requires`` of the hypotheses."""
        return self._pre.requires

    @property
    def hypotheses(self) -> tuple[Hypothesis, ...]:
        """The named structural hypotheses (:class:`Hypothesis`), in order."""
        return self._pre.atoms

    def structural(self, hs: InstanceLike, schedule: Schedule | None = None) -> bool:
        """The structural part of the hypothesis (everything except the η inequality)."""
        return bool(self._pre(as_instance(hs, schedule)))

    def threshold(self, hs: InstanceLike, schedule: Schedule | None = None) -> float:
        """η_thm for this instance (nan when the structural hypothesis fails)."""
        inst = as_instance(hs, schedule)
        if not self._pre(inst):
            return float("nan")
        return float(self._eta(inst))

    def applies(self, hs: InstanceLike, schedule: Schedule | None = None) -> bool:
        """The hypothesis holds: structural part and η ≥ η_thm (divergence) / η < η_thm."""
        inst = as_instance(hs, schedule)
        thr = self.threshold(inst)
        if np.isnan(thr):
            return False
        eta = inst.schedule.eta
        return bool(eta >= thr) if self.conclusion == "diverges" else bool(eta < thr)

    def holds_for_rate(self, rate: float) -> bool:
        """Whether the conclusion is consistent with an exact rate ρ(T)."""
        if self.conclusion == "diverges":
            return bool(rate >= 1.0 - RATE_TOL)
        return bool(rate <= 1.0 + RATE_TOL)

    def why(self, hs: InstanceLike, schedule: Schedule | None = None) -> str:
        """Why the statement applies or not on this instance (one sentence).

        Names every failed structural hypothesis with the instance's value (and the
        :attr:`analogue` that covers it), or compares η with η_thm.
        """
        inst = as_instance(hs, schedule)
        failed = self._pre.failures(inst)
        if failed:
            text = "hypothesis not met: " + "; ".join(t for t, _ in failed)
            if self.analogue and any(routable for _, routable in failed):
                text += f" — {self.analogue}"
            return text
        thr = float(self._eta(inst))
        eta = inst.schedule.eta
        side = "divergence" if self.conclusion == "diverges" else "convergence"
        if np.isnan(thr):
            return "the threshold is undefined on this instance"
        if self.applies(inst):
            rel = ">=" if self.conclusion == "diverges" else "<"
            return f"hypotheses hold and η = {eta:.6g} {rel} η_thm = {thr:.6g}"
        if math.isinf(thr) and self.conclusion == "diverges":
            return ("the bound gives no finite η_thm here (η_thm = inf: e.g. a full batch or "
                    "identical Hessians leave no sampling noise to bound), so it never concludes "
                    "divergence on this instance")
        rel = "<" if self.conclusion == "diverges" else ">="
        return (f"η = {eta:.6g} {rel} η_thm = {thr:.6g}: the {side} condition is not met, so the "
                "statement concludes nothing here")

    def check(self, hs: InstanceLike, schedule: Schedule | None = None, *, critical: bool = True) -> TheoremCheck:
        """Compare with the exact operator; ``critical=False`` skips η*_exact (and tightness)."""
        inst = as_instance(hs, schedule)
        applies = self.applies(inst)
        thr = self.threshold(inst)
        rate = inst.rate
        held = self.holds_for_rate(rate) if applies else None
        if critical and not np.isnan(thr):
            exact = inst.exact_critical
            tight = _tightness(thr, exact)
        else:
            exact, tight = float("nan"), float("nan")
        return TheoremCheck(self.name, applies, held, threshold=thr, exact_critical=exact,
                            rate=rate, tightness=tight, eta=inst.schedule.eta,
                            reason=self.why(inst), analogue=self.analogue, status=self.status,
                            conclusion=self.conclusion)


# ---------------------------------------------------------------------- named hypotheses
def _sched(i: Instance) -> str:
    return i.schedule.schedule


H_SUMMED = Hypothesis("summed schedule", lambda i: i.schedule.combinator.self_adjoint,
                      lambda i: f"schedule={_sched(i)!r}", routable=True,
                      requires={"schedule_kinds": ("summed",)})
H_SGD = Hypothesis("plain SGD: α = 0 and no SAM (the retain set alone enters the step)",
                   lambda i: i.sgd, lambda i: f"alpha={i.schedule.alpha:g}, schedule={_sched(i)!r}",
                   routable=True, requires={"alphas": "sgd"})
H_BERNOULLI = Hypothesis("Bernoulli sampling", lambda i: i.schedule.sampling == "bernoulli",
                         lambda i: f"sampling={i.schedule.sampling!r}", routable=True,
                         requires={"samplings": ("bernoulli",)})
H_WOR = Hypothesis("sampling without replacement",
                   lambda i: i.schedule.sampling == "without_replacement",
                   lambda i: f"sampling={i.schedule.sampling!r}", routable=True,
                   requires={"samplings": ("without_replacement",)})
H_NOT_BERNOULLI = Hypothesis("sampling with or without replacement",
                             lambda i: i.schedule.sampling != "bernoulli",
                             lambda i: f"sampling={i.schedule.sampling!r}", routable=True,
                             requires={"samplings": ("with_replacement", "without_replacement")})
H_SAM = Hypothesis("SAM schedule", lambda i: i.schedule.combinator.preconditioned,
                   lambda i: f"schedule={_sched(i)!r}", routable=True,
                   requires={"schedule_kinds": ("sam",)})
H_RETAIN = Hypothesis("the retain set enters the step (α < 1)",
                      lambda i: i.term("retain") is not None,
                      lambda i: f"alpha={i.schedule.alpha:g}")
H_FORGET = Hypothesis("the forget set enters the step (α > 0, not SAM)",
                      lambda i: i.term("forget") is not None,
                      lambda i: f"alpha={i.schedule.alpha:g}, schedule={_sched(i)!r}",
                      requires={"alphas": "unlearning"})
H_RETAIN_SAMPLED = Hypothesis(
    "a retain batch smaller than the retain set (B < n_R: otherwise no sampling noise)",
    lambda i: not th.retain_full_batch(i),
    lambda i: f"B={th.required_term(i).batch}, n_R={th.required_term(i).n}")
H_CONSTRUCTION = Hypothesis(
    "retain Hessians are identical rank-one matrices plus zeros (Dexter Thm 2 construction)",
    th.is_construction, lambda i: "a generic retain set", requires={"kinds": ("construction",)})
H_D_POSITIVE = Hypothesis(
    "D = (1−α)H̄_R − αH̄_F positive definite on the span",
    lambda i: i.d_extremes[0] > th.EIG_RTOL * i.d_extremes[2],
    lambda i: f"λ_min(D) = {i.d_extremes[0]:.3g}")


# ---------------------------------------------------------------------- the catalogue
_ANA_RETAIN = ("other schemes and α > 0: see unlearning-retain-noise (contract §5.4, proven for every "
               "sampling scheme with the coefficients of §2.1)")
_ANA_SINGLE = ("other schemes and α > 0: see unlearning-retain-noise-single-sample (contract §5.4, "
               "proven for every sampling scheme)")
_ANA_MEAN = "unlearning (α > 0): see unlearning-mean-escape (λ_min(D) < 0 or η > 2/λ_max(D))"
_ANA_NOISE = ("every scheme and α: see noise-operator-divergence (the operator form, proven) and "
              "unlearning-retain-noise")
_ANA_SUMMED = "alternating/SAM schedules: no encoded analogue (the summed-schedule proof uses T ⪰ E[J]⊗E[J] + Σ_S s_S²N_S)"


def _build():
    T = []
    T.append(Theorem(
        "dexter-thm1", "Dexter et al. 2024, Theorem 1 (reconstructed in contract §5.1)",
        "Bernoulli SGD (α = 0), η ≥ σ/(λ_max(H̄)√(n/B − 1))", "diverges", "proven", "§5.1",
        lazy_derivation(dv.dexter_thm1), Hypotheses(H_SGD, H_BERNOULLI),
        th.dexter_thm1_eta,
        analogue=_ANA_RETAIN,
    ))
    T.append(Theorem(
        "dexter-thm1-single-sample", "Dexter et al. 2024, proof of Theorem 1 (contract §5.1) [der]",
        "Bernoulli SGD, η ≥ n/(max_i λ_max(H_i)·√(n/B − 1))", "diverges", "proven", "§5.1",
        lazy_derivation(dv.dexter_single_sample), Hypotheses(H_SGD, H_BERNOULLI),
        th.dexter_single_sample_eta,
        analogue=_ANA_SINGLE,
    ))
    T.append(Theorem(
        "dexter-thm2-construction", "Dexter et al. 2024, Theorem 2 construction (contract §5.2)",
        "SGD on σ identical rank-one Hessians (λn/σ)e₁e₁ᵀ plus zeros, η < η*(construction)",
        "converges", "proven", "§5.2", lazy_derivation(dv.dexter_thm2_condition, "bernoulli"),
        Hypotheses(H_SGD, H_CONSTRUCTION), th.thm2_eta,
        notes="Exact (iff): tightness is 1. Bernoulli is Dexter's; the other schemes are derived "
              "from the same per-direction condition.",
        analogue="a special construction: real models are not of this form",
    ))
    T.append(Theorem(
        "wu-ma-e-sharpness", "Wu, Ma & E 2018 (contract §5.3)",
        "SGD (α = 0, summed), any scheme, η ≥ 2/λ_max(H̄)", "diverges", "proven", "§5.3",
        lazy_derivation(dv.wu_ma_e_sharpness), Hypotheses(H_SGD, H_SUMMED),
        th.sharpness_eta,
        analogue=_ANA_MEAN,
    ))
    T.append(Theorem(
        "wu-ma-e-nonuniformity", "Wu, Ma & E 2018 (contract §5.3), literal d-dimensional form",
        "SGD without replacement, η ≥ √(B(n−1)/(n−B))/s, s² = λ_max((1/n)ΣH_i² − H̄²)",
        "diverges", "conjecture", "§5.3", lazy_derivation(dv.wu_ma_e_nonuniformity),
        Hypotheses(H_SGD, H_SUMMED, H_WOR, H_RETAIN_SAMPLED),
        th.nonuniformity_eta,
        notes="Refuted for d > 1 by the exact operator (docs/theory.md, findings): λ_max(E[JᵀJ]) "
              "upper-bounds ρ(T), it does not lower-bound it. Exact in d = 1.",
        analogue=_ANA_NOISE,
    ))
    T.append(Theorem(
        "noise-operator-divergence", "derived (contract §5.4; operator form of Wu–Ma–E §5.3)",
        "summed schedule, any scheme, η ≥ 1/√ρ((1−α)²N_R + α²N_F)", "diverges", "proven", "§5.4",
        lazy_derivation(dv.noise_operator_threshold), Hypotheses(H_SUMMED), th.noise_operator_eta,
        notes="T − η²((1−α)²N_R + α²N_F) = E[J]⊗E[J] is cone-preserving, so "
              "ρ(T) ≥ η²ρ_N with ρ_N the spectral radius of the noise operator.",
        analogue=_ANA_SUMMED,
    ))
    for which, letter, label in (("retain", "a", "retain"), ("forget", "b", "forget")):
        w = "(1−α)" if which == "retain" else "α"
        enters = H_RETAIN if which == "retain" else H_FORGET
        T.append(Theorem(
            f"unlearning-{label}-noise", f"Chang & Khanna 2026 / contract §5.4 ({letter}) [der]",
            f"summed schedule; Bernoulli: η{w}λ̄_S√(n_S/B_S − 1) ≥ σ_S; with/without "
            f"replacement: η²{w}²c_S λ̄_S²(n_S/σ_S − 1)²/(n_S − 1) ≥ 1 (σ_S < n_S)",
            "diverges", "proven", "§5.4", lazy_derivation(dv.unlearning_noise_condition, "bernoulli", which),
            Hypotheses(H_SUMMED, enters),
            partial(th.noise_threshold, which=which),
            analogue=_ANA_SUMMED,
        ))
    for which, letter, label in (("retain", "a", "retain"), ("forget", "b", "forget")):
        w = "(1−α)" if which == "retain" else "α"
        enters = H_RETAIN if which == "retain" else H_FORGET
        T.append(Theorem(
            f"unlearning-{label}-noise-single-sample",
            f"contract §5.4 ({letter}), single-sample step (before the coherence bound) [der]",
            f"summed schedule, L_S = max_i λ_max(H_i); Bernoulli: η{w}L_S√(c_S/n_S) ≥ 1; "
            f"with/without replacement: η²{w}²c_S(L_S − λ̄_S)²/(n_S − 1) ≥ 1 (L_S > λ̄_S)",
            "diverges", "proven", "§5.4", lazy_derivation(dv.unlearning_noise_condition, "bernoulli", which, "single"),
            Hypotheses(H_SUMMED, enters),
            partial(th.noise_threshold, which=which, form="single"),
            notes="Sharper than the coherence form (L_S ≥ n_Sλ̄_S/σ_S); the proof is the middle "
                  "step of contract §5.1 with the covariance bound of §5.4 for the other schemes.",
            analogue=_ANA_SUMMED,
        ))
    T.append(Theorem(
        "unlearning-mean-escape", "Chang & Khanna 2026 / contract §5.4 (c) [der]",
        "summed schedule, any scheme, ρ(I − ηD) > 1 (λ_min(D) < 0 on the span, or η > 2/λ_max(D))",
        "diverges", "proven", "§5.4", lazy_derivation(dv.unlearning_mean_escape), Hypotheses(H_SUMMED), th.mean_escape_eta,
        analogue=_ANA_SUMMED,
    ))
    T.append(Theorem(
        "weyl-convergence", "derived (contract §3, §5.4): Weyl's inequality for T = E[J]⊗E[J] + noise",
        "summed schedule, any scheme, D ≻ 0 on the span, η < min_{d ∈ {λ_min(D), λ_max(D)}} "
        "2d/(d² + ρ_N), ρ_N = ρ((1−α)²N_R + α²N_F)", "converges", "proven", "§5.4",
        lazy_derivation(dv.weyl_convergence), Hypotheses(H_SUMMED, H_D_POSITIVE), th.weyl_eta,
        notes="A proven sufficient condition for resisting (ρ(T) ≤ 1) that holds for every "
              "sampling scheme; exact for one curvature direction. The noise radius ρ_N is "
              "computed matrix-free above KRON_MAX_SPAN.",
        analogue=_ANA_SUMMED,
    ))
    T.append(Theorem(
        "sam-divergence", "Chang & Khanna 2025 (SAM vs SGD), contract §5.6 [der]",
        "SAM, Bernoulli, η ≥ σ/((1 + (ρ/a)λ_min(H̄))·λ_max(H̄)√(n/B − 1)), λ_min on the span",
        "diverges", "proven", "§5.6", lazy_derivation(dv.sam_threshold), Hypotheses(H_SAM, H_BERNOULLI), th.sam_eta,
        analogue="SAM only; no encoded analogue for other sampling schemes",
    ))
    # ------------------------------------------------------------------ conjectures
    T.append(Theorem(
        "naive-mean-stability", "folklore (false; the acceptance test of the catalogue)",
        "summed schedule, D ≻ 0 on the span and η·λ_max(D) < 2", "converges", "conjecture",
        "§5.4", lazy_derivation(dv.unlearning_mean_escape), Hypotheses(H_SUMMED, H_D_POSITIVE),
        th.naive_mean_eta,
        notes="Ignores the sampling noise; refuted by small batches with low coherence.",
        analogue=_ANA_SUMMED,
    ))
    T.append(Theorem(
        "unlearning-retain-noise-scheme-analogue",
        "contract §5.4 (a) with the Bernoulli coefficient n/B − 1 replaced by n·c(scheme)",
        "summed, with/without replacement, η(1−α)λ̄_R√(n_R c_R) ≥ σ_R", "diverges", "conjecture",
        "§5.4", lazy_derivation(dv.scheme_analogue_threshold), Hypotheses(H_SUMMED, H_RETAIN, H_NOT_BERNOULLI),
        th.scheme_analogue_eta,
        notes="The single-sample step uses C(M) ⪰ (1/n)H_iMH_i, which fails for the covariance "
              "operator C of these schemes.",
        analogue="Bernoulli: see unlearning-retain-noise (the statement this one copies)",
    ))
    T.append(Theorem(
        "paper-coherence-sum", "Chang & Khanna 2026 §5.5 candidate A (within-set coherences add)",
        "summed, Bernoulli, η²[(1−α)²(n_R/B−1)λ̄_R²/σ_R² + α²(n_F/B_F−1)λ̄_F²/σ_F²] ≥ 1",
        "diverges", "conjecture", "§5.5", lazy_derivation(dv.coherence_sum_threshold),
        Hypotheses(H_SUMMED, H_BERNOULLI), th.coherence_sum_eta,
        notes="Refuted (docs/theory.md, findings; examples.coherence_sum_counterexample()): each "
              "set's Dexter-type bound lower-bounds ρ(T) through a different test matrix, so the "
              "two cannot be added — ρ(N_R + N_F) ≥ max, not the sum.",
        analogue="stated (and refuted) for Bernoulli only; no analogue encoded for other schemes",
    ))
    T.append(Theorem(
        "paper-coherence-resistance",
        "Chang & Khanna 2026 §5.5 candidate B (Thm-2 form with mixed coherence)",
        "summed, Bernoulli, D ≻ 0, η < (2/λ_max(D))/[1 + (1−α)²(n_R/B−1)/σ_R + α²(n_F/B_F−1)/σ_F]",
        "converges", "conjecture", "§5.5", lazy_derivation(dv.coherence_resistance_threshold),
        Hypotheses(H_SUMMED, H_D_POSITIVE, H_BERNOULLI), th.coherence_resistance_eta,
        analogue="stated (and refuted) for Bernoulli only; no analogue encoded for other schemes",
    ))
    return tuple(T)


_THEOREMS: tuple[Theorem, ...] | None = None


def theorems(status: str | None = None) -> list[Theorem]:
    """Every encoded statement of contract §5, optionally filtered by ``status``."""
    global _THEOREMS
    if status not in (None, "proven", "conjecture"):
        raise ValueError(f"status must be None, 'proven' or 'conjecture', got {status!r}")
    if _THEOREMS is None:
        _THEOREMS = _build()
    return [t for t in _THEOREMS if status is None or t.status == status]


def get_theorem(name: str) -> Theorem:
    """The theorem called ``name``."""
    return find_statement(theorems(), name)


def extra_theorems() -> list[Statement]:
    """The statements of the other families that :func:`check_all` checks by default: the
    affine statements ``theory.affine.AFFINE_THEOREMS`` (contract §8).

    Only the absence of the module ``theory.affine`` itself yields []: an error inside it (or in
    anything it imports) propagates.
    """
    try:
        import theory.affine as affine
    except ModuleNotFoundError as exc:
        if exc.name != "theory.affine":
            raise
        return []
    return list(affine.AFFINE_THEOREMS)


def check_all(hs: InstanceLike, schedule: Schedule | None = None,
              thms: list[Statement] | None = None, *, critical: bool = True,
              rate: float | None = None, exact_critical: float | None = None,
              coherence: rmt.CoherenceResult | None = None) -> list[StatementCheck]:
    """Check several statements on one instance, sharing ρ(T) and η*_exact.

    ``hs`` may be a :class:`rmt.Dynamics` (then ``schedule`` is None) or an :class:`Instance`.
    ``thms``: default every statement of :func:`theorems` plus :func:`extra_theorems`.
    ``rate``/``exact_critical``/``coherence``: values already computed for this dynamics (see
    :class:`Instance`). Returns one check result per statement, in order.
    """
    inst = as_instance(hs, schedule)
    inst.supply(rate=rate, exact_critical=exact_critical, coherence=coherence)
    if thms is None:
        thms = [*theorems(), *extra_theorems()]
    return [t.check(inst, critical=critical) for t in thms]
