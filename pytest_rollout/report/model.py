"""The report directory read into typed objects: the session, each experiment, each release run.

The format is the one the experiments write (see :mod:`pytest_rollout.evidence`)::

    DIR/_session.json               the session header
    DIR/<experiment>/summary.json   verdict, headline, metrics, event lines
    DIR/<experiment>/timeline.json  the release runs: status samples, measurements, events
    DIR/<experiment>/<run>.csv      the traffic log of a run

Every reader raises :class:`ReportDataError` naming the file and the field that is wrong.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_rollout.backends.base import EventView
from pytest_rollout.errors import RolloutError

SESSION_FILE = "_session.json"
SUMMARY_FILE = "summary.json"
TIMELINE_FILE = "timeline.json"

VERDICTS = ("passed", "failed", "inconclusive", "error", "skipped")


class ReportDataError(RolloutError):
    """A file of the report directory is unreadable or does not have the expected shape."""


@dataclass(frozen=True)
class SessionInfo:
    """How the session that produced the report ran: enough to reproduce it."""

    header: tuple[str, ...]
    started: str | None
    finished: str | None
    backend: str | None
    argv: tuple[str, ...]


@dataclass(frozen=True)
class Summary:
    """An experiment's ``summary.json``."""

    experiment: str
    backend: str
    verdict: str
    message: str
    headline: str
    kind: str | None
    metrics: Mapping[str, Any]
    events: tuple[str, ...]
    finished: str | None


@dataclass(frozen=True)
class StatusSample:
    """The Rollout's status at ``t``; step is 1-based, None for a Deployment."""

    t: float
    phase: str
    step: int | None
    steps: int | None
    weight: int | None
    stable_hash: str | None
    canary_hash: str | None


@dataclass(frozen=True)
class Measurement:
    """One measurement of an AnalysisRun metric; ``thresholds`` come from its conditions."""

    t: float
    run: str
    metric: str
    phase: str
    value: float | None
    message: str
    success_condition: str | None
    failure_condition: str | None
    thresholds: tuple[float, ...]
    value_text: str = ""
    """The measurement's value as recorded (a web answer's JSON, say), when it is not a number."""


@dataclass(frozen=True)
class ResourcePoint:
    t: float
    ready: int
    not_ready: int
    memory_bytes: int


@dataclass(frozen=True)
class RunTimeline:
    """One release under load. Its time axis is seconds from ``released_at``."""

    label: str
    traffic: str | None
    released_at: float
    status: tuple[StatusSample, ...] = ()
    analysis: tuple[Measurement, ...] = ()
    events: tuple[EventView, ...] = ()
    """as the backends report them; ``t`` in the file is ``timestamp``"""
    blast_radius: tuple[float, float] | None = None
    rollback_at: float | None = None
    resources: tuple[ResourcePoint, ...] = ()
    strategy: str | None = None

    def rel(self, t: float) -> float:
        """Seconds from the release."""
        return t - self.released_at


@dataclass(frozen=True)
class Experiment:
    """An experiment directory: its summary and the release runs it recorded."""

    directory: Path
    summary: Summary
    runs: tuple[RunTimeline, ...] = field(default=())

    @property
    def name(self) -> str:
        return self.directory.name


# -- reading -------------------------------------------------------------------------------


def read_session(report_dir: Path) -> SessionInfo | None:
    """``DIR/_session.json``, or None when the directory has none."""
    path = report_dir / SESSION_FILE
    if not path.is_file():
        return None
    data = _Fields(_load_json(path), str(path))
    return SessionInfo(
        header=tuple(data.strings("header", default=())),
        started=data.optional_text("started"),
        finished=data.optional_text("finished"),
        backend=data.optional_text("backend"),
        argv=tuple(data.strings("argv", default=())),
    )


def experiment_dirs(report_dir: Path) -> list[Path]:
    """The experiment directories of a report: those holding a ``summary.json``, by name."""
    if not report_dir.is_dir():
        return []
    return sorted(p.parent for p in report_dir.glob(f"*/{SUMMARY_FILE}"))


def read_experiment(directory: Path) -> Experiment:
    """An experiment directory; its runs come from ``timeline.json`` when it has one."""
    summary = read_summary(directory / SUMMARY_FILE)
    timeline = directory / TIMELINE_FILE
    runs = read_timeline(timeline) if timeline.is_file() else ()
    for run in runs:
        if run.traffic is not None and not (directory / run.traffic).is_file():
            raise ReportDataError(
                f"{timeline}: run {run.label!r}: traffic file {run.traffic!r} is not in {directory}"
            )
    return Experiment(directory, summary, runs)


def read_summary(path: Path) -> Summary:
    data = _Fields(_load_json(path), str(path))
    verdict = data.optional_text("verdict") or "error"
    if verdict not in VERDICTS:
        raise ReportDataError(f"{path}: verdict {verdict!r}; allowed: {', '.join(VERDICTS)}")
    return Summary(
        experiment=data.text("experiment"),
        backend=data.optional_text("backend") or "?",
        verdict=verdict,
        message=data.optional_text("message") or "",
        headline=data.optional_text("headline") or "",
        kind=data.optional_text("kind"),
        metrics=data.mapping("metrics", default={}),
        events=tuple(data.strings("events", default=())),
        finished=data.optional_text("finished"),
    )


def read_timeline(path: Path) -> tuple[RunTimeline, ...]:
    data = _Fields(_load_json(path), str(path))
    return tuple(_run(item) for item in data.objects("runs"))


