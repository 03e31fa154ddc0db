"""The instance every catalogue check reads: a Dynamics with cached spectral quantities (contract §5).

:class:`Instance` computes ρ(T), η*, the coherence and the spectra once and every check of
:mod:`theory.theorems` reads them; callers that already have them (``rmt analyze``) pass them in
(``Instance(dyn, rate=..., exact_critical=..., coherence=...)``). Nothing here builds an r²×r²
matrix above :data:`KRON_MAX_SPAN`: the noise operator's spectral radius is found matrix-free
(:func:`noise_operator_radius`, ARPACK on its action, contract §3 "Cost").
"""

from __future__ import annotations

import math
from functools import cached_property
from typing import Union

import numpy as np
import scipy.sparse.linalg as spla

import rmt
from rmt.dynamics import Dynamics, SetTerm, as_dynamics
from rmt.hessians import HessianSet
from rmt.schedule import Schedule

__all__ = ["Instance", "InstanceLike", "KRON_MAX_SPAN", "Problem", "noise_operator_radius"]

#: what a function of :mod:`theory` takes as ``hs``: a HessianSet (with its ``schedule``) or a
#: :class:`rmt.Dynamics` (``schedule`` None)
Problem = Union[HessianSet, Dynamics]

#: Largest span dimension r for which a check may build an r²×r² Kronecker matrix (exact dense
#: eigenvalues); above it every operator quantity is computed matrix-free.
KRON_MAX_SPAN = 8


class Instance:
    """A :class:`rmt.Dynamics` with the cached spectral quantities the theorems need.

    Built from ``(hs, schedule)`` or from a Dynamics (``dyn``). Everything that defines the step —
    which sets enter it, their sizes, batches, weights, sampling coefficients and mean Hessians on
    the span — is read from ``dyn.terms`` (:meth:`term`), never re-derived from the schedule.
    """

    def __init__(self, hs: Problem, schedule: Schedule | None = None, *, rate: float | None = None,
                 exact_critical: float | None = None,
                 coherence: rmt.CoherenceResult | None = None):
        """``rate`` (ρ(T)), ``exact_critical`` (η* of :func:`rmt.critical_eta`) and
        ``coherence`` (:func:`rmt.coherence` of ``hs``) may be passed when the caller has already
        computed them for this very dynamics; they are then never recomputed."""
        self.dyn = as_dynamics(hs, schedule)
        self.hs, self.schedule = self.dyn.hs, self.dyn.schedule
        self._eigs: dict[str, np.ndarray | None] = {}
        self.supply(rate=rate, exact_critical=exact_critical, coherence=coherence)

    def supply(self, *, rate: float | None = None, exact_critical: float | None = None,
               coherence: rmt.CoherenceResult | None = None) -> None:
        """Store quantities already computed for this very dynamics (None: leave as is)."""
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

    @property
    def known_rate(self) -> float | None:
        """ρ(T) when it has been computed or supplied, else None (nothing is computed)."""
        value = self.__dict__.get("rate")
        return None if value is None else float(value)

    def term(self, which: str) -> SetTerm | None:
        """The :class:`rmt.SetTerm` of ``which`` ("retain"/"forget"), None if it does not enter."""
        return self.dyn.term(which)

    @property
    def sgd(self) -> bool:
        """Plain SGD on the retain set: only the retain set enters, without SAM's factor K."""
        return not self.dyn.combinator.preconditioned and [t.name for t in self.dyn.terms] == ["retain"]

    @cached_property
    def coherence(self) -> rmt.CoherenceResult:
        return rmt.coherence(self.hs)

    def _mean_eigenvalues(self, which):
        if which not in self._eigs:
            t = self.term(which)
            self._eigs[which] = None if t is None else np.linalg.eigvalsh(t.mean)
        return self._eigs[which]

    def lam_bar(self, which: str = "retain") -> float:
        """λ_max(H̄_S) of a set that enters the step (0 when it does not)."""
        lam = self._mean_eigenvalues(which)
        return 0.0 if lam is None else float(lam[-1])

    def lam_min_span(self, which: str = "retain") -> float:
        """λ_min(H̄_S) on the span of the dynamics (clipped at 0; 0 when S does not enter)."""
        lam = self._mean_eigenvalues(which)
        return 0.0 if lam is None else float(max(lam[0], 0.0))

    def L(self, which: str = "retain") -> float:
        """max_i λ_max(H_i) of one set (computed once per set: the statements share it)."""
        cache = self._max_eigenvalue
        if which not in cache:
            cache[which] = float(np.max(self.hs.max_eigenvalues(which)))
        return cache[which]

    @cached_property
    def _max_eigenvalue(self) -> dict:
        return {}

    def sigma(self, which: str = "retain") -> float:
        """The coherence σ_S of one set."""
        c = self.coherence
        return float(c.sigma_retain if which == "retain" else c.sigma_forget)

    @cached_property
    def unit(self) -> Dynamics:
        """The same dynamics at η = 1: its term weights are the mixing weights s_S/η exactly
        (−(1−α), α; SAM −1), so η-free quantities carry no η-dependent round-off — theorem
        instances sit at η = η_thm exactly, where one ulp decides ``applies``."""
        return self.dyn.replace(eta=1.0)

    @cached_property
    def d_extremes(self) -> tuple[float, float, float]:
        """(λ_min, λ_max, scale) of the mixed Hessian D of the dynamics on its span."""
        D = self.unit.mixed_hessian()
        lam = np.linalg.eigvalsh(0.5 * (D + D.T))
        lo, hi = float(lam[0]), float(lam[-1])
        return lo, hi, max(abs(lo), abs(hi))

    @cached_property
    def noise_radius(self) -> float:
        """ρ of the noise operator Σ_S (s_S/η)² N_S (matrix-free above KRON_MAX_SPAN)."""
        return noise_operator_radius(self)

    @cached_property
    def rate(self) -> float:
        """ρ(T), exact (:func:`rmt.mean_square_rate`)."""
        return float(rmt.mean_square_rate(self.dyn))

    @cached_property
    def exact_critical(self) -> float:
        """η*, exact (:func:`rmt.critical_eta`)."""
        return float(rmt.critical_eta(self.dyn))


#: ``hs`` of a statement: a :data:`Problem` or an :class:`Instance` of one
InstanceLike = Union[Instance, HessianSet, Dynamics]


def noise_operator_radius(inst: Instance) -> float:
    """ρ_N = ρ(Σ_S (s_S/η)² N_S) of the unit-step dynamics (contract §5.4), exactly.

    Small spans (r ≤ :data:`KRON_MAX_SPAN`): eigenvalues of the r²×r² Kronecker matrix. Larger
    spans: matrix-free — the operator is self-adjoint in the Frobenius inner product and
    completely positive (each N_S is a covariance, c·E[(Ĥ−H̄)M(Ĥ−H̄)]-type), so its spectral
    radius is its largest eigenvalue, with a PSD eigenmatrix (Krein–Rutman); ARPACK (Lanczos)
    finds it from the identity using only applications N_S(M) (O(r²·Σk) each).
    """
    terms = inst.unit.terms
    r = inst.unit.r
    if r <= KRON_MAX_SPAN:
        K = np.zeros((r * r, r * r))
        for t in terms:
            K += t.weight**2 * t.kron_noise()
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
