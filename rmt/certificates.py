"""Certificates of a mean-square verdict, checked in exact arithmetic (docs/contract.md §10.6).

:func:`certify` turns a floating-point solve into a *proof*: a PSD matrix Y in exact factor
coordinates and a bound c with

    "rho <= c" (c < 1, the model resists):  Y ≻ 0 and T(Y) ⪯ cY        (Collatz–Wielandt)
    "rho >= c" (c > 1, the model forgets):  Y ⪰ 0, Y ≠ 0 and T(Y) ⪰ cY

for the positive map T of *any* of our schedules. :meth:`Certificate.verify` re-derives T from the
exact input (every float factor is a rational number) with :mod:`rmt.verify`, which imports nothing
of the toolkit and trusts no eigen-solver; ``rmt verify CERT.json`` does the same from a file.
Coordinates: Y lives on B = a set of the input's own factor columns spanning the Hessians' span,
so that no floating-point basis enters the proof (the verifier checks that every factor lies in
range(B) exactly).

Scope and verification method (``Certificate.verification``; every method is exact):

- commuting sets in the standard basis (``HessianSet.from_commuting`` without a rotation, e.g.
  the Hessian-test grid): any span, diagonal Y, "exact-commuting" (entrywise checks);
- summed schedule, factor input: r ≤ :data:`CONGRUENCE_SPAN` "exact" (Sylvester / exact LDLᵀ),
  r ≤ :data:`MAX_SPAN` "exact-integer-congruence" (integer products, positive definiteness by an
  exact congruence found in floating point; the digits MLP at r = 300 verifies in seconds);
- alternating and SAM: r ≤ :data:`MAX_SPAN_PRODUCTS`, "exact" (rationals with G⁻¹).

With shared curvature λI the span is all of R^d. ρ(T) within the search's resolution of 1 gets
no certificate: :class:`CertificateError` says so.
"""

from __future__ import annotations

import functools
import json
import os
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import TypeVar

import numpy as np
import scipy.linalg

from . import verify as _verify
from .dynamics import Dynamics, as_dynamics, check_pair, noise_coefficients
from .meansquare import mean_square
from .hessians import HessianSet
from .schedule import Schedule
from .api import HS, SCHEDULE, TOLERANCE, InstanceOf, analysis
from .validation import Options

__all__ = ["Certificate", "CertificateError", "CriticalCertificate", "certify", "certify_critical",
           "load_certificate", "MAX_SPAN", "MAX_SPAN_PRODUCTS", "CONGRUENCE_SPAN",
           "COMMUTING_RESOLUTION"]

_PathT = TypeVar("_PathT", bound="str | os.PathLike[str]")

#: Largest span dimension certified for the summed schedule (factor input). Up to
#: :data:`CONGRUENCE_SPAN` the PSD checks are decided by Sylvester's criterion / exact LDLᵀ
#: (verification "exact"); above it by an exact integer congruence found in floating point
#: ("exact-integer-congruence": digits MLP r = 300 verifies in seconds, benchmarks/bench_certify.py).
MAX_SPAN = 400
#: Largest span for the alternating and SAM schedules (exact rationals with G⁻¹; "exact").
MAX_SPAN_PRODUCTS = 72
#: Summed spans above this use verification "exact-integer-congruence".
CONGRUENCE_SPAN = 64
#: Commuting input (H_i diagonal in the standard basis, ``HessianSet.from_commuting`` with the
#: identity basis) is certified at any span with a diagonal Y ("exact-commuting"). The float
#: candidate resolves |ρ − 1| above this; closer to 1 the exact rates E[J_j²] pick c (only ρ = 1
#: exactly has no certificate).
COMMUTING_RESOLUTION = 1e-12


class CertificateError(ValueError):
    """No certificate could be made (the reason says why: span too large, ρ too close to 1, …)."""


def _pair(x):
    num, den = Fraction(x).as_integer_ratio()
    return [int(num), int(den)]


