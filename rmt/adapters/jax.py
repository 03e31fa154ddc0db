"""JAX models in: per-sample Gauss–Newton factors and loss gradients (``docs/models.md``).

Optional extra: ``pip install -e ".[jax]"``. Any JAX model given as a pure function
``apply_fn(params, x)`` of a parameter pytree and **one** example ``x`` works (Flax
``module.apply``, Haiku ``transformed.apply`` with ``rng=None`` bound, Equinox via
``eqx.partition``, plain functions).

For a per-sample loss ℓ_i(w) = ℓ(f(x_i; w), y_i) with outputs f ∈ R^K, the adapter computes the
per-sample output Jacobians J_i = ∂f(x_i; w)/∂w (K×d) with ``jax.vmap(jax.jacrev(f))`` over the
*flattened* parameter vector w = ``ravel_pytree(params)[0]`` and hands them to
:func:`rmt.models.gauss_newton`, which forms

* the Gauss–Newton factors F_i = J_iᵀ S_i, S_i S_iᵀ = ∂²ℓ/∂f² (the ``retain``/``forget`` input
  of :meth:`rmt.HessianSet.from_factors`), and
* the per-sample loss gradients g_i = J_iᵀ ∂ℓ/∂f (its ``*_gradients`` input).

So the loss curvature has exactly one definition in the package; this module only differentiates
the model. Loss names are those of :data:`rmt.models.LOSSES` (``"squared"``, ``"logistic"``,
``"softmax"``) with the same target conventions.

**Parameter order.** Coordinates of w follow :func:`jax.flatten_util.ravel_pytree`: leaves in
pytree order (dict keys *sorted*), each raveled row-major. Use :func:`flatten` to get w* in the
same coordinates (e.g. for :func:`rmt.models.unlearn` via :class:`JaxModel`).

**Precision.** Everything is computed in float64: parameters and inputs are cast to float64 and
the computation runs inside JAX's ``enable_x64`` context manager (``jax.enable_x64(True)``;
``jax.experimental.enable_x64()`` on JAX < 0.8), which switches 64-bit mode on for the duration of
the call only — the global ``jax_enable_x64`` flag of your program is left as it was. A model that
casts to float32 internally (an explicit ``dtype=jnp.float32`` layer) loses precision; the adapter
warns when the outputs are not float64. Float32 factors are not accurate enough for the
mean-square operator near ρ(T) = 1.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from numbers import Integral
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

try:
    import jax
    import jax.numpy as jnp
    from jax.flatten_util import ravel_pytree
except ImportError as exc:  # pragma: no cover - exercised by a test that hides jax
    raise ImportError(
        "rmt.adapters.jax needs JAX, which is an optional extra of rmt: install it with "
        "pip install -e \".[jax]\" (or pip install \"rmt[jax]\")"
    ) from exc

from ..hessians import HessianSet
from ._rows import assemble, split_rows
from ..models import LOSSES, Model, _check_targets, gauss_newton
from ..validation import check_choice, check_finite_array, check_int

__all__ = ["flatten", "per_sample", "hessian_set", "JaxModel"]


# ---------------------------------------------------------------------- float64, locally
def _x64():
    """Context manager that enables 64-bit JAX types for its duration only."""
    cm = getattr(jax, "enable_x64", None)  # JAX >= 0.8: a config State, usable as `with`
    if cm is not None:
        return cm(True)
    from jax.experimental import enable_x64  # pragma: no cover - JAX < 0.8

    return enable_x64()  # pragma: no cover


# ---------------------------------------------------------------------- validation
def _check_apply(apply_fn):
    if not callable(apply_fn):
        raise TypeError(f"apply_fn must be callable as apply_fn(params, x), got "
                        f"{type(apply_fn).__name__}")
    return apply_fn


def _check_params(params):
    """float64 copy of the parameter pytree (called inside the x64 context)."""
    leaves = jax.tree_util.tree_leaves(params)
    if not leaves:
        raise ValueError("params must be a pytree with at least one array leaf, got no leaves")
    for leaf in leaves:
        dt = np.asarray(leaf).dtype
        if not np.issubdtype(dt, np.floating):
            raise TypeError(f"params leaves must be floating-point arrays (the parameters "
                            f"being differentiated), got a leaf of dtype {dt}")
        if not np.all(np.isfinite(np.asarray(leaf))):
            raise ValueError("params contains NaN or inf")
    return jax.tree_util.tree_map(lambda a: jnp.asarray(a, dtype=jnp.float64), params)


def _check_X(X: ArrayLike, name: str = "X") -> np.ndarray:
    try:
        Xa = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a numeric array with one example per row: {exc}") \
            from None
    if Xa.ndim < 1 or Xa.shape[0] < 1:
        raise ValueError(f"{name} must hold at least one example along axis 0, got shape "
                         f"{Xa.shape}")
    if not np.all(np.isfinite(Xa)):
        raise ValueError(f"{name} contains NaN or inf")
    return Xa


def _check_chunk(chunk_size):
    if chunk_size is None:
        return None
    return check_int(chunk_size, "chunk_size", minimum=1)


def _flat_fn(apply_fn, unravel):
    def f(w, x):
        return jnp.reshape(apply_fn(unravel(w), x), (-1,))  # () or (K,) -> (K,)
    return f


def _output_dim(apply_fn, params, x0):
    """K from an abstract evaluation (no computation); rejects non-vector outputs."""
    out = jax.eval_shape(apply_fn, params, jnp.asarray(x0))
    shape = getattr(out, "shape", None)
    if shape is None:
        raise TypeError(f"apply_fn must return one array (the model outputs), got "
                        f"{type(out).__name__}")
    if len(shape) > 1:
        raise ValueError(
            f"apply_fn must map one example to a scalar or a 1-D vector of K outputs, got "
            f"outputs of shape {tuple(shape)} for an example of shape {np.shape(x0)}; for a "
            "batched apply function pass lambda p, x: apply(p, x[None])[0]")
    if not np.issubdtype(out.dtype, np.floating):
        raise TypeError(f"apply_fn must return floating-point outputs, got dtype {out.dtype}")
    if out.dtype != np.float64:
        warnings.warn(
            f"apply_fn returns {out.dtype} outputs although params and inputs are float64: the "
            "model casts to lower precision internally, so factors and gradients are only "
            f"{out.dtype}-accurate", UserWarning, stacklevel=3)
    return int(math.prod(shape)) if shape else 1


# ---------------------------------------------------------------------- public API
def flatten(params: Any) -> tuple[np.ndarray, Callable[[ArrayLike], Any]]:
    """``(w, unravel)``: the float64 flat parameter vector (numpy, (d,)) and its inverse.

    The coordinates of every factor and gradient this module returns are those of ``w``
    (:func:`jax.flatten_util.ravel_pytree` order); ``unravel(w)`` rebuilds the pytree with
    float64 leaves (also when called outside 64-bit mode).
    """
    with _x64():
        p = _check_params(params)
        flat, unravel = ravel_pytree(p)

    def unravel64(w: ArrayLike) -> Any:
        with _x64():
            return unravel(jnp.asarray(check_finite_array(w, "w", ndim=1)))

    return np.asarray(flat, dtype=np.float64), unravel64


def _per_sample(apply_fn, params, X, y, loss, chunk_size):
    """Validated inputs → (factors (n, d, k), gradients (n, d)); runs inside the x64 context."""
    p = _check_params(params)
    flat, unravel = ravel_pytree(p)
    K = _output_dim(apply_fn, p, X[0])
    Y = _check_targets(y, loss, X.shape[0], K, name="y")  # before any differentiation
    f = _flat_fn(apply_fn, unravel)
    outs = jax.jit(jax.vmap(f, in_axes=(None, 0)))
    jacs = jax.jit(jax.vmap(jax.jacrev(f), in_axes=(None, 0)))
    n = X.shape[0]
    step = n if chunk_size is None else chunk_size
    Fs, gs = [], []
    for s in range(0, n, step):
        xb = jnp.asarray(X[s:s + step])
        J = np.asarray(jacs(flat, xb), dtype=np.float64)  # (b, K, d)
        o = np.asarray(outs(flat, xb), dtype=np.float64)  # (b, K)
        F, g = gauss_newton(J, o, Y[s:s + step], loss)
        Fs.append(F)
        gs.append(g)
    return np.concatenate(Fs), np.concatenate(gs)


def per_sample(apply_fn: Callable[[Any, Any], Any], params: Any, X: ArrayLike, y: ArrayLike, *,
               loss: str, chunk_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample Gauss–Newton factors and loss gradients of a JAX model at ``params``.

    ``apply_fn(params, x)``: the model on **one** example x = ``X[i]``, returning a scalar or a
    (K,) vector of outputs (logits for ``"logistic"``/``"softmax"``); ``params``: a pytree of
    float arrays (the trained w*); ``X``: (n, …) examples; ``y``: targets as in
    :func:`rmt.models.gauss_newton` ((n,) or (n, K) for squared, ±1 for logistic, integer labels
    or probability rows for softmax); ``loss`` in :data:`rmt.models.LOSSES`; ``chunk_size``:
    differentiate this many examples at a time (bounds the (chunk, K, d) Jacobian in memory).

    Returns ``(factors, gradients)`` exactly as :func:`rmt.models.gauss_newton`: factors
    (n, d, k) with k = K (squared), 1 (logistic), K − 1 (softmax), gradients (n, d), in the
    coordinates of :func:`flatten`. Computed in float64 (module docstring).
    """
    _check_apply(apply_fn)
    check_choice(loss, "loss", LOSSES)
    chunk_size = _check_chunk(chunk_size)
    X = _check_X(X)
    with _x64():
        return _per_sample(apply_fn, params, X, y, loss, chunk_size)


