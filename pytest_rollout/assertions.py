"""Evidence-bearing assertions: each raises with the numbers that decided it.

A property the run could not observe raises :class:`InconclusiveError` (a failure, never a pass).
"""

from __future__ import annotations

from typing import Protocol

from pytest_rollout.errors import InconclusiveError
from pytest_rollout.experiments import CanaryRun, ReleaseRun
from pytest_rollout.load import TrafficLog


class _Observed(Protocol):
    @property
    def label(self) -> str: ...

    @property
    def log(self) -> TrafficLog: ...


def assert_load_held(run: _Observed) -> None:
    """The generator kept its schedule, so the load was what the experiment says it was."""
    reason = run.log.inconclusive_reason
    if reason is not None:
        raise InconclusiveError(f"{run.label}: the load generator fell behind: {reason}")


def assert_rollout_inside_load(run: ReleaseRun) -> None:
    """The whole rollout happened while load was running, so every request it affected is in
    the log."""
    load_end = run.log.started_at + run.log.duration
    if not run.log.started_at < run.released_at < run.rolled_out_at <= load_end:
        raise InconclusiveError(
            f"{run.label}: the rollout was not inside the load window: load "
            f"+0.0s..+{run.log.duration:.1f}s, release at "
            f"+{run.released_at - run.log.started_at:.1f}s, rolled out at "
            f"+{run.rolled_out_at - run.log.started_at:.1f}s"
        )


def assert_version_served(run: ReleaseRun, version: str) -> None:
    """The release actually took traffic (else the run shows nothing about it)."""
    served = run.log.by_version().get(version, 0)
    if served == 0:
        seen = ", ".join(f"{v}={n}" for v, n in run.log.by_version().items()) or "none"
        raise InconclusiveError(
            f"{run.label}: the released version {version!r} served no request "
            f"(versions seen: {seen})"
        )


def readiness_table(with_probe: ReleaseRun, without_probe: ReleaseRun) -> str:
    """The before/after table of the readiness experiment."""
    rows = [("", "without probe", "with probe")]
    for name, key in (
        ("requests", "requests"),
        ("client-visible failures", "failures"),
        ("failures by status", "failures_by_status"),
        ("rollout seconds", "rollout_s"),
        ("achieved req/s", "achieved_rate"),
    ):
        rows.append((name, str(without_probe.summary()[key]), str(with_probe.summary()[key])))
    width = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join("  ".join(cell.ljust(width[i]) for i, cell in enumerate(row)) for row in rows)


def assert_readiness_probe_load_bearing(
    with_probe: ReleaseRun, without_probe: ReleaseRun, *, min_requests: int
) -> None:
    """With the probe no request fails; without it some do (else the control run is
    inconclusive: it could not show that the probe matters)."""
    table = readiness_table(with_probe, without_probe)
    for run in (with_probe, without_probe):
        if len(run.log) < min_requests:
            raise InconclusiveError(
                f"{run.label}: only {len(run.log)} requests (< {min_requests} needed)\n{table}"
            )
    if with_probe.failure_count() != 0:
        raise AssertionError(
            f"with the readiness probe, {with_probe.failure_count()} of {len(with_probe.log)} "
            f"requests failed (expected 0): {with_probe.failures()}\n{table}"
        )
    if without_probe.failure_count() == 0:
        raise InconclusiveError(
            f"without the readiness probe no request failed either (0 of "
            f"{len(without_probe.log)}): the control run does not show the probe matters\n{table}"
        )


def assert_in_order(seen: list[str], expected: list[str], *, context: str) -> None:
    """``expected`` occur in ``seen`` in this order (others may stand between them)."""
    position = 0
    for item in expected:
        try:
            position = seen.index(item, position) + 1
        except ValueError:
            raise AssertionError(
                f"expected {expected} in order; {item!r} missing after position {position} "
                f"of {seen}\n{context}"
            ) from None


def assert_event_order(run: CanaryRun, expected: list[str]) -> None:
    """``expected`` reasons occur in the Rollout's events in this order."""
    assert_in_order(
        run.reasons(), expected, context=f"{run.label} events:\n" + "\n".join(run.event_lines())
    )


def blast_radius(run: CanaryRun, bad_version: str, *, allowance: float) -> dict[str, float | int]:
    """The bad release's reach: its share of all requests from the release to the rollback
    (the abort plus ``allowance`` for the data plane to apply weight 0), and what came after."""
    abort = run.first_event("RolloutAborted")
    if abort is None:
        raise AssertionError(
            f"{run.label}: the Rollout never aborted. Events:\n" + "\n".join(run.event_lines())
        )
    rolled_back_at = abort.timestamp + allowance
    first_bad = run.log.first_seen(bad_version)
    last_bad = run.log.last_seen(bad_version)
    if first_bad is None or last_bad is None:
        raise InconclusiveError(
            f"{run.label}: the bad version {bad_version!r} served no request, so its "
            f"containment was not observed (versions: {run.log.by_version()})"
        )
    window = run.log.count(run.released_at, rolled_back_at)
    bad = run.log.by_version(run.released_at, rolled_back_at).get(bad_version, 0)
    after = run.log.by_version(rolled_back_at, None).get(bad_version, 0)
    return {
        "total_requests": window,
        "bad_requests": bad,
        "bad_share": bad / window if window else float("nan"),
        "bad_requests_after_rollback": after,
        "requests_after_rollback": run.log.count(rolled_back_at, None),
        "time_to_abort_s": abort.timestamp - first_bad,
        "time_to_zero_bad_s": last_bad - first_bad,
        "rolled_back_at_s": rolled_back_at - run.released_at,
    }


def assert_contained(
    run: CanaryRun, radius: dict[str, float | int], *, max_share: float, min_after: int
) -> None:
    """At most ``max_share`` of the requests between release and rollback hit the bad version,
    and none after, with at least ``min_after`` requests observed after the rollback."""
    share = float(radius["bad_share"])
    summary = (
        f"{radius['bad_requests']} of {radius['total_requests']} requests hit the bad version "
        f"between the release and the rollback at +{radius['rolled_back_at_s']:.1f}s "
        f"(abort {radius['time_to_abort_s']:.1f}s after its first request)"
    )
    if int(radius["requests_after_rollback"]) < min_after:
        raise InconclusiveError(
            f"{run.label}: only {radius['requests_after_rollback']} requests after the rollback "
            f"(< {min_after}); cannot show it held. {summary}"
        )
    if not share <= max_share:
        raise AssertionError(
            f"{run.label}: blast radius {share:.2%} > {max_share:.0%}: {summary}\n"
            + "\n".join(run.event_lines())
        )
    if radius["bad_requests_after_rollback"]:
        raise AssertionError(
            f"{run.label}: {radius['bad_requests_after_rollback']} requests hit the bad version "
            f"after the rollback (of {radius['requests_after_rollback']}): {summary}"
        )


def assert_served_throughout(run: CanaryRun, version: str, *, window: float = 1.0) -> None:
    """``version`` served requests in every ``window``-second slice of the load."""
    start = run.log.started_at
    end = start + run.log.duration
    gaps = []
    t = start
    while t + window <= end:
        if run.log.by_version(t, t + window).get(version, 0) == 0:
            gaps.append(f"+{t - start:.0f}s")
        t += window
    if gaps:
        raise AssertionError(
            f"{run.label}: the stable version {version!r} served nothing in the {window:g}s "
            f"windows starting at {', '.join(gaps)}"
        )
