"""`rmt analyze` on a d = 65 logistic model, cold CLI processes: this checkout vs an old commit.

The case (issue 21's bar, goal < 5 s): scikit-learn's digits 3 vs 8, all 64 pixels / 16 plus an
intercept (d = 65), ``LogisticRegression(C=1)`` fitted by scikit-learn, a random forget set of 10,
``rmt.adapters.sklearn.hessian_set`` (weight decay as shared curvature), saved with
``rmt.io.save_npz``; analysed as ``rmt analyze FILE --sampling without_replacement --batch 8``
(every default: forecast 1000 steps, Lyapunov, critical values, every theorem check).

Each run is a fresh ``python -m simulations.cli`` process (imports included), alternating old and
new, best of ``--repeats``; the old code runs from a git worktree of ``--old`` on ``sys.path``.
Both must print the same report (checked, timings stripped).

    python benchmarks/bench_analyze_d65.py                # old = ac85629, 3 repeats
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OLD_COMMIT = "ac85629"

_MAKE = r"""
import numpy as np, rmt, warnings
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from rmt.adapters import sklearn as ra
X, y = load_digits(return_X_y=True)
m = (y == 3) | (y == 8)
X, y = X[m] / 16.0, (y[m] == 8).astype(int)
est = LogisticRegression(C=1.0, max_iter=5000, tol=1e-12).fit(X, y)
forget = np.random.default_rng(0).choice(len(y), 10, replace=False)
rmt.io.save_npz({path!r}, ra.hessian_set(est, X, y, forget=forget))
"""


def _analyze(root: Path, path: str) -> tuple[float, str]:
    env = dict(os.environ, PYTHONPATH=str(root), RMT_PROGRESS="0")
    t = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "simulations.cli", "analyze", path, "--sampling",
                        "without_replacement", "--batch", "8"], capture_output=True, text=True,
                       env=env, cwd=str(root))
    wall = time.perf_counter() - t
    if p.returncode != 0:
        raise RuntimeError(f"rmt analyze failed in {root}:\n{p.stderr[-2000:]}")
    return wall, re.sub(r"\(\d+\.\d+ s\)", "", p.stdout)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old", default=OLD_COMMIT)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "d65.npz")
        subprocess.run([sys.executable, "-c", _MAKE.format(path=path)], check=True,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)), cwd=str(ROOT))
        old = Path(tmp) / "old"
        subprocess.run(["git", "worktree", "add", "--detach", str(old), args.old], check=True,
                       cwd=str(ROOT), capture_output=True)
        try:
            t_old, t_new = [], []
            for _ in range(args.repeats):
                w, out_old = _analyze(old, path)
                t_old.append(w)
                w, out_new = _analyze(ROOT, path)
                t_new.append(w)
            same = out_old == out_new
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=str(ROOT),
                           capture_output=True)
    load = os.getloadavg()[0]
    print(f"rmt analyze, d = 65 logistic (digits 3 vs 8), cold process, best of {args.repeats}; "
          f"load average {load:.2f}")
    print(f"  old ({args.old}): {min(t_old):6.2f} s   (all: {', '.join(f'{x:.2f}' for x in t_old)})")
    print(f"  new (checkout): {min(t_new):6.2f} s   (all: {', '.join(f'{x:.2f}' for x in t_new)})")
    print(f"  ratio old/new: {min(t_old) / min(t_new):.1f}x; same report: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
