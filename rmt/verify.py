"""Standalone verifier of mean-square certificates (docs/contract.md §10.6), in exact arithmetic.

This module imports nothing from the rest of the toolkit: only the standard library
(``fractions``, ``json``, ``hashlib``), python-flint (FLINT's exact integers and rationals) when
installed, and numpy when installed — numpy only to *find* a congruence for the method
"exact-integer-congruence", never to decide anything. It re-derives everything from the exact
input stored in the certificate file and trusts no eigen-solver.

**What is checked.** The input is the per-sample factors F_i (every float is a rational number, and
the file stores each as an integer pair) and the schedule (η, α, batch sizes, sampling scheme,
combinator). With B = a set of factor columns named in the certificate:

1. B has full column rank and every factor of an active set lies in range(B) (exactly), so the span
   U of the Hessians is range(B) and H_i B = B C_i with C_i = (BᵀB)⁻¹ BᵀH_iB. A shared curvature
   C = λI + QQᵀ (input key ``shared``) is part of every sample's Hessian, H_i = F_iF_iᵀ + C: Q's
   columns must lie in range(B) too, and with λ > 0 range(B) must be all of R^d.
2. In these coordinates T(BYBᵀ) = B T̃(Y) Bᵀ with T̃ built from the C_i and the sampling
   coefficients (c, e) of contract §2.1: summed T̃(Y) = AYAᵀ + Σ_S s_S²[c_S/n_S Σ_i C_iYC_iᵀ −
   e_S C̄_SYC̄_Sᵀ], A = I + Σ_S s_S C̄_S, s_R = −η(1−α), s_F = ηα; alternating T̃_F∘T̃_R; SAM
   ĀYĀᵀ + η²N_R(K̃YK̃ᵀ), K̃ = I + (ρ/a)C̄_R, Ā = I − ηC̄_RK̃. T̃ is a positive map similar to T on
   the span, so ρ(T̃) = ρ(T on the span).
3. Claim ``"rho <= c"``: Y ≻ 0 and cY − T̃(Y) ⪰ 0 (Collatz–Wielandt). Claim ``"rho >= c"``:
   Y ⪰ 0, Y ≠ 0 and T̃(Y) − cY ⪰ 0 — or, for the summed schedule (T self-adjoint, §10.1), with
   ``"method": "rayleigh"``, tr(Y·GT̃(Y)G) ≥ c·tr(Y·GYG) for a symmetric Y ≠ 0. Both are checked
   congruent by G = BᵀB ≻ 0, which keeps ⪰: G T̃(Y) G is built from BᵀH_iB = (BᵀF_i)(BᵀF_i)ᵀ
   alone (no inverse for the summed schedule, so the numbers stay small).

**How the PSD checks are decided** (the certificate's ``"verification"``; every method is exact):

- ``"exact"`` (default): Sylvester's criterion — every leading principal minor > 0, read off
  FLINT's fraction-free LU of the matrix scaled to integers — and, when that fails, exact LDLᵀ
  with diagonal pivoting (complete: semidefinite and indefinite are told apart).
- ``"exact-integer-congruence"`` (large spans): for the summed schedule every matrix is an
  integer matrix times one rational (floats are dyadic, so the input shares one denominator),
  formed by FLINT's exact integer products; G·T̃(Y)·G is formed from the factor blocks
  (W_S·blockdiag(W_iᵀYW_i)·W_Sᵀ), not from n products of r × r matrices. Positive definiteness of
  an integer matrix M: D = diag(2^k_i) equilibrates it, a matrix C is found in floating point
  (inverse Cholesky factor, rounded to integers), and ‖C·DMD·Cᵀ − σI‖_F < σ is checked *exactly*
  for a power of two σ — then C·DMD·Cᵀ ≻ 0, C is invertible and M ≻ 0 (Sylvester's law of
  inertia); up to three such steps refine ill-conditioned M. It proves definiteness, never
  semidefiniteness, and a failure proves nothing. The span checks of step 1 are done modulo
  primes: rank r of B modulo a prime, and containment by S = δΦ_Ī − B_Ī·adj(B_I)·Φ_I = 0 checked
  modulo primes whose product exceeds Hadamard's bound on |S| (B_I: r rows of B with δ =
  det B_I ≠ 0).
- ``"exact-commuting"``: commuting input (``"representation": "commuting"``, H_i = diag(h_i) in the
  standard basis, sparse profiles): every J is diagonal, T(diag y) = diag(E[J_j²] y_j), so the
  certificate is a diagonal Y and both PSD checks are entrywise comparisons of exact rationals.

Use: ``python -m rmt.verify CERT.json`` or ``rmt verify CERT.json`` (exit 0 when it verifies).
"""

from __future__ import annotations

import hashlib
import math
import json
import os
import sys
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

__all__ = ["verify_file", "verify_data", "fingerprint", "FORMAT", "VERIFICATIONS"]

FORMAT = "rmt-certificate-1"
SAMPLING = ("bernoulli", "with_replacement", "without_replacement")
SCHEDULES = ("summed", "alternating", "sam")
#: How a certificate's PSD checks are decided (all exact; see :func:`verify_data`).
VERIFICATIONS = ("exact", "exact-integer-congruence", "exact-commuting")


# ---------------------------------------------------------------------- exact matrices
# With python-flint (FLINT's exact rationals, C speed) matrices are ``fmpq_mat``; without it,
# lists of ``fractions.Fraction``. Both are exact: the choice changes the speed, not the answer.
try:  # pragma: no cover - exercised where python-flint is installed
    import flint as _flint
except ImportError:  # pragma: no cover
    _flint = None  # type: ignore[assignment]  # optional backend: checked with `is None`

BACKEND = "python-flint" if _flint is not None else "fractions"


def _from_fractions(rows):
    if _flint is None:
        return [list(r) for r in rows]
    n, m = len(rows), (len(rows[0]) if rows else 0)
    return _flint.fmpq_mat(n, m, [_flint.fmpq(x.numerator, x.denominator)
                                  for r in rows for x in r])


def _shape(A):
    return (A.nrows(), A.ncols()) if _flint is not None else (len(A), len(A[0]) if A else 0)


def _entries(A):
    """Rows of Fractions (for the pivoting elimination and comparisons)."""
    if _flint is None:
        return [list(r) for r in A]
    n, m = _shape(A)
    return [[Fraction(int(A[i, j].p), int(A[i, j].q)) for j in range(m)] for i in range(n)]


