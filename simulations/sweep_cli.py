"""``rmt sweep`` and ``rmt analyze`` (registered by :mod:`simulations.cli`).

Sign convention in every report: :data:`rmt.verdict.SIGN_CONVENTION` ("diverges" = the model
forgets, "converges" = it resists unlearning).

``rmt analyze`` — the exact picture of one curvature file (layout: ``docs/npz.md``,
:mod:`rmt.io`) under every combination of the given schedule options:

1. **Everything is validated first** (:func:`plan_analysis`): every option against the constraint
   table that owns it (:class:`rmt.Schedule`, the Lyapunov table of the sweep config, the
   forecast's), every combination built as an :class:`rmt.Dynamics` (batch sizes, forget set,
   gradients, zero span) and the curvature's float64 scale — before anything is computed or
   printed.
2. **One computation per combination, shared** (:func:`analyze_combination`): one Dynamics, one
   ρ(T) (:func:`rmt.mean_square`), one η*, α*, B* (:func:`rmt.critical_eta` /
   ``critical_alpha`` / ``critical_batch``), one coherence for the file; the theorem checks read
   them through :class:`theory.theorems.Instance` instead of recomputing them. The BLAS pool of
   this process is capped at :func:`rmt.threads.blas_threads`.
3. **The headline is the forecast** (:func:`rmt.forecast`, ``--steps`` horizon): does the model
   escape, get displaced or return within the horizon; then the asymptotic mean-square and
   almost-sure verdicts, flagged when they disagree; then the critical values and the theorems
   (status proven/conjecture, and why each does or does not apply).
4. **Results stream**: text prints each combination when it finishes, ``--jsonl`` writes one
   JSON line per combination, ``--json`` one document at the end. A combination that fails is
   reported with its error and the others still run (exit status 1); on Ctrl-C the finished
   combinations are still written. ``--json``/``--jsonl`` record
   :func:`simulations.provenance.provenance` (version, commit, time).
"""

from __future__ import annotations

import itertools
import json
import math
import sys
import time
import warnings
from dataclasses import dataclass, field
from numbers import Integral, Real
from pathlib import Path

# numpy and rmt are imported where they are used: "rmt sweep --help" / "rmt analyze --help" then
# import neither (simulations/cli.py imports this module only when one of its commands runs)

__all__ = [
    "register",
    "cmd_sweep",
    "cmd_analyze",
    "load_npz",
    "analyze",
    "plan_analysis",
    "analyze_combination",
    "AnalysisPlan",
]

#: Exit status of a run in which at least one combination failed (the others are reported).
EXIT_PARTIAL = 1
#: Exit status of a usage or validation error (nothing computed).
EXIT_USAGE = 2
#: Default batch sampling of ``rmt analyze`` and of a sweep's schedule: ``rmt.Schedule``'s default
#: (written out so that ``--help`` does not import rmt; tests/test_cli_usage.py keeps them equal).
DEFAULT_SAMPLING = "bernoulli"


