"""Kind ``expand-contract``: a release that migrates the database, aborted once it has written.

The procedure, under open-loop load through the route:

1. the stable version serves; the release (``variant``) rolls out and its pods migrate the
   schema;
2. once the release has acknowledged ``min_new_writes`` writes, the experiment aborts the
   Rollout through its handle, as an operator following the runbook would, and waits until
   it is Degraded;
3. the load stays on for ``after_rollback`` seconds after the rollback (the abort plus the
   backend's rollback allowance);
4. every acknowledged write of the run is read back through the route, by the rollback target,
   and compared with what was sent.

A write is *acknowledged* when the ``writes`` request was answered 2xx with every value the
``read`` request's path needs (``capture``). It is read back with the same content when the
``read`` request for its captured values answers 2xx with a JSON object holding every field of
the write's JSON body at the same value, and — where the answer has the captured field — the
same captured value.

The schema revision is read through the route all along (``schema``: a path and the JSON field
of its answer; an array is recorded as its items joined by ", "), so it works where the
database is out of the test's reach. The migration is the first answer showing another
revision than the first one; it is added to the run's events (``SchemaMigrated``) beside the
operator's abort (``AbortRequested``) and the Rollout's own ``RolloutAborted``.

Keys (beside the common ones; ``tail`` is not used, ``after_rollback`` says how long the load
stays on)::

    expect          = "safe"           # required: "safe" or "broken" (below)
    writes          = "checkout"       # required: the [[requests]] entry that writes; its
                                       #   capture names the written object's id
    read            = "read-order"     # required: the [[requests]] entry that reads one back;
                                       #   its path uses only names `writes` captures
    schema          = { path = "/readyz", json = "schema.current" }   # required
    min_new_writes  = 100              # writes the release acknowledges before the abort
    after_rollback  = 10               # seconds of load after the rollback
    min_requests_after_rollback = 1000 # fewer: inconclusive

``expect = "safe"`` passes when, from the release to the end, no request failed (``errors``,
so ``errors_after_rollback`` is 0 too), no acknowledged write is lost
(``acknowledged_writes_lost``), and the rollback target read back writes of the release
(``writes_by_new_version_read_after_rollback`` > 0, counted by the final read-back).
``expect = "broken"`` passes when the stable version's requests failed once the migration ran
(``errors_stable_after_migration`` > 0) and requests still failed after the rollback
(``errors_after_rollback`` > 0): the rollback does not undo a migration the rollback target
cannot run on. Either is *inconclusive*, never passed, when the generator fell behind, the
schema never changed, the release did not reach ``min_new_writes`` within ``timeout``, fewer
than ``min_requests_after_rollback`` requests followed the rollback, or the read-back reached
another version than the stable one. It fails when the Rollout recorded no ``RolloutAborted``
after the operator's abort.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pytest_rollout._wait import wait_for
from pytest_rollout.clock import epoch_now
from pytest_rollout.config import TargetConfig
from pytest_rollout.errors import InconclusiveError, WaitTimeout
from pytest_rollout.experiment import Experiment
from pytest_rollout.kinds import ExperimentSpec, Kind, positive, register, workload_of
from pytest_rollout.kinds.readback import ReadBack, acknowledged_writes, by_release, read_back
from pytest_rollout.kinds.schema_watch import (
    Migration,
    SchemaProbe,
    first_migration,
    revision_changes,
    watching,
)
from pytest_rollout.load.mix import Route
from pytest_rollout.load.traffic import RequestRecord
from pytest_rollout.load.version import FIELD_PATH
from pytest_rollout.release import LiveRelease
from pytest_rollout.runs import ReleaseRun
from pytest_rollout.tomlcheck import Where, check_keys, require_string, require_table, toml_type

EXPECTATIONS = ("safe", "broken")
DEFAULT_MIN_NEW_WRITES = 100
DEFAULT_AFTER_ROLLBACK = 10.0
DEFAULT_MIN_REQUESTS_AFTER_ROLLBACK = 1000
_SHOWN_LOST = 5


# --- the keys ------------------------------------------------------------------------------


def parse_options(
    table: Mapping[str, Any], where: Where, target: TargetConfig, spec: ExperimentSpec
) -> dict[str, Any]:
    if "tail" in table:
        raise where.key("tail").error(
            "not used by kind 'expand-contract': the load stays on for after_rollback seconds "
            "after the rollback"
        )
    if spec.manifests is not None:
        workload = workload_of(spec, spec.manifests, target, where)
        if workload.kind != "Rollout":
            raise where.key("manifests").error(
                f"{workload.kind}/{workload.name} cannot be aborted; kind 'expand-contract' "
                "needs a Rollout"
            )
    expect = require_string(table["expect"], where.key("expect"))
    if expect not in EXPECTATIONS:
        raise where.key("expect").error(
            f"expected one of {', '.join(map(repr, EXPECTATIONS))}, got {expect!r}"
        )
    writes = request_named(table["writes"], where.key("writes"), target)
    if not writes.capture:
        raise where.key("writes").error(
            f"request {writes.name!r} captures nothing; give it capture = "
            '{ NAME = "FIELD" } naming the id its answer carries'
        )
    read = request_named(table["read"], where.key("read"), target)
    foreign = [name for name in read.names if name not in writes.capture]
    if not read.names or foreign:
        raise where.key("read").error(
            f"request {read.name!r} (path {read.path!r}) must read one object back by the "
            f"values {writes.name!r} captures ({', '.join(sorted(writes.capture))}); "
            f"its path uses {', '.join(foreign or read.names) or 'none'}"
        )
    return {
        "expect": expect,
        "writes": writes.name,
        "read": read.name,
        "schema": schema_probe(table["schema"], where.key("schema")),
        "min_new_writes": count(
            table.get("min_new_writes", DEFAULT_MIN_NEW_WRITES), where.key("min_new_writes")
        ),
        "after_rollback": positive(
            table.get("after_rollback", DEFAULT_AFTER_ROLLBACK), where.key("after_rollback")
        ),
        "min_requests_after_rollback": count(
            table.get("min_requests_after_rollback", DEFAULT_MIN_REQUESTS_AFTER_ROLLBACK),
            where.key("min_requests_after_rollback"),
        ),
    }


def request_named(value: object, where: Where, target: TargetConfig) -> Route:
    """The ``[[requests]]`` entry called ``value``."""
    name = require_string(value, where)
    for route in target.requests:
        if route.name == name:
            return route
    names = ", ".join(route.name for route in target.requests)
    raise where.error(f"no [[requests]] entry named {name!r}; requests: {names}")


def schema_probe(value: object, where: Where) -> SchemaProbe:
    table = require_table(value, where, expected='a table { path = "/...", json = "field" }')
    check_keys(table, where, allowed=("path", "json"), required=("path", "json"))
    path = require_string(table["path"], where.key("path"))
    if not path.startswith("/"):
        raise where.key("path").error(f"expected a path starting with '/', got {path!r}")
    field = require_string(table["json"], where.key("json"))
    if not FIELD_PATH.fullmatch(field):
        raise where.key("json").error(
            f"expected a JSON field, dotted for nested objects (e.g. 'schema.current'), "
            f"got {field!r}"
        )
    return SchemaProbe(path, field)


def count(value: object, where: Where) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        number = isinstance(value, int | float) and not isinstance(value, bool)
        raise where.error(
            f"expected a positive integer, got {repr(value) if number else toml_type(value)}"
        )
    return value


# --- what the run showed -------------------------------------------------------------------


@dataclass(frozen=True)
class SchemaOutcome:
    """The numbers of one run of the kind; instants are epoch seconds."""

    run: ReleaseRun
    read: Route
    acknowledged: tuple[RequestRecord, ...]
    reads: tuple[ReadBack, ...]
    samples: tuple[tuple[float, str], ...]
    schema_read_failures: Mapping[str, int]
    abort_requested_at: float
    read_back_s: float

    @property
    def stable(self) -> frozenset[str]:
        return self.run.stable_versions

    @property
    def migration(self) -> Migration | None:
        return first_migration(self.samples)

    @property
    def abort_at(self) -> float | None:
        """The Rollout's ``RolloutAborted`` event."""
        cause = self.run.abort_cause()
        return cause.at if cause is not None else None

    @property
    def rolled_back_at(self) -> float | None:
        """The abort plus the backend's rollback allowance."""
        abort_at = self.abort_at
        return None if abort_at is None else abort_at + self.run.allowance.seconds

    @property
    def lost(self) -> list[ReadBack]:
        return [r for r in self.reads if not r.intact]

    @property
    def new_version_writes(self) -> list[RequestRecord]:
        return by_release(self.acknowledged, self.stable)

    def requests_after_rollback(self) -> int:
        at = self.rolled_back_at
        return self.run.log.count(at, None) if at is not None else 0

    def errors_after_rollback(self) -> int:
        at = self.rolled_back_at
        return self.run.failure_count(at, None) if at is not None else 0

    def errors_stable_after_migration(self) -> int:
        migration = self.migration
        if migration is None:
            return 0
        by_version = self.run.failures_by_version(migration.at, None)
        return sum(n for version, n in by_version.items() if version in self.stable)

    def first_error_s(self) -> float | None:
        """From the migration to the first failure sent after the last answer still showing
        the old revision; negative (by less than the window the migration is known within)
        when the failure came before the first answer showing the new one."""
        migration = self.migration
        if migration is None:
            return None
        failed = self.run.failed_requests(migration.last_before_at, None)
        return failed[0].sent - migration.at if failed else None

    def new_version_writes_read_back(self) -> int:
        """Writes of the release the final read-back found intact, answered by a stable
        version (the rollback target)."""
        return sum(
            1
            for r in self.reads
            if r.intact
            and r.written_by is not None
            and r.written_by not in self.stable
            and r.answered_by in self.stable
        )

    def new_version_writes_read_by_load_after_rollback(self) -> int:
        """Distinct writes of the release that the load's ``read`` requests read (2xx, from a
        stable version) after the rollback."""
        at = self.rolled_back_at
        if at is None:
            return 0
        written = {
            tuple(sorted((n, r.captured[n]) for n in self.read.names))
            for r in self.new_version_writes
        }
        seen = {
            tuple(sorted(r.used.items()))
            for r in self.run.log.in_window(at, None)
            if r.route == self.read.name
            and r.status is not None
            and 200 <= r.status < 300
            and r.version in self.stable
        }
        return len(written & seen)

    def read_back_by_version(self) -> dict[str, int]:
        return dict(Counter(r.answered_by or "unknown" for r in self.reads))

    def relative(self, t: float | None) -> float | None:
        return None if t is None else round(t - self.run.released_at, 3)

    def metrics(self, expect: str) -> dict[str, Any]:
        run = self.run
        migration = self.migration
        lost = self.lost
        first_error = self.first_error_s()
        return {
            "expect": expect,
            "requests": run.log.count(run.released_at, None),
            "errors": run.failure_count(run.released_at, None),
            "errors_by_status": run.failures(run.released_at, None),
            "errors_by_version": run.failures_by_version(run.released_at, None),
            "acknowledged_writes": len(self.acknowledged),
            "acknowledged_writes_by_version": dict(
                Counter(r.version or "unknown" for r in self.acknowledged)
            ),
            "acknowledged_writes_lost": len(lost),
            "lost_by_reason": dict(Counter(r.reason or "" for r in lost)),
            "lost_examples": [r.describe() for r in lost[:_SHOWN_LOST]],
            "writes_by_new_version": len(self.new_version_writes),
            "writes_by_new_version_read_after_rollback": self.new_version_writes_read_back(),
            "writes_by_new_version_read_by_load_after_rollback": (
                self.new_version_writes_read_by_load_after_rollback()
            ),
            "read_back_by_version": self.read_back_by_version(),
            "read_back_s": round(self.read_back_s, 3),
            "requests_after_rollback": self.requests_after_rollback(),
            "errors_after_rollback": self.errors_after_rollback(),
            "errors_after_rollback_by_status": (
                run.failures(self.rolled_back_at, None) if self.rolled_back_at else {}
            ),
            "errors_stable_after_migration": self.errors_stable_after_migration(),
            "first_error_s": None if first_error is None else round(first_error, 3),
            "schema_revisions": [
                [self.relative(t), value] for t, value in revision_changes(self.samples)
            ],
            "schema_reads": len(self.samples),
            "schema_read_failures": dict(self.schema_read_failures),
            "migration_at_s": self.relative(migration.at if migration else None),
            "migration_known_within_s": (
                round(migration.at - migration.last_before_at, 3) if migration else None
            ),
            "abort_requested_at_s": self.relative(self.abort_requested_at),
            "abort_at_s": self.relative(self.abort_at),
            "rolled_back_at_s": self.relative(self.rolled_back_at),
            "rollback_allowance_s": run.allowance.seconds,
        }

    def headline(self, expect: str) -> str:
        lost = len(self.lost)
        after = self.errors_after_rollback()
        if expect == "safe":
            return (
                f"{lost:,} of {len(self.acknowledged):,} acknowledged writes lost "
                f"({len(self.new_version_writes):,} by the release); {after:,} errors after "
                f"the rollback"
            )
        return (
            f"{self.errors_stable_after_migration():,} stable-version failures from the "
            f"migration on; {after:,} errors after the rollback; {lost:,} of "
            f"{len(self.acknowledged):,} acknowledged writes lost"
        )


