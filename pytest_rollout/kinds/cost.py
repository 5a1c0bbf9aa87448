"""Kind ``strategy-cost``: the same service released by each strategy, side by side.

For every strategy named — the same workload and pod, only the strategy differs — the good
release (``variant``) rolls out under load while the namespace's pods (Ready and not) and
their memory are sampled four times a second, until every pod the release added is gone: the
peak of each and how long it lasted, the pod-seconds above the state before the release, and
the time to full promotion. The bad release (``bad_variant``) rolls out under the same load
through the same gate: its share of all requests, the client-visible errors, how long it
served, and how long after the abort the old version served everything. The ``canary`` is
also aborted by hand in the pause after its largest ``setWeight``, where an abort moves the
most traffic back: with ``dynamicStableScale`` the stable must grow back first.

Passes when the blue-green release peaks at twice the replicas, its memory at 1.7-2.3 times
its baseline, and the ``canary`` at less memory than blue-green. Every run must have kept its
load schedule (else *inconclusive*), every good release must complete and every bad Rollout
must be aborted.

The releases are independent (a namespace each, whose samples count its own pods) and run at
once, up to ``parallel`` of them, longest first.

Keys (beside the common ones; ``manifests`` is not used)::

    canary         = "strategy-cost-canary"          # manifest sets, one per strategy;
    canary_default = "strategy-cost-canary-default"  #   canary and blue_green required
    blue_green     = "strategy-cost-blue-green"
    rolling        = "strategy-cost-rolling"
    bad_variant    = "bad"                           # the release the gates must stop
    parallel       = 9                               # releases at once (default: all)
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from pytest_rollout._wait import wait_for
from pytest_rollout.config import TargetConfig
from pytest_rollout.engine.rollout_model import Pause, SetWeight, parse_rollout
from pytest_rollout.experiment import Experiment
from pytest_rollout.kinds import ExperimentSpec, Kind, manifest_set_name, register, workload_of
from pytest_rollout.kinds.footprint import (
    MIB,
    Footprint,
    Reach,
    Rollback,
    footprint,
    reach,
    resource_points,
    rollback,
)
from pytest_rollout.release import LiveRelease
from pytest_rollout.runs import COMPLETED, ReleaseRun
from pytest_rollout.tomlcheck import Where, require_string

STRATEGY_KEYS = ("canary", "canary_default", "blue_green", "rolling")
RATE = 50.0
BLUE_GREEN_MEMORY = (1.7, 2.3)
"""The range blue-green's peak memory must fall in, as a multiple of the baseline."""
_JOIN_INTERVAL = 0.5


@dataclass(frozen=True)
class Strategy:
    """One strategy of the comparison: its key, manifest set and what it runs."""

    key: str
    manifests: str
    workload_kind: str
    """``canary``, ``blueGreen`` or ``rolling`` (a Deployment)."""
    replicas: int
    abort_after_step: int | None = None
    """A canary: the index of its largest ``setWeight``, to abort in the pause after it."""
    abort_weight: int | None = None


# --- the table -----------------------------------------------------------------------------


def _parse(
    table: Mapping[str, Any], where: Where, target: TargetConfig, spec: ExperimentSpec
) -> Mapping[str, Any]:
    if "manifests" in table:
        raise where.key("manifests").error(
            "strategy-cost takes a manifest set per strategy: "
            + ", ".join(STRATEGY_KEYS)
            + " (not manifests)"
        )
    strategies = [
        _strategy(key, table[key], where.key(key), target, spec)
        for key in STRATEGY_KEYS
        if key in table
    ]
    sizes = {s.key: s.replicas for s in strategies}
    if len(set(sizes.values())) > 1:
        raise where.error(
            f"the strategies must run the same number of replicas to compare; got {sizes}"
        )
    bad = require_string(table["bad_variant"], where.key("bad_variant"))
    if bad not in target.variants:
        raise where.key("bad_variant").error(
            f"no variant {bad!r}; variants: {', '.join(sorted(target.variants))}"
        )
    if bad == spec.variant:
        raise where.key("bad_variant").error(
            f"{bad!r} is the good release (variant); the bad release must be another"
        )
    runs = 2 * len(strategies) + 1  # a good and a bad release each; the canary's abort
    parallel = runs
    if "parallel" in table:
        value = table["parallel"]
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= runs:
            raise where.key("parallel").error(
                f"expected the number of releases to run at once, 1 to {runs}, got {value!r}"
            )
        parallel = value
    return {"strategies": tuple(strategies), "bad_variant": bad, "parallel": parallel}


