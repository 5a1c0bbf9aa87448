"""Nothing outlives the run: process groups recorded on disk, and a guardian that stops them.

Every process the plugin starts runs in a process group of its own (so that stopping it stops
what it forked). Each group is recorded in a *run directory* under the state directory, with
the start time of its leader, and removed when it is stopped. Two things read those records:

- a **guardian** process, started with the first record of a run. It waits for end-of-file on
  a pipe whose other end only the run's process holds; the kernel closes that end however the
  process ends — normal exit, Ctrl-C, ``kill -9`` — so the guardian wakes and stops every group
  still recorded. (Linux's parent-death signal was not used: it fires when the *thread* that
  forked a child exits, and the local backend starts pods from its event-loop thread.)
- the **sweep** at the start of the next run: run directories whose owner is gone (the
  guardian was killed too) have their groups stopped.

A group is only signalled when its leader's pid still has the recorded start time, so a pid
that the kernel has since given to another process is never touched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

from pytest_rollout._wait import wait_for
from pytest_rollout.errors import WaitTimeout

STATE_ENV = "PYTEST_ROLLOUT_STATE_DIR"
_GRACE = 2.0


def state_dir() -> Path:
    """Where run directories live: ``$PYTEST_ROLLOUT_STATE_DIR``, else the XDG state dir."""
    explicit = os.environ.get(STATE_ENV)
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "pytest-rollout"


def start_time(pid: int) -> int | None:
    """The kernel's start time of ``pid`` (clock ticks since boot), None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: count fields after the last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[19])


def alive(pid: int, started: int) -> bool:
    """Whether ``pid`` is still the process that started at ``started``."""
    return start_time(pid) == started


class Registry:
    """This process's run directory: one file per live process group."""

    def __init__(self, root: Path | None = None) -> None:
        self._root = root
        self._lock = threading.Lock()
        self._run_dir: Path | None = None
        self._guardian: subprocess.Popen[bytes] | None = None

    @property
    def run_dir(self) -> Path | None:
        return self._run_dir

    def record(self, pgid: int, name: str) -> None:
        """Record a new process group (its leader is ``pgid``)."""
        started = start_time(pgid)
        if started is None:
            return  # already gone: nothing to stop later
        run_dir = self._ensure()
        (run_dir / str(pgid)).write_text(f"{started}\n{name}\n")

    def forget(self, pgid: int) -> None:
        """The group was stopped."""
        if self._run_dir is not None:
            with contextlib.suppress(FileNotFoundError):
                (self._run_dir / str(pgid)).unlink()

    def _ensure(self) -> Path:
        with self._lock:
            current = os.getpid()
            if self._run_dir is not None and self._run_dir.name.startswith(f"{current}-"):
                return self._run_dir
            root = self._root or state_dir()
            sweep(root)
            owner_started = start_time(current)
            run_dir = root / "runs" / f"{current}-{owner_started}"
            run_dir.mkdir(parents=True, exist_ok=True)
            self._run_dir = run_dir
            self._guardian = _start_guardian(run_dir)
            return run_dir


def sweep(root: Path) -> list[str]:
    """Stop the recorded groups of every run whose owner is gone; return what was stopped."""
    stopped: list[str] = []
    runs = root / "runs"
    if not runs.is_dir():
        return stopped
    for run_dir in runs.iterdir():
        owner, _, owner_started = run_dir.name.partition("-")
        if owner.isdigit() and owner_started.isdigit() and alive(int(owner), int(owner_started)):
            continue
        stopped.extend(stop_recorded(run_dir))
        shutil.rmtree(run_dir, ignore_errors=True)
    return stopped


def stop_recorded(run_dir: Path, grace: float = _GRACE) -> list[str]:
    """SIGTERM every recorded group whose leader is still the recorded process, SIGKILL what
    is left after ``grace`` seconds; return the names of the groups signalled."""
    groups: dict[int, tuple[int, str]] = {}
    for entry in run_dir.iterdir() if run_dir.is_dir() else []:
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError):
            text, _, name = entry.read_text().partition("\n")
            groups[int(entry.name)] = (int(text), name.strip())
    live = {pgid: record for pgid, record in groups.items() if alive(pgid, record[0])}
    for pgid in live:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGTERM)
    with contextlib.suppress(WaitTimeout):
        wait_for(
            lambda: not any(alive(p, r[0]) for p, r in live.items()),
            what="recorded process groups to exit on SIGTERM",
            timeout=grace,
        )
    for pgid, (leader_started, _) in live.items():
        if alive(pgid, leader_started):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
    return [record[1] for record in live.values()]


def _start_guardian(run_dir: Path) -> subprocess.Popen[bytes]:
    # The pipe's write end stays in this process only (close_fds keeps it from every other
    # child), so the guardian reads end-of-file exactly when this process is gone.
    return subprocess.Popen(
        [sys.executable, "-m", "pytest_rollout._reaper", str(run_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        close_fds=True,
    )


def _guard(run_dir: Path) -> None:
    """The guardian's body: wait for the owner to go, then stop what it left."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(OSError):
        while sys.stdin.buffer.read(4096):
            pass
    stop_recorded(run_dir)
    shutil.rmtree(run_dir, ignore_errors=True)


if __name__ == "__main__":
    _guard(Path(sys.argv[1]))
