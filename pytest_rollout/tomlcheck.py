"""Validation of parsed TOML: positions for error messages and typed value checks.

Every check raises a one-line :class:`~pytest_rollout.errors.ConfigError` naming the file, the
table and key (``rollout.toml: [variants.bad].env: ...``) and what is allowed.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from pytest_rollout.errors import ConfigError
from pytest_rollout.names import is_dns_label

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


class Where:
    """A position in the config, rendered as ``[table.sub].key[0].key`` for error messages."""

    def __init__(
        self, label: str, section: tuple[str, ...], keys: tuple[str | int, ...] = ()
    ) -> None:
        self.label = label
        self._section = section
        self._keys = keys

    def section(self, *names: str) -> Where:
        return Where(self.label, self._section + names, self._keys)

    def key(self, key: str | int) -> Where:
        return Where(self.label, self._section, (*self._keys, key))

    def error(self, message: str) -> ConfigError:
        where = str(self)
        return ConfigError(
            f"{self.label}: {where}: {message}" if where else f"{self.label}: {message}"
        )

    def __str__(self) -> str:
        keys = "".join(f"[{k}]" if isinstance(k, int) else f".{toml_key(k)}" for k in self._keys)
        if self._section:
            return f"[{'.'.join(toml_key(name) for name in self._section)}]{keys}"
        return keys.removeprefix(".")


def toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else json.dumps(key)


def toml_type(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "table"
    if isinstance(value, datetime.datetime):
        return "datetime"
    if isinstance(value, datetime.date):
        return "date"
    if isinstance(value, datetime.time):
        return "time"
    return type(value).__name__


def check_keys(
    table: Mapping[str, Any],
    where: Where,
    *,
    allowed: Iterable[str],
    required: Iterable[str] = (),
) -> None:
    allowed = tuple(allowed)
    for key in table:
        if key not in allowed:
            raise where.error(f"unknown key {key!r}; allowed: {', '.join(sorted(allowed))}")
    for key in required:
        if key not in table:
            raise where.error(f"missing required key {key!r}")


def check_name(name: str, where: Where, *, what: str) -> None:
    if not is_dns_label(name):
        raise where.error(
            f"{what} name {name!r}: expected lowercase letters, digits and '-' "
            "(at most 63, starting and ending with a letter or digit)"
        )


def require_table(value: object, where: Where, *, expected: str = "a table") -> dict[str, Any]:
    if not isinstance(value, dict):
        raise where.error(f"expected {expected}, got {toml_type(value)}")
    return value


def require_string(value: object, where: Where, *, empty: bool = False) -> str:
    if not isinstance(value, str):
        raise where.error(f"expected a string, got {toml_type(value)}")
    if not empty and not value:
        raise where.error("expected a non-empty string")
    return value


def require_strings(
    value: object, where: Where, *, what: str, empty_items: bool = False
) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise where.error(f"expected an array of {what}, got {toml_type(value)}")
    if not value:
        raise where.error(f"expected at least one of {what}")
    return tuple(
        require_string(item, where.key(index), empty=empty_items)
        for index, item in enumerate(value)
    )


def check_json(value: object, where: Where) -> None:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise where.error(f"expected a JSON value: {exc}") from exc
