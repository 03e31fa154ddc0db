"""Theorem objects: interface, ≥ 500 instances per proven theorem, counterexample search."""

import dataclasses
import itertools
import math

import numpy as np
import pytest
import sympy as sp
from hypothesis import HealthCheck, given, settings

import rmt
from rmt import HessianSet, Schedule
from rmt import testing as rt
from theory import check_all, get_theorem, search_counterexample, theorems
from theory import examples as ex
from theory.counterexample import theorem_instances
from theory.theorems import Instance

PROVEN = [t.name for t in theorems("proven")]
#: proven statements whose 500-instance run is in the slow set (a 60-instance run stays default)
SLOW_500 = ("unlearning-retain-noise-single-sample", "unlearning-forget-noise-single-sample",
            "weyl-convergence")


def test_catalogue_interface():
    ths = theorems()
    names = [t.name for t in ths]
    assert len(set(names)) == len(names)
    for must in ("dexter-thm1", "dexter-thm2-construction", "wu-ma-e-sharpness",
                 "unlearning-retain-noise", "unlearning-forget-noise", "unlearning-mean-escape",
                 "sam-divergence", "naive-mean-stability"):
        assert must in names
    for t in ths:
        assert t.conclusion in ("diverges", "converges")
        assert t.status in ("proven", "conjecture")
        assert isinstance(t.expression, (sp.Basic, tuple, list))
        assert isinstance(t.latex, str) and t.latex
        assert t.source
    assert len(theorems("conjecture")) >= 4
    assert sum("paper" in n for n in names) >= 2


def test_check_result_is_a_frozen_dataclass():
    import dataclasses

    e = ex.near_optimal_construction()
    res = get_theorem("dexter-thm1").check(e.hs, e.schedule)
    for f in ("name", "applies", "conclusion", "threshold", "exact_critical", "rate", "held",
              "tightness"):
        assert hasattr(res, f)
    assert res.held is None and res.applies is False  # η = 0.9 < √2: does not apply
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.rate = 0.0


def test_bad_input_names_the_argument():
    th = get_theorem("dexter-thm1")
    with pytest.raises(TypeError, match="hs"):
        th.applies(np.eye(2), Schedule(eta=1.0, batch=1))
    with pytest.raises(TypeError, match="schedule"):
        th.check(ex.orthogonal_noise_blowup().hs, {"eta": 1.0})
    with pytest.raises(ValueError, match="status"):
        theorems("maybe")
    with pytest.raises(ValueError, match="name"):
        get_theorem("no-such-theorem")
    with pytest.raises(ValueError, match="conclusion"):
        search_counterexample(lambda h, s: True, "explodes")
    with pytest.raises(TypeError, match="hypothesis"):
        search_counterexample("not callable", "diverges")
    with pytest.raises(ValueError, match="max_examples"):
        search_counterexample(lambda h, s: True, "diverges", max_examples=0)
    with pytest.raises(ValueError, match="seed"):
        search_counterexample(lambda h, s: True, "diverges", seed=-1)


# ---------------------------------------------------------------------- worked examples
def test_near_optimal_construction_is_exact():
    e = ex.near_optimal_construction()
    th = get_theorem("dexter-thm2-construction")
    res = th.check(e.hs, e.schedule)
    assert res.applies and res.held
    assert res.threshold == pytest.approx(e.expected["critical_eta"], rel=1e-12)
    assert res.exact_critical == pytest.approx(e.expected["critical_eta"], rel=1e-9)
    assert res.tightness == pytest.approx(1.0, rel=1e-9)
    assert res.rate == pytest.approx(e.expected["rate"], rel=1e-12)
    thm1 = get_theorem("dexter-thm1")
    assert thm1.threshold(e.hs, e.schedule) == pytest.approx(e.expected["dexter_thm1_eta"])
    assert not thm1.applies(e.hs, e.schedule)  # η = 0.9 < √2


