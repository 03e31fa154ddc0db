"""Exact moments of affine unlearning at a non-interpolating minimum (contract §8).

**Shared curvature λI**: the drift directions V and the rest of the null space are no
longer frozen: J is the null scalar j there (``Dynamics.null_step``), correlated with the batch
through the realised batch size under Bernoulli sampling; the recursion below treats every
sample's Hessian as H_i + λI on all p coordinates, which is exact.

Linearised about w*, with δ_k = w_k − w* and the *same* batch for the matrix and the drift,

    δ_{k+1} = J_k δ_k + b_k       (J_k, b_k from :class:`rmt.Dynamics`; b_k = 0 at an
                                   interpolating minimum)

The pair (M_k, m_k) = (E[δ_kδ_kᵀ], E[δ_k]) follows an exact linear recursion. For one random
affine map a(δ) = Aδ + b, independent of δ,

    m' = E[A] m + E[b]
    M' = E[A M Aᵀ] + X + Xᵀ + E[b bᵀ],        X = E[A m bᵀ]

and for a set term A = I + sĤK, b = s g̃̂ (batch means with the same indicators):

    E[A M Aᵀ] = Ā M Āᵀ + s² N(K M K)                      (N: the noise operator of contract §2.1)
    X         = Ā m b̄ᵀ + s² (c/n Σ_i H_i K m g̃_iᵀ − e H̄ K m ḡᵀ)
    E[bbᵀ]    = b̄ b̄ᵀ + s² (c/n Σ_i g̃_i g̃_iᵀ − e ḡ ḡᵀ)

(summed: the set terms add inside one map, independent batches add their covariances;
alternating: the retain map, then the forget map). Everything lives in the p = r + q affine
coordinates [U, V] of the Dynamics: on V (drift directions outside the Hessian span) J is the
identity, so the mean moves linearly there forever, E[δ_k]_V = E[δ_0]_V + k·E[b]_V.

**Stationary answers** (ρ(T) < 1 and no drift outside the span): E[δ_k] → m∞ with
(I − E[J]) m∞ = E[b] (summed: m∞ = D⁻¹(αḡ_F − (1−α)ḡ_R)/... on the span), and
E[δδᵀ] → M∞, the solution of the Lyapunov-type equation (I − T) M∞ = X(m∞) + X(m∞)ᵀ + E[bbᵀ].
With zero gradients everything reduces to contract §3 (m ≡ E[δ_0]·E[J]^k, M_k = T^k(M_0)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import cast

import numpy as np
import numpy.typing as npt
import scipy.sparse.linalg as spla

from .validation import Array, check_finite_array, check_int
from .dynamics import Dynamics, as_dynamics
from .hessians import HessianSet
from .schedule import Schedule
from .api import NON_NEGATIVE, POSITIVE, analysis, at_least
from .span import hstack_bases, lift, project

__all__ = ["AffineMoments", "StationaryResult", "affine_moments", "stationary", "start_coordinates"]


def _maps(dyn: Dynamics):
    """The independent random affine maps of one step, in order: lists of set terms per map."""
    return dyn.combinator.groups(dyn.terms)


def _apply_map(dyn, terms, M, m):
    """(M', m') after one random affine map made of ``terms`` (module docstring).

    With a shared λI the drift directions V lie in the null space, where the map is the scalar
    1 + Σ s(|batch|/B)λκ: the per-sample Hessians are H_i + λI on all p coordinates, and the
    Bernoulli batch-size noise (c − e) couples the V block to the span block.
    """
    r, p, K = dyn.r, dyn.p, dyn.K
    eye = np.eye(r)
    lam, kv = dyn.shared_scalar, dyn.null_kappa
    null_v = lam > 0.0 and p > r  # V carries the null scalar, not the identity
    sam = dyn.combinator.preconditioned  # K = I otherwise: skip its products (2r³ + r³ per step)
    step_sum = sum(t.weight * t.mean for t in terms)
    A = eye + (step_sum @ K if sam else step_sum)
    # Ā = blockdiag(A, a_V·I): a_V = 1 on the drift directions V, or the null scalar's mean
    a_v = 1.0 + sum(t.weight for t in terms) * lam * kv if null_v else 1.0
    drift = dyn.has_drift
    bbar = sum(t.weight * t.mean_gradient for t in terms) if drift else np.zeros(p)
    Mu = M[:r, :r]
    KMK = K @ Mu @ K.T if sam else Mu
    out = np.empty_like(M)  # Ā M Āᵀ by blocks: O(r²p) instead of O(p³)
    AMuv = A @ M[:r, r:]
    out[:r, :r] = A @ Mu @ A.T
    out[:r, r:] = a_v * AMuv
    out[r:, :r] = a_v * (M[r:, :r] @ A.T)
    out[r:, r:] = a_v**2 * M[r:, r:]
    Am = np.concatenate([A @ m[:r], a_v * m[r:]])
    noise = sum(t.weight**2 * t.noise(KMK) for t in terms)
    out[:r, :r] += noise
    if null_v:  # (c − e)[H̄ₚ X H̄ₚ − H̄⁰ₚ X H̄⁰ₚ] outside the uu block, X = KₚMKₚ
        for t in terms:
            v = t.weight**2 * t.size_variance
            if v == 0.0:
                continue
            Xuv = kv * (K @ M[:r, r:] if sam else M[:r, r:])
            blk = v * lam * (t.mean @ Xuv)
            out[:r, r:] += blk
            out[r:, :r] += blk.T
            out[r:, r:] += v * lam**2 * kv**2 * M[r:, r:]
    m_new = Am + bbar
    if drift:
        X = np.outer(Am, bbar)
        Km = K @ m[:r] if sam else m[:r]
        for t in terms:
            X[:r, :] += t.weight**2 * t.cross_noise(Km)
            if null_v and t.size_variance != 0.0:
                X[r:, :] += t.weight**2 * t.size_variance * lam * kv * np.outer(m[r:],
                                                                                t.mean_gradient)
        out += X + X.T + np.outer(bbar, bbar)
        for t in terms:
            out += t.weight**2 * t.gradient_noise()
    return 0.5 * (out + out.T), m_new


def affine_step(dyn: Dynamics, M: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One exact step of the moment recursion: (M, m) ↦ (E[δ'δ'ᵀ], E[δ']) in [U, V] coordinates."""
    for terms in _maps(dyn):
        M, m = _apply_map(dyn, terms, M, m)
    return M, m