# --- the verdict ---------------------------------------------------------------------------


def check_observed(outcome: SchemaOutcome, *, min_requests_after_rollback: int) -> None:
    """What must have happened for the run to show anything; else inconclusive (or, for an
    abort the Rollout never recorded, a failure)."""
    run = outcome.run
    run.assert_load_held()
    if outcome.migration is None:
        seen = ", ".join(sorted({v for _, v in outcome.samples})) or "none"
        raise InconclusiveError(
            f"{run.label}: the schema revision never changed ({len(outcome.samples)} reads "
            f"showed {seen}; failed reads: {dict(outcome.schema_read_failures) or 'none'}): "
            "the release migrated nothing, or before the first read"
        )
    if outcome.abort_at is None:
        raise AssertionError(
            f"{run.label}: the operator aborted at +{outcome.relative(outcome.abort_requested_at)}"
            f"s, but the Rollout recorded no RolloutAborted event\n" + "\n".join(run.event_lines())
        )
    after = outcome.requests_after_rollback()
    if after < min_requests_after_rollback:
        raise InconclusiveError(
            f"{run.label}: only {after:,} requests after the rollback at "
            f"+{outcome.relative(outcome.rolled_back_at)}s (< {min_requests_after_rollback:,}); "
            f"{outcome.errors_after_rollback():,} of them failed"
        )
    strays = {v: n for v, n in outcome.read_back_by_version().items() if v not in outcome.stable}
    if strays:
        raise InconclusiveError(
            f"{run.label}: the read-back after the rollback was not answered by the stable "
            f"version(s) {sorted(outcome.stable)} alone: {outcome.read_back_by_version()}"
        )


