"""PyTorch models in: per-sample Gauss–Newton factors and loss gradients (``docs/models.md``).

Optional extra: ``pip install -e ".[torch]"`` (torch ≥ 2.2, for :mod:`torch.func`). Any
``torch.nn.Module`` whose ``forward`` maps a batch of examples (leading axis) to outputs of shape
(B,) or (B, K) works — ``nn.Sequential``, your own modules, modules with batch-norm or dropout
layers (evaluated in inference mode, below).

For a per-sample loss ℓ_i(w) = ℓ(f(x_i; w), y_i) with outputs f ∈ R^K, the adapter computes the
per-sample output Jacobians J_i = ∂f(x_i; w)/∂w (K×d) with
``torch.func.vmap(torch.func.jacrev(f))`` over the *flattened* trainable parameters w
(``functional_call`` of the module, one example at a time as a batch of one) and hands them to
:func:`rmt.models.gauss_newton`, which forms

* the Gauss–Newton factors F_i = J_iᵀ S_i, S_i S_iᵀ = ∂²ℓ/∂f² (the ``retain``/``forget`` input
  of :meth:`rmt.HessianSet.from_factors`), and
* the per-sample loss gradients g_i = J_iᵀ ∂ℓ/∂f (its ``*_gradients`` input).

So the loss curvature has exactly one definition in the package; this module only differentiates
the model, exactly as :mod:`rmt.adapters.jax` does.

**Loss names.** Those of :data:`rmt.models.LOSSES` (``"squared"`` ½‖f − y‖², ``"logistic"`` on
one logit with targets ±1, ``"softmax"`` on K logits with integer labels or probability rows),
plus one alias, :data:`LOSS_ALIASES`: ``"cross_entropy"`` = ``"softmax"`` (``nn.CrossEntropyLoss``
/ ``F.cross_entropy`` on logits is exactly rmt's softmax loss). Nothing else is mapped:
``"mse"`` is refused because ``nn.MSELoss`` is mean((f − y)²) over the K outputs = (2/K) × rmt's
``"squared"`` — a different scale of every factor, gradient and learning rate — and
``"bce"``/``"bce_with_logits"`` are refused because rmt's logistic targets are ±1, not 0/1; the
error says what to pass instead.

**Parameter order.** The coordinates of w are the parameters of ``module.named_parameters()``
that have ``requires_grad=True``, in that order (a module's own parameters, then each
submodule's, recursively, in registration order — ``0.weight, 0.bias, 2.weight, …`` for an
``nn.Sequential``; a parameter shared by several submodules — tied weights — appears once, under
its first name), each raveled row-major (an ``nn.Linear`` weight is (out, in)).
Frozen parameters (``requires_grad=False``) and buffers (e.g. batch-norm running statistics) are
constants held at their current values: they are not trained, so they are not coordinates of the
linearised unlearning step. :func:`flatten` gives w* in these coordinates and the inverse map.

**Inference mode, and your module is never touched.** The adapter differentiates a deep copy of
the module, cast to float64 and put in eval mode (dropout off, batch-norm using its running
statistics); the module you pass keeps its dtype, its mode and its values. A module (or any
submodule) in training mode is evaluated in eval mode all the same, with a :class:`UserWarning`
(call ``module.eval()`` first to silence it): the per-sample Hessian of a model whose outputs
depend on random dropout masks or on the other examples of a batch is not defined. Each example
is evaluated on its own, as a batch of one, so the module must treat examples independently
(every standard layer does in eval mode).

**Weight decay.** :func:`hessian_set` takes ``weight_decay=`` — the λ of the training objective
in the mean-loss form (1/n)Σ_i ℓ_i(w) + (λ/2)‖w‖² (``docs/models.md``, "Weight decay (L2)"): a
number (λ on every coordinate: shared curvature λI) or a mapping {parameter name: λ} (per
parameter, e.g. weights but not biases: shared factor Q = [√c_j e_j]). ``torch.optim.SGD`` /
``Adam(weight_decay=λ)`` on the *mean* of rmt's per-sample loss trains exactly this objective
(they add λw to the gradient); ``AdamW``'s decoupled decay is not an L2 term (``docs/models.md``).
``weight_decay=None`` (default) means the penalty is unknown: data gradients, no shared term, and
the stationarity check allows an inferred isotropic decay — the behaviour of the JAX adapter and
:func:`rmt.models.hessian_set`.

**Precision.** Everything is computed in float64: parameters, buffers and floating-point inputs
are cast to float64 (integer inputs — token ids for an ``nn.Embedding`` — are passed as int64). A
module that casts to float32 internally loses precision; the adapter warns when its outputs are
not float64. Float32 factors are not accurate enough for the mean-square operator near ρ(T) = 1.
Computation runs on the device of the module's parameters; the arrays returned are numpy.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from numbers import Integral, Real
from types import MappingProxyType
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

try:
    import torch
    from torch.func import functional_call, jacrev, vjp, vmap
except ImportError as exc:  # pragma: no cover - exercised by a test that hides torch
    raise ImportError(
        "rmt.adapters.torch needs PyTorch ≥ 2.2 (torch.func), which is an optional extra of rmt: "
        "install it with pip install -e \".[torch]\" (or pip install \"rmt[torch]\")"
    ) from exc

from ..hessians import HessianSet
from ._rows import assemble, split_rows
from ..models import LOSSES, Model, _check_targets, gauss_newton
from ..stationarity import _outside_level
from ..validation import check_finite_array, check_int, check_positive

__all__ = ["LOSS_ALIASES", "MAX_SHARED_ENTRIES", "flatten", "per_sample", "hessian_set",
           "TorchModel"]

#: torch names accepted for rmt's losses (exact equivalents only; module docstring)
LOSS_ALIASES: Mapping[str, str] = MappingProxyType({"cross_entropy": "softmax"})

#: torch names refused, with what to pass instead
_REFUSED = {
    "mse": ("nn.MSELoss is mean((f − y)²) over the K outputs, (2/K) × rmt's 'squared' loss "
            "½‖f − y‖²: pass loss='squared' (and multiply torch learning rates by 2/K, weight "
            "decay by K/2, to compare; docs/models.md)"),
    "bce": ("rmt's 'logistic' loss takes the logit (not a probability) and targets ±1: return "
            "the logit from the module and pass loss='logistic' with y = 2t − 1"),
    "bce_with_logits": ("nn.BCEWithLogitsLoss is rmt's 'logistic' loss with targets y = 2t − 1 "
                        "(±1, not 0/1): pass loss='logistic' and y = 2*t - 1"),
    "nll": ("nn.NLLLoss takes log-probabilities: return the logits from the module and pass "
            "loss='softmax' (or 'cross_entropy')"),
}
_REFUSED["binary_cross_entropy"] = _REFUSED["bce"]
_REFUSED["binary_cross_entropy_with_logits"] = _REFUSED["bce_with_logits"]

#: largest shared factor Q (entries) a per-parameter ``weight_decay`` mapping builds
MAX_SHARED_ENTRIES = 2**26


# ---------------------------------------------------------------------- validation
def _check_loss(loss: Any) -> str:
    """rmt's loss name for ``loss`` (an rmt name or an alias of :data:`LOSS_ALIASES`)."""
    if isinstance(loss, str):
        if loss in LOSSES:
            return loss
        if loss in LOSS_ALIASES:
            return LOSS_ALIASES[loss]
        if loss in _REFUSED:
            raise ValueError(f"loss={loss!r} is not accepted: {_REFUSED[loss]}")
    names = ", ".join(repr(x) for x in LOSSES)
    aliases = ", ".join(f"{a!r} = {b!r}" for a, b in LOSS_ALIASES.items())
    raise ValueError(f"loss must be one of {names} (or the alias {aliases}), got {loss!r}")


