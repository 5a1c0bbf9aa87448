"""The service's settings parser: pure logic, so it is tested in-process over many inputs."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.config import (
    DEFAULT_DATABASE_URL,
    ServiceConfig,
    ServiceConfigError,
    SkuMode,
    load_config,
)
from service.db import make_engine


def test_no_variables_give_the_plain_v1_release() -> None:
    assert load_config({}) == ServiceConfig()
    assert load_config({}).database_url == DEFAULT_DATABASE_URL


def test_every_variable_is_read() -> None:
    config = load_config(
        {
            "SERVICE_VERSION": "v2",
            "SERVICE_BOOT_SECONDS": "4.5",
            "SERVICE_ERROR_RATE": "0.05",
            "SERVICE_LATENCY_MS": "120",
            "SERVICE_CHECKOUT_BROKEN": "TRUE",
            "SERVICE_SCHEMA_REVISION": "0002_expand_orders",
            "SERVICE_ORDER_SKU": "Dual",
            "SERVICE_DATABASE_URL": "postgresql+psycopg://app:pw@db:5432/orders",
            "SERVICE_SEED": "42",
            "SERVICE_SHUTDOWN_DELAY_SECONDS": "2",
            "SERVICE_DRAIN_TIMEOUT_SECONDS": "20",
        }
    )
    assert config == ServiceConfig(
        version="v2",
        boot_seconds=4.5,
        error_rate=0.05,
        latency_ms=120.0,
        checkout_broken=True,
        schema_revision="0002_expand_orders",
        order_sku=SkuMode.DUAL,
        database_url="postgresql+psycopg://app:pw@db:5432/orders",
        seed=42,
        shutdown_delay_seconds=2.0,
        drain_timeout_seconds=20.0,
    )


@given(st.floats(min_value=0.0, max_value=1.0))
def test_any_fraction_is_an_error_rate(rate: float) -> None:
    assert load_config({"SERVICE_ERROR_RATE": repr(rate)}).error_rate == rate


@given(st.text(max_size=12))
def test_anything_else_is_rejected_in_one_line_naming_the_variable(raw: str) -> None:
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not raw.strip() or 0.0 <= value <= 1.0:
        return  # empty means "unset"; in-range numbers are valid
    with pytest.raises(ServiceConfigError) as caught:
        load_config({"SERVICE_ERROR_RATE": raw})
    message = str(caught.value)
    assert message == f"SERVICE_ERROR_RATE: expected a number between 0 and 1, got {raw!r}"
    assert "\n" not in message


@given(st.sampled_from(["1", "true", "yes", "on"]), st.booleans())
def test_true_spellings_break_checkout(spelling: str, upper: bool) -> None:
    value = spelling.upper() if upper else spelling
    assert load_config({"SERVICE_CHECKOUT_BROKEN": value}).checkout_broken is True


@pytest.mark.parametrize("value", ["", "0", "false", "No", "off"])
def test_false_spellings_keep_checkout_working(value: str) -> None:
    assert load_config({"SERVICE_CHECKOUT_BROKEN": value}).checkout_broken is False


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("SERVICE_BOOT_SECONDS", "inf", "SERVICE_BOOT_SECONDS: expected a number >= 0, got 'inf'"),
        ("SERVICE_LATENCY_MS", "nan", "SERVICE_LATENCY_MS: expected a number >= 0, got 'nan'"),
        ("SERVICE_SEED", "1.5", "SERVICE_SEED: expected an integer, got '1.5'"),
        (
            "SERVICE_DRAIN_TIMEOUT_SECONDS",
            "0",
            "SERVICE_DRAIN_TIMEOUT_SECONDS: expected a number > 0, got '0'",
        ),
        ("SERVICE_VERSION", "", "SERVICE_VERSION: expected a non-empty label"),
        ("SERVICE_SCHEMA_REVISION", "a b", "SERVICE_SCHEMA_REVISION: expected an Alembic"),
        (
            "SERVICE_ORDER_SKU",
            "both",
            "SERVICE_ORDER_SKU: expected one of off, dual, only, got 'both'",
        ),
        ("SERVICE_DATABASE_URL", "::nonsense", "SERVICE_DATABASE_URL: expected an SQLAlchemy URL"),
    ],
)
def test_bad_values_are_named(name: str, value: str, message: str) -> None:
    with pytest.raises(ServiceConfigError, match=f"^{message}"):
        load_config({name: value})


def test_database_url_error_hides_the_password() -> None:
    with pytest.raises(ServiceConfigError) as caught:
        load_config({"SERVICE_DATABASE_URL": "mysql://app:hunter2@db/orders"})
    assert "hunter2" not in str(caught.value)


def test_postgresql_urls_get_the_psycopg_driver_without_connecting() -> None:
    engine = make_engine("postgresql+psycopg://app:pw@127.0.0.1:1/orders")
    try:
        assert (engine.dialect.name, engine.dialect.driver) == ("postgresql", "psycopg")
    finally:
        engine.dispose()
