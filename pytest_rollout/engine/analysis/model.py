"""Typed model of the supported subset of ``AnalysisTemplate`` and ``ClusterAnalysisTemplate``.

A template is checked when it is loaded: every field outside the subset is an error
(``unsupported: spec.metrics[0].provider.datadog``), and every field that does not depend on
an argument is validated with Argo's own wording, located by file and line. Placeholders
(``{{args.x}}``) are resolved when a run starts (:meth:`MetricTemplate.resolve`), and the
resolved metric is validated again, as Argo's controller does.

Followed (argoproj/argo-rollouts): ``pkg/apis/rollouts/v1alpha1/analysis_types.go`` (fields,
``EffectiveCount``, defaults), ``utils/analysis/factory.go`` (``ValidateMetrics``,
``ValidateMetric`` messages), ``utils/analysis/helpers.go`` (``flattenMetrics``),
``metricproviders/prometheus/prometheus.go`` and ``metricproviders/webmetric/webmetric.go``
(provider settings and their errors), ``utils/defaults/defaults.go``
(``DefaultConsecutiveErrorLimit`` = 4); the Job spec subset follows Kubernetes ``batch/v1``.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, cast
from urllib.parse import urlsplit

from pytest_rollout.engine.analysis.args import (
    Argument,
    is_templated,
    parse_arguments,
    substitute_all,
)
from pytest_rollout.engine.analysis.durations import DurationError, parse_go_duration
from pytest_rollout.engine.analysis.jsonpath import JsonPath, JsonPathError, compile_jsonpath
from pytest_rollout.engine.analysis.structure import PROVIDERS, check_structure
from pytest_rollout.engine.expr import ExprError, compile_condition
from pytest_rollout.errors import ConfigError
from pytest_rollout.fieldcheck import UnsupportedFields
from pytest_rollout.manifests import FieldPath, Manifest, display_path, format_field_path, type_name

API_VERSION = "argoproj.io/v1alpha1"
TemplateKind = Literal["AnalysisTemplate", "ClusterAnalysisTemplate"]
TEMPLATE_KINDS: tuple[TemplateKind, ...] = ("AnalysisTemplate", "ClusterAnalysisTemplate")

DEFAULT_CONSECUTIVE_ERROR_LIMIT = 4
DEFAULT_PROMETHEUS_TIMEOUT_S = 30
DEFAULT_WEB_TIMEOUT_S = 10
DEFAULT_JOB_BACKOFF_LIMIT = 6  # Kubernetes' default for Job.spec.backoffLimit

WebMethod = Literal["GET", "POST", "PUT"]
WEB_METHODS: tuple[WebMethod, ...] = ("GET", "POST", "PUT")
RESTART_POLICIES = ("OnFailure", "Never")

_GO_ATOI = re.compile(r"[+-]?[0-9]+")


class MetricSpecError(ConfigError):
    """A metric is invalid. ``reason`` is Argo's text; ``path`` locates it in the metric."""

    def __init__(self, reason: str, path: Sequence[str | int] = ()) -> None:
        super().__init__(reason)
        self.reason = reason
        self.path = tuple(path)


# --------------------------------------------------------------------------------------------
# Resolved metrics: what a run measures


@dataclass(frozen=True)
class PrometheusQuery:
    """``provider.prometheus``: an instant query; ``timeout`` in seconds (Argo: 30)."""

    address: str
    query: str
    timeout: float = DEFAULT_PROMETHEUS_TIMEOUT_S


@dataclass(frozen=True)
class WebRequest:
    """``provider.web``: one HTTP request; the JSON answer at ``json_path`` is the result."""

    url: str
    json_path: JsonPath
    method: WebMethod = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    body: str = ""
    json_body: Mapping[str, Any] | None = None
    timeout: float = DEFAULT_WEB_TIMEOUT_S


