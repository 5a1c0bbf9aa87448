"""Container probes with the kubelet's semantics: spec, state machine and executors.

What is followed, and where it comes from:

* Fields and defaults are ``core/v1`` Probe's: ``initialDelaySeconds`` 0, ``periodSeconds`` 10,
  ``timeoutSeconds`` 1, ``successThreshold`` 1, ``failureThreshold`` 3; a 0 means "default"
  (``SetDefaults_Probe``); ``successThreshold`` of liveness and startup probes must be 1 and a
  readiness probe may not set ``terminationGracePeriodSeconds`` (``ValidateProbe``).
* The state machine is the kubelet's prober worker (``pkg/kubelet/prober/worker.go``): the result
  before any probe is Failure for readiness, Success for liveness, Unknown for startup; a result
  changes only after ``successThreshold``/``failureThreshold`` equal results in a row; after a
  liveness or startup failure the worker holds until a new container exists; readiness and
  liveness are not probed until the startup probe has succeeded, and startup is not probed after.
* Schedule: probes run ``initialDelaySeconds`` after the container started and then every
  ``periodSeconds`` (a slow probe skips ticks, like Go's ticker; a first tick already past runs
  at once). Readiness and liveness start
  the moment the startup probe succeeds, which is when the kubelet's status update triggers an
  immediate readiness run (``prober_manager.go`` ``UpdatePodStatus``). The kubelet's random
  start jitter after its own restart is not reproduced.
* Executors (``pkg/probe``): httpGet succeeds on 200 <= status < 400 (a redirect is not
  followed), sends ``User-Agent: kube-probe/<version>`` and ``Accept: */*`` unless overridden,
  never reuses a connection, reads at most 10 KiB of body; tcpSocket succeeds when a connection
  opens; exec succeeds on exit code 0, its combined output (10 KiB) is the message, and a
  timeout is a failure (``ExecProbeTimeout``). Error messages mimic the kubelet's
  (``Get "http://...": context deadline exceeded ...``, ``dial tcp ...: connect: connection
  refused``, ``HTTP probe failed with statuscode: 503``).

Local-backend specifics: an exec command runs as a local process (through ManagedProcess) with
the pod's environment, its arguments ``$(VAR)``-expanded as the kubelet does; every duration is
multiplied by the ``time_scale`` the pod spec was parsed with, so tests can run
Kubernetes-valid integer manifests ten times faster; a probe ``host`` must be a loopback
address; grpc probes and HTTPS are rejected as unsupported.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import ipaddress
import math
import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_rollout._proc import ManagedProcess
from pytest_rollout.errors import ProcessError
from pytest_rollout.fieldcheck import FieldRef

KUBE_PROBE_USER_AGENT = "kube-probe/1.31"
MAX_OUTPUT_BYTES = 10 * 1024

DEFAULT_PERIOD_SECONDS = 10
DEFAULT_TIMEOUT_SECONDS = 1
DEFAULT_SUCCESS_THRESHOLD = 1
DEFAULT_FAILURE_THRESHOLD = 3

_PORT_NAME_RE = re.compile(r"[a-z0-9]([a-z0-9-]{0,13}[a-z0-9])?")
_HEADER_NAME_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_TICK_EPSILON = 1e-9


class ProbeKind(enum.Enum):
    READINESS = "readiness"
    LIVENESS = "liveness"
    STARTUP = "startup"

    @property
    def title(self) -> str:
        """``Readiness``, as in the kubelet's event messages."""
        return self.value.capitalize()

    @property
    def field(self) -> str:
        """``readinessProbe``, the container field."""
        return f"{self.value}Probe"


# --- actions (the handlers shared by probes and lifecycle hooks) -------------------------------


@dataclass(frozen=True)
class HTTPGetAction:
    port: int
    path: str = "/"
    host: str | None = None
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class TCPSocketAction:
    port: int
    host: str | None = None


@dataclass(frozen=True)
class ExecAction:
    command: tuple[str, ...]


Action = HTTPGetAction | TCPSocketAction | ExecAction

PROBE_ACTIONS = frozenset({"httpGet", "tcpSocket", "exec"})


