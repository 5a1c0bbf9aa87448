"""The open-loop generator against the real reference service and against misbehaving servers."""

from __future__ import annotations

import pytest

from pytest_rollout.errors import ConfigError, InconclusiveError
from pytest_rollout.load import (
    INDEX,
    MIN_ACHIEVED_RATIO,
    LoadSpec,
    Route,
    VersionSource,
    generator,
    lateness_bound,
    run_load,
)
from service.launcher import RunningService, run_service
from tests.load.load_servers import served_requests

pytestmark = pytest.mark.slow  # starts real processes, or renders for seconds


@pytest.mark.serial  # a schedule held to the millisecond: alone, not beside other tests
def test_holds_300_req_s_for_3_s_on_schedule(service: RunningService) -> None:
    before = served_requests(service)
    log = run_load(LoadSpec(service.url, rate=300, duration=3))
    summary = log.summary()
    assert len(log) == 900, summary
    assert log.achieved_rate >= MIN_ACHIEVED_RATIO * 300, summary
    assert log.lateness_p99 is not None
    assert log.lateness_p99 <= lateness_bound(300), summary
    assert min(r.lateness for r in log.records) >= 0, "a request left before its time"
    assert not log.inconclusive, log.inconclusive_reason
    assert log.by_status() == {200: 900}, summary
    assert served_requests(service) - before == 900


def test_sends_the_weighted_mix_and_reads_the_serving_version(service: RunningService) -> None:
    log = run_load(LoadSpec(service.url, rate=200, count=100))
    assert log.by_route() == {"index": 90, "checkout": 10}
    assert log.by_version() == {"v-load": 100}
    assert log.first_seen("v-load") == log.records[0].sent
    assert log.last_seen("v-load") == log.records[-1].sent


def test_custom_routes_and_version_sources(service: RunningService) -> None:
    mix = (
        Route("health", "GET", "/healthz", weight=1),
        Route("bad-checkout", "POST", "/checkout", json_body={"quantity": 0}, weight=1),
    )
    by_json = VersionSource(header=None, json_field="version")
    log = run_load(LoadSpec(service.url, rate=100, count=20, mix=mix, version=by_json))
    assert log.by_status() == {200: 10, 400: 10}
    assert log.by_version() == {"v-load": 20}

    # The header when the answer has it, else the body field: here, never the header.
    fallback = VersionSource(header="X-Missing", json_field="version")
    log = run_load(LoadSpec(service.url, rate=100, count=20, mix=mix, version=fallback))
    assert log.by_version() == {"v-load": 20}
    nowhere = VersionSource(header="X-Missing", json_field="no.such.field")
    log = run_load(LoadSpec(service.url, rate=100, count=20, mix=mix, version=nowhere))
    assert log.by_version() == {None: 20}


ORDERS = (
    Route(
        "checkout",
        "POST",
        "/checkout",
        json_body={"item": "load-test", "quantity": 1},
        capture={"order": "order_id"},
    ),
    Route("read-order", "GET", "/orders/{order}"),
)


def test_captured_ids_are_read_back_and_each_read_says_which_it_used(
    service: RunningService,
) -> None:
    log = run_load(LoadSpec(service.url, rate=100, count=200, mix=ORDERS))
    checkouts = [r for r in log.records if r.route == "checkout"]
    reads = [r for r in log.records if r.route == "read-order"]
    ids = log.captured_values("order")
    assert len(log) == 200, log.summary()
    assert log.by_status() == {200: 200}, log.summary()
    assert ids == [r.captured["order"] for r in checkouts]
    assert len(set(ids)) == len(ids) == len(checkouts)
    assert all(r.used == {} and set(r.captured) == {"order"} for r in checkouts)
    assert reads
    assert all(r.captured == {} and r.used["order"] in ids for r in reads)
    # A read only ever uses an id whose checkout had been answered before the read was sent.
    answered = {r.captured["order"]: r.intended + r.latency for r in checkouts}
    assert all(answered[r.used["order"]] <= r.sent + 1e-6 for r in reads)
    # No read waits for a capture once the first id is in: from then on the mix is 1:1.
    first_read = log.records.index(reads[0])
    later = log.records[first_read:]
    assert abs(sum(r.route == "checkout" for r in later) - len(later) / 2) <= 1, log.by_route()


def test_a_templated_route_waits_for_its_first_value_without_leaving_a_gap(
    service: RunningService,
) -> None:
    # The orders of a broken checkout have no id: nothing is captured, so every turn of the
    # read goes to the checkout and the schedule stays whole.
    with run_service({"SERVICE_VERSION": "v-broken", "SERVICE_CHECKOUT_BROKEN": "1"}) as broken:
        log = run_load(LoadSpec(broken.url, rate=100, count=40, mix=ORDERS))
    assert len(log) == 40
    assert log.by_route() == {"checkout": 40}
    assert log.captured_values("order") == []
    assert log.dropped == 0


