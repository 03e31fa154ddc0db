"""Figures for the reproduction report (matplotlib, Agg backend, colour-blind-safe colours).

Every phase diagram uses the same legend convention, :data:`LEGEND_DIVERGES` /
:data:`LEGEND_CONVERGES`, the short form of :data:`rmt.verdict.SIGN_CONVENTION`.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
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

__all__ = ["phase_diagram", "save", "OKABE_ITO", "VERDICT_CMAP", "LEGEND_CONVERGES",
           "LEGEND_DIVERGES"]


def phase_diagram(ax, x, y, diverges, *, disagree=None, curves=(), xlabel="", ylabel="", title=""):
    """Verdict map over (x, y) with the exact frontier and optional theorem curves.

    ``diverges``: (len(y), len(x)) array of 0/1 (NaN = not computed). ``disagree``: boolean array
    of the same shape marking cells where another verdict (e.g. the published heuristic) differs.
    ``curves``: iterable of (x_values, y_values, label, style-dict). Cells are centred on the
    grid values (``pcolormesh(shading="nearest")``: edges at the midpoints in data coordinates,
    so on a log-scaled axis only a geometric grid gets equal-width cells).
    """
    Z = np.ma.masked_invalid(np.asarray(diverges, dtype=float))
    mesh = ax.pcolormesh(x, y, Z, cmap=VERDICT_CMAP, vmin=0, vmax=1, shading="nearest")
    handles = [
        Patch(color=OKABE_ITO["sky"], label=LEGEND_CONVERGES),
        Patch(color=OKABE_ITO["orange"], label=LEGEND_DIVERGES),
    ]
    if np.nanmin(Z) < 0.5 < np.nanmax(Z) and len(x) > 1 and len(y) > 1:
        ax.contour(x, y, Z.filled(np.nan), levels=[0.5], colors=OKABE_ITO["black"], linewidths=1.5)
        handles.append(plt.Line2D([], [], color=OKABE_ITO["black"], lw=1.5, label="exact frontier ρ(T)=1"))
    for cx, cy, label, style in curves:
        (line,) = ax.plot(cx, cy, label=label, **style)
        handles.append(line)
    if disagree is not None and np.any(disagree):
        yy, xx = np.nonzero(disagree)
        pts = ax.scatter(np.asarray(x)[xx], np.asarray(y)[yy], marker="x", s=14,
                         color=OKABE_ITO["vermillion"], label="heuristic disagrees")
        handles.append(pts)
    edges = mesh.get_coordinates()  # the cell edges matplotlib chose: curves never widen the view
    ax.set_xlim(edges[..., 0].min(), edges[..., 0].max())
    ax.set_ylim(edges[..., 1].min(), edges[..., 1].max())
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    return handles


def save(fig, path):
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
