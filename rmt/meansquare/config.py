"""Tunable sizes and round-off rules of the mean-square solvers (docs/contract.md §3, §10)."""

from __future__ import annotations

import numpy as np

#: Relative round-off of the per-direction moments and of small symmetric eigensolvers: a mixed
#: curvature below ``_ROUNDOFF`` (× r for eigensolvers) times the scale is treated as exactly 0.
_ROUNDOFF = 8 * np.finfo(float).eps

#: Largest span dimension for which ``method="auto"`` builds and diagonalises the r²×r² operator
#: matrix; beyond it the regular-splitting solver is faster (and certified).
DENSE_MAX_SPAN = 8

#: Largest span dimension for which ``method="auto"`` uses the splitting solver: each of its
#: solves costs a few r×r products *per application* of K (≈ 3× an application of T), which
#: pays off against ARPACK's crowding near 1 at moderate r; above it ARPACK is used.
SPLITTING_MAX_SPAN = 400

#: Largest span dimension for which the splitting solver finds the Perron root of K(μ) from its
#: dense r(r+1)/2 matrix (LAPACK) instead of ARPACK: there ρ(T) is a deterministic function of
#: its input, bit for bit, in any process (ARPACK's results depend on the alignment of the work
#: arrays scipy allocates per call); above it, ARPACK (run-to-run noise ≲ the tolerance).
PERRON_DENSE_MAX_SPAN = 16

#: Largest span dimension for which :func:`stable_set` solves the polynomial eigenvalue problem
#: det(T(x) − I) = 0 on symmetric matrices (companion size deg·r(r+1)/2).
PEP_MAX_SPAN = 12

METHODS = ("auto", "closed_form", "dense", "lanczos", "arpack", "splitting")


#: Largest packed dimension N = r(r+1)/2 (r ≤ 109) at which the summed Lanczos solve, when its
#: Krylov basis runs out before convergence (a cluster of eigenvalues at the top), falls back to
#: ``eigh`` of the packed N×N matrix (≈ 8 s at N = 4095 on 2 cores) instead of ARPACK.
KRYLOV_DENSE_FALLBACK_PACKED = 6000

#: Largest span dimension for which the summed ρ(T) is found by ``eigh`` of its packed symmetric
#: N×N matrix (N = r(r+1)/2 = 820 at r = 40): every eigenvalue at once, Weyl enclosure.
SYM_DENSE_MAX_SPAN = 40
