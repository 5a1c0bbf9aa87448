"""The request mix: parsing ``--mix`` and keeping the weights' proportions."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_rollout.config_file import parse_config
from pytest_rollout.errors import ConfigError
from pytest_rollout.load import DEFAULT_MIX, LoadSpec, Route, RouteCycle, parse_mix
from pytest_rollout.load.mix import check_captures, fill_path


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


# --- captured values -----------------------------------------------------------------------

CHECKOUT_CAPTURING = Route("checkout", "POST", "/checkout", capture={"order": "order_id"})
READ_ORDER = Route("read-order", "GET", "/orders/{order}")


def test_a_path_names_its_captured_values_and_fills_them_as_one_segment() -> None:
    route = Route("r", "GET", "/orders/{order}/lines/{line}/{order}")
    assert route.names == ("order", "line")
    assert (
        fill_path(route.path, {"order": "a/b c", "line": "7"})
        == "/orders/a%2Fb%20c/lines/7/a%2Fb%20c"
    )
    assert Route("plain", "GET", "/checkout").names == ()


@pytest.mark.parametrize(
    ("route", "message"),
    [
        (lambda: Route("r", "GET", "/orders/{order"), r"unmatched '\{' in '/orders/\{order'"),
        (lambda: Route("r", "GET", "/orders/}"), r"unmatched '\}'"),
        (lambda: Route("r", "GET", "/orders/{1st}"), r"\{1st\} in '/orders/\{1st\}': a name is"),
        (lambda: Route("r", "GET", "/", capture={"id": "id"}), "a GET creates nothing to capture"),
        (lambda: Route("r", "POST", "/", capture={"my-id": "id"}), "capture name 'my-id'"),
        (lambda: Route("r", "POST", "/", capture={"id": "a..b"}), "capture 'id': expected a"),
    ],
)
def test_bad_templates_and_captures_are_refused(route: Callable[[], Route], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        route()
    assert "\n" not in str(info.value)


def test_a_name_must_be_captured_by_an_earlier_route() -> None:
    check_captures((CHECKOUT_CAPTURING, READ_ORDER))
    with pytest.raises(
        ConfigError, match=r"'read-order': \{order\} .* \(captured before it: none\)"
    ):
        check_captures((READ_ORDER, CHECKOUT_CAPTURING))
    with pytest.raises(ConfigError, match="earlier route"):
        LoadSpec("http://127.0.0.1:1", rate=1, count=1, mix=(READ_ORDER,))


def test_a_route_waiting_for_a_capture_gives_its_turns_away_and_then_takes_its_share() -> None:
    cycle = RouteCycle([Route("a", weight=1), Route("b", weight=3), Route("c", weight=1)])
    waiting = [True, True, False]
    before = Counter(cycle.next_index(waiting) for _ in range(40))
    assert before == {0: 10, 1: 30}
    ready = [True, True, True]
    after = [cycle.next_index(ready) for _ in range(50)]
    assert Counter(after) == {0: 10, 1: 30, 2: 10}
    # No catching up: the route that waited is never sent twice in a row.
    assert all(not (x == y == 2) for x, y in itertools.pairwise(after))
    with pytest.raises(ConfigError, match="no route can be sent"):
        cycle.next_index([False, False, False])


# parse_config reads paths relative to the source's directory: the manifests entry is this file.
SOURCE = Path(__file__).with_name("rollout.toml")


def test_config_requests_capture_and_use_values() -> None:
    config = parse_config(
        _config(
            {"name": "checkout", "method": "POST", "path": "/checkout", "capture": {"order": "id"}},
            {"name": "read", "path": "/orders/{order}"},
        ),
        source=SOURCE,
    )
    checkout, read = config.requests
    assert checkout.capture == {"order": "id"}
    assert read.names == ("order",)


@pytest.mark.parametrize(
    ("requests", "message"),
    [
        (
            [{"path": "/orders/{order}"}],
            "requests[0].path: {order} is not captured by an earlier request; list first a "
            '[[requests]] entry with capture = { order = "FIELD" }',
        ),
        (
            [{"path": "/", "capture": {"order": "id"}}],
            "requests[0].capture: a GET creates nothing to capture; capture is allowed with "
            "PATCH, POST, PUT",
        ),
        (
            [{"method": "POST", "path": "/", "capture": "id"}],
            "requests[0].capture: expected a table, got string",
        ),
        (
            [{"method": "POST", "path": "/", "capture": {"order": 1}}],
            "requests[0].capture: capture 'order': expected a response field name",
        ),
        ([{"path": "/orders/{"}], "requests[0].path: unmatched '{' in '/orders/{'"),
        (
            [
                {"path": "/"},
                {"path": "/x/{order}"},
                {"method": "PUT", "path": "/", "capture": {"order": "id"}},
            ],
            "requests[1].path: {order} is not captured by an earlier request",
        ),
    ],
)
def test_config_errors_name_the_key(requests: list[dict[str, object]], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(_config(*requests), source=SOURCE)
    assert f"rollout.toml: {message}" in str(info.value)
    assert "\n" not in str(info.value)


def _config(*requests: dict[str, object]) -> dict[str, object]:
    return {
        "manifests": [Path(__file__).name],
        "images": {"example/shop": {"command": ["{python}"]}},
        "requests": list(requests),
        "version": {"header": "X-Version"},
    }
