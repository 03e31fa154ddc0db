"""Random-matrix limits of the toolkit's own quantities (contract §9).

Reference ensemble (docs/asymptotics.md states it in the same words): rank-one per-sample
Hessians H_i = g_i g_iᵀ with g_i i.i.d. N(0, I_d/d); retain n_r samples, forget n_f samples;
"online" means a fresh batch of B such samples at every step (the n → ∞ limit of sampling with
replacement).

Three groups of results; each states whether it is exact at finite size or a limit law:

1. **Online isotropic SGD/unlearning — exact for every finite d** (:mod:`.isotropic`).
   J = I − c_R Σ_{b≤B_R} g_b g_bᵀ + c_F Σ_{b≤B_F} h_b h_bᵀ, c_R = η(1−α)/B_R, c_F = ηα/B_F.
   The law of J is invariant under J ↦ QJQᵀ, so (uniform measure on the sphere is stationary)
   λ₁ = E log‖J e₁‖. Conditioning on the first rows a_R = G_Rᵀe₁, a_F = G_Fᵀe₁ gives
   ‖J e₁‖² = (1 − c_R s_R + c_F s_F)² + (c_R² s_R + c_F² s_F) t,
   s_R ~ χ²_{B_R}/d, s_F ~ χ²_{B_F}/d, t ~ χ²_{d−1}/d independent (the batch sum is not rank one,
   but its action on e₁ only involves ‖a‖²; sympy: :func:`theory.asymptotics.online_reduction`).
   :func:`isotropic_lyapunov` = ½E log(·) by quadrature; :func:`isotropic_mean_square` =
   E‖Je₁‖² = ρ(T) exactly (closed form; T commutes with conjugation, its Perron eigenmatrix is
   ∝ I). Spectrum: λ₁+…+λ_k = E log vol_k(J E_k); for rank-one steps (one set with batch 1) this is
   ½E log[(1 − c s_k)² + c² s_k t_k], s_k ~ χ²_k/d, t_k ~ χ²_{d−k}/d
   (:func:`isotropic_lyapunov_spectrum`). :func:`online_lyapunov` is the numba Monte Carlo of the
   full d-dimensional product (independent check; :mod:`.online_montecarlo`).
2. **Finite-sum ensemble in the proportional limit** n, d → ∞, n/d → γ (q = d/n = 1/γ;
   :mod:`.proportional`). d·H̄ has the Marchenko–Pastur law with ratio q (:class:`MarchenkoPastur`).
   With η = η̃d and the sampling weight w of the scheme (contract §2.1; ω = d·w), T acts on
   functions f(dH̄) as (Tf)(ν) = a(ν)f(ν) + η̃²ω ν ∫ν′f(ν′)dμ(ν′), a(ν) = (1 − η̃ν)² − η̃²w′ν²
   (w′ = w for the two schemes whose noise is w·C(M), 0 for Bernoulli), so ρ(T) solves
   1 = η̃²ω ∫ν²/(ρ − a(ν)) dμ(ν) above the edge max a (:func:`sgd_rate_limit`) and the critical
   step is η̃* = 2Ω/((1−w′)(Ω+1)(Ω+q)) for Ω = ω/(1−w′) ≥ √q, else 2/((1−w′)λ₊)
   (:func:`sgd_critical_eta_limit`). The mixed Hessian D = (1−α)H̄_R − αH̄_F of independent blocks
   has the free difference law: edges from the critical points of the inverse Cauchy transform
   (:func:`mixed_hessian_edges`), density by the subordination fixed point
   (:func:`mixed_hessian_density`).
3. **Coherence** S_ij = |g_iᵀg_j| = mean spike + Wigner-like bulk (:func:`gaussian_coherence`),
   and the signal-plus-noise CNN at initialisation (:func:`cnn_coherence_limit`,
   :func:`memorisation_snr`; :mod:`.coherence_limits`).

Finite-size predictions are the limit laws evaluated at the finite ratios (q = d/n, ω = d·w):
the tests compare them with sampled matrices at growing d and check the error shrinks.
"""

from __future__ import annotations

from . import coherence_limits, isotropic, online_montecarlo, proportional
from .coherence_limits import *  # noqa: F401,F403
from .isotropic import *  # noqa: F401,F403
from .online_montecarlo import *  # noqa: F401,F403
from .online_montecarlo import _online_reference, _streams  # noqa: F401  (used by the tests)
from .proportional import *  # noqa: F401,F403
from .proportional import SAMPLING, _cubic_density  # noqa: F401  (used by the tests)

__all__ = [
    *isotropic.__all__,
    *online_montecarlo.__all__,
    *proportional.__all__,
    *coherence_limits.__all__,
    "REFERENCE_ENSEMBLE",
]

REFERENCE_ENSEMBLE = (
    "rank-one per-sample Hessians H_i = g_i g_iᵀ with g_i i.i.d. N(0, I_d/d); retain n_r samples, "
    "forget n_f samples; \"online\" means a fresh batch of B such samples at every step (the "
    "n → ∞ limit of sampling with replacement)."
)
