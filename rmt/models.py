"""Real models in: Gauss–Newton factors, reference models, training, nonlinear unlearning.

This module turns a trained model into the :class:`~rmt.hessians.HessianSet` the theory needs
(THEORY.md §1, §8) and runs the *actual nonlinear* unlearning update that the linearised
:class:`~rmt.dynamics.Dynamics` describes, so that forecasts can be checked against real runs.

**What goes into a HessianSet.** For a per-sample loss ℓ_i(w) = ℓ(f(x_i; w), y_i) with model
outputs f ∈ R^K and output Jacobian J_i = ∂f/∂w (K×d):

* the **Gauss–Newton factor** F_i = J_iᵀ S_i (d×k), with S_i Sᵢᵀ = ∂²ℓ/∂f² (K×K), so that
  F_i F_iᵀ = J_iᵀ (∂²ℓ/∂f²) J_i is the Gauss–Newton per-sample Hessian. This is what
  ``HessianSet.from_factors`` expects as ``retain``/``forget``;
* the **per-sample loss gradient** g_i = J_iᵀ ∂ℓ/∂f (d,), which goes into
  ``retain_gradients``/``forget_gradients`` (non-zero at a minimum that does not interpolate).

Both are (n, d)-shaped for scalar outputs and both are silently accepted by the HessianSet, but
they are different objects: :func:`gauss_newton` computes the pair from the Jacobians.

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

**Gauss–Newton vs true Hessian.** The true per-sample Hessian is
J_iᵀ(∂²ℓ/∂f²)J_i + Σ_c (∂ℓ/∂f_c) ∇²f_c. For models linear in w (linear/logistic/softmax
regression) the second term is zero and the HessianSet is exact. For the MLP it is not: at an
interpolating minimum ∂ℓ/∂f = 0 (squared loss) and the two agree, but at a non-interpolating
minimum the residual term is non-zero (and may be indefinite); the HessianSet holds only the
Gauss–Newton part. :func:`unlearn` runs the true nonlinear update, so comparing it with a forecast
measures this approximation.

**Weight decay.** Training may add λ‖w‖²/2 (``weight_decay=λ``). Then the minimum does not
interpolate: the per-sample data gradients are non-zero and only (1/n)Σ_i g_i + λw* = 0. The
decay itself contributes a *shared* curvature λI to every step of an unlearning objective that
keeps it. :func:`hessian_set` holds the data curvature only; a HessianSet can carry the shared
term without densifying (``HessianSet.from_factors(..., shared=λ)``), but then λI belongs to
*every* sample of both sets (weight −η(1−α) + ηα = −η(1−2α) per step), whereas
:func:`unlearn` with ``weight_decay=λ`` adds λw to the retain step only. The two coincide only
for α = 0 with a fixed batch size (with/without replacement). :func:`unlearn` defaults to
``weight_decay=0`` (the decay is dropped during unlearning), which is exactly the dynamics of
:func:`hessian_set`; other combinations are flagged in the result's ``note``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from numbers import Integral

import numpy as np
from scipy.special import expit, log_softmax, softmax

from .hessians import HessianSet
from .schedule import Schedule
from .validation import check_choice, check_finite_array, check_int, check_positive

__all__ = [
    "LOSSES",
    "per_sample_loss",
    "output_gradient",
    "output_curvature_factor",
    "gauss_newton",
    "fitted_fraction",
    "Model",
    "LinearModel",
    "LinearRegression",
    "LogisticRegression",
    "SoftmaxRegression",
    "MLP",
    "TrainResult",
    "train",
    "loss_gradients",
    "hessian_set",
    "UnlearnResult",
    "unlearn",
    "draw_indicators",
    "DigitsData",
    "load_digits",
    "load_digits_binary",
    "forget_set",
    "FORGET_KINDS",
]

#: Supported per-sample losses (module docstring table).
LOSSES = ("squared", "logistic", "softmax")


# ============================================================================ losses
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


def per_sample_loss(outputs, targets, loss) -> np.ndarray:
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


def output_gradient(outputs, targets, loss) -> np.ndarray:
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


def output_curvature_factor(outputs, targets, loss) -> np.ndarray:
    """S_i with S_i S_iᵀ = ∂²ℓ/∂f² (K×K), shape (n, K, k): k = K (squared), 1 (logistic),
    K − 1 (softmax). ``targets`` are validated but the curvature does not depend on them."""
    f, _ = _prepare(outputs, targets, loss)
    return _curvature_factor(f, loss)


def _check_jac(jac, name="jac"):
    J = check_finite_array(jac, name, ndim=(2, 3))
    if J.ndim == 2:
        J = J[:, None, :]
    return J


def gauss_newton(jac, outputs, targets, loss) -> tuple[np.ndarray, np.ndarray]:
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


# ============================================================================ models
class Model:
    """A differentiable model f(x; w) ∈ R^K with a flat parameter vector w ∈ R^d.

    Subclasses implement :meth:`outputs` (n, K) and :meth:`jacobian` (n, K, d) exactly, and may
    override :meth:`vjp`. ``loss`` is the default loss used when a function gets ``loss=None``.
    """

    n_features: int
    n_outputs: int
    n_params: int
    loss: str = "squared"

    def _check(self, w, X):
        w = check_finite_array(w, "w", ndim=1)
        if w.shape != (self.n_params,):
            raise ValueError(f"w must have shape ({self.n_params},), got {w.shape}")
        X = check_finite_array(X, "X", ndim=2)
        if X.shape[1] != self.n_features:
            raise ValueError(f"X must have {self.n_features} columns, got shape {X.shape}")
        return w, X

    def outputs(self, w, X) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def jacobian(self, w, X) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def vjp(self, w, X, V) -> np.ndarray:
        """Σ_i J_iᵀ V_i (d,) for cotangents V (n, K) (default: through the full Jacobian)."""
        return np.einsum("nkd,nk->d", self.jacobian(w, X), V)

    def init(self, seed=0) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self):
        return (f"{type(self).__name__}(n_features={self.n_features}, "
                f"n_outputs={self.n_outputs}, n_params={self.n_params}, loss={self.loss!r})")


class LinearModel(Model):
    """f(x) = Wᵀx + b, W (p, K), b (K,). w = [W.ravel() (row-major), b]; d = (p + 1)·K.

    Linear in w, so the Gauss–Newton Hessian is the exact per-sample loss Hessian.
    """

    def __init__(self, n_features, n_outputs=1, *, loss="squared"):
        self.n_features = check_int(n_features, "n_features", minimum=1)
        self.n_outputs = check_int(n_outputs, "n_outputs", minimum=1)
        self.loss = check_choice(loss, "loss", LOSSES)
        self.n_params = (self.n_features + 1) * self.n_outputs

    def _unpack(self, w):
        p, K = self.n_features, self.n_outputs
        return w[: p * K].reshape(p, K), w[p * K:]

    def outputs(self, w, X):
        w, X = self._check(w, X)
        W, b = self._unpack(w)
        return X @ W + b

    def jacobian(self, w, X):
        w, X = self._check(w, X)
        n, p, K = X.shape[0], self.n_features, self.n_outputs
        JW = np.zeros((n, K, p, K))
        for k in range(K):
            JW[:, k, :, k] = X
        Jb = np.broadcast_to(np.eye(K), (n, K, K))
        return np.concatenate([JW.reshape(n, K, p * K), Jb], axis=2)

    def vjp(self, w, X, V):
        w, X = self._check(w, X)
        return np.concatenate([(X.T @ V).ravel(), V.sum(axis=0)])

    def init(self, seed=0):
        rng = np.random.default_rng(seed)
        return rng.standard_normal(self.n_params) * 0.01


class LinearRegression(LinearModel):
    """Linear model with squared loss ½‖f − y‖² (K outputs)."""

    def __init__(self, n_features, n_outputs=1):
        super().__init__(n_features, n_outputs, loss="squared")


class LogisticRegression(LinearModel):
    """Binary logistic regression: one output, loss log(1 + e^{−y f}), y = ±1."""

    def __init__(self, n_features):
        super().__init__(n_features, 1, loss="logistic")


class SoftmaxRegression(LinearModel):
    """Multiclass softmax regression with K = ``n_classes`` logits and cross-entropy.

    The logits are over-parameterised (adding the same vector to every class column leaves p
    unchanged), so without weight decay the per-sample Hessians share a null space.
    """

    def __init__(self, n_features, n_classes):
        super().__init__(n_features, check_int(n_classes, "n_classes", minimum=2), loss="softmax")


_ACTIVATIONS = ("tanh", "softplus")


class MLP(Model):
    """One-hidden-layer network f(x) = W₂ σ(W₁x + b₁) + b₂ with a smooth σ (tanh or softplus).

    w = [W₁ (h, p) row-major, b₁ (h), W₂ (K, h) row-major, b₂ (K)]; d = h(p + 1) + K(h + 1).
    """

    def __init__(self, n_features, hidden, n_outputs=1, *, activation="tanh", loss="squared"):
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

    def outputs(self, w, X):
        w, X = self._check(w, X)
        return self._forward(w, X)[0]

    def jacobian(self, w, X):
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

    def vjp(self, w, X, V):
        w, X = self._check(w, X)
        _, _, W2, _ = self._unpack(w)
        _, A, dA = self._forward(w, X)
        D = (V @ W2) * dA  # (n, h)
        return np.concatenate([(D.T @ X).ravel(), D.sum(axis=0), (V.T @ A).ravel(),
                               V.sum(axis=0)])

    def init(self, seed=0):
        rng = np.random.default_rng(seed)
        p, h, K = self.n_features, self.hidden, self.n_outputs
        W1 = rng.standard_normal((h, p)) / math.sqrt(p)
        W2 = rng.standard_normal((K, h)) / math.sqrt(h)
        return np.concatenate([W1.ravel(), np.zeros(h), W2.ravel(), np.zeros(K)])

    def __repr__(self):
        return (f"MLP(n_features={self.n_features}, hidden={self.hidden}, "
                f"n_outputs={self.n_outputs}, activation={self.activation!r}, "
                f"loss={self.loss!r}, n_params={self.n_params})")


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


def _loss_values(f, Y, loss):
    if loss == "squared":
        return 0.5 * np.sum((f - Y) ** 2, axis=1)
    if loss == "logistic":
        return np.logaddexp(0.0, -Y[:, 0] * f[:, 0])
    return -np.sum(Y * log_softmax(f, axis=1), axis=1)


def fitted_fraction(model, w, X, y, loss=None) -> float:
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


def loss_gradients(model, w, X, y, loss=None) -> np.ndarray:
    """Per-sample loss gradients ∇_w ℓ(f(x_i; w), y_i), shape (n, d) (data loss, no decay)."""
    _check_model(model)
    loss = _resolve_loss(model, loss)
    X, Y = _check_data(model, X, y, loss)
    J = model.jacobian(w, X)
    return np.einsum("nkd,nk->nd", J, _output_gradient(model.outputs(w, X), Y, loss))


# ============================================================================ training
@dataclass(frozen=True)
class TrainResult:
    """Outcome of :func:`train`.

    ``w`` (d,) the parameters; ``objective`` mean data loss + λ‖w‖²/2 at w; ``data_loss`` mean
    data loss; ``grad_norm`` ‖(1/n)Σ∇ℓ_i(w) + λw‖ (full batch); ``tol``; ``converged``
    (grad_norm ≤ tol); ``n_iter`` L-BFGS iterations; ``polish_steps`` Newton steps taken after
    L-BFGS; ``message`` from the optimiser; ``weight_decay`` λ; ``separated`` (classification
    only, else None): every training sample is classified with its label at w — with λ = 0 the
    loss then has no finite minimiser; ``note``: plain-language caveats (empty when none).
    """

    w: np.ndarray = field(repr=False)
    objective: float
    data_loss: float
    grad_norm: float
    tol: float
    converged: bool
    n_iter: int
    polish_steps: int
    message: str
    weight_decay: float
    separated: bool | None
    note: str = ""


def _fd_hessian(grad, w, h=1e-5):
    d = w.size
    H = np.empty((d, d))
    for j in range(d):
        e = np.zeros(d)
        e[j] = h * max(1.0, abs(w[j]))
        H[:, j] = (grad(w + e) - grad(w - e)) / (2 * e[j])
    return 0.5 * (H + H.T)


def train(model, X, y, loss=None, *, weight_decay=0.0, seed=0, w0=None, tol=1e-6,
          maxiter=5000, polish=5) -> TrainResult:
    """Full-batch L-BFGS to a verified minimum of (1/n)Σ ℓ_i(w) + (λ/2)‖w‖² (λ = weight_decay).

    Starts from ``w0`` or ``model.init(seed)``. After L-BFGS (``scipy.optimize.minimize``,
    ``method="L-BFGS-B"``) up to ``polish`` Newton steps with a finite-difference Hessian of the
    analytic gradient (d ≤ a few hundred) refine w while they reduce the gradient norm. The
    result *reports* the final full-batch gradient norm and whether it is ≤ ``tol``; it never
    raises on non-convergence.

    Logistic/softmax on separable data with λ = 0 have their infimum at infinity: the run stops
    where the gradient norm falls below the tolerances, ``separated`` is True and ``note`` says
    that w is a finite stopping point, not a minimiser (use ``weight_decay > 0`` or label noise).
    """
    from scipy.optimize import minimize

    _check_model(model)
    loss = _resolve_loss(model, loss)
    X, Y = _check_data(model, X, y, loss)
    lam = check_positive(weight_decay, "weight_decay", allow_zero=True)
    tol = check_positive(tol, "tol")
    maxiter = check_int(maxiter, "maxiter", minimum=1)
    polish = check_int(polish, "polish", minimum=0)
    if w0 is None:
        w = model.init(seed)
    else:
        w = check_finite_array(w0, "w0", ndim=1)
        if w.shape != (model.n_params,):
            raise ValueError(f"w0 must have shape ({model.n_params},), got {w.shape}")

    def fun(v):
        val, g = _mean_loss_and_grad(model, v, X, Y, loss)
        return val + 0.5 * lam * float(v @ v), g + lam * v

    def grad(v):
        return fun(v)[1]

    res = minimize(fun, w, jac=True, method="L-BFGS-B",
                   options={"maxiter": maxiter, "gtol": tol * 1e-3, "ftol": 1e-15,
                            "maxcor": 30, "maxls": 50})
    w = np.asarray(res.x, float)
    gnorm = float(np.linalg.norm(grad(w)))
    steps = 0
    for _ in range(polish):
        if gnorm <= tol * 1e-3:
            break
        H = _fd_hessian(grad, w)
        step = np.linalg.lstsq(H, -grad(w), rcond=1e-12)[0]
        w_new = w + step
        g_new = float(np.linalg.norm(grad(w_new)))
        if not np.isfinite(g_new) or g_new >= gnorm:
            break
        w, gnorm, steps = w_new, g_new, steps + 1
    data_loss, _ = _mean_loss_and_grad(model, w, X, Y, loss)
    separated = None
    notes = []
    if loss in ("logistic", "softmax"):
        f = model.outputs(w, X)
        if loss == "logistic":
            separated = bool(np.all(Y[:, 0] * f[:, 0] > 0))
        else:
            separated = bool(np.all(Y[np.arange(len(f)), np.argmax(f, axis=1)] == Y.max(axis=1)))
        if separated and lam == 0.0:
            notes.append(
                "the training data are separated at w and weight_decay = 0: the loss has no "
                "finite minimiser, w is where the gradient norm fell below the tolerance and "
                "the curvature keeps shrinking along the separating direction; use "
                "weight_decay > 0 or label noise for a genuine minimum")
    converged = gnorm <= tol
    if not converged:
        notes.append(f"gradient norm {gnorm:.3g} is above tol {tol:g}: w is not a verified "
                     "minimum")
    return TrainResult(w=w, objective=float(data_loss + 0.5 * lam * w @ w),
                       data_loss=float(data_loss), grad_norm=gnorm, tol=tol,
                       converged=bool(converged), n_iter=int(res.nit), polish_steps=steps,
                       message=str(res.message), weight_decay=lam, separated=separated,
                       note="; ".join(notes))


# ============================================================================ HessianSet
def hessian_set(model, w, X_retain, y_retain, X_forget=None, y_forget=None, loss=None):
    """The :class:`HessianSet` of ``model`` at ``w``: Gauss–Newton factors and loss gradients.

    Factors are rank one ((n, d) arrays) for a single output with squared or logistic loss,
    (n, d, K) for squared loss with K outputs and (n, d, K − 1) for softmax. Per-sample data-loss
    gradients are always attached (``retain_gradients``/``forget_gradients``): at a
    non-interpolating minimum they are the drift of THEORY §8; at an interpolating one they are
    ~0. Weight decay used in training is *not* represented (module docstring).
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
    return HessianSet.from_factors(FR, FF, retain_gradients=gR, forget_gradients=gF)


