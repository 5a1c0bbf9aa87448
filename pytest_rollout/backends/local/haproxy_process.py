"""One HAProxy process in master-worker mode: start it, reload it, stop it.

The master listens on a unix socket of its own (:mod:`.haproxy_cli`); each configuration the
caller renders is checked with ``haproxy -c`` before the master is asked to reload it, and a
reload is done once a fresh worker answers on the runtime API. A failed reload leaves the
previous configuration serving and raises with HAProxy's alerts.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from pytest_rollout import _tools
from pytest_rollout._proc import ManagedProcess
from pytest_rollout._wait import wait_for
from pytest_rollout.backends.local.haproxy_cli import MasterCli, ProcessTable
from pytest_rollout.errors import ConfigError, ProcessError

START_TIMEOUT = 15.0
RELOAD_TIMEOUT = 15.0
_SOCKET_PATH_LIMIT = 100  # sun_path holds 108 bytes; keep a margin


class HAProxyProcess:
    """The master, its socket directory and the worker serving new connections.

    ``workdir`` holds the configuration and HAProxy's log; the sockets live in a short private
    directory under /tmp, removed by :meth:`stop`.
    """

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self._process: ManagedProcess | None = None
        self._socket_dir: Path | None = None
        self._cli: MasterCli | None = None
        self.worker = 0
        """The PID of the worker serving new connections (0 when not running)."""

    @property
    def config_path(self) -> Path:
        return self.workdir / "haproxy.cfg"

    @property
    def log_path(self) -> Path:
        return self.workdir / "haproxy.log"

    @property
    def master_pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def socket_dir(self) -> Path | None:
        return self._socket_dir

    @property
    def started(self) -> bool:
        return self._process is not None

    def running(self) -> bool:
        return self._process is not None and self._process.running()

    def cli(self) -> MasterCli:
        if self._cli is None:
            raise ProcessError("router is not started")
        return self._cli

    def make_socket_dir(self) -> Path:
        """Create the private socket directory the configuration names (before :meth:`start`)."""
        self._socket_dir = Path(tempfile.mkdtemp(prefix="rollout-hap-", dir=_short_tmp()))
        master_socket = str(self._socket_dir / "master.sock")
        if len(master_socket) > _SOCKET_PATH_LIMIT:
            raise ConfigError(
                f"haproxy socket path {master_socket!r} is longer than "
                f"{_SOCKET_PATH_LIMIT} bytes; set TMPDIR to a shorter directory"
            )
        self._cli = MasterCli(master_socket)
        return self._socket_dir

    def start(self, config: str) -> None:
        """Start the master on ``config``; return once its first worker answers."""
        binary = _tools.find(_tools.HAPROXY)
        master_socket = self.cli().socket_path
        self.write_config(config)
        self._process = ManagedProcess(
            "haproxy",
            [binary, "-W", "-S", f"{master_socket},mode,600", "-f", str(self.config_path)],
            log_path=self.log_path,
        )
        self._process.start()
        table = wait_for(
            self._probe_workers,
            what=f"haproxy (log {self.log_path}) to start its first worker",
            timeout=START_TIMEOUT,
        )
        self.worker = table.workers[0]
        self._wait_worker_answers(self.worker)

    def stop(self) -> None:
        """Stop the master and every worker and remove the sockets. Idempotent."""
        if self._process is not None:
            self._process.stop()
            self._process = None
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            self._socket_dir = None
        self._cli = None
        self.worker = 0

    def write_config(self, text: str) -> None:
        staging = self.config_path.with_suffix(".cfg.new")
        staging.write_text(text)
        staging.replace(self.config_path)

    def reload(self, config: str) -> int:
        """Check ``config``, make it current and reload; the new worker's PID once it answers.

        The old worker takes no new connection from then on and finishes its requests.
        """
        cli = self.cli()
        candidate = self.workdir / "haproxy.cfg.candidate"
        candidate.write_text(config)
        self._check_config(candidate)
        candidate.replace(self.config_path)
        before = cli.processes()
        log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        cli.reload()

        def settled() -> ProcessTable | None:
            table = cli.processes()
            failed = table.failed_reloads > before.failed_reloads
            fresh = [pid for pid in table.workers if pid not in before.workers]
            return table if failed or (table.reloads > before.reloads and fresh) else None

        table = wait_for(
            settled,
            what="haproxy to finish a reload",
            timeout=RELOAD_TIMEOUT,
            retry_on=ProcessError,
        )
        if table.failed_reloads > before.failed_reloads:
            raise ProcessError(
                "haproxy reload failed; the previous configuration keeps serving:\n"
                + self._alerts_since(log_offset)
            )
        self.worker = next(pid for pid in table.workers if pid not in before.workers)
        self._wait_worker_answers(self.worker)
        return self.worker

    def require_running(self) -> None:
        if self._process is None or not self._process.running():
            raise ProcessError(f"router is not running:\n{self.log_tail()}")

    def log_tail(self) -> str:
        return self._process.log_tail() if self._process is not None else ""

    def _check_config(self, path: Path) -> None:
        checker = ManagedProcess(
            "haproxy-check",
            [_tools.find(_tools.HAPROXY), "-c", "-f", str(path)],
            log_path=self.workdir / "haproxy-check.log",
        )
        with checker:
            code = checker.wait(timeout=RELOAD_TIMEOUT)
        if code != 0:
            raise ProcessError(
                f"haproxy rejected the rendered configuration {path}:\n{checker.log_tail()}"
            )

    def _probe_workers(self) -> ProcessTable | None:
        if self._process is not None and not self._process.running():
            raise ProcessError(
                f"haproxy exited with code {self._process.returncode}:\n{self.log_tail()}"
            )
        try:
            table = self.cli().processes()
        except ProcessError:
            return None
        return table if table.workers else None

    def _wait_worker_answers(self, pid: int) -> None:
        cli = self.cli()
        wait_for(
            lambda: f"Pid: {pid}" in cli.worker(pid, "show info"),
            what=f"haproxy worker {pid} to answer on the runtime API",
            timeout=START_TIMEOUT,
            retry_on=ProcessError,
        )

    def _alerts_since(self, offset: int) -> str:
        with self.log_path.open("rb") as log:
            log.seek(offset)
            text = log.read().decode(errors="replace")
        alerts = [line for line in text.splitlines() if "[ALERT]" in line]
        return "\n".join(alerts) or self.log_tail()


def _short_tmp() -> str:
    # A unix socket path must fit in 108 bytes; $TMPDIR can be long, /tmp never is. mkdtemp
    # makes a private (0700) directory in it.
    shared = "/tmp"  # noqa: S108
    return shared if Path(shared).is_dir() else tempfile.gettempdir()
