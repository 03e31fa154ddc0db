"""Per-sample losses of the model layer: values, output gradients, curvature factors, and the
Gauss–Newton pair (factor, gradient) from output Jacobians (contract §1, §8).

=============  ==========================  ==================  ==========================
loss           ℓ(f, y)                     ∂ℓ/∂f               factor S (rank)
=============  ==========================  ==================  ==========================
``squared``    ½‖f − y‖²                   f − y               I_K (rank K)
``logistic``   log(1 + e^{−y f}), y = ±1   −y σ(−y f)          √(σ(f)σ(−f)) (rank 1, K = 1)
``softmax``    −Σ_c y_c log p_c, p=softmax  p − y               K×(K−1) root of diag p − ppᵀ
=============  ==========================  ==================  ==========================

(softmax: diag(p) − ppᵀ annihilates the all-ones vector, so it is written on an orthonormal
basis Q of 1^⊥ (Helmert) and S = Q V √Λ from the eigendecomposition V Λ Vᵀ of the reduced
(K−1)×(K−1) matrix; eigenvalues are clipped at 0 against round-off.)
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import expit, log_softmax, softmax

from ..api import analysis
from ..validation import Array, Options, check_choice, check_finite_array

__all__ = ["LOSSES", "per_sample_loss", "output_gradient", "output_curvature_factor",
           "gauss_newton"]

#: Supported per-sample losses (table in the module docstring).
LOSSES = ("squared", "logistic", "softmax")


def _check_outputs(outputs, name="outputs"):
    f = check_finite_array(outputs, name, ndim=(1, 2))
    if f.ndim == 1:
        f = f[:, None]
    return f


def _check_targets(targets, loss, n, K, name="targets"):
    """Normalise targets to (n, K) floats (softmax: one-hot / probability rows)."""
    y = check_finite_array(targets, name, ndim=(1, 2))
    if y.shape[0] != n:
        raise ValueError(f"{name} must hold {n} samples (one per output row), got shape {y.shape}")
    if loss == "squared":
        if y.ndim == 1:
            y = y[:, None]
        if y.shape[1] != K:
            raise ValueError(f"{name} must have shape ({n}, {K}) for squared loss, got {y.shape}")
        return y
    if loss == "logistic":
        if K != 1:
            raise ValueError(f"logistic loss needs a single output (K = 1), got K = {K}")
        if y.ndim == 2:
            if y.shape[1] != 1:
                raise ValueError(f"{name} must have shape ({n},) for logistic loss, got {y.shape}")
            y = y[:, 0]
        if not np.all(np.abs(y) == 1.0):
            raise ValueError(f"{name} must be ±1 for logistic loss (got values {np.unique(y)[:5]})")
        return y[:, None]
    # softmax
    if K < 2:
        raise ValueError(f"softmax loss needs K >= 2 outputs, got K = {K}")
    if y.ndim == 1:
        if not np.all((y == np.round(y)) & (y >= 0) & (y < K)):
            raise ValueError(f"{name} must be integer class labels in [0, {K}) for softmax loss")
        return np.eye(K)[y.astype(int)]
    if y.shape[1] != K:
        raise ValueError(f"{name} must have shape ({n},) or ({n}, {K}) for softmax, got {y.shape}")
    if np.any(y < 0) or np.max(np.abs(y.sum(axis=1) - 1.0)) > 1e-8:
        raise ValueError(f"{name} rows must be probability vectors (non-negative, sum 1)")
    return y


def _prepare(outputs, targets, loss):
    check_choice(loss, "loss", LOSSES)
    f = _check_outputs(outputs)
    y = _check_targets(targets, loss, f.shape[0], f.shape[1])
    return f, y


@analysis({"outputs": [Array()], "targets": [Array()], "loss": [Options(LOSSES)]}, dynamics=False, blas=False)
def per_sample_loss(outputs: ArrayLike, targets: ArrayLike, loss: str) -> np.ndarray:
    """ℓ(f_i, y_i) for every sample, shape (n,). ``outputs`` (n, K) or (n,) when K = 1."""
    f, y = _prepare(outputs, targets, loss)
    if loss == "squared":
        return 0.5 * np.sum((f - y) ** 2, axis=1)
    if loss == "logistic":
        return np.logaddexp(0.0, -y[:, 0] * f[:, 0])
    return -np.sum(y * log_softmax(f, axis=1), axis=1)


def _output_gradient(f, y, loss):
    if loss == "squared":
        return f - y
    if loss == "logistic":
        return -y * expit(-y * f)
    return softmax(f, axis=1) - y


@analysis({"outputs": [Array()], "targets": [Array()], "loss": [Options(LOSSES)]}, dynamics=False, blas=False)
def output_gradient(outputs: ArrayLike, targets: ArrayLike, loss: str) -> np.ndarray:
    """∂ℓ/∂f for every sample, shape (n, K)."""
    f, y = _prepare(outputs, targets, loss)
    return _output_gradient(f, y, loss)


def _curvature_factor(f, loss):
    n, K = f.shape
    if loss == "squared":
        return np.broadcast_to(np.eye(K), (n, K, K)).copy()
    if loss == "logistic":
        return np.sqrt(expit(f) * expit(-f))[:, :, None]
    from scipy.linalg import helmert

    p = softmax(f, axis=1)
    Q = helmert(K).T  # (K, K-1), orthonormal columns ⟂ 1
    Qp = p @ Q  # (n, K-1) = Qᵀp per sample
    A = np.einsum("ka,nk,kb->nab", Q, p, Q) - Qp[:, :, None] * Qp[:, None, :]
    lam, V = np.linalg.eigh(A)
    return np.einsum("ka,nab->nkb", Q, V * np.sqrt(np.clip(lam, 0.0, None))[:, None, :])


@analysis({"outputs": [Array()], "targets": [Array()], "loss": [Options(LOSSES)]}, dynamics=False, blas=False)
def output_curvature_factor(outputs: ArrayLike, targets: ArrayLike, loss: str) -> np.ndarray:
    """S_i with S_i S_iᵀ = ∂²ℓ/∂f² (K×K), shape (n, K, k): k = K (squared), 1 (logistic),
    K − 1 (softmax). ``targets`` are validated but the curvature does not depend on them."""
    f, _ = _prepare(outputs, targets, loss)
    return _curvature_factor(f, loss)


def _check_jac(jac, name="jac"):
    J = check_finite_array(jac, name, ndim=(2, 3))
    if J.ndim == 2:
        J = J[:, None, :]
    return J


@analysis({"jac": [Array()], **{"outputs": [Array()], "targets": [Array()], "loss": [Options(LOSSES)]}}, dynamics=False, blas=False)
def gauss_newton(jac: ArrayLike, outputs: ArrayLike, targets: ArrayLike,
                 loss: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample Gauss–Newton factors and loss gradients from output Jacobians.

    ``jac``: (n, K, d) per-sample output Jacobians ∂f/∂w (or (n, d) for K = 1); ``outputs``:
    (n, K) (or (n,)); ``targets``: (n, K) / (n,) for squared, ±1 (n,) for logistic, integer
    labels (n,) or probability rows (n, K) for softmax; ``loss`` in :data:`LOSSES`.

    Returns ``(factors, gradients)``: factors F_i = J_iᵀ S_i of shape (n, d, k) with F_iF_iᵀ the
    Gauss–Newton Hessian (k = K, 1, K − 1 for squared, logistic, softmax), and loss gradients
    g_i = J_iᵀ ∂ℓ/∂f of shape (n, d). Pass them to ``HessianSet.from_factors`` as factors and
    as ``*_gradients`` respectively (:func:`hessian_set` does this for the reference models).
    """
    check_choice(loss, "loss", LOSSES)
    J = _check_jac(jac)
    f = _check_outputs(outputs)
    if f.shape != J.shape[:2]:
        raise ValueError(
            f"outputs must have shape (n, K) = {J.shape[:2]} to match jac {J.shape}, got "
            f"{f.shape}"
        )
    y = _check_targets(targets, loss, f.shape[0], f.shape[1])
    S = _curvature_factor(f, loss)
    r = _output_gradient(f, y, loss)
    return np.einsum("nkd,nkj->ndj", J, S), np.einsum("nkd,nk->nd", J, r)



def _loss_values(f, Y, loss):
    if loss == "squared":
        return 0.5 * np.sum((f - Y) ** 2, axis=1)
    if loss == "logistic":
        return np.logaddexp(0.0, -Y[:, 0] * f[:, 0])
    return -np.sum(Y * log_softmax(f, axis=1), axis=1)

