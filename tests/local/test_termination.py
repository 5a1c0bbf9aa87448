"""Pod termination on the local backend behaves as on Kubernetes: the endpoint removal reaches
the router only after the endpoint delay, so a pod that stops serving on SIGTERM drops the
requests sent to it in that window — unless a preStop pause keeps it serving until then."""

from __future__ import annotations

import copy
import dataclasses

import pytest

from pytest_rollout import Experiment
from pytest_rollout.manifests import Manifest, ManifestSet

# Runs load under a release, whose generator must keep its schedule: alone, not beside others.
pytestmark = [pytest.mark.slow, pytest.mark.serial]


def _without_pre_stop(manifests: list[Manifest]) -> list[Manifest]:
    changed = []
    for manifest in manifests:
        if manifest.kind == "Deployment":
            body = copy.deepcopy(dict(manifest.body))
            for container in body["spec"]["template"]["spec"]["containers"]:
                container.pop("lifecycle", None)
            manifest = dataclasses.replace(manifest, body=body)
        changed.append(manifest)
    return changed


@pytest.mark.parametrize("pre_stop", [False, True], ids=["no-prestop", "prestop"])
def test_pre_stop_pause_covers_endpoint_propagation(rollout: Experiment, pre_stop: bool) -> None:
    manifests = list(rollout.manifests("readiness-with-probe"))
    if not pre_stop:
        manifests = _without_pre_stop(manifests)
    run = rollout.release("good", manifests=ManifestSet(manifests), tail=3.0)
    run.assert_load_held()
    summary = run.summary()
    failures = run.failure_count(run.released_at, None)
    if pre_stop:
        assert failures == 0, f"a preStop pause should cover propagation: {summary}"
    else:
        assert failures > 0, (
            f"pods stopping on SIGTERM with no preStop pause should drop the requests the "
            f"router still sends them during the endpoint delay; none failed: {summary}"
        )
