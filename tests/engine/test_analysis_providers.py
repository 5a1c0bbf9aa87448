"""Analysis providers against real parts: a real Prometheus scraping reference-service pods,
a real HTTP server, real processes for Jobs."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sys
import textwrap
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import ExitStack, asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from aiohttp import web

from pytest_rollout import _proc
from pytest_rollout._wait import async_wait_for, wait_for
from pytest_rollout.backends.local.prometheus import PrometheusServer, pod_target
from pytest_rollout.engine.analysis import (
    AnalysisPhase,
    AnalysisRun,
    AnalysisTemplate,
    Argument,
    JobLaunch,
    MeasureContext,
    Outcome,
    Providers,
    resolve_metrics,
)
from pytest_rollout.manifests import load_manifest_file, parse_manifests
from service.launcher import run_service
from tests.prom.prom_pods import next_pod_host

pytestmark = pytest.mark.slow  # starts real processes, or renders for seconds

P = AnalysisPhase
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "manifests" / "base"
PROMETHEUS_IN_CLUSTER = "prometheus.rollout-system.svc.cluster.local:9090"


def fixture_template(name: str) -> AnalysisTemplate:
    (manifest,) = load_manifest_file(FIXTURES / f"analysis-{name}.yaml")
    return AnalysisTemplate.from_manifest(manifest)


def one_metric(fields: str, provider: str) -> AnalysisTemplate:
    """A template with metric ``m`` made of ``fields`` (YAML) and ``provider`` (YAML)."""
    body = textwrap.indent(
        textwrap.dedent(fields) + "provider:\n" + textwrap.indent(textwrap.dedent(provider), "  "),
        "      ",
    )
    text = (
        "apiVersion: argoproj.io/v1alpha1\nkind: AnalysisTemplate\nmetadata:\n  name: t\n"
        "spec:\n  args:\n    - name: x\n      value: from-template\n  metrics:\n    - name: m\n"
        + body
    )
    (manifest,) = parse_manifests(text, Path("t.yaml"))
    return AnalysisTemplate.from_manifest(manifest)


def adjusted(template: AnalysisTemplate, **fields: Any) -> AnalysisTemplate:
    """A variant of ``template`` whose metrics have ``fields`` overridden."""
    metrics = tuple(replace(m, raw={**m.raw, **fields}) for m in template.metrics)
    return replace(template, metrics=metrics)


def map_hosts(mapping: Mapping[str, str]) -> Callable[[str], str]:
    """``resolve_url`` replacing ``host[:port]`` as the local backend maps cluster names."""

    def resolve(url: str) -> str:
        parts = urlsplit(url)
        target = mapping.get(parts.netloc) or mapping.get(parts.hostname or "")
        return urlunsplit(parts._replace(netloc=target)) if target else url

    return resolve


async def measure_once(
    providers: Providers, template: AnalysisTemplate, values: Mapping[str, str] | None = None
) -> Outcome:
    (metric,) = resolve_metrics(template.metrics, {"x": "from-template", **(values or {})})
    provider = providers.provider_for(metric)
    return await provider.measure(metric, MeasureContext("run", metric.name, 1))


# ================================================================================================
# Prometheus


@dataclass(frozen=True)
class Pods:
    namespace: str
    prometheus: PrometheusServer

    @property
    def providers(self) -> Providers:
        address = urlsplit(self.prometheus.url).netloc
        return Providers(resolve_url=map_hosts({PROMETHEUS_IN_CLUSTER: address}))


def _drive(urls: list[str], stop: threading.Event) -> None:
    # Steady traffic, so that rate() over the templates' 20 s window always has data.
    with httpx.Client(trust_env=False, timeout=2.0) as client:
        while not stop.is_set():
            for url in urls:
                with contextlib.suppress(httpx.HTTPError):
                    client.get(url)
            stop.wait(0.05)


@pytest.fixture(scope="module")
def pods(prometheus_server: PrometheusServer) -> Iterator[Pods]:
    """A healthy pod (hash ``good``) and one failing every request (hash ``bad``), scraped,
    with steady traffic to both."""
    namespace = f"analysis-{uuid.uuid4().hex[:8]}"
    before = prometheus_server.targets
    stop = threading.Event()
    with ExitStack() as stack:
        stack.callback(prometheus_server.set_targets, before)
        targets = []
        urls = []
        for name, env in (("good", {}), ("bad", {"SERVICE_ERROR_RATE": "1"})):
            service = stack.enter_context(
                run_service({"SERVICE_VERSION": name, **env}, host=next_pod_host())
            )
            targets.append(
                pod_target(
                    f"{service.host}:{service.port}",
                    namespace=namespace,
                    pod=f"svc-{name}",
                    pod_labels={"app": "svc", "rollouts-pod-template-hash": name},
                )
            )
            urls.append(service.url + "/")
        prometheus_server.set_targets([*before, *targets])
        driver = threading.Thread(target=_drive, args=(urls, stop), daemon=True)
        driver.start()
        stack.callback(driver.join, 5)
        stack.callback(stop.set)
        with prometheus_server.client() as prom:
            selector = f'http_requests_total{{namespace="{namespace}", route="/"}}'
            query = f"sum by (rollouts_pod_template_hash) (rate({selector}[20s]))"
            prom.wait_for_data(
                query, timeout=30, predicate=lambda s: len(s) == 2 and all(x.value > 0 for x in s)
            )
        yield Pods(namespace, prometheus_server)


def test_a_failing_canary_fails_the_projects_error_rate_analysis(pods: Pods) -> None:
    run = AnalysisRun(
        "bad-canary-1",
        fixture_template("error-rate"),
        [Argument("namespace", pods.namespace), Argument("canary-hash", "bad")],
        providers=pods.providers,
    )
    status = asyncio.run(run.run())
    assert status.phase is P.FAILED, status
    assert (
        status.message == 'Metric "error-rate" assessed Failed due to failed (1) > failureLimit (0)'
    )
    (measurement,) = status.metric("error-rate").measurements
    assert measurement.value == "[1]"
    assert measurement.result == [1.0]


def test_a_healthy_canary_passes_an_error_rate_analysis(pods: Pods) -> None:
    template = fixture_template("error-rate")
    quick = adjusted(template, interval="1s", count=2)
    run = AnalysisRun(
        "good-canary-1",
        quick,
        [Argument("namespace", pods.namespace), Argument("canary-hash", "good")],
        providers=pods.providers,
    )
    status = asyncio.run(run.run())
    assert (status.phase, status.message) == (P.SUCCESSFUL, ""), status
    assert status.metric("error-rate").values == ["[0]", "[0]"]


@pytest.mark.parametrize(
    ("query", "value", "result"),
    [
        ("scalar(vector(0.25))", "0.25", 0.25),
        ('http_requests_total{namespace="no-such-namespace"}', "[]", []),
        ("vector(1) / vector(2)", "[0.5]", [0.5]),
    ],
)
def test_prometheus_result_shapes(pods: Pods, query: str, value: str, result: object) -> None:
    template = one_metric(
        "", f"prometheus:\n  address: http://{PROMETHEUS_IN_CLUSTER}\n  query: '{query}'\n"
    )
    outcome = asyncio.run(measure_once(pods.providers, template))
    assert (outcome.phase, outcome.value, outcome.result) == (P.SUCCESSFUL, value, result)


def test_nan_and_empty_results_reach_the_conditions(pods: Pods) -> None:
    guarded = (
        "successCondition: len(result) > 0 && !isNaN(result[0]) && result[0] < 1\n"
        "failureCondition: len(result) > 0 && result[0] >= 1\n"
    )
    nan = one_metric(
        guarded,
        f"prometheus:\n  address: http://{PROMETHEUS_IN_CLUSTER}\n  query: vector(0) / vector(0)\n",
    )
    outcome = asyncio.run(measure_once(pods.providers, nan))
    assert (outcome.phase, outcome.value) == (P.INCONCLUSIVE, "[NaN]")
    unguarded = one_metric(
        "successCondition: result[0] < 1\n",
        f"prometheus:\n  address: http://{PROMETHEUS_IN_CLUSTER}\n"
        "  query: 'up{job=\"nothing\"}'\n",
    )
    outcome = asyncio.run(measure_once(pods.providers, unguarded))
    assert outcome.phase is P.ERROR
    assert outcome.message == (
        'could not evaluate successCondition "result[0] < 1": metric result is nil or empty: '
        "no data returned from the metric provider"
    )


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("sum(", "rejected query 'sum(': "),
        ("up[1m]", "Prometheus metric type not supported: range vector (matrix)"),
    ],
)
def test_prometheus_errors_are_error_measurements(pods: Pods, query: str, message: str) -> None:
    template = one_metric(
        "", f"prometheus:\n  address: http://{PROMETHEUS_IN_CLUSTER}\n  query: '{query}'\n"
    )
    outcome = asyncio.run(measure_once(pods.providers, template))
    assert outcome.phase is P.ERROR
    assert message in outcome.message


def test_unreachable_or_unmapped_prometheus_is_an_error_measurement() -> None:
    port = _proc.free_port()
    down = one_metric("", f"prometheus:\n  address: http://127.0.0.1:{port}\n  query: up\n")
    with Providers() as providers:
        outcome = asyncio.run(measure_once(providers, down))
        assert outcome.phase is P.ERROR
        assert (
            outcome.message
            == f"Prometheus at http://127.0.0.1:{port} is unreachable: connection refused"
        )
        unmapped = one_metric(
            "", f"prometheus:\n  address: http://{PROMETHEUS_IN_CLUSTER}\n  query: up\n"
        )
        outcome = asyncio.run(measure_once(providers, unmapped))
    assert outcome.phase is P.ERROR
    assert outcome.message.startswith(
        f"refusing to reach http://{PROMETHEUS_IN_CLUSTER}: only 127.0.0.0/8"
    )


# ================================================================================================
# Web


async def _json(_: web.Request) -> web.Response:
    return web.json_response({"version": "v2", "data": {"ok": True, "n": 3, "none": None}})


async def _status(request: web.Request) -> web.Response:
    return web.Response(status=int(request.match_info["code"]), text="nope")


async def _text(_: web.Request) -> web.Response:
    return web.Response(text="all good")


async def _slow(_: web.Request) -> web.Response:
    await asyncio.sleep(2.0)  # the added latency is what is under test
    return web.json_response({"late": True})


async def _echo(request: web.Request) -> web.Response:
    raw = await request.text()
    return web.json_response(
        {
            "method": request.method,
            "contentType": request.headers.get("Content-Type", ""),
            "token": request.headers.get("X-Token", ""),
            "body": raw,
        }
    )


@asynccontextmanager
async def http_server() -> AsyncIterator[str]:
    """A real aiohttp server on a free loopback port; yields ``host:port``."""
    app = web.Application()
    app.router.add_get("/json", _json)
    app.router.add_get("/status/{code}", _status)
    app.router.add_get("/text", _text)
    app.router.add_get("/slow", _slow)
    app.router.add_route("*", "/echo", _echo)
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.5)
    await runner.setup()
    port = _proc.free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def with_server(scenario: Callable[[str, Providers], Awaitable[None]]) -> None:
    async def main() -> None:
        async with http_server() as address:
            providers = Providers(resolve_url=map_hosts({"web.team-a.svc.cluster.local": address}))
            await scenario(address, providers)

    asyncio.run(main())


WEB = "web:\n  url: http://web.team-a.svc.cluster.local{path}\n"


def test_web_json_value_at_jsonpath_is_the_result() -> None:
    async def scenario(address: str, providers: Providers) -> None:
        ok = one_metric(
            "successCondition: result == true\n",
            WEB.format(path="/json") + "  jsonPath: '{$.data.ok}'\n",
        )
        outcome = await measure_once(providers, ok)
        assert (outcome.phase, outcome.value, outcome.result) == (P.SUCCESSFUL, "true", True)
        number = one_metric(
            "successCondition: asInt(result) == 3 && result == 3.0\n",
            WEB.format(path="/json") + "  jsonPath: '{$.data.n}'\n",
        )
        outcome = await measure_once(providers, number)
        assert (outcome.phase, outcome.value, outcome.result) == (P.SUCCESSFUL, "3", 3.0)
        whole = one_metric("failureCondition: result.version != 'v2'\n", WEB.format(path="/json"))
        outcome = await measure_once(providers, whole)
        assert outcome.phase is P.SUCCESSFUL
        assert outcome.value == '{"data":{"n":3,"none":null,"ok":true},"version":"v2"}'

    with_server(scenario)


def test_web_errors_follow_argo() -> None:
    async def scenario(address: str, providers: Providers) -> None:
        outcome = await measure_once(providers, one_metric("", WEB.format(path="/status/503")))
        assert (outcome.phase, outcome.message) == (P.ERROR, "received non 2xx response code: 503")
        missing = one_metric("", WEB.format(path="/json") + "  jsonPath: '{$.data.missing}'\n")
        outcome = await measure_once(providers, missing)
        assert (outcome.phase, outcome.message) == (
            P.ERROR,
            "Could not find JSONPath in body: missing is not found",
        )
        null = one_metric(
            "successCondition: result == nil\n",
            WEB.format(path="/json") + "  jsonPath: '{$.data.none}'\n",
        )
        outcome = await measure_once(providers, null)
        assert (outcome.phase, outcome.value) == (P.SUCCESSFUL, "null")

    with_server(scenario)


def test_a_body_that_is_not_json_is_successful_without_conditions() -> None:
    async def scenario(address: str, providers: Providers) -> None:
        template = one_metric(
            "successCondition: result == 'something else'\n", WEB.format(path="/text")
        )
        outcome = await measure_once(providers, template)
        assert (outcome.phase, outcome.value) == (P.SUCCESSFUL, "all good")

    with_server(scenario)


def test_post_json_body_and_put_text_body_with_headers_and_args() -> None:
    async def scenario(address: str, providers: Providers) -> None:
        post = one_metric(
            "successCondition: result.contentType == 'application/json'\n",
            WEB.format(path="/echo")
            + "  method: POST\n  headers:\n    - key: X-Token\n      value: 't-{{args.x}}'\n"
            + "  jsonBody:\n    release: '{{ args.x }}'\n    weight: 5\n",
        )
        outcome = await measure_once(providers, post, {"x": "v2"})
        assert outcome.phase is P.SUCCESSFUL, outcome
        assert outcome.result == {
            "method": "POST",
            "contentType": "application/json",
            "token": "t-v2",
            "body": '{"release":"v2","weight":5}',
        }
        put = one_metric("", WEB.format(path="/echo") + "  method: PUT\n  body: plain {{args.x}}\n")
        outcome = await measure_once(providers, put, {"x": "text"})
        assert outcome.result["method"] == "PUT"
        assert outcome.result["body"] == "plain text"

    with_server(scenario)


def test_web_timeout_and_refused_connection_are_errors() -> None:
    async def scenario(address: str, providers: Providers) -> None:
        slow = one_metric("", WEB.format(path="/slow") + "  timeoutSeconds: 1\n")
        outcome = await measure_once(providers, slow)
        assert (outcome.phase, outcome.message) == (
            P.ERROR,
            'Get "http://web.team-a.svc.cluster.local/slow": context deadline exceeded '
            "(Client.Timeout exceeded while awaiting headers)",
        )
        port = _proc.free_port()
        refused = one_metric("", f"web:\n  url: http://127.0.0.1:{port}/\n")
        outcome = await measure_once(providers, refused)
        assert (outcome.phase, outcome.message) == (
            P.ERROR,
            f'Get "http://127.0.0.1:{port}/": '
            f"dial tcp 127.0.0.1:{port}: connect: connection refused",
        )

    with_server(scenario)


def test_projects_smoke_check_passes_against_the_reference_service() -> None:
    with run_service({"SERVICE_VERSION": "v2"}, host=next_pod_host()) as service:
        providers = Providers(
            resolve_url=map_hosts(
                {"canary.team-a.svc.cluster.local": f"{service.host}:{service.port}"}
            )
        )
        run = AnalysisRun(
            "smoke-1",
            fixture_template("smoke-check"),
            [Argument("namespace", "team-a"), Argument("service", "canary")],
            providers=providers,
        )
        status = asyncio.run(run.run())
    assert (status.phase, status.message) == (P.SUCCESSFUL, ""), status
    metric = status.metric("home-page")
    assert metric.values == ['"v2"', '"v2"', '"v2"']
    starts = [m.started_at for m in metric.measurements]
    assert all(1.9 <= b - a < 4.0 for a, b in itertools.pairwise(starts)), starts


def test_projects_smoke_check_fails_at_once_on_a_bad_gateway() -> None:
    async def scenario(address: str, providers: Providers) -> None:
        bad = Providers(resolve_url=map_hosts({"canary.team-a.svc.cluster.local": f"{address}"}))
        template = fixture_template("smoke-check")
        web = dict(template.metrics[0].raw["provider"]["web"])
        web["url"] = "http://{{args.service}}.{{args.namespace}}.svc.cluster.local/status/502"
        broken = adjusted(template, provider={"web": web})
        run = AnalysisRun(
            "smoke-2",
            broken,
            [Argument("namespace", "team-a"), Argument("service", "canary")],
            providers=bad,
        )
        status = await run.run()
        assert status.phase is P.ERROR
        assert status.message == (
            'Metric "home-page" assessed Error due to consecutiveErrors (1) > '
            'consecutiveErrorLimit (0): "Error Message: received non 2xx response code: 502"'
        )
        assert len(status.metric("home-page").measurements) == 1

    with_server(scenario)


# ================================================================================================
# Job


def python_launcher(container: Mapping[str, Any]) -> JobLaunch:
    """Maps ``command: [python, ...]`` to this interpreter, with the container's env."""
    command = list(container.get("command", [])) + list(container.get("args", []))
    if command[:1] == ["python"]:
        command[0] = sys.executable
    env = {"PATH": "/usr/bin:/bin"}
    env.update({e["name"]: e.get("value", "") for e in container.get("env", [])})
    return JobLaunch(argv=command, env=env, cwd=container.get("workingDir"))


