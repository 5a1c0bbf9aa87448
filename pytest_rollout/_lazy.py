"""Package attributes imported on first use.

The plugin is loaded by every pytest run in an environment that has it installed, and its
helper processes (the load generator, the guardian) start from this package too: none of them
should pay up front for what it does not use (aiohttp, httpx, the kubernetes client).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_attributes(
    package: str, namespace: dict[str, Any], sources: Mapping[str, str]
) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` that imports ``name`` from ``sources[name]``
    on first access and keeps it in the package's ``namespace``."""

    def get(name: str) -> Any:
        module = sources.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    return get