@dataclass(frozen=True)
class JobRun:
    """``provider.job``: a Job's one container run as a process; its exit code is the verdict.

    ``container`` is the container as written (arguments substituted); the caller's launcher
    maps its image and command to a local command line.
    """

    name: str
    container: Mapping[str, Any]
    backoff_limit: int = DEFAULT_JOB_BACKOFF_LIMIT
    restart_policy: str = "Never"


MetricProviderSpec = PrometheusQuery | WebRequest | JobRun


@dataclass(frozen=True)
class Metric:
    """One resolved metric of a run: arguments substituted, durations in seconds."""

    name: str
    provider: MetricProviderSpec
    interval: float | None = None
    initial_delay: float | None = None
    count: int | None = None
    success_condition: str = ""
    failure_condition: str = ""
    failure_limit: int = 0
    inconclusive_limit: int = 0
    consecutive_error_limit: int = DEFAULT_CONSECUTIVE_ERROR_LIMIT

    @property
    def effective_count(self) -> int | None:
        """How many measurements complete the metric; ``None``: until terminated.

        Argo's ``EffectiveCount``: count 0 or unset means 1 without an interval and
        "indefinitely" with one.
        """
        if not self.count:
            return 1 if self.interval is None else None
        return self.count

    @property
    def provider_type(self) -> str:
        return _provider_type(self.provider)


def _provider_type(provider: MetricProviderSpec) -> str:
    if isinstance(provider, PrometheusQuery):
        return "prometheus"
    if isinstance(provider, WebRequest):
        return "web"
    return "job"


# --------------------------------------------------------------------------------------------
# Templates


@dataclass(frozen=True)
class MetricTemplate:
    """A metric as written in a template, placeholders unresolved."""

    name: str
    raw: Mapping[str, Any] = field(repr=False)
    source: str
    """``AnalysisTemplate/name`` (and the file), for messages."""


@dataclass(frozen=True)
class AnalysisTemplate:
    """An ``AnalysisTemplate`` or ``ClusterAnalysisTemplate`` of the supported subset."""

    kind: TemplateKind
    name: str
    args: tuple[Argument, ...]
    metrics: tuple[MetricTemplate, ...]
    manifest: Manifest | None = field(default=None, repr=False, compare=False)

    @property
    def ref(self) -> str:
        return f"{self.kind}/{self.name}"

    @classmethod
    def from_manifest(cls, manifest: Manifest) -> AnalysisTemplate:
        """Check and type ``manifest``; ConfigError with file:line for anything wrong."""
        if manifest.kind not in TEMPLATE_KINDS:
            raise manifest.error(
                ("kind",), f"expected {' or '.join(TEMPLATE_KINDS)}, got {manifest.kind!r}"
            )
        if manifest.api_version != API_VERSION:
            raise manifest.error(
                ("apiVersion",), f"expected {API_VERSION!r}, got {manifest.api_version!r}"
            )
        body = manifest.body
        found = UnsupportedFields(manifest)
        try:
            spec = check_structure(found, body)
            args = parse_arguments(manifest, ("spec", "args"), pod_template_hash=False, found=found)
        except ConfigError as exc:
            error = found.error(exc) or exc
            if error is exc:
                raise
            raise error from exc
        found.raise_if_any()
        metrics: list[MetricTemplate] = []
        seen: dict[str, int] = {}
        for index, raw in enumerate(spec["metrics"]):
            path = ("spec", "metrics", index)
            try:
                _MetricReader(raw, loading=True).read()
            except MetricSpecError as exc:
                raise _located(manifest, path, exc) from exc
            name = raw["name"]
            if name in seen:
                duplicate = MetricSpecError(f"duplicate name '{name}'", ("name",))
                raise _located(manifest, path, duplicate)
            seen[name] = index
            metrics.append(
                MetricTemplate(name, _freeze(raw), f"{manifest.ref} ({manifest.origin})")
            )
        return cls(
            kind=manifest.kind,
            name=manifest.name,
            args=args,
            metrics=tuple(metrics),
            manifest=manifest,
        )


