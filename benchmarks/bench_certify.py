"""Exact certificate verification time against span r (issue bar: r = 60 exact in < 60 s).

For each r: n = 2r rank-one retain samples in R^r (span r), plain SGD without replacement, η set so
that ρ(T) is just below 1 (the hard side: a Collatz–Wielandt proof needs the PSD checks); then
``rmt.certify`` and ``Certificate.verify`` are timed. Baseline, measured in the same run: the
same verification with the Sylvester/Bareiss positive-definiteness test disabled, i.e. the exact
rational LDLᵀ of the first certificate version (skipped above ``--baseline-max`` because it grows
far faster).

    python benchmarks/bench_certify.py                 # r = 16, 30, 45, 60
    python benchmarks/bench_certify.py --spans 16 30 --baseline-max 30
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import rmt
import rmt.verify as V
from rmt.certificates import certify


def instance(r: int):
    rng = np.random.default_rng(r)
    n = 2 * r
    G = rng.standard_normal((n, r)) * np.exp(rng.uniform(-0.5, 0.5, (n, 1)))
    hs = rmt.HessianSet.from_factors(G)
    lam = float(np.linalg.eigvalsh(G.T @ G / n)[-1])
    sch = rmt.Schedule(0.2 / lam, max(1, n // 8), sampling="without_replacement")
    return hs, sch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spans", type=int, nargs="+", default=[16, 30, 45, 60])
    ap.add_argument("--baseline-max", type=int, default=30)
    args = ap.parse_args()
    print(f"verifier backend: {V.BACKEND}")
    print(f"{'r':>4} {'rho':>10} {'claim':>9} {'certify s':>10} {'verify s':>9} {'LDL-only s':>11} {'ratio':>7}")
    for r in args.spans:
        hs, sch = instance(r)
        rho = rmt.mean_square_rate(hs, sch)
        t = time.perf_counter()
        cert = certify(hs, sch)
        tc = time.perf_counter() - t
        t = time.perf_counter()
        ok, why = cert.verify()
        tv = time.perf_counter() - t
        assert ok, why
        base = ratio = float("nan")
        if r <= args.baseline_max:
            keep = V._leading_minors_positive
            V._leading_minors_positive = lambda M: False  # the first version: LDLᵀ on Fractions
            try:
                t = time.perf_counter()
                assert cert.verify()[0]
                base = time.perf_counter() - t
            finally:
                V._leading_minors_positive = keep
            ratio = base / tv
        print(f"{r:>4} {rho:>10.6f} {cert.claim:>9} {tc:>10.1f} {tv:>9.1f} {base:>11.1f} {ratio:>7.1f}")


if __name__ == "__main__":
    main()
