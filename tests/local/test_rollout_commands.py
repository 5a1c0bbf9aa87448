"""Manual promote, abort and retry of a Rollout on the local backend, with real pods."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from pytest_rollout.assertions import assert_in_order
from pytest_rollout.backends.base import Namespace
from pytest_rollout.config import TargetConfig
from pytest_rollout.manifests import Manifest
from pytest_rollout.release import wait_serving

pytestmark = pytest.mark.slow  # starts real processes, or renders for seconds

WORKLOAD = "reference-service"
STEPS = [{"setWeight": 20}, {"pause": {}}]


def _manual_gate(target: TargetConfig) -> list[Manifest]:
    """The bad-canary set with its steps replaced by a 20% step and an indefinite pause."""
    manifests = []
    for manifest in target.load_manifests("bad-canary"):
        if manifest.kind == "Rollout":
            body = yaml.safe_load(yaml.safe_dump(dict(manifest.body)))
            body["spec"]["strategy"]["canary"]["steps"] = STEPS
            body["spec"]["replicas"] = 2
            manifest = dataclasses.replace(manifest, body=body)
        manifests.append(manifest)
    return manifests


@pytest.mark.timeout(120)
def test_abort_retry_and_promote(
    rollout_namespace: Namespace, rollout_target: TargetConfig
) -> None:
    rollout_namespace.apply(_manual_gate(rollout_target))
    rollout_namespace.wait_rolled_out(WORKLOAD, timeout=60)
    wait_serving(rollout_namespace.route_url(WORKLOAD), rollout_target.serving)
    rollout = rollout_namespace.rollout(WORKLOAD)

    rollout_namespace.release(WORKLOAD, rollout_target.variant("good"))
    paused = rollout.wait_for_phase("Paused", timeout=60)
    assert (paused.current_step_index, paused.canary_weight) == (1, 20), paused

    rollout.abort()
    aborted = rollout.wait_for_phase("Degraded", timeout=30)
    assert aborted.aborted, aborted
    assert aborted.canary_weight == 0, aborted
    assert aborted.message.startswith("RolloutAborted: Rollout aborted update to revision 2"), (
        aborted
    )

    rollout.retry()
    again = rollout.wait_for_phase("Paused", timeout=60)
    assert not again.aborted, again
    assert again.canary_weight == 20, again

    rollout.promote()
    done = rollout.wait_for_phase("Healthy", timeout=60)
    assert done.stable_hash == done.canary_hash, done
    reasons = [e.reason for e in rollout.events()]
    # After the abort: the retried canary pauses again, the promote completes the pause step,
    # then the whole update. (kubectl's promote clears the pause in the status itself, so the
    # controller records no RolloutResumed for it.)
    assert_in_order(
        reasons,
        [
            "RolloutPaused",
            "RolloutAborted",
            "RolloutStepCompleted",
            "RolloutPaused",
            "RolloutStepCompleted",
            "RolloutCompleted",
        ],
        context="Rollout events after abort, retry and promote",
    )
