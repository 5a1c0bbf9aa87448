"""Kind ``expand-contract``: its keys, the read-back comparison, the schema revision over time,
and the verdicts, on hand-made traffic and a real loopback HTTP server (no cluster)."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

import pytest

from pytest_rollout._wait import wait_for
from pytest_rollout.backends.base import EventView, RollbackAllowance
from pytest_rollout.config import TargetConfig, Variant
from pytest_rollout.config_file import load_config, load_target_config
from pytest_rollout.errors import ConfigError, InconclusiveError
from pytest_rollout.kinds import parse_experiment
from pytest_rollout.kinds.readback import (
    ReadBack,
    acknowledged_writes,
    by_release,
    captured_difference,
    content_difference,
    judge_read,
    read_back,
    same_json,
)
from pytest_rollout.kinds.schema import SchemaOutcome, check_broken, check_observed, check_safe
from pytest_rollout.kinds.schema_watch import (
    EMPTY,
    SchemaProbe,
    first_migration,
    revision_changes,
    revision_of,
    watching,
)
from pytest_rollout.load import RequestRecord, TrafficLog
from pytest_rollout.load.mix import Route
from pytest_rollout.load.version import VersionSource
from pytest_rollout.release import _with_notes
from pytest_rollout.runs import ReleaseRun

REPO = Path(__file__).resolve().parents[2]
BODY = {"item": "load-test", "quantity": 1}
WRITES = Route(
    "checkout", "POST", "/checkout", json_body=BODY, weight=2, capture={"order": "order_id"}
)
READ = Route("read-order", "GET", "/orders/{order}", weight=2)


# --- the keys ------------------------------------------------------------------------------


def _repo() -> TargetConfig:
    return load_target_config([REPO])


def _parse(name: str, **changes: Any) -> dict[str, Any]:
    target = _repo()
    table = {**target.experiments[name], **changes}
    table = {k: v for k, v in table.items() if v is not None}
    return dict(parse_experiment(name, table, target).options)


def test_the_repository_declares_both_experiments() -> None:
    safe = _parse("expand-contract")
    assert safe == {
        "expect": "safe",
        "writes": "checkout",
        "read": "read-order",
        "schema": SchemaProbe("/readyz", "schema.current"),
        "min_new_writes": 100,
        "after_rollback": 10.0,
        "min_requests_after_rollback": 1000,
    }
    broken = _parse("big-bang-migration")
    assert broken == {**safe, "expect": "broken"}
    target = _repo()
    assert target.experiments["big-bang-migration"]["variant"] == "big-bang"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"expect": "fine"}, ".expect: expected one of 'safe', 'broken', got 'fine'"),
        ({"expect": None}, "missing required key 'expect'"),
        (
            {"writes": "buy"},
            ".writes: no [[requests]] entry named 'buy'; requests: index, checkout, read-order",
        ),
        ({"writes": "index"}, ".writes: request 'index' captures nothing; give it capture ="),
        (
            {"read": "index"},
            ".read: request 'index' (path '/') must read one object back by the values "
            "'checkout' captures (order); its path uses none",
        ),
        ({"schema": "/readyz"}, '.schema: expected a table { path = "/...", json = "field" }'),
        ({"schema": {"path": "/readyz"}}, ".schema: missing required key 'json'"),
        (
            {"schema": {"path": "readyz", "json": "schema.current"}},
            ".schema.path: expected a path starting with '/', got 'readyz'",
        ),
        (
            {"schema": {"path": "/readyz", "json": "schema..current"}},
            ".schema.json: expected a JSON field, dotted for nested objects",
        ),
        (
            {"schema": {"path": "/readyz", "json": "x", "status": 200}},
            ".schema: unknown key 'status'; allowed: json, path",
        ),
        ({"min_new_writes": 0}, ".min_new_writes: expected a positive integer, got 0"),
        ({"min_new_writes": 1.5}, ".min_new_writes: expected a positive integer, got 1.5"),
        ({"min_new_writes": True}, ".min_new_writes: expected a positive integer, got boolean"),
        ({"after_rollback": -1}, ".after_rollback: expected a positive number, got -1"),
        (
            {"min_requests_after_rollback": "many"},
            ".min_requests_after_rollback: expected a positive integer, got string",
        ),
        ({"tail": 9}, ".tail: not used by kind 'expand-contract': the load stays on for"),
        (
            {"manifests": "readiness-with-probe"},
            ".manifests: Deployment/reference-service cannot be aborted; kind "
            "'expand-contract' needs a Rollout",
        ),
    ],
)
def test_a_wrong_key_is_one_line_naming_it(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _parse("expand-contract", **changes)
    text = str(caught.value)
    assert "\n" not in text
    assert text.startswith("rollout.toml: [experiments.expand-contract]")
    assert message in text


FOREIGN = """\
[manifests]
canary = ["{repo}/fixtures/manifests/base", "{repo}/fixtures/manifests/expand-contract"]

