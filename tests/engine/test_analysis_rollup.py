"""Roll-up of measurements into metric and run phases, checked against a small model of Argo's
rules (``analysis/analysis.go``) written independently here."""

from __future__ import annotations

import asyncio
import textwrap
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_rollout.engine.analysis import (
    AnalysisPhase,
    AnalysisRun,
    AnalysisTemplate,
    Limits,
    MetricResult,
    Outcome,
    VirtualClock,
    assess_metric,
    assess_run,
)
from pytest_rollout.engine.analysis.model import Metric
from pytest_rollout.engine.analysis.providers import MeasureContext
from pytest_rollout.engine.analysis.rollup import Measurement, record
from pytest_rollout.manifests import parse_manifests

S, F, INC, E = "S", "F", "I", "E"
PHASE = {
    S: AnalysisPhase.SUCCESSFUL,
    F: AnalysisPhase.FAILED,
    INC: AnalysisPhase.INCONCLUSIVE,
    E: AnalysisPhase.ERROR,
}
# Best to worst, as Argo orders completed phases.
ORDER = ["Successful", "Running", "Pending", "Inconclusive", "Error", "Failed"]


# -- the model ---------------------------------------------------------------------------------


@dataclass
class ModelMetric:
    name: str
    script: list[str]
    failure_limit: int
    inconclusive_limit: int
    error_limit: int
    count: int | None
    taken: int = 0
    failed: int = 0
    inconclusive: int = 0
    consecutive: int = 0
    measured: int = 0
    phase: str = "Running"
    last: str = ""
    reason: str = field(default="")

    def take(self) -> None:
        outcome = self.script[self.taken] if self.taken < len(self.script) else S
        self.taken += 1
        self.last = outcome
        if outcome == E:
            self.consecutive += 1
        else:
            self.consecutive = 0
            self.measured += 1
        self.failed += outcome == F
        self.inconclusive += outcome == INC
        if self.consecutive > self.error_limit:
            self.phase = "Error"
            self.reason = (
                f"consecutiveErrors ({self.consecutive}) > "
                f"consecutiveErrorLimit ({self.error_limit})"
            )
        elif self.inconclusive > self.inconclusive_limit:
            self.phase = "Inconclusive"
            self.reason = (
                f"inconclusive ({self.inconclusive}) > "
                f"inconclusiveLimit ({self.inconclusive_limit})"
            )
        elif self.failed > self.failure_limit:
            self.phase = "Failed"
            self.reason = f"failed ({self.failed}) > failureLimit ({self.failure_limit})"
        elif self.count is not None and self.measured >= self.count:
            self.phase = "Successful"


def model_run(metrics: list[ModelMetric], terminate_after: int | None) -> tuple[str, str]:
    """Lock-step rounds (every metric measures every 10 s); returns (phase, message)."""
    round_index = 0
    terminated = False
    while True:
        for metric in metrics:
            if metric.phase == "Running":
                metric.take()
        breached = any(m.phase in ("Failed", "Error", "Inconclusive") for m in metrics)
        done = all(m.phase != "Running" for m in metrics)
        if not breached and not done and terminate_after == round_index:
            terminated = True
        if breached or done or terminated:
            for metric in metrics:
                if metric.phase == "Running":
                    metric.phase = "Successful"
            break
        round_index += 1
    worst: ModelMetric | None = None
    for metric in metrics:
        if worst is None or ORDER.index(metric.phase) > ORDER.index(worst.phase):
            worst = metric
    assert worst is not None
    message = "Run Terminated" if terminated else ""
    if worst.reason:
        message = f'Metric "{worst.name}" assessed {worst.phase} due to {worst.reason}'
        if worst.last == E:
            message += f': "Error Message: boom {worst.taken - 1}"'
    return worst.phase, message


# -- metric level: fold outcomes through the library ---------------------------------------------


limits_strategy = st.tuples(st.integers(0, 2), st.integers(0, 2), st.integers(0, 4))
outcomes_strategy = st.lists(st.sampled_from([S, F, INC, E]), min_size=1, max_size=12)


@given(outcomes_strategy, limits_strategy, st.one_of(st.none(), st.integers(1, 6)))
def test_metric_phase_matches_the_model(
    outcomes: list[str], limits: tuple[int, int, int], count: int | None
) -> None:
    failure_limit, inconclusive_limit, error_limit = limits
    library_limits = Limits(failure_limit, inconclusive_limit, error_limit, count)
    result = MetricResult("m")
    consumed = 0
    for index, outcome in enumerate(outcomes):
        result.measurements.append(Measurement(PHASE[outcome], index, finished_at=index))
        record(result, PHASE[outcome])
        consumed += 1
        phase = assess_metric(library_limits, result, terminating=False)
        if phase.completed:
            result.phase = phase
            break
    model = ModelMetric("m", outcomes, failure_limit, inconclusive_limit, error_limit, count)
    while model.phase == "Running" and model.taken < len(outcomes):
        model.take()
    assert (str(result.phase), consumed) == (model.phase, model.taken)
    # Termination: a metric still running ends Successful; a completed one keeps its phase.
    terminated = assess_metric(library_limits, result, terminating=True)
    assert str(terminated) == (model.phase if model.phase != "Running" else "Successful")