def test_orthogonal_blowup_refutes_naive_statement_by_hand():
    e = ex.orthogonal_noise_blowup()
    naive = get_theorem("naive-mean-stability")
    res = naive.check(e.hs, e.schedule)
    assert res.applies and res.held is False
    assert res.rate == pytest.approx(e.expected["rate"], rel=1e-12)
    assert res.exact_critical == pytest.approx(e.expected["critical_eta"], rel=1e-9)
    # the proven single-sample statement applies here and holds: n/(L√(n/B−1)) = 4/(4√3)
    single = get_theorem("dexter-thm1-single-sample").check(e.hs, e.schedule)
    assert single.threshold == pytest.approx(1 / math.sqrt(3), rel=1e-12)
    assert single.applies and single.held


def test_mean_escape_example():
    e = ex.unlearning_mean_escape_example()
    res = get_theorem("unlearning-mean-escape").check(e.hs, e.schedule)
    assert res.threshold == 0.0 and res.applies and res.held
    assert res.exact_critical == 0.0 and res.tightness == 1.0
    assert res.rate == pytest.approx(e.expected["rate"], rel=1e-12)


# ---------------------------------------------------------------------- regression findings
@pytest.mark.parametrize("example, theorem, side", [
    ("wu-ma-e-counterexample", "wu-ma-e-nonuniformity", "below"),
    ("scheme-analogue-counterexample", "unlearning-retain-noise-scheme-analogue", "below"),
    ("coherence-resistance-counterexample", "paper-coherence-resistance", "above"),
    ("orthogonal-noise-blowup", "naive-mean-stability", "above"),
    ("coherence-sum-counterexample", "paper-coherence-sum", "below"),
])
def test_regression_counterexamples(example, theorem, side):
    e = ex.all_examples()[example]
    th = get_theorem(theorem)
    assert th.status == "conjecture"
    assert th.applies(e.hs, e.schedule)
    rate = rmt.mean_square_rate(e.hs, e.schedule)
    if side == "below":
        assert rate < 1 - 1e-3
    else:
        assert rate > 1 + 1e-3
    assert th.check(e.hs, e.schedule, critical=False).held is False


def test_wu_ma_e_counterexample_is_genuine():
    """Independent check by enumerating the without-replacement batches (no rmt operator)."""
    e = ex.wu_ma_e_counterexample()
    H = e.hs.dense("retain")
    n, d, _ = H.shape
    T = np.zeros((d * d, d * d))
    for i in range(n):  # B = 1 without replacement: each sample with probability 1/n
        J = np.eye(d) - e.schedule.eta * H[i]
        T += np.kron(J, J) / n
    assert np.max(np.abs(np.linalg.eigvals(T))) < 0.95
    Hb = H.mean(0)
    C = np.einsum("nab,nbc->ac", H, H) / n - Hb @ Hb
    s = math.sqrt(np.linalg.eigvalsh(C)[-1])
    # the literal condition: s > (1/η)√(B(n−1)/(n−B)), while η λ_max(H̄) < 2
    assert e.schedule.eta * s >= math.sqrt((n - 1) / (n - 1)) * (1 - 1e-12)
    assert e.schedule.eta * np.linalg.eigvalsh(Hb)[-1] < 2


