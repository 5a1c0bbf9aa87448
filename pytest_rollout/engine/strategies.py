"""One entry point for every strategy: reconcile a Rollout, and ``kubectl argo rollouts``'s
commands on its status, whichever of canary or blueGreen it uses."""

from __future__ import annotations

from pytest_rollout.engine import bluegreen, canary
from pytest_rollout.engine.rollout_model import Rollout
from pytest_rollout.engine.status import (
    Decision,
    Observations,
    RolloutStatus,
    abort,
    promote_full,
    retry,
)

__all__ = ["abort", "promote", "retry", "step"]


def step(
    status: RolloutStatus, rollout: Rollout, observations: Observations, now: float
) -> Decision:
    """One reconciliation by the Rollout's strategy (:func:`.canary.step`,
    :func:`.bluegreen.step`)."""
    if rollout.spec.blue_green is not None:
        return bluegreen.step(status, rollout, observations, now)
    return canary.step(status, rollout, observations, now)


def promote(status: RolloutStatus, rollout: Rollout, *, full: bool = False) -> RolloutStatus:
    """``kubectl argo rollouts promote [--full]``."""
    if full:
        return promote_full(status)
    if rollout.spec.blue_green is not None:
        return bluegreen.promote(status)
    return canary.promote(status, rollout)
