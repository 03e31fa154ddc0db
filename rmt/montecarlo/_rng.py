"""The per-replica random stream shared by the numba kernels and the numpy reference.

Each replica owns one SplitMix64 stream (Steele, Lea & Flood 2014; the seeding generator of
xoshiro), seeded with a 64-bit word drawn from that replica's child of one
``numpy.random.SeedSequence``. A replica's draws therefore depend only on (seed, replica index),
never on which thread runs it — that is what makes results bit-identical for any thread count.

Why not numba's ``np.random`` inside ``prange``: its state is per *thread*, so the draws a replica
sees would depend on scheduling. Why SplitMix64: one uint64 of state, a few integer operations per
draw, passes BigCrush, and is trivial to replicate exactly in pure Python for the reference.

The pure-Python functions here are the exact specification; ``_kernels.py`` re-implements them
in numba with explicit ``np.uint64`` constants (mixing uint64 with int64 literals silently
promotes to float64 in numba).
"""

from __future__ import annotations

import math

import numpy as np

from ..validation import Seed, check_random_state


MASK64 = (1 << 64) - 1
GAMMA = 0x9E3779B97F4A7C15
MIX1 = 0xBF58476D1CE4E5B9
MIX2 = 0x94D049BB133111EB
INV53 = 1.0 / 9007199254740992.0  # 2**-53


class SplitMix64:
    """Pure-Python SplitMix64 (reference implementation of the kernel stream)."""

    def __init__(self, seed: int):
        self.state = int(seed) & MASK64

    def next(self) -> int:
        self.state = (self.state + GAMMA) & MASK64
        z = self.state
        z = ((z ^ (z >> 30)) * MIX1) & MASK64
        z = ((z ^ (z >> 27)) * MIX2) & MASK64
        return z ^ (z >> 31)

    def uniform(self) -> float:
        """Uniform on [0, 1) with 53 random bits."""
        return (self.next() >> 11) * INV53

    def uniform_open(self) -> float:
        """Uniform on (0, 1] (safe for log)."""
        return ((self.next() >> 11) + 1) * INV53

    def index(self, m: int) -> int:
        """Uniform integer in [0, m) (floor(u·m), clipped against the round-up at u·m → m)."""
        return min(int(self.uniform() * m), m - 1)


def draw_batch(rng: SplitMix64, sampling: int, n: int, batch: int, lq: float,
               perm: list[int] | np.ndarray) -> list[int]:
    """Indices of one batch (with multiplicity), consuming ``rng`` exactly like the kernel.

    sampling 0 = bernoulli (geometric skipping: gaps ~ Geometric(p), p = B/n, so the cost is
    O(B) not O(n); ``lq`` = log(1 − p)); 1 = with_replacement; 2 = without_replacement (partial
    Fisher–Yates on the persistent permutation ``perm``, which yields a uniform B-subset whatever
    the permutation's current order).
    """
    out = []
    if sampling == 0:
        i = -1
        while True:
            u = rng.uniform_open()
            g = math.floor(math.log(u) / lq) if lq != -math.inf else 0.0
            nxt = i + 1 + g
            if nxt >= n:
                break
            i = int(nxt)
            out.append(i)
    elif sampling == 1:
        for _ in range(batch):
            out.append(rng.index(n))
    else:
        for j in range(batch):
            t = j + rng.index(n - j)
            perm[j], perm[t] = perm[t], perm[j]
            out.append(int(perm[j]))
    return out


def seed_sequence(seed: Seed) -> np.random.SeedSequence:
    """The one SeedSequence behind ``seed`` (a Generator contributes one 63-bit integer)."""
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if isinstance(seed, np.random.Generator):
        return np.random.SeedSequence(int(seed.integers(0, 2**63)))
    check_random_state(seed)  # type and sign validation, message names ``seed``
    return np.random.SeedSequence(seed)


def replica_streams(seed: Seed, replicas: int) -> tuple[list[np.random.Generator], np.ndarray]:
    """Per replica: (numpy Generator for the start vector, uint64 kernel seed).

    Replica r uses the r-th spawned child of :func:`seed_sequence`; its children 0 and 1 feed the
    Generator and the SplitMix64 word, so a replica's draws depend only on (seed, r).
    """
    ss = seed_sequence(seed)
    gens, words = [], np.empty(replicas, dtype=np.uint64)
    for r, child in enumerate(ss.spawn(replicas)):
        a = np.random.SeedSequence(child.entropy, spawn_key=child.spawn_key + (0,))
        b = np.random.SeedSequence(child.entropy, spawn_key=child.spawn_key + (1,))
        gens.append(np.random.default_rng(a))
        words[r] = b.generate_state(1, dtype=np.uint64)[0]
    return gens, words
