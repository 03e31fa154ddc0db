"""rmt.adapters.sklearn: the HessianSet of a fitted scikit-learn estimator.

Every check is against an independent computation: the test writes sklearn's documented
objective (C·Σ loss + ½‖w‖², ‖y − Xw − b‖² + α‖w‖², mean loss + α/(2n)‖W‖²) with its own exact
gradient, takes finite differences of that gradient for the Hessian, and finite differences of the
estimator's public predictions for network Jacobians — none of it shares code with the adapter.
"""

from __future__ import annotations

import copy
import inspect
import warnings

import numpy as np
import pytest
from scipy.special import expit, softmax
from sklearn.datasets import load_breast_cancer
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.svm import LinearSVC

import rmt
from rmt.adapters import sklearn as rs
from rmt.stationarity import NotStationaryWarning


def _quiet_fit(est, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", UserWarning)
        return est.fit(X, y)


def _all_mean_hessian(hs):
    """(1/n) Σ_i (H_i + C) over retain ∪ forget: the Hessian of the mean-loss objective."""
    tot = hs.n_retain * hs.mean("retain")
    if hs.has_forget:
        tot = tot + hs.n_forget * hs.mean("forget")
    return tot / hs.n


def _all_gradients(hs):
    parts = [hs.gradients("retain")] + ([hs.gradients("forget")] if hs.has_forget else [])
    return np.concatenate(parts)


def _fd_jacobian(fun, w, h=1e-6):
    cols = [(fun(w + h * e) - fun(w - h * e)) / (2 * h) for e in np.eye(w.size)]
    return np.stack(cols, axis=-1)


@pytest.fixture(scope="module")
def small():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    t2 = (X @ [1.0, -2.0, 0.5] + rng.normal(size=40) > 0).astype(int)
    t3 = np.argmax(X @ rng.normal(size=(3, 3)) + rng.normal(size=(40, 3)), axis=1)
    Y = X @ rng.normal(size=(3, 2)) + rng.normal(size=(40, 2)) + [1.0, -1.0]
    return X, t2, t3, Y


@pytest.fixture(scope="module")
def breast_cancer():
    X, t = load_breast_cancer(return_X_y=True)
    return (X - X.mean(0)) / X.std(0), t


# ---------------------------------------------------------------- independent objectives
def _logistic_objective_grad(X, t, C, fit_intercept=True):
    """Gradient of sklearn's C·Σ log(1 + e^{−ỹf}) + ½‖W‖², divided by C·n (mean-loss form)."""
    n, p = X.shape
    ys = 2.0 * t - 1.0

    def grad(w):
        W, b = w[:p], (w[p] if fit_intercept else 0.0)
        r = -ys * expit(-ys * (X @ W + b))  # ∂loss/∂f
        gW = C * X.T @ r + W
        out = np.r_[gW, C * r.sum()] if fit_intercept else gW
        return out / (C * n)

    return grad


def _softmax_objective_grad(X, t, C, K):
    n, p = X.shape
    T = np.eye(K)[t]

    def grad(w):
        W = w[:K * p].reshape(K, p)  # coef_ (K, p) row-major
        b = w[K * p:]
        R = softmax(X @ W.T + b, axis=1) - T
        return np.r_[(C * R.T @ X + W).ravel(), C * R.sum(0)] / (C * n)

    return grad


def _ridge_objective_grad(X, Y, alpha):
    """Gradient of ‖Y − XWᵀ − b‖² + Σ_k α_k‖W_k‖², divided by 2n."""
    n, p = X.shape
    K = Y.shape[1]
    alpha = np.broadcast_to(np.asarray(alpha, float), (K,))

    def grad(w):
        W = w[:K * p].reshape(K, p)
        b = w[K * p:]
        R = X @ W.T + b - Y
        return np.r_[(2 * R.T @ X + 2 * alpha[:, None] * W).ravel(), 2 * R.sum(0)] / (2 * n)

    return grad


# ---------------------------------------------------------------- linear models
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_binary_logistic_matches_finite_differences_of_the_objective(small, fit_intercept):
    X, t, _, _ = small
    C = 0.7
    est = LogisticRegression(C=C, tol=1e-12, max_iter=10_000, fit_intercept=fit_intercept)
    est.fit(X, t)
    hs = rs.hessian_set(est, X, t, forget=[3, 7, 11])
    w = rs.parameters(est)
    np.testing.assert_array_equal(w, np.r_[est.coef_.ravel(), est.intercept_]
                                  if fit_intercept else est.coef_.ravel())
    grad = _logistic_objective_grad(X, t, C, fit_intercept)
    H_fd = _fd_jacobian(grad, w)
    np.testing.assert_allclose(_all_mean_hessian(hs), H_fd, atol=1e-8)
    # the stored gradients are those of the regularised losses: their mean is ∇L(w*) ≈ 0
    np.testing.assert_allclose(_all_gradients(hs).mean(0), grad(w), atol=1e-12)
    assert np.linalg.norm(grad(w)) < 1e-8
    assert hs.stationarity.value < 1e-6 and hs.stationarity.stationary
    # penalty: coefficients only (λ = 1/(C n)); without an intercept it is λI
    if fit_intercept:
        Q = hs.shared_factor
        np.testing.assert_allclose(Q @ Q.T, np.diag(np.r_[np.full(3, 1 / (C * 40)), 0.0]))
    else:
        assert hs.shared_scalar == pytest.approx(1 / (C * 40)) and hs.shared_factor is None


def test_multinomial_logistic_matches_finite_differences(small):
    X, _, t3, _ = small
    est = LogisticRegression(C=2.0, tol=1e-12, max_iter=10_000).fit(X, t3)
    hs = rs.hessian_set(est, X, t3, forget=np.arange(40) % 5 == 0)  # boolean mask
    assert hs.kind == "factor" and hs.rank == 2 and hs.n_forget == 8
    w = rs.parameters(est)
    grad = _softmax_objective_grad(X, t3, 2.0, 3)
    np.testing.assert_allclose(_all_mean_hessian(hs), _fd_jacobian(grad, w), atol=1e-8)
    np.testing.assert_allclose(_all_gradients(hs).mean(0), grad(w), atol=1e-12)
    assert hs.stationarity.stationary


def test_liblinear_penalises_the_intercept_through_intercept_scaling(small):
    X, t, _, _ = small
    est = LogisticRegression(C=0.5, solver="liblinear", intercept_scaling=2.0, tol=1e-10,
                             max_iter=10_000).fit(X, t)
    c = rs.penalty(est, 40)
    np.testing.assert_allclose(c, np.r_[np.full(3, 1 / 20), 1 / 20 / 4])
    # with that penalty the fit is stationary (with c_b = 0 it would not be)
    rep = rs.stationarity(est, X, t)
    assert rep.value < 1e-5
    F, g = rs.per_sample(est, X, t)
    w = rs.parameters(est)
    assert np.linalg.norm(g.mean(0) + np.r_[c[:3], 0.0] * w) > 100 * rep.gradient_norm


def test_ridge_and_linear_regression_match_finite_differences(small):
    X, _, _, Y = small
    alpha = np.array([0.5, 3.0])
    est = Ridge(alpha=alpha).fit(X, Y)
    hs = rs.hessian_set(est, X, Y, forget=[0, 1])
    assert hs.kind == "factor" and hs.rank == 2
    w = rs.parameters(est)
    grad = _ridge_objective_grad(X, Y, alpha)
    np.testing.assert_allclose(_all_mean_hessian(hs), _fd_jacobian(grad, w), atol=1e-8)
    np.testing.assert_allclose(_all_gradients(hs).mean(0), grad(w), atol=1e-12)
    assert hs.stationarity.value < 1e-10
    # per-target alpha: coef_ row k carries α_k / n
    np.testing.assert_allclose(rs.penalty(est, 40), np.r_[np.full(3, 0.5 / 40),
                                                          np.full(3, 3.0 / 40), 0, 0])
    # one target, LinearRegression: rank-one, no shared term
    lr = LinearRegression().fit(X, Y[:, 0])
    hs1 = rs.hessian_set(lr, X, Y[:, 0])
    assert hs1.kind == "rank1" and not hs1.has_shared and hs1.stationarity.value < 1e-10
    np.testing.assert_allclose(hs1.mean("retain"), np.c_[X, np.ones(40)].T
                               @ np.c_[X, np.ones(40)] / 40, atol=1e-12)


# ---------------------------------------------------------------- networks
def _set_params(est, w):
    e = copy.deepcopy(est)
    k = 0
    for layer in range(len(e.coefs_)):
        W = e.coefs_[layer]
        e.coefs_[layer] = w[k:k + W.size].reshape(W.shape)
        k += W.size
        b = e.intercepts_[layer]
        e.intercepts_[layer] = w[k:k + b.size].copy()
        k += b.size
    assert k == w.size
    return e


def _mlp_objective(est, X, y, n):
    """sklearn's MLP objective from public predictions: mean loss + α/(2n)·Σ‖W‖²."""
    def L(w):
        e = _set_params(est, w)
        reg = 0.5 * est.alpha * sum(np.sum(W ** 2) for W in e.coefs_) / n
        if isinstance(est, MLPRegressor):
            return 0.5 * np.mean((e.predict(X) - y) ** 2) + reg
        P = np.clip(e.predict_proba(X), 1e-300, 1.0)
        idx = np.searchsorted(est.classes_, y)
        return -np.mean(np.log(P[np.arange(len(y)), idx])) + reg
    return L


def _logits(est):
    def f(X):
        P = est.predict_proba(X)
        if est.out_activation_ == "logistic":
            return np.log(P[:, 1:] / P[:, :1])
        return np.log(P)  # softmax logits up to a per-sample constant (GN is blind to it)
    return f


@pytest.mark.parametrize("case", ["regressor-tanh", "binary-logistic", "multiclass-tanh",
                                  "multiclass-relu-early"])
def test_mlp_gauss_newton_and_gradient_against_finite_differences(small, case):
    X, t2, t3, Y = small
    kw = dict(solver="lbfgs", alpha=0.1, tol=1e-12, max_iter=3000, random_state=0)
    if case == "regressor-tanh":
        est, y = MLPRegressor(hidden_layer_sizes=(4,), activation="tanh", **kw), Y
    elif case == "binary-logistic":
        est, y = MLPClassifier(hidden_layer_sizes=(4,), activation="logistic", **kw), t2
    elif case == "multiclass-tanh":
        est, y = MLPClassifier(hidden_layer_sizes=(4, 3), activation="tanh", **kw), t3
    else:  # relu, stopped early so that no pre-activation sits at a kink
        kw.update(max_iter=5)
        est, y = MLPClassifier(hidden_layer_sizes=(5, 3), activation="relu", **kw), t3
    _quiet_fit(est, X, y)
    n = X.shape[0]
    w = rs.parameters(est)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotStationaryWarning)
        hs = rs.hessian_set(est, X, y, forget=[5, 6])
    F, g = rs.per_sample(est, X, y)
    c = rs.penalty(est, n)
    # parameter order: coef then intercept, per layer
    np.testing.assert_array_equal(
        w, np.concatenate([a for W, b in zip(est.coefs_, est.intercepts_)
                           for a in (W.ravel(), b)]))
    # gradient of the trained objective, data + penalty
    L = _mlp_objective(est, X, y, n)
    G_fd = np.array([(L(w + 1e-6 * e) - L(w - 1e-6 * e)) / 2e-6 for e in np.eye(w.size)])
    # rmt's squared loss is ½‖f − y‖²: K times sklearn's, which averages over the K outputs
    scale = est.n_outputs_ if isinstance(est, MLPRegressor) else 1
    np.testing.assert_allclose(g.mean(0) + c * w, scale * G_fd, atol=2e-9)
    np.testing.assert_allclose(_all_gradients(hs).mean(0), scale * G_fd, atol=2e-9)
    # Gauss–Newton Hessian from finite-difference Jacobians of the public outputs
    out = (lambda Z: est.predict(Z)) if isinstance(est, MLPRegressor) else _logits(est)
    J = _fd_jacobian(lambda v: _set_params(est, v).predict(X) if isinstance(est, MLPRegressor)
                     else _logits(_set_params(est, v))(X), w).reshape(n, -1, w.size)
    f = out(X).reshape(n, -1)
    K = f.shape[1]
    if isinstance(est, MLPRegressor):
        Hf = np.broadcast_to(np.eye(K), (n, K, K))
    elif K == 1:
        p = expit(f)
        Hf = (p * (1 - p))[:, :, None]
    else:
        p = softmax(f, axis=1)
        Hf = np.einsum("nk,kl->nkl", p, np.eye(K)) - p[:, :, None] * p[:, None, :]
    GN = np.einsum("nka,nkl,nlb->ab", J, Hf, J) / n + np.diag(c)
    np.testing.assert_allclose(_all_mean_hessian(hs), GN, atol=1e-8 * max(1.0, np.abs(GN).max()))
    if case != "multiclass-relu-early":
        assert hs.stationarity.value < 1e-2


