"""Plain-numpy reference implementations of the kernels in ``_kernels.py``.

Same arguments, same outputs, same random draws (the pure-Python SplitMix64 of ``_rng.py``), but
straightforward numpy algebra and no numba: tests assert that kernel and reference agree on
identical draws. Slow (a Python loop over replicas, steps and batch draws): small problems only.
"""

from __future__ import annotations

import math

import numpy as np

from ._kernels import ALTERNATING, DENSE, DIAG, FACTOR, NO_SHARED, SHIFTED, SUMMED
from ._rng import SplitMix64, draw_batch


def _hw(G, mode, idx, w):
    """Σ_{i ∈ idx} H_i w (with multiplicity)."""
    if len(idx) == 0:
        return np.zeros_like(w)
    Gb = G[np.asarray(idx, dtype=np.int64)]
    if mode == FACTOR:
        t = np.einsum("bkm,m->bk", Gb, w)
        return np.einsum("bkm,bk->m", Gb, t)
    if mode == DIAG:
        return Gb[:, 0, :].sum(axis=0) * w
    if mode == DENSE:
        return Gb.sum(axis=0) @ w
    if mode == SHIFTED:  # shared storage only: diag(row 0) + Σ h gᵀ over row pairs (g, h)
        G0 = Gb[0]
        return G0[0] * w + G0[2::2].T @ (G0[1::2] @ w)
    raise ValueError(f"unknown mode {mode}")


def _hsw(GS, modeS, GX, modeX, idx, w):
    """Σ_{i ∈ idx} (H⁰_i + C) w: the set's own storage plus the shared curvature C (``GS``)
    once per drawn sample."""
    out = _hw(GX, modeX, idx, w)
    if modeS != NO_SHARED and len(idx):
        out = out + len(idx) * _hw(GS, modeS, [0], w)
    return out


def apply_J(sched, GR, modeR, idxR, cR, useR, GF, modeF, idxF, cF, useF, K, GS, modeS, w):
    """J w for drawn batches (cR, cF already divided by the nominal batch sizes)."""
    if sched == SUMMED:
        y = w.copy()
        if useR:
            y = y + cR * _hsw(GS, modeS, GR, modeR, idxR, w)
        if useF:
            y = y + cF * _hsw(GS, modeS, GF, modeF, idxF, w)
        return y
    if sched == ALTERNATING:
        v = w + cR * _hsw(GS, modeS, GR, modeR, idxR, w) if useR else w.copy()
        return v + cF * _hsw(GS, modeS, GF, modeF, idxF, v) if useF else v
    v = K @ w
    return w + cR * _hsw(GS, modeS, GR, modeR, idxR, v)


def _draws(rng, sampling, useR, nR, BR, lqR, permR, useF, nF, BF, lqF, permF):
    idxR = draw_batch(rng, sampling, nR, BR, lqR, permR) if useR else []
    idxF = draw_batch(rng, sampling, nF, BF, lqF, permF) if useF else []
    return idxR, idxF


def run_vector(GR, modeR, nR, BR, cR, lqR, useR, GF, modeF, nF, BF, cF, lqF, useF,
               sched, sampling, K, GS, modeS, W0, seeds, steps, burn_in, restart, record,
               logsum, nmeas, nsing, traj):
    """Reference of ``_kernels.run_vector`` (same in/out arrays)."""
    for rep in range(W0.shape[0]):
        rng = SplitMix64(int(seeds[rep]))
        permR, permF = list(range(nR)), list(range(max(nF, 1)))
        w0 = W0[rep]
        n0 = float(np.linalg.norm(w0))
        acc, cnt, sing = 0.0, 0, 0
        if n0 == 0.0:
            if record:
                traj[rep, :] = -np.inf
        else:
            w = w0 / n0
            L = math.log(n0)
            if record:
                traj[rep, 0] = L
            dead = False
            for k in range(steps):
                if dead:
                    if record:
                        traj[rep, k + 1] = -np.inf
                    continue
                idxR, idxF = _draws(rng, sampling, useR, nR, BR, lqR, permR,
                                    useF, nF, BF, lqF, permF)
                y = apply_J(sched, GR, modeR, idxR, cR, useR, GF, modeF, idxF, cF, useF, K, GS,
                            modeS, w)
                nrm = float(np.linalg.norm(y))
                if nrm == 0.0:
                    sing += 1
                    if restart:
                        w = w0 / n0
                    else:
                        dead, L = True, -np.inf
                else:
                    if k >= burn_in:
                        acc += math.log(nrm)
                        cnt += 1
                    L += math.log(nrm)
                    w = y / nrm
                if record:
                    traj[rep, k + 1] = L
        logsum[rep], nmeas[rep], nsing[rep] = acc, cnt, sing


