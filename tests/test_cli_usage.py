"""The ``rmt`` command line's usage surface: cheap start-up, lazy subcommands, bare ``rmt``, help texts.

Nothing here measures time (timings: ``python benchmarks/bench_cli.py``); the start-up contract is
checked through what a fresh process has imported after ``rmt --help`` / ``--version``.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest

from simulations import cli

#: Modules whose import makes ``rmt --help`` slow (numpy, scipy, numba, the toolkit itself,
#: matplotlib, the subcommand implementations).
HEAVY = ("numpy", "scipy", "numba", "matplotlib", "xarray", "dask", "sympy", "rmt", "theory",
         "simulations.reproduce", "simulations.sweep_cli", "simulations.sweep",
         "simulations.cnn", "simulations.figures", "simulations.verify_cli")

_PROBE = """
import json, sys
from simulations.cli import main
try:
    code = main({argv!r})
except SystemExit as exc:
    code = exc.code
heavy = sorted(m for m in sys.modules
               if any(m == h or m.startswith(h + ".") for h in {heavy!r}))
print(json.dumps({{"code": code, "heavy": heavy}}))
"""


def _probe(argv, heavy=HEAVY):
    proc = subprocess.run([sys.executable, "-c", _PROBE.format(argv=argv, heavy=heavy)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("argv", [["--help"], ["--version"], []])
def test_help_and_version_import_nothing_heavy(argv):
    res = _probe(argv)
    assert res["heavy"] == [], res
    assert res["code"] == (2 if not argv else 0)


def test_subcommand_help_imports_only_its_module():
    # rmt analyze --help needs sweep_cli's parser, not numpy/rmt nor the other subcommands
    res = _probe(["analyze", "--help"])
    assert res["code"] == 0
    assert res["heavy"] == ["simulations.sweep_cli"], res


def test_reproduce_help_imports_nothing_heavy():
    # rmt reproduce --help reads the experiments' docstring from source (simulations.reproduce_cli)
    res = _probe(["reproduce", "--help"])
    assert res["code"] == 0 and res["heavy"] == [], res


def test_reproduce_cli_names_are_the_experiments():
    from simulations import reproduce, reproduce_cli
    assert reproduce_cli.EXPERIMENT_NAMES == tuple(reproduce.all_experiments())
    assert reproduce_cli._reproduce_doc() == reproduce.__doc__


def test_bare_rmt_prints_usage_and_exits_2(capsys):
    assert cli.main([]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("usage: rmt ") and "COMMAND" in captured.err


def test_bare_rmt_process_exit_status():
    proc = subprocess.run([sys.executable, "-c", "import sys; from simulations.cli import main; "
                           "sys.exit(main())"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.startswith("usage: rmt ")


def test_top_level_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    assert exc.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    for name, (_, line) in cli.COMMANDS.items():
        assert name in out and " ".join(line.split()) in out


def test_one_line_helps_match_the_registered_parsers():
    """cli.COMMANDS' help lines are the modules' own (a full parser imports every module)."""
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    registered = {a.dest: a.help for a in sub._choices_actions}
    assert list(registered) == list(cli.COMMANDS)
    for name, (_, line) in cli.COMMANDS.items():
        assert registered[name] == line, name
    for name in cli.COMMANDS:  # every full parser carries a command to run
        assert sub.choices[name].get_default("func") is not None or name == "cnn"


def test_broken_subcommand_module_fails_loudly_only_when_run(monkeypatch, capsys):
    broken = dict(cli.COMMANDS, verify=("simulations._no_such_module", cli.COMMANDS["verify"][1]))
    monkeypatch.setattr(cli, "COMMANDS", broken)
    with pytest.raises(SystemExit) as exc:  # the other commands and --help still work
        cli.main(["--help"])
    assert exc.value.code == 0
    assert "verify" in capsys.readouterr().out
    with pytest.raises(ModuleNotFoundError, match="simulations._no_such_module"):
        cli.main(["verify", "cert.json"])
    with pytest.raises(ModuleNotFoundError):
        cli.main(["verify", "--help"])


def test_version_does_not_need_rmt_imported():
    from simulations.provenance import rmt_version

    import rmt

    assert rmt_version() == rmt.__version__
    assert _probe(["--version"], heavy=("rmt",))["heavy"] == []


def test_verdict_constants_match_rmt_verdict():
    import rmt.verdict

    light = cli.verdict_constants()
    assert light.SIGN_CONVENTION == rmt.verdict.SIGN_CONVENTION
    assert light.SIGN_CONVENTION_SHORT == rmt.verdict.SIGN_CONVENTION_SHORT


# ----------------------------------------------------------------------------- help texts
def _help(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main([*argv, "--help"])
    assert exc.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("argv", [[], ["cnn"], ["cnn", "coherence"], ["cnn", "heatmap"],
                                  ["sweep"], ["analyze"], ["reproduce"], ["verify"]])
def test_help_is_rendered_text(argv, capsys):
    text = _help(argv, capsys)
    for markup in ("``", ":func:`", ":data:`", ":mod:`", ":class:`", ":meth:`", "**"):
        assert markup not in text, (argv, markup)


def test_rst_to_text():
    assert cli.rst_to_text("a ``x`` :func:`~a.b.c` :data:`rmt.X` **bold**") == "a x c rmt.X bold"


def test_reproduce_help_lists_every_experiment_and_its_figures(capsys):
    from simulations import reproduce

    text = " ".join(_help(["reproduce"], capsys).split())
    for name in reproduce.all_experiments():
        assert f"{name} —" in text, name
    assert "asymptotics_limits.png" in text and "asymptotics_errors.png" in text


def test_default_sampling_is_stated_and_is_the_api_default(capsys):
    import rmt
    from simulations import sweep_cli

    default = {f.name: f.default for f in dataclasses.fields(rmt.Schedule)}["sampling"]
    assert default == "bernoulli" == sweep_cli.DEFAULT_SAMPLING
    args = cli.build_parser(["analyze"]).parse_args(["analyze", "f.npz"])
    assert args.sampling == [default]
    analyze = " ".join(_help(["analyze"], capsys).split())
    assert f"(default {default}, as in rmt.Schedule" in analyze
    sweep = " ".join(_help(["sweep"], capsys).split())
    assert f"batch sampling: {default}" in sweep
    reproduce = " ".join(_help(["reproduce"], capsys).split())
    assert "without replacement" in reproduce and f"is {default}" in reproduce
