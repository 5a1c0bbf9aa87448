"""The count test's e-value: its closed form, and the supermartingale property it rests on."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, stats

from pytest_rollout.errors import ConfigError
from pytest_rollout.judge.statistic import (
    GammaMixture,
    expected_canary_events,
    log_e_value,
    log_judge_e_value,
    log_mean_exp,
)

MIXTURE = GammaMixture()


def _integrated(x: float, a: float, mixture: GammaMixture) -> float:
    """The mixture by numerical integration: E over r ~ Gamma(shape, rate) | r >= 1."""
    prior = stats.gamma(mixture.shape, scale=1 / mixture.rate)

    def integrand(r: float) -> float:
        return float(math.exp(x * math.log(r) - (r - 1) * a) * prior.pdf(r))

    value, _ = integrate.quad(integrand, 1.0, np.inf, limit=200)
    return float(value) / float(prior.sf(1.0))


@pytest.mark.parametrize(
    ("x", "a", "mixture"),
    [
        (0, 0.0, MIXTURE),
        (1, 0.05, MIXTURE),
        (3, 0.15, MIXTURE),
        (12, 2.4, MIXTURE),
        (5, 9.0, MIXTURE),
        (7, 1.0, GammaMixture(shape=2.0, rate=0.5)),
        (2.5, 0.3, GammaMixture(shape=0.5, rate=0.05)),
    ],
)
def test_the_closed_form_is_the_mixture_integral(x: float, a: float, mixture: GammaMixture) -> None:
    closed = math.exp(float(log_e_value(x, a, mixture)))
    assert closed == pytest.approx(_integrated(x, a, mixture), rel=1e-6)


def test_nothing_seen_is_no_evidence() -> None:
    assert float(log_e_value(0, 0.0, MIXTURE)) == pytest.approx(0.0, abs=1e-12)


def _expected_e_after(
    events: int, share: float, canary_probability: float, x0: int, a0: float
) -> tuple[float, float]:
    """E[e] after one interval of ``events`` events, each the canary's with the given
    probability, starting from ``x0`` canary events and expectation ``a0``."""
    xs = np.arange(events + 1)
    # Written out: scipy's binomial pmf overflows for probabilities near the smallest float.
    p = canary_probability
    pmf = np.array([math.comb(events, int(x)) * p**x * (1 - p) ** (events - x) for x in xs])
    values = np.exp(log_e_value(x0 + xs, a0 + events * share, MIXTURE))
    return float(np.sum(pmf * values)), math.exp(float(log_e_value(x0, a0, MIXTURE)))


@settings(max_examples=150, deadline=None)
@given(
    events=st.integers(0, 60),
    share=st.floats(0.01, 0.99),
    better=st.floats(0.0, 1.0),
    x0=st.integers(0, 20),
    a0=st.floats(0.0, 20.0),
)
def test_no_worse_canary_cannot_grow_the_e_value_in_expectation(
    events: int, share: float, better: float, x0: int, a0: float
) -> None:
    # The canary's share of events is at most its traffic share: equal (A/A) or better.
    probability = share * better
    after, before = _expected_e_after(events, share, probability, x0, a0)
    assert after <= before * (1 + 1e-9) + 1e-300


def test_a_worse_canary_grows_it() -> None:
    after, before = _expected_e_after(20, 0.05, 0.5, 0, 0.0)
    assert after > 100 * before


def test_hypergeometric_events_are_covered_too() -> None:
    # Requests as units: 40 requests, 5 of them the canary's, 6 errors among all 40.
    population, canary, errors = 40, 5, 6
    xs = np.arange(errors + 1)
    pmf = stats.hypergeom.pmf(xs, population, canary, errors)
    values = np.exp(log_e_value(xs, errors * canary / population, MIXTURE))
    assert float(np.sum(pmf * values)) <= 1.0


def test_evidence_grows_with_canary_events_and_shrinks_with_the_expectation() -> None:
    xs = log_e_value(np.arange(10), 1.0, MIXTURE)
    assert np.all(np.diff(xs) > 0)
    expectations = log_e_value(5, np.linspace(0.1, 10, 20), MIXTURE)
    assert np.all(np.diff(expectations) < 0)


def test_a_far_better_canary_has_no_evidence_at_all() -> None:
    assert float(log_e_value(0, 5000.0, MIXTURE)) == -math.inf


def test_the_upper_bound_bounds() -> None:
    x, a = np.meshgrid(np.arange(30), np.linspace(0, 30, 31))
    exact = log_e_value(x, a, MIXTURE)
    bound = log_e_value(x, a, MIXTURE, upper_bound=True)
    assert np.all(bound >= exact)


def test_expected_events_follow_each_interval_s_traffic_share() -> None:
    expected = expected_canary_events([1, 0, 3], [9, 0, 1], [5, 0, 50], [95, 0, 50])
    assert expected.tolist() == pytest.approx([0.5, 0.0, 2.0])


def test_averages_of_e_values_in_log_space() -> None:
    assert float(log_mean_exp([0.0, math.log(3.0)])) == pytest.approx(math.log(2.0))
    judged = log_judge_e_value(math.log(5.0), [math.log(1.0), math.log(3.0)])
    assert float(judged) == pytest.approx(math.log((5.0 + 2.0) / 2))
    assert float(log_mean_exp([-math.inf, -math.inf])) == -math.inf


@pytest.mark.parametrize(("field", "value"), [("shape", 0), ("rate", -1.0), ("rate", math.nan)])
def test_a_bad_mixture_is_a_config_error(field: str, value: float) -> None:
    with pytest.raises(ConfigError, match=f"judge mixture {field}: expected a number > 0"):
        GammaMixture(**{field: value})
