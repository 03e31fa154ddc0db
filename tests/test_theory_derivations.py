"""Sympy derivations: closed forms vs the numeric operator, and the limits of issue 4."""

import math

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings

import rmt
from rmt import HessianSet, Schedule
from rmt import testing as rt
from theory import closed_forms as cforms
from theory import derivations as dv
from theory import examples as ex

S = dv.SYMBOLS


# ---------------------------------------------------------------------- sampling coefficients
@pytest.mark.parametrize(
    "sampling, c_hand, e_hand",
    [
        # hand-derived from THEORY §2.1 table: (c, e) at n = 7, B = 3
        ("bernoulli", (7 - 3) / (3 * 7), 0.0),
        ("with_replacement", 1 / 3, 1 / 3),
        ("without_replacement", (7 - 3) / (3 * 6), (7 - 3) / (3 * 6)),
    ],
)
def test_sampling_coefficients_match_table(sampling, c_hand, e_hand):
    d = dv.sampling_coefficients(sampling)
    c, e = d.function(7, 3)
    assert c == pytest.approx(c_hand, rel=1e-14)
    assert e == pytest.approx(e_hand, rel=1e-14, abs=1e-300)
    # and the foundation's table agrees with the derivation from indicator moments
    assert rmt.noise_coefficients(sampling, 7, 3) == pytest.approx((c_hand, e_hand), abs=1e-15)


def test_sampling_coefficients_reject_unknown_scheme():
    with pytest.raises(ValueError, match="sampling"):
        dv.sampling_coefficients("poisson")


def test_derivation_objects_carry_expression_function_latex():
    d = dv.dexter_thm1()
    assert isinstance(d.expression, sp.Expr)
    assert "sigma" in d.latex
    assert len(d.steps) >= 2
    # η_thm = σ/(λ̄√(n/B − 1)) evaluated by hand at λ̄ = 2, σ = 3, n = 10, B = 2
    assert d(2.0, 3.0, 10, 2) == pytest.approx(3.0 / (2.0 * 2.0), rel=1e-14)


# ---------------------------------------------------------------------- closed forms = operator
def _factor_copy(hs):
    """Same Hessians as a factor-backed (non-commuting) set: the numeric operator path."""
    return HessianSet.from_factors(hs.factors("retain"),
                                   hs.factors("forget") if hs.has_forget else None)


@settings(max_examples=150, deadline=None, database=None, derandomize=True)
@given(rt.instances(kinds=("commuting",)))
def test_closed_form_rate_equals_operator(pair):
    hs, sch = pair
    exact = rmt.mean_square_rate(_factor_copy(hs), sch, method="dense")
    assert cforms.closed_form_rate(hs, sch) == pytest.approx(exact, rel=1e-10, abs=1e-12)


@settings(max_examples=50, deadline=None, database=None, derandomize=True)
@given(rt.instances(kinds=("commuting",), schedule_kinds=("summed", "alternating")))
def test_closed_form_critical_eta_equals_operator(pair):
    hs, sch = pair
    exact = rmt.critical_eta(_factor_copy(hs), sch)
    cf = cforms.closed_form_critical_eta(hs, sch)
    assert cf == pytest.approx(exact, rel=1e-8, abs=0)
    if 0 < cf < math.inf:  # the operator is marginal exactly at the sympy η*
        rate = rmt.mean_square_rate(_factor_copy(hs), sch.replace(eta=cf), method="dense")
        assert rate == pytest.approx(1.0, abs=1e-10)


@settings(max_examples=80, deadline=None, database=None, derandomize=True)
@given(rt.instances(kinds=("commuting",), schedule_kinds=("summed",), alphas="sgd"))
def test_closed_form_critical_batch_equals_bisection(pair):
    hs, sch = pair
    closed = cforms.closed_form_critical_batch(hs, sch)
    numeric = rmt.critical_batch(_factor_copy(hs), sch)
    if closed != numeric:
        # Only a tie may differ: ρ(T) = 1 up to round-off at every batch the two disagree on
        # (e.g. t = 2 exactly in the strategy puts η on the gradient-descent edge 2/λ_max, where
        # the factor path gives 1 + 9e-16 and the commuting path 1 − 9e-16).
        top = min(hs.n_retain, hs.n_forget if sch.uses_forget else hs.n_retain)
        lo, hi = sorted(top + 1 if x is None else x for x in (closed, numeric))
        for B in range(lo, min(hi, top + 1)):
            rate = rmt.mean_square_rate(_factor_copy(hs), sch.replace(batch=B))
            assert rate == pytest.approx(1.0, abs=16 * np.finfo(float).eps), (closed, numeric, B)


def _check_critical_alpha(pair):
    hs, sch = pair
    if sch.batch > hs.n_forget:
        sch = sch.replace(batch=hs.n_forget)
    sch = sch.replace(forget_batch=None)
    cf = cforms.closed_form_critical_alpha(hs, sch)
    num = rmt.critical_alpha(_factor_copy(hs), sch)
    assert (cf is None) == (num is None)
    if cf is not None:
        assert cf == pytest.approx(num, abs=1e-7)


