"""The judge's decisions from cumulative counts: fail, pass, continue, and bad input."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_rollout.errors import ConfigError
from pytest_rollout.judge.sequential import JudgeConfig, Snapshot, VersionCounts, judge

INF = math.inf


def looks(
    seconds: int,
    *,
    canary_rps: int = 10,
    stable_rps: int = 190,
    canary_errors_per_s: float = 0.0,
    stable_errors_per_s: float = 0.0,
) -> list[Snapshot]:
    """Cumulative counts after each second of steady traffic (fractions accrue)."""
    return [
        Snapshot(
            VersionCounts(canary_rps * t, math.floor(canary_errors_per_s * t)),
            VersionCounts(stable_rps * t, math.floor(stable_errors_per_s * t)),
        )
        for t in range(1, seconds + 1)
    ]


def test_nothing_yet_is_continue() -> None:
    verdict = judge([])
    assert (verdict.decision, verdict.e_value, verdict.p_value) == ("continue", 1.0, 1.0)
    assert verdict.reason == "no canary requests yet"
    only_stable = judge([Snapshot(VersionCounts(), VersionCounts(200, 3))])
    assert only_stable.decision == "continue"
    assert only_stable.reason == "no canary requests yet"


def test_a_canary_failing_half_its_requests_fails_within_seconds() -> None:
    snapshots = looks(5, canary_errors_per_s=5, stable_errors_per_s=1.9)
    first = next(t for t in range(1, 6) if judge(snapshots[:t]).decision == "fail")
    verdict = judge(snapshots[:first])
    assert first <= 2
    assert verdict.p_value <= 0.01
    assert verdict.errors.canary_events == 5 * first
    assert verdict.reason.startswith("canary worse than stable (anytime p ")
    assert "canary 5xx answers where its traffic share predicts" in verdict.reason


def test_a_canary_failing_like_stable_passes_after_its_request_budget() -> None:
    config = JudgeConfig(pass_after_requests=500)
    snapshots = looks(60, canary_errors_per_s=0.1, stable_errors_per_s=1.9)
    decisions = [judge(snapshots[:t], config).decision for t in (10, 49, 50, 60)]
    assert decisions == ["continue", "continue", "pass", "pass"]
    verdict = judge(snapshots, config)
    assert verdict.reason.startswith("no evidence against the canary after 600 requests (>= 500")


def test_a_better_canary_never_fails() -> None:
    verdict = judge(looks(120, canary_errors_per_s=0, stable_errors_per_s=19))
    assert verdict.decision == "pass"
    assert verdict.errors.e_value < 1e-3
    assert verdict.errors.expected_canary_events == pytest.approx(0.05 * 19 * 120)


def test_fail_overrides_pass_and_the_p_value_never_rises() -> None:
    config = JudgeConfig(pass_after_requests=100)
    clean = looks(20, stable_errors_per_s=1.9)
    last = clean[-1]
    bad = [
        Snapshot(
            VersionCounts(last.canary.requests + 10 * t, 5 * t),
            VersionCounts(last.stable.requests + 190 * t, last.stable.errors + 2 * t),
        )
        for t in range(1, 4)
    ]
    verdicts = [judge([*clean, *bad][:t], config) for t in range(1, 24)]
    assert verdicts[19].decision == "pass"
    assert verdicts[-1].decision == "fail"
    p_values = [v.p_value for v in verdicts]
    assert p_values == sorted(p_values, reverse=True)


def test_a_weight_change_is_measured_per_interval() -> None:
    # 5% for 30 s, then 50%: expectations follow each interval's own share.
    snapshots = looks(30, canary_errors_per_s=0.1, stable_errors_per_s=1.9)
    base = snapshots[-1]
    snapshots += [
        Snapshot(
            VersionCounts(base.canary.requests + 100 * t, base.canary.errors + t),
            VersionCounts(base.stable.requests + 100 * t, base.stable.errors + t),
        )
        for t in range(1, 31)
    ]
    verdict = judge(snapshots, JudgeConfig(pass_after_requests=10_000))
    assert verdict.decision == "continue"
    assert verdict.errors.expected_canary_events == pytest.approx((3 + 57) * 0.05 + 60 * 0.5)


def histogram(requests: float, slower_than_quarter: float) -> dict[float, float]:
    """Buckets where ``slower_than_quarter`` requests took 0.25-0.5 s, the rest under 1 ms."""
    fast = requests - slower_than_quarter
    buckets = {le: fast for le in (0.001, 0.025, 0.05, 0.1, 0.25)}
    buckets |= {0.5: requests, 1.0: requests, INF: requests}
    return buckets


def test_a_slower_canary_fails_on_latency_and_names_the_bound() -> None:
    snapshots = [
        Snapshot(
            VersionCounts(10 * t, 0, histogram(10 * t, 10 * t)),
            VersionCounts(190 * t, 0, histogram(190 * t, 0)),
        )
        for t in range(1, 3)
    ]
    verdict = judge(snapshots)
    assert verdict.decision == "fail"
    assert verdict.latency.bound_s in (0.025, 0.05, 0.1, 0.25)
    assert verdict.latency.canary_events == 20
    assert "canary requests slower than 0.025s" in verdict.reason


def test_differences_below_the_latency_floor_are_not_tested() -> None:
    # The canary answers in 1-25 ms, the stable under 1 ms: below the 25 ms floor.
    def buckets(requests: float, over_a_millisecond: float) -> dict[float, float]:
        return {0.001: requests - over_a_millisecond, 0.025: requests, INF: requests}

    snapshots = [
        Snapshot(
            VersionCounts(10 * t, 0, buckets(10 * t, 10 * t)),
            VersionCounts(190 * t, 0, buckets(190 * t, 0)),
        )
        for t in range(1, 31)
    ]
    assert judge(snapshots).decision == "continue"
    assert judge(snapshots, JudgeConfig(latency_floor_s=0.001)).decision == "fail"


def test_the_verdict_is_json_with_finite_numbers() -> None:
    snapshots = looks(300, canary_errors_per_s=10, stable_errors_per_s=0)
    body = judge(snapshots).as_json()
    text = json.dumps(body, allow_nan=False)
    assert json.loads(text)["decision"] == "fail"
    assert (body["e_value"], body["p_value"]) == (1e300, 1e-300)
    assert body["counts"]["canary"] == {"requests": 3000, "errors": 3000, "latency_buckets": {}}
    assert set(body["tests"]) == {"errors", "latency"}
    with_buckets = Snapshot(VersionCounts(1, 0, {0.5: 1, INF: 1}), VersionCounts(1, 0, {}))
    shown = judge([with_buckets]).as_json()["counts"]["canary"]["latency_buckets"]
    assert shown == {"0.5": 1, "+Inf": 1}


def test_falling_counts_are_rejected_with_the_look() -> None:
    snapshots = looks(3)
    snapshots.append(Snapshot(VersionCounts(5, 0), snapshots[-1].stable))
    with pytest.raises(ValueError, match=r"cumulative requests of the canary fell at look 4"):
        judge(snapshots)


def test_more_errors_than_requests_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"the stable has more errors \(3\) than requests \(2\)"):
        judge([Snapshot(VersionCounts(1, 0), VersionCounts(2, 3))])


def test_negative_or_nan_counts_are_rejected() -> None:
    with pytest.raises(ValueError, match="requests must be finite and >= 0"):
        judge([Snapshot(VersionCounts(math.nan, 0), VersionCounts(2, 0))])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"alpha": 0}, "judge alpha: expected a number in \\(0, 1\\), got 0"),
        ({"alpha": 1.5}, "judge alpha"),
        ({"pass_after_requests": -1}, "judge pass_after_requests: expected a number >= 0"),
        ({"latency_floor_s": math.inf}, "judge latency_floor_s"),
    ],
)
def test_bad_config_is_a_config_error(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        JudgeConfig(**kwargs)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 30), st.integers(0, 200), st.integers(0, 3), st.integers(0, 9)),
        min_size=1,
        max_size=25,
    )
)
def test_any_counts_give_a_decision_and_a_falling_p_value(
    steps: list[tuple[int, int, int, int]],
) -> None:
    canary = stable = VersionCounts()
    snapshots = []
    for canary_requests, stable_requests, canary_errors, stable_errors in steps:
        canary = VersionCounts(
            canary.requests + canary_requests,
            canary.errors + min(canary_errors, canary_requests),
        )
        stable = VersionCounts(
            stable.requests + stable_requests,
            stable.errors + min(stable_errors, stable_requests),
        )
        snapshots.append(Snapshot(canary, stable))
    verdicts = [judge(snapshots[: t + 1]) for t in range(len(snapshots))]
    assert all(v.decision in ("fail", "pass", "continue") for v in verdicts)
    assert all(v.decision == "fail" for v in verdicts if v.p_value <= 0.01)
    p_values = [v.p_value for v in verdicts]
    assert p_values == sorted(p_values, reverse=True)
    assert all(0 < v.p_value <= 1 and math.isfinite(v.e_value) for v in verdicts)
