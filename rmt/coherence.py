"""Coherence of per-sample Hessians and its retain/forget decomposition (contract §4).

S_ij = ‖H_i^{1/2} H_j^{1/2}‖_F = √tr(H_i H_j);  σ = λ_max(S) / max_i λ_max(H_i).

For rank-one Hessians S_ij = |g_iᵀ g_j| and σ ∈ [1, n] (1: mutually orthogonal, n: identical).
Everything is computed from factor inner products (tr(H_i H_j) = ‖F_iᵀ F_j‖_F²); no d×d matrix is
formed for factor-backed sets.

**Shared curvature** (``HessianSet.from_factors(..., shared=λ or Q)``): sample i's Hessian
is H_i + C, and ⟨H_i + C, H_j + C⟩_F = tr(H_iH_j) + tr(H_iC) + tr(H_jC) + ‖C‖_F² — for C = λI
that is tr(H_iH_j) + λ(tr H_i + tr H_j) + dλ², for C = QQᵀ the traces are ‖F_iᵀQ‖_F² and
‖QᵀQ‖_F²; λ_max(H_i + C) comes from the small Gram of [F_i, Q] plus λ. Nothing is densified
(:meth:`HessianSet.trace_products`, :meth:`HessianSet.max_eigenvalues`). For sets above
``rmt.hessians.GRAM_MIN_ENTRIES`` every inner product comes from the one chunked Gram pass.
"""

from __future__ import annotations

from .schedule import mixing_weights

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse.linalg as spla

from .api import HESSIANS, analysis
from .hessians import check_hessian_set
from .validation import check_real, check_unit_interval
from .hessians import HessianSet

__all__ = ["CoherenceResult", "coherence", "coherence_of_matrix"]


def _lmax_sym(S):
    return float(np.linalg.eigvalsh(S)[-1]) if S.size else 0.0


def coherence_of_matrix(S: np.ndarray, lam_max: np.ndarray) -> float:
    """σ = λ_max(S) / max_i λ_max(H_i) for a coherence matrix S (contract §4)."""
    top = float(np.max(lam_max))
    if top <= 0:
        raise ValueError("coherence is undefined when every Hessian is zero")
    return _lmax_sym(S) / top


