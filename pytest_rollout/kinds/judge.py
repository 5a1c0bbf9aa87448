"""Kind ``canary-judge``: the same releases gated several ways, side by side in one run.

Each gate is a manifest set whose Rollout gates a release its own way; every release (a
variant) goes through every gate, each in a namespace of its own under its own open-loop load,
``concurrency`` of them at once. For each gate and release the summary records whether the
Rollout aborted, ``time_to_abort_s`` (from the release's first request to the abort),
``bad_requests`` (the requests the release served until the rollback, or until the end of the
load without one) and ``failed_user_requests`` (those of them that failed). The validity
simulation of :mod:`pytest_rollout.judge.simulation`, run by the experiment, gives the
false-abort rates of the gates it models: the judge, and fixed 5% thresholds checked every
second.

It passes when the gate under test (``judge``):

- aborts every release of ``must_abort`` by its ``metric`` assessed Failed;
- lets ``bad`` reach at most ``max_bad_ratio`` of the requests it reached under ``baseline``;
- lets ``good`` walk every step and complete, having judged it;
- has a simulated false-abort rate at most the judge's alpha.

A generator that fell behind in any run, a release that served no request, a baseline that
did not abort ``bad`` (no yardstick) make it *inconclusive*, never passed.

Keys (beside ``workload``, ``route``, ``rate``, ``timeout`` and ``tail``, which apply to every
gate's manifest set; ``manifests`` and ``variant`` are not used)::

    gates       = { fixed_step = "canary-judge-fixed-step", ... }  # gate -> manifest set (required)
    releases    = ["bad", "subtle", "slow", "good"]   # variants, each through every gate (required)
    judge       = "sequential"        # the gate under test (required)
    metric      = "sequential-judge"  # its analysis metric (required)
    baseline    = "fixed_step"        # the gate it is measured against (required)
    bad         = "bad"               # the release it must stop sooner than the baseline (required)
    max_bad_ratio = 0.3333            # judge's bad_requests / baseline's, at most (default 1/3)
    must_abort  = ["bad", "subtle"]   # releases the judge must abort (default: [bad])
    good        = "good"              # the release the judge must let complete (required)
    simulated_windows = { fixed_1s = 5 }  # gates that are the simulation's fixed 5% gate: its
                                          # rate window in seconds (1, 5 or 20)
    concurrency = 12                  # releases at once (default: every one)
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pytest_rollout.config import TargetConfig
from pytest_rollout.errors import ConfigError, InconclusiveError
from pytest_rollout.experiment import Experiment
from pytest_rollout.kinds import (
    ExperimentSpec,
    Kind,
    manifest_set_name,
    metric_name,
    positive,
    register,
    variant_name,
    workload_of,
)
from pytest_rollout.runs import COMPLETED, ReleaseRun
from pytest_rollout.tomlcheck import Where, require_string, require_strings, require_table

if TYPE_CHECKING:
    # numpy and scipy load only when the experiment runs, not whenever experiments are collected.
    from pytest_rollout.judge.simulation import ValidityReport

T = TypeVar("T")

DEFAULT_MAX_BAD_RATIO = 1 / 3
LOWEST_NICENESS = 19
SIMULATION_TIMEOUT_S = 300.0
"""How long the simulation may still take once every release has finished."""


@dataclass(frozen=True)
class GateResult:
    """What one gate did with one release."""

    gate: str
    release: str
    aborted: bool
    aborted_by: str | None
    """The metric whose verdict aborted it (None: not aborted, or not by a metric)."""
    abort_phase: str | None
    time_to_abort_s: float | None
    """From the release's first request to the abort."""
    bad_requests: int
    """Requests the release served until the rollback (abort + allowance), or until the end."""
    failed_user_requests: int
    """Of ``bad_requests``, those that failed (5xx or no answer)."""
    requests: int
    """Every request in the same window, whichever version served it."""
    completed: bool
    settled_after_s: float
    achieved_rate: float
    lateness_p99_ms: float | None
    load_problem: str | None
    """Why the generator shaped this run's load (it fell behind), else None."""

    @classmethod
    def of(cls, gate: str, release: str, run: ReleaseRun) -> GateResult:
        radius = run.blast_radius()
        end = radius.rolled_back_at
        failed = sum(
            1
            for r in run.log.in_window(run.released_at, end)
            if r.version == radius.version and (r.error is not None or (r.status or 0) >= 500)
        )
        cause = run.abort_cause()
        lateness = run.log.lateness_p99
        return cls(
            gate=gate,
            release=release,
            aborted=cause is not None,
            aborted_by=cause.metric if cause else None,
            abort_phase=cause.phase if cause else None,
            time_to_abort_s=_rounded(radius.time_to_abort_s),
            bad_requests=radius.bad_requests,
            failed_user_requests=failed,
            requests=radius.total_requests,
            completed=cause is None and _completed_after(run, run.released_at),
            settled_after_s=round(run.settled_at - run.released_at, 3),
            achieved_rate=round(run.log.achieved_rate, 1),
            lateness_p99_ms=None if lateness is None else round(lateness * 1e3, 3),
            load_problem=run.log.inconclusive_reason,
        )

    def summary(self) -> dict[str, Any]:
        """The entry of ``summary.json``'s ``gates.<gate>.<release>``."""
        return {
            "aborted": self.aborted,
            "time_to_abort_s": self.time_to_abort_s,
            "bad_requests": self.bad_requests,
            "failed_user_requests": self.failed_user_requests,
            "aborted_by": self.aborted_by,
            "abort_phase": self.abort_phase,
            "completed": self.completed,
            "requests": self.requests,
            "settled_after_s": self.settled_after_s,
            "achieved_rate": self.achieved_rate,
            "lateness_p99_ms": self.lateness_p99_ms,
        }

    def describe(self) -> str:
        if not self.aborted:
            outcome = "completed" if self.completed else "not aborted"
        else:
            by = f"{self.aborted_by} {self.abort_phase}" if self.aborted_by else "not a metric"
            outcome = f"aborted ({by}) {self.time_to_abort_s}s after its first request"
        return (
            f"{self.gate}/{self.release}: {outcome}; {self.bad_requests} requests reached it, "
            f"{self.failed_user_requests} failed"
        )


