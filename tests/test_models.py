"""rmt.models: Jacobians, Gauss–Newton factors, training, HessianSet, nonlinear unlearning runner."""

import numpy as np
import pytest

import rmt
from rmt import models as M


def _data(rng, n, p, loss, K):
    X = rng.standard_normal((n, p))
    if loss == "squared":
        y = rng.standard_normal((n, K)) if K > 1 else rng.standard_normal(n)
    elif loss == "logistic":
        y = rng.choice([-1.0, 1.0], size=n)
    else:
        y = rng.integers(0, K, size=n)
    return X, y


MODELS = [
    ("linreg", lambda: M.LinearRegression(3, 2), "squared", 2),
    ("logreg", lambda: M.LogisticRegression(3), "logistic", 1),
    ("softmax", lambda: M.SoftmaxRegression(3, 4), "softmax", 4),
    ("mlp-tanh-sq", lambda: M.MLP(3, 4, 2, activation="tanh"), "squared", 2),
    ("mlp-softplus-ce", lambda: M.MLP(3, 4, 3, activation="softplus", loss="softmax"),
     "softmax", 3),
    ("mlp-tanh-log", lambda: M.MLP(3, 5, 1, loss="logistic"), "logistic", 1),
]


def _fd(fun, w, h=1e-6):
    cols = []
    for j in range(w.size):
        e = np.zeros_like(w)
        e[j] = h
        cols.append((fun(w + e) - fun(w - e)) / (2 * h))
    return np.stack(cols, axis=-1)


def _rel(a, b):
    return np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300)


@pytest.mark.parametrize("name,make,loss,K", MODELS, ids=[m[0] for m in MODELS])
def test_jacobian_matches_central_differences(name, make, loss, K):
    rng = np.random.default_rng(0)
    model = make()
    w = rng.standard_normal(model.n_params) * 0.7
    X, _ = _data(rng, 5, 3, loss, K)
    J = model.jacobian(w, X)
    assert J.shape == (5, K, model.n_params)
    assert _rel(J, _fd(lambda v: model.outputs(v, X), w)) < 1e-6
    V = rng.standard_normal((5, K))
    assert np.allclose(model.vjp(w, X, V), np.einsum("nkd,nk->d", J, V), atol=1e-12)


@pytest.mark.parametrize("name,make,loss,K", MODELS, ids=[m[0] for m in MODELS])
def test_loss_gradients_match_finite_differences(name, make, loss, K):
    rng = np.random.default_rng(1)
    model = make()
    w = rng.standard_normal(model.n_params) * 0.7
    X, y = _data(rng, 4, 3, loss, K)
    F, g = M.gauss_newton(model.jacobian(w, X), model.outputs(w, X), y, loss)
    fd = _fd(lambda v: M.per_sample_loss(model.outputs(v, X), y, loss), w)
    assert _rel(g, fd) < 1e-6
    assert np.allclose(M.loss_gradients(model, w, X, y), g)


def test_gauss_newton_factor_identities():
    rng = np.random.default_rng(2)
    n, d = 4, 6
    # squared, K = 3: FFᵀ = JᵀJ, factor rank K
    J = rng.standard_normal((n, 3, d))
    f = rng.standard_normal((n, 3))
    F, g = M.gauss_newton(J, f, rng.standard_normal((n, 3)), "squared")
    assert F.shape == (n, d, 3)
    assert np.allclose(np.einsum("nak,nbk->nab", F, F), np.einsum("nka,nkb->nab", J, J))
    # logistic: FFᵀ = ℓ'' ∇f∇fᵀ with ℓ'' = σ(f)σ(−f); (n, d) Jacobian accepted for K = 1
    J1 = rng.standard_normal((n, d))
    f1 = rng.standard_normal(n) * 3
    y1 = rng.choice([-1.0, 1.0], size=n)
    F, g = M.gauss_newton(J1, f1, y1, "logistic")
    assert F.shape == (n, d, 1)
    s = 1 / (1 + np.exp(-f1))
    lpp = s * (1 - s)
    assert np.allclose(np.einsum("nak,nbk->nab", F, F),
                       lpp[:, None, None] * J1[:, :, None] * J1[:, None, :])
    assert np.allclose(g, (-y1 / (1 + np.exp(y1 * f1)))[:, None] * J1)
    # softmax, K = 4: FFᵀ = Jᵀ(diag p − ppᵀ)J, rank K − 1
    K = 4
    J = rng.standard_normal((n, K, d))
    f = rng.standard_normal((n, K)) * 2
    y = rng.integers(0, K, n)
    F, g = M.gauss_newton(J, f, y, "softmax")
    assert F.shape == (n, d, K - 1)
    p = np.exp(f) / np.exp(f).sum(axis=1, keepdims=True)
    A = np.einsum("nk,kl->nkl", p, np.eye(K)) - p[:, :, None] * p[:, None, :]
    assert np.allclose(np.einsum("nak,nbk->nab", F, F), np.einsum("nka,nkl,nlb->nab", J, A, J))
    assert np.allclose(g, np.einsum("nkd,nk->nd", J, p - np.eye(K)[y]))
    # soft targets accepted and give the same curvature
    F2, _ = M.gauss_newton(J, f, np.full((n, K), 1 / K), "softmax")
    assert np.allclose(np.einsum("nak,nbk->nab", F2, F2), np.einsum("nak,nbk->nab", F, F))


