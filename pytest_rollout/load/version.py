"""Which version served a response: configurable extractors."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass

DEFAULT_VERSION_HEADER = "X-Version"


@dataclass(frozen=True, slots=True)
class ResponseView:
    """What an extractor may look at: status, headers (case-insensitive) and the raw body."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> object:
        return json.loads(self.body)


VersionExtractor = Callable[[ResponseView], str | None]
"""Returns the serving version, or ``None`` when the response does not say.

It runs on the generator's event loop for every response, so it must be quick and must not
raise: an exception ends the run and is re-raised to the caller.
"""


def header_version(name: str = DEFAULT_VERSION_HEADER) -> VersionExtractor:
    """The version from response header ``name``."""

    def extract(response: ResponseView) -> str | None:
        return response.headers.get(name)

    return extract


def json_version(field: str = "version") -> VersionExtractor:
    """The version from a JSON body field; ``a.b`` walks nested objects.

    A body that is not JSON, or lacks the field (an HAProxy 502 page, say), gives ``None``.
    """
    path = field.split(".")

    def extract(response: ResponseView) -> str | None:
        try:
            value = response.json()
        except ValueError:
            return None
        for key in path:
            if not isinstance(value, dict) or key not in value:
                return None
            value = value[key]
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        return None

    return extract
