"""scikit-learn estimators in: the HessianSet of a fitted estimator (``docs/models.md``).

Supported, as fitted (exact classes; subclasses and ``*CV`` variants are refused):

==========================  ==========================  =========================================
estimator                   per-sample loss ℓ_i (rmt)   penalty c_j of the mean-loss form
==========================  ==========================  =========================================
``LogisticRegression``      ``"logistic"`` (2 classes;   1/(C·n) on the coefficients, 0 on the
                            y = ±1, ``classes_[1]`` =    intercept (``liblinear``: 1/(C·n·s²),
                            +1) or ``"softmax"`` (≥ 3)   s = ``intercept_scaling``); 0 for
                                                        ``penalty=None`` / ``C=inf``
``Ridge``                   ``"squared"`` ½‖f − y‖²      α/n on the coefficients (α_k/n on target
                                                        k's row for an array α), 0 on intercepts
``LinearRegression``        ``"squared"``                0
``MLPClassifier``           ``"logistic"`` on the        α/m on every ``coefs_`` entry, 0 on
                            output logit (binary) or     ``intercepts_``; m = n for ``lbfgs``, the
                            ``"softmax"`` on the logits  batch size for ``sgd``/``adam``
``MLPRegressor``            ``"squared"`` ½‖f − y‖²      K·α/m (sklearn averages the squared error
                                                        over the K outputs too), as above
==========================  ==========================  =========================================

**The objective, in the package's mean-loss form** (``docs/models.md``, "Weight decay (L2)").
scikit-learn writes C·Σ_i loss_i + ½‖w‖² (logistic), ‖y − Xw − b‖² + α‖w‖² (ridge),
(1/n)Σ_i loss_i + (α/2n)Σ‖W‖² (MLP, with the squared error averaged over outputs too).
Multiplied by the positive constant that turns the data term into a mean of rmt's per-sample
losses (:data:`rmt.models.LOSSES`: ½‖f − y‖² for squared error), every one is

    L(w) = (1/n) Σ_i ℓ_i(w) + ½ Σ_j c_j w_j²,

with the per-coordinate penalty c_j of :func:`penalty` (table). The minimiser is the same, and
this is the scaling in which the per-sample Hessians H_i and gradients g_i of the HessianSet are
the theory's (contract §1, §8). **n is the number of rows of X**: pass exactly the training data
(after any preprocessing the estimator saw, e.g. the output of a pipeline's transformers), not a
subset. For ``sgd``/``adam`` MLPs sklearn penalises each minibatch gradient by αW/m (m the batch
size), so the fixed point of an epoch is the minimiser of L with α/m (exact when m divides n).

**Parameter order** (:func:`parameters`): ``coef_`` then ``intercept_``, per layer —

* linear models: ``coef_`` of shape (K, p) raveled row-major (binary logistic: K = 1; ``Ridge``
  and ``LinearRegression`` fitted on a 1-D y: K = 1), then ``intercept_`` (K,) when
  ``fit_intercept``;
* MLPs: for each layer l, ``coefs_[l]`` (n_in × n_out) raveled row-major, then
  ``intercepts_[l]`` (n_out,) — [W₀, b₀, W₁, b₁, …] (sklearn's own ``_pack`` puts all weights
  first; this module keeps each layer together).

**What goes into the HessianSet** (:func:`hessian_set`). Per-sample Gauss–Newton factors
F_i = J_iᵀ S_i from the output Jacobians J_i (written here for the linear models and by
back-propagation through the MLP; ``relu``, ``tanh``, ``logistic``, ``identity`` hidden
activations) and :func:`rmt.models.gauss_newton` — the one definition of a factor in the package.
For linear, logistic and softmax regression H_i = F_iF_iᵀ is the exact per-sample Hessian; for
MLPs it is the Gauss–Newton part. The penalty is shared curvature C = diag(c) (``decay=``):

* ``"exact"`` (default): C exactly — ``shared=λ`` (λI) when every coordinate has the same
  c_j = λ > 0 (no intercept), otherwise ``shared=Q`` with Q = [√c_j e_j]_{c_j>0} (d × #penalised),
  so QQᵀ = diag(c). Q has one column per penalised coordinate: cheap for linear models, d²-sized
  for MLPs (refused above 2²⁶ entries, with a pointer to ``"isotropic"``);
* ``"isotropic"``: C = λI with λ = max_j c_j — also on the intercepts, which the trained
  objective does not penalise (an approximation by λ on those directions, cheap at any d);
* ``"none"``: no shared curvature and *data* gradients, exactly like
  :func:`rmt.models.hessian_set` (the penalty dropped during unlearning).

With ``"exact"``/``"isotropic"`` the per-sample gradients are those of the regularised losses,
g_i + C_exact w* (the convention of :meth:`rmt.HessianSet.from_factors`): their mean is ∇L(w*) ≈ 0.

**Stationarity** (:mod:`rmt.stationarity`): every call checks that w* is a stationary point of L
— data gradient **and** penalty, ∇L = ḡ + c ⊙ w* — as s = ‖∇L‖ / (κ·‖w*‖), κ = λ_max(∇²L). The
report is ``hs.stationarity``; above the threshold a
:class:`~rmt.stationarity.NotStationaryWarning` names s. (On standardised breast-cancer data,
``LogisticRegression(C=1)``: the data gradient alone is 6.8e-3, s = 3.1e-4 at the default
``tol``, 4e-8 at ``tol=1e-12``, 0.12 with ``max_iter=3``.)

Not supported (refused with the reason): ``l1``/``elasticnet`` penalties (the penalty has no
curvature at the coordinates it zeroes, so w* is not a smooth stationary point and the
linearisation does not exist), ``class_weight``, ``positive=True``, multilabel
``MLPClassifier``, ``MLPRegressor(loss="poisson")``, sample weights (the estimator does not
record them).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np
import numpy.typing as npt

try:
    import sklearn
    from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
    from sklearn.neural_network import MLPClassifier, MLPRegressor
except ImportError as exc:  # pragma: no cover - scikit-learn is a dependency of rmt
    raise ImportError("rmt.adapters.sklearn needs scikit-learn (pip install scikit-learn)") \
        from exc

from ..api import analysis, at_least
from ..hessians import HessianSet
from ..models import gauss_newton
from ..stationarity import (STATIONARITY_THRESHOLD, StationarityReport, _deferred, _lambda_max,
                            _columns, _warn, _zero_roundoff, stationarity as _stationarity)
from ..validation import Constraint, Options

__all__ = ["SUPPORTED", "DECAY", "parameters", "penalty", "per_sample", "hessian_set",
           "stationarity"]

#: the estimator classes this adapter reads (exact types)
SUPPORTED = (LogisticRegression, Ridge, LinearRegression, MLPClassifier, MLPRegressor)
#: how the penalty enters the HessianSet (module docstring)
DECAY = ("exact", "isotropic", "none")
#: largest shared factor Q (entries) ``decay="exact"`` builds
MAX_SHARED_ENTRIES = 2**26
_CHUNK_ENTRIES = 2**23  # Jacobian entries per chunk of rows


# ---------------------------------------------------------------------- constraints
class _Estimator(Constraint):
    """A fitted estimator of one of the :data:`SUPPORTED` classes."""

    def accepts_type(self, value: Any) -> bool:
        return isinstance(value, sklearn.base.BaseEstimator)

    def check(self, value: Any, name: str) -> Any:
        if type(value) not in SUPPORTED:
            names = ", ".join(c.__name__ for c in SUPPORTED)
            hint = ""
            if isinstance(value, LogisticRegression):
                hint = (" (for LogisticRegressionCV refit LogisticRegression(C=cv.C_[0], ...) on "
                        "the training data)")
            raise TypeError(f"{name} must be a fitted scikit-learn {names}, got "
                            f"{type(value).__name__}{hint}")
        from sklearn.utils.validation import check_is_fitted

        try:
            check_is_fitted(value)
        except Exception as exc:  # NotFittedError
            raise ValueError(f"{name} must be fitted: {exc}") from None
        return value

    def __str__(self) -> str:
        return "a fitted " + " / ".join(c.__name__ for c in SUPPORTED)


class _Data(Constraint):
    """A numeric 2-D array or a scipy sparse matrix (rows = samples)."""

    def accepts_type(self, value: Any) -> bool:
        import scipy.sparse as sp

        return sp.issparse(value) or (not isinstance(value, (str, bytes)) and np.ndim(value) >= 1)

    def check(self, value: Any, name: str) -> np.ndarray:
        return _dense(value, name)

    def __str__(self) -> str:
        return "a 2-D numeric array or sparse matrix"


class _Labels(Constraint):
    """A 1-D or 2-D array of targets (class labels of any dtype, or real targets)."""

    def accepts_type(self, value: Any) -> bool:
        return not isinstance(value, (str, bytes)) and np.ndim(value) >= 1

    def check(self, value: Any, name: str) -> np.ndarray:
        a = np.asarray(value)
        if a.ndim not in (1, 2) or a.shape[0] < 1:
            raise ValueError(f"{name} must be a 1-D or 2-D array with one row per sample, got "
                             f"shape {a.shape}")
        return a

    def __str__(self) -> str:
        return "a 1-D or 2-D array of targets"


class _Rows(Constraint):
    """A 1-D array of row indices (integers) or a boolean mask over the rows."""

    def accepts_type(self, value: Any) -> bool:
        return not isinstance(value, (str, bytes)) and np.ndim(value) == 1

    def check(self, value: Any, name: str) -> np.ndarray:
        a = np.asarray(value)
        if a.ndim != 1:
            raise ValueError(f"{name} must be 1-D, got shape {a.shape}")
        if a.dtype != bool and not np.issubdtype(a.dtype, np.integer) and a.size:
            raise TypeError(f"{name} must hold integer row indices or be a boolean mask, got "
                            f"dtype {a.dtype}")
        return a

    def __str__(self) -> str:
        return "integer row indices or a boolean mask"


_EST = [_Estimator()]
_X = [_Data()]
_Y = [_Labels()]


def _dense(X: Any, name: str = "X") -> np.ndarray:
    import scipy.sparse as sp

    if sp.issparse(X):
        X = X.toarray()
    try:
        a = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be numeric: {exc}") from None
    if a.ndim != 2 or a.shape[0] < 1:
        raise ValueError(f"{name} must be a 2-D array (n_samples, n_features), got shape "
                         f"{a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or inf")
    return a


# ---------------------------------------------------------------------- reading the estimator
def _logistic_penalty(est: LogisticRegression) -> str | None:
    """The penalty LogisticRegression.fit used ("l2", "l1", "elasticnet" or None), with its rules
    (sklearn ≥ 1.8: ``penalty`` deprecated in favour of ``l1_ratio`` and ``C = inf``)."""
    pen = getattr(est, "penalty", "l2")
    l1r = getattr(est, "l1_ratio", None)
    if pen == "deprecated":
        if l1r is None or l1r == 0:
            pen = "l2"
        elif l1r == 1:
            pen = "l1"
        else:
            pen = "elasticnet"
        if est.C == np.inf:
            pen = None
    if pen == "elasticnet" and l1r == 0:
        pen = "l2"
    return pen


def _refuse(est: Any) -> None:
    """Refuse what the adapter cannot represent, with the reason."""
    name = type(est).__name__
    if isinstance(est, LogisticRegression):
        pen = _logistic_penalty(est)
        if pen in ("l1", "elasticnet"):
            raise ValueError(
                f"{name} with penalty={pen!r} is not supported: an L1 term has no curvature and "
                "no gradient at the coefficients it sets to zero, so the fit is not a smooth "
                "stationary point and the linearised unlearning step does not exist there; refit "
                "with an L2 penalty (l1_ratio=0) or none (C=np.inf)")
        if getattr(est, "class_weight", None) is not None:
            raise ValueError(f"{name} with class_weight is not supported: the trained objective "
                             "weights samples unequally, the HessianSet assumes equal weights")
    if getattr(est, "positive", False):
        raise ValueError(f"{name}(positive=True) is not supported: a constrained minimum is not a "
                         "stationary point of the objective")
    if isinstance(est, MLPRegressor) and getattr(est, "loss", "squared_error") != "squared_error":
        raise ValueError(f"{name}(loss={est.loss!r}) is not supported: only 'squared_error' "
                         "(rmt's 'squared' loss)")
    if isinstance(est, MLPClassifier):
        if est.out_activation_ == "logistic" and est.n_outputs_ > 1:
            raise ValueError("a multilabel MLPClassifier (independent logistic outputs) is not "
                             "supported: binary (one logit) and multiclass (softmax) are")
    if isinstance(est, (MLPClassifier, MLPRegressor)):
        if est.activation not in ("identity", "logistic", "tanh", "relu"):
            raise ValueError(f"{name}(activation={est.activation!r}) is not supported")


def _layers(est: Any) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
    """Weights and intercepts as float64 arrays, in the forward orientation f = a @ W + b:
    linear models one layer W = coef_ᵀ (p, K); MLPs their coefs_ (n_in, n_out)."""
    if isinstance(est, (MLPClassifier, MLPRegressor)):
        return ([np.asarray(W, dtype=np.float64) for W in est.coefs_],
                [np.asarray(b, dtype=np.float64) for b in est.intercepts_])
    coef = np.asarray(est.coef_, dtype=np.float64)
    coef = coef[None, :] if coef.ndim == 1 else coef  # (K, p)
    b = None
    if est.fit_intercept:
        b = np.atleast_1d(np.asarray(est.intercept_, dtype=np.float64))
        b = np.broadcast_to(b, (coef.shape[0],)).copy()
    return [coef.T], [b]


def _is_mlp(est: Any) -> bool:
    return isinstance(est, (MLPClassifier, MLPRegressor))


def _flat(est: Any) -> np.ndarray:
    Ws, bs = _layers(est)
    if not _is_mlp(est):  # coef_ (K, p) row-major = Wᵀ raveled, then intercept_
        parts = [Ws[0].T.ravel()] + ([] if bs[0] is None else [bs[0]])
        return np.concatenate(parts)
    out: list[np.ndarray] = []
    for W, b in zip(Ws, bs):
        out += [W.ravel(), np.asarray(b)]
    return np.concatenate(out)


def _loss(est: Any) -> str:
    """The rmt loss name of the estimator's per-sample loss (module docstring)."""
    if isinstance(est, LogisticRegression):
        return "logistic" if len(est.classes_) == 2 else "softmax"
    if isinstance(est, MLPClassifier):
        return "logistic" if est.out_activation_ == "logistic" else "softmax"
    return "squared"  # MLPRegressor's 1/K over outputs goes into the penalty instead


