"""Monte Carlo engine: products of random mixing operators (contract §2, §3).

Almost-sure (Lyapunov exponents), moment (g(p)) and trajectory views of w_{k+1} = J_k w_k,
complementing the exact mean-square operator of :mod:`rmt.meansquare`; and paths of the affine
recursion δ_{k+1} = J_k δ_k + b_k at non-interpolating minima (contract §8, :func:`affine_paths`).
See :mod:`rmt.montecarlo.engine` for conventions (span, start vectors, seeds, paths).
"""

from .affine import AffinePathsResult, affine_paths
from .engine import (
    LyapunovResult,
    LyapunovSpectrumResult,
    MomentGrowthResult,
    SimulationResult,
    lyapunov,
    lyapunov_spectrum,
    moment_growth,
    simulate,
)

__all__ = [
    "lyapunov",
    "lyapunov_spectrum",
    "moment_growth",
    "simulate",
    "affine_paths",
    "LyapunovResult",
    "LyapunovSpectrumResult",
    "MomentGrowthResult",
    "SimulationResult",
    "AffinePathsResult",
]