def _run(data: _Fields) -> RunTimeline:
    window = data.child("window", required=False)
    blast: tuple[float, float] | None = None
    rollback_at: float | None = None
    if window is not None:
        pair = window.numbers("blast_radius", optional=True)
        if pair is not None:
            if len(pair) != 2 or pair[1] < pair[0]:
                raise ReportDataError(
                    f"{window.where}.blast_radius: expected [start, end] with start <= end, "
                    f"got {pair}"
                )
            blast = (pair[0], pair[1])
        rollback_at = window.optional_number("rollback_at")
    return RunTimeline(
        label=data.text("label"),
        traffic=data.optional_text("traffic"),
        released_at=data.number("released_at"),
        status=tuple(_status(item) for item in data.objects("status", default=())),
        analysis=tuple(_measurement(item) for item in data.objects("analysis", default=())),
        events=tuple(_event(item) for item in data.objects("events", default=())),
        blast_radius=blast,
        rollback_at=rollback_at,
        resources=tuple(_resource(item) for item in data.objects("resources", default=())),
        strategy=data.optional_text("strategy"),
    )


def _status(data: _Fields) -> StatusSample:
    return StatusSample(
        t=data.number("t"),
        phase=data.optional_text("phase") or "",
        step=data.optional_int("step"),
        steps=data.optional_int("steps"),
        weight=data.optional_int("weight"),
        stable_hash=data.optional_text("stable_hash"),
        canary_hash=data.optional_text("canary_hash"),
    )


def _measurement(data: _Fields) -> Measurement:
    return Measurement(
        t=data.number("t"),
        run=data.optional_text("run") or "",
        metric=data.text("metric"),
        phase=data.text("phase"),
        value=data.optional_number("value"),
        message=data.optional_text("message") or "",
        success_condition=data.optional_text("success_condition"),
        failure_condition=data.optional_text("failure_condition"),
        thresholds=tuple(data.numbers("thresholds", optional=True) or ()),
        value_text=data.optional_text("value_text") or "",
    )


def _event(data: _Fields) -> EventView:
    return EventView(
        timestamp=data.number("t"),
        type=data.optional_text("type") or "Normal",
        reason=data.text("reason"),
        message=data.optional_text("message") or "",
        kind=data.optional_text("kind") or "",
        name=data.optional_text("name") or "",
    )


def _resource(data: _Fields) -> ResourcePoint:
    return ResourcePoint(
        t=data.number("t"),
        ready=data.integer("ready"),
        not_ready=data.optional_int("not_ready") or 0,
        memory_bytes=data.optional_int("memory_bytes") or 0,
    )


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise ReportDataError(f"{path}: cannot read: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise ReportDataError(f"{path}: not JSON: {exc}") from exc


class _Fields:
    """Typed access to one JSON object; errors name ``where`` and the key."""

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, dict):
            raise ReportDataError(f"{where}: expected an object, got {_kind(data)}")
        self.data: dict[str, Any] = data
        self.where = where

    def _fail(self, key: str, expected: str) -> ReportDataError:
        return ReportDataError(
            f"{self.where}.{key}: expected {expected}, got {_kind(self.data.get(key))}"
        )

    def text(self, key: str) -> str:
        value = self.data.get(key)
        if not isinstance(value, str) or not value:
            raise self._fail(key, "a non-empty string")
        return value

    def optional_text(self, key: str) -> str | None:
        value = self.data.get(key)
        if value is None or isinstance(value, str):
            return value
        raise self._fail(key, "a string or null")

    def number(self, key: str) -> float:
        value = self.optional_number(key)
        if value is None:
            raise self._fail(key, "a number")
        return value

    def optional_number(self, key: str) -> float | None:
        value = self.data.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self._fail(key, "a number or null")
        return float(value) if math.isfinite(value) else None

    def integer(self, key: str) -> int:
        value = self.optional_int(key)
        if value is None:
            raise self._fail(key, "an integer")
        return value

    def optional_int(self, key: str) -> int | None:
        value = self.data.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
            raise self._fail(key, "an integer or null")
        return int(value)

    def numbers(self, key: str, *, optional: bool = False) -> list[float] | None:
        value = self.data.get(key)
        if value is None and optional:
            return None
        if not isinstance(value, list) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in value
        ):
            raise self._fail(key, "a list of numbers" + (" or null" if optional else ""))
        return [float(v) for v in value]

    def strings(self, key: str, *, default: Sequence[str]) -> list[str]:
        value = self.data.get(key)
        if value is None:
            return list(default)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self._fail(key, "a list of strings")
        return list(value)

    def mapping(self, key: str, *, default: Mapping[str, Any]) -> Mapping[str, Any]:
        value = self.data.get(key)
        if value is None:
            return dict(default)
        if not isinstance(value, dict):
            raise self._fail(key, "an object")
        return value

    def child(self, key: str, *, required: bool = True) -> _Fields | None:
        value = self.data.get(key)
        if value is None and not required:
            return None
        return _Fields(value, f"{self.where}.{key}")

    def objects(self, key: str, *, default: Sequence[Any] | None = None) -> list[_Fields]:
        value = self.data.get(key)
        if value is None and default is not None:
            value = list(default)
        if not isinstance(value, list):
            raise self._fail(key, "a list of objects")
        return [_Fields(item, f"{self.where}.{key}[{i}]") for i, item in enumerate(value)]


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, str):
        return repr(value) if len(value) <= 40 else f"a string of {len(value)} characters"
    if isinstance(value, bool | int | float):
        return repr(value)
    return f"a{'n' if type(value).__name__[0] in 'aeiou' else ''} {type(value).__name__}"
