"""The ``.npz`` round trip keeps every answer (issue 21: weight decay was lost silently).

A HessianSet written by ``rmt.io.save_npz`` and read back by ``rmt.io.load_npz`` (or by
``rmt analyze FILE``) must be the same set: representation, factors / dense Hessians / commuting
profiles and basis, gradients, forget set, shared curvature λI or QQᵀ (weight decay), float32
storage of large sets. Checked as *exact* equality of ρ(T) (``rmt.mean_square``) and of the
critical α, in memory and from the file, over random sets of every representation; the CLI on a
few fixed sets; and the issue's instance (sklearn ``LogisticRegression(C=1)`` on breast cancer,
its L2 term as ``shared=``). Whatever cannot be stored is a ValueError at save time.
"""

from __future__ import annotations

import contextlib
import json
import math
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from hypothesis import event, given
from hypothesis import strategies as st

import rmt
import rmt.hessians
import rmt.io as rio
from rmt import HessianSet, Schedule
from rmt.testing import hessian_sets, schedules

REPO = Path(__file__).resolve().parents[1]


# ====================================================================== helpers
def _per_sample(hs: HessianSet, which: str) -> np.ndarray:
    """The arrays a set was built from, through the public accessors (no shared term yet)."""
    if hs.kind == "rank1":
        return hs.factors(which)[:, :, 0]
    if hs.kind == "factor":
        return hs.factors(which)
    if hs.kind == "dense":
        return hs.dense(which)
    return hs.eigenvalues(which)


def _rebuild(hs: HessianSet, shared, *, float32: bool = False) -> HessianSet:
    """``hs`` again, with a shared term and (factor sets) float32 storage."""
    cast = (lambda a: None if a is None else np.asarray(a, dtype=np.float32)) if float32 \
        else (lambda a: a)
    R = cast(_per_sample(hs, "retain"))
    F = cast(_per_sample(hs, "forget")) if hs.has_forget else None
    kw = {"retain_gradients": cast(hs.gradients("retain")),
          "forget_gradients": cast(hs.gradients("forget")) if hs.has_forget else None,
          "shared": shared}
    if hs.kind in ("rank1", "factor"):
        return HessianSet.from_factors(R, F, **kw)
    if hs.kind == "dense":
        return HessianSet.from_dense(R, F, **kw)
    return HessianSet.from_commuting(R, F, hs.basis, **kw)


def _same_array(a, b) -> None:
    if a is None or b is None:
        assert a is None and b is None
        return
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(a, b)


def _assert_same_set(hs: HessianSet, back: HessianSet) -> None:
    """Field by field, through the public accessors."""
    assert (back.kind, back.n_retain, back.n_forget, back.dim, back.rank) == \
        (hs.kind, hs.n_retain, hs.n_forget, hs.dim, hs.rank)
    assert back.shared_scalar == hs.shared_scalar and back.has_shared == hs.has_shared
    _same_array(back.shared_factor, hs.shared_factor)
    for w in ("retain", "forget")[: 1 + hs.has_forget]:
        _same_array(back.gradients(w), hs.gradients(w))
        _same_array(back._raw(w), hs._raw(w))  # the stored array itself, dtype included
        _same_array(back.factors(w), hs.factors(w))
        if hs.kind == "commuting":
            _same_array(back.eigenvalues(w), hs.eigenvalues(w))
    if hs.kind == "commuting":
        _same_array(back.basis, hs.basis)
    assert back.span_dim == hs.span_dim