@dataclass(frozen=True)
class Targets:
    """What the gate under test must do, from the kind's keys."""

    judge: str
    metric: str
    baseline: str
    bad: str
    max_bad_ratio: float
    must_abort: tuple[str, ...]
    good: str

    def check(
        self, results: Mapping[str, Mapping[str, GateResult]], simulated: ValidityReport
    ) -> list[str]:
        """Every target missed, as one line of evidence each (empty: all met).

        Raises :class:`InconclusiveError` when a target could not be observed: a generator
        fell behind, or the baseline never aborted ``bad``."""
        behind = load_problems(results)
        if behind:
            raise InconclusiveError(
                f"the load generator fell behind in {len(behind)} of "
                f"{sum(len(g) for g in results.values())} runs, so their numbers prove "
                "nothing: " + "; ".join(behind)
            )
        judged = results[self.judge]
        yardstick = results[self.baseline][self.bad]
        if not yardstick.aborted:
            raise InconclusiveError(
                f"the baseline gate did not abort {self.bad!r}, so there is no yardstick for "
                f"the judge's: {yardstick.describe()}"
            )
        missed: list[str] = []
        for release in self.must_abort:
            result = judged[release]
            if result.aborted_by != self.metric or result.abort_phase != "Failed":
                missed.append(
                    f"expected {self.judge} to abort {release!r} by metric {self.metric!r} "
                    f"assessed Failed: {result.describe()}"
                )
        limit = self.max_bad_ratio * yardstick.bad_requests
        if not judged[self.bad].bad_requests <= limit:
            missed.append(
                f"{self.bad!r} reached {judged[self.bad].bad_requests} requests under "
                f"{self.judge}, more than {self.max_bad_ratio:.3g} x the "
                f"{yardstick.bad_requests} under {self.baseline} (= {limit:.1f})"
            )
        good = judged[self.good]
        if good.aborted or not good.completed:
            missed.append(f"expected {self.judge} to let {self.good!r} complete: {good.describe()}")
        rate = simulated.judge
        if not rate.value <= simulated.alpha:
            missed.append(
                f"simulated false-abort rate of the judge {rate} > alpha {simulated.alpha:g}"
            )
        return missed


