"""The kube backend against a live cluster: installs, a namespace, releases, observation.

These run only with ``--rollout-backend=kube`` (CI's kind job runs them before the safety suite,
on each pinned Kubernetes version); elsewhere they skip, saying so.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from pytest_rollout._wait import wait_for
from pytest_rollout.backends.kube.cluster import KubeCluster
from pytest_rollout.backends.kube.namespace import KubeNamespace
from pytest_rollout.backends.kube.plan import plan_install
from pytest_rollout.config import TargetConfig
from pytest_rollout.errors import RolloutError
from pytest_rollout.load import BackgroundLoad
from pytest_rollout.options import RolloutOptions
from pytest_rollout.release import wait_serving

pytestmark = pytest.mark.slow  # starts real processes, or renders for seconds

WORKLOAD = "reference-service"
RATE = 40.0


@pytest.fixture
def kube(rollout_options: RolloutOptions, request: pytest.FixtureRequest) -> KubeCluster:
    if rollout_options.backend != "kube":
        pytest.skip("needs a live cluster: run with --rollout-backend=kube (CI's kind job does)")
    cluster = request.getfixturevalue("rollout_cluster")
    assert isinstance(cluster, KubeCluster)
    return cluster


@pytest.fixture
def namespace(kube: KubeCluster, request: pytest.FixtureRequest) -> KubeNamespace:
    """The plugin's own per-test namespace: on failure its evidence lands in the report."""
    created = request.getfixturevalue("rollout_namespace")
    assert isinstance(created, KubeNamespace)
    return created


# The first test pays for the session's cluster: creation, installs, the image build.
@pytest.mark.timeout(1500)
def test_the_cluster_is_at_the_pinned_installs_and_a_second_plan_is_empty(
    kube: KubeCluster,
) -> None:
    assert kube.api is not None
    again = plan_install(kube.api.cluster_state(), managed=kube.kind_name is not None)
    assert again.applied == (), again.describe()
    print(kube.describe())


def _deploy(namespace: KubeNamespace, target: TargetConfig) -> str:
    namespace.apply(target.load_manifests("bad-canary"))
    namespace.wait_rolled_out(WORKLOAD, timeout=300)
    url = namespace.route_url(WORKLOAD)
    wait_serving(url, target.serving, timeout=60)
    return url


@pytest.mark.timeout(900)
def test_a_good_release_walks_every_step_under_load(
    namespace: KubeNamespace,
    rollout_target: TargetConfig,
    rollout_load: Callable[..., BackgroundLoad],
    tmp_path: Path,
) -> None:
    url = _deploy(namespace, rollout_target)
    home = httpx.get(url + "/", timeout=5)
    assert home.status_code == 200
    assert home.headers["X-Version"] == "v1"
    order = httpx.post(url + "/checkout", json={"item": "book", "quantity": 1}, timeout=5)
    assert order.status_code == 200, order.text
    assert order.json()["order_id"] >= 1, order.text
    assert httpx.get(f"{url}/orders/{order.json()['order_id']}", timeout=5).status_code == 200

    load = rollout_load(url, rate=RATE, duration=400)
    handle = namespace.rollout(WORKLOAD)
    namespace.release(WORKLOAD, rollout_target.variant("good"))
    namespace.wait_rolled_out(WORKLOAD, timeout=400)
    log = load.stop()

    view = handle.status()
    assert (view.phase, view.aborted, view.canary_hash) == ("Healthy", False, None), view
    reasons = [event.reason for event in handle.events()]
    for reason in (
        "RolloutUpdated",
        "RolloutStepCompleted",
        "AnalysisRunSuccessful",
        "RolloutCompleted",
    ):
        assert reason in reasons, reasons
    runs = handle.analysis_runs()
    assert runs
    assert runs[-1].phase == "Successful", runs
    assert runs[-1].metric_phases == {"error-rate": "Successful"}
    served = log.by_version()
    assert served.get("v1"), served
    assert served.get("v2"), served

    memory = wait_for(
        lambda: {
            pod: b for pod, b in namespace.memory_by_pod().items() if pod.startswith(WORKLOAD)
        },
        what="cAdvisor memory of the service's pods in Prometheus",
        timeout=60,
        interval=2,
    )
    assert all(value > 1e6 for value in memory.values()), memory

    capture = tmp_path / "evidence"
    namespace.capture(capture)
    assert "RolloutCompleted" in (capture / "events.log").read_text()
    assert (capture / "rollouts.yaml").read_text().count("kind: Rollout") == 1
    assert "Successful" in (capture / "analysisruns.yaml").read_text()
    assert list((capture / "pods").glob("reference-service-*/app.log"))


@pytest.mark.timeout(900)
def test_a_bad_release_is_aborted_by_its_analysis(
    namespace: KubeNamespace,
    rollout_target: TargetConfig,
    rollout_load: Callable[..., BackgroundLoad],
) -> None:
    url = _deploy(namespace, rollout_target)
    load = rollout_load(url, rate=RATE, duration=300)
    handle = namespace.rollout(WORKLOAD)
    namespace.release(WORKLOAD, rollout_target.variant("bad"))
    paused = handle.wait_for_phase("Paused", timeout=180)
    assert paused.canary_weight == 5, paused
    assert paused.current_step_index == 1, paused
    view = handle.wait_for_phase("Degraded", timeout=240)
    load.stop()
    assert view.aborted, view
    assert view.canary_weight == 0, view
    assert 'Metric "error-rate" assessed Failed' in view.message, view.message
    reasons = [event.reason for event in handle.events()]
    assert "AnalysisRunFailed" in reasons, reasons
    assert "RolloutAborted" in reasons, reasons
    assert handle.analysis_runs()[-1].phase == "Failed"
    with pytest.raises(RolloutError, match="aborted"):
        namespace.wait_rolled_out(WORKLOAD, timeout=30)
