"""Row-index validation shared by the framework adapters (JAX, PyTorch)."""

from __future__ import annotations

from typing import Any

import numpy as np


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