def test_relu_gradient_equals_sklearns_backprop_at_a_kinked_minimum(small):
    """At a converged ReLU fit pre-activations sit at kinks, so finite differences are useless;
    compare with sklearn's own back-propagation (a private method, an independent code path)."""
    X, _, t3, _ = small
    est = _quiet_fit(MLPClassifier(hidden_layer_sizes=(4, 3), activation="relu", solver="lbfgs",
                                   alpha=0.1, tol=1e-12, max_iter=3000, random_state=0), X, t3)
    # a private method of sklearn (installed with the dev extra): fails loudly if it moves
    assert hasattr(est, "_backprop"), "sklearn's MLP no longer has _backprop: update this check"
    Yb = est._label_binarizer.transform(t3)
    acts = [X] + [None] * (est.n_layers_ - 1)
    cg = [np.empty_like(W) for W in est.coefs_]
    ig = [np.empty_like(b) for b in est.intercepts_]
    params = inspect.signature(est._backprop).parameters
    args = (X, Yb, None, acts, [None] * (len(acts) - 1), cg, ig) if "sample_weight" in params \
        else (X, Yb, acts, [None] * (len(acts) - 1), cg, ig)
    _, cg, ig = est._backprop(*args)
    G_sk = np.concatenate([a for W, b in zip(cg, ig) for a in (W.ravel(), b)])
    F, g = rs.per_sample(est, X, t3)
    np.testing.assert_allclose(g.mean(0) + rs.penalty(est, 40) * rs.parameters(est), G_sk,
                               atol=1e-14)


