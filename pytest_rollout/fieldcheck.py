"""Field checks for the readers of manifests: which fields may appear, and how an error names
the field at fault.

Every message has one form, with the file and line of the field whenever the manifest it comes
from is known::

    app.yaml:23: Deployment/web: unsupported: spec.template.spec.volumes (supported: ...)
    app.yaml:31: Deployment/web: invalid: spec.template.spec.containers[0].name='Web': ...

A reader either stops at the first field outside its subset (:meth:`FieldRef.only`) or notes
them all and reports them in one error (:class:`UnsupportedFields`), so that a user fixes them
in one go.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pytest_rollout.errors import ConfigError
from pytest_rollout.manifests import FieldPath, Manifest, display_path, format_field_path

LOCAL_BACKEND_LABEL = "supported by the local backend"
"""The label of the local backend's subset, in its readers' errors."""

_UNSET: Any = object()


def unsupported(
    manifest: Manifest | None,
    path: Sequence[str | int],
    allowed: Iterable[str] = (),
    *,
    label: str = "supported",
    value: object = _UNSET,
    reason: str | None = None,
) -> ConfigError:
    """``file:line: Kind/name: unsupported: a.b[0].c (supported: x, y)``: raise it.

    ``value`` names the value at fault (``...scheme='HTTPS'``); ``reason`` replaces the list
    of what is supported when a list would not say why.
    """
    shown = "" if value is _UNSET else f"={value!r}"
    detail = reason if reason is not None else f"{label}: {', '.join(allowed) or 'nothing'}"
    return ConfigError(
        f"{_located(manifest, path)}unsupported: {format_field_path(path)}{shown} ({detail})"
    )


@dataclass(frozen=True)
class FieldRef:
    """One field of the document being read: where an error about it points.

    ``label`` says whose subset the allowed fields are (``supported by the local backend``).
    """

    path: FieldPath
    manifest: Manifest | None = None
    label: str = "supported"

    def __str__(self) -> str:
        return format_field_path(self.path)

    def at(self, *parts: str | int) -> FieldRef:
        """The field below this one: ``ref.at("ports", 0)``."""
        return FieldRef((*self.path, *parts), self.manifest, self.label)

    def unsupported(
        self, allowed: Iterable[str] = (), *, value: object = _UNSET, reason: str | None = None
    ) -> ConfigError:
        return unsupported(
            self.manifest, self.path, allowed, label=self.label, value=value, reason=reason
        )

    def invalid(self, message: str, *, value: object = _UNSET) -> ConfigError:
        """``file:line: Kind/name: invalid: a.b[=value]: message``: raise it."""
        shown = "" if value is _UNSET else f"={value!r}"
        return ConfigError(f"{_located(self.manifest, self.path)}invalid: {self}{shown}: {message}")

    def mapping(self, value: object) -> Mapping[str, Any]:
        """``value`` (this field's), which must be a mapping."""
        if not isinstance(value, Mapping):
            raise self.invalid("must be a mapping")
        return value

    def entries(
        self, value: object, *, expected: str = "a list"
    ) -> Iterator[tuple[FieldRef, Mapping[str, Any]]]:
        """The items of ``value`` (this field's), which must be a list of mappings: each with
        the field it is."""
        if not isinstance(value, list):
            raise self.invalid(f"must be {expected}")
        for index, item in enumerate(value):
            here = self.at(index)
            yield here, here.mapping(item)

    def only(
        self, mapping: Mapping[str, Any], allowed: Iterable[str], *, inert: Iterable[str] = ()
    ) -> None:
        """Raise for the first key of ``mapping`` (this field's) that is neither ``allowed`` nor
        ``inert`` (accepted, without effect); the error lists the allowed ones, sorted."""
        known = sorted(allowed)
        accepted = set(known) | set(inert)
        for key in mapping:
            if key not in accepted:
                raise self.at(key).unsupported(known)


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
        for key in (key for key in mapping if key not in allowed):
            self.add((*path, str(key)), allowed)

    def error(self, cause: ConfigError | None = None) -> ConfigError | None:
        """One error naming every field noted, and ``cause`` (a later error of the same
        document) after them; ``cause`` alone when nothing was noted."""
        messages = [str(found) for found in self.found]
        if not messages:
            return cause
        if cause is not None:
            messages.append(str(cause))
        if len(messages) == 1:
            return ConfigError(messages[0])
        count = len(self.found)
        plural = "s" if count > 1 else ""
        further = " and a further error" if cause is not None else ""
        source = f"{display_path(self.manifest.origin.path)}: {self.manifest.ref}"
        lines = [f"{source}: {count} unsupported field{plural}{further}:"]
        lines += [f"  {message}" for message in messages]
        return ConfigError("\n".join(lines))

    def raise_if_any(self) -> None:
        error = self.error()
        if error is not None:
            raise error


def _located(manifest: Manifest | None, path: Sequence[str | int]) -> str:
    """``file:line: Kind/name: `` of the field, or nothing when no manifest is known."""
    if manifest is None:
        return ""
    return f"{display_path(manifest.origin.path)}:{manifest.line_of(path)}: {manifest.ref}: "
