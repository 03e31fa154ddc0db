"""BLAS thread policy of the exact solvers (one leaf module: nothing in rmt imports upward from here)."""

from __future__ import annotations

import os

from threadpoolctl import threadpool_limits

__all__ = ["blas_threads", "capped"]

def blas_threads() -> int:
    """BLAS threads for the exact operator: ``RMT_BLAS_THREADS`` if set, else 1.

    One thread by default: the operator's matrices are small (r ≤ a few hundred), extra threads
    oversubscribe a busy machine, and — the reason it is not chosen from the load — a thread
    count that varies between runs changes the last digits of ρ(T), so serial and process-pool
    sweeps would no longer give identical data.
    """
    env = os.environ.get("RMT_BLAS_THREADS")
    if env:
        try:
            value = int(env)
        except ValueError:
            value = 0
        if value < 1:
            raise ValueError(f"RMT_BLAS_THREADS must be a positive integer, got {env!r}")
        return value
    return 1


def capped(fn):
    """Run ``fn`` with the BLAS thread pool capped at :func:`blas_threads`; an OverflowError or
    FloatingPointError inside becomes a ValueError that says so (never a verdict)."""

    def wrapper(*args, **kwargs):
        with threadpool_limits(limits=blas_threads(), user_api="blas"):
            try:
                return fn(*args, **kwargs)
            except (OverflowError, FloatingPointError) as exc:
                # an overflow is never a verdict: name it as a range problem of the input
                raise ValueError(f"{fn.__name__}: the computation overflowed ({exc}); the "
                                 "Hessians' scale times η is outside the representable range "
                                 "(rescale the curvature or η)") from exc

    wrapper.__name__, wrapper.__qualname__, wrapper.__doc__ = fn.__name__, fn.__qualname__, fn.__doc__
    wrapper.__wrapped__ = fn
    return wrapper


