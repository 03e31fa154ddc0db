"""Per-sample curvature: the :class:`HessianSet` (THEORY.md §1).

A HessianSet holds the per-sample PSD Hessians H_i of a *retain* set R and an optional *forget*
set F, in one of four representations:

``"dense"``     arrays (n, d, d)
``"rank1"``     factors g_i of shape (n, d):     H_i = g_i g_iᵀ   (Gauss–Newton / MSE)
``"factor"``    factors F_i of shape (n, d, k):  H_i = F_i F_iᵀ
``"commuting"`` eigenvalue profiles λ (n, d) in a shared orthonormal basis Q: H_i = Q diag(λ_i) Qᵀ

Factor-backed sets never build a d×d per-sample matrix: every pairwise quantity comes from factor
inner products, tr(H_i H_j) = ‖F_iᵀF_j‖_F² (THEORY §1).

Everything the analyses need reduces to coordinates on the *span* U of the Hessians that enter
the dynamics (the orthogonal complement of their common null space N, THEORY §3 "Null space").
:meth:`HessianSet.reduction` returns those coordinates; they are computed once from a thin SVD
of the stacked factors and cached.

**Shared curvature** (issue 11): ``shared=λ`` (C = λI, weight decay) or ``shared=Q`` (C = QQᵀ)
makes every sample's Hessian H_i + C without densifying: C = QQᵀ enlarges the span; λI keeps the
factors' null space N invariant, where every step is one scalar (a closed-form mode handled by
:class:`rmt.Dynamics`).

**Large d** (issue 11): when the stacked rows (factor columns, shared factor, per-sample
gradients) hold more than ``GRAM_MIN_ENTRIES`` entries, float32 input is kept as given (not
copied, not upcast), one chunked pass over d accumulates their joint Gram matrix in float64, and
everything after it — spans (U = Zᵀ C kept implicit, :class:`ImplicitBasis`), reduced factors,
drift coordinates, coherence — is O(rows³), independent of d. The Gram route resolves Hessian
eigenvalues down to ~(rows + √d)·eps of the largest (the SVD route: ~max(d, rows)²·eps²).

**Span rule** (:meth:`HessianSet.reduction`, THEORY §3 "Null space"): one rule for every
representation, in curvature units — a direction is in the span iff its curvature (an eigenvalue
of Σ_i H_i) exceeds τ(d) = 10·√d·eps times the largest curvature of the whole set
(:func:`span_tolerance`); scale-free, so H → cH keeps the span.
"""

from __future__ import annotations


import numpy as np

from .span import (ImplicitBasis, Reduction, _clean_profiles, _gram_tolerance, project,
                   span_tolerance)
from .span import hstack_bases, lift  # noqa: F401  (re-exported: rmt.hessians.lift, …)
from .validation import check_finite_array
from .validation import _check_ndim

__all__ = ["HessianSet", "Reduction", "ImplicitBasis"]

#: Relative tolerance for symmetry and positive semi-definiteness of dense input.
PSD_RTOL = 1e-8


#: Factor-backed sets whose stacked rows (factor columns, shared factor, gradients) hold more
#: than this many entries (d × rows) work from one chunked Gram pass instead of thin SVDs:
#: float32 input stays float32, no d × r basis is formed (``ImplicitBasis``), and everything
#: after the pass costs O(rows³), independent of d (issue 11). Below it the arrays are upcast
#: to float64 and the spans come from thin SVDs (more accurate for nearly dependent factors).
GRAM_MIN_ENTRIES = 2**26

#: float64 entries per column chunk of the Gram pass (and of projections through it).
CHUNK_ENTRIES = 2**23

#: Columns per float32 chunk product of the Gram pass (float32 sums over at most this many
#: terms, then float64 accumulation across chunks).
F32_CHUNK_COLS = 2048

_SETS = ("retain", "forget")


def _check_set(arr, name, kind):
    if kind == "dense":
        arr = check_finite_array(arr, name, ndim=3)
        if arr.shape[1] != arr.shape[2]:
            raise ValueError(f"{name} must have shape (n, d, d), got {arr.shape}")
    elif kind == "factors":
        arr = _float_array(arr, name, ndim=(2, 3))
    elif kind == "commuting":
        arr = check_finite_array(arr, name, ndim=2)
        if np.any(arr < 0):
            i, k = np.argwhere(arr < 0)[0]
            raise ValueError(
                f"{name} must hold non-negative eigenvalues (PSD Hessians); "
                f"entry [{i}, {k}] is {arr[i, k]}"
            )
    if arr.shape[0] < 1:
        raise ValueError(f"{name} must hold at least one sample, got shape {arr.shape}")
    if arr.shape[1] < 1:
        raise ValueError(f"{name} must have dimension d >= 1, got shape {arr.shape}")
    return arr


def _check_sets(retain, forget, kind):
    """Validate the retain set and the optional forget set, and that their dimensions agree."""
    R = _check_set(retain, "retain", kind)
    F = None if forget is None else _check_set(forget, "forget", kind)
    if F is not None and F.shape[1] != R.shape[1]:
        raise ValueError(
            f"retain and forget dimensions differ: retain has d={R.shape[1]}, "
            f"forget has d={F.shape[1]}"
        )
    return R, F


