"""Metric providers: take one measurement of a resolved metric, asynchronously.

Followed (argoproj/argo-rollouts):

- ``metricproviders/prometheus/prometheus.go``: an instant query at "now" with the metric's
  timeout (default 30 s); a vector becomes a list of floats (empty: ``[]``), a scalar a float,
  any other type is ``Prometheus metric type not supported``; a failed query is an Error.
- ``metricproviders/webmetric/webmetric.go``: GET (default), POST or PUT with the headers and
  ``body``/``jsonBody`` (which sets ``Content-Type: application/json``), timeout
  ``timeoutSeconds`` (default 10); a non-2xx answer is an Error ``received non 2xx response
  code: N``; a JSON answer is decoded as Go does (numbers are floats) and the value at
  ``jsonPath`` is the result; a body that is not JSON is Successful with the text as value,
  without evaluating conditions.
- ``metricproviders/job/job.go``: the Job runs, the measurement stays Running until it
  completes: Successful when it succeeded, Failed when it failed; terminating it deletes it and
  records Successful (``Metric Terminated``). Locally the Job's one container is a process and
  its exit code is the verdict; a failed attempt is retried up to ``backoffLimit`` (default 6)
  times after Kubernetes' back-off (10 s, doubling, capped at 6 min), as the Job controller does.

Cluster host names in URLs (``prometheus.rollout-system.svc.cluster.local``) are mapped by the
caller's ``resolve_url``; by default only loopback addresses may be reached.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import json
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx

from pytest_rollout._proc import ManagedProcess
from pytest_rollout.engine.analysis.evaluate import evaluate_result
from pytest_rollout.engine.analysis.formatting import go_json, prometheus_value
from pytest_rollout.engine.analysis.jsonpath import JsonPathError, JsonPathNoValue
from pytest_rollout.engine.analysis.model import (
    JobRun,
    Metric,
    PrometheusQuery,
    WebRequest,
    web_payload_problem,
)
from pytest_rollout.engine.analysis.phases import AnalysisPhase
from pytest_rollout.errors import ConfigError, ProcessError, PrometheusError
from pytest_rollout.prom import PromClient

JOB_BACKOFF_BASE_S = 10.0
JOB_BACKOFF_CAP_S = 360.0
JOB_NAME_KEY = "job-name"


@dataclass(frozen=True)
class MeasureContext:
    """What a provider may need to know about the measurement it takes."""

    run_name: str
    metric_name: str
    index: int
    """1-based: measurements and errors so far plus one (Argo's Job name suffix)."""


@dataclass(frozen=True)
class Outcome:
    """A finished measurement: its phase, value text, the condition input and any error."""

    phase: AnalysisPhase
    value: str = ""
    result: Any = None
    message: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)


def error_outcome(message: str, **metadata: str) -> Outcome:
    """Argo's ``MarkMeasurementError``: phase Error with the error's text."""
    return Outcome(AnalysisPhase.ERROR, message=message, metadata=metadata)


class MetricProvider(Protocol):
    """Takes measurements of one kind."""

    @property
    def terminable(self) -> bool:
        """Whether an in-flight measurement is stopped (and counted Successful) on termination;
        otherwise it is allowed to finish, as Argo's synchronous providers always do."""
        ...

    async def measure(self, metric: Metric, context: MeasureContext) -> Outcome:
        """Measure once. Failures are Error outcomes, not exceptions."""
        ...


class ProviderFactory(Protocol):
    """Gives the provider for a metric; ProviderError when it cannot (an Error measurement)."""

    def provider_for(self, metric: Metric) -> MetricProvider: ...


class ProviderError(Exception):
    """No provider can be made for a metric; the measurement is an Error with this text."""


UrlResolver = Callable[[str], str]
"""``resolve_url(url) -> url``: maps an in-cluster URL to one this machine can reach."""


@dataclass(frozen=True)
class JobLaunch:
    """How to run a Job's container here: what the caller's launcher returns."""

    argv: Sequence[str]
    env: Mapping[str, str] | None = None
    """The process environment; None inherits this process's."""
    cwd: str | Path | None = None


JobLauncher = Callable[[Mapping[str, Any]], JobLaunch]
"""``job_launcher(container) -> JobLaunch``: maps a container (image, command, args, env) to a
local command line, as the local backend does for pods."""


def _identity(url: str) -> str:
    return url


