"""Which images the kube backend builds and loads into kind: every image reference the
target's manifests and variants use that an ``[images]`` entry with ``build`` runs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pytest_rollout.backends.kube.plan import BuildImage, LoadImages
from pytest_rollout.config import ImageRun, TargetConfig
from pytest_rollout.manifests import Manifest

WORKLOAD_KINDS = ("Deployment", "Rollout")


def pod_images(pod_spec: Mapping[str, Any]) -> list[str]:
    """The images of a pod spec's containers and init containers, in order."""
    images: list[str] = []
    for key in ("initContainers", "containers"):
        for container in pod_spec.get(key) or []:
            image = container.get("image") if isinstance(container, Mapping) else None
            if isinstance(image, str):
                images.append(image)
    return images


def image_references(manifests: Iterable[Manifest], target: TargetConfig) -> list[str]:
    """Distinct image references of the workloads' pod templates and the variants, sorted."""
    references: set[str] = set()
    for manifest in manifests:
        if manifest.kind in WORKLOAD_KINDS:
            spec = ((manifest.body.get("spec") or {}).get("template") or {}).get("spec") or {}
            references.update(pod_images(spec))
    for variant in target.variants.values():
        references.update(o.image for o in variant.containers.values() if o.image is not None)
    return sorted(references)


def plan_images(target: TargetConfig, *, kind_cluster: str | None) -> list[BuildImage | LoadImages]:
    """Build each buildable image once, tagged with every reference to it; then load the tags
    into ``kind_cluster`` (None: a cluster that pulls images itself)."""
    manifests = [m for name in target.manifest_sets for m in target.load_manifests(name)]
    by_entry: dict[int, tuple[ImageRun, list[str]]] = {}
    for reference in image_references(manifests, target):
        entry = _entry(target, reference)
        if entry is None or entry.build is None:
            continue
        by_entry.setdefault(id(entry), (entry, []))[1].append(reference)
    operations: list[BuildImage | LoadImages] = []
    tags: list[str] = []
    for entry, references in by_entry.values():
        assert entry.build is not None
        operations.append(
            BuildImage(tuple(references), entry.build.context, entry.build.dockerfile)
        )
        tags.extend(references)
    if kind_cluster is not None and tags:
        operations.append(LoadImages(kind_cluster, tuple(tags)))
    return operations


def _entry(target: TargetConfig, reference: str) -> ImageRun | None:
    exact = [run for run in target.images if run.image == reference]
    found = exact or [run for run in target.images if run.matches(reference)]
    return found[0] if found else None