def register(subparsers) -> None:
    """Add the ``sweep`` and ``analyze`` subcommands."""
    p = subparsers.add_parser(
        "sweep",
        help="run a resumable parameter sweep from a TOML/YAML config into a zarr store",
        description=(
            "Evaluate the quantities named in CONFIG on every cell of its grid and store a labelled "
            "xarray Dataset in STORE/result.zarr. Interrupt at any time and rerun the same command "
            "to finish: finished cells are never recomputed. Schema: docs/sweeps.md. Every error "
            "is one line (exit status 2) and is found before the store is created. Schedule "
            "fields the config leaves out take rmt.Schedule's defaults (batch sampling: "
            f"{DEFAULT_SAMPLING}; set [schedule] sampling = \"without_replacement\" for the "
            "Hessian-test protocol). "
            "Convention: 'diverges' = forgets, 'converges' = resists unlearning."
        ),
    )
    p.add_argument("config", metavar="CONFIG", help="sweep config (.toml, .yaml or .yml)")
    p.add_argument("--out", required=True, metavar="STORE", help="output folder (sweep store)")
    ex = p.add_mutually_exclusive_group()
    ex.add_argument("--serial", action="store_true", help="run in this process (no workers)")
    ex.add_argument("--dask-local", type=int, metavar="N",
                    help="start a Dask LocalCluster on 127.0.0.1 with N single-threaded workers")
    ex.add_argument("--scheduler", metavar="ADDRESS",
                    help="connect to an existing Dask scheduler (e.g. tcp://127.0.0.1:8786)")
    p.add_argument("--workers", type=int, metavar="N",
                   help="number of local processes for the default executor (default: CPU count)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=cmd_sweep)

    from .cli import verdict_constants

    SIGN_CONVENTION_SHORT = verdict_constants().SIGN_CONVENTION_SHORT
    a = subparsers.add_parser(
        "analyze",
        help="forecast, rho(T), critical eta/alpha/batch, Lyapunov and theorem checks for a "
             "curvature .npz file",
        description=(
            "Load per-sample curvature from FILE.npz (layout: docs/npz.md — retain_factors, "
            "forget_factors, retain_gradients, forget_gradients, loss; legacy retain_grads / "
            "retain_hessians are read too) and analyse every combination of the given options: "
            "the finite-horizon forecast (escapes / displaced / returns within --steps), the exact "
            "mean-square rate rho(T) and the almost-sure Lyapunov exponent (flagged when they "
            "disagree), the critical eta, alpha and batch, and which encoded theorems apply, "
            "hold, or why they do not apply. All options and combinations are validated before "
            f"anything is computed. Convention: {SIGN_CONVENTION_SHORT}."
        ),
    )
    a.add_argument("file", metavar="FILE.npz")
    a.add_argument("--eta", type=float, nargs="+",
                   help="learning rate(s) (default: 1/lambda_max of the mean retain Hessian)")
    a.add_argument("--batch", type=int, nargs="+", default=[1], help="retain batch size(s) (default 1)")
    a.add_argument("--alpha", type=float, nargs="+",
                   help="mixing weight(s) in [0, 1] (default: 0.1 with a forget set, else 0)")
    a.add_argument("--sampling", nargs="+", default=[DEFAULT_SAMPLING],
                   choices=["bernoulli", "with_replacement", "without_replacement"],
                   metavar="SCHEME",
                   help="batch sampling scheme(s): bernoulli, with_replacement, "
                        f"without_replacement (default {DEFAULT_SAMPLING}, as in rmt.Schedule: "
                        "each sample joins a batch independently with probability B/n; "
                        "the rmt reproduce experiments use without_replacement)")
    a.add_argument("--schedule", nargs="+", default=["summed"], choices=["summed", "alternating"],
                   metavar="COMBINATOR",
                   help="step combinator(s): summed, alternating (default summed, as in "
                        "rmt.Schedule)")
    a.add_argument("--forget-batch", type=int, help="forget batch size (default: same as --batch)")
    a.add_argument("--steps", type=int, default=1000,
                   help="forecast horizon in steps (default 1000)")
    a.add_argument("--forecast-replicas", type=int, default=256,
                   help="Monte Carlo runs of the forecast (default 256)")
    a.add_argument("--no-forecast", action="store_true", help="skip the finite-horizon forecast")
    a.add_argument("--lyapunov-steps", type=int, default=2000, help="Lyapunov steps (default 2000)")
    a.add_argument("--replicas", type=int, default=8,
                   help="Lyapunov replicas, >= 2 for a standard error (default 8)")
    a.add_argument("--seed", type=int, default=0,
                   help="seed of the Monte Carlo estimates (default 0)")
    a.add_argument("--no-lyapunov", action="store_true", help="skip the Lyapunov estimate")
    a.add_argument("--no-theorems", action="store_true", help="skip the theorem checks")
    a.add_argument("--certify", action="store_true",
                   help="add an exact-arithmetic certificate of each mean-square verdict (or why "
                        "none could be made); check a saved one with 'rmt verify'")
    a.add_argument("--time-budget", type=float, metavar="SECONDS",
                   help="time budget of each exact computation (rho(T) and each critical "
                        "value; default: none); when it runs out the certified bracket / bracket "
                        "midpoint is reported with a note")
    out = a.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true",
                     help="print one JSON document (partial results are kept on error)")
    out.add_argument("--jsonl", action="store_true",
                     help="print one JSON line per combination as it finishes (header line "
                          "first, summary line last)")
    a.set_defaults(func=cmd_analyze)


def _error(cmd, msg) -> int:
    text = " ".join(part.strip() for part in str(msg).splitlines() if part.strip())
    print(f"rmt {cmd}: error: {text}", file=sys.stderr)
    return EXIT_USAGE


