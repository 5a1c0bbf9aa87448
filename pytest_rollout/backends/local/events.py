"""Kubernetes-shaped events, recorded in memory as evidence of what the local cluster did.

Records follow the ``core/v1`` Event shape (type, reason, message, involvedObject, source) and
the local backend uses the reasons and message formats the kubelet and scheduler emit
(``pkg/kubelet/events/event.go``, ``pkg/kubelet/kuberuntime/kuberuntime_container.go``). Unlike
the API server's event correlator, every occurrence is kept as its own record (no ``count``
aggregation): the evidence timeline needs each instant.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from pytest_rollout.clock import epoch_now

EventType = Literal["Normal", "Warning"]
NORMAL: EventType = "Normal"
WARNING: EventType = "Warning"

# Reasons used for pods (the kubelet's and scheduler's constants).
SCHEDULED = "Scheduled"
PULLED = "Pulled"
CREATED = "Created"
STARTED = "Started"
FAILED = "Failed"
UNHEALTHY = "Unhealthy"
KILLING = "Killing"
BACK_OFF = "BackOff"
FAILED_PRE_STOP_HOOK = "FailedPreStopHook"

KUBELET = "kubelet"
SCHEDULER = "default-scheduler"


@dataclass(frozen=True)
class ObjectRef:
    """The ``involvedObject`` of an event."""

    kind: str
    name: str
    namespace: str

    def __str__(self) -> str:
        return f"{self.kind.lower()}/{self.name}"


@dataclass(frozen=True)
class Event:
    """One occurrence of a Kubernetes event."""

    timestamp: float
    type: EventType
    reason: str
    message: str
    involved: ObjectRef
    source: str = KUBELET

    def line(self, origin: float) -> str:
        """``+12.3s Warning Unhealthy pod/x: Readiness probe failed: ...``"""
        return (
            f"{self.timestamp - origin:+.1f}s {self.type} {self.reason} "
            f"{self.involved}: {self.message}"
        )

    def to_dict(self) -> dict[str, Any]:
        """The event as a JSON-ready dict in the ``core/v1`` Event layout."""
        return {
            "timestamp": self.timestamp,
            "type": self.type,
            "reason": self.reason,
            "message": self.message,
            "involvedObject": {
                "kind": self.involved.kind,
                "name": self.involved.name,
                "namespace": self.involved.namespace,
            },
            "source": {"component": self.source},
        }


EventListener = Callable[[Event], None]


class EventRecorder:
    """A thread-safe, queryable, append-only event log.

    ``origin`` is the instant printed lines are relative to (``+12.3s``); it defaults to the
    recorder's creation time.
    """

    def __init__(
        self, *, clock: Callable[[], float] = epoch_now, origin: float | None = None
    ) -> None:
        self._clock = clock
        self.origin = clock() if origin is None else origin
        self._events: list[Event] = []
        self._listeners: list[EventListener] = []
        self._lock = threading.Lock()

    def record(
        self,
        involved: ObjectRef,
        type: EventType,
        reason: str,
        message: str,
        *,
        source: str = KUBELET,
    ) -> Event:
        event = Event(self._clock(), type, reason, message, involved, source)
        with self._lock:
            self._events.append(event)
            listeners = list(self._listeners)
        for listener in listeners:
            listener(event)
        return event

    def normal(
        self, involved: ObjectRef, reason: str, message: str, *, source: str = KUBELET
    ) -> Event:
        return self.record(involved, NORMAL, reason, message, source=source)

    def warning(
        self, involved: ObjectRef, reason: str, message: str, *, source: str = KUBELET
    ) -> Event:
        return self.record(involved, WARNING, reason, message, source=source)

    def subscribe(self, listener: EventListener) -> Callable[[], None]:
        """Call ``listener(event)`` on the recording thread; returns an unsubscribe."""
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def events(
        self,
        *,
        kind: str | None = None,
        name: str | None = None,
        namespace: str | None = None,
        reason: str | None = None,
        type: EventType | None = None,
        since: float | None = None,
    ) -> list[Event]:
        """Events matching every given filter, oldest first."""
        with self._lock:
            snapshot = list(self._events)
        return [
            e
            for e in snapshot
            if (kind is None or e.involved.kind == kind)
            and (name is None or e.involved.name == name)
            and (namespace is None or e.involved.namespace == namespace)
            and (reason is None or e.reason == reason)
            and (type is None or e.type == type)
            and (since is None or e.timestamp >= since)
        ]

    def for_object(self, ref: ObjectRef) -> list[Event]:
        return self.events(kind=ref.kind, name=ref.name, namespace=ref.namespace)

    def with_reason(self, reason: str) -> list[Event]:
        return self.events(reason=reason)

    def lines(
        self, events: Iterable[Event] | None = None, *, origin: float | None = None
    ) -> list[str]:
        """Printable lines relative to ``origin`` (default :attr:`origin`); all events unless
        ``events`` is given."""
        chosen = self.events() if events is None else list(events)
        start = self.origin if origin is None else origin
        return [e.line(start) for e in chosen]

    def format(self, events: Iterable[Event] | None = None) -> str:
        return "\n".join(self.lines(events))

    def __len__(self) -> int:
        with self._lock:
            return len(self._events)
