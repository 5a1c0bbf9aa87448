"""Pure logic: PromQL builders, result shaping, target groups."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_rollout.backends.local.prometheus import TargetGroup, pod_target
from pytest_rollout.errors import ConfigError, PrometheusError
from pytest_rollout.prom import (
    LabelMatcher,
    QueryResult,
    Sample,
    duration,
    duration_seconds,
    error_ratio,
    parse_result,
    quote,
    rate,
    ratio,
    selector,
    total,
)

label_values = st.text(alphabet=st.characters(codec="utf-8"), max_size=40)


# -- builders ----------------------------------------------------------------------------------


def test_selector_with_equality_mapping_and_matchers() -> None:
    assert selector("up") == "up"
    assert selector("up", {}) == "up"
    assert selector("http_requests_total", {"version": "v2", "route": "/"}) == (
        'http_requests_total{version="v2",route="/"}'
    )
    assert (
        selector(
            "http_requests_total",
            [LabelMatcher("code", "=~", "5.."), LabelMatcher("version", "!=", "v1")],
        )
        == 'http_requests_total{code=~"5..",version!="v1"}'
    )


def test_rate_total_ratio_compose_into_an_error_ratio() -> None:
    errors = total(rate("http_requests_total", {"code": "500"}, "30s"), by=["version"])
    assert errors == 'sum by (version) (rate(http_requests_total{code="500"}[30s]))'
    assert total("x") == "sum(x)"
    assert ratio("a", "b") == "(a) / (b)"
    assert error_ratio("http_requests_total", {"version": "v2"}, 60) == (
        '(sum(rate(http_requests_total{version="v2",code=~"5.."}[1m])))'
        ' / (sum(rate(http_requests_total{version="v2"}[1m])))'
    )
    assert error_ratio(
        "checkout_results_total",
        window="2m",
        errors={"outcome": "failure"},
        by=("version",),
    ) == (
        '(sum by (version) (rate(checkout_results_total{outcome="failure"}[2m])))'
        " / (sum by (version) (rate(checkout_results_total[2m])))"
    )


@pytest.mark.parametrize(
    ("window", "text"),
    [
        ("30s", "30s"),
        ("1m30s", "1m30s"),
        ("500ms", "500ms"),
        (30, "30s"),
        (60, "1m"),
        (90, "1m30s"),
        (1.5, "1s500ms"),
        (3600, "1h"),
        (0.25, "250ms"),
    ],
)
def test_duration_accepts_promql_durations_and_seconds(window: str | float, text: str) -> None:
    assert duration(window) == text


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("250ms", 0.25), ("1s", 1), ("1m30s", 90), ("2h", 7200), ("1d1ms", 86400.001), ("0s", 0)],
)
def test_duration_seconds_reads_promql_durations(text: str, seconds: float) -> None:
    assert duration_seconds(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "30", "1.5s", "1x", "-1s", "s"])
def test_duration_seconds_rejects_what_promql_would(text: str) -> None:
    with pytest.raises(ConfigError, match="is not a Prometheus duration"):
        duration_seconds(text)


@pytest.mark.parametrize("window", ["", "30", "1x", "s", "-5s", 0, -1, math.inf, 0.0001])
def test_duration_rejects_what_promql_would(window: str | float) -> None:
    with pytest.raises(ConfigError, match="window"):
        duration(window)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: selector("http-requests"), "metric name 'http-requests' is not valid PromQL"),
        (lambda: selector("up", {"pod-name": "x"}), "label name 'pod-name' is not valid PromQL"),
        (lambda: LabelMatcher("a", "==", "x"), "operator '==' is not valid: allowed =, !=, =~, !~"),  # type: ignore[arg-type]
        (lambda: total("x", by=["a b"]), "label name 'a b' in `by` is not valid PromQL"),
    ],
)
def test_builders_reject_invalid_names_with_one_clear_line(call: object, message: str) -> None:
    assert callable(call)
    with pytest.raises(ConfigError) as info:
        call()
    assert message in str(info.value)
    assert "\n" not in str(info.value)


@given(label_values)
def test_quote_escapes_every_value_into_a_string_literal(value: str) -> None:
    # The escapes used (\\ \" \n \r \t \uXXXX) mean the same in JSON and in PromQL.
    quoted = quote(value)
    assert json.loads(quoted) == value
    assert "\n" not in quoted


# -- results -------------------------------------------------------------------------------------


def test_vector_is_parsed_with_labels_values_and_times() -> None:
    raw = [
        {"metric": {"__name__": "up", "pod": "a"}, "value": [1700000000.5, "1"]},
        {"metric": {"pod": "b"}, "value": [1700000000.5, "0.25"]},
    ]
    result = parse_result(raw)
    assert result == QueryResult(
        "vector",
        (
            Sample({"__name__": "up", "pod": "a"}, 1.0, 1700000000.5),
            Sample({"pod": "b"}, 0.25, 1700000000.5),
        ),
    )
    assert result.samples[0].name == "up"
    assert result.as_argo() == [1.0, 0.25]
    assert str(result.samples[0]) == 'up{pod="a"} 1'


def test_special_values_are_preserved() -> None:
    raw = [{"metric": {"k": s}, "value": [1.0, s]} for s in ("NaN", "+Inf", "-Inf")]
    values = [s.value for s in parse_result(raw).samples]
    assert math.isnan(values[0])
    assert values[1:] == [math.inf, -math.inf]


def test_scalar_and_empty_vector_in_argo_shape() -> None:
    scalar = parse_result([1700000000.0, "0.05"])
    assert scalar.result_type == "scalar"
    assert scalar.as_argo() == 0.05
    assert scalar.samples == (Sample({}, 0.05, 1700000000.0),)
    empty = parse_result([])
    assert empty.result_type == "vector"
    assert empty.as_argo() == []


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_any_float_prometheus_renders_reads_back_equal(value: float) -> None:
    rendered = (
        "NaN"
        if math.isnan(value)
        else {math.inf: "+Inf", -math.inf: "-Inf"}.get(value, repr(value))
    )
    parsed = parse_result([{"metric": {}, "value": [1.0, rendered]}]).samples[0].value
    assert parsed == value or (math.isnan(parsed) and math.isnan(value))


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            [{"metric": {}, "values": [[1.0, "1"], [2.0, "2"]]}],
            "Prometheus metric type not supported: range vector (matrix) for query 'q'",
        ),
        ([1.0, "hello"], "Prometheus metric type not supported: string result 'hello'"),
        ({"unexpected": True}, "unexpected answer from Prometheus for query 'q'"),
        ([{"metric": {}}], "unexpected sample in Prometheus's answer for query 'q'"),
        ([{"metric": {}, "value": [1.0, "one"]}], "unexpected sample value 'one'"),
    ],
)
def test_unusable_results_raise_prometheus_error(raw: object, message: str) -> None:
    with pytest.raises(PrometheusError) as info:
        parse_result(raw, promql="q")
    assert message in str(info.value)


# -- target groups -------------------------------------------------------------------------------


def test_pod_target_carries_the_labels_a_kubernetes_pod_scrape_gives() -> None:
    group = pod_target(
        "127.0.10.3:8080",
        namespace="shop",
        pod="checkout-7d9f-abcde",
        pod_labels={
            "app.kubernetes.io/name": "checkout",
            "rollouts-pod-template-hash": "7d9f",
            "role": "canary",
        },
    )
    assert group.targets == ("127.0.10.3:8080",)
    assert group.labels == {
        "app_kubernetes_io_name": "checkout",
        "rollouts_pod_template_hash": "7d9f",
        "role": "canary",
        "namespace": "shop",
        "pod": "checkout-7d9f-abcde",
        "job": "kubernetes-pods",
        "instance": "127.0.10.3:8080",
    }
    assert (
        pod_target("127.0.0.1:1", namespace="n", pod="p", metrics_path="/m").labels[
            "__metrics_path__"
        ]
        == "/m"
    )


@pytest.mark.parametrize(
    ("targets", "labels", "message"),
    [
        (["10.0.0.1:80"], {}, "target '10.0.0.1:80' is not on loopback"),
        (["localhost:80"], {}, "target 'localhost:80' is not valid: expected '127.x.y.z:PORT'"),
        (["127.0.0.1"], {}, "target '127.0.0.1' is not valid"),
        (["127.0.0.1:0"], {}, "target '127.0.0.1:0' is not valid"),
        ([], {}, "a target group needs at least one target"),
        ("127.0.0.1:80", {}, "targets must be a list of 'host:port', not the string"),
        (["127.0.0.1:80"], {"pod-name": "x"}, "target label name 'pod-name' is not valid"),
    ],
)
def test_target_groups_are_validated(
    targets: list[str], labels: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        TargetGroup(targets, labels)
    assert message in str(info.value)