def _zeros(n, m):
    if _flint is not None:
        return _flint.fmpq_mat(n, m)
    return [[Fraction(0)] * m for _ in range(n)]


def _eye(n):
    out = [[Fraction(int(i == j)) for j in range(n)] for i in range(n)]
    return _from_fractions(out)


def _mul(A, B):
    if _flint is not None:
        return A * B
    Bt = list(zip(*B))
    return [[sum((a * b for a, b in zip(row, col)), Fraction(0)) for col in Bt] for row in A]


def _t(A):
    if _flint is not None:
        return A.transpose()
    return [list(r) for r in zip(*A)]


def _fq(s):
    return _flint.fmpq(s.numerator, s.denominator) if _flint is not None else s


def _add(A, B, s=Fraction(1)):
    if _flint is not None:
        return A + B * _fq(s)
    return [[a + s * b for a, b in zip(ra, rb)] for ra, rb in zip(A, B)]


def _scale(A, s):
    if _flint is not None:
        return A * _fq(s)
    return [[s * a for a in r] for r in A]


def _inverse(A):
    """Exact inverse; raises ValueError when singular."""
    if _flint is not None:
        try:
            return A.inv()
        except ZeroDivisionError:
            raise ValueError("singular") from None
    n = len(A)
    M = [list(r) + e for r, e in zip(A, _eye(n))]
    for col in range(n):
        piv = next((i for i in range(col, n) if M[i][col] != 0), None)
        if piv is None:
            raise ValueError("singular")
        M[col], M[piv] = M[piv], M[col]
        p = M[col][col]
        M[col] = [v / p for v in M[col]]
        for i in range(n):
            if i != col and M[i][col] != 0:
                f = M[i][col]
                M[i] = [a - f * b for a, b in zip(M[i], M[col])]
    return [r[n:] for r in M]


def _rank(A):
    if _flint is not None:
        return int(A.rank())
    M = [list(r) for r in A]
    rank, col, n, m = 0, 0, len(M), len(M[0]) if M else 0
    while rank < n and col < m:
        piv = next((i for i in range(rank, n) if M[i][col] != 0), None)
        if piv is None:
            col += 1
            continue
        M[rank], M[piv] = M[piv], M[rank]
        for i in range(rank + 1, n):
            if M[i][col] != 0:
                f = M[i][col] / M[rank][col]
                M[i] = [a - f * b for a, b in zip(M[i], M[rank])]
        rank, col = rank + 1, col + 1
    return rank


def _columns(A, idx):
    rows = _entries(A)
    return _from_fractions([[r[j] for j in idx] for r in rows])


def _leading_minors_positive(M: list) -> bool:
    """True iff every leading principal minor of the symmetric rational matrix M is > 0 (then M ≻ 0,
    Sylvester). Fraction-free Bareiss elimination on M scaled to integers: the k-th pivot is the
    k-th leading minor times a positive power of the scale, exactly, with integers bounded by the
    minors (Hadamard) — no gcd per operation, unlike rational elimination. False says only "not
    proven positive definite" (a zero minor can still be PSD)."""
    n = len(M)
    den = 1
    for row in M:
        for x in row:
            den = den * x.denominator // math.gcd(den, x.denominator)
    A = [[int(x * den) for x in row] for row in M]
    prev = 1
    for k in range(n):
        p = A[k][k]
        if p <= 0:
            return False
        Ak = A[k]
        for i in range(k + 1, n):
            Ai, aik = A[i], A[i][k]
            for j in range(k + 1, n):
                Ai[j] = (p * Ai[j] - aik * Ak[j]) // prev  # exact (Bareiss)
        prev = p
    return True


def psd_status(S: Any) -> tuple[str, str]:
    """("pd" | "psd" | "not psd", detail) of a symmetric rational matrix, exactly: positive
    definite when every leading principal minor is positive (fraction-free Bareiss); otherwise
    LDLᵀ with diagonal pivoting, where a negative pivot, or a zero pivot with a non-zero row, is a
    proof that S is not PSD."""
    M = _entries(S) if not isinstance(S, list) else [list(r) for r in S]
    n = len(M)
    for i in range(n):
        for j in range(i + 1, n):
            if M[i][j] != M[j][i]:
                return "not psd", "not symmetric"
    if _leading_minors_positive(M):
        return "pd", "positive definite (leading principal minors)"
    active = list(range(n))
    definite = True
    while active:
        k = max(active, key=lambda i: M[i][i])
        p = M[k][k]
        if p < 0:
            return "not psd", "negative pivot"
        if p == 0:
            if any(M[i][j] != 0 for i in active for j in active):
                return "not psd", "zero pivot with a non-zero entry"
            return "psd", f"rank {n - len(active)} of {n}"
        active.remove(k)
        row = {j: M[k][j] for j in active}
        for i in active:
            f = M[i][k] / p
            if f:
                Mi = M[i]
                for j in active:
                    Mi[j] -= f * row[j]
    return ("pd", "positive definite") if definite else ("psd", "")


# ---------------------------------------------------------------------- integer matrices
# The fast path (python-flint): every rational matrix is an *integer* matrix times one rational
# scale, q·M with M an ``fmpz_mat``. Floats are dyadic rationals, so the input's factors share
# one (power-of-two) denominator and every product of them is again an integer matrix: FLINT
# multiplies those exactly and fast (multi-modular), with no gcd per entry.
try:  # pragma: no cover - numpy is only used to *find* a congruence; the proof never needs it
    import numpy as _np
except ImportError:  # pragma: no cover
    _np = None  # type: ignore[assignment]


def _lcm(a: int, b: int) -> int:
    return a // math.gcd(a, b) * b


class _ZQ:
    """The exact rational matrix q·M: M an integer matrix (``fmpz_mat``), q a ``Fraction``."""

    __slots__ = ("M", "q")

    def __init__(self, M, q=Fraction(1)):
        self.M, self.q = M, Fraction(q)

    def __matmul__(self, other: "_ZQ") -> "_ZQ":
        return _ZQ(self.M * other.M, self.q * other.q)

    def t(self) -> "_ZQ":
        return _ZQ(self.M.transpose(), self.q)

    def times(self, s) -> "_ZQ":
        return _ZQ(self.M, self.q * s)

    def __add__(self, other: "_ZQ") -> "_ZQ":
        if other.q == 0:
            return self
        if self.q == 0:
            return other
        a, b = self.q, other.q
        g = Fraction(math.gcd(a.numerator, b.numerator), _lcm(a.denominator, b.denominator))
        ka, kb = a / g, b / g  # integers by the choice of g
        return _ZQ(self.M * int(ka) + other.M * int(kb), g)

    def __sub__(self, other: "_ZQ") -> "_ZQ":
        return self + other.times(-1)