# ---------------------------------------------------------------- same numbers as by hand
def test_rate_and_critical_alpha_equal_the_set_built_by_hand(breast_cancer):
    X, t = breast_cancer
    n, p = X.shape
    est = LogisticRegression(C=1.0, tol=1e-10, max_iter=10_000).fit(X, t)
    forget = np.arange(0, n, 25)
    hs = rs.hessian_set(est, X, t, forget=forget)
    # by hand: rank-one factors √(σσ')·[x, 1], regularised gradients, Q on the coefficients
    Z = np.c_[X, np.ones(n)]
    w = np.r_[est.coef_.ravel(), est.intercept_]
    ys = 2.0 * t - 1
    f = Z @ w
    Fh = np.sqrt(expit(f) * expit(-f))[:, None] * Z
    c = np.r_[np.full(p, 1.0 / n), 0.0]
    gh = (-ys * expit(-ys * f))[:, None] * Z + c * w
    Q = np.zeros((p + 1, p))
    Q[np.arange(p), np.arange(p)] = np.sqrt(1.0 / n)
    keep = np.ones(n, bool)
    keep[forget] = False
    by_hand = rmt.HessianSet.from_factors(Fh[keep], Fh[forget], retain_gradients=gh[keep],
                                          forget_gradients=gh[forget], shared=Q)
    sch = rmt.Schedule(eta=1.0, batch=16, alpha=0.05, forget_batch=4,
                       sampling="without_replacement")
    a, b = rmt.mean_square(hs, sch), rmt.mean_square(by_hand, sch)
    assert a.rate == pytest.approx(b.rate, rel=1e-11, abs=1e-13)
    assert a.verdict == b.verdict
    ca, cb = rmt.critical_alpha(hs, sch), rmt.critical_alpha(by_hand, sch)
    assert float(ca) == pytest.approx(float(cb), rel=1e-9)


