"""The kind cluster's lifecycle: create or reuse by name, find its mapped ports, delete.

Several pytest processes may share one cluster (xdist workers, or two sessions on one
machine): :class:`ClusterLease` serialises creation and installs with a file lock, counts the
sessions using the cluster, and lets the last one out delete it — only if the plugin created
it and ``--rollout-keep-cluster`` was not given.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pytest_rollout.backends.kube import tools, versions
from pytest_rollout.errors import ConfigError
from pytest_rollout.names import KIND_CLUSTER_NAME

DEFAULT_CLUSTER = "pytest-rollout"
CREATE_TIMEOUT = 600.0


def node_image(environ: dict[str, str] | None = None) -> str:
    """The pinned node image of the Kubernetes minor chosen by ``$PYTEST_ROLLOUT_KUBERNETES``."""
    env = os.environ if environ is None else environ
    minor = env.get(versions.KUBERNETES_ENV, versions.DEFAULT_KUBERNETES).strip()
    minor = minor.removeprefix("v")
    if minor not in versions.KIND_NODE_IMAGES:
        raise ConfigError(
            f"${versions.KUBERNETES_ENV}={env.get(versions.KUBERNETES_ENV)!r}: pinned Kubernetes "
            f"versions are {', '.join(versions.KIND_NODE_IMAGES)}"
        )
    return versions.KIND_NODE_IMAGES[minor]


def parse_clusters(output: str) -> list[str]:
    """Names from ``kind get clusters`` (which says "No kind clusters found." on stderr)."""
    return [
        line.strip() for line in output.splitlines() if KIND_CLUSTER_NAME.fullmatch(line.strip())
    ]


def parse_docker_port(output: str) -> int | None:
    """The loopback host port from ``docker port CONTAINER PORT/tcp`` (``127.0.0.1:30080``)."""
    for line in output.splitlines():
        host, _, port = line.strip().rpartition(":")
        if host in ("127.0.0.1", "0.0.0.0", "[::]", "::") and port.isdigit():
            return int(port)
    return None


def create_argv(kind: str, name: str, *, config: Path, image: str, kubeconfig: Path) -> list[str]:
    return [
        kind, "create", "cluster", "--name", name, "--config", str(config), "--image", image,
        "--kubeconfig", str(kubeconfig), "--wait", "180s",
    ]  # fmt: skip


class Kind:
    """The ``kind`` CLI (and ``docker`` to read the node's port mappings)."""

    def __init__(self, kind: str, docker: str, workdir: Path) -> None:
        self.kind = kind
        self.docker = docker
        self.workdir = workdir

    def clusters(self) -> list[str]:
        result = tools.run([self.kind, "get", "clusters"], what="list kind clusters", timeout=60)
        return parse_clusters(result.output)

    def create(self, name: str, *, config: Path, image: str, kubeconfig: Path) -> None:
        tools.run(
            create_argv(self.kind, name, config=config, image=image, kubeconfig=kubeconfig),
            what=f"create kind cluster {name!r}",
            timeout=CREATE_TIMEOUT,
            log_dir=self.workdir / "commands",
        )

    def export_kubeconfig(self, name: str, kubeconfig: Path) -> None:
        tools.run(
            [self.kind, "export", "kubeconfig", "--name", name, "--kubeconfig", str(kubeconfig)],
            what=f"write the kubeconfig of kind cluster {name!r}",
            timeout=60,
        )

    def delete(self, name: str, kubeconfig: Path) -> None:
        tools.run(
            [self.kind, "delete", "cluster", "--name", name, "--kubeconfig", str(kubeconfig)],
            what=f"delete kind cluster {name!r}",
            timeout=300,
        )

    def host_port(self, name: str, node_port: int) -> int:
        """The host port kind mapped to ``node_port`` of the control-plane node."""
        container = f"{name}-control-plane"
        result = tools.run(
            [self.docker, "port", container, f"{node_port}/tcp"],
            what=f"read the port mappings of {container}",
            timeout=30,
            check=False,
        )
        port = parse_docker_port(result.output)
        if port is None:
            raise ConfigError(
                f"kind cluster {name!r} maps no host port to node port {node_port}: it was not "
                "created from the plugin's kind-config.yaml; delete it (kind delete cluster "
                f"--name {name}) or choose another name with --rollout-kind-cluster"
            )
        return port


@dataclass
class LeaseState:
    users: list[int]
    created: bool


class ClusterLease:
    """Machine-wide bookkeeping of the sessions using kind cluster ``name``."""

    def __init__(self, name: str, directory: Path | None = None) -> None:
        base = directory or Path(tempfile.gettempdir())
        self.lock_path = base / f"pytest-rollout-kind-{name}.lock"
        self.state_path = base / f"pytest-rollout-kind-{name}.json"

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        with self.lock_path.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def read(self) -> LeaseState:
        try:
            data = json.loads(self.state_path.read_text())
            users = [int(pid) for pid in data.get("users", [])]
            return LeaseState([pid for pid in users if _alive(pid)], bool(data.get("created")))
        except (OSError, ValueError, TypeError, AttributeError):
            return LeaseState([], False)

    def write(self, state: LeaseState) -> None:
        self.state_path.write_text(json.dumps({"users": state.users, "created": state.created}))

    def join(self, *, created: bool) -> None:
        """Register this process (call under :meth:`locked`); ``created``: it made the cluster."""
        state = self.read()
        if not state.users:
            state.created = False
        state.created = state.created or created
        state.users.append(os.getpid())
        self.write(state)

    def leave(self) -> bool:
        """Unregister this process (under :meth:`locked`); True when it was the last one and
        the cluster was created by the plugin."""
        state = self.read()
        state.users = [pid for pid in state.users if pid != os.getpid()]
        last = not state.users
        created = state.created
        if last:
            state.created = False
        self.write(state)
        return last and created


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def require_kind_tools() -> dict[str, str]:
    return tools.require(tools.KIND, tools.KUBECTL, tools.DOCKER)
