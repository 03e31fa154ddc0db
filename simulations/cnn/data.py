"""Signal-plus-noise data (contract §6; Cao et al. 2022, Kou et al. 2023).

y ∈ {±1}; x = (x⁽¹⁾, x⁽²⁾) ∈ R^{2d} with one patch the signal yμ and the other the noise
ξ ~ N(0, σ_p² (I − μμᵀ/‖μ‖²)), orthogonal to μ. SNR = ‖μ‖ / (σ_p √d), so ‖μ‖ = SNR·σ_p·√d.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field

import numpy as np

from rmt.validation import check_int, check_positive, check_random_state, check_real

__all__ = ["SignalNoiseData", "make_data", "split_forget"]


@dataclass(frozen=True)
class SignalNoiseData:
    """A sample of the signal-plus-noise model.

    ``X`` (n, 2, d): patches, ``X[i, 0] = y_i μ`` (signal) and ``X[i, 1] = ξ_i`` (noise) — the
    network is symmetric in its two patches, so the order carries no information.
    ``y`` (n,) labels ±1, ``mu`` (d,) the signal vector, ``noise`` (n, d) the ξ_i,
    ``snr``, ``sigma_p``. ``forget`` is a boolean mask (n,) of the forget set (all False when
    no split was made).
    """

    X: np.ndarray = field(repr=False)
    y: np.ndarray = field(repr=False)
    mu: np.ndarray = field(repr=False)
    noise: np.ndarray = field(repr=False)
    snr: float
    sigma_p: float
    forget: np.ndarray = field(repr=False)

    @property
    def n(self) -> int:
        return int(self.y.shape[0])

    @property
    def d(self) -> int:
        return int(self.mu.shape[0])

    @property
    def retain(self) -> np.ndarray:
        return ~self.forget

    @property
    def n_forget(self) -> int:
        return int(self.forget.sum())

    def with_forget(self, mask) -> "SignalNoiseData":
        mask = _check_mask(mask, self.n)
        return SignalNoiseData(self.X, self.y, self.mu, self.noise, self.snr, self.sigma_p, mask)


def make_data(n, d, snr, *, sigma_p=1.0, balanced=True, seed=None) -> SignalNoiseData:
    """Draw n samples of the signal-plus-noise model (contract §6).

    μ = ‖μ‖·e with a uniformly random unit vector e and ‖μ‖ = snr·σ_p·√d; ξ_i = σ_p P z_i with
    z_i ~ N(0, I_d) and P = I − eeᵀ. ``balanced=True`` gives exactly ⌊n/2⌋ samples of class +1
    (in random order) — the closed forms assume two classes of size n/2; ``balanced=False``
    draws y_i uniformly at random.
    """
    n = check_int(n, "n", minimum=2)
    d = check_int(d, "d", minimum=2)
    snr = check_positive(snr, "snr")
    sigma_p = check_positive(sigma_p, "sigma_p")
    if not isinstance(balanced, (bool, np.bool_)):
        raise TypeError(f"balanced must be a bool, got {type(balanced).__name__}")
    rng = check_random_state(seed)
    e = rng.standard_normal(d)
    e /= np.linalg.norm(e)
    mu = snr * sigma_p * np.sqrt(d) * e
    if balanced:
        y = np.where(rng.permutation(n) < n // 2, 1.0, -1.0)
    else:
        y = rng.choice([-1.0, 1.0], size=n)
    z = rng.standard_normal((n, d))
    xi = sigma_p * (z - np.outer(z @ e, e))
    X = np.stack([y[:, None] * mu[None, :], xi], axis=1)
    return SignalNoiseData(X, y, mu, xi, snr, sigma_p, np.zeros(n, dtype=bool))


def _check_mask(mask, n):
    mask = np.asarray(mask)
    if mask.dtype != bool or mask.shape != (n,):
        raise ValueError(f"forget mask must be a boolean array of shape ({n},), got {mask.dtype} {mask.shape}")
    k = int(mask.sum())
    if k == 0:
        raise ValueError("forget set is empty: choose at least one sample to forget")
    if k == n:
        raise ValueError("forget set equals the whole training set: keep at least one retain sample")
    return mask.copy()


def split_forget(data: SignalNoiseData, how="random", *, size=None, fraction=None, cls=None,
                 indices=None, seed=None) -> SignalNoiseData:
    """Return ``data`` with a retain/forget split.

    ``how="random"``: a uniformly random subset of ``size`` samples (or ``fraction`` of n);
    ``how="class"``: every sample of class ``cls`` (+1 or −1);
    ``how="indices"``: the hand-picked ``indices``.
    The forget set must be neither empty nor the whole set (``ValueError`` otherwise).
    """
    if not isinstance(data, SignalNoiseData):
        raise TypeError(f"data must be a SignalNoiseData, got {type(data).__name__}")
    n = data.n
    mask = np.zeros(n, dtype=bool)
    if how == "random":
        if (size is None) == (fraction is None):
            raise ValueError("how='random' needs exactly one of size or fraction")
        if size is None:
            fraction = check_real(fraction, "fraction")
            if not 0.0 < fraction < 1.0:
                raise ValueError(f"fraction must lie in (0, 1), got {fraction}")
            size = int(round(fraction * n))
        size = check_int(size, "size")
        if size < 1 or size >= n:
            raise ValueError(f"size must be in [1, n-1] = [1, {n - 1}] (forget set neither empty "
                             f"nor the whole set), got {size}")
        rng = check_random_state(seed)
        mask[rng.choice(n, size=size, replace=False)] = True
    elif how == "class":
        if isinstance(cls, bool) or not isinstance(cls, numbers.Real) or cls not in (1, -1):
            raise ValueError(f"cls must be +1 or -1, got {cls!r}")
        mask = data.y == float(cls)
    elif how == "indices":
        if indices is None:
            raise ValueError("how='indices' needs indices")
        idx = np.asarray(indices)
        if idx.size == 0:
            idx = idx.astype(int).reshape(0)
        if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
            raise ValueError(f"indices must be a 1-d integer array, got {idx.dtype} {idx.shape}")
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise ValueError(f"indices must lie in [0, {n - 1}]")
        if np.unique(idx).size != idx.size:
            raise ValueError("indices must not repeat")
        mask[idx] = True
    else:
        raise ValueError(f"how must be one of ['class', 'indices', 'random'], got {how!r}")
    return data.with_forget(mask)
