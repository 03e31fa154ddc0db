"""The README's images: byte-identical copies of what ``rmt reproduce --quick`` writes.

    python -m simulations.readme_images [--from OUT]    # copy + record (after rmt reproduce --quick)
    python -m simulations.readme_images --check [--from OUT]   # exit 1 when a copy is stale

:data:`IMAGES` maps each image the README shows (under ``docs/img/``) to the experiment and the
file of a ``rmt reproduce --quick`` output folder it is copied from (``OUT``, default
``rmt-output/reproduce/quick``). Copying writes ``docs/img/MANIFEST.json``: per image its source,
experiment, SHA-256, and the commit and time recorded by that run's ``summary.json``.
``tests/test_readme_images.py`` checks, without running anything, that every image the README
references is listed there and matches its recorded hash; ``--check`` compares the copies with a
fresh output folder.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from pathlib import Path

__all__ = ["IMAGES", "MANIFEST", "ROOT", "sha256", "update", "check", "main"]

ROOT = Path(__file__).resolve().parent.parent
#: Where the README's images and their manifest live (relative to the repository root).
IMG_DIR = Path("docs") / "img"
MANIFEST = IMG_DIR / "MANIFEST.json"
#: README image (relative to the repository root) → (experiment, file in the quick output).
IMAGES = {
    "docs/img/hessian_grid_eta0.8.png": ("hessian_grid", "hessian_grid_eta0.8.png"),
}


def sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _source_run(out: Path) -> dict:
    """Mode and provenance of the ``rmt reproduce`` run that wrote ``out``."""
    try:
        summary = json.loads((out / "summary.json").read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{out}: no summary.json of an rmt reproduce run ({exc})") from None
    if summary.get("mode") != "quick":
        raise ValueError(f"{out} holds a {summary.get('mode')!r}-mode run; the README shows "
                         "rmt reproduce --quick output")
    return summary


def update(out, root=ROOT) -> dict:
    """Copy every :data:`IMAGES` source from ``out`` and write the manifest; returns it."""
    out, root = Path(out), Path(root)
    summary = _source_run(out)
    prov = summary.get("provenance", {})
    entries = {}
    for image, (experiment, source) in IMAGES.items():
        src = out / source
        if not src.is_file():
            raise ValueError(f"{src}: missing (run rmt reproduce --quick --out {out})")
        dst = root / image
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        entries[image] = {"experiment": experiment, "source": source, "sha256": sha256(dst),
                          "command": "rmt reproduce --quick", "commit": prov.get("commit"),
                          "created_utc": prov.get("created_utc")}
    manifest = {"description": "README images: copies of rmt reproduce --quick output "
                               "(python -m simulations.readme_images)", "images": entries}
    (root / MANIFEST).write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
    return manifest


def check(out, root=ROOT) -> list:
    """Images of :data:`IMAGES` that differ from (or are missing in) ``out``: [] when fresh."""
    out, root = Path(out), Path(root)
    _source_run(out)
    stale = []
    for image, (_, source) in IMAGES.items():
        src, dst = out / source, root / image
        if not (src.is_file() and dst.is_file()) or src.read_bytes() != dst.read_bytes():
            stale.append(image)
    return stale


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m simulations.readme_images",
                                description=__doc__.splitlines()[0])
    p.add_argument("--from", dest="out", default="rmt-output/reproduce/quick",
                   help="output folder of rmt reproduce --quick (default %(default)s)")
    p.add_argument("--check", action="store_true",
                   help="only compare; exit 1 when a README image differs from the folder's")
    args = p.parse_args(argv)
    try:
        if args.check:
            stale = check(args.out)
            for image in stale:
                print(f"stale: {image} (rerun python -m simulations.readme_images --from "
                      f"{args.out})")
            return 1 if stale else 0
        for image, entry in update(args.out)["images"].items():
            print(f"{image} <- {Path(args.out) / entry['source']} ({entry['sha256'][:12]})")
    except ValueError as exc:
        print(f"readme_images: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
