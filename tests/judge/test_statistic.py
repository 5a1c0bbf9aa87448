"""The count test's e-value: the mixture it is, and the supermartingale property it rests on."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from pytest_rollout.errors import ConfigError
from pytest_rollout.judge.statistic import (
    RatioGrid,
    expected_canary_events,
    log_e_value,
    log_judge_e_value,
    log_mean_exp,
    share_log_terms,
    traffic_share,
)

GRID = RatioGrid()


def e_after(
    canary: list[int], stable: list[int], shares: list[tuple[int, int]], grid: RatioGrid = GRID
) -> float:
    """The e-value after the given intervals, through the module's functions."""
    events = np.add(canary, stable)[:, None]
    terms = share_log_terms([c for c, _ in shares], [s for _, s in shares], grid)
    return math.exp(float(log_e_value(sum(canary), (events * terms).sum(axis=0), grid)))


def test_the_e_value_is_the_mean_likelihood_ratio_over_the_grid() -> None:
    canary, stable, shares = [2, 0, 3], [5, 1, 4], [(10, 190), (50, 50), (20, 180)]
    grid = RatioGrid(low=1.5, high=40.0, points=3)
    assert grid.ratios.tolist() == pytest.approx([1.5, math.sqrt(1.5 * 40), 40.0])

    def likelihood_ratio(r: float) -> float:
        value = 1.0
        for x, y, (n, m) in zip(canary, stable, shares, strict=True):
            rho = n / (n + m)
            value *= r**x / (1 + rho * (r - 1)) ** (x + y)
        return value

    ratios = grid.ratios.tolist()
    expected = sum(likelihood_ratio(r) for r in ratios) / len(ratios)
    assert e_after(canary, stable, shares, grid) == pytest.approx(expected, rel=1e-12)


def test_nothing_seen_is_no_evidence() -> None:
    assert e_after([0], [0], [(0, 0)]) == 1.0
    assert e_after([0, 0], [0, 0], [(10, 0), (0, 10)]) == 1.0


def _expected_e(events: int, share: float, canary_probability: float, x0: int, s0: float) -> float:
    """E[e] after one interval of ``events`` events, each the canary's with the given
    probability, starting from ``x0`` canary events and compensators ``s0 * log(1 + ...)``."""
    terms = share_log_terms(share, 1 - share, GRID)
    p = canary_probability
    # Written out: scipy's binomial pmf overflows for probabilities near the smallest float.
    total = 0.0
    for x in range(events + 1):
        weight = math.comb(events, x) * p**x * (1 - p) ** (events - x)
        total += weight * math.exp(float(log_e_value(x0 + x, (s0 + events) * terms, GRID)))
    return total


@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(
    events=st.integers(0, 60),
    share=st.floats(0.01, 0.99),
    better=st.floats(0.0, 1.0),
    x0=st.integers(0, 20),
    s0=st.integers(0, 40),
)
def test_no_worse_canary_cannot_grow_the_e_value_in_expectation(
    events: int, share: float, better: float, x0: int, s0: int
) -> None:
    # The canary's share of events is at most its traffic share: equal (A/A) or better.
    terms = share_log_terms(share, 1 - share, GRID)
    before = math.exp(float(log_e_value(x0, s0 * terms, GRID)))
    after = _expected_e(events, share, share * better, x0, s0)
    assert after <= before * (1 + 1e-9)


def test_under_the_null_the_expectation_is_kept_exactly() -> None:
    share = 0.05
    terms = share_log_terms(share, 1 - share, GRID)
    before = math.exp(float(log_e_value(3, 10 * terms, GRID)))
    assert _expected_e(25, share, share, 3, 10) == pytest.approx(before, rel=1e-9)


def test_a_worse_canary_grows_it() -> None:
    assert _expected_e(20, 0.05, 0.5, 0, 0) > 1000


def test_hypergeometric_events_are_covered_too() -> None:
    # Requests as units: 40 requests, 5 of them the canary's, 6 errors among all 40.
    population, canary, errors = 40, 5, 6
    terms = share_log_terms(canary, population - canary, GRID)
    values = [math.exp(float(log_e_value(x, errors * terms, GRID))) for x in range(errors + 1)]
    pmf = stats.hypergeom.pmf(np.arange(errors + 1), population, canary, errors)
    assert float(np.dot(pmf, values)) <= 1.0


def test_evidence_grows_with_canary_events_and_shrinks_with_the_stable_s() -> None:
    by_canary = [e_after([x], [5], [(10, 190)]) for x in range(10)]
    assert by_canary == sorted(by_canary)
    by_stable = [e_after([5], [y], [(10, 190)]) for y in range(10)]
    assert by_stable == sorted(by_stable, reverse=True)


def test_a_far_better_canary_has_no_evidence_at_all() -> None:
    assert e_after([0], [5000], [(50, 50)]) == 0.0


def test_shares_and_expected_events_follow_each_interval() -> None:
    assert traffic_share([5, 0, 50], [95, 0, 50]).tolist() == [0.05, 0.0, 0.5]
    expected = expected_canary_events([1, 0, 3], [9, 0, 1], [5, 0, 50], [95, 0, 50])
    assert expected.tolist() == pytest.approx([0.5, 0.0, 2.0])


def test_averages_of_e_values_in_log_space() -> None:
    assert float(log_mean_exp([0.0, math.log(3.0)])) == pytest.approx(math.log(2.0))
    judged = log_judge_e_value(math.log(5.0), [math.log(1.0), math.log(3.0)])
    assert float(judged) == pytest.approx(math.log((5.0 + 2.0) / 2))
    assert float(log_mean_exp([-math.inf, -math.inf])) == -math.inf
    assert float(log_mean_exp([1000.0, 1000.0])) == pytest.approx(1000.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"low": 1.0}, "judge ratio grid low: expected a number > 1, got 1.0"),
        ({"high": math.inf}, "judge ratio grid high: expected a number > 1"),
        ({"low": 10.0, "high": 5.0}, "judge ratio grid: high 5.0 is below low 10.0"),
        ({"points": 0}, "judge ratio grid points: expected an integer >= 1, got 0"),
    ],
)
def test_a_bad_grid_is_a_config_error(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RatioGrid(**kwargs)
