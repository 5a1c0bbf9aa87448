"""The AnalysisRun executor: schedule, retries, termination and events, on a virtual clock."""

from __future__ import annotations

import asyncio
import itertools
import textwrap
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from pytest_rollout.engine.analysis import (
    AnalysisPhase,
    AnalysisRun,
    AnalysisRunEvent,
    AnalysisTemplate,
    Metric,
    Outcome,
    Providers,
    RealClock,
    VirtualClock,
)
from pytest_rollout.engine.analysis.providers import MeasureContext
from pytest_rollout.manifests import parse_manifests

P = AnalysisPhase
PROVIDER = "provider:\n  prometheus:\n    address: http://127.0.0.1:9\n    query: up\n"


def template(*metrics: str) -> AnalysisTemplate:
    """Metrics given as YAML mappings (``name: ...`` first); a provider is added to each."""
    blocks = "".join(
        "- " + textwrap.indent(textwrap.dedent(m) + PROVIDER, "  ").lstrip() for m in metrics
    )
    text = (
        "apiVersion: argoproj.io/v1alpha1\nkind: AnalysisTemplate\nmetadata:\n  name: t\n"
        "spec:\n  metrics:\n" + textwrap.indent(blocks, "    ")
    )
    (manifest,) = parse_manifests(text, Path("t.yaml"))
    return AnalysisTemplate.from_manifest(manifest)


class Fake:
    """Scripted outcomes per metric; optional (virtual) duration per measurement."""

    def __init__(
        self,
        clock: VirtualClock,
        scripts: dict[str, list[P]],
        *,
        takes: float = 0.0,
        terminable: bool = False,
    ) -> None:
        self.clock = clock
        self.scripts = scripts
        self.takes = takes
        self.terminable = terminable
        self.calls: Counter[str] = Counter()
        self.started: dict[str, list[float]] = {}
        self.cancelled = 0

    def provider_for(self, metric: Metric) -> Fake:
        return self

    async def measure(self, metric: Metric, context: MeasureContext) -> Outcome:
        self.started.setdefault(metric.name, []).append(self.clock.now())
        index = self.calls[metric.name]
        self.calls[metric.name] += 1
        try:
            if self.takes:
                await self.clock.sleep(self.takes)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        script = self.scripts.get(metric.name, [])
        phase = script[index] if index < len(script) else P.SUCCESSFUL
        message = f"boom {index}" if phase is P.ERROR else ""
        return Outcome(phase, value=f"v{index}", result=index, message=message)


def execute(
    run: AnalysisRun,
    clock: VirtualClock,
    *,
    at: float | None = None,
    action: Callable[[], None] | None = None,
) -> None:
    """Run to completion; call ``action`` ``at`` seconds into the run."""

    async def scenario() -> None:
        helper = None
        if action is not None and at is not None:

            async def later() -> None:
                await clock.sleep(at)
                action()

            helper = asyncio.create_task(later())
        await run.run()
        if helper is not None:
            helper.cancel()

    asyncio.run(scenario())


def offsets(times: list[float], start: float) -> list[float]:
    return [round(t - start, 6) for t in times]


T0 = 1_700_000_000.0


# -- schedule -------------------------------------------------------------------------------------


def test_measures_at_each_interval_until_count_then_succeeds() -> None:
    clock = VirtualClock(T0)
    fake = Fake(clock, {})
    run = AnalysisRun(
        "r", template("name: m\ninterval: 5s\ncount: 4\n"), providers=fake, clock=clock
    )
    execute(run, clock)
    assert offsets(fake.started["m"], T0) == [0, 5, 10, 15]
    status = run.status()
    assert (status.phase, status.message) == (P.SUCCESSFUL, "")
    assert status.metric("m").values == ["v0", "v1", "v2", "v3"]
    assert (status.started_at, status.finished_at) == (T0, T0 + 15)


def test_initial_delay_counts_from_the_start_of_the_run() -> None:
    clock = VirtualClock(T0)
    fake = Fake(clock, {})
    run = AnalysisRun(
        "r",
        template("name: late\ninitialDelay: 30s\n", "name: now\n"),
        providers=fake,
        clock=clock,
    )
    execute(run, clock)
    assert offsets(fake.started["now"], T0) == [0]
    assert offsets(fake.started["late"], T0) == [30]
    assert run.phase is P.SUCCESSFUL


def test_an_error_is_retried_after_ten_seconds_whatever_the_interval_and_does_not_count() -> None:
    clock = VirtualClock(T0)
    fake = Fake(clock, {"m": [P.ERROR, P.SUCCESSFUL, P.SUCCESSFUL]})
    run = AnalysisRun(
        "r", template("name: m\ninterval: 2s\ncount: 2\n"), providers=fake, clock=clock
    )
    execute(run, clock)
    assert offsets(fake.started["m"], T0) == [0, 10, 12]
    metric = run.status().metric("m")
    assert (metric.phase, metric.count, metric.error, metric.consecutive_error) == (
        P.SUCCESSFUL,
        2,
        1,
        0,
    )


