"""Affine (drift) unlearning: the encoded statements (contract §8; proofs in docs/affine.md).

:data:`AFFINE_THEOREMS` are :class:`theory.statement.Statement` objects about the affine
recursion δ_{k+1} = J_kδ_k + b_k: ``applies``/``why`` evaluate the hypothesis and ``check``
compares the conclusion with the exact moments of :func:`rmt.affine.affine_moments` and the
exact asymptotic outcome of :func:`rmt.affine.asymptotic_outcome`, returning an
:class:`AffineCheck`. :func:`theory.theorems.check_all` checks them with the catalogue.

This module also re-exports the affine sympy derivations (:mod:`theory.affine_derivations`), the
numeric closed forms on commuting sets (:mod:`theory.affine_closed_forms`) and the exact outcome
(:class:`rmt.affine.AffineOutcome`, :func:`asymptotic_outcome`), so that ``theory.affine`` is
the one import for the affine layer.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from rmt.affine import (
    DRIFT_RTOL,
    AffineMoments,
    AffineOutcome,
    ExactAffine,
    affine_moments,
    final_moments,
    start_coordinates,
    stationary,
)
from rmt.dynamics import as_dynamics
from rmt.schedule import Schedule
from rmt.verdict import MEAN_SQUARE, OutcomeVerdict

from . import affine_closed_forms, affine_derivations
from .affine_closed_forms import *  # noqa: F401,F403 — re-exported (affine_closed_forms.__all__)
from .affine_closed_forms import summed_stationary_mean
from .affine_derivations import *  # noqa: F401,F403 — re-exported (affine_derivations.__all__)
from .affine_derivations import (affine_kstep_solution, affine_null_solution,
                                 affine_stationary_solution, null_dominance_horizon,
                                 summed_stationary_mean_formula)
# the symbols and the recursion check, for readers who build on the derivations
from .affine_derivations import (  # noqa: F401
    B, M0_s, _check_recursion, a_s, ak_s, beta_s, g_F, g_R, gamma_s, k_s, m0_s, n, p_F, p_R,
    r_F, r_R, t_s, tk_s, v_s)
from .derivations import Derivation
from .instance import Instance, InstanceLike
from .statement import RATE_TOL, EncodedStatement, StatementCheck, find_statement

__all__ = [
    *affine_derivations.__all__,
    *affine_closed_forms.__all__,
    "AffineOutcome",
    "asymptotic_outcome",
    "dominance_horizon",
    "AffineTheorem",
    "AffineCheck",
    "AFFINE_THEOREMS",
    "get_affine_theorem",
    "DRIFT_RTOL",
    "RATE_TOL",
]


# ---------------------------------------------------------------------- the exact outcome, shared
_INSTANCES: dict[int, ExactAffine] = {}


def _instance(hs: InstanceLike | ExactAffine, schedule: Schedule | None = None) -> ExactAffine:
    """The :class:`rmt.affine.ExactAffine` of an ExactAffine, a :class:`theory.instance.Instance`
    (its ρ(T) is reused when known), a Dynamics or (hs, schedule); one per Dynamics, so the
    statements checked on one instance share the exact quantities."""
    if isinstance(hs, ExactAffine):
        return hs
    if isinstance(hs, Instance):
        if schedule is not None:
            raise TypeError("pass either an Instance or (hs, schedule), not both")
        dyn, rate = hs.dyn, hs.known_rate
    else:
        dyn, rate = as_dynamics(hs, schedule), None
    key = id(dyn)
    hit = _INSTANCES.get(key)
    if hit is not None and hit.dyn is dyn:
        return hit
    if len(_INSTANCES) > 64:
        _INSTANCES.clear()
    inst = _INSTANCES[key] = ExactAffine(dyn, rate=rate)
    return inst


def asymptotic_outcome(hs: InstanceLike, schedule: Schedule | None = None) -> AffineOutcome:
    """The exact asymptotic mean-square outcome of the affine recursion
    (:func:`rmt.affine.asymptotic_outcome`; also accepts a :class:`theory.instance.Instance`)."""
    return _instance(hs, schedule).outcome


# ---------------------------------------------------------------------- statements
@dataclass(frozen=True)
class AffineCheck(StatementCheck, OutcomeVerdict):
    """Verdict of one affine statement on one instance against the exact moments (contract §8).

    A :class:`theory.statement.StatementCheck` (``name``, ``status``, ``applies``,
    ``conclusion``, ``held``, ``reason``, ``violated``) with the fields of
    :class:`theory.theorems.TheoremCheck` (``rate``, ``tightness``, ``eta``;
    ``threshold``/``exact_critical`` are nan: these statements have no step-size threshold) and
    the :mod:`rmt.verdict` vocabulary: ``forgets``/``verdict``/``notion`` are the *exact* outcome
    (:func:`asymptotic_outcome`), ``outcome`` its name. ``details``: the numbers that decided
    ``held`` (errors, bounds, horizons).
    """

    rate: float
    outcome: str
    marginal: bool
    details: dict = field(default_factory=dict, repr=False)
    tightness: float = float("nan")
    eta: float = float("nan")
    threshold: float = float("nan")
    exact_critical: float = float("nan")

    @property
    def notion(self) -> str:
        return MEAN_SQUARE


#: (holds?, why) of a hypothesis; (held, details, tightness) of a conclusion
Pre = Callable[[ExactAffine], "tuple[bool, str]"]
Held = Callable[[ExactAffine], "tuple[bool, dict, float]"]


@dataclass(frozen=True, eq=False)
class AffineTheorem(EncodedStatement):
    """One encoded statement about the affine recursion (contract §8; proofs in docs/affine.md).

    Same reading as :class:`theory.theorems.Theorem`: ``hypothesis`` (text), ``conclusion``
    ("converges": bounded / convergent moments — the model resists escaping; "diverges":
    E‖δ_k‖² → ∞ — the model escapes w*), ``status`` ("proven": the proof is in docs/affine.md),
    ``derivation`` (the sympy Derivation the statement rests on). ``applies(hs, schedule)``
    evaluates the hypothesis; ``check(hs, schedule)`` compares the conclusion with the exact
    moments of :func:`rmt.affine.affine_moments` and returns an :class:`AffineCheck`.
    """

    _derivation: Callable[[], Derivation] = field(repr=False)
    _pre: Pre = field(repr=False)
    _held: Held = field(repr=False)
    notes: str = ""

    @property
    def derivation(self) -> Derivation:
        """The sympy Derivation the statement rests on (built on first use: sympy is slow)."""
        return self._derivation()

    @property
    def hypotheses(self) -> tuple[str, ...]:
        """The hypothesis, as one sentence."""
        return (self.hypothesis,)

    def structural(self, hs: InstanceLike, schedule: Schedule | None = None) -> bool:
        """The hypothesis holds (these statements have no η inequality)."""
        return bool(self._hypothesis(_instance(hs, schedule))[0])

    def applies(self, hs: InstanceLike, schedule: Schedule | None = None) -> bool:
        """The hypothesis holds on the instance."""
        return self.structural(hs, schedule)

    def why(self, hs: InstanceLike, schedule: Schedule | None = None) -> str:
        """Why the statement applies or not on the instance (one sentence)."""
        return self._hypothesis(_instance(hs, schedule))[1]

    def threshold(self, hs: InstanceLike, schedule: Schedule | None = None) -> float:
        """These statements have no step-size threshold: nan (as a Theorem's threshold)."""
        return float("nan")

    def _hypothesis(self, inst: ExactAffine) -> tuple[bool, str]:
        if inst.dyn.has_null_mode:
            return False, ("shared isotropic curvature: J is not the identity off the span, the "
                           "null-space statements of contract §8 do not apply")
        return self._pre(inst)

    def check(self, hs: InstanceLike, schedule: Schedule | None = None, *, critical: bool = True) -> AffineCheck:
        """Hypothesis, then the conclusion against the exact moments (``held`` None if it does
        not apply). ``critical`` is accepted for the common interface: no η* is computed."""
        inst = _instance(hs, schedule)
        ok, why = self._hypothesis(inst)
        held: bool | None = None
        details: dict = {}
        tight = float("nan")
        if ok:
            held, details, tight = self._held(inst)
        out = inst.outcome
        return AffineCheck(self.name, bool(ok), held, rate=inst.rate, outcome=out.outcome,
                           marginal=out.marginal, details=details, tightness=tight,
                           eta=float(inst.dyn.schedule.eta), reason=why, status=self.status,
                           conclusion=self.conclusion)


def _moments(inst: ExactAffine, steps: int, start=None) -> AffineMoments:
    return affine_moments(inst.dyn, steps, start=start)


def _horizon(rho: float, target: float = 1e-13, lo: int = 50, hi: int = 20000) -> int:
    """Steps K with rho^K ≤ target (clipped to [lo, hi])."""
    if rho <= 0.0:
        return lo
    return int(min(max(math.ceil(math.log(target) / math.log(rho)), lo), hi))


def _mean_rate(dyn):
    """ρ(E[J]) on the span."""
    return float(np.max(np.abs(np.linalg.eigvals(dyn.mean_map))))


def _isotropic_start(dyn):
    U = dyn.basis
    return U @ U.T


# (a) bounded: sufficient direction --------------------------------------------------------
def _bounded_pre(inst):
    bv, cv, zero = inst.null_drift
    if not zero:
        return False, "the drift has a component outside the span (b_V ≢ 0)"
    if inst.rate >= 1.0 - RATE_TOL:
        return False, f"ρ(T) = {inst.rate:.8g} is not < 1"
    return True, "ρ(T) < 1 and b_V ≡ 0"


def _bounded_held(inst):
    dyn = inst.dyn
    st = stationary(dyn, rate=inst.rate)
    if not st.exists:
        return False, {"stationary": st.reason}, float("nan")
    # the moments approach the fixed point like ρ(T)^k and, through the mean, like ρ(E[J])^k
    # (ρ(E[J])² ≤ ρ(T), so the mean can be the slower one)
    rho = max(inst.rate, _mean_rate(dyn))
    K = _horizon(rho)
    trM = st.rms_distance**2
    scale = trM + inst.drift[2] + 1e-300
    # tolerance: round-off plus the transient left after K steps (ρ^K times the initial error,
    # with a generous constant for non-normal transients)
    tol = 1e-8 * scale + 1e3 * rho**K * (scale + dyn.r)
    out = {"K": K, "tr_M_inf": trM, "tol": tol}
    held = True
    for label, start in (("zero", None), ("isotropic", _isotropic_start(dyn))):
        # the K-th moments in closed form over T's eigenbasis where that applies (summed, every
        # coordinate on the span: one N×N eigh instead of K ~ 1e4 steps), else iterated
        M0, m0, frozen = start_coordinates(dyn, start)
        fin = final_moments(dyn, K, M0, m0)
        if fin is None:
            mo = _moments(inst, K, start)
            last_sq, last_mean = float(mo.expected_sq_distance[-1]), mo.mean[-1]
        else:
            last_sq, last_mean = float(np.trace(fin[0])) + frozen, fin[1]
        out[f"method_{label}"] = "iterated" if fin is None else "closed form"
        err = abs(last_sq - trM)
        merr = float(np.linalg.norm(last_mean - st.mean))
        out[f"err_sq_{label}"], out[f"err_mean_{label}"] = err, merr
        held &= bool(err <= tol and merr <= math.sqrt(tol))
    return held, out, float("nan")


# (b) null drift: exact law ------------------------------------------------------------------
def _null_pre(inst):
    bv, cv, zero = inst.null_drift
    if zero:
        return False, "no drift outside the span (b_V ≡ 0)"
    return True, f"b_V ≢ 0 (‖E[b]_V‖ = {bv:.4g}, tr Cov(b_V) = {cv:.4g})"


def _null_held(inst):
    dyn = inst.dyn
    K = 200
    mo = _moments(inst, K)
    beta, cov, _ = inst.drift
    r = dyn.r
    nul = affine_null_solution().function
    ks = np.arange(K + 1, dtype=float)
    law = sum(nul(beta[i], cov[i, i] + beta[i] ** 2, 0.0, 0.0, ks)[0] for i in range(r, dyn.p))
    law = np.broadcast_to(np.asarray(law, float), ks.shape)
    fin = np.isfinite(mo.drift_sq)
    err = np.abs(mo.drift_sq[fin] - law[fin])
    # rmt's drift_sq is tr M − tr M_U: when the span part grows (ρ(T) > 1) the subtraction
    # keeps only ~1e-16 of the total, so the error is measured against law + 1e-3·total
    # scaled by 1e-9 (relative precision of the identity, and of the subtraction)
    denom = np.maximum(law[fin] + 1e-3 * mo.expected_sq_distance[fin], 1e-300)
    rel = float(np.max(err / denom)) if np.any(fin[1:]) else 0.0
    lower = bool(np.all(mo.expected_sq_distance[fin] >= law[fin] * (1 - 1e-10)))
    held = bool(rel <= 1e-9 and lower and bool(np.all(fin[1:] | ~np.isfinite(
        mo.expected_sq_distance[1:]))))
    return held, {"K": K, "max_rel_err": rel, "lower_bound_holds": lower,
                  "finite_steps": int(fin.sum())}, float("nan")


# (b') null drift dominates after K0 (summed) ---------------------------------------------
def _dominates_pre(inst):
    ok, why = _null_pre(inst)
    if not ok:
        return ok, why
    if not inst.dyn.combinator.self_adjoint:
        return False, "T is self-adjoint only for the summed schedule (the bound uses ‖T^k‖ = ρ^k)"
    if inst.rate >= 1.0 - RATE_TOL:
        return False, f"ρ(T) = {inst.rate:.8g} is not < 1"
    return True, why + ", summed, ρ(T) < 1"


def dominance_horizon(hs: InstanceLike | ExactAffine, schedule: Schedule | None = None) -> tuple[int, float]:
    """(K₀, S) of theorem ``affine-null-drift-dominates``: the span part of E‖δ_k‖² (from δ_0 = 0)
    is ≤ S = (√tr M∞_U + (√r‖M∞_U‖_F)^{1/2})² for every k, and the null part exceeds S for
    k ≥ K₀ (summed schedule, ρ(T) < 1, b_V ≢ 0; docs/affine.md)."""
    inst = _instance(hs, schedule)
    ok, why = _dominates_pre(inst)
    if not ok:
        raise ValueError(f"the dominance horizon needs its hypothesis: {why}")
    _, Mu = inst.span_stationary
    r = inst.dyn.r
    S = (math.sqrt(max(np.trace(Mu), 0.0))
         + math.sqrt(math.sqrt(r) * float(np.linalg.norm(Mu)))) ** 2
    bv, cv, _ = inst.null_drift
    if bv > 0:
        K0 = float(null_dominance_horizon().function(bv, cv, S))
    else:
        K0 = S / cv
    return int(math.ceil(K0)), S


def _dominates_held(inst):
    K0, S = dominance_horizon(inst)
    K_end = min(max(2 * K0, K0 + 200), 20000)
    mo = _moments(inst, K_end)
    span, null = mo.span_sq, mo.drift_sq + mo.frozen_sq
    bound_ok = bool(np.all(span <= S * (1 + 1e-9)))
    # K₀ beyond the step cap: only the bound S on the span part can be checked
    dom_ok = K0 > K_end or bool(np.all(null[K0:] >= span[K0:] * (1 - 1e-12)))
    ok = null >= span
    # observed onset: first k after which the null part stays ahead up to K_end
    bad = np.flatnonzero(~ok)
    k_obs = int(bad[-1] + 1) if bad.size else 0
    tight = float(K0 / k_obs) if k_obs > 0 else float("inf")
    return bound_ok and dom_ok, {"K0": K0, "S": S, "K_end": K_end, "sup_span": float(span.max()),
                                 "observed_onset": k_obs, "dominance_checked": K0 <= K_end}, tight


# (a') isotropic growth: necessity of ρ(T) ≤ 1 ---------------------------------------------
def _growth_pre(inst):
    if inst.rate <= 1.0 + RATE_TOL:
        return False, f"ρ(T) = {inst.rate:.8g} is not > 1"
    return True, "ρ(T) > 1"


def _growth_held(inst):
    dyn = inst.dyn
    rho = inst.rate
    K = int(min(max(math.ceil(math.log(1e8) / math.log(rho)), 5), 500))
    iso = _moments(inst, K, _isotropic_start(dyn)).expected_sq_distance
    zero = _moments(inst, K).expected_sq_distance
    ks = np.arange(K + 1)
    with np.errstate(over="ignore", invalid="ignore"):
        diff = iso - zero
        bound = rho ** ks.astype(float)
        fin = np.isfinite(diff) & np.isfinite(bound)
        ratio = diff[fin] / bound[fin]
    held = bool(np.all(ratio >= 1 - 1e-9))
    return held, {"K": K, "min_ratio": float(ratio.min())}, float(ratio.min())


# (c) stationary mean ------------------------------------------------------------------------
def _mean_pre(inst):
    rho_mean = _mean_rate(inst.dyn)
    if rho_mean >= 1.0 - RATE_TOL:
        return False, f"ρ(E[J]) = {rho_mean:.8g} on the span is not < 1"
    return True, f"ρ(E[J]) = {rho_mean:.6g} < 1 on the span"


def _mean_held(inst):
    dyn = inst.dyn
    r = dyn.r
    rho_mean = _mean_rate(dyn)
    U = dyn.basis
    if dyn.combinator.self_adjoint and dyn.has_drift:
        m_inf, _ = summed_stationary_mean(dyn)  # raw data: D and ḡ, independent of dyn's maps
    else:
        beta = inst.drift[0]
        m_inf = U @ np.linalg.solve(np.eye(r) - dyn.mean_map, beta[:r])
    K = _horizon(rho_mean)
    W = np.concatenate([dyn.basis, dyn.drift_basis], axis=1)
    # the mean recursion m' = E[J]m + E[b] is exact on its own (the second moments do not enter
    # it): run it alone from δ_0 = 0, O(p²) per step instead of the moments' O(r²n); it is
    # checked against the second-moment recursion's mean in tests/test_theory_affine.py
    A = np.eye(dyn.p)
    A[:r, :r] = dyn.mean_map
    beta = inst.drift[0]
    means = np.zeros((K + 1, dyn.p))
    for k in range(1, K + 1):
        means[k] = A @ means[k - 1] + beta
    mean_U = (means @ W.T) @ U @ U.T  # the span part of E[δ_k] in original coordinates
    err = np.linalg.norm(mean_U - m_inf[None, :], axis=1)
    scale = float(np.linalg.norm(m_inf)) + 1e-300
    out = {"K": K, "displacement": float(np.linalg.norm(m_inf)), "final_err": float(err[-1])}
    if dyn.combinator.self_adjoint:
        # E[δ_k]_U − m∞ = −(I − ηD)^k m∞ with I − ηD symmetric: ‖·‖ ≤ ρ(I − ηD)^k ‖m∞‖
        ks = np.arange(K + 1, dtype=float)
        excess = err - rho_mean**ks * scale
        out["max_excess_over_bound"] = float(np.max(excess))
        held = bool(np.all(excess <= 1e-9 * scale))
    else:
        held = bool(err[-1] <= 1e-7 * scale + 1e3 * rho_mean**K * scale)
    return held, out, float("nan")


def _affine(name: str, theorem: str, hypothesis: str, conclusion: str,
            derivation: Callable[[], Derivation], pre: Pre, held: Held, notes: str,
            section: str = "§8") -> AffineTheorem:
    """A proven statement of contract §8 with its proof in docs/affine.md (``theorem``)."""
    return AffineTheorem(name, f"derived (contract §8; docs/affine.md, Theorem {theorem})",
                         hypothesis, conclusion, "proven", section, derivation, pre, held, notes)


#: The encoded affine statements (checked by theory.theorems.check_all with the catalogue).
AFFINE_THEOREMS: tuple[AffineTheorem, ...] = (
    _affine(
        "affine-bounded", "A1",
        "ρ(T) < 1 and the drift outside the span vanishes almost surely (E[b]_V = 0 and "
        "Cov(b_V) = 0)", "converges", affine_stationary_solution, _bounded_pre, _bounded_held,
        "From every start with finite second moment, (E[δδᵀ], E[δ]) → (M∞, m∞) "
        "geometrically: sup_k E‖δ_k‖² < ∞. The converse directions are affine-null-drift "
        "(b_V ≢ 0 ⇒ unbounded) and affine-isotropic-growth (ρ(T) > 1 ⇒ unbounded from an "
        "isotropic start); at ρ(T) = 1 both outcomes occur (docs/affine.md)."),
    _affine(
        "affine-null-drift", "A2",
        "the drift outside the span is not a.s. zero (E[b]_V ≠ 0 or Cov(b_V) ≠ 0); any ρ(T), "
        "any schedule", "diverges", affine_null_solution, _null_pre, _null_held,
        "From δ_0 = 0: E‖P_Vδ_k‖² = k²‖E[b]_V‖² + k·tr Cov(b_V) exactly, so "
        "E‖δ_k‖² ≥ k²‖E[b]_V‖² + k·tr Cov(b_V) → ∞ — a mean-zero random null drift is a "
        "random walk and escapes too."),
    _affine(
        "affine-null-drift-dominates", "A3", "summed schedule, ρ(T) < 1, b_V ≢ 0", "diverges",
        null_dominance_horizon, _dominates_pre, _dominates_held,
        "The span part stays ≤ S = (√tr M∞_U + (√r‖M∞_U‖_F)^{1/2})² for every k (T "
        "self-adjoint, so ‖T^k‖ = ρ(T)^k); the null part exceeds S for k ≥ K₀, the "
        "positive root of K²‖E[b]_V‖² + K·tr Cov(b_V) = S. tightness = K₀ / observed onset "
        "(≥ 1 when the statement holds)."),
    _affine(
        "affine-isotropic-growth", "A4", "ρ(T) > 1 (any drift, any schedule)", "diverges",
        affine_kstep_solution, _growth_pre, _growth_held,
        "With E[δ_0δ_0ᵀ] = P_U, E[δ_0] = 0: E‖δ_k‖² − E‖δ_k‖²|_{δ_0=0} = tr T^k(I_U) ≥ "
        "‖T^k(I_U)‖ = ‖T^k‖ ≥ ρ(T)^k (Russo–Dye for the positive map T^k). "
        "tightness = min_k ratio (≥ 1 when the statement holds).", section="§8 (§3)"),
    _affine(
        "affine-stationary-mean", "A5",
        "ρ(E[J]) < 1 on the span (summed: 0 < ηλ(D) < 2 on the span; implied by ρ(T) < 1); "
        "any drift", "converges", summed_stationary_mean_formula, _mean_pre, _mean_held,
        "E[P_Uδ_k] → m∞ = (I − E[J])⁻¹E[b]_U; summed: m∞ = D⁻¹(αḡ_F − (1−α)ḡ_R) on the "
        "span, independent of η, the batch sizes and the scheme, and from δ_0 = 0 "
        "‖E[P_Uδ_k] − m∞‖ ≤ ρ(I − ηD)^k‖m∞‖."),
)


def get_affine_theorem(name: str) -> AffineTheorem:
    """The affine statement called ``name``."""
    return find_statement(AFFINE_THEOREMS, name)
