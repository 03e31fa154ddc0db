"""scikit-learn's 8×8 digits as ready-made real data (no download) and forget-set selections."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike

from ..validation import check_choice, check_int
from numbers import Real

from ..api import InstanceOf, analysis, at_least
from ..validation import Array, Constraint, Interval, Options
from .base import LOSS, MODEL, Model, _check_data, _check_model, _resolve_loss
from .losses import _loss_values

__all__ = ["DigitsData", "load_digits", "load_digits_binary", "forget_set", "FORGET_KINDS"]


@dataclass(frozen=True)
class DigitsData:
    """A train/test split of scikit-learn's 8×8 digits (no download).

    ``X_train`` (n, p) standardised (then PCA-projected and re-standardised when
    ``n_components`` is set, all fitted on the training split only); ``y_train``: ±1 for
    :func:`load_digits_binary`, integer labels 0..K−1 for :func:`load_digits` — *after* any label
    flips; ``y_train_clean`` the labels before flipping; ``flipped`` indices into the training set
    whose labels were flipped before training (the "relabelled" forget set); ``classes`` the
    original digit of each label value; ``X_test``/``y_test`` (clean labels).
    """

    X_train: np.ndarray = field(repr=False)
    y_train: np.ndarray = field(repr=False)
    X_test: np.ndarray = field(repr=False)
    y_test: np.ndarray = field(repr=False)
    y_train_clean: np.ndarray = field(repr=False)
    flipped: np.ndarray
    classes: tuple
    n_features: int


def _digits(classes, n_components, test_fraction, max_train, flip, seed, binary):
    try:
        from sklearn.datasets import load_digits as _sk_load
    except ImportError as exc:  # pragma: no cover
        raise ImportError("the digits helpers need scikit-learn (pip install 'rmt[dev]')") from exc
    rng = np.random.default_rng(seed)
    X, t = _sk_load(return_X_y=True)
    classes = tuple(int(c) for c in classes)
    mask = np.isin(t, classes)
    X, t = X[mask].astype(float), t[mask]
    label = {c: j for j, c in enumerate(classes)}  # label j ↔ digit classes[j]
    y = np.array([label[int(c)] for c in t])
    perm = rng.permutation(len(y))
    n_test = int(round(test_fraction * len(y)))
    te, tr = perm[:n_test], perm[n_test:]
    if max_train is not None:
        tr = tr[: check_int(max_train, "max_train", minimum=2)]
    Xtr, Xte = X[tr], X[te]
    mu, sd = Xtr.mean(axis=0), Xtr.std(axis=0)
    sd[sd == 0] = 1.0
    Xtr, Xte = (Xtr - mu) / sd, (Xte - mu) / sd
    if n_components is not None:
        n_components = check_int(n_components, "n_components", minimum=1,
                                 maximum=min(Xtr.shape))
        _, _, Vt = np.linalg.svd(Xtr, full_matrices=False)  # Xtr is centred
        P = Vt[:n_components].T
        Xtr, Xte = Xtr @ P, Xte @ P
        s = Xtr.std(axis=0)
        s[s == 0] = 1.0
        Xtr, Xte = Xtr / s, Xte / s
    ytr, yte = y[tr], y[te]
    clean = ytr.copy()
    flip = check_int(flip, "flip", minimum=0, maximum=len(ytr))
    flipped = np.sort(rng.choice(len(ytr), size=flip, replace=False)) if flip else np.zeros(0, int)
    K = len(classes)
    for i in flipped:
        ytr[i] = (ytr[i] + rng.integers(1, K)) % K  # a different class
    if binary:
        ytr, yte, clean = (2.0 * v - 1.0 for v in (ytr, yte, clean))  # classes[0] ↦ −1
    return DigitsData(X_train=Xtr, y_train=ytr, X_test=Xte, y_test=yte, y_train_clean=clean,
                      flipped=flipped, classes=classes, n_features=Xtr.shape[1])


_DIGITS: dict[str, list[Constraint | None]] = {"n_components": [None, *at_least(1)],
           "test_fraction": [Interval(Real, 0, 1, closed="neither")],
           "max_train": [None, *at_least(1)], "flip": at_least(0), "seed": at_least(0)}


@analysis({"classes": [InstanceOf(tuple, list)], **_DIGITS}, dynamics=False, blas=False)
def load_digits(*, classes: tuple = tuple(range(10)), n_components: int | None = None,
                test_fraction: float = 0.25, max_train: int | None = None, flip: int = 0,
                seed: int = 0) -> DigitsData:
    """Multiclass digits: integer labels 0..K−1 (label j is digit ``classes[j]``).

    ``n_components``: PCA dimension (keeps d = (p + 1)·K small, e.g. 16 → d = 170 for 10 classes);
    ``max_train``: keep at most this many training samples; ``flip``: number of training labels
    changed to a random other class *before* training (``DigitsData.flipped``).
    """
    if len(set(classes)) < 2:
        raise ValueError("classes must hold at least two distinct digits")
    return _digits(classes, n_components, test_fraction, max_train, flip, seed, binary=False)


@analysis({"pair": [InstanceOf(tuple, list)], **_DIGITS}, dynamics=False, blas=False)
def load_digits_binary(pair: tuple = (3, 8), *, n_components: int | None = None,
                       test_fraction: float = 0.25, max_train: int | None = None, flip: int = 0,
                       seed: int = 0) -> DigitsData:
    """Two digits as a binary problem with labels ±1 (``pair[0]`` ↦ −1, ``pair[1]`` ↦ +1)."""
    if len(pair) != 2 or pair[0] == pair[1]:
        raise ValueError(f"pair must be two distinct digits, got {pair!r}")
    return _digits(pair, n_components, test_fraction, max_train, flip, seed, binary=True)


#: Forget-set selections of :func:`forget_set`.
FORGET_KINDS = ("typical", "hard", "relabelled")


@analysis({"kind": [Options(FORGET_KINDS)], "n_train": at_least(2),
           "n_forget": [None, *at_least(1)], "seed": at_least(0), "model": [None, *MODEL],
           "w": [None, Array(ndim=1)], "X": [None, Array(ndim=2)], "y": [None, Array()],
           "loss": LOSS, "flipped": [None, Array(ndim=1, kind="integer")]}, dynamics=False,
          blas=False)
def forget_set(kind: str, n_train: int, n_forget: int | None = None, *, seed: int = 0,
               model: Model | None = None, w: ArrayLike | None = None, X: ArrayLike | None = None,
               y: ArrayLike | None = None, loss: str | None = None,
               flipped: ArrayLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Split training indices 0..n_train−1 into (retain, forget) index arrays.

    ``"typical"``: ``n_forget`` samples uniformly at random (``seed``);
    ``"hard"``: the ``n_forget`` samples of largest training loss at ``w`` (needs model, w, X,
    y; ties broken by index); ``"relabelled"``: the samples whose labels were flipped before
    training (``flipped``, e.g. ``DigitsData.flipped``; ``n_forget`` ignored or must match).
    """
    check_choice(kind, "kind", FORGET_KINDS)
    n_train = check_int(n_train, "n_train", minimum=2)
    if kind == "relabelled":
        if flipped is None:
            raise ValueError("kind='relabelled' needs flipped (the indices flipped before training)")
        forget = np.unique(np.asarray(flipped, dtype=int))
        if forget.size == 0 or forget.min() < 0 or forget.max() >= n_train:
            raise ValueError(f"flipped must be non-empty indices in [0, {n_train})")
        if n_forget is not None and n_forget != forget.size:
            raise ValueError(f"n_forget={n_forget} but {forget.size} samples were flipped")
    else:
        if n_forget is None:
            raise ValueError(f"kind={kind!r} needs n_forget")
        n_forget = check_int(n_forget, "n_forget", minimum=1, maximum=n_train - 1)
        if kind == "typical":
            forget = np.sort(np.random.default_rng(seed).choice(n_train, n_forget, replace=False))
        else:
            if model is None or w is None or X is None or y is None:
                raise ValueError("kind='hard' needs model, w, X and y")
            _check_model(model)
            loss = _resolve_loss(model, loss)
            Xc, Y = _check_data(model, X, y, loss)
            if Xc.shape[0] != n_train:
                raise ValueError(f"X must hold n_train={n_train} samples, got {Xc.shape[0]}")
            vals = _loss_values(model.outputs(w, Xc), Y, loss)
            forget = np.sort(np.argsort(-vals, kind="stable")[:n_forget])
    retain = np.setdiff1d(np.arange(n_train), forget)
    return retain, forget
