"""The Dexter/Chang "Hessian test" grid (contract §7) — exact boundary vs published heuristic.

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
from numpy.typing import ArrayLike

import rmt
from rmt.meansquare.critical import smallest_stable_integer
from rmt.ensembles import hessian_test

__all__ = ["grid_set", "grid_schedule", "cell", "certify_cell", "certificate_counts",
           "critical_batch", "critical_batches",
           "thm1_sigma", "thm2_sigma", "theorem_curves", "dexter_thm1_sigma", "dexter_thm2_sigma",
           "SCHEME_NAMES", "HEURISTIC"]

#: How each sampling scheme is named in figure legends and captions.
SCHEME_NAMES = {"bernoulli": "Bernoulli", "with_replacement": "with replacement",
                "without_replacement": "without replacement"}

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


# ----------------------------------------------------------------------------- certificates
def certify_cell(params):
    """A verified certificate of one cell's exact verdict (contract §10.6).

    The cell's Hessians are diagonal in the standard basis (the "commuting" representation
    :func:`cell` uses), so :func:`rmt.certify` proves the verdict with a diagonal Y, checked in
    exact rational arithmetic by :mod:`rmt.verify` ("exact-commuting": T(diag y) =
    diag(E[J_j²] y_j), so both PSD checks are entrywise, O(n + d) per cell at any span). The
    float candidate resolves |ρ − 1| > :data:`rmt.certificates.COMMUTING_RESOLUTION`; closer to 1
    the exact rates choose the bound, so only ρ(T) = 1 exactly (neutral) has no certificate.

    Returns ``certified`` (1: a certificate verified; 0: none), ``forgets`` (its claim: 1 for
    "ρ ≥ c > 1", 0 for "ρ ≤ c < 1", NaN without one), ``bound`` (c), ``exactly_one`` (1 when
    refused because ρ(T) = 1 exactly) and ``near_one`` (1 when |c − 1| ≤ the float resolution);
    all NaN for cells with B > n_retain (no cell).
    """
    n, sigma, batch = int(params["n"]), int(params["sigma"]), int(params["batch"])
    eta, alpha = float(params["eta"]), float(params.get("alpha", 0.0))
    n_forget = int(params.get("n_forget", 10))
    hs = grid_set(n, sigma, alpha, n_forget, "commuting")
    nan = math.nan
    if batch > hs.n_retain:
        return {"certified": nan, "forgets": nan, "bound": nan, "exactly_one": nan,
                "near_one": nan}
    from rmt.certificates import COMMUTING_RESOLUTION, CertificateError

    try:
        cert = rmt.certify(hs, grid_schedule(hs, eta, batch, alpha))
    except CertificateError as exc:
        return {"certified": 0.0, "forgets": nan, "bound": nan,
                "exactly_one": float("exactly" in str(exc)), "near_one": 1.0}
    c = float(cert.c)
    return {"certified": 1.0, "forgets": float(cert.forgets), "bound": c, "exactly_one": 0.0,
            "near_one": float(abs(c - 1.0) <= COMMUTING_RESOLUTION)}


def certificate_counts(certified, forgets, exactly_one, exact_diverges):
    """Counts over the valid cells (finite ``exact_diverges``): ``certified`` (a verified
    certificate whose claim is the cell's exact verdict), ``certificate_disagrees`` (one that
    contradicts it: the float verdict was wrong — never expected), ``not_certifiable`` (no
    certificate; ``exactly_one`` of them because ρ(T) = 1 exactly)."""
    cert = np.asarray(certified, float)
    fg = np.asarray(forgets, float)
    ex = np.asarray(exact_diverges, float)
    valid = np.isfinite(ex) & np.isfinite(cert)
    made = valid & (cert == 1)
    return {"certified": int(np.sum(made & (fg == ex))),
            "certificate_disagrees": int(np.sum(made & (fg != ex))),
            "not_certifiable": int(np.sum(valid & (cert == 0))),
            "exactly_one": int(np.sum(valid & (cert == 0) & (np.asarray(exactly_one) == 1)))}


# ----------------------------------------------------------------------------- exact frontier
def critical_batch(n, sigma, eta, alpha=0.0, n_forget=10, b_max=None, sampling="without_replacement"):
    """Smallest integer batch B ∈ 1..b_max whose grid cell is mean-square stable, ρ(T) ≤ 1.

    The cell's own rule (:func:`grid_schedule`: forget batch min(B, |F|)) and the cell's own
    verdict (``rate > 1`` diverges), so the frontier and the verdict map cannot disagree. ρ(T) is
    non-increasing in B (each noise coefficient c(B) decreases, the forget batch min(B, |F|) does
    not decrease, and T is monotone in its noise part on the PSD cone), so an integer bisection
    on the exact rate is exact. ``b_max`` defaults to n_retain. Returns None when even B = b_max
    diverges. For α = 0 this is :func:`rmt.critical_batch` restricted to 1..b_max.
    """
    hs = grid_set(n, sigma, alpha, n_forget, "commuting")
    b_max = hs.n_retain if b_max is None else min(int(b_max), hs.n_retain)

    def stable(B):
        return rmt.mean_square_rate(hs, grid_schedule(hs, eta, B, alpha, sampling)) <= 1.0

    if not stable(b_max):
        return None
    return smallest_stable_integer(stable, 0, b_max)[1]


def critical_batches(n, sigmas, eta, alpha=0.0, n_forget=10, b_max=None,
                     sampling="without_replacement"):
    """:func:`critical_batch` for every σ in ``sigmas`` (None where no B ≤ b_max is stable)."""
    return [critical_batch(n, s, eta, alpha, n_forget, b_max, sampling) for s in sigmas]


# ----------------------------------------------------------------------------- theorem curves
def _noise_c(n: int, B: ArrayLike, sampling: str) -> np.ndarray:
    """Coefficient c of C(M) in N(M) = c·C(M) (contract §2.1) for with/without replacement."""
    B = np.asarray(B, dtype=float)
    if sampling == "with_replacement":
        return 1.0 / B
    if sampling == "without_replacement":
        return (n - B) / (B * (n - 1.0))
    raise ValueError(f"sampling must be 'with_replacement' or 'without_replacement', got {sampling!r}")


def thm1_sigma(n: int, batch: ArrayLike, eta: float, lam: float = 2.0,
               sampling: str = "bernoulli") -> np.ndarray:
    """σ at or below which SGD provably diverges (α = 0), for the given sampling scheme.

    Bernoulli: Dexter et al. Theorem 1 (contract §5.1), λ ≥ (σ/η)(n/B − 1)^{−1/2}, i.e.
    σ ≤ ηλ√(n/B − 1). With / without replacement there is no Dexter theorem; the proven
    analogue is contract §5.4(a) at α = 0: η²cλ²(n/σ − 1)²/(n − 1) ≥ 1 with c = 1/B resp.
    (n − B)/(B(n − 1)), i.e. σ ≤ n / (1 + √((n − 1)/c)/(ηλ)) (0 when c = 0: B = n without
    replacement has no sampling noise).
    """
    B = np.asarray(batch, dtype=float)
    if sampling == "bernoulli":
        return eta * lam * np.sqrt(np.maximum(n / B - 1.0, 0.0))
    c = _noise_c(n, B, sampling)
    with np.errstate(divide="ignore"):
        k = np.where(c > 0, np.sqrt((n - 1.0) / np.where(c > 0, c, 1.0)) / (eta * lam), np.inf)
    return n / (1.0 + k)


def thm2_sigma(n: int, batch: ArrayLike, eta: float, lam: float = 2.0,
               sampling: str = "bernoulli") -> np.ndarray:
    """σ above which Dexter's Theorem 2 construction is mean-square stable, for ``sampling``.

    Construction (contract §5.2): σ identical Hessians (λn/σ)e₁e₁ᵀ and n − σ zeros — exactly the
    shared direction of the Hessian-test grid. Its one active direction has
    E[j²] = (1 − ηλ)² + η²N with N = λ²(n/B − 1)/σ (Bernoulli) or cλ²(n/σ − 1) (with / without
    replacement, c as in :func:`thm1_sigma`), so with x = 2/(ηλ) − 1 it is stable (E[j²] < 1)
    iff σ > (n/B − 1)/x (Bernoulli) or σ > nc/(c + x) (with / without replacement). Every σ
    diverges when ηλ ≥ 2 (returns inf).
    """
    B = np.asarray(batch, dtype=float)
    x = 2.0 / (eta * lam) - 1.0
    if x <= 0:
        return np.full(B.shape, np.inf)
    if sampling == "bernoulli":
        return (n / B - 1.0) / x
    c = _noise_c(n, B, sampling)
    return n * c / (c + x)


def theorem_curves(n: int, batch: ArrayLike, eta: float, sampling: str,
                   lam: float = 2.0) -> list[dict]:
    """The theorem curves of ``sampling`` over the batch sizes ``batch`` (SGD, α = 0).

    A list of dicts ``name``, ``label`` (names the scheme), ``sigma`` (array over ``batch``),
    ``side`` ("diverges at or below" / "stable above") and ``source`` (its contract section).
    Bernoulli: Dexter Theorems 1 and 2. With / without replacement: the §5.4(a) bound (the
    scheme's proven analogue of Theorem 1) and the Theorem 2 construction's exact condition in
    that scheme — never a Bernoulli formula.
    """
    scheme = SCHEME_NAMES[sampling]
    if sampling == "bernoulli":
        first = ("dexter-thm1", f"Dexter Thm 1, {scheme}: diverges at/below", "§5.1")
    else:
        first = ("unlearning-retain-noise",
                 f"contract §5.4(a) bound (α=0), {scheme}: diverges at/below", "§5.4(a)")
    return [
        dict(name=first[0], label=first[1], sigma=thm1_sigma(n, batch, eta, lam, sampling),
             side="diverges at or below", source=first[2]),
        dict(name="dexter-thm2-construction",
             label=f"Dexter Thm 2 construction, {scheme}: stable above",
             sigma=thm2_sigma(n, batch, eta, lam, sampling), side="stable above", source="§5.2"),
    ]


def dexter_thm1_sigma(n: int, batch: ArrayLike, eta: float, lam: float = 2.0) -> np.ndarray:
    """Bernoulli only (use :func:`thm1_sigma` for other schemes). Dexter et al. Thm 1
    (contract §5.1): diverges if λ ≥ (σ/η)(n/B − 1)^{−1/2}, i.e. for σ ≤ ηλ√(n/B − 1). Returns that σ bound (divergence guaranteed at or below it)."""
    B = np.asarray(batch, dtype=float)
    with np.errstate(invalid="ignore"):
        return eta * lam * np.sqrt(np.maximum(n / B - 1.0, 0.0))


def dexter_thm2_sigma(n: int, batch: ArrayLike, eta: float, lam: float = 2.0) -> np.ndarray:
    """Bernoulli only (use :func:`thm2_sigma` for other schemes). Dexter et al. Thm 2
    construction (contract §5.2): stable iff λ < (2/η)[1 + (n/B − 1)/σ]^{−1}, i.e. σ > (n/B − 1)/(2/(ηλ) − 1) when ηλ < 2 (every σ diverges when ηλ ≥ 2). Returns the σ
    boundary (the construction is stable above it)."""
    B = np.asarray(batch, dtype=float)
    x = 2.0 / (eta * lam) - 1.0
    if x <= 0:
        return np.full(B.shape, np.inf)
    return (n / B - 1.0) / x
