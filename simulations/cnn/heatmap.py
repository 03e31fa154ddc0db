"""Escape heatmaps of real nonlinear unlearning runs with the linear-theory frontier (contract §7).

One protocol, one implementation: :class:`HeatmapCell` computes one cell of the map, and both
:func:`heatmap` (serially, in this process) and the resumable ``rmt reproduce`` sweep
(:mod:`simulations.cnn.reproduce`, any executor) evaluate it on the grid

    snr ∈ geometric grid  ×  alpha ∈ linear grid (fixed B)   or   batch ∈ ~geometric integers (fixed α)

with the sweep engine's seeding: cell (i, j) receives ``SeedSequence(seed, spawn_key=(i, j))``
(:func:`simulations.sweep.cell_seed`), so a cell has the same value whichever entry point ran it.

Per SNR row (shared by the cells of the row): draw data (n samples, random forget set of
``n_forget``), train the CNN on the squared loss to interpolation, build the per-sample
Gauss–Newton HessianSet at w*, set η = ``eta_scale``/λ_max(H̄_R) (a fixed fraction of the
full-batch GD edge 2/λ_max, so that the SNR dependence of the outcome comes from the *shape* of the
curvature — its coherence — and not from its overall scale). Per cell:

* **predicted**: the exact mean-square rate ρ(T) of the linearised dynamics (contract §3). A run of
  K steps is declared escaped when ‖w_K − w*‖ ≥ F‖w_0 − w*‖, so the matching prediction is
  ρ(T) > ρ_c = F^{2/K} (:func:`~simulations.cnn.unlearning.horizon_rate`); the asymptotic
  frontier ρ(T) = 1 is overlaid too (dashed) and its agreement reported separately.
* **observed**: :func:`~simulations.cnn.unlearning.unlearn` (majority of ``replicas`` runs).

Agreement = fraction of *counted* cells whose observed outcome equals the prediction; a cell is
counted when its prediction agrees with all of its 4-neighbours, i.e. it is at least one cell away
from the predicted frontier. Sign convention: :data:`rmt.verdict.SIGN_CONVENTION`.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, fields

import numpy as np

from rmt.threads import single_blas_thread
from rmt.validation import check_choice, check_int, check_positive, check_unit_interval
from rmt.verdict import ALMOST_SURE, MEAN_SQUARE, OBSERVED, SIGN_CONVENTION

from ..sweep_engine import CellFunction
from .unlearning import horizon_rate

__all__ = ["HeatmapCell", "HeatmapResult", "heatmap", "summarise", "plot_heatmap",
           "agreement_counts", "snr_grid",
           "second_grid", "AXES"]

AXES = ("snr,alpha", "snr,batch")

#: spawn-key tag of the stream shared by the cells of one SNR row (never a grid position)
ROW_TAG = 7_000_001

_ROW_CACHE: dict = {}
_ROW_CACHE_MAX = 4


def derived_seed(seed: np.random.SeedSequence, key) -> np.random.SeedSequence:
    """A stream derived from a cell's root entropy and an explicit key (shared by several cells)."""
    return np.random.SeedSequence(seed.entropy, spawn_key=tuple(int(k) for k in key))