def test_coherence_sum_counterexample_refutes_candidate_a():
    """Candidate A (§5.5): η_A = 14.853 yet ρ(T) = 0.907 at η = 14.8532 (docs/theory.md, findings).

    ρ(T) is re-derived by enumerating all 2⁵ Bernoulli indicator patterns (no rmt operator).
    """
    e = ex.coherence_sum_counterexample()
    th = get_theorem("paper-coherence-sum")
    assert th.status == "conjecture" and "Refuted" in th.notes
    res = th.check(e.hs, e.schedule)
    assert res.applies and res.held is False
    assert res.threshold == pytest.approx(e.expected["threshold"], rel=1e-12)
    assert res.threshold <= e.schedule.eta
    assert res.rate == pytest.approx(e.expected["rate"], rel=1e-6)
    assert res.exact_critical == pytest.approx(e.expected["critical_eta"], rel=1e-9)
    assert res.tightness < 1  # claims divergence below the exact edge
    assert not res.forgets and res.verdict == rmt.verdict.RESISTS
    # independent: E[J⊗J] over the 2^5 indicator patterns (retain p = 1/2, forget p = 1/3)
    R = np.array([[0.35, -0.06], [0.05, 0.28]])  # the example's factors, as in docs/theory.md
    F = np.array([[-0.5, 0.1], [0.01, 0.0], [1.2, 7.0]])
    HR, HF = np.einsum("na,nb->nab", R, R), np.einsum("na,nb->nab", F, F)
    np.testing.assert_allclose(e.hs.dense("forget"), HF, rtol=0, atol=1e-15)
    eta, a = e.schedule.eta, e.schedule.alpha
    T = np.zeros((4, 4))
    for xr in itertools.product((0, 1), repeat=2):
        for xf in itertools.product((0, 1), repeat=3):
            p = 0.25 * np.prod([1 / 3 if x else 2 / 3 for x in xf])
            J = (np.eye(2) - eta * (1 - a) * np.tensordot(xr, HR, 1)
                 + eta * a * np.tensordot(xf, HF, 1))
            T += p * np.kron(J, J)
    assert np.max(np.abs(np.linalg.eigvals(T))) == pytest.approx(res.rate, rel=1e-10)
    # the candidate sums the two proven single-set bounds, each of which is sound here
    for name in ("unlearning-retain-noise", "unlearning-forget-noise"):
        assert get_theorem(name).threshold(e.hs, e.schedule) >= res.exact_critical


def test_theorems_accept_dynamics_and_speak_the_verdict_vocabulary():
    e = ex.orthogonal_noise_blowup()
    dyn = rmt.Dynamics(e.hs, e.schedule)
    th = get_theorem("naive-mean-stability")
    a, b = th.check(dyn), th.check(e.hs, e.schedule)
    # η*_exact comes from an iterative solver (rtol 1e-10): equal up to its round-off
    assert a == dataclasses.replace(b, exact_critical=a.exact_critical, tightness=a.tightness)
    assert a.exact_critical == pytest.approx(b.exact_critical, rel=1e-12)
    assert th.applies(dyn) and th.threshold(dyn) == th.threshold(e.hs, e.schedule)
    assert Instance(dyn).dyn is dyn
    assert [c.name for c in check_all(dyn, thms=theorems())] == [t.name for t in theorems()]
    assert a.forgets is True and a.verdict == rmt.verdict.FORGETS
    assert a.notion == rmt.verdict.MEAN_SQUARE
    with pytest.raises(TypeError, match="not both"):
        th.check(dyn, e.schedule)


# ---------------------------------------------------------------------- ≥ 500 instances each
def _holds_on_instances(name, count):
    th = get_theorem(name)
    seen = []

    @settings(max_examples=count, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(theorem_instances(th))
    def run(pair):
        inst = Instance(*pair)
        assert th.applies(inst)
        rate = inst.rate
        seen.append(rate)
        assert th.holds_for_rate(rate), (pair, rate, th.threshold(inst))

    run()
    assert len(seen) >= count


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_500 else n
                                  for n in PROVEN])
def test_proven_theorem_holds_on_500_instances(name):
    _holds_on_instances(name, 500)


@pytest.mark.parametrize("name", SLOW_500)
def test_new_proven_theorem_holds_on_60_instances(name):
    _holds_on_instances(name, 60)


@settings(max_examples=150, deadline=None, database=None, derandomize=True)
@given(rt.instances(schedule_kinds=("summed", "alternating", "sam")))
def test_no_proven_theorem_fails_on_generic_instances(pair):
    for res in check_all(*pair, theorems("proven"), critical=False):
        assert res.held is not False, res


