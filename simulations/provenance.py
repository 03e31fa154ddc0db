"""Where a result came from: package version, git commit and time, recorded in every output.

``provenance()`` is what ``report.md``, ``summary.json`` and ``rmt analyze --json`` record so a
reader can tell which code produced a number. The commit is read with ``git`` from the installed
source tree when it is a checkout; ``None`` otherwise (an installed wheel has no commit).
"""

from __future__ import annotations

import datetime as _dt
import functools
import platform
import re
import subprocess
import sys
from pathlib import Path

__all__ = ["provenance", "git_commit", "version_string", "rmt_version"]

_SOURCE_ROOT = Path(__file__).resolve().parent.parent


def rmt_version() -> str:
    """``rmt.__version__``, read without importing the package when it is not imported yet.

    ``import rmt`` costs about a second (numpy, scipy, numba); ``rmt --version`` needs only the
    ``__version__ = "..."`` line of ``rmt/__init__.py``.
    """
    if "rmt" in sys.modules:
        return sys.modules["rmt"].__version__
    import importlib.util

    spec = importlib.util.find_spec("rmt")  # finds the package without running it
    try:
        text = Path(spec.origin).read_text(encoding="utf-8")
        return re.search(r'^__version__\s*=\s*["\']([^"\']+)["\']', text, re.M).group(1)
    except (OSError, AttributeError, TypeError):
        import rmt

        return rmt.__version__


@functools.lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The commit of the source tree this package is imported from (``+dirty`` if modified)."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=_SOURCE_ROOT, capture_output=True,
                             text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=_SOURCE_ROOT, capture_output=True, text=True, timeout=5,
                               check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return sha + ("+dirty" if dirty else "") if sha else None


def version_string() -> str:
    """``rmt X.Y.Z (commit abcdef123456)`` — what ``rmt --version`` prints."""
    commit = git_commit()
    return f"rmt {rmt_version()}" + (f" (commit {commit[:12]}{'+dirty' if commit.endswith('+dirty') else ''})" if commit else "")


def provenance() -> dict:
    """Version, commit, Python and the UTC time, as a JSON-ready dict."""
    return {
        "rmt_version": rmt_version(),
        "commit": git_commit(),
        "python": platform.python_version(),
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
