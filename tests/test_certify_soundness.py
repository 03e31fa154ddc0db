"""Soundness of certificates on adversarial instances (issue bar: ≥ 1,000 random small instances,
no certificate verifies a false claim): ρ within 1e-8 of 1, near-double top eigenvalues, zero
factors, shared curvature (λI, QQᵀ), and spans large enough that the candidate comes from the
solver, not the dense matrix.

The default run checks a few dozen; ``-m slow`` runs 1,050. Every verified certificate is
compared with the independent table oracle's ρ (tests/oracle.py, imports nothing from rmt), and
the same Y with c moved just past the oracle's ρ must fail."""

from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pytest

import rmt
from oracle import TableOracle
from rmt.certificates import CertificateError, certify
from rmt.verify import verify_data

SCHEDULES = ("summed", "alternating", "sam")
SAMPLING = ("bernoulli", "with_replacement", "without_replacement")
KINDS = ("plain", "near_one", "near_double", "zero_factor", "solver_span", "shared_lambda",
         "shared_q")


def _factors(rng, kind, d, n_r, n_f):
    GR = rng.standard_normal((n_r, d)) * np.exp(rng.uniform(-1, 1, (n_r, 1)))
    GF = rng.standard_normal((n_f, d)) * np.exp(rng.uniform(-1, 1, (n_f, 1)))
    if kind == "near_double":  # two retain samples along almost the same direction, equal size
        u = rng.standard_normal(d)
        GR[0] = u
        GR[1] = u + 1e-7 * rng.standard_normal(d)
    if kind == "zero_factor":
        GR[rng.integers(n_r)] = 0.0
        GF[rng.integers(n_f)] = 0.0
    return GR, GF