@pytest.mark.parametrize("which", ["linreg", "logreg", "softmax"])
def test_linear_model_loss_hessian_equals_gauss_newton(which):
    name, make, loss, K = next(m for m in MODELS if m[0] == which)
    rng = np.random.default_rng(3)
    model = make()
    w = rng.standard_normal(model.n_params) * 0.5
    X, y = _data(rng, 3, 3, loss, K)
    F, _ = M.gauss_newton(model.jacobian(w, X), model.outputs(w, X), y, loss)
    for i in range(3):
        H = _fd(lambda v: M.loss_gradients(model, v, X[i:i + 1], y[i:i + 1])[0], w, h=1e-5)
        GN = F[i] @ F[i].T
        assert np.max(np.abs(H - GN)) < 1e-7 * max(1.0, np.max(np.abs(GN)))


def test_train_reaches_verified_minimum_with_weight_decay():
    rng = np.random.default_rng(4)
    X, y = _data(rng, 40, 3, "softmax", 3)
    model = M.MLP(3, 4, 3, loss="softmax")
    lam = 1e-2
    res = M.train(model, X, y, weight_decay=lam, seed=0, tol=1e-8)
    assert res.converged and res.grad_norm <= res.tol
    g = M.loss_gradients(model, res.w, X, y)
    assert np.linalg.norm(g.mean(axis=0) + lam * res.w) <= res.tol
    # non-interpolating: per-sample gradients are not zero, their weighted sum cancels the decay
    assert np.linalg.norm(g, axis=1).max() > 1e-3
    assert res.separated is not None and res.note == ""


def test_train_reports_separable_logistic_without_decay():
    rng = np.random.default_rng(5)
    X = rng.standard_normal((30, 2))
    y = np.sign(X[:, 0] + 1e-3)
    res = M.train(M.LogisticRegression(2), X, y, maxiter=200)
    assert res.separated
    assert "no finite minimiser" in res.note
    # squared regression with more parameters than samples interpolates
    Xs, ys = rng.standard_normal((5, 8)), rng.standard_normal(5)
    r2 = M.train(M.LinearRegression(8), Xs, ys, tol=1e-8)
    assert r2.converged and r2.data_loss < 1e-12 and r2.separated is None


def test_train_reports_non_convergence():
    rng = np.random.default_rng(6)
    X, y = _data(rng, 30, 3, "squared", 1)
    res = M.train(M.MLP(3, 4), X, y, maxiter=1, polish=0, tol=1e-12)
    assert not res.converged and "not a verified minimum" in res.note


