"""Public Hypothesis strategies for property-testing code built on rmt (like xarray.testing.strategies).

Each strategy draws a *few* parameters (sizes, an alignment knob, a seed) and builds the matrices
with numpy, so examples are cheap and shrink towards small, simple instances:

- :func:`hessian_sets`   — PSD retain/forget sets (rank-one, factor, dense, commuting or the
  Dexter Theorem 2 construction) with controlled within-retain, within-forget and between
  alignment (alignment 0 → low coherence, 1 → identical Hessians, σ = n);
- :func:`commuting_sets` — simultaneously diagonal sets (closed forms exist, contract §3);
- :func:`schedules`      — :class:`rmt.Schedule` objects valid for a given set, with η drawn
  relative to the curvature scale so both stable and unstable regimes appear;
- :func:`instances`      — (HessianSet, Schedule) pairs;
- :func:`dynamics`       — the same pairs as :class:`rmt.Dynamics` objects (the one definition of
  the step), ready for any analysis.

``gradients=True`` (or None: either) attaches random per-sample loss gradients g_i (shape (n, d),
generic, so with components inside and outside the span of the Hessians) to the sets, so code that handles
the drift of a non-interpolating minimum (contract §8) can be property-tested too.

:func:`register_profiles` registers the ``dev`` and ``ci`` profiles (``deadline=None``).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from hypothesis import HealthCheck, assume, settings
from hypothesis import strategies as st
from scipy.stats import ortho_group

from .validation import (
    check_int,
    check_positive,
    check_random_state,
    check_real,
    check_unit_interval,
)
from .dynamics import Dynamics
from .hessians import HessianSet
from .montecarlo._rng import Seed
from .combinators import get_combinator
from .schedule import SAMPLING_SCHEMES, Schedule

__all__ = [
    "register_profiles",
    "hessian_sets",
    "commuting_sets",
    "schedules",
    "instances",
    "dynamics",
    "build_hessian_set",
    "KINDS",
]

#: Kinds of sets :func:`hessian_sets` can draw.
KINDS = ("rank1", "factor", "dense", "commuting", "construction")


def register_profiles(dev_examples: int = 50, ci_examples: int = 100) -> None:
    """Register Hypothesis profiles ``dev`` and ``ci`` (``deadline=None``; ``ci`` derandomised).

    deadline=None because numba JIT compilation lands on random examples. Load one with
    ``hypothesis.settings.load_profile("ci")``.
    """
    settings.register_profile(
        "dev", max_examples=dev_examples, deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    settings.register_profile(
        "ci", max_examples=ci_examples, deadline=None, derandomize=True,
        suppress_health_check=[HealthCheck.too_slow],
    )


def _unit(rng, d):
    v = rng.standard_normal(d)
    nrm = np.linalg.norm(v)
    return v / nrm if nrm > 0 else np.eye(d)[0]


def build_hessian_set(kind: str, d: int, n_retain: int, n_forget: int, within_retain: float,
                      within_forget: float, between: float, seed: Seed, *, rank: int = 2,
                      spread: float = 0.0, gradients: bool = False) -> HessianSet:
    """Deterministic builder behind :func:`hessian_sets` (usable without Hypothesis).

    Shared unit directions u_R, u_F with cosine ``between``; sample i of set S has factor
    √a_S·u_S(·weights) + √(1−a_S)·z_i with independent Gaussian z_i, a_S the within-set alignment,
    and a per-sample scale exp(spread·N(0,1)). ``kind``: "rank1" (factors g_i), "factor"
    (rank-``rank`` factors), "dense" (the factor set densified, built with from_dense),
    "commuting" (eigenvalue profiles mixing a shared profile and sparse individual ones, random
    basis), "construction" (Dexter Thm 2: ⌈a_R·n⌉ identical rank-one Hessians, the rest zero).
    ``gradients=True`` also draws per-sample loss gradients g_i ~ N(0, I/d)·exp(spread·N(0,1)) of
    shape (n, d) for every set (``retain_gradients``/``forget_gradients`` of the constructor),
    after the Hessians, so the Hessians are the same with and without gradients.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {list(KINDS)}, got {kind!r}")
    d = check_int(d, "d", minimum=1)
    nr = check_int(n_retain, "n_retain", minimum=1)
    nf = check_int(n_forget, "n_forget", minimum=0)
    aR = check_unit_interval(within_retain, "within_retain")
    aF = check_unit_interval(within_forget, "within_forget")
    c = check_real(between, "between")
    if not -1.0 <= c <= 1.0:
        raise ValueError(f"between must lie in [-1, 1], got {c}")
    rank = check_int(rank, "rank", minimum=1)
    spread = check_positive(spread, "spread", allow_zero=True)
    if not isinstance(gradients, (bool, np.bool_)):
        raise TypeError(f"gradients must be True or False, got {gradients!r}")
    rng = check_random_state(seed)
    ctor, args, kw = _hessian_arrays(kind, d, nr, nf, aR, aF, c, rng, rank, spread)
    if gradients:
        def draw(n):
            g = rng.standard_normal((n, d)) / math.sqrt(d)
            return g * np.exp(spread * rng.standard_normal((n, 1)))

        kw.update(retain_gradients=draw(nr), forget_gradients=draw(nf) if nf else None)
    return ctor(*args, **kw)


