"""One unlearning step, defined once: :class:`Dynamics` (contract §2, §2.1, §8).

A :class:`Dynamics` is the validated pair (HessianSet, Schedule) with everything that defines the
random step, in span coordinates:

    δ_{k+1} = J_k δ_k + b_k

**Set terms.** Each set S that enters the step with a non-zero weight is one :class:`SetTerm`:
its size n, batch B, weight s (J contains s·Ĥ_S), sampling coefficients (c, e), reduced factors
Ψ_i = UᵀF_i, reduced mean H̄_S and, when per-sample gradients were given, the reduced gradients.

    retain   s = −η(1−α)      (descent)            skipped when α = 1
    forget   s = +ηα          (ascent)             skipped when α = 0, and for SAM
    SAM      s = −η on retain, and Ĥ is followed by K = I + (ρ/a)H̄_R

with the batch Hessian Ĥ_S = (1/B) Σ_i x_i H_i and batch gradient ĝ_S = (1/B) Σ_i x_i g_i drawn
with the *same* indicators x (contract §8).

**Combinator** (``Dynamics.combinator``): how the set terms make one step. Each term is the
affine map  a_S(δ) = (I + s_S Ĥ_S K) δ + s_S g̃_S,  and

    "summed"       J = I + Σ_S s_S Ĥ_S,                 b = Σ_S s_S ĝ_S
    "alternating"  J = A_F A_R,  A_S = I + s_S Ĥ_S,      b = A_F s_R ĝ_R + s_F ĝ_F   (retain, then forget)
    "sam"          J = I − η Ĥ_R K,                      b = −η (ĝ_R + (ρ/a) Ĥ_R ḡ_R)

(the SAM drift is the linearisation of the gradient at the ascent point w + (ρ/a)∇L_R(w), so
g̃_i = g_i + (ρ/a) H_i ḡ_R). :meth:`Dynamics.step` evaluates exactly this for given batch
indicators: it is the definition every other module (mean-square operator, Monte Carlo kernels,
closed forms, theorem instances, test oracles) must agree with.

**Sampling coefficients** (contract §2.1). For any two per-sample quantities u_i, v_i,
E[û ⊗ v̂] − ū ⊗ v̄ = c·(1/n)Σ_i u_i ⊗ v_i − e·ū ⊗ v̄, with

    bernoulli            c = (n−B)/(B n)      e = 0
    with_replacement     c = 1/B              e = 1/B
    without_replacement  c = (n−B)/(B(n−1))   e = c

**Shared curvature** (``HessianSet.from_factors(..., shared=λ or Q)``): every sample's
Hessian is H_i + C. On the span, C is part of every reduced Hessian (``SetTerm.shared``; the mean
includes it, and Ĥ_S = Ĥ⁰_S + (|batch|/B)·C, random only for Bernoulli sampling, whence the extra
noise (c − e)[H̄MH̄ − H̄⁰MH̄⁰]). With C ∋ λI the null space N of the factors is no longer frozen:
it is invariant and every J is one scalar j there (``null_step``; mean, E[j²], E log|j| and its
law in ``null_mean``/``null_rate``/``null_exponent``/``null_distribution``), i.e. a commuting
direction of eigenvalue λ for every sample. Analyses take the maximum over the span and this
closed-form mode.

**Coordinates.** U (d×r) is an orthonormal basis of the span of the active Hessians; on its
complement every J is the identity (contract §3, "Null space") — or the null scalar j with a
shared λI. When gradients are present their
components outside U span V (d×q); there the step is δ ↦ δ + (drift), a linear walk (contract §8).
Affine quantities live in the p = r + q coordinates [U, V]; whatever lies outside [U, V] is
frozen.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from numbers import Integral

from .validation import Interval, Options, check_choice, check_int, constrained
from .hessians import HessianSet, check_hessian_set
from .schedule import SAMPLING_SCHEMES, Schedule

__all__ = ["Dynamics", "SetTerm", "ZeroSpanError", "noise_coefficients", "as_dynamics"]


@constrained({"sampling": [Options(SAMPLING_SCHEMES)], "n": [Interval(Integral, 1, None)],
              "batch": [Interval(Integral, 1, None)]})
def noise_coefficients(sampling: str, n: int, batch: int) -> tuple[float, float]:
    """(c, e) with E[ĤMĤ] − H̄MH̄ = c·(1/n)Σ_i H_i M H_i − e·H̄MH̄ (contract §2.1)."""
    check_choice(sampling, "sampling", SAMPLING_SCHEMES)
    n = check_int(n, "n", minimum=1)
    batch = check_int(batch, "batch", minimum=1, maximum=n)
    if sampling == "bernoulli":
        return (n - batch) / (batch * n), 0.0
    if sampling == "with_replacement":
        return 1.0 / batch, 1.0 / batch
    if n == 1:
        return 0.0, 0.0
    c = (n - batch) / (batch * (n - 1))
    return c, c


class ZeroSpanError(ValueError):
    """Every Hessian that enters the step is zero: there is no span (a ValueError)."""


@dataclass(frozen=True, eq=False)
class SetTerm:
    """One active set S of the step, in span coordinates (module docstring).

    ``name`` ("retain"/"forget"), ``n``, ``batch``, ``weight`` s (J ∋ s·Ĥ_S), ``c``/``e``
    (sampling coefficients), ``psi`` (r, n, k) reduced factors, ``mean`` H̄_S (r×r),
    ``gradients`` (n, p) reduced per-sample drift vectors g̃_i in [U, V] coordinates (None
    without gradients), ``profile`` (n, r) per-direction eigenvalues for commuting sets (None
    otherwise).
    """

    name: str
    n: int
    batch: int
    weight: float
    c: float
    e: float
    psi: np.ndarray = field(repr=False)
    mean: np.ndarray = field(repr=False)
    gradients: np.ndarray | None = field(default=None, repr=False)
    profile: np.ndarray | None = field(default=None, repr=False)
    #: shared curvature C = λI + QQᵀ in span coordinates (r, r), or None; ``mean``
    #: includes it and ``base_mean`` = (1/n)ΣΨ_iΨ_iᵀ does not
    shared: np.ndarray | None = field(default=None, repr=False)
    shared_scalar: float = 0.0
    base_mean: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.base_mean is None:
            object.__setattr__(self, "base_mean",
                               self.mean if self.shared is None else self.mean - self.shared)

    @property
    def size_variance(self) -> float:
        """Var(|batch|/B) = c − e: the randomness of the realised batch size (Bernoulli only).

        The shared term enters Ĥ_S as (|batch|/B)·C, so it is deterministic unless this is > 0."""
        return self.c - self.e

    @functools.cached_property
    def mean_gradient(self) -> np.ndarray | None:
        """ḡ_S (p,), or None without gradients (computed once: read-only)."""
        if self.gradients is None:
            return None
        out = self.gradients.mean(axis=0)
        out.flags.writeable = False
        return out

    def hessians(self) -> np.ndarray:
        """Reduced per-sample Hessians Ψ_iΨ_iᵀ + C (n, r, r): tests and small problems only."""
        out = np.einsum("rna,sna->nrs", self.psi, self.psi)
        return out if self.shared is None else out + self.shared[None]

    def batch_hessian(self, x: ArrayLike) -> np.ndarray:
        """Ĥ_S = (1/B) Σ_i x_i (Ψ_iΨ_iᵀ + C) for indicators/counts ``x`` (n,)."""
        r, n, k = self.psi.shape
        x = np.asarray(x, float)
        flat = self.psi.reshape(r, n * k)
        out = (flat * np.repeat(x, k)) @ flat.T / self.batch
        if self.shared is not None:
            out = out + (x.sum() / self.batch) * self.shared
        return out

    def batch_gradient(self, x: ArrayLike) -> np.ndarray:
        """ĝ_S = (1/B) Σ_i x_i g̃_i (p,) (zero without gradients is *not* implied: needs gradients)."""
        assert self.gradients is not None, "batch_gradient needs a term with gradients"
        return np.asarray(x, float) @ self.gradients / self.batch

    def quad(self, M: np.ndarray) -> np.ndarray:
        """(1/n) Σ_i H_i M H_i for symmetric M (r×r), H_i = Ψ_iΨ_iᵀ + C."""
        out = self._base_quad(M)
        C = self.shared
        if C is not None:
            assert self.base_mean is not None  # set by __post_init__
            HC = self.base_mean @ M @ C
            out = out + HC + HC.T + C @ M @ C
        return out

    def _base_quad(self, M):
        r, n, k = self.psi.shape
        flat = self.psi.reshape(r, n * k)
        MP = M @ flat
        if k == 1:
            v = np.einsum("ab,ab->b", flat, MP)
            return (flat * v) @ flat.T / n
        MP3 = MP.reshape(r, n, k)
        Y = np.einsum("rna,rnb->nab", self.psi, MP3)
        X = np.einsum("rna,nab->rnb", self.psi, Y).reshape(r, n * k)
        return X @ flat.T / n

    def noise(self, M: np.ndarray) -> np.ndarray:
        """N_S(M) = c·(1/n)Σ_i H_i M H_i − e·H̄ M H̄ = E[ĤMĤ] − H̄MH̄ (contract §2.1).

        With a shared term (H_i = H⁰_i + C): N_S = N⁰_S + (c − e)·[H̄MH̄ − H̄⁰MH̄⁰], which vanishes
        unless the batch size is random (Bernoulli)."""
        out = self._base_noise(M)
        if self.shared is not None and self.c != self.e:
            H0, H = self.base_mean, self.mean
            out = out + (self.c - self.e) * (H @ M @ H - H0 @ M @ H0)
        return out

    def _base_noise(self, M):
        r, n, k = self.psi.shape
        N = n * k
        if self.e != 0.0 and N < r:
            # Low-rank form: with Φ = [Ψ_1 … Ψ_n] (r×N) and Y = ΦᵀMΦ,
            # N_S(M) = Φ [(c/n)·blockdiag(Y_ii) − (e/n²)·Y] Φᵀ — O(r²N + rN²) instead of O(r³).
            flat = self.psi.reshape(r, N)
            Y = flat.T @ (M @ flat)
            Z = (-self.e / n**2) * Y
            blocks = Y.reshape(n, k, n, k)[np.arange(n), :, np.arange(n), :]
            Zb = Z.reshape(n, k, n, k)
            Zb[np.arange(n), :, np.arange(n), :] += (self.c / n) * blocks
            return flat @ Z @ flat.T
        out = self.c * self._base_quad(M) if self.c != 0.0 else np.zeros_like(M)
        if self.e != 0.0:
            out -= self.e * (self.base_mean @ M @ self.base_mean)
        return out

    def kron_noise(self) -> np.ndarray:
        """Row-major Kronecker matrix of N_S (r²×r²), small r only."""
        psi = self.psi
        hs = np.einsum("rna,sna->nrs", psi, psi)
        r = hs.shape[1]
        H0 = self.base_mean
        assert H0 is not None  # set by __post_init__
        Kq = np.einsum("nab,ncd->acbd", hs, hs).reshape(r * r, r * r) / self.n
        out = self.c * Kq - self.e * np.kron(H0, H0)
        if self.shared is not None and self.c != self.e:
            out = out + (self.c - self.e) * (np.kron(self.mean, self.mean) - np.kron(H0, H0))
        return out

    def cross_noise(self, v: np.ndarray) -> np.ndarray:
        """E[Ĥ v ĝᵀ] − H̄ v ḡᵀ = c·(1/n)Σ_i H_i v g̃_iᵀ − e·H̄ v ḡᵀ, shape (r, p), for v (r,)."""
        r, n, k = self.psi.shape
        gb = self.mean_gradient
        assert self.gradients is not None and gb is not None, "cross_noise needs gradients"
        if k == 1:  # rank-one samples: Σ_i ψ_i(ψ_iᵀv)g̃_iᵀ = Ψ·diag(Ψᵀv)·G, by BLAS
            flat = self.psi.reshape(r, n)
            out = (self.c / n) * (flat @ ((flat.T @ v)[:, None] * self.gradients))
        else:
            proj = np.einsum("rnk,r->nk", self.psi, v)  # Ψ_iᵀ v
            Hv = np.einsum("rnk,nk->rn", self.psi, proj)  # H⁰_i v, (r, n)
            out = (self.c / n) * (Hv @ self.gradients)
        if self.e != 0.0:
            out -= self.e * np.outer(self.base_mean @ v, gb)
        if self.shared is not None and self.c != self.e:
            out += (self.c - self.e) * np.outer(self.shared @ v, gb)
        return out

    def gradient_noise(self) -> np.ndarray:
        """Cov(ĝ) = c·(1/n)Σ_i g̃_i g̃_iᵀ − e·ḡḡᵀ, shape (p, p) (computed once: read-only)."""
        return self._gradient_noise

    @functools.cached_property
    def _gradient_noise(self):
        G = self.gradients
        out = (self.c / self.n) * (G.T @ G)
        if self.e != 0.0:
            gb = self.mean_gradient
            out -= self.e * np.outer(gb, gb)
        out.flags.writeable = False
        return out


class Dynamics:
    """The random affine step δ ↦ J δ + b of one unlearning schedule on one HessianSet.

    Build it once with ``Dynamics(hs, schedule)`` (validates the pair) and pass it to any
    analysis in place of ``(hs, schedule)``. Immutable; :meth:`replace` gives the dynamics of a
    changed schedule on the same set (span coordinates are cached on the HessianSet).

    Attributes
    ----------
    hs, schedule : the inputs.
    combinator : "summed", "alternating" or "sam" (module docstring).
    terms : tuple of :class:`SetTerm`, in application order (retain, then forget).
    basis : U (d, r), orthonormal basis of the span of the active Hessians.
    r, span_dim : r.   null_dim : d − r.   dim : d.
    K : (r, r) SAM factor I + (ρ/a)H̄_R (identity for the other combinators).
    mean_map : E[J] on the span (r, r).
    has_drift : per-sample gradients enter the step.
    drift_basis : V (d, q), directions outside the span that the drift reaches (q = 0 without).
    p : r + q, the dimension of the affine coordinates [U, V].
    """

    def __init__(self, hs: HessianSet, schedule: Schedule):
        check_pair(hs, schedule)
        self.hs, self.schedule = hs, schedule
        sch = schedule
        comb = self.combinator = sch.combinator
        use_r = sch.uses_retain
        use_f = sch.uses_forget and comb.takes_forget
        self.active = tuple(w for w, on in (("retain", use_r), ("forget", use_f)) if on)
        _check_gradients(hs, self.active)
        red = hs.reduction(use_r, use_f)
        self.reduction = red
        self.basis = red.basis
        self.r = self.span_dim = red.r
        self.dim = hs.dim
        self.null_dim = red.null_dim
        if self.r == 0:
            raise ZeroSpanError(
                f"every Hessian that enters the dynamics is zero (active sets "
                f"{', '.join(self.active) or 'none'} at alpha={sch.alpha}; with alpha=1 only the "
                "forget set enters): the step is the identity and there is no span on which to "
                "measure stability"
            )
        eye = np.eye(self.r)
        weights = sch.step_weights
        batches = {"retain": sch.batch, "forget": sch.batch_forget}
        means = {w: red.mean(w) for w in self.active}
        self.K = comb.precondition(sch, means.get("retain"), eye)
        # shared curvature λI: on the null space N every J is the scalar j (below)
        self.shared_scalar = red.shared_scalar
        self.has_null_mode = red.has_null_mode
        self.null_kappa = comb.kappa(sch, red.shared_scalar)
        self.has_drift = hs.has_gradients and any(
            hs.gradients(w) is not None for w in self.active)
        grads, self.drift_basis = self._affine_gradients(means) if self.has_drift else ({}, None)
        if self.drift_basis is None:
            self.drift_basis = np.zeros((self.dim, 0))
        self.q = self.drift_basis.shape[1]
        self.p = self.r + self.q
        profiles = self._profiles() if hs.kind == "commuting" else {}
        shared = red.shared_matrix()
        terms = []
        for w in self.active:
            psi = red.psi(w)
            assert psi is not None  # the reduction covers every active set
            c, e = noise_coefficients(sch.sampling, hs.size(w), batches[w])
            terms.append(SetTerm(w, hs.size(w), batches[w], weights[w], c, e, psi,
                                 means[w], grads.get(w), profiles.get(w), shared=shared,
                                 shared_scalar=red.shared_scalar,
                                 base_mean=red.mean(w, shared=False) if shared is not None
                                 else None))
        self.terms = tuple(terms)
        self.step_maps = {t.name: eye + t.weight * t.mean @ self.K for t in self.terms}
        self.mean_map = comb.mean_map(eye, self.terms, self.step_maps, self.K)

    # ------------------------------------------------------------------ construction helpers
    def _affine_gradients(self, means):
        """Per-term drift vectors g̃_i in [U, V] coordinates and the drift basis V."""
        if self.hs._large:
            return self._affine_gradients_gram()
        U = self.basis
        raw = {w: self.hs.gradients(w) for w in self.active}
        kap = self.combinator.ascent(self.schedule)
        if kap:  # SAM: g̃_i = g_i + (ρ/a) H_i ḡ_R  (module docstring)
            g = raw["retain"]
            gbar = g.mean(axis=0)
            gbar_u = U.T @ gbar
            psi = self.reduction.psi("retain")
            Hg = np.einsum("rnk,nk->nr", psi, np.einsum("rnk,r->nk", psi, gbar_u))
            C = self.reduction.shared_matrix()
            extra = 0.0
            if C is not None:  # (H_i + C)ḡ: C ḡ = λḡ + QQᵀḡ; λ's out-of-span part is λ(ḡ − UUᵀḡ)
                Hg = Hg + (C @ gbar_u)[None, :]
                extra = self.shared_scalar * (gbar - U @ gbar_u)
            raw = {"retain": g + kap * (Hg @ U.T + extra)}
        span = {w: g @ U for w, g in raw.items()}
        resid = np.concatenate([raw[w] - span[w] @ U.T for w in self.active], axis=0)
        # a residual at the round-off of the projection (relative to the whole gradient stack)
        # is not a direction: only genuine out-of-span drift gets a coordinate in V
        scale = float(np.linalg.norm(np.concatenate(list(raw.values()))))
        V = np.zeros((self.dim, 0))
        if scale > 0 and resid.size:
            Uv, s, _ = np.linalg.svd(resid.T, full_matrices=False)
            tol = 10 * max(resid.shape) * np.finfo(float).eps * scale
            V = Uv[:, : int(np.sum(s > tol))]
        out = {w: np.concatenate([span[w], raw[w] @ V], axis=1) for w in self.active}
        return out, V

    def _affine_gradients_gram(self):
        """Large d: the same drift coordinates from the joint Gram (no pass over d; see
        ``HessianSet._drift_geometry``). SAM's g̃_i = g_i + (ρ/a)(H_i + C)ḡ_R is Σ_j B_ij g_j
        (B = I + (ρ/a)λ/n·𝟙ᵀ, the λḡ part) plus a span vector (ρ/a)(Ψ_iΨ_iᵀ + Ψ_QΨ_Qᵀ)ḡ_u."""
        sizes = [self.hs.size(w) for w in self.active]
        n_a = sum(sizes)
        B, extra = np.eye(n_a), np.zeros((n_a, self.r))
        kap = self.combinator.ascent(self.schedule)
        if kap:
            B = B + kap * self.shared_scalar / n_a
            psi, red = self.reduction.psi("retain"), self.reduction

            def extra(P):
                gbar_u = P.mean(axis=0)
                Hg = np.einsum("rnk,nk->nr", psi, np.einsum("rnk,r->nk", psi, gbar_u))
                if red.shared_psi is not None:
                    Hg = Hg + (red.shared_psi @ (red.shared_psi.T @ gbar_u))[None, :]
                return kap * Hg
        coords, V = self.hs._drift_geometry(self.reduction, self.active, B, extra)
        out, start = {}, 0
        for w, n in zip(self.active, sizes):
            out[w] = coords[start : start + n]
            start += n
        return out, V

    def _profiles(self):
        """Per-direction eigenvalues (n, r) of a commuting set on the active directions."""
        active = np.zeros(self.dim, dtype=bool)
        for w in self.active:
            active |= np.any(self.hs.eigenvalues(w) > 0, axis=0)
        return {w: self.hs.eigenvalues(w)[:, active] for w in self.active}

    # ------------------------------------------------------------------ views
    @functools.cached_property
    def results_cache(self) -> dict:
        """Results of analyses of this (immutable) dynamics, keyed by the analysis' options, so
        that analyses that each need e.g. ρ(T) solve once."""
        return {}

    def term(self, name: str) -> SetTerm | None:
        """The :class:`SetTerm` called ``name``, or None when that set does not enter the step."""
        for t in self.terms:
            if t.name == name:
                return t
        return None

    @property
    def sampling(self) -> str:
        return self.schedule.sampling

    @property
    def eta(self) -> float:
        return self.schedule.eta

    def replace(self, **changes: Any) -> "Dynamics":
        """The dynamics of ``schedule.replace(**changes)`` on the same HessianSet."""
        return Dynamics(self.hs, self.schedule.replace(**changes))

    def mixed_hessian(self) -> np.ndarray:
        """D = −Σ_S (s_S/η) H̄_S K on the span: (1−α)H̄_R − αH̄_F, SAM H̄_R K (E[J] = I − ηD when summed)."""
        return sum(-t.weight / self.eta * t.mean for t in self.terms) @ self.K

    def mean_drift(self) -> np.ndarray:
        """E[b] in [U, V] coordinates (p,); zeros without drift."""
        if not self.has_drift:
            return np.zeros(self.p)
        drifts = []  # s_S ḡ_S per term
        for t in self.terms:
            gbar = t.mean_gradient
            assert gbar is not None  # has_drift: every active set has gradients (_check_gradients)
            drifts.append(t.weight * gbar)
        if self.combinator.products:
            out = np.zeros(self.p)
            for t, drift in zip(self.terms, drifts):  # E[A_F s_R ĝ_R] = E[A_F] s_R ḡ_R
                out = self._pad_map(self.step_maps[t.name], 1.0 + t.weight * self.shared_scalar) \
                    @ out + drift                      # (independent batches)
            return out
        return sum(drifts, np.zeros(self.p))

    def _pad_map(self, A, null=1.0):
        """An (r, r) span map extended by ``null``·I on the drift directions V (they lie in the
        null space, where a map is the identity — or the null scalar with a shared λI)."""
        if self.q == 0:
            return A
        out = null * np.eye(self.p)
        out[: self.r, : self.r] = A
        return out

    # ------------------------------------------------------------------ the null mode (shared λI)
    def null_moments(self) -> list[tuple[SetTerm, np.ndarray, np.ndarray]]:
        """Per term (term, m, N) of the null-space scalar: m = λ, N = (c − e)λ² — the null space is a
        commuting direction on which every sample's Hessian is λ (contract §3, commuting)."""
        lam = self.shared_scalar
        return [(t, np.array([lam]), np.array([t.size_variance * lam**2])) for t in self.terms]

    def null_step(self, indicators: dict[str, ArrayLike]) -> float:
        """The scalar j that J is on the null space N for given batch indicators (1 without λ)."""
        lam, out = self.shared_scalar, 1.0
        for t in self.terms:
            x = np.asarray(indicators[t.name], float)
            a = t.weight * lam * self.null_kappa * x.sum() / t.batch
            out = self.combinator.chain(out, a)
        return float(out)

    def null_cross_map(self) -> np.ndarray:
        """E[j·J] on the span (r, r): how the cross moment E[u vᵀ] between the span part u and
        the null part v evolves. j and J share the batch, Cov(|batch|/B, Ĥ) = (c − e)H̄, so
        summed/SAM: E[jJ] = E[j]E[J] + Σ_S (s_Sλκ)s_S(c_S − e_S)H̄_S K; alternating: the product of
        the per-set factors E[j_S A_S] = E[j_S]E[A_S] + s_S²λ(c_S − e_S)H̄_S."""
        lam, eye = self.shared_scalar, np.eye(self.r)
        if self.combinator.products:
            out = eye
            for t in self.terms:
                E = (1.0 + t.weight * lam) * self.step_maps[t.name] \
                    + t.weight**2 * lam * t.size_variance * t.mean
                out = E @ out
            return out
        out = self.null_mean * self.mean_map
        for t in self.terms:
            out = out + (t.weight * lam * self.null_kappa) * t.weight * t.size_variance \
                * (t.mean @ self.K)
        return out

    @property
    def null_mean(self) -> float:
        """E[j] on the null space (1.0 without a null mode)."""
        if not self.has_null_mode:
            return 1.0
        lam = self.shared_scalar
        if self.combinator.products:
            return float(np.prod([1.0 + t.weight * lam for t in self.terms]))
        return 1.0 + sum(t.weight * lam for t in self.terms) * self.null_kappa

    @property
    def null_rate(self) -> float | None:
        """E[j²]: the mean-square rate of the null mode (None without a null mode).

        summed/SAM: (1 + κλΣ_S s_S)² + κ²λ²Σ_S s_S²(c_S − e_S); alternating: Π_S[(1 + s_Sλ)² +
        s_S²λ²(c_S − e_S)] — exactly :meth:`direction_rates` for a direction of eigenvalue λ."""
        if not self.has_null_mode:
            return None
        return float(self.combinator.rates(self.null_moments(), self.null_kappa)[0])

    @property
    def null_exponent(self) -> float | None:
        """E log|j|: the Lyapunov exponent of the null mode (None without a null mode).

        Deterministic j unless the sampling is Bernoulli; then |batch_S| ~ Binomial(n_S, B_S/n_S),
        independent across sets, and the expectation is a finite sum (−inf if j = 0 has positive
        probability)."""
        if not self.has_null_mode:
            return None
        vals, probs = self.null_distribution()
        with np.errstate(divide="ignore"):
            logs = np.log(np.abs(vals))
        if np.any(np.isneginf(logs)):
            return -math.inf
        return float(np.sum(probs * logs))

    def null_log_moment(self, p: ArrayLike) -> np.ndarray:
        """log E|j|^p for an array of p (the moment Lyapunov function of the null mode)."""
        vals, probs = self.null_distribution()
        p = np.atleast_1d(np.asarray(p, float))
        with np.errstate(divide="ignore"):
            la = np.log(np.abs(vals))
        out = np.empty(p.size)
        for i, q in enumerate(p):
            terms = np.where(np.isneginf(la), (0.0 if q == 0 else -np.inf), q * la)
            terms = np.where(np.isneginf(la) & (q < 0), np.inf, terms)
            out[i] = float(np.log(np.sum(probs * np.exp(terms - terms.max()))) + terms.max()) \
                if np.isfinite(terms.max()) else float(terms.max())
        return out

    def null_distribution(self) -> tuple[np.ndarray, np.ndarray]:
        """(values, probabilities) of the null scalar j (finite support).

        Deterministic unless the sampling is Bernoulli; then |batch_S| ~ Binomial(n_S, B_S/n_S),
        independent across sets (sizes whose probability is below 1e-17 of the most likely one
        are left out, so the support stays O(√B) wide)."""
        from scipy.stats import binom

        lam = self.shared_scalar
        dists = []
        for t in self.terms:
            if self.sampling == "bernoulli":
                k = np.arange(t.n + 1)
                pk = binom.pmf(k, t.n, t.batch / t.n)
            else:
                k, pk = np.array([t.batch]), np.array([1.0])
            keep = pk > 1e-17 * pk.max()  # the neglected tail carries < n·1e-17 of the mass
            dists.append((t.weight * lam * self.null_kappa * k[keep] / t.batch, pk[keep]))
        vals, probs = np.array([1.0]), np.array([1.0])
        for a, pk in dists:
            vals = self.combinator.chain(vals[:, None], a[None, :]).ravel()
            probs = (probs[:, None] * pk[None, :]).ravel()
        return vals, probs

    # ------------------------------------------------------------------ the step itself
    def step(self, indicators: dict[str, ArrayLike]) -> tuple[np.ndarray, np.ndarray]:
        """(J, b) for given batch indicators/counts: ``{"retain": x_R (n_R,), "forget": x_F}``.

        J is (p, p) in [U, V] coordinates (identity on V — or the null scalar
        :meth:`null_step` with a shared λI), b is (p,) (zeros without drift).
        This is the definition of one step (module docstring); tests use it as the oracle that
        every operator and kernel must agree with.
        """
        eye = np.eye(self.p)
        J, b = eye.copy(), np.zeros(self.p)
        for t in self.terms:
            x = np.asarray(indicators[t.name], float)
            if x.shape != (t.n,):
                raise ValueError(f"indicators[{t.name!r}] must have shape ({t.n},), got {x.shape}")
            A = eye + _pad_zero(t.weight * t.batch_hessian(x) @ self.K, self.p)
            if self.q and self.shared_scalar > 0.0:  # V lies in the null space: J = j there
                A[self.r:, self.r:] *= 1.0 + (t.weight * self.shared_scalar * self.null_kappa
                                              * x.sum() / t.batch)
            bt = t.weight * t.batch_gradient(x) if t.gradients is not None else np.zeros(self.p)
            J, b = self.combinator.compose(J, b, A, bt, eye)
        return J, b

    # ------------------------------------------------------------------ commuting closed forms
    def direction_moments(self) -> list[tuple[SetTerm, np.ndarray, np.ndarray]]:
        """Commuting sets: per term (term, m_k, N_k) on the active directions, with
        m_k = mean eigenvalue and N_k = c·mean(λ_k²) − e·m_k² (contract §3, commuting)."""
        if self.hs.kind != "commuting":
            raise ValueError(f"direction moments need a commuting HessianSet, got {self.hs.kind!r}")
        out = []
        for t in self.terms:
            lam = t.profile
            assert lam is not None  # commuting sets carry their profiles
            m = lam.mean(axis=0)
            out.append((t, m, t.c * (lam**2).mean(axis=0) - t.e * m**2))
        return out

    def direction_factors(self) -> list[tuple]:
        """Commuting sets: per term the quadratic E[a_k²] = 1 + 2 s κ m + s²κ²(m² + N) of its
        per-direction factor, as coefficient arrays (a0, a1, a2) in powers of η (κ = SAM factor)."""
        out = []
        for t, m, N in self.direction_moments():
            u = t.weight / self.eta  # s = u·η
            kappa = self.combinator.kappa(self.schedule, m)
            out.append((t, np.ones_like(m), 2 * u * kappa * m, u**2 * kappa**2 * (m**2 + N)))
        return out

    def direction_rates(self) -> np.ndarray:
        """Commuting sets: E[j_k²] per active direction (the diagonal of T, contract §3)."""
        moms = self.direction_moments()
        kappa = self.combinator.kappa(self.schedule, moms[0][1]) \
            if self.combinator.preconditioned else 1.0
        return self.combinator.rates(moms, kappa)

    def __repr__(self):
        parts = ", ".join(f"{t.name}(n={t.n}, B={t.batch}, s={t.weight:.4g})" for t in self.terms)
        drift = f", drift q={self.q}" if self.has_drift else ""
        null = f", shared λ={self.shared_scalar:.4g}" if self.shared_scalar > 0 else ""
        return (f"Dynamics({self.combinator}, {self.schedule.sampling}, r={self.r}, "
                f"null_dim={self.null_dim}{null}{drift}: {parts})")


