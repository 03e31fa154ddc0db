"""Benchmark: the ρ(T) solvers before/after the rewrite, measured in one run.

Run:  python benchmarks/bench_solvers.py [--quick] [--only NAME[,NAME]] [--timeout 300]
          [--threads 1] [--repeats 1] [--no-warmup] [--checks-both] [--no-checks] [--out FILE]

(the full run, all instances: ``python benchmarks/bench_solvers.py --out results_solvers.md``)

"before" is the code at git commit 15e1c7a (``--before-commit``), extracted once with
``git archive 15e1c7a | tar -x -C /tmp/rmt_before`` (``--before-dir``; the repository's index and
work tree are not touched); "after" is the working tree this script lives in. Every measurement
runs in a fresh subprocess with ``PYTHONPATH`` set to that side's tree (the child checks that
``rmt.__file__`` lies there), ``RMT_BLAS_THREADS=1`` (``--threads``) and a neutral working
directory. The child builds the instance from the same seeded code path on both sides (a hash of
its factors and schedule is compared between the sides), warms up on a tiny 5-dimensional set
(lazy imports, threadpoolctl's first scan: 10–100 ms otherwise; ``--no-warmup`` skips it) and
times ONE call on the instance, with nothing cached from another call:

* ``rmt.mean_square(hs, sch)`` — ρ(T), method, converged, bounds and ``decided`` when the result
  has that attribute;
* ``rmt.critical_eta(hs, sch)`` and ``rmt.critical_alpha(hs, sch)`` — value and the first line of
  every warning raised.

A call that runs past ``--timeout`` seconds (instance building not included) is killed and shown
as "> N s"; a call that raises is shown as an error cell with the exception's first line
(``--repeats N``: N fresh processes per cell, the fastest kept). Values agree when equal to
1e-12 relative (rates) / 1e-9 (critical values). Goals
(issue): ``critical_eta`` ≤ 1.5× and ``critical_alpha`` ≤ 6× one ρ(T) solve, same values.

Instances (``--only`` names):

* ``mlp``: digits 3 vs 8, 12 PCA features, tanh MLP 12 → 30 → 1, squared loss, trained to a
  verified minimum (as in bench_realmodels.py), 316 retain / 5 relabelled forget samples, d = 421,
  span r = 316; without replacement, B = 8, B_F = 5, α = 0, η = 0.02·2/λ_max (ρ = 1 − 5e-7);
* ``logistic``: digits 3 vs 8, 64 pixels / 16, logistic regression with weight decay 1e-3 as the
  shared curvature λI (as in bench_realmodels.py), d = 65, r = 55; same schedule (ρ = 0.99928);
* ``headline``: ``ensembles.aligned(1000, 200, 2000, 0.1, 0.1, 0.5, noise="gaussian", seed=0)``,
  η = 0.5, B = B_F = 32, α = 0.1, without replacement, r = 1200 (as in bench_busy.py);
* ``gaussian``: Gaussian factors / √d (d = 2000, n_r = 1000, n_f = 200, seed 0), η = 0.5, B = 16,
  α = 0.2, Bernoulli, r = 1200 (as in bench_busy.py);
* ``neardouble``: two decoupled blocks on disjoint coordinates (d = r = 400): block 1 = 200
  rank-one retain factors with curvatures 1 … 1e-2 (seed 0) and 50 forget factors (0.5 × a
  random 50 of the retain factors); block 2 = block 1's Hessians × (1 + ε), ε = 6e-6.
  Bernoulli, B = 16, B_F = 8, α = 0.1, η tuned just above the step-size edge, η = η*·(1 + 4e-5): ρ(T) = 1 + 5.1e-6 and the
  next eigenvalue (the other block's top) lies 7.6e-7 below it. (α = 0 is unstable at this η,
  so critical_alpha = 0 here, decided before any root-finding.)
* ``neardouble-small``: the same set with η tuned on the small-step side, η = 5.75e-4:
  ρ(T) = 1 − 5.0e-6 with the two blocks' tops 3.0e-11 apart, inside the near-1 cluster that
  small curvatures × small η put into T; critical_eta and critical_alpha (≈ 0.4994) are both
  non-trivial here.
* ``neardouble-quick``, ``neardouble-small-quick``: the same with 50-dimensional blocks (r = 100;
  η = η*·(1 + 1e-5), ρ = 1 + 5.2e-6, and η = 5.73e-4, ρ = 1 − 5.0e-6).

Independent check of the near-double instances: every J is block diagonal, T maps each diagonal
block of M through that block's marginal step — with Bernoulli sampling exactly the step of the
block alone with (η/2, B/2, B_F/2) — and T's top eigenmatrix is PSD (Krein–Rutman), so
ρ(T) = max(ρ₁, ρ₂), η* = 2·min(η*₁, η*₂) and α* = min(α*₁, α*₂). Each block (r = 200, or 50
for the quick ones; no near-double top) is solved by rmt with ``method`` = auto, arpack (ARPACK
on T, residual rule: the reference) and lanczos, plus dense where r ≤ 60 (then the reference);
its critical values by the default path (section "Independent checks"; the "before" code unless
``--checks-both``).

``--quick`` runs ``logistic``, ``neardouble-quick`` and ``neardouble-small-quick`` only (a smoke
test, about a minute).
The logistic case (r ≤ 60) is also checked against ``method="dense"`` (the r²×r² eigenvalues;
not with ``--quick``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import selectors
import shutil
import subprocess
import sys
import tempfile
import time

BEFORE_COMMIT = "15e1c7a"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
THIS = os.path.abspath(__file__)

INSTANCES = {  # name -> short description for the tables
    "mlp": "digits tanh MLP (d = 421)",
    "logistic": "digits logistic + weight decay (d = 65)",
    "headline": "aligned d = 2000 (README headline)",
    "gaussian": "Gaussian factors d = 2000",
    "neardouble": "near-double top at the η* edge, 2 blocks × 200",
    "neardouble-small": "near-double top at small η, 2 blocks × 200",
    "neardouble-quick": "near-double top at the η* edge, 2 blocks × 50",
    "neardouble-small-quick": "near-double top at small η, 2 blocks × 50",
}
FULL = ("mlp", "logistic", "headline", "gaussian", "neardouble", "neardouble-small")
QUICK = ("logistic", "neardouble-quick", "neardouble-small-quick")
CALLS = ("rate", "critical_eta", "critical_alpha")
LABEL = {"rate": "ρ(T)", "critical_eta": "critical_eta", "critical_alpha": "critical_alpha"}

# near-double instances: block size, tuned η — computed once with rmt at 15e1c7a from the blocks
# alone: at the edge η = η*·(1 + δ) with η* = 2·critical_eta(block 2 at (η/2, B/2, B_F/2)),
# δ = 4e-5 (r = 400) / 1e-5 (r = 100); at small η, bisection for max(ρ₁, ρ₂) = 1 − 5e-6
NEARDOUBLE = {"neardouble": (200, 0.166489522329),
              "neardouble-small": (200, 0.000575330553173),
              "neardouble-quick": (50, 0.650091117137),
              "neardouble-small-quick": (50, 0.000572514686025)}
ND_EPS, ND_B, ND_BF, ND_ALPHA = 6e-6, 16, 8, 0.1


# ====================================================================== child side
def _digits_model(case):
    """The two real digits models of bench_realmodels.py (same code, same seeds)."""
    import numpy as np
    import rmt
    from rmt import models as M

    wd = 0.0
    if case == "logistic":
        data = M.load_digits_binary((3, 8), flip=5, seed=0)
        model = M.LogisticRegression(data.X_train.shape[1])
        loss, y = "logistic", data.y_train
        wd = 1e-3
        X = data.X_train / 16.0
    else:  # mlp: 12 PCA features, 90 % of the digits 3 vs 8 for training
        data = M.load_digits_binary((3, 8), n_components=12, flip=5, seed=0, test_fraction=0.1)
        model = M.MLP(12, 30, 1, activation="tanh", loss="squared")
        loss, y = "squared", data.y_train.astype(float)
        X = data.X_train
    tr = M.train(model, X, y, loss, seed=0, tol=1e-7, maxiter=5000, weight_decay=wd)
    retain, forget = M.forget_set("relabelled", len(y), seed=0, flipped=data.flipped)
    hs = M.hessian_set(model, tr.w, X[retain], y[retain], X[forget], y[forget], loss)
    if wd:
        hs = rmt.HessianSet.from_factors(
            hs.factors("retain")[:, :, 0], hs.factors("forget")[:, :, 0],
            retain_gradients=hs.gradients("retain") + wd * tr.w,
            forget_gradients=hs.gradients("forget") + wd * tr.w, shared=wd)
    lam = float(np.linalg.eigvalsh(hs.mean("retain"))[-1])
    sch = rmt.Schedule(0.02 * 2 / lam, 8, alpha=0.0, sampling="without_replacement",
                       forget_batch=min(8, len(forget)))
    return hs, sch, dict(grad_norm=float(tr.grad_norm))


def _nd_block(nb, seed=0):
    """One block: nb rank-one retain factors (curvatures 1 … 1e-2 along a random basis, slightly
    perturbed) and nb/4 forget factors = half of a random subset of them."""
    import numpy as np

    rng = np.random.default_rng(seed)
    U = np.linalg.qr(rng.standard_normal((nb, nb)))[0]
    scales = np.sqrt(np.geomspace(1.0, 1e-2, nb))
    G = np.empty((nb, nb))
    for i in range(nb):
        v = U[:, i] + 0.1 * rng.standard_normal(nb) / np.sqrt(nb)
        G[i] = scales[i] * v / np.linalg.norm(v)
    G *= np.sqrt(nb)
    F = 0.5 * G[rng.choice(nb, nb // 4, replace=False)]
    return G, F


def _neardouble(name, block=None):
    """The full two-block instance, or (block = 1, 2) one block alone with its marginal schedule."""
    import numpy as np
    import rmt

    nb, eta = NEARDOUBLE[name]
    G, F = _nd_block(nb)
    s = math.sqrt(1.0 + ND_EPS)  # Hessians × (1 + ε)
    if block is not None:
        sc = 1.0 if block == 1 else s
        hs = rmt.HessianSet.from_factors(sc * G, sc * F)
        return hs, rmt.Schedule(eta / 2, ND_B // 2, alpha=ND_ALPHA, sampling="bernoulli",
                                forget_batch=ND_BF // 2)
    nf = F.shape[0]
    R = np.zeros((2 * nb, 2 * nb))
    R[:nb, :nb], R[nb:, nb:] = G, s * G
    Fo = np.zeros((2 * nf, 2 * nb))
    Fo[:nf, :nb], Fo[nf:, nb:] = F, s * F
    hs = rmt.HessianSet.from_factors(R, Fo)
    sch = rmt.Schedule(eta, ND_B, alpha=ND_ALPHA, sampling="bernoulli", forget_batch=ND_BF)
    return hs, sch


def build(name):
    import numpy as np
    import rmt

    info = {}
    if name in ("mlp", "logistic"):
        hs, sch, info = _digits_model(name)
    elif name == "headline":
        hs = rmt.ensembles.aligned(1000, 200, 2000, 0.1, 0.1, 0.5, noise="gaussian", seed=0)
        sch = rmt.Schedule(0.5, 32, alpha=0.1, sampling="without_replacement", forget_batch=32)
    elif name == "gaussian":
        rng = np.random.default_rng(0)
        d = 2000
        hs = rmt.HessianSet.from_factors(rng.standard_normal((1000, d)) / np.sqrt(d),
                                         rng.standard_normal((200, d)) / np.sqrt(d))
        sch = rmt.Schedule(0.5, 16, alpha=0.2, sampling="bernoulli")
    elif name in NEARDOUBLE:
        hs, sch = _neardouble(name)
    else:
        raise ValueError(f"unknown instance {name!r}")
    return hs, sch, info


def _fingerprint(hs, sch):
    import hashlib

    import numpy as np

    h = hashlib.sha256()
    for which in ("retain", "forget"):
        try:
            h.update(np.ascontiguousarray(hs.factors(which), dtype=np.float64).tobytes())
        except Exception as e:  # noqa: BLE001 — an instance without factors: hash what we can
            h.update(repr(e).encode())
    h.update(repr(getattr(hs, "shared_scalar", None)).encode())
    h.update(repr(sch).encode())
    return h.hexdigest()[:12]


def _first_line(e):
    msg = str(e).strip().splitlines()
    return f"{type(e).__name__}: {msg[0] if msg else ''}"


def _num(x):
    return None if x is None else float(x)


def _emit(tag, obj):
    sys.stdout.write(f"{tag} {json.dumps(obj)}\n")
    sys.stdout.flush()


def _warm_up():
    """Pay the first-call costs (lazy imports, threadpoolctl's library scan) on a tiny set, so the
    timed call measures the solver; the tiny set shares no cache with the instance."""
    import warnings

    import numpy as np
    import rmt

    rng = np.random.default_rng(12345)
    hs = rmt.HessianSet.from_factors(rng.standard_normal((6, 5)), rng.standard_normal((3, 5)))
    sch = rmt.Schedule(0.1, 2, alpha=0.1, forget_batch=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rmt.mean_square(hs, sch)
        rmt.critical_eta(hs, sch)
        rmt.critical_alpha(hs, sch)


def child(name, call, root, warm_up=True):
    out = dict(instance=name, call=call)
    phase = "import"
    try:
        import rmt
        out["rmt_file"] = rmt.__file__
        here = os.path.realpath(rmt.__file__)
        if not here.startswith(os.path.realpath(root) + os.sep):
            raise ImportError(f"rmt imported from {here}, expected under {root}")
        phase = "build"
        t0 = time.perf_counter()
        hs, sch, info = build(name)
        out.update(info, build_s=time.perf_counter() - t0, fingerprint=_fingerprint(hs, sch),
                   n_retain=int(hs.n_retain), n_forget=int(hs.n_forget), d=int(hs.dim))
        if warm_up:
            phase = "warm-up"
            _warm_up()
    except BaseException as e:  # noqa: BLE001 — report, never crash the parent
        out["error"] = f"{phase}: " + _first_line(e)
        _emit("RESULT", out)
        return
    _emit("BUILT", out)

    import resource
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t0 = time.perf_counter()
        try:
            if call == "rate":
                res = rmt.mean_square(hs, sch)
                out.update(value=float(res.rate), method=str(res.method),
                           converged=bool(res.converged),
                           bounds=[_num(b) for b in res.bounds],
                           span_dim=int(res.span_dim), null_rate=_num(res.null_rate))
                if hasattr(res, "decided"):
                    d = res.decided
                    out["decided"] = d if isinstance(d, (bool, int, float, str, type(None))) else repr(d)
            elif call == "dense":
                res = rmt.mean_square(hs, sch, method="dense")
                out.update(value=float(res.rate), method=str(res.method))
            elif call == "critical_eta":
                out["value"] = _num(rmt.critical_eta(hs, sch))
            elif call == "critical_alpha":
                out["value"] = _num(rmt.critical_alpha(hs, sch))
            elif call in ("block_rates", "block_critical"):
                blocks = [_neardouble(name, b) for b in (1, 2)]
                if call == "block_rates":
                    # every block by several solvers: ARPACK on T (residual rule) is the
                    # reference, "dense" (r²×r² eigenvalues) where the block is small enough
                    methods = ["auto", "arpack", "lanczos"]
                    if rmt.Dynamics(*blocks[0]).r <= 60:
                        methods.append("dense")
                    per = {}
                    for meth in methods:
                        try:
                            rs = [rmt.mean_square(*b, method=meth) for b in blocks]
                            per[meth] = dict(values=[float(x.rate) for x in rs],
                                             used=[str(x.method) for x in rs],
                                             bounds=[[_num(v) for v in x.bounds] for x in rs])
                        except Exception as e:  # noqa: BLE001
                            per[meth] = dict(error=_first_line(e))
                    ref = next((m for m in ("dense", "arpack", "lanczos")
                                if m in per and "values" in per[m]), None)
                    out.update(per_method=per, reference=ref, block_r=int(rmt.Dynamics(*blocks[0]).r))
                    if ref is not None:
                        out["values"] = per[ref]["values"]
                        out["value"] = max(per[ref]["values"])
                else:
                    etas = [float(rmt.critical_eta(*b)) for b in blocks]
                    alphas = [_num(rmt.critical_alpha(*b)) for b in blocks]
                    out.update(etas=etas, alphas=alphas, eta=2 * min(etas),
                               alpha=None if all(a is None for a in alphas)
                               else min(a for a in alphas if a is not None))
            else:
                raise ValueError(f"unknown call {call!r}")
        except Exception as e:  # noqa: BLE001
            out["error"] = _first_line(e)
        out["seconds"] = time.perf_counter() - t0
    try:  # after the timed call: the span reduction is cached on hs and must not be pre-paid
        out["r"] = int(rmt.Dynamics(hs, sch).r)
    except Exception:  # noqa: BLE001
        out["r"] = None
    seen = []
    for w in caught:
        line = f"{w.category.__name__}: {str(w.message).strip().splitlines()[0] if str(w.message).strip() else ''}"
        if line not in seen:
            seen.append(line)
    out["warnings"] = seen
    out["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    _emit("RESULT", out)


# ====================================================================== parent side
def prepare_before(commit, dest):
    """Extract ``commit`` into ``dest`` with git archive (no change to the repository's state)."""
    marker = os.path.join(dest, ".bench_commit")
    full = subprocess.run(["git", "-C", REPO, "rev-parse", commit], check=True,
                          capture_output=True, text=True).stdout.strip()
    if os.path.isfile(os.path.join(dest, "rmt", "__init__.py")):
        if os.path.exists(os.path.join(dest, ".git")):  # a git worktree someone made: use it
            head = subprocess.run(["git", "-C", dest, "rev-parse", "HEAD"], capture_output=True,
                                  text=True).stdout.strip()
            if head != full:
                sys.exit(f"{dest} is a git checkout at {head[:10]}, not {commit}")
            return full
        if os.path.isfile(marker) and open(marker).read().strip() == full:
            return full
    if os.path.exists(dest) and not os.path.exists(os.path.join(dest, ".git")):
        shutil.rmtree(dest)
    os.makedirs(dest, exist_ok=True)
    arch = subprocess.Popen(["git", "-C", REPO, "archive", full], stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", dest], stdin=arch.stdout, check=True)
    arch.stdout.close()
    if arch.wait() != 0:
        sys.exit(f"git archive {commit} failed")
    with open(marker, "w") as fh:
        fh.write(full + "\n")
    return full


def run_child(name, call, root, *, timeout, build_timeout, env, cwd, warm_up=True, repeats=1):
    """The fastest of ``repeats`` measurements (a failure or a timeout ends the series)."""
    best = None
    for _ in range(repeats):
        m = _run_child(name, call, root, timeout=timeout, build_timeout=build_timeout, env=env,
                       cwd=cwd, warm_up=warm_up)
        if not ok(m):
            return m
        if best is not None and m.get("value") != best.get("value"):
            m.setdefault("notes", []).append(f"repeats gave different values: {best.get('value')!r}")
        if best is None or m["seconds"] < best["seconds"]:
            best = m
    best["repeats"] = repeats
    return best


def _run_child(name, call, root, *, timeout, build_timeout, env, cwd, warm_up):
    """One measurement in a fresh subprocess; the call (not the build) is limited to ``timeout``."""
    env = dict(env, PYTHONPATH=root)
    err = tempfile.TemporaryFile(mode="w+b", dir=cwd)
    p = subprocess.Popen([sys.executable, THIS, "--child", name, call, root]
                         + ([] if warm_up else ["--no-warmup"]), cwd=cwd, env=env,
                         stdout=subprocess.PIPE, stderr=err)
    sel = selectors.DefaultSelector()
    sel.register(p.stdout, selectors.EVENT_READ)
    buf, built, result = b"", None, None
    deadline = time.monotonic() + build_timeout
    timed_out = None
    try:
        while result is None:
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = "call" if built is not None else "build"
                break
            if not sel.select(timeout=min(left, 1.0)):
                if p.poll() is not None and not sel.select(timeout=0):
                    break
                continue
            chunk = os.read(p.stdout.fileno(), 65536)
            if not chunk:  # EOF: the child exited
                break
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                tag, _, payload = line.decode(errors="replace").partition(" ")
                if tag == "BUILT":
                    built = json.loads(payload)
                    deadline = time.monotonic() + timeout
                elif tag == "RESULT":
                    result = json.loads(payload)
    finally:
        sel.close()
        if p.poll() is None and (timed_out or result is None):
            p.kill()
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        p.stdout.close()
    if result is not None:
        err.close()
        return result
    out = dict(built or {}, instance=name, call=call)
    if timed_out == "call":
        out["timed_out"] = timeout
    elif timed_out == "build":
        out["error"] = f"building the instance took > {build_timeout:.0f} s"
    else:
        err.seek(0)
        lines = [ln for ln in err.read().decode(errors="replace").strip().splitlines() if ln.strip()]
        tail = next((ln for ln in reversed(lines) if not ln.startswith(" ")), "no output")
        out["error"] = f"child exited with code {p.returncode}: {tail.strip()}"
    err.close()
    return out


# ---------------------------------------------------------------------- formatting
def fmt_time(m):
    if m is None:
        return "—"
    if "timed_out" in m:
        return f"> {m['timed_out']:g} s"
    if "error" in m or "seconds" not in m:
        return "error"
    return f"{m['seconds']:.2f}"


def fmt_value(m):
    if m is None:
        return "—"
    if "timed_out" in m:
        return "(killed)"
    if "error" in m:
        return "ERROR: " + m["error"].replace("|", "\\|")
    v = m.get("value")
    return "None" if v is None else f"{v:.12g}"


def ok(m):
    return m is not None and "error" not in m and "timed_out" not in m and "seconds" in m


def agree(call, a, b):
    """'yes' when the values agree to the solvers' precision (rates: 1e-12 relative, critical
    values: 1e-9 relative); otherwise **NO**, noting whether the two rate brackets still overlap."""
    if not (ok(a) and ok(b)):
        return "n/a"
    va, vb = a.get("value"), b.get("value")
    if va is None or vb is None:
        return "yes" if va is vb else "**NO**"
    if not (math.isfinite(va) and math.isfinite(vb)):
        return "yes" if va == vb else "**NO**"
    diff = abs(va - vb)
    rel = diff / max(abs(va), abs(vb), 1e-300) if diff else 0.0
    tol = 1e-12 if call in ("rate", "dense") else 1e-9
    if rel <= tol:
        return f"yes (Δ {diff:.1e})"
    note = ""
    ba, bb = a.get("bounds"), b.get("bounds")
    if call == "rate" and ba and bb and None not in ba + bb:
        note = ", brackets overlap" if max(ba[0], bb[0]) <= min(ba[1], bb[1]) else ", brackets disjoint"
    return f"**NO** (Δ {diff:.1e}{note})"


def in_bounds(m, ref):
    """Whether ``ref`` lies in the bracket a rate measurement reports (None: no usable bracket)."""
    bl = m.get("bounds") if ok(m) else None
    if not bl or None in bl or not all(map(math.isfinite, bl)):
        return None
    slack = 1e-14 * abs(ref)  # round-off, far below any real miss
    return bl[0] - slack <= ref <= bl[1] + slack


def speedup(a, b):
    if ok(a) and ok(b) and b["seconds"] > 0:
        return f"{a['seconds'] / b['seconds']:.2f}×"
    if a is not None and "timed_out" in a and ok(b) and b["seconds"] > 0:
        return f"> {a['timed_out'] / b['seconds']:.1f}×"
    return "—"


def ratio(m, base, goal):
    if ok(m) and ok(base) and base["seconds"] > 0:
        x = m["seconds"] / base["seconds"]
        return f"{x:.2f}× {'✓' if x <= goal else '✗'}"
    if m is not None and "timed_out" in m and ok(base) and base["seconds"] > 0:
        return f"> {m['timed_out'] / base['seconds']:.1f}× ✗"
    return "—"


def details(m):
    if m is None:
        return "not run"
    if "timed_out" in m:
        return f"killed after {m['timed_out']:g} s"
    if "error" in m:
        return "ERROR " + m["error"]
    parts = []
    if "method" in m:
        parts.append(f"method={m['method']}")
    if "converged" in m:
        parts.append(f"converged={m['converged']}")
    if m.get("bounds"):
        parts.append("bounds=[" + ", ".join("nan" if b is None else f"{b:.15g}" for b in m["bounds"]) + "]")
    if "decided" in m:
        parts.append(f"decided={m['decided']}")
    if m.get("null_rate") is not None:
        parts.append(f"null_rate={m['null_rate']:.15g}")
    parts.append(f"value={m.get('value')!r}")
    parts.append(f"peak {m.get('peak_mib', float('nan')):.0f} MiB")
    for w in m.get("warnings", []):
        parts.append(f"warning «{w}»")
    for n in m.get("notes", []):
        parts.append(f"**{n}**")
    return "; ".join(parts)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: logistic (r = 55) and the two near-double instances at r = 100")
    ap.add_argument("--only", action="append", default=[],
                    help=f"instance(s) to run, comma-separated or repeated: {', '.join(INSTANCES)}")
    ap.add_argument("--timeout", type=float, default=300.0, help="per-call timeout (s), default 300")
    ap.add_argument("--build-timeout", type=float, default=900.0,
                    help="timeout for building an instance in a child (s), default 900")
    ap.add_argument("--threads", type=int, default=1,
                    help="RMT_BLAS_THREADS for the children (default 1)")
    ap.add_argument("--before-commit", default=BEFORE_COMMIT)
    ap.add_argument("--before-dir", default="/tmp/rmt_before")
    ap.add_argument("--after-dir", default=REPO)
    ap.add_argument("--checks-both", action="store_true",
                    help="run the independent checks on both sides (default: before only)")
    ap.add_argument("--no-checks", action="store_true", help="skip the independent checks")
    ap.add_argument("--repeats", type=int, default=1,
                    help="measurements per cell, each in a fresh process; the fastest is kept")
    ap.add_argument("--no-warmup", action="store_true",
                    help="time truly cold calls (no warm-up call on a tiny set first)")
    ap.add_argument("--out", help="also write the Markdown report to this file")
    ap.add_argument("--child", nargs=3, metavar=("NAME", "CALL", "ROOT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.repeats < 1:
        ap.error("--repeats must be >= 1")
    if args.child:
        child(*args.child, warm_up=not args.no_warmup)
        return 0

    names = [n for o in args.only for n in o.split(",") if n] or list(QUICK if args.quick else FULL)
    for n in names:
        if n not in INSTANCES:
            ap.error(f"unknown instance {n!r}; choose from {', '.join(INSTANCES)}")
    full_before = prepare_before(args.before_commit, args.before_dir)
    sides = {"before": os.path.abspath(args.before_dir), "after": os.path.abspath(args.after_dir)}
    env = dict(os.environ, RMT_BLAS_THREADS=str(args.threads))
    env.pop("PYTHONPATH", None)
    workdir = tempfile.mkdtemp(prefix="bench_solvers_")

    lines = []

    def say(s=""):
        print(s, flush=True)
        lines.append(s)

    head = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", REPO, "status", "--short", "--", "rmt"],
                           capture_output=True, text=True).stdout.strip().splitlines()
    say("# ρ(T) solvers: before/after in one run\n")
    say(f"Command: `python benchmarks/bench_solvers.py {' '.join(argv if argv is not None else sys.argv[1:])}`".rstrip() + "  ")
    say(f"Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; "
        f"{os.cpu_count()} cores, load average at start {os.getloadavg()[0]:.2f}; "
        f"RMT_BLAS_THREADS={args.threads}; per-call timeout {args.timeout:.0f} s  ")
    say(f"before: {full_before[:10]} extracted in {sides['before']}  ")
    say(f"after: working tree {sides['after']} (HEAD {head}, {len(dirty)} changed path(s) under rmt/)\n")

    results = {}  # (name, side, call) -> measurement
    for name in names:
        for call in CALLS:
            for side, root in sides.items():
                m = run_child(name, call, root, timeout=args.timeout,
                              build_timeout=args.build_timeout, env=env, cwd=workdir,
                              warm_up=not args.no_warmup, repeats=args.repeats)
                results[name, side, call] = m
                print(f"  [{name} / {side} / {call}] {fmt_time(m)} s — {fmt_value(m)}",
                      file=sys.stderr, flush=True)
        if not args.no_checks:
            check_sides = sides if args.checks_both else {"before": sides["before"]}
            checks = ("block_rates", "block_critical") if name in NEARDOUBLE else \
                ("dense",) if name == "logistic" and not args.quick else ()
            for call in checks:
                for side, root in check_sides.items():
                    m = run_child(name, call, root, timeout=args.timeout,
                                  build_timeout=args.build_timeout, env=env, cwd=workdir,
                                  warm_up=not args.no_warmup)
                    results[name, side, call] = m
                    print(f"  [{name} / {side} / {call}] {fmt_time(m)} s", file=sys.stderr,
                          flush=True)

    def info(name, key):
        for side in ("before", "after"):
            for call in CALLS:
                m = results.get((name, side, call))
                if m and m.get(key) is not None:
                    return m[key]
        return None

    say("## Times and values (one call per fresh process, after a warm-up on a tiny set)\n")
    say("| instance | r | quantity | before s | after s | speed-up | before value | after value | agree |")
    say("|---|---|---|---|---|---|---|---|---|")
    for name in names:
        for call in CALLS:
            b, a = results[name, "before", call], results[name, "after", call]
            say(f"| {name} | {info(name, 'r')} | {LABEL[call]} | {fmt_time(b)} | {fmt_time(a)} | "
                f"{speedup(b, a)} | {fmt_value(b)} | {fmt_value(a)} | {agree(call, b, a)} |")

    say("\n## Critical values per ρ(T) solve (goals: critical_eta ≤ 1.5×, critical_alpha ≤ 6×)\n")
    say("| instance | r | side | ρ(T) s | critical_eta s | η / ρ | critical_alpha s | α / ρ |")
    say("|---|---|---|---|---|---|---|---|")
    for name in names:
        for side in sides:
            rt, ce, ca = (results[name, side, c] for c in CALLS)
            say(f"| {name} | {info(name, 'r')} | {side} | {fmt_time(rt)} | {fmt_time(ce)} | "
                f"{ratio(ce, rt, 1.5)} | {fmt_time(ca)} | {ratio(ca, rt, 6.0)} |")

    say("\n## Instances\n")
    for name in names:
        fps = {side: {results[name, side, c].get("fingerprint") for c in CALLS} - {None}
               for side in sides}
        allfp = fps["before"] | fps["after"]
        same = ("same instance on both sides" if len(allfp) == 1 and all(fps.values())
                else f"**instance hashes differ or missing: {fps}**")
        built = [results[name, s, c].get("build_s") for s in sides for c in CALLS]
        built = [x for x in built if x is not None]
        extra = f", training gradient norm {info(name, 'grad_norm'):.1e}" if info(name, "grad_norm") else ""
        say(f"- {name} ({INSTANCES[name]}): n_retain = {info(name, 'n_retain')}, "
            f"n_forget = {info(name, 'n_forget')}, d = {info(name, 'd')}, r = {info(name, 'r')}; "
            f"{same} (hash {'/'.join(sorted(allfp)) or '—'}); build "
            f"{min(built) if built else float('nan'):.1f} s per process{extra}")

    if not args.no_checks:
        say("\n## Independent checks\n")
        for name in names:
            for side in sides:
                if name in NEARDOUBLE:
                    br, bc = results.get((name, side, "block_rates")), results.get((name, side, "block_critical"))
                    if br is None:
                        continue
                    say(f"- {name}, blocks solved alone by the {side} code "
                        f"(block rates {fmt_time(br)} s, block critical values {fmt_time(bc)} s):")
                    if ok(br) and br.get("values"):
                        r1, r2 = br["values"]
                        for meth, pm in br["per_method"].items():
                            if "values" in pm:
                                q1, q2 = pm["values"]
                                say(f"  method={meth} ({'/'.join(sorted(set(pm['used'])))}, block r = "
                                    f"{br['block_r']}): ρ₁ = {q1:.15g}, ρ₂ = {q2:.15g}, max = "
                                    f"{max(q1, q2):.15g} (Δ vs reference {max(q1, q2) - max(r1, r2):+.1e})"
                                    + (" ← reference" if meth == br["reference"] else ""))
                            else:
                                say(f"  method={meth}: ERROR {pm['error']}")
                        say(f"  reference ({br['reference']}): ρ(T) = max(ρ₁, ρ₂) = {max(r1, r2):.15g}; "
                            f"ρ₂ − ρ₁ = {r2 - r1:+.2e}")
                        for s2 in sides:
                            full = results[name, s2, "rate"]
                            if ok(full):
                                inside = in_bounds(full, max(r1, r2))
                                say(f"  full instance, {s2}: {full['value']:.15g} "
                                    f"(Δ vs max of blocks {full['value'] - max(r1, r2):+.1e}; "
                                    f"max of blocks inside its bounds: "
                                    f"{'n/a' if inside is None else 'yes' if inside else '**NO**'})")
                    else:
                        say(f"  block rates: {details(br)}")
                    if ok(bc):
                        a = bc["alpha"]
                        say(f"  η*₁, η*₂ (block schedules) = {bc['etas'][0]:.15g}, {bc['etas'][1]:.15g} "
                            f"→ η* = 2·min = {bc['eta']:.15g}; α*₁, α*₂ = {bc['alphas']} → "
                            f"α* = {'None' if a is None else f'{a:.15g}'}")
                        for s2 in sides:
                            ce, ca = results[name, s2, "critical_eta"], results[name, s2, "critical_alpha"]
                            if ok(ce) and ce.get("value") is not None:
                                say(f"  critical_eta full, {s2}: {ce['value']:.15g} "
                                    f"(rel Δ {(ce['value'] - bc['eta']) / bc['eta']:+.1e})")
                            if ok(ca) and ca.get("value") is not None and a is not None:
                                dv = ca["value"] - a
                                say(f"  critical_alpha full, {s2}: {ca['value']:.15g} "
                                    + (f"(rel Δ {dv / a:+.1e})" if a else f"(Δ {dv:+.1e})"))
                    elif bc is not None:
                        say(f"  block critical values: {details(bc)}")
                elif name == "logistic" and (name, side, "dense") in results:
                    dn = results[name, side, "dense"]
                    if ok(dn):
                        say(f"- logistic, method='dense' ({side} code, {dn['seconds']:.2f} s): "
                            f"ρ(T) = {dn['value']:.15g}")
                        for s2 in sides:
                            full = results[name, s2, "rate"]
                            if ok(full):
                                inside = in_bounds(full, dn["value"])
                                say(f"  default solver, {s2}: {full['value']:.15g} "
                                    f"(Δ {full['value'] - dn['value']:+.1e}; dense value inside "
                                    f"its bounds: {'n/a' if inside is None else 'yes' if inside else '**NO**'})")
                    else:
                        say(f"- logistic, method='dense' ({side} code): {details(dn)}")

    say("\n## Details\n")
    for name in names:
        for call in CALLS:
            for side in sides:
                say(f"- {name} / {LABEL[call]} / {side}: {details(results[name, side, call])}")
    say(f"\nload average at end: {os.getloadavg()[0]:.2f}")

    shutil.rmtree(workdir, ignore_errors=True)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
