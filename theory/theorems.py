"""Theorem objects: encoded stability statements checked against the exact operator (THEORY §5).

Every statement has the form "for this kind of instance, η on one side of η_thm implies a
conclusion": a **divergence** statement says ρ(T) ≥ 1 (the iterates do not return to w*, the
model *forgets*) once η ≥ η_thm; a **convergence** statement says ρ(T) ≤ 1 (the model *resists*)
once η < η_thm. So every theorem has the same interface:

- ``applies(hs, schedule)``: the structural hypothesis (sampling scheme, schedule, α range, …)
  holds *and* the schedule's η is on the theorem's side of η_thm;
- ``threshold(hs, schedule)``: η_thm (``nan`` when the structural hypothesis fails);
- ``check(hs, schedule)``: a :class:`TheoremCheck` comparing with the exact ρ(T) of
  :func:`rmt.mean_square_rate` and the exact critical step size :func:`rmt.critical_eta`;
  tightness = η_thm / η*_exact (≥ 1 for a correct divergence bound, ≤ 1 for a correct
  convergence bound, = 1 when the statement is exact).

Each method takes ``(hs, schedule)``, a :class:`rmt.Dynamics` or an :class:`Instance` (the
Dynamics plus cached spectral quantities); per-set quantities of the step come from the
Dynamics' terms. Sign convention: :data:`rmt.verdict.SIGN_CONVENTION`.

Numerical verdicts use :data:`RATE_TOL`: "diverges" holds when ρ(T) ≥ 1 − RATE_TOL and
"converges" when ρ(T) ≤ 1 + RATE_TOL (ρ is dimensionless; the tolerance only absorbs the
eigensolver's round-off at the boundary where the statements are stated with "≥").
Eigenvalue conditions (λ_min(D) < 0, D ≻ 0) are evaluated on the span of the active Hessians with
a tolerance relative to the largest |eigenvalue| (THEORY §5.4).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

import rmt
from rmt.dynamics import as_dynamics
from rmt.verdict import MEAN_SQUARE, verdict_text

from . import derivations as dv

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
]

#: Tolerance on ρ(T) − 1 for the verdicts (see module docstring).
RATE_TOL = 1e-9
#: Relative tolerance for the sign of eigenvalues of D on the span.
EIG_RTOL = 1e-10




class Instance:
    """A :class:`rmt.Dynamics` with the cached spectral quantities the theorems need.

    Built from ``(hs, schedule)`` or from a Dynamics (``dyn``). Everything that defines the step —
    which sets enter it, their sizes, batches, weights, sampling coefficients and mean Hessians on
    the span — is read from ``dyn.terms`` (:meth:`term`), never re-derived from the schedule.
    """

    def __init__(self, hs, schedule=None):
        self.dyn = as_dynamics(hs, schedule)
        self.hs, self.schedule = self.dyn.hs, self.dyn.schedule

    def term(self, which):
        """The :class:`rmt.SetTerm` of ``which`` ("retain"/"forget"), None if it does not enter."""
        return self.dyn.term(which)

    @property
    def sgd(self) -> bool:
        """Plain SGD on the retain set: only the retain set enters, without SAM's factor K."""
        return self.dyn.combinator != "sam" and [t.name for t in self.dyn.terms] == ["retain"]

    @cached_property
    def coherence(self):
        return rmt.coherence(self.hs)

    def _mean_eigenvalues(self, which):
        t = self.term(which)
        return None if t is None else np.linalg.eigvalsh(t.mean)

    def lam_bar(self, which="retain"):
        """λ_max(H̄_S) of a set that enters the step (0 when it does not)."""
        lam = self._mean_eigenvalues(which)
        return 0.0 if lam is None else float(lam[-1])

    def lam_min_span(self, which="retain"):
        """λ_min(H̄_S) on the span of the dynamics (clipped at 0; 0 when S does not enter)."""
        lam = self._mean_eigenvalues(which)
        return 0.0 if lam is None else float(max(lam[0], 0.0))

    def L(self, which="retain"):
        """max_i λ_max(H_i) of one set."""
        return float(np.max(self.hs.max_eigenvalues(which)))

    def sigma(self, which="retain"):
        c = self.coherence
        return float(c.sigma_retain if which == "retain" else c.sigma_forget)

    @cached_property
    def unit(self):
        """The same dynamics at η = 1: its term weights are the mixing weights s_S/η exactly
        (−(1−α), α; SAM −1), so η-free quantities carry no η-dependent round-off — theorem
        instances sit at η = η_thm exactly, where one ulp decides ``applies``."""
        return self.dyn.replace(eta=1.0)

    @cached_property
    def d_extremes(self):
        """(λ_min, λ_max, scale) of the mixed Hessian D of the dynamics on its span."""
        D = self.unit.mixed_hessian()
        lam = np.linalg.eigvalsh(0.5 * (D + D.T))
        lo, hi = float(lam[0]), float(lam[-1])
        return lo, hi, max(abs(lo), abs(hi))

    @cached_property
    def rate(self):
        return float(rmt.mean_square_rate(self.dyn))

    @cached_property
    def exact_critical(self):
        return float(rmt.critical_eta(self.dyn))


