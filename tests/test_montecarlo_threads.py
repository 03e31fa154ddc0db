"""Thread-count independence and compilation caching of the Monte Carlo kernels (issue 3).

Each configuration runs in a fresh interpreter because NUMBA_NUM_THREADS is read at import.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import hashlib, json, time
    import numpy as np
    t0 = time.perf_counter()
    import numba, rmt
    rng = np.random.default_rng(0)
    hs = rmt.HessianSet.from_factors(rng.standard_normal((40, 12)), rng.standard_normal((9, 12)))
    hk = rmt.ensembles.wishart(15, 5, d=30, k=1, seed=3)  # n k < d: Gram path
    sch = rmt.Schedule(eta=0.05, batch=4, alpha=0.3, sampling="without_replacement")
    alt = rmt.Schedule(eta=0.05, batch=3, alpha=0.3, sampling="bernoulli", schedule="alternating")
    t1, c1 = time.perf_counter(), time.process_time()
    out = [rmt.lyapunov(hs, sch, 300, 16, 123).per_replica]
    jit_first_call = time.perf_counter() - t1
    jit_first_call_cpu = time.process_time() - c1
    out += [
        rmt.lyapunov(hk, alt, 300, 16, 5).per_replica,
        rmt.lyapunov_spectrum(hs, sch, 200, 16, 7, k=3).per_replica,
        rmt.simulate(hk, sch, 100, 16, 9).log_norm_sq,
        rmt.moment_growth(hs, alt, [1.0, 2.0], 100, 16, 11).log_moment,
    ]
    # affine recursion (THEORY §8): drift reaching outside the span, per-replica starts
    hg = rmt.HessianSet.from_factors(rng.standard_normal((20, 30)), rng.standard_normal((6, 30)),
                                     retain_gradients=rng.standard_normal((20, 30)),
                                     forget_gradients=rng.standard_normal((6, 30)))
    starts = rng.standard_normal((16, 30))
    for s in (sch.replace(eta=0.005), alt.replace(eta=0.005)):
        res = rmt.montecarlo.affine_paths(hg, s, steps=150, replicas=16, seed=13, start=starts)
        out += [res.log_norm, res.final_state]
    h = hashlib.sha256(b"".join(np.ascontiguousarray(a).tobytes() for a in out)).hexdigest()
    print(json.dumps({"hash": h, "threads": numba.get_num_threads(),
                      "jit_first_call": jit_first_call, "jit_first_call_cpu": jit_first_call_cpu}))
    """
)


def _run(threads, cache_dir=None):
    env = dict(os.environ, NUMBA_NUM_THREADS=str(threads))
    env["RMT_NUMBA_CACHE"] = "0"  # cold compile unless a cache dir is given (cache is on by default)
    if cache_dir is not None:
        env["RMT_NUMBA_CACHE"] = "1"
        env["NUMBA_CACHE_DIR"] = str(cache_dir)
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_bit_identical_for_one_and_two_threads_with_cache(tmp_path):
    one = _run(1, tmp_path)  # compiles and writes the on-disk cache
    assert any(p.suffix == ".nbi" for p in tmp_path.rglob("*")), "RMT_NUMBA_CACHE=1 wrote no cache"
    two = _run(2, tmp_path)  # loads the cache
    assert (one["threads"], two["threads"]) == (1, 2)
    assert one["hash"] == two["hash"]
    # loading from the cache is much cheaper than compiling
    assert two["jit_first_call"] < one["jit_first_call"]


@pytest.mark.slow
def test_first_call_jit_time():
    # A cold compile of the vector kernel (no cache). CPU time, not wall clock: on a shared
    # 2-core machine the wall clock measures the neighbours' load, not the compiler. The goal
    # is < 10 s (benchmarks/results_montecarlo.md records the measured figure, ≈ 7–9 s CPU
    # under a load average of 5); this guard fails on a regression well beyond that noise.
    res = _run(1)
    assert res["jit_first_call_cpu"] < 15.0, res
