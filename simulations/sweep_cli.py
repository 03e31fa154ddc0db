"""``rmt sweep`` and ``rmt analyze`` (registered by :mod:`simulations.cli`).

Convention in every report: "diverges" = the iterates escape w* = the model **forgets**;
"converges" = the model **resists** unlearning.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

__all__ = ["register", "cmd_sweep", "cmd_analyze", "load_npz", "analyze", "NPZ_KEYS"]

#: Documented keys of an ``rmt analyze`` input file (retain_* required, forget_* optional; one
#: kind per set).
NPZ_KEYS = {
    "retain_grads": "(n_r, d) per-sample gradients g_i, H_i = g_i g_iᵀ (Gauss–Newton)",
    "forget_grads": "(n_f, d) per-sample gradients of the forget set",
    "retain_factors": "(n_r, d, k) factors F_i, H_i = F_i F_iᵀ",
    "forget_factors": "(n_f, d, k) factors of the forget set",
    "retain_hessians": "(n_r, d, d) dense symmetric PSD per-sample Hessians",
    "forget_hessians": "(n_f, d, d) dense per-sample Hessians of the forget set",
}
_KINDS = ("grads", "factors", "hessians")


def register(subparsers) -> None:
    """Add the ``sweep`` and ``analyze`` subcommands."""
    p = subparsers.add_parser(
        "sweep",
        help="run a resumable parameter sweep from a TOML/YAML config into a zarr store",
        description=(
            "Evaluate the quantities named in CONFIG on every cell of its grid and store a labelled "
            "xarray Dataset in STORE/result.zarr. Interrupt at any time and rerun the same command "
            "to finish: finished cells are never recomputed. Schema: docs/sweeps.md. "
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

    a = subparsers.add_parser(
        "analyze",
        help="coherence, rho(T), critical eta, Lyapunov and theorems for per-sample gradients/Hessians",
        description=(
            "Load per-sample curvature from an .npz file and report coherence (sigma, sigma_retain, "
            "sigma_forget, sigma_cross), the exact mean-square rate rho(T) with its verdict, the "
            "critical learning rate, the Lyapunov estimate and which encoded theorems apply and "
            "hold. Keys: " + "; ".join(f"{k} {v}" for k, v in NPZ_KEYS.items())
            + ". Convention: 'diverges' = forgets (escapes w*), 'converges' = resists unlearning. "
            "Several values per option analyse every combination."
        ),
    )
    a.add_argument("file", metavar="FILE.npz")
    a.add_argument("--eta", type=float, nargs="+",
                   help="learning rate(s) (default: 1/lambda_max of the mean retain Hessian)")
    a.add_argument("--batch", type=int, nargs="+", default=[1], help="retain batch size(s) (default 1)")
    a.add_argument("--alpha", type=float, nargs="+",
                   help="mixing weight(s) in [0, 1] (default: 0.1 with a forget set, else 0)")
    a.add_argument("--sampling", nargs="+", default=["bernoulli"],
                   choices=["bernoulli", "with_replacement", "without_replacement"])
    a.add_argument("--schedule", nargs="+", default=["summed"], choices=["summed", "alternating"])
    a.add_argument("--forget-batch", type=int, help="forget batch size (default: same as --batch)")
    a.add_argument("--lyapunov-steps", type=int, default=2000, help="Lyapunov steps (default 2000)")
    a.add_argument("--replicas", type=int, default=8, help="Lyapunov replicas (default 8)")
    a.add_argument("--seed", type=int, default=0, help="seed of the Lyapunov estimate (default 0)")
    a.add_argument("--no-lyapunov", action="store_true", help="skip the Monte Carlo estimate")
    a.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    a.set_defaults(func=cmd_analyze)


# ====================================================================== rmt sweep
def _error(cmd, msg) -> int:
    print(f"rmt {cmd}: error: {msg}", file=sys.stderr)
    return 2


def cmd_sweep(args) -> int:
    from .sweep import SweepError, load_config, run_config, sweep_status, validate_config

    try:
        raw = load_config(args.config)
        validate_config(raw)  # fail fast, before the store is touched
        if args.workers is not None and args.workers < 1:
            raise SweepError(f"--workers must be >= 1, got {args.workers}")
        if args.dask_local is not None and args.dask_local < 1:
            raise SweepError(f"--dask-local must be >= 1, got {args.dask_local}")
        opts = {}
        if args.serial:
            executor = "serial"
        elif args.dask_local is not None:
            executor, opts = "dask", {"dask_local": args.dask_local}
        elif args.scheduler is not None:
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
    except KeyboardInterrupt:
        print(f"rmt sweep: interrupted; finished cells are saved in {args.out} — rerun the same "
              "command to resume", file=sys.stderr)
        return 130
    total = int(np.prod([ds.sizes[d] for d in ds.dims]))
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
    """Build a HessianSet from an ``rmt analyze`` input file (keys: :data:`NPZ_KEYS`)."""
    from rmt.hessians import HessianSet

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{str(path)!r} does not exist")
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise ValueError(f"{str(path)!r} is not a readable .npz file: {exc}") from None
    with data:
        keys = set(data.files)
        unknown = sorted(keys - set(NPZ_KEYS))
        if unknown:
            raise ValueError(f"unknown key(s) {unknown} in {path.name}; documented keys: {sorted(NPZ_KEYS)}")
        arrays = {k: np.asarray(data[k]) for k in keys}
    found = {}
    for which in ("retain", "forget"):
        kinds = [k for k in _KINDS if f"{which}_{k}" in arrays]
        if len(kinds) > 1:
            raise ValueError(f"give one of {[f'{which}_{k}' for k in kinds]}, not several")
        if kinds:
            found[which] = (kinds[0], arrays[f"{which}_{kinds[0]}"])
    if "retain" not in found:
        raise ValueError(f"{path.name} has no retain set: give retain_grads, retain_factors or retain_hessians")
    expect = {"grads": 2, "factors": 3, "hessians": 3}
    for which, (kind, arr) in found.items():
        if arr.ndim != expect[kind]:
            raise ValueError(f"{which}_{kind} must have {expect[kind]} dimensions ({NPZ_KEYS[f'{which}_{kind}']}), got shape {arr.shape}")
    if any(kind == "hessians" for kind, _ in found.values()):
        dense = {}
        for which, (kind, arr) in found.items():
            if kind == "hessians":
                dense[which] = arr
            else:
                F = arr[:, :, None] if kind == "grads" else arr
                dense[which] = np.einsum("nak,nbk->nab", F, F)
        return HessianSet.from_dense(dense["retain"], dense.get("forget")), found
    return HessianSet.from_factors(found["retain"][1], found.get("forget", (None, None))[1]), found


def _lyapunov_fn():
    try:
        from .sweep import resolve_lyapunov

        return resolve_lyapunov(), None
    except Exception as exc:  # built by someone else; report as unavailable
        return None, f"rmt.lyapunov unavailable ({type(exc).__name__}: {exc})"


def _theorems():
    try:
        import theory

        fn = getattr(theory, "theorems", None)
        if fn is None:
            import importlib

            for mod in ("theory.theorems", "theory.bounds"):
                try:
                    m = importlib.import_module(mod)
                except ImportError:
                    continue
                fn = getattr(m, "theorems", None)
                if fn is not None:
                    break
        if fn is None:
            raise ImportError("theory.theorems() is not defined yet")
        return list(fn()), None
    except Exception as exc:
        return None, f"theory.theorems unavailable ({type(exc).__name__}: {exc})"


def _num(x):
    """JSON-safe number: NaN → None, ±inf → "inf"/"-inf"."""
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


def analyze(hs, *, etas=None, batches=(1,), alphas=None, samplings=("bernoulli",),
            schedules=("summed",), forget_batch=None, lyapunov=True, lyapunov_steps=2000,
            replicas=8, seed=0) -> dict:
    """Coherence, ρ(T), verdict, η*, Lyapunov and theorem checks for every schedule combination."""
    from rmt.coherence import coherence
    from rmt.meansquare import critical_eta, mean_square
    from rmt.schedule import Schedule

    coh = coherence(hs)
    report = {
        "convention": "diverges = forgets (escapes w*); converges = resists unlearning",
        "hessians": {
            "kind": hs.kind, "n_retain": hs.n_retain, "n_forget": hs.n_forget, "dim": hs.dim,
            "span_dim": hs.span_dim, "null_dim": hs.null_dim,
        },
        "coherence": {
            "sigma": _num(coh.sigma), "sigma_retain": _num(coh.sigma_retain),
            "sigma_forget": _num(coh.sigma_forget), "sigma_cross": _num(coh.sigma_cross),
        },
        "results": [],
    }
    if etas is None:
        lmax = float(np.linalg.eigvalsh(hs.reduction(True, False).mean("retain"))[-1])
        if not lmax > 0:
            raise ValueError("the mean retain Hessian is zero: give --eta explicitly")
        etas = [1.0 / lmax]
        report["default_eta"] = "1/lambda_max(mean retain Hessian)"
    if alphas is None:
        alphas = [0.1] if hs.has_forget else [0.0]
    lyap_fn, lyap_err = _lyapunov_fn() if lyapunov else (None, "skipped (--no-lyapunov)")
    thms, thm_err = _theorems()
    for eta, batch, alpha, sampling, sched in itertools.product(etas, batches, alphas, samplings, schedules):
        sch = Schedule(eta=eta, batch=batch, alpha=alpha, sampling=sampling, schedule=sched,
                       forget_batch=forget_batch)
        sch.validate_for(hs)
        ms = mean_square(hs, sch)
        entry = {
            "schedule": {"eta": eta, "batch": batch, "alpha": alpha, "sampling": sampling,
                         "schedule": sched, "forget_batch": sch.batch_forget},
            "rate": _num(ms.rate),
            "diverges": bool(ms.diverges),
            "verdict": ms.verdict,
            "rate_method": ms.method,
            "critical_eta": _num(critical_eta(hs, sch)),
        }
        if lyap_fn is not None:
            try:
                res = lyap_fn(hs, sch, steps=lyapunov_steps, replicas=replicas, seed=seed)
                entry["lyapunov"] = {
                    "available": True, "exponent": _num(res.exponent), "stderr": _num(res.stderr),
                    "steps": lyapunov_steps, "replicas": replicas, "seed": seed,
                    "note": "almost-sure rate; lambda_1 <= (1/2) log rho(T)",
                }
            except Exception as exc:
                entry["lyapunov"] = {"available": False, "reason": f"{type(exc).__name__}: {exc}"}
        else:
            entry["lyapunov"] = {"available": False, "reason": lyap_err}
        if thms is not None:
            rows = []
            for th in thms:
                row = {"name": str(getattr(th, "name", th)), "status": _num_or_str(getattr(th, "status", None)),
                       "conclusion": _num_or_str(getattr(th, "conclusion", None))}
                try:
                    chk = th.check(hs, sch)
                    row.update(applies=bool(chk.applies),
                               held=None if chk.held is None else bool(chk.held),
                               tightness=_num(getattr(chk, "tightness", None)),
                               threshold=_num(getattr(chk, "threshold", None)))
                except Exception as exc:
                    row.update(applies=None, held=None, error=f"{type(exc).__name__}: {exc}")
                rows.append(row)
            entry["theorems"] = {"available": True, "checks": rows}
        else:
            entry["theorems"] = {"available": False, "reason": thm_err}
        report["results"].append(entry)
    return report


def _json_safe(obj):
    """Recursively replace non-finite floats (JSON has none) and numpy scalars."""
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, (float, np.floating, np.integer, np.bool_)):
        return _num(obj)
    return obj


def _num_or_str(x):
    if x is None or isinstance(x, (str, bool, int, float)):
        return x if not isinstance(x, float) else _num(x)
    return str(x)


def _fmt(x, spec=".6g"):
    if x is None:
        return "n/a"
    if isinstance(x, str):
        return x
    return format(x, spec)


def _print_text(path, rep):
    h, c = rep["hessians"], rep["coherence"]
    print(f"rmt analyze {path}")
    print(f"  Hessians: {h['kind']}, n_retain={h['n_retain']}, n_forget={h['n_forget']}, d={h['dim']}, "
          f"span={h['span_dim']}, null space={h['null_dim']}")
    print(f"  convention: {rep['convention']}")
    print(f"  coherence: sigma={_fmt(c['sigma'])}  sigma_retain={_fmt(c['sigma_retain'])}  "
          f"sigma_forget={_fmt(c['sigma_forget'])}  sigma_cross={_fmt(c['sigma_cross'])}")
    if "default_eta" in rep:
        print(f"  (eta defaulted to {rep['default_eta']})")
    for e in rep["results"]:
        s = e["schedule"]
        print(f"\n  eta={s['eta']:.6g} batch={s['batch']} alpha={s['alpha']:g} sampling={s['sampling']} "
              f"schedule={s['schedule']} forget_batch={s['forget_batch']}")
        print(f"    rho(T) = {_fmt(e['rate'])}  ->  {e['verdict']}   [mean-square, {e['rate_method']}]")
        print(f"    critical eta* = {_fmt(e['critical_eta'])}")
        ly = e["lyapunov"]
        if ly["available"]:
            print(f"    Lyapunov exponent (almost-sure) = {_fmt(ly['exponent'])} +/- {_fmt(ly['stderr'])}")
        else:
            print(f"    Lyapunov: {ly['reason']}")
        th = e["theorems"]
        if not th["available"]:
            print(f"    theorems: {th['reason']}")
            continue
        print("    theorems:")
        for row in th["checks"]:
            if "error" in row:
                print(f"      {row['name']}: error {row['error']}")
                continue
            held = {True: "held", False: "FAILED", None: "-"}[row["held"]]
            print(f"      {row['name']}: applies={'yes' if row['applies'] else 'no'}  {held}"
                  f"  tightness={_fmt(row.get('tightness'))}  threshold={_fmt(row.get('threshold'))}")


#: ``rmt analyze`` option → (constraint table that owns it, parameter name in that table).
_ANALYZE_OPTIONS = {
    "eta": ("schedule", "eta"),
    "batch": ("schedule", "batch"),
    "alpha": ("schedule", "alpha"),
    "forget_batch": ("schedule", "forget_batch"),
    "lyapunov_steps": ("lyapunov", "steps"),
    "replicas": ("lyapunov", "replicas"),
    "seed": ("lyapunov", "seed"),
}


def _check_analyze_options(args):
    """Check the numeric options against the tables of Schedule and of the Lyapunov settings.

    The allowed ranges are looked up, never copied; messages name the option (``--eta must be >
    0, got -1.0``).
    """
    from rmt.schedule import Schedule
    from rmt.validation import validate_param

    from .sweep import LYAPUNOV_CONSTRAINTS

    tables = {"schedule": Schedule.parameter_constraints, "lyapunov": LYAPUNOV_CONSTRAINTS}
    for attr, (owner, param) in _ANALYZE_OPTIONS.items():
        values = getattr(args, attr)
        if values is None:  # not given: analyze() picks the documented default
            continue
        for v in values if isinstance(values, list) else [values]:
            validate_param("--" + attr.replace("_", "-"), v, tables[owner][param])


def cmd_analyze(args) -> int:
    try:
        hs, _ = load_npz(args.file)
        _check_analyze_options(args)
        rep = analyze(
            hs, etas=args.eta, batches=args.batch, alphas=args.alpha, samplings=args.sampling,
            schedules=args.schedule, forget_batch=args.forget_batch, lyapunov=not args.no_lyapunov,
            lyapunov_steps=args.lyapunov_steps, replicas=args.replicas, seed=args.seed,
        )
    except (ValueError, TypeError) as exc:
        return _error("analyze", exc)
    rep["file"] = str(args.file)
    if args.json:
        print(json.dumps(_json_safe(rep), indent=2, allow_nan=False))
    else:
        _print_text(args.file, rep)
    return 0


def main(argv=None) -> int:  # pragma: no cover - convenience for python -m
    parser = argparse.ArgumentParser(prog="rmt")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
