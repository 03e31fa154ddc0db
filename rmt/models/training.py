"""Training a model to a verified minimum: full-batch L-BFGS plus Newton polishing (:func:`train`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike

from ..validation import check_finite_array, check_int, check_positive
from ..api import NON_NEGATIVE, POSITIVE, analysis, at_least
from ..validation import Array
from .base import LOSS, MODEL, Model, _check_data, _check_model, _mean_loss_and_grad, _resolve_loss

__all__ = ["TrainResult", "train"]


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


# blas=False: training runs at the caller's BLAS thread count, as before the analysis contract.
# L-BFGS's path depends on the summation order, so the minimum found for a non-convex model (the
# tanh MLP of simulations.realdata) changes with the thread count (measured: ‖w*‖ 21.986 at the
# default threads vs 21.969 at one thread on the digits 3-vs-8 MLP).
@analysis({"model": MODEL, "X": [Array(ndim=2)], "y": [Array()], "loss": LOSS,
           "weight_decay": NON_NEGATIVE, "seed": at_least(0), "w0": [None, Array(ndim=1)],
           "tol": POSITIVE, "maxiter": at_least(1), "polish": at_least(0)}, dynamics=False,
          blas=False)
def train(model: Model, X: ArrayLike, y: ArrayLike, loss: str | None = None, *,
          weight_decay: float = 0.0, seed: int = 0, w0: ArrayLike | None = None,
          tol: float = 1e-6, maxiter: int = 5000, polish: int = 5) -> TrainResult:
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