def start_coordinates(dyn: Dynamics, start: str | npt.ArrayLike | None
                      ) -> tuple[np.ndarray, np.ndarray, float]:
    """Split a start into affine coordinates and a frozen remainder.

    ``start``: None (δ_0 = 0), a vector (d,) (deterministic δ_0), a PSD matrix (d, d) =
    E[δ_0δ_0ᵀ] with mean zero, or ``"span"``: a random unit vector on the span U of the Hessians
    (E[δ_0δ_0ᵀ] = UUᵀ/r, mean zero; no d×d matrix, so it works at any d). Returns (M0 (p,p), m0 (p,), frozen_sq) where frozen_sq is the
    constant E‖δ_0‖² outside [U, V].
    """
    p, d = dyn.p, dyn.dim
    if start is None:
        return np.zeros((p, p)), np.zeros(p), 0.0
    if isinstance(start, str):
        if start != "span":
            raise ValueError(f"start as a string must be 'span', got {start!r}")
        if dyn.r == 0:
            raise ValueError("start='span' needs a non-empty span of the Hessians (r = 0)")
        M0 = np.zeros((p, p))
        M0[: dyn.r, : dyn.r] = np.eye(dyn.r) / dyn.r
        return M0, np.zeros(p), 0.0
    W = hstack_bases(dyn.basis, dyn.drift_basis)
    s0 = check_finite_array(start, "start", ndim=(1, 2))
    if s0.ndim == 1:
        if s0.shape != (d,):
            raise ValueError(f"start as a vector must have shape ({d},), got {s0.shape}")
        c = project(W, s0)
        frozen = 0.0 if W.shape[1] == d else max(float(s0 @ s0 - c @ c), 0.0)
        return np.outer(c, c), c, frozen
    if s0.shape != (d, d):
        raise ValueError(f"start as a second-moment matrix must have shape ({d}, {d}), "
                         f"got {s0.shape}")
    scale = max(float(np.max(np.abs(s0))), 1e-300)
    if np.max(np.abs(s0 - s0.T)) > 1e-10 * scale or np.linalg.eigvalsh(s0)[0] < -1e-10 * scale:
        raise ValueError("start as a matrix must be symmetric positive semi-definite "
                         "(a second moment E[δ0 δ0ᵀ])")
    W = np.asarray(W)  # a (d, d) second moment: small d only
    M0 = W.T @ s0 @ W
    frozen = 0.0 if W.shape[1] == d else max(float(np.trace(s0) - np.trace(M0)), 0.0)
    return M0, np.zeros(p), frozen


#: Largest packed dimension N = r(r+1)/2 for which :func:`final_moments` diagonalises T densely
#: (:func:`_packed_eigh` of N×N: 0.7 s at N = 2145, one BLAS thread) instead of iterating the
#: recursion.
SPECTRAL_MAX_PACKED = 3200


def _concat(x: tuple, y: tuple) -> tuple:
    """Sums over K steps then L steps, from those over K (x) and over L (y) (:func:`final_moments`).

    A run of length L carries (λ^L (N,), a^L (r,), g_L(a) = Σ_{t<L} a^t (r,),
    h_L(λ, a) = Σ_{j<L} λ^{L−1−j} a^j (N, r), h_L(λ, 1) (N,), u_L = Σ_{j<L} λ^{L−1−j} g_j(a)
    (N, r)); every update is a sum of products, so nothing is divided or cancelled."""
    lk, ak, gk, hk, h1k, uk = x
    ll, al, gl, hl, h1l, ul = y
    return (lk * ll, ak * al, gk + ak * gl, ll[:, None] * hk + ak[None, :] * hl,
            ll * h1k + h1l, ll[:, None] * uk + gk[None, :] * h1l[:, None] + ak[None, :] * ul)


#: Packed dimension from which :func:`_packed_eigh` diagonalises through the tridiagonal form
#: (below it: ``numpy.linalg.eigh``, which is the same LAPACK computation plus a back-transform)
TRIDIAGONAL_MIN_PACKED = 2


