"""rmt.adapters.torch against independent oracles: the numpy reference models of rmt.models
(hand-written Jacobians), a closed form for logistic regression, the JAX adapter, central finite
differences of plain forward passes, and scikit-learn's fitted objective (weight decay on the
coefficients only) — float64, ~1e-12 where the oracle is exact."""

import importlib
import subprocess
import sys
import warnings

import jax.numpy as jnp
import numpy as np
import pytest
import torch
from scipy.special import expit
from torch import nn

import rmt
from rmt import models as M
from rmt.adapters import jax as rj
from rmt.adapters import torch as rt
from rmt.stationarity import NotStationaryWarning

TOL = 1e-12
# most tests differentiate at random weights, which are not minima; the stationarity tests below
# assert the warning (pytest.warns) or its absence ("error") explicitly
pytestmark = pytest.mark.filterwarnings("ignore::rmt.stationarity.NotStationaryWarning")


def _rel(a, b):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape, (a.shape, b.shape)
    return np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300)


# torch twins of the reference models whose named_parameters() order gives exactly the flat w of
# rmt.models (LinearModel: [W (p, K) row-major, b]; MLP: [W1 (h, p), b1, W2 (K, h), b2] — the
# layout of nn.Linear(p, h), nn.Linear(h, K))
class Affine(nn.Module):
    def __init__(self, p, K, squeeze=False):
        super().__init__()
        self.W = nn.Parameter(torch.zeros(p, K))
        self.b = nn.Parameter(torch.zeros(K))
        self.squeeze = squeeze

    def forward(self, x):
        out = x @ self.W + self.b
        return out[:, 0] if self.squeeze else out  # (B,) for one logit, as users often write


def _set(module, w):
    """Write the flat vector w into the module's parameters, in named_parameters() order."""
    with torch.no_grad():
        torch.nn.utils.vector_to_parameters(torch.as_tensor(w, dtype=torch.float64),
                                            module.parameters())
    return module


def _affine(model, w, squeeze=False):
    return _set(Affine(model.n_features, model.n_outputs, squeeze).double().eval(), w)


def _mlp(model, w, act):
    h = model.hidden
    net = nn.Sequential(nn.Linear(model.n_features, h), nn.Tanh() if act == "tanh"
                        else nn.Softplus(), nn.Linear(h, model.n_outputs))
    return _set(net.double().eval(), w)


CASES = [
    # id, reference model, torch twin from (model, w), loss, K
    ("linreg-K2", lambda: M.LinearRegression(3, 2), _affine, "squared", 2),
    ("linreg-K1", lambda: M.LinearRegression(3, 1), _affine, "squared", 1),
    ("logreg", lambda: M.LogisticRegression(3), lambda m, w: _affine(m, w, True), "logistic", 1),
    ("softmax", lambda: M.SoftmaxRegression(3, 4), _affine, "softmax", 4),
    ("mlp-tanh-squared", lambda: M.MLP(3, 4, 2, activation="tanh"),
     lambda m, w: _mlp(m, w, "tanh"), "squared", 2),
    ("mlp-softplus-softmax", lambda: M.MLP(3, 4, 3, activation="softplus", loss="softmax"),
     lambda m, w: _mlp(m, w, "softplus"), "softmax", 3),
    ("mlp-tanh-logistic", lambda: M.MLP(3, 5, 1, loss="logistic"),
     lambda m, w: _mlp(m, w, "tanh"), "logistic", 1),
]
IDS = [c[0] for c in CASES]


def _data(rng, n, p, loss, K):
    X = rng.standard_normal((n, p))
    if loss == "squared":
        y = rng.standard_normal((n, K)) if K > 1 else rng.standard_normal(n)
    elif loss == "logistic":
        y = rng.choice([-1.0, 1.0], size=n)
    else:
        y = rng.integers(0, K, size=n)
    return X, y