def parse_action(
    raw: Mapping[str, Any],
    *,
    where: FieldRef,
    ports: Mapping[str, int],
    allowed: frozenset[str] = PROBE_ACTIONS,
    extra_keys: frozenset[str] = frozenset(),
) -> Action:
    """The one handler in ``raw`` (``httpGet``, ``tcpSocket`` or ``exec``), the field at
    ``where``.

    ``ports`` maps the container's named ports to numbers; ``extra_keys`` are the other keys the
    caller handles itself (e.g. the probe's timing fields), so anything else is rejected.
    """
    known = {"httpGet", "tcpSocket", "exec", "grpc", "sleep"}
    for key in raw:
        if key not in known and key not in extra_keys:
            raise where.at(key).unsupported(sorted(allowed | extra_keys))
    present = [key for key in raw if key in known]
    for key in present:
        if key not in allowed:
            raise where.at(key).unsupported(sorted(allowed))
    if not present:
        raise where.invalid(f"must specify a handler type ({_names(allowed)})")
    if len(present) > 1:
        raise where.invalid(f"may not specify more than 1 handler type (found {_names(present)})")
    kind = present[0]
    here = where.at(kind)
    spec = here.mapping(raw[kind])
    if kind == "httpGet":
        return _parse_http_get(spec, here, ports)
    if kind == "tcpSocket":
        here.only(spec, ("port", "host"))
        return TCPSocketAction(
            port=resolve_port(spec.get("port"), here.at("port"), ports),
            host=_loopback_host(spec.get("host"), here.at("host")),
        )
    here.only(spec, ("command",))
    command = spec.get("command")
    if (
        not isinstance(command, list)
        or not command
        or not all(isinstance(arg, str) for arg in command)
    ):
        raise here.at("command").invalid("must be a non-empty list of strings")
    return ExecAction(tuple(command))


def _parse_http_get(
    spec: Mapping[str, Any], where: FieldRef, ports: Mapping[str, int]
) -> HTTPGetAction:
    where.only(spec, ("path", "port", "host", "scheme", "httpHeaders"))
    scheme = spec.get("scheme", "HTTP")
    if scheme != "HTTP":
        raise where.at("scheme").unsupported(
            value=scheme, reason="the local backend probes over HTTP only"
        )
    url_path = spec.get("path", "/")
    if not isinstance(url_path, str):
        raise where.at("path").invalid("must be a string")
    if not url_path.startswith("/"):
        url_path = "/" + url_path
    headers: list[tuple[str, str]] = []
    raw_headers = spec.get("httpHeaders", [])
    for here, item in where.at("httpHeaders").entries(
        raw_headers, expected="a list of {name, value}"
    ):
        here.only(item, ("name", "value"))
        name, value = item.get("name"), item.get("value", "")
        if not isinstance(name, str) or not _HEADER_NAME_RE.fullmatch(name):
            raise here.at("name").invalid("must be an HTTP header name")
        if not isinstance(value, str) or "\r" in value or "\n" in value:
            raise here.at("value").invalid("must be a single-line string")
        headers.append((name, value))
    return HTTPGetAction(
        port=resolve_port(spec.get("port"), where.at("port"), ports),
        path=url_path,
        host=_loopback_host(spec.get("host"), where.at("host")),
        headers=tuple(headers),
    )


def resolve_port(value: object, where: FieldRef, ports: Mapping[str, int]) -> int:
    """A port number, or a named container port resolved against ``ports``."""
    if isinstance(value, bool):
        raise where.invalid("must be a port number or a container port name")
    if isinstance(value, int):
        if not 1 <= value <= 65535:
            raise where.invalid("must be between 1 and 65535", value=value)
        return value
    if isinstance(value, str):
        if not _PORT_NAME_RE.fullmatch(value) or not re.search("[a-z]", value) or "--" in value:
            raise where.invalid(
                "must be a port number or an IANA_SVC_NAME (lowercase letters, digits and '-', "
                "at most 15, at least one letter)",
                value=value,
            )
        if value not in ports:
            known = ", ".join(sorted(ports)) or "none"
            raise where.invalid(
                f"no container port has that name (named ports: {known})", value=value
            )
        return ports[value]
    raise where.invalid("must be a port number or a container port name")


def _loopback_host(value: object, where: FieldRef) -> str | None:
    if value is None or value == "":
        return None
    if value == "localhost":
        return "127.0.0.1"
    try:
        address = ipaddress.ip_address(str(value))
    except ValueError:
        address = None
    if address is None or not address.is_loopback or address.version != 4:
        raise where.unsupported(
            value=value,
            reason="the local backend only reaches 127.0.0.0/8; leave it unset to probe the pod IP",
        )
    return str(address)


