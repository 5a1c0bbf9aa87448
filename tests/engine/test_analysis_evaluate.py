"""Measurement phases from conditions, JSONPath lookups and Go-formatted values."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_rollout.engine.analysis import (
    AnalysisPhase,
    JsonPathError,
    Metric,
    PrometheusQuery,
    compile_jsonpath,
    evaluate_result,
)
from pytest_rollout.engine.analysis.formatting import go_float, go_json, prometheus_value
from pytest_rollout.engine.analysis.jsonpath import JsonPathNoValue

P = AnalysisPhase
QUERY = PrometheusQuery("http://127.0.0.1:9090", "up")


def metric(success: str = "", failure: str = "") -> Metric:
    return Metric("m", QUERY, success_condition=success, failure_condition=failure)


@pytest.mark.parametrize(
    ("success", "failure", "result", "phase"),
    [
        ("", "", [0.9], P.SUCCESSFUL),
        ("result[0] < 0.05", "", [0.01], P.SUCCESSFUL),
        ("result[0] < 0.05", "", [0.5], P.FAILED),
        ("", "result[0] > 0.05", [0.5], P.FAILED),
        ("", "result[0] > 0.05", [0.01], P.SUCCESSFUL),
        ("result[0] < 0.05", "result[0] > 0.1", [0.07], P.INCONCLUSIVE),
        ("result[0] < 0.5", "result[0] > 0.1", [0.2], P.FAILED),  # both true: Failed
        (
            "len(result) > 0 && result[0] < 0.05",
            "len(result) > 0 && result[0] > 0.05",
            [],
            P.INCONCLUSIVE,
        ),
        (
            "len(result) > 0 && !isNaN(result[0]) && result[0] <= 0.05",
            "len(result) > 0 && result[0] > 0.05",
            [math.nan],
            P.INCONCLUSIVE,
        ),
        ("all(result, # < 1000)", "", [10.0, 999.0], P.SUCCESSFUL),
        ("result == 'v2'", "", "v2", P.SUCCESSFUL),
    ],
)
def test_phase_from_conditions(success: str, failure: str, result: object, phase: P) -> None:
    assert evaluate_result(result, metric(success, failure)) == (phase, "")


def test_evaluation_error_on_empty_result_says_there_was_no_data() -> None:
    phase, message = evaluate_result([], metric("result[0] < 0.05"))
    assert phase is P.ERROR
    assert message == (
        'could not evaluate successCondition "result[0] < 0.05": metric result is nil or empty: '
        "no data returned from the metric provider"
    )
    assert evaluate_result(None, metric("", "len(result) > 1"))[1].startswith(
        'could not evaluate failureCondition "len(result) > 1": metric result is nil or empty'
    )


def test_evaluation_error_carries_exprs_message() -> None:
    phase, message = evaluate_result([0.5], metric("result[0]"))
    assert (phase, message) == (
        P.ERROR,
        'could not evaluate successCondition "result[0]": expected bool, but got float64',
    )
    phase, message = evaluate_result([1.0], metric("result[0] <"))
    assert phase is P.ERROR
    assert message.startswith('could not evaluate successCondition "result[0] <": unexpected token')


# -- JSONPath -------------------------------------------------------------------------------------


DOC = {"data": {"ok": True, "items": [{"x": 1.0}, {"x": 2.0}], "a.b": "dotted"}, "n": None}


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("{$.data.ok}", True),
        ("{.data.ok}", True),
        ("{ $.data.items[1].x }", 2.0),
        ("{$.data.items[-1].x}", 2.0),
        ("{$['data']['a.b']}", "dotted"),
        ("{$}", DOC),
        ("", DOC),
        ("{$.n}", None),
    ],
)
def test_jsonpath_subset_finds_values(path: str, value: object) -> None:
    assert compile_jsonpath(path).find(DOC) == value


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("{$.data.missing}", "missing is not found"),
        ("{$.data.items[5]}", "array index out of bounds: index 5, length 2"),
        ("{$.data.ok[0]}", "bool is not array or slice"),
        ("{$.data.items.x}", "x is not found"),
    ],
)
def test_jsonpath_lookups_fail_with_client_go_messages(path: str, message: str) -> None:
    with pytest.raises(JsonPathError) as info:
        compile_jsonpath(path).find(DOC)
    assert str(info.value) == message


def test_jsonpath_through_null_has_no_value() -> None:
    with pytest.raises(JsonPathNoValue, match="result of web metric produced no value"):
        compile_jsonpath("{$.n[0]}").find(DOC)


@pytest.mark.parametrize("path", ["$.a", "{$.a[*]}", "{..a}", "{$.a[?(@.x)]}", "{$.a[0:2]}"])
def test_jsonpath_outside_the_subset_is_rejected(path: str) -> None:
    with pytest.raises(JsonPathError, match="supported"):
        compile_jsonpath(path)


# -- Go formatting ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.05, "0.05"),
        (1.0, "1"),
        (100.0, "100"),
        (1e-7, "0.0000001"),
        (1e21, "1000000000000000000000"),
        (math.nan, "NaN"),
        (math.inf, "+Inf"),
        (-math.inf, "-Inf"),
        (0.0, "0"),
    ],
)
def test_go_float(value: float, text: str) -> None:
    assert go_float(value) == text


def test_prometheus_values_as_argo_writes_them() -> None:
    assert prometheus_value([0.5, math.nan]) == "[0.5,NaN]"
    assert prometheus_value([]) == "[]"
    assert prometheus_value(0.25) == "0.25"


def test_go_json_sorts_keys_and_escapes_html() -> None:
    assert (
        go_json({"b": 1.0, "a": [True, None, "<x>"]}) == '{"a":[true,null,"\\u003cx\\u003e"],"b":1}'
    )
    assert go_json(1e-7) == "1e-7"
    assert go_json(1.5e21) == "1.5e+21"


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_go_float_round_trips(value: float) -> None:
    assert float(go_float(value)) == value


json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=10,
)


@given(json_values)
def test_go_json_is_valid_json_of_the_same_value(value: object) -> None:
    assert json.loads(go_json(value), parse_int=float) == value