def check_safe(outcome: SchemaOutcome) -> None:
    """No failure from the release on (so none after the rollback either), no write lost, and
    writes of the release read back by the rollback target."""
    run = outcome.run
    run.assert_no_errors()
    lost = outcome.lost
    if lost:
        examples = "\n  ".join(r.describe() for r in lost[:_SHOWN_LOST])
        raise AssertionError(
            f"{run.label}: {len(lost):,} of {len(outcome.acknowledged):,} acknowledged writes "
            f"could not be read back with the same content after the rollback (expected 0): "
            f"{dict(Counter(r.reason for r in lost))}\n  {examples}"
        )
    if not outcome.new_version_writes_read_back():
        raise AssertionError(
            f"{run.label}: none of the release's {len(outcome.new_version_writes):,} "
            f"acknowledged writes was read back by the stable version after the rollback "
            f"(read-back answered by {outcome.read_back_by_version()})"
        )


def check_broken(outcome: SchemaOutcome) -> None:
    run = outcome.run
    migration = outcome.migration
    assert migration is not None  # check_observed
    if not outcome.errors_stable_after_migration():
        stable = sum(
            n for v, n in run.log.by_version(migration.at, None).items() if v in outcome.stable
        )
        raise AssertionError(
            f"{run.label}: expected the migration to break the stable version, but none of "
            f"its {stable:,} requests after it failed{_migration_line(outcome)}"
        )
    if not outcome.errors_after_rollback():
        raise AssertionError(
            f"{run.label}: expected requests to keep failing after the rollback (the schema "
            f"stays migrated), but none of {outcome.requests_after_rollback():,} failed"
        )