[images."pytest-rollout/reference-service"]
command = ["{{python}}", "-m", "shop"]

[[requests]]
name = "place"
method = "POST"
path = "/api/orders"
json = {{ sku = "tea" }}
capture = {{ id = "order.id", shelf = "order.shelf" }}

[[requests]]
name = "fetch"
path = "/api/shelves/{{shelf}}/orders/{{id}}"

[[requests]]
name = "stray"
path = "/api/lists/{{id}}"

[version]
json = "meta.release"

[variants.next]
env = {{ SHOP_RELEASE = "two" }}

[experiments.schema]
kind = "expand-contract"
manifests = "canary"
variant = "next"
expect = "broken"
writes = "place"
read = "fetch"
schema = {{ path = "/internal/db", json = "db.revisions" }}
"""


def test_a_foreign_project_names_its_own_requests(tmp_path: Path) -> None:
    config = tmp_path / "rollout.toml"
    config.write_text(FOREIGN.format(repo=REPO))
    target = load_config(config)
    options = parse_experiment("schema", target.experiments["schema"], target).options
    assert options["writes"] == "place"
    assert options["read"] == "fetch"
    assert options["schema"] == SchemaProbe("/internal/db", "db.revisions")
    # "stray" uses only `id`: it reads by a value `place` captures, so it would do as well.
    parse_experiment("schema", {**target.experiments["schema"], "read": "stray"}, target)


def test_the_kind_knows_no_service() -> None:
    package = REPO / "pytest_rollout" / "kinds"
    for module in ("schema.py", "readback.py", "schema_watch.py"):
        source = (package / module).read_text()
        assert not re.search(r"^\s*(from|import) service\b", source, re.MULTILINE), module
        for name in ("reference-service", "reference_service", "SERVICE_", "sku"):
            assert name not in source, (module, name)


# --- the schema revision -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "field", "revision"),
    [
        ({"schema": {"current": ["0002_expand"]}}, "schema.current", "0002_expand"),
        ({"schema": {"current": ["a", "b"]}}, "schema.current", "a, b"),
        ({"schema": {"current": []}}, "schema.current", EMPTY),
        ({"revision": 7}, "revision", "7"),
        ({"revision": "r7"}, "revision", "r7"),
        ({"schema": {"current": [{"id": 1}]}}, "schema.current", None),
        ({"schema": {}}, "schema.current", None),
        ({"schema": {"current": None}}, "schema.current", None),
        (["0001"], "schema", None),
    ],
)
def test_revision_of(document: object, field: str, revision: str | None) -> None:
    assert revision_of(document, field) == revision


def test_the_migration_is_the_first_read_showing_another_revision() -> None:
    samples = [(1.0, "r1"), (1.2, "r1"), (1.4, "r2"), (1.6, "r2"), (1.8, "r3")]
    migration = first_migration(samples)
    assert migration is not None
    assert (migration.at, migration.before, migration.after) == (1.4, "r1", "r2")
    assert migration.last_before_at == 1.2
    assert revision_changes(samples) == [(1.0, "r1"), (1.4, "r2"), (1.8, "r3")]
    assert first_migration([(1.0, "r1"), (2.0, "r1")]) is None
    assert first_migration([]) is None


# --- the read-back comparison --------------------------------------------------------------


def test_content_is_compared_field_by_field() -> None:
    answer = {"order_id": 7, "item": "load-test", "quantity": 1, "created_by_version": "v2"}
    assert content_difference(BODY, answer) is None
    assert (
        content_difference(BODY, {**answer, "item": None}) == "item: written 'load-test', read None"
    )
    assert content_difference(BODY, {"order_id": 7, "quantity": 1}) == "item: missing"
    assert content_difference({"a": {"b": 1}}, {"a": {"b": 2}}) == "a.b: written 1, read 2"
    assert content_difference({"a": 1}, [1]) == "answer: expected an object, read [1]"
    assert content_difference(None, {"anything": 1}) is None
    assert content_difference(["not", "an", "object"], {}) is None


def test_json_equality_keeps_booleans_apart() -> None:
    assert same_json(1, 1.0)
    assert not same_json(True, 1)
    assert not same_json(1, True)
    assert same_json([1, {"a": False}], [1.0, {"a": False}])
    assert not same_json({"a": 1}, {"a": 1, "b": 2})
    assert not same_json([1], [1, 2])


def test_the_captured_id_must_match_where_the_answer_has_it() -> None:
    capture = {"order": "order_id"}
    assert captured_difference({"order": "7"}, capture, {"order_id": 7}) is None
    assert captured_difference({"order": "7"}, capture, {"item": "x"}) is None
    assert (
        captured_difference({"order": "7"}, capture, {"order_id": 8})
        == "order_id: written '7', read '8'"
    )


def _write(t: float, order: str | None, version: str = "v1", status: int = 200) -> RequestRecord:
    captured = {"order": order} if order is not None else {}
    return RequestRecord(t, t, 0.002, "checkout", status=status, version=version, captured=captured)


def test_a_read_is_judged_by_status_then_content() -> None:
    record = _write(1.0, "7", "v2")
    good = json.dumps({"order_id": 7, **BODY}).encode()

    def judge(status: int, body: bytes) -> ReadBack:
        return judge_read(record, "/orders/7", WRITES, status=status, body=body, answered_by="v1")

    assert judge(200, good).intact
    assert judge(404, b"{}").reason == "404"
    assert judge(500, b"{}").reason == "500"
    other = judge(200, json.dumps({"order_id": 8, **BODY}).encode())
    assert other.reason == "different content"
    assert other.describe() == "/orders/7 (written by v2): order_id: written '7', read '8'"
    assert judge(200, b"<html>").difference == "answer is not JSON"
    lost = ReadBack("/orders/7", 1.0, "v2", error="ReadTimeout")
    assert (lost.reason, lost.intact) == ("no answer", False)


def test_acknowledged_writes_need_a_2xx_with_the_id() -> None:
    log = TrafficLog(
        [
            _write(1.0, "1"),
            _write(1.1, None),  # 200 without an id: a checkout that recorded nothing
            _write(1.2, "3", status=500),
            _write(1.3, "4", "v2"),
            RequestRecord(1.4, 1.4, 0.001, "read-order", status=200, version="v1"),
        ],
        target_rate=10,
        started_at=1.0,
    )
    acknowledged = acknowledged_writes(log, WRITES, READ)
    assert [r.captured["order"] for r in acknowledged] == ["1", "4"]
    assert [r.captured["order"] for r in by_release(acknowledged, frozenset({"v1"}))] == ["4"]


# --- a real HTTP server --------------------------------------------------------------------


class _Shop(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    orders: ClassVar[dict[str, dict[str, Any]]] = {}
    revision: ClassVar[list[str]] = ["r1"]

    def do_GET(self) -> None:
        if self.path == "/readyz":
            return self._answer(200, {"schema": {"current": list(self.revision)}})
        found = re.fullmatch(r"/orders/(\d+)", self.path)
        order = self.orders.get(found.group(1)) if found else None
        if order is None:
            return self._answer(404, {"error": "not found"})
        return self._answer(200, order)

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Version", "v1")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def shop() -> Iterator[str]:
    _Shop.orders = {
        "1": {"order_id": 1, **BODY},
        "2": {"order_id": 2, "item": "something else", "quantity": 1},
        "4": {"order_id": 4, **BODY},
    }
    _Shop.revision = ["r1"]
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Shop)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_every_write_is_read_back_through_the_route(shop: str) -> None:
    records = [_write(1.0 + i / 10, str(i), "v2" if i % 2 else "v1") for i in range(1, 6)]
    reads = read_back(shop, records, WRITES, READ, VersionSource())
    assert [r.path for r in reads] == [f"/orders/{i}" for i in range(1, 6)]
    assert [r.reason for r in reads] == [None, "different content", "404", None, "404"]
    assert {r.answered_by for r in reads} == {"v1"}
    assert reads[1].difference == "item: written 'load-test', read 'something else'"


def test_the_watch_sees_the_revision_change(shop: str) -> None:
    with watching(shop, SchemaProbe("/readyz", "schema.current")) as watch:
        wait_for(lambda: watch.samples, what="a first schema read", timeout=5)
        _Shop.revision = ["r2"]
        wait_for(lambda: first_migration(watch.samples), what="the migration", timeout=5)
    watch.check()
    migration = first_migration(watch.samples)
    assert migration is not None
    assert (migration.before, migration.after) == ("r1", "r2")
    assert not watch.failed


# --- the verdicts --------------------------------------------------------------------------

RELEASE = 100.0
ABORT = RELEASE + 10.0
ROLLBACK = ABORT + 1.0
STABLE = frozenset({"v1"})


def _traffic(*, stable_fails_after: float | None = None, seconds: int = 25) -> TrafficLog:
    """100 req/s from 1 s before the release: v2 answers a fifth of them until the abort."""
    records = []
    order = 0
    for i in range((seconds + 1) * 100):
        t = RELEASE - 1.0 + i / 100
        version = "v2" if RELEASE + 2 <= t < ABORT and i % 5 == 0 else "v1"
        failing = version == "v1" and stable_fails_after is not None and t >= stable_fails_after
        if i % 4 == 1:
            order += 1
            records.append(
                _write(t, None if failing else str(order), version, 500 if failing else 200)
            )
        else:
            records.append(
                RequestRecord(t, t, 0.001, "index", status=500 if failing else 200, version=version)
            )
    return TrafficLog(records, target_rate=100, started_at=RELEASE - 1.0)


def _release_run(log: TrafficLog, *, aborted: bool = True) -> ReleaseRun:
    variant = Variant("expand", "", MappingProxyType({}), MappingProxyType({}), "cfg", "v2")
    events = [EventView(RELEASE, "Normal", "RolloutUpdated", "", "Rollout", "svc")]
    if aborted:
        events.append(
            EventView(ABORT, "Warning", "RolloutAborted", "Rollout aborted", "Rollout", "svc")
        )
    return ReleaseRun(
        label="schema",
        workload="svc",
        kind="Rollout",
        variant=variant,
        log=log,
        released_at=RELEASE,
        settled_at=ABORT,
        stable_versions=STABLE,
        view=None,
        events=tuple(events),
        analysis_runs=(),
        allowance=RollbackAllowance.of({"endpoint_propagation": 1.0}),
    )


def _outcome(
    log: TrafficLog,
    *,
    lose: int = 0,
    aborted: bool = True,
    samples: tuple[tuple[float, str], ...] = ((RELEASE + 0.2, "r1"), (RELEASE + 1.5, "r2")),
) -> SchemaOutcome:
    acknowledged = acknowledged_writes(log, WRITES, READ)
    reads = [
        ReadBack(f"/orders/{r.captured['order']}", r.sent, r.version, status=200, answered_by="v1")
        for r in acknowledged
    ]
    for index in range(lose):
        reads[index] = ReadBack(reads[index].path, reads[index].written_at, "v1", status=404)
    return SchemaOutcome(
        run=_release_run(log, aborted=aborted),
        read=READ,
        acknowledged=tuple(acknowledged),
        reads=tuple(reads),
        samples=samples,
        schema_read_failures={},
        abort_requested_at=ABORT - 0.01,
        read_back_s=0.5,
    )


def test_a_safe_run_reports_and_passes() -> None:
    outcome = _outcome(_traffic())
    metrics = outcome.metrics("safe")
    assert metrics["errors"] == 0
    assert metrics["acknowledged_writes"] == len(outcome.acknowledged) > 0
    assert metrics["acknowledged_writes_lost"] == 0
    assert metrics["writes_by_new_version"] == len(by_release(outcome.acknowledged, STABLE)) > 0
    assert metrics["writes_by_new_version_read_after_rollback"] == metrics["writes_by_new_version"]
    assert metrics["requests_after_rollback"] == 1400  # 14 s at 100 req/s after +11 s
    assert metrics["schema_revisions"] == [[0.2, "r1"], [1.5, "r2"]]
    assert (metrics["migration_at_s"], metrics["abort_at_s"], metrics["rolled_back_at_s"]) == (
        1.5,
        10.0,
        11.0,
    )
    assert metrics["first_error_s"] is None
    check_observed(outcome, min_requests_after_rollback=1000)
    check_safe(outcome)
    assert outcome.headline("safe").startswith(f"0 of {len(outcome.acknowledged):,} acknowledged")


def test_a_lost_write_fails_the_safe_run_with_examples() -> None:
    outcome = _outcome(_traffic(), lose=2)
    with pytest.raises(
        AssertionError, match=r"2 of \d+ acknowledged writes could not be read"
    ) as e:
        check_safe(outcome)
    assert "/orders/1 (written by v1): answered 404" in str(e.value)


def test_unobserved_runs_are_inconclusive() -> None:
    log = _traffic()
    with pytest.raises(InconclusiveError, match="schema revision never changed"):
        check_observed(
            _outcome(log, samples=((RELEASE, "r1"), (RELEASE + 1, "r1"))),
            min_requests_after_rollback=1000,
        )
    with pytest.raises(InconclusiveError, match=r"only 1,400 requests after the rollback"):
        check_observed(_outcome(log), min_requests_after_rollback=2000)
    with pytest.raises(AssertionError, match="recorded no RolloutAborted event"):
        check_observed(_outcome(log, aborted=False), min_requests_after_rollback=1000)


def test_a_broken_run_counts_stable_failures_after_the_migration() -> None:
    outcome = _outcome(_traffic(stable_fails_after=RELEASE + 1.6))
    metrics = outcome.metrics("broken")
    assert metrics["errors_stable_after_migration"] > 0
    assert metrics["errors_after_rollback"] == metrics["requests_after_rollback"] == 1400
    assert metrics["first_error_s"] == pytest.approx(0.1, abs=0.011)
    check_observed(outcome, min_requests_after_rollback=1000)
    check_broken(outcome)
    with pytest.raises(AssertionError, match="requests after the release failed"):
        check_safe(outcome)


def test_a_broken_run_that_did_not_break_fails() -> None:
    with pytest.raises(AssertionError, match="expected the migration to break the stable"):
        check_broken(_outcome(_traffic()))


def test_notes_land_among_the_workloads_events_by_time() -> None:
    def event(t: float, reason: str, kind: str = "Rollout") -> EventView:
        return EventView(t, "Normal", reason, "", kind, "svc")

    events = [event(1.0, "RolloutUpdated"), event(5.0, "RolloutPaused"), event(9.0, "Aborted")]
    notes = [event(9.0, "AbortRequested", "Experiment"), event(2.5, "SchemaMigrated", "Experiment")]
    merged = _with_notes(events, notes)
    assert [e.reason for e in merged] == [
        "RolloutUpdated",
        "SchemaMigrated",
        "RolloutPaused",
        "Aborted",
        "AbortRequested",
    ]
