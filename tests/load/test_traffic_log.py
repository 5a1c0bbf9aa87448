"""TrafficLog's arithmetic: windows, shares, first/last seen, rates, quantiles and the verdict."""

from __future__ import annotations

import csv
import json
import math
import random
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_rollout.errors import InconclusiveError
from pytest_rollout.load import (
    ERROR_KINDS,
    MAX_P99_LATENESS,
    MIN_ACHIEVED_RATIO,
    RequestRecord,
    TrafficLog,
    lateness_bound,
)

BASE = 1_700_000_000.0
VERSIONS = ("v1", "v2", None)

# A coarse grid of times, so that records share send times and windows fall exactly on them.
times = st.integers(0, 200).map(lambda k: BASE + k / 4)
bounds = st.none() | times


@st.composite
def records(draw: st.DrawFn) -> RequestRecord:
    sent = draw(times)
    lateness = draw(st.floats(0, 0.01))
    if draw(st.booleans()):
        status = draw(st.sampled_from((200, 201, 302, 404, 500, 502, 503)))
        return RequestRecord(
            intended=sent - lateness,
            sent=sent,
            latency=lateness + draw(st.floats(0, 1)),
            route=draw(st.sampled_from(("index", "checkout"))),
            status=status,
            version=draw(st.sampled_from(VERSIONS)),
        )
    return RequestRecord(
        intended=sent - lateness,
        sent=sent,
        latency=lateness + draw(st.floats(0, 5)),
        route="index",
        error=draw(st.sampled_from(ERROR_KINDS)),
    )


logs = st.lists(records(), max_size=60).map(
    lambda rs: TrafficLog(rs, target_rate=10.0, started_at=BASE)
)


def inside(record: RequestRecord, start: float | None, end: float | None) -> bool:
    return (start is None or record.sent >= start) and (end is None or record.sent < end)


@given(logs, bounds, bounds)
def test_window_selects_exactly_the_requests_sent_in_start_inclusive_end_exclusive(
    log: TrafficLog, start: float | None, end: float | None
) -> None:
    expected = [r for r in log.records if inside(r, start, end)]
    assert list(log.in_window(start, end)) == expected
    assert log.count(start, end) == len(expected)


@given(logs, times, times, times)
def test_adjacent_windows_add_up(log: TrafficLog, a: float, b: float, c: float) -> None:
    a, b, c = sorted((a, b, c))
    assert log.count(a, b) + log.count(b, c) == log.count(a, c)
    assert Counter(log.by_version(a, b)) + Counter(log.by_version(b, c)) == Counter(
        log.by_version(a, c)
    )
    assert Counter(log.by_status_class(a, b)) + Counter(log.by_status_class(b, c)) == Counter(
        log.by_status_class(a, c)
    )


@given(logs, bounds, bounds)
def test_breakdowns_partition_the_window(
    log: TrafficLog, start: float | None, end: float | None
) -> None:
    total = log.count(start, end)
    assert sum(log.by_version(start, end).values()) == total
    assert sum(log.by_status_class(start, end).values()) == total
    assert sum(log.by_route(start, end).values()) == total
    assert sum(log.by_status(start, end).values()) + sum(log.by_error(start, end).values()) == total
    for status_class, n in log.by_status_class(start, end).items():
        if status_class in ERROR_KINDS:
            assert log.by_error(start, end)[status_class] == n
        else:
            matching = sum(
                n
                for code, n in log.by_status(start, end).items()
                if f"{code // 100}xx" == status_class
            )
            assert matching == n


@given(logs, bounds, bounds)
def test_shares_are_fractions_of_all_requests_in_the_window_and_sum_to_one(
    log: TrafficLog, start: float | None, end: float | None
) -> None:
    window = [r for r in log.records if inside(r, start, end)]
    if not window:
        with pytest.raises(InconclusiveError, match="no requests were sent"):
            log.share("v2", start, end)
        return
    for version in VERSIONS:
        served = sum(1 for r in window if r.version == version)
        assert log.share(version, start, end) == served / len(window)
    assert math.isclose(sum(log.share(v, start, end) for v in VERSIONS), 1.0)
    assert log.share("never-deployed", start, end) == 0.0


