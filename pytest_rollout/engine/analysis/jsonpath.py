"""The part of Kubernetes JSONPath the web provider's ``jsonPath`` uses: ``{$.data.ok}``.

Supported: one ``{...}`` expression of ``$`` (optional) followed by ``.field``, ``['field']``
and ``[index]`` (negative counts from the end). Lookups fail with the messages of
``k8s.io/client-go/util/jsonpath`` (``jsonpath.go``: ``evalField``, ``evalArray``), which Argo's
web provider wraps as ``Could not find JSONPath in body: ...``
(``metricproviders/webmetric/webmetric.go``). An empty path means ``{$}``, as in Argo.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

SUPPORTED_FORMS = "{$}, {$.a.b}, {.a[0]}, {$['a'].b}"

_FIELD = re.compile(r"\.([^.\[\]{}\s'\"]+)")
_QUOTED = re.compile(r"\[\s*(?:'([^']*)'|\"([^\"]*)\")\s*\]")
_INDEX = re.compile(r"\[\s*(-?[0-9]+)\s*\]")


class JsonPathError(ValueError):
    """The path cannot be parsed, or the document has nothing at the path."""


class JsonPathNoValue(JsonPathError):
    """The path ran into a JSON ``null`` where a list was needed: no value, but no error."""


@dataclass(frozen=True)
class JsonPath:
    """A compiled path: the steps from the document root (field names and indexes)."""

    source: str
    steps: tuple[str | int, ...]

    def find(self, document: Any) -> Any:
        """The value at the path; JsonPathError with client-go's message when absent."""
        node = document
        for step in self.steps:
            if isinstance(step, str):
                if not isinstance(node, dict) or step not in node:
                    raise JsonPathError(f"{step} is not found")
                node = node[step]
                continue
            if node is None:
                # client-go skips nil inputs: the result is empty rather than an error.
                raise JsonPathNoValue("result of web metric produced no value")
            if not isinstance(node, list):
                raise JsonPathError(f"{_go_type(node)} is not array or slice")
            index = step + len(node) if step < 0 else step
            if not 0 <= index < len(node):
                raise JsonPathError(f"array index out of bounds: index {index}, length {len(node)}")
            node = node[index]
        return node


def compile_jsonpath(source: str) -> JsonPath:
    """Parse ``source``; JsonPathError naming what is supported when it is outside the subset."""
    text = source.strip() or "{$}"
    if not (text.startswith("{") and text.endswith("}")):
        raise JsonPathError(
            f"jsonPath {source!r} is not supported: write one {{...}} expression, "
            f"supported forms are {SUPPORTED_FORMS}"
        )
    body = text[1:-1].strip()
    if body.startswith("$"):
        body = body[1:]
    steps: list[str | int] = []
    position = 0
    while position < len(body):
        for pattern in (_FIELD, _QUOTED, _INDEX):
            match = pattern.match(body, position)
            if match is None:
                continue
            if pattern is _INDEX:
                steps.append(int(match.group(1)))
            elif pattern is _QUOTED:
                steps.append(match.group(1) if match.group(1) is not None else match.group(2))
            else:
                steps.append(match.group(1))
            position = match.end()
            break
        else:
            raise JsonPathError(
                f"jsonPath {source!r} is not supported at {body[position:]!r}: "
                f"supported forms are {SUPPORTED_FORMS} (no filters, wildcards or ranges)"
            )
    return JsonPath(source, tuple(steps))


def _go_type(value: object) -> str:
    """The Go type ``encoding/json`` gives a decoded value, for client-go's messages."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "map[string]interface {}"
    return type(value).__name__
