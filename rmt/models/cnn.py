"""The two-layer ReLU CNN of contract §6 as an :mod:`rmt.models` model, with its exact kernels.

f(W, x) = F₊₁(W₊₁, x) − F₋₁(W₋₁, x),  F_j = (1/m) Σ_r [σ(⟨w_{j,r}, x⁽¹⁾⟩) + σ(⟨w_{j,r}, x⁽²⁾⟩)],
σ = ReLU, w_{j,r} ~ N(0, σ₀² I) at initialisation. Weights are W of shape (2, m, d) with W[0]
the j = +1 filters and W[1] the j = −1 filters; the flat parameter vector is w = W.ravel().
A sample is two patches x = (x⁽¹⁾, x⁽²⁾): the kernels take X of shape (n, 2, d), the model
(:class:`ReLUCNN`, the :class:`~rmt.models.Model` interface) takes the rows [x⁽¹⁾, x⁽²⁾] of
shape (n, 2d).

Per-sample gradient (contract §6), exact away from the measure-zero activation boundaries:
∂f(x_i)/∂w_{j,r} = (j/m) [1{⟨w_{j,r}, x_i⁽¹⁾⟩>0} x_i⁽¹⁾ + 1{⟨w_{j,r}, x_i⁽²⁾⟩>0} x_i⁽²⁾].

Because f is piecewise *linear* in W (the second layer is fixed), ∇²_W f = 0 almost everywhere:
the Gauss–Newton per-sample Hessian ℓ''(f_i, y_i) g_i g_iᵀ (g_i = ∇_W f(x_i)) is the whole
per-sample loss Hessian, rank one with factor √ℓ''_i · g_i.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from ..validation import check_choice, check_int, check_positive, check_random_state
from .base import Model

__all__ = ["ReLUCNN", "forward", "per_sample_gradients", "batch_loss_gradient", "PATCHES"]

#: Patches per sample (signal and noise, contract §6).
PATCHES = 2

_SIGN = np.array([1.0, -1.0])


def _pre(W, X):
    """Pre-activations ⟨w_{j,r}, x_i⁽ᵖ⁾⟩ with shape (n, 2 patches, 2m filters)."""
    two, m, d = W.shape
    n, p, _ = X.shape
    return (X.reshape(n * p, d) @ W.reshape(two * m, d).T).reshape(n, p, two * m)


def _signs(m):
    return np.repeat(_SIGN, m)  # sign j of each of the 2m filters, in W.reshape order


def forward(W: np.ndarray, X: np.ndarray) -> np.ndarray:
    """f(W, x_i) for every sample, shape (n,); W (2, m, d), X (n, 2, d)."""
    m = W.shape[1]
    pre = _pre(W, X)
    return (np.maximum(pre, 0.0).sum(axis=1) @ _signs(m)) / m


def per_sample_gradients(W: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Exact g_i = ∇_W f(W, x_i) as an (n, 2·m·d) array (contract §6 formula)."""
    two, m, d = W.shape
    act = (_pre(W, X) > 0).astype(float)  # (n, 2, 2m)
    G = np.matmul(np.swapaxes(act, 1, 2), X) * (_signs(m) / m)[None, :, None]
    return G.reshape(X.shape[0], two * m * d)


def batch_loss_gradient(W: np.ndarray, X: np.ndarray, coef: ArrayLike) -> np.ndarray:
    """Σ_i coef_i ∇_W f(W, x_i) as a (2, m, d) array, without forming per-sample gradients."""
    two, m, d = W.shape
    n, p, _ = X.shape
    act = (_pre(W, X) > 0) * np.asarray(coef, dtype=float)[:, None, None]
    g = (act.reshape(n * p, two * m).T @ X.reshape(n * p, d)) * (_signs(m) / m)[:, None]
    return g.reshape(two, m, d)


class ReLUCNN(Model):
    """Two-layer ReLU CNN f(x; w) ∈ R (module docstring) as a :class:`~rmt.models.Model`.

    ``d`` patch dimension, ``m`` filters per class, ``sigma0`` initialisation scale, ``loss``
    ``"squared"`` or ``"logistic"`` (one output). n_features = 2d (rows [x⁽¹⁾, x⁽²⁾]),
    n_params = 2md (w = W.ravel(), W of shape (2, m, d)).
    """

    def __init__(self, d: int, m: int, *, sigma0: float = 0.01, loss: str = "squared") -> None:
        self.d = check_int(d, "d", minimum=2)
        self.m = check_int(m, "m", minimum=1)
        self.sigma0 = check_positive(sigma0, "sigma0")
        self.loss = check_choice(loss, "loss", ("squared", "logistic"))
        self.n_features = PATCHES * self.d
        self.n_outputs = 1
        self.n_params = 2 * self.m * self.d

    def weights(self, w: ArrayLike) -> np.ndarray:
        """The flat parameters w as W of shape (2, m, d) (a view when possible)."""
        return np.asarray(w, dtype=float).reshape(2, self.m, self.d)

    def patches(self, X: ArrayLike) -> np.ndarray:
        """Rows [x⁽¹⁾, x⁽²⁾] (n, 2d) as patches (n, 2, d) (a view when possible)."""
        X = np.asarray(X, dtype=float)
        return X.reshape(X.shape[0], PATCHES, self.d)

    def outputs(self, w: ArrayLike, X: ArrayLike) -> np.ndarray:
        w, X = self._check(w, X)
        return forward(self.weights(w), self.patches(X))[:, None]

    def jacobian(self, w: ArrayLike, X: ArrayLike) -> np.ndarray:
        w, X = self._check(w, X)
        return per_sample_gradients(self.weights(w), self.patches(X))[:, None, :]

    def vjp(self, w: ArrayLike, X: ArrayLike, V: np.ndarray) -> np.ndarray:
        w, X = self._check(w, X)
        return batch_loss_gradient(self.weights(w), self.patches(X), V[:, 0]).ravel()

    def init(self, seed: int | np.random.Generator | np.random.SeedSequence | None = 0
             ) -> np.ndarray:
        """w_{j,r} ~ N(0, σ₀² I_d) for j = ±1, r = 1..m (contract §6), flattened."""
        rng = check_random_state(seed)
        return (self.sigma0 * rng.standard_normal((2, self.m, self.d))).ravel()

    def __repr__(self):
        return (f"ReLUCNN(d={self.d}, m={self.m}, sigma0={self.sigma0!r}, loss={self.loss!r}, "
                f"n_params={self.n_params})")
