"""Loading Kubernetes manifests: multi-document YAML into objects that know where they came from.

This module reads and checks the envelope every object shares (``apiVersion``, ``kind``,
``metadata``); what a kind's ``spec`` means is for the typed models built on top of it.

The YAML is read the way ``kubectl`` reads it, with two deliberate differences that turn
silent surprises into errors: a key repeated in one mapping is rejected (PyYAML would keep the
last one), and timestamps stay strings (as they do once YAML becomes JSON for the API server).
Manifests are namespace-less: each test runs them in a namespace of its own.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pytest_rollout.errors import ConfigError

FieldPath = tuple[str | int, ...]

_SUBDOMAIN = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_DNS_SUBDOMAIN = re.compile(_SUBDOMAIN)
_API_VERSION = re.compile(rf"(?:{_SUBDOMAIN}/)?v[0-9]+(?:(?:alpha|beta)[0-9]+)?")
_KIND = re.compile(r"[A-Z][A-Za-z0-9]*")
_METADATA_KEYS = frozenset({"name", "labels", "annotations"})


def display_path(path: Path) -> str:
    """``path`` relative to the working directory when it lies below it, else as given."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def format_field_path(path: Sequence[str | int]) -> str:
    """``("spec", "containers", 0, "image")`` -> ``spec.containers[0].image``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


@dataclass(frozen=True)
class Origin:
    """Where a manifest was read: file, 0-based document index, 1-based first line."""

    path: Path
    document: int
    line: int

    def __str__(self) -> str:
        return f"{display_path(self.path)}:{self.line}"


@dataclass(frozen=True, eq=False)
class Manifest:
    """One Kubernetes object from a YAML document.

    ``body`` is the whole parsed object; treat it as read-only and use :meth:`to_dict` for a
    copy to change.
    """

    api_version: str
    kind: str
    name: str
    body: Mapping[str, Any]
    origin: Origin
    lines: Mapping[FieldPath, int] = field(default_factory=dict, repr=False)

    @property
    def group(self) -> str:
        """API group (``""`` for the core group): ``apps``, ``argoproj.io`` ..."""
        return self.api_version.rpartition("/")[0]

    @property
    def version(self) -> str:
        return self.api_version.rpartition("/")[2]

    @property
    def ref(self) -> str:
        """``Kind/name``, the way kubectl names an object."""
        return f"{self.kind}/{self.name}"

    def line_of(self, path: Sequence[str | int]) -> int:
        """The line of ``path`` in the file, or of its nearest ancestor that is written."""
        key = tuple(path)
        while key:
            if key in self.lines:
                return self.lines[key]
            key = key[:-1]
        return self.origin.line

    def error(self, path: Sequence[str | int], message: str) -> ConfigError:
        """A one-line error naming file, line, object and field: raise it."""
        where = f"{display_path(self.origin.path)}:{self.line_of(path)}"
        field_text = format_field_path(path)
        subject = f"{self.ref}: {field_text}" if field_text else self.ref
        return ConfigError(f"{where}: {subject}: {message}")

    def to_dict(self) -> dict[str, Any]:
        """A deep copy of the object, free to modify."""
        return copy.deepcopy(dict(self.body))


class ManifestSet:
    """The objects of one or more files, in file order, unique by API group, kind and name."""

    def __init__(self, manifests: Iterable[Manifest]) -> None:
        self._items = tuple(manifests)
        seen: dict[tuple[str, str, str], Manifest] = {}
        for manifest in self._items:
            key = (manifest.group, manifest.kind, manifest.name)
            first = seen.get(key)
            if first is not None:
                raise ConfigError(
                    f"{manifest.origin}: {manifest.ref} is defined twice; first at {first.origin}"
                )
            seen[key] = manifest

    def __iter__(self) -> Iterator[Manifest]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def of_kind(self, kind: str) -> tuple[Manifest, ...]:
        return tuple(manifest for manifest in self._items if manifest.kind == kind)

    def get(self, kind: str, name: str) -> Manifest:
        """The ``kind`` named ``name``, or an error listing the ones there are."""
        for manifest in self._items:
            if manifest.kind == kind and manifest.name == name:
                return manifest
        names = ", ".join(sorted(m.name for m in self.of_kind(kind))) or "none"
        files = sorted({display_path(m.origin.path) for m in self._items})
        raise ConfigError(
            f"no {kind} named {name!r} in {', '.join(files) or 'the manifests'} "
            f"({kind} objects: {names})"
        )


def load_manifests(paths: Iterable[Path]) -> ManifestSet:
    """Every object of every file, in order; an object defined twice is an error."""
    manifests: list[Manifest] = []
    for path in paths:
        manifests.extend(load_manifest_file(path))
    return ManifestSet(manifests)


def load_manifest_file(path: Path) -> list[Manifest]:
    """The objects of one YAML file; empty documents are skipped."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{display_path(path)}: cannot read manifest file: {exc}") from exc
    return parse_manifests(text, path)