def test_hessian_set_kinds_and_ranks():
    rng = np.random.default_rng(7)
    X, y = _data(rng, 12, 3, "softmax", 4)
    model = M.SoftmaxRegression(3, 4)
    w = rng.standard_normal(model.n_params)
    hs = M.hessian_set(model, w, X[:8], y[:8], X[8:], y[8:])
    assert hs.kind == "factor" and hs.rank == 3 and hs.n_retain == 8 and hs.n_forget == 4
    assert hs.gradients("retain").shape == (8, model.n_params)
    Xb, yb = _data(rng, 10, 3, "logistic", 1)
    lr = M.LogisticRegression(3)
    hs1 = M.hessian_set(lr, np.zeros(4), Xb, yb)
    assert hs1.kind == "rank1" and not hs1.has_forget
    f = lr.outputs(np.zeros(4), Xb)[:, 0]
    assert np.allclose(hs1.factors()[:, :, 0], 0.5 * lr.jacobian(np.zeros(4), Xb)[:, 0, :])
    assert f.shape == (10,)


def _affine_prediction(dyn, delta0, x):
    J, b = dyn.step(x)
    P = np.concatenate([dyn.basis, dyn.drift_basis], axis=1)
    c0 = P.T @ delta0
    return P @ (J @ c0 + b) + (delta0 - P @ c0)


RUNNER_CASES = [
    ("logreg", "summed", "bernoulli"),
    ("logreg", "alternating", "with_replacement"),
    ("softmax", "summed", "without_replacement"),
    ("softmax", "alternating", "bernoulli"),
    ("linreg", "summed", "with_replacement"),
    ("linreg", "sam", "without_replacement"),
]


@pytest.mark.parametrize("which,comb,sampling", RUNNER_CASES)
def test_one_nonlinear_step_matches_linearised_step(which, comb, sampling):
    name, make, loss, K = next(m for m in MODELS if m[0] == which)
    rng = np.random.default_rng(8)
    model = make()
    X, y = _data(rng, 24, 3, loss, K)
    res = M.train(model, X, y, weight_decay=0.05, tol=1e-9)
    assert res.converged
    R, F = np.arange(16), np.arange(16, 24)
    hs = M.hessian_set(model, res.w, X[R], y[R], X[F], y[F])
    kw = dict(sam_rho=0.5) if comb == "sam" else dict(alpha=0.3)
    sch = rmt.Schedule(eta=1e-3, batch=4, sampling=sampling, schedule=comb, forget_batch=3, **kw)
    delta0 = rng.standard_normal(model.n_params) * 1e-3
    args = (model, res.w, X[R], y[R], X[F], y[F])
    run = M.unlearn(*args, schedule=sch, steps=1, seed=11, start=delta0, record=True)
    x = {k: v[0] for k, v in run.indicators[0].items()}
    assert set(x) == ({"retain"} if comb == "sam" else {"retain", "forget"})
    dyn = rmt.Dynamics(hs, sch)
    pred = _affine_prediction(dyn, delta0, x)
    moved = run.final_w[0] - res.w - delta0
    # the increment is O(η); the linearisation error is O(η‖δ‖²) (exact curvature: linear model)
    assert np.linalg.norm(moved) > 1e-6
    assert np.linalg.norm(moved - (pred - delta0)) < 1e-4 * np.linalg.norm(moved)
    assert run.distances[0, 0] == pytest.approx(np.linalg.norm(run.final_w[0] - res.w))
    # the drift dominates the increment: isolate the curvature part (J − I)δ_0 by subtracting
    # the run from δ_0 = 0 with the same seed (the draws do not depend on w)
    run0 = M.unlearn(*args, schedule=sch, steps=1, seed=11, record=True)
    assert np.array_equal(run0.indicators[0]["retain"], run.indicators[0]["retain"])
    curv = run.final_w[0] - delta0 - run0.final_w[0]
    pred_curv = pred - delta0 - _affine_prediction(dyn, np.zeros_like(delta0), x)
    assert np.linalg.norm(pred_curv) > 1e-8
    assert np.linalg.norm(curv - pred_curv) < 5e-3 * np.linalg.norm(pred_curv)


