"""Checks shared by the manifest readers: which fields may appear, and how a value is named."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pytest_rollout.errors import ConfigError
from pytest_rollout.manifests import Manifest, display_path, format_field_path


def unsupported(
    manifest: Manifest,
    path: Sequence[str | int],
    allowed: Iterable[str],
    *,
    label: str = "supported",
) -> ConfigError:
    """``file:line: Kind/name: unsupported: a.b[0].c (supported: ...)``: raise it."""
    where = f"{display_path(manifest.origin.path)}:{manifest.line_of(path)}"
    choices = ", ".join(allowed) or "nothing"
    return ConfigError(
        f"{where}: {manifest.ref}: unsupported: {format_field_path(path)} ({label}: {choices})"
    )


class UnsupportedFields:
    """The fields of one document outside the supported subset, collected while it is read so
    that its error names every one of them at once, each with its file and line."""

    def __init__(self, manifest: Manifest, *, label: str = "supported") -> None:
        self.manifest = manifest
        self.label = label
        self.found: list[ConfigError] = []

    def add(self, path: Sequence[str | int], allowed: Iterable[str]) -> None:
        self.found.append(unsupported(self.manifest, path, allowed, label=self.label))

    def check_keys(
        self, path: Sequence[str | int], mapping: Mapping[str, Any], allowed: Sequence[str]
    ) -> None:
        """Note every key of ``mapping`` that is not ``allowed``."""
        for key in mapping:
            if key not in allowed:
                self.add((*path, str(key)), allowed)

    def error(self, cause: ConfigError | None = None) -> ConfigError | None:
        """One error naming every field found, and ``cause`` (a later error of the same
        document) after them; ``cause`` alone when nothing was found."""
        if not self.found:
            return cause
        lines = [str(error) for error in self.found]
        if cause is not None:
            lines.append(str(cause))
        if len(lines) == 1:
            return ConfigError(lines[0])
        count = len(self.found)
        header = (
            f"{display_path(self.manifest.origin.path)}: {self.manifest.ref}: "
            f"{count} unsupported field{'s' if count > 1 else ''}"
            f"{' and a further error' if cause is not None else ''}:"
        )
        return ConfigError("\n".join([header, *(f"  {line}" for line in lines)]))

    def raise_if_any(self) -> None:
        error = self.error()
        if error is not None:
            raise error


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