class MeanSquareVerdict:
    """The :mod:`rmt.verdict` vocabulary of a result that carries the exact rate ``rate`` = ρ(T)."""

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
class TheoremCheck(MeanSquareVerdict):
    """Verdict of one theorem on one instance against the exact operator (THEORY §5).

    ``applies``: the hypothesis holds; ``held``: the conclusion matched the exact ρ(T) (None when
    the theorem does not apply); ``threshold``: the theorem's η_thm; ``exact_critical``: exact η*
    (:func:`rmt.critical_eta`; nan if not computed); ``rate``: exact ρ(T);
    ``tightness`` = threshold / exact_critical. Common verdict vocabulary (:mod:`rmt.verdict`):
    ``forgets`` is the exact verdict ρ(T) > 1, ``verdict`` its text and ``notion`` the
    mean-square notion that decided it.
    """

    name: str
    status: str
    applies: bool
    conclusion: str
    threshold: float
    exact_critical: float
    rate: float
    held: bool | None
    tightness: float
    eta: float = field(default=float("nan"))

    @property
    def violated(self) -> bool:
        return self.held is False


def _tightness(thr, exact):
    if not (np.isfinite(exact) or exact == math.inf) or np.isnan(thr) or np.isnan(exact):
        return float("nan")
    if exact == 0.0:
        return 1.0 if thr == 0.0 else math.inf
    if exact == math.inf:
        return 1.0 if thr == math.inf else 0.0
    return float(thr / exact)


@dataclass(frozen=True, eq=False)
class Theorem:
    """One encoded statement (see the module docstring for the common form).

    Fields: ``name`` (contains the source), ``source``, ``hypothesis`` (text), ``conclusion``
    ("diverges" or "converges", :data:`rmt.verdict.SIGN_CONVENTION`), ``status``
    ("proven" or "conjecture"), ``section`` of THEORY.md, ``derivation`` (the sympy
    :class:`~theory.derivations.Derivation` of η_thm), ``notes``.
    """

    name: str
    source: str
    hypothesis: str
    conclusion: str
    status: str
    section: str
    derivation: object = field(repr=False)
    _pre: object = field(repr=False)
    _eta: object = field(repr=False)
    notes: str = ""
    #: keyword arguments of :func:`rmt.testing.instances` that generate structurally admissible
    #: instances (used by :func:`theory.counterexample.theorem_instances`).
    requirements: dict = field(default_factory=dict, repr=False)

    @property
    def expression(self):
        """The sympy expression of the threshold (see :attr:`derivation`)."""
        return self.derivation.expression

    @property
    def latex(self) -> str:
        return self.derivation.latex

    def _instance(self, hs, schedule):
        """An :class:`Instance` from an Instance, a :class:`rmt.Dynamics` or (hs, schedule)."""
        return hs if isinstance(hs, Instance) else Instance(hs, schedule)

    def structural(self, hs, schedule=None) -> bool:
        """The structural part of the hypothesis (everything except the η inequality)."""
        inst = self._instance(hs, schedule)
        return bool(self._pre(inst))

    def threshold(self, hs, schedule=None) -> float:
        """η_thm for this instance (nan when the structural hypothesis fails)."""
        inst = self._instance(hs, schedule)
        if not self._pre(inst):
            return float("nan")
        return float(self._eta(inst))

    def applies(self, hs, schedule=None) -> bool:
        """The hypothesis holds: structural part and η ≥ η_thm (divergence) / η < η_thm."""
        inst = self._instance(hs, schedule)
        if not self._pre(inst):
            return False
        thr = float(self._eta(inst))
        if np.isnan(thr):
            return False
        eta = inst.schedule.eta
        return bool(eta >= thr) if self.conclusion == "diverges" else bool(eta < thr)

    def holds_for_rate(self, rate: float) -> bool:
        """Whether the conclusion is consistent with an exact rate ρ(T)."""
        if self.conclusion == "diverges":
            return bool(rate >= 1.0 - RATE_TOL)
        return bool(rate <= 1.0 + RATE_TOL)

    def check(self, hs, schedule=None, *, critical=True) -> TheoremCheck:
        """Compare with the exact operator; ``critical=False`` skips η*_exact (and tightness)."""
        inst = self._instance(hs, schedule)
        applies = self.applies(inst)
        thr = self.threshold(inst)
        rate = inst.rate
        held = self.holds_for_rate(rate) if applies else None
        if critical and not np.isnan(thr):
            exact = inst.exact_critical
            tight = _tightness(thr, exact)
        else:
            exact, tight = float("nan"), float("nan")
        return TheoremCheck(self.name, self.status, applies, self.conclusion, thr, exact, rate,
                            held, tight, inst.schedule.eta)


