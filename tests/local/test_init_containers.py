"""Init containers of local pods: order, retries, failure, deletion, readiness, spec errors.

Every container runs ``python`` with the command/args of its manifest (the resolver honours
them, as a container runtime does). The containers write what happened, with monotonic
timestamps, to ``order.log`` in a state directory. Pod specs use Kubernetes-valid integer
seconds with ``time_scale=0.1``: the first CrashLoopBackOff (10 s) lasts 1 s.
"""

from __future__ import annotations

import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_rollout.backends.local.pod_spec import ContainerSpec, PodSpec
from pytest_rollout.backends.local.pod_status import Launch, PodPhase
from pytest_rollout.errors import ConfigError, ProcessError, RolloutError
from tests.local.pod_harness import PORT, SCALE, PodHarness, left_clean, pid_alive, until

pytestmark = pytest.mark.slow  # starts real processes, or renders for seconds

PRELUDE = textwrap.dedent(
    """
    import os, signal, subprocess, sys, time
    from pathlib import Path

    state = Path(os.environ["STATE_DIR"])

    def note(text):
        with open(state / "order.log", "a") as handle:
            handle.write(f"{text} {time.monotonic()}\\n")
    """
)

# The name comes from args, so the test also shows that args reach the process.
ORDERED_STEP = PRELUDE + textwrap.dedent(
    """
    name = sys.argv[1]
    note(f"{name} start")
    (state / f"{name}.env").write_text(os.environ["POD_IP"] + " " + os.environ["GREETING"])
    time.sleep(0.2)
    print(f"{name} done", flush=True)
    note(f"{name} end")
    """
)

# Fails its first two runs, succeeds on the third.
FLAKY_MIGRATION = PRELUDE + textwrap.dedent(
    """
    with open(state / "attempts.log", "a") as handle:
        handle.write(f"{time.monotonic()}\\n")
    attempt = len((state / "attempts.log").read_text().splitlines())
    print(f"migration attempt {attempt}", flush=True)
    note(f"migrate attempt-{attempt}")
    sys.exit(0 if attempt >= 3 else 1)
    """
)

FAILING_MIGRATION = PRELUDE + textwrap.dedent(
    """
    note("migrate attempt")
    sys.exit(3)
    """
)

# Ignores SIGTERM and keeps a child, so deletion must escalate to SIGKILL of the whole container.
STUCK_MIGRATION = PRELUDE + textwrap.dedent(
    """
    signal.signal(signal.SIGTERM, lambda signum, frame: note("migrate sigterm"))
    child = subprocess.Popen(["sleep", "300"])
    (state / "migrate.pids").write_text(f"{os.getpid()} {child.pid}")
    note("migrate start")
    while True:
        time.sleep(1)
    """
)

SHORT_STEP = PRELUDE + textwrap.dedent(
    """
    note("warmup start")
    time.sleep(0.3)
    note("warmup end")
    """
)

APP = PRELUDE + textwrap.dedent(
    """
    import http.server

    note("app start")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            code = 503 if (state / "unready").exists() else 200
            self.send_response(code)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    signal.signal(signal.SIGTERM, lambda signum, frame: os._exit(0))
    address = (os.environ["POD_IP"], int(os.environ["PORT"]))
    server = http.server.ThreadingHTTPServer(address, Handler)
    server.daemon_threads = True
    server.serve_forever()
    """
)