def _hessian_arrays(kind, d, nr, nf, aR, aF, c, rng, rank, spread):
    """(constructor, args, kwargs) of the HessianSet that :func:`build_hessian_set` describes."""
    if kind == "construction":
        k = max(1, int(math.ceil(aR * nr)))
        G = np.zeros((nr, d))
        G[:k] = math.sqrt(nr / k) * _unit(rng, d)
        F = rng.standard_normal((nf, d)) / math.sqrt(d) if nf else None
        return HessianSet.from_factors, (G, F), {}
    if kind == "commuting":
        Q = ortho_group.rvs(d, random_state=rng)  # Haar (QR with the sign fix)
        pR = rng.exponential(size=d)
        pF = abs(c) * pR + (1 - abs(c)) * rng.exponential(size=d) if nf else None

        def prof(n, a, p):
            ind = rng.exponential(size=(n, d)) * (rng.random((n, d)) < 0.6)
            lam = a * p[None, :] + (1 - a) * ind
            lam *= np.exp(spread * rng.standard_normal((n, 1)))
            if not np.any(lam > 0):
                lam[0, 0] = 1.0
            return lam

        R = prof(nr, aR, pR)
        Fl = prof(nf, aF, pF) if nf else None
        return HessianSet.from_commuting, (R, Fl), {"basis": Q}
    k = 1 if kind == "rank1" else rank
    uR = rng.standard_normal((d, k))
    uR /= np.linalg.norm(uR)
    v = rng.standard_normal((d, k))
    v -= uR * np.sum(uR * v)
    nv = np.linalg.norm(v)
    v = v / nv if nv > 0 else uR
    uF = c * uR + math.sqrt(max(1 - c * c, 0.0)) * v

    def fac(n, a, u):
        Z = rng.standard_normal((n, d, k)) / math.sqrt(d * k)
        F = math.sqrt(a) * u[None] + math.sqrt(1 - a) * Z
        return F * np.exp(spread * rng.standard_normal((n, 1, 1)))

    FR = fac(nr, aR, uR)
    FF = fac(nf, aF, uF) if nf else None
    if kind == "rank1":
        return HessianSet.from_factors, (FR[:, :, 0], None if FF is None else FF[:, :, 0]), {}
    if kind == "factor":
        return HessianSet.from_factors, (FR, FF), {}
    dense = lambda F: np.einsum("nak,nbk->nab", F, F)  # noqa: E731
    return HessianSet.from_dense, (dense(FR), None if FF is None else dense(FF)), {}


def hessian_sets(*, max_dim: int = 4, max_retain: int = 6, max_forget: int = 4,
                 forget: bool | None = None, kinds: Sequence[str] = KINDS, max_rank: int = 2,
                 gradients: bool | None = False) -> st.SearchStrategy[HessianSet]:
    """PSD retain/forget HessianSets with controlled coherence (see :func:`build_hessian_set`).

    ``forget``: True (always a forget set), False (never) or None (either). Alignments are drawn
    from {0, 1} ∪ [0.01, 0.99] (no denormal scales) so the extreme coherences σ = 1-ish and σ = n appear often.
    ``gradients``: True (attach random per-sample gradients to every set), False (never: an
    interpolating minimum) or None (either).
    """
    for name, val in (("max_dim", max_dim), ("max_retain", max_retain), ("max_rank", max_rank)):
        if not isinstance(val, int) or val < 1:
            raise ValueError(f"{name} must be a positive integer, got {val!r}")
    if not isinstance(max_forget, int) or max_forget < 0:
        raise ValueError(f"max_forget must be a non-negative integer, got {max_forget!r}")
    if forget not in (None, True, False):
        raise ValueError(f"forget must be None, True or False, got {forget!r}")
    if gradients not in (None, True, False):
        raise ValueError(f"gradients must be None, True or False, got {gradients!r}")
    if forget and max_forget < 1:
        raise ValueError("forget=True needs max_forget >= 1")
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds:
        raise ValueError(f"kinds must be a non-empty subset of {list(KINDS)}, got {kinds!r}")
    return _hessian_sets(max_dim, max_retain, max_forget, forget, tuple(kinds), max_rank,
                         gradients)


