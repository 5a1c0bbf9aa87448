"""Live progress: when the reporter writes (pure logic, with a fake clock), and what a real pytest
session shows on a terminal, in a CI log, under -q and on an xdist worker (pytester)."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from pytest_rollout.progress import ProgressReporter, ProgressSnapshot, describe

SNAPSHOT = ProgressSnapshot(
    experiment="bad-canary",
    phase="Paused",
    step=2,
    steps=3,
    weight=5,
    achieved_rate=199.84,
    errors_by_version={"v2-bad": 58, "v1": 0},
    analysis_phase=None,
)


@dataclass
class Recorder:
    rewrites: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    def rewrite(self, line: str) -> None:
        self.rewrites.append(line)

    def line(self, line: str) -> None:
        self.lines.append(line)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_describe_shows_every_part_the_snapshot_has() -> None:
    assert describe(SNAPSHOT) == (
        "bad-canary | Paused | step 2/3 | weight 5% | 199.8 req/s | errors v1 0, v2-bad 58"
    )
    deployment = replace(
        SNAPSHOT, phase="Rolling out", step=None, steps=None, weight=None, errors_by_version={}
    )
    assert describe(deployment) == "bad-canary | Rolling out | 199.8 req/s | errors none"
    assert describe(replace(SNAPSHOT, analysis_phase="Running")).endswith("| analysis Running")


def test_terminal_line_is_rewritten_once_a_second_and_at_once_on_a_state_change() -> None:
    sink, clock = Recorder(), Clock()
    reporter = ProgressReporter(sink, "tty", clock=clock)
    for i in range(8):  # two seconds of rate wobble at 4 updates a second
        reporter.update(replace(SNAPSHOT, achieved_rate=199 + i / 10))
        clock.now += 0.25
    assert len(sink.rewrites) == 2
    assert sink.rewrites[0].startswith("rollout +0s bad-canary | Paused")
    assert sink.rewrites[1].startswith("rollout +1s ")

    reporter.update(replace(SNAPSHOT, analysis_phase="Running"))
    assert len(sink.rewrites) == 3, "a state change is shown at once"
    reporter.close()
    reporter.close()
    reporter.update(SNAPSHOT)
    assert len(sink.rewrites) == 3, "nothing after close"
    assert not sink.lines


def test_ci_log_gets_a_line_per_state_change_only() -> None:
    sink, clock = Recorder(), Clock()
    reporter = ProgressReporter(sink, "lines", clock=clock)
    states = [
        SNAPSHOT,
        replace(SNAPSHOT, achieved_rate=180.0, errors_by_version={"v2-bad": 70}),  # numbers
        replace(SNAPSHOT, step=3, phase="Progressing"),
        replace(SNAPSHOT, step=3, phase="Progressing", analysis_phase="Running"),
        replace(SNAPSHOT, step=3, phase="Progressing", analysis_phase="Failed"),
        replace(SNAPSHOT, step=1, phase="Degraded", weight=0, analysis_phase="Failed"),
        replace(SNAPSHOT, step=1, phase="Degraded", weight=0, analysis_phase="Failed"),
    ]
    for state in states:
        reporter.update(state)
        clock.now += 2.0
    reporter.close()
    assert [line.split(" | ")[1] for line in sink.lines] == [
        "Paused",
        "Progressing",
        "Progressing",
        "Progressing",
        "Degraded",
    ]
    assert sink.lines[-1].startswith("rollout +10s bad-canary | Degraded | step 1/3 | weight 0%")
    assert not sink.rewrites


def test_releases_reporting_in_turn_get_a_line_per_change_of_their_own() -> None:
    sink, clock = Recorder(), Clock()
    reporter = ProgressReporter(sink, "lines", clock=clock)
    runs = [replace(SNAPSHOT, run=label) for label in ("gate-a/bad", "gate-b/bad")]
    for second in range(4):
        for run in runs:
            reporter.update(replace(run, achieved_rate=199 + second / 10))
        clock.now += 1.0
    reporter.update(replace(runs[1], phase="Degraded", weight=0))
    assert [line.split(" | ")[0] for line in sink.lines] == [
        "rollout +0s bad-canary gate-a/bad",
        "rollout +0s bad-canary gate-b/bad",
        "rollout +4s bad-canary gate-b/bad",
    ]


def test_off_shows_nothing_but_keeps_the_last_snapshot() -> None:
    reporter = ProgressReporter(None, "tty")
    assert reporter.mode == "off"
    reporter.update(SNAPSHOT)
    reporter.close()
    assert reporter.last == SNAPSHOT


INNER_TEST = """
from pytest_rollout.progress import ProgressSnapshot

