"""The managed Prometheus server: lifecycle, file discovery, and the measured discovery delay."""

from __future__ import annotations

import json
import re
import socket
import time
from pathlib import Path

import pytest
import yaml

from pytest_rollout import _proc
from pytest_rollout.backends.local.prometheus import (
    DISCOVERY_PERIOD,
    FIRST_SAMPLE_BOUND,
    SCRAPE_INTERVAL,
    PrometheusServer,
    TargetGroup,
    pod_target,
)
from pytest_rollout.errors import ConfigError, ProcessError
from pytest_rollout.prom import quote
from service.launcher import run_service
from tests.prom.prom_pods import StartPod, next_pod_host

pytestmark = pytest.mark.slow  # starts real processes, or renders for seconds

# One scrape interval for the scrape offset, plus slack for a loaded two-core machine.
SCRAPE_BOUND = SCRAPE_INTERVAL + 2.0


def prometheus_alive(pid: int) -> bool:
    """True while a (non-zombie) prometheus process has this pid."""
    proc = Path(f"/proc/{pid}")
    try:
        cmdline = (proc / "cmdline").read_bytes()
        state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return b"prometheus" in cmdline and state != "Z"


def test_server_starts_on_loopback_and_stop_leaves_nothing(tmp_path: Path) -> None:
    early = pod_target("127.0.9.1:9", namespace="n", pod="registered-before-start")
    server = PrometheusServer(tmp_path / "prom")
    server.set_targets([early])
    started = time.monotonic()
    server.start()
    ready_after = time.monotonic() - started
    try:
        pid, port = server.pid, server.port
        assert pid is not None
        assert port is not None
        assert server.url == f"http://127.0.0.1:{port}"
        assert prometheus_alive(pid)
        assert server.data_dir.is_dir()
        with server.client() as prom:
            assert prom.ready()
        config = yaml.safe_load(server.config_path.read_text())
        assert config["global"] == {
            "scrape_interval": "1s",
            "scrape_timeout": "1s",
            "evaluation_interval": "1s",
        }
        (job,) = config["scrape_configs"]
        assert job["job_name"] == "kubernetes-pods"
        assert job["file_sd_configs"][0]["files"] == [str(server.targets_path)]
        assert json.loads(server.targets_path.read_text()) == [early.to_json()]
        print(f"Prometheus ready {ready_after:.2f}s after start")
        assert ready_after < 10
    finally:
        server.stop()
        server.stop()  # idempotent

    assert not prometheus_alive(pid)
    assert all(p.pid != pid for p in _proc.live_processes())
    assert not server.data_dir.exists()
    assert server.config_path.exists(), "config and log stay for the post-mortem"
    assert not _proc.port_accepts("127.0.0.1", port)


def test_server_without_workdir_removes_its_own() -> None:
    with PrometheusServer() as server:
        workdir = server.workdir
        assert workdir is not None
        assert workdir.is_dir()
    assert not workdir.exists()


def test_a_prometheus_that_cannot_start_is_one_error_with_its_log(tmp_path: Path) -> None:
    server = PrometheusServer(tmp_path)
    server.data_dir.write_text("a file where the TSDB directory should be")
    with pytest.raises(ProcessError) as info:
        server.start()
    message = str(info.value)
    assert re.match(r"prometheus exited with code \d+ before it was ready", message)
    assert "not a directory" in message, "the log lines say what Prometheus could not do"
    assert "goroutine" not in message
    assert not server.running()
    assert server.pid is None


def test_missing_prometheus_binary_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ConfigError) as info:
        PrometheusServer(tmp_path / "prom").start()
    assert str(info.value) == (
        "prometheus not found on PATH: install it with `apt-get install prometheus` "
        "(or `make test`, which does that for you)"
    )


def test_bad_settings_are_refused_before_starting() -> None:
    with pytest.raises(ConfigError, match=r"Prometheus host '0\.0\.0\.0' is not on loopback"):
        PrometheusServer(host="0.0.0.0")
    with pytest.raises(ConfigError, match="Prometheus retention 'forever' is not a duration"):
        PrometheusServer(retention="forever")


