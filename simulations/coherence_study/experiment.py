"""The coherence study as a resumable sweep: one cell per (data set × model, forget kind, seed).

A **unit** (:func:`run_unit`) is one trained model, one retain/forget split and one seed:

1. the training set of the data set (:func:`~simulations.coherence_study.data.load_task`) and
   the model trained to its documented minimum, cached per (data set, model, seed)
   (:func:`~simulations.coherence_study.models.train_cached`);
2. the forget set of :data:`FORGET_KINDS` — ``random`` (``rmt.models.forget_set("typical")``),
   ``class`` (n_f random samples of one class: +1 for even seeds, −1 for odd; regression: the
   sign of the target), ``hard`` (the n_f samples of largest tangent-kernel leave-one-out loss,
   which at an interpolating minimum — training losses all at round-off — still separates hard
   from easy samples) and ``relabelled`` (the samples corrupted before training, memorised);
3. the HessianSet (:func:`rmt.models.hessian_set`: Gauss–Newton factors and per-sample
   gradients) and the predictors (:mod:`~simulations.coherence_study.predictors`): σ_F,
   σ_cross, σ_R, λ_max(H̄_F)/λ_max(H̄_R), fitted fraction, leave-one-out margin, the exact
   α* (:func:`rmt.critical_alpha`, mean over the grid's (η, B); "stable for every α" counts as
   1) and the horizon α* (:func:`rmt.horizon_critical`, mean square, at the reference (η, B),
   same start and ball as the runs below; none in [0, 1] counts as 1); each α* computation
   has a time limit (``time_limit``, within a per-unit ``alpha_budget``; a value past it or
   skipped for want of budget is missing, NaN, counted in
   ``timeouts``; one the toolkit refuses or fails on (ValueError, RuntimeError,
   OverflowError) likewise, in ``failures``);
4. the outcome: actual nonlinear unlearning (:func:`rmt.models.unlearn`, summed schedule,
   batches without replacement, forget batch min(B, n_f)) on the grid η × α × B, ``runs``
   seeds per point, η in units of 2/λ_max(H̄_R). Start and ball as in
   :mod:`simulations.realdata`: at a minimum with drift (per-sample gradients move the model:
   one exact step's RMS ≥ 1e−6·max(‖w*‖, 1) at the reference schedule) δ₀ = 0 and R =
   ``LINEAR_RANGE``·‖w*‖; otherwise a random start δ₀ = ε·u on the span of the Hessians
   (ε = 1e−3, u a unit combination of the factors) and R = 10ε. **escape** = fraction of all
   runs that left the ball within ``steps`` steps (the main outcome: "diverges" = forgets);
   **forget_rise** / **retain_damage** = median over runs of the forget / retain loss at the
   horizon minus its value at w*; **reach** = median over runs of log₁₀(max_k ‖w_k − w*‖ / R),
   a graded escape that does not saturate at 0 or 1.

:class:`StudyCell` is the sweep cell (picklable: the process and Dask executors run it); the
sweep store is ``OUT/sweeps/coherence_study`` and the model cache ``OUT/coherence_study/models``,
so a killed run resumes without recomputing a finished unit or retraining a cached model.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..sweep_engine import CellFunction
from .data import FORGET_KINDS, ArrayDataset, TaskData, check_dataset, class_of, load_task
from .models import build_model, check_model, train_cached

__all__ = ["FORGET_KINDS", "SIZES", "StudyCell", "run_unit", "forget_indices", "tasks_of",
           "check_kind", "OUTPUTS", "VERSION"]

#: bump when a unit's numbers change meaning (part of the sweep fingerprint)
VERSION = 1


#: per mode: training-set size, forget-set size (= corrupted labels), seeds, the (η, α, B) grid
#: (η in units of 2/λ_max(H̄_R)), nonlinear runs per grid point, horizon, the scan points and
#: relative tolerance of the horizon α*, the time limit (s) of each α* computation (past it
#: the value is recorded as missing and counted in ``timeouts``) and the unit's total α* budget
#: (s; computations it leaves no time for are skipped and counted the same way)
SIZES = {
    "quick": dict(n_train=120, n_forget=10, seeds=[0, 1, 2], eta=[0.1, 0.4],
                  alpha=[0.03, 0.1, 0.2, 0.4], batch=[8], runs=2, steps=150, horizon_grid=8,
                  horizon_rtol=1e-2, time_limit=10.0, alpha_budget=40.0),
    "full": dict(n_train=300, n_forget=20, seeds=[0, 1, 2, 3, 4], eta=[0.03, 0.1, 0.3, 0.8],
                 alpha=[0.01, 0.03, 0.1, 0.2, 0.4], batch=[4, 16], runs=2, steps=300,
                 horizon_grid=24, horizon_rtol=1e-4, time_limit=30.0, alpha_budget=90.0),
}

#: random-start size (no drift) and ball factor; the drift ball is realdata's LINEAR_RANGE·‖w*‖
START_EPS = 1e-3
ESCAPE_FACTOR = 10.0


def check_kind(kind: str) -> str:
    if kind not in FORGET_KINDS:
        raise ValueError(f"kind must be one of {', '.join(FORGET_KINDS)}, got {kind!r}")
    return kind


def tasks_of(datasets, models, custom=()) -> list[str]:
    """"dataset/model" strings of every valid pair (the CNN only on image data sets); names are
    checked (ValueError naming ``datasets`` or ``models``)."""
    from .models import MODELS

    out = []
    for ds in datasets:
        try:
            check_dataset(ds, custom)
        except ValueError as exc:
            raise ValueError(f"datasets: {exc}") from None
    for m in models:
        if m not in MODELS:
            raise ValueError(f"models: model must be one of {', '.join(MODELS)}, got {m!r}")
    for ds in datasets:
        for m in models:
            if m == "cnn" and ds != "digits":
                continue
            out.append(f"{ds}/{m}")
    if not out:
        raise ValueError("models: no valid (dataset, model) pair (the cnn runs on digits only)")
    return out


def forget_indices(kind: str, data: TaskData, n_forget: int, seed: int,
                   loo_loss: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(retain, forget) index arrays of one forget kind (module docstring)."""
    from rmt import models as M

    check_kind(kind)
    n = data.n
    if kind == "random":
        return M.forget_set("typical", n, n_forget, seed=1000 * seed + 5)
    if kind == "relabelled":
        return M.forget_set("relabelled", n, seed=seed, flipped=data.flipped)
    if kind == "class":
        cls = 1.0 if seed % 2 == 0 else -1.0
        pool = np.flatnonzero(class_of(data) == cls)
        forget = np.sort(np.random.default_rng([seed, 6]).choice(pool, n_forget, replace=False))
    else:  # hard
        forget = np.sort(np.argsort(-np.asarray(loo_loss), kind="stable")[:n_forget])
    return np.setdiff1d(np.arange(n), forget), forget