class Harness(PodHarness):
    """Pods whose containers run their manifest's command, writing ``order.log``."""

    def __init__(self, tmp_path: Path) -> None:
        super().__init__(tmp_path)
        self.app = tmp_path / "app.py"
        self.app.write_text(APP)
        self.resolved: list[str] = []

    def resolve(self, container: ContainerSpec, pod_ip: str) -> Launch:
        assert container.command, f"{container.name}: every test container has a command"
        self.resolved.append(container.name)
        return Launch(argv=(*container.command, *container.args), cwd=self.tmp_path)

    def env(self, **extra: str) -> list[dict[str, str]]:
        variables = {"STATE_DIR": str(self.state), **extra}
        return [{"name": k, "value": v} for k, v in variables.items()]

    def init(self, name: str, code: str, *args: str, **fields: Any) -> dict[str, Any]:
        return {
            "name": name,
            "image": "migrator:1",
            "command": [sys.executable, "-c", code],
            "args": list(args),
            "env": self.env(),
            **fields,
        }

    def manifest(self, *inits: dict[str, Any], **pod: Any) -> dict[str, Any]:
        return {
            "initContainers": list(inits),
            "containers": [
                {
                    "name": "app",
                    "image": "shop:1",
                    "command": [sys.executable, str(self.app)],
                    "ports": [{"name": "http", "containerPort": PORT}],
                    "env": self.env(PORT=str(PORT)),
                    "readinessProbe": {
                        "httpGet": {"path": "/readyz", "port": "http"},
                        "periodSeconds": 1,
                        "timeoutSeconds": 10,
                    },
                }
            ],
            **pod,
        }

    def order(self) -> list[tuple[str, float]]:
        """``order.log`` as (what, monotonic time), oldest first."""
        path = self.state / "order.log"
        lines = path.read_text().splitlines() if path.exists() else []
        return [(what, float(at)) for what, _, at in (line.rpartition(" ") for line in lines)]

    def happened(self, what: str) -> float:
        times = [at for name, at in self.order() if name == what]
        assert len(times) == 1, f"{what!r} seen {len(times)} times in {self.order()}"
        return times[0]


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    with left_clean(Harness(tmp_path)) as harness:
        yield harness


# --- order ----------------------------------------------------------------------------------


def test_init_containers_run_in_order_to_completion_before_the_app(harness: Harness) -> None:
    # restartPolicy Never: a successful init container still hands over to the next one.
    first = harness.init("first", ORDERED_STEP, "first")
    second = harness.init("second", ORDERED_STEP, "second")
    first["env"] += [{"name": "GREETING", "value": "hi from $(STATE_DIR)"}]
    second["env"] += [{"name": "GREETING", "value": "second"}]
    pod = harness.pod(harness.manifest(first, second, restartPolicy="Never"))

    async def scenario() -> None:
        await pod.start()
        status = pod.status()
        assert status.phase is PodPhase.PENDING
        assert not status.initialized
        assert not status.ready
        assert [s.state.state for s in status.init_containers] == ["running", "waiting"]
        assert status.init_containers[1].state.reason == "PodInitializing"
        assert status.state.reason == "PodInitializing"  # the app container waits
        assert pod.pid is None
        await pod.wait_ready(timeout=10)
        status = pod.status()
        assert status.phase is PodPhase.RUNNING
        assert status.initialized
        for init in status.init_containers:
            assert (init.state.state, init.state.reason, init.state.exit_code) == (
                "terminated",
                "Completed",
                0,
            ), init
            assert init.restart_count == 0

    harness.run(scenario)
    pod = harness.pods[0]
    steps = [what for what, _ in harness.order()]
    assert steps == ["first start", "first end", "second start", "second end", "app start"]
    assert harness.happened("second start") >= harness.happened("first end")
    assert harness.happened("app start") >= harness.happened("second end")
    assert harness.resolved == ["first", "second", "app"]
    assert (harness.state / "first.env").read_text() == f"{pod.ip} hi from {harness.state}"
    assert harness.messages(pod, "Created") == [
        "Created container: first",
        "Created container: second",
        "Created container: app",
    ]
    assert harness.messages(pod, "Started") == [
        "Started container first",
        "Started container second",
        "Started container app",
    ]
    assert [e.reason for e in harness.events.for_object(pod.ref)][:7] == [
        "Scheduled",
        "Pulled",
        "Created",
        "Started",
        "Pulled",
        "Created",
        "Started",
    ]
    assert harness.messages(pod, "Pulled")[0] == (
        'Container image "migrator:1" already present on machine'
    )
    for name in ("first", "second"):
        log = pod.container_log_path(name)
        assert log.relative_to(pod.log_path.parents[1]) == Path(name, "0.log")
        assert log.read_text() == f"{name} done\n"
    assert pod.log_path.parent.name == "app"


# --- failures -------------------------------------------------------------------------------