def _targets(est: Any, y: np.ndarray, n: int, K: int, loss: str) -> np.ndarray:
    """sklearn's targets → rmt's: ±1 (logistic), class indices (softmax), reals (squared)."""
    if y.shape[0] != n:
        raise ValueError(f"y must hold one target per row of X ({n}), got shape {y.shape}")
    if loss == "squared":
        Y = np.asarray(y, dtype=np.float64)
        Y = Y[:, None] if Y.ndim == 1 else Y
        if Y.shape[1] != K:
            raise ValueError(f"y must have {K} target column(s) for this estimator, got shape "
                             f"{y.shape}")
        if not np.all(np.isfinite(Y)):
            raise ValueError("y contains NaN or inf")
        return Y
    classes = np.asarray(est.classes_)
    if y.ndim != 1:
        raise ValueError(f"y must be a 1-D array of class labels, got shape {y.shape}")
    idx = np.searchsorted(classes, y)
    bad = (idx >= classes.size) | (classes[np.clip(idx, 0, classes.size - 1)] != y)
    if np.any(bad):
        raise ValueError(f"y holds labels the estimator was not fitted on: "
                         f"{np.unique(y[bad])[:5]} (classes_ = {classes[:10]})")
    return (2.0 * idx - 1.0) if loss == "logistic" else idx.astype(np.float64)