@settings(max_examples=40, deadline=None, database=None, derandomize=True)
@given(rt.instances(schedule_kinds=("summed",)))
def test_divergence_bounds_are_never_below_the_exact_edge(pair):
    """Tightness ≥ 1 for proven divergence statements (η_thm ≥ η*_exact)."""
    inst = Instance(*pair)
    for th in theorems("proven"):
        if th.conclusion != "diverges" or not th.structural(inst):
            continue
        res = th.check(inst)
        assert res.tightness >= 1 - 1e-7, res


# ---------------------------------------------------------------------- counterexample search
def _naive_hypothesis(hs, sch):
    """"η·λ_max(D) < 2 and D ≻ 0" (summed): the naive convergence statement."""
    if sch.schedule != "summed":
        return False
    lo, hi = rmt.mixed_hessian_extremes(hs, sch.alpha)
    scale = max(abs(lo), abs(hi))
    return lo > 1e-10 * scale and sch.eta * hi < 2


def test_search_refutes_the_naive_statement_within_300_examples():
    hypothesis = _naive_hypothesis
    ce = search_counterexample(hypothesis, "converges", max_examples=300, seed=0)
    assert ce is not None
    assert hypothesis(ce.hs, ce.schedule)
    assert ce.rate > 1
    assert rmt.mean_square_rate(ce.hs, ce.schedule) == pytest.approx(ce.rate)
    assert ce.forgets and ce.verdict == rmt.verdict.FORGETS
    assert ce.notion == rmt.verdict.MEAN_SQUARE


def test_a_found_counterexample_carries_a_certificate():
    # the refutation is proven in exact arithmetic, not only observed by the eigen-solver
    hypothesis = _naive_hypothesis
    ce = search_counterexample(hypothesis, "converges", max_examples=300, seed=0)
    assert ce is not None and ce.certificate is not None, ce.certificate_note
    ok, why = ce.certificate.verify()
    assert ok and ce.certificate.claim == "rho >= c" and float(ce.certificate.c) > 1, why


def test_search_does_not_refute_a_proven_theorem():
    th = get_theorem("dexter-thm1-single-sample")
    assert search_counterexample(th.applies, th.conclusion, max_examples=200, seed=0,
                                 strategy=theorem_instances(th)) is None
    th = get_theorem("unlearning-mean-escape")
    assert search_counterexample(th.applies, th.conclusion, max_examples=200, seed=1) is None


def test_search_is_reproducible():
    th = get_theorem("naive-mean-stability")
    a = search_counterexample(th.applies, th.conclusion, max_examples=300, seed=0)
    b = search_counterexample(th.applies, th.conclusion, max_examples=300, seed=0)
    assert a is not None and b is not None
    assert a.rate == b.rate and a.schedule == b.schedule


def test_search_finds_wu_ma_e_counterexample():
    th = get_theorem("wu-ma-e-nonuniformity")
    ce = search_counterexample(th.applies, th.conclusion, max_examples=300, seed=0,
                               strategy=theorem_instances(th))
    assert ce is not None and ce.rate < 1


# ---------------------------------------------------------------------- strategies
@settings(max_examples=60, deadline=None, database=None, derandomize=True)
@given(rt.hessian_sets())
def test_hessian_sets_are_valid_psd(hs):
    assert isinstance(hs, HessianSet)
    for w in (("retain", "forget") if hs.has_forget else ("retain",)):
        lam = np.linalg.eigvalsh(hs.dense(w))
        assert lam.min() >= -1e-10 * max(1.0, lam.max())


