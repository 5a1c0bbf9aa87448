"""The judge service against a real Prometheus scraping real reference-service pods.

Every count the judge answers is checked against what the test's client saw: the requests it
sent and the status codes it got back.
"""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

import httpx
import pytest

from pytest_rollout._proc import free_port
from pytest_rollout._wait import wait_for
from pytest_rollout.backends.local.prometheus import PrometheusServer
from pytest_rollout.errors import WaitTimeout
from pytest_rollout.judge.watch import DEFAULT_SETTLE_S
from pytest_rollout.load.background import BackgroundLoad
from pytest_rollout.load.mix import INDEX
from pytest_rollout.load.spec import LoadSpec
from pytest_rollout.prom import PromClient
from tests.judge.conftest import REPO, StartJudge
from tests.prom.prom_pods import Pod, StartPod

pytestmark = pytest.mark.slow  # starts real processes, or renders for seconds

SCRAPED_WITHIN_S = 20.0
LOAD_S = 3.0


def ask(judge: str, namespace: str, canary: str = "hash-v2", stable: str = "hash-v1") -> Any:
    response = httpx.get(
        f"{judge}/judge",
        params={"namespace": namespace, "canary-hash": canary, "stable-hash": stable},
        timeout=10.0,
    )
    assert response.status_code == 200, response.text
    return response.json()


def wait_until_counted(judge: str, namespace: str, canary: int, stable: int) -> Any:
    """Ask until the judge has counted ``canary`` and ``stable`` requests; the last answer."""
    seen: list[Any] = []

    def counted() -> bool:
        body = ask(judge, namespace)
        seen[:] = [body]
        counts = body["counts"]
        return (counts["canary"]["requests"], counts["stable"]["requests"]) == (canary, stable)

    try:
        wait_for(
            counted,
            what=f"the judge to count {canary} canary and {stable} stable requests",
            timeout=SCRAPED_WITHIN_S,
            interval=0.3,
        )
    except WaitTimeout as exc:
        raise WaitTimeout(f"{exc}; last answer: {seen[-1] if seen else None}") from exc
    return seen[0]


def serve(
    judge: str, namespace: str, canary: Pod, stable: Pod, rates: tuple[float, float]
) -> tuple[dict[int, int], dict[int, int]]:
    """Open-loop load on both versions at once for a few seconds, as a router splits it,
    while the judge is asked twice a second (as Argo's analysis asks it every second). The
    judge compares the versions within each interval between its looks, so both must serve in
    the same intervals. Returns the status codes each version answered."""
    specs = [
        LoadSpec(url=pod.service.url, rate=rate, duration=LOAD_S, mix=(INDEX,))
        for pod, rate in zip((canary, stable), rates, strict=True)
    ]
    with BackgroundLoad(specs[0]) as to_canary, BackgroundLoad(specs[1]) as to_stable:

        def done() -> bool:
            ask(judge, namespace)
            return not (to_canary.running or to_stable.running)

        wait_for(done, what="the load on both versions to end", timeout=LOAD_S + 30, interval=0.5)
        return to_canary.wait().by_status(), to_stable.wait().by_status()


def scraped(prometheus: PrometheusServer, pod: Pod) -> None:
    prometheus.wait_until_scraped(pod.address, timeout=SCRAPED_WITHIN_S)