def _migration_line(outcome: SchemaOutcome) -> str:
    migration = outcome.migration
    if migration is None:
        return ""
    return f"; schema {migration.before} -> {migration.after} at +{outcome.relative(migration.at)}s"


# --- the procedure -------------------------------------------------------------------------


def wait_for_release_writes(
    live: LiveRelease, writes: Route, read: Route, wanted: int, timeout: float
) -> int:
    """Wait until the release has acknowledged ``wanted`` writes; their number. Not reaching
    it in ``timeout`` seconds is inconclusive, with what was seen."""

    def written() -> int:
        return len(by_release(acknowledged_writes(live.log, writes, read), live.stable_versions))

    try:
        wait_for(
            lambda: written() >= wanted,
            what=f"{wanted} writes acknowledged by the release",
            timeout=timeout,
            interval=0.2,
        )
    except WaitTimeout as exc:
        log = live.log
        view = live.status()
        state = f"Rollout {view.phase}, canary weight {view.canary_weight}" if view else "no status"
        raise InconclusiveError(
            f"{live.label}: the release acknowledged {written()} writes in {timeout:g}s "
            f"(< {wanted}): it did not serve enough to show anything; {state}; requests by "
            f"version since the release: {log.by_version(live.released_at, None)}"
        ) from exc
    return written()