def job(script: str, *, backoff: int = 0, env: str = "") -> str:
    return textwrap.dedent(
        f"""\
        job:
          spec:
            backoffLimit: {backoff}
            template:
              spec:
                restartPolicy: Never
                containers:
                  - name: smoke
                    image: smoke-tests:1
                    command: [python, -c, {script!r}]
        """
    ) + textwrap.indent(env, "            ")


def test_job_exit_code_is_the_verdict(tmp_path: Path) -> None:
    providers = Providers(job_launcher=python_launcher, job_log_dir=tmp_path)
    passing = one_metric("", job("print('smoke ok')"))
    outcome = asyncio.run(measure_once(providers, passing))
    assert outcome.phase is P.SUCCESSFUL
    assert outcome.metadata == {"job-name": "run.m.1", "attempts": "1", "exit-code": "0"}
    assert (tmp_path / "run.m.1.0.log").read_text() == "smoke ok\n"
    failing = one_metric("", job("import sys; sys.exit(3)"))
    outcome = asyncio.run(measure_once(providers, failing))
    assert (outcome.phase, outcome.metadata["exit-code"], outcome.message) == (P.FAILED, "3", "")


def test_failed_job_fails_the_run_with_argos_message() -> None:
    run = AnalysisRun(
        "smoke-job",
        one_metric(
            "",
            job(
                "import os, sys; sys.exit(0 if os.environ['EXPECT'] == 'v2' else 1)",
                env="env:\n  - name: EXPECT\n    value: '{{args.x}}'\n",
            ),
        ),
        [Argument("x", "v1")],
        providers=Providers(job_launcher=python_launcher),
    )
    status = asyncio.run(run.run())
    assert (status.phase, status.message) == (
        P.FAILED,
        'Metric "m" assessed Failed due to failed (1) > failureLimit (0)',
    )


