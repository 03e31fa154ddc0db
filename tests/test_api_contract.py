"""The analysis contract (rmt.api): every public entry point declares a constraint table that
names exactly its parameters, checks arguments before running, and accepts a Dynamics."""

from __future__ import annotations

import inspect
import warnings

import numpy as np
import pytest

import rmt
from rmt.api import analysis
from rmt.combinators import COMBINATORS, get_combinator
from rmt.verdict import deprecated_alias


def _public_functions():
    out = []
    for name in rmt.__all__:
        obj = getattr(rmt, name)
        if inspect.isfunction(obj):
            out.append((name, obj))
    return out


@pytest.mark.parametrize("name,fn", _public_functions(), ids=[n for n, _ in _public_functions()])
def test_every_public_function_declares_its_constraints(name, fn):
    table = getattr(fn, "parameter_constraints", None)
    assert table is not None, f"rmt.{name} has no constraint table (decorate it with rmt.api.analysis)"
    params = set(inspect.signature(fn).parameters)
    assert set(table) == params, f"rmt.{name}: table {sorted(table)} vs parameters {sorted(params)}"


def _pair():
    H = np.diag([1.0, 0.5, 0.0])
    hs = rmt.HessianSet.from_dense([H, 2 * H, 0.5 * H], [np.diag([0.0, 1.0, 1.0])])
    return hs, rmt.Schedule(0.3, 2, alpha=0.2, forget_batch=1)


def test_bad_options_are_refused_by_name_before_any_work():
    hs, sch = _pair()
    with pytest.raises(ValueError, match="method must be one of"):
        rmt.mean_square(hs, sch, method="power")
    with pytest.raises(ValueError, match="tol must be > 0"):
        rmt.mean_square(hs, sch, tol=-1.0)
    with pytest.raises(TypeError, match="tol must be a real number"):
        rmt.mean_square(hs, sch, tol="1e-8")
    with pytest.raises(ValueError, match="time_budget"):
        rmt.critical_eta(hs, sch, time_budget=-2.0)
    with pytest.raises(ValueError, match="parameter must be one of"):
        rmt.stable_set(hs, sch, parameter="batch")
    with pytest.raises(ValueError, match="rtol must lie in"):
        rmt.critical_alpha(hs, sch, rtol=2.0)


def test_a_dynamics_takes_the_schedule_slot_positionally():
    hs, sch = _pair()
    dyn = rmt.Dynamics(hs, sch)
    a = rmt.affine_moments(dyn, 4).expected_sq_distance
    b = rmt.affine_moments(hs, sch, 4).expected_sq_distance
    np.testing.assert_array_equal(a, b)
    with pytest.raises(TypeError, match="not both"):
        rmt.mean_square(dyn, sch)


def test_decorator_refuses_a_table_that_does_not_match():
    with pytest.raises(TypeError, match="does not match its parameters"):
        @analysis({"tol": []})
        def f(hs, schedule=None, *, method="auto"):  # pragma: no cover - never called
            return None


def test_deprecated_alias_warns_and_returns_the_new_value():
    hs, sch = _pair()
    res = rmt.mean_square(hs, sch)
    with pytest.warns(DeprecationWarning, match="use .forgets"):
        old = res.diverges
    assert old == res.forgets
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res.forgets  # the new name does not warn


def test_combinators_are_their_names_and_pickle_to_the_same_object():
    import pickle

    for name, comb in COMBINATORS.items():
        assert comb == name and get_combinator(name) is comb
        assert pickle.loads(pickle.dumps(comb)) is comb
    with pytest.raises(ValueError, match="schedule must be one of"):
        get_combinator("momentum")
    assert rmt.Schedule(0.1, 1, schedule="alternating").combinator.products


def test_deprecated_alias_is_a_descriptor_on_the_class():
    class R:
        forgets = True
        old = deprecated_alias("forgets")

    assert isinstance(R.old, deprecated_alias)