def _dyadic(x, bits=40):
    """x rounded to a dyadic rational with ``bits`` bits after the leading one (small numbers
    keep exact products small; the proof does not care how Y was rounded)."""
    if x == 0:
        return Fraction(0)
    e = math.floor(math.log2(abs(x))) - bits
    return Fraction(round(x / 2.0**e)) * Fraction(2) ** e


@dataclass
class Certificate:
    """A claim about ρ(T) with its proof data; :meth:`verify` checks it in exact arithmetic."""

    claim: str
    c: Fraction
    Y: list
    basis_columns: list
    input: dict
    rate: float  # the floating-point ρ(T) the certificate was built from (not part of the proof)
    #: "collatz-wielandt" (any schedule) or "rayleigh" (a lower bound, summed schedules only)
    method: str = "collatz-wielandt"
    #: how the verifier decides the PSD checks: "exact", "exact-integer-congruence" or
    #: "exact-commuting" (then Y is the diagonal, one entry per coordinate)
    verification: str = "exact"

    @property
    def bound(self) -> float:
        return float(self.c)

    @property
    def forgets(self) -> bool:
        """The claim's verdict: ρ ≥ c > 1 forgets, ρ ≤ c < 1 resists."""
        return self.claim == "rho >= c"

    @property
    def span(self) -> int:
        """r, the dimension of the span the claim is about."""
        if self.verification == "exact-commuting":
            return len(_verify._commuting_rates(self.input)[0])
        return len(self.Y)

    def to_dict(self) -> dict:
        data = {"format": _verify.FORMAT, "claim": self.claim, "c": _pair(self.c),
                "basis_columns": list(self.basis_columns), "input": self.input,
                "rate_float": self.rate, "method": self.method,
                "verification": self.verification}
        if self.verification == "exact-commuting":
            data["Y_diagonal"] = [_pair(v) for v in self.Y]
        else:
            data["Y"] = [[_pair(v) for v in row] for row in self.Y]
        data["fingerprint"] = _verify.fingerprint(data)
        return data

    @property
    def fingerprint(self) -> str:
        return _verify.fingerprint({"input": self.input})

    def verify(self) -> tuple[bool, str]:
        """(True, reason) when the claim is proven from the exact input, else (False, why)."""
        return _verify.verify_data(self.to_dict())

    def save(self, path: _PathT) -> _PathT:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(self.to_dict(), fh)
        return path

    def __repr__(self):
        return (f"Certificate({self.claim!r}, c={float(self.c):.12g}, span r={self.span}, "
                f"{self.verification}, fingerprint={self.fingerprint[:12]})")


@analysis({"path": [InstanceOf(str, os.PathLike)]}, dynamics=False, blas=False)
def load_certificate(path: str | os.PathLike[str]) -> Certificate:
    with open(path, encoding="utf-8") as fh:
        d = json.load(fh)
    q = lambda p: Fraction(p[0], p[1])  # noqa: E731
    verification = d.get("verification", "exact")
    Y = ([q(v) for v in d["Y_diagonal"]] if verification == "exact-commuting"
         else [[q(v) for v in r] for r in d["Y"]])
    return Certificate(d["claim"], q(d["c"]), Y, d.get("basis_columns", []), d["input"],
                       float(d.get("rate_float", math.nan)), d.get("method", "collatz-wielandt"),
                       verification)


def _exact_input(dyn):
    hs = dyn.hs
    inp = {"schedule": _exact_schedule(hs, dyn.schedule)}
    for name in ("retain", "forget"):
        if name == "forget" and not hs.has_forget:
            continue
        F = np.asarray(hs.factors(name), float)  # (n, d, k)
        inp[name] = [[[_pair(v) for v in row] for row in Fi] for Fi in F]
    if hs.has_shared:  # C = λI + QQᵀ, part of every sample's Hessian
        Q = hs.shared_factor
        inp["shared"] = {"scalar": _pair(hs.shared_scalar),
                         "Q": None if Q is None else [[_pair(v) for v in row]
                                                      for row in np.asarray(Q, float)]}
    return inp


