"""The documentation is self-contained: links resolve, and the contract lives in the repo.

* every relative link in README.md, docs/*.md and the notebooks' markdown cells points to a file
  (or folder) that exists in the repository, and an anchor into a markdown file names one of its
  headings (GitHub's heading slugs);
* no README/docs/notebook text names ``THEORY.md`` or ``DESIGN.md``: those were external
  documents; the contract is ``docs/contract.md`` and the design notes ``docs/design.md``
  (code docstrings may still cite "THEORY §n", which is section n of docs/contract.md).

Fast (text only, no rmt import).
"""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

MARKDOWN = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))

#: [text](target) and ![alt](target); the target ends at whitespace or the closing parenthesis
#: (an optional "title" after whitespace is ignored).
_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^()\s<>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.S | re.M)
_INDENTED_CODE = re.compile(r"(?:^(?: {4}|\t).*\n?)+", re.M)
_INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1", re.S)
_EXTERNAL = re.compile(r"\b(?:THEORY|DESIGN)\.md\b")


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _notebook_markdown(path: Path) -> str:
    nb = json.loads(path.read_text(encoding="utf-8"))
    cells = [c for c in nb["cells"] if c["cell_type"] == "markdown"]
    return "\n\n".join("".join(c["source"]) for c in cells)


def _prose(text: str) -> str:
    """Markdown with code blocks and inline code removed (``a[i](x)`` in code is not a link)."""
    text = _FENCE.sub("", text)
    text = _INDENTED_CODE.sub("", text)
    return _INLINE_CODE.sub("", text)


def _links(text: str) -> list[str]:
    return _LINK.findall(_prose(text))


def _is_relative(target: str) -> bool:
    return not re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target) and not target.startswith("//")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, markup and punctuation dropped, spaces → '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links keep their text
    text = text.replace("`", "").strip().lower()
    out = []
    for ch in text:
        cat = unicodedata.category(ch)
        if ch in "-_" or cat[0] in "LN" or cat == "Mn":
            out.append(ch)
        elif ch == " ":
            out.append("-")
    return "".join(out)


def _anchors(path: Path) -> set[str]:
    """Heading anchors of a markdown file (duplicates get -1, -2, … as on GitHub)."""
    text = _FENCE.sub("", path.read_text(encoding="utf-8"))
    seen: dict[str, int] = {}
    out = set()
    for m in re.finditer(r"^#{1,6}\s+(.*?)\s*#*\s*$", text, re.M):
        slug = _slug(m.group(1))
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def _sources():
    for path in MARKDOWN:
        yield path, path.read_text(encoding="utf-8")
    for path in NOTEBOOKS:
        yield path, _notebook_markdown(path)


SOURCES = list(_sources())


def test_the_contract_and_design_notes_are_in_the_repo():
    for name in ("contract.md", "design.md"):
        assert (ROOT / "docs" / name).is_file(), f"docs/{name} is missing"
    # the contract's section numbers are the ones code docstrings cite as "THEORY §n"
    headings = _anchors(ROOT / "docs" / "contract.md")
    for n in range(1, 10):
        assert any(h.startswith(f"{n}-") for h in headings), f"docs/contract.md has no section {n}"
    assert any(h.startswith("21-") for h in headings), "docs/contract.md has no section 2.1"


@pytest.mark.parametrize("path,text", SOURCES, ids=[_rel(p) for p, _ in SOURCES])
def test_relative_links_resolve(path, text):
    broken = []
    for target in _links(text):
        if not _is_relative(target):
            continue
        file_part, _, anchor = target.partition("#")
        dest = path if not file_part else (path.parent / file_part).resolve()
        if file_part and not dest.exists():
            broken.append(f"{target} (no such file)")
            continue
        if anchor and dest.suffix == ".md" and dest.is_file():
            if anchor.lower() not in _anchors(dest):
                broken.append(f"{target} (no heading with anchor #{anchor} in {_rel(dest)})")
        if file_part and ROOT not in dest.parents and dest != ROOT:
            broken.append(f"{target} (outside the repository)")
    assert not broken, f"{_rel(path)}: broken links: " + "; ".join(broken)


@pytest.mark.parametrize(
    "path", [*MARKDOWN, *NOTEBOOKS], ids=[_rel(p) for p in [*MARKDOWN, *NOTEBOOKS]]
)
def test_no_reference_to_external_theory_or_design_files(path):
    text = path.read_text(encoding="utf-8")
    hits = []
    for i, line in enumerate(text.splitlines(), 1):
        if _EXTERNAL.search(line):
            hits.append(f"line {i}: {line.strip()[:100]}")
    assert not hits, (
        f"{_rel(path)} names THEORY.md/DESIGN.md, which are not in the repo; cite "
        "docs/contract.md (section n = 'THEORY §n') or docs/design.md instead:\n" + "\n".join(hits)
    )


def test_link_parser_sees_links_and_skips_code():
    text = (
        "See [the contract](docs/contract.md#3-exact-mean-square-stability) and "
        "![fig](docs/img/a.png \"title\").\n\n"
        "```python\nx = a[i](docs/missing.md)\n```\n"
        "Inline `b[j](nope.md)` is code. [web](https://example.org) is external.\n"
    )
    assert _links(text) == [
        "docs/contract.md#3-exact-mean-square-stability",
        "docs/img/a.png",
        "https://example.org",
    ]
    assert not _is_relative("https://example.org")
    assert _slug("2.1 Batch sampling: the coefficients (c, e)") == "21-batch-sampling-the-coefficients-c-e"
    assert _slug("Random-matrix limits (`rmt.asymptotics`, THEORY §9)") == (
        "random-matrix-limits-rmtasymptotics-theory-9"
    )
