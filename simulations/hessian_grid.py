"""The Dexter/Chang "Hessian test" grid (THEORY.md §7) — exact boundary vs published heuristic.

Grid: n samples; for σ ∈ {1..50}: d = n − σ + 1, H_i = (2n/σ) e₀e₀ᵀ for i < σ, else
(2n/σ) e_{i−σ+1}e_{i−σ+1}ᵀ (λ_max(H̄) = 2); batch B; η ∈ {0.5, 0.8}; batches without replacement.
The published verdict: "diverged" when ‖w‖² ≥ 1000‖w₀‖² within 1000 steps, majority of 10 runs.

Unlearning (α > 0) needs a forget set, which the protocol does not fix. Here the forget set is
the first ``n_forget`` samples of the coherent (shared-direction) block — min(n_forget, σ) of them
— so that forgetting means forgetting a *shared* feature; with fewer than σ forget samples the
retain set still carries the shared direction and the outcome depends on (B, σ, α, η). A forget
sample with its own orthogonal direction would make λ_min(D) < 0 and every η escape (critical
η = 0), which is shown by the exact analysis and is not an interesting diagram. The forget batch
is min(B, |F|).

Each grid cell is a pure function of (params, seed) — :func:`cell` — so the resumable sweep engine
(:mod:`simulations.sweep`) can run it serially, in processes or on Dask.
"""

from __future__ import annotations

import math

import numpy as np

import rmt
from rmt.ensembles import hessian_test

__all__ = ["grid_set", "cell", "dexter_thm1_sigma", "dexter_thm2_sigma", "HEURISTIC"]

#: The published heuristic: threshold on ‖w‖²/‖w₀‖², steps, runs.
HEURISTIC = {"threshold": 1000.0, "steps": 1000, "runs": 10}


def grid_set(n, sigma, alpha, n_forget, representation="rank1"):
    """HessianSet of one grid cell (forget set: first min(n_forget, σ) shared samples if α > 0)."""
    forget = None
    if alpha > 0:
        nf = min(int(n_forget), int(sigma))
        forget = np.arange(nf)
    return hessian_test(int(n), int(sigma), forget=forget, representation=representation)


def grid_schedule(hs, eta, batch, alpha, sampling="without_replacement"):
    fb = min(int(batch), hs.n_forget) if alpha > 0 else None
    return rmt.Schedule(float(eta), int(batch), alpha=float(alpha), sampling=sampling, forget_batch=fb)


def cell(params, seed):
    """One (n, σ, B, η, α) cell: exact ρ(T) (closed form) and the published heuristic (Monte Carlo).

    Returns ``rate`` (ρ(T) on the span), ``exact_diverges`` (ρ(T) > 1: forgets),
    ``heuristic_diverges`` (majority of ``runs`` runs reached ``threshold``·‖w₀‖² within
    ``steps`` steps; NaN when ``runs`` = 0) and ``escaped_fraction``.
    """
    n, sigma, batch = int(params["n"]), int(params["sigma"]), int(params["batch"])
    eta, alpha = float(params["eta"]), float(params.get("alpha", 0.0))
    n_forget = int(params.get("n_forget", 10))
    runs = int(params.get("runs", HEURISTIC["runs"]))
    steps = int(params.get("steps", HEURISTIC["steps"]))
    threshold = float(params.get("threshold", HEURISTIC["threshold"]))
    exact_hs = grid_set(n, sigma, alpha, n_forget, "commuting")
    if batch > exact_hs.n_retain:
        return {"rate": math.nan, "exact_diverges": math.nan, "heuristic_diverges": math.nan,
                "escaped_fraction": math.nan}
    sch = grid_schedule(exact_hs, eta, batch, alpha)
    rate = rmt.mean_square_rate(exact_hs, sch)
    out = {"rate": rate, "exact_diverges": float(rate > 1.0)}
    if runs > 0:
        # same Hessians; the commuting representation runs the O(B)-per-step diagonal kernel
        sim = rmt.simulate(exact_hs, sch, steps, runs, seed)
        esc = sim.escaped(threshold)
        out["escaped_fraction"] = float(esc.mean())
        out["heuristic_diverges"] = float(2 * int(esc.sum()) > runs)
    else:
        out["escaped_fraction"] = math.nan
        out["heuristic_diverges"] = math.nan
    return out


def dexter_thm1_sigma(n, batch, eta, lam=2.0):
    """Dexter et al. Thm 1 (THEORY §5.1): diverges if λ ≥ (σ/η)(n/B − 1)^{−1/2}, i.e. for
    σ ≤ ηλ√(n/B − 1). Returns that σ bound (divergence guaranteed at or below it)."""
    B = np.asarray(batch, dtype=float)
    with np.errstate(invalid="ignore"):
        return eta * lam * np.sqrt(np.maximum(n / B - 1.0, 0.0))


def dexter_thm2_sigma(n, batch, eta, lam=2.0):
    """Dexter et al. Thm 2 construction (THEORY §5.2): stable iff λ < (2/η)[1 + (n/B − 1)/σ]^{−1},
    i.e. σ > (n/B − 1)/(2/(ηλ) − 1) when ηλ < 2 (every σ diverges when ηλ ≥ 2). Returns the σ
    boundary (the construction is stable above it)."""
    B = np.asarray(batch, dtype=float)
    x = 2.0 / (eta * lam) - 1.0
    if x <= 0:
        return np.full(B.shape, np.inf)
    return (n / B - 1.0) / x