def test_job_is_retried_up_to_its_backoff_limit(tmp_path: Path) -> None:
    marker = tmp_path / "attempted"
    script = (
        f"import pathlib, sys; p = pathlib.Path({str(marker)!r}); first = not p.exists(); "
        "p.touch(); sys.exit(1 if first else 0)"
    )
    providers = Providers(job_launcher=python_launcher, job_backoff_base=0.2)
    outcome = asyncio.run(measure_once(providers, one_metric("", job(script, backoff=1))))
    assert outcome.phase is P.SUCCESSFUL
    assert outcome.metadata["attempts"] == "2"


def test_a_command_that_cannot_start_fails_the_job() -> None:
    def launcher(container: Mapping[str, Any]) -> JobLaunch:
        return JobLaunch(argv=["/nonexistent/smoke-test"])

    providers = Providers(job_launcher=launcher)
    outcome = asyncio.run(measure_once(providers, one_metric("", job("pass"))))
    assert outcome.phase is P.FAILED
    assert outcome.metadata["exit-code"] == "128"
    assert "cannot start '/nonexistent/smoke-test'" in outcome.metadata["reason"]


def test_terminating_a_running_job_stops_its_process() -> None:
    run = AnalysisRun(
        "long-job",
        one_metric("", job("import time; time.sleep(60)")),
        providers=Providers(job_launcher=python_launcher),
    )

    async def scenario() -> None:
        task = asyncio.create_task(run.run())

        async def job_process() -> _proc.ManagedProcess | None:
            found = [
                p for p in _proc.live_processes() if p.name == "job/long-job.m.1" and p.running()
            ]
            return found[0] if found else None

        process = await async_wait_for(job_process, what="the Job's process to run", timeout=10)
        run.terminate()
        status = await asyncio.wait_for(task, timeout=15)
        assert (status.phase, status.message) == (P.SUCCESSFUL, "Run Terminated")
        (measurement,) = status.metric("m").measurements
        assert measurement.message == "Metric Terminated"
        assert not process.running()
        assert process not in _proc.live_processes()

    asyncio.run(scenario())
    wait_for(
        lambda: not any(p.name.startswith("job/long-job") for p in _proc.live_processes()),
        what="no job process left",
        timeout=5,
    )
