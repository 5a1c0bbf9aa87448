"""A real Prometheus server for the local backend, discovering pods through a file.

The server scrapes every second (``scrape_interval`` and ``evaluation_interval`` 1s) and finds
its targets with ``file_sd_configs``: :meth:`PrometheusServer.set_targets` rewrites one JSON
file atomically (write a temporary file, then rename), and each pod is one target group whose
labels are the ones a Kubernetes pod scrape gives (``namespace``, ``pod``, the pod's labels
sanitised as ``labelmap`` does — ``rollouts-pod-template-hash`` becomes
``rollouts_pod_template_hash`` — ``job`` and ``instance``).

Discovery delay: mirrored, not avoided. Prometheus passes discovered targets to its scrape
manager through two tickers with a fixed 5 s period: the discovery manager's ``updatert``
(hard-coded, changed only by Prometheus's own unit tests) and the scrape manager's reload ticker
(the hidden ``--scrape.discovery-reload-interval`` flag is clamped to at least 5 s; setting it to
1s was measured to change nothing). They apply to Kubernetes service discovery exactly as to
file discovery, so on a cluster a new pod reaches analysis queries with the same delay.
Pre-registered pod slots were rejected: a slot's address can be reserved in advance, but not
its identity labels (pod name, pod-template hash, role), and relabelling a slot is again a
discovery update behind the same ticker; the only way around that is joining an info metric,
which would make the PromQL an experiment proves differ from the PromQL a cluster runs. What a
backend can do honestly is what Kubernetes does: a pod is discoverable once it has an address,
so register it when it is created, not when it is Ready, and discovery overlaps its boot.

Measured here (Prometheus 2.42.0, 2 shared cores; 12 runs at random phase against the ticker):
``/-/ready`` 0.05-0.1 s after start; first sample of a target registered before start 5.3-6.0 s
after start; a pod registered only once it serves, first sample 1.0-6.0 s later (median 3.5);
a pod registered at creation, first sample 0.0-0.7 s after it serves; a removed target's series
ends (staleness marker) about one ticker period plus a scrape later, 6.0-6.2 s, not after the
5-minute look-back. ``pytest tests/prom -k "delay or creation" -s`` prints these per run.
:data:`FIRST_SAMPLE_BOUND` is the bound to allow for: one period, one scrape, and slack.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import yaml

from pytest_rollout import _proc, _tools
from pytest_rollout._wait import wait_for
from pytest_rollout.errors import ConfigError, ProcessError, PrometheusError, WaitTimeout
from pytest_rollout.prom import DURATION, LABEL_NAME, PromClient, Sample, quote

__all__ = [
    "DISCOVERY_PERIOD",
    "FIRST_SAMPLE_BOUND",
    "JOB",
    "SCRAPE_INTERVAL",
    "PrometheusServer",
    "TargetGroup",
    "pod_target",
]

JOB = "kubernetes-pods"
SCRAPE_INTERVAL = 1.0
#: Prometheus passes target changes on at most once per this period (fixed in its source).
DISCOVERY_PERIOD = 5.0
#: How long after :meth:`PrometheusServer.set_targets` a listening target may take to show up
#: in queries: one discovery period, one scrape interval (the scrape offset), and slack for a
#: busy machine.
FIRST_SAMPLE_BOUND = DISCOVERY_PERIOD + SCRAPE_INTERVAL + 2.0

_INVALID_LABEL_CHARS = re.compile(r"[^a-zA-Z0-9_]")
_BIND_FAILED = "address already in use"
_START_ATTEMPTS = 3


@dataclass(frozen=True)
class TargetGroup:
    """One ``file_sd`` target group: loopback ``host:port`` targets sharing ``labels``."""

    targets: Sequence[str]
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if isinstance(self.targets, str):
            raise ConfigError(
                f"targets must be a list of 'host:port', not the string {self.targets!r}"
            )
        object.__setattr__(self, "targets", tuple(self.targets))
        object.__setattr__(self, "labels", dict(self.labels))
        if not self.targets:
            raise ConfigError("a target group needs at least one target 'host:port'")
        for target in self.targets:
            _check_loopback_target(target)
        for name, value in self.labels.items():
            if not isinstance(name, str) or not LABEL_NAME.fullmatch(name):
                raise ConfigError(
                    f"target label name {name!r} is not valid: allowed [a-zA-Z_][a-zA-Z0-9_]*"
                )
            if not isinstance(value, str):
                raise ConfigError(f"target label {name}={value!r} must be a string")

    def to_json(self) -> dict[str, object]:
        return {"targets": list(self.targets), "labels": dict(self.labels)}


def pod_target(
    address: str,
    *,
    namespace: str,
    pod: str,
    pod_labels: Mapping[str, str] | None = None,
    job: str = JOB,
    metrics_path: str = "/metrics",
    scrape_interval: str | None = None,
) -> TargetGroup:
    """The target group a Kubernetes pod scrape gives for a pod at ``address`` (``ip:port``).

    Pod labels are carried the way the usual ``labelmap`` of ``__meta_kubernetes_pod_label_*``
    carries them: names sanitised to ``[a-zA-Z0-9_]``. ``instance`` is the address, as it is by
    default on a cluster. ``scrape_interval`` (a Prometheus duration) overrides the server's for
    this target, as relabelling ``__scrape_interval__`` does, and the scrape's timeout with it
    (Prometheus refuses a timeout longer than the interval).
    """
    labels: dict[str, str] = {}
    for key, value in (pod_labels or {}).items():
        name = _INVALID_LABEL_CHARS.sub("_", key)
        if not name or name[0].isdigit():
            name = f"_{name}"
        labels[name] = value
    labels.update(namespace=namespace, pod=pod, job=job, instance=address)
    if metrics_path != "/metrics":
        labels["__metrics_path__"] = metrics_path
    if scrape_interval is not None:
        labels["__scrape_interval__"] = labels["__scrape_timeout__"] = scrape_interval
    return TargetGroup((address,), labels)


def _check_loopback_target(target: str) -> None:
    host, sep, port = target.rpartition(":")
    allowed = "expected '127.x.y.z:PORT' (targets must be on loopback)"
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"target {target!r} is not valid: {allowed}")
    try:
        address = ipaddress.IPv4Address(host)
    except ValueError as exc:
        raise ConfigError(f"target {target!r} is not valid: {allowed}") from exc
    if not address.is_loopback:
        raise ConfigError(f"target {target!r} is not on loopback: {allowed}")


class PrometheusServer:
    """The ``prometheus`` binary on a free loopback port, with its own data directory.

    ``workdir`` holds the generated config, the discovery file, the log and the TSDB (``data/``).
    :meth:`stop` stops the process and removes the TSDB; a ``workdir`` the server created
    itself (none given) is removed entirely.
    """

    def __init__(
        self,
        workdir: str | Path | None = None,
        *,
        host: str = "127.0.0.1",
        job: str = JOB,
        startup_timeout: float = 30.0,
        retention: str = "1d",
    ) -> None:
        if not ipaddress.IPv4Address(host).is_loopback:
            raise ConfigError(f"Prometheus host {host!r} is not on loopback (127.0.0.0/8)")
        if not retention or not DURATION.fullmatch(retention):
            raise ConfigError(
                f"Prometheus retention {retention!r} is not a duration: use e.g. '1d' or '12h'"
            )
        self.host = host
        self.job = job
        self.startup_timeout = startup_timeout
        self.retention = retention
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir is not None else None
        self.port: int | None = None
        self.started_at: float | None = None  # epoch seconds the process was started
        self._process: _proc.ManagedProcess | None = None
        self._client: PromClient | None = None
        self._targets: tuple[TargetGroup, ...] = ()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        state = "running" if self.running() else "stopped"
        return f"<PrometheusServer {self.url if self.port else '(no port)'} {state}>"

    # -- paths -------------------------------------------------------------------------------

    def _dir(self) -> Path:
        if self.workdir is None:
            raise ProcessError("Prometheus server was never started")
        return self.workdir

    @property
    def config_path(self) -> Path:
        return self._dir() / "prometheus.yml"

    @property
    def targets_path(self) -> Path:
        return self._dir() / "sd" / "targets.json"

    @property
    def data_dir(self) -> Path:
        return self._dir() / "data"

    @property
    def log_path(self) -> Path:
        return self._dir() / "prometheus.log"

    @property
    def url(self) -> str:
        if self.port is None:
            raise ProcessError("Prometheus server has no port: it was never started")
        return f"http://{self.host}:{self.port}"

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def running(self) -> bool:
        return self._process is not None and self._process.running()

    def start(self) -> PrometheusServer:
        """Start Prometheus and wait for ``/-/ready``; ProcessError with its log if it fails."""
        if self._process is not None:
            raise ProcessError(f"Prometheus server already started at {self.url}")
        binary = _tools.find(_tools.PROMETHEUS)
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="pytest-rollout-prometheus-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.targets_path.parent.mkdir(parents=True, exist_ok=True)
        self._write_targets(self._targets)
        self.config_path.write_text(self._config_text())
        try:
            # Another process may take the free port before Prometheus binds it: try again.
            for _ in range(_START_ATTEMPTS):
                if self._launch(binary):
                    return self
            raise ProcessError(
                f"prometheus found its port on {self.host} taken {_START_ATTEMPTS} times in a "
                f"row; see {self.log_path}"
            )
        except BaseException:
            self.stop()
            raise

    def _launch(self, binary: str) -> bool:
        """One start attempt; False when the port was taken in the meantime."""
        self.port = _proc.free_port(self.host)
        process = _proc.ManagedProcess(
            f"prometheus:{self.port}",
            [
                binary,
                f"--config.file={self.config_path}",
                f"--web.listen-address={self.host}:{self.port}",
                f"--storage.tsdb.path={self.data_dir}",
                f"--storage.tsdb.retention.time={self.retention}",
                "--log.level=warn",
            ],
            log_path=self.log_path,
        )
        self.started_at = time.time()
        self._process = process.start()
        client = PromClient(self.url, timeout=2.0)

        def ready_or_exited() -> str | None:
            if not process.running():
                return "exited"
            return "ready" if client.ready() else None

        try:
            state = wait_for(
                ready_or_exited,
                what=f"Prometheus at {self.url} to be ready (GET /-/ready answering 200)",
                timeout=self.startup_timeout,
                retry_on=PrometheusError,
            )
        except WaitTimeout as exc:
            raise ProcessError(f"{exc}; last log lines:\n{_startup_log(process)}") from exc
        finally:
            client.close()
        if state == "ready":
            return True
        log = _startup_log(process)
        process.stop()
        self._process = None
        if _BIND_FAILED in log:
            return False
        raise ProcessError(
            f"prometheus exited with code {process.returncode} before it was ready "
            f"(config {self.config_path}); last log lines:\n{log}"
        )

    def stop(self) -> None:
        """Stop the process (whole group) and remove the TSDB. Idempotent."""
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._process is not None:
            self._process.stop()
            self._process = None
        if self.workdir is not None:
            target = self.workdir if self._own_workdir else self.data_dir
            shutil.rmtree(target, ignore_errors=True)

    def __enter__(self) -> PrometheusServer:
        return self.start() if self._process is None else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- targets -----------------------------------------------------------------------------

    @property
    def targets(self) -> tuple[TargetGroup, ...]:
        """The target groups last written to the discovery file."""
        return self._targets

    def set_targets(self, groups: Iterable[TargetGroup]) -> None:
        """Replace the discovered targets (atomically: readers see the old or the new file)."""
        new = tuple(groups)
        for group in new:
            if not isinstance(group, TargetGroup):
                raise ConfigError(f"set_targets expects TargetGroup objects, got {group!r}")
        with self._lock:
            if self._process is not None:
                self._write_targets(new)
            self._targets = new

    def _write_targets(self, groups: tuple[TargetGroup, ...]) -> None:
        path = self.targets_path
        payload = json.dumps([g.to_json() for g in groups], indent=1)
        # The temporary name does not match the discovered file, so Prometheus never reads a
        # half-written file; the rename is one inotify event on the real name.
        fd, tmp = tempfile.mkstemp(prefix=".targets-", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(payload)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    # -- queries -----------------------------------------------------------------------------

    def client(self, timeout: float = 10.0) -> PromClient:
        """A new client for this server (the caller closes it)."""
        return PromClient(self.url, timeout=timeout)

    def wait_until_scraped(self, instance: str, *, timeout: float = FIRST_SAMPLE_BOUND) -> Sample:
        """Wait until a scrape of ``instance`` succeeded and is queryable (``up == 1``)."""
        if self._client is None:
            self._client = self.client()
        samples = self._client.wait_for_data(
            f"up{{instance={quote(instance)}}} == 1", timeout=timeout, interval=0.1
        )
        return samples[0]

    def _config_text(self) -> str:
        interval = f"{SCRAPE_INTERVAL:g}s"
        config = {
            "global": {
                "scrape_interval": interval,
                "scrape_timeout": interval,
                "evaluation_interval": interval,
            },
            "scrape_configs": [
                {
                    "job_name": self.job,
                    "file_sd_configs": [
                        # The file is watched with inotify; the re-read period is a fallback for
                        # file systems where that is not available.
                        {"files": [str(self.targets_path)], "refresh_interval": "5s"}
                    ],
                }
            ],
        }
        return yaml.safe_dump(config, sort_keys=False)


def _startup_log(process: _proc.ManagedProcess) -> str:
    """The end of Prometheus's log, without the flag usage or goroutine dump that follow."""
    text = process.log_tail(200)
    for noise in ("usage: prometheus", "\ngoroutine "):
        text = text.split(noise, 1)[0]
    return "\n".join(text.rstrip().splitlines()[-20:])
