"""The ``rmt`` command line.

Subcommands are registered by the modules that implement them: each exposes
``register(subparsers)`` which adds its parser and sets ``func`` (a callable taking the parsed
namespace and returning an exit code).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from rmt.verdict import SIGN_CONVENTION

# Each module adds one or more subcommands through register(subparsers).
_COMMAND_MODULES = [
    "simulations.cnn.cli",
    "simulations.sweep_cli",
    "simulations.reproduce",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rmt",
        description=(
            "Linear-stability toolkit for gradient-based machine unlearning. "
            f"Convention: {SIGN_CONVENTION}."
        ),
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and name.startswith(exc.name):  # not written yet: command absent
                continue
            raise
        module.register(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 0 if args.command is None else 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