def test_a_metric_never_measured_is_pending_or_successful_once_terminated() -> None:
    result = MetricResult("m")
    assert assess_metric(Limits(), result, terminating=False) is AnalysisPhase.PENDING
    assert assess_metric(Limits(), result, terminating=True) is AnalysisPhase.SUCCESSFUL
    result.measurements.append(Measurement(AnalysisPhase.RUNNING, 0.0))
    assert assess_metric(Limits(), result, terminating=True) is AnalysisPhase.RUNNING


def test_run_message_names_the_worst_metric_with_its_error() -> None:
    ok = MetricResult("latency")
    ok.measurements.append(Measurement(AnalysisPhase.SUCCESSFUL, 0, finished_at=0))
    record(ok, AnalysisPhase.SUCCESSFUL)
    broken = MetricResult("home-page")
    broken.measurements.append(
        Measurement(
            AnalysisPhase.ERROR, 0, finished_at=0, message="received non 2xx response code: 502"
        )
    )
    record(broken, AnalysisPhase.ERROR)
    phase, message, transitions = assess_run(
        [
            (Limits(effective_count=1), ok),
            (Limits(consecutive_error_limit=0, effective_count=3), broken),
        ],
        terminate_requested=False,
    )
    assert phase is AnalysisPhase.ERROR
    assert message == (
        'Metric "home-page" assessed Error due to consecutiveErrors (1) > consecutiveErrorLimit (0)'
        ': "Error Message: received non 2xx response code: 502"'
    )
    assert [(t.name, t.previous, t.phase) for t in transitions] == [
        ("latency", AnalysisPhase.RUNNING, AnalysisPhase.SUCCESSFUL),
        ("home-page", AnalysisPhase.RUNNING, AnalysisPhase.ERROR),
    ]


def test_terminating_with_nothing_measured_is_successful_run_terminated() -> None:
    phase, message, _ = assess_run([(Limits(), None)], terminate_requested=True)
    assert (phase, message) == (AnalysisPhase.SUCCESSFUL, "Run Terminated")


# -- run level: the executor on a virtual clock against the model ------------------------------


class Scripted:
    """Answers each metric's measurements from its script, then Successful."""

    terminable = False

    def __init__(self, scripts: dict[str, list[str]]) -> None:
        self.scripts = scripts
        self.calls: Counter[str] = Counter()

    def provider_for(self, metric: Metric) -> Scripted:
        return self

    async def measure(self, metric: Metric, context: MeasureContext) -> Outcome:
        index = self.calls[metric.name]
        self.calls[metric.name] += 1
        script = self.scripts[metric.name]
        outcome = script[index] if index < len(script) else S
        return Outcome(
            PHASE[outcome], value=str(index), message=f"boom {index}" if outcome == E else ""
        )


def run_template(metrics: list[ModelMetric]) -> AnalysisTemplate:
    blocks = []
    for metric in metrics:
        count = f"  count: {metric.count}\n" if metric.count is not None else ""
        blocks.append(
            f"- name: {metric.name}\n"
            "  interval: 10s\n"
            f"{count}"
            f"  failureLimit: {metric.failure_limit}\n"
            f"  inconclusiveLimit: {metric.inconclusive_limit}\n"
            f"  consecutiveErrorLimit: {metric.error_limit}\n"
            "  provider:\n    prometheus:\n      address: http://127.0.0.1:9\n      query: up\n"
        )
    text = (
        "apiVersion: argoproj.io/v1alpha1\nkind: AnalysisTemplate\nmetadata:\n  name: t\n"
        "spec:\n  metrics:\n" + textwrap.indent("".join(blocks), "    ")
    )
    (manifest,) = parse_manifests(text, Path("t.yaml"))
    return AnalysisTemplate.from_manifest(manifest)


@st.composite
def run_cases(draw: st.DrawFn) -> tuple[list[ModelMetric], int | None]:
    metrics = []
    for index in range(draw(st.integers(1, 3))):
        failure_limit, inconclusive_limit, error_limit = draw(limits_strategy)
        count = draw(st.one_of(st.none(), st.integers(1, 5)))
        if count is not None:
            count = max(count, failure_limit, inconclusive_limit)
        script = draw(st.lists(st.sampled_from([S, F, INC, E]), min_size=1, max_size=8))
        metrics.append(
            ModelMetric(f"m{index}", script, failure_limit, inconclusive_limit, error_limit, count)
        )
    terminate_after = draw(st.one_of(st.none(), st.integers(0, 10)))
    if terminate_after is None and any(m.count is None for m in metrics):
        terminate_after = 10  # an indefinite metric only ends by termination or a breach
    return metrics, terminate_after


@settings(max_examples=80, deadline=None)
@given(run_cases())
def test_run_phase_and_message_match_the_model(case: tuple[list[ModelMetric], int | None]) -> None:
    metrics, terminate_after = case
    scripts = {m.name: list(m.script) for m in metrics}
    provider = Scripted(scripts)
    clock = VirtualClock()
    run = AnalysisRun("run", run_template(metrics), providers=provider, clock=clock)

    async def scenario() -> tuple[AnalysisPhase, str]:
        if terminate_after is not None:

            async def terminate_later() -> None:
                await clock.sleep(terminate_after * 10 + 5)
                run.terminate()

            terminator = asyncio.create_task(terminate_later())
        status = await run.run()
        if terminate_after is not None:
            terminator.cancel()
        return status.phase, status.message

    phase, message = asyncio.run(scenario())
    expected_phase, expected_message = model_run(metrics, terminate_after)
    assert (str(phase), message) == (expected_phase, expected_message)
    status = run.status()
    for metric in metrics:
        assert len(status.metric(metric.name).measurements) == metric.taken, metric.name