@pytest.mark.parametrize("name,make,twin,loss,K", CASES, ids=IDS)
def test_factors_and_gradients_match_reference_models(name, make, twin, loss, K):
    rng = np.random.default_rng(0)
    model = make()
    w = rng.standard_normal(model.n_params) * 0.7
    X, y = _data(rng, 6, 3, loss, K)
    net = twin(model, w)
    F, g = rt.per_sample(net, X, y, loss=loss)
    F_ref, g_ref = M.gauss_newton(model.jacobian(w, X), model.outputs(w, X), y, loss)
    k = {"squared": K, "logistic": 1, "softmax": K - 1}[loss]
    assert F.shape == (6, model.n_params, k) and g.shape == (6, model.n_params)
    assert F.dtype == np.float64 and g.dtype == np.float64
    assert _rel(F, F_ref) < TOL
    assert _rel(g, g_ref) < TOL
    assert _rel(g, M.loss_gradients(model, w, X, y, loss)) < TOL  # no Gauss–Newton involved
    assert np.array_equal(rt.flatten(net)[0], w)  # the reference model's coordinates


def test_logistic_regression_hessian_set_is_the_closed_form():
    # H_i = σ(f)σ(−f) x̃x̃ᵀ, g_i = −y σ(−y f) x̃, x̃ = [x, 1]: exact for a model linear in w
    rng = np.random.default_rng(1)
    X, y = _data(rng, 10, 3, "logistic", 1)
    w = rng.standard_normal(4) * 0.8
    net = _set(nn.Linear(3, 1).double().eval(), w)  # weight (1, 3) then bias: [w, b]
    retain, forget = np.arange(7), np.array([7, 8, 9])
    hs = rt.hessian_set(net, X, y, retain, forget, loss="logistic")
    Xt = np.hstack([X, np.ones((10, 1))])
    f = Xt @ w
    H = (expit(f) * expit(-f))[:, None, None] * Xt[:, :, None] * Xt[:, None, :]
    g = (-y * expit(-y * f))[:, None] * Xt
    assert hs.kind == "rank1" and hs.dim == 4
    for which, rows in (("retain", retain), ("forget", forget)):
        assert _rel(hs.mean(which), H[rows].mean(axis=0)) < TOL
        assert _rel(hs.gradients(which), g[rows]) < TOL
    ref = M.hessian_set(M.LogisticRegression(3), w, X[retain], y[retain], X[forget], y[forget])
    sch = rmt.Schedule(eta=0.7, batch=3, alpha=0.2, forget_batch=2,
                       sampling="without_replacement")
    assert abs(rmt.mean_square(hs, sch).rate - rmt.mean_square(ref, sch).rate) < TOL


@pytest.mark.parametrize("loss,K", [("squared", 2), ("softmax", 3)])
def test_mlp_matches_the_jax_adapter_on_the_same_weights(loss, K):
    rng = np.random.default_rng(2)
    model = M.MLP(3, 5, K, activation="tanh", loss=loss)
    w = rng.standard_normal(model.n_params) * 0.7
    X, y = _data(rng, 9, 3, loss, K)

    def apply(params, x):
        W1, b1, W2, b2 = params
        return W2 @ jnp.tanh(W1 @ x + b1) + b2

    retain, forget = np.arange(6), np.array([6, 7, 8])
    hs_t = rt.hessian_set(_mlp(model, w, "tanh"), X, y, retain, forget, loss=loss)
    hs_j = rj.hessian_set(apply, tuple(model._unpack(w)), X, y, retain, forget, loss=loss)
    for which in ("retain", "forget"):
        assert _rel(hs_t.factors(which), hs_j.factors(which)) < TOL
        assert _rel(hs_t.gradients(which), hs_j.gradients(which)) < TOL
    assert abs(hs_t.stationarity.value - hs_j.stationarity.value) < 1e-10