def _strategy(
    key: str, value: object, where: Where, target: TargetConfig, spec: ExperimentSpec
) -> Strategy:
    name = manifest_set_name(value, where, target)
    chosen = workload_of(spec, name, target, where)
    manifest = next(
        m for m in target.load_manifests(name) if m.kind == chosen.kind and m.name == chosen.name
    )
    expected = {"blue_green": "blueGreen", "rolling": "rolling"}.get(key, "canary")
    rollout = parse_rollout(manifest) if chosen.kind == "Rollout" else None
    if rollout is None:
        kind, replicas = "rolling", int(manifest.body.get("spec", {}).get("replicas", 1))
    else:
        kind = "blueGreen" if rollout.spec.blue_green is not None else "canary"
        replicas = rollout.spec.replicas
    if kind != expected:
        wanted = {"canary": "a canary Rollout", "blueGreen": "a blueGreen Rollout"}
        raise where.error(
            f"manifest set {name!r}: {chosen.kind}/{chosen.name} is not "
            f"{wanted.get(expected, 'a Deployment')}"
        )
    if key != "canary" or rollout is None or rollout.spec.canary is None:
        return Strategy(key, name, kind, replicas)
    steps = rollout.spec.canary.steps
    weights = [(i, s.weight) for i, s in enumerate(steps) if isinstance(s, SetWeight)]
    if not weights:
        raise where.error(f"manifest set {name!r}: the canary has no setWeight step to abort at")
    index, weight = max(weights, key=lambda pair: (pair[1], pair[0]))
    if not any(isinstance(s, Pause) for s in steps[index + 1 :]):
        raise where.error(
            f"manifest set {name!r}: no pause after setWeight {weight}, where the comparison "
            "aborts the canary by hand"
        )
    return Strategy(key, name, kind, replicas, index, weight)


# --- the runs ------------------------------------------------------------------------------


def _common(spec: ExperimentSpec, strategy: Strategy) -> dict[str, Any]:
    return {
        "manifests": strategy.manifests,
        "workload": spec.workload,
        "route": spec.route,
        "rate": spec.rate,
        "timeout": spec.timeout,
        "strategy": strategy.key,
    }


def good_release(experiment: Experiment, spec: ExperimentSpec, strategy: Strategy) -> ReleaseRun:
    """The good release, observed until it completed and every pod it added is gone again
    (the previous stack outlives the promotion by its scale-down delay)."""
    with experiment.start(
        spec.the_variant, resources=True, label=f"{strategy.key}/good", **_common(spec, strategy)
    ) as live:
        live.wait_settled()
        baseline = live.resources[0]
        wait_for(
            lambda: _back_to(live, baseline.pods),
            what=f"the namespace back at {baseline.pods} pods, all Ready, after the release",
            timeout=spec.timeout,
            interval=0.1,
        )
        return live.finish(tail=spec.tail)


def _back_to(live: LiveRelease, pods: int) -> bool:
    """The release's own sampler saw the namespace back at ``pods``, all Ready (its samples
    are the evidence, so the condition is read from them)."""
    sample = live.resources[-1]
    return sample.pods <= pods and sample.not_ready == 0


def bad_release(experiment: Experiment, spec: ExperimentSpec, strategy: Strategy) -> ReleaseRun:
    return experiment.release(
        spec.options["bad_variant"],
        tail=spec.tail,
        label=f"{strategy.key}/bad",
        **_common(spec, strategy),
    )


