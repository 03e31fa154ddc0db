"""Per-sample curvature: the :class:`HessianSet` (contract §1).

A HessianSet holds the per-sample PSD Hessians H_i of a *retain* set R and an optional *forget*
set F, in one of four representations:

``"dense"``     arrays (n, d, d)
``"rank1"``     factors g_i of shape (n, d):     H_i = g_i g_iᵀ   (Gauss–Newton / MSE)
``"factor"``    factors F_i of shape (n, d, k):  H_i = F_i F_iᵀ
``"commuting"`` eigenvalue profiles λ (n, d) in a shared orthonormal basis Q: H_i = Q diag(λ_i) Qᵀ

Factor-backed sets never build a d×d per-sample matrix: every pairwise quantity comes from factor
inner products, tr(H_i H_j) = ‖F_iᵀF_j‖_F² (contract §1).

Everything the analyses need reduces to coordinates on the *span* U of the Hessians that enter
the dynamics (the orthogonal complement of their common null space N, contract §3 "Null space").
:meth:`HessianSet.reduction` returns those coordinates; they are computed once from a thin SVD
of the stacked factors and cached.

**Shared curvature**: ``shared=λ`` (C = λI, weight decay) or ``shared=Q`` (C = QQᵀ)
makes every sample's Hessian H_i + C without densifying: C = QQᵀ enlarges the span; λI keeps the
factors' null space N invariant, where every step is one scalar (a closed-form mode handled by
:class:`rmt.Dynamics`).

**Large d**: when the stacked rows (factor columns, shared factor, per-sample gradients) hold
more than ``GRAM_MIN_ENTRIES`` entries, float32 input is kept as given (not copied, not upcast),
one chunked pass over d accumulates their joint Gram matrix in float64, and everything after it
— spans (U = Zᵀ C kept implicit, :class:`ImplicitBasis`), reduced factors, drift coordinates,
coherence — is O(rows³), independent of d (:mod:`rmt.hessian_gram`). The Gram route resolves Hessian
eigenvalues down to ~(rows + √d)·eps of the largest (the SVD route: ~max(d, rows)²·eps²).

**Span rule** (:meth:`HessianSet.reduction`, contract §3 "Null space"): one rule for every
representation, in curvature units — a direction is in the span iff its curvature (an eigenvalue
of Σ_i H_i) exceeds τ(d) = 10·√d·eps times the largest curvature of the whole set
(:func:`span_tolerance`); scale-free, so H → cH keeps the span.

Input checks (shapes, finiteness, symmetry/PSD of dense input) are in :mod:`rmt.hessian_input`,
span coordinates in :mod:`rmt.span`.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import numpy.typing as npt

from .hessian_gram import F32_CHUNK_COLS, GramRows  # noqa: F401  (F32_CHUNK_COLS re-exported)
from .hessian_input import (PSD_RTOL, _check_gradients, _check_sets,  # noqa: F401
                            _check_shared, _check_which, _dense_to_factors, _spectral_scale)
from .span import ImplicitBasis, Reduction, _clean_profiles, project, span_tolerance
from .span import hstack_bases, lift  # noqa: F401  (re-exported: rmt.hessians.lift, …)
from .stationarity import StationarityReport, _from_factors_hook
from .validation import check_finite_array

__all__ = ["HessianSet", "Reduction", "ImplicitBasis"]

#: Factor-backed sets whose stacked rows (factor columns, shared factor, gradients) hold more
#: than this many entries (d × rows) work from one chunked Gram pass instead of thin SVDs:
#: float32 input stays float32, no d × r basis is formed (``ImplicitBasis``), and everything
#: after the pass costs O(rows³), independent of d. Below it the arrays are upcast
#: to float64 and the spans come from thin SVDs (more accurate for nearly dependent factors).
GRAM_MIN_ENTRIES = 2**26

#: float64 entries per column chunk of the Gram pass (and of projections through it, and of the
#: NaN/inf check of large input). Read at call time (tests lower it to force several chunks).
CHUNK_ENTRIES = 2**23


class HessianSet(GramRows):
    """Per-sample PSD Hessians split into a retain set and an optional forget set (contract §1).

    Build with :meth:`from_dense`, :meth:`from_factors` or :meth:`from_commuting`; do not call the
    constructor directly. Attributes: ``kind`` ("dense", "rank1", "factor", "commuting"),
    ``n_retain``, ``n_forget`` (0 without a forget set), ``dim`` (d), ``rank`` (factor columns per
    sample: 1 for rank-one sets, k for factor sets, the largest per-sample rank otherwise),
    ``span_dim`` / ``null_dim`` (dimension of the span of all Hessians and of their common null
    space).
    """

    _dense_factors: dict[str, np.ndarray]  # from_dense: per-sample eigen-factors
    #: the stationarity check of w* (:mod:`rmt.stationarity`): set by ``from_factors`` when
    #: gradients are given and by the bridges (rmt.models, rmt.adapters); None otherwise
    stationarity: StationarityReport | None = None
    _folded_shared: tuple[float, np.ndarray | None]  # from_commuting: the folded shared term

    def __init__(self, kind: str, retain: np.ndarray, forget: np.ndarray | None = None, *,
                 basis: np.ndarray | None = None,
                 gradients: dict[str, npt.ArrayLike | None] | None = None,
                 shared: tuple[float, np.ndarray | None] = (0.0, None),
                 _token: object = None) -> None:
        if _token is not _CONSTRUCT:
            raise TypeError(
                "build a HessianSet with HessianSet.from_dense, from_factors or from_commuting"
            )
        self.kind = kind
        self._retain = retain
        self._forget = forget
        self._basis = basis
        self._gradients = _check_gradients(gradients or {}, retain, forget,
                                           chunk_entries=CHUNK_ENTRIES)
        self._shared_scalar, self._shared_factor = shared
        self._reductions: dict[tuple[bool, bool], Reduction] = {}
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
    def from_dense(cls, retain: npt.ArrayLike, forget: npt.ArrayLike | None = None, *,
                   retain_gradients: npt.ArrayLike | None = None,
                   forget_gradients: npt.ArrayLike | None = None,
                   shared: float | npt.ArrayLike | None = None) -> HessianSet:
        """Dense per-sample Hessians, arrays of shape (n, d, d).

        ``shared``: curvature C shared by every sample (retain and forget), so that sample i's
        Hessian is H_i + C — a scalar λ ≥ 0 for C = λI (weight decay) or a factor Q (d, k) for
        C = QQᵀ; see :meth:`from_factors`.

        ``retain_gradients``/``forget_gradients``: per-sample loss gradients g_i = ∇ℓ_i(w*) of
        shape (n, d) at a minimum that does not interpolate (contract §8); they add the drift b_k
        to the linearised step. Omit them (or pass zeros) at an interpolating minimum.

        Each matrix must be symmetric and PSD up to a relative tolerance of 1e-8 times the largest
        spectral norm in the set; otherwise ``ValueError`` names the offending sample. An
        eigenvalue of H_i at round-off level of that matrix (at or below τ(d)·‖H_i‖₂,
        :func:`span_tolerance`) is treated as an exact zero in ``factors()``; the span is then
        decided by the one span rule of :meth:`reduction`, the same as for factor and commuting
        input.
        """
        R, F = _check_sets(retain, forget, "dense", chunk_entries=CHUNK_ENTRIES)
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
    def from_factors(cls, retain: npt.ArrayLike, forget: npt.ArrayLike | None = None, *,
                     retain_gradients: npt.ArrayLike | None = None,
                     forget_gradients: npt.ArrayLike | None = None,
                     shared: float | npt.ArrayLike | None = None) -> HessianSet:
        """Factor-backed Hessians: shape (n, d) → H_i = g_i g_iᵀ; shape (n, d, k) → H_i = F_i F_iᵀ.

        No d×d matrix is ever formed for a factor-backed set. The factors are the Gauss–Newton
        factors √ℓ''·∇f (not the loss gradients). ``retain_gradients``/``forget_gradients``:
        per-sample loss gradients g_i = ∇ℓ_i(w*), shape (n, d), at a non-interpolating minimum
        (contract §8; see :meth:`from_dense`).

        ``shared``: curvature C shared by every sample of both sets, so that sample i's Hessian
        is H_i + C:

        - a scalar λ ≥ 0: C = λI (weight decay λ/2‖w‖² in every per-sample loss). Never densified:
          the common null space N of the factors stays invariant and every J acts on it as one
          scalar j = 1 + Σ_S s_S λ·(|batch_S|/B_S) (|batch|/B = 1 except for Bernoulli
          sampling), a closed-form mode beside the span (``Dynamics.null_*``);
        - a factor Q of shape (d, k): C = QQᵀ, which simply enlarges the span. Weight decay on
          some coordinates only (weights but not biases/intercepts, as scikit-learn does) is
          exactly Q = √λ·I[:, P] for the penalised coordinates P; per-coordinate strengths
          λ_j: Q = I[:, P]·diag(√λ_j).

        λ is in the **mean-loss form** L(w) = (1/n)Σ_i ℓ_i(w) + (λ/2)‖w‖² over all n training
        rows (retain ∪ forget). scikit-learn: ``LogisticRegression(C)`` (C·Σℓ_i + ½‖w‖²) →
        λ = 1/(C·n) on the coefficients; ``Ridge(alpha)`` (‖y − Xw‖² + alpha‖w‖², against the
        squared loss ½(f − y)² here) → λ = alpha/n on the coefficients; ``MLPClassifier`` /
        ``MLPRegressor(alpha, solver="lbfgs")`` (mean loss + alpha/(2n)·Σ‖W‖²) → λ = alpha/n on
        the weights; intercepts unpenalised in all three (docs/models.md, "Weight decay (L2)",
        has the derivations and the exceptions). ``rmt.io.save_npz`` stores the shared term
        (key ``shared``) and ``rmt.io.load_npz`` / ``rmt analyze FILE`` use it (docs/npz.md).

        The gradients are taken as given: at a regularised minimum they are the gradients of the
        regularised per-sample losses, g_i + Cw*. With gradients, the stationarity of w* is checked
        (:mod:`rmt.stationarity`; w* is unknown here, so the number is s₀ = ‖ḡ‖ /
        max(rms‖g_i‖, rms‖F_i‖_F), ḡ the mean gradient over both sets): the report is
        ``hs.stationarity`` and a :class:`~rmt.stationarity.NotStationaryWarning` names s₀ above
        :data:`~rmt.stationarity.STATIONARITY_THRESHOLD`. ``factors()`` returns the per-sample
        part F_i only; ``dense``, ``mean``, ``trace_products``, ``max_eigenvalues`` include C.
        """
        R, F = _check_sets(retain, forget, "factors", chunk_entries=CHUNK_ENTRIES)
        kind = "rank1" if R.ndim == 2 and (F is None or F.ndim == 2) else "factor"
        sh = _check_shared(shared, R.shape[1])
        hs = cls(kind, R, F, gradients={"retain": retain_gradients, "forget": forget_gradients},
                 shared=sh, _token=_CONSTRUCT)
        if hs.has_gradients:  # w* unknown here: s₀ of rmt.stationarity (warns above threshold)
            hs.stationarity = _from_factors_hook(hs)
        return hs

    @classmethod
    def from_commuting(cls, retain: npt.ArrayLike, forget: npt.ArrayLike | None = None,
                       basis: npt.ArrayLike | None = None, *,
                       retain_gradients: npt.ArrayLike | None = None,
                       forget_gradients: npt.ArrayLike | None = None,
                       shared: float | npt.ArrayLike | None = None) -> HessianSet:
        """Simultaneously diagonalisable Hessians H_i = Q diag(λ_i) Qᵀ (contract §3, commuting).

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
        R, F = _check_sets(retain, forget, "commuting", chunk_entries=CHUNK_ENTRIES)
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
    def shared_factor(self) -> np.ndarray | None:
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

    def gradients(self, which: str = "retain") -> np.ndarray | None:
        """Per-sample loss gradients g_i = ∇ℓ_i(w*) of ``which``, shape (n, d), or None."""
        self._raw(which)
        return self._gradients.get(which)

    def size(self, which: str) -> int:
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

    def __repr__(self) -> str:
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

    def _raw(self, which: str) -> np.ndarray:
        _check_which(which)
        raw = self._retain if which == "retain" else self._forget
        if raw is None:
            raise ValueError("this HessianSet has no forget set")
        return raw

    # ------------------------------------------------------------------ views
    def factors(self, which: str = "retain") -> np.ndarray:
        """Factors F_i with H_i = F_i F_iᵀ, shape (n, d, k) (zero-padded to a common k)."""
        raw = self._raw(which)
        if self.kind == "dense":
            return self._dense_factors[which]
        if self.kind == "commuting":
            active = np.flatnonzero(np.any(raw > 0, axis=0))
            if active.size == 0:
                return np.zeros((raw.shape[0], self.dim, 1))
            return self.basis[None, :, active] * np.sqrt(raw[:, None, active])
        if raw.ndim == 2:
            return raw[:, :, None]
        return raw

    def dense(self, which: str = "retain") -> np.ndarray:
        """Per-sample Hessians as a dense (n, d, d) array.

        For factor-backed sets this builds n d×d matrices: meant for tests and small problems.
        """
        raw = self._raw(which)
        if self.kind == "dense":
            out = raw
        elif self.kind == "commuting":
            Q = self.basis
            return np.einsum("ak,nk,bk->nab", Q, raw, Q)
        else:
            F = self.factors(which)
            out = np.einsum("nak,nbk->nab", F, F)
        return out + self._shared_dense()[None] if self.has_shared else out

    def eigenvalues(self, which: str = "retain") -> np.ndarray:
        """Eigenvalue profiles (n, d) of a commuting set in its shared basis."""
        if self.kind != "commuting":
            raise ValueError(f"eigenvalues() needs a commuting set, this one is {self.kind!r}")
        return self._raw(which)

    @property
    def basis(self) -> np.ndarray:
        """The shared orthonormal eigenbasis Q of a commuting set."""
        if self.kind != "commuting":
            raise ValueError(f"basis needs a commuting set, this one is {self.kind!r}")
        assert self._basis is not None  # from_commuting always sets it
        return self._basis

    def mean(self, which: str = "retain") -> np.ndarray:
        """Mean Hessian H̄_S = (1/n_S) Σ_{i∈S} H_i as a dense (d, d) array (shared term included)."""
        raw = self._raw(which)
        if self.kind == "dense":
            out = raw.mean(axis=0)
        elif self.kind == "commuting":
            return (self.basis * raw.mean(axis=0)) @ self.basis.T
        else:
            F = self.factors(which)
            n, d, k = F.shape
            flat = F.transpose(1, 0, 2).reshape(d, n * k)
            out = (flat @ flat.T) / n
        return out + self._shared_dense() if self.has_shared else out

    def max_eigenvalues(self, which: str = "retain") -> np.ndarray:
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

    def trace_products(self, a: str = "retain", b: str = "retain") -> np.ndarray:
        """Matrix of tr(H_i H_j) for i ∈ a, j ∈ b (contract §1), via factor inner products.

        With a shared term C the per-sample Hessians are H_i + C and
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
            G, (n, k) = self._gram, self._sample_shape(which)
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

    def factor_coordinates(self, which: str, basis: np.ndarray | ImplicitBasis) -> np.ndarray:
        """Coordinates Bᵀ F_i of the per-sample factors of ``which`` in an orthonormal basis B
        (d, m): shape (n, k, m). For an :class:`ImplicitBasis` of this set (large d) they come from
        the joint Gram, with no pass over d; otherwise one product with the explicit basis."""
        F = self.factors(which)
        if isinstance(basis, ImplicitBasis) and basis._hs is self:
            n, k = self._sample_shape(which)
            G = self._gram
            X = G[np.ix_(self._row_index(which), basis.rows)] @ basis.coef
            out = X.reshape(n, k, -1)
            return out if F.shape[2] == k else np.concatenate(
                [out, np.zeros((n, F.shape[2] - k, out.shape[2]))], axis=1)
        return np.einsum("ndk,dm->nkm", F, np.asarray(basis, dtype=float))

    def gradient_coordinates(self, which: str,
                             basis: np.ndarray | ImplicitBasis) -> np.ndarray | None:
        """Coordinates Bᵀ g_i of the per-sample gradients of ``which`` (n, m), or None without
        gradients; from the joint Gram for an :class:`ImplicitBasis` of this set (large d)."""
        g = self.gradients(which)
        if g is None:
            return None
        if isinstance(basis, ImplicitBasis) and basis._hs is self:
            G = self._gram
            return G[np.ix_(self._row_index(f"{which}_gradients"), basis.rows)] @ basis.coef
        return project(basis, g)

    def factor_gram(self, which: str) -> np.ndarray:
        """FᵀF of the stacked factor columns of ``which`` (n·k, n·k): (1/n)× it has the non-zero
        spectrum of the per-sample part of H̄ (from the joint Gram at large d)."""
        if self._large:
            ri = self._row_index(which)
            return self._gram[np.ix_(ri, ri)].copy()
        F = self.factors(which)
        flat = F.transpose(0, 2, 1).reshape(-1, F.shape[1])
        return flat @ flat.T

    # ------------------------------------------------------------------ span reduction
    @cached_property
    def _span_reference(self):
        """The reference of the span rule for factor-backed and dense sets: the largest singular
        value s_ref of all stacked factors [F_1 … F_n, Q] of both sets (s_ref² = λ_ref =
        λ_max(Σ_i H_i + QQᵀ)); on the large-d Gram path λ_ref itself (the top eigenvalue of the
        Gram of those rows), which the Gram already holds squared."""
        if self._large:
            G = self._gram
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
        return max(ref, 0.0)

    @property
    def _chunk_entries(self) -> int:
        """:data:`CHUNK_ENTRIES`, read at call time (the chunk size of :class:`GramRows`)."""
        return CHUNK_ENTRIES

    def reduction(self, retain: bool = True, forget: bool | None = None) -> Reduction:
        """Coordinates of the selected sets on the span of their Hessians (cached).

        ``retain``/``forget`` select which sets define the span (the sets that enter the dynamics
        with a non-zero weight); by default both present sets.

        **Span rule** (one rule for dense, factor and commuting input; contract §3 "Null space").
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
            U = self.basis[:, active]
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
        s_ref = self._span_reference
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



_CONSTRUCT = object()


def check_hessian_set(hs: object, name: str = "hs") -> HessianSet:
    """Type-check a HessianSet argument (TypeError naming ``name`` otherwise)."""
    if not isinstance(hs, HessianSet):
        raise TypeError(f"{name} must be a HessianSet, got {type(hs).__name__}")
    return hs

