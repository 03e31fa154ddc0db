"""``rmt verify CERT.json``: check a mean-square certificate in exact arithmetic (contract §10.6).

The check itself is :mod:`rmt.verify`, which uses the standard library only; for a check that
imports nothing of the toolkit at all, run that file directly: ``python rmt/verify.py CERT.json``.
"""

from __future__ import annotations

import argparse
import os


def _run(args):
    from rmt.verify import verify_file

    if not os.path.isfile(args.cert):
        raise ValueError(f"cert: no such file {args.cert!r}")
    ok, reason = verify_file(args.cert)
    print(("verified: " if ok else "NOT verified: ") + reason)
    return 0 if ok else 1


def register(subparsers):
    from .cli import rst_to_text

    p = subparsers.add_parser(
        "verify", help="check a certificate file (exact arithmetic): exit 0 verified, 1 not",
        description=rst_to_text(__doc__), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("cert", help="certificate file written by rmt.certify(...).save(path)")
    p.set_defaults(func=_run)