def _float_operator(dyn, pivots=None):
    """B (column indices), and T̃ on r×r float matrices in the coordinates of those columns."""
    hs, sch = dyn.hs, dyn.schedule
    names = [t.name for t in dyn.terms]
    cols, blocks = [], {}
    for name in ("retain", "forget"):
        if name in names:
            F = np.asarray(hs.factors(name), float)
            blocks[name] = F
            cols.append(F.transpose(1, 0, 2).reshape(F.shape[1], -1))
    cols.append(_shared_columns(hs))
    Phi = np.concatenate(cols, axis=1)
    if pivots is None:
        _, _, piv = scipy.linalg.qr(Phi, mode="economic", pivoting=True)
        r = _span_size(dyn)
        basis = sorted(int(j) for j in piv[:r])
    else:  # exact pivot columns (the verifier's span)
        basis, r = sorted(pivots), len(pivots)
    B = Phi[:, basis]
    Gi = np.linalg.inv(B.T @ B)
    BtCB = np.zeros((r, r))  # Bᵀ C B of the shared curvature C = λI + QQᵀ (every sample has it)
    shared = hs.shared_scalar > 0.0 or hs.shared_factor is not None
    if hs.shared_scalar > 0.0:
        BtCB = BtCB + hs.shared_scalar * (B.T @ B)
    if hs.shared_factor is not None:
        BtQ = B.T @ np.asarray(hs.shared_factor, float)
        BtCB = BtCB + BtQ @ BtQ.T
    GiK = Gi @ BtCB
    terms = {}
    for t in dyn.terms:
        F = blocks[t.name]  # (n, d, k)
        n, _, k = F.shape
        W = B.T @ F.transpose(1, 0, 2).reshape(F.shape[1], n * k)  # BᵀF_i side by side: r × nk
        V = Gi @ W  # C_i = G⁻¹(W_iW_iᵀ + BᵀCB) = V_iW_iᵀ + G⁻¹BᵀCB
        GiP = V @ W.T  # Σ_i V_iW_iᵀ
        Cbar = GiP / n + GiK
        terms[t.name] = (t.weight, (W, V, GiP, n, k), Cbar, t.c, t.e)
    I = np.eye(r)

    def noise(term, Y):
        # s²[c/n Σ_i C_iYC_iᵀ − e C̄YC̄ᵀ] with Σ_i C_iYC_iᵀ = Σ_i V_i(W_iᵀYW_i)V_iᵀ
        #   + G⁻¹P·Y·KG⁻¹ + G⁻¹K·Y·PG⁻¹ + n G⁻¹KYKG⁻¹   (K = BᵀCB, P = Σ W_iW_iᵀ)
        s, (W, V, GiP, n, k), Cbar, c, e = term
        out = np.zeros((r, r))
        if c:
            YW = (Y @ W).reshape(r, n, k)
            D = np.einsum("rnk,rnl->nkl", W.reshape(r, n, k), YW)
            VD = np.einsum("rnk,nkl->rnl", V.reshape(r, n, k), D).reshape(r, n * k)
            acc = VD @ V.T
            if shared:
                acc = acc + GiP @ Y @ GiK.T + GiK @ Y @ GiP.T + n * (GiK @ Y @ GiK.T)
            out = out + (c / n) * acc
        if e:
            out = out - e * (Cbar @ Y @ Cbar.T)
        return s * s * out

    comb = dyn.combinator  # how the per-set maps combine (rmt.combinators)
    K = comb.precondition(sch, terms["retain"][2] if "retain" in terms else None, I)
    A = I + sum(terms[n][0] * terms[n][2] for n in terms) @ K
    parts = [(I + terms[n][0] * terms[n][2] @ K, functools.partial(noise, terms[n]))
             for n in terms]

    def T(Y):
        return comb.second_moment(Y, A, parts, K if comb.preconditioned else None)
    T.G = B.T @ B  # type: ignore[attr-defined]  # the Gram matrix of B: ⟨X, Z⟩ = tr(GXGZ)
    return basis, T, r


