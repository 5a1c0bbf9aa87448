"""Which fields an ``AnalysisTemplate`` may have: the supported subset, checked once at load.

Every field outside it is noted, with its path, in an
:class:`~pytest_rollout.fieldcheck.UnsupportedFields`, so that one error names them
all; a shape that cannot be read further (a list where a mapping belongs) is a ConfigError at
once. What the supported fields hold is :mod:`.model`'s business.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pytest_rollout.fieldcheck import UnsupportedFields
from pytest_rollout.manifests import Manifest

_SPEC_FIELDS = ("args", "metrics")
_METRIC_FIELDS = (
    "name",
    "interval",
    "initialDelay",
    "count",
    "successCondition",
    "failureCondition",
    "failureLimit",
    "inconclusiveLimit",
    "consecutiveErrorLimit",
    "provider",
)
PROVIDERS = ("prometheus", "web", "job")
_PROMETHEUS_FIELDS = ("address", "query", "timeout")
_WEB_FIELDS = ("url", "method", "headers", "body", "jsonBody", "timeoutSeconds", "jsonPath")
_HEADER_FIELDS = ("key", "value")
# A Job runs here as its container's process: there is no Job or pod object for ``metadata``
# (labels, annotations) to land on, and the image's working directory is its [images] ``cwd``
# in the target config, so both are refused rather than dropped.
_JOB_FIELDS = ("spec",)
_JOB_SPEC_FIELDS = ("template", "backoffLimit")
_POD_TEMPLATE_FIELDS = ("spec",)
_POD_SPEC_FIELDS = ("containers", "restartPolicy")
_CONTAINER_FIELDS = ("name", "image", "command", "args", "env")
_ENV_FIELDS = ("name", "value")


def _mapping_at(
    manifest: Manifest, path: tuple[str | int, ...], value: object, required: bool = False
) -> Mapping[str, Any] | None:
    if value is None and not required:
        return None
    if not isinstance(value, dict):
        raise manifest.error(path, "expected a mapping")
    return value


def check_structure(found: UnsupportedFields, body: Mapping[str, Any]) -> Mapping[str, Any]:
    """The template's spec, with every field outside the subset noted in ``found``; a
    ConfigError for a shape that cannot be read further."""
    manifest = found.manifest
    found.check_keys((), body, ("apiVersion", "kind", "metadata", "spec"))
    spec = body.get("spec")
    if not isinstance(spec, dict):
        raise manifest.error(("spec",), "required: a mapping with metrics")
    found.check_keys(("spec",), spec, _SPEC_FIELDS)
    raw_metrics = spec.get("metrics")
    if not isinstance(raw_metrics, list) or not raw_metrics:
        raise manifest.error(("spec", "metrics"), "no metrics specified")
    for index, raw in enumerate(raw_metrics):
        path = ("spec", "metrics", index)
        if not isinstance(raw, dict):
            raise manifest.error(path, "expected a mapping with name and provider")
        _check_metric_structure(found, path, raw)
    return spec


def _check_metric_structure(
    found: UnsupportedFields, path: tuple[str | int, ...], raw: Mapping[str, Any]
) -> None:
    manifest = found.manifest
    found.check_keys(path, raw, _METRIC_FIELDS)
    provider = _mapping_at(manifest, (*path, "provider"), raw.get("provider"))
    if provider is None:
        return
    where = (*path, "provider")
    found.check_keys(where, provider, PROVIDERS)
    if (
        prometheus := _mapping_at(manifest, (*where, "prometheus"), provider.get("prometheus"))
    ) is not None:
        found.check_keys((*where, "prometheus"), prometheus, _PROMETHEUS_FIELDS)
    if (web := _mapping_at(manifest, (*where, "web"), provider.get("web"))) is not None:
        found.check_keys((*where, "web"), web, _WEB_FIELDS)
        headers = web.get("headers")
        if isinstance(headers, list):
            for index, header in enumerate(headers):
                at = (*where, "web", "headers", index)
                entry = _mapping_at(manifest, at, header, required=True)
                assert entry is not None
                found.check_keys(at, entry, _HEADER_FIELDS)
    if (job := _mapping_at(manifest, (*where, "job"), provider.get("job"))) is not None:
        _check_job_structure(found, (*where, "job"), job)


def _check_job_structure(
    found: UnsupportedFields, path: tuple[str | int, ...], job: Mapping[str, Any]
) -> None:
    manifest = found.manifest
    found.check_keys(path, job, _JOB_FIELDS)
    spec = _mapping_at(manifest, (*path, "spec"), job.get("spec"))
    if spec is None:
        return
    found.check_keys((*path, "spec"), spec, _JOB_SPEC_FIELDS)
    template_path = (*path, "spec", "template")
    template = _mapping_at(manifest, template_path, spec.get("template"))
    if template is None:
        return
    found.check_keys(template_path, template, _POD_TEMPLATE_FIELDS)
    pod = _mapping_at(manifest, (*template_path, "spec"), template.get("spec"))
    if pod is None:
        return
    found.check_keys((*template_path, "spec"), pod, _POD_SPEC_FIELDS)
    containers = pod.get("containers")
    if not isinstance(containers, list):
        return
    if len(containers) > 1:
        found.add((*template_path, "spec", "containers", 1), ("one container per Job",))
    for index, container in enumerate(containers):
        at = (*template_path, "spec", "containers", index)
        entry = _mapping_at(manifest, at, container, required=True)
        assert entry is not None
        found.check_keys(at, entry, _CONTAINER_FIELDS)
        env = entry.get("env")
        if isinstance(env, list):
            for env_index, variable in enumerate(env):
                env_at = (*at, "env", env_index)
                env_entry = _mapping_at(manifest, env_at, variable, required=True)
                assert env_entry is not None
                found.check_keys(env_at, env_entry, _ENV_FIELDS)