@st.composite
def _hessian_sets(draw, max_dim, max_retain, max_forget, forget, kinds, max_rank, gradients):
    kind = draw(st.sampled_from(kinds))
    d = draw(st.integers(1, max_dim))
    nr = draw(st.integers(1, max_retain))
    if forget is False or max_forget == 0:
        nf = 0
    else:
        nf = draw(st.integers(1 if forget else 0, max_forget))
    align = st.one_of(st.just(0.0), st.just(1.0), st.floats(0.01, 0.99))
    aR, aF = draw(align), draw(align)
    between = draw(st.one_of(st.just(0.0), st.floats(-1.0, 1.0)))
    spread = draw(st.one_of(st.just(0.0), st.floats(0.0, 1.0)))
    rank = draw(st.integers(1, max_rank))
    seed = draw(st.integers(0, 2**32 - 1))
    grads = draw(st.booleans()) if gradients is None else gradients
    return build_hessian_set(kind, d, nr, nf, aR, aF, between, seed, rank=rank, spread=spread,
                             gradients=grads)


def commuting_sets(*, max_dim: int = 4, max_retain: int = 6, max_forget: int = 4,
                   forget: bool | None = None,
                   gradients: bool | None = False) -> st.SearchStrategy[HessianSet]:
    """Commuting (simultaneously diagonal) sets: closed forms of contract §3 apply."""
    return hessian_sets(max_dim=max_dim, max_retain=max_retain, max_forget=max_forget,
                        forget=forget, kinds=("commuting",), gradients=gradients)


def _curvature_scale(dyn):
    """Largest weighted mean curvature max_S (|s_S|/η)·λ_max(H̄_S) over the sets in the step."""
    return max(abs(t.weight) / dyn.eta * float(np.linalg.eigvalsh(t.mean)[-1])
               for t in dyn.terms)


def schedules(hs: HessianSet | None = None, *, samplings: Sequence[str] = SAMPLING_SCHEMES,
              kinds: Sequence[str] = ("summed", "alternating"), max_batch: int = 8,
              eta_range: tuple[float, float] = (0.02, 3.0),
              alphas: str = "any") -> st.SearchStrategy[Schedule]:
    """Schedules valid for ``hs`` (or for any set with ≥ ``max_batch`` samples when hs is None).

    η = t/λ with t drawn from ``eta_range`` and λ the largest weighted mean curvature
    max((1−α)λ_max(H̄_R), αλ_max(H̄_F)) of the sets in the step (read from
    :class:`rmt.Dynamics`; λ = 1 when every Hessian in the step is zero), so t ≈ 2 is the
    gradient-descent edge. α is 0 (SGD), 1,
    or uniform in [0.01, 1] when hs has a forget set (tiny α only rescales the forget terms); ``alphas="sgd"`` forces α = 0 and
    ``alphas="unlearning"`` forces α ∈ (0, 1] (needs a forget set). ``kinds`` may include "sam"
    (then α = 0).
    """
    if alphas not in ("any", "sgd", "unlearning"):
        raise ValueError(f"alphas must be 'any', 'sgd' or 'unlearning', got {alphas!r}")
    bad = [k for k in kinds if k not in ("summed", "alternating", "sam")]
    if bad or not kinds:
        raise ValueError(f"kinds must be a non-empty subset of summed/alternating/sam, got {kinds!r}")
    bad = [s for s in samplings if s not in SAMPLING_SCHEMES]
    if bad or not samplings:
        raise ValueError(f"samplings must be a non-empty subset of {SAMPLING_SCHEMES}, got {samplings!r}")
    if hs is not None and not isinstance(hs, HessianSet):
        raise TypeError(f"hs must be a HessianSet or None, got {type(hs).__name__}")
    if not isinstance(max_batch, int) or max_batch < 1:
        raise ValueError(f"max_batch must be a positive integer, got {max_batch!r}")
    lo, hi = eta_range
    if not 0 < lo <= hi:
        raise ValueError(f"eta_range must satisfy 0 < low <= high, got {eta_range!r}")
    if alphas == "unlearning" and hs is not None and not hs.has_forget:
        raise ValueError("alphas='unlearning' needs a HessianSet with a forget set")
    return _schedules(hs, tuple(samplings), tuple(kinds), max_batch, (lo, hi), alphas)