def _activation_derivative(a: np.ndarray, name: str) -> np.ndarray | float:
    """σ'(z) from the activation value a = σ(z), as sklearn's inplace_*_derivative."""
    if name == "identity":
        return 1.0
    if name == "logistic":
        return a * (1.0 - a)
    if name == "tanh":
        return 1.0 - a * a
    return (a > 0).astype(np.float64)  # relu


def _activate(z: np.ndarray, name: str) -> np.ndarray:
    if name == "identity":
        return z
    if name == "logistic":
        from scipy.special import expit

        return expit(z)
    if name == "tanh":
        return np.tanh(z)
    return np.maximum(z, 0.0)


def _outputs_jacobian(est: Any, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Outputs f (n, K) — logits, or predictions for identity outputs — and Jacobians
    J = ∂f/∂w (n, K, d) in the coordinates of :func:`parameters`."""
    Ws, bs = _layers(est)
    n = X.shape[0]
    if not _is_mlp(est):
        W, b = Ws[0], bs[0]
        p, K = W.shape
        f = X @ W + (0.0 if b is None else b)
        d = K * p + (0 if b is None else K)
        J = np.zeros((n, K, d))
        for c in range(K):  # coef_[c] occupies [c·p, (c+1)·p); intercept_[c] at K·p + c
            J[:, c, c * p:(c + 1) * p] = X
            if b is not None:
                J[:, c, K * p + c] = 1.0
        return f, J
    act = est.activation
    a = [X]
    for layer, (W, b) in enumerate(zip(Ws, bs)):
        z = a[-1] @ W + b
        a.append(z if layer == len(Ws) - 1 else _activate(z, act))
    f = a[-1]
    K = f.shape[1]
    delta = np.broadcast_to(np.eye(K), (n, K, K)).copy()  # ∂f/∂z_L
    blocks: list[np.ndarray] = []
    for layer in range(len(Ws) - 1, -1, -1):
        W = Ws[layer]
        gW = np.einsum("ni,nko->nkio", a[layer], delta).reshape(n, K, -1)
        blocks = [gW, delta] + blocks
        if layer > 0:
            delta = delta @ W.T
            if act != "identity":
                delta = delta * np.asarray(_activation_derivative(a[layer], act))[:, None, :]
    return f, np.concatenate(blocks, axis=2)


def _per_sample(est: Any, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Data factors (n, d, k) and data gradients (n, d) of sklearn's per-sample loss."""
    _refuse(est)
    n_in = est.n_features_in_
    if X.shape[1] != n_in:
        raise ValueError(f"X has {X.shape[1]} features, the estimator was fitted on {n_in}")
    loss = _loss(est)
    n = X.shape[0]
    d = _flat(est).size
    K = _layers(est)[0][-1].shape[1]
    Y = _targets(est, y, n, K, loss)
    step = max(1, _CHUNK_ENTRIES // max(1, K * d))
    Fs, gs = [], []
    for s in range(0, n, step):
        f, J = _outputs_jacobian(est, X[s:s + step])
        F, g = gauss_newton(J, f, Y[s:s + step], loss)
        Fs.append(F)
        gs.append(g)
    return np.concatenate(Fs), np.concatenate(gs)


def _batch_size(est: Any, n: int) -> int:
    """The minibatch size of an sgd/adam MLP fit on n rows (sklearn's rule)."""
    if est.batch_size == "auto":
        return min(200, n)
    return int(np.clip(est.batch_size, 1, n))


def _penalty(est: Any, n: int) -> np.ndarray:
    """Per-coordinate c_j of L = (1/n)Σℓ_i + ½Σ_j c_j w_j² (module docstring)."""
    Ws, bs = _layers(est)
    if isinstance(est, LogisticRegression):
        pen = _logistic_penalty(est)
        W, b = Ws[0], bs[0]
        lam = 0.0 if pen is None or est.C == np.inf else 1.0 / (est.C * n)
        c = [np.full(W.size, lam)]
        if b is not None:
            lam_b = 0.0
            if est.solver == "liblinear":  # the synthetic feature's weight b/s is penalised
                lam_b = lam / est.intercept_scaling**2
            c.append(np.full(b.size, lam_b))
        return np.concatenate(c)
    if isinstance(est, Ridge):
        W, b = Ws[0], bs[0]
        p, K = W.shape
        alpha = np.broadcast_to(np.asarray(est.alpha, dtype=np.float64).ravel(), (K,)) \
            if np.ndim(est.alpha) else np.full(K, float(est.alpha))
        c = [np.repeat(alpha / n, p)]  # coef_ (K, p) row-major: target k's row has α_k
        if b is not None:
            c.append(np.zeros(K))
        return np.concatenate(c)
    if isinstance(est, LinearRegression):
        return np.zeros(_flat(est).size)
    # sklearn: mean loss + α/(2m)·Σ‖W‖² per gradient evaluation over m rows — m = n for lbfgs,
    # the batch size for sgd/adam; MLPRegressor averages the squared error over its K outputs,
    # so rmt's ½‖f − y‖² (K times sklearn's) carries K times the penalty
    m = n if est.solver == "lbfgs" else _batch_size(est, n)
    K = est.n_outputs_ if isinstance(est, MLPRegressor) else 1
    lam = K * est.alpha / m
    out: list[np.ndarray] = []
    for W, b in zip(Ws, bs):
        out += [np.full(W.size, lam), np.zeros(np.asarray(b).size)]
    return np.concatenate(out)


# ---------------------------------------------------------------------- public API
@analysis({"estimator": _EST}, dynamics=False, blas=False)
def parameters(estimator: Any) -> np.ndarray:
    """w*: the fitted parameters as one float64 vector (d,), in the adapter's order (coef then
    intercept, per layer; module docstring). Every factor and gradient uses these coordinates."""
    return _flat(estimator)


@analysis({"estimator": _EST, "n_samples": at_least(1)}, dynamics=False, blas=False)
def penalty(estimator: Any, n_samples: int) -> np.ndarray:
    """c (d,): the per-coordinate penalty of the trained objective in mean-loss form,
    L(w) = (1/n)Σ_i ℓ_i(w) + ½Σ_j c_j w_j² with n = ``n_samples`` (the training-set size):
    1/(C·n) (logistic), α/n (ridge, MLP) on coefficients, 0 on intercepts (``liblinear``:
    1/(C·n·s²) on the intercept), 0 everywhere for linear regression and ``penalty=None``."""
    _refuse(estimator)
    return _penalty(estimator, int(n_samples))


@analysis({"estimator": _EST, "X": _X, "y": _Y}, dynamics=False)
def per_sample(estimator: Any, X: Any, y: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample Gauss–Newton factors (n, d, k) and *data* loss gradients (n, d) at the fitted
    parameters, for sklearn's per-sample loss (module docstring; k = 1 logistic, K − 1 softmax,
    K squared). No penalty: add c ⊙ w* (:func:`penalty`, :func:`parameters`) for the gradients of
    the regularised per-sample losses."""
    return _per_sample(estimator, _dense(X), np.asarray(y))


def _forget_rows(forget: Any, n: int) -> np.ndarray:
    a = np.asarray(forget)
    if a.dtype == bool:
        if a.shape != (n,):
            raise ValueError(f"a boolean forget mask must have one entry per row of X ({n}), got "
                             f"shape {a.shape}")
        a = np.flatnonzero(a)
    else:
        a = a.astype(np.intp)
        if a.size and (a.min() < 0 or a.max() >= n):
            raise ValueError(f"forget must index rows of X in [0, {n}), got values in "
                             f"[{a.min()}, {a.max()}]")
        if np.unique(a).size != a.size:
            raise ValueError("forget contains repeated indices")
    if a.size == 0:
        raise ValueError("forget selects no rows (pass forget=None for a retain-only set)")
    if a.size == n:
        raise ValueError("forget selects every row of X: nothing is left to retain")
    return np.sort(a)


def _report(est: Any, F: np.ndarray, g: np.ndarray, c: np.ndarray, w: np.ndarray,
            source: str) -> StationarityReport:
    """s = ‖ḡ + c⊙w*‖ / (κ‖w*‖), κ = λ_max((1/n)ΣF_iF_iᵀ + diag c)."""
    n = F.shape[0]
    grad = g.mean(axis=0) + c * w
    Phi = _columns(F) / math.sqrt(n)
    kappa = _lambda_max(Phi, c if np.any(c) else None, 0.0)
    rep = _stationarity(grad, kappa, float(np.linalg.norm(w)), threshold=STATIONARITY_THRESHOLD)
    return replace(rep, source=source)


@analysis({"estimator": _EST, "X": _X, "y": _Y}, dynamics=False)
def stationarity(estimator: Any, X: Any, y: npt.ArrayLike) -> StationarityReport:
    """The stationarity report of a fitted estimator on its training data (no warning):
    s = ‖∇L(w*)‖ / (κ·‖w*‖) with ∇L = (1/n)Σ_i ∇ℓ_i + c ⊙ w* (data **and** penalty) and
    κ = λ_max((1/n)Σ_i H_i + diag c) (:mod:`rmt.stationarity`)."""
    Xd = _dense(X)
    F, g = _per_sample(estimator, Xd, np.asarray(y))
    return _report(estimator, F, g, _penalty(estimator, Xd.shape[0]), _flat(estimator),
                   f"rmt.adapters.sklearn ({type(estimator).__name__})")


@analysis({"estimator": _EST, "X": _X, "y": _Y, "forget": [None, _Rows()],
           "decay": [Options(DECAY)]}, dynamics=False)
def hessian_set(estimator: Any, X: Any, y: npt.ArrayLike, forget: npt.ArrayLike | None = None,
                *, decay: str = "exact") -> HessianSet:
    """The :class:`rmt.HessianSet` of a fitted estimator on its training data (X, y).

    ``forget``: the rows of X that form the forget set — integer indices or a boolean mask; the
    retain set is every other row (in order). ``None``: a retain-only set of all rows. ``decay``:
    how the penalty enters (``"exact"``, ``"isotropic"``, ``"none"``; module docstring).
    Rank-one factors (logistic; squared with one target) are stored as (n, d), others as
    (n, d, k), like :func:`rmt.models.hessian_set`. Per-sample gradients are attached: those of
    the regularised losses g_i + c ⊙ w* (``"none"``: the data gradients g_i).

    The stationarity of the fit is checked (data + penalty; module docstring) and reported as
    ``hs.stationarity``, with a :class:`~rmt.stationarity.NotStationaryWarning` above the
    threshold. Per-sample gradients below round-off (‖g_i‖ ≤ τ(d)·G, G the data-gradient scale of
    :mod:`rmt.stationarity`) are stored as exact zeros, counted in ``hs.stationarity.zeroed``.
    Parameter coordinates: :func:`parameters`.
    """
    Xd = _dense(X)
    n = Xd.shape[0]
    F, g = _per_sample(estimator, Xd, np.asarray(y))
    c = _penalty(estimator, n)
    w = _flat(estimator)
    shared: float | np.ndarray | None = None
    grads = g
    if decay != "none" and np.any(c):
        grads = g + c * w
        pos = np.flatnonzero(c > 0)
        if decay == "isotropic" or (pos.size == c.size and np.all(c == c[0])):
            shared = float(c.max())
        else:
            if w.size * pos.size > MAX_SHARED_ENTRIES:
                raise ValueError(
                    f"decay='exact' needs a shared factor Q of {w.size} × {pos.size} entries "
                    f"(one column per penalised coordinate; limit {MAX_SHARED_ENTRIES}): pass "
                    "decay='isotropic' (λI on every coordinate, intercepts included) or "
                    "decay='none'")
            Q = np.zeros((w.size, pos.size))
            Q[pos, np.arange(pos.size)] = np.sqrt(c[pos])
            shared = Q
    Fs = F[:, :, 0] if F.shape[2] == 1 else F
    cleaned, zeroed, znote = _zero_roundoff([grads], [F], w)  # round-off → exactly 0
    grads = grads if cleaned[0] is None else cleaned[0]
    with _deferred():  # checked below, with w* and the penalty
        if forget is None:
            hs = HessianSet.from_factors(Fs, retain_gradients=grads, shared=shared)
        else:
            f_idx = _forget_rows(forget, n)
            keep = np.ones(n, dtype=bool)
            keep[f_idx] = False
            hs = HessianSet.from_factors(Fs[keep], Fs[f_idx], retain_gradients=grads[keep],
                                         forget_gradients=grads[f_idx], shared=shared)
    rep = _report(estimator, F, g, c, w, f"rmt.adapters.sklearn.hessian_set "
                                         f"({type(estimator).__name__})")
    if zeroed:
        rep = replace(rep, zeroed=zeroed, note="; ".join(x for x in (rep.note, znote) if x))
    hs.stationarity = rep
    _warn(rep)
    return hs