@dataclass(frozen=True)
class HeatmapCell(CellFunction):
    """One heatmap cell: ρ(T) of the linearisation at w* and real nonlinear unlearning runs.

    ``cell(params, seed)`` with ``params`` = {"snr", "alpha"} (``axes="snr,alpha"``, fixed
    ``batch``) or {"snr", "batch"} (``axes="snr,batch"``, fixed ``alpha``) and ``seed`` the cell's
    ``SeedSequence(root, spawn_key=(i_snr, j))``. Every generator has its own stream:

    * row (shared by the cells of SNR row ``i_snr``): ``SeedSequence(root, spawn_key=(ROW_TAG,
      i_snr)).spawn(3)`` → data, forget split, network initialisation. Balanced data with a random
      forget set of ``n_forget``, the CNN trained on the squared loss to interpolation, the
      per-sample Gauss–Newton HessianSet, η = ``eta_scale``/λ_max(H̄_R). A process keeps the last
      few rows in a small cache (training is deterministic, so the cache never changes data).
    * cell: the unlearning runs use spawn key ``(i_snr, j, 0)``, the Lyapunov estimate ``(i_snr,
      j, 1)``.

    Outputs: Schedule(η, B, α, sampling, schedule, forget batch min(B, n_forget)); ``rate`` = ρ(T)
    (exact, span-restricted, contract §3); ``predicted`` = ρ(T) > F^{2/K};
    ``predicted_asymptotic`` = ρ(T) > 1; ``observed`` = majority of ``replicas`` runs of
    :func:`~simulations.cnn.unlearning.unlearn` escaped (1 = diverges = forgets);
    ``escape_fraction``; replica means of ``forget_loss_increase`` and ``retain_loss_change``
    (inf on overflow); the row's ``eta``, ``sigma_retain`` (sampled retain coherence) and
    ``train_converged``; ``lyapunov`` = λ₁ (``rmt.lyapunov``) when ``almost_sure``, else NaN.
    """

    axes: str = "snr,alpha"
    n: int = 100
    d: int = 200
    m: int = 20
    sigma_p: float = 1.0
    sigma0: float = 0.01
    n_forget: int = 10
    eta_scale: float = 1.0
    batch: int = 10
    alpha: float = 0.05
    sampling: str = "without_replacement"
    schedule: str = "summed"
    steps: int = 400
    escape_factor: float = 10.0
    replicas: int = 3
    perturbation: float = 1e-3
    almost_sure: bool = False
    lyapunov_steps: int = 1000

    def __post_init__(self):
        check_choice(self.axes, "axes", AXES)
        n = check_int(self.n, "n", minimum=2)
        check_int(self.d, "d", minimum=2)
        check_int(self.m, "m", minimum=1)
        n_forget = check_int(self.n_forget, "n_forget", minimum=1)
        if n_forget >= n:
            raise ValueError(f"n_forget must be < n={n}, got {n_forget}")
        if self.axes == "snr,alpha":  # the other fixed value is unused by this map
            check_int(self.batch, "batch", minimum=1, maximum=n - n_forget)
        else:
            check_unit_interval(self.alpha, "alpha")
        check_positive(self.eta_scale, "eta_scale")
        check_int(self.steps, "steps", minimum=1)
        check_int(self.replicas, "replicas", minimum=1)
        check_positive(self.perturbation, "perturbation")
        if check_positive(self.escape_factor, "escape_factor") <= 1:
            raise ValueError(f"escape_factor must be > 1, got {self.escape_factor}")
        check_int(self.lyapunov_steps, "lyapunov_steps", minimum=1)

    @property
    def second_name(self) -> str:
        """The second grid axis: ``"alpha"`` or ``"batch"``."""
        return self.axes.split(",")[1]

    def _row(self, snr, seed):
        from rmt import coherence

        from .data import make_data, split_forget
        from .network import gauss_newton_hessians, init_cnn, train

        i_snr = seed.spawn_key[0]
        key = (self, seed.entropy, i_snr, snr)
        hit = _ROW_CACHE.get(key)
        if hit is not None:
            return hit
        s_data, s_split, s_init = derived_seed(seed, (ROW_TAG, i_snr)).spawn(3)
        data = make_data(self.n, self.d, snr, sigma_p=self.sigma_p, seed=np.random.default_rng(s_data))
        data = split_forget(data, "random", size=self.n_forget, seed=np.random.default_rng(s_split))
        net0 = init_cnn(self.d, self.m, sigma0=self.sigma0, seed=np.random.default_rng(s_init))
        tr = train(net0, data)
        hs = gauss_newton_hessians(tr.cnn, data)
        with single_blas_thread():
            lam = float(np.linalg.eigvalsh(hs.reduction(True, False).mean("retain"))[-1])
            sig_r = float(coherence(hs).sigma_retain)
        row = (tr.cnn, data, hs, self.eta_scale / lam, sig_r, bool(tr.converged))
        while len(_ROW_CACHE) >= _ROW_CACHE_MAX:
            _ROW_CACHE.pop(next(iter(_ROW_CACHE)))
        _ROW_CACHE[key] = row
        return row

    def __call__(self, params, seed):
        import rmt
        from rmt import Schedule, mean_square_rate

        from .unlearning import unlearn

        if len(seed.spawn_key) != 2:
            raise ValueError("HeatmapCell needs the grid axes (snr, alpha|batch), got a cell seed "
                             f"with spawn_key {seed.spawn_key}")
        snr = float(params["snr"])
        net, data, hs, eta, sig_r, conv = self._row(snr, seed)
        if self.axes == "snr,alpha":
            a_, B = float(params["alpha"]), int(self.batch)
        else:
            a_, B = float(self.alpha), int(params["batch"])
        sch = Schedule(eta=eta, batch=B, alpha=a_, sampling=self.sampling, schedule=self.schedule,
                       forget_batch=min(B, self.n_forget))
        lyap = math.nan
        with single_blas_thread():  # same BLAS path for ρ(T) and λ₁ whatever the caller's threads
            rate = float(mean_square_rate(hs, sch))
            if self.almost_sure:
                lseed = derived_seed(seed, tuple(seed.spawn_key) + (1,))
                lyap = float(rmt.lyapunov(hs, sch, steps=self.lyapunov_steps, replicas=4,
                                          seed=int(lseed.generate_state(1)[0])).exponent)
        run = unlearn(net, data, sch, steps=self.steps, perturbation=self.perturbation,
                      escape_factor=self.escape_factor, replicas=self.replicas,
                      seed=np.random.default_rng(derived_seed(seed, tuple(seed.spawn_key) + (0,))))
        rho_c = horizon_rate(self.steps, self.escape_factor)
        return {"rate": rate, "predicted": float(rate > rho_c),
                "predicted_asymptotic": float(rate > 1.0), "observed": float(run.forgets),
                "escape_fraction": run.escape_fraction,
                "forget_loss_increase": float(np.mean(run.forget_loss_increase)),
                "retain_loss_change": float(np.mean(run.retain_loss_change)),
                "eta": eta, "sigma_retain": sig_r, "train_converged": float(conv),
                "lyapunov": lyap}