def _pad_zero(A, p):
    r = A.shape[0]
    if r == p:
        return A
    out = np.zeros((p, p))
    out[:r, :r] = A
    return out


def _check_gradients(hs, active):
    """Per-sample gradients must be given for every active set or for none (contract §8)."""
    if not hs.has_gradients:
        return
    have = [w for w in active if hs.gradients(w) is not None]
    missing = [w for w in active if hs.gradients(w) is None]
    if have and missing:
        raise ValueError(
            f"per-sample gradients were given for the {have[0]} set but not for the "
            f"{missing[0]} set, which also enters the step: pass {missing[0]}_gradients "
            "(zeros if that set is interpolated)"
        )


def as_dynamics(hs: HessianSet | Dynamics, schedule: Schedule | None = None) -> Dynamics:
    """Normalise the ``(hs, schedule)`` arguments of a public function into a :class:`Dynamics`.

    Accepts a Dynamics (``schedule`` must then be None) or a HessianSet and a Schedule.
    """
    if isinstance(hs, Dynamics):
        if schedule is not None:
            raise TypeError("pass either a Dynamics or (HessianSet, Schedule), not both")
        return hs
    if schedule is None:
        raise TypeError("schedule is required when hs is a HessianSet (or pass a Dynamics)")
    return Dynamics(hs, schedule)


def check_pair(hs: HessianSet, schedule: Schedule) -> None:
    """Type-check a (HessianSet, Schedule) pair and that the schedule can run on the set."""
    check_hessian_set(hs)
    if not isinstance(schedule, Schedule):
        raise TypeError(f"schedule must be a Schedule, got {type(schedule).__name__}")
    schedule.validate_for(hs)
