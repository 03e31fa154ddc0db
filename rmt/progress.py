"""Progress bars for the calls that can run for more than a few seconds (tqdm, on stderr).

One switch for every long call (:func:`rmt.forecast`, :func:`rmt.horizon_critical`,
:func:`rmt.critical_eta` / ``critical_alpha`` / ``critical_batch``, :func:`rmt.lyapunov`):

* the call's ``progress=`` argument, True or False, wins;
* else the environment variable ``RMT_PROGRESS``: ``1`` (on) or ``0`` (off);
* else a bar is shown only when stderr is a terminal (never in pipes, logs or tests).

Bars are removed when they finish (``leave=False``) and cost nothing when off.
"""

from __future__ import annotations

import os
import sys
from typing import Any

__all__ = ["enabled", "bar", "ENV"]

#: environment variable that switches the bars on (``1``) or off (``0``)
ENV = "RMT_PROGRESS"

_ON = {"1", "true", "yes", "on"}
_OFF = {"0", "false", "no", "off", ""}


def enabled(progress: bool | None = None) -> bool:
    """Whether to show a bar: ``progress`` if given, else ``RMT_PROGRESS``, else stderr is a tty."""
    if progress is not None:
        return bool(progress)
    env = os.environ.get(ENV)
    if env is not None:
        value = env.strip().lower()
        if value in _ON:
            return True
        if value in _OFF:
            return False
    try:
        return bool(sys.stderr.isatty())
    except (AttributeError, ValueError):  # replaced or closed stderr
        return False


class _Null:
    """A bar that does nothing (progress off)."""

    n: float = 0

    def update(self, n: float = 1) -> None:
        self.n += n

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        pass

    def set_description_str(self, s: str = "", refresh: bool = True) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> "_Null":
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def bar(total: float | None = None, desc: str = "", *, progress: bool | None = None,
        unit: str = "it", **kwargs: Any) -> Any:
    """A tqdm bar on stderr (or a do-nothing bar when :func:`enabled` says no).

    Use as a context manager: ``with bar(steps, "forecast", progress=progress) as b: b.update()``.
    """
    if not enabled(progress):
        return _Null()
    from tqdm.auto import tqdm

    kwargs.setdefault("leave", False)
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, **kwargs)