@pytest.mark.parametrize("policy", ["Always", "OnFailure"])
def test_failing_init_container_is_retried_with_back_off_and_holds_the_app(
    harness: Harness, policy: str
) -> None:
    pod = harness.pod(
        harness.manifest(harness.init("migrate", FLAKY_MIGRATION), restartPolicy=policy)
    )

    async def scenario() -> None:
        await pod.start()
        # Run 1 fails and restarts at once; run 2 fails and enters the 1 s back-off.
        await until(
            lambda: pod.status().init_containers[0].state.reason == "CrashLoopBackOff",
            what="the init container backing off",
            timeout=10,
        )
        status = pod.status()
        migrate = status.init_containers[0]
        assert migrate.restart_count == 1
        assert migrate.last_state is not None
        assert (migrate.last_state.reason, migrate.last_state.exit_code) == ("Error", 1)
        assert status.phase is PodPhase.PENDING
        assert not status.ready
        assert not status.initialized
        assert status.state.reason == "PodInitializing"
        assert "app start" not in [what for what, _ in harness.order()]
        assert "init container migrate (1/1) waiting (CrashLoopBackOff)" in pod.describe()
        await pod.wait_ready(timeout=10)
        assert pod.status().init_containers[0].restart_count == 2
        assert pod.restart_count == 0

    harness.run(scenario)
    pod = harness.pods[0]
    attempts = [float(t) for t in (harness.state / "attempts.log").read_text().split()]
    assert len(attempts) == 3
    assert attempts[1] - attempts[0] < 0.9, "the first restart is immediate"
    assert attempts[2] - attempts[1] >= 1.0 - 0.05, "the second waits out the 1 s back-off"
    assert harness.happened("app start") >= harness.happened("migrate attempt-3")
    assert harness.messages(pod, "BackOff") == [
        f"Back-off restarting failed container migrate in pod web-0_test-ns({pod.uid})"
    ]
    assert harness.messages(pod, "Started").count("Started container migrate") == 3
    for run in range(3):
        log = pod.container_log_path("migrate", run)
        assert log.read_text() == f"migration attempt {run + 1}\n"


def test_failing_init_container_fails_the_pod_under_restart_policy_never(
    harness: Harness,
) -> None:
    pod = harness.pod(
        harness.manifest(harness.init("migrate", FAILING_MIGRATION), restartPolicy="Never")
    )

    async def scenario() -> None:
        await pod.start()
        with pytest.raises(ProcessError) as caught:
            await pod.wait_ready(timeout=10)
        assert "will never become Ready" in str(caught.value)
        assert "last init exit code 3" in str(caught.value)
        status = pod.status()
        assert status.phase is PodPhase.FAILED
        assert not status.initialized
        migrate = status.init_containers[0]
        assert (migrate.state.reason, migrate.state.exit_code) == ("Error", 3)
        assert migrate.restart_count == 0
        assert status.state.reason == "PodInitializing"

    harness.run(scenario)
    pod = harness.pods[0]
    assert [what for what, _ in harness.order()] == ["migrate attempt"]
    assert harness.messages(pod, "BackOff") == []
    assert "Started container app" not in harness.messages(pod, "Started")


# --- deletion -------------------------------------------------------------------------------


def test_delete_during_an_init_container_kills_it_and_its_children(harness: Harness) -> None:
    pod = harness.pod(
        harness.manifest(harness.init("migrate", STUCK_MIGRATION), terminationGracePeriodSeconds=5)
    )

    async def scenario() -> None:
        await pod.start()
        await until(lambda: (harness.state / "migrate.pids").exists(), what="pids", timeout=10)
        main_pid, child_pid = map(int, (harness.state / "migrate.pids").read_text().split())
        assert pod.pid is None  # the app container has not started
        sample = pod.sample_memory()
        assert sample.rss_bytes > 5 * 1024 * 1024, f"init container rss {sample.rss_bytes}"
        began = time.monotonic()
        await pod.delete()
        took = time.monotonic() - began
        assert 0.5 - 0.02 <= took < 0.5 + 1.5, f"deleted after {took:.2f}s; grace is 0.5 s"
        assert harness.happened("migrate sigterm") - began < 0.3, "SIGTERM comes first"
        assert not pid_alive(main_pid)
        assert not pid_alive(child_pid), "the init container's other processes must go too"
        migrate = pod.status().init_containers[0]
        assert (migrate.state.state, migrate.state.exit_code) == ("terminated", 137)
        assert pod.memory.peak_rss_bytes >= sample.rss_bytes

    harness.run(scenario)
    pod = harness.pods[0]
    assert harness.messages(pod, "Killing") == ["Stopping container migrate"]
    assert "app start" not in [what for what, _ in harness.order()]
    assert pod.status().state.reason == "PodInitializing"


# --- readiness ------------------------------------------------------------------------------


REFUSED_BY_APP = "Readiness probe failed: HTTP probe failed with statuscode: 503"


