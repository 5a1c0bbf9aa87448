"""PromClient against a real Prometheus scraping real reference-service processes."""

from __future__ import annotations

import math
import re
import socket
import time

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_rollout._proc import free_port
from pytest_rollout.backends.local.prometheus import (
    FIRST_SAMPLE_BOUND,
    SCRAPE_INTERVAL,
    PrometheusServer,
)
from pytest_rollout.errors import PrometheusError, WaitTimeout
from pytest_rollout.prom import (
    PromClient,
    PromQLError,
    Sample,
    error_ratio,
    quote,
    rate,
    selector,
    total,
)
from service.launcher import run_service
from tests.prom.prom_pods import StartPod, next_pod_host

pytestmark = pytest.mark.slow  # starts real processes, or renders for seconds

# A scraped value is queryable one scrape interval after it changed; the rest is slack for a
# loaded two-core machine.
SCRAPE_BOUND = SCRAPE_INTERVAL + 3.0


def test_query_reflects_traffic_within_a_scrape(
    prom: PromClient, prometheus_server: PrometheusServer, start_pod: StartPod, namespace: str
) -> None:
    pod = start_pod("v1")
    prometheus_server.wait_until_scraped(pod.address)
    requests_to_root = selector(
        "http_requests_total", {"namespace": namespace, "route": "/", "method": "GET"}
    )

    assert pod.get(120) == [200] * 120
    sent_at = time.monotonic()
    samples = prom.wait_for_data(
        f"sum({requests_to_root})",
        timeout=SCRAPE_BOUND,
        predicate=lambda s: s[0].value == 120,
        interval=0.05,
    )
    seen_after = time.monotonic() - sent_at
    print(f"120 requests visible in Prometheus {seen_after:.2f}s after the last one was answered")
    assert samples[0].value == 120
    assert samples[0].labels == {}

    # The scraped series carries the pod's identity, as a Kubernetes pod scrape gives it.
    (series,) = prom.query(requests_to_root)
    assert series.labels == {
        "__name__": "http_requests_total",
        "app": "svc",
        "code": "200",
        "instance": pod.address,
        "job": "kubernetes-pods",
        "method": "GET",
        "namespace": namespace,
        "pod": pod.name,
        "role": "stable",
        "rollouts_pod_template_hash": "hash-v1",
        "route": "/",
        "version": "v1",
    }
    assert prom.scalar(f"sum({requests_to_root})") == 120


def test_error_ratio_by_version_from_real_traffic(
    prom: PromClient, prometheus_server: PrometheusServer, start_pod: StartPod, namespace: str
) -> None:
    good = start_pod("v1")
    bad = start_pod("v2", {"SERVICE_ERROR_RATE": "1"})
    counted = selector("http_requests_total", {"namespace": namespace, "route": "/"})
    # A counter's first sample has no predecessor, so requests before it never show up in
    # rate(): let each series exist in Prometheus before the measured traffic.
    assert good.get(1) == [200]
    assert bad.get(1) == [500]
    prom.wait_for_data(
        f"count({counted})",
        timeout=FIRST_SAMPLE_BOUND + SCRAPE_BOUND,
        predicate=lambda s: s[0].value == 2,
    )
    assert good.get(40) == [200] * 40
    assert bad.get(40) == [500] * 40
    prom.wait_for_data(
        f"sum({counted})", timeout=SCRAPE_BOUND, predicate=lambda s: s[0].value == 82
    )

    by_version = {
        s.labels["version"]: s.value
        for s in prom.query(
            error_ratio(
                "http_requests_total", {"namespace": namespace, "route": "/"}, "1m", by=["version"]
            )
        )
    }
    # v1 has no 5xx series at all, so PromQL's division has no v1 element: absent, not 0.
    assert by_version == {"v2": 1.0}
    per_second = prom.query(
        total(rate("http_requests_total", {"namespace": namespace, "route": "/"}, 60), ["version"])
    )
    assert {s.labels["version"] for s in per_second} == {"v1", "v2"}
    assert all(s.value > 0 for s in per_second)


def test_scalars_vectors_and_special_values_in_argo_shape(prom: PromClient) -> None:
    assert prom.argo_result("vector(1) + 0.5") == [1.5]
    assert prom.argo_result("scalar(vector(2))") == 2.0
    assert prom.argo_result(f"up{{namespace={quote('no-such-namespace')}}}") == []
    nan = prom.scalar("0/0")
    assert nan is not None
    assert math.isnan(nan)
    assert prom.query("vector(1/0) or vector(-1/0)") == [
        Sample({}, math.inf, pytest.approx(time.time(), abs=60))  # type: ignore[arg-type]
    ]
    assert prom.scalar("-1/0") == -math.inf
    assert prom.scalar(f"absent(up{{namespace={quote('no-such-namespace')}}})") == 1.0
    assert prom.scalar(f"sum(up{{namespace={quote('no-such-namespace')}}})") is None


def test_range_vector_is_refused_as_argo_refuses_it(prom: PromClient) -> None:
    with pytest.raises(PrometheusError) as info:
        prom.argo_result("vector(1)[10s:1s]")
    assert "Prometheus metric type not supported: range vector (matrix)" in str(info.value)


