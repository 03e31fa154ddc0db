"""``rmt reproduce``: regenerate the study's figures with exact frontiers, on resumable sweeps.

Writes into ``--out`` (default ``rmt-output/``):

1. ``hessian_grid_*.png`` — the Hessian-test phase diagrams over (B, σ) for SGD and unlearning at
   α ∈ {0.1, 0.3, 0.5}, η ∈ {0.5, 0.8}: exact verdict and frontier (ρ(T) = 1), the Dexter et al.
   Theorem 1/2 curves, and the published 1000×-norm heuristic simulated side by side with its
   disagreeing cells marked;
2. ``coherence_snr.png`` — CNN coherence vs SNR (closed form vs sampled, init and trained);
3. ``cnn_heatmap_*.png`` — nonlinear CNN unlearning heatmaps with the linear frontier;
4. ``lyapunov_vs_meansquare.png`` — where almost-sure and mean-square stability part ways;
5. ``report.md`` — the figures and the agreement numbers in tables.

Every experiment is a sweep (``simulations.sweep.run_sweep``) stored under ``OUT/sweeps/``: killing
the command and rerunning it recomputes nothing that finished. ``--quick`` uses coarse grids
(< 10 minutes on 2 cores); the full mode uses the published resolutions (n = 100, σ ∈ 1..50,
B ∈ 1..49, 10 runs of 1000 steps).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rmt.verdict import FORGETS, RESISTS
from rmt.verdict import SIGN_CONVENTION_SHORT as SIGN_CONVENTION

from . import figures
from . import hessian_grid as hg
from .sweep import run_sweep

__all__ = ["register", "reproduce", "HessianGridCell", "LyapunovCell"]


# ----------------------------------------------------------------------------- sweep cells
@dataclass(frozen=True)
class HessianGridCell:
    """Picklable cell function for the Hessian-test grid (fixed protocol parameters)."""

    n: int = 100
    n_forget: int = 10
    runs: int = 10
    steps: int = 1000
    threshold: float = 1000.0

    __name__ = "HessianGridCell"

    def __call__(self, params, seed):
        p = dict(params, n=self.n, n_forget=self.n_forget, runs=self.runs, steps=self.steps,
                 threshold=self.threshold)
        return hg.cell(p, seed)


@dataclass(frozen=True)
class LyapunovCell:
    """ρ(T) and the top Lyapunov exponent for the Hessian-test set (n, σ) at (η, B)."""

    n: int = 20
    sigma: int = 4
    batch: int = 5
    steps: int = 4000
    replicas: int = 8

    __name__ = "LyapunovCell"

    def __call__(self, params, seed):
        import rmt

        hs = rmt.ensembles.hessian_test(self.n, self.sigma)
        sch = rmt.Schedule(float(params["eta"]), self.batch, sampling="without_replacement")
        rate = rmt.mean_square_rate(hs, sch)
        lyap = rmt.lyapunov(hs, sch, self.steps, self.replicas, seed)
        return {"half_log_rate": 0.5 * math.log(rate), "lyapunov": lyap.exponent,
                "lyapunov_stderr": lyap.stderr}


# ----------------------------------------------------------------------------- experiments
def _grid_sizes(quick):
    if quick:
        return dict(sigma=list(range(1, 51, 5)) + [50], batch=list(range(1, 50, 4)))
    return dict(sigma=list(range(1, 51)), batch=list(range(1, 50)))


def experiment_hessian_grid(out: Path, quick: bool, run_kw: dict) -> dict:
    sizes = _grid_sizes(quick)
    grid = {"eta": [0.5, 0.8], "alpha": [0.0, 0.1, 0.3, 0.5], **sizes}
    cellf = HessianGridCell()
    ds = run_sweep(cellf, grid, out / "sweeps" / "hessian_grid", seed=0,
                   config={"experiment": "hessian_grid", **cellf.__dict__}, **run_kw)
    rows = []
    for eta in grid["eta"]:
        fig, axes = figures.plt.subplots(1, 4, figsize=(17, 4.2), sharey=True)
        legend = {}
        for ax, alpha in zip(axes, grid["alpha"]):
            sub = ds.sel(eta=eta, alpha=alpha)
            exact = sub["exact_diverges"].transpose("sigma", "batch").values
            heur = sub["heuristic_diverges"].transpose("sigma", "batch").values
            valid = np.isfinite(exact) & np.isfinite(heur)
            disagree = valid & (exact != heur)
            B = np.asarray(grid["batch"], dtype=float)
            Bf = np.linspace(B.min(), B.max(), 200)
            curves = []
            if alpha == 0.0:
                curves = [
                    (Bf, hg.dexter_thm1_sigma(cellf.n, Bf, eta), "Dexter Thm 1 (diverges below)",
                     dict(color=figures.OKABE_ITO["green"], lw=1.5, ls="--")),
                    (Bf, hg.dexter_thm2_sigma(cellf.n, Bf, eta), "Dexter Thm 2 construction boundary",
                     dict(color=figures.OKABE_ITO["purple"], lw=2.0, ls="-.")),
                ]
            handles = figures.phase_diagram(
                ax, grid["batch"], grid["sigma"], exact, disagree=disagree, curves=curves,
                xlabel="batch size B", ylabel="coherence σ" if alpha == 0.0 else "",
                title=("SGD" if alpha == 0 else f"unlearning α={alpha}") + f", η={eta}",
            )
            ax.set_ylim(0.5, max(grid["sigma"]) + 0.5)
            legend.update({h.get_label(): h for h in handles})
            n_valid = int(valid.sum())
            rows.append(dict(eta=eta, alpha=alpha, cells=n_valid,
                             exact_forgets=int(np.nansum(exact[valid])),
                             heuristic_forgets=int(np.nansum(heur[valid])),
                             disagree=int(disagree.sum()),
                             exact_only=int((valid & (exact == 1) & (heur == 0)).sum()),
                             heuristic_only=int((valid & (exact == 0) & (heur == 1)).sum()),
                             agreement=1 - disagree.sum() / max(n_valid, 1)))
        axes[-1].legend(handles=list(legend.values()), loc="upper left", bbox_to_anchor=(1.02, 1),
                        fontsize=8)
        fig.suptitle(f"Hessian test (n={cellf.n}, without replacement): {SIGN_CONVENTION}", fontsize=10)
        figures.save(fig, out / f"hessian_grid_eta{eta}.png")
    return {"rows": rows, "figures": [f"hessian_grid_eta{eta}.png" for eta in grid["eta"]],
            "grid": {k: (v[0], v[-1], len(v)) for k, v in grid.items()}}


def experiment_lyapunov(out: Path, quick: bool, run_kw: dict) -> dict:
    cellf = LyapunovCell(steps=2000 if quick else 8000, replicas=8 if quick else 16)
    etas = list(np.round(np.linspace(0.3, 1.2, 10 if quick else 28), 4))
    ds = run_sweep(cellf, {"eta": etas}, out / "sweeps" / "lyapunov", seed=1,
                   config={"experiment": "lyapunov", **cellf.__dict__}, **run_kw)
    half = ds["half_log_rate"].values
    lyap = ds["lyapunov"].values
    se = ds["lyapunov_stderr"].values
    fig, ax = figures.plt.subplots(figsize=(6.5, 4))
    ax.axhline(0, color="grey", lw=0.8)
    ax.plot(etas, half, "-o", color=figures.OKABE_ITO["orange"], ms=4,
            label="½ log ρ(T) (mean square, exact)")
    ax.errorbar(etas, lyap, yerr=2 * se, fmt="-s", color=figures.OKABE_ITO["blue"], ms=4,
                label="λ₁ (almost sure, Monte Carlo ±2 s.e.)")
    part = (half > 0) & (lyap + 2 * se < 0)
    if np.any(part):
        ax.axvspan(min(np.array(etas)[part]), max(np.array(etas)[part]), color=figures.OKABE_ITO["yellow"],
                   alpha=0.35, label=f"m.s. {FORGETS} but a.s. {RESISTS}")
    ax.set_xlabel("learning rate η")
    ax.set_ylabel("growth rate per step")
    ax.set_title(f"Hessian test n={cellf.n}, σ={cellf.sigma}, B={cellf.batch}: >0 {FORGETS}",
                 fontsize=9)
    ax.legend(fontsize=8)
    figures.save(fig, out / "lyapunov_vs_meansquare.png")
    rows = [dict(eta=float(e), half_log_rate=float(h), lyapunov=float(l), stderr=float(s))
            for e, h, l, s in zip(etas, half, lyap, se)]
    return {"rows": rows, "parting_etas": [float(e) for e in np.array(etas)[part]],
            "figures": ["lyapunov_vs_meansquare.png"]}


# ----------------------------------------------------------------------------- report
def _md_table(rows, cols):
    head = "| " + " | ".join(c for c, _ in cols) + " |\n|" + "|".join("---" for _ in cols) + "|\n"
    return head + "".join("| " + " | ".join(f.format(r[c]) for c, f in cols) + " |\n" for r in rows)


def write_report(out: Path, results: dict, quick: bool, seconds: float) -> Path:
    lines = [
        "# rmt reproduction report",
        "",
        f"Mode: {'quick' if quick else 'full'}; wall time {seconds:.0f} s. Sign convention: "
        f"**{SIGN_CONVENTION}**. Exact verdicts are ρ(T) > 1 on the span of the Hessians "
        "(mean square); the published heuristic is \"‖w‖² ≥ 1000‖w₀‖² within 1000 steps, "
        "majority of 10 runs\" (almost-sure behaviour of a finite run).",
        "",
    ]
    if "hessian_grid" in results:
        r = results["hessian_grid"]
        lines += ["## 1. Hessian-test phase diagrams", ""]
        lines += [f"![{f}]({f})" for f in r["figures"]] + [""]
        lines += ["Agreement of the published heuristic with the exact mean-square verdict "
                  "(cells with B ≤ n_retain):", ""]
        lines.append(_md_table(r["rows"], [("eta", "{}"), ("alpha", "{}"), ("cells", "{}"),
                                           ("exact_forgets", "{}"), ("heuristic_forgets", "{}"),
                                           ("disagree", "{}"), ("exact_only", "{}"),
                                           ("heuristic_only", "{}"), ("agreement", "{:.3f}")]))
        lines += ["`exact_only`: ρ(T) > 1 (forgets in mean square) but the heuristic saw no escape; "
                  "`heuristic_only`: the reverse. Forget set for α > 0: the first min(10, σ) samples "
                  "of the shared-direction block (see `simulations/hessian_grid.py`). A cell with "
                  "ρ(T) > 1 whose typical finite run does not reach 1000× is mean-square unstable "
                  "through rare large excursions while almost surely (or within 1000 steps) stable.",
                  ""]
    for key, title in (("coherence_snr", "2. Coherence vs SNR (CNN)"),
                       ("cnn_heatmaps", "3. CNN unlearning heatmaps")):
        if key in results:
            r = results[key]
            lines += [f"## {title}", ""] + [f"![{f}]({f})" for f in r.get("figures", [])] + [""]
            if r.get("table"):
                lines.append(r["table"])
            if r.get("text"):
                lines += [r["text"], ""]
    if "lyapunov" in results:
        r = results["lyapunov"]
        lines += ["## 4. Almost-sure vs mean-square stability", "",
                  "![lyapunov](lyapunov_vs_meansquare.png)", "",
                  "λ₁ ≤ ½ log ρ(T) always (Jensen). Learning rates where the model is mean-square "
                  f"unstable (forgets in mean square) yet almost surely stable: {r['parting_etas']}.", ""]
        lines.append(_md_table(r["rows"], [("eta", "{:.3f}"), ("half_log_rate", "{:.4f}"),
                                           ("lyapunov", "{:.4f}"), ("stderr", "{:.4f}")]))
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    (out / "summary.json").write_text(json.dumps(results, indent=1, default=float))
    return path


EXPERIMENTS = {
    "hessian_grid": experiment_hessian_grid,
    "lyapunov": experiment_lyapunov,
}


def _optional_cnn_experiments():
    try:
        from .cnn import reproduce as cnn_reproduce  # provided by the CNN package
    except ImportError:
        return {}
    return dict(getattr(cnn_reproduce, "EXPERIMENTS", {}))


def reproduce(out="rmt-output", *, quick=False, executor="processes", dask_local=None,
              scheduler=None, progress=True, only=None) -> Path:
    """Run every experiment (or those named in ``only``) and write ``OUT/report.md``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    run_kw = dict(executor=executor, progress=progress)
    if dask_local is not None:
        run_kw.update(executor="dask", dask_local=int(dask_local))
    elif scheduler is not None:
        run_kw.update(executor="dask", scheduler=scheduler)
    experiments = {**EXPERIMENTS, **_optional_cnn_experiments()}
    names = list(experiments) if only is None else list(only)
    unknown = [n for n in names if n not in experiments]
    if unknown:
        raise ValueError(f"unknown experiment(s) {unknown}; choose from {sorted(experiments)}")
    t0 = time.perf_counter()
    results = {}
    for name in names:
        results[name] = experiments[name](out, quick, run_kw)
    return write_report(out, results, quick, time.perf_counter() - t0)


def register(subparsers):
    p = subparsers.add_parser(
        "reproduce",
        help="regenerate every figure with exact frontiers and write report.md",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--quick", action="store_true", help="coarse grids, < 10 minutes on 2 cores")
    p.add_argument("--out", default="rmt-output", help="output folder (default: rmt-output/)")
    grp = p.add_mutually_exclusive_group()
    grp.add_argument("--dask-local", type=int, metavar="N", help="start a local Dask cluster with N workers")
    grp.add_argument("--scheduler", metavar="ADDRESS", help="connect to an existing Dask scheduler")
    grp.add_argument("--serial", action="store_true", help="run every cell in this process")
    p.add_argument("--only", nargs="+", metavar="EXPERIMENT", help="run only these experiments")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=_main)


def _main(args):
    if args.dask_local is not None and args.dask_local < 1:
        raise SystemExit("rmt reproduce: --dask-local must be >= 1")
    path = reproduce(args.out, quick=args.quick, executor="serial" if args.serial else "processes",
                     dask_local=args.dask_local, scheduler=args.scheduler,
                     progress=not args.no_progress, only=args.only)
    print(f"wrote {path}")
    return 0
