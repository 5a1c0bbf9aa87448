"""The object behind the ``rollout`` fixture: releases under load, and their evidence.

An :class:`Experiment` releases variants of the target into namespaces of the test's own,
keeps every run it made, and when the test ends writes the evidence (``summary.json``, the
traffic of each run, ``timeline.json``) and deletes its namespaces — capturing their pod logs
and events first when the test did not pass.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pytest_rollout.backends import namespace_name
from pytest_rollout.backends.base import Cluster, Namespace
from pytest_rollout.config import DEFAULT_MANIFEST_SET, TargetConfig, Variant
from pytest_rollout.errors import ConfigError
from pytest_rollout.evidence import Evidence, jsonable
from pytest_rollout.manifests import ManifestSet
from pytest_rollout.progress import ProgressSink
from pytest_rollout.release import SETTLED, LiveRelease, LoadStarter, resolve_target
from pytest_rollout.runs import ReleaseRun

DEFAULT_RATE = 200.0
"""Requests per second, when the experiment does not say."""
DEFAULT_TAIL = 9.0
"""Seconds of load kept on after a release settles: the "after" of every claim."""
DEFAULT_TIMEOUT = 75.0
"""Seconds a deploy, or a release, may take to settle."""

_LOAD_MARGIN = 30.0


class Experiment:
    """Releases of one target under load, recorded as one experiment's evidence."""

    def __init__(
        self,
        name: str,
        *,
        cluster: Cluster,
        target: TargetConfig,
        start_load: LoadStarter,
        evidence: Evidence,
        test_name: str,
        progress: ProgressSink | None = None,
    ) -> None:
        self.name = name
        self.cluster = cluster
        self.target = target
        self.evidence = evidence
        self.runs: list[ReleaseRun] = []
        self.namespaces: list[Namespace] = []
        self._start_load = start_load
        self._test_name = test_name
        self._progress = progress
        self._live: list[LiveRelease] = []

    def __repr__(self) -> str:
        return f"<Experiment {self.name} runs={len(self.runs)}>"

    # -- what to release ---------------------------------------------------------------------

    def manifests(self, name: str | None = None) -> ManifestSet:
        """Manifest set ``name`` of the target config (default: its only or default set)."""
        return self.target.load_manifests(self._set_name(name))

    def variant(self, name: str) -> Variant:
        return self.target.variant(name)

    def namespace(self, label: str = "") -> Namespace:
        """A new namespace of this experiment's own, deleted when the test ends."""
        base = f"{self._test_name}-{label}" if label else self._test_name
        namespace = self.cluster.create_namespace(namespace_name(base))
        self.namespaces.append(namespace)
        return namespace

    # -- releasing ---------------------------------------------------------------------------

    def start(
        self,
        variant: str | Variant,
        *,
        manifests: str | ManifestSet | None = None,
        workload: str | None = None,
        route: str | None = None,
        rate: float = DEFAULT_RATE,
        timeout: float = DEFAULT_TIMEOUT,
        namespace: Namespace | None = None,
        resources: bool = False,
        label: str | None = None,
        strategy: str | None = None,
    ) -> LiveRelease:
        """Deploy ``manifests`` into a new namespace (or ``namespace``), put load on the route
        and release ``variant``; return the release in progress, for an experiment that acts
        on it (promote, abort) before :meth:`LiveRelease.finish`. ``resources``: sample the
        namespace's pods and memory during the release; ``strategy``: the name the report
        gives the run's pods and memory."""
        chosen = self.variant(variant) if isinstance(variant, str) else variant
        manifest_set, set_label = self._manifest_set(manifests)
        target = resolve_target(manifest_set, workload=workload, route=route, set_name=set_label)
        run_label = label or f"{set_label}/{chosen.name}"
        live = LiveRelease(
            experiment=self.name,
            label=run_label,
            namespace=namespace if namespace is not None else self.namespace(_slug(run_label)),
            manifests=manifest_set,
            target=target,
            variant=chosen,
            serving=self.target.serving,
            start_load=self._start_load,
            rate=rate,
            max_duration=2 * timeout + _LOAD_MARGIN,
            timeout=timeout,
            progress=self._progress,
            sample_resources=resources,
            strategy=strategy,
            on_finish=self.runs.append,
        )
        self._live.append(live)
        try:
            return live.start()
        except BaseException:
            live.close()
            raise

    def release(
        self,
        variant: str | Variant,
        *,
        manifests: str | ManifestSet | None = None,
        workload: str | None = None,
        route: str | None = None,
        rate: float = DEFAULT_RATE,
        until: str | Sequence[str] = SETTLED,
        tail: float = DEFAULT_TAIL,
        timeout: float = DEFAULT_TIMEOUT,
        namespace: Namespace | None = None,
        resources: bool = False,
        label: str | None = None,
        strategy: str | None = None,
    ) -> ReleaseRun:
        """Release ``variant`` under load and take no action: wait until the workload settles
        (a Rollout: Healthy or Degraded, or the phases ``until``; a Deployment: rolled out),
        keep the load on for ``tail`` seconds, and return what was measured."""
        phases = (until,) if isinstance(until, str) else tuple(until)
        with self.start(
            variant,
            manifests=manifests,
            workload=workload,
            route=route,
            rate=rate,
            timeout=timeout,
            namespace=namespace,
            resources=resources,
            label=label,
            strategy=strategy,
        ) as live:
            live.wait_settled(phases)
            return live.finish(tail=tail)

    # -- evidence ----------------------------------------------------------------------------

    def record(self, **metrics: Any) -> None:
        """Add summary metrics (JSON values); they also become JUnit properties."""
        self.evidence.record(**metrics)

    def headline(self, text: str) -> None:
        """The one line the report's index shows for this experiment."""
        self.evidence.headline = text

    def close(self, *, passed: bool, capture_dir: Path) -> None:
        """Stop what still runs, attach the runs' evidence, delete the namespaces (capturing
        them first unless the test passed)."""
        for live in self._live:
            live.close()
        self._attach_runs()
        # At once: each deletion mostly waits out its pods' grace periods. Every namespace is
        # deleted; the first error (in creation order) is raised.
        workers = max(len(self.namespaces), 1)
        with ThreadPoolExecutor(workers, thread_name_prefix="pytest-rollout-delete") as pool:
            deletions = [
                pool.submit(close_namespace, namespace, passed=passed, capture_dir=capture_dir)
                for namespace in self.namespaces
            ]
        errors = [error for done in deletions if (error := done.exception()) is not None]
        if errors:
            raise errors[0]

    def _attach_runs(self) -> None:
        if not self.runs:
            return
        files = _traffic_files(self.runs)
        for run, filename in zip(self.runs, files, strict=True):
            self.evidence.attach(filename, run.log.to_csv)
        timeline = {"runs": [run.timeline(f) for run, f in zip(self.runs, files, strict=True)]}
        self.evidence.attach("timeline.json", _json_writer(timeline))
        if "runs" not in self.evidence.metrics:
            self.evidence.record(runs=[run.summary() for run in self.runs])
        for run in self.runs:
            lines = run.event_lines()
            if len(self.runs) > 1:
                lines = [f"# {run.label}", *lines]
            self.evidence.events.extend(lines)

    # -- helpers -----------------------------------------------------------------------------

    def _set_name(self, name: str | None) -> str:
        if name is not None:
            return name
        sets = self.target.manifest_sets
        if DEFAULT_MANIFEST_SET in sets:
            return DEFAULT_MANIFEST_SET
        if len(sets) == 1:
            return next(iter(sets))
        raise ConfigError(
            f"{self.target.label}: name the manifest set to release; sets: {', '.join(sets)}"
        )

    def _manifest_set(self, manifests: str | ManifestSet | None) -> tuple[ManifestSet, str]:
        if isinstance(manifests, ManifestSet):
            return manifests, "manifests"
        name = self._set_name(manifests)
        return self.target.load_manifests(name), name


def close_namespace(namespace: Namespace, *, passed: bool, capture_dir: Path) -> None:
    """Delete ``namespace``; when the test did not pass, capture its pod logs and events into
    ``capture_dir/<namespace>`` first."""
    try:
        if not passed:
            namespace.capture(capture_dir / namespace.name)
    finally:
        namespace.delete()


def experiment_name(test_name: str) -> str:
    """An experiment name from a test's name: ``test_bad_release[x]`` -> ``bad-release-x``."""
    return _slug(re.sub(r"^test_?", "", test_name)) or "experiment"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _traffic_files(runs: Sequence[ReleaseRun]) -> list[str]:
    if len(runs) == 1:
        return ["traffic.csv"]
    names: list[str] = []
    for index, run in enumerate(runs, 1):
        name = f"traffic-{_slug(run.label) or index}.csv"
        names.append(name if name not in names else f"traffic-{index}.csv")
    return names


def _json_writer(data: Any) -> Callable[[Path], object]:
    def write(path: Path) -> None:
        path.write_text(json.dumps(jsonable(data), separators=(",", ":")) + "\n")

    return write
