"""Start-up time of the ``rmt`` command: ``--help``, ``--version``, ``analyze --help``.

    python benchmarks/bench_cli.py [--repeat N]

Every command runs as a fresh process, ``--repeat`` times (default 7), interleaved with the
baseline ``python -c pass`` in the same run, so a busy machine slows all of them alike; prints the
median and the minimum wall time of each and its excess over the baseline. The goal (issue 21):
``rmt --help`` and ``rmt --version`` under 1 s. The ``rmt`` script is the one installed next to
this interpreter (not a pyenv shim, whose own start-up would be counted).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path


def rmt_script() -> str:
    here = Path(sys.executable).parent / "rmt"
    found = str(here) if here.is_file() else shutil.which("rmt")
    if not found:
        raise SystemExit("bench_cli: no 'rmt' script found; install the package (pip install -e .)")
    return found


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=7, help="runs of each command (default 7)")
    args = p.parse_args(argv)
    rmt = rmt_script()
    commands = {
        "python -c pass (baseline)": [sys.executable, "-c", "pass"],
        "rmt --help": [rmt, "--help"],
        "rmt --version": [rmt, "--version"],
        "rmt analyze --help": [rmt, "analyze", "--help"],
    }
    times = {k: [] for k in commands}
    for _ in range(max(1, args.repeat)):
        for name, cmd in commands.items():
            t = time.perf_counter()
            subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
            times[name].append(time.perf_counter() - t)
    base = statistics.median(times["python -c pass (baseline)"])
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"rmt start-up, {args.repeat} runs each, interleaved; load average {load:.2f}; "
          f"script {rmt}")
    print(f"| command | median | min | median − baseline |")
    print(f"|---|---|---|---|")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"| `{name}` | {med:.3f} s | {min(ts):.3f} s | {med - base:+.3f} s |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
