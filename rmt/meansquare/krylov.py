"""Block Krylov (Rayleigh–Ritz) for the top of a symmetric operator; Newton on the symmetrised splitting."""

from __future__ import annotations

import math

import numpy as np

#: Memory for the Krylov basis of :meth:`MeanSquareOperator._lanczos` (bytes, basis and its
#: image together) and the cap on its length.
LANCZOS_MEMORY = 2 * 1024**3
LANCZOS_MAX_STEPS = 400
#: Share of the identity added to a warm start (e.g. the pole guess) of the Krylov solvers: the
#: identity overlaps every PSD eigenmatrix (⟨I, X⟩ = tr X > 0), so a start that happens to be
#: an exact non-Perron eigenmatrix still leads to the Perron value.
IDENTITY_SHARE = 0.1


def _block_krylov_top(apply, starts, tol, max_vectors=None):
    """Largest eigenvalue of a symmetric operator: Rayleigh–Ritz on a block Krylov space.

    The space is K_j(T, [x₁ … x_b]) = span{x_i, T x_i, …, T^{j−1} x_i}, built one block at a
    time with full reorthogonalisation (classical Gram–Schmidt, twice) and the images T v kept,
    so that the projected matrix Vᵀ T V and the residual ‖T u − θu‖ of the top Ritz pair are
    exact (no three-term recurrence to lose orthogonality). With one start this is Lanczos.

    A block contains the Krylov space of each of its starts (θ₁ is at least what single-vector
    Lanczos from any one start gives after as many steps). The solvers here use one start, a
    warm guess mixed with ``IDENTITY_SHARE`` of the identity: a block [guess, I] stops as soon
    as the guess's own residual is small, which an exact non-Perron eigenmatrix satisfies.

    Stops when the top Ritz pair (θ₁, u) has residual ε = ‖T u − θ₁u‖ ≤ tol·|θ₁| (ARPACK's
    rule; θ₁ ≤ λ₁ always, and an eigenvalue lies within ε of θ₁). An eigenvalue rule (Kato–Temple
    with the Ritz gap θ₁ − θ₂ standing in for λ₁ − λ₂) needs a fraction of the steps but is
    wrong when λ₂ is close to λ₁ and not yet resolved — 1e-10 errors at tol = 1e-12 on spans
    with a near-double top eigenvalue of E[J] — so it is not used. Returns (θ₁, u, basis size),
    or None when the basis would exceed ``LANCZOS_MEMORY``/``LANCZOS_MAX_STEPS``/``max_vectors``
    before convergence.
    """
    n = starts[0].size
    cap = min(n, LANCZOS_MAX_STEPS, max(2, LANCZOS_MEMORY // (16 * n)))
    if max_vectors is not None:
        cap = min(cap, max_vectors)
    V = np.empty((cap, n))
    W = np.empty((cap, n))
    H = np.zeros((cap, cap))
    m = 0  # basis size
    eps = np.finfo(float).eps
    block = [np.array(x, dtype=float) for x in starts]
    scale = 0.0
    while True:
        new = []
        for x in block:
            if m + len(new) >= cap:
                return None
            nx = float(np.linalg.norm(x))
            B = V[: m + len(new)]
            for _ in range(2):  # classical Gram–Schmidt, twice: orthogonal to working precision
                x = x - B.T @ (B @ x)
            nrm = float(np.linalg.norm(x))
            if nrm <= 64 * eps * max(nx, scale):  # already in the space: deflate this start
                continue
            V[m + len(new)] = x / nrm
            new.append(m + len(new))
        if not new:  # the space is invariant: its Ritz values are eigenvalues
            return (float(theta[-1]), V[:m].T @ S[:, -1], m) if m else None
        for i in new:
            W[i] = apply(V[i].copy())
        k = m + len(new)
        H[:k, m:k] = V[:k] @ W[m:k].T
        H[m:k, :m] = H[:m, m:k].T
        m = k
        Hs = 0.5 * (H[:m, :m] + H[:m, :m].T)
        theta, S = np.linalg.eigh(Hs)
        s1 = S[:, -1]
        u, Tu = V[:m].T @ s1, W[:m].T @ s1
        t1 = float(theta[-1])
        res = float(np.linalg.norm(Tu - t1 * u))
        scale = max(abs(t1), float(np.max(np.abs(theta))), np.finfo(float).tiny)
        if res <= tol * scale:
            return t1, u, m
        block = [W[i] for i in new]



def _secular_rate(eig, guess, tol, max_newton=40):
    """ρ(T) = ρ(𝒜) + δ* from the splitting T = 𝒜 + 𝒩 of the summed T (self-adjoint).

    In the eigenbasis of E[J], 𝒜 is the diagonal (a_i a_j) and D(δ) = ρ(𝒜) + δ − a_i a_j ≥ δ.
    For δ > 0, T X = (ρ(𝒜) + δ) X  ⇔  K̃(δ) y = y with the *symmetric* positive map
    K̃(δ) = D^{-1/2} 𝒩 D^{-1/2} and y = D^{1/2} ∘ X, and ρ(T) > ρ(𝒜) + δ ⇔ κ(δ) = λ_max K̃(δ) > 1
    (regular splitting, contract §3). K̃ no longer carries 𝒜's cluster of eigenvalues near 1 (the
    reason Lanczos on T needs many steps when ρ(T) sits just above ρ(𝒜)); its top eigenvalue
    is found by Lanczos in a few steps (:func:`_block_krylov_top`, identity share in the start).

    1/κ(δ) = min_x xᵀD(δ)x / xᵀ𝒩x is a minimum of affine functions of δ: concave and
    increasing, with derivative ‖D^{-1/2}y‖²/κ (envelope theorem). Newton on 1/κ − 1 from a
    point left of the root therefore climbs monotonically and quadratically to δ*; it starts
    at the Rayleigh quotient θ of the pole guess (θ ≤ ρ(T), so δ₀ = θ − ρ(𝒜) ≤ δ*) and keeps a
    bracket [lo, hi] of δ* from the signs of κ − 1. The first κ solve starts from the pole guess
    plus an identity share; later ones continue from the previous Perron vector, each only as
    accurate as its Newton step needs (≤ 1e-2·|1/κ − 1|), and the last at 0.1·``tol``.

    Returns (ρ, X in the eigenbasis) or None when it does not apply (θ ≤ ρ(𝒜): no certified
    start right of the pole) or a step fails; the caller then runs Lanczos on T.
    """
    aa = eig.aa
    den = eig.one_minus_aa
    mu_A = 1.0 - float(np.min(den))
    # ρ(𝒜) − a_i a_j ≥ 0 (a_i a_j ≤ max(a_i², a_j²)), formed once from 1 − a_i a_j: δ keeps its digits
    gap0 = den - float(np.min(den))
    N0 = eig.noise(guess)
    TX = aa * guess + 0.5 * (N0 + N0.T)
    theta = float(np.vdot(guess, TX) / np.vdot(guess, guess))  # Rayleigh quotient: ≤ ρ(T)
    lo, hi = theta - mu_A, math.inf
    if not lo > 0.0:
        return None
    delta, y = lo, None
    r = aa.shape[0]
    eye = np.eye(r) / np.sqrt(r)
    X = guess
    full = 0.1 * tol
    inner = max(full, 1e-6)
    prev_g, creep = None, 0
    for _ in range(max_newton):
        Dh = np.sqrt(gap0 + delta)
        K = eig.symmetrised_splitting(Dh)
        if y is None:  # first solve: the identity share keeps every PSD eigenmatrix in reach
            start = Dh * X
            start = start / np.linalg.norm(start) + IDENTITY_SHARE * eye
        else:  # continuation in δ: the previous Perron vector
            start = y
        out = _block_krylov_top(K, [eig.pack(start)], inner)
        if out is None:
            return None
        kappa, yv, _ = out
        if not (kappa > 0.0) or not np.isfinite(kappa):
            return None
        y = eig.unpack(yv)
        if y.trace() < 0:
            y = -y
        X = y / Dh
        slope = float(np.vdot(X, X)) / kappa  # d(1/κ)/dδ
        g = 1.0 / kappa - 1.0
        if kappa > 1.0:  # a Ritz value is ≤ λ_max: κ > 1 is certain
            lo = max(lo, delta)
        elif kappa * (1.0 + inner) < 1.0:
            hi = min(hi, delta)
        nxt = delta - g / slope
        if nxt < lo:  # a step left of a certified κ > 1 (from the right, or round-off at the root)
            nxt = lo
        elif nxt > hi:
            nxt = math.sqrt(max(lo, delta) * hi)
        if g < 0 and prev_g is not None and prev_g < 0 and g / prev_g > 0.25 and nxt > delta:
            # Newton creeping up from the left (linear, not quadratic, convergence): a weakly
            # coupled pole dominates κ far left of a root driven by the rest (κ − 1 ~ a/δ halves
            # as δ doubles). Grow the step geometrically until κ < 1 brackets the root, then
            # halve the bracket in log δ while Newton still creeps.
            creep += 1
            if math.isfinite(hi):
                nxt = max(nxt, math.sqrt(delta * hi))
            else:
                nxt = delta * (nxt / delta) ** (2 ** creep)
        else:
            creep = 0
        prev_g = g
        small = abs(nxt - delta) <= 0.1 * tol * (mu_A + delta) or hi - lo <= 0.1 * tol * (mu_A + lo)
        if small and inner <= full:
            return mu_A + nxt, X
        # inexact Newton: each solve only as accurate as the current step needs
        inner = full if small else max(full, min(1e-4, 1e-2 * abs(g)))
        delta = nxt
    return None


