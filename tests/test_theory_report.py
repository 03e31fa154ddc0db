"""Smoke test of ``python -m theory.report`` (the full run is in docs/theory_report.md)."""

import hashlib
from pathlib import Path

import pytest

from rmt.verdict import SIGN_CONVENTION
from theory import theorems
from theory.report import main, render_derivations


DOCS_REPORT = Path(__file__).resolve().parents[1] / "docs" / "theory_report.md"


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def test_report_cli_writes_markdown(tmp_path, capsys, monkeypatch):
    # default: rmt-output/theory_report.md under the working directory, never the tracked docs
    monkeypatch.chdir(tmp_path)
    before = _digest(DOCS_REPORT)
    assert main(["--examples", "3", "--search-examples", "2"]) == 0
    out = tmp_path / "rmt-output" / "theory_report.md"
    assert _digest(DOCS_REPORT) == before
    text = out.read_text(encoding="utf-8")
    assert text == capsys.readouterr().out
    summary = text.split("## Summary")[1].split("## Breakdown")[0]
    for th in theorems():
        row = next(line for line in summary.splitlines() if f"`{th.name}`" in line)
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[1] == th.status and cells[2] == th.conclusion
        assert int(cells[3]) == 3  # every generated instance is one where the theorem applies
        if th.status == "proven":
            assert cells[4] == "0"
    assert SIGN_CONVENTION in text


@pytest.mark.parametrize("argv", [["--examples", "0"], ["--search-examples", "0"],
                                  ["--seed", "-1"]])
def test_report_rejects_bad_arguments(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2 and argv[0] in capsys.readouterr().err


def test_report_out_is_checked_before_the_run(tmp_path, capsys, monkeypatch):
    import theory.report as report

    def no_run(*a, **k):
        raise AssertionError("ran although --out is unusable")

    monkeypatch.setattr(report, "run", no_run)
    with pytest.raises(SystemExit) as exc:
        main(["--out", str(tmp_path)])  # a directory
    assert exc.value.code == 2 and "is a directory" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(SystemExit) as exc:
        main(["--out", str(blocker / "report.md")])  # parent is a file
    assert exc.value.code == 2 and "cannot create" in capsys.readouterr().err
    # --out writes exactly there; "--output" is kept as an alias
    monkeypatch.setattr(report, "run", lambda *a, **k: "# report")
    for flag in ("--out", "--output"):
        target = tmp_path / flag.strip("-") / "r.md"
        assert main([flag, str(target)]) == 0
        assert target.read_text(encoding="utf-8") == "# report\n"
    capsys.readouterr()


def test_render_derivations_contains_latex():
    md = render_derivations()
    assert "dexter-thm1" in md and "$$" in md


def test_empirical_section_quotes_the_coherence_study(tmp_path):
    from theory.report import empirical_section
    page = tmp_path / "coherence_study.md"
    page.write_text("# t\n\n## The answer\n\n* ρ(σ_F, escape) = -0.05 [-0.15, +0.05]\n\n"
                    "![fig](img/x.png)\n\n## Protocol\n\nnot quoted\n", encoding="utf-8")
    text = "\n".join(empirical_section(page))
    assert "-0.05 [-0.15, +0.05]" in text and "not quoted" not in text and "![" not in text
    assert "missing" in "\n".join(empirical_section(tmp_path / "absent.md"))
    # the committed theory report carries the committed study's answer verbatim
    committed = DOCS_REPORT.read_text(encoding="utf-8")
    assert "\n".join(empirical_section()).strip() in committed
