"""Independent dense oracles for tiny cases.

Nothing here uses rmt's operator code or its sampling table: the batch distributions are
enumerated outright, J is formed as a dense d×d matrix for every outcome, and
E[J ⊗ J] = Σ_outcomes p·J⊗J is the d²×d² Kronecker matrix of M ↦ E[J M Jᵀ].
"""

from __future__ import annotations

import itertools
from collections import Counter
from math import comb

import numpy as np


def batch_outcomes(n, B, sampling):
    """List of (probability, x) with x the per-sample multiplicities of one batch draw."""
    out = []
    if sampling == "bernoulli":
        p = B / n
        for bits in itertools.product((0, 1), repeat=n):
            k = sum(bits)
            out.append((p**k * (1 - p) ** (n - k), np.array(bits, float)))
    elif sampling == "with_replacement":
        counts = Counter()
        for seq in itertools.product(range(n), repeat=B):
            x = np.bincount(seq, minlength=n)
            counts[tuple(x)] += 1
        for x, c in counts.items():
            out.append((c / n**B, np.array(x, float)))
    elif sampling == "without_replacement":
        total = comb(n, B)
        for subset in itertools.combinations(range(n), B):
            x = np.zeros(n)
            x[list(subset)] = 1
            out.append((1 / total, x))
    else:
        raise ValueError(sampling)
    assert abs(sum(p for p, _ in out) - 1) < 1e-12
    return out


def batch_hessians(H, B, sampling):
    """[(p, Ĥ)] with Ĥ = (1/B) Σ x_i H_i for every batch outcome."""
    return [(p, np.einsum("i,iab->ab", x, H) / B) for p, x in batch_outcomes(len(H), B, sampling)]


def jacobians(HR, HF, eta, B, alpha, sampling, schedule, BF=None, sam_rho=0.0, sam_a=1.0):
    """[(p, J)] over all (retain batch, forget batch) outcomes."""
    d = HR.shape[1]
    I = np.eye(d)
    BF = B if BF is None else BF
    R = batch_hessians(HR, B, sampling) if alpha < 1 else [(1.0, np.zeros((d, d)))]
    F = batch_hessians(HF, BF, sampling) if alpha > 0 else [(1.0, np.zeros((d, d)))]
    out = []
    if schedule == "sam":
        K = I + (sam_rho / sam_a) * HR.mean(axis=0)
        return [(p, I - eta * Hr @ K) for p, Hr in R]
    for (pr, Hr), (pf, Hf) in itertools.product(R, F):
        if schedule == "summed":
            J = I - eta * (1 - alpha) * Hr + eta * alpha * Hf
        else:
            J = (I + eta * alpha * Hf) @ (I - eta * (1 - alpha) * Hr)
        out.append((pr * pf, J))
    return out


def span_basis(mats, rtol=1e-10):
    """Orthonormal basis of the span of PSD matrices (eigenvectors of their sum)."""
    S = sum(mats)
    lam, V = np.linalg.eigh(S)
    return V[:, lam > rtol * max(lam.max(), 1e-300)]


def oracle_rate(HR, HF, eta, B, alpha, sampling, schedule, **kw):
    """ρ(E[J⊗J]) restricted to the span of the Hessians that enter J."""
    active = []
    if alpha < 1 or schedule == "sam":
        active += list(HR)
    if alpha > 0 and schedule != "sam":
        active += list(HF)
    U = span_basis(active)
    K = sum(p * np.kron(U.T @ J @ U, U.T @ J @ U) for p, J in jacobians(HR, HF, eta, B, alpha, sampling, schedule, **kw))
    return float(np.max(np.abs(np.linalg.eigvals(K)))), U.shape[1]


def oracle_second_moments(HR, HF, eta, B, alpha, sampling, schedule, M0, steps, **kw):
    """E[w_k w_kᵀ] for k = 0..steps by iterating Σ p J M Jᵀ in the full space."""
    Js = jacobians(HR, HF, eta, B, alpha, sampling, schedule, **kw)
    out = [M0]
    M = M0
    for _ in range(steps):
        M = sum(p * J @ M @ J.T for p, J in Js)
        out.append(M)
    return np.array(out)


def sample_batch_matrices(rng, H, B, sampling, size):
    """Monte Carlo draws of Ĥ, shape (size, d, d), by direct sampling (independent of rmt)."""
    n = len(H)
    if sampling == "bernoulli":
        x = (rng.random((size, n)) < B / n).astype(float)
    elif sampling == "with_replacement":
        idx = rng.integers(0, n, size=(size, B))
        x = np.zeros((size, n))
        np.add.at(x, (np.repeat(np.arange(size), B), idx.ravel()), 1.0)
    else:
        idx = np.argsort(rng.random((size, n)), axis=1)[:, :B]
        x = np.zeros((size, n))
        np.put_along_axis(x, idx, 1.0, axis=1)
    return np.einsum("si,iab->sab", x, H) / B


def brute_force_norms(rng, HR, HF, eta, B, alpha, sampling, schedule, w0, steps, replicas):
    """‖w_k‖² for every replica (replicas, steps+1) by simulating the linear recursion."""
    d = HR.shape[1]
    I = np.eye(d)
    w = np.tile(w0, (replicas, 1))
    out = np.empty((replicas, steps + 1))
    out[:, 0] = np.einsum("sa,sa->s", w, w)
    for k in range(steps):
        Hr = sample_batch_matrices(rng, HR, B, sampling, replicas) if alpha < 1 else 0.0
        Hf = sample_batch_matrices(rng, HF, B, sampling, replicas) if alpha > 0 else 0.0
        if schedule == "summed":
            J = I - eta * (1 - alpha) * Hr + eta * alpha * Hf
        else:
            J = np.matmul(I + eta * alpha * Hf, I - eta * (1 - alpha) * Hr)
        w = np.einsum("sab,sb->sa", J, w)
        out[:, k + 1] = np.einsum("sa,sa->s", w, w)
    return out


def random_psd_set(rng, n, d, rank):
    """n random PSD d×d matrices of the given rank, plus their factors (n, d, rank)."""
    F = rng.standard_normal((n, d, rank)) / np.sqrt(d)
    return np.einsum("nak,nbk->nab", F, F), F


def sqrtm_psd(H):
    lam, V = np.linalg.eigh(H)
    return (V * np.sqrt(np.clip(lam, 0, None))) @ V.T