def test_alignment_controls_coherence():
    for kind in ("rank1", "factor", "dense"):
        same = rt.build_hessian_set(kind, 3, 5, 0, 1.0, 0.0, 0.0, seed=1, rank=1)
        assert rmt.coherence(same).sigma == pytest.approx(5.0, rel=1e-9)
    low = [rmt.coherence(rt.build_hessian_set("rank1", 6, 5, 0, 0.0, 0, 0, seed=s)).sigma
           for s in range(5)]
    high = [rmt.coherence(rt.build_hessian_set("rank1", 6, 5, 0, 0.9, 0, 0, seed=s)).sigma
            for s in range(5)]
    assert max(low) < min(high)
    cons = rt.build_hessian_set("construction", 2, 6, 0, 0.5, 0, 0, seed=0)
    assert rmt.coherence(cons).sigma == pytest.approx(3.0, rel=1e-12)


def test_strategy_arguments_are_validated():
    with pytest.raises(ValueError, match="kinds"):
        rt.hessian_sets(kinds=("banana",))
    with pytest.raises(ValueError, match="alphas"):
        rt.schedules(alphas="some")
    with pytest.raises(ValueError, match="eta_range"):
        rt.instances(eta_range=(0.0, 1.0))
    with pytest.raises(TypeError, match="hs"):
        rt.schedules(hs="not a set")
    with pytest.raises(ValueError, match="kind"):
        rt.build_hessian_set("banana", 2, 2, 0, 0, 0, 0, 0)
    with pytest.raises(ValueError, match="within_retain"):
        rt.build_hessian_set("rank1", 2, 2, 0, 1.5, 0, 0, 0)
    with pytest.raises(ValueError, match="between"):
        rt.build_hessian_set("rank1", 2, 2, 1, 0.5, 0.5, 2.0, 0)
    with pytest.raises(TypeError, match="n_retain"):
        rt.build_hessian_set("rank1", 2, 2.5, 0, 0, 0, 0, 0)


@settings(max_examples=40, deadline=None, database=None, derandomize=True)
@given(rt.dynamics(gradients=None, schedule_kinds=("summed", "alternating", "sam")))
def test_dynamics_strategy(dyn):
    assert isinstance(dyn, rmt.Dynamics) and dyn.r > 0
    assert dyn.has_drift == dyn.hs.has_gradients
    # the curvature scale puts η·max_S(|s_S|/η)λ_max(H̄_S) in the strategy's eta_range
    t = max(abs(term.weight) * np.linalg.eigvalsh(term.mean)[-1] for term in dyn.terms)
    assert 0.02 * (1 - 1e-12) <= t <= 3.0 * (1 + 1e-12)


@settings(max_examples=30, deadline=None, database=None, derandomize=True)
@given(rt.hessian_sets(gradients=True))
def test_hessian_sets_with_gradients(hs):
    for w in (("retain", "forget") if hs.has_forget else ("retain",)):
        g = hs.gradients(w)
        assert g is not None and g.shape == (hs.size(w), hs.dim) and np.all(np.isfinite(g))


def test_gradients_do_not_change_the_hessians():
    for kind in rt.KINDS:
        a = rt.build_hessian_set(kind, 3, 4, 2, 0.5, 0.3, 0.2, seed=7, spread=0.5)
        b = rt.build_hessian_set(kind, 3, 4, 2, 0.5, 0.3, 0.2, seed=7, spread=0.5, gradients=True)
        assert not a.has_gradients and b.has_gradients and b.kind == a.kind
        for w in ("retain", "forget"):
            np.testing.assert_array_equal(a.dense(w), b.dense(w))
    with pytest.raises(ValueError, match="gradients"):
        rt.hessian_sets(gradients="yes")
    with pytest.raises(TypeError, match="gradients"):
        rt.build_hessian_set("rank1", 2, 2, 0, 0, 0, 0, 0, gradients=1)


def test_register_profiles():
    from hypothesis import settings as hs_settings

    rt.register_profiles()
    assert hs_settings.get_profile("ci").deadline is None
    assert hs_settings.get_profile("dev").deadline is None


