"""``rmt reproduce``'s parser, without importing the experiments (``rmt reproduce --help`` fast).

The experiments and their help text live in :mod:`simulations.reproduce`; building the parser
from there imported numpy, the toolkit and every experiment (1.3 s) only to print the help. Here
the docstring is read from that module's source without running it, and the experiment names are
:data:`EXPERIMENT_NAMES` (tests/test_cli_usage.py keeps them equal to
``simulations.reproduce.all_experiments()``). The command itself imports the module.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
from pathlib import Path

__all__ = ["register", "EXPERIMENT_NAMES"]

#: The experiments of :func:`simulations.reproduce.all_experiments`, in their order.
EXPERIMENT_NAMES = ("hessian_grid", "lyapunov", "coherence_snr", "cnn_heatmaps", "asymptotics",
                    "coherence-study", "realdata")


def _reproduce_doc() -> str:
    """The docstring of :mod:`simulations.reproduce`, from its source (the module is not run)."""
    spec = importlib.util.find_spec("simulations.reproduce")
    assert spec is not None and spec.origin is not None, "simulations.reproduce is missing"
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    return ast.get_docstring(tree, clean=False) or ""


def _main(args: argparse.Namespace) -> int:
    return importlib.import_module("simulations.reproduce")._main(args)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``rmt reproduce`` to ``subparsers`` (help text: :mod:`simulations.reproduce`'s docstring)."""
    from .cli import rst_to_text

    names = list(EXPERIMENT_NAMES)
    p = subparsers.add_parser(
        "reproduce",
        help="regenerate every figure with exact frontiers and write report.md",
        description=rst_to_text(_reproduce_doc()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--quick", action="store_true",
                   help="coarse grids: a few minutes on 2 cores, real-data experiment included")
    p.add_argument("--out", default=None,
                   help="output folder (default: rmt-output/reproduce/quick with --quick, "
                        "rmt-output/reproduce/full otherwise); a folder holds one mode")
    grp = p.add_mutually_exclusive_group()
    grp.add_argument("--dask-local", type=int, metavar="N", help="start a local Dask cluster with N workers")
    grp.add_argument("--scheduler", metavar="ADDRESS",
                     help="connect to an existing Dask scheduler (tcp://HOST:PORT; checked first)")
    grp.add_argument("--serial", action="store_true", help="run every cell in this process")
    p.add_argument("--only", nargs="+", metavar="EXPERIMENT",
                   help="run only these experiments; valid names: " + ", ".join(names))
    p.add_argument("--skip", nargs="+", metavar="EXPERIMENT",
                   help="leave these experiments out (e.g. --skip realdata, the slowest)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=_main)

