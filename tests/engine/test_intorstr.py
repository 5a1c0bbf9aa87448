"""Kubernetes IntOrString sizes: scaling a percentage against a total, the number as written."""

from __future__ import annotations

import pytest

from pytest_rollout.engine.intorstr import scaled_value, written_value
from pytest_rollout.errors import ConfigError


@pytest.mark.parametrize(
    ("value", "total", "up", "down"),
    [("25%", 10, 3, 2), ("25%", 4, 1, 1), ("25%", 1, 1, 0), ("0%", 7, 0, 0), ("100%", 3, 3, 3)],
)
def test_percent_rounds_up_for_surge_and_down_for_unavailable(
    value: str, total: int, up: int, down: int
) -> None:
    assert scaled_value(value, total, round_up=True) == up
    assert scaled_value(value, total, round_up=False) == down


def test_an_integer_is_taken_as_is() -> None:
    assert scaled_value(3, 100, round_up=False) == 3


@pytest.mark.parametrize("value", ["25", "x%", 2.5, True])
def test_a_value_neither_integer_nor_percentage_is_a_config_error(value: object) -> None:
    with pytest.raises(ConfigError, match=r"percent|an integer or a percentage"):
        scaled_value(value, 10, round_up=True)  # type: ignore[arg-type]


@pytest.mark.parametrize(("value", "written"), [(3, 3), ("25%", 25), ("0%", 0), ("5", 0)])
def test_the_written_value_is_the_number_percent_or_not(value: int | str, written: int) -> None:
    assert written_value(value) == written
