"""The large-d path of :class:`rmt.hessians.HessianSet` (contract §1, §3): the stacked rows Z
(factor columns, a shared factor's columns, per-sample gradients), their joint Gram Z Zᵀ
accumulated in one chunked pass over d, and everything read from it — span coordinates with an
implicit basis U = Zᵀ C (:class:`rmt.span.ImplicitBasis`), drift geometry, trace products and
per-sample top eigenvalues — at a cost of O(rows³), independent of d.

:class:`GramRows` is a mixin of :class:`~rmt.hessians.HessianSet`: it reads the set's arrays
(``_raw``, ``_present``, ``_gradients``, ``_shared_factor``, ``_shared_scalar``, ``dim``), its
span reference (``_span_reference``) and the chunk size ``_chunk_entries``, and is used only when
the set is large (``_large``).
"""

from __future__ import annotations

from functools import cached_property

import numpy as np

from .span import ImplicitBasis, Reduction, _gram_tolerance, span_tolerance
from .threads import limit_blas

__all__ = ["GramRows", "F32_CHUNK_COLS"]

#: Columns per float32 chunk product of the Gram pass (float32 sums over at most this many
#: terms, then float64 accumulation across chunks).
F32_CHUNK_COLS = 2048


class GramRows:
    """The stacked rows of a HessianSet and their chunked joint Gram (mixin; see module doc)."""

    @cached_property
    def _layout_rows(self):
        """[(name, array, kind, start, stop)] of the stacked rows Z (kinds: "rows" (n, d),
        "factor" (n, d, k) sample-major columns, "cols" (d, k) a shared factor's columns)."""
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
        return out

    def _row_index(self, name):
        """Row indices of one block of Z ("retain", "forget", "shared", "<set>_gradients")."""
        for nm, _, _, a, b in self._layout_rows:
            if nm == name:
                return np.arange(a, b)
        return np.zeros(0, dtype=np.int64)

    def _sample_shape(self, which):
        raw = self._raw(which)
        return raw.shape[0], (raw.shape[2] if raw.ndim == 3 else 1)

    def _row_chunks(self, rows=None, dtype=np.float64, max_cols=None):
        """Yield (column slice, Z[rows, slice] as ``dtype``) over d in chunks (rows sorted)."""
        layout = self._layout_rows
        total = layout[-1][4]
        rows = np.arange(total) if rows is None else np.asarray(rows, dtype=np.int64)
        plan = []
        for _, arr, kind, a, b in layout:
            local = rows[(rows >= a) & (rows < b)] - a
            if local.size:
                full = local.size == b - a
                plan.append((arr, kind, local, full))
        step = max(1, self._chunk_entries // max(1, rows.size))
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

    @cached_property
    def _gram(self):
        """Z Zᵀ (float64) of all stacked rows, accumulated over column chunks (one pass over d).

        float64 input: float64 products. All-float32 input: each chunk of ≤ ``F32_CHUNK_COLS``
        columns is multiplied in float32 (twice the speed, no upcast copy) and the chunks are
        accumulated in float64; the products of float32 numbers are exact in float32's FMA up to
        the chunk's float32 sums, so each entry carries an error of order
        eps₃₂·√(chunk)·‖z_i‖‖z_j‖/√(d/chunk) — the size of the rounding that made the input
        float32 in the first place, not more."""
        layout = self._layout_rows
        M = layout[-1][4]
        f32 = all(arr.dtype == np.float32 for _, arr, _, _, _ in layout)
        dtype, cols = (np.float32, F32_CHUNK_COLS) if f32 else (np.float64, None)
        G = np.zeros((M, M))
        bs = 512  # upper-triangular row blocks: ~half the products of a full Z Zᵀ
        with limit_blas():
            for _, Zc in self._row_chunks(dtype=dtype, max_cols=cols):
                for i in range(0, M, bs):
                    Zi = Zc[i : i + bs]
                    for j in range(i, M, bs):
                        G[i : i + bs, j : j + bs] += Zi @ Zc[j : j + bs].T
        G = np.triu(G) + np.triu(G, 1).T
        if not np.all(np.isfinite(G)):
            raise ValueError("the inner products of the factors/gradients overflow float64")
        return G

    def _joint_gram(self):
        """Z Zᵀ of all stacked rows (:attr:`_gram`, computed on first use)."""
        return self._gram

    def _gram_reduction(self, chosen):
        """Span coordinates from the joint Gram: G_S = W diag(s²) Wᵀ on the chosen rows gives
        U = Z_Sᵀ W_r diag(1/s_r) (implicit) and Ψ = Uᵀ Z_Sᵀ = diag(s_r) W_rᵀ — no pass over d."""
        d = self.dim
        G = self._gram
        idx = np.concatenate([self._row_index(w) for w in chosen] + [self._row_index("shared")])
        if idx.size == 0:
            return Reduction(np.zeros((d, 0)), None, None, d)
        w, W = np.linalg.eigh(G[np.ix_(idx, idx)])
        w, W = w[::-1], W[:, ::-1]
        w_ref = self._span_reference
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
        G = self._gram
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
            for nm, arr, _, a, b in self._layout_rows:
                if a <= sl_rows < b:
                    yield np.asarray(arr[sl_rows - a], dtype=np.float64)

    def _gram_trace_products(self, a, b):
        G = self._gram
        (na, ka), (nb, kb) = self._sample_shape(a), self._sample_shape(b)
        X = G[np.ix_(self._row_index(a), self._row_index(b))].reshape(na, ka, nb, kb)
        return np.einsum("ikjl,ikjl->ij", X, X)

    def _gram_max_eigenvalues(self, which):
        G = self._gram
        n, k = self._sample_shape(which)
        ri, rq = self._row_index(which), self._row_index("shared")
        if k == 1 and rq.size == 0:
            return np.diag(G)[ri] + self._shared_scalar
        out = np.empty(n)
        for i in range(n):  # the small Gram of [F_i, Q] has the spectrum of F_iF_iᵀ + QQᵀ
            idx = np.concatenate([ri[i * k : (i + 1) * k], rq])
            out[i] = np.linalg.eigvalsh(G[np.ix_(idx, idx)])[-1]
        return out.clip(min=0.0) + self._shared_scalar