def _packed_eigh(Tp: np.ndarray, overwrite: bool = False):
    """(λ, Vᵀ·, V·) of the symmetric Tp = V diag(λ) Vᵀ without forming V (:func:`final_moments`).

    ``numpy.linalg.eigh`` is LAPACK's dsyevd: Householder tridiagonalisation Tp = Q T Qᵀ
    (dsytrd, lower), divide and conquer on T = Z diag(λ) Zᵀ (dstedc), then the back-transform
    V = QZ (dormtr, 2N³ — about half of the time at N = 2145). The same first two steps are done
    here (λ and Z are bit for bit numpy's), and V is applied as Q·Z to the ~r+3 vectors the
    closed form needs, by dormqr on the stored reflectors. Falls back to ``numpy.linalg.eigh``
    for N < :data:`TRIDIAGONAL_MIN_PACKED` or a LAPACK failure. ``overwrite``: Tp (C-ordered and
    exactly symmetric, so its transpose is the same matrix in Fortran order) may be destroyed
    instead of copied."""
    from scipy.linalg import lapack

    N = Tp.shape[0]
    if N >= max(TRIDIAGONAL_MIN_PACKED, 2):
        lw = lapack.dsytrd_lwork(N, lower=1)
        sym_f = overwrite and Tp.flags.c_contiguous and Tp.dtype == np.float64
        c, d, e, tau, info = lapack.dsytrd(Tp.T if sym_f else Tp, lower=1,
                                           lwork=max(int(lw[0]), 1), overwrite_a=int(sym_f))
        if info == 0:
            lam, Z, info = lapack.dstevd(d, e, compute_v=1)
        if info == 0:
            # Q = diag(1, Q₁): Q₁'s reflectors lie below the diagonal of c[1:, :N−1]
            refl = np.asfortranarray(c[1:, :-1])
            del c

            def q(X, trans):
                Y = np.array(X[1:], dtype=float, order="F")  # a copy: dormqr overwrites it
                lwork = int(lapack.dormqr("L", trans, refl, tau, Y, -1)[1][0])
                Y, _, inf = lapack.dormqr("L", trans, refl, tau, Y, max(lwork, 1),
                                          overwrite_c=1)
                if inf != 0:
                    raise np.linalg.LinAlgError(f"dormqr failed (info = {inf})")
                return np.concatenate([X[:1], Y])

            def to_eig(X):  # Vᵀ X = Zᵀ (Qᵀ X)
                X = np.asarray(X, float)
                return (Z.T @ q(X.reshape(N, -1), "T")).reshape(X.shape)

            def from_eig(X):  # V X = Q (Z X)
                X = np.asarray(X, float)
                return q((Z @ X).reshape(N, -1), "N").reshape(X.shape)

            return lam, to_eig, from_eig
    lam, V = np.linalg.eigh(Tp)
    return lam, (lambda X: V.T @ X), (lambda X: V @ X)


def _affine_spectrum(dyn: Dynamics):
    """The pieces of :func:`final_moments` that do not depend on K or the start (cached on dyn)."""
    from .meansquare import MeanSquareOperator
    from .meansquare.eigenbasis import packed_matrix

    cache = dyn.results_cache
    if "affine_spectrum" in cache:
        return cache["affine_spectrum"]
    r = dyn.r
    eig = MeanSquareOperator(dyn).eigenbasis  # T in the eigenbasis of E[J], packed (§10.1)
    Z, z = np.zeros((r, r)), np.zeros(r)
    with np.errstate(over="ignore", invalid="ignore"):
        Tp, _ = packed_matrix(eig)
        C0, beta = affine_step(dyn, Z, z)  # the constant part of one step
        S = np.empty((Tp.shape[0], r))
        Acols = np.empty((r, r))
        for i in range(r):  # the linear part in the mean: S(e_i) and E[J]e_i
            e = np.zeros(r)
            e[i] = 1.0
            Mi, mi = affine_step(dyn, Z, e)
            S[:, i] = eig.pack(eig.to_basis(Mi - C0))
            Acols[:, i] = mi - beta
    if not all(np.all(np.isfinite(x)) for x in (Tp, S, Acols, C0, beta)):
        out = None
    else:
        lam, to_eig, from_eig = _packed_eigh(Tp, overwrite=True)  # Tp is not used after
        a, Q = np.linalg.eigh(0.5 * (Acols + Acols.T))
        out = (eig, lam, to_eig, from_eig, to_eig(S @ Q), to_eig(eig.pack(eig.to_basis(C0))),
               a, Q, Q.T @ beta)
    cache["affine_spectrum"] = out
    return out


