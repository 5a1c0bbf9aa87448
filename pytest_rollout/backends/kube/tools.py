"""The command-line programs the kube backend drives, found on PATH, and running them.

Every command runs as a :class:`~pytest_rollout._proc.ManagedProcess` with a deadline; its
output goes to a log file that a failure quotes.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pytest_rollout._proc import ManagedProcess
from pytest_rollout.errors import ConfigError, ProcessError, RolloutError


@dataclass(frozen=True)
class Program:
    name: str
    purpose: str
    install_hint: str


KIND = Program(
    "kind",
    "creates the Kubernetes cluster",
    "install it from https://kind.sigs.k8s.io/docs/user/quick-start/#installation "
    "(or pass --rollout-kubeconfig to use an existing cluster)",
)
KUBECTL = Program(
    "kubectl",
    "installs Argo Rollouts, the Gateway and Prometheus",
    "install it from https://kubernetes.io/docs/tasks/tools/#kubectl",
)
DOCKER = Program(
    "docker",
    "builds the service image and runs the kind nodes",
    "install Docker Engine (https://docs.docker.com/engine/install/) and start it",
)


def find(program: Program) -> str:
    """The program's path, or a one-line ConfigError naming it and how to get it."""
    path = shutil.which(program.name)
    if path is None:
        raise ConfigError(
            f"`{program.name}` not found on PATH (it {program.purpose}): {program.install_hint}"
        )
    return path


def require(*programs: Program) -> dict[str, str]:
    """Paths of all ``programs``; one error naming every missing one."""
    missing = [program for program in programs if shutil.which(program.name) is None]
    if len(missing) == 1:
        find(missing[0])
    if missing:
        names = ", ".join(f"`{p.name}`" for p in missing)
        details = "; ".join(f"`{p.name}` ({p.purpose}): {p.install_hint}" for p in missing)
        raise ConfigError(f"{names} not found on PATH: {details}")
    return {program.name: find(program) for program in programs}


@dataclass(frozen=True)
class CommandResult:
    argv: tuple[str, ...]
    returncode: int
    output: str


def run(
    argv: Sequence[str],
    *,
    what: str,
    timeout: float,
    log_dir: Path | None = None,
    check: bool = True,
) -> CommandResult:
    """Run ``argv`` to completion within ``timeout`` seconds; stdout and stderr together.

    With ``check``, a non-zero exit raises RolloutError naming ``what`` with the output's tail.
    """
    directory = log_dir or Path(tempfile.gettempdir())
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(
        dir=directory, prefix=f"{Path(argv[0]).name}-", suffix=".log", delete=False
    ) as handle:
        log_path = Path(handle.name)
    process = ManagedProcess(what, argv, log_path=log_path)
    try:
        process.start()
        code = process.wait(timeout)
    except ProcessError as exc:
        process.stop()
        raise RolloutError(
            f"{what}: `{_shell(argv)}` did not finish within {timeout:g}s; "
            f"output: {_tail(log_path)}"
        ) from exc
    finally:
        process.stop()
    output = log_path.read_text(errors="replace")
    if log_dir is None:
        log_path.unlink(missing_ok=True)
    if check and code != 0:
        raise RolloutError(f"{what}: `{_shell(argv)}` exited {code}: {_tail(log_path, output)}")
    return CommandResult(tuple(argv), code, output)


def _shell(argv: Sequence[str]) -> str:
    return " ".join(argv)


def _tail(path: Path, text: str | None = None, lines: int = 15) -> str:
    if text is None:
        try:
            text = path.read_text(errors="replace")
        except OSError:
            return "(no output)"
    tail = [line for line in text.splitlines() if line.strip()][-lines:]
    return " | ".join(tail) or "(no output)"
