"""What the local kubelet keeps of a pod: how a container runs, its state, the pod's status
snapshot, the CrashLoopBackOff window and the memory of a container's processes.

* Restarts go through the kubelet's CrashLoopBackOff (``flowcontrol.Backoff``): the first
  restart is immediate, then 10 s doubling to 300 s, reset after 10 minutes without a restart.
* Memory: the resident set of a container's processes (its session), summed from /proc.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pytest_rollout._proc import ManagedProcess
from pytest_rollout.backends.local.pod_spec import ContainerSpec

BACKOFF_INITIAL_SECONDS = 10
BACKOFF_MAX_SECONDS = 300

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class Launch:
    """How to run a container locally: what the caller's resolver returns for an image."""

    argv: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path | None = None


CommandResolver = Callable[[ContainerSpec, str], Launch]
"""``resolver(container, pod_ip) -> Launch``: maps the container's image (and command/args)
to a local command line."""


class PodPhase(enum.Enum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


@dataclass(frozen=True)
class ContainerState:
    """``waiting`` (reason ContainerCreating / PodInitializing / CrashLoopBackOff), ``running``
    or ``terminated`` (reason Completed / Error / StartError)."""

    state: Literal["waiting", "running", "terminated"]
    reason: str = ""
    exit_code: int | None = None
    started_at: float | None = None
    finished_at: float | None = None


@dataclass(frozen=True)
class InitContainerStatus:
    """One entry of ``status.initContainerStatuses``."""

    name: str
    state: ContainerState
    last_state: ContainerState | None = None
    restart_count: int = 0


@dataclass(frozen=True)
class MemoryUsage:
    rss_bytes: int = 0
    peak_rss_bytes: int = 0
    sampled_at: float | None = None


@dataclass(frozen=True)
class PodStatus:
    """A snapshot of a pod's state, safe to hand to another thread."""

    name: str
    namespace: str
    uid: str
    ip: str | None
    phase: PodPhase
    ready: bool
    ready_since: float | None
    started: bool
    restart_count: int
    state: ContainerState
    last_state: ContainerState | None
    deletion_timestamp: float | None
    deleted: bool
    memory: MemoryUsage
    initialized: bool = True
    init_containers: tuple[InitContainerStatus, ...] = ()


class RestartBackoff:
    """The kubelet's CrashLoopBackOff window for one container (``flowcontrol.Backoff``).

    The first restart is immediate; each later one waits the current back-off measured from
    when the container finished, the back-off doubling from ``initial`` up to ``cap``; an entry
    untouched for twice the cap starts over.
    """

    def __init__(
        self,
        initial: float = float(BACKOFF_INITIAL_SECONDS),
        cap: float = float(BACKOFF_MAX_SECONDS),
    ) -> None:
        self.initial = initial
        self.cap = cap
        self.backoff: float | None = None
        self._last_update = 0.0

    def wait_before_restart(self, finished_at: float, now: float) -> float:
        """How long a container that finished at ``finished_at`` must still wait at ``now``."""
        if self.backoff is None or self._expired(finished_at):
            return 0.0
        return max(0.0, self.backoff - (now - finished_at))

    def restarting(self, finished_at: float, now: float) -> None:
        """Advance the back-off as the container is restarted at ``now``."""
        if self.backoff is None or self._expired(finished_at):
            self.backoff = self.initial
        else:
            self.backoff = min(self.backoff * 2, self.cap)
        self._last_update = now

    def _expired(self, event_time: float) -> bool:
        return event_time - self._last_update > 2 * self.cap


def session_rss(session_id: int) -> int:
    """Resident bytes of every process in session ``session_id`` (a container's processes)."""
    total = 0
    with os.scandir("/proc") as entries:
        for entry in entries:
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as handle:
                    stat = handle.read()
            except OSError:
                continue  # the process exited while we looked
            fields = stat[stat.rfind(b")") + 2 :].split()
            if len(fields) > 21 and int(fields[3]) == session_id:
                total += int(fields[21]) * _PAGE_SIZE
    return total


@dataclass
class ContainerRecord:
    """The kubelet's record of one container of a pod: how it runs, its process and state."""

    spec: ContainerSpec
    state: ContainerState
    backoff: RestartBackoff
    init: bool = False
    launch: Launch | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    process: ManagedProcess | None = None
    last_state: ContainerState | None = None
    restart_count: int = 0

    @property
    def succeeded(self) -> bool:
        return _succeeded(self.state)

    def running_pid(self) -> int | None:
        process = self.process
        return process.pid if process is not None and process.running() else None

    def init_status(self) -> InitContainerStatus:
        return InitContainerStatus(self.spec.name, self.state, self.last_state, self.restart_count)


def describe_status(status: PodStatus, warnings: Sequence[str]) -> str:
    """One line of evidence: phase, the pending init container, the app container's state and
    restarts, and ``warnings`` (the latest warning event lines)."""
    parts = [f"phase {status.phase.value}"]
    inits = status.init_containers
    pending = next((init for init in inits if not _succeeded(init.state)), None)
    if pending is not None:
        parts.append(
            f"init container {pending.name} "
            f"({inits.index(pending) + 1}/{len(inits)}) "
            + _state_text(pending.state)
            + f", init restarts {pending.restart_count}"
        )
        if pending.last_state is not None and pending.last_state.exit_code is not None:
            parts.append(f"last init exit code {pending.last_state.exit_code}")
    parts += [f"container {_state_text(status.state)}", f"restarts {status.restart_count}"]
    if status.last_state is not None and status.last_state.exit_code is not None:
        parts.append(f"last exit code {status.last_state.exit_code}")
    if warnings:
        parts.append("recent warnings: " + " | ".join(warnings))
    return ", ".join(parts)


def _succeeded(state: ContainerState) -> bool:
    return state.state == "terminated" and state.exit_code == 0


def _state_text(state: ContainerState) -> str:
    """``waiting (CrashLoopBackOff)``, for evidence lines."""
    return state.state + (f" ({state.reason})" if state.reason else "")