# ---------------------------------------------------------------------- helpers for thresholds
def _safe(fn, *args):
    """Evaluate a lambdified threshold in float64 (x/0 → inf, never ZeroDivisionError)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        val = float(fn(*(np.float64(a) for a in args)))
    return math.inf if np.isnan(val) else val


def _bernoulli_sgd(inst):
    return inst.sgd and inst.schedule.sampling == "bernoulli"


def _noise_threshold(inst, which, sampling, form="coherence"):
    """η_thm of (a)/(b) for one set (THEORY §5.4); inf when the bound gives nothing."""
    t = inst.term(which)
    if t is None:
        return math.inf  # the set carries weight 0
    nS, BS = t.n, t.batch
    lam = inst.lam_bar(which)
    if lam <= 0.0 or BS >= nS and sampling != "with_replacement":
        return math.inf
    if sampling != "bernoulli" and nS < 2:
        return math.inf  # one sample: C ≡ 0, no sampling noise
    sig = inst.sigma(which)
    if sampling != "bernoulli":
        if form == "coherence" and sig >= nS * (1 - 1e-12):
            return math.inf
        if form == "single" and inst.L(which) <= lam:
            return math.inf
    der = dv.unlearning_noise_condition(sampling, which, form)
    alpha = inst.schedule.alpha
    if form == "coherence":
        return _safe(der.function, lam, sig, nS, BS, alpha)
    return _safe(der.function, inst.L(which), lam, nS, BS, alpha)


def _summed(inst):
    return inst.schedule.schedule == "summed"


def _is_construction(inst):
    """Retain set = k identical rank-one Hessians plus zeros (Dexter Thm 2 construction)."""
    hs = inst.hs
    lam = hs.max_eigenvalues("retain")
    top = float(np.max(lam))
    if top <= 0:
        return False
    nz = lam > 1e-12 * top
    T = hs.trace_products("retain", "retain")[np.ix_(nz, nz)]
    ln = lam[nz]
    # Cauchy–Schwarz: tr(H_iH_j) ≤ ‖H_i‖_F‖H_j‖_F ≤ λ_iλ_j·√(rank) — equality with equal λ
    # everywhere forces H_i = H_j of rank one.
    return bool(
        np.allclose(ln, top, rtol=1e-9, atol=0)
        and np.allclose(T, top * top, rtol=1e-9, atol=0)
    )


def _retain_full_batch(inst):
    """The retain batch is the whole retain set (B ≥ n): no Bernoulli sampling noise."""
    t = inst.term("retain")
    return t.batch >= t.n


def _thm2_eta(inst):
    hs, s = inst.hs, inst.schedule
    lam = hs.max_eigenvalues("retain")
    k = int(np.sum(lam > 1e-12 * np.max(lam)))
    t = inst.term("retain")
    nR, B = t.n, t.batch
    lam_bar = inst.lam_bar("retain")
    if s.sampling == "without_replacement" and nR == 1:
        return 2.0 / lam_bar
    der = dv.dexter_thm2_condition(s.sampling)
    # λ* = f(σ, n, B)/η, so η_thm = f(σ, n, B)/λ
    return _safe(der.function, 1.0, k, nR, B) / lam_bar


def _nonuniformity_s(inst):
    Hs = inst.term("retain").hessians()
    Hb = Hs.mean(axis=0)  # the same sums as the first term (examples sit at η = η_thm exactly)
    C = np.einsum("nab,nbc->ac", Hs, Hs) / Hs.shape[0] - Hb @ Hb
    return float(math.sqrt(max(np.linalg.eigvalsh(0.5 * (C + C.T))[-1], 0.0)))


def _noise_operator_eta(inst):
    # Kronecker matrix of (1−α)²N_R + α²N_F: Σ_S (s_S/η)² N_S over the sets in the step
    K = sum(t.weight**2 * t.kron_noise() for t in inst.unit.terms)
    rho = float(np.max(np.abs(np.linalg.eigvalsh(0.5 * (K + K.T)))))
    return math.inf if rho <= 0 else _safe(dv.noise_operator_threshold().function, rho)


def _mean_escape_eta(inst):
    lo, hi, scale = inst.d_extremes
    if lo < -EIG_RTOL * scale:
        return 0.0
    if hi <= EIG_RTOL * scale:
        return math.inf
    return _safe(dv.unlearning_mean_escape().function, hi)


def _naive_pre(inst):
    lo, hi, scale = inst.d_extremes
    return _summed(inst) and lo > EIG_RTOL * scale


def _sam_eta(inst):
    s, t = inst.schedule, inst.term("retain")
    if t.batch >= t.n:
        return math.inf
    return _safe(dv.sam_threshold().function, inst.lam_bar("retain"), inst.sigma("retain"),
                 t.n, t.batch, s.sam_rho, s.sam_a, inst.lam_min_span("retain"))


def _set_args(inst, which):
    """(λ̄_S, σ_S, n_S, B_S) of a set that enters the step; neutral values otherwise."""
    t = inst.term(which)
    if t is None:
        return 0.0, 1.0, 1, 1  # the term carries weight 0 (and n/B − 1 = 0)
    return inst.lam_bar(which), inst.sigma(which), t.n, t.batch


def _coherence_sum_eta(inst):
    lR, sR, nR, BR = _set_args(inst, "retain")
    lF, sF, nF, BF = _set_args(inst, "forget")
    return _safe(dv.coherence_sum_threshold().function, lR, sR, nR, BR, lF, sF, nF, BF,
                 inst.schedule.alpha)


def _coherence_resistance_eta(inst):
    _, sR, nR, BR = _set_args(inst, "retain")
    _, sF, nF, BF = _set_args(inst, "forget")
    return _safe(dv.coherence_resistance_threshold().function, inst.d_extremes[1], sR, nR, BR,
                 sF, nF, BF, inst.schedule.alpha)


def _scheme_analogue_eta(inst):
    t = inst.term("retain")
    if t is None or t.c <= 0 or inst.lam_bar("retain") <= 0:
        return math.inf
    return _safe(dv.scheme_analogue_threshold().function, inst.lam_bar("retain"),
                 inst.sigma("retain"), t.n, t.c, inst.schedule.alpha)


# ---------------------------------------------------------------------- the catalogue
def _build():
    T = []
    T.append(Theorem(
        "dexter-thm1", "Dexter et al. 2024, Theorem 1 (reconstructed in THEORY §5.1)",
        "Bernoulli SGD (α = 0), η ≥ σ/(λ_max(H̄)√(n/B − 1))", "diverges", "proven", "§5.1",
        dv.dexter_thm1(), _bernoulli_sgd,
        lambda i: math.inf if _retain_full_batch(i) else _safe(
            dv.dexter_thm1().function, i.lam_bar(), i.sigma(), i.term("retain").n,
            i.term("retain").batch),
    ))
    T.append(Theorem(
        "dexter-thm1-single-sample", "Dexter et al. 2024, proof of Theorem 1 (THEORY §5.1) [der]",
        "Bernoulli SGD, η ≥ n/(max_i λ_max(H_i)·√(n/B − 1))", "diverges", "proven", "§5.1",
        dv.dexter_single_sample(), _bernoulli_sgd,
        lambda i: math.inf if _retain_full_batch(i) else _safe(
            dv.dexter_single_sample().function, i.L(), i.term("retain").n,
            i.term("retain").batch),
    ))
    T.append(Theorem(
        "dexter-thm2-construction", "Dexter et al. 2024, Theorem 2 construction (THEORY §5.2)",
        "SGD on σ identical rank-one Hessians (λn/σ)e₁e₁ᵀ plus zeros, η < η*(construction)",
        "converges", "proven", "§5.2", dv.dexter_thm2_condition("bernoulli"),
        lambda i: i.sgd and _is_construction(i), _thm2_eta,
        notes="Exact (iff): tightness is 1. Bernoulli is Dexter's; the other schemes are derived "
              "from the same per-direction condition.",
    ))
    T.append(Theorem(
        "wu-ma-e-sharpness", "Wu, Ma & E 2018 (THEORY §5.3)",
        "SGD (α = 0, summed), any scheme, η ≥ 2/λ_max(H̄)", "diverges", "proven", "§5.3",
        dv.wu_ma_e_sharpness(), lambda i: i.sgd and _summed(i),
        lambda i: _safe(dv.wu_ma_e_sharpness().function, i.lam_bar()),
    ))
    T.append(Theorem(
        "wu-ma-e-nonuniformity", "Wu, Ma & E 2018 (THEORY §5.3), literal d-dimensional form",
        "SGD without replacement, η ≥ √(B(n−1)/(n−B))/s, s² = λ_max((1/n)ΣH_i² − H̄²)",
        "diverges", "conjecture", "§5.3", dv.wu_ma_e_nonuniformity(),
        lambda i: i.sgd and _summed(i) and i.schedule.sampling == "without_replacement"
        and not _retain_full_batch(i),
        lambda i: (lambda s: math.inf if s <= 0 else _safe(
            dv.wu_ma_e_nonuniformity().function, s, i.term("retain").n,
            i.term("retain").batch))(_nonuniformity_s(i)),
        notes="Refuted for d > 1 by the exact operator (docs/theory.md, findings): λ_max(E[JᵀJ]) "
              "upper-bounds ρ(T), it does not lower-bound it. Exact in d = 1.",
    ))
    T.append(Theorem(
        "noise-operator-divergence", "derived (THEORY §5.4; operator form of Wu–Ma–E §5.3)",
        "summed schedule, any scheme, η ≥ 1/√ρ((1−α)²N_R + α²N_F)", "diverges", "proven", "§5.4",
        dv.noise_operator_threshold(), _summed, _noise_operator_eta,
        notes="T − η²((1−α)²N_R + α²N_F) = E[J]⊗E[J] is cone-preserving, so "
              "ρ(T) ≥ η²ρ_N with ρ_N the spectral radius of the noise operator.",
    ))
    for which, letter, label in (("retain", "a", "retain"), ("forget", "b", "forget")):
        w = "(1−α)" if which == "retain" else "α"
        T.append(Theorem(
            f"unlearning-{label}-noise", f"Chang & Khanna 2026 / THEORY §5.4 ({letter}) [der]",
            f"summed schedule; Bernoulli: η{w}λ̄_S√(n_S/B_S − 1) ≥ σ_S; with/without "
            f"replacement: η²{w}²c_S λ̄_S²(n_S/σ_S − 1)²/(n_S − 1) ≥ 1 (σ_S < n_S)",
            "diverges", "proven", "§5.4", dv.unlearning_noise_condition("bernoulli", which),
            (lambda i, w_=which: _summed(i) and i.term(w_) is not None),
            (lambda i, w_=which: _noise_threshold(i, w_, i.schedule.sampling)),
        ))
    T.append(Theorem(
        "unlearning-mean-escape", "Chang & Khanna 2026 / THEORY §5.4 (c) [der]",
        "summed schedule, any scheme, ρ(I − ηD) > 1 (λ_min(D) < 0 on the span, or η > 2/λ_max(D))",
        "diverges", "proven", "§5.4", dv.unlearning_mean_escape(), _summed, _mean_escape_eta,
    ))
    T.append(Theorem(
        "sam-divergence", "Chang & Khanna 2025 (SAM vs SGD), THEORY §5.6 [der]",
        "SAM, Bernoulli, η ≥ σ/((1 + (ρ/a)λ_min(H̄))·λ_max(H̄)√(n/B − 1)), λ_min on the span",
        "diverges", "proven", "§5.6", dv.sam_threshold(),
        lambda i: i.schedule.schedule == "sam" and i.schedule.sampling == "bernoulli", _sam_eta,
    ))
    # ------------------------------------------------------------------ conjectures
    T.append(Theorem(
        "naive-mean-stability", "folklore (false; issue 4 acceptance test)",
        "summed schedule, D ≻ 0 on the span and η·λ_max(D) < 2", "converges", "conjecture",
        "§5.4", dv.unlearning_mean_escape(), _naive_pre,
        lambda i: _safe(dv.unlearning_mean_escape().function, i.d_extremes[1]),
        notes="Ignores the sampling noise; refuted by small batches with low coherence.",
    ))
    T.append(Theorem(
        "unlearning-retain-noise-scheme-analogue",
        "THEORY §5.4 (a) with the Bernoulli coefficient n/B − 1 replaced by n·c(scheme)",
        "summed, with/without replacement, η(1−α)λ̄_R√(n_R c_R) ≥ σ_R", "diverges", "conjecture",
        "§5.4", dv.scheme_analogue_threshold(),
        lambda i: _summed(i) and i.term("retain") is not None
        and i.schedule.sampling != "bernoulli",
        _scheme_analogue_eta,
        notes="The single-sample step uses C(M) ⪰ (1/n)H_iMH_i, which fails for the covariance "
              "operator C of these schemes.",
    ))
    T.append(Theorem(
        "paper-coherence-sum", "Chang & Khanna 2026 §5.5 candidate A (within-set coherences add)",
        "summed, Bernoulli, η²[(1−α)²(n_R/B−1)λ̄_R²/σ_R² + α²(n_F/B_F−1)λ̄_F²/σ_F²] ≥ 1",
        "diverges", "conjecture", "§5.5", dv.coherence_sum_threshold(),
        lambda i: _summed(i) and i.schedule.sampling == "bernoulli", _coherence_sum_eta,
        notes="Refuted (docs/theory.md, findings; examples.coherence_sum_counterexample()): each "
              "set's Dexter-type bound lower-bounds ρ(T) through a different test matrix, so the "
              "two cannot be added — ρ(N_R + N_F) ≥ max, not the sum.",
    ))
    T.append(Theorem(
        "paper-coherence-resistance",
        "Chang & Khanna 2026 §5.5 candidate B (Thm-2 form with mixed coherence)",
        "summed, Bernoulli, D ≻ 0, η < (2/λ_max(D))/[1 + (1−α)²(n_R/B−1)/σ_R + α²(n_F/B_F−1)/σ_F]",
        "converges", "conjecture", "§5.5", dv.coherence_resistance_threshold(),
        lambda i: _naive_pre(i) and i.schedule.sampling == "bernoulli", _coherence_resistance_eta,
    ))
    return tuple(dataclasses.replace(t, requirements=_REQUIREMENTS.get(t.name, {})) for t in T)


_SUMMED = {"schedule_kinds": ("summed",)}
_BERN = {"samplings": ("bernoulli",)}
_REQUIREMENTS = {
    "dexter-thm1": {**_BERN, "alphas": "sgd"},
    "dexter-thm1-single-sample": {**_BERN, "alphas": "sgd"},
    "dexter-thm2-construction": {"kinds": ("construction",), "alphas": "sgd"},
    "wu-ma-e-sharpness": {**_SUMMED, "alphas": "sgd"},
    "wu-ma-e-nonuniformity": {**_SUMMED, "alphas": "sgd", "samplings": ("without_replacement",)},
    "noise-operator-divergence": _SUMMED,
    "unlearning-retain-noise": _SUMMED,
    "unlearning-forget-noise": {**_SUMMED, "alphas": "unlearning"},
    "unlearning-mean-escape": _SUMMED,
    "sam-divergence": {**_BERN, "schedule_kinds": ("sam",)},
    "naive-mean-stability": _SUMMED,
    "unlearning-retain-noise-scheme-analogue": {
        **_SUMMED, "samplings": ("with_replacement", "without_replacement")},
    "paper-coherence-sum": {**_SUMMED, **_BERN},
    "paper-coherence-resistance": {**_SUMMED, **_BERN},
}


_THEOREMS = None


def theorems(status=None):
    """Every encoded statement (THEORY §5), optionally filtered by ``status``."""
    global _THEOREMS
    if status not in (None, "proven", "conjecture"):
        raise ValueError(f"status must be None, 'proven' or 'conjecture', got {status!r}")
    if _THEOREMS is None:
        _THEOREMS = _build()
    return [t for t in _THEOREMS if status is None or t.status == status]


def get_theorem(name):
    """The theorem called ``name``."""
    for t in theorems():
        if t.name == name:
            return t
    raise ValueError(f"name must be one of {[t.name for t in theorems()]}, got {name!r}")


def check_all(hs, schedule=None, thms=None, *, critical=True):
    """Check several theorems on one instance, sharing ρ(T) and η*_exact (list of TheoremCheck).

    ``hs`` may be a :class:`rmt.Dynamics` (then ``schedule`` is None).
    """
    inst = Instance(hs, schedule)
    return [t.check(inst, critical=critical) for t in (thms or theorems())]
