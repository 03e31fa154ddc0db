"""How a :class:`~rmt.dynamics.Dynamics` is laid out for the Monte Carlo kernels: the working
coordinates and per-sample Hessian storage of each path (``factor``, ``gram``, ``dense``,
``diagonal``; :mod:`rmt.montecarlo.engine` describes them), the shared curvature stored apart,
the start vectors and the kernel argument tuple. Used by :mod:`rmt.montecarlo.engine` and
:mod:`rmt.montecarlo.affine`."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..dynamics import Dynamics
from ..validation import check_choice
from . import _kernels as K_

PATHS = ("auto", "factor", "gram", "dense", "diagonal")
_SAMPLING = {"bernoulli": K_.BERNOULLI, "with_replacement": K_.WITH_REPLACEMENT,
             "without_replacement": K_.WITHOUT_REPLACEMENT}
_SCHED = {"summed": K_.SUMMED, "alternating": K_.ALTERNATING, "sam": K_.SAM}


@dataclass
class _Plan:
    """Working coordinates and kernel arguments for one (Dynamics, path).

    Everything about the step — active sets, weights s_S, batch sizes, sampling, combinator and
    the SAM factor K — is read from the :class:`~rmt.dynamics.Dynamics`; the plan only chooses
    the storage of the per-sample Hessians (``path``) that the kernels apply.
    """

    dyn: Dynamics
    path: str
    args_R: tuple
    args_F: tuple
    sched: int
    sampling: int
    K: np.ndarray
    m: int
    dim: int
    span_dim: int
    basis: np.ndarray | None  # (d, m) orthonormal, None on the factor path (identity coords)
    start_factors: np.ndarray | None  # (N, m) factor columns (rows) for the factor-path start
    #: (GS, modeS): the shared curvature applied once per batch (``_kernels._apply_shared``),
    #: or (unused, NO_SHARED) when it is part of the per-sample storage or absent
    shared: tuple = (np.zeros((1, 1, 1)), K_.NO_SHARED)


_UNUSED = (K_.FACTOR, 0, 1, 0.0, 0.0, False)


def _set_args(G, mode, term, m):
    """Kernel arguments of one set: (G, mode, n, B, s/B, log(1 − B/n), in use)."""
    if term is None:  # the set does not enter the step: never sampled
        return (np.zeros((1, 1, m)), *_UNUSED)
    n, B = term.n, term.batch
    lq = math.log1p(-B / n) if B < n else -math.inf
    return (np.ascontiguousarray(G, dtype=np.float64), mode, n, B, term.weight / B, lq, True)


def _choose_path(dyn, path, *, full_coordinates=True):
    """Resolve ``path="auto"`` (module docstring) and reject impossible choices."""
    check_choice(path, "path", PATHS)
    hs, sam = dyn.hs, dyn.combinator.preconditioned
    shared = dyn.reduction.has_shared
    if path == "auto":
        if hs.kind == "commuting":
            path = "diagonal"
        elif sam or hs.kind == "dense" or not full_coordinates or shared:
            path = "gram"
        else:
            N = sum(t.n * hs.factors(t.name).shape[2] for t in dyn.terms)
            path = "gram" if N < dyn.dim else "factor"
    if path == "diagonal" and hs.kind != "commuting":
        raise ValueError(f"path='diagonal' needs a commuting HessianSet, this one is {hs.kind!r}")
    if path == "factor" and sam:
        raise ValueError("schedule='sam' needs the span coordinates: use path 'gram' or 'dense'")
    if path == "factor" and shared:
        raise ValueError("a HessianSet with shared curvature runs in span coordinates (its null "
                         "mode is a closed-form scalar): use path 'gram' or 'dense'")
    return path


def _plan(dyn, path, *, full_coordinates=True, width=None) -> _Plan:
    """Kernel arguments for ``dyn`` on ``path`` (``full_coordinates=False``: never "factor").

    ``width`` (≥ r): working coordinates = the span followed by width − r null directions (the
    drift directions V of the affine recursion, or a stand-in for a start's null part). With a
    shared curvature C = λI + QQᵀ every sample's factor is [Ψ_i, UᵀQ, √λ·I_width] — exactly
    the law of H_i + C, including the batch-size randomness of Bernoulli sampling; λ acts on
    the null coordinates too (the null scalar mode)."""
    path = _choose_path(dyn, path, full_coordinates=full_coordinates)
    hs, d = dyn.hs, dyn.dim
    basis, start = dyn.basis, None
    red = dyn.reduction
    G, modes = {}, {}
    shared = (np.zeros((1, 1, 1)), K_.NO_SHARED)
    m = d if path == "factor" else (dyn.r if width is None else width)
    if path == "diagonal":
        for t in dyn.terms:
            G[t.name], modes[t.name] = _widen(t.profile[:, None, :], m, dense=False), K_.DIAG
    elif path == "factor":
        for t in dyn.terms:
            G[t.name] = np.ascontiguousarray(hs.factors(t.name).transpose(0, 2, 1))
            modes[t.name] = K_.FACTOR
        # (N, d) factor columns as rows: a view when only one set enters
        rows = [G[t.name].reshape(-1, d) for t in dyn.terms]
        start = rows[0] if len(rows) == 1 else np.concatenate(rows, axis=0)
        basis = None
    else:
        dense = {t.name: path == "dense" or (hs.kind == "dense" and 2 * t.psi.shape[2] > dyn.r)
                 for t in dyn.terms}
        # a shared curvature C (λI on all m coordinates + (UᵀQ)(UᵀQ)ᵀ on the span) is the same
        # for every sample: with only factor storage it is kept apart (GS) and applied once per
        # batch (Σ_b (H⁰_b + C)w = Σ_b H⁰_b w + nb·Cw) instead of as extra columns per sample
        apart = red.has_shared and not any(dense.values())
        for t in dyn.terms:
            if dense[t.name]:
                G[t.name] = _widen(t.hessians(), m, dense=True)
                if red.shared_scalar > 0.0 and m > dyn.r:
                    idx = np.arange(dyn.r, m)
                    G[t.name][:, idx, idx] = red.shared_scalar
                modes[t.name] = K_.DENSE
            else:
                cols = [t.psi.transpose(1, 2, 0)]  # (n, k, r)
                if red.shared_psi is not None and not apart:
                    cols.append(np.broadcast_to(red.shared_psi.T, (t.n,) + red.shared_psi.T.shape))
                cols = [_widen(c, m, dense=False) for c in cols]
                if red.shared_scalar > 0.0 and not apart:
                    cols.append(np.broadcast_to(math.sqrt(red.shared_scalar) * np.eye(m),
                                                (t.n, m, m)))
                G[t.name] = np.ascontiguousarray(np.concatenate(cols, axis=1))
                modes[t.name] = K_.FACTOR
        if apart:
            shared = _shared_storage(red, m)
        if path == "gram" and K_.DENSE in modes.values():
            path = "dense"
    Kmat = np.eye(1) if path == "factor" else dyn.K
    if path != "factor" and m > dyn.r:
        Kmat = dyn.null_kappa * np.eye(m)
        Kmat[: dyn.r, : dyn.r] = dyn.K
    args = {w: _set_args(G.get(w), modes.get(w), dyn.term(w), m) for w in ("retain", "forget")}
    return _Plan(dyn, path, args["retain"], args["forget"], _SCHED[dyn.combinator],
                 _SAMPLING[dyn.sampling], np.ascontiguousarray(Kmat), m, d, dyn.r, basis, start,
                 shared)


#: Largest working dimension for which :func:`_shared_storage` diagonalises the shared curvature
#: (once per plan, O(m³)) to look for the σI + low-rank form
SHIFTED_MAX_DIM = 1024


def _shared_storage(red, m):
    """(GS (1, k, m), mode) of the shared curvature C in m working coordinates: λ on every
    coordinate plus ΨsΨsᵀ on the span (Ψs = UᵀQ), stored the cheapest way to apply (flops per
    product) — a profile (λI alone: m), factor columns (2·k·m), σI plus a signed low-rank part
    (``SHIFTED``: m + 4·k·m; weight decay that spares the intercept is λI − λuuᵀ, k = 1) or the
    dense m×m matrix (m²).

    The ``SHIFTED`` form is C's eigendecomposition C = Σ_j μ_j v_jv_jᵀ with σ the value of the
    largest cluster of eigenvalues (within 64·m·ε·max|μ| of each other, i.e. equal to
    round-off) and the other k eigenpairs kept as ±√|μ_j − σ| v_j: rows 1, 3, … of GS hold
    g_j = √|μ_j − σ| v_j, rows 2, 4, … sign(μ_j − σ)·g_j, row 0 the profile σ·1. It is used only
    when it reproduces C to 1e3·ε·max|C|."""
    lam, ps = red.shared_scalar, red.shared_psi
    if ps is None:
        return np.full((1, 1, m), float(lam)), K_.DIAG
    cols = _widen(np.ascontiguousarray(ps.T), m, dense=False)  # (k_s, m)
    C = cols.T @ cols
    C[np.diag_indices(m)] += lam
    best, cost = (np.ascontiguousarray(C[None]), K_.DENSE), m * m
    if lam == 0.0 and 2 * cols.shape[0] * m < cost:
        best, cost = (np.ascontiguousarray(cols[None]), K_.FACTOR), 2 * cols.shape[0] * m
    if m <= SHIFTED_MAX_DIM:
        mu, V = np.linalg.eigh(C)
        size = float(np.max(np.abs(mu)))
        tol = 64 * m * np.finfo(float).eps * size
        lo, top = 0, (0, 1)
        for hi in range(1, m + 1):  # the longest run mu[lo:hi] with spread ≤ tol
            while mu[hi - 1] - mu[lo] > tol:
                lo += 1
            if hi - lo > top[1] - top[0]:
                top = (lo, hi)
        sigma = float(mu[(top[0] + top[1] - 1) // 2])
        rest = np.r_[0:top[0], top[1]:m]
        k = len(rest)
        if m + 4 * k * m < cost:
            dev = mu[rest] - sigma
            g = V[:, rest] * np.sqrt(np.abs(dev))  # (m, k)
            h = g * np.sign(dev)
            err = float(np.max(np.abs(sigma * np.eye(m) + h @ g.T - C), initial=0.0))
            if err <= 1e3 * np.finfo(float).eps * max(float(np.max(np.abs(C))), 1e-300):
                GS = np.empty((1, 1 + 2 * k, m))
                GS[0, 0] = sigma
                GS[0, 1::2] = g.T
                GS[0, 2::2] = h.T
                best = (GS, K_.SHIFTED)
    return best


def _widen(G, m, *, dense):
    """Hessian storage on the span (last axis/axes r) extended by zeros to m coordinates."""
    r = G.shape[-1]
    if r == m:
        return G
    if dense:
        out = np.zeros((G.shape[0], m, m))
        out[:, :r, :r] = G
    else:
        out = np.zeros(G.shape[:-1] + (m,))
        out[..., :r] = G
    return out


def _start_vectors(plan, gens, count=1):
    """(replicas, count, m) start vectors (not yet orthonormalised), see module docstring.

    Each replica draws its own Gaussian coefficients from its own stream; on the factor path the
    combination Σ_i F_i z_i for all replicas is one BLAS product (R·count, N) @ (N, d), since the
    per-replica matrix-vector products would dominate short runs at large d.
    """
    R = len(gens)
    if plan.start_factors is None:
        return np.stack([g.standard_normal((count, plan.m)) for g in gens])
    N = plan.start_factors.shape[0]
    Z = np.stack([g.standard_normal((count, N)) for g in gens]).reshape(R * count, N)
    return (Z @ plan.start_factors).reshape(R, count, plan.m)


def _kernel_args(plan: _Plan) -> tuple[Any, ...]:
    return (*plan.args_R, *plan.args_F, plan.sched, plan.sampling, plan.K, *plan.shared)
