"""Benchmark of ``rmt.forecast`` and ``rmt.horizon_critical`` on a digits MLP with r ≈ 300 (issue 21).

The case (the model of the issue): scikit-learn's digits 3 vs 8, PCA to 12 components, 300
training samples (test fraction 0.1) with 6 flipped labels, a one-hidden-layer tanh MLP with 32
hidden units and squared loss on ±1 targets (d = 449 > n: trained by :func:`rmt.models.train` to
near interpolation, so the per-sample gradients are round-off, ~1e−15), a typical forget set of 6
samples; :func:`rmt.models.hessian_set` gives span r = 300. Schedule: sampling without
replacement, batch 8, forget batch 6, α = 0.1, the summed schedule, η = ``--eta-rel`` × 2/λ_max(H̄_R).

Timed, each in a fresh subprocess (model built there, not timed; numba kernels warmed first):

* ``forecast``: ``rmt.forecast(dyn, steps, seed=0)`` (defaults: 256 replicas, almost-sure);
* ``horizon_critical``: ``rmt.horizon_critical(dyn, None, "eta", steps)``;

for the code at ``--old`` (default: the commit before the issue-21 forecast work, checked out as
a git worktree in a temporary directory and put first on ``sys.path``) and for this checkout,
in the same run, and prints the ratios. A run of the old code longer than ``--timeout`` seconds
is stopped and reported as a lower bound. Run::

    python benchmarks/bench_forecast.py                  # steps 200
    python benchmarks/bench_forecast.py --steps 300 --timeout 1200
    python benchmarks/bench_forecast.py --blas-threads 1   # on a busy machine
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: the commit the issue-21 forecast work started from
OLD_COMMIT = "d54d21a"

_CHILD = r"""
import json, math, sys, time, warnings
sys.path.insert(0, {root!r})
import numpy as np
import rmt
from rmt import models as M
assert rmt.__file__.startswith({root!r}), rmt.__file__
warnings.simplefilter("ignore")
data = M.load_digits_binary((3, 8), n_components=12, max_train=300, flip=6, seed=0,
                            test_fraction=0.1)
X, y = data.X_train, data.y_train.astype(float)
mlp = M.MLP(X.shape[1], 32, 1, activation="tanh", loss="squared")
tr = M.train(mlp, X, y, "squared", seed=0, tol=1e-7, maxiter=20000)
retain, forget = M.forget_set("typical", len(y), 6, seed=0)
hs = M.hessian_set(mlp, tr.w, X[retain], y[retain], X[forget], y[forget], "squared")
lam = float(np.linalg.eigvalsh(hs.reduction(True, False).mean("retain"))[-1])
sch = rmt.Schedule({eta_rel} * 2 / lam, 8, alpha=0.1, sampling="without_replacement",
                   forget_batch=6)
dyn = rmt.Dynamics(hs, sch)
# warm-up: numba kernels (cached on disk) and the eigenbasis, not timed
small = rmt.Dynamics(rmt.HessianSet.from_factors(np.eye(3), retain_gradients=1e-3 * np.eye(3)),
                     rmt.Schedule(0.1, 1))
rmt.forecast(small, 5, replicas=4, seed=0)
out = dict(r=dyn.r, d=hs.dim, grad_max=float(np.abs(hs.gradients("retain")).max())
           if hasattr(hs, "gradients") else None)
kw = {{"progress": False}} if "progress" in rmt.forecast.parameter_constraints else {{}}
t = time.perf_counter()
fc = rmt.forecast(dyn, {steps}, seed=0, **kw)
out["forecast"] = time.perf_counter() - t
out["outcome"], out["radius"], out["rate"] = fc.outcome, fc.radius, fc.rate
print("RESULT " + json.dumps(out), flush=True)
t = time.perf_counter()
hc = rmt.horizon_critical(dyn, None, "eta", {steps}, **kw)
out["horizon_critical"] = time.perf_counter() - t
out["eta_K"], out["eta_asymptotic"] = hc.value, hc.asymptotic
print("RESULT " + json.dumps(out), flush=True)
"""


def _run(root: Path, steps: int, eta_rel: float, timeout: float,
         blas_threads: int | None = None) -> dict:
    code = _CHILD.format(root=str(root), steps=steps, eta_rel=eta_rel)
    env = dict(os.environ, RMT_PROGRESS="0", PYTHONPATH=str(root))
    if blas_threads is not None:
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(blas_threads)
    t0 = time.perf_counter()
    try:
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           timeout=timeout, env=env, cwd=str(root))
        stdout, timed_out = p.stdout, False
        if p.returncode != 0:
            raise RuntimeError(f"benchmark child failed in {root}:\n{p.stderr[-3000:]}")
    except subprocess.TimeoutExpired as exc:
        stdout, timed_out = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) \
            else (exc.stdout or ""), True
    lines = [ln for ln in stdout.splitlines() if ln.startswith("RESULT ")]
    res = json.loads(lines[-1][7:]) if lines else {}
    res["timed_out"] = timed_out
    res["wall"] = time.perf_counter() - t0
    return res


def _fmt(res: dict, key: str, timeout: float) -> str:
    if key in res:
        return f"{res[key]:8.2f} s"
    return f"> {timeout:.0f} s (stopped)" if res.get("timed_out") else "   n/a"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--eta-rel", type=float, default=0.05,
                    help="η in units of 2/λ_max(H̄_R) (default 0.05: ρ(T) < 1)")
    ap.add_argument("--old", default=OLD_COMMIT, help="git commit of the old implementation")
    ap.add_argument("--timeout", type=float, default=900.0,
                    help="seconds after which the old code's run is stopped")
    ap.add_argument("--blas-threads", type=int, default=None,
                    help="cap BLAS threads in both children (e.g. 1 on a busy machine, where "
                         "spinning BLAS threads inflate every timing)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="rmt-bench-forecast-") as tmp:
        old_root = Path(tmp) / "old"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(old_root),
                        args.old], check=True, capture_output=True)
        try:
            new = _run(ROOT, args.steps, args.eta_rel, args.timeout, args.blas_threads)
            old = _run(old_root, args.steps, args.eta_rel, args.timeout, args.blas_threads)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                            str(old_root)], capture_output=True)
    print(f"digits MLP: r = {new.get('r')}, d = {new.get('d')}, steps = {args.steps}, "
          f"η = {args.eta_rel}·2/λ_max, ρ(T) = {new.get('rate')}, max |g_i| = "
          f"{new.get('grad_max')}, BLAS threads = {args.blas_threads or 'default'}")
    print(f"{'':18s} {'old (' + args.old + ')':>22s} {'new':>12s} {'old/new':>9s}")
    for key in ("forecast", "horizon_critical"):
        ratio = (f"{old[key] / new[key]:8.1f}x" if key in old and key in new else
                 (f"> {args.timeout / new[key]:.1f}x" if key in new and old.get("timed_out")
                  else "n/a"))
        print(f"{key:18s} {_fmt(old, key, args.timeout):>22s} {_fmt(new, key, args.timeout):>12s} "
              f"{ratio:>9s}")
    for name, res in (("old", old), ("new", new)):
        print(f"{name}: outcome {res.get('outcome')}, radius {res.get('radius')}, "
              f"η_K = {res.get('eta_K')}, asymptotic η* = {res.get('eta_asymptotic')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