@dataclass(frozen=True)
class CoherenceResult:
    """Coherence of a HessianSet (contract §4).

    Attributes
    ----------
    S : (n, n) array
        Coherence matrix of all samples, retain first then forget: S_ij = √tr(H_i H_j).
    sigma : float
        σ of the union R ∪ F.
    sigma_retain, sigma_forget : float
        σ of the retain set alone and of the forget set alone (nan without a forget set).
    sigma_cross : float
        Between-set alignment ‖S_RF‖₂ / √(max_{r∈R} λ_max(H_r) · max_{f∈F} λ_max(H_f)): the largest
        singular value of the retain–forget block, normalised by the geometric mean of the two
        sets' largest per-sample curvatures. For rank-one sets it lies in [0, √(n_r n_f)]: 0 when
        every retain Hessian is orthogonal to every forget Hessian (tr(H_r H_f) = 0), √(n_r n_f)
        when all are equal. Block bound: λ_max(S) ≤ max(λ_max(S_RR), λ_max(S_FF)) + ‖S_RF‖₂.
    trace_rr, trace_ff, trace_rf : arrays
        The pair-Gram blocks tr(H_r H_r'), tr(H_f H_f'), tr(H_r H_f) (= S² entrywise).
    lam_max_retain, lam_max_forget : arrays
        λ_max(H_i) per sample.
    """

    S: np.ndarray = field(repr=False)
    sigma: float
    sigma_retain: float
    sigma_forget: float
    sigma_cross: float
    trace_rr: np.ndarray = field(repr=False)
    trace_ff: np.ndarray | None = field(repr=False)
    trace_rf: np.ndarray | None = field(repr=False)
    lam_max_retain: np.ndarray = field(repr=False)
    lam_max_forget: np.ndarray | None = field(repr=False)

    @property
    def n_retain(self) -> int:
        return self.trace_rr.shape[0]

    @property
    def S_rr(self) -> np.ndarray:
        return self.S[: self.n_retain, : self.n_retain]

    @property
    def S_ff(self) -> np.ndarray:
        return self.S[self.n_retain :, self.n_retain :]

    @property
    def S_rf(self) -> np.ndarray:
        return self.S[: self.n_retain, self.n_retain :]

    def pair_gram(self, alpha: float, sign: float = -1.0, *, max_pairs: int = 4096) -> np.ndarray:
        """Trace Gram of the retain/forget pairs A_(r,f) = a H_r + b H_f (contract §4).

        a = 1−α, b = sign·α (sign = −1 for ascent on the forget set). Entry ((r,f),(r',f')) is
        a² tr(H_r H_r') + ab[tr(H_r H_f') + tr(H_f H_r')] + b² tr(H_f H_f'); pairs are ordered
        r-major. The matrix has (n_r n_f)² entries, so it is built only up to ``max_pairs`` pairs;
        use :meth:`pair_gram_lmax` for larger sets.
        """
        a, b = self._ab(alpha, sign)
        Trr, Tff, Trf = self._pair_blocks()
        nr, nf = Trr.shape[0], Tff.shape[0]
        if nr * nf > max_pairs:
            raise ValueError(
                f"pair_gram has n_r·n_f = {nr * nf} pairs (> max_pairs={max_pairs}); "
                "use pair_gram_lmax for the top eigenvalue without building it"
            )
        G = (
            a * a * Trr[:, None, :, None]
            + a * b * (Trf[:, None, None, :] + Trf.T[None, :, :, None])
            + b * b * Tff[None, :, None, :]
        )
        return G.reshape(nr * nf, nr * nf)

    def pair_gram_lmax(self, alpha: float, sign: float = -1.0) -> float:
        """Largest eigenvalue of :meth:`pair_gram`, matrix-free (O(n_r n_f (n_r + n_f)) per product)."""
        a, b = self._ab(alpha, sign)
        Trr, Tff, Trf = self._pair_blocks()
        nr, nf = Trr.shape[0], Tff.shape[0]

        def mv(x):
            X = np.asarray(x, dtype=float).reshape(nr, nf)
            out = a * a * (Trr @ X.sum(axis=1))[:, None]
            out = out + b * b * (Tff @ X.sum(axis=0))[None, :]
            # Σ_{r',f'} tr(H_r H_f') X[r',f'] + Σ_{r',f'} tr(H_f H_r') X[r',f']
            out = out + a * b * ((Trf @ X.sum(axis=0))[:, None] + (Trf.T @ X.sum(axis=1))[None, :])
            return out.ravel()

        if nr * nf <= 64:
            return _lmax_sym(self.pair_gram(alpha, sign))
        op = spla.LinearOperator((nr * nf, nr * nf), matvec=mv, dtype=float)
        return float(spla.eigsh(op, k=1, which="LA", tol=1e-12)[0][0])

    def _pair_blocks(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(tr(H_r H_r'), tr(H_f H_f'), tr(H_r H_f)); called after :meth:`_ab`, which refuses a
        result without a forget set."""
        assert self.trace_ff is not None and self.trace_rf is not None
        return self.trace_rr, self.trace_ff, self.trace_rf

    def _ab(self, alpha, sign):
        if self.trace_ff is None:
            raise ValueError("pair quantities need a forget set")
        alpha = check_unit_interval(alpha, "alpha")
        sign = check_real(sign, "sign")
        if sign not in (-1.0, 1.0):
            raise ValueError(f"sign must be -1 (ascent) or +1 (descent), got {sign}")
        retain, forget = mixing_weights(alpha)
        return retain, sign * forget


@analysis({"hs": HESSIANS}, dynamics=False, blas=False)
def coherence(hs: HessianSet) -> CoherenceResult:
    """Coherence matrix and σ, σ_retain, σ_forget, σ_cross of a HessianSet (contract §4).

    S_ij = √tr(H_i H_j) and σ = λ_max(S)/max_i λ_max(H_i); tr(H_i H_j) comes from factor inner
    products (rank-one: (g_iᵀg_j)²), so the cost is O(n² d k²) with no d×d matrices.
    """
    check_hessian_set(hs)
    Trr = hs.trace_products("retain", "retain")
    lr = hs.max_eigenvalues("retain")
    Tff: np.ndarray | None = None
    Trf: np.ndarray | None = None
    lf: np.ndarray | None = None
    if hs.has_forget:
        Tff = hs.trace_products("forget", "forget")
        Trf = hs.trace_products("retain", "forget")
        lf = hs.max_eigenvalues("forget")
        T = np.block([[Trr, Trf], [Trf.T, Tff]])
        lam = np.concatenate([lr, lf])
    else:
        T, lam = Trr, lr
    S = np.sqrt(np.clip(T, 0.0, None))  # tr(H_i H_j) ≥ 0 for PSD pairs; clip only round-off
    S = 0.5 * (S + S.T)
    sigma = coherence_of_matrix(S, lam)
    nr = hs.n_retain
    sig_r = coherence_of_matrix(S[:nr, :nr], lr) if np.max(lr) > 0 else np.nan
    if lf is not None:  # a forget set
        sig_f = coherence_of_matrix(S[nr:, nr:], lf) if np.max(lf) > 0 else np.nan
        denom = np.sqrt(np.max(lr) * np.max(lf))
        s_rf = np.linalg.norm(S[:nr, nr:], 2)
        sig_x = float(s_rf / denom) if denom > 0 else np.nan
    else:
        sig_f = sig_x = np.nan
    return CoherenceResult(S, sigma, sig_r, sig_f, sig_x, Trr, Tff, Trf, lr, lf)
