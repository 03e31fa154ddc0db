"""Smoke test of ``python -m theory.report`` (the full run is in docs/theory_report.md)."""

import pytest

from rmt.verdict import SIGN_CONVENTION
from theory import theorems
from theory.report import main, render_derivations


def test_report_cli_writes_markdown(tmp_path, capsys):
    out = tmp_path / "report.md"
    assert main(["--examples", "3", "--search-examples", "2", "--output", str(out)]) == 0
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


def test_report_rejects_bad_arguments():
    with pytest.raises(SystemExit):
        main(["--examples", "0"])


def test_render_derivations_contains_latex():
    md = render_derivations()
    assert "dexter-thm1" in md and "$$" in md
