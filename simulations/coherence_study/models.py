"""Models of the coherence study and their training to a documented minimum, cached on disk.

==========  =================================================================================
name        model (every one is an :class:`rmt.models.Model`: one implementation of training,
            the HessianSet and the nonlinear unlearning loop for all)
==========  =================================================================================
``linear``  logistic regression (``rmt.models.LogisticRegression``, logistic loss) on binary
            tasks; least squares (``rmt.models.LinearRegression``) on regression tasks
``mlp-s``   one-hidden-layer tanh MLP (``rmt.models.MLP``), squared loss on the ±1 / scalar
``mlp-m``   targets, the hidden width chosen so that d ≥ :data:`MLP_TARGET_D` (about 150,
``mlp-l``   1 500 and 10 000 parameters); d ≥ 10⁴ for ``mlp-l`` on every data set
``cnn``     a small CNN on the 8×8 digits images, written in JAX and brought in through
            :class:`rmt.adapters.jax.JaxModel`: 3×3 convolution with :data:`CNN_CHANNELS`
            channels (valid, 6×6), tanh, 2×2 average pooling (3×3), linear read-out; squared loss
            on ±1 targets (digits only)
==========  =================================================================================

**Training** (:func:`train_cached`): full-batch L-BFGS (:func:`rmt.models.train`) from the model's
seeded initialisation to a full-batch gradient norm ≤ :data:`TRAIN_TOL` (the documented minimum;
the reached norm is recorded with every unit whether or not it met the tolerance), Newton
polishing only for d ≤ :data:`POLISH_MAX_D` (its finite-difference Hessian costs d gradients).
BLAS runs on one thread (on this 2-core machine two threads made the MLP's small products ~10×
slower, and the L-BFGS path of a non-convex model depends on the thread count). The trained
parameters are cached per (data set, model, seed, protocol) in ``cache_dir`` under a file lock,
so the four forget sets of one seed share one training run and two workers never train the
same model twice.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from pathlib import Path

import numpy as np

from .data import TaskData

__all__ = ["MODELS", "MLP_TARGET_D", "TRAIN_TOL", "POLISH_MAX_D", "CNN_CHANNELS", "build_model",
           "check_model", "train_cached", "loss_of"]

MODELS = ("linear", "mlp-s", "mlp-m", "mlp-l", "cnn")
MLP_TARGET_D = {"mlp-s": 150, "mlp-m": 1500, "mlp-l": 10_000}
#: full-batch gradient norm of the documented minimum
TRAIN_TOL = 1e-6
#: Newton polishing (a finite-difference Hessian: d gradient evaluations) only up to this d
POLISH_MAX_D = 400
CNN_CHANNELS = 8


def check_model(name: str) -> str:
    if name not in MODELS:
        raise ValueError(f"model must be one of {', '.join(MODELS)}, got {name!r}")
    return name


def loss_of(model_name: str, data: TaskData) -> str:
    """The per-sample loss: logistic for the linear model on a binary task, squared otherwise."""
    return "logistic" if model_name == "linear" and data.task == "binary" else "squared"


def _cnn_apply(params, x):
    import jax.numpy as jnp
    from jax import lax

    img = jnp.reshape(x, (1, 1, 8, 8))
    z = lax.conv_general_dilated(img, params["conv"], (1, 1), "VALID")  # (1, C, 6, 6)
    a = jnp.tanh(z + params["bias"][None, :, None, None])[0]
    pooled = a.reshape(a.shape[0], 3, 2, 3, 2).mean(axis=(2, 4))  # (C, 3, 3)
    return jnp.dot(pooled.ravel(), params["head"]) + params["out"]


_CNN: dict = {}  # one JaxModel per process: its jit-compiled functions are reused by every unit


def _cnn_params(seed: int) -> dict:
    rng = np.random.default_rng([seed, 4])
    C = CNN_CHANNELS
    return {"conv": rng.standard_normal((C, 1, 3, 3)) / 3.0, "bias": np.zeros(C),
            "head": rng.standard_normal(C * 9) / math.sqrt(C * 9), "out": np.zeros(())}


def _cnn(seed: int):
    """(the process's CNN JaxModel, its seeded initial w in the model's flat coordinates)."""
    os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false "
                          "intra_op_parallelism_threads=1")
    from rmt.adapters.jax import JaxModel, flatten

    if "model" not in _CNN:
        _CNN["model"] = JaxModel(_cnn_apply, _cnn_params(0), 64, loss="squared")
    return _CNN["model"], flatten(_cnn_params(seed))[0]


def build_model(model_name: str, data: TaskData, seed: int):
    """(model, loss, X, w0) for ``model_name`` on ``data`` — X is the model's view of the features
    (the 8×8 pixels for the CNN), w0 the seeded initial parameters (None: ``model.init(seed)``).
    ValueError naming ``model`` for an unknown or unfit model."""
    from rmt import models as M

    check_model(model_name)
    loss = loss_of(model_name, data)
    p = data.X.shape[1]
    if model_name == "linear":
        model = M.LogisticRegression(p) if loss == "logistic" else M.LinearRegression(p)
        return model, loss, data.X, None
    if model_name == "cnn":
        if data.pixels is None:
            raise ValueError(f"model 'cnn' needs an image data set (digits); {data.name!r} has "
                             "no 8×8 images")
        model, w0 = _cnn(seed)
        return model, loss, data.pixels, w0
    hidden = math.ceil((MLP_TARGET_D[model_name] - 1) / (p + 2))  # d = h(p + 2) + 1
    return M.MLP(p, hidden, 1, activation="tanh", loss="squared"), loss, data.X, None


def _key(data: TaskData, model_name: str, seed: int, X: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in (X, data.y):
        h.update(np.ascontiguousarray(a).tobytes())
    h.update(json.dumps([model_name, seed, TRAIN_TOL, POLISH_MAX_D, CNN_CHANNELS,
                         MLP_TARGET_D]).encode())
    return h.hexdigest()[:16]


def _train(model, X, y, loss, seed, w0):
    from rmt import models as M

    t0 = time.perf_counter()
    tr = M.train(model, X, y, loss, seed=seed, w0=w0, tol=TRAIN_TOL, maxiter=20000,
                 polish=5 if model.n_params <= POLISH_MAX_D else 0)
    meta = dict(grad_norm=float(tr.grad_norm), converged=bool(tr.converged),
                n_iter=int(tr.n_iter), data_loss=float(tr.data_loss),
                separated=None if tr.separated is None else bool(tr.separated),
                train_seconds=time.perf_counter() - t0,
                fitted_train=float(M.fitted_fraction(model, tr.w, X, y, loss)))
    return np.asarray(tr.w, float), meta


def train_cached(model, model_name: str, data: TaskData, X: np.ndarray, loss: str, seed: int,
                 cache_dir: str | os.PathLike | None,
                 w0: np.ndarray | None = None) -> tuple[np.ndarray, dict]:
    """(w*, meta) of ``model`` trained on (X, data.y) from ``w0`` (None: ``model.init(seed)``)
    — from the cache when present.

    ``meta``: grad_norm, converged, n_iter, data_loss, separated (logistic), train_seconds,
    fitted_train (fraction of training samples fitted), cached (read from disk). Single BLAS
    thread (module docstring). ``cache_dir=None``: no cache.
    """
    from filelock import FileLock

    from rmt.threads import single_blas_thread

    if cache_dir is None:
        with single_blas_thread():
            w, meta = _train(model, X, data.y, loss, seed, w0)
        return w, {**meta, "cached": False}
    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"{data.name}-{model_name}-s{seed}-{_key(data, model_name, seed, X)}.npz"
    with FileLock(str(path) + ".lock"):
        if path.is_file():
            try:
                with np.load(path) as z:
                    w = np.asarray(z["w"], float)
                    meta = json.loads(str(z["meta"]))
                if w.shape == (model.n_params,):
                    return w, {**meta, "cached": True}
            except (OSError, ValueError, KeyError):
                pass  # unreadable: train again
        with single_blas_thread():
            w, meta = _train(model, X, data.y, loss, seed, w0)
        tmp = path.with_name(path.stem + ".tmp.npz")
        np.savez(tmp, w=w, meta=json.dumps(meta))
        os.replace(tmp, path)
    return w, {**meta, "cached": False}
