"""Runs an install plan against a cluster: ``kubectl`` for applies and waits, ``docker`` and
``kind`` for images. Each command's output is appended to one log file, quoted on failure."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import yaml

from pytest_rollout.backends.kube import tools
from pytest_rollout.backends.kube.plan import (
    ApplyObjects,
    ApplyUrl,
    BuildImage,
    LoadImageArchive,
    Operation,
    RestartDeployment,
    SaveImages,
    WaitCondition,
    WaitCrds,
    WaitDeployment,
)
from pytest_rollout.errors import RolloutError

APPLY_TIMEOUT = 300.0
WAIT_TIMEOUT = 300
BUILD_TIMEOUT = 1200.0
LOAD_TIMEOUT = 600.0


def kubectl_base(kubectl: str, kubeconfig: Path | None, context: str | None) -> list[str]:
    argv = [kubectl]
    if kubeconfig is not None:
        argv += ["--kubeconfig", str(kubeconfig)]
    if context is not None:
        argv += ["--context", context]
    return argv


def command_for(
    operation: Operation, *, kubectl: Sequence[str], kind: str, docker: str, manifest: Path | None
) -> list[str]:
    """The argv that performs ``operation`` (``manifest``: where ApplyObjects' YAML was written)."""
    apply = ["apply", "--server-side", "--force-conflicts"]
    match operation:
        case ApplyObjects(field_manager=manager):
            assert manifest is not None
            return [*kubectl, *apply, f"--field-manager={manager}", "-f", str(manifest)]
        case ApplyUrl(url=url, field_manager=manager, namespace=namespace):
            where = ["-n", namespace] if namespace else []
            return [*kubectl, *apply, f"--field-manager={manager}", *where, "-f", url]
        case WaitCrds(names=names):
            crds = [f"crd/{name}" for name in names]
            return [
                *kubectl,
                "wait",
                "--for=condition=Established",
                f"--timeout={WAIT_TIMEOUT}s",
                *crds,
            ]
        case WaitDeployment(namespace=namespace, name=name):
            return [
                *kubectl, "rollout", "status", f"deployment/{name}", "-n", namespace,
                f"--timeout={WAIT_TIMEOUT}s",
            ]  # fmt: skip
        case WaitCondition(resource=resource, namespace=namespace, name=name, condition=condition):
            return [
                *kubectl, "wait", f"--for=condition={condition}", f"--timeout={WAIT_TIMEOUT}s",
                "-n", namespace, f"{resource}/{name}",
            ]  # fmt: skip
        case RestartDeployment(namespace=namespace, name=name):
            return [*kubectl, "rollout", "restart", f"deployment/{name}", "-n", namespace]
        case BuildImage(tags=tags, context=context, dockerfile=dockerfile):
            file = ["-f", str(dockerfile)] if dockerfile is not None else []
            tagged = [arg for tag in tags for arg in ("-t", tag)]
            return [docker, "build", *file, *tagged, str(context)]
        case SaveImages(tags=tags, archive=archive, platform=platform):
            return [docker, "save", "--platform", platform, "-o", str(archive), *tags]
        case LoadImageArchive(cluster=cluster, archive=archive):
            return [kind, "load", "image-archive", str(archive), "--name", cluster]
    raise AssertionError(f"unknown operation {operation!r}")


def manifest_yaml(operation: ApplyObjects) -> str:
    return yaml.safe_dump_all(list(operation.objects), sort_keys=False)


class Executor:
    """Runs operations in order; stops at the first failure (RolloutError naming it)."""

    def __init__(
        self,
        *,
        workdir: Path,
        kubectl: str,
        kubeconfig: Path | None,
        context: str | None,
        kind: str = "kind",
        docker: str = "docker",
    ) -> None:
        self.workdir = workdir
        self.kubectl = kubectl_base(kubectl, kubeconfig, context)
        self.kind = kind
        self.docker = docker
        self.log_path = workdir / "kube-install.log"
        self._count = 0

    def run(self, operations: Iterable[Operation]) -> None:
        for operation in operations:
            self._run_one(operation)

    def _run_one(self, operation: Operation) -> None:
        self._count += 1
        manifest = None
        if isinstance(operation, ApplyObjects):
            manifest = self.workdir / "applied" / f"{self._count:03d}-{operation.component}.yaml"
            manifest.parent.mkdir(parents=True, exist_ok=True)
            manifest.write_text(manifest_yaml(operation))
        argv = command_for(
            operation, kubectl=self.kubectl, kind=self.kind, docker=self.docker, manifest=manifest
        )
        timeout = {
            BuildImage: BUILD_TIMEOUT,
            SaveImages: LOAD_TIMEOUT,
            LoadImageArchive: LOAD_TIMEOUT,
        }.get(type(operation), APPLY_TIMEOUT + WAIT_TIMEOUT)
        with self.log_path.open("a") as log:
            log.write(f"\n### {operation.describe()}\n$ {' '.join(argv)}\n")
        result = tools.run(
            argv, what=operation.describe(), timeout=timeout, log_dir=self.workdir / "commands",
            check=False,
        )  # fmt: skip
        with self.log_path.open("a") as log:
            log.write(result.output)
        if result.returncode != 0:
            tail = " | ".join(line for line in result.output.splitlines() if line.strip())[-1500:]
            raise RolloutError(
                f"{operation.describe()}: exited {result.returncode}: {tail} "
                f"(full log: {self.log_path})"
            )