# ====================================================================== rmt sweep
def cmd_sweep(args) -> int:
    from .sweep import (SweepError, check_scheduler, load_config, run_config, sweep_status,
                        validate_config)

    try:
        cfg_path, out = Path(args.config), Path(args.out)
        if cfg_path.is_dir():
            raise SweepError(f"config {str(cfg_path)!r} is a directory, not a .toml/.yaml file")
        if out.exists() and not out.is_dir():
            raise SweepError(f"--out {str(out)!r} exists and is not a directory")
        if not out.exists() and out.parent.exists() and not out.parent.is_dir():
            raise SweepError(f"--out {str(out)!r}: {str(out.parent)!r} is not a directory")
        raw = load_config(args.config)
        validate_config(raw)  # fail fast, before the store is touched
        if args.workers is not None and args.workers < 1:
            raise SweepError(f"--workers must be >= 1, got {args.workers}")
        if args.dask_local is not None and args.dask_local < 1:
            raise SweepError(f"--dask-local must be >= 1, got {args.dask_local}")
        if args.workers is not None and (args.serial or args.dask_local is not None
                                         or args.scheduler is not None):
            raise SweepError("--workers only applies to the default process executor, not with "
                             "--serial, --dask-local or --scheduler")
        opts = {}
        if args.serial:
            executor = "serial"
        elif args.dask_local is not None:
            executor, opts = "dask", {"dask_local": args.dask_local}
        elif args.scheduler is not None:
            check_scheduler(args.scheduler)
            executor, opts = "dask", {"scheduler": args.scheduler}
        else:
            executor, opts = "processes", {"n_workers": args.workers}
        before = 0
        if Path(args.out, "sweep.json").is_file():
            try:
                before = sweep_status(args.out).done
            except SweepError:
                before = 0
        t0 = time.perf_counter()
        ds = run_config(raw, args.out, executor=executor, progress=not args.no_progress, **opts)
    except SweepError as exc:
        return _error("sweep", exc)
    total = math.prod(int(ds.sizes[d]) for d in ds.dims)
    dims = ", ".join(f"{d}={ds.sizes[d]}" for d in ds.dims)
    print(
        f"sweep finished: {total} cells ({total - before} computed now, {before} reused) in "
        f"{time.perf_counter() - t0:.1f} s\n"
        f"store: {Path(args.out) / 'result.zarr'}  dims: {dims}\n"
        f"variables: {', '.join(sorted(ds.data_vars))}\n"
        "convention: diverges = forgets, converges = resists unlearning"
    )
    return 0


# ====================================================================== rmt analyze
def load_npz(path):
    """``(HessianSet, NpzMetadata)`` of a curvature file (layout: :mod:`rmt.io`, docs/npz.md)."""
    from rmt.io import load_npz as _load

    return _load(path, with_metadata=True)


def _constraints():
    """Option → constraint list, looked up in the tables that own the values (never copied)."""
    from rmt.schedule import Schedule
    from rmt.validation import Interval

    from .sweep import LYAPUNOV_CONSTRAINTS

    sch = Schedule.parameter_constraints
    return {
        "eta": sch["eta"], "batch": sch["batch"], "alpha": sch["alpha"],
        "sampling": sch["sampling"], "schedule": sch["schedule"],
        "forget_batch": sch["forget_batch"],
        "lyapunov_steps": LYAPUNOV_CONSTRAINTS["steps"],
        "replicas": LYAPUNOV_CONSTRAINTS["replicas"],
        "seed": [Interval(Integral, 0, None, closed="left")],
        # rmt.forecast: steps >= 1, replicas >= 2 (a majority and a spread need two runs)
        "steps": [Interval(Integral, 1, None, closed="left")],
        "forecast_replicas": [Interval(Integral, 2, None, closed="left")],
        "time_budget": [None, Interval(Real, 0, None, closed="neither")],
    }


def _option_name(name, cli):
    return "--" + name.replace("_", "-") if cli else name


def _validate_options(opts, cli=False):
    """Every option value against its table; lists are checked element by element."""
    from rmt.validation import validate_param

    table = _constraints()
    out = {}
    for name, value in opts.items():
        if name not in table:
            out[name] = value
            continue
        label = _option_name(name, cli)
        if isinstance(value, (list, tuple)):
            if len(value) == 0:
                raise ValueError(f"{label} needs at least one value")
            out[name] = [validate_param(label, v, table[name]) for v in value]
        elif value is None and name in ("eta", "alpha", "forget_batch", "time_budget"):
            out[name] = None  # documented default picked by analyze
        else:
            out[name] = validate_param(label, value, table[name])
    return out


@dataclass
class AnalysisPlan:
    """Everything :func:`plan_analysis` validated: the set, its header and one Dynamics per
    combination (in the order they are analysed), plus the shared settings."""

    hs: object
    header: dict
    dynamics: list
    settings: dict
    coherence: object = field(repr=False, default=None)
    theorems: list | None = field(repr=False, default=None)
    theorem_error: str | None = None
    lyapunov_fn: object = field(repr=False, default=None)
    lyapunov_error: str | None = None


def _num(x):
    """JSON-safe number: NaN → None, ±inf → "inf"/"-inf"."""
    import numpy as np

    if x is None:
        return None
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    try:
        x = float(x)
    except (TypeError, ValueError):
        return str(x)
    if math.isnan(x):
        return None
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


def _json_safe(obj):
    """Recursively replace non-finite floats (JSON has none) and numpy scalars."""
    import numpy as np

    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, (float, np.floating, np.integer, np.bool_)):
        return _num(obj)
    return obj


def _theorem_catalogue() -> list:
    from theory.theorems import extra_theorems, theorems

    return list(theorems()) + extra_theorems()


