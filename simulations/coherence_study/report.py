"""Analysis, figure and page of the coherence study — every number from the results JSON.

:func:`analyse` turns the unit rows into rank correlations with bootstrap intervals (per
(data set × model), per model family pooled over data sets, and pooled over everything);
:func:`write_page` renders ``docs/coherence_study.md`` from the results dict alone (the JSON
``OUT/coherence_study/coherence_study.json``), so a page regenerates from a finished run::

    python -m simulations.coherence_study OUT/coherence_study/coherence_study.json \\
        --page docs/coherence_study.md --figure docs/img/coherence_study.png

**Verdicts** (paper's direction: a predictor whose *lower* value should mean *easier*
forgetting, e.g. σ_F, has expected sign −1 against the escape fraction): "holds" when the 95 %
bootstrap interval of Spearman's ρ lies entirely on the expected side of 0, "reversed" when it
lies entirely on the other side, "inconclusive" when it contains 0, "no variation" when the
predictor or the outcome is constant over the group's units (ρ undefined).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from .predictors import BOOTSTRAP, bootstrap_spearman, pooled_spearman

__all__ = ["PREDICTORS", "OUTCOMES", "analyse", "verdict", "write_page", "page", "figure",
           "report_section", "main"]

#: (key, label, expected sign against the escape fraction — None when no claim is tested)
PREDICTORS = (
    ("sigma_f", "σ_F", -1, "paper: lower forget coherence ⇒ easier forgetting"),
    ("sigma_cross", "σ_cross", -1, "paper: retain–forget alignment resists unlearning"),
    ("sigma_r", "σ_R", None, ""),
    ("lam_ratio", "λ_max(H̄_F)/λ_max(H̄_R)", +1, "contract §5.4(b): sharper forget curvature "
                                                "escapes sooner"),
    ("fitted", "fitted fraction", None, ""),
    ("loo_margin", "LOO margin", -1, "paper: memorised (low-margin) samples are easier to forget"),
    ("alpha_star", "exact α*", -1, "toolkit: a smaller critical α ⇒ escapes at more grid α"),
    ("horizon_alpha_star", "horizon α*", -1, "toolkit: the same at the finite horizon"),
)
#: (key, label); the first is the main outcome
OUTCOMES = (
    ("escape", "escape fraction"),
    ("reach", "reach log₁₀(max‖w−w*‖/R)"),
    ("forget_rise", "forget-loss rise"),
    ("retain_damage", "retain damage"),
)
_LABEL = {k: lab for k, lab, *_ in PREDICTORS} | dict(OUTCOMES)


def verdict(ci: dict, sign: int | None) -> str:
    """"holds" / "reversed" / "inconclusive" / "no variation" (module docstring); "—" without
    an expected sign."""
    if not math.isfinite(ci.get("rho", math.nan)):
        return "no variation"
    if sign is None:
        return "—"
    lo, hi = ci["lo"], ci["hi"]
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "inconclusive"
    if (sign < 0 and hi < 0) or (sign > 0 and lo > 0):
        return "holds"
    if (sign < 0 and lo > 0) or (sign > 0 and hi < 0):
        return "reversed"
    return "inconclusive"


def _column(rows, key):
    return np.array([r[key] for r in rows], dtype=float)


def _nanstat(fn, x) -> float:
    """fn over the known values of x (NaN when none is known, without a warning)."""
    x = x[~np.isnan(x)]
    return float(fn(x)) if x.size else math.nan


def _known(x, y):
    """The units where neither value is missing (NaN: an α* past its time limit)."""
    ok = ~(np.isnan(x) | np.isnan(y))
    return x[ok], y[ok]


def analyse(rows: list[dict], *, resamples: int = BOOTSTRAP, seed: int = 0) -> dict:
    """Rank correlations of every predictor with every outcome (module docstring).

    ``rows``: unit dicts with ``task``, ``dataset``, ``model``, ``forget``, ``seed`` and the
    outputs of :func:`simulations.coherence_study.experiment.run_unit`. Returns {"groups":
    {task: {...}}, "models": {model: {...}}, "pooled": {...}, "kinds": ..., "best": ...}."""
    by_task: dict[str, list] = defaultdict(list)
    for r in rows:
        by_task[r["task"]].append(r)
    groups = {}
    for task, rs in by_task.items():
        g = {"dataset": rs[0]["dataset"], "model": rs[0]["model"], "units": len(rs),
             "d": int(rs[0]["d"]), "n": int(rs[0]["n"]), "n_forget": int(rs[0]["n_forget"]),
             "grad_norm_max": float(np.max(_column(rs, "grad_norm"))),
             "converged": float(np.mean(_column(rs, "converged"))),
             "fitted_train": float(np.mean(_column(rs, "fitted_train"))),
             "drift": float(np.mean(_column(rs, "drift"))),
             "timeouts": int(np.nansum(_column(rs, "timeouts"))) if "timeouts" in rs[0] else 0,
             "failures": int(np.nansum(_column(rs, "failures"))) if "failures" in rs[0] else 0,
             "means": {k: _nanstat(np.nanmean, _column(rs, k))
                       for k in [p[0] for p in PREDICTORS] + [o[0] for o in OUTCOMES]},
             "corr": {}}
        for out, _ in OUTCOMES:
            y = _column(rs, out)
            g["corr"][out] = {}
            for key, _, sign, _ in PREDICTORS:
                ci = bootstrap_spearman(*_known(_column(rs, key), y), resamples=resamples,
                                        seed=seed)
                ci["verdict"] = verdict(ci, sign)
                g["corr"][out][key] = ci
        groups[task] = g

    def pool(tasks):
        res = {}
        for out, _ in OUTCOMES:
            res[out] = {}
            for key, _, sign, _ in PREDICTORS:
                ci = pooled_spearman([_known(_column(by_task[t], key), _column(by_task[t], out))
                                      for t in tasks], resamples=resamples, seed=seed)
                ci["verdict"] = verdict(ci, sign)
                res[out][key] = ci
        return res

    models = sorted({g["model"] for g in groups.values()}, key=_model_order)
    per_model = {m: pool([t for t, g in groups.items() if g["model"] == m]) for m in models}
    pooled = pool(list(groups))
    best = {}
    for out, _ in OUTCOMES:
        cand = [(abs(c["rho"]), k) for k, c in pooled[out].items() if math.isfinite(c["rho"])]
        best[out] = max(cand)[1] if cand else None
    kinds = {}
    for kind in sorted({r["forget"] for r in rows}, key=_kind_order):
        rs = [r for r in rows if r["forget"] == kind]
        kinds[kind] = {k: _nanstat(np.nanmedian, _column(rs, k))
                       for k in [p[0] for p in PREDICTORS] + [o[0] for o in OUTCOMES]}
    return {"groups": groups, "models": per_model, "pooled": pooled, "best": best,
            "kinds": kinds, "resamples": resamples, "bootstrap_seed": seed,
            "units": len(rows)}


def _model_order(m):
    from .models import MODELS

    return MODELS.index(m) if m in MODELS else len(MODELS)


def _kind_order(k):
    from .data import FORGET_KINDS

    return FORGET_KINDS.index(k) if k in FORGET_KINDS else len(FORGET_KINDS)


def _ci(c: dict, n: bool = True) -> str:
    if not math.isfinite(c.get("rho", math.nan)):
        return "– (constant)"
    iv = (f"[{c['lo']:+.2f}, {c['hi']:+.2f}]" if math.isfinite(c["lo"]) and math.isfinite(c["hi"])
          else "[no interval]")
    return f"{c['rho']:+.2f} {iv}" + (f", n = {c['n']}" if n else "")


def _fmt(x: float) -> str:
    if not math.isfinite(x):
        return str(x)
    return f"{x:.3g}"


def _alpha_zero(res: dict) -> str:
    """How often the exact α* is 0 and why (from the rows)."""
    rows = [r for r in res["rows"] if not math.isnan(r["alpha_star"])]
    zero = [r for r in rows if r["alpha_star"] == 0.0]
    oos = [r for r in zero if r["out_of_span"] > 0]
    models = sorted({r["model"] for r in zero}, key=_model_order)
    return (f"The exact α* is 0 in {len(zero)} of {len(rows)} units ({len(oos)} of them with "
            "forget curvature partly outside the retain span — `rmt.critical_alpha`'s exact "
            "out-of-span rule: ascent escapes along it for every α > 0), in the models "
            f"{', '.join(models) or 'none'}; where it is 0 for every unit of a group it cannot "
            "rank forget sets, and the finite-horizon α* takes over.")


def _this_run(res: dict) -> str:
    r = res.get("this_run")
    if not r:
        return ""
    return (f"; the run that finished the sweep took {r['wall_seconds']:.0f} s wall time on "
            f"{r['cpus']} cores, load average (1, 5, 15 min) {_load(r['load_start'])} at its "
            f"start and {_load(r['load_end'])} at its end (the machine is shared)")


def _load(v) -> str:
    return "(" + ", ".join(f"{x:.1f}" for x in v) + ")"


def _answer(res: dict) -> list[str]:
    """The empirical answer, in sentences with their evidence (page and report.md)."""
    A = res["analysis"]
    P = A["pooled"]["escape"]
    lines = []
    n_groups = P["sigma_f"].get("groups", 0)
    seeds = len(res["sizes"]["seeds"])
    lines.append(
        f"Evidence: {A['units']} units = {len(A['groups'])} (data set × model) groups × "
        f"{len(res['kinds'])} forget kinds × {seeds} seeds; every ρ is Spearman's rank "
        f"correlation across the (forget set, seed) units with a 95 % bootstrap interval "
        f"({A['resamples']} resamples, seed {A['bootstrap_seed']}); *pooled* ranks within each "
        "group and resamples within groups.")
    for key, claim in (("sigma_f", "lower coherence of the forget set's curvature (σ_F) makes "
                                   "forgetting easier"),
                       ("sigma_cross", "retain–forget coherence (σ_cross) resists unlearning")):
        c = P[key]
        v = c["verdict"]
        word = {"holds": "**holds** pooled", "reversed": "**is reversed** pooled",
                "inconclusive": "is **not supported** pooled (the interval contains 0)",
                "no variation": "cannot be tested (no variation)"}[v]
        per = defaultdict(list)
        for task, g in A["groups"].items():
            per[g["corr"]["escape"][key]["verdict"]].append(task)
        lines.append(
            f"The paper's claim that {claim} {word}: ρ({_LABEL[key]}, escape fraction) = "
            f"{_ci(c)} units in {n_groups} groups. Per group it holds in "
            f"{len(per['holds'])} ({', '.join(per['holds']) or 'none'}), is reversed in "
            f"{len(per['reversed'])} ({', '.join(per['reversed']) or 'none'}), inconclusive in "
            f"{len(per['inconclusive'])} and untestable (constant outcome or predictor) in "
            f"{len(per['no variation'])} of {len(A['groups'])}"
            + (f" ({', '.join(per['no variation'])})" if per["no variation"] else "") + ".")
    fam = []
    for key in ("sigma_f", "sigma_cross"):
        by = defaultdict(list)
        for m, res_m in A["models"].items():
            by[res_m["escape"][key]["verdict"]].append(f"{m} {res_m['escape'][key]['rho']:+.2f}"
                                                       if res_m["escape"][key]["verdict"]
                                                       != "no variation" else m)
        fam.append(f"the {_LABEL[key]} claim holds for {', '.join(by['holds']) or 'none'}, is "
                   f"reversed for {', '.join(by['reversed']) or 'none'} and inconclusive for "
                   f"{', '.join(by['inconclusive']) or 'none'}"
                   + (f" (untestable: {', '.join(by['no variation'])})"
                      if by["no variation"] else ""))
    lines.append("By model family (pooled over data sets, ρ with the escape fraction): "
                 + "; ".join(fam) + ".")
    b = A["best"]["escape"]
    if b is not None:
        order = sorted(((abs(c["rho"]), k) for k, c in P.items() if math.isfinite(c["rho"])),
                       reverse=True)
        none = [_LABEL[k] for k, c in P.items() if not math.isfinite(c["rho"])]
        lines.append(
            f"The predictor that orders forgettability best (largest |pooled ρ| with the escape "
            f"fraction) is **{_LABEL[b]}**: ρ = {_ci(P[b])}; ranking by |ρ|: "
            + ", ".join(f"{_LABEL[k]} {P[k]['rho']:+.2f}" for _, k in order)
            + (f"; untestable (constant in every group): {', '.join(none)}" if none else "")
            + ".")
    br = A["best"].get("reach")
    if br is not None:
        R = A["pooled"]["reach"]
        lines.append(
            f"On the graded outcome (reach, which does not saturate at 0 or 1) the best is "
            f"**{_LABEL[br]}**: ρ = {_ci(R[br])}; σ_F: {_ci(R['sigma_f'], False)}, "
            f"σ_cross: {_ci(R['sigma_cross'], False)}.")
    return lines


def page(res: dict, figure_path: str | None = None) -> str:
    """The Markdown page of a results dict (module docstring); ``figure_path`` relative to it."""
    A = res["analysis"]
    prov = res["provenance"]
    s = res["sizes"]
    mode = res["mode"]
    L = [f"<!-- generated from OUT/{res.get('json', 'coherence_study/coherence_study.json')} "
         "(OUT: the --out folder of rmt reproduce) by simulations.coherence_study.report."
         "write_page — edit the generator, not this page -->",
         "", "# Does coherence order forgettability? A study across real data sets and models", "",
         f"Produced by rmt {prov.get('rmt_version')} (commit {prov.get('commit')}), Python "
         f"{prov.get('python')}, {prov.get('created_utc')}; `rmt reproduce --only "
         f"coherence-study{' --quick' if mode == 'quick' else ''}` ({mode} resolution), sweep "
         f"seed {res['seed']}, bootstrap seed {A['bootstrap_seed']}; unit compute time summed "
         f"over the sweep {res.get('compute_seconds', math.nan):.0f} s "
         f"({res.get('processes', '?')})" + _this_run(res) + ".", "",
         "Convention: **diverges = forgets** — a unit *forgets* when the actual nonlinear "
         "unlearning run leaves the ball around w*; the escape fraction is the share of runs "
         "that did.", "",
         "## The answer", ""]
    L += [f"* {x}" for x in _answer(res)]
    L += ["", "What this is and is not: an empirical statement about these data sets, models, "
          "forget sets and this grid of (η, B, α), with its sampling uncertainty; the leave-one-"
          "out margin is the tangent-kernel approximation, not refits; the intervals do not "
          "correct for testing many predictors.", ""]
    if figure_path:
        L += [f"![coherence study]({figure_path})", "",
              "Left: pooled Spearman ρ of each predictor with the escape fraction and with the "
              "reach (bars: 95 % bootstrap intervals); the paper's expected sign is marked. "
              "Right: ρ(σ_F, escape fraction) per data set × model (colour; printed value; "
              "*: the 95 % interval excludes 0; const.: the outcome or σ_F did not vary; blank: "
              "not run).", ""]
    L += ["## Protocol", "",
          f"* **Data** ({len(res['datasets'])}): " + "; ".join(
              f"`{k}` — {v}" for k, v in res["datasets"].items()) + f". At most "
          f"{s['n_train']} training samples per task, {s['n_forget']} labels corrupted before "
          "training (the *relabelled* forget set); protocol in "
          "`simulations/coherence_study/data.py`.",
          "* **Models**: " + "; ".join(f"`{k}` — {v}" for k, v in res["models"].items())
          + ". Trained by full-batch L-BFGS to a gradient norm ≤ "
          f"{res['train_tol']:g} (reached norms in the table below).",
          f"* **Forget sets** ({s['n_forget']} samples): random; class (one class); hard "
          "(largest tangent-kernel leave-one-out loss); relabelled (the corrupted labels). "
          f"Seeds {s['seeds']}: each seed redraws the training subsample, the corrupted labels, "
          "the initialisation, the random forget sets and the batches.",
          f"* **Outcome**: `rmt.models.unlearn` (summed schedule, batches without replacement) on "
          f"η ∈ {s['eta']} × 2/λ_max(H̄_R), α ∈ {s['alpha']}, B ∈ {s['batch']}, {s['runs']} runs "
          f"each, {s['steps']} steps. Ball as in `simulations/realdata.py`: with drift (non-"
          "interpolating minimum) δ₀ = 0 and R = 0.25‖w*‖, else δ₀ = 10⁻³·u on the Hessian span "
          "and R = 10⁻² — escape fraction (main), reach = median log₁₀(max_k‖w_k − w*‖/R), "
          "forget-loss rise and retain damage (medians at the horizon).",
          "* **Predictors**: " + "; ".join(
              f"{lab}" + (f" (expected sign {'+' if sg > 0 else '−'}: {why})" if sg else "")
              for _, lab, sg, why in PREDICTORS)
          + ". Exact α* = `rmt.critical_alpha` averaged over the grid's (η, B) (stable for "
          "every α counts as 1); horizon α* = `rmt.horizon_critical(..., 'alpha')` at the "
          "middle (η, α) and first B, with the runs' start and ball. " + _alpha_zero(res),
          ""]
    L += ["## Pooled over every (data set × model)", "",
          "Spearman ρ [95 % bootstrap interval] of each predictor with each outcome; n = units.",
          "", "| predictor | " + " | ".join(lab for _, lab in OUTCOMES) + " | paper/toolkit "
          "direction on escape |", "|---" * (len(OUTCOMES) + 2) + "|"]
    for key, lab, sign, _ in PREDICTORS:
        cells = [_ci(A["pooled"][o][key]) for o, _ in OUTCOMES]
        d = A["pooled"]["escape"][key]["verdict"]
        L.append(f"| {lab} | " + " | ".join(cells) + f" | {d} |")
    L += ["", "## Per model family (pooled over data sets)", "",
          "ρ with the escape fraction [95 % interval], n units.", "",
          "| model | " + " | ".join(lab for _, lab, *_ in PREDICTORS) + " |",
          "|---" * (len(PREDICTORS) + 1) + "|"]
    for m, res_m in A["models"].items():
        L.append(f"| {m} | " + " | ".join(_ci(res_m["escape"][k]) for k, *_ in PREDICTORS)
                 + " |")
    L += ["", "## Per data set × model", "",
          "Training: d parameters, largest reached gradient norm, fraction of seeds at the "
          "tolerance, fraction of training samples fitted, drift (non-interpolating minimum). "
          "Outcome: mean escape fraction. ρ with the escape fraction [95 % interval] over the "
          "group's units (n each) and the verdict for the paper's two coherence claims.", "",
          "| data set | model | d | grad norm | at tol | fitted | drift | n | escape | "
          "ρ(σ_F) | σ_F claim | ρ(σ_cross) | σ_cross claim | ρ(LOO margin) | ρ(horizon α*) |",
          "|---" * 15 + "|"]
    for task, g in A["groups"].items():
        c = g["corr"]["escape"]
        L.append(
            f"| {g['dataset']} | {g['model']} | {g['d']} | {g['grad_norm_max']:.1e} | "
            f"{g['converged']:.2f} | {g['fitted_train']:.2f} | {g['drift']:.0f} | "
            f"{g['units']} | {g['means']['escape']:.2f} | {_ci(c['sigma_f'], False)} | "
            f"{c['sigma_f']['verdict']} | {_ci(c['sigma_cross'], False)} | "
            f"{c['sigma_cross']['verdict']} | {_ci(c['loo_margin'], False)} | "
            f"{_ci(c['horizon_alpha_star'], False)} |")
    late = {t: g.get("timeouts", 0) for t, g in A["groups"].items() if g.get("timeouts", 0)}
    bad = {t: g.get("failures", 0) for t, g in A["groups"].items() if g.get("failures", 0)}
    L += ["", "Missing α* values (the unit is left out of that predictor's correlations): past "
          f"the time limit ({res['sizes'].get('time_limit', '?')} s per computation) — "
          + (", ".join(f"{t} {k}" for t, k in late.items()) if late else "none")
          + "; refused by or failed in the toolkit (ValueError, RuntimeError, OverflowError) — "
          + (", ".join(f"{t} {k}" for t, k in bad.items()) if bad else "none") + "."]
    L += ["", "## Forget kinds", "",
          "Medians over every unit of a kind (all data sets and models: scales differ between "
          "models, so read the order, not the values).", "",
          "| forget kind | " + " | ".join(_LABEL[k] for k in ("escape", "reach", "sigma_f",
                                                             "sigma_cross", "loo_margin",
                                                             "fitted", "horizon_alpha_star"))
          + " |", "|---" * 8 + "|"]
    for kind, v in A["kinds"].items():
        L.append(f"| {kind} | " + " | ".join(_fmt(v[k]) for k in (
            "escape", "reach", "sigma_f", "sigma_cross", "loo_margin", "fitted",
            "horizon_alpha_star")) + " |")
    L += ["", "## Regenerate, resume, extend", "",
          "* `rmt reproduce --only coherence-study --quick` (≤ 10 min on 2 cores) or without "
          "`--quick` (the full resolution; `--dask-local N` or `--scheduler ADDRESS` runs it on "
          "Dask). Every unit is a sweep cell in `OUT/sweeps/coherence_study`, every trained "
          "model is cached in `OUT/coherence_study/models`: a killed run resumes.",
          "* This page: `python -m simulations.coherence_study "
          "OUT/coherence_study/coherence_study.json --page docs/coherence_study.md --figure "
          "docs/img/coherence_study.png`.",
          "* Your own data set: `simulations.coherence_study.ArrayDataset` and `run_study` — see "
          "the section \"Add your own data set to the coherence study\" of "
          "`notebooks/02_coherence_snr_memorisation.ipynb`.", ""]
    return "\n".join(L)


def figure(res: dict, path: str | Path) -> Path:
    """Pooled ρ per predictor (escape and reach) and the per-group ρ(σ_F, escape) grid."""
    from ..figures import OKABE_ITO, plt, save

    A = res["analysis"]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(13.5, 5.2),
                                  gridspec_kw={"width_ratios": [1.05, 1.0]})
    keys = [k for k, *_ in PREDICTORS]
    ypos = np.arange(len(keys))[::-1]
    for off, (out, lab), col, mk in ((0.16, OUTCOMES[0], OKABE_ITO["vermillion"], "o"),
                                     (-0.16, OUTCOMES[1], OKABE_ITO["blue"], "s")):
        P = A["pooled"][out]
        for y, k in zip(ypos, keys):
            c = P[k]
            if not math.isfinite(c["rho"]):
                continue
            lo = c["lo"] if math.isfinite(c["lo"]) else c["rho"]
            hi = c["hi"] if math.isfinite(c["hi"]) else c["rho"]
            ax.plot([lo, hi], [y + off] * 2, color=col, lw=2)
            ax.plot(c["rho"], y + off, mk, color=col, ms=6,
                    label=lab if k == keys[0] or (k == keys[1] and not math.isfinite(
                        P[keys[0]]["rho"])) else None)
    for y, (k, lab, sign, _) in zip(ypos, PREDICTORS):
        if sign is not None:
            ax.annotate("expected " + ("−" if sign < 0 else "+"), (1.0, y), xytext=(4, -3),
                        textcoords="offset points", fontsize=7, color="0.35",
                        annotation_clip=False)
    ax.axvline(0, color="0.5", lw=0.8)
    ax.set_yticks(ypos, [lab for _, lab, *_ in PREDICTORS])
    ax.set_xlim(-1, 1)
    ax.set_xlabel("pooled Spearman ρ with the outcome (95 % bootstrap interval)")
    ax.set_title(f"pooled over {len(A['groups'])} (data set × model), n = {A['units']} units",
                 fontsize=9)
    ax.legend(fontsize=8, loc="lower left", bbox_to_anchor=(0.0, 1.06), ncol=2, frameon=False)

    groups = A["groups"]
    datasets = list(dict.fromkeys(g["dataset"] for g in groups.values()))
    models = sorted({g["model"] for g in groups.values()}, key=_model_order)
    Z = np.full((len(datasets), len(models)), np.nan)
    txt = {}
    for g in groups.values():
        i, j = datasets.index(g["dataset"]), models.index(g["model"])
        c = g["corr"]["escape"]["sigma_f"]
        if math.isfinite(c["rho"]):
            Z[i, j] = c["rho"]
            sig = c["verdict"] in ("holds", "reversed")
            txt[i, j] = f"{c['rho']:+.2f}" + ("*" if sig else "")
        else:
            txt[i, j] = "const."
    im = ax2.imshow(Z, cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
    for (i, j), t in txt.items():
        ax2.text(j, i, t, ha="center", va="center", fontsize=8)
    ax2.set_xticks(range(len(models)), models)
    ax2.set_yticks(range(len(datasets)), datasets)
    ax2.set_title("ρ(σ_F, escape fraction) per data set × model\n"
                  "(paper: < 0; *: 95 % interval excludes 0; const.: no variation; "
                  "blank: not run)", fontsize=9)
    cb = fig.colorbar(im, ax=ax2, fraction=0.046, pad=0.04)
    cb.set_label("Spearman ρ")
    fig.suptitle("Does coherence order forgettability? (diverges = forgets)", fontsize=11)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return save(fig, path)


def write_page(results: dict, path: str | Path, *, figure_path: str | Path | None = None
               ) -> Path:
    """Write :func:`page` to ``path`` (and the figure to ``figure_path``, linked relatively)."""
    path = Path(path)
    rel = None
    if figure_path is not None:
        figure(results, figure_path)
        import os

        rel = os.path.relpath(Path(figure_path).resolve(), path.resolve().parent)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page(results, rel))
    return path


def report_section(r: dict) -> list[str]:
    """The lines of the ``rmt reproduce`` report section (report.md) for this experiment."""
    lines = [f"![{f}]({f})" for f in r.get("figures", [])] + [""]
    lines += [f"* {x}" for x in r.get("answer", [])]
    lines += ["", f"Full tables: `{r.get('page', 'coherence_study/coherence_study.md')}` "
              "(the same generator writes `docs/coherence_study.md`).", ""]
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m simulations.coherence_study",
                                description="Regenerate the coherence-study page from its JSON.")
    p.add_argument("json", help="OUT/coherence_study/coherence_study.json")
    p.add_argument("--page", default="docs/coherence_study.md")
    p.add_argument("--figure", default="docs/img/coherence_study.png")
    a = p.parse_args(argv)
    res = json.loads(Path(a.json).read_text())
    print(write_page(res, a.page, figure_path=a.figure))
    return 0


if __name__ == "__main__":
    sys.exit(main())
