"""The summed T in the eigenbasis of E[J]: the mean part is elementwise (docs/contract.md §10)."""

from __future__ import annotations

import functools
import math

import numpy as np
import scipy.sparse.linalg as spla
import weakref
from dataclasses import replace

from ._linalg import _own

#: eigenbasis of E[J] and rotated factors per HessianSet (weakly held: not pickled with the
#: set, gone with it) and per (α, active sets), at most ``_EIGENBASIS_CACHE_SIZE`` each
_EIGENBASIS_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_EIGENBASIS_CACHE_SIZE = 2


class _Eigenbasis:
    """The summed T in the eigenbasis of E[J] = Q diag(a) Qᵀ: M' = QᵀMQ and

        T'(M') = (a aᵀ) ∘ M' + Σ_S s_S² N'_S(M'),

    with every set's factors, means and shared curvature rotated by Qᵀ (N_S is a congruence
    sum, so N'_S(QᵀMQ) = Qᵀ N_S(M) Q). Same spectrum as T; the mean part costs r² instead of
    2r³ per application. ``pack``/``unpack``: the isometry between symmetric r×r matrices
    (Frobenius) and R^{r(r+1)/2} (upper triangle, off-diagonal entries × √2).
    """

    def __init__(self, op):
        r = op.r
        dyn = op.dynamics
        # Scale first (docs/contract.md §10): the curvature is divided by its scale
        # s = max_S max|H̄_S| before anything is formed, and the weights carry it (w_S·s = O(η·λ)),
        # so that N_S(M) is O(1) — no overflow at curvature 1e200, no underflow at 1e-200 —
        # and every threshold below is relative.
        # E = I − E[J] = −Σ s_S H̄_S = η·[(1−α)H̄_R − αH̄_F], diagonalised directly so that
        # 1 − a_i a_j = b_i + b_j − b_i b_j (b = 1 − a) keeps its digits for tiny-curvature
        # directions (b ~ 1e-8). Its eigenvectors and the rotated factors do not depend on η or
        # the batch sizes: they are kept per HessianSet and (α, active sets), so that the
        # many evaluations of critical_eta/critical_batch pay for one eigh and one rotation
        # (module-level weak cache, see _EIGENBASIS_CACHE).
        eta = float(dyn.schedule.eta)
        key = (float(dyn.schedule.alpha), tuple(t.name for t in dyn.terms))
        cache = _EIGENBASIS_CACHE.setdefault(dyn.hs, {})
        hit = cache.get(key)
        if hit is None:
            while len(cache) >= _EIGENBASIS_CACHE_SIZE:  # α scans: keep the newest few only
                cache.pop(next(iter(cache)))
            scale = max(float(np.max(np.abs(t.mean))) if t.mean.size else 0.0 for t in dyn.terms)
            if not np.isfinite(scale):
                raise ValueError("the Hessians that enter the step are not finite "
                                 "(overflow in the reduced mean curvature)")
            if scale == 0.0:
                scale = 1.0
            E = -sum((t.weight / eta) * (t.mean / scale) for t in dyn.terms)
            d, Q = np.linalg.eigh(0.5 * (E + E.T))
            rot = lambda X: None if X is None else Q.T @ (X / scale) @ Q  # noqa: E731
            rotated = {t.name: dict(psi=(Q.T @ (t.psi.reshape(r, -1) / math.sqrt(scale))
                                         ).reshape(t.psi.shape),
                                    mean=rot(t.mean), base_mean=rot(t.base_mean),
                                    shared=rot(t.shared))
                       for t in dyn.terms}
            hit = cache[key] = (d, Q, rotated, scale)
        d, Q, rotated, scale = hit
        self._weights_per_eta = {t.name: t.weight / eta for t in dyn.terms}
        #: λ/s of a shared λI, per set (0 without shared curvature); None when some set's
        #: shared curvature is not exactly λI or enters its noise (Bernoulli)
        lam = float(dyn.shared_scalar)
        self._shared_per_set: dict | None = {}
        for t in dyn.terms:
            if t.shared is None:
                self._shared_per_set[t.name] = 0.0
            elif t.c == t.e and np.array_equal(t.shared, lam * np.eye(r)):
                self._shared_per_set[t.name] = lam / scale
            else:
                self._shared_per_set = None
                break
        #: curvature scale s (the rotated factors are divided by √s, the weights multiplied by s)
        self.scale = scale
        #: η·s: the dimensionless step (d below is the normalised mixed Hessian's spectrum)
        self.eta_scale = eta * scale
        self.d = d
        b = self.eta_scale * d
        if not np.all(np.isfinite(b)):
            raise ValueError(f"η·(curvature scale) = {self.eta_scale:.3g} overflows: η = {eta:.3g} "
                             f"is not a step size for curvature of scale {scale:.3g}")
        self.r, self.Q, self.b = r, Q, b
        #: 1 − a_i a_j (r, r), formed without cancellation, and a_i a_j
        self.one_minus_aa = b[:, None] + b[None, :] - np.outer(b, b)
        self.aa = 1.0 - self.one_minus_aa
        self.terms = [((t.weight * scale) ** 2,
                       replace(t, gradients=None, profile=None, **rotated[t.name]))
                      for t in dyn.terms]
        self._iu = np.triu_indices(r)
        self._w = np.where(self._iu[0] == self._iu[1], 1.0, math.sqrt(2.0))

    def to_basis(self, M):
        return self.Q.T @ M @ self.Q

    def from_basis(self, M):
        return self.Q @ M @ self.Q.T

    def noise(self, M):
        out = np.zeros_like(M)
        for w2, t in self.terms:
            out += w2 * t.noise(M)
        return out

    def apply(self, M):
        out = self.aa * M + self.noise(M)
        return 0.5 * (out + out.T)

    # ---------------------------------------------------------------- the recursion's fast step
    @functools.cached_property
    def recursion_apply(self):
        """M ↦ T'(M) for the moment recursions (:mod:`rmt.affine`): :meth:`apply` with the
        largest set's e·H̄⁰MH̄⁰ formed from diagonal plus low rank (below), else :meth:`apply`.

        In this basis Σ_S s_S H̄_S is diagonal (−η·diag(d)), so for the set S* with the most
        factor columns H̄⁰_* = diag(δ) + Σ_{S≠S*} γ_S Φ_SΦ_Sᵀ (Φ_S = [Ψ_i], γ_S = −s_S/(s_*·n_S),
        δ from d and a shared λI), and H̄⁰_*MH̄⁰_* costs O(r²·Σ_{S≠S*}N_S) instead of O(r²N_*) or
        O(r³): the per-step noise of a large retain set against a small forget set halves. Used
        only when the reconstruction of H̄⁰_* agrees with the rotated one to round-off
        (≤ 1e3·ε·its size); the spectral solvers keep :meth:`apply`."""
        plan = self._dominant_plan()
        if plan is None:
            return self.apply
        star, w2, delta, lows = plan
        others = [(w2o, t) for w2o, t in self.terms if t is not star]
        c, e, n = star.c, star.e, star.n
        dd = np.outer(delta, delta)

        def apply(M):
            out = self.aa * M
            if c != 0.0:
                out += (w2 * c) * star._base_quad(M)
            # H M H with H = Δ + L, L = Σ γ Φ Φᵀ = F·G (G = γ∘Fᵀ): ΔMΔ + ΔML + (ΔML)ᵀ + LML
            HMH = dd * M
            for F, G in lows:
                MF = M @ F
                DML = (delta[:, None] * MF) @ G
                HMH += DML + DML.T
                for F2, G2 in lows:
                    HMH += F2 @ ((G2 @ MF) @ G)
            out -= (w2 * e) * HMH
            for w2o, t in others:
                out += w2o * t.noise(M)
            return 0.5 * (out + out.T)

        return apply

    def _dominant_plan(self):
        """(S*, s_*², δ, [(Φ_S, γ_S·Φ_Sᵀ)]) for :attr:`recursion_apply`, or None."""
        r = self.r
        terms = self.terms
        if len(terms) < 2 or r < 32:
            return None
        cols = {t.name: t.psi.shape[1] * t.psi.shape[2] for _, t in terms}
        w2, star = max(terms, key=lambda wt: cols[wt[1].name])
        n_low = sum(cols[t.name] for _, t in terms if t is not star)
        if star.e == 0.0 or 4 * n_low > min(cols[star.name], r):
            return None
        shared = self._shared_per_set
        if shared is None:
            return None
        rho = self._weights_per_eta
        rs = rho[star.name]
        if rs == 0.0:
            return None
        # Σ_S ρ_S (H̄⁰_S + λ_S I) = −diag(d), ρ_S = s_S/η (η-free)
        delta = -(self.d + sum(rho[t.name] * shared[t.name] for _, t in terms)) / rs
        lows = []
        for _, t in terms:
            if t is star:
                continue
            F = t.psi.reshape(r, -1)
            lows.append((F, (-rho[t.name] / (rs * t.n)) * F.T))
        recon = np.diag(delta) + sum((F @ G for F, G in lows), np.zeros((r, r)))
        stored = star.base_mean
        size = float(np.max(np.abs(delta)) + np.max(np.abs(recon - np.diag(delta)))
                     + np.max(np.abs(stored)))
        if not np.all(np.isfinite(recon)) or \
                float(np.max(np.abs(recon - stored))) > 1e3 * np.finfo(float).eps * size:
            return None
        return star, w2, delta, lows

    def symmetrised_splitting(self, Dh):
        """x ↦ pack(D^{-1/2} 𝒩(D^{-1/2} M) D^{-1/2}), M = unpack(x), for D^{1/2} = ``Dh`` (r, r)
        elementwise: the symmetrised regular-splitting operator on packed coordinates."""

        def K(x):
            out = self.noise(self.unpack(x) / Dh)
            return self.pack(0.5 * (out + out.T) / Dh)

        return K

    def pole_guess(self):
        """e eᵀ + (μ − 𝒜)⁻¹𝒩(e eᵀ) with e the top eigenvector of 𝒜 and μ = ρ(𝒜); the (e, e)
        entry and any entry with μ − a_i a_j ≤ round-off are left out of the correction."""
        om = self.one_minus_aa
        k = int(np.argmin(np.diag(om)))
        E = np.zeros_like(om)
        E[k, k] = 1.0
        den = om - om[k, k]  # μ − a_i a_j at μ = ρ(𝒜) = a_k²
        ok = den > 64 * np.finfo(float).eps * max(abs(1.0 - om[k, k]), 1.0)
        ok[k, k] = False
        C = np.zeros_like(om)
        C[ok] = self.noise(E)[ok] / den[ok]
        X = E + 0.5 * (C + C.T)
        return X if np.all(np.isfinite(X)) else E

    def pack(self, M):
        return M[self._iu] * self._w

    def unpack(self, x):
        M = np.zeros((self.r, self.r))
        M[self._iu] = x / self._w
        return M + np.triu(M, 1).T

    def as_linear_operator(self):
        r = self.r

        def matvec(x):
            M = _own(x).reshape(r, r)
            return self.apply(0.5 * (M + M.T)).ravel()

        return spla.LinearOperator((r * r, r * r), matvec=matvec, dtype=float)




