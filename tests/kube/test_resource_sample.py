"""The backend-neutral resource sample, and what the kube backend asks Prometheus for.

The kube side cannot run here (no cluster): its PromQL text and the choice of pods are what is
checked; the numbers come from cAdvisor on a real cluster.
"""

from __future__ import annotations

from typing import Any

from pytest_rollout.backends.base import ResourceSample
from pytest_rollout.backends.kube.namespace import memory_query, workload_pod


def test_a_sample_counts_ready_and_not_ready_pods() -> None:
    sample = ResourceSample(
        t=1.0, ready=4, not_ready=1, memory_bytes=30, per_pod={"a": 10, "b": 20}
    )
    assert sample.pods == 5


def test_kube_memory_is_the_containers_working_set_per_pod() -> None:
    assert memory_query("ns-1") == (
        'sum by (pod) (container_memory_working_set_bytes{namespace="ns-1", container!="", '
        'container!="POD"})'
    )


def _pod(owner_kind: str, owner: str) -> dict[str, Any]:
    return {"metadata": {"name": "p", "ownerReferences": [{"kind": owner_kind, "name": owner}]}}


def test_kube_counts_only_the_workloads_pods() -> None:
    workloads = {"reference-service": "Rollout"}
    assert workload_pod(_pod("ReplicaSet", "reference-service-6d4f9c"), workloads)
    assert not workload_pod(_pod("ReplicaSet", "postgres-7c9b8"), workloads)
    assert not workload_pod(_pod("Job", "reference-service-6d4f9c-2-pre"), workloads)
    assert not workload_pod({"metadata": {"name": "bare"}}, workloads)