def plan_analysis(hs, *, etas=None, batches=(1,), alphas=None, samplings=("bernoulli",),
                  schedules=("summed",), forget_batch=None, lyapunov=True, lyapunov_steps=2000,
                  replicas=8, seed=0, steps=1000, forecast=True, forecast_replicas=256,
                  theorems=True, time_budget=None, certify=False, cli=False) -> AnalysisPlan:
    """Validate every option and every combination; build one Dynamics per combination.

    Nothing is computed beyond what validation needs (the span of the set, the default η and
    the coherence). Raises ValueError/TypeError naming the option (``--eta`` when ``cli``) or the
    combination, before any result exists. BLAS is capped as in :func:`_run` (and in every
    ``rmt`` analysis, which builds its span inside the cap).
    """
    from rmt.threads import limit_blas

    with limit_blas():
        return _plan_analysis(hs, etas=etas, batches=batches, alphas=alphas, samplings=samplings,
                              schedules=schedules, forget_batch=forget_batch, lyapunov=lyapunov,
                              lyapunov_steps=lyapunov_steps, replicas=replicas, seed=seed,
                              steps=steps, forecast=forecast, forecast_replicas=forecast_replicas,
                              theorems=theorems, time_budget=time_budget, certify=certify,
                              cli=cli)


def _plan_analysis(hs, *, etas, batches, alphas, samplings, schedules, forget_batch, lyapunov,
                   lyapunov_steps, replicas, seed, steps, forecast, forecast_replicas, theorems,
                   time_budget, certify, cli) -> AnalysisPlan:
    """The body of :func:`plan_analysis` (BLAS capped by the caller)."""
    import numpy as np

    import rmt
    from rmt.hessians import HessianSet
    from rmt.io import check_curvature_scale

    if not isinstance(hs, HessianSet):
        raise TypeError(f"hs must be a HessianSet, got {type(hs).__name__}")
    for flag, name in ((lyapunov, "lyapunov"), (forecast, "forecast"), (theorems, "theorems"),
                       (certify, "certify")):
        if not isinstance(flag, (bool, np.bool_)):
            raise TypeError(f"{name} must be True or False, got {type(flag).__name__}")
    o = _validate_options(dict(
        eta=None if etas is None else list(etas), batch=list(batches),
        alpha=None if alphas is None else list(alphas), sampling=list(samplings),
        schedule=list(schedules), forget_batch=forget_batch, lyapunov_steps=lyapunov_steps,
        replicas=replicas, seed=seed, steps=steps, forecast_replicas=forecast_replicas,
        time_budget=time_budget), cli=cli)
    check_curvature_scale(hs)
    header = {
        "hessians": {"kind": hs.kind, "n_retain": hs.n_retain, "n_forget": hs.n_forget,
                     "dim": hs.dim, "span_dim": hs.span_dim, "null_dim": hs.null_dim,
                     "gradients": bool(hs.has_gradients)},
    }
    eta_list = o["eta"]
    if eta_list is None:
        lmax = float(np.linalg.eigvalsh(hs.reduction(True, False).mean("retain"))[-1])
        if not lmax > 0:
            raise ValueError("the mean retain Hessian is zero: give --eta explicitly")
        eta_list = [1.0 / lmax]
        header["default_eta"] = "1/lambda_max(mean retain Hessian)"
    alpha_list = o["alpha"] if o["alpha"] is not None else ([0.1] if hs.has_forget else [0.0])
    dyns = []
    for eta, batch, alpha, sampling, sched in itertools.product(
            eta_list, o["batch"], alpha_list, o["sampling"], o["schedule"]):
        label = (f"combination eta={eta:.6g} batch={batch} alpha={alpha:g} sampling={sampling} "
                 f"schedule={sched}")
        try:
            sch = rmt.Schedule(eta=eta, batch=batch, alpha=alpha, sampling=sampling,
                               schedule=sched, forget_batch=o["forget_batch"])
            dyns.append(rmt.Dynamics(hs, sch))
        except (ValueError, TypeError) as exc:
            raise type(exc)(f"{label}: {exc}") from None
    settings = {k: o[k] for k in ("lyapunov_steps", "replicas", "seed", "steps",
                                  "forecast_replicas", "time_budget")}
    settings.update(lyapunov=bool(lyapunov), forecast=bool(forecast), theorems=bool(theorems),
                    certify=bool(certify))
    plan = AnalysisPlan(hs, header, dyns, settings)
    coh = rmt.coherence(hs)
    plan.coherence = coh
    header["coherence"] = {"sigma": _num(coh.sigma), "sigma_retain": _num(coh.sigma_retain),
                           "sigma_forget": _num(coh.sigma_forget),
                           "sigma_cross": _num(coh.sigma_cross)}
    if lyapunov:
        from .sweep import resolve_lyapunov

        plan.lyapunov_fn = resolve_lyapunov()
    else:
        plan.lyapunov_error = "skipped (--no-lyapunov)"
    if theorems:
        plan.theorems = _theorem_catalogue()
    else:
        plan.theorem_error = "skipped (--no-theorems)"
    return plan


