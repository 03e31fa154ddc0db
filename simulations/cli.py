"""The ``rmt`` command line.

Subcommands are registered by the modules that implement them: each exposes
``register(subparsers)`` which adds its parser and sets ``func`` (a callable taking the parsed
namespace and returning an exit code).

Error handling is central (:func:`main`), so every subcommand behaves the same:

* usage errors, and any ``ValueError``/``TypeError`` a subcommand raises (argument validation)
  or ``OSError`` (a missing or unwritable path), print ONE line
  ``rmt <cmd>: error: <message>`` on stderr and exit with status 2 — no traceback. Set
  ``RMT_DEBUG=1`` to get the traceback instead (for a genuine bug);
* Ctrl-C (SIGINT) prints one line and exits with status 130; for the resumable commands
  (``rmt sweep``, ``rmt reproduce``) the line says where the finished cells are kept and that
  rerunning the same command resumes. Worker processes are stopped by the sweep engine.
"""

from __future__ import annotations

import argparse
import os
import sys

from rmt.verdict import SIGN_CONVENTION

from . import reproduce, sweep_cli, verify_cli
from .cnn import cli as cnn_cli

# Each module adds one or more subcommands through register(subparsers), in this order.
_COMMAND_MODULES = (cnn_cli, sweep_cli, reproduce, verify_cli)

#: Commands whose ``--out`` folder keeps finished cells across runs (rerun = resume).
_RESUMABLE = ("sweep", "reproduce")

#: Exit status after Ctrl-C (128 + SIGINT, the shell convention).
EXIT_INTERRUPTED = 130
#: Exit status of a usage or validation error.
EXIT_USAGE = 2


def _debug() -> bool:
    """True when ``RMT_DEBUG`` asks for tracebacks instead of one-line errors."""
    return os.environ.get("RMT_DEBUG", "").strip().lower() in ("1", "true", "yes", "on")


def _one_line(text) -> str:
    """``text`` folded onto one line (an error message must not span several)."""
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose usage errors are one line: ``rmt <cmd>: error: <message>``.

    Subparsers inherit the class (``add_subparsers`` uses the parent's type), so this holds for
    every subcommand.
    """

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {_one_line(message)} "
                              f"(see '{self.prog} --help')\n")


class _VersionAction(argparse.Action):
    """``--version``: print :func:`simulations.provenance.version_string` (runs git only then)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS,
                 help="print the version and commit, then exit"):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        from .provenance import version_string

        print(version_string())
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="rmt",
        description=(
            "Linear-stability toolkit for gradient-based machine unlearning. "
            f"Convention: {SIGN_CONVENTION}."
        ),
        epilog="Errors are one line (exit status 2); set RMT_DEBUG=1 for a traceback.",
    )
    parser.add_argument("--version", action=_VersionAction)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _COMMAND_MODULES:
        module.register(sub)
    return parser


def _command_name(args) -> str:
    """``rmt``, ``rmt sweep``, ``rmt cnn heatmap``, ... for messages."""
    words = ["rmt"]
    if args is not None:
        for attr in ("command", "cnn_command"):
            value = getattr(args, attr, None)
            if value:
                words.append(str(value))
    return " ".join(words)


def _interrupted_message(args) -> str:
    prog = _command_name(args)
    out = getattr(args, "out", None)
    if args is not None and getattr(args, "command", None) in _RESUMABLE and out:
        return (f"{prog}: interrupted; finished cells are kept in {out} — rerun the same command "
                "to resume")
    return f"{prog}: interrupted"


def main(argv=None) -> int:
    args = None
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if getattr(args, "func", None) is None:
            parser.print_help()
            return 0 if args.command is None else EXIT_USAGE
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(_interrupted_message(args), file=sys.stderr)
        return EXIT_INTERRUPTED
    except (ValueError, TypeError, OSError) as exc:
        if _debug():
            raise
        print(f"{_command_name(args)}: error: {_one_line(exc) or type(exc).__name__}",
              file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as exc:
        # raise SystemExit("message") is an error message (exit status 1 by Python's rule):
        # give it the same one-line form and status as every other error
        if isinstance(exc.code, str):
            if _debug():
                raise
            prog, msg = _command_name(args), _one_line(exc.code)
            for head in (f"{prog}:", "error:"):  # "rmt reproduce: ..." is not repeated
                if msg.startswith(head):
                    msg = msg[len(head):].strip()
            print(f"{prog}: error: {msg}", file=sys.stderr)
            return EXIT_USAGE
        raise


if __name__ == "__main__":
    sys.exit(main())
