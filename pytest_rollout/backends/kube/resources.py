"""The kube backend's install files (package data in ``backends/kube/data``), read and filled in.

Strings in those files may hold ``${NAME}`` placeholders (upper case); :func:`render` replaces
them with the pinned values of :mod:`.versions` and refuses to leave one unfilled. Other
``$`` uses (Prometheus's ``$1``) are left alone.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from pytest_rollout.errors import ConfigError

KubeObject = dict[str, Any]

FIXTURES_ENV = "PYTEST_ROLLOUT_KUBE_FIXTURES"
"""Environment variable naming a directory to use instead of the packaged install files."""
PACKAGED_DATA = Path(__file__).resolve().with_name("data")
_PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")


def data_dir() -> Path:
    """The install files shipped with the package, or ``$PYTEST_ROLLOUT_KUBE_FIXTURES``."""
    override = os.environ.get(FIXTURES_ENV)
    path = Path(override) if override else PACKAGED_DATA
    if not (path / "kind-config.yaml").is_file():
        where = f"${FIXTURES_ENV}={override}" if override else "the installed package"
        raise ConfigError(
            f"kube backend files not found in {path} ({where}; expected kind-config.yaml "
            f"there): point {FIXTURES_ENV} at a copy of pytest_rollout/backends/kube/data, "
            "or unset it to use the packaged files"
        )
    return path


def load_objects(path: Path) -> list[KubeObject]:
    """The objects of a multi-document YAML file, in order."""
    try:
        documents = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read kube backend manifest: {exc}") from exc
    objects: list[KubeObject] = []
    for index, document in enumerate(documents):
        if document is None:
            continue
        if not isinstance(document, dict) or "kind" not in document:
            raise ConfigError(f"{path}: document {index + 1} is not a Kubernetes object")
        objects.append(document)
    return objects


def render(value: Any, values: Mapping[str, str], origin: str) -> Any:
    """A copy of ``value`` with every ``${NAME}`` in its strings replaced from ``values``."""
    if isinstance(value, str):

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in values:
                raise ConfigError(
                    f"{origin}: unknown placeholder ${{{name}}}; known: {', '.join(sorted(values))}"
                )
            return values[name]

        return _PLACEHOLDER.sub(replace, value)
    if isinstance(value, list):
        return [render(item, values, origin) for item in value]
    if isinstance(value, dict):
        return {key: render(item, values, origin) for key, item in value.items()}
    return copy.deepcopy(value)


def placeholders_in(value: Any) -> set[str]:
    """The placeholder names still present in ``value`` (for checks)."""
    if isinstance(value, str):
        return set(_PLACEHOLDER.findall(value))
    if isinstance(value, list):
        return set().union(*(placeholders_in(item) for item in value))
    if isinstance(value, dict):
        return set().union(*(placeholders_in(item) for item in value.values()))
    return set()


def load_rendered(relative: str, values: Mapping[str, str]) -> list[KubeObject]:
    """The objects of ``<data dir>/<relative>`` with placeholders filled."""
    path = data_dir() / relative
    return [render(obj, values, str(path)) for obj in load_objects(path)]


def ref(obj: Mapping[str, Any]) -> str:
    """``Kind/namespace/name`` (or ``Kind/name`` when cluster-scoped), for messages."""
    metadata = obj.get("metadata") or {}
    namespace = metadata.get("namespace")
    name = metadata.get("name", "?")
    return f"{obj.get('kind')}/{namespace}/{name}" if namespace else f"{obj.get('kind')}/{name}"
