"""Input checks of :class:`rmt.hessians.HessianSet` (contract §1): shapes, finiteness and reality
of the per-sample arrays and gradients, the ``shared`` curvature argument, and the symmetry/PSD
check of dense input with its conversion to per-sample eigen-factors.

Large factor arrays are checked without copies: float32/float64 input is kept as given and
NaN/inf are looked for chunk by chunk (``chunk_entries`` entries at a time).
"""

from __future__ import annotations

import numpy as np

from .span import span_tolerance
from .validation import _check_ndim, check_finite_array

#: Relative tolerance for symmetry and positive semi-definiteness of dense input.
PSD_RTOL = 1e-8

_SETS = ("retain", "forget")


def _check_set(arr, name, kind, chunk_entries):
    if kind == "dense":
        arr = check_finite_array(arr, name, ndim=3)
        if arr.shape[1] != arr.shape[2]:
            raise ValueError(f"{name} must have shape (n, d, d), got {arr.shape}")
    elif kind == "factors":
        arr = _float_array(arr, name, ndim=(2, 3), chunk_entries=chunk_entries)
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


def _check_sets(retain, forget, kind, *, chunk_entries):
    """Validate the retain set and the optional forget set, and that their dimensions agree."""
    R = _check_set(retain, "retain", kind, chunk_entries)
    F = None if forget is None else _check_set(forget, "forget", kind, chunk_entries)
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


def _float_array(a, name, *, ndim, chunk_entries):
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
        step = max(1, chunk_entries // max(1, arr[0].size))
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
    # rule's threshold, which removes it (so dense input does not invent span directions).
    top = np.maximum(lam[:, -1:], 0.0)
    keep = lam > span_tolerance(d) * top
    k = max(int(keep.sum(axis=1).max()), 1)
    F = np.zeros((n, d, k))
    for i in range(n):
        cols = np.flatnonzero(keep[i])
        F[i, :, : cols.size] = vec[i][:, cols] * np.sqrt(lam[i, cols])
    return F



def _check_gradients(gradients, retain, forget, *, chunk_entries):
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
        g = _float_array(g, name, ndim=2, chunk_entries=chunk_entries)
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