#: rows of :func:`sym_kron` formed per block (two block buffers of this many rows × N)
_SYM_KRON_BLOCK = 128


def sym_kron(A: np.ndarray, iu: tuple[np.ndarray, np.ndarray], w: np.ndarray, *,
             out: np.ndarray | None = None) -> np.ndarray:
    """Matrix of M ↦ A M A (A symmetric r×r) on packed symmetric coordinates (N×N, N = r(r+1)/2).

    For packed indices a = (i, j), b = (k, l) (upper triangle, off-diagonal entries × √2):
    entry = w_a·f_b·(A_ik A_jl + A_il A_jk) with f_b = 1/√2 (k < l) or 1/2 (k = l).
    ``out``: an (N, N) float array to write into (else a new one)."""
    I, J = iu
    N = len(I)
    f = np.where(I == J, 0.5, 1.0 / math.sqrt(2.0))
    if out is None:
        out = np.empty((N, N))
    # by blocks of rows, gathered from the N×r rows A[I], A[J]: the same products in the same
    # order as A[ix_(I, I)]·A[ix_(J, J)] + A[ix_(I, J)]·A[ix_(J, I)], times w_a·f_b — bit for
    # bit, with no N×N temporary (every fresh N×N array costs its page faults)
    AI, AJ = A[I], A[J]
    nb = min(_SYM_KRON_BLOCK, N)
    b1, b2 = np.empty((nb, N)), np.empty((nb, N))
    for lo in range(0, N, nb):
        hi = min(lo + nb, N)
        o, t1, t2 = out[lo:hi], b1[: hi - lo], b2[: hi - lo]
        np.take(AI[lo:hi], I, axis=1, out=o)
        np.take(AJ[lo:hi], J, axis=1, out=t1)
        o *= t1
        np.take(AI[lo:hi], J, axis=1, out=t1)
        np.take(AJ[lo:hi], I, axis=1, out=t2)
        t1 *= t2
        o += t1
        np.multiply(w[lo:hi, None], f[None, :], out=t1)
        o *= t1
    return out