def _zq_from_rows(rows) -> _ZQ:
    """Rows of Fractions → q·M with q = 1/(common denominator)."""
    den = 1
    for row in rows:
        for x in row:
            if den % x.denominator:
                den = _lcm(den, x.denominator)
    n, m = len(rows), (len(rows[0]) if rows else 0)
    flat = [int(x * den) if x.denominator != den else x.numerator for row in rows for x in row]
    return _ZQ(_flint.fmpz_mat(n, m, flat), Fraction(1, den))


def _trace_product(A: _ZQ, B: _ZQ) -> Fraction:
    """tr(A·B) exactly, as Σ_ij A_ij (Bᵀ)_ij (no matrix product)."""
    s = sum((a * b for a, b in zip(A.M.entries(), B.M.transpose().entries())), _flint.fmpz(0))
    return A.q * B.q * int(s)


def _int_entries(M) -> list[int]:
    return [int(x) for x in M.entries()]


def _pd_leading_minors(M) -> bool:
    """True iff every leading principal minor of the symmetric integer matrix M is > 0 (then
    M ≻ 0, Sylvester). FLINT's fraction-free LU (Bareiss): when it needs no row exchange the k-th
    pivot *is* the k-th leading principal minor, exactly; an exchange means a zero minor, and then
    the answer is False ("not proven positive definite"; a zero minor can still be PSD)."""
    n = M.nrows()
    if n == 0:
        return True
    LU, _d, perm, rank = M._fflu()
    if int(rank) != n or list(perm) != list(range(n)):
        return False
    return all(LU[k, k] > 0 for k in range(n))


#: Congruence steps tried by :func:`_pd_congruence` before it gives up.
CONGRUENCE_STEPS = 3
_MANTISSA = 52  # bits kept of each floating congruence entry


def _to_float_rows(ents: list[int], n: int, shift: int):
    """The integers / 2^shift as a float array (n×n), shifting first so no entry overflows."""
    big = max((abs(x).bit_length() for x in ents), default=0)
    pre = max(0, big - 62)
    vals = [float(x >> pre) for x in ents] if pre else [float(x) for x in ents]
    return _np.ldexp(_np.array(vals, dtype=float).reshape(n, n), pre - shift)