def load_problems(results: Mapping[str, Mapping[str, GateResult]]) -> list[str]:
    """``gate/release: why`` for each run whose load generator fell behind."""
    return [
        f"{r.gate}/{r.release}: {r.load_problem}"
        for by_release in results.values()
        for r in by_release.values()
        if r.load_problem
    ]


def run(experiment: Experiment, spec: ExperimentSpec) -> None:
    options = spec.options
    gates: Mapping[str, str] = options["gates"]
    releases: tuple[str, ...] = options["releases"]
    targets: Targets = options["targets"]
    windows: Mapping[str, int] = options["simulated_windows"]

    check_simulated_windows(windows, spec.where)
    jobs = [(gate, release) for gate in gates for release in releases]

    # One release deploys and starts at a time, so that the pods of several namespaces do not
    # boot at the same moment, under the load of the releases already running.
    starting = threading.Lock()

    def release_through(gate: str, release: str) -> Callable[[], ReleaseRun]:
        def release_run() -> ReleaseRun:
            with starting:
                live = experiment.start(
                    release,
                    manifests=gates[gate],
                    workload=spec.workload,
                    route=spec.route,
                    rate=spec.rate,
                    timeout=spec.timeout,
                    label=f"{gate}/{release}",
                )
            with live:
                live.wait_settled()
                return live.finish(tail=spec.tail)

        return release_run

    load_before = os.getloadavg()
    started = time.perf_counter()
    with simulation_in_background() as simulating:
        # A run whose generator fell behind makes the comparison inconclusive: the releases
        # not started yet would only cost time on a machine already short of CPU.
        outcomes = run_concurrently(
            [release_through(gate, release) for gate, release in jobs],
            options["concurrency"],
            first=starting_order(jobs, targets),
            stop=lambda release_run: release_run.log.inconclusive,
        )
        wall_s = time.perf_counter() - started
        simulated = simulating.result(timeout=SIMULATION_TIMEOUT_S)
    # The report draws runs in this order: one row of releases per gate.
    order = {f"{gate}/{release}": index for index, (gate, release) in enumerate(jobs)}
    experiment.runs.sort(key=lambda r: order.get(r.label, len(order)))

    runs = {job: o.value for job, o in zip(jobs, outcomes, strict=True) if o.value is not None}
    results: dict[str, dict[str, GateResult]] = {}
    for (gate, release), release_run in runs.items():
        results.setdefault(gate, {})[release] = GateResult.of(gate, release, release_run)
    experiment.record(
        gates={
            gate: {release: result.summary() for release, result in by_release.items()}
            for gate, by_release in results.items()
        },
        false_abort_rate_simulated={
            targets.judge: simulated.judge.value,
            **{gate: simulated.fixed[window].value for gate, window in windows.items()},
        },
        false_abort_interval_simulated={
            targets.judge: [simulated.judge.low, simulated.judge.high],
            **{
                gate: [simulated.fixed[window].low, simulated.fixed[window].high]
                for gate, window in windows.items()
            },
        },
        simulated_runs=simulated.runs,
        simulation_cpu_s=round(simulated.cpu_s, 1),
        simulation_wall_s=round(simulated.wall_s, 1),
        releases_wall_s=round(wall_s, 1),
        concurrency=options["concurrency"],
        rate=spec.rate,
        # Other users of the machine take the CPU the releases' load generators need.
        load_average={"before": _rounded_all(load_before), "after": _rounded_all(os.getloadavg())},
    )
    table = results_table(results, gates, releases)
    print("\n" + table)
    failures = [(job, o.error) for job, o in zip(jobs, outcomes, strict=True) if o.error]
    if failures:
        (gate, release), error = failures[0]
        others = f"; {len(failures) - 1} more runs failed" if len(failures) > 1 else ""
        error.add_note(f"in run {gate}/{release}{others}")
        raise error
    experiment.headline(headline(results, targets, simulated, windows))
    not_started = [f"{g}/{r}" for (g, r), o in zip(jobs, outcomes, strict=True) if not o.started]
    problems = load_problems(results)
    if problems:
        skipped = f"; not started: {', '.join(not_started)}" if not_started else ""
        raise InconclusiveError(
            f"the load generator fell behind in {len(problems)} of {len(runs)} runs, so their "
            f"numbers prove nothing: {'; '.join(problems)}{skipped}"
        )
    for release_run in runs.values():
        release_run.assert_version_served()
    missed = targets.check(results, simulated)
    judged = runs[(targets.judge, targets.good)]
    if targets.metric not in judged.metric_phases():
        raise InconclusiveError(
            f"{judged.label}: the judge's metric {targets.metric!r} was never measured, so the "
            f"release did not complete *under the judge*; metrics: {judged.metric_phases()}"
        )
    if missed:
        raise AssertionError("\n".join(missed) + "\n" + table)
    judged.assert_completed()


