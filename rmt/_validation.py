"""Backwards-compatible alias of :mod:`rmt.validation` (the public validation layer).

Existing ``from ._validation import check_x`` imports keep working; new code imports from
:mod:`rmt.validation`.
"""

from .validation import *  # noqa: F401,F403
from .validation import __all__  # noqa: F401