class Providers:
    """The prometheus, web and job providers with the local backend's hooks.

    ``resolve_url`` maps cluster URLs to loopback ones; ``job_launcher`` maps a Job's container
    to a command line (without it, job metrics are Errors); ``job_log_dir`` keeps each Job's
    output; ``loopback_only`` refuses any other destination (the project's network rule).
    """

    def __init__(
        self,
        *,
        resolve_url: UrlResolver = _identity,
        job_launcher: JobLauncher | None = None,
        job_log_dir: Path | None = None,
        loopback_only: bool = True,
        job_backoff_base: float = JOB_BACKOFF_BASE_S,
    ) -> None:
        self.resolve_url = resolve_url
        self.job_launcher = job_launcher
        self.job_log_dir = job_log_dir
        self.loopback_only = loopback_only
        self.job_backoff_base = job_backoff_base
        self._prometheus = PrometheusProvider(self)
        self._web = WebProvider(self)
        self._job = JobProvider(self)

    def provider_for(self, metric: Metric) -> MetricProvider:
        if isinstance(metric.provider, PrometheusQuery):
            return self._prometheus
        if isinstance(metric.provider, WebRequest):
            return self._web
        if self.job_launcher is None:
            raise ProviderError(
                "job provider: no job launcher configured to run the Job's container locally"
            )
        return self._job

    def target(self, url: str) -> str:
        """``url`` mapped for this machine; ProviderError when it leaves loopback."""
        mapped = self.resolve_url(url)
        if self.loopback_only:
            host = urlsplit(mapped).hostname or ""
            if not _is_loopback(host):
                shown = f"{url} (mapped to {mapped})" if mapped != url else url
                raise ProviderError(
                    f"refusing to reach {shown}: only 127.0.0.0/8 is reachable here; "
                    "map cluster host names to loopback addresses with resolve_url"
                )
        return mapped

    def close(self) -> None:
        self._prometheus.close()

    def __enter__(self) -> Providers:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# --------------------------------------------------------------------------------------------
# Prometheus


class PrometheusProvider:
    """Instant queries through :class:`~pytest_rollout.prom.PromClient`."""

    terminable = False

    def __init__(self, providers: Providers) -> None:
        self._providers = providers
        self._clients: dict[tuple[str, float], tuple[PromClient, threading.Lock]] = {}

    async def measure(self, metric: Metric, context: MeasureContext) -> Outcome:
        spec = metric.provider
        assert isinstance(spec, PrometheusQuery)
        try:
            url = self._providers.target(spec.address)
        except ProviderError as exc:
            return error_outcome(str(exc))
        if spec.timeout <= 0:
            return error_outcome("context deadline exceeded")
        client, lock = self._client(url, spec.timeout)

        def query() -> float | list[float]:
            # One HTTP session per server, used by one thread at a time.
            with lock:
                return client.argo_result(spec.query)

        try:
            result = await asyncio.wait_for(
                asyncio.to_thread(query),
                # PromClient's own timeout ends the request; this bounds the thread hand-off.
                timeout=spec.timeout + 1.0,
            )
        except TimeoutError:
            return error_outcome(
                f"Prometheus at {url} did not answer within {spec.timeout:g}s: "
                "context deadline exceeded"
            )
        except (PrometheusError, ConfigError) as exc:
            return error_outcome(str(exc))
        phase, message = evaluate_result(result, metric)
        return Outcome(phase, value=prometheus_value(result), result=result, message=message)

    def _client(self, url: str, timeout: float) -> tuple[PromClient, threading.Lock]:
        key = (url, timeout)
        entry = self._clients.get(key)
        if entry is None:
            entry = self._clients[key] = (PromClient(url, timeout=timeout), threading.Lock())
        return entry

    def close(self) -> None:
        for client, _ in self._clients.values():
            client.close()
        self._clients.clear()


# --------------------------------------------------------------------------------------------
# Web


class WebProvider:
    """One HTTP request per measurement (httpx, asynchronous)."""

    terminable = False

    def __init__(self, providers: Providers) -> None:
        self._providers = providers

    async def measure(self, metric: Metric, context: MeasureContext) -> Outcome:
        spec = metric.provider
        assert isinstance(spec, WebRequest)
        problem = web_payload_problem(spec.method, spec.body, spec.json_body)
        if problem:
            return error_outcome(problem)
        operation = f'{spec.method[:1]}{spec.method[1:].lower()} "{spec.url}"'
        try:
            url = self._providers.target(spec.url)
        except ProviderError as exc:
            return error_outcome(f"{operation}: {exc}")
        headers = dict(spec.headers)
        content: bytes | None = None
        if spec.body:
            content = spec.body.encode()
        elif spec.json_body is not None:
            content = json.dumps(spec.json_body, separators=(",", ":")).encode()
            headers["Content-Type"] = "application/json"
        try:
            async with httpx.AsyncClient(
                timeout=spec.timeout, trust_env=False, follow_redirects=True
            ) as client:
                response = await client.request(spec.method, url, headers=headers, content=content)
        except httpx.TimeoutException:
            return error_outcome(
                f"{operation}: context deadline exceeded "
                "(Client.Timeout exceeded while awaiting headers)"
            )
        except httpx.UnsupportedProtocol:
            scheme = urlsplit(url).scheme
            return error_outcome(f'{operation}: unsupported protocol scheme "{scheme}"')
        except httpx.HTTPError as exc:
            return error_outcome(f"{operation}: {_transport_cause(exc, url)}")
        if not 200 <= response.status_code < 300:
            return error_outcome(f"received non 2xx response code: {response.status_code}")
        return _web_result(metric, spec, response.content)