# --- the probe spec ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ProbeSpec:
    """One probe, with durations in (already scaled) seconds."""

    action: Action
    initial_delay: float = 0.0
    period: float = float(DEFAULT_PERIOD_SECONDS)
    timeout: float = float(DEFAULT_TIMEOUT_SECONDS)
    success_threshold: int = DEFAULT_SUCCESS_THRESHOLD
    failure_threshold: int = DEFAULT_FAILURE_THRESHOLD
    termination_grace_period: float | None = None

    @classmethod
    def from_manifest(
        cls,
        raw: object,
        *,
        kind: ProbeKind,
        where: FieldRef,
        ports: Mapping[str, int],
        time_scale: float = 1.0,
    ) -> ProbeSpec:
        """Parse and validate ``raw`` (the ``readinessProbe`` etc. mapping), the field at
        ``where``."""
        spec = where.mapping(raw)
        timing = {
            "initialDelaySeconds",
            "periodSeconds",
            "timeoutSeconds",
            "successThreshold",
            "failureThreshold",
            "terminationGracePeriodSeconds",
        }
        action = parse_action(spec, where=where, ports=ports, extra_keys=frozenset(timing))
        initial_delay = _non_negative_int(spec, "initialDelaySeconds", where, default=0)
        period = _non_negative_int(spec, "periodSeconds", where, default=DEFAULT_PERIOD_SECONDS)
        timeout = _non_negative_int(spec, "timeoutSeconds", where, default=DEFAULT_TIMEOUT_SECONDS)
        success = _non_negative_int(
            spec, "successThreshold", where, default=DEFAULT_SUCCESS_THRESHOLD
        )
        failure = _non_negative_int(
            spec, "failureThreshold", where, default=DEFAULT_FAILURE_THRESHOLD
        )
        if kind is not ProbeKind.READINESS and success != 1:
            raise where.at("successThreshold").invalid(
                f"must be 1 for a {kind.field}", value=success
            )
        grace: float | None = None
        if "terminationGracePeriodSeconds" in spec:
            if kind is ProbeKind.READINESS:
                raise where.at("terminationGracePeriodSeconds").invalid(
                    "must not be set for readinessProbes"
                )
            seconds = _non_negative_int(spec, "terminationGracePeriodSeconds", where, default=0)
            if seconds < 1:
                raise where.at("terminationGracePeriodSeconds").invalid(
                    "must be greater than 0", value=seconds
                )
            grace = seconds * time_scale
        return cls(
            action=action,
            initial_delay=initial_delay * time_scale,
            period=period * time_scale,
            timeout=timeout * time_scale,
            success_threshold=success,
            failure_threshold=failure,
            termination_grace_period=grace,
        )


def _non_negative_int(spec: Mapping[str, Any], key: str, where: FieldRef, *, default: int) -> int:
    value = spec.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int):
        raise where.at(key).invalid("must be an integer", value=value)
    if value < 0:
        raise where.at(key).invalid("must be greater than or equal to 0", value=value)
    return value if value != 0 else default


# --- the pure state machine ------------------------------------------------------------------


class HealthChange(enum.Enum):
    READY = "ready"
    NOT_READY = "not-ready"
    STARTED = "started"
    LIVENESS_FAILED = "liveness-failed"
    STARTUP_FAILED = "startup-failed"


_INITIAL_RESULT: dict[ProbeKind, bool | None] = {
    ProbeKind.READINESS: False,
    ProbeKind.LIVENESS: True,
    ProbeKind.STARTUP: None,
}


@dataclass
class ProbeTracker:
    """One probe worker's state for one container instance."""

    kind: ProbeKind
    spec: ProbeSpec
    result: bool | None = field(init=False)
    on_hold: bool = field(default=False, init=False)
    last_tick: float | None = field(default=None, init=False)
    _last: bool | None = field(default=None, init=False)
    _run: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.result = _INITIAL_RESULT[self.kind]

    def observe(self, success: bool) -> bool:
        """Count one probe result; True when the settled result changed."""
        if self.on_hold:
            return False
        if success == self._last:
            self._run += 1
        else:
            self._last, self._run = success, 1
        threshold = self.spec.success_threshold if success else self.spec.failure_threshold
        if self._run < threshold:
            return False
        changed = self.result != success
        self.result = success
        if not success and self.kind is not ProbeKind.READINESS:
            # The container will be restarted: probe no more until a new one exists.
            self.on_hold, self._run = True, 0
        return changed