def _pd_congruence(M) -> tuple[bool, str]:
    """Prove the symmetric integer matrix M positive definite by an exact congruence.

    With D = diag(2^{A−a_i}) (powers of two that equilibrate the diagonal) and a matrix C found in
    floating point (the inverse of a Cholesky factor, rounded to integers), R = C·DMD·Cᵀ is
    computed *exactly* (integer products) and ‖R − σI‖_F < σ is checked exactly for σ = the power
    of two R was scaled to. Then every eigenvalue of R lies in (0, 2σ), so R ≻ 0; R has full
    rank, so C is invertible, and M = D⁻¹C⁻¹RC⁻ᵀD⁻¹ ≻ 0 (Sylvester's law of inertia). How C was
    found does not matter for the proof (it is any integer matrix); a poor C only makes the check
    fail. Repeated up to :data:`CONGRUENCE_STEPS` times on R (iterative refinement) for
    ill-conditioned M. Returns (proven, detail); False proves nothing either way."""
    if _np is None:
        return False, "numpy (to find the congruence) is not installed"
    n = M.nrows()
    if n == 0:
        return True, "empty"
    if M != M.transpose():
        return False, "not symmetric"
    diag = [int(M[i, i]) for i in range(n)]
    if any(x <= 0 for x in diag):
        return False, "a diagonal entry is not positive"
    a = [(x.bit_length() - 1) // 2 for x in diag]  # 2^{2a_i} ≤ M_ii < 2^{2a_i + 2}
    A = max(a)
    Dz = _flint.fmpz_mat(n, n, [(1 << (A - a[i])) if i == j else 0
                                for i in range(n) for j in range(n)])
    R = Dz * M * Dz  # diagonal in [2^{2A}, 2^{2A+2})
    scale = 2 * A
    for step in range(1, CONGRUENCE_STEPS + 1):
        Rf = _to_float_rows(_int_entries(R), n, scale)
        try:
            Lf = _np.linalg.cholesky(0.5 * (Rf + Rf.T))
            Cf = _np.linalg.inv(Lf)
        except _np.linalg.LinAlgError:
            return False, f"floating-point Cholesky failed at congruence step {step}"
        if not _np.all(_np.isfinite(Cf)):
            return False, f"non-finite congruence at step {step}"
        # each row rounded to _MANTISSA bits at its own scale 2^{k_i}, then brought to the
        # common 2^K (an exact shift): C_ij = round(Cf_ij·2^{k_i})·2^{K−k_i}
        rowmax = _np.max(_np.abs(Cf), axis=1)
        if not _np.all(rowmax > 0):
            return False, f"a zero row in the congruence at step {step}"
        ks = [_MANTISSA - int(math.ceil(math.log2(float(v)))) for v in rowmax]
        K = max(ks)
        Ci = _np.rint(_np.ldexp(Cf, _np.array(ks)[:, None]))
        Cz = _flint.fmpz_mat(n, n, [int(v) << (K - ks[i]) for i in range(n)
                                    for v in Ci[i].tolist()])
        R = Cz * R * Cz.transpose()
        scale += 2 * K
        if scale < 0:  # pragma: no cover - Cholesky factors of a matrix with diagonal ≥ 1
            return False, "congruence scale below 1"
        sigma = 1 << scale
        ents = _int_entries(R)
        frob2 = 0
        for i in range(n):
            row = ents[i * n:(i + 1) * n]
            for j, x in enumerate(row):
                e = x - sigma if i == j else x
                frob2 += e * e
        if frob2 < sigma * sigma:
            return True, (f"positive definite (exact congruence to within ‖·−I‖_F < 1, "
                          f"{step} step{'s' if step > 1 else ''})")
    return False, f"no congruence within ‖·−I‖_F < 1 after {CONGRUENCE_STEPS} steps"


# ---------------------------------------------------------------------- input
def _q(pair):
    num, den = pair
    if not (isinstance(num, int) and isinstance(den, int)) or den <= 0:
        raise ValueError(f"a rational must be an integer pair [num, den > 0], got {pair!r}")
    return Fraction(num, den)


def _qmat(rows):
    return _from_fractions([[_q(x) for x in r] for r in rows])


def fingerprint(data: Mapping[str, Any]) -> str:
    """SHA-256 of the exact input (factors and schedule) in canonical JSON."""
    blob = json.dumps(data["input"], sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()


def _coefficients(sampling, n, B):
    if sampling == "bernoulli":
        return Fraction(n - B, B * n), Fraction(0)
    if sampling == "with_replacement":
        return Fraction(1, B), Fraction(1, B)
    if n == 1:
        return Fraction(0), Fraction(0)
    c = Fraction(n - B, B * (n - 1))
    return c, c


def _operator(inp, basis_cols):
    """T̃ as a function of exact r×r Y, and r; raises ValueError with the reason."""
    sch = inp["schedule"]
    if sch["schedule"] not in SCHEDULES or sch["sampling"] not in SAMPLING:
        raise ValueError(f"unknown schedule/sampling {sch['schedule']!r}/{sch['sampling']!r}")
    eta, alpha = _q(sch["eta"]), _q(sch["alpha"])
    sam = sch["schedule"] == "sam"
    sets = {}
    for name in ("retain", "forget"):
        raw = inp.get(name)
        if raw is None:
            continue
        sets[name] = [_qmat(F) for F in raw]  # each F_i: d × k
    use = {"retain": alpha < 1 or sam, "forget": alpha > 0 and not sam and "forget" in sets}
    blocks = [F for name in ("retain", "forget") if use[name] for F in sets[name]]
    if not blocks:
        raise ValueError("no active factor")
    d = _shape(blocks[0])[0]
    shared = inp.get("shared")  # C = λI + QQᵀ in every sample's Hessian (contract §2, shared)
    lam, Qm = Fraction(0), None
    if shared is not None:
        lam = _q(shared["scalar"])
        if lam < 0:
            raise ValueError("the shared λ must be >= 0")
        if shared.get("Q") is not None:
            Qm = _qmat(shared["Q"])
    extra = [] if Qm is None else [Qm]
    if lam > 0:  # the span is all of R^d: the identity's columns are candidates for B
        extra.append(_eye(d))
    ents = [_entries(F) for F in blocks + extra]
    rows = [sum((e[i] for e in ents), []) for i in range(d)]
    Phi = _from_fractions(rows)  # d × (Σ k): the stacked factor (and shared) columns
    ncols = _shape(Phi)[1]
    if any(not (0 <= j < ncols) for j in basis_cols) or len(set(basis_cols)) != len(basis_cols):
        raise ValueError("basis_columns out of range or repeated")
    Bm = _columns(Phi, basis_cols)  # d × r
    try:
        Gi = _inverse(_mul(_t(Bm), Bm))
    except ValueError:
        raise ValueError("the basis columns are linearly dependent") from None
    # range(B) = range(Φ) exactly: B has independent columns and Φ has the same rank
    if _rank(Phi) != len(basis_cols):
        raise ValueError("a factor column lies outside the span of the basis columns")
    r = len(basis_cols)
    G = _mul(_t(Bm), Bm)
    BtCB = _scale(G, lam)  # Bᵀ C B
    if Qm is not None:
        BtQ = _mul(_t(Bm), Qm)
        BtCB = _add(BtCB, _mul(BtQ, _t(BtQ)))
    terms = {}
    for name in ("retain", "forget"):
        if not use[name]:
            continue
        Hs = []  # BᵀH_iB = (BᵀF_i)(BᵀF_i)ᵀ + BᵀCB: products of the inputs, no inverse
        for F in sets[name]:
            BtF = _mul(_t(Bm), F)
            Hs.append(_add(_mul(BtF, _t(BtF)), BtCB))
        n = len(Hs)
        Hbar = _zeros(r, r)
        for H in Hs:
            Hbar = _add(Hbar, H)
        Hbar = _scale(Hbar, Fraction(1, n))
        batch = int(sch["batch"] if name == "retain" else sch["forget_batch"])
        if not (1 <= batch <= n):
            raise ValueError(f"{name} batch {batch} not in 1..{n}")
        c, e = _coefficients(sch["sampling"], n, batch)
        s = -eta if sam else (-eta * (1 - alpha) if name == "retain" else eta * alpha)
        terms[name] = (s, Hs, Hbar, c, e)

    # Everything is returned congruent by G = BᵀB ≻ 0 (which keeps ⪰ and ≻):
    #   TG(Y) = G T̃(Y) G, with G C_i = BᵀH_iB, so the summed schedule needs no inverse.
    def noiseG(term, Y):  # G N(Y) G = s²[c/n Σ (BᵀH_iB) Y (BᵀH_iB) − e (BᵀH̄B) Y (BᵀH̄B)]
        s, Hs, Hbar, c, e = term
        out = _zeros(r, r)
        if c:
            for H in Hs:
                out = _add(out, _mul(_mul(H, Y), H), c / len(Hs))
        if e:
            out = _add(out, _mul(_mul(Hbar, Y), Hbar), -e)
        return _scale(out, s * s)

    names = [n for n in ("retain", "forget") if n in terms]
    if sch["schedule"] == "summed":
        GA = G  # G A = G + Σ s BᵀH̄B
        for n in names:
            GA = _add(GA, terms[n][2], terms[n][0])

        def TG(Y):
            out = _mul(_mul(GA, Y), _t(GA))
            for n in names:
                out = _add(out, noiseG(terms[n], Y))
            return out
    else:
        Gi = _inverse(G)
        if sch["schedule"] == "alternating":
            def TG(Y):
                W = None  # W = G T̃(Y) G after each half-step; Y_next = G⁻¹ W G⁻¹
                for n in names:
                    GA = _add(G, terms[n][2], terms[n][0])
                    W = _add(_mul(_mul(GA, Y), _t(GA)), noiseG(terms[n], Y))
                    Y = _mul(_mul(Gi, W), Gi)
                return W
        else:
            rho_a = _q(sch["sam_rho"]) / _q(sch["sam_a"])
            Hbar = terms["retain"][2]
            K = _add(_eye(r), _mul(Gi, Hbar), rho_a)  # K̃ = I + (ρ/a) G⁻¹BᵀH̄B
            GA = _add(G, _mul(Hbar, K), -eta)  # G Ā = G − η BᵀH̄B K̃

            def TG(Y):
                KYK = _mul(_mul(K, Y), _t(K))
                return _add(_mul(_mul(GA, Y), _t(GA)), noiseG(terms["retain"], KYK))
    return TG, G, r


_PRIMES: list[int] = []


def _primes(k: int) -> list[int]:
    """The k largest primes below 2^62 (deterministic; FLINT's primality test is exact at this
    size)."""
    x = (1 << 62) - 1 if not _PRIMES else _PRIMES[-1] - 2
    while len(_PRIMES) < k:
        if _flint.fmpz(x).is_prime():
            _PRIMES.append(x)
        x -= 2
    return _PRIMES[:k]


def _rows(M, idx):
    n = M.ncols()
    return _flint.fmpz_mat(len(idx), n, [M[i, j] for i in idx for j in range(n)])


def _span_check(Bz, extra) -> None:
    """Prove that the d × r integer matrix B has full column rank and that every column of the
    integer matrix ``extra`` (d × m) lies in range(B); raise ValueError otherwise.

    Rank: B has rank r mod a prime p (rank mod p ≤ rank over Q), and the pivot rows I give
    δ = det(B_I) ≠ 0. Containment, with Ī the other rows: the integer matrix
    S = δ·Φ_Ī − B_Ī·adj(B_I)·Φ_I is zero iff Φ_Ī = B_Ī B_I⁻¹Φ_I, i.e. iff every column of Φ lies in
    range(B) (B_I⁻¹Φ_I are its coordinates). Each entry of S is the determinant of a bordered
    (r+1)×(r+1) matrix [[B_I, φ_I], [b_j, φ_j]] (Schur complement), so |S_jk| ≤ H, Hadamard's
    bound Π of its row norms. S ≡ 0 is checked modulo primes p with δ ≢ 0 (mod p) — there
    S ≡ δ(Φ_Ī − B_Ī(B_I⁻¹ mod p)Φ_I) — until their product exceeds H: then S = 0 exactly
    (Chinese remaindering). A non-zero residue proves a column outside range(B)."""
    d, r = Bz.nrows(), Bz.ncols()
    if r > d:
        raise ValueError("the basis columns are linearly dependent")
    if r == 0:
        if extra is not None and not extra.is_zero():
            raise ValueError("a factor column lies outside the span of the basis columns")
        return
    rows_I = None
    for p in _primes(8):
        R, rank = _flint.nmod_mat(Bz.transpose(), p).rref()
        if int(rank) == r:
            piv, j = [], 0
            for i in range(r):
                while int(R[i, j]) == 0:
                    j += 1
                piv.append(j)
                j += 1
            rows_I = piv
            break
    if rows_I is None:
        raise ValueError("the basis columns are linearly dependent (rank < r modulo 8 primes)")
    if extra is None or extra.ncols() == 0 or r == d or extra.is_zero():
        return  # range(B) = R^d when r = d
    others = [i for i in range(d) if i not in set(rows_I)]
    BI, BO = _rows(Bz, rows_I), _rows(Bz, others)
    XI, XO = _rows(extra, rows_I), _rows(extra, others)
    # Hadamard: H² = Π_{i∈I} (‖B_i‖² + max_k φ_ik²) · max_j (‖b_j‖² + max_k φ_jk²)
    bi = _int_entries(BI)
    xi = _int_entries(XI)
    m = extra.ncols()
    H2 = 1
    for a in range(r):
        H2 *= (sum(v * v for v in bi[a * r:(a + 1) * r])
               + max((v * v for v in xi[a * m:(a + 1) * m]), default=0))
    bo, xo = _int_entries(BO), _int_entries(XO)
    H2 *= max(sum(v * v for v in bo[a * r:(a + 1) * r])
              + max((v * v for v in xo[a * m:(a + 1) * m]), default=0) for a in range(d - r))
    modulus, k = 1, 0
    while modulus * modulus <= H2:
        k += 8
        for p in _primes(k)[k - 8:]:
            if modulus * modulus > H2:
                break
            BIp = _flint.nmod_mat(BI, p)
            if int(BIp.det()) == 0:
                continue  # p divides δ: no information from this prime
            resid = _flint.nmod_mat(XO, p) - _flint.nmod_mat(BO, p) * BIp.solve(
                _flint.nmod_mat(XI, p))
            if any(int(v) for v in resid.entries()):
                raise ValueError("a factor column lies outside the span of the basis columns")
            modulus *= p


def _summed_operator_int(inp, basis_cols):
    """The summed schedule's G·T̃(Y)·G on integer matrices (python-flint): (TG, G, r).

    The same operator as :func:`_operator` (same column order of Φ, same checks), built from
    integer products only: with Φ = Φ_Z / L (L the common denominator of the input), W_S = BᵀΦ_S
    (the coordinates of set S's factor columns), P_S = W_SW_Sᵀ and K = BᵀCB (shared curvature),

        G T̃(Y) G = GA·Y·GAᵀ + Σ_S s_S² [c_S/n_S Σ_i H_iYH_i − e_S H̄_SYH̄_S],
        GA = G + Σ_S s_S H̄_S,  H̄_S = P_S/n_S + K,  H_i = W_iW_iᵀ + K,
        Σ_i H_iYH_i = W_S·blockdiag(W_iᵀYW_i)·W_Sᵀ + P_SYK + KYP_S + n_S·KYK,

    so the per-sample sum costs two products of r × (Σk) matrices, not n products of r × r."""
    sch = inp["schedule"]
    if sch["schedule"] != "summed" or sch["sampling"] not in SAMPLING:
        raise ValueError("the integer operator is for the summed schedule")
    eta, alpha = _q(sch["eta"]), _q(sch["alpha"])
    raw = {name: inp.get(name) for name in ("retain", "forget")}
    use = {"retain": alpha < 1 and raw["retain"] is not None,
           "forget": alpha > 0 and raw["forget"] is not None}
    if not any(use.values()):
        raise ValueError("no active factor")
    cols, owners = [], []  # Φ's columns (lists of Fractions), in _operator's order
    d = None
    counts = {}
    for name in ("retain", "forget"):
        if not use[name]:
            continue
        counts[name] = len(raw[name])
        for i, F in enumerate(raw[name]):
            rows = [[_q(x) for x in row] for row in F]
            if d is None:
                d = len(rows)
            if len(rows) != d or len({len(row) for row in rows}) > 1:
                raise ValueError("every factor must be d × k with one d")
            k = len(rows[0]) if rows else 0
            for a in range(k):
                cols.append([row[a] for row in rows])
                owners.append((name, i))
    if not d:
        raise ValueError("no active factor")
    shared = inp.get("shared")
    lam, qcols = Fraction(0), []
    if shared is not None:
        lam = _q(shared["scalar"])
        if lam < 0:
            raise ValueError("the shared λ must be >= 0")
        if shared.get("Q") is not None:
            Qrows = [[_q(x) for x in row] for row in shared["Q"]]
            if len(Qrows) != d:
                raise ValueError("shared Q must have d rows")
            qcols = [[row[a] for row in Qrows] for a in range(len(Qrows[0]) if Qrows else 0)]
    extra = list(qcols)
    if lam > 0:
        extra += [[Fraction(int(i == j)) for i in range(d)] for j in range(d)]
    allcols = cols + extra
    ncols = len(allcols)
    if any(not (0 <= j < ncols) for j in basis_cols) or len(set(basis_cols)) != len(basis_cols):
        raise ValueError("basis_columns out of range or repeated")
    L = 1
    for col in allcols:
        for x in col:
            if L % x.denominator:
                L = _lcm(L, x.denominator)
    ints = [[int(x * L) for x in col] for col in allcols]  # column-major integers of L·Φ

    def mat(columns):  # d × len(columns) integer matrix from column lists
        return _flint.fmpz_mat(d, len(columns), [c[i] for i in range(d) for c in columns])

    r = len(basis_cols)
    Bz = mat([ints[j] for j in basis_cols])
    chosen = set(basis_cols)
    rest = [ints[j] for j in range(ncols) if j not in chosen and any(ints[j])]
    _span_check(Bz, mat(rest) if rest else None)
    Bt = Bz.transpose()
    inv_L2 = Fraction(1, L * L)
    G = _ZQ(Bt * Bz, inv_L2)
    K = None  # Bᵀ C B
    if lam > 0:
        K = G.times(lam)
    if qcols:
        BQ = _ZQ(Bt * mat(ints[len(cols):len(cols) + len(qcols)]), inv_L2)
        KQ = BQ @ BQ.t()
        K = KQ if K is None else K + KQ
    terms = []
    for name in ("retain", "forget"):
        if not use[name]:
            continue
        idx = [j for j, (nm, _i) in enumerate(owners) if nm == name]
        blocks = {}  # sample → its columns
        for pos, j in enumerate(idx):
            blocks.setdefault(owners[j][1], []).append(pos)
        n = counts[name]
        W = _ZQ(Bt * mat([ints[j] for j in idx]), inv_L2)  # r × Σk
        P = W @ W.t()
        Hbar = P.times(Fraction(1, n))
        if K is not None:
            Hbar = Hbar + K
        batch = int(sch["batch"] if name == "retain" else sch["forget_batch"])
        if not (1 <= batch <= n):
            raise ValueError(f"{name} batch {batch} not in 1..{n}")
        c, e = _coefficients(sch["sampling"], n, batch)
        s = -eta * (1 - alpha) if name == "retain" else eta * alpha
        terms.append((s, n, W, P, Hbar, c, e, list(blocks.values())))
    GA = G
    for s, _n, _W, _P, Hbar, *_ in terms:
        GA = GA + Hbar.times(s)
    GAt = GA.t()

    def blockdiag(M: _ZQ, blocks) -> _ZQ:  # keep M's entries inside the per-sample blocks
        m = M.M.nrows()
        flat = [0] * (m * m)
        for blk in blocks:
            for a in blk:
                for b in blk:
                    flat[a * m + b] = int(M.M[a, b])
        return _ZQ(_flint.fmpz_mat(m, m, flat), M.q)

    def TG(Y: _ZQ) -> _ZQ:
        out = GA @ Y @ GAt
        for s, n, W, P, Hbar, c, e, blocks in terms:
            noise = None
            if c:
                Wt = W.t()
                D = blockdiag(Wt @ (Y @ W), blocks)  # blockdiag(W_iᵀ Y W_i)
                acc = W @ D @ Wt
                if K is not None:
                    acc = acc + P @ Y @ K + K @ Y @ P + (K @ Y @ K).times(n)
                noise = acc.times(c / n)
            if e:
                HYH = (Hbar @ Y @ Hbar).times(-e)
                noise = HYH if noise is None else noise + HYH
            if noise is not None:
                out = out + noise.times(s * s)
        return out
    return TG, G, r


def _commuting_rates(inp) -> tuple[list[int], list[Fraction]]:
    """(span directions j, exact m_j = E[J_j²]) of a commuting input: H_i = diag(h_i) in the
    standard basis (input ``"representation": "commuting"``, sparse profiles).

    Every J is then diagonal, so T(Y) = E[J Y J] maps diag(y) to diag(m_j y_j): the certificate
    of ρ(T) on Sym(span) is a diagonal Y, and its two PSD checks are entrywise. With
    v_j = c/n Σ_i h_ij² − e h̄_j² (the sampling variance of contract §2.1 in direction j):
    summed m_j = (1 + Σ_S s_S h̄_Sj)² + Σ_S s_S² v_Sj; alternating Π_S [(1 + s_S h̄_Sj)² + s_S² v_Sj];
    SAM k_j = 1 + (ρ/a) h̄_j, m_j = (1 − η h̄_j k_j)² + η² k_j² v_j. The span is every direction in
    which an active sample has non-zero curvature."""
    sch = inp["schedule"]
    if sch["schedule"] not in SCHEDULES or sch["sampling"] not in SAMPLING:
        raise ValueError(f"unknown schedule/sampling {sch['schedule']!r}/{sch['sampling']!r}")
    eta, alpha = _q(sch["eta"]), _q(sch["alpha"])
    sam = sch["schedule"] == "sam"
    d = inp["dim"]
    if not isinstance(d, int) or d < 1:
        raise ValueError("dim must be a positive integer")
    sets = {}
    for name in ("retain", "forget"):
        raw = inp.get(name)
        if raw is None:
            continue
        n = raw["n"]
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"{name}: n must be a positive integer")
        sums: dict[int, Fraction] = {}
        squares: dict[int, Fraction] = {}
        seen = set()
        for i, j, pair in raw["entries"]:
            if not (isinstance(i, int) and isinstance(j, int) and 0 <= i < n and 0 <= j < d):
                raise ValueError(f"{name}: entry index ({i!r}, {j!r}) out of range")
            if (i, j) in seen:
                raise ValueError(f"{name}: entry ({i}, {j}) repeated")
            seen.add((i, j))
            h = _q(pair)
            if h:
                sums[j] = sums.get(j, Fraction(0)) + h
                squares[j] = squares.get(j, Fraction(0)) + h * h
        sets[name] = (n, sums, squares)
    use = {"retain": (alpha < 1 or sam) and "retain" in sets,
           "forget": alpha > 0 and not sam and "forget" in sets}
    active = [name for name in ("retain", "forget") if use[name]]
    if not active:
        raise ValueError("no active set")
    stats = {}
    for name in active:
        n, sums, squares = sets[name]
        batch = int(sch["batch"] if name == "retain" else sch["forget_batch"])
        if not (1 <= batch <= n):
            raise ValueError(f"{name} batch {batch} not in 1..{n}")
        c, e = _coefficients(sch["sampling"], n, batch)
        s = -eta if sam else (-eta * (1 - alpha) if name == "retain" else eta * alpha)
        stats[name] = (n, sums, squares, c, e, s)
    span = sorted(set().union(*(set(j for j, v in stats[nm][2].items() if v)
                                for nm in active)))
    if not span:
        raise ValueError("no curvature in any active direction (empty span)")
    zero = Fraction(0)
    rates = []
    memo: dict[tuple, Fraction] = {}  # directions with the same sums share E[J_j²]
    for j in span:
        key = tuple((stats[nm][1].get(j, zero), stats[nm][2].get(j, zero)) for nm in active)
        if key in memo:
            rates.append(memo[key])
            continue
        parts = []
        for name, (total, square) in zip(active, key):
            n, _sums, _squares, c, e, s = stats[name]
            hbar = total / n
            var = c * square / n - e * hbar * hbar
            parts.append((hbar, var, s))
        if sam:
            hbar, var, _s = parts[0]
            k = 1 + _q(sch["sam_rho"]) / _q(sch["sam_a"]) * hbar
            m = (1 - eta * hbar * k) ** 2 + eta * eta * k * k * var
        elif sch["schedule"] == "summed":
            m = (1 + sum((s * hbar for hbar, _v, s in parts), zero)) ** 2
            m += sum((s * s * var for _h, var, s in parts), zero)
        else:
            m = Fraction(1)
            for hbar, var, s in parts:
                m *= (1 + s * hbar) ** 2 + s * s * var
        memo[key] = m
        rates.append(m)
    return span, rates


def _verify_commuting(data, claim, c) -> tuple[bool, str]:
    inp = data["input"]
    span, rates = _commuting_rates(inp)
    d = inp["dim"]
    y = [_q(p) for p in data["Y_diagonal"]]
    if len(y) != d:
        raise ValueError(f"Y_diagonal must have {d} entries")
    inside = set(span)
    if any(y[j] != 0 for j in range(d) if j not in inside):
        return False, "Y must live on the span (zero outside it)"
    r = len(span)
    if claim == "rho <= c":
        if any(y[j] <= 0 for j in span):
            return False, "Y is not positive definite (a diagonal entry is ≤ 0)"
        bad = [j for j, m in zip(span, rates) if m > c]
        if bad:
            return False, f"cY − T(Y) is not PSD (direction {bad[0]}: E[J²] > c)"
        return True, (f"ρ(T) ≤ {float(c):.17g} on the span (r = {r}, commuting): Y = diag(y) ≻ 0, "
                      "T(Y) ⪯ cY entrywise")
    if any(y[j] < 0 for j in span) or not any(y[j] > 0 for j in span):
        return False, "Y must be PSD and non-zero"
    bad = [j for j, m in zip(span, rates) if y[j] > 0 and m < c]
    if bad:
        return False, f"T(Y) − cY is not PSD (direction {bad[0]}: E[J²] < c)"
    return True, (f"ρ(T) ≥ {float(c):.17g} on the span (r = {r}, commuting): Y = diag(y) ⪰ 0, "
                  "T(Y) ⪰ cY entrywise")


def _pd_status_int(M, method: str) -> tuple[str, str]:
    """("pd" | "psd" | "not psd" | "unproven", detail) of a symmetric integer matrix M.

    "exact": Sylvester's criterion on FLINT's fraction-free LU, else the exact LDLᵀ of
    :func:`psd_status` (complete: PSD-singular and not-PSD are told apart).
    "exact-integer-congruence": :func:`_pd_congruence` (proves positive definiteness only;
    "unproven" otherwise — never a proof of anything)."""
    if M != M.transpose():
        return "not psd", "not symmetric"
    if method == "exact-integer-congruence" and _np is not None:
        ok, why = _pd_congruence(M)
        return ("pd", why) if ok else ("unproven", why)
    if _pd_leading_minors(M):
        return "pd", "positive definite (leading principal minors)"
    n = M.nrows()
    ents = _int_entries(M)
    return psd_status([[Fraction(ents[i * n + j]) for j in range(n)] for i in range(n)])


def _zq_status(S: _ZQ, method: str) -> tuple[str, str]:
    """PSD status of the exact matrix q·M (q < 0 flips it, q = 0 is the zero matrix)."""
    if S.q == 0:
        return "psd", "zero matrix"
    return _pd_status_int(S.M if S.q > 0 else S.M * -1, method)


def _verify_int(data, claim, c, method) -> tuple[bool, str]:
    """Claims of a summed-schedule certificate with factor input, on integer matrices."""
    TG, G, r = _summed_operator_int(data["input"], list(data["basis_columns"]))
    rows = [[_q(x) for x in row] for row in data["Y"]]
    if len(rows) != r or any(len(row) != r for row in rows):
        return False, f"Y must be {r}×{r} (the span dimension)"
    if any(rows[i][j] != rows[j][i] for i in range(r) for j in range(i)):
        return False, "Y is not symmetric"
    Y = _zq_from_rows(rows)
    TY = TG(Y)  # G T(Y) G
    GYG = G @ Y @ G
    how = "" if method == "exact" else f", {method}"
    if claim == "rho <= c":
        st, why = _zq_status(Y, method)
        if st != "pd":
            return False, f"Y is not positive definite ({why})"
        st, why = _zq_status(GYG.times(c) - TY, method)
        if st not in ("pd", "psd"):
            return False, f"cY − T(Y) is not PSD ({why})"
        return True, f"ρ(T) ≤ {float(c):.17g} on the span (r = {r}{how}): Y ≻ 0, T(Y) ⪯ cY"
    if data.get("method", "collatz-wielandt") == "rayleigh":
        num, den = _trace_product(Y, TY), _trace_product(Y, GYG)
        if not den > 0:
            return False, "Y is zero"
        if not num >= c * den:
            return False, "the Rayleigh quotient of Y is below c"
        return True, (f"ρ(T) ≥ {float(c):.17g} on the span (r = {r}{how}): Rayleigh quotient of "
                      "Y (T self-adjoint, summed schedule)")
    if Y.q == 0 or Y.M.is_zero():
        return False, "Y must be PSD and non-zero (zero)"
    st, why = _zq_status(Y, method)
    if st not in ("pd", "psd"):
        return False, f"Y must be PSD and non-zero ({why})"
    st, why = _zq_status(TY - GYG.times(c), method)
    if st not in ("pd", "psd"):
        return False, f"T(Y) − cY is not PSD ({why})"
    return True, f"ρ(T) ≥ {float(c):.17g} on the span (r = {r}{how}): Y ⪰ 0, T(Y) ⪰ cY"


# ---------------------------------------------------------------------- verification
def _status(S, method: str) -> tuple[str, str]:
    """PSD status of an exact matrix of the general (fmpq) path."""
    if _flint is not None:
        num, den = S.numer_denom()  # S = num / den, den > 0
        return _pd_status_int(num, method)
    return psd_status(S)


def verify_data(data: Mapping[str, Any]) -> tuple[bool, str]:
    """(True, reason) if the certificate proves its claim from its exact input, else (False, why).

    ``data["verification"]`` names how the PSD checks are decided (every method is exact; absent
    means "exact"): "exact" (Sylvester's criterion / exact LDLᵀ, complete), "exact-integer-
    congruence" (an exact integer congruence to a matrix within Frobenius distance < 1 of a
    multiple of I, found in floating point — proves positive definiteness, fast at large r;
    summed schedules are formed on integer matrices) or "exact-commuting" (commuting input:
    diagonal Y, entrywise checks)."""
    try:
        if data.get("format") != FORMAT:
            return False, f"not a {FORMAT} file"
        if data.get("fingerprint") != fingerprint(data):
            return False, "the fingerprint does not match the input (input changed after issue)"
        claim = data["claim"]
        if claim not in ("rho <= c", "rho >= c"):
            return False, f"unknown claim {claim!r}"
        c = _q(data["c"])
        method = data.get("verification", "exact")
        if method not in VERIFICATIONS:
            return False, f"unknown verification {method!r}"
        commuting = data["input"].get("representation") == "commuting"
        if commuting != (method == "exact-commuting"):
            return False, "commuting input goes with verification 'exact-commuting' (and only it)"
        if commuting:
            return _verify_commuting(data, claim, c)
        if data.get("method", "collatz-wielandt") == "rayleigh":
            # summed schedules only: T is self-adjoint on Sym(U) (contract §10.1), and in these
            # coordinates ⟨Y, Z⟩ = tr(G Y G Z), so ρ(T) = λ_max ≥ tr(Y·GT(Y)G) / tr(Y·GYG)
            if data["input"]["schedule"]["schedule"] != "summed":
                return False, "a Rayleigh certificate needs the summed schedule (self-adjoint T)"
        if _flint is not None and data["input"]["schedule"]["schedule"] == "summed":
            return _verify_int(data, claim, c, method)
        TG, G, r = _operator(data["input"], list(data["basis_columns"]))
        Y = _qmat(data["Y"])
        if _shape(Y) != (r, r):
            return False, f"Y must be {r}×{r} (the span dimension)"
        TY = TG(Y)  # G T(Y) G
        GYG = _mul(_mul(G, Y), G)
        how = "" if method == "exact" else f", {method}"
        if claim == "rho <= c":
            st, why = _status(Y, method)
            if st != "pd":
                return False, f"Y is not positive definite ({why})"
            st, why = _status(_add(_scale(GYG, c), TY, Fraction(-1)), method)
            if st not in ("pd", "psd"):
                return False, f"cY − T(Y) is not PSD ({why})"
            return True, f"ρ(T) ≤ {float(c):.17g} on the span (r = {r}{how}): Y ≻ 0, T(Y) ⪯ cY"
        if data.get("method", "collatz-wielandt") == "rayleigh":
            Ye, Te, Ge = _entries(Y), _entries(TY), _entries(GYG)
            if any(Ye[i][j] != Ye[j][i] for i in range(r) for j in range(i)):
                return False, "Y is not symmetric"
            num = sum((Ye[i][j] * Te[j][i] for i in range(r) for j in range(r)), Fraction(0))
            den = sum((Ye[i][j] * Ge[j][i] for i in range(r) for j in range(r)), Fraction(0))
            if not den > 0:
                return False, "Y is zero"
            if not num >= c * den:
                return False, "the Rayleigh quotient of Y is below c"
            return True, (f"ρ(T) ≥ {float(c):.17g} on the span (r = {r}): Rayleigh quotient of Y "
                          "(T self-adjoint, summed schedule)")
        st, why = _status(Y, method)
        if st not in ("pd", "psd") or all(v == 0 for row in _entries(Y) for v in row):
            return False, f"Y must be PSD and non-zero ({why})"
        st, why = _status(_add(TY, GYG, -c), method)
        if st not in ("pd", "psd"):
            return False, f"T(Y) − cY is not PSD ({why})"
        return True, f"ρ(T) ≥ {float(c):.17g} on the span (r = {r}{how}): Y ⪰ 0, T(Y) ⪰ cY"
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        return False, f"malformed certificate: {exc}"


def verify_file(path: str | os.PathLike[str]) -> tuple[bool, str]:
    with open(path, encoding="utf-8") as fh:
        return verify_data(json.load(fh))


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0] in ("-h", "--help"):
        print("usage: python -m rmt.verify CERT.json  (exit 0: verified, 1: not, 2: usage)")
        return 2 if len(argv) != 1 else 0
    ok, reason = verify_file(argv[0])
    print(("verified: " if ok else "NOT verified: ") + reason)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
