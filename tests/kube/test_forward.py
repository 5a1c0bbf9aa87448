"""Port-forwards to a cluster the plugin did not create: the command, and a forward that is
started, found gone and started again, and stopped — driven through a stand-in for kubectl that
listens where ``kubectl port-forward`` would (no cluster here)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pytest_rollout._proc import live_processes, port_accepts
from pytest_rollout._wait import wait_for
from pytest_rollout.backends.kube.forward import PortForward, port_forward_argv
from pytest_rollout.errors import RolloutError

# Listens on --address and the local port of its last argument, like kubectl port-forward;
# exits when the file named by $GONE appears (the pod behind the forward went away).
STAND_IN = """
import os, socket, sys, time
args = sys.argv[1:]
if os.environ.get("FAIL"):
    print('error: services "prometheus" not found', flush=True)
    sys.exit(1)
address = args[args.index("--address") + 1]
local = int(args[-1].split(":")[0])
print("args:", " ".join(args), flush=True)
server = socket.create_server((address, local))
server.settimeout(0.05)
while not os.path.exists(os.environ["GONE"]):
    try:
        connection, _ = server.accept()
        connection.close()
    except TimeoutError:
        pass
"""


@pytest.fixture
def kubectl(tmp_path: Path) -> list[str]:
    script = tmp_path / "kubectl.py"
    script.write_text(STAND_IN)
    return [sys.executable, str(script), "--kubeconfig", "/k", "--context", "c"]


def test_the_forward_binds_loopback_only() -> None:
    base = ["kubectl", "--context", "staging"]
    assert port_forward_argv(base, "rollout-system", "prometheus", 40123, 9090) == [
        "kubectl", "--context", "staging", "port-forward", "--address", "127.0.0.1",
        "-n", "rollout-system", "service/prometheus", "40123:9090",
    ]  # fmt: skip


def test_a_forward_that_went_away_is_started_again_on_the_same_port(
    kubectl: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gone = tmp_path / "gone"
    monkeypatch.setenv("GONE", str(gone))
    forward = PortForward(
        kubectl, "rollout-system", "prometheus", 9090, log_path=tmp_path / "forward.log"
    )
    try:
        url = forward.url()
        assert url == f"http://127.0.0.1:{forward.local_port}"
        assert port_accepts("127.0.0.1", forward.local_port)
        assert forward.url() == url
        assert forward.starts == 1, "a running forward is not started again"
        log = (tmp_path / "forward.log").read_text()
        assert "--address 127.0.0.1 -n rollout-system service/prometheus " in log

        gone.touch()
        wait_for(lambda: not forward.running(), what="the stand-in to exit", timeout=10)
        gone.unlink()
        assert forward.url() == url
        assert forward.starts == 2
        assert port_accepts("127.0.0.1", forward.local_port)
    finally:
        forward.stop()
    assert not forward.running()
    assert not [p for p in live_processes() if p.name == "port-forward rollout-system/prometheus"]
    assert not port_accepts("127.0.0.1", forward.local_port)


def test_a_forward_that_cannot_start_says_why_at_once(
    kubectl: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAIL", "1")
    forward = PortForward(
        kubectl, "rollout-system", "prometheus", 9090, log_path=tmp_path / "f.log", timeout=60
    )
    with pytest.raises(RolloutError) as info:
        forward.url()
    message = str(info.value)
    assert message.startswith(
        "kubectl port-forward to service/prometheus in rollout-system exited 1: "
    )
    assert 'error: services "prometheus" not found' in message
    assert not forward.running()
