"""Live progress of an experiment on the terminal.

The release runner hands a :class:`ProgressSnapshot` to :meth:`ProgressReporter.update` about
four times a second. On a terminal one line is rewritten in place, about once a second and at
once when the state changes; where the output is not a terminal (CI logs) a line is printed per
state change — phase, step, weight or analysis phase — never per rate wobble; under ``-q``, on
an xdist worker (whose output nobody sees) or without pytest's terminal, nothing is shown.
"""

from __future__ import annotations

import contextlib
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Literal, Protocol

import pytest

Mode = Literal["tty", "lines", "off"]

REDRAW_INTERVAL = 1.0
"""Seconds between rewrites of the terminal line when nothing but the numbers changed."""


@dataclass(frozen=True)
class ProgressSnapshot:
    """Where an experiment's release stands right now."""

    experiment: str
    phase: str
    """Rollout phase, or what the experiment is doing ("Deploying", "Warming up", ...)"""
    step: int | None
    """1-based current step; None for a Deployment"""
    steps: int | None
    weight: int | None
    """canary weight, %"""
    achieved_rate: float
    """req/s over the last second"""
    errors_by_version: Mapping[str, int]
    """client-visible failures so far, by serving version"""
    analysis_phase: str | None
    """the newest AnalysisRun's phase"""
    run: str | None = None
    """the release run's label, when an experiment runs several (at once, say)"""

    def state(self) -> tuple[object, ...]:
        """The fields whose change is worth a line of its own."""
        return (
            self.experiment,
            self.phase,
            self.step,
            self.steps,
            self.weight,
            self.analysis_phase,
        )


def describe(snapshot: ProgressSnapshot) -> str:
    """``bad-canary | Paused | step 2/3 | weight 5% | 199.8 req/s | errors v1 0, v2 58 |
    analysis Running`` — only the parts the snapshot has."""
    name = f"{snapshot.experiment} {snapshot.run}" if snapshot.run else snapshot.experiment
    parts = [name, snapshot.phase]
    if snapshot.step is not None:
        parts.append(f"step {snapshot.step}/{snapshot.steps if snapshot.steps else '?'}")
    if snapshot.weight is not None:
        parts.append(f"weight {snapshot.weight}%")
    parts.append(f"{snapshot.achieved_rate:.1f} req/s")
    errors = ", ".join(f"{v} {n:,}" for v, n in sorted(snapshot.errors_by_version.items()))
    parts.append(f"errors {errors or 'none'}")
    if snapshot.analysis_phase is not None:
        parts.append(f"analysis {snapshot.analysis_phase}")
    return " | ".join(parts)


class ProgressOutput(Protocol):
    """Where the reporter writes: one line rewritten in place, or new lines."""

    def rewrite(self, line: str) -> None: ...

    def line(self, line: str) -> None: ...


class ProgressSink(Protocol):
    """What the release runner reports to: :class:`ProgressReporter`, or anything else that
    takes snapshots."""

    def update(self, snapshot: ProgressSnapshot) -> None: ...

    def close(self) -> None: ...


class ProgressReporter:
    """Shows the snapshots of one experiment; thread-safe, and silent in mode ``off``."""

    def __init__(
        self,
        output: ProgressOutput | None,
        mode: Mode,
        *,
        clock: Callable[[], float] = time.monotonic,
        interval: float = REDRAW_INTERVAL,
    ) -> None:
        self.mode: Mode = mode if output is not None else "off"
        self._output = output
        self._clock = clock
        self._interval = interval
        self._lock = threading.Lock()
        self._started: float | None = None
        self._drawn_at: float | None = None
        # The last state of each run: several releases at once report in turn.
        self._states: dict[str | None, tuple[object, ...]] = {}
        self._closed = False
        self.last: ProgressSnapshot | None = None

    def update(self, snapshot: ProgressSnapshot) -> None:
        with self._lock:
            if self._closed:
                return
            now = self._clock()
            if self._started is None:
                self._started = now
            self.last = snapshot
            changed = snapshot.state() != self._states.get(snapshot.run)
            self._states[snapshot.run] = snapshot.state()
            if self._output is None or self.mode == "off":
                return
            elapsed = f"+{now - self._started:.0f}s"
            if self.mode == "lines":
                if changed:
                    self._output.line(f"rollout {elapsed} {describe(snapshot)}")
                return
            due = self._drawn_at is None or now - self._drawn_at >= self._interval
            if changed or due:
                self._output.rewrite(f"rollout {elapsed} {describe(snapshot)}")
                self._drawn_at = now

    def close(self) -> None:
        """End the progress display (idempotent). On a terminal the last line stays as it is:
        pytest writes the test's result after it and then goes to a new line."""
        with self._lock:
            self._closed = True


class _Capture(Protocol):
    def global_and_fixture_disabled(self) -> AbstractContextManager[None]: ...


class TerminalSink:
    """pytest's terminal, with output capture suspended while writing (as live logging does),
    so that the line reaches the terminal during a test's call phase."""

    def __init__(self, terminal: pytest.TerminalReporter, capture: _Capture | None) -> None:
        self._terminal = terminal
        self._capture = capture
        self._fresh = True

    def rewrite(self, line: str) -> None:
        width = shutil.get_terminal_size().columns - 1
        with self._writing():
            if self._fresh:
                # Start below whatever the test's line holds (its path and result letters).
                self._terminal.ensure_newline()
                self._fresh = False
            self._terminal.rewrite(line[:width], erase=True)

    def line(self, line: str) -> None:
        with self._writing():
            self._terminal.write_line(line)

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        with self._capture.global_and_fixture_disabled() if self._capture else nullcontext():
            yield
            self._terminal.flush()


def progress_reporter(config: pytest.Config) -> ProgressReporter:
    """A reporter bound to this session's terminal, in the mode the terminal calls for."""
    terminal = config.pluginmanager.get_plugin("terminalreporter")
    worker = hasattr(config, "workerinput")
    if worker or terminal is None or config.get_verbosity() < 0:
        return ProgressReporter(None, "off")
    capture = config.pluginmanager.get_plugin("capturemanager")
    mode: Mode = "tty" if bool(terminal.isatty) else "lines"
    return ProgressReporter(TerminalSink(terminal, capture), mode)