def _theorem_row(th, chk) -> dict:
    """One theorem check as a JSON row; ``threshold``/``tightness`` (η_thm and η_thm/η*) and
    ``section`` exist only for the statements that have them."""
    return {
        "name": str(chk.name), "status": str(th.status),
        "conclusion": str(chk.conclusion),
        "applies": bool(chk.applies),
        "held": None if chk.held is None else bool(chk.held),
        "threshold": _num(getattr(chk, "threshold", None)),
        "tightness": _num(getattr(chk, "tightness", None)),
        "reason": str(chk.reason or ""),
        "section": str(getattr(th, "section", "") or ""),
    }


def _critical(fn, dyn, budget, notes, what):
    try:
        kw = {} if budget is None else {"time_budget": budget}
        return fn(dyn, **kw)
    except (ValueError, RuntimeError) as exc:
        notes.append(f"{what}: {type(exc).__name__}: {exc}")
        return math.nan


def _certificate(dyn) -> dict:
    """The exact-arithmetic certificate of the mean-square verdict (contract §10.6), or why
    none could be made (ρ within the search's resolution of 1, span too large, …)."""
    import rmt

    try:
        cert = rmt.certify(dyn)
    except rmt.CertificateError as exc:
        return {"available": False, "reason": str(exc)}
    ok, why = cert.verify()
    return {"available": True, "claim": cert.claim, "c": float(cert.c), "verified": bool(ok),
            "reason": why, "fingerprint": cert.fingerprint}


def analyze_combination(plan: AnalysisPlan, dyn) -> dict:
    """The report entry of one combination (module docstring, step 2 and 3).

    One ρ(T), one η*, α*, B*, one Lyapunov estimate and one forecast; the theorem checks share
    them. RuntimeWarnings raised on the way are kept in ``notes``.
    """
    import rmt
    from rmt.verdict import ALMOST_SURE, MEAN_SQUARE, verdict_text

    st, sch = plan.settings, dyn.schedule
    t0 = time.perf_counter()
    notes = []
    entry = {"schedule": {"eta": sch.eta, "batch": sch.batch, "alpha": sch.alpha,
                          "sampling": sch.sampling, "schedule": sch.schedule,
                          "forget_batch": sch.batch_forget}}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        budget = st["time_budget"]
        ms = rmt.mean_square(dyn) if budget is None else rmt.mean_square(dyn, time_budget=budget)
        rate = float(ms.rate)
        band = 1e-2 / st["steps"]  # |ρ − 1|·K below 1 % : no detectable change within K steps
        entry.update(
            rate=rate, rate_bounds=[ms.bounds[0], ms.bounds[1]], rate_method=ms.method,
            forgets=bool(ms.forgets), diverges=bool(ms.forgets), verdict=ms.verdict,
            notion=MEAN_SQUARE, neutral_within_horizon=bool(abs(rate - 1.0) <= band),
            span_dim=dyn.r, null_dim=dyn.null_dim)
        if st.get("certify"):
            entry["certificate"] = _certificate(dyn)
        crit = {"eta": _critical(rmt.critical_eta, dyn, budget, notes, "critical_eta")}
        if dyn.hs.has_forget and sch.combinator.takes_forget:
            crit["alpha"] = _critical(rmt.critical_alpha, dyn, budget, notes, "critical_alpha")
        crit["batch"] = _critical(rmt.critical_batch, dyn, budget, notes, "critical_batch")
        entry["critical"] = crit
        entry["critical_eta"] = crit["eta"]

        lyap = None
        if plan.lyapunov_fn is not None:
            try:
                res = plan.lyapunov_fn(dyn, steps=st["lyapunov_steps"], replicas=st["replicas"],
                                       seed=st["seed"])
                lyap = (float(res.exponent), float(res.stderr))
                entry["lyapunov"] = {
                    "available": True, "exponent": lyap[0], "stderr": lyap[1],
                    "forgets": bool(lyap[0] > 0), "verdict": verdict_text(lyap[0] > 0),
                    "notion": ALMOST_SURE, "steps": st["lyapunov_steps"],
                    "replicas": st["replicas"], "seed": st["seed"],
                    "note": "almost-sure rate; lambda_1 <= (1/2) log rho(T)",
                }
            except Exception as exc:
                entry["lyapunov"] = {"available": False, "reason": f"{type(exc).__name__}: {exc}"}
        else:
            entry["lyapunov"] = {"available": False, "reason": plan.lyapunov_error}
        entry["notions"] = _notions(rate, lyap)

        if st["forecast"]:
            fc = rmt.forecast(dyn, st["steps"], replicas=st["forecast_replicas"], seed=st["seed"],
                              rate=rate)  # ρ(T) shared, not recomputed
            entry["forecast"] = {
                "available": True, "outcome": fc.outcome, "forgets": bool(fc.forgets),
                "verdict": fc.verdict, "notion": fc.notion, "reason": fc.reason,
                "steps": fc.steps, "radius": fc.radius,
                "leave_probability": fc.leave_probability,
                "mean_square_leaves": bool(fc.mean_square_leaves),
                "almost_sure_leaves": bool(fc.almost_sure_leaves),
                "notions_disagree": bool(fc.notions_disagree),
                "displacement": (fc.stationary.displacement if fc.stationary.exists else None),
                "horizon_displacement": fc.horizon_displacement,
                "horizon_median_distance": fc.horizon_median_distance,
                "scale": fc.scale, "scale_rule": fc.scale_rule, "start_norm": fc.start_norm,
                "null_drift": fc.null_drift, "summary": fc.summary(),
                "cost": None if getattr(fc, "cost", None) is None else {
                    "forget_loss_rise": fc.cost.forget_loss_rise,
                    "retain_loss_rise": fc.cost.retain_loss_rise,
                    "selectivity": fc.cost.selectivity,
                    "escape_overlap_retain": fc.cost.escape_overlap_retain,
                    "escape_overlap_forget": fc.cost.escape_overlap_forget,
                    "rms_distance": fc.cost.rms_distance, "valid_range": fc.cost.valid_range,
                    "valid": bool(fc.cost.valid),
                    "note": "second-order loss changes at the horizon from the exact moments"
                            + ("" if fc.cost.valid else f" — {fc.cost.validity}"),
                },
            }
        else:
            entry["forecast"] = {"available": False, "reason": "skipped (--no-forecast)"}

        if plan.theorems is not None:
            entry["theorems"] = _check_theorems(plan, dyn, rate, crit["eta"])
        else:
            entry["theorems"] = {"available": False, "reason": plan.theorem_error}
    for w in caught:
        msg = f"{w.category.__name__}: {w.message}"
        if msg not in notes:
            notes.append(msg)
    entry["notes"] = notes
    entry["seconds"] = time.perf_counter() - t0
    return entry


