"""Standalone verifier of mean-square certificates (docs/contract.md §10.6), in exact arithmetic.

This module imports nothing from the rest of the toolkit and no numerical library: only the
standard library (``fractions``, ``json``, ``hashlib``). It re-derives everything from the exact
input stored in the certificate file and trusts no eigen-solver.

**What is checked.** The input is the per-sample factors F_i (every float is a rational number, and
the file stores each as an integer pair) and the schedule (η, α, batch sizes, sampling scheme,
combinator). With B = a set of factor columns named in the certificate:

1. B has full column rank and every factor of an active set lies in range(B) (exactly), so the span
   U of the Hessians is range(B) and H_i B = B C_i with C_i = (BᵀB)⁻¹ BᵀH_iB.
2. In these coordinates T(BYBᵀ) = B T̃(Y) Bᵀ with T̃ built from the C_i and the sampling
   coefficients (c, e) of contract §2.1: summed T̃(Y) = AYAᵀ + Σ_S s_S²[c_S/n_S Σ_i C_iYC_iᵀ −
   e_S C̄_SYC̄_Sᵀ], A = I + Σ_S s_S C̄_S, s_R = −η(1−α), s_F = ηα; alternating T̃_F∘T̃_R; SAM
   ĀYĀᵀ + η²N_R(K̃YK̃ᵀ), K̃ = I + (ρ/a)C̄_R, Ā = I − ηC̄_RK̃. T̃ is a positive map similar to T on
   the span, so ρ(T̃) = ρ(T on the span).
3. Claim ``"rho <= c"``: Y ≻ 0 and cY − T̃(Y) ⪰ 0 (Collatz–Wielandt). Claim ``"rho >= c"``:
   Y ⪰ 0, Y ≠ 0 and T̃(Y) − cY ⪰ 0. Definiteness by exact LDLᵀ with diagonal pivoting.

Use: ``python -m rmt.verify CERT.json`` or ``rmt verify CERT.json`` (exit 0 when it verifies).
"""

from __future__ import annotations

import hashlib
import json
import sys
from fractions import Fraction

__all__ = ["verify_file", "verify_data", "fingerprint", "FORMAT"]

FORMAT = "rmt-certificate-1"
SAMPLING = ("bernoulli", "with_replacement", "without_replacement")
SCHEDULES = ("summed", "alternating", "sam")


# ---------------------------------------------------------------------- exact matrices
def _zeros(n, m):
    return [[Fraction(0)] * m for _ in range(n)]


def _eye(n):
    out = _zeros(n, n)
    for i in range(n):
        out[i][i] = Fraction(1)
    return out


def _mul(A, B):
    Bt = list(zip(*B))
    return [[sum((a * b for a, b in zip(row, col)), Fraction(0)) for col in Bt] for row in A]


def _t(A):
    return [list(r) for r in zip(*A)]


def _add(A, B, s=Fraction(1)):
    return [[a + s * b for a, b in zip(ra, rb)] for ra, rb in zip(A, B)]


def _scale(A, s):
    return [[s * a for a in r] for r in A]


def _inverse(A):
    """Exact inverse (Gauss–Jordan); raises ValueError when singular."""
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


def psd_status(S):
    """("pd" | "psd" | "not psd", detail) of a symmetric rational matrix, by LDLᵀ with diagonal
    pivoting in exact arithmetic: a negative pivot, or a zero pivot with a non-zero row, is a proof
    that S is not PSD."""
    n = len(S)
    M = [list(r) for r in S]
    for i in range(n):
        for j in range(i + 1, n):
            if M[i][j] != M[j][i]:
                return "not psd", "not symmetric"
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
    return [[_q(x) for x in r] for r in rows]


