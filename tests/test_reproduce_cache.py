"""``rmt reproduce`` never recomputes a finished experiment: the asymptotics experiment (no sweep)
is stored in the output folder with the fingerprint of its inputs and reused by a rerun."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest

from simulations import reproduce as rep


@pytest.fixture
def fake_asymptotics(monkeypatch):
    """A stand-in simulations.asymptotics_figure that counts its runs."""
    calls = []
    fake = types.ModuleType("simulations.asymptotics_figure")
    fake.fp = {"experiment": "asymptotics", "source_sha256": "a"}

    def experiment_asymptotics(out, quick):
        calls.append(quick)
        (Path(out) / "asym.png").write_bytes(b"png")
        return {"figures": ["asym.png"], "markdown": "Table.", "value": 1.5 + len(calls)}

    fake.experiment_asymptotics = experiment_asymptotics
    fake.fingerprint = lambda quick: {**fake.fp, "quick": quick}
    monkeypatch.setitem(sys.modules, "simulations.asymptotics_figure", fake)
    import simulations

    monkeypatch.setattr(simulations, "asymptotics_figure", fake, raising=False)
    return fake, calls


def _run(out):
    rep.reproduce(out, quick=True, executor="serial", progress=False, only=["asymptotics"])
    return json.loads((out / "summary.json").read_text())["results"]["asymptotics"]


def test_finished_asymptotics_is_reused(tmp_path, fake_asymptotics):
    fake, calls = fake_asymptotics
    out = tmp_path / "out"
    first = _run(out)
    stored = json.loads((out / "sweeps" / "asymptotics" / "result.json").read_text())
    assert stored["fingerprint"] == {"experiment": "asymptotics", "source_sha256": "a",
                                     "quick": True}
    assert stored["result"]["value"] == first["value"] == 2.5
    assert _run(out)["value"] == 2.5 and calls == [True]  # the rerun computes nothing
    report = (out / "report.md").read_text()
    assert report.count("![asym.png](asym.png)") == 1


def test_changed_fingerprint_or_missing_figure_recomputes(tmp_path, fake_asymptotics):
    fake, calls = fake_asymptotics
    out = tmp_path / "out"
    _run(out)
    fake.fp = {**fake.fp, "source_sha256": "b"}  # the module changed
    assert _run(out)["value"] == 3.5 and len(calls) == 2
    assert _run(out)["value"] == 3.5 and len(calls) == 2
    (out / "asym.png").unlink()  # a figure is gone
    assert _run(out)["value"] == 4.5 and len(calls) == 3


def test_real_fingerprint_names_the_inputs():
    from simulations import asymptotics_figure as af

    a, b = af.fingerprint(True), af.fingerprint(False)
    assert a == af.fingerprint(True) and a != b
    assert a["quick"] is True and a["d_grid"] == list(af.D_GRID)
    assert len(a["source_sha256"]) == 64
    json.dumps(a)  # stored as JSON
