"""Monte Carlo oracles of the online isotropic ensemble (contract §9).

:func:`online_lyapunov` runs the full d-dimensional product with numba (it does not use the
rotation-invariance reduction, so it checks it); :func:`online_reduced_lyapunov` samples the
reduced three-chi-square form (it checks the quadrature of :mod:`rmt.asymptotics.isotropic`).
Replica streams follow the layout of :func:`rmt.lyapunov` (:func:`rmt.montecarlo._rng.replica_streams`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numba import prange as numba_prange

from ..montecarlo._kernels import _CACHE, _uniform, make_jit
from ..montecarlo._rng import Seed, SplitMix64
from ..montecarlo._rng import replica_streams as _streams
from ..validation import check_int
from .isotropic import _check_online, _coefficients

__all__ = ["OnlineMonteCarlo", "online_lyapunov", "online_reduced_lyapunov"]


@dataclass(frozen=True)
class OnlineMonteCarlo:
    """Monte Carlo estimate of the top Lyapunov exponent of an online ensemble.

    ``value``: mean over replicas of (1/steps)Σ log‖J_k w_k‖/‖w_k‖ after ``burn_in``;
    ``stderr``: increment_sd/√(steps·replicas). For an online conjugation-invariant ensemble the
    increments are exactly i.i.d. (given the past, ‖J_k w_k‖/‖w_k‖ has the law of ‖J e₁‖ because
    J_k is fresh and invariant), so this is the exact standard error; ``stderr_replicas`` (s.d.
    of the replica means/√replicas) is the model-free cross-check. ``per_replica``: the replica
    means; ``increment_sd``: pooled sample s.d. of the one-step increments.
    """

    value: float
    stderr: float
    per_replica: np.ndarray = field(repr=False)
    increment_sd: float
    steps: int
    replicas: int
    method: str
    stderr_replicas: float = float("nan")


_jit = make_jit(_CACHE)
_pjit = make_jit(_CACHE, parallel=True)


@_jit
def _fill_normal(state, g, scale):
    """Normals N(0, scale²) from the replica's SplitMix64 stream (Marsaglia polar, in pairs)."""
    m = g.shape[0]
    i = 0
    while i < m:
        u = 2.0 * _uniform(state) - 1.0
        v = 2.0 * _uniform(state) - 1.0
        r2 = u * u + v * v
        if r2 >= 1.0 or r2 == 0.0:
            continue
        f = math.sqrt(-2.0 * math.log(r2) / r2) * scale
        g[i] = u * f
        if i + 1 < m:
            g[i + 1] = v * f
        i += 2


@_jit
def _add_batch(state, g, w, y, count, coef, scale):
    """y += coef·Σ_b g_b (g_bᵀ w) over ``count`` fresh g_b ~ N(0, scale²·I) (``g``: scratch)."""
    d = w.shape[0]
    for _ in range(count):
        _fill_normal(state, g, scale)
        dot = 0.0
        for i in range(d):
            dot += g[i] * w[i]
        t = coef * dot
        for i in range(d):
            y[i] += t * g[i]


@_jit
def _online_one(d, BR, BF, cR, cF, steps, burn_in, seed, w0, out_sum, out_sq, rep):
    state = np.empty(1, np.uint64)
    state[0] = seed
    w = w0.copy()
    y = np.empty(d)
    g = np.empty(d)
    scale = 1.0 / math.sqrt(d)
    acc = 0.0
    acc2 = 0.0
    for k in range(burn_in + steps):
        for i in range(d):
            y[i] = w[i]
        _add_batch(state, g, w, y, BR, -cR, scale)
        _add_batch(state, g, w, y, BF, cF, scale)
        nrm = 0.0
        for i in range(d):
            nrm += y[i] * y[i]
        nrm = math.sqrt(nrm)
        lg = math.log(nrm)
        for i in range(d):
            w[i] = y[i] / nrm
        if k >= burn_in:
            acc += lg
            acc2 += lg * lg
    out_sum[rep] = acc
    out_sq[rep] = acc2


@_pjit
def _online_kernel(d, BR, BF, cR, cF, steps, burn_in, seeds, W0, out_sum, out_sq):
    for rep in numba_prange(seeds.shape[0]):
        _online_one(d, BR, BF, cR, cF, steps, burn_in, seeds[rep], W0[rep], out_sum, out_sq, rep)