@given(logs)
def test_first_and_last_seen_bracket_every_request_of_the_version(log: TrafficLog) -> None:
    for version in VERSIONS:
        sent = [r.sent for r in log.records if r.version == version]
        first, last = log.first_seen(version), log.last_seen(version)
        if not sent:
            assert first is None
            assert last is None
            continue
        assert first == min(sent)
        assert last == max(sent)
        assert log.count(first, math.nextafter(last, math.inf)) >= len(sent)


@given(st.lists(records(), max_size=40), st.randoms(use_true_random=False))
def test_answers_do_not_depend_on_the_order_records_arrive_in(
    rs: list[RequestRecord], rnd: random.Random
) -> None:
    shuffled = list(rs)
    rnd.shuffle(shuffled)
    one = TrafficLog(rs, target_rate=10.0, started_at=BASE)
    two = TrafficLog(shuffled, target_rate=10.0, started_at=BASE)
    assert one.summary() == two.summary()
    assert one.by_version(BASE + 10, BASE + 30) == two.by_version(BASE + 10, BASE + 30)


@given(st.lists(st.floats(0, 1), min_size=1, max_size=80), st.floats(0.01, 1))
def test_lateness_quantile_is_the_nearest_rank_value(lateness: list[float], q: float) -> None:
    rs = [RequestRecord(BASE, BASE + x, x + 0.001, "index", status=200) for x in lateness]
    value = TrafficLog(rs, target_rate=10.0, started_at=BASE).lateness_quantile(q)
    assert value is not None
    values = sorted(r.lateness for r in rs)
    at_or_below = sum(1 for x in values if x <= value)
    below = sum(1 for x in values if x < value)
    assert at_or_below >= q * len(values)
    assert below < q * len(values)


def test_latency_quantiles_count_answered_requests_only() -> None:
    rs = [RequestRecord(BASE, BASE, 0.010, "index", status=200)] * 3 + [
        RequestRecord(BASE, BASE, 5.0, "index", error="timeout")
    ]
    log = TrafficLog(rs, target_rate=10.0, started_at=BASE)
    assert log.latency_p99 == pytest.approx(0.010)
    assert TrafficLog([], target_rate=1.0, started_at=BASE).latency_p99 is None


def schedule(
    rate: float, n: int, *, lateness: float = 0.0, stretch: float = 1.0
) -> list[RequestRecord]:
    """``n`` requests due at ``BASE + i / rate`` and sent ``lateness`` late; the gaps between
    sends widened by ``stretch`` model a generator that cannot keep up."""
    out = []
    for i in range(n):
        intended = BASE + i / rate
        sent = BASE + stretch * i / rate + lateness
        out.append(RequestRecord(intended, sent, sent - intended + 0.001, "index", status=200))
    return out


@given(st.floats(1, 10_000), st.integers(1, 3_000))
def test_an_on_time_schedule_achieves_exactly_its_target_rate(rate: float, n: int) -> None:
    log = TrafficLog(schedule(rate, n), target_rate=rate, started_at=BASE)
    # Epoch floats near 1.7e9 resolve ~0.5 us, so the duration is exact to about a microsecond.
    assert math.isclose(log.duration, n / rate, abs_tol=2e-6)
    assert math.isclose(log.achieved_rate, rate, rel_tol=1e-3)
    assert not log.inconclusive
    log.raise_if_inconclusive()


def test_a_generator_that_stretches_the_schedule_is_inconclusive_on_achieved_rate() -> None:
    log = TrafficLog(schedule(1000, 3000, stretch=1.05), target_rate=1000, started_at=BASE)
    assert log.achieved_rate == pytest.approx(1000 / 1.05, rel=1e-3)
    assert log.achieved_rate < MIN_ACHIEVED_RATIO * 1000
    assert log.inconclusive_reason is not None
    assert "achieved 952.4 req/s = 95.2% of the target 1000 req/s" in log.inconclusive_reason


def test_lateness_just_over_the_bound_makes_the_run_inconclusive() -> None:
    late = MAX_P99_LATENESS * 1.2
    rs = schedule(400, 95) + [
        RequestRecord(BASE + 1 + i / 400, BASE + 1 + i / 400 + late, late, "index", status=200)
        for i in range(5)
    ]
    log = TrafficLog(rs, target_rate=400, started_at=BASE)
    assert log.lateness_p99 == pytest.approx(late, abs=1e-6)
    with pytest.raises(InconclusiveError, match=r"p99 lateness 6\.00 ms > 5 ms over 100 requests"):
        log.raise_if_inconclusive()