def test_a_port_taken_before_prometheus_binds_it_is_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        ports = iter([taken])
        real_free_port = _proc.free_port
        monkeypatch.setattr(
            _proc, "free_port", lambda host: next(ports, None) or real_free_port(host)
        )
        with PrometheusServer(tmp_path) as server:
            assert server.port != taken
            with server.client() as prom:
                assert prom.ready()
    assert "address already in use" in server.log_path.read_text()


def test_set_targets_rewrites_the_discovery_file_atomically(tmp_path: Path) -> None:
    server = PrometheusServer(tmp_path)
    groups = [
        pod_target("127.0.9.1:8080", namespace="a", pod="p1"),
        TargetGroup(["127.0.9.2:8080", "127.0.9.3:8080"], {"role": "stable"}),
    ]
    server.set_targets(groups)  # kept until start writes the file
    assert not tmp_path.joinpath("sd").exists()
    with server:
        assert json.loads(server.targets_path.read_text()) == [g.to_json() for g in groups]
        server.set_targets(groups[1:])
        assert json.loads(server.targets_path.read_text()) == [groups[1].to_json()]
        assert server.targets == (groups[1],)
        assert [p.name for p in server.targets_path.parent.iterdir()] == ["targets.json"]
        with pytest.raises(ConfigError, match="set_targets expects TargetGroup objects"):
            server.set_targets(["127.0.0.1:80"])  # type: ignore[list-item]


def test_discovery_delay_of_a_listening_pod_is_within_the_bound(
    prometheus_server: PrometheusServer, start_pod: StartPod
) -> None:
    """A pod registered only once it listens waits for Prometheus's discovery period."""
    pod = start_pod("v1")  # registered right after it answered /healthz
    registered = time.monotonic()
    prometheus_server.wait_until_scraped(pod.address, timeout=FIRST_SAMPLE_BOUND + 5)
    delay = time.monotonic() - registered
    print(f"listening pod registered -> first sample: {delay:.2f}s")
    assert delay <= FIRST_SAMPLE_BOUND


def test_pod_registered_at_creation_is_scraped_within_a_scrape_of_listening(
    prometheus_server: PrometheusServer, namespace: str
) -> None:
    """Registering a pod when it gets its address hides discovery behind its start-up."""
    host = next_pod_host()
    port = _proc.free_port(host)
    address = f"{host}:{port}"
    before = prometheus_server.targets
    target = pod_target(address, namespace=namespace, pod="created")
    prometheus_server.set_targets([*before, target])
    try:
        with prometheus_server.client() as prom:
            # Discovered and scraped (failing: nothing listens yet), like a pod still booting.
            prom.wait_for_data(
                f"up{{instance={quote(address)}}} == 0", timeout=FIRST_SAMPLE_BOUND + 5
            )
            with run_service({"SERVICE_VERSION": "v1"}, host=host, port=port):
                listening = time.monotonic()
                prometheus_server.wait_until_scraped(address, timeout=SCRAPE_BOUND + 5)
                delay = time.monotonic() - listening
            print(f"pod registered at creation -> first sample {delay:.2f}s after it served")
            assert delay <= SCRAPE_BOUND

            # Removing the target ends its series at once (a staleness marker), not after
            # the 5-minute look-back: a deleted pod stops counting as it would on a cluster.
            prometheus_server.set_targets(before)
            removed = time.monotonic()
            prom.wait_for_data(
                f"absent(up{{instance={quote(address)}}})", timeout=FIRST_SAMPLE_BOUND + 5
            )
            print(f"target removed -> series gone after {time.monotonic() - removed:.2f}s")
    finally:
        prometheus_server.set_targets(before)


