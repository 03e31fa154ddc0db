"""rmt.validation: constraint objects, constraint tables, the declared tables of the public API."""

from __future__ import annotations

import inspect
from numbers import Integral, Real

import numpy as np
import pytest

from rmt import Schedule, ensembles
from rmt import validation as V
from rmt.validation import Array, Interval, Options, RandomState, constrained, validate_param, validate_params

FORGET = [None, Interval(Integral, 0, None, closed="left"), Array(ndim=1, kind="integer")]


@pytest.mark.parametrize(
    "constraint, value, exc, message",
    [
        (Interval(Real, 0, None, closed="neither"), 0.0, ValueError, "eta must be > 0, got 0.0"),
        (Interval(Real, 0, None, closed="left"), -1, ValueError, "eta must be >= 0, got -1.0"),
        (Interval(Real, None, 1, closed="right"), 2.0, ValueError, "eta must be <= 1, got 2.0"),
        (Interval(Real, -1, 1, closed="both"), 1.5, ValueError, "eta must lie in [-1, 1], got 1.5"),
        (Interval(Real, 0, 1, closed="left"), 1.0, ValueError, "eta must lie in [0, 1), got 1.0"),
        (Interval(Real, 0, None, closed="neither"), float("nan"), ValueError, "eta must be finite"),
        (Interval(Real, 0, None, closed="neither"), float("inf"), ValueError, "eta must be finite"),
        (Interval(Real, 0, None, closed="neither"), "0.1", TypeError, "eta must be a real number, got str"),
        (Interval(Real, 0, None, closed="neither"), True, TypeError, "eta must be a real number, got bool"),
        (Interval(Integral, 1, 12), 20, ValueError, "eta must lie in [1, 12], got 20"),
        (Interval(Integral, 1, None), 2.0, TypeError, "eta must be an integer, got float 2.0"),
        (Options(("a", "b")), "c", ValueError, "eta must be one of ['a', 'b'], got 'c'"),
        (RandomState(), -3, ValueError, "eta must be a non-negative integer"),
        (RandomState(), "abc", TypeError, "eta must be an int, a numpy Generator"),
        (Array(ndim=2), np.ones(3), ValueError, "eta must have 2 dimensions"),
        (Array(ndim=1, kind="integer"), np.ones(3), TypeError, "eta must be a 1-d integer array"),
    ],
)
def test_single_constraint_messages_name_the_argument_and_range(constraint, value, exc, message):
    with pytest.raises(exc) as info:
        validate_param("eta", value, [constraint])
    assert message in str(info.value)


def test_values_are_normalised_never_coerced():
    assert validate_param("n", np.int64(3), [Interval(Integral, 1, None)]) == 3
    assert type(validate_param("n", np.int64(3), [Interval(Integral, 1, None)])) is int
    assert validate_param("x", 1, [Interval(Real, 0, None)]) == 1.0
    assert isinstance(validate_param("seed", 5, [RandomState()]), np.random.Generator)
    assert validate_param("f", None, FORGET) is None
    np.testing.assert_array_equal(validate_param("f", [0, 2], FORGET), [0, 2])
    with pytest.raises(TypeError):  # a float count is not silently rounded
        validate_param("f", 2.5, FORGET)


def test_unions_pick_the_matching_kind():
    # right kind, wrong range: that kind's own message (ValueError)
    with pytest.raises(ValueError, match="f must be >= 0, got -1"):
        validate_param("f", -1, FORGET)
    # no kind matches: TypeError listing every allowed kind
    with pytest.raises(TypeError, match=r"f must be None or an integer >= 0 or a 1-d integer array, got str"):
        validate_param("f", "abc", FORGET)
    with pytest.raises(ValueError, match="caller: f must be >= 0"):
        validate_param("f", -1, FORGET, caller="caller")


def test_validate_params_and_unknown_names():
    table = {"eta": [Interval(Real, 0, None, closed="neither")], "mode": [Options(("x", "y"))]}
    assert validate_params(table, {"eta": 1, "mode": "x"}) == {"eta": 1.0, "mode": "x"}
    with pytest.raises(TypeError, match=r"f: unexpected parameter\(s\) \['momentum'\]"):
        validate_params(table, {"momentum": 0.9}, caller="f")
    with pytest.raises(ValueError, match="f: eta must be > 0"):
        validate_params(table, {"eta": -1}, caller="f")


def test_constrained_decorator_checks_calls_and_attaches_the_table():
    table = {"n": [Interval(Integral, 1, None)], "x": [Interval(Real, 0, 1)]}

    @constrained(table)
    def f(n, x=0.5):
        return n, x

    assert f(2) == (2, 0.5) and f.parameter_constraints == table
    assert type(f(np.int32(2), 1)[1]) is float
    with pytest.raises(ValueError, match=r"x must lie in \[0, 1\], got 2.0"):
        f(1, x=2)
    with pytest.raises(TypeError, match="does not match its parameters"):
        constrained({"n": [None]})(lambda n, m: None)