def parse_manifests(text: str, path: Path) -> list[Manifest]:
    """The objects of YAML ``text``, read from ``path`` (used in error messages)."""
    manifests: list[Manifest] = []
    loader = _ManifestLoader(text)
    try:
        document = 0
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                break
            data = loader.construct_document(node)
            origin = Origin(path, document, node.start_mark.line + 1)
            document += 1
            if data is None:
                continue
            lines: dict[FieldPath, int] = {}
            _index_lines(node, (), lines)
            manifests.append(_manifest(data, origin, lines))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError(f"{display_path(path)}{line}: invalid YAML: {problem}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{display_path(path)}: invalid YAML: {exc}") from exc
    finally:
        loader.dispose()
    return manifests


def _manifest(data: object, origin: Origin, lines: Mapping[FieldPath, int]) -> Manifest:
    def fail(path: FieldPath, message: str) -> ConfigError:
        line = lines.get(path, origin.line)
        field_text = format_field_path(path)
        prefix = f"{display_path(origin.path)}:{line}: document {origin.document + 1}"
        return ConfigError(f"{prefix}: {field_text}: {message}" if path else f"{prefix}: {message}")

    if not isinstance(data, dict):
        raise fail((), f"expected a Kubernetes object (a mapping), got {type_name(data)}")
    api_version = data.get("apiVersion")
    if not isinstance(api_version, str) or not _API_VERSION.fullmatch(api_version):
        raise fail(
            ("apiVersion",),
            f"expected 'v1' or 'GROUP/VERSION' (e.g. 'apps/v1'), got {api_version!r}",
        )
    kind = data.get("kind")
    if not isinstance(kind, str) or not _KIND.fullmatch(kind):
        raise fail(("kind",), f"expected a kind such as 'Deployment', got {kind!r}")
    if kind == "List" or (kind.endswith("List") and isinstance(data.get("items"), list)):
        raise fail(("kind",), f"{kind} is not supported; write one document per object")
    metadata = data.get("metadata")
    if not isinstance(metadata, dict):
        raise fail(("metadata",), f"expected a mapping with a name, got {type_name(metadata)}")
    for key in metadata:
        if key == "namespace":
            raise fail(
                ("metadata", "namespace"),
                "not allowed: manifests are namespace-less, each test runs them in its own "
                "namespace",
            )
        if key not in _METADATA_KEYS:
            raise fail(
                ("metadata", key),
                f"not supported; allowed metadata fields: {', '.join(sorted(_METADATA_KEYS))}",
            )
    name = metadata.get("name")
    if not isinstance(name, str) or len(name) > 253 or not _DNS_SUBDOMAIN.fullmatch(name):
        raise fail(
            ("metadata", "name"),
            "expected a lowercase RFC 1123 name (a-z, 0-9, '-', '.'; at most 253 characters), "
            f"got {name!r}",
        )
    for table in ("labels", "annotations"):
        values = metadata.get(table, {})
        if not isinstance(values, dict):
            raise fail(("metadata", table), f"expected a mapping, got {type_name(values)}")
        for key, value in values.items():
            if not isinstance(key, str):
                raise fail(("metadata", table), f"keys must be strings, got {key!r}")
            if not isinstance(value, str):
                raise fail(
                    ("metadata", table, key),
                    f"expected a string (quote it: '{json.dumps(value)}'), got {type_name(value)}",
                )
    return Manifest(api_version, kind, name, data, origin, lines)


def type_name(value: object) -> str:
    """``a string``, ``a number``, ``a mapping`` ... for messages."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _index_lines(node: yaml.Node, path: FieldPath, out: dict[FieldPath, int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue
            child = (*path, str(key_node.value))
            out[child] = key_node.start_mark.line + 1
            _index_lines(value_node, child, out)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            child = (*path, index)
            out[child] = item.start_mark.line + 1
            _index_lines(item, child, out)


class _ManifestLoader(yaml.SafeLoader):
    """SafeLoader that rejects repeated keys and keeps timestamps as strings."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[object, int] = {}
        for key_node, _ in node.value:
            if (
                not isinstance(key_node, yaml.ScalarNode)
                or key_node.tag == "tag:yaml.org,2002:merge"
            ):
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"key {key!r} appears twice in one mapping (lines {seen[key]} and {line})",
                    key_node.start_mark,
                )
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


_ManifestLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