def test_pod_is_ready_only_once_the_app_passes_readiness_after_init(harness: Harness) -> None:
    (harness.state / "unready").write_text("x")
    pod = harness.pod(harness.manifest(harness.init("warmup", SHORT_STEP)))

    async def scenario() -> None:
        await pod.start()
        assert not pod.ready
        await until(lambda: pod.phase is PodPhase.RUNNING, what="the app running", timeout=10)
        assert pod.initialized
        await until(
            lambda: harness.messages(pod, "Unhealthy").count(REFUSED_BY_APP) >= 2,
            what="two readiness probes answered 503 by the running app",
            timeout=10,
        )
        assert not pod.ready
        (harness.state / "unready").unlink()
        await pod.wait_ready(timeout=10)

    harness.run(scenario)
    pod = harness.pods[0]
    assert [ready for _, ready, _ in harness.ready_changes] == [True, False]
    assert harness.ready_changes[0][2] > harness.happened("app start")
    assert harness.happened("app start") >= harness.happened("warmup end")


# --- spec -----------------------------------------------------------------------------------


def test_init_containers_parse_like_containers(tmp_path: Path) -> None:
    harness = Harness(tmp_path)
    manifest = harness.manifest(
        harness.init("first", "pass", "--flag", resources={"limits": {"memory": "64Mi"}}),
        harness.init("second", "pass"),
    )
    spec = PodSpec.from_manifest(manifest, time_scale=SCALE)
    assert [c.name for c in spec.init_containers] == ["first", "second"]
    first = spec.init_containers[0]
    assert first.command == (sys.executable, "-c", "pass")
    assert first.args == ("--flag",)
    assert [v.name for v in first.env] == ["STATE_DIR"]
    assert first.readiness_probe is None
    assert first.pre_stop is None
    assert spec.container.name == "app"
    assert PodSpec.from_manifest(harness.manifest(), time_scale=SCALE).init_containers == ()


def _init_field(**fields: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(manifest: dict[str, Any]) -> None:
        manifest["initContainers"][-1].update(fields)

    return mutate


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            _init_field(readinessProbe={"tcpSocket": {"port": 1}}),
            "invalid: spec.initContainers[1].readinessProbe: must not be set for init containers",
        ),
        (
            _init_field(livenessProbe={"exec": {"command": ["true"]}}),
            "invalid: spec.initContainers[1].livenessProbe: must not be set for init containers",
        ),
        (
            _init_field(startupProbe={"exec": {"command": ["true"]}}),
            "invalid: spec.initContainers[1].startupProbe: must not be set for init containers",
        ),
        (
            _init_field(lifecycle={"preStop": {"sleep": {"seconds": 1}}}),
            "invalid: spec.initContainers[1].lifecycle: must not be set for init containers",
        ),
        (
            _init_field(restartPolicy="Always"),
            "unsupported: spec.initContainers[1].restartPolicy='Always' (sidecar containers",
        ),
        (
            _init_field(restartPolicy="Never"),
            "invalid: spec.initContainers[1].restartPolicy='Never': allowed: Always",
        ),
        (_init_field(volumeMounts=[]), "unsupported: spec.initContainers[1].volumeMounts"),
        (
            _init_field(name="app"),
            "invalid: spec.initContainers[1].name='app': Duplicate value",
        ),
        (_init_field(name="first"), "invalid: spec.initContainers[1].name='first': Duplicate"),
        (_init_field(image=""), "invalid: spec.initContainers[1].image"),
        (
            lambda m: m.update(initContainers={"name": "x"}),
            "invalid: spec.initContainers: must be a list",
        ),
    ],
)
def test_bad_init_container_is_one_clear_error(
    tmp_path: Path, mutate: Callable[[dict[str, Any]], None], message: str
) -> None:
    harness = Harness(tmp_path)
    manifest = harness.manifest(harness.init("first", "pass"), harness.init("second", "pass"))
    mutate(manifest)
    with pytest.raises(ConfigError) as caught:
        PodSpec.from_manifest(manifest)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_unknown_container_log_is_a_clear_error(tmp_path: Path) -> None:
    harness = Harness(tmp_path)
    pod = harness.pod(harness.manifest(harness.init("migrate", "pass")))
    with pytest.raises(RolloutError, match=r"no container 'nope' \(containers: migrate, app\)"):
        pod.container_log_path("nope")
