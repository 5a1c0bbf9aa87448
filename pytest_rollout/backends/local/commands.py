"""How the local backend runs a container image as a process: the target's ``[images]`` entry,
its templates filled in for one container.

Placeholders (in ``images.*.command``, ``images.*.env`` and ``backends.local.env``; ``{{`` and
``}}`` for literal braces): ``{host}`` the pod's address, ``{port}`` the container's first
``containerPort`` and ``{port:NAME}`` a named one, ``{python}`` this interpreter,
``{data_dir}`` a directory kept per namespace for the target's state, ``{prometheus_url}`` the
URL of the cluster's Prometheus as this machine reaches it. The config checks them when it is
read (:func:`check_template`); they are filled when a container starts (:func:`local_command`).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

from pytest_rollout.errors import ConfigError

if TYPE_CHECKING:
    from pytest_rollout.config import TargetConfig
    from pytest_rollout.tomlcheck import Where

PLACEHOLDERS = ("{host}", "{port}", "{port:NAME}", "{python}", "{data_dir}", "{prometheus_url}")

_TEMPLATE_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_PLACEHOLDER = re.compile(
    r"host|port|python|data_dir|prometheus_url|port:[a-z0-9]([-a-z0-9]*[a-z0-9])?"
)


@dataclass(frozen=True)
class LocalCommand:
    """A container as a local process: argv, working directory and the environment to add."""

    argv: tuple[str, ...]
    cwd: Path
    env: Mapping[str, str]


def local_command(
    target: TargetConfig,
    image: str,
    *,
    host: str,
    port: int | None,
    ports: Mapping[str, int],
    data_dir: Path,
    container_env: Mapping[str, str],
    python: str = sys.executable,
    command: Sequence[str] = (),
    args: Sequence[str] = (),
    prometheus_url: str | None = None,
) -> LocalCommand:
    """A container of ``image`` as a local process listening on ``host``.

    ``port`` is the container's first port, ``ports`` its named ones. As on a container
    runtime, the container's own ``command`` replaces the image's (then it runs as written),
    and ``args`` alone are appended to the image's. The environment is layered: the image's
    env, then the container's env from the manifest, then the local backend's env (it stands
    for what the cluster provides, so it wins).
    """
    run = target.image(image)
    values = {"host": host, "python": python, "data_dir": str(data_dir)}
    if prometheus_url is not None:
        values["prometheus_url"] = prometheus_url
    if port is not None:
        values["port"] = str(port)
    values.update({f"port:{name}": str(number) for name, number in ports.items()})

    def render(text: str, origin: str) -> str:
        return _render(text, values, origin)

    if command:
        argv = (*command, *args)
    else:
        argv = (*(render(arg, run.origin) for arg in run.command), *args)
    env = {name: render(value, run.origin) for name, value in run.env.items()}
    env.update(container_env)
    local = target.backends["local"]
    env.update({name: render(value, local.origin) for name, value in local.env.items()})
    return LocalCommand(argv, run.cwd, MappingProxyType(env))


def check_template(text: str, where: Where) -> None:
    """Reject unmatched braces and unknown placeholders in ``text``, naming ``where``."""
    for match in _TEMPLATE_TOKEN.finditer(text):
        token = match.group(0)
        if token in ("{{", "}}"):
            continue
        name = match.group(1)
        if name is None:
            raise where.error(
                f"unmatched {token!r} in {text!r}; write {token * 2} for a literal brace"
            )
        if not _PLACEHOLDER.fullmatch(name):
            raise where.error(f"unknown placeholder {{{name}}}; allowed: {', '.join(PLACEHOLDERS)}")


def _render(text: str, values: Mapping[str, str], origin: str) -> str:
    def replace(match: re.Match[str]) -> str:
        token = match.group(0)
        if token in ("{{", "}}"):
            return token[0]
        name = match.group(1)
        if name in values:
            return values[name]
        if name.startswith("port:"):
            named = [key.partition(":")[2] for key in values if key.startswith("port:")]
            detail = (
                f"the container has no port named {name.partition(':')[2]!r} "
                f"(named ports: {', '.join(named) or 'none'})"
            )
        elif name == "prometheus_url":
            detail = "no Prometheus is known here"
        else:
            detail = "the container declares no port"
        raise ConfigError(f"{origin}: cannot fill {{{name}}} in {text!r}: {detail}")

    return _TEMPLATE_TOKEN.sub(replace, text)