# ============================================================================ unlearning
def draw_indicators(rng, sampling, n, batch) -> np.ndarray:
    """Batch indicators/counts x (n,) for one draw of a sampling scheme (THEORY §2.1).

    ``bernoulli``: x_i ~ Bernoulli(B/n) i.i.d. (the batch mean divides by the nominal B);
    ``with_replacement``: counts of B i.i.d. uniform indices; ``without_replacement``: B distinct
    indices.
    """
    if sampling == "bernoulli":
        return (rng.random(n) < batch / n).astype(float)
    if sampling == "with_replacement":
        return np.bincount(rng.integers(0, n, size=batch), minlength=n).astype(float)
    if sampling == "without_replacement":
        x = np.zeros(n)
        x[rng.choice(n, size=batch, replace=False)] = 1.0
        return x
    raise ValueError(f"unknown sampling scheme {sampling!r}")


@dataclass(frozen=True)
class UnlearnResult:
    """Per-seed trajectories of :func:`unlearn`.

    ``distances`` (n_seeds, steps): ‖w_k − w*‖ for k = 1..steps (inf from the step where a run
    overflowed on; never NaN); ``start_norm`` ‖w_0 − w*‖; ``final_w`` (n_seeds, d) last finite
    iterate of each run; ``retain_loss`` / ``forget_loss`` (n_seeds,) mean data loss at the final
    iterate (inf after overflow); ``overflowed`` (n_seeds,) bool; ``seeds``; ``indicators``:
    with ``record=True``, per seed a dict {"retain": (steps, n_r), "forget": (steps, n_f)} of the
    batch indicators/counts drawn (only active sets), else None; ``note``.
    """

    distances: np.ndarray = field(repr=False)
    start_norm: float
    final_w: np.ndarray = field(repr=False)
    retain_loss: np.ndarray
    forget_loss: np.ndarray
    overflowed: np.ndarray
    seeds: tuple
    steps: int
    schedule: Schedule
    indicators: list | None = field(default=None, repr=False)
    note: str = ""

    def left(self, radius) -> np.ndarray:
        """Per seed: ‖w_k − w*‖ ≥ radius for some 1 ≤ k ≤ steps (the forecast's ball)."""
        radius = check_positive(radius, "radius")
        return np.any(self.distances >= radius, axis=1)

    def first_exit(self, radius) -> np.ndarray:
        """Per seed: the first step k with ‖w_k − w*‖ ≥ radius, or −1 when it never leaves."""
        radius = check_positive(radius, "radius")
        hit = self.distances >= radius
        return np.where(hit.any(axis=1), hit.argmax(axis=1) + 1, -1)

    def leave_fraction(self, radius) -> float:
        """Fraction of seeds that left the ball (compare ``ForecastResult.leave_probability``)."""
        return float(self.left(radius).mean())