def _online_reference(d, BR, BF, cR, cF, steps, burn_in, seed, w0):
    """Pure-Python twin of :func:`_online_one` on the same SplitMix64 draws (tests compare them).

    Returns (Σ increments, Σ increments²) after ``burn_in``.
    """
    rng = SplitMix64(int(seed))
    scale = 1.0 / math.sqrt(d)

    def normals():
        g = []
        while len(g) < d:
            u = 2.0 * rng.uniform() - 1.0
            v = 2.0 * rng.uniform() - 1.0
            r2 = u * u + v * v
            if r2 >= 1.0 or r2 == 0.0:
                continue
            f = math.sqrt(-2.0 * math.log(r2) / r2) * scale
            g.append(u * f)
            if len(g) < d:
                g.append(v * f)
        return np.array(g)

    w = np.array(w0, dtype=float)
    acc = acc2 = 0.0
    for k in range(burn_in + steps):
        y = w.copy()
        for _ in range(BR):
            g = normals()
            y -= cR * float(np.dot(g, w)) * g
        for _ in range(BF):
            g = normals()
            y += cF * float(np.dot(g, w)) * g
        nrm = math.sqrt(float(np.dot(y, y)))
        w = y / nrm
        if k >= burn_in:
            acc += math.log(nrm)
            acc2 += math.log(nrm) ** 2
    return acc, acc2


def online_lyapunov(eta: float, batch: int, d: int, alpha: float = 0.0,
                    batch_forget: int | None = None, *, steps: int = 10_000, replicas: int = 8,
                    burn_in: int = 0, seed: Seed = None) -> OnlineMonteCarlo:
    """Monte Carlo of the full d-dimensional online product (fresh Gaussian batch every step).

    Each replica starts from a uniform unit vector, draws at every step B_R retain and B_F forget
    vectors g ~ N(0, I_d/d) from its own SplitMix64 stream (Box–Muller; streams derived from one
    ``numpy.random.SeedSequence``, so results do not depend on the number of threads), applies
    J = I − c_R Σ g gᵀ + c_F Σ h hᵀ in O(B·d) without forming J, and averages
    log‖J w‖/‖w‖. This is the independent oracle for :func:`isotropic_lyapunov` (it does not use
    the rotation-invariance reduction).
    """
    eta, batch, d, alpha, bf = _check_online(eta, batch, d, alpha, batch_forget)
    steps = check_int(steps, "steps", minimum=1)
    replicas = check_int(replicas, "replicas", minimum=2)
    burn_in = check_int(burn_in, "burn_in", minimum=0)
    cR, cF = _coefficients(eta, batch, alpha, bf)
    gens, words = _streams(seed, replicas)
    W0 = np.empty((replicas, d))
    for r, gen in enumerate(gens):
        v = gen.standard_normal(d)
        W0[r] = v / np.linalg.norm(v)
    s = np.zeros(replicas)
    s2 = np.zeros(replicas)
    _online_kernel(d, batch if cR > 0 else 0, bf if cF > 0 else 0, cR, cF, steps, burn_in,
                   words, W0, s, s2)
    means = s / steps
    N = steps * replicas
    var = (s2.sum() - s.sum() ** 2 / N) / (N - 1)
    sd = math.sqrt(max(var, 0.0))
    return OnlineMonteCarlo(float(means.mean()), sd / math.sqrt(N), means, sd, steps, replicas,
                            "full", float(means.std(ddof=1) / math.sqrt(replicas)))


def online_reduced_lyapunov(eta: float, batch: int, d: int, alpha: float = 0.0,
                            batch_forget: int | None = None, *, samples: int = 1_000_000,
                            replicas: int = 8, seed: Seed = None) -> OnlineMonteCarlo:
    """Monte Carlo of the reduced form ½E log[(1 − c_R s_R + c_F s_F)² + (c_R²s_R + c_F²s_F)t].

    Draws the three chi-square variables with numpy Generators (one per replica, spawned from
    one SeedSequence). Checks the quadrature, not the reduction (:func:`online_lyapunov` does).
    """
    eta, batch, d, alpha, bf = _check_online(eta, batch, d, alpha, batch_forget)
    samples = check_int(samples, "samples", minimum=1)
    replicas = check_int(replicas, "replicas", minimum=2)
    cR, cF = _coefficients(eta, batch, alpha, bf)
    gens, _ = _streams(seed, replicas)
    mean_list, sds = [], []
    for gen in gens:
        sR = gen.chisquare(batch, samples) / d
        sF = gen.chisquare(bf, samples) / d
        t = gen.chisquare(d - 1, samples) / d if d > 1 else np.zeros(samples)
        x = 0.5 * np.log((1 - cR * sR + cF * sF) ** 2 + (cR**2 * sR + cF**2 * sF) * t)
        mean_list.append(x.mean())
        sds.append(x.std())
    means = np.array(mean_list)
    sd = float(np.sqrt(np.mean(np.square(sds))))
    return OnlineMonteCarlo(float(means.mean()), sd / math.sqrt(samples * replicas), means, sd,
                            samples, replicas, "reduced",
                            float(means.std(ddof=1) / math.sqrt(replicas)))

