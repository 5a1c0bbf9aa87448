"""Pod termination on the local backend behaves as on Kubernetes: the endpoint removal reaches
the router only after the propagation delay, so a pod that stops serving on SIGTERM drops the
requests sent to it in that window — unless a preStop pause keeps it serving until then."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable

import pytest

from pytest_rollout.backends.base import Cluster, namespace_name
from pytest_rollout.config import TargetConfig
from pytest_rollout.experiments import ReleaseRun, release_under_load
from pytest_rollout.load import BackgroundLoad
from pytest_rollout.manifests import Manifest

WORKLOAD = "reference-service"


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
def test_pre_stop_pause_covers_endpoint_propagation(
    rollout_cluster: Cluster,
    rollout_target: TargetConfig,
    rollout_load: Callable[..., BackgroundLoad],
    request: pytest.FixtureRequest,
    pre_stop: bool,
) -> None:
    manifests = list(rollout_target.load_manifests("readiness-with-probe"))
    if not pre_stop:
        manifests = _without_pre_stop(manifests)
    namespace = rollout_cluster.create_namespace(namespace_name(request.node.name))
    try:
        run: ReleaseRun = release_under_load(
            namespace,
            label="prestop" if pre_stop else "no-prestop",
            manifests=manifests,
            workload=WORKLOAD,
            route=WORKLOAD,
            variant=rollout_target.variant("good"),
            start_load=lambda url: rollout_load(url, rate=200.0, duration=14.0),
            warmup_requests=100,
            rollout_timeout=60.0,
        )
    finally:
        namespace.delete()
    summary = run.summary()
    assert run.rolled_out_at < run.log.started_at + run.log.duration, summary
    if pre_stop:
        assert run.failure_count() == 0, f"a preStop pause should cover propagation: {summary}"
    else:
        assert run.failure_count() > 0, (
            f"pods stopping on SIGTERM with no preStop pause should drop the requests the "
            f"router still sends them during the endpoint delay; none failed: {summary}"
        )
