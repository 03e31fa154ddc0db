"""Benchmark: exact mean-square rate ρ(T) — old ARPACK path vs the regular-splitting solver.

Run:  python benchmarks/bench_meansquare.py [--quick] [--baseline-timeout 150] [--competing]

Every configuration runs in a fresh subprocess (its own peak memory, a hard timeout). The
baseline is the previous implementation (``rmt/meansquare.py`` at commit 818a17f, loaded from
git into a temporary module) measured in the same run. Prints Markdown tables:

1. near-1 clusters (rank-one factors with curvatures 1 … 1e-6, summed, α = 0, η = 0.2, B = 8,
   Bernoulli; B = 64 at r = 300): ρ = 1 − 4e-7 with the next eigenvalues within 1e-7 — ARPACK
   (old) vs splitting (new) at r = 40 (also against the dense r²×r² eigenvalues), 60 and 300;
   goal r = 60 < 1 s, r = 300 < 10 s; plus r = 300, B = 8, where ρ = 2.1 (clear of the cluster);
2. critical_eta / critical_alpha at r = 60 on the same kind of set, old vs new;
3. (not with --quick) the README headline instance (d = 2000, n_r = 1000, n_f = 200, rank one)
   and the Gaussian-factor instance (factors/√d, η = 0.5, B = 16, α = 0.2, Bernoulli), with
   ``--competing`` also with one competing CPU-bound job running.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap

OLD_COMMIT = "818a17f"

CHILD = textwrap.dedent(
    r"""
    import json, resource, sys, time
    import numpy as np
    import rmt
    sys.path.insert(0, sys.argv[1])
    import old_meansquare as old
    case, impl, what = sys.argv[2], sys.argv[3], sys.argv[4]
    r = int(sys.argv[5])

    def near_one(r, alpha=0.0, batch=8):
        rng = np.random.default_rng(0)
        U = np.linalg.qr(rng.standard_normal((r, r)))[0]
        scales = np.sqrt(np.geomspace(1.0, 1e-6, r))
        G = np.empty((r, r))
        for i in range(r):
            v = U[:, i] + 0.1 * rng.standard_normal(r) / np.sqrt(r)
            G[i] = scales[i] * v / np.linalg.norm(v)
        G *= np.sqrt(r)
        F = 0.5 * G[rng.choice(r, r // 4, replace=False)]
        hs = rmt.HessianSet.from_factors(G, F)
        return hs, rmt.Schedule(0.2, batch, alpha=alpha, sampling="bernoulli", forget_batch=4)

    if case.startswith("near1"):
        hs, sch = near_one(r, batch=int(case.split(":")[1]) if ":" in case else 8)
    elif case == "headline":
        hs = rmt.ensembles.aligned(1000, 200, 2000, 0.1, 0.1, 0.5, noise="gaussian", seed=0)
        sch = rmt.Schedule(0.5, 32, alpha=0.1, sampling="without_replacement", forget_batch=32)
    else:  # gaussian factors / sqrt(d)
        rng = np.random.default_rng(0)
        d = 2000
        hs = rmt.HessianSet.from_factors(rng.standard_normal((1000, d)) / np.sqrt(d),
                                         rng.standard_normal((200, d)) / np.sqrt(d))
        sch = rmt.Schedule(0.5, 16, alpha=0.2, sampling="bernoulli")
    mod = old if impl == "old" else rmt
    t0 = time.perf_counter()
    out = {}
    if what == "rate":
        method = "arpack" if impl == "old" else "splitting"
        res = mod.mean_square(hs, sch, method=method)
        out = dict(rate=res.rate, r=res.span_dim, converged=bool(res.converged))
        if impl != "old":
            out["bounds"] = list(res.bounds)
    elif what == "dense":
        op = rmt.MeanSquareOperator(hs, sch)
        out = dict(rate=float(np.max(np.abs(np.linalg.eigvals(op.matrix())))), r=op.r)
    elif what == "critical_eta":
        out = dict(value=mod.critical_eta(hs, sch))
    elif what == "critical_alpha":
        out = dict(value=mod.critical_alpha(hs, sch))
    out["seconds"] = time.perf_counter() - t0
    out["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))
    """
)


def old_module_dir():
    src = subprocess.run(["git", "show", f"{OLD_COMMIT}:rmt/meansquare.py"], check=True,
                         capture_output=True, text=True,
                         cwd=os.path.dirname(os.path.abspath(__file__))).stdout
    src = "\n".join(line.replace("from .", "from rmt.", 1) if line.startswith("from .") else line
                    for line in src.splitlines())
    d = tempfile.mkdtemp(prefix="rmt_old_")
    with open(os.path.join(d, "old_meansquare.py"), "w") as fh:
        fh.write(src)
    return d


def run(olddir, case, impl, what, r=0, timeout=600):
    try:
        out = subprocess.run([sys.executable, "-c", CHILD, olddir, case, impl, what, str(r)],
                             check=True, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return dict(seconds=float("inf"), timed_out=timeout)
    return json.loads(out.stdout.strip().splitlines()[-1])


def fmt_s(row):
    if "timed_out" in row:
        return f"> {row['timed_out']:.0f} (killed)"
    return f"{row['seconds']:.2f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="skip the d=2000 instances")
    ap.add_argument("--baseline-timeout", type=float, default=150.0)
    ap.add_argument("--competing", action="store_true",
                    help="also time the d=2000 instances with one competing CPU-bound job")
    args = ap.parse_args()
    olddir = old_module_dir()
    print(f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; "
          f"BLAS threads chosen: {__import__('rmt.meansquare').meansquare.blas_threads()}\n")

    print("## Near-1 cluster: ρ(T) (old = ARPACK, new = splitting)\n")
    print("| r, B | old s | new s | speed-up | ρ old | ρ new | new bracket | dense ρ | rel err new |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r, B in ((40, 8), (60, 8), (300, 64), (300, 8)):
        case = f"near1:{B}"
        new = run(olddir, case, "new", "rate", r)
        old = run(olddir, case, "old", "rate", r, timeout=args.baseline_timeout)
        dense = run(olddir, case, "new", "dense", r) if r <= 40 else None
        ratio = old["seconds"] / new["seconds"]
        err = abs(new["rate"] - dense["rate"]) / dense["rate"] if dense else float("nan")
        print(f"| {r}, {B} | {fmt_s(old)} | {fmt_s(new)} | {'>' if 'timed_out' in old else ''}"
              f"{(args.baseline_timeout if 'timed_out' in old else old['seconds']) / new['seconds']:.0f}× | "
              f"{old.get('rate', float('nan')):.15f} | {new['rate']:.15f} | "
              f"[{new['bounds'][0]:.15f}, {new['bounds'][1]:.15f}] | "
              f"{dense['rate'] if dense else float('nan'):.15f} | {err:.1e} |")
        del ratio
    print()
    print("## Critical values at r = 60 (near-1 set)\n")
    print("| quantity | old s | new s | old value | new value |")
    print("|---|---|---|---|---|")
    for what in ("critical_eta", "critical_alpha"):
        new = run(olddir, "near1", "new", what, 60)
        old = run(olddir, "near1", "old", what, 60, timeout=args.baseline_timeout)
        print(f"| {what} | {fmt_s(old)} | {fmt_s(new)} | {old.get('value')} | {new.get('value')} |")
    print()
    if args.quick:
        return
    print("## d = 2000 instances (auto: r > SPLITTING_MAX_SPAN → ARPACK; splitting forced)\n")
    print("| instance | competing job | old ARPACK s | new splitting s | ρ old | ρ new |")
    print("|---|---|---|---|---|---|")
    for comp in ((False, True) if args.competing else (False,)):
        hog = None
        if comp:
            hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            for inst in ("headline", "gaussian"):
                old = run(olddir, inst, "old", "rate", timeout=900)
                new = run(olddir, inst, "new", "rate", timeout=900)
                print(f"| {inst} | {'yes' if comp else 'no'} | {fmt_s(old)} | {fmt_s(new)} | "
                      f"{old.get('rate', float('nan')):.12f} | {new.get('rate', float('nan')):.12f} |")
        finally:
            if hog is not None:
                hog.kill()


if __name__ == "__main__":
    main()
