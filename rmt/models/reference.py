"""Reference models with exact Jacobians: linear, logistic and softmax regression (linear in w, so
the Gauss–Newton Hessian is the exact loss Hessian) and a one-hidden-layer smooth MLP."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import expit

from ..validation import check_choice, check_int
from .base import Model
from .losses import LOSSES

__all__ = ["LinearModel", "LinearRegression", "LogisticRegression", "SoftmaxRegression", "MLP"]


class LinearModel(Model):
    """f(x) = Wᵀx + b, W (p, K), b (K,). w = [W.ravel() (row-major), b]; d = (p + 1)·K.

    Linear in w, so the Gauss–Newton Hessian is the exact per-sample loss Hessian.
    """

    def __init__(self, n_features: int, n_outputs: int = 1, *, loss: str = "squared") -> None:
        self.n_features = check_int(n_features, "n_features", minimum=1)
        self.n_outputs = check_int(n_outputs, "n_outputs", minimum=1)
        self.loss = check_choice(loss, "loss", LOSSES)
        self.n_params = (self.n_features + 1) * self.n_outputs

    def _unpack(self, w):
        p, K = self.n_features, self.n_outputs
        return w[: p * K].reshape(p, K), w[p * K:]

    def outputs(self, w: ArrayLike, X: ArrayLike) -> np.ndarray:
        w, X = self._check(w, X)
        W, b = self._unpack(w)
        return X @ W + b

    def jacobian(self, w: ArrayLike, X: ArrayLike) -> np.ndarray:
        w, X = self._check(w, X)
        n, p, K = X.shape[0], self.n_features, self.n_outputs
        JW = np.zeros((n, K, p, K))
        for k in range(K):
            JW[:, k, :, k] = X
        Jb = np.broadcast_to(np.eye(K), (n, K, K))
        return np.concatenate([JW.reshape(n, K, p * K), Jb], axis=2)

    def vjp(self, w: ArrayLike, X: ArrayLike, V: np.ndarray) -> np.ndarray:
        w, X = self._check(w, X)
        return np.concatenate([(X.T @ V).ravel(), V.sum(axis=0)])

    def init(self, seed: int = 0) -> np.ndarray:
        rng = np.random.default_rng(seed)
        return rng.standard_normal(self.n_params) * 0.01


class LinearRegression(LinearModel):
    """Linear model with squared loss ½‖f − y‖² (K outputs)."""

    def __init__(self, n_features: int, n_outputs: int = 1) -> None:
        super().__init__(n_features, n_outputs, loss="squared")


class LogisticRegression(LinearModel):
    """Binary logistic regression: one output, loss log(1 + e^{−y f}), y = ±1."""

    def __init__(self, n_features: int) -> None:
        super().__init__(n_features, 1, loss="logistic")


class SoftmaxRegression(LinearModel):
    """Multiclass softmax regression with K = ``n_classes`` logits and cross-entropy.

    The logits are over-parameterised (adding the same vector to every class column leaves p
    unchanged), so without weight decay the per-sample Hessians share a null space.
    """

    def __init__(self, n_features: int, n_classes: int) -> None:
        super().__init__(n_features, check_int(n_classes, "n_classes", minimum=2), loss="softmax")


_ACTIVATIONS = ("tanh", "softplus")


class MLP(Model):
    """One-hidden-layer network f(x) = W₂ σ(W₁x + b₁) + b₂ with a smooth σ (tanh or softplus).

    w = [W₁ (h, p) row-major, b₁ (h), W₂ (K, h) row-major, b₂ (K)]; d = h(p + 1) + K(h + 1).
    """

    def __init__(self, n_features: int, hidden: int, n_outputs: int = 1, *,
                 activation: str = "tanh", loss: str = "squared") -> None:
        self.n_features = check_int(n_features, "n_features", minimum=1)
        self.hidden = check_int(hidden, "hidden", minimum=1)
        self.n_outputs = check_int(n_outputs, "n_outputs", minimum=1)
        self.activation = check_choice(activation, "activation", _ACTIVATIONS)
        self.loss = check_choice(loss, "loss", LOSSES)
        p, h, K = self.n_features, self.hidden, self.n_outputs
        self.n_params = h * (p + 1) + K * (h + 1)

    def _unpack(self, w):
        p, h, K = self.n_features, self.hidden, self.n_outputs
        i = 0
        W1 = w[i: i + h * p].reshape(h, p)
        i += h * p
        b1 = w[i: i + h]
        i += h
        W2 = w[i: i + K * h].reshape(K, h)
        i += K * h
        return W1, b1, W2, w[i:]

    def _act(self, Z):
        if self.activation == "tanh":
            A = np.tanh(Z)
            return A, 1.0 - A**2
        return np.logaddexp(0.0, Z), expit(Z)

    def _forward(self, w, X):
        W1, b1, W2, b2 = self._unpack(w)
        A, dA = self._act(X @ W1.T + b1)
        return A @ W2.T + b2, A, dA

    def outputs(self, w: ArrayLike, X: ArrayLike) -> np.ndarray:
        w, X = self._check(w, X)
        return self._forward(w, X)[0]

    def jacobian(self, w: ArrayLike, X: ArrayLike) -> np.ndarray:
        w, X = self._check(w, X)
        _, _, W2, _ = self._unpack(w)
        _, A, dA = self._forward(w, X)
        n, K, h, p = X.shape[0], self.n_outputs, self.hidden, self.n_features
        G = W2[None, :, :] * dA[:, None, :]  # (n, K, h) = ∂f_k/∂b1_j
        JW1 = (G[:, :, :, None] * X[:, None, None, :]).reshape(n, K, h * p)
        JW2 = np.zeros((n, K, K, h))
        for k in range(K):
            JW2[:, k, k, :] = A
        Jb2 = np.broadcast_to(np.eye(K), (n, K, K))
        return np.concatenate([JW1, G, JW2.reshape(n, K, K * h), Jb2], axis=2)

    def vjp(self, w: ArrayLike, X: ArrayLike, V: np.ndarray) -> np.ndarray:
        w, X = self._check(w, X)
        _, _, W2, _ = self._unpack(w)
        _, A, dA = self._forward(w, X)
        D = (V @ W2) * dA  # (n, h)
        return np.concatenate([(D.T @ X).ravel(), D.sum(axis=0), (V.T @ A).ravel(),
                               V.sum(axis=0)])

    def init(self, seed: int = 0) -> np.ndarray:
        rng = np.random.default_rng(seed)
        p, h, K = self.n_features, self.hidden, self.n_outputs
        W1 = rng.standard_normal((h, p)) / math.sqrt(p)
        W2 = rng.standard_normal((K, h)) / math.sqrt(h)
        return np.concatenate([W1.ravel(), np.zeros(h), W2.ravel(), np.zeros(K)])

    def __repr__(self):
        return (f"MLP(n_features={self.n_features}, hidden={self.hidden}, "
                f"n_outputs={self.n_outputs}, activation={self.activation!r}, "
                f"loss={self.loss!r}, n_params={self.n_params})")