def _notions(rate, lyap):
    """Mean-square (ρ(T) > 1) against almost-sure (λ₁ > 0) verdicts, and whether they disagree.

    The almost-sure side is decided only when λ₁ is two standard errors away from 0.
    """
    ms = rate > 1.0
    out = {"mean_square_forgets": bool(ms), "almost_sure_forgets": None, "disagree": False}
    if lyap is None:
        out["note"] = "no Lyapunov estimate: the almost-sure verdict is unknown"
        return out
    lam, se = lyap
    if abs(lam) <= 2 * se:
        out["note"] = (f"lambda_1 = {lam:.3g} +/- {se:.2g} is within two standard errors of 0: "
                       "the almost-sure verdict is undecided")
        return out
    out["almost_sure_forgets"] = bool(lam > 0)
    if bool(lam > 0) != ms:
        out["disagree"] = True
        out["note"] = (
            f"the notions disagree: mean square {'diverges' if ms else 'converges'} "
            f"(rho(T) = {rate:.6g}) but almost surely a typical run "
            f"{'escapes' if lam > 0 else 'returns'} (lambda_1 = {lam:.3g} +/- {se:.2g}) — "
            + ("rare large runs dominate E|w_k|^2" if ms else "this cannot happen (Jensen); "
               "the Monte Carlo estimate is too short"))
    return out


def _check_theorems(plan, dyn, rate, eta_star):
    from theory.instance import Instance

    # η* is passed even when it is nan (its search failed or ran out of time): the checks then
    # report no tightness instead of searching again without the budget
    inst = Instance(dyn, rate=rate, exact_critical=eta_star, coherence=plan.coherence)
    rows = []
    for th in plan.theorems:
        try:
            rows.append(_theorem_row(th, th.check(inst)))  # one signature: theory.statement
        except Exception as exc:
            rows.append({"name": str(th.name), "status": str(th.status), "applies": None,
                         "held": None, "error": f"{type(exc).__name__}: {exc}"})
    counts = {"applies": sum(r.get("applies") is True for r in rows),
              "held": sum(r.get("held") is True for r in rows),
              "failed": sum(r.get("held") is False for r in rows),
              "errors": sum("error" in r for r in rows)}
    return {"available": True, "counts": counts, "checks": rows}


def _run(plan, on_entry=None):
    """Analyse every combination of ``plan`` (BLAS capped); a failing combination becomes an
    entry with ``error`` and the others still run. ``on_entry(entry)`` streams."""
    from rmt.threads import limit_blas

    results = []
    with limit_blas():
        for i, dyn in enumerate(plan.dynamics):
            try:
                entry = analyze_combination(plan, dyn)
            except KeyboardInterrupt:
                raise
            except Exception as exc:
                sch = dyn.schedule
                entry = {"schedule": {"eta": sch.eta, "batch": sch.batch, "alpha": sch.alpha,
                                      "sampling": sch.sampling, "schedule": sch.schedule,
                                      "forget_batch": sch.batch_forget},
                         "error": f"{type(exc).__name__}: {exc}"}
            entry["index"] = i
            results.append(entry)
            if on_entry is not None:
                on_entry(entry)
    return results


