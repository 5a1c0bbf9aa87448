"""The service's settings, read from environment variables only.

Every release variant (version label, boot time, error rate, latency, broken checkout, expected
schema revision, which order columns the code uses) is an environment variable, so one image
serves every experiment. A bad value is reported as one line naming the variable, what is
allowed and what was given.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_VERSION = "v1"
DEFAULT_DATABASE_URL = "sqlite:///service.db"

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"", "0", "false", "no", "off"})
_SUPPORTED_DATABASES = ("sqlite", "postgresql")


class ServiceConfigError(ValueError):
    """An environment variable holds a value the service cannot use."""


class SkuMode(enum.Enum):
    """Which columns of ``orders`` hold an order's item, as one release's code sees them.

    The releases of the move from the free-text ``item`` column to ``sku``:

    - ``off``: the code knows only ``item`` (the release before the change);
    - ``dual``: writes both, reads ``sku`` falling back to ``item`` (ships with the expand);
    - ``only``: reads and writes ``sku`` alone (the release after it; the contract follows).
    """

    OFF = "off"
    DUAL = "dual"
    ONLY = "only"


@dataclass(frozen=True)
class ServiceConfig:
    """The settings of one service process; see :func:`load_config` for the variables."""

    version: str = DEFAULT_VERSION
    boot_seconds: float = 0.0
    error_rate: float = 0.0
    latency_ms: float = 0.0
    checkout_broken: bool = False
    schema_revision: str | None = None
    order_sku: SkuMode = SkuMode.OFF
    database_url: str = DEFAULT_DATABASE_URL
    seed: int | None = None
    shutdown_delay_seconds: float = 0.0
    drain_timeout_seconds: float = 30.0


def load_config(env: Mapping[str, str]) -> ServiceConfig:
    """Build the settings from ``env``; raise ServiceConfigError naming the first bad variable.

    Variables (all optional): SERVICE_VERSION, SERVICE_BOOT_SECONDS, SERVICE_ERROR_RATE,
    SERVICE_LATENCY_MS, SERVICE_CHECKOUT_BROKEN, SERVICE_SCHEMA_REVISION (the revision this
    release needs and migrates to), SERVICE_ORDER_SKU (off, dual or only: see
    :class:`SkuMode`), SERVICE_DATABASE_URL, SERVICE_SEED (seeds the error-rate draws),
    SERVICE_SHUTDOWN_DELAY_SECONDS (after SIGTERM, keep serving with /readyz at 503 this long
    before closing the listener), SERVICE_DRAIN_TIMEOUT_SECONDS (longest wait for in-flight
    requests at shutdown).
    """
    return ServiceConfig(
        version=_version(env, "SERVICE_VERSION"),
        boot_seconds=_non_negative(env, "SERVICE_BOOT_SECONDS", 0.0),
        error_rate=_fraction(env, "SERVICE_ERROR_RATE"),
        latency_ms=_non_negative(env, "SERVICE_LATENCY_MS", 0.0),
        checkout_broken=_flag(env, "SERVICE_CHECKOUT_BROKEN"),
        schema_revision=_revision(env, "SERVICE_SCHEMA_REVISION"),
        order_sku=_sku_mode(env, "SERVICE_ORDER_SKU"),
        database_url=database_url_from_env(env),
        seed=_seed(env, "SERVICE_SEED"),
        shutdown_delay_seconds=_non_negative(env, "SERVICE_SHUTDOWN_DELAY_SECONDS", 0.0),
        drain_timeout_seconds=_positive(env, "SERVICE_DRAIN_TIMEOUT_SECONDS", 30.0),
    )


def database_url_from_env(env: Mapping[str, str]) -> str:
    """SERVICE_DATABASE_URL, checked to be an SQLAlchemy URL for SQLite or PostgreSQL."""
    name = "SERVICE_DATABASE_URL"
    raw = env.get(name, "").strip()
    if not raw:
        return DEFAULT_DATABASE_URL
    # Imported here so that reading the other variables stays cheap for a fast failing exit.
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(raw)
    except ArgumentError as exc:
        raise ServiceConfigError(
            f"{name}: expected an SQLAlchemy URL such as sqlite:///service.db or "
            f"postgresql+psycopg://user:password@host/db, got {raw!r}"
        ) from exc
    if url.get_backend_name() not in _SUPPORTED_DATABASES:
        shown = url.render_as_string(hide_password=True)
        raise ServiceConfigError(
            f"{name}: expected a sqlite:// or postgresql+psycopg:// URL, got {shown!r}"
        )
    return raw


def _version(env: Mapping[str, str], name: str) -> str:
    raw = env.get(name)
    if raw is None:
        return DEFAULT_VERSION
    value = raw.strip()
    if not value or len(value) > 64 or not value.isprintable() or '"' in value:
        raise ServiceConfigError(
            f"{name}: expected a non-empty label of at most 64 printable characters "
            f"without '\"', got {raw!r}"
        )
    return value


def _number(env: Mapping[str, str], name: str, allowed: str) -> float | None:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ServiceConfigError(f"{name}: expected {allowed}, got {raw!r}") from None
    if not math.isfinite(value):
        raise ServiceConfigError(f"{name}: expected {allowed}, got {raw!r}")
    return value


def _fraction(env: Mapping[str, str], name: str) -> float:
    allowed = "a number between 0 and 1"
    value = _number(env, name, allowed)
    if value is None:
        return 0.0
    if not 0.0 <= value <= 1.0:
        raise ServiceConfigError(f"{name}: expected {allowed}, got {env[name]!r}")
    return value


def _non_negative(env: Mapping[str, str], name: str, default: float) -> float:
    allowed = "a number >= 0"
    value = _number(env, name, allowed)
    if value is None:
        return default
    if value < 0:
        raise ServiceConfigError(f"{name}: expected {allowed}, got {env[name]!r}")
    return value


def _positive(env: Mapping[str, str], name: str, default: float) -> float:
    allowed = "a number > 0"
    value = _number(env, name, allowed)
    if value is None:
        return default
    if value <= 0:
        raise ServiceConfigError(f"{name}: expected {allowed}, got {env[name]!r}")
    return value


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "")
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ServiceConfigError(f"{name}: expected 1/true/yes/on or 0/false/no/off, got {raw!r}")


def _revision(env: Mapping[str, str], name: str) -> str | None:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return None
    value = raw.strip()
    if not all(ch.isalnum() or ch in "_-" for ch in value):
        raise ServiceConfigError(
            f"{name}: expected an Alembic revision id (letters, digits, '_', '-'), got {raw!r}"
        )
    return value


def _sku_mode(env: Mapping[str, str], name: str) -> SkuMode:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return SkuMode.OFF
    try:
        return SkuMode(raw.strip().lower())
    except ValueError:
        allowed = ", ".join(mode.value for mode in SkuMode)
        raise ServiceConfigError(f"{name}: expected one of {allowed}, got {raw!r}") from None


def _seed(env: Mapping[str, str], name: str) -> int | None:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return None
    try:
        return int(raw)
    except ValueError:
        raise ServiceConfigError(f"{name}: expected an integer, got {raw!r}") from None
