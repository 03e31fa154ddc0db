"""rmt.adapters.jax: the JAX path gives the same factors, gradients and HessianSet as the numpy
reference models of rmt.models on the same parameters and data (float64, ~1e-10)."""

import importlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rmt
from rmt import models as M
from rmt.adapters import jax as rj

TOL = 1e-10


def _rel(a, b):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape, (a.shape, b.shape)
    return np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300)


# JAX twins of the reference models, with parameter tuples laid out so that ravel_pytree gives
# exactly the flat w of rmt.models (LinearModel: [W (p, K) row-major, b]; MLP: [W1 (h, p), b1,
# W2 (K, h), b2]).
def _linear(params, x):
    W, b = params
    return x @ W + b


def _linear_scalar(params, x):  # K = 1 returned as a scalar (logistic regression)
    W, b = params
    return (x @ W + b)[0]


def _mlp(act):
    def apply(params, x):
        W1, b1, W2, b2 = params
        z = W1 @ x + b1
        a = jnp.tanh(z) if act == "tanh" else jax.nn.softplus(z)
        return W2 @ a + b2
    return apply


def _linear_params(model, w):
    W, b = model._unpack(w)
    return (W, b)


def _mlp_params(model, w):
    return tuple(model._unpack(w))


CASES = [
    # id, reference model, jax apply, params from flat w, loss, K
    ("linreg-K2", lambda: M.LinearRegression(3, 2), _linear, _linear_params, "squared", 2),
    ("linreg-K1", lambda: M.LinearRegression(3, 1), _linear, _linear_params, "squared", 1),
    ("logreg", lambda: M.LogisticRegression(3), _linear_scalar, _linear_params, "logistic", 1),
    ("softmax", lambda: M.SoftmaxRegression(3, 4), _linear, _linear_params, "softmax", 4),
    ("mlp-tanh-squared", lambda: M.MLP(3, 4, 2, activation="tanh"), _mlp("tanh"), _mlp_params,
     "squared", 2),
    ("mlp-softplus-softmax",
     lambda: M.MLP(3, 4, 3, activation="softplus", loss="softmax"), _mlp("softplus"),
     _mlp_params, "softmax", 3),
    ("mlp-tanh-logistic", lambda: M.MLP(3, 5, 1, loss="logistic"), _mlp("tanh"), _mlp_params,
     "logistic", 1),
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


@pytest.mark.parametrize("name,make,apply,to_params,loss,K", CASES, ids=IDS)
def test_factors_and_gradients_match_reference_models(name, make, apply, to_params, loss, K):
    rng = np.random.default_rng(0)
    model = make()
    w = rng.standard_normal(model.n_params) * 0.7
    X, y = _data(rng, 6, 3, loss, K)
    F, g = rj.per_sample(apply, to_params(model, w), X, y, loss=loss)
    F_ref, g_ref = M.gauss_newton(model.jacobian(w, X), model.outputs(w, X), y, loss)
    k = {"squared": K, "logistic": 1, "softmax": K - 1}[loss]
    assert F.shape == (6, model.n_params, k) and g.shape == (6, model.n_params)
    assert F.dtype == np.float64 and g.dtype == np.float64
    assert _rel(F, F_ref) < TOL
    assert _rel(g, g_ref) < TOL
    # the gradient against the reference's own loss-gradient path (no Gauss–Newton involved)
    assert _rel(g, M.loss_gradients(model, w, X, y, loss)) < TOL
    # flat coordinates are those of the reference model
    assert np.array_equal(rj.flatten(to_params(model, w))[0], w)


@pytest.mark.parametrize("name,make,apply,to_params,loss,K",
                         [CASES[2], CASES[3], CASES[5]], ids=[IDS[2], IDS[3], IDS[5]])
def test_hessian_set_matches_reference_and_gives_same_rate(name, make, apply, to_params, loss, K):
    rng = np.random.default_rng(1)
    model = make()
    w = rng.standard_normal(model.n_params) * 0.5
    X, y = _data(rng, 10, 3, loss, K)
    retain, forget = np.arange(7), np.array([7, 8, 9])
    hs = rj.hessian_set(apply, to_params(model, w), X, y, retain, forget, loss=loss)
    ref = M.hessian_set(model, w, X[retain], y[retain], X[forget], y[forget], loss)
    assert hs.kind == ref.kind and hs.dim == ref.dim == model.n_params
    assert (hs.n_retain, hs.n_forget) == (7, 3)
    for which in ("retain", "forget"):
        assert _rel(hs.mean(which), ref.mean(which)) < TOL
        assert _rel(hs.gradients(which), ref.gradients(which)) < TOL
    sch = rmt.Schedule(eta=0.7, batch=3, alpha=0.2, forget_batch=2,
                       sampling="without_replacement")
    r_jax, r_ref = rmt.mean_square(hs, sch), rmt.mean_square(ref, sch)
    assert abs(r_jax.rate - r_ref.rate) < TOL * max(r_ref.rate, 1.0)
    assert r_jax.null_dim == r_ref.null_dim


def test_retain_only_and_chunking_give_the_same_arrays():
    rng = np.random.default_rng(2)
    model = M.MLP(3, 4, 3, activation="tanh", loss="softmax")
    w = rng.standard_normal(model.n_params)
    X, y = _data(rng, 7, 3, "softmax", 3)
    params = _mlp_params(model, w)
    F, g = rj.per_sample(_mlp("tanh"), params, X, y, loss="softmax")
    F3, g3 = rj.per_sample(_mlp("tanh"), params, X, y, loss="softmax", chunk_size=3)
    # the same numbers up to round-off (XLA may vectorise a chunk of 3 differently from 7)
    assert _rel(F3, F) < 1e-13 and _rel(g3, g) < 1e-13
    hs = rj.hessian_set(_mlp("tanh"), params, X, y, np.array([4, 0, 2]), loss="softmax")
    assert not hs.has_forget and hs.n_retain == 3
    assert np.array_equal(hs.factors("retain"), F[[4, 0, 2]])
    assert np.array_equal(hs.gradients("retain"), g[[4, 0, 2]])


def test_float32_params_are_differentiated_in_float64_and_global_flag_is_left_alone():
    rng = np.random.default_rng(3)
    model = M.MLP(3, 4, 2, activation="tanh")
    w32 = (rng.standard_normal(model.n_params) * 0.7).astype(np.float32)
    w = w32.astype(np.float64)  # the same numbers, exactly
    X, y = _data(rng, 5, 3, "squared", 2)
    before = bool(jax.config.jax_enable_x64)
    params32 = tuple(np.asarray(a, np.float32) for a in model._unpack(w))
    F, g = rj.per_sample(_mlp("tanh"), params32, X.astype(np.float32), y, loss="squared")
    assert bool(jax.config.jax_enable_x64) == before
    F_ref, g_ref = M.gauss_newton(model.jacobian(w, X.astype(np.float32).astype(float)),
                                  model.outputs(w, X.astype(np.float32).astype(float)), y,
                                  "squared")
    # float32 arithmetic would be off by ~1e-7 relative
    assert _rel(F, F_ref) < TOL and _rel(g, g_ref) < TOL


def test_dict_params_follow_ravel_pytree_order():
    # dict leaves are flattened in sorted-key order: "W" < "b" here, "b" < "w" with lower case
    rng = np.random.default_rng(4)
    model = M.LogisticRegression(3)
    w = rng.standard_normal(model.n_params)
    W, b = model._unpack(w)
    X, y = _data(rng, 5, 3, "logistic", 1)
    params = {"w": W, "b": b}
    flat, unravel = rj.flatten(params)
    assert np.array_equal(flat, np.concatenate([b, W.ravel()]))
    assert np.array_equal(np.asarray(unravel(flat)["w"]), W)
    assert unravel(flat)["w"].dtype == jnp.float64  # also outside 64-bit mode
    F, g = rj.per_sample(lambda p, x: (x @ p["w"] + p["b"])[0], params, X, y, loss="logistic")
    F_ref, g_ref = M.gauss_newton(model.jacobian(w, X), model.outputs(w, X), y, "logistic")
    perm = np.concatenate([[3], np.arange(3)])  # b first, then W
    assert _rel(F, F_ref[:, perm]) < TOL and _rel(g, g_ref[:, perm]) < TOL


def test_jax_model_runs_unlearn_hessian_set_and_train_like_the_reference():
    rng = np.random.default_rng(5)
    ref = M.MLP(3, 4, 1, activation="tanh", loss="logistic")
    w = rng.standard_normal(ref.n_params) * 0.7
    X, y = _data(rng, 12, 3, "logistic", 1)
    jm = rj.JaxModel(_mlp("tanh"), _mlp_params(ref, w), 3, loss="logistic")
    assert (jm.n_features, jm.n_outputs, jm.n_params) == (3, 1, ref.n_params)
    assert np.array_equal(jm.init(), w)
    V = rng.standard_normal((12, 1))
    assert _rel(jm.outputs(w, X), ref.outputs(w, X)) < TOL
    assert _rel(jm.jacobian(w, X), ref.jacobian(w, X)) < TOL
    assert _rel(jm.vjp(w, X, V), ref.vjp(w, X, V)) < TOL
    sch = rmt.Schedule(eta=0.5, batch=4, alpha=0.3, forget_batch=2,
                       sampling="without_replacement")
    args = (X[:9], y[:9], X[9:], y[9:])
    u_jax = M.unlearn(jm, w, *args, schedule=sch, steps=8, seed=0)
    u_ref = M.unlearn(ref, w, *args, schedule=sch, steps=8, seed=0)
    assert _rel(u_jax.distances, u_ref.distances) < 1e-9
    hs_j = M.hessian_set(jm, w, *args)
    hs_r = M.hessian_set(ref, w, *args)
    assert _rel(hs_j.mean("forget"), hs_r.mean("forget")) < TOL
    # the trainer runs on it too: same start, same gradients to round-off -> same minimum
    tr_j = M.train(jm, X, y, weight_decay=0.1, w0=w, tol=1e-8)
    tr_r = M.train(ref, X, y, weight_decay=0.1, w0=w, tol=1e-8)
    assert tr_j.converged and tr_r.converged
    assert np.max(np.abs(tr_j.w - tr_r.w)) < 1e-6


def test_weight_decay_becomes_shared_curvature_and_regularised_gradients():
    # a JAX MLP trained with (λ/2)‖w‖²: weight_decay=λ gives shared λI and g_i + λw*; the check
    # then uses the known penalty (no inferred λ̂) and a wrong λ is flagged
    rng = np.random.default_rng(11)
    ref = M.MLP(3, 4, 1, activation="tanh", loss="logistic")
    X, y = _data(rng, 30, 3, "logistic", 1)
    jm = rj.JaxModel(_mlp("tanh"), _mlp_params(ref, 0.5 * rng.standard_normal(ref.n_params)), 3,
                     loss="logistic")
    lam = 0.05
    tr = M.train(jm, X, y, weight_decay=lam, seed=0, tol=1e-10)
    params = jm.unravel(tr.w)
    retain, forget = np.arange(24), np.arange(24, 30)
    plain = rj.hessian_set(_mlp("tanh"), params, X, y, retain, forget, loss="logistic")
    hs = rj.hessian_set(_mlp("tanh"), params, X, y, retain, forget, loss="logistic",
                        weight_decay=lam)
    assert hs.has_shared and not plain.has_shared
    assert plain.stationarity.weight_decay is not None  # unknown penalty: inferred
    assert hs.stationarity.weight_decay is None and hs.stationarity.stationary
    w = np.asarray(tr.w)
    for which in ("retain", "forget"):
        np.testing.assert_allclose(hs.gradients(which), plain.gradients(which) + lam * w,
                                   rtol=0, atol=1e-12)
        np.testing.assert_allclose(hs.mean(which), plain.mean(which) + lam * np.eye(w.size),
                                   rtol=0, atol=1e-12)
    with pytest.warns(rmt.stationarity.NotStationaryWarning):
        rj.hessian_set(_mlp("tanh"), params, X, y, retain, forget, loss="logistic",
                       weight_decay=10 * lam)
    for bad, err in ((-1.0, ValueError), (float("nan"), ValueError), ("0.1", TypeError),
                     (True, TypeError)):
        with pytest.raises(err, match="weight_decay"):
            rj.hessian_set(_mlp("tanh"), params, X, y, retain, loss="logistic",
                           weight_decay=bad)


# ---------------------------------------------------------------------------- bad input
def _calls():
    n = {"calls": 0}

    def apply(params, x):
        n["calls"] += 1
        return _linear(params, x)
    return apply, n


def test_wrong_loss_name_raises_before_the_model_is_touched():
    apply, n = _calls()
    params = (np.zeros((3, 2)), np.zeros(2))
    X = np.zeros((4, 3))
    with pytest.raises(ValueError, match="loss"):
        rj.per_sample(apply, params, X, np.zeros((4, 2)), loss="mse")
    with pytest.raises(ValueError, match="loss"):
        rj.hessian_set(apply, params, X, np.zeros((4, 2)), [0, 1], [2], loss="cross_entropy")
    with pytest.raises(ValueError, match="loss"):
        rj.JaxModel(apply, params, 3, loss="hinge")
    assert n["calls"] == 0


def test_bad_shapes_and_arguments_raise():
    params = (np.zeros((3, 2)), np.zeros(2))
    X = np.zeros((4, 3))
    y = np.zeros((4, 2))
    with pytest.raises(ValueError, match="y"):  # one target row too few
        rj.per_sample(_linear, params, X, y[:3], loss="squared")
    with pytest.raises(ValueError, match="y must hold one target per row"):
        rj.hessian_set(_linear, params, X, y[:3], [0, 1], [2], loss="squared")
    with pytest.raises(ValueError, match="shape"):  # targets of the wrong width
        rj.per_sample(_linear, params, X, np.zeros((4, 3)), loss="squared")
    with pytest.raises(ValueError, match="K = 1"):  # logistic needs one output
        rj.per_sample(_linear, params, X, np.ones(4), loss="logistic")
    with pytest.raises(ValueError, match="1-D vector"):  # batched apply function
        rj.per_sample(lambda p, x: _linear(p, x[None]), params, X, y, loss="squared")
    with pytest.raises(TypeError, match="apply_fn"):
        rj.per_sample("model", params, X, y, loss="squared")
    with pytest.raises(TypeError, match="params"):
        rj.per_sample(_linear, (np.zeros((3, 2), int), np.zeros(2)), X, y, loss="squared")
    with pytest.raises(ValueError, match="params"):
        rj.per_sample(_linear, (), X, y, loss="squared")
    with pytest.raises(ValueError, match="X"):
        rj.per_sample(_linear, params, np.zeros((0, 3)), y[:0], loss="squared")
    with pytest.raises(ValueError, match="NaN"):
        rj.per_sample(_linear, params, np.full((4, 3), np.nan), y, loss="squared")
    with pytest.raises(ValueError, match="chunk_size"):
        rj.per_sample(_linear, params, X, y, loss="squared", chunk_size=0)
    with pytest.raises(ValueError, match="disjoint"):
        rj.hessian_set(_linear, params, X, y, [0, 1, 2], [2, 3], loss="squared")
    with pytest.raises(ValueError, match="forget must index rows"):
        rj.hessian_set(_linear, params, X, y, [0, 1], [4], loss="squared")
    with pytest.raises(TypeError, match="retain must hold integer"):
        rj.hessian_set(_linear, params, X, y, np.array([True, False, True, False]), [1],
                       loss="squared")
    with pytest.raises(ValueError, match="retain must hold at least one"):
        rj.hessian_set(_linear, params, X, y, [], [1], loss="squared")


def test_model_that_casts_to_float32_is_flagged():
    params = (np.ones((3, 2)), np.zeros(2))
    X, y = np.ones((4, 3)), np.zeros((4, 2))
    with pytest.warns(UserWarning, match="float32"):
        rj.per_sample(lambda p, x: _linear(p, x).astype(jnp.float32), params, X, y,
                      loss="squared")


def test_missing_jax_gives_an_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "jax", None)  # `import jax` now raises ImportError
    monkeypatch.delitem(sys.modules, "rmt.adapters.jax")
    with pytest.raises(ImportError, match=r'pip install -e "\.\[jax\]"'):
        importlib.import_module("rmt.adapters.jax")
