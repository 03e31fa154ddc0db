"""Escape heatmaps of real nonlinear unlearning runs with the linear-theory frontier (THEORY §7).

For each SNR on a geometric grid: draw data (n samples, random forget set of ``n_forget``), train
the CNN on the squared loss to interpolation, build the per-sample Gauss–Newton HessianSet at w*,
set η = ``eta_scale``/λ_max(H̄_R) (a fixed fraction of the full-batch GD edge 2/λ_max, so that
the SNR dependence of the outcome comes from the *shape* of the curvature — its coherence — and
not from its overall scale), then for every cell of the second axis (α or B):

* **predicted**: the exact mean-square rate ρ(T) of the linearised dynamics (THEORY §3). A run of
  K steps is declared escaped when ‖w_K − w*‖ ≥ F‖w_0 − w*‖, so the matching prediction is
  ρ(T) > ρ_c = F^{2/K} (:func:`~simulations.cnn.unlearning.horizon_rate`); the asymptotic
  frontier ρ(T) = 1 is overlaid too (dashed) and its agreement reported separately.
* **observed**: :func:`~simulations.cnn.unlearning.unlearn` (majority of ``replicas`` runs).

Agreement = fraction of *counted* cells whose observed outcome equals the prediction; a cell is
counted when its prediction agrees with all of its 4-neighbours, i.e. it is at least one cell away
from the predicted frontier. Convention: "diverges" = forgets, "converges" = resists.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from rmt import Schedule, mean_square_rate
from rmt._validation import check_choice, check_int, check_positive, check_unit_interval

from ._threads import single_blas_thread
from .data import make_data, split_forget
from .network import gauss_newton_hessians, init_cnn, train
from .unlearning import horizon_rate, unlearn

__all__ = ["HeatmapResult", "heatmap", "plot_heatmap", "AXES"]

AXES = ("snr,alpha", "snr,batch")


@dataclass(frozen=True)
class HeatmapResult:
    """Labelled result of :func:`heatmap` (rows: SNR, columns: α or B).

    ``rate`` ρ(T), ``predicted`` (ρ > ρ_c), ``predicted_asymptotic`` (ρ > 1), ``observed``
    (majority escaped), ``escape_fraction``, ``counted`` (≥ 1 cell from the predicted frontier),
    ``agreement`` (over counted cells), ``agreement_asymptotic`` (same, for the ρ = 1 frontier),
    ``eta`` per SNR row, ``sigma_retain`` per row (sampled coherence of the retain set),
    ``forget_loss_increase`` and ``retain_loss_change`` (replica means; inf on overflow).
    """

    axes: str
    snr: np.ndarray
    second: np.ndarray
    rate: np.ndarray = field(repr=False)
    predicted: np.ndarray = field(repr=False)
    predicted_asymptotic: np.ndarray = field(repr=False)
    observed: np.ndarray = field(repr=False)
    escape_fraction: np.ndarray = field(repr=False)
    counted: np.ndarray = field(repr=False)
    counted_asymptotic: np.ndarray = field(repr=False)
    agreement: float
    agreement_asymptotic: float
    rate_threshold: float
    eta: np.ndarray = field(repr=False)
    sigma_retain: np.ndarray = field(repr=False)
    forget_loss_increase: np.ndarray = field(repr=False)
    retain_loss_change: np.ndarray = field(repr=False)
    params: dict = field(repr=False)
    seconds: float = 0.0
    lyapunov: np.ndarray | None = field(default=None, repr=False)
    agreement_almost_sure: float | None = None

    @property
    def second_name(self) -> str:
        return self.axes.split(",")[1]

    def disagreements(self, asymptotic=False):
        """Cells (i, j) counted for agreement whose observed outcome differs from the prediction."""
        pred = self.predicted_asymptotic if asymptotic else self.predicted
        cnt = self.counted_asymptotic if asymptotic else self.counted
        return [tuple(map(int, ij)) for ij in np.argwhere(cnt & (pred != self.observed))]

    def to_dict(self) -> dict:
        name = self.second_name
        cells = []
        for i, s in enumerate(self.snr):
            for j, v in enumerate(self.second):
                cells.append({
                    "snr": float(s), name: (int(v) if name == "batch" else float(v)),
                    "rate": float(self.rate[i, j]),
                    "predicted": "diverges" if self.predicted[i, j] else "converges",
                    "predicted_asymptotic": "diverges" if self.predicted_asymptotic[i, j] else "converges",
                    "observed": "diverges" if self.observed[i, j] else "converges",
                    "escape_fraction": float(self.escape_fraction[i, j]),
                    "counted": bool(self.counted[i, j]),
                    "forget_loss_increase": _num(self.forget_loss_increase[i, j]),
                    "retain_loss_change": _num(self.retain_loss_change[i, j]),
                })
        return {
            "axes": self.axes,
            "convention": "diverges = forgets (escapes w*), converges = resists unlearning",
            "agreement": self.agreement,
            "agreement_asymptotic": self.agreement_asymptotic,
            "n_counted": int(self.counted.sum()),
            "n_cells": int(self.counted.size),
            "rate_threshold": self.rate_threshold,
            "notion": "mean-square" if self.lyapunov is None else "mean-square and almost-sure",
            "agreement_almost_sure": self.agreement_almost_sure,
            "lyapunov": None if self.lyapunov is None else self.lyapunov.tolist(),
            "snr": [float(s) for s in self.snr],
            name: [int(v) if name == "batch" else float(v) for v in self.second],
            "eta": [float(e) for e in self.eta],
            "sigma_retain": [float(s) for s in self.sigma_retain],
            "disagreements": [
                {"snr": float(self.snr[i]), name: float(self.second[j]), "rate": float(self.rate[i, j]),
                 "escape_fraction": float(self.escape_fraction[i, j])}
                for i, j in self.disagreements()
            ],
            "cells": cells,
            "params": self.params,
            "seconds": self.seconds,
        }


def _num(x):
    x = float(x)
    return x if np.isfinite(x) else None


def _batch_grid(n_max, grid):
    vals = np.unique(np.round(np.geomspace(1, n_max, grid)).astype(int))
    k = 1
    while vals.size < grid and k < n_max:  # small n_max: fall back to distinct integers
        vals = np.unique(np.concatenate([vals, [k]]))
        k += 1
    return np.sort(vals)[:grid]


def _counted(pred):
    G1, G2 = pred.shape
    ok = np.ones_like(pred, dtype=bool)
    for di, dj in ((1, 0), (-1, 0), (0, 1), (0, -1)):
        for i in range(G1):
            for j in range(G2):
                a, b = i + di, j + dj
                if 0 <= a < G1 and 0 <= b < G2 and pred[a, b] != pred[i, j]:
                    ok[i, j] = False
    return ok


def heatmap(axes="snr,alpha", grid=8, *, n=100, d=200, m=20, sigma_p=1.0, sigma0=0.01,
            snr_range=(0.05, 3.0), alpha_range=(0.0, 0.5), alpha=0.05, batch=10,
            n_forget=10, eta_scale=1.0, sampling="without_replacement", schedule="summed",
            steps=400, escape_factor=10.0, replicas=3, perturbation=1e-3, seed=0,
            almost_sure=None, lyapunov_steps=2000, progress=None) -> HeatmapResult:
    """Escape heatmap over (SNR, α) or (SNR, B) with the linear prediction per cell (module doc).

    ``alpha`` is the fixed α of the (SNR, B) map, ``batch`` the fixed B of the (SNR, α) map
    (forget batch = min(B, n_forget)). Everything random derives from ``seed``.

    ``almost_sure``: also compute the top Lyapunov exponent λ₁ of the linearised dynamics with
    ``rmt.lyapunov`` (predicted escape within K steps: K·λ₁ > log F). ``None`` = only if
    ``rmt.lyapunov`` exists at call time; otherwise only the mean-square prediction is reported.
    """
    import rmt

    if almost_sure is None:
        almost_sure = hasattr(rmt, "lyapunov")
    elif almost_sure and not hasattr(rmt, "lyapunov"):
        raise ValueError("almost_sure=True needs rmt.lyapunov, which this installation lacks")
    check_choice(axes, "axes", AXES)
    grid = check_int(grid, "grid", minimum=2)
    n = check_int(n, "n", minimum=2)
    n_forget = check_int(n_forget, "n_forget", minimum=1)
    if n_forget >= n:
        raise ValueError(f"n_forget must be < n={n}, got {n_forget}")
    lo, hi = (check_positive(v, "snr_range") for v in snr_range)
    if lo >= hi:
        raise ValueError(f"snr_range must be increasing, got {snr_range}")
    a_lo, a_hi = (check_unit_interval(v, "alpha_range") for v in alpha_range)
    if a_lo >= a_hi:
        raise ValueError(f"alpha_range must be increasing, got {alpha_range}")
    alpha = check_unit_interval(alpha, "alpha")
    batch = check_int(batch, "batch", minimum=1, maximum=n - n_forget)
    eta_scale = check_positive(eta_scale, "eta_scale")
    steps = check_int(steps, "steps", minimum=1)
    seed = check_int(seed, "seed", minimum=0)
    t0 = time.perf_counter()
    snrs = np.geomspace(lo, hi, grid)
    n_r = n - n_forget
    second = np.linspace(a_lo, a_hi, grid) if axes == "snr,alpha" else _batch_grid(n_r, grid)
    G2 = second.size
    shape = (grid, G2)
    rate = np.empty(shape)
    obs = np.zeros(shape, dtype=bool)
    frac = np.empty(shape)
    dF = np.empty(shape)
    dR = np.empty(shape)
    etas = np.empty(grid)
    lyap = np.empty(shape) if almost_sure else None
    sig_r = np.empty(grid)
    rho_c = horizon_rate(steps, escape_factor)
    rows = np.random.SeedSequence(seed).spawn(grid)
    from rmt import coherence

    for i, snr in enumerate(snrs):
        rs = rows[i].spawn(2 + G2)
        data = make_data(n, d, float(snr), sigma_p=sigma_p, seed=np.random.default_rng(rs[0]))
        data = split_forget(data, "random", size=n_forget, seed=np.random.default_rng(rs[0]))
        net = train(init_cnn(d, m, sigma0=sigma0, seed=np.random.default_rng(rs[1])), data).cnn
        hs = gauss_newton_hessians(net, data)
        with single_blas_thread():
            lam = float(np.linalg.eigvalsh(hs.reduction(True, False).mean("retain"))[-1])
            sig_r[i] = coherence(hs).sigma_retain
        etas[i] = eta_scale / lam
        for j, v in enumerate(second):
            if axes == "snr,alpha":
                a_, B = float(v), batch
            else:
                a_, B = alpha, int(v)
            sch = Schedule(eta=etas[i], batch=B, alpha=a_, sampling=sampling, schedule=schedule,
                           forget_batch=min(B, n_forget))
            with single_blas_thread():
                rate[i, j] = mean_square_rate(hs, sch)
                if lyap is not None:
                    lyap[i, j] = rmt.lyapunov(hs, sch, steps=lyapunov_steps, replicas=4,
                                              seed=int(rs[2 + j].generate_state(1)[0])).exponent
            run = unlearn(net, data, sch, steps=steps, perturbation=perturbation,
                          escape_factor=escape_factor, replicas=replicas,
                          seed=np.random.default_rng(rs[2 + j]))
            obs[i, j] = run.escaped
            frac[i, j] = run.escape_fraction
            dF[i, j] = float(np.mean(run.forget_loss_increase))
            dR[i, j] = float(np.mean(run.retain_loss_change))
            if progress is not None:
                progress(i, j)
    pred = rate > rho_c
    pred_inf = rate > 1.0
    cnt = _counted(pred)
    cnt_inf = _counted(pred_inf)
    agree = float(np.mean(obs[cnt] == pred[cnt])) if cnt.any() else float("nan")
    agree_inf = float(np.mean(obs[cnt_inf] == pred_inf[cnt_inf])) if cnt_inf.any() else float("nan")
    agree_as = None
    if lyap is not None:
        pred_as = lyap * steps > np.log(escape_factor)
        cnt_as = _counted(pred_as)
        agree_as = float(np.mean(obs[cnt_as] == pred_as[cnt_as])) if cnt_as.any() else float("nan")
    params = dict(n=n, d=d, m=m, sigma_p=sigma_p, sigma0=sigma0, n_forget=n_forget,
                  eta_scale=eta_scale, sampling=sampling, schedule=schedule, steps=steps,
                  escape_factor=escape_factor, replicas=replicas, perturbation=perturbation,
                  seed=seed, alpha=alpha if axes == "snr,batch" else None,
                  batch=batch if axes == "snr,alpha" else None, loss="squared",
                  notion="mean-square (rho(T)); finite horizon rho_c = F^(2/K)")
    return HeatmapResult(axes, snrs, second, rate, pred, pred_inf, obs, frac, cnt, cnt_inf, agree,
                         agree_inf, rho_c, etas, sig_r, dF, dR, params,
                         time.perf_counter() - t0, lyap, agree_as)


def plot_heatmap(res: HeatmapResult, path=None):
    """Observed escape fraction (cividis, colour-blind safe) with the linear frontiers overlaid.

    Solid line: predicted finite-horizon frontier ρ(T) = ρ_c; dashed: asymptotic ρ(T) = 1;
    × marks counted cells where observation and prediction disagree. Returns the figure.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    fig, ax = plt.subplots(figsize=(6.4, 5.2))
    G1, G2 = res.rate.shape
    im = ax.imshow(res.escape_fraction.T, origin="lower", cmap="cividis", vmin=0, vmax=1,
                   aspect="auto")
    cb = fig.colorbar(im, ax=ax)
    cb.set_label("fraction of runs that escaped (1 = diverges = forgets)")
    L = np.log(np.clip(res.rate, 1e-300, None)).T
    xi, yi = np.arange(G1), np.arange(G2)
    if L.min() < np.log(res.rate_threshold) < L.max():
        ax.contour(xi, yi, L, levels=[np.log(res.rate_threshold)], colors="#E69F00", linewidths=2.5)
    if L.min() < 0 < L.max():
        ax.contour(xi, yi, L, levels=[0.0], colors="#56B4E9", linewidths=2, linestyles="--")
    for i, j in res.disagreements():
        ax.plot(i, j, marker="x", color="#D55E00", markersize=12, mew=3)
    for i in range(G1):
        for j in range(G2):
            if res.predicted[i, j]:
                ax.plot(i, j, marker="o", markersize=3, color="white", alpha=0.7)
    ax.set_xticks(xi)
    ax.set_xticklabels([f"{s:.2g}" for s in res.snr], rotation=45)
    ax.set_yticks(yi)
    name = res.second_name
    ax.set_yticklabels([f"{v:.2g}" if name == "alpha" else str(int(v)) for v in res.second])
    ax.set_xlabel("SNR = ‖μ‖ / (σ_p √d)")
    ax.set_ylabel("α (ascent weight on the forget set)" if name == "alpha" else "batch size B")
    ax.set_title(f"CNN unlearning: escape vs ({res.axes.replace(',', ', ')}); "
                 f"agreement {res.agreement:.2f}", fontsize=10)
    handles = [
        Patch(color=plt.get_cmap("cividis")(1.0), label="diverges = forgets (observed)"),
        Patch(color=plt.get_cmap("cividis")(0.0), label="converges = resists (observed)"),
        Line2D([], [], color="#E69F00", lw=2.5, label=f"linear frontier ρ(T) = {res.rate_threshold:.4f} (K steps)"),
        Line2D([], [], color="#56B4E9", lw=2, ls="--", label="asymptotic frontier ρ(T) = 1"),
        Line2D([], [], color="white", marker="o", ls="", markeredgecolor="grey", label="predicted: diverges"),
        Line2D([], [], color="#D55E00", marker="x", ls="", mew=3, label="disagreement (counted cell)"),
    ]
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(0, -0.2), ncol=2)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
        plt.close(fig)
    return fig