def _web_result(metric: Metric, spec: WebRequest, body: bytes) -> Outcome:
    text = body.decode("utf-8", errors="replace")
    try:
        document = json.loads(text, parse_int=float, parse_constant=_reject_constant)
    except ValueError:
        return Outcome(AnalysisPhase.SUCCESSFUL, value=text, result=text)
    try:
        value = spec.json_path.find(document)
    except JsonPathNoValue as exc:
        return error_outcome(str(exc))
    except JsonPathError as exc:
        return error_outcome(f"Could not find JSONPath in body: {exc}")
    phase, message = evaluate_result(value, metric)
    return Outcome(phase, value=go_json(value), result=value, message=message)


def _reject_constant(name: str) -> float:
    # Go's decoder does not accept NaN or Infinity, so such a body is "not JSON".
    raise ValueError(f"{name} is not JSON")


def _transport_cause(exc: httpx.HTTPError, url: str) -> str:
    parts = urlsplit(url)
    address = f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(chain) < 10:
        chain.append(current)
        current = current.__cause__ or current.__context__
    for error in chain:
        if isinstance(error, ConnectionRefusedError) or (
            isinstance(error, OSError) and error.errno == errno.ECONNREFUSED
        ):
            return f"dial tcp {address}: connect: connection refused"
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"EOF ({exc})" if str(exc) else "EOF"
    if isinstance(exc, httpx.ConnectError):
        return f"dial tcp {address}: {exc}"
    return str(exc) or type(exc).__name__


# --------------------------------------------------------------------------------------------
# Job


class JobProvider:
    """A Job's container as a local process, retried up to ``backoffLimit``."""

    terminable = True

    def __init__(self, providers: Providers) -> None:
        self._providers = providers

    async def measure(self, metric: Metric, context: MeasureContext) -> Outcome:
        spec = metric.provider
        assert isinstance(spec, JobRun)
        launcher = self._providers.job_launcher
        if launcher is None:
            return error_outcome("job provider: no job launcher configured")
        job_name = f"{context.run_name}.{context.metric_name}.{context.index}"
        failures = 0
        while True:
            try:
                launch = launcher(spec.container)
            except ConfigError as exc:
                return error_outcome(f"job {job_name}: {exc}", **{JOB_NAME_KEY: job_name})
            exit_code, reason = await self._attempt(job_name, failures, launch)
            metadata = {
                JOB_NAME_KEY: job_name,
                "attempts": str(failures + 1),
                "exit-code": str(exit_code),
            }
            if reason:
                metadata["reason"] = reason
            if exit_code == 0:
                return Outcome(AnalysisPhase.SUCCESSFUL, metadata=metadata)
            failures += 1
            if failures > spec.backoff_limit:
                return Outcome(AnalysisPhase.FAILED, metadata=metadata)
            # Kubernetes' Job back-off before the next pod: this wait is the behaviour.
            await asyncio.sleep(self._backoff(failures))

    def _backoff(self, failures: int) -> float:
        base = self._providers.job_backoff_base
        return min(base * math.pow(2, failures - 1), JOB_BACKOFF_CAP_S)

    async def _attempt(self, job_name: str, attempt: int, launch: JobLaunch) -> tuple[int, str]:
        log_path = None
        if self._providers.job_log_dir is not None:
            log_path = self._providers.job_log_dir / f"{job_name}.{attempt}.log"
        process = ManagedProcess(
            f"job/{job_name}",
            list(launch.argv),
            env=launch.env,
            cwd=launch.cwd,
            log_path=log_path,
        )
        try:
            process.start()
        except ProcessError as exc:
            # A container that cannot start fails its pod, like a non-zero exit.
            return 128, str(exc)
        try:
            code = await asyncio.to_thread(process.wait)
        finally:
            if process.running():
                await asyncio.shield(asyncio.to_thread(process.stop))
            else:
                process.stop()
        return code, ""
