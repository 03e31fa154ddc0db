"""Certificate verification time against span r (issue bars: r = 60 exact in < 60 s; the digits
MLP, r ≈ 300–316, rigorously in < 120 s).

Synthetic spans (default): for each r, n = 2r rank-one retain samples in R^r (span r), plain SGD
without replacement, η set so that ρ(T) is just below 1 (the hard side: a Collatz–Wielandt proof
needs two PSD checks, Y ≻ 0 and cY − T(Y) ⪰ 0); ``rmt.certify`` and ``Certificate.verify`` are
timed, and the verification method is printed ("exact" up to ``CONGRUENCE_SPAN`` = 64,
"exact-integer-congruence" above it).

``--digits-mlp``: scikit-learn's digits 3 vs 8, PCA to 12 components, 300 training samples with 6
flipped labels, a one-hidden-layer tanh MLP with 32 hidden units and squared loss (as
benchmarks/bench_forecast.py), a typical forget set of 6; summed schedule, without replacement,
batch 8, forget batch 6, at α = 0.1, η = 0.5·2/λ_max (forgets, r = 300) and α = 0, η = 0.2·2/λ_max
(resists, r = 294, ρ ≈ 1 − 1.4e−5).

Baseline, in the same run: the verifier of ``--old`` (default: the commit before the large-r
work, exact rationals with Python Bareiss elimination) run as a standalone script on the same
certificate file, stopped after ``--old-timeout`` seconds (reported as a lower bound); only for
r ≤ ``--old-max``.

    python benchmarks/bench_certify.py                      # r = 16, 30, 45, 60, 100, 200, 316
    python benchmarks/bench_certify.py --spans 60 316 --old-max 60
    python benchmarks/bench_certify.py --digits-mlp
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

import rmt
import rmt.verify as V
from rmt.certificates import certify

ROOT = Path(__file__).resolve().parents[1]
#: the verifier before the large-r work (MAX_SPAN 72, exact rationals)
OLD_COMMIT = "ac85629"


def instance(r: int):
    rng = np.random.default_rng(r)
    n = 2 * r
    G = rng.standard_normal((n, r)) * np.exp(rng.uniform(-0.5, 0.5, (n, 1)))
    hs = rmt.HessianSet.from_factors(G)
    lam = float(np.linalg.eigvalsh(G.T @ G / n)[-1])
    sch = rmt.Schedule(0.2 / lam, max(1, n // 8), sampling="without_replacement")
    return hs, sch


def digits_mlp():
    from rmt import models as M

    warnings.simplefilter("ignore")
    data = M.load_digits_binary((3, 8), n_components=12, max_train=300, flip=6, seed=0,
                                test_fraction=0.1)
    X, y = data.X_train, data.y_train.astype(float)
    mlp = M.MLP(X.shape[1], 32, 1, activation="tanh", loss="squared")
    tr = M.train(mlp, X, y, "squared", seed=0, tol=1e-7, maxiter=20000)
    retain, forget = M.forget_set("typical", len(y), 6, seed=0)
    hs = M.hessian_set(mlp, tr.w, X[retain], y[retain], X[forget], y[forget], "squared")
    lam = float(np.linalg.eigvalsh(hs.reduction(True, False).mean("retain"))[-1])
    return [("digits MLP α=0.1 η=0.5·2/λ", hs,
             rmt.Schedule(0.5 * 2 / lam, 8, alpha=0.1, sampling="without_replacement",
                          forget_batch=6)),
            ("digits MLP α=0 η=0.2·2/λ", hs,
             rmt.Schedule(0.2 * 2 / lam, 8, alpha=0.0, sampling="without_replacement",
                          forget_batch=6))]


def old_verifier(commit: str, folder: Path) -> Path | None:
    try:
        text = subprocess.run(["git", "-C", str(ROOT), "show", f"{commit}:rmt/verify.py"],
                              capture_output=True, text=True, check=True).stdout
    except (subprocess.CalledProcessError, OSError):
        return None
    path = folder / "old_verify.py"
    path.write_text(text)
    return path


def run_old(script: Path, cert_path: Path, timeout: float) -> str:
    t = time.perf_counter()
    try:
        out = subprocess.run([sys.executable, "-I", str(script), str(cert_path)],
                             capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"> {timeout:.0f}"
    secs = time.perf_counter() - t
    return f"{secs:.1f}" + ("" if out.returncode == 0 else " (not verified)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spans", type=int, nargs="+", default=[16, 30, 45, 60, 100, 200, 316])
    ap.add_argument("--digits-mlp", action="store_true", help="the digits MLP instead of spans")
    ap.add_argument("--old", default=OLD_COMMIT, help="commit of the baseline verifier")
    ap.add_argument("--old-max", type=int, default=100, help="largest r given to the baseline")
    ap.add_argument("--old-timeout", type=float, default=300.0)
    args = ap.parse_args()
    print(f"verifier backend: {V.BACKEND}; load average at start: "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; {os.cpu_count()} cores")
    if args.digits_mlp:
        t = time.perf_counter()
        cases = digits_mlp()
        print(f"digits MLP built in {time.perf_counter() - t:.1f} s")
    else:
        cases = [(f"synthetic r={r}", *instance(r)) for r in args.spans]
    print(f"| case | r | ρ(T) | claim | c | verification | certify s | verify s | "
          f"old verify s ({args.old}) |")
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        old = old_verifier(args.old, Path(tmp))
        for name, hs, sch in cases:
            rho = rmt.mean_square_rate(hs, sch)
            t = time.perf_counter()
            cert = certify(hs, sch)
            tc = time.perf_counter() - t
            t = time.perf_counter()
            ok, why = cert.verify()
            tv = time.perf_counter() - t
            assert ok, why
            base = "–"
            if old is not None and cert.span <= args.old_max:
                path = cert.save(Path(tmp) / "cert.json")
                base = run_old(old, path, args.old_timeout)
            print(f"| {name} | {cert.span} | {rho:.8f} | {cert.claim} | {float(cert.c):.8f} | "
                  f"{cert.verification} | {tc:.1f} | {tv:.1f} | {base} |", flush=True)
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
