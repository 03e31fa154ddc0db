"""Certificates (docs/contract.md §10.6): sound against an independent oracle, tamper-evident,
checked from a file by ``rmt verify`` and by the standalone verifier script."""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

import rmt
from oracle import TableOracle, stable_seed
from rmt.certificates import CertificateError, certify
from rmt.verify import verify_data

SCHEDULES = ("summed", "alternating", "sam")
SAMPLING = ("bernoulli", "with_replacement", "without_replacement")


def _instance(seed):
    rng = np.random.default_rng(seed)
    d = int(rng.integers(2, 5))
    n_r, n_f = int(rng.integers(2, 6)), int(rng.integers(1, 4))
    GR = rng.standard_normal((n_r, d)) * np.exp(rng.uniform(-1, 1, (n_r, 1)))
    GF = rng.standard_normal((n_f, d)) * np.exp(rng.uniform(-1, 1, (n_f, 1)))
    schedule = SCHEDULES[seed % 3]
    sampling = SAMPLING[(seed // 3) % 3]
    alpha = 0.0 if schedule == "sam" else float(rng.uniform(0.0, 0.4))
    B = int(rng.integers(1, n_r + 1))
    BF = int(rng.integers(1, n_f + 1))
    lam = float(np.max(np.linalg.eigvalsh(GR.T @ GR / n_r)))
    eta = float(np.exp(rng.uniform(np.log(0.05), np.log(3.0)))) / lam
    kw = dict(sam_rho=0.05 / lam, sam_a=1.0) if schedule == "sam" else dict(forget_batch=BF)
    sch = rmt.Schedule(eta, B, alpha=alpha, sampling=sampling, schedule=schedule, **kw)
    HR = np.einsum("ni,nj->nij", GR, GR)
    HF = np.einsum("ni,nj->nij", GF, GF)
    orc = TableOracle(HR, HF, B, alpha, sampling, schedule, BF=BF,
                      sam_rho=kw.get("sam_rho", 0.0), sam_a=1.0)
    return rmt.HessianSet.from_factors(GR, GF), sch, orc


def test_certificates_are_sound_against_the_oracle():
    made = {"rho <= c": 0, "rho >= c": 0}
    refused = 0
    for seed in range(150):
        hs, sch, orc = _instance(seed)
        rho, allow = orc.rate(sch.eta)
        try:
            cert = certify(hs, sch)
        except CertificateError:
            refused += 1
            continue
        ok, why = cert.verify()
        assert ok, (seed, why)
        c = float(cert.c)
        if cert.claim == "rho <= c":
            assert c < 1.0 and rho * (1 - allow) <= c, (seed, rho, c)
        else:
            assert c > 1.0 and rho * (1 + allow) >= c, (seed, rho, c)
        made[cert.claim] += 1
        # the same Y can never prove a false bound: c moved past the oracle's ρ fails
        data = cert.to_dict()
        if cert.claim == "rho <= c":
            wrong = Fraction(rho * (1 - 1e-6))
        else:
            wrong = Fraction(rho * (1 + 1e-6))
        data["c"] = list(wrong.as_integer_ratio())
        assert not verify_data(data)[0], seed
    assert made["rho <= c"] >= 30 and made["rho >= c"] >= 30, made
    assert refused <= 15, refused


def _one():
    hs, sch, _ = _instance(stable_seed("certify-one"))
    return certify(hs, sch)


def test_a_tampered_certificate_fails():
    cert = _one()
    assert cert.verify()[0]
    data = cert.to_dict()
    bad = json.loads(json.dumps(data))
    bad["input"]["retain"][0][0][0][0] += 1  # one input entry changed
    ok, why = verify_data(bad)
    assert not ok and "fingerprint" in why
    bad = json.loads(json.dumps(data))
    bad["Y"][0][0] = [-1, 1]  # Y no longer PSD
    ok, why = verify_data(bad)
    assert not ok
    bad = json.loads(json.dumps(data))
    bad["claim"] = "rho >= c" if data["claim"] == "rho <= c" else "rho <= c"
    assert not verify_data(bad)[0]


def test_verify_from_a_file_cli_and_standalone(tmp_path):
    cert = _one()
    path = cert.save(tmp_path / "cert.json")
    assert rmt.load_certificate(path).verify()[0]
    # the standalone script: runs without importing the package (its own directory only)
    script = Path(rmt.__file__).parent / "verify.py"
    out = subprocess.run([sys.executable, "-I", str(script), str(path)], capture_output=True,
                         text=True, cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.startswith("verified:"), out.stdout + out.stderr
    from simulations.cli import main

    assert main(["verify", str(path)]) == 0
    data = json.loads(path.read_text())
    data["c"] = [data["c"][0] + data["c"][1] * (1 if data["claim"] == "rho >= c" else -1),
                 data["c"][1]]
    data["fingerprint"] = data["fingerprint"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    assert main(["verify", str(bad)]) == 1
    assert main(["verify", str(tmp_path / "missing.json")]) == 2


def test_refusals_say_why():
    from rmt.certificates import MAX_SPAN, MAX_SPAN_PRODUCTS

    rng = np.random.default_rng(0)
    # alternating and SAM keep the exact rational path (G⁻¹): spans above MAX_SPAN_PRODUCTS
    mid = rmt.HessianSet.from_factors(rng.standard_normal((90, MAX_SPAN_PRODUCTS + 8)))
    with pytest.raises(CertificateError, match="MAX_SPAN_PRODUCTS"):
        certify(mid, rmt.Schedule(0.01, 2, schedule="alternating"))
    # the summed schedule goes to MAX_SPAN; a shared λI makes the span the whole space
    shared = rmt.HessianSet.from_factors(rng.standard_normal((4, MAX_SPAN + 1)), shared=0.1)
    with pytest.raises(CertificateError, match="λI"):
        certify(shared, rmt.Schedule(0.01, 2))


def test_the_recorded_findings_ship_as_verified_certificates():
    from theory.certificates import FINDINGS, finding_certificate

    folder = Path(__file__).resolve().parent.parent / "docs" / "certificates"
    for name in FINDINGS:
        path = folder / f"{name}.json"
        data = json.loads(path.read_text())
        ok, why = verify_data(data)
        assert ok, (name, why)
        # the shipped file is the certificate of today's worked example (no drift)
        assert data["fingerprint"] == finding_certificate(name).fingerprint, name
    claims = {n: json.loads((folder / f"{n}.json").read_text())["claim"] for n in FINDINGS}
    assert claims["eta-lambda-max-below-2-does-not-converge"] == "rho >= c"
    assert claims["wu-ma-e-not-necessary"] == "rho <= c"
    assert claims["out-of-span-forgets-for-every-alpha"] == "rho >= c"


@pytest.mark.parametrize("parameter", ["eta", "alpha", "batch"])
def test_certified_critical_values_bracket_the_oracle_crossing(parameter):
    rng = np.random.default_rng(stable_seed("critical", parameter))
    GR = rng.standard_normal((8, 3))
    GF = 0.5 * GR[:3] + 0.1 * rng.standard_normal((3, 3))
    hs = rmt.HessianSet.from_factors(GR, GF)
    lam = float(np.max(np.linalg.eigvalsh(GR.T @ GR / 8)))
    eta = {"eta": 1.0, "alpha": 0.6, "batch": 1.9}[parameter] / lam
    sch = rmt.Schedule(eta, 4, alpha=0.1, sampling="without_replacement", forget_batch=2)
    cc = rmt.certify_critical(hs, sch, parameter)
    ok, why = cc.verify()
    assert ok and cc.unique, why
    HR = np.einsum("ni,nj->nij", GR, GR)
    HF = np.einsum("ni,nj->nij", GF, GF)

    def oracle(**kw):
        p = dict(B=4, alpha=0.1, eta=eta) | kw
        orc = TableOracle(HR, HF, p["B"], p["alpha"], "without_replacement", "summed", BF=2)
        return orc.rate(p["eta"])[0]

    key = {"eta": "eta", "alpha": "alpha", "batch": "B"}[parameter]
    lo, hi = (cc.lo, cc.hi) if parameter != "batch" else (int(cc.lo), int(cc.hi))
    assert oracle(**{key: lo}) < 1.0 < oracle(**{key: hi})


def test_analyze_certify_reports_a_verified_certificate_or_why_not():
    from simulations.sweep_cli import analyze

    rng = np.random.default_rng(stable_seed("analyze-certify"))
    hs = rmt.HessianSet.from_factors(rng.standard_normal((6, 4)), rng.standard_normal((3, 4)))
    rep = analyze(hs, etas=[0.05, 1.0], batches=[2], alphas=[0.1], lyapunov=False,
                  forecast=False, theorems=False, certify=True)
    entries = rep["results"]
    assert len(entries) == 2
    for e in entries:
        ce = e["certificate"]
        assert ce["available"] and ce["verified"], ce
        assert (ce["claim"] == "rho >= c") == e["forgets"]
    big = rmt.HessianSet.from_factors(rng.standard_normal((90, 80)))  # > MAX_SPAN_PRODUCTS = 72
    rep = analyze(big, etas=[0.01], schedules=("alternating",), lyapunov=False, forecast=False,
                  theorems=False, certify=True)
    ce = rep["results"][0]["certificate"]
    assert not ce["available"] and "MAX_SPAN" in ce["reason"]


def test_a_rayleigh_lower_bound_is_accepted_for_summed_schedules_only():
    from rmt.verify import fingerprint

    rng = np.random.default_rng(stable_seed("rayleigh"))
    hs = rmt.HessianSet.from_factors(rng.standard_normal((6, 3)), rng.standard_normal((2, 3)))
    sch = rmt.Schedule(2.0, 2, alpha=0.1, sampling="bernoulli", forget_batch=1)
    cert = certify(hs, sch)
    assert cert.claim == "rho >= c" and cert.method == "rayleigh" and cert.verify()[0]
    data = cert.to_dict()
    data["input"]["schedule"]["schedule"] = "alternating"  # re-issued: fingerprint matches
    data["fingerprint"] = fingerprint(data)
    ok, why = verify_data(data)
    assert not ok and "summed" in why


def test_the_integer_operator_is_the_rational_operator_exactly():
    """The summed schedule's G·T̃(Y)·G on integer matrices (the fast path of both methods) equals
    the general rational construction entry by entry, with shared curvature λI and QQᵀ too."""
    import rmt.verify as V

    rng = np.random.default_rng(stable_seed("integer-operator"))
    done = 0
    for k in range(12):
        d = int(rng.integers(2, 6))
        GR = rng.standard_normal((int(rng.integers(2, 6)), d, int(rng.integers(1, 3))))
        GF = rng.standard_normal((2, d, 1))
        shared = [None, 0.3, rng.standard_normal((d, 1))][k % 3]
        kw = {} if shared is None else {"shared": shared}
        hs = rmt.HessianSet.from_factors(GR, GF, **kw)
        sch = rmt.Schedule(0.1, 2, alpha=0.2, sampling=SAMPLING[k % 3], forget_batch=1)
        data = certify(hs, sch).to_dict()
        TG1, G1, r = V._operator(data["input"], data["basis_columns"])
        TG2, G2, r2 = V._summed_operator_int(data["input"], data["basis_columns"])
        Yq = [[V._q(x) for x in row] for row in data["Y"]]
        A, B = TG1(V._qmat(data["Y"])), TG2(V._zq_from_rows(Yq))
        assert r == r2
        assert V._entries(A) == [[B.q * int(B.M[i, j]) for j in range(r)] for i in range(r)]
        assert V._entries(G1) == [[G2.q * int(G2.M[i, j]) for j in range(r)] for i in range(r)]
        done += 1
    assert done == 12


def _digits_mlp(max_train, hidden, n_forget):
    import warnings

    from rmt import models as M

    data = M.load_digits_binary((3, 8), n_components=12, max_train=max_train, flip=2, seed=0,
                                test_fraction=0.1)
    X, y = data.X_train, data.y_train.astype(float)
    mlp = M.MLP(X.shape[1], hidden, 1, activation="tanh", loss="squared")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tr = M.train(mlp, X, y, "squared", seed=0, tol=1e-7, maxiter=20000)
        retain, forget = M.forget_set("typical", len(y), n_forget, seed=0)
        hs = M.hessian_set(mlp, tr.w, X[retain], y[retain], X[forget], y[forget], "squared")
    lam = float(np.linalg.eigvalsh(hs.reduction(True, False).mean("retain"))[-1])
    return hs, lam


def _both_sides(hs, lam, n_forget):
    """A forgetting and a resisting schedule of a digits MLP, certified and verified."""
    out = []
    for alpha, rel in ((0.1, 0.5), (0.0, 0.2)):
        sch = rmt.Schedule(rel * 2 / lam, 8, alpha=alpha, sampling="without_replacement",
                           forget_batch=n_forget)
        rate = rmt.mean_square_rate(hs, sch)
        cert = certify(hs, sch)
        ok, why = cert.verify()
        assert ok, why
        assert cert.verification == "exact-integer-congruence" and "congruence" in why
        assert cert.forgets == (rate > 1.0)
        assert (float(cert.c) <= rate * (1 + 1e-9)) if cert.forgets else (float(cert.c) >= rate * (1 - 1e-9))
        out.append(cert)
    return out


def test_a_digits_mlp_at_r_about_100_is_certified_on_the_rigorous_path(tmp_path):
    from rmt.certificates import CONGRUENCE_SPAN

    hs, lam = _digits_mlp(110, 16, 4)
    certs = _both_sides(hs, lam, 4)
    assert all(c.span > CONGRUENCE_SPAN for c in certs), [c.span for c in certs]
    assert {c.claim for c in certs} == {"rho >= c", "rho <= c"}
    # from the file, by the standalone script (stdlib + python-flint; numpy finds congruences)
    path = certs[1].save(tmp_path / "mlp.json")
    script = Path(rmt.__file__).parent / "verify.py"
    out = subprocess.run([sys.executable, "-I", str(script), str(path)], capture_output=True,
                         text=True, cwd=tmp_path)
    assert out.returncode == 0 and "congruence" in out.stdout, out.stdout + out.stderr
    assert rmt.load_certificate(path).verification == "exact-integer-congruence"


@pytest.mark.slow
def test_the_digits_mlp_at_r_300_is_certified():
    import time

    hs, lam = _digits_mlp(300, 32, 6)  # r = 294 (retain) / 300 (retain + forget)
    t = time.perf_counter()
    certs = _both_sides(hs, lam, 6)
    assert max(c.span for c in certs) >= 290, [c.span for c in certs]
    print(f"digits MLP r = {[c.span for c in certs]}: certified and verified in "
          f"{time.perf_counter() - t:.1f} s")


def test_commuting_sets_are_certified_at_any_span_with_a_diagonal_y(tmp_path):
    from simulations import hessian_grid as hg

    # a Hessian-test cell: r = 100 directions, verified exactly in milliseconds
    hs = hg.grid_set(100, 1, 0.3, 10, "commuting")
    sch = hg.grid_schedule(hs, 0.8, 9, 0.3)
    cert = certify(hs, sch)
    assert cert.verification == "exact-commuting" and cert.span == 100 and cert.verify()[0]
    assert cert.forgets == (rmt.mean_square_rate(hs, sch) > 1.0)
    path = cert.save(tmp_path / "cell.json")
    script = Path(rmt.__file__).parent / "verify.py"
    out = subprocess.run([sys.executable, "-I", str(script), str(path)], capture_output=True,
                         text=True, cwd=tmp_path)
    assert out.returncode == 0 and "commuting" in out.stdout, out.stdout + out.stderr
    # ρ(T) = 1 exactly (σ = 50, B = 1, η = 0.5: every batch has ηh = 2 or misses, J² ≡ 1 in
    # those directions): no verdict to certify, and the refusal says so
    hs = hg.grid_set(100, 50, 0.0, 10, "commuting")
    with pytest.raises(CertificateError, match="exactly"):
        certify(hs, hg.grid_schedule(hs, 0.5, 1, 0.0))
    # a commuting set in a rotated basis is certified through its factors (the general path)
    rng = np.random.default_rng(1)
    Q = np.linalg.qr(rng.standard_normal((3, 3)))[0]
    rot = rmt.HessianSet.from_commuting(rng.uniform(0, 1, (4, 3)), basis=Q)
    assert certify(rot, rmt.Schedule(0.5, 2)).verification == "exact"
