"""What the framework adapters (JAX, PyTorch) share: row-index validation and the last step,
from per-sample factors and gradients to a checked :class:`rmt.HessianSet`."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..hessians import HessianSet
from ..stationarity import _bridge_check, _deferred, _zero_roundoff


def check_rows(idx: Any, name: str, n: int) -> np.ndarray:
    """``idx`` as distinct integer row indices into X (n rows): a 1-D intp array, or a clear
    ValueError/TypeError that names ``name``."""
    try:
        a = np.asarray(idx)
    except Exception as exc:  # pragma: no cover - np.asarray rarely fails
        raise TypeError(f"{name} must be an array of sample indices: {exc}") from None
    if a.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of indices into X, got shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"{name} must hold at least one index")
    if a.dtype == bool or not np.issubdtype(a.dtype, np.integer):
        raise TypeError(f"{name} must hold integer indices into the rows of X, got dtype "
                        f"{a.dtype}")
    if a.min() < 0 or a.max() >= n:
        raise ValueError(f"{name} must index rows of X in [0, {n}), got values in "
                         f"[{a.min()}, {a.max()}]")
    if np.unique(a).size != a.size:
        raise ValueError(f"{name} contains repeated indices")
    return a.astype(np.intp)


def split_rows(y: np.ndarray, n: int, retain: Any, forget: Any) -> tuple[np.ndarray, np.ndarray]:
    """(retain rows R, rows [R; forget] in order) after checking y has n targets and the two
    index sets are valid and disjoint (ValueError/TypeError naming the argument)."""
    if y.ndim < 1 or y.shape[0] != n:
        raise ValueError(f"y must hold one target per row of X ({n}), got shape {y.shape}")
    R = check_rows(retain, "retain", n)
    if forget is None:
        return R, R
    Fi = check_rows(forget, "forget", n)
    both = np.intersect1d(R, Fi)
    if both.size:
        raise ValueError(f"retain and forget must be disjoint; both contain {both[:5]}")
    return R, np.concatenate([R, Fi])


def assemble(F: np.ndarray, g: np.ndarray, w: np.ndarray, n_retain: int, has_forget: bool,
             penalty: float | np.ndarray | None, shared: float | np.ndarray | None,
             source: str) -> HessianSet:
    """The HessianSet of the rows [retain; forget] of (F, g) at w*, checked.

    Round-off gradients become exact zeros (:mod:`rmt.stationarity`); with a known ``penalty``
    (λ or per-coordinate c, ``shared`` its curvature λ or Q) the gradients are those of the
    regularised losses g_i + c⊙w* and the stationarity check uses it; ``penalty=None``: data
    gradients, an inferred isotropic decay allowed."""
    (g0,), zeroed, znote = _zero_roundoff([g], [F], w)  # round-off → exactly 0
    assert g0 is not None  # an array in, an array out
    g = g0 if penalty is None else g0 + penalty * w  # the regularised per-sample gradients
    nr = n_retain
    with _deferred():  # checked below, with w* and the penalty
        if not has_forget:
            hs = HessianSet.from_factors(F, retain_gradients=g, shared=shared)
        else:
            hs = HessianSet.from_factors(F[:nr], F[nr:], retain_gradients=g[:nr],
                                         forget_gradients=g[nr:], shared=shared)
    _bridge_check(hs, w, source, infer_decay=penalty is None, zeroed=zeroed, zero_note=znote)
    return hs