def test_lateness_just_under_the_bound_is_still_conclusive() -> None:
    log = TrafficLog(
        schedule(400, 1000, lateness=MAX_P99_LATENESS - 1e-4), target_rate=400, started_at=BASE
    )
    assert log.inconclusive_reason is None


@pytest.mark.parametrize(("rate", "bound_ms"), [(50, 20), (100, 10), (200, 5), (2000, 5), (0, 5)])
def test_the_lateness_bound_is_one_request_gap_and_never_under_5_ms(
    rate: float, bound_ms: float
) -> None:
    assert lateness_bound(rate) == pytest.approx(bound_ms / 1e3)


def test_at_a_low_rate_the_bound_is_the_gap_between_requests() -> None:
    over = TrafficLog(schedule(50, 200, lateness=0.021), target_rate=50, started_at=BASE)
    assert over.inconclusive_reason == "p99 lateness 21.00 ms > 20 ms over 200 requests"
    under = TrafficLog(schedule(50, 200, lateness=0.019), target_rate=50, started_at=BASE)
    assert under.inconclusive_reason is None


def test_dropped_requests_and_an_empty_log_are_inconclusive() -> None:
    dropped = TrafficLog(schedule(100, 100), target_rate=100, started_at=BASE, dropped=3)
    assert dropped.inconclusive_reason == "3 of 103 scheduled requests were never sent"
    empty = TrafficLog([], target_rate=50, started_at=BASE)
    assert empty.inconclusive_reason == "no request was sent (target 50 req/s)"
    assert empty.achieved_rate == 0.0


def test_summary_is_json_with_the_documented_keys() -> None:
    rs = [
        *schedule(10, 8),
        RequestRecord(BASE + 1, BASE + 1, 0.5, "checkout", error="refused"),
        RequestRecord(BASE + 1.1, BASE + 1.1, 0.01, "index", status=503, version="v2"),
    ]
    summary = TrafficLog(rs, target_rate=10, started_at=BASE).summary()
    decoded = json.loads(json.dumps(summary))
    required = {"target_rate", "achieved_rate", "lateness_p99_ms", "requests", "errors"}
    assert required | {"by_version", "inconclusive"} <= decoded.keys()
    assert decoded["requests"] == 10
    assert decoded["errors"] == 1
    assert decoded["by_version"] == {"unknown": 9, "v2": 1}
    assert decoded["by_status_class"] == {"2xx": 8, "5xx": 1, "refused": 1}
    assert decoded["by_status"] == {"200": 8, "503": 1}


def test_to_csv_writes_one_row_per_request(tmp_path: Path) -> None:
    rs = [
        *schedule(10, 3),
        RequestRecord(BASE + 1, BASE + 1.002, 0.5, "checkout", error="reset"),
    ]
    path = TrafficLog(rs, target_rate=10, started_at=BASE).to_csv(tmp_path / "out" / "t.csv")
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4
    assert rows[-1]["error"] == "reset"
    assert rows[-1]["status"] == ""
    assert float(rows[-1]["lateness"]) == pytest.approx(0.002)
    assert float(rows[0]["sent"]) == BASE


def test_captured_and_used_values_are_the_last_csv_columns(tmp_path: Path) -> None:
    rs = [
        RequestRecord(BASE, BASE, 0.01, "checkout", status=200, captured={"order": "41"}),
        RequestRecord(BASE + 0.1, BASE + 0.1, 0.01, "read", status=200, used={"order": "41"}),
        RequestRecord(
            BASE + 0.2, BASE + 0.2, 0.01, "checkout", status=200, captured={"order": "42"}
        ),
        RequestRecord(BASE + 0.3, BASE + 0.3, 0.01, "index", status=200),
    ]
    log = TrafficLog(rs, target_rate=10, started_at=BASE)
    assert log.captured_values("order") == ["41", "42"]
    assert rs[3].captured == rs[3].used == {}
    with log.to_csv(tmp_path / "t.csv").open(newline="") as handle:
        header, *rows = list(csv.reader(handle))
    # The eight columns the report reads by name keep their order; the new ones come last.
    assert ",".join(header[:8]) == "intended,sent,lateness,latency,route,status,error,version"
    assert header[8:] == ["captured", "used"]
    assert [(json.loads(c) if c else {}, json.loads(u) if u else {}) for *_, c, u in rows] == [
        ({"order": "41"}, {}),
        ({}, {"order": "41"}),
        ({"order": "42"}, {}),
        ({}, {}),
    ]
