"""The target's declarative config: what the plugin must know about a service beyond its manifests.

This module is the typed model; :mod:`pytest_rollout.config_file` finds the file (a
``rollout.toml``, or ``pyproject.toml`` with a ``[tool.pytest-rollout]`` table) and reads it
into that model, every key checked. Relative paths in the config are relative to the directory
of the file they are written in.

Format (``rollout.toml``; in ``pyproject.toml`` every table name gets the prefix
``tool.pytest-rollout.``)::

    manifests = ["deploy/*.yaml"]            # or [manifests] NAME = [...] for named sets

    [images."example/shop"]                  # image reference; without a tag: any tag
    command = ["{python}", "-m", "shop", "--port", "{port}"]
    cwd = "."
    env = { PYTHONUNBUFFERED = "1" }
    build = { context = ".", dockerfile = "Dockerfile" }

    [[requests]]
    method = "POST"
    path = "/orders"
    weight = 1
    json = { item = "book" }
    capture = { order = "id" }               # a 2xx answer's JSON field (dotted) kept as `order`

    [[requests]]
    path = "/orders/{order}"                 # a value captured before, drawn at random; see
                                             # pytest_rollout.load.mix for the first moments

    [version]
    header = "X-Version"                      # and/or json = "build.version"

    [variants.bad]
    version = "2.0-bad"                       # what its pods answer with (checked)
    env = { ERROR_RATE = "0.5" }              # every container
    containers.shop = { image = "example/shop:broken", env = { MODE = "x" } }

    [serving]                                 # default: the first request, answered 2xx
    path = "/health/ready"
    status = 200

    [prometheus]                              # the Prometheus servers templates name
    addresses = ["http://prometheus.monitoring:9090"]

    [backends.local]
    env = { DATABASE_URL = "sqlite:///{data_dir}/shop.db" }

    [experiments.bad-release]                 # see pytest_rollout.kinds
    kind = "canary-containment"
    manifests = "default"
    variant = "bad"
    metric = "error-rate"

Placeholders may be used in ``images.*.command``, ``images.*.env`` and ``backends.local.env``
(``{{`` and ``}}`` for literal braces): ``{host}`` the pod's address, ``{port}`` the container's
first ``containerPort`` and ``{port:NAME}`` a named one, ``{python}`` this interpreter,
``{data_dir}`` a directory the local backend keeps per namespace for the target's state,
``{prometheus_url}`` the URL of the cluster's Prometheus as this machine reaches it (for a
container that queries Prometheus itself, such as the canary judge).
Variant and ``backends.kube`` env values are literal: they go into manifests. A process's env is
the image's ``env``, then the container's env from the manifest (with the variant applied), then
the backend's ``env``. Unknown keys are errors, never ignored.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pytest_rollout.engine.validation import check_manifests
from pytest_rollout.errors import ConfigError
from pytest_rollout.load.mix import Route
from pytest_rollout.load.version import VersionSource
from pytest_rollout.manifests import ManifestSet, display_path, load_manifests
from pytest_rollout.options import BACKENDS

DEFAULT_MANIFEST_SET = "default"
BACKEND_NAMES = BACKENDS


# --- the typed config --------------------------------------------------------------------


@dataclass(frozen=True)
class ImageBuild:
    """How the ``kube`` backend builds the image: a build context and, optionally, a Dockerfile."""

    context: Path
    dockerfile: Path | None


@dataclass(frozen=True)
class ImageRun:
    """How to run an image as a local process.

    ``command`` stands in for the image's entrypoint; it and the ``env`` values are templates
    (see the module docstring).
    """

    image: str
    command: tuple[str, ...]
    cwd: Path
    env: Mapping[str, str]
    build: ImageBuild | None
    origin: str

    def matches(self, reference: str) -> bool:
        """Whether this entry runs ``reference``; an entry without tag or digest runs any tag."""
        if reference == self.image:
            return True
        return _repository(self.image) == self.image and _repository(reference) == self.image


@dataclass(frozen=True)
class ContainerOverride:
    """A variant's changes to one container: image and env."""

    image: str | None
    env: Mapping[str, str]