def hessian_set(apply_fn: Callable[[Any, Any], Any], params: Any, X: ArrayLike, y: ArrayLike,
                retain: ArrayLike, forget: ArrayLike | None = None, *, loss: str,
                chunk_size: int | None = None,
                weight_decay: float | None = None) -> HessianSet:
    """The :class:`rmt.HessianSet` of a JAX model at ``params``, per-sample gradients attached.

    ``retain`` / ``forget``: disjoint 1-D integer index arrays into the rows of ``X`` (e.g. from
    :func:`rmt.models.forget_set`); ``forget=None`` for a retain-only set. Other arguments as in
    :func:`per_sample`. Rank-one factors (logistic, or squared with K = 1) are stored as (n, d)
    arrays, others as (n, d, k) — the same layout as :func:`rmt.models.hessian_set`, so the two
    paths give identical HessianSets for the same model, parameters and data.

    **Stationarity.** As in :func:`rmt.models.hessian_set`: ``params`` is checked to be a
    stationary point of the training objective over the rows ``retain`` ∪ ``forget`` (taken as
    the training set), allowing an inferred isotropic weight decay (:mod:`rmt.stationarity`);
    report ``hs.stationarity``, a :class:`~rmt.stationarity.NotStationaryWarning` above the
    threshold. Gradients below round-off are stored as exact zeros (counted in
    ``hs.stationarity.zeroed``; rule in :mod:`rmt.stationarity`).

    **Weight decay** (as in :func:`rmt.adapters.torch.hessian_set`): ``weight_decay=λ`` is the
    training objective (1/n)Σ_i ℓ_i + (λ/2)‖w‖² (optax ``add_decayed_weights`` before an SGD or
    Adam transform on the mean loss; :func:`rmt.models.train`'s ``weight_decay``): the set then
    carries the shared curvature λI and the regularised gradients g_i + λw*, and the
    stationarity check uses this penalty instead of inferring one. ``None`` (default): the
    penalty is unknown — data curvature and gradients, an inferred λ̂ allowed by the check.
    """
    _check_apply(apply_fn)
    if weight_decay is not None:
        if isinstance(weight_decay, bool) or not isinstance(weight_decay, (int, float, np.floating,
                                                                           np.integer)):
            raise TypeError(f"weight_decay must be None or a number λ ≥ 0, got "
                            f"{type(weight_decay).__name__}")
        weight_decay = float(weight_decay)
        if not (math.isfinite(weight_decay) and weight_decay >= 0.0):
            raise ValueError(f"weight_decay must be a finite number ≥ 0, got {weight_decay!r}")
    check_choice(loss, "loss", LOSSES)
    chunk_size = _check_chunk(chunk_size)
    X = _check_X(X)
    n = X.shape[0]
    yv = np.asarray(y)
    R, idx = split_rows(yv, n, retain, forget)
    with _x64():
        F, g = _per_sample(apply_fn, params, X[idx], yv[idx], loss, chunk_size)
    if F.shape[2] == 1:
        F = F[:, :, 0]
    w = flatten(params)[0]
    return assemble(F, g, w, R.size, forget is not None, weight_decay,
                    weight_decay if weight_decay else None, "rmt.adapters.jax.hessian_set")