# ---------------------------------------------------------------------- real models: matrix-free, reasons, sharing
def _wide_set(r, n, seed=0, nf=4):
    """A rank-one set spanning R^r (r × n Gaussian factors) with a forget set."""
    rng = np.random.default_rng(seed)
    return HessianSet.from_factors(rng.standard_normal((n, r)) / np.sqrt(r),
                                   rng.standard_normal((nf, r)) / np.sqrt(r))


def _no_dense(monkeypatch):
    """Make every r²×r² Kronecker construction fail."""
    from rmt.dynamics import SetTerm
    from rmt.meansquare import MeanSquareOperator

    def refuse(*a, **k):
        raise AssertionError("a dense r²×r² matrix was built")

    monkeypatch.setattr(SetTerm, "kron_noise", refuse)
    monkeypatch.setattr(MeanSquareOperator, "matrix", refuse)


def test_noise_operator_is_matrix_free_above_kron_max_span(monkeypatch):
    from theory.theorems import KRON_MAX_SPAN, noise_operator_radius

    r, n, nf, B = 20, 30, 4, 3
    hs = _wide_set(r, n, nf=nf)
    sch = Schedule(eta=0.3, batch=B, alpha=0.2, sampling="without_replacement", forget_batch=2)
    dyn = rmt.Dynamics(hs, sch)
    assert dyn.r == r > KRON_MAX_SPAN
    # independent dense reference: (1−α)²N_R + α²N_F from THEORY §2.1 (without replacement)
    U = dyn.basis
    K = np.zeros((r * r, r * r))
    for which, w, nS, BS in (("retain", 0.8, n, B), ("forget", 0.2, nf, 2)):
        H = np.einsum("ia,na,nb,jb->nij", U.T, hs.factors(which)[:, :, 0],
                      hs.factors(which)[:, :, 0], U.T)
        c = (nS - BS) / (BS * (nS - 1))
        Hb = H.mean(0)
        K += w**2 * c * (sum(np.kron(h, h) for h in H) / nS - np.kron(Hb, Hb))
    want = np.linalg.eigvalsh(0.5 * (K + K.T))[-1]
    _no_dense(monkeypatch)
    got = noise_operator_radius(Instance(dyn))
    assert got == pytest.approx(want, rel=1e-9)
    res = get_theorem("noise-operator-divergence").check(dyn, critical=False)
    assert res.threshold == pytest.approx(1 / np.sqrt(want), rel=1e-9)
    # the literal Wu–Ma–E s on the factor path (SGD, without replacement) matches the dense sum
    from theory.thresholds import _nonuniformity_s

    sgd = Instance(hs, Schedule(eta=0.3, batch=B, sampling="without_replacement"))
    H = sgd.term("retain").hessians()
    C = np.einsum("nab,nbc->ac", H, H) / n - H.mean(0) @ H.mean(0)
    assert _nonuniformity_s(sgd) == pytest.approx(np.sqrt(np.linalg.eigvalsh(C)[-1]), rel=1e-10)