def _check_shared(shared, d, *, commuting=False):
    """Normalise ``shared`` → (λ, Q): a scalar λ ≥ 0 (λI, weight decay) or a PSD factor Q (d, k)
    with C = QQᵀ; for commuting sets also a non-negative profile (d,) in the shared basis."""
    if shared is None:
        return 0.0, None
    if isinstance(shared, (bool, np.bool_)):
        raise TypeError("shared must be a non-negative number (λ of λI) or an array, got a bool")
    if isinstance(shared, (str, bytes)) or np.iscomplexobj(np.asarray(shared)):
        raise TypeError(f"shared must be real: a non-negative number λ (λI) or a (d, k) factor, "
                        f"got {shared!r}")
    arr = check_finite_array(shared, "shared", ndim=(0, 1, 2) if commuting else (0, 2))
    if arr.ndim == 0:
        lam = float(arr)
        if lam < 0:
            raise ValueError(f"shared must be >= 0 (λ of the shared curvature λI), got {lam}")
        return lam, None
    if arr.ndim == 1:  # commuting only: a shared eigenvalue profile
        if arr.shape != (d,):
            raise ValueError(f"shared as a profile must have shape ({d},), got {arr.shape}")
        if np.any(arr < 0):
            raise ValueError("shared as a profile must hold non-negative eigenvalues")
        return 0.0, arr
    if arr.shape[0] != d:
        raise ValueError(f"shared as a factor Q (C = QQᵀ) must have shape ({d}, k), got {arr.shape}")
    if arr.shape[1] == 0 or not np.any(arr):
        return 0.0, None
    return 0.0, arr