def test_a_slow_service_does_not_slow_the_schedule() -> None:
    # Open loop: 100 req/s into 300 ms of latency needs ~30 requests in flight at once; a
    # client that waited for each answer would manage ~3 req/s on one connection.
    with run_service({"SERVICE_VERSION": "v-slow", "SERVICE_LATENCY_MS": "300"}) as slow:
        log = run_load(LoadSpec(slow.url, rate=100, duration=2))
    summary = log.summary()
    assert len(log) == 200, summary
    assert log.achieved_rate >= MIN_ACHIEVED_RATIO * 100, summary
    assert log.latency_p50 is not None
    assert log.latency_p50 >= 0.3, summary
    assert log.peak_in_flight >= 25, summary


def test_an_overloaded_generator_says_so(
    service: RunningService, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Far past what one event loop can dispatch: the log must not pass this off as a good run.
    # With no grace past the last due time, whatever is still unsent then is dropped.
    monkeypatch.setattr(generator, "DISPATCH_GRACE", 0.0)
    spec = LoadSpec(service.url, rate=20_000, duration=0.5, mix=(INDEX,))
    log = run_load(spec)
    summary = log.summary()
    assert log.dropped > 0, summary
    assert len(log) + log.dropped == spec.planned == 10_000
    assert log.achieved_rate < MIN_ACHIEVED_RATIO * 20_000, summary
    with pytest.raises(InconclusiveError, match=r"scheduled requests were never sent.*lateness"):
        log.raise_if_inconclusive()


def test_a_closed_port_is_refused(closed_port: str) -> None:
    log = run_load(LoadSpec(closed_port, rate=100, count=10))
    assert log.by_error() == {"refused": 10}
    assert log.by_status_class() == {"refused": 10}
    assert log.errors == 10


def test_a_reset_connection_is_reset(resetting_server: str) -> None:
    log = run_load(LoadSpec(resetting_server, rate=50, count=10))
    assert log.by_error() == {"reset": 10}


def test_an_unanswered_request_times_out(silent_server: str) -> None:
    log = run_load(LoadSpec(silent_server, rate=50, count=10, timeout=0.3))
    assert log.by_error() == {"timeout": 10}
    assert all(0.3 <= r.latency < 2.0 for r in log.records), [r.latency for r in log.records]


def test_an_answer_that_is_not_http_is_other(garbage_server: str) -> None:
    log = run_load(LoadSpec(garbage_server, rate=50, count=10))
    assert log.by_error() == {"other": 10}


def test_a_booting_service_that_drops_connections_counts_as_reset() -> None:
    with run_service({"SERVICE_VERSION": "v-boot", "SERVICE_BOOT_SECONDS": "60"}) as booting:
        log = run_load(LoadSpec(booting.url, rate=50, count=10))
    assert log.by_error() == {"reset": 10}


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1:8080",
        "http://192.0.2.7/",
        "http://0.0.0.0:8080",
        "http://[2001:db8::1]:8080",
        "http://[::ffff:10.0.0.1]:8080",
    ],
)
def test_refuses_targets_that_are_not_loopback(url: str) -> None:
    with pytest.raises(ConfigError, match=r"not loopback .*allow_remote") as info:
        LoadSpec(url, rate=10, count=1)
    assert "\n" not in str(info.value)
    assert LoadSpec(url, rate=10, count=1, allow_remote=True).url == url


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:1", "http://127.9.8.7:1", "http://localhost:1", "http://[::1]:1"]
)
def test_accepts_loopback_targets(url: str) -> None:
    assert LoadSpec(url, rate=10, count=1).planned == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rate": 0, "count": 1}, "load rate: must be a positive number"),
        ({"rate": float("nan"), "count": 1}, "load rate"),
        ({"rate": 10}, "give a duration, a count, or both"),
        ({"rate": 10, "duration": -1}, "load duration"),
        ({"rate": 10, "count": 0}, "load count"),
        ({"rate": 10, "count": 1, "timeout": 0}, "load timeout"),
        ({"rate": 10, "count": 1, "mix": ()}, "at least one route"),
    ],
)
def test_rejects_bad_specs_with_one_line(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        LoadSpec("http://127.0.0.1:1", **kwargs)  # type: ignore[arg-type]


def test_ftp_and_relative_urls_are_not_targets() -> None:
    with pytest.raises(ConfigError, match="expected http"):
        LoadSpec("ftp://127.0.0.1/", rate=1, count=1)
    with pytest.raises(ConfigError, match="expected http"):
        LoadSpec("127.0.0.1:8080", rate=1, count=1)


def test_schedule_size_from_duration_and_count() -> None:
    url = "http://127.0.0.1:1"
    assert LoadSpec(url, rate=10, duration=1.1).planned == 11
    assert LoadSpec(url, rate=2000, duration=10).planned == 20_000
    assert LoadSpec(url, rate=10, duration=5, count=7).planned == 7
    assert LoadSpec(url, rate=10, duration=0.5, count=70).planned == 5


def test_requests_time_out_on_their_own_deadline_not_on_a_whole_second(
    silent_server: str,
) -> None:
    # aiohttp would round a 5 s timeout up to the next whole second of loop time, so that the
    # requests of a hung release all time out together, once a second, stalling the schedule.
    log = run_load(LoadSpec(silent_server, rate=20, count=10, timeout=5.0))
    assert log.by_error() == {"timeout": 10}
    latencies = sorted(r.latency for r in log.records)
    assert latencies[0] >= 5.0, latencies
    assert latencies[-1] < 5.3, latencies