def test_five_consecutive_errors_exceed_the_default_limit() -> None:
    clock = VirtualClock(T0)
    fake = Fake(clock, {"m": [P.ERROR] * 10})
    run = AnalysisRun("r", template("name: m\n"), providers=fake, clock=clock)
    execute(run, clock)
    assert offsets(fake.started["m"], T0) == [0, 10, 20, 30, 40]
    assert run.phase is P.ERROR
    assert run.message == (
        'Metric "m" assessed Error due to consecutiveErrors (5) > consecutiveErrorLimit (4)'
        ': "Error Message: boom 4"'
    )


def test_one_failure_over_the_limit_fails_the_run_with_argos_message() -> None:
    clock = VirtualClock(T0)
    fake = Fake(clock, {"error-rate": [P.SUCCESSFUL, P.FAILED]})
    run = AnalysisRun(
        "r", template("name: error-rate\ninterval: 5s\ncount: 4\n"), providers=fake, clock=clock
    )
    events: list[AnalysisRunEvent] = []
    run.subscribe(events.append)
    execute(run, clock)
    assert run.phase is P.FAILED
    assert run.message == 'Metric "error-rate" assessed Failed due to failed (1) > failureLimit (0)'
    assert [(e.kind, e.metric, e.previous, e.phase) for e in events] == [
        ("run", None, P.PENDING, P.RUNNING),
        ("measurement", "error-rate", None, P.SUCCESSFUL),
        ("measurement", "error-rate", None, P.FAILED),
        ("metric", "error-rate", P.RUNNING, P.FAILED),
        ("run", None, P.RUNNING, P.FAILED),
    ]
    assert events[-1].message == run.message
    assert events[-1].time == T0 + 5


# -- termination ----------------------------------------------------------------------------------


def test_terminating_an_indefinite_metric_is_successful_run_terminated() -> None:
    clock = VirtualClock(T0)
    fake = Fake(clock, {})
    run = AnalysisRun("bg", template("name: m\ninterval: 5s\n"), providers=fake, clock=clock)
    execute(run, clock, at=12, action=run.terminate)
    assert offsets(fake.started["m"], T0) == [0, 5, 10]
    assert (run.phase, run.message) == (P.SUCCESSFUL, "Run Terminated")
    assert run.status().metric("m").phase is P.SUCCESSFUL
    assert run.status().terminate_requested


def test_terminate_before_start_measures_nothing() -> None:
    clock = VirtualClock(T0)
    fake = Fake(clock, {})
    run = AnalysisRun("r", template("name: m\ninterval: 5s\n"), providers=fake, clock=clock)
    run.terminate()
    execute(run, clock)
    assert fake.started == {}
    assert (run.phase, run.message) == (P.SUCCESSFUL, "Run Terminated")
    assert run.status().metric("m").phase is P.PENDING


def test_a_failed_metric_stops_the_others_which_count_as_successful() -> None:
    clock = VirtualClock(T0)
    fake = Fake(clock, {"checkout": [P.SUCCESSFUL, P.FAILED], "error-rate": []})
    run = AnalysisRun(
        "r",
        template("name: error-rate\ninterval: 5s\n", "name: checkout\ninterval: 5s\ncount: 4\n"),
        providers=fake,
        clock=clock,
    )
    execute(run, clock)
    status = run.status()
    assert status.phase is P.FAILED
    assert (
        status.message == 'Metric "checkout" assessed Failed due to failed (1) > failureLimit (0)'
    )
    assert status.metric("error-rate").phase is P.SUCCESSFUL
    assert offsets(fake.started["error-rate"], T0) == [0, 5]


def test_an_in_flight_job_like_measurement_is_terminated_and_counted_successful() -> None:
    clock = VirtualClock(T0)
    fake = Fake(clock, {}, takes=1000, terminable=True)
    run = AnalysisRun("r", template("name: smoke\n"), providers=fake, clock=clock)
    execute(run, clock, at=7, action=run.terminate)
    (measurement,) = run.status().metric("smoke").measurements
    assert (measurement.phase, measurement.message) == (P.SUCCESSFUL, "Metric Terminated")
    assert measurement.finished_at == T0 + 7
    assert fake.cancelled == 1
    assert (run.phase, run.message) == (P.SUCCESSFUL, "Run Terminated")