def _report_header(plan):
    from rmt.verdict import SIGN_CONVENTION, SIGN_CONVENTION_SHORT

    from .provenance import provenance

    return {"convention": SIGN_CONVENTION_SHORT, "sign_convention": SIGN_CONVENTION,
            "provenance": provenance(), **plan.header,
            "combinations": len(plan.dynamics), "settings": dict(plan.settings)}


def analyze(hs, *, etas=None, batches=(1,), alphas=None, samplings=("bernoulli",),
            schedules=("summed",), forget_batch=None, lyapunov=True, lyapunov_steps=2000,
            replicas=8, seed=0, steps=1000, forecast=True, forecast_replicas=256, theorems=True,
            time_budget=None, certify=False, on_result=None) -> dict:
    """The full ``rmt analyze`` report of a HessianSet as a dict (module docstring).

    Every option is validated and every combination built before anything is computed
    (:func:`plan_analysis`); then each combination is analysed once (:func:`analyze_combination`)
    with the BLAS pool capped. ``on_result(entry)`` is called as each combination finishes.
    A combination that fails is reported with ``error``; ``complete`` is False then.
    """
    plan = plan_analysis(hs, etas=etas, batches=batches, alphas=alphas, samplings=samplings,
                         schedules=schedules, forget_batch=forget_batch, lyapunov=lyapunov,
                         lyapunov_steps=lyapunov_steps, replicas=replicas, seed=seed,
                         steps=steps, forecast=forecast, forecast_replicas=forecast_replicas,
                         theorems=theorems, time_budget=time_budget, certify=certify)
    report = _report_header(plan)
    report["results"] = _run(plan, on_result)
    report["complete"] = not any("error" in e for e in report["results"])
    return report


# ---------------------------------------------------------------------- text output
def _fmt(x, spec=".6g"):
    if x is None:
        return "n/a"
    if isinstance(x, str):
        return x
    if isinstance(x, float) and math.isnan(x):
        return "n/a"
    return format(x, spec)


def _print_header(path, rep, meta):
    h, c = rep["hessians"], rep["coherence"]
    print(f"rmt analyze {path}")
    loss = f", loss={meta.loss}" if meta is not None and meta.loss else ""
    print(f"  Hessians: {h['kind']}, n_retain={h['n_retain']}, n_forget={h['n_forget']}, "
          f"d={h['dim']}, span={h['span_dim']}, null space={h['null_dim']}, "
          f"gradients={'yes' if h['gradients'] else 'no'}{loss}")
    print(f"  convention: {rep['convention']}")
    print(f"  coherence: sigma={_fmt(c['sigma'])}  sigma_retain={_fmt(c['sigma_retain'])}  "
          f"sigma_forget={_fmt(c['sigma_forget'])}  sigma_cross={_fmt(c['sigma_cross'])}")
    if "default_eta" in rep:
        print(f"  (eta defaulted to {rep['default_eta']})")
    print(f"  {rep['combinations']} combination(s)", flush=True)