class AnalysisSpecError(ConfigError):
    """The resolved metrics are invalid: Argo's ``ValidateMetrics`` text (``metrics[0]: ...``)."""


def resolve_metrics(metrics: Sequence[MetricTemplate], values: Mapping[str, str]) -> list[Metric]:
    """Every metric resolved, as the controller does when a run starts: arguments first
    (ArgumentError, e.g. ``failed to resolve {{args.x}}``), then validation
    (AnalysisSpecError, e.g. ``metrics[1]: interval must be specified when count > 1``)."""
    if not metrics:
        raise AnalysisSpecError("no metrics specified")
    substituted = [substitute_all(copy.deepcopy(dict(metric.raw)), values) for metric in metrics]
    resolved: list[Metric] = []
    names: set[str] = set()
    for index, raw in enumerate(substituted):
        try:
            metric = _MetricReader(raw, loading=False).read()
        except MetricSpecError as exc:
            raise AnalysisSpecError(f"metrics[{index}]: {exc.reason}") from exc
        assert metric is not None
        if metric.name in names:
            raise AnalysisSpecError(f"metrics[{index}]: duplicate name '{metric.name}'")
        names.add(metric.name)
        resolved.append(metric)
    return resolved


def flatten_metrics(templates: Iterable[AnalysisTemplate]) -> list[MetricTemplate]:
    """The metrics of several templates in order; a name used twice is Argo's error."""
    combined: list[MetricTemplate] = []
    names: set[str] = set()
    for template in templates:
        for metric in template.metrics:
            if metric.name in names:
                raise ConfigError(f"two metrics have the same name '{metric.name}'")
            names.add(metric.name)
            combined.append(metric)
    return combined


