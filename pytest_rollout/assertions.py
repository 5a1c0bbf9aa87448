"""Evidence-bearing assertions over several runs, or over a run and a claim about it.

Each raises with the numbers that decided it. A property the run could not observe raises
:class:`InconclusiveError` (a failure, never a pass). Assertions about one run are methods of
:class:`~pytest_rollout.runs.ReleaseRun`.
"""

from __future__ import annotations

from collections.abc import Sequence

from pytest_rollout.errors import InconclusiveError
from pytest_rollout.runs import ReleaseRun


def assert_readiness_probe_load_bearing(
    with_probe: ReleaseRun, without_probe: ReleaseRun, *, min_requests: int, table: str = ""
) -> None:
    """With the probe no request fails after the release; without it some do (else the
    control run is inconclusive: it could not show that the probe matters)."""
    shown = f"\n{table}" if table else ""
    for run in (with_probe, without_probe):
        after = run.log.count(run.released_at, None)
        if after < min_requests:
            raise InconclusiveError(
                f"{run.label}: only {after} requests after the release "
                f"(< {min_requests} needed){shown}"
            )
    failed = with_probe.failure_count(with_probe.released_at, None)
    if failed:
        raise AssertionError(
            f"with the readiness probe, {failed} of "
            f"{with_probe.log.count(with_probe.released_at, None)} requests after the release "
            f"failed (expected 0): {with_probe.failures(with_probe.released_at, None)}{shown}"
        )
    if without_probe.failure_count(without_probe.released_at, None) == 0:
        raise InconclusiveError(
            f"without the readiness probe no request failed either (0 of "
            f"{without_probe.log.count(without_probe.released_at, None)}): the control run "
            f"does not show the probe matters{shown}"
        )


def assert_in_order(seen: Sequence[str], expected: Sequence[str], *, context: str) -> None:
    """``expected`` occur in ``seen`` in this order (others may stand between them)."""
    position = 0
    items = list(seen)
    for item in expected:
        try:
            position = items.index(item, position) + 1
        except ValueError:
            raise AssertionError(
                f"expected {list(expected)} in order; {item!r} missing after position "
                f"{position} of {items}\n{context}"
            ) from None


def assert_served_throughout(run: ReleaseRun, version: str, *, window: float = 1.0) -> None:
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
            f"{run.label}: version {version!r} served nothing in the {window:g}s windows "
            f"starting at {', '.join(gaps)}"
        )
