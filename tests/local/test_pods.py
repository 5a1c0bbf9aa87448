"""Pods as real processes: probes, restarts, termination, events, memory, addresses.

Every pod runs a small HTTP server written to the test's tmp dir, bound to the pod IP. Its
behaviour is steered through files in a state directory (``unready``, ``unhealthy`` ...) and it
writes what it saw (probe hits, SIGTERM times, its environment) back there. Pod specs use
Kubernetes-valid integer seconds with ``time_scale=0.1``: ``periodSeconds: 2`` is 0.2 s.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_rollout.backends.local.addresses import (
    AddressAllocator,
    second_octet,
    worker_index,
)
from pytest_rollout.backends.local.events import Event, EventRecorder, ObjectRef
from pytest_rollout.backends.local.pod_spec import ContainerSpec, PodSpec
from pytest_rollout.backends.local.pod_status import (
    CommandResolver,
    Launch,
    PodPhase,
    RestartBackoff,
    session_rss,
)
from pytest_rollout.errors import ConfigError, WaitTimeout
from tests.local.pod_harness import PORT, SCALE, PodHarness, left_clean, pid_alive, until

pytestmark = pytest.mark.slow  # starts real processes, or renders for seconds

APP = textwrap.dedent(
    """
    import http.server, json, os, signal, subprocess, sys, time
    from pathlib import Path

    state = Path(os.environ["STATE_DIR"])
    (state / "unhealthy").unlink(missing_ok=True)  # every new container starts healthy

    def note(name, text):
        with open(state / name, "a") as handle:
            handle.write(text + "\\n")

    note("starts.log", f"{os.getpid()} {time.monotonic()}")
    env_keys = ("POD_IP", "POD_NAME", "POD_NAMESPACE", "HOSTNAME", "GREETING", "MY_IP", "MY_NODE")
    (state / "env.json").write_text(json.dumps({k: os.environ.get(k) for k in env_keys}))

    def on_sigterm(signum, frame):
        note("sigterm.log", str(time.monotonic()))
        if os.environ.get("ON_SIGTERM") != "ignore":
            os._exit(0)

    signal.signal(signal.SIGTERM, on_sigterm)
    if os.environ.get("CRASH_WITH"):
        sys.exit(int(os.environ["CRASH_WITH"]))
    if os.environ.get("SPAWN_CHILD"):
        child = subprocess.Popen(["sleep", "300"])
        note("child.pid", str(child.pid))
    time.sleep(float(os.environ.get("BOOT_SECONDS", "0")))  # booting: not listening yet

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            note("hits.log", f"{time.monotonic()} {self.path}")
            if self.path == "/healthz":
                code = 500 if (state / "unhealthy").exists() else 200
            elif self.path == "/readyz":
                code = 503 if (state / "unready").exists() else 200
            elif self.path == "/slow":
                time.sleep(5)
                code = 200
            else:
                code = 404
            self.send_response(code)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    address = (os.environ["POD_IP"], int(os.environ["PORT"]))
    server = http.server.ThreadingHTTPServer(address, Handler)
    server.daemon_threads = True
    server.serve_forever()
    """
)


class Harness(PodHarness):
    """Pods running the app, steered through files in the state directory."""

    def __init__(self, tmp_path: Path) -> None:
        super().__init__(tmp_path)
        self.app = tmp_path / "app.py"
        self.app.write_text(APP)
        self.resolver: CommandResolver = self.run_app

    def resolve(self, container: ContainerSpec, pod_ip: str) -> Launch:
        return self.resolver(container, pod_ip)

    def run_app(self, container: ContainerSpec, pod_ip: str) -> Launch:
        assert container.image == "probe-target:1"
        return Launch(argv=(sys.executable, str(self.app)), cwd=self.tmp_path)

    def manifest(
        self,
        *,
        env: dict[str, str] | None = None,
        pod: dict[str, Any] | None = None,
        **container: Any,
    ) -> dict[str, Any]:
        variables = {"PORT": str(PORT), "STATE_DIR": str(self.state), **(env or {})}
        return {
            "containers": [
                {
                    "name": "app",
                    "image": "probe-target:1",
                    "ports": [{"name": "http", "containerPort": PORT}],
                    "env": [{"name": k, "value": v} for k, v in variables.items()],
                    **container,
                }
            ],
            **(pod or {}),
        }

    def lines(self, name: str) -> list[str]:
        path = self.state / name
        return path.read_text().splitlines() if path.exists() else []

    def hits(self, path: str) -> list[float]:
        return [float(t) for t, p in (line.split() for line in self.lines("hits.log")) if p == path]


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    with left_clean(Harness(tmp_path)) as harness:
        yield harness


def http_probe(path: str, **timing: int) -> dict[str, Any]:
    return {"httpGet": {"path": path, "port": "http"}, "timeoutSeconds": 10, **timing}


# --- readiness ------------------------------------------------------------------------------


def test_ready_only_after_success_threshold_passes(harness: Harness) -> None:
    pod = harness.pod(
        harness.manifest(readinessProbe=http_probe("/readyz", periodSeconds=2, successThreshold=3))
    )

    async def scenario() -> None:
        await pod.start()
        assert pod.phase is PodPhase.RUNNING
        assert pod.ip is not None
        assert pod.ip.startswith("127.")
        assert pod.ip != "127.0.0.1"
        assert not pod.ready
        await pod.wait_ready(timeout=10)
        status = pod.status()
        assert status.state.started_at is not None
        assert status.ready_since is not None
        became_ready = status.ready_since - status.state.started_at
        assert became_ready >= 2 * 0.2 - 0.01, f"ready after {became_ready:.3f}s"
        probes_before_ready = [
            t for t in harness.hits("/readyz") if t <= harness.ready_changes[0][2]
        ]
        assert len(probes_before_ready) >= 3, f"ready after {len(probes_before_ready)} probe(s)"

    harness.run(scenario)
    assert [ready for _, ready, _ in harness.ready_changes] == [True, False]
    assert harness.reasons(harness.pods[0])[:4] == ["Scheduled", "Pulled", "Created", "Started"]
    scheduled = harness.events.with_reason("Scheduled")[0]
    assert scheduled.message == "Successfully assigned test-ns/web-0 to local"
    assert scheduled.source == "default-scheduler"


def test_initial_delay_is_honoured(harness: Harness) -> None:
    pod = harness.pod(
        harness.manifest(
            readinessProbe=http_probe("/readyz", initialDelaySeconds=6, periodSeconds=1)
        )
    )

    async def scenario() -> None:
        began = time.monotonic()
        await pod.start()
        await pod.wait_ready(timeout=10)
        status = pod.status()
        assert status.ready_since is not None
        assert status.state.started_at is not None
        delay = status.ready_since - status.state.started_at
        assert delay >= 0.6 - 0.01, f"ready {delay:.3f}s after start, initial delay is 0.6s"
        first_probe = min(harness.hits("/readyz"))
        assert first_probe - began >= 0.6 - 0.01, "probed before the initial delay ended"

    harness.run(scenario)


def test_failing_readiness_turns_not_ready_after_failure_threshold(harness: Harness) -> None:
    pod = harness.pod(
        harness.manifest(readinessProbe=http_probe("/readyz", periodSeconds=2, failureThreshold=3))
    )

    async def scenario() -> None:
        await pod.start()
        await pod.wait_ready(timeout=10)
        (harness.state / "unready").write_text("x")
        began = time.monotonic()
        await until(lambda: not pod.ready, what="pod to turn NotReady", timeout=10)
        took = time.monotonic() - began
        # Three failed probes in a row, 0.2 s apart: at least two full periods.
        assert took >= 2 * 0.2 - 0.05, f"NotReady after {took:.3f}s"
        failures = harness.messages(pod, "Unhealthy")
        refusing = "Readiness probe failed: HTTP probe failed with statuscode: 503"
        assert failures.count(refusing) >= 3, failures
        assert pod.restart_count == 0
        assert pod.phase is PodPhase.RUNNING
        (harness.state / "unready").unlink()
        await pod.wait_ready(timeout=10)

    harness.run(scenario)
    assert [ready for _, ready, _ in harness.ready_changes] == [True, False, True, False]


def test_readiness_waits_for_a_booting_server_over_tcp(harness: Harness) -> None:
    pod = harness.pod(
        harness.manifest(
            env={"BOOT_SECONDS": "0.8"},
            readinessProbe={"tcpSocket": {"port": "http"}, "periodSeconds": 1},
        )
    )

    async def scenario() -> None:
        await pod.start()
        began = time.monotonic()
        await pod.wait_ready(timeout=10)
        assert time.monotonic() - began >= 0.6
        refused = harness.messages(pod, "Unhealthy")
        assert refused
        assert (
            refused[0]
            == f"Readiness probe failed: dial tcp {pod.ip}:{PORT}: connect: connection refused"
        )

    harness.run(scenario)


def test_exec_readiness_probe_runs_with_the_pod_environment(harness: Harness) -> None:
    pod = harness.pod(
        harness.manifest(
            readinessProbe={
                "exec": {"command": ["test", "-f", "$(STATE_DIR)/go"]},
                "periodSeconds": 1,
                "timeoutSeconds": 10,
            }
        )
    )

    async def scenario() -> None:
        await pod.start()
        await until(
            lambda: len(harness.messages(pod, "Unhealthy")) >= 2,
            what="two failed exec probes",
            timeout=10,
        )
        assert not pod.ready
        (harness.state / "go").write_text("x")
        await pod.wait_ready(timeout=10)

    harness.run(scenario)


def test_probe_timeout_counts_as_failure(harness: Harness) -> None:
    pod = harness.pod(
        harness.manifest(
            readinessProbe={
                "httpGet": {"path": "/slow", "port": PORT},
                "periodSeconds": 1,
                "timeoutSeconds": 3,
            }
        )
    )

    async def scenario() -> None:
        await pod.start()
        with pytest.raises(WaitTimeout) as caught:
            await pod.wait_ready(timeout=1.5)
        assert "context deadline exceeded" in str(caught.value)  # the evidence names the cause
        timed_out = (
            f'Readiness probe failed: Get "http://{pod.ip}:{PORT}/slow": context deadline '
            f"exceeded (Client.Timeout exceeded while awaiting headers)"
        )
        assert timed_out in harness.messages(pod, "Unhealthy")

    harness.run(scenario)


def test_startup_probe_gates_readiness(harness: Harness) -> None:
    pod = harness.pod(
        harness.manifest(
            startupProbe={
                "exec": {"command": ["test", "-f", "$(STATE_DIR)/started"]},
                "periodSeconds": 1,
                "failureThreshold": 100,
                "timeoutSeconds": 10,
            },
            readinessProbe=http_probe("/readyz", periodSeconds=50),
        )
    )

    async def scenario() -> None:
        await pod.start()
        await until(
            lambda: len(harness.messages(pod, "Unhealthy")) >= 3,
            what="three failed startup probes",
            timeout=10,
        )
        assert not pod.ready
        assert not pod.status().started
        assert harness.hits("/readyz") == []  # readiness is not probed before startup passes
        (harness.state / "started").write_text("x")
        # The readiness period is 5 s: Ready well before that shows it ran at startup success.
        await pod.wait_ready(timeout=3)
        assert pod.status().started

    harness.run(scenario)


# --- liveness and restarts ------------------------------------------------------------------


def test_liveness_failure_restarts_the_container(harness: Harness) -> None:
    pod = harness.pod(
        harness.manifest(
            startupProbe={
                "tcpSocket": {"port": "http"},
                "periodSeconds": 1,
                "failureThreshold": 100,
            },
            readinessProbe=http_probe("/readyz", periodSeconds=1),
            livenessProbe=http_probe("/healthz", periodSeconds=1, failureThreshold=2),
        )
    )

    async def scenario() -> None:
        await pod.start()
        await pod.wait_ready(timeout=10)
        first_pid = pod.pid
        assert first_pid is not None
        (harness.state / "unhealthy").write_text("x")
        await until(lambda: pod.restart_count == 1, what="one restart", timeout=10)
        await pod.wait_ready(timeout=10)
        assert pod.pid != first_pid
        assert not pid_alive(first_pid)
        last = pod.status().last_state
        assert last is not None
        assert last.exit_code == 0  # the app exits on SIGTERM
        assert len(harness.lines("starts.log")) == 2

    harness.run(scenario)
    pod = harness.pods[0]
    assert (
        harness.messages(pod, "Killing")[0]
        == "Container app failed liveness probe, will be restarted"
    )
    unhealthy = harness.messages(pod, "Unhealthy")
    assert "Liveness probe failed: HTTP probe failed with statuscode: 500" in unhealthy
    assert harness.reasons(pod).count("Started") == 2
    assert harness.reasons(pod).count("Created") == 2
    assert len(harness.lines("sigterm.log")) == 2  # the liveness kill, then the deletion
    assert pod.log_path.name == "1.log"


def test_crashing_container_restarts_with_back_off(harness: Harness) -> None:
    pod = harness.pod(harness.manifest(env={"CRASH_WITH": "3"}))

    async def scenario() -> None:
        await pod.start()
        await until(lambda: pod.restart_count >= 2, what="two restarts", timeout=10)
        await until(lambda: len(harness.lines("starts.log")) >= 3, what="third start", timeout=10)
        status = pod.status()
        assert status.last_state is not None
        assert status.last_state.exit_code == 3
        assert status.last_state.reason == "Error"
        assert pod.phase is PodPhase.RUNNING  # restartPolicy Always keeps the pod running

    harness.run(scenario)
    pod = harness.pods[0]
    starts = [float(line.split()[1]) for line in harness.lines("starts.log")]
    assert len(starts) >= 3
    # First restart at once, the second only after the 10 s (scaled: 1 s) back-off.
    assert starts[1] - starts[0] < 0.9
    assert starts[2] - starts[1] >= 1.0 - 0.05
    backoff = harness.messages(pod, "BackOff")
    assert backoff
    assert backoff[0] == f"Back-off restarting failed container app in pod web-0_test-ns({pod.uid})"


def test_restart_policy_never_leaves_a_finished_pod(harness: Harness) -> None:
    pod = harness.pod(harness.manifest(env={"CRASH_WITH": "0"}, pod={"restartPolicy": "Never"}))

    async def scenario() -> None:
        await pod.start()
        await until(lambda: pod.phase is PodPhase.SUCCEEDED, what="phase Succeeded", timeout=10)
        assert pod.restart_count == 0
        assert pod.status().state.reason == "Completed"

    harness.run(scenario)


@pytest.mark.parametrize(
    ("exit_code", "restarts"), [(0, False), (1, True)], ids=["success", "failure"]
)
def test_restart_policy_on_failure(harness: Harness, exit_code: int, restarts: bool) -> None:
    pod = harness.pod(
        harness.manifest(env={"CRASH_WITH": str(exit_code)}, pod={"restartPolicy": "OnFailure"})
    )

    async def scenario() -> None:
        await pod.start()
        if restarts:
            await until(lambda: pod.restart_count >= 1, what="a restart", timeout=10)
        else:
            await until(lambda: pod.phase is PodPhase.SUCCEEDED, what="phase Succeeded", timeout=10)
            assert pod.restart_count == 0

    harness.run(scenario)


# --- termination ----------------------------------------------------------------------------


def test_delete_runs_pre_stop_before_sigterm_and_unreadies_at_once(harness: Harness) -> None:
    pod = harness.pod(
        harness.manifest(
            lifecycle={"preStop": {"sleep": {"seconds": 5}}},
            pod={"terminationGracePeriodSeconds": 30},
        )
    )

    async def scenario() -> None:
        await pod.start()
        await pod.wait_ready(timeout=10)
        pid = pod.pid
        assert pid is not None
        began = time.monotonic()
        await pod.delete()
        took = time.monotonic() - began
        sigterm_at = float(harness.lines("sigterm.log")[0])
        unready_at = harness.ready_changes[-1][2]
        assert harness.ready_changes[-1][1] is False
        assert unready_at - began < 0.1, "Ready must turn false as deletion starts"
        assert sigterm_at - began >= 0.5 - 0.02, "SIGTERM must wait for the 0.5 s preStop sleep"
        assert took < 0.5 + 1.0  # the app exits on SIGTERM: no wait for the grace period
        assert not pid_alive(pid)

    harness.run(scenario)
    pod = harness.pods[0]
    assert harness.messages(pod, "Killing") == ["Stopping container app"]
    last = pod.status().last_state
    assert last is not None
    assert last.exit_code == 0


def test_sigterm_ignoring_process_is_killed_after_grace_period(harness: Harness) -> None:
    pod = harness.pod(
        harness.manifest(
            env={"ON_SIGTERM": "ignore", "SPAWN_CHILD": "1"},
            pod={"terminationGracePeriodSeconds": 10},
        )
    )

    async def scenario() -> None:
        await pod.start()
        await pod.wait_ready(timeout=10)
        await until(lambda: harness.lines("child.pid"), what="child", timeout=10)
        child = int(harness.lines("child.pid")[0])
        began = time.monotonic()
        await pod.delete()
        took = time.monotonic() - began
        assert 1.0 - 0.02 <= took < 1.0 + 1.5, f"deleted after {took:.2f}s; grace is 1.0 s"
        assert len(harness.lines("sigterm.log")) == 1  # it got SIGTERM and ignored it
        last = pod.status().last_state
        assert last is not None
        assert last.exit_code == 137
        # SIGKILL to the group is delivered at once, but a grandchild dies when it next runs.
        await until(
            lambda: not pid_alive(child),
            what="the container's other processes to be gone after SIGKILL",
            timeout=1.0,
        )

    harness.run(scenario)


@pytest.mark.parametrize(
    ("pre_stop_seconds", "expected_total"),
    [(8, 1.0), (30, 1.0 + 0.2)],
    ids=["prestop-within-grace", "prestop-outlasts-grace"],
)
def test_grace_period_counts_from_deletion_including_pre_stop(
    harness: Harness, pre_stop_seconds: int, expected_total: float
) -> None:
    # Grace 1.0 s. A 0.8 s preStop leaves 0.2 s before SIGKILL; a 3 s one is cut at 1.0 s and
    # the container still gets the kubelet's minimum 2 s (scaled 0.2 s) after SIGTERM.
    pod = harness.pod(
        harness.manifest(
            env={"ON_SIGTERM": "ignore"},
            lifecycle={"preStop": {"sleep": {"seconds": pre_stop_seconds}}},
            pod={"terminationGracePeriodSeconds": 10},
        )
    )

    async def scenario() -> None:
        await pod.start()
        await pod.wait_ready(timeout=10)
        began = time.monotonic()
        await pod.delete()
        took = time.monotonic() - began
        sigterm_at = float(harness.lines("sigterm.log")[0]) - began
        assert sigterm_at >= min(pre_stop_seconds * SCALE, 1.0) - 0.02
        assert expected_total - 0.02 <= took < expected_total + 0.8, f"took {took:.2f}s"

    harness.run(scenario)


def test_exec_pre_stop_runs_in_the_pod_environment(harness: Harness) -> None:
    pod = harness.pod(
        harness.manifest(
            lifecycle={
                "preStop": {
                    "exec": {
                        "command": [
                            sys.executable,
                            "-c",
                            "import os, pathlib; pathlib.Path(os.environ['STATE_DIR'], "
                            "'prestop.ip').write_text(os.environ['POD_IP'])",
                        ]
                    }
                }
            }
        )
    )

    async def scenario() -> None:
        await pod.start()
        await pod.wait_ready(timeout=10)
        await pod.delete()
        assert (harness.state / "prestop.ip").read_text() == pod.ip

    harness.run(scenario)
    assert "FailedPreStopHook" not in harness.reasons(harness.pods[0])


def test_failed_pre_stop_hook_is_recorded_and_termination_goes_on(harness: Harness) -> None:
    pod = harness.pod(harness.manifest(lifecycle={"preStop": {"exec": {"command": ["false"]}}}))

    async def scenario() -> None:
        await pod.start()
        await pod.delete()

    harness.run(scenario)
    pod = harness.pods[0]
    assert harness.messages(pod, "FailedPreStopHook") == ["PreStopHook failed"]
    assert pod.deleted


# --- the reference service -------------------------------------------------------------------

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_reference_service_is_ready_only_after_its_boot(harness: Harness) -> None:
    # The service opens its port at once but closes every connection unanswered until its boot
    # ends: a tcpSocket probe would pass early, the httpGet readiness probe must not. The boot
    # lasts three probe periods, so that a probe falls inside it on a busy machine too.
    from service.schema import upgrade

    database = f"sqlite:///{harness.tmp_path / 'service.db'}"
    upgrade(database, "head")

    def resolve(container: ContainerSpec, pod_ip: str) -> Launch:
        return Launch(
            argv=(sys.executable, "-m", "service", "--host", pod_ip, "--port", str(PORT)),
            cwd=REPO_ROOT,
        )

    harness.resolver = resolve
    pod = harness.pod(
        harness.manifest(
            env={
                "SERVICE_BOOT_SECONDS": "3",
                "SERVICE_DATABASE_URL": database,
                "SERVICE_VERSION": "v7",
            },
            readinessProbe=http_probe("/readyz", periodSeconds=1),
            pod={"terminationGracePeriodSeconds": 50},
        )
    )

    async def scenario() -> None:
        began = time.monotonic()
        await pod.start()
        # Closed before the probe's request was read: EOF, or a reset when the request had
        # already arrived (as the kubelet's Go client reports either).
        dropped = ('/readyz": EOF', '/readyz": read: connection reset by peer')
        await until(
            lambda: any(m.endswith(dropped) for m in harness.messages(pod, "Unhealthy")),
            what="a probe answered by a booting service (accepted, then closed)",
            timeout=30,
        )
        assert not pod.ready
        await pod.wait_ready(timeout=30)
        assert time.monotonic() - began >= 3
        reader, writer = await asyncio.open_connection(pod.ip, PORT)
        writer.write(b"GET / HTTP/1.0\r\n\r\n")
        answer = (await reader.read()).decode()
        writer.close()
        assert "X-Version: v7" in answer
        await pod.delete()
        last = pod.status().last_state
        assert last is not None
        assert last.exit_code == 0, "the service exits cleanly on SIGTERM"

    harness.run(scenario)


# --- environment, memory, spec errors -------------------------------------------------------


def test_environment_carries_pod_fields_and_expansions(harness: Harness) -> None:
    manifest = harness.manifest(
        env={"GREETING": "hello from $(POD_NAMESPACE_COPY)"},
        readinessProbe=http_probe("/readyz", periodSeconds=1),
    )
    container = manifest["containers"][0]
    container["env"] = [
        {
            "name": "POD_NAMESPACE_COPY",
            "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
        },
        {"name": "MY_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "MY_NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        *container["env"],
    ]
    pod = harness.pod(manifest)

    async def scenario() -> None:
        await pod.start()
        await pod.wait_ready(timeout=10)

    harness.run(scenario)
    env = json.loads((harness.state / "env.json").read_text())
    assert env == {
        "POD_IP": pod.ip,
        "POD_NAME": "web-0",
        "POD_NAMESPACE": "test-ns",
        "HOSTNAME": "web-0",
        "GREETING": "hello from test-ns",
        "MY_IP": pod.ip,
        "MY_NODE": "local",
    }


def test_memory_is_sampled_and_peak_kept(harness: Harness) -> None:
    pod = harness.pod(harness.manifest(env={"SPAWN_CHILD": "1"}))

    async def scenario() -> None:
        await pod.start()
        await pod.wait_ready(timeout=10)
        await until(lambda: harness.lines("child.pid"), what="child", timeout=10)
        pid, child = pod.pid, int(harness.lines("child.pid")[0])
        assert pid is not None
        sample = pod.sample_memory()
        expected = _rss_of(pid) + _rss_of(child)  # the child (sleep) counts too
        assert sample.rss_bytes > 5 * 1024 * 1024, f"rss {sample.rss_bytes} bytes"
        assert abs(sample.rss_bytes - expected) < 0.2 * expected, (sample, expected)
        await until(
            lambda: pod.memory.sampled_at != sample.sampled_at,
            what="a periodic memory sample",
            timeout=5,
        )
        assert pod.memory.peak_rss_bytes >= max(sample.rss_bytes, pod.memory.rss_bytes)

    harness.run(scenario)
    pod = harness.pods[0]
    assert pod.memory.peak_rss_bytes > 0


def _rss_of(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()
    return int(fields[21]) * os.sysconf("SC_PAGE_SIZE")


def test_session_rss_of_a_gone_session_is_zero() -> None:
    assert session_rss(2**22 + 12345) == 0


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda m: m["containers"].append(dict(m["containers"][0], name="sidecar")),
            "unsupported: spec.containers[1]",
        ),
        (
            lambda m: m["containers"][0]["env"].append(
                {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}
            ),
            "unsupported: spec.containers[0].env[2].valueFrom.secretKeyRef",
        ),
        (
            lambda m: m["containers"][0].update(volumeMounts=[]),
            "unsupported: spec.containers[0].volumeMounts",
        ),
        (
            lambda m: m.update(
                initContainers=[{"name": "s", "image": "probe-target:1", "restartPolicy": "Always"}]
            ),
            "unsupported: spec.initContainers[0].restartPolicy='Always'",
        ),
        (
            lambda m: m["containers"][0].update(
                lifecycle={"postStart": {"exec": {"command": ["x"]}}}
            ),
            "unsupported: spec.containers[0].lifecycle.postStart",
        ),
        (
            lambda m: m["containers"][0].update(lifecycle={"preStop": {"tcpSocket": {"port": 1}}}),
            "unsupported: spec.containers[0].lifecycle.preStop.tcpSocket",
        ),
        (
            lambda m: m["containers"][0].update(readinessProbe={"grpc": {"port": 1}}),
            "unsupported: spec.containers[0].readinessProbe.grpc",
        ),
        (lambda m: m.update(restartPolicy="Sometimes"), "spec.restartPolicy='Sometimes'"),
        (
            lambda m: m["containers"][0]["ports"].append({"containerPort": 53, "protocol": "UDP"}),
            "unsupported: spec.containers[0].ports[1].protocol='UDP'",
        ),
        (
            lambda m: m["containers"][0]["env"].append({"name": "N", "value": 3}),
            "spec.containers[0].env[2].value: must be a string",
        ),
    ],
)
def test_bad_pod_spec_is_one_clear_error(
    tmp_path: Path, mutate: Callable[[dict[str, Any]], None], message: str
) -> None:
    manifest = Harness(tmp_path).manifest()
    mutate(manifest)
    with pytest.raises(ConfigError) as caught:
        PodSpec.from_manifest(manifest)
    assert message in str(caught.value)


def test_pod_spec_defaults_and_inert_fields(tmp_path: Path) -> None:
    manifest = Harness(tmp_path).manifest(resources={"limits": {"memory": "128Mi"}})
    spec = PodSpec.from_manifest(manifest, time_scale=SCALE)
    assert spec.termination_grace_period == pytest.approx(30 * SCALE)
    assert spec.restart_policy == "Always"
    assert spec.container.named_ports == {"http": PORT}
    assert spec.container.readiness_probe is None


# --- restart back-off (pure) ----------------------------------------------------------------


def test_restart_back_off_doubles_to_the_cap_and_resets() -> None:
    backoff = RestartBackoff(initial=10, cap=300)
    now = 0.0
    waits = []
    for _ in range(8):
        finished = now + 1.0  # the container ran for a second, then exited
        wait = backoff.wait_before_restart(finished, finished)
        waits.append(wait)
        now = finished + wait
        backoff.restarting(finished, now)
    assert waits == [0, 10, 20, 40, 80, 160, 300, 300]
    # After running for longer than twice the cap, the next crash restarts at once again.
    finished = now + 601
    assert backoff.wait_before_restart(finished, finished) == 0
    backoff.restarting(finished, finished)
    assert backoff.backoff == 10


# --- addresses ------------------------------------------------------------------------------


def test_addresses_are_distinct_loopback_and_never_127_0_0_1() -> None:
    allocator = AddressAllocator("gw0", start_offset=0)
    seen = {allocator.allocate() for _ in range(2000)}
    assert len(seen) == 2000
    assert "127.0.0.1" not in seen
    assert all(a.startswith("127.101.") for a in seen)
    assert all(not a.endswith((".0", ".255")) for a in seen)


@given(st.integers(0, 150), st.integers(0, 150))
def test_xdist_workers_get_disjoint_ranges(first: int, second: int) -> None:
    a, b = second_octet(f"gw{first}"), second_octet(f"gw{second}")
    assert (a == b) is (first == second)
    assert second_octet(None) not in (a, b)
    assert min(a, b, second_octet(None)) > 0


def test_worker_id_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw3")
    assert AddressAllocator().network == "127.104.0.0/16"
    monkeypatch.delenv("PYTEST_XDIST_WORKER")
    assert AddressAllocator().network == "127.100.0.0/16"
    assert worker_index("master") is None
    with pytest.raises(ConfigError, match="PYTEST_XDIST_WORKER='node7'"):
        worker_index("node7")


def test_released_address_is_reused_only_when_fresh_ones_run_out() -> None:
    allocator = AddressAllocator("gw1", start_offset=0)
    first = allocator.allocate()
    allocator.release(first)
    assert allocator.allocate() != first
    for _ in range(256 * 254 - 2):
        allocator.allocate()
    assert allocator.allocate() == first
    with pytest.raises(ConfigError, match=r"no free pod address left in 127\.102\.0\.0/16"):
        allocator.allocate()


def test_address_with_a_busy_port_is_skipped() -> None:
    import socket

    allocator = AddressAllocator("gw2", start_offset=500)
    first = allocator.allocate()
    allocator.release(first)
    probe = AddressAllocator("gw2", start_offset=500)
    with socket.socket() as busy:
        busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        busy.bind((first, 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert probe.allocate(ports=[port]) != first


# --- events ---------------------------------------------------------------------------------


def test_events_are_queryable_and_print_as_lines() -> None:
    clock = iter([100.0, 102.5, 112.34, 113.0])
    recorder = EventRecorder(clock=lambda: next(clock))
    pod = ObjectRef("Pod", "web-0", "shop")
    other = ObjectRef("Rollout", "web", "shop")
    recorder.normal(pod, "Started", "Started container app")
    recorder.warning(
        pod, "Unhealthy", "Readiness probe failed: HTTP probe failed with statuscode: 503"
    )
    recorder.normal(
        other, "RolloutUpdated", "Rollout updated to revision 2", source="rollouts-controller"
    )
    assert [e.reason for e in recorder.for_object(pod)] == ["Started", "Unhealthy"]
    assert [e.involved for e in recorder.with_reason("RolloutUpdated")] == [other]
    assert len(recorder.events(type="Warning")) == 1
    assert recorder.events(since=110.0)[0].reason == "Unhealthy"
    assert recorder.lines() == [
        "+2.5s Normal Started pod/web-0: Started container app",
        "+12.3s Warning Unhealthy pod/web-0: Readiness probe failed: "
        "HTTP probe failed with statuscode: 503",
        "+13.0s Normal RolloutUpdated rollout/web: Rollout updated to revision 2",
    ]
    assert recorder.events()[2].to_dict()["involvedObject"] == {
        "kind": "Rollout",
        "name": "web",
        "namespace": "shop",
    }


def test_event_recorder_is_thread_safe_and_notifies_listeners() -> None:
    recorder = EventRecorder()
    heard: list[Event] = []
    unsubscribe = recorder.subscribe(heard.append)
    ref = ObjectRef("Pod", "p", "ns")

    def burst() -> None:
        for index in range(500):
            recorder.normal(ref, "Started", f"#{index}")

    threads = [threading.Thread(target=burst) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    unsubscribe()
    recorder.normal(ref, "Started", "after unsubscribe")
    assert len(recorder) == 2001
    assert len(heard) == 2000