@pytest.mark.slow
def test_check_all_at_r_300_runs_in_bounded_memory(monkeypatch):
    import tracemalloc

    hs = _wide_set(300, 400, seed=1, nf=20)
    sch = Schedule(eta=0.05, batch=16, alpha=0.1, sampling="without_replacement", forget_batch=8)
    _no_dense(monkeypatch)
    tracemalloc.start()
    try:
        res = check_all(hs, sch, critical=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 * 1024**3, peak  # the dense Kronecker matrix alone would be 60 GiB
    assert all(c.held is not False for c in res if c.status == "proven")


def test_instance_uses_the_values_it_is_given(monkeypatch):
    e = ex.orthogonal_noise_blowup()
    dyn = rmt.Dynamics(e.hs, e.schedule)
    rate, crit = rmt.mean_square_rate(dyn), rmt.critical_eta(dyn)

    def refuse(*a, **k):
        raise AssertionError("recomputed")

    monkeypatch.setattr(rmt, "mean_square_rate", refuse)
    monkeypatch.setattr(rmt, "critical_eta", refuse)
    monkeypatch.setattr(rmt, "coherence", refuse)
    from rmt.coherence import coherence as _coh  # the module's function (rmt.coherence is patched)

    coh = _coh(e.hs)
    checks = check_all(dyn, rate=rate, exact_critical=crit, coherence=coh)
    naive = next(c for c in checks if c.name == "naive-mean-stability")
    assert naive.rate == rate and naive.exact_critical == crit and naive.held is False
    with pytest.raises(TypeError, match="rate must be a real number"):
        Instance(dyn, rate="fast")
    with pytest.raises(TypeError, match="coherence must be an rmt.CoherenceResult"):
        Instance(dyn, coherence=1.0)


def test_reasons_name_the_failed_hypothesis_and_the_analogue():
    hs = _wide_set(4, 8)
    wor = Schedule(eta=0.01, batch=2, alpha=0.1, sampling="without_replacement")
    r = get_theorem("dexter-thm1").check(hs, wor)
    assert not r.applies and r.held is None
    assert "plain SGD" in r.reason and "(got alpha=0.1" in r.reason
    assert "Bernoulli sampling (got sampling='without_replacement')" in r.reason
    assert "unlearning-retain-noise" in r.reason and r.analogue == get_theorem("dexter-thm1").analogue
    # structural hypotheses hold, η below the threshold: says so with both numbers
    r = get_theorem("unlearning-retain-noise").check(hs, wor)
    assert not r.applies and f"η = {0.01:.6g} < η_thm = {r.threshold:.6g}" in r.reason
    # a non-scheme hypothesis (the forget set does not enter) does not advertise an analogue
    r = get_theorem("unlearning-forget-noise").check(hs, wor.replace(alpha=0.0))
    assert "the forget set enters the step" in r.reason and "—" not in r.reason
    # applies: says why
    big = wor.replace(eta=50.0)
    r = get_theorem("unlearning-mean-escape").check(hs, big)
    assert r.applies and r.reason.startswith("hypotheses hold and η = 50")


@settings(max_examples=15, deadline=None, database=None, derandomize=True)
@given(rt.instances(schedule_kinds=("summed", "alternating", "sam")))
def test_applies_only_where_every_hypothesis_holds(pair):
    inst = Instance(*pair)
    for th in theorems():
        failed = [h.text for h in th.hypotheses if h.failure(inst) is not None]
        if th.structural(inst):
            assert failed == [], th.name
            continue
        assert failed and not th.applies(inst), th.name
        why = th.why(inst)
        assert why.startswith("hypothesis not met") and all(t in why for t in failed), why


def test_real_unlearning_is_covered_by_scheme_aware_statements():
    """Sampling without replacement, α > 0: the proven statements that cover every scheme apply
    structurally; the Bernoulli-only ones do not, and say where the scheme is covered."""
    hs = _wide_set(6, 12)
    sch = Schedule(eta=0.5, batch=3, alpha=0.2, sampling="without_replacement", forget_batch=2)
    inst = Instance(hs, sch)
    covered = {t.name for t in theorems("proven") if t.structural(inst)}
    assert {"noise-operator-divergence", "unlearning-retain-noise", "unlearning-forget-noise",
            "unlearning-retain-noise-single-sample", "unlearning-forget-noise-single-sample",
            "unlearning-mean-escape"} <= covered
    for name in ("dexter-thm1", "dexter-thm1-single-sample", "sam-divergence"):
        assert name not in covered
        assert "sampling='without_replacement'" in get_theorem(name).why(inst)
    # the single-sample form is never weaker than the coherence form (L ≥ nλ̄/σ)
    for which in ("retain", "forget"):
        single = get_theorem(f"unlearning-{which}-noise-single-sample").threshold(inst)
        coh = get_theorem(f"unlearning-{which}-noise").threshold(inst)
        assert single <= coh * (1 + 1e-12)


def test_check_all_includes_affine_theorems_and_tolerates_their_absence(monkeypatch):
    import sys

    from theory.theorems import extra_theorems

    e = ex.orthogonal_noise_blowup()
    names = [c.name for c in check_all(e.hs, e.schedule, critical=False)]
    try:
        from theory.affine import AFFINE_THEOREMS
    except ImportError:
        AFFINE_THEOREMS = []
    assert names == [t.name for t in theorems()] + [t.name for t in AFFINE_THEOREMS]
    monkeypatch.setitem(sys.modules, "theory.affine", None)  # as if the module did not exist
    assert extra_theorems() == []
    assert [c.name for c in check_all(e.hs, e.schedule, critical=False)] == \
        [t.name for t in theorems()]


def test_threshold_cache_reproduces_the_derivations(tmp_path, monkeypatch):
    """Thresholds are lambdified from a disk cache of the sympy expressions in later processes:
    the same numpy code as the derivation's own function, and the factory is not called."""
    import functools
    import importlib
    import inspect

    from theory import derivations as dv

    T = importlib.import_module("theory.thresholds")
    monkeypatch.setenv("RMT_CACHE_DIR", str(tmp_path))
    cases = [(dv.unlearning_noise_condition, ("without_replacement", "retain", "single")),
             (dv.dexter_thm1, ()), (dv.noise_operator_threshold, ())]
    monkeypatch.setattr(T, "_FUNCS", {})
    monkeypatch.setattr(T, "_DISK", None)
    for f, a in cases:
        T._fn(f, *a)
    assert T._cache_file().is_file() and T._cache_file().parent == tmp_path
    monkeypatch.setattr(T, "_FUNCS", {})
    monkeypatch.setattr(T, "_DISK", None)
    called = []

    def spy(f):
        @functools.wraps(f)
        def inner(*a):
            called.append(f.__name__)
            return f(*a)
        return inner

    for f, a in cases:
        g = T._fn(spy(f), *a)
        assert inspect.getsource(g) == inspect.getsource(f(*a).function)
    assert called == []
    # a corrupt cache file is ignored (derived again)
    T._cache_file().write_text("{not json", encoding="utf-8")
    monkeypatch.setattr(T, "_FUNCS", {})
    monkeypatch.setattr(T, "_DISK", None)
    assert T._fn(spy(dv.dexter_thm1))(1.0, 2.0, 7, 2) == dv.dexter_thm1().function(1.0, 2.0, 7, 2)
    assert called == ["dexter_thm1"]


@settings(max_examples=25, deadline=None, database=None, derandomize=True)
@given(rt.instances(schedule_kinds=("summed",)))
def test_weyl_convergence_bound_is_never_above_the_exact_edge(pair):
    """Tightness ≤ 1 for the proven convergence statement (η_thm ≤ η*_exact)."""
    th = get_theorem("weyl-convergence")
    inst = Instance(*pair)
    if th.structural(inst):
        assert th.check(inst).tightness <= 1 + 1e-7


def test_weyl_convergence_certifies_sgd_on_a_wide_set(monkeypatch):
    """r = 20 > KRON_MAX_SPAN, without replacement: the statement applies below its threshold,
    holds, and its threshold lies below the exact critical step size."""
    hs = _wide_set(20, 40, seed=3)
    sch = Schedule(eta=0.01, batch=4, sampling="without_replacement")
    th = get_theorem("weyl-convergence")
    _no_dense(monkeypatch)
    res = th.check(hs, sch)
    assert res.threshold > sch.eta and res.applies and res.held
    assert res.rate <= 1 and res.tightness <= 1 + 1e-9
    over = th.check(hs, sch.replace(eta=2 * res.threshold))
    assert not over.applies and "convergence condition is not met" in over.reason