def _seeds(seed):
    if isinstance(seed, (Integral, np.integer)) and not isinstance(seed, bool):
        return (check_int(int(seed), "seed", minimum=0),)
    try:
        seq = tuple(seed)
    except TypeError:
        raise TypeError(f"seed must be an int or a sequence of ints, got {type(seed).__name__}")
    if not seq:
        raise ValueError("seed must hold at least one seed")
    return tuple(check_int(int(s) if isinstance(s, np.integer) else s, "seed", minimum=0)
                 for s in seq)


def unlearn(model, w_star, X_retain, y_retain, X_forget=None, y_forget=None, loss=None, *,
            schedule, steps, seed=0, start=None, weight_decay=0.0, record=False) -> UnlearnResult:
    """Run the actual nonlinear unlearning update from w* (the object the theory linearises).

    One step, with ĝ_S(w) = (1/B_S) Σ_{i∈S} x_i ∇ℓ_i(w) (batch-mean data-loss gradient, divided
    by the *nominal* batch size, x the indicators/counts of THEORY §2.1):

    * ``"summed"``:      w ← w − η(1−α) ĝ_R(w) + ηα ĝ_F(w)
    * ``"alternating"``: w' = w − η(1−α) ĝ_R(w);  w ← w' + ηα ĝ_F(w')   (retain, then forget)
    * ``"sam"`` (α = 0): w ← w − η ĝ_R(w + (ρ/a) ∇L_R(w))  with the full-batch retain gradient

    Batches are drawn each step with exactly the schedule's ``sampling`` and batch sizes
    (``batch`` for retain, ``batch_forget`` for forget), independently for the two sets, retain
    first; a set with zero weight (α = 0: forget; α = 1: retain) is not drawn — the same active
    sets as :class:`rmt.Dynamics`. Linearised about w*, this is δ ↦ J δ + b of
    ``rmt.Dynamics(hessian_set(...), schedule).step(x)`` with the same indicators x (exactly so
    to first order for models linear in w; for the MLP the curvature is Gauss–Newton only).

    ``start``: perturbation δ_0 (d,) so w_0 = w* + δ_0 (None: δ_0 = 0, the drift moves it);
    ``seed``: an int or a sequence of ints, one trajectory per seed (numpy ``default_rng``);
    ``weight_decay``: adds λw to the retain gradient — dynamics the HessianSet does not model
    (module docstring), flagged in ``note``; ``record=True`` keeps the indicators drawn.

    **Escape protocol.** A run *leaves* the ball of radius R when ‖w_k − w*‖ ≥ R for some
    1 ≤ k ≤ ``steps`` (:meth:`UnlearnResult.left`); :func:`rmt.forecast` uses the same
    definition, so ``result.leave_fraction(R)`` is comparable with its ``leave_probability``.
    A run that overflows gets distance inf from that step on (it left every ball).
    """
    _check_model(model)
    loss = _resolve_loss(model, loss)
    if not isinstance(schedule, Schedule):
        raise TypeError(f"schedule must be a Schedule, got {type(schedule).__name__}")
    steps = check_int(steps, "steps", minimum=1)
    seeds = _seeds(seed)
    lam = check_positive(weight_decay, "weight_decay", allow_zero=True)
    w_star = check_finite_array(w_star, "w_star", ndim=1)
    d = model.n_params
    if w_star.shape != (d,):
        raise ValueError(f"w_star must have shape ({d},), got {w_star.shape}")
    XR, YR = _check_data(model, X_retain, y_retain, loss, "X_retain", "y_retain")
    if (X_forget is None) != (y_forget is None):
        raise ValueError("pass both X_forget and y_forget, or neither")
    XF = YF = None
    if X_forget is not None:
        XF, YF = _check_data(model, X_forget, y_forget, loss, "X_forget", "y_forget")
    sch = schedule
    use_r = sch.uses_retain
    use_f = sch.uses_forget and sch.schedule != "sam"
    nR = XR.shape[0]
    if use_r and sch.batch > nR:
        raise ValueError(f"schedule.batch must be <= the retain set size {nR}, got {sch.batch}")
    if use_f:
        if XF is None:
            raise ValueError(f"schedule.alpha={sch.alpha} > 0 needs X_forget and y_forget")
        if sch.batch_forget > XF.shape[0]:
            raise ValueError(f"the forget batch {sch.batch_forget} exceeds the forget set size "
                             f"{XF.shape[0]} (schedule.forget_batch)")
    if start is None:
        delta0 = np.zeros(d)
    else:
        delta0 = check_finite_array(start, "start", ndim=1)
        if delta0.shape != (d,):
            raise ValueError(f"start must have shape ({d},), got {delta0.shape}")
    sR, sF = sch.eta * (1.0 - sch.alpha), sch.eta * sch.alpha
    rho_a = sch.sam_rho / sch.sam_a

    def batch_grad(w, X, Y, x, B):
        idx = np.flatnonzero(x)
        if idx.size == 0:
            return np.zeros(d)
        return _mean_loss_and_grad(model, w, X[idx], Y[idx], loss, weights=x[idx] / B)[1]

    def full_loss(w, X, Y):
        if X is None:
            return float("nan")
        val = _mean_loss_and_grad(model, w, X, Y, loss)[0]
        return val if np.isfinite(val) else float("inf")

    D = np.full((len(seeds), steps), np.inf)
    final = np.empty((len(seeds), d))
    lossR = np.full(len(seeds), np.inf)
    lossF = np.full(len(seeds), np.inf if XF is not None else np.nan)
    over = np.zeros(len(seeds), dtype=bool)
    recs = [] if record else None
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        for s, sd in enumerate(seeds):
            rng = np.random.default_rng(sd)
            w = w_star + delta0
            rec = {}
            if record:
                if use_r:
                    rec["retain"] = np.zeros((steps, nR))
                if use_f:
                    rec["forget"] = np.zeros((steps, XF.shape[0]))
            for k in range(steps):
                xR = draw_indicators(rng, sch.sampling, nR, sch.batch) if use_r else None
                xF = (draw_indicators(rng, sch.sampling, XF.shape[0], sch.batch_forget)
                      if use_f else None)
                if record:
                    if use_r:
                        rec["retain"][k] = xR
                    if use_f:
                        rec["forget"][k] = xF
                if sch.schedule == "sam":
                    gfull = _mean_loss_and_grad(model, w, XR, YR, loss)[1] + lam * w
                    w_new = w - sR * (batch_grad(w + rho_a * gfull, XR, YR, xR, sch.batch)
                                      + lam * (w + rho_a * gfull))
                elif sch.schedule == "alternating":
                    w_new = w
                    if use_r:
                        w_new = w_new - sR * (batch_grad(w_new, XR, YR, xR, sch.batch)
                                              + lam * w_new)
                    if use_f and np.all(np.isfinite(w_new)):
                        w_new = w_new + sF * batch_grad(w_new, XF, YF, xF, sch.batch_forget)
                else:
                    step = np.zeros(d)
                    if use_r:
                        step -= sR * (batch_grad(w, XR, YR, xR, sch.batch) + lam * w)
                    if use_f:
                        step += sF * batch_grad(w, XF, YF, xF, sch.batch_forget)
                    w_new = w + step
                dist = float(np.linalg.norm(w_new - w_star))
                if not np.all(np.isfinite(w_new)) or not np.isfinite(dist):
                    over[s] = True
                    break  # D[s, k:] stays inf
                w = w_new
                D[s, k] = dist
            final[s] = w
            if not over[s]:
                lossR[s] = full_loss(w, XR, YR)
                if XF is not None:
                    lossF[s] = full_loss(w, XF, YF)
            if record:
                recs.append(rec)
    note = ""
    if lam > 0:
        note = ("weight_decay > 0 during unlearning adds a shared λI curvature that the "
                "HessianSet does not represent: the linear forecast does not model these runs")
    return UnlearnResult(distances=D, start_norm=float(np.linalg.norm(delta0)), final_w=final,
                         retain_loss=lossR, forget_loss=lossF, overflowed=over, seeds=seeds,
                         steps=steps, schedule=sch, indicators=recs, note=note)


