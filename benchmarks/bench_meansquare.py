"""Benchmark: exact mean-square rate ρ(T) — time and peak memory (foundation issue).

Run:  python benchmarks/bench_meansquare.py [--quick]

Every configuration runs in a fresh subprocess so that its peak resident memory (ru_maxrss) is
its own. Prints Markdown tables:
1. the headline case (rank-one factors, d = 2000, n_r = 1000, n_f = 200), goal < 30 s, < 2 GB;
2. scaling in d and n (span dimension r = min(d, n_r + n_f));
3. matrix-free ARPACK vs the dense r²×r² operator matrix on the same instances (the ratio is
   measured in the same run), and where the dense matrix stops being feasible.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap

CHILD = textwrap.dedent(
    """
    import json, resource, sys, time
    import numpy as np
    import rmt
    d, nr, nf, method = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    hs = rmt.ensembles.aligned(nr, nf, d, 0.1, 0.1, 0.5, noise="gaussian", seed=0)
    sch = rmt.Schedule(0.5, 32 if nr >= 32 else 1, alpha=0.1, sampling="without_replacement",
                       forget_batch=min(32, nf))
    t0 = time.perf_counter()
    res = rmt.mean_square(hs, sch, method=method)
    t1 = time.perf_counter()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MiB on Linux
    print(json.dumps(dict(d=d, nr=nr, nf=nf, method=res.method, r=res.span_dim, rate=res.rate,
                          seconds=t1 - t0, peak_mib=peak, converged=res.converged)))
    """
)


def run(d, nr, nf, method="auto"):
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(d), str(nr), str(nf), method],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def table(rows, cols):
    head = "| " + " | ".join(c for c, _ in cols) + " |"
    sep = "|" + "|".join("---" for _ in cols) + "|"
    body = ["| " + " | ".join(fmt.format(r[k]) for k, fmt in [(c, f) for c, f in cols]) + " |" for r in rows]
    return "\n".join([head, sep] + body)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="skip the headline d=2000 case")
    args = ap.parse_args()
    cols = [("d", "{}"), ("nr", "{}"), ("nf", "{}"), ("r", "{}"), ("method", "{}"),
            ("rate", "{:.6f}"), ("seconds", "{:.2f}"), ("peak_mib", "{:.0f}")]
    if not args.quick:
        print("## Headline: rank-one, d=2000, n_r=1000, n_f=200 (goal < 30 s, < 2048 MiB)\n")
        print(table([run(2000, 1000, 200)], cols))
        print()
    print("## Scaling in d and n (ARPACK, matrix-free)\n")
    rows = [run(d, nr, nf, "arpack") for d, nr, nf in
            [(200, 100, 20), (500, 100, 20), (2000, 100, 20), (500, 250, 50), (1000, 500, 100)]]
    print(table(rows, cols))
    print()
    print("## ARPACK vs dense r²×r² operator matrix (same instance, same run)\n")
    rows = []
    for nr, nf in [(8, 4), (20, 10), (40, 20)]:
        a = run(400, nr, nf, "arpack")
        b = run(400, nr, nf, "dense")
        rows.append(dict(r=a["r"], arpack_s=a["seconds"], dense_s=b["seconds"],
                         ratio=b["seconds"] / a["seconds"], rel_diff=abs(a["rate"] - b["rate"]) / b["rate"],
                         dense_mib=b["peak_mib"]))
    print(table(rows, [("r", "{}"), ("arpack_s", "{:.3f}"), ("dense_s", "{:.3f}"),
                       ("ratio", "{:.1f}"), ("rel_diff", "{:.1e}"), ("dense_mib", "{:.0f}")]))
    print(
        "\nThe dense operator matrix has r⁴ entries (r = 60: 13M entries, 104 MB; r = 100: 800 MB) "
        "and its eigendecomposition costs O(r⁶): beyond r ≈ 60 it is infeasible here, which is why "
        "`matrix()` refuses r > 60 and `mean_square` uses it only for r ≤ 20."
    )


if __name__ == "__main__":
    main()
