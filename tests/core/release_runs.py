"""Hand-made traffic logs and release runs for the tests of what a run records."""

from __future__ import annotations

from types import MappingProxyType

from pytest_rollout.backends.base import AnalysisRunView, EventView, RollbackAllowance, RolloutView
from pytest_rollout.config import Variant
from pytest_rollout.load import RequestRecord, TrafficLog
from pytest_rollout.runs import ReleaseRun

T0 = 1_000.0
RELEASE = T0 + 1.0


def traffic(
    seconds: list[dict[str, int]], *, failing: str = "v2-bad", rate: float = 100.0
) -> TrafficLog:
    """One second of requests per entry, spread evenly, served by the given versions; every
    other request of ``failing`` answers 500."""
    records = []
    for second, versions in enumerate(seconds):
        total = sum(versions.values())
        sequence = [v for v, n in versions.items() for _ in range(n)]
        for index, version in enumerate(sequence):
            t = T0 + second + index / total
            status = 500 if version == failing and index % 2 else 200
            records.append(RequestRecord(t, t, 0.001, "GET /", status=status, version=version))
    return TrafficLog(records, target_rate=rate, started_at=T0)


def release_run(
    log: TrafficLog,
    *,
    label: str = "test",
    events: tuple[EventView, ...] = (),
    view: RolloutView | None = None,
    version: str | None = "v2-bad",
    runs: tuple[AnalysisRunView, ...] = (),
    steps: int = 5,
    tail: float = 9.0,
) -> ReleaseRun:
    """A run of ``version`` released at :data:`RELEASE` and settled 5 s later."""
    variant = Variant("bad", "", MappingProxyType({}), MappingProxyType({}), "cfg", version)
    return ReleaseRun(
        label=label,
        workload="reference-service",
        kind="Rollout",
        variant=variant,
        log=log,
        released_at=RELEASE,
        settled_at=T0 + 6.0,
        stable_versions=frozenset({"v1"}),
        view=view,
        events=events,
        analysis_runs=runs,
        allowance=RollbackAllowance.of({"endpoint_propagation": 1.0}),
        first_weight=5,
        steps=steps,
        tail=tail,
    )