# ============================================================================ digits data
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


def load_digits(*, classes=tuple(range(10)), n_components=None, test_fraction=0.25,
                max_train=None, flip=0, seed=0) -> DigitsData:
    """Multiclass digits: integer labels 0..K−1 (label j is digit ``classes[j]``).

    ``n_components``: PCA dimension (keeps d = (p + 1)·K small, e.g. 16 → d = 170 for 10 classes);
    ``max_train``: keep at most this many training samples; ``flip``: number of training labels
    changed to a random other class *before* training (``DigitsData.flipped``).
    """
    if len(set(classes)) < 2:
        raise ValueError("classes must hold at least two distinct digits")
    return _digits(classes, n_components, test_fraction, max_train, flip, seed, binary=False)


def load_digits_binary(pair=(3, 8), *, n_components=None, test_fraction=0.25, max_train=None,
                       flip=0, seed=0) -> DigitsData:
    """Two digits as a binary problem with labels ±1 (``pair[0]`` ↦ −1, ``pair[1]`` ↦ +1)."""
    if len(pair) != 2 or pair[0] == pair[1]:
        raise ValueError(f"pair must be two distinct digits, got {pair!r}")
    return _digits(pair, n_components, test_fraction, max_train, flip, seed, binary=True)


#: Forget-set selections of :func:`forget_set`.
FORGET_KINDS = ("typical", "hard", "relabelled")


def forget_set(kind, n_train, n_forget=None, *, seed=0, model=None, w=None, X=None, y=None,
               loss=None, flipped=None) -> tuple[np.ndarray, np.ndarray]:
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
