"""``rmt cnn`` — closed-form vs sampled coherence and escape heatmaps of the CNN (contract §6).

    rmt cnn coherence --n N --d D --snr S [--m M] [--state init|trained] [--seed K] [--json]
    rmt cnn heatmap --axes snr,alpha|snr,batch [--grid G] [--seed K] [--out DIR] [--json]

``--out`` defaults to ``rmt-output/cnn`` (the project's output folder).

JSON of ``coherence``: ``sigma_closed_form`` and ``sigma_sampled`` (union R ∪ F), the *sampled*
``sigma_retain``, ``sigma_forget``, ``sigma_cross`` (mean over ``--replicates`` networks), their
closed forms under ``closed_form``, ``snr``, ``state`` and the inputs. JSON of ``heatmap``:
``agreement``, ``cells``, the grid values (``snr`` and ``alpha`` or ``batch``), and more
(:meth:`simulations.cnn.heatmap.HeatmapResult.to_dict`). Convention:
:data:`rmt.verdict.SIGN_CONVENTION`.

Errors (bad values, an ``--out`` that is a file or not writable) are raised as ``ValueError`` /
``TypeError`` before any computation or output and reported by :func:`simulations.cli.main` as one
line ``rmt cnn <subcommand>: error: ...`` with exit status 2.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from rmt.verdict import SIGN_CONVENTION_SHORT


def _num(x):
    x = float(x)
    return x if math.isfinite(x) else None


def _emit(args, payload, lines) -> None:
    """Print ``payload`` as JSON with ``--json``, else the human-readable ``lines``."""
    print(json.dumps(payload, indent=2) if args.json else "\n".join(lines))


def _coherence(args):
    from .closed_form import closed_form_coherence, sampled_coherence

    _check_counts(args, {"n": 2, "d": 2, "m": 1, "replicates": 1, "seed": 0, "n_forget": 0})

    n_forget = args.n_forget if args.n_forget is not None else max(1, args.n // 10)
    kw = dict(sigma_p=args.sigma_p, m=args.m, sigma0=args.sigma0, state=args.state,
              n_forget=n_forget, forget=args.forget)
    cf = closed_form_coherence(args.n, args.d, args.snr, **kw)
    sm = sampled_coherence(args.n, args.d, args.snr, seeds=args.replicates, seed=args.seed, **kw)
    out = {
        "sigma_closed_form": cf.sigma,
        "sigma_sampled": sm.sigma,
        "sigma_retain": sm.sigma_retain,
        "sigma_forget": _num(sm.sigma_forget),
        "sigma_cross": _num(sm.sigma_cross),
        "closed_form": {"sigma": cf.sigma, "sigma_retain": cf.sigma_retain,
                        "sigma_forget": _num(cf.sigma_forget), "sigma_cross": _num(cf.sigma_cross)},
        "relative_error": cf.sigma / sm.sigma - 1.0,
        "snr": args.snr,
        "state": args.state,
        "n": args.n, "d": args.d, "m": args.m, "sigma_p": args.sigma_p, "sigma0": args.sigma0,
        "n_forget": n_forget, "forget": args.forget, "seed": args.seed,
        "replicates": args.replicates,
        "train_converged": sm.train_converged if args.state == "trained" else None,
    }
    _emit(args, out, [
        f"CNN coherence at {args.state} (n={args.n}, d={args.d}, m={args.m}, SNR={args.snr:g})",
        f"  sigma (union)   closed form {cf.sigma:9.4f}   sampled {sm.sigma:9.4f}   "
        f"({100 * out['relative_error']:+.1f}%)",
        *(f"  sigma_{k:<7}   closed form {getattr(cf, 'sigma_' + k):9.4f}   "
          f"sampled {getattr(sm, 'sigma_' + k):9.4f}" for k in ("retain", "forget", "cross")),
        "  (sigma ≈ 1: orthogonal curvature, easy to forget; ≈ n/2: class-aligned, resists)",
    ])
    return 0


def _heatmap(args):
    from .heatmap import HeatmapResult, heatmap, plot_heatmap

    _check_counts(args, {"grid": 2, "n": 2, "d": 2, "m": 1, "steps": 1, "replicas": 1, "seed": 0,
                         "batch": 1})
    if args.eta_scale is not None and not (math.isfinite(args.eta_scale) and args.eta_scale > 0):
        raise ValueError(f"--eta-scale must be a positive number, got {args.eta_scale}")
    if args.alpha is not None and not 0.0 <= args.alpha <= 1.0:
        raise ValueError(f"--alpha must be in [0, 1], got {args.alpha}")
    _check_out_dir(args.out)

    kw = {}
    if args.eta_scale is not None:
        kw["eta_scale"] = args.eta_scale
    elif args.axes == "snr,alpha":
        kw["eta_scale"] = 0.5
    res = HeatmapResult(heatmap(args.axes, grid=args.grid, seed=args.seed, n=args.n, d=args.d,
                                m=args.m, steps=args.steps, replicas=args.replicas, **kw,
                                **_axis_defaults(args)))
    out_dir = args.out
    stem = os.path.join(out_dir, f"cnn_heatmap_{args.axes.replace(',', '_')}")
    plot_heatmap(res, stem + ".png")
    payload = res.to_dict()
    payload["figure"] = stem + ".png"
    with open(stem + ".json", "w") as fh:
        json.dump(payload, fh, indent=2)
    _emit(args, payload, [
        f"CNN escape heatmap over ({args.axes}) — {res.rate.size} cells in {res.seconds:.1f} s",
        f"  agreement with the linear frontier rho(T) = {res.rate_threshold:.4f}: "
        f"{res.agreement:.3f} over {int(res.counted.sum())} cells >= 1 cell from it",
        f"  agreement with the asymptotic frontier rho(T) = 1: {res.agreement_asymptotic:.3f}",
        f"  figure: {stem}.png   data: {stem}.json",
        f"  convention: {SIGN_CONVENTION_SHORT}",
    ])
    return 0


def _axis_defaults(args):
    kw = {}
    if args.axes == "snr,alpha":
        kw["batch"] = args.batch if args.batch is not None else 20
        kw["alpha_range"] = (0.0, 0.3)
    else:
        kw["alpha"] = args.alpha if args.alpha is not None else 0.05
    return kw


def _check_out_dir(path) -> None:
    """Create the folder ``path`` or fail with a ValueError naming ``--out``.

    Done before any computation, so a bad ``--out`` costs nothing (at most an empty folder is
    left behind if the computation fails later).
    """
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise ValueError(f"--out {str(path)!r} exists and is not a directory")
    parent = p
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ValueError(f"--out {str(path)!r}: {str(parent)!r} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"--out {str(path)!r}: {str(parent)!r} is not writable")
    try:  # (root passes os.access everywhere: creating the folder is the real test)
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"--out {str(path)!r}: cannot create the folder ({exc.strerror})") from None


def _check_counts(args, minimums) -> None:
    """``--option`` names in the messages (the library would name its own parameters)."""
    for dest, minimum in minimums.items():
        value = getattr(args, dest)
        if value is not None and value < minimum:
            flag = "--" + dest.replace("_", "-")
            raise ValueError(f"{flag} must be >= {minimum}, got {value}")


def register(subparsers):
    """Add ``rmt cnn coherence`` and ``rmt cnn heatmap`` (each sets ``func``, returns an exit code)."""
    p = subparsers.add_parser(
        "cnn", help="two-layer ReLU CNN under signal-plus-noise: coherence and escape heatmaps",
        description=f"Two-layer ReLU CNN (docs/contract.md §6). Convention: {SIGN_CONVENTION_SHORT}.")
    sub = p.add_subparsers(dest="cnn_command", metavar="SUBCOMMAND")
    sub.required = True  # "rmt cnn" alone is a usage error (one line, exit 2)

    c = sub.add_parser("coherence", help="closed-form vs sampled coherence of per-sample Hessians")
    c.add_argument("--n", type=int, required=True, help="number of samples (>= 2)")
    c.add_argument("--d", type=int, required=True, help="patch dimension (>= 2)")
    c.add_argument("--snr", type=float, required=True, help="SNR = |mu| / (sigma_p sqrt(d)) > 0")
    c.add_argument("--m", type=int, default=20, help="filters per class (default 20)")
    c.add_argument("--state", choices=("init", "trained"), default="init")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--sigma-p", dest="sigma_p", type=float, default=1.0)
    c.add_argument("--sigma0", type=float, default=0.01, help="init scale (default 0.01)")
    c.add_argument("--n-forget", dest="n_forget", type=int, default=None,
                   help="random forget-set size (default max(1, n//10))")
    c.add_argument("--forget", choices=("random", "class"), default="random")
    c.add_argument("--replicates", type=int, default=3, help="sampled networks averaged (default 3)")
    c.add_argument("--json", action="store_true", help="print a JSON object")
    c.set_defaults(func=_coherence)

    h = sub.add_parser("heatmap", help="escape of nonlinear unlearning vs (SNR, alpha) or (SNR, B)")
    h.add_argument("--axes", choices=("snr,alpha", "snr,batch"), required=True)
    h.add_argument("--grid", type=int, default=8, help="cells per axis (default 8)")
    h.add_argument("--seed", type=int, default=0)
    h.add_argument("--out", default="rmt-output/cnn",
                   help="output directory (default rmt-output/cnn)")
    h.add_argument("--n", type=int, default=100)
    h.add_argument("--d", type=int, default=200)
    h.add_argument("--m", type=int, default=20)
    h.add_argument("--steps", type=int, default=400, help="unlearning steps per run (default 400)")
    h.add_argument("--replicas", type=int, default=3, help="runs per cell, majority vote (default 3)")
    h.add_argument("--eta-scale", dest="eta_scale", type=float, default=None,
                   help="eta = eta_scale / lambda_max(mean retain Hessian) "
                        "(default 0.5 for snr,alpha and 1.0 for snr,batch)")
    h.add_argument("--batch", type=int, default=None, help="fixed B of the (snr,alpha) map (20)")
    h.add_argument("--alpha", type=float, default=None, help="fixed alpha of the (snr,batch) map (0.05)")
    h.add_argument("--json", action="store_true", help="print the JSON result")
    h.set_defaults(func=_heatmap)
    return p
