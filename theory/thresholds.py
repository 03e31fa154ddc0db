"""Numeric thresholds η_thm of the catalogue theorems (contract §5), from the sympy derivations.

Each ``_*_eta(inst)`` evaluates one derivation of :mod:`theory.derivations` on the spectral
quantities of an :class:`theory.instance.Instance` (``nan`` never: ``inf`` when the bound gives
nothing). The derivations run once per machine: :func:`_fn` caches their expressions on disk
(``$RMT_CACHE_DIR``, default ``~/.cache/rmt``; keyed by the source of :mod:`theory.derivations`
and the sympy version) and only re-lambdifies them in later processes.

Eigenvalue conditions (λ_min(D) < 0, D ≻ 0) are evaluated on the span of the active Hessians
with the tolerance :data:`EIG_RTOL` relative to the largest |eigenvalue| (contract §5.4).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import sympy as sp

from . import derivations as dv
from rmt.dynamics import SetTerm

from .instance import KRON_MAX_SPAN, Instance

__all__ = [
    "EIG_RTOL",
    "lazy_derivation",
    "threshold_function",
    "required_term",
    "is_construction",
    "retain_full_batch",
    "dexter_thm1_eta",
    "dexter_single_sample_eta",
    "thm2_eta",
    "sharpness_eta",
    "nonuniformity_eta",
    "noise_threshold",
    "noise_operator_eta",
    "mean_escape_eta",
    "naive_mean_eta",
    "weyl_eta",
    "sam_eta",
    "coherence_sum_eta",
    "coherence_resistance_eta",
    "scheme_analogue_eta",
]

#: Relative tolerance for the sign of eigenvalues of D on the span.
EIG_RTOL = 1e-10


# ---------------------------------------------------------------------- derivations, cached
class lazy_derivation:
    """A derivation built on first use (sympy takes seconds per process): attribute access
    (``expression``, ``latex``, ``function``, ``steps``…) builds it and delegates."""

    def __init__(self, factory: Callable[..., dv.Derivation], *args: object):
        self._factory, self._args = factory, args
        self._value: dv.Derivation | None = None

    def _get(self) -> dv.Derivation:
        if self._value is None:
            self._value = self._factory(*self._args)
        return self._value

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._get(), name)

    def __call__(self, *values: object) -> object:
        return self._get()(*values)

    def __repr__(self):
        return f"<derivation {self._factory.__name__}{self._args!r} (built on first use)>"


_FUNCS: dict[str, Callable] = {}
_DISK: dict | None = None


def _cache_file() -> Path:
    """``$RMT_CACHE_DIR`` (default ``~/.cache/rmt``)/theorem-thresholds-<key>.json; the key hashes
    the source of :mod:`theory.derivations` and the sympy version, so any change re-derives."""
    root = os.environ.get("RMT_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "rmt")
    digest = hashlib.sha256(Path(dv.__file__).read_bytes() + sp.__version__.encode()
                            + b"|thresholds-v1").hexdigest()[:16]
    return Path(root) / f"theorem-thresholds-{digest}.json"


def _disk() -> dict:
    global _DISK
    if _DISK is None:
        try:
            _DISK = json.loads(_cache_file().read_text(encoding="utf-8"))
        except (OSError, ValueError):
            _DISK = {}
    return _DISK


def _from_disk(key: str) -> Callable | None:
    """The lambdified expression stored under ``key`` (None when absent or corrupt)."""
    entry = _disk().get(key)
    if entry is None:
        return None
    try:
        expr = sp.sympify(entry["expr"])
        fargs = tuple(sp.sympify(a) for a in entry["args"])
        return sp.lambdify(fargs, expr, modules="numpy")
    except Exception:  # a corrupt entry: derive again
        return None


def _fn(factory: Callable[..., dv.Derivation], *args: object) -> Callable:
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
    fn = _from_disk(key)
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


def threshold_function(factory: Callable[..., dv.Derivation], *args: object) -> Callable:
    """The numpy function of the derivation ``factory(*args)``, cached on disk (see :func:`_fn`)."""
    return _fn(factory, *args)


# ---------------------------------------------------------------------- evaluation helpers
def _safe(fn: Callable, *args: float) -> float:
    """Evaluate a lambdified threshold in float64 (x/0 → inf, never ZeroDivisionError)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        val = float(fn(*(np.float64(a) for a in args)))
    return math.inf if np.isnan(val) else val