class JaxModel(Model):
    """A JAX model as an :class:`rmt.models.Model`, for :func:`rmt.models.train`,
    :func:`rmt.models.unlearn`, :func:`rmt.models.hessian_set` and :func:`rmt.models.forget_set`.

    ``apply_fn(params, x)`` on one example (as in :func:`per_sample`); ``params`` fixes the
    pytree structure (its values are :meth:`init`'s w); ``input_shape``: the shape of one example
    (the numpy models take X of shape (n, prod(input_shape)) and rows are reshaped);
    ``loss`` in :data:`rmt.models.LOSSES`. Outputs, Jacobians and vector–Jacobian products are
    jit-compiled once per batch shape and computed in float64. Flat coordinates are those of
    :func:`flatten`.
    """

    def __init__(self, apply_fn: Callable[[Any, Any], Any], params: Any,
                 input_shape: int | Sequence[int], *, loss: str = "squared") -> None:
        self._apply = _check_apply(apply_fn)
        self.loss = check_choice(loss, "loss", LOSSES)
        if isinstance(input_shape, (int, Integral)):  # (int: for the type checker; int is Integral)
            input_shape = (input_shape,)
        try:
            shape = tuple(check_int(s, "input_shape", minimum=1) for s in input_shape)
        except TypeError:
            raise TypeError(f"input_shape must be an int or a tuple of ints, got "
                            f"{type(input_shape).__name__}") from None
        self.input_shape = shape
        self.n_features = int(math.prod(shape))
        with _x64():
            p = _check_params(params)
            flat, self._unravel = ravel_pytree(p)
            self.n_outputs = _output_dim(apply_fn, p, jnp.zeros(shape))
            f = _flat_fn(apply_fn, self._unravel)
            one = lambda w, x: f(w, jnp.reshape(x, shape))  # noqa: E731
            self._outs = jax.jit(jax.vmap(one, in_axes=(None, 0)))
            self._jac = jax.jit(jax.vmap(jax.jacrev(one), in_axes=(None, 0)))

            def vjp(w, X, V):
                return jax.vjp(lambda v: self._outs(v, X), w)[1](V)[0]

            self._vjp = jax.jit(vjp)
        self._w0 = np.asarray(flat, dtype=np.float64)
        self.n_params = int(self._w0.size)

    def outputs(self, w: ArrayLike, X: ArrayLike) -> np.ndarray:
        w, X = self._check(w, X)
        with _x64():
            return np.asarray(self._outs(jnp.asarray(w), jnp.asarray(X)), dtype=np.float64)

    def jacobian(self, w: ArrayLike, X: ArrayLike) -> np.ndarray:
        w, X = self._check(w, X)
        with _x64():
            return np.asarray(self._jac(jnp.asarray(w), jnp.asarray(X)), dtype=np.float64)

    def vjp(self, w: ArrayLike, X: ArrayLike, V: ArrayLike) -> np.ndarray:
        w, X = self._check(w, X)
        V = check_finite_array(V, "V", ndim=2)
        if V.shape != (X.shape[0], self.n_outputs):
            raise ValueError(f"V must have shape ({X.shape[0]}, {self.n_outputs}), got "
                             f"{V.shape}")
        with _x64():
            return np.asarray(self._vjp(jnp.asarray(w), jnp.asarray(X), jnp.asarray(V)),
                              dtype=np.float64)

    def init(self, seed: int = 0) -> np.ndarray:
        """The flat parameters given at construction (``seed`` is ignored: JAX models are
        initialised by their own framework)."""
        return self._w0.copy()

    def unravel(self, w: ArrayLike) -> Any:
        """The parameter pytree of a flat vector w (e.g. ``train(...).w``)."""
        with _x64():
            return self._unravel(jnp.asarray(check_finite_array(w, "w", ndim=1)))

    def __repr__(self):
        return (f"JaxModel(input_shape={self.input_shape}, n_outputs={self.n_outputs}, "
                f"n_params={self.n_params}, loss={self.loss!r})")
