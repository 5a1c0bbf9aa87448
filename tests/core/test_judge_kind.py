"""The canary-judge kind: its table, what it records of a run, its targets and its scheduler
(pure logic, on hand-made traffic logs and events; the experiment itself is
``rollout.toml::canary-judge``)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pytest_rollout.backends.base import EventView, RolloutView
from pytest_rollout.config import TargetConfig
from pytest_rollout.config_file import load_target_config
from pytest_rollout.errors import ConfigError, InconclusiveError
from pytest_rollout.kinds import parse_experiment
from pytest_rollout.kinds.judge import (
    GateResult,
    Targets,
    check_simulated_windows,
    results_table,
    run_concurrently,
    starting_order,
)
from pytest_rollout.load import RequestRecord, TrafficLog
from pytest_rollout.runs import ReleaseRun
from tests.core.release_runs import RELEASE, T0, release_run, traffic

REPO = Path(__file__).resolve().parents[2]
JUDGE_ABORT = (
    "Rollout aborted update to revision 2: Background analysis phase error/failed: Metric "
    '"sequential-judge" assessed Failed due to failed (1) > failureLimit (0)'
)


@pytest.fixture(scope="module")
def target() -> TargetConfig:
    return load_target_config([REPO])


def _table(target: TargetConfig, **changes: Any) -> dict[str, Any]:
    table = dict(target.experiments["canary-judge"])
    for key, value in changes.items():
        if value is None:
            table.pop(key, None)
        else:
            table[key] = value
    return table


# -- the table -------------------------------------------------------------------------------


def test_the_repositorys_table(target: TargetConfig) -> None:
    spec = parse_experiment("canary-judge", target.experiments["canary-judge"], target)
    assert spec.variant is None
    assert spec.options["gates"] == {
        "fixed_step": "canary-judge-fixed-step",
        "fixed_1s": "canary-judge-fixed-1s",
        "sequential": "canary-judge-sequential",
    }
    assert spec.options["releases"] == ("bad", "subtle", "slow", "good")
    assert spec.options["simulated_windows"] == {"fixed_1s": 5}
    assert 1 <= spec.options["concurrency"] <= 12
    assert spec.options["targets"] == Targets(
        judge="sequential",
        metric="sequential-judge",
        baseline="fixed_step",
        bad="bad",
        max_bad_ratio=1 / 3,
        must_abort=("bad", "subtle"),
        good="good",
    )
    check_simulated_windows(spec.options["simulated_windows"], spec.where)


def test_the_simulated_fixed_gate_is_the_manifests_gate(target: TargetConfig) -> None:
    """simulated_windows says gate (b) is the simulation's fixed 5% gate with a 5 s window: its
    AnalysisTemplate must say the same."""
    from pytest_rollout.judge.simulation import FIXED_THRESHOLD

    template = target.load_manifests("canary-judge-fixed-1s").get(
        "AnalysisTemplate", "error-rate-1s"
    )
    args = {a["name"]: a.get("value") for a in template.body["spec"]["args"]}
    assert float(args["max-error-rate"]) == FIXED_THRESHOLD
    assert args["window"] == "5s"
    (metric,) = template.body["spec"]["metrics"]
    assert metric["interval"] == "1s"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"variant": "bad"},
            "[experiments.canary-judge]: unknown key 'variant'",
        ),
        (
            {"judge": "sequentail"},
            "[experiments.canary-judge].judge: no gate 'sequentail'; gates: fixed_step, "
            "fixed_1s, sequential",
        ),
        (
            {"baseline": "sequential"},
            "[experiments.canary-judge].baseline: 'sequential' is the judge; name another gate",
        ),
        (
            {"gates": {"fixed_step": "canary-judge-fixed-stp"}},
            "[experiments.canary-judge].gates.fixed_step: no manifest set 'canary-judge-fixed-stp'",
        ),
        (
            {"releases": ["bad", "bda"]},
            "[experiments.canary-judge].releases[1]: no variant 'bda'",
        ),
        (
            {"releases": ["bad", "bad", "good"]},
            "[experiments.canary-judge].releases: a release is listed twice",
        ),
        (
            {"must_abort": ["bad", "flaky"]},
            "[experiments.canary-judge].must_abort[1]: 'flaky' is not one of the releases",
        ),
        (
            {"good": "subtle"},
            "[experiments.canary-judge].good: 'subtle' cannot both complete and be aborted",
        ),
        (
            {"metric": "judge"},
            "[experiments.canary-judge].metric: no metric 'judge' in the AnalysisTemplates "
            "of manifest set 'canary-judge-sequential'",
        ),
        (
            {"simulated_windows": {"sequential": 5}},
            "[experiments.canary-judge].simulated_windows.sequential: no fixed-threshold gate",
        ),
        (
            {"simulated_windows": {"fixed_1s": "5s"}},
            "[experiments.canary-judge].simulated_windows.fixed_1s: expected the simulated "
            "gate's rate window in whole seconds, got '5s'",
        ),
        (
            {"concurrency": 0},
            "[experiments.canary-judge].concurrency: expected a whole number of releases at once",
        ),
        (
            {"max_bad_ratio": 2},
            "[experiments.canary-judge].max_bad_ratio: expected a positive number at most 1",
        ),
        (
            {"workload": None},
            "[experiments.canary-judge].workload: name the workload: manifest set "
            "'canary-judge-sequential' has 2 Rollouts and Deployments",
        ),
        (
            {"good": None},
            "[experiments.canary-judge]: missing required key 'good'",
        ),
    ],
)
def test_a_mistake_is_one_line_naming_the_key(
    target: TargetConfig, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_experiment("canary-judge", _table(target, **changes), target)
    text = str(caught.value)
    assert "\n" not in text
    assert text.startswith("rollout.toml: ")
    assert message in text


def test_a_window_the_simulation_does_not_measure_is_named() -> None:
    with pytest.raises(ConfigError, match=r"simulated_windows.fixed_1s: .* 1, 5, 20 s, not 3"):
        check_simulated_windows({"fixed_1s": 3}, "rollout.toml: [experiments.canary-judge]")


# -- what a run records -------------------------------------------------------------------------


def _event(t: float, reason: str, message: str = "") -> EventView:
    return EventView(t, "Normal", reason, message, "Rollout", "reference-service")


def _judged(
    log: TrafficLog, events: tuple[EventView, ...], *, version: str, phase: str
) -> ReleaseRun:
    view = RolloutView("reference-service", phase, "", 0, 0, "a", None, phase == "Degraded")
    return release_run(
        log, label="sequential/bad", events=events, view=view, version=version, steps=4, tail=4.0
    )


INITIAL_DEPLOY = _event(T0 - 20.0, "RolloutCompleted", "Rollout completed update to revision 1")


def test_an_aborted_release_counts_its_requests_until_the_rollback() -> None:
    # 100 req/s: v1 only, then 5% v2-bad for 3 s, aborted at +4 s (rollback +5 s), v1 after.
    log = traffic([{"v1": 100}] + [{"v1": 95, "v2-bad": 5}] * 3 + [{"v1": 100}] * 6)
    events = (
        INITIAL_DEPLOY,
        _event(RELEASE, "RolloutUpdated"),
        _event(T0 + 4.0, "RolloutAborted", JUDGE_ABORT),
    )
    result = GateResult.of(
        "sequential", "bad", _judged(log, events, version="v2-bad", phase="Degraded")
    )
    assert result.aborted
    assert (result.aborted_by, result.abort_phase) == ("sequential-judge", "Failed")
    assert result.bad_requests == 15
    assert result.failed_user_requests == 9  # 3 of its 5 a second answered 500
    assert result.requests == 400
    assert result.time_to_abort_s == pytest.approx(2.05)  # its first request at T0 + 1.95 s
    assert not result.completed
    assert result.load_problem is None
    assert result.summary()["aborted"] is True
    assert set(result.summary()) >= {
        "time_to_abort_s",
        "bad_requests",
        "failed_user_requests",
        "aborted",
    }


def test_a_completed_release_counts_every_request_it_served() -> None:
    log = traffic([{"v1": 100}, {"v1": 95, "v2": 5}, {"v1": 50, "v2": 50}] + [{"v2": 100}] * 5)
    events = (
        INITIAL_DEPLOY,
        _event(RELEASE, "RolloutUpdated"),
        _event(T0 + 3.5, "RolloutCompleted"),
    )
    result = GateResult.of(
        "sequential", "good", _judged(log, events, version="v2", phase="Healthy")
    )
    assert not result.aborted
    assert result.completed
    assert result.time_to_abort_s is None
    assert result.bad_requests == 5 + 50 + 500
    assert result.failed_user_requests == 0


def test_the_initial_deploy_is_no_completion_of_the_release() -> None:
    log = traffic([{"v1": 100}, {"v1": 95, "v2": 5}, {"v1": 95, "v2": 5}])
    events = (INITIAL_DEPLOY, _event(RELEASE, "RolloutUpdated"))
    result = GateResult.of("sequential", "good", _judged(log, events, version="v2", phase="Paused"))
    assert not result.completed
    assert not result.aborted


def test_a_run_whose_generator_fell_behind_says_why() -> None:
    late = [
        RequestRecord(T0 + i / 100, T0 + i / 100 + 0.02, 0.02, "GET /", status=200, version="v1")
        for i in range(300)
    ]
    log = TrafficLog(late, target_rate=100.0, started_at=T0)
    result = GateResult.of("sequential", "good", _judged(log, (), version="v1", phase="Healthy"))
    assert "p99 lateness" in (result.load_problem or "")


# -- the targets --------------------------------------------------------------------------------

TARGETS = Targets(
    judge="sequential",
    metric="sequential-judge",
    baseline="fixed_step",
    bad="bad",
    max_bad_ratio=1 / 3,
    must_abort=("bad", "subtle"),
    good="good",
)


def _result(
    gate: str,
    release: str,
    *,
    by: str | None = None,
    bad_requests: int = 100,
    completed: bool = False,
    problem: str | None = None,
) -> GateResult:
    return GateResult(
        gate=gate,
        release=release,
        aborted=by is not None,
        aborted_by=by if by != "-" else None,
        abort_phase="Failed" if by not in (None, "-") else None,
        time_to_abort_s=2.0 if by is not None else None,
        bad_requests=bad_requests,
        failed_user_requests=bad_requests // 2,
        requests=2000,
        completed=completed,
        settled_after_s=10.0,
        achieved_rate=200.0,
        lateness_p99_ms=1.2,
        load_problem=problem,
    )


def _results(**judged: GateResult) -> dict[str, dict[str, GateResult]]:
    sequential = {
        "bad": _result("sequential", "bad", by="sequential-judge", bad_requests=30),
        "subtle": _result("sequential", "subtle", by="sequential-judge", bad_requests=200),
        "good": _result("sequential", "good", bad_requests=2000, completed=True),
    }
    sequential.update(judged)
    return {
        "fixed_step": {"bad": _result("fixed_step", "bad", by="error-rate", bad_requests=105)},
        "sequential": sequential,
    }


class _Simulated:
    def __init__(self, value: float, alpha: float = 0.01) -> None:
        self.judge = type("Rate", (), {"value": value, "__str__": lambda self: f"{value}"})()
        self.alpha = alpha


def _check(results: dict[str, dict[str, GateResult]], rate: float = 0.003) -> list[str]:
    return TARGETS.check(results, _Simulated(rate))  # type: ignore[arg-type]


def test_targets_met() -> None:
    assert _check(_results()) == []


def test_the_judge_letting_too_much_through_is_a_miss_with_the_numbers() -> None:
    (missed,) = _check(
        _results(bad=_result("sequential", "bad", by="sequential-judge", bad_requests=36))
    )
    assert missed == (
        "'bad' reached 36 requests under sequential, more than 0.333 x the 105 under "
        "fixed_step (= 35.0)"
    )


def test_an_abort_by_anything_but_the_judge_is_a_miss() -> None:
    errored = _result("sequential", "subtle", by="-")
    (missed,) = _check(_results(subtle=errored))
    assert "expected sequential to abort 'subtle' by metric 'sequential-judge'" in missed
    assert "not a metric" in missed


def test_a_good_release_aborted_by_the_judge_is_a_miss() -> None:
    aborted = _result("sequential", "good", by="sequential-judge", bad_requests=50)
    (missed,) = _check(_results(good=aborted))
    assert "expected sequential to let 'good' complete" in missed


def test_a_simulated_false_abort_rate_above_alpha_is_a_miss() -> None:
    (missed,) = _check(_results(), rate=0.02)
    assert "simulated false-abort rate of the judge 0.02 > alpha 0.01" in missed


def test_a_generator_that_fell_behind_makes_it_inconclusive() -> None:
    late = _result("sequential", "good", completed=True, problem="p99 lateness 9 ms > 5 ms")
    with pytest.raises(InconclusiveError, match=r"fell behind in 1 of 4 runs.*sequential/good"):
        _check(_results(good=late))


def test_a_baseline_that_never_aborted_leaves_no_yardstick() -> None:
    results = _results()
    results["fixed_step"]["bad"] = _result("fixed_step", "bad", bad_requests=3000, completed=True)
    with pytest.raises(InconclusiveError, match="baseline gate did not abort 'bad'"):
        _check(results)


def test_the_table_has_a_row_per_gate_and_release() -> None:
    table = results_table(_results(), ["fixed_step", "sequential"], ["bad", "good"])
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["gate", "release", "aborted"]
    assert lines[1].split()[:4] == ["fixed_step", "bad", "yes", "error-rate"]
    assert "(no result)" in lines[2]
    assert lines[4].split()[:3] == ["sequential", "good", "no"]


# -- running releases at once ---------------------------------------------------------------------


def test_jobs_run_at_most_limit_at_once_and_keep_their_order() -> None:
    running, peak = [0], [0]
    lock = threading.Lock()
    gate = threading.Barrier(3)

    def job(n: int) -> Callable[[], int]:
        def work() -> int:
            with lock:
                running[0] += 1
                peak[0] = max(peak[0], running[0])
            if n < 3:
                gate.wait(timeout=10)  # the first three overlap for certain
            with lock:
                running[0] -= 1
            return n * 10

        return work

    outcomes = run_concurrently([job(n) for n in range(7)], 3)
    assert peak[0] == 3
    assert [o.value for o in outcomes] == [0, 10, 20, 30, 40, 50, 60]


def test_jobs_start_in_the_order_given() -> None:
    started: list[int] = []

    def job(n: int) -> Callable[[], None]:
        return lambda: started.append(n)

    outcomes = run_concurrently([job(n) for n in range(4)], 1, first=[2, 0, 3, 1])
    assert started == [2, 0, 3, 1]
    assert all(o.error is None for o in outcomes)


def test_once_a_job_stops_the_run_or_fails_nothing_more_starts() -> None:
    def job(n: int) -> Callable[[], int]:
        def work() -> int:
            if n == 5:
                raise RuntimeError("boom")
            return n

        return work

    stopped = run_concurrently([job(n) for n in range(6)], 1, stop=lambda n: n == 2)
    assert [o.value for o in stopped] == [0, 1, 2, None, None, None]
    assert [o.started for o in stopped] == [True, True, True, False, False, False]
    failed = run_concurrently([job(n) for n in range(6)], 1, first=[5, 0, 1, 2, 3, 4])
    assert isinstance(failed[5].error, RuntimeError)
    assert not any(o.started for o in failed[:5])


def test_releases_expected_to_complete_start_first() -> None:
    jobs = [(g, r) for g in ("a", "b") for r in ("bad", "subtle", "good")]
    order = starting_order(jobs, TARGETS)
    assert [jobs[i] for i in order[:2]] == [("a", "good"), ("b", "good")]