class Deep(nn.Module):
    """A network with no reference twin: batch-norm (eval: running statistics), dropout, a frozen
    layer, a shared (tied) layer used twice and parameters registered out of alphabetical order."""

    def __init__(self):
        super().__init__()
        self.z_in = nn.Linear(3, 6)
        self.norm = nn.BatchNorm1d(6)
        self.frozen = nn.Linear(6, 6)
        self.frozen.requires_grad_(False)
        self.a_mid = nn.Linear(6, 6)
        self.drop = nn.Dropout(0.5)
        self.out = nn.Linear(6, 3)
        self.scale = nn.Parameter(torch.tensor([1.3]))

    def forward(self, x):
        h = torch.tanh(self.norm(self.z_in(x)))
        h = torch.tanh(self.frozen(h))
        h = torch.tanh(self.a_mid(self.drop(h)))
        h = torch.tanh(self.a_mid(h))  # the same layer again: its parameters count once
        return self.scale * self.out(h)


def _deep(seed=0):
    torch.manual_seed(seed)
    net = Deep()
    with torch.no_grad():
        net.norm.running_mean.uniform_(-0.5, 0.5)
        net.norm.running_var.uniform_(0.5, 2.0)
        net.norm.weight.uniform_(0.5, 1.5)
    return net.eval()


def test_deep_network_matches_finite_differences_of_plain_forward_passes():
    rng = np.random.default_rng(3)
    net = _deep()
    X, y = _data(rng, 5, 3, "softmax", 3)
    F, g = rt.per_sample(net, X, y, loss="softmax")
    w = rt.flatten(net)[0]
    ref = _deep().double()  # an independent copy, evaluated with ordinary forward passes
    trainable = [p for p in ref.parameters() if p.requires_grad]
    Xt = torch.as_tensor(X)

    def out(v):
        with torch.no_grad():
            torch.nn.utils.vector_to_parameters(torch.as_tensor(v), trainable)
            return ref(Xt).numpy()

    h = 1e-6
    J = np.stack([(out(w + h * e) - out(w - h * e)) / (2 * h) for e in np.eye(w.size)], axis=2)
    F_fd, g_fd = M.gauss_newton(J, out(w), y, "softmax")
    assert _rel(F, F_fd) < 1e-8 and _rel(g, g_fd) < 1e-8  # central differences: O(h²) + round-off


def test_parameter_order_frozen_tied_and_buffers():
    net = _deep()
    w, unflatten = rt.flatten(net)
    names = [n for n, p in net.named_parameters() if p.requires_grad]
    # a module's own parameters first, then its submodules' (registration order, recursively);
    # the frozen layer is skipped and the tied a_mid counts once
    assert names == ["scale", "z_in.weight", "z_in.bias", "norm.weight", "norm.bias",
                     "a_mid.weight", "a_mid.bias", "out.weight", "out.bias"]
    expected = np.concatenate([dict(net.named_parameters())[n].detach().numpy().ravel()
                               for n in names])
    assert w.dtype == np.float64 and np.array_equal(w, expected.astype(np.float64))
    parts = unflatten(w)
    assert list(parts) == names and parts["out.weight"].shape == (3, 6)
    assert parts["out.weight"].dtype == torch.float64
    # the Jacobian's columns follow the same order: "scale" (the first coordinate) multiplies
    # the outputs, so its column is out/scale
    rng = np.random.default_rng(4)
    X, y = _data(rng, 4, 3, "squared", 3)
    F, _ = rt.per_sample(net, X, y, loss="squared")  # squared: F_i = J_iᵀ
    with torch.no_grad():
        outs = net.double()(torch.as_tensor(X)).numpy()
    assert _rel(F[:, 0, :], outs / net.scale.item()) < TOL


