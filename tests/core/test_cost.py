"""The strategy-cost kind: its table, its measures on hand-made runs, and running releases at
once (pure logic; the experiment itself is ``rollout.toml::strategy-cost``)."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import pytest

from pytest_rollout.backends.base import EventView, ResourceSample
from pytest_rollout.config_file import load_target_config
from pytest_rollout.errors import ConfigError, InconclusiveError
from pytest_rollout.experiment import Experiment
from pytest_rollout.kinds import kinds, parse_experiment
from pytest_rollout.kinds.cost import Strategy, jobs, promotion_s, run_all
from pytest_rollout.kinds.footprint import (
    MIB,
    footprint,
    reach,
    resource_points,
    rollback,
)
from pytest_rollout.load import TrafficLog
from pytest_rollout.runs import ReleaseRun
from tests.core.release_runs import RELEASE, T0, release_run, traffic
from tests.core.test_runs import ABORT_MESSAGE

REPO = Path(__file__).resolve().parents[2]

# --- the table -----------------------------------------------------------------------------


def table(**changes: Any) -> dict[str, Any]:
    target = load_target_config([REPO])
    values = dict(target.experiments["strategy-cost"])
    values.update(changes)
    return {k: v for k, v in values.items() if v is not None}


def parse(values: dict[str, Any]) -> Any:
    target = load_target_config([REPO])
    return parse_experiment("strategy-cost", values, target)


def test_the_repositorys_comparison_names_four_strategies_of_four_replicas() -> None:
    assert "strategy-cost" in kinds()
    spec = parse(table())
    strategies: tuple[Strategy, ...] = spec.options["strategies"]
    assert [(s.key, s.workload_kind, s.replicas) for s in strategies] == [
        ("canary", "canary", 4),
        ("canary_default", "canary", 4),
        ("blue_green", "blueGreen", 4),
        ("rolling", "rolling", 4),
    ]
    # The canary is aborted by hand in the pause after setWeight 50 (the fourth step).
    assert (strategies[0].abort_after_step, strategies[0].abort_weight) == (3, 50)
    assert strategies[1].abort_after_step is None
    assert spec.options["bad_variant"] == "bad"
    assert spec.options["parallel"] >= 1


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"manifests": "bad-canary"}, "takes a manifest set per strategy"),
        ({"blue_green": "strategy-cost-canary"}, "is not a blueGreen Rollout"),
        ({"rolling": "strategy-cost-blue-green"}, "is not a Deployment"),
        ({"canary": "strategy-cost-rolling"}, "is not a canary Rollout"),
        ({"canary": "no-such-set"}, "no manifest set 'no-such-set'"),
        ({"bad_variant": "good"}, "is the good release"),
        ({"bad_variant": "worse"}, "no variant 'worse'"),
        ({"parallel": 0}, "1 to 9, got 0"),
        ({"parallel": 10}, "1 to 9, got 10"),
        ({"parallel": True}, "got True"),
        ({"blue_green": None}, "missing required key 'blue_green'"),
        ({"bad_variant": None}, "missing required key 'bad_variant'"),
    ],
)
def test_a_wrong_table_is_one_error_naming_the_key(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(table(**changes))
    text = str(caught.value)
    assert "rollout.toml: [experiments.strategy-cost]" in text
    assert message in text


def test_the_strategies_must_run_as_many_replicas() -> None:
    with pytest.raises(ConfigError, match="the same number of replicas"):
        parse(table(rolling="readiness-with-probe"))


# --- footprint -----------------------------------------------------------------------------


def sample(t: float, ready: int, not_ready: int, memory: int) -> ResourceSample:
    return ResourceSample(t, ready, not_ready, memory, {})


def points(*steps: tuple[float, int, int]) -> list[ResourceSample]:
    """(seconds from the release, ready pods, not-ready pods), 64 MiB a pod, 4 samples a
    second from each entry to the next."""
    out: list[ResourceSample] = []
    for (start, ready, not_ready), (end, _, _) in zip(
        steps, [*steps[1:], (steps[-1][0] + 0.25, 0, 0)], strict=True
    ):
        t = start
        while t < end - 1e-9:
            out.append(sample(RELEASE + t, ready, not_ready, (ready + not_ready) * 64 * MIB))
            t += 0.25
    return out


def test_the_footprint_of_a_blue_green_like_release() -> None:
    # 4 pods before; 4 more booting for 2 s, 8 Ready for 10 s, 4 terminating for 3 s, then 4.
    samples = points(
        (-0.25, 4, 0), (0.0, 4, 4), (2.0, 8, 0), (12.0, 4, 4), (15.0, 4, 0), (17.0, 4, 0)
    )
    result = footprint(samples, RELEASE)
    assert (result.baseline_pods, result.peak_pods, result.peak_ready_pods) == (4, 8, 8)
    assert result.baseline_memory_bytes == 256 * MIB
    assert result.memory_over_baseline == pytest.approx(2.0)
    assert result.peak_pods_s == pytest.approx(15.0)  # booting, Ready and terminating pods count
    assert result.peak_memory_s == pytest.approx(15.0)
    assert result.pod_seconds_above_baseline == pytest.approx(60.0)
    assert result.mib_seconds_above_baseline == pytest.approx(60.0 * 64)
    assert result.back_to_baseline_s == pytest.approx(15.0)
    assert result.sampling_hz == pytest.approx(4.0)
    assert result.max_sample_gap_s == pytest.approx(0.25)


def test_a_release_still_above_its_baseline_at_the_end_has_no_way_back() -> None:
    result = footprint(points((-0.25, 4, 0), (0.0, 5, 0), (3.0, 5, 0)), RELEASE)
    assert result.back_to_baseline_s is None
    unchanged = footprint(points((-0.25, 4, 0), (0.0, 4, 0), (3.0, 4, 0)), RELEASE)
    assert (unchanged.back_to_baseline_s, unchanged.pod_seconds_above_baseline) == (0.0, 0.0)


def test_memory_counts_as_at_its_peak_within_a_tenth_of_its_rise() -> None:
    samples = [
        sample(RELEASE - 0.25, 4, 0, 100 * MIB),
        sample(RELEASE, 4, 0, 191 * MIB),  # 91 of a 100 MiB rise: at the peak
        sample(RELEASE + 1.0, 4, 0, 200 * MIB),
        sample(RELEASE + 2.0, 4, 0, 189 * MIB),  # 89: no longer
        sample(RELEASE + 5.0, 4, 0, 100 * MIB),
    ]
    assert footprint(samples, RELEASE).peak_memory_s == pytest.approx(2.0)


# --- reach and rollback --------------------------------------------------------------------


def bad_run(
    log: TrafficLog,
    *,
    events: tuple[EventView, ...] = (),
    kind: str = "Rollout",
    resources: list[dict[str, float]] | None = None,
) -> ReleaseRun:
    """A run of the bad release ``v2-bad`` over ``v1``, released at RELEASE."""
    extra = {"resources": resources} if resources is not None else {}
    return replace(release_run(log, events=events), kind=kind, extra=extra)


def aborted_at(t: float) -> tuple[EventView, ...]:
    return (EventView(t, "Warning", "RolloutAborted", ABORT_MESSAGE, "Rollout", "svc"),)


def test_the_reach_of_an_aborted_canary() -> None:
    # 5% bad for 3 s from the release, aborted at +3 s, nothing bad from +4 s.
    log = traffic([{"v1": 100}] + [{"v1": 95, "v2-bad": 5}] * 3 + [{"v1": 100}] * 6)
    result = reach(bad_run(log, events=aborted_at(T0 + 4.0)))
    assert result.bad_requests == 15
    assert result.total_requests == 400  # from the release to the abort plus the allowance
    assert result.bad_share == pytest.approx(15 / 400)
    assert result.errors == 9  # the odd ones of each second's 96th-100th requests
    assert result.aborted_by == "error-rate"
    assert result.time_to_abort_s == pytest.approx(3.0)
    # From the first bad request (+0.95 s into the first bad second) to the last (+0.99 s
    # into the third).
    assert result.rollback_s == pytest.approx(2.04)
    assert result.abort_to_old_s == 0.0  # the last bad request came before the abort event


def test_a_release_stopped_before_it_served_reached_nobody() -> None:
    log = traffic([{"v1": 100}] * 6)
    result = reach(bad_run(log, events=aborted_at(T0 + 3.0)))
    assert (result.bad_requests, result.bad_share, result.rollback_s) == (0, 0.0, 0.0)
    assert result.abort_to_old_s == 0.0


def test_a_release_nothing_stopped_was_never_rolled_back() -> None:
    log = traffic([{"v1": 100}] + [{"v1": 50, "v2-bad": 50}] * 2 + [{"v2-bad": 100}] * 3)
    result = reach(bad_run(log, kind="Deployment"))
    assert result.aborted_by is None
    assert (result.rollback_s, result.abort_to_old_s, result.time_to_abort_s) == (None, None, None)
    assert result.bad_share == pytest.approx(400 / 500)


def test_an_operator_abort_and_the_weights_back_to_the_stable() -> None:
    moves = [(2.0, "to 0"), (2.5, "from 0 to 5"), (4.0, "from 5 to 50"), (6.5, "from 50 to 5")]
    moves += [(6.6, "from 5 to 0")]
    events = tuple(
        EventView(T0 + t, "Normal", "TrafficWeightUpdated", f"Traffic weight updated {m}", "", "")
        for t, m in moves
    )
    log = traffic([{"v1": 100}] * 4 + [{"v1": 50, "v2-bad": 50}] * 3 + [{"v1": 100}] * 2)
    events = tuple(sorted(events + aborted_at(T0 + 5.5), key=lambda e: e.timestamp))
    result = rollback(bad_run(log, events=events))
    assert result.weight == 50
    assert result.weights_after_abort == (5, 0)
    last_bad = T0 + 6 + 99 / 100
    assert result.abort_to_old_s == pytest.approx(last_bad - (T0 + 5.5))
    assert result.new_requests_after_abort == 100
    with pytest.raises(InconclusiveError, match="no abort"):
        rollback(bad_run(log))


def test_a_run_without_resource_samples_is_inconclusive() -> None:
    with pytest.raises(InconclusiveError, match="0 resource samples"):
        resource_points(bad_run(traffic([{"v1": 10}])))
    run = bad_run(
        traffic([{"v1": 10}]),
        resources=[{"t": T0 + 1, "ready": 4, "not_ready": 0, "memory_bytes": 1}] * 2,
    )
    assert [p.pods for p in resource_points(run)] == [4, 4]


# --- running releases at once --------------------------------------------------------------


def test_releases_run_at_most_parallel_at_once_in_order() -> None:
    lock = threading.Lock()
    active: list[int] = [0, 0]  # now, most
    started: list[str] = []
    both = threading.Barrier(2, timeout=10)

    def job(name: str) -> Any:
        def run() -> Any:
            with lock:
                started.append(name)
                active[0] += 1
                active[1] = max(active)
            both.wait()  # two at once, or the barrier breaks
            with lock:
                active[0] -= 1
            return name

        return run

    batch = run_all({name: job(name) for name in "abcd"}, parallel=2)
    assert [str(run) for run in batch.runs.values()] == list("abcd")
    assert batch.errors == {}
    assert active[1] == 2
    assert started[:2] in (["a", "b"], ["b", "a"])


def test_after_a_failure_no_further_release_starts_and_the_first_is_raised() -> None:
    ran: list[str] = []

    def job(name: str, fail: bool) -> Any:
        def run() -> Any:
            ran.append(name)
            if fail:
                raise AssertionError(f"{name} failed")
            return name

        return run

    batch = run_all({"a": job("a", True), "b": job("b", False), "c": job("c", True)}, parallel=1)
    assert ran == ["a"]
    with pytest.raises(AssertionError, match="a failed"):
        batch.raise_first()


def test_promotion_is_the_release_s_own_completion_not_the_first_deploy_s() -> None:
    def completed(t: float, why: str) -> EventView:
        message = f"Rollout completed update to revision 1 (h): {why}"
        return EventView(t, "Normal", "RolloutCompleted", message, "Rollout", "svc")

    events = (completed(T0 - 9.0, "Initial deploy"), completed(RELEASE + 42.5, "Completed all"))
    assert promotion_s(bad_run(traffic([{"v1": 10}]), events=events)) == pytest.approx(42.5)
    # A Deployment has no such event: its roll-out completed when the run settled.
    deployment = bad_run(traffic([{"v1": 10}]), kind="Deployment")
    assert promotion_s(deployment) == pytest.approx(deployment.settled_at - RELEASE)


def test_the_longest_releases_are_started_first() -> None:
    spec = parse(table())
    planned = jobs(cast(Experiment, None), spec, spec.options["strategies"])
    assert list(planned) == [
        "canary_default/good",
        "blue_green/good",
        "canary/good",
        "canary/abort",
        "rolling/good",
        "canary_default/bad",
        "canary/bad",
        "blue_green/bad",
        "rolling/bad",
    ]
