"""``rmt reproduce``: regenerate the study's figures with exact frontiers, on resumable sweeps.

Writes into ``--out`` (default ``rmt-output/reproduce/quick`` with ``--quick``,
``rmt-output/reproduce/full`` otherwise; a folder holds one mode). Experiments, by the name
``--only``/``--skip`` take, in the order they run:

1. ``hessian_grid`` — ``hessian_grid_eta*.png``: the Hessian-test phase diagrams over (B, σ) for
   SGD and unlearning at α ∈ {0.1, 0.3, 0.5}, η ∈ {0.5, 0.8}: exact verdict on every integer
   (B, σ) and the exact frontier ρ(T) = 1 (the critical batch of every σ), the theorem curves of
   the diagrams' sampling scheme, and the published 1000×-norm heuristic simulated with its
   disagreeing cells marked;
2. ``lyapunov`` — ``lyapunov_vs_meansquare.png``: where almost-sure and mean-square stability
   part ways;
3. ``coherence_snr`` — ``coherence_snr.png``: CNN coherence vs SNR (closed form vs sampled, init
   and trained);
4. ``cnn_heatmaps`` — ``cnn_heatmap_snr_alpha.png``, ``cnn_heatmap_snr_batch.png``: nonlinear
   CNN unlearning heatmaps with the linear frontier;
5. ``asymptotics`` — ``asymptotics_limits.png``, ``asymptotics_errors.png``: random-matrix limits
   against sampled sets at d ∈ {250, 500, 1000, 2000} and their finite-size errors;
6. ``coherence-study`` — ``coherence_study/``: does coherence order forgettability? Rank
   correlations (bootstrap intervals) of σ_F, σ_cross, σ_R, curvature ratio, memorisation and
   α* with actual nonlinear unlearning across scikit-learn's bundled data sets, the
   signal-plus-noise model, linear models, three MLP widths (up to d ≥ 10⁴) and a JAX CNN
   (``simulations/coherence_study``; page ``coherence_study/coherence_study.md``);
7. ``realdata`` — ``realdata/``: forecasts vs actual nonlinear unlearning on real data (digits;
   the slowest experiment, minutes even with ``--quick``: leave it out with ``--skip realdata``);

and ``report.md`` (figures, agreement tables, version and commit) and ``summary.json`` (the run
manifest: mode, provenance, compute time accumulated over runs, every number).

Batch sampling: the experiments use the published protocol's scheme, without replacement
(contract §7); the asymptotics ρ(T) rows use with replacement. The toolkit's default scheme,
of ``rmt.Schedule`` and ``rmt analyze``, is bernoulli.

Nothing finished is recomputed: every sweep experiment is stored under ``OUT/sweeps/``, and the
asymptotics and real-data results are kept in ``OUT`` and reused while their inputs match, so
killing the command and rerunning it resumes. ``--quick`` uses coarse grids; the full mode uses
the published resolutions (n = 100, σ ∈ 1..50, B ∈ 1..49, 10 runs of 1000 steps). Every argument
is checked before any folder is created.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

import rmt
from rmt.verdict import FORGETS, RESISTS, SIGN_CONVENTION, SIGN_CONVENTION_SHORT

from . import figures
from . import hessian_grid as hg
from .cnn import reproduce as cnn_reproduce
from .coherence_study import experiment_coherence_study
from .coherence_study.report import report_section as _section_coherence_study
from .sweep import CellFunction, check_scheduler, run_sweep

__all__ = ["reproduce", "all_experiments", "default_out", "write_report",
           "HessianGridCell", "HessianFrontierCell", "HessianCertificateCell", "LyapunovCell",
           "hessian_grid_panel",
           "hessian_test_singular", "lyapunov_figure"]


# ----------------------------------------------------------------------------- sweep cells
@dataclass(frozen=True)
class HessianGridCell(CellFunction):
    """Picklable cell function for the Hessian-test grid (fixed protocol parameters)."""

    n: int = 100
    n_forget: int = 10
    runs: int = 10
    steps: int = 1000
    threshold: float = 1000.0

    def __call__(self, params, seed):
        return hg.cell({**params, **asdict(self)}, seed)


@dataclass(frozen=True)
class HessianFrontierCell(CellFunction):
    """Exact critical batch B*(σ) of one (η, α, σ) row of the Hessian-test grid (NaN: none ≤ b_max).

    :func:`simulations.hessian_grid.critical_batch` with the grid cell's own rule; a sweep cell
    so that a rerun reuses it and the processes/Dask executors share the work.
    """

    n: int = 100
    n_forget: int = 10
    b_max: int = 49

    def __call__(self, params, seed):
        b = hg.critical_batch(self.n, int(params["sigma"]), float(params["eta"]),
                              float(params["alpha"]), self.n_forget, b_max=self.b_max,
                              sampling=HESSIAN_GRID_SAMPLING)
        return {"critical_batch": math.nan if b is None else float(b)}


@dataclass(frozen=True)
class HessianCertificateCell(CellFunction):
    """A verified certificate of one Hessian-test cell's exact verdict
    (:func:`simulations.hessian_grid.certify_cell`: diagonal Y, exact rational check)."""

    n: int = 100
    n_forget: int = 10

    def __call__(self, params, seed):
        return hg.certify_cell({**params, **asdict(self)})


@dataclass(frozen=True)
class LyapunovCell(CellFunction):
    """ρ(T) and the top Lyapunov exponent for the Hessian-test set (n, σ) at (η, B)."""

    n: int = 20
    sigma: int = 4
    batch: int = 5
    steps: int = 4000
    replicas: int = 8

    def __call__(self, params, seed):
        hs = rmt.ensembles.hessian_test(self.n, self.sigma)
        sch = rmt.Schedule(float(params["eta"]), self.batch, sampling="without_replacement")
        rate = rmt.mean_square_rate(hs, sch)
        lyap = rmt.lyapunov(hs, sch, self.steps, self.replicas, seed)
        return {"half_log_rate": 0.5 * math.log(rate), "lyapunov": lyap.exponent,
                "lyapunov_stderr": lyap.stderr}


# ----------------------------------------------------------------------------- experiments
#: Sampling scheme of the Hessian-test protocol (contract §7).
HESSIAN_GRID_SAMPLING = "without_replacement"


def _grid_sizes(quick):
    if quick:
        return dict(sigma=list(range(1, 51, 5)) + [50], batch=list(range(1, 50, 4)))
    return dict(sigma=list(range(1, 51)), batch=list(range(1, 50)))


def hessian_grid_panel(ax, sub, *, n, n_forget, eta, alpha, sigma_values, batch_values,
                       sampling=HESSIAN_GRID_SAMPLING, ylabel=True, bstar=None):
    """One (η, α) panel of the Hessian-test figure; returns (legend handles, table row).

    ``sub``: the sweep's Dataset at (η, α) (dims σ × B over the simulated cells). The background
    is the *exact* verdict on the full integer lattice B ∈ [min B, max B] × σ ∈ [min σ, max σ],
    read off the critical batch per σ (:func:`simulations.hessian_grid.critical_batch`, the
    cell's own ρ(T) > 1 rule), and the frontier is the step line between the last diverging and
    the first stable batch of every σ — exact, not an interpolation of a 0/1 map. Markers: the
    simulated cells where the published heuristic disagrees. Theorem curves only for SGD and only
    those of ``sampling`` (:func:`simulations.hessian_grid.theorem_curves`). ``bstar``: the
    critical batch of every σ in the lattice, precomputed (e.g. by a :class:`HessianFrontierCell`
    sweep); computed here when None.
    """
    B_all = np.arange(int(min(batch_values)), int(max(batch_values)) + 1)
    S_all = np.arange(int(min(sigma_values)), int(max(sigma_values)) + 1)
    if bstar is None:
        bstar = hg.critical_batches(n, S_all, eta, alpha, n_forget, b_max=int(B_all[-1]),
                                    sampling=sampling)
    bstar = [None if b is None or not np.isfinite(b) else int(b) for b in bstar]
    if len(bstar) != len(S_all):
        raise ValueError(f"bstar needs one entry per σ in {S_all[0]}..{S_all[-1]}, got {len(bstar)}")
    bs = np.array([np.inf if b is None else b for b in bstar], dtype=float)
    lattice = (B_all[None, :] < bs[:, None]).astype(float)  # diverges below B*(σ)
    boundary = np.clip(bs - 0.5, B_all[0] - 0.5, B_all[-1] + 0.5)
    frontier = figures.step_frontier(S_all, boundary)

    exact = sub["exact_diverges"].transpose("sigma", "batch").values
    heur = sub["heuristic_diverges"].transpose("sigma", "batch").values
    valid = np.isfinite(exact) & np.isfinite(heur)
    exact_only = valid & (exact == 1) & (heur == 0)
    heur_only = valid & (exact == 0) & (heur == 1)
    n_valid = int(valid.sum())
    n_agree = n_valid - int(exact_only.sum() + heur_only.sum())
    # the sweep's exact verdicts are the lattice's at the simulated cells (same rule, same rates)
    si = np.searchsorted(S_all, np.asarray(sigma_values, dtype=int))
    bi = np.searchsorted(B_all, np.asarray(batch_values, dtype=int))
    on_lattice = lattice[np.ix_(si, bi)]
    consistent = bool(np.all((exact == on_lattice) | ~np.isfinite(exact)))

    sv, bv = np.asarray(sigma_values, float), np.asarray(batch_values, float)
    disagree = {}
    for mask, label, marker in ((exact_only, "heuristic: no escape, exact: ρ(T) > 1", "x"),
                                (heur_only, "heuristic: escape, exact: ρ(T) ≤ 1", "+")):
        yy, xx = np.nonzero(mask)
        disagree[label] = (bv[xx], sv[yy], marker)
    curves = []
    if alpha == 0.0:
        Bf = np.linspace(B_all[0], B_all[-1], 300)
        styles = [dict(color=figures.OKABE_ITO["green"], lw=1.6, ls="--"),
                  # wide and under the frontier: where they coincide both stay visible
                  dict(color=figures.OKABE_ITO["purple"], lw=3.4, ls="-", alpha=0.9, zorder=3)]
        for c, st in zip(hg.theorem_curves(n, Bf, eta, sampling), styles):
            curves.append((Bf, c["sigma"], c["label"], st))
    what = "SGD" if alpha == 0 else f"unlearning α={alpha}"
    handles = figures.phase_diagram(
        ax, B_all, S_all, lattice, frontier=frontier, disagree=disagree, curves=curves,
        xlabel="batch size B", ylabel="coherence σ" if ylabel else "",
        title=f"{what}, η={eta}\nheuristic agrees on {n_agree}/{n_valid} simulated cells",
    )
    if all(b is None for b in bstar):  # the frontier runs along the right edge: say so
        ax.text(0.5, 0.5, f"ρ(T) > 1 in every cell:\nno stable B ≤ {B_all[-1]}",
                transform=ax.transAxes, ha="center", va="center", fontsize=9,
                bbox=dict(facecolor="white", alpha=0.85, edgecolor="none"))
    row = dict(eta=eta, alpha=alpha, cells=n_valid, agree=n_agree,
               agreement=n_agree / max(n_valid, 1),
               exact_forgets=int(np.sum(exact[valid] == 1)),
               heuristic_forgets=int(np.sum(heur[valid] == 1)),
               disagree=n_valid - n_agree, exact_only=int(exact_only.sum()),
               heuristic_only=int(heur_only.sum()), exact_matches_lattice=consistent,
               critical_batch=[dict(sigma=int(s), batch=None if b is None else int(b))
                               for s, b in zip(S_all, bstar)])
    return handles, row


def experiment_hessian_grid(out: Path, quick: bool, run_kw: dict, *, cell=None, sizes=None,
                            etas=(0.5, 0.8), alphas=(0.0, 0.1, 0.3, 0.5)) -> dict:
    sizes = dict(sizes or _grid_sizes(quick))
    grid = {"eta": list(etas), "alpha": list(alphas), **sizes}
    cellf = cell or HessianGridCell()
    ds = run_sweep(cellf, grid, out / "sweeps" / "hessian_grid", seed=0,
                   config={"experiment": "hessian_grid", **cellf.__dict__}, **run_kw)
    # the exact frontier on the full integer lattice: one sweep cell per (η, α, σ)
    S_all = list(range(int(min(grid["sigma"])), int(max(grid["sigma"])) + 1))
    fcell = HessianFrontierCell(n=cellf.n, n_forget=cellf.n_forget, b_max=int(max(grid["batch"])))
    front = run_sweep(fcell, {"eta": grid["eta"], "alpha": grid["alpha"], "sigma": S_all},
                      out / "sweeps" / "hessian_frontier", seed=0,
                      config={"experiment": "hessian_frontier", **fcell.__dict__,
                              "sampling": HESSIAN_GRID_SAMPLING}, **run_kw)
    # a verified certificate (contract §10.6) of the exact verdict of every simulated cell
    ccell = HessianCertificateCell(n=cellf.n, n_forget=cellf.n_forget)
    t_cert = time.perf_counter()
    # milliseconds per cell: in this process for the quick grid (a process pool costs more)
    ckw = dict(executor="serial", progress=run_kw.get("progress", True)) if quick else run_kw
    certs = run_sweep(ccell, grid, out / "sweeps" / "hessian_certificates", seed=0,
                      config={"experiment": "hessian_certificates", **ccell.__dict__,
                              "sampling": HESSIAN_GRID_SAMPLING}, **ckw)
    t_cert = time.perf_counter() - t_cert
    rows, titles = [], {}
    for eta in grid["eta"]:
        fig, axes = figures.plt.subplots(1, len(grid["alpha"]), figsize=(4.3 * len(grid["alpha"]), 4.6),
                                         sharey=True, squeeze=False)
        legend = {}
        for k, (ax, alpha) in enumerate(zip(axes[0], grid["alpha"])):
            handles, row = hessian_grid_panel(
                ax, ds.sel(eta=eta, alpha=alpha), n=cellf.n, n_forget=cellf.n_forget, eta=eta,
                alpha=alpha, sigma_values=grid["sigma"], batch_values=grid["batch"], ylabel=k == 0,
                bstar=front["critical_batch"].sel(eta=eta, alpha=alpha).values)
            legend.update({h.get_label(): h for h in handles})
            csub = certs.sel(eta=eta, alpha=alpha)
            order = ("sigma", "batch")
            row.update(hg.certificate_counts(
                csub["certified"].transpose(*order).values, csub["forgets"].transpose(*order).values,
                csub["exactly_one"].transpose(*order).values,
                ds.sel(eta=eta, alpha=alpha)["exact_diverges"].transpose(*order).values))
            rows.append(row)
            titles[f"{eta}/{alpha}"] = ax.get_title()
        axes[0, -1].legend(handles=list(legend.values()), loc="upper left",
                           bbox_to_anchor=(1.02, 1), fontsize=8)
        fig.suptitle(f"Hessian test (n={cellf.n}, batches {hg.SCHEME_NAMES[HESSIAN_GRID_SAMPLING]}"
                     f"): {SIGN_CONVENTION_SHORT}", fontsize=10)
        fig.tight_layout()
        figures.save(fig, out / f"hessian_grid_eta{eta}.png")
    from rmt.certificates import COMMUTING_RESOLUTION

    certified = {k: int(sum(row[k] for row in rows))
                 for k in ("cells", "certified", "certificate_disagrees", "not_certifiable",
                           "exactly_one")}
    near = certs["near_one"].values
    certified.update(
        near_one=int(np.sum(np.isfinite(near) & (near == 1)
                            & (certs["certified"].values == 1))),
        resolution=COMMUTING_RESOLUTION, verification="exact-commuting", seconds=t_cert)
    return {"rows": rows, "figures": [f"hessian_grid_eta{eta}.png" for eta in grid["eta"]],
            "titles": titles, "sampling": HESSIAN_GRID_SAMPLING, "certificates": certified,
            "simulated": {k: list(map(int, v)) for k, v in sizes.items()},
            "heuristic": {"runs": cellf.runs, "steps": cellf.steps, "threshold": cellf.threshold},
            "grid": {k: (v[0], v[-1], len(v)) for k, v in grid.items()}}


def hessian_test_singular(n: int, sigma: int, batch: int, eta: float, lam: float = 2.0,
                          rtol: float = 1e-9) -> bool:
    """True when some without-replacement batch makes J = I − ηĤ singular in *every* direction.

    Hessian test (contract §7): each sample has eigenvalue λn/σ, so a batch holding k shared
    samples gives the factor 1 − k·a on e₀ (a = ηλn/(σB)) and 1 − a on a drawn sample's own
    direction. When a = 1 every direction can be annihilated with positive probability, so
    E log|j| = −∞ in each and the top Lyapunov exponent is λ₁ = −∞ exactly; a finite-run estimate
    there is an outlier of no meaning (the mean-square rate is unaffected).
    """
    a = eta * lam * n / (sigma * batch)
    k_lo, k_hi = max(1, batch - (n - sigma)), min(batch, sigma)
    shared = any(abs(1 - k * a) <= rtol for k in range(k_lo, k_hi + 1))
    own = sigma == n or abs(1 - a) <= rtol
    return bool(shared and own)


def parting_intervals(eta_a, half, lyap, se, eta_star) -> list:
    """The η-intervals where the model is mean-square unstable but almost surely stable.

    Mean square: ρ(T) > 1, i.e. η > η* (the exact critical step) when the sampled ½ log ρ(T)
    changes sign only there; otherwise ½ log ρ(T) interpolated linearly between the sampled η.
    Almost sure: λ₁ + 2 s.e. < 0, interpolated linearly between the sampled η (a −∞ or NaN
    estimate counts as stable). So an interval starts at η* itself, not at the next sampled η,
    and ends where the interpolated λ₁ + 2 s.e. crosses 0. Returns ``[(lo, hi), ...]`` within
    the sampled range.
    """
    eta_a, half, lyap, se = (np.asarray(v, dtype=float) for v in (eta_a, half, lyap, se))
    order = np.argsort(eta_a)
    eta_a, half, lyap, se = eta_a[order], half[order], lyap[order], se[order]
    upper = np.where(np.isfinite(lyap + 2 * se), lyap + 2 * se, -np.inf)
    finite = upper[np.isfinite(upper)]
    upper = np.where(np.isfinite(upper), upper, (finite.min() if finite.size else 0.0) - 1.0)
    exact = bool(np.isfinite(eta_star)) and np.array_equal(half > 0, eta_a > eta_star)

    def roots(y):
        out = []
        for k in range(len(eta_a) - 1):
            if (y[k] < 0) != (y[k + 1] < 0) and y[k] != y[k + 1]:
                out.append(eta_a[k] + (eta_a[k + 1] - eta_a[k]) * y[k] / (y[k] - y[k + 1]))
        return out

    cuts = {eta_a[0], eta_a[-1], *roots(upper)}
    cuts |= {float(eta_star)} if exact and eta_a[0] < eta_star < eta_a[-1] else set(roots(half))
    cuts = sorted(c for c in cuts if eta_a[0] <= c <= eta_a[-1])
    intervals = []
    for lo, hi in zip(cuts[:-1], cuts[1:]):
        mid = 0.5 * (lo + hi)
        unstable_ms = mid > eta_star if exact else np.interp(mid, eta_a, half) > 0
        if unstable_ms and np.interp(mid, eta_a, upper) < 0:
            if intervals and intervals[-1][1] == lo:
                intervals[-1] = (intervals[-1][0], float(hi))
            else:
                intervals.append((float(lo), float(hi)))
    return intervals


def lyapunov_figure(path, eta_a, half, lyap, se, singular, eta_star, title):
    """½ log ρ(T) and λ₁ ± 2 s.e. against η; returns boolean arrays (parting, clipped, shown).

    The y-range is set by the meaningful points (not ``singular``); a λ₁ estimate below it is
    *clipped*: drawn as ▼ at the lower edge with its value printed, the λ₁ line broken there.
    Shaded: η where ½ log ρ(T) > 0 but λ₁ + 2 s.e. < 0 (mean-square unstable, almost surely
    stable); dotted: the exact critical step η* (ρ(T) = 1).
    """
    eta_a, half, lyap, se = (np.asarray(v, dtype=float) for v in (eta_a, half, lyap, se))
    singular = np.asarray(singular, dtype=bool)
    # axis range from the meaningful points; anything below it (the singular steps) is clipped
    ok = ~singular & np.isfinite(lyap)
    lo = min(np.min(half), np.min((lyap - 2 * se)[ok]) if ok.any() else np.min(half))
    hi = max(np.max(half), np.max((lyap + 2 * se)[ok]) if ok.any() else np.max(half))
    pad = 0.08 * (hi - lo or 1.0)
    y_lo, y_hi = lo - pad, hi + pad
    clipped = ~(np.isfinite(lyap) & (lyap - 2 * se >= y_lo))

    fig, ax = figures.plt.subplots(figsize=(9.5, 4.4))
    ax.axhline(0, color="grey", lw=0.8)
    part = (half > 0) & (lyap + 2 * se < 0) & ~clipped
    # the band is the interval itself: from the exact η* to where λ₁ + 2 s.e. crosses 0
    for k, (lo, hi) in enumerate(parting_intervals(eta_a, half, lyap, se, eta_star)):
        ax.axvspan(lo, hi, color=figures.OKABE_ITO["yellow"], alpha=0.45, lw=0,
                   label=(f"m.s. {FORGETS} but a.s. {RESISTS}:\nη* to λ₁ + 2 s.e. = 0 "
                          "(interpolated)") if k == 0 else None)
    ax.axvline(eta_star, color=figures.OKABE_ITO["vermillion"], lw=1.2, ls=":",
               label=f"exact η* = {eta_star:.4f} (ρ(T) = 1)")
    ax.plot(eta_a, half, "-o", color=figures.OKABE_ITO["orange"], ms=4,
            label="½ log ρ(T) (mean square, exact)")
    shown = ~clipped
    # NaN at a clipped point breaks the line there instead of bridging over it
    ax.errorbar(eta_a, np.where(shown, lyap, np.nan), yerr=np.where(shown, 2 * se, np.nan),
                fmt="s", ls="-",
                color=figures.OKABE_ITO["blue"], ms=3.5, capsize=3, elinewidth=1.2,
                label="λ₁ (almost sure, Monte Carlo, bars ±2 s.e.)")
    if clipped.any():
        ax.plot(eta_a[clipped], np.full(clipped.sum(), y_lo), "v", color=figures.OKABE_ITO["blue"],
                ms=8, clip_on=False,
                label=f"λ₁ clipped ({int(clipped.sum())})"
                      + ("; singular step: λ₁ = −∞" if np.all(singular[clipped]) else ""))
        for e, v in zip(eta_a[clipped], lyap[clipped]):
            ax.annotate(f"{v:.3g}", (e, y_lo), xytext=(4, 6), textcoords="offset points", fontsize=7,
                        color=figures.OKABE_ITO["blue"])
    ax.set_ylim(y_lo, y_hi)
    ax.set_xlabel("learning rate η")
    ax.set_ylabel("growth rate per step")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7.5, loc="upper left", bbox_to_anchor=(1.01, 1))  # outside: no overlap
    fig.tight_layout()
    figures.save(fig, path)
    return part, clipped, shown


def experiment_lyapunov(out: Path, quick: bool, run_kw: dict, *, cell=None, etas=None) -> dict:
    cellf = cell or LyapunovCell(steps=2000 if quick else 8000, replicas=8 if quick else 16)
    if etas is None:
        etas = list(np.round(np.linspace(0.3, 1.2, 10 if quick else 28), 4))
    etas = [float(e) for e in etas]
    ds = run_sweep(cellf, {"eta": etas}, out / "sweeps" / "lyapunov", seed=1,
                   config={"experiment": "lyapunov", **cellf.__dict__}, **run_kw)
    eta_a = np.asarray(etas)
    half = ds["half_log_rate"].values
    lyap = ds["lyapunov"].values
    se = ds["lyapunov_stderr"].values
    hs = rmt.ensembles.hessian_test(cellf.n, cellf.sigma)
    eta_star = float(rmt.critical_eta(hs, rmt.Schedule(1.0, cellf.batch, sampling="without_replacement")))
    singular = np.array([hessian_test_singular(cellf.n, cellf.sigma, cellf.batch, e) for e in etas])
    title = (f"Hessian test n={cellf.n}, σ={cellf.sigma}, B={cellf.batch} (without replacement):"
             f" > 0 {FORGETS}")
    part, clipped, shown = lyapunov_figure(out / "lyapunov_vs_meansquare.png", eta_a, half, lyap, se,
                                           singular, eta_star, title)
    rows = [dict(eta=float(e), half_log_rate=float(h), lyapunov=float(l), stderr=float(s),
                 singular=bool(g), clipped=bool(c))
            for e, h, l, s, g, c in zip(etas, half, lyap, se, singular, clipped)]
    return {"rows": rows, "parting_etas": [float(e) for e in eta_a[part]],
            "parting_intervals": parting_intervals(eta_a, half, lyap, se, eta_star),
            "critical_eta": eta_star, "clipped_etas": [float(e) for e in eta_a[clipped]],
            "singular_etas": [float(e) for e in eta_a[singular]],
            "max_two_stderr": float(np.max(2 * se[shown])) if shown.any() else math.nan,
            "figures": ["lyapunov_vs_meansquare.png"]}


def experiment_realdata(out: Path, quick: bool, run_kw: dict) -> dict:
    """Forecasts vs actual nonlinear unlearning on digits (:func:`simulations.realdata.run`)."""
    from . import realdata

    sub = Path(out) / "realdata"
    summary = realdata.run(sub, quick=quick, progress=bool(run_kw.get("progress", True)))
    md = (sub / "realdata.md").read_text() if (sub / "realdata.md").is_file() else ""
    return {"figures": ["realdata/realdata.png"], "summary": summary, "markdown": md}


def _result_store(out: Path, name: str) -> Path:
    """Where a finished non-sweep experiment keeps its result and the fingerprint of its inputs."""
    return Path(out) / "sweeps" / name / "result.json"


def _cached_result(out: Path, name: str, fingerprint) -> dict | None:
    """The stored result of ``name`` when its fingerprint equals ``fingerprint`` and every
    figure it lists is still in ``out``; None otherwise (then it is recomputed)."""
    try:
        stored = json.loads(_result_store(out, name).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(stored, dict) or stored.get("fingerprint") != fingerprint:
        return None
    result = stored.get("result")
    if not isinstance(result, dict):
        return None
    if not all((Path(out) / f).is_file() for f in result.get("figures", [])):
        return None
    return result


def experiment_asymptotics(out: Path, quick: bool, run_kw: dict) -> dict:
    """:func:`simulations.asymptotics_figure.experiment_asymptotics` (numbers, a "markdown"
    snippet, written PNGs listed under "figures"); no sweep, so ``run_kw`` is unused.

    Resumable like the sweeps: the result is stored in ``OUT/sweeps/asymptotics/result.json``
    with the module's :func:`~simulations.asymptotics_figure.fingerprint` (mode, sizes, the
    module's source and the rmt version) and reused by a rerun while the fingerprint matches and
    its figures exist.
    """
    from . import asymptotics_figure  # looked up per call: a test substitutes the module

    make_fp = getattr(asymptotics_figure, "fingerprint", None)
    fp = json.loads(json.dumps(make_fp(quick), default=_json_default)) if make_fp else None
    if fp is not None:
        cached = _cached_result(out, "asymptotics", fp)
        if cached is not None:
            return cached
    result = asymptotics_figure.experiment_asymptotics(Path(out), quick)
    if fp is not None:
        store = _result_store(out, "asymptotics")
        store.parent.mkdir(parents=True, exist_ok=True)
        _write_json(store, {"fingerprint": fp, "result": result})
    return result


# ----------------------------------------------------------------------------- report
def _demote(md: str, levels: int = 2) -> str:
    """Markdown headings pushed ``levels`` deeper (a sub-report inside a section)."""
    return "\n".join(("#" * levels + line) if line.startswith("#") else line
                     for line in md.splitlines())


def _section_hessian_grid(r):
    sim = r.get("simulated", {})
    heur = r.get("heuristic", {"runs": 10, "steps": 1000, "threshold": 1000.0})
    lines = [f"![{f}]({f})" for f in r["figures"]] + [""]
    lines += [
        "Background: the exact mean-square verdict (ρ(T) > 1 on the span of the Hessians) on every "
        "integer (B, σ); black step line: the exact frontier ρ(T) = 1, i.e. the critical batch "
        "B*(σ) of every σ (the smallest B with ρ(T) ≤ 1; `simulations.hessian_grid.critical_batch`"
        ", the cell's own ρ(T) > 1 rule) — computed, not interpolated. Markers: cells where the "
        f"published heuristic (‖w‖² ≥ {heur['threshold']:g}·‖w₀‖² within {heur['steps']} steps, "
        f"majority of {heur['runs']} runs) disagrees: × exact ρ(T) > 1 but no escape, + escape "
        "but ρ(T) ≤ 1. The heuristic was simulated on "
        + (f"σ ∈ {sim['sigma']} × B ∈ {sim['batch']}" if sim else "the grid of the table")
        + "; panel titles count agreement over all simulated cells.",
        "",
        f"Theorem curves (SGD panels only) are those of the diagrams' sampling scheme, "
        f"{hg.SCHEME_NAMES[r.get('sampling', HESSIAN_GRID_SAMPLING)]}: the Theorem 2 construction "
        "(σ identical rank-one Hessians plus zeros — exactly the grid's shared direction) with its "
        "exact condition in this scheme (stable above the curve; it coincides with the exact "
        "frontier wherever the shared direction is the first to go unstable), and the proven "
        "divergence bound contract §5.4(a) at α = 0 (diverges at or below). Dexter et al.'s "
        "Theorem 1 itself is a Bernoulli statement with no without-replacement form, so it is not "
        "drawn; no Bernoulli formula appears on these diagrams. The unlearning panels (α > 0) "
        "carry no theorem curve: the Dexter statements are SGD statements.",
        "",
        "Agreement of the published heuristic with the exact mean-square verdict (simulated cells "
        "with B ≤ n_retain):", "",
    ]
    lines.append(figures.md_table(r["rows"], [
        ("eta", "{}"), ("alpha", "{}"), ("cells", "{}"), ("agree", "{}"), ("agreement", "{:.3f}"),
        ("exact_forgets", "{}"), ("heuristic_forgets", "{}"), ("exact_only", "{}"),
        ("heuristic_only", "{}")]))
    lines += ["`exact_only`: ρ(T) > 1 (forgets in mean square) but the heuristic saw no escape; "
              "`heuristic_only`: the reverse. Forget set for α > 0: the first min(10, σ) samples "
              "of the shared-direction block (see `simulations/hessian_grid.py`). A cell with "
              "ρ(T) > 1 whose typical finite run does not reach the threshold is mean-square "
              "unstable through rare large excursions while almost surely (or within the horizon) "
              "stable.", ""]
    cert = r.get("certificates")
    if cert is not None:  # a result stored before certificates were counted has none
        lines += [
            f"**Certificates.** {cert['certified']} of {cert['cells']} simulated cells carry a "
            "verified certificate of their exact verdict (contract §10.6; `rmt.certify`, checked "
            "by `rmt.verify` in exact rational arithmetic — the cells' Hessians are diagonal, so "
            "Y is diagonal and T(Y) ⪯ cY resp. T(Y) ⪰ cY are entrywise: E[J_j²] ≤ c in every "
            "direction resp. ≥ c in one, O(n + d) per cell, verification "
            f"`{cert.get('verification', 'exact-commuting')}`); "
            f"{cert['not_certifiable']} not certifiable"
            + (f" ({cert['exactly_one']} with ρ(T) = 1 exactly: neutral, neither verdict holds "
               "strictly)" if cert['not_certifiable'] else "")
            + f"; {cert['certificate_disagrees']} certificate(s) contradict the diagram's "
            "floating-point verdict. Resolution: the float candidate resolves |ρ − 1| > "
            f"{cert['resolution']:g}; closer to 1 the exact rates choose c "
            f"({cert.get('near_one', 0)} cell(s)), so only ρ(T) = 1 exactly is left "
            f"uncertified. This run spent {cert['seconds']:.1f} s on them (a rerun "
            "reuses the `hessian_certificates` sweep).",
            ""]
        lines.append(figures.md_table(r["rows"], [
            ("eta", "{}"), ("alpha", "{}"), ("cells", "{}"), ("certified", "{}"),
            ("not_certifiable", "{}"), ("certificate_disagrees", "{}")]))
    return lines


def _section_lyapunov(r):
    lines = ["![lyapunov](lyapunov_vs_meansquare.png)", ""]
    clip = r.get("clipped_etas", [])
    sing = set(r.get("singular_etas", []))
    vals = {row["eta"]: row["lyapunov"] for row in r["rows"]}
    bands = r.get("parting_intervals")
    if bands is None:  # a result stored before the band was computed
        shaded = "shaded around them."
    elif bands:
        shaded = ("shaded: " + ", ".join(f"η ∈ ({lo:.4f}, {hi:.4f})" for lo, hi in bands)
                  + " — from the exact η* to where λ₁ + 2 s.e., interpolated linearly between "
                  "the sampled η, crosses 0.")
    else:
        shaded = "nothing is shaded."
    lines.append(
        "Orange: ½ log ρ(T) (exact); blue: the top Lyapunov exponent λ₁ (Monte Carlo, error bars "
        f"±2 standard errors across replicas, the largest {r.get('max_two_stderr', math.nan):.2g} — "
        "most are smaller than the markers); dotted line: the exact critical step "
        f"η* = {r.get('critical_eta', math.nan):.4f} where ρ(T) = 1. λ₁ ≤ ½ log ρ(T) always "
        "(Jensen). "
        + (f"{len(clip)} point(s) clipped at the lower edge (▼, estimate printed): "
           + ", ".join(f"η = {e:g} (estimate {vals.get(e, math.nan):.3g}"
                       + ("; a batch makes J singular in every direction, so λ₁ = −∞ exactly)"
                          if e in sing else ")") for e in clip) + ". "
           if clip else "No point is clipped. ")
        + "Learning rates where the model is mean-square unstable (forgets in mean square) yet "
        f"almost surely stable: {r['parting_etas']} of the sampled ones; " + shaded)
    lines.append("")
    lines.append(figures.md_table(r["rows"], [
        ("eta", "{:.3f}"), ("half_log_rate", "{:.4f}"), ("lyapunov", "{:.4f}"),
        ("stderr", "{:.4f}"), ("clipped", "{}")]))
    return lines


def _section_generic(r):
    lines = [f"![{f}]({f})" for f in r.get("figures", [])] + [""]
    if r.get("table"):
        lines.append(r["table"])
    if r.get("text"):
        lines += [r["text"], ""]
    if r.get("markdown"):
        lines += [_demote(r["markdown"]), ""]
    return lines


_SECTIONS = {
    "hessian_grid": ("Hessian-test phase diagrams", _section_hessian_grid),
    "coherence_snr": ("Coherence vs SNR (CNN)", _section_generic),
    "cnn_heatmaps": ("CNN unlearning heatmaps", _section_generic),
    "lyapunov": ("Almost-sure vs mean-square stability", _section_lyapunov),
    "asymptotics": ("Random-matrix asymptotics", _section_generic),
    "coherence-study": ("Does coherence order forgettability? (real data sets × models)",
                        _section_coherence_study),
    "realdata": ("Real data: forecasts vs nonlinear unlearning (digits)", _section_generic),
}


def _fmt_seconds(x):
    return f"{x:.0f} s" if x < 120 else f"{x / 60:.1f} min"


def write_report(out: Path, results: dict, quick: bool, seconds: float, *, state=None) -> Path:
    """``report.md`` and ``summary.json`` from the experiments' results.

    ``seconds`` is this run's wall time; ``state`` (the run manifest, see :func:`reproduce`)
    carries the compute time accumulated over every run of this folder and the provenance.
    """
    from .provenance import provenance

    state = state or {"compute_seconds": dict.fromkeys(results, 0.0), "runs": [],
                      "total_seconds": seconds, "provenance": provenance()}
    prov = state["provenance"]
    total = state.get("total_seconds", seconds)
    n_runs = max(len(state.get("runs", [])), 1)
    per = state.get("compute_seconds", {})
    commit = prov.get("commit") or "unknown (not a git checkout)"
    lines = [
        "# rmt reproduction report",
        "",
        f"Produced by rmt {prov.get('rmt_version')} (commit {commit}), Python "
        f"{prov.get('python')}, {prov.get('created_utc')}.",
        "",
        f"Mode: {'quick' if quick else 'full'}. Compute time {_fmt_seconds(total)} in total over "
        f"{n_runs} run(s) of `rmt reproduce` on this folder (this run: {_fmt_seconds(seconds)}; "
        "a rerun resumes the sweeps and adds only what it computed); per experiment: "
        + ", ".join(f"{k} {_fmt_seconds(v)}" for k, v in per.items() if k in results) + ".",
        "",
        f"Sign convention: **{SIGN_CONVENTION}**. Exact verdicts are ρ(T) > 1 on the span of the "
        "Hessians (mean square); heuristics and simulations are finite runs (their notion is named "
        "where they appear).",
        "",
    ]
    k = 0
    for name, r in results.items():
        title, section = _SECTIONS.get(name, (name, _section_generic))
        k += 1
        lines += [f"## {k}. {title}", ""] + section(r)
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    summary = {"mode": "quick" if quick else "full", "provenance": prov,
               "compute_seconds": per, "total_seconds": total, "runs": state.get("runs", []),
               "convention": SIGN_CONVENTION, "results": results}
    _write_json(out / "summary.json", summary)
    return path


def _write_json(path: Path, obj) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=_json_default))
    tmp.replace(path)


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (np.bool_,)):
        return bool(o)
    if isinstance(o, Path):
        return str(o)
    return str(o)


# ----------------------------------------------------------------------------- registry
EXPERIMENTS = {
    "hessian_grid": experiment_hessian_grid,
    "lyapunov": experiment_lyapunov,
}


def _optional_cnn_experiments() -> dict:
    """The CNN experiments (:data:`simulations.cnn.reproduce.EXPERIMENTS`), in their order."""
    return dict(cnn_reproduce.EXPERIMENTS)


def all_experiments() -> dict:
    """Every experiment in the default order (the slow real-data one last)."""
    return {**EXPERIMENTS, **_optional_cnn_experiments(), "asymptotics": experiment_asymptotics,
            "coherence-study": experiment_coherence_study, "realdata": experiment_realdata}


#: Experiments whose result is reused from ``summary.json`` on a rerun instead of recomputed
#: (not sweeps: they would otherwise start over).
_REUSE = {"realdata": ("realdata/realdata.json", "realdata/realdata.png")}


# ----------------------------------------------------------------------------- validation
def default_out(quick: bool) -> Path:
    """``rmt-output/reproduce/quick`` or ``rmt-output/reproduce/full`` (one folder per mode)."""
    return Path("rmt-output") / "reproduce" / ("quick" if quick else "full")


def _mode_of(out: Path):
    """The mode ("quick"/"full") an existing output folder holds, or None if it tells none."""
    try:
        data = json.loads((out / "summary.json").read_text())
        if isinstance(data, dict) and data.get("mode") in ("quick", "full"):
            return data["mode"]
    except (OSError, ValueError):
        pass
    try:
        for line in (out / "report.md").read_text().splitlines():
            if line.startswith("Mode: "):
                return "quick" if line[6:].startswith("quick") else "full"
    except OSError:
        pass
    return None


def _check_out(out: Path, quick: bool) -> None:
    mode = "quick" if quick else "full"
    for parent in [out, *out.parents]:
        if parent.exists() and not parent.is_dir():
            where = "" if parent == out else f" (in --out {str(out)!r})"
            raise ValueError(f"--out: {str(parent)!r} is an existing file, not a folder{where}; "
                             "choose a folder")
        if parent.exists():
            break
    if not out.is_dir():
        return
    held = _mode_of(out)
    if held is not None and held != mode:
        other = "--quick" if held == "quick" else "without --quick"
        raise ValueError(f"--out {str(out)!r} holds a {held}-mode reproduction (sweeps of the "
                         f"other grid); rerun {other} to resume it, or choose another --out for "
                         f"the {mode} mode")
    if held is None and any(out.iterdir()) and not (out / "sweeps").is_dir():
        raise ValueError(f"--out {str(out)!r} is a non-empty folder that holds no rmt reproduce "
                         "output; choose a new or empty folder")


def _select(only, skip, experiments) -> list:
    # hyphens and underscores are the same in a name (coherence-study = coherence_study)
    canon = {n.replace("-", "_"): n for n in experiments}

    def name(n):
        return canon.get(str(n).replace("-", "_"), n)

    only = None if not only else [name(n) for n in only]
    skip = [name(n) for n in (skip or [])]
    names = list(experiments) if not only else list(dict.fromkeys(only))
    unknown = [n for n in [*names, *(skip or [])] if n not in experiments]
    if unknown:
        raise ValueError(f"unknown experiment(s) {', '.join(map(repr, unknown))}; choose from "
                         f"{', '.join(experiments)}")
    names = [n for n in names if n not in set(skip or [])]
    if not names:
        raise ValueError("no experiment left to run (--skip removed every one)")
    return names


# ----------------------------------------------------------------------------- entry point
def reproduce(out=None, *, quick=False, executor="processes", dask_local=None, scheduler=None,
              progress=True, only=None, skip=None) -> Path:
    """Run every experiment (or those in ``only``, minus ``skip``) and write ``OUT/report.md``.

    Every argument is checked before anything is written (a bad one raises ValueError and no
    folder is created). ``OUT/summary.json`` is the run manifest: the mode, the provenance
    (:func:`simulations.provenance.provenance`), the compute time per experiment *accumulated
    over every run* on this folder (a resumed run adds its own time to the first run's), and the
    results. ``out`` defaults to :func:`default_out`.
    """
    from .provenance import provenance

    out = default_out(quick) if out is None else Path(out)
    experiments = all_experiments()
    names = _select(only, skip, experiments)
    if dask_local is not None and int(dask_local) < 1:
        raise ValueError(f"--dask-local must be >= 1, got {dask_local}")
    _check_out(out, quick)
    if scheduler is not None and dask_local is None:
        check_scheduler(scheduler)
    run_kw = dict(executor=executor, progress=progress)
    if dask_local is not None:
        run_kw.update(executor="dask", dask_local=int(dask_local))
    elif scheduler is not None:
        run_kw.update(executor="dask", scheduler=scheduler)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"cannot create --out {str(out)!r}: {exc.strerror or exc}") from None

    mode = "quick" if quick else "full"
    old = {}
    try:
        old = json.loads((out / "summary.json").read_text())
        if not isinstance(old, dict) or old.get("mode") != mode:
            old = {}
    except (OSError, ValueError):
        old = {}
    prov = provenance()
    state = {"mode": mode, "provenance": prov,
             "compute_seconds": dict(old.get("compute_seconds", {})),
             "total_seconds": float(old.get("total_seconds", 0.0)),
             "runs": list(old.get("runs", [])), "results": dict(old.get("results", {}))}
    this_run = {"provenance": prov, "experiments": names, "seconds": 0.0, "finished": False}
    state["runs"].append(this_run)
    _write_json(out / "summary.json", {**state, "convention": SIGN_CONVENTION})  # mode first

    t0 = time.perf_counter()
    results = {}
    try:
        for name in names:
            files = _REUSE.get(name)
            if (files and name in state["results"]
                    and all((out / f).is_file() for f in files)):
                results[name] = state["results"][name]  # finished in an earlier run
                continue
            t = time.perf_counter()
            try:
                results[name] = experiments[name](out, quick, run_kw)
            finally:
                spent = time.perf_counter() - t
                state["compute_seconds"][name] = state["compute_seconds"].get(name, 0.0) + spent
                state["total_seconds"] += spent
                this_run["seconds"] = time.perf_counter() - t0
                if name in results:
                    state["results"][name] = results[name]
                _write_json(out / "summary.json", {**state, "convention": SIGN_CONVENTION})
    finally:
        this_run["seconds"] = time.perf_counter() - t0
        _write_json(out / "summary.json", {**state, "convention": SIGN_CONVENTION})
    this_run["finished"] = True
    # the report covers every experiment this folder holds (an --only run keeps the others)
    shown = {n: state["results"][n] for n in experiments if n in state["results"]}
    return write_report(out, shown, quick, this_run["seconds"], state=state)


def _main(args):
    path = reproduce(args.out, quick=args.quick, executor="serial" if args.serial else "processes",
                     dask_local=args.dask_local, scheduler=args.scheduler,
                     progress=not args.no_progress, only=args.only, skip=args.skip)
    print(f"wrote {path}")
    return 0
