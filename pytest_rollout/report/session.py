"""The session record of a report directory, ``_session.json``: how the run can be reproduced.

Written when the first experiment of a session writes its evidence (``finished`` null) and
again when the session ends, so an interrupted session still leaves its header.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pytest_rollout.report.model import SESSION_FILE, SessionInfo


def utc_timestamp(epoch: float) -> str:
    """``2026-12-02T11:41:44Z``: the form every time in the report files takes."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def session_info(
    *, header: Sequence[str], started: float, backend: str, args: Sequence[str]
) -> SessionInfo:
    """The record of this session: the platform and ``header`` lines, and the command line
    that reproduces it (``args`` as pytest received them)."""
    platform_line = (
        f"platform {sys.platform} -- Python {platform.python_version()}, "
        f"pytest-{pytest.__version__}"
    )
    return SessionInfo(
        header=(platform_line, *header),
        started=utc_timestamp(started),
        finished=None,
        backend=backend,
        argv=(*_program(), *args),
    )


def _program() -> tuple[str, ...]:
    """How pytest was invoked: ``pytest``, or ``python -m pytest``."""
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "pytest"
    return ("python", "-m", "pytest") if name == "__main__.py" else (name,)


def write_session(report_dir: Path, info: SessionInfo) -> Path:
    """Write ``DIR/_session.json`` atomically (xdist workers may race to write it)."""
    data = {
        "header": list(info.header),
        "started": info.started,
        "finished": info.finished,
        "backend": info.backend,
        "argv": list(info.argv),
    }
    report_dir.mkdir(parents=True, exist_ok=True)
    target = report_dir / SESSION_FILE
    temporary = report_dir / f".{SESSION_FILE}.{os.getpid()}"
    try:
        temporary.write_text(json.dumps(data, indent=2) + "\n")
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    return target