def final_moments(dyn: Dynamics, steps: int, M0: np.ndarray, m0: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray] | None:
    """(E[δ_Kδ_Kᵀ], E[δ_K]) after K = ``steps`` steps, without iterating (contract §8, §10.1).

    The exact step is affine: (M, m) ↦ (T(M) + S(m) + C₀, Am + β) with S linear. C₀, β, S and
    A = E[J] are read off :func:`affine_step` itself (from (0, 0) and (0, e_i)); T is the packed
    matrix of the mean-square operator (:func:`rmt.meansquare.eigenbasis.packed_matrix`, the
    one ρ(T) is computed from). The recursion is then summed in closed form,

        M_K = T^K M₀ + Σ_{j<K} T^{K−1−j}(S(m_j) + C₀),  m_j = A^j m₀ + Σ_{t<j} A^t β,

    in the eigenbases of T (self-adjoint on Sym_r for the summed schedule, §10.1) and of A
    (symmetric), with the geometric sums by binary doubling (:func:`_concat`). None when it does
    not apply — T not self-adjoint, coordinates outside the span (p > r), a shared null mode,
    N = r(r+1)/2 > :data:`SPECTRAL_MAX_PACKED`, or a non-finite piece — and the caller iterates
    the recursion. Agreement with the recursion: tests/test_affine.py."""
    r, p = dyn.r, dyn.p
    N = r * (r + 1) // 2
    if (not dyn.combinator.self_adjoint or p != r or dyn.has_null_mode or r == 0
            or N > SPECTRAL_MAX_PACKED):
        return None
    spec = _affine_spectrum(dyn)
    if spec is None:
        return None
    eig, lam, to_eig, from_eig, Sh, ch, a, Q, bh = spec
    one_N, one_r = np.ones(N), np.ones(r)
    res = (one_N, one_r, np.zeros(r), np.zeros((N, r)), np.zeros(N), np.zeros((N, r)))
    piece = (lam, a, one_r.copy(), np.ones((N, r)), one_N.copy(), np.zeros((N, r)))
    K = int(steps)
    with np.errstate(over="ignore", invalid="ignore"):
        while K:  # doubling over the binary digits of K
            if K & 1:
                res = _concat(res, piece)
            K >>= 1
            if K:
                piece = _concat(piece, piece)
        lamK, aK, gK, h, h1, u = res
        m0h = Q.T @ m0
        x = lamK * to_eig(eig.pack(eig.to_basis(M0))) + (Sh * h) @ m0h + (Sh * u) @ bh + h1 * ch
        MK = eig.from_basis(eig.unpack(from_eig(x)))
        mK = Q @ (aK * m0h + gK * bh)
    return MK, mK


@dataclass(frozen=True)
class AffineMoments:
    """Exact E‖δ_k‖² and E[δ_k] for k = 0..steps of the affine recursion (contract §8).

    ``expected_sq_distance`` (steps+1,) = E‖δ_k‖² = E‖w_k − w*‖²; ``mean`` (steps+1, p) = E[δ_k]
    in [U, V] coordinates; ``mean_norm`` (steps+1,) = ‖E[δ_k]‖ (the mean path norm, without the
    frozen part); ``span_sq`` / ``drift_sq`` the parts of E‖δ_k‖² on the Hessian span U and on
    the drift directions V; ``frozen_sq`` the constant part elsewhere (with a shared λI that part
    is scaled by E[j²] per step and ``expected_sq_distance`` includes the growth; ``frozen_sq``
    stays its initial value). ``M_final`` is E[δ_Kδ_Kᵀ].
    """

    expected_sq_distance: np.ndarray
    mean: np.ndarray = field(repr=False)
    mean_norm: np.ndarray = field(repr=False)
    span_sq: np.ndarray = field(repr=False)
    drift_sq: np.ndarray = field(repr=False)
    frozen_sq: float
    M_final: np.ndarray = field(repr=False)
    steps: int


#: Span dimension from which :func:`affine_moments` iterates a drift-free summed recursion in
#: the eigenbasis of E[J] (0.27 → 0.16 s per step at r = 1200; the generic step, which also
#: carries drift and the SAM/alternating maps, costs ~5r³ there).
EIGENBASIS_MIN_SPAN = 64


@analysis({"steps": at_least(0), "start": [None, Array(ndim=(1, 2))]}, blas=False)
def affine_moments(hs: HessianSet | Dynamics, schedule: Schedule | int | None = None,
                   steps: int | None = None, *,
                   start: str | npt.ArrayLike | None = None) -> AffineMoments:
    """Exact first and second moments of δ_{k+1} = J_kδ_k + b_k for k = 0..steps (contract §8).

    Accepts ``(hs, schedule, steps)`` or ``(dynamics, steps=...)``. ``start`` as in
    :func:`start_coordinates` (default δ_0 = 0: unlearning starts at w*). Cost per step
    O(r³ + r²Σk + p²n): no d×d matrix is formed.
    """
    dyn = as_dynamics(hs, cast("Schedule | None", schedule))  # rmt.api.analysis: a Dynamics
    if steps is None:  # f(dyn, steps) puts steps in its place (rmt.api.analysis)
        raise TypeError("affine_moments needs steps")
    steps = check_int(steps, "steps", minimum=0)
    M, m, frozen = start_coordinates(dyn, start)
    return _run_moments(dyn, steps, M, m, frozen)