def test_mlp_first_step_from_minimum_is_the_drift():
    rng = np.random.default_rng(9)
    model = M.MLP(3, 4, 1, activation="softplus")
    X, y = _data(rng, 20, 3, "squared", 1)
    res = M.train(model, X, y, weight_decay=0.05, tol=1e-9)
    R, F = np.arange(14), np.arange(14, 20)
    hs = M.hessian_set(model, res.w, X[R], y[R], X[F], y[F])
    sch = rmt.Schedule(eta=0.05, batch=5, alpha=0.4, sampling="bernoulli", forget_batch=2)
    run = M.unlearn(model, res.w, X[R], y[R], X[F], y[F], schedule=sch, steps=1, seed=[1, 2],
                    record=True)
    for s in range(2):
        x = {k: v[0] for k, v in run.indicators[s].items()}
        pred = _affine_prediction(rmt.Dynamics(hs, sch), np.zeros(model.n_params), x)
        assert np.allclose(run.final_w[s] - res.w, pred, atol=1e-12)


def test_runner_sampling_batches_and_reproducibility():
    rng = np.random.default_rng(10)
    X, y = _data(rng, 20, 2, "squared", 1)
    model = M.LinearRegression(2)
    w = M.train(model, X, y).w
    for sampling, check in [
        ("bernoulli", lambda x: set(np.unique(x)) <= {0.0, 1.0}),
        ("with_replacement", lambda x: x.sum() == 4 and np.all(x == np.round(x))),
        ("without_replacement", lambda x: x.sum() == 4 and set(np.unique(x)) <= {0.0, 1.0}),
    ]:
        sch = rmt.Schedule(eta=0.1, batch=4, alpha=0.5, sampling=sampling, forget_batch=2)
        a = M.unlearn(model, w, X[:14], y[:14], X[14:], y[14:], schedule=sch, steps=30,
                      seed=[3, 4], record=True)
        b = M.unlearn(model, w, X[:14], y[:14], X[14:], y[14:], schedule=sch, steps=30,
                      seed=[3, 4])
        assert np.array_equal(a.distances, b.distances)
        assert a.distances.shape == (2, 30)
        assert all(check(x) for x in a.indicators[0]["retain"])
        if sampling == "bernoulli":
            assert abs(a.indicators[0]["retain"].mean() - 4 / 14) < 0.15
    # α = 0: the forget set is not drawn
    sch0 = rmt.Schedule(eta=0.1, batch=4)
    r0 = M.unlearn(model, w, X, y, schedule=sch0, steps=3, record=True)
    assert set(r0.indicators[0]) == {"retain"} and np.isnan(r0.forget_loss[0])


def test_runner_overflow_gives_inf_never_nan_and_escape_protocol():
    rng = np.random.default_rng(11)
    X, y = _data(rng, 10, 2, "squared", 1)
    X *= 10
    model = M.LinearRegression(2)
    w = M.train(model, X, y).w
    sch = rmt.Schedule(eta=5.0, batch=3, alpha=0.5, sampling="with_replacement")
    run = M.unlearn(model, w, X[:6], y[:6], X[6:], y[6:], schedule=sch, steps=400,
                    seed=[0, 1, 2], start=np.full(3, 1e-3))
    assert not np.any(np.isnan(run.distances))
    assert run.overflowed.all() and np.isinf(run.distances[:, -1]).all()
    assert np.isinf(run.retain_loss).all()
    assert run.left(1e6).all() and run.leave_fraction(1e6) == 1.0
    assert np.all(run.first_exit(1e6) >= 1)
    # a tiny step stays inside a big ball
    calm = M.unlearn(model, w, X[:6], y[:6], X[6:], y[6:], schedule=sch.replace(eta=1e-6),
                     steps=5, seed=0, start=np.full(3, 1e-3))
    assert not calm.left(1.0).any() and calm.first_exit(1.0)[0] == -1
    wd = M.unlearn(model, w, X, y, schedule=rmt.Schedule(eta=0.01, batch=2), steps=2,
                   weight_decay=0.1)
    assert "does not represent" in wd.note