def snapshot(phase, step, weight, rate, analysis=None):
    return ProgressSnapshot("bad-canary", phase, step, 3, weight, rate, {"v2-bad": 3}, analysis)

def test_release(rollout_progress):
    for rate in (199.5, 200.1, 199.9, 200.3):
        rollout_progress.update(snapshot("Paused", 2, 5, rate))
    rollout_progress.update(snapshot("Progressing", 3, 5, 200.0, "Running"))
    rollout_progress.update(snapshot("Degraded", 1, 0, 200.0, "Failed"))
    print("the test's own output")
    MODE.append(rollout_progress.mode)

MODE = []

def test_mode_seen():
    print("MODE=" + ",".join(MODE))
"""


@pytest.mark.slow
def test_ci_log_shows_state_changes_through_pytest(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(INNER_TEST)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    progress = [line for line in result.outlines if line.startswith("rollout +")]
    assert [line.split(" | ")[1] for line in progress] == ["Paused", "Progressing", "Degraded"]
    assert "the test's own output" not in result.stdout.str(), "capture still works"


@pytest.mark.slow
def test_quiet_shows_no_progress(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(INNER_TEST)
    result = pytester.runpytest_subprocess("-q", "-s", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    assert "MODE=off" in result.stdout.str()
    assert "rollout +" not in result.stdout.str()


@pytest.mark.slow
def test_xdist_worker_shows_no_progress(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(INNER_TEST)
    result = pytester.runpytest_subprocess("-n", "1", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    assert "rollout +" not in result.stdout.str()


def _run_in_terminal(directory: Path, *args: str, timeout: float = 120.0) -> str:
    """Run pytest with its output on a pseudo-terminal; return what the terminal received."""
    leader, follower = pty.openpty()
    env = {**os.environ, "COLUMNS": "160", "TERM": "xterm"}
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest", *args],
        cwd=directory,
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
        env=env,
    )
    os.close(follower)
    received = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(leader, 65536)
                except OSError:  # EIO: the terminal's other end is closed
                    break
                if not chunk:
                    break
                received += chunk
            elif process.poll() is not None:
                break
        else:
            raise AssertionError(f"pytest on a terminal still running after {timeout:g}s")
    finally:
        process.kill()
        process.wait()
        os.close(leader)
    # The terminal turns each newline into CR LF; what is left of CR is the rewriting.
    return received.decode(errors="replace").replace("\r\n", "\n")


@pytest.mark.slow
def test_terminal_shows_one_line_rewritten_in_place(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(INNER_TEST)
    output = _run_in_terminal(pytester.path, "-p", "no:cacheprovider")
    assert "2 passed" in output, output
    # Rewrites start with a carriage return and stay on one line; the last state stays, and
    # pytest's result letter for the test follows it.
    segments = output.split("\r")
    shown = [s for s in segments if s.lstrip("\n").startswith("rollout +")]
    phases = [s.split(" | ")[1] for s in shown]
    assert phases[0] == "Paused", output
    assert phases[-2:] == ["Progressing", "Degraded"], output
    assert phases.count("Paused") == 1, "rate wobble within a second is not redrawn"
    progress_lines = [line for line in output.split("\n") if "rollout +" in line]
    assert len(progress_lines) == 1, progress_lines
    last = progress_lines[0].split("\r")[-1]
    assert last.startswith("rollout +0s bad-canary | Degraded | step 1/3 | weight 0%"), last
    assert "| errors v2-bad 3 | analysis Failed " in last, last