def test_scalar_refuses_several_series_naming_them(prom: PromClient) -> None:
    with pytest.raises(PrometheusError) as info:
        prom.scalar('label_replace(vector(1), "pod", "a", "", "") or vector(2)')
    assert str(info.value) == (
        'query \'label_replace(vector(1), "pod", "a", "", "") or vector(2)\' returned 2 '
        'series where one value was expected: {pod="a"} 1; {} 2'
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=30))
def test_quoted_label_values_round_trip_through_promql(
    prometheus_server: PrometheusServer, value: str
) -> None:
    # label_replace's replacement is a template: "$$" is how it spells a literal "$".
    replacement = quote(value.replace("$", "$$"))
    with prometheus_server.client() as prom:
        (sample,) = prom.query(f'label_replace(vector(1), "v", {replacement}, "", "")')
    assert sample.labels == {"v": value}


def test_numeric_windows_are_valid_promql(prom: PromClient) -> None:
    for window in (0.5, 1.5, 90, 3600):
        assert prom.query(rate("up", {"namespace": "none"}, window)) == []


def test_bad_query_carries_prometheus_own_error_text_and_is_not_retried(prom: PromClient) -> None:
    with pytest.raises(PromQLError) as info:
        prom.query("sum(rate(http_requests_total[1m])")
    message = str(info.value)
    assert message.startswith(
        f"Prometheus at {prom.url} rejected query 'sum(rate(http_requests_total[1m])': "
        'invalid parameter "query": 1:'
    )
    assert "parse error" in message
    assert message.endswith("(bad_data, HTTP 400)")
    assert "\n" not in message

    started = time.monotonic()
    with pytest.raises(PromQLError):
        prom.wait_for_data("sum(", timeout=30)
    assert time.monotonic() - started < 2.0


def test_wait_for_data_times_out_naming_query_and_last_answer(prom: PromClient) -> None:
    with pytest.raises(WaitTimeout) as info:
        prom.wait_for_data("vector(3)", timeout=0.5, predicate=lambda s: s[0].value > 5)
    assert str(info.value) == (
        f"timed out after 0.5s waiting for Prometheus at {prom.url} to return data matching "
        "the predicate for 'vector(3)' (last answer: 1 series: {} 3)"
    )


def test_dead_prometheus_is_one_clear_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with PromClient(url, timeout=2.0) as prom:
        started = time.monotonic()
        with pytest.raises(PrometheusError) as info:
            prom.query("up")
        assert time.monotonic() - started < 1.0, "a dead server must fail at once, not retry"
        with pytest.raises(WaitTimeout) as waited:
            prom.wait_ready(timeout=0.3)

    assert type(info.value) is PrometheusError
    assert str(info.value) == f"Prometheus at {url} is unreachable: connection refused"
    # The transport's error is kept as the cause, for whoever wants the details.
    assert isinstance(info.value.__cause__, requests.ConnectionError)
    assert str(waited.value) == (
        f"timed out after 0.3s waiting for Prometheus at {url} to be ready (GET /-/ready "
        f"answering 200) (last error: PrometheusError: Prometheus at {url} is unreachable: "
        "connection refused)"
    )


def test_a_server_that_never_answers_times_out_with_one_line() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # the kernel completes connections; nobody ever reads or answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        with PromClient(url, timeout=0.3) as prom, pytest.raises(PrometheusError) as info:
            prom.query("up")
    assert str(info.value) == f"Prometheus at {url} did not answer query 'up' within 0.3s"


def test_execution_errors_are_rejections_too(prom: PromClient) -> None:
    # Two series that match the same one on(a): one-to-one matching fails while evaluating.
    twins = " or ".join(
        f'label_replace(label_replace(vector(1), "a", "x", "", ""), "b", "{b}", "", "")'
        for b in ("1", "2")
    )
    with pytest.raises(PromQLError) as info:
        prom.query(f'({twins}) + on(a) label_replace(vector(1), "a", "x", "", "")')
    assert "many-to-one matching must be explicit" in str(info.value)
    assert str(info.value).endswith("(execution, HTTP 422)")


def test_dead_prometheus_fails_a_test_with_our_error_on_top(pytester: pytest.Pytester) -> None:
    port = free_port()
    pytester.makepyfile(
        f"""
        from pytest_rollout.prom import PromClient

        def test_query_dead_prometheus():
            PromClient("http://127.0.0.1:{port}").query("up")
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rf")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            # The cause is kept, as one line that names the socket error ...
            "requests.exceptions.ConnectionError: *Connection refused*",
            "The above exception was the direct cause of the following exception:",
            # ... and the error the test fails with is ours.
            f"E * pytest_rollout.errors.PrometheusError: Prometheus at http://127.0.0.1:{port} "
            "is unreachable: connection refused",
            "FAILED *test_query_dead_prometheus*",
        ]
    )
    deep = [line for line in result.outlines if "/requests/" in line or "/urllib3/" in line]
    assert deep == [], "frames from inside requests/urllib3 leaked into the report"


def test_a_server_that_is_not_prometheus(prometheus_server: PrometheusServer) -> None:
    with run_service(host=next_pod_host()) as service, PromClient(service.url) as prom:
        with pytest.raises(PrometheusError) as info:
            prom.query("up")
        assert not prom.ready()
    assert str(info.value).startswith(
        f"Prometheus at {service.url} answered HTTP 404 to query 'up': "
    )


def test_a_server_that_drops_connections(prometheus_server: PrometheusServer) -> None:
    # While booting, the reference service accepts connections and closes them unanswered.
    booting = {"SERVICE_BOOT_SECONDS": "60"}
    with (
        run_service(booting, host=next_pod_host()) as service,
        PromClient(service.url) as prom,
        pytest.raises(PrometheusError) as info,
    ):
        prom.query("up")
    # Whether the peer's close reads as a reset or an empty answer depends on timing.
    assert re.fullmatch(
        rf"Prometheus at {re.escape(service.url)} is unreachable: "
        "connection (reset by peer|closed without a response)",
        str(info.value),
    )
