"""The judge's false-abort rate over simulated A/A canaries, and its power, by simulation.

Run with ``-s`` to see the tables; ``python -m pytest_rollout.judge.simulation`` prints the same.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pytest_rollout.judge.sequential import DEFAULT_ALPHA
from pytest_rollout.judge.simulation import HEADLINE_FIXED_WINDOW_S, power, validity

pytestmark = pytest.mark.slow  # starts real processes, or renders for seconds

MIN_RUNS = 10_000
TIME_BUDGET_S = 60.0


def test_the_judge_keeps_its_false_abort_rate_and_a_fixed_threshold_does_not(
    record_property: Callable[[str, object], None],
) -> None:
    report = validity()
    print(f"\n{report.format()}")
    record_property("false_abort_rate_judge", report.judge.value)
    record_property("false_abort_rate_fixed_5s", report.fixed[HEADLINE_FIXED_WINDOW_S].value)
    record_property("simulated_runs", report.runs)

    assert report.runs >= MIN_RUNS
    assert report.cpu_s <= TIME_BUDGET_S, f"simulation took {report.cpu_s:.1f}s of CPU"
    assert report.judge.low <= DEFAULT_ALPHA, f"judge false-abort rate {report.judge}"
    assert report.judge.value <= DEFAULT_ALPHA, f"judge false-abort rate {report.judge}"
    for row in report.rows:
        assert row.judge.low <= DEFAULT_ALPHA, f"{row.scenario}: judge {row.judge}"
    headline = report.fixed[HEADLINE_FIXED_WINDOW_S]
    assert headline.low > 10 * DEFAULT_ALPHA, f"fixed gate false-abort rate {headline}"


def test_the_judge_catches_the_bad_releases_quickly(
    record_property: Callable[[str, object], None],
) -> None:
    report = power()
    print(f"\n{report.format()}")
    bad, subtle, slow = (report.row(name) for name in ("bad", "subtle", "slow"))
    for row in (bad, subtle, slow):
        record_property(
            f"median_canary_requests_{row.scenario.split(':')[0]}", row.median_canary_requests
        )
        assert row.detected.value >= 0.99, f"{row.scenario}: detected {row.detected}"
    # A 5% canary of 200 req/s serves 10 requests a second.
    assert bad.median_canary_requests <= 30
    assert subtle.median_canary_requests == pytest.approx(200, rel=0.5)
    assert slow.median_canary_requests <= 30
