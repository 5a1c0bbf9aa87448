"""What every backend offers the experiments: a cluster of namespaces and a handle on each.

Experiments are written against these protocols only, so the same test runs on ``local`` and on
``kube``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Protocol

from pytest_rollout.errors import RolloutError

if TYPE_CHECKING:
    from pytest_rollout.config import Variant
    from pytest_rollout.manifests import Manifest


@dataclass(frozen=True)
class RollbackAllowance:
    """Seconds a backend's data plane may take, after the abort event's recorded time, to send
    nothing more to the canary: the sum of ``parts``, each a delay the backend documents
    (``docs/local-backend.md``, ``docs/kube-backend.md``), by name."""

    seconds: float
    parts: Mapping[str, float]

    def __post_init__(self) -> None:
        parts = {str(name): float(value) for name, value in self.parts.items()}
        bad = {name: value for name, value in parts.items() if not value >= 0}
        if bad or not parts:
            raise RolloutError(f"rollback allowance parts must be >= 0 seconds, got {parts}")
        if not math.isclose(self.seconds, sum(parts.values()), abs_tol=1e-9):
            raise RolloutError(
                f"rollback allowance {self.seconds} s is not the sum of its parts {parts}"
            )
        object.__setattr__(self, "parts", MappingProxyType(parts))

    @classmethod
    def of(cls, parts: Mapping[str, float]) -> RollbackAllowance:
        return cls(sum(parts.values()), parts)

    def to_json(self) -> dict[str, object]:
        """``{"seconds": 2.2, "parts": {"router_apply": 0.2, ...}}`` for a report."""
        return {"seconds": round(self.seconds, 6), "parts": dict(self.parts)}

    def describe(self) -> str:
        """``2.2 s (event_time_resolution 1 s + endpoint_propagation 1 s + router_apply 0.2 s)``."""
        terms = " + ".join(f"{name} {value:g} s" for name, value in self.parts.items())
        return f"{self.seconds:g} s ({terms})"


@dataclass(frozen=True)
class ResourceSample:
    """What a namespace's pods use at one instant (``t``, epoch seconds).

    ``ready`` and ``not_ready`` count its pods (a terminating pod is not ready);
    ``memory_bytes`` is their total and ``per_pod`` each pod's, by pod name. What memory means
    is the backend's: the resident set (RSS) of each pod's process tree locally, the working
    set of its containers (cAdvisor's ``container_memory_working_set_bytes``) on kube.
    """

    t: float
    ready: int
    not_ready: int
    memory_bytes: int
    per_pod: Mapping[str, int]

    @property
    def pods(self) -> int:
        return self.ready + self.not_ready


@dataclass(frozen=True)
class EventView:
    """One Kubernetes event, backend-neutral. ``timestamp`` is epoch seconds."""

    timestamp: float
    type: str
    reason: str
    message: str
    kind: str
    name: str


@dataclass(frozen=True)
class MeasurementView:
    """One measurement of a metric, as Argo's ``Measurement``. Times are epoch seconds."""

    phase: str
    started_at: float | None
    finished_at: float | None
    value: str
    """Argo's text of the result (``[0.012]``, ``0.5``), empty when there is none."""
    message: str


@dataclass(frozen=True)
class MetricView:
    """One metric of an AnalysisRun: its phase, its resolved conditions and measurements."""

    name: str
    phase: str
    message: str
    success_condition: str
    failure_condition: str
    measurements: tuple[MeasurementView, ...]


@dataclass(frozen=True)
class AnalysisRunView:
    """An AnalysisRun as ``status`` shows it: phase, message, and each metric's phase."""

    name: str
    phase: str
    message: str
    metric_phases: Mapping[str, str]
    metrics: tuple[MetricView, ...] = ()
    started_at: float | None = None


@dataclass(frozen=True)
class RolloutView:
    """A Rollout's status: phase (Healthy, Progressing, Paused, Degraded), message, step.

    ``active_hash`` and ``preview_hash`` are the pod-template hashes a blueGreen Rollout's
    active and preview Services select (``status.blueGreen.activeSelector`` /
    ``previewSelector``); None for a canary, or while a Service selects every pod.
    """

    name: str
    phase: str
    message: str
    current_step_index: int | None
    canary_weight: int
    stable_hash: str | None
    canary_hash: str | None
    aborted: bool
    active_hash: str | None = None
    preview_hash: str | None = None


class RolloutHandle(Protocol):
    """An Argo Rollout in a namespace: observe it and act on it as ``kubectl argo rollouts``."""

    @property
    def name(self) -> str: ...

    def status(self) -> RolloutView: ...

    def wait_for_phase(self, phase: str, *, timeout: float) -> RolloutView:
        """Wait until the Rollout is in ``phase``; WaitTimeout with the status and events."""

    def promote(self, *, full: bool = False) -> None: ...

    def abort(self) -> None: ...

    def retry(self) -> None: ...

    def events(self) -> list[EventView]:
        """The Rollout's own events (Argo's reasons), oldest first."""

    def analysis_runs(self) -> list[AnalysisRunView]: ...


class Namespace(Protocol):
    """One test's namespace on a backend."""

    @property
    def name(self) -> str: ...

    @property
    def rollback_allowance(self) -> RollbackAllowance:
        """The backend's allowance between an abort and the data plane applying it."""

    def apply(self, manifests: Iterable[Manifest]) -> None:
        """Create the objects (kubectl apply)."""

    def release(self, workload: str, variant: Variant) -> None:
        """Change the workload's (Deployment's or Rollout's) pod template to the variant."""

    def rollout(self, name: str) -> RolloutHandle:
        """The handle of Rollout ``name``."""

    def wait_rolled_out(self, workload: str, *, timeout: float) -> None:
        """Wait until every replica runs the current template and is available."""

    def route_url(self, route: str) -> str:
        """The client-facing URL of an HTTPRoute."""

    def events(self) -> list[EventView]:
        """The namespace's events (every object's), oldest first."""

    def event_lines(self) -> list[str]:
        """The namespace's events, oldest first, one line each."""

    def resources(self) -> ResourceSample:
        """The namespace's pods and their memory now; cheap enough to call every 250 ms."""

    def capture(self, destination: Path) -> None:
        """Write pod logs and events under ``destination`` (evidence of a failed test)."""

    def delete(self) -> None:
        """Delete the namespace and everything in it."""


class Cluster(Protocol):
    """A backend's cluster: created once per session (per xdist worker)."""

    def create_namespace(self, name: str) -> Namespace: ...

    def stop(self) -> None: ...

    def describe(self) -> str:
        """One line for the report: what runs where."""

    def prometheus_url(self) -> str:
        """The base URL of the cluster's Prometheus, reachable from this machine."""

    @property
    def rollback_allowance(self) -> RollbackAllowance:
        """The backend's allowance between an abort and the data plane applying it."""
