"""The rollback allowance of each backend: the sum of the delays it documents, reportable as
JSON, and on kube in step with what the install configures."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pytest_rollout.backends.base import RollbackAllowance
from pytest_rollout.backends.kube import plan, timing
from pytest_rollout.backends.local.cluster import ROUTER_APPLY_BUDGET, local_rollback_allowance
from pytest_rollout.errors import RolloutError
from pytest_rollout.options import DEFAULT_ENDPOINT_DELAY


def test_an_allowance_is_the_sum_of_its_named_parts_and_reads_back_from_json() -> None:
    allowance = RollbackAllowance.of({"endpoint_propagation": 1.0, "router_apply": 0.2})
    assert allowance.seconds == pytest.approx(1.2)
    text = json.dumps({"rollback_allowance": allowance.to_json()})
    assert json.loads(text)["rollback_allowance"] == {
        "seconds": 1.2,
        "parts": {"endpoint_propagation": 1.0, "router_apply": 0.2},
    }
    assert allowance.describe() == "1.2 s (endpoint_propagation 1 s + router_apply 0.2 s)"
    with pytest.raises(TypeError):
        allowance.parts["router_apply"] = 0.0  # type: ignore[index]


@pytest.mark.parametrize(
    ("seconds", "parts", "message"),
    [
        (1.0, {"a": 0.5}, "is not the sum"),
        (-1.0, {"a": -1.0}, "must be >= 0"),
        (0.0, {}, "must be >= 0"),
        (float("nan"), {"a": float("nan")}, "must be >= 0"),
    ],
)
def test_an_inconsistent_allowance_is_refused(
    seconds: float, parts: dict[str, float], message: str
) -> None:
    with pytest.raises(RolloutError, match=message):
        RollbackAllowance(seconds, parts)


@pytest.mark.parametrize("delay", [DEFAULT_ENDPOINT_DELAY, 0.0, 2.5])
def test_the_local_allowance_follows_the_endpoint_delay(delay: float) -> None:
    allowance = local_rollback_allowance(delay)
    assert dict(allowance.parts) == {
        "endpoint_propagation": delay,
        "router_apply": ROUTER_APPLY_BUDGET,
        "event_time_resolution": 0.0,
    }
    assert allowance.seconds == pytest.approx(delay + ROUTER_APPLY_BUDGET)


def _traefik_args() -> list[str]:
    for component in plan.components("amd64"):
        for obj in component.objects:
            if (obj["kind"], obj["metadata"]["name"]) == ("Deployment", "traefik"):
                container: dict[str, Any] = obj["spec"]["template"]["spec"]["containers"][0]
                return list(container["args"])
    raise AssertionError("no Traefik Deployment in the install set")


def test_the_kube_allowance_counts_the_throttle_traefik_is_given() -> None:
    allowance = timing.rollback_allowance()
    assert dict(allowance.parts) == {
        "event_time_resolution": 1.0,
        "endpoint_propagation": 1.0,
        "router_apply": timing.TRAEFIK_PROVIDERS_THROTTLE,
    }
    throttles = [
        a for a in _traefik_args() if a.startswith("--providers.providersThrottleDuration")
    ]
    assert throttles == ["--providers.providersThrottleDuration=200ms"]
    assert allowance.seconds == pytest.approx(2.2)


@pytest.mark.parametrize(
    ("seconds", "text"), [(0.2, "200ms"), (2.0, "2000ms"), (0.0, "0ms"), (0.001, "1ms")]
)
def test_durations_are_written_as_go_reads_them(seconds: float, text: str) -> None:
    assert timing.go_duration(seconds) == text


@pytest.mark.parametrize("seconds", [0.0005, -0.2])
def test_a_duration_go_would_round_is_refused(seconds: float) -> None:
    with pytest.raises(RolloutError, match="milliseconds"):
        timing.go_duration(seconds)
