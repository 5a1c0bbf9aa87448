"""What every backend offers the experiments: a cluster of namespaces and a handle on each.

Experiments are written against these protocols only, so the same test runs on ``local`` and on
``kube``.
"""

from __future__ import annotations

import math
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Protocol

from pytest_rollout.config import TargetConfig, Variant
from pytest_rollout.errors import ConfigError
from pytest_rollout.manifests import Manifest
from pytest_rollout.options import RolloutOptions

_MAX_NAMESPACE = 63
_SUFFIX = 6


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
class AnalysisRunView:
    """An AnalysisRun as ``status`` shows it: phase, message, and each metric's phase."""

    name: str
    phase: str
    message: str
    metric_phases: Mapping[str, str]


@dataclass(frozen=True)
class RolloutView:
    """A Rollout's status: phase (Healthy, Progressing, Paused, Degraded), message, step."""

    name: str
    phase: str
    message: str
    current_step_index: int | None
    canary_weight: int
    stable_hash: str | None
    canary_hash: str | None
    aborted: bool


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
            raise ValueError(f"rollback allowance parts must be >= 0 seconds, got {parts}")
        if not math.isclose(self.seconds, sum(parts.values()), abs_tol=1e-9):
            raise ValueError(
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

    def apply(self, manifests: Iterable[Manifest]) -> None:
        """Create the objects (kubectl apply)."""

    def release(self, workload: str, variant: Variant) -> None:
        """Change the workload's (Deployment's or Rollout's) pod template to the variant."""

    def rollout(self, name: str) -> RolloutHandle:
        """The handle of Rollout ``name``."""

    def wait_rolled_out(self, workload: str, *, timeout: float) -> object:
        """Wait until every replica runs the current template and is available."""

    def route_url(self, route: str) -> str:
        """The client-facing URL of an HTTPRoute."""

    def event_lines(self) -> list[str]:
        """The namespace's events, oldest first, one line each."""

    def capture(self, destination: Path) -> None:
        """Write pod logs and events under ``destination`` (evidence of a failed test)."""

    def delete(self) -> None:
        """Delete the namespace and everything in it."""

    @property
    def rollback_allowance(self) -> RollbackAllowance:
        """How long after a recorded abort the data plane may still route to the canary."""


class Cluster(Protocol):
    """A backend's cluster: created once per session (per xdist worker)."""

    def create_namespace(self, name: str) -> Namespace: ...

    def prometheus_url(self) -> str:
        """The Prometheus the analysis runs query, reachable from this machine."""

    @property
    def rollback_allowance(self) -> RollbackAllowance:
        """How long after a recorded abort the data plane may still route to the canary."""

    def stop(self) -> None: ...

    def describe(self) -> str:
        """One line for the report: what runs where."""


def open_cluster(options: RolloutOptions, workdir: Path, target: TargetConfig) -> Cluster:
    """Start the cluster of the chosen backend."""
    if options.backend == "local":
        from pytest_rollout.backends.local.cluster import LocalCluster

        return LocalCluster(workdir, target, propagation_delay=options.endpoint_delay).start()
    if options.backend == "kube":
        from pytest_rollout.backends.kube.cluster import open_kube_cluster

        return open_kube_cluster(options, workdir, target)
    raise ConfigError(
        f"--rollout-backend={options.backend}: unknown backend (allowed: local, kube)"
    )


def namespace_name(test_name: str) -> str:
    """A DNS-1123 label for a test's namespace: the test's name, shortened, plus a random
    suffix so that reruns and xdist workers never collide."""
    slug = re.sub(r"[^a-z0-9]+", "-", test_name.lower()).strip("-") or "test"
    slug = slug[: _MAX_NAMESPACE - _SUFFIX - 1].rstrip("-")
    return f"{slug}-{secrets.token_hex(_SUFFIX // 2)}"