def _answers(hs: HessianSet, sch: Schedule) -> tuple[float, float | None]:
    """(ρ(T), critical α or None when there is no forget set in the step)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        rate = float(rmt.mean_square(hs, sch).rate)
        alpha = None
        if hs.has_forget and sch.combinator.takes_forget:
            alpha = float(rmt.critical_alpha(hs, sch))
    return rate, alpha


def _assert_identical(a, b) -> None:
    """Exact equality (NaN == NaN)."""
    for x, y in zip(a, b):
        assert (x is None and y is None) or x == y or (math.isnan(x) and math.isnan(y)), (a, b)


def _save_load(hs: HessianSet, folder: str, **kw) -> HessianSet:
    return rio.load_npz(rio.save_npz(Path(folder) / "set.npz", hs, **kw))


@contextlib.contextmanager
def _large_path(on: bool):
    """Force the large-d path (float32 kept, chunked Gram) on small sets."""
    if not on:
        yield
        return
    with mock.patch.object(rmt.hessians, "GRAM_MIN_ENTRIES", 0):
        yield


def _valid_for(hs: HessianSet, sch: Schedule) -> Schedule:
    """``rmt.testing.schedules`` leaves forget_batch at None for α = 0, and then the default
    (= batch) can exceed a small forget set, which Dynamics refuses: cap it explicitly."""
    if hs.has_forget and sch.forget_batch is None and sch.batch > hs.n_forget:
        return sch.replace(forget_batch=hs.n_forget)
    return sch


@st.composite
def _sets_with_shared(draw):
    """(HessianSet, description): every representation, with/without forget set and gradients,
    no shared term / λI / QQᵀ (commuting: λ or a profile, folded), float32 on the large path."""
    hs = draw(hessian_sets(max_dim=4, max_retain=6, max_forget=4, forget=None, gradients=None))
    shared_kind = draw(st.sampled_from(["none", "scalar", "factor"]))
    scale = float(np.linalg.eigvalsh(hs.mean("retain"))[-1]) or 1.0
    c = draw(st.floats(0.01, 2.0))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    d = hs.dim
    if shared_kind == "scalar":
        shared = c * scale
    elif shared_kind == "factor" and hs.kind == "commuting":
        shared = c * scale * rng.random(d)  # a non-negative profile in the set's basis
    elif shared_kind == "factor":
        k = draw(st.integers(1, 3))
        shared = math.sqrt(c * scale / d) * rng.standard_normal((d, k))
    else:
        shared = None
    large = hs.kind in ("rank1", "factor") and draw(st.booleans())
    float32 = large and draw(st.booleans())
    return hs, shared, large, float32


# ====================================================================== the property
@given(case=_sets_with_shared(), data=st.data())
def test_round_trip_gives_identical_answers(case, data):
    base, shared, large, float32 = case
    with _large_path(large), tempfile.TemporaryDirectory() as folder:
        hs = _rebuild(base, shared, float32=float32)
        assert hs._large == large
        sch = _valid_for(hs, data.draw(schedules(hs), label="schedule"))
        back = _save_load(hs, folder)
        _assert_same_set(hs, back)
        memory = _answers(hs, sch)
        _assert_identical(memory, _answers(back, sch))
    event(f"kind={hs.kind} shared={'none' if shared is None else np.ndim(shared)} "
          f"large={large} float32={float32}")
    event(f"forget={hs.has_forget} gradients={hs.has_gradients} "
          f"critical_alpha={'yes' if memory[1] is not None else 'no'}")


@given(case=_sets_with_shared())
def test_shared_term_and_dtype_are_in_the_file(case):
    """The file itself holds the shared term (under ``shared``, or ``folded_shared`` for a
    commuting set whose profiles contain it) and the factor dtype."""
    base, shared, large, float32 = case
    with _large_path(large), tempfile.TemporaryDirectory() as folder:
        hs = _rebuild(base, shared, float32=float32)
        path = rio.save_npz(Path(folder) / "s.npz", hs)
        with np.load(path) as raw:
            keys = set(raw.files)
            if hs.kind == "commuting":
                assert "shared" not in keys and ("folded_shared" in keys) == (shared is not None)
                assert "basis" in keys
            elif shared is None:
                assert "shared" not in keys
            elif np.ndim(shared) == 0:
                assert raw["shared"].shape == () and float(raw["shared"]) == hs.shared_scalar
            else:
                np.testing.assert_array_equal(raw["shared"], hs.shared_factor)
            if float32:
                assert raw["retain_factors"].dtype == np.float32
        assert rio.load_npz(path, with_metadata=True)[1].format_version == rio.FORMAT_VERSION


# ====================================================================== refused at save time
def _two_shared_terms():
    R = np.random.default_rng(0).standard_normal((4, 3))
    return HessianSet("rank1", R, None, shared=(0.1, np.eye(3)[:, :1]),
                      _token=rmt.hessians._CONSTRUCT)


def test_what_cannot_be_stored_is_refused_at_save_time(tmp_path):
    path = tmp_path / "x.npz"
    with pytest.raises(ValueError, match="both a shared λI and a shared QQᵀ"):
        rio.save_npz(path, _two_shared_terms())
    hs = HessianSet.from_factors(np.eye(3), shared=0.1)
    hs.calibration = 2.0  # a field the layout does not know: never dropped silently
    with pytest.raises(ValueError, match=r"field\(s\) \['calibration'\]"):
        rio.save_npz(path, hs)
    hs = HessianSet.from_factors(np.eye(3), shared=0.1)
    hs._large = True  # would be rebuilt on the small path: the file would answer differently
    with pytest.raises(ValueError, match="does not survive the .npz round trip"):
        rio.save_npz(path, hs)
    assert not path.exists()


BAD_NEW_KEYS = [
    ("negative shared", {"retain_factors": np.eye(3), "shared": np.asarray(-0.1)},
     "shared must be >= 0"),
    ("shared wrong rows", {"retain_factors": np.eye(3), "shared": np.ones((2, 1))},
     "shared must have 3 rows"),
    ("shared profile", {"retain_factors": np.eye(3), "shared": np.ones(3)},
     "shared must have shape () for λ or (3, k) for a factor Q"),
    ("shared nan", {"retain_factors": np.eye(3), "shared": np.asarray(np.nan)},
     "shared contains NaN or inf"),
    ("shared with eigenvalues", {"retain_eigenvalues": np.ones((2, 3)), "shared": np.asarray(1.0)},
     "shared cannot be given with *_eigenvalues"),
    ("basis without eigenvalues", {"retain_factors": np.eye(3), "basis": np.eye(3)},
     "basis belongs to a commuting set"),
    ("eigenvalues beside factors", {"retain_eigenvalues": np.ones((2, 3)),
                                    "forget_factors": np.eye(3)}, "needs eigenvalue profiles"),
    ("negative eigenvalue", {"retain_eigenvalues": -np.ones((2, 3))},
     "retain_eigenvalues must hold non-negative eigenvalues"),
    ("basis shape", {"retain_eigenvalues": np.ones((2, 3)), "basis": np.eye(2)},
     "basis must have shape (d, d) = (3, 3)"),
    ("basis not orthogonal", {"retain_eigenvalues": np.ones((2, 3)), "basis": 2 * np.eye(3)},
     "basis must be orthogonal"),
]


@pytest.mark.parametrize("label, arrays, message", BAD_NEW_KEYS, ids=[b[0] for b in BAD_NEW_KEYS])
def test_bad_new_keys_raise_one_clear_error(tmp_path, label, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError) as err:
        rio.load_npz(path)
    assert message in str(err.value) and len(str(err.value).splitlines()) == 1
    with pytest.raises(ValueError):  # the same content is refused before writing
        rio.save_npz(tmp_path / "never.npz", arrays)
    assert not (tmp_path / "never.npz").exists()


def test_old_files_are_read_as_before(tmp_path):
    """Files without the new keys (written before them, or by hand) read as they always did."""
    rng = np.random.default_rng(4)
    G, Gf = rng.standard_normal((6, 4)), rng.standard_normal((2, 4))
    g, gf = 0.1 * rng.standard_normal((6, 4)), 0.1 * rng.standard_normal((2, 4))
    np.savez(tmp_path / "v1.npz", retain_factors=G, forget_factors=Gf, retain_gradients=g,
             forget_gradients=gf, format_version=np.asarray(1), loss=np.asarray("logistic"))
    np.savez(tmp_path / "nov.npz", retain_grads=G, forget_grads=Gf)  # legacy, no version
    H = np.einsum("na,nb->nab", G, G)
    np.savez(tmp_path / "dense.npz", retain_hessians=H, forget_factors=Gf)  # legacy mixture
    hs = HessianSet.from_factors(G, Gf, retain_gradients=g, forget_gradients=gf)
    sch = Schedule(eta=0.2, batch=2, alpha=0.2)
    back, meta = rio.load_npz(tmp_path / "v1.npz", with_metadata=True)
    assert (meta.format_version, meta.layout, meta.loss) == (1, "v1", "logistic")
    _assert_same_set(hs, back)
    _assert_identical(_answers(hs, sch), _answers(back, sch))
    back, meta = rio.load_npz(tmp_path / "nov.npz", with_metadata=True)
    assert meta.layout == "legacy" and back.kind == "rank1" and not back.has_shared
    back, meta = rio.load_npz(tmp_path / "dense.npz", with_metadata=True)
    assert meta.layout == "legacy" and back.kind == "dense"
    np.testing.assert_allclose(back.dense("retain"), H, rtol=0, atol=1e-12)


def test_stationarity_report_of_a_bridge_survives(tmp_path):
    """A report made with w* (as rmt.models.hessian_set attaches) is stored and restored; the
    w*-free s₀ that from_factors recomputes on load is not written (the file stays the plain
    layout)."""
    from rmt.stationarity import set_stationarity

    rng = np.random.default_rng(6)
    G, g = rng.standard_normal((6, 3)), 0.01 * rng.standard_normal((6, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hs = HessianSet.from_factors(G, retain_gradients=g, shared=0.1)
        plain = rio.save_npz(tmp_path / "plain.npz", hs)
        with np.load(plain) as raw:
            assert "stationarity" not in raw.files
        hs.stationarity = set_stationarity(hs, rng.standard_normal(3), source="bridge")
        back = rio.load_npz(rio.save_npz(tmp_path / "w.npz", hs))
    assert back.stationarity == hs.stationarity and back.stationarity.source == "bridge"


def test_mapping_input_with_shared(tmp_path):
    """save_npz of a mapping accepts the new keys: a weight-decay file written by hand."""
    G = np.random.default_rng(5).standard_normal((5, 3))
    back = rio.load_npz(rio.save_npz(tmp_path / "m.npz", {"retain_factors": G,
                                                          "shared": np.asarray(0.05)}))
    assert back.shared_scalar == 0.05
    _assert_same_set(HessianSet.from_factors(G, shared=0.05), back)


# ====================================================================== the CLI
def _analyze_json(path, *args) -> dict:
    """``rmt analyze PATH ... --json`` in a subprocess (the installed command's code)."""
    out = subprocess.run(
        [sys.executable, "-m", "simulations.cli", "analyze", str(path), *args, "--no-forecast",
         "--no-lyapunov", "--no-theorems", "--json"],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _fixed_sets():
    rng = np.random.default_rng(11)
    d = 5
    F, Ff = rng.standard_normal((7, d, 2)) / 2, rng.standard_normal((3, d, 2)) / 2
    g, gf = 0.1 * rng.standard_normal((7, d)), 0.1 * rng.standard_normal((3, d))
    dense = lambda A: np.einsum("nak,nbk->nab", A, A)  # noqa: E731
    lam = rng.exponential(size=(7, d)) * (rng.random((7, d)) < 0.7)
    lamf = rng.exponential(size=(3, d))
    Q = np.linalg.qr(rng.standard_normal((d, d)))[0]
    return {
        "dense + λI + gradients": HessianSet.from_dense(
            dense(F), dense(Ff), retain_gradients=g, forget_gradients=gf, shared=0.3),
        "commuting + folded profile": HessianSet.from_commuting(
            lam, lamf, Q, shared=0.2 * rng.random(d)),
    }


@pytest.mark.parametrize("name", list(_fixed_sets()))
def test_cli_reads_the_same_set(tmp_path, name):
    hs = _fixed_sets()[name]
    path = rio.save_npz(tmp_path / "c.npz", hs)
    sch = Schedule(eta=0.15, batch=2, alpha=0.25, sampling="without_replacement")
    rate, alpha = _answers(hs, sch)
    rep = _analyze_json(path, "--eta", "0.15", "--batch", "2", "--alpha", "0.25",
                        "--sampling", "without_replacement")
    (r,) = rep["results"]
    assert rep["hessians"]["kind"] == hs.kind
    assert r["rate"] == rate and r["critical"]["alpha"] == alpha


# ====================================================================== issue 21
ETA, BATCH, ALPHA, SAMPLING = 0.32, 8, 0.1, "without_replacement"


@pytest.fixture(scope="module")
def breast_cancer():
    """sklearn LogisticRegression(C=1) on standardised breast cancer, by hand: factors
    √(p(1−p))·[x, 1], regularised per-sample gradients, forget = rows 0..29, and its L2 term
    ½‖w‖² (coefficients only, not the intercept) in the mean-loss form λ = 1/(C·n) as
    C = QQᵀ with Q = √λ·[I_d; 0]."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    X, t = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    n, d = X.shape
    C = 1.0
    clf = LogisticRegression(C=C, max_iter=100_000, tol=1e-12).fit(X, t)
    w = np.r_[clf.coef_[0], clf.intercept_[0]]
    lam = 1.0 / (C * n)
    Xa = np.hstack([X, np.ones((n, 1))])
    p = 1.0 / (1.0 + np.exp(-(Xa @ w)))
    factors = np.sqrt(p * (1 - p))[:, None] * Xa
    grads = (p - t)[:, None] * Xa + lam * np.r_[w[:d], 0.0][None]  # ℓ_i + (λ/2)‖coef‖²
    assert np.linalg.norm(grads.mean(axis=0)) < 1e-6  # sklearn's minimum is ours
    Q = math.sqrt(lam) * np.vstack([np.eye(d), np.zeros((1, d))])
    forget = np.arange(30)
    retain = np.setdiff1d(np.arange(n), forget)
    hs = HessianSet.from_factors(factors[retain], factors[forget], shared=Q,
                                 retain_gradients=grads[retain], forget_gradients=grads[forget])
    plain = HessianSet.from_factors(factors[retain], factors[forget],
                                    retain_gradients=grads[retain],
                                    forget_gradients=grads[forget])
    return hs, plain


def test_issue21_breast_cancer_weight_decay_survives_the_file(tmp_path, breast_cancer):
    hs, plain = breast_cancer
    sch = Schedule(eta=ETA, batch=BATCH, alpha=ALPHA, sampling=SAMPLING)
    memory = _answers(hs, sch)
    path = rio.save_npz(tmp_path / "bc.npz", hs, loss="logistic")
    with np.load(path) as raw:
        assert "shared" in raw.files and raw["shared"].shape == (hs.dim, hs.dim - 1)
    back = rio.load_npz(path)
    _assert_same_set(hs, back)
    from_file = _answers(back, sch)
    assert from_file == memory
    assert memory[0] < 1.0  # resists (the issue: 0.99929)
    # what the file used to say without its shared term: diverges, a smaller α*
    without = _answers(plain, sch)
    assert without[0] > 1.0 and without[1] < memory[1]
    rep = _analyze_json(path, "--eta", str(ETA), "--batch", str(BATCH), "--alpha", str(ALPHA),
                        "--sampling", SAMPLING)
    (r,) = rep["results"]
    assert "shared" in rep["input"]["keys"]
    assert r["rate"] == memory[0] and r["critical"]["alpha"] == memory[1]
    assert not r["forgets"]