def _shared_columns(hs):
    """Columns the span must contain besides the factors: Q's (C ∋ QQᵀ), and all of R^d with a
    shared λI (then the span is the whole space and the null mode is one of T's blocks)."""
    out = [np.zeros((hs.dim, 0))]
    if hs.shared_factor is not None:
        out.append(np.asarray(hs.shared_factor, float))
    if hs.shared_scalar > 0.0:
        out.append(np.eye(hs.dim))
    return np.concatenate(out, axis=1)


def _span_size(dyn):
    return dyn.dim if dyn.hs.shared_scalar > 0.0 else dyn.r


#: Spans up to this size get their candidate from the dense r²×r² matrix of T̃ (cheap, exact to
#: round-off); above it from the toolkit's solver (rmt.mean_square), mapped to B coordinates.
DENSE_CANDIDATE_SPAN = 8


def _candidate(dyn, basis, T, r, solver=False):
    """(ρ estimate, unit Y ⪰ 0 estimate of T̃'s Perron eigenmatrix) in B coordinates.

    T(BYBᵀ) = B T̃(Y) Bᵀ, so an eigenmatrix X of T in the span's orthonormal coordinates U gives
    Y = W⁻¹ X W⁻ᵀ with W = UᵀB. The proof does not depend on how Y was found."""
    if r <= DENSE_CANDIDATE_SPAN and not solver:
        return _top(T, r)
    res = mean_square(dyn)
    Phi = np.concatenate([np.asarray(dyn.hs.factors(t.name), float).transpose(1, 0, 2)
                          .reshape(dyn.dim, -1) for t in dyn.terms]
                         + [_shared_columns(dyn.hs)], axis=1)
    U = np.asarray(dyn.basis)
    B = Phi[:, basis]
    PU = np.linalg.lstsq(B, U, rcond=None)[0]  # B⁺U (B full column rank): r × r_span
    if res.eigenmatrix is None:  # the null mode of a shared λI dominates: its projector
        Y = np.linalg.inv(B.T @ B) - PU @ PU.T  # B⁺(I − UUᵀ)B⁺ᵀ, B⁺B⁺ᵀ = (BᵀB)⁻¹
    else:
        Y = PU @ (0.5 * (res.eigenmatrix + res.eigenmatrix.T)) @ PU.T
    Y = 0.5 * (Y + Y.T)
    if np.trace(Y) < 0:
        Y = -Y
    return float(res.span_rate if np.isfinite(res.span_rate) else res.rate), Y / np.linalg.norm(Y)


def _top(T, r):
    M = np.empty((r * r, r * r))
    for j in range(r * r):
        E = np.zeros(r * r)
        E[j] = 1.0
        M[:, j] = T(E.reshape(r, r)).ravel()
    vals, vecs = np.linalg.eig(M)
    i = int(np.argmax(vals.real))
    Y = np.real(vecs[:, i]).reshape(r, r)
    Y = 0.5 * (Y + Y.T)
    if np.trace(Y) < 0:
        Y = -Y
    return float(vals[i].real), Y / np.linalg.norm(Y)


def _min_eig(S):
    return float(np.linalg.eigvalsh(0.5 * (S + S.T))[0])


def _span_limit(dyn):
    return MAX_SPAN if dyn.schedule.schedule == "summed" else MAX_SPAN_PRODUCTS


def _identity_commuting(hs):
    """True for commuting input whose eigenbasis is exactly the standard basis."""
    if hs.kind != "commuting":
        return False
    Q = np.asarray(hs.basis)
    return bool(np.array_equal(Q, np.eye(Q.shape[0])))


