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
For a fixed ``r``,

    M_t(r) = r ** X_t * exp(-(r - 1) * A_t),   X_t = canary events,   A_t = sum_k E_k * rho_k

is a nonnegative supermartingale with ``M_0 = 1`` under the null: given ``E_k``, the canary's
events are Binomial(E_k, rho_k) (hypergeometric when requests, not Poisson arrivals, are the
units; sampling without replacement only lowers the expectation of the convex ``r ** x``), and
``E[r ** x] = (1 + rho_k (r - 1)) ** E_k <= exp(E_k rho_k (r - 1))``. ``A_t`` is the number of
canary events the null expects, so ``X_t`` and ``A_t`` are all the test needs: two numbers, as
in the paper's two counts.

Mixing ``M_t(r)`` over a Gamma(shape ``a``, rate ``b``) distribution of ``r`` restricted to
``r >= 1`` keeps the supermartingale property and has the closed form

    e_t = exp(A) * b**a * Gamma(X + a) * Q(X + a, A + b)
          / (Gamma(a) * Q(a, b) * (A + b) ** (X + a))

with ``Q`` the regularised upper incomplete gamma function. By Ville's inequality
``P(sup_t e_t >= 1/alpha) <= alpha`` under the null, however often one looks.

One-sided: every ``r`` the mixture weighs is ``>= 1``. If the canary is *better*
(``theta_k < rho_k``), ``E[r ** x]`` only shrinks for ``r >= 1``, so each ``M_t(r)`` and the
mixture stay supermartingales: a better canary cannot produce evidence, and only a canary that
is worse than stable can be aborted. The same holds for the latency test below, which makes its
null "the canary is not slower" (no tail heavier), not "the distributions are equal".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import special

from pytest_rollout.errors import ConfigError

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class GammaMixture:
    """The mixing distribution of the rate ratio ``r``: Gamma(``shape``, ``rate``) on ``r >= 1``.

    Its mass says which regressions the test expects: the defaults (shape 1, rate 0.1: an
    exponential with mean 10, restricted to ``r >= 1``) spread it almost evenly over 1x to 20x
    worse with a tail beyond, so a canary failing 5x as often as stable is caught after about
    a dozen of its errors and one failing 50x after three.
    """

    shape: float = 1.0
    rate: float = 0.1

    def __post_init__(self) -> None:
        for name in ("shape", "rate"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ConfigError(f"judge mixture {name}: expected a number > 0, got {value!r}")

    @property
    def log_normaliser(self) -> float:
        """``log(b**a / (Gamma(a) * Q(a, b)))``: the restricted prior's constant."""
        upper = float(special.gammaincc(self.shape, self.rate))
        return (
            self.shape * math.log(self.rate) - float(special.gammaln(self.shape)) - math.log(upper)
        )


def expected_canary_events(
    canary_events: npt.ArrayLike,
    stable_events: npt.ArrayLike,
    canary_requests: npt.ArrayLike,
    stable_requests: npt.ArrayLike,
) -> FloatArray:
    """``E_k * rho_k`` per interval: the canary's share of the interval's events under the null.

    All arguments are per-interval increments (any matching shapes). An interval without
    requests has no share; it expects nothing (it can hold no events either).
    """
    events = np.add(canary_events, stable_events, dtype=np.float64)
    canary = np.asarray(canary_requests, dtype=np.float64)
    total = canary + np.asarray(stable_requests, dtype=np.float64)
    share = np.divide(canary, total, out=np.zeros_like(total), where=total > 0)
    return np.asarray(events * share, dtype=np.float64)


def log_e_value(
    canary_events: npt.ArrayLike,
    expected: npt.ArrayLike,
    mixture: GammaMixture,
    *,
    upper_bound: bool = False,
) -> FloatArray:
    """``log e_t`` of the mixture for cumulative canary events ``X`` and null expectation ``A``.

    Element-wise over arrays of any shape. ``-inf`` means no evidence at all (the canary did far
    better than the null expects); ``X = A = 0`` gives ``0`` (``e = 1``). ``upper_bound`` leaves
    out the factor ``Q(X + a, A + b) <= 1``: a cheap bound for screening many streams at once.
    """
    x = np.asarray(canary_events, dtype=np.float64)
    a = np.asarray(expected, dtype=np.float64)
    shape = mixture.shape + x
    scale = a + mixture.rate
    result = a + mixture.log_normaliser + special.gammaln(shape) - shape * np.log(scale)
    if upper_bound:
        return np.asarray(result, dtype=np.float64)
    with np.errstate(divide="ignore"):
        log_tail = np.log(special.gammaincc(shape, scale))
    return np.asarray(result + log_tail, dtype=np.float64)


def log_mean_exp(log_values: npt.ArrayLike, axis: int = -1) -> FloatArray:
    """``log(mean(exp(v)))`` along ``axis``, without overflow: the log of an average of e-values.

    An average of e-processes (with weights fixed in advance) is an e-process, whatever their
    dependence; it is how the tests at several latency bounds, and the error and latency tests,
    are combined into one.
    """
    values = np.asarray(log_values, dtype=np.float64)
    count = values.shape[axis]
    return np.asarray(special.logsumexp(values, axis=axis) - math.log(count), dtype=np.float64)


def log_judge_e_value(log_errors: npt.ArrayLike, log_latency: npt.ArrayLike) -> FloatArray:
    """The judge's ``log e``: the error test and the latency test weigh one half each.

    ``log_latency`` has the latency bounds on its last axis (their e-values are averaged
    first); its other axes match ``log_errors``.
    """
    latency = log_mean_exp(log_latency)
    return log_mean_exp(np.stack(np.broadcast_arrays(log_errors, latency), axis=-1))
