"""Exact mean-square stability: the operator T(M) = E[J M Jᵀ] (THEORY.md §3).

For the summed schedule

    T(M) = (I − ηD) M (I − ηD) + η²(1−α)² N_R(M) + η²α² N_F(M),      D = (1−α)H̄_R − αH̄_F,

with the per-set noise operator N_S(M) = c_S·(1/n)Σ_i H_i M H_i − e_S·H̄_S M H̄_S read off the
sampling table of THEORY §2.1:

=====================  ======================  ======================
scheme                 c_S                     e_S
=====================  ======================  ======================
bernoulli              (n−B)/(B n)             0
with_replacement       1/B                     1/B
without_replacement    (n−B)/(B(n−1))          (n−B)/(B(n−1))
=====================  ======================  ======================

Alternating: T = T_F ∘ T_R. SAM: T(M) = A M Aᵀ + η² N_R(K M K), K = I + (ρ/a)H̄, A = I − ηH̄K.

Everything is evaluated on the span U of the Hessians that enter the dynamics (reduced
coordinates from :meth:`HessianSet.reduction`): on the common null space every step is the
identity, which would pin the full spectral radius at 1 and hide the answer (THEORY §3, "Null
space"). Applying T costs O(r³ + r²·Σk) for span dimension r; no d×d matrix is formed.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import scipy.linalg
import scipy.optimize
import scipy.sparse.linalg as spla

from ._validation import (
    check_choice,
    check_finite_array,
    check_hessian_set,
    check_int,
    check_pair,
    check_unit_interval,
)
from .hessians import HessianSet
from .schedule import Schedule

__all__ = [
    "noise_coefficients",
    "MeanSquareOperator",
    "MeanSquareResult",
    "SecondMomentResult",
    "mean_square",
    "mean_square_rate",
    "second_moment",
    "critical_eta",
    "critical_batch",
    "critical_alpha",
    "mixed_hessian",
    "mixed_hessian_extremes",
]

#: Largest span dimension for which the r²×r² operator matrix is built and diagonalised directly.
DENSE_MAX_SPAN = 20


def noise_coefficients(sampling: str, n: int, batch: int) -> tuple[float, float]:
    """(c, e) with E[ĤMĤ] − H̄MH̄ = c·(1/n)Σ_i H_i M H_i − e·H̄MH̄ (THEORY §2.1)."""
    check_choice(sampling, "sampling", ("bernoulli", "with_replacement", "without_replacement"))
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


@dataclass
class _SetTerm:
    """One active set S in reduced coordinates: Ψ (r, n, k), H̄, the step weight s and (c, e)."""

    psi: np.ndarray
    mean: np.ndarray
    weight: float  # J contains + weight · Ĥ_S
    c: float
    e: float

    def quad(self, M):
        """(1/n) Σ_i H_i M H_i for symmetric M (reduced coordinates)."""
        r, n, k = self.psi.shape
        flat = self.psi.reshape(r, n * k)
        MP = M @ flat
        if k == 1:
            v = np.einsum("ab,ab->b", flat, MP)
            return (flat * v) @ flat.T / n
        P3 = self.psi
        MP3 = MP.reshape(r, n, k)
        Y = np.einsum("rna,rnb->nab", P3, MP3)
        X = np.einsum("rna,nab->rnb", P3, Y).reshape(r, n * k)
        return X @ flat.T / n

    def noise(self, M):
        """N_S(M) = c·Q_S(M) − e·H̄ M H̄."""
        r, n, k = self.psi.shape
        N = n * k
        if self.e != 0.0 and N < r:
            # Low-rank form: with Φ = [Ψ_1 … Ψ_n] (r×N) and Y = ΦᵀMΦ,
            # N_S(M) = Φ [(c/n)·blockdiag(Y_ii) − (e/n²)·Y] Φᵀ — O(r²N + rN²) instead of O(r³).
            flat = self.psi.reshape(r, N)
            Y = flat.T @ (M @ flat)
            Z = (-self.e / n**2) * Y
            blocks = Y.reshape(n, k, n, k)[np.arange(n), :, np.arange(n), :]  # (n, k, k)
            Zb = Z.reshape(n, k, n, k)
            Zb[np.arange(n), :, np.arange(n), :] += (self.c / n) * blocks
            return flat @ Z @ flat.T
        out = self.c * self.quad(M) if self.c != 0.0 else np.zeros_like(M)
        if self.e != 0.0:
            out -= self.e * (self.mean @ M @ self.mean)
        return out

    def kron_noise(self):
        """Row-major Kronecker matrix of N_S (r²×r²), for small r."""
        hs = np.einsum("rna,sna->nrs", self.psi, self.psi)
        Kq = np.einsum("nab,ncd->acbd", hs, hs).reshape(hs.shape[1] ** 2, -1) / hs.shape[0]
        return self.c * Kq - self.e * np.kron(self.mean, self.mean)


class MeanSquareOperator:
    """The mean-square operator T(M) = E[J M Jᵀ] on symmetric r×r matrices of the span (THEORY §3).

    Attributes: ``r`` (span dimension), ``null_dim``, ``reduction`` (the span coordinates),
    ``mean_map`` (E[J] on the span), ``self_adjoint`` (True for the summed schedule, whose T is
    self-adjoint in the Frobenius inner product).
    """

    def __init__(self, hs: HessianSet, schedule: Schedule):
        check_pair(hs, schedule)
        self.hs, self.schedule = hs, schedule
        sch = schedule
        use_r = sch.uses_retain
        use_f = sch.uses_forget and sch.schedule != "sam"
        red = hs.reduction(use_r, use_f)
        self.reduction = red
        self.r = red.r
        self.null_dim = red.null_dim
        if self.r == 0:
            raise ValueError(
                "every Hessian that enters the dynamics is zero: the step is the identity and "
                "there is no span on which to measure stability"
            )
        eye = np.eye(self.r)
        self.terms = {}
        if use_r:
            c, e = noise_coefficients(sch.sampling, hs.n_retain, sch.batch)
            self.terms["retain"] = _SetTerm(
                red.psi_retain, red.mean("retain"), -sch.eta * (1.0 - sch.alpha), c, e
            )
        if use_f:
            c, e = noise_coefficients(sch.sampling, hs.n_forget, sch.batch_forget)
            self.terms["forget"] = _SetTerm(
                red.psi_forget, red.mean("forget"), sch.eta * sch.alpha, c, e
            )
        if sch.schedule == "summed":
            self.mean_map = eye + sum(t.weight * t.mean for t in self.terms.values())
        elif sch.schedule == "alternating":
            maps = {w: eye + t.weight * t.mean for w, t in self.terms.items()}
            self.mean_map = maps.get("forget", eye) @ maps.get("retain", eye)
            self._step_maps = maps
        else:  # sam
            Hbar = self.terms["retain"].mean
            self._K = eye + (sch.sam_rho / sch.sam_a) * Hbar
            self.mean_map = eye - sch.eta * Hbar @ self._K
        self.self_adjoint = sch.schedule == "summed"

    # ------------------------------------------------------------------ application
    def _step(self, which, M):
        t = self.terms[which]
        A = self._step_maps[which]
        return A @ M @ A + t.weight**2 * t.noise(M)

    def apply(self, M: np.ndarray) -> np.ndarray:
        """T(M) for a symmetric (r, r) matrix M in span coordinates."""
        sch = self.schedule.schedule
        if sch == "summed":
            A = self.mean_map
            out = A @ M @ A
            for t in self.terms.values():
                out += t.weight**2 * t.noise(M)
        elif sch == "alternating":
            out = M
            for w in ("retain", "forget"):
                if w in self.terms:
                    out = self._step(w, out)
        else:
            A, K = self.mean_map, self._K
            out = A @ M @ A.T + self.schedule.eta**2 * self.terms["retain"].noise(K @ M @ K)
        return 0.5 * (out + out.T)

    def matrix(self) -> np.ndarray:
        """The r²×r² matrix of T in row-major vec coordinates (small r only)."""
        sch = self.schedule.schedule
        if self.r > 60:
            raise ValueError(f"matrix() is for small spans (r <= 60); this one has r={self.r}")
        if sch == "summed":
            A = self.mean_map
            out = np.kron(A, A)
            for t in self.terms.values():
                out += t.weight**2 * t.kron_noise()
            return out
        if sch == "alternating":
            out = np.eye(self.r**2)
            for w in ("retain", "forget"):
                if w in self.terms:
                    t, A = self.terms[w], self._step_maps[w]
                    out = (np.kron(A, A) + t.weight**2 * t.kron_noise()) @ out
            return out
        A, K = self.mean_map, self._K
        KK = np.kron(K, K)
        return np.kron(A, A) + self.schedule.eta**2 * self.terms["retain"].kron_noise() @ KK

    def as_linear_operator(self) -> spla.LinearOperator:
        """T as a :class:`scipy.sparse.linalg.LinearOperator` on vec(M) (symmetrised input)."""
        r = self.r

        def matvec(x):
            M = np.asarray(x, dtype=float).reshape(r, r)
            return self.apply(0.5 * (M + M.T)).ravel()

        return spla.LinearOperator((r * r, r * r), matvec=matvec, dtype=float)

    # ------------------------------------------------------------------ spectrum
    def rate(self, method="auto", tol=1e-12):
        """Spectral radius ρ(T) on the span and its PSD eigenmatrix → (rate, eigenmatrix, method, converged)."""
        check_choice(method, "method", ("auto", "closed_form", "dense", "arpack"))
        if method == "auto":
            if self.hs.kind == "commuting":
                method = "closed_form"
            elif self.r <= DENSE_MAX_SPAN:
                method = "dense"
            else:
                method = "arpack"
        if method == "closed_form":
            if self.hs.kind != "commuting":
                raise ValueError("method='closed_form' needs a commuting HessianSet")
            rate, k = _commuting_rate(self.hs, self.schedule)
            return rate, None, method, True
        if method == "dense":
            vals, vecs = np.linalg.eig(self.matrix())
            i = int(np.argmax(np.abs(vals)))
            V = np.real(vecs[:, i]).reshape(self.r, self.r)
            return float(np.abs(vals[i])), _normalise_psd(V), method, True
        return self._arpack(tol)

    def _arpack(self, tol):
        r = self.r
        if r < 3:
            return self.rate("dense")
        op = self.as_linear_operator()
        v0 = (np.eye(r) / np.sqrt(r)).ravel()
        converged = True
        try:
            if self.self_adjoint:
                vals, vecs = spla.eigsh(op, k=1, which="LA", v0=v0, tol=tol, maxiter=20 * r * r)
            else:
                vals, vecs = spla.eigs(op, k=1, which="LM", v0=v0, tol=tol, maxiter=20 * r * r)
        except spla.ArpackNoConvergence as exc:  # report, never hide
            converged = False
            if len(exc.eigenvalues) == 0:
                raise RuntimeError("ARPACK did not converge for the mean-square operator") from exc
            vals, vecs = exc.eigenvalues, exc.eigenvectors
            warnings.warn("ARPACK did not fully converge; rate may be inaccurate", RuntimeWarning)
        i = int(np.argmax(np.abs(vals)))
        V = np.real(vecs[:, i]).reshape(r, r)
        return float(np.abs(vals[i])), _normalise_psd(V), "arpack", converged


def _normalise_psd(V):
    V = 0.5 * (V + V.T)
    tr = np.trace(V)
    if tr < 0:
        V = -V
    norm = np.linalg.norm(V)
    return V / norm if norm > 0 else V


# ---------------------------------------------------------------------- commuting closed forms
def _commuting_moments(hs, schedule):
    """Per-direction mean m_S,k and noise N_S,k for each active set of a commuting HessianSet."""
    sch = schedule
    use_f = sch.uses_forget and sch.schedule != "sam"
    sets = [w for w, on in (("retain", sch.uses_retain), ("forget", use_f)) if on]
    active = np.zeros(hs.dim, dtype=bool)
    for w in sets:
        active |= np.any(hs.eigenvalues(w) > 0, axis=0)
    out = {}
    for w in sets:
        lam = hs.eigenvalues(w)[:, active]
        n = lam.shape[0]
        B = sch.batch if w == "retain" else sch.batch_forget
        c, e = noise_coefficients(sch.sampling, n, B)
        m = lam.mean(axis=0)
        out[w] = (m, c * (lam**2).mean(axis=0) - e * m**2)
    return out, active


def _commuting_direction_rates(hs, schedule):
    """E[j_k²] per active direction (the diagonal of T in the shared basis)."""
    sch = schedule
    mom, _ = _commuting_moments(hs, sch)
    a, b, eta = 1.0 - sch.alpha, sch.alpha, sch.eta
    if sch.schedule == "sam":
        m, N = mom["retain"]
        kappa = 1.0 + (sch.sam_rho / sch.sam_a) * m
        return (1.0 - eta * kappa * m) ** 2 + eta**2 * kappa**2 * N
    weights = {"retain": -eta * a, "forget": eta * b}
    if sch.schedule == "summed":
        mean = 1.0 + sum(weights[w] * m for w, (m, N) in mom.items())
        var = sum(weights[w] ** 2 * N for w, (m, N) in mom.items())
        return mean**2 + var
    prod = 1.0
    for w, (m, N) in mom.items():
        prod = prod * ((1.0 + weights[w] * m) ** 2 + weights[w] ** 2 * N)
    return prod


def _commuting_rate(hs, schedule):
    rates = _commuting_direction_rates(hs, schedule)
    if rates.size == 0:
        raise ValueError("every Hessian that enters the dynamics is zero")
    k = int(np.argmax(rates))
    return float(rates[k]), k


# ---------------------------------------------------------------------- results
@dataclass(frozen=True)
class MeanSquareResult:
    """Result of :func:`mean_square`.

    ``rate`` = ρ(T) on the span (E‖w_k‖² grows like rate^k; > 1 means the iterates escape w*,
    i.e. the model **forgets**; ≤ 1 means it **resists**). ``eigenmatrix`` is the top eigenmatrix in
    span coordinates (PSD by Krein–Rutman, Frobenius-normalised; None for closed forms),
    ``span_dim``/``null_dim`` the dimensions of the span and of the common null space, ``method``
    the algorithm used and ``converged`` whether the eigensolver converged.
    """

    rate: float
    eigenmatrix: np.ndarray | None = field(repr=False)
    span_dim: int
    null_dim: int
    method: str
    converged: bool

    @property
    def diverges(self) -> bool:
        """ρ(T) > 1: the model escapes w* in mean square (forgets)."""
        return self.rate > 1.0

    @property
    def verdict(self) -> str:
        return "diverges (forgets)" if self.diverges else "converges (resists)"


def mean_square(hs: HessianSet, schedule: Schedule, *, method="auto", tol=1e-12) -> MeanSquareResult:
    """Exact mean-square analysis on the span of the Hessians (THEORY §3).

    ρ(T) is the spectral radius of T(M) = E[J M Jᵀ] restricted to symmetric matrices on the span
    U of the Hessians that enter J. ``method``: ``"closed_form"`` (commuting sets:
    ρ = max_k E[j_k²]), ``"dense"`` (eigenvalues of the r²×r² matrix, r ≤ 60), ``"arpack"``
    (matrix-free Lanczos/Arnoldi from the identity, which overlaps the PSD top eigenmatrix), or
    ``"auto"`` (closed form if commuting, dense for r ≤ 20, ARPACK otherwise).
    """
    op = MeanSquareOperator(hs, schedule)
    rate, V, used, conv = op.rate(method=method, tol=tol)
    return MeanSquareResult(rate, V, op.r, op.null_dim, used, conv)


def mean_square_rate(hs: HessianSet, schedule: Schedule, *, method="auto", tol=1e-12) -> float:
    """ρ(T): the mean-square growth rate per step on the span of the Hessians (THEORY §3).

    T(M) = E[J M Jᵀ]; for the summed schedule
    T(M) = (I−ηD)M(I−ηD) + η²(1−α)²N_R(M) + η²α²N_F(M). E‖w_k‖² ~ ρ(T)^k on the span;
    ρ(T) > 1 ⇔ the iterates escape w* (the model forgets). The null-space dimension is
    ``hs.null_dim`` (or :func:`mean_square` for a result object). See :func:`mean_square`.
    """
    return mean_square(hs, schedule, method=method, tol=tol).rate


# ---------------------------------------------------------------------- second moment
@dataclass(frozen=True)
class SecondMomentResult:
    """Exact E‖w_k‖² for k = 0..steps (THEORY §3: E[w_k w_kᵀ] = T^k(E[w_0 w_0ᵀ])).

    ``total`` = E‖w_k‖² (shape steps+1), ``span`` = the part on the span of the Hessians,
    ``null`` = the (constant) part on the common null space, ``matrices`` = E[w_k w_kᵀ] as
    (steps+1, d, d) when requested.
    """

    total: np.ndarray
    span: np.ndarray
    null: float
    matrices: np.ndarray | None = field(default=None, repr=False)


def second_moment(hs, schedule, steps, m0=None, *, return_matrices=False) -> SecondMomentResult:
    """Exact second moments E‖w_k‖², k = 0..steps, by iterating T (THEORY §3).

    ``m0`` is E[w_0 w_0ᵀ] as a (d, d) PSD matrix, or a vector w_0 of shape (d,) (deterministic
    start, m0 = w_0 w_0ᵀ), or None for m0 = I. With w = u + v (u on the span U, v on the null
    space), v is frozen and ‖w‖² = ‖u‖² + ‖v‖², so E‖w_k‖² = tr T^k(Uᵀm0U) + tr(P_N m0).
    """
    op = MeanSquareOperator(hs, schedule)
    steps = check_int(steps, "steps", minimum=0)
    d, U = hs.dim, op.reduction.basis
    if m0 is None:
        vec = None
        Muu = np.eye(op.r)
        null = float(d - op.r)
    else:
        m0 = check_finite_array(m0, "m0", ndim=(1, 2))
        if m0.ndim == 1:
            if m0.shape != (d,):
                raise ValueError(f"m0 as a vector must have shape ({d},), got {m0.shape}")
            vec = m0
            u = U.T @ m0
            Muu = np.outer(u, u)
            null = float(max(m0 @ m0 - u @ u, 0.0))
        else:
            if m0.shape != (d, d):
                raise ValueError(f"m0 must have shape ({d}, {d}), got {m0.shape}")
            if np.max(np.abs(m0 - m0.T)) > 1e-10 * max(np.max(np.abs(m0)), 1e-300):
                raise ValueError("m0 must be symmetric (a second-moment matrix E[w0 w0ᵀ])")
            if np.linalg.eigvalsh(m0)[0] < -1e-10 * max(np.max(np.abs(m0)), 1e-300):
                raise ValueError("m0 must be positive semi-definite (a second-moment matrix)")
            vec = None
            Muu = U.T @ m0 @ U
            null = float(np.trace(m0) - np.trace(Muu))
    span = np.empty(steps + 1)
    mats = None
    if return_matrices:
        if m0 is None:
            full0 = np.eye(d)
        elif vec is not None:
            full0 = np.outer(vec, vec)
        else:
            full0 = m0
        PN = np.eye(d) - U @ U.T
        C = U.T @ full0 @ PN  # cross moment E[u vᵀ] in span coordinates: evolves by E[J]
        NN = PN @ full0 @ PN
        mats = np.empty((steps + 1, d, d))
    M = Muu
    for k in range(steps + 1):
        span[k] = np.trace(M)
        if mats is not None:
            UC = U @ C
            mats[k] = U @ M @ U.T + UC + UC.T + NN
            C = op.mean_map @ C
        if k < steps:
            M = op.apply(M)
    return SecondMomentResult(span + null, span, null, mats)


# ---------------------------------------------------------------------- mixed Hessian
def mixed_hessian(hs: HessianSet, alpha: float, *, matrix_free=False):
    """Mixed Hessian D = (1−α)H̄_R − αH̄_F (THEORY §2), so that E[J] = I − ηD.

    Returns a dense (d, d) array, or with ``matrix_free=True`` a
    :class:`scipy.sparse.linalg.LinearOperator` that applies D through the factors (O(n d k) per
    product, no d×d matrix).
    """
    check_hessian_set(hs)
    alpha = check_unit_interval(alpha, "alpha")
    if alpha > 0 and not hs.has_forget:
        raise ValueError(f"alpha={alpha} > 0 needs a forget set, but the HessianSet has none")
    parts = [("retain", 1.0 - alpha)] + ([("forget", -alpha)] if alpha > 0 else [])
    if not matrix_free:
        return sum(w * hs.mean(s) for s, w in parts if w != 0.0) + np.zeros((hs.dim, hs.dim))
    flats = []
    for s, w in parts:
        F = hs.factors(s)
        n, d, k = F.shape
        flats.append((F.transpose(1, 0, 2).reshape(d, n * k), w / n))

    def matvec(v):
        v = np.asarray(v, dtype=float).reshape(hs.dim, -1)
        return sum(w * (P @ (P.T @ v)) for P, w in flats)

    return spla.LinearOperator((hs.dim, hs.dim), matvec=matvec, matmat=matvec, dtype=float)


def mixed_hessian_extremes(hs: HessianSet, alpha: float) -> tuple[float, float]:
    """(λ_min, λ_max) of D = (1−α)H̄_R − αH̄_F restricted to the span of the active Hessians.

    Restricting to the span means a round-off "eigenvalue" of D on the common null space is never
    reported as an escape direction (THEORY §5.4). λ_min < 0 means the mean dynamics already
    escape along that direction.
    """
    D = _reduced_mixed(hs, alpha)
    vals = np.linalg.eigvalsh(D)
    return float(vals[0]), float(vals[-1])


def _reduced_mixed(hs, alpha):
    check_hessian_set(hs)
    alpha = check_unit_interval(alpha, "alpha")
    if alpha > 0 and not hs.has_forget:
        raise ValueError(f"alpha={alpha} > 0 needs a forget set, but the HessianSet has none")
    red = hs.reduction(alpha < 1.0, alpha > 0.0)
    if red.r == 0:
        raise ValueError("every Hessian that enters D is zero")
    D = np.zeros((red.r, red.r))
    if alpha < 1:
        D += (1 - alpha) * red.mean("retain")
    if alpha > 0:
        D -= alpha * red.mean("forget")
    return D


# ---------------------------------------------------------------------- critical values
def _rate_at(hs, schedule, **changes):
    return mean_square_rate(hs, schedule.replace(**changes))


def critical_eta(hs: HessianSet, schedule: Schedule, *, rtol=1e-10) -> float:
    """Critical learning rate η*: the edge of the stable interval (0, η*] where ρ(T) ≤ 1.

    The schedule's own ``eta`` is ignored. Returns 0.0 when no η > 0 is stable (e.g.
    λ_min(D) < 0 on the span: the mean dynamics escape for every step size).

    Summed schedule: T(η) = I − ηL + η²Q is self-adjoint, so (ρ(T(η)) − 1)/η =
    max_M ⟨M, (−L + ηQ)M⟩/‖M‖² is a maximum of affine functions of η, hence convex; its
    sublevel set {≤ 0} is an interval, so η* is also the *largest* stable η and a bracketing
    root-finder is exact. Commuting sets use the closed form η* = min_k 2D_k/(D_k² + V_k)
    (THEORY §3). For the alternating and SAM schedules the stable set need not be an interval:
    η* is the first loss of stability, located by a geometric scan and refined with Brent's method.
    """
    check_pair(hs, schedule)
    if hs.kind == "commuting":
        return _commuting_critical_eta(hs, schedule)
    if schedule.schedule == "sam":
        op0 = MeanSquareOperator(hs, schedule)
        Hb = op0.terms["retain"].mean
        D = Hb @ op0._K
        lam = np.linalg.eigvals(D).real
    else:
        D = _reduced_mixed(hs, schedule.alpha)
        lam = np.linalg.eigvalsh(D)
    scale = max(abs(lam[0]), abs(lam[-1]), np.max(np.abs(lam)))
    lmin, lmax = float(np.min(lam)), float(np.max(lam))
    if lmin <= 1e-12 * scale:
        return 0.0

    def g(eta):
        return (_rate_at(hs, schedule, eta=eta) - 1.0) / eta

    if schedule.schedule == "summed":
        hi = 2.0 / lmax  # ρ(T) ≥ ρ(E[J])² > 1 beyond this
        if g(hi) <= 0:
            return hi
        lo = hi
        for _ in range(200):
            lo *= 0.5
            if g(lo) < 0:
                break
        else:
            return 0.0
        return float(scipy.optimize.brentq(g, lo, hi, rtol=rtol, xtol=1e-300))
    return _first_crossing(g, 1e-6 / lmax, 2.0 / lmin, rtol)


def _first_crossing(g, lo, hi_hint, rtol, grid=64):
    """First sign change of g from ≤ 0 to > 0 on a geometric grid starting at lo."""
    if g(lo) > 0:
        return 0.0
    hi = hi_hint
    for _ in range(60):
        pts = np.geomspace(lo, hi, grid)
        vals = [g(p) for p in pts]
        for a, b, ga, gb in zip(pts[:-1], pts[1:], vals[:-1], vals[1:]):
            if ga <= 0 < gb:
                return float(scipy.optimize.brentq(g, a, b, rtol=rtol, xtol=1e-300))
        lo, hi = hi, hi * 4
    return math.inf


def _commuting_critical_eta(hs, schedule):
    mom, _ = _commuting_moments(hs, schedule)
    a, b = 1.0 - schedule.alpha, schedule.alpha
    if schedule.schedule == "sam":
        m, N = mom["retain"]
        kappa = 1.0 + (schedule.sam_rho / schedule.sam_a) * m
        with np.errstate(divide="ignore", invalid="ignore"):
            etas = np.where(m > 0, 2.0 * m / (kappa * (m**2 + N)), 0.0)
        return float(np.min(etas))
    coef = {"retain": -a, "forget": b}  # J ∋ η·coef·Ĥ
    if schedule.schedule == "summed":
        D = -sum(coef[w] * m for w, (m, N) in mom.items())
        V = sum(coef[w] ** 2 * N for w, (m, N) in mom.items())
        scale = max(float(np.max(np.abs(D))), float(np.max(V)), 1e-300)
        frozen = (np.abs(D) <= 1e-14 * scale) & (V <= 1e-14 * scale**2)
        if np.any((D <= 1e-14 * scale) & ~frozen):
            return 0.0
        etas = np.where(frozen, np.inf, 2.0 * D / np.where(frozen, 1.0, D**2 + V))
        return float(np.min(etas))
    # alternating: per direction Π_S [(1 + η c_S m_S)² + η² c_S² N_S] − 1, a quartic in η
    best = math.inf
    k_dirs = next(iter(mom.values()))[0].size
    for k in range(k_dirs):
        poly = np.polynomial.Polynomial([1.0])
        for w, (m, N) in mom.items():
            cm = coef[w] * m[k]
            poly = poly * np.polynomial.Polynomial([1.0, 2 * cm, cm**2 + coef[w] ** 2 * N[k]])
        p = (poly - 1.0).trim(tol=0.0)
        coeffs = p.coef
        if coeffs.size <= 1 or np.all(np.abs(coeffs) <= 1e-15 * np.max(np.abs(poly.coef))):
            continue  # direction is frozen (identity)
        q = np.polynomial.Polynomial(coeffs[1:])  # p(η) = η q(η)
        if q(0.0) > 0:
            return 0.0
        roots = q.roots()
        pos = np.sort(roots[(np.abs(roots.imag) <= 1e-9 * np.abs(roots)) & (roots.real > 0)].real)
        crit = math.inf
        for rt in pos:
            if q(rt * (1 + 1e-9)) > 0:
                crit = float(rt)
                break
        best = min(best, crit)
    return best


def critical_batch(hs: HessianSet, schedule: Schedule):
    """Smallest batch size B* with ρ(T) ≤ 1 (the schedule's own ``batch`` is ignored).

    The forget batch follows B when ``forget_batch`` is None. ρ(T) is non-increasing in B for
    every scheme: each noise operator is c(B)·(a completely positive map) with c(B) decreasing,
    and T is monotone in its noise part on the PSD cone — so a bisection over integers is exact.
    Returns None when even the largest admissible batch is unstable.
    """
    check_pair(hs, schedule)
    sizes = []
    if schedule.uses_retain:
        sizes.append(hs.n_retain)
    if schedule.uses_forget and schedule.forget_batch is None:
        sizes.append(hs.n_forget)
    hi = min(sizes) if sizes else schedule.batch

    def stable(B):
        return _rate_at(hs, schedule, batch=B) <= 1.0

    if not stable(hi):
        return None
    lo = 1
    if stable(lo):
        return 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if stable(mid):
            hi = mid
        else:
            lo = mid
    return hi


def critical_alpha(hs: HessianSet, schedule: Schedule, *, grid=64, rtol=1e-10):
    """Critical mixing weight α* = inf{α ∈ [0, 1] : ρ(T) > 1} (the schedule's ``alpha`` is ignored).

    Returns 0.0 if already unstable at α = 0 or α = 0⁺ — in particular, exactly, whenever the
    forget set has a curvature direction outside the retain span, which ascent escapes along for
    every α > 0 — and None if stable for every α ∈ [0, 1]. Located by a uniform scan of ``grid`` points and refined with Brent's method.
    """
    check_pair(hs, schedule.replace(alpha=0.0) if schedule.schedule != "sam" else schedule)
    if not hs.has_forget:
        raise ValueError("critical_alpha needs a HessianSet with a forget set")
    if schedule.schedule == "sam":
        raise ValueError("critical_alpha is not defined for schedule='sam' (alpha must be 0)")

    # A forget direction outside the retain span is an escape direction of D for every α > 0
    # (vᵀDv = −α vᵀH̄_F v < 0), so the infimum is exactly 0 — decided here, not by a root-finder.
    if hs.reduction(True, True).r > hs.reduction(True, False).r:
        return 0.0

    def f(alpha):
        return _rate_at(hs, schedule, alpha=float(alpha)) - 1.0

    pts = np.linspace(0.0, 1.0, grid + 1)
    prev = None
    for p in pts:
        val = f(p)
        if val > 0:
            if prev is None:
                return 0.0
            return float(scipy.optimize.brentq(f, prev, p, rtol=rtol))
        prev = p
    return None