# ---------------------------------------------------------------------- grids
def snr_grid(lo, hi, k) -> list[float]:
    """``k`` geometric SNR values from ``lo`` to ``hi``, rounded to 4 significant digits."""
    return [float(f"{s:.4g}") for s in np.geomspace(lo, hi, k)]


def _batch_grid(n_max, grid):
    vals = np.unique(np.round(np.geomspace(1, n_max, grid)).astype(int))
    k = 1
    while vals.size < grid and k < n_max:  # small n_max: fall back to distinct integers
        vals = np.unique(np.concatenate([vals, [k]]))
        k += 1
    return np.sort(vals)[:grid]


def second_grid(axes, k, alpha_range, n_retain) -> list:
    """The second axis: ``k`` values of α on ``alpha_range`` (4 significant digits) or ``k``
    distinct batch sizes 1…``n_retain`` on a near-geometric grid."""
    if axes == "snr,alpha":
        return [float(f"{a:.4g}") for a in np.linspace(*alpha_range, k)]
    return [int(b) for b in _batch_grid(n_retain, k)]


# ---------------------------------------------------------------------- labelled result
def _counted(pred):
    """Cells whose prediction equals that of every 4-neighbour (≥ 1 cell from the frontier)."""
    ok = np.ones_like(pred, dtype=bool)
    ok[1:] &= pred[1:] == pred[:-1]
    ok[:-1] &= pred[:-1] == pred[1:]
    ok[:, 1:] &= pred[:, 1:] == pred[:, :-1]
    ok[:, :-1] &= pred[:, :-1] == pred[:, 1:]
    return ok


def _agreement(obs, pred, cnt):
    return float(np.mean(obs[cnt] == pred[cnt])) if cnt.any() else math.nan


