"""Exact mean-square stability: the operator T(M) = E[J M Jᵀ] (contract §3).

For the summed schedule

    T(M) = (I − ηD) M (I − ηD) + η²(1−α)² N_R(M) + η²α² N_F(M),      D = (1−α)H̄_R − αH̄_F,

with the per-set noise operator N_S(M) = c_S·(1/n)Σ_i H_i M H_i − e_S·H̄_S M H̄_S read off the
sampling table of contract §2.1:

=====================  ======================  ======================
scheme                 c_S                     e_S
=====================  ======================  ======================
bernoulli              (n−B)/(B n)             0
with_replacement       1/B                     1/B
without_replacement    (n−B)/(B(n−1))          (n−B)/(B(n−1))
=====================  ======================  ======================

Alternating: T = T_F ∘ T_R. SAM: T(M) = A M Aᵀ + η² N_R(K M K), K = I + (ρ/a)H̄, A = I − ηH̄K.

Everything is evaluated on the span U of the Hessians that enter the dynamics (reduced
coordinates from :meth:`HessianSet.reduction`): on the common null space every step is the
identity, which would pin the full spectral radius at 1 and hide the answer (contract §3, "Null
space"). Applying T costs O(r³ + r²·Σk) for span dimension r; no d×d matrix is formed.

Files: ``operator`` (T on span coordinates), ``eigenbasis`` (summed T in the eigenbasis of E[J]),
``krylov`` (block Krylov, Newton on the symmetrised splitting), ``splitting`` (regular splitting
with Collatz–Wielandt brackets), ``enclosure`` (certified enclosures of ρ(T) and the decided
verdict), ``analysis`` (:func:`mean_square` and sign tests), ``critical`` (η*, B*, α*),
``stable_sets`` (exact stable sets), ``moments`` (second moments, mixed Hessian), ``config``
(sizes and round-off rules).
"""

from __future__ import annotations

from ..dynamics import noise_coefficients
from ..threads import blas_threads  # noqa: F401 (the BLAS policy, importable from here too)
from .analysis import (MeanSquareResult, mean_square, mean_square_rate, mean_square_stable,
                       _is_stable, _span_margin, _stability_margin)
from .config import (DENSE_MAX_SPAN, METHODS, PEP_MAX_SPAN, PERRON_DENSE_MAX_SPAN,
                     SPLITTING_MAX_SPAN)
from .critical import critical_alpha, critical_batch, critical_eta, stable_set
from .krylov import IDENTITY_SHARE, LANCZOS_MAX_STEPS, LANCZOS_MEMORY, _block_krylov_top, _secular_rate
from .moments import SecondMomentResult, mixed_hessian, mixed_hessian_extremes, second_moment
from .operator import MeanSquareOperator
from .splitting import _splitting_rate

__all__ = [
    "noise_coefficients",
    "MeanSquareOperator",
    "MeanSquareResult",
    "SecondMomentResult",
    "mean_square",
    "mean_square_rate",
    "mean_square_stable",
    "second_moment",
    "stable_set",
    "critical_eta",
    "critical_batch",
    "critical_alpha",
    "mixed_hessian",
    "mixed_hessian_extremes",
]