@analysis({"hs": HS, "schedule": SCHEDULE}, dynamics=False, blas=False)
def certify(hs: HessianSet | Dynamics, schedule: Schedule | None = None) -> Certificate:
    """A certificate of the mean-square verdict of (hs, schedule) or a :class:`Dynamics`.

    Returns a :class:`Certificate` whose :meth:`~Certificate.verify` succeeded; raises
    :class:`CertificateError` when none could be made (reason in the message).

    Which verification: commuting input in the standard basis → "exact-commuting" (any span);
    summed schedule, r ≤ :data:`CONGRUENCE_SPAN` → "exact", up to :data:`MAX_SPAN` →
    "exact-integer-congruence"; alternating and SAM → "exact" up to :data:`MAX_SPAN_PRODUCTS`."""
    if isinstance(hs, HessianSet) and isinstance(schedule, Schedule) and _identity_commuting(hs):
        check_pair(hs, schedule)  # no Dynamics needed (its reduction costs O(n d · d²) here)
        return _certify_commuting(hs, schedule)
    dyn = as_dynamics(hs, schedule)
    if _identity_commuting(dyn.hs):
        return _certify_commuting(dyn.hs, dyn.schedule)
    limit = _span_limit(dyn)
    if _span_size(dyn) > limit:
        which = ("MAX_SPAN" if limit == MAX_SPAN else
                 f"MAX_SPAN_PRODUCTS for the {dyn.schedule.schedule} schedule")
        raise CertificateError(f"certify: span r = {_span_size(dyn)} > {which} = {limit} "
                               "(the exact verification grows like r³ times the size of the "
                               "numbers; a shared λI makes the span the whole space)")
    try:
        return _certify_at(dyn, None)
    except CertificateError as exc:
        # The span rule drops directions of round-off-sized curvature; exactly, every factor
        # column counts. Retry on the exact span (all of range(Φ)) when the verifier said so.
        if "outside the span" not in str(exc):
            raise
        piv = _exact_pivots(dyn)
        full = len(piv)
        if mean_square(dyn).rate <= 1.0:
            raise CertificateError(
                "certify: ρ(T) < 1 on the toolkit's span, but the factors also reach directions of "
                "round-off curvature (the span rule drops them); there, exactly, ρ(T) is within "
                "that curvature of 1, below what a float-found certificate resolves") from exc
        if full > limit:
            raise CertificateError(f"certify: the exact span of the factors has r = {full} > "
                                   f"MAX_SPAN = {limit} (the toolkit's span rule keeps "
                                   f"{_span_size(dyn)}; the rest is curvature at round-off)") from exc
        return _certify_at(dyn, piv, solver=True)


def _exact_schedule(hs, sch):
    return {"schedule": sch.schedule, "sampling": sch.sampling, "eta": _pair(sch.eta),
            "alpha": _pair(sch.alpha), "batch": int(sch.batch),
            "forget_batch": int(sch.batch_forget) if hs.has_forget else None,
            "sam_rho": _pair(sch.sam_rho), "sam_a": _pair(sch.sam_a)}


def _commuting_input(hs, sch):
    """Exact input of a commuting set in the standard basis: sparse eigenvalue profiles (the
    stored ones, shared curvature folded in, round-off entries already exact zeros)."""
    inp = {"representation": "commuting", "dim": int(hs.dim),
           "schedule": _exact_schedule(hs, sch)}
    for name in ("retain", "forget"):
        if name == "forget" and not hs.has_forget:
            continue
        P = np.asarray(hs.eigenvalues(name), float)
        ii, jj = np.nonzero(P)
        inp[name] = {"n": int(P.shape[0]),
                     "entries": [[int(i), int(j), _pair(P[i, j])] for i, j in zip(ii, jj)]}
    return inp


