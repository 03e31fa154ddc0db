"""Exact stable sets {x : ρ(T(x)) ≤ 1} from det(T(x) − I) = 0 (docs/contract.md §3)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import scipy.linalg
import scipy.optimize

from ..dynamics import Dynamics
from .analysis import _is_stable, _stability_margin
from .config import _ROUNDOFF
from ._linalg import _sym_embedding

# ---------------------------------------------------------------------- stable sets
def _pmul(P, Q, mul):
    """Product of two polynomials with (matrix) coefficients, ``mul`` the coefficient product."""
    out = [None] * (len(P) + len(Q) - 1)
    for i, a in enumerate(P):
        for j, b in enumerate(Q):
            c = mul(a, b)
            out[i + j] = c if out[i + j] is None else out[i + j] + c
    return out


def _padd(P, Q):
    n = max(len(P), len(Q))
    zero = (P[0] if P else Q[0]) * 0
    return [(P[k] if k < len(P) else zero) + (Q[k] if k < len(Q) else zero) for k in range(n)]


def _weight_polys(dyn, parameter):
    """s_S(x) = s0 + s1·x for x = η (s = u·η) or x = α (s_R = −η(1−α), s_F = ηα)."""
    if parameter == "eta":
        return {t.name: (0.0, t.weight / dyn.eta) for t in dyn.terms}
    eta = dyn.eta
    return {"retain": (-eta, eta), "forget": (0.0, eta)}


def _operator_polynomial(dyn, parameter, commuting, null=False):
    """Coefficients T_k of T(x) = Σ_k x^k T_k: entries of T are polynomials in η and α
    (degree 2 summed/SAM, 4 alternating). ``commuting``: per-direction scalars (n_dir,) of the
    diagonal action E[j_k²]; otherwise r²×r² Kronecker matrices (row-major vec). ``null``: the
    scalar null mode of a shared λI (a commuting direction of eigenvalue λ for every sample)."""
    w = _weight_polys(dyn, parameter)
    if commuting or null:
        commuting = True
        moms = {t.name: (m, N) for t, m, N in
                (dyn.null_moments() if null else dyn.direction_moments())}
        one = np.ones_like(next(iter(moms.values()))[0])
        kron = np.multiply
        mean = {k: m for k, (m, _) in moms.items()}
        noise = {k: N for k, (_, N) in moms.items()}
        kappa = dyn.combinator.kappa(dyn.schedule, mean["retain"]) \
            if dyn.combinator.preconditioned else one
        mean = {k: v * kappa for k, v in mean.items()}
        noise = {k: v * kappa**2 for k, v in noise.items()}
    else:
        r = dyn.r
        one = np.eye(r)
        kron = np.kron
        mean = {t.name: t.mean @ dyn.K for t in dyn.terms}
        noise = {t.name: t.kron_noise() @ (np.kron(dyn.K, dyn.K) if dyn.combinator.preconditioned
                                           else np.eye(r * r)) for t in dyn.terms}
    ones = kron(one, one)

    def step(names):
        A = [one.copy(), one * 0]
        for n in names:
            s0, s1 = w[n]
            A = _padd(A, [s0 * mean[n], s1 * mean[n]])
        T = _pmul(A, A, kron)
        for n in names:
            s0, s1 = w[n]
            T = _padd(T, [s0**2 * noise[n], 2 * s0 * s1 * noise[n], s1**2 * noise[n]])
        return T

    names = [t.name for t in dyn.terms]
    if not dyn.combinator.products:
        return step(names)
    T = [ones]
    for n in names:  # T = T_F ∘ T_R: later terms multiply from the left
        T = _pmul(step([n]), T, lambda a, b: a @ b if not commuting else a * b)
    return T


def _real_roots(coeffs, lo, hi):
    """Real roots in (lo, hi) of det(Σ_k x^k C_k) (matrices) or of Σ_k x^k c_k (scalars)."""
    coeffs = [np.atleast_2d(c) for c in coeffs]
    scale = max(float(np.max(np.abs(c))) for c in coeffs) or 1.0
    while len(coeffs) > 1 and np.max(np.abs(coeffs[-1])) <= 1e-14 * scale:
        coeffs = coeffs[:-1]  # degree drops (e.g. no noise): the lower-degree problem
    m = len(coeffs) - 1
    if m == 0:
        return np.zeros(0)
    n = coeffs[0].shape[0]
    if n == 1:
        roots = np.roots([float(c[0, 0]) for c in reversed(coeffs)])
    else:
        A = np.zeros((m * n, m * n))
        B = np.eye(m * n)
        A[: (m - 1) * n, n:] = np.eye((m - 1) * n)
        for k in range(m):
            A[(m - 1) * n:, k * n:(k + 1) * n] = -coeffs[k]
        B[(m - 1) * n:, (m - 1) * n:] = coeffs[m]
        ab = scipy.linalg.eigvals(A, B, homogeneous_eigvals=True)
        fin = np.abs(ab[1]) > 1e-13 * np.abs(ab[0])
        roots = ab[0][fin] / ab[1][fin]
    roots = np.asarray(roots, complex)
    # generous on the imaginary part: a spurious breakpoint only splits an interval in two
    # (both halves are tested and merged), a missed one could hide a window
    real = roots[np.abs(roots.imag) <= 1e-6 * np.maximum(1.0, np.abs(roots))].real
    return np.sort(real[(real > lo) & (real < hi)])


def _breakpoints(dyn, parameter, lo, hi):
    """Every x in (lo, hi) where an eigenvalue of T(x) (on symmetric matrices) crosses 1."""
    pts = _scalar_breakpoints(dyn, parameter, lo, hi, False) \
        if dyn.hs.kind == "commuting" else _matrix_breakpoints(dyn, parameter, lo, hi)
    if dyn.has_null_mode:  # the null scalar mode of a shared λI crosses 1 on its own
        pts = np.union1d(pts, _scalar_breakpoints(dyn, parameter, lo, hi, True))
    return pts


def _eta_scale(dyn, parameter):
    """The curvature scale s: in η the polynomial is solved in x = η·s (coefficients T_k/s^k of
    comparable size), so that round-off rules do not depend on the units of the Hessians."""
    if parameter != "eta":
        return 1.0
    s = max(float(np.max(np.abs(t.mean))) if t.mean.size else 0.0 for t in dyn.terms)
    if dyn.has_null_mode:
        s = max(s, abs(float(dyn.shared_scalar)))
    return s if s > 0 and np.isfinite(s) else 1.0


def _scale_poly(T, s):
    return [Tk / s**k for k, Tk in enumerate(T)]


def _scalar_breakpoints(dyn, parameter, lo, hi, null):
    s = _eta_scale(dyn, parameter)
    T = _scale_poly(_operator_polynomial(dyn, parameter, True, null=null), s)
    lo, hi = lo * s, hi * s
    pts = []
    for k in range(T[0].size):
        c = [float(np.asarray(Tk).ravel()[k]) for Tk in T]
        c[0] -= 1.0
        if parameter == "eta":
            c = c[1:]  # T(0) = I: divide out the root at η = 0
        if max(abs(v) for v in c) <= _ROUNDOFF * max(abs(float(np.asarray(Tk).ravel()[k]))
                                                       for Tk in T):
            continue  # frozen direction (identity for every x)
        pts.extend(_real_roots(c, lo, hi))
    return np.unique(np.asarray(pts, float)) / s


def _matrix_breakpoints(dyn, parameter, lo, hi):
    s = _eta_scale(dyn, parameter)
    T = _scale_poly(_operator_polynomial(dyn, parameter, False), s)
    lo, hi = lo * s, hi * s
    S = _sym_embedding(dyn.r)
    C = [S.T @ Tk @ S for Tk in T]
    C[0] = C[0] - np.eye(S.shape[1])
    if parameter == "eta":
        C = C[1:]
    return _real_roots(C, lo, hi) / s


def _merge(points, stable, lo, hi):
    """Union of closed intervals from breakpoints and the status of each open piece."""
    edges = [lo] + list(points) + [hi]
    out = []
    for a, b, ok in zip(edges[:-1], edges[1:], stable):
        if not ok:
            continue
        if out and out[-1][1] == a:
            out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return tuple((float(a), float(b)) for a, b in out)


def _polish(dyn, parameter, x, rtol):
    """Refine a transition point with the well-conditioned stability margin (sign change)."""
    f = lambda v: _stability_margin(dyn.replace(**{parameter: float(v)}))  # noqa: E731
    for w in (1e-9, 1e-6):
        a, b = x * (1 - w), x * (1 + w)
        if parameter == "alpha":
            a, b = max(a, 0.0), min(b, 1.0)
        if a <= 0.0 or a >= b:
            continue
        fa, fb = f(a), f(b)
        if fa * fb < 0:
            return float(scipy.optimize.brentq(f, a, b, rtol=rtol, xtol=1e-300))
    return float(x)


def _alpha_dynamics(dyn):
    """The dynamics at an interior α (both sets active; span = retain ∪ forget span)."""
    if not dyn.combinator.takes_forget:
        raise ValueError("the stable set in alpha is not defined for schedule='sam' (alpha must be 0)")
    if not dyn.hs.has_forget:
        raise ValueError("a stable set in alpha needs a HessianSet with a forget set")
    return dyn.replace(alpha=0.5)


def _stable_set(dyn, parameter, rtol):
    lo, hi = (0.0, math.inf) if parameter == "eta" else (0.0, 1.0)
    pts = _breakpoints(dyn, parameter, lo, hi)
    pts = np.array([_polish(dyn, parameter, p, rtol) for p in pts])
    pts = np.unique(pts)

    def stable_at(x):
        return _is_stable(dyn.replace(**{parameter: float(x)}))

    edges = [lo] + list(pts) + [hi]
    status = []
    for a, b in zip(edges[:-1], edges[1:]):
        if math.isinf(b):
            mid = 2.0 * a if a > 0 else 1.0
        elif parameter == "eta" and a > 0:
            mid = math.sqrt(a * b)
        else:
            mid = 0.5 * (a + b)
        status.append(stable_at(mid))
    out = _merge(pts, status, lo, hi)
    if parameter == "alpha" and out:
        # the end points are different dynamics (a set drops out): decide them directly
        first, last = out[0], out[-1]
        if first[0] == 0.0 and not _is_stable(_at_alpha(dyn, 0.0)):
            out = ((_next_up(0.0), first[1]),) + out[1:]
        if last[1] == 1.0 and not _is_stable(_at_alpha(dyn, 1.0)):
            out = out[:-1] + ((out[-1][0], float(np.nextafter(1.0, 0.0))),)
        out = tuple((a, b) for a, b in out if a <= b)
    return out


def _at_alpha(dyn, alpha):
    """The dynamics at α (the α = 0 and α = 1 end points drop a set and so change the span)."""
    return Dynamics(dyn.hs, dyn.schedule.replace(alpha=float(alpha)))


def _next_up(x):
    return float(np.nextafter(x, 1.0))


def _not_interval_warning(what, intervals):
    warnings.warn(
        f"the mean-square stable set in {what} is not an interval: "
        + " ∪ ".join(f"[{a:.6g}, {b:.6g}]" for a, b in intervals)
        + "; the critical value is the upper edge of its lowest component (see rmt.stable_set)",
        RuntimeWarning, stacklevel=4)




def bisect_alpha_edge(dyn: Dynamics, stable: float, unstable: float, rtol: float
                      ) -> tuple[float, float]:
    """Bisection in α between a stable and an unstable point (sign tests): (stable, unstable)
    within ``rtol`` of each other."""
    x0, x1 = stable, unstable
    for _ in range(200):
        if abs(x1 - x0) <= rtol * max(abs(x0), abs(x1), 1e-300):
            break
        mid = 0.5 * (x0 + x1)
        if _is_stable(dyn.replace(alpha=mid)):
            x0 = mid
        else:
            x1 = mid
    return x0, x1
