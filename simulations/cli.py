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

Start-up is cheap: ``rmt``, ``rmt --help`` and ``rmt --version`` import neither numpy/scipy nor
the toolkit (:data:`COMMANDS` holds each subcommand's one-line help), and ``rmt <cmd> ...`` imports
only the module of ``<cmd>`` — at dispatch, without catching its ImportError, so a broken
subcommand fails loudly when it is run (and only then). ``rmt`` with no command prints the usage
and exits with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys

#: Every subcommand, in the order ``rmt --help`` lists them: its module (which adds the full
#: parser through ``register(subparsers)``, imported only when the command runs) and its one-line
#: help (the same text the module registers; tests/test_cli_usage.py keeps the two equal).
COMMANDS = {
    "cnn": ("simulations.cnn.cli",
            "two-layer ReLU CNN under signal-plus-noise: coherence and escape heatmaps"),
    "sweep": ("simulations.sweep_cli",
              "run a resumable parameter sweep from a TOML/YAML config into a zarr store"),
    "analyze": ("simulations.sweep_cli",
                "forecast, rho(T), critical eta/alpha/batch, Lyapunov and theorem checks for a "
                "curvature .npz file"),
    "reproduce": ("simulations.reproduce_cli",
                  "regenerate every figure with exact frontiers and write report.md"),
    "verify": ("simulations.verify_cli",
               "check a certificate file (exact arithmetic): exit 0 verified, 1 not"),
}

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


def verdict_constants():
    """:mod:`rmt.verdict` (``SIGN_CONVENTION``, ``FORGETS``, ...) without importing ``rmt``.

    ``import rmt.verdict`` runs ``rmt/__init__`` (numpy, scipy, numba: about a second), so the
    help texts read the constants from ``rmt/verdict.py`` itself, which imports only the standard
    library (loaded once, under a private name). When ``rmt`` is already imported, that module is
    returned.
    """
    global _VERDICT
    if "rmt.verdict" in sys.modules:
        return sys.modules["rmt.verdict"]
    if _VERDICT is None:
        import importlib.util

        spec = importlib.util.find_spec("rmt")  # locates the package without running it
        path = os.path.join(next(iter(spec.submodule_search_locations)), "verdict.py")
        light = importlib.util.spec_from_file_location("_rmt_verdict_light", path)
        module = importlib.util.module_from_spec(light)
        light.loader.exec_module(module)
        _VERDICT = module
    return _VERDICT


_VERDICT = None


def rst_to_text(doc: str) -> str:
    """``doc`` with its reStructuredText inline markup removed, as plain text for ``--help``.

    Double-backquoted literals lose their quotes, a role such as :func:`a.b` becomes a.b (b with
    a leading ~), bold loses its asterisks; the layout is kept.
    """
    doc = re.sub(r":[a-z]+:`~?([^`]+)`",
                 lambda m: m.group(1).rsplit(".", 1)[-1] if m.group(0).count("~") else m.group(1),
                 doc)
    doc = re.sub(r"``([^`]+)``", r"\1", doc)
    return re.sub(r"\*\*([^*]+)\*\*", r"\1", doc)


class _OnlySubparsers:
    """The ``subparsers`` a module's ``register`` sees when only some of its commands are wanted.

    ``add_parser`` of a wanted name goes to the real subparsers; any other name gets a detached
    parser that is thrown away (a module such as ``sweep_cli`` registers two commands).
    """

    def __init__(self, sub, wanted):
        self._sub, self._wanted = sub, set(wanted)

    def add_parser(self, name, **kwargs):
        if name in self._wanted:
            return self._sub.add_parser(name, **kwargs)
        kwargs.pop("help", None)
        kwargs.pop("aliases", None)
        return _Parser(prog=f"rmt {name}", **kwargs)


def _command_word(argv) -> str | None:
    """The subcommand ``argv`` names (its first non-option word), or None."""
    for word in argv:
        if word == "--":
            return None
        if not word.startswith("-"):
            return word
    return None


def build_parser(commands=None) -> argparse.ArgumentParser:
    """The ``rmt`` parser; full parsers only for ``commands`` (default: every command).

    Every other command gets a placeholder carrying its one-line help (``rmt --help`` lists it),
    so only the modules of ``commands`` are imported — an ImportError there propagates.
    """
    wanted = list(COMMANDS) if commands is None else [c for c in commands if c in COMMANDS]
    parser = _Parser(
        prog="rmt",
        description=(
            "Linear-stability toolkit for gradient-based machine unlearning. "
            f"Convention: {verdict_constants().SIGN_CONVENTION}."
        ),
        epilog="Errors are one line (exit status 2); set RMT_DEBUG=1 for a traceback. "
               "'rmt COMMAND --help' describes each command.",
    )
    parser.add_argument("--version", action=_VersionAction)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    registered = set()
    for name, (module_name, help_line) in COMMANDS.items():
        if name not in wanted:
            sub.add_parser(name, help=help_line, add_help=False)
        elif name not in registered:
            # one import and one register() per module, for all of its wanted commands at once
            mine = [n for n in wanted if COMMANDS[n][0] == module_name]
            importlib.import_module(module_name).register(_OnlySubparsers(sub, mine))
            registered.update(mine)
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
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        word = _command_word(argv)
        parser = build_parser([word] if word in COMMANDS else [])
        args = parser.parse_args(argv)
        if args.command is None:  # bare "rmt": the usage, and a usage error's status
            parser.print_usage(sys.stderr)
            print("rmt: error: a COMMAND is required (see 'rmt --help')", file=sys.stderr)
            return EXIT_USAGE
        if getattr(args, "func", None) is None:
            parser.print_help()
            return EXIT_USAGE
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