def operator_abort(experiment: Experiment, spec: ExperimentSpec, strategy: Strategy) -> ReleaseRun:
    """The good release, aborted by hand in the pause after the largest weight; settled once
    the router's weight is back at 0."""
    assert strategy.abort_after_step is not None
    step = strategy.abort_after_step
    with experiment.start(
        spec.the_variant, label=f"{strategy.key}/abort", **_common(spec, strategy)
    ) as live:
        wait_for(
            lambda: _paused_after(live, step),
            what=f"the Rollout to pause after setWeight {strategy.abort_weight} (step {step + 1})",
            timeout=spec.timeout,
            interval=0.05,
        )
        live.handle.abort()
        wait_for(
            lambda: (view := live.status()) is not None and view.canary_weight == 0,
            what="the canary's weight back to 0 after the abort",
            timeout=spec.timeout,
            interval=0.05,
        )
        live.wait_settled(("Degraded",))
        return live.finish(tail=spec.tail)


def _paused_after(live: LiveRelease, step: int) -> bool:
    view = live.status()
    return (
        view is not None
        and view.phase == "Paused"
        and view.current_step_index is not None
        and view.current_step_index > step
    )


Job = Callable[[], ReleaseRun]


@dataclass
class Batch:
    """The runs of :func:`run_all` by job name, and the jobs that failed (in job order)."""

    runs: dict[str, ReleaseRun]
    errors: dict[str, BaseException]

    def raise_first(self) -> None:
        """Raise the first failure, the others noted on it; nothing when all succeeded."""
        if not self.errors:
            return
        first, *others = self.errors.items()
        for name, other in others:
            first[1].add_note(f"also failed: {name}: {type(other).__name__}: {other}")
        raise first[1]


