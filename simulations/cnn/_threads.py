"""Run small BLAS kernels single-threaded.

The CNN kernels multiply matrices of a few hundred rows; on a loaded 2-core machine OpenBLAS
threading makes them ~40× slower (measured: 0.3 ms → 12 ms per forward pass at n=100, d=200,
m=20). :func:`single_blas_thread` limits every BLAS library loaded in the process to one thread
for the duration of a call (``threadpoolctl``) and restores the previous limits afterwards.
"""

from __future__ import annotations

from threadpoolctl import threadpool_limits

__all__ = ["single_blas_thread"]


def single_blas_thread():
    """Context manager: BLAS uses one thread inside, the previous limits are restored after."""
    return threadpool_limits(limits=1, user_api="blas")