def check_simulated_windows(windows: Mapping[str, int], where: str) -> None:
    """Each window of ``simulated_windows`` is one the simulation measures."""
    from pytest_rollout.judge.simulation import FIXED_WINDOWS_S

    for gate, window in windows.items():
        if window not in FIXED_WINDOWS_S:
            raise ConfigError(
                f"{where}.simulated_windows.{gate}: the simulation measures fixed gates with "
                f"rate windows of {', '.join(map(str, FIXED_WINDOWS_S))} s, not {window}"
            )


def results_table(
    results: Mapping[str, Mapping[str, GateResult]],
    gates: Sequence[str] | Mapping[str, str],
    releases: Sequence[str],
) -> str:
    """The side-by-side table: one row per gate and release."""
    rows = [
        (
            "gate",
            "release",
            "aborted",
            "by",
            "time_to_abort_s",
            "bad_requests",
            "failed_user_requests",
            "lateness p99 ms",
        )
    ]
    for gate in gates:
        for release in releases:
            r = results.get(gate, {}).get(release)
            if r is None:
                rows.append((gate, release, "(no result)", "", "", "", "", ""))
                continue
            rows.append(
                (
                    gate,
                    release,
                    "yes" if r.aborted else "no",
                    r.aborted_by or "",
                    "" if r.time_to_abort_s is None else f"{r.time_to_abort_s:.1f}",
                    str(r.bad_requests),
                    str(r.failed_user_requests),
                    "" if r.lateness_p99_ms is None else f"{r.lateness_p99_ms:.2f}",
                )
            )
    width = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width[i]) for i, cell in enumerate(row)).rstrip() for row in rows
    )


def headline(
    results: Mapping[str, Mapping[str, GateResult]],
    targets: Targets,
    simulated: ValidityReport,
    windows: Mapping[str, int],
) -> str:
    judged = results.get(targets.judge, {})
    parts: list[str] = []
    bad, yardstick = judged.get(targets.bad), results.get(targets.baseline, {}).get(targets.bad)
    if bad is not None and yardstick is not None:
        parts.append(
            f"{targets.bad}: {bad.bad_requests} requests under {targets.judge}, "
            f"{yardstick.bad_requests} under {targets.baseline}"
        )
    for release in targets.must_abort:
        if release != targets.bad and release in judged:
            result = judged[release]
            parts.append(
                f"{release} aborted after {result.time_to_abort_s}s"
                if result.aborted
                else f"{release} not aborted"
            )
    if targets.good in judged:
        completed = judged[targets.good].completed
        parts.append(f"{targets.good} {'completed' if completed else 'did not complete'}")
    fixed = ", ".join(f"{gate} {simulated.fixed[w].value:.1%}" for gate, w in windows.items())
    parts.append(
        f"simulated false aborts {simulated.judge.value:.2%}" + (f" ({fixed})" if fixed else "")
    )
    return "; ".join(parts)