_ALPHA_PAIRS = rt.instances(kinds=("commuting",), schedule_kinds=("summed",), forget=True,
                            max_forget=4)


@settings(max_examples=12, deadline=None, database=None, derandomize=True)
@given(_ALPHA_PAIRS)
def test_closed_form_critical_alpha_equals_scan(pair):
    _check_critical_alpha(pair)


@pytest.mark.slow
@settings(max_examples=150, deadline=None, database=None, derandomize=True)
@given(_ALPHA_PAIRS)
def test_closed_form_critical_alpha_equals_scan_many(pair):
    _check_critical_alpha(pair)


def test_alternating_polynomial_matches_rate():
    hs = rmt.ensembles.commuting(np.array([[1.0, 0.5], [0.2, 2.0], [0.0, 1.0]]),
                                 np.array([[0.3, 0.1], [0.6, 0.0]]))
    sch = Schedule(eta=0.7, batch=1, alpha=0.4, schedule="alternating", sampling="bernoulli")
    coeffs = dv.alternating_direction_polynomial("bernoulli")
    mR, qR, nR, BR, mF, qF, nF, BF = cforms._commuting_args(hs, sch)
    c = [np.asarray(x, float) for x in coeffs(sch.alpha, mR, qR, nR, BR, mF, qF, nF, BF)]
    per_dir = 1 + sum(ck * sch.eta ** (k + 1) for k, ck in enumerate(c))
    exact = rmt.mean_square_rate(_factor_copy(hs), sch, method="dense")
    assert float(np.max(per_dir)) == pytest.approx(exact, rel=1e-10)


def test_closed_forms_accept_dynamics_and_stay_importable_from_theory():
    import theory

    hs = rmt.ensembles.commuting(np.array([[1.0, 0.5], [0.2, 2.0], [0.0, 1.0]]),
                                 np.array([[0.3, 0.1], [0.6, 0.0]]))
    sch = Schedule(eta=0.7, batch=1, alpha=0.4, sampling="bernoulli")
    dyn = rmt.Dynamics(hs, sch)
    assert theory.closed_form_rate is cforms.closed_form_rate
    assert cforms.closed_form_rate(dyn) == cforms.closed_form_rate(hs, sch)
    assert cforms.closed_form_critical_eta(dyn) == cforms.closed_form_critical_eta(hs, sch)
    assert cforms.closed_form_critical_alpha(dyn) == cforms.closed_form_critical_alpha(hs, sch)
    with pytest.raises(ValueError, match="commuting"):
        cforms.closed_form_rate(_factor_copy(hs), sch)


def test_alternating_critical_eta_sign_near_zero_from_next_coefficient():
    """q(0) = 0 exactly ((1−α)m_R = αm_F, D_k = 0) and q'(0) > 0: unstable for every small η.

    Retain {1}, forget {4, 0, 0, 0}, α = 1/2, Bernoulli B = 1: m_F = 1, N_F = (3/4)·4 = 3, so
    E[j²] − 1 = η(0 + η/4 − 3η²/4 + η³/4) = (η²/4)(η² − 3η + 1): roots (3 ∓ √5)/2.
    """
    hs = HessianSet.from_commuting(np.array([[1.0]]), np.array([[4.0], [0.0], [0.0], [0.0]]))
    sch = Schedule(eta=0.1, batch=1, alpha=0.5, schedule="alternating", sampling="bernoulli",
                   forget_batch=1)
    c = [float(np.asarray(x).item()) for x in dv.alternating_direction_polynomial("bernoulli").function(
        sch.alpha, *cforms._commuting_args(hs, sch))]
    assert c == pytest.approx([0.0, 0.25, -0.75, 0.25], abs=1e-15)
    # stable set (0.38, 2.62): η* is the upper edge of its lowest component, as for the operator
    golden = (1 + 5**0.5) / 2
    (lo, hi), = cforms.closed_form_stable_set(hs, sch)
    assert (lo, hi) == pytest.approx((2 - golden, 1 + golden), rel=1e-12)
    assert cforms.closed_form_critical_eta(hs, sch) == pytest.approx(1 + golden, rel=1e-12)
    assert rmt.critical_eta(_factor_copy(hs), sch) == pytest.approx(1 + golden, rel=1e-9)
    # the operator agrees: every small η escapes (ρ − 1 ≈ η²/4), the window (0.38, 2.62) is stable
    for eta in (1e-4, 1e-3, 1e-2):
        rate = rmt.mean_square_rate(_factor_copy(hs), sch.replace(eta=eta), method="dense")
        assert rate == pytest.approx(1 + eta**2 / 4, rel=0, abs=2 * eta**3)
    assert rmt.mean_square_rate(_factor_copy(hs), sch.replace(eta=1.0), method="dense") < 1