def run_spectrum(GR, modeR, nR, BR, cR, lqR, useR, GF, modeF, nF, BF, cF, lqF, useF,
                 sched, sampling, K, GS, modeS, Q0, seeds, steps, burn_in, logsum, nmeas, nsing):
    """Reference of ``_kernels.run_spectrum``: Benettin with numpy's Householder QR.

    QR is unique up to column signs once R_jj > 0 is imposed, so |diag R| agrees with the
    kernel's modified Gram–Schmidt up to rounding.
    """
    for rep in range(Q0.shape[0]):
        rng = SplitMix64(int(seeds[rep]))
        permR, permF = list(range(nR)), list(range(max(nF, 1)))
        Q = Q0[rep].copy()
        logsum[rep, :] = 0.0
        cnt, sing = 0, 0
        for k in range(steps):
            idxR, idxF = _draws(rng, sampling, useR, nR, BR, lqR, permR,
                                useF, nF, BF, lqF, permF)
            Y = np.stack([apply_J(sched, GR, modeR, idxR, cR, useR, GF, modeF, idxF, cF, useF,
                                  K, GS, modeS, q) for q in Q])
            Qn, Rm = np.linalg.qr(Y.T)
            rd = np.abs(np.diag(Rm))
            if np.any(rd == 0.0):
                sing += 1
                Q = Q0[rep].copy()
                continue
            if k >= burn_in:
                logsum[rep] += np.log(rd)
                cnt += 1
            Q = (Qn * np.sign(np.diag(Rm))).T
        nmeas[rep], nsing[rep] = cnt, sing


def apply_affine(sched, GR, modeR, idxR, cR, useR, GF, modeF, idxF, cF, useF, K, GS, modeS, DR, DF,
                 drift, w):
    """J w + b for drawn batches: the drift uses the same indices as the Hessians."""
    def rows(D, idx):
        return D[np.asarray(idx, dtype=np.int64)].sum(axis=0) if drift and len(idx) else 0.0

    if sched == ALTERNATING:
        v = w + cR * (_hsw(GS, modeS, GR, modeR, idxR, w) + rows(DR, idxR)) if useR else w.copy()
        return v + cF * (_hsw(GS, modeS, GF, modeF, idxF, v) + rows(DF, idxF)) if useF else v
    y = apply_J(sched, GR, modeR, idxR, cR, useR, GF, modeF, idxF, cF, useF, K, GS, modeS, w)
    if useR:
        y = y + cR * rows(DR, idxR)
    if useF:
        y = y + cF * rows(DF, idxF)
    return y


def _log_norm(y, f):
    """(log √(‖y‖² + f²), finite?) with the kernel's overflow semantics."""
    if not np.all(np.isfinite(y)):
        return math.inf, False
    mx = max(float(np.max(np.abs(y), initial=0.0)), f)
    if mx == 0.0:
        return -math.inf, True
    return math.log(mx) + 0.5 * math.log(float(np.sum((y / mx) ** 2)) + (f / mx) ** 2), True


def run_affine(GR, modeR, nR, BR, cR, lqR, useR, GF, modeF, nF, BF, cF, lqF, useF,
               sched, sampling, K, GS, modeS, DR, DF, drift, X0, frozen, seeds, steps, logn, over,
               last):
    """Reference of ``_kernels.run_affine`` (same in/out arrays)."""
    for rep in range(X0.shape[0]):
        rng = SplitMix64(int(seeds[rep]))
        permR, permF = list(range(nR)), list(range(max(nF, 1)))
        w, f = X0[rep].copy(), float(frozen[rep])
        logn[rep, 0] = _log_norm(w, f)[0]
        over[rep] = -1
        for k in range(steps):
            idxR, idxF = _draws(rng, sampling, useR, nR, BR, lqR, permR,
                                useF, nF, BF, lqF, permF)
            with np.errstate(over="ignore", invalid="ignore"):
                y = apply_affine(sched, GR, modeR, idxR, cR, useR, GF, modeF, idxF, cF, useF,
                                 K, GS, modeS, DR, DF, drift, w)
            L, ok = _log_norm(y, f)
            if not ok:
                over[rep] = k + 1
                logn[rep, k + 1:] = math.inf
                break
            logn[rep, k + 1] = L
            w = y
        last[rep] = w