def test_a_target_with_its_own_interval_is_scraped_that_often(
    prometheus_server: PrometheusServer, namespace: str
) -> None:
    """Prometheus itself as two targets: one at the server's 1 s, one at 250 ms."""
    address = f"127.0.0.1:{prometheus_server.port}"
    before = prometheus_server.targets
    fast = pod_target(address, namespace=namespace, pod="fast", scrape_interval="250ms")
    slow = pod_target(address, namespace=namespace, pod="slow")
    prometheus_server.set_targets([*before, fast, slow])
    counts = f"count_over_time(up{{namespace={quote(namespace)}}}[3s])"
    try:
        with prometheus_server.client() as prom:
            # Once the slow target has three scrapes in the window, both have been scraped
            # for the whole window.
            samples = prom.wait_for_data(
                counts,
                timeout=FIRST_SAMPLE_BOUND + 5,
                predicate=lambda got: len(got) == 2 and min(s.value for s in got) >= 3,
            )
    finally:
        prometheus_server.set_targets(before)
    by_pod = {s.labels["pod"]: s.value for s in samples}
    # 12 scrapes of the fast one in 3 s, 3 of the slow one; a late scrape or two on a busy
    # machine is allowed for.
    assert by_pod["fast"] >= 9, f"scrapes in 3 s: {by_pod}"
    assert by_pod["slow"] <= 4, f"scrapes in 3 s: {by_pod}"


def test_discovery_period_is_what_the_bound_assumes() -> None:
    assert DISCOVERY_PERIOD == 5.0
    assert FIRST_SAMPLE_BOUND >= DISCOVERY_PERIOD + SCRAPE_INTERVAL


# -- the session fixture, seen from a project using the plugin -----------------------------------

RECORDING_TEST = """
import json, os, pytest

def record(server, name):
    info = {"pid": server.pid, "port": server.port, "data": str(server.data_dir),
            "worker": os.environ.get("PYTEST_XDIST_WORKER", "main")}
    with open(os.path.join(%(out)r, name + "-" + info["worker"] + ".json"), "w") as f:
        json.dump(info, f)
"""


def _records(out: Path) -> list[dict[str, object]]:
    return [json.loads(p.read_text()) for p in sorted(out.glob("*.json"))]


@pytest.mark.parametrize(
    ("body", "outcome"),
    [("assert prom.ready() and False", "failed"), ("raise KeyboardInterrupt", "interrupted")],
)
def test_fixture_stops_prometheus_on_failure_and_ctrl_c(
    pytester: pytest.Pytester, tmp_path: Path, body: str, outcome: str
) -> None:
    out = tmp_path / "records"
    out.mkdir()
    pytester.makepyfile(
        RECORDING_TEST % {"out": str(out)}
        + f"""
def test_uses_prometheus(prometheus_server, prom):
    record(prometheus_server, "server")
    {body}
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    if outcome == "failed":
        result.assert_outcomes(failed=1)
    else:
        assert result.ret == pytest.ExitCode.INTERRUPTED
        result.stdout.fnmatch_lines(["*KeyboardInterrupt*"])
    (record,) = _records(out)
    assert isinstance(record["pid"], int)
    assert not prometheus_alive(record["pid"]), f"prometheus {record['pid']} outlived the run"
    assert not Path(str(record["data"])).exists()


def test_each_xdist_worker_gets_its_own_prometheus(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    out = tmp_path / "records"
    out.mkdir()
    pytester.makepyfile(
        RECORDING_TEST % {"out": str(out)}
        + """
@pytest.mark.parametrize("n", range(4))
def test_uses_prometheus(prometheus_server, prom, n):
    record(prometheus_server, f"test{n}")
    assert prom.ready()
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2")
    result.assert_outcomes(passed=4)
    records = _records(out)
    by_worker = {str(r["worker"]): (r["pid"], r["port"]) for r in records}
    assert set(by_worker) == {"gw0", "gw1"}, "both workers ran tests"
    assert len({port for _, port in by_worker.values()}) == 2
    # Session scope: every test of a worker saw that worker's one server.
    assert len({(r["worker"], r["pid"]) for r in records}) == 2
    for pid, _ in by_worker.values():
        assert isinstance(pid, int)
        assert not prometheus_alive(pid)