def _span_start(hs, rng) -> np.ndarray:
    """ε·u with u a random unit combination of all factors (a vector on the Hessian span)."""
    F = np.concatenate([hs.factors("retain"), hs.factors("forget")])
    F = F.reshape(F.shape[0], -1) if F.ndim == 2 else F.transpose(0, 2, 1).reshape(-1, F.shape[1])
    u = rng.standard_normal(F.shape[0]) @ F
    return START_EPS * u / np.linalg.norm(u)


def _schedule(eta, batch, alpha, n_forget):
    import rmt

    return rmt.Schedule(eta, batch, alpha=alpha, sampling="without_replacement",
                        forget_batch=min(batch, n_forget))


def _as_alpha(v) -> float:
    return 1.0 if v is None else float(v)


class _Timeout(Exception):
    """Raised inside a call that ran past its time limit (:func:`time_limited`)."""


def time_limited(fn, seconds: float):
    """``(fn(), False)``, or ``(None, True)`` when ``fn`` ran longer than ``seconds``.

    A timer thread raises :class:`_Timeout` asynchronously in the calling thread (CPython's
    ``PyThreadState_SetAsyncExc``), which takes effect at the next Python bytecode — e.g. the
    next matrix–vector product an ARPACK iteration calls back for. Works in any thread (a Dask
    worker runs cells outside the main thread, where ``signal.alarm`` is not available).
    Used for the exact and horizon α*, whose mean-square solver can iterate for many minutes
    near ρ(T) = 1 (an ARPACK run of up to 20·r² iterations)."""
    import ctypes
    import threading

    lock = threading.Lock()
    state = {"done": False}
    tid = threading.get_ident()

    def fire():
        with lock:
            if not state["done"]:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(tid),
                                                           ctypes.py_object(_Timeout))

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    try:
        try:
            timer.start()
            return fn(), False
        finally:
            with lock:
                state["done"] = True
            timer.cancel()
    except _Timeout:
        return None, True