def _check_module(module: Any) -> torch.nn.Module:
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    return module


def _check_chunk(chunk_size: Any) -> int | None:
    if chunk_size is None:
        return None
    return check_int(chunk_size, "chunk_size", minimum=1)


def _numpy(a: Any) -> Any:
    """A torch tensor as a numpy array (detached, on the CPU); anything else unchanged."""
    if isinstance(a, torch.Tensor):
        return a.detach().cpu().numpy()
    return a


def _check_X(X: Any, name: str = "X") -> torch.Tensor:
    """A CPU tensor of examples along axis 0: float64, or int64 for integer input."""
    a = _numpy(X)
    try:
        arr = np.asarray(a)
        arr = arr.astype(np.int64) if arr.dtype.kind in "iu" else arr.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a numeric array or tensor with one example per row: "
                        f"{exc}") from None
    if arr.ndim < 1 or arr.shape[0] < 1:
        raise ValueError(f"{name} must hold at least one example along axis 0, got shape "
                         f"{arr.shape}")
    if arr.dtype == np.float64 and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf")
    return torch.as_tensor(arr)


# ---------------------------------------------------------------------- the float64 copy
class _Frozen:
    """An eval-mode float64 deep copy of a module and its trainable coordinates.

    ``names``/``shapes``/``sizes``: the trainable parameters (``requires_grad=True``) in
    ``named_parameters()`` order; ``w0``: their flat float64 values; ``f(w, x)``: the outputs
    (K,) of one example x at flat parameters w (a batch of one through ``functional_call``).
    """

    def __init__(self, module: Any) -> None:
        _check_module(module)
        trainable: list[str] = []
        for name, p in module.named_parameters():
            if isinstance(p, torch.nn.parameter.UninitializedParameter):
                raise ValueError(f"module has an uninitialized (lazy) parameter {name!r}: run "
                                 "one forward pass first")
            if not p.requires_grad:
                continue
            if not p.is_floating_point():
                raise TypeError(f"module parameter {name!r} must be floating-point, got "
                                f"{p.dtype}")
            if not bool(torch.isfinite(p.detach()).all()):
                raise ValueError(f"module parameter {name!r} contains NaN or inf")
            trainable.append(name)
        if not trainable:
            raise ValueError("module has no trainable parameters (requires_grad=True): nothing "
                             "to differentiate")
        devices = {t.device for t in module.parameters()} | {t.device for t in module.buffers()}
        if len(devices) > 1:
            raise ValueError(f"module must live on one device, got parameters/buffers on "
                             f"{sorted(map(str, devices))}")
        training = [n or type(module).__name__ for n, m in module.named_modules() if m.training]
        if training:
            shown = ", ".join(training[:4]) + (", …" if len(training) > 4 else "")
            warnings.warn(
                f"module is in training mode ({shown}): rmt.adapters.torch differentiates an "
                "eval-mode copy (dropout off, batch-norm running statistics held fixed); your "
                "module is left as it is. Call module.eval() first to silence this warning.",
                UserWarning, stacklevel=_outside_level())
        try:
            m = copy.deepcopy(module)
        except Exception as exc:
            raise TypeError(f"module must support copy.deepcopy (the adapter differentiates a "
                            f"float64 copy and leaves yours untouched): {exc}") from None
        m.eval()
        m.to(torch.float64)
        m.requires_grad_(False)
        self.module = m
        params = dict(m.named_parameters())
        self.names = trainable
        self.shapes = [tuple(params[n].shape) for n in trainable]
        self.sizes = [int(params[n].numel()) for n in trainable]
        self.w0 = torch.cat([params[n].detach().reshape(-1) for n in trainable])
        self.device = self.w0.device

    @property
    def d(self) -> int:
        return int(self.w0.numel())

    def params(self, w: torch.Tensor) -> dict[str, torch.Tensor]:
        return {n: t.view(s) for n, t, s in
                zip(self.names, torch.split(w, self.sizes), self.shapes)}

    def tensor(self, w: Any) -> torch.Tensor:
        """A flat float64 vector (d,) on the module's device from numpy/torch input."""
        a = check_finite_array(_numpy(w), "w", ndim=1)
        if a.shape != (self.d,):
            raise ValueError(f"w must have shape ({self.d},) (the trainable parameters of the "
                             f"module), got {a.shape}")
        return torch.as_tensor(a, device=self.device)

    def raw(self, w: torch.Tensor, x: torch.Tensor) -> Any:
        return functional_call(self.module, self.params(w), (x.unsqueeze(0),))

    def f(self, w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.raw(w, x).reshape(-1)  # (1, K), (1,), () or (K,) -> (K,)

    def output_dim(self, x0: torch.Tensor) -> int:
        """K from one example; refuses outputs that are not one per example."""
        with torch.no_grad():
            out = self.raw(self.w0, x0.to(self.device))
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"module must return one tensor (the model outputs), got "
                            f"{type(out).__name__}")
        shape = tuple(out.shape)
        if len(shape) > 2 or (len(shape) == 2 and shape[0] != 1):
            raise ValueError(
                f"module must map a batch of B examples to outputs of shape (B,) or (B, K); for "
                f"a batch of one example of shape {tuple(x0.shape)} it returned shape {shape} "
                "(flatten or select the outputs inside the module)")
        if not out.is_floating_point():
            raise TypeError(f"module must return floating-point outputs, got {out.dtype}")
        if out.dtype != torch.float64:
            warnings.warn(
                f"module returns {out.dtype} outputs although its parameters and inputs are "
                "float64: the model casts to lower precision internally, so factors and "
                f"gradients are only {out.dtype}-accurate", UserWarning,
                stacklevel=_outside_level())
        return int(math.prod(shape)) if shape else 1

    def jac_out(self, w: torch.Tensor, X: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Per-example Jacobians (b, K, d) and outputs (b, K) as float64 numpy arrays."""
        def f_aux(w: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            out = self.f(w, x)
            return out, out.detach()

        J, o = vmap(jacrev(f_aux, has_aux=True), in_dims=(None, 0))(w, X.to(self.device))
        return (J.detach().cpu().numpy().astype(np.float64, copy=False),
                o.cpu().numpy().astype(np.float64, copy=False))

    def outputs(self, w: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
        return vmap(self.f, in_dims=(None, 0))(w, X.to(self.device))


# ---------------------------------------------------------------------- public API
def flatten(module: torch.nn.Module) -> tuple[np.ndarray, Callable[[ArrayLike],
                                                                    dict[str, torch.Tensor]]]:
    """``(w, unflatten)``: the float64 flat trainable parameters (numpy, (d,)) and the inverse.

    The coordinates of every factor and gradient this module returns are those of ``w``: the
    ``requires_grad`` parameters of ``module.named_parameters()`` in order, each raveled
    row-major (module docstring). ``unflatten(w)`` returns ``{name: tensor}`` (float64, on the
    module's device); ``module.load_state_dict(unflatten(w), strict=False)`` writes w into a
    module (cast to its dtype), ``torch.func.functional_call(module, unflatten(w), (x,))``
    evaluates it without writing. The module is not modified.
    """
    fz = _Frozen(module)

    def unflatten(w: ArrayLike) -> dict[str, torch.Tensor]:
        return {k: v.clone() for k, v in fz.params(fz.tensor(w)).items()}

    return fz.w0.cpu().numpy().astype(np.float64), unflatten


def _per_sample(fz: _Frozen, X: torch.Tensor, y: Any, loss: str,
                chunk_size: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Validated inputs → (factors (n, d, k), data gradients (n, d))."""
    K = fz.output_dim(X[0])
    Y = _check_targets(_numpy(y), loss, X.shape[0], K, name="y")  # before any differentiation
    n = X.shape[0]
    step = n if chunk_size is None else chunk_size
    Fs, gs = [], []
    for s in range(0, n, step):
        J, o = fz.jac_out(fz.w0, X[s:s + step])  # (b, K, d), (b, K)
        F, g = gauss_newton(J, o, Y[s:s + step], loss)
        Fs.append(F)
        gs.append(g)
    return np.concatenate(Fs), np.concatenate(gs)


def per_sample(module: torch.nn.Module, X: ArrayLike | torch.Tensor, y: ArrayLike | torch.Tensor,
               *, loss: str, chunk_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample Gauss–Newton factors and *data* loss gradients of a torch module as it is.

    ``module``: an ``nn.Module`` mapping a batch (B, …) to outputs (B,) or (B, K) (logits for
    ``"logistic"``/``"softmax"``), at its trained parameters w*; ``X``: (n, …) examples (numpy
    or tensor; float, or integer ids); ``y``: targets as in :func:`rmt.models.gauss_newton`
    ((n,) or (n, K) for squared, ±1 for logistic, integer labels or probability rows for
    softmax); ``loss``: a name of :data:`rmt.models.LOSSES` or of :data:`LOSS_ALIASES`;
    ``chunk_size``: differentiate this many examples at a time (bounds the (chunk, K, d)
    Jacobian in memory).

    Returns ``(factors, gradients)`` exactly as :func:`rmt.models.gauss_newton`: factors
    (n, d, k) with k = K (squared), 1 (logistic), K − 1 (softmax), gradients (n, d) of the data
    loss (no penalty), in the coordinates of :func:`flatten`. Computed in float64 on an
    eval-mode copy of the module (module docstring).
    """
    loss = _check_loss(loss)
    chunk_size = _check_chunk(chunk_size)
    Xt = _check_X(X)
    fz = _Frozen(module)
    return _per_sample(fz, Xt, y, loss, chunk_size)


def _penalty(weight_decay: Any, fz: _Frozen) -> np.ndarray | None:
    """Per-coordinate c (d,) of (1/n)Σℓ_i + ½Σ_j c_j w_j², or None (penalty unknown)."""
    if weight_decay is None:
        return None
    if isinstance(weight_decay, Mapping):
        unknown = [k for k in weight_decay if k not in fz.names]
        if unknown:
            raise ValueError(
                f"weight_decay names {unknown[:5]}, which are not trainable parameters of the "
                f"module (names of module.named_parameters() with requires_grad=True: "
                f"{fz.names[:8]}{' …' if len(fz.names) > 8 else ''})")
        parts = [np.full(size, check_positive(weight_decay.get(name, 0.0),
                                              f"weight_decay[{name!r}]", allow_zero=True))
                 for name, size in zip(fz.names, fz.sizes)]
        return np.concatenate(parts)
    if isinstance(weight_decay, bool) or not isinstance(weight_decay, Real):
        raise TypeError(f"weight_decay must be None, a number λ ≥ 0 or a mapping {{parameter "
                        f"name: λ}}, got {type(weight_decay).__name__}")
    return np.full(fz.d, check_positive(weight_decay, "weight_decay", allow_zero=True))


def hessian_set(module: torch.nn.Module, X: ArrayLike | torch.Tensor,
                y: ArrayLike | torch.Tensor, retain: ArrayLike, forget: ArrayLike | None = None,
                *, loss: str, chunk_size: int | None = None,
                weight_decay: float | Mapping[str, float] | None = None) -> HessianSet:
    """The :class:`rmt.HessianSet` of a torch module at its parameters, per-sample gradients
    attached.

    ``retain`` / ``forget``: disjoint 1-D integer index arrays into the rows of ``X`` (e.g. from
    :func:`rmt.models.forget_set`); ``forget=None`` for a retain-only set. ``module``, ``X``,
    ``y``, ``loss``, ``chunk_size`` as in :func:`per_sample`. Rank-one factors (logistic, or
    squared with K = 1) are stored as (n, d) arrays, others as (n, d, k) — the layout of
    :func:`rmt.models.hessian_set` and :func:`rmt.adapters.jax.hessian_set`.

    ``weight_decay``: the training penalty in the mean-loss form (1/n)Σ_i ℓ_i + ½Σ_j c_j w_j²
    over the rows ``retain`` ∪ ``forget`` (module docstring) —

    * ``None`` (default): unknown. Data gradients, no shared curvature; the stationarity check
      allows an inferred isotropic decay λ̂ (``hs.stationarity.weight_decay``), as the JAX
      adapter does;
    * a number λ ≥ 0: c_j = λ on every coordinate, carried as ``shared=λ`` (λI; 0: no penalty,
      checked as such);
    * a mapping ``{parameter name: λ}`` (names of :func:`flatten`'s coordinates; missing names
      get 0): exact per-parameter decay, ``shared=Q`` with Q = [√c_j e_j] (one column per
      penalised coordinate; refused above :data:`MAX_SHARED_ENTRIES` entries — pass a number for
      the isotropic approximation), or ``shared=λ`` when every coordinate has the same λ.

    With a penalty the attached gradients are those of the regularised losses, g_i + c ⊙ w*
    (the convention of :meth:`rmt.HessianSet.from_factors`; their mean is ∇L(w*) ≈ 0).

    **Stationarity.** As in :func:`rmt.models.hessian_set` and the JAX adapter: w* is checked to
    be a stationary point of the training objective over the rows ``retain`` ∪ ``forget``
    (data + the given penalty; with ``weight_decay=None`` an inferred isotropic decay is
    allowed) and the report attached as ``hs.stationarity``, with a
    :class:`~rmt.stationarity.NotStationaryWarning` above the threshold. Data gradients below
    round-off are stored as exact zeros before the penalty term is added (counted in
    ``hs.stationarity.zeroed``; rule in :mod:`rmt.stationarity`).
    """
    loss = _check_loss(loss)
    chunk_size = _check_chunk(chunk_size)
    Xt = _check_X(X)
    n = Xt.shape[0]
    yv = np.asarray(_numpy(y))
    R, idx = split_rows(yv, n, _numpy(retain), None if forget is None else _numpy(forget))
    fz = _Frozen(module)
    c = _penalty(weight_decay, fz)  # before any differentiation
    w = fz.w0.cpu().numpy().astype(np.float64)
    shared: float | np.ndarray | None = None
    if c is not None and np.any(c):
        pos = np.flatnonzero(c > 0)
        if pos.size == c.size and np.all(c == c[0]):
            shared = float(c[0])
        else:
            if c.size * pos.size > MAX_SHARED_ENTRIES:
                raise ValueError(
                    f"weight_decay per parameter needs a shared factor Q of {c.size} × "
                    f"{pos.size} entries (one column per penalised coordinate; limit "
                    f"{MAX_SHARED_ENTRIES}): pass one number instead (λI on every coordinate, "
                    "an approximation on the unpenalised ones)")
            Q = np.zeros((c.size, pos.size))
            Q[pos, np.arange(pos.size)] = np.sqrt(c[pos])
            shared = Q
    F, g = _per_sample(fz, Xt[torch.as_tensor(idx)], yv[idx], loss, chunk_size)
    if F.shape[2] == 1:
        F = F[:, :, 0]
    return assemble(F, g, w, R.size, forget is not None, c, shared,
                    "rmt.adapters.torch.hessian_set")


class TorchModel(Model):
    """A torch module as an :class:`rmt.models.Model`, for :func:`rmt.models.train`,
    :func:`rmt.models.unlearn`, :func:`rmt.models.hessian_set` and :func:`rmt.models.forget_set`.

    ``module``: an ``nn.Module`` as in :func:`per_sample` (an eval-mode float64 copy is used;
    the module itself is never modified — write a trained w back with ``module.load_state_dict(
    model.unravel(w), strict=False)``); ``input_shape``: the shape of one example (the numpy
    models take X of shape (n, prod(input_shape)) and rows are reshaped; float inputs);
    ``loss``: a name of :data:`rmt.models.LOSSES` or :data:`LOSS_ALIASES` (stored as rmt's
    name). Outputs, Jacobians and vector–Jacobian products by :mod:`torch.func` in float64; flat
    coordinates are those of :func:`flatten`.
    """

    def __init__(self, module: torch.nn.Module, input_shape: int | Sequence[int], *,
                 loss: str = "squared") -> None:
        self.loss = _check_loss(loss)
        if isinstance(input_shape, (int, Integral)):  # (int: for the type checker)
            input_shape = (input_shape,)
        try:
            shape = tuple(check_int(s, "input_shape", minimum=1) for s in input_shape)
        except TypeError:
            raise TypeError(f"input_shape must be an int or a tuple of ints, got "
                            f"{type(input_shape).__name__}") from None
        self.input_shape = shape
        self.n_features = int(math.prod(shape))
        self._fz = _Frozen(module)
        self.n_outputs = self._fz.output_dim(torch.zeros(shape, dtype=torch.float64))
        self.n_params = self._fz.d

    def _tensors(self, w: ArrayLike, X: ArrayLike) -> tuple[torch.Tensor, torch.Tensor]:
        w, X = self._check(w, X)
        Xt = torch.as_tensor(X, device=self._fz.device).reshape((X.shape[0], *self.input_shape))
        return torch.as_tensor(w, device=self._fz.device), Xt

    def outputs(self, w: ArrayLike, X: ArrayLike) -> np.ndarray:
        wt, Xt = self._tensors(w, X)
        return self._fz.outputs(wt, Xt).detach().cpu().numpy().astype(np.float64, copy=False)

    def jacobian(self, w: ArrayLike, X: ArrayLike) -> np.ndarray:
        wt, Xt = self._tensors(w, X)
        return self._fz.jac_out(wt, Xt)[0]

    def vjp(self, w: ArrayLike, X: ArrayLike, V: ArrayLike) -> np.ndarray:
        wt, Xt = self._tensors(w, X)
        Va = check_finite_array(V, "V", ndim=2)
        if Va.shape != (Xt.shape[0], self.n_outputs):
            raise ValueError(f"V must have shape ({Xt.shape[0]}, {self.n_outputs}), got "
                             f"{Va.shape}")
        pull = vjp(lambda v: self._fz.outputs(v, Xt), wt)[1]  # (outputs, pullback)
        (gw,) = pull(torch.as_tensor(Va, device=self._fz.device))
        return gw.detach().cpu().numpy().astype(np.float64, copy=False)

    def init(self, seed: int = 0) -> np.ndarray:
        """The module's flat parameters at construction (``seed`` is ignored: torch modules are
        initialised by torch)."""
        return self._fz.w0.cpu().numpy().astype(np.float64)

    def unravel(self, w: ArrayLike) -> dict[str, torch.Tensor]:
        """``{name: tensor}`` (float64) of a flat vector w (e.g. ``train(...).w``)."""
        return {k: v.clone() for k, v in self._fz.params(self._fz.tensor(w)).items()}

    def __repr__(self) -> str:
        return (f"TorchModel({type(self._fz.module).__name__}, input_shape={self.input_shape}, "
                f"n_outputs={self.n_outputs}, n_params={self.n_params}, loss={self.loss!r})")