GENERATORS = ["hessian_test", "near_optimal", "aligned", "aligned_expected_coherence", "commuting",
              "wishart", "random_orthogonal", "split_forget"]


@pytest.mark.parametrize("name", GENERATORS)
def test_every_ensemble_declares_every_parameter(name):
    fn = getattr(ensembles, name)
    assert list(fn.parameter_constraints) == list(inspect.signature(fn).parameters)


def test_schedule_table_covers_every_field():
    import dataclasses

    assert list(Schedule.parameter_constraints) == [f.name for f in dataclasses.fields(Schedule)]


def test_ensemble_constraints_are_enforced_with_named_ranges():
    with pytest.raises(ValueError, match=r"between must lie in \[-1, 1\], got 1.5"):
        ensembles.aligned(3, 2, 10, between=1.5)
    with pytest.raises(ValueError, match=r"noise must be one of \['gaussian', 'orthogonal'\]"):
        ensembles.aligned_expected_coherence(3, 2, 10, noise="uniform")
    with pytest.raises(ValueError, match="lam must be > 0"):
        ensembles.hessian_test(10, 2, lam=0.0)
    with pytest.raises(ValueError, match=r"sigma must lie in \[1, 10\], got 11"):  # relates two
        ensembles.hessian_test(10, 11)
    with pytest.raises(ValueError, match=r"representation must be one of"):
        ensembles.near_optimal(10, 2, 1.0, representation="dense")
    with pytest.raises(ValueError, match=r"shared must lie in \[0, 1\]"):
        ensembles.wishart(3, shared=-0.1)
    with pytest.raises(TypeError, match="basis must be one of"):
        ensembles.commuting(np.ones((2, 2)), basis=3)
    # negative alignment between the sets is valid
    assert ensembles.aligned(3, 2, 10, between=-0.5, seed=0).n_forget == 2


def test_random_orthogonal_is_haar_orthogonal_and_seeded():
    Q = ensembles.random_orthogonal(5, seed=1)
    np.testing.assert_allclose(Q.T @ Q, np.eye(5), atol=1e-12)
    np.testing.assert_array_equal(Q, ensembles.random_orthogonal(5, seed=np.random.SeedSequence(1)))
    assert not np.allclose(Q, ensembles.random_orthogonal(5, seed=2))
    # Haar: E Q = 0 and E Q_ij² = 1/d (mean over draws, 6-sigma margins)
    draws = np.stack([ensembles.random_orthogonal(3, seed=s) for s in range(2000)])
    assert np.all(np.abs(draws.mean(0)) < 6 * np.sqrt(1 / 3 / 2000))
    assert np.all(np.abs((draws**2).mean(0) - 1 / 3) < 6 * np.sqrt(0.1 / 2000))


def test_folded_normal_mean_closed_form():
    # E|N(mu, s²)| = s √(2/π) exp(−mu²/2s²) + mu (1 − 2Φ(−mu/s))
    from math import erf, exp, pi, sqrt

    for mu, s in [(0.3, 0.1), (-0.4, 0.2), (0.0, 1.0), (2.0, 0.01)]:
        phi = 0.5 * (1 + erf((-mu / s) / sqrt(2)))
        want = s * sqrt(2 / pi) * exp(-mu * mu / (2 * s * s)) + mu * (1 - 2 * phi)
        assert ensembles._folded_mean(mu, s) == pytest.approx(want, rel=1e-12)
    assert ensembles._folded_mean(-0.7, 0.0) == 0.7


def test_type_checks_live_next_to_their_types_and_the_alias_is_gone():
    # issue 19: check_hessian_set next to HessianSet, check_pair next to Dynamics, no rmt._validation
    import importlib

    from rmt import dynamics, hessians

    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("rmt._validation")
    with pytest.raises(TypeError, match="hs must be a HessianSet"):
        hessians.check_hessian_set(object())
    with pytest.raises(TypeError, match="schedule must be a Schedule"):
        dynamics.check_pair(hessians.HessianSet.from_factors(np.ones((2, 2))), object())
    assert not hasattr(V, "check_hessian_set") and not hasattr(V, "check_pair")


def test_lyapunov_declares_its_constraints_and_the_sweep_uses_them():
    import rmt
    from rmt.validation import validate_param
    from simulations.sweep import LYAPUNOV_CONSTRAINTS

    table = rmt.lyapunov.parameter_constraints
    for key in ("steps", "replicas", "seed"):
        assert LYAPUNOV_CONSTRAINTS[key] is table[key]  # looked up, not copied
    with pytest.raises(ValueError, match="replicas"):
        validate_param("replicas", 1, table["replicas"])
    assert validate_param("steps", 5, table["steps"]) == 5
    with pytest.raises(ValueError, match="replicas"):
        rmt.lyapunov(rmt.HessianSet.from_factors(np.ones((2, 2))), rmt.Schedule(0.1, 1),
                     steps=10, replicas=1, seed=0)
