"""Benchmark: 8×8 CNN escape heatmaps at n=100, d=200, m=20 (goal: < 5 minutes each).

    /work/venv/bin/python benchmarks/bench_cnn.py [--out DIR] > benchmarks/results_cnn.md

Times both maps (SNR × α and SNR × B) with the defaults of ``rmt cnn heatmap`` and prints a
markdown report: wall time, agreement with the finite-horizon linear frontier ρ(T) = F^{2/K}
and with the asymptotic one ρ(T) = 1, and the cells that disagree.
Convention: :data:`rmt.verdict.SIGN_CONVENTION`.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from rmt.verdict import SIGN_CONVENTION  # noqa: E402
from simulations.cnn.heatmap import HeatmapResult, heatmap, plot_heatmap  # noqa: E402

CONFIGS = {
    "snr,alpha": dict(eta_scale=0.5, batch=20, alpha_range=(0.0, 0.3)),
    "snr,batch": dict(eta_scale=1.0, alpha=0.05),
}


def _grid(res, arr, fmt):
    name = res.second_name
    head = "| " + name + " \\ SNR | " + " | ".join(f"{s:.3g}" for s in res.snr) + " |"
    sep = "|---" * (len(res.snr) + 1) + "|"
    lines = [head, sep]
    for j in range(len(res.second) - 1, -1, -1):
        v = res.second[j]
        lab = f"{v:.3g}" if name == "alpha" else str(int(v))
        lines.append(f"| {lab} | " + " | ".join(fmt(arr[i, j], i, j) for i in range(len(res.snr))) + " |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="/tmp/rmt_bench_cnn")
    ap.add_argument("--grid", type=int, default=8)
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    print("# CNN heatmap benchmark (n=100, d=200, m=20, 8×8)\n")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}, "
          f"numpy {np.__version__}\n")
    print("command: `/work/venv/bin/python benchmarks/bench_cnn.py > benchmarks/results_cnn.md`\n")
    print(f"Convention: {SIGN_CONVENTION}. Cells: "
          "observed majority of 3 nonlinear runs (400 steps, escape = distance ×10); prediction "
          "ρ(T) > ρ_c = 10^(2/400) (finite horizon) and ρ(T) > 1 (asymptotic).\n")
    for axes, kw in CONFIGS.items():
        t0 = time.perf_counter()
        res = HeatmapResult(heatmap(axes, grid=args.grid, n=100, d=200, m=20, seed=0, **kw))
        wall = time.perf_counter() - t0
        path = os.path.join(args.out, f"cnn_heatmap_{axes.replace(',', '_')}.png")
        plot_heatmap(res, path)
        print(f"## {axes}  ({', '.join(f'{k}={v}' for k, v in kw.items())})\n")
        print(f"- wall time: **{wall:.1f} s** (goal < 300 s)")
        print(f"- agreement (finite-horizon frontier, cells ≥ 1 from it): **{res.agreement:.3f}** "
              f"over {int(res.counted.sum())}/{res.counted.size} cells")
        print(f"- agreement (asymptotic frontier ρ = 1): {res.agreement_asymptotic:.3f} over "
              f"{int(res.counted_asymptotic.sum())} cells")
        if res.agreement_almost_sure is not None:
            print(f"- agreement (almost-sure, K·λ₁ > log F): {res.agreement_almost_sure:.3f} over "
                  f"{int(res.counted_almost_sure.sum())} cells")
        dis = res.disagreements()
        print(f"- disagreeing counted cells: {dis if dis else 'none'}")
        allc = np.argwhere(res.predicted != res.observed)
        print(f"- all cells where prediction ≠ observation (incl. next to the frontier): "
              f"{[(round(float(res.snr[i]), 3), float(res.second[j])) for i, j in allc]}")
        print(f"- η per SNR row: {np.round(res.eta, 4).tolist()}")
        print(f"- sampled σ_retain per SNR row: {np.round(res.sigma_retain, 2).tolist()}")
        print(f"- figure: {path}\n")
        print("ρ(T):\n")
        print(_grid(res, res.rate, lambda x, i, j: f"{x:.3f}"))
        print("\nobserved escape fraction (prediction in brackets: D = diverges, C = converges; "
              "* = not counted):\n")
        print(_grid(res, res.escape_fraction, lambda x, i, j: (
            f"{x:.2f} ({'D' if res.predicted[i, j] else 'C'}){'' if res.counted[i, j] else '*'}")))
        print()
        sys.stdout.flush()


if __name__ == "__main__":
    main()
