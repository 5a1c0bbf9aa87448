"""Getting at a cluster: the programs on PATH, kind's answers, the shared-cluster lease, and the
one-line errors for what is missing or unreachable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pytest_rollout._proc import free_port, live_processes
from pytest_rollout.backends.kube import kind, tools, versions
from pytest_rollout.backends.kube.api import KubeApi, traffic_router_plugins
from pytest_rollout.errors import ConfigError, RolloutError
from pytest_rollout.names import check_kind_cluster_name


@pytest.fixture
def empty_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "bin"
    directory.mkdir()
    monkeypatch.setenv("PATH", str(directory))
    return directory


def _fake_program(directory: Path, name: str) -> None:
    path = directory / name
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)


@pytest.mark.parametrize("program", [tools.KIND, tools.KUBECTL, tools.DOCKER])
def test_a_missing_program_is_named_with_how_to_get_it(
    empty_path: Path, program: tools.Program
) -> None:
    with pytest.raises(ConfigError) as info:
        tools.find(program)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"`{program.name}` not found on PATH (it {program.purpose}): ")
    assert program.install_hint in message


def test_every_missing_program_is_named_at_once(empty_path: Path) -> None:
    _fake_program(empty_path, "kubectl")
    with pytest.raises(ConfigError) as info:
        tools.require(tools.KIND, tools.KUBECTL, tools.DOCKER)
    message = str(info.value)
    assert message.startswith("`kind`, `docker` not found on PATH: `kind` (creates")
    assert "`kubectl`" not in message
    _fake_program(empty_path, "kind")
    _fake_program(empty_path, "docker")
    found = tools.require(tools.KIND, tools.KUBECTL, tools.DOCKER)
    assert found == {name: str(empty_path / name) for name in ("kind", "kubectl", "docker")}


def test_run_returns_the_output_and_fails_with_its_tail(tmp_path: Path) -> None:
    ok = tools.run([sys.executable, "-c", "print('hello')"], what="say hello", timeout=30)
    assert ok.returncode == 0
    assert ok.output.strip() == "hello"
    with pytest.raises(RolloutError) as info:
        tools.run(
            [sys.executable, "-c", "import sys; print('line 1'); sys.exit('it broke')"],
            what="break",
            timeout=30,
            log_dir=tmp_path,
        )
    message = str(info.value)
    assert message.startswith("break: `")
    assert "exited 1" in message
    assert "it broke" in message
    assert list(tmp_path.glob("*.log")), "the log is kept where asked"
    unchecked = tools.run(
        [sys.executable, "-c", "raise SystemExit(3)"], what="x", timeout=30, check=False
    )
    assert unchecked.returncode == 3


def test_run_stops_a_command_at_its_deadline() -> None:
    with pytest.raises(RolloutError, match=r"did not finish within 0.5s"):
        tools.run([sys.executable, "-c", "import time; time.sleep(30)"], what="hang", timeout=0.5)
    assert not [p for p in live_processes() if p.name == "hang"]


# --- kind ---------------------------------------------------------------------------------------


def test_kind_answers_are_parsed() -> None:
    assert kind.parse_clusters("No kind clusters found.\n") == []
    assert kind.parse_clusters("pytest-rollout\nother\n") == ["pytest-rollout", "other"]
    assert kind.parse_docker_port("127.0.0.1:30080\n") == 30080
    assert kind.parse_docker_port("Error: No public port '30080/tcp' published\n") is None
    argv = kind.create_argv(
        "kind", "x", config=Path("/c.yaml"), image="img@sha256:1", kubeconfig=Path("/k")
    )
    assert argv[:5] == ["kind", "create", "cluster", "--name", "x"]
    assert argv[argv.index("--image") + 1] == "img@sha256:1"
    assert argv[argv.index("--kubeconfig") + 1] == "/k"


def test_the_node_image_is_chosen_by_kubernetes_minor() -> None:
    assert kind.node_image({}) == versions.KIND_NODE_IMAGES[versions.DEFAULT_KUBERNETES]
    assert kind.node_image({versions.KUBERNETES_ENV: "v1.35"}) == versions.KIND_NODE_IMAGES["1.35"]
    with pytest.raises(ConfigError, match=r"pinned Kubernetes versions are 1.35, 1.36, 1.37"):
        kind.node_image({versions.KUBERNETES_ENV: "1.20"})


@pytest.mark.parametrize("name", ["pytest-rollout", "a", "ci-1-35"])
def test_good_cluster_names(name: str) -> None:
    assert check_kind_cluster_name(name) == name


@pytest.mark.parametrize("name", ["", "Upper", "-x", "x-", "a_b", "x" * 43])
def test_bad_cluster_names(name: str) -> None:
    with pytest.raises(ConfigError, match="kind cluster name"):
        check_kind_cluster_name(name)


def test_the_lease_lets_only_the_last_user_delete_a_cluster_the_plugin_created(
    tmp_path: Path,
) -> None:
    lease = kind.ClusterLease("c", tmp_path)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with lease.locked():
        lease.write(kind.LeaseState(users=[dead.pid], created=True))
        # A user that died without leaving does not count; this one joins a reused cluster.
        lease.join(created=False)
        assert lease.read() == kind.LeaseState(users=[os.getpid()], created=False)
    other = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    try:
        with lease.locked():
            lease.write(kind.LeaseState(users=[other.pid, os.getpid()], created=True))
            assert lease.leave() is False, "another user is still there"
            assert lease.read().users == [other.pid]
            lease.join(created=False)
            lease.write(kind.LeaseState(users=[os.getpid()], created=True))
            assert lease.leave() is True
            assert lease.read() == kind.LeaseState(users=[], created=False)
            lease.join(created=False)
            assert lease.leave() is False, "a reused cluster is never deleted"
    finally:
        assert other.stdin is not None
        other.stdin.close()
        other.wait()


# --- the API ------------------------------------------------------------------------------------


def _kubeconfig(path: Path, server: str, context: str = "test") -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": server}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": context, "context": {"cluster": "c", "user": "u"}}],
                "current-context": context,
            }
        )
    )
    return path


def test_an_unreachable_cluster_is_one_clear_line(tmp_path: Path) -> None:
    server = f"https://127.0.0.1:{free_port()}"
    config = _kubeconfig(tmp_path / "kubeconfig", server)
    with pytest.raises(ConfigError) as info:
        KubeApi(config, "test")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(
        f"kubeconfig {config} (context test): the cluster's API server at {server}"
    )
    assert "unreachable" in message


def test_a_missing_kubeconfig_or_context_is_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^kubeconfig .*missing.*: cannot load: "):
        KubeApi(tmp_path / "missing", None)
    config = _kubeconfig(tmp_path / "kubeconfig", "https://127.0.0.1:1")
    with pytest.raises(ConfigError, match=r"\(context nope\): cannot load: .*nope"):
        KubeApi(config, "nope")


def test_the_plugin_list_of_argo_rollouts_config_is_read() -> None:
    text = '- name: "argoproj-labs/gatewayAPI"\n  location: "https://x"\n- name: other\n'
    assert traffic_router_plugins(text) == {"argoproj-labs/gatewayAPI", "other"}
    assert traffic_router_plugins(None) == frozenset()
    assert traffic_router_plugins("{not: a list}") == frozenset()
    assert traffic_router_plugins(": :") == frozenset()
