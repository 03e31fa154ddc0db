"""Standalone verifier of mean-square certificates (docs/contract.md §10.6), in exact arithmetic.

This module imports nothing from the rest of the toolkit and no numerical library: only the
standard library (``fractions``, ``json``, ``hashlib``) and, when installed, python-flint for
speed. It re-derives everything from the exact
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
   ``"method": "rayleigh"``, tr(Y·GT̃(Y)G) ≥ c·tr(Y·GYG) for a symmetric Y ≠ 0. Both are checked congruent by G = BᵀB ≻ 0, which keeps ⪰:
   G T̃(Y) G is built from BᵀH_iB = (BᵀF_i)(BᵀF_i)ᵀ alone (no inverse for the summed schedule,
   so the rationals stay small). Definiteness by exact LDLᵀ with diagonal pivoting.

Exact arithmetic: python-flint's ``fmpq_mat`` (FLINT, C) when it is installed, else
``fractions.Fraction`` — both exact, only the speed differs.

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

__all__ = ["verify_file", "verify_data", "fingerprint", "FORMAT"]

FORMAT = "rmt-certificate-1"
SAMPLING = ("bernoulli", "with_replacement", "without_replacement")
SCHEDULES = ("summed", "alternating", "sam")


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


# ---------------------------------------------------------------------- verification
def verify_data(data: Mapping[str, Any]) -> tuple[bool, str]:
    """(True, reason) if the certificate proves its claim from its exact input, else (False, why)."""
    try:
        if data.get("format") != FORMAT:
            return False, f"not a {FORMAT} file"
        if data.get("fingerprint") != fingerprint(data):
            return False, "the fingerprint does not match the input (input changed after issue)"
        claim = data["claim"]
        if claim not in ("rho <= c", "rho >= c"):
            return False, f"unknown claim {claim!r}"
        c = _q(data["c"])
        TG, G, r = _operator(data["input"], list(data["basis_columns"]))
        Y = _qmat(data["Y"])
        if _shape(Y) != (r, r):
            return False, f"Y must be {r}×{r} (the span dimension)"
        TY = TG(Y)  # G T(Y) G
        GYG = _mul(_mul(G, Y), G)
        if claim == "rho <= c":
            st, why = psd_status(Y)
            if st != "pd":
                return False, f"Y is not positive definite ({why})"
            st, why = psd_status(_add(_scale(GYG, c), TY, Fraction(-1)))
            if st == "not psd":
                return False, f"cY − T(Y) is not PSD ({why})"
            return True, f"ρ(T) ≤ {float(c):.17g} on the span (r = {r}): Y ≻ 0, T(Y) ⪯ cY"
        if data.get("method", "collatz-wielandt") == "rayleigh":
            # summed schedules only: T is self-adjoint on Sym(U) (contract §10.1), and in these
            # coordinates ⟨Y, Z⟩ = tr(G Y G Z), so ρ(T) = λ_max ≥ tr(Y·GT(Y)G) / tr(Y·GYG)
            if data["input"]["schedule"]["schedule"] != "summed":
                return False, "a Rayleigh certificate needs the summed schedule (self-adjoint T)"
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
        st, why = psd_status(Y)
        if st == "not psd" or all(v == 0 for row in _entries(Y) for v in row):
            return False, f"Y must be PSD and non-zero ({why})"
        st, why = psd_status(_add(TY, GYG, -c))
        if st == "not psd":
            return False, f"T(Y) − cY is not PSD ({why})"
        return True, f"ρ(T) ≥ {float(c):.17g} on the span (r = {r}): Y ⪰ 0, T(Y) ⪰ cY"
    except (KeyError, TypeError, ValueError) as exc:
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
