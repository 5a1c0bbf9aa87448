"""How late the kube backend's data plane may act on a rollback, part by part.

An experiment reads the abort from the Rollout's ``RolloutAborted`` event and must allow for
what stands between that event and the Gateway sending nothing more to the canary. On this
backend that is, in order (Argo Rollouts v1.9.1, Traefik v3.6):

``event_time_resolution``
    Argo Rollouts records events through client-go's ``tools/record`` recorder, which writes
    ``core/v1`` Events with whole-second ``firstTimestamp`` and no ``eventTime``. Read through
    ``events.k8s.io/v1`` that is ``deprecatedFirstTimestamp``: the abort happened up to 1 s
    after the time it shows. (Events that carry ``eventTime``, in microseconds, are read
    from it; the bound must hold for those that do not.)
``endpoint_propagation``
    The abort is decided after the reconcile's traffic step (``rollout/canary.go``:
    ``reconcileTrafficRouting`` runs before ``reconcileAnalysisRuns``), so weight 0 is set by the
    next reconcile, which the controller's own status update enqueues (1 ms base delay,
    ``utils/queue/queue.go``); the plugin's HTTPRoute update then reaches Traefik through its
    watch. The same 1 s the local backend allows for an EndpointSlice change to reach its
    router: a budget, not a measurement.
``router_apply``
    Traefik applies a provider's new configuration no sooner than ``providersThrottleDuration``
    after the previous one (``pkg/provider/aggregator/aggregator.go``; default 2 s, set in
    ``cmd/configuration.go``). The install lowers it to :data:`TRAEFIK_PROVIDERS_THROTTLE`.
"""

from __future__ import annotations

from pytest_rollout.backends.base import RollbackAllowance
from pytest_rollout.errors import RolloutError

TRAEFIK_PROVIDERS_THROTTLE = 0.2
"""Seconds: Traefik's ``--providers.providersThrottleDuration`` in the installed Deployment."""
EVENT_TIME_RESOLUTION = 1.0
WATCH_PROPAGATION = 1.0


def rollback_allowance() -> RollbackAllowance:
    return RollbackAllowance.of(
        {
            "event_time_resolution": EVENT_TIME_RESOLUTION,
            "endpoint_propagation": WATCH_PROPAGATION,
            "router_apply": TRAEFIK_PROVIDERS_THROTTLE,
        }
    )


def go_duration(seconds: float) -> str:
    """A Go ``time.Duration`` string for whole milliseconds: ``0.2`` -> ``200ms``."""
    milliseconds = round(seconds * 1000)
    if milliseconds < 0 or abs(milliseconds - seconds * 1000) > 1e-6:
        raise RolloutError(f"{seconds!r} s is not a whole, non-negative number of milliseconds")
    return f"{milliseconds}ms"