def test_chunk_size_gives_the_same_arrays_and_retain_only_sets():
    rng = np.random.default_rng(5)
    net = _deep()
    X, y = _data(rng, 7, 3, "softmax", 3)
    F, g = rt.per_sample(net, X, y, loss="softmax")
    for chunk in (1, 3, 7, 50):
        Fc, gc = rt.per_sample(net, X, y, loss="softmax", chunk_size=chunk)
        assert _rel(Fc, F) < 1e-13 and _rel(gc, g) < 1e-13
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotStationaryWarning)  # random weights
        hs = rt.hessian_set(net, X, y, np.array([4, 0, 2]), loss="softmax", chunk_size=2)
    assert not hs.has_forget and hs.n_retain == 3
    assert _rel(hs.factors("retain"), F[[4, 0, 2]]) < 1e-13
    assert _rel(hs.gradients("retain"), g[[4, 0, 2]]) < 1e-13


def test_training_mode_float32_and_the_users_module_is_never_modified():
    rng = np.random.default_rng(6)
    net = _deep().train()  # float32, in training mode (dropout active)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    X, y = _data(rng, 5, 3, "softmax", 3)
    with pytest.warns(UserWarning, match="training mode"):
        F, g = rt.per_sample(net, X.astype(np.float32), y, loss="softmax")
    assert net.training and net.drop.training and net.z_in.weight.dtype == torch.float32
    for k, v in net.state_dict().items():  # running statistics not updated, nothing cast
        assert v.dtype == before[k].dtype and torch.equal(v, before[k])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # eval mode: no warning, the same numbers
        F0, g0 = rt.per_sample(net.eval(), X.astype(np.float32), y, loss="softmax")
    assert np.array_equal(F, F0) and np.array_equal(g, g0)
    # float32 parameters and inputs are differentiated in float64: the same numbers as a
    # float64 copy of them (float32 arithmetic would be off by ~1e-7)
    F64, g64 = rt.per_sample(_deep().double().eval(), X.astype(np.float32).astype(np.float64),
                             y, loss="softmax")
    assert _rel(F, F64) < TOL and _rel(g, g64) < TOL


def test_tensor_inputs_and_integer_ids():
    # X and y as tensors give the same arrays; integer inputs (token ids) reach an nn.Embedding
    # as integers, and the per-sample gradients sum to autograd's gradient of the summed loss
    rng = np.random.default_rng(12)
    torch.manual_seed(1)
    net = nn.Sequential(nn.Embedding(10, 3), nn.Flatten(), nn.Linear(6, 1)).double().eval()
    ids = rng.integers(0, 10, size=(8, 2))
    y = rng.choice([-1.0, 1.0], size=8)
    F, g = rt.per_sample(net, ids, y, loss="logistic")
    Ft, gt = rt.per_sample(net, torch.as_tensor(ids), torch.as_tensor(y), loss="logistic")
    assert np.array_equal(F, Ft) and np.array_equal(g, gt)
    total = nn.functional.binary_cross_entropy_with_logits(
        net(torch.as_tensor(ids))[:, 0], torch.as_tensor((y + 1) / 2), reduction="sum")
    grad = torch.cat([p.reshape(-1) for p in torch.autograd.grad(total, list(net.parameters()))])
    assert F.shape == (8, 37, 1) and _rel(g.sum(axis=0), grad.numpy()) < TOL


def test_model_that_casts_to_float32_is_flagged():
    class Cast(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 2)

        def forward(self, x):
            return self.lin(x).float()

    X, y = np.ones((4, 3)), np.zeros((4, 2))
    with pytest.warns(UserWarning, match="float32"):
        rt.per_sample(Cast().eval(), X, y, loss="squared")


