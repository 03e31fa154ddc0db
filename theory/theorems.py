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

**Why a statement does not apply.** The structural hypothesis is a list of named
:class:`Hypothesis` atoms (sampling scheme, schedule, α, …); :meth:`Theorem.why` and
``TheoremCheck.reason`` name the ones that fail with the instance's value, or say that η lies on
the other side of η_thm (then the statement concludes nothing). A statement written for one
sampling scheme never applies to another: its ``analogue`` names the encoded statement that
covers the other schemes (e.g. Dexter's Bernoulli bound → ``unlearning-retain-noise``, proven for
every scheme with the coefficients of THEORY §2.1).

**Shared work.** An :class:`Instance` computes ρ(T), η*, the coherence and the spectra once and
every check reads them; callers that already have them (``rmt analyze``) pass them in
(``Instance(dyn, rate=..., exact_critical=..., coherence=...)``, or the same keywords of
:func:`check_all`). Nothing here builds an r²×r² matrix above ``KRON_MAX_SPAN``: the noise
operator's spectral radius is found matrix-free (ARPACK on its action, THEORY §3 "Cost").
The sympy derivations behind the thresholds run once per machine: their expressions are cached
on disk (``$RMT_CACHE_DIR``, default ``~/.cache/rmt``; keyed by the source of
:mod:`theory.derivations` and the sympy version) and only re-lambdified in later processes.

**Statements for every sampling scheme** (real unlearning samples without replacement):
``noise-operator-divergence``, ``unlearning-{retain,forget}-noise`` and their
``-single-sample`` forms (§5.4 with the covariance bound for with/without replacement),
``unlearning-mean-escape`` (divergence) and ``weyl-convergence`` (a proven *convergence*
certificate: ρ(T) ≤ max_k(1 − ηd_k)² + η²ρ_N by Weyl's inequality).
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import math
import os
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np
import scipy.sparse.linalg as spla
import sympy as sp

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
    "Hypothesis",
    "KRON_MAX_SPAN",
    "extra_theorems",
    "noise_operator_radius",
    "weyl_convergence",
]

#: Tolerance on ρ(T) − 1 for the verdicts (see module docstring).
RATE_TOL = 1e-9
#: Relative tolerance for the sign of eigenvalues of D on the span.
EIG_RTOL = 1e-10
#: Largest span dimension r for which a check may build an r²×r² Kronecker matrix (exact dense
#: eigenvalues); above it every operator quantity is computed matrix-free.
KRON_MAX_SPAN = 8


class Instance:
    """A :class:`rmt.Dynamics` with the cached spectral quantities the theorems need.

    Built from ``(hs, schedule)`` or from a Dynamics (``dyn``). Everything that defines the step —
    which sets enter it, their sizes, batches, weights, sampling coefficients and mean Hessians on
    the span — is read from ``dyn.terms`` (:meth:`term`), never re-derived from the schedule.
    """

    def __init__(self, hs, schedule=None, *, rate=None, exact_critical=None, coherence=None):
        """``rate`` (ρ(T)), ``exact_critical`` (η* of :func:`rmt.critical_eta`) and
        ``coherence`` (:func:`rmt.coherence` of ``hs``) may be passed when the caller has already
        computed them for this very dynamics; they are then never recomputed."""
        self.dyn = as_dynamics(hs, schedule)
        self.hs, self.schedule = self.dyn.hs, self.dyn.schedule
        self._eigs = {}
        for key, value in (("rate", rate), ("exact_critical", exact_critical)):
            if value is not None:
                if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
                    raise TypeError(f"{key} must be a real number or None, got {type(value).__name__}")
                self.__dict__[key] = float(value)
        if coherence is not None:
            if not isinstance(coherence, rmt.CoherenceResult):
                raise TypeError("coherence must be an rmt.CoherenceResult or None, got "
                                f"{type(coherence).__name__}")
            self.__dict__["coherence"] = coherence

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
        if which not in self._eigs:
            t = self.term(which)
            self._eigs[which] = None if t is None else np.linalg.eigvalsh(t.mean)
        return self._eigs[which]

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
    def noise_radius(self):
        """ρ of the noise operator Σ_S (s_S/η)² N_S (matrix-free above KRON_MAX_SPAN)."""
        return noise_operator_radius(self)

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
    #: why the statement applies or not: the failed hypotheses with the instance's values, or
    #: the side of η_thm that η lies on (module docstring)
    reason: str = field(default="", compare=False)
    #: the encoded statement that covers the schemes/schedules this one is not written for
    analogue: str = field(default="", compare=False)

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
    #: where instances outside this statement's hypotheses are covered ("" if nowhere)
    analogue: str = ""

    @property
    def hypotheses(self) -> tuple:
        """The named structural hypotheses (:class:`Hypothesis`), in order."""
        return getattr(self._pre, "atoms", ())

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

    def why(self, hs, schedule=None) -> str:
        """Why the statement applies or not on this instance (one sentence).

        Names every failed structural hypothesis with the instance's value (and the
        :attr:`analogue` that covers it), or compares η with η_thm.
        """
        inst = self._instance(hs, schedule)
        failed = _failures(self._pre, inst)
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
                            held, tight, inst.schedule.eta, self.why(inst), self.analogue)