def test_ten_lines_from_sklearn_to_forecast_and_critical_alpha(breast_cancer):
    X, y = breast_cancer
    forget_rows = np.arange(0, len(y), 20)
    # --- the snippet of docs/models.md and README (≤ 10 lines) ---
    from sklearn.linear_model import LogisticRegression
    import rmt
    from rmt.adapters import sklearn as rs
    clf = LogisticRegression(C=1.0).fit(X, y)                   # X standardised
    hs = rs.hessian_set(clf, X, y, forget=forget_rows)          # w* checked: hs.stationarity
    sch = rmt.Schedule(eta=1.0, batch=16, alpha=0.05, forget_batch=4,
                       sampling="without_replacement")
    fc = rmt.forecast(hs, sch, 300, seed=0)
    print(fc.summary(), rmt.critical_alpha(hs, sch))
    # --- end of snippet ---
    assert hs.stationarity.stationary
    assert np.isfinite(float(rmt.critical_alpha(hs, sch)))
    assert fc.rate == pytest.approx(rmt.mean_square(hs, sch).rate)


# ---------------------------------------------------------------- stationarity (issue instance)
def test_breast_cancer_stationarity_uses_data_plus_penalty(breast_cancer):
    X, t = breast_cancer
    est = LogisticRegression(C=1.0).fit(X, t)
    F, g = rs.per_sample(est, X, t)
    assert np.linalg.norm(g.mean(0)) == pytest.approx(6.8e-3, rel=0.05)  # data gradient alone
    rep = rs.stationarity(est, X, t)
    assert rep.stationary and rep.value < 1e-3            # default tol: 3.1e-4
    tight = LogisticRegression(C=1.0, tol=1e-12, max_iter=10_000).fit(X, t)
    assert rs.stationarity(tight, X, t).value < 1e-6      # converged: ~4e-8
    with warnings.catch_warnings():
        warnings.simplefilter("error", NotStationaryWarning)
        rs.hessian_set(tight, X, t, forget=[0, 1, 2])      # no warning at a converged fit
    stopped = _quiet_fit(LogisticRegression(C=1.0, max_iter=3), X, t)
    with pytest.warns(NotStationaryWarning, match=r"s = 0\.1\d") as rec:
        hs = rs.hessian_set(stopped, X, t, forget=[0, 1, 2])
    assert rec[0].filename == __file__                    # points at the caller's line
    assert not hs.stationarity.stationary and hs.stationarity.value > 0.05