def _guarded(fn, seconds: float) -> tuple[object, int, int]:
    """(value, timed out, failed): :func:`time_limited`, and a ValueError, RuntimeError or
    ArithmeticError of the toolkit (e.g. a forget set whose Hessians all vanish, so α = 1 has no
    span; an OverflowError in :func:`rmt.horizon_critical`'s certificate at a fast-growing
    drift) as a failure instead of the end of the run. Missing values are NaN and counted."""
    try:
        val, late = time_limited(fn, seconds)
        return val, int(late), 0
    except (ValueError, RuntimeError, ArithmeticError):  # ArithmeticError: an OverflowError
        return None, 0, 1


def run_unit(dataset: str | ArrayDataset, model_name: str, kind: str, seed: int, sizes: dict,
             cache_dir: str | None = None) -> dict:
    """Every number of one unit (module docstring) as a flat dict of floats."""
    import rmt
    from rmt import models as M
    from rmt.threads import single_blas_thread

    from ..realdata import LINEAR_RANGE

    check_model(model_name)
    check_kind(kind)
    t0 = time.perf_counter()
    n_f = int(sizes["n_forget"])
    data = load_task(dataset, seed, int(sizes["n_train"]), n_f)
    model, loss, X, w0 = build_model(model_name, data, seed)
    w, meta = train_cached(model, model_name, data, X, loss, seed, cache_dir, w0)
    y = data.y
    with single_blas_thread(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # stationarity / scan warnings: the numbers are recorded
        from .predictors import curvature_predictors, tangent_loo

        J = model.jacobian(w, X)[:, 0, :]
        margin, loo_loss = tangent_loo(J, y, data.task)
        retain, forget = forget_indices(kind, data, n_f, seed, loo_loss)
        XR, yR, XF, yF = X[retain], y[retain], X[forget], y[forget]
        hs = M.hessian_set(model, w, XR, yR, XF, yF, loss)
        pred = curvature_predictors(hs)
        lam = pred["lam_retain"]
        grid = [(float(e) * 2.0 / lam, int(b)) for e in sizes["eta"] for b in sizes["batch"]]
        limit = float(sizes.get("time_limit", 30.0))
        t_alpha, budget = time.perf_counter(), float(sizes.get("alpha_budget", 4 * limit))

        def allowed():  # this computation's limit within the unit's α* budget
            return min(limit, budget - (time.perf_counter() - t_alpha))

        a_stars, timeouts, failures = [], 0, 0
        for e, b in grid:
            if allowed() <= 0:
                timeouts += 1
                continue
            val, late, bad = _guarded(
                lambda: rmt.critical_alpha(hs, _schedule(e, b, 0.5, n_f)), allowed())
            timeouts, failures = timeouts + late, failures + bad
            if not (late or bad):
                a_stars.append(_as_alpha(val))
        eta_ref = float(sizes["eta"][len(sizes["eta"]) // 2]) * 2.0 / lam
        b_ref = int(sizes["batch"][0])
        a_ref = float(sizes["alpha"][len(sizes["alpha"]) // 2])
        dyn = rmt.Dynamics(hs, _schedule(eta_ref, b_ref, a_ref, n_f))
        M1, _ = rmt.affine.affine_step(dyn, np.zeros((dyn.p, dyn.p)), np.zeros(dyn.p))
        w_norm = float(np.linalg.norm(w))
        drift = math.sqrt(max(float(np.trace(M1)), 0.0)) >= 1e-6 * max(w_norm, 1.0)
        if drift:
            start, radius = np.zeros(model.n_params), LINEAR_RANGE * w_norm
        else:
            start = _span_start(hs, np.random.default_rng([seed, 7]))
            radius = ESCAPE_FACTOR * START_EPS
        steps = int(sizes["steps"])
        hc, late, bad = None, 1, 0
        if allowed() > 0:
            hc, late, bad = _guarded(
                lambda: rmt.horizon_critical(dyn, None, "alpha", steps, start=start,
                                             radius=radius, grid=int(sizes["horizon_grid"]),
                                             rtol=float(sizes.get("horizon_rtol", 1e-3))),
                allowed())
        timeouts, failures = timeouts + late, failures + bad
        f_star = M.per_sample_loss(model.outputs(w, XF), yF, loss).mean()
        r_star = M.per_sample_loss(model.outputs(w, XR), yR, loss).mean()
        left, frise, rdam, reach = [], [], [], []
        run_seeds = [1000 * seed + j for j in range(int(sizes["runs"]))]
        for (eta, b) in grid:
            for alpha in sizes["alpha"]:
                res = M.unlearn(model, w, XR, yR, XF, yF, loss,
                                schedule=_schedule(eta, b, float(alpha), n_f), steps=steps,
                                seed=run_seeds, start=None if drift else start)
                left.extend(res.left(radius).tolist())
                reach.extend(np.log10(res.distances.max(axis=1) / radius).tolist())
                frise.extend((res.forget_loss - f_star).tolist())
                rdam.extend((res.retain_loss - r_star).tolist())
        fitted = M.fitted_fraction(model, w, XF, yF, loss)
        oos = float(rmt.out_of_span_share(hs))
        stat = hs.stationarity
    return dict(
        escape=float(np.mean(left)), forget_rise=float(np.median(frise)),
        retain_damage=float(np.median(rdam)), reach=float(np.median(reach)),
        runs=float(len(left)),
        **{k: float(v) for k, v in pred.items()},
        fitted=float(fitted), loo_margin=float(np.mean(margin[forget])),
        alpha_star=float(np.mean(a_stars)) if a_stars else math.nan,
        alpha_star_min=float(np.min(a_stars)) if a_stars else math.nan,
        horizon_alpha_star=math.nan if hc is None else _as_alpha(hc.value),
        timeouts=float(timeouts), failures=float(failures), out_of_span=oos,
        d=float(model.n_params), n=float(data.n), n_forget=float(len(forget)),
        span=float(hs.reduction(True, True).r), grad_norm=float(meta["grad_norm"]),
        converged=float(meta["converged"]), fitted_train=float(meta["fitted_train"]),
        train_seconds=float(meta["train_seconds"]), cached=float(meta["cached"]),
        stationarity=float(stat.value) if stat is not None else math.nan,
        drift=float(drift), radius=float(radius), w_norm=w_norm, lam_ref_eta=eta_ref,
        seconds=time.perf_counter() - t0)


#: every output of a unit, in order (the sweep's variables)
OUTPUTS = ("escape", "forget_rise", "retain_damage", "reach", "runs", "sigma_f", "sigma_cross",
           "sigma_r", "lam_forget", "lam_retain", "lam_ratio", "fitted", "loo_margin",
           "alpha_star", "alpha_star_min", "horizon_alpha_star", "timeouts", "failures",
           "out_of_span", "d", "n", "n_forget", "span", "grad_norm", "converged", "fitted_train",
           "train_seconds", "cached", "stationarity", "drift", "radius", "w_norm", "lam_ref_eta",
           "seconds")


@dataclass(frozen=True)
class StudyCell(CellFunction):
    """The sweep cell: params {"task": "dataset/model", "forget": kind, "seed": int} → a unit.

    ``sizes``: the mode's :data:`SIZES` entry as a tuple of items (hashable); ``cache_dir``: the
    model cache (not part of the sweep's identity: moving the output folder keeps the store);
    ``custom``: user :class:`~simulations.coherence_study.data.ArrayDataset` objects."""

    sizes: tuple = ()
    cache_dir: str | None = None
    custom: tuple = field(default=())

    def __call__(self, params, seed):
        ds_name, model_name = str(params["task"]).split("/", 1)
        dataset = check_dataset(ds_name, self.custom)
        return run_unit(dataset, model_name, str(params["forget"]), int(params["seed"]),
                        dict(self.sizes), self.cache_dir)


MODEL_DESCRIPTIONS = {
    "linear": "logistic regression (least squares on the regression task), d = p + 1",
    "mlp-s": "tanh MLP, one hidden layer, squared loss, d ≈ 150",
    "mlp-m": "tanh MLP, d ≈ 1 500",
    "mlp-l": "tanh MLP, d ≥ 10⁴ (per-sample Gauss–Newton factors n × d, span ≤ n)",
    "cnn": "JAX CNN on the 8×8 digits through rmt.adapters.jax.JaxModel: 3×3 conv (8 channels), "
           "tanh, 2×2 average pool, linear read-out, d = 153",
}


def _check_names(values, allowed, what):
    values = list(values)
    bad = [v for v in values if v not in allowed]
    if bad or not values:
        raise ValueError(f"{what}: must be a non-empty list of {', '.join(map(str, allowed))}; "
                         f"got {bad or values!r}")
    return values


def run_study(out: str | Path, *, quick: bool = True, run_kw: dict | None = None,
              datasets=None, models=None, kinds=None, sizes: dict | None = None,
              custom=(), write: bool = True) -> dict:
    """Run (or resume) the coherence study and write its JSON, page and figure under
    ``OUT/coherence_study/``; return the results dict (rows, analysis, provenance).

    ``datasets`` / ``models`` / ``kinds``: subsets (default: every built-in data set, model
    and forget kind); ``custom``: :class:`~simulations.coherence_study.data.ArrayDataset`
    objects, whose names may then appear in ``datasets`` (default: the built-ins plus every
    custom one); ``sizes``: overrides of the mode's :data:`SIZES` entry (e.g. fewer seeds);
    ``run_kw``: executor options of :func:`simulations.sweep.run_sweep` (default: processes).
    Unknown names raise ValueError naming the argument.
    """
    from ..provenance import provenance
    from ..sweep import run_sweep
    from .data import DATASETS
    from .models import MODELS, TRAIN_TOL
    from .report import analyse, figure, page

    custom = tuple(custom)
    for c in custom:
        if not isinstance(c, ArrayDataset):
            raise ValueError(f"custom: expected ArrayDataset objects, got {type(c).__name__}")
    mode = "quick" if quick else "full"
    sz = {**SIZES[mode], **(sizes or {})}
    unknown = set(sz) - set(SIZES[mode])
    if unknown:
        raise ValueError(f"sizes: unknown key(s) {sorted(unknown)}; valid: {sorted(SIZES[mode])}")
    datasets = list(datasets) if datasets is not None else [*DATASETS, *(c.name for c in custom)]
    models = _check_names(models if models is not None else MODELS, MODELS, "models")
    kinds = _check_names(kinds if kinds is not None else FORGET_KINDS, FORGET_KINDS, "kinds")
    tasks = tasks_of(datasets, models, custom)
    seeds = [int(s) for s in sz["seeds"]]
    out = Path(out)
    home = out / "coherence_study"
    cell = StudyCell(sizes=tuple((k, tuple(v) if isinstance(v, list) else v)
                                 for k, v in sorted(sz.items()) if k != "seeds"),
                     cache_dir=str((home / "models").resolve()), custom=custom)
    config = {"experiment": "coherence_study", "version": VERSION, "mode": mode,
              "sizes": {k: v for k, v in sz.items() if k != "seeds"},
              "custom": [[c.name, c.task, c.fingerprint()] for c in custom]}
    run_kw = dict(run_kw or {"executor": "processes", "progress": False})
    import os

    load0, t0 = os.getloadavg(), time.perf_counter()
    ds = run_sweep(cell, {"task": tasks, "forget": kinds, "seed": seeds},
                   out / "sweeps" / "coherence_study", seed=0, config=config, **run_kw)
    rows = []
    for task in tasks:
        dname, mname = task.split("/", 1)
        for kind in kinds:
            for s in seeds:
                sub = ds.sel(task=task, forget=kind, seed=s)
                rows.append({"task": task, "dataset": dname, "model": mname, "forget": kind,
                             "seed": s, **{k: float(sub[k].values) for k in OUTPUTS}})
    descr = {}
    for dname in dict.fromkeys(t.split("/", 1)[0] for t in tasks):
        descr[dname] = load_task(check_dataset(dname, custom), seeds[0], int(sz["n_train"]),
                                 int(sz["n_forget"])).description
    results = {
        "experiment": "coherence-study", "mode": mode, "sizes": sz, "seed": 0,
        "provenance": provenance(), "datasets": descr,
        "models": {m: MODEL_DESCRIPTIONS[m] for m in models}, "kinds": kinds, "tasks": tasks,
        "train_tol": TRAIN_TOL, "compute_seconds": float(sum(r["seconds"] for r in rows)),
        "this_run": {"wall_seconds": time.perf_counter() - t0, "load_start": list(load0),
                     "load_end": list(os.getloadavg()), "cpus": os.cpu_count()},
        "processes": f"executor {run_kw.get('executor', 'processes')}",
        "rows": rows, "analysis": analyse(rows),
        "json": "coherence_study/coherence_study.json",
    }
    if write:
        import json

        home.mkdir(parents=True, exist_ok=True)
        tmp = home / "coherence_study.json.tmp"
        tmp.write_text(json.dumps(results, indent=1, allow_nan=True))
        tmp.replace(home / "coherence_study.json")
        figure(results, home / "coherence_study.png")
        (home / "coherence_study.md").write_text(page(results, "coherence_study.png"))
    return results


def experiment_coherence_study(out: Path, quick: bool, run_kw: dict) -> dict:
    """``rmt reproduce --only coherence-study``: :func:`run_study` on every built-in data set,
    model and forget kind; returns what the report needs (figure, the answer, pooled numbers)."""
    from .report import _answer

    res = run_study(out, quick=quick, run_kw=run_kw)
    A = res["analysis"]
    return {"figures": ["coherence_study/coherence_study.png"],
            "page": "coherence_study/coherence_study.md",
            "json": "coherence_study/coherence_study.json",
            "answer": _answer(res), "units": A["units"], "groups": len(A["groups"]),
            "pooled_escape": A["pooled"]["escape"], "best": A["best"],
            "provenance": res["provenance"]}
