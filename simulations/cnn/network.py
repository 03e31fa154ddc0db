"""The two-layer ReLU CNN of THEORY.md §6, its exact per-sample gradients and GD training.

f(W, x) = F₊₁(W₊₁, x) − F₋₁(W₋₁, x),  F_j = (1/m) Σ_r [σ(⟨w_{j,r}, x⁽¹⁾⟩) + σ(⟨w_{j,r}, x⁽²⁾⟩)],
σ = ReLU, w_{j,r} ~ N(0, σ₀² I) at initialisation. Weights are stored as W of shape (2, m, d)
with W[0] the j = +1 filters and W[1] the j = −1 filters; the flat parameter vector is W.ravel().

Per-sample gradient (THEORY §6), exact away from the measure-zero activation boundaries:
∂f(x_i)/∂w_{j,r} = (j/m) [1{⟨w_{j,r}, x_i⁽¹⁾⟩>0} x_i⁽¹⁾ + 1{⟨w_{j,r}, x_i⁽²⁾⟩>0} x_i⁽²⁾].

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
from rmt.validation import check_choice, check_int, check_positive, check_random_state

from ._threads import single_blas_thread
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
_SIGN = np.array([1.0, -1.0])


@dataclass(frozen=True)
class CNN:
    """Weights W (2, m, d) of the two-layer ReLU CNN (THEORY §6) and the init scale σ₀."""

    W: np.ndarray = field(repr=False)
    sigma0: float

    @property
    def m(self) -> int:
        return int(self.W.shape[1])

    @property
    def d(self) -> int:
        return int(self.W.shape[2])

    @property
    def n_params(self) -> int:
        return int(self.W.size)


def init_cnn(d, m, *, sigma0=0.01, seed=None) -> CNN:
    """Draw w_{j,r} ~ N(0, σ₀² I_d) for j = ±1, r = 1..m (THEORY §6)."""
    d = check_int(d, "d", minimum=2)
    m = check_int(m, "m", minimum=1)
    sigma0 = check_positive(sigma0, "sigma0")
    rng = check_random_state(seed)
    return CNN(sigma0 * rng.standard_normal((2, m, d)), sigma0)


def _pre(W, X):
    """Pre-activations ⟨w_{j,r}, x_i⁽ᵖ⁾⟩ with shape (n, 2 patches, 2m filters)."""
    two, m, d = W.shape
    n, p, _ = X.shape
    return (X.reshape(n * p, d) @ W.reshape(two * m, d).T).reshape(n, p, two * m)


def _signs(m):
    return np.repeat(_SIGN, m)  # sign j of each of the 2m filters, in W.reshape order


def forward(W, X) -> np.ndarray:
    """f(W, x_i) for every sample, shape (n,)."""
    m = W.shape[1]
    pre = _pre(W, X)
    return (np.maximum(pre, 0.0).sum(axis=1) @ _signs(m)) / m


def per_sample_gradients(W, X) -> np.ndarray:
    """Exact g_i = ∇_W f(W, x_i) as an (n, 2·m·d) array (THEORY §6 formula)."""
    two, m, d = W.shape
    act = (_pre(W, X) > 0).astype(float)  # (n, 2, 2m)
    G = np.matmul(np.swapaxes(act, 1, 2), X) * (_signs(m) / m)[None, :, None]
    return G.reshape(X.shape[0], two * m * d)


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


def batch_loss_gradient(W, X, coef) -> np.ndarray:
    """Σ_i coef_i ∇_W f(W, x_i) as a (2, m, d) array, without forming per-sample gradients."""
    two, m, d = W.shape
    n, p, _ = X.shape
    act = (_pre(W, X) > 0) * np.asarray(coef, dtype=float)[:, None, None]
    g = (act.reshape(n * p, two * m).T @ X.reshape(n * p, d)) * (_signs(m) / m)[:, None]
    return g.reshape(two, m, d)


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
    """Per-sample curvature at W as a factor-backed :class:`rmt.HessianSet` (THEORY §1, §6).

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