def test_bad_input_raises_value_error_naming_argument():
    rng = np.random.default_rng(12)
    J = rng.standard_normal((4, 2, 5))
    f = rng.standard_normal((4, 2))
    with pytest.raises(ValueError, match="loss"):
        M.gauss_newton(J, f, f, "hinge")
    with pytest.raises(ValueError, match="jac"):
        M.gauss_newton(np.zeros((4, 2, 5, 1)), f, f, "squared")
    with pytest.raises(ValueError, match="outputs"):
        M.gauss_newton(J, f[:3], f, "squared")
    with pytest.raises(ValueError, match="targets"):
        M.gauss_newton(J, f, f[:, :1], "squared")
    with pytest.raises(ValueError, match="targets"):
        M.gauss_newton(J[:, :1], f[:, :1], np.array([0, 1, 1, 0]), "logistic")
    with pytest.raises(ValueError, match="K = 1"):
        M.gauss_newton(J, f, np.ones(4), "logistic")
    with pytest.raises(ValueError, match="targets"):
        M.gauss_newton(J, f, np.array([0, 1, 2, 1]), "softmax")
    model = M.LogisticRegression(3)
    X, y = _data(rng, 8, 3, "logistic", 1)
    with pytest.raises(ValueError, match="X_retain"):
        M.hessian_set(model, np.zeros(4), X[:, :2], y)
    with pytest.raises(ValueError, match="w"):
        M.hessian_set(model, np.zeros(3), X, y)
    with pytest.raises(ValueError, match="loss"):
        M.hessian_set(model, np.zeros(4), X, y, loss="mse")
    sch = rmt.Schedule(eta=0.1, batch=2, alpha=0.5)
    with pytest.raises(ValueError, match="start"):
        M.unlearn(model, np.zeros(4), X[:5], y[:5], X[5:], y[5:], schedule=sch, steps=2,
                  start=np.zeros(3))
    with pytest.raises(ValueError, match="w_star"):
        M.unlearn(model, np.zeros(5), X[:5], y[:5], X[5:], y[5:], schedule=sch, steps=2)
    with pytest.raises(ValueError, match="X_forget"):
        M.unlearn(model, np.zeros(4), X, y, schedule=sch, steps=2)
    with pytest.raises(ValueError, match="batch"):
        M.unlearn(model, np.zeros(4), X[:5], y[:5], X[5:], y[5:],
                  schedule=sch.replace(batch=6), steps=2)
    with pytest.raises(ValueError, match="steps"):
        M.unlearn(model, np.zeros(4), X[:5], y[:5], X[5:], y[5:], schedule=sch, steps=0)
    with pytest.raises(ValueError, match="activation"):
        M.MLP(3, 4, activation="relu")


def test_digits_helpers_and_forget_sets():
    data = M.load_digits_binary((3, 8), n_components=6, max_train=120, flip=4, seed=0)
    assert data.X_train.shape == (120, 6) and data.n_features == 6
    assert np.allclose(data.X_train.mean(axis=0), 0, atol=1e-10)
    assert np.allclose(data.X_train.std(axis=0), 1)
    assert set(np.unique(data.y_train)) == {-1.0, 1.0}
    assert data.flipped.size == 4
    assert np.all(data.y_train[data.flipped] == -data.y_train_clean[data.flipped])
    others = np.setdiff1d(np.arange(120), data.flipped)
    assert np.array_equal(data.y_train[others], data.y_train_clean[others])
    multi = M.load_digits(classes=(0, 1, 2), n_components=5, max_train=90, flip=3)
    assert set(np.unique(multi.y_train_clean)) == {0, 1, 2}
    assert np.all(multi.y_train[multi.flipped] != multi.y_train_clean[multi.flipped])

    model = M.LogisticRegression(6)
    res = M.train(model, data.X_train, data.y_train, weight_decay=1e-2)
    assert res.converged
    n = 120
    r, f = M.forget_set("typical", n, 10, seed=1)
    assert f.size == 10 and np.array_equal(np.sort(np.concatenate([r, f])), np.arange(n))
    r, f = M.forget_set("hard", n, 5, model=model, w=res.w, X=data.X_train, y=data.y_train)
    losses = M.per_sample_loss(model.outputs(res.w, data.X_train), data.y_train, "logistic")
    assert losses[f].min() >= losses[r].max()
    r, f = M.forget_set("relabelled", n, flipped=data.flipped)
    assert np.array_equal(f, data.flipped)
    with pytest.raises(ValueError, match="kind"):
        M.forget_set("random", n, 3)
    hs = M.hessian_set(model, res.w, data.X_train[r], data.y_train[r], data.X_train[f],
                       data.y_train[f])
    assert hs.kind == "rank1" and hs.n_forget == 4
