"""Evidence-bearing assertions: each raises with the numbers that decided it.

A property the run could not observe raises :class:`InconclusiveError` (a failure, never a pass).
"""

from __future__ import annotations

from pytest_rollout.errors import InconclusiveError
from pytest_rollout.experiments import ReleaseRun


def assert_load_held(run: ReleaseRun) -> None:
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
