"""The request mix: parsing ``--mix`` and keeping the weights' proportions."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_rollout.errors import ConfigError
from pytest_rollout.load import DEFAULT_MIX, Route, RouteCycle, parse_mix


def test_the_documented_default_parses_to_the_default_mix() -> None:
    assert parse_mix("GET /=9,POST /checkout=1") == DEFAULT_MIX
    assert DEFAULT_MIX[1].encoded_body() == b'{"item":"load-test","quantity":1}'


def test_other_routes_are_named_by_method_and_path_and_default_to_weight_one() -> None:
    routes = parse_mix(" get /orders/1 , POST /checkout=0.5")
    assert routes == (
        Route("GET /orders/1", "GET", "/orders/1", None, 1.0),
        Route("checkout", "POST", "/checkout", DEFAULT_MIX[1].json_body, 0.5),
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("GET /=x", "weight 'x' is not a number"),
        ("GET /=0", "weight must be a positive number"),
        ("GET /=-1", "weight must be a positive number"),
        ("GET", "expected METHOD PATH"),
        ("GET / extra=1", "expected METHOD PATH"),
        ("GET /,", "empty item"),
        ("FETCH /=1", "method 'FETCH' is not one of"),
        ("GET orders=1", "must start with '/'"),
    ],
)
def test_bad_mixes_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_mix(text)


def test_a_body_that_is_not_json_is_refused() -> None:
    with pytest.raises(ConfigError, match="not JSON-serialisable"):
        Route("bad", "POST", "/checkout", json_body={"at": object()})


@given(st.lists(st.integers(1, 12), min_size=1, max_size=5), st.integers(1, 4))
def test_whole_cycles_send_each_route_exactly_its_weight(weights: list[int], cycles: int) -> None:
    cycle = RouteCycle([Route(f"r{i}", weight=w) for i, w in enumerate(weights)])
    counts = [0] * len(weights)
    for _ in range(cycles * sum(weights)):
        counts[cycle.next_index()] += 1
    assert counts == [cycles * w for w in weights]


@given(st.lists(st.floats(0.1, 50), min_size=1, max_size=5), st.integers(1, 400))
def test_every_prefix_stays_within_two_requests_of_the_exact_share(
    weights: list[float], n: int
) -> None:
    cycle = RouteCycle([Route(f"r{i}", weight=w) for i, w in enumerate(weights)])
    counts = [0] * len(weights)
    total = sum(weights)
    for sent in range(1, n + 1):
        counts[cycle.next_index()] += 1
        for count, weight in zip(counts, weights, strict=True):
            assert abs(count - sent * weight / total) < 2