def test_a_failing_canary_fails_on_counts_since_the_first_look(
    prometheus_server: PrometheusServer,
    prom: PromClient,
    start_pod: StartPod,
    start_judge: StartJudge,
    namespace: str,
) -> None:
    stable = start_pod("v1")
    canary = start_pod("v2", {"SERVICE_ERROR_RATE": "0.5", "SERVICE_SEED": "7"})
    judge = start_judge(prometheus_server.url)
    # The stable's history before the canary: in Prometheus before the judge's first look.
    assert stable.get(30) == [200] * 30
    history = f'http_requests_total{{namespace="{namespace}", pod="{stable.name}", route="/"}}'

    def settled() -> bool:
        # The judge counts from its first look less its settle time: the history must be older.
        at = time.time() - DEFAULT_SETTLE_S - 1.0
        return (prom.scalar(history, at=at) or 0) >= 30

    wait_for(settled, what=f"{history} >= 30 to have settled", timeout=SCRAPED_WITHIN_S)
    scraped(prometheus_server, canary)

    first = ask(judge, namespace)
    assert first["decision"] == "continue"
    assert first["reason"] == "no canary requests yet"
    assert first["counts"]["stable"]["requests"] == 0

    canary_codes, stable_codes = serve(judge, namespace, canary, stable, (10, 20))
    assert set(stable_codes) == {200}
    served = sum(canary_codes.values())
    body = wait_until_counted(judge, namespace, canary=served, stable=stable_codes[200])
    failed = canary_codes.get(500, 0)
    assert 0 < failed < served
    assert body["decision"] == "fail", body
    assert body["counts"]["canary"]["errors"] == failed
    assert body["counts"]["stable"]["errors"] == 0
    assert body["p_value"] <= 0.01 < body["e_value"]
    assert body["tests"]["errors"]["canary_events"] == failed
    assert body["counts"]["canary"]["latency_buckets"]["+Inf"] == served


def test_a_healthy_canary_passes_after_its_request_budget(
    prometheus_server: PrometheusServer,
    start_pod: StartPod,
    start_judge: StartJudge,
    namespace: str,
) -> None:
    stable, canary = start_pod("v1"), start_pod("v2")
    judge = start_judge(prometheus_server.url, "--pass-after-requests", "25")
    for pod in (stable, canary):
        scraped(prometheus_server, pod)
    assert ask(judge, namespace)["decision"] == "continue"
    canary_codes, stable_codes = serve(judge, namespace, canary, stable, (10, 20))
    assert set(canary_codes) == set(stable_codes) == {200}
    body = wait_until_counted(judge, namespace, canary_codes[200], stable_codes[200])
    assert body["decision"] == "pass", body
    assert body["reason"].startswith(
        f"no evidence against the canary after {canary_codes[200]} requests (>= 25"
    )


def test_a_slower_canary_fails_on_latency(
    prometheus_server: PrometheusServer,
    start_pod: StartPod,
    start_judge: StartJudge,
    namespace: str,
) -> None:
    stable = start_pod("v1")
    canary = start_pod("v2", {"SERVICE_LATENCY_MS": "300"})
    judge = start_judge(prometheus_server.url)
    for pod in (stable, canary):
        scraped(prometheus_server, pod)
    ask(judge, namespace)
    canary_codes, stable_codes = serve(judge, namespace, canary, stable, (5, 20))
    assert set(canary_codes) == set(stable_codes) == {200}
    body = wait_until_counted(judge, namespace, canary_codes[200], stable_codes[200])
    assert body["decision"] == "fail", body
    assert "canary requests slower than" in body["reason"]
    assert body["counts"]["canary"]["errors"] == 0
    latency = body["tests"]["latency"]
    assert latency["canary_events"] == canary_codes[200]
    assert latency["slower_than_s"] in (0.025, 0.05, 0.1, 0.25)


def test_bad_questions_and_an_unreachable_prometheus_are_errors_not_verdicts(
    start_judge: StartJudge,
) -> None:
    judge = start_judge(f"http://127.0.0.1:{free_port()}")
    cases = {
        "namespace=Bad_NS&canary-hash=a&stable-hash=b": (
            400,
            "query parameter namespace: expected a DNS-1123 label, got 'Bad_NS'",
        ),
        "namespace=ns&stable-hash=b": (
            400,
            "query parameter canary-hash: expected a Kubernetes label value, got ''",
        ),
        "namespace=ns&canary-hash=a&stable-hash=a": (
            400,
            "canary-hash and stable-hash are both 'a': nothing to compare",
        ),
        "namespace=ns&canary-hash=a&stable-hash=b": (503, "is unreachable: connection refused"),
    }
    for query, (status, message) in cases.items():
        response = httpx.get(f"{judge}/judge?{query}", timeout=10.0)
        assert response.status_code == status, (query, response.text)
        assert message in response.json()["error"], (query, response.text)


def test_the_command_needs_a_prometheus() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pytest_rollout.judge", "--port", "1"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert result.returncode == 2
    assert "error: --prometheus URL or $JUDGE_PROMETHEUS_URL is required" in result.stderr
