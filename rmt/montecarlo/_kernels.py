"""numba kernels of the Monte Carlo engine (contract §2, §2.1; plain-numpy twins in
``_reference.py``).

Every kernel is ``parallel=True`` over *replicas* (never over time): replica ``r`` runs its whole
trajectory inside one ``prange`` iteration, owns its SplitMix64 stream (``_rng.py``) and its
scratch buffers, and performs its floating-point operations in a fixed order. So the result for
a given seed is bit-identical whatever ``NUMBA_NUM_THREADS`` is.

Hessian storage ("working coordinates" of dimension m, chosen by ``engine.py``): one float64 array
``G`` of shape (n, kk, m) per set and an integer mode

* ``FACTOR`` (0): ``G[i, a]`` is column a of F_i, H_i v = Σ_a G[i,a] (G[i,a]·v)   — O(m·kk)
* ``DIAG``   (1): ``G[i, 0]`` is the eigenvalue profile,  H_i v = G[i,0] ⊙ v      — O(m)
* ``DENSE``  (2): ``G[i]`` is the (m, m) matrix,          H_i v = G[i] v          — O(m²)

so a step costs O(B·m·kk) and never forms a d×d matrix on the factor paths. A curvature C shared
by every sample (weight decay: H_i = H⁰_i + C) may be stored apart, once, in ``GS`` (1, k, m)
with its own mode (``NO_SHARED`` when it is part of the per-sample storage or absent): a batch
then adds nb·Cw once instead of applying C with every drawn sample (:func:`_apply_shared`).

Compilation caching: on by default — compiled kernels are stored on disk (numba's ``cache=True``:
``__pycache__`` next to this file, or the user cache directory when the install is read-only) so
only the first process pays the compilation (tens of seconds on a busy machine), not every worker
and every resumed run. ``RMT_NUMBA_CACHE=0`` ("0"/"false"/"no"/"off") turns it off. When numba
finds no writable cache location (read-only install, no HOME, ...) the kernels are compiled in
memory instead of failing — silently by default, with a ``RuntimeWarning`` when caching was asked
for explicitly (``RMT_NUMBA_CACHE=1``).

numba invalidates a cached kernel when the file defining it changes, but not when a jitted helper
it calls from *another* file does; every kernel built by :func:`make_jit` therefore also keys its
cache on the source of this file (home of the shared helpers ``_next``, ``_uniform``, ...).
"""

from __future__ import annotations

import math
import os
import warnings

import numba
import numpy as np
from numba import prange

FACTOR, DIAG, DENSE = 0, 1, 2
#: modes of the shared-curvature storage ``GS`` only: none applied separately, and σI plus a
#: signed low-rank part (:func:`_apply_shared`)
NO_SHARED, SHIFTED = -1, 3
SUMMED, ALTERNATING, SAM = 0, 1, 2
BERNOULLI, WITH_REPLACEMENT, WITHOUT_REPLACEMENT = 0, 1, 2

_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)
_ONE = np.uint64(1)
_INV53 = 1.0 / 9007199254740992.0


_OFF = ("0", "false", "no", "off")
_ON = ("1", "true", "yes", "on")


def cache_requested(env=None) -> bool:
    """True when ``RMT_NUMBA_CACHE`` explicitly asks for on-disk caching ("1"/"true"/"yes"/"on")."""
    env = os.environ if env is None else env
    return str(env.get("RMT_NUMBA_CACHE", "")).strip().lower() in _ON


def cache_enabled(env=None) -> bool:
    """True unless ``RMT_NUMBA_CACHE`` turns on-disk caching off ("0"/"false"/"no"/"off")."""
    env = os.environ if env is None else env
    return str(env.get("RMT_NUMBA_CACHE", "")).strip().lower() not in _OFF


def cache_setting(env=None):
    """The ``cache`` argument of :func:`make_jit` the environment asks for.

    ``True`` (explicitly requested: warn if impossible), ``"auto"`` (the default: cache when
    possible, silently compile in memory otherwise) or ``False`` (``RMT_NUMBA_CACHE=0``).
    """
    if cache_requested(env):
        return True
    return "auto" if cache_enabled(env) else False


