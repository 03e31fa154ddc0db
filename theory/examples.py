"""Canonical worked examples reused by the tests and the docs (like sympy.physics.mechanics.models).

Each function returns a small :class:`Example` — an (hs, schedule) pair plus the numbers a reader
can verify by hand (``expected``), worked out in the docstring. The regression counterexamples
found by :func:`theory.search_counterexample` are stored here verbatim (docs/theory.md, findings).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rmt import HessianSet, Schedule

__all__ = [
    "Example",
    "orthogonal_noise_blowup",
    "near_optimal_construction",
    "identical_hessians",
    "unlearning_mean_escape_example",
    "wu_ma_e_counterexample",
    "scheme_analogue_counterexample",
    "coherence_resistance_counterexample",
    "coherence_sum_counterexample",
    "all_examples",
]


@dataclass(frozen=True)
class Example:
    """A worked example: ``hs``, ``schedule`` and hand-derived ``expected`` values."""

    name: str
    hs: HessianSet = field(repr=False)
    schedule: Schedule
    expected: dict
    description: str | None = ""


def orthogonal_noise_blowup(n: int = 4, eta: float = 1.5) -> Example:
    """σ = 1, H̄ = I, η·λ_max(D) = 1.5 < 2 and D ≻ 0, yet Bernoulli SGD with B = 1 diverges.

    H_i = n e_ie_iᵀ (i = 1..n, d = n): per direction m = 1, q = (1/n)·n² = n,
    V = c·q = ((n−B)/(Bn))·n = n − 1, so ρ(T) = (1 − η)² + η²(n − 1); with n = 4, η = 1.5:
    0.25 + 2.25·3 = 7. Exact critical η* = 2m/(m² + V) = 2/n = 0.5. Refutes "naive-mean-stability".
    """
    H = np.zeros((n, n, n))
    for i in range(n):
        H[i, i, i] = n
    hs = HessianSet.from_dense(H)
    sch = Schedule(eta=eta, batch=1, sampling="bernoulli")
    return Example("orthogonal-noise-blowup", hs, sch,
                   {"rate": (1 - eta) ** 2 + eta**2 * (n - 1), "critical_eta": 2.0 / n,
                    "sigma": 1.0}, orthogonal_noise_blowup.__doc__)


def near_optimal_construction(n: int = 6, sigma: int = 2, batch: int = 2, lam: float = 1.0,
                              eta: float = 0.9) -> Example:
    """Dexter Thm 2 construction: H_i = (λn/σ)e₁e₁ᵀ for i ≤ σ, 0 otherwise, Bernoulli.

    Critical η* = (2/λ)/(1 + (n/B − 1)/σ); with n = 6, σ = 2, B = 2, λ = 1: 2/(1 + 2/2) = 1.
    At η = 0.9: m = 1, q = λ²n/σ = 3, V = ((n−B)/(Bn))·q = (4/12)·3 = 1, so
    ρ(T) = (1 − 0.9)² + 0.81·1 = 0.82. Dexter Thm 1 gives η_thm = σ/(λ√(n/B − 1)) = 2/√2 = √2.
    """
    G = np.zeros((n, 2))
    G[:sigma, 0] = np.sqrt(lam * n / sigma)
    hs = HessianSet.from_factors(G)
    sch = Schedule(eta=eta, batch=batch, sampling="bernoulli")
    return Example("near-optimal-construction", hs, sch,
                   {"critical_eta": 1.0, "rate": 0.82, "sigma": float(sigma),
                    "dexter_thm1_eta": np.sqrt(2.0)}, near_optimal_construction.__doc__)


def identical_hessians(n: int = 5, batch: int = 2, sampling: str = "without_replacement",
                       eta: float = 1.0) -> Example:
    """σ = n: all H_i = e₁e₁ᵀ. Without/with replacement the batch Hessian is constant, so SGD is
    gradient descent: ρ(T) = (1 − η)², η* = 2 (= 2/λ_max, the B → n limit for any B).
    Bernoulli still has batch-size noise: V = ((n−B)/(Bn))·1, η* = 2/(1 + (n−B)/(Bn)).
    """
    G = np.zeros((n, 2))
    G[:, 0] = 1.0
    hs = HessianSet.from_factors(G)
    sch = Schedule(eta=eta, batch=batch, sampling=sampling)
    crit = 2.0 if sampling != "bernoulli" else 2.0 / (1 + (n - batch) / (batch * n))
    return Example("identical-hessians", hs, sch,
                   {"critical_eta": crit, "sigma": float(n),
                    "rate": (1 - eta) ** 2 + (0.0 if sampling != "bernoulli"
                                              else eta**2 * (n - batch) / (batch * n))},
                   identical_hessians.__doc__)


def unlearning_mean_escape_example(alpha: float = 0.5, eta: float = 0.1) -> Example:
    """Forget curvature outside the retain span: D = (1−α)e₁e₁ᵀ − αe₂e₂ᵀ has λ_min = −α < 0, so
    ascent escapes for every η > 0 (contract §5.4 (c)); exact critical η* = 0.
    Full-batch (B = n = 1, Bernoulli: no noise): ρ(T) = max((1 − η(1−α))², (1 + ηα)²) = 1.1025
    with α = 0.5, η = 0.1: (1 + 0.05)² = 1.1025.
    """
    R = np.array([[1.0, 0.0]])
    F = np.array([[0.0, 1.0]])
    hs = HessianSet.from_factors(R, F)
    sch = Schedule(eta=eta, batch=1, alpha=alpha, sampling="bernoulli")
    return Example("unlearning-mean-escape", hs, sch,
                   {"critical_eta": 0.0,
                    "rate": max((1 - eta * (1 - alpha)) ** 2, (1 + eta * alpha) ** 2)},
                   unlearning_mean_escape_example.__doc__)


# ---------------------------------------------------------------------- regression counterexamples
def wu_ma_e_counterexample() -> Example:
    """Shrunk counterexample to the literal d-dimensional Wu–Ma–E non-uniformity condition.

    Four rank-one Hessians in d = 2, without replacement, B = 1, η = 1.7376536562041134 equal to
    the condition's threshold √(B(n−1)/(n−B))/s (and η·λ_max(H̄) < 2), yet the exact
    ρ(T) = 0.941677 < 1: stable although the "necessary condition" is violated. Found by
    ``search_counterexample`` (seed 0, theorem_instances).
    """
    H = np.array([
        [[0.14347083867140872, -0.09684769820076057], [-0.09684769820076057, 0.06537549186749662]],
        [[0.8502080588496999, 0.6174968093312128], [0.6174968093312128, 0.4484811753609064]],
        [[0.24762164105816173, 0.4452608386609126], [0.4452608386609126, 0.8006457496921777]],
        [[0.19423552782561257, -0.01287871378324148], [-0.01287871378324148, 0.0008539182845044]],
    ])
    hs = HessianSet.from_dense(H)
    sch = Schedule(eta=1.7376536562041134, batch=1, sampling="without_replacement")
    return Example("wu-ma-e-counterexample", hs, sch, {"rate_below": 1.0},
                   wu_ma_e_counterexample.__doc__)


def scheme_analogue_counterexample(lam: float = 0.41014117120079824) -> Example:
    """One sample, with replacement, B = 1: the "scheme analogue" of (a) claims divergence at
    η = σ/(λ√(n c)) = 1/λ, but a single sample has no sampling noise (C ≡ 0):
    ρ(T) = (1 − ηλ)² = 0.
    """
    hs = HessianSet.from_factors(np.array([[np.sqrt(lam)]]))
    sch = Schedule(eta=1.0 / lam, batch=1, sampling="with_replacement")
    return Example("scheme-analogue-counterexample", hs, sch, {"rate": 0.0},
                   scheme_analogue_counterexample.__doc__)


def coherence_resistance_counterexample() -> Example:
    """Candidate B of §5.5 fails: d = 1, retain {1}, forget {0.28694…, 0.13075…, 1.70042…},
    α = 0.5, Bernoulli, B = B_F = 1. D = 0.5 − 0.5·0.70603… ≈ 0.147 > 0, η = 4.8548 is below the
    candidate's threshold 9.7097, yet ρ(T) = 3.998 > 1: the forget-set noise alone diverges.
    """
    R = np.array([[1.0]])
    F = np.sqrt(np.array([[0.28694167734281756], [0.13075098373499328], [1.7004161176994]]))
    hs = HessianSet.from_factors(R, F)
    sch = Schedule(eta=4.854832331779793, batch=1, alpha=0.5, sampling="bernoulli",
                   forget_batch=1)
    return Example("coherence-resistance-counterexample", hs, sch, {"rate_above": 1.0},
                   coherence_resistance_counterexample.__doc__)


def coherence_sum_counterexample() -> Example:
    """Candidate A of §5.5 fails: the retain and forget noise terms do not add.

    d = 2, retain factors (0.35, −0.06), (0.05, 0.28) (nearly orthogonal, σ_R ≈ 1,
    λ̄_R = 0.0631), forget factors (−0.5, 0.1), (0.01, 0), (1.2, 7.0) (σ_F ≈ 1, λ̄_F = 16.81),
    α = 0.001, Bernoulli, B = B_F = 1. The candidate's threshold
    η_A = [(1−α)²(n_R/B−1)λ̄_R²/σ_R² + α²(n_F/B_F−1)λ̄_F²/σ_F²]^{−1/2} = 14.853, yet at
    η = 14.8532 ≥ η_A the exact ρ(T) = 0.9069 < 1 (exact η* = 15.876). Each set's own bound
    (proven (a): 15.876, (b): 42.06) is a lower bound of ρ(T) through a *different* test matrix
    (the top direction of the sharpest retain sample vs. that of the sharpest forget sample —
    orthogonal here: (0.35, −0.06)·(1.2, 7.0) = 0), so the two cannot be added:
    ρ(N_R + N_F) ≥ max, not the sum.
    """
    R = np.array([[0.35, -0.06], [0.05, 0.28]])
    F = np.array([[-0.5, 0.1], [0.01, 0.0], [1.2, 7.0]])
    hs = HessianSet.from_factors(R, F)
    sch = Schedule(eta=14.8532, batch=1, alpha=0.001, sampling="bernoulli", forget_batch=1)
    return Example("coherence-sum-counterexample", hs, sch,
                   {"rate_below": 1.0, "threshold": 14.853197924148, "rate": 0.906867,
                    "critical_eta": 15.876259874371},
                   coherence_sum_counterexample.__doc__)


def all_examples() -> dict[str, Example]:
    """Every worked example (name → Example)."""
    exs = [orthogonal_noise_blowup(), near_optimal_construction(), identical_hessians(),
           unlearning_mean_escape_example(), wu_ma_e_counterexample(),
           scheme_analogue_counterexample(), coherence_resistance_counterexample(),
           coherence_sum_counterexample()]
    return {e.name: e for e in exs}