def _freeze(raw: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(copy.deepcopy(dict(raw)))


def _located(manifest: Manifest, path: tuple[str | int, ...], exc: MetricSpecError) -> ConfigError:
    where = f"{display_path(manifest.origin.path)}:{manifest.line_of((*path, *exc.path))}"
    return ConfigError(f"{where}: {manifest.ref}: {format_field_path(path)}: {exc.reason}")


# --------------------------------------------------------------------------------------------
# Values: types and Argo's validation (at load, fields with placeholders are left for later)


class _Deferred:
    """A value that holds a placeholder: known only once the run resolves its arguments."""


_DEFERRED = _Deferred()


class _MetricReader:
    """Reads one metric mapping into a :class:`Metric`.

    ``loading=True``: at template load, before arguments are known; a field holding a
    placeholder is skipped (as are checks that need it) and conditions are compiled, so a
    typo fails at load rather than at the first measurement. ``read()`` returns None then.
    """

    def __init__(self, raw: Mapping[str, Any], *, loading: bool) -> None:
        self.raw = raw
        self.loading = loading

    def read(self) -> Metric | None:
        raw = self.raw
        name = raw.get("name")
        if not isinstance(name, str) or not name:
            raise MetricSpecError("name: required: a non-empty string", ("name",))
        interval_text = self._string(raw, "interval")
        delay_text = self._string(raw, "initialDelay")
        count = self._int_or_string(raw, "count")
        failure_limit = self._int_or_string(raw, "failureLimit")
        inconclusive_limit = self._int_or_string(raw, "inconclusiveLimit")
        error_limit = self._int_or_string(raw, "consecutiveErrorLimit")
        success = self._string(raw, "successCondition")
        failure = self._string(raw, "failureCondition")

        # utils/analysis/factory.go ValidateMetric, in its order.
        known_count = count if isinstance(count, int) else None
        if known_count is not None and known_count > 0:
            if isinstance(failure_limit, int) and known_count < failure_limit:
                raise MetricSpecError("count must be >= failureLimit", ("count",))
            if isinstance(inconclusive_limit, int) and known_count < inconclusive_limit:
                raise MetricSpecError("count must be >= inconclusiveLimit", ("count",))
        if known_count is not None and known_count > 1 and not interval_text:
            raise MetricSpecError("interval must be specified when count > 1", ("count",))
        interval = self._duration(interval_text, "interval", "invalid interval string")
        delay = self._duration(delay_text, "initialDelay", "invalid startDelay string")
        if isinstance(interval, float) and interval <= 0:
            raise MetricSpecError(
                f"interval must be a positive duration, got {interval_text!r}", ("interval",)
            )
        if isinstance(failure_limit, int) and failure_limit < 0:
            if failure_limit == -1:
                raise MetricSpecError(
                    "failureLimit -1 disables the failure limit, which Argo Rollouts allows "
                    "only together with consecutiveSuccessLimit (not supported here)",
                    ("failureLimit",),
                )
            raise MetricSpecError("failureLimit must be >= 0", ("failureLimit",))
        if isinstance(inconclusive_limit, int) and inconclusive_limit < 0:
            raise MetricSpecError("inconclusiveLimit must be >= 0", ("inconclusiveLimit",))
        if isinstance(error_limit, int) and error_limit < 0:
            raise MetricSpecError("consecutiveErrorLimit must be >= 0", ("consecutiveErrorLimit",))
        provider = self._provider(raw.get("provider"))
        if self.loading:
            self._compile(success, "successCondition")
            self._compile(failure, "failureCondition")
            return None
        assert isinstance(provider, PrometheusQuery | WebRequest | JobRun)
        return Metric(
            name=name,
            provider=provider,
            interval=cast(float | None, interval),
            initial_delay=cast(float | None, delay),
            count=cast(int | None, count),
            success_condition=cast(str | None, success) or "",
            failure_condition=cast(str | None, failure) or "",
            failure_limit=cast(int | None, failure_limit) or 0,
            inconclusive_limit=cast(int | None, inconclusive_limit) or 0,
            consecutive_error_limit=(
                DEFAULT_CONSECUTIVE_ERROR_LIMIT if error_limit is None else cast(int, error_limit)
            ),
        )

    # -- field readers -----------------------------------------------------------------------

    def _deferred(self, value: str) -> bool:
        return self.loading and is_templated(value)

    def _string(
        self, raw: Mapping[str, Any], key: str, *, at: Sequence[str | int] = ()
    ) -> str | _Deferred | None:
        value = raw.get(key)
        path = (*at, key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise MetricSpecError(
                f"{format_field_path(path)}: expected a string, got {type_name(value)}"
                + (
                    ' (write durations like "30s" or "1m")'
                    if key in ("interval", "initialDelay")
                    else ""
                ),
                path,
            )
        if self._deferred(value):
            return _DEFERRED
        return value

    def _int_or_string(self, raw: Mapping[str, Any], key: str) -> int | _Deferred | None:
        value = raw.get(key)
        if value is None:
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            if self._deferred(value):
                return _DEFERRED
            # intstr.IntValue reads the string with strconv.Atoi.
            if _GO_ATOI.fullmatch(value):
                return int(value, 10)
            raise MetricSpecError(f"{key}: expected an integer, got {value!r}", (key,))
        raise MetricSpecError(f"{key}: expected an integer, got {type_name(value)}", (key,))

    def _int(self, raw: Mapping[str, Any], key: str, path: Sequence[str | int]) -> int | None:
        value = raw.get(key)
        if value is None:
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise MetricSpecError(
            f"{format_field_path((*path, key))}: expected an integer, got {type_name(value)}",
            (*path, key),
        )

    def _duration(
        self, text: str | _Deferred | None, key: str, prefix: str
    ) -> float | _Deferred | None:
        if text is None or isinstance(text, _Deferred):
            return text
        if text == "":
            return None
        try:
            return parse_go_duration(text)
        except DurationError as exc:
            raise MetricSpecError(f"{prefix}: {exc}", (key,)) from None

    def _compile(self, source: str | _Deferred | None, key: str) -> None:
        if not isinstance(source, str) or not source:
            return
        try:
            compile_condition(source)
        except ExprError as exc:
            raise MetricSpecError(f"{key}: {exc}", (key,)) from None

    # -- providers ---------------------------------------------------------------------------

    def _provider(self, raw: object) -> MetricProviderSpec | None:
        if raw is None:
            raise MetricSpecError("no provider specified", ("provider",))
        if not isinstance(raw, dict):
            raise _invalid(("provider",), f"expected a mapping, got {type_name(raw)}")
        present = [name for name in PROVIDERS if raw.get(name) is not None]
        if not present:
            raise MetricSpecError("no provider specified", ("provider",))
        if len(present) > 1:
            raise MetricSpecError("multiple providers specified", ("provider",))
        kind = present[0]
        body = raw[kind]
        path: FieldPath = ("provider", kind)
        if not isinstance(body, dict):
            raise _invalid(path, f"expected a mapping, got {type_name(body)}")
        if kind == "prometheus":
            return self._prometheus(body, path)
        if kind == "web":
            return self._web(body, path)
        return self._job(body, path)

    def _prometheus(self, body: Mapping[str, Any], path: FieldPath) -> PrometheusQuery | None:
        address = self._string(body, "address", at=path)
        query = self._string(body, "query", at=path)
        timeout = self._int(body, "timeout", path)
        # metricproviders/prometheus/prometheus.go NewPrometheusAPI / NewPrometheusProvider
        if address is None or address == "":
            raise MetricSpecError("prometheus address is not configured", (*path, "address"))
        if isinstance(address, str):
            parts = urlsplit(address)
            if not parts.scheme or not parts.netloc:
                raise MetricSpecError("prometheus address is not is url format", (*path, "address"))
        if query is None or query == "":
            raise _invalid((*path, "query"), "required: a PromQL query")
        if timeout is not None and timeout < 0:
            raise MetricSpecError("prometheus timeout should not be negative", (*path, "timeout"))
        if self.loading:
            return None
        return PrometheusQuery(
            address=cast(str, address),
            query=cast(str, query),
            timeout=float(DEFAULT_PROMETHEUS_TIMEOUT_S if timeout is None else timeout),
        )

    def _web(self, body: Mapping[str, Any], path: FieldPath) -> WebRequest | None:
        url = self._string(body, "url", at=path)
        if url is None or url == "":
            raise _invalid((*path, "url"), "required: the URL to request")
        method = self._string(body, "method", at=path) or "GET"
        if isinstance(method, str) and method not in WEB_METHODS:
            raise _invalid(
                (*path, "method"),
                f"unsupported method {method!r} (supported: {', '.join(WEB_METHODS)})",
            )
        text_body = self._string(body, "body", at=path)
        json_body = body.get("jsonBody")
        if json_body is not None and not isinstance(json_body, dict):
            raise _invalid((*path, "jsonBody"), f"expected a mapping, got {type_name(json_body)}")
        problem = web_payload_problem(
            method if isinstance(method, str) else "POST",
            text_body if isinstance(text_body, str) else ("x" if text_body else ""),
            json_body,
        )
        if problem:
            raise MetricSpecError(problem, (*path, "body" if text_body else "jsonBody"))
        headers = self._headers(body.get("headers"), (*path, "headers"))
        timeout = self._int(body, "timeoutSeconds", path)
        json_path_text = self._string(body, "jsonPath", at=path)
        json_path: JsonPath | None = None
        if not isinstance(json_path_text, _Deferred):
            try:
                json_path = compile_jsonpath(json_path_text or "")
            except JsonPathError as exc:
                raise _invalid((*path, "jsonPath"), str(exc)) from None
        if self.loading:
            return None
        assert json_path is not None
        return WebRequest(
            url=cast(str, url),
            json_path=json_path,
            method=cast(WebMethod, method),
            headers=headers,
            body=cast(str | None, text_body) or "",
            json_body=json_body,
            timeout=float(
                timeout if timeout is not None and timeout > 0 else DEFAULT_WEB_TIMEOUT_S
            ),
        )

    def _headers(self, raw: object, path: FieldPath) -> tuple[tuple[str, str], ...]:
        if raw is None:
            return ()
        if not isinstance(raw, list):
            raise _invalid(path, "expected a list of key/value mappings")
        headers: list[tuple[str, str]] = []
        for index, header in enumerate(raw):
            at: FieldPath = (*path, index)
            if not isinstance(header, dict):
                raise _invalid(at, "expected a mapping with key and value")
            key = self._string(header, "key", at=at)
            value = self._string(header, "value", at=at)
            if key is None or value is None:
                raise _invalid(at, "key and value are required")
            headers.append((str(key), str(value)))
        return tuple(headers)

    def _job(self, body: Mapping[str, Any], path: FieldPath) -> JobRun | None:
        spec_path: FieldPath = (*path, "spec")
        spec = body.get("spec")
        if not isinstance(spec, dict):
            raise _invalid(spec_path, "required: a Job spec")
        backoff = self._int(spec, "backoffLimit", spec_path)
        if backoff is not None and backoff < 0:
            raise _invalid((*spec_path, "backoffLimit"), "must be greater than or equal to 0")
        template = spec.get("template")
        if not isinstance(template, dict):
            raise _invalid((*spec_path, "template"), "required: a pod template")
        pod_path: FieldPath = (*spec_path, "template", "spec")
        pod = template.get("spec")
        if not isinstance(pod, dict):
            raise _invalid(pod_path, "required: a pod spec")
        policy = pod.get("restartPolicy")
        if isinstance(policy, str) and self._deferred(policy):
            policy = "Never"
        if policy not in RESTART_POLICIES:
            shown = "Required value" if policy is None else f"Unsupported value: {policy!r}"
            raise _invalid(
                (*pod_path, "restartPolicy"), f'{shown}: supported values: "OnFailure", "Never"'
            )
        containers = pod.get("containers")
        if not isinstance(containers, list) or len(containers) != 1:
            raise _invalid((*pod_path, "containers"), "expected exactly one container")
        container_path: FieldPath = (*pod_path, "containers", 0)
        container = containers[0]
        if not isinstance(container, dict):
            raise _invalid(container_path, "expected a mapping")
        self._check_container(container, container_path)
        if self.loading:
            return None
        return JobRun(
            name=str(container["name"]),
            container=MappingProxyType(copy.deepcopy(container)),
            backoff_limit=DEFAULT_JOB_BACKOFF_LIMIT if backoff is None else backoff,
            restart_policy=str(policy),
        )

    def _check_container(self, container: Mapping[str, Any], path: FieldPath) -> None:
        for key in ("name", "image"):
            value = self._string(container, key, at=path)
            if value is None or value == "":
                raise _invalid((*path, key), "Required value")
        for key in ("command", "args"):
            items = container.get(key)
            if items is not None and (
                not isinstance(items, list) or not all(isinstance(i, str) for i in items)
            ):
                raise _invalid((*path, key), "expected a list of strings")
        env = container.get("env")
        if env is not None:
            if not isinstance(env, list):
                raise _invalid((*path, "env"), "expected a list of name/value mappings")
            for index, variable in enumerate(env):
                at: FieldPath = (*path, "env", index)
                if not isinstance(variable, dict) or not isinstance(variable.get("name"), str):
                    raise _invalid(at, "expected a name and a value")
                value = variable.get("value")
                if value is not None and not isinstance(value, str):
                    raise _invalid((*at, "value"), f"expected a string, got {type_name(value)}")


def _invalid(path: FieldPath, message: str) -> MetricSpecError:
    return MetricSpecError(f"{format_field_path(path)}: {message}", path)


def web_payload_problem(method: str, body: str, json_body: object) -> str:
    """Argo's web provider errors for a request body (empty when the payload is fine)."""
    if body and json_body is not None:
        return "use either Body or JSONBody; both cannot exists for WebMetric payload"
    if (body or json_body is not None) and method == "GET":
        return "Body/JSONBody can only be used with POST or PUT WebMetric Method types"
    return ""