def _print_entry(e, total):
    s = e["schedule"]
    print(f"\n  [{e['index'] + 1}/{total}] eta={s['eta']:.6g} batch={s['batch']} "
          f"alpha={s['alpha']:g} sampling={s['sampling']} schedule={s['schedule']} "
          f"forget_batch={s['forget_batch']}")
    if "error" in e:
        print(f"    ERROR: {e['error']}", flush=True)
        return
    fc = e["forecast"]
    if fc["available"]:
        print(f"    FORECAST ({fc['steps']} steps): {fc['outcome'].upper()} -> {fc['verdict']} "
              f"[{fc['notion']}; {fc['reason']}]")
        c = fc.get("cost")
        if c is not None:
            sees = (f"escape direction sees {_fmt(c['escape_overlap_retain'], '.2f')} of the "
                    f"retain and {_fmt(c['escape_overlap_forget'], '.2f')} of the forget top "
                    "curvature")
            if fc["outcome"] == "escapes":  # second order means nothing after an escape
                print(f"    cost: escapes (beyond the second-order loss prediction); {sees}")
            else:
                print(f"    cost at the horizon (2nd order): forget loss "
                      f"{_fmt(c['forget_loss_rise'], '+.3g')}, retain loss "
                      f"{_fmt(c['retain_loss_rise'], '+.3g')}; {sees}")
    else:
        print(f"    forecast: {fc['reason']}")
    neutral = "  (neutral within the horizon)" if e["neutral_within_horizon"] else ""
    print(f"    rho(T) = {_fmt(e['rate'])}  ->  {e['verdict']}   [mean-square, "
          f"{e['rate_method']}]{neutral}")
    if "certificate" in e:
        ce = e["certificate"]
        print(f"    certificate: {ce['reason']}" if ce["available"] else
              f"    certificate: none ({ce['reason']})")
    ly = e["lyapunov"]
    if ly["available"]:
        print(f"    Lyapunov exponent (almost-sure) = {_fmt(ly['exponent'])} +/- "
              f"{_fmt(ly['stderr'], '.2g')}  ->  {ly['verdict']}")
    else:
        print(f"    Lyapunov: {ly['reason']}")
    if e["notions"]["disagree"]:
        print(f"    ! {e['notions']['note']}")
    crit = e["critical"]
    eta_s = _fmt(crit["eta"]) + (" (no eta > 0 is stable)" if crit["eta"] == 0 else "")
    parts = [f"critical eta* = {eta_s}"]
    if "alpha" in crit:
        a = crit["alpha"]
        parts.append("alpha* = " + ("none (stable for every alpha)" if a is None else _fmt(a)
                                    + (" (unstable for every alpha > 0)" if a == 0 else "")))
    b = crit["batch"]
    parts.append("B* = " + ("none (unstable at every batch size)" if b is None else _fmt(b)))
    print("    " + ", ".join(parts))
    th = e["theorems"]
    if not th["available"]:
        print(f"    theorems: {th['reason']}")
    else:
        c = th["counts"]
        print(f"    theorems: {c['applies']} apply, {c['held']} held, {c['failed']} FAILED"
              + (f", {c['errors']} errors" if c["errors"] else ""))
        for row in th["checks"]:
            tag = f"[{row.get('status', '')}]"
            if "error" in row:
                print(f"      {row['name']} {tag}: error {row['error']}")
            elif row["applies"]:
                held = "held" if row["held"] else "FAILED"
                print(f"      {row['name']} {tag}: applies, {held} ({row['conclusion']}); "
                      f"threshold={_fmt(row['threshold'])} tightness={_fmt(row['tightness'])}")
            else:
                print(f"      {row['name']} {tag}: does not apply: {row['reason']}")
    for n in e["notes"]:
        print(f"    note: {n}")
    print(f"    ({e['seconds']:.2f} s)", flush=True)


# ---------------------------------------------------------------------- the command
def cmd_analyze(args) -> int:
    try:
        hs, meta = load_npz(args.file)
        plan = plan_analysis(
            hs, etas=args.eta, batches=args.batch, alphas=args.alpha, samplings=args.sampling,
            schedules=args.schedule, forget_batch=args.forget_batch,
            lyapunov=not args.no_lyapunov, lyapunov_steps=args.lyapunov_steps,
            replicas=args.replicas, seed=args.seed, steps=args.steps,
            forecast=not args.no_forecast, forecast_replicas=args.forecast_replicas,
            theorems=not args.no_theorems, time_budget=args.time_budget,
            certify=args.certify, cli=True)
    except (ValueError, TypeError) as exc:
        return _error("analyze", exc)
    rep = _report_header(plan)
    rep["file"] = str(args.file)
    rep["input"] = {"format_version": meta.format_version, "loss": meta.loss,
                    "layout": meta.layout, "keys": list(meta.keys)}
    total = len(plan.dynamics)

    def emit_line(obj):
        print(json.dumps(_json_safe(obj), allow_nan=False), flush=True)

    if args.jsonl:
        emit_line({"type": "header", **rep})
        on_entry = lambda e: emit_line({"type": "result", **e})  # noqa: E731
    elif args.json:
        on_entry = None
    else:
        _print_header(args.file, rep, meta)
        on_entry = lambda e: _print_entry(e, total)  # noqa: E731
    results = []

    def collect(e):
        results.append(e)
        if on_entry is not None:
            on_entry(e)

    interrupted = False
    try:
        _run(plan, collect)
    except KeyboardInterrupt:
        interrupted = True
    failed = [e for e in results if "error" in e]
    rep["results"] = results
    rep["complete"] = not failed and not interrupted and len(results) == total
    if interrupted:
        rep["interrupted"] = True
    if args.jsonl:
        emit_line({"type": "summary", "complete": rep["complete"], "finished": len(results),
                   "combinations": total, "errors": len(failed), "interrupted": interrupted})
    elif args.json:
        print(json.dumps(_json_safe(rep), indent=2, allow_nan=False), flush=True)
    if interrupted:
        print(f"rmt analyze: interrupted after {len(results)} of {total} combination(s); the "
              "finished ones are reported above", file=sys.stderr)
        return 130
    if failed:
        print(f"rmt analyze: error: {len(failed)} of {total} combination(s) failed "
              f"(first: {_one_line_str(failed[0]['error'])}); the others are reported",
              file=sys.stderr)
        return EXIT_PARTIAL
    return 0


def _one_line_str(text):
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())


if __name__ == "__main__":  # pragma: no cover
    from .cli import main as _cli_main

    sys.exit(_cli_main())
