"""What the local backend admits: the kinds it runs, each object checked before the first one
is created, and every pod template checked against the local subset and the target's images.

As an API server validates an object before it stores it, a mistake is a ConfigError naming the
file, line, object and field, raised before anything starts: never a pod that fails later.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pytest_rollout.backends.local.pod_spec import PodSpec
from pytest_rollout.backends.local.scrape import check_scrape_annotations
from pytest_rollout.config import TargetConfig
from pytest_rollout.engine.validation import check_manifests
from pytest_rollout.errors import ConfigError
from pytest_rollout.manifests import Manifest

# In the order they are applied: what others refer to first.
SUPPORTED_KINDS = (
    "Service",
    "HTTPRoute",
    "AnalysisTemplate",
    "ClusterAnalysisTemplate",
    "Deployment",
    "Rollout",
)
POD_SPEC_PATH = ("spec", "template", "spec")
"""Where a workload's pod spec sits in a Deployment or Rollout."""


def admission_order(manifests: Iterable[Manifest]) -> list[Manifest]:
    """The objects in the order they are created, once every one is known to be supported
    (its kind, and the fields of Rollouts and analysis templates)."""
    objects = list(manifests)
    for manifest in objects:
        if manifest.kind not in SUPPORTED_KINDS:
            raise manifest.error(
                (),
                f"kind {manifest.kind} is not supported by the local backend "
                f"(supported: {', '.join(SUPPORTED_KINDS)})",
            )
    check_manifests(objects)
    order = {kind: index for index, kind in enumerate(SUPPORTED_KINDS)}
    return sorted(objects, key=lambda m: order[m.kind])


def check_pod_template(
    template: Mapping[str, Any],
    target: TargetConfig,
    *,
    time_scale: float,
    where: str,
    manifest: Manifest | None = None,
) -> None:
    """The pod template runs here: its spec is in the local subset, its scrape annotations are
    readable and every container's image has an ``[images]`` entry. Errors name the field's
    file and line in ``manifest`` when the template is the manifest's own, else they start with
    ``where``."""
    try:
        spec = PodSpec.from_manifest(
            template.get("spec"), path=POD_SPEC_PATH, manifest=manifest, time_scale=time_scale
        )
    except ConfigError as exc:
        if manifest is not None:
            raise
        raise ConfigError(f"{where}: {exc}") from exc
    check_scrape_annotations(template, where=where, manifest=manifest)
    containers = [
        *((("initContainers", index), c) for index, c in enumerate(spec.init_containers)),
        (("containers", 0), spec.container),
    ]
    for (field, index), container in containers:
        try:
            target.image(container.image)
        except ConfigError as exc:
            if manifest is not None:
                raise manifest.error((*POD_SPEC_PATH, field, index, "image"), str(exc)) from exc
            raise ConfigError(f"{where}: {exc}") from exc
