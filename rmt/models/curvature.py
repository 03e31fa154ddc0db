"""The HessianSet of a model at w (contract §1, §8): Gauss–Newton factors and loss gradients.

**What goes into a HessianSet.** For a per-sample loss ℓ_i(w) = ℓ(f(x_i; w), y_i) with model
outputs f ∈ R^K and output Jacobian J_i = ∂f/∂w (K×d):

* the **Gauss–Newton factor** F_i = J_iᵀ S_i (d×k), with S_i Sᵢᵀ = ∂²ℓ/∂f² (K×K), so that
  F_i F_iᵀ = J_iᵀ (∂²ℓ/∂f²) J_i is the Gauss–Newton per-sample Hessian. This is what
  ``HessianSet.from_factors`` expects as ``retain``/``forget``;
* the **per-sample loss gradient** g_i = J_iᵀ ∂ℓ/∂f (d,), which goes into
  ``retain_gradients``/``forget_gradients`` (non-zero at a minimum that does not interpolate).

Both are (n, d)-shaped for scalar outputs and both are silently accepted by the HessianSet, but
they are different objects: :func:`gauss_newton` computes the pair from the Jacobians.

**Gauss–Newton vs true Hessian.** The true per-sample Hessian is
J_iᵀ(∂²ℓ/∂f²)J_i + Σ_c (∂ℓ/∂f_c) ∇²f_c. For models linear in w (linear/logistic/softmax
regression) the second term is zero and the HessianSet is exact. For the MLP it is not: at an
interpolating minimum ∂ℓ/∂f = 0 (squared loss) and the two agree, but at a non-interpolating
minimum the residual term is non-zero (and may be indefinite); the HessianSet holds only the
Gauss–Newton part. :func:`~rmt.models.unlearn` runs the true nonlinear update, so comparing it with a forecast
measures this approximation.

**Weight decay.** Training may add λ‖w‖²/2 (``weight_decay=λ``). Then the minimum does not
interpolate: the per-sample data gradients are non-zero and only (1/n)Σ_i g_i + λw* = 0. The
decay itself contributes a *shared* curvature λI to every step of an unlearning objective that
keeps it. :func:`hessian_set` holds the data curvature only; a HessianSet can carry the shared
term without densifying (``HessianSet.from_factors(..., shared=λ)``), but then λI belongs to
*every* sample of both sets (weight −η(1−α) + ηα = −η(1−2α) per step), whereas
:func:`~rmt.models.unlearn` with ``weight_decay=λ`` adds λw to the retain step only. The two coincide only
for α = 0 with a fixed batch size (with/without replacement). :func:`~rmt.models.unlearn` defaults to
``weight_decay=0`` (the decay is dropped during unlearning), which is exactly the dynamics of
:func:`hessian_set`; other combinations are flagged in the result's ``note``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from ..hessians import HessianSet
from ..stationarity import _bridge_check, _deferred, _zero_roundoff
from ..validation import check_finite_array
from ..api import analysis
from ..validation import Array
from .base import LOSS, MODEL, Model, _check_data, _check_model, _resolve_loss
from .losses import _output_gradient, gauss_newton

__all__ = ["loss_gradients", "hessian_set"]


@analysis({"model": MODEL, "w": [Array(ndim=1)], "X": [Array(ndim=2)], "y": [Array()],
           "loss": LOSS}, dynamics=False, blas=False)
def loss_gradients(model: Model, w: ArrayLike, X: ArrayLike, y: ArrayLike,
                   loss: str | None = None) -> np.ndarray:
    """Per-sample loss gradients ∇_w ℓ(f(x_i; w), y_i), shape (n, d) (data loss, no decay)."""
    _check_model(model)
    loss = _resolve_loss(model, loss)
    X, Y = _check_data(model, X, y, loss)
    J = model.jacobian(w, X)
    return np.einsum("nkd,nk->nd", J, _output_gradient(model.outputs(w, X), Y, loss))


@analysis({"model": MODEL, "w": [Array(ndim=1)], "X_retain": [Array(ndim=2)],
           "y_retain": [Array()], "X_forget": [None, Array(ndim=2)], "y_forget": [None, Array()],
           "loss": LOSS}, dynamics=False, blas=False)
def hessian_set(model: Model, w: ArrayLike, X_retain: ArrayLike, y_retain: ArrayLike,
                X_forget: ArrayLike | None = None, y_forget: ArrayLike | None = None,
                loss: str | None = None) -> HessianSet:
    """The :class:`HessianSet` of ``model`` at ``w``: Gauss–Newton factors and loss gradients.

    Factors are rank one ((n, d) arrays) for a single output with squared or logistic loss,
    (n, d, K) for squared loss with K outputs and (n, d, K − 1) for softmax. Per-sample data-loss
    gradients are always attached (``retain_gradients``/``forget_gradients``): at a
    non-interpolating minimum they are the drift of contract §8; at an interpolating one they are
    ~0. Weight decay used in training is *not* represented (module docstring: weight decay).

    **Stationarity.** w is checked to be a stationary point of the training objective
    (:mod:`rmt.stationarity`), taking X_retain ∪ X_forget as the training set; the training
    penalty is not known here, so an isotropic weight decay λ̂ ≥ 0 fitted to the mean gradient is
    allowed (report ``hs.stationarity``, its ``weight_decay``). Above the threshold a
    :class:`~rmt.stationarity.NotStationaryWarning` names the number. Per-sample gradients below
    round-off (‖g_i‖ ≤ τ(d)·G, G the data-gradient scale of :mod:`rmt.stationarity`) are stored as
    exact zeros; ``hs.stationarity.zeroed`` counts them and its ``note`` says so.
    """
    _check_model(model)
    loss = _resolve_loss(model, loss)
    w = check_finite_array(w, "w", ndim=1)
    if w.shape != (model.n_params,):
        raise ValueError(f"w must have shape ({model.n_params},), got {w.shape}")
    if (X_forget is None) != (y_forget is None):
        raise ValueError("pass both X_forget and y_forget, or neither")

    def parts(X, y, xn, yn):
        X, Y = _check_data(model, X, y, loss, xn, yn)
        F, g = gauss_newton(model.jacobian(w, X), model.outputs(w, X), Y, loss)
        return (F[:, :, 0] if F.shape[2] == 1 else F), g

    FR, gR = parts(X_retain, y_retain, "X_retain", "y_retain")
    FF = gF = None
    if X_forget is not None:
        FF, gF = parts(X_forget, y_forget, "X_forget", "y_forget")
    (gR, gF), zeroed, znote = _zero_roundoff([gR, gF], [FR, FF], w)  # round-off → exactly 0
    with _deferred():  # checked below, with w*
        hs = HessianSet.from_factors(FR, FF, retain_gradients=gR, forget_gradients=gF)
    _bridge_check(hs, w, "rmt.models.hessian_set", zeroed=zeroed, zero_note=znote)
    return hs