def _eigen_affine_step(dyn: Dynamics, eig):
    """:func:`affine_step` of a summed schedule on the span (p = r, no null mode) in the eigenbasis
    of E[J] = Q diag(a) Qᵀ: (M', m') = (QᵀMQ, Qᵀm) ↦

        (T'(M') + X' + X'ᵀ + C₀', a∘m' + b̄'),  X' = (a∘m')b̄'ᵀ + Σ_S s_S² cross'_S(m'),

    T' = ``eig.recursion_apply`` (the mean part elementwise), the cross noise and gradient
    covariance of set terms whose factors, means, shared curvature and gradients are rotated by
    Q once.
    Agreement with :func:`affine_step`: tests/test_affine.py."""
    Q = eig.Q
    r = dyn.r
    a = 1.0 - eig.b
    Tm = eig.recursion_apply  # T' with the fast noise of a large set (eigenbasis.py)

    def rot(X):
        return None if X is None else Q.T @ X @ Q

    terms = []
    for t in dyn.terms:
        psi = (Q.T @ t.psi.reshape(r, -1)).reshape(t.psi.shape)
        grads = None if t.gradients is None else t.gradients @ Q
        terms.append(replace(t, psi=psi, mean=rot(t.mean), base_mean=rot(t.base_mean),
                             shared=rot(t.shared), gradients=grads, profile=None))
    # sets whose gradients are all exactly zero (round-off gradients zeroed by the bridges,
    # rmt.stationarity) add nothing to b̄, the cross noise or C₀: left out (O(rnp) per step)
    with_g = [(t.weight, t) for t in terms if t.gradients is not None and np.any(t.gradients)]
    bbar = np.zeros(r)
    for w, t in with_g:
        assert t.mean_gradient is not None  # a term with gradients
        bbar = bbar + w * t.mean_gradient
    C0 = np.outer(bbar, bbar) + sum((w**2 * t.gradient_noise() for w, t in with_g),
                                    np.zeros((r, r)))

    if not with_g:  # no drift left: (T'(M), a∘m)
        return lambda M, m: (Tm(M), a * m)

    def step(M: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        Am = a * m
        X = np.outer(Am, bbar)
        for w, t in with_g:
            X += w**2 * t.cross_noise(m)
        out = Tm(M) + X + X.T + C0
        return 0.5 * (out + out.T), Am + bbar

    return step


def _run_moments(dyn: Dynamics, steps: int, M: np.ndarray, m: np.ndarray, frozen: float, *,
                 stop_above: float | None = None, tick=None) -> AffineMoments:
    """The recursion of :func:`affine_moments` from (M0, m0, frozen) in [U, V] coordinates.

    ``stop_above``: stop after the first k with E‖δ_k‖² (without the frozen part, which only
    adds) ≥ this value; the arrays then end at that k (``steps`` = k). ``tick``: called once per
    step (progress bars)."""
    r = dyn.r
    total = np.empty(steps + 1)
    span = np.empty(steps + 1)
    drift = np.empty(steps + 1)
    means = np.empty((steps + 1, dyn.p))
    step, eig = (lambda M, m: affine_step(dyn, M, m)), None
    if dyn.combinator.self_adjoint and not dyn.has_drift and dyn.p == r:
        # no drift: M' = T(M), m' = E[J] m, the linear recursion
        if not np.any(M) and not np.any(m):  # δ_0 = 0 and b ≡ 0: δ_k = 0 exactly
            step = lambda M, m: (M, m)  # noqa: E731
        elif r >= EIGENBASIS_MIN_SPAN:  # T in the eigenbasis of E[J]: r² for E[J]·M·E[J]
            from .meansquare import MeanSquareOperator

            eig = basis = MeanSquareOperator(dyn).eigenbasis
            a = 1.0 - basis.b
            M, m = basis.to_basis(M), basis.Q.T @ m
            Tm = basis.recursion_apply
            step = lambda M, m: (Tm(M), a * m)  # noqa: E731
    elif (dyn.combinator.self_adjoint and dyn.p == r and not dyn.has_null_mode
          and r >= EIGENBASIS_MIN_SPAN):
        # with drift, every coordinate on the span: the same eigenbasis, the drift's cross and
        # covariance terms from set terms rotated once (O(r²n) per step instead of O(r³))
        from .meansquare import MeanSquareOperator

        eig = MeanSquareOperator(dyn).eigenbasis
        step = _eigen_affine_step(dyn, eig)
        M, m = eig.to_basis(M), eig.Q.T @ m
    last = steps
    with np.errstate(over="ignore", invalid="ignore"):
        for k in range(steps + 1):
            span[k] = np.trace(M[:r, :r])
            drift[k] = np.trace(M[r:, r:])  # directly: tr M − tr M_U loses it under growth
            total[k] = span[k] + drift[k]
            means[k] = m
            if not np.isfinite(total[k]):
                # E‖δ_k‖² overflowed float64: it is +inf from here on (the iterates escape far
                # faster than the horizon); keep what was computed instead of raising
                span[k:], drift[k:], total[k:], means[k:] = np.inf, np.inf, np.inf, np.nan
                break
            if stop_above is not None and total[k] >= stop_above:
                last = k
                break
            if k < steps:
                M, m = step(M, m)
                if tick is not None:
                    tick()
    if last < steps:
        total, span, drift, means = total[:last + 1], span[:last + 1], drift[:last + 1], \
            means[:last + 1]
    if eig is not None:  # back to span coordinates (traces are the same in both)
        M, means = eig.from_basis(M), means @ eig.Q.T
    rest: float | np.ndarray = frozen
    if dyn.has_null_mode and frozen > 0.0:
        # outside [U, V] the start is scaled by the null scalar j of a shared λI, independently
        # of everything else in the norm: E‖rest_k‖² = E[j²]^k ‖rest_0‖² (orthogonal parts)
        null_rate = dyn.null_rate
        assert null_rate is not None  # has_null_mode
        with np.errstate(over="ignore"):
            rest = frozen * null_rate ** np.arange(last + 1)
    return AffineMoments(total + rest, means, np.linalg.norm(means, axis=1), span, drift, frozen,
                         M, last)


@dataclass(frozen=True)
class StationaryResult:
    """Stationary answers of the affine recursion when it is mean-square stable (contract §8).

    ``exists``: ρ(T) < 1 and no drift outside the span, neither in mean nor in spread (else the
    moments grow and the other fields are None). ``mean`` m∞ (p,) in [U, V] coordinates and ``mean_full`` (d,) in the
    original coordinates; ``displacement`` = ‖m∞‖ (how far unlearning moves the model on
    average); ``covariance`` = M∞ − m∞m∞ᵀ; ``rms_distance`` = √tr M∞ (root-mean-square distance
    from w* in the stationary state); ``rate`` = ρ(T); ``null_drift`` = ‖E[b]_V‖ per step.
    """

    exists: bool
    rate: float
    null_drift: float
    mean: np.ndarray | None = field(repr=False)
    mean_full: np.ndarray | None = field(repr=False)
    covariance: np.ndarray | None = field(repr=False)
    displacement: float | None
    rms_distance: float | None
    reason: str
    null_spread: float = 0.0


@analysis({"rate": [None, *NON_NEGATIVE], "tol": POSITIVE}, blas=False)
def stationary(hs: HessianSet | Dynamics, schedule: Schedule | None = None, *,
               rate: float | None = None, tol: float = 1e-10) -> StationaryResult:
    """Displaced fixed point m∞ and stationary second moment M∞ (contract §8), exactly.

    Solves (I − E[J]) m∞ = E[b] on the span and the Lyapunov-type equation
    (I − T) M∞ = X(m∞) + X(m∞)ᵀ + E[bbᵀ] with T the mean-square operator (matrix-free: conjugate
    gradients for the self-adjoint summed T, GMRES otherwise; dense for small spans).
    ``rate``: ρ(T) if already known (else computed).
    """
    from .meansquare import MeanSquareOperator, mean_square_rate

    dyn = as_dynamics(hs, schedule)
    r, p = dyn.r, dyn.p
    rho = float(mean_square_rate(dyn) if rate is None else rate)
    bbar = dyn.mean_drift()
    null_drift = float(np.linalg.norm(bbar[r:])) if dyn.q else 0.0
    null_spread = 0.0
    if dyn.q:  # E[b_V b_Vᵀ] from one step out of δ = 0; its trace minus ‖E[b_V]‖² is the spread
        Eb2 = affine_step(dyn, np.zeros((p, p)), np.zeros(p))[0][r:, r:]
        var = float(np.trace(Eb2)) - null_drift**2
        scale = max(float(np.trace(Eb2)), 1e-300)
        null_spread = math.sqrt(var) if var > 1e-12 * scale else 0.0
    if rho >= 1.0:
        return StationaryResult(False, rho, null_drift, None, None, None, None, None,
                                f"ρ(T) = {rho:.6g} ≥ 1: the second moment grows (no stationary state)",
                                null_spread)
    contracting_null = dyn.has_null_mode and abs(dyn.null_mean) < 1.0
    if null_drift > 0.0 and not contracting_null:
        return StationaryResult(False, rho, null_drift, None, None, None, None, None,
                                f"the drift has a component {null_drift:.3g} per step outside the "
                                "span of the Hessians: the mean moves linearly forever",
                                null_spread)
    if null_spread > 0.0 and not contracting_null:
        return StationaryResult(False, rho, null_drift, None, None, None, None, None,
                                f"the drift outside the span of the Hessians has mean zero but "
                                f"spread {null_spread:.3g} per step: a random walk (E‖δ_k‖² grows "
                                "like k·spread²)", null_spread)
    A = dyn.mean_map
    m_inf = np.zeros(p)
    m_inf[:r] = np.linalg.solve(np.eye(r) - A, bbar[:r])
    if p > r and dyn.has_null_mode:  # a shared λI pulls the drift directions back: E[j] < 1
        m_inf[r:] = bbar[r:] / (1.0 - dyn.null_mean)
    # constant part C of the fixed-point equation: one step of the recursion from (0, m∞) gives
    # M' = X + Xᵀ + E[bbᵀ] for the summed/SAM map; for alternating apply the maps in turn.
    C = _constant_part(dyn, m_inf)
    W = hstack_bases(dyn.basis, dyn.drift_basis)
    if p > r and contracting_null:
        # the drift directions V are pulled back by the null scalar: the stationary second moment
        # lives on all p coordinates (span, V and their cross block)
        M = _stationary_full(dyn, C, tol)
        cov = M - np.outer(m_inf, m_inf)
        return StationaryResult(True, rho, null_drift, m_inf, lift(W, m_inf), cov,
                                float(np.linalg.norm(m_inf)),
                                float(math.sqrt(max(np.trace(M), 0.0))),
                                "ρ(T) < 1 (span and null mode of the shared λI)", null_spread)
    op = MeanSquareOperator(dyn)
    Cu = C[:r, :r]
    if r <= 20:
        Mu = np.linalg.solve(np.eye(r * r) - op.matrix(), Cu.ravel()).reshape(r, r)
    else:
        I_T = spla.LinearOperator(op.shape, matvec=lambda x: x - op.matvec(x), dtype=float)
        if op.self_adjoint:
            # preconditioned CG with (I − 𝒜)⁻¹, 𝒜(M) = E[J] M E[J] (the regular splitting of
            # T, solved exactly in the eigenbasis of the symmetric E[J]): SPD since ρ(E[J])² ≤
            # ρ(T) < 1, and it removes the near-1 cluster that tiny-curvature directions put into
            # T (plain CG took 3569 iterations at r = 316, ρ = 1 − 5e-7)
            a, V = np.linalg.eigh(0.5 * (dyn.mean_map + dyn.mean_map.T))
            den = 1.0 - np.outer(a, a)

            def precondition(x):
                X = V.T @ x.reshape(r, r) @ V
                return (V @ (X / den) @ V.T).ravel()

            P = spla.LinearOperator(op.shape, matvec=precondition, dtype=float)
            x, info = spla.cg(I_T, Cu.ravel(), rtol=tol, maxiter=50 * r * r, M=P)
        else:
            x, info = spla.gmres(I_T, Cu.ravel(), rtol=tol, maxiter=50 * r * r)
        if info != 0:
            raise RuntimeError(f"the stationary Lyapunov equation did not converge (info={info})")
        Mu = x.reshape(r, r)
    Mu = 0.5 * (Mu + Mu.T)
    cov = Mu - np.outer(m_inf[:r], m_inf[:r])
    return StationaryResult(True, rho, null_drift, m_inf, lift(W, m_inf), cov,
                            float(np.linalg.norm(m_inf)), float(math.sqrt(max(np.trace(Mu), 0.0))),
                            "ρ(T) < 1 and no drift outside the span", null_spread)


def _stationary_full(dyn, C, tol):
    """M∞ on all p coordinates: (I − T_p) M = C with T_p the homogeneous part of one step."""
    p = dyn.p
    zero_m = np.zeros(p)
    base = affine_step(dyn, np.zeros((p, p)), zero_m)[0]  # E[bbᵀ] (does not depend on M)

    def T(x):
        M = x.reshape(p, p)
        return (affine_step(dyn, 0.5 * (M + M.T), zero_m)[0] - base).ravel()

    if p <= 20:
        cols = np.eye(p * p)
        mat = np.column_stack([T(cols[:, j]) for j in range(p * p)])
        x = np.linalg.solve(np.eye(p * p) - mat, C.ravel())
    else:
        op = spla.LinearOperator((p * p, p * p), matvec=lambda v: v - T(v), dtype=float)
        x, info = spla.gmres(op, C.ravel(), rtol=tol, maxiter=50 * p * p)
        if info != 0:
            raise RuntimeError(f"the stationary Lyapunov equation did not converge (info={info})")
    M = x.reshape(p, p)
    return 0.5 * (M + M.T)


def _constant_part(dyn, m_inf):
    """C = M∞ − T(M∞) for the stationary state whose mean is m∞ (exact, linear in the moments).

    The recursion is M' = T(M) + L(m) with L affine in m; at the fixed point m = m∞, so
    C = L(m∞) = [one step from (M = 0, m = m∞)] − [the homogeneous part of that step, which is 0].
    For the alternating schedule, T = T_F∘T_R and the retain map's constant part passes through
    the forget map's T_F: applying the two maps from M = 0 gives exactly L(m∞).
    """
    M0 = np.zeros((dyn.p, dyn.p))
    M1, _ = affine_step(dyn, M0, m_inf)
    return M1


# ---------------------------------------------------------------------- exact asymptotic outcome
from functools import cached_property  # noqa: E402

from .verdict import MEAN_SQUARE, OutcomeVerdict  # noqa: E402

#: Tolerance on ρ(T) − 1 of :func:`asymptotic_outcome` (ρ is dimensionless; the tolerance only
#: absorbs the eigensolver's round-off at the boundary ρ(T) = 1).
OUTCOME_RATE_TOL = 1e-9
#: A null-space drift (mean² + variance) below this times E‖b‖² is round-off, not a drift.
DRIFT_RTOL = 1e-12


@dataclass(frozen=True)
class AffineOutcome(OutcomeVerdict):
    """Exact asymptotic outcome of the affine recursion in mean square (contract §8, docs/affine.md).

    ``outcome`` ∈ rmt.forecast.OUTCOMES: "escapes" (sup_k E‖δ_k‖² = ∞ for a generic start:
    ρ(T) > 1, or a drift b_V ≢ 0 outside the span), "displaced" (the moments converge to a
    non-zero stationary state (M∞, m∞) from every start), "returns" (b ≡ 0 a.s. and ρ(T) < 1:
    E‖δ_k‖² → 0). ``marginal``: |ρ(T) − 1| ≤ :data:`OUTCOME_RATE_TOL` without null drift — the
    outcome is then decided by the sign of ρ(T) − 1 only (at ρ(T) = 1 both bounded and unbounded
    second moments occur, docs/affine.md). ``forgets`` is outcome ≠ "returns" (as
    :class:`rmt.ForecastResult`), ``notion`` mean-square.
    """

    outcome: str
    marginal: bool
    rate: float
    null_drift: float
    null_variance: float
    reason: str

    @property
    def notion(self) -> str:
        return MEAN_SQUARE


class ExactAffine:
    """A Dynamics with the cached exact quantities of its affine recursion (contract §8).

    ``rate`` ρ(T) (pass it when already known), ``drift`` (β, Cov(b), E‖b‖²) of one step,
    ``null_drift`` the part of the drift outside the span, ``span_stationary`` the stationary
    state of the span part and ``outcome`` the :class:`AffineOutcome`.
    """

    def __init__(self, hs: HessianSet | Dynamics, schedule: Schedule | None = None, *,
                 rate: float | None = None) -> None:
        self.dyn = as_dynamics(hs, schedule)
        self._rate = rate

    @cached_property
    def rate(self) -> float:
        if self._rate is not None:
            return float(self._rate)
        from .meansquare import mean_square_rate

        return float(mean_square_rate(self.dyn))

    @cached_property
    def drift(self) -> tuple[np.ndarray, np.ndarray, float]:
        """(β (p,), Cov(b) (p, p), E‖b‖²) of one step, from the set terms (contract §8).

        Cov(b) = Σ_S s_S² Cov(ĝ_S) on the null coordinates V for every combinator (there every
        map is the identity, so b_V = Σ_S s_S ĝ_S,V); on the span the exact one-step second
        moment E[bbᵀ] from δ = 0 is used (alternating: the forget map acts on the retain drift).
        """
        dyn = self.dyn
        p = dyn.p
        beta = dyn.mean_drift()
        cov = np.zeros((p, p))
        if dyn.has_drift:
            M1, _ = affine_step(dyn, np.zeros((p, p)), np.zeros(p))
            cov = M1 - np.outer(beta, beta)
        return beta, 0.5 * (cov + cov.T), float(beta @ beta + np.trace(cov))

    @cached_property
    def null_drift(self) -> tuple[float, float, bool]:
        """(‖β_V‖, tr Cov(b_V), b_V ≡ 0 a.s.?) with the scale-relative tolerance DRIFT_RTOL."""
        beta, cov, total = self.drift
        r = self.dyn.r
        bv = float(np.linalg.norm(beta[r:]))
        cv = float(max(np.trace(cov[r:, r:]), 0.0))
        zero = bv**2 + cv <= DRIFT_RTOL * max(total, 1e-300)
        return bv, cv, bool(zero)

    @cached_property
    def span_stationary(self) -> tuple[np.ndarray, np.ndarray]:
        """(m∞_U (r,), M∞_U (r, r)) of the span part when ρ(T) < 1 (whatever the null drift).

        The span part of the affine recursion is autonomous (J is the identity on V and does
        not mix V into U), so it has a stationary state even when the null part walks away.
        """
        from .meansquare import MeanSquareOperator

        dyn = self.dyn
        r, p = dyn.r, dyn.p
        beta = self.drift[0]
        m = np.zeros(p)
        m[:r] = np.linalg.solve(np.eye(r) - dyn.mean_map, beta[:r])
        C = affine_step(dyn, np.zeros((p, p)), m)[0][:r, :r]
        op = MeanSquareOperator(dyn)
        if r <= 30:
            Mu = np.linalg.solve(np.eye(r * r) - op.matrix(), C.ravel()).reshape(r, r)
        else:
            I_T = spla.LinearOperator(op.shape, matvec=lambda x: x - op.matvec(x), dtype=float)
            x, info = spla.gmres(I_T, C.ravel(), rtol=1e-13, maxiter=50 * r * r)
            if info != 0:
                raise RuntimeError(f"the span stationary equation did not converge ({info})")
            Mu = x.reshape(r, r)
        return m[:r], 0.5 * (Mu + Mu.T)

    @cached_property
    def outcome(self) -> AffineOutcome:
        """The exact asymptotic mean-square outcome (:class:`AffineOutcome`)."""
        rate = self.rate
        bv, cv, zero = self.null_drift
        if self.dyn.has_null_mode:
            # shared isotropic curvature: off the span J is a scalar j_N, not the identity;
            # ρ(T) already includes E[j_N²], so the drift there is contracted when ρ(T) < 1 and
            # the null-drift rule below does not apply
            zero = True
        marginal = zero and abs(rate - 1.0) <= OUTCOME_RATE_TOL
        if not zero:
            return AffineOutcome("escapes", False, rate, bv, cv,
                                 f"drift outside the span: ‖E[b]_V‖ = {bv:.4g}, tr Cov(b_V) = "
                                 f"{cv:.4g} (E‖P_Vδ_k‖² = k²‖E[b]_V‖² + k·tr Cov(b_V))")
        if rate > 1.0:
            return AffineOutcome("escapes", marginal, rate, bv, cv,
                                 f"ρ(T) = {rate:.8g} > 1: E‖δ_k‖² ≥ ρ(T)^k from an isotropic "
                                 "start")
        if self.drift[2] <= 0.0:
            return AffineOutcome("returns", marginal, rate, bv, cv,
                                 f"no drift (b ≡ 0) and ρ(T) = {rate:.8g} ≤ 1")
        return AffineOutcome("displaced", marginal, rate, bv, cv,
                             f"ρ(T) = {rate:.8g} < 1 and b ≡ 0 outside the span: stationary state")


def asymptotic_outcome(hs: HessianSet | Dynamics, schedule: Schedule | None = None, *,
                       rate: float | None = None) -> AffineOutcome:
    """The exact asymptotic mean-square outcome of the affine recursion (:class:`AffineOutcome`).

    Accepts ``(hs, schedule)`` or a :class:`rmt.Dynamics`; ``rate``: ρ(T) if already known.
    """
    return ExactAffine(hs, schedule, rate=rate).outcome

__all__ += ["AffineOutcome", "ExactAffine", "asymptotic_outcome"]
