"""Child processes that are always stopped, and loopback ports to give them.

Every process the plugin starts goes through :class:`ManagedProcess`. Each runs in its own
session (process group) so that stopping it also stops anything it forked, and every live one
is recorded in a module-level registry that an ``atexit`` hook and the plugin's session teardown
empty — so an interrupted run (Ctrl-C, a crashed fixture) leaves no orphan behind — and on disk,
for a run that is killed outright (:mod:`pytest_rollout._reaper`).
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import signal
import socket
import subprocess
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

from pytest_rollout._reaper import Registry
from pytest_rollout.errors import ProcessError

_REGISTRY = Registry()
_LIVE: set[ManagedProcess] = set()
_LIVE_LOCK = threading.Lock()
_STARTS = itertools.count(1)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_accepts(host: str, port: int, timeout: float = 0.2) -> bool:
    """True when a TCP connection to ``host:port`` is accepted."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


BACKGROUND_NICENESS = 10
"""The niceness of a ``background`` process's session (see :func:`_lower_priority`)."""


def _lower_priority(pid: int) -> None:
    # Each process starts a session of its own, and with autogroup scheduling (Linux's default
    # on desktops and CI runners) CPU time is shared between sessions, whatever a process's own
    # niceness: the session's niceness is what weighs. The load generator stands in for clients
    # on other machines, so the pods it measures must not make it wait for the CPU (Prometheus
    # keeps its priority: the gates' reaction time is part of what is measured); without
    # autogroup the process's own niceness does the same.
    try:
        Path(f"/proc/{pid}/autogroup").write_text(f"{BACKGROUND_NICENESS}\n")
    except OSError:
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, pid, BACKGROUND_NICENESS)


class ManagedProcess:
    """A child process with a name, a log file, and a guaranteed stop.

    ``stop()`` sends ``stop_signal`` to the whole process group, waits up to ``grace`` seconds,
    then kills the group. It is idempotent and safe to call from teardown, ``atexit`` or a
    signal handler's aftermath. With ``pipes``, the child's stdin and stdout are pipes to talk
    over (:attr:`stdin`, :attr:`stdout`; the caller closes them) and only stderr goes to the log.
    A ``background`` process yields the CPU to the others (the load generator above all).
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
        log_path: str | Path | None = None,
        stop_signal: signal.Signals = signal.SIGTERM,
        pipes: bool = False,
        background: bool = False,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(env) if env is not None else None
        self.cwd = Path(cwd) if cwd is not None else None
        self.log_path = Path(log_path) if log_path is not None else None
        self.stop_signal = stop_signal
        self.pipes = pipes
        self.background = background
        self._popen: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.serial = 0
        """Start order: processes started after a checkpoint have a larger serial."""

    def __repr__(self) -> str:
        return f"<ManagedProcess {self.name} pid={self.pid}>"

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen is not None else None

    @property
    def stdin(self) -> IO[bytes]:
        if self._popen is None or self._popen.stdin is None:
            raise ProcessError(f"{self.name}: not started with pipes")
        return self._popen.stdin

    @property
    def stdout(self) -> IO[bytes]:
        if self._popen is None or self._popen.stdout is None:
            raise ProcessError(f"{self.name}: not started with pipes")
        return self._popen.stdout

    @property
    def returncode(self) -> int | None:
        return self._popen.poll() if self._popen is not None else None

    def running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def start(self) -> ManagedProcess:
        if self._popen is not None:
            raise ProcessError(f"{self.name}: already started (pid {self.pid})")
        log: int | IO[bytes] = subprocess.DEVNULL
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = self.log_path.open("ab")
            log = self._log
        try:
            self._popen = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.PIPE if self.pipes else subprocess.DEVNULL,
                stdout=subprocess.PIPE if self.pipes else log,
                stderr=log if self.pipes else subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            self._close_log()
            raise ProcessError(f"{self.name}: cannot start {self.argv[0]!r}: {exc}") from exc
        if self.background:
            _lower_priority(self._popen.pid)
        with _LIVE_LOCK:
            self.serial = next(_STARTS)
            _LIVE.add(self)
        # On disk too: if this process is killed outright, the guardian (or the next run's
        # sweep) stops the group.
        _REGISTRY.record(self._popen.pid, self.name)
        return self

    def signal(self, sig: signal.Signals) -> None:
        """Send ``sig`` to the process group, if it is still running."""
        if self._popen is None or self._popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._popen.pid, sig)

    def wait(self, timeout: float | None = None) -> int:
        """Wait for exit; raise ProcessError naming the process when ``timeout`` passes."""
        if self._popen is None:
            raise ProcessError(f"{self.name}: never started")
        try:
            return self._popen.wait(timeout)
        except subprocess.TimeoutExpired as exc:
            raise ProcessError(
                f"{self.name}: still running {timeout:g}s after it was asked to stop"
            ) from exc

    def stop(self, grace: float = 5.0) -> int | None:
        """Stop the whole process group; SIGKILL after ``grace`` seconds. Returns the exit code."""
        popen = self._popen
        if popen is None:
            return None
        try:
            if popen.poll() is None:
                self.signal(self.stop_signal)
                try:
                    popen.wait(grace)
                except subprocess.TimeoutExpired:
                    self.signal(signal.SIGKILL)
                    popen.wait()
            # Children that outlived their parent are still in the group: make sure they go too.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(popen.pid, signal.SIGKILL)
            return popen.returncode
        finally:
            self._close_log()
            with _LIVE_LOCK:
                _LIVE.discard(self)
            _REGISTRY.forget(popen.pid)

    def log_tail(self, lines: int = 20) -> str:
        """The last ``lines`` lines of the process's log, for error messages."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> ManagedProcess:
        return self.start() if self._popen is None else self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def checkpoint() -> int:
    """A mark in the start order: ``stop_all(since=mark)`` spares what was started before."""
    with _LIVE_LOCK:
        return next(_STARTS)


def live_processes(since: int = 0) -> list[ManagedProcess]:
    """The processes started (after ``since``) and not yet stopped, for leak checks."""
    with _LIVE_LOCK:
        return [proc for proc in _LIVE if proc.serial > since]


def stop_all(grace: float = 2.0, *, since: int = 0) -> None:
    """Stop every process still registered as live that was started after ``since``."""
    for proc in live_processes(since):
        with contextlib.suppress(Exception):
            proc.stop(grace)


atexit.register(stop_all)
