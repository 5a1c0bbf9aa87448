"""Checks shared by the manifest readers: which fields may appear, and how a value is named."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pytest_rollout.errors import ConfigError
from pytest_rollout.manifests import Manifest, display_path, format_field_path


def unsupported(
    manifest: Manifest, path: Sequence[str | int], allowed: Iterable[str]
) -> ConfigError:
    """``file:line: Kind/name: unsupported: a.b[0].c (supported: ...)``: raise it."""
    where = f"{display_path(manifest.origin.path)}:{manifest.line_of(path)}"
    choices = ", ".join(allowed) or "nothing"
    return ConfigError(
        f"{where}: {manifest.ref}: unsupported: {format_field_path(path)} (supported: {choices})"
    )


def check_keys(
    manifest: Manifest,
    path: Sequence[str | int],
    mapping: Mapping[str, Any],
    allowed: Sequence[str],
) -> None:
    """Reject the first key of ``mapping`` that is not ``allowed``."""
    for key in mapping:
        if key not in allowed:
            raise unsupported(manifest, (*path, str(key)), allowed)


def value_at(body: Mapping[str, Any], path: Sequence[str | int]) -> Any:
    """The value at ``path`` in ``body``, or None when any step is missing."""
    node: Any = body
    for part in path:
        if isinstance(part, int):
            if not isinstance(node, list) or part >= len(node):
                return None
            node = node[part]
        else:
            if not isinstance(node, dict):
                return None
            node = node.get(part)
    return node
