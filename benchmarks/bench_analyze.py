"""Benchmark of ``rmt analyze`` on a real model: d = 20 logistic regression on digits 3 vs 8.

The case: scikit-learn's digits (3 vs 8), PCA to 19 components (d = 19 + 1 bias = 20),
160 training samples with 6 flipped labels, logistic regression trained by L-BFGS
(:mod:`rmt.models`), a typical forget set of 8 samples; the HessianSet carries Gauss–Newton
factors and per-sample gradients (a non-interpolating minimum). Analysed with sampling without
replacement, batch 8, α = 0.1, the summed schedule, a 1000-step forecast.

Timed in one process, after a warm-up that compiles the numba kernels and builds the theorem
catalogue (both reported separately — they are paid once per process):

* ``analyze``: :func:`simulations.sweep_cli.analyze` — one ρ(T), η*, α*, B*, Lyapunov estimate and
  forecast per combination, shared by every theorem check, BLAS capped;
* ``naive``: the same report the way the old command computed it — every theorem check on a
  fresh ``(hs, schedule)`` (each recomputes ρ(T), η*, the coherence and the noise operator),
  critical values, Lyapunov and forecast called separately, BLAS threads not capped;
* ``old``: the previous ``rmt analyze`` itself, loaded from git (commit ``OLD_COMMIT``: its
  ``simulations/sweep_cli.py`` and ``theory/theorems.py``, with the dense r²×r² noise operator),
  which computes less (ρ(T), η*, Lyapunov and the 14 theorem checks; no forecast, α*, B*); it is
  compared with ``analyze --no-forecast`` (which adds α* and B* and 7 more statements).

``analyze`` and ``naive`` produce the same numbers (checked). Run::

    python benchmarks/bench_analyze.py            # 1 and 4 combinations, 3 repeats each
    python benchmarks/bench_analyze.py --cli      # also cold `rmt analyze` processes (slow):
                                                  # no kernel cache / empty caches / warm caches
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def build_case(seed=0):
    from rmt import models as M

    data = M.load_digits_binary((3, 8), n_components=19, max_train=160, flip=6, seed=seed)
    X, y = data.X_train, data.y_train
    model = M.LogisticRegression(X.shape[1])
    tr = M.train(model, X, y, "logistic", seed=seed, tol=1e-7)
    retain, forget = M.forget_set("typical", len(y), 8, seed=seed)
    hs = M.hessian_set(model, tr.w, X[retain], y[retain], X[forget], y[forget], "logistic")
    return hs, model


#: the last commit before the rewrite of ``rmt analyze``
OLD_COMMIT = "dd8c671"


def load_old(commit=OLD_COMMIT):
    """The old ``analyze`` (from git), wired to the old theorem catalogue; None if unavailable."""
    import importlib.util

    root = Path(__file__).resolve().parents[1]
    mods = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, path in (("theory._bench_old_theorems", "theory/theorems.py"),
                           ("simulations._bench_old_sweep_cli", "simulations/sweep_cli.py")):
            try:
                src = subprocess.run(["git", "show", f"{commit}:{path}"], cwd=root, check=True,
                                     capture_output=True, text=True).stdout
            except (OSError, subprocess.CalledProcessError):
                return None
            file = Path(tmp) / (name.rsplit(".", 1)[1] + ".py")
            file.write_text(src)
            spec = importlib.util.spec_from_file_location(name, file)
            mod = importlib.util.module_from_spec(spec)
            sys.modules[name] = mod
            spec.loader.exec_module(mod)
            mods[name] = mod
    old_thm, old_cli = mods["theory._bench_old_theorems"], mods["simulations._bench_old_sweep_cli"]
    old_cli._theorems = lambda: (list(old_thm.theorems()), None)
    return old_cli.analyze


OPTS = dict(batches=[8], alphas=[0.1], samplings=["without_replacement"], schedules=["summed"],
            steps=1000)


def naive(hs, etas):
    """The per-theorem path: every check recomputes what it needs; no BLAS cap."""
    import rmt
    from theory.theorems import extra_theorems, theorems

    thms = list(theorems()) + extra_theorems()
    out = []
    for eta in etas:
        sch = rmt.Schedule(eta=eta, batch=8, alpha=0.1, sampling="without_replacement")
        rate = rmt.mean_square(hs, sch).rate
        crit = (rmt.critical_eta(hs, sch), rmt.critical_alpha(hs, sch), rmt.critical_batch(hs, sch))
        rmt.lyapunov(hs, sch, steps=2000, replicas=8, seed=0)
        fc = rmt.forecast(hs, sch, 1000, replicas=256, seed=0)
        checks = [t.check(hs, sch) for t in thms]  # fresh (hs, schedule): nothing shared
        out.append((rate, crit, fc.outcome, [c.applies for c in checks]))
    return out


def _time(fn, repeats):
    """Best wall-clock seconds of ``repeats`` runs (and the CPU seconds of that run: on a loaded
    machine wall time mostly measures the queue, CPU time the work)."""
    best, cpu = math.inf, math.inf
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall = time.perf_counter() - t0
        if wall < best:
            best, cpu = wall, time.process_time() - c0
    return best, cpu


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cli", action="store_true", help="also time cold `rmt analyze` processes")
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    from simulations import sweep_cli

    t0 = time.perf_counter()
    hs, model = build_case()
    print(f"case: {hs!r}, span r = {hs.span_dim}, gradients = {hs.has_gradients} "
          f"(built and trained in {time.perf_counter() - t0:.2f} s)")
    lam = float(np.linalg.eigvalsh(hs.reduction(True, False).mean("retain"))[-1])
    cases = {1: [1.0 / lam], 4: [0.1 / lam, 0.3 / lam, 1.0 / lam, 3.0 / lam]}
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; "
          f"RMT_BLAS_THREADS={os.environ.get('RMT_BLAS_THREADS', 'unset')}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")

    t0 = time.perf_counter()
    sweep_cli.analyze(hs, etas=cases[1], **OPTS)  # warm-up: numba JIT + theorem catalogue
    print(f"warm-up (numba JIT of the Monte Carlo kernels + sympy theorem catalogue, once per "
          f"process): {time.perf_counter() - t0:.2f} s")
    rows = []
    for n, etas in cases.items():
        rep = sweep_cli.analyze(hs, etas=etas, **OPTS)
        ref = naive(hs, etas)
        for r, (rate, crit, outcome, applies) in zip(rep["results"], ref):
            assert abs(r["rate"] - rate) <= 1e-9 * rate, (r["rate"], rate)
            assert r["forecast"]["outcome"] == outcome
            assert [c["applies"] for c in r["theorems"]["checks"]] == applies
        (t_new, c_new) = _time(lambda: sweep_cli.analyze(hs, etas=etas, **OPTS), args.repeats)
        (t_old, c_old) = _time(lambda: naive(hs, etas), args.repeats)
        rows.append((n, t_new, c_new, t_old, c_old))
        print(f"{n} combination(s): analyze {t_new:.3f} s ({c_new:.3f} CPU s), naive per-theorem "
              f"loop {t_old:.3f} s ({c_old:.3f} CPU s), ratio {t_old / t_new:.1f}x "
              f"(best of {args.repeats})")
    print("\n| combinations | analyze wall / CPU (s) | naive loop wall / CPU (s) | ratio (wall) |\n"
          "|---|---|---|---|")
    for n, a, ca, b, cb in rows:
        print(f"| {n} | {a:.3f} / {ca:.3f} | {b:.3f} / {cb:.3f} | {b / a:.1f}x |")

    old = load_old()
    if old is None:
        print(f"\n(old analyze not available: git show {OLD_COMMIT} failed)")
    else:
        old_opts = dict(batches=[8], alphas=[0.1], samplings=["without_replacement"],
                        schedules=["summed"])
        old(hs, etas=cases[1], **old_opts)  # warm-up of the old catalogue
        print(f"\nold `rmt analyze` (git {OLD_COMMIT}) vs analyze without the forecast:")
        print("| combinations | analyze --no-forecast wall / CPU (s) | old analyze wall / CPU (s) "
              "| ratio (wall) |\n|---|---|---|---|")
        for n, etas in cases.items():
            t_new, c_new = _time(lambda: sweep_cli.analyze(hs, etas=etas, forecast=False, **OPTS),
                                 args.repeats)
            t_old, c_old = _time(lambda: old(hs, etas=etas, **old_opts), args.repeats)
            print(f"| {n} | {t_new:.3f} / {c_new:.3f} | {t_old:.3f} / {c_old:.3f} | "
                  f"{t_old / t_new:.1f}x |")

    if args.cli:
        import rmt.io

        with tempfile.TemporaryDirectory() as tmp:
            path = rmt.io.save_npz(Path(tmp) / "digits.npz", hs, loss=model.loss)
            cmd = [sys.executable, "-m", "simulations.cli", "analyze", str(path), "--batch", "8",
                   "--sampling", "without_replacement", "--json"]
            caches = {"NUMBA_CACHE_DIR": str(Path(tmp) / "numba"),
                      "RMT_CACHE_DIR": str(Path(tmp) / "rmt")}
            for label, env in (
                    ("RMT_NUMBA_CACHE=0: kernels compiled in the process", {"RMT_NUMBA_CACHE": "0"}),
                    ("empty on-disk caches (numba kernels, theorem derivations)", caches),
                    ("warm on-disk caches (the default after one run)", caches)):
                t0 = time.perf_counter()
                res = subprocess.run(cmd, capture_output=True, text=True,
                                     env={**os.environ, **env})
                dt = time.perf_counter() - t0
                print(f"cold `rmt analyze` process ({label}): {dt:.2f} s, exit {res.returncode}")


if __name__ == "__main__":
    main()