def test_derivation_self_checks_are_exceptions_not_asserts():
    import importlib
    import inspect

    for name in ("derivations", "closed_forms", "theorems", "examples", "report",
                 "counterexample"):
        mod = importlib.import_module(f"theory.{name}")
        assert "assert " not in inspect.getsource(mod), mod.__name__
    with pytest.raises(dv.DerivationError, match="expected"):
        dv._require(False, "expected one root", [1, 2])


# ---------------------------------------------------------------------- limits
@pytest.mark.parametrize("sampling", ["bernoulli", "without_replacement"])
def test_full_batch_limit_recovers_gradient_descent_symbolically(sampling):
    expr = dv.commuting_critical_eta(sampling).expression
    gd = sp.limit(expr.subs({S["alpha"]: 0}), S["B_R"], S["n_R"])
    assert sp.simplify(gd - 2 / S["m_R"]) == 0


@pytest.mark.parametrize("sampling", ["bernoulli", "without_replacement"])
def test_full_batch_limit_recovers_gradient_descent_numerically(sampling):
    rng = np.random.default_rng(3)
    G = rng.standard_normal((5, 4, 2))
    hs = HessianSet.from_factors(G)
    lam = float(np.linalg.eigvalsh(hs.mean("retain"))[-1])
    crit = rmt.critical_eta(hs, Schedule(eta=1.0, batch=5, sampling=sampling))
    assert crit == pytest.approx(2.0 / lam, rel=1e-9)


def test_thm2_condition_at_sigma_one_and_sigma_n():
    lam = dv.dexter_thm2_condition("bernoulli").expression
    eta, n, B, sigma = S["eta"], S["n"], S["B"], S["sigma"]
    # σ = n: (2/η)/(1 + (n/B − 1)/n); σ = 1: (2/η)·B/n  (hand-simplified)
    assert sp.simplify(lam.subs(sigma, n) - (2 / eta) / (1 + (n / B - 1) / n)) == 0
    assert sp.simplify(lam.subs(sigma, 1) - 2 * B / (eta * n)) == 0


def test_sigma_extremes_on_worked_examples():
    one = ex.orthogonal_noise_blowup()
    same = ex.identical_hessians()
    assert rmt.coherence(one.hs).sigma == pytest.approx(1.0, rel=1e-12)
    assert rmt.coherence(same.hs).sigma == pytest.approx(same.expected["sigma"], rel=1e-12)
    # σ = n with sampling without replacement: no noise, SGD = GD, η* = 2/λ
    assert rmt.critical_eta(same.hs, same.schedule) == pytest.approx(2.0, rel=1e-9)
    # the proven w/o-replacement noise bound gives nothing at σ = n (C ≡ 0)
    from theory import get_theorem

    assert get_theorem("unlearning-retain-noise").threshold(same.hs, same.schedule) == math.inf


def test_alpha_zero_recovers_sgd():
    a = S["alpha"]
    unl = dv.unlearning_noise_condition("bernoulli", "retain").expression
    sgd = dv.dexter_thm1().expression
    assert sp.simplify(unl.subs(a, 0) - sgd) == 0
    rate = dv.commuting_direction_rate("bernoulli", "summed").expression.subs(a, 0)
    assert not ({S["m_F"], S["q_F"], S["n_F"], S["B_F"]} & rate.free_symbols)
    for s in ("bernoulli", "with_replacement", "without_replacement"):
        alt = dv.commuting_direction_rate(s, "alternating").expression.subs(a, 0)
        summ = dv.commuting_direction_rate(s, "summed").expression.subs(a, 0)
        assert sp.simplify(alt - summ) == 0


def test_sam_threshold_is_sgd_threshold_over_kappa():
    sam = dv.sam_threshold().expression
    kappa = 1 + S["rho"] / S["a"] * S["lambda_min"]
    assert sp.simplify(sam * kappa - dv.dexter_thm1().expression) == 0
    assert sp.simplify(sam.subs(S["rho"], 0) - dv.dexter_thm1().expression) == 0


def test_all_derivations_have_latex():
    ds = dv.all_derivations()
    assert len(ds) >= 30
    for name, d in ds.items():
        assert d.latex and isinstance(d.latex, str), name


@settings(max_examples=40, deadline=None, database=None, derandomize=True)
@given(rt.instances(kinds=("commuting",), schedule_kinds=("summed", "alternating")))
def test_closed_form_stable_set_equals_operator(pair):
    """The sympy per-direction stable sets, intersected, equal rmt.stable_set (det roots of T)."""
    hs, sch = pair
    cf = cforms.closed_form_stable_set(hs, sch)
    exact = rmt.stable_set(_factor_copy(hs), sch)
    assert len(cf) == len(exact)
    for (a, b), (c, d) in zip(cf, exact):
        assert a == pytest.approx(c, rel=1e-8, abs=1e-12)
        assert b == pytest.approx(d, rel=1e-8)