def _commuting_float_rates(hs, sch):
    """(span mask, E[J_j²] per direction) in floating point — the verifier's formulas
    (rmt.verify._commuting_rates), used only to choose c and Y."""
    parts, mask = [], np.zeros(hs.dim, bool)
    comb = sch.combinator
    weights = sch.step_weights
    batches = {"retain": sch.batch, "forget": sch.batch_forget}
    active = [w for w, on in (("retain", sch.uses_retain),
                              ("forget", sch.uses_forget and comb.takes_forget)) if on]
    for name in active:
        H = np.asarray(hs.eigenvalues(name), float)
        n = H.shape[0]
        c, e = noise_coefficients(sch.sampling, n, batches[name])
        hbar = H.mean(axis=0)
        var = c * (H * H).sum(axis=0) / n - e * hbar * hbar
        parts.append((hbar, var, weights[name]))
        mask |= np.any(H != 0, axis=0)
    if sch.schedule == "sam":
        hbar, var, s = parts[0]
        k = 1.0 + comb.ascent(sch) * hbar
        m = (1.0 + s * hbar * k) ** 2 + s * s * k * k * var
    elif sch.schedule == "summed":
        m = (1.0 + sum(s * h for h, _v, s in parts)) ** 2 + sum(s * s * v for _h, v, s in parts)
    else:
        m = np.ones(hs.dim)
        for h, v, s in parts:
            m = m * ((1.0 + s * h) ** 2 + s * s * v)
    return mask, m


def _certify_commuting(hs, sch):
    """Diagonal certificate of a commuting set in the standard basis (verification
    "exact-commuting"): T(diag y) = diag(E[J_j²] y_j), so Y = I on the span proves ρ ≤ c ≥ every
    E[J_j²], and Y = e_je_jᵀ proves ρ ≥ E[J_j²] ≥ c."""
    inp = _commuting_input(hs, sch)
    mask, m = _commuting_float_rates(hs, sch)
    d = hs.dim
    if not mask.any():
        raise CertificateError("certify: no curvature in any active direction")
    span = np.flatnonzero(mask)
    j = int(span[np.argmax(m[span])])
    rho = float(m[j])

    def make(c, claim):
        if claim == "rho <= c":
            Y = [Fraction(int(mask[i])) for i in range(d)]
        else:
            Y = [Fraction(int(i == j)) for i in range(d)]
        return Certificate(claim, c, Y, [], inp, rho, "collatz-wielandt", "exact-commuting")

    tried = []
    if abs(rho - 1.0) > COMMUTING_RESOLUTION:
        claim = "rho <= c" if rho < 1.0 else "rho >= c"
        cert = make(_dyadic(rho + 0.5 * (1.0 - rho)), claim)
        ok, why = cert.verify()
        if ok:
            return cert
        tried.append(why)
    # closer to 1 than the float resolution (or the float choice failed): the exact rates
    sp, rates = _verify._commuting_rates(inp)
    top = max(rates)
    if top == 1:
        raise CertificateError("certify: ρ(T) = 1 exactly (commuting set: max_j E[J_j²] = 1), "
                               "neither bound certifies a verdict")
    j = sp[rates.index(top)]
    cert = make(top, "rho <= c" if top < 1 else "rho >= c")
    ok, why = cert.verify()
    if ok:
        return cert
    raise CertificateError(f"certify: no commuting certificate ({'; '.join(tried + [why])})")


def _exact_pivots(dyn):
    """Pivot columns of Φ in exact arithmetic (rref over the rationals): a basis of range(Φ)
    without the span rule's round-off threshold, as the verifier counts it."""
    Phi = np.concatenate([np.asarray(dyn.hs.factors(t.name), float).transpose(1, 0, 2)
                          .reshape(dyn.dim, -1) for t in dyn.terms]
                         + [_shared_columns(dyn.hs)], axis=1)
    if _verify._flint is None:  # pragma: no cover - python-flint is a core dependency
        raise CertificateError("certify: the exact span needs python-flint")
    fl = _verify._flint
    M = fl.fmpq_mat(Phi.shape[0], Phi.shape[1],
                    [fl.fmpq(*Fraction(float(x)).as_integer_ratio()) for x in Phi.ravel()])
    R, rank = M.rref()
    piv, j = [], 0
    for i in range(int(rank)):
        while R[i, j] == 0:
            j += 1
        piv.append(j)
        j += 1
    return piv


