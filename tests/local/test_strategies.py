"""A basic canary and a blue-green Rollout, shaped like Argo Rollouts' own examples, run on the
local backend with real pods under real load, and driven through the Rollout handle."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import httpx
import pytest
import yaml

from pytest_rollout._wait import wait_for
from pytest_rollout.assertions import assert_in_order
from pytest_rollout.backends.base import Namespace, ResourceSample, RolloutHandle
from pytest_rollout.backends.local.namespace import LocalNamespace
from pytest_rollout.config import ServingCheck, TargetConfig
from pytest_rollout.load import BackgroundLoad, TrafficLog
from pytest_rollout.manifests import Manifest
from pytest_rollout.release import wait_serving

pytestmark = pytest.mark.slow  # starts real processes, or renders for seconds

WORKLOAD = "reference-service"
RATE = 60.0
# Endpoint changes reach the router after the backend's endpoint delay (1 s by default).
SETTLE = 1.5

LoadStarter = Callable[..., BackgroundLoad]
HOME = ServingCheck(method="GET", path="/", body=None, status=200, origin="the home page")


def _versions_behind(namespace: Namespace, service: str, requests: int = 8) -> set[str]:
    """The versions answering GET / through one Service's own address, once its endpoints
    (published after the endpoint delay) answer."""
    assert isinstance(namespace, LocalNamespace)
    url = namespace.service_url(service)
    wait_serving(url, HOME)
    return {httpx.get(url + "/", timeout=5.0).headers["X-Version"] for _ in range(requests)}


def _wait_pods(namespace: Namespace, count: int, what: str) -> ResourceSample:
    def sampled() -> ResourceSample | None:
        sample = namespace.resources()
        return sample if sample.pods == count else None

    return wait_for(sampled, what=what, timeout=30.0, interval=0.25)


def _wait_logged_past(load: BackgroundLoad, instant: float) -> None:
    def covered() -> bool:
        records = load.log.records
        return bool(records) and records[-1].sent >= instant

    wait_for(covered, what=f"the traffic log to reach {instant:.1f}", timeout=10.0, interval=0.1)


def _failures(log: TrafficLog) -> dict[str, int]:
    failures = {f"HTTP {code}": n for code, n in log.by_status().items() if code >= 500}
    failures.update(log.by_error())
    return failures


def _start_load(namespace: Namespace, rollout_load: LoadStarter) -> BackgroundLoad:
    url = namespace.route_url(WORKLOAD)
    wait_serving(url, HOME)
    load = rollout_load(url, rate=RATE, duration=90.0)
    wait_for(lambda: len(load.log) >= RATE, what="a second of load", timeout=10.0, interval=0.1)
    return load


def _reasons(rollout: RolloutHandle) -> list[str]:
    return [event.reason for event in rollout.events()]


@pytest.mark.timeout(120)
def test_a_basic_canary_serves_by_replica_ratio_and_waits_for_promote(
    rollout_namespace: Namespace, rollout_target: TargetConfig, rollout_load: LoadStarter
) -> None:
    rollout_namespace.apply(rollout_target.load_manifests("basic-canary"))
    rollout_namespace.wait_rolled_out(WORKLOAD, timeout=60)
    rollout = rollout_namespace.rollout(WORKLOAD)
    load = _start_load(rollout_namespace, rollout_load)

    rollout_namespace.release(WORKLOAD, rollout_target.variant("good"))
    paused = rollout.wait_for_phase("Paused", timeout=60)
    assert (paused.current_step_index, paused.message) == (1, "CanaryPauseStep"), paused
    # No traffic router: weight is a share of pods, 1 canary beside 3 stable, and the Service
    # that selects every pod spreads requests over all four.
    assert paused.canary_weight == 0, paused
    # The stable pod scaled away for the canary terminates for its preStop pause first.
    pods = _wait_pods(rollout_namespace, 4, "the scaled-down stable pod to terminate")
    assert (pods.ready, pods.not_ready) == (4, 0), pods
    start = time.time() + SETTLE
    _wait_logged_past(load, start + 3.0)
    share = load.log.share("v2", start, start + 3.0)
    assert 0.15 <= share <= 0.35, (
        f"v2 served {share:.1%} of {load.log.count(start, start + 3.0)} requests while 1 of 4 "
        f"pods ran it: {load.log.by_version(start, start + 3.0)}"
    )
    # The stable and canary Services each select one ReplicaSet (Argo sets their hash).
    assert _versions_behind(rollout_namespace, "reference-service-stable") == {"v1"}
    assert _versions_behind(rollout_namespace, "reference-service-canary") == {"v2"}

    rollout.promote()
    done = rollout.wait_for_phase("Healthy", timeout=60)
    assert done.stable_hash == done.canary_hash, done
    end = time.time() + SETTLE
    _wait_logged_past(load, end + 2.0)
    log = load.stop()
    assert log.by_version(end, end + 2.0).keys() == {"v2"}, log.by_version(end, end + 2.0)
    assert not _failures(log), f"client-visible failures: {_failures(log)} of {len(log)}"
    assert_in_order(
        _reasons(rollout),
        [
            "RolloutStepCompleted",  # setWeight: 25
            "RolloutPaused",
            "RolloutStepCompleted",  # pause, by promote
            "RolloutCompleted",
        ],
        context="basic canary events",
    )


def _quick_abort_scale_down(manifests: list[Manifest]) -> list[Manifest]:
    """Argo's example with abortScaleDownDelaySeconds: 2, so that an aborted preview stack is
    gone within the test (the default keeps it 30 s)."""
    changed = []
    for manifest in manifests:
        if manifest.kind == "Rollout":
            body = yaml.safe_load(yaml.safe_dump(dict(manifest.body)))
            body["spec"]["strategy"]["blueGreen"]["abortScaleDownDelaySeconds"] = 2
            manifest = dataclasses.replace(manifest, body=body)
        changed.append(manifest)
    return changed


@pytest.mark.timeout(120)
def test_a_blue_green_rollout_waits_for_promote_and_survives_abort_and_retry(
    rollout_namespace: Namespace, rollout_target: TargetConfig, rollout_load: LoadStarter
) -> None:
    manifests = _quick_abort_scale_down(list(rollout_target.load_manifests("blue-green")))
    rollout_namespace.apply(manifests)
    rollout_namespace.wait_rolled_out(WORKLOAD, timeout=60)
    rollout = rollout_namespace.rollout(WORKLOAD)
    load = _start_load(rollout_namespace, rollout_load)

    released_at = time.time()
    rollout_namespace.release(WORKLOAD, rollout_target.variant("good"))
    paused = rollout.wait_for_phase("Paused", timeout=60)
    assert paused.message == "BlueGreenPause", paused
    old, new = paused.stable_hash, paused.canary_hash
    assert (paused.active_hash, paused.preview_hash) == (old, new), paused
    # Both stacks at full size; production still on the old one, the new one on preview.
    pods = rollout_namespace.resources()
    assert (pods.ready, pods.not_ready) == (4, 0), pods
    assert all(rss > 0 for rss in pods.per_pod.values()), pods
    assert _versions_behind(rollout_namespace, "reference-service-preview") == {"v2"}

    rollout.abort()
    aborted = rollout.wait_for_phase("Degraded", timeout=30)
    assert aborted.message == "RolloutAborted: Rollout aborted update to revision 2", aborted
    assert aborted.active_hash == old, aborted
    _wait_pods(rollout_namespace, 2, "the aborted preview stack to be gone (after 2 s)")

    rollout.retry()
    again = rollout.wait_for_phase("Paused", timeout=60)
    assert (again.aborted, again.active_hash) == (False, old), again
    promoted_at = time.time()
    assert load.log.share("v2", released_at, promoted_at) == 0.0

    rollout.promote()
    done = rollout.wait_for_phase("Healthy", timeout=30)
    assert (done.active_hash, done.preview_hash, done.stable_hash) == (new, new, new), done
    switched = time.time() + SETTLE
    _wait_logged_past(load, switched + 2.0)
    log = load.stop()
    assert log.by_version(switched, switched + 2.0).keys() == {"v2"}
    assert not _failures(log), f"client-visible failures: {_failures(log)} of {len(log)}"
    # The previous stack stays up for scaleDownDelaySeconds (30 s) after the switch.
    assert rollout_namespace.resources().pods == 4
    assert_in_order(
        _reasons(rollout),
        [
            "SwitchService",  # preview -> new
            "RolloutPaused",
            "RolloutAborted",
            "ScalingReplicaSet",  # the aborted stack down after 2 s
            "RolloutPaused",
            "SwitchService",  # active -> new, on promote
            "RolloutCompleted",
        ],
        context="blue-green events",
    )
