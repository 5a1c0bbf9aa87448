"""``kubectl port-forward`` to a Service, on a loopback port of this machine, kept alive.

On a cluster the plugin did not create there is no kind port mapping: the Gateway and
Prometheus are reached through port-forwards. ``kubectl port-forward service/x`` picks one pod
and exits when that pod goes away (a restarted Prometheus, a rescheduled Traefik), so
:meth:`PortForward.url` starts it again, on the same port, when it finds it gone.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pytest_rollout._proc import ManagedProcess, free_port, port_accepts
from pytest_rollout._wait import wait_for
from pytest_rollout.errors import ProcessError, RolloutError, WaitTimeout

LOOPBACK = "127.0.0.1"
START_TIMEOUT = 30.0
_LOG_TAIL = 5


def port_forward_argv(
    kubectl: Sequence[str], namespace: str, service: str, local_port: int, remote_port: int
) -> list[str]:
    """``kubectl ... port-forward --address 127.0.0.1 -n NS service/NAME LOCAL:REMOTE``."""
    return [
        *kubectl, "port-forward", "--address", LOOPBACK, "-n", namespace,
        f"service/{service}", f"{local_port}:{remote_port}",
    ]  # fmt: skip


class PortForward:
    """One forward from ``127.0.0.1:<local port>`` to ``service/<service>:<remote port>``."""

    def __init__(
        self,
        kubectl: Sequence[str],
        namespace: str,
        service: str,
        remote_port: int,
        *,
        log_path: Path,
        local_port: int | None = None,
        timeout: float = START_TIMEOUT,
    ) -> None:
        self.kubectl = list(kubectl)
        self.namespace = namespace
        self.service = service
        self.remote_port = remote_port
        self.local_port = local_port if local_port is not None else free_port(LOOPBACK)
        self.log_path = log_path
        self.timeout = timeout
        self.starts = 0
        self._process: ManagedProcess | None = None

    @property
    def argv(self) -> list[str]:
        return port_forward_argv(
            self.kubectl, self.namespace, self.service, self.local_port, self.remote_port
        )

    def running(self) -> bool:
        return self._process is not None and self._process.running()

    def url(self) -> str:
        """``http://127.0.0.1:<port>``, with the forward running (started again if it exited)."""
        if not self.running():
            self._start()
        return f"http://{LOOPBACK}:{self.local_port}"

    def _start(self) -> None:
        if self._process is not None:
            self._process.stop()
        self.starts += 1
        process = ManagedProcess(
            f"port-forward {self.namespace}/{self.service}", self.argv, log_path=self.log_path
        )
        self._process = process
        try:
            process.start()
        except ProcessError as exc:
            raise RolloutError(str(exc)) from exc

        def settled() -> str | None:
            if not process.running():
                return "exited"
            return "listening" if port_accepts(LOOPBACK, self.local_port) else None

        where = f"service/{self.service} in {self.namespace}"
        try:
            outcome = wait_for(
                settled,
                what=f"kubectl port-forward to {where} to listen on {LOOPBACK}:{self.local_port}",
                timeout=self.timeout,
                interval=0.2,
            )
        except WaitTimeout as exc:
            process.stop()
            raise WaitTimeout(f"{exc}; its output: {self._log_tail()}") from exc
        if outcome == "exited":
            code = process.returncode
            process.stop()
            raise RolloutError(
                f"kubectl port-forward to {where} exited {code}: {self._log_tail()} "
                f"(log: {self.log_path})"
            )

    def _log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no output)"
        return " | ".join(line for line in lines[-_LOG_TAIL:] if line.strip()) or "(no output)"

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop()
            self._process = None