# -- running releases at once ---------------------------------------------------------------


@dataclass
class Outcome(Generic[T]):
    """A job's value, or the exception it raised; neither when it never started."""

    value: T | None = None
    error: BaseException | None = None

    @property
    def started(self) -> bool:
        return self.value is not None or self.error is not None


def starting_order(jobs: Sequence[tuple[str, str]], targets: Targets) -> list[int]:
    """Indexes of ``jobs`` in the order to start them: the releases expected to walk every
    step (not in ``must_abort``) first, as they take longest, then the rest; so that the last
    to start are short and the runs end together."""
    return sorted(range(len(jobs)), key=lambda i: jobs[i][1] in targets.must_abort)


def run_concurrently(
    jobs: Sequence[Callable[[], T]],
    limit: int,
    *,
    first: Sequence[int] | None = None,
    stop: Callable[[T], bool] = lambda value: False,
) -> list[Outcome[T]]:
    """Run ``jobs`` on at most ``limit`` threads at once, started in the order ``first``
    (indexes; default: as listed); their outcomes, in job order. Once a job raises, or its
    value satisfies ``stop``, no further job starts (its outcome stays empty); the jobs under
    way finish.

    The threads are daemons: on Ctrl-C the test's teardown stops every release's load and
    deletes its namespace while a worker may still be waiting for its Rollout, and the
    interpreter does not wait for that worker on its way out."""
    outcomes: list[Outcome[T]] = [Outcome() for _ in jobs]
    pending = list(first) if first is not None else list(range(len(jobs)))
    lock = threading.Lock()

    def work() -> None:
        while True:
            with lock:
                if not pending:
                    return
                index = pending.pop(0)
            try:
                outcomes[index].value = value = jobs[index]()
                halt = stop(value)
            except BaseException as exc:  # handed to the caller with the job it belongs to
                outcomes[index].error = exc
                halt = True
            if halt:
                with lock:
                    pending.clear()

    workers = [
        threading.Thread(target=work, name=f"pytest-rollout-release-{n}", daemon=True)
        for n in range(max(1, min(limit, len(jobs))))
    ]
    for worker in workers:
        worker.start()
    try:
        for worker in workers:
            worker.join()
    except BaseException:  # Ctrl-C, a test timeout: start nothing more; teardown stops the rest
        with lock:
            pending.clear()
        raise
    return outcomes


@contextlib.contextmanager
def simulation_in_background() -> Iterator[Future[ValidityReport]]:
    """The validity simulation (:func:`~pytest_rollout.judge.simulation.validity`, the same
    12,500 seeded A/A canaries as its test) in a process of its own at the lowest priority, so
    that it uses the CPU the releases leave idle instead of adding its time to theirs, and
    cannot hold the test process's controllers back through the interpreter lock."""
    from pytest_rollout.judge.simulation import validity

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=context, initializer=_lowest_priority) as pool:
        future = pool.submit(validity)
        try:
            yield future
        finally:
            future.cancel()


def _lowest_priority() -> None:
    """Run this process at the lowest priority, also against other sessions: with Linux's
    autogroup scheduling every session (each pod, each load generator) weighs the same whatever
    its processes' niceness, so the process takes a session of its own and lowers that."""
    os.setsid()
    with contextlib.suppress(OSError):  # no autogroup: the niceness below is enough
        Path("/proc/self/autogroup").write_text(f"{LOWEST_NICENESS}\n")
    os.nice(LOWEST_NICENESS)


# -- the table's keys -----------------------------------------------------------------------


