"""The README's images are recorded copies of ``rmt reproduce --quick`` output.

Runs nothing: every image the README references must exist, be listed in ``docs/img/MANIFEST.json``
(written by ``python -m simulations.readme_images`` from a quick output folder) and match the
SHA-256 recorded there; the manifest must name a quick-mode experiment that writes it. After a
``rmt reproduce --quick``, ``python -m simulations.readme_images --check`` compares the copies with
the new output byte for byte.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from simulations import readme_images as ri

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def _readme_images():
    text = README.read_text(encoding="utf-8")
    refs = re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", text)
    refs += re.findall(r"<img[^>]*\ssrc=\"([^\"]+)\"", text)
    return [r for r in refs if not re.match(r"[a-z]+://", r)]


def _manifest():
    return json.loads((ROOT / ri.MANIFEST).read_text(encoding="utf-8"))["images"]


def test_readme_shows_at_least_one_image():
    assert _readme_images()


@pytest.mark.parametrize("image", _readme_images())
def test_readme_image_is_a_recorded_copy(image):
    path = ROOT / image
    assert path.is_file(), f"README references missing {image}"
    entries = _manifest()
    assert image in entries, f"{image} is not in {ri.MANIFEST}: copy it with simulations.readme_images"
    entry = entries[image]
    assert ri.sha256(path) == entry["sha256"], (
        f"{image} differs from the recorded rmt reproduce --quick output: rerun "
        "rmt reproduce --quick, then python -m simulations.readme_images")
    assert entry["command"] == "rmt reproduce --quick"


def test_manifest_matches_the_image_table():
    from simulations import reproduce

    entries = _manifest()
    assert set(entries) == set(ri.IMAGES)
    for image, (experiment, source) in ri.IMAGES.items():
        assert entries[image]["experiment"] == experiment and entries[image]["source"] == source
        assert experiment in reproduce.all_experiments()


def _fake_quick_output(path, payload=b"\x89PNG fake"):
    path.mkdir(parents=True)
    (path / "summary.json").write_text(json.dumps(
        {"mode": "quick", "provenance": {"commit": "abc", "created_utc": "t"}}))
    for _, source in ri.IMAGES.values():
        (path / source).write_bytes(payload)
    return path


def test_update_and_check_round_trip(tmp_path):
    out = _fake_quick_output(tmp_path / "quick")
    root = tmp_path / "repo"
    manifest = ri.update(out, root=root)
    for image, entry in manifest["images"].items():
        assert (root / image).read_bytes() == b"\x89PNG fake"
        assert entry["sha256"] == ri.sha256(root / image) and entry["commit"] == "abc"
    assert json.loads((root / ri.MANIFEST).read_text()) == manifest
    assert ri.check(out, root=root) == []
    (out / next(iter(ri.IMAGES.values()))[1]).write_bytes(b"other")
    assert ri.check(out, root=root) == [next(iter(ri.IMAGES))]


def test_update_refuses_a_full_mode_folder(tmp_path):
    out = _fake_quick_output(tmp_path / "full")
    (out / "summary.json").write_text(json.dumps({"mode": "full"}))
    with pytest.raises(ValueError, match="full"):
        ri.update(out, root=tmp_path / "repo")