def _helpers_digest() -> str:
    """SHA-256 of this file: part of every cache key (see the module docstring)."""
    import hashlib

    try:
        with open(__file__, "rb") as fh:
            return hashlib.sha256(fh.read()).hexdigest()
    except OSError:
        return ""


_HELPERS_DIGEST = _helpers_digest()

try:
    from numba.core.caching import FunctionCache as _FunctionCache
except ImportError:  # numba moved its internals: plain numba caching (see _key_on_helpers)
    _FunctionCache = None  # type: ignore[misc,assignment]  # numba internal may be absent

if _FunctionCache is not None:

    class _HelperKeyedCache(_FunctionCache):
        """numba's per-function disk cache with :data:`_HELPERS_DIGEST` in every index key."""

        def _index_key(self, sig, codegen):
            return (*super()._index_key(sig, codegen), _HELPERS_DIGEST)


def _key_on_helpers(dispatcher, func):
    """Make ``dispatcher``'s on-disk cache key include :data:`_HELPERS_DIGEST` (best effort).

    Replaces the ``FunctionCache`` numba's ``cache=True`` installed; if numba's internals differ
    from what this expects, the plain numba cache stays in place.
    """
    if _FunctionCache is None or type(getattr(dispatcher, "_cache", None)) is not _FunctionCache:
        return dispatcher
    dispatcher._cache = _HelperKeyedCache(func)
    return dispatcher


#: fast-math flags for the inner products only: reassociation (SIMD lanes) and FMA contraction.
#: Never "nnan"/"ninf": the kernels rely on inf/NaN semantics elsewhere.
_FAST = {"reassoc", "contract"}


def make_jit(cache, *, parallel=False, fastmath=False, njit=numba.njit):
    """Decorator factory: ``njit(cache=...)`` that degrades to ``cache=False`` instead of failing.

    ``cache``: ``False`` (compile in memory), ``"auto"`` (cache on disk when numba finds a writable
    location, else compile in memory silently) or ``True`` (the same, but warn when it cannot
    cache). numba raises ``RuntimeError("cannot cache function ...: no locator available")`` at
    decoration time when no cache directory is writable (read-only site-packages, unset HOME); a
    toolkit must still import there, so we compile in memory.
    """

    # error_model="numpy": no ZeroDivisionError checks on every division — the kernels never
    # divide by zero (norms are tested first) and the checks roughly double the IR to optimise
    opts = dict(parallel=parallel, fastmath=set(fastmath) if fastmath else False, nogil=True,
                error_model="numpy")

    def decorate(func):
        if cache:
            try:
                dispatcher = njit(cache=True, **opts)(func)
            except RuntimeError as exc:  # no writable cache location
                if cache is True:
                    warnings.warn(
                        f"RMT_NUMBA_CACHE is set but numba cannot cache {func.__name__!r} "
                        f"({exc}); compiling in memory instead",
                        RuntimeWarning,
                        stacklevel=2,
                    )
            else:
                return _key_on_helpers(dispatcher, func)
        return njit(cache=False, **opts)(func)

    return decorate


#: what the environment asks for (imported by the other numba users, e.g. rmt.asymptotics)
_CACHE = cache_setting()
_jit = make_jit(_CACHE)
_fjit = make_jit(_CACHE, fastmath=_FAST)
_pjit = make_jit(_CACHE, parallel=True)


# ---------------------------------------------------------------------- random stream
@_jit
def _next(state):
    state[0] = state[0] + _GAMMA
    z = state[0]
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    return z ^ (z >> _S31)


@_jit
def _uniform(state):
    return np.float64(_next(state) >> _S11) * _INV53


@_jit
def _uniform_open(state):
    return np.float64((_next(state) >> _S11) + _ONE) * _INV53


@_jit
def _index(state, m):
    j = int(_uniform(state) * m)
    return j if j < m else m - 1


