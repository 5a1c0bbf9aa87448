"""Locating the external programs the local backend runs, and reading their versions."""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
from dataclasses import dataclass

from pytest_rollout.errors import ConfigError


@dataclass(frozen=True)
class Tool:
    name: str
    version_argv: tuple[str, ...]
    version_pattern: str
    install_hint: str


HAPROXY = Tool(
    "haproxy",
    ("-v",),
    r"version\s+([0-9][^\s]*)",
    "install it with `apt-get install haproxy` (or `make test`, which does that for you)",
)
PROMETHEUS = Tool(
    "prometheus",
    ("--version",),
    r"version\s+([0-9][^\s]*)",
    "install it with `apt-get install prometheus` (or `make test`, which does that for you)",
)


def find(tool: Tool) -> str:
    """Absolute path of ``tool`` on PATH, or a ConfigError saying how to get it."""
    path = shutil.which(tool.name)
    if path is None:
        raise ConfigError(f"{tool.name} not found on PATH: {tool.install_hint}")
    return path


@functools.cache
def version(tool: Tool) -> str | None:
    """The tool's version string, or None when it is not installed or does not say."""
    path = shutil.which(tool.name)
    if path is None:
        return None
    try:
        out = subprocess.run(
            [path, *tool.version_argv], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(tool.version_pattern, out.stdout + out.stderr)
    return match.group(1) if match else None
