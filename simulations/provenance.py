"""Where a result came from: package version, git commit and time, recorded in every output.

``provenance()`` is what ``report.md``, ``summary.json`` and ``rmt analyze --json`` record so a
reader can tell which code produced a number. The commit is read with ``git`` from the installed
source tree when it is a checkout; ``None`` otherwise (an installed wheel has no commit).
"""

from __future__ import annotations

import datetime as _dt
import functools
import platform
import subprocess
from pathlib import Path

import rmt

__all__ = ["provenance", "git_commit", "version_string"]

_SOURCE_ROOT = Path(__file__).resolve().parent.parent


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
    return f"rmt {rmt.__version__}" + (f" (commit {commit[:12]}{'+dirty' if commit.endswith('+dirty') else ''})" if commit else "")


def provenance() -> dict:
    """Version, commit, Python and the UTC time, as a JSON-ready dict."""
    return {
        "rmt_version": rmt.__version__,
        "commit": git_commit(),
        "python": platform.python_version(),
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