@st.composite
def _schedules(draw, hs, samplings, kinds, max_batch, eta_range, alphas):
    kind = draw(st.sampled_from(kinds))
    sampling = draw(st.sampled_from(samplings))
    nr = max_batch if hs is None else hs.n_retain
    nf = max_batch if hs is None else hs.n_forget
    alpha = 0.0
    comb = get_combinator(kind)
    if alphas == "unlearning":
        if not comb.takes_forget or nf == 0:
            raise ValueError("alphas='unlearning' needs a forget set and a non-SAM schedule")
        alpha = draw(st.one_of(st.floats(0.01, 1.0), st.just(1.0)))
    elif alphas == "any" and comb.takes_forget and nf > 0:
        alpha = draw(st.one_of(st.just(0.0), st.floats(0.01, 1.0), st.just(1.0)))
    batch = draw(st.integers(1, max(1, min(nr, max_batch))))
    forget_batch = None
    if alpha > 0:
        fb = draw(st.integers(1, max(1, min(nf, max_batch))))
        forget_batch = fb
    t = draw(st.floats(*eta_range))
    extra = {}
    if comb.preconditioned:
        extra = {"sam_rho": draw(st.floats(0.0, 2.0)), "sam_a": 1.0}
    sch = Schedule(eta=t, batch=batch, alpha=alpha, sampling=sampling, schedule=kind,
                   forget_batch=forget_batch, **extra)
    if hs is None:
        return sch
    dyn = _try_dynamics(hs, sch)
    scale = 1.0 if dyn is None else _curvature_scale(dyn)
    return sch.replace(eta=t / scale) if scale > 0 else sch


def _try_dynamics(hs, sch):
    """Dynamics(hs, sch), or None when every Hessian that enters the step is zero (no span).

    The strategies build valid pairs by construction; any other ValueError is a bug and raises.
    """
    from .dynamics import ZeroSpanError

    try:
        return Dynamics(hs, sch)
    except ZeroSpanError:
        return None


def instances(*, max_dim: int = 4, max_retain: int = 6, max_forget: int = 4,
              forget: bool | None = None, kinds: Sequence[str] = KINDS,
              samplings: Sequence[str] = SAMPLING_SCHEMES,
              schedule_kinds: Sequence[str] = ("summed", "alternating"),
              eta_range: tuple[float, float] = (0.02, 3.0), alphas: str = "any",
              gradients: bool | None = False,
              ) -> st.SearchStrategy[tuple[HessianSet, Schedule]]:
    """(HessianSet, Schedule) pairs: :func:`hessian_sets` then :func:`schedules` for that set.

    The pairs of :func:`dynamics` (same arguments), unpacked.
    """
    return dynamics(max_dim=max_dim, max_retain=max_retain, max_forget=max_forget, forget=forget,
                    kinds=kinds, samplings=samplings, schedule_kinds=schedule_kinds,
                    eta_range=eta_range, alphas=alphas, gradients=gradients,
                    ).map(lambda dyn: (dyn.hs, dyn.schedule))


def dynamics(*, max_dim: int = 4, max_retain: int = 6, max_forget: int = 4,
             forget: bool | None = None, kinds: Sequence[str] = KINDS,
             samplings: Sequence[str] = SAMPLING_SCHEMES,
             schedule_kinds: Sequence[str] = ("summed", "alternating"),
             eta_range: tuple[float, float] = (0.02, 3.0), alphas: str = "any",
             gradients: bool | None = False) -> st.SearchStrategy[Dynamics]:
    """:class:`rmt.Dynamics` objects: a :func:`hessian_sets` draw and a :func:`schedules` draw
    for that set, validated once as the step they define.

    ``alphas="unlearning"`` implies ``forget=True``. ``gradients`` as in :func:`hessian_sets`
    (True: every step has a drift, ``dyn.has_drift``). Sets whose active Hessians are all zero
    (no span to measure stability on) are rejected.
    """
    if alphas == "unlearning":
        forget = True
    sets = hessian_sets(max_dim=max_dim, max_retain=max_retain, max_forget=max_forget,
                        forget=forget, kinds=kinds, gradients=gradients)
    schedules(None, samplings=samplings, kinds=schedule_kinds, eta_range=eta_range,
              alphas=alphas)  # validates the schedule arguments now
    return _dynamics(sets, tuple(samplings), tuple(schedule_kinds), eta_range, alphas)


@st.composite
def _dynamics(draw, sets, samplings, schedule_kinds, eta_range, alphas):
    hs = draw(sets)
    sch = draw(schedules(hs, samplings=samplings, kinds=schedule_kinds, eta_range=eta_range,
                         alphas=alphas))
    dyn = _try_dynamics(hs, sch)
    assume(dyn is not None)
    return dyn