def _instance(seed):
    rng = np.random.default_rng(seed)
    kind = KINDS[seed % len(KINDS)]
    d = int(rng.integers(10, 13)) if kind == "solver_span" else int(rng.integers(2, 5))
    n_r = int(rng.integers(d + 1, d + 4)) if kind == "solver_span" else int(rng.integers(2, 6))
    n_f = int(rng.integers(1, 4))
    GR, GF = _factors(rng, kind, d, n_r, n_f)
    schedule = SCHEDULES[(seed // len(KINDS)) % 3]
    sampling = SAMPLING[(seed // (3 * len(KINDS))) % 3]
    alpha = 0.0 if schedule == "sam" else float(rng.uniform(0.0, 0.3))
    B, BF = int(rng.integers(1, n_r + 1)), int(rng.integers(1, n_f + 1))
    lam = float(np.max(np.linalg.eigvalsh(GR.T @ GR / n_r))) or 1.0
    kw = dict(sam_rho=0.05 / lam, sam_a=1.0) if schedule == "sam" else dict(forget_batch=BF)
    shared, C = None, np.zeros((d, d))
    if kind == "shared_lambda":  # weight decay λI: the span is all of R^d, a null mode exists
        shared = float(rng.uniform(0.05, 0.5)) * lam
        C = shared * np.eye(d)
    elif kind == "shared_q":
        shared = rng.standard_normal((d, 1)) * np.sqrt(0.3 * lam)
        C = shared @ shared.T
    # the oracle gets each sample's Hessian with the shared term in it (contract §2: H_i + C)
    HR = np.einsum("ni,nj->nij", GR, GR) + C
    HF = np.einsum("ni,nj->nij", GF, GF) + C
    orc = TableOracle(HR, HF, B, alpha, sampling, schedule, BF=BF,
                      sam_rho=kw.get("sam_rho", 0.0), sam_a=1.0)
    eta = float(np.exp(rng.uniform(np.log(0.05), np.log(3.0)))) / lam
    if kind == "near_one":  # bisect η on the oracle to put ρ within ~1e-8 of 1, on either side
        lo, hi = 1e-3 / lam, 10.0 / lam
        if (orc.rate(lo)[0] - 1) * (orc.rate(hi)[0] - 1) < 0:
            for _ in range(80):
                mid = 0.5 * (lo + hi)
                if (orc.rate(mid)[0] - 1) * (orc.rate(lo)[0] - 1) > 0:
                    lo = mid
                else:
                    hi = mid
            eta = lo if rng.random() < 0.5 else hi
    sch = rmt.Schedule(eta, B, alpha=alpha, sampling=sampling, schedule=schedule, **kw)
    kw_hs = {} if shared is None else {"shared": shared}
    return rmt.HessianSet.from_factors(GR, GF, **kw_hs), sch, orc, kind


def _check(seed, made):
    try:
        hs, sch, orc, kind = _instance(seed)
    except ValueError:  # e.g. every active Hessian zero: no dynamics to certify
        return
    rho, allow = orc.rate(sch.eta)
    try:
        cert = certify(hs, sch)
    except CertificateError:
        made["refused"] += 1
        return
    ok, why = cert.verify()
    assert ok, (seed, kind, why)
    c = float(cert.c)
    if cert.claim == "rho <= c":
        assert c < 1.0 and rho * (1 - allow) <= c, (seed, kind, rho, c)
    else:
        assert c > 1.0 and rho * (1 + allow) >= c, (seed, kind, rho, c)
    made[cert.claim] += 1
    made[kind] += 1
    data = cert.to_dict()
    # the same proof data decided by the congruence (any schedule; a semidefinite Y may be
    # refused there, never accepted for a false claim)
    made["congruence"] += verify_data(dict(data, verification="exact-integer-congruence"))[0]
    wrong = Fraction(rho * (1 - 1e-6)) if cert.claim == "rho <= c" else Fraction(rho * (1 + 1e-6))
    data["c"] = list(wrong.as_integer_ratio())
    assert not verify_data(data)[0], (seed, kind)
    assert not verify_data(dict(data, verification="exact-integer-congruence"))[0], (seed, kind)


def _run(seeds):
    made = {k: 0 for k in ("rho <= c", "rho >= c", "refused", "congruence", *KINDS)}
    for seed in seeds:
        _check(seed, made)
    return made


def test_adversarial_certificates_are_sound():
    made = _run(range(1000, 1056))
    assert made["rho <= c"] >= 5 and made["rho >= c"] >= 5, made
    assert made["near_one"] >= 1 and made["solver_span"] >= 3, made
    assert made["shared_lambda"] >= 3 and made["shared_q"] >= 3, made


@pytest.mark.slow
def test_a_thousand_certificates_are_sound():
    made = _run(range(2000, 3050))
    print(made)
    assert made["rho <= c"] + made["rho >= c"] >= 800, made


def test_a_singular_or_indefinite_y_is_refused():
    hs, sch, _, _ = _instance(1000)
    cert = certify(hs, sch)
    data = cert.to_dict()
    r = len(data["Y"])
    data["Y"] = [[[0, 1] for _ in range(r)] for _ in range(r)]  # Y = 0 proves nothing
    assert not verify_data(data)[0]
    data["Y"] = [[[1 if i == j else 0, 1] for j in range(r)] for i in range(r)]
    data["Y"][0][0] = [-1, 1]  # indefinite
    assert not verify_data(data)[0]


def test_round_off_directions_dropped_by_the_span_rule_are_handled_exactly():
    # one factor has a 1e-20 component outside the others' span: the toolkit's span rule drops it
    # (curvature at round-off), the exact verifier counts it. ρ > 1: the certificate is made on
    # the exact span. ρ < 1: exactly, ρ is within ~1e-40 of 1 there — refused, and it says why.
    rng = np.random.default_rng(3)
    G = np.zeros((5, 4))
    G[:, :3] = rng.standard_normal((5, 3))
    G[2, 3] = 1e-20
    hs = rmt.HessianSet.from_factors(G)
    lam = float(np.linalg.eigvalsh(G.T @ G / 5)[-1])
    orc = TableOracle(np.einsum("ni,nj->nij", G, G), np.zeros((0, 4, 4)), 2, 0.0, "bernoulli",
                      "summed", BF=1)
    unstable = rmt.Schedule(3.0 / lam, 2)
    assert rmt.Dynamics(hs, unstable).r == 3
    cert = certify(hs, unstable)
    assert cert.verify()[0] and len(cert.Y) == 4 and cert.claim == "rho >= c"
    rho, allow = orc.rate(unstable.eta)
    assert 1.0 < float(cert.c) <= rho * (1 + allow)
    with pytest.raises(CertificateError, match="round-off curvature"):
        certify(hs, rmt.Schedule(0.3 / lam, 2))


# ---------------------------------------------------------------------- the rigorous large-r path
# "exact-integer-congruence" (rmt.verify): the summed operator on integer matrices, positive
# definiteness by an exact congruence found in floating point, span containment modulo primes.
# Forced onto small instances (CONGRUENCE_SPAN = 0) so that the dense oracle can judge them.
def _summed_seeds(start, count):
    out, s = [], start
    while len(out) < count:
        if (s // len(KINDS)) % 3 == 0:  # _instance's schedule is summed
            out.append(s)
        s += 1
    return out


def _oracle_from_input(inp, eta=None):
    """The dense table oracle rebuilt from a certificate's exact input alone (factor input)."""
    sch = inp["schedule"]
    q = lambda p: p[0] / p[1]  # noqa: E731
    d = len(inp["retain"][0])
    C = np.zeros((d, d))
    if inp.get("shared") is not None:
        C = q(inp["shared"]["scalar"]) * np.eye(d)
        if inp["shared"].get("Q") is not None:
            Q = np.array([[q(v) for v in row] for row in inp["shared"]["Q"]])
            C = C + Q @ Q.T

    def hess(name):
        if inp.get(name) is None:
            return None
        F = np.array([[[q(v) for v in row] for row in Fi] for Fi in inp[name]])
        return np.einsum("nak,nbk->nab", F, F) + C

    orc = TableOracle(hess("retain"), hess("forget"), sch["batch"], q(sch["alpha"]),
                      sch["sampling"], sch["schedule"], BF=sch["forget_batch"],
                      sam_rho=q(sch["sam_rho"]), sam_a=q(sch["sam_a"]))
    return orc.rate(q(sch["eta"]) if eta is None else eta)


def _holds(claim, c, rho, allow):
    return (rho * (1 + allow) >= c) if claim == "rho >= c" else (rho * (1 - allow) <= c)


def _tamper_checks(data, rng):
    """One input entry changed: the old fingerprint fails; re-issued, a verified claim must hold
    for the changed input (oracle). c moved past ρ, claim flipped, an indefinite Y: all fail."""
    from rmt.verify import fingerprint

    made = 0
    bad = json.loads(json.dumps(data))
    i = int(rng.integers(len(bad["input"]["retain"])))
    a = int(rng.integers(len(bad["input"]["retain"][i])))
    num, den = bad["input"]["retain"][i][a][0]
    bad["input"]["retain"][i][a][0] = [num * 3 + den, den * 2]  # x → 1.5x + 0.5
    assert not verify_data(bad)[0]
    bad["fingerprint"] = fingerprint(bad)
    ok, _why = verify_data(bad)
    if ok:
        try:
            rho, allow = _oracle_from_input(bad["input"])
        except ValueError:  # every active Hessian zero: nothing to judge
            rho = None
        if rho is not None:
            assert _holds(bad["claim"], bad["c"][0] / bad["c"][1], rho, allow), bad["claim"]
        made += 1
    flipped = json.loads(json.dumps(data))
    flipped["claim"] = "rho >= c" if data["claim"] == "rho <= c" else "rho <= c"
    if verify_data(flipped)[0]:  # c = ρ exactly: then both bounds are true
        rho, allow = _oracle_from_input(flipped["input"])
        assert _holds(flipped["claim"], flipped["c"][0] / flipped["c"][1], rho, allow)
    neg = json.loads(json.dumps(data))
    if neg.get("method") != "rayleigh":
        r = len(neg["Y"])
        neg["Y"] = [[[-1 if i == j else 0, 1] for j in range(r)] for i in range(r)]
        assert not verify_data(neg)[0]
    # a singular Y (rank one, and zero) proves no upper bound; zero proves nothing at all
    r = len(data["Y"])
    single = json.loads(json.dumps(data))
    single["Y"] = [[[int(i == j == 0), 1] for j in range(r)] for i in range(r)]
    if data["claim"] == "rho <= c" and r > 1:
        assert not verify_data(single)[0]
    zero = json.loads(json.dumps(data))
    zero["Y"] = [[[0, 1] for _ in range(r)] for _ in range(r)]
    assert not verify_data(zero)[0]
    return made


def _run_congruence(seeds, monkeypatch):
    import rmt.certificates as C

    monkeypatch.setattr(C, "CONGRUENCE_SPAN", 0)
    made = {"rho <= c": 0, "rho >= c": 0, "refused": 0, "tampered-still-valid": 0, "seen": 0}
    rng = np.random.default_rng(7)
    for seed in seeds:
        try:
            hs, sch, orc, kind = _instance(seed)
        except ValueError:
            continue
        made["seen"] += 1
        rho, allow = orc.rate(sch.eta)
        try:
            cert = certify(hs, sch)
        except CertificateError:
            made["refused"] += 1
            continue
        assert cert.verification == "exact-integer-congruence", cert
        ok, why = cert.verify()
        assert ok and "congruence" in why, (seed, kind, why)
        assert _holds(cert.claim, float(cert.c), rho, allow), (seed, kind, rho, cert)
        assert (cert.claim == "rho >= c") == (float(cert.c) > 1.0)
        made[cert.claim] += 1
        data = cert.to_dict()
        # the same Y with c moved past the oracle's ρ: refused by both methods
        wrong = Fraction(rho * (1 - 1e-6)) if cert.claim == "rho <= c" else Fraction(rho * (1 + 1e-6))
        for how in ("exact-integer-congruence", "exact"):
            moved = dict(data, c=list(wrong.as_integer_ratio()), verification=how)
            assert not verify_data(moved)[0], (seed, kind, how)
        # the exact (complete) method agrees with what the congruence proved
        assert verify_data(dict(data, verification="exact"))[0], (seed, kind)
        made["tampered-still-valid"] += _tamper_checks(data, rng)
    return made


def test_congruence_certificates_are_sound(monkeypatch):
    made = _run_congruence(_summed_seeds(5000, 40), monkeypatch)
    print(made)
    assert made["rho <= c"] >= 8 and made["rho >= c"] >= 8, made
    assert made["refused"] <= 0.2 * made["seen"], made


@pytest.mark.slow
def test_many_congruence_certificates_are_sound(monkeypatch):
    made = _run_congruence(_summed_seeds(6000, 400), monkeypatch)
    print(made)
    assert made["rho <= c"] + made["rho >= c"] >= 0.8 * made["seen"], made


def _symmetric_cases(rng, r):
    """(name, integer matrix) of symmetric matrices on and near the PD boundary, as exact
    integers (floats × 2^60, rounded)."""
    Q = np.linalg.qr(rng.standard_normal((r, r)))[0]
    out = []
    for k in (0, 4, 8, 11, 13, 15):
        lam = np.exp(rng.uniform(0, 1, r))
        lam[0] = 10.0 ** -k
        out.append((f"pd 1e-{k}", Q @ np.diag(lam) @ Q.T))
        lam2 = lam.copy()
        lam2[0] = -(10.0 ** -k)
        out.append((f"indefinite -1e-{k}", Q @ np.diag(lam2) @ Q.T))
    lam = np.exp(rng.uniform(0, 1, r))
    lam[: max(1, r // 3)] = 0.0
    out.append(("psd singular", Q @ np.diag(lam) @ Q.T))
    u = rng.standard_normal(r)
    lam = np.exp(rng.uniform(0, 1, r))
    near = Q @ np.diag(lam) @ Q.T
    near[0, 0] = near[0, 0] - 1e-9  # a nudge of the diagonal
    out.append(("nudged", near))
    out.append(("rank one", np.outer(u, u)))
    out.append(("zero", np.zeros((r, r))))
    return [(name, np.rint(np.ldexp(0.5 * (M + M.T), 60))) for name, M in out]


def _pd_soundness(sizes, seed):
    import flint

    import rmt.verify as V

    rng = np.random.default_rng(seed)
    counts = {"cases": 0, "pd": 0, "proven": 0, "not pd": 0}
    for r in sizes:
        for name, M in _symmetric_cases(rng, r):
            Z = flint.fmpz_mat(r, r, [int(v) for v in M.ravel()])
            pd = V._pd_leading_minors(Z)  # exact (Sylvester on FLINT's fraction-free LU)
            if r <= 8:  # ... which is the leading minors, computed here one by one
                minors = [flint.fmpz_mat([[Z[i, j] for j in range(k)] for i in range(k)]).det()
                          for k in range(1, r + 1)]
                assert pd == all(m > 0 for m in minors), (r, name)
            proven, why = V._pd_congruence(Z)
            counts["cases"] += 1
            counts["pd" if pd else "not pd"] += 1
            counts["proven"] += proven
            assert pd or not proven, (r, name, why)
            if r > 1 and pd:  # a non-symmetric matrix is refused whatever it is
                Z2 = flint.fmpz_mat(Z)
                Z2[0, 1] = Z2[0, 1] + 1
                assert not V._pd_congruence(Z2)[0], (r, name)
    return counts


def test_the_congruence_never_proves_a_matrix_that_is_not_positive_definite():
    counts = _pd_soundness([1, 2, 3, 5, 8, 13, 21, 34], seed=11)
    print(counts)
    assert counts["proven"] >= 0.5 * counts["pd"] and counts["not pd"] >= 40, counts


@pytest.mark.slow
def test_the_congruence_on_many_matrices():
    counts = _pd_soundness(list(range(1, 41)) + [60, 90], seed=12)
    print(counts)
    assert counts["proven"] >= 0.5 * counts["pd"], counts


def test_span_containment_is_exact():
    import flint

    import rmt.verify as V

    rng = np.random.default_rng(5)
    for d, r, m in ((6, 3, 4), (12, 7, 9), (30, 20, 25), (40, 40, 3)):
        B = rng.integers(-2**40, 2**40, (d, r))
        X = rng.integers(-5, 6, (r, m))
        Phi = np.array([[sum(int(B[i, a]) * int(X[a, j]) for a in range(r)) for j in range(m)]
                        for i in range(d)], dtype=object)
        Bz = flint.fmpz_mat(d, r, [int(v) for v in B.ravel()])
        Pz = flint.fmpz_mat(d, m, [int(v) for v in Phi.ravel()])
        V._span_check(Bz, Pz)  # inside: passes
        if r < d:
            out = flint.fmpz_mat(Pz)
            out[int(rng.integers(d)), int(rng.integers(m))] += 1  # one unit outside
            with pytest.raises(ValueError, match="outside the span"):
                V._span_check(Bz, out)
        dup = flint.fmpz_mat(Bz)
        for i in range(d):
            dup[i, r - 1] = dup[i, 0] * 3  # a dependent basis column
        with pytest.raises(ValueError, match="dependent"):
            V._span_check(dup, None)


# ---------------------------------------------------------------------- the commuting path
def _commuting_instance(seed):
    """A commuting set in the standard basis (diagonal Hessians) and its dense oracle; kinds as
    above plus exact ties (directions with the same statistics) and ρ near 1."""
    rng = np.random.default_rng(seed)
    kind = ("plain", "near_one", "ties", "zero_profile", "shared")[seed % 5]
    d = int(rng.integers(2, 6))
    n_r, n_f = int(rng.integers(2, 6)), int(rng.integers(1, 4))
    PR = np.exp(rng.uniform(-1, 1, (n_r, d))) * (rng.random((n_r, d)) < 0.7)
    PF = np.exp(rng.uniform(-1, 1, (n_f, d))) * (rng.random((n_f, d)) < 0.7)
    if kind == "ties":
        PR[:, 1] = PR[:, 0]
        PF[:, 1] = PF[:, 0]
    if kind == "zero_profile":
        PR[int(rng.integers(n_r))] = 0.0
        PF[int(rng.integers(n_f))] = 0.0
    shared = float(rng.uniform(0.05, 0.5)) if kind == "shared" else None
    schedule = SCHEDULES[(seed // 5) % 3]
    sampling = SAMPLING[(seed // 15) % 3]
    alpha = 0.0 if schedule == "sam" else float(rng.uniform(0.0, 0.3))
    B, BF = int(rng.integers(1, n_r + 1)), int(rng.integers(1, n_f + 1))
    kw = dict(sam_rho=0.05, sam_a=1.0) if schedule == "sam" else dict(forget_batch=BF)
    hs = rmt.HessianSet.from_commuting(PR, PF, shared=shared)
    HR = np.array([np.diag(p) for p in hs.eigenvalues("retain")])
    HF = np.array([np.diag(p) for p in hs.eigenvalues("forget")])
    orc = TableOracle(HR, HF, B, alpha, sampling, schedule, BF=BF,
                      sam_rho=kw.get("sam_rho", 0.0), sam_a=1.0)
    lam = float(np.max(HR.mean(0))) or 1.0
    eta = float(np.exp(rng.uniform(np.log(0.05), np.log(3.0)))) / lam
    if kind == "near_one":
        lo, hi = 1e-3 / lam, 10.0 / lam
        if (orc.rate(lo)[0] - 1) * (orc.rate(hi)[0] - 1) < 0:
            for _ in range(80):
                mid = 0.5 * (lo + hi)
                if (orc.rate(mid)[0] - 1) * (orc.rate(lo)[0] - 1) > 0:
                    lo = mid
                else:
                    hi = mid
            eta = lo if rng.random() < 0.5 else hi
    sch = rmt.Schedule(eta, B, alpha=alpha, sampling=sampling, schedule=schedule, **kw)
    return hs, sch, orc, kind


def _commuting_oracle(inp):
    """Dense oracle from a commuting certificate's exact input alone."""
    sch = inp["schedule"]
    q = lambda p: p[0] / p[1]  # noqa: E731
    d = inp["dim"]

    def hess(name):
        if inp.get(name) is None:
            return None
        P = np.zeros((inp[name]["n"], d))
        for i, j, v in inp[name]["entries"]:
            P[i, j] = q(v)
        return np.array([np.diag(p) for p in P])

    orc = TableOracle(hess("retain"), hess("forget"), sch["batch"], q(sch["alpha"]),
                      sch["sampling"], sch["schedule"], BF=sch["forget_batch"],
                      sam_rho=q(sch["sam_rho"]), sam_a=q(sch["sam_a"]))
    return orc.rate(q(sch["eta"]))


def _run_commuting(seeds):
    from rmt.verify import fingerprint

    made = {"rho <= c": 0, "rho >= c": 0, "refused": 0, "tampered-still-valid": 0, "seen": 0,
            "flipped-still-valid": 0}
    rng = np.random.default_rng(3)
    for seed in seeds:
        try:
            hs, sch, orc, kind = _commuting_instance(seed)
        except ValueError:
            continue
        made["seen"] += 1
        rho, allow = orc.rate(sch.eta)
        try:
            cert = certify(hs, sch)
        except CertificateError as exc:
            assert "exactly" in str(exc) and abs(rho - 1) < 1e-9, (seed, kind, rho, exc)
            made["refused"] += 1
            continue
        assert cert.verification == "exact-commuting"
        ok, why = cert.verify()
        assert ok, (seed, kind, why)
        assert _holds(cert.claim, float(cert.c), rho, allow), (seed, kind, rho, cert)
        made[cert.claim] += 1
        data = cert.to_dict()
        wrong = Fraction(rho * (1 - 1e-6)) if cert.claim == "rho <= c" else Fraction(rho * (1 + 1e-6))
        assert not verify_data(dict(data, c=list(wrong.as_integer_ratio())))[0], (seed, kind)
        flipped = dict(data, claim="rho >= c" if cert.claim == "rho <= c" else "rho <= c")
        if verify_data(flipped)[0]:  # only when c = ρ exactly in every direction (exact ties)
            assert _holds(flipped["claim"], float(cert.c), rho, allow), (seed, kind)
            made["flipped-still-valid"] += 1
        assert not verify_data(dict(data, verification="exact"))[0]  # commuting goes with its own
        # one profile entry changed: fingerprint fails; re-issued, a verified claim still holds
        bad = json.loads(json.dumps(data))
        entries = bad["input"]["retain"]["entries"]
        if entries:
            k = int(rng.integers(len(entries)))
            num, den = entries[k][2]
            entries[k][2] = [num * 3 + den, den * 2]
            assert not verify_data(bad)[0]
            bad["fingerprint"] = fingerprint(bad)
            if verify_data(bad)[0]:
                rho2, allow2 = _commuting_oracle(bad["input"])
                assert _holds(bad["claim"], bad["c"][0] / bad["c"][1], rho2, allow2), (seed, kind)
                made["tampered-still-valid"] += 1
        # Y off its support: a zero diagonal entry in an upper bound, or an empty lower bound
        ybad = json.loads(json.dumps(data))
        if cert.claim == "rho <= c":
            j = next(i for i, v in enumerate(ybad["Y_diagonal"]) if v[0] != 0)
            ybad["Y_diagonal"][j] = [0, 1]
        else:
            ybad["Y_diagonal"] = [[0, 1]] * len(ybad["Y_diagonal"])
        assert not verify_data(ybad)[0]
    return made


def test_commuting_certificates_are_sound():
    made = _run_commuting(range(300))
    print(made)
    assert made["rho <= c"] >= 40 and made["rho >= c"] >= 40, made
    assert made["refused"] <= 5, made


@pytest.mark.slow
def test_many_commuting_certificates_are_sound():
    made = _run_commuting(range(1000, 3000))
    print(made)
    assert made["rho <= c"] + made["rho >= c"] >= 0.99 * made["seen"], made
