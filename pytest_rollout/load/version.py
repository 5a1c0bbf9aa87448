"""Which version served a response, and values read from response bodies."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from pytest_rollout.errors import ConfigError

DEFAULT_VERSION_HEADER = "X-Version"
FIELD_PATH = re.compile(r"[^.\s]+(\.[^.\s]+)*")
"""A JSON field, dotted for nested objects: ``version``, ``build.version``."""


@dataclass(frozen=True, slots=True)
class ResponseView:
    """What an extractor may look at: status, headers (case-insensitive) and the raw body."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> object:
        return json.loads(self.body)


VersionExtractor = Callable[[ResponseView], str | None]
"""Returns the serving version, or ``None`` when the response does not say."""


def json_field(document: object, field: str) -> str | None:
    """The scalar at dotted ``field`` (``a.b`` walks nested objects) as text, or ``None``.

    Numbers become their decimal text; a missing field, an object, an array, a boolean or
    ``null`` give ``None``.
    """
    value = document
    for key in field.split("."):
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    return None


def body_field(response: ResponseView, field: str) -> str | None:
    """:func:`json_field` of the response body; a body that is not JSON gives ``None``."""
    try:
        document = response.json()
    except ValueError:
        return None
    return json_field(document, field)


def header_version(name: str = DEFAULT_VERSION_HEADER) -> VersionExtractor:
    """The version from response header ``name``."""

    def extract(response: ResponseView) -> str | None:
        return response.headers.get(name)

    return extract


def json_version(field: str = "version") -> VersionExtractor:
    """The version from a JSON body field; ``a.b`` walks nested objects.

    A body that is not JSON, or lacks the field (an HAProxy 502 page, say), gives ``None``.
    """

    def extract(response: ResponseView) -> str | None:
        return body_field(response, field)

    return extract


@dataclass(frozen=True)
class VersionSource:
    """Where a response says which version served it: a header, a JSON field, or both.

    With both, the header is read first and the JSON field when the header is absent. It is a
    plain description, so a load generator in another process builds its extractor from it.
    """

    header: str | None = DEFAULT_VERSION_HEADER
    json_field: str | None = None

    def __post_init__(self) -> None:
        if self.header is None and self.json_field is None:
            raise ConfigError("version source: give a header and/or a JSON field")

    def extractor(self) -> VersionExtractor:
        """The extractor the load generator calls for every response."""
        extractors = [
            make(arg)
            for make, arg in ((header_version, self.header), (json_version, self.json_field))
            if arg is not None
        ]
        if len(extractors) == 1:
            return extractors[0]

        def first_of(response: ResponseView) -> str | None:
            for extract in extractors:
                version = extract(response)
                if version is not None:
                    return version
            return None

        return first_of


DEFAULT_VERSION_SOURCE = VersionSource()
"""The ``X-Version`` response header."""