def test_a_measurement_in_flight_when_another_metric_fails_still_counts() -> None:
    clock = VirtualClock(T0)

    class Mixed(Fake):
        async def measure(self, metric: Metric, context: MeasureContext) -> Outcome:
            self.takes = 3.0 if metric.name == "slow" else 0.0
            return await super().measure(metric, context)

    fake = Mixed(clock, {"fast": [P.FAILED], "slow": [P.INCONCLUSIVE]})
    run = AnalysisRun("r", template("name: fast\n", "name: slow\n"), providers=fake, clock=clock)
    execute(run, clock)
    status = run.status()
    assert status.metric("slow").phase is P.INCONCLUSIVE
    assert status.phase is P.FAILED  # Failed is worse than Inconclusive
    assert status.finished_at == T0 + 3


def test_terminate_waits_for_an_in_flight_query_whose_failure_still_counts() -> None:
    clock = VirtualClock(T0)
    fake = Fake(clock, {"m": [P.SUCCESSFUL, P.FAILED]}, takes=2.0)
    run = AnalysisRun("r", template("name: m\ninterval: 5s\n"), providers=fake, clock=clock)
    execute(run, clock, at=8, action=run.terminate)  # the second query runs from 7 s to 9 s
    assert offsets(fake.started["m"], T0) == [0, 7]
    assert run.status().finished_at == T0 + 9
    assert (run.phase, run.message) == (
        P.FAILED,
        'Metric "m" assessed Failed due to failed (1) > failureLimit (0)',
    )


# -- errors from providers ----------------------------------------------------------------------


def test_a_metric_without_a_provider_is_an_error_measurement() -> None:
    job = textwrap.dedent(
        """\
        apiVersion: argoproj.io/v1alpha1
        kind: AnalysisTemplate
        metadata:
          name: t
        spec:
          metrics:
            - name: smoke
              consecutiveErrorLimit: 0
              provider:
                job:
                  spec:
                    template:
                      spec:
                        restartPolicy: Never
                        containers: [{name: c, image: busybox, command: ["true"]}]
        """
    )
    (manifest,) = parse_manifests(job, Path("t.yaml"))
    clock = VirtualClock(T0)
    with Providers() as providers:
        run = AnalysisRun(
            "r", AnalysisTemplate.from_manifest(manifest), providers=providers, clock=clock
        )
        execute(run, clock)
    assert run.phase is P.ERROR
    assert run.message == (
        'Metric "smoke" assessed Error due to consecutiveErrors (1) > consecutiveErrorLimit (0): '
        "\"Error Message: job provider: no job launcher configured to run the Job's container "
        'locally"'
    )


def test_an_exception_in_a_provider_becomes_an_error_measurement() -> None:
    clock = VirtualClock(T0)

    class Broken(Fake):
        async def measure(self, metric: Metric, context: MeasureContext) -> Outcome:
            raise RuntimeError("provider bug")

    run = AnalysisRun(
        "r",
        template("name: m\nconsecutiveErrorLimit: 0\n"),
        providers=Broken(clock, {}),
        clock=clock,
    )
    execute(run, clock)
    (measurement,) = run.status().metric("m").measurements
    assert (measurement.phase, measurement.message) == (P.ERROR, "RuntimeError: provider bug")


# -- status and lifecycle ----------------------------------------------------------------------


def test_status_serialises_in_argos_layout() -> None:
    clock = VirtualClock(T0)
    run = AnalysisRun("r", template("name: m\n"), providers=Fake(clock, {}), clock=clock)
    before = run.status()
    assert before.phase is P.PENDING
    assert before.started_at is None
    execute(run, clock)
    data = run.status().to_dict()
    assert data["phase"] == "Successful"
    (metric,) = data["metricResults"]
    assert (metric["name"], metric["count"], metric["consecutiveError"]) == ("m", 1, 0)
    assert metric["measurements"] == [
        {"phase": "Successful", "startedAt": T0, "finishedAt": T0, "value": "v0"}
    ]


def test_a_run_runs_once() -> None:
    clock = VirtualClock(T0)
    run = AnalysisRun("r", template("name: m\n"), providers=Fake(clock, {}), clock=clock)
    execute(run, clock)
    with pytest.raises(RuntimeError, match="already started"):
        execute(run, clock)


def test_real_clock_keeps_the_interval() -> None:
    clock = RealClock()
    started: list[float] = []

    class Timed(Fake):
        async def measure(self, metric: Metric, context: MeasureContext) -> Outcome:
            started.append(clock.now())
            return Outcome(P.SUCCESSFUL)

    run = AnalysisRun(
        "r", template("name: m\ninterval: 200ms\ncount: 3\n"), providers=Timed(VirtualClock(), {})
    )
    status = asyncio.run(run.run())
    assert status.phase is P.SUCCESSFUL
    gaps = [b - a for a, b in itertools.pairwise(started)]
    assert len(gaps) == 2
    assert all(0.19 <= gap < 2.0 for gap in gaps), gaps
