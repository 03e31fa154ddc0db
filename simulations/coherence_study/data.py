"""Data sets of the coherence study: every data set bundled with scikit-learn that fits a binary
or scalar task (no download), the signal-plus-noise model at several SNRs, and a user's own
arrays (:class:`ArrayDataset`).

One protocol for all (the protocol of :func:`rmt.models.load_digits_binary`, which the digits
data set uses directly): a seeded random subsample of ``n_train`` training points, features
standardised on it, projected on their first :data:`PCA_COMPONENTS` principal components when
there are more than :data:`PCA_ABOVE` features (then re-standardised), and ``n_flip`` training
labels corrupted *before* training — the memorised ("relabelled") forget set. Binary labels are
±1 (a flip negates the label); regression targets are standardised (a corrupted target is a fresh
N(0, 1) draw). The signal-plus-noise model (contract §6) is used as drawn (no standardisation:
its two patches are the structure), its flipped samples keep the clean signal patch.

================  ===============================================  =====  ========  ==========
name              source                                           task   features  samples
================  ===============================================  =====  ========  ==========
``digits``        ``sklearn.datasets.load_digits``, 3 vs 8         ±1     64 → 12   357
``breast_cancer`` ``load_breast_cancer`` (malignant ↦ −1)          ±1     30 → 12   569
``wine``          ``load_wine``, cultivar 0 vs 1                   ±1     13        130
``iris``          ``load_iris``, versicolor vs virginica           ±1     4         100
``diabetes``      ``load_diabetes`` (disease progression)          scalar 10        442
``snr0.1``, …    signal-plus-noise (contract §6), patch dim 8     ±1     16        drawn
================  ===============================================  =====  ========  ==========

Left out: ``load_linnerud`` (20 samples, three targets: too small for a forget set of 10 and not
a scalar task). The digits images are also available as 8×8 pixels (``image_shape``) for the
CNN, with the same samples and flips as the PCA view.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

__all__ = ["FORGET_KINDS", "DATASETS", "SNR_LEVELS", "PCA_ABOVE", "PCA_COMPONENTS", "TaskData", "ArrayDataset",
           "load_task", "check_dataset", "class_of"]

#: the forget-set kinds of the study (built by experiment.forget_indices)
FORGET_KINDS = ("random", "class", "hard", "relabelled")

#: signal-plus-noise SNRs (‖μ‖/(σ_p√d)); Kou et al.'s benign/harmful boundary n‖μ‖⁴/(σ_p⁴d) ≍ 1
#: sits near SNR 0.16 at n = 120, d = 8, so the three levels straddle it
SNR_LEVELS = (0.1, 0.3, 1.0)
#: patch dimension of the signal-plus-noise data (16 features: two patches)
SNR_PATCH = 8
#: data sets with more than PCA_ABOVE features are projected on PCA_COMPONENTS components
PCA_ABOVE = 16
PCA_COMPONENTS = 12

#: built-in data set names, in report order
DATASETS = ("digits", "breast_cancer", "wine", "iris", "diabetes",
            *(f"snr{s:g}" for s in SNR_LEVELS))


@dataclass(frozen=True)
class ArrayDataset:
    """A researcher's own data set for the study: features ``X`` (N, p) and targets ``y`` (N,).

    ``task="binary"``: ``y`` holds exactly two distinct values (the smaller ↦ −1, the larger ↦
    +1); ``task="regression"``: real targets (standardised by the protocol). ``name`` must not
    be a built-in name. Picklable, so the process and Dask executors can run it.
    """

    name: str
    X: np.ndarray = field(repr=False)
    y: np.ndarray = field(repr=False)
    task: str = "binary"
    description: str = ""

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name or "/" in self.name:
            raise ValueError(f"name must be a non-empty string without '/', got {self.name!r}")
        if self.name in DATASETS:
            raise ValueError(f"name {self.name!r} is a built-in data set; choose another name")
        if self.task not in ("binary", "regression"):
            raise ValueError(f"task must be 'binary' or 'regression', got {self.task!r}")
        X = np.asarray(self.X, dtype=float)
        y = np.asarray(self.y, dtype=float)
        if X.ndim != 2 or y.ndim != 1 or X.shape[0] != y.shape[0]:
            raise ValueError(f"X must be (N, p) and y (N,) with the same N, got {X.shape} and "
                             f"{y.shape}")
        if not (np.all(np.isfinite(X)) and np.all(np.isfinite(y))):
            raise ValueError("X and y must be finite")
        if self.task == "binary" and np.unique(y).size != 2:
            raise ValueError(f"a binary task needs exactly two distinct targets, got "
                             f"{np.unique(y).size}")
        object.__setattr__(self, "X", X)
        object.__setattr__(self, "y", y)

    def fingerprint(self) -> str:
        """SHA-256 (16 hex digits) of the arrays and the task: part of the sweep's identity."""
        h = hashlib.sha256()
        for a in (self.X, self.y):
            h.update(np.ascontiguousarray(a).tobytes())
        h.update(self.task.encode())
        return h.hexdigest()[:16]


@dataclass(frozen=True)
class TaskData:
    """A prepared training set (module docstring protocol).

    ``X`` (n, p) features; ``y`` (n,) training targets (after corruption); ``y_clean``;
    ``flipped`` the corrupted indices (the relabelled forget set); ``task`` "binary" or
    "regression"; ``pixels`` (n, 64) the standardised 8×8 digits images of the same samples
    (digits only, else None); ``description``.
    """

    name: str
    X: np.ndarray = field(repr=False)
    y: np.ndarray = field(repr=False)
    y_clean: np.ndarray = field(repr=False)
    flipped: np.ndarray
    task: str
    description: str
    pixels: np.ndarray | None = field(default=None, repr=False)

    @property
    def n(self) -> int:
        return int(self.y.shape[0])


