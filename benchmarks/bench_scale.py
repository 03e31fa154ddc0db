"""Scale benchmark: a rank-one set with n = 1000 samples at d = 10⁶.

Builds 900 retain + 100 forget rank-one float32 factors g_i ~ N(0, I/d) and float32 per-sample
gradients, then times, in one process:

  construction   HessianSet.from_factors (validation only: float32 kept, nothing copied)
  gram           the one chunked pass over d (joint Gram of factors and gradients, float64)
  dynamics       span/drift coordinates from the Gram (d-independent)
  rate           rmt.mean_square (ρ(T) on the r = 1000 span)
  coherence      rmt.coherence
  forecast       rmt.forecast (exact affine moments, Monte Carlo paths, Lyapunov), JIT excluded

with the peak resident set size (``resource.getrusage``) after each size. The same pipeline runs
first at a baseline dimension (default d = 10⁵), and there also through the previous path (thin
SVD of the float64 d × N stack, explicit d × r basis) — a size the old path can still handle.

``--shared`` instead times shared curvature (weight decay λI) at d = 65: the per-sample Hessians
H_i + λI written densely (``from_dense``, full rank) against ``from_factors(..., shared=λ)``.

Usage (record the output in benchmarks/results_scale.md):

    RMT_BLAS_THREADS=2 python benchmarks/bench_scale.py                 # d = 1e5 baseline + 1e6
    python benchmarks/bench_scale.py --d 200000 --baseline-d 50000      # smaller, quicker
    python benchmarks/bench_scale.py --shared                           # λI at d = 65
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import resource
import time

import numpy as np

import rmt
import rmt.hessians as H
from rmt import HessianSet, Schedule
from rmt.dynamics import Dynamics


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # Linux: kB


def make_data(d, n_retain, n_forget, seed):
    """float32 factors / √d and float32 gradients (scale 0.05/√d), generated in place."""
    rng = np.random.default_rng(seed)
    out = []
    for n, s in ((n_retain, 1.0), (n_forget, 1.0), (n_retain, 0.05), (n_forget, 0.05)):
        a = rng.standard_normal((n, d), dtype=np.float32)
        a *= np.float32(s / math.sqrt(d))
        out.append(a)
    return out


def pipeline(d, n_retain, n_forget, schedule, steps, replicas, seed, old=False):
    R, F, gR, gF = make_data(d, n_retain, n_forget, seed)
    if old:
        # the previous path: float64 copies, thin SVD of the d × N stack, explicit d × r basis
        R, F, gR, gF = (a.astype(np.float64) for a in (R, F, gR, gF))
        saved = H.GRAM_MIN_ENTRIES
        H.GRAM_MIN_ENTRIES = math.inf
    times = {}
    try:
        t = time.perf_counter()
        hs = HessianSet.from_factors(R, F, retain_gradients=gR, forget_gradients=gF)
        times["construction"] = time.perf_counter() - t
        t = time.perf_counter()
        if hs._large:
            hs._joint_gram()
        times["gram"] = time.perf_counter() - t
        t = time.perf_counter()
        dyn = Dynamics(hs, schedule)
        times["dynamics"] = time.perf_counter() - t
        t = time.perf_counter()
        ms = rmt.mean_square(dyn)
        times["rate"] = time.perf_counter() - t
        t = time.perf_counter()
        coh = rmt.coherence(hs)
        times["coherence"] = time.perf_counter() - t
        fc = None
        if steps:
            t = time.perf_counter()
            fc = rmt.forecast(dyn, steps, replicas=replicas, seed=seed)
            times["forecast"] = time.perf_counter() - t
    finally:
        if old:
            H.GRAM_MIN_ENTRIES = saved
    times["total"] = sum(times.values())
    return dict(d=d, r=dyn.r, q=dyn.q, rate=ms.rate, method=ms.method, converged=ms.converged,
                sigma=coh.sigma, forecast=fc, times=times, rss=peak_rss_gb(), large=hs._large)


def report(tag, res):
    t = res["times"]
    print(f"\n[{tag}] d = {res['d']:,}  r = {res['r']}  q = {res['q']}  "
          f"({'chunked Gram' if res['large'] else 'thin SVD'})")
    print(f"  rho(T) = {res['rate']:.12g} ({res['method']}, converged={res['converged']})   "
          f"sigma = {res['sigma']:.6g}")
    if res["forecast"] is not None:
        fc = res["forecast"]
        print(f"  forecast: {fc.outcome} ({fc.reason}); P(leave) = {fc.leave_probability:.2f}; "
              f"E|d_K|^2 = {fc.expected_sq_distance[-1]:.6g}")
    print("  seconds: " + ", ".join(f"{k} {v:.2f}" for k, v in t.items()))
    print(f"  peak RSS so far: {res['rss']:.2f} GB, load {os.getloadavg()[0]:.1f}", flush=True)


def warm_jit(schedule, seed):
    """Compile the Monte Carlo kernels on a tiny set so that JIT time is reported separately."""
    t = time.perf_counter()
    R, F, gR, gF = (a.astype(np.float64) for a in make_data(40, 6, 3, seed))
    hs = HessianSet.from_factors(R, F, retain_gradients=gR, forget_gradients=gF)
    rmt.forecast(Dynamics(hs, schedule.replace(batch=2)), 3, replicas=4, seed=0)
    return time.perf_counter() - t


def shared_benchmark(seed):
    """Weight decay λI at d = 65: dense H_i + λI against the shared term."""
    d, nr, nf, lam = 65, 300, 60, 1e-2
    rng = np.random.default_rng(seed)
    gr = rng.standard_normal((nr, d)) / math.sqrt(d)
    gf = rng.standard_normal((nf, d)) / math.sqrt(d)
    I = np.eye(d)
    sch = Schedule(eta=2.0, batch=16, alpha=0.1, sampling="without_replacement")
    rows = []
    for tag, build in (
        ("dense H_i + λI (from_dense)",
         lambda: HessianSet.from_dense(np.einsum("na,nb->nab", gr, gr) + lam * I,
                                       np.einsum("na,nb->nab", gf, gf) + lam * I)),
        ("shared λI (from_factors(shared=λ))",
         lambda: HessianSet.from_factors(gr, gf, shared=lam)),
    ):
        t = time.perf_counter()
        hs = build()
        tb = time.perf_counter() - t
        t = time.perf_counter()
        coh = rmt.coherence(hs)
        tc = time.perf_counter() - t
        t = time.perf_counter()
        ms = rmt.mean_square(hs, sch)
        tr = time.perf_counter() - t
        rows.append((tag, tb, tc, tr, coh.sigma, ms.rate, ms.span_dim, ms.null_rate))
        print(f"[{tag}] build {tb:.2f} s, coherence {tc:.2f} s, rho(T) {tr:.2f} s | sigma = "
              f"{coh.sigma:.12g}, rho = {ms.rate:.15g} (span r = {ms.span_dim}, null mode "
              f"E[j^2] = {ms.null_rate})", flush=True)
    (_, _, c0, r0, s0, rho0, *_), (_, _, c1, r1, s1, rho1, *_) = rows
    print(f"agreement: |Δσ|/σ = {abs(s0 - s1) / s0:.2e}, |Δρ|/ρ = {abs(rho0 - rho1) / rho0:.2e}; "
          f"speed-up: coherence ×{c0 / c1:.0f}, rho(T) ×{r0 / r1:.1f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--d", type=int, default=10**6)
    ap.add_argument("--baseline-d", type=int, default=10**5)
    ap.add_argument("--n-retain", type=int, default=900)
    ap.add_argument("--n-forget", type=int, default=100)
    ap.add_argument("--steps", type=int, default=20, help="forecast horizon (0: no forecast)")
    ap.add_argument("--replicas", type=int, default=64)
    ap.add_argument("--eta", type=float, default=30.0)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--alpha", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-old", action="store_true", help="skip the old path at the baseline")
    ap.add_argument("--shared", action="store_true", help="only the d = 65 shared-λI timing")
    args = ap.parse_args()
    print(f"python {platform.python_version()}, numpy {np.__version__}, rmt BLAS threads "
          f"{os.environ.get('RMT_BLAS_THREADS', '1')}, cores {os.cpu_count()}, load "
          f"{os.getloadavg()[0]:.1f}")
    if args.shared:
        shared_benchmark(args.seed)
        return
    sch = Schedule(eta=args.eta, batch=args.batch, alpha=args.alpha,
                   sampling="without_replacement")
    print(f"schedule: {sch}", flush=True)
    if args.steps:
        print(f"JIT warm-up (excluded below): {warm_jit(sch, args.seed):.1f} s", flush=True)
    kw = dict(n_retain=args.n_retain, n_forget=args.n_forget, schedule=sch, steps=args.steps,
              replicas=args.replicas, seed=args.seed)
    if args.baseline_d:
        report("baseline, new path", pipeline(args.baseline_d, **kw))
        if not args.no_old:
            report("baseline, old path", pipeline(args.baseline_d, old=True, **kw))
    report("target", pipeline(args.d, **kw))


if __name__ == "__main__":
    main()