def packed_columns(eig: _Eigenbasis, mean: bool = True) -> np.ndarray:
    """The packed N×N matrix of T (``mean``) or of its noise part 𝒩, by definition: column j is
    pack(T(unpack(e_j))), one application per packed basis vector (any factors, any shared term;
    the reference the fast path of :func:`packed_matrix` is tested against)."""
    N = eig.r * (eig.r + 1) // 2
    cols = np.empty((N, N))
    for j in range(N):
        x = np.zeros(N)
        x[j] = 1.0
        M = eig.unpack(x)
        Y = eig.apply(M) if mean else eig.noise(M)
        cols[:, j] = eig.pack(0.5 * (Y + Y.T))
    return cols


def packed_matrix(eig: _Eigenbasis, mean: bool = True) -> tuple[np.ndarray, float]:
    """The summed T of an :class:`_Eigenbasis` as a symmetric N×N matrix on packed coordinates,
    and an upper bound of the absolute size of its terms (for round-off allowances).

    Rank-one factors: (c/n)·P Pᵀ − e·sym_kron(H̄⁰) per set, with P = [pack(ψ_iψ_iᵀ)]
    (⟨pack X, pack Y⟩ = tr XY); otherwise column by column from ``apply``. A shared curvature C
    does not prevent this: the noise is N⁰_S + (c − e)[H̄MH̄ − H̄⁰MH̄⁰] (``SetTerm.noise``), i.e.
    N⁰_S exactly when c = e (with and without replacement; only Bernoulli has c ≠ e). Such sets
    report the Frobenius norm of the matrix as their size, as the column-by-column path does.
    ``mean=False``: the noise part 𝒩 = T − 𝒜 alone (formed directly, no subtraction)."""
    r = eig.r
    N = r * (r + 1) // 2
    if mean:
        out = np.diag(eig.aa[eig._iu])  # (aaᵀ)∘M: diagonal on packed coordinates
        size = float(np.max(np.abs(eig.aa))) if r else 0.0
    else:
        out, size = np.zeros((N, N)), 0.0
    fast = all(t.psi.shape[2] == 1 and (t.shared is None or t.c == t.e) for _, t in eig.terms)
    if fast:
        # in place, through one scratch: the same values as out += (w2·c/n)·(P Pᵀ) and
        # out −= (w2·e)·sym_kron(H̄⁰), without an N×N temporary per operation
        tmp = np.empty((N, N))
        for w2, t in eig.terms:
            psi = t.psi[:, :, 0]
            n = psi.shape[1]
            P = (psi[eig._iu[0], :] * psi[eig._iu[1], :]) * eig._w[:, None]
            np.matmul(P, P.T, out=tmp)
            tmp *= w2 * t.c / n
            out += tmp
            size += w2 * t.c / n * float(np.sum(P * P))
            if t.e != 0.0:
                sym_kron(t.base_mean, eig._iu, eig._w, out=tmp)
                tmp *= w2 * t.e
                out -= tmp
                size += 2 * w2 * t.e * float(np.sum(t.base_mean**2))
        if any(t.shared is not None for _, t in eig.terms):
            size = float(np.linalg.norm(out))  # the size the column-by-column path reports
        np.add(out, out.T, out=tmp)
        tmp *= 0.5
        out = tmp
        if not np.all(np.isfinite(out)):
            raise ValueError("the mean-square operator has non-finite entries (overflow)")
        return out, size
    else:
        out = packed_columns(eig, mean)
        size = float(np.linalg.norm(out))
    out = 0.5 * (out + out.T)
    if not np.all(np.isfinite(out)):
        raise ValueError("the mean-square operator has non-finite entries (overflow)")
    return out, size