class ContainerHealth:
    """The probe state of one container instance; time is passed in, nothing is executed."""

    def __init__(
        self,
        *,
        started_at: float,
        readiness: ProbeSpec | None = None,
        liveness: ProbeSpec | None = None,
        startup: ProbeSpec | None = None,
    ) -> None:
        self.started_at = started_at
        self.trackers: dict[ProbeKind, ProbeTracker] = {}
        for kind, spec in (
            (ProbeKind.READINESS, readiness),
            (ProbeKind.LIVENESS, liveness),
            (ProbeKind.STARTUP, startup),
        ):
            if spec is not None:
                self.trackers[kind] = ProbeTracker(kind, spec)
        self.startup_done_at: float | None = None if startup is not None else started_at

    @property
    def started(self) -> bool:
        return self.startup_done_at is not None

    @property
    def ready(self) -> bool:
        if not self.started:
            return False
        readiness = self.trackers.get(ProbeKind.READINESS)
        return readiness is None or readiness.result is True

    def next_probe_at(self, kind: ProbeKind, now: float) -> float | None:
        """When ``kind`` is probed next (>= ``now``), or None while it is not to be probed."""
        tracker = self.trackers.get(kind)
        if tracker is None or tracker.on_hold:
            return None
        spec = tracker.spec
        origin = self.started_at + spec.initial_delay
        if kind is ProbeKind.STARTUP:
            if self.started:
                return None
        else:
            if self.startup_done_at is None:
                return None
            origin = max(origin, self.startup_done_at)
        if tracker.last_tick is None:
            return max(origin, now)  # the first probe is never pushed to a later tick
        index = max(
            math.ceil((now - origin) / spec.period - _TICK_EPSILON),
            round((tracker.last_tick - origin) / spec.period) + 1,
        )
        return origin + index * spec.period

    def record(
        self, kind: ProbeKind, success: bool, *, tick: float, now: float
    ) -> list[HealthChange]:
        """Feed the result of the probe scheduled at ``tick`` and finished at ``now``."""
        tracker = self.trackers[kind]
        was_ready = self.ready
        tracker.last_tick = tick
        if not tracker.observe(success):
            return []
        changes: list[HealthChange] = []
        if kind is ProbeKind.LIVENESS and not success:
            changes.append(HealthChange.LIVENESS_FAILED)
        elif kind is ProbeKind.STARTUP:
            if success:
                self.startup_done_at = now
                changes.append(HealthChange.STARTED)
            else:
                changes.append(HealthChange.STARTUP_FAILED)
        if self.ready != was_ready:
            changes.append(HealthChange.READY if self.ready else HealthChange.NOT_READY)
        return changes


# --- executors ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProbeResult:
    success: bool
    output: str = ""
    status: int | None = None  # the HTTP status, when an httpGet got an answer


@dataclass(frozen=True)
class ProbeTarget:
    """Where and as what an action runs: the pod's IP, environment and working directory."""

    pod_ip: str
    env: Mapping[str, str]
    cwd: Path | None
    scratch_dir: Path
    name: str


async def execute(action: Action, target: ProbeTarget, timeout: float | None) -> ProbeResult:
    """Run ``action`` once against ``target``; a timeout counts as a failure."""
    if isinstance(action, HTTPGetAction):
        return await http_get(action, target.pod_ip, timeout)
    if isinstance(action, TCPSocketAction):
        return await tcp_connect(action, target.pod_ip, timeout)
    return await run_exec(action, target, timeout)


async def http_get(action: HTTPGetAction, pod_ip: str, timeout: float | None) -> ProbeResult:
    host = action.host or pod_ip
    url = f"http://{host}:{action.port}{action.path}"
    names = {name.lower() for name, _ in action.headers}
    lines = [f"GET {action.path} HTTP/1.1"]
    if "host" not in names:
        lines.append(f"Host: {host}:{action.port}")
    if "user-agent" not in names:
        lines.append(f"User-Agent: {KUBE_PROBE_USER_AGENT}")
    if "accept" not in names:
        lines.append("Accept: */*")
    # An Accept header set to "" removes the default one, as the kubelet does.
    lines += [
        f"{name}: {value}" for name, value in action.headers if value or name.lower() != "accept"
    ]
    lines.append("Connection: close")
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, action.port)
            try:
                writer.write(request)
                await writer.drain()
                status = await _read_response(reader)
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
    except TimeoutError:
        return ProbeResult(
            False,
            f'Get "{url}": context deadline exceeded '
            f"(Client.Timeout exceeded while awaiting headers)",
        )
    except ConnectionRefusedError:
        return ProbeResult(
            False, f'Get "{url}": dial tcp {host}:{action.port}: connect: connection refused'
        )
    except (asyncio.IncompleteReadError, EOFError):
        return ProbeResult(False, f'Get "{url}": EOF')
    except ConnectionResetError:
        return ProbeResult(False, f'Get "{url}": read: connection reset by peer')
    except (OSError, ValueError) as exc:
        return ProbeResult(False, f'Get "{url}": {exc}')
    if 200 <= status < 400:
        return ProbeResult(True, "", status)
    return ProbeResult(False, f"HTTP probe failed with statuscode: {status}", status)


