"""Asking Linux to wake the load generator promptly: a short EEVDF slice.

The generator stands in for clients on other machines, so its schedule must not wait for the
CPU the experiment's own processes use. Niceness cannot say that without privileges (only
lower priority is free); the pods are already lowered (:mod:`pytest_rollout._proc`). Since
Linux 6.12 a normal task may instead ask for a shorter slice (``sched_attr.sched_runtime``,
clamped to 0.1-100 ms): the scheduler gives it an earlier deadline, so a waking generator
preempts a task that has run for a while instead of queueing behind it, with no more CPU over
time than before. Older kernels accept and ignore the request; other systems have no such
call. Either way the experiment still measures its lateness and says when it fell behind.
"""

from __future__ import annotations

import ctypes
import os
import platform
import struct
from pathlib import Path

SHORT_SLICE_NS = 100_000
"""The shortest slice Linux allows a normal task (0.1 ms)."""

_SCHED_SETATTR = {"x86_64": 314, "aarch64": 274, "arm64": 274}
"""The ``sched_setattr`` syscall number by machine (it has no libc wrapper)."""
_SCHED_OTHER = 0
_ATTR = struct.Struct("IIQiIQQQII")
"""``struct sched_attr`` as of ``SCHED_ATTR_SIZE_VER1`` (56 bytes)."""


def request_short_slice() -> str:
    """Ask for :data:`SHORT_SLICE_NS` for the calling thread (threads it starts inherit it);
    what came of it, in words, for the generator's log."""
    number = _SCHED_SETATTR.get(platform.machine())
    if platform.system() != "Linux" or number is None:
        return f"no short slice: no sched_setattr on {platform.system()} {platform.machine()}"
    attr = _ATTR.pack(_ATTR.size, _SCHED_OTHER, 0, os.nice(0), 0, SHORT_SLICE_NS, 0, 0, 0, 0)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(number, 0, ctypes.create_string_buffer(attr, _ATTR.size), 0) != 0:
        return f"no short slice: sched_setattr failed: {os.strerror(ctypes.get_errno())}"
    return f"scheduler slice now {_current_slice() or 'unknown (no se.slice in /proc)'}"


def _current_slice() -> str | None:
    """This task's slice as the kernel reports it (absent before EEVDF)."""
    try:
        lines = Path("/proc/thread-self/sched").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        name, _, value = line.partition(":")
        if name.strip() == "se.slice":
            return f"{int(value) / 1e6:g} ms"
    return None