def run(experiment: Experiment, spec: ExperimentSpec) -> None:
    options = spec.options
    target = experiment.target
    writes = request_named(options["writes"], Where(target.label, ()), target)
    read = request_named(options["read"], Where(target.label, ()), target)
    probe: SchemaProbe = options["schema"]
    with experiment.start(
        spec.the_variant,
        manifests=spec.manifests,
        workload=spec.workload,
        route=spec.route,
        rate=spec.rate,
        timeout=spec.timeout,
    ) as live:
        url = live.namespace.route_url(live.target.route)
        with watching(url, probe) as watch:
            reached = wait_for_release_writes(
                live, writes, read, options["min_new_writes"], spec.timeout
            )
            abort_requested_at = epoch_now()
            live.note(
                "AbortRequested",
                f"operator abort (the runbook's abort, through the Rollout's handle) after "
                f"{reached} writes acknowledged by the release",
                at=abort_requested_at,
            )
            live.handle.abort()
            live.wait_settled(("Degraded",))
            migration = first_migration(watch.samples)
            if migration is not None:
                live.note(
                    "SchemaMigrated",
                    f"schema revision {migration.before} -> {migration.after} "
                    f"(first shown by {probe.describe()}; the read "
                    f"{migration.at - migration.last_before_at:.2f}s before showed "
                    f"{migration.before})",
                    at=migration.at,
                )
            result = live.finish(
                tail=options["after_rollback"] + live.namespace.rollback_allowance.seconds
            )
            acknowledged = acknowledged_writes(result.log, writes, read)
            started = epoch_now()
            reads = read_back(url, acknowledged, writes, read, target.version)
            read_back_s = epoch_now() - started
    watch.check()
    outcome = SchemaOutcome(
        run=result,
        read=read,
        acknowledged=tuple(acknowledged),
        reads=tuple(reads),
        samples=tuple(watch.samples),
        schema_read_failures=dict(watch.failed),
        abort_requested_at=abort_requested_at,
        read_back_s=read_back_s,
    )
    expect = options["expect"]
    experiment.record(
        **outcome.metrics(expect),
        min_new_writes=options["min_new_writes"],
        after_rollback=options["after_rollback"],
    )
    experiment.headline(outcome.headline(expect))
    check_observed(outcome, min_requests_after_rollback=options["min_requests_after_rollback"])
    if expect == "safe":
        check_safe(outcome)
    else:
        check_broken(outcome)


register(
    Kind(
        name="expand-contract",
        summary="a schema-changing release aborted under load: the rollback target serves on "
        "(safe) or breaks (broken)",
        run=run,
        keys=(
            "expect",
            "writes",
            "read",
            "schema",
            "min_new_writes",
            "after_rollback",
            "min_requests_after_rollback",
        ),
        required=("expect", "writes", "read", "schema"),
        parse=parse_options,
    )
)