async def _read_response(reader: asyncio.StreamReader) -> int:
    status_line = await reader.readline()
    if not status_line:
        raise EOFError
    parts = status_line.decode("latin-1").split()
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise ValueError(f"malformed HTTP response: {status_line[:80]!r}")
    length: int | None = None
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        if name.strip().lower() == "content-length" and value.strip().isdigit():
            length = int(value.strip())
    status = int(parts[1])
    # Read (and drop) the body like the kubelet does, so the server finishes its write cleanly.
    has_body = status >= 200 and status not in (204, 304) and length != 0
    if has_body:
        await reader.read(MAX_OUTPUT_BYTES if length is None else min(length, MAX_OUTPUT_BYTES))
    return status


async def tcp_connect(action: TCPSocketAction, pod_ip: str, timeout: float | None) -> ProbeResult:
    host = action.host or pod_ip
    where = f"dial tcp {host}:{action.port}"
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(host, action.port)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
    except TimeoutError:
        return ProbeResult(False, f"{where}: i/o timeout")
    except ConnectionRefusedError:
        return ProbeResult(False, f"{where}: connect: connection refused")
    except OSError as exc:
        return ProbeResult(False, f"{where}: {exc.strerror or exc}")
    return ProbeResult(True, "")


async def run_exec(action: ExecAction, target: ProbeTarget, timeout: float | None) -> ProbeResult:
    """Run the command as a local process with the pod's environment; exit code 0 = success."""
    command = tuple(expand_references(arg, target.env) for arg in action.command)
    target.scratch_dir.mkdir(parents=True, exist_ok=True)
    fd, output_name = tempfile.mkstemp(dir=target.scratch_dir, suffix=".out")
    os.close(fd)
    output_path = Path(output_name)
    proc = ManagedProcess(
        target.name, command, env=target.env, cwd=target.cwd, log_path=output_path
    )
    try:
        try:
            proc.start()
        except ProcessError as exc:
            return ProbeResult(False, str(exc))
        try:
            code = await wait_for_exit(proc, timeout)
        finally:
            # Kill whatever is left: the command on timeout or cancellation, or its children.
            proc.stop(grace=0)
        output = _read_head(output_path)
        if code is None:
            return ProbeResult(False, f"command {' '.join(command)!r} timed out")
        return ProbeResult(code == 0, output)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(output_path)


def _read_head(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            return handle.read(MAX_OUTPUT_BYTES).decode(errors="replace")
    except OSError:
        return ""


async def wait_for_exit(proc: ManagedProcess, timeout: float | None) -> int | None:
    """The process's exit code once it exits, or None if ``timeout`` passes first.

    Waits on a pidfd, so no thread and no polling is needed per process.
    """
    code = proc.returncode
    if code is not None:
        return code
    pid = proc.pid
    if pid is None:
        raise ProcessError(f"{proc.name}: never started")
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return proc.returncode
    loop = asyncio.get_running_loop()
    exited: asyncio.Future[None] = loop.create_future()

    def on_readable() -> None:
        if not exited.done():
            exited.set_result(None)

    loop.add_reader(pidfd, on_readable)
    try:
        async with asyncio.timeout(timeout):
            await exited
    except TimeoutError:
        return None
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)
    return proc.returncode


def expand_references(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes ``$(VAR)`` expansion: defined names are replaced, ``$$`` escapes ``$``."""
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "$" and i + 1 < len(text):
            following = text[i + 1]
            if following == "$":
                out.append("$")
                i += 2
                continue
            if following == "(":
                end = text.find(")", i + 2)
                if end != -1:
                    name = text[i + 2 : end]
                    out.append(env[name] if name in env else text[i : end + 1])
                    i = end + 1
                    continue
        out.append(char)
        i += 1
    return "".join(out)


def _names(keys: Iterable[str]) -> str:
    return ", ".join(sorted(keys))