def run_all(jobs: Mapping[str, Job], *, parallel: int) -> Batch:
    """Run the jobs, at most ``parallel`` at once, each taken in order by the first thread
    free. After a failure no further job starts; the running ones end first."""
    results: dict[str, ReleaseRun] = {}
    errors: dict[str, BaseException] = {}
    pending = list(jobs.items())
    lock = threading.Lock()

    def work() -> None:
        while True:
            with lock:
                if errors or not pending:
                    return
                name, job = pending.pop(0)
            try:
                results[name] = job()
            except BaseException as exc:  # handed to the test thread in the Batch
                errors[name] = exc

    threads = [
        threading.Thread(target=work, name=f"strategy-cost {index}", daemon=True)
        for index in range(min(parallel, len(pending)))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        while thread.is_alive():  # short joins: Ctrl-C reaches the test thread
            thread.join(_JOIN_INTERVAL)
    return Batch(
        {name: results[name] for name in jobs if name in results},
        {name: errors[name] for name in jobs if name in errors},
    )


# --- the procedure -------------------------------------------------------------------------


def run_strategy_cost(experiment: Experiment, spec: ExperimentSpec) -> None:
    strategies: tuple[Strategy, ...] = spec.options["strategies"]
    load_before = os.getloadavg()
    started = time.monotonic()
    batch = run_all(jobs(experiment, spec, strategies), parallel=spec.options["parallel"])
    wall = time.monotonic() - started
    load_after = os.getloadavg()
    runs = batch.runs
    # The report's columns: strategy by strategy, good release, abort, bad release.
    experiment.runs.sort(key=_column)
    good = {s.key: run for s in strategies if (run := runs.get(f"{s.key}/good")) is not None}
    bad = {s.key: run for s in strategies if (run := runs.get(f"{s.key}/bad")) is not None}
    footprints = {k: footprint(resource_points(run), run.released_at) for k, run in good.items()}
    reaches = {key: reach(run) for key, run in bad.items()}
    rollbacks = {
        s.key: rollback(run) for s in strategies if (run := runs.get(f"{s.key}/abort")) is not None
    }
    _record(experiment, spec, strategies, good, footprints, reaches, rollbacks)
    experiment.record(
        wall_s=round(wall, 1),
        parallel=spec.options["parallel"],
        load_average_before=[round(v, 2) for v in load_before],
        load_average_after=[round(v, 2) for v in load_after],
        lateness_p99_ms={label: _ms(run.log.lateness_p99) for label, run in runs.items()},
        achieved_rate={label: round(run.log.achieved_rate, 1) for label, run in runs.items()},
        failed_runs={name: f"{type(e).__name__}: {e}" for name, e in batch.errors.items()},
    )
    _headline(experiment, footprints)
    batch.raise_first()

    for run in runs.values():
        run.assert_load_held()
    for run in good.values():
        run.assert_completed()
    for strategy in strategies:
        if strategy.workload_kind != "rolling" and reaches[strategy.key].aborted_by is None:
            raise AssertionError(
                f"{bad[strategy.key].label}: the bad release was never aborted by its gate\n"
                + "\n".join(bad[strategy.key].event_lines())
            )
    _assert_costs(strategies, footprints)


def _column(run: ReleaseRun) -> tuple[int, int]:
    key, _, what = run.label.partition("/")
    strategy = STRATEGY_KEYS.index(key) if key in STRATEGY_KEYS else len(STRATEGY_KEYS)
    return strategy, ("good", "abort", "bad").index(what) if what in ("good", "abort", "bad") else 3


def jobs(
    experiment: Experiment, spec: ExperimentSpec, strategies: Sequence[Strategy]
) -> dict[str, Job]:
    """Every release of the comparison by name, the longest first, so that fewer threads than
    releases still finish early: the good releases (the default canary keeps its previous
    stable longest), the canary's abort, then the bad releases (a canary's runs its first
    steps; blue-green's stops at the preview; a rolling one's has nothing to stop it)."""
    good_order = ("canary_default", "blue_green", "canary", "rolling")
    bad_order = ("canary_default", "canary", "blue_green", "rolling")
    by_key = {s.key: s for s in strategies}
    planned: dict[str, Job] = {}
    for key in good_order:
        if (strategy := by_key.get(key)) is not None:
            planned[f"{key}/good"] = partial(good_release, experiment, spec, strategy)
            if strategy.abort_after_step is not None:
                planned[f"{key}/abort"] = partial(operator_abort, experiment, spec, strategy)
    for key in bad_order:
        if (strategy := by_key.get(key)) is not None:
            planned[f"{key}/bad"] = partial(bad_release, experiment, spec, strategy)
    return planned


def promotion_s(run: ReleaseRun) -> float:
    """From the release to full promotion: the Rollout's ``RolloutCompleted`` (the new
    ReplicaSet became the stable one), a Deployment's completed roll-out."""
    completed = [
        e.timestamp for e in run.events if e.reason == COMPLETED and e.timestamp >= run.released_at
    ]
    end = completed[0] if run.kind == "Rollout" and completed else run.settled_at
    return end - run.released_at


def _all_new_s(run: ReleaseRun) -> float | None:
    """From the release to the last request an old version served."""
    last = [t for v in run.stable_versions if (t := run.log.last_seen(v)) is not None]
    return max(last) - run.released_at if last else None


def _record(
    experiment: Experiment,
    spec: ExperimentSpec,
    strategies: Sequence[Strategy],
    good: Mapping[str, ReleaseRun],
    footprints: Mapping[str, Footprint],
    reaches: Mapping[str, Reach],
    rollbacks: Mapping[str, Rollback],
) -> None:
    def each(values: Mapping[str, Any], value: Callable[[Any], Any]) -> dict[str, Any]:
        """``value`` of each strategy's measurement, in the strategies' order."""
        return {s.key: value(values[s.key]) for s in strategies if s.key in values}

    blue_green = footprints.get("blue_green")
    baselines = list(footprints.values())
    experiment.record(
        replicas=strategies[0].replicas,
        rate=spec.rate,
        manifests={s.key: s.manifests for s in strategies},
        baseline_pods=statistics.median_low(f.baseline_pods for f in baselines)
        if baselines
        else None,
        baseline_memory_bytes=int(statistics.median(f.baseline_memory_bytes for f in baselines))
        if baselines
        else None,
        peak_pods=each(footprints, lambda f: f.peak_pods),
        peak_memory_bytes=each(footprints, lambda f: f.peak_memory_bytes),
        peak_pods_s=each(footprints, lambda f: round(f.peak_pods_s, 2)),
        peak_memory_s=each(footprints, lambda f: round(f.peak_memory_s, 2)),
        pod_seconds_above_baseline=each(
            footprints, lambda f: round(f.pod_seconds_above_baseline, 1)
        ),
        memory_over_baseline=each(footprints, lambda f: round(f.memory_over_baseline, 3)),
        promotion_s=each(good, lambda run: round(promotion_s(run), 2)),
        all_new_s=each(good, lambda run: _rounded(_all_new_s(run))),
        good_errors=each(good, lambda run: run.failure_count(run.released_at, None)),
        bad_share=each(reaches, lambda r: round(r.bad_share, 4)),
        bad_errors=each(reaches, lambda r: r.errors),
        rollback_s=each(reaches, lambda r: _rounded(r.rollback_s)),
        abort_to_old_s=each(reaches, lambda r: _rounded(r.abort_to_old_s)),
        blue_green_over_baseline_memory=(
            round(blue_green.memory_over_baseline, 3) if blue_green is not None else None
        ),
        footprint=each(footprints, lambda f: f.metrics()),
        reach=each(reaches, lambda r: r.metrics()),
        operator_abort=each(rollbacks, lambda r: r.metrics()),
    )


def _headline(experiment: Experiment, footprints: Mapping[str, Footprint]) -> None:
    parts = [
        f"{key} {f.peak_pods} pods / {f.peak_memory_bytes / MIB:,.0f} MiB"
        for key, f in footprints.items()
    ]
    blue_green = footprints.get("blue_green")
    ratio = (
        f"; blue-green {blue_green.memory_over_baseline:.2f}x the baseline memory"
        if blue_green is not None
        else ""
    )
    experiment.headline("peak " + ", ".join(parts) + ratio)


def _assert_costs(strategies: Sequence[Strategy], footprints: Mapping[str, Footprint]) -> None:
    replicas = strategies[0].replicas
    table = "; ".join(
        f"{key}: peak {f.peak_pods} pods for {f.peak_pods_s:.1f}s, "
        f"{f.peak_memory_bytes / MIB:,.0f} MiB ({f.memory_over_baseline:.2f}x)"
        for key, f in footprints.items()
    )
    blue_green, canary = footprints["blue_green"], footprints["canary"]
    if blue_green.peak_pods != 2 * replicas:
        raise AssertionError(
            f"blue-green peaked at {blue_green.peak_pods} pods, expected 2 x {replicas} "
            f"replicas = {2 * replicas}: {table}"
        )
    low, high = BLUE_GREEN_MEMORY
    if not low <= blue_green.memory_over_baseline <= high:
        raise AssertionError(
            f"blue-green's peak memory is {blue_green.memory_over_baseline:.2f}x its baseline "
            f"({blue_green.peak_memory_bytes / MIB:,.0f} of "
            f"{blue_green.baseline_memory_bytes / MIB:,.0f} MiB), expected {low}-{high}x: {table}"
        )
    if not canary.peak_memory_bytes < blue_green.peak_memory_bytes:
        raise AssertionError(
            f"the canary's peak memory ({canary.peak_memory_bytes / MIB:,.0f} MiB) is not below "
            f"blue-green's ({blue_green.peak_memory_bytes / MIB:,.0f} MiB): {table}"
        )


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1e3, 2)


register(
    Kind(
        name="strategy-cost",
        runs_alone=True,
        summary="canary, blue-green and rolling side by side: peak pods and memory, blast "
        "radius and rollback",
        run=run_strategy_cost,
        keys=(*STRATEGY_KEYS, "bad_variant", "parallel"),
        required=("canary", "blue_green", "bad_variant"),
        parse=_parse,
        needs_manifests=False,
        default_rate=RATE,
    )
)
