"""The ``--rollout-*`` command-line options: validation and their typed, resolved form."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from pytest_rollout.errors import ConfigError
from pytest_rollout.names import check_kind_cluster_name

BACKENDS = ("local", "kube")
DEFAULT_ENDPOINT_DELAY = 1.0
"""Seconds from a pod's readiness change to the local router acting on it."""


def backend_name(value: str) -> str:
    """argparse ``type=`` for ``--rollout-backend``."""
    name = value.strip().lower()
    if name not in BACKENDS:
        raise argparse.ArgumentTypeError(
            f"unknown backend {value!r}; allowed: {', '.join(BACKENDS)}"
        )
    return name


def report_dir(value: str) -> Path:
    """argparse ``type=`` for ``--rollout-report``: a directory path that is not a file."""
    if not value.strip():
        raise argparse.ArgumentTypeError("report directory must not be empty")
    path = Path(value).expanduser()
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{value!r} exists and is not a directory")
    return path


def config_file(value: str) -> Path:
    """argparse ``type=`` for ``--rollout-config``: an existing file."""
    path = Path(value).expanduser()
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{value!r} is not a file")
    return path


def seconds(value: str) -> float:
    """argparse ``type=`` for durations: a number of seconds >= 0."""
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {value!r}") from None
    if not number >= 0 or number == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number of seconds >= 0, got {value!r}")
    return number


def kubeconfig_file(value: str) -> Path:
    """argparse ``type=`` for ``--rollout-kubeconfig``: an existing file."""
    path = Path(value).expanduser()
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"kubeconfig {value!r} is not a file")
    return path


def kube_context(value: str) -> str:
    """argparse ``type=`` for ``--rollout-context``: a non-empty context name."""
    if not value.strip():
        raise argparse.ArgumentTypeError("context name must not be empty")
    return value.strip()


def kind_cluster_name(value: str) -> str:
    """argparse ``type=`` for ``--rollout-kind-cluster``: a short DNS label (kind names its
    node containers after it)."""
    try:
        return check_kind_cluster_name(value)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


@dataclass(frozen=True)
class RolloutOptions:
    backend: str
    report: Path
    config: Path | None = None
    endpoint_delay: float = DEFAULT_ENDPOINT_DELAY
    kubeconfig: Path | None = None
    context: str | None = None
    keep_cluster: bool = False
    kind_cluster: str | None = None

    @property
    def uses_existing_cluster(self) -> bool:
        """kube backend: an existing cluster (a kubeconfig or context) rather than kind."""
        return self.kubeconfig is not None or self.context is not None

    @classmethod
    def resolve(
        cls,
        *,
        base: Path,
        backend: str,
        report: Path,
        config: Path | None,
        endpoint_delay: float,
        kubeconfig: Path | None,
        context: str | None,
        keep_cluster: bool,
        kind_cluster: str | None,
    ) -> RolloutOptions:
        """The options with every path made absolute against ``base`` (where pytest was
        invoked), so that a change of directory later changes nothing."""
        return cls(
            backend=backend,
            report=report if report.is_absolute() else base / report,
            config=_absolute(config, base),
            endpoint_delay=endpoint_delay,
            kubeconfig=_absolute(kubeconfig, base),
            context=context,
            keep_cluster=keep_cluster,
            kind_cluster=kind_cluster,
        )


def _absolute(path: Path | None, base: Path) -> Path | None:
    if path is None:
        return None
    return path if path.is_absolute() else base / path
