"""Experiment 1: the readiness probe is load-bearing.

The same slow-booting release (its port is open but answers nothing for its boot time) rolls
through the same Deployment under the same open-loop load twice: once without a readinessProbe,
once with one. Without the probe every new pod takes traffic the moment its process starts and
the clients see 502s; with it, no request fails.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pytest_rollout.assertions import (
    assert_load_held,
    assert_readiness_probe_load_bearing,
    assert_rollout_inside_load,
    assert_version_served,
    readiness_table,
)
from pytest_rollout.backends.base import Cluster, namespace_name
from pytest_rollout.config import TargetConfig
from pytest_rollout.evidence import Evidence
from pytest_rollout.experiments import ReleaseRun, release_under_load
from pytest_rollout.load import BackgroundLoad

RATE = 300.0  # req/s, the same for both runs
DURATION = 28.0  # s of load per run: the probed rollout of 3 slow pods fits with room to spare
MIN_REQUESTS = 5_000
WARMUP_REQUESTS = 300
ROLLOUT_TIMEOUT = 60.0
VARIANT = "slow-boot"
WORKLOAD = "reference-service"


@pytest.mark.rollout
def test_readiness_probe_prevents_errors_during_rollout(
    rollout_cluster: Cluster,
    rollout_target: TargetConfig,
    rollout_load: Callable[..., BackgroundLoad],
    rollout_evidence: Callable[[str], Evidence],
    request: pytest.FixtureRequest,
) -> None:
    evidence = rollout_evidence("readiness-probe")
    variant = rollout_target.variant(VARIANT)
    new_version = variant.env["SERVICE_VERSION"]

    def run(label: str, manifest_set: str) -> ReleaseRun:
        namespace = rollout_cluster.create_namespace(namespace_name(f"{request.node.name}-{label}"))
        try:
            return release_under_load(
                namespace,
                label=label,
                manifests=rollout_target.load_manifests(manifest_set),
                workload=WORKLOAD,
                route=WORKLOAD,
                variant=variant,
                start_load=lambda url: rollout_load(url, rate=RATE, duration=DURATION),
                warmup_requests=WARMUP_REQUESTS,
                rollout_timeout=ROLLOUT_TIMEOUT,
            )
        finally:
            namespace.delete()

    without_probe = run("without-probe", "readiness-without-probe")
    with_probe = run("with-probe", "readiness-with-probe")

    evidence.record(
        requests_without_probe=len(without_probe.log),
        errors_without_probe=without_probe.failure_count(),
        requests_with_probe=len(with_probe.log),
        errors_with_probe=with_probe.failure_count(),
        errors_by_status_without_probe=without_probe.failures(),
        errors_by_status_with_probe=with_probe.failures(),
        rate=RATE,
        duration_s=DURATION,
        runs={"without_probe": without_probe.summary(), "with_probe": with_probe.summary()},
    )
    evidence.events.extend(["# without probe", *without_probe.events])
    evidence.events.extend(["# with probe", *with_probe.events])
    evidence.attach("traffic-without-probe.csv", without_probe.log.to_csv)
    evidence.attach("traffic-with-probe.csv", with_probe.log.to_csv)
    print("\n" + readiness_table(with_probe, without_probe))

    for release in (without_probe, with_probe):
        assert_load_held(release)
        assert_rollout_inside_load(release)
        assert_version_served(release, new_version)
    assert_readiness_probe_load_bearing(with_probe, without_probe, min_requests=MIN_REQUESTS)
