"""Experiments on a metric-gated canary (Argo Rollouts semantics) under steady open-loop load.

Each releases a named variant of the reference service and then takes no action: what happens
next is the Rollout's own doing, and the assertions read it from the traffic log and the
Rollout's events.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pytest_rollout.assertions import (
    assert_contained,
    assert_event_order,
    assert_load_held,
    assert_served_throughout,
    blast_radius,
)
from pytest_rollout.backends.base import Namespace
from pytest_rollout.config import TargetConfig
from pytest_rollout.engine.rollout_model import SetWeight, parse_rollout
from pytest_rollout.errors import InconclusiveError
from pytest_rollout.evidence import Evidence
from pytest_rollout.experiments import CanaryRun, canary_release_under_load
from pytest_rollout.load import BackgroundLoad
from pytest_rollout.manifests import ManifestSet

RATE = 200.0
MAX_LOAD_S = 85.0  # the schedule's bound; every run stops it as soon as it has its evidence
TIMEOUT = 75.0
TAIL = 9.0  # seconds of load kept on after the Rollout settles: the "after" of each claim
ROLLBACK_ALLOWANCE = 3.0
"""Seconds allowed between the abort and the data plane sending nothing to the canary: the
router applies a weight change after the endpoint delay (1 s by default), as a Gateway does."""
WORKLOAD = "reference-service"
STABLE_VERSION = "v1"


def _release(
    namespace: Namespace,
    target: TargetConfig,
    load: Callable[..., BackgroundLoad],
    *,
    manifest_set: str,
    variant: str,
    until_phase: str,
) -> tuple[CanaryRun, ManifestSet]:
    manifests = target.load_manifests(manifest_set)
    run = canary_release_under_load(
        namespace,
        label=f"{manifest_set}/{variant}",
        manifests=manifests,
        rollout=WORKLOAD,
        route=WORKLOAD,
        variant=target.variant(variant),
        start_load=lambda url: load(url, rate=RATE, duration=MAX_LOAD_S),
        until_phase=until_phase,
        timeout=TIMEOUT,
        tail=TAIL,
    )
    assert_load_held(run)
    return run, manifests


def _first_weight(manifests: ManifestSet) -> int:
    """The first traffic step of the Rollout: the blast radius it promises."""
    rollout = parse_rollout(manifests.get("Rollout", WORKLOAD))
    assert rollout.spec.canary is not None
    return next(s.weight for s in rollout.spec.canary.steps if isinstance(s, SetWeight))


def _version(target: TargetConfig, variant: str) -> str:
    return target.variant(variant).env["SERVICE_VERSION"]


def _attach(evidence: Evidence, run: CanaryRun) -> None:
    evidence.events.extend(run.event_lines())
    evidence.attach("traffic.csv", run.log.to_csv)


def _assert_contained(
    run: CanaryRun, radius: dict[str, float | int], manifests: ManifestSet
) -> None:
    """Within the first traffic step's share, and nothing after the rollback (observed over the
    tail, less the allowance and a second of margin)."""
    assert_contained(
        run,
        radius,
        max_share=_first_weight(manifests) / 100,
        min_after=int(RATE * (TAIL - ROLLBACK_ALLOWANCE - 1)),
    )


@pytest.mark.rollout
def test_bad_canary_is_contained_and_rolled_back(
    rollout_namespace: Namespace,
    rollout_target: TargetConfig,
    rollout_load: Callable[..., BackgroundLoad],
    rollout_evidence: Callable[[str], Evidence],
) -> None:
    evidence = rollout_evidence("bad-canary")
    run, manifests = _release(
        rollout_namespace,
        rollout_target,
        rollout_load,
        manifest_set="bad-canary",
        variant="bad",
        until_phase="Degraded",
    )
    bad = _version(rollout_target, "bad")
    radius = blast_radius(run, bad, allowance=ROLLBACK_ALLOWANCE)
    evidence.record(**radius, events=run.event_lines(), rollout_message=run.view.message)
    _attach(evidence, run)

    assert_event_order(
        run,
        [
            "RolloutUpdated",
            "RolloutStepCompleted",
            "RolloutPaused",
            "AnalysisRunRunning",
            "AnalysisRunFailed",
            "RolloutAborted",
        ],
    )
    assert run.view.message.startswith("RolloutAborted: "), run.view
    _assert_contained(run, radius, manifests)
    assert_served_throughout(run, STABLE_VERSION)


@pytest.mark.rollout
def test_smoke_gate_keeps_a_failing_release_from_production(
    rollout_namespace: Namespace,
    rollout_target: TargetConfig,
    rollout_load: Callable[..., BackgroundLoad],
    rollout_evidence: Callable[[str], Evidence],
) -> None:
    evidence = rollout_evidence("smoke-gate")
    run, _ = _release(
        rollout_namespace,
        rollout_target,
        rollout_load,
        manifest_set="smoke-gate",
        variant="smoke-fail",
        until_phase="Degraded",
    )
    failing = _version(rollout_target, "smoke-fail")
    production = run.log.by_version().get(failing, 0)
    smoke = [r for r in run.analysis_runs if "home-page" in r.metric_phases]
    evidence.record(
        canary_production_requests=production,
        total_requests=len(run.log),
        smoke_phase=smoke[0].phase if smoke else None,
        rollout_message=run.view.message,
    )
    _attach(evidence, run)

    assert smoke, f"no smoke-check AnalysisRun ran: {run.analysis_runs}"
    assert smoke[0].phase in ("Error", "Failed"), smoke[0]
    assert_event_order(run, ["RolloutUpdated", "AnalysisRunRunning", "RolloutAborted"])
    assert "setWeight" not in " ".join(
        e.message for e in run.events if e.reason == "RolloutStepCompleted"
    ), "a traffic step completed before the smoke check failed:\n" + "\n".join(run.event_lines())
    assert production == 0, (
        f"{production} of {len(run.log)} production requests reached the release that failed "
        f"its smoke check (expected 0)"
    )


@pytest.mark.rollout
def test_smoke_gate_lets_a_good_release_reach_its_first_step(
    rollout_namespace: Namespace,
    rollout_target: TargetConfig,
    rollout_load: Callable[..., BackgroundLoad],
) -> None:
    run, manifests = _release(
        rollout_namespace,
        rollout_target,
        rollout_load,
        manifest_set="smoke-gate",
        variant="good",
        until_phase="Paused",
    )
    smoke = [r for r in run.analysis_runs if "home-page" in r.metric_phases]
    assert smoke, f"no smoke-check AnalysisRun ran: {run.analysis_runs}"
    assert smoke[0].phase == "Successful", smoke[0]
    assert run.view.canary_weight == _first_weight(manifests), run.view
    served = run.log.by_version().get(_version(rollout_target, "good"), 0)
    if served == 0:
        raise InconclusiveError(
            f"the good release reached weight {run.view.canary_weight} but served no request "
            f"in {TAIL:g}s of load after it"
        )


@pytest.mark.rollout
def test_business_metric_catches_a_200_ok_broken_release(
    rollout_namespace: Namespace,
    rollout_target: TargetConfig,
    rollout_load: Callable[..., BackgroundLoad],
    rollout_evidence: Callable[[str], Evidence],
) -> None:
    evidence = rollout_evidence("business-gate")
    run, manifests = _release(
        rollout_namespace,
        rollout_target,
        rollout_load,
        manifest_set="business-gate",
        variant="checkout-broken",
        until_phase="Degraded",
    )
    broken = _version(rollout_target, "checkout-broken")
    radius = blast_radius(run, broken, allowance=ROLLBACK_ALLOWANCE)
    (analysis,) = [r for r in run.analysis_runs if "checkout-success" in r.metric_phases]
    error_rate_phase = analysis.metric_phases.get("error-rate")
    checkout_phase = analysis.metric_phases.get("checkout-success")
    broken_failures = sum(
        n for status, n in run.log.by_status(run.released_at, None).items() if status >= 500
    )
    evidence.record(
        error_rate_phase=error_rate_phase,
        checkout_phase=checkout_phase,
        bad_share=radius["bad_share"],
        bad_requests=radius["bad_requests"],
        total_requests=radius["total_requests"],
        http_5xx_after_release=broken_failures,
        analysis_message=analysis.message,
    )
    _attach(evidence, run)

    assert (error_rate_phase, checkout_phase) == ("Successful", "Failed"), analysis
    assert_event_order(run, ["AnalysisRunFailed", "RolloutAborted"])
    _assert_contained(run, radius, manifests)


@pytest.mark.rollout
def test_good_release_walks_every_step_and_completes(
    rollout_namespace: Namespace,
    rollout_target: TargetConfig,
    rollout_load: Callable[..., BackgroundLoad],
) -> None:
    run, manifests = _release(
        rollout_namespace,
        rollout_target,
        rollout_load,
        manifest_set="bad-canary",
        variant="good",
        until_phase="Healthy",
    )
    rollout = parse_rollout(manifests.get("Rollout", WORKLOAD))
    assert rollout.spec.canary is not None
    steps = len(rollout.spec.canary.steps)
    completed = [e for e in run.events if e.reason == "RolloutStepCompleted"]
    assert len(completed) == steps, "\n".join(run.event_lines())
    assert_event_order(run, ["RolloutUpdated", "AnalysisRunSuccessful", "RolloutCompleted"])
    good = _version(rollout_target, "good")
    tail = run.log.by_version(run.settled_at + ROLLBACK_ALLOWANCE, None)
    assert set(tail) == {good}, f"after completion every request should reach {good!r}: {tail}"
