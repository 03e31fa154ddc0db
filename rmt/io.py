"""The ``.npz`` file layout of per-sample curvature: :func:`save_npz` and :func:`load_npz`.

One file holds everything a :class:`~rmt.hessians.HessianSet` holds (contract §1, §8) — per-sample
curvature in its representation (Gauss–Newton factors, dense Hessians or commuting profiles),
per-sample loss gradients, shared curvature λI or QQᵀ (weight decay), and the name of the loss
the factors belong to — so that a set read back gives the same answers, bit for bit, as the set
that was written. This docstring and ``docs/npz.md`` are the two descriptions of the layout.

Layout, ``format_version`` 1 (every array real and finite; ``n_r``/``n_f`` samples, ``d``
parameters, ``k`` factor columns)::

    key                 shape                 meaning
    format_version      () integer            1 (written by save_npz; files without it are read as 1)
    loss                () string, optional   the loss the factors are Gauss–Newton factors of:
                                              "squared", "logistic" or "softmax" (rmt.models.LOSSES)
    retain_factors      (n_r, d) or (n_r, d, k)   H_i = g_i g_iᵀ  or  H_i = F_i F_iᵀ  (required)
    forget_factors      (n_f, d) or (n_f, d, k)   the same for the forget set (optional)
    retain_gradients    (n_r, d), optional    per-sample loss gradients g_i = ∇ℓ_i(w*) (the drift
                                              of contract §8; omit at an interpolating minimum)
    forget_gradients    (n_f, d), optional    the same for the forget set (needs forget_factors)

Everything a HessianSet holds (:data:`EXTENSION_KEYS`; written only for the sets that need
them, so a plain factor set is the file above, readable by any rmt)::

    shared              () λ >= 0 or (d, k) Q     shared curvature in every sample's Hessian of both
                                              sets, H_i + λI or H_i + QQᵀ: the shared= argument of
                                              from_factors/from_dense (weight decay: docs/models.md)
    retain_hessians     (n_r, d, d)           a dense set (from_dense), as given
    forget_hessians     (n_f, d, d)
    retain_eigenvalues  (n_r, d)              a commuting set (from_commuting): profiles λ_i with
    forget_eigenvalues  (n_f, d)              H_i = B diag(λ_i) Bᵀ, shared term already inside
    basis               (d, d)                its orthogonal basis B (identity when absent)
    folded_shared       () or (d,)            the shared term folded into those profiles
                                              (recorded, never added again)
    stationarity        () string             JSON of hs.stationarity when it is not the one
                                              from_factors recomputes (a bridge's, made with w*)

Factors and gradients keep their dtype (float32 stays float32: a set on the large-d path is
read back on the same path with the same arrays); everything else is float64. ``save_npz``
builds the set :func:`load_npz` will return and compares it field by field with the one being
written; a field the layout cannot hold, or one that would come back different, is a
``ValueError`` at save time and nothing is written. The version stays 1: a set that needs none
of these keys is written as before, files older than them are read as before, and an rmt older
than them refuses (``unknown key``) a file with ``shared``, ``*_eigenvalues``, ``basis``,
``folded_shared`` or ``stationarity`` — it never reads a weight-decay file without its weight
decay.

The factors are **not** the loss gradients: for a per-sample loss ℓ(f(x_i; w), y_i) the factor is
J_iᵀS_i with S_iS_iᵀ = ∂²ℓ/∂f², the gradient J_iᵀ∂ℓ/∂f (:func:`rmt.models.gauss_newton`).

Read-only legacy keys (files written for ``rmt analyze`` before the layout had a version):
``retain_grads``/``forget_grads`` (n, d) — rank-one factors g_i, H_i = g_i g_iᵀ (despite the name,
*not* loss gradients); dense ``*_hessians`` beside factors of the other set (both densified).
One curvature key per set. A legacy ``*_grads`` key cannot be combined with a ``*_gradients`` key
(the two names would mean different things in one file).

Checks, all ``ValueError`` with one message naming the key, done before anything is computed:
not a file / a directory / not an ``.npz`` archive / object arrays; unknown or missing keys; wrong
dimensions or sizes that disagree between keys; complex, non-numeric, NaN or ±inf entries; and
**scale**: the mean-square operator multiplies two Hessians (contract §3), i.e. fourth powers of
the factors, so a set whose largest per-sample curvature tr(H_i) lies outside
[``SCALE_MIN``, ``SCALE_MAX``] is refused — its squares would overflow (ARPACK then fails with an
opaque error) or underflow (everything would silently "converge").

Write one from a trained model in one call::

    rmt.io.save_npz("curv.npz", rmt.models.hessian_set(model, w, Xr, yr, Xf, yf), loss=model.loss)
    rmt.io.save_npz("wd.npz", rmt.HessianSet.from_factors(Fr, Ff, shared=lam), loss="logistic")
    hs = rmt.io.load_npz("curv.npz")                       # HessianSet, gradients attached
    hs, meta = rmt.io.load_npz("curv.npz", with_metadata=True)   # meta.loss, meta.format_version
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import zipfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import numpy.typing as npt

from .hessians import HessianSet
from .stationarity import StationarityReport

__all__ = [
    "FORMAT_VERSION",
    "KEYS",
    "EXTENSION_KEYS",
    "LEGACY_KEYS",
    "SCALE_MIN",
    "SCALE_MAX",
    "NpzMetadata",
    "save_npz",
    "load_npz",
    "check_curvature_scale",
]

#: Version written by :func:`save_npz`; files with a larger version are refused.
FORMAT_VERSION = 1

#: The documented keys (module docstring).
KEYS = {
    "format_version": "() integer: layout version (1)",
    "loss": "() string: the loss the factors are Gauss-Newton factors of (squared/logistic/softmax)",
    "retain_factors": "(n_r, d) or (n_r, d, k) factors: H_i = g_i g_iᵀ or F_i F_iᵀ (required)",
    "forget_factors": "(n_f, d) or (n_f, d, k) factors of the forget set",
    "retain_gradients": "(n_r, d) per-sample loss gradients g_i = ∇ℓ_i(w*) (drift, contract §8)",
    "forget_gradients": "(n_f, d) per-sample loss gradients of the forget set",
}
#: Optional keys, written only for the sets that need them (module docstring, "Everything a
#: HessianSet holds"): the dense and commuting representations as they are, and shared curvature.
EXTENSION_KEYS = {
    "retain_hessians": "(n_r, d, d) dense symmetric PSD per-sample Hessians (a dense set)",
    "forget_hessians": "(n_f, d, d) dense per-sample Hessians of the forget set",
    "retain_eigenvalues": "(n_r, d) eigenvalue profiles of a commuting set (H_i = B diag(λ_i) Bᵀ)",
    "forget_eigenvalues": "(n_f, d) eigenvalue profiles of the forget set of a commuting set",
    "basis": "(d, d) orthogonal shared eigenbasis B of a commuting set (identity when absent)",
    "shared": "() λ >= 0 or (d, k) factor Q: shared curvature λI or QQᵀ in every sample's Hessian "
              "(weight decay; the shared= argument of from_factors/from_dense)",
    "folded_shared": "() λ or (d,) profile: a commuting set's shared term, already inside the "
                     "*_eigenvalues (recorded, never added again)",
    "stationarity": "() string: JSON of the set's stationarity report (hs.stationarity, "
                    "rmt.stationarity.StationarityReport), restored as it was",
}
#: Keys read for backwards compatibility (never written).
LEGACY_KEYS = {
    "retain_grads": "(n_r, d) legacy name of rank-one factors g_i, H_i = g_i g_iᵀ",
    "forget_grads": "(n_f, d) legacy name of rank-one forget factors",
}

#: Range of the largest per-sample curvature tr(H_i) = ‖F_i‖_F² of a non-zero set: products of
#: two Hessians (and their sums over samples and a few hundred dimensions) must stay inside the
#: normal float64 range [2.2e-308, 1.8e308] with room to spare.
SCALE_MIN = 1e-140
SCALE_MAX = 1e140
#: Largest |entry| of per-sample gradients (their squares enter E[bbᵀ], contract §8).
GRADIENT_MAX = 1e140

_SETS = ("retain", "forget")


@dataclass(frozen=True)
class NpzMetadata:
    """What :func:`load_npz` read besides the curvature.

    ``path``; ``format_version`` (1 for files without the key); ``loss`` (None when not recorded);
    ``layout`` ("v1" or "legacy": which key family held the curvature); ``keys`` (sorted key
    names in the file); ``curvature`` ({set: key that held it}).
    """

    path: str
    format_version: int
    loss: str | None
    layout: str
    keys: tuple
    curvature: dict


# ---------------------------------------------------------------------- scale
def _log10_max_sq_norm(arr):
    """log10 of max_i ‖arr[i]‖² without overflow/underflow (−inf for an all-zero array)."""
    flat = arr.reshape(arr.shape[0], -1)
    top = float(np.max(np.abs(flat))) if flat.size else 0.0
    if top == 0.0:
        return -math.inf
    scaled = flat / top
    return 2.0 * math.log10(top) + math.log10(float(np.max(np.einsum("ij,ij->i", scaled, scaled))))


def _check_scale(arr, name, *, hessians=False):
    """Refuse a curvature array whose products of two Hessians leave float64 (module docstring)."""
    if hessians:  # tr(H_i) ≤ √d ‖H_i‖_F: use the Frobenius norm of the dense matrix as the scale
        lg = 0.5 * _log10_max_sq_norm(arr)
    else:
        lg = _log10_max_sq_norm(arr)
    if lg == -math.inf:
        return
    if lg > math.log10(SCALE_MAX):
        raise ValueError(
            f"{name} is too large to analyse in float64: the largest per-sample curvature "
            f"tr(H_i) is about 1e{lg:.0f} > {SCALE_MAX:g}, and the mean-square operator multiplies "
            "two Hessians (their squares overflow); rescale the factors (η scales inversely with "
            "the curvature)")
    if lg < math.log10(SCALE_MIN):
        raise ValueError(
            f"{name} is too small to analyse in float64: the largest per-sample curvature "
            f"tr(H_i) is about 1e{lg:.0f} < {SCALE_MIN:g}, so products of two Hessians underflow "
            "to 0 and every schedule would look stable; rescale the factors (η scales inversely "
            "with the curvature) or check that the right arrays were saved")


def _check_gradient_scale(arr, name):
    top = float(np.max(np.abs(arr))) if arr.size else 0.0
    if top > GRADIENT_MAX:
        raise ValueError(
            f"{name} is too large to analyse in float64: max |entry| = {top:.3g} > "
            f"{GRADIENT_MAX:g} (the drift covariance squares it); rescale the gradients")


def check_curvature_scale(hs: HessianSet) -> None:
    """Raise ValueError when a HessianSet's curvature or gradients leave the float64 range.

    The same scale checks :func:`load_npz` applies (module docstring), for sets built in memory.
    """
    if not isinstance(hs, HessianSet):
        raise TypeError(f"hs must be a HessianSet, got {type(hs).__name__}")
    for which in hs._present():
        _check_scale(hs.factors(which), f"the {which} Hessians")
        g = hs.gradients(which)
        if g is not None:
            _check_gradient_scale(g, f"{which}_gradients")


# ---------------------------------------------------------------------- reading
def _as_real(arr, name, *, keep_float32=False):
    """A real float64 array (float32 kept as float32 with ``keep_float32``: factors and
    gradients, which a large HessianSet stores as given), refusing complex, non-numeric, NaN and
    ±inf entries."""
    if np.iscomplexobj(arr):
        raise ValueError(f"{name} must be real, got a complex array (dtype {arr.dtype})")
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.floating)
                                 or np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if keep_float32 and arr.dtype == np.float32:
        out = arr
    else:
        out = np.asarray(arr, dtype=np.float64)
    bad = ~np.isfinite(out)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{name} contains NaN or inf (first at index {idx}: {out[idx]})")
    return out


def _scalar(arrays, key, kind):
    arr = arrays[key]
    if arr.shape != ():
        raise ValueError(f"{key} must be a 0-d {kind}, got an array of shape {arr.shape}")
    return arr[()]


def _open(path):
    """{key: array} of an .npz archive, with one clear ValueError for everything else."""
    p = Path(os.fspath(path))
    if p.is_dir():
        raise ValueError(f"{str(p)!r} is a directory, not an .npz file")
    if not p.is_file():
        raise ValueError(f"{str(p)!r} does not exist")
    try:
        with open(p, "rb"):
            pass
    except OSError as exc:
        raise ValueError(f"{str(p)!r} cannot be read ({exc.strerror or exc})") from None
    if not zipfile.is_zipfile(p):
        raise ValueError(f"{str(p)!r} is not an .npz archive (numpy.savez writes one)")
    try:
        with np.load(p, allow_pickle=False) as data:
            return {k: np.asarray(data[k]) for k in data.files}
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "Object arrays" in str(exc):
            raise ValueError(f"{str(p)!r} holds object (pickled) arrays; store plain numeric "
                             "arrays") from None
        raise ValueError(f"{str(p)!r} is not a readable .npz archive: {exc}") from None
    except Exception as exc:  # corrupt zip member, truncated file, ...
        raise ValueError(f"{str(p)!r} is not a readable .npz archive "
                         f"({type(exc).__name__}: {exc})") from None


#: curvature key suffix → allowed dimensions; which suffix belongs to which representation
_CURVATURE = {"factors": (2, 3), "grads": (2,), "hessians": (3,), "eigenvalues": (2,)}
_SUFFIX_OF_KIND = {"rank1": "factors", "factor": "factors", "dense": "hessians",
                   "commuting": "eigenvalues"}


def _describe(key: str) -> str:
    return (KEYS | EXTENSION_KEYS | LEGACY_KEYS)[key].split(" ", 1)[0]


def _parse(arrays, where, *, quiet=False):
    """Validate a {key: array} mapping of the layout → (HessianSet, version, loss, layout,
    {set: curvature key})."""
    allowed = set(KEYS) | set(EXTENSION_KEYS) | set(LEGACY_KEYS)
    unknown = sorted(set(arrays) - allowed)
    if unknown:
        raise ValueError(f"unknown key(s) {unknown} in {where}; the layout has {sorted(KEYS)}, "
                         f"optional {sorted(EXTENSION_KEYS)} (legacy, read only: "
                         f"{sorted(LEGACY_KEYS)}) — see docs/npz.md")
    version = 1
    if "format_version" in arrays:
        v = _scalar(arrays, "format_version", "integer")
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
            raise ValueError(f"format_version must be an integer, got {v!r}")
        version = int(v)
        if version < 1:
            raise ValueError(f"format_version must be >= 1, got {version}")
        if version > FORMAT_VERSION:
            raise ValueError(f"format_version {version} was written by a newer rmt; this one "
                             f"reads versions up to {FORMAT_VERSION}")
    loss = None
    if "loss" in arrays:
        from .models import LOSSES

        if arrays["loss"].dtype.kind not in ("U", "S"):
            raise ValueError(f"loss must be a 0-d string, got dtype {arrays['loss'].dtype}")
        lv = _scalar(arrays, "loss", "string")
        loss = lv.decode() if isinstance(lv, bytes) else str(lv)
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {list(LOSSES)}, got {loss!r}")

    curv, layout = {}, "v1"
    for which in _SETS:
        found = [f"{which}_{suffix}" for suffix in _CURVATURE if f"{which}_{suffix}" in arrays]
        if len(found) > 1:
            raise ValueError(f"give one curvature key for the {which} set, not several: {found}")
        if found:
            curv[which] = found[0]
            if found[0].endswith("_grads"):
                layout = "legacy"
        if f"{which}_grads" in arrays and f"{which}_gradients" in arrays:
            raise ValueError(
                f"{which}_grads (legacy name of rank-one factors) cannot be combined with "
                f"{which}_gradients (loss gradients); rename {which}_grads to {which}_factors")
    if "retain" not in curv:
        raise ValueError(f"{where} has no retain set: give retain_factors (or retain_hessians, "
                         "retain_eigenvalues; legacy: retain_grads)")
    for which in _SETS:
        if f"{which}_gradients" in arrays and which not in curv:
            raise ValueError(f"{which}_gradients was given but there is no {which}_factors")
    suffixes = {key.split("_", 1)[1] for key in curv.values()}
    if "eigenvalues" in suffixes and len(suffixes) > 1:
        raise ValueError(f"{sorted(curv.values())}: a commuting set (*_eigenvalues) needs "
                         "eigenvalue profiles for both of its sets")
    if "hessians" in suffixes and len(suffixes) > 1:
        layout = "legacy"  # dense beside factors: read as dense (files older than the layout)
    commuting = "eigenvalues" in suffixes
    for key in ("basis", "folded_shared"):
        if key in arrays and not commuting:
            raise ValueError(f"{key} belongs to a commuting set (retain_eigenvalues), but "
                             f"{where} holds {curv['retain']}")
    if "shared" in arrays and commuting:
        raise ValueError("shared cannot be given with *_eigenvalues: a commuting set holds its "
                         "shared term inside the profiles (recorded as folded_shared)")

    mats = {}
    for which, key in curv.items():
        kind = key.split("_", 1)[1]
        arr = _as_real(arrays[key], key, keep_float32=kind == "factors")
        if arr.ndim not in _CURVATURE[kind]:
            want = " or ".join(f"{n}" for n in _CURVATURE[kind])
            raise ValueError(f"{key} must have {want} dimensions "
                             f"({_describe(key)}), got shape {arr.shape}")
        if arr.shape[0] < 1 or arr.shape[1] < 1 or (arr.ndim == 3 and arr.shape[2] < 1):
            raise ValueError(f"{key} must hold at least one sample of dimension >= 1, "
                             f"got shape {arr.shape}")
        if kind == "hessians" and arr.shape[1] != arr.shape[2]:
            raise ValueError(f"{key} must have shape (n, d, d), got {arr.shape}")
        if kind == "eigenvalues" and np.any(arr < 0):
            i, k = (int(v) for v in np.argwhere(arr < 0)[0])
            raise ValueError(f"{key} must hold non-negative eigenvalues; entry [{i}, {k}] is "
                             f"{arr[i, k]}")
        mats[which] = (kind, arr)
    d = mats["retain"][1].shape[1]
    if "forget" in mats and mats["forget"][1].shape[1] != d:
        raise ValueError(f"{curv['forget']} has dimension d={mats['forget'][1].shape[1]} but "
                         f"{curv['retain']} has d={d}")
    grads = {}
    for which in _SETS:
        key = f"{which}_gradients"
        if key not in arrays:
            continue
        g = _as_real(arrays[key], key, keep_float32=True)
        n = mats[which][1].shape[0]
        if g.shape != (n, d):
            raise ValueError(f"{key} must have shape (n_{which}, d) = {(n, d)}, got {g.shape}")
        _check_gradient_scale(g, key)
        grads[which] = g
    shared = _parse_shared(arrays, "shared", d, ndims=(0, 2)) if "shared" in arrays else None
    folded = (_parse_shared(arrays, "folded_shared", d, ndims=(0, 1))
              if "folded_shared" in arrays else None)
    report = _parse_report(arrays) if "stationarity" in arrays else None
    basis = None
    if "basis" in arrays:
        basis = _as_real(arrays["basis"], "basis")
        if basis.shape != (d, d):
            raise ValueError(f"basis must have shape (d, d) = {(d, d)}, got {basis.shape}")
    if np.max(np.abs(mats["retain"][1])) == 0.0 and shared is None:
        raise ValueError(f"{curv['retain']} is all zeros: the retain set has no curvature")
    for which, (kind, arr) in mats.items():
        _check_scale(arr, curv[which], hessians=kind in ("hessians", "eigenvalues"))

    kw = {"retain_gradients": grads.get("retain"), "forget_gradients": grads.get("forget")}
    from .stationarity import _deferred, _warn

    try:
        # a stored report replaces the one from_factors would recompute (w*-free s₀): build
        # quietly, attach it, and warn from it (never when save_npz checks its own content)
        with _deferred() if (quiet or report is not None) else contextlib.nullcontext():
            hs = _build(mats, kw, shared, basis, folded)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: {exc}") from None
    if report is not None:
        hs.stationarity = report
        if not quiet:
            _warn(report)
    return hs, version, loss, layout, curv


def _parse_report(arrays: Mapping[str, np.ndarray]) -> StationarityReport:
    """The stationarity report stored as a JSON string (``stationarity`` key)."""
    arr = arrays["stationarity"]
    if arr.dtype.kind not in ("U", "S") or arr.shape != ():
        raise ValueError(f"stationarity must be a 0-d string (JSON), got dtype {arr.dtype} and "
                         f"shape {arr.shape}")
    raw = arr[()]
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    try:
        return StationarityReport(**json.loads(text))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"stationarity is not the JSON of a StationarityReport "
                         f"({type(exc).__name__}: {exc})") from None


def _parse_shared(arrays: Mapping[str, np.ndarray], key: str, d: int, *,
                  ndims: tuple[int, ...]) -> float | np.ndarray:
    """``shared`` (λ or Q (d, k)) or ``folded_shared`` (λ or a profile (d,)), checked."""
    arr = _as_real(arrays[key], key)
    if arr.ndim not in ndims:
        shapes = {0: "() for λ", 1: f"({d},) for a profile", 2: f"({d}, k) for a factor Q"}
        raise ValueError(f"{key} must have shape " + " or ".join(shapes[n] for n in ndims)
                         + f", got {arr.shape}")
    if arr.ndim == 0:
        lam = float(arr)
        if lam < 0:
            raise ValueError(f"{key} must be >= 0 (λ of the shared curvature λI), got {lam}")
        if lam > SCALE_MAX:
            raise ValueError(f"{key} = {lam:.3g} is too large to analyse in float64 (> "
                             f"{SCALE_MAX:g}: products of two Hessians overflow)")
        return lam
    if arr.shape[0] != d or (arr.ndim == 2 and arr.shape[1] < 1):
        raise ValueError(f"{key} must have {d} rows (d) and at least one column, got shape "
                         f"{arr.shape}")
    if arr.ndim == 1 and np.any(arr < 0):
        raise ValueError(f"{key} as a profile must hold non-negative eigenvalues")
    if _log10_max_sq_norm(arr.reshape(1, -1)) > math.log10(SCALE_MAX):
        raise ValueError(f"{key} is too large to analyse in float64: its curvature exceeds "
                         f"{SCALE_MAX:g} (products of two Hessians overflow); rescale it")
    return arr


def _build(mats: dict[str, tuple[str, np.ndarray]], kw: dict[str, np.ndarray | None],
           shared: float | np.ndarray | None = None, basis: np.ndarray | None = None,
           folded: float | np.ndarray | None = None) -> HessianSet:
    kinds = {kind for kind, _ in mats.values()}
    if kinds == {"eigenvalues"}:
        hs = HessianSet.from_commuting(mats["retain"][1], mats.get("forget", (None, None))[1],
                                       basis, **kw)
        if folded is not None:  # already inside the profiles: information only, never re-added
            hs._folded_shared = (folded, None) if isinstance(folded, float) else (0.0, folded)
        return hs
    if "hessians" in kinds:
        dense = {}
        for which, (kind, arr) in mats.items():
            if kind == "hessians":
                dense[which] = arr
            else:  # legacy files: factors beside dense Hessians are densified
                F = arr[:, :, None] if arr.ndim == 2 else arr
                dense[which] = np.einsum("nak,nbk->nab", F, F)
        return HessianSet.from_dense(dense["retain"], dense.get("forget"), shared=shared, **kw)
    return HessianSet.from_factors(mats["retain"][1], mats.get("forget", (None, None))[1],
                                   shared=shared, **kw)


def load_npz(path: str | os.PathLike, *,
             with_metadata: bool = False) -> HessianSet | tuple[HessianSet, NpzMetadata]:
    """Read an ``.npz`` file of the documented layout (module docstring, ``docs/npz.md``).

    Returns the :class:`~rmt.hessians.HessianSet` (per-sample gradients attached when stored);
    with ``with_metadata=True`` the pair ``(hs, NpzMetadata)`` (loss, format version, layout).
    Every problem with the file is a ``ValueError`` with one message naming the key.
    """
    arrays = _open(path)
    name = Path(os.fspath(path)).name
    hs, version, loss, layout, curv = _parse(arrays, name)
    if not with_metadata:
        return hs
    return hs, NpzMetadata(str(path), version, loss, layout, tuple(sorted(arrays)), curv)


# ---------------------------------------------------------------------- writing
#: HessianSet instance fields the layout stores (module docstring), and the ones derived from
#: them on construction (caches, the large-d flag, a dense set's eigen-factors). A field in
#: neither list makes save_npz refuse the set rather than write a file without it.
_SAVED_FIELDS = frozenset({"kind", "_retain", "_forget", "_basis", "_gradients",
                           "_shared_scalar", "_shared_factor", "_folded_shared", "stationarity"})
_DERIVED_FIELDS = frozenset({"_reductions", "_large", "_dense_factors"})


def _cached_fields(cls: type) -> set[str]:
    return {name for klass in cls.__mro__ for name, value in vars(klass).items()
            if isinstance(value, cached_property)}


def _arrays_of(hs: HessianSet) -> dict[str, np.ndarray]:
    """The layout arrays of a HessianSet: every stored field in its own representation and dtype
    (ValueError for a field the layout cannot hold)."""
    unknown = sorted(set(vars(hs)) - _SAVED_FIELDS - _DERIVED_FIELDS - _cached_fields(type(hs)))
    if unknown:
        raise ValueError(f"this HessianSet has field(s) {unknown} that the .npz layout does not "
                         "store (docs/npz.md); refusing to write a file without them")
    if hs.kind not in _SUFFIX_OF_KIND:
        raise ValueError(f"HessianSet kind {hs.kind!r} has no .npz representation "
                         f"(known: {sorted(_SUFFIX_OF_KIND)})")
    out = {}
    suffix = _SUFFIX_OF_KIND[hs.kind]
    for which in hs._present():
        out[f"{which}_{suffix}"] = np.asarray(hs._raw(which))  # as stored: float32 stays float32
        g = hs.gradients(which)
        if g is not None:
            out[f"{which}_gradients"] = np.asarray(g)
    lam, Q = hs._shared_scalar, hs._shared_factor
    if lam > 0.0 and Q is not None:
        raise ValueError("this HessianSet carries both a shared λI and a shared QQᵀ; the .npz "
                         "key 'shared' holds one of them (fold λ into Q: Q' = [Q, √λ·I])")
    if hs.kind == "commuting":
        out["basis"] = np.asarray(hs.basis)
        f_lam, f_prof = getattr(hs, "_folded_shared", (0.0, None))
        if f_prof is not None:
            out["folded_shared"] = np.asarray(f_prof, dtype=np.float64)
        elif f_lam > 0.0:
            out["folded_shared"] = np.asarray(f_lam, dtype=np.float64)
    if lam > 0.0:
        out["shared"] = np.asarray(lam, dtype=np.float64)
    elif Q is not None:
        out["shared"] = np.asarray(Q)
    return out  # hs.stationarity: added by save_npz when load_npz would not recompute it


def _report_json(hs: HessianSet) -> str | None:
    report = getattr(hs, "stationarity", None)
    if report is None:
        return None
    try:
        return json.dumps(dataclasses.asdict(report), sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"hs.stationarity cannot be stored as JSON ({exc}); refusing to write "
                         "a file without it") from None


def _same(a: object, b: object) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, float) and isinstance(b, float) and a == b
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and bool(np.array_equal(a, b))


def _check_round_trip(hs: HessianSet, back: HessianSet) -> None:
    """Every stored field of ``back`` (built from the arrays to be written) equals ``hs``'s:
    ValueError naming the first that does not (a file must never answer differently)."""
    pairs = [("kind", hs.kind == back.kind), ("large-d path", hs._large == back._large),
             ("retain", _same(hs._retain, back._retain)),
             ("forget", _same(hs._forget, back._forget)),
             ("basis", _same(hs._basis, back._basis)),
             ("shared λ", hs._shared_scalar == back._shared_scalar),
             ("shared Q", _same(hs._shared_factor, back._shared_factor)),
             ("gradients", set(hs._gradients) == set(back._gradients)
              and all(_same(g, back._gradients[w]) for w, g in hs._gradients.items()))]
    report = _report_json(hs)  # None: nothing to keep (load may attach a fresh s₀)
    pairs.append(("stationarity report", report is None or report == _report_json(back)))
    if hs.kind == "commuting":
        fa = getattr(hs, "_folded_shared", (0.0, None))
        fb = getattr(back, "_folded_shared", (0.0, None))
        pairs.append(("folded shared term", fa[0] == fb[0] and _same(fa[1], fb[1])))
    bad = [name for name, ok in pairs if not ok]
    if bad:
        raise ValueError(f"this HessianSet does not survive the .npz round trip ({', '.join(bad)} "
                         "would differ after load_npz); nothing was written")


def save_npz(path: str | os.PathLike, hs_or_arrays: HessianSet | Mapping[str, npt.ArrayLike], *,
             loss: str | None = None, compressed: bool = False) -> Path:
    """Write a HessianSet (or a mapping of layout arrays) as an ``.npz`` file of format version 1.

    ``hs_or_arrays``: a :class:`~rmt.hessians.HessianSet` — everything it holds is written in its
    own representation and dtype: factors (rank-one (n, d), rank-k (n, d, k); float32 kept), dense
    Hessians (``*_hessians``), commuting profiles and basis (``*_eigenvalues``, ``basis``,
    ``folded_shared``), per-sample gradients and the shared curvature λI or QQᵀ (``shared``,
    weight decay) — or a mapping with keys of :data:`KEYS` and :data:`EXTENSION_KEYS` (legacy
    keys are not written). ``loss``: the loss the factors belong to (``rmt.models.LOSSES``),
    recorded so a reader knows what the curvature is; None leaves it out. ``path`` must end in
    ``.npz``; its folder must exist.

    Before the file is written the content is validated exactly as :func:`load_npz` would, and
    for a HessianSet the set that :func:`load_npz` will return is built and compared field by
    field (kind, arrays and their dtypes, gradients, shared term, large-d path): the file gives
    the same answers as the set in memory, bit for bit. Anything that cannot be stored or would
    come back different is a ``ValueError`` here, and nothing is written. Returns the path.
    """
    p = Path(os.fspath(path))
    if p.suffix != ".npz":
        raise ValueError(f"path must end in .npz, got {str(p)!r}")
    if p.is_dir():
        raise ValueError(f"path {str(p)!r} is a directory")
    if not p.parent.is_dir():
        raise ValueError(f"the folder of path {str(p)!r} does not exist")
    if isinstance(hs_or_arrays, HessianSet):
        arrays: dict[str, Any] = _arrays_of(hs_or_arrays)
    elif isinstance(hs_or_arrays, dict):
        writable = (set(KEYS) | set(EXTENSION_KEYS)) - {"format_version", "loss"}
        bad = sorted(set(hs_or_arrays) - writable)
        if bad:
            raise ValueError(f"hs_or_arrays has key(s) {bad}; allowed: {sorted(writable)} "
                             "(pass loss= separately)")
        arrays = {k: np.asarray(v) for k, v in hs_or_arrays.items()}
    else:
        raise TypeError("hs_or_arrays must be a HessianSet or a dict of layout arrays, got "
                        f"{type(hs_or_arrays).__name__}")
    arrays["format_version"] = np.asarray(FORMAT_VERSION, dtype=np.int64)
    if loss is not None:
        if not isinstance(loss, str):
            raise TypeError(f"loss must be a string or None, got {type(loss).__name__}")
        arrays["loss"] = np.asarray(loss, dtype=np.str_)
    back = _parse(arrays, "hs_or_arrays", quiet=True)[0]  # a file load_npz accepts ...
    if isinstance(hs_or_arrays, HessianSet):  # ... and give back this very set
        report = _report_json(hs_or_arrays)
        # a report from_factors would not recompute on load (a bridge's, made with w*): store it
        if report is not None and report != _report_json(back):
            arrays["stationarity"] = np.asarray(report, dtype=np.str_)
            back = _parse(arrays, "hs_or_arrays", quiet=True)[0]
        _check_round_trip(hs_or_arrays, back)
    (np.savez_compressed if compressed else np.savez)(p, **arrays)
    return p
