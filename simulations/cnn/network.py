"""The two-layer ReLU CNN of contract §6: weights, per-sample losses, GD training, curvature.

The network itself — f, its exact per-sample gradients and the batch gradient — is the
:mod:`rmt.models` model :class:`rmt.models.ReLUCNN` (:mod:`rmt.models.cnn`, re-exported here:
:func:`forward`, :func:`per_sample_gradients`, :func:`batch_loss_gradient`); this module keeps
the weights W of shape (2, m, d) with their init scale (:class:`CNN`), the scalar losses, the
full-batch gradient-descent trainer of the experiments and the per-sample Gauss–Newton
HessianSet.

Because f is piecewise *linear* in W (the second layer is fixed), ∇²_W f = 0 almost everywhere.
Hence the per-sample loss Hessian is exactly ∇²ℓ_i = ℓ''(f_i, y_i) g_i g_iᵀ (g_i = ∇_W f(x_i)):
the Gauss–Newton term is the whole Hessian, and the per-sample curvature is rank one with factor
√ℓ''_i · g_i. The curvature weights are ℓ'' = 1 for the squared loss ½(f − y)² and
ℓ''(y f) = s(yf) s(−yf) (s the logistic sigmoid) for the logistic loss log(1 + e^{−yf}).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rmt import HessianSet
from rmt.models.cnn import ReLUCNN, batch_loss_gradient, forward, per_sample_gradients
from rmt.threads import single_blas_thread
from rmt.validation import check_choice, check_int, check_positive

from .data import SignalNoiseData

__all__ = [
    "CNN",
    "init_cnn",
    "forward",
    "per_sample_gradients",
    "loss_terms",
    "batch_loss_gradient",
    "TrainResult",
    "train",
    "gauss_newton_hessians",
    "LOSSES",
]

LOSSES = ("squared", "logistic")


@dataclass(frozen=True)
class CNN:
    """Weights W (2, m, d) of the two-layer ReLU CNN (contract §6) and the init scale σ₀.

    :meth:`model` is the architecture as an :mod:`rmt.models` model (:class:`rmt.models.ReLUCNN`),
    ``w`` the flat parameter vector W.ravel() it takes.
    """

    W: np.ndarray = field(repr=False)
    sigma0: float

    def model(self, loss: str = "squared") -> ReLUCNN:
        """The :class:`rmt.models.ReLUCNN` of this shape with ``loss``."""
        _, m, d = self.W.shape
        return ReLUCNN(d, m, sigma0=self.sigma0, loss=loss)

    @property
    def w(self) -> np.ndarray:
        return self.W.ravel()

    m = property(lambda self: int(self.W.shape[1]), doc="filters per class")
    d = property(lambda self: int(self.W.shape[2]), doc="patch dimension")
    n_params = property(lambda self: int(self.W.size), doc="2·m·d")


def init_cnn(d, m, *, sigma0=0.01, seed=None) -> CNN:
    """Draw w_{j,r} ~ N(0, σ₀² I_d) for j = ±1, r = 1..m (contract §6; :meth:`ReLUCNN.init`)."""
    net = ReLUCNN(d, m, sigma0=sigma0)
    return CNN(net.weights(net.init(seed)), net.sigma0)


def loss_terms(f, y, loss):
    """Per-sample loss ℓ_i, derivative ℓ'_i = ∂ℓ/∂f and curvature ℓ''_i = ∂²ℓ/∂f².

    squared: ℓ = ½(f − y)², ℓ' = f − y, ℓ'' = 1.
    logistic: ℓ = log(1 + e^{−yf}), ℓ' = −y s(−yf), ℓ'' = s(yf) s(−yf).
    """
    if loss == "squared":
        r = f - y
        return 0.5 * r * r, r, np.ones_like(f)
    z = y * f
    ell = np.logaddexp(0.0, -z)
    s_neg = np.exp(-np.logaddexp(0.0, z))  # s(−z), overflow-safe
    s_pos = np.exp(-np.logaddexp(0.0, -z))
    return ell, -y * s_neg, s_pos * s_neg


@dataclass(frozen=True)
class TrainResult:
    """Outcome of :func:`train`: the trained network, loss history, steps and convergence.

    ``converged`` is True when the mean training loss reached ``tol`` within ``max_steps``.
    """

    cnn: CNN
    loss: str
    losses: np.ndarray = field(repr=False)
    steps: int
    converged: bool
    tol: float
    final_loss: float


def _lr_for(W, X, loss, lr_scale):
    """Step size lr_scale / λ_max(H_GN), H_GN = (1/n) Σ_i ℓ''_max g_i g_iᵀ (ℓ''_max = 1, ¼)."""
    G = per_sample_gradients(W, X)
    K = G @ G.T / X.shape[0]
    lam = float(np.linalg.eigvalsh(K)[-1])
    curv = 1.0 if loss == "squared" else 0.25
    return lr_scale / max(lam * curv, 1e-300)


def train(cnn: CNN, data: SignalNoiseData, *, loss="squared", tol=None, max_steps=20000,
          lr=None, lr_scale=1.0, refresh=200) -> TrainResult:
    """Full-batch gradient descent on L(W) = (1/n) Σ_i ℓ(f(W, x_i), y_i) until L ≤ tol.

    Defaults: ``tol`` = 1e-8 (squared loss: exact interpolation, ∇ℓ_i(w*) = (f_i − y_i) g_i → 0)
    and 1e-2 (logistic loss: only approached as ‖W‖ → ∞). Unless ``lr`` is given the step size is
    ``lr_scale``/λ_max of the Gauss–Newton Hessian of L (curvature bound ℓ'' ≤ 1 resp. ¼),
    recomputed every ``refresh`` steps as the activation pattern changes — a stable GD step.
    """
    if not isinstance(cnn, CNN):
        raise TypeError(f"cnn must be a CNN, got {type(cnn).__name__}")
    if not isinstance(data, SignalNoiseData):
        raise TypeError(f"data must be a SignalNoiseData, got {type(data).__name__}")
    if data.d != cnn.d:
        raise ValueError(f"data dimension d={data.d} differs from the network's d={cnn.d}")
    check_choice(loss, "loss", LOSSES)
    tol = (1e-8 if loss == "squared" else 1e-2) if tol is None else check_positive(tol, "tol")
    max_steps = check_int(max_steps, "max_steps", minimum=0)
    lr_scale = check_positive(lr_scale, "lr_scale")
    refresh = check_int(refresh, "refresh", minimum=1)
    fixed_lr = None if lr is None else check_positive(lr, "lr")
    with single_blas_thread():
        return _train(cnn, data, loss, tol, max_steps, lr_scale, refresh, fixed_lr)


def _train(cnn, data, loss, tol, max_steps, lr_scale, refresh, fixed_lr):
    W = cnn.W.copy()
    X, y, n = data.X, data.y, data.n
    hist = []
    step_lr = fixed_lr
    converged = False
    k = 0
    for k in range(max_steps + 1):
        f = forward(W, X)
        ell, d1, _ = loss_terms(f, y, loss)
        L = float(ell.mean())
        hist.append(L)
        if not np.isfinite(L):
            raise FloatingPointError(f"training diverged at step {k} (loss {L}); lower lr")
        if L <= tol:
            converged = True
            break
        if k == max_steps:
            break
        if fixed_lr is None and k % refresh == 0:
            step_lr = _lr_for(W, X, loss, lr_scale)
        W -= step_lr * batch_loss_gradient(W, X, d1 / n)
    return TrainResult(CNN(W, cnn.sigma0), loss, np.array(hist), k, converged, tol, hist[-1])


def gauss_newton_hessians(cnn: CNN, data: SignalNoiseData, *, loss="squared", weights=True):
    """Per-sample curvature at W as a factor-backed :class:`rmt.HessianSet` (contract §1, §6).

    H_i = ℓ''_i g_i g_iᵀ with g_i = ∇_W f(W, x_i): the exact per-sample Hessian almost everywhere
    because f is piecewise linear in W (module docstring). Factors √ℓ''_i g_i of shape (n, 2md);
    no (2md)×(2md) matrix is formed. ``weights=False`` drops ℓ'' (pure gradient outer products,
    e.g. at initialisation). Retain/forget follow ``data.forget``; without a split every sample
    is a retain sample.
    """
    if not isinstance(cnn, CNN):
        raise TypeError(f"cnn must be a CNN, got {type(cnn).__name__}")
    if not isinstance(data, SignalNoiseData):
        raise TypeError(f"data must be a SignalNoiseData, got {type(data).__name__}")
    check_choice(loss, "loss", LOSSES)
    G = per_sample_gradients(cnn.W, data.X)
    if weights:
        _, _, d2 = loss_terms(forward(cnn.W, data.X), data.y, loss)
        G = G * np.sqrt(d2)[:, None]
    if data.n_forget == 0:
        return HessianSet.from_factors(G)
    return HessianSet.from_factors(G[data.retain], G[data.forget])