def _float_array(a, name, *, ndim):
    """A float32/float64 array *without copying* float input (large factor arrays stay as given,
    float32 included); other numeric input → float64. NaN/inf are rejected chunk by chunk, so no
    full-size temporary is made."""
    try:
        arr = np.asarray(a)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a numeric array: {exc}") from None
    if arr.dtype not in (np.float32, np.float64):
        if np.iscomplexobj(arr):
            raise TypeError(f"{name} must be real, got a complex array")
        try:
            arr = np.asarray(arr, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name} must be a numeric array: {exc}") from None
    _check_ndim(arr, name, ndim)
    if arr.ndim and arr.shape[0]:
        step = max(1, CHUNK_ENTRIES // max(1, arr[0].size))
        for s in range(0, arr.shape[0], step):
            if not np.all(np.isfinite(arr[s : s + step])):
                raise ValueError(f"{name} contains NaN or inf")
    return arr


def _dense_to_factors(H, name, scale):
    """Symmetric eigendecomposition H_i = V diag(λ) Vᵀ → factors V sqrt(λ), zero-padded.

    Checks symmetry and PSD with a tolerance relative to ``scale`` (the largest spectral norm
    in the whole set). An eigenvalue of H_i at or below τ(d)·‖H_i‖₂ (:func:`span_tolerance`) is
    round-off of that matrix — the error of a dense eigendecomposition is relative to the
    matrix's own norm — and is treated as an exact zero; everything larger is kept, and whether
    it is large enough to count in the span is decided by the span rule on the stacked factors.
    """
    n, d, _ = H.shape
    tol = PSD_RTOL * scale
    asym = np.max(np.abs(H - np.swapaxes(H, 1, 2)), axis=(1, 2))
    if np.any(asym > tol):
        i = int(np.argmax(asym))
        raise ValueError(
            f"{name}[{i}] is not symmetric: max |H - Hᵀ| = {asym[i]:.3g} exceeds "
            f"{PSD_RTOL:g} × scale ({scale:.3g})"
        )
    Hs = 0.5 * (H + np.swapaxes(H, 1, 2))
    lam, vec = np.linalg.eigh(Hs)
    if np.any(lam[:, 0] < -tol):
        i = int(np.argmin(lam[:, 0]))
        raise ValueError(
            f"{name}[{i}] is not positive semi-definite: smallest eigenvalue {lam[i, 0]:.3g} "
            f"is below -{PSD_RTOL:g} × scale ({scale:.3g})"
        )
    # Only round-off-level eigenvalues count as zero: a genuine small curvature (say 1e-9 of the
    # scale) changes the span and ρ(T), so the drop threshold is τ(d)·‖H_i‖₂, not the PSD
    # tolerance. The eigenvectors of small kept eigenvalues carry rotations of order
    # eps·‖H_i‖/gap; the resulting stray curvature (≲ eps·‖H_i‖/SPAN_RTOL) is far below the span
    # rule's threshold, which removes it (the spurious directions of the issue "from_dense
    # invents span directions").
    top = np.maximum(lam[:, -1:], 0.0)
    keep = lam > span_tolerance(d) * top
    k = max(int(keep.sum(axis=1).max()), 1)
    F = np.zeros((n, d, k))
    for i in range(n):
        cols = np.flatnonzero(keep[i])
        F[i, :, : cols.size] = vec[i][:, cols] * np.sqrt(lam[i, cols])
    return F


class HessianSet:
    """Per-sample PSD Hessians split into a retain set and an optional forget set (THEORY §1).

    Build with :meth:`from_dense`, :meth:`from_factors` or :meth:`from_commuting`; do not call the
    constructor directly. Attributes: ``kind`` ("dense", "rank1", "factor", "commuting"),
    ``n_retain``, ``n_forget`` (0 without a forget set), ``dim`` (d), ``rank`` (factor columns per
    sample: 1 for rank-one sets, k for factor sets, the largest per-sample rank otherwise),
    ``span_dim`` / ``null_dim`` (dimension of the span of all Hessians and of their common null
    space).
    """

    def __init__(self, kind, retain, forget=None, *, basis=None, gradients=None, shared=(0.0, None),
                 _token=None):
        if _token is not _CONSTRUCT:
            raise TypeError(
                "build a HessianSet with HessianSet.from_dense, from_factors or from_commuting"
            )
        self.kind = kind
        self._retain = retain
        self._forget = forget
        self._basis = basis
        self._gradients = _check_gradients(gradients or {}, retain, forget)
        self._shared_scalar, self._shared_factor = shared
        self._reductions = {}
        self._span_ref = None
        self._gram = None
        self._layout = None
        self._large = False
        if kind in ("rank1", "factor"):
            rows = sum(int(np.prod(a.shape)) // a.shape[1] for a in (retain, forget)
                       if a is not None) + sum(g.shape[0] for g in self._gradients.values())
            rows += 0 if self._shared_factor is None else self._shared_factor.shape[1]
            self._large = retain.shape[1] * rows > GRAM_MIN_ENTRIES
            if not self._large:  # small: float64 copies, thin SVDs (the exact previous path)
                self._retain = np.asarray(retain, dtype=np.float64)
                self._forget = None if forget is None else np.asarray(forget, dtype=np.float64)
                self._gradients = {w: np.asarray(g, dtype=np.float64)
                                   for w, g in self._gradients.items()}

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_dense(cls, retain, forget=None, *, retain_gradients=None, forget_gradients=None,
                   shared=None):
        """Dense per-sample Hessians, arrays of shape (n, d, d).

        ``shared``: curvature C shared by every sample (retain and forget), so that sample i's
        Hessian is H_i + C — a scalar λ ≥ 0 for C = λI (weight decay) or a factor Q (d, k) for
        C = QQᵀ; see :meth:`from_factors`.

        ``retain_gradients``/``forget_gradients``: per-sample loss gradients g_i = ∇ℓ_i(w*) of
        shape (n, d) at a minimum that does not interpolate (THEORY §8); they add the drift b_k
        to the linearised step. Omit them (or pass zeros) at an interpolating minimum.

        Each matrix must be symmetric and PSD up to a relative tolerance of 1e-8 times the largest
        spectral norm in the set; otherwise ``ValueError`` names the offending sample. An
        eigenvalue of H_i at round-off level of that matrix (at or below τ(d)·‖H_i‖₂,
        :func:`span_tolerance`) is treated as an exact zero in ``factors()``; the span is then
        decided by the one span rule of :meth:`reduction`, the same as for factor and commuting
        input.
        """
        R, F = _check_sets(retain, forget, "dense")
        sh = _check_shared(shared, R.shape[1])
        hs = cls("dense", R, F, gradients={"retain": retain_gradients, "forget": forget_gradients},
                 shared=sh, _token=_CONSTRUCT)
        # validate (symmetry/PSD) eagerly so bad input fails at construction
        hs._dense_factors = {}
        scale = max(_spectral_scale(R), 0.0 if F is None else _spectral_scale(F))
        scale = scale if scale > 0 else 1.0
        hs._dense_factors["retain"] = _dense_to_factors(R, "retain", scale)
        if F is not None:
            hs._dense_factors["forget"] = _dense_to_factors(F, "forget", scale)
        return hs

    @classmethod
    def from_factors(cls, retain, forget=None, *, retain_gradients=None, forget_gradients=None,
                     shared=None):
        """Factor-backed Hessians: shape (n, d) → H_i = g_i g_iᵀ; shape (n, d, k) → H_i = F_i F_iᵀ.

        No d×d matrix is ever formed for a factor-backed set. The factors are the Gauss–Newton
        factors √ℓ''·∇f (not the loss gradients). ``retain_gradients``/``forget_gradients``:
        per-sample loss gradients g_i = ∇ℓ_i(w*), shape (n, d), at a non-interpolating minimum
        (THEORY §8; see :meth:`from_dense`).

        ``shared``: curvature C shared by every sample of both sets, so that sample i's Hessian
        is H_i + C (issue 11):

        - a scalar λ ≥ 0: C = λI (weight decay λ/2‖w‖² in every per-sample loss). Never densified:
          the common null space N of the factors stays invariant and every J acts on it as one
          scalar j = 1 + Σ_S s_S λ·(|batch_S|/B_S) (|batch|/B = 1 except for Bernoulli
          sampling), a closed-form mode beside the span (``Dynamics.null_*``);
        - a factor Q of shape (d, k): C = QQᵀ, which simply enlarges the span.

        The gradients are taken as given: at a regularised minimum they are the gradients of the
        regularised per-sample losses. ``factors()`` returns the per-sample part F_i only;
        ``dense``, ``mean``, ``trace_products``, ``max_eigenvalues`` include C.
        """
        R, F = _check_sets(retain, forget, "factors")
        kind = "rank1" if R.ndim == 2 and (F is None or F.ndim == 2) else "factor"
        sh = _check_shared(shared, R.shape[1])
        return cls(kind, R, F, gradients={"retain": retain_gradients, "forget": forget_gradients},
                   shared=sh, _token=_CONSTRUCT)

    @classmethod
    def from_commuting(cls, retain, forget=None, basis=None, *, retain_gradients=None,
                       forget_gradients=None, shared=None):
        """Simultaneously diagonalisable Hessians H_i = Q diag(λ_i) Qᵀ (THEORY §3, commuting).

        ``retain``/``forget`` are eigenvalue profiles of shape (n, d) (non-negative); ``basis`` is
        an orthogonal (d, d) matrix Q whose columns are the shared eigenvectors (identity if None).
        Commuting sets get closed-form mean-square rates and critical step sizes.

        The span rule of :meth:`reduction` is applied to the profiles once, here: in a direction
        k whose summed curvature Σ_{i∈S} λ_{i,k} over set S is at or below τ(d)·λ_ref
        (λ_ref = max_k Σ_i λ_{i,k} over all samples, :func:`span_tolerance`), the entries of S
        are round-off and are stored as exact zeros (``eigenvalues()`` returns the cleaned
        profiles), so that the closed forms and the span agree with :meth:`from_dense` and
        :meth:`from_factors` for the same Hessians.

        ``shared``: a scalar λ ≥ 0 (C = λI) or a non-negative profile (d,) (C = Q diag(c) Qᵀ) added
        to every sample's Hessian; it commutes with the set, so it is simply added to every
        profile (``eigenvalues()`` then includes it) and the closed forms stay exact.
        """
        R, F = _check_sets(retain, forget, "commuting")
        d = R.shape[1]
        lam, prof = _check_shared(shared, d, commuting=True)
        add = lam if prof is None else prof
        if np.any(add):
            R = R + add
            F = None if F is None else F + add
        if basis is None:
            Q = np.eye(d)
        else:
            Q = check_finite_array(basis, "basis", ndim=2)
            if Q.shape != (d, d):
                raise ValueError(f"basis must have shape ({d}, {d}), got {Q.shape}")
            err = np.max(np.abs(Q.T @ Q - np.eye(d)))
            if err > 1e-8:
                raise ValueError(f"basis must be orthogonal: max |QᵀQ - I| = {err:.3g}")
        R, F = _clean_profiles(R, F)
        hs = cls("commuting", R, F, basis=Q,
                 gradients={"retain": retain_gradients, "forget": forget_gradients},
                 _token=_CONSTRUCT)
        hs._folded_shared = (lam, prof)  # already inside the profiles: information only
        return hs

    # ------------------------------------------------------------------ sizes
    @property
    def n_retain(self) -> int:
        return int(self._retain.shape[0])

    @property
    def n_forget(self) -> int:
        return 0 if self._forget is None else int(self._forget.shape[0])

    @property
    def has_forget(self) -> bool:
        return self._forget is not None

    @property
    def n(self) -> int:
        """Total number of samples n_r + n_f."""
        return self.n_retain + self.n_forget

    @property
    def dim(self) -> int:
        return int(self._retain.shape[1])

    @property
    def rank(self) -> int:
        if self.kind == "rank1":
            return 1
        return int(max(self.factors(w).shape[2] for w in self._present()))

    @property
    def shared_scalar(self) -> float:
        """λ of a shared curvature λI added to every sample's Hessian (0.0 without one).

        Commuting sets fold a shared term into their profiles and report 0.0 here."""
        return self._shared_scalar

    @property
    def shared_factor(self):
        """Q (d, k) of a shared curvature QQᵀ added to every sample's Hessian, or None."""
        return self._shared_factor

    @property
    def has_shared(self) -> bool:
        """A shared curvature term (λI and/or QQᵀ) is carried beside the per-sample factors."""
        return self._shared_scalar > 0.0 or self._shared_factor is not None

    def _shared_dense(self):
        d = self.dim
        C = self._shared_scalar * np.eye(d)
        if self._shared_factor is not None:
            C = C + self._shared_factor @ self._shared_factor.T
        return C

    @property
    def has_gradients(self) -> bool:
        """Per-sample gradients were given for at least one set (a non-interpolating minimum)."""
        return any(g is not None for g in self._gradients.values())

    def gradients(self, which="retain"):
        """Per-sample loss gradients g_i = ∇ℓ_i(w*) of ``which``, shape (n, d), or None."""
        self._raw(which)
        return self._gradients.get(which)

    def size(self, which):
        """Number of samples in ``which`` ("retain" or "forget")."""
        _check_which(which)
        return self.n_retain if which == "retain" else self.n_forget

    @property
    def span_dim(self) -> int:
        """Dimension r of the span of all Hessians (retain ∪ forget)."""
        return self.reduction(True, self.has_forget).r

    @property
    def null_dim(self) -> int:
        """Dimension d − r of the common null space of all Hessians."""
        return self.dim - self.span_dim

    def __repr__(self):
        parts = [
            f"kind={self.kind!r}",
            f"n_retain={self.n_retain}",
            f"n_forget={self.n_forget}",
            f"dim={self.dim}",
        ]
        if self.kind in ("rank1", "factor"):
            parts.append(f"rank={self.rank}")
        key = (True, self.has_forget)
        if key in self._reductions:
            parts.append(f"span_dim={self._reductions[key].r}")
        return f"HessianSet({', '.join(parts)})"

    def _present(self):
        return ("retain", "forget") if self.has_forget else ("retain",)

    def _raw(self, which):
        _check_which(which)
        if which == "forget" and self._forget is None:
            raise ValueError("this HessianSet has no forget set")
        return self._retain if which == "retain" else self._forget

    # ------------------------------------------------------------------ views
    def factors(self, which="retain") -> np.ndarray:
        """Factors F_i with H_i = F_i F_iᵀ, shape (n, d, k) (zero-padded to a common k)."""
        raw = self._raw(which)
        if self.kind == "dense":
            return self._dense_factors[which]
        if self.kind == "commuting":
            active = np.flatnonzero(np.any(raw > 0, axis=0))
            if active.size == 0:
                return np.zeros((raw.shape[0], self.dim, 1))
            return self._basis[None, :, active] * np.sqrt(raw[:, None, active])
        if raw.ndim == 2:
            return raw[:, :, None]
        return raw

    def dense(self, which="retain") -> np.ndarray:
        """Per-sample Hessians as a dense (n, d, d) array.

        For factor-backed sets this builds n d×d matrices: meant for tests and small problems.
        """
        raw = self._raw(which)
        if self.kind == "dense":
            out = raw
        elif self.kind == "commuting":
            Q = self._basis
            return np.einsum("ak,nk,bk->nab", Q, raw, Q)
        else:
            F = self.factors(which)
            out = np.einsum("nak,nbk->nab", F, F)
        return out + self._shared_dense()[None] if self.has_shared else out

    def eigenvalues(self, which="retain") -> np.ndarray:
        """Eigenvalue profiles (n, d) of a commuting set in its shared basis."""
        if self.kind != "commuting":
            raise ValueError(f"eigenvalues() needs a commuting set, this one is {self.kind!r}")
        return self._raw(which)

    @property
    def basis(self) -> np.ndarray:
        """The shared orthonormal eigenbasis Q of a commuting set."""
        if self.kind != "commuting":
            raise ValueError(f"basis needs a commuting set, this one is {self.kind!r}")
        return self._basis

    def mean(self, which="retain") -> np.ndarray:
        """Mean Hessian H̄_S = (1/n_S) Σ_{i∈S} H_i as a dense (d, d) array (shared term included)."""
        raw = self._raw(which)
        if self.kind == "dense":
            out = raw.mean(axis=0)
        elif self.kind == "commuting":
            return (self._basis * raw.mean(axis=0)) @ self._basis.T
        else:
            F = self.factors(which)
            n, d, k = F.shape
            flat = F.transpose(1, 0, 2).reshape(d, n * k)
            out = (flat @ flat.T) / n
        return out + self._shared_dense() if self.has_shared else out

    def max_eigenvalues(self, which="retain") -> np.ndarray:
        """λ_max(H_i) for every sample of ``which``, shape (n,), without forming d×d matrices.

        With a shared term C = λI + QQᵀ: λ_max(H_i + C) = λ + λ_max of the small Gram of [F_i, Q].
        """
        raw = self._raw(which)
        if self.kind == "commuting":
            return raw.max(axis=1)
        if self._large:
            return self._gram_max_eigenvalues(which)
        Q = self._shared_factor
        if self.kind == "rank1" and Q is None:
            return np.einsum("na,na->n", raw, raw) + self._shared_scalar
        F = self.factors(which)
        if Q is not None:  # [F_i, Q] (d, k + k_s): (F_iF_iᵀ + QQᵀ) = [F_i, Q][F_i, Q]ᵀ
            F = np.concatenate([F, np.broadcast_to(Q, (F.shape[0],) + Q.shape)], axis=2)
        small = np.einsum("nak,nal->nkl", F, F)  # k×k Gram FᵢᵀFᵢ has the same non-zero spectrum
        return np.linalg.eigvalsh(small)[:, -1].clip(min=0.0) + self._shared_scalar

    def trace_products(self, a="retain", b="retain") -> np.ndarray:
        """Matrix of tr(H_i H_j) for i ∈ a, j ∈ b (THEORY §1), via factor inner products.

        With a shared term C (issue 11) the per-sample Hessians are H_i + C and
        tr((H_i + C)(H_j + C)) = tr(H_iH_j) + tr(H_iC) + tr(H_jC) + ‖C‖_F², with
        tr(H_iC) = λ‖F_i‖_F² + ‖F_iᵀQ‖_F² and ‖C‖_F² = dλ² + 2λ‖Q‖_F² + ‖QᵀQ‖_F²: no d×d matrix.
        """
        Ra, Rb = self._raw(a), self._raw(b)
        if self.kind == "commuting":
            return Ra @ Rb.T
        if self._large:
            out = self._gram_trace_products(a, b)
        elif self.kind == "rank1":
            out = (Ra @ Rb.T) ** 2
        else:
            Fa, Fb = self.factors(a), self.factors(b)
            cross = np.einsum("iak,jal->ijkl", Fa, Fb)
            out = np.einsum("ijkl,ijkl->ij", cross, cross)
        if not self.has_shared:
            return out
        ta, tb = self._shared_traces(a), self._shared_traces(b)
        return out + ta[:, None] + tb[None, :] + self._shared_norm_sq()

    def _shared_traces(self, which):
        """tr(H_i C) for every sample of ``which`` (C = λI + QQᵀ), shape (n,)."""
        if self._large:
            G, (n, k) = self._joint_gram(), self._sample_shape(which)
            ri, rq = self._row_index(which), self._row_index("shared")
            out = self._shared_scalar * np.diag(G)[ri].reshape(n, k).sum(axis=1)
            if rq.size:
                out = out + np.sum(G[np.ix_(ri, rq)].reshape(n, k, -1) ** 2, axis=(1, 2))
            return out
        F = self.factors(which)
        lam, Q = self._shared_scalar, self._shared_factor
        out = lam * np.einsum("nak,nak->n", F, F)
        if Q is not None:
            out = out + np.sum(np.einsum("nak,al->nkl", F, Q) ** 2, axis=(1, 2))
        return out

    def _shared_norm_sq(self):
        """‖C‖_F² = dλ² + 2λ‖Q‖_F² + ‖QᵀQ‖_F²."""
        lam, Q = self._shared_scalar, self._shared_factor
        out = self.dim * lam**2
        if Q is not None:
            QtQ = Q.T @ Q
            out += 2 * lam * float(np.trace(QtQ)) + float(np.sum(QtQ**2))
        return out

    def factor_coordinates(self, which, basis) -> np.ndarray:
        """Coordinates Bᵀ F_i of the per-sample factors of ``which`` in an orthonormal basis B
        (d, m): shape (n, k, m). For an :class:`ImplicitBasis` of this set (large d) they come from
        the joint Gram, with no pass over d; otherwise one product with the explicit basis."""
        F = self.factors(which)
        if isinstance(basis, ImplicitBasis) and basis._hs is self:
            n, k = self._sample_shape(which)
            G = self._joint_gram()
            X = G[np.ix_(self._row_index(which), basis.rows)] @ basis.coef
            out = X.reshape(n, k, -1)
            return out if F.shape[2] == k else np.concatenate(
                [out, np.zeros((n, F.shape[2] - k, out.shape[2]))], axis=1)
        return np.einsum("ndk,dm->nkm", F, np.asarray(basis, dtype=float))

    def gradient_coordinates(self, which, basis) -> np.ndarray:
        """Coordinates Bᵀ g_i of the per-sample gradients of ``which`` (n, m), or None without
        gradients; from the joint Gram for an :class:`ImplicitBasis` of this set (large d)."""
        g = self.gradients(which)
        if g is None:
            return None
        if isinstance(basis, ImplicitBasis) and basis._hs is self:
            G = self._joint_gram()
            return G[np.ix_(self._row_index(f"{which}_gradients"), basis.rows)] @ basis.coef
        return project(basis, g)

    def factor_gram(self, which) -> np.ndarray:
        """FᵀF of the stacked factor columns of ``which`` (n·k, n·k): (1/n)× it has the non-zero
        spectrum of the per-sample part of H̄ (from the joint Gram at large d)."""
        if self._large:
            ri = self._row_index(which)
            return self._joint_gram()[np.ix_(ri, ri)].copy()
        F = self.factors(which)
        flat = F.transpose(0, 2, 1).reshape(-1, F.shape[1])
        return flat @ flat.T

    # ------------------------------------------------------------------ chunked Gram (large d)
    def _layout_rows(self):
        """[(name, array, kind, start, stop)] of the stacked rows Z (kinds: "rows" (n, d),
        "factor" (n, d, k) sample-major columns, "cols" (d, k) a shared factor's columns)."""
        if self._layout is None:
            out, start = [], 0
            for w in self._present():
                raw = self._raw(w)
                kind = "factor" if raw.ndim == 3 else "rows"
                m = raw.shape[0] * (raw.shape[2] if raw.ndim == 3 else 1)
                out.append((w, raw, kind, start, start + m))
                start += m
            if self._shared_factor is not None:
                k = self._shared_factor.shape[1]
                out.append(("shared", self._shared_factor, "cols", start, start + k))
                start += k
            for w in self._present():
                g = self._gradients.get(w)
                if g is not None:
                    out.append((f"{w}_gradients", g, "rows", start, start + g.shape[0]))
                    start += g.shape[0]
            self._layout = out
        return self._layout

    def _row_index(self, name):
        """Row indices of one block of Z ("retain", "forget", "shared", "<set>_gradients")."""
        for nm, _, _, a, b in self._layout_rows():
            if nm == name:
                return np.arange(a, b)
        return np.zeros(0, dtype=np.int64)

    def _sample_shape(self, which):
        raw = self._raw(which)
        return raw.shape[0], (raw.shape[2] if raw.ndim == 3 else 1)

    def _row_chunks(self, rows=None, dtype=np.float64, max_cols=None):
        """Yield (column slice, Z[rows, slice] as ``dtype``) over d in chunks (rows sorted)."""
        layout = self._layout_rows()
        total = layout[-1][4]
        rows = np.arange(total) if rows is None else np.asarray(rows, dtype=np.int64)
        plan = []
        for _, arr, kind, a, b in layout:
            local = rows[(rows >= a) & (rows < b)] - a
            if local.size:
                full = local.size == b - a
                plan.append((arr, kind, local, full))
        step = max(1, CHUNK_ENTRIES // max(1, rows.size))
        if max_cols is not None:
            step = min(step, max_cols)
        d = self.dim
        for s in range(0, d, step):
            sl = slice(s, min(d, s + step))
            parts = []
            for arr, kind, local, full in plan:
                if kind == "rows":
                    blk = arr[:, sl] if full else arr[local, sl]
                elif kind == "factor":
                    n, _, k = arr.shape
                    blk = (arr[:, sl, :].transpose(0, 2, 1).reshape(n * k, -1) if full
                           else arr[local // k, sl, local % k])
                else:
                    blk = arr[sl].T if full else arr[sl][:, local].T
                parts.append(np.asarray(blk, dtype=dtype))
            yield sl, (parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0))

    def _joint_gram(self):
        """Z Zᵀ (float64) of all stacked rows, accumulated over column chunks (one pass over d).

        float64 input: float64 products. All-float32 input: each chunk of ≤ ``F32_CHUNK_COLS``
        columns is multiplied in float32 (twice the speed, no upcast copy) and the chunks are
        accumulated in float64; the products of float32 numbers are exact in float32's FMA up to
        the chunk's float32 sums, so each entry carries an error of order
        eps₃₂·√(chunk)·‖z_i‖‖z_j‖/√(d/chunk) — the size of the rounding that made the input
        float32 in the first place, not more."""
        if self._gram is None:
            from .threads import blas_threads
            from threadpoolctl import threadpool_limits

            layout = self._layout_rows()
            M = layout[-1][4]
            f32 = all(arr.dtype == np.float32 for _, arr, _, _, _ in layout)
            dtype, cols = (np.float32, F32_CHUNK_COLS) if f32 else (np.float64, None)
            G = np.zeros((M, M))
            bs = 512  # upper-triangular row blocks: ~half the products of a full Z Zᵀ
            with threadpool_limits(limits=blas_threads(), user_api="blas"):
                for _, Zc in self._row_chunks(dtype=dtype, max_cols=cols):
                    for i in range(0, M, bs):
                        Zi = Zc[i : i + bs]
                        for j in range(i, M, bs):
                            G[i : i + bs, j : j + bs] += Zi @ Zc[j : j + bs].T
            G = np.triu(G) + np.triu(G, 1).T
            if not np.all(np.isfinite(G)):
                raise ValueError("the inner products of the factors/gradients overflow float64")
            self._gram = G
        return self._gram

    def _gram_reduction(self, chosen):
        """Span coordinates from the joint Gram: G_S = W diag(s²) Wᵀ on the chosen rows gives
        U = Z_Sᵀ W_r diag(1/s_r) (implicit) and Ψ = Uᵀ Z_Sᵀ = diag(s_r) W_rᵀ — no pass over d."""
        d = self.dim
        G = self._joint_gram()
        idx = np.concatenate([self._row_index(w) for w in chosen] + [self._row_index("shared")])
        if idx.size == 0:
            return Reduction(np.zeros((d, 0)), None, None, d)
        w, W = np.linalg.eigh(G[np.ix_(idx, idx)])
        w, W = w[::-1], W[:, ::-1]
        w_ref = self._span_reference()
        if w[0] <= 0 or w_ref <= 0:
            r = 0
        else:  # the span rule (curvature units), never below the Gram's own round-off
            tol = max(span_tolerance(d) * w_ref, _gram_tolerance(w[0], idx.size, d))
            r = int(np.sum(w > tol))
        s = np.sqrt(w[:r])
        Psi = s[:, None] * W[:, :r].T  # (r, rows)
        basis = ImplicitBasis(self, idx, W[:, :r] / s)
        if r == 0 and self._shared_scalar > 0.0:
            basis = np.zeros((d, 1))
            basis[0, 0] = 1.0
            Psi, r = np.zeros((1, idx.size)), 1
        kmax = max(self._sample_shape(w)[1] for w in chosen)
        psis, start = {}, 0
        for w in chosen:
            n, k = self._sample_shape(w)
            blk = Psi[:, start : start + n * k].reshape(r, n, k)
            if k < kmax:
                blk = np.concatenate([blk, np.zeros((r, n, kmax - k))], axis=2)
            psis[w] = blk
            start += n * k
        shared_psi = None if self._shared_factor is None else Psi[:, start:]
        return Reduction(basis, psis.get("retain"), psis.get("forget"), d,
                         shared_scalar=self._shared_scalar, shared_psi=shared_psi)

    def _drift_geometry(self, red, active, B, extra):
        """Drift vectors in [U, V] coordinates from the joint Gram (large d; see Dynamics).

        The raw drift vectors are t_i = Σ_j B_ij g_j + U a_i (rows i over the active sets'
        samples, j over their gradient rows; ``extra`` = a (n_a, r)). Their span coordinates
        are B P + a with P = Uᵀg; their out-of-span parts are Σ_j B_ij res(g_j), whose Gram is
        B (G_gg − P Pᵀ) Bᵀ = E diag(σ²) Eᵀ. Then V = Σ_j res(g_j) (Bᵀ E_q/σ_q)_j (implicit) and
        the V coordinates of t_i are (E_q σ_q)_i. Returns (coords (n_a, r + q), V)."""
        G = self._joint_gram()
        gi = np.concatenate([self._row_index(f"{w}_gradients") for w in active])
        U = red.basis
        if isinstance(U, ImplicitBasis):
            P = G[np.ix_(gi, U.rows)] @ U.coef  # (n_g, r)
        else:  # the r = 0 stand-in (an explicit unit vector)
            P = np.stack([U.T @ g for g in self._gradient_rows(gi)]) if gi.size else \
                np.zeros((0, U.shape[1]))
        if callable(extra):  # the span part may depend on P (SAM: (H_i + C)ḡ_R)
            extra = extra(P)
        span = B @ P + extra
        Rg = G[np.ix_(gi, gi)] - P @ P.T
        Rt = B @ Rg @ B.T
        Rt = 0.5 * (Rt + Rt.T)
        sig2, E = np.linalg.eigh(Rt)
        sig2, E = sig2[::-1], E[:, ::-1]
        scale = float(np.trace(B @ G[np.ix_(gi, gi)] @ B.T))
        q = int(np.sum(sig2 > 100 * max(gi.size, 1) * np.finfo(float).eps * max(scale, 0.0)))
        sig = np.sqrt(sig2[:q])
        A = B.T @ (E[:, :q] / sig)  # (n_g, q)
        if q == 0:
            V = np.zeros((self.dim, 0))
        else:
            urows = U.rows if isinstance(U, ImplicitBasis) else np.zeros(0, dtype=np.int64)
            rows = np.union1d(gi, urows)
            coef = np.zeros((rows.size, q))
            coef[np.searchsorted(rows, gi)] += A
            if urows.size:
                coef[np.searchsorted(rows, urows)] -= U.coef @ (P.T @ A)
            V = ImplicitBasis(self, rows, coef)
        return np.hstack([span, E[:, :q] * sig]), V

    def _gradient_rows(self, gi):
        for sl_rows in gi:
            for nm, arr, _, a, b in self._layout_rows():
                if a <= sl_rows < b:
                    yield np.asarray(arr[sl_rows - a], dtype=np.float64)

    def _gram_trace_products(self, a, b):
        G = self._joint_gram()
        (na, ka), (nb, kb) = self._sample_shape(a), self._sample_shape(b)
        X = G[np.ix_(self._row_index(a), self._row_index(b))].reshape(na, ka, nb, kb)
        return np.einsum("ikjl,ikjl->ij", X, X)

    def _gram_max_eigenvalues(self, which):
        G = self._joint_gram()
        n, k = self._sample_shape(which)
        ri, rq = self._row_index(which), self._row_index("shared")
        if k == 1 and rq.size == 0:
            return np.diag(G)[ri] + self._shared_scalar
        out = np.empty(n)
        for i in range(n):  # the small Gram of [F_i, Q] has the spectrum of F_iF_iᵀ + QQᵀ
            idx = np.concatenate([ri[i * k : (i + 1) * k], rq])
            out[i] = np.linalg.eigvalsh(G[np.ix_(idx, idx)])[-1]
        return out.clip(min=0.0) + self._shared_scalar

    # ------------------------------------------------------------------ span reduction
    def _span_reference(self):
        """The reference of the span rule for factor-backed and dense sets (cached): the largest
        singular value s_ref of all stacked factors [F_1 … F_n, Q] of both sets (s_ref² = λ_ref =
        λ_max(Σ_i H_i + QQᵀ)); on the large-d Gram path λ_ref itself (the top eigenvalue of the
        Gram of those rows), which the Gram already holds squared."""
        if self._span_ref is None:
            if self._large:
                G = self._joint_gram()
                idx = np.concatenate([self._row_index(w) for w in self._present()]
                                     + [self._row_index("shared")])
                ref = float(np.linalg.eigvalsh(G[np.ix_(idx, idx)])[-1]) if idx.size else 0.0
            else:
                d = self.dim
                blocks = [self.factors(w).transpose(1, 0, 2).reshape(d, -1)
                          for w in self._present()]
                if self._shared_factor is not None:
                    blocks.append(self._shared_factor)
                Phi = np.concatenate(blocks, axis=1)
                ref = float(np.linalg.svd(Phi, compute_uv=False)[0]) if Phi.size else 0.0
            self._span_ref = max(ref, 0.0)
        return self._span_ref

    def reduction(self, retain=True, forget=None) -> Reduction:
        """Coordinates of the selected sets on the span of their Hessians (cached).

        ``retain``/``forget`` select which sets define the span (the sets that enter the dynamics
        with a non-zero weight); by default both present sets.

        **Span rule** (one rule for dense, factor and commuting input; THEORY §3 "Null space").
        The curvature of a unit direction u is uᵀSu with S = Σ_{i∈selected} H_i (+ QQᵀ of a shared
        factor); u belongs to the span U iff it is an eigenvector of S with eigenvalue

            λ_k(S) > τ(d) · λ_ref,     τ(d) = SPAN_RTOL·√d·eps = 10·√d·eps,

        where λ_ref = λ_max(Σ_i H_i + QQᵀ) over *all* samples of the set (retain and forget), so
        the spans of subsets are nested in the span of the whole set and use one threshold.
        Anything below is round-off: a dense d×d eigendecomposition cannot resolve it (its error is
        a few eps of the matrix norm), so keeping it would invent directions (curvature ~1e-21
        beside genuine ~1e-14) whose rate ρ ≈ 1 hides the real one. In each representation:

        - factors (and dense input, through its per-sample eigen-factors F_i = V√λ): thin SVD of
          the stacked factors Φ = [F_1 … F_n, Q] (d × Σk), S = ΦΦᵀ, so the rule reads
          (s_k / s_ref)² > τ(d) with s_ref² = λ_ref — stated in curvature units, not the
          ``matrix_rank`` rule s_k > max(d, Σk)·eps·s_max (which is eps² in curvature);
        - large d (chunked Gram): the Gram eigenvalues w_k = s_k² against the same τ(d)·λ_ref,
          and never below the Gram's own round-off 10·(rows + √d)·eps·w_max;
        - commuting: λ_k(S) = Σ_i λ_{i,k} exactly, per set (``from_commuting`` stores the
          round-off entries as zeros; a direction is in the span of the union iff it is in the
          span of one of the sets).

        Only ratios to λ_ref enter (no absolute threshold, no squares of huge or tiny numbers),
        so H → cH leaves U and r unchanged for any c > 0 representable with its products.
        """
        forget = self.has_forget if forget is None else bool(forget)
        retain = bool(retain)
        if forget and not self.has_forget:
            raise ValueError("this HessianSet has no forget set")
        key = (retain, forget)
        if key not in self._reductions:
            self._reductions[key] = self._build_reduction(retain, forget)
        return self._reductions[key]

    def _build_reduction(self, retain, forget):
        d = self.dim
        chosen = [w for w, on in (("retain", retain), ("forget", forget)) if on]
        if self.kind == "commuting":
            active = np.zeros(d, dtype=bool)
            for w in chosen:
                active |= np.any(self._raw(w) > 0, axis=0)
            U = self._basis[:, active]
            psis = {
                w: np.transpose(
                    np.sqrt(self._raw(w)[:, active])[:, :, None] * np.eye(active.sum())[None],
                    (1, 0, 2),
                )
                for w in chosen
            }
            return Reduction(U, psis.get("retain"), psis.get("forget"), d)
        if self._large:
            return self._gram_reduction(chosen)
        factors = {w: self.factors(w) for w in chosen}
        if not factors:
            return Reduction(np.zeros((d, 0)), None, None, d)
        k = max(F.shape[2] for F in factors.values())
        factors = {
            w: (F if F.shape[2] == k else np.concatenate(
                [F, np.zeros(F.shape[:2] + (k - F.shape[2],))], axis=2))
            for w, F in factors.items()
        }
        blocks = [factors[w].transpose(1, 0, 2).reshape(d, -1) for w in chosen]
        Q = self._shared_factor
        if Q is not None:  # C = QQᵀ is part of every sample's Hessian: its range is in the span
            blocks.append(Q)
        Phi = np.concatenate(blocks, axis=1)
        U, s, Vt = np.linalg.svd(Phi, full_matrices=False)
        s_ref = self._span_reference()
        if s.size == 0 or s[0] == 0.0 or s_ref == 0.0:
            r = 0
        else:  # the span rule in curvature units, as a ratio (no overflow/underflow of s²)
            r = int(np.sum((s / s_ref) ** 2 > span_tolerance(d)))
        U = U[:, :r]
        Psi = s[:r, None] * Vt[:r]  # = Uᵀ Φ
        if r == 0 and self._shared_scalar > 0.0:
            # every factor vanishes but λI does not: any direction carries the (scalar) dynamics;
            # one of them stands for the span (the rest is the null mode, same scalar)
            U = np.zeros((d, 1))
            U[0, 0] = 1.0
            Psi = np.zeros((1, Phi.shape[1]))
            r = 1
        psis, start = {}, 0
        for w in chosen:
            n = factors[w].shape[0]
            psis[w] = Psi[:, start : start + n * k].reshape(r, n, k)
            start += n * k
        shared_psi = None if Q is None else Psi[:, start:]
        return Reduction(U, psis.get("retain"), psis.get("forget"), d,
                         shared_scalar=self._shared_scalar, shared_psi=shared_psi)


def _check_gradients(gradients, retain, forget):
    """Validate per-sample gradients against their set: shape (n, d), finite, real."""
    out = {}
    for which, raw in (("retain", retain), ("forget", forget)):
        g = gradients.get(which)
        if g is None:
            continue
        name = f"{which}_gradients"
        if raw is None:
            raise ValueError(f"{name} was given but the HessianSet has no {which} set")
        if np.iscomplexobj(np.asarray(g)):
            raise TypeError(f"{name} must be real, got a complex array")
        g = _float_array(g, name, ndim=2)
        shape = (raw.shape[0], raw.shape[1])
        if g.shape != shape:
            raise ValueError(
                f"{name} must have shape (n_{which}, d) = {shape}, got {g.shape}"
            )
        out[which] = g
    return out


def _spectral_scale(H):
    # cheap upper bound of max_i ‖H_i‖₂ (Frobenius norm), used only to set tolerances
    return float(np.sqrt(np.max(np.einsum("nab,nab->n", H, H))))


def _check_which(which):
    if which not in _SETS:
        raise ValueError(f"which must be 'retain' or 'forget', got {which!r}")


_CONSTRUCT = object()


def check_hessian_set(hs, name="hs"):
    """Type-check a HessianSet argument (TypeError naming ``name`` otherwise)."""
    if not isinstance(hs, HessianSet):
        raise TypeError(f"{name} must be a HessianSet, got {type(hs).__name__}")
    return hs