def test_losses_aliases_and_refusals():
    rng = np.random.default_rng(7)
    model = M.SoftmaxRegression(3, 4)
    w = rng.standard_normal(model.n_params)
    X, y = _data(rng, 5, 3, "softmax", 4)
    net = _affine(model, w)
    F, g = rt.per_sample(net, X, y, loss="softmax")
    Fa, ga = rt.per_sample(net, X, y, loss="cross_entropy")  # the exact alias
    assert np.array_equal(F, Fa) and np.array_equal(g, ga)
    # torch's F.cross_entropy per sample is rmt's softmax loss (the gradient checks it)
    Wt = dict(net.named_parameters())
    xt = torch.as_tensor(X)
    ce = torch.nn.functional.cross_entropy(xt @ Wt["W"] + Wt["b"], torch.as_tensor(y),
                                           reduction="sum")
    grad = torch.cat([p.reshape(-1) for p in torch.autograd.grad(ce, list(Wt.values()))])
    assert _rel(g.sum(axis=0), grad.detach().numpy()) < TOL
    assert rt.TorchModel(net, 3, loss="cross_entropy").loss == "softmax"
    for bad, what in (("mse", "2/K"), ("bce_with_logits", "2t − 1"), ("nll", "logits"),
                      ("MSE", "must be one of"), ("hinge", "must be one of"),
                      (None, "must be one of")):
        with pytest.raises(ValueError, match=what):
            rt.per_sample(net, X, y, loss=bad)
    with pytest.raises(ValueError, match="mse"):
        rt.hessian_set(net, X, y, [0, 1], [2], loss="mse")
    with pytest.raises(ValueError, match="loss"):
        rt.TorchModel(net, 3, loss="mse")


def test_bad_input_raises_naming_the_argument():
    net = _set(Affine(3, 2).double().eval(), np.zeros(8))
    X, y = np.zeros((4, 3)), np.zeros((4, 2))
    with pytest.raises(TypeError, match="module must be a torch.nn.Module"):
        rt.per_sample(lambda x: x, X, y, loss="squared")
    with pytest.raises(ValueError, match="y"):
        rt.per_sample(net, X, y[:3], loss="squared")
    with pytest.raises(ValueError, match="y must hold one target per row"):
        rt.hessian_set(net, X, y[:3], [0, 1], [2], loss="squared")
    with pytest.raises(ValueError, match="K = 1"):
        rt.per_sample(net, X, np.ones(4), loss="logistic")
    with pytest.raises(ValueError, match=r"\(B,\) or \(B, K\)"):
        rt.per_sample(nn.Sequential(nn.Linear(3, 4), nn.Unflatten(1, (2, 2))).double().eval(),
                      X, y, loss="squared")
    with pytest.raises(ValueError, match="X"):
        rt.per_sample(net, np.zeros((0, 3)), y[:0], loss="squared")
    with pytest.raises(ValueError, match="X contains NaN"):
        rt.per_sample(net, np.full((4, 3), np.nan), y, loss="squared")
    with pytest.raises(TypeError, match="X must be a numeric"):
        rt.per_sample(net, [["a", "b", "c"]] * 4, y, loss="squared")
    with pytest.raises(ValueError, match="chunk_size"):
        rt.per_sample(net, X, y, loss="squared", chunk_size=0)
    with pytest.raises(ValueError, match="disjoint"):
        rt.hessian_set(net, X, y, [0, 1, 2], [2, 3], loss="squared")
    with pytest.raises(ValueError, match="forget must index rows"):
        rt.hessian_set(net, X, y, [0, 1], [4], loss="squared")
    with pytest.raises(TypeError, match="retain must hold integer"):
        rt.hessian_set(net, X, y, np.array([True, False, True, False]), [1], loss="squared")
    with pytest.raises(ValueError, match="retain must hold at least one"):
        rt.hessian_set(net, X, y, [], [1], loss="squared")
    with pytest.raises(ValueError, match="weight_decay must be >= 0"):
        rt.hessian_set(net, X, y, [0, 1], [2], loss="squared", weight_decay=-1.0)
    with pytest.raises(TypeError, match="weight_decay must be None, a number"):
        rt.hessian_set(net, X, y, [0, 1], [2], loss="squared", weight_decay="0.1")
    with pytest.raises(ValueError, match="not trainable parameters"):
        rt.hessian_set(net, X, y, [0, 1], [2], loss="squared", weight_decay={"weight": 0.1})
    with pytest.raises(ValueError, match=r"weight_decay\['W'\] must be finite"):
        rt.hessian_set(net, X, y, [0, 1], [2], loss="squared", weight_decay={"W": np.inf})
    frozen = nn.Linear(3, 2).requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        rt.per_sample(frozen, X, y, loss="squared")
    bad = _set(Affine(3, 2).double().eval(), np.full(8, np.nan))
    with pytest.raises(ValueError, match="'W' contains NaN"):
        rt.per_sample(bad, X, y, loss="squared")
    with pytest.raises(ValueError, match=r"w must have shape \(8,\)"):
        rt.flatten(net)[1](np.zeros(7))
    with pytest.raises(TypeError, match="input_shape"):
        rt.TorchModel(net, "3")
    with pytest.raises(ValueError, match="X must have 3 columns"):
        rt.TorchModel(net, 3).outputs(np.zeros(8), np.zeros((2, 4)))