def _parse(
    table: Mapping[str, Any], where: Where, target: TargetConfig, spec: ExperimentSpec
) -> dict[str, Any]:
    gates_where = where.key("gates")
    raw_gates = require_table(table["gates"], gates_where, expected="a table gate = manifest set")
    if not raw_gates:
        raise gates_where.error("expected at least one gate")
    gates: dict[str, str] = {}
    for gate, value in raw_gates.items():
        gates[gate] = manifest_set_name(value, gates_where.key(gate), target)
        workload_of(spec, gates[gate], target, where)
    releases_where = where.key("releases")
    releases = require_strings(table["releases"], releases_where, what="variant names")
    for index, release in enumerate(releases):
        variant_name(release, releases_where.key(index), target)
    if len(set(releases)) != len(releases):
        raise releases_where.error(f"a release is listed twice: {list(releases)}")

    def gate_key(key: str) -> str:
        name = require_string(table[key], where.key(key))
        if name not in gates:
            raise where.key(key).error(f"no gate {name!r}; gates: {', '.join(gates)}")
        return name

    def release_key(value: object, at: Where) -> str:
        name = require_string(value, at)
        if name not in releases:
            raise at.error(f"{name!r} is not one of the releases: {', '.join(releases)}")
        return name

    judge = gate_key("judge")
    baseline = gate_key("baseline")
    if baseline == judge:
        raise where.key("baseline").error(f"{baseline!r} is the judge; name another gate")
    bad = release_key(table["bad"], where.key("bad"))
    must_abort: tuple[str, ...] = (bad,)
    if "must_abort" in table:
        at = where.key("must_abort")
        must_abort = tuple(
            release_key(name, at.key(i))
            for i, name in enumerate(require_strings(table["must_abort"], at, what="releases"))
        )
    good = release_key(table["good"], where.key("good"))
    if good in must_abort:
        raise where.key("good").error(f"{good!r} cannot both complete and be aborted")
    ratio = DEFAULT_MAX_BAD_RATIO
    if "max_bad_ratio" in table:
        ratio = positive(table["max_bad_ratio"], where.key("max_bad_ratio"), upto=1.0)
    windows: dict[str, int] = {}
    if "simulated_windows" in table:
        at = where.key("simulated_windows")
        for gate, window in require_table(table["simulated_windows"], at).items():
            if gate not in gates or gate == judge:
                raise at.key(gate).error(
                    f"no fixed-threshold gate {gate!r}; gates: "
                    f"{', '.join(g for g in gates if g != judge)}"
                )
            # Which windows the simulation has is checked when the experiment runs: its
            # module loads scipy, which collecting the experiments should not.
            if isinstance(window, bool) or not isinstance(window, int) or window < 1:
                raise at.key(gate).error(
                    f"expected the simulated gate's rate window in whole seconds, got {window!r}"
                )
            windows[gate] = window
    jobs = len(gates) * len(releases)
    concurrency = jobs
    if "concurrency" in table:
        value = table["concurrency"]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise where.key("concurrency").error(
                f"expected a whole number of releases at once (1 to {jobs}), got {value!r}"
            )
        concurrency = min(value, jobs)
    return {
        "gates": gates,
        "releases": releases,
        "simulated_windows": windows,
        "concurrency": concurrency,
        "targets": Targets(
            judge=judge,
            metric=metric_name(table["metric"], where.key("metric"), target, gates[judge]),
            baseline=baseline,
            bad=bad,
            max_bad_ratio=ratio,
            must_abort=must_abort,
            good=good,
        ),
    }


def _completed_after(run: ReleaseRun, instant: float) -> bool:
    """Whether the Rollout completed an update after ``instant`` (the initial deploy, before
    the release, completed one too)."""
    return any(e.reason == COMPLETED and e.timestamp >= instant for e in run.events)


def _rounded_all(values: Sequence[float]) -> list[float]:
    return [round(v, 2) for v in values]


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


register(
    Kind(
        name="canary-judge",
        runs_alone=True,
        summary="the same releases through several gates at once: the judge stops bad ones "
        "sooner than the baseline and lets a good one complete",
        run=run,
        keys=(
            "gates",
            "releases",
            "judge",
            "metric",
            "baseline",
            "bad",
            "max_bad_ratio",
            "must_abort",
            "good",
            "simulated_windows",
            "concurrency",
        ),
        required=("gates", "releases", "judge", "metric", "baseline", "bad", "good"),
        parse=_parse,
        needs_manifests=False,
        takes_variant=False,
    )
)
