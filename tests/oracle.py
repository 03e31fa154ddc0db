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



# ------------------------------------------------------------------ closed-form table oracle
# A second, faster oracle for the soundness fuzz (tests/test_soundness.py): E[J⊗J] is built from
# the closed-form sampling table of THEORY §2.1 with dense d×d Hessians (no enumeration of batch
# outcomes, so any n), still without any of rmt's code. It is checked against the enumeration
# oracle above in test_soundness.py.


def table_noise_coefficients(n, B, sampling):
    """(c, e) with E[Ĥ M Ĥ] = H̄MH̄ + c·(1/n)Σ H_i M H_i − e·H̄MH̄ (THEORY §2.1)."""
    if not 1 <= B <= n and sampling != "bernoulli":
        raise ValueError(f"batch {B} not in 1..{n}")
    if sampling == "bernoulli":
        return (n - B) / (B * n), 0.0
    if sampling == "with_replacement":
        return 1.0 / B, 1.0 / B
    if sampling == "without_replacement":
        if n == 1:
            return 0.0, 0.0
        c = (n - B) / (B * (n - 1))
        return c, c
    raise ValueError(sampling)


def active_span_basis(mats, rtol=1e-10):
    """Orthonormal basis (d, r) of the span of PSD matrices; the identity when they span R^d
    (so that a block structure on the coordinates survives the reduction)."""
    mats = [np.asarray(m, float) for m in mats]
    d = mats[0].shape[0]
    S = sum(mats)
    S = (S + S.T) / 2
    lam, V = np.linalg.eigh(S)
    top = max(float(lam.max()), 0.0)
    if top == 0.0:
        return np.zeros((d, 0))
    keep = lam > rtol * top
    if keep.all():
        return np.eye(d)
    return V[:, keep]


class TableOracle:
    """ρ(E[J⊗J]) on the span, from the sampling table with dense Hessians, for any η.

    ``HR``/``HF``: (n, d, d) arrays (``HF`` may be None). The η-independent Kronecker pieces are
    built once, so that bisection on η costs one r²×r² eigen-solve per evaluation. Summed: K is
    symmetric (eigvalsh). Alternating/SAM: eig with left vectors, and the round-off allowance
    grows with the eigenvalue's condition number.
    """

    def __init__(self, HR, HF, B, alpha, sampling, schedule, BF=None, sam_rho=0.0, sam_a=1.0,
                 rtol=1e-10):
        self.alpha, self.schedule, self.sampling = float(alpha), schedule, sampling
        self.sam_rho, self.sam_a = float(sam_rho), float(sam_a)
        BF = B if BF is None else BF
        use_r = alpha < 1 or schedule == "sam"
        use_f = alpha > 0 and schedule != "sam" and HF is not None and len(HF) > 0
        active = (list(HR) if use_r else []) + (list(HF) if use_f else [])
        self.U = active_span_basis(active, rtol)
        self.r = self.U.shape[1]
        if self.r == 0:
            raise ValueError("every active Hessian is zero: no span")
        self.sets = {}
        for name, H, b, use in (("retain", HR, B, use_r), ("forget", HF, BF, use_f)):
            if not use:
                continue
            Hr = np.einsum("ai,nab,bj->nij", self.U, np.asarray(H, float), self.U)
            Hr = (Hr + np.transpose(Hr, (0, 2, 1))) / 2
            n = len(Hr)
            c, e = table_noise_coefficients(n, b, sampling)
            Hbar = Hr.mean(0)
            sq = sum(np.kron(h, h) for h in Hr) / n
            self.sets[name] = (Hbar, c * sq - e * np.kron(Hbar, Hbar))

    def kron(self, eta):
        """The r²×r² matrix of M ↦ E[J M Jᵀ] in span coordinates."""
        r, I = self.r, np.eye(self.r)
        a = eta * (1 - self.alpha)
        b = eta * self.alpha
        zero = (np.zeros((r, r)), np.zeros((r * r, r * r)))
        HbR, NR = self.sets.get("retain", zero)
        HbF, NF = self.sets.get("forget", zero)
        if self.schedule == "summed":
            A = I - a * HbR + b * HbF
            K = np.kron(A, A) + a * a * NR + b * b * NF
            return (K + K.T) / 2
        if self.schedule == "alternating":
            AR, AF = I - a * HbR, I + b * HbF
            ER = np.kron(AR, AR) + a * a * NR
            EF = np.kron(AF, AF) + b * b * NF
            return EF @ ER
        if self.schedule == "sam":
            Ks = I + (self.sam_rho / self.sam_a) * HbR
            A = I - eta * HbR @ Ks
            return np.kron(A, A) + eta * eta * NR @ np.kron(Ks, Ks)
        raise ValueError(self.schedule)

    @staticmethod
    def radius(K, symmetric):
        """(ρ, relative round-off allowance of ρ) of a Kronecker matrix."""
        eps = np.finfo(float).eps
        if symmetric:
            lam = np.linalg.eigvalsh(K)
            rho = float(np.max(np.abs(lam)))
            return rho, 1e-13
        import scipy.linalg

        lam, vl, vr = scipy.linalg.eig(K, left=True, right=True)
        k = int(np.argmax(np.abs(lam)))
        rho = float(np.abs(lam[k]))
        x, y = vr[:, k], vl[:, k]
        cond = np.linalg.norm(x) * np.linalg.norm(y) / max(abs(np.vdot(y, x)), 1e-300)
        allowance = 50 * eps * np.linalg.norm(K) * cond / max(rho, 1e-300)
        return rho, max(1e-13, float(allowance))

    def rate(self, eta):
        """(ρ(T), relative round-off allowance) at step size η."""
        return self.radius(self.kron(eta), self.schedule == "summed")

    def block_rate(self, eta, idx):
        """ρ of T restricted to the symmetric matrices supported on span coordinates ``idx``
        (an invariant block when the Hessians are block diagonal in span coordinates)."""
        idx = np.asarray(idx)
        pairs = (idx[:, None] * self.r + idx[None, :]).ravel()
        K = self.kron(eta)[np.ix_(pairs, pairs)]
        return self.radius(K, self.schedule == "summed")


def stable_seed(*parts, modulus=2**32):
    """A seed from labels that is the same in every process (``hash`` of a string is salted per
    process unless PYTHONHASHSEED is fixed, so seeds from it made tests irreproducible)."""
    import zlib

    return zlib.crc32(repr(parts).encode("utf-8")) % modulus
