"""The toolkit's recorded findings as certificate files (docs/certificates/, contract §10.6).

Each finding of docs/theory.md is a worked example of :mod:`theory.examples`; its verdict is
shipped as a certificate that ``rmt verify docs/certificates/NAME.json`` (or the standalone
``python rmt/verify.py …``) checks in exact arithmetic. Regenerate with
``python -m theory.certificates [FOLDER]`` (default ``docs/certificates``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import rmt

from . import examples

__all__ = ["FINDINGS", "finding_certificate", "write_findings"]

#: finding → worked example it is certified on
FINDINGS = {
    # "η·λ_max(D) < 2 and D ≻ 0 imply convergence" is false: ρ(T) = 7 > 1
    "eta-lambda-max-below-2-does-not-converge": "orthogonal-noise-blowup",
    # Wu–Ma–E's non-uniformity condition is not necessary in d > 1: ρ(T) = 0.9417 < 1
    "wu-ma-e-not-necessary": "wu-ma-e-counterexample",
    # Dexter's single-sample divergence step does not carry over to sampling with replacement
    "dexter-step-does-not-transfer": "scheme-analogue-counterexample",
    # a forget direction outside the retain span: every α > 0 forgets (here ρ(T) = 1.1025)
    "out-of-span-forgets-for-every-alpha": "unlearning-mean-escape",
}


def finding_certificate(name: str) -> rmt.Certificate:
    """The exact-arithmetic certificate of the finding ``name`` (a key of :data:`FINDINGS`)."""
    ex = examples.all_examples()[FINDINGS[name]]
    return rmt.certify(ex.hs, ex.schedule)


def write_findings(folder: str | Path = "docs/certificates") -> dict[str, Path]:
    """Verify and save every finding's certificate under ``folder`` → {name: path}."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name in FINDINGS:
        cert = finding_certificate(name)
        ok, why = cert.verify()
        if not ok:
            raise RuntimeError(f"{name}: {why}")
        out[name] = cert.save(folder / f"{name}.json")
    return out


if __name__ == "__main__":
    for name, path in write_findings(*sys.argv[1:2]).items():
        print(f"{name}: {path}")