def check_dataset(name, custom=()) -> str | ArrayDataset:
    """The built-in name or the :class:`ArrayDataset` called ``name``; ValueError otherwise."""
    for c in custom:
        if isinstance(c, ArrayDataset) and c.name == name:
            return c
    if name in DATASETS:
        return name
    own = [c.name for c in custom]
    raise ValueError(f"dataset must be one of {', '.join(DATASETS + tuple(own))}, got {name!r}")


def _standardise(X):
    mu, sd = X.mean(axis=0), X.std(axis=0)
    sd[sd == 0] = 1.0
    return (X - mu) / sd


def _project(X):
    X = _standardise(X)
    if X.shape[1] > PCA_ABOVE:
        _, _, Vt = np.linalg.svd(X, full_matrices=False)
        X = _standardise(X @ Vt[:PCA_COMPONENTS].T)
    return X


def _binary(y, pos):
    return np.where(y == pos, 1.0, -1.0)


def _prepare(name, X, y, task, n_train, n_flip, seed, description):
    rng = np.random.default_rng([seed, 1])
    perm = rng.permutation(X.shape[0])[: min(n_train, X.shape[0])]
    X, y = _project(np.asarray(X, float)[perm]), np.asarray(y, float)[perm]
    if task == "regression":
        y = (y - y.mean()) / (y.std() or 1.0)
    clean = y.copy()
    flipped = np.sort(rng.choice(len(y), size=n_flip, replace=False))
    if task == "binary":
        y[flipped] = -y[flipped]
    else:
        y[flipped] = rng.standard_normal(n_flip)
    return TaskData(name, X, y, clean, flipped, task, description)


def _snr(name, snr, n_train, n_flip, seed):
    from simulations.cnn.data import make_data

    data = make_data(n_train, SNR_PATCH, snr, seed=np.random.default_rng([seed, 2]))
    X = data.X.reshape(n_train, 2 * SNR_PATCH)
    y = data.y.copy()
    rng = np.random.default_rng([seed, 3])
    flipped = np.sort(rng.choice(n_train, size=n_flip, replace=False))
    y[flipped] = -y[flipped]  # label noise: the signal patch keeps the clean label
    return TaskData(name, X, y, data.y.copy(), flipped, "binary",
                    f"signal-plus-noise, SNR {snr:g}, patch dim {SNR_PATCH} (contract §6)")


def load_task(dataset: str | ArrayDataset, seed: int, n_train: int, n_flip: int) -> TaskData:
    """The training set of ``dataset`` for ``seed`` (module docstring protocol).

    ``n_train``: at most this many training samples (fewer when the data set is smaller);
    ``n_flip``: corrupted labels. Raises ValueError naming ``dataset`` for an unknown name.
    """
    import sklearn.datasets as skd

    if isinstance(dataset, ArrayDataset):
        y = dataset.y
        if dataset.task == "binary":
            y = _binary(y, y.max())  # the smaller value ↦ −1, the larger ↦ +1
        return _prepare(dataset.name, dataset.X, y, dataset.task, n_train, n_flip, seed,
                        dataset.description or f"user data set {dataset.name!r}")
    check_dataset(dataset)
    if dataset == "digits":
        from rmt import models as M

        kw = dict(test_fraction=0.25, max_train=n_train, flip=n_flip, seed=seed)
        pca = M.load_digits_binary((3, 8), n_components=PCA_COMPONENTS, **kw)
        pix = M.load_digits_binary((3, 8), n_components=None, **kw)
        assert np.array_equal(pca.flipped, pix.flipped)
        return TaskData("digits", pca.X_train, pca.y_train.astype(float),
                        pca.y_train_clean.astype(float), pca.flipped, "binary",
                        "scikit-learn digits, 3 vs 8 (rmt.models.load_digits_binary), PCA 12",
                        pixels=pix.X_train)
    if dataset.startswith("snr"):
        return _snr(dataset, float(dataset[3:]), n_train, n_flip, seed)
    if dataset == "breast_cancer":
        X, t = skd.load_breast_cancer(return_X_y=True)
        y, desc = _binary(t, 1), "scikit-learn breast cancer (benign +1), PCA 12"
    elif dataset == "wine":
        X, t = skd.load_wine(return_X_y=True)
        keep = t < 2
        X, y, desc = X[keep], _binary(t[keep], 1), "scikit-learn wine, cultivar 0 vs 1"
    elif dataset == "iris":
        X, t = skd.load_iris(return_X_y=True)
        keep = t > 0
        X, y, desc = X[keep], _binary(t[keep], 2), "scikit-learn iris, versicolor vs virginica"
    else:  # diabetes
        X, y = skd.load_diabetes(return_X_y=True)
        desc = "scikit-learn diabetes (regression, standardised target)"
    task = "regression" if dataset == "diabetes" else "binary"
    return _prepare(dataset, X, y, task, n_train, n_flip, seed, desc)


def class_of(data: TaskData) -> np.ndarray:
    """The class (±1) of every training sample: its training label (regression: the sign of
    the standardised target) — the classes of the "class" forget set."""
    return np.where(data.y >= 0, 1.0, -1.0)
