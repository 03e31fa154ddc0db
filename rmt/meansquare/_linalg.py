"""Small linear-algebra helpers shared by the solvers (a leaf: imports nothing from rmt)."""

from __future__ import annotations

import math

import numpy as np


def _own(x):
    """A fresh float64 copy of an eigensolver's work vector.

    ARPACK hands the operator views into its work array at arbitrary 8-byte offsets; BLAS and
    numpy's SIMD loops take alignment-dependent code paths (different summation order), so the
    same vector at another offset gave results differing in the last bits, and ρ(T) varied
    from run to run (and between serial and process-pool sweeps) by ~1e-15–1e-13. A fresh
    allocation is always 16-byte aligned: the operator is then a deterministic function."""
    return np.array(x, dtype=np.float64, copy=True)


def _normalise_psd(V):
    V = 0.5 * (V + V.T)
    tr = np.trace(V)
    if tr < 0:
        V = -V
    norm = np.linalg.norm(V)
    return V / norm if norm > 0 else V


def _sym_embedding(r):
    """Orthonormal S (r², r(r+1)/2): vec of the symmetric basis matrices (row-major)."""
    cols = []
    for i in range(r):
        for j in range(i, r):
            E = np.zeros((r, r))
            if i == j:
                E[i, i] = 1.0
            else:
                E[i, j] = E[j, i] = 1.0 / math.sqrt(2.0)
            cols.append(E.ravel())
    return np.array(cols).T
