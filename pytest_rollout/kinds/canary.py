"""Kinds that release a variant through a metric-gated Rollout and take no action.

``canary-containment``
    A bad release is aborted by ``metric`` (assessed Failed), and its share of all requests
    from the release to the rollback is at most ``max_share`` (default: the Rollout's first
    ``setWeight`` / 100); none reach it after the rollback.
``metric-gate``
    As ``canary-containment``, and every metric of ``must_pass`` ends Successful in the same
    run: the gate that caught the release is not one that would catch anything.
``smoke-gate``
    A check before the first traffic step (``metric``) fails (Failed or Error) and the release
    never gets production traffic.
``good-release``
    The release walks every step and completes, with no client-visible error.

An abort for any other cause than the named metric — an analysis Error, another metric, a
progress deadline — fails the experiment and prints the event lines.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pytest_rollout.assertions import assert_served_throughout
from pytest_rollout.config import TargetConfig
from pytest_rollout.experiment import Experiment
from pytest_rollout.kinds import (
    ExperimentSpec,
    Kind,
    metric_name,
    metric_names_list,
    register,
    share,
)
from pytest_rollout.runs import ReleaseRun
from pytest_rollout.tomlcheck import Where


def _metric(
    table: Mapping[str, Any], where: Where, target: TargetConfig, spec: ExperimentSpec
) -> dict[str, Any]:
    return {"metric": metric_name(table["metric"], where.key("metric"), target, spec.manifests)}


def _containment_options(
    table: Mapping[str, Any], where: Where, target: TargetConfig, spec: ExperimentSpec
) -> dict[str, Any]:
    options = _metric(table, where, target, spec)
    if "max_share" in table:
        options["max_share"] = share(table["max_share"], where.key("max_share"))
    return options


def _gate_options(
    table: Mapping[str, Any], where: Where, target: TargetConfig, spec: ExperimentSpec
) -> dict[str, Any]:
    options = _containment_options(table, where, target, spec)
    options["must_pass"] = metric_names_list(
        table["must_pass"], where.key("must_pass"), target, spec.manifests
    )
    if options["metric"] in options["must_pass"]:
        raise where.key("must_pass").error(
            f"{options['metric']!r} is the metric that must fail; it cannot also have to pass"
        )
    return options


def _record_containment(experiment: Experiment, run: ReleaseRun, bound: float | None) -> None:
    """The containment keys, recorded before anything is asserted."""
    cause = run.abort_cause()
    metrics: dict[str, Any] = {
        "aborted_by": cause.metric if cause else None,
        "abort_phase": cause.phase if cause else None,
        "abort_message": cause.message if cause else None,
        "metric_phases": run.metric_phases(),
        "rollout_message": run.view.message if run.view else None,
    }
    if run.new_version is not None:
        radius = run.blast_radius()
        metrics.update(radius.metrics())
        limit = bound if bound is not None else (run.first_weight or 0) / 100
        metrics["max_share"] = limit
        experiment.headline(
            f"bad share {radius.bad_share:.1%} (limit {limit:.0%}): {radius.bad_requests:,} of "
            f"{radius.total_requests:,} requests; aborted by "
            f"{cause.describe() if cause else 'nothing'}"
        )
    experiment.record(**metrics)


def _contained(experiment: Experiment, spec: ExperimentSpec) -> ReleaseRun:
    run: ReleaseRun = spec.release(experiment)
    bound = spec.options.get("max_share")
    _record_containment(experiment, run, bound)
    run.assert_load_held()
    run.assert_aborted_by(spec.options["metric"])
    run.assert_contained(max_share=bound)
    for stable in sorted(run.stable_versions):
        assert_served_throughout(run, stable)
    return run


def run_containment(experiment: Experiment, spec: ExperimentSpec) -> None:
    _contained(experiment, spec)


def run_metric_gate(experiment: Experiment, spec: ExperimentSpec) -> None:
    run = _contained(experiment, spec)
    phases = run.metric_phases()
    wrong = {m: phases.get(m, "never measured") for m in spec.options["must_pass"]}
    wrong = {m: p for m, p in wrong.items() if p != "Successful"}
    if wrong:
        raise AssertionError(
            f"{run.label}: expected {', '.join(spec.options['must_pass'])} to pass while "
            f"{spec.options['metric']!r} failed; got {wrong} (all metrics: {phases})"
        )


def run_smoke_gate(experiment: Experiment, spec: ExperimentSpec) -> None:
    run: ReleaseRun = spec.release(experiment)
    metric = spec.options["metric"]
    cause = run.abort_cause()
    versions = run.new_versions_seen() | (
        {run.variant.version} if run.variant.version is not None else set()
    )
    served = run.log.by_version()
    production = sum(served.get(v, 0) for v in versions)
    experiment.record(
        canary_production_requests=production,
        total_requests=len(run.log),
        smoke_phase=run.metric_phases().get(metric),
        aborted_by=cause.metric if cause else None,
        abort_phase=cause.phase if cause else None,
        metric_phases=run.metric_phases(),
        rollout_message=run.view.message if run.view else None,
    )
    experiment.headline(
        f"{production:,} of {len(run.log):,} production requests reached the release; "
        f"smoke check {run.metric_phases().get(metric, 'never ran')}"
    )
    run.assert_load_held()
    run.assert_aborted_by(metric, phases=("Failed", "Error"))
    traffic_steps = [
        e.message
        for e in run.events
        if e.reason == "RolloutStepCompleted" and "setWeight" in e.message
    ]
    if traffic_steps:
        raise AssertionError(
            f"{run.label}: a traffic step completed before the smoke check failed: "
            f"{traffic_steps}\n" + "\n".join(run.event_lines())
        )
    if production:
        raise AssertionError(
            f"{run.label}: {production} of {len(run.log)} production requests reached the "
            f"release that failed its smoke check (expected 0)"
        )


def run_good_release(experiment: Experiment, spec: ExperimentSpec) -> None:
    run: ReleaseRun = spec.release(experiment)
    errors = run.failure_count(run.released_at, None)
    completed = [e for e in run.events if e.reason == "RolloutStepCompleted"]
    experiment.record(
        requests=len(run.log),
        errors=errors,
        duration_s=round(run.settled_at - run.released_at, 3),
        steps_completed=len(completed),
        steps=run.steps,
        metric_phases=run.metric_phases(),
        rollout_message=run.view.message if run.view else None,
    )
    experiment.headline(
        f"completed in {run.settled_at - run.released_at:.1f}s; {errors:,} of "
        f"{len(run.log):,} requests failed"
    )
    run.assert_load_held()
    run.assert_completed()
    if run.steps is not None and len(completed) != run.steps:
        raise AssertionError(
            f"{run.label}: {len(completed)} of {run.steps} steps completed\n"
            + "\n".join(run.event_lines())
        )
    run.assert_no_errors()


register(
    Kind(
        name="canary-containment",
        summary="a bad release is aborted by a metric and stays within its first step",
        run=run_containment,
        keys=("metric", "max_share"),
        required=("metric",),
        parse=_containment_options,
    )
)
register(
    Kind(
        name="metric-gate",
        summary="one metric aborts a release that other metrics pass (a business gate)",
        run=run_metric_gate,
        keys=("metric", "max_share", "must_pass"),
        required=("metric", "must_pass"),
        parse=_gate_options,
    )
)
register(
    Kind(
        name="smoke-gate",
        summary="a release failing its pre-traffic check never gets production traffic",
        run=run_smoke_gate,
        keys=("metric",),
        required=("metric",),
        parse=_metric,
    )
)
register(
    Kind(
        name="good-release",
        summary="a good release walks every step and completes with no client error",
        run=run_good_release,
    )
)
