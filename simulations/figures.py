"""Figures and tables for the reproduction report (matplotlib, Agg backend, colour-blind-safe
colours; Markdown tables).

Every phase diagram uses the same legend convention, :data:`LEGEND_DIVERGES` /
:data:`LEGEND_CONVERGES`, the short form of :data:`rmt.verdict.SIGN_CONVENTION`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib import patheffects  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from rmt.verdict import FORGETS, RESISTS  # noqa: E402

# Okabe–Ito palette (colour-blind safe)
OKABE_ITO = {
    "orange": "#E69F00",
    "sky": "#56B4E9",
    "green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "purple": "#CC79A7",
    "black": "#000000",
}
#: converges (resists) → blue, diverges (forgets) → orange
VERDICT_CMAP = ListedColormap([OKABE_ITO["sky"], OKABE_ITO["orange"]])


def _legend(verdict: str) -> str:
    """``"diverges (forgets)"`` → ``"diverges = forgets"`` (legend wording of rmt.verdict)."""
    word, meaning = verdict.rstrip(")").split(" (")
    return f"{word} = {meaning}"


#: legend labels of the two verdicts, derived from :mod:`rmt.verdict`
LEGEND_CONVERGES = _legend(RESISTS)
LEGEND_DIVERGES = _legend(FORGETS)

__all__ = ["phase_diagram", "step_frontier", "md_table", "HALO", "save", "OKABE_ITO",
           "VERDICT_CMAP", "LEGEND_CONVERGES", "LEGEND_DIVERGES"]


def _edges(v):
    """Cell edges around the centres ``v`` (midpoints; the ends mirrored)."""
    v = np.asarray(v, dtype=float)
    if v.size == 1:
        return np.array([v[0] - 0.5, v[0] + 0.5])
    mid = 0.5 * (v[1:] + v[:-1])
    return np.concatenate([[2 * v[0] - mid[0]], mid, [2 * v[-1] - mid[-1]]])


def step_frontier(rows, boundary):
    """Polyline of an exact frontier on an integer lattice: one vertical step per row.

    ``rows``: the row centres (e.g. every σ); ``boundary[i]``: the x-coordinate of the frontier in
    row i (e.g. B*(σ_i) − ½, between the last diverging and the first stable batch). Each row's
    step spans the row's cell (edges at the midpoints between rows), so the line follows cell
    edges exactly. Returns (x, y) vertex arrays.
    """
    e = _edges(rows)
    b = np.asarray(boundary, dtype=float)
    x = np.repeat(b, 2)
    y = np.column_stack([e[:-1], e[1:]]).ravel()
    return x, y


#: Readable on every cell colour: a white halo around dark markers and lines.
HALO = [patheffects.withStroke(linewidth=3, foreground="white")]


def phase_diagram(ax, x, y, diverges, *, frontier=None, disagree=None, curves=(), xlabel="",
                  ylabel="", title=""):
    """Verdict map over (x, y) with the exact frontier and optional theorem curves.

    ``diverges``: (len(y), len(x)) array of 0/1 (NaN = not computed). ``frontier``: (fx, fy)
    vertices of the *exact* frontier ρ(T) = 1 (e.g. :func:`step_frontier` of the critical batch
    per row) — never interpolated from the 0/1 map, which is why it is an argument. ``disagree``:
    mapping ``label -> (xs, ys, marker)`` of cells where another verdict differs (e.g. the
    published heuristic), drawn in black with a white halo so they read on both verdict colours.
    ``curves``: iterable of (x_values, y_values, label, style-dict). Cells are centred on the grid
    values (``pcolormesh(shading="nearest")``).
    """
    Z = np.ma.masked_invalid(np.asarray(diverges, dtype=float))
    mesh = ax.pcolormesh(x, y, Z, cmap=VERDICT_CMAP, vmin=0, vmax=1, shading="nearest")
    handles = [
        Patch(color=OKABE_ITO["sky"], label=LEGEND_CONVERGES),
        Patch(color=OKABE_ITO["orange"], label=LEGEND_DIVERGES),
    ]
    if frontier is not None:
        (line,) = ax.plot(*frontier, color=OKABE_ITO["black"], lw=1.3, zorder=4,
                          label="exact frontier ρ(T) = 1 (critical batch per σ)")
        handles.append(line)
    for cx, cy, label, style in curves:
        (line,) = ax.plot(cx, cy, label=label, **style)
        line.set_path_effects(HALO)
        handles.append(line)
    for label, (xs, ys, marker) in (disagree or {}).items():
        if len(xs):
            pts = ax.scatter(xs, ys, marker=marker, s=26, color=OKABE_ITO["black"], lw=1.3,
                             label=label, zorder=5, clip_on=False)
            pts.set_path_effects(HALO)
            handles.append(pts)
    edges = mesh.get_coordinates()  # the cell edges matplotlib chose: curves never widen the view
    ax.set_xlim(edges[..., 0].min(), edges[..., 0].max())
    ax.set_ylim(edges[..., 1].min(), edges[..., 1].max())
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    return handles


def save(fig, path):
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def md_table(rows: Sequence[Mapping], cols: Sequence[tuple[str, str]]) -> str:
    """A Markdown table: one column per ``(key, format)`` of ``cols`` (header: the key), one line
    per row; a missing value (None or NaN) is shown as "–"."""
    def fmt(f, v):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return "–"
        return f.format(v)

    head = "| " + " | ".join(c for c, _ in cols) + " |\n|" + "|".join("---" for _ in cols) + "|\n"
    return head + "".join("| " + " | ".join(fmt(f, r[c]) for c, f in cols) + " |\n" for r in rows)