# ---------------------------------------------------------------- options and refusals
def test_decay_options_and_forget_forms(small):
    X, t, _, _ = small
    est = LogisticRegression(C=0.7, tol=1e-12, max_iter=10_000).fit(X, t)
    a = rs.hessian_set(est, X, t, forget=np.array([2, 9]))
    mask = np.zeros(40, bool)
    mask[[9, 2]] = True
    b = rs.hessian_set(est, X, t, forget=mask)
    np.testing.assert_array_equal(a.factors("forget"), b.factors("forget"))
    iso = rs.hessian_set(est, X, t, forget=[2, 9], decay="isotropic")
    assert iso.shared_scalar == pytest.approx(1 / (0.7 * 40)) and iso.shared_factor is None
    np.testing.assert_array_equal(iso.gradients("retain"), a.gradients("retain"))
    none = rs.hessian_set(est, X, t, forget=[2, 9], decay="none")
    F, g = rs.per_sample(est, X, t)
    assert not none.has_shared
    np.testing.assert_array_equal(none.gradients("forget"), g[[2, 9]])
    assert none.stationarity.stationary  # the check uses the trained objective in every mode
    whole = rs.hessian_set(est, X, t)
    assert whole.n_retain == 40 and not whole.has_forget
    with pytest.raises(ValueError, match="repeated"):
        rs.hessian_set(est, X, t, forget=[1, 1])
    with pytest.raises(ValueError, match="every row"):
        rs.hessian_set(est, X, t, forget=np.ones(40, bool))
    with pytest.raises(ValueError, match="decay must be one of"):
        rs.hessian_set(est, X, t, decay="full")
    with pytest.raises(ValueError, match="labels the estimator was not fitted on"):
        rs.hessian_set(est, X, t + 5)