def _round_symmetric(Y, verification):
    """Y rounded to exact dyadic rationals, exactly symmetric. "exact": each entry to 40
    significant bits (small numbers keep exact products small); "exact-integer-congruence": one
    grid 2^e with max |Y| ≈ 2^62 (one denominator, integers of ≤ 63 bits)."""
    r = Y.shape[0]
    if verification == "exact-integer-congruence":
        big = float(np.max(np.abs(Y)))
        e = (math.frexp(big)[1] - 62) if big > 0 else 0
        Z = np.rint(np.ldexp(0.5 * (Y + Y.T), -e))
        unit = Fraction(2) ** e
        return [[int(v) * unit for v in row] for row in Z.tolist()]
    Yq = [[_dyadic(Y[i, j]) for j in range(r)] for i in range(r)]
    for i in range(r):
        for j in range(i):
            Yq[i][j] = Yq[j][i]
    return Yq


def _certify_at(dyn, pivots, solver=False):
    basis, T, r = _float_operator(dyn, pivots)
    # on an exact span with round-off directions, T̃ in B coordinates is ill-conditioned in
    # floating point: take the candidate from the solver on the toolkit's span instead
    rho, Y0 = _candidate(dyn, basis, T, r, solver)
    inp = _exact_input(dyn)
    summed = dyn.schedule.schedule == "summed"
    verification = ("exact-integer-congruence" if summed and r > CONGRUENCE_SPAN else "exact")
    strict = verification != "exact"  # the congruence proves definiteness, not semidefiniteness
    G = T.G
    lam = np.linalg.eigvalsh(Y0)
    top = float(lam[-1])
    tried = []
    if rho > 1.0 and dyn.combinator.self_adjoint:
        # a lower bound needs no definiteness for a self-adjoint T: the Rayleigh quotient (§10.1)
        Yq = _round_symmetric(Y0, verification)
        Yf = np.array([[float(v) for v in row] for row in Yq])
        GYG = G @ Yf @ G
        quotient = float(np.sum(GYG * T(Yf)) / np.sum(GYG * Yf))
        for f in (1e-3, 1e-1, 0.5):
            cq = _dyadic(rho - f * (rho - 1.0))
            if not cq > 1 or not quotient > float(cq) * (1 + 1e-12):
                continue
            cert = Certificate("rho >= c", cq, Yq, basis, inp, rho, "rayleigh", verification)
            good, why = cert.verify()
            if good:
                return cert
            tried.append(why)
    for f in (1e-3, 1e-2, 1e-1, 0.5):
        if rho < 1.0:
            c = rho + f * (1.0 - rho)
            cands = [Y0 + tau * top * np.eye(r) for tau in (0.0, 1e-9, 1e-6, 1e-3, 1e-1, 1.0)]
        elif strict:  # definite candidates only: the Perron matrix, lifted
            c = rho - f * (rho - 1.0)
            cands = [Y0 + tau * top * np.eye(r) for tau in (0.0, 1e-9, 1e-6)]
        else:  # semidefinite: the Perron matrix with its small eigenvalues cut
            c = rho - f * (rho - 1.0)
            Q = np.linalg.eigh(Y0)[1]
            cands = [(Q * np.where(lam > tau * top, lam, 0.0)) @ Q.T for tau in (0.0, 1e-9, 1e-6)]
        cq = _dyadic(c)
        if (rho < 1.0 and not cq < 1) or (rho > 1.0 and not cq > 1):
            continue
        for Y in cands:
            if rho < 1.0:
                ok = _min_eig(Y) > 0 and _min_eig(float(cq) * Y - T(Y)) > (0.0 if strict else -1e-300)
            elif strict:
                ok = _min_eig(Y) > 0 and _min_eig(T(Y) - float(cq) * Y) > 0.0
            else:
                ok = _min_eig(T(Y) - float(cq) * Y) > -1e-12 * top
            if not ok:
                continue
            Yq = _round_symmetric(Y, verification)
            cert = Certificate("rho <= c" if rho < 1.0 else "rho >= c", cq, Yq, basis, inp, rho,
                               "collatz-wielandt", verification)
            good, why = cert.verify()
            if good:
                return cert
            tried.append(why)
    raise CertificateError(f"certify: no certificate found for ρ(T) ≈ {rho:.15g} (within the "
                           f"search's resolution of 1, or the exact check failed: "
                           f"{'; '.join(tried[:3]) or 'no float candidate'})")