# ---------------------------------------------------------------------------- stationarity
def _fit_logistic(X, y, lam, mask=None):
    """A logistic regression trained to a minimum of mean loss + ½Σ c_j w_j² by L-BFGS in
    torch (float64), c = lam on the coordinates of ``mask`` (all by default)."""
    net = nn.Linear(X.shape[1], 1).double()
    c = torch.full((X.shape[1] + 1,), lam, dtype=torch.float64)
    if mask is not None:
        c = c * torch.as_tensor(mask, dtype=torch.float64)
    Xt, yt = torch.as_tensor(X), torch.as_tensor((y + 1) / 2)
    opt = torch.optim.LBFGS(net.parameters(), tolerance_grad=1e-13, tolerance_change=0,
                            max_iter=500, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        wv = torch.cat([net.weight.reshape(-1), net.bias])
        loss = (nn.functional.binary_cross_entropy_with_logits(net(Xt)[:, 0], yt)
                + 0.5 * (c * wv * wv).sum())
        loss.backward()
        return loss

    opt.step(closure)
    return net.eval()


def test_stationarity_check_runs_at_entry_with_and_without_weight_decay():
    rng = np.random.default_rng(8)
    X = rng.standard_normal((40, 3))
    y = np.where(X @ [1.0, -2.0, 0.5] + 0.7 * rng.standard_normal(40) > 0, 1.0, -1.0)
    retain, forget = np.arange(34), np.arange(34, 40)
    # random weights: far from a minimum
    with pytest.warns(NotStationaryWarning, match="rmt.adapters.torch.hessian_set"):
        hs = rt.hessian_set(_set(nn.Linear(3, 1).double(), [1.0, 1.0, 1.0, 1.0]).eval(), X, y,
                            retain, forget, loss="logistic")
    assert not hs.stationarity.stationary
    lam = 0.05
    net = _fit_logistic(X, y, lam)
    w = rt.flatten(net)[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error", NotStationaryWarning)
        hs = rt.hessian_set(net, X, y, retain, forget, loss="logistic", weight_decay=lam)
        hs_none = rt.hessian_set(net, X, y, retain, forget, loss="logistic")  # λ̂ inferred
    assert hs.stationarity.stationary and hs.stationarity.weight_decay is None
    assert hs.stationarity.value < 1e-8 and hs.shared_scalar == lam
    assert abs(hs_none.stationarity.weight_decay - lam) < 1e-6
    # gradients of the regularised losses: data gradients + λw*, their mean is ∇L(w*) ≈ 0
    for which in ("retain", "forget"):
        assert _rel(hs.gradients(which), hs_none.gradients(which) + lam * w) < TOL
        assert _rel(hs.mean(which), hs_none.mean(which) + lam * np.eye(4)) < TOL
    allg = np.concatenate([hs.gradients("retain"), hs.gradients("forget")])
    assert np.linalg.norm(allg.mean(axis=0)) < 1e-8  # L-BFGS stopped at ~1e-10
    # the penalty said to be absent: the decayed fit is not a minimum of the data loss
    with pytest.warns(NotStationaryWarning):
        hs0 = rt.hessian_set(net, X, y, retain, forget, loss="logistic", weight_decay=0.0)
    assert hs0.stationarity.weight_decay is None and not hs0.has_shared


def test_weight_decay_per_parameter_matches_the_sklearn_adapter():
    # sklearn's LogisticRegression(C) penalises the coefficients, not the intercept:
    # λ = 1/(C·n) on "weight" only (docs/models.md); its adapter builds the same Q
    from sklearn.linear_model import LogisticRegression
    from rmt.adapters import sklearn as rs

    rng = np.random.default_rng(9)
    X = rng.standard_normal((60, 3))
    y = np.where(X @ [1.0, -1.0, 0.5] + 0.3 + rng.standard_normal(60) > 0, 1.0, -1.0)
    C = 0.5
    clf = LogisticRegression(C=C, tol=1e-12, max_iter=10_000).fit(X, y)
    net = _set(nn.Linear(3, 1).double(), np.r_[clf.coef_.ravel(), clf.intercept_]).eval()
    forget = np.arange(50, 60)
    hs_s = rs.hessian_set(clf, X, y, forget=forget)
    with warnings.catch_warnings():
        warnings.simplefilter("error", NotStationaryWarning)
        hs_t = rt.hessian_set(net, X, y, np.arange(50), forget, loss="logistic",
                              weight_decay={"weight": 1 / (C * 60)})
    assert hs_t.shared_factor.shape == (4, 3)
    assert _rel(hs_t.shared_factor, hs_s.shared_factor) < TOL
    for which in ("retain", "forget"):
        assert _rel(hs_t.mean(which), hs_s.mean(which)) < TOL
        assert _rel(hs_t.gradients(which), hs_s.gradients(which)) < 1e-10
    assert abs(hs_t.stationarity.value - hs_s.stationarity.value) < 1e-9
    sch = rmt.Schedule(eta=0.5, batch=8, alpha=0.1, forget_batch=3,
                       sampling="without_replacement")
    assert abs(rmt.mean_square(hs_t, sch).rate - rmt.mean_square(hs_s, sch).rate) < 1e-11
    # the same λ on every parameter is λI, not a factor
    hs_iso = rt.hessian_set(net, X, y, np.arange(50), forget, loss="logistic",
                            weight_decay={"weight": 0.1, "bias": 0.1})
    assert hs_iso.shared_scalar == 0.1 and hs_iso.shared_factor is None


# ---------------------------------------------------------------------------- TorchModel
def test_torch_model_runs_unlearn_hessian_set_and_train_like_the_reference():
    rng = np.random.default_rng(10)
    ref = M.MLP(3, 4, 1, activation="tanh", loss="logistic")
    w = rng.standard_normal(ref.n_params) * 0.7
    X, y = _data(rng, 12, 3, "logistic", 1)
    net = _mlp(ref, w, "tanh").float()  # a float32 module: the model runs in float64
    tm = rt.TorchModel(net, 3, loss="logistic")
    assert (tm.n_features, tm.n_outputs, tm.n_params) == (3, 1, ref.n_params)
    w32 = tm.init()
    assert np.array_equal(w32, w.astype(np.float32).astype(np.float64))
    V = rng.standard_normal((12, 1))
    assert _rel(tm.outputs(w, X), ref.outputs(w, X)) < TOL
    assert _rel(tm.jacobian(w, X), ref.jacobian(w, X)) < TOL
    assert _rel(tm.vjp(w, X, V), ref.vjp(w, X, V)) < TOL
    sch = rmt.Schedule(eta=0.5, batch=4, alpha=0.3, forget_batch=2,
                       sampling="without_replacement")
    args = (X[:9], y[:9], X[9:], y[9:])
    u_t = M.unlearn(tm, w, *args, schedule=sch, steps=8, seed=0)
    u_r = M.unlearn(ref, w, *args, schedule=sch, steps=8, seed=0)
    assert _rel(u_t.distances, u_r.distances) < 1e-10
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotStationaryWarning)  # random weights
        hs_m = M.hessian_set(tm, w32, *args)
        hs_a = rt.hessian_set(net, X, y, np.arange(9), np.arange(9, 12), loss="logistic")
    assert _rel(hs_m.mean("forget"), hs_a.mean("forget")) < TOL
    assert _rel(hs_m.gradients("retain"), hs_a.gradients("retain")) < TOL
    tr_t = M.train(tm, X, y, weight_decay=0.1, w0=w, tol=1e-8)
    tr_r = M.train(ref, X, y, weight_decay=0.1, w0=w, tol=1e-8)
    assert tr_t.converged and tr_r.converged
    assert np.max(np.abs(tr_t.w - tr_r.w)) < 1e-6
    # the trained w goes back into a module through unravel
    net2 = _mlp(ref, np.zeros(ref.n_params), "tanh")
    net2.load_state_dict(tm.unravel(tr_t.w), strict=False)
    assert np.array_equal(rt.flatten(net2)[0], tr_t.w)


def test_unlearn_on_a_torch_model_follows_the_linearisation_for_tiny_steps():
    # the nonlinear run vs the linearised step δ ← δ − η(1−α)(Ĥ_R δ + ĝ_R) + ηα(Ĥ_F δ + ĝ_F),
    # Ĥ_S = (1/B_S) Σ x_i F_iF_iᵀ, ĝ_S = (1/B_S) Σ x_i g_i from the adapter's HessianSet, with
    # the batches the run drew: they agree up to a relative gap of order η
    rng = np.random.default_rng(11)
    net = _deep().double()
    X, y = _data(rng, 10, 3, "softmax", 3)
    tm = rt.TorchModel(net, 3, loss="softmax")
    w = tm.init()
    args = (X[:7], y[:7], X[7:], y[7:])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotStationaryWarning)
        hs = rt.hessian_set(net, X, y, np.arange(7), np.arange(7, 10), loss="softmax")
    H = {s: np.einsum("ndk,nek->nde", hs.factors(s), hs.factors(s)) for s in ("retain", "forget")}
    alpha, B = 0.3, {"retain": 3, "forget": 2}
    errs = []
    for eta in (2e-3, 1e-3):
        sch = rmt.Schedule(eta=eta, batch=3, alpha=alpha, forget_batch=2,
                           sampling="without_replacement")
        run = M.unlearn(tm, w, *args, schedule=sch, steps=5, seed=0, record=True)
        ind = run.indicators[0]
        delta = np.zeros(w.size)
        for k in range(5):
            step = {s: (np.einsum("n,nde->de", ind[s][k], H[s]) @ delta
                        + ind[s][k] @ hs.gradients(s)) / B[s] for s in ("retain", "forget")}
            delta = delta - eta * (1 - alpha) * step["retain"] + eta * alpha * step["forget"]
        errs.append(np.linalg.norm(run.final_w[0] - w - delta) / np.linalg.norm(delta))
    # the gap is the curvature Gauss–Newton leaves out (and higher orders): O(η) relative
    assert errs[0] < 1e-2 and 1.6 < errs[0] / errs[1] < 2.4


# ---------------------------------------------------------------------------- packaging
def test_missing_torch_gives_an_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    monkeypatch.delitem(sys.modules, "rmt.adapters.torch")
    with pytest.raises(ImportError, match=r'pip install -e "\.\[torch\]"'):
        importlib.import_module("rmt.adapters.torch")


def test_import_rmt_does_not_import_torch():
    code = ("import sys, rmt, rmt.adapters, rmt.models; "
            "assert 'torch' not in sys.modules and 'jax' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