def test_exact_decay_refuses_a_huge_shared_factor_and_isotropic_is_the_way_out(small, monkeypatch):
    X, _, t3, _ = small
    est = _quiet_fit(MLPClassifier(hidden_layer_sizes=(4,), solver="lbfgs", alpha=0.1,
                                   max_iter=200, random_state=0), X, t3)
    monkeypatch.setattr(rs, "MAX_SHARED_ENTRIES", 100)
    with pytest.raises(ValueError, match="decay='isotropic'"):
        rs.hessian_set(est, X, t3, forget=[0, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotStationaryWarning)
        iso = rs.hessian_set(est, X, t3, forget=[0, 1], decay="isotropic")
    assert iso.shared_scalar == pytest.approx(0.1 / 40) and iso.shared_factor is None
    assert iso.kind == "factor" and iso.rank == 2


def test_refusals_name_the_reason(small):
    X, t, t3, Y = small
    l1 = _quiet_fit(LogisticRegression(l1_ratio=1.0, solver="saga", C=1.0, max_iter=200), X, t)
    with pytest.raises(ValueError, match="L1 term has no curvature"):
        rs.hessian_set(l1, X, t)
    en = _quiet_fit(LogisticRegression(l1_ratio=0.5, solver="saga", max_iter=200), X, t)
    with pytest.raises(ValueError, match="elasticnet"):
        rs.per_sample(en, X, t)
    with pytest.raises(ValueError, match="class_weight"):
        rs.hessian_set(LogisticRegression(class_weight="balanced").fit(X, t), X, t)
    with pytest.raises(ValueError, match="positive=True"):
        rs.hessian_set(LinearRegression(positive=True).fit(X, Y[:, 0]), X, Y[:, 0])
    with pytest.raises(ValueError, match="must be fitted"):
        rs.hessian_set(LogisticRegression(), X, t)
    with pytest.raises(TypeError, match="must be a fitted scikit-learn"):
        rs.hessian_set(_quiet_fit(LinearSVC(), X, t), X, t)
    with pytest.raises(ValueError, match="multilabel"):
        ml = _quiet_fit(MLPClassifier(hidden_layer_sizes=(3,), max_iter=5),
                        X, np.c_[t, 1 - t])
        rs.hessian_set(ml, X, np.c_[t, 1 - t])
    with pytest.raises(ValueError, match="features"):
        rs.hessian_set(LogisticRegression().fit(X, t), X[:, :2], t)


def test_public_functions_declare_their_constraints():
    for name in rs.__all__:
        fn = getattr(rs, name)
        if inspect.isfunction(fn):
            table = getattr(fn, "parameter_constraints", None)
            assert table is not None, name
            assert set(table) == set(inspect.signature(fn).parameters), name


def test_issue_instance_numbers(breast_cancer):
    """The breast-cancer instance of docs/models.md "Weight decay (L2)" (built by hand in
    tests/test_io_roundtrip.py): forget = rows 0..29, η = 0.32, B = 8, α = 0.1 without
    replacement → ρ(T) = 0.99929 (resists), α* = 0.1434."""
    X, t = breast_cancer
    est = LogisticRegression(C=1.0, max_iter=100_000, tol=1e-12).fit(X, t)
    hs = rs.hessian_set(est, X, t, forget=np.arange(30))
    sch = rmt.Schedule(eta=0.32, batch=8, alpha=0.1, sampling="without_replacement")
    assert rmt.mean_square(hs, sch).rate == pytest.approx(0.99929, abs=5e-6)
    assert float(rmt.critical_alpha(hs, sch)) == pytest.approx(0.1434, abs=5e-5)


def test_minibatch_mlp_penalty_is_alpha_over_the_batch_size(small):
    X, _, t3, Y = small
    adam = _quiet_fit(MLPClassifier(hidden_layer_sizes=(3,), alpha=0.2, batch_size=8,
                                    max_iter=3, random_state=0), X, t3)
    c = rs.penalty(adam, 40)
    assert c.max() == pytest.approx(0.2 / 8)
    reg = _quiet_fit(MLPRegressor(hidden_layer_sizes=(3,), alpha=0.2, solver="lbfgs",
                                  max_iter=3, random_state=0), X, Y)
    assert rs.penalty(reg, 40).max() == pytest.approx(2 * 0.2 / 40)  # K = 2 outputs


def test_an_interpolating_fit_has_exactly_zero_gradients(small):
    X, _, _, Y = small
    y = X @ [1.0, -2.0, 0.5] + 3.0  # exactly linear: the least-squares residuals are round-off
    est = LinearRegression().fit(X, y)
    F, g = rs.per_sample(est, X, y)
    assert np.any(g != 0)
    hs = rs.hessian_set(est, X, y, forget=[0, 1])
    assert not np.any(hs.gradients("retain")) and not np.any(hs.gradients("forget"))
    assert hs.stationarity.zeroed == 40 and "below round-off" in hs.stationarity.note
    assert rs.hessian_set(LinearRegression().fit(X, Y[:, 0]), X, Y[:, 0]).stationarity.zeroed == 0
