"""The e-value of the canary-versus-stable count test, vectorised with numpy.

Model (Lindon and Malek, "Anytime-Valid Inference for Multinomial Count Data", NeurIPS 2022,
section on time-inhomogeneous Poisson counting processes; used for canaries in Lindon, Sanden
and Shirikian, "Rapid Regression Detection in Software Deployments through Sequential Testing",
KDD 2022). Events of one kind (5xx answers, requests slower than a latency bound) arrive at the
canary and at the stable version with intensities ``rho * exp(delta_i) * lambda(t)``: a common,
arbitrary, time-varying ``lambda(t)``, the version's share ``rho`` of the traffic and a version
effect ``delta_i``. Given that an event happened, it came from the canary with probability
``theta = rho * r / (rho * r + 1 - rho)``, where ``r = exp(delta_canary - delta_stable)`` is the
canary's per-request event rate over the stable's. The null hypothesis ``r = 1`` gives
``theta = rho``: the paper's multinomial test with ``theta0 = rho``. The nuisance ``lambda(t)``
(load, time of day, a burst of errors on both versions) never enters.

In the paper the traffic share is fixed. A canary's share changes at every ``setWeight`` and
with the router's rounding, so the share is measured per interval ``k`` between two looks:
``rho_k = canary requests / all requests`` in that interval, and ``E_k`` events happened in it.
For a fixed ``r``, the likelihood ratio of the canary's events in interval ``k`` against the
null is ``r ** x_k / (1 + rho_k (r - 1)) ** E_k``, and its product over the intervals,

    M_t(r) = r ** X_t / prod_k (1 + rho_k (r - 1)) ** E_k,   X_t = canary events so far,

is a nonnegative martingale with ``M_0 = 1`` under the null: given ``E_k``, the canary's events
are Binomial(E_k, rho_k), whose ``E[r ** x]`` is exactly the denominator. (When requests rather
than Poisson arrivals are the units they are hypergeometric; sampling without replacement only
lowers the expectation of the convex ``r ** x``, so it stays a supermartingale.)

The paper mixes over ``theta`` with a Dirichlet (here Beta) distribution, which has a closed
form only while ``rho`` is fixed. With ``rho_k`` changing, the mixture is taken over ``r``
itself, with a discrete mixing distribution (:class:`RatioGrid`: equal weights on ratios spaced
geometrically): ``e_t = mean_j M_t(r_j)`` is then an exact finite sum, not an approximation of
an integral, and a mixture of martingales is a martingale. By Ville's inequality
``P(sup_t e_t >= 1/alpha) <= alpha`` under the null, however often one looks. It needs only
``X_t`` and the compensators ``S_t(r_j) = sum_k E_k log(1 + rho_k (r_j - 1))``; when ``rho`` is
fixed these reduce to the paper's two counts.

One-sided: every ``r`` the mixture weighs is ``> 1``. If the canary is *better*
(``theta_k < rho_k``), ``E[r ** x] = (1 + theta_k (r - 1)) ** E_k`` only shrinks for ``r > 1``,
so each ``M_t(r)`` and the mixture stay supermartingales: a better canary cannot produce
evidence, and only a canary that is worse than stable can be aborted. The judge's latency test
(the events are requests slower than a bound) is therefore a test of "the canary is not slower"
(no heavier tail at any bound), not of "the distributions are equal".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from pytest_rollout.errors import ConfigError

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class RatioGrid:
    """The mixing distribution of the rate ratio ``r``: ``points`` ratios from ``low`` to
    ``high``, spaced geometrically, with equal weights.

    It says which regressions the test expects. The defaults (16 ratios from 1.5x to 1000x
    worse, each 1.54x the last) cost ``log 16`` of evidence against knowing the ratio in
    advance: a canary failing 5x as often as stable at a 5% share is caught after about ten of
    its errors, one failing 50x after two or three.
    """

    low: float = 1.5
    high: float = 1000.0
    points: int = 16

    def __post_init__(self) -> None:
        for name in ("low", "high"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 1):
                raise ConfigError(f"judge ratio grid {name}: expected a number > 1, got {value!r}")
        if self.high < self.low:
            raise ConfigError(f"judge ratio grid: high {self.high!r} is below low {self.low!r}")
        if not (isinstance(self.points, int) and self.points >= 1):
            raise ConfigError(
                f"judge ratio grid points: expected an integer >= 1, got {self.points!r}"
            )

    @property
    def ratios(self) -> FloatArray:
        return np.geomspace(self.low, self.high, self.points)


def expected_canary_events(
    canary_events: npt.ArrayLike,
    stable_events: npt.ArrayLike,
    canary_requests: npt.ArrayLike,
    stable_requests: npt.ArrayLike,
) -> FloatArray:
    """``E_k * rho_k`` per interval: how many of the interval's events the null gives the canary.

    All arguments are per-interval increments (any matching shapes). An interval without
    requests has no share; it expects nothing (it can hold no events either). For reports: the
    test itself uses :func:`share_log_terms`.
    """
    return np.asarray(
        np.add(canary_events, stable_events) * traffic_share(canary_requests, stable_requests),
        dtype=np.float64,
    )


def traffic_share(canary_requests: npt.ArrayLike, stable_requests: npt.ArrayLike) -> FloatArray:
    """``rho_k``: the canary's share of each interval's requests (0 without requests)."""
    canary = np.asarray(canary_requests, dtype=np.float64)
    total = canary + np.asarray(stable_requests, dtype=np.float64)
    return np.divide(canary, total, out=np.zeros_like(total), where=total > 0)


def share_log_terms(
    canary_requests: npt.ArrayLike, stable_requests: npt.ArrayLike, grid: RatioGrid
) -> FloatArray:
    """``log(1 + rho_k (r_j - 1))`` per interval, with the grid's ratios on a new last axis.

    Times the interval's events ``E_k`` and summed over intervals, it is the compensator
    ``S_t(r_j)`` that :func:`log_e_value` takes.
    """
    share = traffic_share(canary_requests, stable_requests)
    return np.log1p(share[..., None] * (grid.ratios - 1.0))


def log_e_value(
    canary_events: npt.ArrayLike, compensator: npt.ArrayLike, grid: RatioGrid
) -> FloatArray:
    """``log e_t = log mean_j M_t(r_j)`` for cumulative canary events ``X`` (any shape) and
    the compensators ``S_t(r_j)`` (the same shape plus the grid's last axis).

    ``X = 0`` with no events gives ``0`` (``e = 1``); a canary doing far better than the null
    expects drives it towards ``-inf``.
    """
    x = np.asarray(canary_events, dtype=np.float64)[..., None]
    log_ratios = np.log(grid.ratios)
    return log_mean_exp(x * log_ratios - np.asarray(compensator, dtype=np.float64))


def log_mean_exp(log_values: npt.ArrayLike, axis: int = -1) -> FloatArray:
    """``log(mean(exp(v)))`` along ``axis``, without overflow: the log of an average of e-values.

    An average of e-processes (with weights fixed in advance) is an e-process, whatever their
    dependence; it is how the tests at several latency bounds, and the error and latency tests,
    are combined into one.
    """
    values = np.asarray(log_values, dtype=np.float64)
    top = np.max(values, axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)  # all -inf: the mean is 0, its log -inf
    with np.errstate(divide="ignore"):
        total = np.log(np.sum(np.exp(values - top), axis=axis))
    return np.asarray(total + np.squeeze(top, axis=axis) - math.log(values.shape[axis]))


def log_judge_e_value(log_errors: npt.ArrayLike, log_latency: npt.ArrayLike) -> FloatArray:
    """The judge's ``log e``: the error test and the latency test weigh one half each.

    ``log_latency`` has the latency bounds on its last axis (their e-values are averaged
    first); its other axes match ``log_errors``.
    """
    latency = log_mean_exp(log_latency)
    return log_mean_exp(np.stack(np.broadcast_arrays(log_errors, latency), axis=-1))
