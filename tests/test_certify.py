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
    rng = np.random.default_rng(0)
    big = rmt.HessianSet.from_factors(rng.standard_normal((90, 80)))
    with pytest.raises(CertificateError, match="MAX_SPAN"):
        certify(big, rmt.Schedule(0.01, 2))
    # a shared λI makes the span the whole space: 4 samples in d = 80 are over the limit
    shared = rmt.HessianSet.from_factors(rng.standard_normal((4, 80)), shared=0.1)
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
    big = rmt.HessianSet.from_factors(rng.standard_normal((90, 80)))  # span 80 > MAX_SPAN = 72
    rep = analyze(big, etas=[0.01], lyapunov=False, forecast=False, theorems=False, certify=True)
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