@_jit
def _draw(state, sampling, n, batch, lq, perm, idx):
    """Fill ``idx`` with one batch (with multiplicity); return its length. See _rng.draw_batch."""
    count = 0
    if sampling == BERNOULLI:
        i = -1.0
        while True:
            u = _uniform_open(state)
            g = 0.0 if lq == -np.inf else math.floor(math.log(u) / lq)
            nxt = i + 1.0 + g
            if nxt >= n:
                break
            i = nxt
            idx[count] = int(i)
            count += 1
    elif sampling == WITH_REPLACEMENT:
        for b in range(batch):
            idx[b] = _index(state, n)
        count = batch
    else:
        for j in range(batch):
            t = j + _index(state, n - j)
            tmp = perm[j]
            perm[j] = perm[t]
            perm[t] = tmp
            idx[j] = perm[j]
        count = batch
    return count


# ---------------------------------------------------------------------- linear algebra
@_fjit
def _dot(a, b, m):
    # reassociation lets LLVM split the sum over SIMD lanes; the order it picks is fixed in the
    # compiled code, so every replica (on any thread) still gets bit-identical results
    s = 0.0
    for j in range(m):
        s += a[j] * b[j]
    return s


@_fjit
def _axpy(t, g, y, m):
    for j in range(m):
        y[j] += t * g[j]


@_fjit
def _dot4(g0, g1, g2, g3, w, m):
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    for j in range(m):
        wj = w[j]
        s0 += g0[j] * wj
        s1 += g1[j] * wj
        s2 += g2[j] * wj
        s3 += g3[j] * wj
    return s0, s1, s2, s3


@_fjit
def _axpy4(t0, g0, t1, g1, t2, g2, t3, g3, y, m):
    for j in range(m):
        y[j] += (t0 * g0[j] + t1 * g1[j]) + (t2 * g2[j] + t3 * g3[j])


