"""A client for HAProxy's master CLI: commands routed to one worker by PID, and their answers.

Every command goes through the master socket with an ``@!<pid>`` prefix, so it reaches exactly
the worker it is meant for even while an old worker is still finishing requests after a reload.
HAProxy's CLI answers in free text; each caller states the answer that means success and
anything else is raised as an error carrying the command and the answer.
"""

from __future__ import annotations

import csv
import io
import socket
from dataclasses import dataclass

from pytest_rollout.errors import ProcessError

_RECV_CHUNK = 65536


class CommandFailed(ProcessError):
    """HAProxy answered a runtime command with something other than success."""

    def __init__(self, command: str, answer: str) -> None:
        super().__init__(f"haproxy: {command!r} answered {answer!r}")
        self.command = command
        self.answer = answer


@dataclass(frozen=True)
class ProcessTable:
    """The master's ``show proc``: its reload counters and the live workers."""

    master_pid: int
    reloads: int
    failed_reloads: int
    workers: tuple[int, ...]
    old_workers: tuple[int, ...]


class MasterCli:
    """Talks to the master socket; one connection per command (the master closes it after)."""

    def __init__(self, socket_path: str, *, timeout: float = 5.0) -> None:
        self.socket_path = socket_path
        self.timeout = timeout

    def raw(self, line: str) -> str:
        """Send one command line to the master and return its whole answer."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(self.timeout)
            try:
                sock.connect(self.socket_path)
                sock.sendall(line.encode() + b"\n")
                # The master answers once our side is closed for writing.
                sock.shutdown(socket.SHUT_WR)
                chunks = []
                while chunk := sock.recv(_RECV_CHUNK):
                    chunks.append(chunk)
            except OSError as exc:
                raise ProcessError(
                    f"haproxy master socket {self.socket_path}: {line!r} failed: {exc}"
                ) from exc
        return b"".join(chunks).decode(errors="replace")

    def worker(self, pid: int, command: str, *, experimental: bool = False) -> str:
        """Run ``command`` on worker ``pid``; its answer with surrounding blank lines removed."""
        prefix = "experimental-mode on; " if experimental else ""
        return self.raw(f"{prefix}@!{pid} {command}").strip()

    def expect(self, pid: int, command: str, success: str, *, experimental: bool = False) -> None:
        """Run ``command`` on worker ``pid``; raise CommandFailed unless it answers ``success``."""
        answer = self.worker(pid, command, experimental=experimental)
        if answer != success:
            raise CommandFailed(command, answer)

    def processes(self) -> ProcessTable:
        return parse_show_proc(self.raw("show proc"))

    def reload(self) -> None:
        """Ask the master to reload; it closes the connection without an answer."""
        self.raw("reload")

    def stat_rows(self, pid: int) -> list[dict[str, str]]:
        """``show stat`` of worker ``pid`` as one dict per proxy/server row."""
        return parse_show_stat(self.worker(pid, "show stat"))


def parse_show_proc(text: str) -> ProcessTable:
    """Parse the master's ``show proc`` table."""
    section = ""
    master_pid = reloads = failed = -1
    workers: list[int] = []
    old_workers: list[int] = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            section = stripped.lstrip("#").strip()
            continue
        fields = stripped.split()
        if len(fields) < 3 or not fields[0].isdigit():
            continue
        pid = int(fields[0])
        if fields[1] == "master":
            master_pid = pid
            reloads = int(fields[2])
            failed = _failed_count(stripped)
        elif section == "workers":
            workers.append(pid)
        elif section == "old workers":
            old_workers.append(pid)
    if master_pid < 0:
        raise ProcessError(f"haproxy 'show proc' has no master line: {text!r}")
    return ProcessTable(master_pid, reloads, failed, tuple(workers), tuple(old_workers))


def _failed_count(master_line: str) -> int:
    marker = "[failed:"
    start = master_line.find(marker)
    if start < 0:
        return 0
    end = master_line.find("]", start)
    return int(master_line[start + len(marker) : end].strip())


def parse_show_stat(text: str) -> list[dict[str, str]]:
    """Parse ``show stat`` CSV (header line starts with ``# ``)."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or not lines[0].startswith("# "):
        raise ProcessError(f"haproxy 'show stat' answered without a header: {text[:200]!r}")
    lines[0] = lines[0][2:]
    return list(csv.DictReader(io.StringIO("\n".join(lines))))