def _eval(inst_args: tuple, factory: Callable[..., dv.Derivation], *args: object) -> float:
    """:func:`_safe` of the cached derivation ``factory(*args)`` at ``inst_args``."""
    return _safe(_fn(factory, *args), *inst_args)


def required_term(inst: Instance, which: str = "retain") -> SetTerm:
    """The :class:`rmt.SetTerm` of a set that the statement's hypotheses make enter the step
    (AttributeError otherwise, as reading a field of the missing term would raise)."""
    t = inst.term(which)
    if t is None:
        raise AttributeError(f"the {which} set does not enter the step")
    return t


def _set_args(inst: Instance, which: str) -> tuple[float, float, int, int]:
    """(λ̄_S, σ_S, n_S, B_S) of a set that enters the step; neutral values otherwise."""
    t = inst.term(which)
    if t is None:
        return 0.0, 1.0, 1, 1  # the term carries weight 0 (and n/B − 1 = 0)
    return inst.lam_bar(which), inst.sigma(which), t.n, t.batch


#: Largest number of non-zero retain Hessians for which the construction test forms the n×n
#: matrix of tr(H_iH_j).
_CONSTRUCTION_MAX_N = 2000


def is_construction(inst: Instance) -> bool:
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
    return bool(np.allclose(T, top * top, rtol=1e-9, atol=0))


def retain_full_batch(inst: Instance) -> bool:
    """The retain batch is the whole retain set (B ≥ n): no Bernoulli sampling noise."""
    t = required_term(inst)
    return t.batch >= t.n


def _nonuniformity_s(inst: Instance) -> float:
    """s = √λ_max((1/n)ΣH_i² − H̄²) of the retain set (Wu–Ma–E's non-uniformity, contract §5.3)."""
    t = required_term(inst)
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


# ---------------------------------------------------------------------- η_thm, one per statement
def dexter_thm1_eta(inst: Instance) -> float:
    """Dexter Theorem 1 (contract §5.1): σ/(λ̄√(n/B − 1)); inf for a full batch."""
    if retain_full_batch(inst):
        return math.inf
    return _eval(_set_args(inst, "retain"), dv.dexter_thm1)


def dexter_single_sample_eta(inst: Instance) -> float:
    """Single-sample form of Dexter Theorem 1 (contract §5.1): n/(L√(n/B − 1))."""
    if retain_full_batch(inst):
        return math.inf
    t = required_term(inst)
    return _eval((inst.L(), t.n, t.batch), dv.dexter_single_sample)


def thm2_eta(inst: Instance) -> float:
    """η* of the Dexter Theorem 2 construction (contract §5.2), exact."""
    s = inst.schedule
    lam = inst.hs.max_eigenvalues("retain")
    k = int(np.sum(lam > 1e-12 * np.max(lam)))
    t = required_term(inst)
    lam_bar = inst.lam_bar("retain")
    if s.sampling == "without_replacement" and t.n == 1:
        return 2.0 / lam_bar
    # λ* = f(σ, n, B)/η, so η_thm = f(σ, n, B)/λ
    return _eval((1.0, k, t.n, t.batch), dv.dexter_thm2_condition, s.sampling) / lam_bar


def sharpness_eta(inst: Instance) -> float:
    """Wu–Ma–E sharpness (contract §5.3): 2/λ̄."""
    return _eval((inst.lam_bar(),), dv.wu_ma_e_sharpness)