@dataclass(frozen=True)
class Variant:
    """A named release: env for every container, plus per-container image and env.

    "Every container" includes init containers: a release is a new build that an init
    container (a schema migration, say) runs as well. Per-container env wins over the
    variant-wide env for the same name. ``version`` is what the release's pods answer with
    (read by ``[version]``), when the config says it.
    """

    name: str
    description: str
    env: Mapping[str, str]
    containers: Mapping[str, ContainerOverride]
    origin: str
    version: str | None = None

    def apply(self, pod_spec: Mapping[str, Any]) -> dict[str, Any]:
        """A copy of ``pod_spec`` (a pod template's ``spec``) with this release applied.

        An env var the container already has gets the new value (replacing any
        ``valueFrom``); a new one is appended. Naming a container the pod does not have is
        an error.
        """
        spec = copy.deepcopy(dict(pod_spec))
        containers = spec.get("containers")
        if not isinstance(containers, list) or not containers:
            raise ConfigError(f"{self.origin}: the pod template has no containers to change")
        every = [
            c for c in (*containers, *(spec.get("initContainers") or [])) if isinstance(c, dict)
        ]
        names = [c.get("name") for c in every]
        for wanted in self.containers:
            if wanted not in names:
                raise ConfigError(
                    f"{self.origin}: container {wanted!r} is not in the pod template "
                    f"(containers: {', '.join(str(n) for n in names)})"
                )
        for container in every:
            override = self.containers.get(str(container.get("name")))
            env = dict(self.env)
            if override is not None:
                env.update(override.env)
                if override.image is not None:
                    container["image"] = override.image
            if env:
                container["env"] = _with_env(container.get("env"), env)
        return spec


@dataclass(frozen=True)
class ServingCheck:
    """The request that shows a route serves, and the answer expected (None: any 2xx)."""

    method: str
    path: str
    body: Any
    status: int | None
    origin: str

    def accepts(self, status: int) -> bool:
        return status == self.status if self.status is not None else 200 <= status < 300

    def describe(self) -> str:
        expected = str(self.status) if self.status is not None else "2xx"
        return f"{self.method} {self.path} to answer {expected}"


@dataclass(frozen=True)
class BackendSettings:
    """What one backend adds to every container of the target: env.

    The local backend's values are templates; the kube backend's are literal.
    """

    name: str
    env: Mapping[str, str]
    origin: str


@dataclass(frozen=True)
class TargetConfig:
    """Everything about the service under test that its manifests do not say."""

    source: Path
    root: Path
    manifest_sets: Mapping[str, tuple[Path, ...]]
    images: tuple[ImageRun, ...]
    requests: tuple[Route, ...]
    version: VersionSource
    variants: Mapping[str, Variant]
    backends: Mapping[str, BackendSettings]
    serving: ServingCheck
    prometheus_addresses: tuple[str, ...] = ()
    """The Prometheus servers the target's AnalysisTemplates name; each backend maps them to
    the Prometheus it runs (see the backends' docs)."""
    experiments: Mapping[str, Mapping[str, Any]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    """The raw ``[experiments.NAME]`` tables, validated when collected."""
    section: tuple[str, ...] = ()
    """The table the config sits under in its file (``tool.pytest-rollout`` in pyproject)."""

    @property
    def label(self) -> str:
        return display_path(self.source)

    def manifest_paths(self, name: str = DEFAULT_MANIFEST_SET) -> tuple[Path, ...]:
        """The files of manifest set ``name``, in the order written."""
        try:
            return self.manifest_sets[name]
        except KeyError:
            raise ConfigError(
                f"{self.label}: no manifest set {name!r}; "
                f"sets: {', '.join(sorted(self.manifest_sets))}"
            ) from None

    def load_manifests(self, name: str = DEFAULT_MANIFEST_SET) -> ManifestSet:
        """The objects of manifest set ``name``; its Rollouts and analysis templates checked
        against the supported subset here, at load, every unsupported field named at once."""
        manifests = load_manifests(self.manifest_paths(name))
        check_manifests(manifests)
        return manifests

    def image(self, reference: str) -> ImageRun:
        """How to run ``reference`` locally: an exact entry first, then one without a tag."""
        exact = [run for run in self.images if run.image == reference]
        found = exact or [run for run in self.images if run.matches(reference)]
        if not found:
            known = ", ".join(run.image for run in self.images) or "none"
            raise ConfigError(
                f"{self.label}: no [images] entry runs image {reference!r}; entries: {known}"
            )
        return found[0]

    def variant(self, name: str) -> Variant:
        try:
            return self.variants[name]
        except KeyError:
            known = ", ".join(sorted(self.variants)) or "none"
            raise ConfigError(f"{self.label}: no variant {name!r}; variants: {known}") from None

    def backend_env(self, backend: str) -> Mapping[str, str]:
        """The env ``backend`` adds to every container (kube: literal values)."""
        if backend not in self.backends:
            raise ConfigError(f"unknown backend {backend!r}; allowed: {', '.join(BACKEND_NAMES)}")
        return self.backends[backend].env


def _with_env(entries: object, env: Mapping[str, str]) -> list[Any]:
    result = list(entries) if isinstance(entries, list) else []
    for name, value in env.items():
        replacement = {"name": name, "value": value}
        for index, entry in enumerate(result):
            if isinstance(entry, dict) and entry.get("name") == name:
                result[index] = replacement
                break
        else:
            result.append(replacement)
    return result


def _repository(reference: str) -> str:
    """``registry:5000/a/b:tag@sha256:...`` -> ``registry:5000/a/b``."""
    name = reference.partition("@")[0]
    head, colon, tag = name.rpartition(":")
    if colon and "/" not in tag:
        return head
    return name