# ---------------------------------------------------------------------- derivations, cached
class _lazy:
    """A derivation built on first use (sympy takes seconds per process): attribute access
    (``expression``, ``latex``, ``function``, ``steps``…) builds it and delegates."""

    def __init__(self, factory, *args):
        self._factory, self._args, self._value = factory, args, None

    def _get(self):
        if self._value is None:
            self._value = self._factory(*self._args)
        return self._value

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._get(), name)

    def __call__(self, *values):
        return self._get()(*values)

    def __repr__(self):
        return f"<derivation {self._factory.__name__}{self._args!r} (built on first use)>"


_FUNCS = {}
_DISK = None


def _cache_file():
    """``$RMT_CACHE_DIR`` (default ``~/.cache/rmt``)/theorem-thresholds-<key>.json; the key hashes
    the source of :mod:`theory.derivations` and the sympy version, so any change re-derives."""
    root = os.environ.get("RMT_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "rmt")
    digest = hashlib.sha256(Path(dv.__file__).read_bytes() + sp.__version__.encode()
                            + b"|thresholds-v1").hexdigest()[:16]
    return Path(root) / f"theorem-thresholds-{digest}.json"


def _disk():
    global _DISK
    if _DISK is None:
        try:
            _DISK = json.loads(_cache_file().read_text(encoding="utf-8"))
        except (OSError, ValueError):
            _DISK = {}
    return _DISK


def _fn(factory, *args):
    """The numpy function of the threshold derivation ``factory(*args)``.

    The symbolic derivation (sympy solve/simplify, seconds per process) runs once per machine:
    its expression is stored as ``sympy.srepr`` in :func:`_cache_file` and later processes only
    re-``lambdify`` it — the same expression tree, hence the same numpy code and the same floats.
    An unwritable cache location only means the derivation runs again.
    """
    key = f"{factory.__name__}{args!r}"
    fn = _FUNCS.get(key)
    if fn is not None:
        return fn
    entry = _disk().get(key)
    if entry is not None:
        try:
            expr = sp.sympify(entry["expr"])
            fargs = tuple(sp.sympify(a) for a in entry["args"])
            fn = sp.lambdify(fargs, expr, modules="numpy")
        except Exception:  # a corrupt entry: derive again
            fn = None
    if fn is None:
        der = factory(*args)
        fn = der.function
        if isinstance(der.expression, sp.Basic):
            _disk()[key] = {"expr": sp.srepr(der.expression),
                            "args": [sp.srepr(a) for a in der.args]}
            try:
                path = _cache_file()
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(f".{os.getpid()}.tmp")
                tmp.write_text(json.dumps(_disk(), indent=0), encoding="utf-8")
                os.replace(tmp, path)
            except OSError:
                pass
    _FUNCS[key] = fn
    return fn


# ---------------------------------------------------------------------- named hypotheses
@dataclass(frozen=True)
class Hypothesis:
    """One structural hypothesis: ``text`` (what it requires), ``test(inst) -> bool`` and
    ``got(inst) -> str`` (the instance's value, quoted when the hypothesis fails)."""

    text: str
    test: object = field(repr=False)
    got: object = field(repr=False, default=None)
    #: a hypothesis on the scheme/schedule (not on the Hessians): when it fails the statement's
    #: ``analogue`` is where the instance is covered
    routable: bool = False

    def failure(self, inst):
        """None when the hypothesis holds (or cannot be evaluated because an earlier one
        failed, e.g. a batch condition on a set that does not enter), else "text (got …)"."""
        try:
            if self.test(inst):
                return None
        except (AttributeError, TypeError):
            return None
        return self.text + (f" (got {self.got(inst)})" if self.got is not None else "")


class _Pre:
    """A conjunction of :class:`Hypothesis` atoms, callable as the structural test."""

    def __init__(self, *atoms):
        self.atoms = tuple(atoms)

    def __call__(self, inst):
        return all(a.test(inst) for a in self.atoms)


def _failures(pre, inst):
    """[(text, routable)] of the failed hypotheses."""
    if isinstance(pre, _Pre):
        out = [(a.failure(inst), a.routable) for a in pre.atoms]
        return [(f, r) for f, r in out if f is not None]
    return [] if pre(inst) else [("structural hypothesis", False)]


def _sched(i):
    return i.schedule.schedule


H_SUMMED = Hypothesis("summed schedule", lambda i: _sched(i) == "summed",
                      lambda i: f"schedule={_sched(i)!r}", routable=True)
H_SGD = Hypothesis("plain SGD: α = 0 and no SAM (the retain set alone enters the step)",
                   lambda i: i.sgd, lambda i: f"alpha={i.schedule.alpha:g}, schedule={_sched(i)!r}", routable=True)
H_BERNOULLI = Hypothesis("Bernoulli sampling", lambda i: i.schedule.sampling == "bernoulli",
                         lambda i: f"sampling={i.schedule.sampling!r}", routable=True)
H_WOR = Hypothesis("sampling without replacement",
                   lambda i: i.schedule.sampling == "without_replacement",
                   lambda i: f"sampling={i.schedule.sampling!r}", routable=True)
H_NOT_BERNOULLI = Hypothesis("sampling with or without replacement",
                             lambda i: i.schedule.sampling != "bernoulli",
                             lambda i: f"sampling={i.schedule.sampling!r}", routable=True)
H_SAM = Hypothesis("SAM schedule", lambda i: _sched(i) == "sam",
                   lambda i: f"schedule={_sched(i)!r}", routable=True)
H_RETAIN = Hypothesis("the retain set enters the step (α < 1)",
                      lambda i: i.term("retain") is not None,
                      lambda i: f"alpha={i.schedule.alpha:g}")
H_FORGET = Hypothesis("the forget set enters the step (α > 0, not SAM)",
                      lambda i: i.term("forget") is not None,
                      lambda i: f"alpha={i.schedule.alpha:g}, schedule={_sched(i)!r}")
H_RETAIN_SAMPLED = Hypothesis(
    "a retain batch smaller than the retain set (B < n_R: otherwise no sampling noise)",
    lambda i: not _retain_full_batch(i),
    lambda i: f"B={i.term('retain').batch}, n_R={i.term('retain').n}")
H_CONSTRUCTION = Hypothesis(
    "retain Hessians are identical rank-one matrices plus zeros (Dexter Thm 2 construction)",
    lambda i: _is_construction(i), lambda i: "a generic retain set")
H_D_POSITIVE = Hypothesis(
    "D = (1−α)H̄_R − αH̄_F positive definite on the span",
    lambda i: i.d_extremes[0] > EIG_RTOL * i.d_extremes[2],
    lambda i: f"λ_min(D) = {i.d_extremes[0]:.3g}")


# ---------------------------------------------------------------------- helpers for thresholds
def _safe(fn, *args):
    """Evaluate a lambdified threshold in float64 (x/0 → inf, never ZeroDivisionError)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        val = float(fn(*(np.float64(a) for a in args)))
    return math.inf if np.isnan(val) else val


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
    fn = _fn(dv.unlearning_noise_condition, sampling, which, form)
    alpha = inst.schedule.alpha
    if form == "coherence":
        return _safe(fn, lam, sig, nS, BS, alpha)
    return _safe(fn, inst.L(which), lam, nS, BS, alpha)


def _summed(inst):
    return inst.schedule.schedule == "summed"


#: Largest number of non-zero retain Hessians for which the construction test forms the n×n
#: matrix of tr(H_iH_j).
_CONSTRUCTION_MAX_N = 2000


def _is_construction(inst):
    """Retain set = k identical rank-one Hessians plus zeros (Dexter Thm 2 construction)."""
    hs = inst.hs
    lam = hs.max_eigenvalues("retain")
    top = float(np.max(lam))
    if top <= 0:
        return False
    nz = lam > 1e-12 * top
    ln = lam[nz]
    if not np.allclose(ln, top, rtol=1e-9, atol=0):
        return False  # cheap rejection before the n×n trace products (real models: n large)
    if int(nz.sum()) > _CONSTRUCTION_MAX_N:
        # identical rank-one matrices span one direction; beyond this size the n×n Gram of
        # the exact test would be too large to form
        return inst.hs.reduction(True, False).r == 1
    T = hs.trace_products("retain", "retain")[np.ix_(nz, nz)]
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
    fn = _fn(dv.dexter_thm2_condition, s.sampling)
    # λ* = f(σ, n, B)/η, so η_thm = f(σ, n, B)/λ
    return _safe(fn, 1.0, k, nR, B) / lam_bar


def _nonuniformity_s(inst):
    t = inst.term("retain")
    r, n, k = t.psi.shape
    if r <= KRON_MAX_SPAN:
        Hs = t.hessians()
        Hb = Hs.mean(axis=0)  # the same sums as the first term (examples sit at η = η_thm exactly)
        C = np.einsum("nab,nbc->ac", Hs, Hs) / Hs.shape[0] - Hb @ Hb
    else:  # (1/n)Σ H_i² = (1/n)Σ Ψ_i(Ψ_iᵀΨ_i)Ψ_iᵀ: no (n, r, r) stack
        G = np.einsum("rna,rnb->nab", t.psi, t.psi)  # Ψ_iᵀΨ_i (n, k, k)
        X = np.einsum("rna,nab->rnb", t.psi, G).reshape(r, n * k)
        C = X @ t.psi.reshape(r, n * k).T / n - t.mean @ t.mean
    return float(math.sqrt(max(np.linalg.eigvalsh(0.5 * (C + C.T))[-1], 0.0)))


def noise_operator_radius(inst) -> float:
    """ρ_N = ρ(Σ_S (s_S/η)² N_S) of the unit-step dynamics (THEORY §5.4), exactly.

    Small spans (r ≤ :data:`KRON_MAX_SPAN`): eigenvalues of the r²×r² Kronecker matrix. Larger
    spans: matrix-free — the operator is self-adjoint in the Frobenius inner product and
    completely positive (each N_S is a covariance, c·E[(Ĥ−H̄)M(Ĥ−H̄)]-type), so its spectral
    radius is its largest eigenvalue, with a PSD eigenmatrix (Krein–Rutman); ARPACK (Lanczos)
    finds it from the identity using only applications N_S(M) (O(r²·Σk) each).
    """
    terms = inst.unit.terms
    r = inst.unit.r
    if r <= KRON_MAX_SPAN:
        K = sum(t.weight**2 * t.kron_noise() for t in terms)
        return float(np.max(np.abs(np.linalg.eigvalsh(0.5 * (K + K.T)))))

    def matvec(x):
        M = np.asarray(x, dtype=float).reshape(r, r)
        M = 0.5 * (M + M.T)
        out = sum(t.weight**2 * t.noise(M) for t in terms)
        return (0.5 * (out + out.T)).ravel()

    v0 = (np.eye(r) / math.sqrt(r)).ravel()
    if not np.any(matvec(v0)):  # N(I) = 0 ⇒ N ≡ 0 for a positive map
        return 0.0
    op = spla.LinearOperator((r * r, r * r), matvec=matvec, dtype=float)
    try:
        vals = spla.eigsh(op, k=1, which="LA", v0=v0, tol=1e-12, maxiter=50 * r * r,
                          return_eigenvectors=False)
    except spla.ArpackNoConvergence as exc:  # report, never hide
        raise RuntimeError("ARPACK did not converge for the noise operator "
                           f"(r = {r})") from exc
    return float(max(vals[-1], 0.0))


def _noise_operator_eta(inst):
    rho = inst.noise_radius
    return math.inf if rho <= 0 else _safe(_fn(dv.noise_operator_threshold), rho)


def _mean_escape_eta(inst):
    lo, hi, scale = inst.d_extremes
    if lo < -EIG_RTOL * scale:
        return 0.0
    if hi <= EIG_RTOL * scale:
        return math.inf
    return _safe(_fn(dv.unlearning_mean_escape), hi)


def _sam_eta(inst):
    s, t = inst.schedule, inst.term("retain")
    if t.batch >= t.n:
        return math.inf
    return _safe(_fn(dv.sam_threshold), inst.lam_bar("retain"), inst.sigma("retain"),
                 t.n, t.batch, s.sam_rho, s.sam_a, inst.lam_min_span("retain"))


@lru_cache(maxsize=None)
def weyl_convergence() -> "dv.Derivation":
    """Sufficient convergence condition of the summed schedule, every scheme (THEORY §3, §5.4) [der].

    T = 𝒜 + 𝒩 with 𝒜(M) = E[J]ME[J] (E[J] = I − ηD symmetric) and 𝒩 = η²Σ_S(s_S/η)²N_S, both
    self-adjoint in the Frobenius inner product and positive, so ρ(T) = λ_max(T) (Krein–Rutman)
    and, by Weyl's inequality, λ_max(T) ≤ λ_max(𝒜) + λ_max(𝒩) = max_k (1 − ηd_k)² + η²ρ_N
    (d_k the eigenvalues of D on the span, ρ_N the noise radius of :func:`noise_operator_radius`).
    Each term (1 − ηd)² + η²ρ_N ≤ 1 ⇔ η ≤ 2d/(d² + ρ_N) (d > 0); the maximum over d sits at
    λ_min(D) or λ_max(D), so ρ(T) ≤ 1 once η ≤ min over those two of 2d/(d² + ρ_N). Exact for a
    single direction (it is then η*_k = 2D_k/(D_k² + V_k) of THEORY §3). Args: (d, rho_N).
    """
    eta_, d_, rho_ = sp.symbols("eta d rho_N", positive=True)
    bound = (1 - eta_ * d_) ** 2 + eta_**2 * rho_
    roots = [r for r in sp.solve(sp.Eq(bound, 1), eta_) if r != 0]
    if len(roots) != 1:
        raise dv.DerivationError(f"expected one non-zero root in eta, got {roots}")
    thr = sp.simplify(roots[0])
    if sp.simplify(thr - 2 * d_ / (d_**2 + rho_)) != 0:
        raise dv.DerivationError(f"unexpected Weyl threshold {thr}")
    fn = sp.lambdify((d_, rho_), thr, modules="numpy")
    return dv.Derivation("weyl-convergence", thr, (d_, rho_), fn, sp.latex(thr),
                         (("rho(T) <= max_k (1 - eta d_k)^2 + eta^2 rho_N", bound),
                          ("eta threshold", thr)), "§5.4")


def _weyl_eta(inst):
    lo, hi, _ = inst.d_extremes
    rho = inst.noise_radius
    fn = _fn(weyl_convergence)
    return min(_safe(fn, lo, rho), _safe(fn, hi, rho))


def _set_args(inst, which):
    """(λ̄_S, σ_S, n_S, B_S) of a set that enters the step; neutral values otherwise."""
    t = inst.term(which)
    if t is None:
        return 0.0, 1.0, 1, 1  # the term carries weight 0 (and n/B − 1 = 0)
    return inst.lam_bar(which), inst.sigma(which), t.n, t.batch


def _coherence_sum_eta(inst):
    lR, sR, nR, BR = _set_args(inst, "retain")
    lF, sF, nF, BF = _set_args(inst, "forget")
    return _safe(_fn(dv.coherence_sum_threshold), lR, sR, nR, BR, lF, sF, nF, BF,
                 inst.schedule.alpha)


def _coherence_resistance_eta(inst):
    _, sR, nR, BR = _set_args(inst, "retain")
    _, sF, nF, BF = _set_args(inst, "forget")
    return _safe(_fn(dv.coherence_resistance_threshold), inst.d_extremes[1], sR, nR, BR,
                 sF, nF, BF, inst.schedule.alpha)


def _scheme_analogue_eta(inst):
    t = inst.term("retain")
    if t is None or t.c <= 0 or inst.lam_bar("retain") <= 0:
        return math.inf
    return _safe(_fn(dv.scheme_analogue_threshold), inst.lam_bar("retain"),
                 inst.sigma("retain"), t.n, t.c, inst.schedule.alpha)


# ---------------------------------------------------------------------- the catalogue
_ANA_RETAIN = ("other schemes and α > 0: see unlearning-retain-noise (THEORY §5.4, proven for every "
               "sampling scheme with the coefficients of §2.1)")
_ANA_SINGLE = ("other schemes and α > 0: see unlearning-retain-noise-single-sample (THEORY §5.4, "
               "proven for every sampling scheme)")
_ANA_MEAN = "unlearning (α > 0): see unlearning-mean-escape (λ_min(D) < 0 or η > 2/λ_max(D))"
_ANA_NOISE = ("every scheme and α: see noise-operator-divergence (the operator form, proven) and "
              "unlearning-retain-noise")
_ANA_SUMMED = "alternating/SAM schedules: no encoded analogue (the summed-schedule proof uses T ⪰ E[J]⊗E[J] + Σ_S s_S²N_S)"


def _build():
    T = []
    T.append(Theorem(
        "dexter-thm1", "Dexter et al. 2024, Theorem 1 (reconstructed in THEORY §5.1)",
        "Bernoulli SGD (α = 0), η ≥ σ/(λ_max(H̄)√(n/B − 1))", "diverges", "proven", "§5.1",
        _lazy(dv.dexter_thm1), _Pre(H_SGD, H_BERNOULLI),
        lambda i: math.inf if _retain_full_batch(i) else _safe(
            _fn(dv.dexter_thm1), i.lam_bar(), i.sigma(), i.term("retain").n,
            i.term("retain").batch),
        analogue=_ANA_RETAIN,
    ))
    T.append(Theorem(
        "dexter-thm1-single-sample", "Dexter et al. 2024, proof of Theorem 1 (THEORY §5.1) [der]",
        "Bernoulli SGD, η ≥ n/(max_i λ_max(H_i)·√(n/B − 1))", "diverges", "proven", "§5.1",
        _lazy(dv.dexter_single_sample), _Pre(H_SGD, H_BERNOULLI),
        lambda i: math.inf if _retain_full_batch(i) else _safe(
            _fn(dv.dexter_single_sample), i.L(), i.term("retain").n,
            i.term("retain").batch),
        analogue=_ANA_SINGLE,
    ))
    T.append(Theorem(
        "dexter-thm2-construction", "Dexter et al. 2024, Theorem 2 construction (THEORY §5.2)",
        "SGD on σ identical rank-one Hessians (λn/σ)e₁e₁ᵀ plus zeros, η < η*(construction)",
        "converges", "proven", "§5.2", _lazy(dv.dexter_thm2_condition, "bernoulli"),
        _Pre(H_SGD, H_CONSTRUCTION), _thm2_eta,
        notes="Exact (iff): tightness is 1. Bernoulli is Dexter's; the other schemes are derived "
              "from the same per-direction condition.",
        analogue="a special construction: real models are not of this form",
    ))
    T.append(Theorem(
        "wu-ma-e-sharpness", "Wu, Ma & E 2018 (THEORY §5.3)",
        "SGD (α = 0, summed), any scheme, η ≥ 2/λ_max(H̄)", "diverges", "proven", "§5.3",
        _lazy(dv.wu_ma_e_sharpness), _Pre(H_SGD, H_SUMMED),
        lambda i: _safe(_fn(dv.wu_ma_e_sharpness), i.lam_bar()),
        analogue=_ANA_MEAN,
    ))
    T.append(Theorem(
        "wu-ma-e-nonuniformity", "Wu, Ma & E 2018 (THEORY §5.3), literal d-dimensional form",
        "SGD without replacement, η ≥ √(B(n−1)/(n−B))/s, s² = λ_max((1/n)ΣH_i² − H̄²)",
        "diverges", "conjecture", "§5.3", _lazy(dv.wu_ma_e_nonuniformity),
        _Pre(H_SGD, H_SUMMED, H_WOR, H_RETAIN_SAMPLED),
        lambda i: (lambda s: math.inf if s <= 0 else _safe(
            _fn(dv.wu_ma_e_nonuniformity), s, i.term("retain").n,
            i.term("retain").batch))(_nonuniformity_s(i)),
        notes="Refuted for d > 1 by the exact operator (docs/theory.md, findings): λ_max(E[JᵀJ]) "
              "upper-bounds ρ(T), it does not lower-bound it. Exact in d = 1.",
        analogue=_ANA_NOISE,
    ))
    T.append(Theorem(
        "noise-operator-divergence", "derived (THEORY §5.4; operator form of Wu–Ma–E §5.3)",
        "summed schedule, any scheme, η ≥ 1/√ρ((1−α)²N_R + α²N_F)", "diverges", "proven", "§5.4",
        _lazy(dv.noise_operator_threshold), _Pre(H_SUMMED), _noise_operator_eta,
        notes="T − η²((1−α)²N_R + α²N_F) = E[J]⊗E[J] is cone-preserving, so "
              "ρ(T) ≥ η²ρ_N with ρ_N the spectral radius of the noise operator.",
        analogue=_ANA_SUMMED,
    ))
    for which, letter, label in (("retain", "a", "retain"), ("forget", "b", "forget")):
        w = "(1−α)" if which == "retain" else "α"
        enters = H_RETAIN if which == "retain" else H_FORGET
        T.append(Theorem(
            f"unlearning-{label}-noise", f"Chang & Khanna 2026 / THEORY §5.4 ({letter}) [der]",
            f"summed schedule; Bernoulli: η{w}λ̄_S√(n_S/B_S − 1) ≥ σ_S; with/without "
            f"replacement: η²{w}²c_S λ̄_S²(n_S/σ_S − 1)²/(n_S − 1) ≥ 1 (σ_S < n_S)",
            "diverges", "proven", "§5.4", _lazy(dv.unlearning_noise_condition, "bernoulli", which),
            _Pre(H_SUMMED, enters),
            (lambda i, w_=which: _noise_threshold(i, w_, i.schedule.sampling)),
            analogue=_ANA_SUMMED,
        ))
    for which, letter, label in (("retain", "a", "retain"), ("forget", "b", "forget")):
        w = "(1−α)" if which == "retain" else "α"
        enters = H_RETAIN if which == "retain" else H_FORGET
        T.append(Theorem(
            f"unlearning-{label}-noise-single-sample",
            f"THEORY §5.4 ({letter}), single-sample step (before the coherence bound) [der]",
            f"summed schedule, L_S = max_i λ_max(H_i); Bernoulli: η{w}L_S√(c_S/n_S) ≥ 1; "
            f"with/without replacement: η²{w}²c_S(L_S − λ̄_S)²/(n_S − 1) ≥ 1 (L_S > λ̄_S)",
            "diverges", "proven", "§5.4", _lazy(dv.unlearning_noise_condition, "bernoulli", which, "single"),
            _Pre(H_SUMMED, enters),
            (lambda i, w_=which: _noise_threshold(i, w_, i.schedule.sampling, form="single")),
            notes="Sharper than the coherence form (L_S ≥ n_Sλ̄_S/σ_S); the proof is the middle "
                  "step of THEORY §5.1 with the covariance bound of §5.4 for the other schemes.",
            analogue=_ANA_SUMMED,
        ))
    T.append(Theorem(
        "unlearning-mean-escape", "Chang & Khanna 2026 / THEORY §5.4 (c) [der]",
        "summed schedule, any scheme, ρ(I − ηD) > 1 (λ_min(D) < 0 on the span, or η > 2/λ_max(D))",
        "diverges", "proven", "§5.4", _lazy(dv.unlearning_mean_escape), _Pre(H_SUMMED), _mean_escape_eta,
        analogue=_ANA_SUMMED,
    ))
    T.append(Theorem(
        "weyl-convergence", "derived (THEORY §3, §5.4): Weyl's inequality for T = E[J]⊗E[J] + noise",
        "summed schedule, any scheme, D ≻ 0 on the span, η < min_{d ∈ {λ_min(D), λ_max(D)}} "
        "2d/(d² + ρ_N), ρ_N = ρ((1−α)²N_R + α²N_F)", "converges", "proven", "§5.4",
        _lazy(weyl_convergence), _Pre(H_SUMMED, H_D_POSITIVE), _weyl_eta,
        notes="A proven sufficient condition for resisting (ρ(T) ≤ 1) that holds for every "
              "sampling scheme; exact for one curvature direction. The noise radius ρ_N is "
              "computed matrix-free above KRON_MAX_SPAN.",
        analogue=_ANA_SUMMED,
    ))
    T.append(Theorem(
        "sam-divergence", "Chang & Khanna 2025 (SAM vs SGD), THEORY §5.6 [der]",
        "SAM, Bernoulli, η ≥ σ/((1 + (ρ/a)λ_min(H̄))·λ_max(H̄)√(n/B − 1)), λ_min on the span",
        "diverges", "proven", "§5.6", _lazy(dv.sam_threshold), _Pre(H_SAM, H_BERNOULLI), _sam_eta,
        analogue="SAM only; no encoded analogue for other sampling schemes",
    ))
    # ------------------------------------------------------------------ conjectures
    T.append(Theorem(
        "naive-mean-stability", "folklore (false; issue 4 acceptance test)",
        "summed schedule, D ≻ 0 on the span and η·λ_max(D) < 2", "converges", "conjecture",
        "§5.4", _lazy(dv.unlearning_mean_escape), _Pre(H_SUMMED, H_D_POSITIVE),
        lambda i: _safe(_fn(dv.unlearning_mean_escape), i.d_extremes[1]),
        notes="Ignores the sampling noise; refuted by small batches with low coherence.",
        analogue=_ANA_SUMMED,
    ))
    T.append(Theorem(
        "unlearning-retain-noise-scheme-analogue",
        "THEORY §5.4 (a) with the Bernoulli coefficient n/B − 1 replaced by n·c(scheme)",
        "summed, with/without replacement, η(1−α)λ̄_R√(n_R c_R) ≥ σ_R", "diverges", "conjecture",
        "§5.4", _lazy(dv.scheme_analogue_threshold), _Pre(H_SUMMED, H_RETAIN, H_NOT_BERNOULLI),
        _scheme_analogue_eta,
        notes="The single-sample step uses C(M) ⪰ (1/n)H_iMH_i, which fails for the covariance "
              "operator C of these schemes.",
        analogue="Bernoulli: see unlearning-retain-noise (the statement this one copies)",
    ))
    T.append(Theorem(
        "paper-coherence-sum", "Chang & Khanna 2026 §5.5 candidate A (within-set coherences add)",
        "summed, Bernoulli, η²[(1−α)²(n_R/B−1)λ̄_R²/σ_R² + α²(n_F/B_F−1)λ̄_F²/σ_F²] ≥ 1",
        "diverges", "conjecture", "§5.5", _lazy(dv.coherence_sum_threshold),
        _Pre(H_SUMMED, H_BERNOULLI), _coherence_sum_eta,
        notes="Refuted (docs/theory.md, findings; examples.coherence_sum_counterexample()): each "
              "set's Dexter-type bound lower-bounds ρ(T) through a different test matrix, so the "
              "two cannot be added — ρ(N_R + N_F) ≥ max, not the sum.",
        analogue="stated (and refuted) for Bernoulli only; no analogue encoded for other schemes",
    ))
    T.append(Theorem(
        "paper-coherence-resistance",
        "Chang & Khanna 2026 §5.5 candidate B (Thm-2 form with mixed coherence)",
        "summed, Bernoulli, D ≻ 0, η < (2/λ_max(D))/[1 + (1−α)²(n_R/B−1)/σ_R + α²(n_F/B_F−1)/σ_F]",
        "converges", "conjecture", "§5.5", _lazy(dv.coherence_resistance_threshold),
        _Pre(H_SUMMED, H_D_POSITIVE, H_BERNOULLI), _coherence_resistance_eta,
        analogue="stated (and refuted) for Bernoulli only; no analogue encoded for other schemes",
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
    "unlearning-retain-noise-single-sample": _SUMMED,
    "unlearning-forget-noise-single-sample": {**_SUMMED, "alphas": "unlearning"},
    "unlearning-mean-escape": _SUMMED,
    "weyl-convergence": _SUMMED,
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


def extra_theorems():
    """Theorem-like statements defined outside this module: ``theory.affine.AFFINE_THEOREMS``
    (the affine/drift statements of THEORY §8) when that module exists; [] otherwise."""
    import importlib

    try:
        mod = importlib.import_module("theory.affine")
    except ModuleNotFoundError as exc:
        if exc.name in ("theory.affine",):
            return []
        raise
    return list(getattr(mod, "AFFINE_THEOREMS", []))


def _check_foreign(t, inst, critical):
    """Check a Theorem-like object that is not a :class:`Theorem` (e.g. ``AFFINE_THEOREMS``):
    it receives the :class:`Instance` (``inst.dyn`` is the Dynamics; a computed ρ(T) sits in
    ``inst.__dict__["rate"]``, which theory.affine reads instead of recomputing it)."""
    accepts = inspect.signature(t.check).parameters
    takes_kw = "critical" in accepts or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in accepts.values())
    return t.check(inst, **({"critical": critical} if takes_kw else {}))


def check_all(hs, schedule=None, thms=None, *, critical=True, rate=None, exact_critical=None,
              coherence=None):
    """Check several theorems on one instance, sharing ρ(T) and η*_exact (list of TheoremCheck).

    ``hs`` may be a :class:`rmt.Dynamics` (then ``schedule`` is None) or an :class:`Instance`.
    ``thms``: default every statement of :func:`theorems` plus :func:`extra_theorems` (the
    affine statements of ``theory.affine``, when present). ``rate``/``exact_critical``/
    ``coherence``: values already computed for this dynamics (see :class:`Instance`).
    """
    if isinstance(hs, Instance):
        if schedule is not None:
            raise TypeError("pass either an Instance or (hs, schedule), not both")
        inst = hs
        for key, value in (("rate", rate), ("exact_critical", exact_critical),
                           ("coherence", coherence)):
            if value is not None:
                inst.__dict__[key] = value if key == "coherence" else float(value)
    else:
        inst = Instance(hs, schedule, rate=rate, exact_critical=exact_critical,
                        coherence=coherence)
    if thms is None:
        thms = list(theorems()) + extra_theorems()
    return [t.check(inst, critical=critical) if isinstance(t, Theorem)
            else _check_foreign(t, inst, critical) for t in thms]