@dataclass
class CriticalCertificate:
    """A certified bracket [lo, hi] of a critical value: a "rho <= c < 1" certificate at lo (stable)
    and a "rho >= c > 1" certificate at hi (unstable). ``unique`` says whether the crossing inside is
    proven to be the only one (summed schedules: ρ is convex in η and α, monotone in B, §10.2,
    §10.4); ``note`` says what is and is not proven otherwise."""

    parameter: str
    lo: float
    hi: float
    at_lo: Certificate
    at_hi: Certificate
    unique: bool
    note: str

    def verify(self) -> tuple[bool, str]:
        a, why_a = self.at_lo.verify()
        b, why_b = self.at_hi.verify()
        ok = a and b and self.at_lo.claim == "rho <= c" and self.at_hi.claim == "rho >= c"
        return ok, f"at {self.parameter} = {self.lo:.17g}: {why_a}; at {self.hi:.17g}: {why_b}"


@analysis({"parameter": [Options(("eta", "alpha", "batch"))], "rel": TOLERANCE}, blas=False)
def certify_critical(hs: HessianSet | Dynamics, schedule: Schedule | None = None,
                     parameter: str = "eta", *, rel: float = 1e-6) -> CriticalCertificate:
    """Certify the critical η*, α* or B* of (hs, schedule): certificates at the two ends of a
    bracket around the toolkit's value (relative half-width ``rel`` for η and α; B* − 1 and B* for
    the batch). Raises :class:`CertificateError` when an end cannot be certified."""
    from .meansquare import critical_alpha, critical_batch, critical_eta

    dyn = as_dynamics(hs, schedule)
    sch = dyn.schedule
    if parameter not in ("eta", "alpha", "batch"):
        raise ValueError(f"parameter must be 'eta', 'alpha' or 'batch', got {parameter!r}")
    if parameter == "eta":
        x = float(critical_eta(dyn))
        if not (0 < x < math.inf):
            raise CertificateError(f"certify_critical: η* = {x} has no two-sided bracket")
        lo, hi = x * (1 - rel), x * (1 + rel)
        ends = (sch.replace(eta=lo), sch.replace(eta=hi))
    elif parameter == "alpha":
        a_star = critical_alpha(dyn)
        if a_star is None or not (0 < float(a_star) < 1):
            raise CertificateError(f"certify_critical: α* = {a_star} has no two-sided bracket "
                                   "in (0, 1)")
        x = float(a_star)
        lo, hi = x * (1 - rel), min(x * (1 + rel), 1.0 - 1e-12)
        ends = (sch.replace(alpha=lo), sch.replace(alpha=hi))
    else:
        b = critical_batch(dyn)
        if b is None or b <= 1:
            raise CertificateError(f"certify_critical: B* = {b} has no two-sided bracket")
        lo, hi = b, b - 1  # stable at B*, unstable at B* − 1
        ends = (sch.replace(batch=b), sch.replace(batch=b - 1))
    at_lo, at_hi = certify(dyn.hs, ends[0]), certify(dyn.hs, ends[1])
    if at_lo.claim != "rho <= c" or at_hi.claim != "rho >= c":
        raise CertificateError("certify_critical: the bracket's ends do not straddle 1")
    summed = dyn.combinator.self_adjoint
    note = ("summed schedule: ρ is convex in η and α and non-increasing in B (contract §10.2, "
            "§10.4), so this is the only crossing" if summed else
            "alternating/SAM: ρ need not be convex — a crossing lies in the bracket, and other "
            "unstable windows elsewhere are not excluded")
    return CriticalCertificate(parameter, float(lo), float(hi), at_lo, at_hi, summed, note)
