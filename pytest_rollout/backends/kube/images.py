"""Which images the kube backend builds and loads into kind: every image reference the
target's manifests and variants use that an ``[images]`` entry with ``build`` runs.

They reach the kind nodes as an archive of the nodes' platform only (``docker save --platform``
then ``kind load image-archive``), which imports with Docker's classic and containerd image
stores alike (see :class:`~.plan.SaveImages`); ``docker save --platform`` needs Docker Engine 28
(API 1.48) or later.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pytest_rollout.backends.kube.plan import BuildImage, LoadImageArchive, SaveImages
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


ImageOperation = BuildImage | SaveImages | LoadImageArchive


def node_platform(arch: str) -> str:
    """The image platform of Linux nodes of ``arch`` (``amd64`` -> ``linux/amd64``)."""
    return f"linux/{arch}"


def plan_images(
    target: TargetConfig, *, kind_cluster: str | None, arch: str, workdir: Path
) -> list[ImageOperation]:
    """Build each buildable image once, tagged with every reference to it; then save the tags
    for the nodes' ``arch`` into an archive in ``workdir`` and load it into ``kind_cluster``
    (None: a cluster that pulls images itself, so nothing is saved or loaded)."""
    manifests = [m for name in target.manifest_sets for m in target.load_manifests(name)]
    by_entry: dict[int, tuple[ImageRun, list[str]]] = {}
    for reference in image_references(manifests, target):
        entry = _entry(target, reference)
        if entry is None or entry.build is None:
            continue
        by_entry.setdefault(id(entry), (entry, []))[1].append(reference)
    operations: list[ImageOperation] = []
    tags: list[str] = []
    for entry, references in by_entry.values():
        assert entry.build is not None
        operations.append(
            BuildImage(tuple(references), entry.build.context, entry.build.dockerfile)
        )
        tags.extend(references)
    if kind_cluster is not None and tags:
        archive = workdir / f"images-{kind_cluster}.tar"
        operations.append(SaveImages(tuple(tags), archive, node_platform(arch)))
        operations.append(LoadImageArchive(kind_cluster, archive))
    return operations


def _entry(target: TargetConfig, reference: str) -> ImageRun | None:
    exact = [run for run in target.images if run.image == reference]
    found = exact or [run for run in target.images if run.matches(reference)]
    return found[0] if found else None
