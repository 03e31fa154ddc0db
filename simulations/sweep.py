"""Config-driven sweeps of rmt: a TOML/YAML config → (ensemble × Schedule) cells → quantities.

The generic resumable engine — grid, seeds, store, lock, fingerprint, executors, ``run_sweep``,
``open_sweep``, ``sweep_status`` — lives in :mod:`simulations.sweep_engine` and knows nothing
about rmt; it is re-exported here, so ``from simulations.sweep import run_sweep`` keeps working.
See ``docs/sweeps.md``.

Allowed values are never copied here: ensemble parameters are checked against
``rmt.ensembles.<name>.parameter_constraints`` and schedule fields against
``rmt.Schedule.parameter_constraints`` (:mod:`rmt.validation`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from numbers import Integral
from pathlib import Path

import numpy as np

import rmt
from rmt import ensembles
from rmt.schedule import Schedule
from rmt.validation import Interval, validate_param

from . import sweep_engine as _engine
from .sweep_engine import *  # noqa: F403  (re-export: the engine's public names)
from .sweep_engine import SweepError, _check_grid, grid_cells, run_sweep

__all__ = [
    *_engine.__all__,
    # config-driven sweeps
    "ENSEMBLES",
    "QUANTITIES",
    "SCHEDULE_FIELDS",
    "LYAPUNOV_CONSTRAINTS",
    "ensemble_constraints",
    "load_config",
    "validate_config",
    "config_outputs",
    "ConfigCell",
    "compute_quantities",
    "run_config",
    "resolve_lyapunov",
]


#: Ensembles a config may name (functions of :mod:`rmt.ensembles` whose parameters are scalars).
ENSEMBLES = ("hessian_test", "near_optimal", "aligned", "wishart")

#: Quantities a config may request and the output variables each produces.
QUANTITIES = {
    "rate": ("rate", "diverges"),
    "critical_eta": ("critical_eta",),
    "critical_batch": ("critical_batch",),
    "critical_alpha": ("critical_alpha",),
    "coherence": ("coherence", "coherence_retain", "coherence_forget", "coherence_cross"),
    "lyapunov": ("lyapunov", "lyapunov_stderr"),
}

#: Fields of :class:`rmt.Schedule` (fixed in ``[schedule]`` or grid axes).
SCHEDULE_FIELDS = tuple(Schedule.parameter_constraints)
#: Settings of the Lyapunov estimator a config (or ``rmt analyze``) may give: looked up in the
#: constraint table ``rmt.lyapunov`` declares (no copy of its ranges here).
LYAPUNOV_CONSTRAINTS = {k: rmt.lyapunov.parameter_constraints[k]
                        for k in ("steps", "replicas", "seed")}
_SEED_AXIS = [Interval(Integral, 0, None, closed="left")]
_TOP_KEYS = ("description", "seed", "quantities", "ensemble", "schedule", "lyapunov", "grid")
_LYAPUNOV_KEYS = ("steps", "replicas")
#: Which schedule fields each quantity needs (the others are ignored by it).
_NEEDS = {
    "rate": ("eta", "batch"),
    "critical_eta": ("batch",),
    "critical_batch": ("eta",),
    "critical_alpha": ("eta", "batch"),
    "coherence": (),
    "lyapunov": ("eta", "batch"),
}
_MAX_PRECHECK_CELLS = 200_000


def resolve_lyapunov() -> Callable:
    """The Lyapunov estimator ``rmt.lyapunov(hs, schedule, steps, replicas, seed)``.

    One seam for the ``lyapunov`` quantity (validation, cells and ``rmt analyze`` all call it), so
    a test can substitute the estimator in one place.
    """
    return rmt.lyapunov


def load_config(path) -> dict:
    """Read a sweep config from a ``.toml``, ``.yaml`` or ``.yml`` file (not yet validated)."""
    path = Path(path)
    if not path.is_file():
        raise SweepError(f"config file {str(path)!r} does not exist")
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            import tomllib

            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        elif suffix in (".yaml", ".yml"):
            import yaml

            with open(path, encoding="utf-8") as fh:
                data = yaml.safe_load(fh)
        else:
            raise SweepError(f"config {str(path)!r}: use a .toml, .yaml or .yml file, got {suffix!r}")
    except SweepError:
        raise
    except Exception as exc:  # parse errors of either format
        raise SweepError(f"config {str(path)!r} could not be parsed: {exc}") from None
    if not isinstance(data, dict):
        raise SweepError(f"config {str(path)!r} must be a table/mapping at the top level")
    return data


def _unknown(keys, allowed, where):
    bad = sorted(set(keys) - set(allowed))
    if bad:
        raise SweepError(f"{where}: unknown key(s) {bad}; allowed: {sorted(allowed)}")


def _ensemble_func(name):
    return getattr(ensembles, name)


def ensemble_constraints(name) -> dict:
    """Constraint table of ``rmt.ensembles.<name>`` without ``seed`` (the sweep sets the seed)."""
    table = _ensemble_func(name).parameter_constraints
    return {k: v for k, v in table.items() if k != "seed"}


def _check_values(where, table, values):
    """Check ``values`` (name → value) against a constraint table; SweepError names the place."""
    for name, value in values.items():
        try:
            validate_param(name, value, table[name])
        except (TypeError, ValueError) as exc:
            raise SweepError(f"{where}: {exc}") from None


def validate_config(raw: Mapping) -> dict:
    """Check a sweep config and return its normalised form (raises SweepError naming the problem).

    Every check happens here, before any computation: unknown keys, empty grids, invalid values
    (each checked against the constraint table of the ensemble or of :class:`rmt.Schedule` that
    owns it: η ≤ 0, α outside [0, 1], …), batches larger than the sets, unknown ensembles or
    quantities, and the availability of optional estimators (Lyapunov). The returned config holds
    the values as given (they enter the store's fingerprint).
    """
    if not isinstance(raw, Mapping):
        raise SweepError("config must be a mapping")
    _unknown(raw, _TOP_KEYS, "config")
    for key in ("ensemble", "quantities", "grid"):
        if key not in raw:
            raise SweepError(f"config: missing required key {key!r}")

    # ---- ensemble
    ens = raw["ensemble"]
    if isinstance(ens, str):
        ens = {"name": ens}
    if not isinstance(ens, Mapping) or "name" not in ens:
        raise SweepError("config [ensemble]: must be a table with a 'name' (e.g. name = 'hessian_test')")
    ens_name = ens["name"]
    if ens_name not in ENSEMBLES:
        raise SweepError(f"config [ensemble]: unknown ensemble {ens_name!r}; choose one of {list(ENSEMBLES)}")
    ens_table = ensemble_constraints(ens_name)
    allowed_ens = list(ens_table)
    ens_fixed = {k: v for k, v in ens.items() if k != "name"}
    if "seed" in ens_fixed:
        raise SweepError("config [ensemble]: 'seed' is set by the sweep (top-level seed), not per ensemble")
    _unknown(ens_fixed, allowed_ens, f"config [ensemble] ({ens_name})")
    _check_values(f"config [ensemble] ({ens_name})", ens_table, ens_fixed)

    # ---- schedule
    sched = dict(raw.get("schedule") or {})
    _unknown(sched, SCHEDULE_FIELDS, "config [schedule]")
    _check_values("config [schedule]", Schedule.parameter_constraints, sched)

    # ---- quantities
    quantities = raw["quantities"]
    if isinstance(quantities, str):
        quantities = [quantities]
    if not isinstance(quantities, Sequence) or not quantities:
        raise SweepError(f"config: quantities must be a non-empty list out of {list(QUANTITIES)}")
    for q in quantities:
        if q not in QUANTITIES:
            raise SweepError(f"config: unknown quantity {q!r}; choose from {list(QUANTITIES)}")
    if len(set(quantities)) != len(quantities):
        raise SweepError(f"config: quantities repeated: {list(quantities)}")
    quantities = list(quantities)

    # ---- lyapunov
    lyap = dict(raw.get("lyapunov") or {})
    _unknown(lyap, _LYAPUNOV_KEYS, "config [lyapunov]")
    if "lyapunov" in quantities:
        lyap.setdefault("steps", 1000)
        lyap.setdefault("replicas", 8)
        _check_values("config [lyapunov]", LYAPUNOV_CONSTRAINTS, lyap)
        try:
            resolve_lyapunov()
        except ImportError as exc:
            raise SweepError(
                f"config: quantity 'lyapunov' is unavailable (rmt.lyapunov cannot be loaded: {exc})"
            ) from None
    elif lyap:
        raise SweepError("config [lyapunov]: given but 'lyapunov' is not among the quantities")

    # ---- seed
    seed = raw.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise SweepError(f"config: seed must be a non-negative integer, got {seed!r}")

    # ---- grid
    grid = _check_grid(raw["grid"])
    for ax, vals in grid.items():
        if ax == "seed":
            table = {ax: _SEED_AXIS}
        elif ax in SCHEDULE_FIELDS:
            if ax in sched:
                raise SweepError(f"config: {ax!r} is given both in [schedule] and in [grid]")
            table = Schedule.parameter_constraints
        elif ax in allowed_ens:
            if ax in ens_fixed:
                raise SweepError(f"config: {ax!r} is given both in [ensemble] and in [grid]")
            table = ens_table
        else:
            raise SweepError(
                f"config [grid]: unknown axis {ax!r}; allowed: 'seed', schedule fields "
                f"{list(SCHEDULE_FIELDS)} or parameters of {ens_name} {allowed_ens}"
            )
        # each value against the constraints of the parameter's owner (never a copied range)
        for v in vals:
            _check_values(f"config [grid] axis {ax!r}", table, {ax: v})
    needed = sorted({f for q in quantities for f in _NEEDS[q]})
    for f in needed:
        if f not in sched and f not in grid:
            users = [q for q in quantities if f in _NEEDS[q]]
            raise SweepError(f"config: {f!r} is needed by {users}: give it in [schedule] or [grid]")

    # ---- combined checks (relations between fields: sam needs alpha = 0, sigma <= n, …)
    def schedule_for(values):
        kw = {"eta": 1.0, "batch": 1}
        kw.update(sched)
        kw.update(values)
        try:
            return Schedule(**kw)
        except (TypeError, ValueError) as exc:
            raise SweepError(f"config: invalid schedule {values or sched}: {exc}") from None

    schedule_for({})
    for ax, vals in grid.items():
        if ax in SCHEDULE_FIELDS:
            for v in vals:
                schedule_for({ax: v})

    ens_axes = [ax for ax in grid if ax in allowed_ens]
    cache = {}

    def ensemble_for(values):
        key = tuple(values[a] for a in ens_axes)
        if key not in cache:
            kw = dict(ens_fixed)
            kw.update({a: values[a] for a in ens_axes})
            try:
                cache[key] = _ensemble_func(ens_name)(**kw, seed=0)
            except (TypeError, ValueError) as exc:
                raise SweepError(f"config: invalid {ens_name} parameters {kw}: {exc}") from None
        return cache[key]

    # ensemble × schedule compatibility (batch ≤ set sizes, forget set for α > 0) on every cell:
    # cheap bookkeeping, no analysis is run
    total = math.prod(len(v) for v in grid.values())
    if total <= _MAX_PRECHECK_CELLS:
        needs_schedule = any(q != "coherence" for q in quantities)
        for _, _, params in grid_cells(grid):
            hs = ensemble_for(params)
            if needs_schedule:
                sch = schedule_for({a: params[a] for a in grid if a in SCHEDULE_FIELDS})
                try:
                    _check_cell_schedule(hs, sch, quantities)
                except ValueError as exc:
                    raise SweepError(f"config: cell {params} is invalid: {exc}") from None
    return {
        "seed": seed,
        "quantities": quantities,
        "ensemble": {"name": ens_name, **ens_fixed},
        "schedule": sched,
        "lyapunov": lyap if "lyapunov" in quantities else {},
        "grid": grid,
        "description": raw.get("description"),
    }


def _check_cell_schedule(hs, sch, quantities):
    sch.validate_for(hs)
    if "critical_alpha" in quantities and not hs.has_forget:
        raise ValueError("critical_alpha needs a forget set (set the ensemble's forget/n_forget)")


def config_outputs(quantities) -> list[str]:
    return [o for q in quantities for o in QUANTITIES[q]]


class ConfigCell:
    """Picklable cell function of a config-driven sweep: ensemble × schedule → quantities.

    Seeds: the ensemble is drawn from ``SeedSequence(seed, spawn_key=(1, *p))`` where ``p`` is the
    cell's position on the ensemble axes and the ``seed`` axis only, so every schedule cell with
    the same ensemble parameters sees the same Hessians; Monte Carlo estimators (Lyapunov) use
    ``SeedSequence(seed, spawn_key=(2, *index))`` keyed by the full grid position.
    """

    def __init__(self, config: dict):
        self.config = config
        axes = list(config["grid"])
        ens_params = set(ensemble_constraints(config["ensemble"]["name"]))
        self._ens_pos = [i for i, a in enumerate(axes) if a in ens_params or a == "seed"]

    def __call__(self, params, seed):
        cfg = self.config
        index = tuple(seed.spawn_key)
        ens_ss = np.random.SeedSequence(seed.entropy, spawn_key=(1,) + tuple(index[i] for i in self._ens_pos))
        mc_ss = np.random.SeedSequence(seed.entropy, spawn_key=(2,) + index)
        ens = dict(cfg["ensemble"])
        name = ens.pop("name")
        allowed = ensemble_constraints(name)
        ens.update({k: v for k, v in params.items() if k in allowed})
        hs = _ensemble_func(name)(**ens, seed=ens_ss)
        kw = {"eta": 1.0, "batch": 1}
        kw.update(cfg["schedule"])
        kw.update({k: v for k, v in params.items() if k in SCHEDULE_FIELDS})
        sch = Schedule(**kw)
        return compute_quantities(hs, sch, cfg["quantities"], lyapunov=cfg.get("lyapunov"), seed=mc_ss)


def compute_quantities(hs, schedule, quantities, *, lyapunov=None, seed=None) -> dict[str, float]:
    """The requested quantities of one (HessianSet, Schedule) pair as a flat dict of floats."""
    from rmt.meansquare import critical_alpha, critical_batch, critical_eta, mean_square

    out = {}
    for q in quantities:
        if q == "rate":
            ms = mean_square(hs, schedule)
            out["rate"] = ms.rate
            out["diverges"] = float(ms.forgets)
        elif q == "critical_eta":
            out["critical_eta"] = critical_eta(hs, schedule)
        elif q == "critical_batch":
            b = critical_batch(hs, schedule)
            out["critical_batch"] = math.nan if b is None else float(b)
        elif q == "critical_alpha":
            a = critical_alpha(hs, schedule)
            out["critical_alpha"] = math.nan if a is None else float(a)
        elif q == "coherence":
            from rmt.coherence import coherence

            c = coherence(hs)
            out["coherence"] = c.sigma
            out["coherence_retain"] = c.sigma_retain
            out["coherence_forget"] = c.sigma_forget
            out["coherence_cross"] = c.sigma_cross
        elif q == "lyapunov":
            lyap = dict(lyapunov or {})
            res = resolve_lyapunov()(
                hs, schedule, steps=lyap.get("steps", 1000), replicas=lyap.get("replicas", 8), seed=seed
            )
            out["lyapunov"] = float(res.exponent)
            out["lyapunov_stderr"] = float(res.stderr)
        else:  # pragma: no cover - validated earlier
            raise SweepError(f"unknown quantity {q!r}")
    return {k: float(v) for k, v in out.items()}


def run_config(config, store, *, executor="processes", progress=True, **executor_options):
    """Run a config-driven sweep (``config``: a path to TOML/YAML or a mapping).

    The config is validated completely before the store is touched; returns the Dataset.
    """
    raw = load_config(config) if isinstance(config, (str, os.PathLike)) else config
    cfg = validate_config(raw)
    ident = {k: v for k, v in cfg.items() if k not in ("description", "grid", "seed")}
    return run_sweep(
        ConfigCell(cfg), cfg["grid"], store, executor=executor, seed=cfg["seed"],
        progress=progress, config=ident, **executor_options,
    )
