"""A run killed outright (``kill -9``) mid-experiment leaves nothing running 10 s later, and
the next run sweeps what a dead run recorded — but never a process that is not its own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_rollout._reaper import STATE_ENV, Registry, alive, start_time, sweep
from pytest_rollout._wait import wait_for
from tests.plugin.shop import make_shop_project

pytestmark = pytest.mark.slow  # starts real processes, or renders for seconds

EXPERIMENT = """
import pytest

@pytest.mark.rollout
def test_contained(rollout):
    run = rollout.release("broken", manifests="canary", rate=50)
    run.assert_aborted_by("error-ratio")
    run.assert_contained()
"""


def _recorded(state: Path) -> dict[int, int]:
    """Process groups recorded by every run under ``state``: leader pid -> start time."""
    groups = {}
    for entry in state.glob("runs/*/*"):
        if entry.name.isdigit():
            groups[int(entry.name)] = int(entry.read_text().split()[0])
    return groups


def test_sigkill_mid_experiment_leaves_no_process(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    make_shop_project(pytester, experiments="")
    pytester.makepyfile(test_shop=EXPERIMENT)
    state = tmp_path / "state"
    env = {**os.environ, STATE_ENV: str(state)}
    run = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:randomly", "-p", "no:cacheprovider"],
        cwd=pytester.path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # HAProxy, Prometheus and the Rollout's pods (2 stable, at least 1 canary) are up.
        seen = wait_for(
            lambda: groups if len(groups := _recorded(state)) >= 5 else None,
            what="the run to start HAProxy, Prometheus and the Rollout's pods",
            timeout=90,
            interval=0.2,
        )
    finally:
        run.send_signal(signal.SIGKILL)
        run.wait()
    everything = {**seen, **_recorded(state)}

    def survivors() -> list[int]:
        return [pid for pid, started in everything.items() if alive(pid, started)]

    wait_for(
        lambda: not survivors(),
        what=f"the {len(everything)} process groups of the killed run to be gone",
        timeout=10,
        interval=0.2,
    )
    # The guardian removes the run's records once it has stopped the groups.
    wait_for(
        lambda: not list(state.glob("runs/*")),
        what="the guardian to remove the killed run's records",
        timeout=10,
        interval=0.2,
    )


def test_the_next_run_sweeps_a_dead_runs_groups_and_spares_strangers(tmp_path: Path) -> None:
    # A dead run's directory: its owner pid is not alive with that start time.
    orphan = subprocess.Popen(["sleep", "60"], start_new_session=True)
    stranger = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        dead_run = tmp_path / "runs" / "999999999-1"
        dead_run.mkdir(parents=True)
        orphan_started, stranger_started = start_time(orphan.pid), start_time(stranger.pid)
        assert orphan_started is not None
        assert stranger_started is not None
        (dead_run / str(orphan.pid)).write_text(f"{orphan_started}\norphan\n")
        # A record whose pid now belongs to another process (a different start time).
        (dead_run / str(stranger.pid)).write_text(f"{stranger_started - 1}\nreused\n")
        assert sweep(tmp_path) == ["orphan"]
        assert orphan.wait(timeout=5) == -signal.SIGTERM
        assert stranger.poll() is None, "a process that is not the recorded one is spared"
        assert not dead_run.exists()
    finally:
        for process in (orphan, stranger):
            process.kill()
            process.wait()


def test_a_live_runs_groups_are_not_swept(tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    child = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        registry.record(child.pid, "sleeper")
        assert sweep(tmp_path) == [], "this process is alive: its run is not stale"
        assert child.poll() is None
        registry.forget(child.pid)
        assert registry.run_dir is not None
        assert not (registry.run_dir / str(child.pid)).exists()
    finally:
        child.kill()
        child.wait()