def summarise(cells, cell: HeatmapCell, *, seed: int, seconds: float = 0.0):
    """The labelled heatmap Dataset from the per-cell outputs of ``cell`` (dims ``snr`` × α or B).

    ``cells``: an ``xarray.Dataset`` with the :class:`HeatmapCell` outputs on the grid (what
    :func:`heatmap` collects, or what ``run_sweep(cell, …)`` returns). Boolean verdict variables
    (True = diverges = forgets; each names its notion in ``attrs["notion"]``): ``observed``,
    ``predicted`` (ρ > ρ_c), ``predicted_asymptotic`` (ρ > 1) and, with ``lyapunov``,
    ``predicted_almost_sure`` (K·λ₁ > log F); ``counted*`` marks cells ≥ 1 cell from the matching
    frontier. Per SNR row: ``eta``, ``sigma_retain``, ``train_converged``. Attributes: the
    protocol parameters (the cell's fields but the swept one, and ``seed``), ``rate_threshold``
    ρ_c, ``agreement``, ``agreement_asymptotic``, ``agreement_almost_sure`` (only with λ₁),
    ``notion``, ``convention`` (:data:`rmt.verdict.SIGN_CONVENTION`) and ``seconds``.
    """
    import xarray as xr

    second = cell.second_name
    dims = ("snr", second)
    raw = cells.transpose(*dims)
    rho_c = horizon_rate(cell.steps, cell.escape_factor)
    obs = raw["observed"].values > 0.5
    # name: (verdict, notion, rule)
    verdicts = {
        "predicted": (raw["predicted"].values > 0.5, MEAN_SQUARE,
                      f"rho(T) > rho_c = F^(2/K) = {rho_c:.6g}"),
        "predicted_asymptotic": (raw["predicted_asymptotic"].values > 0.5, MEAN_SQUARE,
                                 "rho(T) > 1"),
    }
    if cell.almost_sure:
        verdicts["predicted_almost_sure"] = (
            raw["lyapunov"].values * cell.steps > np.log(cell.escape_factor), ALMOST_SURE,
            "K * lambda_1 > log F")
    ds = xr.Dataset(coords={"snr": raw["snr"].values, second: raw[second].values})
    ds["observed"] = (dims, obs, {"notion": OBSERVED,
                                  "description": f"majority of {cell.replicas} runs escaped"})
    agree = {}
    for name, (pred, notion, rule) in verdicts.items():
        cnt = _counted(pred)
        suffix = name.removeprefix("predicted")
        ds[name] = (dims, pred, {"notion": notion, "description": rule})
        ds["counted" + suffix] = (dims, cnt, {"description": f"cell >= 1 cell from the {name} frontier"})
        agree["agreement" + suffix] = _agreement(obs, pred, cnt)
    for v in ("rate", "escape_fraction", "forget_loss_increase", "retain_loss_change"):
        ds[v] = (dims, raw[v].values)
    if cell.almost_sure:
        ds["lyapunov"] = (dims, raw["lyapunov"].values)
    row = raw.isel({second: 0})
    ds["eta"] = ("snr", row["eta"].values)
    ds["sigma_retain"] = ("snr", row["sigma_retain"].values)
    ds["train_converged"] = ("snr", row["train_converged"].values > 0.5)
    protocol = {k: v for k, v in asdict(cell).items() if k != second}
    ds.attrs.update(protocol, seed=int(seed), loss="squared", rate_threshold=rho_c, **agree,
                    notion=f"{MEAN_SQUARE} and {ALMOST_SURE}" if cell.almost_sure else MEAN_SQUARE,
                    convention=SIGN_CONVENTION, seconds=float(seconds))
    return ds