def fingerprint(data):
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
    cols = []  # the stacked factor columns of the active sets, as d-vectors
    for name in ("retain", "forget"):
        if use[name]:
            for F in sets[name]:
                cols.extend(list(c) for c in zip(*F))
    if not cols:
        raise ValueError("no active factor")
    if any(not (0 <= j < len(cols)) for j in basis_cols) or len(set(basis_cols)) != len(basis_cols):
        raise ValueError("basis_columns out of range or repeated")
    Bm = _t([cols[j] for j in basis_cols])  # d × r
    G = _mul(_t(Bm), Bm)
    try:
        Gi = _inverse(G)
    except ValueError:
        raise ValueError("the basis columns are linearly dependent") from None
    P = _mul(Gi, _t(Bm))  # B⁺ (r × d)
    for v in cols:  # every active factor column in range(B), exactly
        coef = [sum((a * b for a, b in zip(row, v)), Fraction(0)) for row in P]
        back = [sum((Bm[i][j] * coef[j] for j in range(len(coef))), Fraction(0))
                for i in range(len(v))]
        if back != v:
            raise ValueError("a factor column lies outside the span of the basis columns")
    r = len(basis_cols)
    terms = {}
    for name in ("retain", "forget"):
        if not use[name]:
            continue
        Cs = []
        for F in sets[name]:
            BtF = _mul(_t(Bm), F)  # r × k
            Cs.append(_mul(Gi, _mul(BtF, _t(BtF))))  # (BᵀB)⁻¹ Bᵀ F Fᵀ B
        n = len(Cs)
        Cbar = _zeros(r, r)
        for C in Cs:
            Cbar = _add(Cbar, C)
        Cbar = _scale(Cbar, Fraction(1, n))
        batch = int(sch["batch"] if name == "retain" else sch["forget_batch"])
        if not (1 <= batch <= n):
            raise ValueError(f"{name} batch {batch} not in 1..{n}")
        c, e = _coefficients(sch["sampling"], n, batch)
        s = -eta if sam else (-eta * (1 - alpha) if name == "retain" else eta * alpha)
        terms[name] = (s, Cs, Cbar, c, e)

    def noise(term, Y):
        s, Cs, Cbar, c, e = term
        out = _zeros(r, r)
        if c:
            for C in Cs:
                out = _add(out, _mul(_mul(C, Y), _t(C)), c / len(Cs))
        if e:
            out = _add(out, _mul(_mul(Cbar, Y), _t(Cbar)), -e)
        return _scale(out, s * s)

    I = _eye(r)
    names = [n for n in ("retain", "forget") if n in terms]
    if sch["schedule"] == "summed":
        A = I
        for n in names:
            A = _add(A, terms[n][2], terms[n][0])

        def T(Y):
            out = _mul(_mul(A, Y), _t(A))
            for n in names:
                out = _add(out, noise(terms[n], Y))
            return out
    elif sch["schedule"] == "alternating":
        def T(Y):
            for n in names:  # retain step first, then forget
                As = _add(I, terms[n][2], terms[n][0])
                Y = _add(_mul(_mul(As, Y), _t(As)), noise(terms[n], Y))
            return Y
    else:
        rho_a = _q(sch["sam_rho"]) / _q(sch["sam_a"])
        s, Cs, Cbar, c, e = terms["retain"]
        K = _add(I, Cbar, rho_a)
        Abar = _add(I, _mul(Cbar, K), -eta)

        def T(Y):
            KYK = _mul(_mul(K, Y), _t(K))
            return _add(_mul(_mul(Abar, Y), _t(Abar)), noise(terms["retain"], KYK))
    return T, r


# ---------------------------------------------------------------------- verification
def verify_data(data):
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
        T, r = _operator(data["input"], list(data["basis_columns"]))
        Y = _qmat(data["Y"])
        if len(Y) != r or any(len(row) != r for row in Y):
            return False, f"Y must be {r}×{r} (the span dimension)"
        TY = T(Y)
        if claim == "rho <= c":
            st, why = psd_status(Y)
            if st != "pd":
                return False, f"Y is not positive definite ({why})"
            st, why = psd_status(_add(_scale(Y, c), TY, Fraction(-1)))
            if st == "not psd":
                return False, f"cY − T(Y) is not PSD ({why})"
            return True, f"ρ(T) ≤ {float(c):.17g} on the span (r = {r}): Y ≻ 0, T(Y) ⪯ cY"
        st, why = psd_status(Y)
        if st == "not psd" or all(v == 0 for row in Y for v in row):
            return False, f"Y must be PSD and non-zero ({why})"
        st, why = psd_status(_add(TY, Y, -c))
        if st == "not psd":
            return False, f"T(Y) − cY is not PSD ({why})"
        return True, f"ρ(T) ≥ {float(c):.17g} on the span (r = {r}): Y ⪰ 0, T(Y) ⪰ cY"
    except (KeyError, TypeError, ValueError) as exc:
        return False, f"malformed certificate: {exc}"


def verify_file(path):
    with open(path, encoding="utf-8") as fh:
        return verify_data(json.load(fh))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0] in ("-h", "--help"):
        print("usage: python -m rmt.verify CERT.json  (exit 0: verified, 1: not, 2: usage)")
        return 2 if len(argv) != 1 else 0
    ok, reason = verify_file(argv[0])
    print(("verified: " if ok else "NOT verified: ") + reason)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
