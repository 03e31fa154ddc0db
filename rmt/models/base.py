"""The model interface of :mod:`rmt.models` and the checks and loss/gradient evaluation that every
routine (training, curvature, unlearning) shares.

A model is a differentiable f(x; w) ∈ R^K with a flat parameter vector w ∈ R^d (contract §1):
:class:`Model` fixes the protocol, the concrete models live in :mod:`rmt.models.reference` and
:mod:`rmt.models.cnn`.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from ..api import InstanceOf, analysis
from ..validation import Array, Options, check_choice, check_finite_array
from .losses import LOSSES, _check_targets, _loss_values, _output_gradient, _prepare

__all__ = ["Model", "fitted_fraction"]


class Model:
    """A differentiable model f(x; w) ∈ R^K with a flat parameter vector w ∈ R^d.

    Subclasses implement :meth:`outputs` (n, K) and :meth:`jacobian` (n, K, d) exactly, and may
    override :meth:`vjp`. ``loss`` is the default loss used when a function gets ``loss=None``.
    """

    n_features: int
    n_outputs: int
    n_params: int
    loss: str = "squared"

    def _check(self, w: ArrayLike, X: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        w = check_finite_array(w, "w", ndim=1)
        if w.shape != (self.n_params,):
            raise ValueError(f"w must have shape ({self.n_params},), got {w.shape}")
        X = check_finite_array(X, "X", ndim=2)
        if X.shape[1] != self.n_features:
            raise ValueError(f"X must have {self.n_features} columns, got shape {X.shape}")
        return w, X

    def outputs(self, w: ArrayLike, X: ArrayLike) -> np.ndarray:  # pragma: no cover - abstract
        """f(x_i; w) for every row of X, shape (n, K)."""
        raise NotImplementedError

    def jacobian(self, w: ArrayLike, X: ArrayLike) -> np.ndarray:  # pragma: no cover - abstract
        """Per-sample output Jacobians ∂f(x_i; w)/∂w, shape (n, K, d)."""
        raise NotImplementedError

    def vjp(self, w: ArrayLike, X: ArrayLike, V: np.ndarray) -> np.ndarray:
        """Σ_i J_iᵀ V_i (d,) for cotangents V (n, K) (default: through the full Jacobian)."""
        return np.einsum("nkd,nk->d", self.jacobian(w, X), V)

    def init(self, seed: int = 0) -> np.ndarray:  # pragma: no cover - abstract
        """Initial parameters w (d,) drawn from ``seed``."""
        raise NotImplementedError

    def __repr__(self):
        return (f"{type(self).__name__}(n_features={self.n_features}, "
                f"n_outputs={self.n_outputs}, n_params={self.n_params}, loss={self.loss!r})")


def _check_model(model):
    if not isinstance(model, Model):
        raise TypeError(f"model must be an rmt.models.Model, got {type(model).__name__}")
    return model


def _resolve_loss(model, loss):
    return model.loss if loss is None else check_choice(loss, "loss", LOSSES)


def _check_data(model, X, y, loss, xname="X", yname="y"):
    X = check_finite_array(X, xname, ndim=2)
    if X.shape[1] != model.n_features:
        raise ValueError(f"{xname} must have {model.n_features} columns, got shape {X.shape}")
    if X.shape[0] < 1:
        raise ValueError(f"{xname} must hold at least one sample")
    Y = _check_targets(y, loss, X.shape[0], model.n_outputs, name=yname)
    return X, Y


def _mean_loss_and_grad(model, w, X, Y, loss, weights=None):
    """(Σ_i c_i ℓ_i, Σ_i c_i ∇ℓ_i) with c = weights (default 1/n)."""
    f = model.outputs(w, X)
    c = np.full(X.shape[0], 1.0 / X.shape[0]) if weights is None else weights
    r = _output_gradient(f, Y, loss) * c[:, None]
    return float(c @ _loss_values(f, Y, loss)), model.vjp(w, X, r)


#: constraint of a ``model`` argument and of an optional ``loss`` (None: the model's own)
MODEL = [InstanceOf(Model)]
LOSS = [None, Options(LOSSES)]


@analysis({"model": MODEL, "w": [Array(ndim=1)], "X": [Array(ndim=2)], "y": [Array()],
           "loss": LOSS}, dynamics=False, blas=False)
def fitted_fraction(model: Model, w: ArrayLike, X: ArrayLike, y: ArrayLike,
                    loss: str | None = None) -> float:
    """Fraction of the samples (X, y) the model fits at w: the predicted class is the label
    (logistic: sign(f) = y; softmax: argmax f = y) or, for squared loss, the residual is less
    than half the target, ‖f_i − y_i‖ < ½‖y_i‖ (±1 targets: the sign is right with margin).

    Pass the forget set's value as ``forget_fitted`` to :func:`rmt.forecast`: below 1/2 the
    model never fitted what it is asked to forget (``ForecastResult.cost.nothing_to_forget``).
    """
    _check_model(model)
    loss = _resolve_loss(model, loss)
    X, y = _check_data(model, X, y, loss)
    f, Y = _prepare(model.outputs(np.asarray(w, float), X), y, loss)
    if loss == "logistic":
        ok = np.sign(f[:, 0]) == Y[:, 0]
    elif loss == "softmax":
        ok = np.argmax(f, axis=1) == np.argmax(Y, axis=1)
    else:
        ok = np.linalg.norm(f - Y, axis=1) < 0.5 * np.linalg.norm(Y, axis=1)
    return float(np.mean(ok)) if ok.size else float("nan")