def heatmap(axes="snr,alpha", grid=8, *, n=100, d=200, m=20, sigma_p=1.0, sigma0=0.01,
            snr_range=(0.05, 3.0), alpha_range=(0.0, 0.5), alpha=0.05, batch=10,
            n_forget=10, eta_scale=1.0, sampling="without_replacement", schedule="summed",
            steps=400, escape_factor=10.0, replicas=3, perturbation=1e-3, seed=0,
            almost_sure=None, lyapunov_steps=2000, progress=None):
    """Escape heatmap over (SNR, α) or (SNR, B): :class:`HeatmapCell` on every cell, in this process.

    ``alpha`` is the fixed α of the (SNR, B) map, ``batch`` the fixed B of the (SNR, α) map
    (forget batch = min(B, n_forget)). Cell (i, j) gets ``SeedSequence(seed, spawn_key=(i, j))``,
    as in a sweep (``run_sweep(HeatmapCell(…), grid, store, seed=seed)`` gives the same values).

    ``almost_sure``: also compute the top Lyapunov exponent λ₁ of the linearised dynamics with
    ``rmt.lyapunov`` (predicted escape within K steps: K·λ₁ > log F). ``None`` = only if
    ``rmt.lyapunov`` exists at call time; otherwise only the mean-square prediction is reported.
    ``progress(i, j)`` is called after each cell.

    Returns the labelled ``xarray.Dataset`` of :func:`summarise` (wrap it in
    :class:`HeatmapResult` for NumPy arrays and the JSON of ``rmt cnn heatmap``).
    """
    import xarray as xr

    import rmt

    from ..sweep import cell_seed, grid_cells

    if almost_sure is None:
        almost_sure = hasattr(rmt, "lyapunov")
    elif almost_sure and not hasattr(rmt, "lyapunov"):
        raise ValueError("almost_sure=True needs rmt.lyapunov, which this installation lacks")
    grid = check_int(grid, "grid", minimum=2)
    lo, hi = (check_positive(v, "snr_range") for v in snr_range)
    if lo >= hi:
        raise ValueError(f"snr_range must be increasing, got {snr_range}")
    a_lo, a_hi = (check_unit_interval(v, "alpha_range") for v in alpha_range)
    if a_lo >= a_hi:
        raise ValueError(f"alpha_range must be increasing, got {alpha_range}")
    seed = check_int(seed, "seed", minimum=0)
    cell = HeatmapCell(axes=axes, n=n, d=d, m=m, sigma_p=sigma_p, sigma0=sigma0,
                       n_forget=n_forget, eta_scale=eta_scale, batch=batch, alpha=alpha,
                       sampling=sampling, schedule=schedule, steps=steps,
                       escape_factor=escape_factor, replicas=replicas, perturbation=perturbation,
                       almost_sure=bool(almost_sure), lyapunov_steps=lyapunov_steps)
    t0 = time.perf_counter()
    axes_grid = {"snr": snr_grid(lo, hi, grid),
                 cell.second_name: second_grid(axes, grid, (a_lo, a_hi), n - n_forget)}
    shape = tuple(len(v) for v in axes_grid.values())
    out: dict[str, np.ndarray] = {}
    for _, index, params in grid_cells(axes_grid):
        for k, v in cell(params, cell_seed(seed, index)).items():
            out.setdefault(k, np.empty(shape))[index] = v
        if progress is not None:
            progress(*index)
    cells = xr.Dataset({k: (tuple(axes_grid), v) for k, v in out.items()}, coords=axes_grid)
    return summarise(cells, cell, seed=seed, seconds=time.perf_counter() - t0)


class HeatmapResult:
    """NumPy view of a heatmap Dataset (rows: SNR, columns: α or B) and its JSON (``to_dict``).

    Every data variable and attribute of the Dataset reads as an attribute (``res.rate``,
    ``res.counted``, ``res.agreement`` …); ``lyapunov`` and ``agreement_almost_sure`` are None when
    λ₁ was not computed. ``snr``/``second`` are the grid values, ``params`` the protocol.
    """

    def __init__(self, dataset):
        self.dataset = dataset

    def __getattr__(self, name):
        if name.startswith("_") or name == "dataset":
            raise AttributeError(name)
        ds = self.dataset
        if name in ds.data_vars:
            return ds[name].values
        if name in ds.attrs:
            return ds.attrs[name]
        if name in ("lyapunov", "agreement_almost_sure"):  # λ₁ not computed
            return None
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    @property
    def second_name(self) -> str:
        return self.axes.split(",")[1]

    @property
    def snr(self) -> np.ndarray:
        return self.dataset["snr"].values

    @property
    def second(self) -> np.ndarray:
        return self.dataset[self.second_name].values.astype(float)

    @property
    def params(self) -> dict:
        keys = [f.name for f in fields(HeatmapCell)] + ["seed", "loss"]
        return {k: self.dataset.attrs[k] for k in keys if k in self.dataset.attrs}

    def disagreements(self, asymptotic=False):
        """Cells (i, j) counted for agreement whose observed outcome differs from the prediction."""
        pred = self.predicted_asymptotic if asymptotic else self.predicted
        cnt = self.counted_asymptotic if asymptotic else self.counted
        return [tuple(map(int, ij)) for ij in np.argwhere(cnt & (pred != self.observed))]

    def to_dict(self) -> dict:
        """JSON-ready dict of ``rmt cnn heatmap --json`` (non-finite numbers → None)."""
        name = self.second_name
        grid_val = (lambda v: int(v)) if name == "batch" else (lambda v: float(v))  # noqa: E731
        word = {True: "diverges", False: "converges"}
        cells = [{
            "snr": float(s), name: grid_val(v),
            "rate": float(self.rate[i, j]),
            "predicted": word[bool(self.predicted[i, j])],
            "predicted_asymptotic": word[bool(self.predicted_asymptotic[i, j])],
            "observed": word[bool(self.observed[i, j])],
            "escape_fraction": float(self.escape_fraction[i, j]),
            "counted": bool(self.counted[i, j]),
            "forget_loss_increase": _num(self.forget_loss_increase[i, j]),
            "retain_loss_change": _num(self.retain_loss_change[i, j]),
        } for i, s in enumerate(self.snr) for j, v in enumerate(self.second)]
        return {
            "axes": self.axes,
            "convention": self.convention,
            "agreement": _num(self.agreement),
            "agreement_asymptotic": _num(self.agreement_asymptotic),
            "n_counted": int(self.counted.sum()),
            "n_cells": int(self.counted.size),
            "rate_threshold": self.rate_threshold,
            "notion": self.notion,
            "agreement_almost_sure": (None if self.agreement_almost_sure is None
                                      else _num(self.agreement_almost_sure)),
            "lyapunov": None if self.lyapunov is None else self.lyapunov.tolist(),
            "snr": [float(s) for s in self.snr],
            name: [grid_val(v) for v in self.second],
            "eta": [float(e) for e in self.eta],
            "sigma_retain": [float(s) for s in self.sigma_retain],
            "disagreements": [
                {"snr": float(self.snr[i]), name: grid_val(self.second[j]),
                 "rate": float(self.rate[i, j]), "escape_fraction": float(self.escape_fraction[i, j])}
                for i, j in self.disagreements()
            ],
            "cells": cells,
            "params": self.params,
            "seconds": self.seconds,
        }


