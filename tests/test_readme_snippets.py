"""The README's model-to-forecast snippets run as printed (issue 21: ≤ 10 lines per framework).

Each ``### A … model`` section's python block is extracted from README.md and executed with the
names it presumes (a fitted model's data, its trained parameters) prepared here; the test then
checks what the snippet promises: a stationary w*, a forecast and a finite critical α.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np

import rmt

README = Path(__file__).resolve().parents[1] / "README.md"


def snippet(heading: str) -> str:
    text = README.read_text(encoding="utf-8")
    i = text.index(heading)
    m = re.compile(r"```python\n(.*?)```", re.S).search(text, i)
    assert m is not None, heading
    code = m.group(1)
    lines = [ln for ln in code.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    assert len(lines) <= 10, (heading, len(lines))  # the bar: ≤ 10 lines
    return code


def _run(code: str, env: dict) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("error", rmt.stationarity.NotStationaryWarning)
        exec(compile(code, str(README), "exec"), env)
    return env


def _check(env: dict) -> None:
    hs, fc = env["hs"], env["fc"]
    assert hs.stationarity.stationary, hs.stationarity
    assert fc.outcome in ("escapes", "displaced", "returns")
    assert np.isfinite(float(rmt.critical_alpha(hs, env["sch"])))


def test_sklearn_snippet_runs():
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True)
    X = (X - X.mean(0)) / X.std(0)
    _check(_run(snippet("### A fitted scikit-learn model"),
                {"X": X, "y": y, "forget_rows": np.arange(0, len(y), 20)}))


def test_jax_snippet_runs():
    import jax.numpy as jnp

    from rmt import models as M
    from rmt.adapters import jax as rj

    data = M.load_digits_binary((3, 8), n_components=12, max_train=120, seed=0)
    X, y = data.X_train, data.y_train
    retain, forget = M.forget_set("typical", len(y), 6, seed=0)

    def apply(params, x):  # one example -> one logit
        return jnp.tanh(x @ params["W"] + params["b"]) @ params["v"]

    rng = np.random.default_rng(0)
    p0 = {"W": 0.3 * rng.standard_normal((12, 8)), "b": np.zeros(8),
          "v": 0.3 * rng.standard_normal(8)}
    model = rj.JaxModel(apply, p0, 12, loss="logistic")
    params = model.unravel(M.train(model, X, y, weight_decay=1e-3, seed=0, tol=1e-9).w)
    _check(_run(snippet("### A JAX model"), {"apply": apply, "params": params, "X": X, "y": y,
                                             "retain": retain, "forget": forget}))


def test_torch_snippet_runs():
    import torch
    from torch import nn

    from rmt import models as M
    from rmt.adapters import torch as rt

    data = M.load_digits_binary((3, 8), n_components=12, max_train=120, seed=0)
    X, y = data.X_train, data.y_train
    retain, forget = M.forget_set("typical", len(y), 6, seed=0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny networks: threads only contend on a busy machine
    try:
        _torch_snippet(torch, nn, M, rt, X, y, retain, forget)
    finally:
        torch.set_num_threads(threads)


def _torch_snippet(torch, nn, M, rt, X, y, retain, forget):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(12, 8), nn.Tanh(), nn.Linear(8, 1), nn.Flatten(0))
    lam = 1e-3
    model = rt.TorchModel(net, 12, loss="logistic")
    net.load_state_dict(model.unravel(M.train(model, X, y, weight_decay=lam, seed=0,
                                              tol=1e-9).w), strict=False)
    net.eval()
    _check(_run(snippet("### A PyTorch model"), {"net": net, "lam": lam, "X": X, "y": y,
                                                 "retain": retain, "forget": forget}))