def nonuniformity_eta(inst: Instance) -> float:
    """Wu–Ma–E non-uniformity, literal d-dimensional form (contract §5.3): √(B(n−1)/(n−B))/s."""
    s = _nonuniformity_s(inst)
    if s <= 0:
        return math.inf
    t = required_term(inst)
    return _eval((s, t.n, t.batch), dv.wu_ma_e_nonuniformity)


def noise_threshold(inst: Instance, which: str, form: str = "coherence") -> float:
    """η_thm of (a)/(b) for one set (contract §5.4); inf when the bound gives nothing."""
    sampling = inst.schedule.sampling
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
    first = (lam, sig) if form == "coherence" else (inst.L(which), lam)
    return _eval(first + (nS, BS, inst.schedule.alpha), dv.unlearning_noise_condition,
                 sampling, which, form)


def noise_operator_eta(inst: Instance) -> float:
    """Operator form (contract §5.4): 1/√ρ_N; inf without sampling noise."""
    rho = inst.noise_radius
    return math.inf if rho <= 0 else _eval((rho,), dv.noise_operator_threshold)


def mean_escape_eta(inst: Instance) -> float:
    """Condition (c) of contract §5.4: 0 when λ_min(D) < 0 on the span, else 2/λ_max(D)."""
    lo, hi, scale = inst.d_extremes
    if lo < -EIG_RTOL * scale:
        return 0.0
    if hi <= EIG_RTOL * scale:
        return math.inf
    return _eval((hi,), dv.unlearning_mean_escape)


def naive_mean_eta(inst: Instance) -> float:
    """The (false) folklore threshold 2/λ_max(D), noise ignored (contract §5.4)."""
    return _eval((inst.d_extremes[1],), dv.unlearning_mean_escape)


def weyl_eta(inst: Instance) -> float:
    """Weyl convergence certificate (contract §5.4): min over d ∈ {λ_min(D), λ_max(D)} of
    2d/(d² + ρ_N)."""
    lo, hi, _ = inst.d_extremes
    rho = inst.noise_radius
    return min(_eval((lo, rho), dv.weyl_convergence), _eval((hi, rho), dv.weyl_convergence))


def sam_eta(inst: Instance) -> float:
    """SAM divergence (contract §5.6): the SGD threshold of Dexter Theorem 1 over κ."""
    s, t = inst.schedule, required_term(inst)
    if t.batch >= t.n:
        return math.inf
    return _eval(_set_args(inst, "retain") + (s.sam_rho, s.sam_a, inst.lam_min_span("retain")),
                 dv.sam_threshold)


def coherence_sum_eta(inst: Instance) -> float:
    """Candidate A of contract §5.5 (refuted): the two sets' Dexter-type terms added."""
    return _eval(_set_args(inst, "retain") + _set_args(inst, "forget") + (inst.schedule.alpha,),
                 dv.coherence_sum_threshold)


def coherence_resistance_eta(inst: Instance) -> float:
    """Candidate B of contract §5.5 (refuted): Theorem 2's form with the mixed coherence."""
    _, sR, nR, BR = _set_args(inst, "retain")
    _, sF, nF, BF = _set_args(inst, "forget")
    return _eval((inst.d_extremes[1], sR, nR, BR, sF, nF, BF, inst.schedule.alpha),
                 dv.coherence_resistance_threshold)


def scheme_analogue_eta(inst: Instance) -> float:
    """(a) with the Bernoulli n/B − 1 replaced by n·c(scheme) (contract §5.4, conjecture)."""
    t = inst.term("retain")
    if t is None or t.c <= 0 or inst.lam_bar("retain") <= 0:
        return math.inf
    return _eval((inst.lam_bar("retain"), inst.sigma("retain"), t.n, t.c, inst.schedule.alpha),
                 dv.scheme_analogue_threshold)