def _num(x):
    x = float(x)
    return x if np.isfinite(x) else None


def agreement_counts(res, asymptotic=False) -> dict:
    """Agreement of observation and prediction as counts, the numbers a figure title quotes.

    ``counted`` cells (≥ 1 cell from the predicted frontier, see :func:`summarise`) and ``all``
    cells: ``agree_counted``/``counted`` is ``res.agreement`` (``agreement_asymptotic`` with
    ``asymptotic``), ``agree_all``/``cells`` counts every cell, frontier-adjacent ones included.
    """
    if not isinstance(res, HeatmapResult):
        res = HeatmapResult(res)
    pred = res.predicted_asymptotic if asymptotic else res.predicted
    cnt = res.counted_asymptotic if asymptotic else res.counted
    same = np.asarray(res.observed) == np.asarray(pred)
    return {"agree_counted": int(np.sum(same & cnt)), "counted": int(np.sum(cnt)),
            "agree_all": int(np.sum(same)), "cells": int(same.size)}


def plot_heatmap(res, path=None):
    """Observed escape fraction (cividis, colour-blind safe) with the linear frontiers overlaid.

    ``res``: the Dataset of :func:`heatmap` or a :class:`HeatmapResult`. Cells are drawn with
    ``pcolormesh(shading="nearest")`` at their centres, SNR (and B) in log10 coordinates so that
    the cells of a geometric grid have equal widths. Solid line: predicted finite-horizon frontier
    ρ(T) = ρ_c; dashed: asymptotic ρ(T) = 1 (contours of log ρ(T) over the cells); dots: predicted
    to diverge; × marks counted cells where observation and prediction disagree, □ the
    frontier-adjacent (not counted) ones. The title states both agreements as counts
    (:func:`agreement_counts`): what is counted, and how many of the uncounted cells disagree. Every marker and line has a contrasting halo, so it reads on the
    dark and the bright end of the colour map. Returns the figure.
    """
    from matplotlib import patheffects
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    from ..figures import LEGEND_CONVERGES, LEGEND_DIVERGES, plt  # plt with the Agg backend

    if not isinstance(res, HeatmapResult):
        res = HeatmapResult(res)
    halo_dark = [patheffects.withStroke(linewidth=4.5, foreground="black")]
    halo_light = [patheffects.withStroke(linewidth=3.5, foreground="white")]
    name = res.second_name
    x = np.log10(res.snr)
    y = res.second if name == "alpha" else np.log10(res.second)
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    im = ax.pcolormesh(x, y, res.escape_fraction.T, shading="nearest", cmap="cividis", vmin=0,
                       vmax=1)
    cb = fig.colorbar(im, ax=ax)
    cb.set_label(f"fraction of runs that escaped (1 = {LEGEND_DIVERGES})")
    L = np.log(np.clip(res.rate, 1e-300, None)).T

    def _where(level):  # legend note when a frontier lies outside the map
        if L.min() < level < L.max():
            return ""
        return " (off the map: all cells " + ("above)" if L.min() >= level else "below)")

    if L.min() < np.log(res.rate_threshold) < L.max():
        cs = ax.contour(x, y, L, levels=[np.log(res.rate_threshold)], colors="#E69F00",
                        linewidths=2.5)
        cs.set(path_effects=halo_dark)
    if L.min() < 0 < L.max():
        cs = ax.contour(x, y, L, levels=[0.0], colors="#56B4E9", linewidths=2, linestyles="--")
        cs.set(path_effects=halo_dark)
    pi, pj = np.nonzero(res.predicted)
    ax.plot(x[pi], y[pj], ls="", marker="o", markersize=5, markerfacecolor="white",
            markeredgecolor="black", markeredgewidth=1.0)
    counted_bad = set(res.disagreements())
    for i, j in zip(*np.nonzero(res.observed != res.predicted)):
        if (int(i), int(j)) in counted_bad:
            ax.plot(x[i], y[j], marker="x", color="#D55E00", markersize=13, mew=3,
                    path_effects=halo_light)
        else:
            ax.plot(x[i], y[j], marker="s", markerfacecolor="none", markeredgecolor="#D55E00",
                    markersize=13, mew=2.2, path_effects=halo_light)
    ax.set_xticks(x)
    ax.set_xticklabels([f"{s:.2g}" for s in res.snr], rotation=45)
    ax.set_yticks(y)
    ax.set_yticklabels([f"{v:.2g}" if name == "alpha" else str(int(v)) for v in res.second])
    ax.set_xlabel("SNR = ‖μ‖ / (σ_p √d)  (log scale)")
    ax.set_ylabel("α (ascent weight on the forget set)" if name == "alpha"
                  else "batch size B  (log scale)")
    c = agreement_counts(res)
    # say what is counted, and where the disagreements are: counted (×) vs frontier-adjacent (□)
    bad_counted = c["counted"] - c["agree_counted"]
    bad_uncounted = (c["cells"] - c["agree_all"]) - bad_counted
    uncounted = c["cells"] - c["counted"]
    ax.set_title(f"CNN unlearning: escape vs ({res.axes.replace(',', ', ')})\n"
                 f"prediction ρ(T) > {res.rate_threshold:.4f} agrees on {c['agree_counted']}/"
                 f"{c['counted']} counted cells (≥ 1 cell from the frontier)\n"
                 f"{bad_uncounted} of {uncounted} uncounted (frontier-adjacent) cells disagree; "
                 f"{c['agree_all']}/{c['cells']} of all cells",
                 fontsize=9)
    handles = [
        Patch(color=plt.get_cmap("cividis")(1.0), label=f"{LEGEND_DIVERGES} (observed)"),
        Patch(color=plt.get_cmap("cividis")(0.0), label=f"{LEGEND_CONVERGES} (observed)"),
        Line2D([], [], color="#E69F00", lw=2.5, path_effects=halo_dark,
               label=f"linear frontier ρ(T) = {res.rate_threshold:.4f} (K steps)"
                     + _where(np.log(res.rate_threshold))),
        Line2D([], [], color="#56B4E9", lw=2, ls="--", path_effects=halo_dark,
               label="asymptotic frontier ρ(T) = 1" + _where(0.0)),
        Line2D([], [], color="white", marker="o", ls="", markeredgecolor="black",
               label=f"predicted: {LEGEND_DIVERGES}"),
        Line2D([], [], color="#D55E00", marker="x", ls="", mew=3, markersize=9,
               label="disagreement, counted cell"),
        Line2D([], [], marker="s", ls="", markerfacecolor="none", markeredgecolor="#D55E00",
               mew=2, markersize=9, label="disagreement, frontier-adjacent (not counted)"),
    ]
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(-0.12, -0.2), ncol=2)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120, bbox_inches="tight")
        plt.close(fig)
    return fig