@_jit
def _apply_set(G, mode, idx, nb, coef, w, y):
    """y += coef · Σ_{b < nb} H_{idx[b]} w."""
    m = w.shape[0]
    kk = G.shape[1]
    if mode == FACTOR:
        # columns (sample, factor column) in blocks of four: four independent memory streams in
        # flight and one pass over y per block instead of four (the step is bandwidth-bound)
        C = nb * kk
        c = 0
        while c + 4 <= C:
            g0 = G[idx[c // kk], c % kk]
            g1 = G[idx[(c + 1) // kk], (c + 1) % kk]
            g2 = G[idx[(c + 2) // kk], (c + 2) % kk]
            g3 = G[idx[(c + 3) // kk], (c + 3) % kk]
            t0, t1, t2, t3 = _dot4(g0, g1, g2, g3, w, m)
            _axpy4(coef * t0, g0, coef * t1, g1, coef * t2, g2, coef * t3, g3, y, m)
            c += 4
        while c < C:
            g = G[idx[c // kk], c % kk]
            _axpy(coef * _dot(g, w, m), g, y, m)
            c += 1
    elif mode == DIAG:
        for b in range(nb):
            g = G[idx[b], 0]
            for j in range(m):
                y[j] += coef * g[j] * w[j]
    else:
        for b in range(nb):
            Hi = G[idx[b]]
            for r in range(m):
                y[r] += coef * _dot(Hi[r], w, m)


@_jit
def _apply_shared(GS, modeS, coef, w, y):
    """y += coef · C w for the shared curvature C of every sample (``GS[0]`` in the storage of
    ``modeS``: FACTOR columns, DIAG profile, DENSE matrix, or SHIFTED — row 0 a profile and
    pairs of rows (g, h) with C = diag(row 0) + Σ h gᵀ; nothing for ``NO_SHARED``).

    Every sample's Hessian is H⁰_i + C, so a batch adds Σ_b (H⁰_b + C) w = Σ_b H⁰_b w + nb·C w:
    the kernels pass coef = (s/B)·nb and apply C once per set (or once per step, summed)
    instead of once per drawn sample."""
    if modeS == NO_SHARED or coef == 0.0:
        return
    m = w.shape[0]
    if modeS == FACTOR:
        for a in range(GS.shape[1]):
            g = GS[0, a]
            _axpy(coef * _dot(g, w, m), g, y, m)
    elif modeS == DIAG or modeS == SHIFTED:
        g = GS[0, 0]
        for j in range(m):
            y[j] += coef * g[j] * w[j]
        if modeS == SHIFTED:
            for a in range(1, GS.shape[1], 2):
                _axpy(coef * _dot(GS[0, a], w, m), GS[0, a + 1], y, m)
    else:
        C = GS[0]
        for r in range(m):
            y[r] += coef * _dot(C[r], w, m)


@_jit
def _copy(src, dst):
    for j in range(src.shape[0]):
        dst[j] = src[j]


@_jit
def _apply_J(sched_code, GR, modeR, idxR, nbR, cR, useR,
             GF, modeF, idxF, nbF, cF, useF, K, GS, modeS, w, y, v):
    """y = J w for the drawn batches (cR, cF already divided by the nominal batch sizes).

    summed:      y = w + cR Σ_R H_i w + cF Σ_F H_j w
    alternating: v = w + cR Σ_R H_i w;  y = v + cF Σ_F H_j v
    sam:         v = K w;               y = w + cR Σ_R H_i v,   K = I + (ρ/a) H̄_R

    with H_i = H⁰_i + C when a shared curvature C is stored apart (``GS``, :func:`_apply_shared`):
    the batch's nb copies of C are applied as one (summed: one C w for both sets).
    """
    m = w.shape[0]
    if sched_code == SUMMED:
        _copy(w, y)
        if useR:
            _apply_set(GR, modeR, idxR, nbR, cR, w, y)
        if useF:
            _apply_set(GF, modeF, idxF, nbF, cF, w, y)
        if modeS != NO_SHARED:
            coef = 0.0
            if useR:
                coef += cR * nbR
            if useF:
                coef += cF * nbF
            _apply_shared(GS, modeS, coef, w, y)
    elif sched_code == ALTERNATING:
        _copy(w, v)
        if useR:
            _apply_set(GR, modeR, idxR, nbR, cR, w, v)
            _apply_shared(GS, modeS, cR * nbR, w, v)
        _copy(v, y)
        if useF:
            _apply_set(GF, modeF, idxF, nbF, cF, v, y)
            _apply_shared(GS, modeS, cF * nbF, v, y)
    else:
        for r in range(m):
            v[r] = _dot(K[r], w, m)
        _copy(w, y)
        _apply_set(GR, modeR, idxR, nbR, cR, v, y)
        _apply_shared(GS, modeS, cR * nbR, v, y)


@_jit
def _norm(y):
    return math.sqrt(_dot(y, y, y.shape[0]))


@_jit
def _replica_scratch(seeds, rep, nR, nF):
    """A replica's own stream state, permutations and index buffers (never shared by threads)."""
    state = np.empty(1, np.uint64)
    state[0] = seeds[rep]
    return (state, np.arange(nR), np.arange(max(nF, 1)), np.empty(max(nR, 1), np.int64),
            np.empty(max(nF, 1), np.int64))


# ---------------------------------------------------------------------- kernels
@_jit
def _one_vector(rep, GR, modeR, nR, BR, cR, lqR, useR, GF, modeF, nF, BF, cF, lqF, useF,
                sched_code, sampling, K, GS, modeS, W0, seeds, steps, burn_in, restart, record,
                logsum, nmeas, nsing, traj):
    """One replica of :func:`run_vector` (serial; the parallel kernel only distributes these).

    Keeping the whole trajectory in an ordinary function keeps the parfor body tiny, which
    roughly halves the first-call compile time.
    """
    m = W0.shape[1]
    state, permR, permF, idxR, idxF = _replica_scratch(seeds, rep, nR, nF)
    w = np.empty(m)
    y = np.empty(m)
    v = np.empty(m)
    w0 = W0[rep]
    n0 = _norm(w0)
    acc = 0.0
    cnt = 0
    sing = 0
    if n0 == 0.0:
        if record:
            for k in range(steps + 1):
                traj[rep, k] = -np.inf
    else:
        for j in range(m):
            w[j] = w0[j] / n0
        L = math.log(n0)
        if record:
            traj[rep, 0] = L
        dead = False
        for k in range(steps):
            if dead:
                if record:
                    traj[rep, k + 1] = -np.inf
                continue
            nbR = _draw(state, sampling, nR, BR, lqR, permR, idxR) if useR else 0
            nbF = _draw(state, sampling, nF, BF, lqF, permF, idxF) if useF else 0
            _apply_J(sched_code, GR, modeR, idxR, nbR, cR, useR,
                     GF, modeF, idxF, nbF, cF, useF, K, GS, modeS, w, y, v)
            nrm = _norm(y)
            if nrm == 0.0:
                sing += 1
                if restart:
                    for j in range(m):
                        w[j] = w0[j] / n0
                else:
                    dead = True
                    L = -np.inf
            else:
                ln = math.log(nrm)
                if k >= burn_in:
                    acc += ln
                    cnt += 1
                L += ln
                for j in range(m):
                    w[j] = y[j] / nrm
            if record:
                traj[rep, k + 1] = L
    logsum[rep] = acc
    nmeas[rep] = cnt
    nsing[rep] = sing


@_pjit
def run_vector(GR, modeR, nR, BR, cR, lqR, useR, GF, modeF, nF, BF, cF, lqF, useF,
               sched_code, sampling, K, GS, modeS, W0, seeds, steps, burn_in, restart, record,
               logsum, nmeas, nsing, traj):
    """Propagate one renormalised vector per replica for ``steps`` steps.

    Outputs per replica r: ``logsum[r]`` = Σ log‖J_k ŵ_k‖ over measured steps k ≥ burn_in,
    ``nmeas[r]`` their number, ``nsing[r]`` the number of steps with J_k ŵ_k = 0 exactly, and
    (if ``record``) ``traj[r, k]`` = log‖w_k‖ (natural log of the un-renormalised norm).
    On a singular step: with ``restart`` the vector restarts from W0[r] (that step is not
    measured); without, the trajectory is absorbed at 0 (traj = -inf from then on).
    """
    for rep in prange(W0.shape[0]):
        _one_vector(rep, GR, modeR, nR, BR, cR, lqR, useR, GF, modeF, nF, BF, cF, lqF, useF,
                    sched_code, sampling, K, GS, modeS, W0, seeds, steps, burn_in, restart, record,
                    logsum, nmeas, nsing, traj)


@_jit
def _one_spectrum(rep, GR, modeR, nR, BR, cR, lqR, useR, GF, modeF, nF, BF, cF, lqF, useF,
                  sched_code, sampling, K, GS, modeS, Q0, seeds, steps, burn_in, logsum, nmeas,
                  nsing):
    """One replica of :func:`run_spectrum` (serial)."""
    p = Q0.shape[1]
    m = Q0.shape[2]
    state, permR, permF, idxR, idxF = _replica_scratch(seeds, rep, nR, nF)
    Q = np.empty((p, m))
    Y = np.empty((p, m))
    v = np.empty(m)
    rdiag = np.empty(p)
    for a in range(p):
        for j in range(m):
            Q[a, j] = Q0[rep, a, j]
    cnt = 0
    sing = 0
    for a in range(p):
        logsum[rep, a] = 0.0
    for k in range(steps):
        nbR = _draw(state, sampling, nR, BR, lqR, permR, idxR) if useR else 0
        nbF = _draw(state, sampling, nF, BF, lqF, permF, idxF) if useF else 0
        for a in range(p):
            _apply_J(sched_code, GR, modeR, idxR, nbR, cR, useR,
                     GF, modeF, idxF, nbF, cF, useF, K, GS, modeS, Q[a], Y[a], v)
        ok = True
        for a in range(p):
            ya = Y[a]
            for b in range(a):
                yb = Y[b]
                r = _dot(yb, ya, m)
                for j in range(m):
                    ya[j] -= r * yb[j]
            nrm = _norm(ya)
            if nrm == 0.0:
                ok = False
                break
            rdiag[a] = nrm
            for j in range(m):
                ya[j] = ya[j] / nrm
        if not ok:
            sing += 1
            for a in range(p):
                for j in range(m):
                    Q[a, j] = Q0[rep, a, j]
            continue
        if k >= burn_in:
            for a in range(p):
                logsum[rep, a] += math.log(rdiag[a])
            cnt += 1
        for a in range(p):
            for j in range(m):
                Q[a, j] = Y[a, j]
    nmeas[rep] = cnt
    nsing[rep] = sing


@_pjit
def run_spectrum(GR, modeR, nR, BR, cR, lqR, useR, GF, modeF, nF, BF, cF, lqF, useF,
                 sched_code, sampling, K, GS, modeS, Q0, seeds, steps, burn_in,
                 logsum, nmeas, nsing):
    """Benettin/QR: propagate an orthonormal p-frame per replica, re-orthonormalise every step
    by modified Gram–Schmidt and accumulate log R_jj (``logsum[r, j]``) over steps ≥ burn_in.

    A step on which some R_jj is exactly 0 (the frame loses rank) is counted in ``nsing``, not
    measured, and the frame restarts from Q0[r].
    """
    for rep in prange(Q0.shape[0]):
        _one_spectrum(rep, GR, modeR, nR, BR, cR, lqR, useR, GF, modeF, nF, BF, cF, lqF, useF,
                      sched_code, sampling, K, GS, modeS, Q0, seeds, steps, burn_in, logsum, nmeas,
                      nsing)


# ---------------------------------------------------------------------- affine recursion
@_fjit
def _axpy_sum4(t, g0, g1, g2, g3, y, m):
    for j in range(m):
        y[j] += t * ((g0[j] + g1[j]) + (g2[j] + g3[j]))


@_jit
def _add_rows(D, idx, nb, coef, y):
    """y += coef · Σ_{b < nb} D[idx[b]]: the batch drift, drawn with the Hessians' indices.

    Rows in blocks of four (one pass over y per block, four gathers in flight), as in
    :func:`_apply_set`."""
    m = y.shape[0]
    b = 0
    while b + 4 <= nb:
        _axpy_sum4(coef, D[idx[b]], D[idx[b + 1]], D[idx[b + 2]], D[idx[b + 3]], y, m)
        b += 4
    while b < nb:
        _axpy(coef, D[idx[b]], y, m)
        b += 1


@_jit
def _apply_affine(sched_code, GR, modeR, idxR, nbR, cR, useR,
                  GF, modeF, idxF, nbF, cF, useF, K, GS, modeS, DR, DF, drift, w, y, v):
    """y = J w + b for the drawn batches (``rmt.Dynamics.step``), b = Σ_S c_S Σ_batch g̃_i.

    summed/sam:  y = J w + cR Σ_R g̃_i + cF Σ_F g̃_j
    alternating: v = w + cR Σ_R (H_i w + g̃_i);  y = v + cF Σ_F (H_j v + g̃_j)
                 (so b = A_F s_R ĝ_R + s_F ĝ_F: the retain drift passes through the forget step)
    """
    if sched_code == ALTERNATING:
        _copy(w, v)
        if useR:
            _apply_set(GR, modeR, idxR, nbR, cR, w, v)
            _apply_shared(GS, modeS, cR * nbR, w, v)
            if drift:
                _add_rows(DR, idxR, nbR, cR, v)
        _copy(v, y)
        if useF:
            _apply_set(GF, modeF, idxF, nbF, cF, v, y)
            _apply_shared(GS, modeS, cF * nbF, v, y)
            if drift:
                _add_rows(DF, idxF, nbF, cF, y)
    else:
        _apply_J(sched_code, GR, modeR, idxR, nbR, cR, useR,
                 GF, modeF, idxF, nbF, cF, useF, K, GS, modeS, w, y, v)
        if drift:
            if useR:
                _add_rows(DR, idxR, nbR, cR, y)
            if useF:
                _add_rows(DF, idxF, nbF, cF, y)


@_jit
def _log_norm(y, f):
    """(log √(‖y‖² + f²), True), or (+inf, False) when y is not finite.

    ``f`` is the norm of the frozen part outside the working coordinates. When ‖y‖² overflows
    but y is finite the norm is recomputed with scaling, so only a non-finite iterate counts as
    an overflow.
    """
    m = y.shape[0]
    s = _dot(y, y, m) + f * f
    if s < np.inf:  # False for +inf and NaN
        if s > 0.0:
            return 0.5 * math.log(s), True
        return -np.inf, True
    mx = f
    for j in range(m):
        a = abs(y[j])
        if not a < np.inf:
            return np.inf, False
        if a > mx:
            mx = a
    acc = (f / mx) * (f / mx)
    for j in range(m):
        acc += (y[j] / mx) * (y[j] / mx)
    return math.log(mx) + 0.5 * math.log(acc), True


@_jit
def _one_affine(rep, GR, modeR, nR, BR, cR, lqR, useR, GF, modeF, nF, BF, cF, lqF, useF,
                sched_code, sampling, K, GS, modeS, DR, DF, drift, X0, frozen, seeds, steps,
                logn, over, last):
    """One replica of :func:`run_affine` (serial)."""
    m = X0.shape[1]
    state, permR, permF, idxR, idxF = _replica_scratch(seeds, rep, nR, nF)
    w = np.empty(m)
    y = np.empty(m)
    v = np.empty(m)
    _copy(X0[rep], w)
    f = frozen[rep]
    L, ok = _log_norm(w, f)
    logn[rep, 0] = L
    over[rep] = -1
    for k in range(steps):
        nbR = _draw(state, sampling, nR, BR, lqR, permR, idxR) if useR else 0
        nbF = _draw(state, sampling, nF, BF, lqF, permF, idxF) if useF else 0
        _apply_affine(sched_code, GR, modeR, idxR, nbR, cR, useR,
                      GF, modeF, idxF, nbF, cF, useF, K, GS, modeS, DR, DF, drift, w, y, v)
        L, ok = _log_norm(y, f)
        if not ok:
            over[rep] = k + 1
            for j in range(k + 1, steps + 1):
                logn[rep, j] = np.inf
            break
        logn[rep, k + 1] = L
        tmp = w
        w = y
        y = tmp
    _copy(w, last[rep])


@_pjit
def run_affine(GR, modeR, nR, BR, cR, lqR, useR, GF, modeF, nF, BF, cF, lqF, useF,
               sched_code, sampling, K, GS, modeS, DR, DF, drift, X0, frozen, seeds, steps,
               logn, over, last):
    """Iterate δ_{k+1} = J_k δ_k + b_k (no renormalisation) from X0[r] in every replica r.

    ``DR``/``DF`` (n, m): per-sample drift vectors g̃_i in working coordinates (used when
    ``drift``), drawn with the same indices as the Hessians. ``frozen[r]``: norm of the part of
    the start outside the working coordinates (it never moves). Outputs: ``logn[r, k]`` =
    log √(‖δ_k‖² + frozen²); ``over[r]`` = first k with δ_k not finite (then logn = +inf from
    k on), or −1; ``last[r]`` = the last finite iterate.
    """
    for rep in prange(X0.shape[0]):
        _one_affine(rep, GR, modeR, nR, BR, cR, lqR, useR, GF, modeF, nF, BF, cF, lqF, useF,
                    sched_code, sampling, K, GS, modeS, DR, DF, drift, X0, frozen, seeds, steps,
                    logn, over, last)
